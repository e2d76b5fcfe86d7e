/* Events shared between processes on the PostgreSQL backend
 * (set_event_sink), the readers' side.
 *
 * Why a table and not NOTIFY payloads. A NOTIFY makes its transaction take
 * a lock at commit that every notifying transaction of the whole cluster
 * shares: one NOTIFY per finished job would serialise the finishes of
 * every process. So the writers (PG_EV_INSERT in pg_int.h) put the events
 * in rows of the unlogged table jobq_events, in the statement of the
 * change, and send one bare NOTIFY per statement on "<channel>_ev": a group
 * commit of a thousand finishes takes the lock once. They write nothing,
 * and notify nothing, unless another store listens (a live row of
 * jobq_listeners), so a deployment where nobody listens pays one probe of
 * a tiny table per statement. A payload would also be capped (8,000
 * bytes), and a job's result is not.
 *
 * A listening store runs a thread with a connection of its own that
 * LISTENs on that channel, renews its jobq_listeners row (it lapses after
 * 60 s, so a crashed process stops costing the others rows) and reads the
 * rows of other origins: on each notification, and once a second in case
 * one was lost while its connection was down.
 *
 * Why pages by transaction id, not by seq: seq is taken when a row is
 * written, not when it commits, so a reader that saw seq 10 may later see
 * seq 9 commit; paging by seq would skip it. The reader instead reads only
 * rows of transactions older than the oldest one still running
 * (txid_snapshot_xmin): those have all ended, their rows are all visible,
 * and none can appear later. A job's changes are transactions that each
 * begin after the previous one committed, so they come in order. The
 * cost: a transaction that stays open (anywhere in the cluster) holds
 * events back until it ends. */
#include "postgres/pg_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FALLBACK_MS 1000
#define RENEW_MS 20000   /* the listener row lives 60 s: renewed well before */
#define PRUNE_MS 60000   /* rows past 10 minutes are deleted this often */
#define PAGE 500

int64_t jobq__pg_new_token(pg_store *s) {
  /* Unique enough among the stores of one database: the process, the
   * time in ns and the store's address. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = ((uint64_t)getpid() << 40) ^ ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
               ((uint64_t)(uintptr_t)s << 7);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (int64_t)(x & 0x7fffffffffffffffULL);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int jobq__pg_listened(pg_store *s, PGconn *c) {
  int64_t now = mono_ms();
  uv_mutex_lock(&s->mu);
  int fresh = s->ev_checked && now - s->ev_checked < 1000, v = s->ev_listened;
  uv_mutex_unlock(&s->mu);
  if (fresh) return v;
  char tok[24];
  const char *p[1] = {jobq__pg_i64(tok, s->token)};
  PGresult *r = PQexecParams(c, "SELECT " PG_EV_LISTENED("$1::int8"), 1, NULL, p, NULL, NULL, 0);
  /* A failed look: the statements' own guard decides (and the caller's
   * statement reports the connection's trouble). */
  v = r && PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0)[0] == 't' : 1;
  int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  uv_mutex_lock(&s->mu);
  if (ok) {
    s->ev_listened = v;
    s->ev_checked = now;
  }
  uv_mutex_unlock(&s->mu);
  return v;
}

/* Runs sql with parameters on c; 0 or -1 (the thread retries later). */
static int run(PGconn *c, const char *sql, int n, const char *const *p, PGresult **out) {
  PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    PQclear(r);
    return -1;
  }
  if (out) *out = r;
  else PQclear(r);
  return 0;
}

static int renew(pg_store *s, PGconn *c) {
  char tok[24];
  const char *p[1] = {jobq__pg_i64(tok, s->token)};
  return run(c,
             "INSERT INTO jobq_listeners (token, until) VALUES ($1, " PG_NOW_MS " + 60000) "
             "ON CONFLICT (token) DO UPDATE SET until = excluded.until",
             1, p, NULL);
}

