/* The SQLite backend: "sqlite:PATH[?durability=crash|power&busy_timeout=MS&
 * max_page_count=N&shared_schema=0|1]".
 *
 * One file holds the queue; several processes may share it. Writes go
 * through one write connection per process that commits them in groups
 * (sqlite_writer.c; the write operations in sqlite_jobs.c, sqlite_claim.c,
 * sqlite_finish.c, sqlite_lease.c, sqlite_events.c); reads use a small pool
 * of read connections, which WAL lets run beside the writer, so a jobq_get
 * never waits behind a commit. Other processes' commits are noticed by a
 * watcher (sqlite_watch.c); checkpoints run on a thread of their own
 * (sqlite_ckpt.c).
 *
 * This file: opening (URL, pragmas, schema and migrations, faults), the
 * readers, and the read operations. */
#include "storage/sqlite_int.h"
#include "util/mem.h"
#include "util/err.h"
#include "util/mutex.h"
#include "storage/dedupe.h"
#include "storage/position.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOB_COLS SQ_JOB_COLS

/* The directory part of path ("." for a bare file name), for sentences. */
static void dir_of(const char *path, char *out, size_t size) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) snprintf(out, size, ".");
  else if (slash == path) snprintf(out, size, "/");
  else snprintf(out, size, "%.*s", (int)(slash - path), path);
}

/* The connection's page limit (PRAGMA max_page_count) when one was set, as
 * the storage URL's max_page_count does; 0 when it is SQLite's default. */
static long long page_limit(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  long long v = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA max_page_count", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  /* SQLite's default is 1073741823 pages or more, depending on the version */
  return v > 0 && v < 1073741823 ? v : 0;
}

int jobq__sq_error(sqlite3 *db, int rc, const char *what, const char *path) {
  /* Everything is read before page_limit runs a statement of its own. */
  char msg[200];
  snprintf(msg, sizeof msg, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int sys = db ? sqlite3_system_errno(db) : 0;
  int code;
  const char *hint = "";
  int full = (rc & 0xff) == SQLITE_FULL;
  /* A full disk also shows as an I/O error (writing the WAL, growing the
   * shared-memory file, syncing) whose system error is ENOSPC or EDQUOT. */
  if ((rc & 0xff) == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT)) full = 1;
  if (full) {
    char dir[160];
    dir_of(path, dir, sizeof dir);
    long long limit = db ? page_limit(db) : 0;
    if (limit > 0)
      return jobq__err(JOBQ_EFULL,
                       "sqlite storage '%s': %s: the database reached its size limit of %lld "
                       "pages (max_page_count) or the disk holding '%s' is full (SQLite: %s); "
                       "nothing of this transaction was stored; free space or raise "
                       "max_page_count and retry",
                       path, what, limit, dir, msg);
    return jobq__err(JOBQ_EFULL,
                     "sqlite storage '%s': %s: the disk holding '%s' is full (SQLite: %s); "
                     "nothing of this transaction was stored; free space and retry",
                     path, what, dir, msg);
  }
  switch (rc & 0xff) {
    case SQLITE_NOMEM: code = JOBQ_ENOMEM; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = JOBQ_EBUSY;
      hint = " (another connection held the database longer than the busy timeout)";
      break;
    case SQLITE_NOTADB: code = JOBQ_ECORRUPT; hint = " (the file is not an SQLite database)"; break;
    case SQLITE_CORRUPT: code = JOBQ_ECORRUPT; break;
    case SQLITE_CANTOPEN:
      code = JOBQ_EIO;
      hint = " (does the directory exist and is it writable?)";
      break;
    case SQLITE_READONLY: code = JOBQ_EIO; hint = " (the file or its directory is read-only)"; break;
    case SQLITE_IOERR:
    case SQLITE_PERM: code = JOBQ_EIO; break;
    default: code = JOBQ_ESTORAGE; break;
  }
  return jobq__err(code, "sqlite storage '%s': %s: %s%s", path, what, msg, hint);
}

int jobq__sq_exec(sqlite3 *db, const char *sql, const char *what, const char *path) {
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : jobq__sq_error(db, rc, what, path);
}

/* ---- waiting at open ---- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pause of a few milliseconds, longer with each try, before trying again. */
static void pause_try(int tries) {
  int ms = tries < 10 ? 1 + tries : 10;
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

static int is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

/* sqlite3_exec, tried again while the database is busy until deadline
 * (monotonic ms). For statements SQLite does not wait for by itself:
 * changing the journal mode fails at once when another connection holds a
 * lock, whatever the busy timeout. */
static int exec_until(sqlite3 *db, const char *sql, const char *what, const char *path,
                      int64_t deadline) {
  for (int tries = 0;; tries++) {
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK) return 0;
    if (!is_busy(rc) || mono_ms() >= deadline) return jobq__sq_error(db, rc, what, path);
    pause_try(tries);
  }
}

/* ---- URL ---- */

/* Pipeline work files go beside the database: "sqlite:PATH?opts" ->
 * "PATH-work", so every process that shares the file finds them (a job one
 * process began and another resumes needs what earlier stages wrote).
 * Without a path, *out stays NULL: the registry's default. */
