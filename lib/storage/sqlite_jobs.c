/* The SQLite backend's job rows, on the write connection: inserts, the
 * progress and checkpoints of a running attempt, cancels and pruning.
 * (Claims: sqlite_claim.c; the end of an attempt: sqlite_finish.c.) */
#include "storage/sqlite_int.h"
#include "util/mem.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/dedupe.h"

#define INSERT_HEAD                                                                         \
  "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, max_attempts, created_at, owner, " \
  "payload, dedupe_key, dedupe_ttl) VALUES "
#define INSERT_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define INSERT_MANY 32
/* A job with webhook subscriptions: its own statement, so that the others
 * bind and store exactly what they did before the outbox. */
#define INSERT_HOOKED_HEAD                                                                  \
  "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, max_attempts, created_at, owner, " \
  "payload, dedupe_key, dedupe_ttl, webhooks) VALUES "
#define INSERT_HOOKED_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define INSERT_HOOKED INSERT_HOOKED_HEAD INSERT_HOOKED_ROW

static const char *const sql[WS_COUNT] = {
  [WS_INSERT] = INSERT_HEAD INSERT_ROW,
  [WS_INSERT_HOOKED] = INSERT_HOOKED,
  /* WS_INSERT_MANY: made by jobq__sq_jobs_prepare */
  [WS_DEDUPE_FIND] =
      "SELECT id, state, finished_at, dedupe_ttl FROM jobq_jobs WHERE dedupe_key = ?1 "
      "ORDER BY seq DESC LIMIT 1",
  [WS_FIND] = "SELECT state, attempts, cancel_req FROM jobq_jobs WHERE id = ?1",
  [WS_PROGRESS] =
      "UPDATE jobq_jobs SET progress = ?3, step = coalesce(?4, step) "
      "WHERE id = ?1 AND state = 1 AND attempts = ?2",
  [WS_CHECKPOINT] =
      "UPDATE jobq_jobs SET ck_stage = ?3, ck_output = ?4, progress = ?5, step = coalesce(?6, step) "
      "WHERE id = ?1 AND state = 1 AND attempts = ?2 RETURNING webhooks, started_at",
  [WS_CANCEL_QUEUED] =
      "UPDATE jobq_jobs SET state = 4, finished_at = ?2, error = 'cancelled' WHERE id = ?1 "
      "RETURNING batch, kind, webhooks",
  [WS_CANCEL_RUNNING] = "UPDATE jobq_jobs SET cancel_req = 1 WHERE id = ?1",
  /* Oldest first; no index on finished_at (each would cost every finish):
   * pruning is rare and runs on the writer, off every caller's path. */
  [WS_PRUNE_JOBS] =
      "DELETE FROM jobq_jobs WHERE seq IN (SELECT seq FROM jobq_jobs WHERE state IN (2, 3, 4) "
      "AND finished_at < ?1 AND NOT (state = 2 AND dedupe_key IS NOT NULL AND "
      "CASE WHEN dedupe_ttl < 0 THEN -dedupe_ttl ELSE finished_at + dedupe_ttl END > ?1) "
      /* a job whose webhooks are still to be sent stays */
      "AND (webhooks IS NULL OR NOT EXISTS (SELECT 1 FROM jobq_outbox o WHERE "
      "o.id > jobq_jobs.id || ':' AND o.id < jobq_jobs.id || ';' AND +o.state IN (0, 1))) "
      "ORDER BY seq LIMIT ?2) RETURNING id, webhooks IS NOT NULL",
};

