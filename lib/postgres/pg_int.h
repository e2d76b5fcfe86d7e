/* The PostgreSQL backend's private structures (lib/postgres/pg*.c). */
#ifndef JOBQ_POSTGRES_PG_INT_H
#define JOBQ_POSTGRES_PG_INT_H

#include "jobq/storage.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <uv.h>

/* Stored job states are the public ones (JOBQ_QUEUED ... JOBQ_CANCELLED):
 * a queued job waits in the claim index whatever its run_at, and the claim
 * reads run_at <= now (docs/postgres.md says why one state, not SQLite's
 * due/scheduled pair). */
#define PG_SCHEMA_VERSION 1
#define PG_POOL_MAX 64

/* The columns every job read returns, in jobq__pg_row_to_job's order. */
#define PG_JOB_COLS                                                                          \
  "seq, id, kind, state, priority, run_at, attempts, max_attempts, progress, cancel_req, "  \
  "created_at, started_at, finished_at, owner, payload, step, result, error, dedupe_key, " \
  "dedupe_ttl, attempt_log::text"

/* One connection of the pool. */
typedef struct pg_conn {
  PGconn *c;
  int busy;            /* lent to a caller */
} pg_conn;

typedef struct pg_fa_req pg_fa_req;

typedef struct pg_store {
  char *conninfo;      /* the URL less libjobq's parameters, for libpq */
  char *shown;         /* the URL as sentences quote it: no password */
  char *schema;        /* as given (validated: [A-Za-z_][A-Za-z0-9_]*) */
  char *channel;       /* the LISTEN/NOTIFY channel: "jobq_<schema>" */
  int pool;
  /* the pool: pool slots, connected on first use and again after a loss */
  uv_mutex_t mu;
  uv_cond_t cv;
  pg_conn *conns;
  int64_t retry_at;    /* monotonic ms before which no reconnect is tried */
  int backoff_ms;      /* the next pause after a failed connect */
  /* wake-ups (pg_notify.c) */
  uv_mutex_t nmu;
  void (*notify)(void *ud);
  void *notify_ud;
  int watching;
  int wake_fd[2];      /* a pipe: the watcher's poll() wakes on its read end */
  uv_thread_t watcher;
  /* group commit of finish_async (pg_finish_async.c) */
  uv_mutex_t fa_mu;
  uv_cond_t fa_cv;
  pg_fa_req *fa_head, *fa_tail;
  int fa_started, fa_stop;
  uv_thread_t fa_thread;
  /* leader duties (pg_leader.c) */
  uv_mutex_t lmu;
  PGconn *leader_c;    /* holds the schema's leader lock while leader */
  int leader;
  int64_t leader_next; /* monotonic ms of the next try to become leader */
} pg_store;

/* pg.c */
/* A connection for one operation (reconnecting with backoff when the last
 * was lost): 0 and *out, or JOBQ_EIO with the sentence. */
int jobq__pg_acquire(pg_store *s, PGconn **out);
void jobq__pg_release(pg_store *s, PGconn *c);
/* A failed result or connection: JOBQ_EIO when the connection is gone,
 * else a code for the SQLSTATE; the sentence says what failed and quotes
 * PostgreSQL's message. Clears res. */
int jobq__pg_fail(pg_store *s, PGconn *c, PGresult *res, const char *what);
/* Runs sql with text parameters; *out the result (PGRES_COMMAND_OK or
 * TUPLES_OK) or a code as jobq__pg_fail. out NULL: the result is dropped. */
int jobq__pg_exec(pg_store *s, PGconn *c, const char *sql, int n, const char *const *params,
                  const char *what, PGresult **out);
/* BEGIN / COMMIT / ROLLBACK; rollback ignores failures. */
int jobq__pg_begin(pg_store *s, PGconn *c);
int jobq__pg_commit(pg_store *s, PGconn *c);
void jobq__pg_rollback(PGconn *c);
/* Connects (search_path set to the schema) and, with migrate, applies the
 * migrations: *out the connection, or a code. */
