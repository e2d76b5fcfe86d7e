/* Allocation-failure torture of the core (see torture.h): a scenario that
 * uses most of the API, with each of its allocations failing in turn. State
 * must stay consistent: a refused submit stores nothing, a refused finish
 * leaves the attempt open to finish again. */
#include "torture.h"

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
  torture_run(scenario, 21, "core");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_torture)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