int jobq__sq_jobs_prepare(sq_store *s) {
  int rc = jobq__sq_prepare(s, sql);
  if (rc) return rc;
  /* WS_INSERT_MANY: WS_INSERT with INSERT_MANY rows of values */
  char many[sizeof INSERT_HEAD + INSERT_MANY * sizeof INSERT_ROW];
  size_t n = (size_t)snprintf(many, sizeof many, "%s", INSERT_HEAD);
  for (int i = 0; i < INSERT_MANY; i++)
    n += (size_t)snprintf(many + n, sizeof many - n, "%s%s", i ? "," : "", INSERT_ROW);
  rc = sqlite3_prepare_v3(s->w, many, -1, SQLITE_PREPARE_PERSISTENT, &s->ws[WS_INSERT_MANY], NULL);
  if (rc != SQLITE_OK) return jobq__sq_error(s->w, rc, "cannot prepare a statement", s->path);
  /* WS_INSERT_MANY_HOOKED: the same for jobs with webhook subscriptions */
  char hmany[sizeof INSERT_HOOKED_HEAD + INSERT_MANY * sizeof INSERT_HOOKED_ROW];
  n = (size_t)snprintf(hmany, sizeof hmany, "%s", INSERT_HOOKED_HEAD);
  for (int i = 0; i < INSERT_MANY; i++)
    n += (size_t)snprintf(hmany + n, sizeof hmany - n, "%s%s", i ? "," : "", INSERT_HOOKED_ROW);
  rc = sqlite3_prepare_v3(s->w, hmany, -1, SQLITE_PREPARE_PERSISTENT,
                          &s->ws[WS_INSERT_MANY_HOOKED], NULL);
  return rc == SQLITE_OK ? 0 : jobq__sq_error(s->w, rc, "cannot prepare a statement", s->path);
}

