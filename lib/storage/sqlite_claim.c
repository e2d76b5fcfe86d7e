/* Claims on the SQLite backend's write connection: due jobs become running
 * attempts of this store, two statements per kind whatever their number. */
#include "storage/sqlite_int.h"
#include "util/mem.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static const char *const sql[WS_COUNT] = {
  /* A member of a capped batch comes due into held (sqlite_batch.c). */
  [WS_PROMOTE] =
      "UPDATE jobq_jobs SET state = CASE WHEN bcap > 0 THEN 6 ELSE 0 END "
      "WHERE state = 5 AND run_at <= ?1",
  [WS_TOP_KIND] =
      "SELECT seq, priority FROM jobq_jobs WHERE state = 0 AND kind = ?1 "
      "ORDER BY priority DESC, seq LIMIT ?2",
  [WS_KINDS_DUE] = "SELECT DISTINCT kind FROM jobq_jobs WHERE state = 0",
  /* A claim takes the first ?2 due jobs of kind ?1 in two statements per
   * kind, whatever their number: WS_TAKE_READ reads them as they will be
   * once taken, then WS_TAKE takes exactly those (the same index walk, in
   * the same transaction on the one write connection, finds the same rows).
   * ?3: the kind's default max attempts. One set-based statement of each
   * beats one statement per job, and RETURNING, whose temporary table
   * costs more than reading the rows first. attempt_log is left out: a
   * claimed job's log is rebuilt from its attempts. */
  [WS_TAKE_READ] =
      "SELECT seq, id, kind, 1, priority, run_at, attempts + 1, "
      "CASE WHEN max_attempts = 0 THEN ?3 ELSE max_attempts END, 0, cancel_req, created_at, ?4, "
      "NULL, owner, payload, step, result, error, dedupe_key, dedupe_ttl, NULL, "
      "batch IS NOT NULL, webhooks "
      "FROM jobq_jobs WHERE state = 0 AND kind = ?1 ORDER BY priority DESC, seq LIMIT ?2",
  [WS_TAKE] =
      "UPDATE jobq_jobs SET state = 1, attempts = attempts + 1, started_at = ?4, "
      "finished_at = NULL, lease_until = ?5, lease_owner = ?6, progress = 0, "
      "max_attempts = CASE WHEN max_attempts = 0 THEN ?3 ELSE max_attempts END "
      "WHERE seq IN (SELECT seq FROM jobq_jobs WHERE state = 0 AND kind = ?1 "
      "ORDER BY priority DESC, seq LIMIT ?2)",
};

int jobq__sq_claim_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

typedef struct sq_claim_req {
  sq_req h;
  const jobq_storage_claim *claim;
  jobq_storage_job *out; /* claim->max records */
  size_t *n_out;
} sq_claim_req;

