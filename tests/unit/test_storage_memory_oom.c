/* The memory backend's finish is all or nothing (jobq/storage.h: "Returns
 * < 0 only when the backend itself failed (then nothing was applied)"),
 * also when an allocation fails part-way through a batch. Allocations are
 * wrapped at link time (-Wl,--wrap=malloc,..., as test_torture does) and
 * failed on the test thread only, so the backend's own calls see them.
 * The same holds for the changes that add webhook deliveries (insert,
 * checkpoint, finish, cancel) and for the outbox's own members. */
#include "testutil.h"

#include "jobq/storage.h"

extern const jobq_storage_ops jobq__memory_ops;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static _Thread_local int armed;
static _Thread_local long count;      /* allocations seen while armed */
static _Thread_local long fail_at;    /* fail the allocation with this number; 0: none */
static _Thread_local size_t fail_size; /* or every malloc of exactly this size; 0: none */
static _Thread_local long failed;     /* allocations failed while armed */

static int should_fail(size_t n) {
  if (!armed) return 0;
  count++;
  if (count == fail_at || (fail_size && n == fail_size)) {
    failed++;
    return 1;
  }
  return 0;
}

void *__wrap_malloc(size_t n) { return should_fail(n) ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return should_fail(n * m) ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return should_fail(n) ? NULL : __real_realloc(p, n); }

static void arm(long at, size_t size) {
  count = 0;
  failed = 0;
  fail_at = at;
  fail_size = size;
  armed = 1;
}

static void disarm(void) { armed = 0; }

static const jobq_storage_ops *ops = &jobq__memory_ops;
static const int64_t T = 1700000000000;

/* Stores n jobs of kind (ids in ids[i]) and returns nothing: allocations
 * are not failed here. */
static void add_jobs(void *st, const char *kind, size_t n, char (*ids)[JOBQ_ID_SIZE]) {
  jobq_storage_job *recs = calloc(n, sizeof *recs);
  jobq_storage_job **ptrs = calloc(n, sizeof *ptrs);
  int *dup = calloc(n, sizeof *dup);
  assert_non_null(recs);
  assert_non_null(ptrs);
  assert_non_null(dup);
  static unsigned serial;
  for (size_t i = 0; i < n; i++) {
    snprintf(recs[i].id, sizeof recs[i].id, "00000000-0000-7000-8000-%012u", ++serial);
    recs[i].kind = (char *)kind;
    recs[i].payload = (char *)"{}";
    recs[i].max_attempts = 5;
    recs[i].created_at = T;
    recs[i].run_at = T;
    ptrs[i] = &recs[i];
  }
  assert_int_equal(ops->insert(st, ptrs, n, NULL, T, dup), 0);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(dup[i], 0);
    if (ids) memcpy(ids[i], recs[i].id, JOBQ_ID_SIZE);
  }
  free(dup);
  free(ptrs);
  free(recs);
}

/* Claims exactly n jobs of kind at now and returns their ids in claim order. */
static void claim_jobs(void *st, const char *kind, int64_t now, size_t n,
                       char (*ids)[JOBQ_ID_SIZE]) {
  const char *kinds[] = {kind};
  jobq_storage_claim c = {0};
  c.kinds = kinds;
  c.n_kinds = 1;
  c.max = n;
  c.now = now;
  c.lease_ms = 30000;
  c.default_max_attempts = 5;
  jobq_storage_job *out = calloc(n, sizeof *out);
  assert_non_null(out);
  size_t got = 0;
  assert_int_equal(ops->claim(st, &c, out, &got), 0);
  assert_int_equal(got, n);
  for (size_t i = 0; i < n; i++) {
    memcpy(ids[i], out[i].id, JOBQ_ID_SIZE);
    jobq_storage_job_clear(&out[i]);
  }
  free(out);
}

/* The job is as a claim left it: running its first attempt, nothing
 * recorded of an end. */
