/* The PostgreSQL backend's private structures (lib/postgres/pg*.c). */
#ifndef JOBQ_POSTGRES_PG_INT_H
#define JOBQ_POSTGRES_PG_INT_H

#include "jobq/storage.h"

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

/* Stored job states are the public ones (JOBQ_QUEUED ... JOBQ_CANCELLED):
 * a queued job waits in the claim index whatever its run_at, and the claim
 * reads run_at <= now (docs/postgres.md says why one state, not SQLite's
 * due/scheduled pair). */
#define PG_SCHEMA_VERSION 7
#define PG_POOL_MAX 64

/* The columns every job read returns, in jobq__pg_row_to_job's order. */
#define PG_JOB_COLS                                                                          \
  "seq, id, kind, state, priority, run_at, attempts, max_attempts, progress, cancel_req, "  \
  "created_at, started_at, finished_at, owner, payload, step, result, error, dedupe_key, " \
  "dedupe_ttl, attempt_log::text"

/* One connection of the pool. */
#define PG_PREP_MAX 32
typedef struct pg_conn {
  PGconn *c;
  int busy;            /* lent to a caller */
  /* the statements prepared on c (jobq__pg_exec_prep): hashes of their
   * texts; emptied whenever c is replaced. Only its borrower touches it. */
  uint64_t prep[PG_PREP_MAX];
  int n_prep;
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
  /* shared events (pg_events.c) */
  int64_t token;       /* this store's origin in jobq_events, made at open */
  void (*ev_sink)(void *ud, const jobq_storage_event *ev);
  void *ev_ud;
  int ev_on;           /* the events thread runs */
  int ev_wake[2];      /* a pipe: stops the events thread */
  uv_thread_t ev_thread;
  PGconn *ev_start_conn; /* handed from set_event_sink to the thread */
  int64_t ev_start_tx;
  int ev_listened;     /* jobq__pg_listened's answer (under mu) ... */
  int64_t ev_checked;  /* ... and when it was read (monotonic ms) */
  /* cron, shared stats, retention by kind (pg_cron.c, pg_stats.c,
   * pg_retention.c); under mu */
  int64_t stats_token;           /* this store's mark on its live stats rows; 0: not drawn yet */
  struct pg_ret_cursor *ret;     /* per kind: where the retention pass under way is */
  size_t n_ret;
  /* batches, quotas (pg_batch.c, pg_quota.c): set once, right after open */
  void (*batch_sink)(void *ud, const jobq_storage_event *ev);
  void *batch_sink_ud;
  jobq_storage_quota *quotas; /* kinds strdup'ed */
  size_t n_quotas;
  /* leader duties (pg_leader.c) */
  uv_mutex_t lmu;
  PGconn *leader_c;    /* holds the schema's leader lock while leader */
  int leader;
  int64_t leader_next; /* monotonic ms of the next try to become leader */
  /* the lease of the latest claim: a heartbeat adds a wait longer than
   * half of it (pg_claim.c) */
  _Atomic int64_t lease_ms;
  /* what this store asked of the server, for the benchmarks
   * (JOBQ_PG_COUNTS, pg.c): claims, claims that found nothing, jobs
   * claimed, batch fills, next-due reads, finish groups */
  _Atomic uint64_t n_claims, n_empty, n_claimed, n_fills, n_next, n_finishes;
} pg_store;

/* pg.c */
/* Migration i (i -> i+1), or NULL past the last: for tests that build an
 * older schema. */
const char *jobq__pg_migration(int i);
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
/* jobq__pg_exec for the hot statements (claims, finishes, heartbeats, the
 * batch fill, the next due time) on a pooled connection outside a
 * transaction: the statement is prepared once per connection, under a name
 * made from its text's hash, and then only bound and run, so the server
 * parses, analyses and plans it once instead of at every call (their CTEs
 * made that a fifth of the server's time per job). Where a statement
 * cannot be prepared or is missing on the server connection (a
 * transaction-mode pooler that does not carry prepared statements), it
 * runs as jobq__pg_exec does: never an error of its own. */
