/* Attempts: claiming, running handlers, finishing, timeouts, releasing.
 *
 * A claim reserves capacity of concurrency-limited kinds under the core lock,
 * then asks storage without the lock (storage may block). Every way an
 * attempt ends goes through finish(), which asks storage first and only then
 * publishes the outcome (events, waiters, counters), so what readers see has
 * always been stored. */
#include "core/internal.h"
#include "util/id.h"
#include "util/json.h"
#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

/* On-loop kinds without a concurrency limit still stop somewhere: claiming a
 * whole backlog onto one thread helps nobody. */
#define LOOP_DEFAULT_CONCURRENCY 1024

#define SPIN_NS 50000u
#define JOBQ_CLAIM_BATCH 256

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static kind_reg *find_kind(jobq_t *q, const char *name) {
  for (int i = 0; i < q->n_kinds; i++)
    if (strcmp(q->kinds[i].name, name) == 0) return &q->kinds[i];
  return NULL;
}

static int effective_limit(const kind_reg *k) {
  if (k->ko.concurrency > 0) return k->ko.concurrency;
  return k->ko.on_loop ? LOOP_DEFAULT_CONCURRENCY : 0;
}

static int tmo_less(const void *a, const void *b) {
  return ((const jobq_ctx_t *)a)->deadline < ((const jobq_ctx_t *)b)->deadline;
}
static uint32_t *tmo_slot(void *e) { return &((jobq_ctx_t *)e)->tmo_idx; }

void jobq__tmo_init(jobq_t *q) {
  q->tmo.less = tmo_less;
  q->tmo.slot = tmo_slot;
}

int64_t jobq__tmo_next(jobq_t *q) {
  jobq_ctx_t *c = jobq__heap_top(&q->tmo);
  return c ? c->deadline : INT64_MAX;
}

static void tmo_remove(jobq_t *q, jobq_ctx_t *ctx) {
  if (!ctx->in_tmo) return;
  jobq__heap_remove(&q->tmo, ctx);
  ctx->in_tmo = 0;
}

/* Drops one reference of ctx; mu held. When it was the last, ctx is freed
 * along with its reference on q (q itself is freed by jobq__unlock). */
void jobq__ctx_put(jobq_ctx_t *ctx) {
  if (--ctx->refs > 0) return;
  jobq_t *q = ctx->q;
  jobq_storage_job_clear(&ctx->rec);
  free(ctx->step);
  free(ctx->fin_result);
  free(ctx->fin_error);
  free(ctx);
  q->refs--;
}

/* Forgets ctx as running here, unless a newer attempt of the same job
 * (claimed again after a quick retry) took its place. mu held. */
static void running_del(jobq_t *q, jobq_ctx_t *ctx) {
  if (jobq__map_get(&q->running, ctx->rec.id) == ctx) jobq__map_del(&q->running, ctx->rec.id);
}

/* Wakes claimers: jobs may have become claimable. mu held. */
static void work_available(jobq_t *q) {
  q->work_gen++;
  if (q->idle) uv_cond_broadcast(&q->work_cv);
}

static int64_t queue_clock(void *ud) { return jobq__now(ud); }

/* Claims up to max due jobs of kinds (NULL: any kind, then max is 1) into
 * out[], *n_out of them. mu held on entry and exit (released around the
 * storage call). Concurrency-limited kinds reserve their share first, so a
 * limit holds exactly however many claims run at once. */
