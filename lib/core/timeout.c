/* Attempt timeouts (a heap by deadline, expired on the loop, applied on the
 * maintenance thread) and the release of what still runs when the queue
 * closes. */
#include "core/attempt.h"

#include <stdio.h>
#include <stdlib.h>

static int tmo_less(const void *a, const void *b) {
  return ((const jobq_ctx_t *)a)->deadline < ((const jobq_ctx_t *)b)->deadline;
}
static uint32_t *tmo_slot(void *e) { return &((jobq_ctx_t *)e)->tmo_idx; }

void jobq__tmo_init(jobq_t *q) {
  q->running.tmo.less = tmo_less;
  q->running.tmo.slot = tmo_slot;
}

int64_t jobq__tmo_next(jobq_t *q) {
  jobq_ctx_t *c = jobq__heap_top(&q->running.tmo);
  return c ? c->deadline : INT64_MAX;
}

void jobq__tmo_remove(jobq_t *q, jobq_ctx_t *ctx) {
  if (!ctx->in_tmo) return;
  jobq__heap_remove(&q->running.tmo, ctx);
  ctx->in_tmo = 0;
}

/* On the maintenance thread: ends a timed-out attempt (retry or fail). */
void jobq__timeout_apply(jobq_ctx_t *ctx) {
  jobq_t *q = ctx->q;
  char msg[128];
  snprintf(msg, sizeof msg, "attempt timed out after %lld ms",
           (long long)(ctx->kr ? ctx->kr->ko.timeout_ms : 0));
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q); /* expire's count; jobq__attempt_end counts its own call */
  int open;
  jobq__attempt_end(q, ctx, JOBQ_OUTCOME_RETRY, NULL, msg, "timeout", &open);
  /* If storage failed, the attempt stays running there and its handler's
   * finish is still refused; a lease expiry (durable backends) recovers it,
   * so it is no longer heartbeated here. */
  if (open) {
    jobq__attempt_to(ctx, JOBQ_ATTEMPT_TIMED_OUT);
    jobq__running_del(q, ctx);
    jobq__slot_check(q, ctx);
  }
  jobq__ctx_put(ctx); /* the timeout's reference */
  uv_mutex_unlock(&q->mu);
}

void jobq__expire_timeouts(jobq_t *q, int64_t now) {
  jobq_ctx_t *ctx;
  while ((ctx = jobq__heap_top(&q->running.tmo)) && ctx->deadline <= now) {
    jobq__tmo_remove(q, ctx);
    if (ctx->state != JOBQ_ATTEMPT_RUNNING) continue;
    /* From now on the handler's own finish is refused; it should stop. */
    jobq__attempt_to(ctx, JOBQ_ATTEMPT_TIMING_OUT);
    atomic_store(&ctx->cancelled, 1);
    ctx->refs++;
    jobq__storage_begin(q); /* close waits for it */
    if (jobq__maint_post_timeout(q, ctx) != 0) {
      /* Out of memory: running again until the next tick tries again. */
      jobq__attempt_to(ctx, JOBQ_ATTEMPT_RUNNING);
      ctx->refs--;
      jobq__storage_end(q);
      ctx->deadline = now + jobq__maint_tick_ms(q);
      if (jobq__heap_push(&q->running.tmo, ctx) == 0) ctx->in_tmo = 1;
    }
  }
}

void jobq__release_all(jobq_t *q) {
  size_t n = q->running.map.count, k = 0;
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
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&q->running.map, &cur));) {
    jobq_ctx_t *c = e->val;
    if (c->state != JOBQ_ATTEMPT_RUNNING) continue;
    jobq__attempt_to(c, JOBQ_ATTEMPT_RELEASING);
    atomic_store(&c->cancelled, 1);
    jobq__tmo_remove(q, c);
    f[k].id = c->rec.id;
    f[k].attempt = c->rec.attempts;
    f[k].outcome = JOBQ_OUTCOME_RELEASE;
    f[k].now = now;
    /* Held while mu is dropped below: the handler may return meanwhile and
     * drop the last other reference, and f[k].id points into the ctx. */
    c->refs++;
    v[k++] = c;
  }
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  if (k) q->ops->finish(q->st, f, k, st);
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  for (size_t i = 0; i < k; i++) {
    jobq__attempt_to(v[i], JOBQ_ATTEMPT_RELEASED);
    jobq__running_del(q, v[i]);
    jobq__slot_check(q, v[i]); /* kept while its handler still runs */
    if (st[i] == JOBQ_CANCELLED) {
      jobq__emit(q, JOBQ_EVENT_CANCELLED, v[i]->rec.id, v[i]->rec.kind, JOBQ_CANCELLED,
                 v[i]->progress, v[i]->step, v[i]->rec.attempts, "cancelled", NULL);
      jobq__wh_kick(q);
    }
    jobq__notify_waiters(q, v[i]->rec.id);
    jobq__ctx_put(v[i]);
  }
  free(v);
  free(f);
  free(st);
}
