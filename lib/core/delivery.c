/* Delivery records and the public view of the outbox (jobq_webhook_deliveries
 * and its getters). */
#include "core/internal.h"
#include "core/webhook_int.h"
#include "net/addrpolicy.h"
#include "util/sbuf.h"

#include <stdlib.h>
#include <string.h>

JOBQ_API void jobq_storage_delivery_clear(jobq_storage_delivery *d) {
  if (d == NULL) return;
  free(d->id);
  free(d->endpoint);
  free(d->url);
  free(d->last_error);
  memset(d, 0, sizeof *d);
}

/* ---- reading the outbox ---- */

struct jobq_delivery_s {
  jobq_storage_delivery rec;
};

struct jobq_deliveries_s {
  size_t n;
  jobq_delivery_t *v;
  char *next_cursor;
};

static const char *const state_names[] = {"pending", "sending", "delivered", "failed"};

JOBQ_API const char *jobq_delivery_state_name(int state) {
  return state >= 0 && state <= JOBQ_DELIVERY_FAILED ? state_names[state] : NULL;
}

static int outbox_check(jobq_t *q, const char *fn) {
  if (!q->ops_outbox)
    return jobq__err(JOBQ_ENOTSUP, "%s: the %s backend keeps no webhook outbox", fn,
                     q->ops->scheme);
  return 0;
}

/* Counts a storage call as jobq_close expects (it waits for them). */
static int begin(jobq_t *q, const char *fn) {
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
  }
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  jobq__set_detail("");
  return 0;
}

static int end(jobq_t *q, const char *fn, int rc) {
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  uv_mutex_unlock(&q->mu);
  if (rc < 0 && jobq_last_error()[0] == '\0') jobq__err(rc, "%s: storage failed", fn);
  return rc;
}

JOBQ_API int jobq_webhook_deliveries(jobq_t *q, const char *job_id, int state, int limit,
                                     const char *cursor, jobq_deliveries_t **out) {
  static const char fn[] = "jobq_webhook_deliveries";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "%s: out is NULL", fn);
  if (state < -1 || state > JOBQ_DELIVERY_FAILED)
    return jobq__err(JOBQ_EINVAL, "%s: state is %d; it must be -1 (any) or a JOBQ_DELIVERY_*", fn,
                     state);
  if (limit < 1 || limit > 1000)
    return jobq__err(JOBQ_EINVAL, "%s: limit is %d; it must be 1..1000", fn, limit);
  if (job_id && strlen(job_id) != JOBQ_ID_SIZE - 1)
    return jobq__err(JOBQ_EINVAL, "%s: job_id is not a job id (36 characters)", fn);
  if (cursor && (cursor[0] == '\0' || strlen(cursor) > 256))
    return jobq__err(JOBQ_EINVAL, "%s: cursor is empty or longer than 256 bytes", fn);
  int rc = outbox_check(q, fn);
  if (rc) return rc;
  jobq_deliveries_t *d = calloc(1, sizeof *d);
  if (d == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  jobq_storage_outbox_filter f = {job_id, state, limit, cursor};
  jobq_storage_delivery *recs = NULL;
  size_t n = 0;
  int more = 0;
  if ((rc = begin(q, fn)) != 0) {
    free(d);
    return rc;
  }
  rc = end(q, fn, q->ops->outbox_list(q->st, &f, &recs, &n, &more));
  if (rc) {
    free(d);
    return rc;
  }
  /* jobq_delivery_t wraps the record: the array is reused as it is. */
  _Static_assert(sizeof(jobq_delivery_t) == sizeof(jobq_storage_delivery), "wrapper");
  d->v = (jobq_delivery_t *)recs;
  d->n = n;
  if (more && n > 0 && (d->next_cursor = jobq__strdup(recs[n - 1].id)) == NULL) {
    jobq_deliveries_free(d);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  }
  *out = d;
  return 0;
}

JOBQ_API size_t jobq_deliveries_count(const jobq_deliveries_t *d) { return d ? d->n : 0; }
JOBQ_API const jobq_delivery_t *jobq_deliveries_at(const jobq_deliveries_t *d, size_t i) {
  return d && i < d->n ? &d->v[i] : NULL;
}
JOBQ_API const char *jobq_deliveries_next_cursor(const jobq_deliveries_t *d) {
  return d ? d->next_cursor : NULL;
}

JOBQ_API void jobq_deliveries_free(jobq_deliveries_t *d) {
  if (d == NULL) return;
  for (size_t i = 0; i < d->n; i++) jobq_storage_delivery_clear(&d->v[i].rec);
  free(d->v);
  free(d->next_cursor);
  free(d);
}

JOBQ_API const char *jobq_delivery_id(const jobq_delivery_t *d) { return d ? d->rec.id : NULL; }
JOBQ_API const char *jobq_delivery_job_id(const jobq_delivery_t *d) {
  return d ? d->rec.job_id : NULL;
}
JOBQ_API const char *jobq_delivery_endpoint(const jobq_delivery_t *d) {
  return d ? d->rec.endpoint : NULL;
}
JOBQ_API const char *jobq_delivery_url(const jobq_delivery_t *d) { return d ? d->rec.url : NULL; }
JOBQ_API int jobq_delivery_event(const jobq_delivery_t *d) {
  return d ? d->rec.event : JOBQ_EINVAL;
}
JOBQ_API int jobq_delivery_state(const jobq_delivery_t *d) {
  return d ? d->rec.state : JOBQ_EINVAL;
}
JOBQ_API int jobq_delivery_attempts(const jobq_delivery_t *d) {
  return d ? d->rec.attempts : JOBQ_EINVAL;
}
JOBQ_API int jobq_delivery_last_status(const jobq_delivery_t *d) {
  return d ? d->rec.last_status : JOBQ_EINVAL;
}
JOBQ_API const char *jobq_delivery_last_error(const jobq_delivery_t *d) {
  return d ? d->rec.last_error : NULL;
}
JOBQ_API int64_t jobq_delivery_created_at(const jobq_delivery_t *d) {
  return d ? d->rec.created_at : JOBQ_EINVAL;
}
JOBQ_API int64_t jobq_delivery_next_at(const jobq_delivery_t *d) {
  return d ? d->rec.next_at : JOBQ_EINVAL;
}
JOBQ_API int64_t jobq_delivery_updated_at(const jobq_delivery_t *d) {
  return d ? d->rec.updated_at : JOBQ_EINVAL;
}

