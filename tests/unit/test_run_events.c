/* Events: subscribers (on the loop thread) and the jobq_next_event pull
 * buffer; their order per job, drops, JSON, and what the loop thread may not
 * do. */
#include "testutil_run.h"

#include "core/internal.h" /* q->events.holds, to check what a submit leaves behind */

#include <jansson.h>

#define T0 INT64_C(1700000000000)

static int payload_index(const char *payload) {
  const char *p = strstr(payload, "\"i\":");
  return p ? atoi(p + 4) : -1;
}

/* Indices of id's events in the log, in order. */
static int events_of(tr_log *l, const char *id, int *idx, int cap) {
  int n = 0;
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].id, id) == 0 && n < cap) idx[n++] = (int)i;
  return n;
}

/* ---- ordered sequences with workers ---- */

static void progress_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  int i = payload_index(jobq_ctx_payload(ctx));
  jobq_ctx_progress(ctx, 25, "s25");
  jobq_ctx_progress(ctx, 50, "s50");
  jobq_ctx_progress(ctx, 75, "s75");
  char res[32];
  snprintf(res, sizeof res, "{\"n\":%d}", i);
  jobq_ctx_succeed(ctx, res);
}

static void check_progress_sequence(tr_log *l, const char *id, int i) {
  int idx[16];
  int n = events_of(l, id, idx, 16);
  char types[256];
  tr_log_types(l, id, types, sizeof types);
  if (n != 6) fail_msg("job %d: %d events: %s", i, n, types);
  assert_string_equal(types, "submitted started progress progress progress succeeded");
  const tr_ev *e = &l->v[idx[0]];
  assert_int_equal(e->state, JOBQ_QUEUED);
  assert_int_equal(e->attempt, 0);
  assert_int_equal(e->has_kind, 1);
  e = &l->v[idx[1]];
  assert_int_equal(e->state, JOBQ_RUNNING);
  assert_int_equal(e->attempt, 1);
  assert_int_equal(e->progress, 0);
  static const int pct[] = {25, 50, 75};
  static const char *const steps[] = {"s25", "s50", "s75"};
  for (int k = 0; k < 3; k++) {
    e = &l->v[idx[2 + k]];
    assert_int_equal(e->state, JOBQ_RUNNING);
    assert_int_equal(e->progress, pct[k]);
    assert_string_equal(e->step, steps[k]);
    assert_int_equal(e->attempt, 1);
  }
  e = &l->v[idx[5]];
  assert_int_equal(e->state, JOBQ_SUCCEEDED);
  assert_int_equal(e->progress, 100);
  assert_int_equal(e->attempt, 1);
  char res[32];
  snprintf(res, sizeof res, "{\"n\":%d}", i);
  assert_string_equal(e->result, res);
  assert_string_equal(e->error, "");
}

static void test_subscriber_sees_each_job_in_order(void **state) {
  (void)state;
  enum { N = 50 };
  tr_log log;
  tr_log_init(&log);
  tr_open_args a = {.workers = 3};
  jobq_t *q = tr_open(&a);
  tr_register(q, "p", progress_handler, NULL, NULL);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &log), 0);
  assert_int_equal(jobq_start(q), 0);
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) {
    char payload[32];
    snprintf(payload, sizeof payload, "{\"i\":%d}", i);
    tr_submit(q, "p", payload, NULL, ids[i]);
  }
  assert_true(tr_log_wait_terminal(&log, N, TR_GUARD_MS));
  assert_int_equal(jobq_close(q, 1000), 0);
  /* After close nothing more comes; check everything now. */
  assert_int_equal((int)log.n, N * 6);
  for (int i = 0; i < N; i++) check_progress_sequence(&log, ids[i], i);
  for (size_t k = 0; k < log.n; k++) {
    assert_true(pthread_equal(log.v[k].thread, log.v[0].thread));
    assert_false(pthread_equal(log.v[k].thread, pthread_self()));
  }
  tr_log_free(&log);
}

