/* Leases (schema 4), on the write connection: the jobs this store claimed
 * and has not finished, its row in jobq_leases, heartbeats that extend the
 * leases of running attempts, the liveness lock of a process, and the
 * rescue of jobs whose lease expired (their process died or stalled).
 * docs/architecture.md, "Leases, heartbeats, rescue", says why leases are
 * kept by owner and why a live owner's expired lease is not enough. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include "storage/sqlite_int.h"
#include "util/err.h"
#include "util/state.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const sql[WS_COUNT] = {
  [WS_HEARTBEAT] =
      "UPDATE jobq_jobs SET lease_until = ?1 WHERE id = ?2 AND state = 1 AND attempts = ?3 "
      "RETURNING cancel_req",
  [WS_RESCUE] =
      "UPDATE jobq_jobs SET "
      "state = CASE WHEN cancel_req THEN 4 WHEN attempts < max_attempts THEN "
      "(CASE WHEN bcap > 0 THEN 6 ELSE 0 END) ELSE 3 END, "
      "finished_at = CASE WHEN cancel_req OR attempts >= max_attempts THEN ?1 ELSE NULL END, "
      "error = 'lease expired: the process running the job stopped', "
      "run_at = ?1, lease_until = NULL, "
      "attempt_log = json_insert(coalesce(attempt_log, '[]'), '$[#]', json_array(started_at, ?1, "
      "'lease expired: the process running the job stopped')) "
      /* Expired; and its owner is gone (jobq_live, below), or it is still
       * there but has not renewed for live_grace ms past the lease (?2 =
       * now - live_grace): it stalled. Without liveness ?2 = ?1. */
      "WHERE state = 1 AND lease_until < ?1 AND (lease_until < ?2 OR NOT jobq_live(lease_owner)) "
      "RETURNING id, kind, state, attempts, error, batch, webhooks",
  /* Leases by owner: see jobq__sq_lease_row and rescue_run. */
  [WS_LEASE_SET] = "INSERT OR REPLACE INTO jobq_leases (owner, until) VALUES (?1, ?2)",
  [WS_LEASE_DROP] = "DELETE FROM jobq_leases WHERE owner = ?1",
  [WS_LEASES_EXPIRED] = "SELECT count(*) FROM jobq_leases WHERE until < ?1",
  [WS_LEASE_MINS] =
      "SELECT lease_owner, min(lease_until) FROM jobq_jobs WHERE state = 1 GROUP BY lease_owner",
  [WS_LEASE_FIX] = "UPDATE jobq_leases SET until = ?2 WHERE owner = ?1 AND until < ?3",
  /* A live owner keeps its row (it drops it itself when it runs nothing). */
  [WS_LEASES_GONE] = "DELETE FROM jobq_leases WHERE until < ?1 AND NOT jobq_live(owner)",
};

/* ---- liveness ----
 *
 * A heartbeat is a write, and a write waits for the database's write lock:
 * with several busy processes on one file a process can wait for it longer
 * than a short lease (measured: 0.7-1.7 s with four processes), while it is
 * alive and its heartbeat is queued. Its leases then look expired though
 * nothing is wrong. So a process that opened a queue also holds a lock on
 * one byte of the database file (an open-file-description lock, far past
 * any byte SQLite locks), and a rescuer asks the kernel whether the owner of
 * an expired lease still holds its byte: a process that died lost it at
 * once, and its jobs are rescued when their lease expires; a live owner's
 * are rescued only once their lease is live_grace ms past (it stalled:
 * stopped, or starved of the write lock beyond the busy timeout). */
#define LIVE_BASE ((off_t)1 << 40)
#define LIVE_SPAN ((int64_t)1 << 40)

static off_t live_byte(int64_t owner) { return LIVE_BASE + (off_t)(owner & (LIVE_SPAN - 1)); }

