/* jobq_poll_fd + jobq_poll_ack: the descriptor an event loop watches. It is
 * readable at once, empty after an ack, and readable again for each kind of
 * news: a submit (a claimable job), an event in the pull buffer, a delayed
 * job come due, another queue's commit on the same SQLite file, shutdown.
 * No wake-up is lost: a poll loop (ack, then drain) takes 20,000 jobs that
 * another thread submits one by one, never waiting on anything but the
 * descriptor. Bad input is refused with a sentence and writes nothing. */
#include "testutil_run.h"

#include <poll.h>

static const char *const K_A[] = {"a", NULL};

static void assert_err(int rc, int want, const char *needle) {
  if (rc != want)
    fail_msg("returned %s, not %s (%s)", jobq_err_name(rc), jobq_err_name(want), jobq_last_error());
  if (strstr(jobq_last_error(), needle) == NULL)
    fail_msg("jobq_last_error() = \"%s\" does not contain \"%s\"", jobq_last_error(), needle);
}

/* 1 if fd is readable within ms. */
static int readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n;
  while ((n = poll(&p, 1, ms)) < 0) {
  }
  return n == 1 && (p.revents & POLLIN);
}

static int poll_fd_of(jobq_t *q) {
  int fd = -1;
  int rc = jobq_poll_fd(q, &fd);
  if (rc) fail_msg("jobq_poll_fd: %s (%s)", jobq_err_name(rc), jobq_last_error());
  assert_true(fd >= 0);
  return fd;
}

