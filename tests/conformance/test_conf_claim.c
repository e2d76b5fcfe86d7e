/* Storage conformance, layer 1 (the vtable; see conf_storage.h): claim. */
#include "conf_storage.h"

/* ---- claim ---------------------------------------------------------------------------- */

static void claim_priority_then_fifo(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  static const int prio[] = {0, 5, 0, 5, -3, 1000, -1000, 0};
  char ids[8][JOBQ_ID_SIZE];
  for (int i = 0; i < 8; i++) cs_add(&s, T, "a", prio[i], 0, ids[i]);
  static const int order[] = {5, 1, 3, 0, 2, 7, 4, 6};
  for (int i = 0; i < 8; i++) {
    int att = cs_claim_expect(&s, T, ids[order[i]]);
    CK_INT(att, 1);
  }
  cs_claim_none(&s, T);
  cs_close(&s);
}

static void claim_across_kinds(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a1[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE], b9[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE],
      c1[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a1);
  cs_add(&s, T, "b", 0, 0, b1);
  cs_add(&s, T, "b", 9, 0, b9);
  cs_add(&s, T, "a", 0, 0, a2);
  cs_add(&s, T, "c", 0, 0, c1);
  const char *ab[] = {"a", "b"};
  const char *want[] = {b9, a1, b1, a2};
  for (int i = 0; i < 4; i++) {
    conf_claim cl = {0};
    cl.kinds = ab;
    cl.n_kinds = 2;
    cl.now = T;
    jobq_storage_job j;
    memset(&j, 0, sizeof j);
    CK_INT(cs_claim_req(&s, cl, &j), 1);
    CK_STR(j.id, want[i]);
    jobq_storage_job_clear(&j);
  }
  /* Only c is left, and a, b claims do not see it. */
  conf_claim cl = {0};
  cl.kinds = ab;
  cl.n_kinds = 2;
  cl.now = T;
  jobq_storage_job j;
  CK_INT(cs_claim_req(&s, cl, &j), 0);
  const char *none[] = {"no-such-kind"};
  cl.kinds = none;
  cl.n_kinds = 1;
  CK_INT(cs_claim_req(&s, cl, &j), 0);
  cs_claim_expect(&s, T, c1);
  cs_close(&s);
}

/* max > 1: the best jobs, in claim order. */
static void claim_batch_best_in_order(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  static const char *const kind[] = {"a", "b", "a", "b", "a", "c", "b"};
  static const int prio[] = {0, 2, 2, 0, 7, 2, -1};
  char ids[7][JOBQ_ID_SIZE];
  for (int i = 0; i < 7; i++) cs_add(&s, T, kind[i], prio[i], 0, ids[i]);
  /* Best first: 4 (7), then priority 2 in FIFO order 1, 2, 5, then 0, 3, then 6. */
  jobq_storage_job out[4];
  memset(out, 0, sizeof out);
  conf_claim cl = {0};
  cl.max = 4;
  cl.now = T;
  CK_INT(cs_claim_req(&s, cl, out), 4);
  static const int want[] = {4, 1, 2, 5};
  for (int i = 0; i < 4; i++) {
    CK_STR(out[i].id, ids[want[i]]);
    CK_INT(out[i].state, JOBQ_RUNNING);
    CK_INT(out[i].attempts, 1);
    jobq_storage_job_clear(&out[i]);
  }
  /* Asking for more than there is returns what there is, in order. */
  jobq_storage_job rest[10];
  memset(rest, 0, sizeof rest);
  cl.max = 10;
  CK_INT(cs_claim_req(&s, cl, rest), 3);
  static const int want2[] = {0, 3, 6};
  for (int i = 0; i < 3; i++) {
    CK_STR(rest[i].id, ids[want2[i]]);
    jobq_storage_job_clear(&rest[i]);
  }
  cs_close(&s);
}

/* FIFO means the order jobs were stored in, which need not be the order
 * of their ids (ids are made before storing, on several threads). */
