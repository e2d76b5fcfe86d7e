/* What a handler (or a jobq_claim caller) calls on its attempt. */
#include "core/attempt.h"
#include "core/ext.h"
#include "util/json.h"
#include "util/utf8.h"

#include <stdlib.h>
#include <string.h>

JOBQ_API int jobq_ctx_succeed(jobq_ctx_t *ctx, const char *result_json) {
  if (ctx == NULL) return jobq__err(JOBQ_EINVAL, "jobq_ctx_succeed: ctx is NULL");
  if (jobq__inherited(ctx->q)) return jobq__inherited_err("jobq_ctx_succeed");
  const char *r = result_json ? result_json : "null";
  size_t len = strlen(r);
  if (len > ctx->q->o.max_payload)
    return jobq__err(JOBQ_ETOOBIG, "jobq_ctx_succeed: result is %zu bytes, the limit is %zu", len,
                     ctx->q->o.max_payload);
  int rc = jobq__json_check("jobq_ctx_succeed", "result", r, len);
  if (rc) return rc;
  return jobq__attempt_user_finish(ctx, JOBQ_OUTCOME_SUCCEEDED, r, NULL, "jobq_ctx_succeed");
}

JOBQ_API int jobq_ctx_fail(jobq_ctx_t *ctx, const char *message, int retryable) {
  if (ctx == NULL) return jobq__err(JOBQ_EINVAL, "jobq_ctx_fail: ctx is NULL");
  if (jobq__inherited(ctx->q)) return jobq__inherited_err("jobq_ctx_fail");
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
  return jobq__attempt_user_finish(ctx, retryable ? JOBQ_OUTCOME_RETRY : JOBQ_OUTCOME_FAILED, NULL, m,
                     "jobq_ctx_fail");
}

/* jobq_ctx_retry_after, and its twin with a reason for the built-in stages
 * (core/ext.h). */
int jobq__ctx_retry_after(jobq_ctx_t *ctx, int64_t delay_ms, int count_attempt,
                          const char *reason) {
  static const char F[] = "jobq_ctx_retry_after";
  if (ctx == NULL) return jobq__err(JOBQ_EINVAL, "%s: ctx is NULL", F);
  if (jobq__inherited(ctx->q)) return jobq__inherited_err(F);
  if (delay_ms < 0)
    return jobq__err(JOBQ_EINVAL, "%s: delay_ms %lld is negative", F, (long long)delay_ms);
  if (delay_ms > INT64_C(86400000))
    return jobq__err(JOBQ_EINVAL, "%s: delay_ms %lld is longer than a day (86400000)", F,
                     (long long)delay_ms);
  if (count_attempt != 0 && count_attempt != 1)
    return jobq__err(JOBQ_EINVAL, "%s: count_attempt %d is not 0 or 1", F, count_attempt);
  jobq_t *q = ctx->q;
  if (!count_attempt && (q->ops->version < 3 || q->ops->rate_window == NULL))
    return jobq__err(JOBQ_ENOTSUP,
                     "%s: storage '%s' cannot defer a job without counting the attempt (its "
                     "vtable has no rate_window)",
                     F, q->ops->scheme);
  char buf[JOBQ_ERROR_MAX + 1];
  if (reason == NULL || *reason == '\0') {
    snprintf(buf, sizeof buf, "deferred by the handler for %lld ms", (long long)delay_ms);
  } else {
    size_t cut = strlen(reason);
    if (cut > JOBQ_ERROR_MAX) {
      cut = JOBQ_ERROR_MAX;
      while (cut > 0 && ((unsigned char)reason[cut] & 0xc0) == 0x80) cut--;
    }
    memcpy(buf, reason, cut);
    buf[cut] = '\0';
  }
  return jobq__attempt_user_finish_after(ctx, count_attempt ? JOBQ_OUTCOME_RETRY : JOBQ_OUTCOME_DEFER,
                                         NULL, buf, F, delay_ms);
}

JOBQ_API int jobq_ctx_retry_after(jobq_ctx_t *ctx, int64_t delay_ms, int count_attempt) {
  return jobq__ctx_retry_after(ctx, delay_ms, count_attempt, NULL);
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
  if (jobq__inherited(ctx->q)) return jobq__inherited_err("jobq_ctx_progress");
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
  if (ctx->state != JOBQ_ATTEMPT_RUNNING || ctx->user_done) {
    uv_mutex_unlock(&q->mu);
    free(copy);
    return jobq__err(jobq__attempt_released(ctx) ? JOBQ_ECLOSED : JOBQ_ESTATE,
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
  int write = q->closed != 2 && !jobq__on_loop_thread(q) &&
              (now - ctx->progress_written >= JOBQ_PROGRESS_WRITE_MS || percent == 100);
  if (write && q->maint.flushing) {
    /* After a coalesced write in flight, never before it (maint.flushing);
     * the lock was let go meanwhile, so look again. */
    jobq__maint_wait_flushes(q);
    write = q->closed != 2 && ctx->state == JOBQ_ATTEMPT_RUNNING && !ctx->user_done;
    now = jobq__now(q);
  }
  if (write) {
    ctx->progress_written = now;
    ctx->progress_dirty = 0;
    char *s = ctx->step ? jobq__strdup(ctx->step) : NULL;
    jobq__storage_begin(q);
    uv_mutex_unlock(&q->mu);
    int pv = ctx->progress; /* the latest, if another thread reported meanwhile */
    rc = q->ops->progress(q->st, ctx->rec.id, ctx->rec.attempts, pv, s);
    free(s);
    uv_mutex_lock(&q->mu);
    jobq__storage_end(q);
    if (rc == JOBQ_ESTATE || rc == JOBQ_ENOTFOUND) rc = 0; /* ended meanwhile */
  } else {
    ctx->progress_dirty = 1;
  }
  uv_mutex_unlock(&q->mu);
  return rc;
}
