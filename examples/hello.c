/* hello: the job pattern in one page. Open a queue (./jobq.db, or
 * $JOBQ_STORAGE), register a handler that reports progress, submit a job,
 * watch its events, wait for the result. */
#include <jobq.h>
#include <stdio.h>
#include <stdlib.h>

static void greet(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  const char *steps[] = {"Warming up...", "Thinking...", "Writing..."};
  for (int i = 0; i < 3; i++) {
    if (jobq_ctx_cancelled(ctx)) {
      jobq_ctx_fail(ctx, "cancelled", 0);
      return;
    }
    jobq_ctx_progress(ctx, (i + 1) * 30, steps[i]);
  }
  jobq_ctx_succeed(ctx, "{\"greeting\": \"hello, world\"}");
}

static void on_event(const jobq_event_t *ev, void *ud) {
  (void)ud;
  printf("event %-9s %3d%% %s\n", jobq_event_type_name(jobq_event_type(ev)),
         jobq_event_progress(ev), jobq_event_step(ev) ? jobq_event_step(ev) : "");
}

int main(void) {
  jobq_t *q;
  char id[JOBQ_ID_SIZE];
  jobq_job_t *job = NULL;
  const char *storage = getenv("JOBQ_STORAGE") ? getenv("JOBQ_STORAGE") : "sqlite:jobq.db";
  jobq_options_t *opts = jobq_options_new();
  if (opts == NULL || jobq_options_set_storage(opts, storage) != 0 || jobq_open(&q, opts) != 0 ||
      jobq_register(q, "greet", greet, NULL, NULL) != 0 ||
      jobq_subscribe(q, on_event, NULL) != 0 || jobq_start(q) != 0 ||
      jobq_submit(q, "greet", "{\"name\": \"world\"}", NULL, id) < 0) {
    fprintf(stderr, "hello: %s\n", jobq_last_error());
    return 1;
  }
  jobq_options_free(opts);
  printf("submitted %s\n", id);
  /* Long-poll until the job is finished. */
  while (jobq_wait(q, id, 5000, &job) >= 0 && !jobq_state_is_terminal(jobq_job_state(job))) {
    jobq_job_free(job);
    job = NULL;
  }
  int ok = job && jobq_job_state(job) == JOBQ_SUCCEEDED;
  if (job) printf("%s: %s\n", jobq_state_name(jobq_job_state(job)), jobq_job_result(job));
  jobq_job_free(job);
  jobq_close(q, 1000);
  return ok ? 0 : 1;
}
