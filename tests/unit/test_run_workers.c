/* The worker pool: synchronous handlers, asynchronous handlers finished from
 * other threads, on-loop handlers, and per-kind concurrency limits. */
#include "testutil_run.h"

static int payload_index(const char *payload) {
  const char *p = strstr(payload, "\"i\":");
  return p ? atoi(p + 4) : -1;
}

/* ---- synchronous handlers ---- */

enum { NSYNC = 200 };

typedef struct pool {
  atomic_int calls[NSYNC];
  atomic_int total;
  pthread_mutex_t mu;
  pthread_t threads[64];
  int n_threads;
  int bad_attempt;
} pool;

static void pool_handler(jobq_ctx_t *ctx, void *ud) {
  pool *p = ud;
  int i = payload_index(jobq_ctx_payload(ctx));
  if (i >= 0 && i < NSYNC) atomic_fetch_add(&p->calls[i], 1);
  atomic_fetch_add(&p->total, 1);
  pthread_mutex_lock(&p->mu);
  int known = 0;
  for (int k = 0; k < p->n_threads; k++) known |= pthread_equal(p->threads[k], pthread_self());
  if (!known && p->n_threads < 64) p->threads[p->n_threads++] = pthread_self();
  if (jobq_ctx_attempt(ctx) != 1) p->bad_attempt = 1;
  pthread_mutex_unlock(&p->mu);
  jobq_ctx_progress(ctx, 50, "half");
  char res[64];
  snprintf(res, sizeof res, "{\"r\":%d}", i * 2);
  jobq_ctx_succeed(ctx, res);
}

