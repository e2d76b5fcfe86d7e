/* The defaults of queue and kind options, each written once (the reference
 * pages of their setters say them too). */
#ifndef JOBQ_CORE_DEFAULTS_H
#define JOBQ_CORE_DEFAULTS_H

/* queue (jobq_options_t) */
#define JOBQ_DEFAULT_WORKERS 4
#define JOBQ_DEFAULT_MAX_PAYLOAD (1u << 20)
#define JOBQ_DEFAULT_EVENT_BUFFER 65536
#define JOBQ_DEFAULT_LEASE_MS 30000
/* ETA before any attempt of a kind finished (jobq_options_set_default_duration) */
#define JOBQ_DEFAULT_DURATION_MS 45000

/* kinds (jobq_kind_opts_t); also for jobs of kinds not registered here */
#define JOBQ_DEFAULT_MAX_ATTEMPTS 3
#define JOBQ_DEFAULT_BACKOFF_BASE_MS 1000
#define JOBQ_DEFAULT_BACKOFF_MAX_MS 300000
#define JOBQ_DEFAULT_JITTER 0.2
/* Finished jobs of a registered kind are pruned a day after they finished
 * (jobq_kind_opts_set_retention); 0 would keep them. */
#define JOBQ_DEFAULT_RETENTION_MS 86400000

/* On-loop kinds without a concurrency limit still stop somewhere: claiming a
 * whole backlog onto one thread helps nobody. */
#define JOBQ_LOOP_DEFAULT_CONCURRENCY 1024

#endif
