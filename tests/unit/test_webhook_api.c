/* The webhook API's own checks: every option setter and
 * jobq_submit_opts_add_webhook refuse bad input with a specific code and a
 * sentence and change nothing; the subscriptions each new job carries to
 * storage (what the terminal transaction turns into deliveries) are
 * exactly the job's own URLs plus its kind's default endpoints, with no
 * secret in them; readers answer NULL input as documented.
 *
 * Storage here is the memory backend behind a table that records what
 * insert_hooked and cron_fire_hooked were given (the real outboxes are
 * tested in tests/conformance/test_conf_outbox.c and end to end in
 * tests/integration/test_webhooks.c). */
#include "testutil.h"

#include "core/webhook_int.h"
#include "jobq/storage.h"

#include <stdlib.h>

extern const jobq_storage_ops jobq__memory_ops;

#define SECRET_A "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET_B "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

static char *last_hooks[8];
static int n_hooked_calls;

static void hooks_reset(void) {
  for (int i = 0; i < 8; i++) {
    free(last_hooks[i]);
    last_hooks[i] = NULL;
  }
}

static int r_insert_hooked(void *st, jobq_storage_job *const *jobs, const char *const *hooks,
                           size_t n, const int *force, int64_t now, int *dup, const char *batch_id,
                           int max_running) {
  n_hooked_calls++;
  hooks_reset();
  for (size_t i = 0; i < n && i < 8; i++)
    last_hooks[i] = hooks && hooks[i] ? strdup(hooks[i]) : NULL;
  (void)batch_id;
  (void)max_running;
  return jobq__memory_ops.insert(st, jobs, n, force, now, dup);
}
static int r_cron_fire_hooked(void *st, const char *name, int64_t e, int64_t nn,
                              jobq_storage_job *const *jobs, const char *const *hooks, size_t n,
                              int64_t now, size_t *ins) {
  (void)hooks;
  return jobq__memory_ops.cron_fire(st, name, e, nn, jobs, n, now, ins);
}
static int r_claim(void *st, const jobq_storage_outbox_claim *req, jobq_storage_delivery *out,
                   jobq_storage_job *jobs, size_t *n) {
  (void)st, (void)req, (void)out, (void)jobs;
  *n = 0;
  if (req->next_at) *req->next_at = INT64_MAX;
  return 0;
}
static int r_done(void *st, const jobq_storage_outbox_result *r, size_t n, int *applied) {
  (void)st, (void)r, (void)n, (void)applied;
  return 0;
}
static int r_list(void *st, const jobq_storage_outbox_filter *f, jobq_storage_delivery **out,
                  size_t *n, int *more) {
  (void)st, (void)f;
  *out = NULL;
  *n = 0;
  *more = 0;
  return 0;
}
static int r_counts(void *st, int64_t c[4]) {
  (void)st;
  for (int i = 0; i < 4; i++) c[i] = i + 1;
  return 0;
}
static int r_redeliver(void *st, const char *id, int64_t now) {
  (void)st, (void)now;
  return strcmp(id, "gone") == 0 ? JOBQ_ENOTFOUND : JOBQ_ESTATE;
}
static int r_enable(void *st, const char *url) {
  (void)st, (void)url;
  return JOBQ_ENOTFOUND;
}

static jobq_storage_ops rec_ops;

static int m_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}

static void register_backends(void) {
  static int done;
  if (done) return;
  done = 1;
  rec_ops = jobq__memory_ops;
  rec_ops.version = 4;
  rec_ops.scheme = "whrec";
  rec_ops.open = m_open;
  rec_ops.insert_hooked = r_insert_hooked;
  rec_ops.cron_fire_hooked = r_cron_fire_hooked;
  rec_ops.outbox_claim = r_claim;
  rec_ops.outbox_done = r_done;
  rec_ops.outbox_list = r_list;
  rec_ops.outbox_counts = r_counts;
  rec_ops.outbox_redeliver = r_redeliver;
  rec_ops.webhook_enable = r_enable;
  assert_int_equal(jobq_storage_register(&rec_ops), 0);
  /* A version 3 backend: no outbox. */
  static jobq_storage_ops v3;
  v3 = jobq__memory_ops;
  v3.version = 3;
  v3.scheme = "whv3";
  v3.open = m_open;
  assert_int_equal(jobq_storage_register(&v3), 0);
}

