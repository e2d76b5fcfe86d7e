/* Shared stats on the PostgreSQL backend (stats_add, stats_read).
 *
 * jobq_stats holds one row per kind: the counters and the duration buckets
 * as bigint arrays, their sum and the moving average, each flush adding to
 * them with one upsert per kind. jobq_stats_live holds one row per kind and
 * store (its token, drawn at random on the first flush): what its workers
 * run, and until when that holds; a flush replaces the store's rows and
 * drops expired rows of any store. A flush is one short transaction about
 * once a second per process, never on a job's path. Its kinds are written
 * in name order, so that two processes flushing the same kinds at once wait
 * for each other instead of deadlocking.
 *
 * Without depth a read is two primary-key lookups (ETA, on every jobq_get
 * of a queued job). Depth counts the queued jobs through the claim index
 * (jobq_jobs_claim holds every queued job, due or not: pg_int.h): O(queued
 * jobs), in one statement, so from one snapshot. */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OOM() jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory")

/* ---- stats_add ---- */

/* Adds element by element (an array of another length, from another
 * libjobq version, adds as far as both go and keeps the longer). */
#define ADD_ARR(col)                                                                   \
  col " = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) FROM unnest(o." col ", excluded." col \
      ") WITH ORDINALITY AS t(a, b, i) ORDER BY i)"

static const char *const add_sql =
    "INSERT INTO jobq_stats AS o (kind, counts, hist, sum_ms, avg_ms) "
    "VALUES ($1, $2::int8[], $3::int8[], $4::float8, $5::float8) ON CONFLICT (kind) DO UPDATE SET "
    ADD_ARR("counts") ", " ADD_ARR("hist") ", sum_ms = o.sum_ms + excluded.sum_ms, "
    "avg_ms = CASE WHEN excluded.avg_ms = 0 THEN o.avg_ms WHEN o.avg_ms = 0 THEN excluded.avg_ms "
    "ELSE o.avg_ms * power(0.8::float8, $6::int8) + excluded.avg_ms * "
    "(1 - power(0.8::float8, $6::int8)) END";

static int by_kind(const void *a, const void *b) {
  const jobq_storage_stats_delta *x = *(const jobq_storage_stats_delta *const *)a;
  const jobq_storage_stats_delta *y = *(const jobq_storage_stats_delta *const *)b;
  return strcmp(x->kind ? x->kind : "", y->kind ? y->kind : "");
}

static int64_t token(pg_store *s) {
  uv_mutex_lock(&s->mu);
  if (s->stats_token == 0) {
    uint64_t t = 0;
    if (uv_random(NULL, NULL, &t, sizeof t, 0, NULL) != 0)
      t = uv_hrtime() ^ ((uint64_t)(uintptr_t)s << 16); /* still distinct in practice */
    s->stats_token = (int64_t)(t >> 1) | 1;
  }
  int64_t t = s->stats_token;
  uv_mutex_unlock(&s->mu);
  return t;
}

