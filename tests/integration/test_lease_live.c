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
 * Environment:
 *   JOBQ_LEASE_LIVE_JOBS      jobs (default 100000)
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
  if (argc != 5) return 2;
  const char *db = argv[2], *log = argv[3];
  int lease_ms = atoi(argv[4]);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  wstate w = {.pid = getpid()};
  w.fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (w.fd < 0) return 3;
  char url[4200];
  snprintf(url, sizeof url, "sqlite:%s", db);
  jobq_options_t *o = jobq_options_new();
  jobq_t *q = NULL;
  int rc;
  if (o == NULL) return 4;
  if ((rc = jobq_options_set_storage(o, url)) ||
      (rc = jobq_options_set_workers(o, WORKER_THREADS)) ||
      (rc = jobq_options_set_lease(o, lease_ms)) || (rc = jobq_open(&q, o)) ||
      (rc = jobq_register(q, KIND, handler, &w, NULL)) || (rc = jobq_start(q))) {
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

static pid_t spawn_worker(const char *db, const char *log, int lease_ms) {
  char lease[16];
  snprintf(lease, sizeof lease, "%d", lease_ms);
  char *argv[] = {"test_lease_live", "--worker", (char *)db, (char *)log, lease, NULL};
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
  long n_jobs = env_long("JOBQ_LEASE_LIVE_JOBS", 100000, 1, 10000000);
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
    pids[i] = spawn_worker(db, logs[i], lease_ms);
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

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--worker") == 0) return worker_main(argc, argv);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_live_workers_keep_their_leases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
