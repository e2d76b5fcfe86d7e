/* Storage failing under the workers is seen: an event, the stats,
 * jobq_health and the log hook (and stderr by default), once per episode,
 * and the recovery too.
 *
 * The "faulty" backend is the memory backend whose claims, heartbeats or
 * reads fail on demand with a code and a sentence, as a damaged file or a
 * full disk makes SQLite's do (tests/integration/test_faults.c shows it on
 * a real damaged SQLite file). */
#include "testutil.h"

#include "jobq/storage.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

extern const jobq_storage_ops jobq__memory_ops;

static atomic_int fail_claim, fail_heartbeat, fail_get, fail_prune_kind;
static atomic_int n_prune_kind;
static atomic_int n_claims;

static int f_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}
static int f_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out, size_t *n) {
  atomic_fetch_add(&n_claims, 1);
  int c = atomic_load(&fail_claim);
  if (c) {
    jobq_storage_set_error("faulty: database disk image is malformed");
    return c;
  }
  return jobq__memory_ops.claim(st, req, out, n);
}
static int f_heartbeat(void *st, jobq_storage_lease *l, size_t n, int64_t until) {
  int c = atomic_load(&fail_heartbeat);
  if (c) {
    jobq_storage_set_error("faulty: the disk is full");
    return c;
  }
  return jobq__memory_ops.heartbeat(st, l, n, until);
}
static int f_get(void *st, const char *id, int64_t now, jobq_storage_job *out) {
  int c = atomic_load(&fail_get);
  if (c) {
    jobq_storage_set_error("faulty: disk I/O error");
    return c;
  }
  return jobq__memory_ops.get(st, id, now, out);
}

static int f_prune_kind(void *st, jobq_storage_prune *req, char (**ids)[JOBQ_ID_SIZE], size_t *n) {
  atomic_fetch_add(&n_prune_kind, 1);
  int c = atomic_load(&fail_prune_kind);
  if (c) {
    jobq_storage_set_error("faulty: disk I/O error");
    return c;
  }
  return jobq__memory_ops.prune_kind(st, req, ids, n);
}

static jobq_storage_ops faulty_ops;

static int setup_backend(void **state) {
  (void)state;
  faulty_ops = jobq__memory_ops;
  faulty_ops.scheme = "faulty";
  faulty_ops.open = f_open;
  faulty_ops.claim = f_claim;
  faulty_ops.heartbeat = f_heartbeat;
  faulty_ops.get = f_get;
  faulty_ops.prune_kind = f_prune_kind;
  return jobq_storage_register(&faulty_ops);
}

static int reset(void **state) {
  (void)state;
  atomic_store(&fail_claim, 0);
  atomic_store(&fail_heartbeat, 0);
  atomic_store(&fail_get, 0);
  atomic_store(&fail_prune_kind, 0);
  atomic_store(&n_claims, 0);
  atomic_store(&n_prune_kind, 0);
  return 0;
}

/* ---- what the log hook heard ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192];
static int log_levels[64], n_log;

static void on_log(int level, const char *msg, void *ud) {
  assert_ptr_equal(ud, &log_mu);
  pthread_mutex_lock(&log_mu);
  if (n_log < 64) log_levels[n_log] = level;
  n_log++;
  size_t l = strlen(log_text);
  snprintf(log_text + l, sizeof log_text - l, "%d|%s\n", level, msg);
  pthread_mutex_unlock(&log_mu);
}

static int log_has(const char *needle) {
  pthread_mutex_lock(&log_mu);
  int r = strstr(log_text, needle) != NULL;
  pthread_mutex_unlock(&log_mu);
  return r;
}

static void log_clear(void) {
  pthread_mutex_lock(&log_mu);
  log_text[0] = '\0';
  n_log = 0;
  pthread_mutex_unlock(&log_mu);
}

/* ---- helpers ---- */

static atomic_int ran;
static atomic_int hold; /* 1: handlers wait until it is 0 */