/* The pull twin delivers the same per-job sequences as a subscriber. */
static void test_pull_matches_subscriber(void **state) {
  (void)state;
  enum { N = 20 };
  tr_log sub, pull;
  tr_log_init(&sub);
  tr_log_init(&pull);
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "p", progress_handler, NULL, NULL);
  jobq_event_t *ev = (jobq_event_t *)(uintptr_t)1;
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT); /* empty; buffering starts */
  assert_ptr_equal(ev, (jobq_event_t *)(uintptr_t)1);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &sub), 0);
  assert_int_equal(jobq_start(q), 0);
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) {
    char payload[32];
    snprintf(payload, sizeof payload, "{\"i\":%d}", i);
    tr_submit(q, "p", payload, NULL, ids[i]);
  }
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (pull.terminal < N && tr_mono_ms() < end) {
    ev = NULL;
    int rc = jobq_next_event(q, 200, &ev);
    if (rc == JOBQ_ETIMEDOUT) continue;
    assert_int_equal(rc, 0);
    assert_int_equal(jobq_event_dropped(ev), 0);
    tr_log_add(&pull, ev);
    jobq_event_free(ev);
  }
  assert_int_equal(pull.terminal, N);
  assert_true(tr_log_wait_terminal(&sub, N, TR_GUARD_MS));
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT); /* nothing extra */
  assert_int_equal(jobq_close(q, 1000), 0);
  assert_int_equal((int)pull.n, N * 6);
  for (int i = 0; i < N; i++) {
    check_progress_sequence(&pull, ids[i], i);
    int a1[16], a2[16];
    int n1 = events_of(&sub, ids[i], a1, 16), n2 = events_of(&pull, ids[i], a2, 16);
    assert_int_equal(n1, n2);
    for (int k = 0; k < n1; k++) {
      assert_int_equal(sub.v[a1[k]].type, pull.v[a2[k]].type);
      assert_int_equal(sub.v[a1[k]].progress, pull.v[a2[k]].progress);
      assert_int_equal(sub.v[a1[k]].attempt, pull.v[a2[k]].attempt);
      assert_int_equal(sub.v[a1[k]].state, pull.v[a2[k]].state);
    }
  }
  tr_log_free(&sub);
  tr_log_free(&pull);
}

/* ---- retrying, failed and cancelled events (claim-driven, pulled) ---- */

typedef struct efx {
  tr_clock clock;
  jobq_t *q;
  tr_log log;
} efx;

static int efx_setup(void **state) {
  efx *f = calloc(1, sizeof *f);
  tr_clock_set(&f->clock, T0);
  tr_open_args a = {.workers = 0, .clock = &f->clock};
  f->q = tr_open(&a);
  tr_log_init(&f->log);
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(f->q, 0, &ev), JOBQ_ETIMEDOUT);
  *state = f;
  return 0;
}

static int efx_teardown(void **state) {
  efx *f = *state;
  assert_int_equal(jobq_close(f->q, 0), 0);
  tr_log_free(&f->log);
  free(f);
  return 0;
}

static void test_retrying_between_attempts(void **state) {
  efx *f = *state;
  tr_register(f->q, "r", tr_never_handler, NULL, tr_kind_opts(0, 3, 100, 100, 0, 0, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "r", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_int_equal(jobq_ctx_progress(ctx, 40, "first try"), 0);
  tr_clock_set(&f->clock, T0 + 3);
  assert_int_equal(jobq_ctx_fail(ctx, "flaky", 1), 0);
  tr_clock_set(&f->clock, T0 + 103);
  ctx = tr_claim(f->q, NULL);
  assert_int_equal(jobq_ctx_succeed(ctx, "{\"ok\":1}"), 0);
  assert_int_equal(tr_pull_all(f->q, &f->log), 6);
  char types[256];
  tr_log_types(&f->log, id, types, sizeof types);
  assert_string_equal(types, "submitted started progress retrying started succeeded");
  const tr_ev *e = f->log.v;
  assert_int_equal(e[1].attempt, 1);
  assert_int_equal(e[2].progress, 40);
  assert_string_equal(e[2].step, "first try");
  assert_int_equal(e[3].state, JOBQ_QUEUED);
  assert_int_equal(e[3].attempt, 1);
  assert_string_equal(e[3].error, "flaky");
  assert_int_equal(e[4].state, JOBQ_RUNNING);
  assert_int_equal(e[4].attempt, 2);
  assert_int_equal(e[5].attempt, 2);
  assert_int_equal(e[5].state, JOBQ_SUCCEEDED);
  assert_string_equal(e[5].result, "{\"ok\":1}");
  for (int k = 0; k < 6; k++) assert_int_equal(e[k].dropped, 0);
}

static void test_failed_event_after_last_attempt(void **state) {
  efx *f = *state;
  tr_register(f->q, "r", tr_never_handler, NULL, tr_kind_opts(0, 2, 0, 0, 0, 0, 0));
  char id[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  tr_submit(f->q, "r", "0", NULL, id);
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, NULL), "e1", 1), 0);
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, NULL), "e2", 1), 0);
  tr_submit(f->q, "r", "0", NULL, id2);
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, NULL), "fatal", 0), 0);
  tr_pull_all(f->q, &f->log);
  char types[256];
  tr_log_types(&f->log, id, types, sizeof types);
  assert_string_equal(types, "submitted started retrying started failed");
  tr_log_types(&f->log, id2, types, sizeof types);
  assert_string_equal(types, "submitted started failed");
  int idx[8];
  assert_int_equal(events_of(&f->log, id, idx, 8), 5);
  assert_int_equal(f->log.v[idx[4]].state, JOBQ_FAILED);
  assert_int_equal(f->log.v[idx[4]].attempt, 2);
  assert_string_equal(f->log.v[idx[4]].error, "e2");
  assert_int_equal(events_of(&f->log, id2, idx, 8), 3);
  assert_string_equal(f->log.v[idx[2]].error, "fatal");
}