int jobq__claim_locked(jobq_t *q, const char *const *kinds, size_t nk, size_t max,
                       jobq_ctx_t **out, size_t *n_out) {
  const char *names_s[16];
  int lim_s[16];
  kind_reg *kr_s[16];
  const char **names = names_s;
  int *lim = lim_s;
  kind_reg **krs = kr_s;
  jobq_storage_job *recs = NULL;
  size_t n = 0, n_ex = 0, got = 0;
  int rc = 0;
  *n_out = 0;
  if (kinds == NULL) max = 1;

  /* With kinds NULL every kind may come, except limited ones that are full. */
  size_t cap = kinds ? nk : (size_t)q->n_kinds;
  if (cap > 16) {
    names = malloc(cap * sizeof *names);
    lim = malloc(cap * sizeof *lim);
    krs = malloc(cap * sizeof *krs);
    if (!names || !lim || !krs) {
      rc = jobq__err(JOBQ_ENOMEM, "claim: out of memory");
      goto done;
    }
  }
  if (kinds) {
    for (size_t i = 0; i < nk; i++) {
      kind_reg *k = find_kind(q, kinds[i]);
      int l = -1;
      if (k && effective_limit(k) > 0) {
        l = effective_limit(k) - k->running - k->pending;
        if (l <= 0) continue;
        if ((size_t)l > max) l = (int)max;
        k->pending += l;
      }
      names[n] = kinds[i];
      lim[n] = l;
      krs[n++] = k;
    }
    if (n == 0) goto done; /* every kind is at its limit */
  } else {
    for (int i = 0; i < q->n_kinds; i++) {
      kind_reg *k = &q->kinds[i];
      if (effective_limit(k) <= 0) continue;
      if (effective_limit(k) - k->running - k->pending <= 0) {
        names[n_ex++] = k->name; /* excluded */
      } else {
        k->pending++;
        lim[n] = 1;
        krs[n++] = k;
      }
    }
  }

  recs = calloc(max, sizeof *recs);
  if (recs == NULL || jobq__map_reserve(&q->running, (size_t)q->claims_in_flight + max) ||
      jobq__heap_reserve(&q->tmo, (size_t)q->claims_in_flight + max)) {
    rc = jobq__err(JOBQ_ENOMEM, "claim: out of memory");
    goto unreserve;
  }
  jobq_storage_claim req = {0};
  req.kinds = kinds ? names : NULL;
  req.kind_limit = kinds ? lim : NULL;
  req.n_kinds = kinds ? n : 0;
  req.exclude = kinds ? NULL : names;
  req.n_exclude = kinds ? 0 : n_ex;
  req.max = max;
  req.now = jobq__now(q);
  req.lease_ms = q->o.lease_ms;
  req.clock = queue_clock;
  req.clock_ud = q;
  req.default_max_attempts = 3;
  req.ma_kinds = q->ma_kinds;
  req.ma_values = q->ma_values;
  req.n_ma = (size_t)q->n_ma;
  int64_t next = INT64_MAX;
  q->claims_in_flight++;
  q->ops_in_flight++;
  uv_mutex_unlock(&q->mu);
  rc = q->ops->claim(q->st, &req, recs, &got);
  if (rc == 0 && got == 0)
    q->ops->next_run_at(q->st, req.kinds, req.n_kinds, req.now, &next);
  uv_mutex_lock(&q->mu);
  q->claims_in_flight--;
  q->ops_in_flight--;
  if (q->closed) uv_cond_broadcast(&q->idle_cv);

  if (rc < 0 || got == 0) {
    if (rc == 0 && next < q->wake_at) {
      q->wake_at = next;
      jobq__kick_loop(q);
    }
    goto unreserve;
  }
  for (size_t i = 0; i < got; i++) {
    jobq_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
      /* Give back what cannot be run; the lease would otherwise hold it. */
      jobq_storage_finish f = {0};
      int st;
      f.id = recs[i].id;
      f.attempt = recs[i].attempts;
      f.outcome = JOBQ_OUTCOME_RELEASE;
      f.now = req.now;
      q->ops->finish(q->st, &f, 1, &st);
      jobq_storage_job_clear(&recs[i]);
      continue;
    }
    ctx->rec = recs[i];
    memset(&recs[i], 0, sizeof recs[i]);
    ctx->q = q;
    ctx->refs = 1;
    ctx->kr = find_kind(q, ctx->rec.kind);
    ctx->t0_ns = uv_hrtime();
    atomic_init(&ctx->cancelled, ctx->rec.cancel_requested ? 1 : 0);
    if (q->cancel_hints.count && jobq__map_get(&q->cancel_hints, ctx->rec.id))
      atomic_store(&ctx->cancelled, 1);
    q->refs++;
    jobq__map_put(&q->running, ctx->rec.id, ctx); /* reserved above */
    if (ctx->kr) {
      ctx->kr->running++;
      if (ctx->rec.max_attempts == 0) ctx->rec.max_attempts = ctx->kr->ko.max_attempts;
      if (ctx->kr->ko.timeout_ms > 0) {
        ctx->deadline = req.now + ctx->kr->ko.timeout_ms;
        jobq__heap_push(&q->tmo, ctx); /* reserved above */
        ctx->in_tmo = 1;
        if (ctx->deadline < q->timer_at) jobq__kick_loop(q);
      }
    }
    if (ctx->rec.max_attempts == 0) ctx->rec.max_attempts = 3;
    jobq__emit(q, JOBQ_EVENT_STARTED, ctx->rec.id, ctx->rec.kind, JOBQ_RUNNING, 0, NULL,
               ctx->rec.attempts, NULL, NULL);
    jobq__notify_waiters(q, ctx->rec.id);
    out[(*n_out)++] = ctx;
  }
  rc = *n_out ? 0 : jobq__err(JOBQ_ENOMEM, "claim: out of memory");

unreserve:
  for (size_t i = 0; i < n; i++)
    if (krs[i] && lim[i] > 0) krs[i]->pending -= lim[i];
  if (q->claims_in_flight == 0 && q->cancel_hints.count) jobq__cancel_hints_clear(q);
done:
  free(recs);
  if (names != names_s) free(names);
  if (lim != lim_s) free(lim);
  if (krs != kr_s) free(krs);
  return rc;
}

