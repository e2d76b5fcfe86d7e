/* Batches: snapshots of a batch (jobq_batch_get) and the news that one is
 * done. Submitting one is in core/submit.c (it shares jobq_submit_many's
 * path); storage keeps the batch, caps its running members and decides,
 * inside the transaction that finishes its last member, that it is done
 * (jobq/storage.h, batch_insert). */
#include "core/internal.h"
#include "util/sbuf.h"

#include <stdlib.h>
#include <string.h>

struct jobq_batch_s {
  jobq_storage_batch rec;
};

/* Storage's word that a change of this process finished a batch (any
 * thread, no lock of ours held). Emitted under the job's id, so that while
 * that job's own end event is held back (core/events.c, holds) this one
 * comes after it. */
void jobq__batch_sink(void *ud, const jobq_storage_event *ev) {
  jobq_t *q = ud;
  uv_mutex_lock(&q->mu);
  if (!q->closed)
    jobq__emit(q, JOBQ_EVENT_BATCH_DONE, ev->id ? ev->id : "", ev->kind, ev->state, 0, ev->step, 0,
               NULL, ev->result);
  uv_mutex_unlock(&q->mu);
}

JOBQ_API void jobq_storage_batch_clear(jobq_storage_batch *b) {
  if (b == NULL) return;
  for (int i = 0; i < b->n_errors; i++) free(b->errors[i].error);
  free(b->errors);
  memset(b, 0, sizeof *b);
}

JOBQ_API int jobq_batch_get(jobq_t *q, const char *batch_id, jobq_batch_t **out) {
  static const char fn[] = "jobq_batch_get";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "%s: out is NULL", fn);
  if (batch_id == NULL || batch_id[0] == '\0')
    return jobq__err(JOBQ_EINVAL, "%s: batch_id is NULL or empty", fn);
  if (strlen(batch_id) != JOBQ_ID_SIZE - 1)
    return jobq__err(JOBQ_ENOTFOUND, "%s: no batch '%.64s'", fn, batch_id);
  if (q->ops->version < 3 || q->ops->batch_get == NULL)
    return jobq__err(JOBQ_ENOTSUP, "%s: the %s backend does not keep batches", fn,
                     q->ops->scheme);
  jobq_batch_t *b = calloc(1, sizeof *b);
  if (b == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    free(b);
    return jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
  }
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  jobq__set_detail("");
  int rc = q->ops->batch_get(q->st, batch_id, &b->rec);
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  uv_mutex_unlock(&q->mu);
  if (rc) {
    free(b);
    if (rc == JOBQ_ENOTFOUND) return jobq__err(rc, "%s: no batch %s", fn, batch_id);
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s: storage failed", fn);
    return rc;
  }
  *out = b;
  return 0;
}

JOBQ_API void jobq_batch_free(jobq_batch_t *b) {
  if (b == NULL) return;
  jobq_storage_batch_clear(&b->rec);
  free(b);
}

JOBQ_API const char *jobq_batch_id(const jobq_batch_t *b) { return b ? b->rec.id : NULL; }

JOBQ_API int64_t jobq_batch_count(const jobq_batch_t *b, int state) {
  if (b == NULL) return JOBQ_EINVAL;
  switch (state) {
    case -1: return b->rec.total;
    case JOBQ_QUEUED: return b->rec.queued;
    case JOBQ_RUNNING: return b->rec.running;
    case JOBQ_SUCCEEDED: return b->rec.succeeded;
    case JOBQ_FAILED: return b->rec.failed;
    case JOBQ_CANCELLED: return b->rec.cancelled;
    default: return JOBQ_EINVAL;
  }
}

JOBQ_API int jobq_batch_done(const jobq_batch_t *b) {
  return b ? b->rec.finished_at != 0 : JOBQ_EINVAL;
}
JOBQ_API int jobq_batch_max_running(const jobq_batch_t *b) {
  return b ? b->rec.max_running : JOBQ_EINVAL;
}
JOBQ_API int64_t jobq_batch_created_at(const jobq_batch_t *b) {
  return b ? b->rec.created_at : JOBQ_EINVAL;
}
JOBQ_API int64_t jobq_batch_finished_at(const jobq_batch_t *b) {
  return b ? b->rec.finished_at : JOBQ_EINVAL;
}
JOBQ_API int jobq_batch_error_count(const jobq_batch_t *b) {
  return b ? b->rec.n_errors : JOBQ_EINVAL;
}
JOBQ_API const char *jobq_batch_error_job_id(const jobq_batch_t *b, int i) {
  return b && i >= 0 && i < b->rec.n_errors ? b->rec.errors[i].job_id : NULL;
}
JOBQ_API const char *jobq_batch_error(const jobq_batch_t *b, int i) {
  return b && i >= 0 && i < b->rec.n_errors ? b->rec.errors[i].error : NULL;
}

JOBQ_API char *jobq_batch_to_json(const jobq_batch_t *bt) {
  if (bt == NULL) {
    jobq__err(JOBQ_EINVAL, "jobq_batch_to_json: b is NULL");
    return NULL;
  }
  const jobq_storage_batch *r = &bt->rec;
  jobq_sbuf b = {0};
  int first = 1;
  jobq__sb_str(&b, "{");
  jobq__sb_key(&b, "id", &first);
  jobq__sb_json_str(&b, r->id);
  static const char *const keys[] = {"total", "queued", "running", "succeeded", "failed",
                                     "cancelled"};
  const int64_t vals[] = {r->total, r->queued, r->running, r->succeeded, r->failed, r->cancelled};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    jobq__sb_key(&b, keys[i], &first);
    jobq__sb_int(&b, vals[i]);
  }
  jobq__sb_key(&b, "done", &first);
  jobq__sb_str(&b, r->finished_at ? "true" : "false");
  jobq__sb_key(&b, "maxRunning", &first);
  jobq__sb_int(&b, r->max_running);
  jobq__sb_key(&b, "createdAt", &first);
  jobq__sb_int(&b, r->created_at);
  jobq__sb_key(&b, "finishedAt", &first);
  jobq__sb_int(&b, r->finished_at);
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
  char *s = jobq__sb_take(&b);
  if (s == NULL) jobq__err(JOBQ_ENOMEM, "jobq_batch_to_json: out of memory");
  return s;
}
