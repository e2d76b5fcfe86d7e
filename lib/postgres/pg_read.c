/* Reads on the PostgreSQL backend: a job by id or by dedupe key (with its
 * position), lists, the next wake-up, a checkpoint. Each is one statement
 * on a pooled connection, outside any transaction (a snapshot of its own). */
#include "postgres/pg_int.h"
#include "storage/dedupe.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A queued, due job's position: the due jobs of its kind that a claim takes
 * first (higher priority, or the same and older), counted exactly through
 * jobq_jobs_claim. */
#define POSITION                                                                           \
  "CASE WHEN j.state = 0 AND j.run_at <= $2 THEN (SELECT count(*) FROM jobq_jobs a "        \
  "WHERE a.state = 0 AND a.kind = j.kind AND a.run_at <= $2 AND (a.priority > j.priority OR " \
  "(a.priority = j.priority AND a.seq < j.seq))) ELSE -1 END"

static int get_row(pg_store *s, const char *sql, const char *arg, int64_t now, int by_key,
                   jobq_storage_job *out) {
  memset(out, 0, sizeof *out);
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  char nb[24];
  const char *p[2] = {arg, jobq__pg_i64(nb, now)};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, sql, 2, p, "cannot read a job", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return by_key ? jobq__err(JOBQ_ENOTFOUND, "postgres storage: no live job has key %.100s", arg)
                  : jobq__err(JOBQ_ENOTFOUND, "postgres storage: no job %.40s", arg);
  }
  if (jobq__pg_row_to_job(r, 0, out, NULL) != 0) {
    PQclear(r);
    return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  }
  out->position = jobq__pg_int(r, 0, 21);
  PQclear(r);
  if (by_key && !jobq__key_live(out->state, out->finished_at, out->dedupe_ttl_ms, now)) {
    jobq_storage_job_clear(out);
    return jobq__err(JOBQ_ENOTFOUND, "postgres storage: the key %.100s is not live", arg);
  }
  return 0;
}

int jobq__pg_get(void *st, const char *id, int64_t now, jobq_storage_job *out) {
  return get_row(st, "SELECT " PG_JOB_COLS ", " POSITION " FROM jobq_jobs j WHERE id = $1", id,
                 now, 0, out);
}

int jobq__pg_get_by_key(void *st, const char *key, int64_t now, jobq_storage_job *out) {
  return get_row(st,
                 "SELECT " PG_JOB_COLS ", " POSITION " FROM jobq_jobs j WHERE dedupe_key = $1 "
                 "ORDER BY seq DESC LIMIT 1",
                 key, now, 1, out);
}

