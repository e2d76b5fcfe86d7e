/* Shared stats and ETA: bad input for every new function (a specific code,
 * a sentence, nothing written), a backend without stats (JOBQ_ENOTSUP), a
 * backend whose stats cannot be read (the code, the process-local part
 * still there), and the duration buckets' percentiles. */
#include "testutil.h"

#include "jobq/storage.h"

#include <math.h>

extern const jobq_storage_ops jobq__memory_ops;

static int stats_fail; /* set: stats_read fails */

static int f_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}
static int f_stats_read(void *st, const char *kind, int depth, int64_t now,
                        jobq_storage_kind_stats **out, size_t *n) {
  if (stats_fail && depth) {
    jobq_storage_set_error("statsfail: database disk image is malformed");
    return JOBQ_ECORRUPT;
  }
  return jobq__memory_ops.stats_read(st, kind, depth, now, out, n);
}

static jobq_storage_ops nostats_ops, failing_ops;

static int setup(void **state) {
  (void)state;
  static int done;
  if (done) return 0;
  done = 1;
  nostats_ops = jobq__memory_ops;
  nostats_ops.scheme = "nostats";
  nostats_ops.open = f_open;
  nostats_ops.stats_add = NULL;
  nostats_ops.stats_read = NULL;
  failing_ops = jobq__memory_ops;
  failing_ops.scheme = "statsfail";
  failing_ops.open = f_open;
  failing_ops.stats_read = f_stats_read;
  if (jobq_storage_register(&nostats_ops) != 0 || jobq_storage_register(&failing_ops) != 0)
    return -1;
  return 0;
}

static jobq_t *open_url(const char *url, tapi_clock *clk, int64_t default_ms) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  TAPI_OK(jobq_options_set_storage(o, url));
  TAPI_OK(jobq_options_set_workers(o, 0));
  if (clk) TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, clk));
  if (default_ms) TAPI_OK(jobq_options_set_default_duration(o, default_ms));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  return q;
}

/* ETA of the second job of a fresh kind "k": one ahead at the default. */
static int64_t eta_second(jobq_t *q) {
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "{}", NULL, a));
  TAPI_OK(jobq_submit(q, "k", "{}", NULL, b));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, b, &j));
  int64_t eta = jobq_job_eta_ms(j);
  jobq_job_free(j);
  return eta;
}

static void test_default_duration_bad_input(void **state) {
  (void)state;
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_default_duration",
           jobq_options_set_default_duration(NULL, 1000));
  TAPI_ERR_HAS("opts is NULL");
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "memory:"));
  TAPI_OK(jobq_options_set_workers(o, 0));
  TAPI_OK(jobq_options_set_default_duration(o, 7000));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_default_duration",
           jobq_options_set_default_duration(o, 0));
  TAPI_ERR_HAS("0 ms is outside 1 ms..one day");
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_default_duration",
           jobq_options_set_default_duration(o, -5));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_default_duration",
           jobq_options_set_default_duration(o, INT64_C(86400001)));
  TAPI_ERR_HAS("86400001 ms is outside");
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  assert_int_equal(eta_second(q), 7000); /* the refused values wrote nothing */
  tapi_close(q);
  /* and the default default */
  q = tapi_open(NULL, 0);
  assert_int_equal(eta_second(q), 45000);
  tapi_close(q);
}

static void noop(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
}

static void test_expected_duration_bad_input(void **state) {
  (void)state;
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_expected_duration",
           jobq_kind_opts_set_expected_duration(NULL, 1000));
  TAPI_ERR_HAS("ko is NULL");
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_expected_duration(ko, 3000));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_expected_duration",
           jobq_kind_opts_set_expected_duration(ko, -1));
  TAPI_ERR_HAS("-1 ms is outside 0..one day");
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_expected_duration",
           jobq_kind_opts_set_expected_duration(ko, INT64_C(86400001)));
  jobq_t *q = tapi_open(NULL, 0);
  TAPI_OK(jobq_register(q, "k", noop, NULL, ko));
  jobq_kind_opts_free(ko);
  assert_int_equal(eta_second(q), 3000); /* the refused values wrote nothing */
  tapi_close(q);
}

