/*
 * libjobq storage backends: the vtable a backend implements.
 *
 * This header is for people who write a backend; hosts only need jobq.h. The
 * core reaches storage through jobq_storage_ops alone. Like SQLite's
 * sqlite3_io_methods, the table starts with a version field: members are only
 * ever appended, each group under a new version, and the core never calls a
 * member newer than the table's version. Initialise a table with
 * JOBQ_STORAGE_OPS_INIT or jobq_storage_ops_init() so new members start NULL.
 *
 * Threading: the core calls a backend from several threads at once (worker
 * threads, the threads of callers such as submitters, libuv's thread pool)
 * and never from the loop thread on its own behalf, so calls may block. (A
 * host that calls, say, jobq_get from a subscriber callback runs that one
 * call on the loop thread.) A backend does its own locking.
 *
 * ABI: the record structs below travel in arrays, so they never grow; a
 * later version that needs more adds new members to jobq_storage_ops that
 * take new structs, and jobq_storage_ops_init(ops, v) zeroes only the
 * members of versions <= v.
 *
 * Memory: every string in a record a backend returns is allocated with
 * malloc() and freed by the core with free() (jobq_storage_job_clear).
 *
 * Errors: a backend returns 0 or a negative JOBQ_E* code, and sets the detail
 * with jobq_storage_set_error().
 */
#ifndef JOBQ_STORAGE_H
#define JOBQ_STORAGE_H

#include "../jobq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define JOBQ_STORAGE_OPS_VERSION 4

/* One attempt of a job. */
typedef struct jobq_storage_attempt {
  int64_t started_at;
  int64_t finished_at; /* 0 while running */
  char *error;         /* NULL unless the attempt failed */
} jobq_storage_attempt;

/* A job as stored. Frozen: see ABI above. */
typedef struct jobq_storage_job {
  char id[JOBQ_ID_SIZE];
  char *kind;
  char *payload;      /* JSON text */
  char *owner;        /* may be NULL */
  char *step;         /* may be NULL */
  char *result;       /* JSON text or NULL */
  char *error;        /* last error or NULL */
  char *dedupe_key;   /* may be NULL */
  int state;          /* JOBQ_QUEUED ... */
  int priority;
  int progress;
  int attempts;       /* attempts started */
  int max_attempts;
  int cancel_requested;
  int64_t created_at;
  int64_t run_at;
  int64_t started_at; /* of the latest attempt; 0 if none */
  int64_t finished_at;
  /* How long the key stays live after the job succeeded: >= 0, that many
   * ms after finished_at; < 0 (version 3 backends), until the absolute
   * time -dedupe_ttl_ms (ms since the epoch), however late the job
   * finished. A key is live while its job
   * is queued or running, or succeeded and not expired. */
  int64_t dedupe_ttl_ms;
  int64_t position;   /* filled by get: queued jobs ahead; -1 if not waiting.
                       * A backend may estimate from 1,000 on (never below
                       * the true count), so that get costs the same at any
                       * depth: jobq_job_position.md */
  jobq_storage_attempt *attempt_log; /* attempts entries, may be NULL */
  int n_attempt_log;
} jobq_storage_job;

/* A kind's rate limit (jobq_storage_claim.rates, version 3). */
typedef struct jobq_storage_rate {
  const char *kind;
  int starts;          /* 1..1,000,000 */
  int64_t interval_ms; /* 1..86,400,000 */
} jobq_storage_rate;

/* What a claim asks for: up to max jobs that are queued and due (run_at <=
 * now), from the listed kinds, at most kind_limit[i] of kinds[i] (a negative
 * limit: unlimited), best first: higher priority, then FIFO. Each claimed
 * job becomes running, attempts + 1, started_at = now, lease_until = now +
 * lease_ms, and an attempt entry is appended. A job stored with
 * max_attempts 0 (its kind's default) gets the claimer's default for its
 * kind, so that whoever rescues it later knows the number. */
