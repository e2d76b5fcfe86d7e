/* The SQLite backend's writer: one thread owns the write connection and
 * commits in groups. Every insert, claim, finish, progress, cancel,
 * heartbeat and rescue that arrived while the previous transaction ran goes
 * into the next one; each request runs inside its own savepoint, so one
 * request's failure rolls back only that request. Callers wait until the
 * transaction carrying their request committed: a returned submit is
 * durable. With synchronous=FULL, many submitters thus share one fsync,
 * which is how durable throughput goes far past the disk's fsync rate. */
#include "storage/sqlite_int.h"
#include "util/mem.h"
#include "util/err.h"
#include "util/mutex.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int jobq__sq_row_to_job(sqlite3_stmt *st, jobq_storage_job *out, int64_t *seq, int *raw_state);

#define INSERT_HEAD                                                                         \
  "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, max_attempts, created_at, owner, " \
  "payload, dedupe_key, dedupe_ttl) VALUES "
#define INSERT_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define INSERT_MANY 32

static const char *const wsql[WS_COUNT] = {
  [WS_BEGIN] = "BEGIN IMMEDIATE",
  [WS_COMMIT] = "COMMIT",
  [WS_ROLLBACK] = "ROLLBACK",
  [WS_SAVEPOINT] = "SAVEPOINT r",
  [WS_RELEASE] = "RELEASE r",
  [WS_ROLLBACK_TO] = "ROLLBACK TO r",
  [WS_INSERT] = INSERT_HEAD INSERT_ROW,
  [WS_DEDUPE_FIND] =
      "SELECT id, state, finished_at, dedupe_ttl FROM jobq_jobs WHERE dedupe_key = ?1 "
      "ORDER BY seq DESC LIMIT 1",
  [WS_PROMOTE] = "UPDATE jobq_jobs SET state = 0 WHERE state = 5 AND run_at <= ?1",
  [WS_TOP_KIND] =
      "SELECT seq, priority FROM jobq_jobs WHERE state = 0 AND kind = ?1 "
      "ORDER BY priority DESC, seq LIMIT ?2",
  [WS_KINDS_DUE] = "SELECT DISTINCT kind FROM jobq_jobs WHERE state = 0",
  /* A claim takes the first ?2 due jobs of kind ?1 in two statements per
   * kind, whatever their number: WS_TAKE_READ reads them as they will be
   * once taken, then WS_TAKE takes exactly those (the same index walk, in
   * the same transaction on the one write connection, finds the same rows).
   * ?3: the kind's default max attempts. One set-based statement of each
   * beats one statement per job, and RETURNING, whose temporary table
   * costs more than reading the rows first. */
  [WS_TAKE] =
      "UPDATE jobq_jobs SET state = 1, attempts = attempts + 1, started_at = ?4, "
      "finished_at = NULL, lease_until = ?5, lease_owner = ?6, progress = 0, "
      "max_attempts = CASE WHEN max_attempts = 0 THEN ?3 ELSE max_attempts END "
      "WHERE seq IN (SELECT seq FROM jobq_jobs WHERE state = 0 AND kind = ?1 "
      "ORDER BY priority DESC, seq LIMIT ?2)",
  [WS_FIND] = "SELECT state, attempts, cancel_req FROM jobq_jobs WHERE id = ?1",
  /* One statement applies an outcome, unless a cancel was requested: then
   * the job ends cancelled. Failed attempts are appended to attempt_log. */
  [WS_FINISH] =
      "UPDATE jobq_jobs SET "
      "state = CASE WHEN cancel_req THEN 4 ELSE ?2 END, "
      "run_at = CASE WHEN cancel_req THEN run_at ELSE coalesce(?3, run_at) END, "
      "result = CASE WHEN cancel_req THEN result ELSE coalesce(?4, result) END, "
      "error = CASE WHEN cancel_req THEN coalesce(?5, 'cancelled') ELSE coalesce(?5, error) END, "
      "progress = ?6, step = coalesce(?7, step), "
      "finished_at = CASE WHEN cancel_req THEN ?9 ELSE ?8 END, lease_until = NULL, "
      "attempt_log = CASE WHEN cancel_req OR ?5 IS NOT NULL THEN json_insert(coalesce(attempt_log, "
      "'[]'), '$[#]', json_array(started_at, ?9, CASE WHEN cancel_req THEN coalesce(?5, "
      "'cancelled') ELSE ?5 END)) ELSE attempt_log END "
      "WHERE id = ?1 AND state = 1 AND attempts = ?10 RETURNING state, kind",
  /* A released job that was meant to stop ends cancelled instead. */
  [WS_RELEASE_JOB] =
      "UPDATE jobq_jobs SET state = CASE WHEN cancel_req THEN 4 ELSE 0 END, "
      "attempts = CASE WHEN cancel_req THEN attempts ELSE attempts - 1 END, "
      "error = CASE WHEN cancel_req THEN 'cancelled' ELSE error END, "
      "finished_at = CASE WHEN cancel_req THEN ?2 ELSE finished_at END, "
      "attempt_log = CASE WHEN cancel_req THEN json_insert(coalesce(attempt_log, '[]'), '$[#]', "
      "json_array(started_at, ?2, 'cancelled')) ELSE attempt_log END, "
      "run_at = ?2, lease_until = NULL "
      "WHERE id = ?1 AND state = 1 AND attempts = ?3 RETURNING state, kind",
  [WS_PROGRESS] =
      "UPDATE jobq_jobs SET progress = ?3, step = coalesce(?4, step) "
      "WHERE id = ?1 AND state = 1 AND attempts = ?2",
  [WS_CANCEL_QUEUED] =
      "UPDATE jobq_jobs SET state = 4, finished_at = ?2, error = 'cancelled' WHERE id = ?1",
  [WS_CANCEL_RUNNING] = "UPDATE jobq_jobs SET cancel_req = 1 WHERE id = ?1",
  [WS_HEARTBEAT] =
      "UPDATE jobq_jobs SET lease_until = ?1 WHERE id = ?2 AND state = 1 AND attempts = ?3 "
      "RETURNING cancel_req",
  [WS_RESCUE] =
      "UPDATE jobq_jobs SET "
      "state = CASE WHEN cancel_req THEN 4 WHEN attempts < max_attempts THEN 0 ELSE 3 END, "
      "finished_at = CASE WHEN cancel_req OR attempts >= max_attempts THEN ?1 ELSE NULL END, "
      "error = 'lease expired: the process running the job stopped', "
      "run_at = ?1, lease_until = NULL, "
      "attempt_log = json_insert(coalesce(attempt_log, '[]'), '$[#]', json_array(started_at, ?1, "
      "'lease expired: the process running the job stopped')) "
      "WHERE state = 1 AND lease_until < ?1 RETURNING id, kind, state, attempts, error",
  [WS_EVENT] =
      "INSERT INTO jobq_events (origin, job_id, kind, type, state, progress, step, attempt, error, "
      "result, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
  [WS_LISTENERS] = "SELECT count(*) FROM jobq_listeners WHERE token != ?1 AND until > ?2",
  [WS_LISTEN] = "INSERT OR REPLACE INTO jobq_listeners (token, until) VALUES (?1, ?2)",
  [WS_UNLISTEN] = "DELETE FROM jobq_listeners WHERE token = ?1",
  [WS_PRUNE] = "DELETE FROM jobq_events WHERE time < ?1",
  [WS_CHECKPOINT] =
      "UPDATE jobq_jobs SET ck_stage = ?3, ck_output = ?4, progress = ?5, step = coalesce(?6, step) "
      "WHERE id = ?1 AND state = 1 AND attempts = ?2",
  /* Oldest first; no index on finished_at (each would cost every finish):
   * pruning is rare and runs on the writer, off every caller's path. */
  [WS_PRUNE_JOBS] =
      "DELETE FROM jobq_jobs WHERE seq IN (SELECT seq FROM jobq_jobs WHERE state IN (2, 3, 4) "
      "AND finished_at < ?1 ORDER BY seq LIMIT ?2) RETURNING id",
  /* attempt_log is left out: a claimed job's log is rebuilt from its
   * attempts. */
  [WS_TAKE_READ] =
      "SELECT seq, id, kind, 1, priority, run_at, attempts + 1, "
      "CASE WHEN max_attempts = 0 THEN ?3 ELSE max_attempts END, 0, cancel_req, created_at, ?4, "
      "NULL, owner, payload, step, result, error, dedupe_key, dedupe_ttl, NULL "
      "FROM jobq_jobs WHERE state = 0 AND kind = ?1 ORDER BY priority DESC, seq LIMIT ?2",
  /* A success of a job this store claimed, found by seq; anything else
   * (a cancel asked for meanwhile, another attempt) goes to WS_FINISH. */
  /* Leases by owner (schema 4): see lease_row and do_rescue. */
  [WS_LEASE_SET] = "INSERT OR REPLACE INTO jobq_leases (owner, until) VALUES (?1, ?2)",
  [WS_LEASE_DROP] = "DELETE FROM jobq_leases WHERE owner = ?1",
  [WS_LEASES_EXPIRED] = "SELECT count(*) FROM jobq_leases WHERE until < ?1",
  [WS_LEASE_MINS] =
      "SELECT lease_owner, min(lease_until) FROM jobq_jobs WHERE state = 1 GROUP BY lease_owner",
  [WS_LEASE_FIX] = "UPDATE jobq_leases SET until = ?2 WHERE owner = ?1 AND until < ?3",
  [WS_LEASES_GONE] = "DELETE FROM jobq_leases WHERE until < ?1",
  [WS_FINISH_FAST] =
      "UPDATE jobq_jobs SET state = 2, result = ?2, progress = 100, step = coalesce(?3, step), "
      "finished_at = ?4, lease_until = NULL "
      "WHERE seq = ?1 AND id = ?5 AND state = 1 AND attempts = ?6 AND cancel_req = 0",
};

