/* jobq_submit, jobq_submit_many, dedupe keys and refused input. Jobs are
 * driven by hand with jobq_claim and jobq_ctx_succeed/fail (no workers). */
#include "testutil.h"

#include <pthread.h>

static int id_ok(const char *id) {
  if (strlen(id) != 36 || id[14] != '7') return 0;
  for (int i = 0; i < 36; i++) {
    char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return 0;
    }
  }
  return 1;
}

/* A JSON string of exactly n bytes (n >= 2). */
static char *json_of_size(size_t n) {
  char *s = tapi_repeat('a', n);
  s[0] = '"';
  s[n - 1] = '"';
  return s;
}

static char untouched[JOBQ_ID_SIZE * 8];
static void poison(char *buf, size_t n) {
  memset(buf, 'X', n);
  memcpy(untouched, buf, n < sizeof untouched ? n : sizeof untouched);
}
#define ASSERT_POISONED(buf, n) assert_memory_equal((buf), untouched, (n))

/* ======================================================================== */
/* jobq_submit: refused input                                               */
/* ======================================================================== */

static void test_submit_null_args(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  poison(id, sizeof id);
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(NULL, "k", NULL, NULL, id));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, "k", NULL, NULL, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, NULL, NULL, NULL, id));
  TAPI_ERR_HAS("kind");
  ASSERT_POISONED(id, sizeof id);
  assert_int_equal(tapi_count_jobs(q), 0);
  tapi_close(q);
}

static void test_submit_bad_kind(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  char *k64 = tapi_repeat('k', 64), *k65 = tapi_repeat('k', 65);
  const char *bad[] = {"", k65, "a b", " a", "a ", "-a", "_a", ".a", ":a", "a\n", "a/b",
                       "a\tb", "caf\xc3\xa9", "a;b", "a,b", "a*", "k\x7f", "\"k\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    poison(id, sizeof id);
    TAPI_ERR(JOBQ_EKIND, "jobq_submit", jobq_submit(q, bad[i], "{}", NULL, id));
    ASSERT_POISONED(id, sizeof id);
  }
  assert_int_equal(tapi_count_jobs(q), 0);
  const char *good[] = {k64, "a", "Z", "0", "9-", "A-b_c.d:e", "a--", "x:y:z", "v1.2.3"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    TAPI_OK(jobq_submit(q, good[i], "{}", NULL, id));
    jobq_job_t *j = NULL;
    TAPI_OK(jobq_get(q, id, &j));
    assert_string_equal(jobq_job_kind(j), good[i]);
    jobq_job_free(j);
  }
  assert_int_equal(tapi_count_jobs(q), sizeof good / sizeof good[0]);
  free(k64);
  free(k65);
  tapi_close(q);
}

static void test_submit_bad_json(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  const char *bad[] = {"", " ", "{", "}", "nul", "[1,]", "{} x", "{\"a\":1,}", "'s'", "undefined",
                       "{\"a\" 1}", "\"unterminated", "[1 2]", "01"};
  const char *prefix = "payload is not valid JSON: ";
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    poison(id, sizeof id);
    TAPI_ERR(JOBQ_EJSON, "jobq_submit", jobq_submit(q, "k", bad[i], NULL, id));
    /* the sentence carries the parser's own message after the prefix */
    const char *p = strstr(jobq_last_error(), prefix);
    if (p == NULL) fail_msg("'%s': sentence '%s' lacks '%s'", bad[i], jobq_last_error(), prefix);
    /* (p checked again: GCC 12 at -O2 does not see fail_msg end the test) */
    const char *rest = p ? p + strlen(prefix) : "";
    assert_true(strlen(rest) >= 5);
    ASSERT_POISONED(id, sizeof id);
  }
  assert_int_equal(tapi_count_jobs(q), 0);
  tapi_close(q);
}

