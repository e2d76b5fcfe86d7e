/* jobq_bench: throughput and latency figures of libjobq. A program, not a
 * test: it prints one line per figure and never fails because the machine is
 * slow.
 *
 *   jobq_bench [--storage URL] [--jobs N] [--only NAME]
 *
 * With a sqlite: URL every figure gets a fresh database file (the URL's path
 * with the figure's name appended), removed afterwards, and starts after a
 * sync() of what earlier figures wrote. Options in the URL
 * (?durability=power) apply; the submit_threads figures run in both modes.
 *
 * Figures (memory backend, no-op handler unless said):
 *   e2e_*        submit -> run -> complete, jobs/s, with 1 and 2 workers,
 *                single submits and batches of 1000 (jobq_submit_many), and
 *                the CPU time the process spent per job (user + system, all
 *                threads: on a shared machine the steadier figure)
 *   drain_*      N jobs submitted in batches of 1000 first, then run by 1
 *                and 2 workers: jobs/s from jobq_start to the last done
 *   submit_*     latency of one jobq_submit on a queue nobody works, p50/p99
 *   pickup_*     submit to handler start on an idle queue, p50/p99
 *   rss_*        resident memory with 1,000,000 queued jobs
 *   submit_threads_*  single-job submits/s from 1 and 64 threads (SQLite:
 *                crash-safe and power-safe)
 *   pickup_xproc submit in this process to handler start in another
 *   e2e_procs_*  e2e with 1, 2 and 4 worker processes (1 worker each) on
 *                the store, this process submitting batches of 1000 (not on
 *                memory: one process)
 *   drain_procs_*  the same processes, all N jobs submitted before their
 *                workers start: claim + complete, tests/bench/pg_ceiling's
 *                workload (not on memory)
 *   depth_*      drain rate with 10,000 and 1,000,000 jobs queued
 *   get_at_depth_*  latency of jobq_get of a random queued job (position
 *                and ETA included: the ETA reads the kind's shared stats)
 *                with 10,000, 100,000 and 1,000,000 jobs of its kind
 *                queued, p50/p99 over 1,000 gets
 *   stats_at_depth_*  latency of jobq_stats (the store-wide part counts the
 *                queued jobs) with 10,000 and 1,000,000 jobs queued, p50/p99
 *                over 20 snapshots
 *   e2e_owned_*  e2e_batch_2w with each job owned by one of 1,000 users, without
 *                and with per-owner quotas (one overall, one for the kind;
 *                high enough never to refuse: the cost of counting)
 *   e2e_rate_limit  e2e_batch_2w with a rate limit on the kind high enough
 *                never to bind (1,000,000 starts per 100 ms): the cost of
 *                counting starts in the store
 *   e2e_retention_*  e2e_batch_2w on a store that already holds 1,000,000
 *                finished jobs of the kind, all older than the kind's
 *                retention (1 h; the clock is set 2 h back while they run):
 *                _off with retention 0 (nothing pruned), _on with retention
 *                pruning them meanwhile; _on also reports how fast the pass
 *                deleted them (jobs/s, until its log line came)
 *   cache_lookup_*  latency of jobq_get_by_key among 100,000 cached results
 *                (keys with an absolute expiry, jobs succeeded): a hit, and a
 *                miss (a key nobody holds), p50/p99 over 10,000 lookups
 *   pull_*       the pull path: one thread drains up to 200,000 queued jobs
 *                (submitted beforehand, not timed), each finished with
 *                jobq_ctx_succeed, until the last success is stored, jobs/s:
 *                _claim with jobq_claim (one per call), _many_64 and
 *                _many_256 with jobq_claim_many in batches of 64 and 256 */
#include <jobq.h>

#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *storage = "memory:";
static long n_jobs = 1000000;
static const char *only;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU seconds (user + system, all threads) this process used so far. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "jobq_bench: %s: %s\n", what, jobq_last_error());
  exit(1);
}

static int want(const char *name) { return only == NULL || strstr(name, only) != NULL; }

static atomic_long done;

static void noop(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
  atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
}

/* The storage URL for one figure: a fresh SQLite file per figure. */
static char url_buf[1024];
static const char *figure_url(const char *figure, const char *suffix_opts) {
  if (strncmp(storage, "sqlite:", 7) != 0) return storage;
  /* Each figure measures itself, not the kernel writing back what the
   * previous one wrote (a million single submits leave gigabytes): a
   * batch figure right after them ran 30 % slower. */
  sync();
  const char *path = storage + 7;
  const char *q = strchr(path, '?');
  int plen = q ? (int)(q - path) : (int)strlen(path);
  char file[900];
  snprintf(file, sizeof file, "%.*s.%s", plen, path, figure);
  char rm[1000];
  snprintf(rm, sizeof rm, "%s", file);
  unlink(rm);
  snprintf(rm, sizeof rm, "%s-wal", file);
  unlink(rm);
  snprintf(rm, sizeof rm, "%s-shm", file);
  unlink(rm);
  snprintf(url_buf, sizeof url_buf, "sqlite:%s%s%s", file, q ? q : (suffix_opts ? "?" : ""),
           suffix_opts ? (q ? suffix_opts : suffix_opts + 1) : "");
  return url_buf;
}

static const char *cur_url;

