/* Crash test: worker processes share one store (a SQLite file, or a
 * PostgreSQL schema) and are killed with SIGKILL at random moments (while
 * claiming, inside a handler, while committing, while starting up), while a
 * driver keeps submitting jobs.
 *
 * One program, two roles:
 *   test_crash                  the driver (a cmocka test)
 *   test_crash --worker URL DIR N PPID LEASE_MS
 *                               a worker process (started by the driver with
 *                               posix_spawn of /proc/self/exe)
 *
 * Two CTest entries run it: test_crash on a SQLite file of a temporary
 * directory, and test_crash_postgres (JOBQ_CRASH_BACKEND=postgres) on a
 * fresh schema of the postgres fixture's server. The checks are the same;
 * what differs by backend is only how the driver looks into the store
 * behind the public API (the stuck-lease probe and the final count of
 * non-terminal rows: SQL on a connection of its own, sqlite3 or libpq) and
 * what holds the claim up in test_lease_counts_from_commit (SQLite's write
 * lock; on PostgreSQL a LOCK TABLE of jobq_jobs in EXCLUSIVE mode, which
 * blocks the claim's row locks the same way).
 *
 * The driver submits from a submit-only queue of its own (it never calls
 * jobq_start) on a thread, while its main thread cycles: sleep 5..50 ms,
 * SIGKILL a random worker, reap it, start a replacement. Then the workers
 * drain the queue unharmed, are stopped with SIGTERM (a clean jobq_close),
 * and the driver checks every job against the workers' logs:
 *
 *   - every submitted id exists (jobq_get) and is terminal, and jobq_list
 *     over all pages returns exactly the submitted ids (none lost, none
 *     extra);
 *   - the terminal state is the one the payload asks for, unless kills
 *     explain otherwise (a job whose every attempt was killed fails with
 *     "lease expired" once its attempts are spent);
 *   - an attempt number is never started twice; every attempt before the
 *     last ended either with the handler's retryable failure or with
 *     "lease expired", and a "lease expired" attempt was run by a worker the
 *     driver killed (or, if no worker logged its start, a kill happened while
 *     it was running): any other re-execution fails the test;
 *   - the stored attempts agree with the logged starts (a logged start is
 *     never beyond the stored count; unlogged attempts are kills between
 *     claim and handler), and a success's stored result names the worker and
 *     attempt that logged it;
 *   - the attempt timeline is ordered: an attempt is recorded as started no
 *     earlier than the previous one ended (plus the backoff after a
 *     retryable failure), since those writes are serialised by the database;
 *   - no job stays running long past its lease (sampled during the run
 *     straight from the database), and the workers that were not killed exit
 *     with status 0 (under ASan/LSan: no leak report).
 *
 * A second test (test_lease_counts_from_commit) holds the database's write
 * lock for twice the lease while a worker claims, and checks that the claim
 * still gets a whole lease and the job runs once.
 *
 * Environment:
 *   JOBQ_CRASH_BACKEND sqlite (default) or postgres (the server named by
 *                      JOBQ_TEST_POSTGRES_URL or JOBQ_TEST_POSTGRES_URL_FILE,
 *                      as for every PostgreSQL test; skipped without one)
 *   JOBQ_CRASH_CYCLES  kill cycles (default 100; the long run uses 1000)
 *   JOBQ_CRASH_SEED    seed of the driver's choices (printed at the start)
 *   JOBQ_CRASH_LEASE_MS  the workers' lease (default 300 on SQLite, 1000 on
 *                      PostgreSQL; see DEFAULT_LEASE_MS)
 *   JOBQ_CRASH_KEEP=1  keep the temporary directory (kept anyway on failure)
 *
 * Handler outcomes are a function of the payload and the attempt number, so
 * the driver knows what each attempt must have done. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

#ifdef JOBQ_TEST_HAVE_POSTGRES
#include "jobq/postgres.h"
#include "pgtest.h"
#endif

extern char **environ;

#define KIND "crash"
#define N_WORKERS 3           /* worker processes alive at once */
#define WORKER_THREADS 2      /* jobq worker threads in each */
/* The workers' lease. Short, so that killed workers' jobs come back soon.
 * A live worker's heartbeat may wait for the write lock longer than that
 * (an fsync of a checkpoint, a starved busy-wait for the lock: most of a
 * second on a loaded machine); its jobs must still not be rescued, since
 * its process holds its liveness lock (docs/architecture.md, "Leases,
 * heartbeats, rescue"): every rescue of a live worker's job fails the test
 * (live-reruns in the summary). JOBQ_CRASH_LEASE_MS overrides it
 * (100..60000). */
#define DEFAULT_LEASE_MS 300
/* On PostgreSQL no liveness lock protects a live worker's jobs: only its
 * heartbeats (every lease/3) do, and each is a round trip to a server that
 * shares the machine's two cores with the test. A longer lease keeps a
 * live worker's heartbeat in time; the killed workers' jobs still come
 * back within about a second and a half (the leader rescues every
 * lease/2). */
#define DEFAULT_LEASE_MS_PG 1000
#define LW_LEASE_MS 1000      /* test_lease_counts_from_commit */
#define KIND_MAX_ATTEMPTS 4   /* the kind's default; some jobs override it */
#define BACKOFF_BASE_MS 20    /* the kind's retry backoff: 20, 40, 80, 160, 200 ms */
#define BACKOFF_MAX_MS 200
#define MAXA 8                /* attempts tracked per job (max_attempts <= 6) */
#define BACKLOG_MAX 200       /* the submitter pauses above this many queued jobs */
#define DRAIN_GUARD_MS 60000  /* failure guard for the final drain */
#define STOP_GUARD_MS 30000   /* failure guard for a worker's clean exit */
/* A running job this long past its lease is stuck: a dead worker's job is
 * rescued within lease/2 of its lease, a live but stalled worker's 2 x
 * busy_timeout (10 s) later. */
#define STUCK_SLACK_MS 15000
#define CLOCK_SLACK_MS 2000   /* tolerance between the driver's and storage's clocks */
#define ORDER_SLACK_MS 2      /* tolerance of the attempt timeline (ms rounding) */
#define MAX_REPORTS 40        /* failure messages printed (all are counted) */

static const char LEASE_EXPIRED[] = "lease expired";

enum { O_OK, O_RETRY, O_PERM };
static const char *const outcome_names[] = {"ok", "retry", "perm"};

/* What attempt a of a job with this "fail" field does. 0: succeeds; 1: fails
 * retryably every time; 2: fails for good; 3: fails retryably at attempt 1,
 * then succeeds. */
static int expected_outcome(int fail, int a) {
  switch (fail) {
    case 1: return O_RETRY;
    case 2: return O_PERM;
    case 3: return a == 1 ? O_RETRY : O_OK;
    default: return O_OK;
  }
}

