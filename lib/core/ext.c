/* Hooks for extensions of the core (lib/stages): loop handles closed with the
 * queue, checkpoints, work directories, pruning. */
#include "core/ext.h"
#include "core/internal.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int jobq__ext_add(jobq_t *q, const jobq__ext *e) {
  uv_mutex_lock(&q->mu);
  if (q->started || q->closed) {
    uv_mutex_unlock(&q->mu);
    return JOBQ_ESTATE;
  }
  jobq__ext *n = realloc(q->loop_s.exts, (size_t)(q->loop_s.n_exts + 1) * sizeof *n);
  if (n == NULL) {
    uv_mutex_unlock(&q->mu);
    return JOBQ_ENOMEM;
  }
  n[q->loop_s.n_exts++] = *e;
  q->loop_s.exts = n;
  uv_mutex_unlock(&q->mu);
  return 0;
}

void jobq__exts_close_on_loop(jobq_t *q) {
  for (int i = 0; i < q->loop_s.n_exts; i++)
    q->loop_s.exts[i].close_on_loop(q->loop_s.exts[i].ud, q);
}

void jobq__exts_free(jobq_t *q) {
  for (int i = 0; i < q->loop_s.n_exts; i++)
    if (q->loop_s.exts[i].free) q->loop_s.exts[i].free(q->loop_s.exts[i].ud);
  free(q->loop_s.exts);
  q->loop_s.exts = NULL;
  q->loop_s.n_exts = 0;
}

int jobq__register_on_loop(jobq_t *q, const char *fn_name, const char *kind,
                           jobq_handler_fn fn, void *ud, const jobq_kind_opts_t *ko) {
  jobq_kind_opts_t copy;
  if (ko) {
    copy = *ko;
  } else {
    jobq_kind_opts_t *d = jobq_kind_opts_new();
    if (d == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn_name);
    copy = *d;
    jobq_kind_opts_free(d);
  }
  copy.on_loop = 1;
  int rc = jobq_register(q, kind, fn, ud, &copy);
  if (rc) jobq__err_prefix(rc, "jobq_register", "%s: ", fn_name);
  return rc;
}

uv_loop_t *jobq__loop(jobq_t *q) { return q->loop_s.loop; }
const char *jobq__workdir(jobq_t *q) { return q->o.workdir; }
jobq_t *jobq__ctx_queue(jobq_ctx_t *ctx) { return ctx->q; }

/* An absolute path: work files are named in checkpoints, which another
 * process (with another working directory) may resume. */
char *jobq__absolute_path(const char *p) {
  if (p[0] == '/') return jobq__strdup(p);
  char cwd[4096];
  if (getcwd(cwd, sizeof cwd) == NULL) return jobq__strdup(p);
  size_t n = strlen(cwd) + strlen(p) + 2;
  char *d = malloc(n);
  if (d) snprintf(d, n, "%s/%s", cwd, p[0] == '.' && p[1] == '/' ? p + 2 : p);
  return d;
}

/* The storage layer says where a URL's work files go by default (beside a
 * database file; else "jobq-work"); the core makes it absolute. NULL when
 * out of memory. */
char *jobq__default_workdir(const char *url) {
  char *d = NULL;
  if (jobq__storage_default_workdir(url, &d) != 0) return NULL;
  char *abs = jobq__absolute_path(d);
  free(d);
  return abs;
}

/* Storage calls from extensions are counted in ops_in_flight so that
 * jobq_close waits for them. They work while close drains (a stage that
 * finishes then keeps its checkpoint) and are refused once close has waited
 * out the last call before it closes the storage. */
static int op_begin(jobq_t *q, const char *fn) {
  uv_mutex_lock(&q->mu);
  if (q->storage_closing || q->closed == 2) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
  }
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  return 0;
}

static void op_end(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
  uv_mutex_unlock(&q->mu);
}

