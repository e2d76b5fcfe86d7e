/* When a dedupe key is live: the one rule every backend applies, so that a
 * key means the same on each (tests/conformance checks it). */
#ifndef JOBQ_STORAGE_DEDUPE_H
#define JOBQ_STORAGE_DEDUPE_H

#include "jobq.h"

#include <stdint.h>

/* The time a succeeded job's key expires: dedupe_ttl_ms after it finished,
 * or, for a negative dedupe_ttl_ms, at the absolute time -dedupe_ttl_ms
 * (jobq_submit_opts_set_dedupe_until). */
static inline int64_t jobq__key_expiry(int64_t finished_at, int64_t ttl) {
  if (ttl < 0) return -ttl;
  return ttl > INT64_MAX - finished_at ? INT64_MAX : finished_at + ttl; /* "forever" */
}

/* A key is live while its job waits or runs, and after it succeeded until
 * the key expires. A failed or cancelled job lets its key go at once: the
 * next submit with the key tries again. */
static inline int jobq__key_live(int state, int64_t finished_at, int64_t ttl, int64_t now) {
  if (state == JOBQ_QUEUED || state == JOBQ_RUNNING) return 1;
  return state == JOBQ_SUCCEEDED && now < jobq__key_expiry(finished_at, ttl);
}

#endif