static void fail_message(char *buf, size_t cap, int outcome, int n, int a) {
  snprintf(buf, cap, "%s failure n=%d attempt=%d", outcome == O_RETRY ? "retryable" : "permanent",
           n, a);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static int rng_int(uint64_t *s, int lo, int hi) { /* lo..hi inclusive */
  return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* ======================================================================== */
/* Worker role                                                              */
/* ======================================================================== */

typedef struct wstate {
  int fd;  /* the log, O_APPEND: one write() per line survives SIGKILL */
  int num; /* the driver's number for this process (pids get reused) */
  pid_t pid;
} wstate;

static void wlog(wstate *w, const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n <= 0 || (size_t)n >= sizeof buf) abort();
  if (write(w->fd, buf, (size_t)n) != n) {
    fprintf(stderr, "test_crash worker %d: cannot write its log: %s\n", w->num, strerror(errno));
    abort();
  }
}

static void worker_handler(jobq_ctx_t *ctx, void *ud) {
  wstate *w = ud;
  const char *id = jobq_ctx_id(ctx);
  int a = jobq_ctx_attempt(ctx);
  int n = -1, fail = -1, ms = -1, p100 = -1;
  if (sscanf(jobq_ctx_payload(ctx), "{\"n\":%d,\"fail\":%d,\"ms\":%d,\"p\":%d}", &n, &fail, &ms,
             &p100) != 4) {
    fprintf(stderr, "test_crash worker %d: unexpected payload %s\n", w->num,
            jobq_ctx_payload(ctx));
    abort();
  }
  wlog(w, "start %s %d %d %d\n", id, a, (int)w->pid, w->num);
  for (int i = 0; i < ms; i++) {
    sleep_ms(1);
    jobq_ctx_progress(ctx, i * 100 / ms, "working");
  }
  /* A progress of 100 is written to storage at once: one more commit for a
   * kill to land in. */
  if (p100) jobq_ctx_progress(ctx, 100, "finishing");
  int o = expected_outcome(fail, a);
  /* Logged before finishing: a process killed between this line and the
   * commit leaves a "done" that storage never saw, which the driver allows
   * for killed processes only. */
  wlog(w, "done %s %d %d %d %s%s\n", id, a, (int)w->pid, w->num, outcome_names[o],
       jobq_ctx_cancelled(ctx) ? " cancelled" : "");
  int rc;
  if (o == O_OK) {
    char res[96];
    snprintf(res, sizeof res, "{\"n\":%d,\"attempt\":%d,\"w\":%d}", n, a, w->num);
    rc = jobq_ctx_succeed(ctx, res);
  } else {
    char msg[96];
    fail_message(msg, sizeof msg, o, n, a);
    rc = jobq_ctx_fail(ctx, msg, o == O_RETRY);
  }
  if (rc != 0) wlog(w, "finish-error %s %d %d %d %d\n", id, a, (int)w->pid, w->num, rc);
}

static int worker_main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: test_crash --worker URL LOGDIR NUM PARENT_PID LEASE_MS\n");
    return 2;
  }
  const char *url = argv[2], *dir = argv[3];
  int num = atoi(argv[4]);
  pid_t parent = (pid_t)atoi(argv[5]);
  int lease_ms = atoi(argv[6]);
  /* Never outlive the driver, even if it dies without cleaning up. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) return 3;

  /* SIGTERM is taken with sigwait: blocked before any thread exists (the
   * driver already starts us with it blocked). */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  wstate w = {.num = num, .pid = getpid()};
  char path[4096];
  snprintf(path, sizeof path, "%s/w%d.log", dir, num);
  w.fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (w.fd < 0) {
    fprintf(stderr, "test_crash worker %d: cannot open %s: %s\n", num, path, strerror(errno));
    return 4;
  }
  wlog(&w, "up %d %d\n", (int)w.pid, num);

#ifdef JOBQ_TEST_HAVE_POSTGRES
  /* The tests link the static libjobq: the backend is registered by hand
   * (what libjobq's dlopen of libjobq-pg does for a shared one). */
  if (jobq_postgres_register() != 0) return 5;
#endif
  jobq_options_t *o = jobq_options_new();
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  jobq_t *q = NULL;
  int rc;
  if (!o || !ko) return 5;
  if ((rc = jobq_options_set_storage(o, url)) ||
      (rc = jobq_options_set_workers(o, WORKER_THREADS)) ||
      (rc = jobq_options_set_lease(o, lease_ms)) ||
      (rc = jobq_kind_opts_set_max_attempts(ko, KIND_MAX_ATTEMPTS)) ||
      (rc = jobq_kind_opts_set_backoff(ko, BACKOFF_BASE_MS, BACKOFF_MAX_MS, 0.2)) ||
      (rc = jobq_open(&q, o)) || (rc = jobq_register(q, KIND, worker_handler, &w, ko)) ||
      (rc = jobq_start(q))) {
    fprintf(stderr, "test_crash worker %d: setup failed: %s: %s\n", num, jobq_err_name(rc),
            jobq_last_error());
    return 6;
  }
  jobq_options_free(o);
  jobq_kind_opts_free(ko);

  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  /* A clean stop: running handlers finish (no release), then close. */
  rc = jobq_close(q, -1);
  if (rc != 0) {
    fprintf(stderr, "test_crash worker %d: jobq_close: %s: %s\n", num, jobq_err_name(rc),
            jobq_last_error());
    return 7;
  }
  wlog(&w, "bye %d %d\n", (int)w.pid, num);
  close(w.fd);
  return 0;
}

/* ======================================================================== */
/* Driver role                                                              */
/* ======================================================================== */

typedef struct job {
  char id[JOBQ_ID_SIZE];
  int n, fail, ms, p100;
  int max_opt; /* max_attempts given at submit, 0 = the kind's default */
  /* From the workers' logs, per attempt number: the worker (number) that
   * logged its start / its done, -1 if none; outcome of the done. */
  int start_w[MAXA], done_w[MAXA], done_o[MAXA];
  int dup_start[MAXA]; /* 1 + the worker that logged a second start, or 0 */
} job;

typedef struct winfo {
  pid_t pid;
  int killed;      /* by the driver */
  int64_t kill_at; /* wall clock ms, just before kill() */
  int reaped;
} winfo;

typedef struct driver {
  uint64_t seed;
  int cycles;
  int lease_ms;
  char dir[4096];
  char db[4200];  /* SQLite: the file */
  char url[4400]; /* the storage URL of every queue of the test */
  int pg;         /* the store is a PostgreSQL schema */
  jobq_t *q;
  /* A look into the store behind the public API (leases, final states),
   * main thread only: sqlite3 on a SQLite file, libpq on PostgreSQL. */
  sqlite3 *probe;
#ifdef JOBQ_TEST_HAVE_POSTGRES
  struct pg_conn *pgprobe;
  char schema[64];
#endif

  pthread_mutex_t mu; /* jobs, submit_err */
  job *jobs;
  size_t n_jobs, cap_jobs;
  int submit_errors;
  char submit_err[512];
  atomic_int stop_submit;
  uint64_t submit_seed;
  long submit_calls, submit_batches;

  winfo *w; /* by worker number */
  int n_w, cap_w;
  int slots[N_WORKERS]; /* worker numbers alive */
  int kills;

  int fails;
  int64_t stuck_checks;
} driver;

