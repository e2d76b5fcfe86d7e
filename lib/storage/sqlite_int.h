/* The SQLite backend's private structures (lib/storage/sqlite*.c). */
#ifndef JOBQ_STORAGE_SQLITE_INT_H
#define JOBQ_STORAGE_SQLITE_INT_H

#include "jobq/storage.h"
#include "util/map.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <uv.h>

/* Internal job states in the table. A queued job is stored as "due" (0,
 * claimable) or "scheduled" (5, run_at in the future); a claim first moves
 * scheduled jobs that came due, so that the claim index holds due jobs only
 * and claiming stays O(log n) however many jobs wait for later. */
#define SQ_DUE 0
#define SQ_SCHEDULED 5
/* A due member of a capped batch waiting for a place (sqlite_batch.c). */
#define SQ_HELD 6
/* The stored states a caller sees as queued. */
#define SQ_IS_QUEUED(st) ((st) == SQ_DUE || (st) == SQ_SCHEDULED || (st) == SQ_HELD)

#define SQ_SCHEMA_VERSION 11
#define SQ_READERS 4

/* The columns every job read returns, in jobq__sq_row_to_job's order. */
#define SQ_JOB_COLS                                                                      \
  "seq, id, kind, state, priority, run_at, attempts, max_attempts, progress, cancel_req, " \
  "created_at, started_at, finished_at, owner, payload, step, result, error, dedupe_key, "  \
  "dedupe_ttl, attempt_log"
#define JOBQ__SQ_QUOTA_MANY 32 /* owned jobs counted by one statement */

/* The write connection's statements (sq_store.ws), each prepared by the
 * file that uses it. */
enum {
  /* sqlite_writer.c: transactions */
  WS_BEGIN, WS_COMMIT, WS_ROLLBACK, WS_SAVEPOINT, WS_RELEASE, WS_ROLLBACK_TO,
  /* sqlite_jobs.c */
  WS_INSERT, WS_INSERT_MANY, WS_DEDUPE_FIND, WS_FIND, WS_PROGRESS, WS_CHECKPOINT,
  WS_CANCEL_QUEUED, WS_CANCEL_RUNNING, WS_PRUNE_JOBS,
  /* sqlite_quota.c */
  WS_QUOTA_BOUNDS, WS_QUOTA_ADD, WS_QUOTA_EXACT, WS_QUOTA_CLEAR, WS_QUOTA_SET,
  /* sqlite_cron.c */
  WS_CRON_PUT, WS_CRON_DEL, WS_CRON_CAS, WS_CRON_KEY,
  /* sqlite_rate.c */
  WS_RATE_GET, WS_RATE_EXPIRED, WS_RATE_FORGET, WS_RATE_OLDEST, WS_RATE_LOG, WS_RATE_SET, WS_RATE_DUE,
  WS_DEFER_JOB,
  /* sqlite_stats.c */
  WS_STATS_ADD, WS_LIVE_SET, WS_LIVE_DROP, WS_LIVE_EXPIRE,
  /* sqlite_claim.c */
  WS_PROMOTE, WS_TOP_KIND, WS_KINDS_DUE, WS_TAKE_READ, WS_TAKE,
  /* sqlite_finish.c */
  WS_FINISH, WS_FINISH_FAST, WS_RELEASE_JOB,
  /* sqlite_lease.c */
  WS_HEARTBEAT, WS_RESCUE, WS_LEASE_SET, WS_LEASE_DROP, WS_LEASES_EXPIRED, WS_LEASE_MINS,
  WS_LEASE_FIX, WS_LEASES_GONE,
  /* sqlite_batch.c */
  WS_BATCH_MEMBER, WS_BATCH_NEW, WS_BATCH_HELD, WS_BATCH_SLOTS, WS_BATCH_RELEASE,
  WS_BATCH_DONE_ONE, WS_BATCH_READ,
  /* sqlite_events.c */
  WS_EVENT, WS_LISTENERS, WS_LISTEN, WS_UNLISTEN, WS_PRUNE_EVENTS,
  /* sqlite_retention.c */
  WS_RET_SCAN, WS_RET_NEWER, WS_RET_DELETE,
  /* sqlite_jobs.c: a job with webhook subscriptions */
  WS_INSERT_HOOKED, WS_INSERT_MANY_HOOKED,
  /* sqlite_outbox.c */
  WS_OB_INSERT, WS_OB_INSERT_MANY, WS_OB_ANY_DISABLED, WS_OB_DROP_PROGRESS, WS_OB_PROGRESS, WS_OB_DUE, WS_OB_JOB, WS_OB_DISABLED,
  WS_OB_TAKE, WS_OB_FAIL, WS_OB_NEXT, WS_OB_DONE, WS_OB_DISABLE, WS_OB_REDELIVER, WS_OB_STATE,
  WS_OB_ENABLE, WS_OB_BUSY, WS_OB_DELETE_JOB, WS_OB_ANN, WS_OB_ANN_MANY, WS_OB_NEWS,
  WS_OB_NEWS_DONE,
  WS_COUNT
};