int jobq__sq_default_workdir(const char *url, char **out) {
  const char *p = url + strlen("sqlite:");
  size_t n = strcspn(p, "?");
  *out = NULL;
  if (n == 0) return 0;
  char *d = malloc(n + sizeof "-work");
  if (d == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  memcpy(d, p, n);
  memcpy(d + n, "-work", sizeof "-work");
  *out = d;
  return 0;
}

#define MEMORY_HINT                                                                           \
  "an SQLite in-memory database belongs to one connection and this backend uses several; "    \
  "use the storage URL \"memory:\" for a queue kept in memory"

static int parse_url(sq_store *s, const char *url) {
  const char *p = url + strlen("sqlite:");
  const char *q = strchr(p, '?');
  size_t n = q ? (size_t)(q - p) : strlen(p);
  if (n == 0) {
    p = "jobq.db";
    n = strlen(p);
  }
  s->path = malloc(n + 1);
  if (s->path == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  memcpy(s->path, p, n);
  s->path[n] = '\0';
  s->busy_ms = 5000;
  /* SQLite would take these for an in-memory database, which is private to
   * one connection: this backend's writer, readers and watcher would each
   * see another, empty one. */
  if (strcmp(s->path, ":memory:") == 0 || strncmp(s->path, "file::memory:", 13) == 0)
    return jobq__err(JOBQ_EURL, "sqlite storage URL '%.200s': " MEMORY_HINT, url);
  /* The path is a file name, never an SQLite URI: the work directory and
   * the watched -wal file are found beside it by name. */
  if (strncmp(s->path, "file:", 5) == 0)
    return jobq__err(JOBQ_EURL,
                     "sqlite storage URL '%.200s': the path is an SQLite URI ('file:...'); "
                     "libjobq takes a plain file path: write sqlite:PATH (or sqlite:./%.100s for a "
                     "file whose name starts with 'file:')",
                     url, s->path);
  while (q && *q) {
    q++;
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    if (len == strlen("durability=crash") && strncmp(q, "durability=crash", len) == 0) {
      s->power_safe = 0;
    } else if (len == strlen("durability=power") && strncmp(q, "durability=power", len) == 0) {
      s->power_safe = 1;
    } else if (len > 15 && strncmp(q, "max_page_count=", 15) == 0) {
      /* A size limit for the file, in pages; also how tests make a full disk. */
      char *end;
      long v = strtol(q + 15, &end, 10);
      if (end != q + len || v < 1)
        return jobq__err(JOBQ_EURL, "sqlite storage URL '%.200s': max_page_count must be >= 1", url);
      s->max_pages = v;
    } else if (len == strlen("shared_schema=1") && strncmp(q, "shared_schema=", 14) == 0 &&
               (q[14] == '0' || q[14] == '1')) {
      s->shared_schema = q[14] == '1';
    } else if (len == strlen("mode=memory") && strncmp(q, "mode=memory", len) == 0) {
      return jobq__err(JOBQ_EURL, "sqlite storage URL '%.200s': " MEMORY_HINT, url);
    } else if (len > 13 && strncmp(q, "busy_timeout=", 13) == 0) {
      char *end;
      long v = strtol(q + 13, &end, 10);
      if (end != q + len || v < 0 || v > 600000)
        return jobq__err(JOBQ_EURL, "sqlite storage URL '%.200s': busy_timeout must be 0..600000 ms",
                         url);
      s->busy_ms = (int)v;
    } else {
      return jobq__err(JOBQ_EURL,
                       "sqlite storage URL '%.200s': unknown option '%.*s' (known: "
                       "durability=crash|power, busy_timeout=MS, max_page_count=N, "
                       "shared_schema=0|1)",
                       url, (int)(len > 60 ? 60 : len), q);
    }
    q = amp;
  }
  return 0;
}

/* ---- connections ---- */

static int open_conn(sq_store *s, sqlite3 **out, int readonly) {
  sqlite3 *db = NULL;
  int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
              SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(s->path, &db, flags, NULL);
  if (rc != SQLITE_OK) {
    rc = jobq__sq_error(db, rc, "cannot open", s->path);
    sqlite3_close(db);
    return rc;
  }
  sqlite3_busy_timeout(db, s->busy_ms);
  sqlite3_extended_result_codes(db, 0);
  *out = db;
  return 0;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, const char *path) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  return rc == SQLITE_OK ? 0 : jobq__sq_error(db, rc, "cannot prepare a statement", path);
}

/* ---- schema ---- */

/* Forward migrations: migrations[v] takes schema v to v + 1. A database
 * whose version is newer than this libjobq knows is refused, untouched. */
static const char *const migrations[SQ_SCHEMA_VERSION] = {
  /* 0 -> 1: the jobs */
  /* 0 -> 1 */
  "CREATE TABLE jobq_jobs ("
  "  seq INTEGER PRIMARY KEY,"
  "  id TEXT NOT NULL UNIQUE,"
  "  kind TEXT NOT NULL,"
  "  state INTEGER NOT NULL,"
  "  priority INTEGER NOT NULL DEFAULT 0,"
  "  run_at INTEGER NOT NULL,"
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  max_attempts INTEGER NOT NULL DEFAULT 0,"
  "  progress INTEGER NOT NULL DEFAULT 0,"
  "  cancel_req INTEGER NOT NULL DEFAULT 0,"
  "  created_at INTEGER NOT NULL,"
  "  started_at INTEGER,"
  "  finished_at INTEGER,"
  "  lease_until INTEGER,"
  "  owner TEXT,"
  "  payload TEXT NOT NULL,"
  "  step TEXT,"
  "  result TEXT,"
  "  error TEXT,"
  "  dedupe_key TEXT,"
  "  dedupe_ttl INTEGER NOT NULL DEFAULT 0,"
  "  attempt_log TEXT"
  ");"
  /* claim: the best due jobs of a kind (an any-kind claim walks the kinds
   * in this index too). Every index costs each submit, claim and finish, so
   * there are only those that keep an operation from scanning. */
  "CREATE INDEX jobq_jobs_due ON jobq_jobs(kind, priority DESC, seq) WHERE state = 0;"
  /* promotion of scheduled jobs, the next wake-up */
  "CREATE INDEX jobq_jobs_scheduled ON jobq_jobs(run_at) WHERE state = 5;"
  /* rescue of expired leases (until schema 4) */
  "CREATE INDEX jobq_jobs_lease ON jobq_jobs(lease_until) WHERE state = 1;"
  "CREATE INDEX jobq_jobs_dedupe ON jobq_jobs(dedupe_key, seq) WHERE dedupe_key IS NOT NULL;"
  "CREATE INDEX jobq_jobs_owner ON jobq_jobs(owner, seq) WHERE owner IS NOT NULL;",
  /* 1 -> 2: events shared between processes. Rows are written only while
   * another process listens (jobq_listeners), and pruned after 10 minutes. */
  "CREATE TABLE jobq_events ("
  "  seq INTEGER PRIMARY KEY,"
  "  origin INTEGER NOT NULL,"
  "  job_id TEXT NOT NULL,"
  "  kind TEXT,"
  "  type INTEGER NOT NULL,"
  "  state INTEGER NOT NULL,"
  "  progress INTEGER NOT NULL DEFAULT 0,"
  "  step TEXT,"
  "  attempt INTEGER NOT NULL DEFAULT 0,"
  "  error TEXT,"
  "  result TEXT,"
  "  time INTEGER NOT NULL"
  ");"
  "CREATE INDEX jobq_events_time ON jobq_events(time);"
  "CREATE TABLE jobq_listeners (token INTEGER PRIMARY KEY, until INTEGER NOT NULL);",
  /* 2 -> 3: pipeline checkpoints (the output of the last stage done) */
  "ALTER TABLE jobq_jobs ADD COLUMN ck_stage INTEGER;"
  "ALTER TABLE jobq_jobs ADD COLUMN ck_output TEXT;",
  /* 3 -> 4: leases by owner. An index over running jobs cost every claim
   * an insert and every finish a delete (a tenth of the end-to-end time);
   * now each process (lease_owner, its store's token) keeps one row in
   * jobq_leases whose "until" is no later than the earliest lease of its
   * running jobs, and rescue scans for running jobs only once an owner's
   * row has expired (sqlite_lease.c). Jobs running before the migration
   * belong to owner 0, whose row ends with the earliest of their leases. */
  "ALTER TABLE jobq_jobs ADD COLUMN lease_owner INTEGER;"
  "UPDATE jobq_jobs SET lease_owner = 0, lease_until = coalesce(lease_until, 0) WHERE state = 1;"
  "CREATE TABLE jobq_leases (owner INTEGER PRIMARY KEY, until INTEGER NOT NULL);"
  "INSERT INTO jobq_leases (owner, until) SELECT 0, lease_until FROM jobq_jobs WHERE state = 1 "
  "ORDER BY lease_until LIMIT 1;"
  "DROP INDEX jobq_jobs_lease;",
  /* 4 -> 5: per-owner quotas: per owner and kind, an upper bound of its
   * unfinished jobs (sqlite_quota.c says why a bound and not a count). */
  "CREATE TABLE jobq_owner_open (owner TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL, "
  "  PRIMARY KEY (owner, kind)) WITHOUT ROWID;",
  /* 5 -> 6: cron schedules (sqlite_cron.c), by name */
  "CREATE TABLE jobq_cron ("
  "  name TEXT PRIMARY KEY,"
  "  expr TEXT NOT NULL,"
  "  tz TEXT NOT NULL,"
  "  kind TEXT NOT NULL,"
  "  payload TEXT NOT NULL,"
  "  owner TEXT,"
  "  priority INTEGER NOT NULL DEFAULT 0,"
  "  max_attempts INTEGER NOT NULL DEFAULT 0,"
  "  missed INTEGER NOT NULL DEFAULT 0,"
  "  next_at INTEGER NOT NULL,"
  "  last_run INTEGER NOT NULL DEFAULT 0"
  ") WITHOUT ROWID;",
  /* 6 -> 7: rate limits, a sliding window log of starts per kind and,
   * per kind, its sum and oldest time (sqlite_rate.c). */
  "CREATE TABLE jobq_rate_log (kind TEXT NOT NULL, at INTEGER NOT NULL, n INTEGER NOT NULL, "
  "  PRIMARY KEY (kind, at)) WITHOUT ROWID;"
  "CREATE TABLE jobq_rate (kind TEXT PRIMARY KEY, used INTEGER NOT NULL, oldest INTEGER NOT NULL) "
  "  WITHOUT ROWID;",
  /* 7 -> 8: shared stats (sqlite_stats.c). Per kind the counters c0..c7
   * (JOBQ_STAT_*), the duration buckets h0..h21, their sum and the moving
   * average; per kind and process (its token) what its workers run, until
   * an expiry that the process renews about once a second. */
  "CREATE TABLE jobq_stats ("
  "  kind TEXT PRIMARY KEY,"
  "  c0 INTEGER NOT NULL DEFAULT 0,"
  "  c1 INTEGER NOT NULL DEFAULT 0,"
  "  c2 INTEGER NOT NULL DEFAULT 0,"
  "  c3 INTEGER NOT NULL DEFAULT 0,"
  "  c4 INTEGER NOT NULL DEFAULT 0,"
  "  c5 INTEGER NOT NULL DEFAULT 0,"
  "  c6 INTEGER NOT NULL DEFAULT 0,"
  "  c7 INTEGER NOT NULL DEFAULT 0,"
  "  h0 INTEGER NOT NULL DEFAULT 0,"
  "  h1 INTEGER NOT NULL DEFAULT 0,"
  "  h2 INTEGER NOT NULL DEFAULT 0,"
  "  h3 INTEGER NOT NULL DEFAULT 0,"
  "  h4 INTEGER NOT NULL DEFAULT 0,"
  "  h5 INTEGER NOT NULL DEFAULT 0,"
  "  h6 INTEGER NOT NULL DEFAULT 0,"
  "  h7 INTEGER NOT NULL DEFAULT 0,"
  "  h8 INTEGER NOT NULL DEFAULT 0,"
  "  h9 INTEGER NOT NULL DEFAULT 0,"
  "  h10 INTEGER NOT NULL DEFAULT 0,"
  "  h11 INTEGER NOT NULL DEFAULT 0,"
  "  h12 INTEGER NOT NULL DEFAULT 0,"
  "  h13 INTEGER NOT NULL DEFAULT 0,"
  "  h14 INTEGER NOT NULL DEFAULT 0,"
  "  h15 INTEGER NOT NULL DEFAULT 0,"
  "  h16 INTEGER NOT NULL DEFAULT 0,"
  "  h17 INTEGER NOT NULL DEFAULT 0,"
  "  h18 INTEGER NOT NULL DEFAULT 0,"
  "  h19 INTEGER NOT NULL DEFAULT 0,"
  "  h20 INTEGER NOT NULL DEFAULT 0,"
  "  h21 INTEGER NOT NULL DEFAULT 0,"
  "  sum_ms REAL NOT NULL DEFAULT 0,"
  "  avg_ms REAL NOT NULL DEFAULT 0"
  ") WITHOUT ROWID;"
  "CREATE TABLE jobq_stats_live (kind TEXT NOT NULL, token INTEGER NOT NULL, "
  "  concurrency INTEGER NOT NULL, started TEXT, until INTEGER NOT NULL, "
  "  PRIMARY KEY (kind, token)) WITHOUT ROWID;",
  /* 8 -> 9: batches (sqlite_batch.c). Members carry their batch and its
   * cap; held members (state 6) wait outside the claim index. The indexes
   * hold batched jobs only, so jobs without a batch pay nothing for them. */
  "ALTER TABLE jobq_jobs ADD COLUMN batch TEXT;"
  "ALTER TABLE jobq_jobs ADD COLUMN bcap INTEGER NOT NULL DEFAULT 0;"
  "CREATE TABLE jobq_batches ("
  "  id TEXT PRIMARY KEY,"
  "  max_running INTEGER NOT NULL,"
  "  total INTEGER NOT NULL,"
  "  open INTEGER NOT NULL,"
  "  succeeded INTEGER NOT NULL DEFAULT 0,"
  "  failed INTEGER NOT NULL DEFAULT 0,"
  "  cancelled INTEGER NOT NULL DEFAULT 0,"
  "  created_at INTEGER NOT NULL,"
  "  finished_at INTEGER,"
  "  last_job TEXT,"
  "  errors TEXT NOT NULL DEFAULT '[]'"
  ") WITHOUT ROWID;"
  "CREATE INDEX jobq_jobs_batch ON jobq_jobs(batch, state) WHERE batch IS NOT NULL;"
  "CREATE INDEX jobq_jobs_held ON jobq_jobs(batch, priority DESC, seq) WHERE state = 6;",
  /* 9 -> 10: the webhook outbox (sqlite_outbox.c). A job's subscriptions
   * are a nullable column of its row: a job without any stores a NULL (one
   * header byte) and its terminal change reads the column from the row it
   * updates anyway, so it pays no other b-tree. Deliveries are keyed by
   * their id (made of the job id, so a change applied twice adds nothing
   * twice) and start with it, so that one job's deliveries are a range of
   * the key: lists and a job's deletions walk the key, claims (state,
   * next_at). No other index: each one costs every delivery a b-tree
   * write, on the hot path of a queue that announces every job. */
  "ALTER TABLE jobq_jobs ADD COLUMN webhooks TEXT;"
  "CREATE TABLE jobq_outbox ("
  "  id TEXT PRIMARY KEY,"
  "  job_id TEXT NOT NULL,"
  "  endpoint TEXT NOT NULL,"
  "  url TEXT,"
  "  hook INTEGER NOT NULL,"
  "  event INTEGER NOT NULL,"
  "  flags INTEGER NOT NULL DEFAULT 0,"
  "  state INTEGER NOT NULL DEFAULT 0,"
  "  attempts INTEGER NOT NULL DEFAULT 0,"
  "  last_status INTEGER NOT NULL DEFAULT 0,"
  "  last_error TEXT,"
  "  created_at INTEGER NOT NULL,"
  "  next_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL"
  ") WITHOUT ROWID;"
  "CREATE INDEX jobq_outbox_due ON jobq_outbox(state, next_at);"
  "CREATE TABLE jobq_webhook_disabled (url TEXT PRIMARY KEY, disabled_at INTEGER NOT NULL) "
  "  WITHOUT ROWID;",
  /* 10 -> 11: announcements (sqlite_outbox.c). The transaction that ends a
   * subscribed job writes one narrow row here, appended at the end of the
   * rowid b-tree, instead of its deliveries (a text-keyed row and an index
   * entry each): on the hot path that was a quarter of a no-op job's cost.
   * The next claim of deliveries, list, count or prune turns announcements
   * into deliveries first, in its own transaction. */
  "CREATE TABLE jobq_outbox_news (seq INTEGER PRIMARY KEY, job TEXT NOT NULL, "
  "  state INTEGER NOT NULL, at INTEGER NOT NULL);",
};

/* Refuses a database that holds other programs' tables but no libjobq
 * schema, unless the URL said shared_schema=1. Called before anything is
 * written, so the file stays as it was. */
static int foreign_check(sq_store *s, sqlite3 *db) {
  if (s->shared_schema) return 0;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db,
                              /* one statement, one snapshot: another process may
                               * create libjobq's schema meanwhile */
                              "SELECT type, name FROM sqlite_master WHERE NOT EXISTS "
                              "(SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                              "name = 'jobq_meta') ORDER BY type <> 'table', name LIMIT 1",
                              -1, &st, NULL);
  if (rc != SQLITE_OK) return jobq__sq_error(db, rc, "cannot read the schema", s->path);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    rc = jobq__err(JOBQ_ECORRUPT,
                   "sqlite storage '%s': the database holds other tables (%s '%.64s') and no "
                   "libjobq schema, so it belongs to another program; it was not changed. Give "
                   "the queue a file of its own, or add shared_schema=1 to the URL to put "
                   "libjobq's tables beside the others",
                   s->path, type ? type : "?", name ? name : "?");
  } else if (rc == SQLITE_DONE) {
    rc = 0;
  } else {
    rc = jobq__sq_error(db, rc, "cannot read the schema", s->path);
  }
  sqlite3_finalize(st);
  return rc;
}

