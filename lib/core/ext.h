/* What extensions of the core (the pipelines in lib/stages) may use of a
 * queue and an attempt, without the core's private structures. */
#ifndef JOBQ_CORE_EXT_H
#define JOBQ_CORE_EXT_H

#include "util/private.h"

#include "jobq.h"

#include <stddef.h>

struct uv_loop_s;

/* An extension that owns loop handles or runs (a registered pipeline). */
typedef struct jobq__ext {
  /* On the loop thread while the queue closes (storage is closed, every
   * attempt has ended or been released): end what runs, close handles, and
   * call jobq__ext_closed(q) once, when nothing of it is left on the loop. */
  void (*close_on_loop)(void *ud, jobq_t *q);
  /* When the queue is freed, after the loop let go of everything. */
  void (*free)(void *ud);
  void *ud;
} jobq__ext;

/* Adds e (copied); before jobq_start. 0 or JOBQ_ENOMEM / JOBQ_ESTATE. */
JOBQ_PRIVATE int jobq__ext_add(jobq_t *q, const jobq__ext *e);
JOBQ_PRIVATE void jobq__ext_closed(jobq_t *q);

/* jobq_register for a kind whose handler runs on the loop thread, with ko
 * (may be NULL) copied and its on_loop forced to 1. fn_name names the
 * public function in error sentences. */
JOBQ_PRIVATE int jobq__register_on_loop(jobq_t *q, const char *fn_name, const char *kind,
                           jobq_handler_fn fn, void *ud, const jobq_kind_opts_t *ko);

JOBQ_PRIVATE struct uv_loop_s *jobq__loop(jobq_t *q);
JOBQ_PRIVATE const char *jobq__workdir(jobq_t *q);
JOBQ_PRIVATE jobq_t *jobq__ctx_queue(jobq_ctx_t *ctx);
/* jobq_ctx_retry_after with the event's error text: reason (UTF-8, cut at
 * 4096 bytes), or NULL for "deferred by the handler for N ms". The built-in
 * HTTP stages defer with the provider's words when its Retry-After is longer
 * than they wait within an attempt. */
JOBQ_PRIVATE int jobq__ctx_retry_after(jobq_ctx_t *ctx, int64_t delay_ms, int count_attempt,
                                       const char *reason);

/* Checkpoints through the storage (version 2 members); JOBQ_ENOTSUP if the
 * backend has none, JOBQ_ECLOSED once the queue is closing. Blocking. */
JOBQ_PRIVATE int jobq__checkpoint(jobq_ctx_t *ctx, int stage, const char *output, int progress,
                     const char *step);
JOBQ_PRIVATE int jobq__checkpoint_get(jobq_t *q, const char *id, int *out_stage, char **out_output);

#endif
