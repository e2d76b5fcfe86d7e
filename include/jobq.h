/*
 * libjobq - background jobs for C and everything that links C.
 *
 * This is the one header a host application needs. Every type is an opaque
 * handle configured through setters, so that adding an option never changes
 * the size of anything a compiled program knows about. No struct is passed by
 * value and no function takes varargs, so the API can be bound through FFI.
 *
 * Conventions
 *   - Functions return 0 (JOBQ_OK) or a negative JOBQ_E* code. The code never
 *     changes meaning; jobq_strerror() names it in words, jobq_err_name() as an
 *     identifier, and jobq_last_error() says what exactly was wrong in the last
 *     failing call on the calling thread.
 *   - Strings passed in are copied; the caller keeps ownership. Text that is
 *     stored or shown to other programs (owners, dedupe keys, steps, error
 *     messages, paths, URLs) must be valid UTF-8 (strict: no overlong forms,
 *     no surrogates, nothing above U+10FFFF), else JOBQ_EINVAL and nothing is
 *     stored. A C string cannot hold a NUL; inside JSON payloads and results
 *     the escape \u0000 is kept as written.
 *   - Whatever libjobq hands out has a matching free function named in its
 *     documentation (jobq_job_free, jobq_page_free, jobq_event_free, jobq_free).
 *   - Every function is safe to call from any thread unless its page in docs/
 *     says otherwise.
 *   - Times are milliseconds since the Unix epoch (int64_t), durations are
 *     milliseconds.
 */
#ifndef JOBQ_H
#define JOBQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  if defined(JOBQ_BUILDING)
#    define JOBQ_API __declspec(dllexport)
#  else
#    define JOBQ_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define JOBQ_API __attribute__((visibility("default")))
#else
#  define JOBQ_API
#endif

/* ---- version ----------------------------------------------------------- */

#define JOBQ_VERSION_MAJOR 0
#define JOBQ_VERSION_MINOR 1
#define JOBQ_VERSION_PATCH 0
#define JOBQ_VERSION_HEX \
  ((JOBQ_VERSION_MAJOR << 16) | (JOBQ_VERSION_MINOR << 8) | JOBQ_VERSION_PATCH)
#define JOBQ_VERSION_STRING "0.1.0"

/* The version of the library actually loaded, as JOBQ_VERSION_HEX. */
JOBQ_API unsigned jobq_version(void);
/* The same as a string, e.g. "0.1.0". Static storage. */
JOBQ_API const char *jobq_version_string(void);

/* ---- errors ------------------------------------------------------------ */
/* Values are part of the ABI: never renumbered, never reused. */

#define JOBQ_OK          0
#define JOBQ_EINVAL     (-1)  /* an argument is NULL, out of range or malformed */
#define JOBQ_ENOMEM     (-2)  /* out of memory */
#define JOBQ_ENOTFOUND  (-3)  /* no job with that id */
#define JOBQ_EJSON      (-4)  /* a payload or result is not valid JSON */
#define JOBQ_ETOOBIG    (-5)  /* a payload or result exceeds the size limit */
#define JOBQ_EKIND      (-6)  /* a kind name is empty or malformed */
#define JOBQ_EEXIST     (-7)  /* already registered / already subscribed */
#define JOBQ_ESTATE     (-8)  /* not allowed in the job's current state */
#define JOBQ_ETIMEDOUT  (-9)  /* the timeout passed with nothing to return */
#define JOBQ_ECLOSED    (-10) /* the queue is closing or closed */
#define JOBQ_ESTORAGE   (-11) /* the storage backend failed */
#define JOBQ_EURL       (-12) /* a storage URL is malformed or unsupported */
#define JOBQ_ECANCELLED (-13) /* the job was cancelled */
#define JOBQ_EDEADLK    (-14) /* the call would block the loop thread it runs on */
#define JOBQ_EBUSY      (-15) /* the resource is in use, try again */
#define JOBQ_EIO        (-16) /* an I/O error */
#define JOBQ_ECORRUPT   (-17) /* stored data is damaged or not libjobq's */
#define JOBQ_EFULL      (-18) /* the storage is full */
#define JOBQ_EVERSION   (-19) /* data written by a newer, incompatible version */
#define JOBQ_ENOTSUP    (-20) /* the backend or build does not support this */
#define JOBQ_ECONFIG    (-21) /* a stage or provider configuration is malformed or incomplete */
#define JOBQ_EPROVIDER  (-22) /* a provider answered with an error or with unusable data */
#define JOBQ_ENETWORK   (-23) /* a provider could not be reached (connect, TLS, reset) */
#define JOBQ_EPATH      (-24) /* a path or key escapes the directory it must stay in */
#define JOBQ_ECRON      (-25) /* a cron expression is malformed or never matches */
#define JOBQ_ETZ        (-26) /* a time zone is unknown, malformed or its file is damaged */
#define JOBQ_EQUOTA     (-27) /* an owner has as many unfinished jobs as its quota allows */
#define JOBQ_ESIGNATURE (-28) /* a webhook signature does not match, or its timestamp is too old or too new */

/* A short sentence for a code, e.g. "no job with that id". Static storage. */
JOBQ_API const char *jobq_strerror(int code);
/* The code's identifier, e.g. "JOBQ_ENOTFOUND". Static storage. */
JOBQ_API const char *jobq_err_name(int code);
/* The lowest (most negative) code this build knows, JOBQ_ESIGNATURE (-28) in
 * 0.1: every value from 0 down to it is a code, so a binding can enumerate
 * them with jobq_err_name and jobq_strerror (which say "JOBQ_EUNKNOWN" and
 * "unknown error" below it). Codes are only ever appended: it only falls. */
JOBQ_API int jobq_err_code_min(void);
/* What exactly went wrong in the last failing call on this thread, e.g.
 * "jobq_submit: payload is not valid JSON: expected ',' or '}' at byte 9".
 * Empty string if none. Valid until the next libjobq call on this thread. */
JOBQ_API const char *jobq_last_error(void);

/* Frees a string that a libjobq function documents as "free with jobq_free". */
JOBQ_API void jobq_free(void *p);

/* ---- job states and event types --------------------------------------- */

#define JOBQ_QUEUED    0 /* waiting to run; run_at may be in the future */
#define JOBQ_RUNNING   1
#define JOBQ_SUCCEEDED 2
#define JOBQ_FAILED    3
#define JOBQ_CANCELLED 4

/* "queued", "running", "succeeded", "failed", "cancelled"; NULL if unknown. */
JOBQ_API const char *jobq_state_name(int state);
/* The state named name ("queued" .. "cancelled", exactly as jobq_state_name
 * spells it), or JOBQ_EINVAL (-1, never a state) for NULL or another name.
 * States run from 0 without gaps: enumerate them with jobq_state_name(s)
 * for s = 0, 1, ... until it returns NULL. */
JOBQ_API int jobq_state_by_name(const char *name);
/* 1 for succeeded, failed and cancelled, else 0. */
JOBQ_API int jobq_state_is_terminal(int state);

#define JOBQ_EVENT_SUBMITTED 1
#define JOBQ_EVENT_STARTED   2
#define JOBQ_EVENT_PROGRESS  3
#define JOBQ_EVENT_RETRYING  4
#define JOBQ_EVENT_SUCCEEDED 5
#define JOBQ_EVENT_FAILED    6
#define JOBQ_EVENT_CANCELLED 7
/* About the queue, not a job (jobq_event_job_id is ""): storage failed under
 * this process's background work (the workers' claims, heartbeats, progress
 * writes, rescues, timeouts, stored finishes) after answering before, so the
 * workers claim nothing until it answers again; jobq_event_code and
 * jobq_event_error say how. Once per episode, not per failed call. */
#define JOBQ_EVENT_STORAGE_ERROR 8
/* Storage answers this process's background work again (after
 * JOBQ_EVENT_STORAGE_ERROR). */
#define JOBQ_EVENT_STORAGE_OK    9
/* Every member of a batch (jobq_batch_submit) has finished: sent once per
 * batch, by the process whose change finished its last member, and heard
 * by other processes like their other events. jobq_event_batch_id names
 * the batch, jobq_event_job_id its last member ("" for a batch whose every
 * job was a dedupe hit), jobq_event_result is the summary JSON
 * {"batchId", "total", "succeeded", "failed", "cancelled", "errors":
 * [{"jobId", "error"}]}. */
