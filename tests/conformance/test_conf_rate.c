/* Storage conformance, layer 1: rate limits in claims (jobq_storage_claim
 * rates and rate_next, rate_window) and the DEFER outcome. Backends without
 * rate_window skip these (the core refuses the features for them). */
#include "conf_storage.h"

/* Claims up to max jobs of kind (NULL: any kind) at now under one rate
 * limit of kind rk; *next gets rate_next. Returns how many. */
static size_t rate_claim(conf_store *s, const char *kind, const char *rk, int starts,
                         int64_t interval, size_t max, int64_t now, int64_t *next) {
  const char *kinds[] = {kind};
  jobq_storage_rate rate = {rk, starts, interval};
  jobq_storage_claim req = {0};
  req.kinds = kind ? kinds : NULL;
  req.n_kinds = kind ? 1 : 0;
  req.max = max;
  req.now = now;
  req.lease_ms = 30000;
  req.default_max_attempts = 3;
  req.rates = &rate;
  req.n_rates = 1;
  int64_t rn = 12345;
  req.rate_next = &rn;
  jobq_storage_job *out = calloc(max, sizeof *out);
  assert_non_null(out);
  size_t n = 12345;
  CK_OK(s->ops->claim(s->st, &req, out, &n));
  CK(n <= max, "claim returned %zu records for max %zu", n, max);
  for (size_t i = 0; i < n; i++) {
    if (kind) CK_STR(out[i].kind, kind);
    jobq_storage_job_clear(&out[i]);
  }
  free(out);
  if (next) *next = rn;
  return n;
}

static int has_rates(conf_store *s) {
  if (s->ops->version >= 3 && s->ops->rate_window) return 1;
  print_message("[%s] no rate_window: skipped\n", conf_be());
  return 0;
}

static int64_t used(conf_store *s, const char *kind, int64_t interval, int64_t now) {
  int64_t u = -1;
  CK_OK(s->ops->rate_window(s->st, kind, interval, now, &u));
  return u;
}

/* A claim takes only the room the window has, says when there is more, and
 * the window slides: 3 starts per 1000 ms. */
static void rate_claim_takes_room(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  if (!has_rates(&s)) goto out;
  for (int i = 0; i < 9; i++) cs_add(&s, T, "r", 0, 0, NULL);
  int64_t next = 0;
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 2, T, &next), 2);
  CK_INT(next, INT64_MAX); /* room for one more: not held back */
  CK_INT(used(&s, "r", 1000, T), 2);
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 10, T + 400, &next), 1);
  CK_INT(next, T + 1000); /* the two of T leave the window then */
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 10, T + 999, &next), 0);
  CK_INT(next, T + 1000);
  CK_INT(used(&s, "r", 1000, T + 999), 3);
  /* At T + 1000 the starts of T are out: two places. */
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 10, T + 1000, &next), 2);
  CK_INT(next, T + 1400);
  CK_INT(used(&s, "r", 1000, T + 1000), 3);
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 10, T + 1399, &next), 0);
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 10, T + 1400, &next), 1);
  /* Six of nine taken: two more at T + 2000, the last at T + 2400, and then
   * nothing waits. */
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 10, T + 2000, &next), 2);
  CK_INT(next, T + 2400);
  CK_INT(rate_claim(&s, "r", "r", 3, 1000, 10, T + 2400, &next), 1);
  CK_INT(next, INT64_MAX);
  CK_INT(used(&s, "r", 1000, T + 2400), 3);
  CK_INT(used(&s, "r", 1000, T + 5000), 0);
out:
  cs_close(&s);
}

/* Starts that left the window give their room back whether or not the
 * backend has forgotten them yet; a claim that fills the window only with
 * them counted is not held back. */
static void rate_old_starts_give_room(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  if (!has_rates(&s)) goto out;
  for (int i = 0; i < 6; i++) cs_add(&s, T, "o", 0, 0, NULL);
  int64_t next = 0;
  CK_INT(rate_claim(&s, "o", "o", 3, 1000, 1, T, &next), 1);
  CK_INT(rate_claim(&s, "o", "o", 3, 1000, 2, T + 1500, &next), 2);
  CK_INT(next, INT64_MAX); /* the start of T is out: one place left */
  CK_INT(used(&s, "o", 1000, T + 1500), 2);
  CK_INT(rate_claim(&s, "o", "o", 3, 1000, 5, T + 1600, &next), 1);
  CK_INT(next, T + 2500);
  CK_INT(rate_claim(&s, "o", "o", 3, 1000, 5, T + 2499, &next), 0);
  CK_INT(rate_claim(&s, "o", "o", 3, 1000, 5, T + 5000, &next), 2);
  CK_INT(next, INT64_MAX);
out:
  cs_close(&s);
}

/* Only the limited kind waits; a claim of any kind takes the others, and a
 * limited kind with no due jobs holds nothing back. */
