/* jobq_shutdown + jobq_destroy: jobq_close in two steps. After shutdown the
 * handle stays valid: every call on it, from any thread, fails with
 * JOBQ_ECLOSED and a sentence and writes nothing; calls blocked in a wait,
 * an event pull or a claim return JOBQ_ECLOSED; jobq_destroy frees it (under
 * ASan: no use after free, no leak), also while another thread's call is
 * still on its way out. On sqlite: a running job is released into the file
 * by the shutdown. */
#include "testutil_run.h"

#include "core/internal.h" /* to see that a waiter is really inside jobq_wait */

#include <sqlite3.h>

static const char *const K_A[] = {"a", NULL};

static void assert_err(int rc, int want, const char *needle) {
  if (rc != want)
    fail_msg("returned %s, not %s (%s)", jobq_err_name(rc), jobq_err_name(want), jobq_last_error());
  if (strstr(jobq_last_error(), needle) == NULL)
    fail_msg("jobq_last_error() = \"%s\" does not contain \"%s\"", jobq_last_error(), needle);
}

static void noop_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
}

static void noop_event(const jobq_event_t *ev, void *ud) {
  (void)ev;
  (void)ud;
}

/* Every call on a shut-down queue: JOBQ_ECLOSED, a sentence naming the
 * function, and output untouched. */
static void test_calls_after_shutdown(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "{}", NULL, id);
  assert_int_equal(jobq_shutdown(q, 0), 0);

  char out[64];
  memset(out, 'x', sizeof out);
  assert_err(jobq_submit(q, "a", "{}", NULL, out), JOBQ_ECLOSED, "closing");
  assert_err(jobq_submit_ex(q, "a", "{}", NULL, out, sizeof out), JOBQ_ECLOSED, "closing");
  const char *kinds[] = {"a"}, *pl[] = {"{}"};
  int dup = 99;
  assert_err(jobq_submit_many(q, 1, kinds, pl, NULL, out, &dup), JOBQ_ECLOSED, "closing");
  assert_int_equal(dup, 99);
  for (size_t i = 0; i < sizeof out; i++) assert_int_equal(out[i], 'x');

  jobq_job_t *job = (jobq_job_t *)(uintptr_t)1;
  assert_err(jobq_get(q, id, &job), JOBQ_ECLOSED, "jobq_get");
  assert_ptr_equal(job, (jobq_job_t *)(uintptr_t)1);
  assert_err(jobq_wait(q, id, 1000, &job), JOBQ_ECLOSED, "jobq_wait");
  assert_ptr_equal(job, (jobq_job_t *)(uintptr_t)1);
  jobq_page_t *page = (jobq_page_t *)(uintptr_t)1;
  assert_err(jobq_list(q, NULL, &page), JOBQ_ECLOSED, "jobq_list");
  assert_ptr_equal(page, (jobq_page_t *)(uintptr_t)1);
  assert_err(jobq_cancel(q, id), JOBQ_ECLOSED, "jobq_cancel");
  size_t pruned = 99;
  assert_err(jobq_prune(q, 0, &pruned), JOBQ_ECLOSED, "closing");
  assert_int_equal(pruned, 0); /* documented: always written, how many are gone */
  jobq_event_t *ev = (jobq_event_t *)(uintptr_t)1;
  assert_err(jobq_next_event(q, 1000, &ev), JOBQ_ECLOSED, "jobq_next_event");
  assert_ptr_equal(ev, (jobq_event_t *)(uintptr_t)1);
  jobq_ctx_t *ctx = (jobq_ctx_t *)(uintptr_t)1;
  assert_err(jobq_claim(q, K_A, 1000, &ctx), JOBQ_ECLOSED, "jobq_claim");
  assert_ptr_equal(ctx, (jobq_ctx_t *)(uintptr_t)1);
  size_t n = 99;
  assert_err(jobq_claim_many(q, K_A, 4, 1000, &ctx, &n), JOBQ_ECLOSED, "jobq_claim_many");
  assert_int_equal(n, 99);
  assert_err(jobq_register(q, "b", noop_handler, NULL, NULL), JOBQ_ECLOSED, "closing");
  assert_err(jobq_start(q), JOBQ_ECLOSED, "jobq_start");
  assert_err(jobq_subscribe(q, noop_event, NULL), JOBQ_ECLOSED, "closing");
  assert_err(jobq_health(q), JOBQ_ECLOSED, "clos");
  jobq_stats_t *st = (jobq_stats_t *)(uintptr_t)1;
  assert_err(jobq_stats(q, &st), JOBQ_ECLOSED, "clos");
  assert_ptr_equal(st, (jobq_stats_t *)(uintptr_t)1);
  assert_err(jobq_cron_add(q, "n", "* * * * *", NULL, "a", "{}", NULL), JOBQ_ECLOSED, "clos");
  int fd = -5;
  assert_err(jobq_poll_fd(q, &fd), JOBQ_ECLOSED, "jobq_poll_fd");
  assert_int_equal(fd, -5);
  assert_err(jobq_shutdown(q, 0), JOBQ_ECLOSED, "jobq_shutdown: already closing");
  assert_err(jobq_close(q, 0), JOBQ_ECLOSED, "jobq_close: already closing");
  jobq_destroy(q);
  jobq_destroy(NULL);
}