static void test_pool_runs_every_job_once(void **state) {
  (void)state;
  pool *p = calloc(1, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  tr_open_args a = {.workers = 4};
  jobq_t *q = tr_open(&a);
  tr_register(q, "work", pool_handler, p, NULL);
  assert_int_equal(jobq_start(q), 0);
  assert_int_equal(jobq_start(q), JOBQ_ESTATE);
  assert_int_equal(jobq_register(q, "late", pool_handler, p, NULL), JOBQ_ESTATE);

  static char ids[NSYNC][JOBQ_ID_SIZE];
  for (int i = 0; i < NSYNC; i++) {
    char payload[32];
    snprintf(payload, sizeof payload, "{\"i\":%d}", i);
    tr_submit(q, "work", payload, NULL, ids[i]);
  }
  for (int i = 0; i < NSYNC; i++) {
    jobq_job_t *j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    assert_int_equal(jobq_job_attempts(j), 1);
    assert_int_equal(jobq_job_progress(j), 100);
    assert_string_equal(jobq_job_step(j), "half");
    char res[64];
    snprintf(res, sizeof res, "{\"r\":%d}", i * 2);
    assert_string_equal(jobq_job_result(j), res);
    jobq_job_free(j);
  }
  assert_int_equal(jobq_close(q, 1000), 0);
  for (int i = 0; i < NSYNC; i++) assert_int_equal(atomic_load(&p->calls[i]), 1);
  assert_int_equal(atomic_load(&p->total), NSYNC);
  assert_int_equal(p->bad_attempt, 0);
  /* Handlers ran on the pool's threads, never on this one, and on at most 4. */
  assert_true(p->n_threads >= 1 && p->n_threads <= 4);
  for (int k = 0; k < p->n_threads; k++) assert_false(pthread_equal(p->threads[k], pthread_self()));
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* Workers run registered kinds only; other kinds wait for jobq_claim. */
static void test_workers_leave_unregistered_kinds(void **state) {
  (void)state;
  pool *p = calloc(1, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "work", pool_handler, p, NULL);
  assert_int_equal(jobq_start(q), 0);
  char other[JOBQ_ID_SIZE], mine[JOBQ_ID_SIZE];
  jobq_submit_opts_t *hi = tr_prio(1000);
  tr_submit(q, "elsewhere", "{\"i\":0}", hi, other);
  jobq_submit_opts_free(hi);
  tr_submit(q, "work", "{\"i\":1}", NULL, mine);
  jobq_job_t *j = tr_wait_terminal(q, mine, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  assert_int_equal(tr_state(q, other), JOBQ_QUEUED);
  static const char *const K[] = {"elsewhere", NULL};
  jobq_ctx_t *ctx = tr_claim(q, K);
  assert_string_equal(jobq_ctx_id(ctx), other);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  assert_int_equal(jobq_close(q, 1000), 0);
  assert_int_equal(atomic_load(&p->calls[0]), 0);
  assert_int_equal(atomic_load(&p->calls[1]), 1);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* ---- asynchronous handlers: return first, finish later from a thread ---- */

enum { NASYNC = 40 };

typedef struct async_fx {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  jobq_ctx_t *pending[NASYNC * 4];
  int head, tail;
  int stop;
  atomic_int returned[NASYNC];    /* the handler of job i returned */
  atomic_int calls[NASYNC];
  int finish_rc[NASYNC];
  int progress_rc[NASYNC];
  int not_returned_yet[NASYNC];   /* the helper found the handler still running */
  pthread_t handler_thread[NASYNC];
  pthread_t finisher;
} async_fx;

static void async_handler(jobq_ctx_t *ctx, void *ud) {
  async_fx *a = ud;
  int i = payload_index(jobq_ctx_payload(ctx));
  atomic_fetch_add(&a->calls[i], 1);
  a->handler_thread[i] = pthread_self();
  pthread_mutex_lock(&a->mu);
  a->pending[a->tail++ % (NASYNC * 4)] = ctx;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  atomic_store(&a->returned[i], 1); /* returns without finishing */
}

static void *finisher_main(void *arg) {
  async_fx *a = arg;
  for (;;) {
    pthread_mutex_lock(&a->mu);
    while (a->head == a->tail && !a->stop) pthread_cond_wait(&a->cv, &a->mu);
    if (a->head == a->tail) {
      pthread_mutex_unlock(&a->mu);
      return NULL;
    }
    jobq_ctx_t *ctx = a->pending[a->head++ % (NASYNC * 4)];
    pthread_mutex_unlock(&a->mu);
    int i = payload_index(jobq_ctx_payload(ctx));
    /* Finish only after the handler has returned: proves "later". */
    if (!tr_wait_flag(&a->returned[i], TR_GUARD_MS)) a->not_returned_yet[i] = 1;
    a->progress_rc[i] = jobq_ctx_progress(ctx, 70, "async");
    if (i % 2 == 0) {
      char res[32];
      snprintf(res, sizeof res, "%d", i);
      a->finish_rc[i] = jobq_ctx_succeed(ctx, res);
    } else {
      a->finish_rc[i] = jobq_ctx_fail(ctx, "async failure", 0);
    }
  }
}

static void test_async_handlers_finish_from_other_thread(void **state) {
  (void)state;
  async_fx *a = calloc(1, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  pthread_create(&a->finisher, NULL, finisher_main, a);
  tr_open_args oa = {.workers = 2};
  jobq_t *q = tr_open(&oa);
  tr_register(q, "async", async_handler, a, NULL);
  assert_int_equal(jobq_start(q), 0);
  char ids[NASYNC][JOBQ_ID_SIZE];
  for (int i = 0; i < NASYNC; i++) {
    char payload[32];
    snprintf(payload, sizeof payload, "{\"i\":%d}", i);
    tr_submit(q, "async", payload, NULL, ids[i]);
  }
  for (int i = 0; i < NASYNC; i++) {
    jobq_job_t *j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_attempts(j), 1);
    if (i % 2 == 0) {
      char res[32];
      snprintf(res, sizeof res, "%d", i);
      assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
      assert_string_equal(jobq_job_result(j), res);
    } else {
      assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
      assert_string_equal(jobq_job_error(j), "async failure");
      assert_string_equal(jobq_job_attempt_error(j, 0), "async failure");
    }
    jobq_job_free(j);
  }
  pthread_mutex_lock(&a->mu);
  a->stop = 1;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  pthread_join(a->finisher, NULL);
  assert_int_equal(jobq_close(q, 1000), 0);
  for (int i = 0; i < NASYNC; i++) {
    assert_int_equal(atomic_load(&a->calls[i]), 1);
    assert_int_equal(a->not_returned_yet[i], 0);
    assert_int_equal(a->finish_rc[i], 0);
    assert_int_equal(a->progress_rc[i], 0);
    assert_false(pthread_equal(a->handler_thread[i], a->finisher));
    assert_false(pthread_equal(a->handler_thread[i], pthread_self()));
  }
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cv);
  free(a);
}

/* An asynchronous attempt that is still open when close drains is finished
 * within the drain. */
static void test_async_attempt_finished_during_drain(void **state) {
  (void)state;
  async_fx *a = calloc(1, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  tr_open_args oa = {.workers = 1};
  jobq_t *q = tr_open(&oa);
  tr_register(q, "async", async_handler, a, NULL);
  tr_log log;
  tr_log_init(&log);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &log), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "async", "{\"i\":0}", NULL, id);
  assert_true(tr_wait_flag(&a->returned[0], TR_GUARD_MS));
  /* The handler returned; the attempt is open. The finisher starts now and
   * finishes it while close drains. */
  pthread_create(&a->finisher, NULL, finisher_main, a);
  assert_int_equal(jobq_close(q, 20000), 0);
  pthread_mutex_lock(&a->mu);
  a->stop = 1;
  pthread_cond_signal(&a->cv);
  pthread_mutex_unlock(&a->mu);
  pthread_join(a->finisher, NULL);
  assert_int_equal(a->finish_rc[0], 0);
  char types[200];
  tr_log_types(&log, id, types, sizeof types);
  assert_string_equal(types, "submitted started progress succeeded");
  tr_log_free(&log);
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cv);
  free(a);
}

/* ---- on-loop handlers ---- */

enum { NLOOP = 30 };

typedef struct loop_fx {
  async_fx a;               /* the helper that finishes */
  jobq_t *q;
  pthread_mutex_t mu;
  pthread_t handler_threads[NLOOP];
  int n;
  int wait_rc[NLOOP];
  pthread_t sub_thread;
  atomic_int sub_seen;
} loop_fx;

static void loop_handler(jobq_ctx_t *ctx, void *ud) {
  loop_fx *l = ud;
  int i = payload_index(jobq_ctx_payload(ctx));
  pthread_mutex_lock(&l->mu);
  if (l->n < NLOOP) l->handler_threads[l->n++] = pthread_self();
  pthread_mutex_unlock(&l->mu);
  /* On the loop thread a blocking wait is refused. */
  jobq_job_t *j = NULL;
  l->wait_rc[i] = jobq_wait(l->q, jobq_ctx_id(ctx), 1000, &j);
  if (j) jobq_job_free(j);
  async_handler(ctx, &l->a);
}

static void loop_sub(const jobq_event_t *ev, void *ud) {
  (void)ev;
  loop_fx *l = ud;
  if (atomic_fetch_add(&l->sub_seen, 1) == 0) l->sub_thread = pthread_self();
}

static void test_on_loop_handlers_run_on_the_loop_thread(void **state) {
  (void)state;
  loop_fx *l = calloc(1, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
  pthread_mutex_init(&l->a.mu, NULL);
  pthread_cond_init(&l->a.cv, NULL);
  pthread_create(&l->a.finisher, NULL, finisher_main, &l->a);
  tr_open_args oa = {.workers = 3};
  jobq_t *q = tr_open(&oa);
  l->q = q;
  tr_register(q, "onloop", loop_handler, l, tr_kind_opts(0, 3, 0, 0, 0, 0, 1));
  assert_int_equal(jobq_subscribe(q, loop_sub, l), 0);
  assert_int_equal(jobq_start(q), 0);
  char ids[NLOOP][JOBQ_ID_SIZE];
  for (int i = 0; i < NLOOP; i++) {
    char payload[32];
    snprintf(payload, sizeof payload, "{\"i\":%d}", i);
    tr_submit(q, "onloop", payload, NULL, ids[i]);
  }
  for (int i = 0; i < NLOOP; i++) {
    jobq_job_t *j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), i % 2 == 0 ? JOBQ_SUCCEEDED : JOBQ_FAILED);
    assert_int_equal(jobq_job_attempts(j), 1);
    jobq_job_free(j);
  }
  pthread_mutex_lock(&l->a.mu);
  l->a.stop = 1;
  pthread_cond_signal(&l->a.cv);
  pthread_mutex_unlock(&l->a.mu);
  pthread_join(l->a.finisher, NULL);
  assert_int_equal(jobq_close(q, 1000), 0);

  assert_int_equal(l->n, NLOOP);
  assert_true(atomic_load(&l->sub_seen) > 0);
  for (int i = 0; i < NLOOP; i++) {
    /* One thread for all, the loop thread (where subscribers run), neither
     * this thread nor the helper that finished the jobs. */
    assert_true(pthread_equal(l->handler_threads[i], l->handler_threads[0]));
    assert_true(pthread_equal(l->handler_threads[i], l->sub_thread));
    assert_false(pthread_equal(l->handler_threads[i], pthread_self()));
    assert_false(pthread_equal(l->handler_threads[i], l->a.finisher));
    assert_int_equal(l->wait_rc[i], JOBQ_EDEADLK);
    assert_int_equal(l->a.finish_rc[i], 0);
    assert_int_equal(atomic_load(&l->a.calls[i]), 1);
  }
  pthread_mutex_destroy(&l->mu);
  pthread_mutex_destroy(&l->a.mu);
  pthread_cond_destroy(&l->a.cv);
  free(l);
}

