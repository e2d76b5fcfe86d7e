/* The end of an attempt on the SQLite backend's write connection: finish
 * (succeeded, failed, retry, cancelled, release, defer) of one or more attempts,
 * waited for or asynchronous. A success of a job this store claimed is one
 * UPDATE by rowid; anything else takes the general statement. */
#include "storage/sqlite_int.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/state.h"

#include <stdlib.h>
#include <string.h>

static const char *const sql[WS_COUNT] = {
  /* One statement applies an outcome, unless a cancel was requested: then
   * the job ends cancelled. Failed attempts are appended to attempt_log. */
  [WS_FINISH] =
      "UPDATE jobq_jobs SET "
      "state = CASE WHEN cancel_req THEN 4 WHEN ?2 = 0 AND bcap > 0 THEN 6 ELSE ?2 END, "
      "run_at = CASE WHEN cancel_req THEN run_at ELSE coalesce(?3, run_at) END, "
      "result = CASE WHEN cancel_req THEN result ELSE coalesce(?4, result) END, "
      "error = CASE WHEN cancel_req THEN coalesce(?5, 'cancelled') ELSE coalesce(?5, error) END, "
      "progress = ?6, step = coalesce(?7, step), "
      "finished_at = CASE WHEN cancel_req THEN ?9 ELSE ?8 END, lease_until = NULL, "
      "attempt_log = CASE WHEN cancel_req OR ?5 IS NOT NULL THEN json_insert(coalesce(attempt_log, "
      "'[]'), '$[#]', json_array(started_at, ?9, CASE WHEN cancel_req THEN coalesce(?5, "
      "'cancelled') ELSE ?5 END)) ELSE attempt_log END "
      "WHERE id = ?1 AND state = 1 AND attempts = ?10 RETURNING state, kind, batch, error, webhooks",
  /* A success of a job this store claimed, found by seq; anything else
   * (a cancel asked for meanwhile, another attempt) goes to WS_FINISH. Its
   * webhooks, if any, were read by the claim (they never change). */
  [WS_FINISH_FAST] =
      "UPDATE jobq_jobs SET state = 2, result = ?2, progress = 100, step = coalesce(?3, step), "
      "finished_at = ?4, lease_until = NULL "
      "WHERE seq = ?1 AND id = ?5 AND state = 1 AND attempts = ?6 AND cancel_req = 0",
  /* A released job that was meant to stop ends cancelled instead. */
  [WS_RELEASE_JOB] =
      "UPDATE jobq_jobs SET state = CASE WHEN cancel_req THEN 4 WHEN bcap > 0 THEN 6 ELSE 0 END, "
      "attempts = CASE WHEN cancel_req THEN attempts ELSE attempts - 1 END, "
      "error = CASE WHEN cancel_req THEN 'cancelled' ELSE error END, "
      "finished_at = CASE WHEN cancel_req THEN ?2 ELSE finished_at END, "
      "attempt_log = CASE WHEN cancel_req THEN json_insert(coalesce(attempt_log, '[]'), '$[#]', "
      "json_array(started_at, ?2, 'cancelled')) ELSE attempt_log END, "
      "run_at = ?2, lease_until = NULL "
      "WHERE id = ?1 AND state = 1 AND attempts = ?3 RETURNING state, kind, batch, webhooks",
};

/* The job's webhook subscriptions from column i of a RETURNING row that
 * ended it in state st: a malloc'ed copy in *out (NULL when it has none or
 * st is not terminal); -1 on out of memory. */
static int hooks_of(sqlite3_stmt *u, int i, int st, char **out) {
  *out = NULL;
  if (st < JOBQ_SUCCEEDED || st > JOBQ_CANCELLED || sqlite3_column_type(u, i) == SQLITE_NULL)
    return 0;
  return (*out = jobq__strdup((const char *)sqlite3_column_text(u, i))) ? 0 : -1;
  /* (the caller's out-of-memory path poisons the transaction: the job's
   * end is written, its deliveries could not be) */
}

int jobq__sq_finish_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

typedef struct sq_finish_req {
  sq_req h;
  const jobq_storage_finish *fin;
  size_t n;
  int *out_state;
  /* finish_async: called with the outcome once the transaction ended */
  void (*done)(void *ud, int rc, const int *out_state);
  void *ud;
} sq_finish_req;

/* WS_FINISH_FAST: 1 if it applied, 0 if the general statement must. */
static int finish_fast(sq_store *s, const jobq_storage_finish *f, const sq_claimed *e, int *out_state,
                       int *rc) {
  sqlite3_stmt *u = s->ws[WS_FINISH_FAST];
  sqlite3_bind_int64(u, 1, e->seq);
  sqlite3_bind_text(u, 2, f->result ? f->result : "null", -1, SQLITE_STATIC);
  jobq__sq_bind_text_or_null(u, 3, f->step);
  sqlite3_bind_int64(u, 4, f->now);
  sqlite3_bind_text(u, 5, f->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 6, f->attempt);
  if ((*rc = jobq__sq_run(s, u, "cannot finish a job")) || sqlite3_changes(s->w) == 0) return *rc != 0;
  /* The deliveries its success adds, in the same transaction. */
  if (e->hooks && (*rc = jobq__sq_outbox_end(s, f->id, JOBQ_SUCCEEDED, e->hooks, f->now)) != 0)
    return 1;
  *out_state = JOBQ_SUCCEEDED;
  jobq__sq_event(s, JOBQ_EVENT_SUCCEEDED, JOBQ_SUCCEEDED, f->id, e->kind, 100, f->step, f->attempt,
                 NULL, f->result ? f->result : "null");
  return 1;
}

