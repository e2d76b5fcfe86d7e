/* Job state transitions, driven through jobq_claim with a fake clock (no
 * worker threads), so that every time the library records can be checked
 * exactly. The few checks that need a handler's ctx after its finish use one
 * worker thread (a jobq_claim ctx is freed by its succeed/fail). */
#include "testutil_run.h"

#define T0 INT64_C(1700000000000)

static const char *const K_A[] = {"a", NULL};
static const char *const K_B[] = {"b", NULL};
static const char *const K_AB[] = {"a", "b", NULL};

typedef struct fx {
  tr_clock clock;
  jobq_t *q;
} fx;

static int fx_setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  tr_clock_set(&f->clock, T0);
  tr_open_args a = {.workers = 0, .clock = &f->clock};
  f->q = tr_open(&a);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx *f = *state;
  if (f->q) assert_int_equal(jobq_close(f->q, 0), 0);
  free(f);
  return 0;
}

/* Registers kind with jitter-free backoff so retry times are exact. */
static void reg_exact(jobq_t *q, const char *kind, int max_attempts, int64_t base, int64_t max) {
  tr_register(q, kind, tr_never_handler, NULL, tr_kind_opts(0, max_attempts, base, max, 0.0, 0, 0));
}

/* ---- succeed ---- */

static void test_queued_running_succeeded(void **state) {
  fx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "{\"x\":1}", NULL, id);

  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 0);
  assert_int_equal(jobq_job_created_at(j), T0);
  assert_int_equal(jobq_job_run_at(j), T0);
  assert_int_equal(jobq_job_started_at(j), 0);
  assert_int_equal(jobq_job_finished_at(j), 0);
  assert_int_equal(jobq_job_position(j), 0);
  assert_null(jobq_job_result(j));
  jobq_job_free(j);

  tr_clock_set(&f->clock, T0 + 10);
  jobq_ctx_t *ctx = tr_claim(f->q, K_A);
  assert_string_equal(jobq_ctx_id(ctx), id);
  assert_string_equal(jobq_ctx_kind(ctx), "a");
  assert_string_equal(jobq_ctx_payload(ctx), "{\"x\":1}");
  assert_int_equal(jobq_ctx_attempt(ctx), 1);
  assert_int_equal(jobq_ctx_cancelled(ctx), 0);

  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(jobq_job_started_at(j), T0 + 10);
  assert_int_equal(jobq_job_finished_at(j), 0);
  assert_int_equal(jobq_job_position(j), -1);
  assert_int_equal(jobq_job_attempt_started_at(j, 0), T0 + 10);
  assert_int_equal(jobq_job_attempt_finished_at(j, 0), 0);
  jobq_job_free(j);
  /* Nothing else to claim while it runs. */
  tr_claim_none(f->q, NULL);

  tr_clock_set(&f->clock, T0 + 25);
  assert_int_equal(jobq_ctx_succeed(ctx, "{\"answer\":42}"), 0);

  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_string_equal(jobq_job_result(j), "{\"answer\":42}");
  assert_int_equal(jobq_job_progress(j), 100);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(jobq_job_started_at(j), T0 + 10);
  assert_int_equal(jobq_job_finished_at(j), T0 + 25);
  assert_null(jobq_job_error(j));
  assert_int_equal(jobq_job_attempt_started_at(j, 0), T0 + 10);
  assert_int_equal(jobq_job_attempt_finished_at(j, 0), T0 + 25);
  assert_null(jobq_job_attempt_error(j, 0));
  assert_int_equal(jobq_job_position(j), -1);
  jobq_job_free(j);
  tr_claim_none(f->q, NULL);
}

static void test_succeed_null_result_is_json_null(void **state) {
  fx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", NULL, NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_string_equal(jobq_ctx_payload(ctx), "null");
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_string_equal(jobq_job_result(j), "null");
  jobq_job_free(j);
}

/* ---- fail ---- */

static void test_fail_not_retryable_fails_at_once(void **state) {
  fx *f = *state;
  reg_exact(f->q, "a", 3, 1000, 300000);
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "1", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, K_A);
  tr_clock_set(&f->clock, T0 + 7);
  assert_int_equal(jobq_ctx_fail(ctx, "disk on fire", 0), 0);

  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(jobq_job_max_attempts(j), 3);
  assert_string_equal(jobq_job_error(j), "disk on fire");
  assert_string_equal(jobq_job_attempt_error(j, 0), "disk on fire");
  assert_int_equal(jobq_job_attempt_finished_at(j, 0), T0 + 7);
  assert_int_equal(jobq_job_finished_at(j), T0 + 7);
  assert_null(jobq_job_result(j));
  jobq_job_free(j);
  /* Failed for good: not claimable, at any time. */
  tr_clock_set(&f->clock, T0 + 100000000);
  tr_claim_none(f->q, NULL);
}

