/* A timed-out attempt keeps its slot of its kind's concurrency limit until
 * its owner lets go: a worker handler until it returns, an asynchronous
 * owner (a handler that returned without finishing, a jobq_claim caller)
 * until its (refused) jobq_ctx_succeed/fail. Storage still ends the attempt
 * at the deadline. Timers run on real time (100 ms timeouts); every wait is
 * bounded generously and nothing asserts that anything was fast. The
 * handlers ignore jobq_ctx_cancelled(): only the test lets them go. */
#include "testutil_run.h"

#define TMO 100

typedef struct gate {
  atomic_int release;  /* the test lets blocked handlers go */
  atomic_int blocked;  /* a handler is blocked */
  atomic_int calls;    /* handler calls begun (index into the arrays) */
  atomic_int started;  /* handler calls whose entries below are written */
  atomic_int inside;   /* handler calls under way */
  atomic_int max_inside;
  atomic_int returned;
  int attempt[8];      /* jobq_ctx_attempt of each call */
  int inside_at[8];    /* calls under way when it began, itself included */
  int late_rc;         /* the blocked handler's succeed, after it was let go */
  char late_err[200];
  jobq_ctx_t *kept;    /* a ctx whose handler returned without finishing */
} gate;

/* "block": blocks in attempt 1 until the test lets go, then tries to
 * succeed. "keep": returns without finishing (the test owns the ctx).
 * Anything else succeeds at once. */
static void gate_handler(jobq_ctx_t *ctx, void *ud) {
  gate *g = ud;
  int in = atomic_fetch_add(&g->inside, 1) + 1;
  int m = atomic_load(&g->max_inside);
  while (in > m && !atomic_compare_exchange_weak(&g->max_inside, &m, in)) {
  }
  int i = atomic_fetch_add(&g->calls, 1);
  if (i > 7) i = 7;
  g->attempt[i] = jobq_ctx_attempt(ctx);
  g->inside_at[i] = in;
  atomic_fetch_add(&g->started, 1);
  const char *p = jobq_ctx_payload(ctx);
  if (strcmp(p, "\"block\"") == 0 && jobq_ctx_attempt(ctx) == 1) {
    atomic_store(&g->blocked, 1);
    tr_wait_flag(&g->release, TR_GUARD_MS); /* deaf to jobq_ctx_cancelled() */
    g->late_rc = jobq_ctx_succeed(ctx, "\"late\"");
    snprintf(g->late_err, sizeof g->late_err, "%s", jobq_last_error());
  } else if (strcmp(p, "\"keep\"") == 0) {
    g->kept = ctx;
  } else {
    /* Its slot goes back with the succeed, before this handler returns:
     * the next job may start at once, so "inside" ends here. */
    atomic_fetch_sub(&g->inside, 1);
    jobq_ctx_succeed(ctx, "\"ok\"");
    atomic_fetch_add(&g->returned, 1);
    return;
  }
  atomic_fetch_sub(&g->inside, 1);
  atomic_fetch_add(&g->returned, 1);
}

/* On the heap, freed by a test that passed: a failed test may leave its
 * handler blocked, and it must not write into the next test's stack. */
static gate *gate_new(void) {
  gate *g = calloc(1, sizeof *g);
  assert_non_null(g);
  return g;
}

static const char *const K[] = {"k", NULL};

/* Waits until the only attempt of job id timed out and storage failed the
 * job (max attempts 1), whether or not its handler still runs. */
