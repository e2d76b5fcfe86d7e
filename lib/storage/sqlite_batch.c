/* Batches on the SQLite backend (batch_insert, batch_get, the cap in
 * claims, the end of a batch in finishes, cancels and rescues).
 *
 * jobq_batches holds one row per batch: its cap and counters, which the
 * change that ends a member updates in its own transaction (open - 1, and
 * the outcome's counter), so that exactly one change, in one process, sees
 * open reach 0 and tells of it. Members carry their batch in jobq_jobs.batch
 * and the cap in jobq_jobs.bcap (so that promotion and retries need no
 * join). A member of a capped batch that is due waits in state 6 (held),
 * outside the claim index; a claim first moves held members to due while
 * their batch has fewer than max_running members due or running. Jobs
 * without a batch never touch any of this: a claim pays one probe of the
 * (empty) held index, a finish nothing. */
#include "storage/sqlite_int.h"
#include "storage/batch.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sql[WS_COUNT] = {
  [WS_BATCH_MEMBER] =
      "UPDATE jobq_jobs SET batch = ?1, bcap = ?2, "
      "state = CASE WHEN state = 0 AND ?2 > 0 THEN 6 ELSE state END WHERE id = ?3",
  [WS_BATCH_NEW] =
      "INSERT INTO jobq_batches (id, max_running, total, open, created_at, finished_at) "
      "VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
  [WS_BATCH_HELD] = "SELECT DISTINCT batch FROM jobq_jobs WHERE state = 6",
  [WS_BATCH_SLOTS] =
      "SELECT max_running - (SELECT count(*) FROM jobq_jobs WHERE batch = ?1 AND state IN (0, 1)) "
      "FROM jobq_batches WHERE id = ?1",
  [WS_BATCH_RELEASE] =
      "UPDATE jobq_jobs SET state = 0 WHERE seq IN (SELECT seq FROM jobq_jobs WHERE state = 6 AND "
      "batch = ?1 ORDER BY priority DESC, seq LIMIT ?2)",
  [WS_BATCH_DONE_ONE] =
      "UPDATE jobq_batches SET open = open - 1, succeeded = succeeded + (?2 = 2), "
      "failed = failed + (?2 = 3), cancelled = cancelled + (?2 = 4), "
      "errors = CASE WHEN ?2 = 3 AND json_array_length(errors) < 20 THEN json_insert(errors, "
      "'$[#]', json_object('jobId', ?3, 'error', coalesce(?4, 'failed'))) ELSE errors END, "
      "finished_at = CASE WHEN open = 1 THEN ?5 ELSE finished_at END, "
      "last_job = CASE WHEN open = 1 THEN ?3 ELSE last_job END "
      "WHERE id = ?1 RETURNING open",
  [WS_BATCH_READ] =
      "SELECT id, max_running, total, open, succeeded, failed, cancelled, created_at, "
      "coalesce(finished_at, 0), coalesce(last_job, ''), errors, "
      "(SELECT count(*) FROM jobq_jobs WHERE batch = ?1 AND state = 1) "
      "FROM jobq_batches WHERE id = ?1",
};

int jobq__sq_batch_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

/* ---- reading a batch (the writer's WS_BATCH_READ or a reader's) ---- */

/* Fills out from a row of WS_BATCH_READ; -1 on out of memory. */
static int row_to_batch(sqlite3_stmt *st, jobq_storage_batch *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(st, 0));
  out->max_running = sqlite3_column_int(st, 1);
  out->total = sqlite3_column_int64(st, 2);
  int64_t open = sqlite3_column_int64(st, 3);
  out->succeeded = sqlite3_column_int64(st, 4);
  out->failed = sqlite3_column_int64(st, 5);
  out->cancelled = sqlite3_column_int64(st, 6);
  out->created_at = sqlite3_column_int64(st, 7);
  out->finished_at = sqlite3_column_int64(st, 8);
  snprintf(out->last_job, sizeof out->last_job, "%s", (const char *)sqlite3_column_text(st, 9));
  out->running = sqlite3_column_int64(st, 11);
  out->queued = open - out->running;
  return 0; /* the errors: errors_read */
}

/* The errors column, [{"jobId", "error"}] as json_object wrote it, in the
 * order members failed. */
