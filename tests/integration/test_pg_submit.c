/* jobq_pg_submit, the transactional enqueue: a job inserted on the host's
 * own connection inside its transaction exists when the host commits (and a
 * worker of another queue runs it), never when it rolls back; refusals
 * write nothing and leave the host's transaction usable.
 * jobq-test-requires: postgres */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "pgtest.h"

#include "jobq.h"
#include "jobq/postgres.h"

static jobq_t *open_url(const char *url) {
  assert_int_equal(jobq_postgres_register(), 0); /* linked statically: no dlopen */
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  return q;
}

static PGconn *host_conn(void) {
  PGconn *c = PQconnectdb(pgt_base());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  return c;
}

static void exec_ok(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
}

static long jobs_in(const char *schema) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".jobq_jobs", schema);
  return pgt_int(sql);
}

static void handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, "{\"ran\":true}");
}

/* Up to 10 s of real time (a failure guard; nothing is timed). */
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

/* Committed: the job is there with the host's row, and a worker that was
 * started before (idle, woken by the NOTIFY or its poll) runs it. */
static void test_commit_runs(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700], sql[256];
  pgt_schema("txc", schema, sizeof schema, url, sizeof url);
  jobq_t *work = open_url(url);
  assert_int_equal(jobq_register(work, "mail", handler, NULL, NULL), 0);
  assert_int_equal(jobq_start(work), 0);

  PGconn *c = host_conn();
  snprintf(sql, sizeof sql, "CREATE TABLE \"%s\".orders (n int)", schema);
  exec_ok(c, sql);
  exec_ok(c, "BEGIN");
  snprintf(sql, sizeof sql, "INSERT INTO \"%s\".orders VALUES (7)", schema);
  exec_ok(c, sql);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_owner(so, "u1"), 0);
  assert_int_equal(jobq_submit_opts_set_priority(so, 3), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_pg_submit(c, schema, "mail", "{\"order\":7}", so, id, sizeof id), 0);
  jobq_submit_opts_free(so);
  assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS); /* no COMMIT of ours */
  /* Not visible to anyone else before the host commits. */
  assert_int_equal(jobs_in(schema), 0);
  exec_ok(c, "COMMIT");
  assert_int_equal(jobs_in(schema), 1);

  assert_true(wait_state(work, id, JOBQ_SUCCEEDED));
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(work, id, &j), 0);
  assert_string_equal(jobq_job_kind(j), "mail");
  assert_string_equal(jobq_job_payload(j), "{\"order\":7}");
  assert_string_equal(jobq_job_owner(j), "u1");
  assert_string_equal(jobq_job_result(j), "{\"ran\":true}");
  jobq_job_free(j);
  PQfinish(c);
  assert_int_equal(jobq_close(work, 1000), 0);
}

/* Rolled back: no job, and the NOTIFY went with it. */
static void test_rollback_leaves_nothing(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700];
  pgt_schema("txr", schema, sizeof schema, url, sizeof url);
  jobq_t *q = open_url(url);
  PGconn *c = host_conn();
  exec_ok(c, "BEGIN");
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_pg_submit(c, schema, "mail", "{}", NULL, id, sizeof id), 0);
  exec_ok(c, "ROLLBACK");
  assert_int_equal(jobs_in(schema), 0);
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(q, id, &j), JOBQ_ENOTFOUND);
  PQfinish(c);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* A live dedupe key answers 1 with the existing job, in and out of the
 * queue's own submits. */
static void test_dedupe(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700];
  pgt_schema("txd", schema, sizeof schema, url, sizeof url);
  jobq_t *q = open_url(url);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_set_dedupe(so, "k1", 0), 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "mail", "{}", so, a), 0);
  PGconn *c = host_conn();
  exec_ok(c, "BEGIN");
  assert_int_equal(jobq_pg_submit(c, schema, "mail", "{}", so, b, sizeof b), 1);
  assert_string_equal(a, b);
  exec_ok(c, "COMMIT");
  assert_int_equal(jobs_in(schema), 1);
  jobq_submit_opts_free(so);
  PQfinish(c);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* Bad input: a specific code and sentence, nothing written, out_id
 * untouched, and the host's transaction still usable. */