static void test_fail_empty_message_and_bad_retryable(void **state) {
  fx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "1", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_int_equal(jobq_ctx_fail(ctx, "x", 2), JOBQ_EINVAL);
  assert_int_equal(jobq_ctx_fail(ctx, "x", -1), JOBQ_EINVAL);
  assert_int_equal(tr_state(f->q, id), JOBQ_RUNNING); /* still open */
  assert_int_equal(jobq_ctx_fail(ctx, NULL, 0), 0);
  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_string_equal(jobq_job_error(j), "failed");
  jobq_job_free(j);
}

static void test_fail_retryable_requeues_at_exact_backoff(void **state) {
  fx *f = *state;
  reg_exact(f->q, "a", 3, 1000, 300000);
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "{\"n\":1}", NULL, id);

  tr_clock_set(&f->clock, T0 + 5);
  jobq_ctx_t *ctx = tr_claim(f->q, K_A);
  assert_int_equal(jobq_ctx_attempt(ctx), 1);
  tr_clock_set(&f->clock, T0 + 50);
  assert_int_equal(jobq_ctx_fail(ctx, "try again", 1), 0);

  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(jobq_job_run_at(j), T0 + 50 + 1000);
  assert_string_equal(jobq_job_error(j), "try again");
  assert_string_equal(jobq_job_attempt_error(j, 0), "try again");
  assert_int_equal(jobq_job_attempt_started_at(j, 0), T0 + 5);
  assert_int_equal(jobq_job_attempt_finished_at(j, 0), T0 + 50);
  assert_int_equal(jobq_job_finished_at(j), 0);
  assert_int_equal(jobq_job_position(j), -1); /* not waiting yet: delayed */
  jobq_job_free(j);

  /* Not due one millisecond before run_at, by any claim. */
  tr_clock_set(&f->clock, T0 + 50 + 999);
  tr_claim_none(f->q, K_A);
  tr_claim_none(f->q, NULL);
  assert_int_equal(tr_state(f->q, id), JOBQ_QUEUED);

  tr_clock_set(&f->clock, T0 + 50 + 1000);
  ctx = tr_claim(f->q, K_A);
  assert_string_equal(jobq_ctx_id(ctx), id);
  assert_int_equal(jobq_ctx_attempt(ctx), 2);
  assert_string_equal(jobq_ctx_payload(ctx), "{\"n\":1}");
  assert_int_equal(jobq_ctx_succeed(ctx, "true"), 0);

  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 2);
  assert_string_equal(jobq_job_attempt_error(j, 0), "try again");
  assert_null(jobq_job_attempt_error(j, 1));
  assert_int_equal(jobq_job_attempt_started_at(j, 1), T0 + 1050);
  assert_int_equal(jobq_job_attempt_finished_at(j, 1), T0 + 1050);
  assert_string_equal(jobq_job_result(j), "true");
  jobq_job_free(j);
}

/* delay = min(max, base * 2^(n-1)); with 5 attempts the job fails after the
 * fifth, each attempt's error kept. */
static void test_backoff_doubles_caps_and_attempts_run_out(void **state) {
  fx *f = *state;
  reg_exact(f->q, "a", 5, 100, 350);
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", NULL, id);
  const int64_t expect[] = {100, 200, 350, 350};
  int64_t now = T0;
  for (int attempt = 1; attempt <= 5; attempt++) {
    jobq_ctx_t *ctx = tr_claim(f->q, K_A);
    assert_int_equal(jobq_ctx_attempt(ctx), attempt);
    char msg[32];
    snprintf(msg, sizeof msg, "error %d", attempt);
    now += 3;
    tr_clock_set(&f->clock, now);
    assert_int_equal(jobq_ctx_fail(ctx, msg, 1), 0);
    jobq_job_t *j = tr_get(f->q, id);
    assert_int_equal(jobq_job_attempts(j), attempt);
    assert_string_equal(jobq_job_error(j), msg);
    if (attempt < 5) {
      assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
      assert_int_equal(jobq_job_run_at(j), now + expect[attempt - 1]);
      tr_clock_set(&f->clock, now + expect[attempt - 1] - 1);
      tr_claim_none(f->q, K_A);
      now += expect[attempt - 1];
      tr_clock_set(&f->clock, now);
    } else {
      assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
      assert_int_equal(jobq_job_finished_at(j), now);
      for (int i = 0; i < 5; i++) {
        snprintf(msg, sizeof msg, "error %d", i + 1);
        assert_non_null(jobq_job_attempt_error(j, i));
        assert_string_equal(jobq_job_attempt_error(j, i), msg);
        assert_true(jobq_job_attempt_finished_at(j, i) > 0);
      }
      assert_null(jobq_job_attempt_error(j, 5));
    }
    jobq_job_free(j);
  }
  tr_clock_add(&f->clock, 1000000);
  tr_claim_none(f->q, NULL);
}