enum {
  RS_GET, RS_GET_BY_KEY, RS_NEXT_RUN_AT, RS_NEXT_RUN_AT_ANY, RS_CHECKPOINT, RS_EXPIRED,
  /* a queued job's position (sqlite.c), prepared on first use */
  RS_POS_HIGHER, RS_POS_SAME, RS_POS_SCHEDULED, RS_POS_NEXT_BAND, RS_POS_FIRST, RS_POS_LAST,
  /* a rate limit's window (rate_window), prepared on first use */
  RS_RATE_USED,
  /* shared stats (sqlite_stats.c), prepared on first use */
  RS_STATS_KIND, RS_STATS_ALL, RS_LIVE_KIND, RS_LIVE_ALL, RS_DEPTH_DUE, RS_DEPTH_SCHED, RS_DEPTH_AT,
  /* the webhook outbox (sqlite_outbox.c), prepared on first use */
  RS_OB_COUNTS, RS_OB_CURSOR, RS_OB_NEWS,
  RS_COUNT
};

typedef struct sq_reader {
  uv_mutex_t mu;
  sqlite3 *db;
  sqlite3_stmt *st[RS_COUNT];
} sq_reader;

typedef struct sq_store sq_store;
typedef struct sq_bnotice sq_bnotice;

/* A write request: the struct of one operation (sq_insert_req, ...) starts
 * with this header. It is queued for the write connection and answered
 * after the transaction that carried it committed (or failed). */
typedef struct sq_req sq_req;

/* What the writer knows of an operation. */
typedef struct sq_op {
  /* Runs the request on the write connection, inside the transaction: 0,
   * or a negative JOBQ code (then its outputs are undone). */
  int (*run)(sq_store *s, sq_req *r);
  /* Takes back what run put in the caller's out parameters, when the
   * request failed or its transaction did not commit; NULL: nothing to
   * take back. */
  void (*undo)(sq_store *s, sq_req *r);
} sq_op;

struct sq_req {
  sq_req *next;
  const sq_op *op;
  /* The request writes several rows that must go together, so it runs in
   * a savepoint of its own (two statements more) and its failure undoes
   * only itself. A request that writes one row, or rows each fine on its
   * own, needs none: a failing statement undoes itself. */
  int savepoint;
  /* An asynchronous request (nobody waits for it): called once its
   * transaction ended, outside any lock, to pass on rc and free the
   * request. NULL: the caller waits in jobq__sq_submit. */
  void (*answer)(sq_req *r);
  /* the answer */
  int rc;
  int done;
  /* Where the waiting caller sleeps (jobq__sq_submit: on its stack); the
   * leader signals it alone, when its request is done or when it is to
   * lead next. NULL for an asynchronous request. */
  uv_cond_t *cv;
  char err[512]; /* the sentence, as long as jobq_last_error() holds */
};

