/* Opening, starting and closing a queue; the loop's handles.
 *
 * The loop (the host's or one on a thread of libjobq's own) owns two
 * handles: an async handle through which any thread asks it to deliver
 * events, start on-loop handlers or re-arm the timer, and one timer that
 * fires at the earliest of "a delayed job comes due" and "a running attempt
 * times out". Nothing polls: an idle queue sleeps in the kernel. */
#include "core/internal.h"
#include "net/addrpolicy.h"
#include "core/stats.h"
#include "core/ext.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

JOBQ_API unsigned jobq_version(void) { return JOBQ_VERSION_HEX; }
JOBQ_API const char *jobq_version_string(void) { return JOBQ_VERSION_STRING; }
JOBQ_API void jobq_free(void *p) { free(p); }

static const char *const state_names[] = {"queued", "running", "succeeded", "failed",
                                          "cancelled"};

JOBQ_API const char *jobq_state_name(int state) {
  if (state < 0 || state > JOBQ_CANCELLED) return NULL;
  return state_names[state];
}

JOBQ_API int jobq_state_by_name(const char *name) {
  if (name == NULL) return jobq__err(JOBQ_EINVAL, "jobq_state_by_name: name is NULL");
  for (int i = 0; i <= JOBQ_CANCELLED; i++)
    if (strcmp(name, state_names[i]) == 0) return i;
  return jobq__err(JOBQ_EINVAL,
                   "jobq_state_by_name: '%.64s' is not a state (queued, running, succeeded, "
                   "failed, cancelled)",
                   name);
}

JOBQ_API size_t jobq_id_size(void) { return JOBQ_ID_SIZE; }

JOBQ_API int jobq_state_is_terminal(int state) {
  return state == JOBQ_SUCCEEDED || state == JOBQ_FAILED || state == JOBQ_CANCELLED;
}

int64_t jobq__now(jobq_t *q) {
  if (q->o.clock) return q->o.clock(q->o.clock_ud);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

JOBQ_API int64_t jobq_now(jobq_t *q) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_now: q is NULL");
  return jobq__now(q);
}

int jobq__on_loop_thread(jobq_t *q) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&self, &q->loop_s.tid);
}

void jobq__kick_loop(jobq_t *q) {
  if (q->loop_s.handles_open) uv_async_send(&q->loop_s.async);
}

static void free_q(jobq_t *q) {
  jobq__map_free(&q->running.map);
  jobq__map_free(&q->claim.cancel_hints);
  jobq__map_free(&q->waiters);
  jobq__map_free(&q->events.holds);
  jobq__heap_free(&q->running.tmo);
  free(q->maint.tmo_posted);
  uv_cond_destroy(&q->maint.cv);
  uv_cond_destroy(&q->maint.flush_cv);
  free(q->claim.inbox);
  free(q->claim.handoff);
  free(q->kinds.v);
  free(q->kinds.ma_names);
  free(q->kinds.ma_values);
  free(q->kinds.rates);
  free(q->kinds.worker);
  free(q->kinds.loop);
  free(q->claim.threads);
  free(q->events.subs);
  jobq__event_free_list(q->events.disp_head);
  for (size_t i = 0; i < q->events.ring_n; i++)
    jobq_event_free(q->events.ring[(q->events.ring_head + i) % q->events.ring_cap]);
  free(q->events.ring);
  jobq__exts_free(q);
  jobq__log_free(q);
  jobq__cron_free(q);
  jobq__stats_free(q);
  jobq__wh_opts_clear(&q->wh_cfg);
  jobq__addr_allow_free(q->wh_allow);
  free(q->o.storage_url);
  free(q->o.workdir);
  jobq__poll_free(q);
  uv_cond_destroy(&q->claim.work_cv);
  uv_cond_destroy(&q->idle_cv);
  uv_cond_destroy(&q->events.cv);
  uv_cond_destroy(&q->events.sub_cv);
  uv_cond_destroy(&q->events.hold_cv);
  uv_mutex_unlock(&q->mu);
  uv_mutex_destroy(&q->mu);
  uv_mutex_destroy(&q->stats.flush_mu);
  free(q);
}