static void test_cancelled_events(void **state) {
  efx *f = *state;
  char queued[JOBQ_ID_SIZE], running[JOBQ_ID_SIZE];
  tr_submit(f->q, "c", "0", NULL, running);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  tr_submit(f->q, "c", "0", NULL, queued);
  assert_int_equal(jobq_cancel(f->q, queued), 0);
  assert_int_equal(jobq_cancel(f->q, running), 0);
  /* A running job's cancel is news only once the attempt ends. */
  tr_pull_all(f->q, &f->log);
  char types[256];
  tr_log_types(&f->log, queued, types, sizeof types);
  assert_string_equal(types, "submitted cancelled");
  tr_log_types(&f->log, running, types, sizeof types);
  assert_string_equal(types, "submitted started");
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  tr_pull_all(f->q, &f->log);
  tr_log_types(&f->log, running, types, sizeof types);
  assert_string_equal(types, "submitted started cancelled");
  int idx[8];
  assert_int_equal(events_of(&f->log, queued, idx, 8), 2);
  assert_int_equal(f->log.v[idx[1]].state, JOBQ_CANCELLED);
  assert_int_equal(events_of(&f->log, running, idx, 8), 3);
  assert_int_equal(f->log.v[idx[2]].state, JOBQ_CANCELLED);
  assert_int_equal(f->log.v[idx[2]].attempt, 1);
}

/* ---- subscribe / unsubscribe ---- */

static void test_subscribe_twice_and_unsubscribe(void **state) {
  (void)state;
  tr_log l1, l2;
  tr_log_init(&l1);
  tr_log_init(&l2);
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &l1), 0);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &l1), JOBQ_EEXIST);
  assert_non_null(strstr(jobq_last_error(), "jobq_subscribe"));
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &l2), 0); /* same fn, other ud */
  assert_int_equal(jobq_subscribe(q, NULL, &l2), JOBQ_EINVAL);
  assert_int_equal(jobq_subscribe(NULL, tr_log_cb, &l2), JOBQ_EINVAL);
  assert_int_equal(jobq_unsubscribe(q, tr_log_cb, NULL), JOBQ_ENOTFOUND);

  char id1[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  tr_submit(q, "x", "0", NULL, id1);
  assert_true(tr_log_wait_event(&l1, id1, JOBQ_EVENT_SUBMITTED, TR_GUARD_MS));
  assert_true(tr_log_wait_event(&l2, id1, JOBQ_EVENT_SUBMITTED, TR_GUARD_MS));
  assert_int_equal(jobq_unsubscribe(q, tr_log_cb, &l1), 0);
  assert_int_equal(jobq_unsubscribe(q, tr_log_cb, &l1), JOBQ_ENOTFOUND);
  tr_submit(q, "x", "0", NULL, id2);
  assert_int_equal(jobq_cancel(q, id2), 0);
  /* l2 gets both of id2's events; l1, unsubscribed before they were made,
   * gets none (the loop delivers to every subscriber in one pass). */
  assert_true(tr_log_wait_event(&l2, id2, JOBQ_EVENT_CANCELLED, TR_GUARD_MS));
  pthread_mutex_lock(&l1.mu);
  size_t n1 = l1.n;
  pthread_mutex_unlock(&l1.mu);
  assert_int_equal(n1, 1);
  /* Subscribing again works. */
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &l1), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  tr_log_free(&l1);
  tr_log_free(&l2);
}

