/* Storage conformance, layer 2: the public API (jobq.h) on every backend.
 * Each test runs once per row of conf_backends[] (see conformance.h) with a
 * queue opened on that backend's URL. Timing goes through a fake clock
 * (jobq_options_set_clock) and jobq_claim with timeout 0, so retries and
 * delays are checked to the millisecond without depending on the machine's
 * speed.
 *
 * A backend may store an attempt's end asynchronously (finish_async): the
 * job's news is published once it is stored, so after jobq_ctx_succeed /
 * jobq_ctx_fail the tests wait (bounded) for the state they expect before
 * they look further. */
#include "conformance.h"

#include <math.h>
#include <pthread.h>
#include <sys/stat.h>

#define T CONF_T0

static conf_qopts fake_clock_opts(conf_clock *clk) {
  conf_qopts o = {0};
  conf_clock_set(clk, T);
  o.clock = clk;
  return o;
}

/* Ends ctx and waits until the job has state want. */
static void ctx_succeed_settled(jobq_t *q, jobq_ctx_t *ctx, const char *result, int want) {
  char id[JOBQ_ID_SIZE];
  snprintf(id, sizeof id, "%s", jobq_ctx_id(ctx));
  CK_OK(jobq_ctx_succeed(ctx, result));
  CK(cq_wait_state(q, id, want), "job %s did not become %s within %d ms", id,
     jobq_state_name(want), CONF_GUARD_MS);
}

static void ctx_fail_settled(jobq_t *q, jobq_ctx_t *ctx, const char *msg, int retryable,
                             int want) {
  char id[JOBQ_ID_SIZE];
  snprintf(id, sizeof id, "%s", jobq_ctx_id(ctx));
  CK_OK(jobq_ctx_fail(ctx, msg, retryable));
  CK(cq_wait_state(q, id, want), "job %s did not become %s within %d ms", id,
     jobq_state_name(want), CONF_GUARD_MS);
}

static jobq_kind_opts_t *kind_opts(int max_attempts, int64_t base, int64_t max, double jitter) {
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_non_null(ko);
  CK_OK(jobq_kind_opts_set_max_attempts(ko, max_attempts));
  CK_OK(jobq_kind_opts_set_backoff(ko, base, max, jitter));
  return ko;
}

/* ---- ordering ------------------------------------------------------------------ */

static void api_priority_then_fifo(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  static const int prio[] = {0, 5, 0, 5, -1, 1000, -1000};
  char ids[7][JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  for (int i = 0; i < 7; i++) cq_submit_p(q, "k", prio[i], ids[i]);
  cq_submit_p(q, "other", 1000, other);
  static const int order[] = {5, 1, 3, 0, 2, 4, 6};
  for (int i = 0; i < 7; i++) {
    jobq_ctx_t *ctx = cq_claim_expect(q, "k", ids[order[i]]);
    CK_STR(jobq_ctx_kind(ctx), "k");
    CK_STR(jobq_ctx_payload(ctx), "{}");
    CK_INT(jobq_ctx_attempt(ctx), 1);
    CK_OK(jobq_ctx_succeed(ctx, NULL));
  }
  cq_claim_none(q, "k");
  jobq_ctx_t *ctx = cq_claim_expect(q, NULL, other);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_claim_none(q, NULL);

  /* Several kinds in one claim: the best of them. */
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], z[JOBQ_ID_SIZE];
  cq_submit_p(q, "a", 0, a);
  cq_submit_p(q, "b", 1, b);
  cq_submit_p(q, "z", 9, z);
  const char *ab[] = {"a", "b", NULL};
  CK_OK(jobq_claim(q, ab, 0, &ctx));
  CK_STR(jobq_ctx_id(ctx), b);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  CK_OK(jobq_claim(q, ab, 0, &ctx));
  CK_STR(jobq_ctx_id(ctx), a);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  CK_ERR(JOBQ_ETIMEDOUT, jobq_claim(q, ab, 0, &ctx));
  ctx = cq_claim_expect(q, NULL, z);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_close(q);
}

static void api_delay_and_run_at(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  char d[JOBQ_ID_SIZE], r[JOBQ_ID_SIZE], past[JOBQ_ID_SIZE];
  CK_OK(jobq_submit_opts_set_delay(so, 5000));
  cq_submit(q, "k", "1", so, d);
  jobq_submit_opts_free(so);
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_delay(so, 99999));
  CK_OK(jobq_submit_opts_set_run_at(so, T + 2000)); /* overrides the delay */
  cq_submit(q, "k", "2", so, r);
  jobq_submit_opts_free(so);
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_run_at(so, T - 1000)); /* past: due now */
  cq_submit(q, "k", "3", so, past);
  jobq_submit_opts_free(so);

  jobq_job_t *j = cq_get(q, d);
  CK_INT(jobq_job_state(j), JOBQ_QUEUED);
  CK_INT(jobq_job_run_at(j), T + 5000);
  CK_INT(jobq_job_created_at(j), T);
  CK_INT(jobq_job_position(j), -1);
  jobq_job_free(j);
  j = cq_get(q, r);
  CK_INT(jobq_job_run_at(j), T + 2000);
  jobq_job_free(j);

  jobq_ctx_t *ctx = cq_claim_expect(q, "k", past);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_claim_none(q, "k");
  conf_clock_set(&clk, T + 1999);
  cq_claim_none(q, "k");
  conf_clock_set(&clk, T + 2000);
  ctx = cq_claim_expect(q, "k", r);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  conf_clock_set(&clk, T + 4999);
  cq_claim_none(q, NULL);
  conf_clock_set(&clk, T + 5000);
  ctx = cq_claim_expect(q, NULL, d);
  CK_STR(jobq_ctx_payload(ctx), "1");
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_close(q);
}

/* ---- retries --------------------------------------------------------------------- */

