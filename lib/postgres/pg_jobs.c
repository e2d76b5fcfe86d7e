/* Job rows on the PostgreSQL backend: inserts (dedupe keys under an
 * advisory lock of the key), the progress and checkpoints of a running
 * attempt, cancels and pruning. Claims and ends of attempts: pg_claim.c. */
#include "postgres/pg_int.h"
#include "storage/dedupe.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows in the order given (ORDINALITY), so that seq keeps FIFO order. */
#define INSERT_SQL                                                                             \
  "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, max_attempts, created_at, owner, " \
  "payload, dedupe_key, dedupe_ttl, webhooks) "                                                \
  "SELECT id, kind, 0, pr, ra, ma, ca, ow, pl, dk, dt, wh FROM unnest($1::text[], $2::text[], " \
  "$3::int[], $4::int8[], $5::int[], $6::int8[], $7::text[], $8::text[], $9::text[], "         \
  "$10::int8[], $11::text[]) WITH ORDINALITY AS t(id, kind, pr, ra, ma, ca, ow, pl, dk, dt, wh, " \
  "o) ORDER BY o"

/* With the "submitted" events for other processes' listeners ($12 the
 * channel, $13 this store's token): see PG_EV_INSERT. */
#define INSERT_CTE(EV)                                                                         \
  "WITH ins AS (" INSERT_SQL " RETURNING id, kind), "                                          \
  EV("SELECT $13::int8, id, kind, 1, 0, 0, NULL, 0, NULL, NULL, " PG_NOW_MS " FROM ins WHERE true", \
     "$13::int8", "$12")
#define INSERT_PLAIN_SQL(EV) \
  INSERT_CTE(EV) "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM evn)"
/* The same, and the wake-up ($12) in the same statement: a batch without
 * key lookups is one round trip, committed by itself. */
#define INSERT_NOTIFY_SQL(EV) \
  INSERT_CTE(EV) "SELECT pg_notify($12, ''), (SELECT count(*) FROM ins), (SELECT count(*) FROM evn)"
/* [notify][events] */
static const char *const insert_sql[2][2] = {
  {INSERT_PLAIN_SQL(PG_EV_OFF), INSERT_PLAIN_SQL(PG_EV_ON)},
  {INSERT_NOTIFY_SQL(PG_EV_OFF), INSERT_NOTIFY_SQL(PG_EV_ON)},
};

/* Inserts jobs[0..k) with one statement (with notify: INSERT_NOTIFY_SQL);
 * hooks[i] the webhooks of job i (hooks NULL: none has any; the array
 * parameter is then NULL, which unnest reads as NULLs). */
static int insert_rows(pg_store *s, PGconn *c, jobq_storage_job *const *jobs,
                       const char *const *hooks, size_t k, int notify) {
  const char **tid = calloc(k, sizeof *tid), **tkind = calloc(k, sizeof *tkind),
             **town = calloc(k, sizeof *town), **tpl = calloc(k, sizeof *tpl),
             **tdk = calloc(k, sizeof *tdk);
  int64_t *pr = calloc(k, sizeof *pr), *ra = calloc(k, sizeof *ra), *ma = calloc(k, sizeof *ma),
          *ca = calloc(k, sizeof *ca), *dt = calloc(k, sizeof *dt);
  char *a[13] = {0};
  char tok[24];
  int rc = 0;
  if (!tid || !tkind || !town || !tpl || !tdk || !pr || !ra || !ma || !ca || !dt) {
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    goto out;
  }
  for (size_t i = 0; i < k; i++) {
    const jobq_storage_job *j = jobs[i];
    tid[i] = j->id;
    tkind[i] = j->kind;
    town[i] = j->owner;
    tpl[i] = j->payload;
    tdk[i] = j->dedupe_key;
    pr[i] = j->priority;
    ra[i] = j->run_at;
    ma[i] = j->max_attempts;
    ca[i] = j->created_at;
    dt[i] = j->dedupe_ttl_ms;
  }
  if ((rc = jobq__pg_arr_text(tid, k, &a[0])) || (rc = jobq__pg_arr_text(tkind, k, &a[1])) ||
      (rc = jobq__pg_arr_i64(pr, k, &a[2])) || (rc = jobq__pg_arr_i64(ra, k, &a[3])) ||
      (rc = jobq__pg_arr_i64(ma, k, &a[4])) || (rc = jobq__pg_arr_i64(ca, k, &a[5])) ||
      (rc = jobq__pg_arr_text(town, k, &a[6])) || (rc = jobq__pg_arr_text(tpl, k, &a[7])) ||
      (rc = jobq__pg_arr_text(tdk, k, &a[8])) || (rc = jobq__pg_arr_i64(dt, k, &a[9])) ||
      (hooks && (rc = jobq__pg_arr_text(hooks, k, &a[10]))))
    goto out;
  a[11] = s->channel; /* not freed below */
  a[12] = (char *)jobq__pg_i64(tok, s->token);
  rc = jobq__pg_exec(s, c, insert_sql[notify != 0][jobq__pg_listened(s, c)], 13,
                     (const char *const *)a, "cannot insert jobs", NULL);
  a[11] = a[12] = NULL;
out:
  for (int i = 0; i < 11; i++) free(a[i]);
  free(tid);
  free(tkind);
  free(town);
  free(tpl);
  free(tdk);
  free(pr);
  free(ra);
  free(ma);
  free(ca);
  free(dt);
  return rc;
}