/* The oldest transaction still running: rows of older ones are final. */
static int horizon(PGconn *c, int64_t *out) {
  PGresult *r = NULL;
  if (run(c, "SELECT txid_snapshot_xmin(txid_current_snapshot())", 0, NULL, &r)) return -1;
  *out = jobq__pg_int(r, 0, 0);
  PQclear(r);
  return 0;
}

/* Passes on the rows of other origins from the cursor (tx, seq) up to the
 * horizon, page by page. */
static int read_events(pg_store *s, PGconn *c, int64_t *cur_tx, int64_t *cur_seq) {
  int64_t until;
  if (horizon(c, &until)) return -1;
  for (;;) {
    char a[24], b[24], u[24], tok[24], lim[24];
    const char *p[5] = {jobq__pg_i64(a, *cur_tx), jobq__pg_i64(b, *cur_seq),
                        jobq__pg_i64(u, until), jobq__pg_i64(tok, s->token),
                        jobq__pg_i64(lim, PAGE)};
    PGresult *r = NULL;
    if (run(c,
            "SELECT tx, seq, job_id, kind, type, state, progress, step, attempt, error, result, "
            "time FROM jobq_events WHERE (tx, seq) > ($1::int8, $2::int8) AND tx < $3 AND "
            "origin <> $4 ORDER BY tx, seq LIMIT $5",
            5, p, &r))
      return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
      jobq_storage_event ev;
      memset(&ev, 0, sizeof ev);
      ev.id = PQgetvalue(r, i, 2);
      ev.kind = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
      ev.type = (int)jobq__pg_int(r, i, 4);
      ev.state = (int)jobq__pg_int(r, i, 5);
      ev.progress = (int)jobq__pg_int(r, i, 6);
      ev.step = PQgetisnull(r, i, 7) ? NULL : PQgetvalue(r, i, 7);
      ev.attempt = (int)jobq__pg_int(r, i, 8);
      ev.error = PQgetisnull(r, i, 9) ? NULL : PQgetvalue(r, i, 9);
      ev.result = PQgetisnull(r, i, 10) ? NULL : PQgetvalue(r, i, 10);
      ev.time = jobq__pg_int(r, i, 11);
      /* a batch's end comes without its summary (pg_batch.c, TELL_SQL) */
      char *sum = NULL;
      if (ev.type == JOBQ_EVENT_BATCH_DONE && ev.result == NULL && ev.step)
        ev.result = sum = jobq__pg_batch_summary(c, ev.step);
      s->ev_sink(s->ev_ud, &ev);
      free(sum);
      *cur_tx = jobq__pg_int(r, i, 0);
      *cur_seq = jobq__pg_int(r, i, 1);
    }
    PQclear(r);
    if (n < PAGE) break;
  }
  /* everything before the horizon is read: the next read starts there */
  if (until > *cur_tx) {
    *cur_tx = until;
    *cur_seq = 0;
  }
  return 0;
}

static PGconn *listen_conn(pg_store *s) {
  PGconn *c = NULL;
  if (jobq__pg_connect(s, 0, &c) != 0) return NULL;
  char chan[128];
  snprintf(chan, sizeof chan, "%s_ev", s->channel);
  char *ch = PQescapeIdentifier(c, chan, strlen(chan));
  char sql[200];
  snprintf(sql, sizeof sql, "LISTEN %s", ch ? ch : "jobq_ev");
  PQfreemem(ch);
  PGresult *r = PQexec(c, sql);
  int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok || renew(s, c) != 0) {
    PQfinish(c);
    return NULL;
  }
  return c;
}