static int schema_version(sq_store *s, sqlite3 *db, int *out) {
  const char *path = s->path;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(
      db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobq_meta'", -1,
      &st, NULL);
  if (rc != SQLITE_OK) return jobq__sq_error(db, rc, "cannot read the schema", path);
  rc = sqlite3_step(st);
  int has = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  if (rc != SQLITE_ROW) rc = jobq__sq_error(db, rc, "cannot read the schema", path);
  sqlite3_finalize(st);
  if (has < 0) return rc;
  *out = 0;
  if (has == 0) return foreign_check(s, db);
  rc = sqlite3_prepare_v2(db, "SELECT value FROM jobq_meta WHERE key = 'schema_version'", -1, &st,
                          NULL);
  if (rc != SQLITE_OK) return jobq__sq_error(db, rc, "cannot read the schema version", path);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return jobq__sq_error(db, rc, "cannot read the schema version", path);
  if (rc == SQLITE_DONE || *out < 1)
    return jobq__err(JOBQ_ECORRUPT,
                     "sqlite storage '%s': jobq_meta has no valid schema version: the file is "
                     "damaged or was not made by libjobq; it was not changed",
                     path);
  return 0;
}

/* deadline: until when (monotonic ms) a busy database is waited for. */
static int migrate(sq_store *s, int64_t deadline) {
  sqlite3 *db = s->w;
  int v, rc;
  /* Look before writing anything: a newer database, or another program's,
   * is refused untouched. */
  if ((rc = schema_version(s, db, &v)) != 0) return rc;
  if (v > SQ_SCHEMA_VERSION)
    return jobq__err(JOBQ_EVERSION,
                     "sqlite storage '%s': the database has libjobq schema version %d; this "
                     "libjobq (%s) knows up to %d. Upgrade libjobq; the file was not changed.",
                     s->path, v, JOBQ_VERSION_STRING, SQ_SCHEMA_VERSION);
  /* WAL lets readers run beside the writer, and survives kill -9 with
   * synchronous=NORMAL; FULL also syncs each commit (power loss).
   * The writer's page cache is 16 MB, not more: a commit after a b-tree
   * rebalance walks the whole cache's hash table (SQLite parks a page at a
   * temporary number past the end of the file while it renumbers, and the
   * end of the transaction then truncates the cache), so a larger cache made
   * every such commit slower, more than its hits saved: 107-110k against
   * 114-125k jobs/s end to end with a million jobs. The kernel's page cache
   * holds the rest. */
  if ((rc = exec_until(db, "PRAGMA journal_mode = WAL", "cannot enable WAL", s->path, deadline)) ||
      (rc = jobq__sq_exec(db, "PRAGMA cache_size = -16384", "cannot size the cache", s->path)) ||
      (rc = jobq__sq_exec(db, s->power_safe ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                          "cannot set durability", s->path)))
    return rc;
  if (s->max_pages > 0) {
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %ld", s->max_pages);
    if ((rc = jobq__sq_exec(db, sql, "cannot set max_page_count", s->path))) return rc;
  }
  if (v == SQ_SCHEMA_VERSION) return 0;
  if ((rc = jobq__sq_exec(db, "BEGIN IMMEDIATE", "cannot start the migration", s->path))) return rc;
  /* Read again inside the write lock: another process may have migrated. */
  if ((rc = schema_version(s, db, &v))) goto fail;
  if (v > SQ_SCHEMA_VERSION) {
    rc = jobq__err(JOBQ_EVERSION, "sqlite storage '%s': schema version %d is newer than %d", s->path, v,
                   SQ_SCHEMA_VERSION);
    goto fail;
  }
  if ((rc = jobq__sq_exec(db,
                          "CREATE TABLE IF NOT EXISTS jobq_meta (key TEXT PRIMARY KEY, value TEXT "
                          "NOT NULL) WITHOUT ROWID",
                          "cannot create jobq_meta", s->path)))
    goto fail;
  for (; v < SQ_SCHEMA_VERSION; v++) {
    if ((rc = jobq__sq_exec(db, migrations[v], "cannot migrate the schema", s->path))) goto fail;
    char sql[128];
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO jobq_meta(key, value) VALUES ('schema_version', '%d')", v + 1);
    if ((rc = jobq__sq_exec(db, sql, "cannot record the schema version", s->path))) goto fail;
  }
  if ((rc = jobq__sq_exec(db, "COMMIT", "cannot commit the migration", s->path))) goto fail;
  return 0;
fail:
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

/* ---- open / close ---- */

static void close_readers(sq_store *s);

/* The write connection, the schema and the readers, each with its
 * statements. On failure the caller calls disconnect_all. */
static int connect_all(sq_store *s, int64_t deadline) {
  int rc;
  if ((rc = open_conn(s, &s->w, 0))) return rc;
  /* SQLite's own waits at open end with the deadline too. */
  int64_t left = deadline - mono_ms();
  sqlite3_busy_timeout(s->w, left > 0 ? (int)left : 0);
  if ((rc = migrate(s, deadline)) || (rc = jobq__sq_prepare_writer(s))) return rc;
  sqlite3_busy_timeout(s->w, s->busy_ms);
  for (int i = 0; i < SQ_READERS; i++) {
    sq_reader *r = &s->readers[i];
    if ((rc = open_conn(s, &r->db, 0))) return rc;
    jobq__mutex_init(&r->mu);
    if ((rc = prepare(r->db, "SELECT " JOB_COLS " FROM jobq_jobs WHERE id = ?1", &r->st[RS_GET], s->path)) ||
        (rc = prepare(r->db,
                      "SELECT " JOB_COLS " FROM jobq_jobs WHERE dedupe_key = ?1 "
                      "ORDER BY seq DESC LIMIT 1",
                      &r->st[RS_GET_BY_KEY], s->path)) ||
        (rc = prepare(r->db,
                      "SELECT min(run_at) FROM jobq_jobs WHERE state = 5 AND run_at > ?1 AND kind "
                      "IN (SELECT value FROM json_each(?2))",
                      &r->st[RS_NEXT_RUN_AT], s->path)) ||
        (rc = prepare(r->db, "SELECT min(run_at) FROM jobq_jobs WHERE state = 5 AND run_at > ?1",
                      &r->st[RS_NEXT_RUN_AT_ANY], s->path)) ||
        (rc = prepare(r->db, "SELECT ck_stage, ck_output FROM jobq_jobs WHERE id = ?1",
                      &r->st[RS_CHECKPOINT], s->path)) ||
        (rc = prepare(r->db, "SELECT 1 FROM jobq_jobs WHERE state = 1 AND lease_until < ?1 LIMIT 1",
                      &r->st[RS_EXPIRED], s->path)))
      return rc;
  }
  return 0;
}

/* Undoes connect_all, whatever part of it was done. */
static void disconnect_all(sq_store *s) {
  close_readers(s);
  memset(s->readers, 0, sizeof s->readers);
  for (int j = 0; j < WS_COUNT; j++) sqlite3_finalize(s->ws[j]);
  for (int j = 0; j <= JOBQ__SQ_QUOTA_MANY; j++) sqlite3_finalize(s->quota_many[j]);
  memset(s->ws, 0, sizeof s->ws);
  sqlite3_close(s->w);
  s->w = NULL;
}

static void close_readers(sq_store *s) {
  for (int i = 0; i < SQ_READERS; i++) {
    for (int j = 0; j < RS_COUNT; j++) sqlite3_finalize(s->readers[i].st[j]);
    if (s->readers[i].db) {
      sqlite3_close(s->readers[i].db);
      uv_mutex_destroy(&s->readers[i].mu);
    }
  }
}

int64_t jobq__sq_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sq_close(void *st) {
  sq_store *s = st;
  jobq__sq_fork_untrack(s);
  jobq__sq_set_event_sink(s, NULL, NULL);
  jobq__sq_set_notify(s, NULL, NULL);
  jobq__sq_writer_stop(s);
  jobq__sq_ckpt_stop(s);
  jobq__sq_forget_claims(s);
  close_readers(s);
  for (int j = 0; j < WS_COUNT; j++) sqlite3_finalize(s->ws[j]);
  for (int j = 0; j <= JOBQ__SQ_QUOTA_MANY; j++) sqlite3_finalize(s->quota_many[j]);
  sqlite3_close(s->w);
  uv_mutex_destroy(&s->nmu);
  for (size_t i = 0; i < s->n_quotas; i++) free((char *)s->quotas[i].kind);
  free(s->quotas);
  jobq__sq_hooks_cache_free(s);
  jobq__sq_retention_free(s);
  free(s->path);
  free(s);
}

static int sq_open(const char *url, void **out) {
  sq_store *s = calloc(1, sizeof *s);
  if (s == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  int rc = parse_url(s, url);
  if (rc) {
    free(s->path);
    free(s);
    return rc;
  }
  /* Say plainly what is wrong with the place before SQLite's generic words. */
  char *slash = strrchr(s->path, '/');
  if (slash) {
    *slash = '\0';
    struct stat sb;
    const char *dir = slash == s->path ? "/" : s->path;
    int bad = stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode);
    int ro = !bad && access(dir, W_OK) != 0;
    *slash = '/';
    if (bad || ro) {
      rc = jobq__err(JOBQ_EIO, "sqlite storage '%s': the directory %s", s->path,
                     bad ? "does not exist" : "is not writable (the database needs its -wal file beside it)");
      free(s->path);
      free(s);
      return rc;
    }
  }
  /* A file the parent had open before fork() (storage/sqlite_fork.c). */
  if ((rc = jobq__sq_fork_check(s->path))) {
    free(s->path);
    free(s);
    return rc;
  }
  /* This store's mark on the event rows it writes. */
  {
    uint64_t t = 0;
    extern void jobq__random_bytes(void *buf, size_t n);
    jobq__random_bytes(&t, sizeof t);
    s->token = (int64_t)(t >> 1) | 1;
  }
  if (jobq__mutex_init(&s->nmu) != 0) {
    free(s->path);
    free(s);
    return jobq__err(JOBQ_ENOMEM, "sqlite storage: cannot create a mutex");
  }
  /* Every step of connecting may meet another process's open (its switch
   * to WAL, its schema creation): a busy database is waited for, in all,
   * up to the URL's busy_timeout. */
  int64_t deadline = mono_ms() + s->busy_ms;
  for (int tries = 0;; tries++) {
    rc = connect_all(s, deadline);
    if (rc != JOBQ_EBUSY || mono_ms() >= deadline) break;
    disconnect_all(s);
    pause_try(tries);
  }
  if (rc) goto fail;
  jobq__sq_fork_track(s); /* the file exists now */
  if ((rc = jobq__sq_writer_start(s))) goto fail;
  {
    /* Best effort: without it the writer checkpoints (SQLite's default). */
    sqlite3 *c = NULL;
    if (open_conn(s, &c, 0) == 0 &&
        sqlite3_exec(c, s->power_safe ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
                     NULL, NULL, NULL) == SQLITE_OK)
      jobq__sq_ckpt_start(s, c);
    else
      sqlite3_close(c);
  }
  *out = s;
  return 0;
fail:
  jobq__sq_fork_untrack(s);
  disconnect_all(s);
  uv_mutex_destroy(&s->nmu);
  free(s->path);
  free(s);
  return rc;
}

/* ---- reads ---- */

static sq_reader *reader(sq_store *s) {
  unsigned start = atomic_fetch_add(&s->next_reader, 1);
  for (unsigned i = 0; i < SQ_READERS; i++) {
    sq_reader *r = &s->readers[(start + i) % SQ_READERS];
    if (uv_mutex_trylock(&r->mu) == 0) return r;
  }
  sq_reader *r = &s->readers[start % SQ_READERS];
  uv_mutex_lock(&r->mu);
  return r;
}

sq_reader *jobq__sq_reader(sq_store *s) { return reader(s); }

int jobq__sq_reader_stmt(sq_store *s, sq_reader *r, int i, const char *sql, sqlite3_stmt **out) {
  int rc;
  if (r->st[i] == NULL && (rc = prepare(r->db, sql, &r->st[i], s->path)) != 0) return rc;
  *out = r->st[i];
  return 0;
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  if (t == NULL) return NULL;
  size_t n = (size_t)sqlite3_column_bytes(st, i);
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, t, n);
    d[n] = '\0';
  }
  return d;
}

