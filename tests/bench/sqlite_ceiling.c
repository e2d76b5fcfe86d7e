/* sqlite_ceiling: the SQLite ceiling of a job queue on this machine, with
 * no libjobq in the way. A bare sqlite3 program that runs the statements
 * libjobq's SQLite backend runs per job (lib/storage: the multi-row INSERT
 * of sqlite_jobs.c, the promote + read + take of sqlite_claim.c, the
 * success by seq of sqlite_finish.c), on a table of the same shape (the
 * jobq_jobs columns and indexes of the current schema) with the same
 * settings (WAL; synchronous NORMAL, or FULL with --durability power; a
 * 16 MB page cache). tests/bench/sqlite_bench.sh divides libjobq's figures
 * by it. Not a test: it never fails because the machine is slow.
 *
 *   sqlite_ceiling [--db PATH] [--jobs N] [--batch B] [--threads T]
 *                  [--durability crash|power] [--merged]
 *
 * One connection inserts N jobs, 1,000 per transaction (32 rows per
 * statement, as the backend does). Then T threads, each with its own
 * connection, loop: one transaction claims up to B jobs (promote, read,
 * take), the next finishes those B (one UPDATE each), until none is left.
 * With --merged the finishes of one batch and the claim of the next share
 * a transaction (half the commits, and the pages both touch are written
 * to the WAL once): what the backend's group commit reaches when a
 * worker's finishes and its next claim meet in one writer turn.
 * Prints jobs/s for the insert, for claim+finish, and for all three
 * (N divided by both phases' time: one writer at a time, so that is the
 * most an end-to-end run on this file could do), each with the process's
 * CPU time (user + system, the checkpointer's included) per job. The last line is
 * "sqlite_ceiling e2e <jobs/s>" for scripts.
 *
 * Left out: what the backend writes once per transaction rather than per
 * job (its lease row, the shared stats), and every core cost (threads,
 * hand-offs, events, ids, JSON). The difference from jobq_bench is what
 * those cost. */
#include <sqlite3.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *path = "/tmp/jobq-sqlite-ceiling.db";
static long n_jobs = 200000;
static int batch = 256, threads = 1, power = 0, merged = 0;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of the whole process so far: on a shared
 * machine the CPU cost per job is steadier than the wall clock. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "sqlite_ceiling: %s: %s\n", what, db ? sqlite3_errmsg(db) : "cannot open");
  exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) die(db, sql);
}

static void step_done(sqlite3 *db, sqlite3_stmt *st, const char *what) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) die(db, what);
  sqlite3_reset(st);
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    die(db, sql);
  return st;
}

/* Frames in the WAL after the last commit (the checkpointer's cue). */
static atomic_int wal_frames;

static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
  (void)ud;
  (void)name;
  atomic_store(&wal_frames, frames);
  /* SQLite's own checkpoint past the autocheckpoint limit, which this hook
   * replaces (sqlite3_wal_autocheckpoint installs its hook the same way) */
  if (frames >= 4000) sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  return SQLITE_OK;
}

/* The connection settings of lib/storage/sqlite.c (migrate, and each
 * connection's open). */
static sqlite3 *open_db(void) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK)
    die(db, "open");
  sqlite3_busy_timeout(db, 60000);
  exec(db, "PRAGMA journal_mode = WAL");
  exec(db, "PRAGMA cache_size = -16384");
  exec(db, power ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  /* lib/storage/sqlite_ckpt.c: a thread of its own runs the checkpoints
   * (below); a writer checkpoints itself only past 4,000 frames. */
  sqlite3_wal_hook(db, wal_hook, NULL);
  return db;
}

/* The checkpointer of lib/storage/sqlite_ckpt.c, simplified: PASSIVE
 * checkpoints on a connection of its own once the WAL passes 1,000 frames
 * (it looks every millisecond instead of being woken by a WAL hook). */
static atomic_int ckpt_stop;

