/* The prepared statements of the PostgreSQL backend (jobq__pg_exec_prep,
 * lib/postgres/pg.c): a claim and a finish are prepared on the pooled
 * connection once and then only executed; when the server connection no
 * longer has them (what a transaction-mode pooler without prepared
 * statements does: another server connection, a DEALLOCATE), the call runs
 * unnamed and succeeds, and the next one prepares again. Through the
 * storage vtable on a store with one pooled connection, so that the test
 * can reach that connection. jobq-test-requires: postgres */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pgtest.h"

#include "core/internal.h" /* jobq__storage_lookup */
#include "util/id.h"
#include "jobq.h"
#include "jobq/postgres.h"
#include "postgres/pg_int.h"

#define T 1700000000000LL

static const jobq_storage_ops *ops;

static void *open_store(const char *url) {
  assert_int_equal(jobq_postgres_register(), 0);
  assert_int_equal(jobq__storage_lookup(url, &ops), 0);
  void *st = NULL;
  int rc = ops->open(url, &st);
  if (rc) fail_msg("open %s: %s", url, jobq_last_error());
  return st;
}

/* The statements prepared on the store's one pooled connection, as the
 * server lists them. */
static long server_prepared(pg_store *s) {
  PGresult *r = PQexec(s->conns[0].c, "SELECT count(*) FROM pg_prepared_statements");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  long n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

/* Inserts one job, claims it and finishes it succeeded: the job ends
 * succeeded with its result. */
static void one_job(void *st, int64_t t) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  jobq__id_new(j.id, t);
  j.kind = "k";
  j.payload = "{}";
  j.state = JOBQ_QUEUED;
  j.created_at = j.run_at = t;
  j.max_attempts = 3;
  jobq_storage_job *jp = &j;
  int dup = 0;
  assert_int_equal(ops->insert(st, &jp, 1, NULL, t, &dup), 0);
  jobq_storage_claim cl;
  memset(&cl, 0, sizeof cl);
  cl.max = 1;
  cl.now = t;
  cl.lease_ms = 30000;
  cl.default_max_attempts = 3;
  jobq_storage_job out;
  size_t n = 0;
  int rc = ops->claim(st, &cl, &out, &n);
  if (rc) fail_msg("claim: %s", jobq_last_error());
  assert_int_equal(n, 1);
  assert_string_equal(out.id, j.id);
  jobq_storage_finish f;
  memset(&f, 0, sizeof f);
  f.id = out.id;
  f.attempt = out.attempts;
  f.outcome = JOBQ_OUTCOME_SUCCEEDED;
  f.result = "{\"ok\":1}";
  f.now = t + 1;
  int fst = -1;
  rc = ops->finish(st, &f, 1, &fst);
  if (rc) fail_msg("finish: %s", jobq_last_error());
  assert_int_equal(fst, JOBQ_SUCCEEDED);
  jobq_storage_job g;
  memset(&g, 0, sizeof g);
  assert_int_equal(ops->get(st, j.id, t + 2, &g), 0);
  assert_int_equal(g.state, JOBQ_SUCCEEDED);
  assert_string_equal(g.result, "{\"ok\":1}");
  jobq_storage_job_clear(&g);
  jobq_storage_job_clear(&out);
}

static void test_prepared_and_lost(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700];
  pgt_schema("prep", schema, sizeof schema, url, sizeof url);
  strncat(url, "&pool=1", sizeof url - strlen(url) - 1);
  void *st = open_store(url);
  pg_store *s = st;
  one_job(st, T);
  /* the claim, the batch fill before it, the finish (and the next due
   * time, if the claim found nothing): prepared, and kept */
  long first = server_prepared(s);
  assert_true(first >= 3);
  one_job(st, T + 10);
  assert_int_equal(server_prepared(s), first);
  assert_int_equal(s->conns[0].n_prep, (int)first);

  /* The server connection forgets them: every call still works (each
   * runs unnamed once, and prepares again at its next use). */
  PQclear(PQexec(s->conns[0].c, "DEALLOCATE ALL"));
  assert_int_equal(server_prepared(s), 0);
  one_job(st, T + 20);
  one_job(st, T + 30);
  assert_int_equal(server_prepared(s), first);
  ops->close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_prepared_and_lost),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