typedef struct jobq_storage_claim {
  const char *const *kinds; /* NULL: every kind */
  const int *kind_limit;    /* NULL: unlimited; else one per kind */
  size_t n_kinds;
  const char *const *exclude; /* with kinds NULL: kinds not to claim */
  size_t n_exclude;
  size_t max;
  int64_t now;
  int64_t lease_ms;
  /* Max attempts for jobs stored with 0 ("the kind's default"): ma_values[i]
   * for kind ma_kinds[i], default_max_attempts for any other kind. */
  const char *const *ma_kinds;
  const int *ma_values;
  size_t n_ma;
  int default_max_attempts;
  /* The queue's clock. A backend that may wait before it applies the claim
   * (for a lock, for other requests' commit) reads the time again with it
   * when it does, so that started_at and the lease count from the claim
   * itself, not from the request; NULL: use now. */
  int64_t (*clock)(void *clock_ud);
  void *clock_ud;
  /* ---- read only by version 3 backends that fill rate_window ----
   * Rate limits: of kind rates[i].kind, at most rates[i].starts attempts
   * start in any window of rates[i].interval_ms, counted over every claim
   * of every process on the store (see rate_window). A claim takes only as
   * many as the window has room for, and records what it took, inside its
   * own transaction. Kinds not listed are not limited (nor counted). */
  const jobq_storage_rate *rates;
  size_t n_rates;
  /* Out, if not NULL: the earliest time at which a kind that the claim
   * held back by its rate (it had due jobs the window had no room for)
   * has room again; INT64_MAX if no kind was held back. */
  int64_t *rate_next;
} jobq_storage_claim;


/* One running attempt whose lease the core extends (heartbeat). */
typedef struct jobq_storage_lease {
  const char *id;
  int attempt;
  int still_running;    /* out: 0 if the attempt is no longer running (rescued, ...) */
  int cancel_requested; /* out */
} jobq_storage_lease;

#define JOBQ_OUTCOME_SUCCEEDED 1 /* result */
#define JOBQ_OUTCOME_FAILED    2 /* error; fails for good */
#define JOBQ_OUTCOME_RETRY     3 /* error; queued again at run_at */
#define JOBQ_OUTCOME_CANCELLED 4 /* error may be NULL */
#define JOBQ_OUTCOME_RELEASE   5 /* back to queued now; attempt not counted */
#define JOBQ_OUTCOME_DEFER     6 /* back to queued at run_at; attempt not counted
                                  * (version 3 backends with rate_window) */

/* How one attempt ended. It applies only while the job is running that
 * attempt (a stale finish gives JOBQ_ESTATE in out_state). If the job's
 * cancel_requested flag is set, every outcome ends it cancelled (a released
 * job that was meant to stop is not run again). */
typedef struct jobq_storage_finish {
  const char *id;
  int attempt;
  int outcome;
  const char *result; /* SUCCEEDED */
  const char *error;  /* FAILED, RETRY, CANCELLED, DEFER */
  int64_t run_at;     /* RETRY, DEFER */
  int64_t now;
  int progress;       /* the attempt's last progress (SUCCEEDED stores 100) */
  const char *step;   /* and step text; NULL keeps the stored one */
} jobq_storage_finish;

typedef struct jobq_storage_filter {
  const char *owner;   /* NULL: any */
  const char *kind;    /* NULL: any */
  int state;           /* -1: any */
  int limit;
  int newest_first;
  const char *cursor;  /* id of the last job of the previous page, or NULL */
} jobq_storage_filter;

/* An event another process caused (set_event_sink). Types and states as in
 * jobq.h (JOBQ_EVENT_*, JOBQ_QUEUED...). */
typedef struct jobq_storage_event {
  int type;
  int state;
  int progress;
  int attempt;
  int64_t time;
  const char *id;
  const char *kind;   /* may be NULL */
  const char *step;   /* may be NULL */
  const char *error;  /* may be NULL */
  const char *result; /* may be NULL */
} jobq_storage_event;

/* A per-owner quota (set_quotas, version 3). */
typedef struct jobq_storage_quota {
  const char *kind; /* NULL: all kinds together */
  int max;          /* >= 1 */
} jobq_storage_quota;

/* A cron schedule as stored (cron_put, cron_list, version 3). Passed
 * singly to cron_put; cron_list returns an array of them (frozen: see ABI
 * above). The backend knows no cron syntax: it stores the strings and the
 * times the core computed. */
typedef struct jobq_storage_cron {
  char *name;        /* 1..128 bytes of [A-Za-z0-9_.:-]; the key */
  char *expr;        /* the cron expression, as written */
  char *tz;          /* its time zone, as written ("UTC" for none) */
  char *kind;        /* what each occurrence submits: kind, */
  char *payload;     /* JSON text, */
  char *owner;       /* owner (may be NULL), */
  int priority;      /* priority, */
  int max_attempts;  /* and max attempts (0: the kind's default) */
  int missed_policy; /* JOBQ_CRON_MISSED_* */
  int64_t next_at;   /* the next occurrence not yet submitted (ms) */
  int64_t last_run;  /* the latest occurrence submitted, 0 if none */
} jobq_storage_cron;
/* Shared stats (stats_add, stats_read; version 3). Counters are indexed
 * by JOBQ_STAT_* (jobq.h); durations fall into JOBQ_STORAGE_HIST_N buckets,
 * bucket i holding attempts of at most bound(i) ms and more than bound(i -
 * 1), the bounds being the 1-2-5 series 1, 2, 5, 10, 20, ... 5,000,000 ms;
 * the last bucket holds the longer ones. Backends only add them up. */