static void events_main(void *arg) {
  pg_store *s = arg;
  PGconn *c = NULL;
  /* set_event_sink made the first connection and read the horizon */
  int64_t cur_tx = s->ev_start_tx, cur_seq = 0;
  c = s->ev_start_conn;
  s->ev_start_conn = NULL;
  int backoff = 50;
  int64_t renewed = mono_ms(), pruned = 0;
  for (;;) {
    if (c == NULL && (c = listen_conn(s)) != NULL) {
      backoff = 50;
      renewed = mono_ms();
      if (read_events(s, c, &cur_tx, &cur_seq)) { /* what came while no one listened */
        PQfinish(c);
        c = NULL;
      }
    }
    struct pollfd pf[2] = {{s->ev_wake[0], POLLIN, 0}, {c ? PQsocket(c) : -1, POLLIN, 0}};
    int n = poll(pf, c ? 2 : 1, c ? FALLBACK_MS : backoff);
    if (n < 0 && errno != EINTR) break;
    if (pf[0].revents) break; /* stop */
    if (c == NULL) {
      backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
      continue;
    }
    if (n > 0) {
      if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
        continue;
      }
      PGnotify *nt;
      while ((nt = PQnotifies(c)) != NULL) PQfreemem(nt);
    }
    int fail = read_events(s, c, &cur_tx, &cur_seq);
    int64_t now = mono_ms();
    if (!fail && now - renewed >= RENEW_MS) {
      fail = renew(s, c);
      renewed = now;
    }
    if (!fail && now - pruned >= PRUNE_MS) {
      /* news nobody read in 10 minutes is no longer news */
      fail = run(c, "DELETE FROM jobq_events WHERE time < " PG_NOW_MS " - 600000", 0, NULL, NULL);
      pruned = now;
    }
    if (fail && PQstatus(c) != CONNECTION_OK) {
      PQfinish(c);
      c = NULL;
    }
  }
  if (c) {
    char tok[24];
    const char *p[1] = {jobq__pg_i64(tok, s->token)};
    run(c, "DELETE FROM jobq_listeners WHERE token = $1", 1, p, NULL);
    PQfinish(c);
  }
}

void jobq__pg_events_stop(pg_store *s) {
  if (!s->ev_on) return;
  char b = 1;
  ssize_t w = write(s->ev_wake[1], &b, 1);
  (void)w;
  uv_thread_join(&s->ev_thread);
  close(s->ev_wake[0]);
  close(s->ev_wake[1]);
  s->ev_wake[0] = s->ev_wake[1] = -1;
  s->ev_on = 0;
  s->ev_sink = NULL;
  s->ev_ud = NULL;
}

int jobq__pg_set_event_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud) {
  pg_store *s = st;
  /* Calls do not overlap (the core makes one at a time); a new sink
   * replaces the old one by a stop and a start. */
  jobq__pg_events_stop(s);
  if (sink == NULL) return 0;
  /* Registered before this returns: changes other processes commit from
   * now on are heard. */
  PGconn *c = listen_conn(s);
  int64_t start = 0;
  if (c == NULL || horizon(c, &start) != 0) {
    if (c) PQfinish(c);
    return jobq__err(JOBQ_EIO, "postgres storage '%.200s': cannot listen for other processes' "
                     "events (LISTEN, or the listeners table, failed)", s->shown);
  }
  if (pipe(s->ev_wake) != 0) {
    PQfinish(c);
    return jobq__err(JOBQ_EIO, "postgres storage: cannot make a pipe: %s", strerror(errno));
  }
  fcntl(s->ev_wake[0], F_SETFD, FD_CLOEXEC);
  fcntl(s->ev_wake[1], F_SETFD, FD_CLOEXEC);
  s->ev_sink = sink;
  s->ev_ud = ud;
  s->ev_start_conn = c;
  s->ev_start_tx = start;
  if (uv_thread_create(&s->ev_thread, events_main, s) != 0) {
    PQfinish(c);
    s->ev_start_conn = NULL;
    close(s->ev_wake[0]);
    close(s->ev_wake[1]);
    s->ev_wake[0] = s->ev_wake[1] = -1;
    s->ev_sink = NULL;
    return jobq__err(JOBQ_ENOMEM, "postgres storage: cannot start the events thread");
  }
  s->ev_on = 1;
  return 0;
}
