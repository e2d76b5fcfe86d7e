/* wal_bench: how large the SQLite -wal file grows when several processes
 * share one database. A program, not a test: it prints figures and never
 * fails because the machine is slow.
 *
 *   wal_bench [--db PATH] [--secs S] [--workers N] [--readers N]
 *
 * It starts N worker processes (default 2), each submitting batches of
 * 1,000 no-op jobs (jobq_submit_many) and running them with two workers,
 * and N reader processes (default 1), each calling jobq_list and jobq_get
 * in a loop, all on one fresh database file (default /tmp/wal_bench.db),
 * for S seconds (default 25). Meanwhile this process samples, every 10 ms,
 * the size of the -wal file (stat) and the WAL's frame count (mxFrame, read
 * from the wal-index header in the -shm file without taking any lock, so
 * the sampling itself pins nothing), and prints their peak and p99, then
 * the jobs each worker process ran. Each child is this program run again
 * (posix_spawn) with --role, so none inherits the others' state. */
#include <jobq.h>

#include <fcntl.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define WAL_PAGE 4096
#define MAX_CHILDREN 16
#define IN_FLIGHT 20000 /* jobs a worker process lets wait before submitting more */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void die(const char *what) {
  fprintf(stderr, "wal_bench: %s: %s\n", what, jobq_last_error());
  exit(1);
}

static jobq_t *open_q(const char *db, int workers) {
  char url[1100];
  snprintf(url, sizeof url, "sqlite:%s", db);
  jobq_options_t *o = jobq_options_new();
  if (o == NULL || jobq_options_set_storage(o, url) != 0) die("options");
  if (workers > 0 && jobq_options_set_workers(o, workers) != 0) die("workers");
  jobq_t *q;
  if (jobq_open(&q, o) != 0) die("jobq_open");
  jobq_options_free(o);
  return q;
}

static atomic_long done;

static void noop(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
  atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
}