/* A subscriber that blocks in its first call until the test says go. */
typedef struct blocker {
  atomic_int in_cb;
  atomic_int go;
  atomic_int calls;
  atomic_int calls_after_unsubscribe;
  atomic_int unsubscribed;
} blocker;

static void blocker_cb(const jobq_event_t *ev, void *ud) {
  (void)ev;
  blocker *b = ud;
  if (atomic_load(&b->unsubscribed)) atomic_fetch_add(&b->calls_after_unsubscribe, 1);
  if (atomic_fetch_add(&b->calls, 1) == 0) {
    atomic_store(&b->in_cb, 1);
    tr_wait_flag(&b->go, TR_GUARD_MS);
  }
}

typedef struct unsub {
  jobq_t *q;
  blocker *b;
  int rc;
} unsub;

static void unsub_run(void *arg) {
  unsub *u = arg;
  u->rc = jobq_unsubscribe(u->q, blocker_cb, u->b);
  atomic_store(&u->b->unsubscribed, 1);
}

static int still_subscribed(jobq_t *q, blocker *b) {
  uv_mutex_lock(&q->mu);
  int on = 0;
  for (int i = 0; i < q->events.n_subs; i++)
    on |= q->events.subs[i].fn == blocker_cb && q->events.subs[i].ud == b;
  uv_mutex_unlock(&q->mu);
  return on;
}

/* After jobq_unsubscribe returns (on another thread), fn must not be called
 * again: the caller may free ud right away. (jobq_unsubscribe may wait for a
 * call under way; the test lets the blocked call go once the subscription is
 * gone and the unsubscribe had a bounded chance to return.) */
static void test_unsubscribe_returns_no_later_callbacks(void **state) {
  (void)state;
  blocker b;
  memset(&b, 0, sizeof b);
  tr_log marker;
  tr_log_init(&marker);
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  assert_int_equal(jobq_subscribe(q, blocker_cb, &b), 0);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &marker), 0);
  /* Three events published at once: one delivery pass. */
  const char *kinds[3] = {"x", "x", "x"};
  const char *payloads[3] = {"1", "2", "3"};
  char ids[3 * JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit_many(q, 3, kinds, payloads, NULL, ids, NULL), 0);
  assert_true(tr_wait_flag(&b.in_cb, TR_GUARD_MS));
  unsub u = {q, &b, -99};
  tr_racer r;
  tr_racer_start(&r, unsub_run, &u);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (still_subscribed(q, &b) && tr_mono_ms() < end) tr_sleep_ms(1);
  tr_racer_wait(&r, TR_RACE_WINDOW_MS);
  atomic_store(&b.go, 1);
  tr_racer_join(&r);
  assert_int_equal(u.rc, 0);
  /* A later job's event reaching the other subscriber proves the pass that
   * was under way is over. */
  char last[JOBQ_ID_SIZE];
  tr_submit(q, "x", "4", NULL, last);
  assert_true(tr_log_wait_event(&marker, last, JOBQ_EVENT_SUBMITTED, TR_GUARD_MS));
  assert_int_equal(jobq_close(q, 0), 0);
  tr_log_free(&marker);
  int late = atomic_load(&b.calls_after_unsubscribe);
  if (late != 0)
    fail_msg("BUG: %d subscriber call(s) after jobq_unsubscribe returned "
             "(lib/core/events.c jobq__dispatch_events calls a copy of the subscriber list)",
             late);
}

/* ---- the pull buffer ---- */

static void test_next_event_empty_and_args(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  jobq_event_t *ev = (jobq_event_t *)(uintptr_t)1;
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT);
  assert_ptr_equal(ev, (jobq_event_t *)(uintptr_t)1);
  assert_non_null(strstr(jobq_last_error(), "jobq_next_event"));
  assert_int_equal(jobq_next_event(q, 20, &ev), JOBQ_ETIMEDOUT);
  assert_ptr_equal(ev, (jobq_event_t *)(uintptr_t)1);
  assert_int_equal(jobq_next_event(q, 0, NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_next_event(NULL, 0, &ev), JOBQ_EINVAL);
  /* Buffering started with the first call: a job submitted now is there. */
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "x", "0", NULL, id);
  assert_int_equal(jobq_next_event(q, 0, &ev), 0);
  assert_int_equal(jobq_event_type(ev), JOBQ_EVENT_SUBMITTED);
  assert_string_equal(jobq_event_job_id(ev), id);
  assert_string_equal(jobq_event_kind(ev), "x");
  assert_int_equal(jobq_event_dropped(ev), 0);
  jobq_event_free(ev);
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT);
  assert_int_equal(jobq_close(q, 0), 0);
}

