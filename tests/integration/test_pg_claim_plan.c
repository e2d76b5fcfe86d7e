/* Claims on PostgreSQL walk the claim index whatever the planner's
 * statistics say (lib/postgres/pg.c, migration slot 6). A schema analyzed
 * while empty, then given a backlog (what a new deployment sees until
 * autovacuum's next analyze), once made the planner claim through
 * jobq_jobs_run_at: every due row of the kind read and sorted for each
 * claim, 20 ms a claim at 100,000 jobs queued. The test counts the index
 * scans the server reports: claims through jobq_jobs_claim, none through
 * jobq_jobs_run_at. And a schema of version 6 is migrated to that index.
 * jobq-test-requires: postgres */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/internal.h" /* jobq__storage_lookup */
#include "util/id.h"
#include "jobq.h"
#include "jobq/postgres.h"
#include "postgres/pg_int.h" /* PG_SCHEMA_VERSION, jobq__pg_migration */

#include "pgtest.h"

#define T 1700000000000LL
#define N 3000

static const jobq_storage_ops *ops;

static long idx_scans(const char *schema, const char *index) {
  char sql[300];
  snprintf(sql, sizeof sql,
           "SELECT coalesce(sum(idx_scan), -1) FROM pg_stat_user_indexes WHERE schemaname = '%s' "
           "AND indexrelname = '%s'",
           schema, index);
  return pgt_int(sql);
}

static const char *const kind_k[1] = {"k"};

/* A claim of up to max jobs at t, of kind "k" (by_kind) or of any kind. */
static jobq_storage_claim claim_req(size_t max, int64_t t, int by_kind) {
  jobq_storage_claim cl;
  memset(&cl, 0, sizeof cl);
  cl.max = max;
  cl.now = t;
  cl.lease_ms = 30000;
  cl.default_max_attempts = 3;
  if (by_kind) {
    cl.kinds = kind_k;
    cl.n_kinds = 1;
  }
  return cl;
}

static void claim_some(void *st, int by_kind, int64_t t, int *prio_seen_low) {
  jobq_storage_claim cl = claim_req(50, t, by_kind);
  jobq_storage_job out[50];
  size_t n = 0;
  int rc = ops->claim(st, &cl, out, &n);
  if (rc) fail_msg("claim: %s", jobq_last_error());
  assert_int_equal(n, 50);
  /* the best first: the 100 jobs of priority 5 before the others */
  for (size_t i = 0; i < n; i++) {
    if (out[i].priority != 5) *prio_seen_low = 1;
    else assert_false(*prio_seen_low);
    jobq_storage_job_clear(&out[i]);
  }
}

static void test_claims_walk_the_claim_index(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700], sql[300];
  pgt_schema("plan", schema, sizeof schema, url, sizeof url);
  strncat(url, "&pool=1", sizeof url - strlen(url) - 1);
  assert_int_equal(jobq_postgres_register(), 0);
  assert_int_equal(jobq__storage_lookup(url, &ops), 0);
  void *st = NULL;
  if (ops->open(url, &st)) fail_msg("open %s: %s", url, jobq_last_error());
  /* statistics that say the table is empty, and no autovacuum to renew
   * them while the test runs */
  snprintf(sql, sizeof sql,
           "ALTER TABLE \"%s\".jobq_jobs SET (autovacuum_enabled = off); ANALYZE \"%s\".jobq_jobs",
           schema, schema);
  pgt_int(sql);

  static jobq_storage_job jobs[N];
  static jobq_storage_job *jp[N];
  static int dup[N];
  for (int i = 0; i < N; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobq__id_new(jobs[i].id, T);
    jobs[i].kind = "k";
    jobs[i].payload = "{}";
    jobs[i].state = JOBQ_QUEUED;
    jobs[i].priority = i % 30 == 0 ? 5 : 0; /* 100 of them first */
    jobs[i].created_at = jobs[i].run_at = T;
    jobs[i].max_attempts = 3;
    jp[i] = &jobs[i];
  }
  for (int i = 0; i < N; i += 1000)
    if (ops->insert(st, jp + i, 1000, NULL, T, dup + i)) fail_msg("insert: %s", jobq_last_error());

  int low = 0;
  for (int k = 0; k < 6; k++) claim_some(st, k % 2 == 0, T + 10 + k, &low);
  assert_true(low); /* the 100 of priority 5 came first, then the others */
  ops->close(st); /* the server reports a connection's counts when it ends */

  /* Each claim scanned jobq_jobs_claim (by kind) or jobq_jobs_claim_any:
   * wait for the ended connection's report, then no scan of
   * jobq_jobs_run_at. */
  long by_kind = 0, any = 0;
  for (int w = 0; w < 100; w++) {
    by_kind = idx_scans(schema, "jobq_jobs_claim");
    any = idx_scans(schema, "jobq_jobs_claim_any");
    if (by_kind >= 3 && any >= 3) break;
    usleep(50000);
  }
  assert_true(by_kind >= 3);
  assert_true(any >= 3);
  assert_int_equal(idx_scans(schema, "jobq_jobs_run_at"), 0);
}

/* A schema of version 6 with queued jobs: opening it migrates to 7 (the
 * index's new predicate), and its jobs are claimed as before. */
static void test_migration_from_version_6(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700];
  pgt_schema("plan6", schema, sizeof schema, url, sizeof url);
  assert_int_equal(PG_SCHEMA_VERSION, 7);
  pgt_schema_at(pgt_base(), schema, 6,
                "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, created_at, payload) "
                "VALUES ('old-1', 'k', 0, 0, 1, 1, '1'), ('old-2', 'k', 0, 9, 1, 1, '2')");

  strncat(url, "&pool=1", sizeof url - strlen(url) - 1);
  assert_int_equal(jobq_postgres_register(), 0);
  assert_int_equal(jobq__storage_lookup(url, &ops), 0);
  void *st = NULL;
  if (ops->open(url, &st)) fail_msg("open %s: %s", url, jobq_last_error());
  char sql[300], v[300];
  snprintf(sql, sizeof sql, "SELECT value FROM \"%s\".jobq_meta WHERE key = 'schema_version'",
           schema);
  pgt_sql1(sql, v, sizeof v);
  assert_string_equal(v, "7");
  snprintf(sql, sizeof sql,
           "SELECT indexdef FROM pg_indexes WHERE schemaname = '%s' AND indexname = "
           "'jobq_jobs_run_at'",
           schema);
  pgt_sql1(sql, v, sizeof v);
  if (strstr(v, "WHERE ((state + 0) = 0)") == NULL) fail_msg("jobq_jobs_run_at: %s", v);
  jobq_storage_claim cl = claim_req(5, T, 1);
  jobq_storage_job out[5];
  size_t n = 0;
  if (ops->claim(st, &cl, out, &n)) fail_msg("claim: %s", jobq_last_error());
  assert_int_equal(n, 2);
  assert_string_equal(out[0].id, "old-2");
  assert_string_equal(out[1].id, "old-1");
  for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&out[i]);
  ops->close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_claims_walk_the_claim_index),
    cmocka_unit_test(test_migration_from_version_6),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
