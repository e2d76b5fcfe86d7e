/* Reading: jobq_get and the snapshot accessors, positions, jobq_job_to_json,
 * jobq_list with filters and cursors, jobq_page_*. */
#include "testutil.h"

#include <jansson.h>

static const char UNKNOWN_ID[] = "01890a5d-ac96-774b-bcce-b302099a8057";

static void never_called(jobq_ctx_t *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  fail_msg("a handler ran in a test that never starts workers");
}

/* ======================================================================== */
/* jobq_get                                                                 */
/* ======================================================================== */

static void test_get_errors(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_job_t *sentinel = (jobq_job_t *)&q, *j = sentinel;
  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_get", jobq_get(q, UNKNOWN_ID, &j));
  assert_ptr_equal(j, sentinel);
  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_get", jobq_get(q, "nope", &j));
  /* one character off */
  char near[JOBQ_ID_SIZE];
  memcpy(near, id, sizeof near);
  near[35] = near[35] == '0' ? '1' : '0';
  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_get", jobq_get(q, near, &j));
  char longer[JOBQ_ID_SIZE + 1];
  snprintf(longer, sizeof longer, "%s0", id);
  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_get", jobq_get(q, longer, &j));
  TAPI_ERR(JOBQ_EINVAL, "jobq_get", jobq_get(q, NULL, &j));
  TAPI_ERR(JOBQ_EINVAL, "jobq_get", jobq_get(q, "", &j));
  TAPI_ERR(JOBQ_EINVAL, "jobq_get", jobq_get(NULL, id, &j));
  TAPI_ERR(JOBQ_EINVAL, "jobq_get", jobq_get(q, id, NULL));
  assert_ptr_equal(j, sentinel);
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_id(j), id);
  jobq_job_free(j);
  tapi_close(q);
}

static void test_snapshot_queued(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 50000);
  jobq_t *q = tapi_open(&clk, 0);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_owner(so, "carol"));
  TAPI_OK(jobq_submit_opts_set_priority(so, -5));
  TAPI_OK(jobq_submit_opts_set_max_attempts(so, 4));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "mail.send", "{\"to\":\"x@y\"}", so, id));
  tapi_clock_set(&clk, 50100);
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_id(j), id);
  assert_string_equal(jobq_job_kind(j), "mail.send");
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_string_equal(jobq_job_payload(j), "{\"to\":\"x@y\"}");
  assert_string_equal(jobq_job_owner(j), "carol");
  assert_int_equal(jobq_job_priority(j), -5);
  assert_int_equal(jobq_job_progress(j), 0);
  assert_null(jobq_job_step(j));
  assert_null(jobq_job_result(j));
  assert_null(jobq_job_error(j));
  assert_int_equal(jobq_job_attempts(j), 0);
  assert_int_equal(jobq_job_max_attempts(j), 4);
  assert_int_equal(jobq_job_cancel_requested(j), 0);
  assert_int_equal(jobq_job_created_at(j), 50000);
  assert_int_equal(jobq_job_run_at(j), 50000);
  assert_int_equal(jobq_job_started_at(j), 0);
  assert_int_equal(jobq_job_finished_at(j), 0);
  assert_int_equal(jobq_job_position(j), 0);
  /* First in line and nothing runs: it starts when a worker is free. */
  assert_int_equal(jobq_job_eta_ms(j), 0);
  assert_null(jobq_job_attempt_error(j, 0));
  assert_true(jobq_job_attempt_started_at(j, 0) <= 0);
  assert_true(jobq_job_attempt_finished_at(j, 0) <= 0);
  /* the snapshot does not change with the job */
  jobq_ctx_t *ctx = tapi_claim(q, "mail.send");
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 0);
  jobq_job_free(j);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  jobq_submit_opts_free(so);
  tapi_close(q);
}