static int public_state(int st) { return SQ_IS_QUEUED(st) ? JOBQ_QUEUED : st; }

/* Fills out from a row of JOB_COLS; -1 on out of memory. *seq gets the row's
 * sequence number. */
int jobq__sq_row_to_job(sqlite3_stmt *st, jobq_storage_job *out, int64_t *seq, int *raw_state) {
  memset(out, 0, sizeof *out);
  if (seq) *seq = sqlite3_column_int64(st, 0);
  /* memcpy, not snprintf: this runs for every claimed job, on the writer */
  const unsigned char *id = sqlite3_column_text(st, 1);
  size_t idn = id ? (size_t)sqlite3_column_bytes(st, 1) : 0;
  if (idn >= sizeof out->id) idn = sizeof out->id - 1;
  if (idn) memcpy(out->id, id, idn);
  out->id[idn] = '\0';
  int raw = sqlite3_column_int(st, 3);
  if (raw_state) *raw_state = raw;
  out->state = public_state(raw);
  out->priority = sqlite3_column_int(st, 4);
  out->run_at = sqlite3_column_int64(st, 5);
  out->attempts = sqlite3_column_int(st, 6);
  out->max_attempts = sqlite3_column_int(st, 7);
  out->progress = sqlite3_column_int(st, 8);
  out->cancel_requested = sqlite3_column_int(st, 9);
  out->created_at = sqlite3_column_int64(st, 10);
  out->started_at = sqlite3_column_int64(st, 11);
  out->finished_at = sqlite3_column_int64(st, 12);
  out->dedupe_ttl_ms = sqlite3_column_int64(st, 19);
  out->position = -1;
  struct { int col; char **dst; } s[] = {{2, &out->kind},   {13, &out->owner}, {14, &out->payload},
                                         {15, &out->step},  {16, &out->result}, {17, &out->error},
                                         {18, &out->dedupe_key}};
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
    if (sqlite3_column_type(st, s[i].col) == SQLITE_NULL) continue;
    if ((*s[i].dst = col_dup(st, s[i].col)) == NULL) goto nomem;
  }
  /* attempt_log holds the attempts that ended with an error, as [started,
   * finished, error]; an attempt that is running or succeeded is described
   * by started_at / finished_at alone (the common path writes no JSON). */
  const char *log = sqlite3_column_type(st, 20) == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, 20);
  json_t *a = log ? json_loads(log, 0, NULL) : NULL;
  size_t nf = json_is_array(a) ? json_array_size(a) : 0;
  size_t n = (size_t)(out->attempts > 0 ? out->attempts : 0);
  if (n < nf) n = nf;
  if (n) {
    out->attempt_log = calloc(n, sizeof *out->attempt_log);
    if (out->attempt_log == NULL) {
      json_decref(a);
      goto nomem;
    }
    out->n_attempt_log = (int)n;
    for (size_t i = 0; i < nf; i++) {
      json_t *e = json_array_get(a, i);
      out->attempt_log[i].started_at = json_integer_value(json_array_get(e, 0));
      out->attempt_log[i].finished_at = json_integer_value(json_array_get(e, 1));
      const char *err = json_string_value(json_array_get(e, 2));
      if (err && (out->attempt_log[i].error = jobq__strdup(err)) == NULL) {
        json_decref(a);
        goto nomem;
      }
    }
    if (n > nf) {
      out->attempt_log[n - 1].started_at = out->started_at;
      out->attempt_log[n - 1].finished_at = out->state == JOBQ_RUNNING ? 0 : out->finished_at;
    }
  }
  json_decref(a);
  return 0;