/* A job with a dedupe key (not forced): the key's newest job, under a lock
 * of the key held to the commit, so that two processes submitting the same
 * key at once store one job. *dup = 1 and the id replaced when it lives. */
static int dedupe(pg_store *s, PGconn *c, jobq_storage_job *j, int64_t now, int *dup) {
  const char *p[1] = {j->dedupe_key};
  int rc = jobq__pg_exec(s, c, "SELECT pg_advisory_xact_lock(hashtextextended('jobq:' || $1, 0))",
                         1, p, "cannot lock a dedupe key", NULL);
  if (rc) return rc;
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c,
                     "SELECT id, state, finished_at, dedupe_ttl FROM jobq_jobs "
                     "WHERE dedupe_key = $1 ORDER BY seq DESC LIMIT 1",
                     1, p, "cannot look up a dedupe key", &r);
  if (rc) return rc;
  *dup = 0;
  if (PQntuples(r) == 1 &&
      jobq__key_live((int)jobq__pg_int(r, 0, 1), jobq__pg_int(r, 0, 2), jobq__pg_int(r, 0, 3), now)) {
    snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, 0, 0));
    *dup = 1;
  }
  PQclear(r);
  return 0;
}

int jobq__pg_insert(void *st, jobq_storage_job *const *jobs, size_t n, const int *force,
                    int64_t now, int *out_dup) {
  return jobq__pg_insert_in(st, jobs, NULL, n, force, now, out_dup, NULL, 0);
}

int jobq__pg_insert_in(pg_store *s, jobq_storage_job *const *jobs, const char *const *hooks,
                       size_t n, const int *force, int64_t now, int *out_dup, const char *batch_id,
                       int max_running) {
  if (n == 0 && batch_id == NULL) return 0;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  /* ids as given, to put back when the transaction does not commit */
  char (*ids)[JOBQ_ID_SIZE] = malloc(n ? n * JOBQ_ID_SIZE : 1);
  if (ids == NULL) {
    jobq__pg_release(s, c);
    return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  }
  for (size_t i = 0; i < n; i++) memcpy(ids[i], jobs[i]->id, JOBQ_ID_SIZE);
  size_t plain = 0; /* jobs that need no key lookup */
  while (plain < n && (jobs[plain]->dedupe_key == NULL || (force && force[plain]))) plain++;
  int quota = jobq__pg_quota_applies(s, jobs, n);
  if (plain == n && !quota && batch_id == NULL) {
    /* the common case: one statement, autocommitted, wake-up included */
    rc = insert_rows(s, c, jobs, hooks, n, 1);
    for (size_t m = 0; m < n; m++) out_dup[m] = 0;
    goto out;
  }
  if ((rc = jobq__pg_begin(s, c))) goto out;
  /* The owners' locks first, held to the commit: another process's insert
   * for the same owner counts after this one committed. */
  if (quota && (rc = jobq__pg_quota_lock(s, c, jobs, n))) goto out;
  size_t i = 0;
  while (rc == 0 && i < n) {
    /* a run of jobs that need no key lookup goes in with one statement */
    size_t k = 0;
    while (i + k < n && (jobs[i + k]->dedupe_key == NULL || (force && force[i + k]))) k++;
    if (k) {
      rc = insert_rows(s, c, jobs + i, hooks ? hooks + i : NULL, k, 0);
      for (size_t m = 0; m < k; m++) out_dup[i + m] = 0;
      i += k;
      continue;
    }
    int dup = 0;
    if ((rc = dedupe(s, c, jobs[i], now, &dup))) break;
    out_dup[i] = dup;
    if (!dup) rc = insert_rows(s, c, jobs + i, hooks ? hooks + i : NULL, 1, 0);
    i++;
  }
  /* Idle workers of every process hear of the new jobs (delivered at the
   * commit, or not at all). */
  if (rc == 0 && batch_id)
    rc = jobq__pg_batch_members(s, c, batch_id, max_running, jobs, n, out_dup, now);
  if (rc == 0 && quota) rc = jobq__pg_quota_check(s, c, jobs, n, out_dup);
  const char *p[1] = {s->channel};
  if (rc == 0) rc = jobq__pg_exec(s, c, "SELECT pg_notify($1, '')", 1, p, "cannot notify", NULL);
  if (rc == 0) rc = jobq__pg_commit(s, c);
out:
  if (rc) {
    jobq__pg_rollback(c);
    for (size_t m = 0; m < n; m++) {
      memcpy(jobs[m]->id, ids[m], JOBQ_ID_SIZE);
      out_dup[m] = 0;
    }
  }
  free(ids);
  jobq__pg_release(s, c);
  return rc;
}