static void test_small_buffer_reports_dropped(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0, .event_buffer = 4};
  jobq_t *q = tr_open(&a);
  char ids[10][JOBQ_ID_SIZE];
  for (int i = 0; i < 10; i++) tr_submit(q, "x", "0", NULL, ids[i]);
  jobq_event_t *ev = NULL;
  /* 10 events, 4 kept: the newest. The first delivered says 6 were lost. */
  for (int i = 6; i < 10; i++) {
    assert_int_equal(jobq_next_event(q, 0, &ev), 0);
    assert_int_equal(jobq_event_type(ev), JOBQ_EVENT_SUBMITTED);
    assert_string_equal(jobq_event_job_id(ev), ids[i]);
    assert_int_equal(jobq_event_dropped(ev), i == 6 ? 6 : 0);
    if (i == 6) {
      char *js = jobq_event_to_json(ev);
      assert_non_null(js);
      json_t *o = json_loads(js, 0, NULL);
      assert_non_null(o);
      assert_int_equal(json_integer_value(json_object_get(o, "dropped")), 6);
      json_decref(o);
      jobq_free(js);
    }
    jobq_event_free(ev);
  }
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT);
  /* Within the capacity nothing is lost. */
  jobq_ctx_t *ctx = tr_claim(q, NULL);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  assert_int_equal(jobq_next_event(q, 0, &ev), 0);
  assert_int_equal(jobq_event_type(ev), JOBQ_EVENT_STARTED);
  assert_int_equal(jobq_event_dropped(ev), 0);
  jobq_event_free(ev);
  assert_int_equal(jobq_next_event(q, 0, &ev), 0);
  assert_int_equal(jobq_event_type(ev), JOBQ_EVENT_SUCCEEDED);
  assert_int_equal(jobq_event_dropped(ev), 0);
  jobq_event_free(ev);
  /* Overflow by one. */
  char more[5][JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) tr_submit(q, "x", "0", NULL, more[i]);
  assert_int_equal(jobq_next_event(q, 0, &ev), 0);
  assert_string_equal(jobq_event_job_id(ev), more[1]);
  assert_int_equal(jobq_event_dropped(ev), 1);
  jobq_event_free(ev);
  assert_int_equal(jobq_close(q, 0), 0); /* frees the 3 still buffered */
}

/* ---- JSON and accessors ---- */

