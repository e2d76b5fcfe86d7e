/* Submitting: checks every job first, then stores them in one batch, then
 * tells claimers and listeners. A job is visible to nobody before it is
 * stored, and nothing is stored when any job of a batch is refused. */
#include "core/internal.h"
#include "core/stats.h"
#include "util/id.h"
#include "util/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fills rec (borrowing the caller's strings) or returns the refusal. */
static int prepare(jobq_t *q, const char *fn, const char *kind, const char *payload,
                   const jobq_submit_opts_t *so, int64_t now, jobq_storage_job *rec, int *force,
                   char **hooks) {
  *hooks = NULL;
  int rc = jobq__kind_name_check(fn, kind);
  if (rc) return rc;
  if (payload == NULL) payload = "null";
  size_t len = strlen(payload);
  if (len > q->o.max_payload)
    return jobq__err(JOBQ_ETOOBIG, "%s: payload is %zu bytes, the limit is %zu", fn, len,
                     q->o.max_payload);
  rc = jobq__json_check(fn, "payload", payload, len);
  if (rc) return rc;
  memset(rec, 0, sizeof *rec);
  rec->kind = (char *)kind;
  rec->payload = (char *)payload;
  rec->state = JOBQ_QUEUED;
  rec->created_at = now;
  rec->run_at = now;
  rec->position = -1;
  *force = 0;
  if (so) {
    rec->owner = so->owner;
    rec->priority = so->priority;
    rec->max_attempts = so->max_attempts; /* 0: the runner's kind default */
    rec->dedupe_key = so->dedupe_key;
    rec->dedupe_ttl_ms = so->dedupe_ttl_ms;
    if (so->dedupe_key && so->dedupe_ttl_ms < 0) {
      /* An absolute expiry (jobq_submit_opts_set_dedupe_until). */
      if (q->ops->version < 3)
        return jobq__err(JOBQ_ENOTSUP,
                         "%s: the %s backend cannot keep a dedupe key until a set time", fn,
                         q->ops->scheme);
      if (-so->dedupe_ttl_ms <= now)
        return jobq__err(JOBQ_EINVAL,
                         "%s: the dedupe key '%.100s' would expire at %lld, which is not after "
                         "now (%lld)",
                         fn, so->dedupe_key, (long long)-so->dedupe_ttl_ms, (long long)now);
    }
    if (so->run_at >= 0) rec->run_at = so->run_at;
    else if (so->delay_ms >= 0) rec->run_at = now + so->delay_ms;
    *force = so->force;
  }
  /* The webhooks it subscribes to: its own and its kind's defaults. */
  if ((so && so->n_wh) || q->wh_cfg.n) {
    rc = jobq__wh_hooks_json(q, fn, kind, so ? so->wh : NULL, so ? so->n_wh : 0, hooks);
    if (rc) return rc;
  }
  jobq__id_new(rec->id, now);
  return 0;
}

/* The common case (events off, jobs due now) touches the core lock only to
 * wake a sleeping worker: submitting threads then contend on storage alone. */