void jobq__unlock(jobq_t *q) {
  if (q->refs == 0) free_q(q); /* unlocks */
  else uv_mutex_unlock(&q->mu);
}

void jobq__q_unref(jobq_t *q) {
  q->refs--;
  jobq__unlock(q);
}

/* Timer: the earliest due time known, or stopped. mu held, on the loop. */
static void on_timer(uv_timer_t *t);

static void arm_timer(jobq_t *q) {
  int64_t at = q->loop_s.wake_at;
  int64_t t2 = jobq__tmo_next(q);
  if (t2 < at) at = t2;
  if (at == q->loop_s.timer_at) return;
  q->loop_s.timer_at = at;
  if (at == INT64_MAX) {
    uv_timer_stop(&q->loop_s.timer);
    return;
  }
  int64_t d = at - jobq__now(q);
  if (d < 0) d = 0;
  uv_timer_start(&q->loop_s.timer, on_timer, (uint64_t)d, 0);
}

static void on_timer(uv_timer_t *t) {
  jobq_t *q = t->data;
  uv_mutex_lock(&q->mu);
  int64_t now = jobq__now(q);
  q->loop_s.timer_at = INT64_MAX;
  if (q->loop_s.wake_at <= now) {
    q->loop_s.wake_at = INT64_MAX;
    jobq__wake_claimers(q);
  }
  jobq__expire_timeouts(q, now);
  if (q->loop_s.handles_open) arm_timer(q);
  uv_mutex_unlock(&q->mu);
}

/* libuv runs close callbacks in no promised order: the last of the three
 * drops the handles' reference. */
static void on_handle_closed(uv_handle_t *h) { jobq__ext_closed(h->data); }

void jobq__ext_closed(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  if (--q->loop_s.handles_closing > 0) {
    uv_mutex_unlock(&q->mu);
    return;
  }
  jobq__q_unref(q);
}

static void close_handles(jobq_t *q) {
  q->loop_s.handles_open = 0;
  q->loop_s.handles_closing = 3 + q->loop_s.n_exts; /* each extension counts as one */
  uv_mutex_unlock(&q->mu);
  jobq__exts_close_on_loop(q); /* they finish their runs and close their handles */
  uv_mutex_lock(&q->mu);
  uv_close((uv_handle_t *)&q->loop_s.timer, on_handle_closed);
  uv_close((uv_handle_t *)&q->maint.timer, on_handle_closed);
  uv_close((uv_handle_t *)&q->loop_s.async, on_handle_closed);
}

static void on_async(uv_async_t *a) {
  jobq_t *q = a->data;
  jobq__dispatch_events(q);
  jobq__log_dispatch(q);
  jobq__run_loop_inbox(q);
  jobq__wh_on_loop(q);
  uv_mutex_lock(&q->mu);
  if (q->closed == 2 && q->loop_s.handles_open) {
    /* jobq_close has finished everything else (nothing can emit now): deliver
     * what came while we were busy, then close. */
    while (q->events.disp_head) {
      uv_mutex_unlock(&q->mu);
      jobq__dispatch_events(q);
      uv_mutex_lock(&q->mu);
    }
    uv_mutex_unlock(&q->mu);
    jobq__log_dispatch(q);
    uv_mutex_lock(&q->mu);
    close_handles(q);
    uv_mutex_unlock(&q->mu);
    return;
  }
  if (q->loop_s.handles_open) arm_timer(q);
  uv_mutex_unlock(&q->mu);
}

static void loop_main(void *arg) {
  jobq_t *q = arg;
  uv_run(q->loop_s.loop, UV_RUN_DEFAULT);
}

int jobq__inherited_err(const char *fn) {
  return jobq__err(JOBQ_ENOTSUP,
                   "%s: this queue was opened by the parent process before fork(); its threads "
                   "do not exist in this process, so it cannot be used here (jobq_open a new "
                   "queue instead; jobq_close on it does nothing)",
                   fn);
}