static void handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  while (atomic_load(&hold)) usleep(1000);
  atomic_fetch_add(&ran, 1);
  jobq_ctx_succeed(ctx, NULL);
}

static jobq_t *open_q(const char *url, int workers, int64_t lease, int log_level) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  TAPI_OK(jobq_options_set_storage(o, url));
  TAPI_OK(jobq_options_set_workers(o, workers));
  TAPI_OK(jobq_options_set_event_buffer(o, 1024)); /* buffer events from open on */
  if (lease) TAPI_OK(jobq_options_set_lease(o, lease));
  TAPI_OK(jobq_options_set_log(o, on_log, &log_mu, log_level));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  return q;
}

/* The next event of type, skipping job events; fails after 10 s. */
static jobq_event_t *next_of(jobq_t *q, int type) {
  for (int i = 0; i < 10000; i++) {
    jobq_event_t *ev = NULL;
    int rc = jobq_next_event(q, 10, &ev);
    if (rc == JOBQ_ETIMEDOUT) continue;
    TAPI_OK(rc);
    if (jobq_event_type(ev) == type) return ev;
    /* a queue event of another type is a failure: one per episode */
    if (jobq_event_type(ev) >= JOBQ_EVENT_STORAGE_ERROR)
      fail_msg("unexpected %s event", jobq_event_type_name(jobq_event_type(ev)));
    jobq_event_free(ev);
  }
  fail_msg("no %s event within 10 s", jobq_event_type_name(type));
  return NULL;
}

static void wait_until(int (*cond)(void *), void *arg, const char *what) {
  for (int i = 0; i < 10000; i++) {
    if (cond(arg)) return;
    usleep(1000);
  }
  fail_msg("waited 10 s for %s", what);
}

static int claims_at_least_3(void *arg) {
  (void)arg;
  return atomic_load(&n_claims) >= 3;
}
static int log_has_cb(void *arg) { return log_has(arg); }
static int ran_at_least(void *arg) { return atomic_load(&ran) >= *(int *)arg; }

/* ---- tests ---- */

static void test_bad_input(void **state) {
  (void)state;
  TAPI_ERR(JOBQ_EINVAL, "jobq_health", jobq_health(NULL));
  jobq_stats_t *st = (jobq_stats_t *)&st; /* must stay untouched */
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats", jobq_stats(NULL, &st));
  assert_ptr_equal(st, (jobq_stats_t *)&st);
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats", jobq_stats(q, NULL));
  TAPI_OK(jobq_close(q, 0));

  assert_int_equal(jobq_stats_time(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_stats_running(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_stats_rate_limited(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_stats_storage_errors(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_stats_storage_failing_since(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_stats_last_storage_code(NULL), JOBQ_EINVAL);
  assert_null(jobq_stats_last_storage_error(NULL));
  assert_int_equal(jobq_stats_last_storage_error_at(NULL), JOBQ_EINVAL);
  jobq_storage_set_error("");
  assert_null(jobq_stats_to_json(NULL));
  TAPI_ERR_HAS("jobq_stats_to_json: st is NULL");
  jobq_stats_free(NULL);
  assert_int_equal(jobq_event_code(NULL), JOBQ_EINVAL);

  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_log", jobq_options_set_log(NULL, on_log, NULL, 1));
  jobq_options_t *o = jobq_options_new();
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_log", jobq_options_set_log(o, on_log, NULL, -1));
  TAPI_ERR_HAS("max_level -1 is outside 0..3");
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_log", jobq_options_set_log(o, on_log, NULL, 4));
  jobq_options_free(o);

  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_STORAGE_ERROR), "storage_error");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_STORAGE_OK), "storage_ok");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_BATCH_DONE), "batch_done");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_WEBHOOK_FAILED), "webhook_failed");
  assert_null(jobq_event_type_name(JOBQ_EVENT_WEBHOOK_FAILED + 1));
}