static void api_retry_exact_backoff(conf_case *c) {
  conf_clock clk;
  double r = 0.75; /* jitter 0: the random value must not matter */
  conf_qopts o = fake_clock_opts(&clk);
  o.random = &r;
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = kind_opts(4, 1000, 3000, 0.0);
  CK_OK(jobq_register(q, "flaky", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "flaky", "{}", NULL, id);
  /* attempt n fails at t_n; retry n+1 is due at t_n + min(3000, 1000 * 2^(n-1)) */
  static const int64_t start[] = {0, 1000, 3000, 6000};
  static const char *const err[] = {"e1", "e2", "e3", "e4"};
  for (int a = 0; a < 4; a++) {
    if (a > 0) {
      conf_clock_set(&clk, T + start[a] - 1);
      cq_claim_none(q, "flaky");
      conf_clock_set(&clk, T + start[a]);
    }
    jobq_ctx_t *ctx = cq_claim_expect(q, "flaky", id);
    CK_INT(jobq_ctx_attempt(ctx), a + 1);
    ctx_fail_settled(q, ctx, err[a], 1, a < 3 ? JOBQ_QUEUED : JOBQ_FAILED);
    jobq_job_t *j = cq_get(q, id);
    CK_INT(jobq_job_attempts(j), a + 1);
    CK_INT(jobq_job_max_attempts(j), 4);
    CK_STR(jobq_job_error(j), err[a]);
    if (a < 3) CK_INT(jobq_job_run_at(j), T + start[a + 1]);
    jobq_job_free(j);
  }
  jobq_job_t *j = cq_get(q, id);
  CK_INT(jobq_job_state(j), JOBQ_FAILED);
  CK_INT(jobq_job_finished_at(j), T + 6000);
  CK_INT(jobq_job_attempts(j), 4);
  for (int a = 0; a < 4; a++) {
    CK_STR(jobq_job_attempt_error(j, a), err[a]);
    CK_INT(jobq_job_attempt_started_at(j, a), T + start[a]);
    CK_INT(jobq_job_attempt_finished_at(j, a), T + start[a]);
  }
  jobq_job_free(j);
  conf_clock_set(&clk, T + 1000000);
  cq_claim_none(q, NULL);
  cq_close(q);
}

static void api_backoff_jitter_exact(conf_case *c) {
  conf_clock clk;
  double r = 0.5;
  conf_qopts o = fake_clock_opts(&clk);
  o.random = &r;
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = kind_opts(5, 1000, 300000, 0.5);
  CK_OK(jobq_register(q, "jit", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "jit", NULL, NULL, id);
  jobq_ctx_t *ctx = cq_claim_expect(q, "jit", id);
  CK_STR(jobq_ctx_payload(ctx), "null");
  ctx_fail_settled(q, ctx, "x", 1, JOBQ_QUEUED);
  jobq_job_t *j = cq_get(q, id);
  CK_INT(jobq_job_run_at(j), T + 750); /* 1000 less 0.5 * 0.5 of it */
  jobq_job_free(j);
  conf_clock_set(&clk, T + 749);
  cq_claim_none(q, NULL);
  conf_clock_set(&clk, T + 750);
  ctx = cq_claim_expect(q, "jit", id);
  ctx_fail_settled(q, ctx, "x", 1, JOBQ_QUEUED);
  j = cq_get(q, id);
  CK_INT(jobq_job_run_at(j), T + 750 + 1500); /* 2000 less a quarter */
  jobq_job_free(j);
  cq_close(q);
}

static void api_max_attempts_and_permanent_failure(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  jobq_kind_opts_t *ko = kind_opts(1, 1000, 1000, 0.0);
  CK_OK(jobq_register(q, "once", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  /* Submit option, on a kind this process does not register: default
   * backoff 1000 ms less 0.2 * 0.5 of it. */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_max_attempts(so, 2));
  char u[JOBQ_ID_SIZE], p[JOBQ_ID_SIZE], o1[JOBQ_ID_SIZE], d[JOBQ_ID_SIZE];
  cq_submit(q, "unreg", "{}", so, u);
  jobq_submit_opts_free(so);
  jobq_ctx_t *ctx = cq_claim_expect(q, "unreg", u);
  ctx_fail_settled(q, ctx, "first", 1, JOBQ_QUEUED);
  jobq_job_t *j = cq_get(q, u);
  CK_INT(jobq_job_run_at(j), T + 900);
  CK_INT(jobq_job_max_attempts(j), 2);
  jobq_job_free(j);
  conf_clock_set(&clk, T + 900);
  ctx = cq_claim_expect(q, "unreg", u);
  CK_INT(jobq_ctx_attempt(ctx), 2);
  ctx_fail_settled(q, ctx, "second", 1, JOBQ_FAILED);
  j = cq_get(q, u);
  CK_INT(jobq_job_attempts(j), 2);
  CK_STR(jobq_job_error(j), "second");
  jobq_job_free(j);

  /* retryable 0: fails now, attempts left or not. */
  cq_submit(q, "perm", "{}", NULL, p);
  ctx = cq_claim_expect(q, "perm", p);
  ctx_fail_settled(q, ctx, "no way", 0, JOBQ_FAILED);
  j = cq_get(q, p);
  CK_INT(jobq_job_attempts(j), 1);
  CK_INT(jobq_job_max_attempts(j), 3); /* the default, resolved at the claim */
  CK_STR(jobq_job_error(j), "no way");
  CK_STR(jobq_job_attempt_error(j, 0), "no way");
  jobq_job_free(j);

  /* The kind's max attempts. */
  cq_submit(q, "once", "{}", NULL, o1);
  ctx = cq_claim_expect(q, "once", o1);
  ctx_fail_settled(q, ctx, "only try", 1, JOBQ_FAILED);

  /* An empty message is stored as "failed". */
  cq_submit(q, "perm", "{}", NULL, d);
  ctx = cq_claim_expect(q, "perm", d);
  ctx_fail_settled(q, ctx, "", 0, JOBQ_FAILED);
  j = cq_get(q, d);
  CK_STR(jobq_job_error(j), "failed");
  jobq_job_free(j);
  conf_clock_set(&clk, T + 10000000);
  cq_claim_none(q, NULL);
  cq_close(q);
}

/* ---- cancel ------------------------------------------------------------------------- */

static void api_cancel_queued_running_finished(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char qd[JOBQ_ID_SIZE], rn[JOBQ_ID_SIZE], rf[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cq_submit(q, "cq", "{}", NULL, qd);
  conf_clock_set(&clk, T + 3);
  CK_OK(jobq_cancel(q, qd));
  jobq_job_t *j = cq_get(q, qd);
  CK_INT(jobq_job_state(j), JOBQ_CANCELLED);
  CK_STR(jobq_job_error(j), "cancelled");
  CK_INT(jobq_job_finished_at(j), T + 3);
  CK_INT(jobq_job_attempts(j), 0);
  jobq_job_free(j);
  cq_claim_none(q, "cq");
  CK_ERR(JOBQ_ESTATE, jobq_cancel(q, qd));
  CK_HAS(jobq_last_error(), "jobq_cancel");

  /* Running: flagged; ends cancelled although the attempt succeeds. */
  cq_submit(q, "cr", "{}", NULL, rn);
  jobq_ctx_t *ctx = cq_claim_expect(q, "cr", rn);
  CK_INT(jobq_ctx_cancelled(ctx), 0);
  CK_OK(jobq_cancel(q, rn));
  CK_INT(jobq_ctx_cancelled(ctx), 1);
  j = cq_get(q, rn);
  CK_INT(jobq_job_state(j), JOBQ_RUNNING);
  CK_INT(jobq_job_cancel_requested(j), 1);
  jobq_job_free(j);
  ctx_succeed_settled(q, ctx, "{\"done\":1}", JOBQ_CANCELLED);
  j = cq_get(q, rn);
  CK_STR(jobq_job_result(j), NULL);
  CK(jobq_job_error(j) != NULL, "a cancelled job has an error text");
  jobq_job_free(j);

  /* ... or fails retryably: not retried. */
  cq_submit(q, "cr", "{}", NULL, rf);
  ctx = cq_claim_expect(q, "cr", rf);
  CK_OK(jobq_cancel(q, rf));
  ctx_fail_settled(q, ctx, "stopping", 1, JOBQ_CANCELLED);
  conf_clock_set(&clk, T + 10000000);
  cq_claim_none(q, NULL);

  CK_ERR(JOBQ_ESTATE, jobq_cancel(q, rn));
  jobq__id_new(nope, T);
  CK_ERR(JOBQ_ENOTFOUND, jobq_cancel(q, nope));
  CK_ERR(JOBQ_ENOTFOUND, jobq_cancel(q, "short"));
  CK_ERR(JOBQ_EINVAL, jobq_cancel(q, NULL));
  CK_ERR(JOBQ_EINVAL, jobq_cancel(q, ""));
  cq_close(q);
}

/* ---- list ------------------------------------------------------------------------------ */

/* Walks every page of f; returns the ids in order (checks page sizes, the
 * cursor at the end and that no id repeats). */
static size_t api_list_all(jobq_t *q, jobq_filter_t *f, int limit, char (*ids)[JOBQ_ID_SIZE],
                           size_t cap, int *pages) {
  size_t total = 0;
  *pages = 0;
  CK_OK(jobq_filter_set_limit(f, limit));
  CK_OK(jobq_filter_set_cursor(f, NULL));
  for (;;) {
    jobq_page_t *p = NULL;
    CK_OK(jobq_list(q, f, &p));
    (*pages)++;
    size_t n = jobq_page_count(p);
    const char *next = jobq_page_next_cursor(p);
    CK(n <= (size_t)limit, "a page of %zu for limit %d", n, limit);
    CK(next == NULL || n == (size_t)limit, "a cursor after a short page (%zu < %d)", n, limit);
    for (size_t i = 0; i < n; i++) {
      const jobq_job_t *j = jobq_page_job(p, i);
      CK(total < cap, "more than %zu jobs listed", cap);
      for (size_t k = 0; k < total; k++)
        CK(strcmp(ids[k], jobq_job_id(j)) != 0, "job %s listed twice", jobq_job_id(j));
      memcpy(ids[total++], jobq_job_id(j), JOBQ_ID_SIZE);
      CK_INT(jobq_job_position(j), -1);
    }
    CK(jobq_page_job(p, n) == NULL, "jobq_page_job past the end is not NULL");
    if (next) {
      CK_STR(next, jobq_job_id(jobq_page_job(p, n - 1)));
      CK_OK(jobq_filter_set_cursor(f, next));
    }
    jobq_page_free(p);
    if (!next) break;
    CK(*pages < 1000, "paging does not end");
  }
  return total;
}

static void api_list_filters_and_paging(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  enum { N = 25 };
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) {
    jobq_submit_opts_t *so = jobq_submit_opts_new();
    CK_OK(jobq_submit_opts_set_owner(so, i % 2 ? "o2" : "o1"));
    CK_OK(jobq_submit_opts_set_priority(so, i % 4));
    cq_submit(q, i % 3 ? "b" : "a", "{}", so, ids[i]);
    jobq_submit_opts_free(so);
  }
  char got[N + 5][JOBQ_ID_SIZE];
  int pages;
  jobq_filter_t *f = jobq_filter_new();
  assert_non_null(f);
  CK_INT(api_list_all(q, f, 10, got, N + 5, &pages), N);
  CK_INT(pages, 3);
  for (int i = 0; i < N; i++) CK_STR(got[i], ids[N - 1 - i]);
  CK_OK(jobq_filter_set_newest_first(f, 0));
  CK_INT(api_list_all(q, f, 7, got, N + 5, &pages), N);
  CK_INT(pages, 4);
  for (int i = 0; i < N; i++) CK_STR(got[i], ids[i]);
  CK_INT(api_list_all(q, f, 25, got, N + 5, &pages), N);
  CK_INT(pages, 1);
  CK_OK(jobq_filter_set_owner(f, "o1"));
  CK_INT(api_list_all(q, f, 4, got, N + 5, &pages), 13);
  for (int i = 0; i < 13; i++) CK_STR(got[i], ids[2 * i]);
  CK_OK(jobq_filter_set_owner(f, NULL));
  CK_OK(jobq_filter_set_kind(f, "a"));
  CK_OK(jobq_filter_set_newest_first(f, 1));
  CK_INT(api_list_all(q, f, 50, got, N + 5, &pages), 9);
  for (int i = 0; i < 9; i++) CK_STR(got[i], ids[24 - 3 * i]);
  CK_OK(jobq_filter_set_kind(f, NULL));

  /* States: claim two (priority 3 first: 3, 7), finish one. */
  jobq_ctx_t *c1 = cq_claim_expect(q, NULL, ids[3]);
  jobq_ctx_t *c2 = cq_claim_expect(q, NULL, ids[7]);
  ctx_succeed_settled(q, c1, NULL, JOBQ_SUCCEEDED);
  CK_OK(jobq_filter_set_state(f, JOBQ_RUNNING));
  CK_INT(api_list_all(q, f, 50, got, N + 5, &pages), 1);
  CK_STR(got[0], ids[7]);
  CK_OK(jobq_filter_set_state(f, JOBQ_SUCCEEDED));
  CK_INT(api_list_all(q, f, 50, got, N + 5, &pages), 1);
  CK_STR(got[0], ids[3]);
  CK_OK(jobq_filter_set_state(f, JOBQ_QUEUED));
  CK_INT(api_list_all(q, f, 10, got, N + 5, &pages), N - 2);
  CK_OK(jobq_filter_set_state(f, JOBQ_FAILED));
  CK_INT(api_list_all(q, f, 10, got, N + 5, &pages), 0);
  CK_INT(pages, 1);
  CK_OK(jobq_filter_set_state(f, -1));

  /* NULL filter: the defaults (50, newest first). */
  jobq_page_t *p = NULL;
  CK_OK(jobq_list(q, NULL, &p));
  CK_INT(jobq_page_count(p), N);
  CK_STR(jobq_page_next_cursor(p), NULL);
  CK_STR(jobq_job_id(jobq_page_job(p, 0)), ids[N - 1]);
  jobq_page_free(p);

  /* A cursor naming no job is an error, not an empty page. */
  char nope[JOBQ_ID_SIZE];
  jobq__id_new(nope, T);
  CK_OK(jobq_filter_set_cursor(f, nope));
  p = NULL;
  CK_ERR(JOBQ_EINVAL, jobq_list(q, f, &p));
  CK(p == NULL, "a failed jobq_list wrote *out");
  CK_OK(jobq_filter_set_newest_first(f, 0));
  CK_ERR(JOBQ_EINVAL, jobq_list(q, f, &p));
  CK_ERR(JOBQ_EINVAL, jobq_filter_set_cursor(f, "not a cursor"));
  jobq_filter_free(f);
  CK_OK(jobq_ctx_succeed(c2, NULL));
  cq_close(q);
}

/* ---- get ------------------------------------------------------------------------------------ */

static int64_t api_pos(jobq_t *q, const char *id) {
  jobq_job_t *j = cq_get(q, id);
  int64_t p = jobq_job_position(j);
  jobq_job_free(j);
  return p;
}

static void api_get_position(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char a1[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE], a3[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE], a4[JOBQ_ID_SIZE];
  cq_submit_p(q, "a", 0, a1);
  cq_submit_p(q, "a", 0, a2);
  cq_submit_p(q, "a", 0, a3);
  cq_submit_p(q, "b", 0, b1);
  cq_submit_p(q, "a", 5, a4);
  CK_INT(api_pos(q, a4), 0);
  CK_INT(api_pos(q, a1), 1);
  CK_INT(api_pos(q, a2), 2);
  CK_INT(api_pos(q, a3), 3);
  CK_INT(api_pos(q, b1), 0);
  jobq_job_t *j = cq_get(q, a1);
  /* Nothing ran yet: one job ahead at the default 45 s, one at a time. */
  CK_INT(jobq_job_eta_ms(j), 45000);
  jobq_job_free(j);
  jobq_ctx_t *ctx = cq_claim_expect(q, "a", a4);
  CK_INT(api_pos(q, a4), -1);
  CK_INT(api_pos(q, a1), 0);
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  CK_INT(api_pos(q, a4), -1);
  jobq_job_t *g = NULL;
  char nope[JOBQ_ID_SIZE];
  jobq__id_new(nope, T);
  CK_ERR(JOBQ_ENOTFOUND, jobq_get(q, nope, &g));
  CK(g == NULL, "a failed jobq_get wrote *out");
  CK_ERR(JOBQ_EINVAL, jobq_get(q, NULL, &g));
  cq_close(q);
}

/* A delayed job that came due is in line before later jobs of its
 * priority, whether or not a claim has looked since. */
static void api_position_counts_delayed_job_that_came_due(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_delay(so, 100));
  char d[JOBQ_ID_SIZE], e[JOBQ_ID_SIZE];
  cq_submit(q, "c", "{}", so, d);
  jobq_submit_opts_free(so);
  cq_submit(q, "c", "{}", NULL, e);
  CK_INT(api_pos(q, e), 0);
  CK_INT(api_pos(q, d), -1);
  conf_clock_set(&clk, T + 200);
  CK_INT(api_pos(q, d), 0);
  int64_t pe = api_pos(q, e);
  CK(pe == 1, "jobq_job_position of the second job is %" PRId64 "; expected 1 (the delayed job "
     "submitted before it is due and runs first)", pe);
  jobq_ctx_t *ctx = cq_claim_expect(q, "c", d);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_close(q);
}

static void api_progress_result_snapshot(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_owner(so, "carol"));
  CK_OK(jobq_submit_opts_set_priority(so, -7));
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "snap", "{\"x\":[1,{\"y\":null}]}", so, id);
  jobq_submit_opts_free(so);
  conf_clock_set(&clk, T + 10);
  jobq_ctx_t *ctx = cq_claim_expect(q, "snap", id);
  CK_OK(jobq_ctx_progress(ctx, 40, "step one"));
  jobq_job_t *j = cq_get(q, id);
  CK_INT(jobq_job_state(j), JOBQ_RUNNING);
  CK_INT(jobq_job_progress(j), 40);
  CK_STR(jobq_job_step(j), "step one");
  CK_INT(jobq_job_started_at(j), T + 10);
  CK_INT(jobq_job_finished_at(j), 0);
  CK_INT(jobq_job_attempts(j), 1);
  CK_INT(jobq_job_attempt_finished_at(j, 0), 0);
  jobq_job_free(j);
  CK_OK(jobq_ctx_progress(ctx, 70, NULL));
  conf_clock_set(&clk, T + 20);
  ctx_succeed_settled(q, ctx, "{\"ok\":[true,1.5]}", JOBQ_SUCCEEDED);
  j = cq_get(q, id);
  CK_STR(jobq_job_id(j), id);
  CK_STR(jobq_job_kind(j), "snap");
  CK_STR(jobq_job_payload(j), "{\"x\":[1,{\"y\":null}]}");
  CK_STR(jobq_job_owner(j), "carol");
  CK_INT(jobq_job_priority(j), -7);
  CK_INT(jobq_job_progress(j), 100);
  CK_STR(jobq_job_step(j), "step one");
  CK_STR(jobq_job_result(j), "{\"ok\":[true,1.5]}");
  CK_STR(jobq_job_error(j), NULL);
  CK_INT(jobq_job_attempts(j), 1);
  CK_INT(jobq_job_cancel_requested(j), 0);
  CK_INT(jobq_job_created_at(j), T);
  CK_INT(jobq_job_run_at(j), T);
  CK_INT(jobq_job_started_at(j), T + 10);
  CK_INT(jobq_job_finished_at(j), T + 20);
  CK_INT(jobq_job_position(j), -1);
  CK_INT(jobq_job_attempt_started_at(j, 0), T + 10);
  CK_INT(jobq_job_attempt_finished_at(j, 0), T + 20);
  CK_STR(jobq_job_attempt_error(j, 0), NULL);
  char *js = jobq_job_to_json(j);
  CK_HAS(js, "\"result\":{\"ok\":[true,1.5]}");
  CK_HAS(js, "\"state\":\"succeeded\"");
  jobq_free(js);
  jobq_job_free(j);
  cq_close(q);
}

