/* Allocation-failure torture (after curl's "torture" runs): a scenario that
 * uses most of the API runs once to count the allocations made on the test
 * thread, then once more for each of them with exactly that allocation
 * failing. Every call must then either work or return JOBQ_ENOMEM with a
 * sentence; nothing may crash or leak (ASan/LSan builds check leaks), and
 * state must stay consistent: a refused submit stores nothing, a refused
 * finish leaves the attempt open to finish again.
 *
 * Allocations are wrapped at link time (-Wl,--wrap=malloc,...) and counted
 * on the test thread only, so the count is the same on every run. */
#include <jobq.h>
#include <jobq/stages.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static _Thread_local int armed;   /* count and fail on this thread only */
static _Thread_local long count;  /* allocations seen while armed */
static _Thread_local long fail_at; /* fail the allocation with this number; 0 none */

static int should_fail(void) {
  if (!armed) return 0;
  count++;
  return count == fail_at;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return should_fail() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }

static void on_event(const jobq_event_t *ev, void *ud) {
  (void)ev;
  (void)ud;
}

/* How many jobs the queue holds, counted with allocation failures off. */
static size_t stored(jobq_t *q) {
  int was = armed;
  armed = 0;
  jobq_page_t *p = NULL;
  jobq_filter_t *f = jobq_filter_new();
  jobq_filter_set_limit(f, 1000);
  assert_int_equal(jobq_list(q, f, &p), 0);
  size_t n = jobq_page_count(p);
  jobq_page_free(p);
  jobq_filter_free(f);
  armed = was;
  return n;
}

/* Asserts rc is 0 or ENOMEM with a sentence; returns 1 when it was ENOMEM. */
static int oom(int rc, const char *what) {
  if (rc == JOBQ_ENOMEM) {
    assert_true(strlen(jobq_last_error()) > 0);
    return 1;
  }
  if (rc < 0) fail_msg("%s: unexpected %s: %s", what, jobq_err_name(rc), jobq_last_error());
  return 0;
}

/* Finishes ctx, retrying while the finish is refused for memory (the
 * attempt must stay open for that). */
static void finish(jobq_ctx_t *ctx, int ok) {
  for (int tries = 0;; tries++) {
    int rc = ok ? jobq_ctx_succeed(ctx, "{\"ok\":true}") : jobq_ctx_fail(ctx, "boom", 1);
    if (rc == 0) return;
    assert_int_equal(rc, JOBQ_ENOMEM);
    assert_true(tries < 3);
  }
}

static void scenario(void) {
  jobq_options_t *o = jobq_options_new();
  if (o == NULL) return;
  jobq_t *q = NULL;
  int rc = jobq_options_set_workers(o, 0);
  assert_int_equal(rc, 0);
  if (oom(jobq_options_set_storage(o, "memory:"), "set_storage") ||
      oom(jobq_open(&q, o), "open")) {
    jobq_options_free(o);
    return;
  }
  jobq_options_free(o);

  jobq_event_t *ev = NULL;
  oom(jobq_subscribe(q, on_event, NULL), "subscribe");
  rc = jobq_next_event(q, 0, &ev); /* turns the pull buffer on */
  assert_true(rc == JOBQ_ETIMEDOUT || rc == JOBQ_ENOMEM || rc == 0);
  if (rc == 0) jobq_event_free(ev);

  char id[JOBQ_ID_SIZE], ids[3 * JOBQ_ID_SIZE];
  size_t expect = 0;
  int single = 0;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  if (so && !oom(jobq_submit_opts_set_owner(so, "user-1"), "owner") &&
      !oom(jobq_submit_opts_set_dedupe(so, "key-1", 1000), "dedupe")) {
    rc = jobq_submit(q, "work", "{\"n\":1}", so, id);
    if (!oom(rc, "submit")) single = 1, expect++;
    assert_int_equal(stored(q), expect);
  }
  jobq_submit_opts_free(so);

  const char *kinds[] = {"work", "work", "other"};
  const char *payloads[] = {"[1]", "{\"a\":\"b\"}", "null"};
  rc = jobq_submit_many(q, 3, kinds, payloads, NULL, ids, NULL);
  if (!oom(rc, "submit_many")) expect += 3;
  assert_int_equal(stored(q), expect); /* all or none */

  jobq_job_t *job = NULL;
  if (expect && !oom(jobq_get(q, single ? id : ids, &job), "get")) {
    char *js = jobq_job_to_json(job);
    jobq_free(js);
    jobq_job_free(job);
  }
  jobq_filter_t *f = jobq_filter_new();
  if (f && !oom(jobq_filter_set_owner(f, "user-1"), "filter")) {
    jobq_page_t *p = NULL;
    if (!oom(jobq_list(q, f, &p), "list")) jobq_page_free(p);
  }
  jobq_filter_free(f);

  jobq_ctx_t *ctx = NULL;
  rc = jobq_claim(q, NULL, 0, &ctx);
  if (expect == 0) assert_true(rc == JOBQ_ETIMEDOUT || rc == JOBQ_ENOMEM);
  else if (!oom(rc, "claim")) {
    oom(jobq_ctx_progress(ctx, 50, "half way"), "progress");
    finish(ctx, 1);
  }
  rc = jobq_claim(q, NULL, 0, &ctx);
  if (rc == 0) finish(ctx, 0);
  else assert_true(rc == JOBQ_ETIMEDOUT || rc == JOBQ_ENOMEM);
  if (expect >= 3) {
    rc = jobq_cancel(q, ids + 2 * JOBQ_ID_SIZE);
    assert_true(rc == 0 || rc == JOBQ_ENOMEM || rc == JOBQ_ESTATE);
  }
  while (jobq_next_event(q, 0, &ev) == 0) {
    char *js = jobq_event_to_json(ev);
    jobq_free(js);
    jobq_event_free(ev);
  }
  assert_int_equal(jobq_close(q, 0), 0);
}

