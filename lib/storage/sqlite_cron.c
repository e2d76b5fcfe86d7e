/* Cron schedules on the SQLite backend (cron_put, cron_del, cron_list,
 * cron_fire), in the table jobq_cron (schema 6).
 *
 * Every process on the file evaluates the same schedules, so firing is a
 * compare-and-set on the schedule's next_at in the same transaction as the
 * inserts of its occurrences' jobs: the writer's transactions are
 * serialised by SQLite's write lock, so of two processes that read the same
 * next_at, the second finds it moved and stores nothing. The occurrence's
 * dedupe key is looked up as well (any job that holds it, in any state), so
 * that an occurrence cannot be stored twice even if a schedule was put back
 * with an old next_at. The backend knows no cron syntax: the core computed
 * the times. */
#include "storage/sqlite_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static const char *const sql[WS_COUNT] = {
  /* A replacement keeps next_at and last_run when expr and tz are the
   * stored ones (every right-hand side reads the old row). */
  [WS_CRON_PUT] =
      "INSERT INTO jobq_cron (name, expr, tz, kind, payload, owner, priority, max_attempts, "
      "missed, next_at, last_run) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
      "ON CONFLICT (name) DO UPDATE SET "
      "next_at = CASE WHEN expr = excluded.expr AND tz = excluded.tz THEN next_at "
      "ELSE excluded.next_at END, "
      "last_run = CASE WHEN expr = excluded.expr AND tz = excluded.tz THEN last_run "
      "ELSE excluded.last_run END, "
      "expr = excluded.expr, tz = excluded.tz, kind = excluded.kind, payload = excluded.payload, "
      "owner = excluded.owner, priority = excluded.priority, "
      "max_attempts = excluded.max_attempts, missed = excluded.missed",
  [WS_CRON_DEL] = "DELETE FROM jobq_cron WHERE name = ?1",
  [WS_CRON_CAS] =
      "UPDATE jobq_cron SET next_at = ?3, last_run = CASE WHEN ?4 > 0 THEN ?4 ELSE last_run END "
      "WHERE name = ?1 AND next_at = ?2",
  [WS_CRON_KEY] = "SELECT 1 FROM jobq_jobs WHERE dedupe_key = ?1 LIMIT 1",
};

int jobq__sq_cron_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

/* ---- put, del ---- */

typedef struct sq_cron_req {
  sq_req h;
  const jobq_storage_cron *c; /* put */
  const char *name;           /* del, fire */
  int64_t expect, next, now;  /* fire */
  jobq_storage_job *const *jobs;
  const char *const *hooks; /* cron_fire_hooked: the jobs' subscriptions, may be NULL */
  size_t n;
  size_t *n_inserted;
} sq_cron_req;

static int put_run(sq_store *s, sq_req *req) {
  const jobq_storage_cron *c = ((sq_cron_req *)req)->c;
  sqlite3_stmt *st = s->ws[WS_CRON_PUT];
  sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, c->expr, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, c->tz, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, c->kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, c->payload, -1, SQLITE_STATIC);
  jobq__sq_bind_text_or_null(st, 6, c->owner);
  sqlite3_bind_int(st, 7, c->priority);
  sqlite3_bind_int(st, 8, c->max_attempts);
  sqlite3_bind_int(st, 9, c->missed_policy);
  sqlite3_bind_int64(st, 10, c->next_at);
  sqlite3_bind_int64(st, 11, c->last_run);
  return jobq__sq_run(s, st, "cannot store a cron schedule");
}

static int del_run(sq_store *s, sq_req *req) {
  sq_cron_req *r = (sq_cron_req *)req;
  sqlite3_stmt *st = s->ws[WS_CRON_DEL];
  sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
  int rc = jobq__sq_run(s, st, "cannot remove a cron schedule");
  if (rc == 0 && sqlite3_changes(s->w) == 0)
    rc = jobq__err(JOBQ_ENOTFOUND, "sqlite storage: no cron schedule '%.128s'", r->name);
  return rc;
}

static const sq_op put_op = {put_run, NULL};
static const sq_op del_op = {del_run, NULL};

int jobq__sq_cron_put(void *st, const jobq_storage_cron *c) {
  sq_cron_req r = {.h = {.op = &put_op}, .c = c};
  return jobq__sq_submit(st, &r.h);
}

int jobq__sq_cron_del(void *st, const char *name) {
  sq_cron_req r = {.h = {.op = &del_op}, .name = name};
  return jobq__sq_submit(st, &r.h);
}

/* ---- fire ---- */

/* 1 if some stored job holds key, 0 if none, or a JOBQ code. */
static int key_taken(sq_store *s, const char *key) {
  sqlite3_stmt *st = s->ws[WS_CRON_KEY];
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  int out = rc == SQLITE_ROW    ? 1
            : rc == SQLITE_DONE ? 0
                                : jobq__sq_error(s->w, rc, "cannot look up an occurrence's key",
                                                 s->path);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return out;
}

