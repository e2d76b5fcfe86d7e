/* The webhook outbox on the PostgreSQL backend (storage version 4, schema
 * slot 4).
 *
 * A job's subscriptions are the nullable column jobq_jobs.webhooks (the
 * compact JSON of storage.h). The deliveries a job's end adds are written
 * by the very statement that ends it (PG_OUTBOX_END_CTES in pg_int.h:
 * finish and group commit, cancel, rescue), and a checkpoint's progress
 * deliveries by the checkpoint's statement (pg_jobs.c), so that they
 * commit together or not at all and cost no extra round trip.
 *
 * This file: the subscriptions' check at insert, and the operations on
 * deliveries. Claims lock the due rows FOR UPDATE SKIP LOCKED, so that
 * senders in several processes take different deliveries instead of
 * waiting for each other; a claim is one transaction of three statements
 * (pick, take, the jobs) plus one for the next due time. */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELIVERY_COLS                                                                         \
  "id, job_id, endpoint, url, hook, event, flags, state, attempts, last_status, last_error, " \
  "created_at, next_at, updated_at"

/* "up to max": one claim takes at most this many */
#define CLAIM_MAX 4096

static int nomem(void) { return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory"); }

/* ---- the subscriptions ---- */

/* Refuses text that is not a webhooks array (storage.h), as SQLite does:
 * JOBQ_EINVAL and a sentence, before anything is sent. */
int jobq__pg_hooks_check(const char *const *hooks, size_t n) {
  const char *ok = NULL; /* the last text found good: a batch's jobs mostly share one */
  for (size_t i = 0; hooks && i < n; i++) {
    if (hooks[i] == NULL) continue;
    if (ok && (hooks[i] == ok || strcmp(hooks[i], ok) == 0)) continue;
    json_error_t e;
    json_t *a = json_loads(hooks[i], JSON_REJECT_DUPLICATES, &e);
    const char *why = NULL;
    if (!json_is_array(a)) why = "is not a JSON array";
    else if (json_array_size(a) < 1 || json_array_size(a) > 8) why = "must hold 1 to 8 hooks";
    for (size_t k = 0; why == NULL && k < json_array_size(a); k++) {
      json_t *h = json_array_get(a, k), *on = json_object_get(h, "on"), *u = json_object_get(h, "u"),
             *p = json_object_get(h, "p");
      if (!json_is_object(h)) why = "has a hook that is not an object";
      else if (!json_is_string(json_object_get(h, "e"))) why = "has a hook without \"e\" (endpoint)";
      else if (!json_is_integer(on) || json_integer_value(on) < 1 || json_integer_value(on) > 15)
        why = "has a hook whose \"on\" is not a mask 1..15";
      else if (u && !json_is_string(u)) why = "has a hook whose \"u\" is not a string";
      else if (p && !json_is_integer(p)) why = "has a hook whose \"p\" is not 0 or 1";
    }
    json_decref(a);
    if (why)
      return jobq__err(JOBQ_EINVAL,
                       "postgres storage: the webhooks of job %zu %s (nothing was stored): %.120s",
                       i, why, hooks[i]);
    ok = hooks[i];
  }
  return 0;
}

int jobq__pg_insert_hooked(void *st, jobq_storage_job *const *jobs, const char *const *webhooks,
                           size_t n, const int *force, int64_t now, int *out_dup,
                           const char *batch_id, int max_running) {
  int rc = jobq__pg_hooks_check(webhooks, n);
  if (rc) return rc;
  if (batch_id != NULL)
    return jobq__pg_batch_insert_hooked(st, batch_id, max_running, jobs, webhooks, n, force, now,
                                        out_dup);
  return jobq__pg_insert_in(st, jobs, webhooks, n, force, now, out_dup, NULL, 0);
}

/* ---- records ---- */

/* Fills out from row r of DELIVERY_COLS starting at column c0; -1 on out
 * of memory. */
static int row_to_delivery(PGresult *res, int r, int c0, jobq_storage_delivery *out) {
  memset(out, 0, sizeof *out);
  int oom = 0;
  out->id = jobq__pg_text(res, r, c0);
  oom |= out->id == NULL;
  snprintf(out->job_id, sizeof out->job_id, "%s", PQgetvalue(res, r, c0 + 1));
  out->endpoint = jobq__pg_text(res, r, c0 + 2);
  oom |= out->endpoint == NULL;
  out->url = jobq__pg_text(res, r, c0 + 3);
  oom |= out->url == NULL && !PQgetisnull(res, r, c0 + 3);
  out->hook = (int)jobq__pg_int(res, r, c0 + 4);
  out->event = (int)jobq__pg_int(res, r, c0 + 5);
  out->flags = (int)jobq__pg_int(res, r, c0 + 6);
  out->state = (int)jobq__pg_int(res, r, c0 + 7);
  out->attempts = (int)jobq__pg_int(res, r, c0 + 8);
  out->last_status = (int)jobq__pg_int(res, r, c0 + 9);
  out->last_error = jobq__pg_text(res, r, c0 + 10);
  oom |= out->last_error == NULL && !PQgetisnull(res, r, c0 + 10);
  out->created_at = jobq__pg_int(res, r, c0 + 11);
  out->next_at = jobq__pg_int(res, r, c0 + 12);
  out->updated_at = jobq__pg_int(res, r, c0 + 13);
  if (oom) {
    jobq_storage_delivery_clear(out);
    return -1;
  }
  return 0;
}

/* ---- claim ---- */

/* The due deliveries of the endpoints ($1), earliest first, one more than
 * the claim takes: that one, if any, is the next due. */
static const char *const pick_sql =
    "SELECT id, next_at FROM jobq_outbox WHERE endpoint = ANY($1::text[]) AND "
    "((state = 0 AND next_at <= $2) OR (state = 1 AND next_at < $2)) "
    "ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED";

/* The picked ones ($3, in order) become sending under a lease ending at $5,
 * or failed when their job is gone or their URL (their own, else their
 * endpoint's: $1/$2) was disabled by a 410 Gone. */
static const char *const take_sql =
    "WITH x AS (SELECT c.ord, o.id, NOT EXISTS (SELECT 1 FROM jobq_jobs j WHERE j.id = o.job_id) "
    "  AS gone, (SELECT w.disabled_at FROM jobq_webhook_disabled w WHERE w.url = coalesce(o.url, "
    "  (SELECT e.u FROM unnest($1::text[], $2::text[]) AS e(n, u) WHERE e.n = o.endpoint LIMIT 1))) "
    "  AS dis FROM unnest($3::text[]) WITH ORDINALITY AS c(id, ord) JOIN jobq_outbox o ON o.id = c.id) "
    "UPDATE jobq_outbox o SET "
    "state = CASE WHEN x.gone OR x.dis IS NOT NULL THEN 3 ELSE 1 END, "
    "attempts = CASE WHEN x.gone OR x.dis IS NOT NULL THEN o.attempts ELSE o.attempts + 1 END, "
    "next_at = CASE WHEN x.gone OR x.dis IS NOT NULL THEN 0 ELSE $5::int8 END, "
    "updated_at = $4::int8, "
    "last_error = CASE WHEN x.gone THEN 'its job is no longer stored' "
    "  WHEN x.dis IS NOT NULL THEN 'the URL answered 410 Gone on ' || "
    "  to_char(to_timestamp(x.dis / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || "
    "  ' and is disabled' ELSE o.last_error END "
    "FROM x WHERE o.id = x.id RETURNING x.ord, o." DELIVERY_COLS;

/* What a claim leaves: the earliest pending one past now, or a lease that
 * ends before the ones just given ($3), as SQLite's claim reports. */
static const char *const next_sql =
    "SELECT min(next_at) FROM jobq_outbox WHERE endpoint = ANY($1::text[]) AND "
    "((state = 0 AND next_at > $2) OR (state = 1 AND next_at >= $2)) AND next_at < $3";

int jobq__pg_outbox_claim(void *st, const jobq_storage_outbox_claim *req,
                          jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out) {
  pg_store *s = st;
  *n_out = 0;
  if (req->next_at) *req->next_at = INT64_MAX;
  if (req->max == 0 || req->n_endpoints == 0) return 0;
  size_t max = req->max < CLAIM_MAX ? req->max : CLAIM_MAX;
  int64_t now = req->now;
  char *eps = NULL, *urls = NULL, *ids_a = NULL, *jobs_a = NULL;
  const char **ids = NULL, **jids = NULL;
  jobq_storage_delivery *v = NULL;
  PGresult *r = NULL;
  size_t n = 0;
  int rc = jobq__pg_arr_text(req->endpoints, req->n_endpoints, &eps);
  if (rc == 0) {
    const char **u = calloc(req->n_endpoints, sizeof *u);
    if (u == NULL) rc = nomem();
    for (size_t i = 0; u && req->urls && i < req->n_endpoints; i++) u[i] = req->urls[i];
    if (u) rc = jobq__pg_arr_text(u, req->n_endpoints, &urls);
    free(u);
  }
  if (rc) {
    free(eps);
    return rc;
  }
  PGconn *c = NULL;
  if ((rc = jobq__pg_acquire(s, &c))) goto done;
  if ((rc = jobq__pg_begin(s, c))) goto release;
  char nb[24], lb[24], mb[24];
  const char *pp[3] = {eps, jobq__pg_i64(nb, now), jobq__pg_i64(mb, (int64_t)max + 1)};
  if ((rc = jobq__pg_exec(s, c, pick_sql, 3, pp, "cannot pick webhook deliveries", &r))) goto fail;
  size_t got = (size_t)PQntuples(r);
  int64_t left = got > max ? jobq__pg_int(r, (int)max, 1) : INT64_MAX;
  n = got < max ? got : max;
  if (n) {
    if ((ids = calloc(n, sizeof *ids)) == NULL) {
      rc = nomem();
      goto fail;
    }
    for (size_t i = 0; i < n; i++) ids[i] = PQgetvalue(r, (int)i, 0);
    rc = jobq__pg_arr_text(ids, n, &ids_a);
    free(ids);
    ids = NULL;
  }
  PQclear(r);
  r = NULL;
  if (rc) goto fail;
  if (n) {
    const char *tp[5] = {eps, urls, ids_a, jobq__pg_i64(nb, now), jobq__pg_i64(lb, now + req->lease_ms)};
    if ((rc = jobq__pg_exec(s, c, take_sql, 5, tp, "cannot claim webhook deliveries", &r)))
      goto fail;
    if ((v = calloc(n, sizeof *v)) == NULL || (jids = calloc(n, sizeof *jids)) == NULL) {
      rc = nomem();
      goto fail;
    }
    for (int row = 0; row < PQntuples(r); row++) {
      size_t i = (size_t)jobq__pg_int(r, row, 0) - 1;
      if (i >= n || v[i].id) continue;
      if (row_to_delivery(r, row, 1, &v[i]) != 0) {
        rc = nomem();
        goto fail;
      }
    }
    PQclear(r);
    r = NULL;
    /* Every picked row is locked, so each was taken; were one gone, the
     * others still come back in order. */
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
      if (v[i].id) v[o++] = v[i];
    n = o;
    for (size_t i = 0; i < n; i++) jids[i] = v[i].job_id;
    if ((rc = jobq__pg_arr_text(jids, n, &jobs_a))) goto fail;
    const char *jp[1] = {jobs_a};
    if ((rc = jobq__pg_exec(s, c, "SELECT " PG_JOB_COLS " FROM jobq_jobs WHERE id = ANY($1::text[])",
                            1, jp, "cannot read webhook deliveries' jobs", &r)))
      goto fail;
    memset(jobs, 0, n * sizeof *jobs);
    for (size_t i = 0; i < n; i++) {
      for (int row = 0; row < PQntuples(r); row++) {
        if (strcmp(PQgetvalue(r, row, 1), v[i].job_id) != 0) continue;
        if (jobq__pg_row_to_job(r, row, &jobs[i], NULL) != 0) {
          for (size_t m = 0; m < i; m++) jobq_storage_job_clear(&jobs[m]);
          rc = nomem();
          goto fail;
        }
        /* as get fills it, less position and attempt log (storage.h) */
        for (int m = 0; m < jobs[i].n_attempt_log; m++) free(jobs[i].attempt_log[m].error);
        free(jobs[i].attempt_log);
        jobs[i].attempt_log = NULL;
        jobs[i].n_attempt_log = 0;
        jobs[i].position = -1;
        break;
      }
    }
    PQclear(r);
    r = NULL;
  }
  if (req->next_at) {
    int64_t next = left;
    if (left == INT64_MAX) {
      const char *np[3] = {eps, jobq__pg_i64(nb, now), jobq__pg_i64(lb, now + req->lease_ms)};
      if ((rc = jobq__pg_exec(s, c, next_sql, 3, np, "cannot read the next webhook delivery", &r)))
        goto fail_jobs;
      if (!PQgetisnull(r, 0, 0)) next = jobq__pg_int(r, 0, 0);
      PQclear(r);
      r = NULL;
    }
    *req->next_at = next;
  }
  if ((rc = jobq__pg_commit(s, c))) goto fail_jobs;
  if (n) memcpy(out, v, n * sizeof *v);
  *n_out = n;
  goto release;
fail_jobs:
  for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&jobs[i]);
fail:
  PQclear(r);
  jobq__pg_rollback(c);
  for (size_t i = 0; v && i < n; i++) jobq_storage_delivery_clear(&v[i]);
  if (req->next_at) *req->next_at = INT64_MAX;
release:
  jobq__pg_release(s, c);
done:
  free(v);
  free(jids);
  free(eps);
  free(urls);
  free(ids_a);
  free(jobs_a);
  return rc;
}