struct sq_store {
  char *path;
  int power_safe;       /* synchronous=FULL */
  int busy_ms;
  long max_pages;       /* PRAGMA max_page_count on the writer, 0 = SQLite's default */
  int shared_schema;    /* shared_schema=1: other programs' tables may share the file */
  /* per-owner quotas (set_quotas, before any write; read by the writer) */
  jobq_storage_quota *quotas;
  size_t n_quotas;
  sqlite3_stmt *quota_many[JOBQ__SQ_QUOTA_MANY + 1]; /* sqlite_quota.c, by row count */
  /* batches (sqlite_batch.c): where ended batches are told (set before any
   * write), and those ended by the transaction under way (writer only) */
  void (*batch_sink)(void *ud, const jobq_storage_event *ev);
  void *batch_sink_ud;
  sq_bnotice *bn_head;
  size_t bn_count;

  /* the writer: one thread owns the write connection */
  sqlite3 *w;
  sqlite3_stmt *ws[WS_COUNT];
  uv_thread_t writer;
  uv_mutex_t mu;
  uv_cond_t cv_req;
  sq_req *head, *tail;
  size_t queued;        /* requests in head..tail */
  int stop;
  int leading;          /* a thread is running a batch on the write connection */
  uint64_t commits;     /* transactions committed, for the benchmark's curiosity */
  /* Jobs this store claimed and has not finished: id -> sq_claimed, so that
   * a finish finds the row by seq (no id index walk) and knows the kind.
   * Writer connection's owner only. */
  jobq_map claimed;
  /* This store's row in jobq_leases (sqlite_lease.c): rewritten before the
   * commit of a transaction that claimed or heartbeated (lease_dirty);
   * after a transaction that failed, conservatively (lease_unsure). */
  int lease_dirty, lease_unsure;
  /* A request failed after it had written part of a change that must be
   * whole (a job's end without the webhook deliveries it adds): the whole
   * transaction is rolled back, not just the request (which may have no
   * savepoint). Set by jobq__sq_poison, cleared at each BEGIN. */
  int tx_poison;
  /* The writer's last parsed webhooks text (sqlite_outbox.c): a queue's
   * jobs mostly carry the same few bytes, so a job's end parses nothing. */
  struct sq_hooks *hooks_cache;
  /* Deliveries the transaction's job ends added, not yet written
   * (sqlite_outbox.c): written together, INSERT_MANY rows a statement,
   * before the commit or before anything reads the outbox. */
  struct sq_obpend *ob_pend;
  /* Writing them failed after the requests that added them ran: nothing
   * of the transaction may commit. Cleared at each BEGIN. */
  int tx_doomed;
  /* when rescue last looked at the running jobs themselves (wall ms) */
  _Atomic int64_t last_scan;
  /* Liveness (sqlite_lease.c, jobq__sq_guard_leases): while live_on, this
   * process holds a lock on one byte of the database file chosen by its
   * token (live_fd), and a rescue takes the expired jobs of an owner that
   * still holds its byte only live_grace ms after their lease. */
  int live_on, live_fd;
  int64_t live_grace;

  /* the checkpointer (sqlite_ckpt.c); cdb NULL: SQLite's own checkpoints */
  sqlite3 *cdb;
  uv_thread_t ckpt_thread;
  uv_mutex_t cmu;
  uv_cond_t ccv;
  uv_cond_t cdone;  /* the thread's checkpoint ended (ckpt_busy back to 0) */
  int ckpt_want, ckpt_stop;
  int ckpt_busy;    /* the thread is inside a checkpoint (holds SQLite's lock) */
  int ckpt_hold;    /* the writer checkpoints itself: the thread waits */
  int restart_at;   /* WAL frames from which the writer tries a RESTART (writer only) */

  /* readers */
  sq_reader readers[SQ_READERS];
  atomic_uint next_reader;

  /* other processes' changes */
  uv_mutex_t nmu;
  void (*notify)(void *ud);
  void *notify_ud;
  int watching;
  uv_thread_t watcher;
  uv_loop_t wloop;
  uv_async_t wstop;
  uv_timer_t wtimer;
  uv_fs_event_t wfs;
  sqlite3 *wdb;         /* the watcher's connection, for PRAGMA data_version */
  sqlite3_stmt *wver;
  int64_t data_version;