/* ---- concurrency limit with many workers ---- */

enum { NLIM = 24 };

typedef struct lim_fx {
  atomic_int active;
  atomic_int max_active;
  atomic_int started;
  atomic_int done;
  int limit;
  atomic_int rendezvous_failed;
} lim_fx;

static void lim_handler(jobq_ctx_t *ctx, void *ud) {
  lim_fx *l = ud;
  int now = atomic_fetch_add(&l->active, 1) + 1;
  int m = atomic_load(&l->max_active);
  while (now > m && !atomic_compare_exchange_weak(&l->max_active, &m, now)) {
  }
  int order = atomic_fetch_add(&l->started, 1);
  if (order < l->limit) {
    /* The first ones wait for each other, so the limit is reached for sure. */
    uint64_t end = tr_mono_ms() + TR_GUARD_MS;
    while (atomic_load(&l->active) < l->limit && tr_mono_ms() < end) tr_sleep_ms(1);
    if (atomic_load(&l->active) < l->limit) atomic_store(&l->rendezvous_failed, 1);
  }
  tr_sleep_ms(3); /* a window in which an excess worker would show up */
  atomic_fetch_sub(&l->active, 1);
  atomic_fetch_add(&l->done, 1);
  jobq_ctx_succeed(ctx, NULL);
}