static void test_submit_too_big(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 16);
  char id[JOBQ_ID_SIZE];
  char *p16 = json_of_size(16), *p17 = json_of_size(17);
  poison(id, sizeof id);
  TAPI_ERR(JOBQ_ETOOBIG, "jobq_submit", jobq_submit(q, "k", p17, NULL, id));
  TAPI_ERR_HAS("17");
  TAPI_ERR_HAS("16");
  ASSERT_POISONED(id, sizeof id);
  /* too big and not JSON either: still refused */
  char *junk = tapi_repeat('{', 40);
  assert_true(jobq_submit(q, "k", junk, NULL, id) < 0);
  ASSERT_POISONED(id, sizeof id);
  assert_int_equal(tapi_count_jobs(q), 0);
  TAPI_OK(jobq_submit(q, "k", p16, NULL, id)); /* exactly the limit */
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_payload(j), p16);
  jobq_job_free(j);
  assert_int_equal(tapi_count_jobs(q), 1);
  free(p16);
  free(p17);
  free(junk);
  tapi_close(q);

  /* the default limit is 1 MiB */
  q = tapi_open(NULL, 0);
  char *m = json_of_size(1u << 20), *m1 = json_of_size((1u << 20) + 1);
  TAPI_ERR(JOBQ_ETOOBIG, "jobq_submit", jobq_submit(q, "k", m1, NULL, id));
  assert_int_equal(tapi_count_jobs(q), 0);
  TAPI_OK(jobq_submit(q, "k", m, NULL, id));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(strlen(jobq_job_payload(j)), 1u << 20);
  jobq_job_free(j);
  free(m);
  free(m1);
  tapi_close(q);
}

/* ======================================================================== */
/* jobq_submit: what is stored                                              */
/* ======================================================================== */

static void test_submit_null_payload_is_null(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_payload(j), "null");
  jobq_job_free(j);
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  assert_string_equal(jobq_ctx_payload(ctx), "null");
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  tapi_close(q);
}

static void test_submit_payload_verbatim(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  const char *payloads[] = {" { \"a\" : [1, 2.50, \"x\\u00e9\"] }\n", "42", "\"s\"", "true",
                            "[]", "-0.0e+1", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""};
  for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
    char id[JOBQ_ID_SIZE];
    TAPI_OK(jobq_submit(q, "k", payloads[i], NULL, id));
    jobq_job_t *j = NULL;
    TAPI_OK(jobq_get(q, id, &j));
    assert_string_equal(jobq_job_payload(j), payloads[i]);
    jobq_job_free(j);
    jobq_ctx_t *ctx = tapi_claim(q, "k");
    assert_string_equal(jobq_ctx_id(ctx), id);
    assert_string_equal(jobq_ctx_payload(ctx), payloads[i]);
    assert_string_equal(jobq_ctx_kind(ctx), "k");
    TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  }
  tapi_close(q);
}

/* ======================================================================== */
/* text that is not valid UTF-8 is refused where it enters                  */
/* ======================================================================== */

static void test_utf8_owner_and_dedupe_key(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  TAPI_OK(jobq_submit_opts_set_owner(so, "alice"));
  for (size_t i = 0; i < TAPI_N_BAD_UTF8; i++) {
    TAPI_ERR_UTF8("jobq_submit_opts_set_owner", "owner",
                  jobq_submit_opts_set_owner(so, tapi_bad_utf8[i].s));
    TAPI_ERR_UTF8("jobq_submit_opts_set_dedupe", "key",
                  jobq_submit_opts_set_dedupe(so, tapi_bad_utf8[i].s, 1000));
  }
  /* Nothing of it was kept: the owner is the last good one, and no dedupe
   * key was set (two submits make two jobs). */
  char id[2][JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, id[0]));
  TAPI_OK(jobq_submit(q, "k", NULL, so, id[1]));
  assert_string_not_equal(id[0], id[1]);
  for (int k = 0; k < 2; k++) {
    jobq_job_t *j = NULL;
    TAPI_OK(jobq_get(q, id[k], &j));
    assert_string_equal(jobq_job_owner(j), "alice");
    jobq_job_free(j);
  }
  assert_int_equal(tapi_count_jobs(q), 2);

  /* Valid UTF-8 of every length is stored as given, and found again. */
  for (size_t i = 0; i < TAPI_N_GOOD_UTF8; i++) {
    const char *s = tapi_good_utf8[i];
    TAPI_OK(jobq_submit_opts_set_owner(so, s));
    TAPI_OK(jobq_submit_opts_set_dedupe(so, s, 0));
    char nid[JOBQ_ID_SIZE], again[JOBQ_ID_SIZE];
    TAPI_OK(jobq_submit(q, "k", NULL, so, nid));
    assert_int_equal(jobq_submit(q, "k", NULL, so, again), 1); /* the key works */
    assert_string_equal(again, nid);
    jobq_job_t *j = NULL;
    TAPI_OK(jobq_get(q, nid, &j));
    assert_string_equal(jobq_job_owner(j), s);
    jobq_job_free(j);
    jobq_filter_t *f = jobq_filter_new();
    TAPI_OK(jobq_filter_set_owner(f, s));
    jobq_page_t *p = NULL;
    TAPI_OK(jobq_list(q, f, &p));
    assert_int_equal(jobq_page_count(p), 1);
    assert_string_equal(jobq_job_id(jobq_page_job(p, 0)), nid);
    jobq_page_free(p);
    jobq_filter_free(f);
  }
  jobq_submit_opts_free(so);
  tapi_close(q);
}

