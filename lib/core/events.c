/* Events: made under the core lock where a state changes, so each job's
 * events come in the order its changes happened; delivered to subscribers on
 * the loop thread and to jobq_next_event callers from a bounded buffer. An
 * event is only made when somebody listens. */
#include "core/internal.h"
#include "util/sbuf.h"

#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    NULL,     "submitted", "started",   "progress",      "retrying",
    "succeeded", "failed", "cancelled", "storage_error", "storage_ok", "batch_done",
    "webhook_failed"};

JOBQ_API const char *jobq_event_type_name(int type) {
  if (type < JOBQ_EVENT_SUBMITTED || type > JOBQ_EVENT_WEBHOOK_FAILED) return NULL;
  return type_names[type];
}

JOBQ_API int jobq_event_type_by_name(const char *name) {
  if (name == NULL) return jobq__err(JOBQ_EINVAL, "jobq_event_type_by_name: name is NULL");
  for (int t = JOBQ_EVENT_SUBMITTED; t <= JOBQ_EVENT_WEBHOOK_FAILED; t++)
    if (strcmp(name, type_names[t]) == 0) return t;
  return jobq__err(JOBQ_EINVAL, "jobq_event_type_by_name: '%.64s' is not an event type of this "
                                "version (submitted .. webhook_failed)",
                   name);
}

int jobq__events_on(jobq_t *q) { return q->events.n_subs > 0 || q->events.pull_on; }

static void events_flag_update(jobq_t *q) { atomic_store(&q->events.flag, jobq__events_on(q)); }

JOBQ_API void jobq_event_free(jobq_event_t *ev) {
  if (ev == NULL) return;
  free(ev->kind);
  free(ev->step);
  free(ev->error);
  free(ev->result);
  free(ev);
}

void jobq__event_free_list(jobq_event_t *ev) {
  while (ev) {
    jobq_event_t *n = ev->next;
    jobq_event_free(ev);
    ev = n;
  }
}

static jobq_event_t *make(int sink, int type, const char *id, const char *kind, int state,
                          int progress, const char *step, int attempt, const char *error,
                          const char *result, int64_t now) {
  jobq_event_t *ev = calloc(1, sizeof *ev);
  if (ev == NULL) return NULL;
  ev->sink = sink;
  ev->type = type;
  ev->state = state;
  ev->progress = progress;
  ev->attempt = attempt;
  ev->time = now;
  memcpy(ev->id, id, JOBQ_ID_SIZE);
  if ((kind && !(ev->kind = jobq__strdup(kind))) || (step && !(ev->step = jobq__strdup(step))) ||
      (error && !(ev->error = jobq__strdup(error))) ||
      (result && !(ev->result = jobq__strdup(result)))) {
    jobq_event_free(ev);
    return NULL;
  }
  return ev;
}

static void publish(jobq_t *q, jobq_event_t *ev) {
  if (ev->sink == 0) {
    ev->next = NULL;
    if (q->events.disp_tail) q->events.disp_tail->next = ev;
    else q->events.disp_head = ev;
    q->events.disp_tail = ev;
    jobq__kick_loop(q);
    return;
  }
  if (q->events.ring == NULL) {
    q->events.ring_cap = (size_t)q->o.event_buffer;
    q->events.ring = calloc(q->events.ring_cap, sizeof *q->events.ring);
    if (q->events.ring == NULL) {
      q->events.ring_cap = 0;
      q->events.ring_dropped++;
      jobq_event_free(ev);
      return;
    }
  }
  if (q->events.ring_n == q->events.ring_cap) {
    /* Full: the oldest goes; the reader learns how many it missed. */
    jobq_event_free(q->events.ring[q->events.ring_head]);
    q->events.ring_head = (q->events.ring_head + 1) % q->events.ring_cap;
    q->events.ring_n--;
    q->events.ring_dropped++;
  }
  q->events.ring[(q->events.ring_head + q->events.ring_n) % q->events.ring_cap] = ev;
  q->events.ring_n++;
  if (q->events.pull_waiters) uv_cond_signal(&q->events.cv);
  jobq__poll_signal(q);
}