/* ---- wait ---------------------------------------------------------------------------------------- */

typedef struct waiter_arg {
  jobq_t *q;
  char id[JOBQ_ID_SIZE];
  int sleep_ms;
  _Atomic int done;
  int rc;
  int state, progress;
} waiter_arg;

/* Claims the job (after a pause) and succeeds it. */
static void *finisher_thread(void *p) {
  waiter_arg *a = p;
  conf_sleep_ms(a->sleep_ms);
  jobq_ctx_t *ctx = NULL;
  a->rc = jobq_claim(a->q, NULL, CONF_GUARD_MS, &ctx);
  if (a->rc == 0) {
    if (strcmp(jobq_ctx_id(ctx), a->id) != 0) a->rc = -1000;
    int rc = jobq_ctx_succeed(ctx, "7");
    if (a->rc == 0) a->rc = rc;
  }
  atomic_store(&a->done, 1);
  return NULL;
}

/* Waits for the job's next change. */
static void *wait_thread(void *p) {
  waiter_arg *a = p;
  jobq_job_t *j = NULL;
  a->rc = jobq_wait(a->q, a->id, CONF_GUARD_MS, &j);
  a->state = j ? jobq_job_state(j) : -1;
  a->progress = j ? jobq_job_progress(j) : -1;
  jobq_job_free(j);
  atomic_store(&a->done, 1);
  return NULL;
}

static void api_wait(conf_case *c) {
  jobq_t *q = cq_open(c, (conf_qopts){0});
  char id[JOBQ_ID_SIZE], t[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  /* Nothing changes: JOBQ_ETIMEDOUT, with a fresh snapshot. */
  cq_submit(q, "w", "{}", NULL, id);
  jobq_job_t *j = NULL;
  CK_ERR(JOBQ_ETIMEDOUT, jobq_wait(q, id, 30, &j));
  CK(j != NULL, "jobq_wait gave no snapshot on a timeout");
  if (j) {
    CK_STR(jobq_job_id(j), id);
    CK_INT(jobq_job_state(j), JOBQ_QUEUED);
  }
  jobq_job_free(j);
  j = NULL;
  CK_ERR(JOBQ_ETIMEDOUT, jobq_wait(q, id, 0, &j));
  jobq_job_free(j);

  /* A change made by another thread ends the wait (started or succeeded,
   * whichever came after the call; succeeded is terminal either way). */
  waiter_arg fa = {0};
  fa.q = q;
  snprintf(fa.id, sizeof fa.id, "%s", id);
  fa.sleep_ms = 20;
  pthread_t th;
  CK_INT(pthread_create(&th, NULL, finisher_thread, &fa), 0);
  j = NULL;
  CK_OK(jobq_wait(q, id, CONF_GUARD_MS, &j));
  int st = j ? jobq_job_state(j) : -1;
  CK(st == JOBQ_RUNNING || st == JOBQ_SUCCEEDED, "jobq_wait returned state %d", st);
  jobq_job_free(j);
  pthread_join(th, NULL);
  CK_OK(fa.rc);
  CK(cq_wait_state(q, id, JOBQ_SUCCEEDED), "job did not succeed");
  /* Terminal: at once. */
  j = NULL;
  CK_OK(jobq_wait(q, id, CONF_GUARD_MS, &j));
  CK_INT(jobq_job_state(j), JOBQ_SUCCEEDED);
  CK_STR(jobq_job_result(j), "7");
  jobq_job_free(j);

  /* Progress is a change too: keep reporting until the waiter saw one. */
  cq_submit(q, "w", "{}", NULL, t);
  jobq_ctx_t *ctx = cq_claim_expect(q, "w", t);
  waiter_arg wa = {0};
  wa.q = q;
  snprintf(wa.id, sizeof wa.id, "%s", t);
  CK_INT(pthread_create(&th, NULL, wait_thread, &wa), 0);
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  for (int p = 1; !atomic_load(&wa.done) && conf_mono_ms() < end; p = p % 99 + 1) {
    CK_OK(jobq_ctx_progress(ctx, p, NULL));
    conf_sleep_ms(5);
  }
  pthread_join(th, NULL);
  CK_OK(wa.rc);
  CK_INT(wa.state, JOBQ_RUNNING);
  CK(wa.progress > 0, "the wait ended with progress %d", wa.progress);
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);

  jobq__id_new(nope, T);
  j = NULL;
  CK_ERR(JOBQ_ENOTFOUND, jobq_wait(q, nope, 10, &j));
  CK(j == NULL, "jobq_wait of an unknown job wrote *out");
  CK_ERR(JOBQ_EINVAL, jobq_wait(q, id, 10, NULL));
  cq_close(q);
}

/* ---- events ------------------------------------------------------------------------------------------- */

typedef struct ev_rec {
  int type, attempt, progress, state;
  char id[JOBQ_ID_SIZE];
  char kind[32], step[32], error[32], result[32];
} ev_rec;

static void api_events_in_order(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.event_buffer = 1000;
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = kind_opts(3, 1000, 1000, 0.0);
  CK_OK(jobq_register(q, "ev", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  char id[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  cq_submit(q, "ev", "{}", NULL, id);
  cq_submit(q, "ev2", "{}", NULL, id2);
  CK_OK(jobq_cancel(q, id2));
  jobq_ctx_t *ctx = cq_claim_expect(q, "ev", id);
  CK_OK(jobq_ctx_progress(ctx, 50, "half"));
  ctx_fail_settled(q, ctx, "e1", 1, JOBQ_QUEUED);
  conf_clock_set(&clk, T + 1000);
  ctx = cq_claim_expect(q, "ev", id);
  ctx_succeed_settled(q, ctx, "{\"r\":1}", JOBQ_SUCCEEDED);

  ev_rec ev[16];
  int n = 0;
  while (n < 8) {
    jobq_event_t *e = NULL;
    int rc = jobq_next_event(q, CONF_GUARD_MS, &e);
    CK(rc == 0, "event %d did not come: %s (%s)", n, jobq_err_name(rc), jobq_last_error());
    ev_rec *r = &ev[n++];
    memset(r, 0, sizeof *r);
    r->type = jobq_event_type(e);
    r->attempt = jobq_event_attempt(e);
    r->progress = jobq_event_progress(e);
    r->state = jobq_event_state(e);
    snprintf(r->id, sizeof r->id, "%s", jobq_event_job_id(e));
    snprintf(r->kind, sizeof r->kind, "%s", jobq_event_kind(e) ? jobq_event_kind(e) : "(null)");
    snprintf(r->step, sizeof r->step, "%s", jobq_event_step(e) ? jobq_event_step(e) : "(null)");
    snprintf(r->error, sizeof r->error, "%s", jobq_event_error(e) ? jobq_event_error(e) : "(null)");
    snprintf(r->result, sizeof r->result, "%s",
             jobq_event_result(e) ? jobq_event_result(e) : "(null)");
    CK_INT(jobq_event_dropped(e), 0);
    jobq_event_free(e);
  }
  jobq_event_t *extra = NULL;
  int rc = jobq_next_event(q, 50, &extra);
  if (rc == 0) {
    int type = jobq_event_type(extra);
    jobq_event_free(extra);
    CONF_FAIL("an unexpected 9th event of type %s", jobq_event_type_name(type));
  }
  CK_INT(rc, JOBQ_ETIMEDOUT);

  /* Per job, in order. */
  static const int want1[] = {JOBQ_EVENT_SUBMITTED, JOBQ_EVENT_STARTED,  JOBQ_EVENT_PROGRESS,
                              JOBQ_EVENT_RETRYING,  JOBQ_EVENT_STARTED,  JOBQ_EVENT_SUCCEEDED};
  static const int want2[] = {JOBQ_EVENT_SUBMITTED, JOBQ_EVENT_CANCELLED};
  ev_rec *e1[8], *e2[8];
  int n1 = 0, n2 = 0;
  for (int i = 0; i < n; i++) {
    if (strcmp(ev[i].id, id) == 0) e1[n1++] = &ev[i];
    else if (strcmp(ev[i].id, id2) == 0) e2[n2++] = &ev[i];
    else CONF_FAIL("event %d is for unknown job %s", i, ev[i].id);
  }
  CK_INT(n1, 6);
  CK_INT(n2, 2);
  for (int i = 0; i < n1 && i < 6; i++) {
    CK(e1[i]->type == want1[i], "event %d of the job is %s; expected %s", i,
       jobq_event_type_name(e1[i]->type), jobq_event_type_name(want1[i]));
    CK_STR(e1[i]->kind, "ev");
  }
  for (int i = 0; i < n2 && i < 2; i++)
    CK(e2[i]->type == want2[i], "event %d of the cancelled job is %s; expected %s", i,
       jobq_event_type_name(e2[i]->type), jobq_event_type_name(want2[i]));
  if (n1 == 6) {
    CK_INT(e1[1]->attempt, 1);
    CK_INT(e1[2]->progress, 50);
    CK_STR(e1[2]->step, "half");
    CK_STR(e1[3]->error, "e1");
    CK_INT(e1[3]->state, JOBQ_QUEUED);
    CK_INT(e1[4]->attempt, 2);
    CK_STR(e1[5]->result, "{\"r\":1}");
    CK_INT(e1[5]->state, JOBQ_SUCCEEDED);
  }
  if (n2 == 2) CK_STR(e2[1]->error, "cancelled");
  cq_close(q);
}

/* ---- dedupe ------------------------------------------------------------------------------------------ */

static int submit_key(jobq_t *q, const char *kind, const char *key, int64_t ttl, int force,
                      char *id) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe(so, key, ttl));
  CK_OK(jobq_submit_opts_set_force(so, force));
  int rc = jobq_submit(q, kind, "{}", so, id);
  jobq_submit_opts_free(so);
  CK(rc == 0 || rc == 1, "jobq_submit with a dedupe key returned %d (%s): %s", rc,
     jobq_err_name(rc), jobq_last_error());
  return rc;
}

static void api_dedupe(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], x[JOBQ_ID_SIZE];
  CK_INT(submit_key(q, "d1", "K", 1000, 0, a), 0);
  CK_INT(submit_key(q, "d1", "K", 1000, 0, x), 1);
  CK_STR(x, a);
  CK_INT(submit_key(q, "d1", "K", 1000, 1, b), 0);
  CK(strcmp(a, b) != 0, "force returned the old job");
  CK_INT(submit_key(q, "d1", "K", 1000, 0, x), 1);
  CK_STR(x, b);
  /* b succeeds at T + 5: its key lives 1000 ms more. */
  CK_OK(jobq_cancel(q, a));
  conf_clock_set(&clk, T + 5);
  jobq_ctx_t *ctx = cq_claim_expect(q, "d1", b);
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  conf_clock_set(&clk, T + 5 + 999);
  CK_INT(submit_key(q, "d1", "K", 1000, 0, x), 1);
  CK_STR(x, b);
  conf_clock_set(&clk, T + 5 + 1000);
  CK_INT(submit_key(q, "d1", "K", 1000, 0, x), 0);
  CK(strcmp(x, b) != 0, "an expired key returned the old job");

  /* A failed job does not keep its key. */
  CK_INT(submit_key(q, "d2", "K2", 1000000, 0, a), 0);
  ctx = cq_claim_expect(q, "d2", a);
  ctx_fail_settled(q, ctx, "bad", 0, JOBQ_FAILED);
  CK_INT(submit_key(q, "d2", "K2", 1000000, 0, x), 0);

  /* In one batch. */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe(so, "K3", 0));
  const char *kinds[] = {"d3", "d3", "d3"};
  const char *payloads[] = {"1", "2", "3"};
  const jobq_submit_opts_t *opts[] = {so, so, NULL};
  char ids[3 * JOBQ_ID_SIZE];
  int dup[3] = {7, 7, 7};
  CK_RC(1, jobq_submit_many(q, 3, kinds, payloads, opts, ids, dup));
  jobq_submit_opts_free(so);
  CK_INT(dup[0], 0);
  CK_INT(dup[1], 1);
  CK_INT(dup[2], 0);
  CK_STR(ids + JOBQ_ID_SIZE, ids);
  CK(strcmp(ids + 2 * JOBQ_ID_SIZE, ids) != 0, "a job without a key was deduplicated");
  jobq_job_t *j = cq_get(q, ids);
  CK_STR(jobq_job_payload(j), "1");
  jobq_job_free(j);
  cq_close(q);
}