static void test_event_to_json(void **state) {
  efx *f = *state;
  tr_register(f->q, "k", tr_never_handler, NULL, tr_kind_opts(0, 2, 0, 0, 0, 0, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "k", "0", NULL, id);
  tr_clock_set(&f->clock, T0 + 5);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_int_equal(jobq_ctx_progress(ctx, 33, "step \"one\""), 0);
  assert_int_equal(jobq_ctx_fail(ctx, "bad \"thing\"", 1), 0);
  ctx = tr_claim(f->q, NULL);
  assert_int_equal(jobq_ctx_succeed(ctx, "{\"a\":[1,2]}"), 0);
  jobq_event_t *evs[6];
  for (int k = 0; k < 6; k++) assert_int_equal(jobq_next_event(f->q, 0, &evs[k]), 0);
  static const char *const names[] = {"submitted", "started", "progress",
                                      "retrying",  "started", "succeeded"};
  for (int k = 0; k < 6; k++) {
    char *js = jobq_event_to_json(evs[k]);
    assert_non_null(js);
    json_error_t err;
    json_t *o = json_loads(js, 0, &err);
    if (o == NULL) fail_msg("event %d: not JSON: %s (%s)", k, js, err.text);
    assert_true(json_is_object(o));
    assert_string_equal(json_string_value(json_object_get(o, "type")), names[k]);
    assert_string_equal(json_string_value(json_object_get(o, "jobId")), id);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "k");
    assert_int_equal(json_integer_value(json_object_get(o, "time")), k == 0 ? T0 : T0 + 5);
    assert_null(json_object_get(o, "dropped"));
    switch (k) {
      case 0:
        assert_string_equal(json_string_value(json_object_get(o, "state")), "queued");
        assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 0);
        assert_null(json_object_get(o, "error"));
        assert_null(json_object_get(o, "result"));
        break;
      case 2:
        assert_int_equal(json_integer_value(json_object_get(o, "progress")), 33);
        assert_string_equal(json_string_value(json_object_get(o, "step")), "step \"one\"");
        break;
      case 3:
        assert_string_equal(json_string_value(json_object_get(o, "state")), "queued");
        assert_string_equal(json_string_value(json_object_get(o, "error")), "bad \"thing\"");
        break;
      case 5: {
        assert_string_equal(json_string_value(json_object_get(o, "state")), "succeeded");
        assert_int_equal(json_integer_value(json_object_get(o, "progress")), 100);
        assert_int_equal(json_integer_value(json_object_get(o, "attempt")), 2);
        json_t *r = json_object_get(o, "result");
        assert_true(json_is_object(r));
        json_t *arr = json_object_get(r, "a");
        assert_int_equal(json_array_size(arr), 2);
        assert_int_equal(json_integer_value(json_array_get(arr, 1)), 2);
        break;
      }
      default:
        break;
    }
    json_decref(o);
    jobq_free(js);
    jobq_event_free(evs[k]);
  }
}

static void test_event_accessors_on_null(void **state) {
  (void)state;
  assert_int_equal(jobq_event_type(NULL), JOBQ_EINVAL);
  assert_null(jobq_event_job_id(NULL));
  assert_null(jobq_event_kind(NULL));
  assert_int_equal(jobq_event_state(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_event_progress(NULL), JOBQ_EINVAL);
  assert_null(jobq_event_step(NULL));
  assert_int_equal(jobq_event_attempt(NULL), JOBQ_EINVAL);
  assert_null(jobq_event_error(NULL));
  assert_null(jobq_event_result(NULL));
  assert_int_equal(jobq_event_time(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_event_dropped(NULL), 0);
  assert_null(jobq_event_to_json(NULL));
  assert_non_null(strstr(jobq_last_error(), "jobq_event_to_json"));
  jobq_event_free(NULL);
  assert_null(jobq_event_type_name(0));
  assert_null(jobq_event_type_name(12));
  assert_null(jobq_event_delivery_id(NULL));
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_SUBMITTED), "submitted");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_RETRYING), "retrying");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_CANCELLED), "cancelled");
}

/* ---- the loop thread may not block ---- */

typedef struct loopcalls {
  jobq_t *q;
  atomic_int done;
  int wait_rc, wait0_rc, next_rc, next0_rc, claim_rc, claim0_rc, close_rc;
  int wait0_state;
} loopcalls;

static void loopcalls_cb(const jobq_event_t *ev, void *ud) {
  loopcalls *c = ud;
  if (atomic_load(&c->done) || jobq_event_type(ev) != JOBQ_EVENT_SUBMITTED) return;
  const char *id = jobq_event_job_id(ev);
  jobq_job_t *j = NULL;
  c->wait_rc = jobq_wait(c->q, id, 100, &j);
  if (j) jobq_job_free(j);
  j = NULL;
  c->wait0_rc = jobq_wait(c->q, id, 0, &j); /* a poll is fine */
  c->wait0_state = j ? jobq_job_state(j) : -1;
  if (j) jobq_job_free(j);
  jobq_event_t *e = NULL;
  c->next_rc = jobq_next_event(c->q, 100, &e);
  if (c->next_rc == 0) jobq_event_free(e);
  e = NULL;
  c->next0_rc = jobq_next_event(c->q, 0, &e);
  if (c->next0_rc == 0) jobq_event_free(e);
  jobq_ctx_t *ctx = NULL;
  c->claim_rc = jobq_claim(c->q, NULL, -1, &ctx);
  c->claim0_rc = jobq_claim(c->q, (const char *const[]){"nothing", NULL}, 0, &ctx);
  c->close_rc = jobq_close(c->q, 0);
  atomic_store(&c->done, 1);
}