static void test_utf8_step_and_error(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_progress(ctx, 10, "R\xc3\xa9sum\xc3\xa9 \xf0\x9f\x8e\x99"));
  for (size_t i = 0; i < TAPI_N_BAD_UTF8; i++) {
    TAPI_ERR_UTF8("jobq_ctx_progress", "step", jobq_ctx_progress(ctx, 50, tapi_bad_utf8[i].s));
    TAPI_ERR_UTF8("jobq_ctx_fail", "message", jobq_ctx_fail(ctx, tapi_bad_utf8[i].s, 0));
    TAPI_ERR_UTF8("jobq_ctx_fail", "message", jobq_ctx_fail(ctx, tapi_bad_utf8[i].s, 1));
  }
  /* Nothing was stored: progress and step as before, the attempt open. */
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
  assert_int_equal(jobq_job_progress(j), 10);
  assert_string_equal(jobq_job_step(j), "R\xc3\xa9sum\xc3\xa9 \xf0\x9f\x8e\x99");
  assert_null(jobq_job_error(j));
  jobq_job_free(j);
  /* The attempt can still end, with a message in valid UTF-8. */
  TAPI_OK(jobq_ctx_fail(ctx, "Zo\xc3\xab: no luck", 0));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_string_equal(jobq_job_error(j), "Zo\xc3\xab: no luck");
  jobq_job_free(j);
  tapi_close(q);
}

/* A C string cannot hold a NUL, so no text argument can be cut by one.
 * Inside JSON, the escape \u0000 is text like any other: a payload and a
 * result keep it, byte for byte. */
static void test_escaped_nul_in_json_is_kept(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  const char *payload = "{\"text\":\"a\\u0000b\"}";
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", payload, NULL, id));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  assert_string_equal(jobq_ctx_payload(ctx), payload);
  TAPI_OK(jobq_ctx_succeed(ctx, "[\"x\\u0000y\"]"));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_payload(j), payload);
  assert_string_equal(jobq_job_result(j), "[\"x\\u0000y\"]");
  jobq_job_free(j);
  tapi_close(q);
}

static void test_submit_defaults(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 777000);
  jobq_t *q = tapi_open(&clk, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "{}", NULL, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_id(j), id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_priority(j), 0);
  assert_null(jobq_job_owner(j));
  /* jobq.h: 0 when the kind's default is not known in this process */
  assert_int_equal(jobq_job_max_attempts(j), 0);
  assert_int_equal(jobq_job_attempts(j), 0);
  assert_int_equal(jobq_job_created_at(j), 777000);
  assert_int_equal(jobq_job_run_at(j), 777000);
  assert_int_equal(jobq_job_position(j), 0);
  jobq_job_free(j);
  tapi_close(q);
}

static void never_called(jobq_ctx_t *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  fail_msg("a handler ran in a test that never starts workers");
}

static void test_submit_max_attempts_over_kind(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_max_attempts(ko, 7));
  TAPI_OK(jobq_register(q, "seven", never_called, NULL, ko));
  jobq_kind_opts_free(ko);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_max_attempts(so, 2));
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "seven", NULL, so, a));
  TAPI_OK(jobq_submit(q, "seven", NULL, NULL, b));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, a, &j));
  assert_int_equal(jobq_job_max_attempts(j), 2);
  jobq_job_free(j);
  TAPI_OK(jobq_get(q, b, &j));
  assert_int_equal(jobq_job_max_attempts(j), 7);
  jobq_job_free(j);
  jobq_submit_opts_free(so);
  tapi_close(q);
}

static void test_submit_unknown_kind_accepted(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  TAPI_OK(jobq_register(q, "known", never_called, NULL, NULL));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "never.registered:here-1", "{\"x\":1}", NULL, id));
  assert_int_equal(tapi_state(q, id), JOBQ_QUEUED);
  /* another process could run it; here jobq_claim can */
  jobq_ctx_t *ctx = tapi_claim(q, "never.registered:here-1");
  assert_string_equal(jobq_ctx_id(ctx), id);
  TAPI_OK(jobq_ctx_succeed(ctx, "{\"ok\":true}"));
  assert_int_equal(tapi_state(q, id), JOBQ_SUCCEEDED);
  tapi_close(q);
}