static void assert_untouched(void *st, const char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  assert_int_equal(ops->get(st, id, T, &j), 0);
  if (j.state != JOBQ_RUNNING)
    fail_msg("job %s: state %s after a refused finish, not running", id, jobq_state_name(j.state));
  assert_int_equal(j.attempts, 1);
  assert_null(j.result);
  assert_null(j.error);
  assert_int_equal(j.finished_at, 0);
  assert_int_equal(j.progress, 0);
  assert_null(j.step);
  assert_int_equal(j.n_attempt_log, 1);
  assert_int_equal(j.attempt_log[0].finished_at, 0);
  assert_null(j.attempt_log[0].error);
  jobq_storage_job_clear(&j);
}

static int state_of(void *st, const char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  assert_int_equal(ops->get(st, id, T, &j), 0);
  int s = j.state;
  jobq_storage_job_clear(&j);
  return s;
}

/* The second entry's error is the only string of this length in the
 * batch, so failing mallocs of its size fails exactly that entry's copies. */
#define SECOND_ERROR "the second entry's error: 44 bytes with NUL"

static void test_finish_second_entry_fails_nothing_applied(void **state) {
  (void)state;
  void *st = NULL;
  assert_int_equal(ops->open("memory:", &st), 0);
  char ids[2][JOBQ_ID_SIZE];
  add_jobs(st, "k", 2, NULL);
  claim_jobs(st, "k", T, 2, ids);

  jobq_storage_finish f[2];
  memset(f, 0, sizeof f);
  f[0].id = ids[0];
  f[0].attempt = 1;
  f[0].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[0].result = "{\"first\":true}";
  f[0].now = T + 10;
  f[0].progress = 50;
  f[0].step = "first step";
  f[1].id = ids[1];
  f[1].attempt = 1;
  f[1].outcome = JOBQ_OUTCOME_FAILED;
  f[1].error = SECOND_ERROR;
  f[1].now = T + 10;
  int out[2] = {-999, -999};

  jobq_storage_set_error("");
  arm(0, sizeof SECOND_ERROR);
  int rc = ops->finish(st, f, 2, out);
  disarm();
  assert_true(failed >= 1); /* the hook did hit the second entry */
  assert_int_equal(rc, JOBQ_ENOMEM);
  assert_true(strlen(jobq_last_error()) > 0);
  assert_untouched(st, ids[0]);
  assert_untouched(st, ids[1]);

  /* Nothing was applied, so the same batch goes through once memory is back. */
  assert_int_equal(ops->finish(st, f, 2, out), 0);
  assert_int_equal(out[0], JOBQ_SUCCEEDED);
  assert_int_equal(out[1], JOBQ_FAILED);
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  assert_int_equal(ops->get(st, ids[0], T, &j), 0);
  assert_string_equal(j.result, "{\"first\":true}");
  assert_string_equal(j.step, "first step");
  jobq_storage_job_clear(&j);
  assert_int_equal(ops->get(st, ids[1], T, &j), 0);
  assert_string_equal(j.error, SECOND_ERROR);
  jobq_storage_job_clear(&j);
  ops->close(st);
}

/* Every allocation of a finish batch, in turn: the batch fails whole or
 * applies whole. The batch mixes outcomes (retry and release queue their
 * jobs again, which needs room in the kind's heap: the heap is full, so that
 * room is an allocation too), and holds the same job twice (the second
 * entry is stale once the first applied). */