static void emit_impl(jobq_t *q, int direct, int type, const char *id, const char *kind, int state,
                      int progress, const char *step, int attempt, const char *error,
                      const char *result) {
  if (!jobq__events_on(q)) return;
  int64_t now = jobq__now(q);
  held *h = !direct && q->events.holds.count ? jobq__map_get(&q->events.holds, id) : NULL;
  for (int sink = 0; sink < 2; sink++) {
    if (sink == 0 ? q->events.n_subs == 0 : !q->events.pull_on) continue;
    jobq_event_t *ev = make(sink, type, id, kind, state, progress, step, attempt, error, result, now);
    if (ev == NULL) {
      /* Out of memory: an event is news, not state; the job is unaffected.
       * Pull readers are told through the drop count. */
      if (sink == 1) q->events.ring_dropped++;
      continue;
    }
    if (h) {
      ev->next = NULL;
      if (h->tail) h->tail->next = ev;
      else h->head = ev;
      h->tail = ev;
    } else {
      publish(q, ev);
    }
  }
}

void jobq__emit(jobq_t *q, int type, const char *id, const char *kind, int state, int progress,
                const char *step, int attempt, const char *error, const char *result) {
  emit_impl(q, 0, type, id, kind, state, progress, step, attempt, error, result);
}

void jobq__emit_queue_event(jobq_t *q, int type, int code, const char *error) {
  if (!jobq__events_on(q)) return;
  int64_t now = jobq__now(q);
  for (int sink = 0; sink < 2; sink++) {
    if (sink == 0 ? q->events.n_subs == 0 : !q->events.pull_on) continue;
    jobq_event_t *ev = calloc(1, sizeof *ev);
    if (ev == NULL || (error && (ev->error = jobq__strdup(error)) == NULL)) {
      free(ev);
      if (sink == 1) q->events.ring_dropped++;
      continue;
    }
    ev->sink = sink;
    ev->type = type;
    ev->state = -1;
    ev->code = code;
    ev->time = now;
    publish(q, ev);
  }
}

void jobq__emit_now(jobq_t *q, int type, const char *id, const char *kind, int state, int progress,
                    const char *step, int attempt, const char *error, const char *result) {
  emit_impl(q, 1, type, id, kind, state, progress, step, attempt, error, result);
}

/* A hold orders a job's events when a change to it is applied by storage
 * outside the core lock: the thread that holds the job publishes its own
 * event first (jobq__emit_now), then what others emitted meanwhile for that
 * job (a claim that saw the retried job queued again, a cancel that saw it
 * queued), in that order. One hold per job at a time: a second operation
 * on the same job waits here for the first to publish. */
int jobq__hold_begin(jobq_t *q, const char *id) {
  while (q->events.holds.count && jobq__map_get(&q->events.holds, id)) {
    q->events.hold_waiters++;
    uv_cond_wait(&q->events.hold_cv, &q->mu);
    q->events.hold_waiters--;
  }
  held *h = calloc(1, sizeof *h);
  if (h == NULL) return JOBQ_ENOMEM;
  memcpy(h->id, id, JOBQ_ID_SIZE);
  if (jobq__map_put(&q->events.holds, h->id, h) != 0) {
    free(h);
    return JOBQ_ENOMEM;
  }
  return 0;
}

void jobq__hold_end(jobq_t *q, const char *id, int publish_submitted, const char *kind) {
  held *h = jobq__map_del(&q->events.holds, id);
  if (publish_submitted)
    jobq__emit_now(q, JOBQ_EVENT_SUBMITTED, id, kind, JOBQ_QUEUED, 0, NULL, 0, NULL, NULL);
  if (h == NULL) return;
  for (jobq_event_t *ev = h->head, *n; ev; ev = n) {
    n = ev->next;
    publish(q, ev);
  }
  free(h);
  if (q->events.hold_waiters) uv_cond_broadcast(&q->events.hold_cv);
}

static int subscribed(jobq_t *q, jobq_event_fn fn, void *ud) {
  for (int i = 0; i < q->events.n_subs; i++)
    if (q->events.subs[i].fn == fn && q->events.subs[i].ud == ud) return 1;
  return 0;
}

/* Delivers the queued events on the loop thread. Each call re-checks that
 * its subscriber is still subscribed, under the lock, and jobq_unsubscribe
 * waits for a call under way: once it returns, that subscriber is never
 * called again. */