/* ---- progress, checkpoint ---- */

/* An UPDATE of a running attempt with parameters p; 0 when it matched,
 * else JOBQ_ENOTFOUND / JOBQ_ESTATE with a sentence. */
static int attempt_update(pg_store *s, const char *const sql[2], int np, const char *const *p,
                          const char *what, const char *id, int attempt) {
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, sql[jobq__pg_listened(s, c)], np, p, what, &r);
  if (rc == 0) {
    int hit = atoi(PQcmdTuples(r)) > 0;
    PQclear(r);
    int miss = 0;
    if (!hit && (rc = jobq__pg_miss(s, c, id, &miss)) == 0)
      rc = miss == JOBQ_ENOTFOUND
               ? jobq__err(JOBQ_ENOTFOUND, "postgres storage: %s: no job %.40s", what, id)
               : jobq__err(JOBQ_ESTATE, "postgres storage: %s: job %.40s is not running attempt %d",
                           what, id, attempt);
  }
  jobq__pg_release(s, c);
  return rc;
}

int jobq__pg_progress(void *st, const char *id, int attempt, int percent, const char *step) {
  pg_store *s = st;
  char a[24], pc[24], tok[24];
  const char *p[6] = {id, jobq__pg_i64(a, attempt), jobq__pg_i64(pc, percent), step, s->channel,
                      jobq__pg_i64(tok, s->token)};
  /* The final SELECT's row count says whether the attempt was running. */
#define PROGRESS_SQL(EV)                                                                       \
  "WITH u AS (UPDATE jobq_jobs SET progress = $3, step = coalesce($4, step) "                  \
  "WHERE id = $1 AND state = 1 AND attempts = $2 RETURNING id, kind, progress, step, attempts), " \
  EV("SELECT $6::int8, id, kind, 3, 1, progress, step, attempts, NULL, NULL, " PG_NOW_MS       \
     " FROM u WHERE true", "$6::int8", "$5")                                                   \
  "SELECT 1 FROM u WHERE (SELECT count(*) FROM evn) >= 0"
  static const char *const sql[2] = {PROGRESS_SQL(PG_EV_OFF), PROGRESS_SQL(PG_EV_ON)};
  return attempt_update(st, sql, 6, p, "cannot record progress", id, attempt);
}