static void test_bad_input(void **state) {
  (void)state;
  int fd = -5;
  assert_err(jobq_poll_fd(NULL, &fd), JOBQ_EINVAL, "jobq_poll_fd: q is NULL");
  assert_int_equal(fd, -5);
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  assert_err(jobq_poll_fd(q, NULL), JOBQ_EINVAL, "jobq_poll_fd: out_fd is NULL");
  assert_err(jobq_poll_ack(NULL), JOBQ_EINVAL, "jobq_poll_ack: q is NULL");
  assert_err(jobq_poll_ack(q), JOBQ_EINVAL, "jobq_poll_ack: no poll fd (call jobq_poll_fd first)");
  /* the same descriptor every call */
  int f1 = poll_fd_of(q), f2 = poll_fd_of(q);
  assert_int_equal(f1, f2);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* Readable at first; an ack empties it; a submit makes it readable, and
 * the job is there to claim; an ack then leaves it quiet while nothing
 * happens. */
static void test_submit_wakes(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  int fd = poll_fd_of(q);
  assert_true(readable(fd, 0));
  assert_int_equal(jobq_poll_ack(q), 0);
  assert_false(readable(fd, 0));
  assert_int_equal(jobq_poll_ack(q), 0); /* an ack of nothing is fine */
  assert_false(readable(fd, 0));

  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "{}", NULL, id);
  assert_true(readable(fd, 0));
  /* several signals before an ack: still one readiness, one ack clears it */
  tr_submit(q, "a", "{}", NULL, id);
  assert_int_equal(jobq_poll_ack(q), 0);
  assert_false(readable(fd, 0));
  jobq_ctx_t *v[4];
  size_t n = 0;
  assert_int_equal(jobq_claim_many(q, K_A, 4, 0, v, &n), 0);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* With the pull buffer on, an event makes it readable: the finish of a
 * claimed job, read with jobq_next_event(q, 0). */
static void test_event_wakes(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0, .event_buffer = 64};
  jobq_t *q = tr_open(&a);
  int fd = poll_fd_of(q);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "{}", NULL, id);
  jobq_ctx_t *ctx = tr_claim(q, K_A);
  jobq_event_t *ev;
  assert_int_equal(jobq_poll_ack(q), 0);
  while (jobq_next_event(q, 0, &ev) == 0) jobq_event_free(ev); /* submitted, started */
  assert_false(readable(fd, 0));
  assert_int_equal(jobq_ctx_succeed(ctx, "7"), 0);
  assert_true(readable(fd, TR_GUARD_MS));
  assert_int_equal(jobq_poll_ack(q), 0);
  int got = 0;
  for (int i = 0; i < 100 && !got; i++) {
    if (jobq_next_event(q, 0, &ev) != 0) {
      assert_true(readable(fd, TR_GUARD_MS)); /* the finish is stored on the loop */
      assert_int_equal(jobq_poll_ack(q), 0);
      continue;
    }
    if (jobq_event_type(ev) == JOBQ_EVENT_SUCCEEDED) {
      assert_string_equal(jobq_event_job_id(ev), id);
      assert_string_equal(jobq_event_result(ev), "7");
      got = 1;
    }
    jobq_event_free(ev);
  }
  assert_true(got);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* A delayed job: quiet after the submit's ack, readable when it comes due
 * (the loop's timer), and then claimable. */
static void test_delay_due_wakes(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  int fd = poll_fd_of(q);
  jobq_submit_opts_t *o = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_delay(o, 100), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "{}", o, id);
  jobq_submit_opts_free(o);
  assert_int_equal(jobq_poll_ack(q), 0);
  jobq_ctx_t *v[2];
  size_t n = 0;
  /* Not due yet; whatever wakes us before it is, it comes due eventually. */
  for (;;) {
    assert_true(readable(fd, TR_GUARD_MS));
    assert_int_equal(jobq_poll_ack(q), 0);
    if (jobq_claim_many(q, K_A, 2, 0, v, &n) == 0) break;
  }
  assert_int_equal(n, 1);
  assert_string_equal(jobq_ctx_id(v[0]), id);
  assert_int_equal(jobq_ctx_succeed(v[0], NULL), 0);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* Another queue (as another process would) commits to the same file: the
 * storage's watch makes this queue's descriptor readable. */
static void test_other_queue_on_file_wakes(void **state) {
  (void)state;
  char dir[] = "/tmp/jobq-poll-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char url[96];
  snprintf(url, sizeof url, "sqlite:%s/q.db", dir);
  tr_open_args a = {.workers = 0, .storage = url};
  jobq_t *q1 = tr_open(&a);
  jobq_t *q2 = tr_open(&a);
  int fd = poll_fd_of(q1);
  jobq_ctx_t *v[2];
  size_t n = 0;
  assert_int_equal(jobq_poll_ack(q1), 0);
  assert_int_equal(jobq_claim_many(q1, K_A, 2, 0, v, &n), JOBQ_ETIMEDOUT);
  char id[JOBQ_ID_SIZE];
  tr_submit(q2, "a", "{}", NULL, id);
  for (;;) {
    assert_true(readable(fd, TR_GUARD_MS));
    assert_int_equal(jobq_poll_ack(q1), 0);
    if (jobq_claim_many(q1, K_A, 2, 0, v, &n) == 0) break;
  }
  assert_int_equal(n, 1);
  assert_string_equal(jobq_ctx_id(v[0]), id);
  assert_int_equal(jobq_ctx_succeed(v[0], NULL), 0);
  assert_int_equal(jobq_close(q2, 0), 0);
  assert_int_equal(jobq_close(q1, 0), 0);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* No lost wake-up: one thread submits 20,000 jobs one at a time while this
 * one only ever sleeps in poll(), acks, and drains with claims of 0 ms. A
 * lost wake-up would leave jobs queued and poll() asleep: the guard (10 s
 * with no readiness while jobs remain) fails the test. */
#define N_RACE 20000

static void *submitter_main(void *p) {
  jobq_t *q = p;
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < N_RACE; i++)
    if (jobq_submit(q, "a", "{}", NULL, id) != 0) abort();
  return NULL;
}

static void race(const char *url) {
  tr_open_args a = {.workers = 0, .storage = url};
  jobq_t *q = tr_open(&a);
  int fd = poll_fd_of(q);
  pthread_t t;
  pthread_create(&t, NULL, submitter_main, q);
  int done = 0;
  jobq_ctx_t *v[256];
  while (done < N_RACE) {
    if (!readable(fd, TR_GUARD_MS)) fail_msg("asleep with %d of %d jobs taken", done, N_RACE);
    assert_int_equal(jobq_poll_ack(q), 0);
    size_t n;
    while (jobq_claim_many(q, K_A, 256, 0, v, &n) == 0) {
      for (size_t i = 0; i < n; i++) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
      done += (int)n;
    }
  }
  pthread_join(t, NULL);
  assert_int_equal(done, N_RACE);
  assert_int_equal(jobq_close(q, 1000), 0);
}

static void test_no_lost_wakeup_memory(void **state) {
  (void)state;
  race("memory:");
}

static void test_no_lost_wakeup_sqlite(void **state) {
  (void)state;
  char dir[] = "/tmp/jobq-poll-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char url[96];
  snprintf(url, sizeof url, "sqlite:%s/q.db", dir);
  race(url);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* Shutdown makes it readable and keeps it so; the ack says JOBQ_ECLOSED;
 * the descriptor stays open until jobq_destroy. */
static void test_shutdown_wakes(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  int fd = poll_fd_of(q);
  assert_int_equal(jobq_poll_ack(q), 0);
  assert_false(readable(fd, 0));
  assert_int_equal(jobq_shutdown(q, 0), 0);
  assert_true(readable(fd, 0));
  assert_err(jobq_poll_ack(q), JOBQ_ECLOSED, "jobq_poll_ack: the queue is closing");
  assert_true(readable(fd, 0));
  jobq_destroy(q);
}

int main(void) {
  tr_filter_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_submit_wakes),
      cmocka_unit_test(test_event_wakes),
      cmocka_unit_test(test_delay_due_wakes),
      cmocka_unit_test(test_other_queue_on_file_wakes),
      cmocka_unit_test(test_no_lost_wakeup_memory),
      cmocka_unit_test(test_no_lost_wakeup_sqlite),
      cmocka_unit_test(test_shutdown_wakes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
