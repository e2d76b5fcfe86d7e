/* Rate limits on the SQLite backend (jobq_storage_claim.rates): a sliding
 * window log of starts per kind, shared by every process on the file.
 *
 * jobq_rate_log holds one row per kind and millisecond in which a claim
 * took jobs of the kind (n: how many), so a claim of a whole batch adds one
 * row, not one per job; jobq_rate keeps per kind the sum of those rows
 * (used) and the oldest row's time, so that a claim reads one row to learn
 * the room left. Rows that left the window count until they are deleted
 * (so the room is never overstated), which happens when the answer depends
 * on them or once they are a whole interval old (jobq__sq_rate_room): each
 * row is deleted once, O(1) a claim amortised, and a limit that never
 * binds costs a claim three statements.
 * docs/architecture.md, "Rate limits", says why a log and not a token
 * bucket. Everything runs inside the claim's transaction on the write
 * connection, so two processes cannot both take the window's last place;
 * a claim that does not commit takes its rows back with it. */
#include "storage/sqlite_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>

#include <stdint.h>

static const char *const sql[WS_COUNT] = {
  [WS_RATE_GET] = "SELECT used, oldest FROM jobq_rate WHERE kind = ?1",
  [WS_RATE_EXPIRED] = "SELECT total(n) FROM jobq_rate_log WHERE kind = ?1 AND at <= ?2",
  [WS_RATE_FORGET] = "DELETE FROM jobq_rate_log WHERE kind = ?1 AND at <= ?2",
  [WS_RATE_OLDEST] = "SELECT at FROM jobq_rate_log WHERE kind = ?1 ORDER BY at LIMIT 1",
  [WS_RATE_LOG] =
      "INSERT INTO jobq_rate_log (kind, at, n) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (kind, at) DO UPDATE SET n = n + excluded.n",
  [WS_RATE_SET] =
      "INSERT INTO jobq_rate (kind, used, oldest) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (kind) DO UPDATE SET used = excluded.used, oldest = excluded.oldest",
  [WS_RATE_DUE] = "SELECT 1 FROM jobq_jobs WHERE state = 0 AND kind = ?1 LIMIT 1",
  /* JOBQ_OUTCOME_DEFER: as a release (the attempt is not counted, and had
   * no entry in attempt_log yet), but at ?4 and with its reason; a job that
   * was meant to stop ends cancelled instead. ?5: its state when queued. */
  [WS_DEFER_JOB] =
      "UPDATE jobq_jobs SET state = CASE WHEN cancel_req THEN 4 WHEN ?5 = 0 AND bcap > 0 THEN 6 "
      "ELSE ?5 END, "
      "attempts = CASE WHEN cancel_req THEN attempts ELSE attempts - 1 END, "
      "error = CASE WHEN cancel_req THEN 'cancelled' ELSE ?6 END, "
      "finished_at = CASE WHEN cancel_req THEN ?2 ELSE finished_at END, "
      "attempt_log = CASE WHEN cancel_req THEN json_insert(coalesce(attempt_log, '[]'), '$[#]', "
      "json_array(started_at, ?2, 'cancelled')) ELSE attempt_log END, "
      "run_at = CASE WHEN cancel_req THEN run_at ELSE ?4 END, lease_until = NULL "
      "WHERE id = ?1 AND state = 1 AND attempts = ?3 RETURNING state, kind, batch, webhooks",
};

int jobq__sq_rate_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

/* Runs st (bound by the caller) to its first row: *a and *b its first two
 * columns (unchanged without a row), *found whether there was one. */
