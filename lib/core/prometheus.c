/* jobq_stats_to_prometheus: a snapshot in the Prometheus text exposition
 * format, version 0.0.4 (what a /metrics endpoint serves). Durations are
 * in seconds and ratios 0..1, as Prometheus' conventions ask; a family
 * is written whole (HELP, TYPE, then its samples), and label values are
 * escaped (backslash, double quote, newline). */
#include "core/internal.h"
#include "core/stats.h"
#include "util/sbuf.h"

#include <math.h>
#include <stdio.h>

static void family(jobq_sbuf *b, const char *name, const char *type, const char *help) {
  jobq__sb_str(b, "# HELP ");
  jobq__sb_str(b, name);
  jobq__sb_str(b, " ");
  jobq__sb_str(b, help);
  jobq__sb_str(b, "\n# TYPE ");
  jobq__sb_str(b, name);
  jobq__sb_str(b, " ");
  jobq__sb_str(b, type);
  jobq__sb_str(b, "\n");
}

static void label_value(jobq_sbuf *b, const char *v) {
  for (const char *p = v; *p; p++) {
    if (*p == '\\') jobq__sb_str(b, "\\\\");
    else if (*p == '"') jobq__sb_str(b, "\\\"");
    else if (*p == '\n') jobq__sb_str(b, "\\n");
    else jobq__sb_raw(b, p, 1);
  }
}

/* name{kind="k"[,extra="v"]} value. kind NULL: no labels. */
static void sample(jobq_sbuf *b, const char *name, const char *kind, const char *extra,
                   const char *extra_v, double v) {
  jobq__sb_str(b, name);
  if (kind || extra) {
    jobq__sb_str(b, "{");
    if (kind) {
      jobq__sb_str(b, "kind=\"");
      label_value(b, kind);
      jobq__sb_str(b, "\"");
    }
    if (extra) {
      if (kind) jobq__sb_str(b, ",");
      jobq__sb_str(b, extra);
      jobq__sb_str(b, "=\"");
      label_value(b, extra_v);
      jobq__sb_str(b, "\"");
    }
    jobq__sb_str(b, "}");
  }
  char buf[64];
  if (isnan(v)) snprintf(buf, sizeof buf, " NaN\n");
  else if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, sizeof buf, " %.0f\n", v);
  else snprintf(buf, sizeof buf, " %.9g\n", v);
  jobq__sb_str(b, buf);
}

static const char *const outcomes[5] = {"started", "succeeded", "failed", "retried", "cancelled"};

