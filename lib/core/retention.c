/* Retention: the finished jobs of each kind this process registered are
 * deleted, with their work directories, once they are older than the
 * kind's retention (jobq_kind_opts_set_retention, default 24 h).
 *
 * The maintenance tick starts a pass per kind at most once a minute (the
 * queue's clock); the maintenance thread then works through the passes
 * under way one storage call at a time (prune_kind, at most RET_BATCH jobs
 * each, each its own short transaction), between its other work: a
 * heartbeat or a timeout waits for one call at most. Calls are paced by
 * how long the last one took, so that pruning a large backlog takes a
 * small share of storage's time and claims and submits keep their pace.
 * Kinds that no started process registers are never pruned by retention:
 * only a process that knows a kind knows its retention. */
#include "core/internal.h"

#include <stdlib.h>

/* Jobs per storage call. */
#define RET_BATCH 200
/* A kind's passes begin at least this far apart (queue clock). */
#define RET_EVERY_MS 60000
/* After a call that took t, the next waits RET_PACE * t: pruning takes at
 * most 1 / (1 + RET_PACE) of the time of storage. */
#define RET_PACE 19

int jobq__retention_check(jobq_t *q, const char *kind, const struct jobq_kind_opts_s *ko) {
  if (ko == NULL || !ko->retention_set || ko->retention_ms <= 0) return 0;
  if (q->ops->version >= 3 && q->ops->prune_kind) return 0;
  return jobq__err(JOBQ_ENOTSUP,
                   "jobq_register: '%s': the %s backend cannot prune jobs by kind, so it cannot "
                   "apply a retention (set it to 0, or leave it unset: the default is then not "
                   "applied)",
                   kind, q->ops->scheme);
}

void jobq__retention_tick(jobq_t *q, int64_t now) {
  if (!q->started || q->closed || q->ops->version < 3 || q->ops->prune_kind == NULL) return;
  int began = 0;
  for (int i = 0; i < q->kinds.n; i++) {
    kind_reg *k = &q->kinds.v[i];
    if (k->ko.retention_ms <= 0 || k->ret_active || now < k->ret_next) continue;
    k->ret_active = 1;
    k->ret_before = now - k->ko.retention_ms;
    k->ret_next = now + RET_EVERY_MS;
    k->ret_pruned = 0;
    q->maint.ret_pending++;
    began = 1;
  }
  if (began) uv_cond_signal(&q->maint.cv);
}

uint64_t jobq__retention_step(jobq_t *q) {
  uint64_t t0 = uv_hrtime();
  if (t0 < q->maint.ret_resume_ns) return q->maint.ret_resume_ns - t0;
  kind_reg *k = NULL;
  for (int i = 0; i < q->kinds.n && k == NULL; i++) {
    int at = (q->maint.ret_turn + i) % q->kinds.n;
    if (q->kinds.v[at].ret_active) {
      k = &q->kinds.v[at];
      q->maint.ret_turn = at + 1; /* kinds take turns */
    }
  }
  if (k == NULL) {
    q->maint.ret_pending = 0;
    return 0;
  }
  /* The kinds are fixed once the queue started: k stays valid unlocked. */
  jobq_storage_prune req = {k->name, k->ret_before, RET_BATCH, k->ko.keep_per_owner, 0};
  uv_mutex_unlock(&q->mu);
  char(*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 0;
  jobq__set_detail("");
  int rc = q->ops->prune_kind(q->st, &req, &ids, &n);
  uint64_t took = uv_hrtime() - t0;
  if (rc && jobq_last_error()[0] == '\0')
    jobq__err(rc, "retention of kind '%s': %s", k->name, jobq_strerror(rc));
  if (rc == 0) jobq__workdirs_remove(q, ids, n);
  free(ids);
  uv_mutex_lock(&q->mu);
  jobq__health_note(q, JOBQ_OP_RETENTION, rc);
  if (rc) n = 0;
  k->ret_pruned += n;
  if (rc || !req.more) { /* the pass is over (a failed one: try again next time) */
    k->ret_active = 0;
    q->maint.ret_pending--;
    if (k->ret_pruned)
      jobq__log(q, JOBQ_LOG_INFO,
                "retention: pruned %zu finished jobs of kind '%s' (finished more than %lld ms "
                "ago)",
                k->ret_pruned, k->name, (long long)k->ko.retention_ms);
  }
  q->maint.ret_resume_ns = uv_hrtime() + took * RET_PACE;
  return 0;
}