int jobq__pg_connect(pg_store *s, int migrate, PGconn **out);
/* Fills out from row r of res (PG_JOB_COLS); -1 on out of memory. */
int jobq__pg_row_to_job(PGresult *res, int r, jobq_storage_job *out, int64_t *seq);
int64_t jobq__pg_int(PGresult *res, int r, int c); /* 0 for NULL */
char *jobq__pg_text(PGresult *res, int r, int c);  /* malloc'ed, NULL for NULL */

/* Array literals for text[] / int8[] parameters ({"a",NULL,...}): 0, or
 * JOBQ_ENOMEM. *out malloc'ed. */
int jobq__pg_arr_text(const char *const *v, size_t n, char **out);
int jobq__pg_arr_i64(const int64_t *v, size_t n, char **out);

/* Decimal text of v in buf (at least 24 bytes); returns buf. */
const char *jobq__pg_i64(char *buf, int64_t v);

/* pg_leader.c: 1 when this store holds its schema's leader lock (a
 * session-level pg_try_advisory_lock on a connection of its own, tried
 * again at most once a second while another store holds it), else 0.
 * Duties one process does for all (rescue; cron evaluation and retention)
 * run only where it answers 1. A dead leader's lock goes with its
 * connection, so another store takes over at its next try. Leadership is
 * an economy, not a guarantee of exclusion: for a moment after a leader's
 * connection dies, two stores may both believe they lead, so every duty
 * must stay safe when run twice (row locks, compare-and-set). Any store
 * that asks may lead, a submit-only queue's too (its maintenance rounds
 * rescue): a duty meant for working queues only checks that as well.
 * Thread-safe. */
int jobq__pg_is_leader(pg_store *s);
void jobq__pg_leader_stop(pg_store *s); /* at close: gives the lock up */

/* pg_jobs.c, pg_claim.c, pg_read.c, pg_notify.c: the vtable's members */
int jobq__pg_insert(void *st, jobq_storage_job *const *jobs, size_t n, const int *force,
                    int64_t now, int *out_dup);
int jobq__pg_progress(void *st, const char *id, int attempt, int percent, const char *step);
int jobq__pg_cancel(void *st, const char *id, int64_t now, int *out_state, char **out_kind);
int jobq__pg_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                        int progress, const char *step);
int jobq__pg_prune(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
                   size_t *n_out);
int jobq__pg_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out, size_t *n_out);
int jobq__pg_finish(void *st, const jobq_storage_finish *f, size_t n, int *out_state);
int jobq__pg_finish_async(void *st, const jobq_storage_finish *f, size_t n,
                          void (*done)(void *ud, int rc, const int *out_state), void *ud);
void jobq__pg_finish_async_stop(pg_store *s); /* at close: answers what is queued, then stops */
int jobq__pg_heartbeat(void *st, jobq_storage_lease *l, size_t n, int64_t lease_until);
int jobq__pg_rescue(void *st, int64_t now, size_t *n_out);
int jobq__pg_get(void *st, const char *id, int64_t now, jobq_storage_job *out);
int jobq__pg_get_by_key(void *st, const char *key, int64_t now, jobq_storage_job *out);
int jobq__pg_list(void *st, const jobq_storage_filter *f, jobq_storage_job **out, size_t *n_out,
                  int *more);
int jobq__pg_next_run_at(void *st, const char *const *kinds, size_t n_kinds, int64_t now,
                         int64_t *out);
int jobq__pg_checkpoint_get(void *st, const char *id, int *out_stage, char **out_output);
int jobq__pg_set_notify(void *st, void (*fn)(void *ud), void *ud);
void jobq__pg_notify_stop(pg_store *s); /* at close */
/* Why an update of a running attempt matched no row: *out_state
 * JOBQ_ENOTFOUND or JOBQ_ESTATE. */
int jobq__pg_miss(pg_store *s, PGconn *c, const char *id, int *out_state);

#endif
