/* jobq_claim_many: the pull path in batches. Up to max jobs come from ONE
 * storage claim (counted by a "count:" backend that wraps memory:), in the
 * workers' order (priority across kinds, then age), within a kind's
 * concurrency limit, on memory: and sqlite:. Each ctx finishes like a
 * jobq_claim ctx; a live holder's heartbeats renew the whole batch's lease
 * (read from the file), and an unfinished batch on sqlite: is rescued once
 * its lease has run out (a child process claims and dies; the fake clock
 * moves past the lease). Plus the waits (timeout, close, the loop thread) and bad
 * input, which claims nothing and writes nothing. */
#include "testutil_run.h"

#include "core/internal.h" /* to see that a blocked claimer is really blocked */

#include <sqlite3.h>
#include <uv.h>

#define T0 INT64_C(1700000000000)
#define SENT ((jobq_ctx_t *)(uintptr_t)0x1)

static const char *const K_A[] = {"a", NULL};
static const char *const K_AB[] = {"a", "b", NULL};
static const char *const K_LB[] = {"lim", "b", NULL};

/* ---- "count:" storage: memory:, counting claims ---- */

static atomic_int n_claims;
static atomic_size_t last_max;

static int count_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}

static int count_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out,
                       size_t *n_out) {
  atomic_fetch_add(&n_claims, 1);
  atomic_store(&last_max, req->max);
  return jobq__memory_ops.claim(st, req, out, n_out);
}

static void count_register(void) {
  static jobq_storage_ops ops;
  static int done;
  if (done) return;
  ops = jobq__memory_ops;
  ops.scheme = "count";
  ops.open = count_open;
  ops.claim = count_claim;
  int rc = jobq_storage_register(&ops);
  assert_true(rc == 0 || rc == JOBQ_EEXIST);
  done = 1;
}

/* ---- helpers ---- */

typedef struct store {
  char dir[40];
  char url[96];
} store;

static void store_init(store *s) {
  snprintf(s->dir, sizeof s->dir, "/tmp/jobq-claimmany-XXXXXX");
  assert_non_null(mkdtemp(s->dir));
  snprintf(s->url, sizeof s->url, "sqlite:%s/q.db", s->dir);
}

static void store_done(store *s) {
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  assert_int_equal(system(cmd), 0);
}

static jobq_t *open_on(const char *url, tr_clock *c) {
  tr_open_args a = {.workers = 0, .clock = c, .storage = url};
  return tr_open(&a);
}

static void fill_sent(jobq_ctx_t **v, size_t n) {
  for (size_t i = 0; i < n; i++) v[i] = SENT;
}

static void assert_sent(jobq_ctx_t *const *v, size_t n) {
  for (size_t i = 0; i < n; i++) assert_ptr_equal(v[i], SENT);
}

static void assert_err(int rc, int want, const char *needle) {
  if (rc != want)
    fail_msg("returned %s, not %s (%s)", jobq_err_name(rc), jobq_err_name(want), jobq_last_error());
  if (strstr(jobq_last_error(), needle) == NULL)
    fail_msg("jobq_last_error() = \"%s\" does not contain \"%s\"", jobq_last_error(), needle);
}

static size_t claim_n(jobq_t *q, const char *const *kinds, size_t max, jobq_ctx_t **out) {
  size_t n = 777;
  int rc = jobq_claim_many(q, kinds, max, 0, out, &n);
  if (rc != 0) fail_msg("jobq_claim_many: %s (%s)", jobq_err_name(rc), jobq_last_error());
  assert_true(n >= 1 && n <= max);
  return n;
}

static void claim_none(jobq_t *q, const char *const *kinds, size_t max) {
  jobq_ctx_t *v[4];
  size_t n = 777;
  fill_sent(v, 4);
  assert_err(jobq_claim_many(q, kinds, max, 0, v, &n), JOBQ_ETIMEDOUT,
             "jobq_claim_many: no job was due within 0 ms");
  assert_int_equal(n, 777);
  assert_sent(v, 4);
}

