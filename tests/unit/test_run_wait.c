/* jobq_wait: the long poll. To know that a waiter is really blocked before
 * the change it waits for is made (rather than sleeping and hoping), the
 * tests look at the queue's waiter list through core/internal.h. */
#include "testutil_run.h"

#include "core/internal.h"

#define T0 INT64_C(1700000000000)

/* Waiters blocked on id right now. */
static int waiters_on(jobq_t *q, const char *id) {
  int n = 0;
  uv_mutex_lock(&q->mu);
  for (waiter *w = jobq__map_get(&q->waiters, id); w; w = w->next) n++;
  uv_mutex_unlock(&q->mu);
  return n;
}

static int wait_for_waiters(jobq_t *q, const char *id, int n) {
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (waiters_on(q, id) < n) {
    if (tr_mono_ms() >= end) return 0;
    tr_sleep_ms(1);
  }
  return 1;
}

typedef struct waitarg {
  jobq_t *q;
  char id[JOBQ_ID_SIZE];
  int timeout;
  int rc;
  jobq_job_t *job;
  atomic_int done;
  pthread_t t;
} waitarg;

static void *wait_main(void *arg) {
  waitarg *w = arg;
  w->rc = jobq_wait(w->q, w->id, w->timeout, &w->job);
  atomic_store(&w->done, 1);
  return NULL;
}

static void start_wait(waitarg *w, jobq_t *q, const char *id, int timeout) {
  memset(w, 0, sizeof *w);
  w->q = q;
  memcpy(w->id, id, JOBQ_ID_SIZE);
  w->timeout = timeout;
  w->rc = -99;
  w->job = (jobq_job_t *)(uintptr_t)1; /* untouched on errors */
  pthread_create(&w->t, NULL, wait_main, w);
}

typedef struct wfx {
  tr_clock clock;
  jobq_t *q;
} wfx;

static int wfx_setup(void **state) {
  wfx *f = calloc(1, sizeof *f);
  tr_clock_set(&f->clock, T0);
  tr_open_args a = {.workers = 0, .clock = &f->clock};
  f->q = tr_open(&a);
  *state = f;
  return 0;
}

static int wfx_teardown(void **state) {
  wfx *f = *state;
  if (f->q) assert_int_equal(jobq_close(f->q, 0), 0);
  free(f);
  return 0;
}

static void test_wait_returns_at_progress(void **state) {
  wfx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  waitarg w;
  start_wait(&w, f->q, id, TR_GUARD_MS);
  assert_true(wait_for_waiters(f->q, id, 1));
  assert_int_equal(atomic_load(&w.done), 0);
  assert_int_equal(jobq_ctx_progress(ctx, 42, "half way"), 0);
  pthread_join(w.t, NULL);
  assert_int_equal(w.rc, 0);
  assert_string_equal(jobq_job_id(w.job), id);
  assert_int_equal(jobq_job_state(w.job), JOBQ_RUNNING);
  assert_int_equal(jobq_job_progress(w.job), 42);
  assert_string_equal(jobq_job_step(w.job), "half way");
  jobq_job_free(w.job);
  assert_int_equal(waiters_on(f->q, id), 0);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
}

static void test_wait_returns_at_start_and_at_finish(void **state) {
  wfx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, id);
  waitarg w;
  start_wait(&w, f->q, id, -1);
  assert_true(wait_for_waiters(f->q, id, 1));
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  pthread_join(w.t, NULL);
  assert_int_equal(w.rc, 0);
  assert_int_equal(jobq_job_state(w.job), JOBQ_RUNNING);
  assert_int_equal(jobq_job_attempts(w.job), 1);
  jobq_job_free(w.job);

  start_wait(&w, f->q, id, -1);
  assert_true(wait_for_waiters(f->q, id, 1));
  tr_clock_set(&f->clock, T0 + 8);
  assert_int_equal(jobq_ctx_succeed(ctx, "\"r\""), 0);
  pthread_join(w.t, NULL);
  assert_int_equal(w.rc, 0);
  assert_int_equal(jobq_job_state(w.job), JOBQ_SUCCEEDED);
  assert_string_equal(jobq_job_result(w.job), "\"r\"");
  assert_int_equal(jobq_job_finished_at(w.job), T0 + 8);
  jobq_job_free(w.job);
}

