/* The core's private structures. Nothing here is ABI. */
#ifndef JOBQ_CORE_INTERNAL_H
#define JOBQ_CORE_INTERNAL_H

#include "jobq.h"
#include "jobq/storage.h"
#include "core/defaults.h"
#include "core/webhook.h"
#include "util/err.h"
#include "util/fork.h"
#include "util/heap.h"
#include "util/map.h"
#include "util/mem.h"
#include "util/mutex.h"
#include "util/state.h"

#include <stdatomic.h>
#include <string.h>
#include <uv.h>

#define JOBQ_KIND_MAX 64
#define JOBQ_OWNER_MAX 256
#define JOBQ_DEDUPE_MAX 512
#define JOBQ_STEP_MAX 1024
#define JOBQ_ERROR_MAX 4096
#define JOBQ_PROGRESS_WRITE_MS 250
#define JOBQ_QUOTAS_MAX 64
#define JOBQ_BATCH_CAP_MAX 100000

struct jobq_options_s {
  char *storage_url;
  uv_loop_t *loop;
  int workers;
  size_t max_payload;
  int event_buffer;
  int event_buffer_set;
  int shared_events; /* jobq_options_set_shared_events */
  int64_t lease_ms;
  jobq_clock_fn clock;
  void *clock_ud;
  jobq_random_fn random;
  void *random_ud;
  char *workdir;
  jobq_log_fn log_fn;   /* NULL: stderr */
  void *log_ud;
  int log_level;        /* JOBQ_LOG_*; 0: none */
  int64_t default_duration_ms; /* ETA before any history */
  /* Per-owner quotas (kinds malloc'ed; NULL kind: all kinds). A queue
   * hands them to storage at open and keeps no copy. */
  jobq_storage_quota *quotas;
  int n_quotas;
  int cron_missed; /* JOBQ_CRON_MISSED_* for schedules this queue adds */
  /* Webhook endpoints and limits (core/webhook_opts.c). A queue keeps a
   * deep copy in wh_cfg, and the options' pointers are not its own. */
  jobq__wh_opts wh;
};

struct jobq_kind_opts_s {
  int concurrency;
  int max_attempts;
  int64_t backoff_base_ms;
  int64_t backoff_max_ms;
  double jitter;
  int64_t timeout_ms;
  int on_loop;
  int rate_starts;       /* 0: no rate limit */
  int64_t rate_interval_ms;
  int64_t expected_ms; /* ETA before any history; 0: the queue's default */
  int64_t retention_ms; /* 0: keep finished jobs */
  int keep_per_owner;
  int retention_set;    /* set explicitly: refused where storage cannot prune by kind */
};

struct jobq_submit_opts_s {
  char *owner;
  int priority;
  int64_t run_at;   /* -1: unset */
  int64_t delay_ms; /* -1: unset */
  int max_attempts; /* 0: kind default */
  char *dedupe_key;
  int64_t dedupe_ttl_ms;
  int force;
  jobq__wh_sub wh[JOBQ_WH_PER_JOB]; /* jobq_submit_opts_add_webhook */
  int n_wh;
};

struct jobq_filter_s {
  char *owner;
  char *kind;
  int state;
  int limit;
  int newest_first;
  char *cursor;
};

struct jobq_job_s {
  jobq_storage_job rec;
  int64_t eta_ms;
};

struct jobq_page_s {
  size_t n;
  jobq_job_t *jobs;
  char *next_cursor;
};

struct jobq_event_s {
  struct jobq_event_s *next;
  int sink; /* 0: subscribers, 1: the pull buffer */
  int type;
  int state;
  int progress;
  int attempt;
  int code;  /* JOBQ_EVENT_STORAGE_ERROR: storage's code */
  int64_t time;
  int64_t dropped;
  char id[JOBQ_ID_SIZE];
  char *kind;
  char *step;
  char *error;
  char *result;
};

