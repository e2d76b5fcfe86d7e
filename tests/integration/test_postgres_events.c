/* Events shared between processes on the PostgreSQL backend, through the
 * public API: another queue on the same schema stands for another process
 * (its own store, its own origin). Its changes reach this queue's
 * listeners in order, this queue never hears its own changes twice, shared
 * events work from jobq_open, and nobody listening means no event rows.
 * A batch's end reaches other processes from the transaction that ended
 * its last member, and the process that ended it hears it once.
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
#include <unistd.h>

#include "jobq.h"
#include "jobq/postgres.h"
#include "postgres/pg_int.h" /* PG_SCHEMA_VERSION, jobq__pg_migration */
#include "pgtest.h"           /* pgt_schema_at */

static char base_url[512], url[640], schema[64];

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

/* A schema of its own for each test. */
static int setup(void **state) {
  (void)state;
  static int n;
  snprintf(schema, sizeof schema, "t_ev_%ld_%d", (long)getpid(), ++n);
  snprintf(url, sizeof url, "%s?schema=%s", base(), schema);
  return 0;
}

static void need_server(void) {
  if (!base()[0]) {
    print_message("skipped: no PostgreSQL server (JOBQ_TEST_POSTGRES_URL unset)\n");
    skip();
  }
}

/* One number of SQL on the server, in the test's schema. */
static long sql_long(const char *sql) {
  PGconn *c = PQconnectdb(base());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char set[128];
  snprintf(set, sizeof set, "SET search_path TO %s", schema);
  PQclear(PQexec(c, set));
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  long v = PQntuples(r) ? atol(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  PQfinish(c);
  return v;
}

static jobq_t *open_q(int workers, int shared) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, workers), 0);
  if (shared) assert_int_equal(jobq_options_set_shared_events(o, 1), 0);
  jobq_t *q = NULL;
  int rc = jobq_open(&q, o);
  if (rc) fail_msg("jobq_open: %s", jobq_last_error());
  jobq_options_free(o);
  return q;
}

static void work(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  const char *p = jobq_ctx_payload(ctx);
  if (strcmp(p, "\"retry\"") == 0 && jobq_ctx_attempt(ctx) == 1) {
    jobq_ctx_fail(ctx, "try again", 1);
    return;
  }
  jobq_ctx_progress(ctx, 100, "all done");
  if (strcmp(p, "\"fail\"") == 0) jobq_ctx_fail(ctx, "no luck", 0);
  else jobq_ctx_succeed(ctx, "{\"ok\":true}");
}

/* The types of id's events from q's pull stream until a terminal one, up
 * to 20 s (the fallback read is once a second). */
static void collect(jobq_t *q, const char *id, char *types, size_t cap, char *last_error,
                    char *last_result) {
  types[0] = '\0';
  for (int i = 0; i < 400; i++) {
    jobq_event_t *ev = NULL;
    if (jobq_next_event(q, 50, &ev) != 0) continue;
    if (strcmp(jobq_event_job_id(ev), id) == 0) {
      const char *name = jobq_event_type_name(jobq_event_type(ev));
      if (types[0]) strncat(types, " ", cap - strlen(types) - 1);
      strncat(types, name, cap - strlen(types) - 1);
      if (jobq_event_error(ev)) snprintf(last_error, 64, "%s", jobq_event_error(ev));
      if (jobq_event_result(ev)) snprintf(last_result, 64, "%s", jobq_event_result(ev));
      int term = jobq_event_type(ev) >= JOBQ_EVENT_SUCCEEDED;
      jobq_event_free(ev);
      if (term) return;
    } else {
      jobq_event_free(ev);
    }
  }
}

