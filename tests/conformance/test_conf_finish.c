/* Storage conformance, layer 1 (the vtable; see conf_storage.h): finish. */
#include "conf_storage.h"

/* ---- finish ------------------------------------------------------------------------------ */

static void finish_succeeded(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T + 1, id);
  CK_OK(s.ops->progress(s.st, id, 1, 40, "working"));
  conf_fin f = {0};
  f.outcome = JOBQ_OUTCOME_SUCCEEDED;
  f.result = "{\"ok\":true,\"n\":[1,2]}";
  f.progress = 40;
  f.step = "done";
  CK_INT(cs_finish(&s, id, 1, T + 20, f), JOBQ_SUCCEEDED);
  jobq_storage_job j;
  cs_get(&s, id, T + 30, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.result, "{\"ok\":true,\"n\":[1,2]}");
  CK_STR(j.error, NULL);
  CK_INT(j.progress, 100);
  CK_STR(j.step, "done");
  CK_INT(j.attempts, 1);
  CK_INT(j.started_at, T + 1);
  CK_INT(j.finished_at, T + 20);
  CK_INT(j.position, -1);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T + 1);
    CK_INT(j.attempt_log[0].finished_at, T + 20);
    CK_STR(j.attempt_log[0].error, NULL);
  }
  jobq_storage_job_clear(&j);
  /* result NULL is stored as JSON null; step NULL keeps the stored step. */
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  CK_OK(s.ops->progress(s.st, id, 1, 10, "kept"));
  CK_INT(cs_finish(&s, id, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  cs_get(&s, id, T, &j);
  CK_STR(j.result, "null");
  CK_STR(j.step, "kept");
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

static void finish_failed(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  conf_fin f = fin_of(JOBQ_OUTCOME_FAILED, "disk on fire");
  f.progress = 55;
  f.step = "step 3";
  CK_INT(cs_finish(&s, id, 1, T + 9, f), JOBQ_FAILED);
  jobq_storage_job j;
  cs_get(&s, id, T + 10, &j);
  CK_INT(j.state, JOBQ_FAILED);
  CK_STR(j.error, "disk on fire");
  CK_STR(j.result, NULL);
  CK_INT(j.progress, 55);
  CK_STR(j.step, "step 3");
  CK_INT(j.finished_at, T + 9);
  CK_INT(j.attempts, 1);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T);
    CK_INT(j.attempt_log[0].finished_at, T + 9);
    CK_STR(j.attempt_log[0].error, "disk on fire");
  }
  jobq_storage_job_clear(&j);
  cs_claim_none(&s, T + 100000);
  cs_close(&s);
}

static void finish_retry_then_succeed(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "try again");
  r.run_at = T + 5000;
  CK_INT(cs_finish(&s, id, 1, T + 10, r), JOBQ_QUEUED);
  jobq_storage_job j;
  cs_get(&s, id, T + 10, &j);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.run_at, T + 5000);
  CK_STR(j.error, "try again");
  CK_INT(j.attempts, 1);
  CK_INT(j.position, -1); /* waiting for its time, not in line */
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T);
    CK_INT(j.attempt_log[0].finished_at, T + 10);
    CK_STR(j.attempt_log[0].error, "try again");
  }
  jobq_storage_job_clear(&j);
  int64_t next = 0;
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T + 10, &next));
  CK_INT(next, T + 5000);
  cs_claim_none(&s, T + 4999);
  CK_INT(cs_claim_expect(&s, T + 5000, id), 2);
  cs_get(&s, id, T + 5001, &j);
  CK_INT(j.attempts, 2);
  CK_INT(j.started_at, T + 5000);
  CK_INT(j.n_attempt_log, 2);
  if (j.n_attempt_log == 2) {
    CK_STR(j.attempt_log[0].error, "try again");
    CK_INT(j.attempt_log[1].started_at, T + 5000);
    CK_INT(j.attempt_log[1].finished_at, 0);
    CK_STR(j.attempt_log[1].error, NULL);
  }
  jobq_storage_job_clear(&j);
  /* The first attempt's number is stale now. */
  CK_INT(cs_finish(&s, id, 1, T + 5002, FIN_OK), JOBQ_ESTATE);
  CK_INT(cs_finish(&s, id, 2, T + 5003, FIN_OK), JOBQ_SUCCEEDED);
  cs_get(&s, id, T + 5004, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_INT(j.finished_at, T + 5003);
  CK_INT(j.n_attempt_log, 2);
  if (j.n_attempt_log == 2) {
    CK_STR(j.attempt_log[0].error, "try again");
    CK_INT(j.attempt_log[1].finished_at, T + 5003);
    CK_STR(j.attempt_log[1].error, NULL);
  }
  jobq_storage_job_clear(&j);

  /* A retry due at once (run_at <= now) is claimable at once. */
  cs_add(&s, T, "b", 0, 0, id);
  cs_claim_expect(&s, T, id);
  r.run_at = T;
  CK_INT(cs_finish(&s, id, 1, T, r), JOBQ_QUEUED);
  CK_INT(cs_claim_expect(&s, T, id), 2);
  cs_close(&s);
}

