/* Maintenance, on one timer of the loop: heartbeats that extend the leases of
 * attempts running here, coalesced progress writes, and the rescue of jobs
 * whose lease expired because their process died. Storage calls run on
 * libuv's thread pool (never on the loop), one batch at a time. */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct maint_batch {
  jobq_t *q;
  jobq_storage_lease *leases; /* heartbeat, ids owned */
  size_t n_leases;
  int64_t lease_until;
  struct flush {
    char *id;
    int attempt, progress;
    char *step;
  } *flushes;
  size_t n_flushes;
  int rescue;
  int64_t now;
  size_t rescued;
} maint_batch;

static int64_t tick_ms(jobq_t *q) {
  int64_t t = q->o.lease_ms / 4;
  if (t > JOBQ_PROGRESS_WRITE_MS) t = JOBQ_PROGRESS_WRITE_MS;
  return t < 10 ? 10 : t;
}

static void batch_free(maint_batch *b) {
  for (size_t i = 0; i < b->n_leases; i++) free((char *)b->leases[i].id);
  for (size_t i = 0; i < b->n_flushes; i++) {
    free(b->flushes[i].id);
    free(b->flushes[i].step);
  }
  free(b->leases);
  free(b->flushes);
  free(b);
}

static void maint_work(uv_work_t *w) {
  maint_batch *b = w->data;
  jobq_t *q = b->q;
  for (size_t i = 0; i < b->n_flushes; i++)
    q->ops->progress(q->st, b->flushes[i].id, b->flushes[i].attempt, b->flushes[i].progress,
                     b->flushes[i].step);
  if (b->n_leases && q->ops->heartbeat(q->st, b->leases, b->n_leases, b->lease_until) != 0) {
    /* Could not extend: report nothing (the next beat tries again well
     * before the leases run out). */
    for (size_t i = 0; i < b->n_leases; i++) {
      b->leases[i].still_running = 1;
      b->leases[i].cancel_requested = 0;
    }
  }
  if (b->rescue && q->ops->rescue(q->st, b->now, &b->rescued) != 0) b->rescued = 0;
}

static void maint_after(uv_work_t *w, int status) {
  (void)status;
  maint_batch *b = w->data;
  jobq_t *q = b->q;
  uv_mutex_lock(&q->mu);
  for (size_t i = 0; i < b->n_leases; i++) {
    jobq_ctx_t *ctx = jobq__map_get(&q->running, b->leases[i].id);
    if (ctx == NULL || ctx->rec.attempts != b->leases[i].attempt) continue;
    /* Cancelled by any process, or no longer ours (rescued after a stall):
     * either way the handler should stop. */
    if (b->leases[i].cancel_requested || !b->leases[i].still_running)
      atomic_store(&ctx->cancelled, 1);
  }
  if (b->rescued) {
    q->work_gen++;
    if (q->idle) uv_cond_broadcast(&q->work_cv);
    jobq__notify_waiters(q, NULL);
  }
  q->maint_busy = 0;
  if (q->closed) uv_cond_broadcast(&q->idle_cv);
  uv_mutex_unlock(&q->mu);
  batch_free(b);
}

static void maint_tick(uv_timer_t *t) {
  jobq_t *q = t->data;
  uv_mutex_lock(&q->mu);
  int64_t now = jobq__now(q);
  int beat = q->running.count > 0 && now >= q->next_heartbeat;
  int rescue = now >= q->next_rescue;
  size_t dirty = 0;
  if (q->running.count) {
    for (size_t i = 0; i < q->running.cap; i++) {
      jobq_ctx_t *c = q->running.slots[i].key ? q->running.slots[i].val : NULL;
      if (c && c->progress_dirty && !c->finished &&
          now - c->progress_written >= JOBQ_PROGRESS_WRITE_MS)
        dirty++;
    }
  }
  if (q->maint_busy || q->closed || (!beat && !rescue && !dirty)) {
    uv_mutex_unlock(&q->mu);
    return;
  }
  maint_batch *b = calloc(1, sizeof *b);
  if (b == NULL) goto out;
  b->q = q;
  b->now = now;
  b->rescue = rescue;
  b->lease_until = now + q->o.lease_ms;
  size_t n = beat ? q->running.count : 0;
  if ((n && !(b->leases = calloc(n, sizeof *b->leases))) ||
      (dirty && !(b->flushes = calloc(dirty, sizeof *b->flushes))))
    goto fail;
  for (size_t i = 0; i < q->running.cap; i++) {
    jobq_ctx_t *c = q->running.slots[i].key ? q->running.slots[i].val : NULL;
    if (c == NULL || c->finished) continue;
    if (n) {
      jobq_storage_lease *l = &b->leases[b->n_leases];
      if ((l->id = jobq__strdup(c->rec.id)) == NULL) goto fail;
      l->attempt = c->rec.attempts;
      b->n_leases++;
    }
    if (c->progress_dirty && now - c->progress_written >= JOBQ_PROGRESS_WRITE_MS &&
        b->n_flushes < dirty) {
      struct flush *f = &b->flushes[b->n_flushes];
      if ((f->id = jobq__strdup(c->rec.id)) == NULL ||
          (c->step && (f->step = jobq__strdup(c->step)) == NULL)) {
        free(f->id);
        goto fail;
      }
      f->attempt = c->rec.attempts;
      f->progress = c->progress;
      b->n_flushes++;
      c->progress_dirty = 0;
      c->progress_written = now;
    }
  }
  if (beat) q->next_heartbeat = now + q->o.lease_ms / 3;
  if (rescue) q->next_rescue = now + q->o.lease_ms / 2;
  q->maint_busy = 1;
  q->maint_work.data = b;
  if (uv_queue_work(q->loop, &q->maint_work, maint_work, maint_after) != 0) {
    q->maint_busy = 0;
    goto fail;
  }
  uv_mutex_unlock(&q->mu);
  return;
fail:
  batch_free(b); /* out of memory: the next tick tries again */
out:
  uv_mutex_unlock(&q->mu);
}

void jobq__maint_start(jobq_t *q) {
  int64_t now = jobq__now(q);
  q->next_heartbeat = now + q->o.lease_ms / 3;
  q->next_rescue = now; /* jobs a crashed process left behind: look at once */
  uv_timer_start(&q->maint, maint_tick, 0, (uint64_t)tick_ms(q));
}

void jobq__maint_on_notify(void *ud) {
  jobq_t *q = ud;
  uv_mutex_lock(&q->mu);
  q->work_gen++;
  if (q->idle) uv_cond_broadcast(&q->work_cv);
  /* Waiters look again; they go back to waiting if their job did not change. */
  for (size_t i = 0; q->waiters.count && i < q->waiters.cap; i++) {
    if (q->waiters.slots[i].key == NULL) continue;
    for (waiter *w = q->waiters.slots[i].val; w; w = w->next) {
      w->recheck = 1;
      uv_cond_signal(&w->cv);
    }
  }
  uv_mutex_unlock(&q->mu);
}
