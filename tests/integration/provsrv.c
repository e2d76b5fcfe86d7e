/* Local provider servers for the integration tests: see provsrv.h. */
#define _GNU_SOURCE /* pipe2 */
#include "provsrv.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PROVSRV_START_TIMEOUT_MS 20000
#define PROVSRV_STOP_TIMEOUT_MS 3000

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* tests/servers of the source tree: $JOBQ_SOURCE_DIR, else a parent of the
 * working directory (build/tests/integration lies three levels below). */
static int servers_dir(char *buf, size_t len) {
  const char *src = getenv("JOBQ_SOURCE_DIR");
  if (src != NULL && src[0] != '\0') {
    snprintf(buf, len, "%s/tests/servers", src);
    if (is_dir(buf)) return 0;
    fprintf(stderr, "provsrv: %s is not a directory (JOBQ_SOURCE_DIR)\n", buf);
    return -1;
  }
  const char *up[] = {".", "..", "../..", "../../..", "../../../.."};
  for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) {
    snprintf(buf, len, "%s/tests/servers/providers.py", up[i]);
    if (is_file(buf)) {
      snprintf(buf, len, "%s/tests/servers", up[i]);
      return 0;
    }
  }
  fprintf(stderr, "provsrv: tests/servers not found: set JOBQ_SOURCE_DIR to the source directory\n");
  return -1;
}

static int in_path(const char *prog) {
  const char *path = getenv("PATH");
  if (path == NULL) path = "/usr/bin:/bin";
  while (*path) {
    size_t n = strcspn(path, ":");
    if (n > 0 && n < 4000) {
      char p[4200];
      snprintf(p, sizeof p, "%.*s/%s", (int)n, path, prog);
      if (access(p, X_OK) == 0) return 1;
    }
    path += n;
    if (*path == ':') path++;
  }
  return 0;
}

/* Reads the first line of fd within timeout_ms into buf. 0, or -1. */
static int read_line(int fd, char *buf, size_t len, long timeout_ms) {
  size_t used = 0;
  long deadline = now_ms() + timeout_ms;
  while (used + 1 < len) {
    long left = deadline - now_ms();
    if (left <= 0) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    char c;
    ssize_t got = read(fd, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return -1;
    if (c == '\n') break;
    buf[used++] = c;
  }
  buf[used] = '\0';
  return 0;
}

static void reap(pid_t pid, long timeout_ms) {
  long deadline = now_ms() + timeout_ms;
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return;
    if (now_ms() >= deadline) break;
    usleep(10 * 1000);
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

int provsrv_start(const char *script, const char *const *extra_args, provsrv_t *out) {
  memset(out, 0, sizeof *out);
  out->pid = -1;
  out->stdin_fd = -1;
  out->stdout_fd = -1;

  static int curl_ready;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      fprintf(stderr, "provsrv: curl_global_init failed\n");
      return -1;
    }
    curl_ready = 1;
  }

  char dir[2048], path[2400];
  if (servers_dir(dir, sizeof dir) != 0) return -1;
  snprintf(path, sizeof path, "%s/%s", dir, script);
  if (!is_file(path)) {
    fprintf(stderr, "provsrv: no server %s\n", path);
    return -1;
  }
  size_t slen = strlen(script);
  const char *interp;
  if (slen > 3 && strcmp(script + slen - 3, ".py") == 0) {
    interp = "python3";
  } else if (slen > 3 && strcmp(script + slen - 3, ".js") == 0) {
    interp = "node";
    char mods[2600];
    snprintf(mods, sizeof mods, "%s/node_modules/@20minutes/s3rver/package.json", dir);
    if (!is_file(mods)) {
      fprintf(stderr, "provsrv: %s needs its npm packages: run tests/servers/install.sh\n", script);
      return -2;
    }
    if (!in_path("node")) {
      fprintf(stderr, "provsrv: %s needs node, which is not on PATH\n", script);
      return -2;
    }
  } else {
    fprintf(stderr, "provsrv: no interpreter known for %s\n", script);
    return -1;
  }

  const char *argv[40];
  size_t argc = 0;
  argv[argc++] = interp;
  argv[argc++] = path;
  for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
    if (argc + 2 > sizeof argv / sizeof argv[0]) {
      fprintf(stderr, "provsrv: too many arguments\n");
      return -1;
    }
    argv[argc++] = extra_args[i];
  }
  argv[argc] = NULL;

  /* Close-on-exec everywhere: only the child's own ends, dup2()ed to 0 and
   * 1, survive its exec, so no other child holds the stdin pipe open. */
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    fprintf(stderr, "provsrv: pipe: %s\n", strerror(errno));
    return -1;
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    fprintf(stderr, "provsrv: pipe: %s\n", strerror(errno));
    close(in_pipe[0]);
    close(in_pipe[1]);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
  pid_t pid;
  int rc = posix_spawnp(&pid, interp, &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (rc != 0) {
    fprintf(stderr, "provsrv: cannot run %s: %s\n", interp, strerror(rc));
    close(in_pipe[1]);
    close(out_pipe[0]);
    return strcmp(interp, "node") == 0 && rc == ENOENT ? -2 : -1;
  }
  out->pid = pid;
  out->stdin_fd = in_pipe[1];
  out->stdout_fd = out_pipe[0];

  char line[128];
  int port = 0;
  if (read_line(out->stdout_fd, line, sizeof line, PROVSRV_START_TIMEOUT_MS) != 0 ||
      sscanf(line, "PORT %d", &port) != 1 || port <= 0 || port > 65535) {
    fprintf(stderr, "provsrv: %s did not report its port\n", script);
    provsrv_stop(out);
    return -1;
  }
  out->port = port;
  snprintf(out->base_url, sizeof out->base_url, "http://127.0.0.1:%d", port);
  return 0;
}