static void test_finish_each_allocation_all_or_nothing(void **state) {
  (void)state;
  void *st = NULL;
  assert_int_equal(ops->open("memory:", &st), 0);
  /* 64 jobs fill the ready heap's 64 slots; claim 4 and add 3: one slot is
   * free while two of the running jobs will come back to the heap. */
  add_jobs(st, "k", 64, NULL);
  char run[4][JOBQ_ID_SIZE];
  claim_jobs(st, "k", T, 4, run);
  add_jobs(st, "k", 3, NULL);

  jobq_storage_finish f[6];
  memset(f, 0, sizeof f);
  for (int i = 0; i < 6; i++) {
    f[i].attempt = 1;
    f[i].now = T + 10;
    f[i].progress = 30;
  }
  f[0].id = run[0];
  f[0].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[0].result = "{\"r\":0}";
  f[0].step = "done";
  f[1].id = run[1];
  f[1].outcome = JOBQ_OUTCOME_RETRY;
  f[1].error = "try again";
  f[1].run_at = T + 10; /* due at once: back into the full ready heap */
  f[2].id = run[2];
  f[2].outcome = JOBQ_OUTCOME_RELEASE;
  f[3].id = run[3];
  f[3].outcome = JOBQ_OUTCOME_RETRY;
  f[3].error = "later";
  f[3].run_at = T + 60000;
  f[4].id = run[0]; /* again: stale once f[0] applied */
  f[4].outcome = JOBQ_OUTCOME_FAILED;
  f[4].error = "stale";
  f[5].id = "00000000-0000-7000-8000-ffffffffffff"; /* unknown */
  f[5].outcome = JOBQ_OUTCOME_FAILED;
  int out[6];

  long k = 1;
  for (;; k++) {
    assert_true(k < 100);
    jobq_storage_set_error("");
    arm(k, 0);
    int rc = ops->finish(st, f, 6, out);
    disarm();
    if (rc == 0) {
      assert_int_equal(failed, 0); /* k is past the batch's last allocation */
      break;
    }
    assert_int_equal(rc, JOBQ_ENOMEM);
    assert_true(strlen(jobq_last_error()) > 0);
    for (int i = 0; i < 4; i++) assert_untouched(st, run[i]);
  }
  assert_true(k > 2); /* the batch allocates, so some of its allocations failed */
  assert_int_equal(out[0], JOBQ_SUCCEEDED);
  assert_int_equal(out[1], JOBQ_QUEUED);
  assert_int_equal(out[2], JOBQ_QUEUED);
  assert_int_equal(out[3], JOBQ_QUEUED);
  assert_int_equal(out[4], JOBQ_ESTATE);
  assert_int_equal(out[5], JOBQ_ENOTFOUND);
  assert_int_equal(state_of(st, run[0]), JOBQ_SUCCEEDED);

  /* Every queued job is claimable: the 63 waiting, the retried one and the
   * released one, but not the one retrying in a minute. A job queued
   * without a place in its heap would be missing here. */
  char (*all)[JOBQ_ID_SIZE] = calloc(65, sizeof *all);
  assert_non_null(all);
  claim_jobs(st, "k", T + 10, 65, all);
  int saw1 = 0, saw2 = 0;
  for (int i = 0; i < 65; i++) {
    saw1 += strcmp(all[i], run[1]) == 0;
    saw2 += strcmp(all[i], run[2]) == 0;
  }
  assert_int_equal(saw1, 1);
  assert_int_equal(saw2, 1);
  free(all);
  const char *kinds[] = {"k"};
  jobq_storage_claim c = {0};
  c.kinds = kinds;
  c.n_kinds = 1;
  c.max = 1;
  c.now = T + 10;
  c.lease_ms = 30000;
  jobq_storage_job none;
  size_t got = 99;
  assert_int_equal(ops->claim(st, &c, &none, &got), 0);
  assert_int_equal(got, 0);
  c.now = T + 60000; /* the retry in a minute is there too */
  assert_int_equal(ops->claim(st, &c, &none, &got), 0);
  assert_int_equal(got, 1);
  assert_string_equal(none.id, run[3]);
  jobq_storage_job_clear(&none);
  ops->close(st);
}

/* ---- the webhook outbox: a change and its deliveries, all or nothing ---- */

