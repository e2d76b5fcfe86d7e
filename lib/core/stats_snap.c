/* The store-wide part of a jobq_stats snapshot: its accessors and its
 * JSON (the process-local part is core/health.c's). */
#include "core/internal.h"
#include "core/stats.h"
#include "util/sbuf.h"

#include <math.h>
#include <stdio.h>

/* 0, or the code and sentence for a bad st. */
static int check(const jobq_stats_t *st, const char *fn) {
  if (st == NULL) return jobq__err(JOBQ_EINVAL, "%s: st is NULL", fn);
  if (st->shared_rc)
    return jobq__err(st->shared_rc, "%s: the store's stats could not be read: %s", fn,
                     st->shared_err ? st->shared_err : jobq_strerror(st->shared_rc));
  if (!st->shared)
    return jobq__err(JOBQ_ENOTSUP, "%s: the %s backend keeps no shared stats", fn,
                     st->scheme ? st->scheme : "storage");
  return 0;
}

/* The same, and for a kind index out of range. */
static int check_i(const jobq_stats_t *st, int i, const char *fn) {
  int rc = check(st, fn);
  if (rc == 0 && (i < 0 || i >= st->n_kinds))
    rc = st->n_kinds ? jobq__err(JOBQ_EINVAL, "%s: kind index %d is outside 0..%d", fn, i,
                                 st->n_kinds - 1)
                     : jobq__err(JOBQ_EINVAL, "%s: kind index %d: the snapshot has no kinds",
                                 fn, i);
  return rc;
}

JOBQ_API int jobq_stats_kind_count(const jobq_stats_t *st) {
  int rc = check(st, "jobq_stats_kind_count");
  return rc ? rc : st->n_kinds;
}

JOBQ_API const char *jobq_stats_kind_name(const jobq_stats_t *st, int i) {
  return check_i(st, i, "jobq_stats_kind_name") ? NULL : st->kinds[i].kind;
}