/* ---- finishing ---- */

static int64_t backoff_ms(jobq_t *q, const kind_reg *k, int attempt) {
  int64_t base = k ? k->ko.backoff_base_ms : 1000;
  int64_t max = k ? k->ko.backoff_max_ms : 300000;
  double jitter = k ? k->ko.jitter : 0.2;
  int64_t d = base;
  for (int i = 1; i < attempt && d < max; i++) d *= 2;
  if (d > max) d = max;
  double r = q->o.random ? q->o.random(q->o.random_ud) : jobq__random_unit();
  if (r < 0 || r >= 1) r = 0;
  return d - (int64_t)((double)d * jitter * r);
}

/* What storage is told about the end of ctx's attempt: a retry with no
 * attempts left becomes a failure; a retry gets its backoff. mu held. */
static void outcome_record(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                           const char *error, jobq_storage_finish *f) {
  memset(f, 0, sizeof *f);
  f->id = ctx->rec.id;
  f->attempt = ctx->rec.attempts;
  f->outcome = outcome;
  f->result = result;
  f->error = error;
  f->now = jobq__now(q);
  f->progress = ctx->progress;
  f->step = ctx->step;
  if (outcome == JOBQ_OUTCOME_RETRY) {
    if (ctx->rec.attempts >= ctx->rec.max_attempts) {
      f->outcome = JOBQ_OUTCOME_FAILED;
    } else {
      f->run_at = f->now + backoff_ms(q, ctx->kr, ctx->rec.attempts);
      ctx->rec.run_at = f->run_at;
    }
  }
}

/* After storage has applied the end of an attempt: bookkeeping and news. */
static void publish_end(jobq_t *q, jobq_ctx_t *ctx, int state, const char *result,
                        const char *error) {
  running_del(q, ctx);
  tmo_remove(q, ctx);
  if (ctx->kr) {
    ctx->kr->running--;
    /* The handler's own time: up to its succeed/fail, not to the commit,
     * which group commit may delay by a millisecond or two. */
    double ms = (double)((ctx->t1_ns ? ctx->t1_ns : uv_hrtime()) - ctx->t0_ns) / 1e6;
    ctx->kr->avg_ms = ctx->kr->avg_ms == 0 ? ms : ctx->kr->avg_ms * 0.8 + ms * 0.2;
    if (effective_limit(ctx->kr) > 0) work_available(q);
  }
  int type = jobq__state_end_event(state);
  if (state == JOBQ_QUEUED) {
    work_available(q);
    if (ctx->rec.run_at < q->wake_at) {
      q->wake_at = ctx->rec.run_at;
      jobq__kick_loop(q);
    }
  }
  jobq__emit_now(q, type, ctx->rec.id, ctx->rec.kind, state,
             state == JOBQ_SUCCEEDED ? 100 : ctx->progress, ctx->step, ctx->rec.attempts, error,
             state == JOBQ_SUCCEEDED ? (result ? result : "null") : NULL);
  jobq__notify_waiters(q, ctx->rec.id);
  if (q->closed) uv_cond_broadcast(&q->idle_cv);
}

static int end_attempt_applied(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                               const char *error, const char *fn, int *open, int rc, int state,
                               int applied_outcome);

/* Ends the attempt with outcome; mu held on entry and exit. When storage
 * itself failed, *open is set: nothing was applied and the attempt is still
 * running, so its owner may try again. */
static int end_attempt(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                       const char *error, const char *fn, int *open) {
  *open = 0;
  if (ctx->released || q->closed == 2)
    return jobq__err(JOBQ_ECLOSED, "%s: the queue closed and released job %s", fn, ctx->rec.id);
  if (ctx->finished)
    return jobq__err(JOBQ_ESTATE, "%s: the attempt of job %s already ended%s", fn, ctx->rec.id,
                     ctx->timed_out ? " (it timed out)" : "");
  ctx->finished = 1;
  tmo_remove(q, ctx);
  jobq_storage_finish f;
  outcome_record(q, ctx, outcome, result, error, &f);
  int state = 0;
  /* Hold the job's events until ours is out (see jobq__hold_begin). */
  int held = jobq__events_on(q) && jobq__hold_begin(q, ctx->rec.id) == 0;
  q->ops_in_flight++;
  uv_mutex_unlock(&q->mu);
  int rc = q->ops->finish(q->st, &f, 1, &state);
  uv_mutex_lock(&q->mu);
  q->ops_in_flight--;
  rc = end_attempt_applied(q, ctx, outcome, result, error, fn, open, rc, state, f.outcome);
  if (held) jobq__hold_end(q, ctx->rec.id, 0, NULL);
  return rc;
}