typedef struct cand {
  int64_t seq;
  int priority;
  size_t kind; /* index into the kinds asked for */
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Claims up to c->max jobs: the best due jobs of each kind (by the due
 * index, so O(log n) at any depth), merged by priority then age; per kind,
 * read with one SELECT (WS_TAKE_READ) and taken with one UPDATE (WS_TAKE). */
static int claim_run(sq_store *s, sq_req *req) {
  sq_claim_req *r = (sq_claim_req *)req;
  const jobq_storage_claim *c = r->claim;
  *r->n_out = 0;
  if (c->rate_next) *c->rate_next = INT64_MAX;
  int rc = 0;
  /* This runs inside the transaction, perhaps long after the request was
   * made (the write lock, other requests): the time is read again. */
  int64_t now = c->clock ? c->clock(c->clock_ud) : c->now;
  if (now < c->now) now = c->now;
  sqlite3_stmt *p = s->ws[WS_PROMOTE];
  sqlite3_bind_int64(p, 1, now);
  if ((rc = jobq__sq_run(s, p, "cannot promote scheduled jobs"))) return rc;
  if ((rc = jobq__sq_batch_fill(s))) return rc;

  /* The kinds to look at: those asked for, or (any kind) those with due
   * jobs, less the excluded ones. */
  size_t nk = 0;
  char **owned = NULL;
  const char *const *kinds = c->kinds;
  if (kinds) {
    nk = c->n_kinds;
  } else {
    size_t cap = 0;
    sqlite3_stmt *k = s->ws[WS_KINDS_DUE];
    int src;
    while ((src = sqlite3_step(k)) == SQLITE_ROW) {
      const char *name = (const char *)sqlite3_column_text(k, 0);
      int skip = 0;
      for (size_t i = 0; i < c->n_exclude && !skip; i++) skip = strcmp(c->exclude[i], name) == 0;
      if (skip) continue;
      if (nk == cap) {
        cap = cap ? cap * 2 : 8;
        char **no = realloc(owned, cap * sizeof *no);
        if (no == NULL) { rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory"); break; }
        owned = no;
      }
      if ((owned[nk] = jobq__strdup(name)) == NULL) { rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory"); break; }
      nk++;
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = jobq__sq_error(s->w, src, "cannot list due kinds", s->path);
    sqlite3_reset(k);
    kinds = (const char *const *)owned;
  }
  /* How many to take of each kind: with one kind, as many as allowed;
   * with several, the best of each kind's best (by the due index alone)
   * merged by priority then age. */
  cand *cs = NULL;
  size_t nc = 0, *take = NULL;
  int64_t *seqs = NULL;
  /* Rate limits: per kind asked for, its limit (NULL: none) and window. */
  const jobq_storage_rate **rl = NULL;
  sq_rate *rw = NULL;
  int64_t rate_next = INT64_MAX;
  if (rc == 0 && nk) {
    cs = nk > 1 ? malloc(nk * c->max * sizeof *cs) : NULL;
    take = calloc(nk, sizeof *take);
    seqs = malloc(c->max * sizeof *seqs);
    if (c->n_rates) {
      rl = calloc(nk, sizeof *rl);
      rw = calloc(nk, sizeof *rw);
    }
    if ((nk > 1 && cs == NULL) || take == NULL || seqs == NULL ||
        (c->n_rates && (rl == NULL || rw == NULL)))
      rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  }
  for (size_t i = 0; rc == 0 && i < nk; i++) {
    int lim = c->kinds && c->kind_limit && c->kind_limit[i] >= 0 ? c->kind_limit[i] : (int)c->max;
    if (lim > (int)c->max) lim = (int)c->max;
    if (lim <= 0) continue;
    /* A rate-limited kind takes at most the room its window has left. */
    for (size_t k = 0; rl && k < c->n_rates; k++)
      if (strcmp(c->rates[k].kind, kinds[i]) == 0) rl[i] = &c->rates[k];
    if (rl && rl[i]) {
      int64_t room;
      if ((rc = jobq__sq_rate_room(s, rl[i], now, lim, &rw[i], &room))) break;
      if (room == 0) {
        int due = 0;
        if ((rc = jobq__sq_rate_due(s, kinds[i], &due))) break;
        if (due && rw[i].oldest + rl[i]->interval_ms < rate_next)
          rate_next = rw[i].oldest + rl[i]->interval_ms;
        if ((rc = jobq__sq_rate_take(s, rl[i], now, &rw[i], 0))) break; /* what it forgot */
        rl[i] = NULL;
        continue;
      }
      if (room < lim) lim = (int)room;
    }
    if (nk == 1) {
      take[0] = (size_t)lim;
      break;
    }
    sqlite3_stmt *t = s->ws[WS_TOP_KIND];
    sqlite3_bind_text(t, 1, kinds[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(t, 2, lim);
    int src;
    while ((src = sqlite3_step(t)) == SQLITE_ROW) {
      cs[nc].seq = sqlite3_column_int64(t, 0);
      cs[nc].priority = sqlite3_column_int(t, 1);
      cs[nc++].kind = i;
    }
    if (src != SQLITE_DONE) rc = jobq__sq_error(s->w, src, "cannot find the next jobs", s->path);
    sqlite3_reset(t);
    sqlite3_clear_bindings(t);
  }
  if (rc == 0 && nc) {
    qsort(cs, nc, sizeof *cs, cand_cmp);
    for (size_t i = 0; i < nc && i < c->max; i++) take[cs[i].kind]++;
  }
  int dflt = c->default_max_attempts > 0 ? c->default_max_attempts : 3;
  for (size_t i = 0; rc == 0 && i < nk; i++) {
    if (take[i] == 0) continue;
    int ma = dflt;
    for (size_t k = 0; k < c->n_ma; k++)
      if (c->ma_values[k] > 0 && strcmp(c->ma_kinds[k], kinds[i]) == 0) ma = c->ma_values[k];
    sqlite3_stmt *g = s->ws[WS_TAKE_READ];
    sqlite3_bind_text(g, 1, kinds[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(g, 2, (int64_t)take[i]);
    sqlite3_bind_int(g, 3, ma);
    sqlite3_bind_int64(g, 4, now);
    size_t first = *r->n_out;
    int src;
    while ((src = sqlite3_step(g)) == SQLITE_ROW && *r->n_out < c->max) {
      jobq_storage_job *j = &r->out[*r->n_out];
      int64_t sq = 0;
      if (jobq__sq_row_to_job(g, j, &sq, NULL) != 0) {
        rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
        break;
      }
      seqs[(*r->n_out)++] = sq;
      const char *hooks = (const char *)sqlite3_column_text(g, 22); /* NULL: none */
      if ((rc = jobq__sq_remember_claim(s, j->id, sq, kinds[i], hooks, now + c->lease_ms))) break;
      if (sqlite3_column_int(g, 21)) ((sq_claimed *)jobq__map_get(&s->claimed, j->id))->batched = 1;
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW)
      rc = jobq__sq_error(s->w, src, "cannot read the next jobs", s->path);
    sqlite3_reset(g);
    sqlite3_clear_bindings(g);
    if (rc) break;
    sqlite3_stmt *t = s->ws[WS_TAKE];
    sqlite3_bind_text(t, 1, kinds[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(t, 2, (int64_t)(*r->n_out - first));
    sqlite3_bind_int(t, 3, ma);
    sqlite3_bind_int64(t, 4, now);
    sqlite3_bind_int64(t, 5, now + c->lease_ms);
    sqlite3_bind_int64(t, 6, s->token);
    s->lease_dirty = 1;
    if ((rc = jobq__sq_run(s, t, "cannot claim jobs"))) break;
    if ((size_t)sqlite3_changes(s->w) != *r->n_out - first)
      rc = jobq__err(JOBQ_ESTORAGE, "sqlite storage: a claim took %d jobs, not the %zu it read",
                     sqlite3_changes(s->w), *r->n_out - first);
    take[i] = *r->n_out - first; /* what it took, for the rate limit */
  }
  /* Record the starts of the rate-limited kinds; a kind whose window is
   * full while it has due jobs left was held back. */
  for (size_t i = 0; rc == 0 && rl && i < nk; i++) {
    if (rl[i] == NULL) continue;
    if ((rc = jobq__sq_rate_take(s, rl[i], now, &rw[i], (int64_t)take[i]))) break;
    if (rw[i].used < rl[i]->starts) continue;
    /* Full, perhaps only until starts that left the window are forgotten:
     * look exactly. */
    int64_t room;
    int due = 0;
    if ((rc = jobq__sq_rate_room(s, rl[i], now, 1, &rw[i], &room)) ||
        (rc = jobq__sq_rate_take(s, rl[i], now, &rw[i], 0)))
      break;
    if (room == 0 && (rc = jobq__sq_rate_due(s, kinds[i], &due)) == 0 && due &&
        rw[i].oldest + rl[i]->interval_ms < rate_next)
      rate_next = rw[i].oldest + rl[i]->interval_ms;
  }
  if (rc == 0 && c->rate_next) *c->rate_next = rate_next;
  /* Several kinds: back into claim order (priority, then age). */
  for (size_t i = 1; rc == 0 && nk > 1 && i < *r->n_out; i++) {
    jobq_storage_job tmp = r->out[i];
    int64_t ts = seqs[i];
    size_t j = i;
    while (j > 0 && (r->out[j - 1].priority < tmp.priority ||
                     (r->out[j - 1].priority == tmp.priority && seqs[j - 1] > ts))) {
      r->out[j] = r->out[j - 1];
      seqs[j] = seqs[j - 1];
      j--;
    }
    r->out[j] = tmp;
    seqs[j] = ts;
  }
  for (size_t i = 0; rc == 0 && i < *r->n_out; i++)
    jobq__sq_event(s, JOBQ_EVENT_STARTED, JOBQ_RUNNING, r->out[i].id, r->out[i].kind, 0, NULL,
                   r->out[i].attempts, NULL, NULL);
  free(take);
  free(rl);
  free(rw);
  free(seqs);
  free(cs);
  for (size_t i = 0; owned && i < nk; i++) free(owned[i]);
  free(owned);
  return rc;
}

/* The transaction did not commit: the caller gets no jobs, and this store
 * does not run them. */
static void claim_undo(sq_store *s, sq_req *req) {
  sq_claim_req *r = (sq_claim_req *)req;
  for (size_t i = 0; i < *r->n_out; i++) {
    jobq__sq_forget_claim(s, r->out[i].id);
    jobq_storage_job_clear(&r->out[i]);
  }
  *r->n_out = 0;
}

static const sq_op claim_op = {claim_run, claim_undo};

int jobq__sq_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out, size_t *n_out) {
  sq_claim_req r = {0};
  r.h.op = &claim_op;
  r.h.savepoint = 1; /* takes several rows */
  r.claim = req;
  r.out = out;
  r.n_out = n_out;
  *n_out = 0;
  return jobq__sq_submit(st, &r.h);
}