static void test_healthy(void **state) {
  (void)state;
  tapi_clock clk;
  tapi_clock_set(&clk, 1700000000000);
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, &clk));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  jobq_storage_set_error("left over");
  assert_int_equal(jobq_health(q), 0);
  assert_string_equal(jobq_last_error(), "");
  jobq_stats_t *st = NULL;
  TAPI_OK(jobq_stats(q, &st));
  assert_int_equal(jobq_stats_time(st), 1700000000000);
  assert_int_equal(jobq_stats_running(st), 0);
  assert_int_equal(jobq_stats_rate_limited(st), 0);
  assert_int_equal(jobq_stats_storage_errors(st), 0);
  assert_int_equal(jobq_stats_storage_failing_since(st), 0);
  assert_int_equal(jobq_stats_last_storage_code(st), 0);
  assert_null(jobq_stats_last_storage_error(st));
  assert_int_equal(jobq_stats_last_storage_error_at(st), 0);
  char *js = jobq_stats_to_json(st);
  assert_string_equal(js,
                      "{\"time\":1700000000000,\"running\":0,\"rateLimited\":0,"
                      "\"storage\":{\"healthy\":true,\"errors\":0},"
                      "\"webhooks\":{\"tries\":{\"delivered\":0,\"retried\":0,\"failed\":0},"
                      "\"outbox\":{\"pending\":0,\"sending\":0,\"delivered\":0,\"failed\":0}},"
                      "\"kinds\":{},"
                      "\"totals\":{\"started\":0,\"succeeded\":0,\"failed\":0,\"retried\":0,"
                      "\"cancelled\":0,\"cacheHits\":0,\"cacheMisses\":0,\"rateLimitWaits\":0}}");
  jobq_free(js);
  jobq_stats_free(st);
  TAPI_OK(jobq_close(q, 0));
}

/* Claims fail (a damaged index): the workers run nothing, and it shows
 * everywhere, once; when storage answers again, that shows too and the
 * jobs run. */
static void test_claims_fail_then_recover(void **state) {
  (void)state;
  log_clear();
  atomic_store(&ran, 0);
  jobq_t *q = open_q("faulty:", 2, 0, JOBQ_LOG_INFO);
  TAPI_OK(jobq_register(q, "k", handler, NULL, NULL));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "1", NULL, id));
  atomic_store(&fail_claim, JOBQ_ECORRUPT);
  TAPI_OK(jobq_start(q));

  jobq_event_t *ev = next_of(q, JOBQ_EVENT_STORAGE_ERROR);
  assert_int_equal(jobq_event_code(ev), JOBQ_ECORRUPT);
  assert_string_equal(jobq_event_job_id(ev), "");
  assert_int_equal(jobq_event_state(ev), -1);
  assert_null(jobq_event_kind(ev));
  assert_string_equal(jobq_event_error(ev), "claims: faulty: database disk image is malformed");
  char *js = jobq_event_to_json(ev);
  assert_non_null(strstr(js, "{\"type\":\"storage_error\",\"code\":\"JOBQ_ECORRUPT\","
                             "\"error\":\"claims: faulty: database disk image is malformed\","
                             "\"time\":"));
  jobq_free(js);
  jobq_event_free(ev);

  /* Several failed claims later: still one event, and nothing ran. */
  wait_until(claims_at_least_3, NULL, "three claims");
  assert_int_equal(atomic_load(&ran), 0);

  jobq_storage_set_error("");
  assert_int_equal(jobq_health(q), JOBQ_ECORRUPT);
  TAPI_ERR_HAS("jobq_health: storage has failed this process's background work since ");
  TAPI_ERR_HAS("claims: faulty: database disk image is malformed");

  jobq_stats_t *st = NULL;
  TAPI_OK(jobq_stats(q, &st));
  assert_true(jobq_stats_storage_errors(st) >= 2);
  assert_true(jobq_stats_storage_failing_since(st) > 0);
  assert_int_equal(jobq_stats_last_storage_code(st), JOBQ_ECORRUPT);
  assert_string_equal(jobq_stats_last_storage_error(st),
                      "claims: faulty: database disk image is malformed");
  assert_true(jobq_stats_last_storage_error_at(st) >= jobq_stats_storage_failing_since(st));
  js = jobq_stats_to_json(st);
  assert_non_null(strstr(js, "\"storage\":{\"healthy\":false,"));
  assert_non_null(strstr(js, "\"lastCode\":\"JOBQ_ECORRUPT\""));
  jobq_free(js);
  int64_t errors = jobq_stats_storage_errors(st);
  jobq_stats_free(st);

  wait_until(log_has_cb, "1|storage failed this process's claims: faulty: database disk image is "
                         "malformed (JOBQ_ECORRUPT); workers claim nothing until it answers again",
             "the error line");

  /* Storage answers again: a submit wakes the workers. */
  atomic_store(&fail_claim, 0);
  TAPI_OK(jobq_submit(q, "k", "2", NULL, id));
  ev = next_of(q, JOBQ_EVENT_STORAGE_OK);
  assert_int_equal(jobq_event_code(ev), 0);
  assert_null(jobq_event_error(ev));
  jobq_event_free(ev);
  int two = 2;
  wait_until(ran_at_least, &two, "both jobs");
  assert_int_equal(jobq_health(q), 0);
  TAPI_OK(jobq_stats(q, &st));
  assert_true(jobq_stats_storage_errors(st) >= errors); /* a count since open */
  assert_int_equal(jobq_stats_storage_failing_since(st), 0);
  assert_int_equal(jobq_stats_last_storage_code(st), JOBQ_ECORRUPT); /* the latest failure */
  jobq_stats_free(st);
  wait_until(log_has_cb, "2|storage answers this process's background work again after ",
             "the recovery line");
  TAPI_OK(jobq_close(q, 1000));
}

