/* Batches' caps, owner quotas and rate limits on the PostgreSQL backend
 * under concurrency: several threads, each on a queue of its own (its own
 * pool of connections, as separate processes would have), claim members of
 * one capped batch, submit for one owner, or claim a rate-limited kind, at
 * the same time. The cap, the quota and the limit must hold exactly: they
 * are decided under a row lock of the batch and advisory locks of the owner
 * and of the kind (docs/postgres.md). Skipped without a server.
 * jobq-test-requires: postgres */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"
#include "jobq/postgres.h"

#define THREADS 4
#define MEMBERS 40
#define CAP 3
#define GUARD_MS 60000 /* a bound for a hung test, not a speed check */

static char base_url[512];

static const char *base(void) {
  if (base_url[0]) return base_url;
  const char *e = getenv("JOBQ_TEST_POSTGRES_URL");
  if (e && *e) {
    snprintf(base_url, sizeof base_url, "%s", e);
    return base_url;
  }
  const char *f = getenv("JOBQ_TEST_POSTGRES_URL_FILE");
  FILE *fp = f ? fopen(f, "r") : NULL;
  if (fp) {
    if (fgets(base_url, sizeof base_url, fp) == NULL) base_url[0] = '\0';
    base_url[strcspn(base_url, "\r\n")] = '\0';
    fclose(fp);
  }
  return base_url;
}

static int need_server(void) {
  if (!base()[0]) {
    print_message("skipped: no PostgreSQL server (JOBQ_TEST_POSTGRES_URL unset)\n");
    return 0;
  }
  assert_int_equal(jobq_postgres_register(), 0);
  return 1;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A queue on schema `schema` without workers (the threads claim), with an
 * owner quota when quota > 0. */
static jobq_t *open_q(const char *schema, int quota) {
  char url[700];
  snprintf(url, sizeof url, "%s?schema=%s", base(), schema);
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  if (quota > 0) assert_int_equal(jobq_options_set_owner_quota(o, NULL, quota), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  return q;
}

/* ---- a batch's cap ---- */

typedef struct cap_run {
  jobq_t *q;
  atomic_int *running, *max_running, *done;
  int errors;
} cap_run;

/* Claims members until all are done. `running` counts claims returned and
 * not yet finished: each is running in storage (the claim committed before
 * it returned, the finish commits after the decrement), so it never
 * exceeds what storage holds running, which the cap bounds. */
static void *cap_thread(void *arg) {
  cap_run *r = arg;
  const char *kinds[2] = {"capped", NULL};
  uint64_t until = mono_ms() + GUARD_MS;
  while (atomic_load(r->done) < MEMBERS && mono_ms() < until) {
    jobq_ctx_t *ctx = NULL;
    int rc = jobq_claim(r->q, kinds, 0, &ctx);
    if (rc == JOBQ_ETIMEDOUT) {
      usleep(1000);
      continue;
    }
    if (rc != 0) {
      print_message("jobq_claim: %d %s\n", rc, jobq_last_error());
      r->errors++;
      break;
    }
    int now = atomic_fetch_add(r->running, 1) + 1;
    int seen = atomic_load(r->max_running);
    while (now > seen && !atomic_compare_exchange_weak(r->max_running, &seen, now)) {
    }
    usleep(2000); /* overlap with the other threads' claims */
    atomic_fetch_sub(r->running, 1);
    if ((rc = jobq_ctx_succeed(ctx, "{}")) != 0) {
      print_message("jobq_ctx_succeed: %d %s\n", rc, jobq_last_error());
      r->errors++;
    }
    atomic_fetch_add(r->done, 1);
  }
  return NULL;
}

static void test_batch_cap_concurrent(void **state) {
  (void)state;
  if (!need_server()) skip();
  char schema[64];
  snprintf(schema, sizeof schema, "t_cap_%ld", (long)getpid());
  jobq_t *q[THREADS];
  for (int i = 0; i < THREADS; i++) q[i] = open_q(schema, 0);
  const char *kinds[MEMBERS], *payloads[MEMBERS];
  for (int i = 0; i < MEMBERS; i++) kinds[i] = "capped", payloads[i] = "{}";
  char bid[JOBQ_ID_SIZE], ids[MEMBERS * JOBQ_ID_SIZE];
  assert_int_equal(jobq_batch_submit(q[0], MEMBERS, kinds, payloads, NULL, CAP, bid, ids, NULL), 0);

  atomic_int running = 0, max_running = 0, done = 0;
  cap_run r[THREADS];
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    r[i] = (cap_run){q[i], &running, &max_running, &done, 0};
    assert_int_equal(pthread_create(&th[i], NULL, cap_thread, &r[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(r[i].errors, 0);
  }
  assert_int_equal(atomic_load(&done), MEMBERS);
  assert_true(atomic_load(&max_running) >= 1);
  assert_true(atomic_load(&max_running) <= CAP);

  /* jobq_ctx_succeed hands the outcome to the store's group commit and
   * returns: wait (bounded) for the last ones to commit. */
  jobq_batch_t *b = NULL;
  uint64_t until = mono_ms() + GUARD_MS;
  for (;;) {
    assert_int_equal(jobq_batch_get(q[THREADS - 1], bid, &b), 0);
    if (jobq_batch_done(b) || mono_ms() > until) break;
    jobq_batch_free(b);
    usleep(2000);
  }
  assert_int_equal(jobq_batch_done(b), 1);
  assert_int_equal(jobq_batch_count(b, JOBQ_SUCCEEDED), MEMBERS);
  assert_int_equal(jobq_batch_count(b, JOBQ_QUEUED), 0);
  jobq_batch_free(b);
  for (int i = 0; i < THREADS; i++) assert_int_equal(jobq_close(q[i], 0), 0);
}

/* ---- an owner's quota ---- */

#define QUOTA 5
#define TRIES 10

typedef struct quota_run {
  jobq_t *q;
  int stored, refused, other;
} quota_run;

static void *quota_thread(void *arg) {
  quota_run *r = arg;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  if (so == NULL || jobq_submit_opts_set_owner(so, "u") != 0) {
    r->other++;
    jobq_submit_opts_free(so);
    return NULL;
  }
  for (int i = 0; i < TRIES; i++) {
    char id[JOBQ_ID_SIZE];
    int rc = jobq_submit(r->q, "k", "{}", so, id);
    if (rc == 0) r->stored++;
    else if (rc == JOBQ_EQUOTA) r->refused++;
    else r->other++;
  }
  jobq_submit_opts_free(so);
  return NULL;
}

static void test_owner_quota_concurrent(void **state) {
  (void)state;
  if (!need_server()) skip();
  char schema[64];
  snprintf(schema, sizeof schema, "t_quota_%ld", (long)getpid());
  jobq_t *q[THREADS];
  for (int i = 0; i < THREADS; i++) q[i] = open_q(schema, QUOTA);
  quota_run r[THREADS];
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    r[i] = (quota_run){q[i], 0, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, quota_thread, &r[i]), 0);
  }
  int stored = 0, refused = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(r[i].other, 0);
    stored += r[i].stored;
    refused += r[i].refused;
  }
  /* exactly the quota, whatever the interleaving */
  assert_int_equal(stored, QUOTA);
  assert_int_equal(refused, THREADS * TRIES - QUOTA);
  /* a refusal says why and stores nothing */
  char id[JOBQ_ID_SIZE] = "";
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_owner(so, "u"), 0);
  assert_int_equal(jobq_submit(q[0], "k", "{}", so, id), JOBQ_EQUOTA);
  assert_non_null(strstr(jobq_last_error(), "owner 'u' has 5 unfinished jobs; its quota is 5"));
  assert_string_equal(id, "");
  jobq_submit_opts_free(so);
  for (int i = 0; i < THREADS; i++) assert_int_equal(jobq_close(q[i], 0), 0);
}

