/* Live workers keep their leases under write-lock contention.
 *
 * N_PROCS worker processes (fresh execs of this program) share one SQLite
 * file and run N_JOBS fast jobs with a short lease; nobody is killed or
 * stopped. Each handler logs "id attempt pid" to its process's file before
 * it succeeds. Contention for the database's write lock makes a process
 * wait for it (BEGIN IMMEDIATE) for longer than the lease; the job of a
 * live worker must still not be rescued and run a second time: the test
 * counts jobs that ran more than once (expected 0) and jobs that ended
 * with a "lease expired" attempt (expected 0).
 *
 * A second test stops a live worker (SIGSTOP) in its handler: its job is
 * still rescued, but only once its lease is 2 x busy_timeout past, and the
 * stopped worker's late succeed changes nothing (refused as stale).
 *
 * Environment:
 *   JOBQ_LEASE_LIVE_JOBS      jobs (default 100000; 20000 under sanitizers)
 *   JOBQ_LEASE_LIVE_LEASE_MS  the workers' lease (default 300)
 *   JOBQ_LEASE_LIVE_PROCS     worker processes (default 4) */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

extern char **environ;

#define KIND "live"
#define MAX_PROCS 16
#define WORKER_THREADS 2
#define SUBMIT_BATCH 500
#define DRAIN_GUARD_MS 90000 /* failure guard: every job done by then */
/* Sanitizers make every job far slower: fewer, so the run stays short. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DEFAULT_JOBS 20000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define DEFAULT_JOBS 20000
#endif
#endif
#ifndef DEFAULT_JOBS
#define DEFAULT_JOBS 100000
#endif

static long env_long(const char *name, long dflt, long lo, long hi) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return dflt;
  char *end;
  long x = strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi) {
    fprintf(stderr, "%s=%s is outside %ld..%ld; using %ld\n", name, v, lo, hi, dflt);
    return dflt;
  }
  return x;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- worker role ---- */

typedef struct wstate {
  int fd;
  int pid;
} wstate;

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* The stall test's handler: says it started, waits until the heartbeat
 * reports the job gone, then succeeds and logs what that returned. */
static void stall_handler(jobq_ctx_t *ctx, void *ud) {
  wstate *w = ud;
  char line[128];
  int n = snprintf(line, sizeof line, "start %s\n", jobq_ctx_id(ctx));
  if (write(w->fd, line, (size_t)n) != n) abort();
  while (!jobq_ctx_cancelled(ctx)) sleep_ms(5);
  int rc = jobq_ctx_succeed(ctx, NULL);
  n = snprintf(line, sizeof line, "fin %d\n", rc);
  if (write(w->fd, line, (size_t)n) != n) abort();
}

static void handler(jobq_ctx_t *ctx, void *ud) {
  wstate *w = ud;
  char line[128];
  int n = snprintf(line, sizeof line, "%s %d %d\n", jobq_ctx_id(ctx), jobq_ctx_attempt(ctx),
                   w->pid);
  /* One write of a short line to an O_APPEND file: never interleaved. */
  if (write(w->fd, line, (size_t)n) != n) abort();
  jobq_ctx_succeed(ctx, NULL);
}

static int worker_main(int argc, char **argv) {
  if (argc != 7) return 2;
  const char *db = argv[2], *log = argv[3];
  int lease_ms = atoi(argv[4]);
  int stall = strcmp(argv[5], "stall") == 0;
  const char *url_opts = argv[6];
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  wstate w = {.pid = getpid()};
  w.fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (w.fd < 0) return 3;
  char url[4200];
  snprintf(url, sizeof url, "sqlite:%s%s", db, url_opts);
  jobq_options_t *o = jobq_options_new();
  jobq_t *q = NULL;
  int rc;
  if (o == NULL) return 4;
  if ((rc = jobq_options_set_storage(o, url)) ||
      (rc = jobq_options_set_workers(o, WORKER_THREADS)) ||
      (rc = jobq_options_set_lease(o, lease_ms)) || (rc = jobq_open(&q, o)) ||
      (rc = jobq_register(q, KIND, stall ? stall_handler : handler, &w, NULL)) ||
      (rc = jobq_start(q))) {
    fprintf(stderr, "test_lease_live worker: setup failed: %s: %s\n", jobq_err_name(rc),
            jobq_last_error());
    return 5;
  }
  jobq_options_free(o);
  int sig;
  while (sigwait(&set, &sig) != 0) {
  }
  rc = jobq_close(q, -1);
  close(w.fd);
  return rc == 0 ? 0 : 6;
}

/* ---- driver ---- */