static void test_blocking_calls_on_loop_thread_refused(void **state) {
  (void)state;
  loopcalls c;
  memset(&c, 0, sizeof c);
  tr_open_args a = {.workers = 0};
  c.q = tr_open(&a);
  assert_int_equal(jobq_subscribe(c.q, loopcalls_cb, &c), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(c.q, "x", "0", NULL, id);
  assert_true(tr_wait_flag(&c.done, TR_GUARD_MS));
  assert_int_equal(c.wait_rc, JOBQ_EDEADLK);
  assert_int_equal(c.wait0_rc, JOBQ_ETIMEDOUT);
  assert_int_equal(c.wait0_state, JOBQ_QUEUED);
  assert_int_equal(c.next_rc, JOBQ_EDEADLK);
  assert_int_equal(c.next0_rc, JOBQ_ETIMEDOUT);
  assert_int_equal(c.claim_rc, JOBQ_EDEADLK);
  assert_int_equal(c.claim0_rc, JOBQ_ETIMEDOUT);
  assert_int_equal(c.close_rc, JOBQ_EDEADLK);
  /* The queue is still usable. */
  assert_int_equal(tr_state(c.q, id), JOBQ_QUEUED);
  assert_int_equal(jobq_close(c.q, 0), 0);
}

/* ---- what a submit leaves behind ---- */

/* With a listener, a submit holds the new job's events until "submitted" is
 * published. A dedupe hit must not leave that hold behind. */
static void test_dedupe_hit_with_listener_leaves_no_hold(void **state) {
  (void)state;
  tr_log log;
  tr_log_init(&log);
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &log), 0);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_dedupe(so, "key-1", 0), 0);
  char id1[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "x", "0", so, id1), 0);
  assert_int_equal(jobq_submit(q, "x", "0", so, id2), 1);
  assert_string_equal(id1, id2);
  jobq_submit_opts_free(so);
  assert_true(tr_log_wait_event(&log, id1, JOBQ_EVENT_SUBMITTED, TR_GUARD_MS));
  uv_mutex_lock(&q->mu);
  size_t held = q->events.holds.count;
  uv_mutex_unlock(&q->mu);
  /* Only one "submitted" for the one job. */
  pthread_mutex_lock(&log.mu);
  size_t n = log.n;
  pthread_mutex_unlock(&log.mu);
  assert_int_equal(jobq_close(q, 0), 0);
  tr_log_free(&log);
  assert_int_equal(n, 1);
  if (held != 0)
    fail_msg("BUG: %zu event hold(s) left in q->events.holds after a dedupe hit (leaked; "
             "lib/core/submit.c store() ends the hold under the existing job's id)",
             held);
}

/* ---- per-job order when storage and the core race ---- */

typedef struct failer {
  jobq_ctx_t *ctx;
  int rc;
} failer;

static void *failer_main(void *arg) {
  failer *fl = arg;
  fl->rc = jobq_ctx_fail(fl->ctx, "transient", 1);
  return NULL;
}

/* Returns 1 if some event of id follows a terminal event of id. */
static int event_after_terminal(tr_log *l, const char *id) {
  int seen_terminal = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (strcmp(l->v[i].id, id) != 0) continue;
    if (seen_terminal) return 1;
    if (tr_ev_is_terminal(l->v[i].type)) seen_terminal = 1;
  }
  return 0;
}

typedef struct canceller {
  jobq_t *q;
  const char *id;
  int rc;
} canceller;

static void cancel_run(void *arg) {
  canceller *c = arg;
  c->rc = jobq_cancel(c->q, c->id);
}

/* A cancel that lands while a retry is being recorded: the job ends
 * cancelled, and "cancelled" must stay its last event. */
