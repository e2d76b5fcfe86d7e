/* Health: what storage last answered the work this process does in the
 * background, where no caller is there to receive an error: the workers'
 * claims, heartbeats, progress writes, rescues, timeouts and finishes
 * stored asynchronously. A damaged file or a full disk used to leave the
 * workers retrying in silence while nothing ran. Here every such answer is
 * noted, and a change between "answers" and "fails" is news: an event
 * (JOBQ_EVENT_STORAGE_ERROR, JOBQ_EVENT_STORAGE_OK), a log line; the
 * stats and jobq_health tell the current state to whoever asks.
 *
 * The log: lines are queued under the core lock wherever something
 * happens and handed to the host on the loop thread. So the host's hook is
 * never called with a libjobq lock held (it may call libjobq), and always
 * from one thread, in order. */
#include "core/internal.h"
#include "core/stats.h"
#include "util/sbuf.h"
#include "util/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Lines waiting for the loop; past this they are counted, not kept (a
 * stuck loop must not grow memory without bound). */
#define LOG_QUEUE_MAX 1024
#define LOG_LINE_MAX 2048
/* While storage keeps failing, "still failing" once a minute. */
#define REMINDER_MS 60000

static const char *const op_names[JOBQ_OP_N] = {"claims",   "heartbeats", "progress writes",
                                                "rescues",  "timeouts",   "finishes",
                                                "cron schedules",
                                                "retention", "webhook deliveries"};

struct jobq__logline {
  struct jobq__logline *next;
  int level;
  char msg[];
};

static const char *level_name(int level) {
  return level == JOBQ_LOG_ERROR ? "error" : level == JOBQ_LOG_WARN ? "warning" : "info";
}

void jobq__log(jobq_t *q, int level, const char *fmt, ...) {
  if (level > q->o.log_level) return;
  if (q->log.n >= LOG_QUEUE_MAX) {
    q->log.dropped++;
    return;
  }
  char buf[LOG_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  jobq__utf8_fix(buf); /* a cut may have split a character */
  size_t n = strlen(buf);
  struct jobq__logline *l = malloc(sizeof *l + n + 1);
  if (l == NULL) {
    q->log.dropped++;
    return;
  }
  l->next = NULL;
  l->level = level;
  memcpy(l->msg, buf, n + 1);
  if (q->log.tail) q->log.tail->next = l;
  else q->log.head = l;
  q->log.tail = l;
  q->log.n++;
  jobq__kick_loop(q);
}

static void deliver(jobq_t *q, int level, const char *msg) {
  if (q->o.log_fn) q->o.log_fn(level, msg, q->o.log_ud);
  else fprintf(stderr, "libjobq: %s: %s\n", level_name(level), msg);
}

void jobq__log_dispatch(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  struct jobq__logline *l = q->log.head;
  int64_t dropped = q->log.dropped;
  q->log.head = q->log.tail = NULL;
  q->log.n = 0;
  q->log.dropped = 0;
  uv_mutex_unlock(&q->mu);
  if (dropped) {
    char buf[128];
    snprintf(buf, sizeof buf, "%lld log lines were dropped (more than %d waited for the loop, "
             "or memory ran out)", (long long)dropped, LOG_QUEUE_MAX);
    deliver(q, JOBQ_LOG_WARN, buf);
  }
  while (l) {
    struct jobq__logline *n = l->next;
    deliver(q, l->level, l->msg);
    free(l);
    l = n;
  }
}

void jobq__log_free(jobq_t *q) {
  for (struct jobq__logline *l = q->log.head, *n; l; l = n) {
    n = l->next;
    free(l);
  }
  q->log.head = q->log.tail = NULL;
  q->log.n = 0;
  free(q->health.last_error);
  q->health.last_error = NULL;
}

/* "2026-12-06T03:20:01Z" for ms since the epoch. */
static void iso_time(int64_t ms, char *out, size_t cap) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(out, cap, "%lld ms", (long long)ms);
}