static void test_wait_returns_at_cancel(void **state) {
  wfx *f = *state;
  char queued[JOBQ_ID_SIZE], running[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, running);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  tr_submit(f->q, "w", "0", NULL, queued);
  waitarg w1, w2;
  start_wait(&w1, f->q, queued, TR_GUARD_MS);
  start_wait(&w2, f->q, running, TR_GUARD_MS);
  assert_true(wait_for_waiters(f->q, queued, 1));
  assert_true(wait_for_waiters(f->q, running, 1));
  assert_int_equal(jobq_cancel(f->q, queued), 0);
  pthread_join(w1.t, NULL);
  assert_int_equal(w1.rc, 0);
  assert_int_equal(jobq_job_state(w1.job), JOBQ_CANCELLED);
  jobq_job_free(w1.job);
  /* Flagging a running job is a change as well. */
  assert_int_equal(jobq_cancel(f->q, running), 0);
  pthread_join(w2.t, NULL);
  assert_int_equal(w2.rc, 0);
  assert_int_equal(jobq_job_state(w2.job), JOBQ_RUNNING);
  assert_int_equal(jobq_job_cancel_requested(w2.job), 1);
  jobq_job_free(w2.job);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
}

static void test_wait_on_terminal_returns_at_once(void **state) {
  wfx *f = *state;
  char ids[3][JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) tr_submit(f->q, "w", "0", NULL, ids[i]);
  assert_int_equal(jobq_ctx_succeed(tr_claim(f->q, NULL), "7"), 0);
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, NULL), "no", 0), 0);
  assert_int_equal(jobq_cancel(f->q, ids[2]), 0);
  static const int states[] = {JOBQ_SUCCEEDED, JOBQ_FAILED, JOBQ_CANCELLED};
  for (int i = 0; i < 3; i++) {
    /* Were it to block, these would return JOBQ_ETIMEDOUT after 10 s (or
     * never, with -1). */
    jobq_job_t *j = NULL;
    assert_int_equal(jobq_wait(f->q, ids[i], TR_GUARD_MS, &j), 0);
    assert_int_equal(jobq_job_state(j), states[i]);
    jobq_job_free(j);
    j = NULL;
    assert_int_equal(jobq_wait(f->q, ids[i], 0, &j), 0);
    assert_int_equal(jobq_job_state(j), states[i]);
    jobq_job_free(j);
    assert_int_equal(waiters_on(f->q, ids[i]), 0);
  }
  /* -1 in a thread, with the join bounded by its done flag. */
  waitarg w;
  start_wait(&w, f->q, ids[0], -1);
  assert_true(tr_wait_flag(&w.done, TR_GUARD_MS));
  pthread_join(w.t, NULL);
  assert_int_equal(w.rc, 0);
  assert_string_equal(jobq_job_result(w.job), "7");
  jobq_job_free(w.job);
}

