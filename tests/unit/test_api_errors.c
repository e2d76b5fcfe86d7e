/* Error codes, per-thread error sentences, version, state and event names. */
#include "testutil.h"

#include "jobq/stages.h"
#include "util/err.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#define E(c) {c, #c}
static const struct {
  int code;
  const char *name;
} codes[] = {
  E(JOBQ_OK),        E(JOBQ_EINVAL),  E(JOBQ_ENOMEM),    E(JOBQ_ENOTFOUND), E(JOBQ_EJSON),
  E(JOBQ_ETOOBIG),   E(JOBQ_EKIND),   E(JOBQ_EEXIST),    E(JOBQ_ESTATE),    E(JOBQ_ETIMEDOUT),
  E(JOBQ_ECLOSED),   E(JOBQ_ESTORAGE), E(JOBQ_EURL),     E(JOBQ_ECANCELLED), E(JOBQ_EDEADLK),
  E(JOBQ_EBUSY),     E(JOBQ_EIO),     E(JOBQ_ECORRUPT),  E(JOBQ_EFULL),     E(JOBQ_EVERSION),
  E(JOBQ_ENOTSUP),   E(JOBQ_ECONFIG), E(JOBQ_EPROVIDER), E(JOBQ_ENETWORK),  E(JOBQ_EPATH),
  E(JOBQ_ECRON),     E(JOBQ_ETZ),     E(JOBQ_EQUOTA),    E(JOBQ_ESIGNATURE),
};
#undef E
#define NCODES (sizeof codes / sizeof codes[0])

/* The values are ABI (jobq.h: never renumbered). */
static void test_code_values(void **state) {
  (void)state;
  assert_int_equal(NCODES, 29);
  for (size_t i = 0; i < NCODES; i++) assert_int_equal(codes[i].code, -(int)i);
  assert_int_equal(JOBQ_OK, 0);
  assert_int_equal(JOBQ_ENOTFOUND, -3);
  assert_int_equal(JOBQ_ENOTSUP, -20);
  assert_int_equal(JOBQ_EPATH, -24);
  assert_int_equal(JOBQ_ECRON, -25);
  assert_int_equal(JOBQ_ETZ, -26);
  assert_int_equal(JOBQ_EQUOTA, -27);
  assert_int_equal(JOBQ_ESIGNATURE, -28);
}

static void test_err_name_every_code(void **state) {
  (void)state;
  for (size_t i = 0; i < NCODES; i++) {
    const char *n = jobq_err_name(codes[i].code);
    assert_non_null(n);
    assert_string_equal(n, codes[i].name);
    /* static storage: the same pointer each time */
    assert_ptr_equal(n, jobq_err_name(codes[i].code));
  }
}

static void test_strerror_every_code(void **state) {
  (void)state;
  const char *unknown = jobq_strerror(-12345);
  assert_non_null(unknown);
  for (size_t i = 0; i < NCODES; i++) {
    const char *t = jobq_strerror(codes[i].code);
    assert_non_null(t);
    assert_true(strlen(t) > 0);
    assert_string_not_equal(t, unknown);
    assert_string_not_equal(t, codes[i].name); /* words, not the identifier */
    assert_ptr_equal(t, jobq_strerror(codes[i].code));
    for (size_t j = 0; j < i; j++) assert_string_not_equal(t, jobq_strerror(codes[j].code));
  }
  /* the examples jobq.h and the reference give */
  assert_string_equal(jobq_strerror(JOBQ_ENOTFOUND), "no job with that id");
  assert_string_equal(jobq_strerror(JOBQ_OK), "success");
}

static void check_unknown(int code) {
  const char *t = jobq_strerror(code);
  const char *n = jobq_err_name(code);
  assert_non_null(t);
  assert_non_null(n);
  assert_true(t[0] != '\0');
  assert_true(n[0] != '\0');
  for (size_t i = 0; i < NCODES; i++) {
    assert_string_not_equal(t, jobq_strerror(codes[i].code));
    assert_string_not_equal(n, codes[i].name);
  }
}

static void test_unknown_codes(void **state) {
  (void)state;
  int unknown[] = {1, 2, 20, 100, INT_MAX, -29, -30, -100, -1000000, INT_MIN + 1};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) check_unknown(unknown[i]);
  /* docs/reference: "unknown error" and "JOBQ_EUNKNOWN" */
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(jobq_strerror(unknown[i]), "unknown error");
    assert_string_equal(jobq_err_name(unknown[i]), "JOBQ_EUNKNOWN");
  }
}

/* INT_MIN: -code overflows in lib/util/err.c (undefined behaviour; UBSan
 * stops the program). Kept last: it may abort the whole program. */
static void test_unknown_code_int_min(void **state) {
  (void)state;
  check_unknown(INT_MIN);
}

/* ---- jobq_last_error per thread ---- */

typedef struct {
  char seen_at_start[512];
  char own[512];
  int rc;
} thread_report;