static int end_attempt_applied(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                               const char *error, const char *fn, int *open, int rc, int state,
                               int applied_outcome) {
  if (rc < 0) {
    ctx->finished = 0; /* nothing was applied: the caller may try again */
    *open = 1;
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s: storage failed", fn);
    return rc;
  }
  if (state < 0) {
    /* Storage no longer sees this attempt running (stale or gone). */
    running_del(q, ctx);
    if (ctx->kr) ctx->kr->running--;
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
    return jobq__err(JOBQ_ESTATE, "%s: job %s is no longer running this attempt", fn,
                     ctx->rec.id);
  }
  if (outcome == JOBQ_OUTCOME_RELEASE && state == JOBQ_QUEUED) {
    /* Given back: no news, the job is simply queued again. (A release of a
     * job with a cancel request ends it cancelled: that is news, below.) */
    running_del(q, ctx);
    if (ctx->kr) ctx->kr->running--;
    work_available(q);
    jobq__notify_waiters(q, ctx->rec.id);
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
    return 0;
  }
  publish_end(q, ctx, state, result, applied_outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : error);
  return 0;
}

/* Completion of an asynchronous finish (any thread). */
static void finish_done(void *ud, int rc, const int *out_state) {
  jobq_ctx_t *ctx = ud;
  jobq_t *q = ctx->q;
  uv_mutex_lock(&q->mu);
  int state = rc < 0 ? rc : out_state[0];
  if (state < 0) {
    /* Not stored (storage failed after the handler was told it worked), or
     * the attempt was no longer running. Stop heartbeating it: if it is
     * still running in storage, its lease expires and it is rescued and run
     * again (at-least-once). */
    running_del(q, ctx);
    if (ctx->kr) {
      ctx->kr->running--;
      if (effective_limit(ctx->kr) > 0) work_available(q);
    }
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
  } else {
    publish_end(q, ctx, state, ctx->fin_result, ctx->fin_error);
  }
  if (ctx->held) jobq__hold_end(q, ctx->rec.id, 0, NULL);
  ctx->held = 0;
  q->ops_in_flight--;
  jobq__ctx_put(ctx); /* the user's reference, carried by the finish */
  jobq__unlock(q);
}

/* The user's finish with a backend that stores asynchronously: returns once
 * the outcome is queued for storage; news follows when it is stored. mu
 * held on entry; released on return. */
static int user_finish_async(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                             const char *error, const char *fn) {
  if (ctx->released || q->closed == 2) {
    /* Say it before the last reference goes: ctx (and q) may be freed. */
    int rc = jobq__err(JOBQ_ECLOSED, "%s: the queue closed and released job %s", fn, ctx->rec.id);
    ctx->user_done = 1;
    jobq__ctx_put(ctx);
    jobq__unlock(q);
    return rc;
  }
  if (ctx->finished) {
    int to = ctx->timed_out;
    ctx->user_done = 1;
    jobq__ctx_put(ctx);
    jobq__unlock(q);
    return jobq__err(JOBQ_ESTATE, "%s: the attempt already ended%s", fn, to ? " (it timed out)" : "");
  }
  char *res = result ? jobq__strdup(result) : NULL;
  char *err = error ? jobq__strdup(error) : NULL;
  if ((result && !res) || (error && !err)) {
    free(res);
    free(err);
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  }
  jobq_storage_finish f;
  outcome_record(q, ctx, outcome, res, err, &f);
  ctx->finished = 1;
  ctx->user_done = 1; /* the reference now travels with the finish */
  tmo_remove(q, ctx);
  free(ctx->fin_result);
  free(ctx->fin_error);
  ctx->fin_result = res;
  ctx->fin_error = f.outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : err;
  if (f.outcome == JOBQ_OUTCOME_SUCCEEDED) free(err);
  ctx->held = jobq__events_on(q) && jobq__hold_begin(q, ctx->rec.id) == 0;
  q->ops_in_flight++;
  /* The backend copies f before it returns; the step is read under mu. */
  int rc = q->ops->finish_async(q->st, &f, 1, finish_done, ctx);
  if (rc < 0) {
    if (ctx->held) jobq__hold_end(q, ctx->rec.id, 0, NULL);
    ctx->held = 0;
    q->ops_in_flight--;
    ctx->finished = 0;
    ctx->user_done = 0;
    uv_mutex_unlock(&q->mu);
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s: storage failed", fn);
    return rc;
  }
  uv_mutex_unlock(&q->mu);
  return 0;
}

