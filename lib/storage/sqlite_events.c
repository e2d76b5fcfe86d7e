/* Events shared between processes (schema 2), the writer's side: a process
 * with listeners keeps a row in jobq_listeners; while another process has
 * one, every change is also written to jobq_events, in the transaction of
 * the change; rows past 10 minutes are pruned. The watcher (sqlite_watch.c)
 * reads other origins' rows and passes them on. */
#include "storage/sqlite_int.h"

#include <stdlib.h>

static const char *const sql[WS_COUNT] = {
  [WS_EVENT] =
      "INSERT INTO jobq_events (origin, job_id, kind, type, state, progress, step, attempt, error, "
      "result, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
  [WS_LISTENERS] = "SELECT count(*) FROM jobq_listeners WHERE token != ?1 AND until > ?2",
  [WS_LISTEN] = "INSERT OR REPLACE INTO jobq_listeners (token, until) VALUES (?1, ?2)",
  [WS_UNLISTEN] = "DELETE FROM jobq_listeners WHERE token = ?1",
  [WS_PRUNE_EVENTS] = "DELETE FROM jobq_events WHERE time < ?1",
};

int jobq__sq_events_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

void jobq__sq_event_row(sq_store *s, int type, int state, const char *id, const char *kind,
                        int progress, const char *step, int attempt, const char *error,
                        const char *result) {
  sqlite3_stmt *e = s->ws[WS_EVENT];
  sqlite3_bind_int64(e, 1, s->token);
  sqlite3_bind_text(e, 2, id, -1, SQLITE_STATIC);
  if (kind) sqlite3_bind_text(e, 3, kind, -1, SQLITE_STATIC);
  sqlite3_bind_int(e, 4, type);
  sqlite3_bind_int(e, 5, state);
  sqlite3_bind_int(e, 6, progress);
  if (step) sqlite3_bind_text(e, 7, step, -1, SQLITE_STATIC);
  sqlite3_bind_int(e, 8, attempt);
  if (error) sqlite3_bind_text(e, 9, error, -1, SQLITE_STATIC);
  if (result) sqlite3_bind_text(e, 10, result, -1, SQLITE_STATIC);
  sqlite3_bind_int64(e, 11, jobq__sq_wall_ms());
  sqlite3_step(e);
  sqlite3_reset(e);
  sqlite3_clear_bindings(e);
}

/* Whether another process listens for events; looked up at most once a
 * second, inside the transaction (so the answer is current for it). */
void jobq__sq_check_listeners(sq_store *s) {
  int64_t now = jobq__sq_wall_ms();
  if (now - s->share_checked < 1000) return;
  s->share_checked = now;
  sqlite3_stmt *q = s->ws[WS_LISTENERS];
  sqlite3_bind_int64(q, 1, s->token);
  sqlite3_bind_int64(q, 2, now);
  s->share = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) > 0;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
}

/* Housekeeping that rides along with rescue: event rows past 10 minutes. */
void jobq__sq_prune_events(sq_store *s) {
  sqlite3_stmt *p = s->ws[WS_PRUNE_EVENTS];
  sqlite3_bind_int64(p, 1, jobq__sq_wall_ms() - 600000);
  jobq__sq_run(s, p, "cannot prune events");
}

/* ---- listen ---- */

typedef struct sq_listen_req {
  sq_req h;
  int on; /* 1: register (or renew) this store's row, 0: remove it */
} sq_listen_req;

static int listen_run(sq_store *s, sq_req *req) {
  const sq_listen_req *r = (const sq_listen_req *)req;
  sqlite3_stmt *u = s->ws[r->on ? WS_LISTEN : WS_UNLISTEN];
  sqlite3_bind_int64(u, 1, s->token);
  if (r->on) sqlite3_bind_int64(u, 2, jobq__sq_wall_ms() + 60000);
  return jobq__sq_run(s, u, "cannot register as a listener");
}

static const sq_op listen_op = {listen_run, NULL};

/* Nobody waits for a renewal: it only goes. */
static void listen_answer(sq_req *r) { free(r); }

/* Registers (on) or removes this store as a listener for other processes'
 * events; renewed by the watcher while on (a listener row lapses after 60 s,
 * so a crashed process stops costing the others event rows). */
int jobq__sq_listen(sq_store *s, int on, int wait) {
  if (wait) {
    sq_listen_req r = {0};
    r.h.op = &listen_op;
    r.on = on;
    return jobq__sq_submit(s, &r.h);
  }
  sq_listen_req *r = calloc(1, sizeof *r);
  if (r == NULL) return JOBQ_ENOMEM;
  r->h.op = &listen_op;
  r->h.answer = listen_answer;
  r->on = on;
  jobq__sq_submit_async(s, &r->h);
  return 0;
}