/* One delta, on c inside the flush's transaction. */
static int add_one(pg_store *s, PGconn *c, const jobq_storage_stats_delta *d, int64_t tok) {
  const char *kind = d->kind ? d->kind : "";
  int64_t k = 0, any = 0;
  for (int j = 0; j < JOBQ_STORAGE_HIST_N; j++) k += d->hist[j];
  for (int j = 0; j < JOBQ_STORAGE_STAT_N; j++) any |= d->count[j];
  int rc = 0;
  if (k || any) {
    char *counts = NULL, *hist = NULL, sum[40], mean[40], w[24];
    double m = k ? d->duration_sum_ms / (double)k : 0;
    if (k && m <= 0) m = 1e-3; /* 0 means "none yet" */
    snprintf(sum, sizeof sum, "%.17g", d->duration_sum_ms);
    snprintf(mean, sizeof mean, "%.17g", m);
    jobq__pg_i64(w, k); /* the server raises 0.8 to it: libjobq-pg needs no libm */
    if ((rc = jobq__pg_arr_i64(d->count, JOBQ_STORAGE_STAT_N, &counts)) == 0 &&
        (rc = jobq__pg_arr_i64(d->hist, JOBQ_STORAGE_HIST_N, &hist)) == 0) {
      const char *p[6] = {kind, counts, hist, sum, mean, w};
      rc = jobq__pg_exec(s, c, add_sql, 6, p, "cannot add to the stats", NULL);
    }
    free(counts);
    free(hist);
    if (rc) return rc;
  }
  char tk[24];
  jobq__pg_i64(tk, tok);
  if (d->concurrency > 0 || d->n_started) {
    char *started = NULL, cc[24], un[24];
    if (d->n_started && (rc = jobq__pg_arr_i64(d->started, d->n_started, &started))) return rc;
    const char *p[5] = {kind, tk, jobq__pg_i64(cc, d->concurrency), started,
                        jobq__pg_i64(un, d->until)};
    rc = jobq__pg_exec(s, c,
                       "INSERT INTO jobq_stats_live (kind, token, concurrency, started, until) "
                       "VALUES ($1, $2, $3, $4::int8[], $5) ON CONFLICT (kind, token) DO UPDATE "
                       "SET concurrency = excluded.concurrency, started = excluded.started, "
                       "until = excluded.until",
                       5, p, "cannot publish what the workers run", NULL);
    free(started);
    return rc;
  }
  const char *p[2] = {kind, tk};
  return jobq__pg_exec(s, c, "DELETE FROM jobq_stats_live WHERE kind = $1 AND token = $2", 2, p,
                       "cannot withdraw what the workers run", NULL);
}

int jobq__pg_stats_add(void *st, const jobq_storage_stats_delta *d, size_t n, int64_t now) {
  pg_store *s = st;
  if (n == 0) return 0;
  const jobq_storage_stats_delta **v = malloc(n * sizeof *v);
  if (v == NULL) return OOM();
  for (size_t i = 0; i < n; i++) v[i] = &d[i];
  qsort(v, n, sizeof *v, by_kind);
  int64_t tok = token(s);
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) {
    free(v);
    return rc;
  }
  rc = jobq__pg_begin(s, c);
  for (size_t i = 0; rc == 0 && i < n; i++) rc = add_one(s, c, v[i], tok);
  char nb[24];
  const char *p[1] = {jobq__pg_i64(nb, now)};
  if (rc == 0)
    rc = jobq__pg_exec(s, c, "DELETE FROM jobq_stats_live WHERE until < $1", 1, p,
                       "cannot drop expired publications", NULL);
  if (rc == 0) rc = jobq__pg_commit(s, c);
  if (rc) jobq__pg_rollback(c);
  jobq__pg_release(s, c);
  free(v);
  return rc;
}

/* ---- stats_read ---- */

typedef struct kinds_buf {
  jobq_storage_kind_stats *v;
  size_t n, cap;
} kinds_buf;

static jobq_storage_kind_stats *find(kinds_buf *b, const char *kind) {
  for (size_t i = 0; i < b->n; i++)
    if (strcmp(b->v[i].kind, kind) == 0) return &b->v[i];
  if (b->n == b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 8;
    jobq_storage_kind_stats *nv = realloc(b->v, nc * sizeof *nv);
    if (nv == NULL) return NULL;
    b->v = nv;
    b->cap = nc;
  }
  jobq_storage_kind_stats *r = &b->v[b->n];
  memset(r, 0, sizeof *r);
  if ((r->kind = jobq__strdup(kind)) == NULL) return NULL;
  b->n++;
  return r;
}

static void buf_free(kinds_buf *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->v[i].kind);
    free(b->v[i].started);
  }
  free(b->v);
}

/* Fills up to cap numbers of the array literal t ("{1,2,...}") into v;
 * returns how many. */
static size_t parse_arr(const char *t, int64_t *v, size_t cap) {
  size_t n = 0;
  for (const char *p = t; *p && n < cap;) {
    if (*p == '{' || *p == ',' || *p == '}' || *p == ' ') {
      p++;
      continue;
    }
    char *end;
    long long x = strtoll(p, &end, 10);
    if (end == p) break;
    v[n++] = x;
    p = end;
  }
  return n;
}