nomem:
  jobq_storage_job_clear(out);
  return -1;
}

/* ---- position ----
 *
 * A claim takes a kind's due jobs by priority, then seq; a queued job's
 * position is how many it takes first. SQLite has no order statistic, and
 * counting them all cost a jobq_get 0.1-0.5 s at a million queued, so each
 * part is counted through jobq_jobs_due with a LIMIT of
 * JOBQ__POSITION_EXACT + 1 rows, and a part that reaches it is estimated
 * from the seq numbers instead: an upper bound (jobq_job_position.md). */

static const char *const pos_sql[RS_COUNT] = {
  [RS_POS_HIGHER] = "SELECT count(*) FROM (SELECT 1 FROM jobq_jobs WHERE kind = ?1 AND state = 0 AND "
                    "priority > ?2 LIMIT ?3)",
  [RS_POS_SAME] = "SELECT count(*) FROM (SELECT 1 FROM jobq_jobs WHERE kind = ?1 AND state = 0 AND "
                  "priority = ?2 AND seq < ?3 LIMIT ?4)",
  /* jobs that came due and wait for a claim to promote them */
  [RS_POS_SCHEDULED] = "SELECT count(*) FROM (SELECT 1 FROM jobq_jobs WHERE state = 5 AND run_at <= ?4 AND "
                       "kind = ?1 AND (priority > ?2 OR (priority = ?2 AND seq < ?3)) LIMIT ?5)",
  [RS_POS_NEXT_BAND] = "SELECT priority FROM jobq_jobs WHERE kind = ?1 AND state = 0 AND priority > ?2 "
                       "ORDER BY priority LIMIT 1",
  [RS_POS_FIRST] = "SELECT seq FROM jobq_jobs WHERE kind = ?1 AND state = 0 AND priority = ?2 ORDER BY seq "
                   "LIMIT 1",
  [RS_POS_LAST] = "SELECT seq FROM jobq_jobs WHERE kind = ?1 AND state = 0 AND priority = ?2 ORDER BY seq "
                  "DESC LIMIT 1",
};

