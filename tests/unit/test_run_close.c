/* jobq_close: draining, releasing what runs past the deadline, blocked
 * callers, and a host-run loop. Memory storage lives and dies with its
 * queue, so these tests use "gate:" storage (memory underneath) whose close
 * records what the store held at that moment. */
#include "testutil_run.h"

#include "core/internal.h" /* to see that blocked callers are really blocked */

#include <uv.h>

static const char *const K_NONE[] = {"zz.none", NULL};

/* ---- drain ---- */

typedef struct drain {
  jobq_t *q;
  atomic_int started;
  atomic_int returned;
  int saw_closing;   /* observed the queue closing before finishing */
  int cancelled_seen;
  int attempt;
  int progress_rc, succeed_rc, fail_rc, cancelled_after;
  char err[200];
} drain;

/* Finishes only once close has begun, which then must wait for it. */
static void finish_while_closing(jobq_ctx_t *ctx, void *ud) {
  drain *d = ud;
  atomic_store(&d->started, 1);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  jobq_ctx_t *c = NULL;
  while (tr_mono_ms() < end) {
    int rc = jobq_claim(d->q, K_NONE, 0, &c);
    if (rc == JOBQ_ECLOSED) {
      d->saw_closing = 1;
      break;
    }
    tr_sleep_ms(1);
  }
  d->cancelled_seen = jobq_ctx_cancelled(ctx);
  d->progress_rc = jobq_ctx_progress(ctx, 90, "closing");
  d->succeed_rc = jobq_ctx_succeed(ctx, "\"drained\"");
  atomic_store(&d->returned, 1);
}

static void run_drain_in_time(int drain_ms) {
  tr_gate_register();
  drain d;
  memset(&d, 0, sizeof d);
  tr_log log;
  tr_log_init(&log);
  tr_open_args a = {.workers = 1, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  d.q = q;
  tr_register(q, "d", finish_while_closing, &d, NULL);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &log), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "d", "0", NULL, id);
  assert_true(tr_wait_flag(&d.started, TR_GUARD_MS));
  assert_int_equal(jobq_close(q, drain_ms), 0);
  assert_int_equal(atomic_load(&d.returned), 1);
  assert_int_equal(d.saw_closing, 1);
  assert_int_equal(d.cancelled_seen, 0);
  assert_int_equal(d.progress_rc, 0);
  assert_int_equal(d.succeed_rc, 0);
  int st = -1, att = -1;
  assert_int_equal(tr_gate_snapshot(id, &st, &att), 0);
  assert_int_equal(st, JOBQ_SUCCEEDED);
  assert_int_equal(att, 1);
  /* The last events were delivered before the loop stopped. */
  char types[200];
  tr_log_types(&log, id, types, sizeof types);
  assert_string_equal(types, "submitted started progress succeeded");
  tr_log_free(&log);
}

static void test_drain_waits_for_handler(void **state) {
  (void)state;
  run_drain_in_time(20000);
}

static void test_drain_without_limit(void **state) {
  (void)state;
  run_drain_in_time(-1);
}

/* Runs until released (its ctx turns cancelled), then tries to finish. */
static void run_past_deadline(jobq_ctx_t *ctx, void *ud) {
  drain *d = ud;
  d->attempt = jobq_ctx_attempt(ctx);
  atomic_store(&d->started, 1);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (!jobq_ctx_cancelled(ctx) && tr_mono_ms() < end) tr_sleep_ms(1);
  d->cancelled_seen = jobq_ctx_cancelled(ctx);
  d->progress_rc = jobq_ctx_progress(ctx, 50, NULL);
  d->succeed_rc = jobq_ctx_succeed(ctx, "1");
  snprintf(d->err, sizeof d->err, "%s", jobq_last_error());
  d->fail_rc = jobq_ctx_fail(ctx, "late", 0);
  d->cancelled_after = jobq_ctx_cancelled(ctx);
  atomic_store(&d->returned, 1);
}

