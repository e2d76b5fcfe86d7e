/* The body of a webhook delivery, in the shape the Standard Webhooks
 * specification recommends: {"type", "timestamp", "data"}. It is built when
 * the delivery is sent, from the job as stored: a terminal job no longer
 * changes, so every try of a delivery sends the same bytes; a progress
 * delivery carries the latest progress (that is the coalescing). */
#include "core/internal.h"
#include "core/webhook_int.h"
#include "util/sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "2026-12-06T05:36:04.123Z"; cap >= 25. */
void jobq__wh_iso(int64_t ms, char *out, size_t cap) {
  time_t t = (time_t)(ms / 1000);
  int frac = (int)(ms % 1000);
  if (frac < 0) {
    frac += 1000;
    t -= 1;
  }
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL) {
    snprintf(out, cap, "1970-01-01T00:00:00.000Z");
    return;
  }
  snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static void time_or_null(jobq_sbuf *b, int64_t ms) {
  if (ms <= 0) {
    jobq__sb_str(b, "null");
    return;
  }
  char t[40];
  jobq__wh_iso(ms, t, sizeof t);
  jobq__sb_json_str(b, t);
}

static void str_or_null(jobq_sbuf *b, const char *s) {
  if (s) jobq__sb_json_str(b, s);
  else jobq__sb_str(b, "null");
}

const char *jobq__wh_event_type(int event) {
  switch (event) {
  case JOBQ_EVENT_SUCCEEDED: return "job.succeeded";
  case JOBQ_EVENT_FAILED: return "job.failed";
  case JOBQ_EVENT_CANCELLED: return "job.cancelled";
  case JOBQ_EVENT_PROGRESS: return "job.progress";
  default: return "job.unknown";
  }
}

char *jobq__wh_body(const jobq_storage_delivery *d, const jobq_storage_job *j, int64_t now,
                    size_t *len) {
  jobq_sbuf b = {0};
  int terminal = d->event != JOBQ_EVENT_PROGRESS;
  jobq__sb_str(&b, "{\"type\":");
  jobq__sb_json_str(&b, jobq__wh_event_type(d->event));
  jobq__sb_str(&b, ",\"timestamp\":");
  /* When it happened: the job's end, or for progress the moment it is sent
   * (the body carries the progress of that moment). */
  time_or_null(&b, terminal && j->finished_at > 0 ? j->finished_at : now);
  jobq__sb_str(&b, ",\"data\":{\"jobId\":");
  jobq__sb_json_str(&b, j->id);
  jobq__sb_str(&b, ",\"kind\":");
  str_or_null(&b, j->kind);
  jobq__sb_str(&b, ",\"owner\":");
  str_or_null(&b, j->owner);
  jobq__sb_str(&b, ",\"state\":");
  str_or_null(&b, jobq_state_name(j->state));
  jobq__sb_str(&b, ",\"progress\":");
  jobq__sb_int(&b, j->progress);
  jobq__sb_str(&b, ",\"step\":");
  str_or_null(&b, j->step);
  jobq__sb_str(&b, ",\"result\":");
  /* Stored results are JSON already (checked when the handler gave them). */
  jobq__sb_str(&b, j->result && j->state == JOBQ_SUCCEEDED ? j->result : "null");
  jobq__sb_str(&b, ",\"error\":");
  str_or_null(&b, j->state == JOBQ_SUCCEEDED ? NULL : j->error);
  jobq__sb_str(&b, ",\"attempts\":");
  jobq__sb_int(&b, j->attempts);
  jobq__sb_str(&b, ",\"createdAt\":");
  time_or_null(&b, j->created_at);
  jobq__sb_str(&b, ",\"startedAt\":");
  time_or_null(&b, j->started_at);
  jobq__sb_str(&b, ",\"finishedAt\":");
  time_or_null(&b, j->finished_at);
  jobq__sb_str(&b, ",\"durationMs\":");
  if (j->finished_at > 0 && j->started_at > 0 && j->finished_at >= j->started_at)
    jobq__sb_int(&b, j->finished_at - j->started_at);
  else
    jobq__sb_str(&b, "null");
  if (d->flags & 1) {
    jobq__sb_str(&b, ",\"payload\":");
    jobq__sb_str(&b, j->payload ? j->payload : "null");
  }
  jobq__sb_str(&b, "},\"deliveryId\":");
  jobq__sb_json_str(&b, d->id);
  jobq__sb_str(&b, "}");
  if (b.failed) {
    free(b.p);
    return NULL;
  }
  *len = b.n;
  return jobq__sb_take(&b);
}