/* jobq_live(owner): 1 while the process of owner holds its byte. */
static void live_fn(sqlite3_context *cx, int argc, sqlite3_value **argv) {
  (void)argc;
  sq_store *s = sqlite3_user_data(cx);
  int live = 0;
  if (s->live_on && sqlite3_value_type(argv[0]) == SQLITE_INTEGER) {
    int64_t owner = sqlite3_value_int64(argv[0]);
    if (owner == s->token) {
      live = 1; /* this process: alive (its own lock does not conflict with itself) */
    } else if (owner != 0) {
#ifdef F_OFD_GETLK
      struct flock fl = {0};
      fl.l_type = F_WRLCK;
      fl.l_whence = SEEK_SET;
      fl.l_start = live_byte(owner);
      fl.l_len = 1;
      /* Cannot ask: say alive (a rescue later rather than a job run twice). */
      live = fcntl(s->live_fd, F_OFD_GETLK, &fl) != 0 || fl.l_type != F_UNLCK;
#endif
    }
  }
  sqlite3_result_int(cx, live);
}

void jobq__sq_guard_leases(void *st) {
  sq_store *s = st;
#ifdef F_OFD_SETLK
  int fd = open(s->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return; /* then rescue goes by lease alone, as for the bare vtable */
  /* A read lock (it needs no write access); a rescuer's probe for a write
   * lock sees it. */
  struct flock fl = {0};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = live_byte(s->token);
  fl.l_len = 1;
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    close(fd);
    return;
  }
  s->live_fd = fd;
  /* A live process's transaction waits for the write lock at most
   * busy_timeout before it fails; its heartbeat may wait behind one
   * transaction of its own process and then for its own. */
  s->live_grace = 2 * (int64_t)s->busy_ms;
  s->live_on = 1;
#else
  (void)s;
#endif
}

int jobq__sq_lease_prepare(sq_store *s) {
  int rc = sqlite3_create_function_v2(s->w, "jobq_live", 1, SQLITE_UTF8, s, live_fn, NULL, NULL,
                                      NULL);
  if (rc != SQLITE_OK) return jobq__sq_error(s->w, rc, "cannot define jobq_live", s->path);
  return jobq__sq_prepare(s, sql);
}

/* ---- the jobs this store claimed ---- */

int jobq__sq_remember_claim(sq_store *s, const char *id, int64_t seq, const char *kind,
                            const char *hooks, int64_t until) {
  size_t kl = strlen(kind) + 1, hl = hooks ? strlen(hooks) + 1 : 0;
  sq_claimed *e = malloc(sizeof *e + kl + hl);
  if (e == NULL || jobq__map_reserve(&s->claimed, 1) != 0) {
    free(e);
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  }
  size_t idn = strnlen(id, sizeof e->id - 1);
  memcpy(e->id, id, idn);
  e->id[idn] = '\0';
  e->seq = seq;
  e->until = until;
  e->batched = 0; /* the claim sets it for a batch member */
  memcpy(e->kind, kind, kl);
  e->hooks = hooks ? memcpy(e->kind + kl, hooks, hl) : NULL;
  free(jobq__map_del(&s->claimed, e->id)); /* an older claim of the same id */
  jobq__map_put(&s->claimed, e->id, e);
  return 0;
}

void jobq__sq_forget_claim(sq_store *s, const char *id) {
  void *e = jobq__map_del(&s->claimed, id);
  if (e && s->claimed.count == 0) s->lease_dirty = 1; /* nothing left to hold a lease for */
  free(e);
}

void jobq__sq_forget_claims(sq_store *s) {
  size_t cur = 0;
  for (jobq_map_slot *e; (e = jobq__map_next(&s->claimed, &cur)) != NULL;) free(e->val);
  jobq__map_free(&s->claimed);
  if (s->live_on) close(s->live_fd); /* the liveness lock goes with it */
  s->live_on = 0;
}

/* This store's row in jobq_leases: its "until" must never be later than
 * the lease of any job it runs, so that once one of them expires a rescuer
 * scans; earlier only costs a scan that finds nothing. The row is written
 * whenever a claim or heartbeat changed the leases (a claim always writes
 * it, so a row that a rescuer dropped comes back with the next job) and
 * dropped when nothing runs here. Once per transaction, not per job. */