/* delay = d - d * jitter * r, with r from jobq_options_set_random. */
static void test_jitter_math_with_fixed_random(void **state) {
  (void)state;
  tr_clock clock;
  tr_clock_set(&clock, T0);
  double r = 0.3;
  tr_open_args a = {.workers = 0, .clock = &clock, .random = &r};
  jobq_t *q = tr_open(&a);
  tr_register(q, "a", tr_never_handler, NULL, tr_kind_opts(0, 4, 1000, 300000, 0.5, 0, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  /* attempt 1: d = 1000 -> 1000 - 1000*0.5*0.3 = 850 */
  assert_int_equal(jobq_ctx_fail(tr_claim(q, K_A), "e", 1), 0);
  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_run_at(j), T0 + 850);
  jobq_job_free(j);
  tr_clock_set(&clock, T0 + 849);
  tr_claim_none(q, K_A);
  tr_clock_set(&clock, T0 + 850);
  /* attempt 2: d = 2000 -> 2000 - 300 = 1700 */
  assert_int_equal(jobq_ctx_fail(tr_claim(q, K_A), "e", 1), 0);
  j = tr_get(q, id);
  assert_int_equal(jobq_job_run_at(j), T0 + 850 + 1700);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* An unregistered kind retries with the defaults: 3 attempts, base 1000,
 * jitter 0.2. */
static void test_unregistered_kind_uses_default_backoff(void **state) {
  (void)state;
  tr_clock clock;
  tr_clock_set(&clock, T0);
  double r = 0.25;
  tr_open_args a = {.workers = 0, .clock = &clock, .random = &r};
  jobq_t *q = tr_open(&a);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "unreg", "0", NULL, id);
  /* Not registered here: the runner's kind default decides (0 = unknown). */
  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_max_attempts(j), 0);
  jobq_job_free(j);
  /* 1000 - 1000 * 0.2 * 0.25 = 950; then 2000 - 100 = 1900; then failed. */
  assert_int_equal(jobq_ctx_fail(tr_claim(q, NULL), "e1", 1), 0);
  j = tr_get(q, id);
  assert_int_equal(jobq_job_run_at(j), T0 + 950);
  jobq_job_free(j);
  tr_clock_set(&clock, T0 + 950);
  assert_int_equal(jobq_ctx_fail(tr_claim(q, NULL), "e2", 1), 0);
  j = tr_get(q, id);
  assert_int_equal(jobq_job_run_at(j), T0 + 950 + 1900);
  jobq_job_free(j);
  tr_clock_set(&clock, T0 + 950 + 1900);
  assert_int_equal(jobq_ctx_fail(tr_claim(q, NULL), "e3", 1), 0);
  j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 3);
  assert_string_equal(jobq_job_attempt_error(j, 2), "e3");
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* A random source out of [0, 1) counts as 0: the full delay. */
static void test_out_of_range_random_means_no_jitter(void **state) {
  (void)state;
  tr_clock clock;
  tr_clock_set(&clock, T0);
  double r = 1.5;
  tr_open_args a = {.workers = 0, .clock = &clock, .random = &r};
  jobq_t *q = tr_open(&a);
  tr_register(q, "a", tr_never_handler, NULL, tr_kind_opts(0, 3, 400, 1000, 1.0, 0, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  assert_int_equal(jobq_ctx_fail(tr_claim(q, K_A), "e", 1), 0);
  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_run_at(j), T0 + 400);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
}

static void test_submit_max_attempts_overrides_kind(void **state) {
  fx *f = *state;
  reg_exact(f->q, "a", 5, 0, 0);
  reg_exact(f->q, "b", 1, 0, 0);
  jobq_submit_opts_t *so2 = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_max_attempts(so2, 2), 0);
  char ida[JOBQ_ID_SIZE], idb[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", so2, ida);
  jobq_submit_opts_t *so3 = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_max_attempts(so3, 3), 0);
  tr_submit(f->q, "b", "0", so3, idb);
  jobq_submit_opts_free(so2);
  jobq_submit_opts_free(so3);

  jobq_job_t *j = tr_get(f->q, ida);
  assert_int_equal(jobq_job_max_attempts(j), 2);
  jobq_job_free(j);
  j = tr_get(f->q, idb);
  assert_int_equal(jobq_job_max_attempts(j), 3);
  jobq_job_free(j);

  /* a: kind says 5, the job says 2. */
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, K_A), "a1", 1), 0);
  assert_int_equal(tr_state(f->q, ida), JOBQ_QUEUED);
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, K_A), "a2", 1), 0);
  j = tr_get(f->q, ida);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 2);
  jobq_job_free(j);

  /* b: kind says 1, the job says 3. */
  for (int i = 1; i <= 3; i++) {
    jobq_ctx_t *ctx = tr_claim(f->q, K_B);
    assert_int_equal(jobq_ctx_attempt(ctx), i);
    assert_int_equal(jobq_ctx_fail(ctx, "b", 1), 0);
    assert_int_equal(tr_state(f->q, idb), i < 3 ? JOBQ_QUEUED : JOBQ_FAILED);
  }
}

/* ---- order ---- */

