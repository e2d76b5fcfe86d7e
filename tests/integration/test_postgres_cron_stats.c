/* The PostgreSQL backend's cron schedules, shared stats and retention by
 * kind (lib/postgres/pg_cron.c, pg_stats.c, pg_retention.c) through its
 * vtable, where the conformance suite cannot look: two stores firing the
 * same occurrences at once from two threads, two stores' live
 * publications, a retention pass that reads a bounded number of rows per
 * call, and the schema slot 3 migration of a schema made before it. On the
 * test server of the postgres fixture; skipped without one.
 * jobq-test-requires: postgres */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "jobq.h"
#include "jobq/postgres.h"
#include "jobq/storage.h"
#include "core/internal.h" /* jobq__storage_lookup */
#include "postgres/pg_int.h" /* PG_SCHEMA_VERSION, jobq__pg_migration */

#define T0 INT64_C(1700000000000)
#define DAY INT64_C(86400000)

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

static void need_server(void) {
  if (!base()[0]) {
    print_message("skipped: no PostgreSQL server (JOBQ_TEST_POSTGRES_URL unset)\n");
    skip();
  }
}

/* A schema of this run: tag, pid, counter. *schema points into out. */
static void url_of(const char *tag, char *out, size_t cap, const char **schema) {
  static int n;
  snprintf(out, cap, "%s?schema=t_%s_%ld_%d", base(), tag, (long)getpid(), ++n);
  *schema = strstr(out, "schema=") + 7;
}

/* The backend's vtable and a store on url. */
static void *open_store(const char *url, const jobq_storage_ops **ops) {
  assert_int_equal(jobq_postgres_register(), 0);
  assert_int_equal(jobq__storage_lookup(url, ops), 0);
  void *st = NULL;
  int rc = (*ops)->open(url, &st);
  if (rc) fail_msg("open: %s", jobq_last_error());
  return st;
}

/* One value of SQL (in the test's own connection); "" when no row. */
static void sql1(const char *sql, char *out, size_t cap) {
  PGconn *c = PQconnectdb(base());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  if (out) snprintf(out, cap, "%s", st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
  PQfinish(c);
}

static int64_t count_of(const char *schema, const char *where) {
  char sql[512], v[32];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".jobq_jobs WHERE %s", schema, where);
  sql1(sql, v, sizeof v);
  return strtoll(v, NULL, 10);
}

/* ---- two stores fire the same occurrences at once ---- */

#define ROUNDS 40

typedef struct racer {
  const jobq_storage_ops *ops;
  void *st;
  int who;
  uv_barrier_t *start;
  size_t stored; /* occurrences this store stored */
  int rc;
} racer;

static void race(void *arg) {
  racer *r = arg;
  for (int i = 0; i < ROUNDS && r->rc == 0; i++) {
    int64_t at = T0 + i * DAY;
    char key[64];
    snprintf(key, sizeof key, "cron:race:%lld", (long long)at);
    jobq_storage_job j;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "race-%d-%d", r->who, i);
    j.kind = "nightly";
    j.payload = "{}";
    j.run_at = at;
    j.created_at = at;
    j.dedupe_key = key;
    jobq_storage_job *p = &j;
    size_t ins = 0;
    uv_barrier_wait(r->start); /* both at once, each round */
    r->rc = r->ops->cron_fire(r->st, "race", at, at + DAY, &p, 1, at + 5, &ins);
    r->stored += ins;
  }
}

/* Each occurrence is stored once, whichever store wins its compare: the
 * schedule's row lock orders the two fires, and the second sees next_at
 * moved. */