  /* events shared between processes (schema 2: jobq_events, jobq_listeners) */
  int64_t token;        /* this store's origin in jobq_events */
  int share;            /* another process listens: write event rows (writer only) */
  int64_t share_checked;
  void (*sink)(void *ud, const jobq_storage_event *ev); /* under nmu */
  void *sink_ud;
  int64_t ev_last;      /* last event row passed on (watcher thread) */
  int64_t listen_renewed;
  sqlite3_stmt *wev;    /* the watcher's event reader */

  /* retention passes (sqlite_retention.c): per kind, the seq up to which
   * the pass under way has looked. Writer only. */
  struct sq_ret_cursor *ret;
  size_t n_ret;
};

/* A job this store claimed (sq_store.claimed); kind follows the struct. */
typedef struct sq_claimed {
  char id[JOBQ_ID_SIZE];
  int64_t seq;
  int64_t until; /* its lease, as last stored */
  int batched;   /* a member of a batch: its end goes the general way */
  const char *hooks; /* its webhook subscriptions (in the same block), or NULL */
  char kind[];
} sq_claimed;

/* sqlite.c */
/* Maps an SQLite failure to a JOBQ code and sets the sentence:
 * "sqlite storage 'PATH': WHAT: ...". A full disk (SQLITE_FULL, or an I/O
 * error with ENOSPC/EDQUOT) is JOBQ_EFULL and says which directory is full,
 * or which max_page_count was reached. */
int jobq__sq_error(sqlite3 *db, int rc, const char *what, const char *path);
int jobq__sq_exec(sqlite3 *db, const char *sql, const char *what, const char *path);
int64_t jobq__sq_wall_ms(void);
/* The registry's hook: the default work directory of a sqlite: URL. */
int jobq__sq_default_workdir(const char *url, char **out);
/* Fills out from a row of the job columns; -1 on out of memory. */
int jobq__sq_row_to_job(sqlite3_stmt *st, jobq_storage_job *out, int64_t *seq, int *raw_state);
/* 1 in *out if some running job's lease ended before now (a table scan, on
 * a read connection: writers do not wait for it). */
int jobq__sq_any_expired(sq_store *s, int64_t now, int *out);

/* sqlite_writer.c: the group-commit engine */
int jobq__sq_prepare_writer(sq_store *s); /* every WS_* statement */
/* Prepares the statements of sql[] (indexed by WS_*) that are not NULL. */
int jobq__sq_prepare(sq_store *s, const char *const sql[WS_COUNT]);
int jobq__sq_writer_start(sq_store *s);
void jobq__sq_writer_stop(sq_store *s);
/* Queues r and returns its rc once the transaction that carried it ended. */
int jobq__sq_submit(sq_store *s, sq_req *r);
/* Queues r (heap-allocated, r->answer set) and returns at once. */
void jobq__sq_submit_async(sq_store *s, sq_req *r);

/* Runs a statement that returns no rows; 0 or a JOBQ code. */
static inline int jobq__sq_run(sq_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : jobq__sq_error(s->w, rc, what, s->path);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return out;
}