/* A registered kind. */
typedef struct kind_reg {
  char name[JOBQ_KIND_MAX + 1];
  jobq_handler_fn fn;
  void *ud;
  struct jobq_kind_opts_s ko;
  int running; /* attempts of this kind whose code runs in this process
                * (held slots: see jobq__slot_check) */
  int pending; /* claims in flight that may return this kind */
  double avg_ms; /* moving average of attempt durations, 0 = none yet */
  /* Retention (core/retention.c), under mu: when the next pass may begin
   * (the queue's clock), whether one is under way, its cut-off and what
   * it pruned so far. */
  int64_t ret_next;
  int ret_active;
  int64_t ret_before;
  size_t ret_pruned;
} kind_reg;

/* Where an attempt is in its life; under q->mu. Every change goes through
 * jobq__attempt_to (core/attempt.h), which knows the legal ones:
 *
 *   RUNNING ──► FINISHING ──► FINISHED    the owner's succeed/fail, or a claim's
 *                                         give-back; storage applied it
 *   RUNNING ◄── FINISHING                 storage failed: nothing was applied,
 *                                         the owner may try again
 *   RUNNING ──► TIMING_OUT ──► TIMED_OUT  the deadline passed; the maintenance
 *                                         thread stores the retry or failure
 *   RUNNING ◄── TIMING_OUT                could not be posted (out of memory):
 *                                         the next tick tries again
 *   RUNNING ──► RELEASING ──► RELEASED    jobq_close gives it back
 *
 * Only a RUNNING attempt may be ended; the states in between say who is
 * ending it (the owner's call is refused with the reason: it timed out, or
 * the queue released it). The final three are final.
 *
 * The attempt's slot of its kind's concurrency (ctx->holds_slot) outlives
 * the attempt when the attempt was ended by someone other than its owner
 * (TIMED_OUT, RELEASED) while the owner's code still runs: it is given back
 * once the owner lets go too (its handler returned and its succeed/fail
 * came). A limit counts code that runs, not what storage calls running. */
typedef enum jobq__attempt_state {
  JOBQ_ATTEMPT_RUNNING,
  JOBQ_ATTEMPT_FINISHING,
  JOBQ_ATTEMPT_FINISHED,
  JOBQ_ATTEMPT_TIMING_OUT,
  JOBQ_ATTEMPT_TIMED_OUT,
  JOBQ_ATTEMPT_RELEASING,
  JOBQ_ATTEMPT_RELEASED,
} jobq__attempt_state;

static inline kind_reg *jobq__kind_find(jobq_t *q, const char *name);
/* A kind's concurrency limit, 0 for none. */
static inline int jobq__kind_limit(const kind_reg *k) {
  if (k->ko.concurrency > 0) return k->ko.concurrency;
  return k->ko.on_loop ? JOBQ_LOOP_DEFAULT_CONCURRENCY : 0;
}

/* One attempt, handed to a handler or a jobq_claim caller. */
struct jobq_ctx_s {
  jobq_t *q;
  int refs;            /* under q->mu: 1 until the user's succeed/fail, +1 while a
                        * handler call runs, +1 while a timeout is being applied */
  jobq__attempt_state state; /* under q->mu; see above */
  /* The user's succeed/fail came and took the user's reference. Not part of
   * the state: an attempt that timed out or was released still waits for
   * its owner's call (which is refused, but drops the reference). */
  int user_done;
  int in_handler;      /* under q->mu: a handler call on it is under way */
  /* Under q->mu: counted in kr->running, its kind's concurrency. Taken at
   * the claim, given back once by jobq__slot_check (core/attempt.h). */
  int holds_slot;
  kind_reg *kr;        /* NULL for a kind not registered here */
  jobq_storage_job rec;
  /* Cancel requested, timed out, or released: the handler should stop.
   * Atomic and apart from state because handlers poll it without the lock
   * (jobq_ctx_cancelled), and a cancel requested of a RUNNING attempt does
   * not end it. */
  atomic_int cancelled;
  int progress;
  char *step;
  int progress_dirty;
  int64_t progress_written;
  int64_t deadline;    /* timeout, 0 = none */
  uint32_t tmo_idx;    /* index in q->running.tmo */
  int in_tmo;          /* in q->running.tmo (a RUNNING attempt whose deadline is ahead) */
  uint64_t t0_ns;      /* start, for the kind's average duration; 0: not timed */
  uint64_t t1_ns;      /* when the handler said it was done; 0: not yet */
  /* While an asynchronous finish is stored (FINISHING): whether it holds
   * the job's events, and copies of what it stores. */
  int held;
  char *fin_result;
  char *fin_error;
  /* jobq_ctx_retry_after: the run_at of a RETRY or DEFER is now + delay_ms
   * instead of the backoff. Under q->mu, set only while it is ending. */
  int has_delay;
  int64_t delay_ms;
};