static void claim_fifo_is_store_order(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char ids[4][JOBQ_ID_SIZE];
  for (int i = 0; i < 4; i++) jobq__id_new(ids[i], T); /* increasing */
  for (int i = 3; i >= 0; i--) {                       /* stored in reverse */
    conf_spec sp = {0};
    sp.id = ids[i];
    cs_insert(&s, T, sp, NULL);
  }
  /* One at a time. */
  cs_claim_expect(&s, T, ids[3]);
  /* Several at once: the same order. */
  jobq_storage_job out[3];
  memset(out, 0, sizeof out);
  conf_claim cl = {0};
  cl.max = 3;
  cl.now = T;
  CK_INT(cs_claim_req(&s, cl, out), 3);
  char got[3][JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) {
    memcpy(got[i], out[i].id, JOBQ_ID_SIZE);
    jobq_storage_job_clear(&out[i]);
  }
  for (int i = 0; i < 3; i++) {
    CK(strcmp(got[i], ids[2 - i]) == 0,
       "batch claim entry %d is %s; expected %s (stored order %s, %s, %s; the batch came back "
       "as %s, %s, %s)",
       i, got[i], ids[2 - i], ids[2], ids[1], ids[0], got[0], got[1], got[2]);
  }
  cs_close(&s);
}

/* Jobs that come back older than jobs already due (a release, a retry, a
 * delayed job that came due) take their place by priority and store order
 * among new ones, a cancel anywhere leaves the rest in order, and a queued
 * job's position counts exactly the jobs claimed before it. (The memory
 * backend keeps in-order arrivals apart from the others.) */
static void claim_returning_jobs_keep_their_place(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], late[JOBQ_ID_SIZE], d[JOBQ_ID_SIZE], e[JOBQ_ID_SIZE],
      f[JOBQ_ID_SIZE], g[JOBQ_ID_SIZE], h[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a);
  cs_add(&s, T, "a", 0, 0, b);
  cs_add(&s, T, "a", 0, T + 5, late); /* due at T + 5, stored before d.. */
  cs_add(&s, T, "a", 0, 0, d);
  CK_INT(cs_claim_expect(&s, T, a), 1);
  CK_INT(cs_finish(&s, a, 1, T + 1, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_QUEUED);
  CK_INT(cs_claim_expect(&s, T + 1, a), 1);
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "e1");
  r.run_at = T + 1;
  CK_INT(cs_finish(&s, a, 1, T + 1, r), JOBQ_QUEUED);
  cs_add(&s, T + 2, "a", 0, 0, e);
  cs_add(&s, T + 2, "a", 3, 0, f);
  cs_add(&s, T + 2, "a", 0, 0, g);
  cs_add(&s, T + 2, "a", 3, 0, h);
  int st;
  CK_OK(s.ops->cancel(s.st, g, T + 2, &st, NULL));
  CK_INT(st, JOBQ_CANCELLED);
  /* At T + 6 late is due too: f, h (priority 3), then a (retried), b,
   * late, d, e in store order. */
  const char *want[] = {f, h, a, b, late, d, e};
  for (int i = 0; i < 7; i++) {
    jobq_storage_job j;
    cs_get(&s, want[i], T + 6, &j);
    CK(j.position == i, "job %d (%s) is at position %" PRId64 "; expected %d", i, want[i],
       j.position, i);
    jobq_storage_job_clear(&j);
  }
  for (int i = 0; i < 7; i++) cs_claim_expect(&s, T + 6, want[i]);
  cs_claim_none(&s, T + 6);
  cs_close(&s);
}

