/* Leader duties on the PostgreSQL backend: of the stores that share a
 * schema, one holds a session-level advisory lock of the schema on a
 * connection of its own and does the work that one process can do for all
 * (rescuing expired leases today; cron evaluation and retention use the
 * same helper). Without it, N worker processes each scan the running jobs
 * every lease/2.
 *
 * Why a session lock on a dedicated connection: it lives exactly as long as
 * that connection, so a leader that dies (kill -9, a lost network, a
 * pg_terminate_backend) gives it up without any timeout of ours, and a pool
 * connection (lent to anyone, dropped on errors) cannot hold it.
 *
 * Only stores that ask (jobq__pg_is_leader, from rescue) take part, and
 * every queue's maintenance rounds ask, submit-only queues too: any process
 * may lead. A duty meant for working queues only (cron firing) checks that
 * as well. */
#include "postgres/pg_int.h"
#include "util/err.h"

#include <string.h>
#include <time.h>

/* How often a store that is not leader tries the lock again: the longest a
 * schema goes without a leader after one died (plus the caller's own
 * cadence, lease/2 for rescue). */
#define LEADER_RETRY_MS 1000

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The lock's key: the two-int4 form (hashtext of a fixed tag, hashtext of
 * the schema), a key space apart from the bigint keys of the migration and
 * dedupe locks, so that no dedupe key can collide with it. */
#define LEADER_LOCK_SQL "SELECT pg_try_advisory_lock(hashtext('jobq-leader'), hashtext($1))"

static void drop(pg_store *s) {
  if (s->leader_c) PQfinish(s->leader_c);
  s->leader_c = NULL;
  s->leader = 0;
}

int jobq__pg_is_leader(pg_store *s) {
  uv_mutex_lock(&s->lmu);
  if (s->leader && s->leader_c) {
    /* The lock lives exactly as long as the session: a statement that
     * succeeds proves both. (Reading what waits on the socket is not
     * enough: libpq sees the EOF after a server's goodbye only on a later
     * read.) One round trip per duty round, lease/2 for rescue. */
    PGresult *r = PQexec(s->leader_c, "SELECT 1");
    int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok) drop(s); /* the lock went with the session; another may hold it */
  }
  int64_t now = mono_ms();
  if (!s->leader && now >= s->leader_next) {
    s->leader_next = now + LEADER_RETRY_MS;
    if (s->leader_c == NULL) {
      PGconn *c = NULL;
      /* unreachable: not leader this round (the pool's calls report it) */
      if (jobq__pg_connect(s, 0, &c) == 0) s->leader_c = c;
    }
    if (s->leader_c) {
      const char *p[1] = {s->schema};
      PGresult *r = PQexecParams(s->leader_c, LEADER_LOCK_SQL, 1, NULL, p, NULL, NULL, 0);
      if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        s->leader = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
      PQclear(r);
      if (PQstatus(s->leader_c) != CONNECTION_OK) drop(s);
    }
  }
  int out = s->leader;
  uv_mutex_unlock(&s->lmu);
  return out;
}

void jobq__pg_leader_stop(pg_store *s) {
  uv_mutex_lock(&s->lmu);
  drop(s); /* closing the session releases its lock */
  uv_mutex_unlock(&s->lmu);
}