static void test_option_setters(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(NULL, "a", NULL, SECRET_A));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(o, NULL, NULL, SECRET_A));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(o, "", NULL, SECRET_A));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(o, "a b", NULL, SECRET_A));
  char longname[80];
  memset(longname, 'n', 65);
  longname[65] = '\0';
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(o, longname, NULL, SECRET_A));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook",
           jobq_options_add_webhook(o, "a", "ftp://example.com/", SECRET_A));
  TAPI_ERR_HAS("only http and https");
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook",
           jobq_options_add_webhook(o, "a", "https://u:p@example.com/", SECRET_A));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook",
           jobq_options_add_webhook(o, "a", NULL, "secret-without-prefix"));
  TAPI_ERR_HAS("the secret is not");
  assert_null(strstr(jobq_last_error(), "secret-without-prefix"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook",
           jobq_options_add_webhook(o, "a", NULL, SECRET_A " whsec_!!!"));
  TAPI_ERR_HAS("the second secret");
  assert_null(strstr(jobq_last_error(), "MfKQ9r8"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook",
           jobq_options_add_webhook(o, "a", NULL, SECRET_A "  " SECRET_B));
  /* From the environment: named in the sentence when missing. */
  unsetenv("JOBQ_WEBHOOK_SECRET_MY_HOOK_1");
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(o, "my-hook.1", NULL, NULL));
  TAPI_ERR_HAS("JOBQ_WEBHOOK_SECRET_MY_HOOK_1");
  setenv("JOBQ_WEBHOOK_SECRET_MY_HOOK_1", SECRET_B, 1);
  TAPI_OK(jobq_options_add_webhook(o, "my-hook.1", NULL, NULL));
  unsetenv("JOBQ_WEBHOOK_SECRET_MY_HOOK_1");
  TAPI_OK(jobq_options_add_webhook(o, "a", "https://example.com/hook", SECRET_A " " SECRET_B));
  TAPI_ERR(JOBQ_EEXIST, "jobq_options_add_webhook", jobq_options_add_webhook(o, "a", NULL, SECRET_A));

  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_options_set_webhook_events", jobq_options_set_webhook_events(o, "zz", 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_events", jobq_options_set_webhook_events(o, "a", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_events", jobq_options_set_webhook_events(o, "a", 16));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_events", jobq_options_set_webhook_events(NULL, "a", 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_events", jobq_options_set_webhook_events(o, NULL, 1));
  TAPI_OK(jobq_options_set_webhook_events(o, "a", JOBQ_WEBHOOK_ON_SUCCEEDED | JOBQ_WEBHOOK_ON_FAILED));

  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_options_set_webhook_kinds", jobq_options_set_webhook_kinds(o, "zz", "x"));
  TAPI_ERR(JOBQ_EKIND, "jobq_options_set_webhook_kinds", jobq_options_set_webhook_kinds(o, "a", "ok,bad kind"));
  TAPI_ERR_HAS("item 2");
  TAPI_ERR(JOBQ_EKIND, "jobq_options_set_webhook_kinds", jobq_options_set_webhook_kinds(o, "a", "ok,,x"));

  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_options_set_webhook_payload", jobq_options_set_webhook_payload(o, "zz", 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_payload", jobq_options_set_webhook_payload(o, "a", 2));

  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_allow", jobq_options_set_webhook_allow(NULL, "127.0.0.1"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_allow", jobq_options_set_webhook_allow(o, "127.0.0.1, nope"));
  TAPI_ERR_HAS("item 2");
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_allow", jobq_options_set_webhook_allow(o, "10.0.0.1/8"));
  TAPI_OK(jobq_options_set_webhook_allow(o, "127.0.0.1, ::1"));
  TAPI_OK(jobq_options_set_webhook_allow(o, NULL));

  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_timeouts", jobq_options_set_webhook_timeouts(o, 0, 10));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_timeouts", jobq_options_set_webhook_timeouts(o, 10, 600001));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_timeouts", jobq_options_set_webhook_timeouts(o, 20, 10));
  TAPI_ERR_HAS("longer than total_ms");
  TAPI_OK(jobq_options_set_webhook_timeouts(o, 10, 20));

  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_retry", jobq_options_set_webhook_retry(o, 0, 10, 10));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_retry", jobq_options_set_webhook_retry(o, 101, 10, 10));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_retry", jobq_options_set_webhook_retry(o, 3, 0, 10));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_retry", jobq_options_set_webhook_retry(o, 3, 10, 5));
  TAPI_OK(jobq_options_set_webhook_retry(o, 3, 10, 10));

  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_concurrency", jobq_options_set_webhook_concurrency(o, -1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_concurrency", jobq_options_set_webhook_concurrency(o, 10001));
  TAPI_OK(jobq_options_set_webhook_concurrency(o, 0));

  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_yield", jobq_options_set_webhook_yield(NULL, 10));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_yield", jobq_options_set_webhook_yield(o, -1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_webhook_yield", jobq_options_set_webhook_yield(o, 60001));
  TAPI_ERR_HAS("0..60000");
  TAPI_OK(jobq_options_set_webhook_yield(o, 0));
  TAPI_OK(jobq_options_set_webhook_yield(o, 60000));
  jobq_options_free(o);
}