static void wait_timed_out(jobq_t *q, const char *id) {
  jobq_job_t *j = tr_wait_terminal(q, id, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_non_null(strstr(jobq_job_error(j), "timed out"));
  jobq_job_free(j);
}

/* Nothing more of kind k starts: no worker takes one within a window, and
 * a claim of our own finds the kind at its limit. */
static void assert_kind_full(jobq_t *q, gate *g, int started) {
  assert_false(tr_wait_count(&g->started, started + 1, TR_RACE_WINDOW_MS));
  tr_claim_none(q, K);
  tr_claim_none(q, NULL);
  assert_int_equal(atomic_load(&g->started), started);
}

/* 1. Concurrency 1: B does not start while A's timed-out handler runs. */
static void test_timed_out_handler_keeps_its_slot(void **state) {
  (void)state;
  gate *g = gate_new();
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "k", gate_handler, g, tr_kind_opts(1, 1, 0, 0, 0.0, TMO, 0));
  assert_int_equal(jobq_start(q), 0);
  char ida[JOBQ_ID_SIZE], idb[JOBQ_ID_SIZE];
  tr_submit(q, "k", "\"block\"", NULL, ida);
  assert_true(tr_wait_flag(&g->blocked, TR_GUARD_MS));
  tr_submit(q, "k", "\"quick\"", NULL, idb);

  wait_timed_out(q, ida);
  assert_kind_full(q, g, 1);
  assert_int_equal(tr_state(q, idb), JOBQ_QUEUED);

  atomic_store(&g->release, 1);
  jobq_job_t *j = tr_wait_terminal(q, idb, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  assert_true(tr_wait_count(&g->returned, 2, TR_GUARD_MS));
  assert_int_equal(g->late_rc, JOBQ_ESTATE);
  assert_non_null(strstr(g->late_err, "timed out"));
  assert_int_equal(atomic_load(&g->max_inside), 1);
  /* A's late succeed changed nothing. */
  assert_int_equal(tr_state(q, ida), JOBQ_FAILED);
  assert_int_equal(jobq_close(q, 0), 0);
  free(g);
}

/* 2. Concurrency 1, two attempts: attempt 2 of A waits for attempt 1's
 * handler, although the retry is due at once (no backoff). */
static void test_retry_waits_for_the_timed_out_handler(void **state) {
  (void)state;
  gate *g = gate_new();
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "k", gate_handler, g, tr_kind_opts(1, 2, 0, 0, 0.0, TMO, 0));
  tr_log log;
  tr_log_init(&log);
  assert_int_equal(jobq_subscribe(q, tr_log_cb, &log), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "k", "\"block\"", NULL, id);
  assert_true(tr_wait_flag(&g->blocked, TR_GUARD_MS));

  assert_true(tr_log_wait_event(&log, id, JOBQ_EVENT_RETRYING, TR_GUARD_MS));
  assert_kind_full(q, g, 1);
  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 1);
  jobq_job_free(j);

  atomic_store(&g->release, 1);
  j = tr_wait_terminal(q, id, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 2);
  assert_string_equal(jobq_job_result(j), "\"ok\"");
  jobq_job_free(j);
  assert_true(tr_wait_count(&g->returned, 2, TR_GUARD_MS));
  assert_int_equal(g->attempt[1], 2);
  assert_int_equal(g->inside_at[1], 1); /* attempt 1's handler had returned */
  assert_int_equal(atomic_load(&g->max_inside), 1);
  assert_int_equal(g->late_rc, JOBQ_ESTATE);
  assert_int_equal(jobq_close(q, 0), 0);
  free(g);
  tr_log_free(&log);
}

/* 3. A jobq_claim'ed attempt that timed out holds the slot until the
 * caller's (refused) finish; then the next job can be claimed. */
static void test_claimed_timed_out_attempt_holds_slot_until_fail(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  tr_register(q, "k", tr_never_handler, NULL, tr_kind_opts(1, 1, 0, 0, 0.0, TMO, 0));
  char ida[JOBQ_ID_SIZE], idb[JOBQ_ID_SIZE];
  tr_submit(q, "k", "1", NULL, ida);
  tr_submit(q, "k", "2", NULL, idb);
  jobq_ctx_t *ctx = tr_claim(q, K);
  assert_string_equal(jobq_ctx_id(ctx), ida);
  wait_timed_out(q, ida);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);

  tr_claim_none(q, K);
  tr_claim_none(q, NULL);
  assert_int_equal(tr_state(q, idb), JOBQ_QUEUED);

  assert_int_equal(jobq_ctx_fail(ctx, "late", 1), JOBQ_ESTATE); /* frees ctx */
  assert_non_null(strstr(jobq_last_error(), "timed out"));
  jobq_ctx_t *c2 = tr_claim(q, K);
  assert_string_equal(jobq_ctx_id(c2), idb);
  tr_claim_none(q, K); /* B holds the one slot */
  assert_int_equal(jobq_ctx_succeed(c2, "2"), 0);
  jobq_job_t *j = tr_get(q, idb);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  assert_int_equal(tr_state(q, ida), JOBQ_FAILED);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* 3b. A handler that returned without finishing (on a worker thread or on
 * the loop) owns its attempt until its finish: the timeout does not give
 * the slot back, the refused finish does, and only once (a second release
 * would take the count below zero: an assert in the core). */