static inline int jobq__attempt_timed_out(const jobq_ctx_t *ctx) {
  return ctx->state == JOBQ_ATTEMPT_TIMING_OUT || ctx->state == JOBQ_ATTEMPT_TIMED_OUT;
}
static inline int jobq__attempt_released(const jobq_ctx_t *ctx) {
  return ctx->state == JOBQ_ATTEMPT_RELEASING || ctx->state == JOBQ_ATTEMPT_RELEASED;
}

typedef struct waiter {
  struct waiter *next;
  char id[JOBQ_ID_SIZE];
  uv_cond_t cv;
  int changed;
  int recheck; /* another process may have changed the job: look again */
} waiter;

typedef struct sub {
  jobq_event_fn fn;
  void *ud;
} sub;

/* Events of a job that started, progressed or finished before its submitter
 * published "submitted": held back so that each job's events stay in order. */
typedef struct held {
  char id[JOBQ_ID_SIZE];
  jobq_event_t *head, *tail;
} held;

/* A queue. Each module owns a part; the comment on each part says which
 * lock guards it. There is one lock, mu (the core lock): the parts are for
 * ownership and reading, not for finer locking, since a state change
 * (an attempt's end, say) touches several parts at once and must be seen
 * whole. */
struct jobq_s {
  uv_mutex_t mu;                /* the core lock */
  struct jobq_options_s o;      /* copied at open; read-only afterwards */
  const jobq_storage_ops *ops;  /* read-only after open */
  void *st;                     /* the store; NULL once closed (under mu) */

  /* The queue's life (core/queue.c); under mu unless noted. */
  unsigned fork_gen;     /* jobq__fork_gen() at open; read-only */
  int refs;              /* q is freed when this drops to 0 */
  int started;
  atomic_int stopping;   /* no new claims; read without mu by spinning claimers */
  atomic_int closed;     /* jobq_close began (2: storage closed); read without mu by submits */
  int storage_closing;   /* close waited out the last storage call: no new ones */
  int shut_down;         /* jobq_shutdown (or close) has returned; under mu */
  /* Storage calls under way (jobq__storage_begin/end); close waits for 0.
   * Atomic: a submit counts without mu (see core/submit.c). */
  atomic_int ops_in_flight;
  uv_cond_t idle_cv;     /* close waits here for running attempts and storage calls */

  /* jobq_poll_fd (core/pollfd.c). The flags are read without mu on hot
   * paths: a queue nobody polls pays one relaxed load per signal point. */
  struct {
    atomic_int on;      /* a pipe exists: signal it */
    atomic_int armed;   /* a byte was written since the last ack */
    int rd, wr;         /* the pipe, -1 until jobq_poll_fd; closed by free */
  } poll;

  /* The loop and its handles (core/queue.c, core/ext.c); under mu. */
  struct {
    uv_loop_t *loop;
    uv_loop_t own_loop;
    int own;              /* the loop runs on a thread of ours */
    uv_thread_t thread;   /* that thread */
    uv_thread_t tid;      /* the thread that runs the loop (ours or the host's) */
    uv_async_t async;
    uv_timer_t timer;     /* delayed jobs due, attempt timeouts */
    int64_t timer_at;     /* when the timer fires, INT64_MAX: stopped */
    int64_t wake_at;      /* earliest known future run_at, INT64_MAX none */
    int handles_open;
    int handles_closing;  /* close callbacks still to come */
    struct jobq__ext *exts; /* extensions with loop handles (pipelines) */
    int n_exts;
  } loop_s;

