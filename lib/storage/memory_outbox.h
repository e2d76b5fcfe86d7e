/* The memory backend's webhook outbox (storage version 4): the jobs'
 * subscriptions and the deliveries they make. memory.c owns the lock and
 * the jobs; every function here runs with the store's lock held.
 *
 * A change that adds deliveries is made in two steps, as the rest of the
 * backend does: prepare (every allocation, so it may fail and change
 * nothing) and apply (cannot fail). */
#ifndef JOBQ_STORAGE_MEMORY_OUTBOX_H
#define JOBQ_STORAGE_MEMORY_OUTBOX_H

#include "jobq/storage.h"
#include "util/heap.h"
#include "util/map.h"

#include <stdint.h>

typedef struct jobq__mdeliv jobq__mdeliv;

typedef struct jobq__mhook {
  char *endpoint; /* "e" */
  char *url;      /* "u", or NULL: the endpoint's */
  int mask;       /* "on": JOBQ_WEBHOOK_ON_* */
  int flags;      /* 1: "p": 1 */
} jobq__mhook;

/* A job's subscriptions, and the deliveries they made. Only a job stored
 * with webhooks has one, so that other jobs cost nothing more. */
typedef struct jobq__mhooks {
  void *job;          /* the backend's job record, for outbox_claim's jobs[i] */
  const char *job_id; /* inside that record */
  jobq__mdeliv *list; /* the job's deliveries, newest first */
  int active;         /* of them pending or sending: prune keeps the job */
  int n;
  jobq__mhook hook[];
} jobq__mhooks;

/* A live endpoint's deliveries that are pending or sending, by (next_at,
 * id): what a claim takes from. */
typedef struct jobq__mendpoint {
  jobq_heap due;
  size_t reserved; /* heap room promised to prepared deliveries */
  char name[];
} jobq__mendpoint;

typedef struct jobq__mbox {
  jobq_map ids;       /* delivery id -> jobq__mdeliv */
  jobq_map endpoints; /* name -> jobq__mendpoint */
  jobq_map disabled;  /* url -> disabled URL (410 Gone) */
  size_t reserved;    /* ids room promised to prepared deliveries */
  jobq__mdeliv *first, *last; /* every delivery, by (created_at, id) */
  int64_t counts[4];  /* by JOBQ_DELIVERY_* */
} jobq__mbox;

/* Deliveries prepared for one change. Zero-initialise. */
typedef struct jobq__mnew {
  jobq__mdeliv *list;
} jobq__mnew;

/* Parses a job's webhooks JSON (see storage.h). JOBQ_EINVAL with a
 * sentence for text that is not such an array (nothing is made), or
 * JOBQ_ENOMEM. `what` names the call in the sentence. */
int jobq__mhooks_parse(const char *json, const char *what, jobq__mhooks **out);
/* Frees h (not its deliveries: jobq__mbox_forget first, or jobq__mbox_free). */
void jobq__mhooks_free(jobq__mhooks *h);

void jobq__mbox_free(jobq__mbox *b);

/* Prepares the deliveries of h's job becoming state (JOBQ_SUCCEEDED,
 * _FAILED or _CANCELLED) at now, into *n; -1 on out of memory. */
int jobq__mbox_prepare_end(jobq__mbox *b, const jobq__mhooks *h, int state, int64_t now,
                           jobq__mnew *n);
/* Prepares the progress deliveries of h's job's checkpoint of stage at now
 * (coalesced with pending ones); -1 on out of memory. */
int jobq__mbox_prepare_progress(jobq__mbox *b, const jobq__mhooks *h, int stage, int64_t now,
                                jobq__mnew *n);
/* Applies n to h's job (takes its deliveries); ended: the job became
 * terminal, which first drops its pending progress deliveries. */
void jobq__mbox_apply(jobq__mbox *b, jobq__mhooks *h, jobq__mnew *n, int ended);
/* Frees what a prepare made and no apply took. */
void jobq__mbox_discard(jobq__mbox *b, jobq__mnew *n);
/* Deletes every delivery of h's job (the job is being deleted). */
void jobq__mbox_forget(jobq__mbox *b, jobq__mhooks *h);

/* The version 4 members, on the outbox; fill_job fills a claimed
 * delivery's job (-1 on out of memory). */
int jobq__mbox_claim(jobq__mbox *b, const jobq_storage_outbox_claim *req,
                     jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out,
                     int (*fill_job)(void *job, jobq_storage_job *out));
int jobq__mbox_done(jobq__mbox *b, const jobq_storage_outbox_result *r, size_t n, int *applied);
/* job: the filter's job's subscriptions (NULL when f->job_id is NULL, or
 * names a job without any). */
int jobq__mbox_list(jobq__mbox *b, const jobq_storage_outbox_filter *f, const jobq__mhooks *job,
                    jobq_storage_delivery **out, size_t *n_out, int *more);
int jobq__mbox_redeliver(jobq__mbox *b, const char *id, int64_t now);
int jobq__mbox_enable(jobq__mbox *b, const char *url);

#endif
