/* Retention on the SQLite backend (prune_kind): the finished jobs of one
 * kind older than a cut-off, deleted a few hundred at a time.
 *
 * There is no index on finished_at (or on kind for finished jobs): every
 * finish would pay for it, in every process, for the sake of a pass a
 * minute. Instead a pass reads the table in seq order (the primary key:
 * submission order, read sequentially) from the oldest job, and ends at the
 * first job created at or after the cut-off: a job finishes after it was
 * created, so none beyond can be old enough. After pruning, the jobs a pass
 * reads are the ones it keeps (other kinds, unfinished, live keys, an
 * owner's newest) and the ones it deletes; it never reads the young rest
 * of the table. One call reads at most RET_SCAN rows and remembers (per
 * kind, in this process) where it stopped, so that a table whose oldest
 * rows are all kept is crossed once per pass, not once per call, and every
 * call is one short transaction beside claims and submits.
 *
 * The seq order follows created_at only as far as the clocks of the
 * submitting processes agree; a job created "out of order" before the
 * cut-off but after the row the pass ended at waits for a later pass. */
#include "storage/sqlite_int.h"
#include "storage/dedupe.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows one call reads at most. */
#define RET_SCAN 2048

struct sq_ret_cursor {
  char *kind;
  int64_t seq; /* the pass under way has looked at every row up to it; 0: none under way */
};

static const char *const sql[WS_COUNT] = {
  [WS_RET_SCAN] =
      "SELECT seq, kind, state, finished_at, created_at, dedupe_key IS NOT NULL, dedupe_ttl, "
      "owner, CASE WHEN webhooks IS NOT NULL THEN id END FROM jobq_jobs WHERE seq > ?1 "
      "ORDER BY seq",
  /* How many of the owner's finished jobs of the kind were submitted after
   * this one, counted up to the number kept (the owner index). */
  [WS_RET_NEWER] =
      "SELECT count(*) FROM (SELECT 1 FROM jobq_jobs WHERE owner = ?1 AND seq > ?2 AND kind = ?3 "
      "AND state IN (2, 3, 4) LIMIT ?4)",
  [WS_RET_DELETE] = "DELETE FROM jobq_jobs WHERE seq = ?1 RETURNING id",
};

int jobq__sq_retention_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

void jobq__sq_retention_free(sq_store *s) {
  for (size_t i = 0; i < s->n_ret; i++) free(s->ret[i].kind);
  free(s->ret);
  s->ret = NULL;
  s->n_ret = 0;
}

/* The kind's cursor, made on first use; NULL when out of memory. */
static struct sq_ret_cursor *cursor(sq_store *s, const char *kind) {
  for (size_t i = 0; i < s->n_ret; i++)
    if (strcmp(s->ret[i].kind, kind) == 0) return &s->ret[i];
  struct sq_ret_cursor *v = realloc(s->ret, (s->n_ret + 1) * sizeof *v);
  if (v == NULL) return NULL;
  s->ret = v;
  if ((v[s->n_ret].kind = jobq__strdup(kind)) == NULL) return NULL;
  v[s->n_ret].seq = 0;
  return &v[s->n_ret++];
}

typedef struct sq_ret_req {
  sq_req h;
  jobq_storage_prune *p;
  char (**out_ids)[JOBQ_ID_SIZE];
  size_t *n_out;
  int64_t cursor_was; /* for undo */
} sq_ret_req;

/* Whether the owner keeps this job: it is one of the owner's `keep`
 * finished jobs of the kind submitted last. */
static int kept_by_owner(sq_store *s, const char *owner, int64_t seq, const char *kind, int keep,
                         int *out) {
  sqlite3_stmt *st = s->ws[WS_RET_NEWER];
  sqlite3_bind_text(st, 1, owner, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, seq);
  sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, keep);
  int rc = sqlite3_step(st);
  *out = rc == SQLITE_ROW && sqlite3_column_int(st, 0) < keep;
  rc = rc == SQLITE_ROW ? 0 : jobq__sq_error(s->w, rc, "cannot count an owner's jobs", s->path);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