  /* Maintenance (core/maint.c): heartbeats, progress flushes, rescues and
   * timeouts run on a thread of their own, storage work the loop must not
   * do (not libuv's pool, which a host may keep busy with its own work).
   * Under mu. */
  struct {
    uv_timer_t timer;     /* on the loop: makes the batches */
    uv_thread_t thread;
    int running;          /* the thread was started */
    int stop;
    uv_cond_t cv;
    void *batch;          /* the next batch for the thread, or NULL */
    jobq_ctx_t **tmo_posted; /* timed-out attempts for the thread */
    size_t n_tmo_posted, cap_tmo_posted;
    int busy;             /* a batch is queued or running */
    /* The batch carries progress writes that are not stored yet. Another
     * progress write (a checkpoint, a handler's own write) waits on
     * flush_cv until they are, so that a value taken before it can never
     * land after it. */
    int flushing;
    uv_cond_t flush_cv;
    int64_t next_heartbeat, next_rescue;
    /* Retention (core/retention.c): kinds with a pass under way, the next
     * one to serve, and when (uv_hrtime) the next call may go: calls are
     * paced so that pruning takes a small share of storage's time. */
    int ret_pending;
    int ret_turn;
    uint64_t ret_resume_ns;
  } maint;

  /* Registered kinds (core/queue.c jobq_register); under mu, and fixed
   * once jobq_start ran. */
  struct {
    kind_reg *v;
    int n;
    const char **worker;  /* names of kinds run on worker threads */
    int n_worker;
    const char **loop;    /* names of kinds run on the loop */
    int n_loop;
    const char **ma_names; /* every registered kind and its max attempts, */
    int *ma_values;        /* for claims (kept in step by jobq_register) */
    int n_ma;
    jobq_storage_rate *rates; /* the rate-limited kinds, for claims (likewise) */
    int n_rates;
  } kinds;

  /* Claimers (core/claim.c): worker threads, the feeder, jobq_claim
   * callers; under mu unless noted. */
  struct {
    uv_thread_t *threads;
    int n_threads;
    uv_cond_t work_cv;    /* claimers wait for work here */
    /* idle and work_gen pair up without the lock (a Dekker handshake): a
     * claimer increments idle and then re-reads work_gen; a submitter
     * increments work_gen and then reads idle. One of them sees the other. */
    atomic_int idle;      /* claimers waiting on work_cv */
    _Atomic uint64_t work_gen; /* bumped whenever jobs may have become claimable */
    /* uv_hrtime() of the last claim of workers that came back with short
     * jobs (those claimed JOBQ_CLAIM_BATCH at a time): CPU-bound job
     * traffic, for which webhook deliveries briefly step aside
     * (core/webhook.c). No lock. */
    _Atomic uint64_t backlog_at;
    int in_flight;        /* claims asking storage right now */
    jobq_map cancel_hints; /* ids cancelled while a claim was in flight */
    jobq_ctx_t **handoff; /* claimed in a batch, for the next free worker */
    size_t n_handoff, cap_handoff, handoff_head;
    jobq_ctx_t **inbox;   /* attempts to start on the loop */
    size_t n_inbox, cap_inbox;
    int handlers_active;  /* handlers running on worker threads */
    unsigned timed;       /* handler calls so far, of which 1 in 16 is timed */
    int64_t rate_limited; /* claims a rate limit held back (jobq_stats) */
  } claim;

  /* Attempts running here (core/attempt.c, core/timeout.c); under mu. */
  struct {
    jobq_map map;         /* id -> ctx */
    jobq_heap tmo;        /* those with a timeout, by deadline */
  } running;

  /* Events (core/events.c); under mu unless noted. */
  struct {
    sub *subs;
    int n_subs;
    int in_callback;      /* the loop thread is inside a subscriber call */
    uv_cond_t sub_cv;     /* jobq_unsubscribe waits for that call to end */
    jobq_event_t *disp_head, *disp_tail; /* for subscribers, drained on the loop */
    int pull_on;
    atomic_int flag;      /* n_subs > 0 || pull_on, readable without mu */
    int sink_on;          /* storage passes on other processes' events */
    jobq_event_t **ring;  /* pull buffer */
    size_t ring_cap, ring_head, ring_n;
    int64_t ring_dropped;
    uv_cond_t cv;         /* jobq_next_event callers wait here */
    int pull_waiters;
    jobq_map holds;       /* id -> held: jobs whose events wait (jobq__hold_begin) */
    uv_cond_t hold_cv;
    int hold_waiters;
  } events;

