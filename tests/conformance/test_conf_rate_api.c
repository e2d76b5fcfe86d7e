/* Storage conformance, layer 2: rate limits (jobq_kind_opts_set_rate_limit)
 * and pushing a job back (jobq_ctx_retry_after) through the public API, on
 * every backend, with the fake clock; and, on durable backends, a limit
 * shared by two queues on one store (two processes). */
#include "conformance.h"

#define T CONF_T0

static conf_qopts fake_clock_opts(conf_clock *clk) {
  conf_qopts o = {0};
  conf_clock_set(clk, T);
  o.clock = clk;
  return o;
}

/* Submits a job of kind whose id nobody needs. */
static void submit(jobq_t *q, const char *kind) {
  char id[JOBQ_ID_SIZE];
  cq_submit(q, kind, "{}", NULL, id);
}

static void register_limited(jobq_t *q, const char *kind, int starts, int64_t interval) {
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_non_null(ko);
  CK_OK(jobq_kind_opts_set_rate_limit(ko, starts, interval));
  CK_OK(jobq_register(q, kind, conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
}

/* Claims every job of kind that is due now (succeeding each); how many. */
static int claim_all(jobq_t *q, const char *kind) {
  int n = 0;
  jobq_ctx_t *ctx;
  while ((ctx = cq_claim_now(q, kind)) != NULL) {
    char id[JOBQ_ID_SIZE];
    snprintf(id, sizeof id, "%s", jobq_ctx_id(ctx));
    CK_OK(jobq_ctx_succeed(ctx, NULL));
    CK(cq_wait_state(q, id, JOBQ_SUCCEEDED), "job %s did not succeed", id);
    n++;
  }
  return n;
}

static int64_t stats_rate_limited(jobq_t *q) {
  jobq_stats_t *st = NULL;
  CK_OK(jobq_stats(q, &st));
  int64_t n = jobq_stats_rate_limited(st);
  char *js = jobq_stats_to_json(st);
  CK_HAS(js, "\"rateLimited\":");
  jobq_free(js);
  jobq_stats_free(st);
  return n;
}

/* 2 starts per second: claims take two, then wait for the window. */
static void api_rate_limit_spaces_starts(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  jobq_t *q = cq_open(c, o);
  register_limited(q, "r", 2, 1000);
  for (int i = 0; i < 5; i++) submit(q, "r");
  char other[JOBQ_ID_SIZE];
  cq_submit(q, "free", "{}", NULL, other);
  CK_INT(stats_rate_limited(q), 0);
  CK_INT(claim_all(q, "r"), 2);
  CK(stats_rate_limited(q) >= 1, "a claim held back was not counted");
  jobq_ctx_t *ctx = cq_claim_expect(q, NULL, other); /* other kinds are not held back */
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  conf_clock_set(&clk, T + 999);
  CK_INT(claim_all(q, "r"), 0);
  conf_clock_set(&clk, T + 1000);
  CK_INT(claim_all(q, "r"), 2);
  conf_clock_set(&clk, T + 1500);
  CK_INT(claim_all(q, "r"), 0);
  conf_clock_set(&clk, T + 2000);
  CK_INT(claim_all(q, NULL), 1);
  int64_t held = stats_rate_limited(q);
  conf_clock_set(&clk, T + 9000);
  cq_claim_none(q, "r");
  CK_INT(stats_rate_limited(q), held); /* nothing due: nothing held back */
  cq_close(q);
}

/* starts 0 removes a limit set before. */
static void api_rate_limit_removed(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  CK_OK(jobq_kind_opts_set_rate_limit(ko, 1, 60000));
  CK_OK(jobq_kind_opts_set_rate_limit(ko, 0, 0));
  CK_OK(jobq_register(q, "r", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  for (int i = 0; i < 5; i++) submit(q, "r");
  CK_INT(claim_all(q, "r"), 5);
  CK_INT(stats_rate_limited(q), 0);
  cq_close(q);
}

typedef struct ev_rec {
  int type, attempt, state;
  char error[64];
} ev_rec;

static void next_event(jobq_t *q, ev_rec *r) {
  jobq_event_t *e = NULL;
  int rc = jobq_next_event(q, CONF_GUARD_MS, &e);
  CK(rc == 0, "an event did not come: %s (%s)", jobq_err_name(rc), jobq_last_error());
  memset(r, 0, sizeof *r);
  if (rc) return;
  r->type = jobq_event_type(e);
  r->attempt = jobq_event_attempt(e);
  r->state = jobq_event_state(e);
  snprintf(r->error, sizeof r->error, "%s", jobq_event_error(e) ? jobq_event_error(e) : "(null)");
  jobq_event_free(e);
}

/* Pushed back without counting: queued at now + delay, attempts as before,
 * the reason as its error and in a RETRYING event; a job of one attempt
 * still gets it. */
static void api_retry_after_not_counted(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  o.event_buffer = 100;
  jobq_t *q = cq_open(c, o);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_max_attempts(so, 1));
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "k", "{}", so, id);
  jobq_submit_opts_free(so);
  for (int round = 0; round < 2; round++) {
    int64_t t0 = T + round * 5000;
    jobq_ctx_t *ctx = cq_claim_expect(q, "k", id);
    CK_INT(jobq_ctx_attempt(ctx), 1);
    CK_OK(jobq_ctx_retry_after(ctx, 5000, 0));
    CK(cq_wait_state(q, id, JOBQ_QUEUED), "job %s was not queued again", id);
    jobq_job_t *j = cq_get(q, id);
    CK_INT(jobq_job_attempts(j), 0);
    CK_INT(jobq_job_run_at(j), t0 + 5000);
    CK_STR(jobq_job_error(j), "deferred by the handler for 5000 ms");
    jobq_job_free(j);
    conf_clock_set(&clk, t0 + 4999);
    cq_claim_none(q, "k");
    conf_clock_set(&clk, t0 + 5000);
  }
  jobq_ctx_t *ctx = cq_claim_expect(q, "k", id);
  CK_INT(jobq_ctx_attempt(ctx), 1);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  CK(cq_wait_state(q, id, JOBQ_SUCCEEDED), "job %s did not succeed", id);
  static const int want[] = {JOBQ_EVENT_SUBMITTED, JOBQ_EVENT_STARTED, JOBQ_EVENT_RETRYING,
                             JOBQ_EVENT_STARTED,   JOBQ_EVENT_RETRYING, JOBQ_EVENT_STARTED,
                             JOBQ_EVENT_SUCCEEDED};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    ev_rec e;
    next_event(q, &e);
    CK(e.type == want[i], "event %zu is %s; expected %s", i, jobq_event_type_name(e.type),
       jobq_event_type_name(want[i]));
    if (want[i] == JOBQ_EVENT_RETRYING) {
      CK_STR(e.error, "deferred by the handler for 5000 ms");
      CK_INT(e.state, JOBQ_QUEUED);
    }
    if (want[i] == JOBQ_EVENT_STARTED) CK_INT(e.attempt, 1);
  }
  cq_close(q);
}

/* Pushed back and counted: a retryable failure with the delay instead of
 * the backoff; with no attempts left the job fails. */
static void api_retry_after_counted(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  CK_OK(jobq_kind_opts_set_max_attempts(ko, 2));
  CK_OK(jobq_kind_opts_set_backoff(ko, 60000, 60000, 0.0));
  CK_OK(jobq_register(q, "k", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "k", "{}", NULL, id);
  jobq_ctx_t *ctx = cq_claim_expect(q, "k", id);
  CK_OK(jobq_ctx_retry_after(ctx, 300, 1));
  CK(cq_wait_state(q, id, JOBQ_QUEUED), "job %s was not queued again", id);
  jobq_job_t *j = cq_get(q, id);
  CK_INT(jobq_job_attempts(j), 1);
  CK_INT(jobq_job_run_at(j), T + 300); /* not the 60 s backoff */
  CK_STR(jobq_job_error(j), "deferred by the handler for 300 ms");
  jobq_job_free(j);
  conf_clock_set(&clk, T + 299);
  cq_claim_none(q, "k");
  conf_clock_set(&clk, T + 300);
  ctx = cq_claim_expect(q, "k", id);
  CK_INT(jobq_ctx_attempt(ctx), 2);
  CK_OK(jobq_ctx_retry_after(ctx, 300, 1));
  CK(cq_wait_state(q, id, JOBQ_FAILED), "job %s did not fail with its attempts spent", id);
  j = cq_get(q, id);
  CK_STR(jobq_job_error(j), "deferred by the handler for 300 ms");
  jobq_job_free(j);
  cq_close(q);
}

/* Bad input: a specific code and sentence, and nothing written. */
static void api_rate_bad_input(conf_case *c) {
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_non_null(ko);
  CK_OK(jobq_kind_opts_set_rate_limit(ko, 7, 2500));
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_rate_limit(NULL, 1, 1000));
  CK_HAS(jobq_last_error(), "ko is NULL");
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_rate_limit(ko, -1, 1000));
  CK_HAS(jobq_last_error(), "starts -1");
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_rate_limit(ko, 1000001, 1000));
  CK_HAS(jobq_last_error(), "starts 1000001");
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_rate_limit(ko, 5, 0));
  CK_HAS(jobq_last_error(), "interval_ms 0 is not positive");
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_rate_limit(ko, 5, -1000));
  CK_HAS(jobq_last_error(), "interval_ms -1000 is not positive");
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_rate_limit(ko, 5, 86400001));
  CK_HAS(jobq_last_error(), "longer than a day");
  CK_INT(ko->rate_starts, 7); /* as before the refusals */
  CK_INT(ko->rate_interval_ms, 2500);
  jobq_kind_opts_free(ko);

  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  jobq_t *q = cq_open(c, o);
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "k", "{}", NULL, id);
  jobq_ctx_t *ctx = cq_claim_expect(q, "k", id);
  CK_ERR(JOBQ_EINVAL, jobq_ctx_retry_after(NULL, 10, 0));
  CK_HAS(jobq_last_error(), "ctx is NULL");
  CK_ERR(JOBQ_EINVAL, jobq_ctx_retry_after(ctx, -1, 0));
  CK_HAS(jobq_last_error(), "delay_ms -1 is negative");
  CK_ERR(JOBQ_EINVAL, jobq_ctx_retry_after(ctx, 86400001, 0));
  CK_HAS(jobq_last_error(), "longer than a day");
  CK_ERR(JOBQ_EINVAL, jobq_ctx_retry_after(ctx, 10, 2));
  CK_HAS(jobq_last_error(), "count_attempt 2");
  /* Nothing happened to the attempt: it is still running and ends as usual. */
  CK_INT(cq_state(q, id), JOBQ_RUNNING);
  jobq_job_t *j = cq_get(q, id);
  CK_INT(jobq_job_attempts(j), 1);
  CK_STR(jobq_job_error(j), NULL);
  jobq_job_free(j);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  CK(cq_wait_state(q, id, JOBQ_SUCCEEDED), "job %s did not succeed", id);
  cq_close(q);
}