static void test_drain_deadline_releases_job(void **state) {
  (void)state;
  tr_gate_register();
  drain d;
  memset(&d, 0, sizeof d);
  tr_log log;
  tr_log_init(&log);
  tr_open_args a = {.workers = 2, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  tr_register(q, "slow", run_past_deadline, &d, NULL);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &log), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE], waiting[JOBQ_ID_SIZE];
  tr_submit(q, "slow", "0", NULL, id);
  assert_true(tr_wait_flag(&d.started, TR_GUARD_MS));
  tr_submit(q, "never.run", "0", NULL, waiting);
  assert_int_equal(jobq_close(q, 50), 0);
  /* close joined the worker: the handler has returned. */
  assert_int_equal(atomic_load(&d.returned), 1);
  assert_int_equal(d.attempt, 1);
  assert_int_equal(d.cancelled_seen, 1);
  assert_int_equal(d.progress_rc, JOBQ_ECLOSED);
  assert_int_equal(d.succeed_rc, JOBQ_ECLOSED);
  assert_non_null(strstr(d.err, "jobq_ctx_succeed"));
  /* The handler's ctx is spent after its (refused) succeed. */
  assert_int_equal(d.fail_rc, JOBQ_ESTATE);
  assert_int_equal(d.cancelled_after, 1);
  /* Released: back to queued, the attempt not counted. */
  int st = -1, att = -1;
  assert_int_equal(tr_gate_snapshot(id, &st, &att), 0);
  assert_int_equal(st, JOBQ_QUEUED);
  assert_int_equal(att, 0);
  assert_int_equal(tr_gate_snapshot(waiting, &st, &att), 0);
  assert_int_equal(st, JOBQ_QUEUED);
  assert_int_equal(att, 0);
  /* No terminal event for the released job. */
  char types[200];
  tr_log_types(&log, id, types, sizeof types);
  assert_string_equal(types, "submitted started");
  tr_log_free(&log);
}

/* A jobq_claim ctx the host finishes after close: JOBQ_ECLOSED; the ctx (and
 * the queue it keeps alive) are freed by that call. */