/* A claim of many jobs at once: best first throughout. */
static void claim_large_batch_in_order(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  enum { N = 1100 };
  conf_spec *sp = calloc(N, sizeof *sp);
  char(*ids)[JOBQ_ID_SIZE] = calloc(N, JOBQ_ID_SIZE);
  jobq_storage_job *out = calloc(N, sizeof *out);
  assert_non_null(sp);
  assert_non_null(ids);
  assert_non_null(out);
  for (int i = 0; i < N; i++) {
    sp[i].kind = i % 2 ? "a" : "b";
    sp[i].priority = (i * 7) % 3;
  }
  CK_OK(cs_insert_n(&s, T, sp, N, ids, NULL));
  conf_claim cl = {0};
  cl.max = N;
  cl.now = T;
  CK_INT(cs_claim_req(&s, cl, out), N);
  /* Expected: priority 2, then 1, then 0, each in stored order. */
  int k = 0, bad = -1;
  for (int p = 2; p >= 0; p--)
    for (int i = 0; i < N; i++)
      if ((i * 7) % 3 == p) {
        if (bad < 0 && strcmp(out[k].id, ids[i]) != 0) bad = k;
        k++;
      }
  int bad_prio = bad >= 0 ? out[bad].priority : 0;
  for (int i = 0; i < N; i++) jobq_storage_job_clear(&out[i]);
  free(out);
  free(ids);
  free(sp);
  cs_close(&s);
  CK(bad < 0, "a claim of %d jobs: entry %d (priority %d) is out of order; the ones before it "
     "were in order", N, bad, bad_prio);
}

static void claim_kind_limits(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a1[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE], b2[JOBQ_ID_SIZE], a3[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a1);
  cs_add(&s, T, "b", 0, 0, b1);
  cs_add(&s, T, "a", 0, 0, a2);
  cs_add(&s, T, "b", 0, 0, b2);
  cs_add(&s, T, "a", 0, 0, a3);
  const char *ab[] = {"a", "b"};
  int lim[] = {1, -1};
  conf_claim cl = {0};
  cl.kinds = ab;
  cl.limits = lim;
  cl.n_kinds = 2;
  cl.max = 10;
  cl.now = T;
  jobq_storage_job out[10];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 3);
  CK_STR(out[0].id, a1);
  CK_STR(out[1].id, b1);
  CK_STR(out[2].id, b2);
  for (int i = 0; i < 3; i++) jobq_storage_job_clear(&out[i]);
  /* Limit 0: that kind is not claimed at all. */
  int lim0[] = {0, 5};
  cl.limits = lim0;
  CK_INT(cs_claim_req(&s, cl, out), 0);
  CK_INT(cs_state(&s, a2, T), JOBQ_QUEUED);
  /* Limit 2 of 2 left, max 1: max wins. */
  int lim2[] = {2, 0};
  cl.limits = lim2;
  cl.max = 1;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, a2);
  jobq_storage_job_clear(&out[0]);
  cl.limits = NULL;
  cl.max = 10;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, a3);
  jobq_storage_job_clear(&out[0]);
  cs_close(&s);
}

static void claim_exclude_with_any_kind(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a1[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE], c1[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a1);
  cs_add(&s, T, "b", 0, 0, b1);
  cs_add(&s, T, "c", 5, 0, c1);
  cs_add(&s, T, "a", 0, 0, a2);
  const char *ex_ac[] = {"a", "c"};
  conf_claim cl = {0};
  cl.exclude = ex_ac;
  cl.n_exclude = 2;
  cl.max = 10;
  cl.now = T;
  jobq_storage_job out[10];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, b1);
  jobq_storage_job_clear(&out[0]);
  const char *ex_a[] = {"a"};
  cl.exclude = ex_a;
  cl.n_exclude = 1;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, c1);
  jobq_storage_job_clear(&out[0]);
  cl.exclude = NULL;
  cl.n_exclude = 0;
  CK_INT(cs_claim_req(&s, cl, out), 2);
  CK_STR(out[0].id, a1);
  CK_STR(out[1].id, a2);
  jobq_storage_job_clear(&out[0]);
  jobq_storage_job_clear(&out[1]);
  cs_close(&s);
}

