/* Allocation-failure torture of libjobq-stages (see torture.h): building
 * and registering a pipeline, with each allocation failing in turn. */
#include "torture.h"

#include <jobq/stages.h>

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
  torture_run(scenario_pipeline, 11, "pipeline");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_torture_pipeline)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