/* Calls blocked in a wait, an event pull and a claim on other threads all
 * return JOBQ_ECLOSED when the queue shuts down; their threads then see it
 * again on a new call; destroy comes after. */
typedef struct blocked {
  jobq_t *q;
  const char *id;
  atomic_int rc_wait, rc_event, rc_claim, rc_after;
} blocked;

static void *wait_main(void *p) {
  blocked *b = p;
  jobq_job_t *j = NULL;
  int rc = jobq_wait(b->q, b->id, -1, &j);
  if (j) jobq_job_free(j);
  atomic_store(&b->rc_wait, rc);
  return NULL;
}

static void *event_main(void *p) {
  blocked *b = p;
  jobq_event_t *ev = NULL;
  int rc;
  /* the queue's own events first (the submit's), then a block */
  while ((rc = jobq_next_event(b->q, -1, &ev)) == 0) jobq_event_free(ev);
  atomic_store(&b->rc_event, rc);
  return NULL;
}

static void *claim_main(void *p) {
  blocked *b = p;
  static const char *const none[] = {"nobody-submits-this", NULL};
  jobq_ctx_t *ctx;
  atomic_store(&b->rc_claim, jobq_claim(b->q, none, -1, &ctx));
  atomic_store(&b->rc_after, jobq_submit(b->q, "a", "{}", NULL, (char[JOBQ_ID_SIZE]){0}));
  return NULL;
}

static void test_blocked_calls_return_closed(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0, .event_buffer = 16};
  jobq_t *q = tr_open(&a);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "never", "{}", NULL, id);
  blocked b = {.q = q, .id = id, .rc_wait = 1, .rc_event = 1, .rc_claim = 1, .rc_after = 1};
  pthread_t t[3];
  pthread_create(&t[0], NULL, wait_main, &b);
  pthread_create(&t[1], NULL, event_main, &b);
  pthread_create(&t[2], NULL, claim_main, &b);
  /* Let them block (if one has not yet, it meets the closed queue instead:
   * the same answer). */
  tr_sleep_ms(50);
  assert_int_equal(jobq_shutdown(q, 0), 0);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&b.rc_wait), JOBQ_ECLOSED);
  assert_int_equal(atomic_load(&b.rc_event), JOBQ_ECLOSED);
  assert_int_equal(atomic_load(&b.rc_claim), JOBQ_ECLOSED);
  assert_int_equal(atomic_load(&b.rc_after), JOBQ_ECLOSED);
  jobq_destroy(q);
}

/* jobq_destroy straight on an open queue while another thread is blocked in
 * jobq_wait: the destroy shuts down, the waiter returns JOBQ_ECLOSED and
 * the memory goes with the last of the two (ASan and TSan check the
 * order). */