static void claim_order(jobq_t *q, const char *const *kinds, char ids[][JOBQ_ID_SIZE],
                        const int *order, int n) {
  for (int i = 0; i < n; i++) {
    jobq_ctx_t *ctx = tr_claim(q, kinds);
    if (strcmp(jobq_ctx_id(ctx), ids[order[i]]) != 0)
      fail_msg("claim %d: got %s, expected job %d (%s)", i, jobq_ctx_id(ctx), order[i],
               ids[order[i]]);
    assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  }
  tr_claim_none(q, kinds);
}

static void test_priority_then_fifo_across_kinds(void **state) {
  fx *f = *state;
  static const struct {
    const char *kind;
    int prio;
  } jobs[] = {{"a", 0}, {"b", 0}, {"a", 5}, {"b", 5}, {"b", -1}, {"a", 0}, {"b", 1000}, {"a", -1000}};
  char ids[8][JOBQ_ID_SIZE];
  for (int i = 0; i < 8; i++) {
    jobq_submit_opts_t *so = tr_prio(jobs[i].prio);
    tr_submit(f->q, jobs[i].kind, "0", so, ids[i]);
    jobq_submit_opts_free(so);
  }
  /* Positions are per kind. */
  jobq_job_t *j = tr_get(f->q, ids[0]);
  assert_int_equal(jobq_job_position(j), 1); /* behind a:5 */
  assert_int_equal(jobq_job_priority(j), 0);
  jobq_job_free(j);
  j = tr_get(f->q, ids[7]);
  assert_int_equal(jobq_job_position(j), 3);
  jobq_job_free(j);

  const int order[] = {6, 2, 3, 0, 1, 5, 4, 7};
  claim_order(f->q, NULL, ids, order, 8);
}

static void test_priority_with_kind_list_and_single_kind(void **state) {
  fx *f = *state;
  static const struct {
    const char *kind;
    int prio;
  } jobs[] = {{"a", 1}, {"b", 2}, {"c", 3}, {"a", 2}, {"b", 1}};
  char ids[5][JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) {
    jobq_submit_opts_t *so = tr_prio(jobs[i].prio);
    tr_submit(f->q, jobs[i].kind, "0", so, ids[i]);
    jobq_submit_opts_free(so);
  }
  const int only_a[] = {3, 0};
  claim_order(f->q, K_A, ids, only_a, 2);
  const int ab[] = {1, 4}; /* c is not asked for */
  claim_order(f->q, K_AB, ids, ab, 2);
  const int rest[] = {2};
  claim_order(f->q, NULL, ids, rest, 1);
}

static void test_fifo_within_priority_many(void **state) {
  fx *f = *state;
  enum { N = 100 };
  char ids[N][JOBQ_ID_SIZE];
  int order[N];
  for (int i = 0; i < N; i++) {
    tr_submit(f->q, (i % 3) ? "a" : "b", "0", NULL, ids[i]);
    order[i] = i;
  }
  claim_order(f->q, NULL, ids, order, N);
}

/* ---- delayed ---- */

static void test_delayed_jobs_wait_until_due(void **state) {
  fx *f = *state;
  jobq_submit_opts_t *d500 = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_delay(d500, 500), 0);
  assert_int_equal(jobq_submit_opts_set_priority(d500, 10), 0);
  jobq_submit_opts_t *at = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_run_at(at, T0 + 300), 0);
  assert_int_equal(jobq_submit_opts_set_priority(at, 20), 0);
  char idd[JOBQ_ID_SIZE], ida[JOBQ_ID_SIZE], idn[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "\"delay\"", d500, idd);
  tr_submit(f->q, "a", "\"at\"", at, ida);
  tr_submit(f->q, "a", "\"now\"", NULL, idn); /* priority 0 */
  jobq_submit_opts_free(d500);
  jobq_submit_opts_free(at);

  jobq_job_t *j = tr_get(f->q, idd);
  assert_int_equal(jobq_job_run_at(j), T0 + 500);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_position(j), -1);
  jobq_job_free(j);
  j = tr_get(f->q, ida);
  assert_int_equal(jobq_job_run_at(j), T0 + 300);
  jobq_job_free(j);

  /* Only the undelayed job, despite its lower priority. */
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), idn);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  tr_claim_none(f->q, NULL);

  tr_clock_set(&f->clock, T0 + 299);
  tr_claim_none(f->q, NULL);
  tr_clock_set(&f->clock, T0 + 499);
  ctx = tr_claim(f->q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), ida);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  tr_claim_none(f->q, K_A);
  j = tr_get(f->q, idd);
  assert_int_equal(jobq_job_position(j), -1);
  jobq_job_free(j);

  tr_clock_set(&f->clock, T0 + 500);
  j = tr_get(f->q, idd);
  assert_int_equal(jobq_job_position(j), 0);
  jobq_job_free(j);
  ctx = tr_claim(f->q, K_A);
  assert_string_equal(jobq_ctx_id(ctx), idd);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
}

