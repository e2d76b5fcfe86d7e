/* How an attempt ends. Every way goes through jobq__attempt_end (or, with a
 * backend that stores asynchronously, its asynchronous twin), which asks
 * storage first and only then publishes the outcome (events, waiters,
 * counters), so what readers see has always been stored. */
#include "core/attempt.h"
#include "core/stats.h"
#include "util/id.h"

#include <stdlib.h>
#include <string.h>

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
void jobq__running_del(jobq_t *q, jobq_ctx_t *ctx) {
  jobq__map_del_val(&q->running.map, ctx->rec.id, ctx);
}

static int64_t backoff_ms(jobq_t *q, const kind_reg *k, int attempt) {
  int64_t base = k ? k->ko.backoff_base_ms : JOBQ_DEFAULT_BACKOFF_BASE_MS;
  int64_t max = k ? k->ko.backoff_max_ms : JOBQ_DEFAULT_BACKOFF_MAX_MS;
  double jitter = k ? k->ko.jitter : JOBQ_DEFAULT_JITTER;
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
      f->run_at = f->now + (ctx->has_delay ? ctx->delay_ms : backoff_ms(q, ctx->kr, ctx->rec.attempts));
      ctx->rec.run_at = f->run_at;
    }
  } else if (outcome == JOBQ_OUTCOME_DEFER) {
    f->run_at = f->now + ctx->delay_ms; /* jobq_ctx_retry_after: not counted */
    ctx->rec.run_at = f->run_at;
  }
}

/* After storage has applied the end of an attempt: bookkeeping and news.
 * now: the queue's clock when the end was stored (-1: read it here). */
static void publish_end(jobq_t *q, jobq_ctx_t *ctx, int state, const char *result,
                        const char *error, int64_t now) {
  jobq__running_del(q, ctx);
  jobq__tmo_remove(q, ctx);
  jobq__slot_check(q, ctx); /* a timed-out handler that still runs keeps it */
  if (ctx->kr && ctx->t0_ns) { /* (0: an untimed call, run_handler) */
    /* The handler's own time: up to its succeed/fail, not to the commit,
     * which group commit may delay by a millisecond or two. */
    double ms = (double)((ctx->t1_ns ? ctx->t1_ns : uv_hrtime()) - ctx->t0_ns) / 1e6;
    ctx->kr->avg_ms = ctx->kr->avg_ms == 0 ? ms : ctx->kr->avg_ms * 0.8 + ms * 0.2;
  }
  /* The store's stats: the outcome, and the attempt's duration as the
   * queue's clock measured it (so that tests with a clock of their own
   * decide it), from the start storage recorded. */
  jobq__stats_count(q, ctx->rec.kind,
                    state == JOBQ_SUCCEEDED ? JOBQ_STAT_SUCCEEDED
                    : state == JOBQ_FAILED  ? JOBQ_STAT_FAILED
                    : state == JOBQ_QUEUED  ? JOBQ_STAT_RETRIED
                                            : JOBQ_STAT_CANCELLED,
                    1);
  if (state == JOBQ_SUCCEEDED || state == JOBQ_FAILED || state == JOBQ_QUEUED)
    jobq__stats_duration(q, ctx->rec.kind,
                         (double)((now >= 0 ? now : jobq__now(q)) - ctx->rec.started_at));
  int type = jobq__state_end_event(state);
  if (state == JOBQ_QUEUED) {
    jobq__wake_claimers(q);
    if (ctx->rec.run_at < q->loop_s.wake_at) {
      q->loop_s.wake_at = ctx->rec.run_at;
      jobq__kick_loop(q);
    }
  }
  jobq__emit_now(q, type, ctx->rec.id, ctx->rec.kind, state,
             state == JOBQ_SUCCEEDED ? 100 : ctx->progress, ctx->step, ctx->rec.attempts, error,
             state == JOBQ_SUCCEEDED ? (result ? result : "null") : NULL);
  jobq__notify_waiters(q, ctx->rec.id);
  /* Storage may have added webhook deliveries with the end. */
  if (jobq_state_is_terminal(state)) jobq__wh_kick(q);
  if (q->closed) uv_cond_broadcast(&q->idle_cv);
}

int jobq__attempt_refusal(jobq_t *q, jobq_ctx_t *ctx, const char *fn) {
  if (jobq__attempt_released(ctx) || q->closed == 2)
    return jobq__err(JOBQ_ECLOSED, "%s: the queue closed and released job %s", fn, ctx->rec.id);
  if (ctx->state != JOBQ_ATTEMPT_RUNNING)
    return jobq__err(JOBQ_ESTATE, "%s: the attempt of job %s already ended%s", fn, ctx->rec.id,
                     jobq__attempt_timed_out(ctx) ? " (it timed out)" : "");
  return 0;
}