JOBQ_API int jobq_open(jobq_t **out, const jobq_options_t *opts) {
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_open: out is NULL");
  jobq_options_t defaults;
  if (opts == NULL) {
    memset(&defaults, 0, sizeof defaults);
    jobq__options_defaults(&defaults);
    opts = &defaults;
  }
  jobq__fork_init();
  const char *url = opts->storage_url ? opts->storage_url : "memory:";
  const jobq_storage_ops *ops;
  int rc = jobq__storage_lookup(url, &ops);
  if (rc) return rc;

  if (opts->n_quotas && (ops->version < 3 || ops->set_quotas == NULL)) {
    return jobq__err(JOBQ_ENOTSUP, "jobq_open: the %s backend cannot enforce owner quotas",
                     ops->scheme);
  }
  if (opts->wh.n && !jobq__wh_backend_ok(ops)) {
    return jobq__err(JOBQ_ENOTSUP, "jobq_open: the %s backend keeps no webhook outbox",
                     ops->scheme);
  }
  jobq_t *q = calloc(1, sizeof *q);
  if (q == NULL) return jobq__err(JOBQ_ENOMEM, "jobq_open: out of memory");
  q->o = *opts;
  memset(&q->o.wh, 0, sizeof q->o.wh); /* the queue's own copy is wh_cfg */
  q->ops_outbox = jobq__wh_backend_ok(ops);
  if (jobq__wh_opts_copy(&q->wh_cfg, &opts->wh) != 0 ||
      (opts->wh.allow && jobq__addr_allow_parse(opts->wh.allow, &q->wh_allow) != 0)) {
    jobq__wh_opts_clear(&q->wh_cfg);
    free(q);
    return jobq__err(JOBQ_ENOMEM, "jobq_open: out of memory");
  }
  q->o.quotas = NULL; /* storage keeps its own copy (below) */
  q->o.n_quotas = 0;
  q->o.storage_url = jobq__strdup(url);
  q->o.workdir = opts->workdir ? jobq__absolute_path(opts->workdir) : jobq__default_workdir(url);
  if (q->o.storage_url == NULL || q->o.workdir == NULL) {
    free(q->o.storage_url);
    free(q->o.workdir);
    jobq__wh_opts_clear(&q->wh_cfg);
    jobq__addr_allow_free(q->wh_allow);
    free(q);
    return jobq__err(JOBQ_ENOMEM, "jobq_open: out of memory");
  }
  q->ops = ops;
  q->fork_gen = jobq__fork_gen();
  q->loop_s.wake_at = INT64_MAX;
  q->loop_s.timer_at = INT64_MAX;
  q->refs = 1;
  jobq__tmo_init(q);
  q->poll.rd = q->poll.wr = -1;
  if (jobq__mutex_init(&q->mu) || uv_cond_init(&q->claim.work_cv) || uv_cond_init(&q->idle_cv) ||
      uv_cond_init(&q->events.cv) || uv_cond_init(&q->events.sub_cv) ||
      uv_cond_init(&q->events.hold_cv) || uv_mutex_init(&q->stats.flush_mu)) {
    free(q->o.storage_url);
    free(q->o.workdir);
    jobq__wh_opts_clear(&q->wh_cfg);
    jobq__addr_allow_free(q->wh_allow);
    free(q);
    return jobq__err(JOBQ_ENOMEM, "jobq_open: cannot create locks");
  }
  if (opts->event_buffer_set || opts->shared_events) {
    q->events.pull_on = 1;
    q->events.flag = 1;
  }

  jobq__set_detail("");
  rc = ops->open(url, &q->st);
  if (rc) {
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "jobq_open: storage '%.100s' failed to open", url);
    goto fail;
  }
  if (opts->n_quotas &&
      (rc = ops->set_quotas(q->st, opts->quotas, (size_t)opts->n_quotas)) != 0) {
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
    jobq__err_prefix(rc, NULL, "jobq_open: owner quotas: ");
    goto fail_st;
  }
  /* This process's batches that end: news from storage (core/batch.c). */
  if (ops->version >= 3 && ops->set_batch_sink &&
      (rc = ops->set_batch_sink(q->st, jobq__batch_sink, q)) != 0) {
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
    jobq__err_prefix(rc, NULL, "jobq_open: batches: ");
    goto fail_st;
  }
  /* Other processes' events from now on, into the pull buffer (on above). */
  if (opts->shared_events && (rc = jobq__events_share(q)) != 0) goto fail_st;

  if (opts->loop) {
    q->loop_s.loop = opts->loop;
    q->loop_s.tid = uv_thread_self();
  } else {
    if (uv_loop_init(&q->loop_s.own_loop) != 0) {
      rc = jobq__err(JOBQ_ENOMEM, "jobq_open: cannot create an event loop");
      goto fail_st;
    }
    q->loop_s.loop = &q->loop_s.own_loop;
    q->loop_s.own = 1;
  }
  if (uv_async_init(q->loop_s.loop, &q->loop_s.async, on_async) != 0) {
    rc = jobq__err(JOBQ_ENOMEM, "jobq_open: cannot create an async handle");
    goto fail_loop;
  }
  uv_timer_init(q->loop_s.loop, &q->loop_s.timer);
  uv_timer_init(q->loop_s.loop, &q->maint.timer);
  q->loop_s.async.data = q;
  q->loop_s.timer.data = q;
  q->maint.timer.data = q;
  q->loop_s.handles_open = 1;
  q->refs++; /* held by the handles until they are closed */
  if (jobq__maint_start(q) != 0) {
    /* Undo the handles; nothing else has started. */
    q->refs--;
    q->loop_s.handles_open = 0;
    uv_close((uv_handle_t *)&q->loop_s.async, NULL);
    uv_close((uv_handle_t *)&q->loop_s.timer, NULL);
    uv_close((uv_handle_t *)&q->maint.timer, NULL);
    if (q->loop_s.own) uv_run(q->loop_s.loop, UV_RUN_DEFAULT);
    rc = jobq__err(JOBQ_ENOMEM, "jobq_open: cannot start the maintenance thread");
    goto fail_loop;
  }
  /* The webhook sender, when this process knows endpoints to send for. */
  if ((rc = jobq__wh_open(q)) != 0) {
    jobq__wh_stop(q, 0);
    jobq__exts_free(q);
    jobq__maint_stop(q);
    uv_cond_destroy(&q->maint.cv);
    uv_cond_destroy(&q->maint.flush_cv);
    q->refs--;
    q->loop_s.handles_open = 0;
    uv_close((uv_handle_t *)&q->loop_s.async, NULL);
    uv_close((uv_handle_t *)&q->loop_s.timer, NULL);
    uv_close((uv_handle_t *)&q->maint.timer, NULL);
    if (q->loop_s.own) uv_run(q->loop_s.loop, UV_RUN_DEFAULT);
    goto fail_loop;
  }
  if (ops->set_notify) ops->set_notify(q->st, jobq__maint_on_notify, q);
  if (q->loop_s.own) {
    if (uv_thread_create(&q->loop_s.thread, loop_main, q) != 0) {
      if (ops->set_notify) ops->set_notify(q->st, NULL, NULL);
      jobq__wh_stop(q, 0);
      jobq__exts_free(q);
      jobq__maint_stop(q);
      uv_cond_destroy(&q->maint.cv);
      uv_cond_destroy(&q->maint.flush_cv);
      q->refs--;
      q->loop_s.handles_open = 0;
      uv_close((uv_handle_t *)&q->loop_s.async, NULL);
      uv_close((uv_handle_t *)&q->loop_s.timer, NULL);
      uv_close((uv_handle_t *)&q->maint.timer, NULL);
      uv_run(q->loop_s.loop, UV_RUN_DEFAULT);
      rc = jobq__err(JOBQ_ENOMEM, "jobq_open: cannot start the loop thread");
      goto fail_loop;
    }
    q->loop_s.tid = q->loop_s.thread;
  }
  *out = q;
  return 0;

