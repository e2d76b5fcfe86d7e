/* Checkpoints off the write path.
 *
 * In WAL mode every commit appends the pages it changed to the -wal file;
 * a checkpoint copies them back into the database file and syncs it. Left
 * to SQLite, the connection that commits past 1,000 WAL frames runs that
 * checkpoint itself: the writer, inside some caller's submit, for several
 * milliseconds of reads, writes and fsyncs while every other request
 * waits. Here a thread of its own, with its own connection, runs PASSIVE
 * checkpoints instead (they never block the writer, nor wait for it), woken
 * by the writer's WAL hook.
 *
 * A passive checkpoint cannot finish while commits keep arriving, and the
 * WAL only starts over from its beginning once a checkpoint has copied all
 * of it; so under a load that never pauses the writer still checkpoints
 * itself once the WAL passes CKPT_HARD frames. By then the thread has
 * copied nearly everything, so that one is short, and it keeps the -wal
 * file near 16 MB. SQLite lets one connection checkpoint at a time, and a
 * checkpoint that finds the lock taken gives up at once (no busy handler
 * for it): on a loaded machine the thread, descheduled in the middle of its
 * checkpoint, can hold the lock while the WAL grows past any bound. Past
 * CKPT_LIMIT frames the writer therefore waits for the thread's checkpoint
 * to end, keeps the thread out, and runs a RESTART checkpoint (which waits,
 * through busy_timeout, for readers of old frames), so the WAL starts over:
 * about 20 MB whatever the load in this process.
 *
 * Other processes' checkpoints hold the same lock and cannot be waited for
 * this way, and with several writing processes one of them holds it nearly
 * all the time: the RESTART is tried again until it gets the lock (see
 * restart()), for up to busy_timeout. Once it has it, SQLite waits, up to
 * busy_timeout, for the other processes' write and for readers of old
 * frames. The bound this gives (measured by tests/bench/wal_bench.c, two
 * writing processes and a reader): about 5,100 frames, a -wal file of
 * 21 MB at most. Beyond it the WAL grows only while one read transaction
 * lasts (frames a reader may still read can be neither copied past nor
 * overwritten; our own reads are single statements, reset at once) or a
 * RESTART gave up after busy_timeout, which is then tried again 1,000
 * frames later rather than at every commit. After such a peak the first
 * commit past the reset cuts the file back to CKPT_LIMIT frames
 * (journal_size_limit, limit_file()).  */
#include "storage/sqlite_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util/mutex.h"

#define CKPT_SOFT 1000 /* frames in the WAL: wake the checkpointer */
#define CKPT_HARD 4000 /* frames: the writer checkpoints itself (~16 MB) */
#define CKPT_LIMIT 5000 /* frames: the writer waits for a restart (~20 MB) */
#define WAL_HDR 32       /* bytes: the -wal file's header */
#define WAL_FRAME_HDR 24 /* bytes before each page in the -wal file */

/* A RESTART checkpoint, tried again while another connection's checkpoint
 * holds SQLite's checkpoint lock, for up to busy_timeout. SQLite itself
 * gives up on that lock at once (it has no busy handler for it), and with
 * several writing processes somebody's checkpoint nearly always holds it:
 * measured with two worker processes and a reader, 97-99 % of single
 * RESTART attempts failed that way and the WAL reached 94-176 MB.
 * What the RESTART waits for once it has the lock (the write lock, then
 * readers of old frames) is SQLite's busy handler's business, bounded by
 * busy_timeout too. Returns SQLite's code. */
static int restart(sq_store *s, sqlite3 *db, const char *name) {
  uint64_t deadline = uv_hrtime() + (uint64_t)s->busy_ms * 1000000u;
  long nap_ns = 50000;
  for (;;) {
    int log = -1, copied = -1;
    int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, &log, &copied);
    /* log stays -1 only when the checkpoint lock was taken. */
    if (rc != SQLITE_BUSY || log >= 0 || uv_hrtime() >= deadline) return rc;
    struct timespec ts = {0, nap_ns};
    nanosleep(&ts, NULL);
    if (nap_ns < 1000000) nap_ns *= 2;
  }
}