/* ---- bad input --------------------------------------------------------------------------------------------- */

static size_t count_jobs(jobq_t *q) {
  jobq_filter_t *f = jobq_filter_new();
  CK_OK(jobq_filter_set_limit(f, 1000));
  jobq_page_t *p = NULL;
  CK_OK(jobq_list(q, f, &p));
  size_t n = jobq_page_count(p);
  jobq_page_free(p);
  jobq_filter_free(f);
  return n;
}

/* ---- the result cache: keys with an absolute expiry, lookup by key -------------------------------- */

static int submit_until(jobq_t *q, const char *kind, const char *key, int64_t until, char *id) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe_until(so, key, until));
  int rc = jobq_submit(q, kind, "{}", so, id);
  jobq_submit_opts_free(so);
  return rc;
}

/* jobq_get_by_key's answer: the id of the holder, or "" for JOBQ_ENOTFOUND. */
static void by_key(jobq_t *q, const char *key, char *id) {
  jobq_job_t *j = NULL;
  int rc = jobq_get_by_key(q, key, &j);
  CK(rc == 0 || rc == JOBQ_ENOTFOUND, "jobq_get_by_key returned %d (%s): %s", rc,
     jobq_err_name(rc), jobq_last_error());
  snprintf(id, JOBQ_ID_SIZE, "%s", rc == 0 ? jobq_job_id(j) : "");
  jobq_job_free(j);
}

static void api_cache_until(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], x[JOBQ_ID_SIZE];
  /* The key lives until T + 10000, however late the job succeeds. */
  CK_INT(submit_until(q, "c1", "day:1", T + 10000, a), 0);
  by_key(q, "day:1", x);
  CK_STR(x, a); /* queued: the holder */
  jobq_job_t *j = NULL;
  CK_OK(jobq_get_by_key(q, "day:1", &j));
  CK_INT(jobq_job_state(j), JOBQ_QUEUED);
  CK_INT(jobq_job_position(j), 0);
  jobq_job_free(j);
  CK_INT(submit_until(q, "c1", "day:1", T + 10000, x), 1);
  CK_STR(x, a);
  conf_clock_set(&clk, T + 9000);
  jobq_ctx_t *ctx = cq_claim_expect(q, "c1", a);
  by_key(q, "day:1", x);
  CK_STR(x, a); /* running */
  ctx_succeed_settled(q, ctx, "{\"url\":\"u\"}", JOBQ_SUCCEEDED);
  conf_clock_set(&clk, T + 9999);
  CK_OK(jobq_get_by_key(q, "day:1", &j));
  CK_STR(jobq_job_id(j), a);
  CK_INT(jobq_job_state(j), JOBQ_SUCCEEDED);
  CK_STR(jobq_job_result(j), "{\"url\":\"u\"}");
  jobq_job_free(j);
  CK_INT(submit_until(q, "c1", "day:1", T + 10000, x), 1);
  CK_STR(x, a);
  conf_clock_set(&clk, T + 10000); /* expired */
  CK_RC(JOBQ_ENOTFOUND, jobq_get_by_key(q, "day:1", &j));
  CK(strstr(jobq_last_error(), "jobq_get_by_key: no live job holds the key 'day:1'") != NULL,
     "sentence: %s", jobq_last_error());
  CK_INT(submit_until(q, "c1", "day:1", T + 20000, b), 0);
  CK(strcmp(a, b) != 0, "an expired key returned the old job");

  /* Finishing after the expiry leaves no live key. */
  CK_INT(submit_until(q, "c2", "late", T + 10500, a), 0);
  conf_clock_set(&clk, T + 11000);
  ctx = cq_claim_expect(q, "c2", a);
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  by_key(q, "late", x);
  CK_STR(x, "");

  /* A failed or cancelled holder lets the key go. */
  CK_INT(submit_until(q, "c3", "f", T + 100000, a), 0);
  ctx = cq_claim_expect(q, "c3", a);
  ctx_fail_settled(q, ctx, "bad", 0, JOBQ_FAILED);
  by_key(q, "f", x);
  CK_STR(x, "");
  CK_INT(submit_until(q, "c4", "k4", T + 100000, a), 0);
  CK_OK(jobq_cancel(q, a));
  by_key(q, "k4", x);
  CK_STR(x, "");

  /* A forced submit takes the key over. */
  CK_INT(submit_until(q, "c5", "k5", T + 100000, a), 0);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe_until(so, "k5", T + 100000));
  CK_OK(jobq_submit_opts_set_force(so, 1));
  CK_RC(0, jobq_submit(q, "c5", "{}", so, b));
  jobq_submit_opts_free(so);
  by_key(q, "k5", x);
  CK_STR(x, b);

  /* Keys a TTL made are found the same way. */
  CK_INT(submit_key(q, "c6", "ttl", 5000, 0, a), 0);
  by_key(q, "ttl", x);
  CK_STR(x, a);
  by_key(q, "nobody", x);
  CK_STR(x, "");
  cq_close(q);
}

/* Bad input: specific codes, sentences, nothing stored. */
static void api_cache_bad_input(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char id[JOBQ_ID_SIZE] = "untouched";
  jobq_job_t *j = (jobq_job_t *)&clk;
  CK_RC(JOBQ_EINVAL, jobq_get_by_key(q, NULL, &j));
  CK_RC(JOBQ_EINVAL, jobq_get_by_key(q, "", &j));
  char big[600];
  memset(big, 'k', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CK_RC(JOBQ_EINVAL, jobq_get_by_key(q, big, &j));
  CK(strstr(jobq_last_error(), "at most 512") != NULL, "sentence: %s", jobq_last_error());
  CK_RC(JOBQ_EINVAL, jobq_get_by_key(q, "k", NULL));
  CK_RC(JOBQ_EINVAL, jobq_get_by_key(NULL, "k", &j));
  CK(j == (jobq_job_t *)&clk, "jobq_get_by_key wrote *out on failure");
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_RC(JOBQ_EINVAL, jobq_submit_opts_set_dedupe_until(so, "k", 0));
  CK_RC(JOBQ_EINVAL, jobq_submit_opts_set_dedupe_until(so, "k", -5));
  CK_RC(JOBQ_EINVAL, jobq_submit_opts_set_dedupe_until(NULL, "k", T));
  CK_RC(JOBQ_EINVAL, jobq_submit_opts_set_dedupe_until(so, "", T + 1));
  /* An expiry that is not after now: refused at submit, nothing stored. */
  CK_OK(jobq_submit_opts_set_dedupe_until(so, "past", T));
  CK_RC(JOBQ_EINVAL, jobq_submit(q, "c", "{}", so, id));
  CK(strstr(jobq_last_error(), "would expire at") != NULL, "sentence: %s", jobq_last_error());
  CK_STR(id, "untouched");
  CK_INT(count_jobs(q), 0);
  jobq_submit_opts_free(so);
  cq_close(q);
}

/* Pruning keeps a cached result while its key lives. */
static void api_cache_prune_keeps_live_keys(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], x[JOBQ_ID_SIZE];
  CK_INT(submit_until(q, "p", "live", T + 100000, a), 0);
  CK_INT(submit_key(q, "p", "short", 10, 0, b), 0);
  jobq_ctx_t *ctx = cq_claim_expect(q, "p", a);
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  ctx = cq_claim_expect(q, "p", b);
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  conf_clock_set(&clk, T + 50000);
  size_t n = 99;
  CK_OK(jobq_prune(q, 0, &n));
  CK_INT(n, 1); /* b: its key expired */
  by_key(q, "live", x);
  CK_STR(x, a);
  conf_clock_set(&clk, T + 100001);
  CK_OK(jobq_prune(q, 0, &n));
  CK_INT(n, 1);
  CK_RC(JOBQ_ENOTFOUND, jobq_get(q, a, &(jobq_job_t *){NULL}));
  cq_close(q);
}

/* ---- per-owner quotas ---------------------------------------------------------------------------------- */

static int submit_owned(jobq_t *q, const char *kind, const char *owner, const char *key, char *id) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  if (owner) CK_OK(jobq_submit_opts_set_owner(so, owner));
  if (key) CK_OK(jobq_submit_opts_set_dedupe(so, key, 0));
  jobq_storage_set_error("");
  int rc = jobq_submit(q, kind, "{}", so, id);
  jobq_submit_opts_free(so);
  return rc;
}

