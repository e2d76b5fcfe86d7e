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

#define SQ_SCHEMA_VERSION 5
#define SQ_READERS 4

/* The write connection's statements (sq_store.ws), each prepared by the
 * file that uses it. */
enum {
  /* sqlite_writer.c: transactions */
  WS_BEGIN, WS_COMMIT, WS_ROLLBACK, WS_SAVEPOINT, WS_RELEASE, WS_ROLLBACK_TO,
  /* sqlite_jobs.c */
  WS_INSERT, WS_INSERT_MANY, WS_DEDUPE_FIND, WS_FIND, WS_PROGRESS, WS_CHECKPOINT,
  WS_CANCEL_QUEUED, WS_CANCEL_RUNNING, WS_PRUNE_JOBS,
  /* sqlite_quota.c */
  WS_QUOTA_BOUND, WS_QUOTA_BOUND_ALL, WS_QUOTA_ADD, WS_QUOTA_EXACT, WS_QUOTA_CLEAR, WS_QUOTA_SET,
  /* sqlite_claim.c */
  WS_PROMOTE, WS_TOP_KIND, WS_KINDS_DUE, WS_TAKE_READ, WS_TAKE,
  /* sqlite_finish.c */
  WS_FINISH, WS_FINISH_FAST, WS_RELEASE_JOB,
  /* sqlite_lease.c */
  WS_HEARTBEAT, WS_RESCUE, WS_LEASE_SET, WS_LEASE_DROP, WS_LEASES_EXPIRED, WS_LEASE_MINS,
  WS_LEASE_FIX, WS_LEASES_GONE,
  /* sqlite_events.c */
  WS_EVENT, WS_LISTENERS, WS_LISTEN, WS_UNLISTEN, WS_PRUNE_EVENTS,
  /* sqlite_retention.c */
  WS_RET_SCAN, WS_RET_NEWER, WS_RET_DELETE,
  WS_COUNT
};

enum {
  RS_GET, RS_GET_BY_KEY, RS_NEXT_RUN_AT, RS_NEXT_RUN_AT_ANY, RS_CHECKPOINT, RS_EXPIRED,
  /* a queued job's position (sqlite.c), prepared on first use */
  RS_POS_HIGHER, RS_POS_SAME, RS_POS_SCHEDULED, RS_POS_NEXT_BAND, RS_POS_FIRST, RS_POS_LAST,
  RS_COUNT
};

typedef struct sq_reader {
  uv_mutex_t mu;
  sqlite3 *db;
  sqlite3_stmt *st[RS_COUNT];
} sq_reader;

typedef struct sq_store sq_store;

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

  /* the writer: one thread owns the write connection */
  sqlite3 *w;
  sqlite3_stmt *ws[WS_COUNT];
  uv_thread_t writer;
  uv_mutex_t mu;
  uv_cond_t cv_req, cv_done;
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
int jobq__sq_prune_kind(void *st, jobq_storage_prune *req, char (**out_ids)[JOBQ_ID_SIZE],
                        size_t *n_out);

/* sqlite_jobs.c: why an update of a running attempt matched no row:
 * *out_state JOBQ_ENOTFOUND (no such job) or JOBQ_ESTATE (not that
 * attempt, or not running). */
int jobq__sq_finish_miss(sq_store *s, const char *id, int *out_state);

/* sqlite_lease.c: the jobs this store claimed (sq_store.claimed) and its
 * row in jobq_leases. */
int jobq__sq_remember_claim(sq_store *s, const char *id, int64_t seq, const char *kind,
                            int64_t until);
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