/* ---- N at once, in the workers' order, on each backend ---- */

/* 3 of a (priority 0) and 2 of b (priority 5), then 5 more of a: one claim
 * of max 8 takes b, b, then the a's by age; each is running, attempt 1, and
 * finishes through the ctx like a jobq_claim one. */
static void claims_n_at_once(const char *url) {
  tr_clock c;
  tr_clock_set(&c, T0);
  jobq_t *q = open_on(url, &c);
  char ids[10][JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) tr_submit(q, "a", "{}", NULL, ids[i]);
  jobq_submit_opts_t *hi = tr_prio(5);
  for (int i = 3; i < 5; i++) tr_submit(q, "b", "{}", hi, ids[i]);
  jobq_submit_opts_free(hi);
  for (int i = 5; i < 10; i++) tr_submit(q, "a", "{}", NULL, ids[i]);
  tr_clock_set(&c, T0 + 10);

  jobq_ctx_t *v[16];
  fill_sent(v, 16);
  size_t n = claim_n(q, K_AB, 8, v);
  assert_int_equal(n, 8);
  assert_sent(v + 8, 8); /* nothing past *n_out */
  const int order[8] = {3, 4, 0, 1, 2, 5, 6, 7};
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(jobq_ctx_id(v[i]), ids[order[i]]);
    assert_int_equal(jobq_ctx_attempt(v[i]), 1);
    jobq_job_t *j = tr_get(q, ids[order[i]]);
    assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
    assert_int_equal(jobq_job_started_at(j), T0 + 10);
    jobq_job_free(j);
  }
  /* The rest: two, then nothing. */
  jobq_ctx_t *w[16];
  assert_int_equal(claim_n(q, K_AB, 16, w), 2);
  assert_string_equal(jobq_ctx_id(w[0]), ids[8]);
  assert_string_equal(jobq_ctx_id(w[1]), ids[9]);
  claim_none(q, K_AB, 16);
  claim_none(q, NULL, 16);

  for (size_t i = 0; i < n; i++) assert_int_equal(jobq_ctx_succeed(v[i], "1"), 0);
  assert_int_equal(jobq_ctx_fail(w[0], "no", 0), 0);
  assert_int_equal(jobq_ctx_retry_after(w[1], 1000, 1), 0);
  /* sqlite: stores finishes asynchronously: wait for them. */
  for (int i = 0; i < 9; i++) {
    jobq_job_t *j = tr_wait_terminal(q, ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), i < 8 ? JOBQ_SUCCEEDED : JOBQ_FAILED);
    jobq_job_free(j);
  }
  jobq_job_t *r = tr_wait_state(q, ids[9], JOBQ_QUEUED, 1, TR_GUARD_MS);
  assert_int_equal(jobq_job_state(r), JOBQ_QUEUED);
  assert_int_equal(jobq_job_run_at(r), T0 + 10 + 1000);
  jobq_job_free(r);
  assert_int_equal(jobq_close(q, 0), 0);
}

static void test_claims_n_at_once_memory(void **state) {
  (void)state;
  claims_n_at_once("memory:");
}

static void test_claims_n_at_once_sqlite(void **state) {
  (void)state;
  store s;
  store_init(&s);
  claims_n_at_once(s.url);
  store_done(&s);
}

/* ---- one storage claim per call, at most max ---- */

