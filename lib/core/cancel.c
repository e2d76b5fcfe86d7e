/* Cancelling. Storage decides atomically between "queued: cancelled now" and
 * "running: flag it"; the core then tells the attempt, if it runs here. */
#include "core/internal.h"
#include "core/stats.h"

#include <stdlib.h>
#include <string.h>

void jobq__cancel_hints_clear(jobq_t *q) {
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&q->claim.cancel_hints, &cur));) free(e->val);
  jobq__map_free(&q->claim.cancel_hints);
}

JOBQ_API int jobq_cancel(jobq_t *q, const char *id) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_cancel: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_cancel");
  if (id == NULL || *id == '\0') return jobq__err(JOBQ_EINVAL, "jobq_cancel: id is NULL or empty");
  if (strlen(id) != JOBQ_ID_SIZE - 1)
    return jobq__err(JOBQ_ENOTFOUND, "jobq_cancel: no job '%.64s'", id);
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "jobq_cancel: the queue is closing");
  }
  int held = jobq__events_on(q) && jobq__hold_begin(q, id) == 0;
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  int state = -1;
  char *kind = NULL;
  int64_t now = jobq__now(q);
  int rc = q->ops->cancel(q->st, id, now, &state, &kind);
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  if (rc == JOBQ_ENOTFOUND) {
    rc = jobq__err(rc, "jobq_cancel: no job %s", id);
  } else if (rc == JOBQ_ESTATE) {
    rc = jobq__err(rc, "jobq_cancel: job %s is already %s", id,
                   jobq_state_name(state) ? jobq_state_name(state) : "finished");
  } else if (rc == 0 && state == JOBQ_CANCELLED) {
    jobq__stats_count(q, kind, JOBQ_STAT_CANCELLED, 1);
    jobq__emit_now(q, JOBQ_EVENT_CANCELLED, id, kind, JOBQ_CANCELLED, 0, NULL, 0, "cancelled", NULL);
    jobq__notify_waiters(q, id);
    jobq__wh_kick(q);
  } else if (rc == 0 && state == JOBQ_RUNNING) {
    jobq_ctx_t *ctx = jobq__map_get(&q->running.map, id);
    if (ctx) {
      atomic_store(&ctx->cancelled, 1);
    } else if (q->claim.in_flight > 0) {
      /* A claim of ours may be returning this very job: let it know. */
      char *copy = jobq__strdup(id);
      if (copy && jobq__map_put(&q->claim.cancel_hints, copy, copy) != 0) free(copy);
    }
    jobq__notify_waiters(q, id);
  }
  if (held) jobq__hold_end(q, id, 0, NULL);
  uv_mutex_unlock(&q->mu);
  free(kind);
  return rc;
}
