/* Maintenance, on one timer of the loop: heartbeats that extend the leases of
 * attempts running here, coalesced progress writes, the rescue of jobs
 * whose lease expired because their process died, and the evaluation of
 * cron schedules (core/cron.c). Storage calls run on
 * the queue's maintenance thread (never on the loop), one batch at a time;
 * it also applies attempt timeouts, and between those, retention
 * (core/retention.c). */
#include "core/internal.h"
#include "core/stats.h"

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
  int cron;   /* evaluate the cron schedules */
  int stats;    /* add this process's counts to the store */
  int64_t now;
  size_t rescued;
} maint_batch;

int64_t jobq__maint_tick_ms(jobq_t *q) {
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

static void flushes_done(jobq_t *q) { /* mu held */
  if (!q->maint.flushing) return;
  q->maint.flushing = 0;
  uv_cond_broadcast(&q->maint.flush_cv);
}

void jobq__maint_wait_flushes(jobq_t *q) {
  while (q->maint.flushing) uv_cond_wait(&q->maint.flush_cv, &q->mu);
}

/* Notes how storage answered one call (maintenance thread, mu not held). */
static void note(jobq_t *q, jobq__op op, int rc) {
  uv_mutex_lock(&q->mu);
  jobq__health_note(q, op, rc);
  uv_mutex_unlock(&q->mu);
}

static void maint_work(maint_batch *b) {
  jobq_t *q = b->q;
  /* The heartbeat first: each storage write may wait for the write lock,
   * and the leases are what must not wait behind progress writes. */
  int rc = b->n_leases ? q->ops->heartbeat(q->st, b->leases, b->n_leases, b->lease_until) : 0;
  if (b->n_leases) note(q, JOBQ_OP_HEARTBEAT, rc);
  if (rc != 0) {
    /* Could not extend: report nothing (the next beat tries again well
     * before the leases run out). */
    for (size_t i = 0; i < b->n_leases; i++) {
      b->leases[i].still_running = 1;
      b->leases[i].cancel_requested = 0;
    }
  }
  for (size_t i = 0; i < b->n_flushes; i++) {
    rc = q->ops->progress(q->st, b->flushes[i].id, b->flushes[i].attempt, b->flushes[i].progress,
                          b->flushes[i].step);
    /* Not found or not running any more is an answer, not a failure. */
    note(q, JOBQ_OP_PROGRESS, rc == JOBQ_ENOTFOUND || rc == JOBQ_ESTATE ? 0 : rc);
  }
  if (b->n_flushes) {
    uv_mutex_lock(&q->mu);
    flushes_done(q);
    uv_mutex_unlock(&q->mu);
  }
  if (b->stats) jobq__stats_flush(q, 0); /* counts it could not store wait for the next */
  if (b->rescue) {
    rc = q->ops->rescue(q->st, b->now, &b->rescued);
    if (rc != 0) b->rescued = 0;
    note(q, JOBQ_OP_RESCUE, rc);
  }
  if (b->cron) jobq__cron_evaluate(q, b->now);
  uv_mutex_lock(&q->mu);
  for (size_t i = 0; i < b->n_leases; i++) {
    jobq_ctx_t *ctx = jobq__map_get(&q->running.map, b->leases[i].id);
    if (ctx == NULL || ctx->rec.attempts != b->leases[i].attempt) continue;
    /* Cancelled by any process, or no longer ours (rescued after a stall):
     * either way the handler should stop. */
    if (b->leases[i].cancel_requested || !b->leases[i].still_running)
      atomic_store(&ctx->cancelled, 1);
    if (!b->leases[i].still_running && ctx->state == JOBQ_ATTEMPT_RUNNING)
      jobq__log(q, JOBQ_LOG_WARN,
                "job %s: storage no longer has attempt %d running here (its lease ran out "
                "while this process stalled, or another process ended it); its handler is "
                "asked to stop",
                ctx->rec.id, ctx->rec.attempts);
  }
  if (b->rescued) {
    jobq__log(q, JOBQ_LOG_INFO, "rescued %zu jobs whose lease had run out", b->rescued);
    jobq__wake_claimers(q);
    jobq__notify_waiters(q, NULL);
  }
  q->maint.busy = 0;
  if (q->closed) uv_cond_broadcast(&q->idle_cv);
  uv_mutex_unlock(&q->mu);
}

static void maint_tick(uv_timer_t *t) {
  jobq_t *q = t->data;
  uv_mutex_lock(&q->mu);
  int64_t now = jobq__now(q);
  jobq__retention_tick(q, now);
  int beat = q->running.map.count > 0 && now >= q->maint.next_heartbeat;
  int rescue = now >= q->maint.next_rescue;
  int cron = jobq__cron_wanted(q, now);
  int stats = jobq__stats_due(q);
  size_t dirty = 0;
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&q->running.map, &cur));) {
    jobq_ctx_t *c = e->val;
    if (c->progress_dirty && c->state == JOBQ_ATTEMPT_RUNNING &&
        now - c->progress_written >= JOBQ_PROGRESS_WRITE_MS)
      dirty++;
  }
  if (q->maint.busy || q->closed || (!beat && !rescue && !dirty && !cron && !stats)) {
    uv_mutex_unlock(&q->mu);
    return;
  }
  maint_batch *b = calloc(1, sizeof *b);
  if (b == NULL) goto out;
  b->q = q;
  b->now = now;
  b->rescue = rescue;
  b->cron = cron;
  b->stats = stats;
  if (stats) q->stats.next_flush_ns = uv_hrtime() + UINT64_C(1000000000);
  b->lease_until = now + q->o.lease_ms;
  size_t n = beat ? q->running.map.count : 0;
  if ((n && !(b->leases = calloc(n, sizeof *b->leases))) ||
      (dirty && !(b->flushes = calloc(dirty, sizeof *b->flushes))))
    goto fail;
  for (size_t cur = 0; (e = jobq__map_next(&q->running.map, &cur));) {
    jobq_ctx_t *c = e->val;
    if (c->state != JOBQ_ATTEMPT_RUNNING) continue;
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
  if (beat) q->maint.next_heartbeat = now + q->o.lease_ms / 3;
  if (rescue) q->maint.next_rescue = now + q->o.lease_ms / 2;
  q->maint.busy = 1;
  q->maint.flushing = b->n_flushes > 0;
  q->maint.batch = b;
  uv_cond_signal(&q->maint.cv);
  uv_mutex_unlock(&q->mu);
  return;
fail:
  batch_free(b); /* out of memory: the next tick tries again */
out:
  uv_mutex_unlock(&q->mu);
}