static void test_listener_hears_other_process(void **state) {
  (void)state;
  need_server();
  jobq_t *listener = open_q(0, 0);
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(listener, 0, &ev), JOBQ_ETIMEDOUT); /* starts listening */
  jobq_t *other = open_q(1, 0);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_non_null(ko);
  assert_int_equal(jobq_kind_opts_set_backoff(ko, 1, 1, 0.0), 0);
  assert_int_equal(jobq_register(other, "k", work, NULL, ko), 0);
  jobq_kind_opts_free(ko);
  assert_int_equal(jobq_start(other), 0);

  char ok[JOBQ_ID_SIZE], bad[JOBQ_ID_SIZE], again[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(other, "k", "\"ok\"", NULL, ok), 0);
  char types[256], err[64] = "", res[64] = "";
  collect(listener, ok, types, sizeof types, err, res);
  /* progress may be coalesced away, the rest is exact and ordered */
  if (strcmp(types, "submitted started succeeded") != 0 &&
      strcmp(types, "submitted started progress succeeded") != 0)
    fail_msg("events of another process's job: \"%s\"", types);
  assert_string_equal(res, "{\"ok\":true}");

  assert_int_equal(jobq_submit(other, "k", "\"fail\"", NULL, bad), 0);
  collect(listener, bad, types, sizeof types, err, res);
  assert_non_null(strstr(types, "failed"));
  assert_string_equal(err, "no luck");

  /* A retry is heard as such (the finish's statement writes it). */
  assert_int_equal(jobq_submit(other, "k", "\"retry\"", NULL, again), 0);
  collect(listener, again, types, sizeof types, err, res);
  if (strncmp(types, "submitted started retrying started", 34) != 0 ||
      strstr(types, "succeeded") == NULL)
    fail_msg("events of a retried job: \"%s\"", types);

  /* The listener's own submit is heard once, not again from the table. */
  char mine[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(listener, "k", "\"ok\"", NULL, mine), 0);
  collect(listener, mine, types, sizeof types, err, res);
  if (strncmp(types, "submitted started", 17) != 0 || strstr(types + 1, "submitted"))
    fail_msg("events of our own job: \"%s\"", types);
  assert_int_equal(jobq_close(other, 5000), 0);
  assert_int_equal(jobq_close(listener, 0), 0);
  /* A closed listener leaves no row behind. */
  assert_int_equal(sql_long("SELECT count(*) FROM jobq_listeners"), 0);
}

/* With shared events, the first jobq_next_event calls of an API process
 * see what another process did after jobq_open. */
static void test_shared_events_from_open(void **state) {
  (void)state;
  need_server();
  jobq_t *api = open_q(0, 1);
  jobq_t *other = open_q(1, 0);
  assert_int_equal(jobq_register(other, "k", work, NULL, NULL), 0);
  assert_int_equal(jobq_start(other), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(other, "k", "\"ok\"", NULL, id), 0);
  for (int i = 0; i < 100; i++) {
    jobq_job_t *j = NULL;
    int rc = jobq_wait(other, id, 100, &j);
    assert_true(rc == 0 || rc == JOBQ_ETIMEDOUT);
    int done = jobq_state_is_terminal(jobq_job_state(j));
    jobq_job_free(j);
    if (done) break;
  }
  assert_int_equal(jobq_close(other, 5000), 0);
  char types[256], err[64] = "", res[64] = "";
  collect(api, id, types, sizeof types, err, res);
  if (strcmp(types, "submitted started succeeded") != 0 &&
      strcmp(types, "submitted started progress succeeded") != 0)
    fail_msg("events of another process's job before the first call: \"%s\"", types);
  assert_int_equal(jobq_close(api, 0), 0);
}

