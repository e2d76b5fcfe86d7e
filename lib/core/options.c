/* Option objects and their setters. Each setter checks its value and says
 * which one was wrong; nothing is changed when it fails. */
#include "core/internal.h"
#include "util/id.h"
#include "util/utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Replaces *slot with a copy of s (NULL clears), limited to max bytes of
 * valid UTF-8. */
static int set_str(const char *fn, const char *what, char **slot, const char *s, size_t max) {
  if (s != NULL && (s[0] == '\0' || strlen(s) > max))
    return jobq__err(JOBQ_EINVAL, "%s: %s must be 1..%zu bytes", fn, what, max);
  int rc = jobq__utf8_check(fn, what, s);
  if (rc) return rc;
  char *d = NULL;
  if (s && (d = jobq__strdup(s)) == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  free(*slot);
  *slot = d;
  return 0;
}

int jobq__kind_name_check(const char *fn, const char *kind) {
  if (kind == NULL) return jobq__err(JOBQ_EINVAL, "%s: kind is NULL", fn);
  size_t n = strlen(kind);
  if (n == 0) return jobq__err(JOBQ_EKIND, "%s: kind is empty", fn);
  if (n > JOBQ_KIND_MAX)
    return jobq__err(JOBQ_EKIND, "%s: kind is %zu bytes long, at most %d allowed", fn, n,
                     JOBQ_KIND_MAX);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)kind[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum) continue;
    if (i > 0 && (c == '_' || c == '.' || c == ':' || c == '-')) continue;
    return jobq__err(JOBQ_EKIND,
                     "%s: kind has character 0x%02x at offset %zu; allowed are letters, digits "
                     "and _ . : - (not first)",
                     fn, c, i);
  }
  return 0;
}

/* ---- jobq_options_t ---- */

JOBQ_API jobq_options_t *jobq_options_new(void) {
  jobq_options_t *o = calloc(1, sizeof *o);
  if (o == NULL) {
    jobq__err(JOBQ_ENOMEM, "jobq_options_new: out of memory");
    return NULL;
  }
  jobq__options_defaults(o);
  return o;
}

void jobq__options_defaults(struct jobq_options_s *o) {
  o->workers = JOBQ_DEFAULT_WORKERS;
  o->max_payload = JOBQ_DEFAULT_MAX_PAYLOAD;
  o->event_buffer = JOBQ_DEFAULT_EVENT_BUFFER;
  o->lease_ms = JOBQ_DEFAULT_LEASE_MS;
  o->log_level = JOBQ_LOG_WARN;
  o->default_duration_ms = JOBQ_DEFAULT_DURATION_MS;
  jobq__wh_opts_defaults(&o->wh);
}

JOBQ_API int jobq_options_set_default_duration(jobq_options_t *o, int64_t ms) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_default_duration: opts is NULL");
  if (ms < 1 || ms > INT64_C(86400000))
    return jobq__err(JOBQ_EINVAL,
                     "jobq_options_set_default_duration: %lld ms is outside 1 ms..one day",
                     (long long)ms);
  o->default_duration_ms = ms;
  return 0;
}

JOBQ_API void jobq_options_free(jobq_options_t *o) {
  if (o == NULL) return;
  free(o->storage_url);
  free(o->workdir);
  for (int i = 0; i < o->n_quotas; i++) free((char *)o->quotas[i].kind);
  free(o->quotas);
  jobq__wh_opts_clear(&o->wh);
  free(o);
}

JOBQ_API int jobq_options_set_storage(jobq_options_t *o, const char *url) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_storage: opts is NULL");
  if (url == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_storage: url is NULL");
  const char *colon = strchr(url, ':');
  if (colon == NULL || colon == url)
    return jobq__err(JOBQ_EURL,
                     "jobq_options_set_storage: '%.100s' has no scheme; expected e.g. "
                     "\"memory:\"",
                     url);
  return set_str("jobq_options_set_storage", "url", &o->storage_url, url, 4096);
}

JOBQ_API int jobq_options_set_loop(jobq_options_t *o, struct uv_loop_s *loop) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_loop: opts is NULL");
  o->loop = loop;
  return 0;
}

JOBQ_API int jobq_options_set_workers(jobq_options_t *o, int n) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_workers: opts is NULL");
  if (n < 0 || n > 1024)
    return jobq__err(JOBQ_EINVAL, "jobq_options_set_workers: %d is outside 0..1024", n);
  o->workers = n;
  return 0;
}