static int ret_run(sq_store *s, sq_req *req) {
  int frc = jobq__sq_outbox_settle(s); /* every announced delivery first: the guard reads them */
  if (frc) return frc;
  sq_ret_req *r = (sq_ret_req *)req;
  jobq_storage_prune *p = r->p;
  struct sq_ret_cursor *c = cursor(s, p->kind);
  if (c == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  r->cursor_was = c->seq;
  size_t cap = p->max < RET_SCAN ? p->max : RET_SCAN;
  int64_t *cand = malloc(cap * sizeof *cand);
  unsigned char *hooked = malloc(cap); /* the candidate has webhooks: its deliveries go too */
  if (cand == NULL || hooked == NULL) {
    free(cand);
    free(hooked);
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  }

  /* Look: the candidates' seqs, then delete them (a statement that reads
   * the table must not run beside deletions from it). */
  sqlite3_stmt *sc = s->ws[WS_RET_SCAN];
  sqlite3_bind_int64(sc, 1, c->seq);
  size_t n = 0, seen = 0;
  int64_t last = c->seq;
  int end = 1, rc = 0, src;
  while ((src = sqlite3_step(sc)) == SQLITE_ROW) {
    if (n == cap || seen == RET_SCAN) {
      end = 0;
      break;
    }
    if (sqlite3_column_int64(sc, 4) >= p->before) break; /* nothing newer is old enough */
    seen++;
    int64_t seq = sqlite3_column_int64(sc, 0);
    last = seq;
    int state = sqlite3_column_int(sc, 2);
    if (state < JOBQ_SUCCEEDED || state > JOBQ_CANCELLED) continue;
    int64_t fin = sqlite3_column_int64(sc, 3);
    if (fin >= p->before) continue;
    const char *kind = (const char *)sqlite3_column_text(sc, 1);
    if (kind == NULL || strcmp(kind, p->kind) != 0) continue;
    /* A cache entry stays while its key lives on past the cut-off. */
    if (state == JOBQ_SUCCEEDED && sqlite3_column_int(sc, 5) &&
        jobq__key_expiry(fin, sqlite3_column_int64(sc, 6)) > p->before)
      continue;
    const char *owner = (const char *)sqlite3_column_text(sc, 7);
    if (p->keep_per_owner > 0 && owner) {
      int kept = 0;
      if ((rc = kept_by_owner(s, owner, seq, p->kind, p->keep_per_owner, &kept)) != 0) break;
      if (kept) continue;
    }
    /* A job whose webhooks are still to be sent stays. */
    hooked[n] = sqlite3_column_type(sc, 8) != SQLITE_NULL;
    if (hooked[n]) {
      int busy = 0;
      if ((rc = jobq__sq_outbox_busy(s, (const char *)sqlite3_column_text(sc, 8), &busy)) != 0) break;
      if (busy) continue;
    }
    cand[n++] = seq;
  }
  if (rc == 0 && src != SQLITE_ROW && src != SQLITE_DONE)
    rc = jobq__sq_error(s->w, src, "cannot read jobs to prune", s->path);
  sqlite3_reset(sc);
  sqlite3_clear_bindings(sc);

  char (*ids)[JOBQ_ID_SIZE] = NULL;
  if (rc == 0 && n && r->out_ids && (ids = malloc(n * sizeof *ids)) == NULL)
    rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  sqlite3_stmt *d = s->ws[WS_RET_DELETE];
  for (size_t i = 0; rc == 0 && i < n; i++) {
    sqlite3_bind_int64(d, 1, cand[i]);
    src = sqlite3_step(d);
    if (src == SQLITE_ROW) {
      const char *id = (const char *)sqlite3_column_text(d, 0);
      if (ids) snprintf(ids[i], JOBQ_ID_SIZE, "%s", id ? id : "");
      if (hooked[i] && id && (rc = jobq__sq_outbox_forget(s, id)) != 0) {
        sqlite3_reset(d);
        sqlite3_clear_bindings(d);
        break;
      }
      src = sqlite3_step(d);
    }
    if (src != SQLITE_DONE) rc = jobq__sq_error(s->w, src, "cannot prune jobs", s->path);
    sqlite3_reset(d);
    sqlite3_clear_bindings(d);
  }
  free(cand);
  free(hooked);
  if (rc) {
    free(ids);
    return rc;
  }
  c->seq = end ? 0 : last;
  p->more = !end;
  *r->n_out = n;
  if (r->out_ids) *r->out_ids = ids;
  return 0;
}

static void ret_undo(sq_store *s, sq_req *req) {
  sq_ret_req *r = (sq_ret_req *)req;
  struct sq_ret_cursor *c = cursor(s, r->p->kind);
  if (c) c->seq = r->cursor_was; /* the rows are back: look at them again */
  r->p->more = 0;
  if (r->out_ids) {
    free(*r->out_ids);
    *r->out_ids = NULL;
  }
  *r->n_out = 0;
}

static const sq_op ret_op = {ret_run, ret_undo};

int jobq__sq_prune_kind(void *st, jobq_storage_prune *req, char (**out_ids)[JOBQ_ID_SIZE],
                        size_t *n_out) {
  *n_out = 0;
  if (out_ids) *out_ids = NULL;
  req->more = 0;
  if (req->max == 0) return 0;
  sq_ret_req r = {0};
  r.h.op = &ret_op;
  r.h.savepoint = 1; /* deletes several rows */
  r.p = req;
  r.out_ids = out_ids;
  r.n_out = n_out;
  return jobq__sq_submit(st, &r.h);
}