static void *other_thread(void *arg) {
  thread_report *r = arg;
  snprintf(r->seen_at_start, sizeof r->seen_at_start, "%s", jobq_last_error());
  jobq_job_t *j = NULL;
  r->rc = jobq_get(NULL, "x", &j);
  snprintf(r->own, sizeof r->own, "%s", jobq_last_error());
  return NULL;
}

static void test_last_error_is_per_thread(void **state) {
  (void)state;
  char id[JOBQ_ID_SIZE];
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(NULL, "k", NULL, NULL, id));
  char mine[512];
  snprintf(mine, sizeof mine, "%s", jobq_last_error());
  assert_non_null(strstr(mine, "jobq_submit"));
  assert_non_null(strstr(mine, "q is NULL"));

  thread_report r;
  memset(&r, 0, sizeof r);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, &r), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  /* A new thread starts with no error, not with this thread's. */
  assert_string_equal(r.seen_at_start, "");
  assert_int_equal(r.rc, JOBQ_EINVAL);
  assert_non_null(strstr(r.own, "jobq_get"));
  /* Its error did not reach this thread. */
  assert_string_equal(jobq_last_error(), mine);
}

typedef struct {
  int idx;
  pthread_barrier_t *bar;
  int bad;
} hammer_arg;

static void *hammer(void *p) {
  hammer_arg *a = p;
  char expect[64];
  snprintf(expect, sizeof expect, "thread-%d", a->idx);
  pthread_barrier_wait(a->bar);
  for (int i = 0; i < 20000; i++) {
    jobq_storage_set_error(expect);
    if (strcmp(jobq_last_error(), expect) != 0) a->bad++;
    /* a real failing call in between, then ours again */
    if (jobq_filter_set_limit(NULL, 1) != JOBQ_EINVAL) a->bad++;
    if (strstr(jobq_last_error(), "jobq_filter_set_limit") == NULL) a->bad++;
  }
  return NULL;
}

static void test_last_error_threads_concurrently(void **state) {
  (void)state;
  enum { N = 4 };
  pthread_t t[N];
  hammer_arg a[N];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, N);
  for (int i = 0; i < N; i++) {
    a[i].idx = i;
    a[i].bar = &bar;
    a[i].bad = 0;
    assert_int_equal(pthread_create(&t[i], NULL, hammer, &a[i]), 0);
  }
  for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&bar);
  for (int i = 0; i < N; i++) assert_int_equal(a[i].bad, 0);
}

static void test_last_error_set_and_truncated(void **state) {
  (void)state;
  jobq_storage_set_error("hello");
  assert_string_equal(jobq_last_error(), "hello");
  jobq_storage_set_error(NULL);
  assert_string_equal(jobq_last_error(), "");
  char *big = tapi_repeat('z', 5000);
  jobq_storage_set_error(big);
  size_t n = strlen(jobq_last_error());
  assert_true(n > 0 && n < 5000);
  assert_memory_equal(jobq_last_error(), big, n);
  free(big);
}

/* ---- sentences that carry another's as their cause ---- */

static void test_err_prefix_keeps_the_cause(void **state) {
  (void)state;
  jobq__err(JOBQ_EIO, "cannot create directory '/x': Permission denied");
  assert_int_equal(jobq__err_prefix(JOBQ_ECONFIG, NULL, "%s provider '%s': ", "upload", "local"),
                   JOBQ_ECONFIG);
  assert_string_equal(jobq_last_error(),
                      "upload provider 'local': cannot create directory '/x': Permission denied");

  /* The cause may fill the whole sentence: its start stays intact. */
  char *big = tapi_repeat('c', 600);
  jobq_storage_set_error(big);
  jobq__err_prefix(JOBQ_EIO, NULL, "outer: ");
  const char *e = jobq_last_error();
  assert_memory_equal(e, "outer: ccc", 10);
  assert_int_equal(strspn(e + 7, "c"), strlen(e) - 7);
  free(big);

  /* An argument may be the sentence itself. */
  jobq__err(JOBQ_EIO, "inner");
  jobq__err_prefix(JOBQ_EIO, NULL, "[%s] ", jobq_last_error());
  assert_string_equal(jobq_last_error(), "[inner] inner");

  /* strip: the inner function's name gives way to the outer one's. */
  jobq__err(JOBQ_EKIND, "jobq_register: kind is empty");
  jobq__err_prefix(JOBQ_EKIND, "jobq_register", "jobq_register_pipeline: ");
  assert_string_equal(jobq_last_error(), "jobq_register_pipeline: kind is empty");
  /* only a whole name followed by ": " */
  jobq__err(JOBQ_EKIND, "jobq_register_x: kind is empty");
  jobq__err_prefix(JOBQ_EKIND, "jobq_register", "f: ");
  assert_string_equal(jobq_last_error(), "f: jobq_register_x: kind is empty");

  /* No cause: the code's sentence. */
  jobq_storage_set_error("");
  jobq__err_prefix(JOBQ_ENOMEM, NULL, "f: ");
  assert_string_equal(jobq_last_error(), "f: out of memory");
}