fail_loop:
  if (q->loop_s.own) uv_loop_close(&q->loop_s.own_loop);
fail_st:
  ops->close(q->st);
fail:
  jobq__wh_opts_clear(&q->wh_cfg);
  jobq__addr_allow_free(q->wh_allow);
  free(q->o.storage_url);
  free(q->o.workdir);
  uv_cond_destroy(&q->events.sub_cv);
  uv_cond_destroy(&q->events.hold_cv);
  uv_cond_destroy(&q->claim.work_cv);
  uv_cond_destroy(&q->idle_cv);
  uv_cond_destroy(&q->events.cv);
  uv_mutex_destroy(&q->mu);
  uv_mutex_destroy(&q->stats.flush_mu);
  free(q);
  return rc;
}

JOBQ_API int jobq_register(jobq_t *q, const char *kind, jobq_handler_fn fn, void *ud,
                           const jobq_kind_opts_t *ko) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_register: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_register");
  int rc = jobq__kind_name_check("jobq_register", kind);
  if (rc) return rc;
  if (fn == NULL) return jobq__err(JOBQ_EINVAL, "jobq_register: handler for '%s' is NULL", kind);
  if (ko && ko->rate_starts > 0 && (q->ops->version < 3 || q->ops->rate_window == NULL))
    return jobq__err(JOBQ_ENOTSUP,
                     "jobq_register: '%s': storage '%s' has no shared rate limits (its vtable "
                     "has no rate_window)",
                     kind, q->ops->scheme);
  if ((rc = jobq__retention_check(q, kind, ko)) != 0) return rc;
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "jobq_register: the queue is closing");
  }
  if (q->started) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ESTATE, "jobq_register: '%s': register kinds before jobq_start", kind);
  }
  for (int i = 0; i < q->kinds.n; i++) {
    if (strcmp(q->kinds.v[i].name, kind) == 0) {
      uv_mutex_unlock(&q->mu);
      return jobq__err(JOBQ_EEXIST, "jobq_register: kind '%s' is already registered", kind);
    }
  }
  kind_reg *nk = realloc(q->kinds.v, (size_t)(q->kinds.n + 1) * sizeof *nk);
  if (nk == NULL) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ENOMEM, "jobq_register: out of memory");
  }
  q->kinds.v = nk;
  const char **mk = realloc(q->kinds.ma_names, (size_t)(q->kinds.n + 1) * sizeof *mk);
  if (mk) q->kinds.ma_names = mk;
  int *mv = mk ? realloc(q->kinds.ma_values, (size_t)(q->kinds.n + 1) * sizeof *mv) : NULL;
  if (mv) q->kinds.ma_values = mv;
  jobq_storage_rate *rt = mv ? realloc(q->kinds.rates, (size_t)(q->kinds.n + 1) * sizeof *rt) : NULL;
  if (rt) q->kinds.rates = rt;
  if (mk == NULL || mv == NULL || rt == NULL) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ENOMEM, "jobq_register: out of memory");
  }
  kind_reg *k = &nk[q->kinds.n++];
  memset(k, 0, sizeof *k);
  strcpy(k->name, kind);
  k->fn = fn;
  k->ud = ud;
  if (ko) {
    k->ko = *ko;
  } else {
    jobq__kind_opts_defaults(&k->ko);
  }
  /* kinds moved (realloc): point the claim table at the new names */
  for (int i = 0; i < q->kinds.n; i++) {
    q->kinds.ma_names[i] = q->kinds.v[i].name;
    q->kinds.ma_values[i] = q->kinds.v[i].ko.max_attempts;
  }
  q->kinds.n_ma = q->kinds.n;
  q->kinds.n_rates = 0;
  for (int i = 0; i < q->kinds.n; i++) {
    if (q->kinds.v[i].ko.rate_starts <= 0) continue;
    jobq_storage_rate *r = &q->kinds.rates[q->kinds.n_rates++];
    r->kind = q->kinds.v[i].name;
    r->starts = q->kinds.v[i].ko.rate_starts;
    r->interval_ms = q->kinds.v[i].ko.rate_interval_ms;
  }
  uv_mutex_unlock(&q->mu);
  return 0;
}