static void api_owner_quota(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.quota_kind[0] = "podcast";
  o.quota_max[0] = 2;
  o.quota_kind[1] = NULL; /* all kinds */
  o.quota_max[1] = 3;
  jobq_t *q = cq_open(c, o);
  char a[JOBQ_ID_SIZE], u1[JOBQ_ID_SIZE], x[JOBQ_ID_SIZE];
  CK_RC(0, submit_owned(q, "podcast", "u", NULL, u1));
  CK_RC(0, submit_owned(q, "podcast", "u", NULL, x));
  memset(x, 'Z', sizeof x);
  CK_RC(JOBQ_EQUOTA, submit_owned(q, "podcast", "u", NULL, x));
  CK(strstr(jobq_last_error(), "owner 'u' has 2 unfinished jobs of kind 'podcast'; its quota is 2"),
     "sentence: %s", jobq_last_error());
  CK(x[0] == 'Z', "an id was written on failure");
  CK_INT(count_jobs(q), 2);
  /* Other owners, and jobs without one, are not held back. */
  CK_RC(0, submit_owned(q, "podcast", "v", NULL, x));
  CK_RC(0, submit_owned(q, "podcast", NULL, NULL, x));
  CK_RC(0, submit_owned(q, "podcast", NULL, NULL, x));
  /* The overall quota: 2 podcasts + 1 other = 3. */
  CK_RC(0, submit_owned(q, "mail", "u", NULL, x));
  CK_RC(JOBQ_EQUOTA, submit_owned(q, "mail", "u", NULL, x));
  CK(strstr(jobq_last_error(), "owner 'u' has 3 unfinished jobs; its quota is 3"), "sentence: %s",
     jobq_last_error());
  /* A dedupe hit adds no job: not refused. */
  CK_RC(0, submit_owned(q, "podcast", "w", "K", a));
  CK_RC(0, submit_owned(q, "podcast", "w", NULL, x));
  CK_RC(1, submit_owned(q, "podcast", "w", "K", x));
  CK_STR(x, a);
  /* Finishing or cancelling frees room. */
  jobq_ctx_t *ctx = cq_claim_expect(q, "podcast", u1); /* the oldest */
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  CK_RC(0, submit_owned(q, "mail", "u", NULL, x)); /* the first podcast of u finished */
  CK_RC(JOBQ_EQUOTA, submit_owned(q, "mail", "u", NULL, x));
  CK_OK(jobq_cancel(q, x));
  CK_RC(0, submit_owned(q, "mail", "u", NULL, x));
  /* A batch is all or none. */
  size_t before = count_jobs(q);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_owner(so, "batch"));
  const char *kinds[] = {"podcast", "podcast", "podcast"};
  const char *payloads[] = {"1", "2", "3"};
  const jobq_submit_opts_t *opts[] = {so, so, so};
  char ids[3 * JOBQ_ID_SIZE];
  CK_RC(JOBQ_EQUOTA, jobq_submit_many(q, 3, kinds, payloads, opts, ids, NULL));
  CK_INT(count_jobs(q), before);
  CK_RC(0, jobq_submit_many(q, 2, kinds, payloads, opts, ids, NULL));
  jobq_submit_opts_free(so);
  cq_close(q);
}

static void api_owner_quota_bad_input(conf_case *c) {
  (void)c;
  jobq_options_t *o = jobq_options_new();
  CK_RC(JOBQ_EINVAL, jobq_options_set_owner_quota(NULL, NULL, 1));
  CK_RC(JOBQ_EINVAL, jobq_options_set_owner_quota(o, NULL, 0));
  CK(strstr(jobq_last_error(), "max 0 is outside 1..1000000"), "sentence: %s", jobq_last_error());
  CK_RC(JOBQ_EINVAL, jobq_options_set_owner_quota(o, "k", -1));
  CK_RC(JOBQ_EINVAL, jobq_options_set_owner_quota(o, "k", 1000001));
  CK_RC(JOBQ_EKIND, jobq_options_set_owner_quota(o, "", 1));
  CK_RC(JOBQ_EKIND, jobq_options_set_owner_quota(o, "bad kind", 1));
  for (int i = 0; i < 64; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    CK_OK(jobq_options_set_owner_quota(o, k, 1));
  }
  CK_OK(jobq_options_set_owner_quota(o, "k5", 7)); /* a replacement, not a 65th */
  CK_RC(JOBQ_EINVAL, jobq_options_set_owner_quota(o, "k64", 1));
  CK(strstr(jobq_last_error(), "at most 64 quotas"), "sentence: %s", jobq_last_error());
  jobq_options_free(o);
}

static void api_bad_input_stores_nothing(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.max_payload = 64;
  jobq_t *q = cq_open(c, o);
  char id[JOBQ_ID_SIZE];
  memset(id, 'Z', sizeof id);
  char big[101];
  memset(big, 'x', sizeof big);
  big[0] = '"';
  big[99] = '"';
  big[100] = '\0';
  char kind65[66];
  memset(kind65, 'k', 65);
  kind65[65] = '\0';
  CK_ERR(JOBQ_EJSON, jobq_submit(q, "k", "{bad", NULL, id));
  CK_HAS(jobq_last_error(), "jobq_submit");
  CK_ERR(JOBQ_EJSON, jobq_submit(q, "k", "", NULL, id));
  CK_ERR(JOBQ_EJSON, jobq_submit(q, "k", "{} {}", NULL, id));
  CK_ERR(JOBQ_EJSON, jobq_submit(q, "k", "[1,]", NULL, id));
  CK_ERR(JOBQ_ETOOBIG, jobq_submit(q, "k", big, NULL, id));
  CK_ERR(JOBQ_EKIND, jobq_submit(q, "", "{}", NULL, id));
  CK_ERR(JOBQ_EKIND, jobq_submit(q, "-x", "{}", NULL, id));
  CK_ERR(JOBQ_EKIND, jobq_submit(q, "a b", "{}", NULL, id));
  CK_ERR(JOBQ_EKIND, jobq_submit(q, kind65, "{}", NULL, id));
  CK_ERR(JOBQ_EINVAL, jobq_submit(q, NULL, "{}", NULL, id));
  for (size_t i = 0; i < sizeof id; i++)
    CK(id[i] == 'Z', "a refused submit wrote out_id (byte %zu)", i);

  /* A batch with one bad job stores none of them. */
  const char *kinds[] = {"k", "k", "k"};
  const char *pl_bad[] = {"1", "{bad", "3"};
  char ids[3 * JOBQ_ID_SIZE];
  memset(ids, 'Z', sizeof ids);
  int dup[3] = {7, 7, 7};
  CK_ERR(JOBQ_EJSON, jobq_submit_many(q, 3, kinds, pl_bad, NULL, ids, dup));
  CK_HAS(jobq_last_error(), "job 1 refused");
  const char *kinds_bad[] = {"k", "k", "bad kind"};
  const char *pl[] = {"1", "2", "3"};
  CK_ERR(JOBQ_EKIND, jobq_submit_many(q, 3, kinds_bad, pl, NULL, ids, dup));
  CK_HAS(jobq_last_error(), "job 2 refused");
  const char *pl_big[] = {"1", "2", big};
  CK_ERR(JOBQ_ETOOBIG, jobq_submit_many(q, 3, kinds, pl_big, NULL, ids, dup));
  for (size_t i = 0; i < sizeof ids; i++)
    CK(ids[i] == 'Z', "a refused batch wrote out_ids (byte %zu)", i);
  for (int i = 0; i < 3; i++) CK_INT(dup[i], 7);

  CK_INT(count_jobs(q), 0);
  cq_claim_none(q, NULL);

  /* A bad result is refused and leaves the attempt open. */
  cq_submit(q, "k", "{}", NULL, id);
  jobq_ctx_t *ctx = cq_claim_expect(q, "k", id);
  CK_ERR(JOBQ_EJSON, jobq_ctx_succeed(ctx, "{x"));
  CK_ERR(JOBQ_ETOOBIG, jobq_ctx_succeed(ctx, big));
  CK_ERR(JOBQ_EINVAL, jobq_ctx_progress(ctx, 101, NULL));
  CK_ERR(JOBQ_EINVAL, jobq_ctx_fail(ctx, "x", 2));
  CK_INT(cq_state(q, id), JOBQ_RUNNING);
  ctx_succeed_settled(q, ctx, "[]", JOBQ_SUCCEEDED);
  jobq_job_t *j = cq_get(q, id);
  CK_STR(jobq_job_result(j), "[]");
  jobq_job_free(j);
  CK_INT(count_jobs(q), 1);
  cq_close(q);
}

static void api_submit_many(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  jobq_submit_opts_t *hi = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_priority(hi, 10));
  CK_OK(jobq_submit_opts_set_owner(hi, "batch"));
  const char *kinds[] = {"m", "m", "n", "m", "n"};
  const char *payloads[] = {"0", "1", "2", "3", NULL};
  const jobq_submit_opts_t *opts[] = {NULL, hi, NULL, hi, NULL};
  char ids[5 * JOBQ_ID_SIZE];
  CK_RC(0, jobq_submit_many(q, 5, kinds, payloads, opts, ids, NULL));
  jobq_submit_opts_free(hi);
  for (int i = 0; i < 5; i++) {
    for (int k = 0; k < i; k++)
      CK(strcmp(ids + i * JOBQ_ID_SIZE, ids + k * JOBQ_ID_SIZE) != 0, "ids %d and %d equal", i, k);
    jobq_job_t *j = cq_get(q, ids + i * JOBQ_ID_SIZE);
    CK_STR(jobq_job_kind(j), kinds[i]);
    CK_STR(jobq_job_payload(j), payloads[i] ? payloads[i] : "null");
    CK_STR(jobq_job_owner(j), opts[i] ? "batch" : NULL);
    jobq_job_free(j);
  }
  static const int order[] = {1, 3, 0, 2, 4};
  for (int i = 0; i < 5; i++) {
    jobq_ctx_t *ctx = cq_claim_expect(q, NULL, ids + order[i] * JOBQ_ID_SIZE);
    CK_OK(jobq_ctx_succeed(ctx, NULL));
  }
  CK_RC(0, jobq_submit_many(q, 0, kinds, payloads, NULL, ids, NULL));
  cq_close(q);
}

/* ---- handlers, URLs, close ------------------------------------------------------------------------------ */

static void work_handler(jobq_ctx_t *ctx, void *ud) {
  atomic_fetch_add((_Atomic int *)ud, 1);
  char res[64];
  snprintf(res, sizeof res, "{\"in\":%s}", jobq_ctx_payload(ctx));
  jobq_ctx_succeed(ctx, res);
}

/* ---- batches ------------------------------------------------------------------------------------ */

#define ID(ids, i) ((ids) + (size_t)(i) * JOBQ_ID_SIZE)

/* The next BATCH_DONE event in q's pull buffer (NULL if none within
 * wait_ms); other events are skipped. */
static jobq_event_t *next_batch_done(jobq_t *q, int wait_ms) {
  uint64_t end = conf_mono_ms() + (uint64_t)wait_ms;
  for (;;) {
    jobq_event_t *ev = NULL;
    int rc = jobq_next_event(q, wait_ms ? 50 : 0, &ev);
    if (rc == 0 && jobq_event_type(ev) == JOBQ_EVENT_BATCH_DONE) return ev;
    jobq_event_free(ev);
    if (rc != 0 && (wait_ms == 0 || conf_mono_ms() > end)) return NULL;
  }
}

/* Mixed outcomes and a retry: the summary counts each member once, by how
 * it ended, and keeps the errors in the order members failed. A dedupe hit
 * is not a member. */
