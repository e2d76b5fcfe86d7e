/* A queue on a read-only connection (what a streaming replica is to
 * libjobq, simulated with default_transaction_read_only): jobq_open of a
 * schema at its version writes nothing and succeeds, reads work, writes
 * fail with a sentence and store nothing; a schema that does not exist yet
 * is refused there. jobq-test-requires: postgres */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pgtest.h"

#include "jobq.h"
#include "jobq/postgres.h"

#define RO "&options=-c%20default_transaction_read_only%3Don"

static int open_url(const char *url, jobq_t **q) {
  assert_int_equal(jobq_postgres_register(), 0);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  *q = NULL;
  int rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc;
}

static void test_read_only_queue(void **state) {
  (void)state;
  pgt_need_server();
  char schema[64], url[700], ro[800];
  pgt_schema("ro", schema, sizeof schema, url, sizeof url);
  jobq_t *q = NULL, *r = NULL;
  assert_int_equal(open_url(url, &q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "{\"a\":1}", NULL, id), 0);

  snprintf(ro, sizeof ro, "%s%s", url, RO);
  int rc = open_url(ro, &r);
  if (rc) fail_msg("read-only open: %s", jobq_last_error());
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(r, id, &j), 0);
  assert_string_equal(jobq_job_payload(j), "{\"a\":1}");
  jobq_job_free(j);
  char id2[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(r, "k", "{}", NULL, id2), JOBQ_ESTORAGE);
  assert_non_null(strstr(jobq_last_error(), "read-only transaction"));
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".jobq_jobs", schema);
  assert_int_equal(pgt_int(sql), 1);
  assert_int_equal(jobq_close(r, 0), 0);
  assert_int_equal(jobq_close(q, 0), 0);

  /* A schema nobody made: refused, and not made. */
  char schema2[64], url2[700], ro2[800];
  pgt_schema("ro_none", schema2, sizeof schema2, url2, sizeof url2);
  snprintf(ro2, sizeof ro2, "%s%s", url2, RO);
  assert_int_equal(open_url(ro2, &r), JOBQ_ESTORAGE);
  assert_non_null(strstr(jobq_last_error(), "read-only"));
  snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_namespace WHERE nspname = '%s'", schema2);
  assert_int_equal(pgt_int(sql), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_read_only_queue),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