JOBQ_API int jobq_start(jobq_t *q) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_start: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_start");
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "jobq_start: the queue is closing");
  }
  if (q->started) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ESTATE, "jobq_start: already started");
  }
  int nk = q->kinds.n ? q->kinds.n : 1;
  q->kinds.worker = calloc((size_t)nk, sizeof *q->kinds.worker);
  q->kinds.loop = calloc((size_t)nk, sizeof *q->kinds.loop);
  q->claim.threads = calloc((size_t)q->o.workers + 1, sizeof *q->claim.threads);
  if (!q->kinds.worker || !q->kinds.loop || !q->claim.threads) {
    free(q->kinds.worker);
    free(q->kinds.loop);
    free(q->claim.threads);
    q->kinds.worker = q->kinds.loop = NULL;
    q->claim.threads = NULL;
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ENOMEM, "jobq_start: out of memory");
  }
  for (int i = 0; i < q->kinds.n; i++) {
    if (q->kinds.v[i].ko.on_loop) q->kinds.loop[q->kinds.n_loop++] = q->kinds.v[i].name;
    else q->kinds.worker[q->kinds.n_worker++] = q->kinds.v[i].name;
  }
  q->started = 1;
  int want = q->kinds.n_worker ? q->o.workers : 0;
  for (int i = 0; i < want; i++) {
    if (uv_thread_create(&q->claim.threads[q->claim.n_threads], jobq__worker_main, q) != 0) break;
    q->claim.n_threads++;
  }
  if (q->kinds.n_loop &&
      uv_thread_create(&q->claim.threads[q->claim.n_threads], jobq__feeder_main, q) == 0)
    q->claim.n_threads++;
  int total = want + (q->kinds.n_loop ? 1 : 0);
  if (q->claim.n_threads == total) {
    uv_mutex_unlock(&q->mu);
    return 0;
  }
  /* Not all threads came up: stop those that did, so that a failed start
   * leaves the queue as it was (and jobq_start may be called again). */
  int got = q->claim.n_threads;
  q->stopping = 1;
  uv_cond_broadcast(&q->claim.work_cv);
  uv_mutex_unlock(&q->mu);
  for (int i = 0; i < got; i++) uv_thread_join(&q->claim.threads[i]);
  uv_mutex_lock(&q->mu);
  q->stopping = 0;
  q->started = 0;
  q->claim.n_threads = 0;
  q->kinds.n_worker = q->kinds.n_loop = 0;
  free(q->kinds.worker);
  free(q->kinds.loop);
  free(q->claim.threads);
  q->kinds.worker = q->kinds.loop = NULL;
  q->claim.threads = NULL;
  uv_mutex_unlock(&q->mu);
  return jobq__err(JOBQ_ENOMEM, "jobq_start: could start only %d of %d threads", got, total);
}