static pid_t spawn_worker(const char *db, const char *log, int lease_ms, const char *mode,
                          const char *url_opts) {
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  char *argv[] = {"test_lease_live", "--worker", (char *)db, (char *)log, lease,
                  (char *)mode, (char *)url_opts, NULL};
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  posix_spawnattr_setsigmask(&at, &mask);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", NULL, &at, argv, environ);
  posix_spawnattr_destroy(&at);
  return rc == 0 ? pid : -1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_live_workers_keep_their_leases(void **state) {
  (void)state;
  long n_jobs = env_long("JOBQ_LEASE_LIVE_JOBS", DEFAULT_JOBS, 1, 10000000);
  int lease_ms = (int)env_long("JOBQ_LEASE_LIVE_LEASE_MS", 300, 100, 600000);
  int n_procs = (int)env_long("JOBQ_LEASE_LIVE_PROCS", 4, 1, MAX_PROCS);
  char dir[] = "/tmp/jobq_lease_live_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char db[128], url[160];
  snprintf(db, sizeof db, "%s/q.db", dir);
  snprintf(url, sizeof url, "sqlite:%s", db);

  /* Submit everything first (the driver runs no handlers). */
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  const char *kinds[SUBMIT_BATCH], *payloads[SUBMIT_BATCH];
  static char ids[SUBMIT_BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < SUBMIT_BATCH; i++) {
    kinds[i] = KIND;
    payloads[i] = NULL;
  }
  for (long done = 0; done < n_jobs;) {
    size_t n = (size_t)(n_jobs - done < SUBMIT_BATCH ? n_jobs - done : SUBMIT_BATCH);
    int rc = jobq_submit_many(q, n, kinds, payloads, NULL, ids, NULL);
    if (rc < 0) fail_msg("submit: %s: %s", jobq_err_name(rc), jobq_last_error());
    done += (long)n;
  }
  assert_int_equal(jobq_close(q, 0), 0);

  char logs[MAX_PROCS][160];
  pid_t pids[MAX_PROCS];
  for (int i = 0; i < n_procs; i++) {
    snprintf(logs[i], sizeof logs[i], "%s/w%d.log", dir, i);
    pids[i] = spawn_worker(db, logs[i], lease_ms, "fast", "");
    assert_true(pids[i] > 0);
  }

  /* Wait until no job is queued or running. */
  sqlite3 *probe;
  assert_int_equal(sqlite3_open_v2(db, &probe, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(probe, 5000);
  int64_t t0 = mono_ms(), left = -1;
  for (;;) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(probe, "SELECT count(*) FROM jobq_jobs WHERE state IN (0, 1, 5)",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      left = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (left == 0 || mono_ms() - t0 > DRAIN_GUARD_MS) break;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
  int64_t elapsed = mono_ms() - t0;
  long expired = -1;
  {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(probe,
                           "SELECT count(*) FROM jobq_jobs WHERE attempt_log LIKE "
                           "'%lease expired%' OR error LIKE '%lease expired%'",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      expired = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(probe);
  int clean = 1;
  for (int i = 0; i < n_procs; i++) {
    kill(pids[i], SIGTERM);
    int ws = 0;
    while (waitpid(pids[i], &ws, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) clean = 0;
  }

  /* Every run of every job, from the logs. */
  size_t n_lines = 0, cap = (size_t)n_jobs + 1024;
  char **lines = malloc(cap * sizeof *lines);
  assert_non_null(lines);
  for (int i = 0; i < n_procs; i++) {
    FILE *f = fopen(logs[i], "r");
    if (f == NULL) continue;
    char buf[128];
    while (fgets(buf, sizeof buf, f)) {
      char *sp = strchr(buf, ' ');
      if (sp) *sp = '\0';
      if (n_lines == cap) {
        cap *= 2;
        lines = realloc(lines, cap * sizeof *lines);
        assert_non_null(lines);
      }
      lines[n_lines++] = strdup(buf);
    }
    fclose(f);
  }
  qsort(lines, n_lines, sizeof *lines, cmp_str);
  long twice = 0, distinct = 0;
  for (size_t i = 0; i < n_lines; i++) {
    if (i == 0 || strcmp(lines[i], lines[i - 1]) != 0) distinct++;
    else if (strcmp(lines[i], lines[i - 1]) == 0 && (i < 2 || strcmp(lines[i], lines[i - 2]) != 0))
      twice++;
  }
  for (size_t i = 0; i < n_lines; i++) free(lines[i]);
  free(lines);
  printf("test_lease_live: %d processes x %d threads, lease %d ms, %ld jobs: %ld ran, %zu runs, "
         "%ld ran more than once, %ld with a lease-expired attempt, %.1f s\n",
         n_procs, WORKER_THREADS, lease_ms, n_jobs, distinct, n_lines, twice, expired,
         (double)elapsed / 1000);
  fflush(stdout);
  assert_int_equal(left, 0);
  assert_true(clean);
  assert_int_equal(distinct, n_jobs);
  assert_int_equal(twice, 0);
  assert_int_equal(expired, 0);
  for (int i = 0; i < n_procs; i++) unlink(logs[i]);
  char p[200];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", db, sfx[i]);
    unlink(p);
  }
  rmdir(dir);
}

static int done_in_driver;

static void driver_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  __atomic_store_n(&done_in_driver, jobq_ctx_attempt(ctx), __ATOMIC_SEQ_CST);
  jobq_ctx_succeed(ctx, NULL);
}

static int file_has(const char *path, const char *what) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char buf[256];
  int found = 0;
  while (!found && fgets(buf, sizeof buf, f)) found = strstr(buf, what) != NULL;
  fclose(f);
  return found;
}

#define STALL_LEASE_MS 300
#define STALL_BUSY_MS 250 /* grace for a live owner: 2 x 250 ms */

static void test_stalled_worker_rescued_after_grace(void **state) {
  (void)state;
  char dir[] = "/tmp/jobq_lease_stall_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char db[128], url[200], log[160];
  snprintf(db, sizeof db, "%s/q.db", dir);
  snprintf(log, sizeof log, "%s/w.log", dir);
  char opts[64];
  snprintf(opts, sizeof opts, "?busy_timeout=%d", STALL_BUSY_MS);
  snprintf(url, sizeof url, "sqlite:%s%s", db, opts);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_lease(o, STALL_LEASE_MS), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, KIND, NULL, NULL, id), 0);

  pid_t pid = spawn_worker(db, log, STALL_LEASE_MS, "stall", opts);
  assert_true(pid > 0);
  char want[64];
  snprintf(want, sizeof want, "start %s", id);
  int64_t t0 = mono_ms();
  while (!file_has(log, want) && mono_ms() - t0 < 30000) sleep_ms(5);
  assert_true(file_has(log, want));
  /* Alive, but stopped: no heartbeat can come. A process stopped inside a
   * write transaction (a heartbeat, every lease/3) would hold SQLite's
   * write lock and stop every writer, the rescuer included, for as long as
   * it stays stopped: that is SQLite's, not a lease question. So stop it
   * where it holds no write lock. */
  sqlite3 *probe = NULL;
  assert_int_equal(sqlite3_open(db, &probe), SQLITE_OK);
  int stopped_clean = 0;
  for (int tries = 0; tries < 200 && !stopped_clean; tries++) {
    assert_int_equal(kill(pid, SIGSTOP), 0);
    sleep_ms(5); /* the signal is taken */
    if (sqlite3_exec(probe, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
      sqlite3_exec(probe, "ROLLBACK", NULL, NULL, NULL);
      stopped_clean = 1;
    } else {
      assert_int_equal(kill(pid, SIGCONT), 0);
      sleep_ms(7);
    }
  }
  sqlite3_close(probe);
  assert_true(stopped_clean);

  /* This process rescues it (only after the grace) and runs attempt 2. */
  assert_int_equal(jobq_register(q, KIND, driver_handler, NULL, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  t0 = mono_ms();
  while (__atomic_load_n(&done_in_driver, __ATOMIC_SEQ_CST) == 0 && mono_ms() - t0 < 30000)
    sleep_ms(5);
  assert_int_equal(__atomic_load_n(&done_in_driver, __ATOMIC_SEQ_CST), 2);
  jobq_job_t *j = NULL;
  for (int i = 0; i < 3000; i++) {
    assert_int_equal(jobq_get(q, id, &j), 0);
    if (jobq_job_state(j) == JOBQ_SUCCEEDED) break;
    jobq_job_free(j);
    j = NULL;
    sleep_ms(10);
  }
  assert_non_null(j);
  assert_int_equal(jobq_job_attempts(j), 2);
  assert_non_null(strstr(jobq_job_attempt_error(j, 0), "lease expired"));
  int64_t held = jobq_job_attempt_finished_at(j, 0) - jobq_job_attempt_started_at(j, 0);
  printf("test_stalled_worker: lease %d ms, busy_timeout %d ms: the stopped worker's job was "
         "rescued %lld ms after it started (no earlier than %d)\n",
         STALL_LEASE_MS, STALL_BUSY_MS, (long long)held, STALL_LEASE_MS + 2 * STALL_BUSY_MS);
  fflush(stdout);
  /* Its last stored lease ended no earlier than the start + lease, and a
   * live owner's lease is rescued 2 x busy_timeout after that. */
  assert_true(held >= STALL_LEASE_MS + 2 * STALL_BUSY_MS);
  jobq_job_free(j);

  /* Woken, the worker learns its job is gone (jobq_ctx_cancelled) and
   * succeeds late: storage refuses that finish as stale, and the job stays
   * as attempt 2 left it. */
  assert_int_equal(kill(pid, SIGCONT), 0);
  t0 = mono_ms();
  while (!file_has(log, "fin ") && mono_ms() - t0 < 30000) sleep_ms(5);
  assert_true(file_has(log, "fin "));
  kill(pid, SIGTERM);
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  assert_int_equal(jobq_get(q, id, &j), 0);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 2);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, -1), 0);
  unlink(log);
  char p[200];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", db, sfx[i]);
    unlink(p);
  }
  rmdir(dir);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--worker") == 0) return worker_main(argc, argv);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_live_workers_keep_their_leases),
    cmocka_unit_test(test_stalled_worker_rescued_after_grace),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
