/* lib/net/http.c: real libcurl against tests/servers/http_fixture.py on
 * 127.0.0.1, started once for the whole program. Times are only ever
 * asserted from below: a slow machine makes things later, never earlier.
 * The text helpers are tested in test_net_http_text.c. */
#include "testutil.h"

#include "net/addrpolicy.h"
#include "net/http.h"
#include "net/http_int.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

/* ---- the fixture server ---- */

static pid_t g_pid = -1;
static int g_stdin = -1; /* closing it stops the server */
static int g_port;

static int fixture_start(void **state) {
  (void)state;
  char path[4096];
  const char *src = getenv("JOBQ_SOURCE_DIR");
  if (src != NULL && src[0] != '\0') {
    snprintf(path, sizeof path, "%s/tests/servers/http_fixture.py", src);
  } else {
    /* tests/unit/test_net_http.c -> tests/servers/http_fixture.py */
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    if (slash) *slash = '\0';
    else snprintf(path, sizeof path, ".");
    size_t n = strlen(path);
    snprintf(path + n, sizeof path - n, "/../servers/http_fixture.py");
  }
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return -1;
  fcntl(in[1], F_SETFD, FD_CLOEXEC);
  fcntl(out[0], F_SETFD, FD_CLOEXEC);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[0]);
  posix_spawn_file_actions_addclose(&fa, out[1]);
  char *argv[] = {"python3", path, NULL};
  int rc = posix_spawnp(&g_pid, "python3", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    print_error("cannot start python3 %s: %s\n", path, strerror(rc));
    return -1;
  }
  g_stdin = in[1];
  FILE *f = fdopen(out[0], "r");
  char line[64] = "";
  if (f == NULL || fgets(line, sizeof line, f) == NULL || sscanf(line, "PORT %d", &g_port) != 1) {
    print_error("http_fixture.py (%s) did not print its port\n", path);
    return -1;
  }
  fclose(f);
  return 0;
}

static int fixture_stop(void **state) {
  (void)state;
  if (g_stdin >= 0) close(g_stdin);
  if (g_pid > 0) {
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
  }
  return 0;
}

/* ---- helpers ---- */

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static const char *url(char *buf, size_t size, const char *path) {
  snprintf(buf, size, "http://127.0.0.1:%d%s", g_port, path);
  return buf;
}

/* What a done callback saw (copied: resp is valid during the call only). */
typedef struct got {
  int n;
  int rc;
  long status;
  int tries;
  int refused;
  int body_cut;
  int64_t retry_after_ms;
  char *body;
  size_t body_len;
  char *ctype;
  char *error;
  uint64_t at_ms;
  void (*then)(struct got *g, const jobq__http_resp *r); /* runs inside done */
  void *ctx;
} got;

static void on_done(void *ud, const jobq__http_resp *r) {
  got *g = ud;
  g->n++;
  g->rc = r->rc;
  g->status = r->status;
  g->tries = r->tries;
  g->refused = r->refused;
  g->body_cut = r->body_cut;
  g->retry_after_ms = r->retry_after_ms;
  g->at_ms = now_ms();
  assert_non_null(r->body);
  assert_int_equal(r->body[r->body_len], '\0');
  free(g->body);
  g->body = malloc(r->body_len + 1);
  assert_non_null(g->body);
  memcpy(g->body, r->body, r->body_len + 1);
  g->body_len = r->body_len;
  free(g->ctype);
  g->ctype = r->content_type ? strdup(r->content_type) : NULL;
  free(g->error);
  g->error = r->error ? strdup(r->error) : NULL;
  if (g->then) g->then(g, r);
}

static void got_free(got *g) {
  free(g->body);
  free(g->ctype);
  free(g->error);
  memset(g, 0, sizeof *g);
}