  /* Long polls (core/read.c jobq_wait); under mu. */
  jobq_map waiters;      /* id -> waiter list */

  /* What storage last answered this process's background work
   * (core/health.c); under mu. */
  struct {
    unsigned failing;        /* bit (1 << jobq__op) per sort of work whose last call failed */
    int64_t errors;          /* failed calls since open */
    int64_t episode_errors;  /* failed calls since failing began */
    int64_t failing_since;   /* the queue's clock; 0: not failing */
    int64_t next_reminder;   /* when to log "still failing" */
    int last_code;
    int64_t last_at;
    char *last_error;        /* the latest failure's sentence */
  } health;

  /* Cron schedules (core/cron.c): the list as last read from storage, each
   * with its parsed expression. The maintenance thread alone uses v and n;
   * the rest is under mu. */
  struct {
    struct jobq__cron_entry *v;
    size_t n;
    int64_t next_read;  /* the queue's clock: read the list again from then */
    int64_t next_due;   /* the earliest next run in v; INT64_MAX: none */
    int changed;        /* this process changed a schedule: read again now */
  } cron;
  /* Shared stats (core/stats.c): what this process counted since the last
   * flush to the store; under mu. flush_mu serialises flushes (taken
   * before mu). */
  struct {
    jobq_map acc;            /* kind ("" none) -> jobq__stat_acc */
    struct jobq__stat_acc *last; /* the one found last (a kind's jobs come in runs) */
    uv_mutex_t flush_mu;
    uint64_t next_flush_ns;  /* uv_hrtime of the next background flush */
    int published;           /* live rows are published: withdraw them at close */
  } stats;

  /* Webhooks (core/webhook_opts.c, core/webhook.c): the endpoints (a deep
   * copy of the options', read-only after open), the allow-list parsed,
   * whether the backend keeps an outbox, and the sender (NULL when this
   * process sends nothing). */
  jobq__wh_opts wh_cfg;
  struct jobq__addr_allow *wh_allow;
  int ops_outbox;
  struct jobq__wh *wh;

  /* Log lines for the host's hook, delivered on the loop (core/health.c);
   * under mu. */
  struct {
    struct jobq__logline *head, *tail;
    size_t n;
    int64_t dropped;         /* lines lost to a full or out-of-memory queue */
  } log;
};

static inline kind_reg *jobq__kind_find(jobq_t *q, const char *name) {
  for (int i = 0; i < q->kinds.n; i++)
    if (strcmp(q->kinds.v[i].name, name) == 0) return &q->kinds.v[i];
  return NULL;
}

/* Every storage call is counted from before it starts until its answer is
 * in (q->ops_in_flight), so that jobq_close can wait for the last one
 * before it closes storage. mu held for both; the call itself runs without
 * it. A count may also span threads: a timeout counted when it is posted
 * ends on the maintenance thread, an asynchronous finish in its done. */
/* A queue that this process inherited through fork() from the process
 * that opened it: its threads do not exist here, and its files belong to
 * the parent. Public functions refuse it with jobq__inherited_err (their
 * name); jobq_close leaves it alone. */
static inline int jobq__inherited(const jobq_t *q) { return q->fork_gen != jobq__fork_gen(); }
int jobq__inherited_err(const char *fn);

static inline void jobq__storage_begin(jobq_t *q) { q->ops_in_flight++; }
static inline void jobq__storage_end(jobq_t *q) {
  q->ops_in_flight--;
  if (q->closed) uv_cond_broadcast(&q->idle_cv); /* jobq_close may be waiting */
}

/* Wakes claimers: jobs may have become claimable. mu held. (A submit does
 * the same in two halves, bumping work_gen without the lock; see
 * core/submit.c.) */
