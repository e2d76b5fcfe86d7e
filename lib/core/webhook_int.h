/* What the webhook sender's files share (core/webhook.c, webhook_body.c,
 * delivery.c). Nothing here is ABI. */
#ifndef JOBQ_CORE_WEBHOOK_INT_H
#define JOBQ_CORE_WEBHOOK_INT_H

#include "jobq/storage.h"

#include <stddef.h>
#include <stdint.h>

/* ms since the epoch as "2026-12-06T05:36:04.123Z" (cap >= 25). */
void jobq__wh_iso(int64_t ms, char *out, size_t cap);
/* "job.succeeded", "job.failed", "job.cancelled", "job.progress". */
const char *jobq__wh_event_type(int event);
/* The delivery's body from its job as stored (*len its length); NULL when
 * out of memory. now: the timestamp of a progress delivery. */
char *jobq__wh_body(const jobq_storage_delivery *d, const jobq_storage_job *j, int64_t now,
                    size_t *len);
/* The wait before try `attempt` + 1 after try `attempt` failed (see
 * jobq_options_set_webhook_retry), before jitter. */
int64_t jobq__wh_backoff_ms(int attempt, int64_t base_ms, int64_t max_delay_ms);
/* Whether claims of deliveries wait for the workers' short jobs now
 * (core/webhook.c, "Jobs first"): backlog_at is the uv_hrtime() of the
 * last claim that brought short jobs (0: none yet), *since the sender's
 * state (0 at first), kept here. At most yield_ns in a row (0: never);
 * none once the jobs stopped coming. */
int jobq__wh_yield(uint64_t now_ns, uint64_t backlog_at, uint64_t yield_ns, uint64_t *since);

#endif