int jobq__pg_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                        int progress, const char *step) {
  pg_store *s = st;
  char a[24], sg[24], pc[24], tok[24];
  const char *p[8] = {id, jobq__pg_i64(a, attempt), jobq__pg_i64(sg, stage), output,
                      jobq__pg_i64(pc, progress), step, s->channel, jobq__pg_i64(tok, s->token)};
  /* With the checkpoint, in the same statement, the progress deliveries
   * of its hooks that ask for progress (storage.h): one pending per job
   * and hook at most, stamped with the attempt's start (a checkpoint is
   * given no time). The final SELECT's row count says whether the attempt
   * was running. */
#define CHECKPOINT_SQL(EV) \
                        "WITH u AS (UPDATE jobq_jobs SET ck_stage = $3, ck_output = $4, " \
                        "progress = $5, step = coalesce($6, step) WHERE id = $1 AND state = 1 AND " \
                        "attempts = $2 RETURNING id, kind, webhooks, started_at, progress, step, " \
                        "attempts), " \
                        "ob AS (INSERT INTO jobq_outbox (id, job_id, endpoint, url, hook, event, " \
                        "flags, created_at, next_at, updated_at) SELECT u.id || ':' || (h.o - 1) " \
                        "|| ':progress:' || $3, u.id, h.v->>'e', h.v->>'u', h.o - 1, 3, " \
                        "CASE WHEN h.v->>'p' = '1' THEN 1 ELSE 0 END, u.started_at, u.started_at, " \
                        "u.started_at FROM u, LATERAL jsonb_array_elements(CASE WHEN " \
                        "jsonb_typeof(u.webhooks::jsonb) = 'array' THEN u.webhooks::jsonb ELSE " \
                        "'[]'::jsonb END) WITH ORDINALITY AS h(v, o) WHERE u.webhooks IS NOT NULL " \
                        "AND h.v ? 'e' AND (coalesce((h.v->>'on')::int, 0) & 8) <> 0 AND NOT " \
                        "EXISTS (SELECT 1 FROM jobq_outbox x WHERE x.job_id = u.id AND " \
                        "x.hook = h.o - 1 AND x.event = 3 AND x.state = 0) " \
                        "ON CONFLICT (id) DO NOTHING), " \
                        EV("SELECT $8::int8, id, kind, 3, 1, progress, step, attempts, " \
                           "NULL, NULL, " PG_NOW_MS " FROM u WHERE true", "$8::int8", "$7") \
                        "SELECT 1 FROM u WHERE (SELECT count(*) FROM evn) >= 0"
  static const char *const sql[2] = {CHECKPOINT_SQL(PG_EV_OFF), CHECKPOINT_SQL(PG_EV_ON)};
  return attempt_update(st, sql, 8, p, "cannot store a checkpoint", id, attempt);
}

/* ---- cancel ---- */

int jobq__pg_cancel(void *st, const char *id, int64_t now, int *out_state, char **out_kind) {
  pg_store *s = st;
  if (out_kind) *out_kind = NULL;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  char nb[24], tok[24];
  int ended_member = 0;
  const char *p[4] = {id, jobq__pg_i64(nb, now), s->channel, jobq__pg_i64(tok, s->token)};
  PGresult *r = NULL;
  /* One statement: the row is locked by the UPDATE, so a claim or finish of
   * another process either comes before (and this sees it running or
   * finished) or after. The CTE's pg_notify wakes no one needlessly: a
   * cancel frees no work, but a worker watching a cancelled queued job's
   * place does not matter. */
  /* A held member of a capped batch (6) is cancelled as a queued one. */
#define CANCEL_SQL(EV) \
                     "WITH old AS (SELECT seq, CASE WHEN state = 6 THEN 0 ELSE state END AS " \
                     "state, kind, batch FROM jobq_jobs WHERE id = $1 FOR UPDATE), " \
                     "u AS (UPDATE jobq_jobs j SET " \
                     "  state = CASE WHEN old.state = 0 THEN 4 ELSE j.state END, " \
                     "  finished_at = CASE WHEN old.state = 0 THEN $2::int8 ELSE j.finished_at END, " \
                     "  error = CASE WHEN old.state = 0 THEN 'cancelled' ELSE j.error END, " \
                     "  cancel_req = (old.state = 1) OR j.cancel_req " \
                     "  FROM old " PG_ORIGIN_FROM("$4::int8") \
                     "  WHERE j.seq = old.seq AND old.state IN (0, 1) " \
                     "  RETURNING j.id, j.kind, j.state, j.webhooks, j.progress, j.step, " \
                     "  j.attempts, $2::int8 AS ob_now), " \
                     PG_OUTBOX_END_CTES("u") ", " \
                     EV("SELECT $4::int8, id, kind, 7, 4, progress, step, attempts, " \
                        "'cancelled', NULL, " PG_NOW_MS " FROM u WHERE state = 4", "$4::int8", "$3") \
                     "SELECT old.state, old.kind, (SELECT state FROM u), old.batch IS NOT NULL, " \
                     "(SELECT count(*) FROM evn) FROM old"
  static const char *const sql[2] = {CANCEL_SQL(PG_EV_OFF), CANCEL_SQL(PG_EV_ON)};
  rc = jobq__pg_exec(s, c, sql[jobq__pg_listened(s, c)], 4, p, "cannot cancel a job", &r);
  if (rc == 0) {
    if (PQntuples(r) == 0) {
      rc = jobq__err(JOBQ_ENOTFOUND, "postgres storage: cannot cancel: no job %.40s", id);
    } else {
      int old = (int)jobq__pg_int(r, 0, 0);
      if (old == JOBQ_QUEUED) *out_state = JOBQ_CANCELLED;
      else if (old == JOBQ_RUNNING) *out_state = JOBQ_RUNNING;
      else {
        *out_state = old;
        rc = jobq__err(JOBQ_ESTATE, "postgres storage: cannot cancel job %.40s: it has finished",
                       id);
      }
      /* a member of a batch: the trigger counted its end; if that ended
       * the batch, this process tells (below: committed, connection back) */
      ended_member = rc == 0 && old == JOBQ_QUEUED && PQgetvalue(r, 0, 3)[0] == 't';
      if (rc == 0 && out_kind && (*out_kind = jobq__pg_text(r, 0, 1)) == NULL)
        rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory"); /* (stored all the same) */
    }
    PQclear(r);
  }
  jobq__pg_release(s, c);
  if (ended_member) {
    char *arr = NULL;
    if (jobq__pg_arr_text(&id, 1, &arr) == 0) jobq__pg_batch_tell(s, arr);
    free(arr);
  }
  return rc;
}