static void api_batch_summary(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  o.event_buffer = 4096;
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = kind_opts(2, 1000, 1000, 0);
  CK_OK(jobq_register(q, "bt", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe(so, "K", 0));
  char pre[JOBQ_ID_SIZE];
  cq_submit(q, "bt", "0", so, pre);
  const char *kinds[] = {"bt", "bt", "bt", "bt", "bt"};
  const char *payloads[] = {"1", "2", "3", "4", "5"};
  const jobq_submit_opts_t *opts[] = {NULL, NULL, NULL, NULL, so};
  char bid[JOBQ_ID_SIZE], ids[5 * JOBQ_ID_SIZE];
  int dup[5];
  CK_RC(1, jobq_batch_submit(q, 5, kinds, payloads, opts, 0, bid, ids, dup));
  jobq_submit_opts_free(so);
  CK_INT(dup[4], 1);
  CK_STR(ID(ids, 4), pre);
  jobq_batch_t *b = NULL;
  CK_OK(jobq_batch_get(q, bid, &b));
  CK_STR(jobq_batch_id(b), bid);
  CK_INT(jobq_batch_count(b, -1), 4);
  CK_INT(jobq_batch_count(b, JOBQ_QUEUED), 4);
  CK_INT(jobq_batch_count(b, JOBQ_RUNNING), 0);
  CK_INT(jobq_batch_done(b), 0);
  CK_INT(jobq_batch_max_running(b), 0);
  CK_INT(jobq_batch_created_at(b), T);
  CK_INT(jobq_batch_finished_at(b), 0);
  jobq_batch_free(b);

  jobq_ctx_t *ctx = cq_claim_expect(q, "bt", pre); /* not a member */
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  ctx = cq_claim_expect(q, "bt", ID(ids, 0));
  ctx_succeed_settled(q, ctx, "{\"ok\":1}", JOBQ_SUCCEEDED);
  ctx = cq_claim_expect(q, "bt", ID(ids, 1));
  CK_OK(jobq_batch_get(q, bid, &b));
  CK_INT(jobq_batch_count(b, JOBQ_RUNNING), 1);
  CK_INT(jobq_batch_count(b, JOBQ_QUEUED), 2);
  CK_INT(jobq_batch_count(b, JOBQ_SUCCEEDED), 1);
  jobq_batch_free(b);
  ctx_fail_settled(q, ctx, "boom1a", 1, JOBQ_QUEUED); /* retried at T + 1000 */
  ctx = cq_claim_expect(q, "bt", ID(ids, 2));
  ctx_fail_settled(q, ctx, "boom2", 0, JOBQ_FAILED);
  CK_OK(jobq_cancel(q, ID(ids, 3)));
  CK(next_batch_done(q, 0) == NULL, "BATCH_DONE before the last member ended");
  conf_clock_set(&clk, T + 1000);
  ctx = cq_claim_expect(q, "bt", ID(ids, 1));
  ctx_fail_settled(q, ctx, "boom1b", 1, JOBQ_FAILED); /* attempts spent */

  CK_OK(jobq_batch_get(q, bid, &b));
  CK_INT(jobq_batch_count(b, -1), 4);
  CK_INT(jobq_batch_count(b, JOBQ_QUEUED), 0);
  CK_INT(jobq_batch_count(b, JOBQ_RUNNING), 0);
  CK_INT(jobq_batch_count(b, JOBQ_SUCCEEDED), 1);
  CK_INT(jobq_batch_count(b, JOBQ_FAILED), 2);
  CK_INT(jobq_batch_count(b, JOBQ_CANCELLED), 1);
  CK_INT(jobq_batch_done(b), 1);
  CK_INT(jobq_batch_finished_at(b), T + 1000);
  CK_INT(jobq_batch_error_count(b), 2);
  CK_STR(jobq_batch_error_job_id(b, 0), ID(ids, 2));
  CK_STR(jobq_batch_error(b, 0), "boom2");
  CK_STR(jobq_batch_error_job_id(b, 1), ID(ids, 1));
  CK_STR(jobq_batch_error(b, 1), "boom1b");
  CK(jobq_batch_error(b, 2) == NULL, "error 2 exists");
  char want[1024];
  snprintf(want, sizeof want,
           "{\"id\":\"%s\",\"total\":4,\"queued\":0,\"running\":0,\"succeeded\":1,\"failed\":2,"
           "\"cancelled\":1,\"done\":true,\"maxRunning\":0,\"createdAt\":%lld,\"finishedAt\":%lld,"
           "\"errors\":[{\"jobId\":\"%s\",\"error\":\"boom2\"},{\"jobId\":\"%s\",\"error\":"
           "\"boom1b\"}]}",
           bid, (long long)T, (long long)(T + 1000), ID(ids, 2), ID(ids, 1));
  char *js = jobq_batch_to_json(b);
  CK_STR(js, want);
  jobq_free(js);
  jobq_batch_free(b);

  jobq_event_t *ev = next_batch_done(q, 0);
  CK(ev != NULL, "no BATCH_DONE event");
  CK_STR(jobq_event_batch_id(ev), bid);
  CK_STR(jobq_event_job_id(ev), ID(ids, 1));
  CK_STR(jobq_event_kind(ev), "bt");
  CK_STR(jobq_event_type_name(jobq_event_type(ev)), "batch_done");
  CK(jobq_event_step(ev) == NULL, "a step on BATCH_DONE");
  snprintf(want, sizeof want,
           "{\"batchId\":\"%s\",\"total\":4,\"succeeded\":1,\"failed\":2,\"cancelled\":1,"
           "\"errors\":[{\"jobId\":\"%s\",\"error\":\"boom2\"},{\"jobId\":\"%s\",\"error\":"
           "\"boom1b\"}]}",
           bid, ID(ids, 2), ID(ids, 1));
  CK_STR(jobq_event_result(ev), want);
  jobq_event_free(ev);
  CK(next_batch_done(q, 0) == NULL, "a second BATCH_DONE");

  /* Every job a dedupe hit: a batch without members, done at once. */
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe(so, "K2", 0));
  char k2[JOBQ_ID_SIZE];
  cq_submit(q, "bt", "0", so, k2);
  const jobq_submit_opts_t *opts1[] = {so};
  CK_RC(1, jobq_batch_submit(q, 1, kinds, payloads, opts1, 3, bid, ids, NULL));
  jobq_submit_opts_free(so);
  CK_OK(jobq_batch_get(q, bid, &b));
  CK_INT(jobq_batch_count(b, -1), 0);
  CK_INT(jobq_batch_done(b), 1);
  CK_INT(jobq_batch_max_running(b), 3);
  jobq_batch_free(b);
  ev = next_batch_done(q, 0);
  CK(ev != NULL, "no BATCH_DONE for an empty batch");
  CK_STR(jobq_event_job_id(ev), "");
  CK_STR(jobq_event_batch_id(ev), bid);
  jobq_event_free(ev);
  cq_close(q);
}

/* The cap: never more than max_running members running; a retried member
 * waits for a place like the others; jobs without a batch are not held. */