static void test_submit_opts(void **state) {
  (void)state;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(NULL, "https://example.com/", "a", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(so, "https://example.com/", NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(so, "https://example.com/", "a", 16));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(so, "https://example.com/", "a", -1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook", jobq_submit_opts_add_webhook(so, NULL, "a", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(so, "file:///etc/passwd", "a", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(so, "gopher://example.com/", "a", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(so, "https://key:secretvalue@example.com/", "a", 0));
  assert_null(strstr(jobq_last_error(), "secretvalue"));
  char *big = malloc(2100);
  strcpy(big, "https://example.com/");
  memset(big + 20, 'a', 2060);
  big[2080] = '\0';
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook", jobq_submit_opts_add_webhook(so, big, "a", 0));
  TAPI_ERR_HAS("2048");
  free(big);
  for (int i = 0; i < 8; i++) TAPI_OK(jobq_submit_opts_add_webhook(so, "https://example.com/x", "a", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
           jobq_submit_opts_add_webhook(so, "https://example.com/x", "a", 0));
  TAPI_ERR_HAS("at most 8");
  jobq_submit_opts_free(so);
}

static jobq_t *open_rec(const char *allow) {
  register_backends();
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "whrec:"));
  TAPI_OK(jobq_options_add_webhook(o, "default", "https://hooks.example.com/all", SECRET_A));
  TAPI_OK(jobq_options_add_webhook(o, "podcasts", "https://hooks.example.com/podcasts", SECRET_B));
  TAPI_OK(jobq_options_set_webhook_kinds(o, "podcasts", "podcast,podcast.v2"));
  TAPI_OK(jobq_options_set_webhook_events(o, "podcasts", JOBQ_WEBHOOK_ON_FINISHED | JOBQ_WEBHOOK_ON_PROGRESS));
  TAPI_OK(jobq_options_set_webhook_payload(o, "podcasts", 1));
  TAPI_OK(jobq_options_add_webhook(o, "own", NULL, SECRET_B));
  if (allow) TAPI_OK(jobq_options_set_webhook_allow(o, allow));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o); /* the queue keeps its own copy */
  return q;
}

