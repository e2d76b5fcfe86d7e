/* Shared stats and ETA (core/stats.c, core/prometheus.c): what this
 * process counts between two flushes to the store, and the snapshot that
 * jobq_stats hands out. Nothing here is ABI. */
#ifndef JOBQ_CORE_STATS_H
#define JOBQ_CORE_STATS_H

#include "jobq.h"
#include "jobq/storage.h"

#include <stdint.h>

_Static_assert(JOBQ_STAT_N == JOBQ_STORAGE_STAT_N, "counters of jobq.h and jobq/storage.h differ");

/* What this process counted of one kind since the last flush; under q->mu. */
typedef struct jobq__stat_acc {
  int64_t count[JOBQ_STAT_N];
  int64_t hist[JOBQ_STORAGE_HIST_N];
  double sum_ms;
  int dirty;
  char kind[]; /* "" for counts without a kind */
} jobq__stat_acc;

/* The upper bound (ms) of duration bucket i, 0 .. JOBQ_STORAGE_HIST_N - 2
 * (the 1-2-5 series from 1 ms), and the bucket of a duration. */
int64_t jobq__hist_bound(int i);
int jobq__hist_bucket(double ms);
/* The duration under which a share q of the counts in hist fell,
 * interpolated within its bucket; -1 if hist is empty. */
double jobq__hist_quantile(const int64_t *hist, double q);

struct jobq_stats_s {
  /* this process (core/health.c) */
  int64_t time;
  int running;
  int64_t rate_limited;           /* claims a rate limit held back, this process */
  int64_t storage_errors;
  int64_t failing_since;
  int last_code;
  int64_t last_at;
  char *last_error;
  /* the store, read at snapshot time; shared 0: the backend keeps none */
  int shared;
  int shared_rc;                  /* the store's stats could not be read: why */
  char *shared_err;
  char *scheme;                   /* the backend's, for the ENOTSUP sentence */
  jobq_storage_kind_stats *kinds; /* named kinds, by name */
  int n_kinds;
  int64_t total[JOBQ_STAT_N];     /* over kinds and the kind-less counts */
  /* webhooks: the store's outbox by state (outbox 0: the backend keeps
   * none) and this process's tries by outcome */
  int outbox;
  int64_t wh_outbox[4];
  int64_t wh_tries[4];
};

typedef struct jobq_s jobq_t;

/* mu held: adds n to counter `which` of kind (NULL: the kind-less counts). */
void jobq__stats_count(jobq_t *q, const char *kind, int which, int64_t n);
/* mu held: one attempt of kind took ms. */
void jobq__stats_duration(jobq_t *q, const char *kind, double ms);
/* mu not held: adds what this process counted to the store, and publishes
 * (withdraw 0) or withdraws (withdraw 1, at close) what the workers run.
 * Counts that storage refused are kept for the next flush. 0 or a code. */
int jobq__stats_flush(jobq_t *q, int withdraw);
/* mu held: whether a background flush is due (about once a second). */
int jobq__stats_due(jobq_t *q);
/* mu held, from free_q. */
void jobq__stats_free(jobq_t *q);
/* mu held: the ETA of a queued snapshot (jobq_job_eta_ms), ks the kind's
 * shared stats or NULL. */
int64_t jobq__eta(jobq_t *q, const jobq_storage_job *r, const jobq_storage_kind_stats *ks);
/* core/stats_snap.c: ,"kinds":{...},"totals":{...} of a snapshot's JSON. */
struct jobq_sbuf;
void jobq__stats_json_shared(struct jobq_sbuf *b, const jobq_stats_t *st, int *first);
/* Frees n records of stats_read and the array. */
void jobq__kind_stats_free(jobq_storage_kind_stats *v, size_t n);

#endif