/* ---- done ---- */

/* A result applies while its delivery is sending that attempt. Several
 * results of one delivery in a batch: the first that applies wins and the
 * others are stale, as if applied one after the other (m). A 410 disables
 * its URL (the latest result's time when several name it). */
static const char *const done_sql =
    "WITH r AS (SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::text[], "
    "  $6::int8[], $7::int8[], $8::text[]) WITH ORDINALITY AS r(id, att, st, status, err, nx, now, "
    "  dis, ord)), "
    "m AS (SELECT DISTINCT ON (r.id) r.* FROM r JOIN jobq_outbox o ON o.id = r.id AND o.state = 1 "
    "  AND o.attempts = r.att ORDER BY r.id, r.ord), "
    "u AS (UPDATE jobq_outbox o SET state = m.st, last_status = m.status, last_error = m.err, "
    "  updated_at = m.now, next_at = CASE WHEN m.st = 0 THEN m.nx ELSE 0 END FROM m "
    "  WHERE o.id = m.id AND o.state = 1 AND o.attempts = m.att RETURNING m.ord, m.dis, m.now), "
    "d AS (INSERT INTO jobq_webhook_disabled (url, disabled_at) SELECT DISTINCT ON (dis) dis, now "
    "  FROM u WHERE dis IS NOT NULL ORDER BY dis, ord DESC "
    "  ON CONFLICT (url) DO UPDATE SET disabled_at = excluded.disabled_at) "
    "SELECT ord FROM u";