static void test_subscriptions_stored(void **state) {
  (void)state;
  jobq_t *q = open_rec("10.1.2.3");
  char id[JOBQ_ID_SIZE];
  n_hooked_calls = 0;
  TAPI_OK(jobq_submit(q, "email", "{}", NULL, id));
  assert_int_equal(n_hooked_calls, 1);
  assert_string_equal(last_hooks[0], "[{\"e\":\"default\",\"on\":7}]");
  TAPI_OK(jobq_submit(q, "podcast", "{}", NULL, id));
  assert_string_equal(last_hooks[0],
                      "[{\"e\":\"default\",\"on\":7},{\"e\":\"podcasts\",\"on\":15,\"p\":1}]");
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_add_webhook(so, "https://example.com/cb?\"q\"", "own", JOBQ_WEBHOOK_ON_FAILED));
  TAPI_OK(jobq_submit_opts_add_webhook(so, "http://10.1.2.3:8080/allowed", "default", 0));
  TAPI_OK(jobq_submit(q, "email", "{}", so, id));
  assert_string_equal(last_hooks[0],
                      "[{\"e\":\"own\",\"on\":2,\"u\":\"https://example.com/cb?\\\"q\\\"\"},"
                      "{\"e\":\"default\",\"on\":7,\"u\":\"http://10.1.2.3:8080/allowed\"},"
                      "{\"e\":\"default\",\"on\":7}]");
  /* No secret in what storage got. */
  assert_null(strstr(last_hooks[0], "whsec_"));
  assert_null(strstr(last_hooks[0], "MfKQ9r8"));
  /* submit_many: each job its own. */
  const char *kinds[] = {"email", "podcast"};
  const char *payloads[] = {"1", "2"};
  const jobq_submit_opts_t *opts[] = {so, NULL};
  char ids[2 * JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit_many(q, 2, kinds, payloads, opts, ids, NULL));
  assert_non_null(strstr(last_hooks[0], "\"own\""));
  assert_string_equal(last_hooks[1],
                      "[{\"e\":\"default\",\"on\":7},{\"e\":\"podcasts\",\"on\":15,\"p\":1}]");
  jobq_submit_opts_free(so);

  /* Refused at submit: an endpoint this process does not know, and
   * literal internal addresses not allowed; nothing stored. */
  int before = n_hooked_calls;
  so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_add_webhook(so, "https://example.com/", "nobody", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, "email", "{}", so, id));
  TAPI_ERR_HAS("'nobody' is not configured");
  jobq_submit_opts_free(so);
  static const char *const refused[] = {
      "http://127.0.0.1/",         "http://127.9.9.9:8080/x",  "http://10.0.0.5/",
      "http://172.16.0.1/",        "http://192.168.1.1/",      "http://169.254.169.254/latest",
      "http://100.64.0.1/",        "http://224.0.0.1/",        "http://0.0.0.0/",
      "http://255.255.255.255/",   "http://[::1]/",            "http://[fe80::1]/",
      "http://[fc00::1]/",         "http://[::ffff:127.0.0.1]/", "http://[fd00:ec2::254]/",
      "http://2130706433/",        "http://0x7f.1/",           "http://100.100.100.200/",
      "http://[64:ff9b::a00:1]/",  "http://198.18.0.1/",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    so = jobq_submit_opts_new();
    TAPI_OK(jobq_submit_opts_add_webhook(so, refused[i], "own", 0));
    TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, "email", "{}", so, id));
    if (strstr(jobq_last_error(), "is not a public address") == NULL) {
      print_error("%s: %s\n", refused[i], jobq_last_error());
      fail();
    }
    jobq_submit_opts_free(so);
  }
  assert_int_equal(n_hooked_calls, before);
  jobq_page_t *page = NULL;
  jobq_filter_t *f = jobq_filter_new();
  TAPI_OK(jobq_list(q, f, &page));
  assert_int_equal(jobq_page_count(page), 5); /* the five stored above, no more */
  jobq_page_free(page);
  jobq_filter_free(f);
  /* At most 8 in all: 7 own + the two endpoints of kind "podcast" is 9. */
  so = jobq_submit_opts_new();
  for (int i = 0; i < 7; i++) TAPI_OK(jobq_submit_opts_add_webhook(so, "https://example.com/", "own", 0));
  TAPI_OK(jobq_submit(q, "email", "{}", so, id)); /* 7 + 1 */
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, "podcast", "{}", so, id));
  TAPI_ERR_HAS("would have 9 webhooks (7 of its own and 2 of its kind's endpoints)");
  jobq_submit_opts_free(so);
  /* A name passes the submit check: it is judged on its address when sent. */
  so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_add_webhook(so, "http://localhost:9/", "own", 0));
  TAPI_OK(jobq_submit(q, "email", "{}", so, id));
  jobq_submit_opts_free(so);
  /* Schedules take their kind's endpoints, not submit options' URLs. */
  so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_add_webhook(so, "https://example.com/", "own", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_cron_add", jobq_cron_add(q, "n", "* * * * *", NULL, "email", "{}", so));
  TAPI_ERR_HAS("a schedule's jobs are subscribed");
  jobq_submit_opts_free(so);
  jobq_close(q, 0);
  hooks_reset();
}