static void test_cron_fire_race(void **state) {
  (void)state;
  need_server();
  char url[700];
  const char *schema;
  url_of("race", url, sizeof url, &schema);
  const jobq_storage_ops *ops;
  void *a = open_store(url, &ops), *b = open_store(url, &ops);
  jobq_storage_cron c = {0};
  c.name = "race";
  c.expr = "0 3 * * *";
  c.tz = "UTC";
  c.kind = "nightly";
  c.payload = "{}";
  c.next_at = T0;
  assert_int_equal(ops->cron_put(a, &c), 0);
  uv_barrier_t start;
  assert_int_equal(uv_barrier_init(&start, 2), 0);
  racer ra = {ops, a, 1, &start, 0, 0}, rb = {ops, b, 2, &start, 0, 0};
  uv_thread_t ta, tb;
  assert_int_equal(uv_thread_create(&ta, race, &ra), 0);
  assert_int_equal(uv_thread_create(&tb, race, &rb), 0);
  uv_thread_join(&ta);
  uv_thread_join(&tb);
  uv_barrier_destroy(&start);
  if (ra.rc || rb.rc) fail_msg("cron_fire: %d %d", ra.rc, rb.rc);
  assert_int_equal(ra.stored + rb.stored, ROUNDS);
  assert_int_equal(count_of(schema, "kind = 'nightly'"), ROUNDS);
  assert_int_equal(count_of(schema, "kind = 'nightly' AND dedupe_key LIKE 'cron:race:%'"), ROUNDS);
  jobq_storage_cron *v = NULL;
  size_t n = 0;
  assert_int_equal(ops->cron_list(b, &v, &n), 0);
  assert_int_equal(n, 1);
  assert_true(v[0].next_at == T0 + ROUNDS * DAY);
  assert_true(v[0].last_run == T0 + (ROUNDS - 1) * DAY);
  free(v[0].name);
  free(v[0].expr);
  free(v[0].tz);
  free(v[0].kind);
  free(v[0].payload);
  free(v[0].owner);
  free(v);
  /* Removing what is not there: JOBQ_ENOTFOUND and a sentence naming it. */
  assert_int_equal(ops->cron_del(a, "nope"), JOBQ_ENOTFOUND);
  assert_non_null(strstr(jobq_last_error(), "no cron schedule 'nope'"));
  assert_int_equal(ops->cron_del(a, "race"), 0);
  assert_int_equal(ops->cron_list(a, &v, &n), 0);
  assert_int_equal(n, 0);
  assert_null(v);
  ops->close(a);
  ops->close(b);
}

/* ---- two stores' live publications ---- */