/* ---- a shared rate limit ---- */

#define RATE 5
#define RATE_JOBS 20
#define QUIET_TRIES 50 /* claims each thread tries after the window filled */

static void noop(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
}

typedef struct rate_run {
  jobq_t *q;
  atomic_int *claimed;
  int errors;
} rate_run;

/* Claims "r" jobs; once the window is full (RATE claimed in all), keeps
 * trying QUIET_TRIES more times, so that a claim past the limit would be
 * seen. */
static void *rate_thread(void *arg) {
  rate_run *r = arg;
  const char *kinds[2] = {"r", NULL};
  int quiet = 0;
  uint64_t until = mono_ms() + GUARD_MS;
  while (quiet < QUIET_TRIES && mono_ms() < until) {
    if (atomic_load(r->claimed) >= RATE) quiet++;
    jobq_ctx_t *ctx = NULL;
    int rc = jobq_claim(r->q, kinds, 0, &ctx);
    if (rc == JOBQ_ETIMEDOUT) {
      usleep(500);
      continue;
    }
    if (rc != 0) {
      print_message("jobq_claim: %d %s\n", rc, jobq_last_error());
      r->errors++;
      break;
    }
    atomic_fetch_add(r->claimed, 1);
    if (jobq_ctx_succeed(ctx, NULL) != 0) r->errors++;
  }
  return NULL;
}

static void test_rate_limit_concurrent(void **state) {
  (void)state;
  if (!need_server()) skip();
  char schema[64];
  snprintf(schema, sizeof schema, "t_rate_%ld", (long)getpid());
  jobq_t *q[THREADS];
  for (int i = 0; i < THREADS; i++) {
    q[i] = open_q(schema, 0);
    jobq_kind_opts_t *ko = jobq_kind_opts_new();
    assert_non_null(ko);
    /* a window of a day: no start leaves it during the test */
    assert_int_equal(jobq_kind_opts_set_rate_limit(ko, RATE, 86400000), 0);
    assert_int_equal(jobq_register(q[i], "r", noop, NULL, ko), 0);
    jobq_kind_opts_free(ko);
  }
  for (int i = 0; i < RATE_JOBS; i++) {
    char id[JOBQ_ID_SIZE];
    assert_int_equal(jobq_submit(q[i % THREADS], "r", "{}", NULL, id), 0);
  }
  atomic_int claimed = 0;
  rate_run r[THREADS];
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    r[i] = (rate_run){q[i], &claimed, 0};
    assert_int_equal(pthread_create(&th[i], NULL, rate_thread, &r[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(r[i].errors, 0);
  }
  /* exactly the window's starts, whichever queues took them */
  assert_int_equal(atomic_load(&claimed), RATE);
  for (int i = 0; i < THREADS; i++) assert_int_equal(jobq_close(q[i], 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_batch_cap_concurrent),
    cmocka_unit_test(test_owner_quota_concurrent),
    cmocka_unit_test(test_rate_limit_concurrent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