static void test_no_outbox(void **state) {
  (void)state;
  register_backends();
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "whv3:"));
  TAPI_OK(jobq_options_add_webhook(o, "default", "https://example.com/", SECRET_A));
  jobq_t *q = NULL;
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_open", jobq_open(&q, o));
  TAPI_ERR_HAS("keeps no webhook outbox");
  assert_null(q);
  jobq_options_free(o);
  /* Without endpoints the queue opens; its own URLs cannot be signed, and
   * the readers say the backend has no outbox. */
  o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "whv3:"));
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_add_webhook(so, "https://example.com/", "own", 0));
  char id[JOBQ_ID_SIZE];
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, "email", "{}", so, id));
  jobq_submit_opts_free(so);
  TAPI_OK(jobq_submit(q, "email", "{}", NULL, id)); /* no subscription: fine */
  jobq_deliveries_t *d = NULL;
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, -1, 10, NULL, &d));
  assert_null(d);
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, "x"));
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_webhook_enable", jobq_webhook_enable(q, "https://example.com/"));
  jobq_stats_t *st = NULL;
  TAPI_OK(jobq_stats(q, &st));
  assert_int_equal(jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_PENDING), -1);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_DELIVERED), 0);
  jobq_stats_free(st);
  jobq_close(q, 0);
}

