/* A program written against an installed libjobq-stages, as a user would: it
 * sees <jobq.h> and <jobq/stages.h> and links through pkg-config
 * (libjobq-stages) or find_package(jobq COMPONENTS stages). It runs one job
 * through a two-stage pipeline, so the call from libjobq-stages into libjobq's
 * private functions (and back through the loop) really happens. */
#include <jobq.h>
#include <jobq/stages.h>

#include <stdio.h>
#include <string.h>

static void first(jobq_stage_t *st, void *ud) {
  (void)ud;
  jobq_stage_succeed(st, "{\"n\": 1}");
}

static void second(jobq_stage_t *st, void *ud) {
  (void)ud;
  /* the previous stage's output is this stage's input */
  jobq_stage_succeed(st, strstr(jobq_stage_input(st), "\"n\"") ? "{\"n\": 2}" : "{\"n\": 0}");
}

#define CHECK(call)                                                                   \
  do {                                                                                \
    int rc_ = (call);                                                                 \
    if (rc_ < 0) {                                                                    \
      fprintf(stderr, "%s: %s (%s)\n", #call, jobq_err_name(rc_), jobq_last_error()); \
      return 1;                                                                       \
    }                                                                                 \
  } while (0)

int main(void) {
  jobq_pipeline_t *p = jobq_pipeline_new();
  jobq_options_t *opts = jobq_options_new();
  jobq_t *q = NULL;
  char id[JOBQ_ID_SIZE];
  jobq_job_t *job = NULL;
  if (p == NULL || opts == NULL) return 1;
  CHECK(jobq_pipeline_add_stage(p, "first", first, NULL, JOBQ_STAGE_BLOCKING));
  CHECK(jobq_pipeline_add_stage(p, "second", second, NULL, JOBQ_STAGE_BLOCKING));
  CHECK(jobq_options_set_workers(opts, 1));
  CHECK(jobq_open(&q, opts));
  jobq_options_free(opts);
  CHECK(jobq_register_pipeline(q, "two", p, NULL));
  jobq_pipeline_free(p);
  CHECK(jobq_start(q));
  CHECK(jobq_submit(q, "two", "{}", NULL, id));
  for (int i = 0; i < 100; i++) {
    int rc = jobq_wait(q, id, 100, &job);
    if (rc < 0 && rc != JOBQ_ETIMEDOUT) CHECK(rc);
    if (job && jobq_state_is_terminal(jobq_job_state(job))) break;
    jobq_job_free(job);
    job = NULL;
  }
  if (job == NULL || jobq_job_state(job) != JOBQ_SUCCEEDED ||
      strstr(jobq_job_result(job), "\"n\": 2") == NULL) {
    fprintf(stderr, "the pipeline job did not succeed with the second stage's output: %s\n",
            job ? jobq_job_result(job) : "(no snapshot)");
    return 1;
  }
  jobq_job_free(job);
  CHECK(jobq_close(q, 1000));
  printf("libjobq-stages %s ok\n", jobq_version_string());
  return 0;
}