static void kept_ctx_holds_slot_until_fail(int on_loop) {
  gate *g = gate_new();
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "k", gate_handler, g, tr_kind_opts(1, 1, 0, 0, 0.0, TMO, on_loop));
  assert_int_equal(jobq_start(q), 0);
  char ida[JOBQ_ID_SIZE], idb[JOBQ_ID_SIZE], idc[JOBQ_ID_SIZE];
  tr_submit(q, "k", "\"keep\"", NULL, ida);
  assert_true(tr_wait_count(&g->returned, 1, TR_GUARD_MS));
  tr_submit(q, "k", "\"quick\"", NULL, idb);

  wait_timed_out(q, ida);
  assert_kind_full(q, g, 1);
  assert_int_equal(tr_state(q, idb), JOBQ_QUEUED);

  assert_int_equal(jobq_ctx_fail(g->kept, "late", 0), JOBQ_ESTATE);
  jobq_job_t *j = tr_wait_terminal(q, idb, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  /* The slot is free again, exactly once: one more job runs. */
  tr_submit(q, "k", "\"quick\"", NULL, idc);
  j = tr_wait_terminal(q, idc, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  assert_int_equal(atomic_load(&g->max_inside), 1);
  assert_int_equal(tr_state(q, ida), JOBQ_FAILED);
  assert_int_equal(jobq_close(q, 0), 0);
  free(g);
}

static void test_kept_ctx_holds_slot_until_fail(void **state) {
  (void)state;
  kept_ctx_holds_slot_until_fail(0);
}

static void test_kept_ctx_on_loop_holds_slot_until_fail(void **state) {
  (void)state;
  kept_ctx_holds_slot_until_fail(1);
}

/* 4. Without a limit nothing holds attempt 2 back: it runs beside attempt
 * 1's handler, which still runs (as it could in another process). */
static void test_without_limit_retry_runs_beside_timed_out_handler(void **state) {
  (void)state;
  gate *g = gate_new();
  tr_open_args a = {.workers = 2};
  jobq_t *q = tr_open(&a);
  tr_register(q, "k", gate_handler, g, tr_kind_opts(0, 2, 0, 0, 0.0, TMO, 0));
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "k", "\"block\"", NULL, id);
  assert_true(tr_wait_flag(&g->blocked, TR_GUARD_MS));
  jobq_job_t *j = tr_wait_terminal(q, id, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 2);
  jobq_job_free(j);
  assert_int_equal(atomic_load(&g->started), 2);
  assert_int_equal(g->attempt[1], 2);
  assert_int_equal(g->inside_at[1], 2); /* attempt 1's handler was still inside */
  assert_true(tr_wait_count(&g->returned, 1, TR_GUARD_MS)); /* attempt 2's */
  assert_int_equal(atomic_load(&g->returned), 1);
  assert_int_equal(atomic_load(&g->inside), 1);

  atomic_store(&g->release, 1);
  assert_true(tr_wait_count(&g->returned, 2, TR_GUARD_MS));
  assert_int_equal(g->late_rc, JOBQ_ESTATE);
  assert_int_equal(tr_state(q, id), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_close(q, 0), 0);
  free(g);
}

/* 5. Close while a timed-out handler still runs: the drain does not wait
 * for it (storage already ended it), close returns once the worker thread
 * is back, and nothing leaks. */
static void let_go_later(void *arg) {
  tr_sleep_ms(TR_RACE_WINDOW_MS);
  atomic_store(&((gate *)arg)->release, 1);
}

static void test_close_while_timed_out_handler_runs(void **state) {
  (void)state;
  gate *g = gate_new();
  tr_open_args a = {.workers = 1};
  jobq_t *q = tr_open(&a);
  tr_register(q, "k", gate_handler, g, tr_kind_opts(1, 1, 0, 0, 0.0, TMO, 0));
  assert_int_equal(jobq_start(q), 0);
  char ida[JOBQ_ID_SIZE], idb[JOBQ_ID_SIZE];
  tr_submit(q, "k", "\"block\"", NULL, ida);
  assert_true(tr_wait_flag(&g->blocked, TR_GUARD_MS));
  tr_submit(q, "k", "\"quick\"", NULL, idb);
  wait_timed_out(q, ida);

  tr_racer r;
  tr_racer_start(&r, let_go_later, g);
  assert_int_equal(jobq_close(q, 10), 0);
  tr_racer_join(&r);
  assert_int_equal(atomic_load(&g->returned), 1);
  assert_int_equal(atomic_load(&g->started), 1); /* B never started */
  assert_true(g->late_rc == JOBQ_ESTATE || g->late_rc == JOBQ_ECLOSED);
  free(g);
}

/* 5b. Close while a host still holds a timed-out claimed ctx: close does not
 * wait for it; the host's finish after close is refused and frees the last
 * of the queue. */
static void test_close_while_claimed_timed_out_ctx_is_held(void **state) {
  (void)state;
  tr_open_args a = {.workers = 0};
  jobq_t *q = tr_open(&a);
  tr_register(q, "k", tr_never_handler, NULL, tr_kind_opts(1, 1, 0, 0, 0.0, TMO, 0));
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "k", "1", NULL, id);
  jobq_ctx_t *ctx = tr_claim(q, K);
  wait_timed_out(q, id);
  assert_int_equal(jobq_close(q, 10), 0);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  assert_int_equal(jobq_ctx_fail(ctx, "late", 0), JOBQ_ECLOSED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_timed_out_handler_keeps_its_slot),
    cmocka_unit_test(test_retry_waits_for_the_timed_out_handler),
    cmocka_unit_test(test_claimed_timed_out_attempt_holds_slot_until_fail),
    cmocka_unit_test(test_kept_ctx_holds_slot_until_fail),
    cmocka_unit_test(test_kept_ctx_on_loop_holds_slot_until_fail),
    cmocka_unit_test(test_without_limit_retry_runs_beside_timed_out_handler),
    cmocka_unit_test(test_close_while_timed_out_handler_runs),
    cmocka_unit_test(test_close_while_claimed_timed_out_ctx_is_held),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
