/* The webhook outbox survives kill -9: 1,000 jobs, each with a webhook, run
 * by worker processes on one SQLite file that are SIGKILLed again and again,
 * many of them right after a job's success is stored and before its
 * webhook could be sent; afterwards a fresh process delivers what is left.
 * Every one of the 1,000 deliveries (distinct webhook-ids) must have reached
 * tests/servers/webhook_receiver.py at least once, each signature verified
 * there (and by the npm package standardwebhooks when it is installed),
 * and none may be left pending, sending or failed.
 *
 * One program, three roles:
 *   test_webhook_crash                          the driver (a cmocka test)
 *   test_webhook_crash --worker DB URL SELFKILL a worker process
 *   test_webhook_crash --deliver DB URL         the process that delivers the rest
 * (started by the driver with posix_spawn of /proc/self/exe; the endpoint's
 * secret travels in the environment, JOBQ_WEBHOOK_SECRET_APP).
 *
 * The workers' endpoint URL is the receiver slowed down (/slow, 300 ms a
 * request) or, every third worker, an address that refuses connections:
 * deliveries are claimed and in flight, or pending for a retry, when the
 * kill comes. Kills: the driver kills each worker 30..250 ms after it
 * started, and a worker kills itself (SIGKILL) right after a success is
 * stored when its job's payload asks ("selfkill"; every 10th job, in every
 * worker whose SELFKILL is 1).
 *
 * A killed process may leave deliveries "sending" under its lease (2 x the
 * request timeout + 30 s). The delivering process runs its clock 40 s
 * ahead (jobq_options_set_clock), as if it came that much later, so the
 * test need not wait for those leases.
 *
 * Environment: JOBQ_WEBHOOK_CRASH_SEED (the driver's choices; printed),
 * JOBQ_WEBHOOK_CRASH_JOBS (default 1000). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"
#include "provsrv.h"

extern char **environ;

#define SECRET "whsec_Y3Jhc2gtdGVzdC1rZXk6IHN1cnZpdmVzIGtpbGwgLTk="
#define JOB_LEASE_MS 300
#define WH_TOTAL_MS 1000
#define SKEW_MS (2 * WH_TOTAL_MS + 30000 + 10000) /* past any delivery lease */
#define MAX_CYCLES 2000
#define GUARD_MS 120000

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* ======================================================================== */
/* Worker and deliverer roles                                               */
/* ======================================================================== */

typedef struct wctx {
  jobq_t *q;
  int selfkill;
} wctx;

static void worker_handler(jobq_ctx_t *ctx, void *ud) {
  wctx *w = ud;
  int die = w->selfkill && strstr(jobq_ctx_payload(ctx), "\"selfkill\":1") != NULL;
  char id[JOBQ_ID_SIZE];
  snprintf(id, sizeof id, "%s", jobq_ctx_id(ctx));
  sleep_ms(15); /* so that the kills land among the jobs */
  if (jobq_ctx_succeed(ctx, "{\"ok\":true}") != 0) return;
  if (!die) return;
  /* Dies as soon as the success is stored: its delivery is in the outbox,
   * and the receiver is slow or unreachable, so it has not arrived. */
  for (int i = 0; i < 5000; i++) {
    jobq_job_t *j = NULL;
    if (jobq_get(w->q, id, &j) == 0) {
      int s = jobq_job_state(j);
      jobq_job_free(j);
      if (s == JOBQ_SUCCEEDED) raise(SIGKILL);
    }
    sleep_ms(1);
  }
}

static int64_t skewed_clock(void *ud) {
  (void)ud;
  return wall_ms() + SKEW_MS;
}