#define JOBQ_EVENT_BATCH_DONE    10
/* A webhook delivery failed for good (its attempts are spent, its endpoint
 * answered 410 Gone, or its address was refused): sent by the process whose
 * attempt decided it. jobq_event_job_id names the job, jobq_event_kind its
 * kind, jobq_event_delivery_id the delivery, jobq_event_attempt the tries
 * made, jobq_event_error says why (never a secret); state is -1. See
 * "webhooks: endpoints and deliveries" below. */
#define JOBQ_EVENT_WEBHOOK_FAILED 11
/* More types may come: a subscriber ignores those it does not know. */

/* "submitted", "started", ..., "storage_error", "storage_ok",
 * "batch_done", "webhook_failed"; NULL if unknown. */
JOBQ_API const char *jobq_event_type_name(int type);
/* The event type named name (as jobq_event_type_name spells it), or
 * JOBQ_EINVAL (-1, never a type) for NULL or a name this version does not
 * know. Types run from 1 without gaps: enumerate them with
 * jobq_event_type_name(t) for t = 1, 2, ... until it returns NULL. */
JOBQ_API int jobq_event_type_by_name(const char *name);

/* ---- handles ----------------------------------------------------------- */

typedef struct jobq_s jobq_t;                   /* a queue */
typedef struct jobq_options_s jobq_options_t;   /* options for jobq_open */
typedef struct jobq_kind_opts_s jobq_kind_opts_t;
typedef struct jobq_submit_opts_s jobq_submit_opts_t;
typedef struct jobq_job_s jobq_job_t;           /* a snapshot of one job */
typedef struct jobq_filter_s jobq_filter_t;     /* what jobq_list selects */
typedef struct jobq_page_s jobq_page_t;         /* one page of jobq_list */
typedef struct jobq_event_s jobq_event_t;
typedef struct jobq_ctx_s jobq_ctx_t;           /* one attempt of one job */

struct uv_loop_s; /* libuv's loop; hosts that never use libuv need no uv.h */

/* A text job id (UUIDv7, 36 characters) fits in a buffer of this size. */
#define JOBQ_ID_SIZE 37
/* JOBQ_ID_SIZE of the library actually loaded, for bindings that cannot
 * read macros: the size to give the _ex submits (jobq_submit_ex). */
JOBQ_API size_t jobq_id_size(void);

/* ---- options ----------------------------------------------------------- */

JOBQ_API jobq_options_t *jobq_options_new(void); /* NULL on out of memory */
JOBQ_API void jobq_options_free(jobq_options_t *opts);
/* "memory:" (default; this queue only) or "sqlite:PATH[?OPTIONS]" (a file
 * that several processes may share; PATH is a file name, not an SQLite URI,
 * and ":memory:" is refused at jobq_open with JOBQ_EURL: use "memory:"; a
 * database with other programs' tables is refused with JOBQ_ECORRUPT and
 * left unchanged unless OPTIONS has shared_schema=1);
 * other schemes through jobq_storage_register (jobq/storage.h). */
JOBQ_API int jobq_options_set_storage(jobq_options_t *opts, const char *url);
/* Run on the host's loop (the host runs it, and calls jobq_open and
 * jobq_close on the loop's thread). Default: a loop thread of libjobq's own. */
JOBQ_API int jobq_options_set_loop(jobq_options_t *opts, struct uv_loop_s *loop);
/* Worker threads for synchronous handlers, 0..1024. Default 4. */
JOBQ_API int jobq_options_set_workers(jobq_options_t *opts, int n);
/* Largest payload and result in bytes, 2..(1 << 30). Default 1 MiB. */
JOBQ_API int jobq_options_set_max_payload(jobq_options_t *opts, size_t bytes);
/* Events kept for jobq_next_event before the oldest are dropped, 1..(1 << 24).
 * Default 65536. */
JOBQ_API int jobq_options_set_event_buffer(jobq_options_t *opts, int events);
/* 1: from jobq_open on, hear the events of other processes that share the
 * storage (a "sqlite:" file), and buffer every event for jobq_next_event,
 * so that its first call already sees them. 0 (default): other processes'
 * events start with the first jobq_subscribe or jobq_next_event call.
 * jobq_open fails with JOBQ_ENOTSUP for a backend that cannot share events
 * ("memory:"). */
JOBQ_API int jobq_options_set_shared_events(jobq_options_t *opts, int on);

/* How long a claimed job stays reserved without a heartbeat, 100 ms..1 day.
 * While its handler runs, the lease is extended every lease/3; if the
 * process dies, any process rescues the job after the lease expires (with
 * durable storage). With SQLite (on Linux) the jobs of a process that is
 * still alive are rescued only 2 x busy_timeout after their lease (a
 * heartbeat may wait that long for the write lock). Default 30000 ms. */
JOBQ_API int jobq_options_set_lease(jobq_options_t *opts, int64_t ms);
/* The directory under which each pipeline job (jobq/stages.h) gets its own
 * work directory, <dir>/<job id>, for its files. Default: "<PATH>-work"
 * beside a "sqlite:PATH" database, else "jobq-work" in the working
 * directory. Created when first needed. */
JOBQ_API int jobq_options_set_workdir(jobq_options_t *opts, const char *dir);

/* A clock returning milliseconds since the epoch; for tests and simulations.
 * Scheduling decisions (run_at, backoff, timeouts, jobq_claim) follow it;
 * timers sleep for the difference it reports. NULL restores the real clock. */
typedef int64_t (*jobq_clock_fn)(void *ud);
JOBQ_API int jobq_options_set_clock(jobq_options_t *opts, jobq_clock_fn fn, void *ud);
/* A source of randomness for backoff jitter returning a value in [0, 1);
 * for tests. NULL restores the default. */
typedef double (*jobq_random_fn)(void *ud);
JOBQ_API int jobq_options_set_random(jobq_options_t *opts, jobq_random_fn fn, void *ud);

/* What libjobq has to say that no call returns: storage failing under the
 * workers and its recovery, finishes that could not be stored, attempts
 * whose lease was lost, rescues. One line of UTF-8 (no newline), valid
 * during the call. */
#define JOBQ_LOG_ERROR 1 /* work is stuck or lost until someone acts */
#define JOBQ_LOG_WARN  2 /* something went wrong and libjobq coped */
#define JOBQ_LOG_INFO  3 /* routine news of the queue's own work */
typedef void (*jobq_log_fn)(int level, const char *message, void *ud);
/* Messages of level <= max_level (0..3; 0: none) go to fn, on the loop
 * thread, in order; fn must not block. fn NULL: to stderr, as lines
 * "libjobq: error: ...". Default: stderr, JOBQ_LOG_WARN. */
JOBQ_API int jobq_options_set_log(jobq_options_t *opts, jobq_log_fn fn, void *ud,
                                  int max_level);

/* At most max (1..1000000) jobs queued or running per owner: of kind `kind`,
 * or, with kind NULL, of all kinds together. A submit over it fails with
 * JOBQ_EQUOTA and stores nothing (a batch: all or none). Counted in the
 * submit's storage transaction, so it holds across every process that sets
 * it on the store. Jobs without an owner are not counted. Setting the same
 * kind again replaces its maximum; up to 64 quotas. */
JOBQ_API int jobq_options_set_owner_quota(jobq_options_t *opts, const char *kind, int max);
/* What a schedule this queue adds (jobq_cron_add) does with occurrences
 * missed while no process evaluated it: JOBQ_CRON_MISSED_LATEST (the
 * default), _SKIP or _ALL (see the cron section). Stored with the schedule,
 * so that every process evaluating it agrees. */
JOBQ_API int jobq_options_set_cron_missed(jobq_options_t *opts, int policy);

/* How long a job of a kind is assumed to take, 1 ms..1 day, while no
 * attempt of it has finished in any process on the store (ETA:
 * jobq_job_eta_ms). A kind's own jobq_kind_opts_set_expected_duration
 * overrides it. Default 45000 ms. */
JOBQ_API int jobq_options_set_default_duration(jobq_options_t *opts, int64_t ms);

/* ---- lifecycle --------------------------------------------------------- */

/* Opens a queue. opts may be NULL for the defaults; it is copied. */
JOBQ_API int jobq_open(jobq_t **out, const jobq_options_t *opts);
/* Starts the worker threads that run registered handlers. A process that only
 * submits and reads never calls it. */
JOBQ_API int jobq_start(jobq_t *q);
/* Stops taking work, waits up to drain_ms for running jobs to finish, releases
 * the rest back to the queue (their attempt is not counted), then frees q.
 * drain_ms < 0 waits without limit. */