static inline void jobq__sq_bind_text_or_null(sqlite3_stmt *st, int i, const char *t) {
  if (t) sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

/* The operations, each preparing its statements (from prepare_writer):
 * sqlite_jobs.c (insert, progress, checkpoint, cancel, prune),
 * sqlite_claim.c, sqlite_finish.c, sqlite_lease.c (heartbeat, rescue),
 * sqlite_events.c (listen). */
int jobq__sq_jobs_prepare(sq_store *s);
int jobq__sq_claim_prepare(sq_store *s);
int jobq__sq_finish_prepare(sq_store *s);
int jobq__sq_lease_prepare(sq_store *s);
int jobq__sq_events_prepare(sq_store *s);
int jobq__sq_quota_prepare(sq_store *s);
int jobq__sq_cron_prepare(sq_store *s);
int jobq__sq_stats_prepare(sq_store *s);
/* sqlite.c: a reader of the pool, locked (unlock r->mu when done), and a
 * statement of its, prepared on first use. */
sq_reader *jobq__sq_reader(sq_store *s);
int jobq__sq_reader_stmt(sq_store *s, sq_reader *r, int i, const char *sql, sqlite3_stmt **out);
/* sqlite_stats.c: the vtable's stats members. */
int jobq__sq_stats_add(void *st, const jobq_storage_stats_delta *d, size_t n, int64_t now);
int jobq__sq_stats_read(void *st, const char *kind, int depth, int64_t now,
                        jobq_storage_kind_stats **out, size_t *n_out);
int jobq__sq_batch_prepare(sq_store *s);
/* sqlite_batch.c, on the writer inside the transaction: */
/* batch_insert's part after the jobs went in (dup as insert left it). */
int jobq__sq_batch_members(sq_store *s, const char *batch_id, int cap,
                           jobq_storage_job *const *jobs, size_t n, const int *dup, int64_t now);
/* A claim's first step: held members of capped batches with room become due. */
int jobq__sq_batch_fill(sq_store *s);
/* A member ended in state (2, 3, 4): its batch counts it, and ends with it. */
int jobq__sq_batch_member_done(sq_store *s, const char *batch, const char *job, const char *kind,
                               int state, const char *error, int64_t now);
/* The writer: where a request's news starts (mark), drop a failed
 * request's or transaction's, tell a committed one's. */
size_t jobq__sq_bnotice_mark(sq_store *s);
void jobq__sq_bnotice_drop(sq_store *s, size_t mark);
void jobq__sq_bnotice_tell(sq_store *s);
int jobq__sq_batch_get(void *st, const char *id, jobq_storage_batch *out);
int jobq__sq_set_batch_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud);
int jobq__sq_batch_insert(void *st, const char *batch_id, int max_running,
                          jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                          int *out_dup);
int jobq__sq_retention_prepare(sq_store *s);
void jobq__sq_retention_free(sq_store *s); /* at close */
/* sqlite_quota.c, on the writer: whether one more job of owner and kind
 * (with pending_kind jobs of that kind and pending_all of any kind of the
 * owner checked but not yet inserted) stays within every quota; 0 or
 * JOBQ_EQUOTA with the sentence. */
int jobq__sq_quota_check(sq_store *s, const char *owner, const char *kind, long pending_kind,
                         long pending_all);
/* After the insert of a job that quotas count. */
int jobq__sq_quota_add(sq_store *s, const char *owner, const char *kind);
/* After the insert of a run of k jobs: counts the owned ones. */
int jobq__sq_quota_add_many(sq_store *s, jobq_storage_job *const *jobs, size_t k);

/* sqlite_jobs.c, on the writer: stores job j as insert does (no dedupe
 * look-up, no quota check; quotas count it), with its event row and its
 * webhook subscriptions hooks (NULL: none). */
int jobq__sq_insert_row(sq_store *s, const jobq_storage_job *j, const char *hooks, int64_t now);

/* sqlite_outbox.c: the webhook outbox (schema 10; announcements, 11). */
int jobq__sq_outbox_prepare(sq_store *s);
/* Before a write: each of the n subscriptions (hooks may be NULL, and so
 * may each entry) is the JSON storage.h describes; else JOBQ_EINVAL with a
 * sentence, and nothing is stored. */
int jobq__sq_hooks_check(const char *const *hooks, size_t n);
void jobq__sq_hooks_cache_free(sq_store *s);
/* The deliveries added but not yet written (see sq_store.ob_pend): writes
 * them (0, or a code with tx_doomed set); a mark to drop back to when a
 * request's savepoint is rolled back; all dropped (a rollback). */
int jobq__sq_outbox_flush(sq_store *s);
size_t jobq__sq_outbox_mark(sq_store *s);
void jobq__sq_outbox_drop(sq_store *s, size_t mark);
/* On the writer, in the transaction of the change that ended job in state
 * (JOBQ_SUCCEEDED, _FAILED, _CANCELLED), for a job whose subscriptions are
 * hooks (not NULL): its announcement (a row of jobq_outbox_news, which
 * jobq__sq_outbox_settle turns into its deliveries), and its pending
 * progress deliveries gone. */