#define JOBQ_STORAGE_STAT_N 8
#define JOBQ_STORAGE_HIST_N 22

/* What one process adds for one kind ("": counts that have no kind, such
 * as a key lookup that found nothing). */
typedef struct jobq_storage_stats_delta {
  const char *kind;
  int64_t count[JOBQ_STORAGE_STAT_N]; /* to add */
  int64_t hist[JOBQ_STORAGE_HIST_N];  /* to add: attempts by duration */
  double duration_sum_ms;             /* of the attempts in hist */
  /* The publisher (the store handle) runs up to `concurrency` attempts of
   * the kind at once, `n_started` of them now (their start times, ms),
   * until `until`: replaces what it published before for the kind.
   * concurrency 0 and n_started 0 withdraw it. */
  int concurrency;
  const int64_t *started;
  size_t n_started;
  int64_t until;
} jobq_storage_stats_delta;

/* One kind as stats_read reports it; strings and arrays malloc'ed. */
typedef struct jobq_storage_kind_stats {
  char *kind;
  int64_t queued;           /* due now (depth only) */
  int64_t scheduled;        /* waiting for a later run_at (depth only) */
  int64_t oldest_queued_at; /* since when the oldest due job waits; 0: none (depth only) */
  int64_t count[JOBQ_STORAGE_STAT_N];
  int64_t hist[JOBQ_STORAGE_HIST_N];
  double duration_sum_ms;   /* of the attempts in hist */
  double avg_ms;            /* moving average of durations; 0: none yet */
  int concurrency;          /* sum over live publishers; 0: none */
  int64_t *started;         /* live publishers' running attempts' start times */
  size_t n_started;
} jobq_storage_kind_stats;
/* One error of a batch (jobq_storage_batch). */
typedef struct jobq_storage_batch_error {
  char job_id[JOBQ_ID_SIZE];
  char *error;
} jobq_storage_batch_error;

/* At most this many errors are kept per batch: those of its first members
 * to fail, in the order they failed. */
#define JOBQ_STORAGE_BATCH_ERRORS 20

/* A batch as stored (batch_get, version 3). Frozen: see ABI above. */
typedef struct jobq_storage_batch {
  char id[JOBQ_ID_SIZE];
  int max_running;          /* 0: no cap */
  int64_t total;            /* member jobs (dedupe hits are not members) */
  int64_t queued, running;  /* members in those states now */
  int64_t succeeded, failed, cancelled;
  int64_t created_at;
  int64_t finished_at;      /* when its last member finished; 0 while not done */
  char last_job[JOBQ_ID_SIZE]; /* the member whose end finished it; "" if none */
  jobq_storage_batch_error *errors; /* n_errors entries, malloc'ed, may be NULL */
  int n_errors;
} jobq_storage_batch;
/* What one retention call prunes (prune_kind, version 3). Not an array
 * record, but frozen all the same: a later version adds a new member that
 * takes a new struct. */
typedef struct jobq_storage_prune {
  const char *kind;   /* only jobs of this kind */
  int64_t before;     /* finished before this time */
  size_t max;         /* at most this many jobs deleted by one call */
  /* > 0: of each owner's finished jobs of the kind, the n submitted last
   * are kept however old (jobs without an owner: no such rule). */
  int keep_per_owner;
  /* Out, set to 0 by the caller: 1 when the backend stopped before it had
   * looked at every job it could prune now (it bounds what one call reads,
   * so that the call stays short), so the caller should call again. */
  int more;
} jobq_storage_prune;