static void test_one_storage_claim_respects_max(void **state) {
  (void)state;
  count_register();
  jobq_t *q = open_on("count:", NULL);
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 300; i++) tr_submit(q, "a", "0", NULL, id);
  jobq_ctx_t *v[256];
  atomic_store(&n_claims, 0);
  assert_int_equal(claim_n(q, K_A, 256, v), 256);
  assert_int_equal(atomic_load(&n_claims), 1);
  assert_int_equal(atomic_load(&last_max), 256);
  for (size_t i = 0; i < 256; i++) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  /* max 3 of the 44 left, then the rest with NULL kinds. */
  atomic_store(&n_claims, 0);
  assert_int_equal(claim_n(q, K_A, 3, v), 3);
  assert_int_equal(atomic_load(&n_claims), 1);
  assert_int_equal(atomic_load(&last_max), 3);
  for (size_t i = 0; i < 3; i++) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  assert_int_equal(claim_n(q, NULL, 64, v), 41);
  for (size_t i = 0; i < 41; i++) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  claim_none(q, NULL, 64);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* ---- a kind's concurrency limit ---- */

static void test_concurrency_limit(void **state) {
  (void)state;
  jobq_t *q = open_on("memory:", NULL);
  tr_register(q, "lim", tr_never_handler, NULL, tr_kind_opts(2, 3, 1000, 60000, 0.0, 0, 0));
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) tr_submit(q, "lim", "0", NULL, id);
  for (int i = 0; i < 3; i++) tr_submit(q, "b", "0", NULL, id);
  jobq_ctx_t *v[64], *w[64];
  /* Named kinds: 2 of lim (its limit) and the 3 of b, in one batch. */
  assert_int_equal(claim_n(q, K_LB, 64, v), 5);
  int lim = 0;
  for (int i = 0; i < 5; i++) lim += strcmp(jobq_ctx_kind(v[i]), "lim") == 0;
  assert_int_equal(lim, 2);
  claim_none(q, K_LB, 64);
  claim_none(q, NULL, 64); /* lim is full; nothing else is due */
  /* One lim slot free: exactly one more. */
  for (int i = 0; i < 5; i++)
    if (strcmp(jobq_ctx_kind(v[i]), "lim") == 0) {
      assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
      v[i] = NULL;
      break;
    }
  assert_int_equal(claim_n(q, K_LB, 64, w), 1);
  assert_string_equal(jobq_ctx_kind(w[0]), "lim");
  claim_none(q, K_LB, 64);
  for (int i = 0; i < 5; i++)
    if (v[i]) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  assert_int_equal(jobq_ctx_succeed(w[0], NULL), 0);
  /* Any kind (NULL): storage cannot count per kind, so the batch is at
   * most lim's free slots (2), and lim never goes past its limit. */
  for (int i = 0; i < 4; i++) tr_submit(q, "b", "0", NULL, id);
  /* now due: 2 lim, 4 b (lim first, older) */
  assert_int_equal(claim_n(q, NULL, 64, v), 2);
  assert_string_equal(jobq_ctx_kind(v[0]), "lim");
  assert_string_equal(jobq_ctx_kind(v[1]), "lim");
  /* lim full: excluded, the whole rest of b in one batch. */
  assert_int_equal(claim_n(q, NULL, 64, w), 4);
  for (int i = 0; i < 4; i++) assert_string_equal(jobq_ctx_kind(w[i]), "b");
  for (int i = 0; i < 2; i++) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(jobq_ctx_succeed(w[i], NULL), 0);
  claim_none(q, NULL, 64);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* ---- leases: a batch claimed by a process that dies is rescued ---- */

typedef struct lease_args {
  const char *url;
  char ids[5][JOBQ_ID_SIZE];
} lease_args;

/* The child: submits and claims 5 at T0, then dies without finishing. */
static int child_claim_and_die(void *arg) {
  lease_args *a = arg;
  tr_clock c;
  tr_clock_set(&c, T0);
  jobq_options_t *o = jobq_options_new();
  TR_CHK(jobq_options_set_workers(o, 0) == 0);
  TR_CHK(jobq_options_set_storage(o, a->url) == 0);
  TR_CHK(jobq_options_set_clock(o, tr_clock_fn, &c) == 0);
  TR_CHK(jobq_options_set_lease(o, 1000) == 0);
  jobq_t *q = NULL;
  TR_CHK(jobq_open(&q, o) == 0);
  jobq_options_free(o);
  jobq_ctx_t *v[8];
  size_t n = 0;
  TR_CHK(jobq_claim_many(q, K_A, 8, 0, v, &n) == 0);
  TR_CHK(n == 5);
  _exit(0); /* no close: the jobs stay running until their lease ends */
}