static void test_snapshot_running(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 1000);
  jobq_t *q = tapi_open(&clk, 0);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_max_attempts(ko, 5));
  TAPI_OK(jobq_register(q, "k", never_called, NULL, ko));
  jobq_kind_opts_free(ko);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "[1]", NULL, id));
  tapi_clock_set(&clk, 2000);
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  assert_int_equal(jobq_ctx_attempt(ctx), 1);
  tapi_clock_set(&clk, 2100);
  TAPI_OK(jobq_ctx_progress(ctx, 40, "step one"));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_id(j), id);
  assert_string_equal(jobq_job_kind(j), "k");
  assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
  assert_string_equal(jobq_job_payload(j), "[1]");
  assert_null(jobq_job_owner(j));
  assert_int_equal(jobq_job_priority(j), 0);
  assert_int_equal(jobq_job_progress(j), 40);
  assert_string_equal(jobq_job_step(j), "step one");
  assert_null(jobq_job_result(j));
  assert_null(jobq_job_error(j));
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(jobq_job_max_attempts(j), 5);
  assert_int_equal(jobq_job_cancel_requested(j), 0);
  assert_int_equal(jobq_job_created_at(j), 1000);
  assert_int_equal(jobq_job_run_at(j), 1000);
  assert_int_equal(jobq_job_started_at(j), 2000);
  assert_int_equal(jobq_job_finished_at(j), 0);
  assert_int_equal(jobq_job_position(j), -1);
  assert_int_equal(jobq_job_eta_ms(j), -1);
  assert_int_equal(jobq_job_attempt_started_at(j, 0), 2000);
  assert_int_equal(jobq_job_attempt_finished_at(j, 0), 0);
  assert_null(jobq_job_attempt_error(j, 0));
  assert_null(jobq_job_attempt_error(j, 1));
  jobq_job_free(j);
  /* progress without a step keeps the step; 0..100 only */
  TAPI_OK(jobq_ctx_progress(ctx, 60, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_ctx_progress", jobq_ctx_progress(ctx, 101, "x"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_ctx_progress", jobq_ctx_progress(ctx, -1, "x"));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_progress(j), 60);
  assert_string_equal(jobq_job_step(j), "step one");
  jobq_job_free(j);
  /* cancel requested while running */
  TAPI_OK(jobq_cancel(q, id));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
  assert_int_equal(jobq_job_cancel_requested(j), 1);
  jobq_job_free(j);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  TAPI_OK(jobq_ctx_fail(ctx, "stopped", 1));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  assert_int_equal(jobq_job_attempts(j), 1);
  jobq_job_free(j);
  tapi_close(q);
}

static void test_snapshot_succeeded(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 10);
  jobq_t *q = tapi_open(&clk, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  tapi_clock_set(&clk, 20);
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_progress(ctx, 30, "half"));
  tapi_clock_set(&clk, 35);
  TAPI_OK(jobq_ctx_succeed(ctx, "{\"r\": [1, 2]}"));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_string_equal(jobq_job_result(j), "{\"r\": [1, 2]}");
  assert_null(jobq_job_error(j));
  assert_int_equal(jobq_job_progress(j), 100);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(jobq_job_created_at(j), 10);
  assert_int_equal(jobq_job_started_at(j), 20);
  assert_int_equal(jobq_job_finished_at(j), 35);
  assert_int_equal(jobq_job_position(j), -1);
  assert_int_equal(jobq_job_cancel_requested(j), 0);
  assert_int_equal(jobq_job_attempt_started_at(j, 0), 20);
  assert_int_equal(jobq_job_attempt_finished_at(j, 0), 35);
  assert_null(jobq_job_attempt_error(j, 0));
  jobq_job_free(j);
  /* NULL result is stored as "null"; an invalid one is refused */
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  ctx = tapi_claim(q, "k");
  TAPI_ERR(JOBQ_EJSON, "jobq_ctx_succeed", jobq_ctx_succeed(ctx, "{oops"));
  assert_int_equal(tapi_state(q, id), JOBQ_RUNNING); /* the refusal ended nothing */
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_result(j), "null");
  jobq_job_free(j);
  tapi_close(q);
}

static void test_snapshot_failed_with_attempts(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 100);
  jobq_t *q = tapi_open(&clk, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  tapi_clock_set(&clk, 200);
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  tapi_clock_set(&clk, 250);
  TAPI_OK(jobq_ctx_fail(ctx, "first failure", 1));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_string_equal(jobq_job_error(j), "first failure");
  assert_true(jobq_job_run_at(j) > 250); /* backoff */
  assert_int_equal(jobq_job_position(j), -1); /* waiting for its run_at */
  int64_t due = jobq_job_run_at(j);
  jobq_job_free(j);
  tapi_clock_set(&clk, due);
  ctx = tapi_claim(q, "k");
  assert_int_equal(jobq_ctx_attempt(ctx), 2);
  tapi_clock_set(&clk, due + 7);
  TAPI_OK(jobq_ctx_fail(ctx, "second failure", 0));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_string_equal(jobq_job_error(j), "second failure");
  assert_null(jobq_job_result(j));
  assert_int_equal(jobq_job_attempts(j), 2);
  assert_int_equal(jobq_job_started_at(j), due);
  assert_int_equal(jobq_job_finished_at(j), due + 7);
  assert_string_equal(jobq_job_attempt_error(j, 0), "first failure");
  assert_int_equal(jobq_job_attempt_started_at(j, 0), 200);
  assert_int_equal(jobq_job_attempt_finished_at(j, 0), 250);
  assert_string_equal(jobq_job_attempt_error(j, 1), "second failure");
  assert_int_equal(jobq_job_attempt_started_at(j, 1), due);
  assert_int_equal(jobq_job_attempt_finished_at(j, 1), due + 7);
  assert_null(jobq_job_attempt_error(j, 2));
  assert_null(jobq_job_attempt_error(j, -1));
  assert_true(jobq_job_attempt_started_at(j, 2) <= 0);
  assert_true(jobq_job_attempt_started_at(j, -1) <= 0);
  jobq_job_free(j);
  /* a second finish through the same ctx is refused */
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_fail(ctx, NULL, 0)); /* NULL message allowed */
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_non_null(jobq_job_error(j));
  jobq_job_free(j);
  tapi_close(q);
}