static void finish_cancelled_outcome(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  CK_INT(cs_finish(&s, id, 1, T + 5, fin_of(JOBQ_OUTCOME_CANCELLED, NULL)), JOBQ_CANCELLED);
  jobq_storage_job j;
  cs_get(&s, id, T + 5, &j);
  CK_INT(j.state, JOBQ_CANCELLED);
  CK_STR(j.error, "cancelled");
  CK_INT(j.finished_at, T + 5);
  jobq_storage_job_clear(&j);
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  CK_INT(cs_finish(&s, id, 1, T, fin_of(JOBQ_OUTCOME_CANCELLED, "stopped by host")),
         JOBQ_CANCELLED);
  cs_get(&s, id, T, &j);
  CK_STR(j.error, "stopped by host");
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

static void finish_release_not_counted(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE], later[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_add(&s, T, "a", 0, 0, later);
  cs_claim_expect(&s, T, id);
  CK_INT(cs_finish(&s, id, 1, T + 3, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_QUEUED);
  jobq_storage_job j;
  cs_get(&s, id, T + 3, &j);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.attempts, 0);
  CK_STR(j.error, NULL);
  CK_INT(j.finished_at, 0);
  CK(j.run_at <= T + 3, "a released job is due at once; run_at %" PRId64, j.run_at);
  jobq_storage_job_clear(&j);
  /* Claimable again at once, as attempt 1. */
  CK_INT(cs_claim_expect(&s, T + 3, id), 1);
  cs_get(&s, id, T + 3, &j);
  CK_INT(j.attempts, 1);
  CK_INT(j.n_attempt_log, 1);
  jobq_storage_job_clear(&j);
  /* Released after a failed attempt: the failed one still counts. */
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "e1");
  r.run_at = T + 3;
  CK_INT(cs_finish(&s, id, 1, T + 3, r), JOBQ_QUEUED);
  CK_INT(cs_claim_expect(&s, T + 3, id), 2);
  CK_INT(cs_finish(&s, id, 2, T + 4, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_QUEUED);
  cs_get(&s, id, T + 4, &j);
  CK_INT(j.attempts, 1);
  CK_STR(j.error, "e1");
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) CK_STR(j.attempt_log[0].error, "e1");
  jobq_storage_job_clear(&j);
  CK_INT(cs_claim_expect(&s, T + 4, id), 2);
  cs_close(&s);
}

