/* A heartbeat of the PostgreSQL backend that waits keeps a whole lease. The
 * core computes the lease's end before the call; when the call waits (here:
 * a lock of the job's row, or of jobq_jobs, held by another connection for
 * longer than the lease), a lease stored as given would already have run
 * out at the heartbeat's commit, and another process's rescue would run the
 * job a second time while its handler runs. The lease stored must instead
 * reach a whole lease past the moment the wait ended (at least half of one
 * is asserted: the check does not depend on the machine's speed, while the
 * lease as given ends half a lease before that moment). Through the storage
 * vtable, on the wall clock the server shares. jobq-test-requires: postgres */
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

#include <inttypes.h>
#include <pthread.h>

#define LEASE_MS 1000
#define HOLD_MS 1500 /* longer than the lease: a lease as given runs out */

static const jobq_storage_ops *ops;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct beat {
  void *st;
  jobq_storage_lease l;
  int rc;
} beat;

static void *beat_main(void *arg) {
  beat *b = arg;
  b->rc = ops->heartbeat(b->st, &b->l, 1, wall_ms() + LEASE_MS);
  return NULL;
}

static PGconn *schema_conn(const char *schema) {
  PGconn *c = PQconnectdb(pgt_base());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char sql[128];
  snprintf(sql, sizeof sql, "SET search_path TO \"%s\"", schema);
  PQclear(PQexec(c, sql));
  return c;
}

static void exec_ok(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
}

/* table: LOCK TABLE jobq_jobs; else the job's row FOR UPDATE. */
static void waited_beat(int table) {
  pgt_need_server();
  char schema[64], url[700];
  pgt_schema(table ? "hbt" : "hbr", schema, sizeof schema, url, sizeof url);
  assert_int_equal(jobq_postgres_register(), 0);
  assert_int_equal(jobq__storage_lookup(url, &ops), 0);
  void *st = NULL;
  if (ops->open(url, &st)) fail_msg("open %s: %s", url, jobq_last_error());

  int64_t t = wall_ms();
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
  cl.now = wall_ms();
  cl.lease_ms = LEASE_MS;
  cl.default_max_attempts = 3;
  jobq_storage_job out;
  size_t n = 0;
  if (ops->claim(st, &cl, &out, &n)) fail_msg("claim: %s", jobq_last_error());
  assert_int_equal(n, 1);
  /* A quick heartbeat stores the lease as given (and prepares its
   * statement, so that the waited one below waits for the lock only). */
  jobq_storage_lease ql = {out.id, out.attempts, 0, 0};
  int64_t given = wall_ms() + LEASE_MS;
  assert_int_equal(ops->heartbeat(st, &ql, 1, given), 0);
  assert_int_equal(ql.still_running, 1);
  char sql[256], v[64];
  snprintf(sql, sizeof sql, "SELECT lease_until FROM \"%s\".jobq_jobs WHERE id = '%s'", schema,
           out.id);
  pgt_sql1(sql, v, sizeof v);
  assert_int_equal(strtoll(v, NULL, 10), given);

  PGconn *lock = schema_conn(schema);
  exec_ok(lock, "BEGIN");
  if (table) {
    exec_ok(lock, "LOCK TABLE jobq_jobs IN EXCLUSIVE MODE");
  } else {
    char q[200];
    snprintf(q, sizeof q, "SELECT 1 FROM jobq_jobs WHERE id = '%s' FOR UPDATE", out.id);
    exec_ok(lock, q);
  }
  beat b = {st, {out.id, out.attempts, 0, 0}, -1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, beat_main, &b), 0);
  pgt_sleep_ms(HOLD_MS);
  int64_t released = wall_ms();
  exec_ok(lock, "COMMIT");
  PQfinish(lock);
  assert_int_equal(pthread_join(th, NULL), 0);
  if (b.rc) fail_msg("heartbeat: %s", jobq_last_error());
  assert_int_equal(b.l.still_running, 1);
  pgt_sql1(sql, v, sizeof v);
  int64_t lease_until = strtoll(v, NULL, 10);
  print_message("%s lock held %d ms: the lease ends %" PRId64 " ms after it was let go (lease %d)\n",
                table ? "table" : "row", HOLD_MS, lease_until - released, LEASE_MS);
  if (lease_until - released < LEASE_MS / 2)
    fail_msg("the heartbeat that waited %d ms stored a lease ending %" PRId64 " ms after the "
             "wait: counted from before the wait", HOLD_MS, lease_until - released);
  jobq_storage_job_clear(&out);
  ops->close(st);
}

static void test_row_lock(void **state) {
  (void)state;
  waited_beat(0);
}

static void test_table_lock(void **state) {
  (void)state;
  waited_beat(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_row_lock),
      cmocka_unit_test(test_table_lock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