/* Writes an event row for other processes' listeners, when there are any.
 * News, not state: a row that cannot be written is skipped. */
static void ev_row(sq_store *s, int type, int state, const char *id, const char *kind,
                   int progress, const char *step, int attempt, const char *error,
                   const char *result) {
  if (!s->share) return;
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
static void check_listeners(sq_store *s) {
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

int jobq__sq_prepare_writer(sq_store *s) {
  /* WS_INSERT_MANY: WS_INSERT with INSERT_MANY rows of values */
  char many[sizeof INSERT_HEAD + INSERT_MANY * sizeof INSERT_ROW];
  size_t n = (size_t)snprintf(many, sizeof many, "%s", INSERT_HEAD);
  for (int i = 0; i < INSERT_MANY; i++)
    n += (size_t)snprintf(many + n, sizeof many - n, "%s%s", i ? "," : "", INSERT_ROW);
  for (int i = 0; i < WS_COUNT; i++) {
    int rc = sqlite3_prepare_v3(s->w, i == WS_INSERT_MANY ? many : wsql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &s->ws[i], NULL);
    if (rc != SQLITE_OK) return jobq__sq_error(s->w, rc, "cannot prepare a statement", s->path);
  }
  return 0;
}

/* Runs a statement that returns no rows; 0 or a JOBQ code. */
static int run(sq_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : jobq__sq_error(s->w, rc, what, s->path);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return out;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *t) {
  if (t) sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

/* ---- the operations, on the writer thread inside a transaction ---- */

static void bind_job(sqlite3_stmt *st, int base, const jobq_storage_job *j, int64_t now) {
  sqlite3_bind_text(st, base + 1, j->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, base + 2, j->kind, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, base + 3, j->run_at > now ? SQ_SCHEDULED : SQ_DUE);
  sqlite3_bind_int(st, base + 4, j->priority);
  sqlite3_bind_int64(st, base + 5, j->run_at);
  sqlite3_bind_int(st, base + 6, j->max_attempts);
  sqlite3_bind_int64(st, base + 7, j->created_at);
  bind_text_or_null(st, base + 8, j->owner);
  sqlite3_bind_text(st, base + 9, j->payload, -1, SQLITE_STATIC);
  bind_text_or_null(st, base + 10, j->dedupe_key);
  sqlite3_bind_int64(st, base + 11, j->dedupe_ttl_ms);
}

/* One job, after its dedupe key (if any) found no live job. */
static int insert_one(sq_store *s, sq_req *r, size_t i) {
  jobq_storage_job *j = r->jobs[i];
  r->out_dup[i] = 0;
  if (j->dedupe_key && !(r->force && r->force[i])) {
    sqlite3_stmt *d = s->ws[WS_DEDUPE_FIND];
    sqlite3_bind_text(d, 1, j->dedupe_key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(d);
    if (rc == SQLITE_ROW) {
      int st = sqlite3_column_int(d, 1);
      int64_t fin = sqlite3_column_int64(d, 2), ttl = sqlite3_column_int64(d, 3);
      int live = st == SQ_DUE || st == SQ_SCHEDULED || st == JOBQ_RUNNING ||
                 (st == JOBQ_SUCCEEDED && r->now - fin < ttl);
      if (live) {
        snprintf(j->id, sizeof j->id, "%s", (const char *)sqlite3_column_text(d, 0));
        r->out_dup[i] = 1;
      }
    } else if (rc != SQLITE_DONE) {
      rc = jobq__sq_error(s->w, rc, "cannot look up a dedupe key", s->path);
      sqlite3_reset(d);
      sqlite3_clear_bindings(d);
      return rc;
    }
    sqlite3_reset(d);
    sqlite3_clear_bindings(d);
    if (r->out_dup[i]) return 0;
  }
  sqlite3_stmt *st = s->ws[WS_INSERT];
  bind_job(st, 0, j, r->now);
  int rc = run(s, st, "cannot insert a job");
  if (rc == 0) ev_row(s, JOBQ_EVENT_SUBMITTED, JOBQ_QUEUED, j->id, j->kind, 0, NULL, 0, NULL, NULL);
  return rc;
}

static int do_insert(sq_store *s, sq_req *r) {
  size_t i = 0;
  while (i < r->n) {
    /* INSERT_MANY jobs in a row without dedupe keys go in one statement:
     * a third of the cost of one statement each. */
    size_t k = 0;
    while (k < INSERT_MANY && i + k < r->n && r->jobs[i + k]->dedupe_key == NULL) k++;
    if (k < INSERT_MANY) {
      int rc = insert_one(s, r, i++);
      if (rc) return rc;
      continue;
    }
    sqlite3_stmt *st = s->ws[WS_INSERT_MANY];
    for (size_t m = 0; m < k; m++) bind_job(st, (int)m * 11, r->jobs[i + m], r->now);
    int rc = run(s, st, "cannot insert jobs");
    if (rc) return rc;
    for (size_t m = 0; m < k; m++) {
      r->out_dup[i + m] = 0;
      ev_row(s, JOBQ_EVENT_SUBMITTED, JOBQ_QUEUED, r->jobs[i + m]->id, r->jobs[i + m]->kind, 0,
             NULL, 0, NULL, NULL);
    }
    i += k;
  }
  return 0;
}

/* ---- the jobs this store claimed ---- */

static int remember_claim(sq_store *s, const char *id, int64_t seq, const char *kind,
                          int64_t until) {
  size_t kl = strlen(kind) + 1;
  sq_claimed *e = malloc(sizeof *e + kl);
  if (e == NULL || jobq__map_reserve(&s->claimed, 1) != 0) {
    free(e);
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  }
  size_t idn = strnlen(id, sizeof e->id - 1);
  memcpy(e->id, id, idn);
  e->id[idn] = '\0';
  e->seq = seq;
  e->until = until;
  memcpy(e->kind, kind, kl);
  free(jobq__map_del(&s->claimed, e->id)); /* an older claim of the same id */
  jobq__map_put(&s->claimed, e->id, e);
  return 0;
}

static void forget_claim(sq_store *s, const char *id) {
  void *e = jobq__map_del(&s->claimed, id);
  if (e && s->claimed.count == 0) s->lease_dirty = 1; /* nothing left to hold a lease for */
  free(e);
}

/* This store's row in jobq_leases: its "until" must never be later than
 * the lease of any job it runs, so that once one of them expires a rescuer
 * scans; earlier only costs a scan that finds nothing. The row is written
 * whenever a claim or heartbeat changed the leases (a claim always writes
 * it, so a row that a rescuer dropped comes back with the next job) and
 * dropped when nothing runs here. Once per transaction, not per job. */
static int lease_row(sq_store *s) {
  s->lease_dirty = 0;
  int64_t min = INT64_MAX;
  for (size_t i = 0; i < s->claimed.cap; i++) {
    const sq_claimed *e = s->claimed.slots[i].key ? s->claimed.slots[i].val : NULL;
    if (e && e->until < min) min = e->until;
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
    return run(s, d, "cannot drop this process's lease");
  }
  sqlite3_stmt *u = s->ws[WS_LEASE_SET];
  sqlite3_bind_int64(u, 1, s->token);
  sqlite3_bind_int64(u, 2, min);
  int rc = run(s, u, "cannot store this process's lease");
  if (rc == 0) s->lease_unsure = 0;
  return rc;
}

void jobq__sq_forget_claims(sq_store *s) {
  for (size_t i = 0; i < s->claimed.cap; i++)
    if (s->claimed.slots[i].key) free(s->claimed.slots[i].val);
  jobq__map_free(&s->claimed);
}

typedef struct cand {
  int64_t seq;
  int priority;
  size_t kind; /* index into the kinds asked for */
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Claims up to c->max jobs: the best due jobs of each kind (by the due
 * index, so O(log n) at any depth), merged by priority then age, taken in
 * one UPDATE ... RETURNING. */
static int do_claim(sq_store *s, sq_req *r) {
  const jobq_storage_claim *c = r->claim;
  *r->n_out = 0;
  int rc = 0;
  /* This runs inside the transaction, perhaps long after the request was
   * made (the write lock, other requests): the time is read again. */
  int64_t now = c->clock ? c->clock(c->clock_ud) : c->now;
  if (now < c->now) now = c->now;
  sqlite3_stmt *p = s->ws[WS_PROMOTE];
  sqlite3_bind_int64(p, 1, now);
  if ((rc = run(s, p, "cannot promote scheduled jobs"))) return rc;

  /* The kinds to look at: those asked for, or (any kind) those with due
   * jobs, less the excluded ones. */
  size_t nk = 0;
  char **owned = NULL;
  const char *const *kinds = c->kinds;
  if (kinds) {
    nk = c->n_kinds;
  } else {
    size_t cap = 0;
    sqlite3_stmt *k = s->ws[WS_KINDS_DUE];
    int src;
    while ((src = sqlite3_step(k)) == SQLITE_ROW) {
      const char *name = (const char *)sqlite3_column_text(k, 0);
      int skip = 0;
      for (size_t i = 0; i < c->n_exclude && !skip; i++) skip = strcmp(c->exclude[i], name) == 0;
      if (skip) continue;
      if (nk == cap) {
        cap = cap ? cap * 2 : 8;
        char **no = realloc(owned, cap * sizeof *no);
        if (no == NULL) { rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory"); break; }
        owned = no;
      }
      if ((owned[nk] = jobq__strdup(name)) == NULL) { rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory"); break; }
      nk++;
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = jobq__sq_error(s->w, src, "cannot list due kinds", s->path);
    sqlite3_reset(k);
    kinds = (const char *const *)owned;
  }
  /* How many to take of each kind: with one kind, as many as allowed;
   * with several, the best of each kind's best (by the due index alone)
   * merged by priority then age. */
  cand *cs = NULL;
  size_t nc = 0, *take = NULL;
  int64_t *seqs = NULL;
  if (rc == 0 && nk) {
    cs = nk > 1 ? malloc(nk * c->max * sizeof *cs) : NULL;
    take = calloc(nk, sizeof *take);
    seqs = malloc(c->max * sizeof *seqs);
    if ((nk > 1 && cs == NULL) || take == NULL || seqs == NULL)
      rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  }
  for (size_t i = 0; rc == 0 && i < nk; i++) {
    int lim = c->kinds && c->kind_limit && c->kind_limit[i] >= 0 ? c->kind_limit[i] : (int)c->max;
    if (lim > (int)c->max) lim = (int)c->max;
    if (lim <= 0) continue;
    if (nk == 1) {
      take[0] = (size_t)lim;
      break;
    }
    sqlite3_stmt *t = s->ws[WS_TOP_KIND];
    sqlite3_bind_text(t, 1, kinds[i], -1, SQLITE_STATIC);
    sqlite3_bind_int(t, 2, lim);
    int src;
    while ((src = sqlite3_step(t)) == SQLITE_ROW) {
      cs[nc].seq = sqlite3_column_int64(t, 0);
      cs[nc].priority = sqlite3_column_int(t, 1);
      cs[nc++].kind = i;
    }
    if (src != SQLITE_DONE) rc = jobq__sq_error(s->w, src, "cannot find the next jobs", s->path);
    sqlite3_reset(t);
    sqlite3_clear_bindings(t);
  }
  if (rc == 0 && nc) {
    qsort(cs, nc, sizeof *cs, cand_cmp);
    for (size_t i = 0; i < nc && i < c->max; i++) take[cs[i].kind]++;
  }
  int dflt = c->default_max_attempts > 0 ? c->default_max_attempts : 3;
  for (size_t i = 0; rc == 0 && i < nk; i++) {
    if (take[i] == 0) continue;
    int ma = dflt;
    for (size_t k = 0; k < c->n_ma; k++)
      if (c->ma_values[k] > 0 && strcmp(c->ma_kinds[k], kinds[i]) == 0) ma = c->ma_values[k];
    sqlite3_stmt *g = s->ws[WS_TAKE_READ];
    sqlite3_bind_text(g, 1, kinds[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(g, 2, (int64_t)take[i]);
    sqlite3_bind_int(g, 3, ma);
    sqlite3_bind_int64(g, 4, now);
    size_t first = *r->n_out;
    int src;
    while ((src = sqlite3_step(g)) == SQLITE_ROW && *r->n_out < c->max) {
      jobq_storage_job *j = &r->out[*r->n_out];
      int64_t sq = 0;
      if (jobq__sq_row_to_job(g, j, &sq, NULL) != 0) {
        rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
        break;
      }
      seqs[(*r->n_out)++] = sq;
      if ((rc = remember_claim(s, j->id, sq, kinds[i], now + c->lease_ms))) break;
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW)
      rc = jobq__sq_error(s->w, src, "cannot read the next jobs", s->path);
    sqlite3_reset(g);
    sqlite3_clear_bindings(g);
    if (rc) break;
    sqlite3_stmt *t = s->ws[WS_TAKE];
    sqlite3_bind_text(t, 1, kinds[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(t, 2, (int64_t)(*r->n_out - first));
    sqlite3_bind_int(t, 3, ma);
    sqlite3_bind_int64(t, 4, now);
    sqlite3_bind_int64(t, 5, now + c->lease_ms);
    sqlite3_bind_int64(t, 6, s->token);
    s->lease_dirty = 1;
    if ((rc = run(s, t, "cannot claim jobs"))) break;
    if ((size_t)sqlite3_changes(s->w) != *r->n_out - first)
      rc = jobq__err(JOBQ_ESTORAGE, "sqlite storage: a claim took %d jobs, not the %zu it read",
                     sqlite3_changes(s->w), *r->n_out - first);
  }
  /* Several kinds: back into claim order (priority, then age). */
  for (size_t i = 1; rc == 0 && nk > 1 && i < *r->n_out; i++) {
    jobq_storage_job tmp = r->out[i];
    int64_t ts = seqs[i];
    size_t j = i;
    while (j > 0 && (r->out[j - 1].priority < tmp.priority ||
                     (r->out[j - 1].priority == tmp.priority && seqs[j - 1] > ts))) {
      r->out[j] = r->out[j - 1];
      seqs[j] = seqs[j - 1];
      j--;
    }
    r->out[j] = tmp;
    seqs[j] = ts;
  }
  for (size_t i = 0; rc == 0 && i < *r->n_out; i++)
    ev_row(s, JOBQ_EVENT_STARTED, JOBQ_RUNNING, r->out[i].id, r->out[i].kind, 0, NULL,
           r->out[i].attempts, NULL, NULL);
  free(take);
  free(seqs);
  free(cs);
  for (size_t i = 0; owned && i < nk; i++) free(owned[i]);
  free(owned);
  return rc;
}

/* Why a finish matched no running attempt: gone, or not that attempt. */
static int finish_miss(sq_store *s, const char *id, int *out_state) {
  sqlite3_stmt *q = s->ws[WS_FIND];
  sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
  int src = sqlite3_step(q);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (src != SQLITE_ROW && src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot read a job", s->path);
  *out_state = src == SQLITE_DONE ? JOBQ_ENOTFOUND : JOBQ_ESTATE;
  return 0;
}

/* WS_FINISH_FAST: 1 if it applied, 0 if the general statement must. */
static int finish_fast(sq_store *s, const jobq_storage_finish *f, const sq_claimed *e, int *out_state,
                       int *rc) {
  sqlite3_stmt *u = s->ws[WS_FINISH_FAST];
  sqlite3_bind_int64(u, 1, e->seq);
  sqlite3_bind_text(u, 2, f->result ? f->result : "null", -1, SQLITE_STATIC);
  bind_text_or_null(u, 3, f->step);
  sqlite3_bind_int64(u, 4, f->now);
  sqlite3_bind_text(u, 5, f->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 6, f->attempt);
  if ((*rc = run(s, u, "cannot finish a job")) || sqlite3_changes(s->w) == 0) return *rc != 0;
  *out_state = JOBQ_SUCCEEDED;
  ev_row(s, JOBQ_EVENT_SUCCEEDED, JOBQ_SUCCEEDED, f->id, e->kind, 100, f->step, f->attempt, NULL,
         f->result ? f->result : "null");
  return 1;
}

static int do_finish_general(sq_store *s, const jobq_storage_finish *f, int *out_state);

static int do_finish_one(sq_store *s, const jobq_storage_finish *f, int *out_state) {
  const sq_claimed *e = jobq__map_get(&s->claimed, f->id);
  int rc = 0;
  if (e && f->outcome == JOBQ_OUTCOME_SUCCEEDED && finish_fast(s, f, e, out_state, &rc)) {
    if (rc == 0) forget_claim(s, f->id);
    return rc;
  }
  rc = do_finish_general(s, f, out_state);
  if (rc == 0 && e) forget_claim(s, f->id);
  return rc;
}

static int do_finish_general(sq_store *s, const jobq_storage_finish *f, int *out_state) {
  if (f->outcome == JOBQ_OUTCOME_RELEASE) {
    sqlite3_stmt *u = s->ws[WS_RELEASE_JOB];
    sqlite3_bind_text(u, 1, f->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, f->now);
    sqlite3_bind_int(u, 3, f->attempt);
    int src = sqlite3_step(u);
    int st = src == SQLITE_ROW ? sqlite3_column_int(u, 0) : -1;
    if (st == JOBQ_CANCELLED)
      ev_row(s, JOBQ_EVENT_CANCELLED, JOBQ_CANCELLED, f->id, (const char *)sqlite3_column_text(u, 1),
             f->progress, f->step, f->attempt, "cancelled", NULL);
    while (src == SQLITE_ROW) src = sqlite3_step(u);
    sqlite3_reset(u);
    sqlite3_clear_bindings(u);
    if (src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot release a job", s->path);
    if (st < 0) return finish_miss(s, f->id, out_state);
    *out_state = st == JOBQ_CANCELLED ? JOBQ_CANCELLED : JOBQ_QUEUED;
    return 0;
  }
  const char *err = f->outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : f->error;
  if (f->outcome == JOBQ_OUTCOME_CANCELLED && err == NULL) err = "cancelled";
  int new_state;
  switch (f->outcome) {
    case JOBQ_OUTCOME_SUCCEEDED: new_state = JOBQ_SUCCEEDED; break;
    case JOBQ_OUTCOME_FAILED: new_state = JOBQ_FAILED; break;
    case JOBQ_OUTCOME_RETRY: new_state = f->run_at > f->now ? SQ_SCHEDULED : SQ_DUE; break;
    default: new_state = JOBQ_CANCELLED; break;
  }
  if (err == NULL && f->outcome != JOBQ_OUTCOME_SUCCEEDED) err = "failed";
  sqlite3_stmt *u = s->ws[WS_FINISH];
  sqlite3_bind_text(u, 1, f->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 2, new_state);
  if (f->outcome == JOBQ_OUTCOME_RETRY) sqlite3_bind_int64(u, 3, f->run_at);
  else sqlite3_bind_null(u, 3);
  if (f->outcome == JOBQ_OUTCOME_SUCCEEDED) sqlite3_bind_text(u, 4, f->result ? f->result : "null", -1, SQLITE_STATIC);
  else sqlite3_bind_null(u, 4);
  bind_text_or_null(u, 5, err);
  sqlite3_bind_int(u, 6, f->outcome == JOBQ_OUTCOME_SUCCEEDED ? 100 : f->progress);
  bind_text_or_null(u, 7, f->step);
  if (f->outcome == JOBQ_OUTCOME_RETRY) sqlite3_bind_null(u, 8);
  else sqlite3_bind_int64(u, 8, f->now);
  sqlite3_bind_int64(u, 9, f->now);
  sqlite3_bind_int(u, 10, f->attempt);
  int src = sqlite3_step(u);
  int st = src == SQLITE_ROW ? sqlite3_column_int(u, 0) : -1;
  if (st >= 0 && s->share) {
    int pub = st == SQ_DUE || st == SQ_SCHEDULED ? JOBQ_QUEUED : st;
    int type = pub == JOBQ_SUCCEEDED ? JOBQ_EVENT_SUCCEEDED
               : pub == JOBQ_FAILED  ? JOBQ_EVENT_FAILED
               : pub == JOBQ_CANCELLED ? JOBQ_EVENT_CANCELLED
                                     : JOBQ_EVENT_RETRYING;
    ev_row(s, type, pub, f->id, (const char *)sqlite3_column_text(u, 1),
           pub == JOBQ_SUCCEEDED ? 100 : f->progress, f->step, f->attempt,
           pub == JOBQ_SUCCEEDED ? NULL : (pub == JOBQ_CANCELLED && !err ? "cancelled" : err),
           pub == JOBQ_SUCCEEDED ? (f->result ? f->result : "null") : NULL);
  }
  while (src == SQLITE_ROW) src = sqlite3_step(u);
  sqlite3_reset(u);
  sqlite3_clear_bindings(u);
  if (src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot finish a job", s->path);
  if (st < 0) return finish_miss(s, f->id, out_state);
  *out_state = st == SQ_DUE || st == SQ_SCHEDULED ? JOBQ_QUEUED : st;
  return 0;
}

static int do_finish(sq_store *s, sq_req *r) {
  for (size_t i = 0; i < r->n; i++) {
    int rc = do_finish_one(s, &r->fin[i], &r->out_state[i]);
    if (rc) return rc;
  }
  return 0;
}

static int do_progress(sq_store *s, sq_req *r) {
  sqlite3_stmt *u = s->ws[WS_PROGRESS];
  sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 2, r->attempt);
  sqlite3_bind_int(u, 3, r->percent);
  bind_text_or_null(u, 4, r->step);
  int rc = run(s, u, "cannot record progress");
  if (rc == 0 && sqlite3_changes(s->w) > 0)
    ev_row(s, JOBQ_EVENT_PROGRESS, JOBQ_RUNNING, r->id, NULL, r->percent, r->step, r->attempt, NULL,
           NULL);
  if (rc == 0 && sqlite3_changes(s->w) == 0) {
    int st = 0;
    rc = finish_miss(s, r->id, &st); /* gone, or not that attempt */
    if (rc == 0) rc = st;
  }
  return rc;
}

static int do_checkpoint(sq_store *s, sq_req *r) {
  sqlite3_stmt *u = s->ws[WS_CHECKPOINT];
  sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 2, r->attempt);
  sqlite3_bind_int(u, 3, r->stage);
  sqlite3_bind_text(u, 4, r->output, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, 5, r->percent);
  bind_text_or_null(u, 6, r->step);
  int rc = run(s, u, "cannot store a checkpoint");
  if (rc == 0 && sqlite3_changes(s->w) > 0)
    ev_row(s, JOBQ_EVENT_PROGRESS, JOBQ_RUNNING, r->id, NULL, r->percent, r->step, r->attempt, NULL,
           NULL);
  else if (rc == 0) {
    int st = 0;
    rc = finish_miss(s, r->id, &st);
    if (rc == 0) rc = st;
  }
  return rc;
}

static int do_prune_jobs(sq_store *s, sq_req *r) {
  sqlite3_stmt *d = s->ws[WS_PRUNE_JOBS];
  sqlite3_bind_int64(d, 1, r->before);
  sqlite3_bind_int64(d, 2, r->max > INT64_MAX ? INT64_MAX : (int64_t)r->max);
  char (*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 0, cap = 0;
  int src;
  while ((src = sqlite3_step(d)) == SQLITE_ROW) {
    if (r->out_ids == NULL) {
      n++;
      continue;
    }
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      void *p = realloc(ids, nc * sizeof *ids);
      if (p == NULL) {
        src = SQLITE_NOMEM;
        break;
      }
      ids = p;
      cap = nc;
    }
    const char *id = (const char *)sqlite3_column_text(d, 0);
    snprintf(ids[n++], JOBQ_ID_SIZE, "%s", id ? id : "");
  }
  int rc = src == SQLITE_DONE ? 0
           : src == SQLITE_NOMEM ? jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory")
                                 : jobq__sq_error(s->w, src, "cannot prune jobs", s->path);
  sqlite3_reset(d);
  sqlite3_clear_bindings(d);
  if (rc) {
    free(ids);
    return rc;
  }
  *r->n_ids = n;
  if (r->out_ids) *r->out_ids = n ? ids : NULL;
  if (n == 0) free(ids);
  return 0;
}

static int do_cancel(sq_store *s, sq_req *r) {
  sqlite3_stmt *q = s->ws[WS_FIND];
  sqlite3_bind_text(q, 1, r->id, -1, SQLITE_STATIC);
  int src = sqlite3_step(q);
  int state = src == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (src != SQLITE_ROW && src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot read a job", s->path);
  if (src == SQLITE_DONE) return JOBQ_ENOTFOUND;
  int rc = 0;
  if (state == SQ_DUE || state == SQ_SCHEDULED) {
    sqlite3_stmt *u = s->ws[WS_CANCEL_QUEUED];
    sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, r->now);
    rc = run(s, u, "cannot cancel a job");
    *r->out_state = JOBQ_CANCELLED;
  } else if (state == JOBQ_RUNNING) {
    sqlite3_stmt *u = s->ws[WS_CANCEL_RUNNING];
    sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
    rc = run(s, u, "cannot cancel a job");
    *r->out_state = JOBQ_RUNNING;
  } else {
    *r->out_state = state;
    return JOBQ_ESTATE;
  }
  if (rc == 0 && r->out_kind) {
    /* The kind, for the event: read it back through the write connection. */
    sqlite3_stmt *k = NULL;
    if (sqlite3_prepare_v2(s->w, "SELECT kind FROM jobq_jobs WHERE id = ?1", -1, &k, NULL) == SQLITE_OK) {
      sqlite3_bind_text(k, 1, r->id, -1, SQLITE_STATIC);
      if (sqlite3_step(k) == SQLITE_ROW) *r->out_kind = jobq__strdup((const char *)sqlite3_column_text(k, 0));
    }
    sqlite3_finalize(k);
  }
  if (rc == 0 && *r->out_state == JOBQ_CANCELLED)
    ev_row(s, JOBQ_EVENT_CANCELLED, JOBQ_CANCELLED, r->id, r->out_kind ? *r->out_kind : NULL, 0,
           NULL, 0, "cancelled", NULL);
  return rc;
}

static int do_heartbeat(sq_store *s, sq_req *r) {
  /* The lease counts from when it is stored: add the time this request
   * waited (for the write lock, for other requests) since it was made. */
  int64_t waited = jobq__sq_wall_ms() - r->now;
  int64_t until = r->lease_until + (waited > 0 ? waited : 0);
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
    rc = run(s, f, "cannot update a lease");
  }
  if (rc == 0 && src != SQLITE_DONE) rc = jobq__sq_error(s->w, src, "cannot read leases", s->path);
  sqlite3_reset(m);
  if (rc) return rc;
  /* Rows still expired are owners that run nothing (every job whose lease
   * passed was just rescued, so the others' earliest is not in the past). */
  sqlite3_stmt *d = s->ws[WS_LEASES_GONE];
  sqlite3_bind_int64(d, 1, now);
  return run(s, d, "cannot drop leases");
}

/* Housekeeping that rides along with rescue: event rows past 10 minutes. */
static void prune_events(sq_store *s) {
  sqlite3_stmt *p = s->ws[WS_PRUNE];
  sqlite3_bind_int64(p, 1, jobq__sq_wall_ms() - 600000);
  run(s, p, "cannot prune events");
}

static int do_rescue(sq_store *s, sq_req *r) {
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
    prune_events(s);
    return 0;
  }
  sqlite3_stmt *u = s->ws[WS_RESCUE];
  sqlite3_bind_int64(u, 1, r->now);
  size_t n = 0;
  while ((src = sqlite3_step(u)) == SQLITE_ROW) {
    n++;
    forget_claim(s, (const char *)sqlite3_column_text(u, 0)); /* if it was this store's */
    int st = sqlite3_column_int(u, 2);
    int pub = st == SQ_DUE || st == SQ_SCHEDULED ? JOBQ_QUEUED : st;
    ev_row(s,
           pub == JOBQ_FAILED ? JOBQ_EVENT_FAILED
           : pub == JOBQ_CANCELLED ? JOBQ_EVENT_CANCELLED
                                   : JOBQ_EVENT_RETRYING,
           pub, (const char *)sqlite3_column_text(u, 0), (const char *)sqlite3_column_text(u, 1), 0,
           NULL, sqlite3_column_int(u, 3), (const char *)sqlite3_column_text(u, 4), NULL);
  }
  sqlite3_reset(u);
  sqlite3_clear_bindings(u);
  if (src != SQLITE_DONE) return jobq__sq_error(s->w, src, "cannot rescue jobs", s->path);
  *r->rescued = n;
  int rc = fix_lease_rows(s, r->now);
  if (rc) return rc;
  prune_events(s);
  return 0;
}

static int do_listen(sq_store *s, sq_req *r) {
  sqlite3_stmt *u = s->ws[r->percent ? WS_LISTEN : WS_UNLISTEN];
  sqlite3_bind_int64(u, 1, s->token);
  if (r->percent) sqlite3_bind_int64(u, 2, jobq__sq_wall_ms() + 60000);
  return run(s, u, "cannot register as a listener");
}

static int do_req(sq_store *s, sq_req *r) {
  switch (r->op) {
    case W_INSERT: return do_insert(s, r);
    case W_CLAIM: return do_claim(s, r);
    case W_FINISH: return do_finish(s, r);
    case W_PROGRESS: return do_progress(s, r);
    case W_CANCEL: return do_cancel(s, r);
    case W_HEARTBEAT: return do_heartbeat(s, r);
    case W_LISTEN: return do_listen(s, r);
    case W_CHECKPOINT: return do_checkpoint(s, r);
    case W_PRUNE: return do_prune_jobs(s, r);
    default: return do_rescue(s, r);
  }
}

/* Undoes what a request put in its out parameters (its transaction did not
 * commit, so the caller must not see it). */
static void undo_outputs(sq_store *s, sq_req *r) {
  if (r->op == W_CLAIM && r->n_out) {
    for (size_t i = 0; i < *r->n_out; i++) {
      forget_claim(s, r->out[i].id);
      jobq_storage_job_clear(&r->out[i]);
    }
    *r->n_out = 0;
  }
  if (r->op == W_PRUNE) {
    if (r->out_ids) {
      free(*r->out_ids);
      *r->out_ids = NULL;
    }
    *r->n_ids = 0;
  }
  if (r->op == W_CANCEL && r->out_kind && *r->out_kind) {
    free(*r->out_kind);
    *r->out_kind = NULL;
  }
}

static void fail_all(sq_store *s, sq_req *batch, int rc) {
  const char *msg = jobq_last_error();
  for (sq_req *r = batch; r; r = r->next) {
    if (r->rc >= 0) {
      undo_outputs(s, r);
      r->rc = rc;
      snprintf(r->err, sizeof r->err, "%s", msg);
    }
  }
}

static void exec_batch(sq_store *s, sq_req *batch) {
  int rc = run(s, s->ws[WS_BEGIN], "cannot begin a transaction");
  if (rc) {
    fail_all(s, batch, rc);
    return;
  }
  check_listeners(s);
  for (sq_req *r = batch; r; r = r->next) {
    r->rc = 0;
    r->err[0] = '\0';
    /* A savepoint costs two statements; only requests that write several
     * rows that must go together need one (a batch insert or finish). The
     * others write one row (or rows each fine on its own, like heartbeats),
     * and a failing statement undoes itself. */
    int single = !((r->op == W_INSERT || r->op == W_FINISH) && r->n > 1) && r->op != W_PRUNE &&
                 r->op != W_CLAIM;
    if (!single && (rc = run(s, s->ws[WS_SAVEPOINT], "cannot make a savepoint"))) {
      r->rc = rc;
      snprintf(r->err, sizeof r->err, "%s", jobq_last_error());
      continue;
    }
    jobq__set_detail("");
    r->rc = do_req(s, r);
    if (r->rc < 0) {
      snprintf(r->err, sizeof r->err, "%s", jobq_last_error());
      undo_outputs(s, r);
      if (!single) run(s, s->ws[WS_ROLLBACK_TO], "cannot roll back");
    }
    if (!single) run(s, s->ws[WS_RELEASE], "cannot release a savepoint");
  }
  rc = s->lease_dirty || s->lease_unsure ? lease_row(s) : 0;
  if (rc == 0) rc = run(s, s->ws[WS_COMMIT], "cannot commit");
  if (rc) {
    run(s, s->ws[WS_ROLLBACK], "cannot roll back");
    fail_all(s, batch, rc);
    /* Finishes in it forgot their jobs, which still run as far as the
     * database knows: the next lease row must not be later than now. */
    s->lease_unsure = 1;
    return;
  }
  s->commits++;
}

/* Group commit, leader/follower style: whoever finds no batch running takes
 * everything queued and runs it as one transaction: a caller waiting for its
 * own request (no thread switch in the common case), or the writer thread for
 * requests nobody waits on (asynchronous finishes). The others queue up
 * meanwhile and go together in the next transaction. One thread at a time
 * uses the write connection. Called and returns with s->mu held. */
static void lead_one(sq_store *s) {
  sq_req *batch = s->head;
  s->head = s->tail = NULL;
  s->queued = 0;
  s->leading = 1;
  uv_mutex_unlock(&s->mu);
  exec_batch(s, batch);
  /* Asynchronous requests are answered by callback, outside any lock. */
  sq_req *async = NULL, **at = &async;
  uv_mutex_lock(&s->mu);
  for (sq_req *r = batch, *n; r; r = n) {
    n = r->next;
    if (r->done_cb) {
      *at = r;
      at = &r->next;
      r->next = NULL;
    } else {
      r->done = 1;
    }
  }
  s->leading = 0;
  uv_cond_broadcast(&s->cv_done);
  if (s->head) uv_cond_signal(&s->cv_req);
  if (async) {
    uv_mutex_unlock(&s->mu);
    for (sq_req *r = async, *n; r; r = n) {
      n = r->next;
      if (r->rc < 0 && r->err[0]) jobq__set_detail(r->err);
      r->done_cb(r->done_ud, r->rc, r->out_state);
      free(r);
    }
    uv_mutex_lock(&s->mu);
  }
}

#define WRITER_GATHER 64
#define WRITER_DELAY_NS 500000u /* 0.5 ms */

static void writer_main(void *arg) {
  sq_store *s = arg;
  uv_mutex_lock(&s->mu);
  for (;;) {
    while ((s->head == NULL || s->leading) && !s->stop) uv_cond_wait(&s->cv_req, &s->mu);
    if (s->head == NULL && s->stop) break;
    if (s->leading) continue;
    /* What reaches this thread is asynchronous (finishes nobody waits for):
     * a short wait lets more of them share one commit, and every commit
     * rewrites whole pages, so fewer, larger ones write far less. A waiting
     * caller can still lead at any moment. */
    uint64_t until = uv_hrtime() + WRITER_DELAY_NS;
    for (;;) {
      uint64_t now = uv_hrtime();
      if (s->stop || s->leading || s->queued >= WRITER_GATHER || now >= until) break;
      uv_cond_timedwait(&s->cv_req, &s->mu, until - now);
    }
    if (s->leading || s->head == NULL) continue;
    lead_one(s);
  }
  uv_mutex_unlock(&s->mu);
}

int jobq__sq_writer_start(sq_store *s) {
  if (jobq__mutex_init(&s->mu) || uv_cond_init(&s->cv_req) || uv_cond_init(&s->cv_done))
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: cannot create locks");
  if (uv_thread_create(&s->writer, writer_main, s) != 0) {
    uv_cond_destroy(&s->cv_req);
    uv_cond_destroy(&s->cv_done);
    uv_mutex_destroy(&s->mu);
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: cannot start the writer thread");
  }
  return 0;
}

void jobq__sq_writer_stop(sq_store *s) {
  uv_mutex_lock(&s->mu);
  s->stop = 1;
  uv_cond_signal(&s->cv_req);
  uv_mutex_unlock(&s->mu);
  uv_thread_join(&s->writer);
  uv_cond_destroy(&s->cv_req);
  uv_cond_destroy(&s->cv_done);
  uv_mutex_destroy(&s->mu);
}

int jobq__sq_submit(sq_store *s, sq_req *r) {
  r->next = NULL;
  r->done = 0;
  r->rc = 0;
  uv_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = r;
  else s->head = r;
  s->tail = r;
  s->queued++;
  while (!r->done) {
    if (!s->leading && s->head) lead_one(s);
    else uv_cond_wait(&s->cv_done, &s->mu);
  }
  uv_mutex_unlock(&s->mu);
  if (r->rc < 0 && r->err[0]) jobq__set_detail(r->err);
  return r->rc;
}

static void listen_done(void *ud, int rc, const int *out_state) {
  (void)ud;
  (void)rc;
  (void)out_state;
}

/* Queues r (heap-allocated) for the writer thread and returns. */
static void submit_async(sq_store *s, sq_req *r) {
  r->next = NULL;
  uv_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = r;
  else s->head = r;
  s->tail = r;
  /* Wake the writer when it has something new to wait for: the first
   * request (it sleeps without a deadline) or a full group (it sleeps until
   * one is full). Waking it for every request cost a context switch each. */
  if (++s->queued == 1 || s->queued == WRITER_GATHER) uv_cond_signal(&s->cv_req);
  uv_mutex_unlock(&s->mu);
}

/* ---- the vtable's write operations ---- */

int jobq__sq_insert(void *st, jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                    int *out_dup) {
  sq_req r = {0};
  r.op = W_INSERT;
  r.jobs = jobs;
  r.n = n;
  r.force = force;
  r.now = now;
  r.out_dup = out_dup;
  return jobq__sq_submit(st, &r);
}

int jobq__sq_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out, size_t *n_out) {
  sq_req r = {0};
  r.op = W_CLAIM;
  r.claim = req;
  r.out = out;
  r.n_out = n_out;
  *n_out = 0;
  return jobq__sq_submit(st, &r);
}

int jobq__sq_finish(void *st, const jobq_storage_finish *f, size_t n, int *out_state) {
  sq_req r = {0};
  r.op = W_FINISH;
  r.fin = f;
  r.n = n;
  r.out_state = out_state;
  return jobq__sq_submit(st, &r);
}

int jobq__sq_finish_async(void *st, const jobq_storage_finish *f, size_t n,
                          void (*done)(void *ud, int rc, const int *out_state), void *ud) {
  /* One block: the request, its copy of f, the answers and the strings. */
  size_t strs = 0;
  for (size_t i = 0; i < n; i++) {
    strs += strlen(f[i].id) + 1;
    if (f[i].result) strs += strlen(f[i].result) + 1;
    if (f[i].error) strs += strlen(f[i].error) + 1;
    if (f[i].step) strs += strlen(f[i].step) + 1;
  }
  size_t head = sizeof(sq_req) + n * (sizeof(jobq_storage_finish) + sizeof(int));
  char *mem = malloc(head + strs);
  if (mem == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  sq_req *r = (sq_req *)mem;
  memset(r, 0, sizeof *r);
  jobq_storage_finish *fc = (jobq_storage_finish *)(mem + sizeof(sq_req));
  int *states = (int *)(fc + n);
  char *p = mem + head;
  for (size_t i = 0; i < n; i++) {
    fc[i] = f[i];
    const char **fields[] = {&fc[i].id, &fc[i].result, &fc[i].error, &fc[i].step};
    for (size_t k = 0; k < 4; k++) {
      if (*fields[k] == NULL) continue;
      size_t len = strlen(*fields[k]) + 1;
      memcpy(p, *fields[k], len);
      *fields[k] = p;
      p += len;
    }
  }
  r->op = W_FINISH;
  r->fin = fc;
  r->n = n;
  r->out_state = states;
  r->done_cb = done;
  r->done_ud = ud;
  submit_async(st, r);
  return 0;
}

/* Registers (on) or removes this store as a listener for other processes'
 * events; renewed by the watcher while on (a listener row lapses after 60 s,
 * so a crashed process stops costing the others event rows). */
int jobq__sq_listen(sq_store *s, int on, int wait) {
  if (wait) {
    sq_req r = {0};
    r.op = W_LISTEN;
    r.percent = on;
    return jobq__sq_submit(s, &r);
  }
  sq_req *r = calloc(1, sizeof *r);
  if (r == NULL) return JOBQ_ENOMEM;
  r->op = W_LISTEN;
  r->percent = on;
  r->done_cb = listen_done;
  r->out_state = &r->attempt;
  submit_async(s, r);
  return 0;
}

int jobq__sq_progress(void *st, const char *id, int attempt, int percent, const char *step) {
  sq_req r = {0};
  r.op = W_PROGRESS;
  r.id = id;
  r.attempt = attempt;
  r.percent = percent;
  r.step = step;
  return jobq__sq_submit(st, &r);
}

int jobq__sq_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                        int progress, const char *step) {
  sq_req r = {0};
  r.op = W_CHECKPOINT;
  r.id = id;
  r.attempt = attempt;
  r.stage = stage;
  r.output = output;
  r.percent = progress;
  r.step = step;
  return jobq__sq_submit(st, &r);
}

int jobq__sq_prune(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
                   size_t *n_out) {
  sq_req r = {0};
  r.op = W_PRUNE;
  r.before = before;
  r.max = max;
  r.out_ids = out_ids;
  r.n_ids = n_out;
  *n_out = 0;
  if (out_ids) *out_ids = NULL;
  return jobq__sq_submit(st, &r);
}

int jobq__sq_cancel(void *st, const char *id, int64_t now, int *out_state, char **out_kind) {
  sq_req r = {0};
  r.op = W_CANCEL;
  r.id = id;
  r.now = now;
  r.out_state = out_state;
  r.out_kind = out_kind;
  if (out_kind) *out_kind = NULL;
  return jobq__sq_submit(st, &r);
}

int jobq__sq_heartbeat(void *st, jobq_storage_lease *l, size_t n, int64_t lease_until) {
  sq_req r = {0};
  r.op = W_HEARTBEAT;
  r.leases = l;
  r.n = n;
  r.lease_until = lease_until;
  r.now = jobq__sq_wall_ms(); /* when asked, to measure the wait */
  return jobq__sq_submit(st, &r);
}

/* How often rescue looks at the running jobs themselves, whatever the lease
 * rows say: for jobs no row stands for (claimed by a libjobq older than
 * schema 4 still running when the file was migrated, or stamped with a
 * clock far behind this one's). A read, beside the writer; about 100 ms
 * per million jobs. */
#define SAFETY_SCAN_MS 600000

int jobq__sq_rescue(void *st, int64_t now, size_t *n_out) {
  sq_store *s = st;
  sq_req r = {0};
  r.op = W_RESCUE;
  r.now = now;
  r.rescued = n_out;
  *n_out = 0;
  int64_t wall = jobq__sq_wall_ms();
  if (wall - atomic_load(&s->last_scan) >= SAFETY_SCAN_MS) {
    int rc = jobq__sq_any_expired(s, now, &r.force_scan);
    if (rc) return rc;
    atomic_store(&s->last_scan, wall);
  }
  return jobq__sq_submit(st, &r);
}