JOBQ_API int jobq_options_set_max_payload(jobq_options_t *o, size_t bytes) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_max_payload: opts is NULL");
  if (bytes < 2 || bytes > (1u << 30))
    return jobq__err(JOBQ_EINVAL, "jobq_options_set_max_payload: %zu is outside 2..%u", bytes,
                     1u << 30);
  o->max_payload = bytes;
  return 0;
}

JOBQ_API int jobq_options_set_event_buffer(jobq_options_t *o, int events) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_event_buffer: opts is NULL");
  if (events < 1 || events > (1 << 24))
    return jobq__err(JOBQ_EINVAL, "jobq_options_set_event_buffer: %d is outside 1..%d", events,
                     1 << 24);
  o->event_buffer = events;
  o->event_buffer_set = 1;
  return 0;
}

JOBQ_API int jobq_options_set_shared_events(jobq_options_t *o, int on) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_shared_events: opts is NULL");
  if (on != 0 && on != 1)
    return jobq__err(JOBQ_EINVAL, "jobq_options_set_shared_events: %d is not 0 or 1", on);
  o->shared_events = on;
  return 0;
}

JOBQ_API int jobq_options_set_log(jobq_options_t *o, jobq_log_fn fn, void *ud, int max_level) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_log: opts is NULL");
  if (max_level < 0 || max_level > JOBQ_LOG_INFO)
    return jobq__err(JOBQ_EINVAL, "jobq_options_set_log: max_level %d is outside 0..%d", max_level,
                     JOBQ_LOG_INFO);
  o->log_fn = fn;
  o->log_ud = fn ? ud : NULL;
  o->log_level = max_level;
  return 0;
}

JOBQ_API int jobq_options_set_owner_quota(jobq_options_t *o, const char *kind, int max) {
  static const char fn[] = "jobq_options_set_owner_quota";
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  if (kind) {
    int rc = jobq__kind_name_check(fn, kind);
    if (rc) return rc;
  }
  if (max < 1 || max > 1000000)
    return jobq__err(JOBQ_EINVAL,
                     "%s: max %d is outside 1..1000000 (a quota of 0 would refuse every job of "
                     "an owner)",
                     fn, max);
  for (int i = 0; i < o->n_quotas; i++) {
    const char *k = o->quotas[i].kind;
    if ((k == NULL) == (kind == NULL) && (k == NULL || strcmp(k, kind) == 0)) {
      o->quotas[i].max = max; /* the same quota again: the new maximum */
      return 0;
    }
  }
  if (o->n_quotas == JOBQ_QUOTAS_MAX)
    return jobq__err(JOBQ_EINVAL, "%s: at most %d quotas", fn, JOBQ_QUOTAS_MAX);
  char *k = NULL;
  if (kind && (k = jobq__strdup(kind)) == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  jobq_storage_quota *v = realloc(o->quotas, (size_t)(o->n_quotas + 1) * sizeof *v);
  if (v == NULL) {
    free(k);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  }
  o->quotas = v;
  v[o->n_quotas].kind = k;
  v[o->n_quotas].max = max;
  o->n_quotas++;
  return 0;
}

JOBQ_API int jobq_options_set_cron_missed(jobq_options_t *o, int policy) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_cron_missed: opts is NULL");
  if (policy != JOBQ_CRON_MISSED_LATEST && policy != JOBQ_CRON_MISSED_SKIP &&
      policy != JOBQ_CRON_MISSED_ALL)
    return jobq__err(JOBQ_EINVAL,
                     "jobq_options_set_cron_missed: policy %d is not JOBQ_CRON_MISSED_LATEST (0), "
                     "_SKIP (1) or _ALL (2)",
                     policy);
  o->cron_missed = policy;
  return 0;
}

JOBQ_API int jobq_options_set_lease(jobq_options_t *o, int64_t ms) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_lease: opts is NULL");
  if (ms < 100 || ms > INT64_C(86400000))
    return jobq__err(JOBQ_EINVAL, "jobq_options_set_lease: %lld ms is outside 100..86400000",
                     (long long)ms);
  o->lease_ms = ms;
  return 0;
}

JOBQ_API int jobq_options_set_workdir(jobq_options_t *o, const char *dir) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_workdir: opts is NULL");
  if (dir == NULL || *dir == '\0')
    return jobq__err(JOBQ_EINVAL, "jobq_options_set_workdir: dir is NULL or empty");
  return set_str("jobq_options_set_workdir", "dir", &o->workdir, dir, 4096);
}