/* Progress is written to storage at most every so often while an attempt
 * runs; the last progress and step must still be there once it ended. */
static void test_final_progress_reaches_storage(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 100000); /* frozen: only the first report is written */
  jobq_t *q = tapi_open(&clk, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, a));
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, b));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_progress(ctx, 10, "first"));
  TAPI_OK(jobq_ctx_progress(ctx, 20, "second"));
  TAPI_OK(jobq_ctx_progress(ctx, 30, NULL));
  TAPI_OK(jobq_ctx_fail(ctx, "broken", 0));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, a, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_progress(j), 30);
  assert_string_equal(jobq_job_step(j), "second");
  jobq_job_free(j);
  /* retried: the queued job keeps what the attempt reported */
  ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_progress(ctx, 5, "x"));
  TAPI_OK(jobq_ctx_progress(ctx, 55, "y"));
  TAPI_OK(jobq_ctx_fail(ctx, "again", 1));
  TAPI_OK(jobq_get(q, b, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_progress(j), 55);
  assert_string_equal(jobq_job_step(j), "y");
  jobq_job_free(j);
  tapi_close(q);
}

static void test_snapshot_cancelled_queued(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 5);
  jobq_t *q = tapi_open(&clk, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  tapi_clock_set(&clk, 9);
  TAPI_OK(jobq_cancel(q, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  assert_string_equal(jobq_job_error(j), "cancelled");
  assert_int_equal(jobq_job_finished_at(j), 9);
  assert_int_equal(jobq_job_started_at(j), 0);
  assert_int_equal(jobq_job_attempts(j), 0);
  assert_int_equal(jobq_job_position(j), -1);
  jobq_job_free(j);
  TAPI_ERR(JOBQ_ESTATE, "jobq_cancel", jobq_cancel(q, id));
  tapi_close(q);
}

static void test_snapshot_null_accessors(void **state) {
  (void)state;
  assert_null(jobq_job_id(NULL));
  assert_null(jobq_job_kind(NULL));
  assert_null(jobq_job_payload(NULL));
  assert_null(jobq_job_owner(NULL));
  assert_null(jobq_job_step(NULL));
  assert_null(jobq_job_result(NULL));
  assert_null(jobq_job_error(NULL));
  assert_null(jobq_job_attempt_error(NULL, 0));
  /* numbers: no valid state, progress, count or time */
  assert_null(jobq_state_name(jobq_job_state(NULL)));
  int p = jobq_job_progress(NULL);
  assert_true(p < 0 || p > 100);
  assert_true(jobq_job_attempts(NULL) <= 0);
  assert_true(jobq_job_max_attempts(NULL) <= 0);
  assert_int_equal(jobq_job_cancel_requested(NULL), 0);
  assert_true(jobq_job_created_at(NULL) <= 0);
  assert_true(jobq_job_run_at(NULL) <= 0);
  assert_int_equal(jobq_job_started_at(NULL), 0);
  assert_int_equal(jobq_job_finished_at(NULL), 0);
  assert_int_equal(jobq_job_position(NULL), -1);
  assert_int_equal(jobq_job_eta_ms(NULL), -1);
  assert_true(jobq_job_attempt_started_at(NULL, 0) <= 0);
  assert_true(jobq_job_attempt_finished_at(NULL, 0) <= 0);
  (void)jobq_job_priority(NULL);
  jobq_storage_set_error("");
  assert_null(jobq_job_to_json(NULL));
  TAPI_ERR_HAS("jobq_job_to_json");
  jobq_job_free(NULL);
}

/* ======================================================================== */
/* positions                                                                */
/* ======================================================================== */

static int64_t pos(jobq_t *q, const char *id) {
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  int64_t p = jobq_job_position(j);
  jobq_job_free(j);
  return p;
}

static void test_position(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 1000);
  jobq_t *q = tapi_open(&clk, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], c[JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, a));
  TAPI_OK(jobq_submit(q, "other", NULL, NULL, other)); /* another kind: not ahead */
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, b));
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, c));
  assert_int_equal(pos(q, a), 0);
  assert_int_equal(pos(q, b), 1);
  assert_int_equal(pos(q, c), 2);
  assert_int_equal(pos(q, other), 0);

  /* a higher priority goes ahead of everything; a lower one behind */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_priority(so, 10));
  char hi[JOBQ_ID_SIZE], lo[JOBQ_ID_SIZE], hi2[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, hi));
  TAPI_OK(jobq_submit(q, "k", NULL, so, hi2));
  TAPI_OK(jobq_submit_opts_set_priority(so, -10));
  TAPI_OK(jobq_submit(q, "k", NULL, so, lo));
  assert_int_equal(pos(q, hi), 0);
  assert_int_equal(pos(q, hi2), 1);
  assert_int_equal(pos(q, a), 2);
  assert_int_equal(pos(q, b), 3);
  assert_int_equal(pos(q, c), 4);
  assert_int_equal(pos(q, lo), 5);

  /* a delayed job is not waiting in line yet */
  jobq_submit_opts_t *later = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_delay(later, 500));
  char d[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, later, d));
  assert_int_equal(pos(q, d), -1);
  assert_int_equal(pos(q, lo), 5);

  /* claims move everybody up; the claimed job leaves the line */
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  assert_string_equal(jobq_ctx_id(ctx), hi);
  assert_int_equal(pos(q, hi), -1);
  assert_int_equal(pos(q, hi2), 0);
  assert_int_equal(pos(q, c), 3);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  assert_int_equal(pos(q, hi), -1);
  /* a cancelled job leaves it too */
  TAPI_OK(jobq_cancel(q, a));
  assert_int_equal(pos(q, a), -1);
  assert_int_equal(pos(q, b), 1);
  /* when the delay has passed, the delayed job joins (priority 0, after c) */
  tapi_clock_set(&clk, 1500);
  assert_int_equal(pos(q, d), 3);
  assert_int_equal(pos(q, lo), 4);
  jobq_submit_opts_free(so);
  jobq_submit_opts_free(later);
  tapi_close(q);
}