static void test_bad_input(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700], sql[256];
  pgt_schema("txb", schema, sizeof schema, url, sizeof url);
  jobq_t *q = open_url(url);
  PGconn *c = host_conn();
  char id[JOBQ_ID_SIZE];
  memset(id, 'x', sizeof id);

  assert_int_equal(jobq_pg_submit(NULL, schema, "k", "{}", NULL, id, sizeof id), JOBQ_EINVAL);
  assert_non_null(strstr(jobq_last_error(), "jobq_pg_submit: conn is NULL"));
  assert_int_equal(jobq_pg_submit(c, schema, "k", "{}", NULL, NULL, 0), JOBQ_EINVAL);
  assert_int_equal(jobq_pg_submit(c, schema, "k", "{}", NULL, id, JOBQ_ID_SIZE - 1), JOBQ_EINVAL);
  assert_non_null(strstr(jobq_last_error(), "out_cap"));
  /* No open transaction: refused, nothing autocommitted. */
  assert_int_equal(jobq_pg_submit(c, schema, "k", "{}", NULL, id, sizeof id), JOBQ_ESTATE);
  assert_non_null(strstr(jobq_last_error(), "no open transaction"));

  exec_ok(c, "BEGIN");
  assert_int_equal(jobq_pg_submit(c, "bad-name", "k", "{}", NULL, id, sizeof id), JOBQ_EINVAL);
  assert_non_null(strstr(jobq_last_error(), "schema 'bad-name'"));
  assert_int_equal(jobq_pg_submit(c, schema, "k", "{not json", NULL, id, sizeof id), JOBQ_EJSON);
  assert_non_null(strstr(jobq_last_error(), "jobq_pg_submit: payload"));
  assert_int_equal(jobq_pg_submit(c, schema, "", "{}", NULL, id, sizeof id), JOBQ_EKIND);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_int_equal(jobq_submit_opts_add_webhook(so, "https://example.com/h", "e", 0), 0);
  assert_int_equal(jobq_pg_submit(c, schema, "k", "{}", so, id, sizeof id), JOBQ_ENOTSUP);
  assert_non_null(strstr(jobq_last_error(), "webhooks need a queue"));
  jobq_submit_opts_free(so);
  /* A schema without a queue: the failed INSERT is rolled back to the
   * savepoint, and the host's transaction goes on. */
  assert_int_equal(jobq_pg_submit(c, "t_no_such_queue", "k", "{}", NULL, id, sizeof id),
                   JOBQ_ENOTFOUND);
  assert_non_null(strstr(jobq_last_error(), "schema t_no_such_queue holds no libjobq queue"));
  assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS);
  for (size_t i = 0; i < sizeof id; i++) assert_int_equal(id[i], 'x');
  char ok[JOBQ_ID_SIZE];
  assert_int_equal(jobq_pg_submit(c, schema, "k", "{}", NULL, ok, sizeof ok), 0);
  exec_ok(c, "COMMIT");
  assert_int_equal(jobs_in(schema), 1);
  snprintf(sql, sizeof sql, "SELECT id FROM \"%s\".jobq_jobs", schema);
  char v[64];
  pgt_sql1(sql, v, sizeof v);
  assert_string_equal(v, ok);
  PQfinish(c);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* A queue of another process listening for shared events hears the job's
 * submitted event once the host commits, and nothing of a rolled back one. */
static void test_listener_hears_commit(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700];
  pgt_schema("txe", schema, sizeof schema, url, sizeof url);
  assert_int_equal(jobq_postgres_register(), 0);
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_shared_events(o, 1), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  PGconn *c = host_conn();
  char gone[JOBQ_ID_SIZE], id[JOBQ_ID_SIZE];
  exec_ok(c, "BEGIN");
  assert_int_equal(jobq_pg_submit(c, schema, "mail", "{}", NULL, gone, sizeof gone), 0);
  exec_ok(c, "ROLLBACK");
  exec_ok(c, "BEGIN");
  assert_int_equal(jobq_pg_submit(c, schema, "mail", "{}", NULL, id, sizeof id), 0);
  exec_ok(c, "COMMIT");
  int heard = 0, heard_gone = 0;
  for (int i = 0; i < 200 && !heard; i++) { /* up to 10 s: a failure guard */
    jobq_event_t *ev = NULL;
    if (jobq_next_event(q, 50, &ev) != 0) continue;
    if (jobq_event_type(ev) == JOBQ_EVENT_SUBMITTED) {
      heard |= strcmp(jobq_event_job_id(ev), id) == 0;
      heard_gone |= strcmp(jobq_event_job_id(ev), gone) == 0;
    }
    jobq_event_free(ev);
  }
  assert_true(heard);
  assert_false(heard_gone);
  PQfinish(c);
  assert_int_equal(jobq_close(q, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_commit_runs),
    cmocka_unit_test(test_rollback_leaves_nothing),
    cmocka_unit_test(test_dedupe),
    cmocka_unit_test(test_bad_input),
    cmocka_unit_test(test_listener_hears_commit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
