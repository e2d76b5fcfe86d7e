/* pipeline_bench: figures of libjobq's pipelines (jobq/stages.h). A program,
 * not a test: it prints one line per figure and never fails on a slow machine.
 *
 *   pipeline_bench [--storage URL] [--jobs N] [--only NAME] [--source-dir DIR]
 *
 * --storage: default sqlite:/tmp/pipeline-bench.db, its files deleted before
 * each queue opens. --source-dir: where tests/servers/providers.py and
 * examples/podcast-inputs/ are; default $JOBQ_SOURCE_DIR, else ".". Work
 * directories and uploads go to a temporary directory, removed at exit.
 *
 *   stage_overhead_<storage>  one job at a time (submit, jobq_wait until
 *     terminal; --jobs, default 2000): a plain on-loop handler against 10 no-op
 *     host stages, all on-loop or all blocking; per stage = (pipeline - plain)
 *     / 10, checkpoint included. On --storage and memory:. Target < 1 ms.
 *   concurrent_2s  --jobs (default 200) one-stage pipelines (script, openai)
 *     against providers.py answering after 2,000 ms, submitted at once: time
 *     until all are terminal. Target < 3 s.
 *   espeak_speed_{wav,mp3,podcast}  audio seconds per wall second of the tts
 *     stage (espeak) on a 10-turn dialogue, and of the offline podcast pipeline
 *     (template, espeak wav, local upload) on bridge-inspection.txt. */
/* jobq-test-requires: espeak lame (left out of builds without them) */
#define _GNU_SOURCE /* pipe2, nftw */
#include <jobq.h>
#include <jobq/stages.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define OPENAI_KEY "sk-bench-0123456789abcdef"

static const char *storage = "sqlite:/tmp/pipeline-bench.db";
static long n_jobs = -1; /* -1: each figure's default */
static const char *only;
static const char *source_dir = ".";
static char tmpdir[] = "/tmp/pipeline-bench-XXXXXX";

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "pipeline_bench: %s: %s\n", what, jobq_last_error());
  exit(1);
}

static int want(const char *name) { return only == NULL || strstr(name, only) != NULL; }

/* "sqlite:" storage: deletes the database and its -wal and -shm files. */
static void delete_db(const char *url) {
  if (strncmp(url, "sqlite:", 7) != 0) return;
  const char *path = url + 7;
  int plen = (int)strcspn(path, "?");
  const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    char f[1100];
    snprintf(f, sizeof f, "%.*s%s", plen, path, sfx[i]);
    unlink(f);
  }
}

static jobq_t *open_q(const char *url) {
  delete_db(url);
  jobq_options_t *o = jobq_options_new();
  char wd[300];
  snprintf(wd, sizeof wd, "%s/work", tmpdir);
  if (jobq_options_set_storage(o, url) != 0) die("storage");
  jobq_options_set_workdir(o, wd);
  jobq_t *q;
  if (jobq_open(&q, o) != 0) die("jobq_open");
  jobq_options_free(o);
  return q;
}

static void close_q(jobq_t *q, const char *url) {
  jobq_prune(q, 0, NULL); /* drops the work directories with the jobs */
  jobq_close(q, 5000);
  delete_db(url);
}

/* Registers p (then freed) as kind, with ko (may be NULL), and starts q. */
static void register_start(jobq_t *q, const char *kind, jobq_pipeline_t *p, jobq_kind_opts_t *ko) {
  if (jobq_register_pipeline(q, kind, p, ko) != 0) die("jobq_register_pipeline");
  jobq_pipeline_free(p);
  jobq_kind_opts_free(ko);
  if (jobq_start(q) != 0) die("jobq_start");
}

/* Waits until the job is terminal; returns its final snapshot (or NULL). */
static jobq_job_t *wait_done(jobq_t *q, const char *id, double limit_s) {
  double end = now_s() + limit_s;
  for (;;) {
    jobq_job_t *job = NULL;
    int rc = jobq_wait(q, id, 1000, &job);
    if (rc != 0 && rc != JOBQ_ETIMEDOUT) die("jobq_wait");
    if (jobq_state_is_terminal(jobq_job_state(job))) return job;
    jobq_job_free(job);
    if (now_s() > end) return NULL;
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- stage_overhead ------------------------------------------------------ */

static void noop_stage(jobq_stage_t *st, void *ud) {
  (void)ud;
  jobq_stage_succeed(st, jobq_stage_input(st));
}

static void noop_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, jobq_ctx_payload(ctx));
}