/* Appends the start times of the array literal t to r. */
static int add_started(jobq_storage_kind_stats *r, const char *t) {
  size_t n = 0;
  for (const char *p = t; *p; p++) n += *p == ',';
  n++;
  int64_t *nv = realloc(r->started, (r->n_started + n) * sizeof *nv);
  if (nv == NULL) return -1;
  r->started = nv;
  r->n_started += parse_arr(t, r->started + r->n_started, n);
  return 0;
}

/* One statement: the parts (0 counters, 1 live publications, 2 depth) come
 * from one snapshot. $1 the kind or NULL for all, $2 now, $3 depth. */
static const char *const read_sql =
    "SELECT 0, kind, counts::text, hist::text, sum_ms, avg_ms, 0, NULL, 0, 0, 0 FROM jobq_stats "
    "WHERE $1::text IS NULL OR kind = $1 "
    "UNION ALL SELECT 1, kind, NULL, NULL, 0, 0, concurrency, started::text, 0, 0, 0 "
    "FROM jobq_stats_live WHERE ($1::text IS NULL OR kind = $1) AND until >= $2::int8 "
    "UNION ALL SELECT 2, kind, NULL, NULL, 0, 0, 0, NULL, "
    "count(*) FILTER (WHERE run_at <= $2::int8), count(*) FILTER (WHERE run_at > $2::int8), "
    "coalesce((array_agg(run_at ORDER BY seq) FILTER (WHERE run_at <= $2::int8))[1], 0) "
    "FROM jobq_jobs WHERE $3::int = 1 AND state = 0 AND ($1::text IS NULL OR kind = $1) "
    "GROUP BY kind";

int jobq__pg_stats_read(void *st, const char *kind, int depth, int64_t now,
                        jobq_storage_kind_stats **out, size_t *n_out) {
  pg_store *s = st;
  *out = NULL;
  *n_out = 0;
  kinds_buf b = {0};
  if (kind && find(&b, kind) == NULL) { /* one record, whatever is stored */
    buf_free(&b);
    return OOM();
  }
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) {
    buf_free(&b);
    return rc;
  }
  char nb[24];
  const char *p[3] = {kind, jobq__pg_i64(nb, now), depth ? "1" : "0"};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, read_sql, 3, p, "cannot read the stats", &r);
  jobq__pg_release(s, c);
  int rows = rc == 0 ? PQntuples(r) : 0;
  for (int i = 0; rc == 0 && i < rows; i++) {
    jobq_storage_kind_stats *k = find(&b, PQgetvalue(r, i, 1));
    if (k == NULL) {
      rc = OOM();
      break;
    }
    switch ((int)jobq__pg_int(r, i, 0)) {
    case 0:
      parse_arr(PQgetvalue(r, i, 2), k->count, JOBQ_STORAGE_STAT_N);
      parse_arr(PQgetvalue(r, i, 3), k->hist, JOBQ_STORAGE_HIST_N);
      k->duration_sum_ms = strtod(PQgetvalue(r, i, 4), NULL);
      k->avg_ms = strtod(PQgetvalue(r, i, 5), NULL);
      break;
    case 1:
      k->concurrency += (int)jobq__pg_int(r, i, 6);
      if (!PQgetisnull(r, i, 7) && add_started(k, PQgetvalue(r, i, 7)) != 0) rc = OOM();
      break;
    default:
      k->queued = jobq__pg_int(r, i, 8);
      k->scheduled = jobq__pg_int(r, i, 9);
      k->oldest_queued_at = jobq__pg_int(r, i, 10);
      break;
    }
  }
  if (r) PQclear(r);
  if (rc) {
    buf_free(&b);
    return rc;
  }
  *out = b.v;
  *n_out = b.n;
  if (b.n == 0) {
    free(b.v);
    *out = NULL;
  }
  return 0;
}