static void test_accessors_bad_input(void **state) {
  (void)state;
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_count", jobq_stats_kind_count(NULL));
  TAPI_ERR_HAS("st is NULL");
  assert_null(jobq_stats_kind_name(NULL, 0));
  TAPI_ERR_HAS("jobq_stats_kind_name: st is NULL");
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_queued", jobq_stats_kind_queued(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_scheduled", jobq_stats_kind_scheduled(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_running", jobq_stats_kind_running(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_oldest_queued_ms",
           jobq_stats_kind_oldest_queued_ms(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_counter", jobq_stats_kind_counter(NULL, 0, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_total", jobq_stats_total(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_error_rate", jobq_stats_kind_error_rate(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_duration_quantile",
           jobq_stats_kind_duration_quantile(NULL, 0, 0.5));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_average_ms", jobq_stats_kind_average_ms(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_concurrency", jobq_stats_kind_concurrency(NULL, 0));
  jobq_storage_set_error("");
  assert_null(jobq_stats_to_prometheus(NULL));
  TAPI_ERR_HAS("jobq_stats_to_prometheus: st is NULL");

  /* A snapshot with one kind. */
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "{}", NULL, id));
  jobq_stats_t *st = NULL;
  TAPI_OK(jobq_stats(q, &st));
  assert_int_equal(jobq_stats_kind_count(st), 1);
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_queued", jobq_stats_kind_queued(st, 1));
  TAPI_ERR_HAS("kind index 1 is outside 0..0");
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_queued", jobq_stats_kind_queued(st, -1));
  TAPI_ERR_HAS("kind index -1 is outside 0..0");
  assert_null(jobq_stats_kind_name(st, 1));
  TAPI_ERR_HAS("kind index 1");
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_counter", jobq_stats_kind_counter(st, 0, -1));
  TAPI_ERR_HAS("counter -1 is not a JOBQ_STAT_* (0..7)");
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_counter", jobq_stats_kind_counter(st, 0, JOBQ_STAT_N));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_total", jobq_stats_total(st, JOBQ_STAT_N));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_duration_quantile",
           jobq_stats_kind_duration_quantile(st, 0, 0));
  TAPI_ERR_HAS("q 0 is not in (0, 1]");
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_duration_quantile",
           jobq_stats_kind_duration_quantile(st, 0, 1.5));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_duration_quantile",
           jobq_stats_kind_duration_quantile(st, 0, NAN));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_error_rate", jobq_stats_kind_error_rate(st, 2));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_average_ms", jobq_stats_kind_average_ms(st, 2));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_concurrency", jobq_stats_kind_concurrency(st, 2));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_running", jobq_stats_kind_running(st, 2));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_scheduled", jobq_stats_kind_scheduled(st, 2));
  TAPI_ERR(JOBQ_EINVAL, "jobq_stats_kind_oldest_queued_ms",
           jobq_stats_kind_oldest_queued_ms(st, 2));
  /* Nothing finished: NaN, not a code. */
  assert_true(isnan(jobq_stats_kind_error_rate(st, 0)));
  assert_true(isnan(jobq_stats_kind_duration_quantile(st, 0, 0.5)));
  assert_true(isnan(jobq_stats_kind_average_ms(st, 0)));
  assert_int_equal(jobq_stats_kind_queued(st, 0), 1);
  jobq_stats_free(st);
  tapi_close(q);
}

/* A backend without stats: jobq_stats works, its store-wide part says
 * JOBQ_ENOTSUP, and ETA uses what this process knows. */
static void test_backend_without_stats(void **state) {
  (void)state;
  jobq_t *q = open_url("nostats:", NULL, 0);
  jobq_stats_t *st = NULL;
  TAPI_OK(jobq_stats(q, &st));
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_stats_kind_count", jobq_stats_kind_count(st));
  TAPI_ERR_HAS("the nostats backend keeps no shared stats");
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_stats_total", jobq_stats_total(st, 0));
  char *text = jobq_stats_to_prometheus(st);
  assert_non_null(text);
  assert_non_null(strstr(text, "jobq_storage_healthy 1\n"));
  assert_null(strstr(text, "jobq_queue_jobs"));
  jobq_free(text);
  char *js = jobq_stats_to_json(st);
  assert_null(strstr(js, "\"kinds\""));
  jobq_free(js);
  jobq_stats_free(st);
  assert_int_equal(eta_second(q), 45000);
  tapi_close(q);
}

