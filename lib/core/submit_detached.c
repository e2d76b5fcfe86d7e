/* jobq__submit_prepare_detached (core/submit_detached.h): the half of
 * jobq_submit that needs no queue, for backends that insert a job on a
 * connection the host owns. Kept apart from submit.c, whose prepare() reads
 * the queue's own limits and webhook configuration. */
#include "core/submit_detached.h"
#include "core/internal.h"
#include "util/id.h"
#include "util/json.h"

#include <string.h>

JOBQ_PRIVATE int jobq__submit_prepare_detached(const char *fn, const char *kind,
                                               const char *payload,
                                               const jobq_submit_opts_t *so, int64_t now,
                                               jobq_storage_job *rec, int *force) {
  int rc = jobq__kind_name_check(fn, kind);
  if (rc) return rc;
  if (payload == NULL) payload = "null";
  size_t len = strlen(payload);
  if (len > JOBQ_DEFAULT_MAX_PAYLOAD)
    return jobq__err(JOBQ_ETOOBIG, "%s: payload is %zu bytes, the limit is %zu", fn, len,
                     (size_t)JOBQ_DEFAULT_MAX_PAYLOAD);
  if ((rc = jobq__json_check(fn, "payload", payload, len))) return rc;
  memset(rec, 0, sizeof *rec);
  rec->kind = (char *)kind;
  rec->payload = (char *)payload;
  rec->state = JOBQ_QUEUED;
  rec->created_at = now;
  rec->run_at = now;
  rec->position = -1;
  *force = 0;
  if (so) {
    /* The outbox that delivers webhooks belongs to a queue; a job inserted
     * on the host's connection has none to subscribe to. */
    if (so->n_wh)
      return jobq__err(JOBQ_ENOTSUP,
                       "%s: webhooks need a queue (jobq_submit): a job inserted on the host's "
                       "connection cannot subscribe to them",
                       fn);
    rec->owner = so->owner;
    rec->priority = so->priority;
    rec->max_attempts = so->max_attempts;
    rec->dedupe_key = so->dedupe_key;
    rec->dedupe_ttl_ms = so->dedupe_ttl_ms;
    if (so->dedupe_key && so->dedupe_ttl_ms < 0 && -so->dedupe_ttl_ms <= now)
      return jobq__err(JOBQ_EINVAL,
                       "%s: the dedupe key '%.100s' would expire at %lld, which is not after "
                       "now (%lld)",
                       fn, so->dedupe_key, (long long)-so->dedupe_ttl_ms, (long long)now);
    if (so->run_at >= 0) rec->run_at = so->run_at;
    else if (so->delay_ms >= 0) rec->run_at = now + so->delay_ms;
    *force = so->force;
  }
  jobq__id_new(rec->id, now);
  return 0;
}