int jobq__sq_outbox_end(sq_store *s, const char *job, int state, const char *hooks, int64_t now);
/* On the writer: the pending rows written (jobq__sq_outbox_flush), then
 * every announcement turned into its deliveries, so that what reads
 * jobq_outbox next sees all of them. 0, or a code with the transaction
 * doomed. */
int jobq__sq_outbox_settle(sq_store *s);
/* On the writer, with a checkpoint of stage of a job with hooks. */
/* See sq_store.tx_poison; returns rc. */
static inline int jobq__sq_poison(sq_store *s, int rc) {
  if (rc) s->tx_poison = 1;
  return rc;
}
int jobq__sq_outbox_progress(sq_store *s, const char *job, int stage, const char *hooks,
                             int64_t now);
/* On the writer: *busy = 1 if job has a pending or sending delivery. */
int jobq__sq_outbox_busy(sq_store *s, const char *job, int *busy);
/* On the writer: the deliveries of a job being deleted. */
int jobq__sq_outbox_forget(sq_store *s, const char *job);
/* The vtable's version 4 members. */
int jobq__sq_insert_hooked(void *st, jobq_storage_job *const *jobs, const char *const *webhooks,
                           size_t n, const int *force, int64_t now, int *out_dup,
                           const char *batch_id, int max_running);
int jobq__sq_cron_fire_hooked(void *st, const char *name, int64_t expect_next_at,
                              int64_t new_next_at, jobq_storage_job *const *jobs,
                              const char *const *webhooks, size_t n, int64_t now,
                              size_t *n_inserted);
int jobq__sq_outbox_claim(void *st, const jobq_storage_outbox_claim *req,
                          jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out);
int jobq__sq_outbox_done(void *st, const jobq_storage_outbox_result *r, size_t n, int *applied);
int jobq__sq_outbox_list(void *st, const jobq_storage_outbox_filter *f,
                         jobq_storage_delivery **out, size_t *n_out, int *more);
int jobq__sq_outbox_counts(void *st, int64_t counts[4]);
int jobq__sq_outbox_redeliver(void *st, const char *id, int64_t now);
int jobq__sq_webhook_enable(void *st, const char *url);

/* sqlite.c: a read connection, locked; unlock its mu when done. */
sq_reader *jobq__sq_reader(sq_store *s);
int jobq__sq_rate_prepare(sq_store *s);
/* sqlite_rate.c, on the writer inside a claim: a kind's window as the
 * claim found it. */
typedef struct sq_rate {
  int64_t used;   /* starts in the window */
  int64_t oldest; /* the oldest start still remembered, INT64_MAX: none */
  int dirty;      /* jobq_rate must be written */
} sq_rate;
/* Sets *room to the starts left in r's window at now (>= 0): exact when
 * fewer than want are left, else at least want (the starts that left the
 * window are forgotten when that matters, or once in a while). */
int jobq__sq_rate_room(sq_store *s, const jobq_storage_rate *r, int64_t now, int64_t want,
                       sq_rate *w, int64_t *room);
/* Records taken starts (>= 0) at now, after jobq__sq_rate_room. */
int jobq__sq_rate_take(sq_store *s, const jobq_storage_rate *r, int64_t now, sq_rate *w,
                       int64_t taken);
/* finish's JOBQ_OUTCOME_DEFER (out_state as finish's). */
int jobq__sq_defer(sq_store *s, const jobq_storage_finish *f, int *out_state);
/* *out: whether kind has a due job. */
int jobq__sq_rate_due(sq_store *s, const char *kind, int *out);

/* The vtable's write members. */
int jobq__sq_set_quotas(void *st, const jobq_storage_quota *q, size_t n);
int jobq__sq_insert(void *st, jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                    int *out_dup);
int jobq__sq_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out, size_t *n_out);
int jobq__sq_finish(void *st, const jobq_storage_finish *f, size_t n, int *out_state);
int jobq__sq_finish_async(void *st, const jobq_storage_finish *f, size_t n,
                          void (*done)(void *ud, int rc, const int *out_state), void *ud);