void jobq__health_note(jobq_t *q, jobq__op op, int rc) {
  unsigned bit = 1u << op;
  if (rc >= 0) {
    if (!(q->health.failing & bit)) return; /* the common case: nothing to say */
    q->health.failing &= ~bit;
    if (q->health.failing) return; /* other work still fails */
    int64_t now = jobq__now(q);
    jobq__log(q, JOBQ_LOG_WARN,
              "storage answers this process's background work again after %.1f s "
              "(%lld failed calls); workers claim again",
              (double)(now - q->health.failing_since) / 1000.0,
              (long long)q->health.episode_errors);
    q->health.failing_since = 0;
    q->health.episode_errors = 0;
    jobq__emit_queue_event(q, JOBQ_EVENT_STORAGE_OK, 0, NULL);
    return;
  }
  const char *why = jobq_last_error();
  if (why[0] == '\0') why = jobq_strerror(rc);
  int64_t now = jobq__now(q);
  q->health.errors++;
  q->health.episode_errors++;
  q->health.last_code = rc;
  q->health.last_at = now;
  size_t n = strlen(op_names[op]) + strlen(why) + 3;
  char *msg = malloc(n);
  if (msg) { /* out of memory: the previous sentence stays, the code is current */
    snprintf(msg, n, "%s: %s", op_names[op], why);
    free(q->health.last_error);
    q->health.last_error = msg;
  }
  int was_failing = q->health.failing != 0;
  q->health.failing |= bit;
  if (!was_failing) {
    q->health.failing_since = now;
    q->health.next_reminder = now + REMINDER_MS;
    jobq__log(q, JOBQ_LOG_ERROR,
              "storage failed this process's %s: %s (%s); workers claim nothing until it "
              "answers again",
              op_names[op], why, jobq_err_name(rc));
    jobq__emit_queue_event(q, JOBQ_EVENT_STORAGE_ERROR, rc, msg ? msg : why);
  } else if (now >= q->health.next_reminder) {
    q->health.next_reminder = now + REMINDER_MS;
    jobq__log(q, JOBQ_LOG_ERROR, "storage still failing after %.0f s (%lld failed calls): %s: %s",
              (double)(now - q->health.failing_since) / 1000.0,
              (long long)q->health.episode_errors, op_names[op], why);
  }
}

/* ---- jobq_health ---- */

/* An id no job has (UUIDv7 ids carry a time; this one's is 0): reading it
 * goes through storage's read path and answers "not found". */
static const char PROBE_ID[JOBQ_ID_SIZE] = "00000000-0000-7000-8000-000000000000";

JOBQ_API int jobq_health(jobq_t *q) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_health: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_health");
  uv_mutex_lock(&q->mu);
  if (q->closed || q->stopping) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "jobq_health: the queue is closing");
  }
  if (q->health.failing) {
    char since[32];
    iso_time(q->health.failing_since, since, sizeof since);
    int rc = q->health.last_code;
    jobq__err(rc, "jobq_health: storage has failed this process's background work since %s "
              "(%lld failed calls, the latest %lld ms ago): %s",
              since, (long long)q->health.episode_errors,
              (long long)(jobq__now(q) - q->health.last_at),
              q->health.last_error ? q->health.last_error : jobq_strerror(rc));
    uv_mutex_unlock(&q->mu);
    return rc;
  }
  q->refs++;
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  jobq_storage_job rec;
  memset(&rec, 0, sizeof rec);
  jobq__set_detail("");
  int rc = q->ops->get(q->st, PROBE_ID, jobq__now(q), &rec);
  if (rc == 0) jobq_storage_job_clear(&rec);
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  if (rc == JOBQ_ENOTFOUND || rc == 0) {
    rc = 0;
    jobq__set_detail("");
  } else {
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
    rc = jobq__err_prefix(rc, NULL, "jobq_health: a probe read of storage failed: ");
  }
  jobq__q_unref(q);
  return rc;
}

/* ---- jobq_stats ---- */

static int by_name(const void *a, const void *b) {
  return strcmp(((const jobq_storage_kind_stats *)a)->kind,
                ((const jobq_storage_kind_stats *)b)->kind);
}

/* The store-wide part of a snapshot: this process's counts are added to
 * the store first, so that the snapshot holds them. */
