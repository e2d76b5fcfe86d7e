/* Attempt timeouts (kind option timeout_ms). Timers run on real time here:
 * the timeouts are 50 ms and every wait is bounded generously; nothing
 * asserts that anything was fast. The handlers block until they are told to
 * stop (jobq_ctx_cancelled() == 1), so a timeout is the only way out. */
#include "testutil_run.h"

#define TMO 50

typedef struct slow {
  atomic_int calls;
  atomic_int returned;
  int attempts_seen[8];
  int cancelled_seen[8];
  int late_succeed[8];
  int late_fail[8];
  int late_progress[8];
  char late_err[8][200];
} slow;

/* Blocks until the attempt is stopped (bounded), then tries to finish. */
static void slow_handler(jobq_ctx_t *ctx, void *ud) {
  slow *s = ud;
  int i = atomic_fetch_add(&s->calls, 1);
  if (i > 7) i = 7;
  s->attempts_seen[i] = jobq_ctx_attempt(ctx);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (!jobq_ctx_cancelled(ctx) && tr_mono_ms() < end) tr_sleep_ms(1);
  s->cancelled_seen[i] = jobq_ctx_cancelled(ctx);
  s->late_progress[i] = jobq_ctx_progress(ctx, 99, "late");
  s->late_succeed[i] = jobq_ctx_succeed(ctx, "\"late\"");
  snprintf(s->late_err[i], sizeof s->late_err[i], "%s", jobq_last_error());
  s->late_fail[i] = jobq_ctx_fail(ctx, "late", 0);
  atomic_fetch_add(&s->returned, 1);
}

static void test_timeout_retries_job(void **state) {
  (void)state;
  slow s;
  memset(&s, 0, sizeof s);
  tr_open_args a = {.workers = 1};
  jobq_t *q = tr_open(&a);
  /* A long jitter-free backoff keeps the retried job queued, so its state can
   * be read without racing a second attempt. */
  tr_register(q, "slow", slow_handler, &s, tr_kind_opts(0, 3, 60000, 60000, 0.0, TMO, 0));
  assert_int_equal(jobq_start(q), 0);
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(q, 0, &ev), JOBQ_ETIMEDOUT); /* start buffering */

  char id[JOBQ_ID_SIZE];
  tr_submit(q, "slow", "0", NULL, id);
  jobq_job_t *j = tr_wait_state(q, id, JOBQ_QUEUED, 1, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_non_null(jobq_job_error(j));
  assert_non_null(strstr(jobq_job_error(j), "timed out"));
  assert_non_null(jobq_job_attempt_error(j, 0));
  assert_non_null(strstr(jobq_job_attempt_error(j, 0), "timed out"));
  assert_true(jobq_job_attempt_finished_at(j, 0) >= jobq_job_attempt_started_at(j, 0) + TMO);
  assert_int_equal(jobq_job_run_at(j), jobq_job_attempt_finished_at(j, 0) + 60000);
  assert_int_equal(jobq_job_cancel_requested(j), 0);
  assert_null(jobq_job_result(j));
  jobq_job_free(j);

  assert_true(tr_wait_count(&s.returned, 1, TR_GUARD_MS));
  assert_int_equal(s.attempts_seen[0], 1);
  assert_int_equal(s.cancelled_seen[0], 1);
  assert_int_equal(s.late_progress[0], JOBQ_ESTATE);
  assert_int_equal(s.late_succeed[0], JOBQ_ESTATE);
  assert_non_null(strstr(s.late_err[0], "timed out"));
  /* The handler's ctx is spent: a fail is refused as well. */
  assert_int_equal(s.late_fail[0], JOBQ_ESTATE);

  /* The job still looks the same after the handler's late calls. */
  j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_null(jobq_job_result(j));
  jobq_job_free(j);

  /* Events: submitted, started, retrying (with the timeout as the error). */
  tr_log log;
  tr_log_init(&log);
  tr_pull_all(q, &log);
  char types[200];
  tr_log_types(&log, id, types, sizeof types);
  assert_string_equal(types, "submitted started retrying");
  assert_int_equal(log.v[2].state, JOBQ_QUEUED);
  assert_int_equal(log.v[2].attempt, 1);
  assert_non_null(strstr(log.v[2].error, "timed out"));
  tr_log_free(&log);

  assert_int_equal(jobq_close(q, 0), 0);
  assert_int_equal(atomic_load(&s.calls), 1);
}