static int store(jobq_t *q, const char *fn, jobq_storage_job **recs, char *const *hooks,
                 size_t n, const int *force, int64_t now, int *dup, const char *batch_id,
                 int max_running) {
  /* The storage call is counted like any other (jobq__storage_begin/end),
   * but without the lock: announce it before checking closed; jobq_close
   * sets closed before it waits for ops_in_flight to drain, so one of us
   * sees the other. Every way out goes through `out`, whose decrement is
   * the last touch of q. */
  q->ops_in_flight++;
  int rc = 0, held = 0;
  /* A dedupe hit replaces a job's id with the existing job's: the holds
   * are under the ids we made. */
  char (*made)[JOBQ_ID_SIZE] = NULL;
  if (q->closed) {
    rc = jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
    goto out;
  }
  if (atomic_load(&q->events.flag)) {
    uv_mutex_lock(&q->mu);
    held = jobq__events_on(q);
    for (size_t i = 0; held && i < n; i++) {
      if (jobq__hold_begin(q, recs[i]->id) != 0) {
        for (size_t j = 0; j < i; j++) jobq__hold_end(q, recs[j]->id, 0, NULL);
        uv_mutex_unlock(&q->mu);
        rc = jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
        goto out;
      }
    }
    uv_mutex_unlock(&q->mu);
  }
  if (held) {
    made = malloc(n * sizeof *made);
    if (made == NULL) {
      uv_mutex_lock(&q->mu);
      for (size_t i = 0; i < n; i++) jobq__hold_end(q, recs[i]->id, 0, NULL);
      uv_mutex_unlock(&q->mu);
      rc = jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
      goto out;
    }
    for (size_t i = 0; i < n; i++) memcpy(made[i], recs[i]->id, JOBQ_ID_SIZE);
  }
  jobq__set_detail(""); /* so that a backend's own sentence is not mistaken */
  if (hooks) /* someone subscribes: storage adds deliveries when the job ends */
    rc = q->ops->insert_hooked(q->st, recs, (const char *const *)hooks, n, force, now, dup,
                               batch_id, max_running);
  else if (batch_id)
    rc = q->ops->batch_insert(q->st, batch_id, max_running, recs, n, force, now, dup);
  else
    rc = q->ops->insert(q->st, recs, n, force, now, dup);

  if (rc < 0) {
    if (held) {
      uv_mutex_lock(&q->mu);
      for (size_t i = 0; i < n; i++) jobq__hold_end(q, made[i], 0, NULL);
      uv_mutex_unlock(&q->mu);
    }
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s: storage refused the job", fn);
    goto out;
  }
  rc = 0;
  int keyed = 0;
  for (size_t i = 0; i < n && !keyed; i++) keyed = recs[i]->dedupe_key != NULL;
  if (keyed) {
    /* The result cache's hits and misses (core/stats.c); only keyed
     * submits take the lock for it. */
    uv_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++)
      if (recs[i]->dedupe_key)
        jobq__stats_count(q, recs[i]->kind, dup[i] ? JOBQ_STAT_CACHE_HIT : JOBQ_STAT_CACHE_MISS, 1);
    uv_mutex_unlock(&q->mu);
  }
  int due = 0, delayed = 0;
  for (size_t i = 0; i < n; i++) {
    if (dup[i]) continue;
    if (recs[i]->run_at <= now) due = 1;
    else delayed = 1;
  }
  if (due) {
    q->claim.work_gen++;
    jobq__poll_signal(q); /* pull consumers watching jobq_poll_fd */
  }
  if (held || delayed || atomic_load(&q->events.flag) || (due && q->claim.idle > 0)) {
    uv_mutex_lock(&q->mu);
    for (size_t i = 0; delayed && i < n; i++) {
      if (!dup[i] && recs[i]->run_at > now && recs[i]->run_at < q->loop_s.wake_at) {
        q->loop_s.wake_at = recs[i]->run_at;
        jobq__kick_loop(q);
      }
    }
    if (due && q->claim.idle > 0) uv_cond_broadcast(&q->claim.work_cv);
    for (size_t i = 0; (held || jobq__events_on(q)) && i < n; i++) {
      if (held && dup[i]) jobq__hold_end(q, made[i], 0, NULL);
      else jobq__hold_end(q, recs[i]->id, !dup[i], recs[i]->kind);
    }
    uv_mutex_unlock(&q->mu);
  }
out:
  free(made);
  q->ops_in_flight--; /* the last touch of q */
  return rc;
}

/* Refuses a buffer of cap bytes that cannot hold need (the id, or n ids):
 * checked before anything is prepared or stored, so a short buffer stores
 * nothing and is never written. */
static int cap_check(const char *fn, const char *what, size_t cap, size_t need, size_t n) {
  if (cap >= need) return 0;
  if (n == 1)
    return jobq__err(JOBQ_EINVAL, "%s: %s is %zu bytes; an id needs JOBQ_ID_SIZE (%d) bytes", fn,
                     what, cap, JOBQ_ID_SIZE);
  return jobq__err(JOBQ_EINVAL,
                   "%s: %s is %zu bytes; %zu ids need n * JOBQ_ID_SIZE = %zu bytes", fn, what,
                   cap, n, need);
}

/* jobq_submit and jobq_submit_ex: the old form passes SIZE_MAX for the cap
 * it cannot know. */