int jobq__checkpoint(jobq_ctx_t *ctx, int stage, const char *output, int progress,
                     const char *step) {
  jobq_t *q = ctx->q;
  if (q->ops->version < 2 || q->ops->checkpoint == NULL)
    return jobq__err(JOBQ_ENOTSUP, "checkpoint: the %s backend keeps no checkpoints",
                     q->ops->scheme);
  int rc = op_begin(q, "checkpoint");
  if (rc) return rc;
  /* The checkpoint stores progress too. A coalesced write the maintenance
   * thread took before it must not land after it (the job would show an
   * older progress, even after a restart), and nothing older may be
   * flushed later: wait for the flush in flight, and the in-memory value,
   * when it is not ahead of the checkpoint, is stored by it. */
  uv_mutex_lock(&q->mu);
  jobq__maint_wait_flushes(q);
  if (ctx->progress <= progress) {
    ctx->progress_dirty = 0;
    ctx->progress_written = jobq__now(q);
  }
  uv_mutex_unlock(&q->mu);
  jobq__set_detail("");
  rc = q->ops->checkpoint(q->st, ctx->rec.id, ctx->rec.attempts, stage, output, progress, step);
  op_end(q);
  if (rc == 0) jobq__wh_kick(q); /* a stage boundary: progress deliveries */
  if (rc && jobq_last_error()[0] == '\0')
    jobq__err(rc, "checkpoint of job %s: %s", ctx->rec.id, jobq_strerror(rc));
  return rc;
}

int jobq__checkpoint_get(jobq_t *q, const char *id, int *out_stage, char **out_output) {
  *out_stage = -1;
  *out_output = NULL;
  if (q->ops->version < 2 || q->ops->checkpoint_get == NULL) return 0; /* none: start over */
  int rc = op_begin(q, "checkpoint");
  if (rc) return rc;
  jobq__set_detail("");
  rc = q->ops->checkpoint_get(q->st, id, out_stage, out_output);
  op_end(q);
  if (rc && jobq_last_error()[0] == '\0')
    jobq__err(rc, "checkpoint of job %s: %s", id, jobq_strerror(rc));
  return rc;
}

void jobq__workdirs_remove(jobq_t *q, char (*ids)[JOBQ_ID_SIZE], size_t n) {
  for (size_t i = 0; i < n; i++) {
    char path[4200];
    int len = snprintf(path, sizeof path, "%s/%s", q->o.workdir, ids[i]);
    if (len > 0 && (size_t)len < sizeof path) jobq__rmtree(path); /* absent: fine */
  }
}

JOBQ_API int jobq_prune(jobq_t *q, int64_t older_than_ms, size_t *out_n) {
  if (out_n) *out_n = 0;
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_prune: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_prune");
  if (older_than_ms < 0)
    return jobq__err(JOBQ_EINVAL, "jobq_prune: older_than_ms is negative (%lld)",
                     (long long)older_than_ms);
  if (q->ops->version < 2 || q->ops->prune == NULL)
    return jobq__err(JOBQ_ENOTSUP, "jobq_prune: the %s backend cannot prune", q->ops->scheme);
  int64_t before = jobq__now(q) - older_than_ms;
  size_t total = 0;
  int rc = 0;
  /* In batches, so that one call never holds the writer for long. */
  for (;;) {
    if ((rc = op_begin(q, "jobq_prune")) != 0) break;
    char(*ids)[JOBQ_ID_SIZE] = NULL;
    size_t n = 0;
    jobq__set_detail("");
    rc = q->ops->prune(q->st, before, 1000, &ids, &n);
    op_end(q);
    if (rc) {
      if (jobq_last_error()[0] == '\0') jobq__err(rc, "jobq_prune: %s", jobq_strerror(rc));
      break;
    }
    jobq__workdirs_remove(q, ids, n);
    free(ids);
    total += n;
    if (n < 1000) break;
  }
  if (out_n) *out_n = total;
  return rc;
}