static void test_claimed_ctx_finished_after_close(void **state) {
  (void)state;
  tr_gate_register();
  tr_open_args a = {.workers = 0, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  char id[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  tr_submit(q, "h", "{\"p\":1}", NULL, id);
  tr_submit(q, "h", "0", NULL, id2);
  jobq_ctx_t *ctx = tr_claim(q, NULL);
  jobq_ctx_t *ctx2 = tr_claim(q, NULL);
  assert_int_equal(jobq_ctx_progress(ctx, 10, "before"), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  int st = -1, att = -1;
  assert_int_equal(tr_gate_snapshot(id, &st, &att), 0);
  assert_int_equal(st, JOBQ_QUEUED);
  assert_int_equal(att, 0);
  assert_int_equal(tr_gate_snapshot(id2, &st, &att), 0);
  assert_int_equal(st, JOBQ_QUEUED);
  /* The ctx still answers. */
  assert_string_equal(jobq_ctx_id(ctx), id);
  assert_string_equal(jobq_ctx_payload(ctx), "{\"p\":1}");
  assert_int_equal(jobq_ctx_attempt(ctx), 1);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  assert_int_equal(jobq_ctx_progress(ctx, 20, "after"), JOBQ_ECLOSED);
  assert_int_equal(jobq_ctx_succeed(ctx, "{\"a\":"), JOBQ_EJSON); /* checked first */
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), JOBQ_ECLOSED);
  assert_int_equal(jobq_ctx_fail(ctx2, "x", 1), JOBQ_ECLOSED); /* the last: frees q */
}

/* A host thread that finishes its claimed job during the drain. */
typedef struct hostfin {
  jobq_t *q;
  jobq_ctx_t *ctx;
  int saw_closing, rc;
} hostfin;

static void *hostfin_main(void *arg) {
  hostfin *h = arg;
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  char id[JOBQ_ID_SIZE];
  while (tr_mono_ms() < end) {
    if (jobq_submit(h->q, "probe", "0", NULL, id) == JOBQ_ECLOSED) {
      h->saw_closing = 1;
      break;
    }
    tr_sleep_ms(1);
  }
  h->rc = jobq_ctx_succeed(h->ctx, "\"host\"");
  return NULL;
}

static void test_claimed_ctx_finished_during_drain(void **state) {
  (void)state;
  tr_gate_register();
  tr_open_args a = {.workers = 0, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  static const char *const K[] = {"h", NULL};
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "h", "0", NULL, id);
  hostfin h = {q, tr_claim(q, K), 0, -99};
  pthread_t t;
  pthread_create(&t, NULL, hostfin_main, &h);
  assert_int_equal(jobq_close(q, 20000), 0);
  pthread_join(t, NULL);
  assert_int_equal(h.saw_closing, 1);
  assert_int_equal(h.rc, 0);
  int st = -1, att = -1;
  assert_int_equal(tr_gate_snapshot(id, &st, &att), 0);
  assert_int_equal(st, JOBQ_SUCCEEDED);
  assert_int_equal(att, 1);
}

/* The last events of a queue are delivered before close returns, also when
 * the loop thread is busy delivering earlier ones as close finishes (it then
 * must deliver what came meanwhile before it closes its handles). The
 * subscriber holds the loop thread in its "progress" call until close has
 * closed storage (bounded): by then "succeeded" is queued. */
typedef struct lastev {
  jobq_t *q;
  atomic_int in_progress_cb;
  atomic_int saw_closed;
  atomic_int succeeded;
} lastev;

static void lastev_cb(const jobq_event_t *ev, void *ud) {
  lastev *l = ud;
  if (jobq_event_type(ev) == JOBQ_EVENT_PROGRESS) {
    atomic_store(&l->in_progress_cb, 1);
    uint64_t end = tr_mono_ms() + 2000;
    while (atomic_load(&l->q->closed) != 2 && tr_mono_ms() < end) tr_sleep_ms(1);
    atomic_store(&l->saw_closed, atomic_load(&l->q->closed) == 2);
  }
  if (jobq_event_type(ev) == JOBQ_EVENT_SUCCEEDED) atomic_store(&l->succeeded, 1);
}

/* The first maintenance pass starts with the loop; close waits for a pass
 * under way, and a pass needs the loop thread to end. */
static int maint_idle(jobq_t *q, int64_t opened) {
  uv_mutex_lock(&q->mu);
  int idle = !q->maint.busy && q->maint.next_rescue > opened;
  uv_mutex_unlock(&q->mu);
  return idle;
}

static void test_close_delivers_events_queued_while_loop_busy(void **state) {
  (void)state;
  lastev l;
  memset(&l, 0, sizeof l);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  /* A day's lease: after the first pass no maintenance for hours. */
  assert_int_equal(jobq_options_set_lease(o, 86400000), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  int64_t opened = jobq_now(q);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (!maint_idle(q, opened) && tr_mono_ms() < end) tr_sleep_ms(1);
  assert_true(maint_idle(q, opened));
  l.q = q;
  assert_int_equal(jobq_subscribe(q, lastev_cb, &l), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "x", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(q, NULL);
  assert_int_equal(jobq_ctx_progress(ctx, 50, NULL), 0);
  assert_true(tr_wait_flag(&l.in_progress_cb, TR_GUARD_MS));
  assert_int_equal(jobq_ctx_succeed(ctx, "1"), 0);
  assert_int_equal(jobq_close(q, 1000), 0);
  int saw_closed = atomic_load(&l.saw_closed);
  if (!atomic_load(&l.succeeded))
    fail_msg("BUG: the job's \"succeeded\" event was never delivered (close %s while the loop "
             "thread was busy): lib/core/queue.c on_async dispatches, then sees closed == 2 and "
             "closes the handles without dispatching what was queued meanwhile",
             saw_closed ? "finished" : "had not finished");
}

/* ---- blocked callers ---- */

typedef struct blocked {
  jobq_t *q;
  char id[JOBQ_ID_SIZE];
  int claim_rc, next_rc, wait_rc;
  jobq_ctx_t *ctx;
  jobq_event_t *ev;
  jobq_job_t *job;
} blocked;

static void *claim_main(void *arg) {
  blocked *b = arg;
  b->claim_rc = jobq_claim(b->q, NULL, -1, &b->ctx);
  return NULL;
}
static void *next_main(void *arg) {
  blocked *b = arg;
  b->next_rc = jobq_next_event(b->q, -1, &b->ev);
  return NULL;
}
static void *wait_main(void *arg) {
  blocked *b = arg;
  b->wait_rc = jobq_wait(b->q, b->id, -1, &b->job);
  return NULL;
}

static void blocked_init(blocked *b, jobq_t *q) {
  memset(b, 0, sizeof *b);
  b->q = q;
  b->claim_rc = b->next_rc = b->wait_rc = -99;
  b->ctx = (jobq_ctx_t *)(uintptr_t)1;
  b->ev = (jobq_event_t *)(uintptr_t)1;
  b->job = (jobq_job_t *)(uintptr_t)1;
}

static int pull_and_wait_blocked(jobq_t *q, const char *id) {
  uv_mutex_lock(&q->mu);
  int ok = q->events.pull_waiters >= 1 && jobq__map_get(&q->waiters, id) != NULL;
  uv_mutex_unlock(&q->mu);
  return ok;
}

static void test_blocked_wait_and_next_event_return_closed(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  blocked b;
  blocked_init(&b, q);
  /* A delayed job: something to wait on that nothing will change. */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_delay(so, 3600000), 0);
  tr_submit(q, "x", "0", so, b.id);
  jobq_submit_opts_free(so);
  pthread_t t2, t3;
  pthread_create(&t2, NULL, next_main, &b);
  pthread_create(&t3, NULL, wait_main, &b);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (!pull_and_wait_blocked(q, b.id) && tr_mono_ms() < end) tr_sleep_ms(1);
  assert_true(pull_and_wait_blocked(q, b.id));
  assert_int_equal(jobq_close(q, 0), 0);
  pthread_join(t2, NULL);
  pthread_join(t3, NULL);
  assert_int_equal(b.next_rc, JOBQ_ECLOSED);
  assert_int_equal(b.wait_rc, JOBQ_ECLOSED);
  assert_ptr_equal(b.ev, (jobq_event_t *)(uintptr_t)1);
  assert_ptr_equal(b.job, (jobq_job_t *)(uintptr_t)1);
}

static int claimer_blocked(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  int ok = q->claim.idle >= 1;
  uv_mutex_unlock(&q->mu);
  return ok;
}

/* A jobq_claim blocked on an empty queue when another thread closes it must
 * return JOBQ_ECLOSED. It is woken by close's broadcast and needs the core
 * lock again; if it gets it only after close has closed storage it must not
 * touch storage. Which comes first is up to the scheduler, so the scenario
 * runs 100 times, in a child process (the bug is a crash). */
enum { CLAIM_ROUNDS = 100 };

static int child_blocked_claim(void *arg) {
  volatile int *iters = arg;
  for (int it = 0; it < CLAIM_ROUNDS; it++) {
    jobq_options_t *o = jobq_options_new();
    TR_CHK(jobq_options_set_workers(o, 0) == 0);
    jobq_t *q = NULL;
    TR_CHK(jobq_open(&q, o) == 0);
    jobq_options_free(o);
    blocked b;
    blocked_init(&b, q);
    pthread_t t1;
    pthread_create(&t1, NULL, claim_main, &b);
    uint64_t end = tr_mono_ms() + TR_GUARD_MS;
    while (!claimer_blocked(q) && tr_mono_ms() < end) tr_sleep_ms(1);
    TR_CHK(claimer_blocked(q));
    TR_CHK(jobq_close(q, 0) == 0);
    pthread_join(t1, NULL);
    TR_CHK(b.claim_rc == JOBQ_ECLOSED);
    TR_CHK(b.ctx == (jobq_ctx_t *)(uintptr_t)1);
    *iters = it + 1;
  }
  return 0;
}

static void test_blocked_claim_returns_closed(void **state) {
  (void)state;
  volatile int *iters = tr_shared_int();
  char why[200];
  int rc = tr_fork_run(child_blocked_claim, (void *)iters, 60, why, sizeof why);
  int done = *iters;
  munmap((void *)iters, sizeof(int));
  if (rc != 0)
    fail_msg("BUG: %s in round %d of %d: a jobq_claim blocked while another thread closed the "
             "queue went back to storage after close had closed it (lib/core/claim.c "
             "jobq_claim: after waking it calls jobq__claim_locked without checking "
             "q->stopping; the crash is in mem_claim with st == NULL)",
             why, done + 1, CLAIM_ROUNDS);
  assert_int_equal(done, CLAIM_ROUNDS);
}

/* A claim that is inside storage when close runs: close must wait for it
 * (not free the storage under it) and release what it brought back; the
 * claim then either fails with JOBQ_ECLOSED or hands out an attempt that is
 * already released (cancelled, finishing says JOBQ_ECLOSED). */
typedef struct stclaim {
  jobq_t *q;
  int rc;
  jobq_ctx_t *ctx;
  atomic_int close_returned;
  int close_rc;
} stclaim;

static void *stclaim_main(void *arg) {
  stclaim *s = arg;
  s->rc = jobq_claim(s->q, NULL, 0, &s->ctx);
  return NULL;
}

static void *closer_main(void *arg) {
  stclaim *s = arg;
  s->close_rc = jobq_close(s->q, 0);
  atomic_store(&s->close_returned, 1);
  return NULL;
}

static void test_close_while_claim_is_in_storage(void **state) {
  (void)state;
  tr_gate_register();
  tr_open_args a = {.workers = 0, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "x", "0", NULL, id);
  stclaim s;
  memset(&s, 0, sizeof s);
  s.q = q;
  s.rc = -99;
  tr_gate_arm(TR_GATE_CLAIM);
  pthread_t tc, tx;
  pthread_create(&tc, NULL, stclaim_main, &s);
  assert_true(tr_gate_wait_held(TR_GUARD_MS));
  pthread_create(&tx, NULL, closer_main, &s);
  /* A correct close cannot return while the claim is held at the gate; give
   * a wrong one a bounded chance to show itself. */
  uint64_t end = tr_mono_ms() + 300;
  while (!atomic_load(&s.close_returned) && !tr_gate_store_closed() && tr_mono_ms() < end)
    tr_sleep_ms(1);
  int closed_under_claim = tr_gate_store_closed();
  tr_gate_release();
  pthread_join(tc, NULL);
  pthread_join(tx, NULL);
  assert_int_equal(s.close_rc, 0);
  if (closed_under_claim)
    fail_msg("BUG: jobq_close closed storage while a jobq_claim was inside it (claim: %s)",
             jobq_err_name(s.rc));
  if (s.rc == 0) {
    assert_string_equal(jobq_ctx_id(s.ctx), id);
    assert_int_equal(jobq_ctx_cancelled(s.ctx), 1);
    assert_int_equal(jobq_ctx_progress(s.ctx, 1, NULL), JOBQ_ECLOSED);
    assert_int_equal(jobq_ctx_succeed(s.ctx, NULL), JOBQ_ECLOSED); /* frees ctx and q */
  } else {
    assert_int_equal(s.rc, JOBQ_ECLOSED);
  }
  /* Released: the job is back in line, the attempt not counted. */
  int st = -1, att = -1;
  assert_int_equal(tr_gate_snapshot(id, &st, &att), 0);
  assert_int_equal(st, JOBQ_QUEUED);
  assert_int_equal(att, 0);
}

/* ---- a host-run loop ----
 * These run in a child process (tr_fork_run): the final uv_run() after
 * jobq_close is where a freed queue shows (a hang or a crash). */

typedef struct host {
  tr_log log;
  pthread_t loop_thread;
  atomic_int wrong_thread;
} host;

static void host_cb(const jobq_event_t *ev, void *ud) {
  host *h = ud;
  if (!pthread_equal(pthread_self(), h->loop_thread)) atomic_store(&h->wrong_thread, 1);
  tr_log_add(&h->log, ev);
}

static void host_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_progress(ctx, 50, "host");
  jobq_ctx_succeed(ctx, "\"ok\"");
}

enum { STAGE_RUNNING = 1, STAGE_FINAL_UV_RUN = 2, STAGE_DONE = 3, STAGE_CLOSING = 4 };

static int child_host_loop(void *arg) {
  volatile int *stage = arg;
  enum { N = 20 };
  *stage = STAGE_RUNNING;
  uv_loop_t loop;
  TR_CHK(uv_loop_init(&loop) == 0);
  host h;
  memset(&h, 0, sizeof h);
  tr_log_init(&h.log);
  h.loop_thread = pthread_self();
  jobq_options_t *o = jobq_options_new();
  TR_CHK(jobq_options_set_loop(o, &loop) == 0);
  TR_CHK(jobq_options_set_workers(o, 2) == 0);
  jobq_t *q = NULL;
  TR_CHK(jobq_open(&q, o) == 0);
  jobq_options_free(o);
  TR_CHK(jobq_register(q, "h", host_handler, NULL, NULL) == 0);
  TR_CHK(jobq_subscribe(q, host_cb, &h) == 0);
  TR_CHK(jobq_start(q) == 0);
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) TR_CHK(jobq_submit(q, "h", "0", NULL, ids[i]) == 0);
  /* Nothing is delivered while the host does not run its loop. */
  pthread_mutex_lock(&h.log.mu);
  size_t before = h.log.n;
  pthread_mutex_unlock(&h.log.mu);
  TR_CHK(before == 0);
  /* This thread is the loop thread: blocking calls are refused here. */
  jobq_job_t *j = NULL;
  TR_CHK(jobq_wait(q, ids[0], 10, &j) == JOBQ_EDEADLK);
  jobq_ctx_t *ctx = NULL;
  TR_CHK(jobq_claim(q, K_NONE, 10, &ctx) == JOBQ_EDEADLK);
  jobq_event_t *ev = NULL;
  TR_CHK(jobq_next_event(q, 10, &ev) == JOBQ_EDEADLK);

  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  for (;;) {
    uv_run(&loop, UV_RUN_NOWAIT);
    pthread_mutex_lock(&h.log.mu);
    int done = h.log.terminal >= N;
    pthread_mutex_unlock(&h.log.mu);
    if (done || tr_mono_ms() >= end) break;
    tr_sleep_ms(1);
  }
  TR_CHK(h.log.terminal == N);
  for (int i = 0; i < N; i++) {
    char types[200];
    tr_log_types(&h.log, ids[i], types, sizeof types);
    TR_CHK(strcmp(types, "submitted started progress succeeded") == 0);
    j = NULL;
    TR_CHK(jobq_wait(q, ids[i], 0, &j) == 0); /* terminal: a poll is fine */
    TR_CHK(jobq_job_state(j) == JOBQ_SUCCEEDED);
    jobq_job_free(j);
  }
  TR_CHK(atomic_load(&h.wrong_thread) == 0);

  *stage = STAGE_CLOSING;
  alarm(5); /* every job is done: a hang here is a bug */
  TR_CHK(jobq_close(q, 1000) == 0);
  alarm(30);
  /* The handles close when the host runs its loop once more. */
  *stage = STAGE_FINAL_UV_RUN;
  alarm(3); /* closing two handles; a hang here is the bug */
  TR_CHK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  TR_CHK(uv_loop_close(&loop) == 0);
  tr_log_free(&h.log);
  *stage = STAGE_DONE;
  return 0;
}