static int shared_read(jobq_t *q, jobq_stats_t *st) {
  if ((st->scheme = jobq__strdup(q->ops->scheme)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "jobq_stats: out of memory");
  if (q->ops->version < 3 || q->ops->stats_add == NULL || q->ops->stats_read == NULL) return 0;
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "jobq_stats: the queue is closing");
  }
  q->refs++;
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  int rc = jobq__stats_flush(q, 0);
  jobq_storage_kind_stats *v = NULL;
  size_t n = 0;
  if (rc == 0) {
    jobq__set_detail("");
    rc = q->ops->stats_read(q->st, NULL, 1, st->time, &v, &n);
  }
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  jobq__q_unref(q);
  if (rc) {
    /* The process's own part stays useful (a health endpoint wants it
     * most when storage fails): the accessors of the store's part say. */
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
    st->shared_rc = rc;
    st->shared_err = jobq__strdup(jobq_last_error());
    jobq__set_detail("");
    return 0;
  }
  /* The kind-less counts go into the totals only. */
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    for (int w = 0; w < JOBQ_STAT_N; w++) st->total[w] += v[i].count[w];
    if (v[i].kind == NULL || v[i].kind[0] == '\0') {
      free(v[i].kind);
      free(v[i].started);
      continue;
    }
    v[k++] = v[i];
  }
  /* A store that never held a job answers no rows, and v is then NULL:
   * qsort must not see it (its pointer is declared non-null). */
  if (k > 1) qsort(v, k, sizeof *v, by_name);
  st->kinds = v;
  st->n_kinds = (int)k;
  st->shared = 1;
  return 0;
}

JOBQ_API int jobq_stats(jobq_t *q, jobq_stats_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_stats: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_stats");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_stats: out is NULL");
  jobq_stats_t *st = calloc(1, sizeof *st);
  if (st == NULL) return jobq__err(JOBQ_ENOMEM, "jobq_stats: out of memory");
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    free(st);
    return jobq__err(JOBQ_ECLOSED, "jobq_stats: the queue is closing");
  }
  st->time = jobq__now(q);
  st->running = (int)q->running.map.count;
  st->rate_limited = q->claim.rate_limited;
  st->storage_errors = q->health.errors;
  st->failing_since = q->health.failing_since;
  st->last_code = q->health.last_code;
  st->last_at = q->health.last_at;
  if (q->health.last_error && (st->last_error = jobq__strdup(q->health.last_error)) == NULL) {
    uv_mutex_unlock(&q->mu);
    free(st);
    return jobq__err(JOBQ_ENOMEM, "jobq_stats: out of memory");
  }
  uv_mutex_unlock(&q->mu);
  int rc = shared_read(q, st);
  if (rc) {
    jobq_stats_free(st);
    return rc;
  }
  jobq__wh_tries(q, st->wh_tries);
  if (q->ops_outbox) {
    /* One count by state: what an operator watches (a growing "pending"). */
    uv_mutex_lock(&q->mu);
    int closing = q->closed;
    if (!closing) jobq__storage_begin(q);
    uv_mutex_unlock(&q->mu);
    if (!closing) {
      jobq__set_detail("");
      rc = q->ops->outbox_counts(q->st, st->wh_outbox);
      uv_mutex_lock(&q->mu);
      jobq__storage_end(q);
      uv_mutex_unlock(&q->mu);
      st->outbox = rc == 0;
    }
  }
  *out = st;
  return 0;
}

JOBQ_API int64_t jobq_stats_webhook_outbox(const jobq_stats_t *st, int state) {
  if (st == NULL || state < 0 || state > JOBQ_DELIVERY_FAILED || !st->outbox) return -1;
  return st->wh_outbox[state];
}

JOBQ_API int64_t jobq_stats_webhook_tries(const jobq_stats_t *st, int outcome) {
  if (st == NULL || outcome < 0 || outcome > JOBQ_DELIVERY_FAILED ||
      outcome == JOBQ_DELIVERY_SENDING)
    return -1;
  return st->wh_tries[outcome];
}

JOBQ_API void jobq_stats_free(jobq_stats_t *st) {
  if (st == NULL) return;
  free(st->last_error);
  free(st->scheme);
  free(st->shared_err);
  jobq__kind_stats_free(st->kinds, (size_t)st->n_kinds);
  free(st);
}