static void test_submit_ids(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  enum { N = 300 };
  static char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) {
    memset(ids[i], 'X', JOBQ_ID_SIZE);
    TAPI_OK(jobq_submit(q, "k", NULL, NULL, ids[i]));
    assert_int_equal(ids[i][36], '\0');
    assert_true(id_ok(ids[i]));
    if (i) assert_true(strcmp(ids[i - 1], ids[i]) < 0); /* one thread: increasing */
  }
  assert_int_equal(tapi_count_jobs(q), N);
  tapi_close(q);
}

/* ======================================================================== */
/* jobq_submit_many                                                         */
/* ======================================================================== */

static void test_submit_many_basic(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  const char *kinds[] = {"a", "b", "a", "c", "b"};
  const char *payloads[] = {"0", NULL, "{\"i\":2}", "[3]", "\"4\""};
  char ids[5 * JOBQ_ID_SIZE];
  int dup[5] = {7, 7, 7, 7, 7};
  assert_int_equal(jobq_submit_many(q, 5, kinds, payloads, NULL, ids, dup), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(dup[i], 0);
  for (int i = 0; i < 5; i++) {
    const char *id = ids + i * JOBQ_ID_SIZE;
    assert_true(id_ok(id));
    for (int k = 0; k < i; k++) assert_string_not_equal(id, ids + k * JOBQ_ID_SIZE);
    if (i) assert_true(strcmp(ids + (i - 1) * JOBQ_ID_SIZE, id) < 0);
    jobq_job_t *j = NULL;
    TAPI_OK(jobq_get(q, id, &j));
    assert_string_equal(jobq_job_kind(j), kinds[i]);
    assert_string_equal(jobq_job_payload(j), payloads[i] ? payloads[i] : "null");
    jobq_job_free(j);
  }
  assert_int_equal(tapi_count_jobs(q), 5);

  /* opts: an array whose entries may be NULL */
  jobq_submit_opts_t *hi = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_priority(hi, 9));
  TAPI_OK(jobq_submit_opts_set_owner(hi, "o"));
  const jobq_submit_opts_t *opts[] = {NULL, hi, NULL};
  const char *k3[] = {"x", "x", "x"};
  const char *p3[] = {NULL, NULL, NULL};
  char ids3[3 * JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit_many(q, 3, k3, p3, opts, ids3, NULL), 0);
  int prio[] = {0, 9, 0};
  for (int i = 0; i < 3; i++) {
    jobq_job_t *j = NULL;
    TAPI_OK(jobq_get(q, ids3 + i * JOBQ_ID_SIZE, &j));
    assert_int_equal(jobq_job_priority(j), prio[i]);
    if (i == 1) assert_string_equal(jobq_job_owner(j), "o");
    else assert_null(jobq_job_owner(j));
    jobq_job_free(j);
  }
  /* claimed in priority order, then FIFO */
  jobq_ctx_t *c = tapi_claim(q, "x");
  assert_string_equal(jobq_ctx_id(c), ids3 + JOBQ_ID_SIZE);
  TAPI_OK(jobq_ctx_succeed(c, NULL));
  c = tapi_claim(q, "x");
  assert_string_equal(jobq_ctx_id(c), ids3);
  TAPI_OK(jobq_ctx_succeed(c, NULL));
  jobq_submit_opts_free(hi);
  tapi_close(q);
}