/* The user's succeed/fail: ends the attempt and drops the user's reference. */
static int user_finish(jobq_ctx_t *ctx, int outcome, const char *result, const char *error,
                       const char *fn) {
  jobq_t *q = ctx->q;
  uv_mutex_lock(&q->mu);
  if (ctx->user_done) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ESTATE, "%s: job %s was already finished through this ctx", fn,
                     ctx->rec.id);
  }
  if (ctx->t1_ns == 0) ctx->t1_ns = uv_hrtime();
  if (q->ops->finish_async) return user_finish_async(q, ctx, outcome, result, error, fn);
  int open;
  int rc = end_attempt(q, ctx, outcome, result, error, fn, &open);
  if (open) {
    /* Storage failed: the attempt is still open; the caller may try again. */
    uv_mutex_unlock(&q->mu);
    return rc;
  }
  ctx->user_done = 1;
  jobq__ctx_put(ctx);
  jobq__unlock(q);
  return rc;
}

JOBQ_API int jobq_ctx_succeed(jobq_ctx_t *ctx, const char *result_json) {
  if (ctx == NULL) return jobq__err(JOBQ_EINVAL, "jobq_ctx_succeed: ctx is NULL");
  const char *r = result_json ? result_json : "null";
  size_t len = strlen(r);
  if (len > ctx->q->o.max_payload)
    return jobq__err(JOBQ_ETOOBIG, "jobq_ctx_succeed: result is %zu bytes, the limit is %zu", len,
                     ctx->q->o.max_payload);
  int rc = jobq__json_check("jobq_ctx_succeed", "result", r, len);
  if (rc) return rc;
  return user_finish(ctx, JOBQ_OUTCOME_SUCCEEDED, r, NULL, "jobq_ctx_succeed");
}

JOBQ_API int jobq_ctx_fail(jobq_ctx_t *ctx, const char *message, int retryable) {
  if (ctx == NULL) return jobq__err(JOBQ_EINVAL, "jobq_ctx_fail: ctx is NULL");
  if (retryable != 0 && retryable != 1)
    return jobq__err(JOBQ_EINVAL, "jobq_ctx_fail: retryable %d is not 0 or 1", retryable);
  int rc = jobq__utf8_check("jobq_ctx_fail", "message", message);
  if (rc) return rc;
  char buf[JOBQ_ERROR_MAX + 1];
  const char *m = message && *message ? message : "failed";
  if (strlen(m) > JOBQ_ERROR_MAX) {
    /* Keep it, cut: an error text is for people, not a payload. */
    size_t cut = JOBQ_ERROR_MAX;
    /* not inside a UTF-8 character */
    while (cut > 0 && ((unsigned char)m[cut] & 0xc0) == 0x80) cut--;
    memcpy(buf, m, cut);
    buf[cut] = '\0';
    m = buf;
  }
  return user_finish(ctx, retryable ? JOBQ_OUTCOME_RETRY : JOBQ_OUTCOME_FAILED, NULL, m,
                     "jobq_ctx_fail");
}

JOBQ_API const char *jobq_ctx_id(jobq_ctx_t *ctx) { return ctx ? ctx->rec.id : NULL; }
JOBQ_API const char *jobq_ctx_kind(jobq_ctx_t *ctx) { return ctx ? ctx->rec.kind : NULL; }
JOBQ_API const char *jobq_ctx_payload(jobq_ctx_t *ctx) { return ctx ? ctx->rec.payload : NULL; }
JOBQ_API int jobq_ctx_attempt(jobq_ctx_t *ctx) {
  return ctx ? ctx->rec.attempts : jobq__err(JOBQ_EINVAL, "jobq_ctx_attempt: ctx is NULL");
}

JOBQ_API int jobq_ctx_cancelled(jobq_ctx_t *ctx) {
  return ctx ? atomic_load(&ctx->cancelled) : 0;
}