JOBQ_API int jobq_close(jobq_t *q, int drain_ms);
/* jobq_close in two steps, for hosts and bindings whose other threads may
 * still hold q. jobq_shutdown does all that jobq_close does but free q:
 * from then on every call on q, from any thread, fails with JOBQ_ECLOSED
 * (calls blocked in jobq_wait, jobq_next_event or a claim return it), and
 * jobq_poll_fd's descriptor stays readable. A second shutdown, or a
 * jobq_close after it: JOBQ_ECLOSED. jobq_destroy then frees q; on a queue
 * not shut down it shuts down first with drain 0. No call on q may start
 * after jobq_destroy; one still under way on another thread finishes first
 * (the memory goes with it). NULL: nothing. */
JOBQ_API int jobq_shutdown(jobq_t *q, int drain_ms);
JOBQ_API void jobq_destroy(jobq_t *q);
/* The current time of the queue's clock (see jobq_options_set_clock). */
JOBQ_API int64_t jobq_now(jobq_t *q);

/* ---- health and stats -------------------------------------------------- */

/* 0 when the queue is open and its storage answers: the last call of each
 * sort of background work (claims, heartbeats, progress writes, rescues,
 * timeouts, stored finishes, cron schedules) succeeded and a probe read works now. Else the
 * code of the failure, and jobq_last_error() says which work failed, how,
 * since when and how many calls: e.g. JOBQ_ECORRUPT for a damaged file,
 * JOBQ_EFULL for a full disk, JOBQ_ECLOSED while closing. For a health
 * endpoint; never blocks longer than one storage read. */
JOBQ_API int jobq_health(jobq_t *q);

typedef struct jobq_stats_s jobq_stats_t; /* a snapshot: this process, and the store */
/* Takes a snapshot (this process's counts are added to the store first, and
 * the store's are read: the kind accessors below); free with jobq_stats_free. */
JOBQ_API int jobq_stats(jobq_t *q, jobq_stats_t **out);
JOBQ_API void jobq_stats_free(jobq_stats_t *st);
/* When the snapshot was taken (the queue's clock). */
JOBQ_API int64_t jobq_stats_time(const jobq_stats_t *st);
/* Attempts running in this process (handlers, jobq_claim callers). */
JOBQ_API int jobq_stats_running(const jobq_stats_t *st);
/* Claims of this process that a kind's rate limit held back (the kind had
 * due jobs and its window no room) since jobq_open. */
JOBQ_API int64_t jobq_stats_rate_limited(const jobq_stats_t *st);
/* Storage calls of this process's background work that failed since
 * jobq_open (see jobq_health). */
JOBQ_API int64_t jobq_stats_storage_errors(const jobq_stats_t *st);
/* Since when that work has been failing (0: storage answered its last call
 * of each sort). */
JOBQ_API int64_t jobq_stats_storage_failing_since(const jobq_stats_t *st);
/* The latest such failure: its JOBQ_E* code (0 if none yet), its sentence
 * (NULL if none; owned by the snapshot) and when it happened (0 if none). */
JOBQ_API int jobq_stats_last_storage_code(const jobq_stats_t *st);
JOBQ_API const char *jobq_stats_last_storage_error(const jobq_stats_t *st);
JOBQ_API int64_t jobq_stats_last_storage_error_at(const jobq_stats_t *st);

/* What every process on the store did and sees, read when the snapshot
 * was taken: per kind, in name order. Each process adds its counts to the
 * store about once a second (and at jobq_stats and jobq_close). Every
 * accessor below: JOBQ_EINVAL for st NULL or i out of range, JOBQ_ENOTSUP
 * when the backend keeps no stats (the built-in ones do). */
JOBQ_API int jobq_stats_kind_count(const jobq_stats_t *st);
/* Kind i's name (owned by the snapshot); NULL if i is out of range. */
JOBQ_API const char *jobq_stats_kind_name(const jobq_stats_t *st, int i);
/* Kind i's jobs queued and due now, queued for a later time, and running
 * (in the live processes, as they last told the store). */
JOBQ_API int64_t jobq_stats_kind_queued(const jobq_stats_t *st, int i);
JOBQ_API int64_t jobq_stats_kind_scheduled(const jobq_stats_t *st, int i);
JOBQ_API int64_t jobq_stats_kind_running(const jobq_stats_t *st, int i);
/* How long (ms) the oldest due job of kind i has waited; 0 if none waits. */
JOBQ_API int64_t jobq_stats_kind_oldest_queued_ms(const jobq_stats_t *st, int i);

/* Counters, since the store was made. */
#define JOBQ_STAT_STARTED    0 /* attempts started */
#define JOBQ_STAT_SUCCEEDED  1 /* jobs that succeeded */
#define JOBQ_STAT_FAILED     2 /* jobs that failed for good */
#define JOBQ_STAT_RETRIED    3 /* attempts that failed and were queued again */
#define JOBQ_STAT_CANCELLED  4 /* jobs cancelled */
#define JOBQ_STAT_CACHE_HIT  5 /* a submit or jobq_get_by_key found a live key */
#define JOBQ_STAT_CACHE_MISS 6 /* a submit stored a new keyed job; a lookup found none */
#define JOBQ_STAT_RATE_WAIT  7 /* starts held back by a rate limit */
#define JOBQ_STAT_N          8
/* Counter `which` (JOBQ_STAT_*) of kind i. */
JOBQ_API int64_t jobq_stats_kind_counter(const jobq_stats_t *st, int i, int which);
/* Counter `which` over all kinds, with the counts that have no kind (a
 * jobq_get_by_key that found nothing). */
JOBQ_API int64_t jobq_stats_total(const jobq_stats_t *st, int which);
/* failed / (succeeded + failed) of kind i, 0..1; NaN when nothing
 * finished. Bad arguments give a negative JOBQ_E* code (as a double). */
JOBQ_API double jobq_stats_kind_error_rate(const jobq_stats_t *st, int i);
/* The duration (ms) under which a share q (0 < q <= 1: 0.5 is the median,
 * 0.95 the 95th percentile) of kind i's finished attempts fell, estimated
 * from log-spaced buckets; NaN when none finished. */
JOBQ_API double jobq_stats_kind_duration_quantile(const jobq_stats_t *st, int i, double q);
/* Kind i's moving average of attempt durations (ms) that ETA uses; NaN if
 * no attempt finished yet. */
JOBQ_API double jobq_stats_kind_average_ms(const jobq_stats_t *st, int i);
/* Attempts of kind i that the live workers run at once, together; 0 if no
 * live process runs the kind. */
JOBQ_API int jobq_stats_kind_concurrency(const jobq_stats_t *st, int i);

/* Webhook deliveries on the store in state `state` (JOBQ_DELIVERY_*),
 * counted when the snapshot was taken; -1 when the backend keeps no outbox
 * or for an unknown state. */
JOBQ_API int64_t jobq_stats_webhook_outbox(const jobq_stats_t *st, int state);
/* Webhook tries this process made since jobq_open, by how they ended:
 * JOBQ_DELIVERY_DELIVERED (a 2xx), JOBQ_DELIVERY_PENDING (failed, to be
 * tried again), JOBQ_DELIVERY_FAILED (failed for good); -1 for another
 * value. */
JOBQ_API int64_t jobq_stats_webhook_tries(const jobq_stats_t *st, int outcome);

/* The whole snapshot as a JSON object; free with jobq_free. NULL on ENOMEM. */
JOBQ_API char *jobq_stats_to_json(const jobq_stats_t *st);
/* The snapshot in the Prometheus text exposition format (version 0.0.4):
 * jobq_queue_jobs{kind,state} gauges, jobq_jobs_total{kind,outcome} counters,
 * the jobq_job_duration_seconds histogram, cache and rate-limit counters,
 * storage health gauges. Free with jobq_free; NULL on error. */
JOBQ_API char *jobq_stats_to_prometheus(const jobq_stats_t *st);

/* ---- kinds and handlers ------------------------------------------------ */

JOBQ_API jobq_kind_opts_t *jobq_kind_opts_new(void);
JOBQ_API void jobq_kind_opts_free(jobq_kind_opts_t *ko);
/* Jobs of this kind running at once in this process (handlers and claimed
 * jobs); 0 = unlimited (default). It counts code that runs: an attempt that
 * timed out keeps its slot until its handler returns, or until its owner's
 * (refused) jobq_ctx_succeed/fail when it finishes asynchronously. */
JOBQ_API int jobq_kind_opts_set_concurrency(jobq_kind_opts_t *ko, int n);
/* Attempts before a job fails for good, 1..1000. Default 3. */
JOBQ_API int jobq_kind_opts_set_max_attempts(jobq_kind_opts_t *ko, int n);
/* Delay before retry n is base * 2^(n-1), at most max, less a random share of
 * up to jitter (0..1) of it. Defaults 1000 ms, 300000 ms, 0.2. */