/* A backend without rate_window: both features are refused with
 * JOBQ_ENOTSUP and a sentence, and nothing changes. */
static jobq_storage_ops norate_ops;
static const jobq_storage_ops *mem_ops;
static int norate_open(const char *url, void **out) {
  (void)url;
  return mem_ops->open("memory:", out);
}

static void api_rate_unsupported_backend(conf_case *c) {
  (void)c;
  if (mem_ops == NULL) {
    CK_OK(jobq__storage_lookup("memory:", &mem_ops));
    norate_ops = *mem_ops;
    norate_ops.scheme = "conf-norate";
    norate_ops.open = norate_open;
    norate_ops.rate_window = NULL;
    CK_OK(jobq_storage_register(&norate_ops));
  }
  conf_qopts o = {0};
  o.workers = 0;
  o.url = "conf-norate:";
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  CK_OK(jobq_kind_opts_set_rate_limit(ko, 5, 1000));
  CK_ERR(JOBQ_ENOTSUP, jobq_register(q, "r", conf_noop_handler, NULL, ko));
  CK_HAS(jobq_last_error(), "rate_window");
  jobq_kind_opts_free(ko);
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "r", "{}", NULL, id); /* "r" was not registered: claimable by anyone */
  jobq_ctx_t *ctx = cq_claim_expect(q, "r", id);
  CK_ERR(JOBQ_ENOTSUP, jobq_ctx_retry_after(ctx, 1000, 0));
  CK_HAS(jobq_last_error(), "cannot defer");
  CK_INT(cq_state(q, id), JOBQ_RUNNING);
  /* Counting the attempt needs nothing new. */
  CK_OK(jobq_ctx_retry_after(ctx, 1000, 1));
  CK(cq_wait_state(q, id, JOBQ_QUEUED), "job %s was not queued again", id);
  cq_close(q);
}