static inline void jobq__poll_signal(jobq_t *q);
static inline void jobq__wake_claimers(jobq_t *q) {
  q->claim.work_gen++;
  if (q->claim.idle) uv_cond_broadcast(&q->claim.work_cv);
  jobq__poll_signal(q);
}

/* core/pollfd.c: makes the poll fd readable (any thread, mu held or not). */
void jobq__poll_signal_slow(jobq_t *q);
static inline void jobq__poll_signal(jobq_t *q) {
  if (atomic_load_explicit(&q->poll.on, memory_order_acquire)) jobq__poll_signal_slow(q);
}
void jobq__poll_free(jobq_t *q); /* closes the pipe */

/* core/queue.c */
int64_t jobq__now(jobq_t *q);
void jobq__kick_loop(jobq_t *q);             /* mu held */
/* mu held; unlocks it, or frees q when its last reference is gone. */
void jobq__unlock(jobq_t *q);
void jobq__q_unref(jobq_t *q);               /* refs - 1, then jobq__unlock */
int jobq__on_loop_thread(jobq_t *q);

/* core/events.c */
int jobq__events_on(jobq_t *q);
void jobq__emit(jobq_t *q, int type, const char *id, const char *kind, int state, int progress,
                const char *step, int attempt, const char *error, const char *result);
void jobq__dispatch_events(jobq_t *q);       /* on the loop, mu not held */
void jobq__notify_waiters(jobq_t *q, const char *id); /* mu held */
void jobq__event_free_list(jobq_event_t *ev);
/* jobq_open with shared events: storage passes on other processes' events
 * from now on. mu not held; before q is handed out. */
int jobq__events_share(jobq_t *q);
/* Around a submit while events are on: hold back the new jobs' events until
 * "submitted" is published (mu held for both). */
int jobq__hold_begin(jobq_t *q, const char *id); /* may wait for another hold on id */
void jobq__emit_now(jobq_t *q, int type, const char *id, const char *kind, int state, int progress,
                    const char *step, int attempt, const char *error, const char *result);
void jobq__hold_end(jobq_t *q, const char *id, int publish_submitted, const char *kind);
/* An event about the queue rather than a job (JOBQ_EVENT_STORAGE_*); mu held. */
void jobq__emit_queue_event(jobq_t *q, int type, int code, const char *error);

/* core/health.c */
/* The sorts of background storage work whose failures jobq_health reports. */
typedef enum jobq__op {
  JOBQ_OP_CLAIM,
  JOBQ_OP_HEARTBEAT,
  JOBQ_OP_PROGRESS,
  JOBQ_OP_RESCUE,
  JOBQ_OP_TIMEOUT,
  JOBQ_OP_FINISH,
  JOBQ_OP_CRON,
  JOBQ_OP_RETENTION,
  JOBQ_OP_WEBHOOK,
  JOBQ_OP_N
} jobq__op;
/* Records how storage answered one call of background work: rc 0 or a
 * JOBQ_E* code, whose sentence is the calling thread's jobq_last_error().
 * The first failure after success and the first success after failure
 * are news (an event, a log line). mu held. */
void jobq__health_note(jobq_t *q, jobq__op op, int rc);
/* Queues a log line for the host (mu held); see jobq_options_set_log. */
void jobq__log(jobq_t *q, int level, const char *fmt, ...) JOBQ_PRINTF(3, 4);
/* On the loop (and at close), mu not held: hands the queued lines over. */
void jobq__log_dispatch(jobq_t *q);
void jobq__log_free(jobq_t *q); /* from free_q */

/* core/claim.c */
int jobq__claim_locked(jobq_t *q, const char *const *kinds, size_t n_kinds, size_t max,
                       jobq_ctx_t **out, size_t *n_out);
void jobq__release_handoff(jobq_t *q);       /* mu held */
void jobq__worker_main(void *arg);
void jobq__feeder_main(void *arg);
void jobq__run_loop_inbox(jobq_t *q);         /* on the loop, mu not held */

/* core/timeout.c */
void jobq__expire_timeouts(jobq_t *q, int64_t now); /* on the loop, mu held */
int64_t jobq__tmo_next(jobq_t *q);
void jobq__tmo_init(jobq_t *q);            /* mu held */
void jobq__release_all(jobq_t *q);            /* mu held */