int jobq__pg_outbox_done(void *st, const jobq_storage_outbox_result *r, size_t n, int *applied) {
  pg_store *s = st;
  for (size_t i = 0; i < n; i++) {
    int state = r[i].state;
    if (r[i].id == NULL || (state != JOBQ_DELIVERY_PENDING && state != JOBQ_DELIVERY_DELIVERED &&
                            state != JOBQ_DELIVERY_FAILED))
      return jobq__err(JOBQ_EINVAL,
                       "postgres storage: outbox_done: result %zu has %s (nothing was stored)", i,
                       r[i].id ? "a state other than pending, delivered or failed" : "no id");
  }
  if (applied) memset(applied, 0, n * sizeof *applied);
  if (n == 0) return 0;
  const char **id = calloc(n, sizeof *id), **err = calloc(n, sizeof *err),
             **dis = calloc(n, sizeof *dis);
  int64_t *att = calloc(n, sizeof *att), *sta = calloc(n, sizeof *sta),
          *status = calloc(n, sizeof *status), *nx = calloc(n, sizeof *nx),
          *now = calloc(n, sizeof *now);
  char *a[8] = {0};
  int rc = 0;
  if (!id || !err || !dis || !att || !sta || !status || !nx || !now) {
    rc = nomem();
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    id[i] = r[i].id;
    att[i] = r[i].attempt;
    sta[i] = r[i].state;
    status[i] = r[i].status;
    err[i] = r[i].error;
    nx[i] = r[i].next_at;
    now[i] = r[i].now;
    dis[i] = r[i].disable_url;
  }
  if ((rc = jobq__pg_arr_text(id, n, &a[0])) || (rc = jobq__pg_arr_i64(att, n, &a[1])) ||
      (rc = jobq__pg_arr_i64(sta, n, &a[2])) || (rc = jobq__pg_arr_i64(status, n, &a[3])) ||
      (rc = jobq__pg_arr_text(err, n, &a[4])) || (rc = jobq__pg_arr_i64(nx, n, &a[5])) ||
      (rc = jobq__pg_arr_i64(now, n, &a[6])) || (rc = jobq__pg_arr_text(dis, n, &a[7])))
    goto out;
  PGconn *c = NULL;
  if ((rc = jobq__pg_acquire(s, &c))) goto out;
  PGresult *res = NULL;
  rc = jobq__pg_exec(s, c, done_sql, 8, (const char *const *)a,
                     "cannot store webhook deliveries' tries", &res);
  jobq__pg_release(s, c);
  if (rc == 0) {
    for (int k = 0; applied && k < PQntuples(res); k++) {
      size_t i = (size_t)jobq__pg_int(res, k, 0) - 1;
      if (i < n) applied[i] = 1;
    }
    PQclear(res);
  }
out:
  for (int i = 0; i < 8; i++) free(a[i]);
  free(id);
  free(err);
  free(dis);
  free(att);
  free(sta);
  free(status);
  free(nx);
  free(now);
  return rc;
}