JOBQ_API int jobq_options_set_clock(jobq_options_t *o, jobq_clock_fn fn, void *ud) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_clock: opts is NULL");
  o->clock = fn;
  o->clock_ud = ud;
  return 0;
}

JOBQ_API int jobq_options_set_random(jobq_options_t *o, jobq_random_fn fn, void *ud) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "jobq_options_set_random: opts is NULL");
  o->random = fn;
  o->random_ud = ud;
  return 0;
}

/* ---- jobq_kind_opts_t ---- */

JOBQ_API jobq_kind_opts_t *jobq_kind_opts_new(void) {
  jobq_kind_opts_t *k = calloc(1, sizeof *k);
  if (k == NULL) {
    jobq__err(JOBQ_ENOMEM, "jobq_kind_opts_new: out of memory");
    return NULL;
  }
  jobq__kind_opts_defaults(k);
  return k;
}

void jobq__kind_opts_defaults(struct jobq_kind_opts_s *k) {
  k->max_attempts = JOBQ_DEFAULT_MAX_ATTEMPTS;
  k->backoff_base_ms = JOBQ_DEFAULT_BACKOFF_BASE_MS;
  k->backoff_max_ms = JOBQ_DEFAULT_BACKOFF_MAX_MS;
  k->jitter = JOBQ_DEFAULT_JITTER;
  k->retention_ms = JOBQ_DEFAULT_RETENTION_MS;
}

JOBQ_API void jobq_kind_opts_free(jobq_kind_opts_t *k) { free(k); }

JOBQ_API int jobq_kind_opts_set_concurrency(jobq_kind_opts_t *k, int n) {
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_concurrency: ko is NULL");
  if (n < 0 || n > 1000000)
    return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_concurrency: %d is outside 0..1000000", n);
  k->concurrency = n;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_rate_limit(jobq_kind_opts_t *k, int starts, int64_t interval_ms) {
  static const char F[] = "jobq_kind_opts_set_rate_limit";
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "%s: ko is NULL", F);
  if (starts < 0 || starts > 1000000)
    return jobq__err(JOBQ_EINVAL, "%s: starts %d is outside 1..1000000 (0 removes the limit)", F,
                     starts);
  if (starts == 0) {
    k->rate_starts = 0;
    k->rate_interval_ms = 0;
    return 0;
  }
  if (interval_ms <= 0)
    return jobq__err(JOBQ_EINVAL, "%s: interval_ms %lld is not positive", F, (long long)interval_ms);
  if (interval_ms > INT64_C(86400000))
    return jobq__err(JOBQ_EINVAL, "%s: interval_ms %lld is longer than a day (86400000)", F,
                     (long long)interval_ms);
  k->rate_starts = starts;
  k->rate_interval_ms = interval_ms;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_max_attempts(jobq_kind_opts_t *k, int n) {
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_max_attempts: ko is NULL");
  if (n < 1 || n > 1000)
    return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_max_attempts: %d is outside 1..1000", n);
  k->max_attempts = n;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_backoff(jobq_kind_opts_t *k, int64_t base_ms, int64_t max_ms,
                                        double jitter) {
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_backoff: ko is NULL");
  if (base_ms < 0 || max_ms < base_ms || max_ms > INT64_C(365) * 86400000)
    return jobq__err(JOBQ_EINVAL,
                     "jobq_kind_opts_set_backoff: need 0 <= base_ms (%lld) <= max_ms (%lld) <= "
                     "one year",
                     (long long)base_ms, (long long)max_ms);
  if (!(jitter >= 0.0 && jitter <= 1.0)) /* also refuses NaN */
    return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_backoff: jitter %g is outside 0..1",
                     jitter);
  k->backoff_base_ms = base_ms;
  k->backoff_max_ms = max_ms;
  k->jitter = jitter;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_timeout(jobq_kind_opts_t *k, int64_t ms) {
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_timeout: ko is NULL");
  if (ms < 0 || ms > INT64_C(365) * 86400000)
    return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_timeout: %lld is outside 0..one year",
                     (long long)ms);
  k->timeout_ms = ms;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_on_loop(jobq_kind_opts_t *k, int on_loop) {
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_on_loop: ko is NULL");
  if (on_loop != 0 && on_loop != 1)
    return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_on_loop: %d is not 0 or 1", on_loop);
  k->on_loop = on_loop;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_expected_duration(jobq_kind_opts_t *k, int64_t ms) {
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "jobq_kind_opts_set_expected_duration: ko is NULL");
  if (ms < 0 || ms > INT64_C(86400000))
    return jobq__err(JOBQ_EINVAL,
                     "jobq_kind_opts_set_expected_duration: %lld ms is outside 0..one day",
                     (long long)ms);
  k->expected_ms = ms;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_retention(jobq_kind_opts_t *k, int64_t ms) {
  static const char fn[] = "jobq_kind_opts_set_retention";
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "%s: ko is NULL", fn);
  if (ms != 0 && (ms < 1000 || ms > INT64_C(3650) * 86400000))
    return jobq__err(JOBQ_EINVAL,
                     "%s: %lld ms is outside 1000..315360000000 (one second to ten years; 0 "
                     "keeps finished jobs)",
                     fn, (long long)ms);
  k->retention_ms = ms;
  k->retention_set = 1;
  return 0;
}

JOBQ_API int jobq_kind_opts_set_keep_per_owner(jobq_kind_opts_t *k, int n) {
  static const char fn[] = "jobq_kind_opts_set_keep_per_owner";
  if (k == NULL) return jobq__err(JOBQ_EINVAL, "%s: ko is NULL", fn);
  if (n < 0 || n > 100000) return jobq__err(JOBQ_EINVAL, "%s: %d is outside 0..100000", fn, n);
  k->keep_per_owner = n;
  if (n) k->retention_set = 1;
  return 0;
}

/* ---- jobq_submit_opts_t ---- */

JOBQ_API jobq_submit_opts_t *jobq_submit_opts_new(void) {
  jobq_submit_opts_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    jobq__err(JOBQ_ENOMEM, "jobq_submit_opts_new: out of memory");
    return NULL;
  }
  s->delay_ms = -1;
  s->run_at = -1;
  return s;
}

JOBQ_API void jobq_submit_opts_free(jobq_submit_opts_t *s) {
  if (s == NULL) return;
  free(s->owner);
  free(s->dedupe_key);
  jobq__wh_subs_free(s);
  free(s);
}

JOBQ_API int jobq_submit_opts_set_owner(jobq_submit_opts_t *s, const char *owner) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_owner: so is NULL");
  return set_str("jobq_submit_opts_set_owner", "owner", &s->owner, owner, JOBQ_OWNER_MAX);
}

