/* webhook_bench: what webhooks cost. A program, not a test: it prints one
 * line per figure and never fails because the machine is slow.
 *
 *   webhook_bench [--storage URL] [--jobs N] [--long N] [--rounds R] [--yield MS]
 *                 [--only NAME]
 *
 * --yield sets jobq_options_set_webhook_yield (default: the library's, 1 s).
 *
 * Default storage sqlite:/tmp/webhook_bench.db: every figure and round gets
 * a fresh file (the path with the figure's name appended), removed
 * afterwards. Every job is a no-op, of kind "noop"; 2 workers; jobs are
 * submitted in batches of 1,000 (jobq_submit_many). R rounds (default 3) of
 * each figure, then the median.
 *
 * Figures:
 *   deliveries   N jobs (default 20,000) subscribed to an endpoint whose URL
 *                is the sink below, 200 deliveries in flight
 *                (jobq_options_set_webhook_concurrency 200): deliveries/s
 *                from the sink's first receipt to its last, and from the
 *                first job's end to the last receipt (deliveries step
 *                aside while the burst of jobs runs: docs/webhooks.md,
 *                "Jobs first"); and the time until the store says all of
 *                them are delivered
 *   e2e          end-to-end jobs/s (first submit to the last job's end) of
 *                N jobs without webhooks, and of N jobs each with a
 *                delivery to the sink, in the same round; the ratio. Also
 *                N jobs each with a delivery that this process does not
 *                send (concurrency 0): the cost of writing the outbox
 *                alone, apart from sending it meanwhile. Each round also
 *                prints the process's CPU time per job (getrusage: all
 *                threads, the sink's included), steadier than jobs/s on a
 *                shared machine. --only e2e_plain, e2e_hook or e2e_stored
 *                runs one of the three
 *   long         the same without and with webhooks for --long N jobs
 *                (default 400,000): a backlog that lasts longer than the
 *                second for which deliveries step aside for short jobs
 *                (docs/webhooks.md, "Jobs first"), so that both share the
 *                CPU; also how many deliveries had arrived by the last
 *                job's end
 *
 * The sink is a receiver for load, not a test double: an HTTP/1.1 server
 * on 127.0.0.1 on a libuv loop of its own (one thread) that reads each
 * request (headers and Content-Length body, keep-alive, pipelining) and
 * answers "200 OK" with an empty body, counting the requests. */
#include <jobq.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static const char *storage = "sqlite:/tmp/webhook_bench.db";
static long n_jobs = 20000;
static long long_jobs = 400000;
static int yield_ms = -1; /* --yield: jobq_options_set_webhook_yield; -1: the default */
static int rounds = 3;
static const char *only;

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define BATCH 1000

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of the whole process so far (user + system, all threads). */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "webhook_bench: %s: %s\n", what, jobq_last_error());
  exit(1);
}

static int want(const char *name) { return only == NULL || strstr(name, only) != NULL; }

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* ---- the sink ---- */

static uv_loop_t sink_loop;
static uv_tcp_t sink_server;
static uv_async_t sink_stop;
static uv_thread_t sink_thread;
static int sink_port;
static atomic_long sink_requests;
/* The request count whose arrival sets sink_done_at (0 until then). */
static atomic_long sink_target;
static _Atomic double sink_done_at;
static _Atomic double sink_first_at; /* the first request's arrival */