static void *checkpointer(void *p) {
  (void)p;
  sqlite3 *db = open_db();
  sqlite3_wal_hook(db, NULL, NULL);
  while (!ckpt_stop) {
    if (atomic_load(&wal_frames) >= 1000)
      sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  sqlite3_close(db);
  return NULL;
}

/* jobq_jobs as lib/storage/sqlite.c's migrations leave it (schema 10):
 * migration 1's table with the columns later ones add, and every index on
 * it (each costs a b-tree write whenever its key changes). */
static const char *ddl =
    "CREATE TABLE jobq_jobs ("
    "  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
    "  state INTEGER NOT NULL, priority INTEGER NOT NULL DEFAULT 0, run_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 0,"
    "  progress INTEGER NOT NULL DEFAULT 0, cancel_req INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    "  lease_until INTEGER, owner TEXT, payload TEXT NOT NULL, step TEXT, result TEXT,"
    "  error TEXT, dedupe_key TEXT, dedupe_ttl INTEGER NOT NULL DEFAULT 0, attempt_log TEXT,"
    "  ck_stage INTEGER, ck_output TEXT, lease_owner INTEGER, batch TEXT,"
    "  bcap INTEGER NOT NULL DEFAULT 0, webhooks TEXT);"
    "CREATE INDEX jobq_jobs_due ON jobq_jobs(kind, priority DESC, seq) WHERE state = 0;"
    "CREATE INDEX jobq_jobs_scheduled ON jobq_jobs(run_at) WHERE state = 5;"
    "CREATE INDEX jobq_jobs_dedupe ON jobq_jobs(dedupe_key, seq) WHERE dedupe_key IS NOT NULL;"
    "CREATE INDEX jobq_jobs_owner ON jobq_jobs(owner, seq) WHERE owner IS NOT NULL;"
    "CREATE INDEX jobq_jobs_batch ON jobq_jobs(batch, state) WHERE batch IS NOT NULL;"
    "CREATE INDEX jobq_jobs_held ON jobq_jobs(batch, priority DESC, seq) WHERE state = 6;";

/* sqlite_jobs.c: INSERT_MANY (32) rows of 11 values per statement. */
enum { ROWS = 32, PER_TX = 1000 };
#define INSERT_HEAD                                                                           \
  "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, max_attempts, created_at, owner, " \
  "payload, dedupe_key, dedupe_ttl) VALUES "
#define INSERT_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

/* sqlite_claim.c: WS_PROMOTE, WS_TAKE_READ, WS_TAKE. */
static const char *promote_sql =
    "UPDATE jobq_jobs SET state = CASE WHEN bcap > 0 THEN 6 ELSE 0 END "
    "WHERE state = 5 AND run_at <= ?1";
static const char *take_read_sql =
    "SELECT seq, id, kind, 1, priority, run_at, attempts + 1, "
    "CASE WHEN max_attempts = 0 THEN ?3 ELSE max_attempts END, 0, cancel_req, created_at, ?4, "
    "NULL, owner, payload, step, result, error, dedupe_key, dedupe_ttl, NULL, "
    "batch IS NOT NULL, webhooks "
    "FROM jobq_jobs WHERE state = 0 AND kind = ?1 ORDER BY priority DESC, seq LIMIT ?2";
static const char *take_sql =
    "UPDATE jobq_jobs SET state = 1, attempts = attempts + 1, started_at = ?4, "
    "finished_at = NULL, lease_until = ?5, lease_owner = ?6, progress = 0, "
    "max_attempts = CASE WHEN max_attempts = 0 THEN ?3 ELSE max_attempts END "
    "WHERE seq IN (SELECT seq FROM jobq_jobs WHERE state = 0 AND kind = ?1 "
    "ORDER BY priority DESC, seq LIMIT ?2)";
/* sqlite_finish.c: WS_FINISH_FAST. */
static const char *finish_sql =
    "UPDATE jobq_jobs SET state = 2, result = ?2, progress = 100, step = coalesce(?3, step), "
    "finished_at = ?4, lease_until = NULL "
    "WHERE seq = ?1 AND id = ?5 AND state = 1 AND attempts = ?6 AND cancel_req = 0";

/* A UUIDv7-shaped id, increasing within a run like lib/util/id.c's (the
 * UNIQUE index sees the same appends): milliseconds, a counter, then
 * pseudo-random bits. */
static void make_id(char *out, int64_t ms, uint32_t ctr, uint64_t *rnd) {
  *rnd ^= *rnd << 13;
  *rnd ^= *rnd >> 7;
  *rnd ^= *rnd << 17;
  snprintf(out, 37, "%08" PRIx32 "-%04" PRIx32 "-7%03" PRIx32 "-%04" PRIx32 "-%012" PRIx64,
           (uint32_t)(ms >> 16), (uint32_t)(ms & 0xffff), (ctr >> 4) & 0xfff,
           0x8000u | ((ctr & 0xf) << 10) | (uint32_t)(*rnd & 0x3ff),
           (uint64_t)((*rnd >> 16) & 0xffffffffffffull));
}

static void insert_all(sqlite3 *db) {
  char sql[sizeof INSERT_HEAD + ROWS * sizeof INSERT_ROW];
  size_t o = (size_t)snprintf(sql, sizeof sql, "%s", INSERT_HEAD);
  for (int i = 0; i < ROWS; i++)
    o += (size_t)snprintf(sql + o, sizeof sql - o, "%s%s", i ? "," : "", INSERT_ROW);
  sqlite3_stmt *many = prep(db, sql);
  sqlite3_stmt *one = prep(db, INSERT_HEAD INSERT_ROW);
  sqlite3_stmt *begin = prep(db, "BEGIN IMMEDIATE"), *commit = prep(db, "COMMIT");
  static char ids[PER_TX][37];
  uint64_t rnd = 88172645463325252u;
  uint32_t ctr = 0;
  for (long done = 0; done < n_jobs;) {
    long k = n_jobs - done < PER_TX ? n_jobs - done : PER_TX;
    int64_t now = wall_ms();
    for (long i = 0; i < k; i++) make_id(ids[i], now, ctr++, &rnd);
    step_done(db, begin, "BEGIN");
    for (long i = 0; i < k;) {
      int rows = k - i >= ROWS ? ROWS : 1;
      sqlite3_stmt *st = rows == ROWS ? many : one;
      for (int r = 0; r < rows; r++, i++) {
        int b = r * 11;
        sqlite3_bind_text(st, b + 1, ids[i], 36, SQLITE_STATIC);
        sqlite3_bind_text(st, b + 2, "noop", 4, SQLITE_STATIC);
        sqlite3_bind_int(st, b + 3, 0);
        sqlite3_bind_int(st, b + 4, 0);
        sqlite3_bind_int64(st, b + 5, now);
        sqlite3_bind_int(st, b + 6, 0);
        sqlite3_bind_int64(st, b + 7, now);
        sqlite3_bind_null(st, b + 8);
        sqlite3_bind_text(st, b + 9, "{}", 2, SQLITE_STATIC);
        sqlite3_bind_null(st, b + 10);
        sqlite3_bind_int64(st, b + 11, 0);
      }
      step_done(db, st, "insert");
    }
    step_done(db, commit, "COMMIT");
    done += k;
  }
  sqlite3_finalize(many);
  sqlite3_finalize(one);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
}

typedef struct {
  long done;
  int token;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  sqlite3 *db = open_db();
  sqlite3_stmt *begin = prep(db, "BEGIN IMMEDIATE"), *commit = prep(db, "COMMIT");
  sqlite3_stmt *promote = prep(db, promote_sql), *rd = prep(db, take_read_sql),
               *take = prep(db, take_sql), *fin = prep(db, finish_sql);
  int64_t *seq = malloc((size_t)batch * sizeof *seq);
  int *att = malloc((size_t)batch * sizeof *att);
  char(*ids)[37] = malloc((size_t)batch * sizeof *ids);
  int n = 0; /* jobs claimed and not yet finished (merged: across transactions) */
  for (;;) {
    /* the claim: one transaction (merged: with the previous finishes) */
    int64_t now = wall_ms();
    if (!merged || n == 0) step_done(db, begin, "BEGIN");
    n = 0;
    sqlite3_bind_int64(promote, 1, now);
    step_done(db, promote, "promote");
    sqlite3_bind_text(rd, 1, "noop", 4, SQLITE_STATIC);
    sqlite3_bind_int(rd, 2, batch);
    sqlite3_bind_int(rd, 3, 3);
    sqlite3_bind_int64(rd, 4, now);
    int rc;
    while ((rc = sqlite3_step(rd)) == SQLITE_ROW) {
      /* read every column, as the backend's row_to_job does */
      for (int c = 0; c < 23; c++) {
        if (sqlite3_column_type(rd, c) == SQLITE_TEXT) (void)sqlite3_column_text(rd, c);
        else (void)sqlite3_column_int64(rd, c);
      }
      seq[n] = sqlite3_column_int64(rd, 0);
      att[n] = sqlite3_column_int(rd, 6);
      memcpy(ids[n], sqlite3_column_text(rd, 1), 37);
      n++;
    }
    if (rc != SQLITE_DONE) die(db, "take_read");
    sqlite3_reset(rd);
    if (n == 0) {
      step_done(db, commit, "COMMIT");
      break;
    }
    sqlite3_bind_text(take, 1, "noop", 4, SQLITE_STATIC);
    sqlite3_bind_int(take, 2, n);
    sqlite3_bind_int(take, 3, 3);
    sqlite3_bind_int64(take, 4, now);
    sqlite3_bind_int64(take, 5, now + 30000);
    sqlite3_bind_int64(take, 6, a->token);
    step_done(db, take, "take");
    if (sqlite3_changes(db) != n) die(db, "a take did not take what it read");
    step_done(db, commit, "COMMIT");
    /* the finishes: the next transaction (merged: the claim after them
     * joins it) */
    now = wall_ms();
    step_done(db, begin, "BEGIN");
    for (int i = 0; i < n; i++) {
      sqlite3_bind_int64(fin, 1, seq[i]);
      sqlite3_bind_text(fin, 2, "null", 4, SQLITE_STATIC);
      sqlite3_bind_null(fin, 3);
      sqlite3_bind_int64(fin, 4, now);
      sqlite3_bind_text(fin, 5, ids[i], 36, SQLITE_STATIC);
      sqlite3_bind_int(fin, 6, att[i]);
      step_done(db, fin, "finish");
      if (sqlite3_changes(db) != 1) die(db, "a finish did not apply");
    }
    if (!merged) step_done(db, commit, "COMMIT");
    a->done += n;
  }
  free(seq);
  free(att);
  free(ids);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_finalize(promote);
  sqlite3_finalize(rd);
  sqlite3_finalize(take);
  sqlite3_finalize(fin);
  sqlite3_close(db);
  return NULL;
}

static void remove_db(void) {
  char p[1100];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static int usage(void) {
  fprintf(stderr, "usage: sqlite_ceiling [--db PATH] [--jobs N] [--batch B] [--threads T] "
                  "[--durability crash|power] [--merged]\n");
  return 2;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) path = argv[++i];
    else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) n_jobs = atol(argv[++i]);
    else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--merged") == 0) merged = 1;
    else if (strcmp(argv[i], "--durability") == 0 && i + 1 < argc) {
      const char *d = argv[++i];
      if (strcmp(d, "power") == 0) power = 1;
      else if (strcmp(d, "crash") == 0) power = 0;
      else return usage();
    } else return usage();
  }
  if (n_jobs < 1 || batch < 1 || threads < 1 || threads > 64) return usage();
  /* Start from what is on disk, as jobq_bench does: the previous run's
   * writeback is not this run's cost. */
  remove_db();
  sync();
  sqlite3 *db = open_db();
  exec(db, ddl);
  pthread_t ck;
  pthread_create(&ck, NULL, checkpointer, NULL);
  double t0 = now_s(), c0 = cpu_s();
  insert_all(db);
  double t_ins = now_s() - t0, c_ins = cpu_s() - c0;

  pthread_t th[64];
  worker_arg wa[64];
  t0 = now_s();
  c0 = cpu_s();
  for (int i = 0; i < threads; i++) {
    wa[i].done = 0;
    wa[i].token = i + 1;
    pthread_create(&th[i], NULL, worker, &wa[i]);
  }
  long total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    total += wa[i].done;
  }
  double t_run = now_s() - t0, c_run = cpu_s() - c0;
  ckpt_stop = 1;
  pthread_join(ck, NULL);
  const char *mode = power ? "power-safe (synchronous FULL)" : "crash-safe (synchronous NORMAL)";
  printf("sqlite_ceiling %s, %ld jobs, claim batch %d, %d thread(s)%s\n", mode, n_jobs, batch,
         threads, merged ? ", finishes and the next claim in one transaction" : "");
  printf("sqlite_ceiling insert (1,000 per transaction)   %10.0f jobs/s  %6.2f us CPU per job\n",
         n_jobs / t_ins, c_ins * 1e6 / (double)n_jobs);
  printf("sqlite_ceiling claim+finish                     %10.0f jobs/s  %6.2f us CPU per job\n",
         total / t_run, c_run * 1e6 / (double)(total ? total : 1));
  printf("sqlite_ceiling insert+claim+finish              %10.0f jobs/s  %6.2f us CPU per job\n",
         total / (t_ins + t_run), (c_ins + c_run) * 1e6 / (double)(total ? total : 1));
  printf("sqlite_ceiling e2e %.0f\n", total / (t_ins + t_run));
  sqlite3_close(db);
  remove_db();
  return total == n_jobs ? 0 : 1;
}
