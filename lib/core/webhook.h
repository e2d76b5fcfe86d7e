/* Webhooks inside the core: the endpoints a process is configured with, the
 * subscriptions a job carries to storage, and the sender (core/webhook.c)
 * that claims deliveries from the store's outbox and posts them on the loop.
 * Nothing here is ABI. */
#ifndef JOBQ_CORE_WEBHOOK_H
#define JOBQ_CORE_WEBHOOK_H

#include "util/private.h"

#include "jobq.h"

#include <stddef.h>
#include <stdint.h>

#define JOBQ_WH_NAME_MAX 64
#define JOBQ_WH_PER_JOB 8
#define JOBQ_WH_DEFAULT_CONNECT_MS 5000
#define JOBQ_WH_DEFAULT_TOTAL_MS 15000
#define JOBQ_WH_DEFAULT_ATTEMPTS 10
#define JOBQ_WH_DEFAULT_BASE_MS 5000
#define JOBQ_WH_DEFAULT_MAX_DELAY_MS (8 * 3600 * 1000LL)
#define JOBQ_WH_DEFAULT_CONCURRENCY 64
/* How long deliveries may step aside for short jobs (core/webhook.c). */
#define JOBQ_WH_DEFAULT_YIELD_MS 1000
/* Response bodies are read and dropped past this (only the start of an
 * error page is worth a sentence). */
#define JOBQ_WH_KEEP_RESPONSE 2048

struct jobq_s;
struct jobq__sbuf;

/* An endpoint (jobq_options_add_webhook). */
typedef struct jobq__wh_endpoint {
  char name[JOBQ_WH_NAME_MAX + 1];
  char *url;     /* NULL: signs jobs' own URLs only */
  char *secret;  /* "whsec_..." or two of them separated by a space; never shown */
  int events;    /* JOBQ_WEBHOOK_ON_* */
  char *kinds;   /* comma-separated kinds it subscribes by default; NULL: all */
  int payload;
} jobq__wh_endpoint;

/* The webhook part of jobq_options_s. */
typedef struct jobq__wh_opts {
  jobq__wh_endpoint *v;
  int n;
  char *allow;   /* the allow-list's text as given (checked), NULL: none */
  int64_t connect_ms, total_ms;
  int max_attempts;
  int64_t base_ms, max_delay_ms;
  int concurrency;
  int yield_ms;
} jobq__wh_opts;

/* One subscription of jobq_submit_opts_add_webhook. */
typedef struct jobq__wh_sub {
  char *url;
  char endpoint[JOBQ_WH_NAME_MAX + 1];
  int events;
} jobq__wh_sub;

struct jobq_submit_opts_s;
struct jobq_storage_ops;
JOBQ_PRIVATE void jobq__wh_subs_free(struct jobq_submit_opts_s *so);
JOBQ_PRIVATE void jobq__wh_opts_defaults(jobq__wh_opts *o);
JOBQ_PRIVATE void jobq__wh_opts_clear(jobq__wh_opts *o);
/* A deep copy (secrets included); 0 or JOBQ_ENOMEM. */
JOBQ_PRIVATE int jobq__wh_opts_copy(jobq__wh_opts *dst, const jobq__wh_opts *src);

/* The subscriptions of one new job of kind `kind` in q as JSON text for
 * storage (jobq_storage.h, version 4), into *out (malloc'ed; NULL when the
 * job has none). subs/n_subs: the job's own (jobq_submit_opts_add_webhook).
 * 0, or JOBQ_EINVAL (an endpoint this process does not know, a literal
 * address that is refused) / JOBQ_ENOTSUP (no outbox) / JOBQ_ENOMEM with
 * the sentence prefixed by fn. */
JOBQ_PRIVATE int jobq__wh_hooks_json(struct jobq_s *q, const char *fn, const char *kind,
                                     const jobq__wh_sub *subs, int n_subs, char **out);

/* The sender: created by jobq_open when endpoints are configured and the
 * concurrency is not 0; started by jobq_start... (core/webhook.c). */
JOBQ_PRIVATE int jobq__wh_open(struct jobq_s *q);
/* Something may have added deliveries (this process ended a job or passed
 * a stage boundary): look at the outbox soon. Any thread, lock or not. */
JOBQ_PRIVATE void jobq__wh_kick(struct jobq_s *q);
/* jobq_close: stop claiming, give tries in flight until deadline_ns
 * (uv_hrtime) to answer, put back the rest, stop the thread. Before
 * storage closes. */
JOBQ_PRIVATE void jobq__wh_stop(struct jobq_s *q, uint64_t deadline_ns);
JOBQ_PRIVATE void jobq__wh_free(struct jobq_s *q);
/* On the loop thread (the queue's async): sends what the thread claimed. */
JOBQ_PRIVATE void jobq__wh_on_loop(struct jobq_s *q);
/* Process counters for jobq_stats: tries by outcome (JOBQ_DELIVERY_*). */
JOBQ_PRIVATE void jobq__wh_tries(struct jobq_s *q, int64_t out[4]);

/* The backend keeps an outbox (all version 4 members). */
JOBQ_PRIVATE int jobq__wh_backend_ok(const struct jobq_storage_ops *ops);

#endif