/* Runs statement i of reader r with integer parameters ?2.. after the kind
 * (?1); *out gets the first column of the first row (unchanged when there
 * is none). 0 or a negative JOBQ code. */
static int pos_query(sq_store *s, sq_reader *r, int i, const char *kind, const int64_t *v, int nv,
                     int64_t *out) {
  int rc;
  if (r->st[i] == NULL && (rc = prepare(r->db, pos_sql[i], &r->st[i], s->path)) != 0) return rc;
  sqlite3_stmt *q = r->st[i];
  sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
  for (int k = 0; k < nv; k++) sqlite3_bind_int64(q, k + 2, v[k]);
  rc = sqlite3_step(q);
  if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) *out = sqlite3_column_int64(q, 0);
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : jobq__sq_error(r->db, rc, "cannot count the jobs ahead", s->path);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return rc;
}

static int position(sq_store *s, sq_reader *r, const jobq_storage_job *j, int64_t seq, int64_t now,
                    int64_t *out) {
  const int64_t cap = JOBQ__POSITION_EXACT + 1, p = j->priority;
  int64_t higher = 0, same = 0, sched = 0;
  int rc;
  if ((rc = pos_query(s, r, RS_POS_HIGHER, j->kind, (int64_t[]){p, cap}, 2, &higher)) ||
      (rc = pos_query(s, r, RS_POS_SAME, j->kind, (int64_t[]){p, seq, cap}, 3, &same)) ||
      (rc = pos_query(s, r, RS_POS_SCHEDULED, j->kind, (int64_t[]){p, seq, now, cap}, 4, &sched)))
    return rc;
  if (same == cap) {
    /* Every job of j's priority ahead has a seq between the oldest's and j's. */
    int64_t first = seq;
    if ((rc = pos_query(s, r, RS_POS_FIRST, j->kind, (int64_t[]){p}, 1, &first))) return rc;
    if (seq - first > same) same = seq - first;
  }
  if (higher == cap) {
    /* Each higher priority: the span of its seqs, oldest to youngest. */
    int64_t band = p, sum = 0;
    for (;;) {
      int64_t next = band, first = 0, last = -1;
      if ((rc = pos_query(s, r, RS_POS_NEXT_BAND, j->kind, (int64_t[]){band}, 1, &next))) return rc;
      if (next == band) break;
      band = next;
      if ((rc = pos_query(s, r, RS_POS_FIRST, j->kind, (int64_t[]){band}, 1, &first)) ||
          (rc = pos_query(s, r, RS_POS_LAST, j->kind, (int64_t[]){band}, 1, &last)))
        return rc;
      if (last >= first) sum += last - first + 1;
    }
    if (sum > higher) higher = sum;
  }
  *out = higher + same + sched;
  return 0;
}