static void test_wait_timeout_gives_fresh_snapshot(void **state) {
  wfx *f = *state;
  char id[JOBQ_ID_SIZE], later[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, id);
  jobq_job_t *j = (jobq_job_t *)(uintptr_t)1;
  assert_int_equal(jobq_wait(f->q, id, 20, &j), JOBQ_ETIMEDOUT);
  assert_non_null(strstr(jobq_last_error(), "jobq_wait"));
  assert_ptr_not_equal(j, (jobq_job_t *)(uintptr_t)1);
  assert_string_equal(jobq_job_id(j), id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_position(j), 0);
  jobq_job_free(j);
  assert_int_equal(waiters_on(f->q, id), 0);

  /* A higher-priority job that comes due by the clock moves this one back,
   * without a change to this job itself: the snapshot shows it. */
  jobq_submit_opts_t *so = tr_prio(9);
  assert_int_equal(jobq_submit_opts_set_delay(so, 100), 0);
  tr_submit(f->q, "w", "0", so, later);
  jobq_submit_opts_free(so);
  j = NULL;
  assert_int_equal(jobq_wait(f->q, id, 0, &j), JOBQ_ETIMEDOUT);
  assert_int_equal(jobq_job_position(j), 0);
  jobq_job_free(j);
  tr_clock_set(&f->clock, T0 + 100);
  j = NULL;
  assert_int_equal(jobq_wait(f->q, id, 20, &j), JOBQ_ETIMEDOUT);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_position(j), 1);
  jobq_job_free(j);
}

static void test_wait_bad_ids_and_args(void **state) {
  wfx *f = *state;
  jobq_job_t *j = (jobq_job_t *)(uintptr_t)1;
  assert_int_equal(jobq_wait(f->q, "01890000-0000-7000-8000-000000000000", 20, &j),
                   JOBQ_ENOTFOUND);
  assert_ptr_equal(j, (jobq_job_t *)(uintptr_t)1);
  assert_int_equal(jobq_wait(f->q, "01890000-0000-7000-8000-000000000000", -1, &j),
                   JOBQ_ENOTFOUND);
  assert_int_equal(jobq_wait(f->q, "short", 20, &j), JOBQ_ENOTFOUND);
  assert_int_equal(jobq_wait(f->q, "", 20, &j), JOBQ_EINVAL);
  assert_int_equal(jobq_wait(f->q, NULL, 20, &j), JOBQ_EINVAL);
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, id);
  assert_int_equal(jobq_wait(f->q, id, 20, NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_wait(NULL, id, 20, &j), JOBQ_EINVAL);
  assert_ptr_equal(j, (jobq_job_t *)(uintptr_t)1);
  uv_mutex_lock(&f->q->mu);
  size_t nw = f->q->waiters.count;
  uv_mutex_unlock(&f->q->mu);
  assert_int_equal(nw, 0);
}

/* Several waiters on one job; one of them times out from the middle of the
 * list; the change wakes the rest. */