static void test_submit_many_null_args(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  const char *kinds[] = {"a"};
  const char *payloads[] = {NULL};
  char ids[JOBQ_ID_SIZE];
  const char *fn = "jobq_submit_many";
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_submit_many(NULL, 1, kinds, payloads, NULL, ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_submit_many(q, 1, NULL, payloads, NULL, ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_submit_many(q, 1, kinds, NULL, NULL, ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_submit_many(q, 1, kinds, payloads, NULL, NULL, NULL));
  /* more than 1000000 at once: refused before the arrays are read */
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_submit_many(q, 1000001, kinds, payloads, NULL, ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_submit_many(q, SIZE_MAX, kinds, payloads, NULL, ids, NULL));
  assert_int_equal(tapi_count_jobs(q), 0);
  /* n = 0 stores nothing and is fine */
  assert_int_equal(jobq_submit_many(q, 0, kinds, payloads, NULL, ids, NULL), 0);
  assert_int_equal(tapi_count_jobs(q), 0);
  tapi_close(q);
}

static void check_many_refused(jobq_t *q, size_t n, const char *const *kinds,
                               const char *const *payloads, int want, size_t bad_index) {
  char ids[8 * JOBQ_ID_SIZE];
  int dup[8] = {7, 7, 7, 7, 7, 7, 7, 7};
  poison(ids, sizeof ids);
  TAPI_ERR(want, "jobq_submit_many", jobq_submit_many(q, n, kinds, payloads, NULL, ids, dup));
  for (int i = 0; i < 8; i++) assert_int_equal(dup[i], 7);
  char says[64];
  snprintf(says, sizeof says, "jobq_submit_many: job %zu refused: ", bad_index);
  TAPI_ERR_HAS(says);
  ASSERT_POISONED(ids, sizeof ids);
  assert_int_equal(tapi_count_jobs(q), 0);
}

static void test_submit_many_bad_entry(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 16);
  const char *k_bad_kind[] = {"a", "b", "bad kind", "c", "d"};
  const char *k_ok[] = {"a", "b", "c", "d", "e"};
  const char *k_null[] = {"a", NULL, "c"};
  const char *p_ok[] = {NULL, "1", "{}", "[]", "\"x\""};
  const char *p_bad_json[] = {NULL, "1", "{", "[]", "\"x\""};
  const char *p_big[] = {NULL, "1", "{}", "\"0123456789abcdefgh\"", "\"x\""};
  check_many_refused(q, 5, k_bad_kind, p_ok, JOBQ_EKIND, 2);
  TAPI_ERR_HAS("kind");
  check_many_refused(q, 5, k_ok, p_bad_json, JOBQ_EJSON, 2);
  TAPI_ERR_HAS("not valid JSON");
  check_many_refused(q, 5, k_ok, p_big, JOBQ_ETOOBIG, 3);
  check_many_refused(q, 3, k_null, p_ok, JOBQ_EINVAL, 1);
  /* last and first entries */
  const char *k_last[] = {"a", "b", "c", "d", ""};
  check_many_refused(q, 5, k_last, p_ok, JOBQ_EKIND, 4);
  const char *k_first[] = {"-a", "b", "c", "d", "e"};
  check_many_refused(q, 5, k_first, p_ok, JOBQ_EKIND, 0);
  /* and the good batch goes in whole */
  char ids[5 * JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit_many(q, 5, k_ok, p_ok, NULL, ids, NULL), 0);
  assert_int_equal(tapi_count_jobs(q), 5);
  tapi_close(q);
}

static void test_submit_many_dedupe(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *d = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_dedupe(d, "same", 0));
  const jobq_submit_opts_t *opts[] = {d, NULL, d, d};
  const char *kinds[] = {"k", "k", "k", "k"};
  const char *payloads[] = {"1", "2", "3", "4"};
  char ids[4 * JOBQ_ID_SIZE];
  int dup[4] = {7, 7, 7, 7};
  /* entries 2 and 3 find entry 0's key live: 2 deduped */
  assert_int_equal(jobq_submit_many(q, 4, kinds, payloads, opts, ids, dup), 2);
  assert_int_equal(dup[0], 0);
  assert_int_equal(dup[1], 0);
  assert_int_equal(dup[2], 1);
  assert_int_equal(dup[3], 1);
  assert_string_equal(ids + 2 * JOBQ_ID_SIZE, ids);
  assert_string_equal(ids + 3 * JOBQ_ID_SIZE, ids);
  assert_string_not_equal(ids + JOBQ_ID_SIZE, ids);
  assert_int_equal(tapi_count_jobs(q), 2);
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, ids, &j));
  assert_string_equal(jobq_job_payload(j), "1");
  jobq_job_free(j);
  /* a later batch: the key is still live */
  const jobq_submit_opts_t *opts2[] = {NULL, d};
  char ids2[2 * JOBQ_ID_SIZE];
  int dup2[2] = {7, 7};
  assert_int_equal(jobq_submit_many(q, 2, kinds, payloads, opts2, ids2, dup2), 1);
  assert_int_equal(dup2[0], 0);
  assert_int_equal(dup2[1], 1);
  assert_string_equal(ids2 + JOBQ_ID_SIZE, ids);
  assert_int_equal(tapi_count_jobs(q), 3);
  jobq_submit_opts_free(d);
  tapi_close(q);
}

/* ======================================================================== */
/* dedupe                                                                   */
/* ======================================================================== */

static jobq_submit_opts_t *dedupe_opts(const char *key, int64_t ttl, int force) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  TAPI_OK(jobq_submit_opts_set_dedupe(so, key, ttl));
  TAPI_OK(jobq_submit_opts_set_force(so, force));
  return so;
}