static void test_readers(void **state) {
  (void)state;
  jobq_t *q = open_rec(NULL);
  jobq_deliveries_t *d = NULL;
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(NULL, NULL, -1, 10, NULL, &d));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, -1, 10, NULL, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, -2, 10, NULL, &d));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, 4, 10, NULL, &d));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, -1, 0, NULL, &d));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, -1, 1001, NULL, &d));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, "short", -1, 10, NULL, &d));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, -1, 10, "", &d));
  assert_null(d);
  TAPI_OK(jobq_webhook_deliveries(q, NULL, -1, 10, NULL, &d));
  assert_int_equal(jobq_deliveries_count(d), 0);
  assert_null(jobq_deliveries_at(d, 0));
  assert_null(jobq_deliveries_next_cursor(d));
  char *js = jobq_deliveries_to_json(d);
  assert_string_equal(js, "{\"deliveries\":[],\"nextCursor\":null}");
  jobq_free(js);
  jobq_deliveries_free(d);
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_redeliver", jobq_webhook_redeliver(NULL, "x"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, ""));
  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, "gone"));
  TAPI_ERR(JOBQ_ESTATE, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, "pending-one"));
  TAPI_ERR_HAS("has not failed");
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_enable", jobq_webhook_enable(NULL, "https://x/"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_enable", jobq_webhook_enable(q, NULL));
  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_webhook_enable", jobq_webhook_enable(q, "https://x/"));
  TAPI_ERR_HAS("is not disabled");
  jobq_stats_t *st = NULL;
  TAPI_OK(jobq_stats(q, &st));
  for (int s = 0; s < 4; s++) assert_int_equal(jobq_stats_webhook_outbox(st, s), s + 1);
  assert_int_equal(jobq_stats_webhook_outbox(st, 4), -1);
  assert_int_equal(jobq_stats_webhook_outbox(st, -1), -1);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_SENDING), -1);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_FAILED), 0);
  char *prom = jobq_stats_to_prometheus(st);
  assert_non_null(strstr(prom, "jobq_webhook_outbox{state=\"failed\"} 4"));
  assert_non_null(strstr(prom, "jobq_webhook_tries_total{outcome=\"delivered\"} 0"));
  jobq_free(prom);
  js = jobq_stats_to_json(st);
  assert_non_null(strstr(js, "\"outbox\":{\"pending\":1,\"sending\":2,\"delivered\":3,\"failed\":4}"));
  jobq_free(js);
  jobq_stats_free(st);
  jobq_close(q, 0);

  assert_int_equal(jobq_stats_webhook_outbox(NULL, 0), -1);
  assert_int_equal(jobq_stats_webhook_tries(NULL, 2), -1);
  assert_int_equal(jobq_deliveries_count(NULL), 0);
  assert_null(jobq_deliveries_at(NULL, 0));
  assert_null(jobq_deliveries_next_cursor(NULL));
  assert_null(jobq_deliveries_to_json(NULL));
  TAPI_ERR_HAS("jobq_deliveries_to_json");
  jobq_deliveries_free(NULL);
  assert_null(jobq_delivery_id(NULL));
  assert_null(jobq_delivery_job_id(NULL));
  assert_null(jobq_delivery_endpoint(NULL));
  assert_null(jobq_delivery_url(NULL));
  assert_null(jobq_delivery_last_error(NULL));
  assert_int_equal(jobq_delivery_event(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_delivery_state(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_delivery_attempts(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_delivery_last_status(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_delivery_created_at(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_delivery_next_at(NULL), JOBQ_EINVAL);
  assert_int_equal(jobq_delivery_updated_at(NULL), JOBQ_EINVAL);
  assert_string_equal(jobq_delivery_state_name(JOBQ_DELIVERY_PENDING), "pending");
  assert_string_equal(jobq_delivery_state_name(JOBQ_DELIVERY_SENDING), "sending");
  assert_string_equal(jobq_delivery_state_name(JOBQ_DELIVERY_DELIVERED), "delivered");
  assert_string_equal(jobq_delivery_state_name(JOBQ_DELIVERY_FAILED), "failed");
  assert_null(jobq_delivery_state_name(4));
  assert_null(jobq_delivery_state_name(-1));
  jobq_storage_delivery_clear(NULL);
}

/* Deliveries step aside for a backlog of short jobs: while claims keep
 * coming back full (backlog_at fresh), for at most one second in a row;
 * then they are claimed although the backlog goes on; a pause in the
 * backlog ends the yield, and the next backlog starts a new second. */
static int jobq__wh_yield_s(uint64_t now_ns, uint64_t backlog_at, uint64_t *since) {
  return jobq__wh_yield(now_ns, backlog_at, 1000000000u, since);
}

static void test_yield_to_backlog(void **state) {
  (void)state;
  const uint64_t ms = 1000000u, t0 = 5000 * ms;
  uint64_t since = 0;
  assert_int_equal(jobq__wh_yield_s(t0, 0, &since), 0); /* never a full claim */
  assert_int_equal(since, 0);
  assert_int_equal(jobq__wh_yield_s(t0, t0 - 100 * ms, &since), 0); /* an old one */
  assert_int_equal(since, 0);
  /* A backlog: yield from its first sight, t0, ... */
  assert_int_equal(jobq__wh_yield_s(t0, t0 - 1 * ms, &since), 1);
  assert_int_equal(since, t0);
  assert_int_equal(jobq__wh_yield_s(t0 + 500 * ms, t0 + 499 * ms, &since), 1);
  assert_int_equal(jobq__wh_yield_s(t0 + 999 * ms, t0 + 998 * ms, &since), 1);
  /* a stamp made after the sender read the time is fresh, not ancient */
  assert_int_equal(jobq__wh_yield_s(t0 + 999 * ms, t0 + 999 * ms + 1, &since), 1);
  assert_int_equal(since, t0);
  /* ... for one second; the backlog still there, deliveries go on. */
  assert_int_equal(jobq__wh_yield_s(t0 + 1000 * ms, t0 + 999 * ms, &since), 0);
  assert_int_equal(jobq__wh_yield_s(t0 + 5000 * ms, t0 + 4999 * ms, &since), 0);
  assert_int_equal(since, t0);
  /* The backlog ends (no full claim for 20 ms): the state resets ... */
  assert_int_equal(jobq__wh_yield_s(t0 + 5030 * ms, t0 + 5000 * ms, &since), 0);
  assert_int_equal(since, 0);
  /* ... and the next backlog yields again, for its own second. */
  assert_int_equal(jobq__wh_yield_s(t0 + 6000 * ms, t0 + 5999 * ms, &since), 1);
  assert_int_equal(since, t0 + 6000 * ms);
  assert_int_equal(jobq__wh_yield_s(t0 + 7000 * ms, t0 + 6999 * ms, &since), 0);
  /* Another window (jobq_options_set_webhook_yield), and 0: never. */
  since = 0;
  assert_int_equal(jobq__wh_yield(t0, t0, 250 * ms, &since), 1);
  assert_int_equal(jobq__wh_yield(t0 + 249 * ms, t0 + 249 * ms, 250 * ms, &since), 1);
  assert_int_equal(jobq__wh_yield(t0 + 250 * ms, t0 + 250 * ms, 250 * ms, &since), 0);
  since = 0;
  assert_int_equal(jobq__wh_yield(t0, t0, 0, &since), 0);
  assert_int_equal(jobq__wh_yield(t0 + 1, t0 + 1, 0, &since), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_option_setters),
      cmocka_unit_test(test_submit_opts),
      cmocka_unit_test(test_subscriptions_stored),
      cmocka_unit_test(test_no_outbox),
      cmocka_unit_test(test_readers),
      cmocka_unit_test(test_yield_to_backlog),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