static void test_lease_rescue_sqlite(void **state) {
  (void)state;
  store s;
  store_init(&s);
  lease_args a;
  a.url = s.url;
  tr_clock c;
  tr_clock_set(&c, T0);
  jobq_t *q = open_on(s.url, &c);
  for (int i = 0; i < 5; i++) tr_submit(q, "a", "0", NULL, a.ids[i]);
  assert_int_equal(jobq_close(q, 0), 0);

  char why[200];
  int rc = tr_fork_run(child_claim_and_die, &a, 60, why, sizeof why);
  if (rc != 0) fail_msg("the claiming child failed: %s", why);

  /* Still within the lease: running, attempt 1, not claimable. */
  tr_clock_set(&c, T0 + 500);
  q = open_on(s.url, &c);
  for (int i = 0; i < 5; i++) {
    jobq_job_t *j = tr_get(q, a.ids[i]);
    assert_int_equal(jobq_job_state(j), JOBQ_RUNNING);
    assert_int_equal(jobq_job_attempts(j), 1);
    jobq_job_free(j);
  }
  claim_none(q, K_A, 8);
  assert_int_equal(jobq_close(q, 0), 0);

  /* Past the lease: a queue that opens rescues them, and a batch claim
   * takes all five for their second attempt. */
  tr_clock_set(&c, T0 + 60000);
  q = open_on(s.url, &c);
  jobq_ctx_t *v[8];
  size_t got = 0;
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (got < 5 && tr_mono_ms() < end) {
    size_t n = 0;
    rc = jobq_claim_many(q, K_A, 8, 100, v + got, &n);
    if (rc == 0) got += n;
    else if (rc != JOBQ_ETIMEDOUT)
      fail_msg("jobq_claim_many: %s (%s)", jobq_err_name(rc), jobq_last_error());
  }
  assert_int_equal(got, 5);
  for (size_t i = 0; i < got; i++) {
    assert_int_equal(jobq_ctx_attempt(v[i]), 2);
    assert_int_equal(jobq_ctx_progress(v[i], 50, "half"), 0);
    assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  }
  for (int i = 0; i < 5; i++) {
    jobq_job_t *j = tr_wait_terminal(q, a.ids[i], TR_GUARD_MS);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    assert_int_equal(jobq_job_attempts(j), 2);
    assert_string_equal(jobq_job_attempt_error(j, 0),
                        "lease expired: the process running the job stopped");
    jobq_job_free(j);
  }
  assert_int_equal(jobq_close(q, 0), 0);
  store_done(&s);
}

/* ---- heartbeats: a live holder's batch keeps its lease ---- */