static void report(driver *d, const char *fmt, ...) {
  d->fails++;
  if (d->fails > MAX_REPORTS) {
    if (d->fails == MAX_REPORTS + 1) fprintf(stderr, "test_crash: (further failures not shown)\n");
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "test_crash: FAILURE: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int spawn_worker(driver *d, int slot) {
  if (d->n_w == d->cap_w) {
    int nc = d->cap_w ? d->cap_w * 2 : 64;
    winfo *nw = realloc(d->w, (size_t)nc * sizeof *nw);
    if (nw == NULL) {
      d->slots[slot] = -1;
      return -1;
    }
    d->w = nw;
    d->cap_w = nc;
  }
  int num = d->n_w;
  char nums[16], ppid[16], lease[16];
  snprintf(nums, sizeof nums, "%d", num);
  snprintf(ppid, sizeof ppid, "%d", (int)getpid());
  snprintf(lease, sizeof lease, "%d", d->lease_ms);
  char *argv[] = {"test_crash", "--worker", d->url, d->dir, nums, ppid, lease, NULL};
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  /* The worker starts with SIGTERM blocked (it takes it with sigwait), so
   * a SIGTERM that arrives while it is still starting up waits for it. */
  sigset_t mask, def;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigemptyset(&def);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigmask(&at, &mask);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", NULL, &at, argv, environ);
  posix_spawnattr_destroy(&at);
  if (rc != 0) {
    report(d, "posix_spawn of a worker failed: %s", strerror(rc));
    d->slots[slot] = -1;
    return -1;
  }
  d->w[num] = (winfo){.pid = pid};
  d->n_w++;
  d->slots[slot] = num;
  return 0;
}

/* A worker that left on its own while it should be running is a failure. */
static void check_workers_alive(driver *d) {
  for (int s = 0; s < N_WORKERS; s++) {
    int num = d->slots[s];
    if (num < 0) continue;
    int st;
    pid_t r = waitpid(d->w[num].pid, &st, WNOHANG);
    if (r == d->w[num].pid) {
      d->w[num].reaped = 1;
      report(d, "worker %d (pid %d) exited by itself (%s %d); restarting it", num,
             (int)d->w[num].pid, WIFSIGNALED(st) ? "signal" : "status",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
      spawn_worker(d, s);
    }
  }
}

static void kill_all_workers(driver *d) {
  for (int s = 0; s < N_WORKERS; s++) {
    int num = d->slots[s];
    if (num < 0 || d->w[num].reaped) continue;
    kill(d->w[num].pid, SIGKILL);
    waitpid(d->w[num].pid, NULL, 0);
    d->w[num].reaped = 1;
    d->slots[s] = -1;
  }
}

#ifdef JOBQ_TEST_HAVE_POSTGRES
/* The PostgreSQL probe: one statement (with $1 = arg when nparams is 1),
 * its rows reported by row_fn. */
static void pg_probe(driver *d, const char *sql, int nparams, int64_t arg,
                     void (*row_fn)(driver *, PGresult *, int, int64_t)) {
  char ab[24];
  snprintf(ab, sizeof ab, "%" PRId64, arg);
  const char *p[1] = {ab};
  PGresult *r = PQexecParams(d->pgprobe, sql, nparams, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    report(d, "postgres probe: %s", PQerrorMessage(d->pgprobe));
  else
    for (int i = 0; i < PQntuples(r); i++) row_fn(d, r, i, arg);
  PQclear(r);
}

static void pg_stuck_row(driver *d, PGresult *r, int i, int64_t cutoff) {
  int64_t now = cutoff + STUCK_SLACK_MS;
  report(d, "job %s is running %" PRId64 " ms past its lease (nobody rescued it)",
         PQgetvalue(r, i, 0), now - strtoll(PQgetvalue(r, i, 1), NULL, 10));
}

static void pg_count_row(driver *d, PGresult *r, int i, int64_t unused) {
  (void)unused;
  long long n = strtoll(PQgetvalue(r, i, 0), NULL, 10);
  if (n != 0) report(d, "%lld jobs in the database are not terminal", n);
}
#endif

/* Running jobs whose lease ran out more than STUCK_SLACK_MS ago: any live
 * process should have rescued them long before. */
static void check_stuck(driver *d) {
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (d->pg) {
    /* state 1 is running on both backends (the public state numbers) */
    pg_probe(d, "SELECT id, lease_until FROM jobq_jobs WHERE state = 1 AND lease_until < $1", 1,
             wall_ms() - STUCK_SLACK_MS, pg_stuck_row);
    d->stuck_checks++;
    return;
  }
#endif
  static const char sql[] =
      "SELECT id, lease_until FROM jobq_jobs WHERE state = 1 AND lease_until < ?1";
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(d->probe, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) {
    report(d, "lease probe: %s", sqlite3_errmsg(d->probe));
    return;
  }
  int64_t now = wall_ms();
  sqlite3_bind_int64(st, 1, now - STUCK_SLACK_MS);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    report(d, "job %s is running %" PRId64 " ms past its lease (nobody rescued it)",
           (const char *)sqlite3_column_text(st, 0), now - sqlite3_column_int64(st, 1));
  if (rc != SQLITE_DONE && rc != SQLITE_BUSY)
    report(d, "lease probe: %s", sqlite3_errmsg(d->probe));
  sqlite3_finalize(st);
  d->stuck_checks++;
}

/* ---- submitting ---- */

static int backlog_full(driver *d, jobq_filter_t *f) {
  jobq_page_t *p = NULL;
  if (jobq_list(d->q, f, &p) != 0) return 0;
  int full = jobq_page_count(p) > BACKLOG_MAX;
  jobq_page_free(p);
  return full;
}

static void *submitter_main(void *arg) {
  driver *d = arg;
  uint64_t rng = d->submit_seed;
  jobq_submit_opts_t *so_ma2 = jobq_submit_opts_new(), *so_ma6 = jobq_submit_opts_new(),
                     *so_prio = jobq_submit_opts_new();
  jobq_filter_t *f = jobq_filter_new();
  if (!so_ma2 || !so_ma6 || !so_prio || !f) abort();
  jobq_submit_opts_set_max_attempts(so_ma2, 2);
  jobq_submit_opts_set_max_attempts(so_ma6, 6);
  jobq_submit_opts_set_priority(so_prio, 5);
  jobq_filter_set_state(f, JOBQ_QUEUED);
  jobq_filter_set_limit(f, BACKLOG_MAX + 1);

  enum { BATCH_MAX = 8 };
  while (!atomic_load(&d->stop_submit)) {
    if (backlog_full(d, f)) {
      sleep_ms(10);
      continue;
    }
    int batch = rng_int(&rng, 0, 1) ? rng_int(&rng, 2, BATCH_MAX) : 1;
    job nj[BATCH_MAX];
    char payloads[BATCH_MAX][96];
    const char *kinds[BATCH_MAX], *pl[BATCH_MAX];
    const jobq_submit_opts_t *opts[BATCH_MAX];
    pthread_mutex_lock(&d->mu);
    int base = (int)d->n_jobs;
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < batch; i++) {
      job *j = &nj[i];
      memset(j, 0, sizeof *j);
      j->n = base + i;
      int r = rng_int(&rng, 0, 99);
      j->fail = r < 60 ? 0 : r < 70 ? 1 : r < 80 ? 2 : 3;
      /* Mostly 0..5 ms; some longer; a few outlive the lease, so that only
       * heartbeats keep them from being rescued while their worker lives. */
      r = rng_int(&rng, 0, 999);
      j->ms = r < 850   ? rng_int(&rng, 0, 5)
              : r < 995 ? rng_int(&rng, 10, 60)
                        : rng_int(&rng, d->lease_ms * 11 / 10, d->lease_ms * 3 / 2);
      j->p100 = rng_int(&rng, 0, 3) == 0;
      r = rng_int(&rng, 0, 99);
      opts[i] = r < 15 ? so_ma2 : r < 25 ? so_ma6 : r < 40 ? so_prio : NULL;
      j->max_opt = opts[i] == so_ma2 ? 2 : opts[i] == so_ma6 ? 6 : 0;
      snprintf(payloads[i], sizeof payloads[i], "{\"n\":%d,\"fail\":%d,\"ms\":%d,\"p\":%d}", j->n,
               j->fail, j->ms, j->p100);
      kinds[i] = KIND;
      pl[i] = payloads[i];
    }
    char ids[BATCH_MAX * JOBQ_ID_SIZE];
    int rc;
    if (batch == 1) rc = jobq_submit(d->q, KIND, pl[0], opts[0], ids);
    else rc = jobq_submit_many(d->q, (size_t)batch, kinds, pl, opts, ids, NULL);
    pthread_mutex_lock(&d->mu);
    if (batch == 1) d->submit_calls++;
    else d->submit_batches++;
    if (rc != 0) {
      d->submit_errors++;
      snprintf(d->submit_err, sizeof d->submit_err, "%s returned %s: %s",
               batch == 1 ? "jobq_submit" : "jobq_submit_many", jobq_err_name(rc),
               jobq_last_error());
    } else {
      if (d->n_jobs + (size_t)batch > d->cap_jobs) {
        size_t nc = d->cap_jobs ? d->cap_jobs * 2 : 1024;
        job *nv = realloc(d->jobs, nc * sizeof *nv);
        if (nv == NULL) abort();
        d->jobs = nv;
        d->cap_jobs = nc;
      }
      for (int i = 0; i < batch; i++) {
        memcpy(nj[i].id, ids + (size_t)i * JOBQ_ID_SIZE, JOBQ_ID_SIZE);
        d->jobs[d->n_jobs++] = nj[i];
      }
    }
    pthread_mutex_unlock(&d->mu);
    sleep_ms(rng_int(&rng, 3, 15));
  }
  jobq_submit_opts_free(so_ma2);
  jobq_submit_opts_free(so_ma6);
  jobq_submit_opts_free(so_prio);
  jobq_filter_free(f);
  return NULL;
}

/* ---- checking ---- */

static int id_cmp(const void *a, const void *b) {
  return strcmp(((const job *)a)->id, ((const job *)b)->id);
}

static job *find_job(driver *d, const char *id) {
  job key;
  snprintf(key.id, sizeof key.id, "%s", id);
  return bsearch(&key, d->jobs, d->n_jobs, sizeof *d->jobs, id_cmp);
}

static int outcome_of(const char *s) {
  for (int i = 0; i < 3; i++)
    if (strcmp(s, outcome_names[i]) == 0) return i;
  return -1;
}

static void read_logs(driver *d) {
  for (int num = 0; num < d->n_w; num++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/w%d.log", d->dir, num);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue; /* killed before it opened its log */
    char line[512];
    while (fgets(line, sizeof line, f)) {
      size_t len = strlen(line);
      if (len == 0 || line[len - 1] != '\n') {
        /* One write() per line: only a killed process may leave a torn one. */
        if (!d->w[num].killed) report(d, "worker %d: torn log line \"%s\"", num, line);
        continue;
      }
      char verb[16], id[64], extra[32] = "", extra2[32] = "";
      int a, pid, wn;
      int k = sscanf(line, "%15s %63s %d %d %d %31s %31s", verb, id, &a, &pid, &wn, extra, extra2);
      if (k >= 1 && (strcmp(verb, "up") == 0 || strcmp(verb, "bye") == 0)) continue;
      if (k >= 1 && strcmp(verb, "finish-error") == 0) {
        report(d, "worker %d: jobq_ctx_succeed/fail refused: %s", num, line);
        continue;
      }
      if (k < 5 || wn != num || (strcmp(verb, "start") != 0 && strcmp(verb, "done") != 0)) {
        report(d, "worker %d: unreadable log line \"%.*s\"", num, (int)len - 1, line);
        continue;
      }
      job *j = find_job(d, id);
      if (j == NULL) {
        report(d, "worker %d ran job %s, which the driver never submitted", num, id);
        continue;
      }
      if (a < 1 || a >= MAXA) {
        report(d, "job %s: worker %d logged attempt %d", id, num, a);
        continue;
      }
      if (strcmp(verb, "start") == 0) {
        if (j->start_w[a] >= 0) j->dup_start[a] = num + 1;
        else j->start_w[a] = num;
      } else {
        int o = outcome_of(extra);
        if (j->done_w[a] >= 0 || o < 0)
          report(d, "job %s attempt %d: second or bad done line from worker %d: %s", id, a, num,
                 line);
        j->done_w[a] = num;
        j->done_o[a] = o;
        if (strcmp(extra2, "cancelled") == 0 && !d->w[num].killed)
          report(d, "job %s attempt %d: the handler in live worker %d saw its attempt cancelled "
                    "(its lease was lost while it ran)",
                 id, a, num);
      }
    }
    fclose(f);
  }
}

typedef struct stats {
  int rescued_jobs;      /* jobs with a "lease expired" attempt */
  int lease_expired;     /* such attempts */
  int live_reruns;       /* of those, attempts of a worker that was never killed */
  int unlogged_attempts; /* claimed by a killed process before its handler logged */
  int reexec_kill;       /* starts after an attempt that was killed */
  int reexec_retry;      /* starts after a retryable failure */
  int succeeded, failed, failed_by_kills;
  int killed_in_handler; /* the kill came between "start" and "done" */
  int done_lost_by_kill; /* "done" logged by a killed process, never stored */
  int inversions;        /* attempts recorded as started before they were due */
  int64_t max_inversion;
} stats;

static int is_lease_expired(const char *e) {
  return e && strncmp(e, LEASE_EXPIRED, sizeof LEASE_EXPIRED - 1) == 0;
}

/* Was some worker killed while an attempt that started at t0 and was rescued
 * at t1 ran? (For attempts no log names: a kill between claim and handler.) */
static int kill_within(driver *d, int64_t t0, int64_t t1) {
  for (int i = 0; i < d->n_w; i++)
    if (d->w[i].killed && d->w[i].kill_at >= t0 - CLOCK_SLACK_MS &&
        d->w[i].kill_at <= t1 + CLOCK_SLACK_MS)
      return 1;
  return 0;
}

/* An attempt that ended with "lease expired": its process must have been
 * killed by the driver, while the attempt ran. */
static void check_rescued_attempt(driver *d, const job *j, const jobq_job_t *s, int a, stats *st) {
  int64_t t0 = jobq_job_attempt_started_at(s, a - 1), t1 = jobq_job_attempt_finished_at(s, a - 1);
  st->lease_expired++;
  int w = j->start_w[a];
  if (w < 0) {
    st->unlogged_attempts++;
    if (!kill_within(d, t0, t1))
      report(d, "job %s attempt %d: lease expired (started %" PRId64 ", rescued %" PRId64
                "), but no handler logged it and no worker was killed meanwhile",
             j->id, a, t0, t1);
    return;
  }
  if (!d->w[w].killed) {
    st->live_reruns++;
    report(d, "job %s attempt %d: rescued after its lease expired although worker %d (pid %d) "
              "that ran it was never killed: double execution of a live worker's job",
           j->id, a, w, (int)d->w[w].pid);
    return;
  }
  if (d->w[w].kill_at < t0 - CLOCK_SLACK_MS)
    report(d, "job %s attempt %d: started at %" PRId64 " by worker %d, killed earlier at %" PRId64,
           j->id, a, t0, w, d->w[w].kill_at);
  if (j->done_w[a] >= 0) st->done_lost_by_kill++;
  else st->killed_in_handler++;
}

static void check_job(driver *d, job *j, stats *st) {
  jobq_job_t *s = NULL;
  int rc = jobq_get(d->q, j->id, &s);
  if (rc != 0) {
    report(d, "job %s (n=%d) was submitted but jobq_get says %s: %s", j->id, j->n,
           jobq_err_name(rc), jobq_last_error());
    return;
  }
  int state = jobq_job_state(s), A = jobq_job_attempts(s), M = jobq_job_max_attempts(s);
  char msg[128];
  for (int a = 1; a < MAXA; a++) {
    if (j->dup_start[a])
      report(d, "job %s attempt %d was started twice (workers %d and %d)", j->id, a, j->start_w[a],
             j->dup_start[a] - 1);
    if (j->start_w[a] >= 0 && a > A)
      report(d, "job %s: worker %d logged attempt %d, storage counts %d attempts", j->id,
             j->start_w[a], a, A);
    if (j->done_w[a] >= 0 && j->done_w[a] != j->start_w[a])
      report(d, "job %s attempt %d: done by worker %d, started by %d", j->id, a, j->done_w[a],
             j->start_w[a]);
    if (j->done_w[a] >= 0 && j->done_o[a] != expected_outcome(j->fail, a))
      report(d, "job %s attempt %d: handler outcome %d, expected %d", j->id, a, j->done_o[a],
             expected_outcome(j->fail, a));
    if (a > 1 && j->start_w[a] >= 0 && a <= A) {
      if (is_lease_expired(jobq_job_attempt_error(s, a - 2))) st->reexec_kill++;
      else st->reexec_retry++;
    }
  }
  if (!jobq_state_is_terminal(state)) {
    report(d, "job %s (n=%d) is not terminal: %s, attempts %d", j->id, j->n,
           jobq_state_name(state), A);
    goto out;
  }
  int want_max = j->max_opt ? j->max_opt : KIND_MAX_ATTEMPTS;
  if (M != want_max) report(d, "job %s: max_attempts %d, expected %d", j->id, M, want_max);
  if (A < 1 || A > M || A >= MAXA) {
    report(d, "job %s: %s after %d attempts (max %d)", j->id, jobq_state_name(state), A, M);
    goto out;
  }

  /* Every attempt but the last ended with an error: the handler's
   * retryable failure, or a kill (lease expired). */
  int rescued = 0;
  for (int a = 1; a < A; a++) {
    const char *e = jobq_job_attempt_error(s, a - 1);
    if (e == NULL) {
      report(d, "job %s: attempt %d of %d ended without an error, yet the job ran again", j->id, a,
             A);
    } else if (is_lease_expired(e)) {
      rescued = 1;
      check_rescued_attempt(d, j, s, a, st);
    } else {
      fail_message(msg, sizeof msg, O_RETRY, j->n, a);
      if (expected_outcome(j->fail, a) != O_RETRY || strcmp(e, msg) != 0)
        report(d, "job %s attempt %d ended with \"%s\" and ran again (payload fail=%d)", j->id,
               a, e, j->fail);
      else if (j->done_w[a] < 0)
        report(d, "job %s attempt %d: stored retryable failure but no handler logged it", j->id, a);
    }
    /* The next attempt starts after this one ended: at once after a rescue,
     * after the backoff (less at most its jitter) after a retryable failure.
     * All these times come from one wall clock (CLOCK_REALTIME), and the
     * writes that record them are serialised by the database's write lock,
     * so the recorded order must be the real order. */
    int64_t end = jobq_job_attempt_finished_at(s, a - 1), next = jobq_job_attempt_started_at(s, a);
    int64_t backoff = 0;
    if (e && !is_lease_expired(e)) {
      backoff = BACKOFF_BASE_MS << (a - 1);
      if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
      backoff = backoff * 4 / 5; /* jitter 0.2 */
    }
    if (end <= 0 || next < end + backoff - ORDER_SLACK_MS) {
      st->inversions++;
      if (end + backoff - next > st->max_inversion) st->max_inversion = end + backoff - next;
      report(d, "job %s: attempt %d ended at %" PRId64 " (%s), attempt %d is recorded as started "
                "at %" PRId64 ", %" PRId64 " ms before it was due",
             j->id, a, end, e ? e : "(null)", a + 1, next, end + backoff - next);
    }
  }

  /* The last attempt decided the terminal state. */
  const char *e = jobq_job_attempt_error(s, A - 1);
  int o = expected_outcome(j->fail, A);
  if (state == JOBQ_SUCCEEDED) {
    st->succeeded++;
    int rn = -1, ra = -1, rw = -1;
    const char *res = jobq_job_result(s);
    if (o != O_OK)
      report(d, "job %s succeeded at attempt %d, but the payload (fail=%d) says %s", j->id, A,
             j->fail, outcome_names[o]);
    if (e != NULL) report(d, "job %s succeeded with an attempt error \"%s\"", j->id, e);
    if (j->done_w[A] < 0)
      report(d, "job %s succeeded at attempt %d, which no handler logged", j->id, A);
    if (!res || sscanf(res, "{\"n\":%d,\"attempt\":%d,\"w\":%d}", &rn, &ra, &rw) != 3 ||
        rn != j->n || ra != A || rw != j->done_w[A])
      report(d, "job %s: result %s does not match the logged final attempt %d by worker %d", j->id,
             res ? res : "(null)", A, j->done_w[A]);
  } else if (state == JOBQ_FAILED) {
    st->failed++;
    if (is_lease_expired(e)) {
      rescued = 1;
      st->failed_by_kills++;
      if (A != M)
        report(d, "job %s failed by lease expiry at attempt %d of %d", j->id, A, M);
      check_rescued_attempt(d, j, s, A, st);
    } else {
      fail_message(msg, sizeof msg, o, j->n, A);
      if (o == O_OK || (o == O_RETRY && A != M) || e == NULL || strcmp(e, msg) != 0)
        report(d, "job %s failed at attempt %d/%d with \"%s\" (payload fail=%d expects %s)", j->id,
               A, M, e ? e : "(null)", j->fail, outcome_names[o]);
      else if (j->done_w[A] < 0)
        report(d, "job %s failed at attempt %d, which no handler logged", j->id, A);
    }
    const char *last = jobq_job_error(s);
    if (!last || !e || strcmp(last, e) != 0)
      report(d, "job %s: error \"%s\" differs from its last attempt's \"%s\"", j->id,
             last ? last : "(null)", e ? e : "(null)");
  } else {
    report(d, "job %s ended %s, yet nobody cancels in this test", j->id, jobq_state_name(state));
  }
  if (jobq_job_finished_at(s) <= 0) report(d, "job %s is terminal without finished_at", j->id);
  st->rescued_jobs += rescued;
out:
  jobq_job_free(s);
}

/* jobq_list over all pages sees exactly the submitted jobs. */
static void check_list(driver *d) {
  jobq_filter_t *f = jobq_filter_new();
  assert_non_null(f);
  jobq_filter_set_limit(f, 1000);
  jobq_filter_set_newest_first(f, 0);
  size_t seen = 0;
  char *seen_flag = calloc(d->n_jobs + 1, 1);
  assert_non_null(seen_flag);
  for (;;) {
    jobq_page_t *p = NULL;
    int rc = jobq_list(d->q, f, &p);
    if (rc != 0) {
      report(d, "jobq_list: %s: %s", jobq_err_name(rc), jobq_last_error());
      break;
    }
    for (size_t i = 0; i < jobq_page_count(p); i++) {
      const char *id = jobq_job_id(jobq_page_job(p, i));
      job *j = find_job(d, id);
      if (j == NULL) {
        report(d, "jobq_list returned job %s, which was never submitted", id);
        continue;
      }
      size_t k = (size_t)(j - d->jobs);
      if (seen_flag[k]) report(d, "jobq_list returned job %s twice", id);
      seen_flag[k] = 1;
      seen++;
    }
    const char *cur = jobq_page_next_cursor(p);
    if (cur) jobq_filter_set_cursor(f, cur);
    jobq_page_free(p);
    if (!cur) break;
  }
  if (seen != d->n_jobs)
    report(d, "jobq_list saw %zu jobs, %zu were submitted", seen, d->n_jobs);
  free(seen_flag);
  jobq_filter_free(f);
}

static int env_int(const char *name, long long dflt, long long lo, long long hi, long long *out) {
  const char *v = getenv(name);
  *out = dflt;
  if (v == NULL || *v == '\0') return 0;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 0);
  if (errno || *end || x < lo || x > hi) return -1;
  *out = x;
  return 0;
}

static void rm_tree(const char *dir) {
  DIR *dd = opendir(dir);
  if (dd == NULL) return;
  struct dirent *e;
  char path[4400];
  while ((e = readdir(dd)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(dd);
  rmdir(dir);
}

/* JOBQ_CRASH_BACKEND: 0 SQLite, 1 PostgreSQL; skips the test when
 * PostgreSQL is asked for and there is no server (or no libjobq-pg). */
static int backend_pg(void) {
  const char *b = getenv("JOBQ_CRASH_BACKEND");
  if (b == NULL || *b == '\0' || strcmp(b, "sqlite") == 0) return 0;
  if (strcmp(b, "postgres") != 0) fail_msg("JOBQ_CRASH_BACKEND must be sqlite or postgres");
#ifdef JOBQ_TEST_HAVE_POSTGRES
  pgt_need_server();
  assert_int_equal(jobq_postgres_register(), 0);
  return 1;
#else
  print_message("skipped: this build has no PostgreSQL backend\n");
  skip();
  return 0;
#endif
}

/* The URL of a fresh store in dir (SQLite) or a fresh schema (PostgreSQL),
 * and the probe's connection to it. */
static void store_url(driver *d, const char *tag) {
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (d->pg) {
    pgt_schema(tag, d->schema, sizeof d->schema, d->url, sizeof d->url);
    return;
  }
#endif
  (void)tag;
  snprintf(d->db, sizeof d->db, "%s/jobs.db", d->dir);
  snprintf(d->url, sizeof d->url, "sqlite:%s", d->db);
}

/* After the first jobq_open made the schema. */
static void probe_open(driver *d) {
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (d->pg) {
    d->pgprobe = PQconnectdb(pgt_base());
    if (PQstatus(d->pgprobe) != CONNECTION_OK)
      fail_msg("cannot connect for the lease probe: %s", PQerrorMessage(d->pgprobe));
    char sql[128];
    snprintf(sql, sizeof sql, "SET search_path TO \"%s\"", d->schema);
    PGresult *r = PQexec(d->pgprobe, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(d->pgprobe));
    PQclear(r);
    return;
  }
#endif
  int rc = sqlite3_open_v2(d->db, &d->probe, SQLITE_OPEN_READWRITE, NULL);
  if (rc != SQLITE_OK) fail_msg("cannot open %s for the lease probe", d->db);
  sqlite3_busy_timeout(d->probe, 5000);
}

static void probe_close(driver *d) {
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (d->pgprobe) PQfinish(d->pgprobe);
  d->pgprobe = NULL;
#endif
  sqlite3_close(d->probe);
  d->probe = NULL;
}

/* Rows of the store that are not terminal (the public API's view is
 * checked job by job; this one also sees rows it would not list). */
static void check_nonterminal_rows(driver *d) {
  static const char sql[] = "SELECT count(*) FROM jobq_jobs WHERE state NOT IN (2, 3, 4)";
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (d->pg) {
    pg_probe(d, sql, 0, 0, pg_count_row);
    return;
  }
#endif
  sqlite3_stmt *q = NULL;
  if (sqlite3_prepare_v2(d->probe, sql, -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 0) != 0)
    report(d, "%lld jobs in the database are not terminal", (long long)sqlite3_column_int64(q, 0));
  sqlite3_finalize(q);
}

static void test_crash_kill_cycles(void **state) {
  (void)state;
  int pg = backend_pg();
  driver *d = calloc(1, sizeof *d);
  assert_non_null(d);
  d->pg = pg;
  pthread_mutex_init(&d->mu, NULL);
  for (int s = 0; s < N_WORKERS; s++) d->slots[s] = -1;

  long long cycles, seed, lease;
  if (env_int("JOBQ_CRASH_CYCLES", 100, 1, 1000000, &cycles) != 0)
    fail_msg("JOBQ_CRASH_CYCLES must be a number 1..1000000");
  if (env_int("JOBQ_CRASH_LEASE_MS", pg ? DEFAULT_LEASE_MS_PG : DEFAULT_LEASE_MS, 100, 60000,
              &lease) != 0)
    fail_msg("JOBQ_CRASH_LEASE_MS must be a number 100..60000");
  d->lease_ms = (int)lease;
  uint64_t dflt_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16) ^ (uint64_t)mono_ms();
  dflt_seed &= 0x7fffffffffffull;
  if (env_int("JOBQ_CRASH_SEED", (long long)dflt_seed, 0, INT64_MAX, &seed) != 0)
    fail_msg("JOBQ_CRASH_SEED must be a non-negative number");
  d->cycles = (int)cycles;
  d->seed = (uint64_t)seed;
  uint64_t rng = d->seed;
  d->submit_seed = rng_next(&rng);
  printf("test_crash: %s, seed %" PRIu64 ", %d kill cycles, %d workers x %d threads, lease %d ms "
         "(reproduce the driver's choices with JOBQ_CRASH_SEED=%" PRIu64 ")\n",
         pg ? "postgres" : "sqlite", d->seed, d->cycles, N_WORKERS, WORKER_THREADS, d->lease_ms,
         d->seed);
  fflush(stdout);

  const char *tmp = getenv("TMPDIR");
  snprintf(d->dir, sizeof d->dir, "%s/jobq-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(d->dir));
  store_url(d, "crash");

  /* The driver's queue: submits and reads, never runs jobs. Opening it first
   * creates the schema. */
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, d->url), 0);
  assert_int_equal(jobq_options_set_lease(o, d->lease_ms), 0);
  int rc = jobq_open(&d->q, o);
  jobq_options_free(o);
  if (rc != 0) fail_msg("jobq_open(%s): %s: %s", d->url, jobq_err_name(rc), jobq_last_error());
  probe_open(d);

  int64_t t_start = mono_ms();
  for (int s = 0; s < N_WORKERS; s++)
    if (spawn_worker(d, s) != 0) {
      kill_all_workers(d);
      fail_msg("cannot start workers");
    }
  pthread_t sub;
  if (pthread_create(&sub, NULL, submitter_main, d) != 0) {
    kill_all_workers(d);
    fail_msg("cannot start the submitter thread");
  }

  /* ---- kill cycles ---- */
  for (int c = 0; c < d->cycles; c++) {
    sleep_ms(rng_int(&rng, 5, 50));
    check_workers_alive(d);
    int s = rng_int(&rng, 0, N_WORKERS - 1);
    int num = d->slots[s];
    if (num < 0) break; /* could not start a worker (reported) */
    winfo *w = &d->w[num];
    w->kill_at = wall_ms();
    w->killed = 1;
    kill(w->pid, SIGKILL);
    int st;
    while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR) {
    }
    w->reaped = 1;
    d->kills++;
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
      report(d, "worker %d (pid %d) ended with %s %d before the SIGKILL", num, (int)w->pid,
             WIFSIGNALED(st) ? "signal" : "status",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    if (spawn_worker(d, s) != 0) break;
    if (c % 5 == 4) check_stuck(d);
    if (d->cycles >= 200 && (c + 1) % (d->cycles / 10) == 0) {
      pthread_mutex_lock(&d->mu);
      size_t nj = d->n_jobs;
      pthread_mutex_unlock(&d->mu);
      printf("test_crash: %d/%d cycles, %zu jobs submitted, %.1f s\n", c + 1, d->cycles, nj,
             (double)(mono_ms() - t_start) / 1000.0);
      fflush(stdout);
    }
  }
  atomic_store(&d->stop_submit, 1);
  pthread_join(sub, NULL);
  int64_t t_cycles = mono_ms();

  /* ---- drain: the surviving workers finish everything ---- */
  qsort(d->jobs, d->n_jobs, sizeof *d->jobs, id_cmp);
  for (size_t i = 0; i < d->n_jobs; i++) {
    for (int a = 0; a < MAXA; a++) {
      d->jobs[i].start_w[a] = d->jobs[i].done_w[a] = d->jobs[i].done_o[a] = -1;
      d->jobs[i].dup_start[a] = 0;
    }
  }
  size_t *pending = malloc((d->n_jobs + 1) * sizeof *pending);
  assert_non_null(pending);
  size_t n_pending = d->n_jobs;
  for (size_t i = 0; i < n_pending; i++) pending[i] = i;
  int64_t drain_deadline = mono_ms() + DRAIN_GUARD_MS;
  while (n_pending > 0 && mono_ms() < drain_deadline) {
    size_t k = 0;
    for (size_t i = 0; i < n_pending; i++) {
      jobq_job_t *s = NULL;
      int grc = jobq_get(d->q, d->jobs[pending[i]].id, &s);
      /* Terminal, or lost (reported below): nothing to wait for. */
      int settled =
          grc == JOBQ_ENOTFOUND || (grc == 0 && jobq_state_is_terminal(jobq_job_state(s)));
      jobq_job_free(s);
      if (settled) continue;
      pending[k++] = pending[i];
    }
    n_pending = k;
    if (n_pending == 0) break;
    check_workers_alive(d);
    int before = d->fails;
    check_stuck(d);
    if (d->fails > before) break; /* stuck: waiting longer proves nothing */
    sleep_ms(50);
  }
  if (n_pending > 0)
    report(d, "%zu jobs were still not terminal %.1f s after the last kill (first: %s)", n_pending,
           (double)(mono_ms() - t_cycles) / 1000.0, d->jobs[pending[0]].id);
  free(pending);
  int64_t t_drained = mono_ms();

  /* ---- stop the workers cleanly ---- */
  for (int s = 0; s < N_WORKERS; s++)
    if (d->slots[s] >= 0) kill(d->w[d->slots[s]].pid, SIGTERM);
  int64_t stop_deadline = mono_ms() + STOP_GUARD_MS;
  for (int s = 0; s < N_WORKERS; s++) {
    int num = d->slots[s];
    if (num < 0) continue;
    int st = 0;
    pid_t r;
    while ((r = waitpid(d->w[num].pid, &st, WNOHANG)) == 0 && mono_ms() < stop_deadline)
      sleep_ms(10);
    if (r == 0) {
      report(d, "worker %d (pid %d) did not exit within %d s of SIGTERM", num, (int)d->w[num].pid,
             STOP_GUARD_MS / 1000);
      kill(d->w[num].pid, SIGKILL);
      waitpid(d->w[num].pid, &st, 0);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      report(d, "worker %d (pid %d) ended with %s %d after SIGTERM (a sanitizer report?)", num,
             (int)d->w[num].pid, WIFSIGNALED(st) ? "signal" : "status",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
    d->w[num].reaped = 1;
    d->slots[s] = -1;
  }

  /* ---- check ---- */
  if (d->submit_errors)
    report(d, "%d submits failed; the last: %s", d->submit_errors, d->submit_err);
  read_logs(d);
  stats st = {0};
  for (size_t i = 0; i < d->n_jobs; i++) check_job(d, &d->jobs[i], &st);
  check_list(d);
  check_nonterminal_rows(d);
  int64_t t_end = mono_ms();

  int reexec = st.reexec_kill + st.reexec_retry;
  printf("test_crash: cycles=%d jobs=%zu (succeeded %d, failed %d of which %d by kills) kills=%d "
         "workers=%d rescues=%d (lease-expired attempts %d: killed after the claim before the "
         "handler %d, in the handler %d, after the handler before its finish was stored %d) "
         "re-executions=%d (after a kill %d, after a retryable failure %d) "
         "live-reruns=%d timeline-inversions=%d (max %" PRId64 " ms) "
         "submits=%ld+%ld batches seed=%" PRIu64
         " elapsed=%.1fs (cycles %.1fs, drain %.1fs, check %.1fs)\n",
         d->cycles, d->n_jobs, st.succeeded, st.failed, st.failed_by_kills, d->kills, d->n_w,
         st.rescued_jobs, st.lease_expired, st.unlogged_attempts, st.killed_in_handler,
         st.done_lost_by_kill, reexec, st.reexec_kill, st.reexec_retry, st.live_reruns, st.inversions,
         st.max_inversion, d->submit_calls, d->submit_batches, d->seed,
         (double)(t_end - t_start) / 1000.0, (double)(t_cycles - t_start) / 1000.0,
         (double)(t_drained - t_cycles) / 1000.0, (double)(t_end - t_drained) / 1000.0);
  fflush(stdout);

  probe_close(d);
  rc = jobq_close(d->q, 0);
  if (rc != 0) report(d, "jobq_close of the driver: %s: %s", jobq_err_name(rc), jobq_last_error());
  const char *keep = getenv("JOBQ_CRASH_KEEP");
  int fails = d->fails;
  if (fails || (keep && *keep && strcmp(keep, "0") != 0))
    printf("test_crash: %s and worker logs kept in %s\n",
           d->pg ? "schema (not dropped)" : "database", d->dir);
  else
    rm_tree(d->dir);
  free(d->jobs);
  free(d->w);
  pthread_mutex_destroy(&d->mu);
  free(d);
  if (fails) fail_msg("%d failures (see above); seed %" PRIu64, fails, (uint64_t)seed);
}

/* ======================================================================== */
/* A claim that had to wait for the write lock                              */
/* ======================================================================== */

/* Another connection (a big submit, a checkpoint, a slow process) holds the
 * database's write lock for twice the lease while a worker tries to claim.
 * When the claim finally commits, the job must hold a full lease from then
 * on: if the lease were counted from before the wait, it would already have
 * run out, and any other process's rescue would queue the job again while
 * its handler runs: a second execution without any crash. */

typedef struct lw_state {
  char db[4200];
  char url[4400];
  int pg;
#ifdef JOBQ_TEST_HAVE_POSTGRES
  char schema[64];
#endif
  char id[JOBQ_ID_SIZE];
  atomic_int starts;
  atomic_int cancelled_seen;
  int64_t lease_left; /* lease_until - now, as the first handler call saw it */
  int lease_read;
} lw_state;

#ifdef JOBQ_TEST_HAVE_POSTGRES
/* A connection of the test's own to the schema of s (search_path set). */
static PGconn *lw_pg_connect(const lw_state *s) {
  PGconn *c = PQconnectdb(pgt_base());
  if (PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return NULL;
  }
  char sql[128];
  snprintf(sql, sizeof sql, "SET search_path TO \"%s\"", s->schema);
  PQclear(PQexec(c, sql));
  return c;
}
#endif

static void lw_handler(jobq_ctx_t *ctx, void *ud) {
  lw_state *s = ud;
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (s->pg && atomic_fetch_add(&s->starts, 1) == 0) {
    PGconn *c = lw_pg_connect(s);
    const char *p[1] = {jobq_ctx_id(ctx)};
    PGresult *r = c ? PQexecParams(c, "SELECT lease_until FROM jobq_jobs WHERE id = $1", 1, NULL,
                                   p, NULL, NULL, 0)
                    : NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
      s->lease_left = strtoll(PQgetvalue(r, 0, 0), NULL, 10) - wall_ms();
      s->lease_read = 1;
    }
    PQclear(r);
    PQfinish(c);
  } else
#endif
  if (!s->pg && atomic_fetch_add(&s->starts, 1) == 0) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(s->db, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_busy_timeout(db, 5000) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT lease_until FROM jobq_jobs WHERE id = ?1", -1, &st, NULL) ==
            SQLITE_OK) {
      sqlite3_bind_text(st, 1, jobq_ctx_id(ctx), -1, SQLITE_STATIC);
      if (sqlite3_step(st) == SQLITE_ROW) {
        s->lease_left = sqlite3_column_int64(st, 0) - wall_ms();
        s->lease_read = 1;
      }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  /* Well within the lease the claim should have granted. */
  for (int i = 0; i < LW_LEASE_MS / 10 / 10; i++) {
    sleep_ms(10);
    if (jobq_ctx_cancelled(ctx)) atomic_store(&s->cancelled_seen, 1);
  }
  jobq_ctx_succeed(ctx, NULL);
}

static jobq_options_t *lw_options(const char *url, int workers) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_lease(o, LW_LEASE_MS), 0);
  assert_int_equal(jobq_options_set_workers(o, workers), 0);
  return o;
}

static void test_lease_counts_from_commit(void **state) {
  (void)state;
  int pg = backend_pg();
  lw_state *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->pg = pg;
  char dir[4096];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/jobq-lease-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(dir));
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (pg) pgt_schema("lease", s->schema, sizeof s->schema, s->url, sizeof s->url);
#endif
  if (!pg) {
    snprintf(s->db, sizeof s->db, "%s/jobs.db", dir);
    snprintf(s->url, sizeof s->url, "sqlite:%s", s->db);
  }

  jobq_options_t *o = lw_options(s->url, 1);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  assert_int_equal(jobq_register(q, "slow", lw_handler, s, NULL), 0);
  assert_int_equal(jobq_submit(q, "slow", NULL, NULL, s->id), 0);

  /* Hold the write lock, start the worker (its claim waits), let go after
   * twice the lease. */
#ifdef JOBQ_TEST_HAVE_POSTGRES
  if (pg) {
    /* EXCLUSIVE conflicts with the ROW SHARE and ROW EXCLUSIVE locks of the
     * claim's SELECT ... FOR UPDATE and UPDATE, not with plain reads. */
    PGconn *lock = lw_pg_connect(s);
    assert_non_null(lock);
    PGresult *r = PQexec(lock, "BEGIN; LOCK TABLE jobq_jobs IN EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(jobq_start(q), 0);
    sleep_ms(2 * LW_LEASE_MS);
    r = PQexec(lock, "COMMIT");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(lock);
  }
#endif
  if (!pg) {
    sqlite3 *lock = NULL;
    assert_int_equal(sqlite3_open_v2(s->db, &lock, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(lock, 5000);
    assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(jobq_start(q), 0);
    sleep_ms(2 * LW_LEASE_MS);
    assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
  }

  int64_t guard = mono_ms() + 10000;
  while (atomic_load(&s->starts) == 0 && mono_ms() < guard) sleep_ms(1);
  assert_int_not_equal(atomic_load(&s->starts), 0);

  /* Another process: its queue rescues expired leases right after it opens. */
  o = lw_options(s->url, 1);
  jobq_t *other = NULL;
  assert_int_equal(jobq_open(&other, o), 0);
  jobq_options_free(o);

  jobq_job_t *j = NULL;
  guard = mono_ms() + 20000;
  for (;;) {
    jobq_job_free(j);
    j = NULL;
    int rc = jobq_wait(q, s->id, 1000, &j);
    assert_true(rc == 0 || rc == JOBQ_ETIMEDOUT);
    if (jobq_state_is_terminal(jobq_job_state(j)) || mono_ms() > guard) break;
  }
  int st = jobq_job_state(j), attempts = jobq_job_attempts(j);
  const char *err0 = jobq_job_attempt_error(j, 0);
  printf("test_lease_counts_from_commit: lease left when the handler started: %" PRId64
         " ms (of %d); state %s after %d attempts; attempt 1 error: %s; handler calls %d; "
         "cancelled seen %d\n",
         s->lease_left, LW_LEASE_MS, jobq_state_name(st), attempts, err0 ? err0 : "(none)",
         atomic_load(&s->starts), atomic_load(&s->cancelled_seen));
  fflush(stdout);
  int lease_ok = s->lease_read && s->lease_left > 0;
  int once = st == JOBQ_SUCCEEDED && attempts == 1 && atomic_load(&s->starts) == 1 && err0 == NULL;
  int not_cancelled = atomic_load(&s->cancelled_seen) == 0;
  jobq_job_free(j);
  assert_int_equal(jobq_close(other, 0), 0);
  assert_int_equal(jobq_close(q, -1), 0);
  rm_tree(dir);
  free(s);
  if (!lease_ok)
    fail_msg("the claim committed with a lease that had already run out (see above): the lease "
             "was counted from before the claim waited for the write lock");
  if (!once || !not_cancelled)
    fail_msg("the job ran more than once although no process died (see above)");
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--worker") == 0) return worker_main(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crash_kill_cycles),
      cmocka_unit_test(test_lease_counts_from_commit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