#define HAS(s, needle)                                                                          \
  do {                                                                                          \
    const char *s_ = (s);                                                                       \
    if (s_ == NULL || strstr(s_, (needle)) == NULL) {                                           \
      print_error("%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,               \
                  s_ ? s_ : "(NULL)", (needle));                                                \
      _fail(__FILE__, __LINE__);                                                                \
    }                                                                                           \
  } while (0)

#define HAS_NOT(s, needle)                                                                     \
  do {                                                                                         \
    const char *s_ = (s);                                                                      \
    if (s_ != NULL && strstr(s_, (needle)) != NULL) {                                          \
      print_error("%s:%d: \"%s\" contains \"%s\"\n", __FILE__, __LINE__, s_, (needle));        \
      _fail(__FILE__, __LINE__);                                                               \
    }                                                                                          \
  } while (0)

typedef struct tctx {
  uv_loop_t loop;
  jobq__http *h;
  int closed;
} tctx;

static void on_closed(void *ud) { ((tctx *)ud)->closed++; }

static void ctx_open(tctx *t) {
  memset(t, 0, sizeof *t);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  TAPI_OK(jobq__http_new(&t->loop, &t->h));
}

/* Closes the client (unless the test did) and checks that the loop is left
 * with nothing of it. */
static void ctx_close(tctx *t) {
  if (t->h) jobq__http_close(t->h, on_closed, t);
  t->h = NULL;
  assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(t->closed, 1);
  assert_int_equal(uv_loop_close(&t->loop), 0);
}

/* Options with quick retries, so that only Retry-After makes tests wait. */
static jobq__http_opts quick(const char *u) {
  jobq__http_opts o;
  memset(&o, 0, sizeof o);
  o.url = u;
  o.backoff_base_ms = 1;
  o.backoff_max_ms = 5;
  return o;
}

static jobq__http_req *start(tctx *t, const jobq__http_opts *o, got *g) {
  jobq__http_req *req = NULL;
  TAPI_OK(jobq__http_start(t->h, o, on_done, g, &req));
  assert_non_null(req);
  assert_int_equal(g->n, 0); /* never from inside start */
  return req;
}

static void run(tctx *t) { uv_run(&t->loop, UV_RUN_DEFAULT); }

/* One request, run to its end. */
static void fetch(tctx *t, const jobq__http_opts *o, got *g) {
  start(t, o, g);
  run(t);
  assert_int_equal(g->n, 1);
}

static json_t *body_json(const got *g) {
  json_error_t e;
  json_t *j = json_loadb(g->body, g->body_len, JSON_ALLOW_NUL, &e);
  if (j == NULL) fail_msg("body is not JSON (%s): %.*s", e.text, (int)g->body_len, g->body);
  return j;
}

/* /count of token: {"calls": n, "drops": n} */
static void server_count(tctx *t, const char *token, int *calls, int *drops) {
  char path[128], u[256];
  snprintf(path, sizeof path, "/count?of=%s", token);
  jobq__http_opts o = quick(url(u, sizeof u, path));
  got g = {0};
  fetch(t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  json_t *j = body_json(&g);
  if (calls) *calls = (int)json_integer_value(json_object_get(j, "calls"));
  if (drops) *drops = (int)json_integer_value(json_object_get(j, "drops"));
  json_decref(j);
  got_free(&g);
}

typedef struct later {
  uv_timer_t t;
  void (*fn)(void *ud);
  void *ud;
} later;

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_fire(uv_timer_t *t) {
  later *l = t->data;
  l->fn(l->ud);
  uv_close((uv_handle_t *)t, later_closed);
}

static void after_ms(uv_loop_t *loop, uint64_t ms, void (*fn)(void *), void *ud) {
  later *l = calloc(1, sizeof *l);
  assert_non_null(l);
  l->fn = fn;
  l->ud = ud;
  uv_timer_init(loop, &l->t);
  l->t.data = l;
  uv_timer_start(&l->t, later_fire, ms, 0);
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

/* A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
static int closed_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
  close(s);
  return ntohs(a.sin_port);
}

/* ---- requests that succeed ---- */

static void test_get_with_headers(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  const char *hdrs[] = {"X-Test: abc", "Accept: application/json"};
  jobq__http_opts o = quick(url(u, sizeof u, "/echo?x=1"));
  o.headers = hdrs;
  o.n_headers = 2;
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.tries, 1);
  assert_null(g.error);
  assert_string_equal(g.ctype, "application/json");
  json_t *j = body_json(&g);
  assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
  assert_string_equal(json_string_value(json_object_get(j, "query")), "x=1");
  json_t *h = json_object_get(j, "headers");
  assert_string_equal(json_string_value(json_object_get(h, "X-Test")), "abc");
  assert_string_equal(json_string_value(json_object_get(h, "Accept")), "application/json");
  json_decref(j);
  got_free(&g);
  ctx_close(&t);
}

static void test_post_and_methods(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  static const char body[] = "hello\0world, \xff bytes";
  size_t blen = sizeof body - 1;
  const char *hdrs[] = {"Content-Type: application/octet-stream"};
  jobq__http_opts o = quick(url(u, sizeof u, "/echo"));
  o.body = body;
  o.body_len = blen;
  o.headers = hdrs;
  o.n_headers = 1;
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  json_t *j = body_json(&g);
  assert_string_equal(json_string_value(json_object_get(j, "method")), "POST"); /* by default */
  assert_int_equal(json_integer_value(json_object_get(j, "body_len")), blen);
  assert_int_equal(json_integer_value(json_object_get(j, "body_crc32")),
                   crc32_of((const unsigned char *)body, blen));
  assert_string_equal(
      json_string_value(json_object_get(json_object_get(j, "headers"), "Content-Type")),
      "application/octet-stream");
  json_decref(j);
  got_free(&g);

  /* PATCH with a body, DELETE and POST without, HEAD. */
  static const char *const methods[] = {"PATCH", "DELETE", "POST"};
  for (size_t i = 0; i < 3; i++) {
    o = quick(url(u, sizeof u, "/echo"));
    o.method = methods[i];
    if (i == 0) {
      o.body = "{}";
      o.body_len = 2;
    }
    fetch(&t, &o, &g);
    assert_int_equal(g.rc, 0);
    j = body_json(&g);
    assert_string_equal(json_string_value(json_object_get(j, "method")), methods[i]);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), i == 0 ? 2 : 0);
    json_decref(j);
    got_free(&g);
  }
  o = quick(url(u, sizeof u, "/echo"));
  o.method = "HEAD";
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.body_len, 0);
  got_free(&g);
  ctx_close(&t);
}

/* ---- retries ---- */

static void test_retry_after_seconds(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/flaky?token=ra-s&fail=1&code=429&retry_after=1"));
  got g = {0};
  uint64_t t0 = now_ms();
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.tries, 2);
  assert_null(g.error);
  assert_int_equal(g.retry_after_ms, -1); /* waited for, so not passed on */
  /* backoff alone would have waited ~1 ms */
  assert_true(g.at_ms - t0 >= 950);
  got_free(&g);
  ctx_close(&t);
}