static void time_field(jobq_sbuf *b, const char *key, int *first, int64_t ms) {
  jobq__sb_key(b, key, first);
  if (ms <= 0) {
    jobq__sb_str(b, "null");
    return;
  }
  char t[40];
  jobq__wh_iso(ms, t, sizeof t);
  jobq__sb_json_str(b, t);
}

JOBQ_API char *jobq_deliveries_to_json(const jobq_deliveries_t *d) {
  if (d == NULL) {
    jobq__err(JOBQ_EINVAL, "jobq_deliveries_to_json: d is NULL");
    return NULL;
  }
  jobq_sbuf b = {0};
  jobq__sb_str(&b, "{\"deliveries\":[");
  for (size_t i = 0; i < d->n; i++) {
    const jobq_storage_delivery *r = &d->v[i].rec;
    int first = 1;
    jobq__sb_str(&b, i ? ",{" : "{");
    jobq__sb_key(&b, "id", &first);
    jobq__sb_json_str(&b, r->id);
    jobq__sb_key(&b, "jobId", &first);
    jobq__sb_json_str(&b, r->job_id);
    jobq__sb_key(&b, "endpoint", &first);
    jobq__sb_json_str(&b, r->endpoint ? r->endpoint : "");
    jobq__sb_key(&b, "url", &first);
    if (r->url) jobq__sb_json_str(&b, r->url);
    else jobq__sb_str(&b, "null");
    jobq__sb_key(&b, "type", &first);
    jobq__sb_json_str(&b, jobq__wh_event_type(r->event));
    jobq__sb_key(&b, "state", &first);
    jobq__sb_json_str(&b, jobq_delivery_state_name(r->state) ? jobq_delivery_state_name(r->state)
                                                              : "unknown");
    jobq__sb_key(&b, "attempts", &first);
    jobq__sb_int(&b, r->attempts);
    jobq__sb_key(&b, "lastStatus", &first);
    if (r->last_status) jobq__sb_int(&b, r->last_status);
    else jobq__sb_str(&b, "null");
    jobq__sb_key(&b, "lastError", &first);
    if (r->last_error) jobq__sb_json_str(&b, r->last_error);
    else jobq__sb_str(&b, "null");
    time_field(&b, "createdAt", &first, r->created_at);
    time_field(&b, "nextAt", &first, r->next_at);
    time_field(&b, "updatedAt", &first, r->updated_at);
    jobq__sb_str(&b, "}");
  }
  jobq__sb_str(&b, "],\"nextCursor\":");
  if (d->next_cursor) jobq__sb_json_str(&b, d->next_cursor);
  else jobq__sb_str(&b, "null");
  jobq__sb_str(&b, "}");
  char *s = jobq__sb_take(&b);
  if (s == NULL) jobq__err(JOBQ_ENOMEM, "jobq_deliveries_to_json: out of memory");
  return s;
}

/* ---- operators' actions ---- */

JOBQ_API int jobq_webhook_redeliver(jobq_t *q, const char *delivery_id) {
  static const char fn[] = "jobq_webhook_redeliver";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (delivery_id == NULL || delivery_id[0] == '\0' || strlen(delivery_id) > 256)
    return jobq__err(JOBQ_EINVAL, "%s: delivery_id is NULL, empty or longer than 256 bytes", fn);
  int rc = outbox_check(q, fn);
  if (rc || (rc = begin(q, fn)) != 0) return rc;
  rc = q->ops->outbox_redeliver(q->st, delivery_id, jobq__now(q));
  if (rc == JOBQ_ENOTFOUND) jobq__err(rc, "%s: no delivery '%.256s'", fn, delivery_id);
  else if (rc == JOBQ_ESTATE)
    jobq__err(rc, "%s: delivery '%.256s' has not failed; only a failed one is sent again", fn,
              delivery_id);
  rc = end(q, fn, rc);
  if (rc == 0) jobq__wh_kick(q);
  return rc;
}

JOBQ_API int jobq_webhook_enable(jobq_t *q, const char *url) {
  static const char fn[] = "jobq_webhook_enable";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (url == NULL || url[0] == '\0' || strlen(url) > JOBQ_WEBHOOK_URL_MAX)
    return jobq__err(JOBQ_EINVAL, "%s: url is NULL, empty or longer than %d bytes", fn,
                     JOBQ_WEBHOOK_URL_MAX);
  int rc = outbox_check(q, fn);
  if (rc || (rc = begin(q, fn)) != 0) return rc;
  rc = q->ops->webhook_enable(q->st, url);
  if (rc == JOBQ_ENOTFOUND) jobq__err(rc, "%s: that URL is not disabled", fn);
  rc = end(q, fn, rc);
  if (rc == 0) jobq__wh_kick(q);
  return rc;
}