static void test_dedupe_live_while_queued_and_running(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *so = dedupe_opts("k1", 0, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "\"first\"", so, a), 0);
  assert_int_equal(jobq_submit(q, "k", "\"second\"", so, b), 1);
  assert_string_equal(a, b);
  assert_int_equal(tapi_count_jobs(q), 1);
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, a, &j));
  assert_string_equal(jobq_job_payload(j), "\"first\""); /* not replaced */
  jobq_job_free(j);
  /* the key is looked up across kinds */
  assert_int_equal(jobq_submit(q, "other-kind", NULL, so, b), 1);
  assert_string_equal(a, b);
  /* another key is independent */
  jobq_submit_opts_t *other = dedupe_opts("k2", 0, 0);
  assert_int_equal(jobq_submit(q, "k", NULL, other, b), 0);
  assert_string_not_equal(a, b);
  /* running: still live */
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  assert_string_equal(jobq_ctx_id(ctx), a);
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 1);
  assert_string_equal(a, b);
  /* retryable failure puts it back in the queue: still live */
  TAPI_OK(jobq_ctx_fail(ctx, "again", 1));
  assert_int_equal(tapi_state(q, a), JOBQ_QUEUED);
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 1);
  assert_string_equal(a, b);
  assert_int_equal(tapi_count_jobs(q), 2);
  jobq_submit_opts_free(so);
  jobq_submit_opts_free(other);
  tapi_close(q);
}

static void test_dedupe_after_success_ttl0(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *so = dedupe_opts("s0", 0, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  assert_int_equal(tapi_state(q, a), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(tapi_count_jobs(q), 2);
  /* and the new job holds the key now */
  char c[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", NULL, so, c), 1);
  assert_string_equal(b, c);
  jobq_submit_opts_free(so);
  tapi_close(q);
}

static void test_dedupe_after_success_ttl(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 1000000);
  jobq_t *q = tapi_open(&clk, 0);
  jobq_submit_opts_t *so = dedupe_opts("ttl", 60000, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  tapi_clock_set(&clk, 1000500);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL)); /* finished at 1000500 */
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 1);
  assert_string_equal(a, b);
  tapi_clock_set(&clk, 1000500 + 59999); /* less than ttl after: live */
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 1);
  assert_string_equal(a, b);
  assert_int_equal(tapi_count_jobs(q), 1);
  tapi_clock_set(&clk, 1000500 + 60000); /* ttl passed */
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(tapi_count_jobs(q), 2);
  jobq_submit_opts_free(so);
  tapi_close(q);
}

static void test_dedupe_large_ttl_real_clock(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *so = dedupe_opts("big", INT64_C(1) << 40, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_succeed(ctx, "1"));
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 1);
  assert_string_equal(a, b);
  jobq_submit_opts_free(so);
  tapi_close(q);
}

/* The largest ttl the setter accepts (any ttl_ms >= 0) must keep the key
 * live after success, not wrap around into the past. */
static void test_dedupe_ttl_int64_max(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, INT64_C(1700000000000));
  jobq_t *q = tapi_open(&clk, 0);
  jobq_submit_opts_t *so = dedupe_opts("forever", INT64_MAX, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  tapi_clock_set(&clk, INT64_C(1700000000000) + 86400000);
  int rc = jobq_submit(q, "k", NULL, so, b);
  size_t n = tapi_count_jobs(q);
  jobq_submit_opts_free(so);
  tapi_close(q);
  assert_int_equal(rc, 1);
  assert_string_equal(a, b);
  assert_int_equal(n, 1);
}

static void test_dedupe_failed_frees_key(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  /* a large ttl: only success keeps a key after the job ends */
  jobq_submit_opts_t *so = dedupe_opts("f", INT64_C(1) << 40, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_fail(ctx, "no", 0));
  assert_int_equal(tapi_state(q, a), JOBQ_FAILED);
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 0);
  assert_string_not_equal(a, b);
  /* failing after the last attempt also frees it */
  jobq_submit_opts_t *one = dedupe_opts("f2", INT64_C(1) << 40, 0);
  TAPI_OK(jobq_submit_opts_set_max_attempts(one, 1));
  TAPI_OK(jobq_submit(q, "solo", NULL, one, a));
  ctx = tapi_claim(q, "solo");
  TAPI_OK(jobq_ctx_fail(ctx, "no", 1));
  assert_int_equal(tapi_state(q, a), JOBQ_FAILED);
  assert_int_equal(jobq_submit(q, "solo", NULL, one, b), 0);
  assert_string_not_equal(a, b);
  jobq_submit_opts_free(so);
  jobq_submit_opts_free(one);
  tapi_close(q);
}