static void assert_counts(void *st, int64_t pending, int64_t sending, int64_t delivered,
                          int64_t failed) {
  int64_t c[4];
  assert_int_equal(ops->outbox_counts(st, c), 0);
  assert_int_equal(c[JOBQ_DELIVERY_PENDING], pending);
  assert_int_equal(c[JOBQ_DELIVERY_SENDING], sending);
  assert_int_equal(c[JOBQ_DELIVERY_DELIVERED], delivered);
  assert_int_equal(c[JOBQ_DELIVERY_FAILED], failed);
}

#define HOOKS "[{\"e\":\"a\",\"on\":15},{\"e\":\"b\",\"on\":7,\"u\":\"https://b.example/\",\"p\":1}]"

/* insert_hooked of n jobs of kind with HOOKS, failing allocation k
 * (0: none); returns its code. */
static int insert_hooked_at(void *st, const char *kind, size_t n, char (*ids)[JOBQ_ID_SIZE],
                            long k) {
  jobq_storage_job recs[4];
  jobq_storage_job *ptrs[4];
  const char *hooks[4];
  int dup[4];
  static unsigned serial = 1000;
  memset(recs, 0, sizeof recs);
  for (size_t i = 0; i < n; i++) {
    snprintf(recs[i].id, sizeof recs[i].id, "00000000-0000-7000-8000-%012u", ++serial);
    recs[i].kind = (char *)kind;
    recs[i].payload = (char *)"{}";
    recs[i].max_attempts = 5;
    recs[i].created_at = recs[i].run_at = T;
    ptrs[i] = &recs[i];
    hooks[i] = HOOKS;
    memcpy(ids[i], recs[i].id, JOBQ_ID_SIZE);
  }
  if (k) arm(k, 0);
  int rc = ops->insert_hooked(st, ptrs, hooks, n, NULL, T, dup, NULL, 0);
  disarm();
  return rc;
}