void jobq__dispatch_events(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  jobq_event_t *ev = q->events.disp_head;
  q->events.disp_head = q->events.disp_tail = NULL;
  sub small[8], *subs = small;
  int cap = 8;
  while (ev) {
    jobq_event_t *next = ev->next;
    ev->next = NULL;
    int n = q->events.n_subs;
    if (n > cap) {
      sub *ns = malloc((size_t)n * sizeof *ns);
      if (ns) {
        if (subs != small) free(subs);
        subs = ns;
        cap = n;
      } else {
        n = cap; /* out of memory: the first ones still hear of it */
      }
    }
    memcpy(subs, q->events.subs, (size_t)n * sizeof *subs);
    for (int i = 0; i < n; i++) {
      if (!subscribed(q, subs[i].fn, subs[i].ud)) continue;
      q->events.in_callback = 1;
      uv_mutex_unlock(&q->mu);
      subs[i].fn(ev, subs[i].ud);
      uv_mutex_lock(&q->mu);
      q->events.in_callback = 0;
      uv_cond_broadcast(&q->events.sub_cv);
    }
    jobq_event_free(ev);
    ev = next;
  }
  uv_mutex_unlock(&q->mu);
  if (subs != small) free(subs);
}

/* An event another process caused (storage's event sink; any thread). */
static void remote_event(void *ud, const jobq_storage_event *ev) {
  jobq_t *q = ud;
  uv_mutex_lock(&q->mu);
  if (!q->closed)
    jobq__emit(q, ev->type, ev->id, ev->kind, ev->state, ev->progress, ev->step, ev->attempt,
               ev->error, ev->result);
  uv_mutex_unlock(&q->mu);
}

int jobq__events_share(jobq_t *q) {
  if (q->ops->set_event_sink == NULL)
    return jobq__err(JOBQ_ENOTSUP,
                     "jobq_open: shared events: the %s backend does not pass on other "
                     "processes' events",
                     q->ops->scheme);
  jobq__set_detail("");
  int rc = q->ops->set_event_sink(q->st, remote_event, q);
  if (rc) {
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
    return jobq__err_prefix(rc, NULL, "jobq_open: shared events: ");
  }
  q->events.sink_on = 1;
  return 0;
}

/* The first listener of this process asks storage for other processes'
 * events too. mu held on entry and exit (released around the call). */
static void want_remote_events(jobq_t *q) {
  if (q->events.sink_on || q->ops->set_event_sink == NULL || q->closed) return;
  q->events.sink_on = 1;
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  int rc = q->ops->set_event_sink(q->st, remote_event, q);
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  if (rc != 0) q->events.sink_on = 0; /* local events still flow; a later listener tries again */
}

JOBQ_API int jobq_subscribe(jobq_t *q, jobq_event_fn fn, void *ud) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_subscribe: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_subscribe");
  if (fn == NULL) return jobq__err(JOBQ_EINVAL, "jobq_subscribe: fn is NULL");
  uv_mutex_lock(&q->mu);
  int rc = 0;
  for (int i = 0; i < q->events.n_subs; i++)
    if (q->events.subs[i].fn == fn && q->events.subs[i].ud == ud)
      rc = jobq__err(JOBQ_EEXIST, "jobq_subscribe: this (fn, ud) is already subscribed");
  if (rc == 0 && q->closed) rc = jobq__err(JOBQ_ECLOSED, "jobq_subscribe: the queue is closing");
  if (rc == 0) {
    sub *ns = realloc(q->events.subs, (size_t)(q->events.n_subs + 1) * sizeof *ns);
    if (ns == NULL) {
      rc = jobq__err(JOBQ_ENOMEM, "jobq_subscribe: out of memory");
    } else {
      q->events.subs = ns;
      ns[q->events.n_subs].fn = fn;
      ns[q->events.n_subs].ud = ud;
      q->events.n_subs++;
      events_flag_update(q);
      want_remote_events(q);
    }
  }
  uv_mutex_unlock(&q->mu);
  return rc;
}

JOBQ_API int jobq_unsubscribe(jobq_t *q, jobq_event_fn fn, void *ud) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_unsubscribe: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_unsubscribe");
  if (fn == NULL) return jobq__err(JOBQ_EINVAL, "jobq_unsubscribe: fn is NULL");
  uv_mutex_lock(&q->mu);
  int rc = jobq__err(JOBQ_ENOTFOUND, "jobq_unsubscribe: this (fn, ud) is not subscribed");
  for (int i = 0; i < q->events.n_subs; i++) {
    if (q->events.subs[i].fn == fn && q->events.subs[i].ud == ud) {
      q->events.subs[i] = q->events.subs[--q->events.n_subs];
      events_flag_update(q);
      rc = 0;
      break;
    }
  }
  /* From another thread, wait out a call under way (it may be this one's). */
  while (rc == 0 && q->events.in_callback && !jobq__on_loop_thread(q))
    uv_cond_wait(&q->events.sub_cv, &q->mu);
  if (rc == 0) jobq__set_detail("");
  uv_mutex_unlock(&q->mu);
  return rc;
}