typedef struct { double p50, p99, mean; long failed; } lat_t; /* microseconds */

static lat_t run_serial(jobq_t *q, const char *kind, long n) {
  double *v = malloc((size_t)n * sizeof *v);
  lat_t r = {0, 0, 0, 0};
  char id[JOBQ_ID_SIZE];
  for (long i = -50; i < n; i++) { /* 50 warm-up jobs, not counted */
    double t0 = now_s();
    if (jobq_submit(q, kind, "{\"n\": 1}", NULL, id) < 0) die("jobq_submit");
    jobq_job_t *job = wait_done(q, id, 60);
    double t = (now_s() - t0) * 1e6;
    if (job == NULL || jobq_job_state(job) != JOBQ_SUCCEEDED) r.failed++;
    jobq_job_free(job);
    if (i >= 0) {
      v[i] = t;
      r.mean += t / (double)n;
    }
  }
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  r.p50 = v[n / 2];
  r.p99 = v[n * 99 / 100];
  free(v);
  return r;
}

static void stage_overhead(const char *url) {
  char name[64];
  int sl = (int)strcspn(url, ":");
  snprintf(name, sizeof name, "stage_overhead_%.*s", sl, url);
  if (!want(name)) return;
  long n = n_jobs > 0 ? n_jobs : 2000;
  jobq_t *q = open_q(url);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  jobq_kind_opts_set_on_loop(ko, 1);
  jobq_kind_opts_set_max_attempts(ko, 1);
  if (jobq_register(q, "plain", noop_handler, NULL, ko) != 0) die("jobq_register");
  const char *kinds[2] = {"pipe_loop", "pipe_blocking"};
  for (int m = 0; m < 2; m++) {
    jobq_pipeline_t *p = jobq_pipeline_new();
    for (int s = 0; s < 10; s++) {
      char sn[16];
      snprintf(sn, sizeof sn, "s%d", s);
      if (jobq_pipeline_add_stage(p, sn, noop_stage, NULL,
                                  m == 0 ? JOBQ_STAGE_ON_LOOP : JOBQ_STAGE_BLOCKING) != 0)
        die("jobq_pipeline_add_stage");
    }
    if (jobq_register_pipeline(q, kinds[m], p, ko) != 0) die("jobq_register_pipeline");
    jobq_pipeline_free(p);
  }
  jobq_kind_opts_free(ko);
  if (jobq_start(q) != 0) die("jobq_start");
  lat_t plain = run_serial(q, "plain", n);
  lat_t pl[2];
  for (int m = 0; m < 2; m++) pl[m] = run_serial(q, kinds[m], n);
  printf("%s: plain on-loop handler p50 %.1f us, p99 %.1f us, mean %.1f us "
         "(%ld jobs, %ld failed)\n", name, plain.p50, plain.p99, plain.mean, n, plain.failed);
  for (int m = 0; m < 2; m++)
    printf("%s: 10 %s stages p50 %.1f us, p99 %.1f us, mean %.1f us (%ld failed); "
           "per stage %.1f us (p50), %.1f us (mean) [target < 1000 us]\n",
           name, m == 0 ? "on-loop" : "blocking", pl[m].p50, pl[m].p99, pl[m].mean, pl[m].failed,
           (pl[m].p50 - plain.p50) / 10, (pl[m].mean - plain.mean) / 10);
  fflush(stdout);
  close_q(q, url);
}

/* ---- the provider double ------------------------------------------------- */

typedef struct { pid_t pid; int in_fd, out_fd, port; } server_t;