static void test_dedupe_cancelled_frees_key(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *so = dedupe_opts("c", INT64_C(1) << 40, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  /* cancelled while queued */
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  TAPI_OK(jobq_cancel(q, a));
  assert_int_equal(tapi_state(q, a), JOBQ_CANCELLED);
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 0);
  assert_string_not_equal(a, b);
  /* cancelled while running: live until the attempt ends */
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  assert_string_equal(jobq_ctx_id(ctx), b);
  TAPI_OK(jobq_cancel(q, b));
  char c[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", NULL, so, c), 1);
  assert_string_equal(c, b);
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL)); /* ends cancelled anyway */
  assert_int_equal(tapi_state(q, b), JOBQ_CANCELLED);
  assert_int_equal(jobq_submit(q, "k", NULL, so, c), 0);
  assert_string_not_equal(c, b);
  assert_int_equal(tapi_count_jobs(q), 3);
  jobq_submit_opts_free(so);
  tapi_close(q);
}

static void test_dedupe_force(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *so = dedupe_opts("F", 0, 0);
  jobq_submit_opts_t *force = dedupe_opts("F", 0, 1);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], c[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  assert_int_equal(jobq_submit(q, "k", NULL, force, b), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(tapi_state(q, a), JOBQ_QUEUED); /* the old job is not touched */
  /* the new job took the key over */
  assert_int_equal(jobq_submit(q, "k", NULL, so, c), 1);
  assert_string_equal(c, b);
  assert_int_equal(tapi_count_jobs(q), 2);
  /* force without a live key: just a new job */
  jobq_submit_opts_t *fresh = dedupe_opts("unused", 0, 1);
  assert_int_equal(jobq_submit(q, "k", NULL, fresh, c), 0);
  assert_int_equal(tapi_count_jobs(q), 3);
  jobq_submit_opts_free(so);
  jobq_submit_opts_free(force);
  jobq_submit_opts_free(fresh);
  tapi_close(q);
}

/* ======================================================================== */
/* several threads                                                          */
/* ======================================================================== */

enum { SUBMITTERS = 4, PER_THREAD = 300 };

typedef struct {
  jobq_t *q;
  char ids[PER_THREAD][JOBQ_ID_SIZE];
  int errors;
} submitter_arg;

static void *submitter(void *p) {
  submitter_arg *a = p;
  for (int i = 0; i < PER_THREAD; i++) {
    if (i % 3 == 2) {
      /* a pair through submit_many, sometimes */
      const char *k[] = {"mt", "mt"};
      const char *pl[] = {"1", "2"};
      char two[2 * JOBQ_ID_SIZE];
      if (jobq_submit_many(a->q, 2, k, pl, NULL, two, NULL) != 0) a->errors++;
      memcpy(a->ids[i], two, JOBQ_ID_SIZE);
      /* the second id of the pair is not tracked, only counted */
    } else if (jobq_submit(a->q, "mt", "{}", NULL, a->ids[i]) != 0) {
      a->errors++;
    }
  }
  return NULL;
}

typedef struct {
  jobq_t *q;
  int want;
  int got;
  int errors;
} claimer_arg;

static void *claimer(void *p) {
  claimer_arg *a = p;
  const char *kinds[] = {"mt", NULL};
  while (a->got < a->want) {
    jobq_ctx_t *ctx = NULL;
    int rc = jobq_claim(a->q, kinds, 10000, &ctx);
    if (rc != 0) {
      a->errors++;
      break;
    }
    if (jobq_ctx_succeed(ctx, NULL) != 0) a->errors++;
    a->got++;
  }
  return NULL;
}

static int cmp_id(const void *x, const void *y) { return strcmp(x, y); }

enum { RACERS = 4, RACES = 200 };

typedef struct {
  jobq_t *q;
  pthread_barrier_t *bar;
  char ids[RACES][JOBQ_ID_SIZE];
  int rcs[RACES];
} racer_arg;

static void *racer(void *p) {
  racer_arg *a = p;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  for (int i = 0; i < RACES; i++) {
    char key[32];
    snprintf(key, sizeof key, "race-%d", i);
    jobq_submit_opts_set_dedupe(so, key, 0);
    pthread_barrier_wait(a->bar);
    a->rcs[i] = jobq_submit(a->q, "race", NULL, so, a->ids[i]);
  }
  jobq_submit_opts_free(so);
  return NULL;
}

/* Threads submitting the same key at the same moment get one job. */
static void test_dedupe_race(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  static racer_arg r[RACERS];
  pthread_t t[RACERS];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, RACERS);
  for (int i = 0; i < RACERS; i++) {
    r[i].q = q;
    r[i].bar = &bar;
    assert_int_equal(pthread_create(&t[i], NULL, racer, &r[i]), 0);
  }
  for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&bar);
  for (int k = 0; k < RACES; k++) {
    int fresh = 0;
    for (int i = 0; i < RACERS; i++) {
      assert_true(r[i].rcs[k] == 0 || r[i].rcs[k] == 1);
      fresh += r[i].rcs[k] == 0;
      assert_string_equal(r[i].ids[k], r[0].ids[k]);
    }
    if (fresh != 1) fail_msg("key race-%d: %d new jobs", k, fresh);
  }
  assert_int_equal(tapi_count_jobs(q), RACES);
  tapi_close(q);
}