static void finish_stale_and_unknown(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], q[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a);
  cs_add(&s, T, "a", 0, 0, b);
  cs_add(&s, T, "q", 0, 0, q);
  jobq__id_new(nope, T);
  cs_claim_expect(&s, T, a);
  cs_claim_expect(&s, T, b);
  /* Several outcomes in one call, each answered on its own. */
  jobq_storage_finish f[5];
  memset(f, 0, sizeof f);
  f[0].id = a;
  f[0].attempt = 1;
  f[0].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[1].id = nope;
  f[1].attempt = 1;
  f[1].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[2].id = b;
  f[2].attempt = 2; /* not the running attempt */
  f[2].outcome = JOBQ_OUTCOME_FAILED;
  f[2].error = "x";
  f[3].id = q; /* queued, never claimed */
  f[3].attempt = 1;
  f[3].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[4].id = b;
  f[4].attempt = 1;
  f[4].outcome = JOBQ_OUTCOME_FAILED;
  f[4].error = "y";
  for (int i = 0; i < 5; i++) f[i].now = T + 1;
  int st[5] = {99, 99, 99, 99, 99};
  CK_OK(s.ops->finish(s.st, f, 5, st));
  CK_INT(st[0], JOBQ_SUCCEEDED);
  CK_INT(st[1], JOBQ_ENOTFOUND);
  CK_INT(st[2], JOBQ_ESTATE);
  CK_INT(st[3], JOBQ_ESTATE);
  CK_INT(st[4], JOBQ_FAILED);
  CK_INT(cs_state(&s, q, T), JOBQ_QUEUED);
  jobq_storage_job j;
  cs_get(&s, b, T, &j);
  CK_STR(j.error, "y");
  jobq_storage_job_clear(&j);
  /* Finished jobs refuse further outcomes, RELEASE included. */
  CK_INT(cs_finish(&s, a, 1, T + 2, fin_of(JOBQ_OUTCOME_FAILED, "late")), JOBQ_ESTATE);
  CK_INT(cs_finish(&s, a, 1, T + 2, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_ESTATE);
  CK_INT(cs_finish(&s, nope, 1, T + 2, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_ENOTFOUND);
  cs_get(&s, a, T, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.error, NULL);
  CK_INT(j.finished_at, T + 1);
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

/* With cancel_requested set, every outcome but RELEASE ends the job cancelled. */
static void finish_after_cancel_request(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  static const int outcomes[] = {JOBQ_OUTCOME_SUCCEEDED, JOBQ_OUTCOME_FAILED, JOBQ_OUTCOME_RETRY,
                                 JOBQ_OUTCOME_CANCELLED};
  for (int i = 0; i < 4; i++) {
    char id[JOBQ_ID_SIZE];
    cs_add(&s, T, "a", 0, 0, id);
    cs_claim_expect(&s, T, id);
    int st = -1;
    char *kind = NULL;
    CK_OK(s.ops->cancel(s.st, id, T + 1, &st, &kind));
    CK_INT(st, JOBQ_RUNNING);
    CK_STR(kind, "a");
    free(kind);
    jobq_storage_job j;
    cs_get(&s, id, T + 1, &j);
    CK_INT(j.state, JOBQ_RUNNING);
    CK_INT(j.cancel_requested, 1);
    jobq_storage_job_clear(&j);
    conf_fin f = {0};
    f.outcome = outcomes[i];
    if (outcomes[i] == JOBQ_OUTCOME_SUCCEEDED) f.result = "42";
    if (outcomes[i] == JOBQ_OUTCOME_FAILED || outcomes[i] == JOBQ_OUTCOME_RETRY) f.error = "err";
    f.run_at = T + 1000;
    int got = cs_finish(&s, id, 1, T + 2, f);
    CK(got == JOBQ_CANCELLED, "outcome %d after a cancel request gave state %d; expected %d "
       "(cancelled)", outcomes[i], got, JOBQ_CANCELLED);
    cs_get(&s, id, T + 3, &j);
    CK_INT(j.state, JOBQ_CANCELLED);
    CK_INT(j.finished_at, T + 2);
    CK_STR(j.result, NULL);
    CK(j.error != NULL, "a cancelled job has an error text");
    if (outcomes[i] == JOBQ_OUTCOME_SUCCEEDED) CK_STR(j.error, "cancelled");
    jobq_storage_job_clear(&j);
  }
  cs_claim_none(&s, T + 100000);
  /* RELEASE of a job that was asked to stop: it ends cancelled rather than
   * run again (storage.h). */
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  int st = -1;
  CK_OK(s.ops->cancel(s.st, id, T, &st, NULL));
  CK_INT(cs_finish(&s, id, 1, T, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_CANCELLED);
  CK_INT(cs_state(&s, id, T), JOBQ_CANCELLED);
  cs_claim_none(&s, T + 100000);
  cs_close(&s);
}

/* Backends that store asynchronously offer finish_async: it must store
 * exactly what finish stores and call back once. */
typedef struct async_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls, rc, state;
} async_wait;

static void async_done(void *ud, int rc, const int *out_state) {
  async_wait *w = ud;
  pthread_mutex_lock(&w->mu);
  w->calls++;
  w->rc = rc;
  w->state = rc == 0 && out_state ? out_state[0] : 12345;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static int async_finish(conf_store *s, const char *id, int attempt, int outcome, int64_t now) {
  async_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
  char idcopy[JOBQ_ID_SIZE];
  snprintf(idcopy, sizeof idcopy, "%s", id);
  jobq_storage_finish f = {0};
  f.id = idcopy;
  f.attempt = attempt;
  f.outcome = outcome;
  f.result = "{\"async\":1}";
  f.error = outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : "async error";
  f.now = now;
  CK_OK(s->ops->finish_async(s->st, &f, 1, async_done, &w));
  memset(idcopy, 'x', JOBQ_ID_SIZE - 1); /* the backend had to copy it */
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  pthread_mutex_lock(&w.mu);
  while (w.calls == 0 && conf_mono_ms() < end) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w.cv, &w.mu, &ts);
  }
  int calls = w.calls, rc = w.rc, state = w.state;
  pthread_mutex_unlock(&w.mu);
  CK(calls == 1, "finish_async called back %d times within %d ms; expected once", calls,
     CONF_GUARD_MS);
  CK_OK(rc);
  /* Exactly once: nothing more comes. */
  conf_sleep_ms(20);
  pthread_mutex_lock(&w.mu);
  calls = w.calls;
  pthread_mutex_unlock(&w.mu);
  CK_INT(calls, 1);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  return state;
}

static void finish_async_when_offered(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  if (s.ops->finish_async == NULL) {
    cs_close(&s);
    print_message("[%s] finish_async is not offered (optional): nothing to check\n", conf_be());
    return;
  }
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a);
  cs_add(&s, T, "a", 0, 0, b);
  cs_claim_expect(&s, T, a);
  cs_claim_expect(&s, T, b);
  CK_INT(async_finish(&s, a, 1, JOBQ_OUTCOME_SUCCEEDED, T + 1), JOBQ_SUCCEEDED);
  CK_INT(async_finish(&s, b, 2, JOBQ_OUTCOME_FAILED, T + 1), JOBQ_ESTATE);
  CK_INT(async_finish(&s, b, 1, JOBQ_OUTCOME_FAILED, T + 2), JOBQ_FAILED);
  jobq_storage_job j;
  cs_get(&s, a, T + 3, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.result, "{\"async\":1}");
  CK_INT(j.finished_at, T + 1);
  jobq_storage_job_clear(&j);
  cs_get(&s, b, T + 3, &j);
  CK_INT(j.state, JOBQ_FAILED);
  CK_STR(j.error, "async error");
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(finish_succeeded),
    CONF_TEST(finish_failed),
    CONF_TEST(finish_retry_then_succeed),
    CONF_TEST(finish_cancelled_outcome),
    CONF_TEST(finish_release_not_counted),
    CONF_TEST(finish_stale_and_unknown),
    CONF_TEST(finish_after_cancel_request),
    CONF_TEST(finish_async_when_offered),
  };
  return conf_run("storage vtable: finish", tests, sizeof tests / sizeof tests[0]);
}