static void test_retry_after_date(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/flaky?token=ra-d&fail=1&code=503&retry_date=2"));
  got g = {0};
  uint64_t t0 = now_ms();
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.tries, 2);
  /* the date has whole seconds: now + 2 s rounded down is >= 1 s ahead */
  assert_true(g.at_ms - t0 >= 950);
  got_free(&g);
  ctx_close(&t);
}

static void test_retry_after_too_long(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/status/429?token=ra-l&retry_after=3600&msg=slow+down"));
  o.retry_after_max_ms = 1000;
  o.provider = "openai";
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 429);
  assert_int_equal(g.tries, 1);
  HAS(g.error, "openai: HTTP 429");
  HAS(g.error, "Retry-After 3600 s");
  HAS(g.error, "slow down");
  /* Passed on, so that the caller can push its job back by it. */
  assert_int_equal(g.retry_after_ms, 3600000);
  got_free(&g);
  ctx_close(&t);
}

static void test_500_until_max_tries(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/status/500?token=t500&msg=boom"));
  o.provider = "openai";
  o.max_tries = 3;
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 500);
  assert_int_equal(g.tries, 3);
  HAS(g.error, "openai: HTTP 500 after 3 tries: boom");
  HAS(g.body, "boom"); /* the last body is handed over too */
  got_free(&g);
  int calls = 0;
  server_count(&t, "t500", &calls, NULL);
  assert_int_equal(calls, 3);
  ctx_close(&t);
}

static void test_404_not_retried(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/status/404?token=t404&msg=no+such+model"));
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 404);
  assert_int_equal(g.tries, 1);
  HAS(g.error, "http: HTTP 404: no such model"); /* provider NULL: "http" */
  got_free(&g);
  int calls = 0;
  server_count(&t, "t404", &calls, NULL);
  assert_int_equal(calls, 1);
  ctx_close(&t);
}

static void test_connect_refused(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  int port = closed_port();
  char u[256], want[128];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/x", port);
  jobq__http_opts o = quick(u);
  o.provider = "anthropic";
  o.max_tries = 3;
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, JOBQ_ENETWORK);
  assert_int_equal(g.status, 0);
  assert_int_equal(g.tries, 3);
  snprintf(want, sizeof want, "anthropic: could not connect to 127.0.0.1:%d: ", port);
  HAS(g.error, want);
  HAS(g.error, "(after 3 tries)");
  got_free(&g);
  ctx_close(&t);
}

static void test_timeout(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/hang?ms=5000"));
  o.timeout_ms = 300;
  o.max_tries = 2;
  got g = {0};
  uint64_t t0 = now_ms();
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, JOBQ_ETIMEDOUT);
  assert_int_equal(g.status, 0);
  assert_int_equal(g.tries, 2); /* timeouts are retried */
  assert_true(g.at_ms - t0 >= 590);
  HAS(g.error, "no complete response from 127.0.0.1:");
  HAS(g.error, "within 300 ms (after 2 tries)");
  got_free(&g);
  ctx_close(&t);
}

static void test_too_big(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  /* over the limit, with and without Content-Length */
  static const char *const over[] = {"/big?bytes=100000", "/big?bytes=100000&chunked=1",
                                     "/big?bytes=1001&chunked=1"};
  for (size_t i = 0; i < 3; i++) {
    jobq__http_opts o = quick(url(u, sizeof u, over[i]));
    o.max_response = 1000;
    got g = {0};
    fetch(&t, &o, &g);
    assert_int_equal(g.rc, JOBQ_ETOOBIG);
    assert_int_equal(g.tries, 1);
    HAS(g.error, "longer than 1000 bytes");
    got_free(&g);
  }
  /* exactly at the limit */
  static const char *const at[] = {"/big?bytes=1000", "/big?bytes=1000&chunked=1"};
  for (size_t i = 0; i < 2; i++) {
    jobq__http_opts o = quick(url(u, sizeof u, at[i]));
    o.max_response = 1000;
    got g = {0};
    fetch(&t, &o, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.body_len, 1000);
    assert_int_equal(g.body[999], 'x');
    got_free(&g);
  }
  /* HEAD: the Content-Length announces a body that does not come */
  jobq__http_opts o = quick(url(u, sizeof u, "/big?bytes=100000"));
  o.max_response = 1000;
  o.method = "HEAD";
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.body_len, 0);
  got_free(&g);
  ctx_close(&t);
}

/* ---- abort and close ---- */

typedef struct abort_ctx {
  jobq__http_req *req;
  got *g;
  int n_at_return; /* g->n right after jobq__http_abort returned */
} abort_ctx;

static void do_abort(void *ud) {
  abort_ctx *a = ud;
  jobq__http_abort(a->req);
  a->n_at_return = a->g->n;
}

static void test_abort_in_flight(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/hang?ms=10000&token=ab"));
  got g = {0};
  abort_ctx a = {.g = &g};
  uint64_t t0 = now_ms();
  a.req = start(&t, &o, &g);
  after_ms(&t.loop, 300, do_abort, &a);
  run(&t);
  assert_int_equal(a.n_at_return, 1);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.rc, JOBQ_ECANCELLED);
  assert_true(g.at_ms - t0 < 10000); /* before the server would have answered */
  HAS(g.error, "cancelled");
  got_free(&g);
  /* the connection was dropped: the server saw it close */
  int drops = 0;
  for (int i = 0; i < 200 && drops == 0; i++) {
    server_count(&t, "ab", NULL, &drops);
    if (drops == 0) usleep(50 * 1000);
  }
  assert_int_equal(drops, 1);
  ctx_close(&t);
}