JOBQ_API int jobq_kind_opts_set_backoff(jobq_kind_opts_t *ko, int64_t base_ms,
                                        int64_t max_ms, double jitter);
/* An attempt running longer fails (retryable). 0 = none (default). Storage
 * ends it at the deadline; the handler is not stopped (see jobq_ctx_cancelled)
 * and keeps its worker thread and its concurrency slot until it returns. */
JOBQ_API int jobq_kind_opts_set_timeout(jobq_kind_opts_t *ko, int64_t ms);
/* 1: the handler runs on the loop thread and must not block; it finishes the
 * job later (e.g. from an I/O callback). 0 (default): a worker thread. */
JOBQ_API int jobq_kind_opts_set_on_loop(jobq_kind_opts_t *ko, int on_loop);
/* At most `starts` attempts of the kind start in any window of interval_ms,
 * counted in storage over every process on the store (set the same limit in
 * each): 1..1,000,000 starts per 1 ms .. 1 day; starts 0 removes the limit
 * (interval_ms is then ignored). Claims wait for room, without polling. A
 * backend without rate limits makes jobq_register refuse it (JOBQ_ENOTSUP). */
JOBQ_API int jobq_kind_opts_set_rate_limit(jobq_kind_opts_t *ko, int starts,
                                           int64_t interval_ms);
/* How long a job of this kind is expected to take, 0..1 day (ms): what ETA
 * assumes in this process until an attempt of the kind has finished in any
 * process on the store. 0 (default): the queue's default duration
 * (jobq_options_set_default_duration). */
JOBQ_API int jobq_kind_opts_set_expected_duration(jobq_kind_opts_t *ko, int64_t ms);
/* Finished jobs of this kind (succeeded, failed, cancelled) are deleted,
 * with their work directories, ms after they finished, by a process that
 * registered the kind and started (its maintenance thread, at most once a
 * minute, a few hundred jobs per storage transaction). 0 keeps them; else
 * 1000 ms .. ten years. Default 86400000 (24 h). A succeeded job whose
 * dedupe key is still live is kept until its key has expired too. Kinds
 * that no started process registers are never pruned this way (jobq_prune
 * still prunes them). JOBQ_ENOTSUP at jobq_register on a backend that cannot
 * prune by kind (then the default is not applied). */
JOBQ_API int jobq_kind_opts_set_retention(jobq_kind_opts_t *ko, int64_t ms);
/* With n > 0, retention keeps the n finished jobs of each owner (of this
 * kind) submitted last, however old: a per-user history. 0..100000;
 * default 0. Jobs without an owner are not kept by it. */
JOBQ_API int jobq_kind_opts_set_keep_per_owner(jobq_kind_opts_t *ko, int n);

/* A handler runs one attempt. It reports through ctx and finishes the job with
 * jobq_ctx_succeed or jobq_ctx_fail, before it returns or later from any
 * thread. Returning without finishing is how an asynchronous handler says
 * "later". */
typedef void (*jobq_handler_fn)(jobq_ctx_t *ctx, void *ud);

/* Registers the handler for kind; ko may be NULL for defaults and is copied.
 * Kind names: 1..64 characters of [A-Za-z0-9_.:-], starting with a letter or
 * digit. Must be called before jobq_start. */
JOBQ_API int jobq_register(jobq_t *q, const char *kind, jobq_handler_fn fn, void *ud,
                           const jobq_kind_opts_t *ko);

/* ---- submitting -------------------------------------------------------- */

JOBQ_API jobq_submit_opts_t *jobq_submit_opts_new(void);
JOBQ_API void jobq_submit_opts_free(jobq_submit_opts_t *so);
/* Who the job belongs to, for jobq_list; 1..256 bytes of UTF-8. */
JOBQ_API int jobq_submit_opts_set_owner(jobq_submit_opts_t *so, const char *owner);
/* Higher runs first, -1000..1000; FIFO within a priority. Default 0. */
JOBQ_API int jobq_submit_opts_set_priority(jobq_submit_opts_t *so, int priority);
/* Not before this time (ms since epoch; 0 and past times: due now).
 * Overrides set_delay. */
JOBQ_API int jobq_submit_opts_set_run_at(jobq_submit_opts_t *so, int64_t at_ms);
/* Not before now + ms. */
JOBQ_API int jobq_submit_opts_set_delay(jobq_submit_opts_t *so, int64_t ms);
/* Overrides the kind's max attempts, 1..1000. */
JOBQ_API int jobq_submit_opts_set_max_attempts(jobq_submit_opts_t *so, int n);
/* While a job with this key is queued or running, or succeeded less than
 * ttl_ms ago, a submit with the same key returns that job's id instead of a
 * new job (and jobq_submit returns 1). ttl_ms 0 = only while unfinished. */
JOBQ_API int jobq_submit_opts_set_dedupe(jobq_submit_opts_t *so, const char *key, int64_t ttl_ms);
/* Like set_dedupe, but a succeeded job keeps the key until the absolute time
 * until_ms (e.g. jobq_end_of_day: a daily cache entry), however late it
 * finished. jobq_submit refuses an until_ms not after the queue's now. */
JOBQ_API int jobq_submit_opts_set_dedupe_until(jobq_submit_opts_t *so, const char *key,
                                               int64_t until_ms);
/* 1: submit a new job even if the dedupe key is live; it takes the key over. */
JOBQ_API int jobq_submit_opts_set_force(jobq_submit_opts_t *so, int force);

/* Submits one job. payload_json must be valid JSON (NULL means "null"). The id
 * is written to out_id (at least JOBQ_ID_SIZE bytes). Returns 0 once the job
 * is stored, 1 if a live dedupe key returned an existing job's id, or a
 * negative code (nothing stored). Unknown kinds are accepted: the process that
 * runs them may be another one. From another language (FFI), prefer
 * jobq_submit_ex: this form cannot tell a short buffer. */
JOBQ_API int jobq_submit(jobq_t *q, const char *kind, const char *payload_json,
                         const jobq_submit_opts_t *so, char *out_id);
/* jobq_submit with the size of out_id: out_cap < JOBQ_ID_SIZE is refused
 * with JOBQ_EINVAL before anything is stored, and out_id is not written. It
 * writes JOBQ_ID_SIZE bytes (the id and its NUL), never more. */
JOBQ_API int jobq_submit_ex(jobq_t *q, const char *kind, const char *payload_json,
                            const jobq_submit_opts_t *so, char *out_id, size_t out_cap);
/* Submits n jobs at once, all or none. kinds[i], payloads[i]; opts may be NULL
 * or an array whose entries may be NULL. out_ids receives n ids, each
 * JOBQ_ID_SIZE bytes apart (n * JOBQ_ID_SIZE bytes). out_dup, if not NULL,
 * receives n flags: 1 where a live dedupe key returned an existing job.
 * Returns the number of such jobs (>= 0) or a negative code. From FFI,
 * prefer jobq_submit_many_ex. */
JOBQ_API int jobq_submit_many(jobq_t *q, size_t n, const char *const *kinds,
                              const char *const *payloads,
                              const jobq_submit_opts_t *const *opts, char *out_ids,
                              int *out_dup);
/* jobq_submit_many with the size of out_ids: out_cap < n * JOBQ_ID_SIZE is
 * refused with JOBQ_EINVAL before anything is stored (n 0 still returns 0).
 * It writes n * JOBQ_ID_SIZE bytes, never more. */
JOBQ_API int jobq_submit_many_ex(jobq_t *q, size_t n, const char *const *kinds,
                                 const char *const *payloads,
                                 const jobq_submit_opts_t *const *opts, char *out_ids,
                                 size_t out_cap, int *out_dup);

/* ---- batches ----------------------------------------------------------- */

typedef struct jobq_batch_s jobq_batch_t; /* a snapshot of one batch */

/* Submits n >= 1 jobs as one batch, all or none, like jobq_submit_many
 * (same arguments), and writes the new batch's id to out_batch_id
 * (JOBQ_ID_SIZE bytes). The batch's members are the jobs this call
 * stored: a dedupe hit (out_dup[i] = 1) belongs to whoever made it and is
 * not a member. max_running 1..100000 caps how many members run at once
 * across every process on the store (the others wait queued); 0: no cap.
 * When the last member finishes, JOBQ_EVENT_BATCH_DONE is sent. Returns
 * the number of dedupe hits (>= 0) or a negative code (nothing stored).
 * From FFI, prefer jobq_batch_submit_ex. */
