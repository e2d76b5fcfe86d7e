/* Cron schedules on the PostgreSQL backend (cron_put, cron_del, cron_list,
 * cron_fire), in the table jobq_cron (schema slot 3).
 *
 * Every process on the schema evaluates the same schedules, so a fire is a
 * compare-and-set on the schedule's next_at in the same transaction as the
 * inserts of its occurrences' jobs. The UPDATE locks the schedule's row: a
 * second process firing the same occurrence waits for the first one's
 * commit, then (READ COMMITTED re-reads the row it waited for) finds next_at
 * moved, changes nothing and stores nothing. The occurrences' dedupe keys
 * are locked as an insert locks a key (pg_jobs.c) and looked up, so that an
 * occurrence cannot be stored twice even if a schedule was put back with an
 * old next_at. The backend knows no cron syntax: the core computed the
 * times. cron_fire_hooked is the same fire where the jobs carry webhook
 * subscriptions (the column webhooks, pg_outbox.c). */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OOM() jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory")

/* ---- put, del ---- */

int jobq__pg_cron_put(void *st, const jobq_storage_cron *c) {
  pg_store *s = st;
  PGconn *cn = NULL;
  int rc = jobq__pg_acquire(s, &cn);
  if (rc) return rc;
  char pr[24], ma[24], mi[24], na[24], lr[24];
  const char *p[11] = {c->name,
                       c->expr,
                       c->tz,
                       c->kind,
                       c->payload,
                       c->owner,
                       jobq__pg_i64(pr, c->priority),
                       jobq__pg_i64(ma, c->max_attempts),
                       jobq__pg_i64(mi, c->missed_policy),
                       jobq__pg_i64(na, c->next_at),
                       jobq__pg_i64(lr, c->last_run)};
  /* A replacement keeps next_at and last_run when expr and tz are the
   * stored ones (the CASEs read the old row, before SET applies). */
  rc = jobq__pg_exec(s, cn,
                     "INSERT INTO jobq_cron AS o (name, expr, tz, kind, payload, owner, priority, "
                     "max_attempts, missed, next_at, last_run) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                     "$8, $9, $10, $11) ON CONFLICT (name) DO UPDATE SET "
                     "next_at = CASE WHEN o.expr = excluded.expr AND o.tz = excluded.tz "
                     "THEN o.next_at ELSE excluded.next_at END, "
                     "last_run = CASE WHEN o.expr = excluded.expr AND o.tz = excluded.tz "
                     "THEN o.last_run ELSE excluded.last_run END, "
                     "expr = excluded.expr, tz = excluded.tz, kind = excluded.kind, "
                     "payload = excluded.payload, owner = excluded.owner, "
                     "priority = excluded.priority, max_attempts = excluded.max_attempts, "
                     "missed = excluded.missed",
                     11, p, "cannot store a cron schedule", NULL);
  jobq__pg_release(s, cn);
  return rc;
}

int jobq__pg_cron_del(void *st, const char *name) {
  pg_store *s = st;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  const char *p[1] = {name};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, "DELETE FROM jobq_cron WHERE name = $1", 1, p,
                     "cannot remove a cron schedule", &r);
  if (rc == 0) {
    if (atoi(PQcmdTuples(r)) == 0)
      rc = jobq__err(JOBQ_ENOTFOUND, "postgres storage: no cron schedule '%.128s'", name);
    PQclear(r);
  }
  jobq__pg_release(s, c);
  return rc;
}

/* ---- list ---- */

static void cron_clear(jobq_storage_cron *c) {
  free(c->name);
  free(c->expr);
  free(c->tz);
  free(c->kind);
  free(c->payload);
  free(c->owner);
}