/* Once due, a delayed job competes by priority, then FIFO (by submission). */
static void test_due_delayed_jobs_order_by_priority(void **state) {
  fx *f = *state;
  char ids[3][JOBQ_ID_SIZE];
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_delay(so, 100), 0);
  tr_submit(f->q, "a", "0", so, ids[0]);
  assert_int_equal(jobq_submit_opts_set_delay(so, 50), 0);
  assert_int_equal(jobq_submit_opts_set_priority(so, 3), 0);
  tr_submit(f->q, "a", "1", so, ids[1]);
  jobq_submit_opts_free(so);
  tr_submit(f->q, "a", "2", NULL, ids[2]);
  tr_clock_set(&f->clock, T0 + 100);
  const int order[] = {1, 0, 2};
  claim_order(f->q, NULL, ids, order, 3);
}

/* ---- cancel ---- */

static void test_cancel_queued(void **state) {
  fx *f = *state;
  char id[JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", NULL, id);
  tr_submit(f->q, "a", "1", NULL, other);
  tr_clock_set(&f->clock, T0 + 3);
  assert_int_equal(jobq_cancel(f->q, id), 0);
  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  assert_int_equal(jobq_job_finished_at(j), T0 + 3);
  assert_int_equal(jobq_job_attempts(j), 0);
  assert_int_equal(jobq_job_position(j), -1);
  jobq_job_free(j);
  j = tr_get(f->q, other);
  assert_int_equal(jobq_job_position(j), 0);
  jobq_job_free(j);
  /* Never claimable: the next claim gets the other job, then nothing. */
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), other);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  tr_clock_add(&f->clock, 1000000);
  tr_claim_none(f->q, NULL);
  assert_int_equal(jobq_cancel(f->q, id), JOBQ_ESTATE);
  assert_int_equal(tr_state(f->q, id), JOBQ_CANCELLED);
}

static void test_cancel_delayed_and_retrying(void **state) {
  fx *f = *state;
  reg_exact(f->q, "a", 3, 1000, 1000);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_delay(so, 100), 0);
  char idd[JOBQ_ID_SIZE], idr[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", so, idd);
  jobq_submit_opts_free(so);
  tr_submit(f->q, "a", "1", NULL, idr);
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, K_A), "again", 1), 0);
  assert_int_equal(jobq_cancel(f->q, idd), 0);
  assert_int_equal(jobq_cancel(f->q, idr), 0);
  jobq_job_t *j = tr_get(f->q, idr);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_string_equal(jobq_job_attempt_error(j, 0), "again");
  jobq_job_free(j);
  assert_int_equal(tr_state(f->q, idd), JOBQ_CANCELLED);
  tr_clock_add(&f->clock, 1000000);
  tr_claim_none(f->q, NULL);
}

static void test_cancel_running_then_succeed_ends_cancelled(void **state) {
  fx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_int_equal(jobq_ctx_cancelled(ctx), 0);
  assert_int_equal(jobq_cancel(f->q, id), 0);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
  assert_int_equal(jobq_job_cancel_requested(j), 1);
  jobq_job_free(j);
  /* A second request changes nothing. */
  assert_int_equal(jobq_cancel(f->q, id), 0);
  assert_int_equal(jobq_ctx_progress(ctx, 10, "still going"), 0);
  tr_clock_set(&f->clock, T0 + 9);
  assert_int_equal(jobq_ctx_succeed(ctx, "1"), 0);
  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  assert_int_equal(jobq_job_finished_at(j), T0 + 9);
  assert_null(jobq_job_result(j));
  jobq_job_free(j);
  assert_int_equal(jobq_cancel(f->q, id), JOBQ_ESTATE);
  tr_claim_none(f->q, NULL);
}

