/* The summary of a batch that is done, for every backend (storage/batch.h). */
#include "storage/batch.h"
#include "util/sbuf.h"

char *jobq__batch_summary(const jobq_storage_batch *r) {
  jobq_sbuf b = {0};
  int first = 1;
  jobq__sb_str(&b, "{");
  jobq__sb_key(&b, "batchId", &first);
  jobq__sb_json_str(&b, r->id);
  jobq__sb_key(&b, "total", &first);
  jobq__sb_int(&b, r->total);
  jobq__sb_key(&b, "succeeded", &first);
  jobq__sb_int(&b, r->succeeded);
  jobq__sb_key(&b, "failed", &first);
  jobq__sb_int(&b, r->failed);
  jobq__sb_key(&b, "cancelled", &first);
  jobq__sb_int(&b, r->cancelled);
  jobq__sb_key(&b, "errors", &first);
  jobq__sb_str(&b, "[");
  for (int i = 0; i < r->n_errors; i++) {
    jobq__sb_str(&b, i ? ",{\"jobId\":" : "{\"jobId\":");
    jobq__sb_json_str(&b, r->errors[i].job_id);
    jobq__sb_str(&b, ",\"error\":");
    jobq__sb_json_str(&b, r->errors[i].error ? r->errors[i].error : "");
    jobq__sb_str(&b, "}");
  }
  jobq__sb_str(&b, "]}");
  return jobq__sb_take(&b);
}