int jobq__sq_lease_row(sq_store *s) {
  s->lease_dirty = 0;
  int64_t min = INT64_MAX;
  size_t cur = 0;
  for (jobq_map_slot *sl; (sl = jobq__map_next(&s->claimed, &cur)) != NULL;) {
    const sq_claimed *e = sl->val;
    if (e->until < min) min = e->until;
  }
  if (s->lease_unsure) {
    /* A transaction failed after this store forgot a job whose finish did
     * not commit: say "expired now", and the next rescue, which finds the
     * true earliest lease, writes it. */
    int64_t now = jobq__sq_wall_ms();
    if (now < min) min = now;
  }
  if (min == INT64_MAX) {
    sqlite3_stmt *d = s->ws[WS_LEASE_DROP];
    sqlite3_bind_int64(d, 1, s->token);
    return jobq__sq_run(s, d, "cannot drop this process's lease");
  }
  sqlite3_stmt *u = s->ws[WS_LEASE_SET];
  sqlite3_bind_int64(u, 1, s->token);
  sqlite3_bind_int64(u, 2, min);
  int rc = jobq__sq_run(s, u, "cannot store this process's lease");
  if (rc == 0) s->lease_unsure = 0;
  return rc;
}

/* ---- heartbeat ---- */

typedef struct sq_heartbeat_req {
  sq_req h;
  jobq_storage_lease *leases;
  size_t n;
  int64_t lease_until;
} sq_heartbeat_req;