static void test_cancel_running_then_retryable_fail_ends_cancelled(void **state) {
  fx *f = *state;
  reg_exact(f->q, "a", 3, 0, 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  assert_int_equal(jobq_cancel(f->q, id), 0);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  assert_int_equal(jobq_ctx_fail(ctx, "stopped", 1), 0);
  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_string_equal(jobq_job_attempt_error(j, 0), "stopped");
  jobq_job_free(j);
  tr_claim_none(f->q, NULL); /* not retried */
}

static void test_cancel_finished_and_bad_ids(void **state) {
  fx *f = *state;
  char ids[2][JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", NULL, ids[0]);
  tr_submit(f->q, "a", "0", NULL, ids[1]);
  assert_int_equal(jobq_ctx_succeed(tr_claim(f->q, NULL), NULL), 0);
  assert_int_equal(jobq_ctx_fail(tr_claim(f->q, NULL), "x", 0), 0);
  assert_int_equal(jobq_cancel(f->q, ids[0]), JOBQ_ESTATE);
  assert_non_null(strstr(jobq_last_error(), "succeeded"));
  assert_int_equal(jobq_cancel(f->q, ids[1]), JOBQ_ESTATE);
  assert_non_null(strstr(jobq_last_error(), "failed"));
  assert_int_equal(tr_state(f->q, ids[0]), JOBQ_SUCCEEDED);
  assert_int_equal(tr_state(f->q, ids[1]), JOBQ_FAILED);
  assert_int_equal(jobq_cancel(f->q, "01890000-0000-7000-8000-000000000000"), JOBQ_ENOTFOUND);
  assert_int_equal(jobq_cancel(f->q, "nope"), JOBQ_ENOTFOUND);
  assert_int_equal(jobq_cancel(f->q, ""), JOBQ_EINVAL);
  assert_int_equal(jobq_cancel(f->q, NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_cancel(NULL, ids[0]), JOBQ_EINVAL);
}

/* ---- progress and results ---- */

static void test_progress_live_in_get(void **state) {
  fx *f = *state;
  char id[JOBQ_ID_SIZE];
  tr_submit(f->q, "a", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(f->q, NULL);
  jobq_job_t *j = tr_get(f->q, id);
  assert_int_equal(jobq_job_progress(j), 0);
  assert_null(jobq_job_step(j));
  jobq_job_free(j);

  assert_int_equal(jobq_ctx_progress(ctx, 30, "downloading"), 0);
  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_progress(j), 30);
  assert_string_equal(jobq_job_step(j), "downloading");
  jobq_job_free(j);

  /* Same clock time: storage is not written again, the snapshot is live. */
  assert_int_equal(jobq_ctx_progress(ctx, 55, "parsing"), 0);
  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_progress(j), 55);
  assert_string_equal(jobq_job_step(j), "parsing");
  jobq_job_free(j);

  /* NULL step keeps the previous one. */
  assert_int_equal(jobq_ctx_progress(ctx, 60, NULL), 0);
  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_progress(j), 60);
  assert_string_equal(jobq_job_step(j), "parsing");
  jobq_job_free(j);

  assert_int_equal(jobq_ctx_progress(ctx, -1, NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_ctx_progress(ctx, 101, "x"), JOBQ_EINVAL);
  assert_non_null(strstr(jobq_last_error(), "101"));
  char big[1100];
  memset(big, 's', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(jobq_ctx_progress(ctx, 70, big), JOBQ_EINVAL);
  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_progress(j), 60);
  assert_string_equal(jobq_job_step(j), "parsing");
  jobq_job_free(j);

  assert_int_equal(jobq_ctx_progress(ctx, 0, NULL), 0);
  assert_int_equal(jobq_ctx_progress(ctx, 100, "done"), 0);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  j = tr_get(f->q, id);
  assert_int_equal(jobq_job_progress(j), 100);
  assert_string_equal(jobq_job_step(j), "done");
  jobq_job_free(j);
}

static void test_invalid_result_keeps_attempt_open(void **state) {
  fx *f = *state;
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_clock(o, tr_clock_fn, &f->clock), 0);
  assert_int_equal(jobq_options_set_max_payload(o, 16), 0);
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);

  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  jobq_ctx_t *ctx = tr_claim(q, NULL);
  assert_int_equal(jobq_ctx_succeed(ctx, "{\"a\":"), JOBQ_EJSON);
  assert_non_null(strstr(jobq_last_error(), "jobq_ctx_succeed"));
  assert_int_equal(jobq_ctx_succeed(ctx, "{nope}"), JOBQ_EJSON);
  assert_int_equal(jobq_ctx_succeed(ctx, ""), JOBQ_EJSON);
  assert_int_equal(jobq_ctx_succeed(ctx, "\"0123456789abcdef\""), JOBQ_ETOOBIG);
  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
  assert_null(jobq_job_result(j));
  jobq_job_free(j);
  /* The attempt is still open: progress works and a valid result ends it. */
  assert_int_equal(jobq_ctx_progress(ctx, 90, "retrying result"), 0);
  assert_int_equal(jobq_ctx_attempt(ctx), 1);
  assert_int_equal(jobq_ctx_succeed(ctx, "[1,2]"), 0);
  j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_string_equal(jobq_job_result(j), "[1,2]");
  assert_int_equal(jobq_job_attempts(j), 1);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
}