static void test_destroy_with_a_waiter(void **state) {
  (void)state;
  for (int round = 0; round < 20; round++) {
    tr_open_args a = {.workers = 0};
    jobq_t *q = tr_open(&a);
    char id[JOBQ_ID_SIZE];
    tr_submit(q, "never", "{}", NULL, id);
    blocked b = {.q = q, .id = id, .rc_wait = 1};
    pthread_t t;
    pthread_create(&t, NULL, wait_main, &b);
    /* The contract: no call may START after jobq_destroy; one already
     * inside may still be there. So wait until the waiter is inside. */
    int in = 0;
    for (int i = 0; i < TR_GUARD_MS && !in; i++) {
      uv_mutex_lock(&q->mu);
      in = q->waiters.count > 0;
      uv_mutex_unlock(&q->mu);
      if (!in) tr_sleep_ms(1);
    }
    assert_true(in);
    if (round % 2) tr_sleep_ms(2);
    jobq_destroy(q);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&b.rc_wait), JOBQ_ECLOSED);
  }
}

/* On sqlite:, jobq_destroy of an open queue whose handler is running
 * releases the job back to queued in the file (drain 0), like
 * jobq_close(q, 0): nothing is stranded until its lease runs out. */
static atomic_int handler_in;
static atomic_int handler_go;

static void slow_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  atomic_store(&handler_in, 1);
  while (!atomic_load(&handler_go)) tr_sleep_ms(1);
  jobq_ctx_succeed(ctx, NULL);
}

static void destroy_main(void *q) { jobq_destroy(q); }

static void test_destroy_releases_running_sqlite(void **state) {
  (void)state;
  char dir[] = "/tmp/jobq-shutdown-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char url[128], path[96];
  snprintf(path, sizeof path, "%s/q.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", path);
  tr_open_args a = {.workers = 1, .storage = url};
  jobq_t *q = tr_open(&a);
  tr_register(q, "slow", slow_handler, NULL, NULL);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "slow", "{}", NULL, id);
  assert_true(tr_wait_flag(&handler_in, TR_GUARD_MS));
  /* Destroy with drain 0 releases the job at once; the handler, let go a
   * moment later, finishes after the release and its late succeed is
   * refused (or, on a slow machine, it may beat the release). */
  tr_racer r;
  tr_racer_start(&r, destroy_main, q);
  tr_sleep_ms(20);
  atomic_store(&handler_go, 1);
  tr_racer_join(&r);

  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT state FROM jobq_jobs WHERE id = ?", -1, &s, NULL),
                   SQLITE_OK);
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  int st = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  /* queued again (released), or succeeded if the handler beat the release */
  if (st != JOBQ_QUEUED && st != JOBQ_SUCCEEDED) fail_msg("state %d after destroy", st);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* A handler (on a worker thread) cannot shut its own queue down with a drain
 * that waits for itself... but a subscriber on the loop thread is refused
 * outright: EDEADLK, and jobq_destroy there leaves q alone. */
static atomic_int loop_rc;
static void shutdown_from_loop(const jobq_event_t *ev, void *ud) {
  (void)ev;
  jobq_t *q = ud;
  if (atomic_load(&loop_rc) == 1) {
    atomic_store(&loop_rc, jobq_shutdown(q, 0));
    jobq_destroy(q); /* refused too: nothing happens */
  }
}

static void test_loop_thread_refused(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  atomic_store(&loop_rc, 1);
  assert_int_equal(jobq_subscribe(q, shutdown_from_loop, q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "{}", NULL, id);
  for (int i = 0; i < 1000 && atomic_load(&loop_rc) == 1; i++) tr_sleep_ms(5);
  assert_int_equal(atomic_load(&loop_rc), JOBQ_EDEADLK);
  /* still open and working */
  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
}

int main(void) {
  tr_filter_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_calls_after_shutdown),
      cmocka_unit_test(test_blocked_calls_return_closed),
      cmocka_unit_test(test_destroy_with_a_waiter),
      cmocka_unit_test(test_destroy_releases_running_sqlite),
      cmocka_unit_test(test_loop_thread_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