static void api_batch_cap(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  o.workers = 0;
  jobq_t *q = cq_open(c, o);
  jobq_kind_opts_t *ko = kind_opts(3, 1000, 1000, 0);
  CK_OK(jobq_register(q, "cap", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  const char *kinds[6] = {"cap", "cap", "cap", "cap", "cap", "cap"};
  const char *payloads[6] = {"1", "2", "3", "4", "5", "6"};
  char bid[JOBQ_ID_SIZE], ids[6 * JOBQ_ID_SIZE], free_id[JOBQ_ID_SIZE];
  CK_RC(0, jobq_batch_submit(q, 6, kinds, payloads, NULL, 2, bid, ids, NULL));
  cq_submit(q, "cap", "{}", NULL, free_id);
  jobq_ctx_t *a = cq_claim_expect(q, "cap", ID(ids, 0));
  jobq_ctx_t *b2 = cq_claim_expect(q, "cap", ID(ids, 1));
  jobq_ctx_t *f = cq_claim_expect(q, "cap", free_id); /* not held back */
  cq_claim_none(q, "cap");
  jobq_job_t *j = cq_get(q, ID(ids, 2));
  CK_INT(jobq_job_state(j), JOBQ_QUEUED);
  jobq_job_free(j);
  jobq_batch_t *bt = NULL;
  CK_OK(jobq_batch_get(q, bid, &bt));
  CK_INT(jobq_batch_count(bt, JOBQ_RUNNING), 2);
  CK_INT(jobq_batch_count(bt, JOBQ_QUEUED), 4);
  jobq_batch_free(bt);
  ctx_succeed_settled(q, f, NULL, JOBQ_SUCCEEDED);
  cq_claim_none(q, "cap");
  ctx_succeed_settled(q, a, NULL, JOBQ_SUCCEEDED);
  jobq_ctx_t *c3 = cq_claim_expect(q, "cap", ID(ids, 2));
  cq_claim_none(q, "cap");
  ctx_fail_settled(q, b2, "again", 1, JOBQ_QUEUED); /* due at T + 1000 */
  jobq_ctx_t *c4 = cq_claim_expect(q, "cap", ID(ids, 3));
  conf_clock_set(&clk, T + 1000);
  cq_claim_none(q, "cap"); /* ids[1] is due again but the batch is full */
  ctx_succeed_settled(q, c4, NULL, JOBQ_SUCCEEDED);
  jobq_ctx_t *c1 = cq_claim_expect(q, "cap", ID(ids, 1)); /* oldest first */
  cq_claim_none(q, "cap");
  ctx_succeed_settled(q, c1, NULL, JOBQ_SUCCEEDED);
  ctx_succeed_settled(q, c3, NULL, JOBQ_SUCCEEDED);
  jobq_ctx_t *c5 = cq_claim_expect(q, "cap", ID(ids, 4));
  jobq_ctx_t *c6 = cq_claim_expect(q, "cap", ID(ids, 5));
  ctx_succeed_settled(q, c5, NULL, JOBQ_SUCCEEDED);
  ctx_succeed_settled(q, c6, NULL, JOBQ_SUCCEEDED);
  CK_OK(jobq_batch_get(q, bid, &bt));
  CK_INT(jobq_batch_count(bt, JOBQ_SUCCEEDED), 6);
  CK_INT(jobq_batch_done(bt), 1);
  jobq_batch_free(bt);
  cq_close(q);
}

/* Handlers of a capped batch: how many run at once, and the most seen. */
typedef struct cap_probe {
  _Atomic int now, max, runs;
} cap_probe;

static void cap_handler(jobq_ctx_t *ctx, void *ud) {
  cap_probe *p = ud;
  int n = atomic_fetch_add(&p->now, 1) + 1;
  int m = atomic_load(&p->max);
  while (n > m && !atomic_compare_exchange_weak(&p->max, &m, n)) {
  }
  struct timespec ts = {0, 2000000}; /* long enough for others to try to start */
  nanosleep(&ts, NULL);
  atomic_fetch_sub(&p->now, 1);
  atomic_fetch_add(&p->runs, 1);
  jobq_ctx_succeed(ctx, NULL);
}

/* Worker threads under a cap: more workers than places, and a member's
 * end must wake the workers that found the batch full (a finish that ends
 * a job queues nothing, yet it makes a held member claimable). */
static void api_batch_cap_with_workers(conf_case *c) {
  conf_qopts o = {0};
  o.workers = 4;
  o.event_buffer = 4096;
  jobq_t *q = cq_open(c, o);
  static cap_probe probe;
  atomic_store(&probe.now, 0);
  atomic_store(&probe.max, 0);
  atomic_store(&probe.runs, 0);
  CK_OK(jobq_register(q, "capw", cap_handler, &probe, NULL));
  enum { N = 24 };
  const char *kinds[N], *payloads[N];
  for (int i = 0; i < N; i++) kinds[i] = "capw", payloads[i] = "{}";
  char bid[JOBQ_ID_SIZE], ids[N * JOBQ_ID_SIZE];
  CK_RC(0, jobq_batch_submit(q, N, kinds, payloads, NULL, 2, bid, ids, NULL));
  CK_OK(jobq_start(q));
  jobq_event_t *ev = next_batch_done(q, CONF_GUARD_MS);
  CK(ev != NULL, "the batch did not finish within %d ms (%d of %d ran)", CONF_GUARD_MS,
     atomic_load(&probe.runs), N);
  CK_STR(jobq_event_batch_id(ev), bid);
  jobq_event_free(ev);
  CK_INT(atomic_load(&probe.runs), N);
  CK(atomic_load(&probe.max) <= 2, "%d members ran at once; the cap is 2", atomic_load(&probe.max));
  CK_OK(jobq_close(q, CONF_GUARD_MS));
}

static void api_batch_bad_input(conf_case *c) {
  jobq_t *q = cq_open(c, (conf_qopts){.workers = 0});
  const char *kinds[] = {"k", "k"};
  const char *payloads[] = {"1", "2"};
  const char *bad_payloads[] = {"1", "{"};
  char bid[JOBQ_ID_SIZE], ids[2 * JOBQ_ID_SIZE];
  memset(bid, 'Z', sizeof bid);
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(q, 0, kinds, payloads, NULL, 0, bid, ids, NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_submit: the batch is empty (n is 0)");
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(q, 2, kinds, payloads, NULL, -1, bid, ids, NULL));
  CK_HAS(jobq_last_error(), "max_running is -1; it must be 0 (no cap) or 1..100000");
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(q, 2, kinds, payloads, NULL, 100001, bid, ids, NULL));
  CK_HAS(jobq_last_error(), "max_running is 100001");
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(NULL, 2, kinds, payloads, NULL, 0, bid, ids, NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_submit: q is NULL");
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(q, 2, NULL, payloads, NULL, 0, bid, ids, NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_submit: kinds is NULL");
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(q, 2, kinds, NULL, NULL, 0, bid, ids, NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_submit: payloads is NULL");
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(q, 2, kinds, payloads, NULL, 0, NULL, ids, NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_submit: out_batch_id is NULL");
  CK_RC(JOBQ_EINVAL, jobq_batch_submit(q, 2, kinds, payloads, NULL, 0, bid, NULL, NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_submit: out_ids is NULL");
  CK_RC(JOBQ_EJSON, jobq_batch_submit(q, 2, kinds, bad_payloads, NULL, 0, bid, ids, NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_submit: job 1 refused");
  CK(bid[0] == 'Z', "a batch id was written on failure");
  CK_INT(count_jobs(q), 0);

  jobq_batch_t *b = (jobq_batch_t *)1;
  CK_RC(JOBQ_EINVAL, jobq_batch_get(NULL, "x", &b));
  CK_HAS(jobq_last_error(), "jobq_batch_get: q is NULL");
  CK_RC(JOBQ_EINVAL, jobq_batch_get(q, "x", NULL));
  CK_HAS(jobq_last_error(), "jobq_batch_get: out is NULL");
  CK_RC(JOBQ_EINVAL, jobq_batch_get(q, NULL, &b));
  CK_HAS(jobq_last_error(), "jobq_batch_get: batch_id is NULL or empty");
  CK_RC(JOBQ_EINVAL, jobq_batch_get(q, "", &b));
  CK_RC(JOBQ_ENOTFOUND, jobq_batch_get(q, "nope", &b));
  CK_HAS(jobq_last_error(), "jobq_batch_get: no batch 'nope'");
  char other[JOBQ_ID_SIZE];
  jobq__id_new(other, 1);
  CK_RC(JOBQ_ENOTFOUND, jobq_batch_get(q, other, &b));
  CK_HAS(jobq_last_error(), "jobq_batch_get: no batch");
  CK(b == (jobq_batch_t *)1, "out was written on failure");
  CK_INT(jobq_batch_count(NULL, -1), JOBQ_EINVAL);
  CK(jobq_batch_id(NULL) == NULL, "id of NULL");
  CK_INT(jobq_batch_done(NULL), JOBQ_EINVAL);
  CK(jobq_batch_error(NULL, 0) == NULL && jobq_batch_error_job_id(NULL, 0) == NULL, "errors of NULL");
  CK(jobq_batch_to_json(NULL) == NULL, "json of NULL");
  CK_HAS(jobq_last_error(), "jobq_batch_to_json: b is NULL");
  CK(jobq_event_batch_id(NULL) == NULL, "batch id of a NULL event");
  jobq_batch_free(NULL);
  /* A good one for the accessors' range checks. */
  CK_RC(0, jobq_batch_submit(q, 2, kinds, payloads, NULL, 0, bid, ids, NULL));
  CK_OK(jobq_batch_get(q, bid, &b));
  CK_INT(jobq_batch_count(b, 7), JOBQ_EINVAL);
  CK(jobq_batch_error(b, -1) == NULL && jobq_batch_error(b, 0) == NULL, "error out of range");
  jobq_batch_free(b);
  cq_close(q);
}

static void api_handlers_run_jobs(conf_case *c) {
  conf_qopts o = {0};
  o.workers = 3;
  jobq_t *q = cq_open(c, o);
  static _Atomic int runs;
  atomic_store(&runs, 0);
  CK_OK(jobq_register(q, "work", work_handler, (void *)&runs, NULL));
  enum { N = 30 };
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N / 2; i++) {
    char p[16];
    snprintf(p, sizeof p, "%d", i);
    cq_submit(q, "work", p, NULL, ids[i]);
  }
  CK_OK(jobq_start(q));
  for (int i = N / 2; i < N; i++) {
    char p[16];
    snprintf(p, sizeof p, "%d", i);
    cq_submit(q, "work", p, NULL, ids[i]);
  }
  for (int i = 0; i < N; i++) {
    CK(cq_wait_state(q, ids[i], JOBQ_SUCCEEDED), "job %d did not succeed within %d ms", i,
       CONF_GUARD_MS);
    jobq_job_t *j = cq_get(q, ids[i]);
    char want[64];
    snprintf(want, sizeof want, "{\"in\":%d}", i);
    CK_STR(jobq_job_result(j), want);
    CK_INT(jobq_job_attempts(j), 1);
    jobq_job_free(j);
  }
  CK_INT(atomic_load(&runs), N);
  CK_OK(jobq_close(q, CONF_GUARD_MS));
}

static void api_bad_urls(conf_case *c) {
  char url[700];
  for (int i = 0; c->be->bad_url(c->dir, i, url, sizeof url); i++) {
    jobq_options_t *opts = jobq_options_new();
    CK_OK(jobq_options_set_storage(opts, url));
    jobq_t *q = (jobq_t *)&q; /* must stay as it is */
    jobq_storage_set_error("");
    int rc = jobq_open(&q, opts);
    jobq_options_free(opts);
    if (rc == 0) jobq_close(q, 0);
    CK(rc == JOBQ_EURL, "jobq_open(\"%s\") returned %d (%s); expected JOBQ_EURL", url, rc,
       jobq_err_name(rc));
    CK(jobq_last_error()[0] != '\0', "no error sentence for \"%s\"", url);
    CK(q == (jobq_t *)&q, "a failed jobq_open wrote *out");
    const jobq_storage_ops *ops = NULL;
    void *st = NULL;
    rc = jobq__storage_lookup(url, &ops);
    if (rc == 0) {
      rc = ops->open(url, &st);
      if (rc == 0) ops->close(st);
    }
    CK(rc == JOBQ_EURL, "the vtable's open(\"%s\") returned %d (%s); expected JOBQ_EURL", url, rc,
       jobq_err_name(rc));
  }
  /* Nothing was created for them. */
  DIR *d = opendir(c->dir);
  CK(d != NULL, "the test directory is gone");
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    CK(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0,
       "a refused URL left %s behind", e->d_name);
  closedir(d);
  jobq_options_t *opts = jobq_options_new();
  CK_ERR(JOBQ_EURL, jobq_options_set_storage(opts, "no-scheme"));
  CK_ERR(JOBQ_EURL, jobq_options_set_storage(opts, ":x"));
  jobq_options_free(opts);
}

/* jobq_close gives running attempts back; their ctx reports the close. */
static void api_close_releases_running(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "rel", "{}", NULL, id);
  jobq_ctx_t *ctx = cq_claim_expect(q, "rel", id);
  CK_OK(jobq_close(q, 0));
  CK_INT(jobq_ctx_cancelled(ctx), 1);
  CK_ERR(JOBQ_ECLOSED, jobq_ctx_succeed(ctx, NULL)); /* and q goes with the ctx */
}

/* ---- shared stats ---- */

/* Polls jobq_stats until counter `which` of kind reaches want (an attempt's
 * end is counted once storage answered its finish, which jobq_wait may see
 * a moment before); returns the last snapshot. */
static jobq_stats_t *stats_when(jobq_t *q, const char *kind, int which, int64_t want) {
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  for (;;) {
    jobq_stats_t *st = NULL;
    CK_OK(jobq_stats(q, &st));
    int n = jobq_stats_kind_count(st);
    CK(n >= 0, "jobq_stats_kind_count: %s", jobq_last_error());
    for (int i = 0; i < n; i++)
      if (strcmp(jobq_stats_kind_name(st, i), kind) == 0 &&
          jobq_stats_kind_counter(st, i, which) >= want)
        return st;
    CK(conf_mono_ms() < end, "counter %d of %s did not reach %lld", which, kind, (long long)want);
    jobq_stats_free(st);
    conf_sleep_ms(5);
  }
}

/* Counters, durations (the queue's clock), cache hits and misses, depth,
 * error rate and percentiles, from one queue that drives its jobs itself. */
static void api_stats_counts_and_durations(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, fake_clock_opts(&clk));
  char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], j3[JOBQ_ID_SIZE], j4[JOBQ_ID_SIZE], j5[JOBQ_ID_SIZE];
  cq_submit(q, "k", "{}", NULL, j1);
  cq_submit(q, "k", "{}", NULL, j2);
  cq_submit(q, "k", "{}", NULL, j3);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe(so, "key-1", 0));
  cq_submit(q, "k", "{}", so, j4);                 /* a miss: stored */
  CK_RC(1, jobq_submit(q, "k", "{}", so, j5));     /* a hit: the same job */
  CK_STR(j5, j4);
  jobq_submit_opts_free(so);
  jobq_ctx_t *ctx = cq_claim_expect(q, "k", j1);
  conf_clock_set(&clk, T + 300);
  ctx_succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  ctx = cq_claim_expect(q, "k", j2);
  conf_clock_set(&clk, T + 1000);
  ctx_fail_settled(q, ctx, "no", 0, JOBQ_FAILED);
  CK_OK(jobq_cancel(q, j3));
  jobq_job_t *j = NULL;
  CK_ERR(JOBQ_ENOTFOUND, jobq_get_by_key(q, "no-such-key", &j)); /* a miss of no kind */
  j = NULL;
  CK_OK(jobq_get_by_key(q, "key-1", &j)); /* a hit */
  jobq_job_free(j);
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_delay(so, 10000));
  cq_submit(q, "k", "{}", so, j5); /* scheduled */
  jobq_submit_opts_free(so);

  jobq_stats_t *st = stats_when(q, "k", JOBQ_STAT_FAILED, 1);
  CK_INT(jobq_stats_kind_count(st), 1);
  CK_STR(jobq_stats_kind_name(st, 0), "k");
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_STARTED), 2);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_SUCCEEDED), 1);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_FAILED), 1);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_RETRIED), 0);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_CANCELLED), 1);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_CACHE_HIT), 2);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_CACHE_MISS), 1);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_RATE_WAIT), 0);
  CK_INT(jobq_stats_total(st, JOBQ_STAT_CACHE_MISS), 2);
  CK_INT(jobq_stats_total(st, JOBQ_STAT_CACHE_HIT), 2);
  CK_INT(jobq_stats_kind_queued(st, 0), 1);    /* j4 */
  CK_INT(jobq_stats_kind_scheduled(st, 0), 1); /* j5 */
  CK_INT(jobq_stats_kind_running(st, 0), 0);
  CK_INT(jobq_stats_kind_oldest_queued_ms(st, 0), 1000); /* j4 waits since T */
  CK_INT(jobq_stats_kind_concurrency(st, 0), 0); /* nothing runs the kind */
  CK(jobq_stats_kind_error_rate(st, 0) == 0.5, "error rate %g", jobq_stats_kind_error_rate(st, 0));
  /* 300 ms in (200, 500], 700 ms in (500, 1000]: interpolated in the bucket */
  double p50 = jobq_stats_kind_duration_quantile(st, 0, 0.5);
  double p95 = jobq_stats_kind_duration_quantile(st, 0, 0.95);
  CK(p50 == 500, "p50 %g, expected 500", p50);
  CK(p95 == 950, "p95 %g, expected 950", p95);
  /* One flush of both (mean 500), or two (300, then 300 x 0.8 + 700 x 0.2). */
  double avg = jobq_stats_kind_average_ms(st, 0);
  CK(avg == 500 || fabs(avg - 380) < 1e-9, "average %g", avg);
  char *text = jobq_stats_to_prometheus(st);
  CK(text != NULL, "jobq_stats_to_prometheus: %s", jobq_last_error());
  CK_HAS(text, "jobq_jobs_total{kind=\"k\",outcome=\"succeeded\"} 1\n");
  CK_HAS(text, "jobq_queue_jobs{kind=\"k\",state=\"scheduled\"} 1\n");
  CK_HAS(text, "jobq_job_duration_seconds_bucket{kind=\"k\",le=\"0.5\"} 1\n");
  CK_HAS(text, "jobq_job_duration_seconds_bucket{kind=\"k\",le=\"+Inf\"} 2\n");
  CK_HAS(text, "jobq_job_duration_seconds_sum{kind=\"k\"} 1\n");
  CK_HAS(text, "jobq_cache_lookups_total{kind=\"\",result=\"miss\"} 1\n");
  jobq_free(text);
  char *js = jobq_stats_to_json(st);
  CK_HAS(js, "\"k\":{\"queued\":1,\"scheduled\":1,\"running\":0,\"oldestQueuedMs\":1000,");
  CK_HAS(js, "\"errorRate\":0.5,\"durationMs\":{\"p50\":500,\"p95\":950,");
  jobq_free(js);
  jobq_stats_free(st);
  cq_close(q);
}