static void test_torture(void **state) {
  (void)state;
  armed = 1;
  count = 0;
  fail_at = 0;
  scenario();
  armed = 0;
  long total = count;
  assert_true(total > 20); /* the scenario does allocate */
  for (long k = 1; k <= total; k++) {
    armed = 1;
    count = 0;
    fail_at = k;
    scenario();
    armed = 0;
  }
  print_message("torture: %ld allocations, each failed once\n", total);
}

static void noop_stage(jobq_stage_t *st, void *ud) {
  (void)ud;
  jobq_stage_succeed(st, "{}");
}

/* Building and registering a pipeline: every refusal is JOBQ_ENOMEM with a
 * sentence, and nothing leaks whatever allocation fails. */
static void scenario_pipeline(void) {
  jobq_pipeline_t *p = jobq_pipeline_new();
  if (p == NULL) return;
  int have_first = !oom(jobq_pipeline_add_stage(p, "first", noop_stage, NULL, JOBQ_STAGE_BLOCKING),
                        "add_stage");
  oom(jobq_pipeline_add_config(p, "{\"script\": {\"provider\": \"template\", \"hosts\": [\"A\", \"B\"]},"
                                  " \"upload\": {\"provider\": \"local\", \"dir\": \"/tmp/jobq-torture-up\","
                                  " \"key_prefix\": \"shows/\"}}"),
      "add_config");
  if (have_first) oom(jobq_pipeline_set_progress(p, "first", 0, 5, "Preparing..."), "set_progress");
  jobq_options_t *o = jobq_options_new();
  jobq_t *q = NULL;
  if (o && !oom(jobq_options_set_workdir(o, "/tmp/jobq-torture-work"), "set_workdir") &&
      !oom(jobq_open(&q, o), "open")) {
    oom(jobq_register_pipeline(q, "pipe", p, NULL), "register_pipeline");
    size_t n = 0;
    oom(jobq_prune(q, 0, &n), "prune");
    assert_int_equal(jobq_close(q, 0), 0);
  }
  jobq_options_free(o);
  jobq_pipeline_free(p);
}

static void test_torture_pipeline(void **state) {
  (void)state;
  armed = 1;
  count = 0;
  fail_at = 0;
  scenario_pipeline();
  armed = 0;
  long total = count;
  assert_true(total > 10);
  for (long k = 1; k <= total; k++) {
    armed = 1;
    count = 0;
    fail_at = k;
    scenario_pipeline();
    armed = 0;
  }
  print_message("torture (pipeline): %ld allocations, each failed once\n", total);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_torture),
                                     cmocka_unit_test(test_torture_pipeline)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