static void maint_main(void *arg) {
  jobq_t *q = arg;
  uv_mutex_lock(&q->mu);
  for (;;) {
    if (q->maint.n_tmo_posted) {
      jobq_ctx_t *ctx = q->maint.tmo_posted[--q->maint.n_tmo_posted];
      uv_mutex_unlock(&q->mu);
      jobq__timeout_apply(ctx);
      uv_mutex_lock(&q->mu);
      continue;
    }
    if (q->maint.batch) {
      maint_batch *b = q->maint.batch;
      q->maint.batch = NULL;
      uv_mutex_unlock(&q->mu);
      maint_work(b); /* clears maint.busy */
      batch_free(b);
      uv_mutex_lock(&q->mu);
      continue;
    }
    if (q->maint.stop) break;
    if (q->maint.ret_pending && !q->closed) {
      /* Retention, one call at a time, paced: anything above comes first. */
      uint64_t wait_ns = jobq__retention_step(q);
      if (wait_ns) uv_cond_timedwait(&q->maint.cv, &q->mu, wait_ns);
      continue;
    }
    uv_cond_wait(&q->maint.cv, &q->mu);
  }
  uv_mutex_unlock(&q->mu);
}

int jobq__maint_post_timeout(jobq_t *q, jobq_ctx_t *ctx) {
  if (q->maint.n_tmo_posted == q->maint.cap_tmo_posted) {
    size_t nc = q->maint.cap_tmo_posted ? q->maint.cap_tmo_posted * 2 : 16;
    jobq_ctx_t **nv = realloc(q->maint.tmo_posted, nc * sizeof *nv);
    if (nv == NULL) return -1;
    q->maint.tmo_posted = nv;
    q->maint.cap_tmo_posted = nc;
  }
  q->maint.tmo_posted[q->maint.n_tmo_posted++] = ctx;
  uv_cond_signal(&q->maint.cv);
  return 0;
}

int jobq__maint_start(jobq_t *q) {
  if (uv_cond_init(&q->maint.cv) != 0) return JOBQ_ENOMEM;
  if (uv_cond_init(&q->maint.flush_cv) != 0) {
    uv_cond_destroy(&q->maint.cv);
    return JOBQ_ENOMEM;
  }
  if (uv_thread_create(&q->maint.thread, maint_main, q) != 0) {
    uv_cond_destroy(&q->maint.flush_cv);
    uv_cond_destroy(&q->maint.cv);
    return JOBQ_ENOMEM;
  }
  q->maint.running = 1;
  /* This process heartbeats its leases from now on: a live owner. */
  jobq__storage_guard_leases(q->ops, q->st);
  int64_t now = jobq__now(q);
  q->maint.next_heartbeat = now + q->o.lease_ms / 3;
  q->maint.next_rescue = now; /* jobs a crashed process left behind: look at once */
  uv_timer_start(&q->maint.timer, maint_tick, 0, (uint64_t)jobq__maint_tick_ms(q));
  return 0;
}

void jobq__maint_stop(jobq_t *q) {
  if (!q->maint.running) return;
  uv_mutex_lock(&q->mu);
  q->maint.stop = 1;
  uv_cond_signal(&q->maint.cv);
  uv_mutex_unlock(&q->mu);
  uv_thread_join(&q->maint.thread);
  /* The loop's timer may still tick until the handles close: under the lock.
   * It queues no new batch once closed is set (maint_tick checks). */
  uv_mutex_lock(&q->mu);
  q->maint.running = 0;
  /* A batch queued after the stop was seen is dropped (its leases no longer matter). */
  if (q->maint.batch) {
    batch_free(q->maint.batch);
    q->maint.batch = NULL;
  }
  flushes_done(q);
  q->maint.busy = 0;
  uv_mutex_unlock(&q->mu);
}

void jobq__maint_on_notify(void *ud) {
  jobq_t *q = ud;
  uv_mutex_lock(&q->mu);
  jobq__wake_claimers(q);
  /* Waiters look again; they go back to waiting if their job did not change. */
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&q->waiters, &cur));) {
    for (waiter *w = e->val; w; w = w->next) {
      w->recheck = 1;
      uv_cond_signal(&w->cv);
    }
  }
  uv_mutex_unlock(&q->mu);
}