static void rate_other_kinds_free(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  if (!has_rates(&s)) goto out;
  for (int i = 0; i < 3; i++) cs_add(&s, T, "lim", 0, 0, NULL);
  for (int i = 0; i < 4; i++) cs_add(&s, T, "free", 0, 0, NULL);
  int64_t next = 0;
  CK_INT(rate_claim(&s, NULL, "lim", 1, 60000, 10, T, &next), 5); /* 1 of lim, 4 of free */
  CK_INT(next, T + 60000);
  CK_INT(rate_claim(&s, NULL, "lim", 1, 60000, 10, T + 1, &next), 0);
  CK_INT(next, T + 60000);
  CK_INT(used(&s, "lim", 60000, T + 1), 1);
  CK_INT(used(&s, "free", 60000, T + 1), 0); /* not counted */
  CK_INT(rate_claim(&s, "lim", "lim", 1, 60000, 10, T + 60000, &next), 1);
  CK_INT(rate_claim(&s, "lim", "lim", 1, 60000, 10, T + 120000, &next), 1);
  CK_INT(next, INT64_MAX); /* nothing due is left */
  CK_INT(rate_claim(&s, "lim", "lim", 1, 60000, 10, T + 120001, &next), 0);
  CK_INT(next, INT64_MAX);
out:
  cs_close(&s);
}

/* A deferred attempt is not counted: the job is queued at run_at with the
 * reason as its error, and its next claim is the same attempt number. */
static void rate_defer_not_counted(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  if (!has_rates(&s)) goto out;
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "d", 0, 0, id);
  CK_INT(claim_kind(&s, "d", T, id), 1);
  conf_fin f = fin_of(JOBQ_OUTCOME_DEFER, "provider said 429");
  f.run_at = T + 5000;
  CK_INT(cs_finish(&s, id, 1, T + 10, f), JOBQ_QUEUED);
  jobq_storage_job j;
  cs_get(&s, id, T + 10, &j);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.attempts, 0);
  CK_INT(j.run_at, T + 5000);
  CK_STR(j.error, "provider said 429");
  CK_INT(j.n_attempt_log, 0);
  jobq_storage_job_clear(&j);
  cs_claim_none(&s, T + 4999);
  CK_INT(claim_kind(&s, "d", T + 5000, id), 1);
  /* The stale attempt's finish is refused. */
  int st = 0;
  jobq_storage_finish sf = {0};
  sf.id = id;
  sf.attempt = 2;
  sf.outcome = JOBQ_OUTCOME_DEFER;
  sf.now = T + 5001;
  sf.run_at = T + 6000;
  CK_OK(s.ops->finish(s.st, &sf, 1, &st));
  CK_INT(st, JOBQ_ESTATE);
  /* Deferred again with run_at now: due at once. */
  f.run_at = T + 5002;
  CK_INT(cs_finish(&s, id, 1, T + 5002, f), JOBQ_QUEUED);
  CK_INT(claim_kind(&s, "d", T + 5002, id), 1);
  CK_INT(cs_finish(&s, id, 1, T + 5003, FIN_OK), JOBQ_SUCCEEDED);
out:
  cs_close(&s);
}

/* A job whose cancel was requested while it ran ends cancelled when its
 * handler defers it. */
static void rate_defer_after_cancel(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  if (!has_rates(&s)) goto out;
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "d", 0, 0, id);
  CK_INT(claim_kind(&s, "d", T, id), 1);
  int st = 0;
  CK_OK(s.ops->cancel(s.st, id, T + 1, &st, NULL));
  CK_INT(st, JOBQ_RUNNING);
  conf_fin f = fin_of(JOBQ_OUTCOME_DEFER, "later");
  f.run_at = T + 5000;
  CK_INT(cs_finish(&s, id, 1, T + 2, f), JOBQ_CANCELLED);
  CK_INT(cs_state(&s, id, T + 3), JOBQ_CANCELLED);
  cs_claim_none(&s, T + 6000);
out:
  cs_close(&s);
}

/* Two stores on one file (two processes) share the window. */
static void rate_shared_between_stores(conf_case *c) {
  conf_store a, b;
  cs_open(c, &a);
  cs_open(c, &b);
  if (!has_rates(&a)) goto out;
  for (int i = 0; i < 10; i++) cs_add(&a, T, "s", 0, 0, NULL);
  int64_t next = 0;
  CK_INT(rate_claim(&a, "s", "s", 4, 1000, 3, T, &next), 3);
  CK_INT(rate_claim(&b, "s", "s", 4, 1000, 3, T + 1, &next), 1);
  CK_INT(next, T + 1000);
  CK_INT(rate_claim(&a, "s", "s", 4, 1000, 3, T + 2, &next), 0);
  CK_INT(rate_claim(&b, "s", "s", 4, 1000, 3, T + 1000, &next), 3);
  CK_INT(rate_claim(&a, "s", "s", 4, 1000, 3, T + 1000, &next), 0);
  CK_INT(next, T + 1001);
  CK_INT(rate_claim(&a, "s", "s", 4, 1000, 3, T + 1001, &next), 1);
out:
  cs_close(&b);
  cs_close(&a);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(rate_claim_takes_room),
    CONF_TEST(rate_old_starts_give_room),
    CONF_TEST(rate_other_kinds_free),
    CONF_TEST(rate_defer_not_counted),
    CONF_TEST(rate_defer_after_cancel),
    CONF_TEST_NEED(rate_shared_between_stores, CONF_NEED_DURABLE),
  };
  return conf_run("storage vtable: rate limits and deferral", tests, sizeof tests / sizeof tests[0]);
}