/* Events made just before close are delivered by close itself. */
static int child_host_loop_close_delivers(void *arg) {
  volatile int *stage = arg;
  *stage = STAGE_RUNNING;
  uv_loop_t loop;
  TR_CHK(uv_loop_init(&loop) == 0);
  host h;
  memset(&h, 0, sizeof h);
  tr_log_init(&h.log);
  h.loop_thread = pthread_self();
  jobq_options_t *o = jobq_options_new();
  TR_CHK(jobq_options_set_loop(o, &loop) == 0);
  TR_CHK(jobq_options_set_workers(o, 0) == 0);
  jobq_t *q = NULL;
  TR_CHK(jobq_open(&q, o) == 0);
  jobq_options_free(o);
  TR_CHK(jobq_subscribe(q, host_cb, &h) == 0);
  char id[JOBQ_ID_SIZE];
  TR_CHK(jobq_submit(q, "h", "0", NULL, id) == 0);
  TR_CHK(jobq_cancel(q, id) == 0);
  TR_CHK(h.log.n == 0);
  TR_CHK(jobq_close(q, 0) == 0);
  char types[200];
  tr_log_types(&h.log, id, types, sizeof types);
  TR_CHK(strcmp(types, "submitted cancelled") == 0);
  *stage = STAGE_FINAL_UV_RUN;
  alarm(3); /* closing two handles; a hang here is the bug */
  TR_CHK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  TR_CHK(uv_loop_close(&loop) == 0);
  tr_log_free(&h.log);
  *stage = STAGE_DONE;
  return 0;
}