static int submit_one(jobq_t *q, const char *fn, const char *kind, const char *payload_json,
                      const jobq_submit_opts_t *so, char *out_id, size_t out_cap) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (out_id == NULL) return jobq__err(JOBQ_EINVAL, "%s: out_id is NULL", fn);
  int rc = cap_check(fn, "out_cap", out_cap, JOBQ_ID_SIZE, 1);
  if (rc) return rc;
  jobq_storage_job rec;
  int force, dup = 0;
  char *hooks;
  int64_t now = jobq__now(q);
  rc = prepare(q, fn, kind, payload_json, so, now, &rec, &force, &hooks);
  if (rc) return rc;
  jobq_storage_job *p = &rec;
  rc = store(q, fn, &p, hooks ? &hooks : NULL, 1, &force, now, &dup, NULL, 0);
  free(hooks);
  if (rc) return rc;
  memcpy(out_id, rec.id, JOBQ_ID_SIZE);
  return dup;
}

JOBQ_API int jobq_submit(jobq_t *q, const char *kind, const char *payload_json,
                         const jobq_submit_opts_t *so, char *out_id) {
  return submit_one(q, "jobq_submit", kind, payload_json, so, out_id, SIZE_MAX);
}

JOBQ_API int jobq_submit_ex(jobq_t *q, const char *kind, const char *payload_json,
                            const jobq_submit_opts_t *so, char *out_id, size_t out_cap) {
  return submit_one(q, "jobq_submit_ex", kind, payload_json, so, out_id, out_cap);
}

/* jobq_submit_many, and jobq_batch_submit when batch_id is not NULL. */
static int submit_many(jobq_t *q, const char *fn, size_t n, const char *const *kinds,
                       const char *const *payloads, const jobq_submit_opts_t *const *opts,
                       char *out_ids, size_t ids_cap, const char *cap_name, int *out_dup,
                       const char *batch_id, int max_running) {
  if (kinds == NULL) return jobq__err(JOBQ_EINVAL, "%s: kinds is NULL", fn);
  if (payloads == NULL) return jobq__err(JOBQ_EINVAL, "%s: payloads is NULL", fn);
  if (out_ids == NULL) return jobq__err(JOBQ_EINVAL, "%s: out_ids is NULL", fn);
  if (n > 1000000) return jobq__err(JOBQ_EINVAL, "%s: %zu jobs; at most 1000000 at once", fn, n);
  /* n <= 1000000: the product cannot overflow. */
  int rc = cap_check(fn, cap_name, ids_cap, n * JOBQ_ID_SIZE, n);
  if (rc) return rc;
  jobq_storage_job *recs = malloc(n * sizeof *recs);
  jobq_storage_job **ptrs = malloc(n * sizeof *ptrs);
  int *force = malloc(n * sizeof *force);
  int *dup = calloc(n, sizeof *dup);
  char **hooks = NULL; /* allocated at the first job that has any */
  if (!recs || !ptrs || !force || !dup) {
    rc = jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
    goto out;
  }
  int64_t now = jobq__now(q);
  for (size_t i = 0; i < n; i++) {
    char *h;
    rc = prepare(q, fn, kinds[i], payloads[i], opts ? opts[i] : NULL, now, &recs[i], &force[i],
                 &h);
    if (rc == 0 && h && hooks == NULL && (hooks = calloc(n, sizeof *hooks)) == NULL) {
      free(h);
      rc = jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
    }
    if (h && hooks) hooks[i] = h;
    if (rc) {
      /* Say which job was refused, keeping the reason; the function's
       * name said once is enough. */
      jobq__err_prefix(rc, fn, "%s: job %zu refused: ", fn, i);
      goto out;
    }
    ptrs[i] = &recs[i];
  }
  rc = store(q, fn, ptrs, hooks, n, force, now, dup, batch_id, max_running);
  if (rc) goto out;
  for (size_t i = 0; i < n; i++) {
    memcpy(out_ids + i * JOBQ_ID_SIZE, recs[i].id, JOBQ_ID_SIZE);
    if (out_dup) out_dup[i] = dup[i];
    rc += dup[i];
  }
out:
  for (size_t i = 0; hooks && i < n; i++) free(hooks[i]);
  free(hooks);
  free(recs);
  free(ptrs);
  free(force);
  free(dup);
  return rc;
}

