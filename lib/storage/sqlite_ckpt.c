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
 * about 20 MB whatever the load in this process. Another process's
 * checkpoints hold the same lock and cannot be waited for this way; a
 * RESTART that finds the lock taken leaves it to the next commit.  */
#include "storage/sqlite_int.h"

#include <stdlib.h>

#include "util/mutex.h"

#define CKPT_SOFT 1000 /* frames in the WAL: wake the checkpointer */
#define CKPT_HARD 4000 /* frames: the writer checkpoints itself (~16 MB) */
#define CKPT_LIMIT 5000 /* frames: the writer waits for a restart (~20 MB) */

/* After each commit of the write connection, outside its write lock. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
  sq_store *s = ud;
  if (frames >= CKPT_HARD) {
    int log = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (frames >= CKPT_LIMIT && (rc != SQLITE_OK || copied < log)) {
      uv_mutex_lock(&s->cmu);
      s->ckpt_hold = 1;
      while (s->ckpt_busy) uv_cond_wait(&s->cdone, &s->cmu);
      uv_mutex_unlock(&s->cmu);
      sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
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