static void test_outbox_each_allocation_all_or_nothing(void **state) {
  (void)state;
  void *st = NULL;
  assert_int_equal(ops->open("memory:", &st), 0);
  jobq_storage_job j;
  memset(&j, 0, sizeof j);

  /* insert_hooked: stored with its subscriptions, or not at all. */
  char ids[2][JOBQ_ID_SIZE];
  long k = 1;
  for (;; k++) {
    assert_true(k < 200);
    int rc = insert_hooked_at(st, "k", 2, ids, k);
    if (rc == 0) break;
    assert_int_equal(rc, JOBQ_ENOMEM);
    assert_int_equal(ops->get(st, ids[0], T, &j), JOBQ_ENOTFOUND);
    assert_int_equal(ops->get(st, ids[1], T, &j), JOBQ_ENOTFOUND);
  }
  assert_true(k > 2);
  char run[2][JOBQ_ID_SIZE];
  claim_jobs(st, "k", T, 2, run);

  /* checkpoint: the stage and its progress deliveries, or neither. */
  for (k = 1;; k++) {
    assert_true(k < 100);
    arm(k, 0);
    int rc = ops->checkpoint(st, run[0], 1, 0, "{\"out\":1}", 50, "half");
    disarm();
    if (rc == 0) break;
    assert_int_equal(rc, JOBQ_ENOMEM);
    int stage = 7;
    char *out = NULL;
    assert_int_equal(ops->checkpoint_get(st, run[0], &stage, &out), 0);
    assert_int_equal(stage, -1);
    assert_counts(st, 0, 0, 0, 0);
  }
  assert_true(k > 2);
  assert_counts(st, 1, 0, 0, 0);

  /* finish: two ends, their deliveries, the pending progress dropped. */
  jobq_storage_finish f[2];
  memset(f, 0, sizeof f);
  f[0].id = run[0];
  f[0].attempt = 1;
  f[0].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[0].now = T + 10;
  f[1].id = run[1];
  f[1].attempt = 1;
  f[1].outcome = JOBQ_OUTCOME_FAILED;
  f[1].error = "no";
  f[1].now = T + 10;
  int out[2];
  for (k = 1;; k++) {
    assert_true(k < 100);
    arm(k, 0);
    int rc = ops->finish(st, f, 2, out);
    disarm();
    if (rc == 0) break;
    assert_int_equal(rc, JOBQ_ENOMEM);
    assert_int_equal(state_of(st, run[0]), JOBQ_RUNNING);
    assert_int_equal(state_of(st, run[1]), JOBQ_RUNNING);
    assert_counts(st, 1, 0, 0, 0);
  }
  assert_true(k > 4);
  assert_counts(st, 4, 0, 0, 0);

  /* cancel of a queued job: cancelled with its deliveries, or untouched. */
  char q[1][JOBQ_ID_SIZE];
  assert_int_equal(insert_hooked_at(st, "q", 1, q, 0), 0);
  for (k = 1;; k++) {
    assert_true(k < 100);
    int st_out = -1;
    arm(k, 0);
    int rc = ops->cancel(st, q[0], T + 20, &st_out, NULL);
    disarm();
    if (rc == 0) break;
    assert_int_equal(rc, JOBQ_ENOMEM);
    assert_int_equal(state_of(st, q[0]), JOBQ_QUEUED);
    assert_counts(st, 4, 0, 0, 0);
  }
  assert_counts(st, 6, 0, 0, 0);

  /* outbox_done with an error and a URL to disable: whole or nothing. */
  const char *eps[] = {"a", "b"};
  const char *urls[] = {"https://a.example/", NULL};
  jobq_storage_outbox_claim c = {eps, urls, 2, 6, T + 30, 1000, NULL};
  jobq_storage_delivery d[6];
  jobq_storage_job jobs[6];
  size_t n = 0;
  assert_int_equal(ops->outbox_claim(st, &c, d, jobs, &n), 0);
  assert_int_equal(n, 6);
  jobq_storage_outbox_result r[2] = {
    {d[0].id, 1, JOBQ_DELIVERY_FAILED, 410, "410 Gone", 0, T + 40, "https://a.example/"},
    {d[1].id, 1, JOBQ_DELIVERY_PENDING, 503, "503 Service Unavailable", T + 900, T + 40, NULL},
  };
  int applied[2];
  for (k = 1;; k++) {
    assert_true(k < 100);
    arm(k, 0);
    int rc = ops->outbox_done(st, r, 2, applied);
    disarm();
    if (rc == 0) break;
    assert_int_equal(rc, JOBQ_ENOMEM);
    assert_counts(st, 0, 6, 0, 0);
    assert_int_equal(ops->webhook_enable(st, "https://a.example/"), JOBQ_ENOTFOUND);
  }
  assert_true(k > 2);
  assert_int_equal(applied[0], 1);
  assert_int_equal(applied[1], 1);
  assert_counts(st, 1, 4, 0, 1);
  for (size_t i = 0; i < n; i++) {
    jobq_storage_delivery_clear(&d[i]);
    jobq_storage_job_clear(&jobs[i]);
  }

  /* outbox_claim: what it returns is claimed, what it does not is left. */
  c.now = T + 900;
  c.max = 1;
  for (k = 1;; k++) {
    assert_true(k < 100);
    arm(k, 0);
    int rc = ops->outbox_claim(st, &c, d, jobs, &n);
    disarm();
    if (rc == 0) break;
    assert_int_equal(rc, JOBQ_ENOMEM);
    assert_counts(st, 1, 4, 0, 1);
  }
  assert_int_equal(n, 1);
  assert_int_equal(d[0].state, JOBQ_DELIVERY_SENDING);
  assert_int_equal(d[0].attempts, 2);
  jobq_storage_delivery_clear(&d[0]);
  jobq_storage_job_clear(&jobs[0]);
  assert_counts(st, 0, 5, 0, 1);
  ops->close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_finish_second_entry_fails_nothing_applied),
    cmocka_unit_test(test_finish_each_allocation_all_or_nothing),
    cmocka_unit_test(test_outbox_each_allocation_all_or_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