static void shared(jobq_sbuf *b, const jobq_stats_t *st) {
  const int n = st->n_kinds;
  const jobq_storage_kind_stats *k = st->kinds;
  family(b, "jobq_queue_jobs", "gauge", "Jobs in the store by kind and state, when the snapshot was taken.");
  for (int i = 0; i < n; i++) {
    sample(b, "jobq_queue_jobs", k[i].kind, "state", "queued", (double)k[i].queued);
    sample(b, "jobq_queue_jobs", k[i].kind, "state", "scheduled", (double)k[i].scheduled);
    sample(b, "jobq_queue_jobs", k[i].kind, "state", "running", (double)k[i].n_started);
  }
  family(b, "jobq_oldest_queued_seconds", "gauge",
         "How long the oldest due job of the kind has waited.");
  for (int i = 0; i < n; i++)
    sample(b, "jobq_oldest_queued_seconds", k[i].kind, NULL, NULL,
           (double)jobq_stats_kind_oldest_queued_ms(st, i) / 1000.0);
  family(b, "jobq_jobs_total", "counter", "Attempts started and jobs ended, by kind and outcome.");
  for (int i = 0; i < n; i++)
    for (int w = 0; w < 5; w++)
      sample(b, "jobq_jobs_total", k[i].kind, "outcome", outcomes[w], (double)k[i].count[w]);
  family(b, "jobq_error_ratio", "gauge", "failed / (succeeded + failed) of the kind (NaN: none).");
  for (int i = 0; i < n; i++)
    sample(b, "jobq_error_ratio", k[i].kind, NULL, NULL, jobq_stats_kind_error_rate(st, i));
  family(b, "jobq_job_duration_seconds", "histogram", "Durations of attempts that ended.");
  for (int i = 0; i < n; i++) {
    int64_t cum = 0;
    for (int j = 0; j < JOBQ_STORAGE_HIST_N; j++) {
      cum += k[i].hist[j];
      char le[32];
      if (j == JOBQ_STORAGE_HIST_N - 1) snprintf(le, sizeof le, "+Inf");
      else snprintf(le, sizeof le, "%g", (double)jobq__hist_bound(j) / 1000.0);
      sample(b, "jobq_job_duration_seconds_bucket", k[i].kind, "le", le, (double)cum);
    }
    sample(b, "jobq_job_duration_seconds_sum", k[i].kind, NULL, NULL,
           k[i].duration_sum_ms / 1000.0);
    sample(b, "jobq_job_duration_seconds_count", k[i].kind, NULL, NULL, (double)cum);
  }
  family(b, "jobq_job_duration_average_seconds", "gauge",
         "The moving average of attempt durations that ETA uses (NaN: none yet).");
  for (int i = 0; i < n; i++)
    sample(b, "jobq_job_duration_average_seconds", k[i].kind, NULL, NULL,
           k[i].avg_ms > 0 ? k[i].avg_ms / 1000.0 : NAN);
  family(b, "jobq_concurrency", "gauge", "Attempts of the kind the live workers run at once.");
  for (int i = 0; i < n; i++)
    sample(b, "jobq_concurrency", k[i].kind, NULL, NULL, (double)k[i].concurrency);
  /* Lookups without a kind (a key that no job holds) under kind="". */
  int64_t rest[JOBQ_STAT_N];
  for (int w = 0; w < JOBQ_STAT_N; w++) {
    rest[w] = st->total[w];
    for (int i = 0; i < n; i++) rest[w] -= k[i].count[w];
  }
  family(b, "jobq_cache_lookups_total", "counter",
         "Submits with a dedupe key and jobq_get_by_key calls: hit (a live job held the key) "
         "or miss.");
  for (int i = 0; i < n; i++) {
    sample(b, "jobq_cache_lookups_total", k[i].kind, "result", "hit",
           (double)k[i].count[JOBQ_STAT_CACHE_HIT]);
    sample(b, "jobq_cache_lookups_total", k[i].kind, "result", "miss",
           (double)k[i].count[JOBQ_STAT_CACHE_MISS]);
  }
  if (rest[JOBQ_STAT_CACHE_HIT] || rest[JOBQ_STAT_CACHE_MISS]) {
    sample(b, "jobq_cache_lookups_total", "", "result", "hit", (double)rest[JOBQ_STAT_CACHE_HIT]);
    sample(b, "jobq_cache_lookups_total", "", "result", "miss", (double)rest[JOBQ_STAT_CACHE_MISS]);
  }
  family(b, "jobq_rate_limit_waits_total", "counter", "Starts a rate limit held back.");
  for (int i = 0; i < n; i++)
    sample(b, "jobq_rate_limit_waits_total", k[i].kind, NULL, NULL,
           (double)k[i].count[JOBQ_STAT_RATE_WAIT]);
  if (rest[JOBQ_STAT_RATE_WAIT])
    sample(b, "jobq_rate_limit_waits_total", "", NULL, NULL, (double)rest[JOBQ_STAT_RATE_WAIT]);
}

JOBQ_API char *jobq_stats_to_prometheus(const jobq_stats_t *st) {
  if (st == NULL) {
    jobq__err(JOBQ_EINVAL, "jobq_stats_to_prometheus: st is NULL");
    return NULL;
  }
  jobq_sbuf b = {0};
  if (st->shared) shared(&b, st);
  family(&b, "jobq_running_here", "gauge", "Attempts running in this process.");
  sample(&b, "jobq_running_here", NULL, NULL, NULL, st->running);
  family(&b, "jobq_storage_healthy", "gauge",
         "1 while storage answers this process's background work, else 0.");
  sample(&b, "jobq_storage_healthy", NULL, NULL, NULL, st->failing_since ? 0 : 1);
  family(&b, "jobq_storage_errors_total", "counter",
         "Storage calls of this process's background work that failed.");
  sample(&b, "jobq_storage_errors_total", NULL, NULL, NULL, (double)st->storage_errors);
  family(&b, "jobq_storage_failing_since_seconds", "gauge",
         "Since when (Unix time) that work fails; 0 while it does not.");
  sample(&b, "jobq_storage_failing_since_seconds", NULL, NULL, NULL,
         (double)st->failing_since / 1000.0);
  family(&b, "jobq_webhook_tries_total", "counter",
         "Webhook tries this process made, by how they ended.");
  sample(&b, "jobq_webhook_tries_total", NULL, "outcome", "delivered",
         (double)st->wh_tries[JOBQ_DELIVERY_DELIVERED]);
  sample(&b, "jobq_webhook_tries_total", NULL, "outcome", "retried",
         (double)st->wh_tries[JOBQ_DELIVERY_PENDING]);
  sample(&b, "jobq_webhook_tries_total", NULL, "outcome", "failed",
         (double)st->wh_tries[JOBQ_DELIVERY_FAILED]);
  if (st->outbox) {
    family(&b, "jobq_webhook_outbox", "gauge", "Webhook deliveries on the store, by state.");
    for (int i = 0; i <= JOBQ_DELIVERY_FAILED; i++)
      sample(&b, "jobq_webhook_outbox", NULL, "state", jobq_delivery_state_name(i),
             (double)st->wh_outbox[i]);
  }
  char *s = jobq__sb_take(&b);
  if (s == NULL) jobq__err(JOBQ_ENOMEM, "jobq_stats_to_prometheus: out of memory");
  return s;
}
