/* Shared stats and ETA.
 *
 * Counting happens where things happen (a claim, an attempt's end, a
 * submit with a key, a key lookup), under the core lock the caller already
 * holds: a few additions into this process's accumulator, no storage
 * call. About once a second the maintenance thread adds the accumulated
 * deltas to the store in one short transaction (stats_add), and publishes
 * for each kind the workers here run how many attempts run at once and
 * when the running ones started, with an expiry a few seconds ahead, so
 * that an ETA computed in any process knows what runs across the live
 * processes. jobq_stats flushes first (its own process's counts are then
 * in what it reads), jobq_close flushes last and withdraws. */
#include "core/internal.h"
#include "core/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* How often the background flush runs, and how far ahead a publication
 * expires: a process that died stops counting for ETA within this. */
#define FLUSH_NS UINT64_C(1000000000)
#define LIVE_MS 5000
/* Start times published per kind and process, at most. */
#define STARTED_MAX 1024

int64_t jobq__hist_bound(int i) {
  static const int64_t m[3] = {1, 2, 5};
  int64_t b = m[i % 3];
  for (int d = 0; d < i / 3; d++) b *= 10;
  return b;
}

int jobq__hist_bucket(double ms) {
  for (int i = 0; i < JOBQ_STORAGE_HIST_N - 1; i++)
    if (ms <= (double)jobq__hist_bound(i)) return i;
  return JOBQ_STORAGE_HIST_N - 1;
}

double jobq__hist_quantile(const int64_t *hist, double q) {
  int64_t n = 0;
  for (int i = 0; i < JOBQ_STORAGE_HIST_N; i++) n += hist[i];
  if (n <= 0) return -1;
  double rank = q * (double)n, seen = 0;
  for (int i = 0; i < JOBQ_STORAGE_HIST_N; i++) {
    if (hist[i] == 0) continue;
    if (seen + (double)hist[i] >= rank) {
      double lo = i == 0 ? 0 : (double)jobq__hist_bound(i - 1);
      /* The last bucket has no bound: say its lower one. */
      if (i == JOBQ_STORAGE_HIST_N - 1) return lo;
      double hi = (double)jobq__hist_bound(i);
      return lo + (hi - lo) * ((rank - seen) / (double)hist[i]);
    }
    seen += (double)hist[i];
  }
  return (double)jobq__hist_bound(JOBQ_STORAGE_HIST_N - 2);
}

static jobq__stat_acc *acc_get(jobq_t *q, const char *kind) {
  if (kind == NULL) kind = "";
  jobq__stat_acc *a = q->stats.last;
  if (a && strcmp(a->kind, kind) == 0) return a;
  if ((a = jobq__map_get(&q->stats.acc, kind)) != NULL) return q->stats.last = a;
  size_t n = strlen(kind);
  if ((a = calloc(1, sizeof *a + n + 1)) == NULL) return NULL;
  memcpy(a->kind, kind, n + 1);
  if (jobq__map_put(&q->stats.acc, a->kind, a) != 0) {
    free(a);
    return NULL;
  }
  return q->stats.last = a;
}

void jobq__stats_count(jobq_t *q, const char *kind, int which, int64_t n) {
  if (which < 0 || which >= JOBQ_STAT_N || n <= 0) return;
  jobq__stat_acc *a = acc_get(q, kind);
  if (a == NULL) return; /* out of memory: a count is lost, nothing else */
  a->count[which] += n;
  a->dirty = 1;
}

void jobq__stats_duration(jobq_t *q, const char *kind, double ms) {
  jobq__stat_acc *a = acc_get(q, kind);
  if (a == NULL) return;
  if (ms < 0) ms = 0;
  a->hist[jobq__hist_bucket(ms)]++;
  a->sum_ms += ms;
  a->dirty = 1;
}

int jobq__stats_due(jobq_t *q) {
  if (q->ops->version < 3 || q->ops->stats_add == NULL) return 0;
  return uv_hrtime() >= q->stats.next_flush_ns;
}

void jobq__stats_free(jobq_t *q) {
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&q->stats.acc, &cur));) free(e->val);
  jobq__map_free(&q->stats.acc);
  q->stats.last = NULL;
}

void jobq__kind_stats_free(jobq_storage_kind_stats *v, size_t n) {
  for (size_t i = 0; v && i < n; i++) {
    free(v[i].kind);
    free(v[i].started);
  }
  free(v);
}