#define KIND_INT(name, expr)                                              \
  JOBQ_API int64_t name(const jobq_stats_t *st, int i) {                  \
    int rc = check_i(st, i, #name);                            \
    if (rc) return rc;                                                    \
    const jobq_storage_kind_stats *k = &st->kinds[i];                     \
    return (expr);                                                        \
  }

KIND_INT(jobq_stats_kind_queued, k->queued)
KIND_INT(jobq_stats_kind_scheduled, k->scheduled)
KIND_INT(jobq_stats_kind_running, (int64_t)k->n_started)
KIND_INT(jobq_stats_kind_oldest_queued_ms,
         k->oldest_queued_at > 0 && st->time > k->oldest_queued_at ? st->time - k->oldest_queued_at
                                                                  : 0)

JOBQ_API int jobq_stats_kind_concurrency(const jobq_stats_t *st, int i) {
  int rc = check_i(st, i, "jobq_stats_kind_concurrency");
  return rc ? rc : st->kinds[i].concurrency;
}

static int which_check(int which, const char *fn) {
  if (which < 0 || which >= JOBQ_STAT_N)
    return jobq__err(JOBQ_EINVAL, "%s: counter %d is not a JOBQ_STAT_* (0..%d)", fn, which,
                     JOBQ_STAT_N - 1);
  return 0;
}

JOBQ_API int64_t jobq_stats_kind_counter(const jobq_stats_t *st, int i, int which) {
  int rc = check_i(st, i, "jobq_stats_kind_counter");
  if (rc == 0) rc = which_check(which, "jobq_stats_kind_counter");
  return rc ? rc : st->kinds[i].count[which];
}

JOBQ_API int64_t jobq_stats_total(const jobq_stats_t *st, int which) {
  int rc = check(st, "jobq_stats_total");
  if (rc == 0) rc = which_check(which, "jobq_stats_total");
  return rc ? rc : st->total[which];
}

static double error_rate(const jobq_storage_kind_stats *k) {
  int64_t ok = k->count[JOBQ_STAT_SUCCEEDED], bad = k->count[JOBQ_STAT_FAILED];
  return ok + bad > 0 ? (double)bad / (double)(ok + bad) : NAN;
}

JOBQ_API double jobq_stats_kind_error_rate(const jobq_stats_t *st, int i) {
  int rc = check_i(st, i, "jobq_stats_kind_error_rate");
  return rc ? rc : error_rate(&st->kinds[i]);
}

JOBQ_API double jobq_stats_kind_duration_quantile(const jobq_stats_t *st, int i, double q) {
  int rc = check_i(st, i, "jobq_stats_kind_duration_quantile");
  if (rc) return rc;
  if (!(q > 0 && q <= 1))
    return jobq__err(JOBQ_EINVAL, "jobq_stats_kind_duration_quantile: q %g is not in (0, 1]", q);
  double v = jobq__hist_quantile(st->kinds[i].hist, q);
  return v < 0 ? NAN : v;
}

JOBQ_API double jobq_stats_kind_average_ms(const jobq_stats_t *st, int i) {
  int rc = check_i(st, i, "jobq_stats_kind_average_ms");
  if (rc) return rc;
  return st->kinds[i].avg_ms > 0 ? st->kinds[i].avg_ms : NAN;
}

static void sb_num(jobq_sbuf *b, double v) {
  char buf[64];
  if (isnan(v)) {
    jobq__sb_str(b, "null");
    return;
  }
  snprintf(buf, sizeof buf, "%.6g", v);
  jobq__sb_str(b, buf);
}

static const char *const counter_keys[JOBQ_STAT_N] = {
    "started", "succeeded", "failed", "retried", "cancelled", "cacheHits", "cacheMisses",
    "rateLimitWaits"};

static void counters(jobq_sbuf *b, const int64_t *c) {
  int f = 1;
  jobq__sb_str(b, "{");
  for (int w = 0; w < JOBQ_STAT_N; w++) {
    jobq__sb_key(b, counter_keys[w], &f);
    jobq__sb_int(b, c[w]);
  }
  jobq__sb_str(b, "}");
}

/* ,"kinds":{...},"totals":{...} after the process-local fields. */
void jobq__stats_json_shared(jobq_sbuf *b, const jobq_stats_t *st, int *first);
void jobq__stats_json_shared(jobq_sbuf *b, const jobq_stats_t *st, int *first) {
  if (!st->shared) return;
  jobq__sb_key(b, "kinds", first);
  jobq__sb_str(b, "{");
  int fk = 1;
  for (int i = 0; i < st->n_kinds; i++) {
    const jobq_storage_kind_stats *k = &st->kinds[i];
    jobq__sb_key(b, k->kind, &fk);
    int f = 1;
    jobq__sb_str(b, "{");
    jobq__sb_key(b, "queued", &f);
    jobq__sb_int(b, k->queued);
    jobq__sb_key(b, "scheduled", &f);
    jobq__sb_int(b, k->scheduled);
    jobq__sb_key(b, "running", &f);
    jobq__sb_int(b, (int64_t)k->n_started);
    jobq__sb_key(b, "oldestQueuedMs", &f);
    jobq__sb_int(b, jobq_stats_kind_oldest_queued_ms(st, i));
    jobq__sb_key(b, "concurrency", &f);
    jobq__sb_int(b, k->concurrency);
    jobq__sb_key(b, "counts", &f);
    counters(b, k->count);
    jobq__sb_key(b, "errorRate", &f);
    sb_num(b, error_rate(k));
    jobq__sb_key(b, "durationMs", &f);
    int fd = 1;
    jobq__sb_str(b, "{");
    jobq__sb_key(b, "p50", &fd);
    sb_num(b, jobq_stats_kind_duration_quantile(st, i, 0.5));
    jobq__sb_key(b, "p95", &fd);
    sb_num(b, jobq_stats_kind_duration_quantile(st, i, 0.95));
    jobq__sb_key(b, "average", &fd);
    sb_num(b, k->avg_ms > 0 ? k->avg_ms : NAN);
    jobq__sb_str(b, "}}");
  }
  jobq__sb_str(b, "}");
  jobq__sb_key(b, "totals", first);
  counters(b, st->total);
}