int jobq__pg_exec_prep(pg_store *s, PGconn *c, const char *sql, int n,
                       const char *const *params, const char *what, PGresult **out);
/* Prepares sql on c now if jobq__pg_exec_prep would (c pooled, outside a
 * transaction) and it is not prepared yet: 1 if it did, else 0 (already
 * prepared, not preparable: the exec will say). */
int jobq__pg_prepare(pg_store *s, PGconn *c, const char *sql, int n);
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
/* insert, or with batch_id set batch_insert (the jobs join the batch in
 * the same transaction); quotas counted when set. */
int jobq__pg_insert_in(pg_store *s, jobq_storage_job *const *jobs, const char *const *hooks,
                       size_t n, const int *force, int64_t now, int *out_dup, const char *batch_id,
                       int max_running);
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
/* pg_outbox.c: the webhook outbox (storage version 4) */
int jobq__pg_insert_hooked(void *st, jobq_storage_job *const *jobs, const char *const *webhooks,
                           size_t n, const int *force, int64_t now, int *out_dup,
                           const char *batch_id, int max_running);
int jobq__pg_outbox_claim(void *st, const jobq_storage_outbox_claim *req,
                          jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out);
int jobq__pg_outbox_done(void *st, const jobq_storage_outbox_result *r, size_t n, int *applied);
int jobq__pg_outbox_list(void *st, const jobq_storage_outbox_filter *f,
                         jobq_storage_delivery **out, size_t *n_out, int *more);
int jobq__pg_outbox_counts(void *st, int64_t counts[4]);
int jobq__pg_outbox_redeliver(void *st, const char *id, int64_t now);
int jobq__pg_webhook_enable(void *st, const char *url);
/* JOBQ_EINVAL with a sentence when hooks[i] (NULL: none) is not a
 * webhooks array (storage.h); hooks may be NULL. */
int jobq__pg_hooks_check(const char *const *hooks, size_t n);

/* The deliveries a job's end adds (storage.h, version 4), as two CTEs of
 * the statement that ends it, so that they commit with the end or not at
 * all: U names a CTE of the ended rows with columns id, state (the new
 * one), webhooks and ob_now (the change's time). Rows that are not ends
 * (queued again, running) and jobs without webhooks add nothing and cost
 * nothing more than the filter. The deliveries' ids are made of the job
 * id, so an end applied twice adds nothing twice (ON CONFLICT). A job's
 * end also drops its progress deliveries still pending. */
#define PG_OUTBOX_END_CTES(U)                                                                    "ob_add AS (INSERT INTO jobq_outbox (id, job_id, endpoint, url, hook, event, flags, "          "created_at, next_at, updated_at) SELECT " U ".id || ':' || (h.o - 1) || ':' || "               "(ARRAY['succeeded', 'failed', 'cancelled'])[" U ".state - 1], " U ".id, h.v->>'e', "          "h.v->>'u', h.o - 1, " U ".state + 3, CASE WHEN h.v->>'p' = '1' THEN 1 ELSE 0 END, "           U ".ob_now, " U ".ob_now, " U ".ob_now FROM " U ", LATERAL jsonb_array_elements("              "CASE WHEN jsonb_typeof(" U ".webhooks::jsonb) = 'array' THEN " U ".webhooks::jsonb "          "ELSE '[]'::jsonb END) WITH ORDINALITY AS h(v, o) WHERE " U ".webhooks IS NOT NULL AND "       U ".state IN (2, 3, 4) AND h.v ? 'e' AND (coalesce((h.v->>'on')::int, 0) & "                   "(1 << (" U ".state - 2))) <> 0 ON CONFLICT (id) DO NOTHING), "                                "ob_drop AS (DELETE FROM jobq_outbox o USING " U " WHERE " U ".webhooks IS NOT NULL AND "      U ".state IN (2, 3, 4) AND o.job_id = " U ".id AND o.event = 3 AND o.state = 0) "