/* ---- version 4: the webhook outbox ----
 *
 * A job submitted with webhook subscriptions (insert_hooked, cron_fire_hooked
 * below) carries them as JSON text, a
 * non-empty array of at most 8 hooks, each {"e": endpoint name, "on":
 * JOBQ_WEBHOOK_ON_* mask (1..15)} with optionally "u": the job's own URL
 * (else the endpoint's, which the delivering process knows) and "p": 1
 * (the body includes the payload). No secret is ever in it. A version 4
 * backend stores it with the job and, in the same transaction as each
 * change below, adds deliveries to its outbox:
 *
 *  - the change that makes the job succeeded, failed or cancelled (finish,
 *    cancel of a queued job, rescue with attempts spent, whatever the path)
 *    adds, for each hook i whose mask has that state's bit, the delivery
 *    "<job id>:<i>:<succeeded|failed|cancelled>", and deletes the job's
 *    progress deliveries still pending;
 *  - checkpoint adds, for each hook i with JOBQ_WEBHOOK_ON_PROGRESS, the
 *    delivery "<job id>:<i>:progress:<stage>", unless a progress delivery
 *    of the job and hook is pending already (coalescing). checkpoint is
 *    given no time: its "now" is the attempt's started_at, the latest time
 *    it knows on the queue's clock (so the delivery is due at once).
 *
 * A new delivery is pending, attempts 0, created_at = next_at =
 * updated_at = the change's now (checkpoint, which has none, stamps the
 * attempt's started_at: the latest time on the queue's clock the backend
 * knows, so the delivery is due at once however the clock runs), url the
 * hook's "u" or NULL, flags 1 when the hook has "p": 1. Text that is not
 * such an array may be refused with JOBQ_EINVAL (nothing stored; both
 * built-in backends do) or stored as no hooks. Deliveries ids being made
 * of the job id, a change
 * applied twice adds nothing twice. prune and prune_kind keep a job while
 * it has a pending or sending delivery, and delete a pruned job's
 * deliveries with it. */


/* A delivery as stored. Frozen: see ABI above. Strings malloc'ed
 * (jobq_storage_delivery_clear). */
typedef struct jobq_storage_delivery {
  char *id;            /* "<job id>:<hook>:<event>", see above */
  char job_id[JOBQ_ID_SIZE];
  char *endpoint;      /* the hook's "e" */
  char *url;           /* the hook's "u", or NULL: the endpoint's */
  int hook;            /* the hook's index in the job's array */
  int event;           /* JOBQ_EVENT_SUCCEEDED, _FAILED, _CANCELLED or _PROGRESS */
  int flags;           /* 1: include the payload */
  int state;           /* JOBQ_DELIVERY_* */
  int attempts;        /* tries claimed so far */
  int last_status;     /* HTTP status of the last try; 0: none */
  char *last_error;    /* NULL, or why the last try failed */
  int64_t created_at;
  int64_t next_at;     /* pending: the next try; sending: the lease's end; else 0 */
  int64_t updated_at;  /* the last change */
} jobq_storage_delivery;

/* What outbox_claim asks for. Passed singly; frozen all the same. */
typedef struct jobq_storage_outbox_claim {
  const char *const *endpoints; /* the endpoint names this process can sign for */
  const char *const *urls;      /* each one's URL, NULL for one without */
  size_t n_endpoints;
  size_t max;
  int64_t now;
  int64_t lease_ms;
  /* Out, if not NULL: the earliest next_at among the pending deliveries of
   * these endpoints that the claim did not take (lease ends of sending ones
   * included); INT64_MAX if none. */
  int64_t *next_at;
} jobq_storage_outbox_claim;

/* How one claimed try ended (outbox_done). Frozen: see ABI above. */
typedef struct jobq_storage_outbox_result {
  const char *id;
  int attempt;           /* the attempts value the claim returned */
  int state;             /* JOBQ_DELIVERY_DELIVERED, _PENDING (again at next_at) or _FAILED */
  int status;            /* HTTP status; 0: none arrived */
  const char *error;     /* NULL when delivered */
  int64_t next_at;       /* PENDING */
  int64_t now;
  const char *disable_url; /* not NULL: this URL answered 410 Gone: disable it */
} jobq_storage_outbox_result;

/* What outbox_list selects. Passed singly; frozen all the same. */
typedef struct jobq_storage_outbox_filter {
  const char *job_id; /* NULL: any */
  int state;          /* -1: any */
  int limit;
  const char *cursor; /* id of the last delivery of the previous page, or NULL */
} jobq_storage_outbox_filter;

