/* jobq_bench: throughput and latency figures of libjobq. A program, not a
 * test: it prints one line per figure and never fails because the machine is
 * slow.
 *
 *   jobq_bench [--storage URL] [--jobs N] [--only NAME]
 *
 * Figures (memory backend, no-op handler unless said):
 *   e2e_*        submit -> run -> complete, jobs/s, with 1 and 2 workers,
 *                single submits and batches of 1000 (jobq_submit_many)
 *   submit_*     latency of one jobq_submit on a queue nobody works, p50/p99
 *   pickup_*     submit to handler start on an idle queue, p50/p99
 *   rss_*        resident memory with 1,000,000 queued jobs */
#include <jobq.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static jobq_t *open_q(int workers) {
  jobq_options_t *o = jobq_options_new();
  jobq_options_set_storage(o, storage);
  jobq_options_set_workers(o, workers);
  jobq_t *q;
  if (jobq_open(&q, o) != 0) die("jobq_open");
  jobq_options_free(o);
  return q;
}

static void e2e(int workers, int batch) {
  char name[64];
  snprintf(name, sizeof name, "e2e_%s_%dw", batch > 1 ? "batch" : "single", workers);
  if (!want(name)) return;
  jobq_t *q = open_q(workers);
  if (jobq_register(q, "noop", noop, NULL, NULL) != 0) die("jobq_register");
  if (jobq_start(q) != 0) die("jobq_start");
  atomic_store(&done, 0);
  const char **kinds = malloc((size_t)batch * sizeof *kinds);
  const char **payloads = malloc((size_t)batch * sizeof *payloads);
  char *ids = malloc((size_t)batch * JOBQ_ID_SIZE);
  for (int i = 0; i < batch; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  double t0 = now_s();
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
  double t = now_s() - t0;
  printf("%s: %.0f jobs/s (%ld jobs in %.3f s; submitting took %.3f s)\n", name,
         (double)want_n / t, want_n, t, t_sub);
  fflush(stdout);
  jobq_close(q, -1);
  free(kinds);
  free(payloads);
  free(ids);
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
  jobq_t *q = open_q(0);
  size_t n = n_jobs < 200000 ? (size_t)n_jobs : 200000;
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
  if (!want("pickup_latency")) return;
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
    while (atomic_load(&t_pick) == 0) {
    }
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
  long before = rss_kb();
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

int main(int argc, char **argv) {
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
  submit_latency();
  pickup_latency();
  rss();
  return 0;
}