/* One job by id (RS_GET) or by dedupe key (RS_GET_BY_KEY: the newest
 * job with the key, if the key is live), with its position. */
static int get_row(sq_store *s, int which, const char *arg, int64_t now, jobq_storage_job *out) {
  sq_reader *r = reader(s);
  sqlite3_stmt *g = r->st[which];
  sqlite3_bind_text(g, 1, arg, -1, SQLITE_STATIC);
  int rc = sqlite3_step(g);
  int64_t seq = 0;
  int raw = 0;
  if (rc == SQLITE_ROW) {
    rc = jobq__sq_row_to_job(g, out, &seq, &raw) == 0 ? 0 : jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  } else if (rc == SQLITE_DONE) {
    rc = JOBQ_ENOTFOUND;
  } else {
    rc = jobq__sq_error(r->db, rc, "cannot read a job", s->path);
  }
  sqlite3_reset(g);
  sqlite3_clear_bindings(g);
  if (rc == 0 && which == RS_GET_BY_KEY &&
      !jobq__key_live(out->state, out->finished_at, out->dedupe_ttl_ms, now)) {
    jobq_storage_job_clear(out);
    rc = JOBQ_ENOTFOUND;
  }
  if (rc == 0 && (raw == SQ_DUE || (raw == SQ_SCHEDULED && out->run_at <= now)) &&
      (rc = position(s, r, out, seq, now, &out->position)) != 0)
    jobq_storage_job_clear(out);
  uv_mutex_unlock(&r->mu);
  return rc;
}

static int sq_get(void *st, const char *id, int64_t now, jobq_storage_job *out) {
  return get_row(st, RS_GET, id, now, out);
}

static int sq_get_by_key(void *st, const char *key, int64_t now, jobq_storage_job *out) {
  return get_row(st, RS_GET_BY_KEY, key, now, out);
}

/* A rate limit's window, read from the log that claims write
 * (sqlite_rate.c); what claims forgot is not counted. */
static int sq_rate_window(void *st, const char *kind, int64_t interval_ms, int64_t now,
                          int64_t *out_used) {
  sq_store *s = st;
  sq_reader *r = reader(s);
  int rc = 0;
  *out_used = 0;
  if (r->st[RS_RATE_USED] == NULL)
    rc = prepare(r->db, "SELECT total(n) FROM jobq_rate_log WHERE kind = ?1 AND at > ?2",
                 &r->st[RS_RATE_USED], s->path);
  if (rc == 0) {
    sqlite3_stmt *q = r->st[RS_RATE_USED];
    sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, now - interval_ms);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *out_used = sqlite3_column_int64(q, 0);
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE
             ? 0
             : jobq__sq_error(r->db, rc, "cannot read a rate limit's window", s->path);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
  }
  uv_mutex_unlock(&r->mu);
  return rc;
}

int jobq__sq_any_expired(sq_store *s, int64_t now, int *out) {
  sq_reader *r = reader(s);
  sqlite3_stmt *q = r->st[RS_EXPIRED];
  sqlite3_bind_int64(q, 1, now);
  int rc = sqlite3_step(q);
  *out = rc == SQLITE_ROW;
  rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
                                             : jobq__sq_error(r->db, rc, "cannot look for expired leases", s->path);
  sqlite3_reset(q);
  uv_mutex_unlock(&r->mu);
  return rc;
}