static int finish_general(sq_store *s, const jobq_storage_finish *f, int *out_state) {
  if (f->outcome == JOBQ_OUTCOME_DEFER) return jobq__sq_defer(s, f, out_state); /* sqlite_rate.c */
  if (f->outcome == JOBQ_OUTCOME_RELEASE) {
    sqlite3_stmt *u = s->ws[WS_RELEASE_JOB];
    sqlite3_bind_text(u, 1, f->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, f->now);
    sqlite3_bind_int(u, 3, f->attempt);
    int src = sqlite3_step(u);
    int st = src == SQLITE_ROW ? sqlite3_column_int(u, 0) : -1;
    char batch[JOBQ_ID_SIZE] = "", kind[65] = "";
    char *hooks = NULL;
    if (st >= 0 && hooks_of(u, 3, st, &hooks) != 0) {
      src = SQLITE_NOMEM;
      s->tx_poison = 1;
    }
    if (st == JOBQ_CANCELLED) {
      jobq__sq_event(s, JOBQ_EVENT_CANCELLED, JOBQ_CANCELLED, f->id,
                     (const char *)sqlite3_column_text(u, 1), f->progress, f->step, f->attempt,
                     "cancelled", NULL);
      if (sqlite3_column_type(u, 2) != SQLITE_NULL) {
        snprintf(batch, sizeof batch, "%s", (const char *)sqlite3_column_text(u, 2));
        snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(u, 1));
      }
    }
    while (src == SQLITE_ROW) src = sqlite3_step(u);
    sqlite3_reset(u);
    sqlite3_clear_bindings(u);
    if (src == SQLITE_NOMEM) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
    if (src != SQLITE_DONE) {
      free(hooks);
      return jobq__sq_error(s->w, src, "cannot release a job", s->path);
    }
    if (st < 0) return jobq__sq_finish_miss(s, f->id, out_state);
    if (hooks) {
      int rc = jobq__sq_outbox_end(s, f->id, st, hooks, f->now);
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
  const char *err = f->outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : f->error;
  if (f->outcome == JOBQ_OUTCOME_CANCELLED && err == NULL) err = "cancelled";
  int new_state;
  switch (f->outcome) {
    case JOBQ_OUTCOME_SUCCEEDED: new_state = JOBQ_SUCCEEDED; break;
    case JOBQ_OUTCOME_FAILED: new_state = JOBQ_FAILED; break;
    case JOBQ_OUTCOME_RETRY: new_state = f->run_at > f->now ? SQ_SCHEDULED : SQ_DUE; break;
    default: new_state = JOBQ_CANCELLED; break;
  }
  if (err == NULL && f->outcome != JOBQ_OUTCOME_SUCCEEDED) err = "failed";
  sqlite3_stmt *u = s->ws[WS_FINISH];
  sqlite3_bind_text(u, 1, f->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 2, new_state);
  if (f->outcome == JOBQ_OUTCOME_RETRY) sqlite3_bind_int64(u, 3, f->run_at);
  else sqlite3_bind_null(u, 3);
  if (f->outcome == JOBQ_OUTCOME_SUCCEEDED) sqlite3_bind_text(u, 4, f->result ? f->result : "null", -1, SQLITE_STATIC);
  else sqlite3_bind_null(u, 4);
  jobq__sq_bind_text_or_null(u, 5, err);
  sqlite3_bind_int(u, 6, f->outcome == JOBQ_OUTCOME_SUCCEEDED ? 100 : f->progress);
  jobq__sq_bind_text_or_null(u, 7, f->step);
  if (f->outcome == JOBQ_OUTCOME_RETRY) sqlite3_bind_null(u, 8);
  else sqlite3_bind_int64(u, 8, f->now);
  sqlite3_bind_int64(u, 9, f->now);
  sqlite3_bind_int(u, 10, f->attempt);
  int src = sqlite3_step(u);
  int st = src == SQLITE_ROW ? sqlite3_column_int(u, 0) : -1;
  char batch[JOBQ_ID_SIZE] = "", kind[65] = "";
  char *berr = NULL, *hooks = NULL;
  if (st >= 0 && hooks_of(u, 4, st, &hooks) != 0) {
    s->tx_poison = 1;
    sqlite3_reset(u);
    sqlite3_clear_bindings(u);
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  }
  if (st >= 0 && !SQ_IS_QUEUED(st) && sqlite3_column_type(u, 2) != SQLITE_NULL) {
    snprintf(batch, sizeof batch, "%s", (const char *)sqlite3_column_text(u, 2));
    snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(u, 1));
    const char *e = (const char *)sqlite3_column_text(u, 3);
    if (st == JOBQ_FAILED && e && (berr = jobq__strdup(e)) == NULL) {
      free(hooks);
      sqlite3_reset(u);
      sqlite3_clear_bindings(u);
      return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
    }
  }
  if (st >= 0 && s->share) {
    int pub = SQ_IS_QUEUED(st) ? JOBQ_QUEUED : st;
    jobq__sq_event(s, jobq__state_end_event(pub), pub, f->id,
                   (const char *)sqlite3_column_text(u, 1), pub == JOBQ_SUCCEEDED ? 100 : f->progress, f->step, f->attempt,
                   pub == JOBQ_SUCCEEDED ? NULL : (pub == JOBQ_CANCELLED && !err ? "cancelled" : err),
                   pub == JOBQ_SUCCEEDED ? (f->result ? f->result : "null") : NULL);
  }
  while (src == SQLITE_ROW) src = sqlite3_step(u);
  sqlite3_reset(u);
  sqlite3_clear_bindings(u);
  if (src != SQLITE_DONE) {
    free(berr);
    free(hooks);
    return jobq__sq_error(s->w, src, "cannot finish a job", s->path);
  }
  if (st < 0) return jobq__sq_finish_miss(s, f->id, out_state);
  if (hooks) {
    int rc = jobq__sq_outbox_end(s, f->id, st, hooks, f->now);
    free(hooks);
    if (rc) {
      free(berr);
      return rc;
    }
  }
  if (batch[0]) {
    int rc = jobq__sq_batch_member_done(s, batch, f->id, kind, st, berr, f->now);
    free(berr);
    if (rc) return rc;
  }
  *out_state = SQ_IS_QUEUED(st) ? JOBQ_QUEUED : st;
  return 0;
}