/* ---- redeliver, enable ---- */

int jobq__pg_outbox_redeliver(void *st, const char *id, int64_t now) {
  pg_store *s = st;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  char nb[24];
  const char *p[2] = {id, jobq__pg_i64(nb, now)};
  PGresult *r = NULL;
  /* One statement: the delivery's state before, and the change when it
   * was failed. */
  rc = jobq__pg_exec(s, c,
                     "WITH old AS (SELECT id, state FROM jobq_outbox WHERE id = $1 FOR UPDATE), "
                     "u AS (UPDATE jobq_outbox o SET state = 0, attempts = 0, next_at = $2, "
                     "updated_at = $2 FROM old WHERE o.id = old.id AND old.state = 3 RETURNING 1) "
                     "SELECT old.state FROM old",
                     2, p, "cannot redeliver a webhook", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  int state = PQntuples(r) ? (int)jobq__pg_int(r, 0, 0) : -1;
  PQclear(r);
  if (state < 0)
    return jobq__err(JOBQ_ENOTFOUND, "postgres storage: no webhook delivery '%.200s'", id);
  if (state != JOBQ_DELIVERY_FAILED)
    return jobq__err(JOBQ_ESTATE,
                     "postgres storage: webhook delivery '%.200s' is %s, not failed: only a "
                     "failed delivery is sent again",
                     id,
                     state == JOBQ_DELIVERY_PENDING ? "pending"
                     : state == JOBQ_DELIVERY_SENDING ? "being sent"
                                                      : "delivered");
  return 0;
}

int jobq__pg_webhook_enable(void *st, const char *url) {
  pg_store *s = st;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  const char *p[1] = {url};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, "DELETE FROM jobq_webhook_disabled WHERE url = $1", 1, p,
                     "cannot enable a webhook URL", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  int hit = atoi(PQcmdTuples(r)) > 0;
  PQclear(r);
  if (!hit)
    return jobq__err(JOBQ_ENOTFOUND, "postgres storage: the webhook URL '%.300s' is not disabled",
                     url);
  return 0;
}

/* ---- reads ---- */

int jobq__pg_outbox_counts(void *st, int64_t counts[4]) {
  pg_store *s = st;
  for (int i = 0; i < 4; i++) counts[i] = 0;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, "SELECT state, count(*) FROM jobq_outbox GROUP BY state", 0, NULL,
                     "cannot count webhook deliveries", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  for (int k = 0; k < PQntuples(r); k++) {
    int64_t state = jobq__pg_int(r, k, 0);
    if (state >= 0 && state < 4) counts[state] = jobq__pg_int(r, k, 1);
  }
  PQclear(r);
  return 0;
}

int jobq__pg_outbox_list(void *st, const jobq_storage_outbox_filter *f,
                         jobq_storage_delivery **out, size_t *n_out, int *more) {
  pg_store *s = st;
  *out = NULL;
  *n_out = 0;
  *more = 0;
  if (f->limit < 1)
    return jobq__err(JOBQ_EINVAL, "postgres storage: outbox_list: limit must be at least 1");
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  PGresult *r = NULL;
  if (f->cursor) {
    /* A cursor that names no delivery is a mistake worth saying. */
    const char *p[1] = {f->cursor};
    rc = jobq__pg_exec(s, c, "SELECT 1 FROM jobq_outbox WHERE id = $1", 1, p,
                       "cannot list webhook deliveries", &r);
    if (rc == 0 && PQntuples(r) == 0)
      rc = jobq__err(JOBQ_EINVAL, "postgres storage: cursor %.200s names no webhook delivery",
                     f->cursor);
    PQclear(r);
    r = NULL;
    if (rc) {
      jobq__pg_release(s, c);
      return rc;
    }
  }
  /* NULL parameters switch their filter off */
  char sb[24], lb[24];
  const char *p[4] = {f->job_id, f->state >= 0 ? jobq__pg_i64(sb, f->state) : NULL, f->cursor,
                      jobq__pg_i64(lb, (int64_t)f->limit + 1)};
  rc = jobq__pg_exec(s, c,
                     "SELECT " DELIVERY_COLS " FROM jobq_outbox WHERE ($1::text IS NULL OR "
                     "job_id = $1) AND ($2::int IS NULL OR state = $2) AND ($3::text IS NULL OR "
                     "id > $3) ORDER BY id LIMIT $4",
                     4, p, "cannot list webhook deliveries", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  size_t rows = (size_t)PQntuples(r), k = rows > (size_t)f->limit ? (size_t)f->limit : rows;
  jobq_storage_delivery *v = k ? calloc(k, sizeof *v) : NULL;
  if (k && v == NULL) {
    PQclear(r);
    return nomem();
  }
  for (size_t i = 0; i < k; i++) {
    if (row_to_delivery(r, (int)i, 0, &v[i]) != 0) {
      for (size_t m = 0; m < i; m++) jobq_storage_delivery_clear(&v[m]);
      free(v);
      PQclear(r);
      return nomem();
    }
  }
  PQclear(r);
  *out = v;
  *n_out = k;
  *more = rows > k;
  return 0;
}