int jobq__sq_finish_miss(sq_store *s, const char *id, int *out_state) {
  sqlite3_stmt *q = s->ws[WS_FIND];
  sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
  int src = sqlite3_step(q);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (src != SQLITE_ROW && src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot read a job", s->path);
  *out_state = src == SQLITE_DONE ? JOBQ_ENOTFOUND : JOBQ_ESTATE;
  return 0;
}

/* ---- insert ---- */

typedef struct sq_insert_req {
  sq_req h;
  jobq_storage_job *const *jobs;
  size_t n;
  const int *force;
  int64_t now;
  int *out_dup;
  const char *const *hooks; /* insert_hooked: the jobs' subscriptions, may be NULL */
  const char *batch_id; /* batch_insert: the batch, else NULL */
  int cap;
} sq_insert_req;

static void bind_job(sqlite3_stmt *st, int base, const jobq_storage_job *j, int64_t now) {
  sqlite3_bind_text(st, base + 1, j->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, base + 2, j->kind, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, base + 3, j->run_at > now ? SQ_SCHEDULED : SQ_DUE);
  sqlite3_bind_int(st, base + 4, j->priority);
  sqlite3_bind_int64(st, base + 5, j->run_at);
  sqlite3_bind_int(st, base + 6, j->max_attempts);
  sqlite3_bind_int64(st, base + 7, j->created_at);
  jobq__sq_bind_text_or_null(st, base + 8, j->owner);
  sqlite3_bind_text(st, base + 9, j->payload, -1, SQLITE_STATIC);
  jobq__sq_bind_text_or_null(st, base + 10, j->dedupe_key);
  sqlite3_bind_int64(st, base + 11, j->dedupe_ttl_ms);
}

/* One job, after its dedupe key (if any) found no live job. */
static int insert_one(sq_store *s, sq_insert_req *r, size_t i) {
  jobq_storage_job *j = r->jobs[i];
  r->out_dup[i] = 0;
  if (j->dedupe_key && !(r->force && r->force[i])) {
    sqlite3_stmt *d = s->ws[WS_DEDUPE_FIND];
    sqlite3_bind_text(d, 1, j->dedupe_key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(d);
    if (rc == SQLITE_ROW) {
      int st = sqlite3_column_int(d, 1);
      int64_t fin = sqlite3_column_int64(d, 2), ttl = sqlite3_column_int64(d, 3);
      int live = SQ_IS_QUEUED(st) || jobq__key_live(st, fin, ttl, r->now);
      if (live) {
        snprintf(j->id, sizeof j->id, "%s", (const char *)sqlite3_column_text(d, 0));
        r->out_dup[i] = 1;
      }
    } else if (rc != SQLITE_DONE) {
      rc = jobq__sq_error(s->w, rc, "cannot look up a dedupe key", s->path);
      sqlite3_reset(d);
      sqlite3_clear_bindings(d);
      return rc;
    }
    sqlite3_reset(d);
    sqlite3_clear_bindings(d);
    if (r->out_dup[i]) return 0;
  }
  int counted = s->n_quotas && j->owner;
  if (counted) {
    int rc = jobq__sq_quota_check(s, j->owner, j->kind, 0, 0);
    if (rc) return rc;
  }
  const char *hooks = r->hooks ? r->hooks[i] : NULL;
  sqlite3_stmt *st = s->ws[hooks ? WS_INSERT_HOOKED : WS_INSERT];
  bind_job(st, 0, j, r->now);
  if (hooks) sqlite3_bind_text(st, 12, hooks, -1, SQLITE_STATIC);
  int rc = jobq__sq_run(s, st, "cannot insert a job");
  if (rc == 0 && counted) rc = jobq__sq_quota_add(s, j->owner, j->kind);
  if (rc == 0)
    jobq__sq_event(s, JOBQ_EVENT_SUBMITTED, JOBQ_QUEUED, j->id, j->kind, 0, NULL, 0, NULL, NULL);
  return rc;
}

int jobq__sq_insert_row(sq_store *s, const jobq_storage_job *j, const char *hooks, int64_t now) {
  sqlite3_stmt *st = s->ws[hooks ? WS_INSERT_HOOKED : WS_INSERT];
  bind_job(st, 0, j, now);
  if (hooks) sqlite3_bind_text(st, 12, hooks, -1, SQLITE_STATIC);
  int rc = jobq__sq_run(s, st, "cannot insert a job");
  if (rc == 0 && s->n_quotas && j->owner) rc = jobq__sq_quota_add(s, j->owner, j->kind);
  if (rc == 0)
    jobq__sq_event(s, JOBQ_EVENT_SUBMITTED, JOBQ_QUEUED, j->id, j->kind, 0, NULL, 0, NULL, NULL);
  return rc;
}

/* Quotas for a run of k jobs that go in as one statement: before it
 * (add 0), each owned job is checked with the run's earlier jobs of its
 * owner pending; after it (add 1), each is counted. */
static int quota_run(sq_store *s, jobq_storage_job *const *jobs, size_t k, int add) {
  if (add) return jobq__sq_quota_add_many(s, jobs, k);
  for (size_t m = 0; m < k; m++) {
    const jobq_storage_job *j = jobs[m];
    if (j->owner == NULL) continue;
    long same_kind = 0, any = 0;
    for (size_t p = 0; p < m; p++) {
      if (jobs[p]->owner == NULL || strcmp(jobs[p]->owner, j->owner) != 0) continue;
      any++;
      if (strcmp(jobs[p]->kind, j->kind) == 0) same_kind++;
    }
    int rc = jobq__sq_quota_check(s, j->owner, j->kind, same_kind, any);
    if (rc) return rc;
  }
  return 0;
}

static int insert_run(sq_store *s, sq_req *req) {
  sq_insert_req *r = (sq_insert_req *)req;
  size_t i = 0;
  while (i < r->n) {
    /* INSERT_MANY jobs in a row without dedupe keys go in one statement
     * (a third of the cost of one statement each): either all without
     * webhooks, or all with. */
    int hooked = r->hooks && r->hooks[i];
    size_t k = 0;
    while (k < INSERT_MANY && i + k < r->n && r->jobs[i + k]->dedupe_key == NULL &&
           (r->hooks && r->hooks[i + k]) == hooked)
      k++;
    if (k < INSERT_MANY) {
      int rc = insert_one(s, r, i++);
      if (rc) return rc;
      continue;
    }
    int rc = s->n_quotas ? quota_run(s, r->jobs + i, k, 0) : 0;
    if (rc) return rc;
    sqlite3_stmt *st = s->ws[hooked ? WS_INSERT_MANY_HOOKED : WS_INSERT_MANY];
    for (size_t m = 0; m < k; m++) {
      bind_job(st, (int)m * (hooked ? 12 : 11), r->jobs[i + m], r->now);
      if (hooked) sqlite3_bind_text(st, (int)m * 12 + 12, r->hooks[i + m], -1, SQLITE_STATIC);
    }
    rc = jobq__sq_run(s, st, "cannot insert jobs");
    if (rc == 0 && s->n_quotas) rc = quota_run(s, r->jobs + i, k, 1);
    if (rc) return rc;
    for (size_t m = 0; m < k; m++) {
      r->out_dup[i + m] = 0;
      jobq__sq_event(s, JOBQ_EVENT_SUBMITTED, JOBQ_QUEUED, r->jobs[i + m]->id,
                     r->jobs[i + m]->kind, 0, NULL, 0, NULL, NULL);
    }
    i += k;
  }
  if (r->batch_id)
    return jobq__sq_batch_members(s, r->batch_id, r->cap, r->jobs, r->n, r->out_dup, r->now);
  return 0;
}

static const sq_op insert_op = {insert_run, NULL};

int jobq__sq_set_quotas(void *st, const jobq_storage_quota *q, size_t n) {
  sq_store *s = st;
  jobq_storage_quota *v = calloc(n ? n : 1, sizeof *v);
  if (v == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  for (size_t i = 0; i < n; i++) {
    v[i].max = q[i].max;
    if (q[i].kind && (v[i].kind = jobq__strdup(q[i].kind)) == NULL) {
      for (size_t k = 0; k < i; k++) free((char *)v[k].kind);
      free(v);
      return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
    }
  }
  /* Set before any write (set_quotas is called right after open); the
   * writer reads it under the same lock that hands it requests. */
  uv_mutex_lock(&s->mu);
  s->quotas = v;
  s->n_quotas = n;
  uv_mutex_unlock(&s->mu);
  return 0;
}

int jobq__sq_insert(void *st, jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                    int *out_dup) {
  sq_insert_req r = {0};
  r.h.op = &insert_op;
  r.h.savepoint = n > 1; /* all or none */
  r.jobs = jobs;
  r.n = n;
  r.force = force;
  r.now = now;
  r.out_dup = out_dup;
  return jobq__sq_submit(st, &r.h);
}

int jobq__sq_batch_insert(void *st, const char *batch_id, int max_running,
                          jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                          int *out_dup) {
  sq_insert_req r = {0};
  r.h.op = &insert_op;
  r.h.savepoint = 1; /* the jobs and the batch: all or none */
  r.jobs = jobs;
  r.n = n;
  r.force = force;
  r.now = now;
  r.out_dup = out_dup;
  r.batch_id = batch_id;
  r.cap = max_running;
  return jobq__sq_submit(st, &r.h);
}

int jobq__sq_insert_hooked(void *st, jobq_storage_job *const *jobs, const char *const *webhooks,
                           size_t n, const int *force, int64_t now, int *out_dup,
                           const char *batch_id, int max_running) {
  int rc = jobq__sq_hooks_check(webhooks, n);
  if (rc) return rc;
  sq_insert_req r = {0};
  r.h.op = &insert_op;
  r.h.savepoint = n > 1 || batch_id != NULL; /* all or none */
  r.jobs = jobs;
  r.n = n;
  r.force = force;
  r.now = now;
  r.out_dup = out_dup;
  r.hooks = webhooks;
  r.batch_id = batch_id;
  r.cap = max_running;
  return jobq__sq_submit(st, &r.h);
}

/* ---- progress ---- */

typedef struct sq_progress_req {
  sq_req h;
  const char *id;
  int attempt;
  int percent;
  const char *step;
} sq_progress_req;

static int progress_run(sq_store *s, sq_req *req) {
  const sq_progress_req *r = (const sq_progress_req *)req;
  sqlite3_stmt *u = s->ws[WS_PROGRESS];
  sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 2, r->attempt);
  sqlite3_bind_int(u, 3, r->percent);
  jobq__sq_bind_text_or_null(u, 4, r->step);
  int rc = jobq__sq_run(s, u, "cannot record progress");
  if (rc == 0 && sqlite3_changes(s->w) > 0)
    jobq__sq_event(s, JOBQ_EVENT_PROGRESS, JOBQ_RUNNING, r->id, NULL, r->percent, r->step,
                   r->attempt, NULL, NULL);
  if (rc == 0 && sqlite3_changes(s->w) == 0) {
    int st = 0;
    rc = jobq__sq_finish_miss(s, r->id, &st); /* gone, or not that attempt */
    if (rc == 0) rc = st;
  }
  return rc;
}

static const sq_op progress_op = {progress_run, NULL};

int jobq__sq_progress(void *st, const char *id, int attempt, int percent, const char *step) {
  sq_progress_req r = {0};
  r.h.op = &progress_op;
  r.id = id;
  r.attempt = attempt;
  r.percent = percent;
  r.step = step;
  return jobq__sq_submit(st, &r.h);
}

/* ---- checkpoint ---- */

typedef struct sq_checkpoint_req {
  sq_req h;
  const char *id;
  int attempt;
  int stage;
  const char *output;
  int progress;
  const char *step;
} sq_checkpoint_req;

static int checkpoint_run(sq_store *s, sq_req *req) {
  const sq_checkpoint_req *r = (const sq_checkpoint_req *)req;
  sqlite3_stmt *u = s->ws[WS_CHECKPOINT];
  sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 2, r->attempt);
  sqlite3_bind_int(u, 3, r->stage);
  sqlite3_bind_text(u, 4, r->output, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 5, r->progress);
  jobq__sq_bind_text_or_null(u, 6, r->step);
  int src = sqlite3_step(u);
  int found = src == SQLITE_ROW;
  char *hooks = NULL; /* the job's webhook subscriptions, if it has any */
  int64_t started = found ? sqlite3_column_int64(u, 1) : 0;
  if (found && sqlite3_column_type(u, 0) != SQLITE_NULL &&
      (hooks = jobq__strdup((const char *)sqlite3_column_text(u, 0))) == NULL) {
    src = SQLITE_NOMEM;
    s->tx_poison = 1;
  }
  while (src == SQLITE_ROW) src = sqlite3_step(u);
  sqlite3_reset(u);
  sqlite3_clear_bindings(u);
  int rc = src == SQLITE_DONE ? 0
           : src == SQLITE_NOMEM ? jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory")
                                 : jobq__sq_error(s->w, src, "cannot store a checkpoint", s->path);
  if (rc == 0 && hooks) rc = jobq__sq_outbox_progress(s, r->id, r->stage, hooks, started);
  free(hooks);
  if (rc == 0 && found)
    jobq__sq_event(s, JOBQ_EVENT_PROGRESS, JOBQ_RUNNING, r->id, NULL, r->progress, r->step,
                   r->attempt, NULL, NULL);
  else if (rc == 0) {
    int st = 0;
    rc = jobq__sq_finish_miss(s, r->id, &st);
    if (rc == 0) rc = st;
  }
  return rc;
}

static const sq_op checkpoint_op = {checkpoint_run, NULL};

int jobq__sq_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                        int progress, const char *step) {
  sq_checkpoint_req r = {0};
  r.h.op = &checkpoint_op;
  r.id = id;
  r.attempt = attempt;
  r.stage = stage;
  r.output = output;
  r.progress = progress;
  r.step = step;
  return jobq__sq_submit(st, &r.h);
}