int jobq__sq_progress(void *st, const char *id, int attempt, int percent, const char *step);
int jobq__sq_cancel(void *st, const char *id, int64_t now, int *out_state, char **out_kind);
int jobq__sq_heartbeat(void *st, jobq_storage_lease *l, size_t n, int64_t lease_until);
int jobq__sq_rescue(void *st, int64_t now, size_t *n_out);
int jobq__sq_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                        int progress, const char *step);
int jobq__sq_prune(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
                   size_t *n_out);
/* sqlite_cron.c: the schedules (cron_list reads on a read connection) */
int jobq__sq_cron_put(void *st, const jobq_storage_cron *c);
int jobq__sq_cron_del(void *st, const char *name);
int jobq__sq_cron_list(void *st, jobq_storage_cron **out, size_t *n);
int jobq__sq_cron_fire(void *st, const char *name, int64_t expect_next_at, int64_t new_next_at,
                       jobq_storage_job *const *jobs, size_t n, int64_t now, size_t *n_inserted);
int jobq__sq_prune_kind(void *st, jobq_storage_prune *req, char (**out_ids)[JOBQ_ID_SIZE],
                        size_t *n_out);

/* sqlite_jobs.c: why an update of a running attempt matched no row:
 * *out_state JOBQ_ENOTFOUND (no such job) or JOBQ_ESTATE (not that
 * attempt, or not running). */
int jobq__sq_finish_miss(sq_store *s, const char *id, int *out_state);

/* sqlite_lease.c: the jobs this store claimed (sq_store.claimed) and its
 * row in jobq_leases. */
int jobq__sq_remember_claim(sq_store *s, const char *id, int64_t seq, const char *kind,
                            const char *hooks, int64_t until);
void jobq__sq_forget_claim(sq_store *s, const char *id);
void jobq__sq_forget_claims(sq_store *s); /* all of them, and the liveness lock, at close */
/* For a store opened by jobq_open (a live process that heartbeats): takes
 * this process's liveness lock and turns on the rescue rule for live
 * owners. A store used through the bare vtable rescues by lease alone. */
void jobq__sq_guard_leases(void *st);
int jobq__sq_lease_row(sq_store *s);      /* before a commit that changed leases */

/* sqlite_events.c: events shared between processes */
void jobq__sq_event_row(sq_store *s, int type, int state, const char *id, const char *kind,
                        int progress, const char *step, int attempt, const char *error,
                        const char *result);
/* Writes an event row for other processes' listeners, when there are any
 * (news, not state: a row that cannot be written is skipped). Nobody
 * listening costs one test. */
static inline void jobq__sq_event(sq_store *s, int type, int state, const char *id,
                                  const char *kind, int progress, const char *step, int attempt,
                                  const char *error, const char *result) {
  if (s->share)
    jobq__sq_event_row(s, type, state, id, kind, progress, step, attempt, error, result);
}
void jobq__sq_check_listeners(sq_store *s); /* once per transaction */
void jobq__sq_prune_events(sq_store *s);
int jobq__sq_listen(sq_store *s, int on, int wait);

/* sqlite_ckpt.c: takes conn (a read-write connection, closed on failure);
 * -1 if the thread cannot start (then SQLite checkpoints as usual). */
int jobq__sq_ckpt_start(sq_store *s, sqlite3 *conn);
void jobq__sq_ckpt_stop(sq_store *s);

/* sqlite_fork.c: fork(). jobq__sq_fork_check (also registers the fork
 * handlers, once) refuses a file that the parent had open when it forked;
 * track/untrack keep the list of this process's files. */
int jobq__sq_fork_check(const char *path);
void jobq__sq_fork_track(const sq_store *s);
void jobq__sq_fork_untrack(const sq_store *s);

/* sqlite_watch.c */
int jobq__sq_set_notify(void *st, void (*fn)(void *ud), void *ud);
int jobq__sq_set_event_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud);

#endif
