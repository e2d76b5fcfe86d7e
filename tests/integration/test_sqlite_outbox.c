/* The SQLite backend's webhook outbox (storage version 4, schema 10),
 * through the vtable: which change adds which deliveries, claims and their
 * leases across two connections on one file, results, disabled URLs,
 * redelivery, the prune guard, the migration from schema 9 and durability
 * across reopen. (The cross-backend rules are in tests/conformance.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "jobq.h"
#include "jobq/storage.h"
#include "core/internal.h" /* jobq__storage_lookup */
#include "util/id.h"

static char dir[64], path[128], url[160];
static const jobq_storage_ops *ops;

/* Two hooks: 0 on endpoint "ep" for every end and progress, 1 on "ep2"
 * with a URL of its own and the payload, for success only. */
static const char *const HOOKS =
    "[{\"e\":\"ep\",\"on\":15},{\"e\":\"ep2\",\"on\":1,\"u\":\"https://example.com/h\",\"p\":1}]";
#define T0 1700000000000LL

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/jobq-outbox-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(path, sizeof path, "%s/q.db", dir);
  snprintf(url, sizeof url, "sqlite:%s?busy_timeout=10000", path);
  return jobq__storage_lookup(url, &ops) == 0 && ops->version >= 4 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char p[192];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
  rmdir(dir);
  return 0;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *open_st(void) {
  void *st = NULL;
  if (ops->open(url, &st) != 0) fail_msg("open: %s", jobq_last_error());
  return st;
}

static void exec_sql(const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
  sqlite3_close(db);
}

/* Inserts one job (kind "k", max_attempts ma) with hooks (may be NULL);
 * batch: through the batch path. */
static void add(void *st, const char *hooks, int ma, const char *batch, char *id) {
  jobq_storage_job j = {0}, *p = &j;
  jobq__id_new(j.id, T0);
  j.kind = "k";
  j.payload = "{\"n\":1}";
  j.max_attempts = ma;
  j.created_at = j.run_at = T0;
  j.position = -1;
  int dup = -1;
  const char *h[1] = {hooks};
  int rc = ops->insert_hooked(st, &p, h, 1, NULL, T0, &dup, batch, 0);
  if (rc) fail_msg("insert_hooked: %s", jobq_last_error());
  assert_int_equal(dup, 0);
  strcpy(id, j.id);
}