static void test_submit_from_threads(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  static submitter_arg s[SUBMITTERS];
  pthread_t ts[SUBMITTERS], tc;
  int total = SUBMITTERS * (PER_THREAD + PER_THREAD / 3);
  claimer_arg c = {.q = q, .want = total};
  assert_int_equal(pthread_create(&tc, NULL, claimer, &c), 0);
  for (int i = 0; i < SUBMITTERS; i++) {
    s[i].q = q;
    s[i].errors = 0;
    assert_int_equal(pthread_create(&ts[i], NULL, submitter, &s[i]), 0);
  }
  for (int i = 0; i < SUBMITTERS; i++) pthread_join(ts[i], NULL);
  pthread_join(tc, NULL);
  for (int i = 0; i < SUBMITTERS; i++) assert_int_equal(s[i].errors, 0);
  assert_int_equal(c.errors, 0);
  assert_int_equal(c.got, total);
  assert_int_equal(tapi_count_jobs(q), (size_t)total);
  static char all[SUBMITTERS * PER_THREAD][JOBQ_ID_SIZE];
  for (int i = 0; i < SUBMITTERS; i++) {
    for (int k = 1; k < PER_THREAD; k++) assert_true(strcmp(s[i].ids[k - 1], s[i].ids[k]) < 0);
    memcpy(all[i * PER_THREAD], s[i].ids, sizeof s[i].ids);
  }
  qsort(all, SUBMITTERS * PER_THREAD, JOBQ_ID_SIZE, cmp_id);
  for (int i = 1; i < SUBMITTERS * PER_THREAD; i++) assert_string_not_equal(all[i - 1], all[i]);
  for (int i = 0; i < SUBMITTERS * PER_THREAD; i += 37)
    assert_int_equal(tapi_state(q, all[i]), JOBQ_SUCCEEDED);
  tapi_close(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_submit_null_args),
    cmocka_unit_test(test_submit_bad_kind),
    cmocka_unit_test(test_submit_bad_json),
    cmocka_unit_test(test_submit_too_big),
    cmocka_unit_test(test_submit_null_payload_is_null),
    cmocka_unit_test(test_submit_payload_verbatim),
    cmocka_unit_test(test_submit_defaults),
    cmocka_unit_test(test_submit_max_attempts_over_kind),
    cmocka_unit_test(test_submit_unknown_kind_accepted),
    cmocka_unit_test(test_submit_ids),
    cmocka_unit_test(test_submit_many_basic),
    cmocka_unit_test(test_submit_many_null_args),
    cmocka_unit_test(test_submit_many_bad_entry),
    cmocka_unit_test(test_submit_many_dedupe),
    cmocka_unit_test(test_dedupe_live_while_queued_and_running),
    cmocka_unit_test(test_dedupe_after_success_ttl0),
    cmocka_unit_test(test_dedupe_after_success_ttl),
    cmocka_unit_test(test_dedupe_large_ttl_real_clock),
    cmocka_unit_test(test_dedupe_failed_frees_key),
    cmocka_unit_test(test_dedupe_cancelled_frees_key),
    cmocka_unit_test(test_dedupe_force),
    cmocka_unit_test(test_submit_from_threads),
    cmocka_unit_test(test_dedupe_race),
    /* last: the overflow it finds is undefined behaviour (UBSan stops here) */
    cmocka_unit_test(test_dedupe_ttl_int64_max),
    cmocka_unit_test(test_utf8_owner_and_dedupe_key),
    cmocka_unit_test(test_utf8_step_and_error),
    cmocka_unit_test(test_escaped_nul_in_json_is_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