/* core/maint.c */
int jobq__maint_start(jobq_t *q); /* starts the timer and the maintenance thread */
void jobq__maint_stop(jobq_t *q);
/* mu held: returns once the progress writes of the maintenance batch in
 * flight, if any, are stored (see maint.flushing). */
void jobq__maint_wait_flushes(jobq_t *q);  /* joins the thread; mu not held */
/* mu held; -1 when out of memory (nothing posted) */
int jobq__maint_post_timeout(jobq_t *q, jobq_ctx_t *ctx);
int64_t jobq__maint_tick_ms(jobq_t *q); /* how often the maintenance timer ticks */
void jobq__timeout_apply(jobq_ctx_t *ctx); /* core/timeout.c */
void jobq__maint_on_notify(void *ud); /* storage saw another process's change */
void jobq__ctx_put(jobq_ctx_t *ctx); /* core/attempt.c: mu held */

/* core/cron.c */
/* mu held: whether a maintenance batch should evaluate the schedules now. */
int jobq__cron_wanted(jobq_t *q, int64_t now);
/* On the maintenance thread, mu not held: reads the list again when due,
 * fires the schedules that are due, wakes claimers. */
void jobq__cron_evaluate(jobq_t *q, int64_t now);
void jobq__cron_free(jobq_t *q); /* from free_q */
/* core/retention.c, pruning the registered kinds' old finished jobs */
/* From the maintenance tick (mu held): starts the passes that are due. */
void jobq__retention_tick(jobq_t *q, int64_t now);
/* On the maintenance thread (mu held; released around the storage call):
 * one call of the passes under way, if the pacing allows one now. Returns
 * 0 when it made a call, else how long (ns) to wait before the next. */
uint64_t jobq__retention_step(jobq_t *q);
/* jobq_register: JOBQ_ENOTSUP for an explicit retention on a backend that
 * cannot prune by kind. */
int jobq__retention_check(jobq_t *q, const char *kind, const struct jobq_kind_opts_s *ko);

/* core/cancel.c */
void jobq__cancel_hints_clear(jobq_t *q);     /* mu held */

/* core/options.c */
int jobq__kind_name_check(const char *fn, const char *kind);
void jobq__options_defaults(struct jobq_options_s *o);  /* the other fields untouched */
void jobq__kind_opts_defaults(struct jobq_kind_opts_s *k);

/* core/batch.c: storage's BATCH_DONE events of this process's changes
 * (set_batch_sink at open). */
void jobq__batch_sink(void *ud, const jobq_storage_event *ev);

/* core/read.c */
/* mu held; ks: the kind's shared stats for the ETA, or NULL */
void jobq__job_overlay(jobq_t *q, jobq_job_t *job, const jobq_storage_kind_stats *ks);

/* storage/registry.c */
int jobq__storage_lookup(const char *url, const jobq_storage_ops **out);
/* *out: the malloc'd default directory for pipeline work files of a queue
 * on url (relative or absolute, as the backend says); 0 or JOBQ_ENOMEM. */
int jobq__storage_default_workdir(const char *url, char **out);
/* The queue's process is alive and heartbeats its leases: storage that can
 * tell a live owner from a dead one rescues a live owner's jobs only after
 * a stall (SQLite: see docs/architecture.md, "Leases, heartbeats, rescue"). */
void jobq__storage_guard_leases(const jobq_storage_ops *ops, void *st);
void jobq__storage_job_copy_into(jobq_storage_job *dst, const jobq_storage_job *src);

/* core/ext.c: what extensions of the core (lib/stages) hook into; see
 * core/ext.h. */
void jobq__exts_close_on_loop(jobq_t *q); /* loop thread, from close_handles */
void jobq__exts_free(jobq_t *q);          /* from free_q */
char *jobq__default_workdir(const char *url);
char *jobq__absolute_path(const char *p);
/* Removes the work directories of n pruned jobs (absent ones are fine). */
void jobq__workdirs_remove(jobq_t *q, char (*ids)[JOBQ_ID_SIZE], size_t n);

#endif