static int errors_read(sqlite3 *db, const char *id, jobq_storage_batch *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT json_extract(e.value, '$.jobId'), json_extract(e.value, "
                              "'$.error') FROM jobq_batches b, json_each(b.errors) e "
                              "WHERE b.id = ?1 ORDER BY e.key",
                              -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    jobq_storage_batch_error *ne = realloc(out->errors, (size_t)(out->n_errors + 1) * sizeof *ne);
    if (ne == NULL) {
      rc = SQLITE_NOMEM;
      break;
    }
    out->errors = ne;
    jobq_storage_batch_error *e = &ne[out->n_errors];
    memset(e, 0, sizeof *e);
    snprintf(e->job_id, sizeof e->job_id, "%s", (const char *)sqlite3_column_text(st, 0));
    const char *t = (const char *)sqlite3_column_text(st, 1);
    if ((e->error = jobq__strdup(t ? t : "")) == NULL) {
      rc = SQLITE_NOMEM;
      break;
    }
    out->n_errors++;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Reads batch id on db with st (bound here); 0, JOBQ_ENOTFOUND or a code. */
static int batch_read(sqlite3 *db, sqlite3_stmt *st, const char *path, const char *id,
                      jobq_storage_batch *out) {
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  int src = sqlite3_step(st), rc = 0;
  if (src == SQLITE_ROW) {
    if (row_to_batch(st, out) != 0) rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  } else if (src == SQLITE_DONE) {
    rc = JOBQ_ENOTFOUND;
  } else {
    rc = jobq__sq_error(db, src, "cannot read a batch", path);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc == 0 && (src = errors_read(db, id, out)) != SQLITE_OK) {
    rc = jobq__sq_error(db, src, "cannot read a batch's errors", path);
    jobq_storage_batch_clear(out);
  }
  return rc;
}

int jobq__sq_batch_get(void *st, const char *id, jobq_storage_batch *out) {
  sq_store *s = st;
  /* On a reader, like every read; prepared per call: a batch read is
   * rare next to the job reads the readers keep statements for. */
  sq_reader *r = &s->readers[atomic_fetch_add(&s->next_reader, 1) % SQ_READERS];
  uv_mutex_lock(&r->mu);
  sqlite3_stmt *q = NULL;
  int rc = sqlite3_prepare_v2(r->db, sql[WS_BATCH_READ], -1, &q, NULL);
  if (rc != SQLITE_OK) {
    rc = jobq__sq_error(r->db, rc, "cannot read a batch", s->path);
  } else {
    rc = batch_read(r->db, q, s->path, id, out);
  }
  sqlite3_finalize(q);
  uv_mutex_unlock(&r->mu);
  return rc;
}

/* ---- news of a batch that ended: told after its transaction commits ---- */

struct sq_bnotice {
  sq_bnotice *next;
  jobq_storage_event ev;
  char id[JOBQ_ID_SIZE], batch[JOBQ_ID_SIZE];
  char *kind, *summary;
};

static void notice_free(sq_bnotice *n) {
  free(n->kind);
  free(n->summary);
  free(n);
}

size_t jobq__sq_bnotice_mark(sq_store *s) { return s->bn_count; }

void jobq__sq_bnotice_drop(sq_store *s, size_t mark) {
  sq_bnotice **at = &s->bn_head;
  for (size_t i = 0; *at && i < mark; i++) at = &(*at)->next;
  sq_bnotice *n = *at;
  *at = NULL;
  s->bn_count = mark;
  while (n) {
    sq_bnotice *next = n->next;
    notice_free(n);
    n = next;
  }
}

void jobq__sq_bnotice_tell(sq_store *s) {
  sq_bnotice *n = s->bn_head;
  s->bn_head = NULL;
  s->bn_count = 0;
  while (n) {
    sq_bnotice *next = n->next;
    if (s->batch_sink) {
      n->ev.id = n->id;
      n->ev.kind = n->kind;
      n->ev.step = n->batch;
      n->ev.result = n->summary;
      s->batch_sink(s->batch_sink_ud, &n->ev);
    }
    notice_free(n);
    n = next;
  }
}

int jobq__sq_set_batch_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud) {
  sq_store *s = st;
  uv_mutex_lock(&s->mu);
  s->batch_sink = sink;
  s->batch_sink_ud = ud;
  uv_mutex_unlock(&s->mu);
  return 0;
}

/* Batch id is done: other processes hear of it through an event row, this
 * one after the commit. The news is dropped on out of memory (it is news:
 * the batch is done all the same). */
static int ended(sq_store *s, const char *batch, const char *job, const char *kind, int state,
                 int64_t now) {
  jobq_storage_batch b;
  int rc = batch_read(s->w, s->ws[WS_BATCH_READ], s->path, batch, &b);
  if (rc) return rc;
  char *summary = jobq__batch_summary(&b);
  jobq_storage_batch_clear(&b);
  if (summary == NULL) return 0;
  jobq__sq_event(s, JOBQ_EVENT_BATCH_DONE, state, job, kind, 0, batch, 0, NULL, summary);
  sq_bnotice *n = calloc(1, sizeof *n);
  if (n == NULL || (kind && (n->kind = jobq__strdup(kind)) == NULL)) {
    if (n) free(n);
    free(summary);
    return 0;
  }
  n->summary = summary;
  snprintf(n->id, sizeof n->id, "%s", job);
  snprintf(n->batch, sizeof n->batch, "%s", batch);
  n->ev.type = JOBQ_EVENT_BATCH_DONE;
  n->ev.state = state;
  n->ev.time = now;
  sq_bnotice **at = &s->bn_head;
  while (*at) at = &(*at)->next;
  *at = n;
  s->bn_count++;
  return 0;
}

int jobq__sq_batch_member_done(sq_store *s, const char *batch, const char *job, const char *kind,
                               int state, const char *error, int64_t now) {
  sqlite3_stmt *u = s->ws[WS_BATCH_DONE_ONE];
  sqlite3_bind_text(u, 1, batch, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(u, 2, state);
  sqlite3_bind_text(u, 3, job, -1, SQLITE_TRANSIENT);
  jobq__sq_bind_text_or_null(u, 4, error);
  sqlite3_bind_int64(u, 5, now > 0 ? now : 1);
  int src = sqlite3_step(u);
  int64_t open = src == SQLITE_ROW ? sqlite3_column_int64(u, 0) : -1;
  while (src == SQLITE_ROW) src = sqlite3_step(u);
  sqlite3_reset(u);
  sqlite3_clear_bindings(u);
  if (src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot count a batch's member", s->path);
  if (open != 0) return 0;
  char b[JOBQ_ID_SIZE], j[JOBQ_ID_SIZE];
  snprintf(b, sizeof b, "%s", batch);
  snprintf(j, sizeof j, "%s", job);
  return ended(s, b, j, kind, state, now);
}

/* ---- in a claim: held members get their places ---- */

int jobq__sq_batch_fill(sq_store *s) {
  sqlite3_stmt *h = s->ws[WS_BATCH_HELD];
  char (*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 0, cap = 0;
  int src, rc = 0;
  while ((src = sqlite3_step(h)) == SQLITE_ROW) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 8;
      void *p = realloc(ids, nc * sizeof *ids);
      if (p == NULL) {
        rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
        break;
      }
      ids = p;
      cap = nc;
    }
    snprintf(ids[n++], JOBQ_ID_SIZE, "%s", (const char *)sqlite3_column_text(h, 0));
  }
  if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW)
    rc = jobq__sq_error(s->w, src, "cannot find held batch members", s->path);
  sqlite3_reset(h);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    sqlite3_stmt *q = s->ws[WS_BATCH_SLOTS];
    sqlite3_bind_text(q, 1, ids[i], -1, SQLITE_STATIC);
    src = sqlite3_step(q);
    int64_t slots = src == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    if (src != SQLITE_ROW && src != SQLITE_DONE)
      rc = jobq__sq_error(s->w, src, "cannot count a batch's running members", s->path);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (rc || slots <= 0) continue;
    sqlite3_stmt *u = s->ws[WS_BATCH_RELEASE];
    sqlite3_bind_text(u, 1, ids[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, slots);
    rc = jobq__sq_run(s, u, "cannot release held batch members");
  }
  free(ids);
  return rc;
}

/* ---- batch_insert: the jobs as insert stores them, then the batch ---- */

int jobq__sq_batch_members(sq_store *s, const char *batch_id, int cap,
                           jobq_storage_job *const *jobs, size_t n, const int *dup, int64_t now) {
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (dup[i]) continue;
    sqlite3_stmt *u = s->ws[WS_BATCH_MEMBER];
    sqlite3_bind_text(u, 1, batch_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(u, 2, cap);
    sqlite3_bind_text(u, 3, jobs[i]->id, -1, SQLITE_STATIC);
    int rc = jobq__sq_run(s, u, "cannot add a job to its batch");
    if (rc) return rc;
    total++;
  }
  sqlite3_stmt *b = s->ws[WS_BATCH_NEW];
  sqlite3_bind_text(b, 1, batch_id, -1, SQLITE_STATIC);
  sqlite3_bind_int(b, 2, cap);
  sqlite3_bind_int64(b, 3, total);
  sqlite3_bind_int64(b, 4, now);
  if (total == 0) sqlite3_bind_int64(b, 5, now > 0 ? now : 1);
  else sqlite3_bind_null(b, 5);
  int rc = jobq__sq_run(s, b, "cannot store a batch");
  if (rc == 0 && total == 0) rc = ended(s, batch_id, "", NULL, -1, now);
  return rc;
}