JOBQ_API int jobq_batch_submit(jobq_t *q, size_t n, const char *const *kinds,
                               const char *const *payloads,
                               const jobq_submit_opts_t *const *opts, int max_running,
                               char *out_batch_id, char *out_ids, int *out_dup);
/* jobq_batch_submit with the sizes of its buffers: batch_cap <
 * JOBQ_ID_SIZE or ids_cap < n * JOBQ_ID_SIZE is refused with JOBQ_EINVAL
 * before anything is stored, and nothing is written. */
JOBQ_API int jobq_batch_submit_ex(jobq_t *q, size_t n, const char *const *kinds,
                                  const char *const *payloads,
                                  const jobq_submit_opts_t *const *opts, int max_running,
                                  char *out_batch_id, size_t batch_cap, char *out_ids,
                                  size_t ids_cap, int *out_dup);
/* A snapshot of the batch; free with jobq_batch_free. JOBQ_ENOTFOUND if
 * there is no such batch. */
JOBQ_API int jobq_batch_get(jobq_t *q, const char *batch_id, jobq_batch_t **out);
JOBQ_API void jobq_batch_free(jobq_batch_t *b);
/* Accessors; strings are owned by the snapshot. */
JOBQ_API const char *jobq_batch_id(const jobq_batch_t *b);
/* Members in state (JOBQ_QUEUED ... JOBQ_CANCELLED) when the snapshot was
 * taken; state -1: all members. */
JOBQ_API int64_t jobq_batch_count(const jobq_batch_t *b, int state);
/* 1 once every member has finished (succeeded, failed or cancelled). */
JOBQ_API int jobq_batch_done(const jobq_batch_t *b);
JOBQ_API int jobq_batch_max_running(const jobq_batch_t *b); /* 0: no cap */
JOBQ_API int64_t jobq_batch_created_at(const jobq_batch_t *b);
JOBQ_API int64_t jobq_batch_finished_at(const jobq_batch_t *b); /* 0 while not done */
/* The errors of the first members to fail (at most 20), in the order they
 * failed: how many, and entry i's job id and error text. */
JOBQ_API int jobq_batch_error_count(const jobq_batch_t *b);
JOBQ_API const char *jobq_batch_error_job_id(const jobq_batch_t *b, int i);
JOBQ_API const char *jobq_batch_error(const jobq_batch_t *b, int i);
/* The whole snapshot as a JSON object; free with jobq_free. NULL on ENOMEM. */
JOBQ_API char *jobq_batch_to_json(const jobq_batch_t *b);

/* ---- reading ----------------------------------------------------------- */

/* A snapshot of the job; free with jobq_job_free. */
JOBQ_API int jobq_get(jobq_t *q, const char *id, jobq_job_t **out);
/* The job that holds dedupe key `key` live (queued, running, or succeeded
 * and not expired): a cache lookup that submits nothing. JOBQ_ENOTFOUND
 * when no job holds it. Free with jobq_job_free. */
JOBQ_API int jobq_get_by_key(jobq_t *q, const char *key, jobq_job_t **out);
JOBQ_API void jobq_job_free(jobq_job_t *job);
/* Accessors; strings are owned by the snapshot (NULL when absent). */
JOBQ_API const char *jobq_job_id(const jobq_job_t *job);
JOBQ_API const char *jobq_job_kind(const jobq_job_t *job);
JOBQ_API int jobq_job_state(const jobq_job_t *job);
JOBQ_API const char *jobq_job_payload(const jobq_job_t *job);
JOBQ_API const char *jobq_job_owner(const jobq_job_t *job);
JOBQ_API int jobq_job_priority(const jobq_job_t *job);
JOBQ_API int jobq_job_progress(const jobq_job_t *job);         /* 0..100 */
JOBQ_API const char *jobq_job_step(const jobq_job_t *job);
JOBQ_API const char *jobq_job_result(const jobq_job_t *job);   /* JSON */
JOBQ_API const char *jobq_job_error(const jobq_job_t *job);    /* last error */
JOBQ_API int jobq_job_attempts(const jobq_job_t *job);         /* started so far */
/* 0 when the job takes its kind's default and this process has not
 * registered the kind (the worker that runs it decides). */
JOBQ_API int jobq_job_max_attempts(const jobq_job_t *job);
JOBQ_API int jobq_job_cancel_requested(const jobq_job_t *job);
JOBQ_API int64_t jobq_job_created_at(const jobq_job_t *job);
JOBQ_API int64_t jobq_job_run_at(const jobq_job_t *job);
JOBQ_API int64_t jobq_job_started_at(const jobq_job_t *job);   /* 0 if never */
JOBQ_API int64_t jobq_job_finished_at(const jobq_job_t *job);  /* 0 if not */
/* Queued jobs of the same kind that will run before this one (0 = next);
 * -1 when it is not waiting in line (not queued, not due yet, or waiting
 * for a place under its batch's cap: jobq_batch_submit). Exact
 * below 1,000; from 1,000 on an estimate that is never below the true count
 * (see jobq_job_position.md). Only jobq_get fills it; snapshots in a
 * jobq_list page say -1. */
JOBQ_API int64_t jobq_job_position(const jobq_job_t *job);
/* Estimated ms until it starts, in any process on the store: from its
 * position, the kind's moving average of durations shared through the
 * store (before there is any: the kind's expected duration, else the
 * queue's default duration), how many attempts of the kind the live
 * workers run at once, and how long the running ones have run (formula:
 * jobq_job_eta_ms.md); -1 when it is not waiting in line (see
 * jobq_job_position) or the snapshot came from jobq_list. */
JOBQ_API int64_t jobq_job_eta_ms(const jobq_job_t *job);
/* Attempt i (0-based, i < jobq_job_attempts): its error (NULL if it did not
 * fail), start and end times. */
JOBQ_API const char *jobq_job_attempt_error(const jobq_job_t *job, int i);
JOBQ_API int64_t jobq_job_attempt_started_at(const jobq_job_t *job, int i);
JOBQ_API int64_t jobq_job_attempt_finished_at(const jobq_job_t *job, int i);
/* The whole snapshot as a JSON object; free with jobq_free. NULL on ENOMEM. */
JOBQ_API char *jobq_job_to_json(const jobq_job_t *job);

JOBQ_API jobq_filter_t *jobq_filter_new(void);
JOBQ_API void jobq_filter_free(jobq_filter_t *f);
JOBQ_API int jobq_filter_set_owner(jobq_filter_t *f, const char *owner);
JOBQ_API int jobq_filter_set_kind(jobq_filter_t *f, const char *kind);
/* Only this state (JOBQ_QUEUED...); -1 = any (default). */
JOBQ_API int jobq_filter_set_state(jobq_filter_t *f, int state);
/* Jobs per page, 1..1000. Default 50. */
JOBQ_API int jobq_filter_set_limit(jobq_filter_t *f, int limit);
/* 1 = newest first (default), 0 = oldest first (FIFO). */
JOBQ_API int jobq_filter_set_newest_first(jobq_filter_t *f, int newest_first);
/* Continue after a previous page (its jobq_page_next_cursor); NULL = start. */
JOBQ_API int jobq_filter_set_cursor(jobq_filter_t *f, const char *cursor);

/* One page of jobs matching f (NULL = all); free with jobq_page_free. */
JOBQ_API int jobq_list(jobq_t *q, const jobq_filter_t *f, jobq_page_t **out);
JOBQ_API size_t jobq_page_count(const jobq_page_t *page);
/* Job i of the page, owned by the page. */
JOBQ_API const jobq_job_t *jobq_page_job(const jobq_page_t *page, size_t i);
/* The cursor for the next page, or NULL when this was the last. */
JOBQ_API const char *jobq_page_next_cursor(const jobq_page_t *page);
JOBQ_API void jobq_page_free(jobq_page_t *page);

/* Long poll: blocks until the job changes (state, progress, attempt) after the
 * call, or is already terminal, or timeout_ms passes (then JOBQ_ETIMEDOUT and
 * *out is still a fresh snapshot). Changes made through this queue count, and
 * with "sqlite:" storage also those other processes commit to the file.
 * timeout_ms < 0 waits without limit. Never call it on the loop thread
 * (JOBQ_EDEADLK). */
JOBQ_API int jobq_wait(jobq_t *q, const char *id, int timeout_ms, jobq_job_t **out);

/* ---- cancelling -------------------------------------------------------- */

/* A queued job is cancelled at once. A running job is flagged: its handler
 * sees jobq_ctx_cancelled() and the job ends cancelled however it finishes.
 * A finished job: JOBQ_ESTATE. */