/* ======================================================================== */
/* jobq_job_to_json                                                         */
/* ======================================================================== */

static json_t *snapshot_json(jobq_t *q, const char *id) {
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  char *s = jobq_job_to_json(j);
  assert_non_null(s);
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &e);
  if (v == NULL) fail_msg("jobq_job_to_json gave invalid JSON (%s): %s", e.text, s);
  assert_true(json_is_object(v));
  jobq_free(s);
  jobq_job_free(j);
  return v;
}

static const char *jstr(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (!json_is_string(v)) fail_msg("\"%s\" is not a string", key);
  return json_string_value(v);
}

static long long jint(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (!json_is_number(v)) fail_msg("\"%s\" is not a number", key);
  return json_is_integer(v) ? (long long)json_integer_value(v) : (long long)json_real_value(v);
}

static void test_to_json_queued(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 1234567);
  jobq_t *q = tapi_open(&clk, 0);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_owner(so, "dave \"quoted\""));
  TAPI_OK(jobq_submit_opts_set_priority(so, 3));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "img.resize", "{\"w\":640,\"tags\":[\"a\",\"b\"]}", so, id));
  json_t *v = snapshot_json(q, id);
  assert_string_equal(jstr(v, "id"), id);
  assert_string_equal(jstr(v, "kind"), "img.resize");
  assert_string_equal(jstr(v, "state"), "queued");
  assert_string_equal(jstr(v, "owner"), "dave \"quoted\"");
  json_t *payload = json_object_get(v, "payload");
  json_t *want = json_loads("{\"w\":640,\"tags\":[\"a\",\"b\"]}", JSON_DECODE_INT_AS_REAL, NULL);
  assert_true(json_equal(payload, want)); /* the payload as JSON, not as a string */
  json_decref(want);
  assert_int_equal(jint(v, "priority"), 3);
  assert_int_equal(jint(v, "progress"), 0);
  assert_int_equal(jint(v, "attempts"), 0);
  assert_int_equal(jint(v, "maxAttempts"), 0); /* kind not registered here */
  assert_int_equal(jint(v, "createdAt"), 1234567);
  assert_int_equal(jint(v, "runAt"), 1234567);
  assert_int_equal(jint(v, "position"), 0);
  assert_null(json_object_get(v, "result"));
  assert_null(json_object_get(v, "error"));
  json_t *log = json_object_get(v, "attemptLog");
  assert_true(json_is_array(log));
  assert_int_equal(json_array_size(log), 0);
  json_decref(v);
  jobq_submit_opts_free(so);
  tapi_close(q);
}

