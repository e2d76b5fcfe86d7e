/* Leader duties on the PostgreSQL backend (lib/postgres/pg_leader.c): of
 * several stores on one schema exactly one leads and rescues expired
 * leases for all; when the server ends the leader's connection
 * (pg_terminate_backend), another store takes over and rescues.
 * jobq-test-requires: postgres */
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

#define N_STORES 3
#define T 1700000000000LL

typedef struct {
  const jobq_storage_ops *ops;
  void *st;
} store;

static void open_store(const char *url, store *s) {
  assert_int_equal(jobq_postgres_register(), 0);
  assert_int_equal(jobq__storage_lookup(url, &s->ops), 0);
  int rc = s->ops->open(url, &s->st);
  if (rc) fail_msg("open %s: %s", url, jobq_last_error());
}

/* A job claimed with a 100 ms lease at T, never heartbeaten. */
static void abandoned_job(store *s, char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  jobq__id_new(j.id, T);
  j.kind = "k";
  j.payload = "{}";
  j.state = JOBQ_QUEUED;
  j.created_at = j.run_at = T;
  j.max_attempts = 5;
  jobq_storage_job *jp = &j;
  int dup = 0;
  assert_int_equal(s->ops->insert(s->st, &jp, 1, NULL, T, &dup), 0);
  memcpy(id, j.id, JOBQ_ID_SIZE);
  jobq_storage_claim cl;
  memset(&cl, 0, sizeof cl);
  cl.max = 1;
  cl.now = T;
  cl.lease_ms = 100;
  cl.default_max_attempts = 5;
  jobq_storage_job out;
  size_t n = 0;
  assert_int_equal(s->ops->claim(s->st, &cl, &out, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(out.id, id);
  jobq_storage_job_clear(&out);
}

/* How many of the stores but `skip` (-1: none) lead; *which one of them. */
static int leaders(store *s, int skip, int *which) {
  int n = 0;
  for (int i = 0; i < N_STORES; i++)
    if (i != skip && jobq__pg_is_leader((pg_store *)s[i].st)) {
      n++;
      *which = i;
    }
  return n;
}

static void test_one_leader_rescues_and_another_takes_over(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700], app[64], sql[512];
  pgt_schema("lead", schema, sizeof schema, url, sizeof url);
  snprintf(app, sizeof app, "jobq_lead_%ld", (long)getpid());
  snprintf(url + strlen(url), sizeof url - strlen(url), "&application_name=%s", app);
  store s[N_STORES];
  for (int i = 0; i < N_STORES; i++) open_store(url, &s[i]);

  /* Exactly one leads. */
  int lead = -1;
  assert_int_equal(leaders(s, -1, &lead), 1);
  /* Only it rescues: the others report nothing to do and leave the job. */
  char id[JOBQ_ID_SIZE];
  abandoned_job(&s[0], id);
  for (int i = 0; i < N_STORES; i++) {
    if (i == lead) continue;
    size_t n = 99;
    assert_int_equal(s[i].ops->rescue(s[i].st, T + 1000, &n), 0);
    assert_int_equal(n, 0);
  }
  size_t n = 0;
  assert_int_equal(s[lead].ops->rescue(s[lead].st, T + 1000, &n), 0);
  assert_int_equal(n, 1);

  /* The server ends the leader's lock connection: the lock goes with it. */
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_stat_activity a "
           "USING (pid) WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND "
           "a.application_name = '%s'",
           app);
  assert_int_equal(pgt_int(sql), 1);
  /* Another store takes over at its next try (once a second): polled for
   * up to 30 s of real time, a failure guard; nothing is timed. The old
   * leader is not asked meanwhile, as a dead process would not be (alive,
   * it would reconnect and compete for the lock like any other). */
  int next = -1;
  for (int i = 0; i < 300; i++) {
    if (leaders(s, lead, &next) == 1) break;
    next = -1;
    pgt_sleep_ms(100);
  }
  assert_true(next >= 0 && next != lead);
  /* The old leader, asked again, finds its connection gone and the lock
   * taken. */
  assert_false(jobq__pg_is_leader((pg_store *)s[lead].st));
  /* The new leader rescues; the old one does not any more. */
  char id2[JOBQ_ID_SIZE];
  abandoned_job(&s[next], id2);
  /* (the rescued first job is due again and may be claimed first: fine) */
  n = 99;
  assert_int_equal(s[lead].ops->rescue(s[lead].st, T + 2000, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(s[next].ops->rescue(s[next].st, T + 2000, &n), 0);
  assert_true(n >= 1);
  /* Closing the leader frees the lock for the rest. */
  s[next].ops->close(s[next].st);
  int third = -1;
  for (int i = 0; i < 300; i++) {
    int k = 0;
    for (int m = 0; m < N_STORES; m++)
      if (m != next && jobq__pg_is_leader((pg_store *)s[m].st)) {
        k++;
        third = m;
      }
    if (k == 1) break;
    third = -1;
    pgt_sleep_ms(100);
  }
  assert_true(third >= 0 && third != next);
  for (int i = 0; i < N_STORES; i++)
    if (i != next) s[i].ops->close(s[i].st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_one_leader_rescues_and_another_takes_over),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