/* The host runs its loop once (the maintenance timer fires at once and
 * queues a pass on libuv's thread pool) and then closes the queue on its loop
 * thread. The host's own pool work keeps every pool thread busy until close
 * returns, so the pass has not even started: close must not wait for it
 * (cancel it) - a host's pool may be busy for any length of time, and a
 * pass that needs the loop to complete can never complete while close
 * blocks the loop. */
static atomic_int blockers_go;

static void block_work(uv_work_t *w) {
  (void)w;
  tr_wait_flag(&blockers_go, TR_GUARD_MS);
}

static void block_after(uv_work_t *w, int status) {
  (void)w;
  (void)status;
}

static int child_host_close_with_pool_busy(void *arg) {
  volatile int *stage = arg;
  *stage = STAGE_RUNNING;
  int nthr = 4; /* libuv's default pool */
  const char *env = getenv("UV_THREADPOOL_SIZE");
  if (env && atoi(env) > 0) nthr = atoi(env);
  if (nthr > 1024) nthr = 1024;
  uv_loop_t loop;
  TR_CHK(uv_loop_init(&loop) == 0);
  uv_work_t *blk = calloc((size_t)nthr, sizeof *blk);
  TR_CHK(blk != NULL);
  atomic_store(&blockers_go, 0);
  for (int i = 0; i < nthr; i++) TR_CHK(uv_queue_work(&loop, &blk[i], block_work, block_after) == 0);
  jobq_options_t *o = jobq_options_new();
  TR_CHK(jobq_options_set_loop(o, &loop) == 0);
  TR_CHK(jobq_options_set_workers(o, 0) == 0);
  jobq_t *q = NULL;
  TR_CHK(jobq_open(&q, o) == 0);
  jobq_options_free(o);
  char id[JOBQ_ID_SIZE];
  TR_CHK(jobq_submit(q, "h", "0", NULL, id) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  *stage = STAGE_CLOSING;
  alarm(3); /* a close of an idle queue; a hang here is the bug */
  TR_CHK(jobq_close(q, 0) == 0);
  alarm(30);
  atomic_store(&blockers_go, 1);
  *stage = STAGE_FINAL_UV_RUN;
  TR_CHK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  TR_CHK(uv_loop_close(&loop) == 0);
  free(blk);
  *stage = STAGE_DONE;
  return 0;
}

static void test_host_loop_close_while_pool_busy(void **state) {
  (void)state;
  volatile int *stage = tr_shared_int();
  char why[200];
  int rc = tr_fork_run(child_host_close_with_pool_busy, (void *)stage, 30, why, sizeof why);
  int st = *stage;
  munmap((void *)stage, sizeof(int));
  if (rc != 0 && st == STAGE_CLOSING)
    fail_msg("BUG: %s in jobq_close on the host's loop thread: close waits for a maintenance "
             "pass queued on libuv's pool (q->maint.busy) that cannot start while the pool is "
             "busy, or cannot complete while the loop is blocked (lib/core/queue.c jobq_close; "
             "cancel a pass that has not started with uv_cancel)",
             why);
  if (rc != 0) fail_msg("scenario failed (stage %d): %s", st, why);
  assert_int_equal(st, STAGE_DONE);
}

static void run_host_child(tr_child_fn fn) {
  volatile int *stage = tr_shared_int();
  char why[200];
  int rc = tr_fork_run(fn, (void *)stage, 30, why, sizeof why);
  int st = *stage;
  munmap((void *)stage, sizeof(int));
  if (rc != 0 && st == STAGE_FINAL_UV_RUN)
    fail_msg("BUG: %s in the host's uv_run() after jobq_close: a handle's close callback used "
             "the freed queue (lib/core/queue.c on_handle_closed: libuv runs close callbacks "
             "last-closed-first, so the async handle's callback frees q before the timer's)",
             why);
  if (rc != 0 && st == STAGE_CLOSING)
    fail_msg("BUG: %s in jobq_close on the host's loop thread (see "
             "test_host_loop_close_while_pool_busy: close waits for q->maint.busy)",
             why);
  if (rc != 0) fail_msg("host loop scenario failed (stage %d): %s", st, why);
  assert_int_equal(st, STAGE_DONE);
}

static void test_host_loop(void **state) {
  (void)state;
  run_host_child(child_host_loop);
}

static void test_host_loop_close_delivers_pending_events(void **state) {
  (void)state;
  run_host_child(child_host_loop_close_delivers);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    /* First: the forked ones want a process without other threads. */
    cmocka_unit_test(test_host_loop),
    cmocka_unit_test(test_host_loop_close_delivers_pending_events),
    cmocka_unit_test(test_host_loop_close_while_pool_busy),
    cmocka_unit_test(test_blocked_claim_returns_closed),
    cmocka_unit_test(test_drain_waits_for_handler),
    cmocka_unit_test(test_drain_without_limit),
    cmocka_unit_test(test_drain_deadline_releases_job),
    cmocka_unit_test(test_claimed_ctx_finished_after_close),
    cmocka_unit_test(test_claimed_ctx_finished_during_drain),
    cmocka_unit_test(test_blocked_wait_and_next_event_return_closed),
    cmocka_unit_test(test_close_delivers_events_queued_while_loop_busy),
    cmocka_unit_test(test_close_while_claim_is_in_storage),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
