/* The SQLite backend's writer: one thread at a time owns the write
 * connection and commits in groups. Every insert, claim, finish, progress,
 * cancel, heartbeat and rescue that arrived while the previous transaction
 * ran goes into the next one; a request that writes several rows runs
 * inside its own savepoint, so one request's failure rolls back only that
 * request. Callers wait until the transaction carrying their request
 * committed: a returned submit is durable. With synchronous=FULL, many
 * submitters thus share one fsync, which is how durable throughput goes far
 * past the disk's fsync rate.
 *
 * This file knows requests only by their header (sq_req) and operation
 * (sq_op); the operations and their statements are in sqlite_jobs.c,
 * sqlite_claim.c, sqlite_finish.c, sqlite_lease.c and sqlite_events.c. */
#include "storage/sqlite_int.h"
#include "util/err.h"
#include "util/mutex.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const sql[WS_COUNT] = {
  [WS_BEGIN] = "BEGIN IMMEDIATE",
  [WS_COMMIT] = "COMMIT",
  [WS_ROLLBACK] = "ROLLBACK",
  [WS_SAVEPOINT] = "SAVEPOINT r",
  [WS_RELEASE] = "RELEASE r",
  [WS_ROLLBACK_TO] = "ROLLBACK TO r",
};

int jobq__sq_prepare(sq_store *s, const char *const stmts[WS_COUNT]) {
  for (int i = 0; i < WS_COUNT; i++) {
    if (stmts[i] == NULL) continue;
    int rc = sqlite3_prepare_v3(s->w, stmts[i], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i], NULL);
    if (rc != SQLITE_OK) return jobq__sq_error(s->w, rc, "cannot prepare a statement", s->path);
  }
  return 0;
}

int jobq__sq_prepare_writer(sq_store *s) {
  int rc;
  if ((rc = jobq__sq_prepare(s, sql)) || (rc = jobq__sq_jobs_prepare(s)) ||
      (rc = jobq__sq_claim_prepare(s)) || (rc = jobq__sq_finish_prepare(s)) ||
      (rc = jobq__sq_lease_prepare(s)) || (rc = jobq__sq_events_prepare(s)) ||
      (rc = jobq__sq_quota_prepare(s)) || (rc = jobq__sq_cron_prepare(s)) ||
      (rc = jobq__sq_rate_prepare(s)) || (rc = jobq__sq_stats_prepare(s)) ||
      (rc = jobq__sq_batch_prepare(s)) ||
      (rc = jobq__sq_retention_prepare(s)) || (rc = jobq__sq_outbox_prepare(s)))
    return rc;
  /* A statement that no file prepares would crash its first use. */
  for (int i = 0; i < WS_COUNT; i++)
    if (s->ws[i] == NULL)
      return jobq__err(JOBQ_ESTORAGE, "sqlite storage: write statement %d is not prepared", i);
  return 0;
}

static void fail_all(sq_store *s, sq_req *batch, int rc) {
  const char *msg = jobq_last_error();
  jobq__sq_bnotice_drop(s, 0); /* nothing of it happened */
  jobq__sq_outbox_drop(s, 0);
  for (sq_req *r = batch; r; r = r->next) {
    if (r->rc >= 0) {
      if (r->op->undo) r->op->undo(s, r);
      r->rc = rc;
      snprintf(r->err, sizeof r->err, "%s", msg);
    }
  }
}

/* Rolls back what is left of the transaction (ROLLBACK, or ROLLBACK TO the
 * request's savepoint) and keeps the sentence of the error that made it
 * necessary: that is what the callers need to read, not a complaint about
 * the rollback. After some errors, a full disk among them, SQLite has
 * already rolled back the whole transaction; there is then nothing left to
 * roll back (ROLLBACK would only say "no transaction is active"). */
static void roll_back(sq_store *s, int which) {
  if (sqlite3_get_autocommit(s->w)) return;
  char cause[sizeof ((sq_req *)0)->err];
  snprintf(cause, sizeof cause, "%s", jobq_last_error());
  jobq__sq_run(s, s->ws[which], "cannot roll back");
  jobq__set_detail(cause);
}