JOBQ_API int64_t jobq_stats_time(const jobq_stats_t *st) { return st ? st->time : JOBQ_EINVAL; }
JOBQ_API int jobq_stats_running(const jobq_stats_t *st) { return st ? st->running : JOBQ_EINVAL; }
JOBQ_API int64_t jobq_stats_rate_limited(const jobq_stats_t *st) {
  return st ? st->rate_limited : JOBQ_EINVAL;
}
JOBQ_API int64_t jobq_stats_storage_errors(const jobq_stats_t *st) {
  return st ? st->storage_errors : JOBQ_EINVAL;
}
JOBQ_API int64_t jobq_stats_storage_failing_since(const jobq_stats_t *st) {
  return st ? st->failing_since : JOBQ_EINVAL;
}
JOBQ_API int jobq_stats_last_storage_code(const jobq_stats_t *st) {
  return st ? st->last_code : JOBQ_EINVAL;
}
JOBQ_API const char *jobq_stats_last_storage_error(const jobq_stats_t *st) {
  return st ? st->last_error : NULL;
}
JOBQ_API int64_t jobq_stats_last_storage_error_at(const jobq_stats_t *st) {
  return st ? st->last_at : JOBQ_EINVAL;
}

JOBQ_API char *jobq_stats_to_json(const jobq_stats_t *st) {
  if (st == NULL) {
    jobq__err(JOBQ_EINVAL, "jobq_stats_to_json: st is NULL");
    return NULL;
  }
  jobq_sbuf b = {0};
  int first = 1;
  jobq__sb_str(&b, "{");
  jobq__sb_key(&b, "time", &first);
  jobq__sb_int(&b, st->time);
  jobq__sb_key(&b, "running", &first);
  jobq__sb_int(&b, st->running);
  jobq__sb_key(&b, "rateLimited", &first);
  jobq__sb_int(&b, st->rate_limited);
  jobq__sb_key(&b, "storage", &first);
  jobq__sb_str(&b, "{");
  int f2 = 1;
  jobq__sb_key(&b, "healthy", &f2);
  jobq__sb_str(&b, st->failing_since ? "false" : "true");
  jobq__sb_key(&b, "errors", &f2);
  jobq__sb_int(&b, st->storage_errors);
  if (st->failing_since) {
    jobq__sb_key(&b, "failingSince", &f2);
    jobq__sb_int(&b, st->failing_since);
  }
  if (st->last_code) {
    jobq__sb_key(&b, "lastCode", &f2);
    jobq__sb_json_str(&b, jobq_err_name(st->last_code));
    jobq__sb_key(&b, "lastErrorAt", &f2);
    jobq__sb_int(&b, st->last_at);
  }
  if (st->last_error) {
    jobq__sb_key(&b, "lastError", &f2);
    jobq__sb_json_str(&b, st->last_error);
  }
  jobq__sb_str(&b, "}");
  jobq__sb_key(&b, "webhooks", &first);
  jobq__sb_str(&b, "{\"tries\":{\"delivered\":");
  jobq__sb_int(&b, st->wh_tries[JOBQ_DELIVERY_DELIVERED]);
  jobq__sb_str(&b, ",\"retried\":");
  jobq__sb_int(&b, st->wh_tries[JOBQ_DELIVERY_PENDING]);
  jobq__sb_str(&b, ",\"failed\":");
  jobq__sb_int(&b, st->wh_tries[JOBQ_DELIVERY_FAILED]);
  jobq__sb_str(&b, "}");
  if (st->outbox) {
    jobq__sb_str(&b, ",\"outbox\":{");
    for (int i = 0; i <= JOBQ_DELIVERY_FAILED; i++) {
      jobq__sb_str(&b, i ? ",\"" : "\"");
      jobq__sb_str(&b, jobq_delivery_state_name(i));
      jobq__sb_str(&b, "\":");
      jobq__sb_int(&b, st->wh_outbox[i]);
    }
    jobq__sb_str(&b, "}");
  }
  jobq__sb_str(&b, "}");
  jobq__stats_json_shared(&b, st, &first);
  jobq__sb_str(&b, "}");
  char *s = jobq__sb_take(&b);
  if (s == NULL) jobq__err(JOBQ_ENOMEM, "jobq_stats_to_json: out of memory");
  return s;
}