static int role_main(int argc, char **argv) {
  int deliver = strcmp(argv[1], "--deliver") == 0;
  if (argc != (deliver ? 4 : 5)) {
    fprintf(stderr, "usage: test_webhook_crash --worker DB URL SELFKILL | --deliver DB URL\n");
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char storage[4200];
  snprintf(storage, sizeof storage, "sqlite:%s", argv[2]);
  wctx w = {NULL, deliver ? 0 : atoi(argv[4])};
  jobq_options_t *o = jobq_options_new();
  int rc;
  if ((rc = jobq_options_set_storage(o, storage)) ||
      (rc = jobq_options_set_workers(o, deliver ? 0 : 2)) ||
      (rc = jobq_options_set_lease(o, JOB_LEASE_MS)) ||
      (rc = jobq_options_set_webhook_allow(o, "127.0.0.1")) ||
      (rc = jobq_options_add_webhook(o, "app", argv[3], NULL)) ||
      (rc = jobq_options_set_webhook_timeouts(o, 200, WH_TOTAL_MS)) ||
      (rc = jobq_options_set_webhook_retry(o, 100, 50, 500)) ||
      (deliver && (rc = jobq_options_set_clock(o, skewed_clock, NULL))) ||
      (rc = jobq_open(&w.q, o))) {
    fprintf(stderr, "test_webhook_crash %s: setup: %s: %s\n", argv[1], jobq_err_name(rc),
            jobq_last_error());
    return 3;
  }
  jobq_options_free(o);
  if (!deliver) {
    if ((rc = jobq_register(w.q, "work", worker_handler, &w, NULL)) || (rc = jobq_start(w.q))) {
      fprintf(stderr, "test_webhook_crash worker: %s: %s\n", jobq_err_name(rc), jobq_last_error());
      return 4;
    }
    for (;;) pause(); /* until SIGKILL */
  }
  /* The deliverer: until nothing is pending or sending. */
  int64_t end = mono_ms() + GUARD_MS;
  for (;;) {
    jobq_stats_t *st = NULL;
    if ((rc = jobq_stats(w.q, &st)) != 0) {
      fprintf(stderr, "test_webhook_crash deliver: jobq_stats: %s\n", jobq_last_error());
      return 5;
    }
    int64_t open = jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_PENDING) +
                   jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_SENDING);
    jobq_stats_free(st);
    if (open == 0) break;
    if (mono_ms() > end) {
      fprintf(stderr, "test_webhook_crash deliver: %lld deliveries still open\n", (long long)open);
      return 6;
    }
    sleep_ms(50);
  }
  rc = jobq_close(w.q, 5000);
  return rc == 0 ? 0 : 7;
}

/* ======================================================================== */
/* Driver                                                                   */
/* ======================================================================== */

static pid_t spawn(const char *const *argv) {
  pid_t pid;
  int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, (char *const *)argv, environ);
  if (rc != 0) fail_msg("posix_spawn: %s", strerror(rc));
  return pid;
}

