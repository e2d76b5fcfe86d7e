/* Noticing other processes' commits to the same database file, so that a
 * worker process picks up a job another process submitted within
 * milliseconds, and a jobq_wait sees a change another process made.
 *
 * A watcher thread runs a small libuv loop of its own: a file-system watch
 * on the database's -wal file (inotify on Linux) wakes it when it changes, and it then asks its own connection for PRAGMA data_version,
 * which changes exactly when another connection committed. A 100 ms timer
 * covers file systems without change notification. Idle, it sleeps. */
#include "storage/sqlite_int.h"
#include "util/mem.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define FALLBACK_MS 100


/* Passes on the event rows other processes wrote since the last look.
 * nmu held. */
static void read_events(sq_store *s) {
  if (s->wev == NULL &&
      sqlite3_prepare_v2(s->wdb,
                         "SELECT seq, job_id, kind, type, state, progress, step, attempt, error, "
                         "result, time FROM jobq_events WHERE seq > ?1 AND origin != ?2 "
                         "ORDER BY seq LIMIT 1000",
                         -1, &s->wev, NULL) != SQLITE_OK)
    return;
  for (;;) {
    sqlite3_bind_int64(s->wev, 1, s->ev_last);
    sqlite3_bind_int64(s->wev, 2, s->token);
    int n = 0;
    while (sqlite3_step(s->wev) == SQLITE_ROW) {
      n++;
      s->ev_last = sqlite3_column_int64(s->wev, 0);
      jobq_storage_event ev;
      ev.id = (const char *)sqlite3_column_text(s->wev, 1);
      ev.kind = (const char *)sqlite3_column_text(s->wev, 2);
      ev.type = sqlite3_column_int(s->wev, 3);
      ev.state = sqlite3_column_int(s->wev, 4);
      ev.progress = sqlite3_column_int(s->wev, 5);
      ev.step = (const char *)sqlite3_column_text(s->wev, 6);
      ev.attempt = sqlite3_column_int(s->wev, 7);
      ev.error = (const char *)sqlite3_column_text(s->wev, 8);
      ev.result = (const char *)sqlite3_column_text(s->wev, 9);
      ev.time = sqlite3_column_int64(s->wev, 10);
      if (ev.id && s->sink) s->sink(s->sink_ud, &ev);
    }
    sqlite3_reset(s->wev);
    if (n < 1000) break;
  }
}

/* Returns 1 when another connection committed since the last look. */
static int check(sq_store *s) {
  if (sqlite3_step(s->wver) != SQLITE_ROW) {
    sqlite3_reset(s->wver);
    return 0;
  }
  int64_t v = sqlite3_column_int64(s->wver, 0);
  sqlite3_reset(s->wver);
  if (v == s->data_version) return 0;
  s->data_version = v;
  uv_mutex_lock(&s->nmu);
  if (s->sink) read_events(s);
  if (s->notify) s->notify(s->notify_ud);
  uv_mutex_unlock(&s->nmu);
  return 1;
}

/* Two modes. Idle: the file-system watch wakes us (no CPU at all), with a
 * slow timer for file systems that cannot watch. Busy (the database keeps
 * changing): the watch is off and a 1 ms timer looks, because a watch
 * costs every write of every process a kernel notification and wakes this
 * thread for each; after BUSY_MS without a change, back to idle. */
#define POLL_MS 1
#define BUSY_MS 50

static _Thread_local int busy;
static _Thread_local int64_t last_change;

static void on_fs(uv_fs_event_t *h, const char *filename, int events, int status);

/* The watch is on the -wal file itself: a watch of a directory costs its
 * start a walk of every entry the kernel caches for that directory (on
 * Linux, fsnotify marks each child dentry), negative ones included: 10 to
 * 90 ms with a busy /tmp, at every return to idle. The -wal file exists
 * while any connection to the database is open (the watcher's own is), and
 * SQLite resets it in place rather than replacing it; only if it cannot be
 * watched (it was removed, a file system without watches) does the
 * directory's watch stand in. */
static void go_idle(sq_store *s) {
  busy = 0;
  size_t len = strlen(s->path);
  char *wal = malloc(len + 5);
  if (wal) {
    memcpy(wal, s->path, len);
    memcpy(wal + len, "-wal", 5);
    int rc = uv_fs_event_start(&s->wfs, on_fs, wal, 0);
    free(wal);
    if (rc == 0) return;
  }
  char *dir = jobq__strdup(s->path);
  if (dir) {
    char *slash = strrchr(dir, '/');
    if (slash == NULL) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    uv_fs_event_start(&s->wfs, on_fs, dir, 0);
    free(dir);
  }
}

static void on_timer(uv_timer_t *t) {
  sq_store *s = t->data;
  int64_t now = jobq__sq_wall_ms();
  if (check(s)) last_change = now;
  uv_mutex_lock(&s->nmu);
  if (s->sink && now - s->listen_renewed > 20000) {
    s->listen_renewed = now;
    jobq__sq_listen(s, 1, 0); /* keep our listener row alive */
  }
  uv_mutex_unlock(&s->nmu);
  if (busy && now - last_change < BUSY_MS) {
    uv_timer_start(&s->wtimer, on_timer, POLL_MS, 0);
    return;
  }
  if (busy) {
    /* Quiet again: one last look once the watch is back, so that a commit
     * between the look and the watch is not missed. */
    go_idle(s);
    if (check(s)) {
      last_change = now;
      uv_fs_event_stop(&s->wfs);
      busy = 1;
      uv_timer_start(&s->wtimer, on_timer, POLL_MS, 0);
      return;
    }
  }
  uv_timer_start(&s->wtimer, on_timer, FALLBACK_MS, 0);
}