/* Heartbeats fail (a full disk) while a job runs: that is news too. */
static void test_heartbeats_fail(void **state) {
  (void)state;
  log_clear();
  atomic_store(&ran, 0);
  atomic_store(&hold, 1);
  jobq_t *q = open_q("faulty:", 1, 300, JOBQ_LOG_WARN);
  TAPI_OK(jobq_register(q, "k", handler, NULL, NULL));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "1", NULL, id));
  atomic_store(&fail_heartbeat, JOBQ_EFULL);
  TAPI_OK(jobq_start(q));
  jobq_event_t *ev = next_of(q, JOBQ_EVENT_STORAGE_ERROR);
  assert_int_equal(jobq_event_code(ev), JOBQ_EFULL);
  assert_string_equal(jobq_event_error(ev), "heartbeats: faulty: the disk is full");
  jobq_event_free(ev);
  assert_int_equal(jobq_health(q), JOBQ_EFULL);
  TAPI_ERR_HAS("heartbeats: faulty: the disk is full");
  atomic_store(&fail_heartbeat, 0);
  ev = next_of(q, JOBQ_EVENT_STORAGE_OK);
  jobq_event_free(ev);
  assert_int_equal(jobq_health(q), 0);
  atomic_store(&hold, 0);
  int one = 1;
  wait_until(ran_at_least, &one, "the job");
  TAPI_OK(jobq_close(q, 1000));
}


/* Retention calls that storage refuses are background work too: news
 * once, and the recovery once a later pass is answered (a minute later by
 * the queue's clock). */
static int prune_kind_called(void *arg) { return atomic_load(&n_prune_kind) >= *(int *)arg; }