/* The state an ending attempt reaches once storage is done with it. */
static jobq__attempt_state ended(jobq__attempt_state ending) {
  return ending == JOBQ_ATTEMPT_TIMING_OUT ? JOBQ_ATTEMPT_TIMED_OUT : JOBQ_ATTEMPT_FINISHED;
}

/* After storage answered the end of ctx's attempt: bookkeeping and news.
 * *open when storage itself failed (nothing applied). */
static int end_applied(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                       const char *error, const char *fn, int *open, int rc, int state,
                       int applied_outcome, int64_t now) {
  jobq__health_note(q, ctx->state == JOBQ_ATTEMPT_TIMING_OUT ? JOBQ_OP_TIMEOUT : JOBQ_OP_FINISH,
                    rc < 0 ? rc : 0);
  if (rc < 0) {
    *open = 1;
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s: storage failed", fn);
    return rc;
  }
  jobq__attempt_to(ctx, ended(ctx->state));
  if (state < 0) {
    /* Storage no longer sees this attempt running (stale or gone). */
    jobq__running_del(q, ctx);
    jobq__slot_check(q, ctx);
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
    return jobq__err(JOBQ_ESTATE, "%s: job %s is no longer running this attempt", fn,
                     ctx->rec.id);
  }
  if (outcome == JOBQ_OUTCOME_RELEASE && state == JOBQ_QUEUED) {
    /* Given back: no news, the job is simply queued again. (A release of a
     * job with a cancel request ends it cancelled: that is news, below.) */
    jobq__running_del(q, ctx);
    jobq__slot_check(q, ctx);
    jobq__wake_claimers(q);
    jobq__notify_waiters(q, ctx->rec.id);
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
    return 0;
  }
  publish_end(q, ctx, state, result, applied_outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : error,
              now);
  return 0;
}

int jobq__attempt_end(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                      const char *error, const char *fn, int *open) {
  assert(ctx->state == JOBQ_ATTEMPT_FINISHING || ctx->state == JOBQ_ATTEMPT_TIMING_OUT);
  *open = 0;
  jobq__tmo_remove(q, ctx);
  jobq_storage_finish f;
  outcome_record(q, ctx, outcome, result, error, &f);
  int state = 0;
  /* Hold the job's events until ours is out (see jobq__hold_begin). */
  int held = jobq__events_on(q) && jobq__hold_begin(q, ctx->rec.id) == 0;
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  int rc = q->ops->finish(q->st, &f, 1, &state);
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  /* (storage applied it synchronously: its time is f.now) */
  rc = end_applied(q, ctx, outcome, result, error, fn, open, rc, state, f.outcome, f.now);
  if (held) jobq__hold_end(q, ctx->rec.id, 0, NULL);
  return rc;
}

/* Completion of an asynchronous finish (any thread). */
static void finish_done(void *ud, int rc, const int *out_state) {
  jobq_ctx_t *ctx = ud;
  jobq_t *q = ctx->q;
  uv_mutex_lock(&q->mu);
  jobq__attempt_to(ctx, JOBQ_ATTEMPT_FINISHED);
  int state = rc < 0 ? rc : out_state[0];
  jobq__health_note(q, JOBQ_OP_FINISH, rc < 0 ? rc : 0);
  if (rc < 0)
    jobq__log(q, JOBQ_LOG_ERROR,
              "job %s: the outcome of attempt %d could not be stored (%s); the job runs again "
              "once its lease expires",
              ctx->rec.id, ctx->rec.attempts, jobq_err_name(rc));
  if (state < 0) {
    /* Not stored (storage failed after the handler was told it worked), or
     * the attempt was no longer running. Stop heartbeating it: if it is
     * still running in storage, its lease expires and it is rescued and run
     * again (at-least-once). */
    jobq__running_del(q, ctx);
    jobq__slot_check(q, ctx);
    if (q->closed) uv_cond_broadcast(&q->idle_cv);
  } else {
    publish_end(q, ctx, state, ctx->fin_result, ctx->fin_error, -1);
  }
  if (ctx->held) jobq__hold_end(q, ctx->rec.id, 0, NULL);
  ctx->held = 0;
  jobq__storage_end(q);
  jobq__ctx_put(ctx); /* the user's reference, carried by the finish */
  jobq__unlock(q);
}

/* The user's finish with a backend that stores asynchronously: returns once
 * the outcome is queued for storage; news follows when it is stored. mu
 * held on entry; released on return (and around the storage call). */