/* jobq_submit_many and jobq_submit_many_ex. */
static int submit_many_pub(jobq_t *q, const char *fn, size_t n, const char *const *kinds,
                           const char *const *payloads, const jobq_submit_opts_t *const *opts,
                           char *out_ids, size_t out_cap, int *out_dup) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (n == 0) return 0;
  return submit_many(q, fn, n, kinds, payloads, opts, out_ids, out_cap, "out_cap", out_dup, NULL,
                     0);
}

JOBQ_API int jobq_submit_many(jobq_t *q, size_t n, const char *const *kinds,
                              const char *const *payloads, const jobq_submit_opts_t *const *opts,
                              char *out_ids, int *out_dup) {
  return submit_many_pub(q, "jobq_submit_many", n, kinds, payloads, opts, out_ids, SIZE_MAX,
                         out_dup);
}

JOBQ_API int jobq_submit_many_ex(jobq_t *q, size_t n, const char *const *kinds,
                                 const char *const *payloads,
                                 const jobq_submit_opts_t *const *opts, char *out_ids,
                                 size_t out_cap, int *out_dup) {
  return submit_many_pub(q, "jobq_submit_many_ex", n, kinds, payloads, opts, out_ids, out_cap,
                         out_dup);
}

/* jobq_batch_submit and jobq_batch_submit_ex. */
static int batch_submit(jobq_t *q, const char *fn, size_t n, const char *const *kinds,
                        const char *const *payloads, const jobq_submit_opts_t *const *opts,
                        int max_running, char *out_batch_id, size_t batch_cap, char *out_ids,
                        size_t ids_cap, int *out_dup) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  /* Unlike jobq_submit_many, an empty batch is refused: it would be done
   * before anyone could wait for it, and is always a caller's slip. */
  if (n == 0) return jobq__err(JOBQ_EINVAL, "%s: the batch is empty (n is 0)", fn);
  if (max_running < 0 || max_running > JOBQ_BATCH_CAP_MAX)
    return jobq__err(JOBQ_EINVAL, "%s: max_running is %d; it must be 0 (no cap) or 1..%d", fn,
                     max_running, JOBQ_BATCH_CAP_MAX);
  if (out_batch_id == NULL) return jobq__err(JOBQ_EINVAL, "%s: out_batch_id is NULL", fn);
  int rc = cap_check(fn, "batch_cap", batch_cap, JOBQ_ID_SIZE, 1);
  if (rc) return rc;
  if (q->ops->version < 3 || q->ops->batch_insert == NULL)
    return jobq__err(JOBQ_ENOTSUP, "%s: the %s backend does not keep batches", fn,
                     q->ops->scheme);
  char id[JOBQ_ID_SIZE];
  jobq__id_new(id, jobq__now(q));
  rc = submit_many(q, fn, n, kinds, payloads, opts, out_ids, ids_cap, "ids_cap", out_dup, id,
                   max_running);
  if (rc >= 0) memcpy(out_batch_id, id, JOBQ_ID_SIZE);
  return rc;
}

JOBQ_API int jobq_batch_submit(jobq_t *q, size_t n, const char *const *kinds,
                               const char *const *payloads,
                               const jobq_submit_opts_t *const *opts, int max_running,
                               char *out_batch_id, char *out_ids, int *out_dup) {
  return batch_submit(q, "jobq_batch_submit", n, kinds, payloads, opts, max_running,
                      out_batch_id, SIZE_MAX, out_ids, SIZE_MAX, out_dup);
}

JOBQ_API int jobq_batch_submit_ex(jobq_t *q, size_t n, const char *const *kinds,
                                  const char *const *payloads,
                                  const jobq_submit_opts_t *const *opts, int max_running,
                                  char *out_batch_id, size_t batch_cap, char *out_ids,
                                  size_t ids_cap, int *out_dup) {
  return batch_submit(q, "jobq_batch_submit_ex", n, kinds, payloads, opts, max_running,
                      out_batch_id, batch_cap, out_ids, ids_cap, out_dup);
}
