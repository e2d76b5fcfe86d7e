/* lib/net/http.c over TLS: peers are always verified. A self-signed
 * certificate made for 127.0.0.1 (openssl, at test time) is refused unless
 * the request names it as its CA file, and never for another host name. A
 * failed verification is not retried (it would fail the same way). */
#include "testutil.h"

#include "net/http.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

static char dir[64];
static char cert[128], key[128];
static pid_t pid = -1;
static int srv_stdin = -1;
static int port;

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/jobq-tls-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
           "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1",
           key, cert);
  if (system(cmd) != 0) {
    print_error("openssl could not make a certificate\n");
    return -1;
  }
  const char *src = getenv("JOBQ_SOURCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/servers/http_fixture.py", src && *src ? src : "../../..");
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return -1;
  fcntl(in[1], F_SETFD, FD_CLOEXEC);
  fcntl(out[0], F_SETFD, FD_CLOEXEC);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  char *argv[] = {"python3", path, "--tls", cert, key, NULL};
  int rc = posix_spawnp(&pid, "python3", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  if (rc != 0) return -1;
  srv_stdin = in[1];
  FILE *f = fdopen(out[0], "r");
  char line[64] = "";
  if (f == NULL || fgets(line, sizeof line, f) == NULL || sscanf(line, "PORT %d", &port) != 1) {
    print_error("http_fixture.py --tls did not print its port\n");
    return -1;
  }
  fclose(f);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (srv_stdin >= 0) close(srv_stdin);
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  unlink(cert);
  unlink(key);
  rmdir(dir);
  return 0;
}

typedef struct seen {
  int n, rc, tries;
  long status;
  char error[512];
} seen;

static void on_done(void *ud, const jobq__http_resp *r) {
  seen *s = ud;
  s->n++;
  s->rc = r->rc;
  s->status = r->status;
  s->tries = r->tries;
  snprintf(s->error, sizeof s->error, "%s", r->error ? r->error : "");
}

/* One GET on a fresh loop; returns what done saw. */
static seen get(const char *host, const char *ca_file) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  jobq__http *h = NULL;
  assert_int_equal(jobq__http_new(&loop, &h), 0);
  char url[256];
  snprintf(url, sizeof url, "https://%s:%d/status/200", host, port);
  jobq__http_opts o = {0};
  o.provider = "tlstest";
  o.url = url;
  o.max_tries = 3;
  o.backoff_base_ms = 10;
  o.ca_file = ca_file;
  seen s = {0};
  assert_int_equal(jobq__http_start(h, &o, on_done, &s, NULL), 0);
  while (s.n == 0) uv_run(&loop, UV_RUN_ONCE);
  jobq__http_close(h, NULL, NULL);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  return s;
}

static void test_self_signed_refused(void **state) {
  (void)state;
  seen s = get("127.0.0.1", NULL);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.rc, JOBQ_ENETWORK);
  assert_int_equal(s.status, 0);
  assert_int_equal(s.tries, 1); /* not retried */
  assert_non_null(strstr(s.error, "tlstest"));
  if (strstr(s.error, "certificate") == NULL && strstr(s.error, "SSL") == NULL)
    fail_msg("error does not say why: %s", s.error);
}

static void test_trusted_with_ca_file(void **state) {
  (void)state;
  seen s = get("127.0.0.1", cert);
  assert_int_equal(s.rc, 0);
  assert_int_equal(s.status, 200);
  assert_int_equal(s.tries, 1);
}

/* The certificate is for 127.0.0.1 only: "localhost" does not match it,
 * CA file or not (the host name is checked too). */
static void test_wrong_host_refused(void **state) {
  (void)state;
  seen s = get("localhost", cert);
  assert_int_equal(s.rc, JOBQ_ENETWORK);
  assert_int_equal(s.tries, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_self_signed_refused),
    cmocka_unit_test(test_trusted_with_ca_file),
    cmocka_unit_test(test_wrong_host_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