static void test_retention_fails(void **state) {
  (void)state;
  log_clear();
  tapi_clock clk;
  tapi_clock_set(&clk, INT64_C(1700000000000));
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "faulty:"));
  TAPI_OK(jobq_options_set_workers(o, 0));
  TAPI_OK(jobq_options_set_event_buffer(o, 1024));
  TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, &clk));
  TAPI_OK(jobq_options_set_log(o, on_log, &log_mu, JOBQ_LOG_WARN));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  TAPI_OK(jobq_register(q, "k", handler, NULL, NULL)); /* the default retention */
  atomic_store(&fail_prune_kind, JOBQ_EIO);
  TAPI_OK(jobq_start(q)); /* the first pass begins at the first tick */
  jobq_event_t *ev = next_of(q, JOBQ_EVENT_STORAGE_ERROR);
  assert_int_equal(jobq_event_code(ev), JOBQ_EIO);
  assert_string_equal(jobq_event_error(ev), "retention: faulty: disk I/O error");
  jobq_event_free(ev);
  assert_int_equal(jobq_health(q), JOBQ_EIO);
  TAPI_ERR_HAS("retention: faulty: disk I/O error");
  wait_until(log_has_cb, "retention: faulty: disk I/O error", "the log line");
  atomic_store(&fail_prune_kind, 0);
  int calls = atomic_load(&n_prune_kind) + 1;
  tapi_clock_set(&clk, INT64_C(1700000000000) + 61000); /* the next pass */
  ev = next_of(q, JOBQ_EVENT_STORAGE_OK);
  jobq_event_free(ev);
  wait_until(prune_kind_called, &calls, "the next pass");
  assert_int_equal(jobq_health(q), 0);
  TAPI_OK(jobq_close(q, 1000));
}

/* With no background failure, jobq_health still reads storage. */
static void test_health_probe(void **state) {
  (void)state;
  jobq_t *q = open_q("faulty:", 0, 0, 0);
  assert_int_equal(jobq_health(q), 0);
  atomic_store(&fail_get, JOBQ_EIO);
  jobq_storage_set_error("");
  assert_int_equal(jobq_health(q), JOBQ_EIO);
  assert_string_equal(jobq_last_error(),
                      "jobq_health: a probe read of storage failed: faulty: disk I/O error");
  atomic_store(&fail_get, 0);
  assert_int_equal(jobq_health(q), 0);
  TAPI_OK(jobq_close(q, 0));
}

/* max_level 0 says nothing; no hook means stderr. */
static void test_log_levels_and_stderr(void **state) {
  (void)state;
  log_clear();
  jobq_t *q = open_q("faulty:", 1, 0, 0);
  TAPI_OK(jobq_register(q, "k", handler, NULL, NULL));
  atomic_store(&fail_claim, JOBQ_ECORRUPT);
  TAPI_OK(jobq_start(q));
  jobq_event_free(next_of(q, JOBQ_EVENT_STORAGE_ERROR));
  TAPI_OK(jobq_close(q, 0)); /* delivers what was queued */
  assert_int_equal(n_log, 0);

  /* The default: stderr, warnings and errors. */
  char tmpl[] = "/tmp/jobq-health-XXXXXX";
  int fd = mkstemp(tmpl);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "faulty:"));
  TAPI_OK(jobq_options_set_workers(o, 1));
  TAPI_OK(jobq_options_set_event_buffer(o, 64));
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  TAPI_OK(jobq_register(q, "k", handler, NULL, NULL));
  TAPI_OK(jobq_start(q));
  jobq_event_free(next_of(q, JOBQ_EVENT_STORAGE_ERROR));
  TAPI_OK(jobq_close(q, 0));
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char buf[4096] = {0};
  assert_true(pread(fd, buf, sizeof buf - 1, 0) > 0);
  close(fd);
  unlink(tmpl);
  assert_non_null(strstr(buf, "libjobq: error: storage failed this process's claims: faulty: "
                              "database disk image is malformed (JOBQ_ECORRUPT)"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_healthy),
      cmocka_unit_test_setup(test_claims_fail_then_recover, reset),
      cmocka_unit_test_setup(test_heartbeats_fail, reset),
      cmocka_unit_test_setup(test_retention_fails, reset),
      cmocka_unit_test_setup(test_health_probe, reset),
      cmocka_unit_test_setup(test_log_levels_and_stderr, reset),
  };
  return cmocka_run_group_tests(tests, setup_backend, NULL);
}