int jobq__pg_list(void *st, const jobq_storage_filter *f, jobq_storage_job **out, size_t *n_out,
                  int *more) {
  pg_store *s = st;
  *out = NULL;
  *n_out = 0;
  *more = 0;
  char sql[900], sb[24], lb[24];
  /* the parameters the filter uses, numbered in the order they appear */
  const char *p[5];
  int np = 0;
  int n = snprintf(sql, sizeof sql, "SELECT " PG_JOB_COLS " FROM jobq_jobs WHERE true");
  if (f->owner) {
    p[np++] = f->owner;
    n += snprintf(sql + n, sizeof sql - (size_t)n, " AND owner = $%d", np);
  }
  if (f->kind) {
    p[np++] = f->kind;
    n += snprintf(sql + n, sizeof sql - (size_t)n, " AND kind = $%d", np);
  }
  if (f->state == JOBQ_QUEUED) {
    /* held members of capped batches (6) are queued to the host */
    n += snprintf(sql + n, sizeof sql - (size_t)n, " AND state IN (0, 6)");
  } else if (f->state >= 0) {
    p[np++] = jobq__pg_i64(sb, f->state);
    n += snprintf(sql + n, sizeof sql - (size_t)n, " AND state = $%d::int", np);
  }
  if (f->cursor) {
    p[np++] = f->cursor;
    n += snprintf(sql + n, sizeof sql - (size_t)n,
                  " AND seq %s (SELECT seq FROM jobq_jobs WHERE id = $%d)",
                  f->newest_first ? "<" : ">", np);
  }
  p[np++] = jobq__pg_i64(lb, (int64_t)f->limit + 1);
  snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY seq %s LIMIT $%d::int8",
           f->newest_first ? "DESC" : "ASC", np);
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  PGresult *r = NULL;
  if (f->cursor) {
    /* A cursor that names no job is a mistake worth saying, not an empty page. */
    const char *cp[1] = {f->cursor};
    rc = jobq__pg_exec(s, c, "SELECT 1 FROM jobq_jobs WHERE id = $1", 1, cp, "cannot list jobs", &r);
    if (rc == 0 && PQntuples(r) == 0)
      rc = jobq__err(JOBQ_EINVAL, "postgres storage: cursor %.40s names no job", f->cursor);
    PQclear(r);
    r = NULL;
  }
  if (rc == 0) rc = jobq__pg_exec(s, c, sql, np, p, "cannot list jobs", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  size_t got = (size_t)PQntuples(r);
  if (got > (size_t)f->limit) {
    got = (size_t)f->limit;
    *more = 1;
  }
  jobq_storage_job *v = got ? calloc(got, sizeof *v) : NULL;
  if (got && v == NULL) {
    PQclear(r);
    *more = 0;
    return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  }
  for (size_t i = 0; i < got; i++) {
    if (jobq__pg_row_to_job(r, (int)i, &v[i], NULL) != 0) {
      for (size_t k = 0; k < i; k++) jobq_storage_job_clear(&v[k]);
      free(v);
      PQclear(r);
      *more = 0;
      return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    }
  }
  PQclear(r);
  *out = v;
  *n_out = got;
  return 0;
}

int jobq__pg_next_run_at(void *st, const char *const *kinds, size_t n_kinds, int64_t now,
                         int64_t *out) {
  pg_store *s = st;
  *out = INT64_MAX;
  char *arr = NULL;
  int rc = 0;
  if (kinds && (rc = jobq__pg_arr_text(kinds, n_kinds, &arr))) return rc;
  PGconn *c = NULL;
  if ((rc = jobq__pg_acquire(s, &c))) {
    free(arr);
    return rc;
  }
  atomic_fetch_add_explicit(&s->n_next, 1, memory_order_relaxed);
  /* "state + 0 = 0" is jobq_jobs_run_at's predicate (pg.c, slot 6), which
   * claims cannot match */
  char nb[24];
  const char *p[2] = {jobq__pg_i64(nb, now), arr};
  PGresult *r = NULL;
  rc = kinds ? jobq__pg_exec_prep(s, c,
                             "SELECT min(x) FROM unnest($2::text[]) AS k(kind), LATERAL (SELECT "
                             "min(run_at) AS x FROM jobq_jobs WHERE state + 0 = 0 AND kind = k.kind "
                             "AND run_at > $1) m",
                             2, p, "cannot read the next run time", &r)
             : jobq__pg_exec_prep(s, c, "SELECT min(run_at) FROM jobq_jobs WHERE state = 0 AND run_at > $1",
                             1, p, "cannot read the next run time", &r);
  jobq__pg_release(s, c);
  free(arr);
  if (rc) return rc;
  if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) *out = jobq__pg_int(r, 0, 0);
  PQclear(r);
  return 0;
}

int jobq__pg_checkpoint_get(void *st, const char *id, int *out_stage, char **out_output) {
  pg_store *s = st;
  *out_stage = -1;
  *out_output = NULL;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  const char *p[1] = {id};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, "SELECT ck_stage, ck_output FROM jobq_jobs WHERE id = $1", 1, p,
                     "cannot read a checkpoint", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  if (PQntuples(r) == 0) {
    rc = jobq__err(JOBQ_ENOTFOUND, "postgres storage: no job %.40s", id);
  } else if (!PQgetisnull(r, 0, 0) && !PQgetisnull(r, 0, 1)) {
    if ((*out_output = jobq__strdup(PQgetvalue(r, 0, 1))) == NULL)
      rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    else *out_stage = (int)jobq__pg_int(r, 0, 0);
  }
  PQclear(r);
  return rc;
}