static void test_ctx_accessors_on_null(void **state) {
  (void)state;
  assert_null(jobq_ctx_id(NULL));
  assert_null(jobq_ctx_kind(NULL));
  assert_null(jobq_ctx_payload(NULL));
  assert_int_equal(jobq_ctx_attempt(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_ctx_cancelled(NULL), 0);
  assert_int_equal(jobq_ctx_progress(NULL, 1, NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_ctx_succeed(NULL, NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_ctx_fail(NULL, "x", 0), JOBQ_EINVAL);
}

/* ---- a finished ctx, seen from inside its handler ----
 * A handler's ctx stays valid until the handler returns, so the calls after
 * the finish can be checked there (a jobq_claim ctx is freed by its finish). */

typedef struct after {
  int fail_mode; /* 0: succeed first, 1: fail first */
  int first, second_succeed, second_fail, progress_after, bad_percent, cancelled_after;
  char err_second[200];
  atomic_int done;
} after;

static void after_handler(jobq_ctx_t *ctx, void *ud) {
  after *a = ud;
  a->bad_percent = jobq_ctx_progress(ctx, 200, NULL);
  a->first = a->fail_mode ? jobq_ctx_fail(ctx, "first", 0) : jobq_ctx_succeed(ctx, "1");
  a->second_succeed = jobq_ctx_succeed(ctx, "2");
  snprintf(a->err_second, sizeof a->err_second, "%s", jobq_last_error());
  a->second_fail = jobq_ctx_fail(ctx, "second", 1);
  a->progress_after = jobq_ctx_progress(ctx, 50, "late");
  a->cancelled_after = jobq_ctx_cancelled(ctx);
  atomic_store(&a->done, 1);
}

static void run_after(int fail_mode) {
  after a;
  memset(&a, 0, sizeof a);
  a.fail_mode = fail_mode;
  tr_open_args oa = {.workers = 1};
  jobq_t *q = tr_open(&oa);
  tr_register(q, "a", after_handler, &a, NULL);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  jobq_job_t *j = tr_wait_terminal(q, id, TR_GUARD_MS);
  assert_true(tr_wait_flag(&a.done, TR_GUARD_MS));
  assert_int_equal(jobq_job_state(j), fail_mode ? JOBQ_FAILED : JOBQ_SUCCEEDED);
  if (!fail_mode) assert_string_equal(jobq_job_result(j), "1");
  else assert_string_equal(jobq_job_error(j), "first");
  assert_int_equal(jobq_job_attempts(j), 1);
  jobq_job_free(j);
  assert_int_equal(a.bad_percent, JOBQ_EINVAL);
  assert_int_equal(a.first, 0);
  assert_int_equal(a.second_succeed, JOBQ_ESTATE);
  assert_non_null(strstr(a.err_second, "jobq_ctx_succeed"));
  assert_int_equal(a.second_fail, JOBQ_ESTATE);
  assert_int_equal(a.progress_after, JOBQ_ESTATE);
  assert_int_equal(a.cancelled_after, 0);
  assert_int_equal(jobq_close(q, 1000), 0);
}

static void test_double_succeed_and_progress_after_finish(void **state) {
  (void)state;
  run_after(0);
}

static void test_succeed_after_fail_and_progress_after_fail(void **state) {
  (void)state;
  run_after(1);
}

/* ---- concurrency limits apply to jobq_claim too ---- */

typedef struct claimer {
  jobq_t *q;
  const char *const *kinds;
  int rc;
  jobq_ctx_t *ctx;
} claimer;

static void *claimer_main(void *arg) {
  claimer *c = arg;
  c->rc = jobq_claim(c->q, c->kinds, TR_GUARD_MS, &c->ctx);
  return NULL;
}

static void test_concurrency_limit_applies_to_claim(void **state) {
  fx *f = *state;
  static const char *const K_LIM[] = {"lim", NULL};
  tr_register(f->q, "lim", tr_never_handler, NULL, tr_kind_opts(2, 3, 0, 0, 0, 0, 0));
  char ids[4][JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  for (int i = 0; i < 4; i++) tr_submit(f->q, "lim", "0", NULL, ids[i]);
  jobq_ctx_t *c1 = tr_claim(f->q, K_LIM);
  jobq_ctx_t *c2 = tr_claim(f->q, NULL);
  assert_string_equal(jobq_ctx_id(c1), ids[0]);
  assert_string_equal(jobq_ctx_id(c2), ids[1]);
  tr_claim_none(f->q, K_LIM);
  tr_claim_none(f->q, NULL);
  /* Other kinds still come. */
  tr_submit(f->q, "free", "0", NULL, other);
  jobq_ctx_t *co = tr_claim(f->q, NULL);
  assert_string_equal(jobq_ctx_id(co), other);
  assert_int_equal(jobq_ctx_succeed(co, NULL), 0);
  tr_claim_none(f->q, NULL);

  /* A blocked claim is woken when a slot frees. */
  claimer c = {f->q, K_LIM, -99, NULL};
  pthread_t t;
  pthread_create(&t, NULL, claimer_main, &c);
  assert_int_equal(jobq_ctx_succeed(c1, NULL), 0);
  pthread_join(t, NULL);
  assert_int_equal(c.rc, 0);
  assert_string_equal(jobq_ctx_id(c.ctx), ids[2]);
  tr_claim_none(f->q, K_LIM);
  /* A retry frees its slot as well. */
  assert_int_equal(jobq_ctx_fail(c2, "again", 1), 0);
  jobq_ctx_t *c3 = tr_claim(f->q, K_LIM);
  assert_string_equal(jobq_ctx_id(c3), ids[1]); /* retried at once (base 0), older */
  assert_int_equal(jobq_ctx_attempt(c3), 2);
  tr_claim_none(f->q, K_LIM);
  assert_int_equal(jobq_ctx_succeed(c.ctx, NULL), 0);
  assert_int_equal(jobq_ctx_succeed(c3, NULL), 0);
  jobq_ctx_t *c4 = tr_claim(f->q, K_LIM);
  assert_string_equal(jobq_ctx_id(c4), ids[3]);
  assert_int_equal(jobq_ctx_succeed(c4, NULL), 0);
}

/* ---- a retry that is claimed again before its finish is published ----
 * With backoff 0 a retried job is due the moment storage requeues it, while
 * the core still has to publish the end of the old attempt. A claim in that
 * window must not lose track of the new attempt. */

typedef struct failer {
  jobq_ctx_t *ctx;
  int rc;
} failer;

static void *failer_main(void *arg) {
  failer *fl = arg;
  fl->rc = jobq_ctx_fail(fl->ctx, "transient", 1);
  return NULL;
}

typedef struct claim2 {
  jobq_t *q;
  int rc;
  jobq_ctx_t *ctx;
} claim2;

static void claim2_run(void *arg) {
  claim2 *c = arg;
  c->rc = jobq_claim(c->q, K_A, TR_GUARD_MS, &c->ctx);
}

static void test_quick_retry_claimed_during_finish_stays_cancellable(void **state) {
  (void)state;
  tr_gate_register();
  tr_clock clock;
  tr_clock_set(&clock, T0);
  tr_open_args a = {.workers = 0, .clock = &clock, .storage = "gate:"};
  jobq_t *q = tr_open(&a);
  tr_register(q, "a", tr_never_handler, NULL, tr_kind_opts(0, 3, 0, 0, 0, 0, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  failer fl = {tr_claim(q, K_A), -99};

  tr_gate_arm(TR_GATE_FINISH);
  pthread_t t;
  pthread_create(&t, NULL, failer_main, &fl);
  assert_true(tr_gate_wait_held(TR_GUARD_MS));
  /* Storage has requeued the job (due now); the old attempt's end is not
   * published yet. Claim the second attempt now (the library may also make
   * the claim wait for that end). */
  claim2 c = {q, -99, NULL};
  tr_racer r;
  tr_racer_start(&r, claim2_run, &c);
  tr_racer_wait(&r, TR_RACE_WINDOW_MS);
  tr_gate_release();
  pthread_join(t, NULL);
  tr_racer_join(&r);
  assert_int_equal(fl.rc, 0);
  assert_int_equal(c.rc, 0);
  jobq_ctx_t *ctx2 = c.ctx;
  assert_string_equal(jobq_ctx_id(ctx2), id);
  assert_int_equal(jobq_ctx_attempt(ctx2), 2);

  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
  assert_int_equal(jobq_job_attempts(j), 2);
  jobq_job_free(j);
  /* The second attempt must still be known as running here: a cancel has to
   * reach it. */
  assert_int_equal(jobq_cancel(q, id), 0);
  int seen = jobq_ctx_cancelled(ctx2);
  assert_int_equal(jobq_ctx_succeed(ctx2, NULL), 0);
  assert_int_equal(tr_state(q, id), JOBQ_CANCELLED);
  assert_int_equal(jobq_close(q, 0), 0);
  if (seen != 1)
    fail_msg("BUG: attempt 2 never saw jobq_ctx_cancelled() == 1: the old attempt's publish "
             "removed the new attempt from the running map (lib/core/attempt.c publish_end)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_queued_running_succeeded, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_succeed_null_result_is_json_null, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_fail_not_retryable_fails_at_once, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_fail_empty_message_and_bad_retryable, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_fail_retryable_requeues_at_exact_backoff, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_backoff_doubles_caps_and_attempts_run_out, fx_setup,
                                    fx_teardown),
    cmocka_unit_test(test_jitter_math_with_fixed_random),
    cmocka_unit_test(test_unregistered_kind_uses_default_backoff),
    cmocka_unit_test(test_out_of_range_random_means_no_jitter),
    cmocka_unit_test_setup_teardown(test_submit_max_attempts_overrides_kind, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_priority_then_fifo_across_kinds, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_priority_with_kind_list_and_single_kind, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_fifo_within_priority_many, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_delayed_jobs_wait_until_due, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_due_delayed_jobs_order_by_priority, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_cancel_queued, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_cancel_delayed_and_retrying, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_cancel_running_then_succeed_ends_cancelled, fx_setup,
                                    fx_teardown),
    cmocka_unit_test_setup_teardown(test_cancel_running_then_retryable_fail_ends_cancelled,
                                    fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_cancel_finished_and_bad_ids, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_progress_live_in_get, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown(test_invalid_result_keeps_attempt_open, fx_setup,
                                    fx_teardown),
    cmocka_unit_test(test_ctx_accessors_on_null),
    cmocka_unit_test(test_double_succeed_and_progress_after_finish),
    cmocka_unit_test(test_succeed_after_fail_and_progress_after_fail),
    cmocka_unit_test_setup_teardown(test_concurrency_limit_applies_to_claim, fx_setup,
                                    fx_teardown),
    cmocka_unit_test(test_quick_retry_claimed_during_finish_stays_cancellable),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