static void test_timeout_spends_attempts_then_fails(void **state) {
  (void)state;
  slow s;
  memset(&s, 0, sizeof s);
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "slow", slow_handler, &s, tr_kind_opts(0, 2, 0, 0, 0.0, TMO, 0));
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "slow", "{}", NULL, id);
  jobq_job_t *j = tr_wait_terminal(q, id, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 2);
  assert_non_null(strstr(jobq_job_error(j), "timed out"));
  for (int i = 0; i < 2; i++) {
    assert_non_null(jobq_job_attempt_error(j, i));
    assert_non_null(strstr(jobq_job_attempt_error(j, i), "timed out"));
  }
  assert_true(jobq_job_finished_at(j) > 0);
  jobq_job_free(j);
  assert_true(tr_wait_count(&s.returned, 2, TR_GUARD_MS));
  for (int i = 0; i < 2; i++) {
    assert_int_equal(s.cancelled_seen[i], 1);
    assert_int_equal(s.late_succeed[i], JOBQ_ESTATE);
    assert_int_equal(s.late_progress[i], JOBQ_ESTATE);
  }
  /* Attempts 1 and 2, in either handler slot order. */
  assert_int_equal(s.attempts_seen[0] + s.attempts_seen[1], 3);
  assert_int_equal(jobq_close(q, 0), 0);
  assert_int_equal(atomic_load(&s.calls), 2);
}

/* The same for a ctx from jobq_claim: the host sees jobq_ctx_cancelled(). */
static void test_timeout_applies_to_claimed_ctx(void **state) {
  (void)state;
  static const char *const K[] = {"slow", NULL};
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  tr_register(q, "slow", tr_never_handler, NULL, tr_kind_opts(0, 1, 0, 0, 0.0, TMO, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "slow", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(q, K);
  assert_int_equal(jobq_ctx_cancelled(ctx), 0);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (!jobq_ctx_cancelled(ctx) && tr_mono_ms() < end) tr_sleep_ms(1);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  /* max_attempts 1: the timeout fails the job for good. */
  jobq_job_t *j = tr_wait_terminal(q, id, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_non_null(strstr(jobq_job_error(j), "timed out"));
  assert_int_equal(jobq_job_cancel_requested(j), 0);
  jobq_job_free(j);
  assert_int_equal(jobq_ctx_progress(ctx, 1, NULL), JOBQ_ESTATE);
  assert_int_equal(jobq_ctx_succeed(ctx, "1"), JOBQ_ESTATE); /* frees ctx */
  j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_null(jobq_job_result(j));
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* A job whose cancel was requested and whose attempt then times out ends
 * cancelled, not retried: the cancel request wins over the retry. */
static void test_timeout_of_cancel_requested_job_ends_cancelled(void **state) {
  (void)state;
  static const char *const K[] = {"slow", NULL};
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  tr_register(q, "slow", tr_never_handler, NULL, tr_kind_opts(0, 3, 0, 0, 0.0, TMO, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "slow", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(q, K);
  assert_int_equal(jobq_cancel(q, id), 0);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  /* The host ignores the cancel; the timeout ends the attempt. */
  jobq_job_t *j = tr_wait_terminal(q, id, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  assert_int_equal(jobq_job_attempts(j), 1);
  jobq_job_free(j);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), JOBQ_ESTATE);
  tr_claim_none(q, NULL);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* Attempts that end in time are not touched by their (spent) timer. */
static void quick_handler(jobq_ctx_t *ctx, void *ud) {
  atomic_fetch_add((atomic_int *)ud, 1);
  jobq_ctx_succeed(ctx, "\"quick\"");
}

static void test_attempt_within_timeout_succeeds(void **state) {
  (void)state;
  atomic_int calls = 0;
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "quick", quick_handler, &calls, tr_kind_opts(0, 3, 0, 0, 0.0, 60000, 0));
  assert_int_equal(jobq_start(q), 0);
  char ids[20][JOBQ_ID_SIZE];
  for (int i = 0; i < 20; i++) tr_submit(q, "quick", "0", NULL, ids[i]);
  for (int i = 0; i < 20; i++) {
    jobq_job_t *j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    assert_int_equal(jobq_job_attempts(j), 1);
    assert_string_equal(jobq_job_result(j), "\"quick\"");
    jobq_job_free(j);
  }
  assert_int_equal(atomic_load(&calls), 20);
  assert_int_equal(jobq_close(q, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_timeout_retries_job),
    cmocka_unit_test(test_timeout_spends_attempts_then_fails),
    cmocka_unit_test(test_timeout_applies_to_claimed_ctx),
    cmocka_unit_test(test_timeout_of_cancel_requested_job_ends_cancelled),
    cmocka_unit_test(test_attempt_within_timeout_succeeds),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