JOBQ_API int jobq_next_event(jobq_t *q, int timeout_ms, jobq_event_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_next_event: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_next_event");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_next_event: out is NULL");
  if (timeout_ms != 0 && jobq__on_loop_thread(q))
    return jobq__err(JOBQ_EDEADLK, "jobq_next_event: a blocking wait on the loop thread");
  uv_mutex_lock(&q->mu);
  q->events.pull_on = 1;
  events_flag_update(q);
  q->refs++;
  want_remote_events(q);
  uint64_t deadline = uv_hrtime() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  int rc = 0;
  while (q->events.ring_n == 0) {
    if (q->closed) {
      rc = jobq__err(JOBQ_ECLOSED, "jobq_next_event: the queue is closing");
      break;
    }
    uint64_t now = uv_hrtime();
    if (timeout_ms == 0 || (timeout_ms > 0 && now >= deadline)) {
      rc = jobq__err(JOBQ_ETIMEDOUT, "jobq_next_event: no event within %d ms", timeout_ms);
      break;
    }
    q->events.pull_waiters++;
    if (timeout_ms < 0) uv_cond_wait(&q->events.cv, &q->mu);
    else uv_cond_timedwait(&q->events.cv, &q->mu, deadline - now);
    q->events.pull_waiters--;
  }
  if (rc == 0) {
    jobq_event_t *ev = q->events.ring[q->events.ring_head];
    q->events.ring_head = (q->events.ring_head + 1) % q->events.ring_cap;
    q->events.ring_n--;
    ev->dropped = q->events.ring_dropped;
    q->events.ring_dropped = 0;
    ev->next = NULL;
    *out = ev;
  }
  jobq__q_unref(q);
  return rc;
}

void jobq__notify_waiters(jobq_t *q, const char *id) {
  if (q->waiters.count == 0) return;
  if (id) {
    for (waiter *w = jobq__map_get(&q->waiters, id); w; w = w->next) {
      w->changed = 1;
      uv_cond_signal(&w->cv);
    }
    return;
  }
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&q->waiters, &cur));) {
    for (waiter *w = e->val; w; w = w->next) {
      w->changed = 1;
      uv_cond_signal(&w->cv);
    }
  }
}

/* ---- accessors ---- */

JOBQ_API int jobq_event_type(const jobq_event_t *ev) { return ev ? ev->type : JOBQ_EINVAL; }
JOBQ_API const char *jobq_event_job_id(const jobq_event_t *ev) { return ev ? ev->id : NULL; }
JOBQ_API const char *jobq_event_kind(const jobq_event_t *ev) { return ev ? ev->kind : NULL; }
JOBQ_API int jobq_event_state(const jobq_event_t *ev) { return ev ? ev->state : JOBQ_EINVAL; }
JOBQ_API int jobq_event_progress(const jobq_event_t *ev) { return ev ? ev->progress : JOBQ_EINVAL; }
/* A BATCH_DONE event carries its batch id where job events carry their
 * step (storage passes it on that way too: jobq_storage_event is frozen),
 * and a WEBHOOK_FAILED event its delivery id. */
JOBQ_API const char *jobq_event_step(const jobq_event_t *ev) {
  return ev && ev->type != JOBQ_EVENT_BATCH_DONE && ev->type != JOBQ_EVENT_WEBHOOK_FAILED
             ? ev->step
             : NULL;
}
JOBQ_API const char *jobq_event_delivery_id(const jobq_event_t *ev) {
  return ev && ev->type == JOBQ_EVENT_WEBHOOK_FAILED ? ev->step : NULL;
}
JOBQ_API const char *jobq_event_batch_id(const jobq_event_t *ev) {
  return ev && ev->type == JOBQ_EVENT_BATCH_DONE ? ev->step : NULL;
}
JOBQ_API int jobq_event_attempt(const jobq_event_t *ev) { return ev ? ev->attempt : JOBQ_EINVAL; }
JOBQ_API const char *jobq_event_error(const jobq_event_t *ev) { return ev ? ev->error : NULL; }
JOBQ_API const char *jobq_event_result(const jobq_event_t *ev) { return ev ? ev->result : NULL; }
JOBQ_API int64_t jobq_event_time(const jobq_event_t *ev) { return ev ? ev->time : JOBQ_EINVAL; }
JOBQ_API int64_t jobq_event_dropped(const jobq_event_t *ev) { return ev ? ev->dropped : 0; }
JOBQ_API int jobq_event_code(const jobq_event_t *ev) { return ev ? ev->code : JOBQ_EINVAL; }