/* pg_events.c: events shared between processes (set_event_sink) */
int jobq__pg_set_event_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud);
void jobq__pg_events_stop(pg_store *s); /* at close */
/* Whether another store may listen for events (1: use the statements'
 * PG_EV_ON texts, whose exact guard decides). Read with c at most once a
 * second and kept: where nobody listens, a statement carries no event
 * part at all. A listener that just began may so miss up to a second of
 * a writer's events (as on SQLite). */
int jobq__pg_listened(pg_store *s, PGconn *c);
/* A token for this store (a random positive number). */
int64_t jobq__pg_new_token(pg_store *s);

/* Shared events, the writers' side: a statement that changes jobs also
 * writes one row per change into jobq_events, in the same statement, when
 * another store listens (a live row of jobq_listeners other than its own
 * token TOK), and then wakes the listeners with one NOTIFY on the channel
 * CH || '_ev' per statement (so a group commit of many finishes takes
 * NOTIFY's commit lock once, and a process nobody listens to never takes
 * it for events). The statement names its CTE "ev" (RETURNING 1) and
 * references "evn" in its final SELECT, which makes it run. */
#define PG_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::int8"
#define PG_EV_INSERT                                                                          \
  "ev AS (INSERT INTO jobq_events (origin, job_id, kind, type, state, progress, step, "      \
  "attempt, error, result, time) "
#define PG_EV_LISTENED(TOK) \
  "EXISTS (SELECT 1 FROM jobq_listeners WHERE token <> " TOK " AND until > " PG_NOW_MS ")"
#define PG_EV_END(TOK, CH) \
  " AND " PG_EV_LISTENED(TOK) " RETURNING 1), evn AS (SELECT pg_notify(" CH " || '_ev', '') FROM ev LIMIT 1) "
/* A FROM item for the statements that can end a batch's member (finish,
 * cancel, rescue): it puts the store's token TOK in the transaction-local
 * setting jobq.origin, where the trigger that sees a batch end reads the
 * origin of its BATCH_DONE event row (migration slot 5, pg.c). A function
 * in FROM runs once, before any row is updated, and AFTER triggers fire at
 * the statement's end. */
#define PG_ORIGIN_FROM(TOK) ", set_config('jobq.origin', " TOK "::text, true) AS og "
/* A statement comes in two texts, made by one macro STMT(EV): with
 * STMT(PG_EV_ON) it writes the events whose rows SEL selects (SEL ends in
 * a WHERE clause, which PG_EV_END extends); with STMT(PG_EV_OFF) it writes
 * none and still names its parameters TOK and CH, so that both texts take
 * the same ones. The writer picks the text by jobq__pg_listened. */
#define PG_EV_ON(SEL, TOK, CH) PG_EV_INSERT SEL PG_EV_END(TOK, CH)
#define PG_EV_OFF(SEL, TOK, CH) "evn AS (SELECT " TOK ", " CH "::text WHERE false) "
/* pg_cron.c, pg_stats.c, pg_retention.c */
int jobq__pg_cron_put(void *st, const jobq_storage_cron *c);
int jobq__pg_cron_del(void *st, const char *name);
int jobq__pg_cron_list(void *st, jobq_storage_cron **out, size_t *n_out);
int jobq__pg_cron_fire(void *st, const char *name, int64_t expect_next_at, int64_t new_next_at,
                       jobq_storage_job *const *jobs, size_t n, int64_t now, size_t *n_inserted);
int jobq__pg_cron_fire_hooked(void *st, const char *name, int64_t expect_next_at,
                              int64_t new_next_at, jobq_storage_job *const *jobs,
                              const char *const *webhooks, size_t n, int64_t now,
                              size_t *n_inserted);
int jobq__pg_stats_add(void *st, const jobq_storage_stats_delta *d, size_t n, int64_t now);
int jobq__pg_stats_read(void *st, const char *kind, int depth, int64_t now,
                        jobq_storage_kind_stats **out, size_t *n_out);
int jobq__pg_prune_kind(void *st, jobq_storage_prune *req, char (**out_ids)[JOBQ_ID_SIZE],
                        size_t *n_out);