JOBQ_API int jobq_ctx_progress(jobq_ctx_t *ctx, int percent, const char *step) {
  if (ctx == NULL) return jobq__err(JOBQ_EINVAL, "jobq_ctx_progress: ctx is NULL");
  if (percent < 0 || percent > 100)
    return jobq__err(JOBQ_EINVAL, "jobq_ctx_progress: percent %d is outside 0..100", percent);
  if (step && strlen(step) > JOBQ_STEP_MAX)
    return jobq__err(JOBQ_EINVAL, "jobq_ctx_progress: step is %zu bytes, at most %d",
                     strlen(step), JOBQ_STEP_MAX);
  int urc = jobq__utf8_check("jobq_ctx_progress", "step", step);
  if (urc) return urc;
  jobq_t *q = ctx->q;
  char *copy = NULL;
  if (step && (copy = jobq__strdup(step)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "jobq_ctx_progress: out of memory");
  uv_mutex_lock(&q->mu);
  if (ctx->finished || ctx->user_done) {
    uv_mutex_unlock(&q->mu);
    free(copy);
    return jobq__err(ctx->released ? JOBQ_ECLOSED : JOBQ_ESTATE,
                     "jobq_ctx_progress: the attempt of job %s already ended", ctx->rec.id);
  }
  ctx->progress = percent;
  if (copy) {
    free(ctx->step);
    ctx->step = copy;
  }
  jobq__emit(q, JOBQ_EVENT_PROGRESS, ctx->rec.id, ctx->rec.kind, JOBQ_RUNNING, percent, ctx->step,
             ctx->rec.attempts, NULL, NULL);
  jobq__notify_waiters(q, ctx->rec.id);
  /* Local readers see ctx->progress at once (jobq_get overlays it); storage
   * gets at most one write per job per JOBQ_PROGRESS_WRITE_MS, and the
   * finish writes the final state anyway. */
  int64_t now = jobq__now(q);
  int rc = 0;
  /* On the loop thread (on-loop handlers, pipelines) nothing waits for a
   * commit: the maintenance thread writes what is dirty within 250 ms. */
  if (q->closed != 2 && !jobq__on_loop_thread(q) &&
      (now - ctx->progress_written >= JOBQ_PROGRESS_WRITE_MS || percent == 100)) {
    ctx->progress_written = now;
    ctx->progress_dirty = 0;
    char *s = ctx->step ? jobq__strdup(ctx->step) : NULL;
    q->ops_in_flight++;
    uv_mutex_unlock(&q->mu);
    rc = q->ops->progress(q->st, ctx->rec.id, ctx->rec.attempts, percent, s);
    free(s);
    uv_mutex_lock(&q->mu);
    q->ops_in_flight--;
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
    if (rc == JOBQ_ESTATE || rc == JOBQ_ENOTFOUND) rc = 0; /* ended meanwhile */
  } else {
    ctx->progress_dirty = 1;
  }
  uv_mutex_unlock(&q->mu);
  return rc;
}

/* ---- running handlers ---- */

static void run_handler(jobq_t *q, jobq_ctx_t *ctx) {
  ctx->refs++;
  q->handlers_active++;
  ctx->t0_ns = uv_hrtime(); /* not the claim: a job may wait in a batch */
  uv_mutex_unlock(&q->mu);
  ctx->kr->fn(ctx, ctx->kr->ud);
  uv_mutex_lock(&q->mu);
  q->handlers_active--;
  jobq__ctx_put(ctx);
}

/* How many jobs one claim should take. Every claim is a storage round trip
 * (with SQLite, a commit), so for handlers that take well under a
 * millisecond a worker takes several and hands the rest to idle workers;
 * for slower handlers it takes one per idle worker, so that no job waits
 * behind a slow one while another worker is free. */
static size_t batch_size(jobq_t *q, const char **kinds, int n, int to_loop) {
  if (to_loop) return JOBQ_CLAIM_BATCH;
  int fast = n > 0;
  for (int i = 0; i < n && fast; i++) {
    kind_reg *k = find_kind(q, kinds[i]);
    if (k == NULL || k->avg_ms <= 0 || k->avg_ms > 0.5) fast = 0;
  }
  size_t b = fast ? JOBQ_CLAIM_BATCH : (size_t)q->idle + 1;
  return b > JOBQ_CLAIM_BATCH ? JOBQ_CLAIM_BATCH : b;
}

static int handoff_push(jobq_t *q, jobq_ctx_t *ctx) {
  if (q->handoff_head > 0 && q->handoff_head == q->n_handoff) q->handoff_head = q->n_handoff = 0;
  if (q->n_handoff == q->cap_handoff) {
    size_t nc = q->cap_handoff ? q->cap_handoff * 2 : 64;
    jobq_ctx_t **nh = realloc(q->handoff, nc * sizeof *nh);
    if (nh == NULL) return -1;
    q->handoff = nh;
    q->cap_handoff = nc;
  }
  q->handoff[q->n_handoff++] = ctx;
  return 0;
}

/* Gives a claimed job back at once (it never started); mu held. */
static void give_back(jobq_t *q, jobq_ctx_t *ctx) {
  int open;
  end_attempt(q, ctx, JOBQ_OUTCOME_RELEASE, NULL, NULL, "claim", &open);
  if (open) { /* storage failed too: the lease expires and rescues it */
    ctx->finished = 1;
    running_del(q, ctx);
    if (ctx->kr) ctx->kr->running--;
  }
  ctx->user_done = 1;
  jobq__ctx_put(ctx);
}

void jobq__release_handoff(jobq_t *q) {
  while (q->handoff_head < q->n_handoff) {
    jobq_ctx_t *ctx = q->handoff[q->handoff_head++];
    give_back(q, ctx);
    /* end_attempt released mu around storage: the list may have changed,
     * but only this function and workers (stopped) take from it. */
  }
  q->handoff_head = q->n_handoff = 0;
}

static void claim_loop(jobq_t *q, const char **kinds, int n, int to_loop) {
  jobq_ctx_t *got_s[JOBQ_CLAIM_BATCH];
  uv_mutex_lock(&q->mu);
  while (!q->stopping) {
    if (!to_loop && q->handoff_head < q->n_handoff) {
      run_handler(q, q->handoff[q->handoff_head++]);
      continue;
    }
    uint64_t gen = q->work_gen;
    size_t got = 0;
    int rc = jobq__claim_locked(q, kinds, (size_t)n, batch_size(q, kinds, n, to_loop), got_s, &got);
    if (got > 0) {
      if (!to_loop) {
        for (size_t i = 1; i < got; i++)
          if (handoff_push(q, got_s[i]) != 0) give_back(q, got_s[i]);
        if (got > 1) {
          q->work_gen++;
          if (q->idle) uv_cond_broadcast(&q->work_cv);
        }
        run_handler(q, got_s[0]);
        continue;
      }
      for (size_t i = 0; i < got; i++) {
        jobq_ctx_t **ni = q->loop_inbox;
        if (q->n_inbox == q->cap_inbox) {
          size_t nc = q->cap_inbox ? q->cap_inbox * 2 : 64;
          ni = realloc(q->loop_inbox, nc * sizeof *ni);
          if (ni) {
            q->loop_inbox = ni;
            q->cap_inbox = nc;
          }
        }
        if (ni == NULL) {
          give_back(q, got_s[i]); /* out of memory: give the job back rather than lose it */
          continue;
        }
        q->loop_inbox[q->n_inbox++] = got_s[i];
      }
      jobq__kick_loop(q);
      continue;
    }
    if (q->stopping) break;
    if (rc < 0) {
      /* Storage trouble: retry soon, without spinning. */
      q->idle++;
      uv_cond_timedwait(&q->work_cv, &q->mu, 100 * 1000000ull);
      q->idle--;
      continue;
    }
    if (gen != q->work_gen) continue;
    /* Work often comes back within microseconds (a busy submitter): spin
     * briefly before sleeping, which would cost the submitter a wake-up
     * system call per job. After SPIN_NS an idle worker sleeps. */
    uv_mutex_unlock(&q->mu);
    uint64_t t0 = uv_hrtime();
    while (q->work_gen == gen && !q->stopping && uv_hrtime() - t0 < SPIN_NS) cpu_relax();
    uv_mutex_lock(&q->mu);
    if (gen != q->work_gen) continue;
    q->idle++;
    if (gen == q->work_gen && !q->stopping) uv_cond_wait(&q->work_cv, &q->mu);
    q->idle--;
  }
  uv_mutex_unlock(&q->mu);
}

void jobq__worker_main(void *arg) {
  jobq_t *q = arg;
  claim_loop(q, q->worker_kinds, q->n_worker_kinds, 0);
}

void jobq__feeder_main(void *arg) {
  jobq_t *q = arg;
  claim_loop(q, q->loop_kinds, q->n_loop_kinds, 1);
}

void jobq__run_loop_inbox(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  while (q->n_inbox > 0) {
    jobq_ctx_t **batch = q->loop_inbox;
    size_t n = q->n_inbox;
    q->loop_inbox = NULL;
    q->n_inbox = q->cap_inbox = 0;
    for (size_t i = 0; i < n; i++) {
      jobq_ctx_t *ctx = batch[i];
      if (ctx->finished) {
        /* Released or timed out before its handler ran: nobody will call
         * succeed/fail on it, so drop the user's reference here. */
        ctx->user_done = 1;
        jobq__ctx_put(ctx);
        continue;
      }
      run_handler(q, ctx);
    }
    free(batch);
  }
  uv_mutex_unlock(&q->mu);
}

/* ---- jobq_claim ---- */

JOBQ_API int jobq_claim(jobq_t *q, const char *const *kinds, int timeout_ms, jobq_ctx_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_claim: q is NULL");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_claim: out is NULL");
  size_t nk = 0;
  if (kinds) {
    for (; kinds[nk]; nk++) {
      if (nk == 1024) return jobq__err(JOBQ_EINVAL, "jobq_claim: more than 1024 kinds");
      int rc = jobq__kind_name_check("jobq_claim", kinds[nk]);
      if (rc) return rc;
    }
    if (nk == 0) return jobq__err(JOBQ_EINVAL, "jobq_claim: kinds is empty (use NULL for any)");
  }
  if (timeout_ms != 0 && jobq__on_loop_thread(q))
    return jobq__err(JOBQ_EDEADLK, "jobq_claim: a blocking claim on the loop thread");
  uv_mutex_lock(&q->mu);
  if (q->stopping) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "jobq_claim: the queue is closing");
  }
  q->refs++;
  uint64_t deadline = uv_hrtime() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  int rc;
  for (;;) {
    if (q->stopping) {
      rc = jobq__err(JOBQ_ECLOSED, "jobq_claim: the queue is closing");
      break;
    }
    uint64_t gen = q->work_gen;
    jobq_ctx_t *ctx = NULL;
    size_t got = 0;
    rc = jobq__claim_locked(q, kinds, nk, 1, &ctx, &got);
    if (rc == 0 && got == 1) {
      *out = ctx;
      break;
    }
    if (rc < 0) break;
    if (q->stopping) {
      rc = jobq__err(JOBQ_ECLOSED, "jobq_claim: the queue is closing");
      break;
    }
    if (gen != q->work_gen) continue;
    uint64_t now = uv_hrtime();
    if (timeout_ms == 0 || (timeout_ms > 0 && now >= deadline)) {
      rc = jobq__err(JOBQ_ETIMEDOUT, "jobq_claim: no job was due within %d ms", timeout_ms);
      break;
    }
    q->idle++;
    if (gen != q->work_gen) {
      q->idle--;
      continue;
    }
    if (timeout_ms < 0) uv_cond_wait(&q->work_cv, &q->mu);
    else uv_cond_timedwait(&q->work_cv, &q->mu, deadline - now);
    q->idle--;
  }
  jobq__q_unref(q);
  return rc;
}