static void test_cancel_during_retry_keeps_terminal_last(void **state) {
  (void)state;
  tr_gate_register();
  tr_clock clock;
  tr_clock_set(&clock, T0);
  tr_open_args a = {.workers = 0, .clock = &clock, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  tr_register(q, "r", tr_never_handler, NULL, tr_kind_opts(0, 3, 1000, 1000, 0, 0, 0));
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "r", "0", NULL, id);
  failer fl = {tr_claim(q, NULL), -99};
  tr_gate_arm(TR_GATE_FINISH);
  pthread_t t;
  pthread_create(&t, NULL, failer_main, &fl);
  assert_true(tr_gate_wait_held(TR_GUARD_MS));
  /* Storage has requeued the job; its retrying event is not out yet. */
  canceller c = {q, id, -99};
  tr_racer r;
  tr_racer_start(&r, cancel_run, &c);
  tr_racer_wait(&r, TR_RACE_WINDOW_MS);
  tr_gate_release();
  pthread_join(t, NULL);
  tr_racer_join(&r);
  assert_int_equal(fl.rc, 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(tr_state(q, id), JOBQ_CANCELLED);
  tr_log log;
  tr_log_init(&log);
  tr_pull_all(q, &log);
  char types[256];
  tr_log_types(&log, id, types, sizeof types);
  int bad = event_after_terminal(&log, id);
  tr_log_free(&log);
  assert_int_equal(jobq_close(q, 0), 0);
  if (bad)
    fail_msg("BUG: events of job after its terminal event: \"%s\" (lib/core/cancel.c emits "
             "cancelled while attempt.c jobq__attempt_end still has to publish the retry)",
             types);
  assert_string_equal(types, "submitted started retrying cancelled");
}

/* A quick retry claimed again before the old attempt's end is published:
 * the order must still be ... retrying, started. */
typedef struct claim2 {
  jobq_t *q;
  int rc;
  jobq_ctx_t *ctx;
} claim2;

static void claim2_run(void *arg) {
  claim2 *c = arg;
  c->rc = jobq_claim(c->q, NULL, TR_GUARD_MS, &c->ctx);
}

static void test_quick_retry_keeps_retrying_before_next_start(void **state) {
  (void)state;
  tr_gate_register();
  tr_clock clock;
  tr_clock_set(&clock, T0);
  tr_open_args a = {.workers = 0, .clock = &clock, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  tr_register(q, "r", tr_never_handler, NULL, tr_kind_opts(0, 3, 0, 0, 0, 0, 0));
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "r", "0", NULL, id);
  failer fl = {tr_claim(q, NULL), -99};
  tr_gate_arm(TR_GATE_FINISH);
  pthread_t t;
  pthread_create(&t, NULL, failer_main, &fl);
  assert_true(tr_gate_wait_held(TR_GUARD_MS));
  claim2 c = {q, -99, NULL};
  tr_racer r;
  tr_racer_start(&r, claim2_run, &c);
  tr_racer_wait(&r, TR_RACE_WINDOW_MS);
  tr_gate_release();
  pthread_join(t, NULL);
  tr_racer_join(&r);
  assert_int_equal(fl.rc, 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(jobq_ctx_attempt(c.ctx), 2);
  assert_int_equal(jobq_ctx_succeed(c.ctx, NULL), 0);
  tr_log log;
  tr_log_init(&log);
  tr_pull_all(q, &log);
  char types[256];
  tr_log_types(&log, id, types, sizeof types);
  tr_log_free(&log);
  assert_int_equal(jobq_close(q, 0), 0);
  if (strcmp(types, "submitted started retrying started succeeded") != 0)
    fail_msg("BUG: event order \"%s\", expected \"submitted started retrying started "
             "succeeded\" (the new attempt's started is emitted before the old attempt's "
             "retrying, lib/core/attempt.c jobq__attempt_end/publish_end)",
             types);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_subscriber_sees_each_job_in_order),
    cmocka_unit_test(test_pull_matches_subscriber),
    cmocka_unit_test_setup_teardown(test_retrying_between_attempts, efx_setup, efx_teardown),
    cmocka_unit_test_setup_teardown(test_failed_event_after_last_attempt, efx_setup,
                                    efx_teardown),
    cmocka_unit_test_setup_teardown(test_cancelled_events, efx_setup, efx_teardown),
    cmocka_unit_test(test_subscribe_twice_and_unsubscribe),
    cmocka_unit_test(test_unsubscribe_returns_no_later_callbacks),
    cmocka_unit_test(test_next_event_empty_and_args),
    cmocka_unit_test(test_small_buffer_reports_dropped),
    cmocka_unit_test_setup_teardown(test_event_to_json, efx_setup, efx_teardown),
    cmocka_unit_test(test_event_accessors_on_null),
    cmocka_unit_test(test_blocking_calls_on_loop_thread_refused),
    cmocka_unit_test(test_dedupe_hit_with_listener_leaves_no_hold),
    cmocka_unit_test(test_cancel_during_retry_keeps_terminal_last),
    cmocka_unit_test(test_quick_retry_keeps_retrying_before_next_start),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
