/* server_stream_worker: the worker process of tests/bench/server_streams.py.
 * It runs jobs of kind "lat" on a shared SQLite file, each finishing at
 * once with the result {"t": MICROSECONDS}, the wall clock (CLOCK_REALTIME)
 * just before jobq_ctx_succeed: a client of jobq-server that receives the
 * job's succeeded event over SSE subtracts it from its own clock, which
 * gives the time from the job's completion in this process to the event's
 * arrival (the commit, the cross-process event, the server's fan-out and
 * the socket). Not a test: a benchmark's helper.
 *
 *   server_stream_worker sqlite:FILE SECONDS */
#include <jobq.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void lat(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char res[64];
  snprintf(res, sizeof res, "{\"t\":%lld}", (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
  jobq_ctx_succeed(ctx, res);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: server_stream_worker sqlite:FILE SECONDS\n");
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  jobq_options_t *o = jobq_options_new();
  jobq_t *q = NULL;
  if (o == NULL || jobq_options_set_storage(o, argv[1]) != 0 ||
      jobq_options_set_workers(o, 2) != 0 || jobq_open(&q, o) != 0 ||
      jobq_register(q, "lat", lat, NULL, NULL) != 0 || jobq_start(q) != 0) {
    fprintf(stderr, "server_stream_worker: %s\n", jobq_last_error());
    return 1;
  }
  jobq_options_free(o);
  long secs = atol(argv[2]);
  for (long i = 0; !stop && i < secs * 20; i++) {
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
  }
  return jobq_close(q, 5000) == 0 ? 0 : 1;
}