static void test_to_json_finished(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 100);
  jobq_t *q = tapi_open(&clk, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "\"p\"", NULL, id));
  tapi_clock_set(&clk, 110);
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  tapi_clock_set(&clk, 120);
  TAPI_OK(jobq_ctx_fail(ctx, "line1\nline2 \"q\"", 1));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  int64_t due = jobq_job_run_at(j);
  jobq_job_free(j);
  tapi_clock_set(&clk, due);
  ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_progress(ctx, 50, "step \"s\""));
  tapi_clock_set(&clk, due + 5);
  TAPI_OK(jobq_ctx_succeed(ctx, "[true, {\"n\": null}]"));
  json_t *v = snapshot_json(q, id);
  assert_string_equal(jstr(v, "state"), "succeeded");
  assert_true(json_is_string(json_object_get(v, "payload")));
  assert_string_equal(jstr(v, "payload"), "p");
  json_t *want = json_loads("[true, {\"n\": null}]", JSON_DECODE_INT_AS_REAL, NULL);
  assert_true(json_equal(json_object_get(v, "result"), want));
  json_decref(want);
  assert_int_equal(jint(v, "progress"), 100);
  assert_string_equal(jstr(v, "step"), "step \"s\"");
  assert_int_equal(jint(v, "attempts"), 2);
  assert_int_equal(jint(v, "startedAt"), due);
  assert_int_equal(jint(v, "finishedAt"), due + 5);
  assert_string_equal(jstr(v, "error"), "line1\nline2 \"q\""); /* the last error */
  assert_null(json_object_get(v, "position"));
  json_t *log = json_object_get(v, "attemptLog");
  assert_true(json_is_array(log));
  assert_int_equal(json_array_size(log), 2);
  json_t *a0 = json_array_get(log, 0), *a1 = json_array_get(log, 1);
  assert_int_equal(jint(a0, "startedAt"), 110);
  assert_int_equal(jint(a0, "finishedAt"), 120);
  assert_string_equal(jstr(a0, "error"), "line1\nline2 \"q\"");
  assert_int_equal(jint(a1, "startedAt"), due);
  assert_int_equal(jint(a1, "finishedAt"), due + 5);
  assert_null(json_object_get(a1, "error"));
  json_decref(v);
  tapi_close(q);
}

/* jobq_job_to_json must always give JSON, also when the library itself cut
 * an error message: jobq_ctx_fail cuts messages over 4096 bytes, here in the
 * middle of a two-byte UTF-8 character. */
static void test_to_json_valid_after_cut_utf8_error(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  char *msg = tapi_repeat('a', 4095 + 3);
  memcpy(msg + 4095, "\xc3\xa9!", 3); /* "...a\u00e9!": the cut falls inside the e-acute */
  TAPI_OK(jobq_ctx_fail(ctx, msg, 0));
  free(msg);
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  char *s = jobq_job_to_json(j);
  jobq_job_free(j);
  tapi_close(q);
  assert_non_null(s);
  json_error_t e;
  json_t *v = json_loads(s, 0, &e);
  jobq_free(s);
  if (v == NULL) fail_msg("jobq_job_to_json gave text that is not JSON: %s", e.text);
  json_decref(v);
}

/* A payload or result that jobq_submit accepted is valid JSON, so
 * jobq_job_to_json must give it back as that JSON value, never turned into a
 * string. Text jansson cannot load (integers beyond 64 bits, \u0000) is the
 * edge. */
static void check_payload_roundtrip(const char *payload, json_type want_type) {
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  int rc = jobq_submit(q, "k", payload, NULL, id);
  if (rc == JOBQ_EJSON) { /* refusing is fine too */
    tapi_close(q);
    return;
  }
  TAPI_OK(rc);
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  rc = jobq_ctx_succeed(ctx, payload);
  if (rc == JOBQ_EJSON) rc = jobq_ctx_succeed(ctx, NULL);
  TAPI_OK(rc);
  json_t *v = snapshot_json(q, id);
  json_t *p = json_object_get(v, "payload");
  int got = p ? (int)json_typeof(p) : -1;
  json_decref(v);
  tapi_close(q);
  if (got != (int)want_type)
    fail_msg("payload %s came back as JSON type %d, not %d", payload, got, (int)want_type);
}

static void test_to_json_big_integer_payload(void **state) {
  (void)state;
  check_payload_roundtrip("123456789012345678901234567890", JSON_REAL);
}

static void test_to_json_nul_escape_payload(void **state) {
  (void)state;
  check_payload_roundtrip("{\"a\":\"x\\u0000y\"}", JSON_OBJECT);
}

/* ======================================================================== */
/* jobq_list                                                                */
/* ======================================================================== */

static jobq_page_t *list(jobq_t *q, const jobq_filter_t *f) {
  jobq_page_t *p = NULL;
  TAPI_OK(jobq_list(q, f, &p));
  assert_non_null(p);
  return p;
}