static void test_many_waiters_one_times_out(void **state) {
  wfx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  waitarg a, b, c;
  start_wait(&a, f->q, id, TR_GUARD_MS);
  assert_true(wait_for_waiters(f->q, id, 1));
  /* b normally sits between a and c when its timeout removes it; were the
   * machine so slow that b timed out first, the test still holds. */
  start_wait(&b, f->q, id, 300);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (waiters_on(f->q, id) < 2 && !atomic_load(&b.done) && tr_mono_ms() < end) tr_sleep_ms(1);
  start_wait(&c, f->q, id, TR_GUARD_MS);
  pthread_join(b.t, NULL);
  assert_int_equal(b.rc, JOBQ_ETIMEDOUT);
  assert_int_equal(jobq_job_state(b.job), JOBQ_RUNNING);
  jobq_job_free(b.job);
  assert_true(wait_for_waiters(f->q, id, 2));
  assert_int_equal(atomic_load(&a.done), 0);
  assert_int_equal(atomic_load(&c.done), 0);
  assert_int_equal(jobq_ctx_progress(ctx, 5, NULL), 0);
  pthread_join(a.t, NULL);
  pthread_join(c.t, NULL);
  assert_int_equal(a.rc, 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(jobq_job_progress(a.job), 5);
  assert_int_equal(jobq_job_progress(c.job), 5);
  jobq_job_free(a.job);
  jobq_job_free(c.job);
  assert_int_equal(waiters_on(f->q, id), 0);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
}

/* Waiters on different jobs are woken only by their own job's change. */
static void test_waiters_on_other_jobs_sleep_on(void **state) {
  wfx *f = *state;
  char id1[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, id1);
  tr_submit(f->q, "w", "0", NULL, id2);
  waitarg w2;
  start_wait(&w2, f->q, id2, TR_GUARD_MS);
  assert_true(wait_for_waiters(f->q, id2, 1));
  assert_int_equal(jobq_cancel(f->q, id1), 0);
  /* id2's waiter is still there after id1 changed. */
  assert_int_equal(waiters_on(f->q, id2), 1);
  assert_int_equal(atomic_load(&w2.done), 0);
  assert_int_equal(jobq_cancel(f->q, id2), 0);
  pthread_join(w2.t, NULL);
  assert_int_equal(w2.rc, 0);
  assert_int_equal(jobq_job_state(w2.job), JOBQ_CANCELLED);
  jobq_job_free(w2.job);
}

/* A waiter blocked while another thread closes the queue: JOBQ_ECLOSED, and
 * the queue is freed only after it left (ASan checks the rest). */
static void test_wait_blocked_during_close(void **state) {
  wfx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "w", "0", NULL, id);
  waitarg w1, w2;
  start_wait(&w1, f->q, id, -1);
  start_wait(&w2, f->q, id, TR_GUARD_MS);
  assert_true(wait_for_waiters(f->q, id, 2));
  assert_int_equal(jobq_close(f->q, 0), 0);
  f->q = NULL;
  pthread_join(w1.t, NULL);
  pthread_join(w2.t, NULL);
  assert_int_equal(w1.rc, JOBQ_ECLOSED);
  assert_int_equal(w2.rc, JOBQ_ECLOSED);
  assert_ptr_equal(w1.job, (jobq_job_t *)(uintptr_t)1);
  assert_ptr_equal(w2.job, (jobq_job_t *)(uintptr_t)1);
}

/* The same with worker threads running the job's neighbours. */
static void busy_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_progress(ctx, 10, NULL);
  jobq_ctx_succeed(ctx, NULL);
}

static void test_wait_with_workers_until_done(void **state) {
  (void)state;
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "busy", busy_handler, NULL, NULL);
  assert_int_equal(jobq_start(q), 0);
  enum { N = 50 };
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) tr_submit(q, "busy", "0", NULL, ids[i]);
  for (int i = N - 1; i >= 0; i--) {
    jobq_job_t *j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    jobq_job_free(j);
  }
  uv_mutex_lock(&q->mu);
  size_t nw = q->waiters.count;
  uv_mutex_unlock(&q->mu);
  assert_int_equal(nw, 0);
  assert_int_equal(jobq_close(q, 1000), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_wait_returns_at_progress, wfx_setup, wfx_teardown),
    cmocka_unit_test_setup_teardown(test_wait_returns_at_start_and_at_finish, wfx_setup,
                                    wfx_teardown),
    cmocka_unit_test_setup_teardown(test_wait_returns_at_cancel, wfx_setup, wfx_teardown),
    cmocka_unit_test_setup_teardown(test_wait_on_terminal_returns_at_once, wfx_setup,
                                    wfx_teardown),
    cmocka_unit_test_setup_teardown(test_wait_timeout_gives_fresh_snapshot, wfx_setup,
                                    wfx_teardown),
    cmocka_unit_test_setup_teardown(test_wait_bad_ids_and_args, wfx_setup, wfx_teardown),
    cmocka_unit_test_setup_teardown(test_many_waiters_one_times_out, wfx_setup, wfx_teardown),
    cmocka_unit_test_setup_teardown(test_waiters_on_other_jobs_sleep_on, wfx_setup,
                                    wfx_teardown),
    cmocka_unit_test_setup_teardown(test_wait_blocked_during_close, wfx_setup, wfx_teardown),
    cmocka_unit_test(test_wait_with_workers_until_done),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