JOBQ_API int jobq_submit_opts_set_priority(jobq_submit_opts_t *s, int priority) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_priority: so is NULL");
  if (priority < -1000 || priority > 1000)
    return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_priority: %d is outside -1000..1000",
                     priority);
  s->priority = priority;
  return 0;
}

JOBQ_API int jobq_submit_opts_set_run_at(jobq_submit_opts_t *s, int64_t at_ms) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_run_at: so is NULL");
  if (at_ms < 0)
    return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_run_at: %lld is before 1970",
                     (long long)at_ms);
  s->run_at = at_ms;
  return 0;
}

JOBQ_API int jobq_submit_opts_set_delay(jobq_submit_opts_t *s, int64_t ms) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_delay: so is NULL");
  if (ms < 0 || ms > INT64_C(3650) * 86400000)
    return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_delay: %lld is outside 0..ten years",
                     (long long)ms);
  s->delay_ms = ms;
  return 0;
}

JOBQ_API int jobq_submit_opts_set_max_attempts(jobq_submit_opts_t *s, int n) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_max_attempts: so is NULL");
  if (n < 1 || n > 1000)
    return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_max_attempts: %d is outside 1..1000", n);
  s->max_attempts = n;
  return 0;
}

JOBQ_API int jobq_submit_opts_set_dedupe(jobq_submit_opts_t *s, const char *key, int64_t ttl_ms) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_dedupe: so is NULL");
  if (key && ttl_ms < 0)
    return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_dedupe: ttl_ms %lld is negative",
                     (long long)ttl_ms);
  int rc = set_str("jobq_submit_opts_set_dedupe", "key", &s->dedupe_key, key, JOBQ_DEDUPE_MAX);
  if (rc == 0) s->dedupe_ttl_ms = key ? ttl_ms : 0;
  return rc;
}

