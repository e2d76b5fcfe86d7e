/* Events shared between processes on the PostgreSQL backend, through the
 * public API: another queue on the same schema stands for another process
 * (its own store, its own origin). Its changes reach this queue's
 * listeners in order, this queue never hears its own changes twice, shared
 * events work from jobq_open, and nobody listening means no event rows.
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

int main(void) {
  if (jobq_postgres_register() != 0) return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_no_rows_without_listeners, setup),
    cmocka_unit_test_setup(test_listener_hears_other_process, setup),
    cmocka_unit_test_setup(test_shared_events_from_open, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