/* Everything jobq_close does but the last unref: q stays allocated (and
 * answers JOBQ_ECLOSED) until jobq_destroy. */
static int shutdown_q(jobq_t *q, int drain_ms, const char *fn) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  /* Inherited through fork(): the parent's threads, locks and files are not
   * this process's to stop or close. Its memory stays as it is. */
  if (jobq__inherited(q)) return 0;
  if (q->loop_s.own && jobq__on_loop_thread(q))
    return jobq__err(JOBQ_EDEADLK, "%s: called on the queue's own loop thread", fn);
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "%s: already closing", fn);
  }
  q->closed = 1;
  q->stopping = 1;
  jobq__poll_signal(q); /* pollers wake and learn JOBQ_ECLOSED */
  uv_cond_broadcast(&q->claim.work_cv);
  jobq__release_handoff(q); /* claimed ahead, never started: back at once */
  uv_cond_broadcast(&q->events.cv);
  jobq__notify_waiters(q, NULL);

  /* Drain: running attempts may finish until the deadline. */
  uint64_t deadline = uv_hrtime() + (uint64_t)(drain_ms < 0 ? 0 : drain_ms) * 1000000u;
  while (q->running.map.count > 0 || q->ops_in_flight > 0) {
    if (drain_ms < 0) {
      uv_cond_wait(&q->idle_cv, &q->mu);
      continue;
    }
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    if (uv_cond_timedwait(&q->idle_cv, &q->mu, deadline - now) != 0 && q->running.map.count > 0 &&
        uv_hrtime() >= deadline)
      break;
  }
  /* The rest go back to the queue for another worker or process. */
  jobq__release_all(q);

  /* Worker threads return once their handler has returned. */
  int n = q->claim.n_threads;
  q->claim.n_threads = 0;
  uv_mutex_unlock(&q->mu);
  for (int i = 0; i < n; i++) uv_thread_join(&q->claim.threads[i]);
  uv_mutex_lock(&q->mu);
  /* A claim that was under way when closing began may have added attempts
   * (for the loop, or a host's jobq_claim) after the release above. */
  while (q->claim.in_flight > 0) uv_cond_timedwait(&q->idle_cv, &q->mu, 1000000);
  jobq__release_all(q);
  /* Submits decrement ops_in_flight without the lock as their very last
   * touch of q, so they cannot signal: poll. Closing is rare. */
  while (q->ops_in_flight > 0) uv_cond_timedwait(&q->idle_cv, &q->mu, 1000000);
  q->storage_closing = 1;

  if (q->ops->set_notify) {
    uv_mutex_unlock(&q->mu);
    q->ops->set_notify(q->st, NULL, NULL); /* returns once no call is under way */
    uv_mutex_lock(&q->mu);
  }
  uv_mutex_unlock(&q->mu);
  /* Webhook tries in flight get what is left of the drain time to answer
   * (with drain_ms < 0, one request's timeout); the rest go back to the
   * outbox for the next process. */
  jobq__wh_stop(q, drain_ms < 0 ? uv_hrtime() + (uint64_t)q->wh_cfg.total_ms * 1000000u
                                : deadline);
  jobq__maint_stop(q); /* after the timeouts it had (ops_in_flight is 0) */
  /* The last counts, and this process no longer runs anything (ETA). */
  jobq__stats_flush(q, 1);
  /* Storage is closed without the core lock: backends call into the core
   * (notify) under their own locks, so never the other way round. Nothing
   * reaches storage any more: every path checks closed first and
   * ops_in_flight is 0. */
  q->ops->close(q->st);
  uv_mutex_lock(&q->mu);
  q->st = NULL;
  q->closed = 2;
  int own = q->loop_s.own;
  if (own) {
    /* The loop thread delivers the last events, closes the handles and
     * returns from uv_run. */
    uv_async_send(&q->loop_s.async);
    uv_mutex_unlock(&q->mu);
    uv_thread_join(&q->loop_s.thread);
    uv_loop_close(&q->loop_s.own_loop);
    uv_mutex_lock(&q->mu);
  } else {
    /* On the host's loop thread: the handles close when the host next runs
     * its loop; the last reference goes with them. Deliver what is queued
     * first. */
    uv_mutex_unlock(&q->mu);
    jobq__dispatch_events(q);
    jobq__log_dispatch(q);
    uv_mutex_lock(&q->mu);
    if (q->loop_s.handles_open) close_handles(q);
  }
  q->shut_down = 1;
  uv_cond_broadcast(&q->idle_cv); /* a jobq_destroy of another thread waits for this */
  uv_mutex_unlock(&q->mu);
  return 0;
}

JOBQ_API int jobq_shutdown(jobq_t *q, int drain_ms) {
  return shutdown_q(q, drain_ms, "jobq_shutdown");
}

JOBQ_API void jobq_destroy(jobq_t *q) {
  if (q == NULL || jobq__inherited(q)) return;
  uv_mutex_lock(&q->mu);
  int closed = q->closed;
  uv_mutex_unlock(&q->mu);
  /* On the queue's own loop thread (a handler, a subscriber) the shutdown
   * would wait for itself: refused there, and q is left alone. */
  if (!closed && shutdown_q(q, 0, "jobq_destroy") == JOBQ_EDEADLK) return;
  uv_mutex_lock(&q->mu);
  /* Another thread's jobq_shutdown may still be under way: it ends first. */
  while (!q->shut_down) uv_cond_wait(&q->idle_cv, &q->mu);
  jobq__q_unref(q); /* the caller's reference: q may be gone now */
}

JOBQ_API int jobq_close(jobq_t *q, int drain_ms) {
  int rc = shutdown_q(q, drain_ms, "jobq_close");
  if (rc != 0 || q == NULL || jobq__inherited(q)) return rc;
  uv_mutex_lock(&q->mu);
  jobq__q_unref(q); /* q may be gone now */
  return 0;
}