static void exec_batch(sq_store *s, sq_req *batch) {
  int rc = jobq__sq_run(s, s->ws[WS_BEGIN], "cannot begin a transaction");
  if (rc) {
    fail_all(s, batch, rc);
    return;
  }
  jobq__sq_check_listeners(s);
  s->tx_poison = 0;
  s->tx_doomed = 0;
  jobq__sq_outbox_drop(s, 0);
  for (sq_req *r = batch; r; r = r->next) {
    r->rc = 0;
    r->err[0] = '\0';
    if (r->savepoint && (rc = jobq__sq_run(s, s->ws[WS_SAVEPOINT], "cannot make a savepoint"))) {
      r->rc = rc;
      snprintf(r->err, sizeof r->err, "%s", jobq_last_error());
      continue;
    }
    jobq__set_detail("");
    size_t mark = jobq__sq_bnotice_mark(s);
    size_t ob_mark = jobq__sq_outbox_mark(s);
    r->rc = r->op->run(s, r);
    if (r->rc < 0) {
      jobq__sq_bnotice_drop(s, mark);
      snprintf(r->err, sizeof r->err, "%s", jobq_last_error());
      if (r->op->undo) r->op->undo(s, r);
      if (s->tx_doomed && !sqlite3_get_autocommit(s->w)) {
        /* Earlier requests' job ends are written without the deliveries
         * they added: none of it may commit. */
        roll_back(s, WS_ROLLBACK);
      }
      if (s->tx_poison && !r->savepoint && !sqlite3_get_autocommit(s->w)) {
        /* Part of a change that must be whole is written and there is no
         * savepoint to undo just it (a job's end without its webhook
         * deliveries would lose the announcement): nothing of the
         * transaction is kept; every request in it fails and is tried
         * again by its caller. */
        roll_back(s, WS_ROLLBACK);
      }
      if (sqlite3_get_autocommit(s->w)) {
        /* SQLite rolled back the whole transaction (a full disk, an I/O
         * error): the requests before this one are gone with it, and the
         * ones after it would run outside a transaction. All of them fail
         * with this request's cause. */
        jobq__set_detail(r->err);
        fail_all(s, batch, r->rc);
        s->lease_unsure = 1;
        return;
      }
      if (r->savepoint) {
        roll_back(s, WS_ROLLBACK_TO);
        jobq__sq_outbox_drop(s, ob_mark); /* its deliveries went with it */
      }
    }
    if (r->savepoint) jobq__sq_run(s, s->ws[WS_RELEASE], "cannot release a savepoint");
  }
  rc = jobq__sq_outbox_flush(s); /* the deliveries the job ends added */
  if (rc == 0) rc = s->lease_dirty || s->lease_unsure ? jobq__sq_lease_row(s) : 0;
  if (rc == 0) rc = jobq__sq_run(s, s->ws[WS_COMMIT], "cannot commit");
  if (rc) {
    roll_back(s, WS_ROLLBACK);
    fail_all(s, batch, rc);
    /* Finishes in it forgot their jobs, which still run as far as the
     * database knows: the next lease row must not be later than now. */
    s->lease_unsure = 1;
    return;
  }
  s->commits++;
}

/* Group commit, leader/follower style: whoever finds no batch running takes
 * everything queued and runs it as one transaction: a caller waiting for its
 * own request (no thread switch in the common case), or the writer thread for
 * requests nobody waits on (asynchronous finishes). The others queue up
 * meanwhile and go together in the next transaction. One thread at a time
 * uses the write connection. Called and returns with s->mu held. */