/* How many attempts of k this process runs at once (see jobq_job_eta_ms). */
static int local_concurrency(jobq_t *q, const kind_reg *k) {
  int par = jobq__kind_limit(k) > 0 ? jobq__kind_limit(k) : q->o.workers;
  if (!k->ko.on_loop && par > q->o.workers) par = q->o.workers;
  return par < 1 ? 1 : par;
}

/* One delta per kind: the accumulated counts (moved out of the
 * accumulator) and, for the kinds run here, the publication. */
typedef struct flush_buf {
  jobq_storage_stats_delta *d;
  char **kinds;   /* owned copies */
  int64_t **started;
  size_t n;
} flush_buf;

static void buf_free(flush_buf *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->kinds[i]);
    free(b->started[i]);
  }
  free(b->d);
  free(b->kinds);
  free(b->started);
}

/* Adds the counts of d back into the accumulator (storage refused them). */
static void restore(jobq_t *q, const jobq_storage_stats_delta *d) {
  jobq__stat_acc *a = acc_get(q, d->kind);
  if (a == NULL) return;
  for (int i = 0; i < JOBQ_STAT_N; i++) a->count[i] += d->count[i];
  for (int i = 0; i < JOBQ_STORAGE_HIST_N; i++) a->hist[i] += d->hist[i];
  a->sum_ms += d->duration_sum_ms;
  a->dirty = 1;
}

/* mu held: fills b. -1 when out of memory (then nothing was taken). */
static int collect(jobq_t *q, flush_buf *b, int withdraw, int64_t now) {
  int publish = q->started || q->stats.published;
  size_t cap = q->stats.acc.count + (publish ? (size_t)q->kinds.n : 0);
  memset(b, 0, sizeof *b);
  if (cap == 0) return 0;
  b->d = calloc(cap, sizeof *b->d);
  b->kinds = calloc(cap, sizeof *b->kinds);
  b->started = calloc(cap, sizeof *b->started);
  if (!b->d || !b->kinds || !b->started) goto oom;
  if (publish) {
    for (int i = 0; i < q->kinds.n; i++) {
      kind_reg *k = &q->kinds.v[i];
      jobq_storage_stats_delta *d = &b->d[b->n];
      if ((b->kinds[b->n] = jobq__strdup(k->name)) == NULL) goto oom;
      d->kind = b->kinds[b->n];
      b->n++;
      if (withdraw || !q->started) continue; /* concurrency 0: withdrawn */
      d->concurrency = local_concurrency(q, k);
      d->until = now + LIVE_MS;
      size_t ns = 0;
      jobq_map_slot *e;
      for (size_t cur = 0; (e = jobq__map_next(&q->running.map, &cur));) {
        jobq_ctx_t *c = e->val;
        if (c->kr == k && c->state == JOBQ_ATTEMPT_RUNNING) ns++;
      }
      if (ns > STARTED_MAX) ns = STARTED_MAX;
      if (ns) {
        if ((b->started[b->n - 1] = calloc(ns, sizeof(int64_t))) == NULL) goto oom;
        size_t j = 0;
        for (size_t cur = 0; j < ns && (e = jobq__map_next(&q->running.map, &cur));) {
          jobq_ctx_t *c = e->val;
          if (c->kr == k && c->state == JOBQ_ATTEMPT_RUNNING)
            b->started[b->n - 1][j++] = c->rec.started_at;
        }
        d->started = b->started[b->n - 1];
        d->n_started = ns;
      }
    }
  }
  /* The counts: into the kind's delta, or one of their own. */
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&q->stats.acc, &cur));) {
    jobq__stat_acc *a = e->val;
    if (!a->dirty) continue;
    jobq_storage_stats_delta *d = NULL;
    for (size_t i = 0; i < b->n && !d; i++)
      if (strcmp(b->d[i].kind, a->kind) == 0) d = &b->d[i];
    if (d == NULL) {
      if ((b->kinds[b->n] = jobq__strdup(a->kind)) == NULL) goto oom;
      d = &b->d[b->n++];
      d->kind = b->kinds[b->n - 1];
    }
    memcpy(d->count, a->count, sizeof d->count);
    memcpy(d->hist, a->hist, sizeof d->hist);
    d->duration_sum_ms = a->sum_ms;
  }
  /* Taken: the accumulator starts again from zero. */
  for (size_t cur = 0; (e = jobq__map_next(&q->stats.acc, &cur));) {
    jobq__stat_acc *a = e->val;
    memset(a->count, 0, sizeof a->count);
    memset(a->hist, 0, sizeof a->hist);
    a->sum_ms = 0;
    a->dirty = 0;
  }
  return 0;