int jobq__pg_cron_list(void *st, jobq_storage_cron **out, size_t *n_out) {
  pg_store *s = st;
  *out = NULL;
  *n_out = 0;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c,
                     "SELECT name, expr, tz, kind, payload, owner, priority, max_attempts, missed, "
                     "next_at, last_run FROM jobq_cron ORDER BY name",
                     0, NULL, "cannot list cron schedules", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  size_t n = (size_t)PQntuples(r);
  jobq_storage_cron *v = n ? calloc(n, sizeof *v) : NULL;
  if (n && v == NULL) rc = OOM();
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int row = (int)i;
    jobq_storage_cron *e = &v[i];
    e->name = jobq__pg_text(r, row, 0);
    e->expr = jobq__pg_text(r, row, 1);
    e->tz = jobq__pg_text(r, row, 2);
    e->kind = jobq__pg_text(r, row, 3);
    e->payload = jobq__pg_text(r, row, 4);
    e->owner = jobq__pg_text(r, row, 5);
    e->priority = (int)jobq__pg_int(r, row, 6);
    e->max_attempts = (int)jobq__pg_int(r, row, 7);
    e->missed_policy = (int)jobq__pg_int(r, row, 8);
    e->next_at = jobq__pg_int(r, row, 9);
    e->last_run = jobq__pg_int(r, row, 10);
    if (!e->name || !e->expr || !e->tz || !e->kind || !e->payload ||
        (e->owner == NULL && !PQgetisnull(r, row, 5)))
      rc = OOM();
  }
  PQclear(r);
  if (rc) {
    for (size_t i = 0; v && i < n; i++) cron_clear(&v[i]);
    free(v);
    return rc;
  }
  *out = v;
  *n_out = n;
  return 0;
}

/* ---- fire ---- */

/* The occurrences that no stored job's key holds, in the order given (so
 * that seq keeps their order), inserted as pg_jobs.c inserts: queued, with
 * run_at telling a later occurrence from a due one. */
#define FIRE_INSERT_SQL                                                                        \
  "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, max_attempts, created_at, owner, " \
  "payload, dedupe_key, dedupe_ttl, webhooks) "                                                \
  "SELECT id, kind, 0, pr, ra, ma, ca, ow, pl, dk, dt, wh FROM unnest($1::text[], $2::text[], " \
  "$3::int[], $4::int8[], $5::int[], $6::int8[], $7::text[], $8::text[], $9::text[], "         \
  "$10::int8[], $11::text[]) WITH ORDINALITY AS t(id, kind, pr, ra, ma, ca, ow, pl, dk, dt, wh, " \
  "o) "                                                                                         \
  "WHERE dk IS NULL OR NOT EXISTS (SELECT 1 FROM jobq_jobs j WHERE j.dedupe_key = t.dk) "      \
  "ORDER BY o"

/* The inserts of one fire, on c inside its transaction: *n_ins the rows;
 * hooks[i] the webhooks of job i (hooks NULL: none has any, and the array
 * parameter is NULL, which unnest reads as NULLs). */
