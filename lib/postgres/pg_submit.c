/* jobq_pg_submit: the transactional enqueue. The job (and its "submitted"
 * event, while a queue listens) is inserted on the
 * host's own connection, inside the transaction the host has open, so that
 * it exists exactly when the host's own writes do: committed together, or
 * rolled back together (the "outbox" a host otherwise builds by hand). Its
 * pg_notify is sent in the same transaction, so idle workers wake at the
 * host's COMMIT and never for a job that was rolled back.
 *
 * The statements run inside a SAVEPOINT: a refusal or a failed statement
 * leaves the host's transaction as it was (nothing written), not aborted. */
#include "postgres/pg_int.h"
#include "core/submit_detached.h"
#include "jobq/postgres.h"
#include "storage/dedupe.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FN "jobq_pg_submit"

static int64_t wall_ms(void) {
  /* the default clock of a queue (jobq_options_set_clock unset) */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int schema_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 48) return 0;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      return 0;
  return 1;
}

/* Runs one statement; a failure becomes a code with a sentence naming the
 * schema (a missing queue table is JOBQ_ENOTFOUND: no queue was ever opened
 * on that schema). */
static int run(pg_store *s, PGconn *c, const char *sql, int n, const char *const *p,
               const char *what, PGresult **out) {
  if (out) *out = NULL;
  PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    if (out) *out = r;
    else PQclear(r);
    return 0;
  }
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0)) {
    PQclear(r);
    return jobq__err(JOBQ_ENOTFOUND,
                     FN ": schema %s holds no libjobq queue (open a queue on it once, with "
                     "jobq_open, to create its tables)",
                     s->schema);
  }
  int rc = jobq__pg_fail(s, c, r, what);
  return jobq__err_prefix(rc, NULL, FN ": ");
}

/* The statements, inside the savepoint. 0 for a new job, 1 when a live
 * dedupe key answered with its job (rec->id replaced), or a code. */