static void test_abort_waiting_retry(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/status/503?token=abw"));
  o.backoff_base_ms = 60000; /* the retry would wait >= 30 s */
  o.backoff_max_ms = 60000;
  got g = {0};
  abort_ctx a = {.g = &g};
  uint64_t t0 = now_ms();
  a.req = start(&t, &o, &g);
  after_ms(&t.loop, 300, do_abort, &a);
  run(&t); /* returns once nothing is pending: the retry timer is stopped */
  assert_int_equal(a.n_at_return, 1);
  assert_int_equal(g.rc, JOBQ_ECANCELLED);
  assert_int_equal(g.tries, 1);
  assert_true(now_ms() - t0 < 30000);
  got_free(&g);
  ctx_close(&t);
}

/* done of A aborts B, starts C and aborts A itself (a no-op in its own done). */
typedef struct chain {
  tctx *t;
  jobq__http_req *a, *b;
  got *gb, *gc;
  int b_done_inside;
  jobq__http_opts oc;
} chain;

static void chain_then(got *g, const jobq__http_resp *r) {
  (void)r;
  chain *c = g->ctx;
  jobq__http_abort(c->b);
  c->b_done_inside = c->gb->n;
  TAPI_OK(jobq__http_start(c->t->h, &c->oc, on_done, c->gc, NULL));
  jobq__http_abort(c->a);
}

static void test_reentrant_done(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char ua[256], ub[256], uc[256];
  got ga = {0}, gb = {0}, gc = {0};
  chain c = {.t = &t, .gb = &gb, .gc = &gc};
  c.oc = quick(url(uc, sizeof uc, "/echo?c=1"));
  ga.then = chain_then;
  ga.ctx = &c;
  jobq__http_opts ob = quick(url(ub, sizeof ub, "/hang?ms=10000"));
  c.b = start(&t, &ob, &gb);
  jobq__http_opts oa = quick(url(ua, sizeof ua, "/slow?ms=100"));
  c.a = start(&t, &oa, &ga);
  run(&t);
  assert_int_equal(ga.n, 1);
  assert_int_equal(ga.rc, 0);
  assert_int_equal(c.b_done_inside, 1);
  assert_int_equal(gb.n, 1);
  assert_int_equal(gb.rc, JOBQ_ECANCELLED);
  assert_int_equal(gc.n, 1);
  assert_int_equal(gc.rc, 0);
  assert_int_equal(gc.status, 200);
  got_free(&ga);
  got_free(&gb);
  got_free(&gc);
  ctx_close(&t);
}

#define N_CLOSE 7

typedef struct close_ctx {
  tctx *t;
  got g[N_CLOSE];
  int all_done_at_return;
  int closed_at_return;
} close_ctx;

static void do_close(void *ud) {
  close_ctx *c = ud;
  jobq__http_close(c->t->h, on_closed, c->t);
  c->t->h = NULL;
  c->all_done_at_return = 1;
  for (int i = 0; i < N_CLOSE; i++)
    if (c->g[i].n != 1 || c->g[i].rc != JOBQ_ECANCELLED) c->all_done_at_return = 0;
  c->closed_at_return = c->t->closed;
}

static void test_close_in_flight(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  close_ctx c = {.t = &t};
  char u[N_CLOSE][256];
  for (int i = 0; i < 5; i++) {
    jobq__http_opts o = quick(url(u[i], sizeof u[i], "/hang?ms=10000"));
    start(&t, &o, &c.g[i]);
  }
  jobq__http_opts o = quick(url(u[5], sizeof u[5], "/status/503"));
  o.backoff_base_ms = o.backoff_max_ms = 60000; /* waiting for its retry at close */
  start(&t, &o, &c.g[5]);
  o = quick(url(u[6], sizeof u[6], "/echo"));
  o.body_file = "/nonexistent-jobq-test-dir/none.bin";
  start(&t, &o, &c.g[6]); /* its failure is still pending when close comes */
  jobq__http_close(t.h, on_closed, &t);
  t.h = NULL;
  for (int i = 0; i < N_CLOSE; i++) {
    assert_int_equal(c.g[i].n, 1);
    assert_int_equal(c.g[i].rc, JOBQ_ECANCELLED);
  }
  assert_int_equal(t.closed, 0); /* only once the handles are closed */
  for (int i = 0; i < N_CLOSE; i++) got_free(&c.g[i]);
  ctx_close(&t);

  /* the same from a timer, with the transfers under way */
  ctx_open(&t);
  memset(&c, 0, sizeof c);
  c.t = &t;
  for (int i = 0; i < 6; i++) {
    jobq__http_opts oh = quick(url(u[i], sizeof u[i], i < 5 ? "/hang?ms=10000" : "/status/503"));
    if (i == 5) oh.backoff_base_ms = oh.backoff_max_ms = 60000;
    start(&t, &oh, &c.g[i]);
  }
  c.g[6].n = 1; /* unused here */
  c.g[6].rc = JOBQ_ECANCELLED;
  after_ms(&t.loop, 300, do_close, &c);
  uint64_t t0 = now_ms();
  assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
  assert_true(now_ms() - t0 < 10000); /* nothing waited for the hanging server */
  assert_int_equal(c.all_done_at_return, 1);
  assert_int_equal(c.closed_at_return, 0);
  assert_int_equal(t.closed, 1);
  assert_int_equal(uv_loop_close(&t.loop), 0);
  for (int i = 0; i < N_CLOSE; i++) got_free(&c.g[i]);
}