JOBQ_API int jobq_cancel(jobq_t *q, const char *id);

/* Deletes the jobs that finished (succeeded, failed or cancelled) more than
 * older_than_ms ago, with their work directories. *out_n (may be NULL)
 * receives how many. Running and queued jobs are never touched. Kinds a
 * started queue registered are also pruned by their retention
 * (jobq_kind_opts_set_retention); this is for the others, and for a
 * clean-up at the host's moment. */
JOBQ_API int jobq_prune(jobq_t *q, int64_t older_than_ms, size_t *out_n);

/* ---- events ------------------------------------------------------------ */

/* Accessors; strings owned by the event. */
JOBQ_API int jobq_event_type(const jobq_event_t *ev);
/* "" for events about the queue (JOBQ_EVENT_STORAGE_ERROR, _STORAGE_OK). */
JOBQ_API const char *jobq_event_job_id(const jobq_event_t *ev);
JOBQ_API const char *jobq_event_kind(const jobq_event_t *ev);
/* The job's state after the event; -1 for events about the queue. */
JOBQ_API int jobq_event_state(const jobq_event_t *ev);
JOBQ_API int jobq_event_progress(const jobq_event_t *ev);
JOBQ_API const char *jobq_event_step(const jobq_event_t *ev);
JOBQ_API int jobq_event_attempt(const jobq_event_t *ev);
JOBQ_API const char *jobq_event_error(const jobq_event_t *ev);
/* JOBQ_EVENT_STORAGE_ERROR: storage's JOBQ_E* code; 0 for other events. */
JOBQ_API int jobq_event_code(const jobq_event_t *ev);
JOBQ_API const char *jobq_event_result(const jobq_event_t *ev);
/* JOBQ_EVENT_BATCH_DONE: the batch's id; NULL for other events. */
JOBQ_API const char *jobq_event_batch_id(const jobq_event_t *ev);
/* JOBQ_EVENT_WEBHOOK_FAILED: the delivery's id; NULL for other events. */
JOBQ_API const char *jobq_event_delivery_id(const jobq_event_t *ev);
JOBQ_API int64_t jobq_event_time(const jobq_event_t *ev);
/* Events dropped from the pull buffer just before this one (it was full). */
JOBQ_API int64_t jobq_event_dropped(const jobq_event_t *ev);
/* As JSON; free with jobq_free. */
JOBQ_API char *jobq_event_to_json(const jobq_event_t *ev);
JOBQ_API void jobq_event_free(jobq_event_t *ev);

/* Called on the loop thread for each event, in order per job; ev is valid
 * during the call only. Must not block. With "sqlite:" storage, other
 * processes' changes arrive too, from the queue's first jobq_subscribe or
 * jobq_next_event call (or jobq_open, see jobq_options_set_shared_events). */
typedef void (*jobq_event_fn)(const jobq_event_t *ev, void *ud);
JOBQ_API int jobq_subscribe(jobq_t *q, jobq_event_fn fn, void *ud);
JOBQ_API int jobq_unsubscribe(jobq_t *q, jobq_event_fn fn, void *ud);

/* Pull twin of jobq_subscribe: the next event, in the same order. Events are
 * buffered from the first call on (or from jobq_open with
 * jobq_options_set_event_buffer or jobq_options_set_shared_events); other
 * processes' events only from the first call on, unless
 * jobq_options_set_shared_events. Free with jobq_event_free. timeout_ms < 0
 * waits without limit; 0 polls. JOBQ_ETIMEDOUT when none came. */
JOBQ_API int jobq_next_event(jobq_t *q, int timeout_ms, jobq_event_t **out);

/* A file descriptor for event loops (asyncio's add_reader, a Node
 * net.Socket, epoll): the read end of a non-blocking pipe, owned by q and
 * closed by jobq_destroy (or jobq_close). It becomes readable when
 * something may be pending: an event in jobq_next_event's buffer, jobs that
 * may have become claimable (a submit, a delay or backoff come due, a
 * rescue, a freed concurrency slot, another process's commit), or
 * shutdown. Readable at once after the first call. The same fd each call. */
JOBQ_API int jobq_poll_fd(jobq_t *q, int *out_fd);
/* Empties the descriptor. Call it first, then take everything pending
 * (jobq_next_event and jobq_claim_many with timeout 0 until JOBQ_ETIMEDOUT,
 * jobq_get for waits): whatever arrives after the ack makes the descriptor
 * readable again, so no wake-up is lost. JOBQ_ECLOSED from shutdown on. */
JOBQ_API int jobq_poll_ack(jobq_t *q);

/* ---- running jobs ------------------------------------------------------ */

/* Pull twin of jobq_register: claims the next due job of one of kinds (a NULL-
 * terminated array; NULL = any kind), waiting up to timeout_ms. The host runs
 * it and finishes it through *out like a handler. JOBQ_ETIMEDOUT if none. */
JOBQ_API int jobq_claim(jobq_t *q, const char *const *kinds, int timeout_ms,
                        jobq_ctx_t **out);
/* Batch twin of jobq_claim: claims up to max (1..1024) due jobs in one
 * storage claim, the workers' own (same fairness, limits and leases), into
 * out[0..*n_out); waits up to timeout_ms for at least one. Finish each ctx as
 * jobq_claim's. With kinds NULL, a kind's concurrency limit may shrink the
 * batch to its free slots; name the kinds for full batches. */
JOBQ_API int jobq_claim_many(jobq_t *q, const char *const *kinds, size_t max, int timeout_ms,
                             jobq_ctx_t **out, size_t *n_out);

/* Inside an attempt. ctx is valid until the job is finished and, for handlers,
 * the handler has returned. */
JOBQ_API const char *jobq_ctx_id(jobq_ctx_t *ctx);
JOBQ_API const char *jobq_ctx_kind(jobq_ctx_t *ctx);
JOBQ_API const char *jobq_ctx_payload(jobq_ctx_t *ctx);
JOBQ_API int jobq_ctx_attempt(jobq_ctx_t *ctx);  /* 1 for the first attempt */
/* percent 0..100; step (at most 1024 bytes of UTF-8) may be NULL to keep the
 * previous step text. */
JOBQ_API int jobq_ctx_progress(jobq_ctx_t *ctx, int percent, const char *step);
/* 1 once the job was cancelled or its attempt timed out: stop early. Nothing
 * stops a handler from outside; one that goes on after its timeout keeps its
 * worker thread and its kind's concurrency slot until it returns. */
JOBQ_API int jobq_ctx_cancelled(jobq_ctx_t *ctx);
/* result_json must be valid JSON (NULL means "null"). */
JOBQ_API int jobq_ctx_succeed(jobq_ctx_t *ctx, const char *result_json);
/* retryable 1: retried with backoff while attempts remain; 0: fails now.
 * message: UTF-8 (NULL or "": "failed"); kept up to 4096 bytes. */
JOBQ_API int jobq_ctx_fail(jobq_ctx_t *ctx, const char *message, int retryable);
/* Ends the attempt and queues the job again delay_ms (0..1 day) from now,
 * e.g. when a provider answered 429 with Retry-After. count_attempt 0: the
 * attempt does not count against max attempts (JOBQ_ENOTSUP on a backend
 * without deferral); 1: a retryable failure with this delay instead of the
 * backoff (with no attempts left the job fails). Either way the job's error
 * and its RETRYING (or FAILED) event say "deferred by the handler for N ms". */
JOBQ_API int jobq_ctx_retry_after(jobq_ctx_t *ctx, int64_t delay_ms, int count_attempt);

/* ---- scheduling helpers ------------------------------------------------ */

/* Time zones (tz): NULL, "" or "UTC"; a fixed offset "+05:30", "-0800",
 * "+05", "UTC+2", "UTC-03:30" ('+' is east of UTC, at most 18:00); or an
 * IANA name such as "Europe/London", read from the system tz database
 * ($TZDIR, else /usr/share/zoneinfo). Times are ms since the epoch, UTC. */

/* The next time the 5-field cron expression expr ("0 3 * * *", names
 * JAN-DEC and SUN-SAT, ranges, lists, steps, or @hourly/@daily/@weekly/
 * @monthly/@yearly) fires strictly after after_ms, in time zone tz. A local
 * time skipped by a DST change fires once at the end of the gap; one that
 * occurs twice fires once (at the first), or twice when the hour field is
 * written starting with '*'. JOBQ_ECRON when expr is malformed or never
 * matches, JOBQ_ETZ for an unknown tz; *out_ms is written only on success. */