/* The store's stats cannot be read: the snapshot is still taken (a health
 * endpoint wants it then most), and its store-wide part says why. */
static void test_stats_read_fails(void **state) {
  (void)state;
  jobq_t *q = open_url("statsfail:", NULL, 0);
  stats_fail = 1;
  jobq_stats_t *st = NULL;
  TAPI_OK(jobq_stats(q, &st));
  assert_int_equal(jobq_stats_running(st), 0);
  TAPI_ERR(JOBQ_ECORRUPT, "jobq_stats_kind_count", jobq_stats_kind_count(st));
  TAPI_ERR_HAS("the store's stats could not be read");
  TAPI_ERR_HAS("database disk image is malformed");
  jobq_stats_free(st);
  stats_fail = 0;
  TAPI_OK(jobq_stats(q, &st));
  assert_int_equal(jobq_stats_kind_count(st), 0);
  jobq_stats_free(st);
  tapi_close(q);
}

/* A store that has never held a job: no kind, zero totals, JSON with an
 * empty "kinds" (the SQLite backend answers no rows at all: nothing may be
 * sorted or copied from them). */
static void test_empty_store(void **state) {
  (void)state;
  char dir[] = "/tmp/jobq-stats-XXXXXX", url[128], cmd[160];
  assert_non_null(mkdtemp(dir));
  snprintf(url, sizeof url, "sqlite:%s/q.db", dir);
  const char *urls[] = {"memory:", url};
  for (int i = 0; i < 2; i++) {
    jobq_t *q = open_url(urls[i], NULL, 0);
    jobq_stats_t *st = NULL;
    TAPI_OK(jobq_stats(q, &st));
    assert_int_equal(jobq_stats_kind_count(st), 0);
    assert_int_equal(jobq_stats_total(st, JOBQ_STAT_SUCCEEDED), 0);
    char *js = jobq_stats_to_json(st);
    assert_non_null(js);
    assert_non_null(strstr(js, "\"kinds\":{},"));
    jobq_free(js);
    jobq_stats_free(st);
    tapi_close(q);
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* ETA: the slots' formula on one queue that drives its jobs itself (with
 * jobq_claim: not started, so the kind's concurrency is 1 here). */
static void test_eta_counts_running_elapsed(void **state) {
  (void)state;
  tapi_clock clk;
  tapi_clock_set(&clk, 1000000);
  jobq_t *q = open_url("memory:", &clk, 10000);
  char a[3][JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) TAPI_OK(jobq_submit(q, "k", "{}", NULL, a[i]));
  const char *kinds[] = {"k", NULL};
  jobq_ctx_t *ctx = NULL;
  TAPI_OK(jobq_claim(q, kinds, 0, &ctx)); /* a[0] runs from 1000000 */
  tapi_clock_set(&clk, 1000000 + 4000);
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, a[2], &j));
  assert_int_equal(jobq_job_position(j), 1);
  /* 6000 left of the running one, then a[1] for 10000 */
  assert_int_equal(jobq_job_eta_ms(j), 16000);
  jobq_job_free(j);
  tapi_clock_set(&clk, 1000000 + 25000); /* ran longer than the average: 0 left */
  TAPI_OK(jobq_get(q, a[1], &j));
  assert_int_equal(jobq_job_eta_ms(j), 0);
  jobq_job_free(j);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  tapi_close(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_default_duration_bad_input),
    cmocka_unit_test(test_expected_duration_bad_input),
    cmocka_unit_test(test_accessors_bad_input),
    cmocka_unit_test(test_backend_without_stats),
    cmocka_unit_test(test_stats_read_fails),
    cmocka_unit_test(test_eta_counts_running_elapsed),
    cmocka_unit_test(test_empty_store),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