/* ---- timeouts and release ---- */

/* On the maintenance thread: ends a timed-out attempt (retry or fail). */
void jobq__timeout_apply(jobq_ctx_t *ctx) {
  jobq_t *q = ctx->q;
  char msg[128];
  snprintf(msg, sizeof msg, "attempt timed out after %lld ms",
           (long long)(ctx->kr ? ctx->kr->ko.timeout_ms : 0));
  uv_mutex_lock(&q->mu);
  ctx->finished = 0; /* claimed for this path in expire; end_attempt sets it again */
  q->ops_in_flight--;
  int open;
  end_attempt(q, ctx, JOBQ_OUTCOME_RETRY, NULL, msg, "timeout", &open);
  ctx->timed_out = 1;
  /* If storage failed, the attempt stays running there and its handler's
   * finish is still refused; a lease expiry (durable backends) recovers it. */
  if (open) ctx->finished = 1;
  jobq__ctx_put(ctx); /* the timeout's reference */
  uv_mutex_unlock(&q->mu);
}

void jobq__expire_timeouts(jobq_t *q, int64_t now) {
  jobq_ctx_t *ctx;
  while ((ctx = jobq__heap_top(&q->tmo)) && ctx->deadline <= now) {
    tmo_remove(q, ctx);
    if (ctx->finished) continue;
    /* From now on the handler's own finish is refused; it should stop. */
    ctx->finished = 1;
    ctx->timed_out = 1;
    atomic_store(&ctx->cancelled, 1);
    ctx->refs++;
    q->ops_in_flight++; /* close waits for it */
    jobq__maint_post_timeout(q, ctx);
  }
}