static void test_list_errors_and_empty(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_page_t *sentinel = (jobq_page_t *)&q, *p = sentinel;
  TAPI_ERR(JOBQ_EINVAL, "jobq_list", jobq_list(NULL, NULL, &p));
  TAPI_ERR(JOBQ_EINVAL, "jobq_list", jobq_list(q, NULL, NULL));
  assert_ptr_equal(p, sentinel);
  p = list(q, NULL);
  assert_int_equal(jobq_page_count(p), 0);
  assert_null(jobq_page_job(p, 0));
  assert_null(jobq_page_next_cursor(p));
  jobq_page_free(p);
  /* NULL pages */
  assert_int_equal(jobq_page_count(NULL), 0);
  assert_null(jobq_page_job(NULL, 0));
  assert_null(jobq_page_next_cursor(NULL));
  jobq_page_free(NULL);
  tapi_close(q);
}

static void test_list_bad_cursor(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_filter_t *f = jobq_filter_new();
  TAPI_OK(jobq_filter_set_cursor(f, UNKNOWN_ID)); /* well formed, names no job */
  jobq_page_t *sentinel = (jobq_page_t *)&q, *p = sentinel;
  /* docs/reference/jobq_list.md: JOBQ_EINVAL, "memory storage: cursor ... names no job" */
  TAPI_ERR(JOBQ_EINVAL, "cursor", jobq_list(q, f, &p));
  TAPI_ERR_HAS(UNKNOWN_ID);
  assert_ptr_equal(p, sentinel);
  jobq_filter_free(f);
  tapi_close(q);
}

static void test_list_order_and_limit(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  enum { N = 60 };
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) TAPI_OK(jobq_submit(q, "k", NULL, NULL, ids[i]));
  /* NULL filter: newest first, 50 */
  jobq_page_t *p = list(q, NULL);
  assert_int_equal(jobq_page_count(p), 50);
  for (int i = 0; i < 50; i++) assert_string_equal(jobq_job_id(jobq_page_job(p, (size_t)i)), ids[N - 1 - i]);
  assert_non_null(jobq_page_next_cursor(p));
  assert_null(jobq_page_job(p, 50));
  jobq_page_free(p);
  /* a new filter has the same defaults */
  jobq_filter_t *f = jobq_filter_new();
  p = list(q, f);
  assert_int_equal(jobq_page_count(p), 50);
  assert_string_equal(jobq_job_id(jobq_page_job(p, 0)), ids[N - 1]);
  jobq_page_free(p);
  TAPI_OK(jobq_filter_set_newest_first(f, 0));
  TAPI_OK(jobq_filter_set_limit(f, 7));
  p = list(q, f);
  assert_int_equal(jobq_page_count(p), 7);
  for (int i = 0; i < 7; i++) assert_string_equal(jobq_job_id(jobq_page_job(p, (size_t)i)), ids[i]);
  jobq_page_free(p);
  TAPI_OK(jobq_filter_set_newest_first(f, 1));
  TAPI_OK(jobq_filter_set_limit(f, 1000));
  p = list(q, f);
  assert_int_equal(jobq_page_count(p), N);
  assert_null(jobq_page_next_cursor(p));
  for (int i = 0; i < N; i++) assert_string_equal(jobq_job_id(jobq_page_job(p, (size_t)i)), ids[N - 1 - i]);
  jobq_page_free(p);
  jobq_filter_free(f);
  tapi_close(q);
}

static void page_through(jobq_t *q, jobq_filter_t *f, const size_t *want_sizes, size_t n_pages,
                         char (*expect)[JOBQ_ID_SIZE], size_t n_expect) {
  size_t seen = 0;
  TAPI_OK(jobq_filter_set_cursor(f, NULL));
  for (size_t pg = 0; pg < n_pages; pg++) {
    jobq_page_t *p = list(q, f);
    if (jobq_page_count(p) != want_sizes[pg])
      fail_msg("page %zu has %zu jobs, expected %zu", pg, jobq_page_count(p), want_sizes[pg]);
    for (size_t i = 0; i < jobq_page_count(p); i++) {
      assert_true(seen < n_expect);
      assert_string_equal(jobq_job_id(jobq_page_job(p, i)), expect[seen]);
      seen++;
    }
    const char *c = jobq_page_next_cursor(p);
    if (pg + 1 < n_pages) {
      assert_non_null(c);
      assert_int_equal(strlen(c), 36);
      TAPI_OK(jobq_filter_set_cursor(f, c));
    } else {
      assert_null(c);
    }
    jobq_page_free(p); /* the filter keeps its own copy of the cursor */
  }
  assert_int_equal(seen, n_expect);
}