static int user_finish_async(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                             const char *error, const char *fn) {
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
  jobq__attempt_to(ctx, JOBQ_ATTEMPT_FINISHING);
  ctx->user_done = 1; /* the reference now travels with the finish */
  jobq__tmo_remove(q, ctx);
  free(ctx->fin_result);
  free(ctx->fin_error);
  ctx->fin_result = res;
  ctx->fin_error = f.outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : err;
  if (f.outcome == JOBQ_OUTCOME_SUCCEEDED) free(err);
  ctx->held = jobq__events_on(q) && jobq__hold_begin(q, ctx->rec.id) == 0;
  jobq__storage_begin(q);
  /* Storage is called without mu, like every storage call: a backend may
   * block (a full request queue, its own lock), and nothing here needs mu
   * meanwhile. What f points to stays put: the id and the copies belong to
   * ctx, and a FINISHING attempt's step is not changed (jobq_ctx_progress
   * refuses). The backend copies f before it returns. */
  uv_mutex_unlock(&q->mu);
  int rc = q->ops->finish_async(q->st, &f, 1, finish_done, ctx);
  if (rc == 0) return 0; /* ctx may be gone already: finish_done had the last word */
  /* Not queued: finish_done will not come, so ctx (with the user's
   * reference) is still ours; nothing else ends a FINISHING attempt. */
  uv_mutex_lock(&q->mu);
  if (ctx->held) jobq__hold_end(q, ctx->rec.id, 0, NULL);
  ctx->held = 0;
  jobq__storage_end(q);
  jobq__attempt_to(ctx, JOBQ_ATTEMPT_RUNNING);
  ctx->user_done = 0;
  ctx->has_delay = 0;
  uv_mutex_unlock(&q->mu);
  if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s: storage failed", fn);
  return rc;
}

/* The user's succeed/fail: ends the attempt and drops the user's reference. */
int jobq__attempt_user_finish(jobq_ctx_t *ctx, int outcome, const char *result, const char *error,
                       const char *fn) {
  return jobq__attempt_user_finish_after(ctx, outcome, result, error, fn, -1);
}

int jobq__attempt_user_finish_after(jobq_ctx_t *ctx, int outcome, const char *result,
                                    const char *error, const char *fn, int64_t delay_ms) {
  jobq_t *q = ctx->q;
  uv_mutex_lock(&q->mu);
  if (ctx->user_done) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ESTATE, "%s: job %s was already finished through this ctx", fn,
                     ctx->rec.id);
  }
  if (ctx->t1_ns == 0 && ctx->t0_ns) ctx->t1_ns = uv_hrtime();
  int rc = jobq__attempt_refusal(q, ctx, fn);
  if (rc) {
    /* Said before the last reference goes: ctx (and q) may be freed. The
     * owner lets go: a timed-out attempt's slot is free once no handler
     * call on it runs either. */
    ctx->user_done = 1;
    jobq__slot_check(q, ctx);
    jobq__ctx_put(ctx);
    jobq__unlock(q);
    return rc;
  }
  /* The delay holds for this ending only: a failed store leaves the
   * attempt open, and a later plain fail gets its backoff. */
  ctx->has_delay = delay_ms >= 0;
  ctx->delay_ms = delay_ms >= 0 ? delay_ms : 0;
  if (q->ops->finish_async) {
    rc = user_finish_async(q, ctx, outcome, result, error, fn);
    return rc; /* ctx may be gone; a failed queueing reset has_delay */
  }
  jobq__attempt_to(ctx, JOBQ_ATTEMPT_FINISHING);
  int open;
  rc = jobq__attempt_end(q, ctx, outcome, result, error, fn, &open);
  ctx->has_delay = 0;
  if (open) {
    /* Storage failed: the attempt is still open; the caller may try again. */
    jobq__attempt_to(ctx, JOBQ_ATTEMPT_RUNNING);
    uv_mutex_unlock(&q->mu);
    return rc;
  }
  ctx->user_done = 1;
  jobq__ctx_put(ctx);
  jobq__unlock(q);
  return rc;
}

void jobq__attempt_give_back(jobq_t *q, jobq_ctx_t *ctx) {
  /* It may have timed out while it waited in a batch: then that ends it. */
  if (ctx->state == JOBQ_ATTEMPT_RUNNING) {
    jobq__attempt_to(ctx, JOBQ_ATTEMPT_FINISHING);
    int open;
    jobq__attempt_end(q, ctx, JOBQ_OUTCOME_RELEASE, NULL, NULL, "claim", &open);
    if (open) { /* storage failed too: the lease expires and rescues it */
      jobq__attempt_to(ctx, JOBQ_ATTEMPT_FINISHED);
      jobq__running_del(q, ctx);
    }
  }
  ctx->user_done = 1; /* nobody will run it */
  jobq__slot_check(q, ctx);
  jobq__ctx_put(ctx);
}