static int fire_run(sq_store *s, sq_req *req) {
  sq_cron_req *r = (sq_cron_req *)req;
  *r->n_inserted = 0;
  int64_t last = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->jobs[i]->run_at > last) last = r->jobs[i]->run_at;
  sqlite3_stmt *st = s->ws[WS_CRON_CAS];
  sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, r->expect);
  sqlite3_bind_int64(st, 3, r->next);
  sqlite3_bind_int64(st, 4, last);
  int rc = jobq__sq_run(s, st, "cannot advance a cron schedule");
  if (rc || sqlite3_changes(s->w) == 0) return rc; /* another process fired it */
  size_t done = 0;
  for (size_t i = 0; i < r->n; i++) {
    const jobq_storage_job *j = r->jobs[i];
    if (j->dedupe_key) {
      int taken = key_taken(s, j->dedupe_key);
      if (taken < 0) return taken;
      if (taken) continue;
    }
    if ((rc = jobq__sq_insert_row(s, j, r->hooks ? r->hooks[i] : NULL, r->now)) != 0) return rc;
    done++;
  }
  *r->n_inserted = done;
  return 0;
}

static void fire_undo(sq_store *s, sq_req *req) {
  (void)s;
  *((sq_cron_req *)req)->n_inserted = 0;
}

static const sq_op fire_op = {fire_run, fire_undo};

int jobq__sq_cron_fire(void *st, const char *name, int64_t expect_next_at, int64_t new_next_at,
                       jobq_storage_job *const *jobs, size_t n, int64_t now, size_t *n_inserted) {
  *n_inserted = 0;
  /* The CAS and the inserts go together: a savepoint of their own. */
  sq_cron_req r = {.h = {.op = &fire_op, .savepoint = 1},
                   .name = name,
                   .expect = expect_next_at,
                   .next = new_next_at,
                   .now = now,
                   .jobs = jobs,
                   .n = n,
                   .n_inserted = n_inserted};
  return jobq__sq_submit(st, &r.h);
}

int jobq__sq_cron_fire_hooked(void *st, const char *name, int64_t expect_next_at,
                              int64_t new_next_at, jobq_storage_job *const *jobs,
                              const char *const *webhooks, size_t n, int64_t now,
                              size_t *n_inserted) {
  *n_inserted = 0;
  int rc = jobq__sq_hooks_check(webhooks, n);
  if (rc) return rc;
  sq_cron_req r = {.h = {.op = &fire_op, .savepoint = 1},
                   .name = name,
                   .expect = expect_next_at,
                   .next = new_next_at,
                   .now = now,
                   .jobs = jobs,
                   .hooks = webhooks,
                   .n = n,
                   .n_inserted = n_inserted};
  return jobq__sq_submit(st, &r.h);
}

/* ---- list ---- */

static char *col_dup(sqlite3_stmt *st, int i, int *oom) {
  const unsigned char *t = sqlite3_column_text(st, i);
  if (t == NULL) return NULL;
  size_t n = (size_t)sqlite3_column_bytes(st, i);
  char *d = malloc(n + 1);
  if (d == NULL) {
    *oom = 1;
    return NULL;
  }
  memcpy(d, t, n);
  d[n] = '\0';
  return d;
}

static void cron_clear(jobq_storage_cron *c) {
  free(c->name);
  free(c->expr);
  free(c->tz);
  free(c->kind);
  free(c->payload);
  free(c->owner);
}

int jobq__sq_cron_list(void *st, jobq_storage_cron **out, size_t *n_out) {
  sq_store *s = st;
  *out = NULL;
  *n_out = 0;
  sq_reader *r = jobq__sq_reader(s);
  sqlite3_stmt *q = NULL;
  jobq_storage_cron *v = NULL;
  size_t n = 0, cap = 0;
  int rc = sqlite3_prepare_v2(r->db,
                              "SELECT name, expr, tz, kind, payload, owner, priority, "
                              "max_attempts, missed, next_at, last_run FROM jobq_cron ORDER BY name",
                              -1, &q, NULL);
  if (rc != SQLITE_OK) {
    rc = jobq__sq_error(r->db, rc, "cannot list cron schedules", s->path);
    goto out;
  }
  while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      jobq_storage_cron *nv = realloc(v, nc * sizeof *nv);
      if (nv == NULL) {
        rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
        goto out;
      }
      v = nv;
      cap = nc;
    }
    jobq_storage_cron *c = &v[n++];
    memset(c, 0, sizeof *c);
    int oom = 0;
    c->name = col_dup(q, 0, &oom);
    c->expr = col_dup(q, 1, &oom);
    c->tz = col_dup(q, 2, &oom);
    c->kind = col_dup(q, 3, &oom);
    c->payload = col_dup(q, 4, &oom);
    c->owner = col_dup(q, 5, &oom);
    c->priority = sqlite3_column_int(q, 6);
    c->max_attempts = sqlite3_column_int(q, 7);
    c->missed_policy = sqlite3_column_int(q, 8);
    c->next_at = sqlite3_column_int64(q, 9);
    c->last_run = sqlite3_column_int64(q, 10);
    if (oom) {
      rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
      goto out;
    }
  }
  rc = rc == SQLITE_DONE ? 0 : jobq__sq_error(r->db, rc, "cannot list cron schedules", s->path);
out:
  sqlite3_finalize(q);
  uv_mutex_unlock(&r->mu);
  if (rc) {
    for (size_t i = 0; i < n; i++) cron_clear(&v[i]);
    free(v);
    return rc;
  }
  if (n == 0) {
    free(v);
    v = NULL;
  }
  *out = v;
  *n_out = n;
  return 0;
}
