/* storage_bench: a storage backend alone, through its vtable, without the
 * core (no threads, no handlers, no events): what a job costs in SQL. A
 * program, not a test: it prints figures and never fails because the
 * machine is slow.
 *
 *   storage_bench [--storage URL] [--jobs N] [--claim B]
 *
 * One thread inserts N jobs in batches of 1,000, then claims B and finishes
 * those B (successes) until the queue is empty. With a sqlite: URL the
 * file is made fresh and removed afterwards. The sum of the three costs is
 * the ceiling for end-to-end throughput on one write connection; jobq_bench
 * measures what the core adds. */
#include "core/internal.h"
#include "jobq/storage.h"
#include "util/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what) {
  fprintf(stderr, "storage_bench: %s: %s\n", what, jobq_last_error());
  exit(1);
}

static void remove_db(const char *url) {
  if (strncmp(url, "sqlite:", 7) != 0) return;
  char p[1100];
  const char *path = url + 7;
  int n = (int)strcspn(path, "?");
  snprintf(p, sizeof p, "%.*s", n, path);
  unlink(p);
  snprintf(p, sizeof p, "%.*s-wal", n, path);
  unlink(p);
  snprintf(p, sizeof p, "%.*s-shm", n, path);
  unlink(p);
}

int main(int argc, char **argv) {
  const char *url = "sqlite:/tmp/jobq-storage-bench.db";
  long n = 200000, b = 256;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc) url = argv[++i];
    else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) n = atol(argv[++i]);
    else if (strcmp(argv[i], "--claim") == 0 && i + 1 < argc) b = atol(argv[++i]);
    else {
      fprintf(stderr, "usage: storage_bench [--storage URL] [--jobs N] [--claim B]\n");
      return 2;
    }
  }
  if (n < 1000 || b < 1) {
    fprintf(stderr, "storage_bench: --jobs must be >= 1000 and --claim >= 1\n");
    return 2;
  }
  n -= n % 1000;
  remove_db(url);
  const jobq_storage_ops *ops = NULL;
  void *st = NULL;
  if (jobq__storage_lookup(url, &ops) != 0) die("lookup");
  if (ops->open(url, &st) != 0) die("open");

  enum { INS = 1000 };
  jobq_storage_job *jobs = calloc(INS, sizeof *jobs);
  jobq_storage_job **ptr = calloc(INS, sizeof *ptr);
  int *dup = calloc(INS, sizeof *dup);
  jobq_storage_job *out = calloc((size_t)b, sizeof *out);
  jobq_storage_finish *fin = calloc((size_t)b, sizeof *fin);
  int *states = calloc((size_t)b, sizeof *states);
  if (!jobs || !ptr || !dup || !out || !fin || !states) die("out of memory");

  double t0 = now_s();
  for (long i = 0; i < n; i += INS) {
    int64_t t = wall_ms();
    for (int k = 0; k < INS; k++) {
      memset(&jobs[k], 0, sizeof jobs[k]);
      jobq__id_new(jobs[k].id, t);
      jobs[k].kind = "noop";
      jobs[k].payload = "{}";
      jobs[k].run_at = t;
      jobs[k].created_at = t;
      ptr[k] = &jobs[k];
    }
    if (ops->insert(st, ptr, INS, NULL, t, dup) != 0) die("insert");
  }
  double t_ins = now_s() - t0;

  const char *kinds[] = {"noop"};
  jobq_storage_claim c = {0};
  c.kinds = kinds;
  c.n_kinds = 1;
  c.max = (size_t)b;
  c.lease_ms = 30000;
  c.default_max_attempts = 3;
  long done = 0;
  double t_claim = 0, t_fin = 0;
  while (done < n) {
    size_t got = 0;
    c.now = wall_ms();
    double a = now_s();
    if (ops->claim(st, &c, out, &got) != 0) die("claim");
    double m = now_s();
    t_claim += m - a;
    if (got == 0) break;
    int64_t t = wall_ms();
    for (size_t k = 0; k < got; k++) {
      memset(&fin[k], 0, sizeof fin[k]);
      fin[k].id = out[k].id;
      fin[k].attempt = out[k].attempts;
      fin[k].outcome = JOBQ_OUTCOME_SUCCEEDED;
      fin[k].now = t;
      fin[k].progress = 100;
    }
    if (ops->finish(st, fin, got, states) != 0) die("finish");
    t_fin += now_s() - m;
    for (size_t k = 0; k < got; k++) {
      if (states[k] != JOBQ_SUCCEEDED) {
        fprintf(stderr, "storage_bench: job %s ended %d, not succeeded\n", out[k].id, states[k]);
        return 1;
      }
      jobq_storage_job_clear(&out[k]);
    }
    done += (long)got;
  }
  ops->close(st);
  remove_db(url);
  if (done != n) {
    fprintf(stderr, "storage_bench: %ld of %ld jobs came back from claims\n", done, n);
    return 1;
  }
  printf("storage %s, %ld jobs, claims of %ld\n", url, n, b);
  printf("storage_insert: %.2f us/job (batches of %d)\n", t_ins * 1e6 / (double)n, INS);
  printf("storage_claim: %.2f us/job\n", t_claim * 1e6 / (double)n);
  printf("storage_finish: %.2f us/job (one finish call per claim)\n", t_fin * 1e6 / (double)n);
  printf("storage_total: %.0f jobs/s through insert, claim and finish\n",
         (double)n / (t_ins + t_claim + t_fin));
  free(jobs);
  free(ptr);
  free(dup);
  free(out);
  free(fin);
  free(states);
  return 0;
}
