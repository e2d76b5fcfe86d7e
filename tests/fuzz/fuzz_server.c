/* Fuzz target: jobq-server's request path. Each input is the raw bytes a
 * client sends on one HTTP/1.1 connection (several pipelined requests, a
 * chunked body, garbage...). They go through a socketpair into the real
 * server: H2O's parser, the router, authentication, the JSON handling and
 * the handlers of examples/server, on a "memory:" queue on the same libuv
 * loop, exactly as in jobq-server but without a listener
 * (srv_http_accept_fd). Then the client shuts its side for writing and the
 * loop runs until the server has closed the connection and every call has
 * ended (its work on the pool too).
 *
 * Whatever the input: nothing crashes, nothing leaks (ASan/LSan), every
 * call ends (s->inflight back to 0) and the server lets go of the
 * connection. Time is capped by the loop's own timers, not by sleeping:
 * after CAP_MS of loop time the streams and long polls are ended and the
 * client closes; if the server still holds the connection HANG_MS later,
 * that is a hang and the target aborts.
 *
 * Job ids are random: no input could name an existing job. So the bytes
 * "@Q" in an input are replaced by the id of a queued job of owner
 * alice (a new one whenever an input cancelled it) and "@D" by the id of a
 * cancelled one: GET, DELETE, ?wait= and the job routes then reach the
 * paths of jobs that exist.
 *
 * The request log goes to stderr like jobq-server's; JOBQ_FUZZ_QUIET=1
 * turns it off (the CTest replay does). With libFuzzer:
 *   build-fuzz/tests/fuzz/fuzz_server -close_fd_mask=2 corpus-dir tests/fuzz/corpus/server
 * jobq-test-requires: server */
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CAP_MS 200
#define HANG_MS 5000

static srv_t S;

/* The keys the corpus uses: an administrator and an owner's. */
static srv_key keys[] = {{"fuzz-admin", NULL}, {"fuzz-alice", "alice"}};
static char *cors[] = {"https://app.example"};

/* Runs fn on libuv's pool and the loop until it is done: calls that wait
 * for a commit never run on the loop's thread (as in srv_work). */
typedef struct {
  uv_work_t w;
  void (*fn)(void);
  int done;
} pool_call;
static void on_pool(uv_work_t *w) { ((pool_call *)w->data)->fn(); }
static void on_pool_done(uv_work_t *w, int st) {
  (void)st;
  ((pool_call *)w->data)->done = 1;
}
static void on_pool_call(void (*fn)(void)) {
  pool_call pc = {.fn = fn};
  pc.w.data = &pc;
  if (uv_queue_work(S.loop, &pc.w, on_pool, on_pool_done) != 0) abort();
  while (!pc.done) uv_run(S.loop, UV_RUN_ONCE);
}

static char queued_id[JOBQ_ID_SIZE], done_id[JOBQ_ID_SIZE];

static void submit_for_alice(char *id) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  if (so == NULL || jobq_submit_opts_set_owner(so, "alice") != 0 ||
      jobq_submit(S.q, "echo", "{\"ms\":1}", so, id) != 0) {
    fprintf(stderr, "fuzz_server: cannot submit: %s\n", jobq_last_error());
    abort();
  }
  jobq_submit_opts_free(so);
}
static void make_queued(void) { submit_for_alice(queued_id); }
static void make_done(void) {
  submit_for_alice(done_id);
  if (jobq_cancel(S.q, done_id) != 0) abort();
}

/* The jobs inputs submitted pile up: every CLEAR_EVERY inputs they are
 * cancelled and deleted (the cancelled job of "@D" too, made anew), so that
 * memory stays flat over long runs. */
#define CLEAR_EVERY 4096
static void clear_jobs(void) {
  size_t n;
  do {
    jobq_filter_t *f = jobq_filter_new();
    jobq_page_t *page = NULL;
    if (f == NULL || jobq_filter_set_state(f, JOBQ_QUEUED) != 0 ||
        jobq_filter_set_limit(f, 1000) != 0 || jobq_list(S.q, f, &page) != 0)
      abort();
    jobq_filter_free(f);
    n = jobq_page_count(page);
    for (size_t i = 0; i < n; i++) jobq_cancel(S.q, jobq_job_id(jobq_page_job(page, i)));
    jobq_page_free(page);
  } while (n > 0);
  if (jobq_prune(S.q, 0, NULL) != 0) abort();
  queued_id[0] = '\0';
  make_done();
}

/* A queued job's id in queued_id: the same as before unless an input
 * cancelled that one. */
static void ensure_queued(void) {
  jobq_job_t *job = NULL;
  int rc = queued_id[0] ? jobq_get(S.q, queued_id, &job) : JOBQ_ENOTFOUND;
  if (rc != 0 || jobq_job_state(job) != JOBQ_QUEUED) on_pool_call(make_queued);
  jobq_job_free(job);
}

/* The input with "@Q" and "@D" replaced by the ids; *n its length. */
static char *substitute(const uint8_t *data, size_t size, size_t *n) {
  size_t idlen = strlen(queued_id);
  char *out = malloc(size / 2 * idlen + size + 1);
  if (out == NULL) abort();
  size_t o = 0;
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '@' && i + 1 < size && (data[i + 1] == 'Q' || data[i + 1] == 'D')) {
      const char *id = data[i + 1] == 'Q' ? queued_id : done_id;
      memcpy(out + o, id, strlen(id));
      o += strlen(id);
      i++;
    } else {
      out[o++] = (char)data[i];
    }
  }
  *n = o;
  return out;
}