/* ---- several queues on one store ---- */

/* Claims every due job of kind "s" on q (succeeding each). */
typedef struct racer {
  jobq_t *q;
  int got;
  int bad; /* a claim or succeed failed */
} racer;

static void *racer_main(void *p) {
  racer *r = p;
  const char *kinds[] = {"s", NULL};
  for (;;) {
    jobq_ctx_t *ctx = NULL;
    int rc = jobq_claim(r->q, kinds, 0, &ctx);
    if (rc == JOBQ_ETIMEDOUT) break;
    if (rc != 0) {
      r->bad++;
      break;
    }
    r->got++;
    if (jobq_ctx_succeed(ctx, NULL) != 0) r->bad++;
  }
  return NULL;
}

/* Two queues (processes) on one store, 5 starts per second between them:
 * at every step of 250 ms both race to claim, and together they start 5
 * at each whole second and none in between, so no window of a second ever
 * holds more than 5. */
static void durable_rate_limit_across_queues(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  jobq_t *qa = cq_open(c, o), *qb = cq_open(c, o);
  register_limited(qa, "s", 5, 1000);
  register_limited(qb, "s", 5, 1000);
  for (int i = 0; i < 23; i++) submit(i % 2 ? qa : qb, "s");
  int total = 0;
  for (int step = 0; step < 24; step++) {
    conf_clock_set(&clk, T + step * 250);
    racer r[4] = {{qa, 0, 0}, {qb, 0, 0}, {qa, 0, 0}, {qb, 0, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CK(pthread_create(&t[i], NULL, racer_main, &r[i]) == 0, "thread");
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    int got = 0;
    for (int i = 0; i < 4; i++) {
      CK_INT(r[i].bad, 0);
      got += r[i].got;
    }
    int want = step % 4 ? 0 : (23 - total < 5 ? 23 - total : 5);
    CK(got == want, "step %d (T + %d ms): %d started, expected %d", step, step * 250, got, want);
    total += got;
  }
  CK_INT(total, 23);
  cq_close(qa);
  cq_close(qb);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(api_rate_limit_spaces_starts),
    CONF_TEST(api_rate_limit_removed),
    CONF_TEST(api_retry_after_not_counted),
    CONF_TEST(api_retry_after_counted),
    CONF_TEST(api_rate_bad_input),
    CONF_TEST_ONLY(api_rate_unsupported_backend, "memory"),
    CONF_TEST_NEED(durable_rate_limit_across_queues, CONF_NEED_DURABLE),
  };
  return conf_run("public API: rate limits and retry_after", tests, sizeof tests / sizeof tests[0]);
}