static int finish_one(sq_store *s, const jobq_storage_finish *f, int *out_state) {
  const sq_claimed *e = jobq__map_get(&s->claimed, f->id);
  int rc = 0;
  if (e && !e->batched && f->outcome == JOBQ_OUTCOME_SUCCEEDED &&
      finish_fast(s, f, e, out_state, &rc)) {
    if (rc == 0) jobq__sq_forget_claim(s, f->id);
    return rc;
  }
  rc = finish_general(s, f, out_state);
  if (rc == 0 && e) jobq__sq_forget_claim(s, f->id);
  return rc;
}

static int finish_run(sq_store *s, sq_req *req) {
  sq_finish_req *r = (sq_finish_req *)req;
  for (size_t i = 0; i < r->n; i++) {
    int rc = finish_one(s, &r->fin[i], &r->out_state[i]);
    if (rc) return rc;
  }
  return 0;
}

static const sq_op finish_op = {finish_run, NULL};

int jobq__sq_finish(void *st, const jobq_storage_finish *f, size_t n, int *out_state) {
  sq_finish_req r = {0};
  r.h.op = &finish_op;
  r.h.savepoint = n > 1; /* all or nothing */
  r.fin = f;
  r.n = n;
  r.out_state = out_state;
  return jobq__sq_submit(st, &r.h);
}

static void finish_answer(sq_req *req) {
  sq_finish_req *r = (sq_finish_req *)req;
  r->done(r->ud, r->h.rc, r->out_state);
  free(r);
}

int jobq__sq_finish_async(void *st, const jobq_storage_finish *f, size_t n,
                          void (*done)(void *ud, int rc, const int *out_state), void *ud) {
  /* One block: the request, its copy of f, the answers and the strings. */
  size_t strs = 0;
  for (size_t i = 0; i < n; i++) {
    strs += strlen(f[i].id) + 1;
    if (f[i].result) strs += strlen(f[i].result) + 1;
    if (f[i].error) strs += strlen(f[i].error) + 1;
    if (f[i].step) strs += strlen(f[i].step) + 1;
  }
  size_t head = sizeof(sq_finish_req) + n * (sizeof(jobq_storage_finish) + sizeof(int));
  char *mem = malloc(head + strs);
  if (mem == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  sq_finish_req *r = (sq_finish_req *)mem;
  memset(r, 0, sizeof *r);
  jobq_storage_finish *fc = (jobq_storage_finish *)(mem + sizeof(sq_finish_req));
  int *states = (int *)(fc + n);
  char *p = mem + head;
  for (size_t i = 0; i < n; i++) {
    fc[i] = f[i];
    const char **fields[] = {&fc[i].id, &fc[i].result, &fc[i].error, &fc[i].step};
    for (size_t k = 0; k < 4; k++) {
      if (*fields[k] == NULL) continue;
      size_t len = strlen(*fields[k]) + 1;
      memcpy(p, *fields[k], len);
      *fields[k] = p;
      p += len;
    }
  }
  r->h.op = &finish_op;
  r->h.savepoint = n > 1;
  r->h.answer = finish_answer;
  r->fin = fc;
  r->n = n;
  r->out_state = states;
  r->done = done;
  r->ud = ud;
  jobq__sq_submit_async(st, &r->h);
  return 0;
}