static void test_list_cursor_paging(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  enum { N = 25 };
  char ids[N][JOBQ_ID_SIZE], rev[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) TAPI_OK(jobq_submit(q, "k", NULL, NULL, ids[i]));
  for (int i = 0; i < N; i++) memcpy(rev[i], ids[N - 1 - i], JOBQ_ID_SIZE);
  jobq_filter_t *f = jobq_filter_new();
  TAPI_OK(jobq_filter_set_limit(f, 10));
  const size_t sizes[] = {10, 10, 5};
  page_through(q, f, sizes, 3, rev, N); /* newest first */
  TAPI_OK(jobq_filter_set_newest_first(f, 0));
  page_through(q, f, sizes, 3, ids, N); /* FIFO */
  /* exactly two full pages: the second one says there is no more */
  TAPI_OK(jobq_filter_set_limit(f, 5));
  const size_t five[] = {5, 5, 5, 5, 5};
  page_through(q, f, five, 5, ids, N);
  TAPI_OK(jobq_filter_set_limit(f, 25));
  const size_t all[] = {25};
  page_through(q, f, all, 1, ids, N);
  TAPI_OK(jobq_filter_set_limit(f, 24));
  const size_t almost[] = {24, 1};
  page_through(q, f, almost, 2, ids, N);
  jobq_filter_free(f);
  tapi_close(q);
}

static void test_list_filters(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *ann = jobq_submit_opts_new(), *ben = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_owner(ann, "ann"));
  TAPI_OK(jobq_submit_opts_set_owner(ben, "ben"));
  /* 12 jobs: kind a/b/c by i % 3, owner ann/ben/none by i % 4 */
  enum { N = 12 };
  char ids[N][JOBQ_ID_SIZE];
  const char *kinds[] = {"a", "b", "c"};
  for (int i = 0; i < N; i++) {
    const jobq_submit_opts_t *so = i % 4 == 0 ? ann : i % 4 == 1 ? ben : NULL;
    TAPI_OK(jobq_submit(q, kinds[i % 3], NULL, so, ids[i]));
  }
  /* states: 0 running, 3 succeeded (both kind a), 6 cancelled (a), 1 failed (b) */
  const char *ka[] = {"a", NULL};
  jobq_ctx_t *c0 = NULL;
  TAPI_OK(jobq_claim(q, ka, 0, &c0));
  assert_string_equal(jobq_ctx_id(c0), ids[0]);
  jobq_ctx_t *c3 = tapi_claim(q, "a");
  assert_string_equal(jobq_ctx_id(c3), ids[3]);
  TAPI_OK(jobq_ctx_succeed(c3, NULL));
  TAPI_OK(jobq_cancel(q, ids[6]));
  jobq_ctx_t *c1 = tapi_claim(q, "b");
  assert_string_equal(jobq_ctx_id(c1), ids[1]);
  TAPI_OK(jobq_ctx_fail(c1, "x", 0));

  int state_of[N];
  for (int i = 0; i < N; i++) state_of[i] = JOBQ_QUEUED;
  state_of[0] = JOBQ_RUNNING;
  state_of[3] = JOBQ_SUCCEEDED;
  state_of[6] = JOBQ_CANCELLED;
  state_of[1] = JOBQ_FAILED;

  const char *owners[] = {NULL, "ann", "ben"};
  const char *kind_f[] = {NULL, "a", "b", "c", "zzz"};
  int states[] = {-1, JOBQ_QUEUED, JOBQ_RUNNING, JOBQ_SUCCEEDED, JOBQ_FAILED, JOBQ_CANCELLED};
  for (size_t o = 0; o < 3; o++) {
    for (size_t k = 0; k < 5; k++) {
      for (size_t s = 0; s < 6; s++) {
        jobq_filter_t *f = jobq_filter_new();
        TAPI_OK(jobq_filter_set_owner(f, owners[o]));
        TAPI_OK(jobq_filter_set_kind(f, kind_f[k]));
        TAPI_OK(jobq_filter_set_state(f, states[s]));
        TAPI_OK(jobq_filter_set_newest_first(f, 0));
        jobq_page_t *p = list(q, f);
        size_t at = 0;
        for (int i = 0; i < N; i++) {
          const char *own = i % 4 == 0 ? "ann" : i % 4 == 1 ? "ben" : NULL;
          int match = (owners[o] == NULL || (own && strcmp(own, owners[o]) == 0)) &&
                      (kind_f[k] == NULL || strcmp(kinds[i % 3], kind_f[k]) == 0) &&
                      (states[s] == -1 || state_of[i] == states[s]);
          if (!match) continue;
          const jobq_job_t *j = jobq_page_job(p, at++);
          if (j == NULL)
            fail_msg("owner %s kind %s state %d: job %d missing", owners[o] ? owners[o] : "-",
                     kind_f[k] ? kind_f[k] : "-", states[s], i);
          assert_string_equal(jobq_job_id(j), ids[i]);
          assert_int_equal(jobq_job_state(j), state_of[i]);
          assert_string_equal(jobq_job_kind(j), kinds[i % 3]);
          if (own) assert_string_equal(jobq_job_owner(j), own);
          else assert_null(jobq_job_owner(j));
        }
        if (jobq_page_count(p) != at)
          fail_msg("owner %s kind %s state %d: %zu jobs, expected %zu", owners[o] ? owners[o] : "-",
                   kind_f[k] ? kind_f[k] : "-", states[s], jobq_page_count(p), at);
        assert_null(jobq_page_next_cursor(p));
        jobq_page_free(p);
        jobq_filter_free(f);
      }
    }
  }
  /* paging within a filter: kind b, 2 per page, newest first: 10, 7, 4, 1 */
  jobq_filter_t *f = jobq_filter_new();
  TAPI_OK(jobq_filter_set_kind(f, "b"));
  TAPI_OK(jobq_filter_set_limit(f, 2));
  char expect[4][JOBQ_ID_SIZE];
  int order[] = {10, 7, 4, 1};
  for (int i = 0; i < 4; i++) memcpy(expect[i], ids[order[i]], JOBQ_ID_SIZE);
  const size_t sizes[] = {2, 2};
  page_through(q, f, sizes, 2, expect, 4);
  jobq_filter_free(f);
  TAPI_OK(jobq_ctx_succeed(c0, NULL));
  jobq_submit_opts_free(ann);
  jobq_submit_opts_free(ben);
  tapi_close(q);
}

