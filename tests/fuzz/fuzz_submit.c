/* Fuzz target: submitting arbitrary kinds and payloads, and reading them
 * back. Whatever the input, a submit either stores exactly the payload given
 * or is refused with a code and a sentence, and nothing crashes or leaks. */
#include <jobq.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static jobq_t *q;
static long runs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A fresh queue now and then keeps memory flat over millions of runs. */
  if (q && ++runs % 20000 == 0) {
    jobq_close(q, 0);
    q = NULL;
  }
  if (q == NULL) {
    jobq_options_t *o = jobq_options_new();
    jobq_options_set_workers(o, 0);
    jobq_options_set_max_payload(o, 4096);
    if (jobq_open(&q, o) != 0) abort();
    jobq_options_free(o);
  }
  /* Input: kind, NUL, payload. */
  char *buf = malloc(size + 2);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  buf[size] = buf[size + 1] = '\0';
  const char *kind = buf;
  const char *payload = buf + strlen(buf) + 1;
  if (payload > buf + size) payload = buf + size;
  char id[JOBQ_ID_SIZE];
  int rc = jobq_submit(q, kind, payload, NULL, id);
  if (rc == 0) {
    jobq_job_t *job = NULL;
    if (jobq_get(q, id, &job) != 0) abort();
    if (strcmp(jobq_job_payload(job), payload) != 0 || strcmp(jobq_job_kind(job), kind) != 0)
      abort();
    jobq_job_free(job);
    jobq_ctx_t *ctx = NULL;
    const char *kinds[] = {kind, NULL};
    if (jobq_claim(q, kinds, 0, &ctx) != 0) abort();
    if (jobq_ctx_succeed(ctx, payload) != 0) abort(); /* a valid payload is a valid result */
  } else if (rc > 0 || jobq_last_error()[0] == '\0') {
    abort();
  }
  free(buf);
  return 0;
}