JOBQ_API char *jobq_event_to_json(const jobq_event_t *ev) {
  if (ev == NULL) {
    jobq__err(JOBQ_EINVAL, "jobq_event_to_json: ev is NULL");
    return NULL;
  }
  jobq_sbuf b = {0};
  int first = 1;
  jobq__sb_str(&b, "{");
  jobq__sb_key(&b, "type", &first);
  jobq__sb_json_str(&b, jobq_event_type_name(ev->type) ? jobq_event_type_name(ev->type) : "unknown");
  if (ev->type == JOBQ_EVENT_BATCH_DONE) {
    jobq__sb_key(&b, "batchId", &first);
    jobq__sb_json_str(&b, ev->step ? ev->step : "");
    jobq__sb_key(&b, "jobId", &first);
    jobq__sb_json_str(&b, ev->id);
    if (ev->result) {
      jobq__sb_key(&b, "result", &first);
      jobq__sb_str(&b, ev->result);
    }
    goto tail;
  }
  if (ev->type == JOBQ_EVENT_WEBHOOK_FAILED) {
    jobq__sb_key(&b, "deliveryId", &first);
    jobq__sb_json_str(&b, ev->step ? ev->step : "");
    jobq__sb_key(&b, "jobId", &first);
    jobq__sb_json_str(&b, ev->id);
    if (ev->kind) {
      jobq__sb_key(&b, "kind", &first);
      jobq__sb_json_str(&b, ev->kind);
    }
    jobq__sb_key(&b, "attempts", &first);
    jobq__sb_int(&b, ev->attempt);
    if (ev->error) {
      jobq__sb_key(&b, "error", &first);
      jobq__sb_json_str(&b, ev->error);
    }
    goto tail;
  }
  if (ev->id[0] == '\0') { /* about the queue: no job's fields */
    jobq__sb_key(&b, "code", &first);
    jobq__sb_json_str(&b, ev->code ? jobq_err_name(ev->code) : "JOBQ_OK");
    if (ev->error) {
      jobq__sb_key(&b, "error", &first);
      jobq__sb_json_str(&b, ev->error);
    }
    goto tail;
  }
  jobq__sb_key(&b, "jobId", &first);
  jobq__sb_json_str(&b, ev->id);
  if (ev->kind) {
    jobq__sb_key(&b, "kind", &first);
    jobq__sb_json_str(&b, ev->kind);
  }
  jobq__sb_key(&b, "state", &first);
  jobq__sb_json_str(&b, jobq_state_name(ev->state) ? jobq_state_name(ev->state) : "unknown");
  jobq__sb_key(&b, "progress", &first);
  jobq__sb_int(&b, ev->progress);
  if (ev->step) {
    jobq__sb_key(&b, "step", &first);
    jobq__sb_json_str(&b, ev->step);
  }
  jobq__sb_key(&b, "attempt", &first);
  jobq__sb_int(&b, ev->attempt);
  if (ev->error) {
    jobq__sb_key(&b, "error", &first);
    jobq__sb_json_str(&b, ev->error);
  }
  if (ev->result) { /* checked JSON: as it is */
    jobq__sb_key(&b, "result", &first);
    jobq__sb_str(&b, ev->result);
  }
tail:
  jobq__sb_key(&b, "time", &first);
  jobq__sb_int(&b, ev->time);
  if (ev->dropped) {
    jobq__sb_key(&b, "dropped", &first);
    jobq__sb_int(&b, ev->dropped);
  }
  jobq__sb_str(&b, "}");
  char *s = jobq__sb_take(&b);
  if (s == NULL) jobq__err(JOBQ_ENOMEM, "jobq_event_to_json: out of memory");
  return s;
}