typedef struct jobq_storage_ops {
  int version;        /* JOBQ_STORAGE_OPS_VERSION this table implements */
  const char *scheme; /* URL scheme it serves, e.g. "memory" */

  /* ---- version 1 ---- */

  /* url is the whole storage URL. */
  int (*open)(const char *url, void **out_state);
  void (*close)(void *st);

  /* Stores n jobs in one transaction, all or none. For a job with a
   * dedupe_key whose key is live (another job with it is queued or running,
   * or succeeded less than its dedupe_ttl_ms before now) and force[i] == 0,
   * nothing is stored for it: its id is replaced with the live job's id and
   * out_dup[i] = 1. Otherwise out_dup[i] = 0 and the job takes the key. */
  int (*insert)(void *st, jobq_storage_job *const *jobs, size_t n, const int *force,
                int64_t now, int *out_dup);

  /* Claims jobs as jobq_storage_claim says. out receives up to req->max
   * records (filled, owned by the caller); *n_out how many. */
  int (*claim)(void *st, const jobq_storage_claim *req, jobq_storage_job *out,
               size_t *n_out);

  /* Applies n outcomes. out_state[i]: the job's state afterwards, or
   * JOBQ_ENOTFOUND / JOBQ_ESTATE for that entry. Returns < 0 only when the
   * backend itself failed (then nothing was applied). */
  int (*finish)(void *st, const jobq_storage_finish *f, size_t n, int *out_state);

  /* Records progress of a running attempt. step NULL keeps the old step. */
  int (*progress)(void *st, const char *id, int attempt, int percent, const char *step);

  /* A queued job becomes cancelled (finished_at = now, error "cancelled"); a
   * running job gets cancel_requested = 1. *out_state: the state afterwards.
   * A finished job: JOBQ_ESTATE and *out_state its state. out_kind, if not
   * NULL, receives a malloc'ed copy of the job's kind (on success). */
  int (*cancel)(void *st, const char *id, int64_t now, int *out_state, char **out_kind);

  /* Fills *out (owned by the caller) with the job, position included. */
  int (*get)(void *st, const char *id, int64_t now, jobq_storage_job *out);

  /* Up to f->limit jobs matching f, in id order (newest first if asked),
   * strictly after f->cursor. *out is a malloc'ed array of *n_out records.
   * *more is set when further jobs match. */
  int (*list)(void *st, const jobq_storage_filter *f, jobq_storage_job **out,
              size_t *n_out, int *more);

  /* The earliest run_at among queued jobs of the kinds (NULL: all) that are
   * not yet due at now; INT64_MAX if there is none. */
  int (*next_run_at)(void *st, const char *const *kinds, size_t n_kinds, int64_t now,
                     int64_t *out);

  /* Extends the leases of n running attempts to lease_until, and reports
   * for each whether it is still running and whether a cancel was requested
   * (by any process). The lease stored is lease_until itself, however long
   * the call waited (for a lock, behind other requests): rescue(now) then
   * rescues an attempt exactly when now > lease_until, whatever the timing
   * of the threads. A backend where only the lease protects a live
   * process's jobs may add a wait longer than half the lease (PostgreSQL:
   * docs/postgres.md), so that the lease has not run out at its commit. */
  int (*heartbeat)(void *st, jobq_storage_lease *leases, size_t n, int64_t lease_until);

  /* Rescues attempts whose lease expired before now (their process died):
   * back to queued, the attempt counted and its error "lease expired", or
   * failed when attempts are spent. *n_out: how many were rescued. */
  int (*rescue)(void *st, int64_t now, size_t *n_out);

  /* Optional (NULL: the backend sees only this process's changes). The
   * backend calls fn(ud), from any thread, when another process may have
   * changed jobs; fn NULL stops it. */
  int (*set_notify)(void *st, void (*fn)(void *ud), void *ud);

  /* Optional (NULL: the core calls finish and waits). Like finish, but
   * returns at once, having copied f and its strings; done(ud, rc,
   * out_state) is called from any thread once the outcomes are stored (rc 0,
   * out_state as finish's) or failed (rc < 0); never from inside
   * finish_async itself. Like every op, called without the core's lock
   * (it may block: another thread's call is not held up). A backend whose writes wait
   * for a commit offers this so that a worker need not wait for one per
   * job: the job's news is still published only after it is stored. */
  int (*finish_async)(void *st, const jobq_storage_finish *f, size_t n,
                      void (*done)(void *ud, int rc, const int *out_state), void *ud);

  /* Optional (NULL: a process hears only of its own changes). With sink
   * set, the backend passes on, from any thread and in the order they were
   * stored, the events of changes that other processes made to jobs (each
   * process publishes its own); sink NULL stops it and returns once no call
   * is under way. */
  int (*set_event_sink)(void *st, void (*sink)(void *ud, const jobq_storage_event *ev), void *ud);

  /* ---- version 2: pipeline checkpoints and pruning ---- */

  /* Records that stages 0..stage of the running attempt `attempt` of job id
   * are done, with the output of stage `stage` (JSON text), and the job's
   * progress and step at that boundary (step NULL keeps the stored one). It
   * replaces the job's previous checkpoint and survives retries and
   * rescues, so a later attempt resumes after it. JOBQ_ENOTFOUND, or
   * JOBQ_ESTATE if that attempt is not running (nothing stored). */
  int (*checkpoint)(void *st, const char *id, int attempt, int stage, const char *output,
                    int progress, const char *step);

  /* The job's checkpoint: *out_stage is the last stage done (-1 if none,
   * then *out_output is NULL), *out_output a malloc'ed copy of its output.
   * JOBQ_ENOTFOUND if there is no such job. */
  int (*checkpoint_get)(void *st, const char *id, int *out_stage, char **out_output);

  /* Deletes up to max finished jobs (succeeded, failed, cancelled) whose
   * finished_at is before `before`, checkpoints and attempt logs included.
   * If out_ids is not NULL it receives a malloc'ed array of the *n_out
   * deleted ids (NULL when none), so that the core can remove their work
   * directories. */
  int (*prune)(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
               size_t *n_out);

  /* ---- version 3: the result cache ----
   * A version 3 backend also honours a negative dedupe_ttl_ms (an absolute
   * expiry, see jobq_storage_job), and its prune keeps a succeeded job whose
   * key lives past `before`. */

  /* Fills *out (owned by the caller, position included as in get) with the
   * newest job stored with dedupe key `key`, if its key is live at now;
   * JOBQ_ENOTFOUND otherwise (no such job, or its key expired, or it
   * failed or was cancelled). */
  int (*get_by_key)(void *st, const char *key, int64_t now, jobq_storage_job *out);

  /* Per-owner quotas, called at most once, right after open, before any
   * other call: from then on insert refuses a batch in which a new job
   * (not a dedupe hit) would give its owner more than max jobs queued or
   * running, of kind `kind` or, for kind NULL, of all kinds: JOBQ_EQUOTA,
   * with a sentence naming the owner, and nothing of the batch is stored.
   * Counted in the insert's own transaction, so that the quota holds
   * across processes that set it. Jobs without an owner are not counted.
   * The backend copies the array. Optional: NULL when the backend cannot
   * count (jobq_open then refuses quotas with JOBQ_ENOTSUP). */
  int (*set_quotas)(void *st, const jobq_storage_quota *quotas, size_t n);

  /* Cron schedules, shared by every process on the store. Optional, all
   * four or none (NULL: jobq_cron_add and its kin answer JOBQ_ENOTSUP, and
   * no queue evaluates schedules). */

  /* Adds schedule c, or replaces the one of the same name. A replacement
   * whose expr and tz are byte for byte the stored ones keeps the stored
   * next_at and last_run (c's are ignored), so that changing a payload
   * neither skips nor repeats an occurrence; otherwise c's are stored. The
   * backend copies the strings. */
  int (*cron_put)(void *st, const jobq_storage_cron *c);

  /* Removes schedule name; JOBQ_ENOTFOUND if there is none. Jobs it
   * already submitted stay. */
  int (*cron_del)(void *st, const char *name);

  /* Every schedule, by name: *out a malloc'ed array of *n records (NULL
   * when none), whose strings the core frees. */
  int (*cron_list)(void *st, jobq_storage_cron **out, size_t *n);

  /* Fires schedule name, in one transaction: if its stored next_at equals
   * expect_next_at (compare-and-set), inserts the n jobs, sets next_at =
   * new_next_at and last_run to the largest run_at among the jobs (kept
   * when n is 0), and sets *n_inserted to the jobs stored; otherwise (or
   * when the schedule is gone) changes nothing and sets *n_inserted = 0.
   * Each job carries the dedupe key "cron:<name>:<occurrence ms>": a job
   * whose key any stored job holds, in whatever state, is not inserted
   * again, so that an occurrence is stored once even if two processes got
   * past the compare. The jobs are inserted as insert would (state from
   * run_at and now, an event for other processes' listeners); quotas count
   * them but do not refuse them (a refused occurrence would be lost). */
  int (*cron_fire)(void *st, const char *name, int64_t expect_next_at, int64_t new_next_at,
                   jobq_storage_job *const *jobs, size_t n, int64_t now, size_t *n_inserted);

  /* Rate limits and deferral. A backend that fills this member also
   * honours jobq_storage_claim's rates and rate_next and the outcome
   * JOBQ_OUTCOME_DEFER (the job is queued again at run_at, its error set,
   * and the attempt is not counted: attempts - 1, its attempt entry gone,
   * as with RELEASE). Optional: NULL, and jobq_register refuses a rate
   * limit and jobq_ctx_retry_after a deferral with JOBQ_ENOTSUP.
   * *out_used: how many attempts of kind claims recorded in the window
   * (now - interval_ms, now], as far as the backend still remembers
   * (it may forget starts older than the longest interval a claim gave). */
  int (*rate_window)(void *st, const char *kind, int64_t interval_ms, int64_t now,
                     int64_t *out_used);
  /* Shared stats. Adds n deltas (one kind each) in one transaction: the
   * counters and buckets, the kind's moving average of durations (each
   * attempt weighs 0.2 against what came before: avg' = avg * 0.8^k +
   * mean * (1 - 0.8^k) for k attempts of mean `mean`), and the publisher's
   * row (see jobq_storage_stats_delta); rows of any publisher whose until
   * passed before now are dropped. Optional, with stats_read: NULL when the
   * backend keeps no stats (jobq_stats then reports only this process's
   * own, and ETA falls back to this process's knowledge). */
  int (*stats_add)(void *st, const jobq_storage_stats_delta *deltas, size_t n, int64_t now);

  /* The stats of kind `kind` (NULL: of every kind with stats or jobs,
   * "" included when it has counts), as a malloc'ed array *out of *n_out
   * records. With depth 0 the depth fields are 0 and the call costs a few
   * key lookups (what ETA reads on each jobq_get); with depth 1 it counts
   * the queued jobs (what that costs is the backend's to document).
   * Publishers whose until passed before now are not counted. */
  int (*stats_read)(void *st, const char *kind, int depth, int64_t now,
                    jobq_storage_kind_stats **out, size_t *n_out);
  /* Batches (jobq_batch_submit). Optional, all three or none: without
   * them jobq_batch_submit and jobq_batch_get answer JOBQ_ENOTSUP.
   *
   * batch_insert is insert (same rules, dedupe and quotas included, all
   * or none) plus, in the same transaction, the batch batch_id with cap
   * max_running (0: none) made at now, whose members are the jobs that
   * were stored (a dedupe hit is not a member). From then on:
   *  - a claim never leaves more than max_running members running at once,
   *    however many processes claim (decided in the claim's transaction);
   *    members waiting for a place are queued and count as such;
   *  - the change that ends the batch's last unfinished member (finish,
   *    cancel, rescue) marks the batch done in its own transaction and
   *    hands the backend's batch sink (set_batch_sink) a
   *    JOBQ_EVENT_BATCH_DONE event once that transaction committed: id the
   *    last member, kind its kind, state its state, step the batch id,
   *    result the summary JSON {"batchId", "total", "succeeded", "failed",
   *    "cancelled", "errors": [{"jobId", "error"}]}. A batch without
   *    members is done at its insert (id ""). The event goes to other
   *    processes' event sinks (set_event_sink) as well, like any other.
   *    Exactly one change finishes a batch, so each batch has one such
   *    event in all. */
  int (*batch_insert)(void *st, const char *batch_id, int max_running,
                      jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                      int *out_dup);
  /* Fills *out (owned by the caller: jobq_storage_batch_clear) with the
   * batch; JOBQ_ENOTFOUND if there is none. */
  int (*batch_get)(void *st, const char *batch_id, jobq_storage_batch *out);
  /* Called at most once, right after open (like set_quotas): where this
   * store's BATCH_DONE events go, from any thread, never with a lock of
   * the backend held. */
  int (*set_batch_sink)(void *st, void (*sink)(void *ud, const jobq_storage_event *ev), void *ud);
  /* Retention: deletes up to req->max finished jobs (succeeded, failed,
   * cancelled) of kind req->kind whose finished_at is before req->before,
   * oldest first, as prune does (checkpoints and attempt logs included; a
   * succeeded job whose key lives past `before` stays), except that with
   * req->keep_per_owner = n > 0 a job is kept while it is one of the n
   * finished jobs of its owner and kind submitted last. Queued and running
   * jobs are never touched. *out_ids and *n_out as for prune. It is called
   * again and again, so one call must stay short (it runs beside claims and
   * submits): a backend may stop early, before it has found max jobs, and
   * then sets req->more. Optional: NULL when the backend cannot (a kind's
   * explicit retention is then refused by jobq_register with JOBQ_ENOTSUP;
   * the default one is skipped). */
  int (*prune_kind)(void *st, jobq_storage_prune *req, char (**out_ids)[JOBQ_ID_SIZE],
                    size_t *n_out);
  /* ---- version 4: the webhook outbox (see above) ----
   * All eight or none (cron_fire_hooked may stay NULL in a backend without
   * cron, cron_fire NULL): without them jobq_open refuses webhook endpoints
   * and jobq_submit webhook subscriptions with JOBQ_ENOTSUP. */

  /* insert (batch_id NULL) or batch_insert (batch_id set, with cap
   * max_running), same rules, where job i has the subscriptions
   * webhooks[i] (JSON text, see above; NULL: none). webhooks may be NULL
   * (no job has any). A dedupe hit stores nothing, subscriptions included. */
  int (*insert_hooked)(void *st, jobq_storage_job *const *jobs, const char *const *webhooks,
                       size_t n, const int *force, int64_t now, int *out_dup,
                       const char *batch_id, int max_running);

  /* cron_fire, where job i has the subscriptions webhooks[i] (may be NULL). */
  int (*cron_fire_hooked)(void *st, const char *name, int64_t expect_next_at,
                          int64_t new_next_at, jobq_storage_job *const *jobs,
                          const char *const *webhooks, size_t n, int64_t now,
                          size_t *n_inserted);

  /* Claims up to req->max deliveries of the listed endpoints that are
   * pending with next_at <= now, or sending with a lease that ended before
   * now (their process died), earliest next_at first. Each becomes sending,
   * attempts + 1, next_at = now + lease_ms, updated_at = now. A delivery
   * whose URL (its own, else its endpoint's in req->urls) is disabled
   * (outbox_done's disable_url) becomes failed instead, last_error "the URL
   * answered 410 Gone on <UTC time> and is disabled", and is returned all
   * the same (state FAILED) so that the caller reports it; so is one whose
   * job is gone (last_error "its job is no longer stored"). out[i] gets the
   * delivery, jobs[i] its job (position -1, no attempt log; zeroed for a
   * gone job); both owned by the caller. */
  int (*outbox_claim)(void *st, const jobq_storage_outbox_claim *req,
                      jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out);

  /* Applies n results, in one transaction. A result applies only while its
   * delivery is sending with attempts == r->attempt (else it is stale:
   * applied[i] = 0, nothing changes); then state, last_status, last_error,
   * updated_at = now and next_at (PENDING: r->next_at; else 0), and, with
   * disable_url, that URL is disabled from now (kept until webhook_enable).
   * applied may be NULL. */
  int (*outbox_done)(void *st, const jobq_storage_outbox_result *r, size_t n, int *applied);

  /* Up to f->limit deliveries matching f, ordered by id (so job by job,
   * in the order of their ids),
   * strictly after f->cursor's delivery. *out a malloc'ed array of *n_out
   * records (NULL when none); *more set when further ones match. */
  int (*outbox_list)(void *st, const jobq_storage_outbox_filter *f,
                     jobq_storage_delivery **out, size_t *n_out, int *more);

  /* Counts deliveries by state: counts[JOBQ_DELIVERY_*] for the four states. */
  int (*outbox_counts)(void *st, int64_t counts[4]);

  /* A failed delivery becomes pending again: attempts 0, next_at = now,
   * last_status and last_error kept. JOBQ_ENOTFOUND, or JOBQ_ESTATE when
   * it is not failed. */
  int (*outbox_redeliver)(void *st, const char *id, int64_t now);

  /* url is no longer disabled. JOBQ_ENOTFOUND if it was not. */
  int (*webhook_enable)(void *st, const char *url);
} jobq_storage_ops;

