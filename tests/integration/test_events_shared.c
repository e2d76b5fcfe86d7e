/* Events of changes made by another process (here: another queue on the
 * same SQLite file, which is a different storage connection with its own
 * origin, exactly as another process would be) reach this queue's
 * listeners, in order, and a queue never hears its own changes twice. */
#include <jobq.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

static char dir[64], url[128];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/jobq-evshare-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(url, sizeof url, "sqlite:%s/q.db?busy_timeout=10000", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char p[160];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/q.db%s", dir, sfx[i]);
    unlink(p);
  }
  rmdir(dir);
  return 0;
}

static jobq_t *open_q(int workers) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, workers), 0);
  jobq_t *q = NULL;
  int rc = jobq_open(&q, o);
  if (rc) fail_msg("jobq_open: %s", jobq_last_error());
  jobq_options_free(o);
  return q;
}

static void work(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_progress(ctx, 100, "all done");
  if (strcmp(jobq_ctx_payload(ctx), "\"fail\"") == 0) jobq_ctx_fail(ctx, "no luck", 0);
  else jobq_ctx_succeed(ctx, "{\"ok\":true}");
}

/* Collects the types of id's events from q's pull stream until a terminal
 * one, up to 10 s. */
static void collect(jobq_t *q, const char *id, char *types, size_t cap, char *last_error,
                    char *last_result) {
  types[0] = '\0';
  for (int i = 0; i < 200; i++) {
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
  jobq_t *listener = open_q(0);
  jobq_event_t *ev = NULL;
  assert_int_equal(jobq_next_event(listener, 0, &ev), JOBQ_ETIMEDOUT); /* starts listening */
  jobq_t *other = open_q(1);
  assert_int_equal(jobq_register(other, "k", work, NULL, NULL), 0);
  assert_int_equal(jobq_start(other), 0);

  char ok[JOBQ_ID_SIZE], bad[JOBQ_ID_SIZE];
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

  /* The listener's own submit is heard once, not again from the table. */
  char mine[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(listener, "k", "\"ok\"", NULL, mine), 0);
  collect(listener, mine, types, sizeof types, err, res);
  if (strncmp(types, "submitted started", 17) != 0 || strstr(types + 1, "submitted"))
    fail_msg("events of our own job: \"%s\"", types);
  assert_int_equal(jobq_close(other, 5000), 0);
  assert_int_equal(jobq_close(listener, 0), 0);
}

/* A queue opened with only the buffer option (buffered_only) or with shared
 * events. */
static jobq_t *open_listener(int shared) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  if (shared) assert_int_equal(jobq_options_set_shared_events(o, 1), 0);
  else assert_int_equal(jobq_options_set_event_buffer(o, 1000), 0);
  jobq_t *q = NULL;
  int rc = jobq_open(&q, o);
  if (rc) fail_msg("jobq_open: %s", jobq_last_error());
  jobq_options_free(o);
  return q;
}

/* Runs one job in a worker queue of its own and waits until it ended. */
static void run_elsewhere(char *id) {
  jobq_t *other = open_q(1);
  assert_int_equal(jobq_register(other, "k", work, NULL, NULL), 0);
  assert_int_equal(jobq_start(other), 0);
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
}

/* An API process opens its queue, another process runs a job, and only
 * then does the API process ask for events: with shared events its first
 * jobq_next_event calls see the other process's events. */
static void test_shared_events_from_open(void **state) {
  (void)state;
  jobq_t *api = open_listener(1);
  char id[JOBQ_ID_SIZE];
  run_elsewhere(id);
  char types[256], err[64] = "", res[64] = "";
  collect(api, id, types, sizeof types, err, res);
  if (strcmp(types, "submitted started succeeded") != 0 &&
      strcmp(types, "submitted started progress succeeded") != 0)
    fail_msg("events of another process's job before the first call: \"%s\"", types);
  assert_string_equal(res, "{\"ok\":true}");
  assert_int_equal(jobq_close(api, 0), 0);
}

/* Without it, a buffer started at jobq_open holds this queue's own events
 * only: other processes are heard from the first call on (as documented). */
static void test_buffer_alone_hears_others_from_first_call(void **state) {
  (void)state;
  jobq_t *api = open_listener(0);
  char id[JOBQ_ID_SIZE];
  run_elsewhere(id);
  jobq_event_t *ev = NULL;
  for (int i = 0; i < 6; i++) {
    int rc = jobq_next_event(api, 50, &ev);
    if (rc == 0) fail_msg("an event of before the first call: %s", jobq_event_job_id(ev));
    assert_int_equal(rc, JOBQ_ETIMEDOUT);
  }
  assert_int_equal(jobq_close(api, 0), 0);
}