static int sq_checkpoint_get(void *st, const char *id, int *out_stage, char **out_output) {
  sq_store *s = st;
  sq_reader *r = reader(s);
  sqlite3_stmt *g = r->st[RS_CHECKPOINT];
  *out_stage = -1;
  *out_output = NULL;
  sqlite3_bind_text(g, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(g);
  if (rc == SQLITE_ROW) {
    rc = 0;
    if (sqlite3_column_type(g, 0) != SQLITE_NULL && sqlite3_column_type(g, 1) != SQLITE_NULL) {
      const char *t = (const char *)sqlite3_column_text(g, 1);
      size_t n = (size_t)sqlite3_column_bytes(g, 1);
      char *copy = t ? malloc(n + 1) : NULL;
      if (copy == NULL) {
        rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
      } else {
        memcpy(copy, t, n + 1);
        *out_output = copy;
        *out_stage = sqlite3_column_int(g, 0);
      }
    }
  } else if (rc == SQLITE_DONE) {
    rc = JOBQ_ENOTFOUND;
  } else {
    rc = jobq__sq_error(r->db, rc, "cannot read a checkpoint", s->path);
  }
  sqlite3_reset(g);
  sqlite3_clear_bindings(g);
  uv_mutex_unlock(&r->mu);
  return rc;
}

static int sq_list(void *st, const jobq_storage_filter *f, jobq_storage_job **out, size_t *n_out,
                   int *more) {
  sq_store *s = st;
  *out = NULL;
  *n_out = 0;
  *more = 0;
  char sql[768];
  int n = snprintf(sql, sizeof sql, "SELECT " JOB_COLS " FROM jobq_jobs WHERE 1");
  if (f->owner) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND owner = ?1");
  if (f->kind) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND kind = ?2");
  if (f->state == JOBQ_QUEUED) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND state IN (0, 5, 6)");
  else if (f->state >= 0) n += snprintf(sql + n, sizeof sql - (size_t)n, " AND state = ?3");
  if (f->cursor)
    n += snprintf(sql + n, sizeof sql - (size_t)n, " AND seq %s (SELECT seq FROM jobq_jobs WHERE id = ?4)",
                  f->newest_first ? "<" : ">");
  snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY seq %s LIMIT ?5",
           f->newest_first ? "DESC" : "ASC");
  jobq_storage_job *v = calloc((size_t)f->limit + 1, sizeof *v);
  if (v == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  sq_reader *r = reader(s);
  int rc = 0;
  if (f->cursor) {
    /* A cursor that names no job is a mistake worth saying, not an empty page. */
    sqlite3_stmt *g = r->st[RS_GET];
    sqlite3_bind_text(g, 1, f->cursor, -1, SQLITE_STATIC);
    int found = sqlite3_step(g) == SQLITE_ROW;
    sqlite3_reset(g);
    sqlite3_clear_bindings(g);
    if (!found) {
      uv_mutex_unlock(&r->mu);
      free(v);
      return jobq__err(JOBQ_EINVAL, "sqlite storage: cursor %.40s names no job", f->cursor);
    }
  }
  sqlite3_stmt *q = NULL;
  size_t got = 0;
  int src = sqlite3_prepare_v2(r->db, sql, -1, &q, NULL);
  if (src != SQLITE_OK) {
    rc = jobq__sq_error(r->db, src, "cannot list jobs", s->path);
    goto out;
  }
  if (f->owner) sqlite3_bind_text(q, 1, f->owner, -1, SQLITE_STATIC);
  if (f->kind) sqlite3_bind_text(q, 2, f->kind, -1, SQLITE_STATIC);
  if (f->state >= 0 && f->state != JOBQ_QUEUED) sqlite3_bind_int(q, 3, f->state);
  if (f->cursor) sqlite3_bind_text(q, 4, f->cursor, -1, SQLITE_STATIC);
  sqlite3_bind_int(q, 5, f->limit + 1);
  while ((src = sqlite3_step(q)) == SQLITE_ROW) {
    if (got == (size_t)f->limit) {
      *more = 1;
      break;
    }
    if (jobq__sq_row_to_job(q, &v[got], NULL, NULL) != 0) {
      rc = jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
      break;
    }
    got++;
  }
  if (rc == 0 && src != SQLITE_ROW && src != SQLITE_DONE)
    rc = jobq__sq_error(r->db, src, "cannot list jobs", s->path);
  if (rc) {
    for (size_t i = 0; i < got; i++) jobq_storage_job_clear(&v[i]);
    got = 0;
  }
  *n_out = got;
out:
  sqlite3_finalize(q);
  uv_mutex_unlock(&r->mu);
  if (rc || got == 0) {
    free(v);
    v = NULL;
  }
  *out = v;
  return rc;
}

static int sq_next_run_at(void *st, const char *const *kinds, size_t n_kinds, int64_t now,
                          int64_t *out) {
  sq_store *s = st;
  *out = INT64_MAX;
  char *arr = NULL;
  if (kinds) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n_kinds; i++) json_array_append_new(a, json_string(kinds[i]));
    arr = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (arr == NULL) return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory");
  }
  sq_reader *r = reader(s);
  sqlite3_stmt *q = r->st[kinds ? RS_NEXT_RUN_AT : RS_NEXT_RUN_AT_ANY];
  sqlite3_bind_int64(q, 1, now);
  if (kinds) sqlite3_bind_text(q, 2, arr, -1, SQLITE_STATIC);
  int rc = sqlite3_step(q);
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_type(q, 0) != SQLITE_NULL) *out = sqlite3_column_int64(q, 0);
    rc = 0;
  } else {
    rc = jobq__sq_error(r->db, rc, "cannot read the next run time", s->path);
  }
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  uv_mutex_unlock(&r->mu);
  free(arr);
  return rc;
}

const jobq_storage_ops jobq__sqlite_ops = {
  .version = JOBQ_STORAGE_OPS_VERSION,
  .scheme = "sqlite",
  .open = sq_open,
  .close = sq_close,
  .insert = jobq__sq_insert,
  .claim = jobq__sq_claim,
  .finish = jobq__sq_finish,
  .progress = jobq__sq_progress,
  .cancel = jobq__sq_cancel,
  .get = sq_get,
  .list = sq_list,
  .next_run_at = sq_next_run_at,
  .heartbeat = jobq__sq_heartbeat,
  .rescue = jobq__sq_rescue,
  .set_notify = jobq__sq_set_notify,
  .finish_async = jobq__sq_finish_async,
  .set_event_sink = jobq__sq_set_event_sink,
  .checkpoint = jobq__sq_checkpoint,
  .checkpoint_get = sq_checkpoint_get,
  .prune = jobq__sq_prune,
  .get_by_key = sq_get_by_key,
  .set_quotas = jobq__sq_set_quotas,
  .cron_put = jobq__sq_cron_put,
  .cron_del = jobq__sq_cron_del,
  .cron_list = jobq__sq_cron_list,
  .cron_fire = jobq__sq_cron_fire,
  .rate_window = sq_rate_window,
  .stats_add = jobq__sq_stats_add,
  .stats_read = jobq__sq_stats_read,
  .batch_insert = jobq__sq_batch_insert,
  .batch_get = jobq__sq_batch_get,
  .set_batch_sink = jobq__sq_set_batch_sink,
  .prune_kind = jobq__sq_prune_kind,
  .insert_hooked = jobq__sq_insert_hooked,
  .cron_fire_hooked = jobq__sq_cron_fire_hooked,
  .outbox_claim = jobq__sq_outbox_claim,
  .outbox_done = jobq__sq_outbox_done,
  .outbox_list = jobq__sq_outbox_list,
  .outbox_counts = jobq__sq_outbox_counts,
  .outbox_redeliver = jobq__sq_outbox_redeliver,
  .webhook_enable = jobq__sq_webhook_enable,
};