void jobq__release_all(jobq_t *q) {
  size_t n = q->running.count, k = 0;
  if (n == 0) return;
  jobq_ctx_t **v = malloc(n * sizeof *v);
  jobq_storage_finish *f = calloc(n, sizeof *f);
  int *st = calloc(n, sizeof *st);
  if (!v || !f || !st) {
    /* Without memory the jobs stay running in storage; a later lease expiry
     * (or, in memory, nothing) recovers them. */
    free(v);
    free(f);
    free(st);
    return;
  }
  int64_t now = jobq__now(q);
  for (size_t i = 0; i < q->running.cap; i++) {
    jobq_ctx_t *c = q->running.slots[i].key ? q->running.slots[i].val : NULL;
    if (c == NULL || c->finished) continue;
    c->finished = 1;
    c->released = 1;
    atomic_store(&c->cancelled, 1);
    tmo_remove(q, c);
    f[k].id = c->rec.id;
    f[k].attempt = c->rec.attempts;
    f[k].outcome = JOBQ_OUTCOME_RELEASE;
    f[k].now = now;
    /* Held while mu is dropped below: the handler may return meanwhile and
     * drop the last other reference, and f[k].id points into the ctx. */
    c->refs++;
    v[k++] = c;
  }
  q->ops_in_flight++;
  uv_mutex_unlock(&q->mu);
  if (k) q->ops->finish(q->st, f, k, st);
  uv_mutex_lock(&q->mu);
  q->ops_in_flight--;
  for (size_t i = 0; i < k; i++) {
    running_del(q, v[i]);
    if (v[i]->kr) v[i]->kr->running--;
    if (st[i] == JOBQ_CANCELLED)
      jobq__emit(q, JOBQ_EVENT_CANCELLED, v[i]->rec.id, v[i]->rec.kind, JOBQ_CANCELLED,
                 v[i]->progress, v[i]->step, v[i]->rec.attempts, "cancelled", NULL);
    jobq__notify_waiters(q, v[i]->rec.id);
    jobq__ctx_put(v[i]);
  }
  free(v);
  free(f);
  free(st);
}