oom:
  buf_free(b);
  memset(b, 0, sizeof *b);
  return -1;
}

int jobq__stats_flush(jobq_t *q, int withdraw) {
  if (q->ops->version < 3 || q->ops->stats_add == NULL) return 0;
  uv_mutex_lock(&q->stats.flush_mu);
  uv_mutex_lock(&q->mu);
  q->stats.next_flush_ns = uv_hrtime() + FLUSH_NS;
  int64_t now = jobq__now(q);
  flush_buf b;
  int rc = collect(q, &b, withdraw, now);
  if (rc == 0 && b.n && (q->started || withdraw)) q->stats.published = !withdraw;
  uv_mutex_unlock(&q->mu);
  if (rc != 0) {
    uv_mutex_unlock(&q->stats.flush_mu);
    return jobq__err(JOBQ_ENOMEM, "stats: out of memory");
  }
  if (b.n) {
    jobq__set_detail("");
    rc = q->ops->stats_add(q->st, b.d, b.n, now);
    if (rc < 0) {
      uv_mutex_lock(&q->mu);
      for (size_t i = 0; i < b.n; i++) restore(q, &b.d[i]);
      uv_mutex_unlock(&q->mu);
    }
  }
  buf_free(&b);
  uv_mutex_unlock(&q->stats.flush_mu);
  return rc < 0 ? rc : 0;
}

/* ---- ETA ---- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int64_t jobq__eta(jobq_t *q, const jobq_storage_job *r, const jobq_storage_kind_stats *ks) {
  if (r->state != JOBQ_QUEUED || r->position < 0 || r->kind == NULL) return -1;
  kind_reg *k = jobq__kind_find(q, r->kind);
  /* A: how long one attempt takes. */
  double avg;
  if (ks && ks->avg_ms > 0) avg = ks->avg_ms;
  else if (k && k->avg_ms > 0) avg = k->avg_ms;
  else if (k && k->ko.expected_ms > 0) avg = (double)k->ko.expected_ms;
  else avg = (double)q->o.default_duration_ms;
  /* c: how many run at once across the live processes. */
  int64_t c = ks && ks->concurrency > 0 ? ks->concurrency
              : k && q->started        ? local_concurrency(q, k)
                                       : 1;
  /* The slots' remaining times: the running attempts' (A less what they
   * ran, at least 0), 0 for idle slots. The running attempts are the live
   * processes' publications, or, when none is published (nothing runs
   * the kind with jobq_start, or the backend keeps no stats), this
   * process's own (jobq_claim callers included). */
  int64_t now = jobq__now(q);
  int shared = ks && (ks->concurrency > 0 || ks->n_started > 0);
  size_t n_run = 0, n_started = shared ? ks->n_started : 0;
  jobq_map_slot *e;
  if (!shared)
    for (size_t cur = 0; (e = jobq__map_next(&q->running.map, &cur));)
      if (strcmp(((jobq_ctx_t *)e->val)->rec.kind, r->kind) == 0) n_started++;
  double stack[64], *rem = stack;
  if (n_started > 64 && (rem = malloc(n_started * sizeof *rem)) == NULL) {
    rem = stack;
    n_started = 64;
  }
  if (shared) {
    for (size_t i = 0; i < n_started; i++) rem[n_run++] = avg - (double)(now - ks->started[i]);
  } else {
    for (size_t cur = 0; n_run < n_started && (e = jobq__map_next(&q->running.map, &cur));) {
      jobq_ctx_t *c2 = e->val;
      if (strcmp(c2->rec.kind, r->kind) == 0)
        rem[n_run++] = avg - (double)(now - c2->rec.started_at);
    }
  }
  for (size_t i = 0; i < n_run; i++) rem[i] = rem[i] < 0 ? 0 : rem[i] > avg ? avg : rem[i];
  qsort(rem, n_run, sizeof *rem, cmp_double);
  if ((int64_t)n_run > c) c = (int64_t)n_run;
  /* Slot j frees at R[j], R[j] + A, R[j] + 2A, ...; the job ahead number
   * p (0-based) takes the p-th of these times in order, which is
   * R[p mod c] + (p / c) * A since every R is within [0, A]. */
  int64_t p = r->position, idle = c - (int64_t)n_run, j = p % c;
  double start = (j < idle ? 0 : rem[j - idle]) + (double)(p / c) * avg;
  if (rem != stack) free(rem);
  return (int64_t)llround(start);
}