/* done closes the client; a start from there fails with JOBQ_ECLOSED. */
typedef struct close_from_done {
  tctx *t;
  got *other;
  int other_done_inside;
  int start_rc;
} close_from_done;

static void close_then(got *g, const jobq__http_resp *r) {
  (void)r;
  close_from_done *c = g->ctx;
  jobq__http *h = c->t->h;
  jobq__http_close(h, on_closed, c->t);
  c->t->h = NULL;
  c->other_done_inside = c->other->n;
  jobq__http_close(h, on_closed, c->t); /* a second close is ignored */
  jobq__http_opts o = quick("http://127.0.0.1:1/");
  c->start_rc = jobq__http_start(h, &o, on_done, c->other, NULL);
}

static void test_close_from_done(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char ua[256], ub[256];
  got ga = {0}, gb = {0};
  close_from_done c = {.t = &t, .other = &gb};
  ga.then = close_then;
  ga.ctx = &c;
  jobq__http_opts ob = quick(url(ub, sizeof ub, "/hang?ms=10000"));
  start(&t, &ob, &gb);
  jobq__http_opts oa = quick(url(ua, sizeof ua, "/slow?ms=100"));
  start(&t, &oa, &ga);
  assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(ga.rc, 0);
  assert_int_equal(c.other_done_inside, 1);
  assert_int_equal(gb.n, 1);
  assert_int_equal(gb.rc, JOBQ_ECANCELLED);
  assert_int_equal(c.start_rc, JOBQ_ECLOSED);
  assert_int_equal(t.closed, 1);
  assert_int_equal(uv_loop_close(&t.loop), 0);
  got_free(&ga);
  got_free(&gb);
}

/* ---- many at once ---- */

#define N_MANY 200

static void test_many_concurrent(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  got *g = calloc(N_MANY, sizeof *g);
  assert_non_null(g);
  jobq__http_opts o = quick(url(u, sizeof u, "/slow?ms=200"));
  o.max_tries = 1; /* each must succeed on its own, not by retrying */
  for (int i = 0; i < N_MANY; i++) start(&t, &o, &g[i]);
  run(&t);
  for (int i = 0; i < N_MANY; i++) {
    assert_int_equal(g[i].n, 1);
    if (g[i].rc != 0 || g[i].status != 200)
      fail_msg("request %d: rc %d status %ld: %s", i, g[i].rc, g[i].status,
               g[i].error ? g[i].error : "");
    assert_string_equal(g[i].body, "ok");
    got_free(&g[i]);
  }
  free(g);
  ctx_close(&t);
}

/* ---- secrets ---- */

static void test_secrets_redacted(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  const char *key = "sk-test-0123456789abcdef";
  const char *hdrs[] = {"Authorization: Bearer sk-test-0123456789abcdef"};
  const char *secrets[] = {key};
  jobq__http_opts o = quick(url(u, sizeof u, "/auth"));
  o.provider = "openai";
  o.headers = hdrs;
  o.n_headers = 1;
  o.secrets = secrets;
  o.n_secrets = 1;
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 401);
  HAS(g.body, key); /* the server did echo it */
  HAS(g.error, "openai: HTTP 401: invalid credentials: Bearer [redacted]");
  HAS_NOT(g.error, key);
  HAS_NOT(g.error, "0123456789");
  got_free(&g);

  /* userpwd: the whole, the password and the Basic header's base64 */
  const char *userpwd = "alice:pw-S3cr3t-xyz";
  char b64[64];
  assert_int_equal(jobq__http_base64(b64, sizeof b64, userpwd, strlen(userpwd)), 0);
  o = quick(url(u, sizeof u, "/auth"));
  o.provider = "s3";
  o.userpwd = userpwd;
  fetch(&t, &o, &g);
  assert_int_equal(g.status, 401);
  HAS(g.body, b64);
  HAS(g.body, userpwd);
  HAS(g.error, "s3: HTTP 401: invalid credentials: Basic [redacted] ([redacted])");
  HAS_NOT(g.error, "S3cr3t");
  HAS_NOT(g.error, b64);
  got_free(&g);
  ctx_close(&t);
}

/* ---- bad input ---- */