static void test_stats_two_publishers(void **state) {
  (void)state;
  need_server();
  char url[700];
  const char *schema;
  url_of("live", url, sizeof url, &schema);
  const jobq_storage_ops *ops;
  void *a = open_store(url, &ops), *b = open_store(url, &ops);
  int64_t sa[1] = {T0 - 50}, sb[2] = {T0 - 20, T0 - 10};
  jobq_storage_stats_delta d[2];
  memset(d, 0, sizeof d);
  /* listed out of name order: written in name order all the same */
  d[0].kind = "z";
  d[0].count[JOBQ_STAT_STARTED] = 1;
  d[1].kind = "k";
  d[1].concurrency = 2;
  d[1].started = sa;
  d[1].n_started = 1;
  d[1].until = T0 + 5000;
  d[1].count[JOBQ_STAT_SUCCEEDED] = 2;
  d[1].hist[3] = 2;
  d[1].duration_sum_ms = 16;
  assert_int_equal(ops->stats_add(a, d, 2, T0), 0);
  memset(d, 0, sizeof d);
  d[0].kind = "k";
  d[0].concurrency = 3;
  d[0].started = sb;
  d[0].n_started = 2;
  d[0].until = T0 + 3000;
  d[0].count[JOBQ_STAT_SUCCEEDED] = 1;
  d[0].hist[3] = 1;
  d[0].duration_sum_ms = 8;
  assert_int_equal(ops->stats_add(b, d, 1, T0), 0);
  jobq_storage_kind_stats *v = NULL;
  size_t n = 0;
  assert_int_equal(ops->stats_read(a, "k", 0, T0 + 1000, &v, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(v[0].concurrency, 5);
  assert_int_equal(v[0].n_started, 3);
  assert_int_equal(v[0].count[JOBQ_STAT_SUCCEEDED], 3);
  assert_int_equal(v[0].hist[3], 3);
  assert_true(v[0].duration_sum_ms == 24);
  assert_true(fabs(v[0].avg_ms - 8) < 1e-9);
  free(v[0].kind);
  free(v[0].started);
  free(v);
  /* b's publication expired: a's alone; a flush of a drops b's row */
  assert_int_equal(ops->stats_read(b, "k", 0, T0 + 4000, &v, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(v[0].concurrency, 2);
  assert_int_equal(v[0].n_started, 1);
  assert_true(v[0].started[0] == T0 - 50);
  free(v[0].kind);
  free(v[0].started);
  free(v);
  char sql[300], val[32];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".jobq_stats_live", schema);
  sql1(sql, val, sizeof val);
  assert_string_equal(val, "2");
  memset(d, 0, sizeof d);
  d[0].kind = "k";
  d[0].concurrency = 2;
  d[0].until = T0 + 9000;
  assert_int_equal(ops->stats_add(a, d, 1, T0 + 4000), 0);
  sql1(sql, val, sizeof val);
  assert_string_equal(val, "1");
  ops->close(a);
  ops->close(b);
}

/* ---- retention: a bounded read per call ---- */

static void test_prune_kind_bounded(void **state) {
  (void)state;
  need_server();
  char url[700];
  const char *schema;
  url_of("ret", url, sizeof url, &schema);
  const jobq_storage_ops *ops;
  void *st = open_store(url, &ops);
  /* 2,100 old succeeded jobs whose keys live on (kept), then 3 that go */
  char sql[900];
  snprintf(sql, sizeof sql,
           "INSERT INTO \"%s\".jobq_jobs (id, kind, state, run_at, created_at, finished_at, "
           "payload, dedupe_key, dedupe_ttl) SELECT 'keep-' || i, 'r', 2, %lld, %lld, %lld + i, "
           "'{}', 'key-' || i, -%lld FROM generate_series(1, 2100) AS i",
           schema, (long long)T0, (long long)T0, (long long)T0, (long long)(T0 + 100 * DAY));
  sql1(sql, NULL, 0);
  snprintf(sql, sizeof sql,
           "INSERT INTO \"%s\".jobq_jobs (id, kind, state, run_at, created_at, finished_at, "
           "payload) SELECT 'go-' || i, 'r', 3, %lld, %lld, %lld + 5000 + i, '{}' "
           "FROM generate_series(1, 3) AS i",
           schema, (long long)T0, (long long)T0, (long long)T0);
  sql1(sql, NULL, 0);
  /* The first call looks at 2,048 kept jobs and stops there, saying more;
   * the second goes on where it stopped and finds the 3. */
  jobq_storage_prune p = {"r", T0 + DAY, 100, 0, 0};
  char(*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 99;
  assert_int_equal(ops->prune_kind(st, &p, &ids, &n), 0);
  assert_int_equal(n, 0);
  assert_null(ids);
  assert_int_equal(p.more, 1);
  p.more = 0;
  assert_int_equal(ops->prune_kind(st, &p, &ids, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(p.more, 0);
  for (int w = 1; w <= 3; w++) {
    char want[16];
    snprintf(want, sizeof want, "go-%d", w);
    int saw = 0;
    for (size_t i = 0; i < n; i++) saw |= strcmp(ids[i], want) == 0;
    if (!saw) fail_msg("%s was not reported pruned", want);
  }
  free(ids);
  assert_int_equal(count_of(schema, "kind = 'r'"), 2100);
  /* once the keys are dead, a pass takes them, max at a time */
  jobq_storage_prune late = {"r", T0 + 200 * DAY, 1000, 0, 0};
  size_t total = 0;
  int calls = 0;
  do {
    late.more = 0;
    assert_int_equal(ops->prune_kind(st, &late, NULL, &n), 0);
    assert_true(n <= 1000);
    total += n;
  } while (late.more && ++calls < 10);
  assert_int_equal(total, 2100);
  assert_int_equal(count_of(schema, "kind = 'r'"), 0);
  ops->close(st);
}

/* ---- a schema made before slot 3 ---- */

static void test_migration_from_version_1(void **state) {
  (void)state;
  need_server();
  char url[700];
  const char *schema;
  url_of("mig", url, sizeof url, &schema);
  const jobq_storage_ops *ops;
  void *st = open_store(url, &ops);
  ops->close(st);
  /* A schema as version 1 made it (the first migration alone), with a
   * job in it: opening it applies every later migration. */
  char sql[900], v[64];
  snprintf(sql, sizeof sql, "DROP SCHEMA \"%s\" CASCADE; CREATE SCHEMA \"%s\"", schema, schema);
  sql1(sql, NULL, 0);
  const char *m0 = jobq__pg_migration(0);
  assert_non_null(m0);
  size_t cap = strlen(m0) + 512;
  char *v1 = malloc(cap);
  assert_non_null(v1);
  snprintf(v1, cap,
           "SET search_path TO \"%s\"; %s; "
           "INSERT INTO jobq_meta (key, value) VALUES ('schema_version', '1'); "
           "INSERT INTO jobq_jobs (id, kind, state, run_at, created_at, payload) "
           "VALUES ('old-1', 'k', 0, 1, 1, '{\"old\":1}')",
           schema, m0);
  sql1(v1, NULL, 0);
  free(v1);
  st = open_store(url, &ops);
  snprintf(sql, sizeof sql, "SELECT value FROM \"%s\".jobq_meta WHERE key = 'schema_version'",
           schema);
  sql1(sql, v, sizeof v);
  char want[16];
  snprintf(want, sizeof want, "%d", PG_SCHEMA_VERSION);
  assert_string_equal(v, want);
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  assert_int_equal(ops->get(st, "old-1", T0, &j), 0);
  assert_string_equal(j.payload, "{\"old\":1}");
  jobq_storage_job_clear(&j);
  jobq_storage_cron c = {0};
  c.name = "n";
  c.expr = "* * * * *";
  c.tz = "UTC";
  c.kind = "k";
  c.payload = "{}";
  c.next_at = T0;
  assert_int_equal(ops->cron_put(st, &c), 0);
  ops->close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cron_fire_race),
    cmocka_unit_test(test_stats_two_publishers),
    cmocka_unit_test(test_prune_kind_bounded),
    cmocka_unit_test(test_migration_from_version_1),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