/* Claims the one due job (it must be id) at now; returns its attempt. */
static int claim(void *st, const char *id, int64_t now) {
  jobq_storage_claim c = {0};
  c.max = 1;
  c.now = now;
  c.lease_ms = 1000;
  c.default_max_attempts = 3;
  jobq_storage_job out;
  size_t n = 0;
  assert_int_equal(ops->claim(st, &c, &out, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(out.id, id);
  int a = out.attempts;
  jobq_storage_job_clear(&out);
  return a;
}

static int finish(void *st, const char *id, int attempt, int outcome, int64_t now) {
  jobq_storage_finish f = {0};
  f.id = id;
  f.attempt = attempt;
  f.outcome = outcome;
  f.result = "{}";
  f.error = outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : "boom";
  f.run_at = now + 100000000; /* a retry waits: out of the way of the next claims */
  f.now = now;
  int out = 0;
  assert_int_equal(ops->finish(st, &f, 1, &out), 0);
  return out;
}

/* The deliveries of job (all of them, oldest first). */
static size_t list(void *st, const char *job, jobq_storage_delivery **out) {
  jobq_storage_outbox_filter f = {job, -1, 100, NULL};
  size_t n = 0;
  int more = 0;
  assert_int_equal(ops->outbox_list(st, &f, out, &n, &more), 0);
  assert_int_equal(more, 0);
  return n;
}

static void free_list(jobq_storage_delivery *v, size_t n) {
  for (size_t i = 0; i < n; i++) jobq_storage_delivery_clear(&v[i]);
  free(v);
}

/* Job has exactly the deliveries "<job>:<want[i]>", in any order. */
static void expect(void *st, const char *job, const char *const *want, size_t n_want) {
  jobq_storage_delivery *v = NULL;
  size_t n = list(st, job, &v);
  if (n != n_want) fail_msg("job %s has %zu deliveries, not %zu", job, n, n_want);
  for (size_t i = 0; i < n_want; i++) {
    char id[128];
    snprintf(id, sizeof id, "%s:%s", job, want[i]);
    int found = 0;
    for (size_t k = 0; k < n; k++) found |= strcmp(v[k].id, id) == 0;
    if (!found) fail_msg("no delivery %s", id);
  }
  free_list(v, n);
}

static int64_t count_all(void *st) {
  int64_t c[4];
  assert_int_equal(ops->outbox_counts(st, c), 0);
  return c[0] + c[1] + c[2] + c[3];
}

/* ---- which change adds what ---- */

static void test_success_fields(void **state) {
  (void)state;
  void *st = open_st();
  char a[JOBQ_ID_SIZE], plain[JOBQ_ID_SIZE];
  add(st, HOOKS, 3, NULL, a);
  add(st, NULL, 3, NULL, plain);
  assert_int_equal(finish(st, a, claim(st, a, T0 + 1), JOBQ_OUTCOME_SUCCEEDED, T0 + 2),
                   JOBQ_SUCCEEDED);
  assert_int_equal(finish(st, plain, claim(st, plain, T0 + 3), JOBQ_OUTCOME_SUCCEEDED, T0 + 4),
                   JOBQ_SUCCEEDED);
  jobq_storage_delivery *v = NULL;
  assert_int_equal(list(st, a, &v), 2);
  char id0[96], id1[96];
  snprintf(id0, sizeof id0, "%s:0:succeeded", a);
  snprintf(id1, sizeof id1, "%s:1:succeeded", a);
  jobq_storage_delivery *d0 = strcmp(v[0].id, id0) == 0 ? &v[0] : &v[1];
  jobq_storage_delivery *d1 = d0 == &v[0] ? &v[1] : &v[0];
  assert_string_equal(d0->id, id0);
  assert_string_equal(d1->id, id1);
  assert_string_equal(d0->job_id, a);
  assert_string_equal(d0->endpoint, "ep");
  assert_null(d0->url);
  assert_int_equal(d0->hook, 0);
  assert_int_equal(d0->flags, 0);
  assert_string_equal(d1->endpoint, "ep2");
  assert_string_equal(d1->url, "https://example.com/h");
  assert_int_equal(d1->hook, 1);
  assert_int_equal(d1->flags, 1);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(v[i].event, JOBQ_EVENT_SUCCEEDED);
    assert_int_equal(v[i].state, JOBQ_DELIVERY_PENDING);
    assert_int_equal(v[i].attempts, 0);
    assert_int_equal(v[i].last_status, 0);
    assert_null(v[i].last_error);
    assert_true(v[i].created_at == T0 + 2 && v[i].next_at == T0 + 2 && v[i].updated_at == T0 + 2);
  }
  free_list(v, 2);
  /* the job without webhooks: none */
  assert_int_equal(list(st, plain, &v), 0);
  assert_int_equal(count_all(st), 2);
  ops->close(st);
}

static void test_every_terminal_path(void **state) {
  (void)state;
  void *st = open_st();
  char fail[JOBQ_ID_SIZE], retry[JOBQ_ID_SIZE], rel[JOBQ_ID_SIZE], queued[JOBQ_ID_SIZE],
      creq[JOBQ_ID_SIZE], crel[JOBQ_ID_SIZE], spent[JOBQ_ID_SIZE], again[JOBQ_ID_SIZE],
      member[JOBQ_ID_SIZE], cdef[JOBQ_ID_SIZE];
  const char *failed[] = {"0:failed"}, *cancelled[] = {"0:cancelled"};
  int st_out = 0;
  /* failed for good: hook 0 only (hook 1 hears of successes) */
  add(st, HOOKS, 3, NULL, fail);
  assert_int_equal(finish(st, fail, claim(st, fail, T0 + 1), JOBQ_OUTCOME_FAILED, T0 + 2), JOBQ_FAILED);
  expect(st, fail, failed, 1);
  /* retry and release: not terminal, nothing */
  add(st, HOOKS, 3, NULL, retry);
  assert_int_equal(finish(st, retry, claim(st, retry, T0 + 3), JOBQ_OUTCOME_RETRY, T0 + 4), JOBQ_QUEUED);
  expect(st, retry, NULL, 0);
  add(st, HOOKS, 3, NULL, rel);
  assert_int_equal(finish(st, rel, claim(st, rel, T0 + 5), JOBQ_OUTCOME_RELEASE, T0 + 6), JOBQ_QUEUED);
  expect(st, rel, NULL, 0);
  /* (out of the way of the claims below: cancelled, which announces them) */
  assert_int_equal(ops->cancel(st, retry, T0 + 6, &st_out, NULL), 0);
  assert_int_equal(ops->cancel(st, rel, T0 + 6, &st_out, NULL), 0);
  expect(st, rel, cancelled, 1);
  /* cancel of a queued job */
  add(st, HOOKS, 3, NULL, queued);
  assert_int_equal(ops->cancel(st, queued, T0 + 7, &st_out, NULL), 0);
  assert_int_equal(st_out, JOBQ_CANCELLED);
  expect(st, queued, cancelled, 1);
  /* a running job whose cancel was asked for ends cancelled, whatever the outcome */
  add(st, HOOKS, 3, NULL, creq);
  int at = claim(st, creq, T0 + 8);
  assert_int_equal(ops->cancel(st, creq, T0 + 9, &st_out, NULL), 0);
  assert_int_equal(st_out, JOBQ_RUNNING);
  expect(st, creq, NULL, 0);
  assert_int_equal(finish(st, creq, at, JOBQ_OUTCOME_RETRY, T0 + 10), JOBQ_CANCELLED);
  expect(st, creq, cancelled, 1);
  add(st, HOOKS, 3, NULL, crel);
  at = claim(st, crel, T0 + 11);
  assert_int_equal(ops->cancel(st, crel, T0 + 12, &st_out, NULL), 0);
  assert_int_equal(finish(st, crel, at, JOBQ_OUTCOME_RELEASE, T0 + 13), JOBQ_CANCELLED);
  expect(st, crel, cancelled, 1);
  add(st, HOOKS, 3, NULL, cdef);
  at = claim(st, cdef, T0 + 14);
  assert_int_equal(ops->cancel(st, cdef, T0 + 15, &st_out, NULL), 0);
  assert_int_equal(finish(st, cdef, at, JOBQ_OUTCOME_DEFER, T0 + 16), JOBQ_CANCELLED);
  expect(st, cdef, cancelled, 1);
  /* a member of a batch */
  add(st, HOOKS, 3, "batch-1", member);
  assert_int_equal(finish(st, member, claim(st, member, T0 + 17), JOBQ_OUTCOME_CANCELLED, T0 + 18),
                   JOBQ_CANCELLED);
  expect(st, member, cancelled, 1);
  jobq_storage_batch b;
  assert_int_equal(ops->batch_get(st, "batch-1", &b), 0);
  assert_int_equal(b.cancelled, 1);
  jobq_storage_batch_clear(&b);
  /* rescue: with attempts spent it fails (deliveries), else back to queued (none) */
  add(st, HOOKS, 1, NULL, spent);
  claim(st, spent, T0 + 19);
  add(st, HOOKS, 3, NULL, again);
  claim(st, again, T0 + 20);
  size_t n = 0;
  assert_int_equal(ops->rescue(st, T0 + 5000, &n), 0);
  assert_int_equal(n, 2);
  expect(st, spent, failed, 1);
  expect(st, again, NULL, 0);
  /* a change applied twice adds nothing twice: the stale finish is refused */
  jobq_storage_finish f = {.id = fail, .attempt = 1, .outcome = JOBQ_OUTCOME_FAILED, .error = "x",
                           .now = T0 + 6000};
  assert_int_equal(ops->finish(st, &f, 1, &st_out), 0);
  assert_int_equal(st_out, JOBQ_ESTATE);
  expect(st, fail, failed, 1);
  ops->close(st);
}

static void test_progress_coalesces(void **state) {
  (void)state;
  void *st = open_st();
  char j[JOBQ_ID_SIZE];
  add(st, HOOKS, 3, NULL, j);
  int at = claim(st, j, T0 + 1);
  assert_int_equal(ops->checkpoint(st, j, at, 0, "{}", 30, "one"), 0);
  const char *p0[] = {"0:progress:0"};
  expect(st, j, p0, 1); /* hook 1 has no progress bit */
  /* pending already: stage 1 adds nothing */
  assert_int_equal(ops->checkpoint(st, j, at, 1, "{}", 50, "two"), 0);
  expect(st, j, p0, 1);
  /* once it is being sent, the next stage adds one */
  jobq_storage_outbox_claim c = {0};
  const char *eps[] = {"ep"};
  c.endpoints = eps;
  c.n_endpoints = 1;
  c.max = 10;
  c.now = wall_ms() + 1000; /* checkpoint stamps the wall clock */
  c.lease_ms = 60000;
  jobq_storage_delivery d[10];
  jobq_storage_job jobs[10];
  size_t n = 0;
  assert_int_equal(ops->outbox_claim(st, &c, d, jobs, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(d[0].event, JOBQ_EVENT_PROGRESS);
  assert_string_equal(jobs[0].id, j);
  jobq_storage_delivery_clear(&d[0]);
  jobq_storage_job_clear(&jobs[0]);
  assert_int_equal(ops->checkpoint(st, j, at, 2, "{}", 70, "three"), 0);
  const char *p02[] = {"0:progress:0", "0:progress:2"};
  expect(st, j, p02, 2);
  /* the end drops the pending progress delivery, not the one being sent */
  assert_int_equal(finish(st, j, at, JOBQ_OUTCOME_SUCCEEDED, T0 + 2), JOBQ_SUCCEEDED);
  const char *end[] = {"0:progress:0", "0:succeeded", "1:succeeded"};
  expect(st, j, end, 3);
  ops->close(st);
}

/* ---- claims, results, leases ---- */

static size_t claim_d(void *st, const char *const *eps, const char *const *urls, size_t n_eps,
                      int64_t now, jobq_storage_delivery *d, jobq_storage_job *jobs,
                      int64_t *next) {
  jobq_storage_outbox_claim c = {0};
  c.endpoints = eps;
  c.urls = urls;
  c.n_endpoints = n_eps;
  c.max = 8;
  c.now = now;
  c.lease_ms = 1000;
  c.next_at = next;
  size_t n = 0;
  if (ops->outbox_claim(st, &c, d, jobs, &n) != 0) fail_msg("outbox_claim: %s", jobq_last_error());
  return n;
}

static void clear_claimed(jobq_storage_delivery *d, jobq_storage_job *jobs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    jobq_storage_delivery_clear(&d[i]);
    jobq_storage_job_clear(&jobs[i]);
  }
}

static void test_claim_lease_two_connections(void **state) {
  (void)state;
  void *a = open_st(), *b = open_st();
  char j[JOBQ_ID_SIZE];
  add(a, HOOKS, 3, NULL, j);
  assert_int_equal(finish(a, j, claim(a, j, T0 + 1), JOBQ_OUTCOME_SUCCEEDED, T0 + 100), JOBQ_SUCCEEDED);
  const char *eps[] = {"ep", "ep2"};
  jobq_storage_delivery d[8];
  jobq_storage_job jobs[8];
  int64_t next = 0;
  /* not due yet */
  assert_int_equal(claim_d(a, eps, NULL, 2, T0 + 99, d, jobs, &next), 0);
  assert_int_equal(next, T0 + 100);
  /* of endpoint ep only */
  assert_int_equal(claim_d(a, eps, NULL, 1, T0 + 200, d, jobs, &next), 1);
  assert_int_equal(next, INT64_MAX); /* ep2's is not of the endpoints asked for */
  char id0[96];
  snprintf(id0, sizeof id0, "%s:0:succeeded", j);
  assert_string_equal(d[0].id, id0);
  assert_int_equal(d[0].state, JOBQ_DELIVERY_SENDING);
  assert_int_equal(d[0].attempts, 1);
  assert_int_equal(d[0].next_at, T0 + 1200);
  assert_int_equal(d[0].updated_at, T0 + 200);
  /* its job as get fills it, without position or attempt log */
  assert_string_equal(jobs[0].id, j);
  assert_string_equal(jobs[0].kind, "k");
  assert_string_equal(jobs[0].payload, "{\"n\":1}");
  assert_string_equal(jobs[0].result, "{}");
  assert_int_equal(jobs[0].state, JOBQ_SUCCEEDED);
  assert_int_equal(jobs[0].position, -1);
  assert_null(jobs[0].attempt_log);
  assert_int_equal(jobs[0].n_attempt_log, 0);
  clear_claimed(d, jobs, 1);
  /* the other connection: leased until T0 + 1200 */
  assert_int_equal(claim_d(b, eps, NULL, 1, T0 + 1200, d, jobs, &next), 0);
  assert_int_equal(next, T0 + 1200);
  assert_int_equal(claim_d(b, eps, NULL, 1, T0 + 1201, d, jobs, &next), 1);
  assert_string_equal(d[0].id, id0);
  assert_int_equal(d[0].attempts, 2);
  clear_claimed(d, jobs, 1);
  /* the first claimer's result is stale now */
  jobq_storage_outbox_result r = {id0, 1, JOBQ_DELIVERY_DELIVERED, 200, NULL, 0, T0 + 1300, NULL};
  int applied = -1;
  assert_int_equal(ops->outbox_done(a, &r, 1, &applied), 0);
  assert_int_equal(applied, 0);
  /* a retry later, then delivered */
  r.attempt = 2;
  r.state = JOBQ_DELIVERY_PENDING;
  r.status = 503;
  r.error = "HTTP 503";
  r.next_at = T0 + 5000;
  assert_int_equal(ops->outbox_done(b, &r, 1, &applied), 0);
  assert_int_equal(applied, 1);
  jobq_storage_delivery *v = NULL;
  jobq_storage_outbox_filter f = {j, JOBQ_DELIVERY_PENDING, 10, NULL};
  size_t n = 0;
  int more = 0;
  assert_int_equal(ops->outbox_list(a, &f, &v, &n, &more), 0);
  assert_int_equal(n, 2);
  int k = strcmp(v[0].id, id0) == 0 ? 0 : 1;
  assert_int_equal(v[k].next_at, T0 + 5000);
  assert_int_equal(v[k].last_status, 503);
  assert_string_equal(v[k].last_error, "HTTP 503");
  assert_int_equal(v[k].attempts, 2);
  free_list(v, n);
  assert_int_equal(claim_d(a, eps, NULL, 1, T0 + 5000, d, jobs, NULL), 1);
  assert_int_equal(d[0].attempts, 3);
  clear_claimed(d, jobs, 1);
  r.attempt = 3;
  r.state = JOBQ_DELIVERY_DELIVERED;
  r.status = 204;
  r.error = NULL;
  assert_int_equal(ops->outbox_done(a, &r, 1, &applied), 0);
  assert_int_equal(applied, 1);
  int64_t c[4];
  assert_int_equal(ops->outbox_counts(b, c), 0);
  assert_true(c[0] == 1 && c[1] == 0 && c[2] == 1 && c[3] == 0);
  /* bad results: refused, nothing stored */
  r.state = 7;
  assert_int_equal(ops->outbox_done(a, &r, 1, &applied), JOBQ_EINVAL);
  assert_non_null(strstr(jobq_last_error(), "state"));
  ops->close(a);
  /* durable: a reopened store has them */
  void *again = open_st();
  assert_int_equal(ops->outbox_counts(again, c), 0);
  assert_true(c[0] == 1 && c[2] == 1);
  ops->close(again);
  ops->close(b);
}

static void test_disabled_url_gone_job_redeliver(void **state) {
  (void)state;
  void *st = open_st();
  char j[JOBQ_ID_SIZE], k[JOBQ_ID_SIZE];
  add(st, HOOKS, 3, NULL, j);
  add(st, HOOKS, 3, NULL, k);
  assert_int_equal(finish(st, j, claim(st, j, T0 + 1), JOBQ_OUTCOME_SUCCEEDED, T0 + 2), JOBQ_SUCCEEDED);
  const char *eps[] = {"ep", "ep2"}, *urls[] = {"https://example.com/ep", NULL};
  jobq_storage_delivery d[8];
  jobq_storage_job jobs[8];
  assert_int_equal(claim_d(st, eps, urls, 2, T0 + 10, d, jobs, NULL), 2);
  /* ep's URL (the endpoint's) answers 410 Gone */
  int i0 = d[0].hook == 0 ? 0 : 1;
  jobq_storage_outbox_result r = {d[i0].id, 1, JOBQ_DELIVERY_FAILED, 410, "HTTP 410", 0, T0 + 20,
                                  "https://example.com/ep"};
  char id0[96];
  snprintf(id0, sizeof id0, "%s", d[i0].id);
  r.id = id0;
  clear_claimed(d, jobs, 2);
  int applied = 0;
  assert_int_equal(ops->outbox_done(st, &r, 1, &applied), 0);
  assert_int_equal(applied, 1);
  /* the next delivery to that URL fails at its claim, untried */
  assert_int_equal(finish(st, k, claim(st, k, T0 + 30), JOBQ_OUTCOME_FAILED, T0 + 31), JOBQ_FAILED);
  assert_int_equal(claim_d(st, eps, urls, 2, T0 + 40, d, jobs, NULL), 1);
  assert_int_equal(d[0].state, JOBQ_DELIVERY_FAILED);
  assert_int_equal(d[0].attempts, 0);
  assert_int_equal(d[0].next_at, 0);
  assert_string_equal(d[0].last_error,
                      "the URL answered 410 Gone on 2023-11-14T22:13:20Z and is disabled");
  assert_string_equal(jobs[0].id, k);
  clear_claimed(d, jobs, 1);
  /* enable, then again: not disabled */
  assert_int_equal(ops->webhook_enable(st, "https://example.com/ep"), 0);
  assert_int_equal(ops->webhook_enable(st, "https://example.com/ep"), JOBQ_ENOTFOUND);
  assert_non_null(strstr(jobq_last_error(), "not disabled"));
  /* redeliver: a failed one only */
  assert_int_equal(ops->outbox_redeliver(st, id0, T0 + 50), 0);
  assert_int_equal(ops->outbox_redeliver(st, id0, T0 + 50), JOBQ_ESTATE);
  assert_int_equal(ops->outbox_redeliver(st, "nope:0:failed", T0 + 50), JOBQ_ENOTFOUND);
  assert_int_equal(claim_d(st, eps, urls, 2, T0 + 50, d, jobs, NULL), 1);
  assert_string_equal(d[0].id, id0);
  assert_int_equal(d[0].attempts, 1); /* counted from 0 again */
  assert_int_equal(d[0].last_status, 410); /* kept */
  clear_claimed(d, jobs, 1);
  /* a delivery whose job is gone fails at its claim */
  char sql[160];
  snprintf(sql, sizeof sql, "DELETE FROM jobq_jobs WHERE id = '%s'", k);
  exec_sql(sql);
  char idk[96];
  snprintf(idk, sizeof idk, "%s:0:failed", k);
  assert_int_equal(ops->outbox_redeliver(st, idk, T0 + 60), 0);
  assert_int_equal(claim_d(st, eps, urls, 2, T0 + 60, d, jobs, NULL), 1);
  assert_int_equal(d[0].state, JOBQ_DELIVERY_FAILED);
  assert_string_equal(d[0].last_error, "its job is no longer stored");
  assert_string_equal(jobs[0].id, "");
  assert_null(jobs[0].kind);
  clear_claimed(d, jobs, 1);
  ops->close(st);
}

/* ---- prune, retention ---- */

static void test_prune_guard(void **state) {
  (void)state;
  void *st = open_st();
  char j[JOBQ_ID_SIZE], plain[JOBQ_ID_SIZE];
  add(st, HOOKS, 3, NULL, j);
  add(st, NULL, 3, NULL, plain);
  assert_int_equal(finish(st, j, claim(st, j, T0 + 1), JOBQ_OUTCOME_FAILED, T0 + 2), JOBQ_FAILED);
  assert_int_equal(finish(st, plain, claim(st, plain, T0 + 3), JOBQ_OUTCOME_FAILED, T0 + 4), JOBQ_FAILED);
  char(*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 0;
  /* pending: kept by prune and by prune_kind */
  assert_int_equal(ops->prune(st, T0 + 100, 10, &ids, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(ids[0], plain);
  free(ids);
  jobq_storage_prune p = {"k", T0 + 100, 10, 0, 0};
  assert_int_equal(ops->prune_kind(st, &p, &ids, &n), 0);
  assert_int_equal(n, 0);
  /* sending: still kept */
  const char *eps[] = {"ep"};
  jobq_storage_delivery d[8];
  jobq_storage_job jobs[8];
  assert_int_equal(claim_d(st, eps, NULL, 1, T0 + 10, d, jobs, NULL), 1);
  char did[96];
  snprintf(did, sizeof did, "%s", d[0].id);
  jobq_storage_outbox_result r = {did, 1, JOBQ_DELIVERY_FAILED, 500, "HTTP 500", 0, T0 + 20, NULL};
  clear_claimed(d, jobs, 1);
  assert_int_equal(ops->prune(st, T0 + 100, 10, NULL, &n), 0);
  assert_int_equal(n, 0);
  /* failed for good: the job goes, and its deliveries with it */
  int applied = 0;
  assert_int_equal(ops->outbox_done(st, &r, 1, &applied), 0);
  assert_int_equal(applied, 1);
  assert_int_equal(count_all(st), 1);
  assert_int_equal(ops->prune_kind(st, &p, &ids, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(ids[0], j);
  free(ids);
  assert_int_equal(count_all(st), 0);
  ops->close(st);
}

/* prune (not prune_kind) deletes the deliveries of what it prunes too */
static void test_prune_deletes_deliveries(void **state) {
  (void)state;
  void *st = open_st();
  char j[JOBQ_ID_SIZE];
  add(st, "[{\"e\":\"ep\",\"on\":4}]", 3, NULL, j);
  int out = 0;
  assert_int_equal(ops->cancel(st, j, T0 + 1, &out, NULL), 0);
  const char *eps[] = {"ep"};
  jobq_storage_delivery d[8];
  jobq_storage_job jobs[8];
  assert_int_equal(claim_d(st, eps, NULL, 1, T0 + 10, d, jobs, NULL), 1);
  char did[96];
  snprintf(did, sizeof did, "%s", d[0].id);
  jobq_storage_outbox_result r = {did, 1, JOBQ_DELIVERY_DELIVERED, 200, NULL, 0, T0 + 20, NULL};
  clear_claimed(d, jobs, 1);
  assert_int_equal(ops->outbox_done(st, &r, 1, NULL), 0);
  size_t n = 0;
  assert_int_equal(ops->prune(st, T0 + 100, 10, NULL, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(count_all(st), 0);
  ops->close(st);
}

/* ---- inserts ---- */

static void test_bad_hooks_refused(void **state) {
  (void)state;
  void *st = open_st();
  const char *bad[] = {"not json", "{}", "[]", "[{\"on\":1}]", "[{\"e\":\"ep\",\"on\":16}]",
                       "[1,2]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jobq_storage_job j = {0}, *p = &j;
    jobq__id_new(j.id, T0);
    j.kind = "k";
    j.payload = "{}";
    j.created_at = j.run_at = T0;
    int dup = -1;
    const char *h[1] = {bad[i]};
    assert_int_equal(ops->insert_hooked(st, &p, h, 1, NULL, T0, &dup, NULL, 0), JOBQ_EINVAL);
    assert_non_null(strstr(jobq_last_error(), "webhooks"));
    jobq_storage_job g;
    assert_int_equal(ops->get(st, j.id, T0, &g), JOBQ_ENOTFOUND);
  }
  ops->close(st);
}

/* Jobs with and without hooks in one insert (the rows go in by the
 * statement of many and one by one); a dedupe hit stores nothing. */
static void test_mixed_insert_and_dedupe(void **state) {
  (void)state;
  void *st = open_st();
  enum { N = 40 };
  jobq_storage_job j[N];
  jobq_storage_job *p[N];
  const char *h[N];
  int dup[N];
  memset(j, 0, sizeof j);
  for (int i = 0; i < N; i++) {
    jobq__id_new(j[i].id, T0);
    j[i].kind = "k";
    j[i].payload = "{}";
    j[i].created_at = j[i].run_at = T0;
    h[i] = i % 7 == 3 ? "[{\"e\":\"ep\",\"on\":4}]" : NULL;
    p[i] = &j[i];
  }
  j[N - 1].dedupe_key = "key";
  h[N - 1] = "[{\"e\":\"ep\",\"on\":4}]";
  assert_int_equal(ops->insert_hooked(st, p, h, N, NULL, T0, dup, NULL, 0), 0);
  int out = 0;
  for (int i = 0; i < N; i++) assert_int_equal(ops->cancel(st, j[i].id, T0 + 1, &out, NULL), 0);
  assert_int_equal(count_all(st), 7); /* 3, 10, 17, 24, 31, 38 and the keyed one */
  /* a dedupe hit of a live key: nothing, hooks included */
  jobq_storage_job k = {0}, *kp = &k;
  jobq__id_new(k.id, T0);
  k.kind = "k";
  k.payload = "{}";
  k.created_at = k.run_at = T0;
  k.dedupe_key = "key2";
  const char *kh[1] = {"[{\"e\":\"ep\",\"on\":4}]"};
  assert_int_equal(ops->insert_hooked(st, &kp, kh, 1, NULL, T0, dup, NULL, 0), 0);
  char first[JOBQ_ID_SIZE];
  strcpy(first, k.id);
  jobq__id_new(k.id, T0);
  assert_int_equal(ops->insert_hooked(st, &kp, NULL, 1, NULL, T0, dup, NULL, 0), 0);
  assert_int_equal(dup[0], 1);
  assert_string_equal(k.id, first);
  assert_int_equal(ops->cancel(st, first, T0 + 2, &out, NULL), 0);
  assert_int_equal(count_all(st), 8);
  ops->close(st);
}

static void test_cron_fire_hooked(void **state) {
  (void)state;
  void *st = open_st();
  jobq_storage_cron c = {"nightly", "0 3 * * *", "UTC", "k", "{}", NULL, 0, 0, 0, T0, 0};
  assert_int_equal(ops->cron_put(st, &c), 0);
  jobq_storage_job j = {0}, *p = &j;
  jobq__id_new(j.id, T0);
  j.kind = "k";
  j.payload = "{}";
  j.created_at = j.run_at = T0;
  j.dedupe_key = "cron:nightly:1700000000000";
  const char *h[1] = {HOOKS};
  size_t n = 0;
  assert_int_equal(ops->cron_fire_hooked(st, "nightly", T0, T0 + 86400000, &p, h, 1, T0, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(finish(st, j.id, claim(st, j.id, T0 + 1), JOBQ_OUTCOME_SUCCEEDED, T0 + 2),
                   JOBQ_SUCCEEDED);
  const char *both[] = {"0:succeeded", "1:succeeded"};
  expect(st, j.id, both, 2);
  ops->close(st);
}

/* ---- schema ---- */

static void test_migrates_schema_9(void **state) {
  (void)state;
  void *st = open_st();
  char old[JOBQ_ID_SIZE];
  add(st, NULL, 3, NULL, old);
  ops->close(st);
  exec_sql("DROP TABLE jobq_outbox_news; DROP TABLE jobq_outbox; DROP TABLE jobq_webhook_disabled; "
           "ALTER TABLE jobq_jobs DROP COLUMN webhooks; "
           "UPDATE jobq_meta SET value = '9' WHERE key = 'schema_version'");
  st = open_st();
  jobq_storage_job g;
  assert_int_equal(ops->get(st, old, T0, &g), 0);
  assert_string_equal(g.payload, "{\"n\":1}");
  jobq_storage_job_clear(&g);
  /* the old job ends without deliveries; a new one with hooks has them */
  assert_int_equal(finish(st, old, claim(st, old, T0 + 1), JOBQ_OUTCOME_SUCCEEDED, T0 + 2),
                   JOBQ_SUCCEEDED);
  char j[JOBQ_ID_SIZE];
  add(st, HOOKS, 3, NULL, j);
  assert_int_equal(finish(st, j, claim(st, j, T0 + 3), JOBQ_OUTCOME_SUCCEEDED, T0 + 4), JOBQ_SUCCEEDED);
  assert_int_equal(count_all(st), 2);
  ops->close(st);
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM jobq_meta WHERE key = 'schema_version'",
                                      -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(q, 0), 11);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

/* Schema 10 (deliveries written at a job's end) to 11 (announcements): the
 * deliveries stored before stay as they were; a job that ends afterwards
 * is announced, one narrow row, and its deliveries appear when the outbox
 * is read. */
static void test_migrates_schema_10(void **state) {
  (void)state;
  void *st = open_st();
  char old[JOBQ_ID_SIZE];
  add(st, HOOKS, 3, NULL, old);
  assert_int_equal(finish(st, old, claim(st, old, T0 + 1), JOBQ_OUTCOME_SUCCEEDED, T0 + 2),
                   JOBQ_SUCCEEDED);
  const char *both[] = {"0:succeeded", "1:succeeded"};
  expect(st, old, both, 2); /* settled: in jobq_outbox, as schema 10 kept them */
  ops->close(st);
  exec_sql("DROP TABLE jobq_outbox_news; "
           "UPDATE jobq_meta SET value = '10' WHERE key = 'schema_version'");
  st = open_st();
  expect(st, old, both, 2);
  char j[JOBQ_ID_SIZE];
  add(st, HOOKS, 3, NULL, j);
  assert_int_equal(finish(st, j, claim(st, j, T0 + 3), JOBQ_OUTCOME_SUCCEEDED, T0 + 4), JOBQ_SUCCEEDED);
  ops->close(st);
  /* Committed as an announcement, not yet as deliveries. */
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM jobq_outbox_news), "
                                          "(SELECT count(*) FROM jobq_outbox), (SELECT value FROM "
                                          "jobq_meta WHERE key = 'schema_version')",
                                      -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(q, 0), 1);
  assert_int_equal(sqlite3_column_int(q, 1), 2);
  assert_int_equal(sqlite3_column_int(q, 2), 11);
  sqlite3_finalize(q);
  sqlite3_close(db);
  /* Read: settled first, both jobs' deliveries there, the announcement gone. */
  st = open_st();
  expect(st, j, both, 2);
  expect(st, old, both, 2);
  ops->close(st);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM jobq_outbox_news", -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(q, 0), 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_success_fields, setup, teardown),
    cmocka_unit_test_setup_teardown(test_every_terminal_path, setup, teardown),
    cmocka_unit_test_setup_teardown(test_progress_coalesces, setup, teardown),
    cmocka_unit_test_setup_teardown(test_claim_lease_two_connections, setup, teardown),
    cmocka_unit_test_setup_teardown(test_disabled_url_gone_job_redeliver, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prune_guard, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prune_deletes_deliveries, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_hooks_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_mixed_insert_and_dedupe, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cron_fire_hooked, setup, teardown),
    cmocka_unit_test_setup_teardown(test_migrates_schema_9, setup, teardown),
    cmocka_unit_test_setup_teardown(test_migrates_schema_10, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