static void run_limit(int limit, int workers) {
  lim_fx l;
  memset(&l, 0, sizeof l);
  l.limit = limit;
  tr_open_args oa = {.workers = workers};
  jobq_t *q = tr_open(&oa);
  tr_register(q, "lim", lim_handler, &l, tr_kind_opts(limit, 3, 0, 0, 0, 0, 0));
  assert_int_equal(jobq_start(q), 0);
  char ids[NLIM][JOBQ_ID_SIZE];
  for (int i = 0; i < NLIM; i++) tr_submit(q, "lim", "0", NULL, ids[i]);
  for (int i = 0; i < NLIM; i++) {
    jobq_job_t *j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    jobq_job_free(j);
  }
  assert_int_equal(jobq_close(q, 1000), 0);
  assert_int_equal(atomic_load(&l.done), NLIM);
  assert_int_equal(atomic_load(&l.rendezvous_failed), 0);
  assert_int_equal(atomic_load(&l.max_active), limit);
}

static void test_concurrency_limit_2_with_8_workers(void **state) {
  (void)state;
  run_limit(2, 8);
}

static void test_concurrency_limit_1_with_4_workers(void **state) {
  (void)state;
  run_limit(1, 4);
}

/* Workers and a host's jobq_claim share one kind's limit. */
static void test_concurrency_limit_shared_with_claim(void **state) {
  (void)state;
  static const char *const K[] = {"lim", NULL};
  lim_fx l;
  memset(&l, 0, sizeof l);
  l.limit = 0; /* no rendezvous */
  tr_open_args oa = {.workers = 4};
  jobq_t *q = tr_open(&oa);
  tr_register(q, "lim", lim_handler, &l, tr_kind_opts(1, 3, 0, 0, 0, 0, 0));
  /* Claim before the workers start: the host holds the only slot. */
  char first[JOBQ_ID_SIZE], ids[6][JOBQ_ID_SIZE];
  tr_submit(q, "lim", "0", NULL, first);
  jobq_ctx_t *held = tr_claim(q, K);
  for (int i = 0; i < 6; i++) tr_submit(q, "lim", "0", NULL, ids[i]);
  assert_int_equal(jobq_start(q), 0);
  /* No worker may start one while the host holds the slot; wait on a job's
   * state with a bounded jobq_wait: it must stay queued. */
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_wait(q, ids[0], 30, &j), JOBQ_ETIMEDOUT);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  jobq_job_free(j);
  assert_int_equal(atomic_load(&l.started), 0);
  assert_int_equal(jobq_ctx_succeed(held, NULL), 0);
  for (int i = 0; i < 6; i++) {
    j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    jobq_job_free(j);
  }
  assert_int_equal(jobq_close(q, 1000), 0);
  assert_int_equal(atomic_load(&l.max_active), 1);
  assert_int_equal(atomic_load(&l.done), 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pool_runs_every_job_once),
    cmocka_unit_test(test_workers_leave_unregistered_kinds),
    cmocka_unit_test(test_async_handlers_finish_from_other_thread),
    cmocka_unit_test(test_async_attempt_finished_during_drain),
    cmocka_unit_test(test_on_loop_handlers_run_on_the_loop_thread),
    cmocka_unit_test(test_concurrency_limit_2_with_8_workers),
    cmocka_unit_test(test_concurrency_limit_1_with_4_workers),
    cmocka_unit_test(test_concurrency_limit_shared_with_claim),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
