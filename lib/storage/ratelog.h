/* A sliding-window log of starts, in memory: the memory backend's rate
 * limits (docs/architecture.md, "Rate limits"). Each entry is a time and
 * how many attempts started then; the starts of one millisecond share an
 * entry, so a claim of a whole batch adds one entry, and the log holds at
 * most one entry per millisecond of the window (and never more than the
 * limit's number of entries). Not thread-safe: the backend's lock guards
 * it. */
#ifndef JOBQ_STORAGE_RATELOG_H
#define JOBQ_STORAGE_RATELOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobq__ratelog {
  int64_t *at, *n; /* a ring of entries, oldest at head */
  size_t head, count, cap;
  int64_t used;    /* sum of n over the ring */
} jobq__ratelog;

/* Forgets the entries that left the window (at <= now - interval_ms) and
 * returns the room left for starts at now: starts - used, at least 0. */
int64_t jobq__ratelog_room(jobq__ratelog *l, int starts, int64_t interval_ms, int64_t now);
/* Makes sure the next jobq__ratelog_add cannot fail; 0 or -1 (out of memory). */
int jobq__ratelog_reserve(jobq__ratelog *l);
/* Records n starts at now (n > 0); room reserved by the caller. A clock that
 * went back adds to the newest entry instead, which then leaves the window
 * later, never sooner. */
void jobq__ratelog_add(jobq__ratelog *l, int64_t now, int64_t n);
/* When the oldest entry leaves the window, giving room back; INT64_MAX for
 * an empty log. */
int64_t jobq__ratelog_next(const jobq__ratelog *l, int64_t interval_ms);
/* The starts recorded in (now - interval_ms, now]. */
int64_t jobq__ratelog_used(const jobq__ratelog *l, int64_t interval_ms, int64_t now);
void jobq__ratelog_free(jobq__ratelog *l);

#endif