JOBQ_API int jobq_cron_next(const char *expr, const char *tz, int64_t after_ms, int64_t *out_ms);

/* The exclusive end of the local day (in tz) that contains at_ms: the first
 * instant of the next local day, 23 or 25 hours later on DST days. */
JOBQ_API int jobq_end_of_day(const char *tz, int64_t at_ms, int64_t *out_ms);
/* A local date "YYYY-MM-DD" fits in a buffer of this size. */
#define JOBQ_DATE_SIZE 11
/* The date at_ms falls on in time zone tz (as jobq_cron_next reads tz), as
 * "YYYY-MM-DD" in out (cap >= JOBQ_DATE_SIZE): the {date} of a daily cache
 * key such as "podcast:{user}:{type}:{date}", which jobq_end_of_day ends. */
JOBQ_API int jobq_local_date(const char *tz, int64_t at_ms, char *out, size_t cap);

/* ---- cron -------------------------------------------------------------- */

/* Schedules live in the queue's storage, so every process on it sees the
 * same ones; every queue that called jobq_start evaluates them (its
 * maintenance thread, reading the list again at most once a second), and
 * each occurrence is submitted exactly once however many do, as a job of
 * the schedule's kind with run_at the occurrence and dedupe key
 * "cron:<name>:<occurrence ms>". */
typedef struct jobq_cron_s jobq_cron_t;           /* one schedule of a listing */
typedef struct jobq_cron_list_s jobq_cron_list_t; /* jobq_cron_list */

/* Missed occurrences: those more than a minute old when a process first
 * evaluates the schedule (every process was down, or none had started).
 * LATEST submits the latest of them once; SKIP submits none; ALL submits
 * each (the latest 1,000 at most), oldest first. An occurrence evaluated
 * within the minute is submitted whatever the policy. */
#define JOBQ_CRON_MISSED_LATEST 0
#define JOBQ_CRON_MISSED_SKIP 1
#define JOBQ_CRON_MISSED_ALL 2

/* Adds schedule name (1..128 bytes of A-Z a-z 0-9 _ . : -), or replaces the
 * one of that name: each occurrence of expr in tz (see jobq_cron_next)
 * submits kind with payload_json (NULL: null). so may set owner, priority
 * and max attempts; a dedupe key, run_at or delay is refused (JOBQ_EINVAL:
 * the occurrence is the key and the time). The first run is the first
 * occurrence after now; a replacement with the same expr and tz keeps the
 * stored next run. JOBQ_ECRON, JOBQ_ETZ, JOBQ_ETOOBIG, JOBQ_ENOTSUP (a
 * backend without schedules); nothing is stored on error. */
JOBQ_API int jobq_cron_add(jobq_t *q, const char *name, const char *expr, const char *tz,
                           const char *kind, const char *payload_json,
                           const jobq_submit_opts_t *so);
/* Removes schedule name; JOBQ_ENOTFOUND if there is none. Jobs it
 * submitted stay. */
JOBQ_API int jobq_cron_remove(jobq_t *q, const char *name);
/* Every schedule, by name. Free with jobq_cron_list_free. */
JOBQ_API int jobq_cron_list(jobq_t *q, jobq_cron_list_t **out);
JOBQ_API size_t jobq_cron_list_count(const jobq_cron_list_t *list);
/* The i-th schedule (NULL past the end); valid until the list is freed. */
JOBQ_API const jobq_cron_t *jobq_cron_list_get(const jobq_cron_list_t *list, size_t i);
JOBQ_API void jobq_cron_list_free(jobq_cron_list_t *list);
JOBQ_API const char *jobq_cron_name(const jobq_cron_t *c);
JOBQ_API const char *jobq_cron_expr(const jobq_cron_t *c);
JOBQ_API const char *jobq_cron_tz(const jobq_cron_t *c);  /* "UTC" when none was given */
JOBQ_API const char *jobq_cron_kind(const jobq_cron_t *c);
JOBQ_API const char *jobq_cron_payload(const jobq_cron_t *c);
/* The next occurrence not yet submitted (ms since the epoch). */
JOBQ_API int64_t jobq_cron_next_run(const jobq_cron_t *c);
/* The latest occurrence submitted; 0 if none yet. */
JOBQ_API int64_t jobq_cron_last_run(const jobq_cron_t *c);
JOBQ_API int jobq_cron_missed_policy(const jobq_cron_t *c); /* JOBQ_CRON_MISSED_* */

/* ---- webhooks: signing ------------------------------------------------- */

/* Signatures by the Standard Webhooks specification 1.0
 * (https://www.standardwebhooks.com): a delivery carries the headers
 * webhook-id, webhook-timestamp (Unix seconds) and webhook-signature,
 * "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)). A secret is
 * "whsec_" + base64 of the key. See docs/webhooks.md. */

/* The bytes of one "v1,<signature>" entry and its NUL: "v1," + 44 base64
 * characters (32 bytes of HMAC-SHA256) + NUL. */
#define JOBQ_WEBHOOK_SIGNATURE_SIZE 48
/* The tolerance the specification recommends for jobq_webhook_verify: a
 * timestamp more than 5 minutes from now is refused. */
#define JOBQ_WEBHOOK_TOLERANCE_DEFAULT 300

/* Writes "v1,<base64 signature>" of body (body_len bytes, "" for none) for
 * the delivery msg_id (1 or more printable ASCII characters, no spaces) at
 * timestamp_s (Unix seconds, >= 0) into out (cap >= JOBQ_WEBHOOK_SIGNATURE_SIZE).
 * secret is "whsec_<base64>"; the key is the decoded bytes. JOBQ_EINVAL for
 * a NULL pointer, a short cap, a bad id or a malformed secret (the sentence
 * never quotes the secret); nothing is written on error. */
JOBQ_API int jobq_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp_s,
                               const char *body, size_t body_len, char *out, size_t cap);
/* Checks a received delivery: the headers webhook-id (msg_id),
 * webhook-timestamp (timestamp) and webhook-signature (signature_header, one
 * or more space-separated "v1,<base64>" entries) and the raw body. 0 when
 * the timestamp is an integer within tolerance_s seconds of now_s (use
 * JOBQ_WEBHOOK_TOLERANCE_DEFAULT, 300) and any v1 entry matches any of the
 * n_secrets secrets ("whsec_<base64>"; two during a rotation). MACs are
 * compared in constant time. JOBQ_ESIGNATURE when the message fails: the
 * sentence says "no match", "timestamp outside tolerance" or "malformed
 * header", and never quotes a secret or a MAC. JOBQ_EINVAL for NULL
 * pointers, no secrets, a malformed secret or a negative tolerance. */
JOBQ_API int jobq_webhook_verify(const char *const *secrets, size_t n_secrets, const char *msg_id,
                                 const char *timestamp, const char *signature_header,
                                 const char *body, size_t body_len, int64_t now_s,
                                 int64_t tolerance_s);

/* ---- webhooks: endpoints and deliveries --------------------------------- */

/* A job's terminal state (and, if asked, its progress at pipeline stage
 * boundaries) is announced by an HTTP POST to each endpoint the job is
 * subscribed to, signed as above. The delivery is stored in the same
 * transaction as the state it announces, so a process that dies right
 * after a job finished loses nothing: any live process on the store that
 * knows the endpoint's secret sends it. At least once: receivers
 * deduplicate on webhook-id. See docs/webhooks.md. */

/* Which changes an endpoint hears of (a mask). */
#define JOBQ_WEBHOOK_ON_SUCCEEDED 1
#define JOBQ_WEBHOOK_ON_FAILED    2
#define JOBQ_WEBHOOK_ON_CANCELLED 4
/* Progress at a pipeline's stage boundaries (checkpoints), coalesced: while
 * one progress delivery of a job waits to be sent, later boundaries do not
 * add another (its body, built when it is sent, carries the latest
 * progress), and the job's end drops one not yet sent. */
#define JOBQ_WEBHOOK_ON_PROGRESS  8
/* The default: succeeded, failed and cancelled. */
#define JOBQ_WEBHOOK_ON_FINISHED  7

/* Adds endpoint `name` (1..64 bytes of [A-Za-z0-9_.:-]; JOBQ_EEXIST if
 * taken) to the options. secret is one "whsec_<base64>" secret, or two
 * separated by a space during a rotation (each delivery then carries both
 * signatures); NULL reads it from the environment variable
 * JOBQ_WEBHOOK_SECRET_<NAME> (name upper-cased, '.', ':' and '-' as '_')
 * now, JOBQ_EINVAL naming the variable if it is unset. The secret stays in
 * this process: it is never stored, logged, or put in an error or JSON.
 * With a url (http or https, checked like a job's, see
 * jobq_submit_opts_add_webhook), every job this queue submits, of every
 * kind unless jobq_options_set_webhook_kinds says otherwise, is subscribed
 * to the endpoint; url NULL: the endpoint only signs jobs' own URLs that
 * name it. A process delivers only the deliveries of endpoints it knows. */