/* ---- cancel ---- */

typedef struct sq_cancel_req {
  sq_req h;
  const char *id;
  int64_t now;
  int *out_state;
  char **out_kind;
} sq_cancel_req;

static int cancel_run(sq_store *s, sq_req *req) {
  sq_cancel_req *r = (sq_cancel_req *)req;
  sqlite3_stmt *q = s->ws[WS_FIND];
  sqlite3_bind_text(q, 1, r->id, -1, SQLITE_STATIC);
  int src = sqlite3_step(q);
  int state = src == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (src != SQLITE_ROW && src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot read a job", s->path);
  if (src == SQLITE_DONE) return JOBQ_ENOTFOUND;
  int rc = 0;
  if (SQ_IS_QUEUED(state)) {
    sqlite3_stmt *u = s->ws[WS_CANCEL_QUEUED];
    sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, r->now);
    src = sqlite3_step(u);
    char batch[JOBQ_ID_SIZE] = "", kind[65] = ""; /* a kind is at most 64 bytes */
    char *hooks = NULL;
    if (src == SQLITE_ROW && sqlite3_column_type(u, 0) != SQLITE_NULL) {
      snprintf(batch, sizeof batch, "%s", (const char *)sqlite3_column_text(u, 0));
      snprintf(kind, sizeof kind, "%s", (const char *)sqlite3_column_text(u, 1));
    }
    if (src == SQLITE_ROW && sqlite3_column_type(u, 2) != SQLITE_NULL &&
        (hooks = jobq__strdup((const char *)sqlite3_column_text(u, 2))) == NULL) {
      src = SQLITE_NOMEM;
      s->tx_poison = 1;
    }
    while (src == SQLITE_ROW) src = sqlite3_step(u);
    sqlite3_reset(u);
    sqlite3_clear_bindings(u);
    if (src == SQLITE_NOMEM) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
    if (src != SQLITE_DONE) {
      free(hooks);
      return jobq__sq_error(s->w, src, "cannot cancel a job", s->path);
    }
    if (hooks) rc = jobq__sq_outbox_end(s, r->id, JOBQ_CANCELLED, hooks, r->now);
    free(hooks);
    if (batch[0] && rc == 0)
      rc = jobq__sq_batch_member_done(s, batch, r->id, kind, JOBQ_CANCELLED, NULL, r->now);
    *r->out_state = JOBQ_CANCELLED;
  } else if (state == JOBQ_RUNNING) {
    sqlite3_stmt *u = s->ws[WS_CANCEL_RUNNING];
    sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
    rc = jobq__sq_run(s, u, "cannot cancel a job");
    *r->out_state = JOBQ_RUNNING;
  } else {
    *r->out_state = state;
    return JOBQ_ESTATE;
  }
  if (rc == 0 && r->out_kind) {
    /* The kind, for the event: read it back through the write connection. */
    sqlite3_stmt *k = NULL;
    if (sqlite3_prepare_v2(s->w, "SELECT kind FROM jobq_jobs WHERE id = ?1", -1, &k, NULL) == SQLITE_OK) {
      sqlite3_bind_text(k, 1, r->id, -1, SQLITE_STATIC);
      if (sqlite3_step(k) == SQLITE_ROW) *r->out_kind = jobq__strdup((const char *)sqlite3_column_text(k, 0));
    }
    sqlite3_finalize(k);
  }
  if (rc == 0 && *r->out_state == JOBQ_CANCELLED)
    jobq__sq_event(s, JOBQ_EVENT_CANCELLED, JOBQ_CANCELLED, r->id, r->out_kind ? *r->out_kind : NULL,
                   0, NULL, 0, "cancelled", NULL);
  return rc;
}