/* A built-in stage's configuration error names the function, the provider
 * and the original cause, intact. */
static void test_upload_local_dir_error_keeps_the_cause(void **state) {
  (void)state;
  char file[] = "/tmp/jobq-upload-XXXXXX";
  int fd = mkstemp(file);
  assert_true(fd >= 0);
  close(fd);
  char cfg[256], want[512];
  snprintf(cfg, sizeof cfg, "{\"provider\": \"local\", \"dir\": \"%s/sub\"}", file);
  snprintf(want, sizeof want,
           "jobq_pipeline_add_builtin: upload provider 'local': cannot create directory "
           "'%s/sub': %s",
           file, strerror(ENOTDIR));
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_non_null(p);
  TAPI_ERR(JOBQ_ECONFIG, "jobq_pipeline_add_builtin", jobq_pipeline_add_builtin(p, "upload", cfg));
  assert_string_equal(jobq_last_error(), want);
  jobq_pipeline_free(p);
  unlink(file);
}

/* ---- version ---- */

static void test_version(void **state) {
  (void)state;
  unsigned v = jobq_version();
  assert_int_equal(v, JOBQ_VERSION_HEX);
  assert_int_equal((v >> 16) & 0xff, JOBQ_VERSION_MAJOR);
  assert_int_equal((v >> 8) & 0xff, JOBQ_VERSION_MINOR);
  assert_int_equal(v & 0xff, JOBQ_VERSION_PATCH);
  const char *s = jobq_version_string();
  assert_non_null(s);
  assert_string_equal(s, JOBQ_VERSION_STRING);
  char buf[32];
  snprintf(buf, sizeof buf, "%d.%d.%d", JOBQ_VERSION_MAJOR, JOBQ_VERSION_MINOR,
           JOBQ_VERSION_PATCH);
  assert_string_equal(s, buf);
  assert_ptr_equal(s, jobq_version_string());
}

/* ---- states and event types ---- */

static void test_state_names(void **state) {
  (void)state;
  assert_string_equal(jobq_state_name(JOBQ_QUEUED), "queued");
  assert_string_equal(jobq_state_name(JOBQ_RUNNING), "running");
  assert_string_equal(jobq_state_name(JOBQ_SUCCEEDED), "succeeded");
  assert_string_equal(jobq_state_name(JOBQ_FAILED), "failed");
  assert_string_equal(jobq_state_name(JOBQ_CANCELLED), "cancelled");
  assert_int_equal(JOBQ_QUEUED, 0);
  assert_int_equal(JOBQ_CANCELLED, 4);
  int bad[] = {-1, 5, 6, 100, INT_MAX, INT_MIN, JOBQ_EINVAL};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_null(jobq_state_name(bad[i]));
}

static void test_state_is_terminal(void **state) {
  (void)state;
  assert_int_equal(jobq_state_is_terminal(JOBQ_QUEUED), 0);
  assert_int_equal(jobq_state_is_terminal(JOBQ_RUNNING), 0);
  assert_int_equal(jobq_state_is_terminal(JOBQ_SUCCEEDED), 1);
  assert_int_equal(jobq_state_is_terminal(JOBQ_FAILED), 1);
  assert_int_equal(jobq_state_is_terminal(JOBQ_CANCELLED), 1);
  int bad[] = {-1, 5, 100, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(jobq_state_is_terminal(bad[i]), 0);
}

static void test_event_type_names(void **state) {
  (void)state;
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_SUBMITTED), "submitted");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_STARTED), "started");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_PROGRESS), "progress");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_RETRYING), "retrying");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_SUCCEEDED), "succeeded");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_FAILED), "failed");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_CANCELLED), "cancelled");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_STORAGE_ERROR), "storage_error");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_STORAGE_OK), "storage_ok");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_BATCH_DONE), "batch_done");
  assert_string_equal(jobq_event_type_name(JOBQ_EVENT_WEBHOOK_FAILED), "webhook_failed");
  int bad[] = {0, -1, 12, 13, 100, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_null(jobq_event_type_name(bad[i]));
}

static void test_free_null(void **state) {
  (void)state;
  jobq_free(NULL);
  jobq_job_free(NULL);
  jobq_page_free(NULL);
  jobq_event_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_code_values),
    cmocka_unit_test(test_err_name_every_code),
    cmocka_unit_test(test_strerror_every_code),
    cmocka_unit_test(test_unknown_codes),
    cmocka_unit_test(test_last_error_is_per_thread),
    cmocka_unit_test(test_last_error_threads_concurrently),
    cmocka_unit_test(test_last_error_set_and_truncated),
    cmocka_unit_test(test_err_prefix_keeps_the_cause),
    cmocka_unit_test(test_upload_local_dir_error_keeps_the_cause),
    cmocka_unit_test(test_version),
    cmocka_unit_test(test_state_names),
    cmocka_unit_test(test_state_is_terminal),
    cmocka_unit_test(test_event_type_names),
    cmocka_unit_test(test_free_null),
    cmocka_unit_test(test_unknown_code_int_min),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