static int heartbeat_run(sq_store *s, sq_req *req) {
  sq_heartbeat_req *r = (sq_heartbeat_req *)req;
  /* Exactly the caller's time, however long this request waited for the
   * write lock: the caller's clock may not be the wall clock (an injected
   * one), and a rescue at a given "now" must not depend on how the writer
   * was scheduled. A live process's heartbeat that waits is covered by the
   * live-owner grace (live_grace, above). */
  int64_t until = r->lease_until;
  for (size_t i = 0; i < r->n; i++) {
    sqlite3_stmt *u = s->ws[WS_HEARTBEAT];
    sqlite3_bind_int64(u, 1, until);
    sqlite3_bind_text(u, 2, r->leases[i].id, -1, SQLITE_STATIC);
    sqlite3_bind_int(u, 3, r->leases[i].attempt);
    int src = sqlite3_step(u);
    r->leases[i].still_running = src == SQLITE_ROW;
    r->leases[i].cancel_requested = src == SQLITE_ROW ? sqlite3_column_int(u, 0) : 0;
    sq_claimed *e = src == SQLITE_ROW ? jobq__map_get(&s->claimed, r->leases[i].id) : NULL;
    if (e) {
      e->until = until;
      s->lease_dirty = 1;
    }
    while (src == SQLITE_ROW) src = sqlite3_step(u);
    sqlite3_reset(u);
    sqlite3_clear_bindings(u);
    if (src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot extend a lease", s->path);
  }
  return 0;
}

static const sq_op heartbeat_op = {heartbeat_run, NULL};

int jobq__sq_heartbeat(void *st, jobq_storage_lease *l, size_t n, int64_t lease_until) {
  sq_heartbeat_req r = {0};
  r.h.op = &heartbeat_op;
  r.leases = l;
  r.n = n;
  r.lease_until = lease_until;
  return jobq__sq_submit(st, &r.h);
}

/* ---- rescue ---- */

typedef struct sq_rescue_req {
  sq_req h;
  int64_t now;
  int force_scan; /* scan the running jobs even if no owner's lease row expired */
  size_t *rescued;
} sq_rescue_req;

/* After a rescue scan: every expired owner row gets the earliest lease of
 * the jobs its owner still runs, or goes (it runs none). */
static int fix_lease_rows(sq_store *s, int64_t now) {
  sqlite3_stmt *m = s->ws[WS_LEASE_MINS], *f = s->ws[WS_LEASE_FIX];
  int src, rc = 0;
  while (rc == 0 && (src = sqlite3_step(m)) == SQLITE_ROW) {
    if (sqlite3_column_type(m, 0) == SQLITE_NULL) continue;
    sqlite3_bind_int64(f, 1, sqlite3_column_int64(m, 0));
    sqlite3_bind_int64(f, 2, sqlite3_column_int64(m, 1));
    sqlite3_bind_int64(f, 3, now);
    rc = jobq__sq_run(s, f, "cannot update a lease");
  }
  if (rc == 0 && src != SQLITE_DONE) rc = jobq__sq_error(s->w, src, "cannot read leases", s->path);
  sqlite3_reset(m);
  if (rc) return rc;
  /* Rows still expired are owners that run nothing (every job whose lease
   * passed was just rescued, so the others' earliest is not in the past),
   * or live owners whose heartbeat is late: those keep their row, which
   * says they have a lease to renew. */
  sqlite3_stmt *d = s->ws[WS_LEASES_GONE];
  sqlite3_bind_int64(d, 1, now);
  return jobq__sq_run(s, d, "cannot drop leases");
}

static int rescue_run(sq_store *s, sq_req *req) {
  sq_rescue_req *r = (sq_rescue_req *)req;
  /* Running jobs have no index (it cost every claim and finish): look at
   * them only when some owner's earliest lease has passed. */
  sqlite3_stmt *q = s->ws[WS_LEASES_EXPIRED];
  sqlite3_bind_int64(q, 1, r->now);
  int src = sqlite3_step(q);
  int expired = src == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (src != SQLITE_ROW) return jobq__sq_error(s->w, src, "cannot read leases", s->path);
  *r->rescued = 0;
  if (expired == 0 && !r->force_scan) {
    jobq__sq_prune_events(s);
    return 0;
  }
  sqlite3_stmt *u = s->ws[WS_RESCUE];
  sqlite3_bind_int64(u, 1, r->now);
  sqlite3_bind_int64(u, 2, s->live_on ? r->now - s->live_grace : r->now);
  size_t n = 0;
  while ((src = sqlite3_step(u)) == SQLITE_ROW) {
    n++;
    jobq__sq_forget_claim(s, (const char *)sqlite3_column_text(u, 0)); /* if it was this store's */
    int st = sqlite3_column_int(u, 2);
    int pub = SQ_IS_QUEUED(st) ? JOBQ_QUEUED : st;
    jobq__sq_event(s, jobq__state_end_event(pub), pub, (const char *)sqlite3_column_text(u, 0),
                   (const char *)sqlite3_column_text(u, 1), 0, NULL, sqlite3_column_int(u, 3),
                   (const char *)sqlite3_column_text(u, 4), NULL);
    /* RETURNING rows were all made by the first step: other statements may
     * run between steps. */
    if (pub != JOBQ_QUEUED && sqlite3_column_type(u, 6) != SQLITE_NULL) {
      int rc = jobq__sq_outbox_end(s, (const char *)sqlite3_column_text(u, 0), pub,
                                   (const char *)sqlite3_column_text(u, 6), r->now);
      if (rc) {
        sqlite3_reset(u);
        sqlite3_clear_bindings(u);
        return rc;
      }
    }
    if (pub != JOBQ_QUEUED && sqlite3_column_type(u, 5) != SQLITE_NULL) {
      int rc = jobq__sq_batch_member_done(
          s, (const char *)sqlite3_column_text(u, 5), (const char *)sqlite3_column_text(u, 0),
          (const char *)sqlite3_column_text(u, 1), pub, (const char *)sqlite3_column_text(u, 4),
          r->now);
      if (rc) {
        sqlite3_reset(u);
        sqlite3_clear_bindings(u);
        return rc;
      }
    }
  }
  sqlite3_reset(u);
  sqlite3_clear_bindings(u);
  if (src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot rescue jobs", s->path);
  *r->rescued = n;
  int rc = fix_lease_rows(s, r->now);
  if (rc) return rc;
  jobq__sq_prune_events(s);
  return 0;
}

static const sq_op rescue_op = {rescue_run, NULL};

/* How often rescue looks at the running jobs themselves, whatever the lease
 * rows say: for jobs no row stands for (claimed by a libjobq older than
 * schema 4 still running when the file was migrated, or stamped with a
 * clock far behind this one's). A read, beside the writer; about 100 ms
 * per million jobs. */
#define SAFETY_SCAN_MS 600000

int jobq__sq_rescue(void *st, int64_t now, size_t *n_out) {
  sq_store *s = st;
  sq_rescue_req r = {0};
  r.h.op = &rescue_op;
  r.now = now;
  r.rescued = n_out;
  *n_out = 0;
  int64_t wall = jobq__sq_wall_ms();
  if (wall - atomic_load(&s->last_scan) >= SAFETY_SCAN_MS) {
    int rc = jobq__sq_any_expired(s, now, &r.force_scan);
    if (rc) return rc;
    atomic_store(&s->last_scan, wall);
  }
  return jobq__sq_submit(st, &r.h);
}