static void test_bad_input(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  url(u, sizeof u, "/echo");
  got g = {0};
  jobq__http_req *req = (jobq__http_req *)&g; /* must be reset to NULL */
  jobq__http_opts o = quick(NULL);
  TAPI_ERR(JOBQ_EINVAL, "no url", jobq__http_start(t.h, &o, on_done, &g, &req));
  assert_null(req);
  o.provider = "openai";
  TAPI_ERR(JOBQ_EINVAL, "openai: no url", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.url = "";
  TAPI_ERR(JOBQ_EINVAL, "no url", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.url = "ftp://127.0.0.1/x";
  TAPI_ERR(JOBQ_EINVAL, "scheme", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.url = "http://[bad";
  TAPI_ERR(JOBQ_EINVAL, "malformed", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.url = u;
  o.method = "FETCH";
  TAPI_ERR(JOBQ_EINVAL, "method", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.method = "GET";
  o.body = "x";
  o.body_len = 1;
  TAPI_ERR(JOBQ_EINVAL, "body", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.method = NULL;
  o.body_file = "/etc/hostname";
  TAPI_ERR(JOBQ_EINVAL, "both", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.body_file = NULL;
  o.body = NULL;
  TAPI_ERR(JOBQ_EINVAL, "body", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.body_len = 0;
  const char *crlf[] = {"X-A: 1\r\nX-Injected: 2"};
  o.headers = crlf;
  o.n_headers = 1;
  TAPI_ERR(JOBQ_EINVAL, "header 0", jobq__http_start(t.h, &o, on_done, &g, NULL));
  const char *nocolon[] = {"X-A: 1", "just words"};
  o.headers = nocolon;
  o.n_headers = 2;
  TAPI_ERR(JOBQ_EINVAL, "header 1", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.headers = NULL;
  TAPI_ERR(JOBQ_EINVAL, "headers is NULL", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.n_headers = 0;
  o.timeout_ms = -1;
  TAPI_ERR(JOBQ_EINVAL, "negative", jobq__http_start(t.h, &o, on_done, &g, NULL));
  o.timeout_ms = 0;
  TAPI_ERR(JOBQ_EINVAL, "NULL", jobq__http_start(t.h, &o, NULL, &g, NULL));
  TAPI_ERR(JOBQ_EINVAL, "NULL", jobq__http_start(t.h, NULL, on_done, &g, NULL));
  TAPI_ERR(JOBQ_EINVAL, "NULL", jobq__http_start(NULL, &o, on_done, &g, NULL));
  jobq__http *h2 = (jobq__http *)&g;
  TAPI_ERR(JOBQ_EINVAL, "NULL", jobq__http_new(NULL, &h2));
  assert_null(h2);
  jobq__http_abort(NULL);
  jobq__http_close(NULL, NULL, NULL);
  run(&t);
  assert_int_equal(g.n, 0); /* done never called */
  ctx_close(&t);
}

/* ---- body_file ---- */

static char *write_temp(size_t n, uint32_t *crc) {
  char *path = strdup("/tmp/jobq-http-test-XXXXXX");
  assert_non_null(path);
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unsigned char *b = malloc(n);
  assert_non_null(b);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (unsigned char)x;
  }
  assert_int_equal(write(fd, b, n), (ssize_t)n);
  close(fd);
  *crc = crc32_of(b, n);
  free(b);
  return path;
}

static void test_put_file(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  uint32_t crc;
  size_t size = 1536 * 1024 + 7;
  char *path = write_temp(size, &crc);
  char u[256];
  /* the first try fails after the upload: the file is sent again */
  jobq__http_opts o = quick(url(u, sizeof u, "/flaky?token=pf&fail=1&code=503"));
  o.body_file = path;
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.tries, 2);
  json_t *j = body_json(&g);
  assert_string_equal(json_string_value(json_object_get(j, "method")), "PUT");
  assert_int_equal(json_integer_value(json_object_get(j, "body_len")), size);
  assert_int_equal(json_integer_value(json_object_get(j, "body_crc32")), crc);
  json_decref(j);
  got_free(&g);

  /* another method and an empty file */
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fclose(f);
  o = quick(url(u, sizeof u, "/echo"));
  o.method = "POST";
  o.body_file = path;
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  j = body_json(&g);
  assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
  assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 0);
  json_decref(j);
  got_free(&g);
  unlink(path);
  free(path);
  ctx_close(&t);
}

static void test_missing_file(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/echo?token=mf"));
  o.provider = "s3";
  o.body_file = "/nonexistent-jobq-test-dir/artifact.mp3";
  got g = {0};
  start(&t, &o, &g); /* start succeeds; done reports it */
  run(&t);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.rc, JOBQ_EIO);
  assert_int_equal(g.tries, 0);
  assert_int_equal(g.status, 0);
  HAS(g.error, "s3: cannot read body_file /nonexistent-jobq-test-dir/artifact.mp3: ");
  got_free(&g);
  int calls = -1;
  server_count(&t, "mf", &calls, NULL);
  assert_int_equal(calls, 0);

  /* a directory is no file either, and abort before the report works */
  o.body_file = "/tmp";
  abort_ctx a = {.g = &g};
  a.req = start(&t, &o, &g);
  do_abort(&a);
  assert_int_equal(a.n_at_return, 1);
  assert_int_equal(g.rc, JOBQ_ECANCELLED);
  run(&t);
  assert_int_equal(g.n, 1);
  got_free(&g);
  ctx_close(&t);
}

/* ---- user-chosen URLs: refuse_internal, redirects, keep_response ---- */

static jobq__addr_allow *allow_of(const char *text) {
  jobq__addr_allow *l = NULL;
  TAPI_OK(jobq__addr_allow_parse(text, &l));
  return l;
}

/* A refused request: rc, flag, sentence, one try, and not one request of
 * token reached the server. */
static void expect_refused(tctx *t, const jobq__http_opts *o, const char *token, const char *says) {
  got g = {0};
  fetch(t, o, &g);
  assert_int_equal(g.rc, JOBQ_ENETWORK);
  assert_int_equal(g.refused, 1);
  assert_int_equal(g.status, 0);
  assert_int_equal(g.tries, 1); /* the same name resolves the same: no retry */
  HAS(g.error, says);
  HAS(g.error, "which is refused; add it to the allow-list to permit it");
  got_free(&g);
  int calls = -1;
  server_count(t, token, &calls, NULL);
  assert_int_equal(calls, 0);
}

static int peer_port(const got *g) {
  json_t *j = body_json(g);
  int port = (int)json_integer_value(json_object_get(j, "peer_port"));
  json_decref(j);
  return port;
}

/* A client for checked requests only (the webhook sender's) keeps its
 * connections: every one was opened by a checked request under the one
 * allow-list. It refuses unchecked requests, and its allow-list, not the
 * request's, decides. A checked request on an ordinary client takes a fresh
 * connection each time. */
static void test_checked_client(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  jobq__addr_allow *lo = allow_of("127.0.0.1");
  /* ordinary client: fresh connections */
  got a = {0}, b = {0};
  jobq__http_opts o = quick(url(u, sizeof u, "/echo?token=cc-0"));
  o.refuse_internal = 1;
  o.allow = lo;
  fetch(&t, &o, &a);
  fetch(&t, &o, &b);
  assert_int_equal(a.status, 200);
  assert_int_equal(b.status, 200);
  assert_int_not_equal(peer_port(&a), peer_port(&b));
  got_free(&a);
  got_free(&b);
  ctx_close(&t);

  ctx_open(&t);
  TAPI_OK(jobq__http_checked_only(t.h, lo));
  /* an unchecked request is refused at start */
  jobq__http_opts plain = quick(url(u, sizeof u, "/echo?token=cc-1"));
  got g = {0};
  TAPI_ERR(JOBQ_EINVAL, "http", jobq__http_start(t.h, &plain, on_done, &g, NULL));
  TAPI_ERR_HAS("refuse internal addresses");
  /* the client's allow-list decides: a request naming none still goes */
  o = quick(url(u, sizeof u, "/echo?token=cc-2"));
  o.refuse_internal = 1;
  fetch(&t, &o, &a);
  fetch(&t, &o, &b);
  assert_int_equal(a.status, 200);
  assert_int_equal(b.status, 200);
  assert_int_equal(peer_port(&a), peer_port(&b)); /* one connection, kept */
  got_free(&a);
  got_free(&b);
  TAPI_ERR(JOBQ_ESTATE, "http", jobq__http_checked_only(t.h, lo)); /* too late once used */
  ctx_close(&t);

  /* ... and a checked client without 127.0.0.1 allowed refuses it, however
   * the request's own allow-list reads */
  ctx_open(&t);
  TAPI_OK(jobq__http_checked_only(t.h, NULL));
  o = quick(url(u, sizeof u, "/echo?token=cc-3"));
  o.refuse_internal = 1;
  o.allow = lo;
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, JOBQ_ENETWORK);
  assert_int_equal(g.refused, 1);
  HAS(g.error, "resolved to 127.0.0.1 (loopback)");
  got_free(&g);
  ctx_close(&t);
  ctx_open(&t); /* an ordinary client asks the server: nothing arrived */
  int calls = -1;
  server_count(&t, "cc-3", &calls, NULL);
  assert_int_equal(calls, 0);
  ctx_close(&t);
  jobq__addr_allow_free(lo);
}

static void test_refuse_internal(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256], want[256];
  jobq__http_opts o = quick(url(u, sizeof u, "/echo?token=ri-1"));
  o.provider = "webhook";
  o.refuse_internal = 1;
  expect_refused(&t, &o, "ri-1", "webhook: the host '127.0.0.1' resolved to 127.0.0.1 (loopback)");

  /* an allow-list that does not name it changes nothing */
  jobq__addr_allow *other = allow_of("10.0.0.0/8, ::1");
  o.allow = other;
  expect_refused(&t, &o, "ri-1", "resolved to 127.0.0.1 (loopback)");

  /* a name, not an address: refused on what it resolves to */
  snprintf(u, sizeof u, "http://localhost:%d/echo?token=ri-2", g_port);
  o = quick(u);
  o.provider = "webhook";
  o.refuse_internal = 1;
  expect_refused(&t, &o, "ri-2", "webhook: the host 'localhost' resolved to ");

  /* an IPv6 literal */
  snprintf(u, sizeof u, "http://[::1]:%d/echo?token=ri-3", g_port);
  o.url = u;
  expect_refused(&t, &o, "ri-3", "resolved to ::1 (loopback)");

  /* a connection left open by a request without the check is not reused */
  jobq__http_opts plain = quick(url(u, sizeof u, "/echo?token=ri-4"));
  got g = {0};
  fetch(&t, &plain, &g);
  assert_int_equal(g.status, 200);
  got_free(&g);
  o.url = u;
  jobq__http_start(t.h, &o, on_done, &g, NULL);
  run(&t);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.refused, 1);
  got_free(&g);
  int calls = 0;
  server_count(&t, "ri-4", &calls, NULL);
  assert_int_equal(calls, 1); /* the plain request only */

  /* allowed: delivered, once */
  jobq__addr_allow *lo = allow_of("127.0.0.1");
  o = quick(url(u, sizeof u, "/echo?token=ri-5"));
  o.provider = "webhook";
  o.refuse_internal = 1;
  o.allow = lo;
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.refused, 0);
  assert_null(g.error);
  got_free(&g);
  server_count(&t, "ri-5", &calls, NULL);
  assert_int_equal(calls, 1);

  /* localhost with 127.0.0.1 allowed: its ::1 (if any) is refused, its
   * 127.0.0.1 used, and the refusal of the other address is no error */
  snprintf(u, sizeof u, "http://localhost:%d/echo?token=ri-6", g_port);
  o.url = u;
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, 0);
  assert_int_equal(g.status, 200);
  assert_int_equal(g.refused, 0);
  assert_null(g.error);
  got_free(&g);

  /* the allow-list is copied: freeing it after start is fine */
  jobq__addr_allow *tmp = allow_of("127.0.0.0/8");
  o = quick(url(u, sizeof u, "/status/404?token=ri-7"));
  o.refuse_internal = 1;
  o.allow = tmp;
  start(&t, &o, &g);
  jobq__addr_allow_free(tmp);
  run(&t);
  assert_int_equal(g.status, 404);
  HAS_NOT(g.error, "refused"); /* the note is no part of an HTTP error */
  got_free(&g);

  /* a proxy of the environment is not used: it would pick the address */
  snprintf(want, sizeof want, "http://127.0.0.1:%d", g_port);
  setenv("http_proxy", want, 1);
  o = quick("http://192.0.2.1/echo?token=ri-8");
  o.provider = "webhook";
  o.refuse_internal = 1;
  o.allow = lo;
  expect_refused(&t, &o, "ri-8", "resolved to 192.0.2.1 (reserved)");
  unsetenv("http_proxy");

  jobq__addr_allow_free(other);
  jobq__addr_allow_free(lo);
  ctx_close(&t);
}

static void test_redirect_not_followed(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[512], to[128], path[256];
  url(to, sizeof to, "/echo?token=rd-target");
  snprintf(path, sizeof path, "/redirect?to=%s", to);
  jobq__addr_allow *lo = allow_of("127.0.0.1");
  for (int checked = 0; checked < 2; checked++) {
    jobq__http_opts o = quick(url(u, sizeof u, path));
    o.refuse_internal = checked;
    o.allow = lo;
    got g = {0};
    fetch(&t, &o, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.status, 302); /* the final status */
    assert_int_equal(g.tries, 1);
    assert_string_equal(g.body, "moved");
    got_free(&g);
  }
  int calls = -1;
  server_count(&t, "rd-target", &calls, NULL);
  assert_int_equal(calls, 0);
  jobq__addr_allow_free(lo);
  ctx_close(&t);
}

static void test_keep_response(void **state) {
  (void)state;
  tctx t;
  ctx_open(&t);
  char u[256];
  for (int chunked = 0; chunked < 2; chunked++) {
    jobq__http_opts o = quick(url(u, sizeof u, chunked ? "/big?bytes=300000&chunked=1"
                                                        : "/big?bytes=300000"));
    o.keep_response = 100;
    got g = {0};
    fetch(&t, &o, &g);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.body_len, 100);
    assert_int_equal(g.body_cut, 1);
    assert_int_equal(strspn(g.body, "x"), 100);
    got_free(&g);
  }
  /* a body that fits is whole and not marked */
  jobq__http_opts o = quick(url(u, sizeof u, "/big?bytes=100"));
  o.keep_response = 100;
  got g = {0};
  fetch(&t, &o, &g);
  assert_int_equal(g.body_len, 100);
  assert_int_equal(g.body_cut, 0);
  got_free(&g);
  /* max_response still bounds what is read */
  o = quick(url(u, sizeof u, "/big?bytes=300000&chunked=1"));
  o.keep_response = 100;
  o.max_response = 1000;
  o.max_tries = 1;
  fetch(&t, &o, &g);
  assert_int_equal(g.rc, JOBQ_ETOOBIG);
  got_free(&g);
  ctx_close(&t);
}