#define JOBQ_STORAGE_OPS_INIT {JOBQ_STORAGE_OPS_VERSION, NULL, NULL, NULL, NULL, NULL, \
                               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                               NULL, NULL, NULL, NULL}

/* Zeroes the members of versions 1..version of ops and sets its version;
 * nothing past the last member of that version is written (a backend built
 * against an older header has a smaller table). 0, or JOBQ_EINVAL for ops
 * NULL or an unknown version (then nothing is written). The FFI-friendly
 * twin of JOBQ_STORAGE_OPS_INIT. */
JOBQ_API int jobq_storage_ops_init(jobq_storage_ops *ops, int version);

/* Makes a backend available for URLs "<scheme>:..." in every queue opened
 * afterwards. ops must stay valid until the process ends. JOBQ_EEXIST if the
 * scheme is taken. */
JOBQ_API int jobq_storage_register(const jobq_storage_ops *ops);

/* Frees the strings of a record and zeroes it (not the record itself). */
JOBQ_API void jobq_storage_job_clear(jobq_storage_job *job);

/* Frees the strings of a delivery record and zeroes it. */
JOBQ_API void jobq_storage_delivery_clear(jobq_storage_delivery *d);

/* Frees the strings of a batch record and zeroes it. */
JOBQ_API void jobq_storage_batch_clear(jobq_storage_batch *b);

/* Sets jobq_last_error() for the calling thread (printf-free: one string). */
JOBQ_API void jobq_storage_set_error(const char *message);

#ifdef __cplusplus
}
#endif
#endif /* JOBQ_STORAGE_H */