/* After each commit of the write connection, outside its write lock. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
  sq_store *s = ud;
  if (frames < CKPT_LIMIT) s->restart_at = CKPT_LIMIT;
  if (frames >= CKPT_HARD) {
    int log = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (frames >= s->restart_at && (rc != SQLITE_OK || copied < log)) {
      uv_mutex_lock(&s->cmu);
      s->ckpt_hold = 1;
      while (s->ckpt_busy) uv_cond_wait(&s->cdone, &s->cmu);
      uv_mutex_unlock(&s->cmu);
      /* A reader that outlasted busy_timeout (a host's long read, another
       * program's) would stall every later commit as long again: the next
       * attempt waits until the WAL grew by CKPT_SOFT frames more. */
      if (restart(s, db, name) != SQLITE_OK) s->restart_at = frames + CKPT_SOFT;
      uv_mutex_lock(&s->cmu);
      s->ckpt_hold = 0;
      if (s->ckpt_want) uv_cond_signal(&s->ccv);
      uv_mutex_unlock(&s->cmu);
    }
  } else if (frames >= CKPT_SOFT) {
    uv_mutex_lock(&s->cmu);
    if (!s->ckpt_want) {
      s->ckpt_want = 1;
      uv_cond_signal(&s->ccv);
    }
    uv_mutex_unlock(&s->cmu);
  }
  return SQLITE_OK;
}

/* The -wal file keeps the size it once reached: a reset only starts
 * writing again at its beginning. With journal_size_limit SQLite cuts it
 * back to this size at the first commit after each reset (by whichever
 * connection wrote that commit and has the limit set), so that a peak (a
 * long reader, a RESTART that waited) does not stay on disk. The limit is
 * CKPT_LIMIT frames, the bound of one process's steady state, so that load
 * below it never pays for cutting the file and extending it again.
 * Best effort: without it the file keeps its peak size. */
static void limit_file(sqlite3 *w) {
  sqlite3_stmt *st = NULL;
  long page = 4096;
  if (sqlite3_prepare_v2(w, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    page = (long)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  char sql[80];
  snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %lld",
           (long long)CKPT_LIMIT * (page + WAL_FRAME_HDR) + WAL_HDR);
  sqlite3_exec(w, sql, NULL, NULL, NULL);
}

static void ckpt_main(void *arg) {
  sq_store *s = arg;
  uv_mutex_lock(&s->cmu);
  for (;;) {
    while ((!s->ckpt_want || s->ckpt_hold) && !s->ckpt_stop) uv_cond_wait(&s->ccv, &s->cmu);
    if (s->ckpt_stop) break;
    s->ckpt_want = 0;
    s->ckpt_busy = 1;
    uv_mutex_unlock(&s->cmu);
    /* Busy (another process checkpoints) or failing (disk trouble the
     * writer will meet and report itself): the next wake-up tries again. */
    sqlite3_wal_checkpoint_v2(s->cdb, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    uv_mutex_lock(&s->cmu);
    s->ckpt_busy = 0;
    uv_cond_broadcast(&s->cdone);
  }
  uv_mutex_unlock(&s->cmu);
}

int jobq__sq_ckpt_start(sq_store *s, sqlite3 *conn) {
  s->restart_at = CKPT_LIMIT;
  limit_file(s->w);
  if (jobq__mutex_init(&s->cmu) != 0) {
    sqlite3_close(conn);
    return -1;
  }
  if (uv_cond_init(&s->ccv) != 0) {
    uv_mutex_destroy(&s->cmu);
    sqlite3_close(conn);
    return -1;
  }
  if (uv_cond_init(&s->cdone) != 0) {
    uv_cond_destroy(&s->ccv);
    uv_mutex_destroy(&s->cmu);
    sqlite3_close(conn);
    return -1;
  }
  s->cdb = conn;
  if (uv_thread_create(&s->ckpt_thread, ckpt_main, s) != 0) {
    uv_cond_destroy(&s->cdone);
    uv_cond_destroy(&s->ccv);
    uv_mutex_destroy(&s->cmu);
    sqlite3_close(conn);
    s->cdb = NULL;
    return -1; /* SQLite's own checkpoints stay on */
  }
  sqlite3_wal_hook(s->w, wal_hook, s);
  return 0;
}

void jobq__sq_ckpt_stop(sq_store *s) {
  if (s->cdb == NULL) return;
  sqlite3_wal_autocheckpoint(s->w, 1000); /* takes the hook back */
  uv_mutex_lock(&s->cmu);
  s->ckpt_stop = 1;
  uv_cond_signal(&s->ccv);
  uv_mutex_unlock(&s->cmu);
  uv_thread_join(&s->ckpt_thread);
  uv_cond_destroy(&s->cdone);
  uv_cond_destroy(&s->ccv);
  uv_mutex_destroy(&s->cmu);
  sqlite3_close(s->cdb);
  s->cdb = NULL;
}