JOBQ_API int jobq_submit_opts_set_dedupe_until(jobq_submit_opts_t *s, const char *key,
                                              int64_t until_ms) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_dedupe_until: so is NULL");
  if (key && until_ms <= 0)
    return jobq__err(JOBQ_EINVAL,
                     "jobq_submit_opts_set_dedupe_until: until_ms %lld is not a time after the "
                     "epoch",
                     (long long)until_ms);
  int rc = set_str("jobq_submit_opts_set_dedupe_until", "key", &s->dedupe_key, key,
                   JOBQ_DEDUPE_MAX);
  /* Stored as a negative TTL: the storage record's encoding of an absolute
   * expiry (jobq/storage.h, dedupe_ttl_ms). */
  if (rc == 0) s->dedupe_ttl_ms = key ? -until_ms : 0;
  return rc;
}

JOBQ_API int jobq_submit_opts_set_force(jobq_submit_opts_t *s, int force) {
  if (s == NULL) return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_force: so is NULL");
  if (force != 0 && force != 1)
    return jobq__err(JOBQ_EINVAL, "jobq_submit_opts_set_force: %d is not 0 or 1", force);
  s->force = force;
  return 0;
}

/* ---- jobq_filter_t ---- */

JOBQ_API jobq_filter_t *jobq_filter_new(void) {
  jobq_filter_t *f = calloc(1, sizeof *f);
  if (f == NULL) {
    jobq__err(JOBQ_ENOMEM, "jobq_filter_new: out of memory");
    return NULL;
  }
  f->state = -1;
  f->limit = 50;
  f->newest_first = 1;
  return f;
}

JOBQ_API void jobq_filter_free(jobq_filter_t *f) {
  if (f == NULL) return;
  free(f->owner);
  free(f->kind);
  free(f->cursor);
  free(f);
}

JOBQ_API int jobq_filter_set_owner(jobq_filter_t *f, const char *owner) {
  if (f == NULL) return jobq__err(JOBQ_EINVAL, "jobq_filter_set_owner: filter is NULL");
  return set_str("jobq_filter_set_owner", "owner", &f->owner, owner, JOBQ_OWNER_MAX);
}

JOBQ_API int jobq_filter_set_kind(jobq_filter_t *f, const char *kind) {
  if (f == NULL) return jobq__err(JOBQ_EINVAL, "jobq_filter_set_kind: filter is NULL");
  if (kind) {
    int rc = jobq__kind_name_check("jobq_filter_set_kind", kind);
    if (rc) return rc;
  }
  return set_str("jobq_filter_set_kind", "kind", &f->kind, kind, JOBQ_KIND_MAX);
}

JOBQ_API int jobq_filter_set_state(jobq_filter_t *f, int state) {
  if (f == NULL) return jobq__err(JOBQ_EINVAL, "jobq_filter_set_state: filter is NULL");
  if (state < -1 || state > JOBQ_CANCELLED)
    return jobq__err(JOBQ_EINVAL, "jobq_filter_set_state: %d is not a state or -1", state);
  f->state = state;
  return 0;
}

JOBQ_API int jobq_filter_set_limit(jobq_filter_t *f, int limit) {
  if (f == NULL) return jobq__err(JOBQ_EINVAL, "jobq_filter_set_limit: filter is NULL");
  if (limit < 1 || limit > 1000)
    return jobq__err(JOBQ_EINVAL, "jobq_filter_set_limit: %d is outside 1..1000", limit);
  f->limit = limit;
  return 0;
}

JOBQ_API int jobq_filter_set_newest_first(jobq_filter_t *f, int newest_first) {
  if (f == NULL) return jobq__err(JOBQ_EINVAL, "jobq_filter_set_newest_first: filter is NULL");
  if (newest_first != 0 && newest_first != 1)
    return jobq__err(JOBQ_EINVAL, "jobq_filter_set_newest_first: %d is not 0 or 1",
                     newest_first);
  f->newest_first = newest_first;
  return 0;
}

JOBQ_API int jobq_filter_set_cursor(jobq_filter_t *f, const char *cursor) {
  if (f == NULL) return jobq__err(JOBQ_EINVAL, "jobq_filter_set_cursor: filter is NULL");
  if (cursor && (strlen(cursor) != JOBQ_ID_SIZE - 1 || !jobq__id_valid(cursor)))
    return jobq__err(JOBQ_EINVAL, "jobq_filter_set_cursor: '%.64s' is not a cursor from "
                     "jobq_page_next_cursor", cursor);
  return set_str("jobq_filter_set_cursor", "cursor", &f->cursor, cursor, JOBQ_ID_SIZE);
}