static void on_fs(uv_fs_event_t *h, const char *filename, int events, int status) {
  (void)events;
  (void)status;
  sq_store *s = h->data;
  const char *base = strrchr(s->path, '/');
  base = base ? base + 1 : s->path;
  /* Only the database and its -wal file matter. */
  if (filename && strncmp(filename, base, strlen(base)) != 0) return;
  /* Look now (the commit that wrote is usually complete), then go busy:
   * stop the watch and look every millisecond while changes keep coming. */
  check(s);
  last_change = jobq__sq_wall_ms();
  busy = 1;
  uv_fs_event_stop(&s->wfs);
  uv_timer_start(&s->wtimer, on_timer, POLL_MS, 0);
}

static void on_stop(uv_async_t *a) {
  sq_store *s = a->data;
  uv_close((uv_handle_t *)&s->wtimer, NULL);
  uv_close((uv_handle_t *)&s->wstop, NULL);
  if (uv_is_active((uv_handle_t *)&s->wfs) || !uv_is_closing((uv_handle_t *)&s->wfs))
    uv_close((uv_handle_t *)&s->wfs, NULL);
}

static void watcher_main(void *arg) {
  sq_store *s = arg;
  uv_run(&s->wloop, UV_RUN_DEFAULT);
}

static int start(sq_store *s) {
  int rc = sqlite3_open_v2(s->path, &s->wdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK ||
      sqlite3_prepare_v2(s->wdb, "PRAGMA data_version", -1, &s->wver, NULL) != SQLITE_OK) {
    rc = jobq__sq_error(s->wdb, rc == SQLITE_OK ? sqlite3_errcode(s->wdb) : rc,
                        "cannot open the watcher's connection", s->path);
    sqlite3_close(s->wdb);
    s->wdb = NULL;
    return rc;
  }
  if (sqlite3_step(s->wver) == SQLITE_ROW) s->data_version = sqlite3_column_int64(s->wver, 0);
  sqlite3_reset(s->wver);
  if (uv_loop_init(&s->wloop) != 0) goto fail_db;
  uv_async_init(&s->wloop, &s->wstop, on_stop);
  uv_timer_init(&s->wloop, &s->wtimer);
  uv_fs_event_init(&s->wloop, &s->wfs);
  s->wstop.data = s->wtimer.data = s->wfs.data = s;
  /* Watch the -wal file (go_idle). Without a watch the timer alone still
   * works. (busy and
   * last_change belong to the watcher thread; go_idle only sets the watch
   * up here, before that thread starts.) */
  go_idle(s);
  uv_timer_start(&s->wtimer, on_timer, FALLBACK_MS, 0);
  if (uv_thread_create(&s->watcher, watcher_main, s) != 0) {
    uv_close((uv_handle_t *)&s->wtimer, NULL);
    uv_close((uv_handle_t *)&s->wstop, NULL);
    uv_close((uv_handle_t *)&s->wfs, NULL);
    uv_run(&s->wloop, UV_RUN_DEFAULT);
    uv_loop_close(&s->wloop);
    goto fail_db;
  }
  s->watching = 1;
  return 0;
fail_db:
  sqlite3_finalize(s->wver);
  sqlite3_close(s->wdb);
  s->wver = NULL;
  s->wdb = NULL;
  return jobq__err(JOBQ_ENOMEM, "sqlite storage '%s': cannot start the watcher", s->path);
}

static void stop(sq_store *s) {
  uv_async_send(&s->wstop);
  uv_thread_join(&s->watcher);
  uv_loop_close(&s->wloop);
  sqlite3_finalize(s->wev);
  s->wev = NULL;
  sqlite3_finalize(s->wver);
  sqlite3_close(s->wdb);
  s->wver = NULL;
  s->wdb = NULL;
  s->watching = 0;
}

int jobq__sq_set_notify(void *st, void (*fn)(void *ud), void *ud) {
  sq_store *s = st;
  uv_mutex_lock(&s->nmu);
  s->notify = fn;
  s->notify_ud = ud;
  uv_mutex_unlock(&s->nmu);
  /* Returns only once no notification is under way (nmu is held around
   * each). */
  if (fn && !s->watching) return start(s);
  if (!fn && s->watching) stop(s);
  return 0;
}

int jobq__sq_set_event_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud) {
  sq_store *s = st;
  if (sink) {
    /* Start after what is there now: listeners hear of what comes next. */
    sqlite3 *db = NULL;
    int64_t last = 0;
    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK) {
      sqlite3_stmt *q = NULL;
      if (sqlite3_prepare_v2(db, "SELECT coalesce(max(seq), 0) FROM jobq_events", -1, &q, NULL) ==
              SQLITE_OK &&
          sqlite3_step(q) == SQLITE_ROW)
        last = sqlite3_column_int64(q, 0);
      sqlite3_finalize(q);
    }
    sqlite3_close(db);
    int rc = jobq__sq_listen(s, 1, 1);
    if (rc) return rc;
    uv_mutex_lock(&s->nmu);
    s->ev_last = last;
    s->listen_renewed = jobq__sq_wall_ms();
    s->sink = sink;
    s->sink_ud = ud;
    uv_mutex_unlock(&s->nmu);
    if (!s->watching) return start(s);
    return 0;
  }
  uv_mutex_lock(&s->nmu);
  int was = s->sink != NULL;
  s->sink = NULL;
  s->sink_ud = NULL;
  uv_mutex_unlock(&s->nmu);
  if (was) jobq__sq_listen(s, 0, 1);
  return 0;
}