static int fire_insert(pg_store *s, PGconn *c, jobq_storage_job *const *jobs,
                       const char *const *hooks, size_t n, size_t *n_ins) {
  const char **tid = calloc(n, sizeof *tid), **tkind = calloc(n, sizeof *tkind),
             **town = calloc(n, sizeof *town), **tpl = calloc(n, sizeof *tpl),
             **tdk = calloc(n, sizeof *tdk);
  int64_t *pr = calloc(n, sizeof *pr), *ra = calloc(n, sizeof *ra), *ma = calloc(n, sizeof *ma),
          *ca = calloc(n, sizeof *ca), *dt = calloc(n, sizeof *dt);
  char *a[11] = {0};
  int rc = 0;
  if (!tid || !tkind || !town || !tpl || !tdk || !pr || !ra || !ma || !ca || !dt) {
    rc = OOM();
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
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
  if ((rc = jobq__pg_arr_text(tid, n, &a[0])) || (rc = jobq__pg_arr_text(tkind, n, &a[1])) ||
      (rc = jobq__pg_arr_i64(pr, n, &a[2])) || (rc = jobq__pg_arr_i64(ra, n, &a[3])) ||
      (rc = jobq__pg_arr_i64(ma, n, &a[4])) || (rc = jobq__pg_arr_i64(ca, n, &a[5])) ||
      (rc = jobq__pg_arr_text(town, n, &a[6])) || (rc = jobq__pg_arr_text(tpl, n, &a[7])) ||
      (rc = jobq__pg_arr_text(tdk, n, &a[8])) || (rc = jobq__pg_arr_i64(dt, n, &a[9])) ||
      (hooks && (rc = jobq__pg_arr_text(hooks, n, &a[10]))))
    goto out;
  /* The keys' locks first, in one order (no deadlock between two fires),
   * held to the commit: a submit of the same key waits, as in pg_jobs.c. */
  rc = jobq__pg_exec(s, c,
                     "SELECT pg_advisory_xact_lock(hashtextextended('jobq:' || k, 0)) FROM "
                     "(SELECT DISTINCT k FROM unnest($1::text[]) AS u(k) WHERE k IS NOT NULL "
                     "ORDER BY k) AS keys",
                     1, (const char *const *)&a[8], "cannot lock an occurrence's key", NULL);
  PGresult *r = NULL;
  if (rc == 0)
    rc = jobq__pg_exec(s, c, FIRE_INSERT_SQL, 11, (const char *const *)a,
                       "cannot insert a cron occurrence", &r);
  if (rc == 0) {
    *n_ins = (size_t)atoll(PQcmdTuples(r));
    PQclear(r);
  }
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

int jobq__pg_cron_fire(void *st, const char *name, int64_t expect_next_at, int64_t new_next_at,
                       jobq_storage_job *const *jobs, size_t n, int64_t now, size_t *n_inserted) {
  return jobq__pg_cron_fire_hooked(st, name, expect_next_at, new_next_at, jobs, NULL, n, now,
                                   n_inserted);
}

int jobq__pg_cron_fire_hooked(void *st, const char *name, int64_t expect_next_at,
                              int64_t new_next_at, jobq_storage_job *const *jobs,
                              const char *const *webhooks, size_t n, int64_t now,
                              size_t *n_inserted) {
  pg_store *s = st;
  (void)now; /* a queued job is one state whatever its run_at (pg_int.h) */
  *n_inserted = 0;
  int rc = jobq__pg_hooks_check(webhooks, n);
  if (rc) return rc;
  int64_t last = 0;
  for (size_t i = 0; i < n; i++)
    if (jobs[i]->run_at > last) last = jobs[i]->run_at;
  PGconn *c = NULL;
  if ((rc = jobq__pg_acquire(s, &c))) return rc;
  if ((rc = jobq__pg_begin(s, c))) {
    jobq__pg_release(s, c);
    return rc;
  }
  char ex[24], nx[24], ls[24];
  const char *p[4] = {name, jobq__pg_i64(ex, expect_next_at), jobq__pg_i64(nx, new_next_at),
                      jobq__pg_i64(ls, last)};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c,
                     "UPDATE jobq_cron SET next_at = $3, "
                     "last_run = CASE WHEN $4::int8 > 0 THEN $4::int8 ELSE last_run END "
                     "WHERE name = $1 AND next_at = $2",
                     4, p, "cannot advance a cron schedule", &r);
  size_t ins = 0;
  if (rc == 0) {
    int moved = atoi(PQcmdTuples(r)) > 0;
    PQclear(r);
    if (!moved) { /* another process fired it, or the schedule is gone */
      jobq__pg_rollback(c);
      jobq__pg_release(s, c);
      return 0;
    }
    if (n) rc = fire_insert(s, c, jobs, webhooks, n, &ins);
  }
  /* Idle workers of every process hear of the new jobs at the commit. */
  const char *np[1] = {s->channel};
  if (rc == 0 && ins)
    rc = jobq__pg_exec(s, c, "SELECT pg_notify($1, '')", 1, np, "cannot notify", NULL);
  if (rc == 0) rc = jobq__pg_commit(s, c);
  if (rc) jobq__pg_rollback(c);
  else *n_inserted = ins;
  jobq__pg_release(s, c);
  return rc;
}