/* Nobody listening: no event rows are written. */
static void test_no_rows_without_listeners(void **state) {
  (void)state;
  need_server();
  jobq_t *q = open_q(1, 0);
  assert_int_equal(jobq_register(q, "k", work, NULL, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) assert_int_equal(jobq_submit(q, "k", "\"ok\"", NULL, id), 0);
  jobq_job_t *j = NULL;
  for (int i = 0; i < 100; i++) {
    int rc = jobq_wait(q, id, 100, &j);
    assert_true(rc == 0 || rc == JOBQ_ETIMEDOUT);
    int done = jobq_state_is_terminal(jobq_job_state(j));
    jobq_job_free(j);
    if (done) break;
  }
  assert_int_equal(jobq_close(q, 5000), 0);
  assert_int_equal(sql_long("SELECT count(*) FROM jobq_events"), 0);
}

/* SQL on a connection of the test's own, in the test's schema. */
static void sql_exec(const char *sql) {
  PGconn *c = PQconnectdb(base());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char set[128];
  snprintf(set, sizeof set, "SET search_path TO %s", schema);
  PQclear(PQexec(c, set));
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

/* The BATCH_DONE events of batch on q's pull stream: waits up to first_ms
 * for one, then listens after_ms more for a second one (the fallback read
 * is once a second, so 1.2 s hears a lost notification's events too); the
 * last one's summary and job id in sum and last. */
static int batch_dones(jobq_t *q, const char *batch, int first_ms, int after_ms, char *sum,
                       size_t cap, char *last) {
  int n = 0, until = first_ms;
  for (int t = 0; t < until; t += 50) {
    jobq_event_t *ev = NULL;
    if (jobq_next_event(q, 50, &ev) != 0) continue;
    if (jobq_event_type(ev) == JOBQ_EVENT_BATCH_DONE && jobq_event_batch_id(ev) &&
        strcmp(jobq_event_batch_id(ev), batch) == 0) {
      if (n++ == 0) until = t + after_ms;
      snprintf(sum, cap, "%s", jobq_event_result(ev) ? jobq_event_result(ev) : "");
      snprintf(last, JOBQ_ID_SIZE, "%s", jobq_event_job_id(ev));
    }
    jobq_event_free(ev);
  }
  return n;
}

/* The BATCH_DONE event of a batch is written by the transaction that
 * ended its last member. The members here are ended by SQL on a connection
 * of the test's own, which is what a process that stops right after its
 * commit leaves behind: the change committed, and nothing after the commit
 * ran. So another process hears the batch's end exactly when that
 * transaction commits: never after a rollback, once after the commit.
 * (Before the event moved into the transaction, the process that ended the
 * batch wrote it after its commit, and here nobody does: the listener
 * heard nothing.) */
static void test_batch_done_in_ending_transaction(void **state) {
  (void)state;
  need_server();
  jobq_t *listener = open_q(0, 0);
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(listener, 0, &ev), JOBQ_ETIMEDOUT); /* starts listening */
  jobq_t *api = open_q(0, 0);
  const char *kinds[2] = {"k", "k"}, *payloads[2] = {"1", "2"};
  char batch[JOBQ_ID_SIZE], ids[2 * JOBQ_ID_SIZE];
  assert_int_equal(jobq_batch_submit(api, 2, kinds, payloads, NULL, 0, batch, ids, NULL), 0);
  char sql[512], sum[512] = "", last[JOBQ_ID_SIZE] = "";
  snprintf(sql, sizeof sql,
           "BEGIN; UPDATE jobq_jobs SET state = 2, result = 'null', finished_at = 5 WHERE "
           "batch = '%s'; ROLLBACK",
           batch);
  sql_exec(sql);
  assert_int_equal(batch_dones(listener, batch, 2500, 1200, sum, sizeof sum, last), 0);
  snprintf(sql, sizeof sql,
           "BEGIN; UPDATE jobq_jobs SET state = 2, result = 'null', finished_at = 5 WHERE "
           "batch = '%s'; COMMIT",
           batch);
  sql_exec(sql);
  int n = batch_dones(listener, batch, 2500, 1200, sum, sizeof sum, last);
  if (n != 1) fail_msg("another process heard the batch's end %d times (want 1)", n);
  assert_non_null(strstr(sum, "\"total\":2"));
  assert_non_null(strstr(sum, "\"succeeded\":2"));
  assert_true(strcmp(last, ids) == 0 || strcmp(last, ids + JOBQ_ID_SIZE) == 0);
  assert_int_equal(jobq_close(api, 0), 0);
  assert_int_equal(jobq_close(listener, 0), 0);
}

/* Through the public API: a worker process ends a batch (its group
 * commit, a cancel, a batch without members); another process hears each
 * end once, and the process that ended it hears it once too (from its own
 * sink, not again from the row it wrote for the others). */
static void test_batch_done_heard_once(void **state) {
  (void)state;
  need_server();
  jobq_t *listener = open_q(0, 0);
  jobq_t *worker = open_q(2, 0);
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(listener, 0, &ev), JOBQ_ETIMEDOUT);
  assert_int_equal(jobq_next_event(worker, 0, &ev), JOBQ_ETIMEDOUT);
  assert_int_equal(jobq_register(worker, "k", work, NULL, NULL), 0);
  assert_int_equal(jobq_start(worker), 0);
  const char *kinds[3] = {"k", "k", "k"}, *payloads[3] = {"\"ok\"", "\"fail\"", "\"ok\""};
  char batch[JOBQ_ID_SIZE], ids[3 * JOBQ_ID_SIZE], sum[512], last[JOBQ_ID_SIZE];
  assert_int_equal(jobq_batch_submit(worker, 3, kinds, payloads, NULL, 0, batch, ids, NULL), 0);
  int heard = batch_dones(listener, batch, 4000, 1200, sum, sizeof sum, last);
  int own = batch_dones(worker, batch, 1500, 1200, sum, sizeof sum, last);
  if (heard != 1 || own != 1)
    fail_msg("a batch ended by a worker: heard %d times by another process, %d times by its "
             "own (want 1 and 1)",
             heard, own);
  assert_non_null(strstr(sum, "\"failed\":1"));
  /* A cancel ends a batch (a kind nobody runs, so its member stays queued). */
  const char *ik[1] = {"idle"}, *ip[1] = {"\"ok\""};
  char b2[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  assert_int_equal(jobq_batch_submit(worker, 1, ik, ip, NULL, 0, b2, id2, NULL), 0);
  assert_int_equal(jobq_cancel(worker, id2), 0);
  heard = batch_dones(listener, b2, 4000, 1200, sum, sizeof sum, last);
  own = batch_dones(worker, b2, 1500, 1200, sum, sizeof sum, last);
  if (heard != 1 || own != 1)
    fail_msg("a batch ended by a cancel: heard %d times by another process, %d times by its own",
             heard, own);
  assert_non_null(strstr(sum, "\"cancelled\":1"));
  /* A batch whose every job was a duplicate has no members: done at its
   * insert, told by the insert's transaction. */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  assert_int_equal(jobq_submit_opts_set_dedupe(so, "only-once", 60000), 0);
  const jobq_submit_opts_t *sos[1] = {so};
  char first[JOBQ_ID_SIZE], b3[JOBQ_ID_SIZE], id3[JOBQ_ID_SIZE];
  int dup = 0;
  assert_int_equal(jobq_submit(worker, "idle", "1", so, first), 0);
  assert_int_equal(jobq_batch_submit(worker, 1, ik, ip, sos, 0, b3, id3, &dup), 1);
  jobq_submit_opts_free(so);
  assert_int_equal(dup, 1);
  heard = batch_dones(listener, b3, 4000, 1200, sum, sizeof sum, last);
  own = batch_dones(worker, b3, 1500, 1200, sum, sizeof sum, last);
  if (heard != 1 || own != 1)
    fail_msg("a batch without members: heard %d times by another process, %d times by its own",
             heard, own);
  assert_non_null(strstr(sum, "\"total\":0"));
  assert_int_equal(jobq_close(worker, 5000), 0);
  assert_int_equal(jobq_close(listener, 0), 0);
}

/* A schema of version 5 (the migrations before slot 5), with a batch
 * whose one member is queued: opening it migrates to the current version
 * (slot 5 made 6, with the trigger this tests), keeps the batch, and the member's end then reaches another process from its
 * transaction. */
static void test_migration_from_version_5(void **state) {
  (void)state;
  need_server();
  assert_true(PG_SCHEMA_VERSION >= 6);
  pgt_schema_at(base(), schema, 5,
                "INSERT INTO jobq_batches (id, max_running, total, open, created_at) "
                "VALUES ('b-old', 0, 1, 1, 1); "
                "INSERT INTO jobq_jobs (id, kind, state, run_at, created_at, payload, batch, bcap) "
                "VALUES ('old-1', 'k', 0, 1, 1, '1', 'b-old', 0)");

  jobq_t *listener = open_q(0, 0);
  assert_int_equal(sql_long("SELECT value::int FROM jobq_meta WHERE key = 'schema_version'"), PG_SCHEMA_VERSION);
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(listener, 0, &ev), JOBQ_ETIMEDOUT);
  sql_exec("UPDATE jobq_jobs SET state = 3, error = 'gone', finished_at = 5 WHERE id = 'old-1'");
  char sum[512] = "", last[JOBQ_ID_SIZE] = "";
  assert_int_equal(batch_dones(listener, "b-old", 2500, 1200, sum, sizeof sum, last), 1);
  assert_string_equal(last, "old-1");
  assert_non_null(strstr(sum, "\"failed\":1"));
  assert_int_equal(jobq_close(listener, 0), 0);
}

int main(void) {
  if (jobq_postgres_register() != 0) return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_no_rows_without_listeners, setup),
    cmocka_unit_test_setup(test_listener_hears_other_process, setup),
    cmocka_unit_test_setup(test_shared_events_from_open, setup),
    cmocka_unit_test_setup(test_batch_done_in_ending_transaction, setup),
    cmocka_unit_test_setup(test_batch_done_heard_once, setup),
    cmocka_unit_test_setup(test_migration_from_version_5, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