static void init(void) {
  /* A write to a connection the other end closed must fail, not kill. */
  signal(SIGPIPE, SIG_IGN);
  srv_conf *k = &S.conf;
  k->listen_host = NULL; /* no listener: connections come from the socketpair */
  k->storage = "memory:";
  k->submit_only = 1; /* jobs stay queued: no handler runs here */
  k->keys = keys;
  k->n_keys = sizeof keys / sizeof keys[0];
  k->cron_secret = "fuzz-cron";
  k->cors = cors;
  k->n_cors = 1;
  k->max_body = 512; /* small, so that inputs reach the 413 paths too */
  k->req_timeout_ms = 10000;
  k->quiet = getenv("JOBQ_FUZZ_QUIET") != NULL;
  S.loop = uv_default_loop();
  S.started = uv_hrtime();
  jobq_options_t *o = jobq_options_new();
  if (o == NULL || jobq_options_set_storage(o, k->storage) != 0 ||
      jobq_options_set_loop(o, S.loop) != 0 || jobq_options_set_workers(o, 0) != 0 ||
      jobq_open(&S.q, o) != 0) {
    fprintf(stderr, "fuzz_server: cannot open the queue: %s\n", jobq_last_error());
    abort();
  }
  jobq_options_free(o);
  if (srv_podcast_setup(&S) != 0 || srv_stream_start(&S) != 0 || srv_http_start(&S) != 0) {
    fprintf(stderr, "fuzz_server: cannot start the server\n");
    abort();
  }
  on_pool_call(make_done);
}

/* ---- the client's end ---- */

typedef struct {
  uv_pipe_t pipe;
  uv_write_t wr;
  uv_shutdown_t sd;
  uv_timer_t cap;
  int closed;       /* the client's handle is closed */
  int timer_closed; /* the cap timer's handle is closed */
  int capped;       /* CAP_MS passed: streams ended, the client closed */
  char buf[4096];
} client_t;

static void on_client_closed(uv_handle_t *h) { ((client_t *)h->data)->closed = 1; }
static void on_timer_closed(uv_handle_t *h) { ((client_t *)h->data)->timer_closed = 1; }

static void close_client(client_t *cl) {
  if (!uv_is_closing((uv_handle_t *)&cl->pipe)) uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  client_t *cl = h->data;
  *b = uv_buf_init(cl->buf, sizeof cl->buf);
}

/* The answers are read and dropped; the end of the stream (or an error)
 * means the server closed the connection. */
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  (void)b;
  if (n < 0) close_client(st->data);
}

static void on_shutdown(uv_shutdown_t *sd, int status) { (void)sd, (void)status; }

static void on_written(uv_write_t *wr, int status) {
  client_t *cl = wr->data;
  if (status == 0) uv_shutdown(&cl->sd, (uv_stream_t *)&cl->pipe, on_shutdown);
}

static void on_cap(uv_timer_t *t) {
  client_t *cl = t->data;
  if (!cl->capped) {
    /* A stream or a long poll may hold the connection open for long: end
     * them (as SIGTERM does) and go away, as a client that gave up. */
    cl->capped = 1;
    srv_stream_stop(&S);
    close_client(cl);
    uv_timer_start(t, on_cap, HANG_MS, 0);
    return;
  }
  fprintf(stderr, "fuzz_server: the server still holds the connection %d ms after the client "
          "left (%ld calls unanswered)\n", HANG_MS, S.inflight);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned long runs;
  if (S.q == NULL) init();
  if (++runs % CLEAR_EVERY == 0) on_pool_call(clear_jobs);
  ensure_queued();
  size_t len;
  char *input = substitute(data, size, &len);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
  client_t *cl = calloc(1, sizeof *cl);
  if (cl == NULL) abort();
  if (srv_http_accept_fd(&S, sv[0]) != 0) abort();
  uv_pipe_init(S.loop, &cl->pipe, 0);
  if (uv_pipe_open(&cl->pipe, sv[1]) != 0) abort();
  cl->pipe.data = cl->wr.data = cl->cap.data = cl;
  uv_timer_init(S.loop, &cl->cap);
  uv_timer_start(&cl->cap, on_cap, CAP_MS, 0);
  /* uv_write keeps a pointer to the bytes: input lives until the end. */
  uv_buf_t b = uv_buf_init(input, (unsigned)len);
  if (len > 0) {
    uv_write(&cl->wr, (uv_stream_t *)&cl->pipe, &b, 1, on_written);
  } else {
    uv_shutdown(&cl->sd, (uv_stream_t *)&cl->pipe, on_shutdown);
  }
  uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read);

  /* The server is done when it closed the connection (the client read its
   * end) and every call ended, work on the pool included. */
  while (!cl->closed || S.inflight > 0 || !srv_http_idle(&S)) uv_run(S.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&cl->cap, on_timer_closed);
  while (!cl->timer_closed) uv_run(S.loop, UV_RUN_ONCE);
  /* H2O's handle of the connection closes on this turn. */
  uv_run(S.loop, UV_RUN_NOWAIT);
  if (S.inflight != 0) {
    fprintf(stderr, "fuzz_server: %ld calls unanswered\n", S.inflight);
    abort();
  }
  free(cl);
  free(input);
  return 0;
}