/* A job in a page is a snapshot like jobq_get's: same fields. */
static void test_list_snapshot_matches_get(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 777);
  jobq_t *q = tapi_open(&clk, 0);
  char done[JOBQ_ID_SIZE], running[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "{\"a\":1}", NULL, done));
  TAPI_OK(jobq_submit(q, "k", "[2]", NULL, running));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_fail(ctx, "err", 0));
  ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_progress(ctx, 10, "s"));
  jobq_filter_t *f = jobq_filter_new();
  TAPI_OK(jobq_filter_set_newest_first(f, 0));
  jobq_page_t *p = list(q, f);
  assert_int_equal(jobq_page_count(p), 2);
  for (size_t i = 0; i < 2; i++) {
    const jobq_job_t *lj = jobq_page_job(p, i);
    jobq_job_t *gj = NULL;
    TAPI_OK(jobq_get(q, jobq_job_id(lj), &gj));
    char *a = jobq_job_to_json(lj), *b = jobq_job_to_json(gj);
    assert_string_equal(a, b);
    jobq_free(a);
    jobq_free(b);
    jobq_job_free(gj);
  }
  jobq_page_free(p);
  jobq_filter_free(f);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  tapi_close(q);
}

/* jobq.h: "Only jobq_get fills [position]; snapshots in a jobq_list page
 * say -1", and the estimate likewise. */
static void test_list_position_is_minus_one(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char ids[3][JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) TAPI_OK(jobq_submit(q, "k", NULL, NULL, ids[i]));
  jobq_page_t *p = list(q, NULL);
  assert_int_equal(jobq_page_count(p), 3);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(jobq_job_position(jobq_page_job(p, i)), -1);
    assert_int_equal(jobq_job_eta_ms(jobq_page_job(p, i)), -1);
    assert_int_equal(jobq_job_state(jobq_page_job(p, i)), JOBQ_QUEUED);
  }
  for (int i = 0; i < 3; i++) assert_int_equal(pos(q, ids[i]), i);
  jobq_page_free(p);
  tapi_close(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_get_errors),
    cmocka_unit_test(test_snapshot_queued),
    cmocka_unit_test(test_snapshot_running),
    cmocka_unit_test(test_snapshot_succeeded),
    cmocka_unit_test(test_snapshot_failed_with_attempts),
    cmocka_unit_test(test_final_progress_reaches_storage),
    cmocka_unit_test(test_snapshot_cancelled_queued),
    cmocka_unit_test(test_snapshot_null_accessors),
    cmocka_unit_test(test_position),
    cmocka_unit_test(test_to_json_queued),
    cmocka_unit_test(test_to_json_finished),
    cmocka_unit_test(test_to_json_valid_after_cut_utf8_error),
    cmocka_unit_test(test_to_json_big_integer_payload),
    cmocka_unit_test(test_to_json_nul_escape_payload),
    cmocka_unit_test(test_list_errors_and_empty),
    cmocka_unit_test(test_list_bad_cursor),
    cmocka_unit_test(test_list_order_and_limit),
    cmocka_unit_test(test_list_cursor_paging),
    cmocka_unit_test(test_list_filters),
    cmocka_unit_test(test_list_snapshot_matches_get),
    cmocka_unit_test(test_list_position_is_minus_one),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