/* Submits and runs no-op jobs until the time is up. */
static int run_worker(const char *db, double secs) {
  jobq_t *q = open_q(db, 2);
  if (jobq_register(q, "noop", noop, NULL, NULL) != 0) die("jobq_register");
  if (jobq_start(q) != 0) die("jobq_start");
  enum { BATCH = 1000 };
  static const char *kinds[BATCH], *payloads[BATCH];
  static char ids[BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < BATCH; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  long submitted = 0;
  double end = now_s() + secs;
  while (now_s() < end) {
    /* Jobs of both worker processes are claimed by either: this keeps the
     * queue from growing without bound, roughly. */
    if (submitted - atomic_load(&done) > IN_FLIGHT) {
      nap_us(500);
      continue;
    }
    if (jobq_submit_many(q, BATCH, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
    submitted += BATCH;
  }
  long ran = atomic_load(&done);
  jobq_close(q, 0);
  printf("worker %d: submitted %ld, ran %ld (%.0f jobs/s)\n", (int)getpid(), submitted, ran,
         (double)ran / secs);
  return 0;
}

/* Reads what the workers write, as an API process polling for its users. */
static int run_reader(const char *db, double secs) {
  jobq_t *q = open_q(db, 0);
  jobq_filter_t *f = jobq_filter_new();
  if (f == NULL || jobq_filter_set_limit(f, 50) != 0) die("filter");
  long lists = 0, gets = 0;
  double end = now_s() + secs;
  while (now_s() < end) {
    jobq_page_t *p = NULL;
    if (jobq_list(q, f, &p) != 0) die("jobq_list");
    lists++;
    size_t n = jobq_page_count(p);
    for (size_t i = 0; i < n && i < 10; i++) {
      jobq_job_t *j = NULL;
      if (jobq_get(q, jobq_job_id(jobq_page_job(p, i)), &j) == 0) {
        gets++;
        jobq_job_free(j);
      }
    }
    jobq_page_free(p);
  }
  jobq_filter_free(f);
  jobq_close(q, 0);
  printf("reader %d: %ld lists, %ld gets\n", (int)getpid(), lists, gets);
  return 0;
}

/* The WAL's frame count from the wal-index header (WalIndexHdr.mxFrame,
 * native byte order, at offset 16 of the -shm file); -1 when unreadable. */
static long shm_frames(int fd) {
  uint32_t v;
  if (fd < 0 || pread(fd, &v, sizeof v, 16) != (ssize_t)sizeof v) return -1;
  return (long)v;
}

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

static long p99(long *v, size_t n) {
  if (n == 0) return 0;
  qsort(v, n, sizeof *v, cmp_long);
  return v[(size_t)((double)(n - 1) * 0.99)];
}

static pid_t spawn(const char *self, const char *role, const char *db, const char *secs) {
  char *argv[] = {(char *)self, "--role", (char *)role, "--db", (char *)db, "--secs",
                  (char *)secs, NULL};
  pid_t pid;
  if (posix_spawn(&pid, self, NULL, NULL, argv, environ) != 0) {
    perror("posix_spawn");
    exit(1);
  }
  return pid;
}

int main(int argc, char **argv) {
  const char *db = "/tmp/wal_bench.db", *role = NULL, *secs_s = "25";
  int workers = 2, readers = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) db = argv[++i];
    else if (strcmp(argv[i], "--secs") == 0 && i + 1 < argc) secs_s = argv[++i];
    else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) workers = atoi(argv[++i]);
    else if (strcmp(argv[i], "--readers") == 0 && i + 1 < argc) readers = atoi(argv[++i]);
    else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) role = argv[++i];
    else {
      fprintf(stderr,
              "usage: wal_bench [--db PATH] [--secs S] [--workers N] [--readers N]\n"
              "  N worker processes (submit + run no-op jobs) and N reader processes\n"
              "  (jobq_list + jobq_get) on one SQLite file; prints the -wal file's\n"
              "  peak and p99 size and frame count, sampled every 10 ms.\n");
      return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  double secs = atof(secs_s);
  if (secs <= 0 || workers < 0 || readers < 0 || workers + readers > MAX_CHILDREN ||
      strlen(db) > 1000) {
    fprintf(stderr, "wal_bench: bad arguments\n");
    return 2;
  }
  if (role && strcmp(role, "worker") == 0) return run_worker(db, secs);
  if (role && strcmp(role, "reader") == 0) return run_reader(db, secs);

  char wal[1100], shm[1100];
  snprintf(wal, sizeof wal, "%s-wal", db);
  snprintf(shm, sizeof shm, "%s-shm", db);
  unlink(db);
  unlink(wal);
  unlink(shm);
  /* The schema first, so that the children do not race to create it. */
  jobq_close(open_q(db, 0), 0);

  const char *self = argv[0];
  char self_buf[4096];
  ssize_t len = readlink("/proc/self/exe", self_buf, sizeof self_buf - 1);
  if (len > 0) {
    self_buf[len] = '\0';
    self = self_buf;
  }
  pid_t kids[MAX_CHILDREN];
  int n_kids = 0;
  for (int i = 0; i < workers; i++) kids[n_kids++] = spawn(self, "worker", db, secs_s);
  for (int i = 0; i < readers; i++) kids[n_kids++] = spawn(self, "reader", db, secs_s);

  size_t cap = (size_t)(secs * 100.0) + 1000, n = 0;
  long *sizes = malloc(cap * sizeof *sizes), *frames = malloc(cap * sizeof *frames);
  if (sizes == NULL || frames == NULL) return 1;
  long peak_size = 0, peak_frames = 0;
  int shm_fd = -1;
  double end = now_s() + secs + 2.0;
  int alive = n_kids;
  while (alive > 0 && now_s() < end + 30.0) {
    struct stat st;
    long sz = stat(wal, &st) == 0 ? (long)st.st_size : 0;
    if (shm_fd < 0) shm_fd = open(shm, O_RDONLY);
    long fr = shm_frames(shm_fd);
    if (n < cap) {
      sizes[n] = sz;
      frames[n] = fr < 0 ? 0 : fr;
      n++;
    }
    if (sz > peak_size) peak_size = sz;
    if (fr > peak_frames) peak_frames = fr;
    nap_us(10000);
    for (int i = 0; i < n_kids; i++) {
      int status;
      if (kids[i] > 0 && waitpid(kids[i], &status, WNOHANG) == kids[i]) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
          fprintf(stderr, "wal_bench: child %d failed\n", (int)kids[i]);
        kids[i] = 0;
        alive--;
      }
    }
  }
  if (shm_fd >= 0) close(shm_fd);
  struct stat st;
  long final_size = stat(wal, &st) == 0 ? (long)st.st_size : 0;
  printf("wal_bench: %d worker + %d reader processes, %.0f s, %zu samples\n", workers, readers,
         secs, n);
  printf("wal_file_bytes: peak %.1f MB, p99 %.1f MB, after close %.1f MB\n", peak_size / 1e6,
         p99(sizes, n) / 1e6, final_size / 1e6);
  printf("wal_frames: peak %ld (%.1f MB of %d-byte pages), p99 %ld\n", peak_frames,
         peak_frames * (WAL_PAGE + 24.0) / 1e6, WAL_PAGE, p99(frames, n));
  free(sizes);
  free(frames);
  unlink(db);
  unlink(wal);
  unlink(shm);
  return 0;
}