/* Before any history: the kind's expected duration where it is registered,
 * else the queue's default; a kind's live concurrency divides. */
static void api_eta_defaults_before_history(conf_case *c) {
  conf_clock clk;
  conf_qopts o = fake_clock_opts(&clk);
  jobq_t *q = cq_open(c, o);
  char a[4][JOBQ_ID_SIZE];
  for (int i = 0; i < 4; i++) cq_submit(q, "slow", "{}", NULL, a[i]);
  jobq_job_t *j = cq_get(q, a[3]);
  CK_INT(jobq_job_position(j), 3);
  CK_INT(jobq_job_eta_ms(j), 3 * 45000); /* one at a time, 45 s each */
  jobq_job_free(j);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  CK_OK(jobq_kind_opts_set_expected_duration(ko, 2000));
  CK_OK(jobq_register(q, "slow", conf_noop_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  j = cq_get(q, a[3]);
  CK_INT(jobq_job_eta_ms(j), 3 * 2000);
  jobq_job_free(j);
  cq_close(q);
}

/* ---- retention ------------------------------------------------------------------------------ */

static pthread_mutex_t ret_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char ret_log_line[512];

static void ret_log(int level, const char *message, void *ud) {
  (void)ud;
  if (level != JOBQ_LOG_INFO || strncmp(message, "retention:", 10) != 0) return;
  pthread_mutex_lock(&ret_log_mu);
  snprintf(ret_log_line, sizeof ret_log_line, "%s", message);
  pthread_mutex_unlock(&ret_log_mu);
}

/* A started queue on the fake clock, no workers (jobs are claimed here),
 * the retention log lines kept, work directories under the case's dir. */
static jobq_t *ret_open(conf_case *c, conf_clock *clk, char *workdir, size_t cap) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  conf_clock_set(clk, T);
  conf_path(c, "work", workdir, cap);
  CK_OK(jobq_options_set_storage(o, c->url));
  CK_OK(jobq_options_set_clock(o, conf_clock_fn, clk));
  CK_OK(jobq_options_set_workers(o, 0));
  CK_OK(jobq_options_set_workdir(o, workdir));
  CK_OK(jobq_options_set_log(o, ret_log, NULL, JOBQ_LOG_INFO));
  jobq_t *q = NULL;
  CK_OK(jobq_open(&q, o));
  jobq_options_free(o);
  return q;
}

static void ret_mkdir(const char *workdir, const char *id, char *path, size_t cap) {
  mkdir(workdir, 0700);
  snprintf(path, cap, "%s/%s", workdir, id);
  CK(mkdir(path, 0700) == 0, "mkdir %s", path);
  char f[700];
  snprintf(f, sizeof f, "%s/audio.wav", path);
  FILE *fp = fopen(f, "w");
  CK(fp != NULL, "cannot create %s", f);
  fputs("RIFF", fp);
  fclose(fp);
}

/* Waits (real time, bounded) until job id is gone; 1 if it went. */
static int ret_wait_gone(jobq_t *q, const char *id) {
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  for (;;) {
    jobq_job_t *j = NULL;
    int rc = jobq_get(q, id, &j);
    jobq_job_free(j);
    if (rc == JOBQ_ENOTFOUND) return 1;
    if (conf_mono_ms() > end) return 0;
    conf_sleep_ms(2);
  }
}

/* A kind with a retention of 1 h: once the clock has passed it and a
 * maintenance tick came, its finished jobs and their work directories are
 * gone; its queued and running jobs, a kind with retention 0 and a kind
 * this process did not register are untouched. */
static void api_retention_prunes_registered_kinds(conf_case *c) {
  conf_clock clk;
  char workdir[400];
  jobq_t *q = ret_open(c, &clk, workdir, sizeof workdir);
  jobq_kind_opts_t *hour = jobq_kind_opts_new(), *keep = jobq_kind_opts_new();
  assert_non_null(hour);
  assert_non_null(keep);
  CK_OK(jobq_kind_opts_set_retention(hour, 3600000));
  CK_OK(jobq_kind_opts_set_retention(keep, 0));
  CK_OK(jobq_register(q, "short", conf_noop_handler, NULL, hour));
  CK_OK(jobq_register(q, "keep", conf_noop_handler, NULL, keep));
  jobq_kind_opts_free(hour);
  jobq_kind_opts_free(keep);
  CK_OK(jobq_start(q));
  pthread_mutex_lock(&ret_log_mu);
  ret_log_line[0] = '\0';
  pthread_mutex_unlock(&ret_log_mu);

  char ok[JOBQ_ID_SIZE], failed[JOBQ_ID_SIZE], running[JOBQ_ID_SIZE], queued[JOBQ_ID_SIZE],
      kept[JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  cq_submit(q, "short", "{}", NULL, ok);
  cq_submit(q, "short", "{}", NULL, failed);
  cq_submit(q, "short", "{}", NULL, running);
  cq_submit(q, "keep", "{}", NULL, kept);
  cq_submit(q, "other", "{}", NULL, other);
  jobq_submit_opts_t *later = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_delay(later, INT64_C(10) * 3600000));
  cq_submit(q, "short", "{}", later, queued);
  jobq_submit_opts_free(later);
  ctx_succeed_settled(q, cq_claim_expect(q, "short", ok), NULL, JOBQ_SUCCEEDED);
  ctx_fail_settled(q, cq_claim_expect(q, "short", failed), "no", 0, JOBQ_FAILED);
  jobq_ctx_t *run = cq_claim_expect(q, "short", running);
  ctx_succeed_settled(q, cq_claim_expect(q, "keep", kept), NULL, JOBQ_SUCCEEDED);
  ctx_succeed_settled(q, cq_claim_expect(q, "other", other), NULL, JOBQ_SUCCEEDED);
  char d_ok[600], d_failed[600], d_kept[600], d_other[600];
  ret_mkdir(workdir, ok, d_ok, sizeof d_ok);
  ret_mkdir(workdir, failed, d_failed, sizeof d_failed);
  ret_mkdir(workdir, kept, d_kept, sizeof d_kept);
  ret_mkdir(workdir, other, d_other, sizeof d_other);

  /* Before the hour is up nothing goes (whether or not a tick comes in
   * the 50 ms: the check cannot wait for one, but never fails wrongly). */
  conf_clock_set(&clk, T + 3599000);
  conf_sleep_ms(50);
  CK_INT(cq_state(q, ok), JOBQ_SUCCEEDED);
  CK(conf_exists(d_ok), "the work directory went early");

  conf_clock_set(&clk, T + 3600000 + 120000);
  CK(ret_wait_gone(q, ok), "the succeeded job was not pruned within %d ms", CONF_GUARD_MS);
  CK(ret_wait_gone(q, failed), "the failed job was not pruned within %d ms", CONF_GUARD_MS);
  /* The pass's log line comes once it is over, work directories removed. */
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  char line[512] = "";
  while (line[0] == '\0' && conf_mono_ms() < end) {
    pthread_mutex_lock(&ret_log_mu);
    snprintf(line, sizeof line, "%s", ret_log_line);
    pthread_mutex_unlock(&ret_log_mu);
    if (line[0] == '\0') conf_sleep_ms(2);
  }
  CK_STR(line, "retention: pruned 2 finished jobs of kind 'short' (finished more than 3600000 ms ago)");
  CK(!conf_exists(d_ok) && !conf_exists(d_failed), "the pruned jobs' work directories remain");
  CK_INT(cq_state(q, running), JOBQ_RUNNING);
  CK_INT(cq_state(q, queued), JOBQ_QUEUED);
  CK_INT(cq_state(q, kept), JOBQ_SUCCEEDED);
  CK_INT(cq_state(q, other), JOBQ_SUCCEEDED);
  CK(conf_exists(d_kept) && conf_exists(d_other), "a kept job's work directory went");
  /* A day later, the running job, now finished, goes too. */
  ctx_succeed_settled(q, run, NULL, JOBQ_SUCCEEDED);
  conf_clock_set(&clk, T + INT64_C(30) * 3600000);
  CK(ret_wait_gone(q, running), "the job that finished later was not pruned");
  CK_INT(cq_state(q, kept), JOBQ_SUCCEEDED);
  CK_INT(cq_state(q, other), JOBQ_SUCCEEDED);
  cq_close(q);
}

/* Bad input to the setters: a code and a sentence each, nothing changed. */
static void api_retention_bad_input(conf_case *c) {
  (void)c;
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_non_null(ko);
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_retention(NULL, 1000));
  CK_HAS(jobq_last_error(), "ko is NULL");
  static const int64_t bad_ms[] = {-1, 1, 999, INT64_C(3650) * 86400000 + 1, INT64_MIN, INT64_MAX};
  for (size_t i = 0; i < sizeof bad_ms / sizeof bad_ms[0]; i++) {
    CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_retention(ko, bad_ms[i]));
    CK_HAS(jobq_last_error(), "jobq_kind_opts_set_retention");
    CK_HAS(jobq_last_error(), "outside 1000..315360000000");
  }
  CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_keep_per_owner(NULL, 1));
  CK_HAS(jobq_last_error(), "ko is NULL");
  static const int bad_n[] = {-1, 100001, INT32_MIN, INT32_MAX};
  for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
    CK_ERR(JOBQ_EINVAL, jobq_kind_opts_set_keep_per_owner(ko, bad_n[i]));
    CK_HAS(jobq_last_error(), "outside 0..100000");
  }
  /* the edges are accepted */
  CK_OK(jobq_kind_opts_set_retention(ko, 1000));
  CK_OK(jobq_kind_opts_set_retention(ko, INT64_C(3650) * 86400000));
  CK_OK(jobq_kind_opts_set_retention(ko, 0));
  CK_OK(jobq_kind_opts_set_keep_per_owner(ko, 100000));
  CK_OK(jobq_kind_opts_set_keep_per_owner(ko, 0));
  jobq_kind_opts_free(ko);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(api_stats_counts_and_durations),
    CONF_TEST(api_eta_defaults_before_history),
    CONF_TEST(api_priority_then_fifo),
    CONF_TEST(api_delay_and_run_at),
    CONF_TEST(api_retry_exact_backoff),
    CONF_TEST(api_backoff_jitter_exact),
    CONF_TEST(api_max_attempts_and_permanent_failure),
    CONF_TEST(api_cancel_queued_running_finished),
    CONF_TEST(api_list_filters_and_paging),
    CONF_TEST(api_get_position),
    CONF_TEST(api_position_counts_delayed_job_that_came_due),
    CONF_TEST(api_progress_result_snapshot),
    CONF_TEST(api_wait),
    CONF_TEST(api_events_in_order),
    CONF_TEST(api_dedupe),
    CONF_TEST(api_cache_until),
    CONF_TEST(api_cache_bad_input),
    CONF_TEST(api_cache_prune_keeps_live_keys),
    CONF_TEST(api_retention_prunes_registered_kinds),
    CONF_TEST(api_retention_bad_input),
    CONF_TEST(api_owner_quota),
    CONF_TEST(api_owner_quota_bad_input),
    CONF_TEST(api_bad_input_stores_nothing),
    CONF_TEST(api_submit_many),
    CONF_TEST(api_batch_summary),
    CONF_TEST(api_batch_cap),
    CONF_TEST(api_batch_cap_with_workers),
    CONF_TEST(api_batch_bad_input),
    CONF_TEST(api_handlers_run_jobs),
    CONF_TEST(api_bad_urls),
    CONF_TEST(api_close_releases_running),
  };
  return conf_run("public API", tests, sizeof tests / sizeof tests[0]);
}
