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

#define SQ_SCHEMA_VERSION 4
#define SQ_READERS 4

enum {
  WS_BEGIN, WS_COMMIT, WS_ROLLBACK, WS_SAVEPOINT, WS_RELEASE, WS_ROLLBACK_TO,
  WS_INSERT, WS_DEDUPE_FIND, WS_PROMOTE, WS_TOP_KIND, WS_KINDS_DUE, WS_TAKE,
  WS_FIND, WS_FINISH, WS_RELEASE_JOB, WS_PROGRESS, WS_CANCEL_QUEUED, WS_CANCEL_RUNNING,
  WS_HEARTBEAT, WS_RESCUE, WS_EVENT, WS_LISTENERS, WS_LISTEN, WS_UNLISTEN, WS_PRUNE,
  WS_CHECKPOINT, WS_PRUNE_JOBS, WS_TAKE_READ, WS_FINISH_FAST, WS_INSERT_MANY,
  WS_LEASE_SET, WS_LEASE_DROP, WS_LEASES_EXPIRED, WS_LEASE_MINS, WS_LEASE_FIX,
  WS_LEASES_GONE, WS_COUNT
};

enum { RS_GET, RS_POSITION, RS_NEXT_RUN_AT, RS_NEXT_RUN_AT_ANY, RS_CHECKPOINT, RS_EXPIRED, RS_COUNT };

typedef struct sq_reader {
  uv_mutex_t mu;
  sqlite3 *db;
  sqlite3_stmt *st[RS_COUNT];
} sq_reader;

enum { W_INSERT, W_CLAIM, W_FINISH, W_PROGRESS, W_CANCEL, W_HEARTBEAT, W_RESCUE, W_LISTEN,
       W_CHECKPOINT, W_PRUNE };

/* A write request, queued for the writer thread and answered after the
 * transaction that carried it committed (or failed). */
typedef struct sq_req {
  struct sq_req *next;
  int op;
  /* insert */
  jobq_storage_job *const *jobs;
  size_t n;
  const int *force;
  int64_t now;
  int *out_dup;
  /* claim */
  const jobq_storage_claim *claim;
  jobq_storage_job *out;
  size_t *n_out;
  /* finish */
  const jobq_storage_finish *fin;
  int *out_state;
  /* progress, cancel */
  const char *id;
  int attempt, percent;
  const char *step;
  char **out_kind;
  /* rescue: scan the running jobs even if no owner's lease row expired */
  int force_scan;
  /* checkpoint (with id, attempt, percent, step) */
  int stage;
  const char *output;
  /* prune */
  int64_t before;
  size_t max;
  char (**out_ids)[JOBQ_ID_SIZE];
  size_t *n_ids;
  /* heartbeat, rescue */
  jobq_storage_lease *leases;
  int64_t lease_until;
  size_t *rescued;
  /* asynchronous requests: called instead of waking a waiter, then freed */
  void (*done_cb)(void *ud, int rc, const int *out_state);
  void *done_ud;
  /* answer */
  int rc;
  int done;
  char err[300];
} sq_req;

typedef struct sq_store {
  char *path;
  int power_safe;       /* synchronous=FULL */
  int busy_ms;
  long max_pages;       /* PRAGMA max_page_count on the writer, 0 = SQLite's default */

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
  /* This store's row in jobq_leases (sqlite_write.c): rewritten before the
   * commit of a transaction that claimed or heartbeated (lease_dirty);
   * after a transaction that failed, conservatively (lease_unsure). */
  int lease_dirty, lease_unsure;
  /* when rescue last looked at the running jobs themselves (wall ms) */
  _Atomic int64_t last_scan;

  /* the checkpointer (sqlite_ckpt.c); cdb NULL: SQLite's own checkpoints */
  sqlite3 *cdb;
  uv_thread_t ckpt_thread;
  uv_mutex_t cmu;
  uv_cond_t ccv;
  int ckpt_want, ckpt_stop;

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
} sq_store;

/* A job this store claimed (sq_store.claimed); kind follows the struct. */
typedef struct sq_claimed {
  char id[JOBQ_ID_SIZE];
  int64_t seq;
  int64_t until; /* its lease, as last stored */
  char kind[];
} sq_claimed;

/* sqlite.c */
int jobq__sq_error(sqlite3 *db, int rc, const char *what, const char *path);
int jobq__sq_exec(sqlite3 *db, const char *sql, const char *what, const char *path);

/* sqlite_write.c */
int jobq__sq_writer_start(sq_store *s);
void jobq__sq_writer_stop(sq_store *s);
int jobq__sq_prepare_writer(sq_store *s);
int jobq__sq_submit(sq_store *s, sq_req *r);
void jobq__sq_forget_claims(sq_store *s);

/* sqlite.c: 1 in *out if some running job's lease ended before now
 * (a table scan, on a read connection: writers do not wait for it). */
int jobq__sq_any_expired(sq_store *s, int64_t now, int *out);

/* sqlite_ckpt.c: takes conn (a read-write connection, closed on failure);
 * -1 if the thread cannot start (then SQLite checkpoints as usual). */
int jobq__sq_ckpt_start(sq_store *s, sqlite3 *conn);
void jobq__sq_ckpt_stop(sq_store *s);

/* sqlite_watch.c */
int jobq__sq_set_notify(void *st, void (*fn)(void *ud), void *ud);
int jobq__sq_set_event_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud);
int jobq__sq_listen(sq_store *s, int on, int wait); /* sqlite_write.c */
int jobq__sq_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                        int progress, const char *step);
int jobq__sq_prune(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
                   size_t *n_out);
int64_t jobq__sq_wall_ms(void);

#endif
