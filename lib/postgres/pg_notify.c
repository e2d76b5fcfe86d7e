/* Wake-ups on the PostgreSQL backend (set_notify): a thread of the store
 * holds a connection of its own that LISTENs on the queue's channel and
 * waits in poll() on its socket. Inserts, retries, releases and rescues
 * send pg_notify in their own transaction, so an idle worker in any
 * process hears of new work when it commits. Notifications are lost while
 * the connection is down, so the thread also wakes the core once a second
 * (the fallback poll) and right after each reconnect. */
#include "postgres/pg_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FALLBACK_MS 1000

static void fire(pg_store *s) {
  uv_mutex_lock(&s->nmu);
  if (s->notify) s->notify(s->notify_ud);
  uv_mutex_unlock(&s->nmu);
}

static PGconn *listen_conn(pg_store *s) {
  PGconn *c = NULL;
  if (jobq__pg_connect(s, 0, &c) != 0) return NULL;
  char *ch = PQescapeIdentifier(c, s->channel, strlen(s->channel));
  char sql[200];
  snprintf(sql, sizeof sql, "LISTEN %s", ch ? ch : "jobq");
  PQfreemem(ch);
  PGresult *r = PQexec(c, sql);
  int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    PQfinish(c);
    return NULL;
  }
  return c;
}

static void watch(void *arg) {
  pg_store *s = arg;
  PGconn *c = NULL;
  int backoff = 50;
  for (;;) {
    if (c == NULL) {
      c = listen_conn(s);
      if (c) {
        backoff = 50;
        fire(s); /* what was missed while no one listened */
      }
    }
    struct pollfd pf[2] = {{s->wake_fd[0], POLLIN, 0}, {c ? PQsocket(c) : -1, POLLIN, 0}};
    int timeout = c ? FALLBACK_MS : backoff;
    int n = poll(pf, c ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR) break;
    if (pf[0].revents) break; /* stop */
    if (c == NULL) {
      backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
      fire(s);
      continue;
    }
    if (n == 0) {
      fire(s); /* the fallback poll */
      continue;
    }
    if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
      PQfinish(c);
      c = NULL;
      continue;
    }
    int got = 0;
    PGnotify *nt;
    while ((nt = PQnotifies(c)) != NULL) {
      got = 1;
      PQfreemem(nt);
    }
    if (got) fire(s);
  }
  if (c) PQfinish(c);
}

void jobq__pg_notify_stop(pg_store *s) {
  if (!s->watching) return;
  char b = 1;
  ssize_t w = write(s->wake_fd[1], &b, 1);
  (void)w;
  uv_thread_join(&s->watcher);
  close(s->wake_fd[0]);
  close(s->wake_fd[1]);
  s->wake_fd[0] = s->wake_fd[1] = -1;
  s->watching = 0;
}

int jobq__pg_set_notify(void *st, void (*fn)(void *ud), void *ud) {
  pg_store *s = st;
  if (fn == NULL) {
    jobq__pg_notify_stop(s);
    uv_mutex_lock(&s->nmu);
    s->notify = NULL;
    s->notify_ud = NULL;
    uv_mutex_unlock(&s->nmu);
    return 0;
  }
  uv_mutex_lock(&s->nmu);
  s->notify = fn;
  s->notify_ud = ud;
  uv_mutex_unlock(&s->nmu);
  if (s->watching) return 0;
  if (pipe(s->wake_fd) != 0)
    return jobq__err(JOBQ_EIO, "postgres storage: cannot make a pipe: %s", strerror(errno));
  fcntl(s->wake_fd[0], F_SETFD, FD_CLOEXEC);
  fcntl(s->wake_fd[1], F_SETFD, FD_CLOEXEC);
  if (uv_thread_create(&s->watcher, watch, s) != 0) {
    close(s->wake_fd[0]);
    close(s->wake_fd[1]);
    s->wake_fd[0] = s->wake_fd[1] = -1;
    return jobq__err(JOBQ_ENOMEM, "postgres storage: cannot start the LISTEN thread");
  }
  s->watching = 1;
  return 0;
}