static int row2(sq_store *s, sqlite3_stmt *st, int64_t *a, int64_t *b, int *found) {
  int rc = sqlite3_step(st);
  if (found) *found = rc == SQLITE_ROW;
  if (rc == SQLITE_ROW) {
    if (a) *a = sqlite3_column_int64(st, 0);
    if (b) *b = sqlite3_column_int64(st, 1);
  }
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
                                             : jobq__sq_error(s->w, rc, "cannot read a rate limit's window", s->path);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

int jobq__sq_rate_room(sq_store *s, const jobq_storage_rate *r, int64_t now, int64_t want,
                       sq_rate *w, int64_t *room) {
  sqlite3_stmt *g = s->ws[WS_RATE_GET];
  w->used = 0;
  w->oldest = INT64_MAX;
  w->dirty = 0;
  sqlite3_bind_text(g, 1, r->kind, -1, SQLITE_STATIC);
  int rc = row2(s, g, &w->used, &w->oldest, NULL);
  if (rc) return rc;
  int64_t edge = now - r->interval_ms; /* rows at or before it left the window */
  /* Rows that left the window still count in used until they are deleted,
   * so the room is never overstated. They are deleted when the answer
   * depends on it (want does not fit), or else once they are a whole
   * interval old, so that a limit that never binds deletes a batch of rows
   * once per interval rather than a row in every claim. */
  if (w->oldest <= edge && (w->used + want > r->starts || w->oldest <= edge - r->interval_ms)) {
    int64_t gone = 0;
    sqlite3_stmt *e = s->ws[WS_RATE_EXPIRED], *f = s->ws[WS_RATE_FORGET], *o = s->ws[WS_RATE_OLDEST];
    sqlite3_bind_text(e, 1, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(e, 2, edge);
    if ((rc = row2(s, e, &gone, NULL, NULL))) return rc;
    sqlite3_bind_text(f, 1, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(f, 2, edge);
    if ((rc = jobq__sq_run(s, f, "cannot forget a rate limit's old starts"))) return rc;
    w->used -= gone;
    w->oldest = INT64_MAX;
    sqlite3_bind_text(o, 1, r->kind, -1, SQLITE_STATIC);
    if ((rc = row2(s, o, &w->oldest, NULL, NULL))) return rc;
    if (w->oldest == INT64_MAX) w->used = 0;
    w->dirty = 1;
  }
  *room = w->used >= r->starts ? 0 : r->starts - w->used;
  return 0;
}

int jobq__sq_rate_due(sq_store *s, const char *kind, int *out) {
  sqlite3_stmt *d = s->ws[WS_RATE_DUE];
  sqlite3_bind_text(d, 1, kind, -1, SQLITE_STATIC);
  return row2(s, d, NULL, NULL, out);
}

int jobq__sq_defer(sq_store *s, const jobq_storage_finish *f, int *out_state) {
  sqlite3_stmt *u = s->ws[WS_DEFER_JOB];
  sqlite3_bind_text(u, 1, f->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(u, 2, f->now);
  sqlite3_bind_int(u, 3, f->attempt);
  sqlite3_bind_int64(u, 4, f->run_at);
  sqlite3_bind_int(u, 5, f->run_at > f->now ? SQ_SCHEDULED : SQ_DUE);
  sqlite3_bind_text(u, 6, f->error ? f->error : "deferred", -1, SQLITE_STATIC);
  int src = sqlite3_step(u);
  int st = src == SQLITE_ROW ? sqlite3_column_int(u, 0) : -1;
  /* A member of a batch that a cancel ended here: its batch counts it. */
  char batch[JOBQ_ID_SIZE] = "", kind[65] = ""; /* a kind is at most 64 bytes */
  char *hooks = NULL; /* a cancel ended it: its webhooks, if any */
  if (st == JOBQ_CANCELLED && sqlite3_column_type(u, 3) != SQLITE_NULL &&
      (hooks = jobq__strdup((const char *)sqlite3_column_text(u, 3))) == NULL)
    src = SQLITE_NOMEM;
  if (st == JOBQ_CANCELLED && sqlite3_column_type(u, 2) != SQLITE_NULL) {
    snprintf(batch, sizeof batch, "%s", (const char *)sqlite3_column_text(u, 2));
    snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(u, 1));
  }
  if (st >= 0) {
    int pub = st == JOBQ_CANCELLED ? JOBQ_CANCELLED : JOBQ_QUEUED;
    jobq__sq_event(s, pub == JOBQ_CANCELLED ? JOBQ_EVENT_CANCELLED : JOBQ_EVENT_RETRYING, pub, f->id,
                   (const char *)sqlite3_column_text(u, 1), f->progress, f->step, f->attempt,
                   pub == JOBQ_CANCELLED ? "cancelled" : (f->error ? f->error : "deferred"), NULL);
  }
  while (src == SQLITE_ROW) src = sqlite3_step(u);
  sqlite3_reset(u);
  sqlite3_clear_bindings(u);
  if (src == SQLITE_NOMEM) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  if (src != SQLITE_DONE) {
    free(hooks);
    return jobq__sq_error(s->w, src, "cannot defer a job", s->path);
  }
  if (st < 0) return jobq__sq_finish_miss(s, f->id, out_state);
  if (hooks) {
    int rc = jobq__sq_outbox_end(s, f->id, JOBQ_CANCELLED, hooks, f->now);
    free(hooks);
    if (rc) return rc;
  }
  if (batch[0]) {
    int rc = jobq__sq_batch_member_done(s, batch, f->id, kind, JOBQ_CANCELLED, NULL, f->now);
    if (rc) return rc;
  }
  *out_state = st == JOBQ_CANCELLED ? JOBQ_CANCELLED : JOBQ_QUEUED;
  return 0;
}

int jobq__sq_rate_take(sq_store *s, const jobq_storage_rate *r, int64_t now, sq_rate *w,
                       int64_t taken) {
  int rc;
  if (taken > 0) {
    sqlite3_stmt *l = s->ws[WS_RATE_LOG];
    sqlite3_bind_text(l, 1, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(l, 2, now);
    sqlite3_bind_int64(l, 3, taken);
    if ((rc = jobq__sq_run(s, l, "cannot record a rate limit's starts"))) return rc;
    w->used += taken;
    if (now < w->oldest) w->oldest = now;
    w->dirty = 1;
  }
  if (!w->dirty) return 0;
  sqlite3_stmt *u = s->ws[WS_RATE_SET];
  sqlite3_bind_text(u, 1, r->kind, -1, SQLITE_STATIC);
  sqlite3_bind_int64(u, 2, w->used);
  sqlite3_bind_int64(u, 3, w->oldest);
  return jobq__sq_run(s, u, "cannot record a rate limit's starts");
}