/* ---- prune ---- */

int jobq__pg_prune(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
                   size_t *n_out) {
  pg_store *s = st;
  *n_out = 0;
  if (out_ids) *out_ids = NULL;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  char b[24], m[24];
  const char *p[2] = {jobq__pg_i64(b, before), jobq__pg_i64(m, max > INT64_MAX ? INT64_MAX : (int64_t)max)};
  PGresult *r = NULL;
  /* In a transaction: when the ids cannot be handed back, nothing is
   * deleted. */
  if ((rc = jobq__pg_begin(s, c))) {
    jobq__pg_release(s, c);
    return rc;
  }
  /* A succeeded job whose key lives past `before` stays (compared as
   * ttl > before - finished_at: a "forever" ttl would overflow a sum). */
  /* A job stays while a webhook delivery of it is pending or being sent;
   * a pruned job's deliveries go with it. */
  rc = jobq__pg_exec(s, c,
                     "WITH d AS (DELETE FROM jobq_jobs WHERE seq IN (SELECT seq FROM jobq_jobs j "
                     "WHERE state IN (2, 3, 4) AND finished_at < $1 AND NOT (state = 2 AND "
                     "dedupe_key IS NOT NULL AND CASE WHEN dedupe_ttl < 0 THEN -dedupe_ttl > $1 "
                     "ELSE dedupe_ttl > $1 - finished_at END) AND NOT (j.webhooks IS NOT NULL AND "
                     "EXISTS (SELECT 1 FROM jobq_outbox o WHERE o.job_id = j.id AND "
                     "o.state IN (0, 1))) ORDER BY seq LIMIT $2) RETURNING id, webhooks), "
                     "od AS (DELETE FROM jobq_outbox o USING d WHERE d.webhooks IS NOT NULL AND "
                     "o.job_id = d.id) SELECT id FROM d",
                     2, p, "cannot prune jobs", &r);
  if (rc == 0) {
    size_t n = (size_t)PQntuples(r);
    if (out_ids && n) {
      char (*ids)[JOBQ_ID_SIZE] = malloc(n * JOBQ_ID_SIZE);
      if (ids == NULL) {
        rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
      } else {
        for (size_t i = 0; i < n; i++) snprintf(ids[i], JOBQ_ID_SIZE, "%s", PQgetvalue(r, (int)i, 0));
        *out_ids = ids;
      }
    }
    PQclear(r);
    if (rc == 0 && (rc = jobq__pg_commit(s, c)) == 0) *n_out = n;
    if (rc && out_ids) {
      free(*out_ids);
      *out_ids = NULL;
    }
  }
  if (rc) jobq__pg_rollback(c);
  jobq__pg_release(s, c);
  return rc;
}