void jobq__pg_retention_free(pg_store *s); /* at close: the cursors */
/* pg_batch.c: batches. A member of a capped batch waits in state 6 (held)
 * until a claim's jobq_batch_fill() gives it a place; a trigger counts the
 * end of each member in the ending change's transaction. */
#define PG_HELD 6
int jobq__pg_batch_insert(void *st, const char *batch_id, int max_running,
                          jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                          int *out_dup);
/* The same where job i has the webhook subscriptions hooks[i] (hooks
 * NULL: none has any), checked by the caller. */
int jobq__pg_batch_insert_hooked(pg_store *s, const char *batch_id, int max_running,
                                 jobq_storage_job *const *jobs, const char *const *hooks, size_t n,
                                 const int *force, int64_t now, int *out_dup);
int jobq__pg_batch_get(void *st, const char *batch_id, jobq_storage_batch *out);
int jobq__pg_set_batch_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud);
/* Inside an insert's transaction: the stored jobs (not dup) join batch_id. */
int jobq__pg_batch_members(pg_store *s, PGconn *c, const char *batch_id, int max_running,
                           jobq_storage_job *const *jobs, size_t n, const int *dup, int64_t now);
/* Before a claim (its own transaction): held members get the places their
 * batches have free. */
int jobq__pg_batch_fill(pg_store *s, PGconn *c, int64_t now);
/* After a change committed that ended the jobs ids (a text[] literal) which
 * belong to a batch: the batches that change finished go to the sink. Takes
 * a connection of its own: call it with none held (a sink may call into
 * the store). */
void jobq__pg_batch_tell(pg_store *s, const char *ids);
/* The summary JSON of a BATCH_DONE event (storage.h, batch_insert) of the
 * batch batch_id, read on c; NULL when it cannot be made. For the shared
 * events' readers, whose BATCH_DONE rows carry none. */
char *jobq__pg_batch_summary(PGconn *c, const char *batch_id);

/* pg_quota.c: per-owner quotas, counted inside the insert's transaction
 * under an advisory lock per owner. */
int jobq__pg_set_quotas(void *st, const jobq_storage_quota *quotas, size_t n);
void jobq__pg_quotas_free(pg_store *s);
int jobq__pg_quota_applies(const pg_store *s, jobq_storage_job *const *jobs, size_t n);
int jobq__pg_quota_lock(pg_store *s, PGconn *c, jobq_storage_job *const *jobs, size_t n);
int jobq__pg_quota_check(pg_store *s, PGconn *c, jobq_storage_job *const *jobs, size_t n,
                         const int *dup);

/* pg_rate.c: rate limits, a log of starts per kind counted inside the
 * claim's transaction under an advisory lock per kind. */
typedef struct pg_rates {
  size_t n;                    /* rated kinds this claim may take */
  const jobq_storage_rate **r; /* their limits */
  int64_t *room, *used, *oldest;
  char *kinds;                 /* text[] literal of their kinds */
} pg_rates;
int jobq__pg_rate_window(void *st, const char *kind, int64_t interval_ms, int64_t now,
                         int64_t *out_used);
/* BEGIN, the locks of the rated kinds and the room of each (*rs filled). */
int jobq__pg_rate_begin(pg_store *s, PGconn *c, const jobq_storage_claim *req, int64_t now,
                        pg_rates *rs);
/* Records what the claim (result r) took, computes rate_next, COMMITs. */
int jobq__pg_rate_end(pg_store *s, PGconn *c, const jobq_storage_claim *req, int64_t now,
                      pg_rates *rs, PGresult *r);
int64_t jobq__pg_rate_room(const pg_rates *rs, const char *kind); /* -1: not rated */
void jobq__pg_rates_free(pg_rates *rs);

/* Why an update of a running attempt matched no row: *out_state
 * JOBQ_ENOTFOUND or JOBQ_ESTATE. */
int jobq__pg_miss(pg_store *s, PGconn *c, const char *id, int *out_state);

#endif