/* The smallest lease_until of the running jobs in the file (-1: none). */
static int64_t min_lease(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT coalesce(min(lease_until), -1) FROM jobq_jobs "
                                      "WHERE state = 1",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void test_heartbeats_renew_a_batch_sqlite(void **state) {
  (void)state;
  store s;
  store_init(&s);
  tr_clock c;
  tr_clock_set(&c, T0);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  assert_int_equal(jobq_options_set_storage(o, s.url), 0);
  assert_int_equal(jobq_options_set_clock(o, tr_clock_fn, &c), 0);
  assert_int_equal(jobq_options_set_lease(o, 1000), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) tr_submit(q, "a", "0", NULL, id);
  jobq_ctx_t *v[8];
  assert_int_equal(claim_n(q, K_A, 8, v), 5);
  char path[128];
  snprintf(path, sizeof path, "%s/q.db", s.dir);
  assert_int_equal(min_lease(path), T0 + 1000);
  /* Past a third of the lease the queue's heartbeat renews every job of
   * the batch from its clock's now. */
  tr_clock_set(&c, T0 + 900);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (min_lease(path) < T0 + 1900 && tr_mono_ms() < end) tr_sleep_ms(5);
  assert_int_equal(min_lease(path), T0 + 1900);
  for (size_t i = 0; i < 5; i++) assert_int_equal(jobq_ctx_succeed(v[i], NULL), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  assert_int_equal(min_lease(path), -1);
  store_done(&s);
}

/* ---- waits ---- */

static void test_timeout_with_nothing_due(void **state) {
  (void)state;
  jobq_t *q = open_on("memory:", NULL);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_delay(so, 3600000), 0);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", so, id);
  jobq_submit_opts_free(so);
  claim_none(q, K_A, 4);
  jobq_ctx_t *v[4];
  size_t n = 777;
  fill_sent(v, 4);
  assert_err(jobq_claim_many(q, NULL, 4, 30, v, &n), JOBQ_ETIMEDOUT,
             "jobq_claim_many: no job was due within 30 ms");
  assert_int_equal(n, 777);
  assert_sent(v, 4);
  assert_int_equal(tr_state(q, id), JOBQ_QUEUED);
  assert_int_equal(jobq_close(q, 0), 0);
}

typedef struct cm_waiter {
  jobq_t *q;
  int rc;
  size_t n;
  jobq_ctx_t *v[4];
  char err[200];
} cm_waiter;

static void *waiter_main(void *arg) {
  cm_waiter *w = arg;
  w->rc = jobq_claim_many(w->q, NULL, 4, -1, w->v, &w->n);
  snprintf(w->err, sizeof w->err, "%s", jobq_last_error()); /* per thread */
  return NULL;
}

static int claimer_blocked(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  int ok = q->claim.idle >= 1;
  uv_mutex_unlock(&q->mu);
  return ok;
}

/* A waiting claim gets a job submitted meanwhile; one waiting at close
 * returns JOBQ_ECLOSED and writes nothing. */
static void test_wait_then_close(void **state) {
  (void)state;
  jobq_t *q = open_on("memory:", NULL);
  cm_waiter w = {.q = q, .rc = -99, .n = 777};
  fill_sent(w.v, 4);
  pthread_t t;
  pthread_create(&t, NULL, waiter_main, &w);
  uint64_t end = tr_mono_ms() + TR_GUARD_MS;
  while (!claimer_blocked(q) && tr_mono_ms() < end) tr_sleep_ms(1);
  assert_true(claimer_blocked(q));
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  pthread_join(t, NULL);
  assert_int_equal(w.rc, 0);
  assert_int_equal(w.n, 1);
  assert_string_equal(jobq_ctx_id(w.v[0]), id);
  assert_int_equal(jobq_ctx_succeed(w.v[0], NULL), 0);

  w.rc = -99;
  w.n = 777;
  fill_sent(w.v, 4);
  pthread_create(&t, NULL, waiter_main, &w);
  end = tr_mono_ms() + TR_GUARD_MS;
  while (!claimer_blocked(q) && tr_mono_ms() < end) tr_sleep_ms(1);
  assert_true(claimer_blocked(q));
  assert_int_equal(jobq_close(q, 0), 0);
  pthread_join(t, NULL);
  assert_int_equal(w.rc, JOBQ_ECLOSED);
  assert_string_equal(w.err, "jobq_claim_many: the queue is closing");
  assert_int_equal(w.n, 777);
  assert_sent(w.v, 4);
}

/* On the loop thread of a host's loop a blocking claim is refused; a poll
 * (timeout 0) is fine. */
static void test_loop_thread_refused(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  tr_open_args a = {.workers = 0, .loop = &loop};
  jobq_t *q = tr_open(&a);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  jobq_ctx_t *v[4];
  size_t n = 777;
  fill_sent(v, 4);
  assert_err(jobq_claim_many(q, K_A, 4, 10, v, &n), JOBQ_EDEADLK,
             "jobq_claim_many: a blocking claim on the loop thread");
  assert_err(jobq_claim_many(q, K_A, 4, -1, v, &n), JOBQ_EDEADLK, "jobq_claim_many");
  assert_int_equal(n, 777);
  assert_sent(v, 4);
  assert_int_equal(tr_state(q, id), JOBQ_QUEUED);
  assert_int_equal(jobq_claim_many(q, K_A, 4, 0, v, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(jobq_ctx_succeed(v[0], NULL), 0);
  assert_int_equal(jobq_close(q, 1000), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- bad input: the code, the sentence, nothing claimed or written ---- */

static void test_bad_input(void **state) {
  (void)state;
  jobq_t *q = open_on("memory:", NULL);
  char id[JOBQ_ID_SIZE];
  tr_submit(q, "a", "0", NULL, id);
  jobq_ctx_t *v[4];
  size_t n = 777;
  fill_sent(v, 4);
  const char *const empty[] = {NULL};
  const char *const bad[] = {"a", "no spaces", NULL};
  const char **many = calloc(1026, sizeof *many);
  assert_non_null(many);
  for (int i = 0; i < 1025; i++) many[i] = "a";

  assert_err(jobq_claim_many(NULL, K_A, 4, 0, v, &n), JOBQ_EINVAL, "jobq_claim_many: q is NULL");
  assert_err(jobq_claim_many(q, K_A, 4, 0, NULL, &n), JOBQ_EINVAL,
             "jobq_claim_many: out is NULL");
  assert_err(jobq_claim_many(q, K_A, 4, 0, v, NULL), JOBQ_EINVAL,
             "jobq_claim_many: n_out is NULL");
  assert_err(jobq_claim_many(q, K_A, 0, 0, v, &n), JOBQ_EINVAL,
             "jobq_claim_many: max is 0, not 1..1024");
  assert_err(jobq_claim_many(q, K_A, 1025, 0, v, &n), JOBQ_EINVAL,
             "jobq_claim_many: max is 1025, not 1..1024");
  assert_err(jobq_claim_many(q, K_A, SIZE_MAX, 0, v, &n), JOBQ_EINVAL, "not 1..1024");
  assert_err(jobq_claim_many(q, empty, 4, 0, v, &n), JOBQ_EINVAL,
             "jobq_claim_many: kinds is empty (use NULL for any)");
  assert_err(jobq_claim_many(q, (const char *const *)many, 4, 0, v, &n), JOBQ_EINVAL,
             "jobq_claim_many: more than 1024 kinds");
  assert_err(jobq_claim_many(q, bad, 4, 0, v, &n), JOBQ_EKIND, "jobq_claim_many");
  free(many);
  assert_int_equal(n, 777);
  assert_sent(v, 4);
  jobq_job_t *j = tr_get(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 0);
  jobq_job_free(j);
  /* jobq_claim keeps its own name in its sentences. */
  assert_err(jobq_claim(q, empty, 0, v), JOBQ_EINVAL,
             "jobq_claim: kinds is empty (use NULL for any)");
  /* The edges of max are fine. */
  assert_int_equal(jobq_claim_many(q, K_A, 1024, 0, v, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(jobq_ctx_succeed(v[0], NULL), 0);
  assert_int_equal(jobq_close(q, 0), 0);
}

int main(void) {
  tr_filter_from_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claims_n_at_once_memory),
      cmocka_unit_test(test_claims_n_at_once_sqlite),
      cmocka_unit_test(test_one_storage_claim_respects_max),
      cmocka_unit_test(test_concurrency_limit),
      cmocka_unit_test(test_lease_rescue_sqlite),
      cmocka_unit_test(test_heartbeats_renew_a_batch_sqlite),
      cmocka_unit_test(test_timeout_with_nothing_due),
      cmocka_unit_test(test_wait_then_close),
      cmocka_unit_test(test_loop_thread_refused),
      cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