static void cancel_undo(sq_store *s, sq_req *req) {
  (void)s;
  sq_cancel_req *r = (sq_cancel_req *)req;
  if (r->out_kind && *r->out_kind) {
    free(*r->out_kind);
    *r->out_kind = NULL;
  }
}

static const sq_op cancel_op = {cancel_run, cancel_undo};

int jobq__sq_cancel(void *st, const char *id, int64_t now, int *out_state, char **out_kind) {
  sq_cancel_req r = {0};
  r.h.op = &cancel_op;
  /* The job, its batch and its webhook deliveries go together. */
  r.h.savepoint = 1;
  r.id = id;
  r.now = now;
  r.out_state = out_state;
  r.out_kind = out_kind;
  if (out_kind) *out_kind = NULL;
  return jobq__sq_submit(st, &r.h);
}

/* ---- prune ---- */

typedef struct sq_prune_req {
  sq_req h;
  int64_t before;
  size_t max;
  char (**out_ids)[JOBQ_ID_SIZE];
  size_t *n_out;
} sq_prune_req;

static int prune_run(sq_store *s, sq_req *req) {
  int frc = jobq__sq_outbox_settle(s); /* every announced delivery first: the guard reads them */
  if (frc) return frc;
  sq_prune_req *r = (sq_prune_req *)req;
  sqlite3_stmt *d = s->ws[WS_PRUNE_JOBS];
  sqlite3_bind_int64(d, 1, r->before);
  sqlite3_bind_int64(d, 2, r->max > INT64_MAX ? INT64_MAX : (int64_t)r->max);
  char (*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 0, cap = 0;
  int src;
  while ((src = sqlite3_step(d)) == SQLITE_ROW) {
    /* Its deliveries go with it (all sent or failed: the statement kept
     * jobs with deliveries still to send). The DELETE made every row at its
     * first step, so other statements may run between steps. */
    if (sqlite3_column_int(d, 1)) {
      int rc = jobq__sq_outbox_forget(s, (const char *)sqlite3_column_text(d, 0));
      if (rc) {
        sqlite3_reset(d);
        sqlite3_clear_bindings(d);
        free(ids);
        return rc;
      }
    }
    if (r->out_ids == NULL) {
      n++;
      continue;
    }
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      void *p = realloc(ids, nc * sizeof *ids);
      if (p == NULL) {
        src = SQLITE_NOMEM;
        break;
      }
      ids = p;
      cap = nc;
    }
    const char *id = (const char *)sqlite3_column_text(d, 0);
    snprintf(ids[n++], JOBQ_ID_SIZE, "%s", id ? id : "");
  }
  int rc = src == SQLITE_DONE ? 0
           : src == SQLITE_NOMEM ? jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory")
                                 : jobq__sq_error(s->w, src, "cannot prune jobs", s->path);
  sqlite3_reset(d);
  sqlite3_clear_bindings(d);
  if (rc) {
    free(ids);
    return rc;
  }
  *r->n_out = n;
  if (r->out_ids) *r->out_ids = n ? ids : NULL;
  if (n == 0) free(ids);
  return 0;
}

static void prune_undo(sq_store *s, sq_req *req) {
  (void)s;
  sq_prune_req *r = (sq_prune_req *)req;
  if (r->out_ids) {
    free(*r->out_ids);
    *r->out_ids = NULL;
  }
  *r->n_out = 0;
}

static const sq_op prune_op = {prune_run, prune_undo};

int jobq__sq_prune(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
                   size_t *n_out) {
  sq_prune_req r = {0};
  r.h.op = &prune_op;
  r.h.savepoint = 1; /* deletes several rows */
  r.before = before;
  r.max = max;
  r.out_ids = out_ids;
  r.n_out = n_out;
  *n_out = 0;
  if (out_ids) *out_ids = NULL;
  return jobq__sq_submit(st, &r.h);
}