/* Nobody listening: no event rows are written (the cost is only paid while
 * someone listens). */
static void test_no_rows_without_listeners(void **state) {
  (void)state;
  jobq_t *q = open_q(0);
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) assert_int_equal(jobq_submit(q, "k", "1", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  char path[160];
  snprintf(path, sizeof path, "%s/q.db", dir);
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM jobq_events", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void exec_sql(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
  sqlite3_close(db);
}

static int query_int(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* A database of schema 1 (before jobq_events) is migrated forward when
 * opened, and its jobs stay as they were. */
static void test_migrates_schema_1(void **state) {
  (void)state;
  char path[160], id[JOBQ_ID_SIZE];
  snprintf(path, sizeof path, "%s/q.db", dir);
  jobq_t *q = open_q(0);
  assert_int_equal(jobq_submit(q, "k", "{\"keep\":1}", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  /* Make it what libjobq 0.1 schema 1 wrote. */
  exec_sql(path, "DROP TABLE jobq_outbox_news; DROP TABLE jobq_outbox; DROP TABLE jobq_webhook_disabled; "
                 "ALTER TABLE jobq_jobs DROP COLUMN webhooks; "
                 "DROP INDEX jobq_jobs_held; DROP INDEX jobq_jobs_batch; DROP TABLE jobq_batches; "
                 "ALTER TABLE jobq_jobs DROP COLUMN batch; ALTER TABLE jobq_jobs DROP COLUMN bcap; "
                 "DROP TABLE jobq_stats; DROP TABLE jobq_stats_live; "
                 "DROP TABLE jobq_rate_log; DROP TABLE jobq_rate; DROP TABLE jobq_cron; "
                 "DROP TABLE jobq_owner_open; "
                 "DROP TABLE jobq_events; DROP TABLE jobq_listeners; DROP TABLE jobq_leases; "
                 "ALTER TABLE jobq_jobs DROP COLUMN lease_owner; "
                 "CREATE INDEX jobq_jobs_lease ON jobq_jobs(lease_until) WHERE state = 1; "
                 "ALTER TABLE jobq_jobs DROP COLUMN ck_stage; "
                 "ALTER TABLE jobq_jobs DROP COLUMN ck_output; "
                 "UPDATE jobq_meta SET value = '1' WHERE key = 'schema_version'");
  assert_int_equal(query_int(path, "SELECT value FROM jobq_meta WHERE key = 'schema_version'"), 1);
  q = open_q(0);
  jobq_job_t *job = NULL;
  assert_int_equal(jobq_get(q, id, &job), 0);
  assert_string_equal(jobq_job_payload(job), "{\"keep\":1}");
  assert_int_equal(jobq_job_state(job), JOBQ_QUEUED);
  jobq_job_free(job);
  assert_int_equal(jobq_close(q, 0), 0);
  assert_int_equal(query_int(path, "SELECT value FROM jobq_meta WHERE key = 'schema_version'"), 11);
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_events"), 0);
  /* schema 3: the checkpoint columns, empty for old jobs */
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_jobs WHERE ck_stage IS NULL"), 1);
  /* schema 4: leases by owner; no index over running jobs any more */
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_leases"), 0);
  /* schema 5: the per-owner bounds of quotas, empty */
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_owner_open"), 0);
  /* schema 6: cron schedules, none */
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_cron"), 0);
  /* schema 7: the rate limits' windows, empty */
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_rate_log"), 0);
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_rate"), 0);
  /* schema 9: batches, none yet; old jobs belong to none */
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_batches"), 0);
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_jobs WHERE batch IS NULL"), 1);
  /* schema 10: the webhook outbox, empty; old jobs have no subscriptions */
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_outbox"), 0);
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_webhook_disabled"), 0);
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_jobs WHERE webhooks IS NULL"), 1);
  assert_int_equal(
      query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'jobq_jobs_lease'"), 0);
}

/* Waits (10 s at most) for job id, rescued from a dead attempt, to succeed
 * on its second attempt. */
static void expect_rescued_and_succeeded(jobq_t *q, const char *id) {
  jobq_job_t *job = NULL;
  for (int i = 0; i < 10; i++) { /* a long poll: returns at each change */
    int rc = jobq_wait(q, id, 1000, &job);
    assert_true(rc == 0 || rc == JOBQ_ETIMEDOUT);
    if (jobq_job_state(job) == JOBQ_SUCCEEDED) break;
    jobq_job_free(job);
    job = NULL;
  }
  if (job == NULL) fail_msg("job %s was not rescued and run within 10 s", id);
  assert_int_equal(jobq_job_attempts(job), 2);
  jobq_job_free(job);
}

static void succeed_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, "{\"ok\":true}");
}

/* A job that a schema-3 process was running when it died (its lease long
 * expired) is rescued once the file is migrated to leases by owner: the
 * migration gives it owner 0, whose lease row has already expired. */
static void test_migrates_schema_3_running_job(void **state) {
  (void)state;
  char path[160], id[JOBQ_ID_SIZE], live[JOBQ_ID_SIZE];
  snprintf(path, sizeof path, "%s/q.db", dir);
  jobq_t *q = open_q(0);
  assert_int_equal(jobq_submit(q, "k", "{}", NULL, id), 0);
  assert_int_equal(jobq_submit(q, "k", "{}", NULL, live), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  /* What libjobq schema 3 left: one job running for a dead process, one
   * running with a lease that still lives (another process, alive). */
  exec_sql(path, "DROP TABLE jobq_outbox_news; DROP TABLE jobq_outbox; DROP TABLE jobq_webhook_disabled; "
                 "ALTER TABLE jobq_jobs DROP COLUMN webhooks; "
                 "DROP INDEX jobq_jobs_held; DROP INDEX jobq_jobs_batch; DROP TABLE jobq_batches; "
                 "ALTER TABLE jobq_jobs DROP COLUMN batch; ALTER TABLE jobq_jobs DROP COLUMN bcap; "
                 "DROP TABLE jobq_stats; DROP TABLE jobq_stats_live; "
                 "DROP TABLE jobq_rate_log; DROP TABLE jobq_rate; DROP TABLE jobq_cron; "
                 "DROP TABLE jobq_owner_open; "
                 "DROP TABLE jobq_leases; ALTER TABLE jobq_jobs DROP COLUMN lease_owner; "
                 "CREATE INDEX jobq_jobs_lease ON jobq_jobs(lease_until) WHERE state = 1; "
                 "UPDATE jobq_meta SET value = '3' WHERE key = 'schema_version'");
  char sql[512];
  snprintf(sql, sizeof sql,
           "UPDATE jobq_jobs SET state = 1, attempts = 1, max_attempts = 3, started_at = 1000, "
           "lease_until = 2000 WHERE id = '%s'; "
           "UPDATE jobq_jobs SET state = 1, attempts = 1, max_attempts = 3, started_at = 1000, "
           "lease_until = 9000000000000 WHERE id = '%s'",
           id, live);
  exec_sql(path, sql);
  q = open_q(1);
  assert_int_equal(query_int(path, "SELECT value FROM jobq_meta WHERE key = 'schema_version'"), 11);
  assert_int_equal(jobq_register(q, "k", succeed_handler, NULL, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  expect_rescued_and_succeeded(q, id);
  /* The living lease was left alone, and owner 0 keeps a row for it. */
  jobq_job_t *job = NULL;
  assert_int_equal(jobq_get(q, live, &job), 0);
  assert_int_equal(jobq_job_state(job), JOBQ_RUNNING);
  jobq_job_free(job);
  assert_int_equal(jobq_close(q, 0), 0);
  assert_int_equal(
      query_int(path, "SELECT until = 9000000000000 FROM jobq_leases WHERE owner = 0"), 1);
}

/* A running job no lease row stands for (claimed by an older libjobq still
 * running when the file was migrated, which then died) is found by the
 * scan rescue makes at start and every 10 minutes, whatever the rows say. */
static void test_rescues_job_without_lease_row(void **state) {
  (void)state;
  char path[160], id[JOBQ_ID_SIZE];
  snprintf(path, sizeof path, "%s/q.db", dir);
  jobq_t *q = open_q(0);
  assert_int_equal(jobq_submit(q, "k", "{}", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  char sql[512];
  snprintf(sql, sizeof sql,
           "UPDATE jobq_jobs SET state = 1, attempts = 1, max_attempts = 3, started_at = 1000, "
           "lease_until = 2000, lease_owner = NULL WHERE id = '%s'",
           id);
  exec_sql(path, sql);
  assert_int_equal(query_int(path, "SELECT count(*) FROM jobq_leases"), 0);
  q = open_q(1);
  assert_int_equal(jobq_register(q, "k", succeed_handler, NULL, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  expect_rescued_and_succeeded(q, id);
  assert_int_equal(jobq_close(q, 0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_no_rows_without_listeners, setup, teardown),
    cmocka_unit_test_setup_teardown(test_listener_hears_other_process, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shared_events_from_open, setup, teardown),
    cmocka_unit_test_setup_teardown(test_buffer_alone_hears_others_from_first_call, setup, teardown),
    cmocka_unit_test_setup_teardown(test_migrates_schema_1, setup, teardown),
    cmocka_unit_test_setup_teardown(test_migrates_schema_3_running_job, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rescues_job_without_lease_row, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