int main(void) {
  /* Requests to 127.0.0.1 must not go through a proxy of the environment. */
  static const char *const proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy",
                                        "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
  for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) unsetenv(proxies[i]);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_input),
    cmocka_unit_test(test_get_with_headers),
    cmocka_unit_test(test_post_and_methods),
    cmocka_unit_test(test_retry_after_seconds),
    cmocka_unit_test(test_retry_after_date),
    cmocka_unit_test(test_retry_after_too_long),
    cmocka_unit_test(test_500_until_max_tries),
    cmocka_unit_test(test_404_not_retried),
    cmocka_unit_test(test_connect_refused),
    cmocka_unit_test(test_timeout),
    cmocka_unit_test(test_too_big),
    cmocka_unit_test(test_abort_in_flight),
    cmocka_unit_test(test_abort_waiting_retry),
    cmocka_unit_test(test_reentrant_done),
    cmocka_unit_test(test_close_in_flight),
    cmocka_unit_test(test_close_from_done),
    cmocka_unit_test(test_many_concurrent),
    cmocka_unit_test(test_secrets_redacted),
    cmocka_unit_test(test_put_file),
    cmocka_unit_test(test_missing_file),
    cmocka_unit_test(test_refuse_internal),
    cmocka_unit_test(test_checked_client),
    cmocka_unit_test(test_redirect_not_followed),
    cmocka_unit_test(test_keep_response),
  };
  return cmocka_run_group_tests(tests, fixture_start, fixture_stop);
}
