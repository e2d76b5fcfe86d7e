/* The PostgreSQL backend (libjobq-pg) through the public API, on the test
 * server of the postgres fixture (tests/conformance/postgres.cmake): URL
 * refusals, the refusal of a newer schema, a job submitted, run by a
 * worker and seen by jobq_wait, and a connection killed under a queue.
 * Skipped without a server. jobq-test-requires: postgres */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"
#include "jobq/postgres.h"

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

/* A schema name of this run: tag plus the pid and a counter. */
static void url_of(const char *tag, char *out, size_t cap) {
  static int n;
  snprintf(out, cap, "%s?schema=t_%s_%ld_%d", base(), tag, (long)getpid(), ++n);
}

static jobq_t *open_url(const char *url, int *rc) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  jobq_t *q = NULL;
  *rc = jobq_open(&q, o);
  jobq_options_free(o);
  return q;
}

/* One value of SQL on the server (in the test's own connection); "" when
 * there is no row. */
static void sql1(const char *sql, char *out, size_t cap) {
  PGconn *c = PQconnectdb(base());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  snprintf(out, cap, "%s", st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
  PQfinish(c);
}

static int schema_exists(const char *name) {
  char sql[256], v[16];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_namespace WHERE nspname = '%s'", name);
  sql1(sql, v, sizeof v);
  return atoi(v);
}

/* Bad parameters are refused at open with JOBQ_EURL and a sentence, before
 * anything reaches the server: no schema is made. */
static void test_url_refusals(void **state) {
  (void)state;
  assert_int_equal(jobq_postgres_register(), 0);
  assert_int_equal(jobq_postgres_register(), 0); /* again: harmless */
  need_server();
  static const struct { const char *tail, *says; } bad[] = {
    {"?schema=never_made&pool=0", "pool"},
    {"?schema=never_made&pool=65", "pool"},
    {"?schema=never_made&pool=x", "pool"},
    {"?schema=1never_made", "schema"},
    {"?schema=never-made", "schema"},
    {"?schema=never_made&schema=never_made", "schema"},
    {"?schema=never_made&nope=1", "libpq refuses it"},
    {"?schema=never_made&&pool=2", "empty parameter"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char url[700];
    snprintf(url, sizeof url, "%s%s", base(), bad[i].tail);
    int rc = 0;
    jobq_t *q = open_url(url, &rc);
    assert_null(q);
    if (rc != JOBQ_EURL) fail_msg("%s: %d (%s)", url, rc, jobq_last_error());
    if (strstr(jobq_last_error(), bad[i].says) == NULL)
      fail_msg("%s: sentence \"%s\" does not say \"%s\"", url, jobq_last_error(), bad[i].says);
  }
  assert_int_equal(schema_exists("never_made"), 0);
}

/* A server that cannot be reached: JOBQ_EIO, and the sentence quotes the
 * URL without its password. */
static void test_unreachable_hides_password(void **state) {
  (void)state;
  assert_int_equal(jobq_postgres_register(), 0);
  int rc = 0;
  jobq_t *q = open_url("postgres://someone:s3cr3t-word@127.0.0.1:1/db?password=other-s3cr3t", &rc);
  assert_null(q);
  assert_int_equal(rc, JOBQ_EIO);
  const char *e = jobq_last_error();
  assert_non_null(strstr(e, "cannot connect"));
  assert_non_null(strstr(e, "someone:***@"));
  assert_null(strstr(e, "s3cr3t"));
}

/* A schema of a newer libjobq is refused with JOBQ_EVERSION and left as it
 * was. */
static void test_newer_schema_refused(void **state) {
  (void)state;
  need_server();
  char url[700];
  url_of("newer", url, sizeof url);
  const char *schema = strstr(url, "schema=") + 7;
  int rc = 0;
  jobq_t *q = open_url(url, &rc);
  assert_int_equal(rc, 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "{\"keep\":1}", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  char sql[400], v[64];
  snprintf(sql, sizeof sql, "UPDATE \"%s\".jobq_meta SET value = '999' WHERE key = 'schema_version'",
           schema);
  sql1(sql, v, sizeof v);
  q = open_url(url, &rc);
  assert_null(q);
  assert_int_equal(rc, JOBQ_EVERSION);
  assert_non_null(strstr(jobq_last_error(), "999"));
  assert_non_null(strstr(jobq_last_error(), "was not changed"));
  snprintf(sql, sizeof sql, "SELECT value FROM \"%s\".jobq_meta WHERE key = 'schema_version'", schema);
  sql1(sql, v, sizeof v);
  assert_string_equal(v, "999");
  snprintf(sql, sizeof sql, "SELECT payload FROM \"%s\".jobq_jobs WHERE id = '%s'", schema, id);
  sql1(sql, v, sizeof v);
  assert_string_equal(v, "{\"keep\":1}");
}

static void handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_progress(ctx, 50, "half");
  jobq_ctx_succeed(ctx, "{\"done\":true}");
}

/* jobq_wait on a job that state `want`, for up to 10 s of real time (a
 * failure guard; nothing is timed). */
static int wait_state(jobq_t *q, const char *id, int want) {
  for (int i = 0; i < 100; i++) {
    jobq_job_t *j = NULL;
    jobq_wait(q, id, 100, &j);
    int st = j ? jobq_job_state(j) : -1;
    jobq_job_free(j);
    if (st == want) return 1;
  }
  return 0;
}

/* A submitter queue and a worker queue on one schema: the worker runs the
 * job, the submitter's jobq_wait sees it succeed with its result. */
static void test_submit_run_wait(void **state) {
  (void)state;
  need_server();
  char url[700];
  url_of("api", url, sizeof url);
  int rc = 0;
  jobq_t *sub = open_url(url, &rc);
  assert_int_equal(rc, 0);
  jobq_t *work = open_url(url, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(jobq_register(work, "echo", handler, NULL, NULL), 0);
  assert_int_equal(jobq_start(work), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(sub, "echo", "{\"n\":1}", NULL, id), 0);
  assert_true(wait_state(sub, id, JOBQ_SUCCEEDED));
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(sub, id, &j), 0);
  assert_string_equal(jobq_job_result(j), "{\"done\":true}");
  assert_int_equal(jobq_job_attempts(j), 1);
  jobq_job_free(j);
  assert_int_equal(jobq_close(work, 1000), 0);
  assert_int_equal(jobq_close(sub, 0), 0);
}

/* The server ends every connection of the queue (pg_terminate_backend, of
 * the connections named by the URL's application_name):
 * a call then either fails with JOBQ_EIO and a sentence, or succeeds; a
 * later one succeeds on a new connection, and nothing stored is lost. */
static void test_connection_killed(void **state) {
  (void)state;
  need_server();
  char url[700], app[64], sql[256];
  url_of("kill", url, sizeof url);
  /* its connections only, by application_name: other tests share the server */
  snprintf(app, sizeof app, "jobq_kill_%ld", (long)getpid());
  snprintf(url + strlen(url), sizeof url - strlen(url), "&application_name=%s", app);
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
           "application_name = '%s'",
           app);
  int rc = 0;
  jobq_t *q = open_url(url, &rc);
  assert_int_equal(rc, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "{}", NULL, a), 0);
  char v[64];
  sql1(sql, v, sizeof v);
  assert_true(atoi(v) >= 1);
  int ok = 0, eio = 0;
  for (int i = 0; i < 50 && !ok; i++) {
    rc = jobq_submit(q, "k", "{}", NULL, b);
    if (rc == 0) {
      ok = 1;
    } else {
      if (rc != JOBQ_EIO) fail_msg("submit after the kill: %d (%s)", rc, jobq_last_error());
      assert_non_null(strstr(jobq_last_error(), "postgres storage"));
      eio++;
      struct timespec ts = {0, 100 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  assert_true(ok);
  print_message("submit failed %d time(s) with JOBQ_EIO before it reconnected\n", eio);
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(q, a, &j), 0);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  jobq_job_free(j);
  assert_int_equal(jobq_get(q, b, &j), 0);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_url_refusals),
    cmocka_unit_test(test_unreachable_hides_password),
    cmocka_unit_test(test_newer_schema_refused),
    cmocka_unit_test(test_submit_run_wait),
    cmocka_unit_test(test_connection_killed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