static int server_start(server_t *s) {
  char path[1200];
  snprintf(path, sizeof path, "%s/tests/servers/providers.py", source_dir);
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "pipeline_bench: %s not found (--source-dir, JOBQ_SOURCE_DIR)\n", path);
    return -1;
  }
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  char *argv[] = {"python3", path, "--openai-key", OPENAI_KEY, NULL};
  int rc = posix_spawnp(&s->pid, "python3", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  s->in_fd = in[1];
  s->out_fd = out[0];
  if (rc != 0) {
    fprintf(stderr, "pipeline_bench: cannot run python3: %s\n", strerror(rc));
    s->pid = -1;
    return -1;
  }
  char line[64];
  size_t used = 0;
  while (used + 1 < sizeof line) { /* the first line: "PORT n" */
    struct pollfd pf = {.fd = s->out_fd, .events = POLLIN};
    if (poll(&pf, 1, 20000) <= 0 || read(s->out_fd, line + used, 1) != 1) break;
    if (line[used] == '\n') break;
    used++;
  }
  line[used] = '\0';
  if (sscanf(line, "PORT %d", &s->port) != 1) {
    fprintf(stderr, "pipeline_bench: providers.py did not report its port\n");
    return -1;
  }
  return 0;
}

static void server_stop(server_t *s) {
  if (s->in_fd >= 0) close(s->in_fd); /* it exits when its stdin closes */
  if (s->pid > 0) kill(s->pid, SIGTERM);
  while (s->pid > 0 && waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) continue;
  if (s->out_fd >= 0) close(s->out_fd);
  s->pid = s->in_fd = s->out_fd = -1;
}

/* One POST with a JSON body to 127.0.0.1:port; returns the HTTP status. */
static int http_post(int port, const char *path, const char *body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char req[1024], resp[256];
  int len = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, port, strlen(body), body);
  int status = -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, req, (size_t)len) == len) {
    ssize_t got = read(fd, resp, sizeof resp - 1);
    if (got > 0) {
      resp[got] = '\0';
      sscanf(resp, "HTTP/1.%*d %d", &status);
    }
  }
  close(fd);
  return status;
}

/* ---- concurrent_2s ------------------------------------------------------- */

static void concurrent_2s(void) {
  if (!want("concurrent_2s")) return;
  long n = n_jobs > 0 ? n_jobs : 200;
  server_t srv = {-1, -1, -1, 0};
  const char *delay = "{\"route\": \"openai\", \"default_delay_ms\": 2000}";
  if (server_start(&srv) != 0 || http_post(srv.port, "/_faults", delay) != 200) {
    server_stop(&srv);
    printf("concurrent_2s: skipped (provider double not started, or POST /_faults failed)\n");
    return;
  }
  jobq_t *q = open_q(storage);
  char cfg[512];
  snprintf(cfg, sizeof cfg,
           "{\"provider\": \"openai\", \"base_url\": \"http://127.0.0.1:%d\", \"api_key\": \"%s\", "
           "\"max_tries\": 1, \"timeout_ms\": 10000}",
           srv.port, OPENAI_KEY);
  jobq_pipeline_t *p = jobq_pipeline_new();
  if (jobq_pipeline_add_builtin(p, "script", cfg) != 0) die("jobq_pipeline_add_builtin script");
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  jobq_kind_opts_set_concurrency(ko, n > 200 ? (int)n : 200);
  jobq_kind_opts_set_max_attempts(ko, 1);
  register_start(q, "llm", p, ko);

  const char **kinds = malloc((size_t)n * sizeof *kinds);
  const char **payloads = malloc((size_t)n * sizeof *payloads);
  char *ids = malloc((size_t)n * JOBQ_ID_SIZE);
  for (long i = 0; i < n; i++) {
    kinds[i] = "llm";
    payloads[i] = "{\"title\": \"Small bridges\", \"text\": \"Counties must inspect small bridges "
                  "every four years. A weak bridge gets a weight limit.\"}";
  }
  double t0 = now_s();
  if (jobq_submit_many(q, (size_t)n, kinds, payloads, NULL, ids, NULL) < 0) die("jobq_submit_many");
  double t_sub = now_s() - t0;
  long ok = 0, unfinished = 0;
  char *err = NULL;
  for (long i = 0; i < n; i++) {
    jobq_job_t *job = wait_done(q, ids + i * JOBQ_ID_SIZE, 60);
    if (job == NULL) unfinished++;
    else if (jobq_job_state(job) == JOBQ_SUCCEEDED) ok++;
    else if (err == NULL && jobq_job_error(job)) err = strdup(jobq_job_error(job));
    jobq_job_free(job);
  }
  double t = now_s() - t0;
  printf("concurrent_2s: %.2f s until all %ld terminal, %ld succeeded, %ld failed, %ld unfinished "
         "(each request answered after 2.00 s; submit_many took %.3f s) [target < 3 s]\n",
         t, n, ok, n - ok - unfinished, unfinished, t_sub);
  if (err) printf("concurrent_2s: first error: %s\n", err);
  fflush(stdout);
  free(err), free(kinds), free(payloads), free(ids);
  close_q(q, storage);
  server_stop(&srv);
}