static const char reply_200[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

typedef struct {
  uv_tcp_t tcp;
  char *buf;
  size_t len, cap;
} conn_t;

static void conn_closed(uv_handle_t *h) {
  conn_t *c = (conn_t *)h;
  free(c->buf);
  free(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  conn_t *c = (conn_t *)h;
  (void)hint;
  if (c->cap - c->len < 65536) {
    size_t ncap = c->cap ? c->cap * 2 : 131072;
    char *nb = realloc(c->buf, ncap);
    if (nb == NULL) {
      *b = uv_buf_init(NULL, 0);
      return;
    }
    c->buf = nb;
    c->cap = ncap;
  }
  *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void write_done(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

/* The length of the first whole request in p[0..n), or 0 if it is not all
 * here yet. */
static size_t request_len(const char *p, size_t n) {
  const char *end = NULL;
  for (size_t i = 0; i + 3 < n; i++)
    if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
      end = p + i + 4;
      break;
    }
  if (end == NULL) return 0;
  size_t body = 0;
  for (const char *l = p; l < end; l++) {
    if ((l == p || l[-1] == '\n') && (size_t)(end - l) > 15 &&
        strncasecmp(l, "content-length:", 15) == 0)
      body = strtoul(l + 15, NULL, 10);
  }
  size_t total = (size_t)(end - p) + body;
  return total <= n ? total : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  conn_t *c = (conn_t *)s;
  (void)b;
  if (nread < 0) {
    uv_close((uv_handle_t *)s, conn_closed);
    return;
  }
  c->len += (size_t)nread;
  size_t off = 0, r, answers = 0;
  while ((r = request_len(c->buf + off, c->len - off)) > 0) {
    off += r;
    answers++;
  }
  if (off) {
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
  }
  for (size_t i = 0; i < answers; i++) {
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t out = uv_buf_init((char *)reply_200, sizeof reply_200 - 1);
    if (w && uv_write(w, s, &out, 1, write_done) != 0) free(w);
    long n = atomic_fetch_add(&sink_requests, 1) + 1;
    if (n == 1) atomic_store(&sink_first_at, now_s());
    if (n == atomic_load(&sink_target)) atomic_store(&sink_done_at, now_s());
  }
}

static void on_conn(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  uv_tcp_init(&sink_loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0) {
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  } else {
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
  }
}

/* Connections carry themselves as data; the server and the async nothing. */
static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, h->data ? conn_closed : NULL);
}

static void on_stop(uv_async_t *a) {
  (void)a;
  uv_walk(&sink_loop, close_any, NULL);
}

static void sink_run(void *arg) {
  (void)arg;
  uv_run(&sink_loop, UV_RUN_DEFAULT);
}

static void sink_start(void) {
  uv_loop_init(&sink_loop);
  uv_tcp_init(&sink_loop, &sink_server);
  uv_async_init(&sink_loop, &sink_stop, on_stop);
  sink_server.data = NULL;
  sink_stop.data = NULL;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  if (uv_tcp_bind(&sink_server, (const struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&sink_server, 1024, on_conn) != 0) {
    fprintf(stderr, "webhook_bench: the sink cannot listen on 127.0.0.1\n");
    exit(1);
  }
  struct sockaddr_storage name;
  int len = sizeof name;
  uv_tcp_getsockname(&sink_server, (struct sockaddr *)&name, &len);
  sink_port = ntohs(((struct sockaddr_in *)&name)->sin_port);
  uv_thread_create(&sink_thread, sink_run, NULL);
}

static void sink_finish(void) {
  uv_async_send(&sink_stop);
  uv_thread_join(&sink_thread);
  uv_loop_close(&sink_loop);
}

/* Counts from zero; sink_done_at is set when the target-th request arrives. */
static void sink_reset(long target) {
  atomic_store(&sink_done_at, 0.0);
  atomic_store(&sink_first_at, 0.0);
  atomic_store(&sink_requests, 0);
  atomic_store(&sink_target, target);
}

/* ---- the queue ---- */

static atomic_long done;
static _Atomic double first_done_at;

static void noop(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
  if (atomic_fetch_add_explicit(&done, 1, memory_order_relaxed) == 0)
    atomic_store(&first_done_at, now_s());
}

static void remove_db(const char *file);

/* A fresh SQLite file per figure and round. */
static char url_buf[1024], file_buf[900];
static const char *figure_url(const char *figure) {
  if (strncmp(storage, "sqlite:", 7) != 0) return storage;
  const char *path = storage + 7, *q = strchr(path, '?');
  int plen = q ? (int)(q - path) : (int)strlen(path);
  snprintf(file_buf, sizeof file_buf, "%.*s.%s", plen, path, figure);
  remove_db(file_buf);
  snprintf(url_buf, sizeof url_buf, "sqlite:%s%s", file_buf, q ? q : "");
  return url_buf;
}

static void remove_db(const char *file) {
  char p[1000];
  unlink(file);
  snprintf(p, sizeof p, "%s-wal", file);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", file);
  unlink(p);
}

/* hook: every job is subscribed to the sink; 2: but this process sends
 * nothing (concurrency 0). */
static jobq_t *open_q(const char *url, int hook) {
  jobq_options_t *o = jobq_options_new();
  jobq_options_set_storage(o, url);
  jobq_options_set_workers(o, 2);
  if (hook) {
    char sink_url[64];
    snprintf(sink_url, sizeof sink_url, "http://127.0.0.1:%d/hook", sink_port);
    if (jobq_options_add_webhook(o, "bench", sink_url, SECRET) != 0 ||
        jobq_options_set_webhook_allow(o, "127.0.0.1") != 0 ||
        jobq_options_set_webhook_concurrency(o, hook == 2 ? 0 : 200) != 0 ||
        (yield_ms >= 0 && jobq_options_set_webhook_yield(o, yield_ms) != 0))
      die("webhook options");
  }
  jobq_t *q;
  if (jobq_open(&q, o) != 0) die("jobq_open");
  jobq_options_free(o);
  if (jobq_register(q, "noop", noop, NULL, NULL) != 0) die("jobq_register");
  return q;
}

static long total_jobs(void) { return (n_jobs + BATCH - 1) / BATCH * BATCH; }

static void submit_all(jobq_t *q) {
  static const char *kinds[BATCH], *payloads[BATCH];
  static char ids[BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < BATCH; i++) {
    kinds[i] = "noop";
    payloads[i] = "{}";
  }
  for (long i = 0; i < total_jobs(); i += BATCH)
    if (jobq_submit_many(q, BATCH, kinds, payloads, NULL, ids, NULL) < 0) die("submit_many");
}

static void wait_jobs(void) {
  while (atomic_load(&done) < total_jobs()) sleep_ms(1);
}

/* Polls the store until every delivery is delivered; the time then. */
static double wait_delivered(jobq_t *q) {
  for (;;) {
    jobq_stats_t *st = NULL;
    if (jobq_stats(q, &st) != 0) die("jobq_stats");
    int64_t n = jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_DELIVERED);
    jobq_stats_free(st);
    if (n >= total_jobs()) return now_s();
    sleep_ms(20);
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* deliveries: one round; *rate deliveries/s from the first receipt to the
 * last, *span_rate from the first job's end to the last receipt (which
 * includes the time deliveries step aside for the burst of jobs),
 * *stored_s the time from the first job's end until the store says all
 * are delivered. */
static void deliveries_round(int r, double *rate, double *span_rate, double *stored_s) {
  char fig[64];
  snprintf(fig, sizeof fig, "deliveries.%d", r);
  jobq_t *q = open_q(figure_url(fig), 1);
  long n = total_jobs();
  sink_reset(n);
  atomic_store(&done, 0);
  if (jobq_start(q) != 0) die("jobq_start");
  submit_all(q);
  double t_stored = wait_delivered(q);
  double first = atomic_load(&first_done_at), last = atomic_load(&sink_done_at);
  double got = atomic_load(&sink_first_at);
  *rate = (double)(n - 1) / (last - got);
  *span_rate = (double)n / (last - first);
  *stored_s = t_stored - first;
  printf("deliveries round %d: %ld deliveries, first to last receipt %.3f s: %.0f deliveries/s; "
         "first job end to last receipt %.3f s: %.0f/s; all stored delivered after %.3f s\n",
         r + 1, n, last - got, *rate, last - first, *span_rate, *stored_s);
  fflush(stdout);
  jobq_close(q, -1);
  remove_db(file_buf);
}

/* e2e: one round of n jobs without (hook 0) or with webhooks; jobs/s.
 * *deliv_s (hook 1, when wait): the time until all are stored delivered. */
static double e2e_round(const char *label, int r, int hook, long n, int wait, double *deliv_s) {
  char fig[64];
  snprintf(fig, sizeof fig, "%s_%s.%d", label, hook == 2 ? "stored" : hook ? "hook" : "plain", r);
  jobq_t *q = open_q(figure_url(fig), hook);
  long saved = n_jobs;
  n_jobs = n;
  n = total_jobs();
  sink_reset(n);
  atomic_store(&done, 0);
  if (jobq_start(q) != 0) die("jobq_start");
  double c0 = cpu_s(), t0 = now_s();
  submit_all(q);
  wait_jobs();
  double t = now_s() - t0, c = cpu_s() - c0;
  long arrived = atomic_load(&sink_requests);
  if (hook == 1 && wait) *deliv_s = wait_delivered(q) - t0;
  printf("%s round %d %s: %ld jobs in %.3f s: %.0f jobs/s, %.1f us CPU per job", label, r + 1,
         hook == 2 ? "with a webhook each, not sent" : hook ? "with a webhook each"
                                                           : "without webhooks",
         n, t, (double)n / t, c * 1e6 / (double)n);
  if (hook == 1 && wait) printf(" (all deliveries stored delivered after %.3f s)", *deliv_s);
  if (hook == 1 && !wait) printf(" (%ld deliveries had arrived by then)", arrived);
  printf("\n");
  fflush(stdout);
  jobq_close(q, hook == 1 && !wait ? 0 : -1);
  remove_db(file_buf);
  n_jobs = saved;
  return (double)n / t;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc) storage = argv[++i];
    else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) n_jobs = atol(argv[++i]);
    else if (strcmp(argv[i], "--long") == 0 && i + 1 < argc) long_jobs = atol(argv[++i]);
    else if (strcmp(argv[i], "--yield") == 0 && i + 1 < argc) yield_ms = atoi(argv[++i]);
    else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else {
      fprintf(stderr, "usage: webhook_bench [--storage URL] [--jobs N] [--long N] [--rounds R] "
                      "[--yield MS] [--only NAME]\n");
      return 2;
    }
  }
  if (n_jobs < 1 || long_jobs < 1 || rounds < 1 || rounds > 99) {
    fprintf(stderr, "webhook_bench: --jobs and --long take N >= 1, --rounds 1..99\n");
    return 2;
  }
  sink_start();
  if (want("deliveries")) {
    double rate[99], stored[99];
    double span[99];
    for (int r = 0; r < rounds; r++) deliveries_round(r, &rate[r], &span[r], &stored[r]);
    printf("deliveries: median of %d: %.0f deliveries/s from the first receipt (200 in flight, %ld "
           "jobs), %.0f/s from the first job's end; all stored delivered %.3f s after the first "
           "job's end\n",
           rounds, median(rate, rounds), total_jobs(), median(span, rounds), median(stored, rounds));
  }
  if (want("e2e_plain") || want("e2e_hook") || want("e2e_stored")) {
    int run[3] = {want("e2e_plain"), want("e2e_hook"), want("e2e_stored")};
    double fig[3][99], ratio[2][99], deliv[99];
    for (int r = 0; r < rounds; r++)
      for (int h = 0; h < 3; h++)
        if (run[h]) fig[h][r] = e2e_round("e2e", r, h, n_jobs, 1, &deliv[r]);
    for (int r = 0; r < rounds && run[0]; r++)
      for (int h = 1; h < 3; h++) ratio[h - 1][r] = run[h] ? fig[h][r] / fig[0][r] : 0;
    if (run[0] && run[1])
      printf("e2e: median of %d: %.0f jobs/s without webhooks, %.0f jobs/s with a webhook on every "
             "job: ratio %.3f (%+.1f %%); deliveries all stored %.3f s after the first submit\n",
             rounds, median(fig[0], rounds), median(fig[1], rounds), median(ratio[0], rounds),
             (median(ratio[0], rounds) - 1) * 100, median(deliv, rounds));
    if (run[0] && run[2])
      printf("e2e: median of %d: %.0f jobs/s with a webhook on every job that this process does "
             "not send: ratio %.3f (%+.1f %%)\n",
             rounds, median(fig[2], rounds), median(ratio[1], rounds),
             (median(ratio[1], rounds) - 1) * 100);
  }
  if (want("long")) {
    double plain[99], hook[99], ratio[99];
    for (int r = 0; r < rounds; r++) {
      plain[r] = e2e_round("long", r, 0, long_jobs, 1, NULL);
      hook[r] = e2e_round("long", r, 1, long_jobs, 0, NULL);
      ratio[r] = hook[r] / plain[r];
    }
    printf("long: median of %d: %.0f jobs/s without webhooks, %.0f jobs/s with a webhook on every "
           "job, sent meanwhile: ratio %.3f (%+.1f %%)\n",
           rounds, median(plain, rounds), median(hook, rounds), median(ratio, rounds),
           (median(ratio, rounds) - 1) * 100);
  }
  sink_finish();
  return 0;
}
