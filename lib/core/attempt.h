/* The attempt life cycle, shared by the files that run attempts: claim.c
 * (claims and the hand-off to workers), attempt.c (how an attempt ends),
 * ctx.c (what a handler calls), timeout.c (timeouts and release). mu held
 * for every function here. */
#ifndef JOBQ_CORE_ATTEMPT_H
#define JOBQ_CORE_ATTEMPT_H

#include "core/internal.h"

#include <assert.h>
#include <string.h>

/* Moves ctx to state to; mu held. An illegal change (see the diagram at
 * jobq__attempt_state) is a bug in the core: assert()ed. */
static inline void jobq__attempt_to(jobq_ctx_t *ctx, jobq__attempt_state to) {
#define B(s) (1u << JOBQ_ATTEMPT_##s)
  static const unsigned legal[] = {
      [JOBQ_ATTEMPT_RUNNING] = B(FINISHING) | B(TIMING_OUT) | B(RELEASING),
      [JOBQ_ATTEMPT_FINISHING] = B(FINISHED) | B(RUNNING),
      [JOBQ_ATTEMPT_FINISHED] = 0,
      [JOBQ_ATTEMPT_TIMING_OUT] = B(TIMED_OUT) | B(RUNNING),
      [JOBQ_ATTEMPT_TIMED_OUT] = 0,
      [JOBQ_ATTEMPT_RELEASING] = B(RELEASED),
      [JOBQ_ATTEMPT_RELEASED] = 0,
  };
#undef B
  assert(legal[ctx->state] & (1u << to));
  (void)legal;
  ctx->state = to;
}

/* ctx's slot of its kind's concurrency limit (see jobq__attempt_state):
 * taken at the claim; given back exactly once, when the attempt has ended
 * and, if someone other than its owner ended it (a timeout, jobq_close),
 * when the owner let go as well: no handler call on it runs and its
 * succeed/fail came (refused, but it says the owner is done). Every place
 * that may make that true calls jobq__slot_check. */
static inline void jobq__slot_take(jobq_ctx_t *ctx) {
  if (ctx->kr == NULL) return;
  ctx->kr->running++;
  ctx->holds_slot = 1;
}

static inline void jobq__slot_check(jobq_t *q, jobq_ctx_t *ctx) {
  if (!ctx->holds_slot) return;
  switch (ctx->state) {
  case JOBQ_ATTEMPT_FINISHED: /* its owner ended it (or nobody ever ran it) */
    break;
  case JOBQ_ATTEMPT_TIMED_OUT:
  case JOBQ_ATTEMPT_RELEASED:
    if (ctx->in_handler || !ctx->user_done) return; /* its code still runs */
    break;
  default:
    return; /* not ended yet */
  }
  ctx->holds_slot = 0;
  assert(ctx->kr->running > 0);
  ctx->kr->running--;
  if (jobq__kind_limit(ctx->kr) > 0) jobq__wake_claimers(q);
}

/* 0 when ctx's owner may end it now; otherwise says why not (fn first). */
int jobq__attempt_refusal(jobq_t *q, jobq_ctx_t *ctx, const char *fn);

/* Forgets ctx as running here, unless a newer attempt of the same job
 * (claimed again after a quick retry) took its place. */
void jobq__running_del(jobq_t *q, jobq_ctx_t *ctx);
void jobq__tmo_remove(jobq_t *q, jobq_ctx_t *ctx);

/* Stores the end of ctx's attempt, which the caller moved to FINISHING or
 * TIMING_OUT, and publishes it; the attempt is then FINISHED or TIMED_OUT.
 * When storage itself failed, *open is set and the state is left to the
 * caller: nothing was applied. */
int jobq__attempt_end(jobq_t *q, jobq_ctx_t *ctx, int outcome, const char *result,
                      const char *error, const char *fn, int *open);
/* Gives a claimed job back at once (it never started). */
void jobq__attempt_give_back(jobq_t *q, jobq_ctx_t *ctx);
/* The user's succeed/fail: ends the attempt and drops the user's reference.
 * mu not held. */
int jobq__attempt_user_finish(jobq_ctx_t *ctx, int outcome, const char *result,
                              const char *error, const char *fn);
/* The same, with the RETRY's or DEFER's run_at delay_ms from now (>= 0)
 * instead of the backoff (jobq_ctx_retry_after); -1: the backoff. */
int jobq__attempt_user_finish_after(jobq_ctx_t *ctx, int outcome, const char *result,
                                    const char *error, const char *fn, int64_t delay_ms);

#endif