/* ---- espeak_speed -------------------------------------------------------- */

static const char *const turns[10] = {
    "Welcome back to the show. I'm Alex, and with me as always is Sam. Today we look at how "
    "small towns keep their bridges safe, and why a simple inspection every few years matters "
    "more than most people think.",
    "Thanks, Alex. It is a topic that sounds dull, but a weak bridge on a farm road can cut a "
    "whole valley off from the hospital, the school and the market.",
    "Right. Under current law, bridges shorter than twenty feet are not inspected at all. Nobody "
    "is required to look at them, so often nobody does.",
    "And the new bill changes that. Counties must inspect each small bridge at least once every "
    "four years and record its condition on a five point scale.",
    "What happens when a bridge gets a bad score? Say it is rated one or two, the lowest marks "
    "on that scale. Does it close the same day?",
    "Not necessarily. It must be posted with a weight limit within thirty days, so heavy trucks "
    "stay off while the county plans a repair or a replacement, which can take a year or two for "
    "the worst of them.",
    "Some counties have no inspectors of their own. How are they supposed to do all of this work "
    "without hiring a team they cannot afford?",
    "The state may lend them inspectors. And the first round of inspections is paid for out of "
    "existing highway funds, so there is no new tax to start it.",
    "One more detail I liked: the inspection records are public. Anyone can look up the bridge "
    "on their road and see how it was rated.",
    "That is all for today. Thanks for listening, check the bridge on your road before you drive "
    "a loaded truck across it, and we will see you next week with another bill worth a closer "
    "look.",
};

static char *dialogue_payload(void) {
  static char buf[8192];
  size_t used = (size_t)snprintf(buf, sizeof buf, "{\"title\": \"Small bridges\", \"dialogue\": [");
  for (int i = 0; i < 10; i++)
    used += (size_t)snprintf(buf + used, sizeof buf - used,
                             "%s{\"speaker\": \"%s\", \"text\": \"%s\"}", i ? ", " : "",
                             i % 2 ? "Sam" : "Alex", turns[i]);
  snprintf(buf + used, sizeof buf - used, "]}");
  return buf;
}

static int word_count(void) {
  int w = 0;
  for (int i = 0; i < 10; i++)
    for (const char *s = turns[i]; *s; s++)
      if (*s != ' ' && (s == turns[i] || s[-1] == ' ')) w++;
  return w;
}

/* JSON string contents for s (no quotes); free the result. */
static char *json_escape(const char *s) {
  char *out = malloc(strlen(s) * 6 + 1), *o = out;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') *o++ = '\\', *o++ = (char)c;
    else if (c == '\n') *o++ = '\\', *o++ = 'n';
    else if (c < 0x20) o += sprintf(o, "\\u%04x", c);
    else *o++ = (char)c;
  }
  *o = '\0';
  return out;
}

static double audio_duration(const jobq_job_t *job) {
  const char *r = jobq_job_result(job);
  const char *d = r ? strstr(r, "\"audioDuration\"") : NULL;
  if (d == NULL) return -1;
  d = strchr(d, ':');
  return d ? strtod(d + 1, NULL) : -1;
}

/* Runs `runs` jobs of kind with payload one at a time; prints one line. */
static void run_audio(jobq_t *q, const char *name, const char *kind, const char *payload, int runs,
                      const char *what) {
  double wall = 0, audio = 0, best = 0;
  int ok = 0;
  for (int i = 0; i < runs; i++) {
    char id[JOBQ_ID_SIZE];
    double t0 = now_s();
    if (jobq_submit(q, kind, payload, NULL, id) < 0) die("jobq_submit");
    jobq_job_t *job = wait_done(q, id, 600);
    double t = now_s() - t0, a = job ? audio_duration(job) : -1;
    if (job && jobq_job_state(job) == JOBQ_SUCCEEDED && a > 0) {
      ok++, wall += t, audio += a;
      if (a / t > best) best = a / t;
    } else {
      const char *e = job ? jobq_job_error(job) : "not finished";
      fprintf(stderr, "pipeline_bench: %s: job %s: %s\n", name, id, e ? e : "no audioDuration");
    }
    jobq_job_free(job);
  }
  if (ok > 0)
    printf("%s: %.1fx real time (best %.1fx); %.2f s of audio in %.2f s wall per job "
           "(%d of %d jobs, %s)\n",
           name, audio / wall, best, audio / ok, wall / ok, ok, runs, what);
  else printf("%s: no job succeeded (%s)\n", name, what);
  fflush(stdout);
}

