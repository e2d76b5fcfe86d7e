/* Storage conformance, layer 1 (the vtable; see conf_storage.h): heartbeat, leases, rescue. */
#include "conf_storage.h"

/* ---- heartbeat, leases, rescue ------------------------------------------------------------------- */

static void heartbeat_reports(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], d[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a);
  cs_add(&s, T, "a", 0, 0, b);
  cs_add(&s, T, "a", 0, 0, d);
  jobq__id_new(nope, T);
  cs_claim_expect(&s, T, a);
  cs_claim_expect(&s, T, b);
  cs_claim_expect(&s, T, d);
  int st;
  CK_OK(s.ops->cancel(s.st, b, T, &st, NULL));
  CK_INT(cs_finish(&s, d, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  jobq_storage_lease l[5];
  memset(l, 0, sizeof l);
  l[0].id = a;
  l[0].attempt = 1;
  l[1].id = b;
  l[1].attempt = 1;
  l[2].id = d; /* finished */
  l[2].attempt = 1;
  l[3].id = a; /* a stale attempt number */
  l[3].attempt = 2;
  l[4].id = nope;
  l[4].attempt = 1;
  for (int i = 0; i < 5; i++) {
    l[i].still_running = 77;
    l[i].cancel_requested = 77;
  }
  CK_OK(s.ops->heartbeat(s.st, l, 5, T + 30000));
  CK_INT(l[0].still_running, 1);
  CK_INT(l[0].cancel_requested, 0);
  CK_INT(l[1].still_running, 1);
  CK_INT(l[1].cancel_requested, 1);
  CK_INT(l[2].still_running, 0);
  CK_INT(l[3].still_running, 0);
  CK_INT(l[4].still_running, 0);
  for (int i = 2; i < 5; i++)
    CK(l[i].cancel_requested == 0 || l[i].cancel_requested == 1, "cancel_requested[%d] = %d", i,
       l[i].cancel_requested);
  /* A heartbeat changes nothing else. */
  CK_INT(cs_state(&s, a, T), JOBQ_RUNNING);
  CK_INT(cs_finish(&s, a, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_OK(s.ops->heartbeat(s.st, l, 0, T));
  cs_close(&s);
}

/* rescue for a backend without durable storage: a documented no-op. */
static void rescue_is_noop(conf_store *s, const char *id, int64_t far) {
  size_t n = 99;
  CK_OK(s->ops->rescue(s->st, far, &n));
  CK(n == 0, "rescue of a non-durable backend rescued %zu jobs; it is documented as a no-op", n);
  CK_INT(cs_state(s, id, far), JOBQ_RUNNING);
}

static void rescue_expired_lease(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.max_attempts = 3;
  cs_insert(&s, T, sp, id);
  conf_claim cl = {0};
  cl.now = T;
  cl.lease_ms = 100;
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  CK_INT(cs_claim_req(&s, cl, &j), 1);
  CK_STR(j.id, id);
  jobq_storage_job_clear(&j);
  if (!c->be->durable) {
    rescue_is_noop(&s, id, T + 1000000000);
    CK_INT(cs_finish(&s, id, 1, T + 1000000000, FIN_OK), JOBQ_SUCCEEDED);
    cs_close(&s);
    return;
  }
  /* Nothing while the lease lives (lease_until = T + 100 is not before T + 100). */
  size_t n = 99;
  CK_OK(s.ops->rescue(s.st, T + 50, &n));
  CK_INT(n, 0);
  CK_OK(s.ops->rescue(s.st, T + 100, &n));
  CK_INT(n, 0);
  CK_INT(cs_state(&s, id, T + 100), JOBQ_RUNNING);
  /* Expired: back to queued, the attempt counted, its error says why. */
  cs_add(&s, T, "a", 0, 0, other); /* queued: not touched */
  CK_OK(s.ops->rescue(s.st, T + 101, &n));
  CK_INT(n, 1);
  cs_get(&s, id, T + 101, &j);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.attempts, 1);
  CK_INT(j.cancel_requested, 0);
  CK_HAS(j.error, "lease");
  CK(j.run_at <= T + 101, "a rescued job is due at once; run_at T+%" PRId64, j.run_at - T);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T);
    CK_INT(j.attempt_log[0].finished_at, T + 101);
    CK_HAS(j.attempt_log[0].error, "lease");
  }
  jobq_storage_job_clear(&j);
  CK_INT(cs_state(&s, other, T + 101), JOBQ_QUEUED);
  /* Again: nothing left to rescue. */
  CK_OK(s.ops->rescue(s.st, T + 102, &n));
  CK_INT(n, 0);
  /* The dead attempt's late news is refused; its heartbeat says it is gone. */
  CK_INT(cs_finish(&s, id, 1, T + 103, FIN_OK), JOBQ_ESTATE);
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 1, 50, NULL));
  jobq_storage_lease l = {id, 1, 77, 77};
  CK_OK(s.ops->heartbeat(s.st, &l, 1, T + 100000));
  CK_INT(l.still_running, 0);
  /* The next claim runs it as attempt 2 (the first one in line). */
  CK_INT(cs_claim_expect(&s, T + 104, id), 2);
  CK_INT(cs_finish(&s, id, 2, T + 105, FIN_OK), JOBQ_SUCCEEDED);
  cs_get(&s, id, T + 105, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_INT(j.attempts, 2);
  CK_INT(j.n_attempt_log, 2);
  if (j.n_attempt_log == 2) {
    CK_HAS(j.attempt_log[0].error, "lease");
    CK_STR(j.attempt_log[1].error, NULL);
    CK_INT(j.attempt_log[1].started_at, T + 104);
  }
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

static void rescue_heartbeat_extends_lease(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  conf_claim cl = {0};
  cl.now = T;
  cl.lease_ms = 100;
  jobq_storage_job j;
  CK_INT(cs_claim_req(&s, cl, &j), 1);
  jobq_storage_job_clear(&j);
  jobq_storage_lease l = {id, 1, 0, 0};
  CK_OK(s.ops->heartbeat(s.st, &l, 1, T + 1000));
  CK_INT(l.still_running, 1);
  if (!c->be->durable) {
    rescue_is_noop(&s, id, T + 5000);
    cs_close(&s);
    return;
  }
  size_t n = 99;
  CK_OK(s.ops->rescue(s.st, T + 500, &n));
  CK_INT(n, 0);
  CK_INT(cs_state(&s, id, T + 500), JOBQ_RUNNING);
  /* The heartbeat stored T + 1000 itself (not later by however long the
   * backend took to apply it), so 1 ms past it the job is rescued. */
  CK_OK(s.ops->rescue(s.st, T + 1001, &n));
  CK_INT(n, 1);
  CK_INT(cs_state(&s, id, T + 1001), JOBQ_QUEUED);
  cs_close(&s);
}

static void rescue_attempts_spent_or_cancelled(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char spent[JOBQ_ID_SIZE], canc[JOBQ_ID_SIZE], live[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.kind = "one";
  sp.max_attempts = 1;
  cs_insert(&s, T, sp, spent);
  cs_add(&s, T, "canc", 0, 0, canc);
  cs_add(&s, T, "live", 0, 0, live);
  const char *k1[] = {"one", "canc"};
  conf_claim cl = {0};
  cl.kinds = k1;
  cl.n_kinds = 2;
  cl.max = 2;
  cl.now = T;
  cl.lease_ms = 100;
  jobq_storage_job out[2];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 2);
  jobq_storage_job_clear(&out[0]);
  jobq_storage_job_clear(&out[1]);
  const char *k2[] = {"live"};
  cl.kinds = k2;
  cl.n_kinds = 1;
  cl.max = 1;
  cl.lease_ms = 100000;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  jobq_storage_job_clear(&out[0]);
  int st;
  CK_OK(s.ops->cancel(s.st, canc, T + 1, &st, NULL));
  CK_INT(st, JOBQ_RUNNING);
  if (!c->be->durable) {
    rescue_is_noop(&s, spent, T + 1000000);
    CK_INT(cs_state(&s, canc, T + 1000000), JOBQ_RUNNING);
    cs_close(&s);
    return;
  }
  size_t n = 99;
  CK_OK(s.ops->rescue(s.st, T + 5000, &n));
  CK_INT(n, 2); /* not the one whose lease lives */
  jobq_storage_job j;
  cs_get(&s, spent, T + 5000, &j);
  CK_INT(j.state, JOBQ_FAILED);
  CK_INT(j.attempts, 1);
  CK_INT(j.finished_at, T + 5000);
  CK_HAS(j.error, "lease");
  jobq_storage_job_clear(&j);
  cs_get(&s, canc, T + 5000, &j);
  CK_INT(j.state, JOBQ_CANCELLED);
  CK_INT(j.finished_at, T + 5000);
  jobq_storage_job_clear(&j);
  CK_INT(cs_state(&s, live, T + 5000), JOBQ_RUNNING);
  cs_claim_none(&s, T + 5000);
  cs_close(&s);
}

/* Two handles on the same URL are one queue (durable backends). */
static void shared_between_handles(conf_case *c) {
  conf_store s1, s2;
  cs_open(c, &s1);
  cs_open(c, &s2);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  cs_add(&s1, T, "a", 0, 0, a);
  cs_add(&s2, T, "a", 0, 0, b);
  CK_INT(cs_state(&s2, a, T), JOBQ_QUEUED);
  cs_claim_expect(&s2, T, a);
  cs_claim_expect(&s1, T, b);
  cs_claim_none(&s1, T);
  cs_claim_none(&s2, T);
  CK_INT(cs_finish(&s1, a, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s2, a, T), JOBQ_SUCCEEDED);
  cs_close(&s1);
  CK_INT(cs_finish(&s2, b, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  cs_close(&s2);
  /* And a new handle sees it all. */
  cs_open(c, &s1);
  CK_INT(cs_state(&s1, b, T), JOBQ_SUCCEEDED);
  cs_close(&s1);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(heartbeat_reports),
    CONF_TEST(rescue_expired_lease),
    CONF_TEST(rescue_heartbeat_extends_lease),
    CONF_TEST(rescue_attempts_spent_or_cancelled),
    CONF_TEST_NEED(shared_between_handles, CONF_NEED_DURABLE),
  };
  return conf_run("storage vtable: heartbeat, leases, rescue", tests, sizeof tests / sizeof tests[0]);
}
