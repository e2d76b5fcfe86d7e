/* A program written against an installed libjobq, as a user would: it sees
 * only <jobq.h> and links through pkg-config or find_package(jobq). */
#include <jobq.h>

#include <stdio.h>
#include <string.h>

int main(void) {
  if (jobq_version() != JOBQ_VERSION_HEX ||
      strcmp(jobq_version_string(), JOBQ_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s and library %s disagree\n", JOBQ_VERSION_STRING,
            jobq_version_string());
    return 1;
  }
  jobq_options_t *opts = jobq_options_new();
  if (opts == NULL) return 1;
  int rc = jobq_options_set_storage(opts, "memory:");
  if (rc != JOBQ_OK) {
    fprintf(stderr, "set_storage: %s (%s)\n", jobq_err_name(rc), jobq_last_error());
    return 1;
  }
  jobq_t *q = NULL;
  rc = jobq_open(&q, opts);
  jobq_options_free(opts);
  if (rc != JOBQ_OK) {
    fprintf(stderr, "jobq_open: %s (%s)\n", jobq_err_name(rc), jobq_last_error());
    return 1;
  }
  rc = jobq_close(q, 0);
  if (rc != JOBQ_OK) {
    fprintf(stderr, "jobq_close: %s (%s)\n", jobq_err_name(rc), jobq_last_error());
    return 1;
  }
  printf("libjobq %s ok\n", jobq_version_string());
  return 0;
}