JOBQ_API int jobq_options_add_webhook(jobq_options_t *opts, const char *name, const char *url,
                                      const char *secret);
/* The changes endpoint `name` hears of (JOBQ_WEBHOOK_ON_* mask, 1..15;
 * default JOBQ_WEBHOOK_ON_FINISHED). JOBQ_ENOTFOUND for an unknown name. */
JOBQ_API int jobq_options_set_webhook_events(jobq_options_t *opts, const char *name, int events);
/* The kinds whose jobs endpoint `name` (one with a url) subscribes by
 * default: a comma-separated list of kind names; NULL or "" for every kind
 * (the default). */
JOBQ_API int jobq_options_set_webhook_kinds(jobq_options_t *opts, const char *name,
                                            const char *kinds);
/* on = 1: the bodies sent to endpoint `name` include the job's payload
 * (data.payload); default 0: never. */
JOBQ_API int jobq_options_set_webhook_payload(jobq_options_t *opts, const char *name, int on);
/* The addresses webhook requests may reach although they are not public:
 * a comma-separated list of addresses and CIDR prefixes, IPv4 and IPv6,
 * e.g. "127.0.0.1, 10.1.0.0/16" ("" or NULL: none, the default). Every
 * other loopback, private, link-local, shared (CGNAT), multicast, reserved
 * or cloud-metadata address is refused, on the address actually connected
 * to (so a name that resolves to one later gains nothing). JOBQ_EINVAL
 * with the bad item named. */
JOBQ_API int jobq_options_set_webhook_allow(jobq_options_t *opts, const char *list);
/* Per try: connect_ms (default 5,000) to connect, total_ms (default
 * 15,000) for the whole request; 1..600,000 each, connect_ms <= total_ms.
 * A claimed delivery's lease is 2 * total_ms + 30 s, so that no other
 * process sends it while an answer may still come. */
JOBQ_API int jobq_options_set_webhook_timeouts(jobq_options_t *opts, int64_t connect_ms,
                                               int64_t total_ms);
/* The retry schedule: at most max_attempts tries (1..100, default 10);
 * try n + 1 waits base_ms * 4^(n-1) (default base 5,000), at most
 * max_delay_ms (default 8 h), each +-20 % at random: about 24 h in all by
 * default. A Retry-After on 429 or 503 replaces the wait (capped at
 * max_delay_ms). */
JOBQ_API int jobq_options_set_webhook_retry(jobq_options_t *opts, int max_attempts,
                                            int64_t base_ms, int64_t max_delay_ms);
/* Deliveries this process sends at once (0..10,000, default 64); 0: it
 * sends none (a submit-only process), others on the store do. */
JOBQ_API int jobq_options_set_webhook_concurrency(jobq_options_t *opts, int n);
/* Jobs first: while workers keep claiming short jobs (handlers averaging
 * under 0.5 ms), this process claims no deliveries for up to ms in a row
 * (0..60,000, default 1,000), so that a burst of cheap jobs is not slowed
 * by requests that cost more than the jobs; then they share the CPU.
 * 0: deliveries never step aside. */
JOBQ_API int jobq_options_set_webhook_yield(jobq_options_t *opts, int ms);

/* Subscribes the job to url, signed with the secret of endpoint `endpoint`
 * (configured with jobq_options_add_webhook in the submitting process, and
 * in whichever process delivers: jobq_submit refuses an unknown name with
 * JOBQ_EINVAL), for the changes in events (JOBQ_WEBHOOK_ON_* mask; 0: the
 * endpoint's). Up to 8 per job, its kind's default endpoints included
 * (jobq_submit refuses more with JOBQ_EINVAL). url: http or https, at most 2,048 bytes, a
 * host, no "user:password@" (JOBQ_EINVAL here, the URL never quoted); a
 * literal address that the allow-list does not name and that is not public
 * is refused at jobq_submit; a name is checked on its resolved address when
 * the delivery is sent. */
JOBQ_API int jobq_submit_opts_add_webhook(jobq_submit_opts_t *so, const char *url,
                                          const char *endpoint, int events);

/* Delivery states. */
#define JOBQ_DELIVERY_PENDING   0 /* waiting for its next try (next_at) */
#define JOBQ_DELIVERY_SENDING   1 /* a process is sending it (next_at: its lease's end) */
#define JOBQ_DELIVERY_DELIVERED 2 /* a 2xx arrived */
#define JOBQ_DELIVERY_FAILED    3 /* for good: see its last_error */
/* "pending", "sending", "delivered", "failed"; NULL if unknown. */
JOBQ_API const char *jobq_delivery_state_name(int state);

typedef struct jobq_delivery_s jobq_delivery_t;     /* one delivery */
typedef struct jobq_deliveries_s jobq_deliveries_t; /* a page of them */

/* Up to limit (1..1,000) deliveries in id order (job by job, oldest job
 * first: job ids grow with time), of job job_id (NULL:
 * every job) in state state (-1: any), after cursor (NULL: from the start;
 * else jobq_deliveries_next_cursor of the previous page). *out: free with
 * jobq_deliveries_free. JOBQ_ENOTSUP when the backend keeps no outbox. */
JOBQ_API int jobq_webhook_deliveries(jobq_t *q, const char *job_id, int state, int limit,
                                     const char *cursor, jobq_deliveries_t **out);
JOBQ_API size_t jobq_deliveries_count(const jobq_deliveries_t *d);
/* The i-th delivery (NULL past the end); valid until jobq_deliveries_free. */
JOBQ_API const jobq_delivery_t *jobq_deliveries_at(const jobq_deliveries_t *d, size_t i);
/* The cursor of the next page, or NULL when this was the last. */
JOBQ_API const char *jobq_deliveries_next_cursor(const jobq_deliveries_t *d);
/* {"deliveries": [{"id", "jobId", "endpoint", "url", "type", "state",
 * "attempts", "lastStatus", "lastError", "createdAt", "nextAt",
 * "updatedAt"}], "nextCursor"}; free with jobq_free. NULL on out of memory. */
JOBQ_API char *jobq_deliveries_to_json(const jobq_deliveries_t *d);
JOBQ_API void jobq_deliveries_free(jobq_deliveries_t *d);

/* The delivery id: the webhook-id header, the same on every try. */
JOBQ_API const char *jobq_delivery_id(const jobq_delivery_t *d);
JOBQ_API const char *jobq_delivery_job_id(const jobq_delivery_t *d);
JOBQ_API const char *jobq_delivery_endpoint(const jobq_delivery_t *d);
/* The job's own URL, or NULL: the endpoint's. */
JOBQ_API const char *jobq_delivery_url(const jobq_delivery_t *d);
/* JOBQ_EVENT_SUCCEEDED, _FAILED, _CANCELLED or _PROGRESS. */
JOBQ_API int jobq_delivery_event(const jobq_delivery_t *d);
JOBQ_API int jobq_delivery_state(const jobq_delivery_t *d); /* JOBQ_DELIVERY_* */
JOBQ_API int jobq_delivery_attempts(const jobq_delivery_t *d);
/* The HTTP status of the last try; 0 if none arrived. */
JOBQ_API int jobq_delivery_last_status(const jobq_delivery_t *d);
/* Why the last try failed, or NULL. */
JOBQ_API const char *jobq_delivery_last_error(const jobq_delivery_t *d);
JOBQ_API int64_t jobq_delivery_created_at(const jobq_delivery_t *d);
/* Pending: the next try; sending: its lease's end; else 0. */
JOBQ_API int64_t jobq_delivery_next_at(const jobq_delivery_t *d);
JOBQ_API int64_t jobq_delivery_updated_at(const jobq_delivery_t *d);

/* Sends a failed delivery again (pending now, attempts from 0).
 * JOBQ_ENOTFOUND, or JOBQ_ESTATE if it is not failed. */
JOBQ_API int jobq_webhook_redeliver(jobq_t *q, const char *delivery_id);
/* Re-enables url after it answered 410 Gone (which disables it for every
 * delivery on the store). JOBQ_ENOTFOUND if it is not disabled. */
JOBQ_API int jobq_webhook_enable(jobq_t *q, const char *url);

#ifdef __cplusplus
}
#endif
#endif /* JOBQ_H */