static void espeak_speed(void) {
  const char *fmts[2] = {"wav", "mp3"};
  for (int f = 0; f < 2; f++) {
    char name[64], cfg[128], kind[16], what[128];
    snprintf(name, sizeof name, "espeak_speed_%s", fmts[f]);
    if (!want(name)) continue;
    jobq_t *q = open_q(storage);
    snprintf(cfg, sizeof cfg, "{\"provider\": \"espeak\", \"format\": \"%s\"}", fmts[f]);
    snprintf(kind, sizeof kind, "tts_%s", fmts[f]);
    jobq_pipeline_t *p = jobq_pipeline_new();
    if (jobq_pipeline_add_builtin(p, "tts", cfg) != 0) die("jobq_pipeline_add_builtin tts");
    register_start(q, kind, p, NULL);
    snprintf(what, sizeof what, "tts stage only, %d words in 10 turns, Alex and Sam", word_count());
    run_audio(q, name, kind, dialogue_payload(), 3, what);
    close_q(q, storage);
  }

  if (!want("espeak_speed_podcast")) return;
  const char *input = "bridge-inspection.txt";
  char path[1200];
  snprintf(path, sizeof path, "%s/examples/podcast-inputs/%s", source_dir, input);
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    printf("espeak_speed_podcast: skipped (%s: %s)\n", path, strerror(errno));
    return;
  }
  static char text[1 << 16];
  size_t len = fread(text, 1, sizeof text - 1, fp);
  fclose(fp);
  text[len] = '\0';
  char title[200];
  snprintf(title, sizeof title, "%.*s", (int)strcspn(text, "\n"), text);
  char *et = json_escape(title), *ex = json_escape(text);
  char *payload = malloc(strlen(et) + strlen(ex) + 64);
  sprintf(payload, "{\"title\": \"%s\", \"text\": \"%s\"}", et, ex);
  free(et), free(ex);

  jobq_t *q = open_q(storage);
  char cfg[600];
  snprintf(cfg, sizeof cfg,
           "{\"script\": {\"provider\": \"template\"}, \"tts\": {\"provider\": \"espeak\", "
           "\"format\": \"wav\"}, \"upload\": {\"provider\": \"local\", \"dir\": \"%s/out\"}}",
           tmpdir);
  jobq_pipeline_t *p = jobq_pipeline_new();
  if (jobq_pipeline_add_config(p, cfg) != 0) die("jobq_pipeline_add_config");
  register_start(q, "podcast", p, NULL);
  char what[300];
  snprintf(what, sizeof what, "template -> espeak wav -> local upload, %s", input);
  run_audio(q, "espeak_speed_podcast", "podcast", payload, 3, what);
  free(payload);
  close_q(q, storage);
}

/* ---- main ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path), 0;
}

int main(int argc, char **argv) {
  const char *env_src = getenv("JOBQ_SOURCE_DIR");
  if (env_src != NULL && env_src[0] != '\0') source_dir = env_src;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc) storage = argv[++i];
    else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) n_jobs = atol(argv[++i]);
    else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
    else if (strcmp(argv[i], "--source-dir") == 0 && i + 1 < argc) source_dir = argv[++i];
    else {
      fprintf(stderr, "usage: pipeline_bench [--storage URL] [--jobs N] [--only NAME] "
                      "[--source-dir DIR]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  if (mkdtemp(tmpdir) == NULL) {
    perror("pipeline_bench: mkdtemp");
    return 1;
  }
  printf("command:");
  for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
  printf("\nlibjobq %s, storage %s, source dir %s\n", jobq_version_string(), storage, source_dir);
  fflush(stdout);
  stage_overhead(storage);
  if (strcmp(storage, "memory:") != 0) stage_overhead("memory:");
  concurrent_2s();
  espeak_speed();
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