static jobq_t *open_q(int workers) {
  jobq_options_t *o = jobq_options_new();
  jobq_options_set_storage(o, cur_url ? cur_url : storage);
  jobq_options_set_workers(o, workers);
  jobq_t *q;
  if (jobq_open(&q, o) != 0) die("jobq_open");
  jobq_options_free(o);
  return q;
}

/* rate: the kind has a rate limit that never binds (1,000,000 starts per
 * 100 ms, far above any throughput here), so that the figure against
 * e2e_batch_2w is the cost of counting starts in the store. */
static void e2e_as(const char *fig, int workers, int batch, int rate) {
  char name[64];
  if (fig) snprintf(name, sizeof name, "%s", fig);
  else snprintf(name, sizeof name, "e2e_%s_%dw", batch > 1 ? "batch" : "single", workers);
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  jobq_t *q = open_q(workers);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  if (rate && jobq_kind_opts_set_rate_limit(ko, 1000000, 100) != 0) die("jobq_kind_opts_set_rate_limit");
  if (jobq_register(q, "noop", noop, NULL, ko) != 0) die("jobq_register");
  jobq_kind_opts_free(ko);
  if (jobq_start(q) != 0) die("jobq_start");
  atomic_store(&done, 0);
  const char **kinds = malloc((size_t)batch * sizeof *kinds);
  const char **payloads = malloc((size_t)batch * sizeof *payloads);
  char *ids = malloc((size_t)batch * JOBQ_ID_SIZE);
  for (int i = 0; i < batch; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  double t0 = now_s(), c0 = cpu_s();
  for (long i = 0; i < n_jobs; i += batch) {
    int rc = batch > 1 ? jobq_submit_many(q, (size_t)batch, kinds, payloads, NULL, ids, NULL)
                       : jobq_submit(q, "noop", "{}", NULL, ids);
    if (rc < 0) die("submit");
  }
  double t_sub = now_s() - t0;
  long want_n = (n_jobs + batch - 1) / batch * batch;
  while (atomic_load(&done) < want_n) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  double t = now_s() - t0, c = cpu_s() - c0;
  /* The CPU per job (all threads: the submitter, workers, loop) is the
   * figure to compare on a machine shared with other work, where jobs/s
   * moves with what else runs. */
  printf("%s: %.0f jobs/s (%ld jobs in %.3f s; submitting took %.3f s; CPU %.2f us/job)\n",
         name, (double)want_n / t, want_n, t, t_sub, c * 1e6 / (double)want_n);
  if (rate) {
    jobq_stats_t *st = NULL;
    if (jobq_stats(q, &st) == 0 && jobq_stats_rate_limited(st) != 0)
      printf("%s: the limit held back %lld claims: it was meant never to bind\n", name,
             (long long)jobq_stats_rate_limited(st));
    jobq_stats_free(st);
  }
  fflush(stdout);
  jobq_close(q, -1);
  free(kinds);
  free(payloads);
  free(ids);
}

static void e2e(int workers, int batch) { e2e_as(NULL, workers, batch, 0); }

/* drain_*: N jobs submitted in batches of 1,000 before the workers start,
 * then run by them: jobs/s from jobq_start to the last one done (the
 * submits are reported apart). The workload of other queues' "add a
 * backlog, then drain it" figures (tests/bench/peers). */
static void drain(int workers) {
  char name[64];
  snprintf(name, sizeof name, "drain_batch_%dw", workers);
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  jobq_t *q = open_q(workers);
  if (jobq_register(q, "noop", noop, NULL, NULL) != 0) die("jobq_register");
  atomic_store(&done, 0);
  enum { BATCH = 1000 };
  const char *kinds[BATCH], *payloads[BATCH];
  static char ids[BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < BATCH; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  long total = (n_jobs + BATCH - 1) / BATCH * BATCH;
  double t0 = now_s();
  for (long i = 0; i < total; i += BATCH)
    if (jobq_submit_many(q, BATCH, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
  double t_sub = now_s() - t0;
  t0 = now_s();
  if (jobq_start(q) != 0) die("jobq_start");
  while (atomic_load(&done) < total) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  double t = now_s() - t0;
  printf("%s: %.0f jobs/s (%ld jobs drained in %.3f s; submitting them before took %.3f s, "
         "%.0f jobs/s)\n",
         name, (double)total / t, total, t, t_sub, (double)total / t_sub);
  fflush(stdout);
  jobq_close(q, -1);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void report_lat(const char *name, uint64_t *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_u64);
  printf("%s: p50 %.2f us, p99 %.2f us, p99.9 %.2f us, max %.2f us (%zu samples)\n", name,
         (double)v[n / 2] / 1e3, (double)v[n * 99 / 100] / 1e3, (double)v[n * 999 / 1000] / 1e3,
         (double)v[n - 1] / 1e3, n);
  fflush(stdout);
}

static void submit_latency(void) {
  if (!want("submit_latency")) return;
  cur_url = figure_url("submit_latency", NULL);
  jobq_t *q = open_q(0);
  size_t n = n_jobs < 200000 ? (size_t)n_jobs : 200000;
  if (strncmp(storage, "sqlite:", 7) == 0 && n > 20000) n = 20000;
  uint64_t *lat = malloc(n * sizeof *lat);
  char id[JOBQ_ID_SIZE];
  for (size_t i = 0; i < 1000; i++) jobq_submit(q, "noop", "{}", NULL, id); /* warm up */
  for (size_t i = 0; i < n; i++) {
    uint64_t t0 = now_ns();
    if (jobq_submit(q, "noop", "{\"n\": 1}", NULL, id) < 0) die("jobq_submit");
    lat[i] = now_ns() - t0;
  }
  report_lat("submit_latency", lat, n);
  free(lat);
  jobq_close(q, 0);
}

static _Atomic uint64_t t_pick;

static void pick(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  atomic_store(&t_pick, now_ns());
  jobq_ctx_succeed(ctx, NULL);
}

static void pickup_latency(void) {
  if (!want("pickup_latency_idle")) return;
  cur_url = figure_url("pickup", NULL);
  jobq_t *q = open_q(1);
  if (jobq_register(q, "pick", pick, NULL, NULL) != 0) die("jobq_register");
  if (jobq_start(q) != 0) die("jobq_start");
  size_t n = 2000;
  uint64_t *lat = malloc(n * sizeof *lat);
  char id[JOBQ_ID_SIZE];
  for (size_t i = 0; i < n; i++) {
    /* Let the worker go idle (asleep on its condition) first. */
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    atomic_store(&t_pick, 0);
    uint64_t t0 = now_ns();
    if (jobq_submit(q, "pick", "{}", NULL, id) < 0) die("jobq_submit");
    /* Yield while waiting: with two cores, a spinning bench thread would
     * compete with the very threads it measures. */
    while (atomic_load(&t_pick) == 0) sched_yield();
    lat[i] = atomic_load(&t_pick) - t0;
  }
  report_lat("pickup_latency_idle", lat, n);
  free(lat);
  jobq_close(q, -1);
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

static void rss(void) {
  if (!want("rss")) return;
  if (strncmp(storage, "sqlite:", 7) == 0) return; /* a memory figure */
  long before = rss_kb();
  cur_url = NULL;
  jobq_t *q = open_q(0);
  const int batch = 1000;
  const char *kinds[1000], *payloads[1000];
  static char ids[1000 * JOBQ_ID_SIZE];
  for (int i = 0; i < batch; i++) {
    kinds[i] = "noop";
    payloads[i] = "{\"n\":1}";
  }
  long n = 1000000;
  for (long i = 0; i < n; i += batch)
    if (jobq_submit_many(q, (size_t)batch, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
  long after = rss_kb();
  printf("rss_1m_queued: %.1f MB resident (%.1f MB for the jobs, %.0f bytes per job)\n",
         (double)after / 1024, (double)(after - before) / 1024,
         (double)(after - before) * 1024 / (double)n);
  fflush(stdout);
  jobq_close(q, 0);
}

/* ---- single-job submits from many threads ---- */

typedef struct {
  jobq_t *q;
  long n;
} sub_arg;

static void *submitter(void *p) {
  sub_arg *a = p;
  char id[JOBQ_ID_SIZE];
  for (long i = 0; i < a->n; i++)
    if (jobq_submit(a->q, "noop", "{}", NULL, id) < 0) die("jobq_submit");
  return NULL;
}

static void submit_threads_run(int threads, const char *mode, const char *opts) {
  char name[96];
  snprintf(name, sizeof name, "submit_threads_%d%s%s", threads, mode ? "_" : "", mode ? mode : "");
  if (!want(name)) return;
  cur_url = figure_url(name, opts);
  jobq_t *q = open_q(0);
  long total = strncmp(storage, "sqlite:", 7) == 0 ? 40000 : 400000;
  /* one thread waiting for an fsync per submit: fewer, or it takes minutes */
  if (opts && strstr(opts, "power") && threads == 1) total = 2000;
  long per = total / threads;
  pthread_t *th = malloc((size_t)threads * sizeof *th);
  sub_arg a = {q, per};
  double t0 = now_s();
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, submitter, &a);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double t = now_s() - t0;
  printf("%s: %.0f submits/s (%d threads x %ld single submits in %.3f s)\n", name,
         (double)per * threads / t, threads, per, t);
  fflush(stdout);
  free(th);
  jobq_close(q, 0);
}

static void submit_threads(void) {
  if (strncmp(storage, "sqlite:", 7) == 0) {
    submit_threads_run(1, "crashsafe", NULL);
    submit_threads_run(64, "crashsafe", NULL);
    submit_threads_run(1, "powersafe", "&durability=power");
    submit_threads_run(64, "powersafe", "&durability=power");
  } else {
    submit_threads_run(1, NULL, NULL);
    submit_threads_run(64, NULL, NULL);
  }
}

/* ---- pickup across processes ---- */

static uint64_t real_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void xproc_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  uint64_t now = real_ns();
  const char *p = strstr(jobq_ctx_payload(ctx), "\"t\":");
  uint64_t t = p ? strtoull(p + 4, NULL, 10) : now;
  char res[64];
  snprintf(res, sizeof res, "{\"lat\":%llu}", (unsigned long long)(now - t));
  jobq_ctx_succeed(ctx, res);
}

/* The worker process of pickup_xproc: runs until its parent closes stdin. */
static int xproc_child(const char *url) {
  cur_url = url;
  jobq_t *q = open_q(1);
  if (jobq_register(q, "xp", xproc_handler, NULL, NULL) != 0) die("jobq_register");
  if (jobq_start(q) != 0) die("jobq_start");
  char c;
  while (read(0, &c, 1) > 0) {
  }
  jobq_close(q, 1000);
  return 0;
}

static void pickup_xproc(const char *self) {
  if (!want("pickup_xproc")) return;
  if (strncmp(storage, "memory:", 7) == 0) return; /* memory is one process */
  const char *url = figure_url("pickup_xproc", NULL);
  char urlcopy[1024];
  snprintf(urlcopy, sizeof urlcopy, "%s", url);
  cur_url = urlcopy;
  jobq_t *q = open_q(0); /* creates the file; submit-only */
  int fds[2];
  if (pipe(fds) != 0) die("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  char *argv[] = {(char *)self, "--xproc-child", urlcopy, NULL};
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ) != 0) die("posix_spawn");
  close(fds[0]);
  struct timespec ts = {0, 300000000}; /* let the child open and go idle */
  nanosleep(&ts, NULL);
  size_t n = 500;
  uint64_t *lat = malloc(n * sizeof *lat);
  size_t got = 0;
  for (size_t i = 0; i < n; i++) {
    struct timespec gap = {0, 20000000}; /* idle between jobs: the hard case */
    nanosleep(&gap, NULL);
    char payload[64], id[JOBQ_ID_SIZE];
    snprintf(payload, sizeof payload, "{\"t\":%llu}", (unsigned long long)real_ns());
    if (jobq_submit(q, "xp", payload, NULL, id) < 0) die("jobq_submit");
    jobq_job_t *job = NULL;
    for (int tries = 0; tries < 100; tries++) {
      jobq_job_free(job);
      job = NULL;
      if (jobq_wait(q, id, 100, &job) < -100) break;
      if (job && jobq_state_is_terminal(jobq_job_state(job))) break;
    }
    const char *r = job ? jobq_job_result(job) : NULL;
    if (r && strstr(r, "\"lat\":")) lat[got++] = strtoull(strstr(r, "\"lat\":") + 6, NULL, 10);
    jobq_job_free(job);
  }
  close(fds[1]);
  waitpid(pid, NULL, 0);
  posix_spawn_file_actions_destroy(&fa);
  if (got) report_lat("pickup_xproc (submit here, handler start in another process)", lat, got);
  free(lat);
  jobq_close(q, 0);
}

/* The worker process of e2e_procs and drain_procs: one worker running
 * no-op jobs of kind "ep" until its parent closes stdin. Says "r" once
 * ready; with "wait" it starts its worker only when the parent sends a
 * byte (drain: the backlog is in before any worker claims). Every
 * millisecond it writes how many jobs its handler has run, when that
 * changed, so that the parent need not poll the store while they run
 * (a jobq_list of a deep queue costs the server as much as a claim). */
static atomic_long ep_ran;

static void ep_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  atomic_fetch_add_explicit(&ep_ran, 1, memory_order_relaxed);
  jobq_ctx_succeed(ctx, NULL);
}

static int e2e_child(const char *url, int wait_go) {
  cur_url = url;
  jobq_t *q = open_q(1);
  if (jobq_register(q, "ep", ep_handler, NULL, NULL) != 0) die("jobq_register");
  if (!wait_go && jobq_start(q) != 0) die("jobq_start");
  if (write(1, "r", 1) != 1) die("write");
  char c;
  if (wait_go) {
    if (read(0, &c, 1) != 1) die("read");
    if (jobq_start(q) != 0) die("jobq_start");
  }
  long told = 0;
  for (;;) {
    struct pollfd pf = {0, POLLIN, 0};
    int r = poll(&pf, 1, 1);
    if (r > 0 && read(0, &c, 1) <= 0) break;
    long ran = atomic_load_explicit(&ep_ran, memory_order_relaxed);
    if (ran != told) {
      if (write(1, &ran, sizeof ran) != (ssize_t)sizeof ran) break;
      told = ran;
    }
  }
  jobq_close(q, 1000);
  return 0;
}

/* Jobs of kind ep left in state st (0 or 1 rows: enough to know). */
static size_t ep_left(jobq_t *q, int st) {
  jobq_filter_t *f = jobq_filter_new();
  jobq_filter_set_kind(f, "ep");
  jobq_filter_set_state(f, st);
  jobq_filter_set_limit(f, 1);
  jobq_page_t *pg = NULL;
  if (jobq_list(q, f, &pg) != 0) die("jobq_list");
  size_t n = jobq_page_count(pg);
  jobq_page_free(pg);
  jobq_filter_free(f);
  return n;
}

/* Reads the children's counts until they add up to n (each message is a
 * long, written whole: a pipe write of under PIPE_BUF bytes is atomic). */
static void ep_wait_ran(int procs, const int *rfd, long n) {
  long ran[8] = {0};
  for (;;) {
    long sum = 0;
    for (int i = 0; i < procs; i++) sum += ran[i];
    if (sum >= n) return;
    struct pollfd pf[8];
    for (int i = 0; i < procs; i++) pf[i] = (struct pollfd){rfd[i], POLLIN, 0};
    if (poll(pf, (nfds_t)procs, -1) < 0) die("poll");
    for (int i = 0; i < procs; i++) {
      if (pf[i].revents & POLLIN) {
        if (read(rfd[i], &ran[i], sizeof ran[i]) != (ssize_t)sizeof ran[i])
          die("a worker process ended");
      } else if (pf[i].revents) {
        die("a worker process ended");
      }
    }
  }
}

/* e2e_procs_*: this process submits batches of 1,000 while `procs` worker
 * processes run them; drain_procs_*: all of them are submitted before the
 * workers start (the workload of tests/bench/pg_ceiling: claim + complete).
 * The figure ends when the children's handlers have run n jobs and the
 * store holds none queued or running (their finishes are stored). */
static void run_procs(const char *self, int procs, int drain_first) {
  char name[64];
  snprintf(name, sizeof name, "%s_procs_%dp", drain_first ? "drain" : "e2e", procs);
  if (!want(name)) return;
  if (strncmp(storage, "memory:", 7) == 0) return;
  char urlcopy[1024];
  snprintf(urlcopy, sizeof urlcopy, "%s", figure_url(name, NULL));
  cur_url = urlcopy;
  jobq_t *q = open_q(0);
  pid_t pid[8];
  int wfd[8], rfd[8];
  for (int i = 0; i < procs; i++) {
    /* close-on-exec: a later child must not hold an earlier one's stdin
     * open (it would never see EOF); dup2 onto 0 and 1 clears the flag */
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) die("pipe");
    for (int k = 0; k < 2; k++) {
      fcntl(in[k], F_SETFD, FD_CLOEXEC);
      fcntl(out[k], F_SETFD, FD_CLOEXEC);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = {(char *)self, "--e2e-child", urlcopy, drain_first ? "wait" : NULL, NULL};
    if (posix_spawn(&pid[i], "/proc/self/exe", &fa, NULL, argv, environ) != 0) die("posix_spawn");
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    char c;
    if (read(out[0], &c, 1) != 1) die("a worker process did not start");
    wfd[i] = in[1];
    rfd[i] = out[0];
  }
  size_t B = 1000;
  const char **kinds = malloc(B * sizeof *kinds), **pls = malloc(B * sizeof *pls);
  char *ids = malloc(B * JOBQ_ID_SIZE);
  for (size_t i = 0; i < B; i++) {
    kinds[i] = "ep";
    pls[i] = "{\"n\":1}";
  }
  double t0 = now_s(), t_sub = 0;
  for (long sent = 0; sent < n_jobs;) {
    size_t k = (size_t)(n_jobs - sent) < B ? (size_t)(n_jobs - sent) : B;
    if (jobq_submit_many(q, k, kinds, pls, NULL, ids, NULL) < 0) die("jobq_submit_many");
    sent += (long)k;
  }
  if (drain_first) {
    t_sub = now_s() - t0;
    t0 = now_s();
    for (int i = 0; i < procs; i++)
      if (write(wfd[i], "g", 1) != 1) die("write");
  }
  ep_wait_ran(procs, rfd, n_jobs);
  while (ep_left(q, JOBQ_QUEUED) || ep_left(q, JOBQ_RUNNING)) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  double t = now_s() - t0;
  if (drain_first)
    printf("%s: %.0f jobs/s (%ld jobs drained in %.3f s by %d worker process(es), 1 worker each; "
           "submitting them before took %.3f s)\n",
           name, (double)n_jobs / t, n_jobs, t, procs, t_sub);
  else
    printf("%s: %.0f jobs/s (%ld jobs in %.3f s, %d worker process(es), 1 worker each)\n", name,
           (double)n_jobs / t, n_jobs, t, procs);
  fflush(stdout);
  for (int i = 0; i < procs; i++) {
    close(wfd[i]);
    waitpid(pid[i], NULL, 0);
    close(rfd[i]);
  }
  free(kinds);
  free(pls);
  free(ids);
  jobq_close(q, 0);
}

/* ---- claim cost against queue depth ---- */

/* Keeps about `depth` jobs queued while the workers drain: the submitter
 * tops the queue up in batches whenever it falls below the depth. */
typedef struct {
  jobq_t *q;
  long depth;
  long target; /* stop once this many have completed */
  atomic_long submitted;
  atomic_int stop;
} refill_arg;

static void *refiller(void *p) {
  refill_arg *a = p;
  static const char *kinds[1000], *payloads[1000];
  static char ids[1000 * JOBQ_ID_SIZE];
  for (int i = 0; i < 1000; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  while (!atomic_load(&a->stop)) {
    long queued = atomic_load(&a->submitted) - atomic_load(&done);
    if (queued < a->depth) {
      if (jobq_submit_many(a->q, 1000, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
      atomic_fetch_add(&a->submitted, 1000);
    } else {
      struct timespec ts = {0, 100000};
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

static void depth(long queued) {
  char name[64];
  snprintf(name, sizeof name, "depth_%ld", queued);
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  jobq_t *q = open_q(1);
  if (jobq_register(q, "noop", noop, NULL, NULL) != 0) die("jobq_register");
  refill_arg a;
  a.q = q;
  a.depth = queued;
  atomic_init(&a.submitted, 0);
  atomic_init(&a.stop, 0);
  atomic_store(&done, 0);
  /* Fill to the depth first, then measure while it is held there. */
  pthread_t t;
  pthread_create(&t, NULL, refiller, &a);
  while (atomic_load(&a.submitted) < queued) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  long measure = strncmp(storage, "sqlite:", 7) == 0 ? 100000 : 1000000;
  if (jobq_start(q) != 0) die("jobq_start");
  double t0 = now_s();
  while (atomic_load(&done) < measure) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  double el = now_s() - t0;
  atomic_store(&a.stop, 1);
  pthread_join(t, NULL);
  printf("%s: %.0f jobs/s (%ld jobs run with about %ld kept queued)\n", name,
         (double)measure / el, measure, queued);
  fflush(stdout);
  jobq_close(q, 0);
}

static void get_at_depth(long queued) {
  char name[64];
  snprintf(name, sizeof name, "get_at_depth_%ld", queued);
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  jobq_t *q = open_q(0); /* nobody claims: every job stays queued */
  static const char *kinds[1000], *payloads[1000];
  for (int i = 0; i < 1000; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  char *ids = malloc((size_t)queued * JOBQ_ID_SIZE);
  if (ids == NULL) die("malloc");
  for (long i = 0; i < queued; i += 1000) {
    size_t n = queued - i < 1000 ? (size_t)(queued - i) : 1000;
    if (jobq_submit_many(q, n, kinds, payloads, NULL, ids + (size_t)i * JOBQ_ID_SIZE, NULL) < 0)
      die("submit_many");
  }
  enum { GETS = 1000 };
  uint64_t *lat = malloc(GETS * sizeof *lat);
  uint64_t x = 88172645463325252u; /* xorshift64: the same jobs every run */
  int64_t pos_max = -1, eta_min = INT64_MAX;
  for (int i = 0; i < GETS + 100; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    long k = (long)(x % (uint64_t)queued);
    jobq_job_t *j = NULL;
    uint64_t t0 = now_ns();
    if (jobq_get(q, ids + (size_t)k * JOBQ_ID_SIZE, &j) != 0) die("jobq_get");
    uint64_t t = now_ns() - t0;
    if (jobq_job_position(j) > pos_max) pos_max = jobq_job_position(j);
    if (jobq_job_eta_ms(j) < eta_min) eta_min = jobq_job_eta_ms(j);
    jobq_job_free(j);
    if (i >= 100) lat[i - 100] = t; /* the first 100 warm the caches */
  }
  char label[160];
  if (eta_min < 0) die("a queued job had no ETA");
  snprintf(label, sizeof label, "%s (largest position seen %lld, with ETA)", name,
           (long long)pos_max);
  report_lat(label, lat, GETS);
  free(lat);
  free(ids);
  jobq_close(q, 0);
}

static void stats_at_depth(long queued) {
  char name[64];
  snprintf(name, sizeof name, "stats_at_depth_%ld", queued);
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  jobq_t *q = open_q(0);
  static const char *kinds[1000], *payloads[1000];
  static char ids[1000 * JOBQ_ID_SIZE];
  for (int i = 0; i < 1000; i++) {
    kinds[i] = i % 2 ? "noop" : "other"; /* two kinds */
    payloads[i] = "{}";
  }
  for (long i = 0; i < queued; i += 1000) {
    size_t n = queued - i < 1000 ? (size_t)(queued - i) : 1000;
    if (jobq_submit_many(q, n, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
  }
  enum { SNAPS = 20 };
  uint64_t lat[SNAPS];
  int64_t seen = 0;
  for (int i = 0; i < SNAPS + 2; i++) {
    jobq_stats_t *st = NULL;
    uint64_t t0 = now_ns();
    if (jobq_stats(q, &st) != 0) die("jobq_stats");
    uint64_t t = now_ns() - t0;
    seen = 0;
    for (int k = 0; k < jobq_stats_kind_count(st); k++) seen += jobq_stats_kind_queued(st, k);
    jobq_stats_free(st);
    if (i >= 2) lat[i - 2] = t;
  }
  char label[160];
  snprintf(label, sizeof label, "%s (%lld queued counted)", name, (long long)seen);
  report_lat(label, lat, SNAPS);
  jobq_close(q, 0);
}

static void e2e_owned(int quotas) {
  const char *name = quotas ? "e2e_owned_quota" : "e2e_owned";
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  jobq_options_t *o = jobq_options_new();
  jobq_options_set_storage(o, cur_url ? cur_url : storage);
  jobq_options_set_workers(o, 2);
  if (quotas &&
      (jobq_options_set_owner_quota(o, NULL, 1000000) || jobq_options_set_owner_quota(o, "noop", 1000000)))
    die("jobq_options_set_owner_quota");
  jobq_t *q;
  if (jobq_open(&q, o) != 0) die("jobq_open");
  jobq_options_free(o);
  if (jobq_register(q, "noop", noop, NULL, NULL) != 0) die("jobq_register");
  if (jobq_start(q) != 0) die("jobq_start");
  atomic_store(&done, 0);
  enum { BATCH = 1000, USERS = 1000 };
  const char *kinds[BATCH], *payloads[BATCH];
  const jobq_submit_opts_t *opts[BATCH];
  jobq_submit_opts_t *so[USERS];
  for (int u = 0; u < USERS; u++) {
    char owner[32];
    snprintf(owner, sizeof owner, "user%d", u);
    so[u] = jobq_submit_opts_new();
    if (jobq_submit_opts_set_owner(so[u], owner) != 0) die("set_owner");
  }
  static char ids[BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < BATCH; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
    opts[i] = so[i % USERS];
  }
  long total = (n_jobs + BATCH - 1) / BATCH * BATCH;
  double t0 = now_s();
  for (long i = 0; i < total; i += BATCH)
    if (jobq_submit_many(q, BATCH, kinds, payloads, opts, ids, NULL) < 0) die("submit_many");
  while (atomic_load(&done) < total) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  double t = now_s() - t0;
  printf("%s: %.0f jobs/s (%ld jobs in %.3f s)\n", name, (double)total / t, total, t);
  fflush(stdout);
  jobq_close(q, -1);
  for (int u = 0; u < USERS; u++) jobq_submit_opts_free(so[u]);
}

/* ---- retention ---- */

static _Atomic int64_t clock_shift; /* ms added to the real clock */

static int64_t shifted_clock(void *ud) {
  (void)ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&clock_shift);
}

static _Atomic uint64_t pass_end_ns;
static atomic_long pass_pruned;

static void retention_log(int level, const char *message, void *ud) {
  (void)ud;
  long n = 0;
  if (level == JOBQ_LOG_INFO && sscanf(message, "retention: pruned %ld", &n) == 1) {
    atomic_store(&pass_pruned, n);
    atomic_store(&pass_end_ns, now_ns());
  }
}

static void e2e_retention(int on) {
  const char *name = on ? "e2e_retention_on" : "e2e_retention_off";
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  enum { BATCH = 1000, OLD = 1000000 };
  jobq_options_t *o = jobq_options_new();
  jobq_options_set_storage(o, cur_url ? cur_url : storage);
  jobq_options_set_workers(o, 2);
  jobq_options_set_clock(o, shifted_clock, NULL);
  jobq_options_set_log(o, retention_log, NULL, JOBQ_LOG_INFO);
  atomic_store(&clock_shift, -2 * 3600 * 1000);
  atomic_store(&pass_end_ns, 0);
  atomic_store(&pass_pruned, 0);
  jobq_t *q;
  if (jobq_open(&q, o) != 0) die("jobq_open");
  jobq_options_free(o);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  if (jobq_kind_opts_set_retention(ko, on ? 3600 * 1000 : 0) != 0) die("set_retention");
  if (jobq_register(q, "noop", noop, NULL, ko) != 0) die("jobq_register");
  jobq_kind_opts_free(ko);
  if (jobq_start(q) != 0) die("jobq_start");
  const char *kinds[BATCH], *payloads[BATCH];
  static char ids[BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < BATCH; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  /* The old jobs, run two hours ago by the queue's clock. */
  atomic_store(&done, 0);
  for (long i = 0; i < OLD; i += BATCH)
    if (jobq_submit_many(q, BATCH, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
  while (atomic_load(&done) < OLD) usleep(1000);
  /* Now: they are older than the retention; the next tick begins the pass. */
  atomic_store(&done, 0);
  atomic_store(&clock_shift, 0);
  long total = (n_jobs + BATCH - 1) / BATCH * BATCH;
  uint64_t t0 = now_ns();
  for (long i = 0; i < total; i += BATCH)
    if (jobq_submit_many(q, BATCH, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
  while (atomic_load(&done) < total) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  uint64_t t1 = now_ns();
  double t = (double)(t1 - t0) / 1e9;
  int pruning_throughout = on && (atomic_load(&pass_end_ns) == 0 || atomic_load(&pass_end_ns) > t1);
  printf("%s: %.0f jobs/s (%ld jobs in %.3f s, beside %d finished jobs older than the "
         "retention%s)\n",
         name, (double)total / t, total, t, OLD,
         on ? (pruning_throughout ? "; pruning them all along" : "; pruning ended before")
            : "; retention 0");
  fflush(stdout);
  if (on) {
    /* The pass goes on; wait for its end (its log line), at most 10 min. */
    while (atomic_load(&pass_end_ns) == 0 && now_ns() - t0 < 600 * 1000000000ull) usleep(10000);
    uint64_t te = atomic_load(&pass_end_ns);
    if (te)
      printf("%s_prune: %.0f jobs/s (%ld old jobs pruned in %.3f s, in calls of 200)\n", name,
             (double)atomic_load(&pass_pruned) / ((double)(te - t0) / 1e9),
             (long)atomic_load(&pass_pruned), (double)(te - t0) / 1e9);
    else
      printf("%s_prune: the pass did not end within 600 s\n", name);
    fflush(stdout);
  }
  jobq_close(q, -1);
}

static void cache_lookup(void) {
  if (!want("cache_lookup")) return;
  cur_url = figure_url("cache_lookup", NULL);
  jobq_t *q = open_q(2);
  if (jobq_register(q, "noop", noop, NULL, NULL) != 0) die("jobq_register");
  if (jobq_start(q) != 0) die("jobq_start");
  enum { KEYS = 100000, BATCH = 1000, LOOKUPS = 10000 };
  const char *kinds[BATCH], *payloads[BATCH];
  const jobq_submit_opts_t *opts[BATCH];
  jobq_submit_opts_t *so[BATCH];
  static char ids[BATCH * JOBQ_ID_SIZE];
  int64_t until = jobq_now(q) + 86400000;
  atomic_store(&done, 0);
  for (long i = 0; i < KEYS; i += BATCH) {
    for (int k = 0; k < BATCH; k++) {
      char key[64];
      snprintf(key, sizeof key, "podcast:user%ld:daily:2026-12-06", i + k);
      so[k] = jobq_submit_opts_new();
      if (jobq_submit_opts_set_dedupe_until(so[k], key, until) != 0) die("set_dedupe_until");
      kinds[k] = "noop";
      payloads[k] = "{}";
      opts[k] = so[k];
    }
    if (jobq_submit_many(q, BATCH, kinds, payloads, opts, ids, NULL) < 0) die("submit_many");
    for (int k = 0; k < BATCH; k++) jobq_submit_opts_free(so[k]);
  }
  while (atomic_load(&done) < KEYS) usleep(1000); /* every job succeeded */
  uint64_t *lat = malloc(LOOKUPS * sizeof *lat);
  for (int miss = 0; miss < 2; miss++) {
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < LOOKUPS + 100; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      char key[64];
      snprintf(key, sizeof key, "podcast:user%lu:%s:2026-12-06",
               (unsigned long)(x % KEYS), miss ? "weekly" : "daily");
      jobq_job_t *j = NULL;
      uint64_t t0 = now_ns();
      int rc = jobq_get_by_key(q, key, &j);
      uint64_t t = now_ns() - t0;
      if (rc != (miss ? JOBQ_ENOTFOUND : 0)) die("jobq_get_by_key");
      jobq_job_free(j);
      if (i >= 100) lat[i - 100] = t;
    }
    report_lat(miss ? "cache_lookup_miss" : "cache_lookup_hit", lat, LOOKUPS);
  }
  free(lat);
  jobq_close(q, 0);
}

/* The pull path (what a binding calls): claims and succeeds every job on
 * one thread, batch 0 meaning jobq_claim. */
static void pull(const char *name, size_t batch) {
  if (!want(name)) return;
  cur_url = figure_url(name, NULL);
  jobq_t *q = open_q(0);
  long n = n_jobs < 200000 ? n_jobs : 200000;
  enum { SUB = 1000 };
  const char *kinds[SUB], *payloads[SUB];
  static char ids[SUB * JOBQ_ID_SIZE];
  for (int i = 0; i < SUB; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  for (long i = 0; i < n; i += SUB) {
    size_t k = n - i < SUB ? (size_t)(n - i) : SUB;
    if (jobq_submit_many(q, k, kinds, payloads, NULL, ids, NULL) < 0) die("jobq_submit_many");
  }
  static const char *const kind[] = {"noop", NULL};
  jobq_ctx_t *got[256];
  char last[JOBQ_ID_SIZE] = "";
  long claimed = 0;
  double t0 = now_s();
  while (claimed < n) {
    size_t m = 1;
    int rc = batch ? jobq_claim_many(q, kind, batch, 0, got, &m) : jobq_claim(q, kind, 0, got);
    if (rc < 0) die(batch ? "jobq_claim_many" : "jobq_claim");
    for (size_t i = 0; i < m; i++) {
      if (claimed + (long)i == n - 1) memcpy(last, jobq_ctx_id(got[i]), JOBQ_ID_SIZE);
      if (jobq_ctx_succeed(got[i], NULL) < 0) die("jobq_ctx_succeed");
    }
    claimed += (long)m;
  }
  /* A backend may store finishes after succeed returns (SQLite's group
   * commit): the figure ends when the last one is stored. */
  for (;;) {
    jobq_job_t *j = NULL;
    if (jobq_wait(q, last, -1, &j) != 0) die("jobq_wait");
    int fin = jobq_state_is_terminal(jobq_job_state(j));
    jobq_job_free(j);
    if (fin) break;
  }
  double t = now_s() - t0;
  printf("%s: %.0f jobs/s (%ld jobs in %.3f s)\n", name, (double)n / t, n, t);
  fflush(stdout);
  jobq_close(q, -1);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--xproc-child") == 0) return xproc_child(argv[2]);
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "--e2e-child") == 0)
    return e2e_child(argv[2], argc == 4);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc) storage = argv[++i];
    else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) n_jobs = atol(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else {
      fprintf(stderr, "usage: jobq_bench [--storage URL] [--jobs N] [--only NAME]\n");
      return 2;
    }
  }
  printf("libjobq %s, storage %s, %ld jobs per run\n", jobq_version_string(), storage, n_jobs);
  e2e(1, 1);
  e2e(2, 1);
  e2e(1, 1000);
  e2e(2, 1000);
  drain(1);
  drain(2);
  submit_latency();
  pickup_latency();
  pickup_xproc(argv[0]);
  run_procs(argv[0], 1, 0);
  run_procs(argv[0], 2, 0);
  run_procs(argv[0], 4, 0);
  run_procs(argv[0], 1, 1);
  run_procs(argv[0], 2, 1);
  run_procs(argv[0], 4, 1);
  submit_threads();
  depth(10000);
  depth(1000000);
  get_at_depth(10000);
  get_at_depth(100000);
  get_at_depth(1000000);
  stats_at_depth(10000);
  stats_at_depth(1000000);
  e2e_owned(0);
  e2e_owned(1);
  e2e_as("e2e_rate_limit", 2, 1000, 1);
  e2e_retention(0);
  e2e_retention(1);
  cache_lookup();
  pull("pull_claim", 0);
  pull("pull_many_64", 64);
  pull("pull_many_256", 256);
  rss();
  return 0;
}