static void claim_scheduled_not_before_due(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char d1[JOBQ_ID_SIZE], d2[JOBQ_ID_SIZE], q1[JOBQ_ID_SIZE], hi[JOBQ_ID_SIZE],
      lo[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, T + 1000, d1);
  cs_add(&s, T, "a", 0, T + 500, d2);
  cs_add(&s, T, "a", -5, 0, q1);
  cs_add(&s, T, "a", 0, T - 50, hi); /* in the past: due now */
  cs_claim_expect(&s, T, hi);
  cs_claim_expect(&s, T, q1);
  cs_claim_none(&s, T);
  cs_claim_none(&s, T + 499);
  cs_claim_expect(&s, T + 500, d2);
  cs_claim_none(&s, T + 999);
  cs_claim_expect(&s, T + 1000, d1);

  /* A scheduled job that came due competes by priority with due jobs. */
  cs_add(&s, T, "a", 0, 0, lo);
  cs_add(&s, T, "a", 9, T + 100, hi);
  cs_claim_expect(&s, T + 100, hi);
  cs_claim_expect(&s, T + 100, lo);
  cs_close(&s);
}

static void claim_record_and_max_attempts(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char ma[JOBQ_ID_SIZE], mb[JOBQ_ID_SIZE], mc[JOBQ_ID_SIZE], md[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.kind = "ma";
  sp.owner = "own";
  sp.payload = "{\"p\":1}";
  sp.priority = 4;
  cs_insert(&s, T, sp, ma);
  cs_add(&s, T, "mb", 0, 0, mb);
  conf_spec sc = {0};
  sc.kind = "mc";
  sc.max_attempts = 2;
  cs_insert(&s, T, sc, mc);
  cs_add(&s, T, "md", 0, 0, md);
  const char *mk[] = {"ma", "zz", "md"};
  const int mv[] = {7, 9, 0}; /* 0: not a value, the default applies */
  conf_claim cl = {0};
  cl.max = 4;
  cl.now = T + 3;
  cl.lease_ms = 60000;
  cl.ma_kinds = mk;
  cl.ma_values = mv;
  cl.n_ma = 3;
  cl.default_max_attempts = 5;
  jobq_storage_job out[4];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 4);
  CK_STR(out[0].id, ma);
  CK_STR(out[0].kind, "ma");
  CK_STR(out[0].payload, "{\"p\":1}");
  CK_STR(out[0].owner, "own");
  CK_INT(out[0].priority, 4);
  CK_INT(out[0].state, JOBQ_RUNNING);
  CK_INT(out[0].attempts, 1);
  CK_INT(out[0].started_at, T + 3);
  CK_INT(out[0].created_at, T);
  CK_INT(out[0].progress, 0);
  CK_INT(out[0].cancel_requested, 0);
  CK_INT(out[0].max_attempts, 7);
  for (int i = 1; i < 4; i++) {
    int want = strcmp(out[i].id, mc) == 0 ? 2 : 5;
    CK(out[i].max_attempts == want, "job of kind %s claimed with max_attempts %d; expected %d",
       out[i].kind, out[i].max_attempts, want);
  }
  for (int i = 0; i < 4; i++) jobq_storage_job_clear(&out[i]);
  /* Stored that way, so that a rescuer knows it too. */
  jobq_storage_job j;
  cs_get(&s, ma, T + 4, &j);
  CK_INT(j.max_attempts, 7);
  CK_INT(j.state, JOBQ_RUNNING);
  CK_INT(j.attempts, 1);
  CK_INT(j.started_at, T + 3);
  CK_INT(j.finished_at, 0);
  CK_INT(j.position, -1);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T + 3);
    CK_INT(j.attempt_log[0].finished_at, 0);
    CK_STR(j.attempt_log[0].error, NULL);
  }
  jobq_storage_job_clear(&j);
  cs_get(&s, md, T + 4, &j);
  CK_INT(j.max_attempts, 5);
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(claim_priority_then_fifo),
    CONF_TEST(claim_across_kinds),
    CONF_TEST(claim_batch_best_in_order),
    CONF_TEST(claim_fifo_is_store_order),
    CONF_TEST(claim_large_batch_in_order),
    CONF_TEST(claim_returning_jobs_keep_their_place),
    CONF_TEST(claim_kind_limits),
    CONF_TEST(claim_exclude_with_any_kind),
    CONF_TEST(claim_scheduled_not_before_due),
    CONF_TEST(claim_record_and_max_attempts),
  };
  return conf_run("storage vtable: claim", tests, sizeof tests / sizeof tests[0]);
}