void provsrv_stop(provsrv_t *srv) {
  if (srv == NULL) return;
  if (srv->stdin_fd >= 0) close(srv->stdin_fd);
  srv->stdin_fd = -1;
  if (srv->pid > 0) reap(srv->pid, PROVSRV_STOP_TIMEOUT_MS);
  srv->pid = -1;
  if (srv->stdout_fd >= 0) close(srv->stdout_fd);
  srv->stdout_fd = -1;
}

/* ---- HTTP ------------------------------------------------------------------ */

typedef struct {
  char *data;
  size_t len;
} provsrv_buf_t;

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
  provsrv_buf_t *b = ud;
  size_t add = size * n;
  char *d = realloc(b->data, b->len + add + 1);
  if (d == NULL) return 0;
  memcpy(d + b->len, p, add);
  b->len += add;
  d[b->len] = '\0';
  b->data = d;
  return add;
}

/* One request; returns the HTTP status or -1. */
static long request(const provsrv_t *srv, const char *method, const char *path,
                    const char *body, char **out_body) {
  if (out_body != NULL) *out_body = NULL;
  CURL *c = curl_easy_init();
  if (c == NULL) return -1;
  char url[1024];
  snprintf(url, sizeof url, "%s%s", srv->base_url, path);
  provsrv_buf_t buf = {NULL, 0};
  struct curl_slist *h = NULL;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
  if (strcmp(method, "POST") == 0) {
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
  }
  CURLcode rc = curl_easy_perform(c);
  long status = -1;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  } else {
    fprintf(stderr, "provsrv: %s %s: %s\n", method, url, curl_easy_strerror(rc));
  }
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  if (status >= 0 && out_body != NULL) {
    *out_body = buf.data != NULL ? buf.data : strdup("");
  } else {
    free(buf.data);
  }
  return status;
}

int provsrv_post(const provsrv_t *srv, const char *path, const char *json_body, char **out_body) {
  return (int)request(srv, "POST", path, json_body, out_body);
}

int provsrv_get(const provsrv_t *srv, const char *path, char **out_body, long *out_status) {
  long st = request(srv, "GET", path, NULL, out_body);
  if (out_status != NULL) *out_status = st;
  return st < 0 ? -1 : 0;
}

static int control(const provsrv_t *srv, const char *path, json_t *body) {
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (text == NULL) return -1;
  char *resp = NULL;
  int st = provsrv_post(srv, path, text, &resp);
  if (st != 200) fprintf(stderr, "provsrv: POST %s: %d %s\n", path, st, resp != NULL ? resp : "");
  free(text);
  free(resp);
  return st == 200 ? 0 : -1;
}

int provsrv_fault(const provsrv_t *srv, const char *route, const char *fault_json) {
  json_error_t err;
  json_t *f = json_loads(fault_json, 0, &err);
  if (f == NULL || !(json_is_object(f) || json_is_array(f))) {
    fprintf(stderr, "provsrv: fault is not a JSON object or array: %s\n", fault_json);
    json_decref(f);
    return -1;
  }
  if (json_is_object(f)) {
    json_t *a = json_array();
    json_array_append_new(a, f);
    f = a;
  }
  return control(srv, "/_faults", json_pack("{s:s, s:o}", "route", route, "faults", f));
}

int provsrv_default_delay(const provsrv_t *srv, const char *route, long delay_ms) {
  return control(srv, "/_faults",
                 json_pack("{s:s, s:I}", "route", route, "default_delay_ms", (json_int_t)delay_ms));
}

int provsrv_reset(const provsrv_t *srv) {
  return control(srv, "/_reset", json_object());
}

int provsrv_count(const provsrv_t *srv, const char *route) {
  char *body = NULL;
  long st;
  if (provsrv_get(srv, "/_stats", &body, &st) != 0 || st != 200) {
    free(body);
    return -1;
  }
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  json_t *n = json_object_get(j, route);
  int count = json_is_integer(n) ? (int)json_integer_value(n) : -1;
  json_decref(j);
  return count;
}

char *provsrv_requests(const provsrv_t *srv, const char *route) {
  char path[128];
  snprintf(path, sizeof path, "/_requests?route=%s", route);
  char *body = NULL;
  long st;
  if (provsrv_get(srv, path, &body, &st) != 0 || st != 200) {
    free(body);
    return NULL;
  }
  return body;
}