static size_t count_state(jobq_t *q, int state) {
  jobq_filter_t *f = jobq_filter_new();
  assert_int_equal(jobq_filter_set_limit(f, 1000), 0);
  assert_int_equal(jobq_filter_set_state(f, state), 0);
  size_t total = 0;
  for (;;) {
    jobq_page_t *p = NULL;
    assert_int_equal(jobq_list(q, f, &p), 0);
    total += jobq_page_count(p);
    const char *c = jobq_page_next_cursor(p);
    if (c == NULL) {
      jobq_page_free(p);
      break;
    }
    assert_int_equal(jobq_filter_set_cursor(f, c), 0);
    jobq_page_free(p);
  }
  jobq_filter_free(f);
  return total;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_kill9_loses_no_webhook(void **state) {
  (void)state;
  const char *e = getenv("JOBQ_WEBHOOK_CRASH_SEED");
  uint64_t seed = e ? strtoull(e, NULL, 10) : (uint64_t)wall_ms();
  printf("JOBQ_WEBHOOK_CRASH_SEED=%llu\n", (unsigned long long)seed);
  e = getenv("JOBQ_WEBHOOK_CRASH_JOBS");
  int n_jobs = e ? atoi(e) : 1000;
  assert_true(n_jobs >= 1 && n_jobs <= 100000);

  const char *tmp = getenv("TMPDIR");
  char dir[512], db[600], manifest[700];
  snprintf(dir, sizeof dir, "%s/jobq-whcrash-XXXXXX", tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(dir));
  snprintf(db, sizeof db, "%s/jobs.db", dir);
  snprintf(manifest, sizeof manifest, "%s/manifest", dir);

  provsrv_t rcv;
  const char *args[] = {"--dir", dir, "--secret", SECRET, NULL};
  assert_int_equal(provsrv_start("webhook_receiver.py", args, &rcv), 0);
  /* An address that refuses connections: a bound socket that never listens. */
  int dead = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(dead, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t sl = sizeof sa;
  assert_int_equal(getsockname(dead, (struct sockaddr *)&sa, &sl), 0);
  char url_slow[128], url_dead[128], url_ok[128];
  snprintf(url_slow, sizeof url_slow, "%s/slow/crash?ms=300", rcv.base_url);
  snprintf(url_dead, sizeof url_dead, "http://127.0.0.1:%d/dead/crash", ntohs(sa.sin_port));
  snprintf(url_ok, sizeof url_ok, "%s/ok/crash", rcv.base_url);
  setenv("JOBQ_WEBHOOK_SECRET_APP", SECRET, 1);

  /* The jobs, each subscribed to endpoint "app" (this process sends none). */
  char storage[700];
  snprintf(storage, sizeof storage, "sqlite:%s", db);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, storage), 0);
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  assert_int_equal(jobq_options_set_webhook_concurrency(o, 0), 0);
  assert_int_equal(jobq_options_add_webhook(o, "app", url_ok, NULL), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  char *ids = calloc((size_t)n_jobs, JOBQ_ID_SIZE);
  const char **kinds = calloc(100, sizeof *kinds);
  const char **payloads = calloc(100, sizeof *payloads);
  char (*pl)[48] = calloc(100, 48);
  assert_non_null(ids);
  /* Many tries: an attempt killed again and again must not make a job fail
   * ("lease expired" once its attempts are spent): every job succeeds. */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_max_attempts(so, 1000), 0);
  const jobq_submit_opts_t *sos[100];
  for (int i = 0; i < 100; i++) sos[i] = so;
  for (int at = 0; at < n_jobs; at += 100) {
    int m = n_jobs - at < 100 ? n_jobs - at : 100;
    for (int i = 0; i < m; i++) {
      kinds[i] = "work";
      snprintf(pl[i], 48, "{\"n\":%d,\"selfkill\":%d}", at + i, (at + i) % 10 == 7);
      payloads[i] = pl[i];
    }
    int rc = jobq_submit_many(q, (size_t)m, kinds, payloads, sos, ids + (size_t)at * JOBQ_ID_SIZE, NULL);
    if (rc < 0) fail_msg("jobq_submit_many: %s", jobq_last_error());
  }
  free(kinds);
  free(payloads);
  free(pl);
  jobq_submit_opts_free(so);

  /* Kill cycles until every job succeeded. */
  int cycles = 0, driver_kills = 0, self_kills = 0, other_exits = 0;
  int64_t guard = mono_ms() + GUARD_MS;
  while (count_state(q, JOBQ_SUCCEEDED) < (size_t)n_jobs) {
    if (count_state(q, JOBQ_FAILED) > 0) fail_msg("a job failed");
    if (cycles >= MAX_CYCLES || mono_ms() > guard)
      fail_msg("after %d kill cycles only %zu of %d jobs succeeded", cycles,
               count_state(q, JOBQ_SUCCEEDED), n_jobs);
    int mode = cycles % 3;
    const char *argv[] = {"test_webhook_crash", "--worker", db, mode == 2 ? url_dead : url_slow,
                          rng_next(&seed) % 2 ? "1" : "0", NULL};
    pid_t pid = spawn(argv);
    int64_t until = mono_ms() + 30 + (int64_t)(rng_next(&seed) % 221);
    int st = 0;
    pid_t r = 0;
    while (mono_ms() < until && (r = waitpid(pid, &st, WNOHANG)) == 0) sleep_ms(2);
    if (r == 0) {
      kill(pid, SIGKILL);
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      driver_kills++;
    } else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
      self_kills++;
    } else {
      other_exits++;
      fprintf(stderr, "worker exited by itself: %s %d\n", WIFSIGNALED(st) ? "signal" : "status",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
    cycles++;
  }
  assert_int_equal(other_exits, 0);
  assert_true(self_kills + driver_kills >= 2);
  int before = 0;
  {
    char *body = NULL;
    long stc = 0;
    assert_int_equal(provsrv_get(&rcv, "/count?prefix=/", &body, &stc), 0);
    json_t *j = json_loads(body, 0, NULL);
    before = (int)json_integer_value(json_object_get(j, "ids"));
    json_decref(j);
    free(body);
  }

  /* A fresh process delivers the rest. */
  const char *dargv[] = {"test_webhook_crash", "--deliver", db, url_ok, NULL};
  pid_t dp = spawn(dargv);
  int st = 0;
  while (waitpid(dp, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("the delivering process failed (%d)", st);

  /* The store: every delivery delivered, none open or failed. */
  jobq_stats_t *s = NULL;
  assert_int_equal(jobq_stats(q, &s), 0);
  int64_t n_pending = jobq_stats_webhook_outbox(s, JOBQ_DELIVERY_PENDING),
          n_sending = jobq_stats_webhook_outbox(s, JOBQ_DELIVERY_SENDING),
          n_delivered = jobq_stats_webhook_outbox(s, JOBQ_DELIVERY_DELIVERED),
          n_failed = jobq_stats_webhook_outbox(s, JOBQ_DELIVERY_FAILED);
  jobq_stats_free(s);
  assert_int_equal(n_pending, 0);
  assert_int_equal(n_sending, 0);
  assert_int_equal(n_failed, 0);
  assert_int_equal(n_delivered, n_jobs);

  /* The receiver: every delivery id arrived, each request verified. */
  char *body = NULL;
  long stc = 0;
  assert_int_equal(provsrv_get(&rcv, "/log?prefix=/", &body, &stc), 0);
  json_t *log = json_loads(body, 0, NULL);
  free(body);
  assert_non_null(log);
  size_t n_req = json_array_size(log);
  const char **got = calloc(n_req + 1, sizeof *got);
  size_t n_unverified = 0;
  for (size_t i = 0; i < n_req; i++) {
    json_t *r = json_array_get(log, i);
    got[i] = json_string_value(json_object_get(r, "id"));
    if (!json_is_true(json_object_get(r, "verified"))) n_unverified++;
  }
  qsort(got, n_req, sizeof *got, cmp_str);
  size_t distinct = 0;
  for (size_t i = 0; i < n_req; i++)
    if (i == 0 || strcmp(got[i], got[i - 1]) != 0) distinct++;
  int missing = 0;
  for (int i = 0; i < n_jobs; i++) {
    char want[80];
    snprintf(want, sizeof want, "%s:0:succeeded", ids + (size_t)i * JOBQ_ID_SIZE);
    const char *k = want;
    if (bsearch(&k, got, n_req, sizeof *got, cmp_str) == NULL) {
      if (missing < 10) fprintf(stderr, "never arrived: %s\n", want);
      missing++;
    }
  }
  printf("%d jobs, %d kill cycles (%d by the driver, %d self-kills after a stored success); "
         "%d deliveries had arrived before the last process, %zu requests in all, %zu distinct ids\n",
         n_jobs, cycles, driver_kills, self_kills, before, n_req, distinct);
  assert_int_equal(missing, 0);
  assert_int_equal(n_unverified, 0);
  assert_int_equal(distinct, (size_t)n_jobs);
  free(got);
  json_decref(log);

  /* And the reference library agrees, when it is installed. */
  const char *src = getenv("JOBQ_SOURCE_DIR");
  char mods[1024];
  snprintf(mods, sizeof mods, "%s/tests/servers/node_modules/standardwebhooks/package.json",
           src ? src : "../../..");
  struct stat sst;
  if (system("command -v node >/dev/null 2>&1") == 0 && stat(mods, &sst) == 0) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s/tests/servers' && node webhook_check.js verify '%s' > '%s.out'",
             src ? src : "../../..", manifest, manifest);
    fflush(stdout);
    if (system(cmd) != 0) fail_msg("standardwebhooks refused a delivery (see %s.out)", manifest);
  } else {
    printf("note: node or standardwebhooks missing; only the receiver's own check ran\n");
  }

  assert_int_equal(jobq_close(q, 1000), 0);
  free(ids);
  close(dead);
  provsrv_stop(&rcv);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "--worker") == 0 || strcmp(argv[1], "--deliver") == 0))
    return role_main(argc, argv);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill9_loses_no_webhook)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
