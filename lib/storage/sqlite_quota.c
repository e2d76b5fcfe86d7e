/* Per-owner quotas on the SQLite backend (set_quotas).
 *
 * jobq_owner_open(owner, kind, n) holds, for each owner and kind, an upper
 * bound of its unfinished jobs: an insert by a queue with quotas adds 1,
 * and nothing subtracts. Subtracting would put a write on the path of every
 * finish, rescue and cancel of every owned job, in every process (as would
 * an index of unfinished owned jobs, whose entries, scattered by owner,
 * halved end-to-end throughput), for the sake of the one submit in many
 * that comes near a quota. A check under the bound is answered by a
 * primary-key read; a check at the bound counts the owner's unfinished jobs
 * exactly (the owner index, jobq_jobs_owner), sets the bounds back to the
 * counts, and decides on those. An owner who keeps submitting at its quota
 * pays that count each time: it is being refused anyway.
 *
 * Everything runs on the write connection inside the insert's transaction,
 * so two processes cannot both take an owner's last place; a failed or
 * rolled-back request takes its additions back with it. */
#include "storage/sqlite_int.h"
#include "util/err.h"

#include <string.h>

static const char *const sql[WS_COUNT] = {
  /* Both bounds of an owner in one walk of its few rows: all kinds, and
   * kind ?2. */
  [WS_QUOTA_BOUNDS] =
      "SELECT total(n), total(CASE WHEN kind = ?2 THEN n END) FROM jobq_owner_open "
      "WHERE owner = ?1",
  [WS_QUOTA_ADD] =
      "INSERT INTO jobq_owner_open (owner, kind, n) VALUES (?1, ?2, 1) "
      "ON CONFLICT (owner, kind) DO UPDATE SET n = n + 1",
  [WS_QUOTA_EXACT] =
      "SELECT kind, count(*) FROM jobq_jobs WHERE owner = ?1 AND state IN (0, 1, 5, 6) GROUP BY kind",
  [WS_QUOTA_CLEAR] = "DELETE FROM jobq_owner_open WHERE owner = ?1",
  [WS_QUOTA_SET] = "INSERT INTO jobq_owner_open (owner, kind, n) VALUES (?1, ?2, ?3)",
};

int jobq__sq_quota_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

/* The bounds of owner's unfinished jobs: of all kinds, and of kind. */
static int bounds(sq_store *s, const char *owner, const char *kind, long *all, long *one) {
  sqlite3_stmt *st = s->ws[WS_QUOTA_BOUNDS];
  sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  *all = rc == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : 0;
  *one = rc == SQLITE_ROW ? (long)sqlite3_column_int64(st, 1) : 0;
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
                                             : jobq__sq_error(s->w, rc, "cannot read an owner's count", s->path);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

/* Counts owner's unfinished jobs exactly and makes the bounds those counts. */
static int recount(sq_store *s, const char *owner) {
  sqlite3_stmt *clear = s->ws[WS_QUOTA_CLEAR];
  sqlite3_bind_text(clear, 1, owner, -1, SQLITE_STATIC);
  int rc = jobq__sq_run(s, clear, "cannot recount an owner's jobs");
  if (rc) return rc;
  sqlite3_stmt *ex = s->ws[WS_QUOTA_EXACT], *set = s->ws[WS_QUOTA_SET];
  sqlite3_bind_text(ex, 1, owner, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(ex)) == SQLITE_ROW) {
    sqlite3_bind_text(set, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(set, 2, (const char *)sqlite3_column_text(ex, 0), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(set, 3, sqlite3_column_int64(ex, 1));
    if ((rc = jobq__sq_run(s, set, "cannot recount an owner's jobs")) != 0) break;
    rc = SQLITE_ROW;
  }
  if (rc == SQLITE_DONE) rc = 0;
  else if (rc > 0) rc = jobq__sq_error(s->w, rc, "cannot recount an owner's jobs", s->path);
  sqlite3_reset(ex);
  sqlite3_clear_bindings(ex);
  return rc;
}

int jobq__sq_quota_check(sq_store *s, const char *owner, const char *kind, long pending_kind,
                         long pending_all) {
  long all, one;
  int rc = bounds(s, owner, kind, &all, &one), counted = 0;
  if (rc) return rc;
  for (size_t q = 0; q < s->n_quotas; q++) {
    const char *qk = s->quotas[q].kind;
    if (qk && strcmp(qk, kind) != 0) continue;
    long pending = qk ? pending_kind : pending_all;
    if ((qk ? one : all) + pending < s->quotas[q].max) continue;
    if (!counted) { /* at the bound: count exactly, once per check */
      if ((rc = recount(s, owner)) != 0 || (rc = bounds(s, owner, kind, &all, &one)) != 0) return rc;
      counted = 1;
    }
    long n = qk ? one : all;
    if (n + pending >= s->quotas[q].max)
      return jobq__err(JOBQ_EQUOTA,
                       "sqlite storage: owner '%.256s' has %ld unfinished jobs%s%s%s; its quota "
                       "is %d",
                       owner, n + pending, qk ? " of kind '" : "", qk ? qk : "", qk ? "'" : "",
                       s->quotas[q].max);
  }
  /* A later quota may have recounted after an earlier one passed on the
   * bound: the bounds only went down, so the earlier pass still holds. */
  return 0;
}

int jobq__sq_quota_add_many(sq_store *s, jobq_storage_job *const *jobs, size_t k) {
  /* One statement for the owned jobs of a run (an upsert per row costs a
   * statement's overhead each); ON CONFLICT applies row by row, so an owner
   * twice in the run is counted twice. */
  const jobq_storage_job *own[JOBQ__SQ_QUOTA_MANY];
  size_t m = 0;
  for (size_t i = 0; i < k; i++) {
    if (jobs[i]->owner == NULL) continue;
    if (m == JOBQ__SQ_QUOTA_MANY) {
      int rc = jobq__sq_quota_add_many(s, jobs + i, k - i);
      if (rc) return rc;
      break;
    }
    own[m++] = jobs[i];
  }
  if (m == 0) return 0;
  if (m == 1) return jobq__sq_quota_add(s, own[0]->owner, own[0]->kind);
  sqlite3_stmt **st = &s->quota_many[m];
  if (*st == NULL) {
    char sql[96 + JOBQ__SQ_QUOTA_MANY * 12];
    size_t n = (size_t)snprintf(sql, sizeof sql, "INSERT INTO jobq_owner_open (owner, kind, n) VALUES ");
    for (size_t i = 0; i < m; i++) n += (size_t)snprintf(sql + n, sizeof sql - n, "%s(?, ?, 1)", i ? "," : "");
    snprintf(sql + n, sizeof sql - n, " ON CONFLICT (owner, kind) DO UPDATE SET n = n + 1");
    int rc = sqlite3_prepare_v3(s->w, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) return jobq__sq_error(s->w, rc, "cannot prepare a statement", s->path);
  }
  for (size_t i = 0; i < m; i++) {
    sqlite3_bind_text(*st, (int)(2 * i + 1), own[i]->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(*st, (int)(2 * i + 2), own[i]->kind, -1, SQLITE_STATIC);
  }
  return jobq__sq_run(s, *st, "cannot count owners' jobs");
}

int jobq__sq_quota_add(sq_store *s, const char *owner, const char *kind) {
  sqlite3_stmt *st = s->ws[WS_QUOTA_ADD];
  sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
  return jobq__sq_run(s, st, "cannot count an owner's job");
}