static void lead_one(sq_store *s) {
  sq_req *batch = s->head;
  s->head = s->tail = NULL;
  s->queued = 0;
  s->leading = 1;
  uv_mutex_unlock(&s->mu);
  exec_batch(s, batch);
  /* Batches that the transaction ended, before anyone hears that it
   * committed (so a finish that returns has told its batch's end). */
  if (s->bn_head) jobq__sq_bnotice_tell(s);
  /* Asynchronous requests are answered by callback, outside any lock.
   * Each waiting caller is woken alone: a broadcast to everyone waiting
   * woke the callers queued for the next transaction too, only to sleep
   * again, a context switch each per commit. */
  sq_req *async = NULL, **at = &async;
  uv_mutex_lock(&s->mu);
  for (sq_req *r = batch, *n; r; r = n) {
    n = r->next;
    if (r->answer) {
      *at = r;
      at = &r->next;
      r->next = NULL;
    } else {
      r->done = 1;
      uv_cond_signal(r->cv); /* r is the caller's from here on: not touched again */
    }
  }
  s->leading = 0;
  /* Requests that queued meanwhile: a caller waiting for one leads the
   * next transaction at once; with none, the writer thread takes them. */
  sq_req *next = s->head;
  while (next && next->answer) next = next->next;
  if (next) uv_cond_signal(next->cv);
  else if (s->head) uv_cond_signal(&s->cv_req);
  if (async) {
    uv_mutex_unlock(&s->mu);
    for (sq_req *r = async, *n; r; r = n) {
      n = r->next;
      if (r->rc < 0 && r->err[0]) jobq__set_detail(r->err);
      r->answer(r); /* frees r */
    }
    uv_mutex_lock(&s->mu);
  }
}

#define WRITER_GATHER 64
#define WRITER_DELAY_NS 500000u /* 0.5 ms */

static void writer_main(void *arg) {
  sq_store *s = arg;
  uv_mutex_lock(&s->mu);
  for (;;) {
    while ((s->head == NULL || s->leading) && !s->stop) uv_cond_wait(&s->cv_req, &s->mu);
    if (s->head == NULL && s->stop) break;
    if (s->leading) continue;
    /* What reaches this thread is asynchronous (finishes nobody waits for):
     * a short wait lets more of them share one commit, and every commit
     * rewrites whole pages, so fewer, larger ones write far less. A waiting
     * caller can still lead at any moment. */
    uint64_t until = uv_hrtime() + WRITER_DELAY_NS;
    for (;;) {
      uint64_t now = uv_hrtime();
      if (s->stop || s->leading || s->queued >= WRITER_GATHER || now >= until) break;
      uv_cond_timedwait(&s->cv_req, &s->mu, until - now);
    }
    if (s->leading || s->head == NULL) continue;
    lead_one(s);
  }
  uv_mutex_unlock(&s->mu);
}

int jobq__sq_writer_start(sq_store *s) {
  if (jobq__mutex_init(&s->mu) || uv_cond_init(&s->cv_req))
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: cannot create locks");
  if (uv_thread_create(&s->writer, writer_main, s) != 0) {
    uv_cond_destroy(&s->cv_req);
    uv_mutex_destroy(&s->mu);
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: cannot start the writer thread");
  }
  return 0;
}

void jobq__sq_writer_stop(sq_store *s) {
  uv_mutex_lock(&s->mu);
  s->stop = 1;
  uv_cond_signal(&s->cv_req);
  uv_mutex_unlock(&s->mu);
  uv_thread_join(&s->writer);
  uv_cond_destroy(&s->cv_req);
  uv_mutex_destroy(&s->mu);
}

int jobq__sq_submit(sq_store *s, sq_req *r) {
  uv_cond_t cv;
  if (uv_cond_init(&cv) != 0) return jobq__err(JOBQ_ENOMEM, "sqlite storage: cannot create a lock");
  r->next = NULL;
  r->done = 0;
  r->rc = 0;
  r->cv = &cv;
  uv_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = r;
  else s->head = r;
  s->tail = r;
  s->queued++;
  while (!r->done) {
    if (!s->leading && s->head) lead_one(s);
    else uv_cond_wait(&cv, &s->mu);
  }
  uv_mutex_unlock(&s->mu);
  uv_cond_destroy(&cv);
  if (r->rc < 0 && r->err[0]) jobq__set_detail(r->err);
  return r->rc;
}

void jobq__sq_submit_async(sq_store *s, sq_req *r) {
  r->next = NULL;
  r->cv = NULL;
  uv_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = r;
  else s->head = r;
  s->tail = r;
  /* Wake the writer when it has something new to wait for: the first
   * request (it sleeps without a deadline) or a full group (it sleeps until
   * one is full). Waking it for every request cost a context switch each. */
  if (++s->queued == 1 || s->queued == WRITER_GATHER) uv_cond_signal(&s->cv_req);
  uv_mutex_unlock(&s->mu);
}