static int submit(pg_store *s, PGconn *c, const char *tbl, jobq_storage_job *rec, int force,
                  int64_t now) {
  char sql[2048];
  int rc;
  if (rec->dedupe_key && !force) {
    /* the lock and lookup of pg_jobs.c's dedupe(), so that a key submitted
     * here and by a queue at once stores one job */
    const char *p[1] = {rec->dedupe_key};
    if ((rc = run(s, c, "SELECT pg_advisory_xact_lock(hashtextextended('jobq:' || $1, 0))", 1, p,
                  "cannot lock a dedupe key", NULL)))
      return rc;
    snprintf(sql, sizeof sql,
             "SELECT id, state, finished_at, dedupe_ttl FROM %s.jobq_jobs "
             "WHERE dedupe_key = $1 ORDER BY seq DESC LIMIT 1",
             tbl);
    PGresult *r = NULL;
    if ((rc = run(s, c, sql, 1, p, "cannot look up a dedupe key", &r))) return rc;
    int dup = PQntuples(r) == 1 && jobq__key_live((int)jobq__pg_int(r, 0, 1), jobq__pg_int(r, 0, 2),
                                                  jobq__pg_int(r, 0, 3), now);
    if (dup) snprintf(rec->id, sizeof rec->id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (dup) return 1;
  }
  /* With its "submitted" event for the listeners of other processes
   * (pg_int.h, PG_EV_INSERT), while one listens; origin 0 is no store's
   * token, so every listener hears it. */
  snprintf(sql, sizeof sql,
           "WITH ins AS (INSERT INTO %s.jobq_jobs (id, kind, state, priority, run_at, "
           "max_attempts, created_at, owner, payload, dedupe_key, dedupe_ttl) VALUES "
           "($1, $2, 0, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id, kind), "
           "ev AS (INSERT INTO %s.jobq_events (origin, job_id, kind, type, state, progress, step, "
           "attempt, error, result, time) SELECT 0, id, kind, 1, 0, 0, NULL, 0, NULL, NULL, "
           PG_NOW_MS " FROM ins WHERE EXISTS (SELECT 1 FROM %s.jobq_listeners WHERE until > "
           PG_NOW_MS ") RETURNING 1), "
           "evn AS (SELECT pg_notify($11 || '_ev', '') FROM ev LIMIT 1) "
           "SELECT pg_notify($11, ''), (SELECT count(*) FROM evn) FROM ins",
           tbl, tbl, tbl);
  char pr[24], ra[24], ma[24], ca[24], dt[24];
  const char *p[11] = {rec->id,
                       rec->kind,
                       jobq__pg_i64(pr, rec->priority),
                       jobq__pg_i64(ra, rec->run_at),
                       jobq__pg_i64(ma, rec->max_attempts),
                       jobq__pg_i64(ca, rec->created_at),
                       rec->owner,
                       rec->payload,
                       rec->dedupe_key,
                       jobq__pg_i64(dt, rec->dedupe_ttl_ms),
                       s->channel};
  return run(s, c, sql, 11, p, "cannot insert the job", NULL);
}

JOBQ_API int jobq_pg_submit(struct pg_conn *conn, const char *schema, const char *kind,
                            const char *payload_json, const jobq_submit_opts_t *opts,
                            char *out_id, size_t out_cap) {
  if (conn == NULL) return jobq__err(JOBQ_EINVAL, FN ": conn is NULL");
  if (out_id == NULL) return jobq__err(JOBQ_EINVAL, FN ": out_id is NULL");
  if (out_cap < JOBQ_ID_SIZE)
    return jobq__err(JOBQ_EINVAL, FN ": out_cap is %zu; an id needs JOBQ_ID_SIZE (%d) bytes",
                     out_cap, JOBQ_ID_SIZE);
  if (schema == NULL) schema = "jobq";
  if (!schema_ok(schema))
    return jobq__err(JOBQ_EINVAL,
                     FN ": schema '%.60s' is not 1..48 characters of A-Z a-z 0-9 _ not starting "
                     "with a digit",
                     schema);
  if (PQstatus(conn) != CONNECTION_OK)
    return jobq__err(JOBQ_EIO, FN ": the connection is not open (PQstatus %d)", (int)PQstatus(conn));
  switch (PQtransactionStatus(conn)) {
    case PQTRANS_INTRANS: break;
    case PQTRANS_IDLE:
      return jobq__err(JOBQ_ESTATE,
                       FN ": the connection has no open transaction: BEGIN first (the job is "
                       "committed with the host's writes), or use jobq_submit");
    case PQTRANS_INERROR:
      return jobq__err(JOBQ_ESTATE,
                       FN ": the connection's transaction has failed; roll it back first");
    default:
      return jobq__err(JOBQ_EBUSY, FN ": the connection is busy with another command");
  }
  int64_t now = wall_ms();
  jobq_storage_job rec;
  int force = 0;
  int rc = jobq__submit_prepare_detached(FN, kind, payload_json, opts, now, &rec, &force);
  if (rc) return rc;

  /* A store of one borrowed connection, for the shared helpers' sentences. */
  char shown[96], channel[64], schema_copy[64];
  snprintf(shown, sizeof shown, "schema %s on the host's connection", schema);
  snprintf(channel, sizeof channel, "jobq_%s", schema);
  snprintf(schema_copy, sizeof schema_copy, "%s", schema);
  pg_store s;
  memset(&s, 0, sizeof s);
  s.shown = shown;
  s.schema = schema_copy;
  s.channel = channel;
  char *tbl = PQescapeIdentifier(conn, schema, strlen(schema));
  if (tbl == NULL) return jobq__err(JOBQ_ENOMEM, FN ": out of memory");

  if ((rc = run(&s, conn, "SAVEPOINT jobq_submit", 0, NULL, "cannot make a savepoint", NULL))) {
    PQfreemem(tbl);
    return rc;
  }
  rc = submit(&s, conn, tbl, &rec, force, now);
  PQfreemem(tbl);
  if (rc < 0) {
    /* back to before the call: nothing written, the host's transaction
     * usable (unless the connection itself is gone) */
    PQclear(PQexec(conn, "ROLLBACK TO SAVEPOINT jobq_submit"));
    PQclear(PQexec(conn, "RELEASE SAVEPOINT jobq_submit"));
    return rc;
  }
  int rel = run(&s, conn, "RELEASE SAVEPOINT jobq_submit", 0, NULL, "cannot release a savepoint",
                NULL);
  if (rel) return rel;
  memcpy(out_id, rec.id, JOBQ_ID_SIZE);
  return rc;
}
