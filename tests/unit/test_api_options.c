/* Setters of jobq_options_t, jobq_kind_opts_t, jobq_submit_opts_t and
 * jobq_filter_t: NULL handles, each range's boundaries, and that a refused
 * value leaves the object as it was (compared byte for byte, and where it
 * can be seen, through what the object then does). */
#include "testutil.h"

#include "core/internal.h" /* the option structs, to compare them whole */
#include "util/utf8.h"
#include "jobq/stages.h"

#include <limits.h>
#include <math.h>
#include <unistd.h>

/* expr must fail with want, name fn, and leave *obj unchanged. */
#define REFUSED(obj, want, fn, expr)                     \
  do {                                                   \
    unsigned char snap_[sizeof *(obj)];                  \
    memcpy(snap_, (obj), sizeof snap_);                  \
    TAPI_ERR(want, fn, expr);                            \
    assert_memory_equal(snap_, (obj), sizeof snap_);     \
  } while (0)

static const int64_t DAY = INT64_C(86400000);

/* ---- helpers ---- */

static jobq_t *open_with(jobq_options_t *o) {
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  assert_non_null(q);
  return q;
}

static void noop_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
}

static void never_called(jobq_ctx_t *ctx, void *ud) {
  (void)ctx;
  (void)ud;
  fail_msg("a handler ran in a test that never starts workers");
}

/* ======================================================================== */
/* free(NULL) and NULL handles                                              */
/* ======================================================================== */

static void test_free_null_is_harmless(void **state) {
  (void)state;
  jobq_options_free(NULL);
  jobq_kind_opts_free(NULL);
  jobq_submit_opts_free(NULL);
  jobq_filter_free(NULL);
}

static void test_null_handles(void **state) {
  (void)state;
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_storage", jobq_options_set_storage(NULL, "memory:"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_loop", jobq_options_set_loop(NULL, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_workers", jobq_options_set_workers(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_max_payload", jobq_options_set_max_payload(NULL, 100));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_event_buffer", jobq_options_set_event_buffer(NULL, 10));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_shared_events", jobq_options_set_shared_events(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_clock", jobq_options_set_clock(NULL, tapi_clock_fn, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_options_set_random", jobq_options_set_random(NULL, NULL, NULL));

  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_concurrency", jobq_kind_opts_set_concurrency(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_max_attempts", jobq_kind_opts_set_max_attempts(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_backoff", jobq_kind_opts_set_backoff(NULL, 1, 2, 0.1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_timeout", jobq_kind_opts_set_timeout(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_on_loop", jobq_kind_opts_set_on_loop(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_retention", jobq_kind_opts_set_retention(NULL, 1000));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_keep_per_owner", jobq_kind_opts_set_keep_per_owner(NULL, 1));

  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_set_owner", jobq_submit_opts_set_owner(NULL, "a"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_set_priority", jobq_submit_opts_set_priority(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_set_run_at", jobq_submit_opts_set_run_at(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_set_delay", jobq_submit_opts_set_delay(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_set_max_attempts", jobq_submit_opts_set_max_attempts(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_set_dedupe", jobq_submit_opts_set_dedupe(NULL, "k", 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_opts_set_force", jobq_submit_opts_set_force(NULL, 1));

  TAPI_ERR(JOBQ_EINVAL, "jobq_filter_set_owner", jobq_filter_set_owner(NULL, "a"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_filter_set_kind", jobq_filter_set_kind(NULL, "a"));
  TAPI_ERR(JOBQ_EINVAL, "jobq_filter_set_state", jobq_filter_set_state(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_filter_set_limit", jobq_filter_set_limit(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_filter_set_newest_first", jobq_filter_set_newest_first(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_filter_set_cursor", jobq_filter_set_cursor(NULL, NULL));

  TAPI_ERR(JOBQ_EINVAL, "jobq_open", jobq_open(NULL, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_now", jobq_now(NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_close", jobq_close(NULL, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_start", jobq_start(NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_register", jobq_register(NULL, "k", noop_handler, NULL, NULL));
}

/* ======================================================================== */
/* jobq_options_t                                                           */
/* ======================================================================== */

static void test_options_storage(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_storage", jobq_options_set_storage(o, NULL));
  REFUSED(o, JOBQ_EURL, "jobq_options_set_storage", jobq_options_set_storage(o, "noscheme"));
  REFUSED(o, JOBQ_EURL, "jobq_options_set_storage", jobq_options_set_storage(o, ""));
  REFUSED(o, JOBQ_EURL, "jobq_options_set_storage", jobq_options_set_storage(o, ":memory"));
  TAPI_OK(jobq_options_set_storage(o, "memory:"));
  REFUSED(o, JOBQ_EURL, "jobq_options_set_storage", jobq_options_set_storage(o, "noscheme"));
  /* still "memory:": opens */
  jobq_t *q = open_with(o);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  tapi_close(q);

  /* an unknown scheme passes the setter, and a refused value after it does
   * not replace it: jobq_open still sees "nosuch:" */
  TAPI_OK(jobq_options_set_storage(o, "nosuch:x"));
  REFUSED(o, JOBQ_EURL, "jobq_options_set_storage", jobq_options_set_storage(o, "noscheme"));
  jobq_t *sentinel = (jobq_t *)&q;
  q = sentinel;
  jobq_storage_set_error("");
  assert_int_equal(jobq_open(&q, o), JOBQ_EURL);
  assert_true(jobq_last_error()[0] != '\0');
  assert_non_null(strstr(jobq_last_error(), "nosuch"));
  assert_ptr_equal(q, sentinel); /* nothing written on error */

  /* the memory backend takes no path */
  TAPI_OK(jobq_options_set_storage(o, "memory:foo"));
  jobq_storage_set_error("");
  assert_int_equal(jobq_open(&q, o), JOBQ_EURL);
  assert_true(jobq_last_error()[0] != '\0');
  assert_ptr_equal(q, sentinel);
  jobq_options_free(o);
}

/* The sentences docs/reference/jobq_open.md documents for URL errors. */
static void test_open_url_error_sentences(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  jobq_t *q = NULL;
  TAPI_OK(jobq_options_set_storage(o, "nosuch:x"));
  TAPI_ERR(JOBQ_EURL, "unknown scheme 'nosuch'", jobq_open(&q, o));
  TAPI_ERR_HAS("nosuch:x");
  TAPI_OK(jobq_options_set_storage(o, "memory:foo"));
  TAPI_ERR(JOBQ_EURL, "'memory:foo' takes no path or options", jobq_open(&q, o));
  assert_null(q);
  /* "memory://" is the other spelling of "memory:" */
  TAPI_OK(jobq_options_set_storage(o, "memory://"));
  TAPI_OK(jobq_open(&q, o));
  tapi_close(q);
  jobq_options_free(o);
}

static void test_open_defaults_and_copy(void **state) {
  (void)state;
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, NULL)); /* memory, 4 workers */
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "{}", NULL, id));
  assert_int_equal(tapi_state(q, id), JOBQ_QUEUED);
  tapi_close(q);

  /* opts are copied: freeing them right after open changes nothing */
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 424242);
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, &clk));
  TAPI_OK(jobq_options_set_max_payload(o, 8));
  TAPI_OK(jobq_options_set_workers(o, 0));
  q = open_with(o);
  jobq_options_free(o);
  assert_int_equal(jobq_now(q), 424242);
  TAPI_ERR(JOBQ_ETOOBIG, "jobq_submit", jobq_submit(q, "k", "\"1234567\"", NULL, id));
  TAPI_OK(jobq_submit(q, "k", "\"123456\"", NULL, id));
  tapi_close(q);
}

static void test_options_workers(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_workers(o, 0));
  TAPI_OK(jobq_options_set_workers(o, 1024));
  TAPI_OK(jobq_options_set_workers(o, 1));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_workers", jobq_options_set_workers(o, -1));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_workers", jobq_options_set_workers(o, 1025));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_workers", jobq_options_set_workers(o, INT_MIN));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_workers", jobq_options_set_workers(o, INT_MAX));
  /* 1 worker: a started queue runs a job */
  jobq_t *q = open_with(o);
  TAPI_OK(jobq_register(q, "k", noop_handler, NULL, NULL));
  TAPI_OK(jobq_start(q));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_job_t *j = NULL;
  int rc = 0;
  for (int i = 0; i < 100; i++) { /* up to 10 s */
    jobq_job_free(j);
    j = NULL;
    rc = jobq_wait(q, id, 100, &j);
    if (rc == 0 && jobq_state_is_terminal(jobq_job_state(j))) break;
  }
  assert_non_null(j);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  tapi_close(q);
  /* 0 workers: started, but nothing claims */
  TAPI_OK(jobq_options_set_workers(o, 0));
  q = open_with(o);
  TAPI_OK(jobq_register(q, "k", never_called, NULL, NULL));
  TAPI_OK(jobq_start(q));
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  j = NULL;
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_wait", jobq_wait(q, id, 100, &j));
  assert_non_null(j);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  jobq_job_free(j);
  tapi_close(q);
  jobq_options_free(o);
}

static void test_options_max_payload(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_max_payload(o, 2));
  TAPI_OK(jobq_options_set_max_payload(o, (size_t)1 << 30));
  TAPI_OK(jobq_options_set_max_payload(o, 10));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_max_payload", jobq_options_set_max_payload(o, 0));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_max_payload", jobq_options_set_max_payload(o, 1));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_max_payload",
          jobq_options_set_max_payload(o, ((size_t)1 << 30) + 1));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_max_payload", jobq_options_set_max_payload(o, SIZE_MAX));
  TAPI_OK(jobq_options_set_workers(o, 0));
  jobq_t *q = open_with(o);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "\"12345678\"", NULL, id)); /* 10 bytes */
  TAPI_ERR(JOBQ_ETOOBIG, "jobq_submit", jobq_submit(q, "k", "\"123456789\"", NULL, id));
  /* the limit covers results too */
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_ERR(JOBQ_ETOOBIG, "jobq_ctx_succeed", jobq_ctx_succeed(ctx, "[1,2,3,4,5]")); /* 11 */
  TAPI_OK(jobq_ctx_succeed(ctx, "[1,2,3,4 ]")); /* 10 */
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_result(j), "[1,2,3,4 ]");
  jobq_job_free(j);
  tapi_close(q);
  jobq_options_free(o);
}

static void test_options_event_buffer(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_event_buffer(o, 1));
  TAPI_OK(jobq_options_set_event_buffer(o, 1 << 24));
  TAPI_OK(jobq_options_set_event_buffer(o, 2));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_event_buffer", jobq_options_set_event_buffer(o, 0));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_event_buffer", jobq_options_set_event_buffer(o, -1));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_event_buffer",
          jobq_options_set_event_buffer(o, (1 << 24) + 1));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_event_buffer", jobq_options_set_event_buffer(o, INT_MIN));
  TAPI_OK(jobq_options_set_workers(o, 0));
  /* buffering from jobq_open, 2 events kept */
  jobq_t *q = open_with(o);
  char id[3][JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) TAPI_OK(jobq_submit(q, "k", NULL, NULL, id[i]));
  jobq_event_t *ev = NULL;
  TAPI_OK(jobq_next_event(q, 10000, &ev));
  assert_int_equal(jobq_event_type(ev), JOBQ_EVENT_SUBMITTED);
  assert_string_equal(jobq_event_job_id(ev), id[1]);
  assert_int_equal(jobq_event_dropped(ev), 1);
  jobq_event_free(ev);
  TAPI_OK(jobq_next_event(q, 10000, &ev));
  assert_string_equal(jobq_event_job_id(ev), id[2]);
  assert_int_equal(jobq_event_dropped(ev), 0);
  jobq_event_free(ev);
  ev = NULL;
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_next_event", jobq_next_event(q, 0, &ev));
  assert_null(ev);
  tapi_close(q);
  jobq_options_free(o);

  /* without the option, buffering starts at the first jobq_next_event */
  q = tapi_open(NULL, 0);
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id[0]));
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_next_event", jobq_next_event(q, 0, &ev));
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id[1]));
  TAPI_OK(jobq_next_event(q, 10000, &ev));
  assert_string_equal(jobq_event_job_id(ev), id[1]);
  jobq_event_free(ev);
  tapi_close(q);
}

static void test_options_shared_events(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  TAPI_OK(jobq_options_set_shared_events(o, 1));
  TAPI_OK(jobq_options_set_shared_events(o, 0));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_shared_events", jobq_options_set_shared_events(o, 2));
  TAPI_ERR_HAS("2 is not 0 or 1");
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_shared_events", jobq_options_set_shared_events(o, -1));
  REFUSED(o, JOBQ_EINVAL, "jobq_options_set_shared_events",
          jobq_options_set_shared_events(o, INT_MIN));

  /* memory: no other processes to hear; jobq_open says so and opens nothing */
  TAPI_OK(jobq_options_set_shared_events(o, 1));
  TAPI_OK(jobq_options_set_workers(o, 0));
  jobq_t *q = (jobq_t *)&q; /* not written on error */
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_open", jobq_open(&q, o));
  TAPI_ERR_HAS("memory backend does not pass on other processes' events");
  assert_ptr_equal(q, (jobq_t *)&q);

  /* sqlite: opens, and the pull buffer runs from jobq_open */
  char dir[] = "/tmp/jobq-shared-XXXXXX", url[128], path[128];
  assert_non_null(mkdtemp(dir));
  snprintf(url, sizeof url, "sqlite:%s/q.db", dir);
  TAPI_OK(jobq_options_set_storage(o, url));
  q = open_with(o);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_event_t *ev = NULL;
  TAPI_OK(jobq_next_event(q, 10000, &ev));
  assert_int_equal(jobq_event_type(ev), JOBQ_EVENT_SUBMITTED);
  assert_string_equal(jobq_event_job_id(ev), id);
  jobq_event_free(ev);
  tapi_close(q);
  jobq_options_free(o);
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/q.db%s", dir, sfx[i]);
    unlink(path);
  }
  snprintf(path, sizeof path, "%s/q.db-work", dir);
  rmdir(path);
  rmdir(dir);
}

/* Every string an option object stores must be valid UTF-8: refused with
 * JOBQ_EINVAL, a sentence naming the setter and the argument, and the
 * object unchanged. */
static void test_utf8_option_strings(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  jobq_filter_t *f = jobq_filter_new();
  assert_non_null(o);
  assert_non_null(f);
  TAPI_OK(jobq_options_set_storage(o, "memory:"));
  TAPI_OK(jobq_options_set_workdir(o, "/tmp/w"));
  TAPI_OK(jobq_filter_set_owner(f, "bob"));
  for (size_t i = 0; i < TAPI_N_BAD_UTF8; i++) {
    const char *bad = tapi_bad_utf8[i].s;
    char url[64], dir[64];
    snprintf(url, sizeof url, "sqlite:/tmp/%s.db", bad);
    snprintf(dir, sizeof dir, "/tmp/%s", bad);
    REFUSED(o, JOBQ_EINVAL, "jobq_options_set_storage", jobq_options_set_storage(o, url));
    TAPI_ERR_HAS("url is not valid UTF-8");
    REFUSED(o, JOBQ_EINVAL, "jobq_options_set_workdir", jobq_options_set_workdir(o, dir));
    TAPI_ERR_HAS("dir is not valid UTF-8");
    REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_owner", jobq_filter_set_owner(f, bad));
    TAPI_ERR_HAS("owner is not valid UTF-8");
  }
  assert_string_equal(o->storage_url, "memory:");
  assert_string_equal(o->workdir, "/tmp/w");
  assert_string_equal(f->owner, "bob");
  /* A cursor is a job id: 36 characters of hex digits and dashes. */
  char cur[JOBQ_ID_SIZE];
  memcpy(cur, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", JOBQ_ID_SIZE);
  TAPI_OK(jobq_filter_set_cursor(f, cur));
  cur[5] = (char)0xc3; /* same length, not an id (nor valid UTF-8) */
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_cursor", jobq_filter_set_cursor(f, cur));
  assert_non_null(f->cursor);
  assert_int_equal(jobq__utf8_bad_at(jobq_last_error(), strlen(jobq_last_error())),
                   strlen(jobq_last_error())); /* the sentence quoting it is UTF-8 */
  memcpy(cur, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g", JOBQ_ID_SIZE);
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_cursor", jobq_filter_set_cursor(f, cur));
  jobq_filter_free(f);
  jobq_options_free(o);

  /* A pipeline stage's step text. */
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_non_null(p);
  TAPI_OK(jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"template\"}"));
  TAPI_OK(jobq_pipeline_set_progress(p, "script", 10, 20, "\xc3\x89" "criture..."));
  for (size_t i = 0; i < TAPI_N_BAD_UTF8; i++)
    TAPI_ERR_UTF8("jobq_pipeline_set_progress", "step",
                  jobq_pipeline_set_progress(p, "script", 30, 40, tapi_bad_utf8[i].s));
  jobq_pipeline_free(p);
}

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_options_clock(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 12345);
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_workers(o, 0));
  TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, &clk));
  jobq_t *q = open_with(o);
  assert_int_equal(jobq_now(q), 12345);
  tapi_clock_set(&clk, 99999);
  assert_int_equal(jobq_now(q), 99999);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_created_at(j), 99999);
  assert_int_equal(jobq_job_run_at(j), 99999);
  jobq_job_free(j);
  tapi_close(q);
  /* NULL restores the real clock */
  TAPI_OK(jobq_options_set_clock(o, NULL, NULL));
  q = open_with(o);
  int64_t before = real_ms();
  int64_t now = jobq_now(q);
  int64_t after = real_ms();
  assert_true(now >= before && now <= after);
  tapi_close(q);
  jobq_options_free(o);
}

static double half(void *ud) {
  (*(int *)ud)++;
  return 0.5;
}

static void test_options_random(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 10000);
  int calls = 0;
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_workers(o, 0));
  TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, &clk));
  TAPI_OK(jobq_options_set_random(o, half, &calls));
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_backoff(ko, 1000, 300000, 0.5));
  jobq_t *q = open_with(o);
  TAPI_OK(jobq_register(q, "k", never_called, NULL, ko));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_fail(ctx, "boom", 1));
  assert_true(calls >= 1);
  /* 1000 less 0.5 * 0.5 of it */
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_run_at(j), 10000 + 750);
  jobq_job_free(j);
  tapi_close(q);

  /* NULL restores the library's own randomness: 500..1000 ms */
  TAPI_OK(jobq_options_set_random(o, NULL, NULL));
  q = open_with(o);
  TAPI_OK(jobq_register(q, "k", never_called, NULL, ko));
  int before = calls;
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_fail(ctx, "boom", 1));
  assert_int_equal(calls, before);
  TAPI_OK(jobq_get(q, id, &j));
  assert_true(jobq_job_run_at(j) >= 10000 + 500 && jobq_job_run_at(j) <= 10000 + 1000);
  jobq_job_free(j);
  tapi_close(q);
  jobq_kind_opts_free(ko);
  jobq_options_free(o);
}

static void test_options_lease(void **state) {
  (void)state;
  const char *fn = "jobq_options_set_lease";
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_options_set_lease(NULL, 30000));
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_lease(o, 100));
  TAPI_OK(jobq_options_set_lease(o, DAY));
  TAPI_OK(jobq_options_set_lease(o, 5000));
  REFUSED(o, JOBQ_EINVAL, fn, jobq_options_set_lease(o, 99));
  REFUSED(o, JOBQ_EINVAL, fn, jobq_options_set_lease(o, DAY + 1));
  REFUSED(o, JOBQ_EINVAL, fn, jobq_options_set_lease(o, 0));
  REFUSED(o, JOBQ_EINVAL, fn, jobq_options_set_lease(o, -1));
  REFUSED(o, JOBQ_EINVAL, fn, jobq_options_set_lease(o, INT64_MIN));
  jobq_t *q = open_with(o);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  tapi_close(q);
  jobq_options_free(o);
}

static void test_options_loop(void **state) {
  (void)state;
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_loop(o, NULL));
  jobq_options_free(o);
}

/* ======================================================================== */
/* jobq_kind_opts_t                                                         */
/* ======================================================================== */

static void test_kind_concurrency(void **state) {
  (void)state;
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_non_null(ko);
  TAPI_OK(jobq_kind_opts_set_concurrency(ko, 0));
  TAPI_OK(jobq_kind_opts_set_concurrency(ko, 1000000));
  TAPI_OK(jobq_kind_opts_set_concurrency(ko, 1));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_concurrency", jobq_kind_opts_set_concurrency(ko, -1));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_concurrency",
          jobq_kind_opts_set_concurrency(ko, INT_MIN));
  /* still 1: a second claim finds the kind full */
  jobq_t *q = tapi_open(NULL, 0);
  TAPI_OK(jobq_register(q, "lim", never_called, NULL, ko));
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "lim", NULL, NULL, a));
  TAPI_OK(jobq_submit(q, "lim", NULL, NULL, b));
  jobq_ctx_t *c1 = tapi_claim(q, "lim");
  assert_string_equal(jobq_ctx_id(c1), a);
  jobq_ctx_t *c2 = NULL;
  const char *kinds[] = {"lim", NULL};
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_claim", jobq_claim(q, kinds, 0, &c2));
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_claim", jobq_claim(q, NULL, 0, &c2));
  assert_null(c2);
  TAPI_OK(jobq_ctx_succeed(c1, NULL));
  c2 = tapi_claim(q, "lim");
  assert_string_equal(jobq_ctx_id(c2), b);
  TAPI_OK(jobq_ctx_succeed(c2, NULL));
  tapi_close(q);
  jobq_kind_opts_free(ko);
}

static void test_kind_max_attempts(void **state) {
  (void)state;
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_max_attempts(ko, 1));
  TAPI_OK(jobq_kind_opts_set_max_attempts(ko, 1000));
  TAPI_OK(jobq_kind_opts_set_max_attempts(ko, 2));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_max_attempts", jobq_kind_opts_set_max_attempts(ko, 0));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_max_attempts",
          jobq_kind_opts_set_max_attempts(ko, 1001));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_max_attempts", jobq_kind_opts_set_max_attempts(ko, -1));
  TAPI_OK(jobq_kind_opts_set_backoff(ko, 0, 0, 0.0)); /* retries are due at once */
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 5000);
  jobq_t *q = tapi_open(&clk, 0);
  TAPI_OK(jobq_register(q, "two", never_called, NULL, ko));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "two", NULL, NULL, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_max_attempts(j), 2);
  jobq_job_free(j);
  jobq_ctx_t *ctx = tapi_claim(q, "two");
  assert_int_equal(jobq_ctx_attempt(ctx), 1);
  TAPI_OK(jobq_ctx_fail(ctx, "first", 1));
  assert_int_equal(tapi_state(q, id), JOBQ_QUEUED);
  ctx = tapi_claim(q, "two");
  assert_int_equal(jobq_ctx_attempt(ctx), 2);
  TAPI_OK(jobq_ctx_fail(ctx, "second", 1));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED); /* 2 attempts were all */
  assert_int_equal(jobq_job_attempts(j), 2);
  assert_string_equal(jobq_job_error(j), "second");
  jobq_job_free(j);
  tapi_close(q);
  jobq_kind_opts_free(ko);
}

static void test_kind_backoff(void **state) {
  (void)state;
  const int64_t YEAR = 365 * DAY;
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_backoff(ko, 0, 0, 0.0));
  TAPI_OK(jobq_kind_opts_set_backoff(ko, 1000, YEAR, 1.0));
  TAPI_OK(jobq_kind_opts_set_backoff(ko, 5, 5, 0.5));
  TAPI_OK(jobq_kind_opts_set_backoff(ko, 100, 250, 0.0));
  const char *fn = "jobq_kind_opts_set_backoff";
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, -1, 250, 0.0));
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, 1000, 999, 0.0));
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, 1000, YEAR + 1, 0.0));
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, 100, 250, -0.01));
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, 100, 250, 1.01));
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, 100, 250, NAN));
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, 100, 250, INFINITY));
  REFUSED(ko, JOBQ_EINVAL, fn, jobq_kind_opts_set_backoff(ko, INT64_MIN, INT64_MAX, 0.0));
  TAPI_OK(jobq_kind_opts_set_max_attempts(ko, 10));
  /* still (100, 250, 0): delays 100, 200, 250, 250 */
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 100000);
  jobq_t *q = tapi_open(&clk, 0);
  TAPI_OK(jobq_register(q, "b", never_called, NULL, ko));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "b", NULL, NULL, id));
  int64_t expect[] = {100, 200, 250, 250};
  for (int i = 0; i < 4; i++) {
    jobq_ctx_t *ctx = tapi_claim(q, "b");
    assert_int_equal(jobq_ctx_attempt(ctx), i + 1);
    int64_t t = jobq_now(q);
    TAPI_OK(jobq_ctx_fail(ctx, "again", 1));
    jobq_job_t *j = NULL;
    TAPI_OK(jobq_get(q, id, &j));
    assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
    assert_int_equal(jobq_job_run_at(j), t + expect[i]);
    jobq_job_free(j);
    tapi_clock_set(&clk, t + expect[i] - 1);
    jobq_ctx_t *none = NULL;
    TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_claim", jobq_claim(q, NULL, 0, &none));
    tapi_clock_set(&clk, t + expect[i]);
  }
  jobq_ctx_t *ctx = tapi_claim(q, "b");
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  tapi_close(q);
  jobq_kind_opts_free(ko);
}


/* Retention: the defaults, the edges, bad values refused with nothing
 * written, and a backend without prune_kind refuses an explicit retention
 * at jobq_register (the default is then not applied). */
extern const jobq_storage_ops jobq__memory_ops;
static int noprune_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}

static void test_kind_retention(void **state) {
  (void)state;
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_int_equal(ko->retention_ms, 86400000);
  assert_int_equal(ko->keep_per_owner, 0);
  TAPI_OK(jobq_kind_opts_set_retention(ko, 1000));
  TAPI_OK(jobq_kind_opts_set_retention(ko, INT64_C(3650) * DAY));
  TAPI_OK(jobq_kind_opts_set_retention(ko, 0));
  TAPI_OK(jobq_kind_opts_set_retention(ko, 3600000));
  static const int64_t bad_ms[] = {-1, 1, 999, INT64_C(3650) * 86400000 + 1, INT64_MIN, INT64_MAX};
  for (size_t i = 0; i < sizeof bad_ms / sizeof bad_ms[0]; i++)
    REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_retention", jobq_kind_opts_set_retention(ko, bad_ms[i]));
  assert_int_equal(ko->retention_ms, 3600000);
  TAPI_OK(jobq_kind_opts_set_keep_per_owner(ko, 100000));
  TAPI_OK(jobq_kind_opts_set_keep_per_owner(ko, 0));
  TAPI_OK(jobq_kind_opts_set_keep_per_owner(ko, 10));
  static const int bad_n[] = {-1, 100001, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++)
    REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_keep_per_owner",
            jobq_kind_opts_set_keep_per_owner(ko, bad_n[i]));
  assert_int_equal(ko->keep_per_owner, 10);
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_retention", jobq_kind_opts_set_retention(NULL, 1000));
  TAPI_ERR(JOBQ_EINVAL, "jobq_kind_opts_set_keep_per_owner",
           jobq_kind_opts_set_keep_per_owner(NULL, 1));

  static jobq_storage_ops noprune;
  noprune = jobq__memory_ops;
  noprune.scheme = "noprune";
  noprune.open = noprune_open;
  noprune.prune_kind = NULL;
  TAPI_OK(jobq_storage_register(&noprune));
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "noprune:"));
  jobq_t *q = open_with(o);
  jobq_options_free(o);
  TAPI_ERR(JOBQ_ENOTSUP, "jobq_register", jobq_register(q, "r", never_called, NULL, ko));
  assert_non_null(strstr(jobq_last_error(), "cannot prune jobs by kind"));
  jobq_kind_opts_t *dflt = jobq_kind_opts_new();
  TAPI_OK(jobq_register(q, "d", never_called, NULL, dflt)); /* default: not applied */
  TAPI_OK(jobq_register(q, "n", never_called, NULL, NULL));
  TAPI_OK(jobq_kind_opts_set_retention(dflt, 0));
  TAPI_OK(jobq_register(q, "z", never_called, NULL, dflt)); /* 0: nothing to apply */
  TAPI_OK(jobq_start(q));
  tapi_close(q);
  jobq_kind_opts_free(dflt);
  jobq_kind_opts_free(ko);
}

static void test_kind_timeout(void **state) {
  (void)state;
  const int64_t YEAR = 365 * DAY;
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_timeout(ko, 0));
  TAPI_OK(jobq_kind_opts_set_timeout(ko, YEAR));
  TAPI_OK(jobq_kind_opts_set_timeout(ko, 30));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_timeout", jobq_kind_opts_set_timeout(ko, -1));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_timeout", jobq_kind_opts_set_timeout(ko, YEAR + 1));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_timeout", jobq_kind_opts_set_timeout(ko, INT64_MIN));
  /* still 30 ms: a claimed attempt times out (real clock; 10 s guard) */
  jobq_t *q = tapi_open(NULL, 0);
  TAPI_OK(jobq_register(q, "slow", never_called, NULL, ko));
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "slow", NULL, NULL, id));
  jobq_ctx_t *ctx = tapi_claim(q, "slow");
  for (int i = 0; i < 1000 && !jobq_ctx_cancelled(ctx); i++) {
    jobq_job_t *j = NULL;
    int rc = jobq_wait(q, id, 10, &j);
    assert_true(rc == 0 || rc == JOBQ_ETIMEDOUT);
    jobq_job_free(j);
  }
  assert_int_equal(jobq_ctx_cancelled(ctx), 1);
  /* the attempt ended retryable: queued again with the attempt's error */
  jobq_job_t *j = NULL;
  for (int i = 0; i < 1000; i++) {
    TAPI_OK(jobq_get(q, id, &j));
    if (jobq_job_state(j) == JOBQ_QUEUED) break;
    jobq_job_free(j);
    j = NULL;
    jobq_wait(q, id, 10, &j);
    jobq_job_free(j);
    j = NULL;
  }
  assert_non_null(j);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_non_null(jobq_job_attempt_error(j, 0));
  assert_non_null(strstr(jobq_job_attempt_error(j, 0), "timed out"));
  jobq_job_free(j);
  TAPI_ERR(JOBQ_ESTATE, "jobq_ctx_succeed", jobq_ctx_succeed(ctx, NULL));
  tapi_close(q);
  jobq_kind_opts_free(ko);
}

static void test_kind_on_loop(void **state) {
  (void)state;
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  TAPI_OK(jobq_kind_opts_set_on_loop(ko, 1));
  TAPI_OK(jobq_kind_opts_set_on_loop(ko, 0));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_on_loop", jobq_kind_opts_set_on_loop(ko, 2));
  REFUSED(ko, JOBQ_EINVAL, "jobq_kind_opts_set_on_loop", jobq_kind_opts_set_on_loop(ko, -1));
  jobq_kind_opts_free(ko);
}

/* ======================================================================== */
/* jobq_submit_opts_t                                                       */
/* ======================================================================== */

static void test_submit_owner(void **state) {
  (void)state;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  char *s256 = tapi_repeat('o', 256), *s257 = tapi_repeat('o', 257);
  TAPI_OK(jobq_submit_opts_set_owner(so, s256));
  TAPI_OK(jobq_submit_opts_set_owner(so, "alice"));
  const char *fn = "jobq_submit_opts_set_owner";
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_owner(so, ""));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_owner(so, s257));
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_owner(j), "alice");
  jobq_job_free(j);
  TAPI_OK(jobq_submit_opts_set_owner(so, s256));
  TAPI_OK(jobq_submit(q, "k", NULL, so, id));
  TAPI_OK(jobq_get(q, id, &j));
  assert_string_equal(jobq_job_owner(j), s256);
  jobq_job_free(j);
  TAPI_OK(jobq_submit_opts_set_owner(so, NULL)); /* clears */
  TAPI_OK(jobq_submit(q, "k", NULL, so, id));
  TAPI_OK(jobq_get(q, id, &j));
  assert_null(jobq_job_owner(j));
  jobq_job_free(j);
  tapi_close(q);
  free(s256);
  free(s257);
  jobq_submit_opts_free(so);
}

static void test_submit_priority(void **state) {
  (void)state;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  const char *fn = "jobq_submit_opts_set_priority";
  TAPI_OK(jobq_submit_opts_set_priority(so, -1000));
  TAPI_OK(jobq_submit_opts_set_priority(so, 1000));
  TAPI_OK(jobq_submit_opts_set_priority(so, 7));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_priority(so, -1001));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_priority(so, 1001));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_priority(so, INT_MIN));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_priority(so, INT_MAX));
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_priority(j), 7);
  jobq_job_free(j);
  int ends[] = {-1000, 1000};
  for (int i = 0; i < 2; i++) {
    TAPI_OK(jobq_submit_opts_set_priority(so, ends[i]));
    TAPI_OK(jobq_submit(q, "k", NULL, so, id));
    TAPI_OK(jobq_get(q, id, &j));
    assert_int_equal(jobq_job_priority(j), ends[i]);
    jobq_job_free(j);
  }
  tapi_close(q);
  jobq_submit_opts_free(so);
}

static void test_submit_run_at_and_delay(void **state) {
  (void)state;
  const char *fr = "jobq_submit_opts_set_run_at", *fd = "jobq_submit_opts_set_delay";
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_run_at(so, 0));
  TAPI_OK(jobq_submit_opts_set_run_at(so, INT64_C(1) << 50));
  TAPI_OK(jobq_submit_opts_set_run_at(so, 5000));
  REFUSED(so, JOBQ_EINVAL, fr, jobq_submit_opts_set_run_at(so, -1));
  REFUSED(so, JOBQ_EINVAL, fr, jobq_submit_opts_set_run_at(so, INT64_MIN));

  jobq_submit_opts_t *sd = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_delay(sd, 0));
  TAPI_OK(jobq_submit_opts_set_delay(sd, 3650 * DAY));
  TAPI_OK(jobq_submit_opts_set_delay(sd, 500));
  REFUSED(sd, JOBQ_EINVAL, fd, jobq_submit_opts_set_delay(sd, -1));
  REFUSED(sd, JOBQ_EINVAL, fd, jobq_submit_opts_set_delay(sd, 3650 * DAY + 1));
  REFUSED(sd, JOBQ_EINVAL, fd, jobq_submit_opts_set_delay(sd, INT64_MIN));

  tapi_clock clk = {0};
  tapi_clock_set(&clk, 1000);
  jobq_t *q = tapi_open(&clk, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], c[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a)); /* run_at 5000 */
  TAPI_OK(jobq_submit(q, "k", NULL, sd, b)); /* 1000 + 500 */
  /* run_at overrides delay, whichever was set first */
  TAPI_OK(jobq_submit_opts_set_delay(so, 100));
  TAPI_OK(jobq_submit(q, "k", NULL, so, c));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, a, &j));
  assert_int_equal(jobq_job_run_at(j), 5000);
  assert_int_equal(jobq_job_created_at(j), 1000);
  assert_int_equal(jobq_job_position(j), -1); /* not due */
  jobq_job_free(j);
  TAPI_OK(jobq_get(q, b, &j));
  assert_int_equal(jobq_job_run_at(j), 1500);
  jobq_job_free(j);
  TAPI_OK(jobq_get(q, c, &j));
  assert_int_equal(jobq_job_run_at(j), 5000);
  jobq_job_free(j);
  jobq_ctx_t *ctx = NULL;
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_claim", jobq_claim(q, NULL, 0, &ctx));
  tapi_clock_set(&clk, 1499);
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_claim", jobq_claim(q, NULL, 0, &ctx));
  tapi_clock_set(&clk, 1500);
  ctx = tapi_claim(q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), b);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  tapi_clock_set(&clk, 4999);
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_claim", jobq_claim(q, NULL, 0, &ctx));
  tapi_clock_set(&clk, 5000);
  ctx = tapi_claim(q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), a);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  ctx = tapi_claim(q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), c);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  /* jobq.h: run_at "0 and past times: due now", and it overrides a delay */
  jobq_submit_opts_t *z = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_delay(z, 1000));
  TAPI_OK(jobq_submit_opts_set_run_at(z, 0));
  char d[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, z, d));
  TAPI_OK(jobq_submit_opts_set_run_at(z, 4000)); /* in the past */
  char e[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, z, e));
  ctx = tapi_claim(q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), d);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  ctx = tapi_claim(q, NULL);
  assert_string_equal(jobq_ctx_id(ctx), e);
  TAPI_OK(jobq_ctx_succeed(ctx, NULL));
  jobq_submit_opts_free(z);
  tapi_close(q);
  jobq_submit_opts_free(so);
  jobq_submit_opts_free(sd);
}

static void test_submit_max_attempts(void **state) {
  (void)state;
  const char *fn = "jobq_submit_opts_set_max_attempts";
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_max_attempts(so, 1));
  TAPI_OK(jobq_submit_opts_set_max_attempts(so, 1000));
  TAPI_OK(jobq_submit_opts_set_max_attempts(so, 1));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_max_attempts(so, 0));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_max_attempts(so, 1001));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_max_attempts(so, -5));
  jobq_t *q = tapi_open(NULL, 0);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, id));
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_max_attempts(j), 1);
  jobq_job_free(j);
  /* 1 attempt: a retryable failure fails the job */
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  TAPI_OK(jobq_ctx_fail(ctx, "x", 1));
  assert_int_equal(tapi_state(q, id), JOBQ_FAILED);
  TAPI_OK(jobq_submit_opts_set_max_attempts(so, 1000));
  TAPI_OK(jobq_submit(q, "k", NULL, so, id));
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_max_attempts(j), 1000);
  jobq_job_free(j);
  tapi_close(q);
  jobq_submit_opts_free(so);
}

static void test_submit_dedupe_setter(void **state) {
  (void)state;
  const char *fn = "jobq_submit_opts_set_dedupe";
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  char *k512 = tapi_repeat('d', 512), *k513 = tapi_repeat('d', 513);
  TAPI_OK(jobq_submit_opts_set_dedupe(so, k512, 0));
  TAPI_OK(jobq_submit_opts_set_dedupe(so, "key", INT64_MAX));
  TAPI_OK(jobq_submit_opts_set_dedupe(so, "key", 0));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_dedupe(so, "key", -1));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_dedupe(so, "other", -1));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_dedupe(so, "", 0));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_dedupe(so, k513, 0));
  jobq_t *q = tapi_open(NULL, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 1); /* "key" is still set */
  assert_string_equal(a, b);
  TAPI_OK(jobq_submit_opts_set_dedupe(so, k512, 0));
  TAPI_OK(jobq_submit(q, "k", NULL, so, b));
  assert_string_not_equal(a, b);
  TAPI_OK(jobq_submit_opts_set_dedupe(so, NULL, 0)); /* clears */
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  TAPI_OK(jobq_submit(q, "k", NULL, so, b));
  assert_string_not_equal(a, b);
  assert_int_equal(tapi_count_jobs(q), 4);
  tapi_close(q);
  free(k512);
  free(k513);
  jobq_submit_opts_free(so);
}

/* docs/reference/jobq_submit_opts_set_dedupe.md: "NULL removes a previously
 * set key (and ttl_ms is ignored)". */
static void test_submit_dedupe_null_key_ignores_ttl(void **state) {
  (void)state;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_dedupe(so, "key", 0));
  int rc = jobq_submit_opts_set_dedupe(so, NULL, -1);
  if (rc != 0) {
    jobq_submit_opts_free(so);
    fail_msg("jobq_submit_opts_set_dedupe(so, NULL, -1) returned %d: %s", rc, jobq_last_error());
  }
  jobq_t *q = tapi_open(NULL, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  TAPI_OK(jobq_submit(q, "k", NULL, so, b)); /* no key: two jobs */
  assert_string_not_equal(a, b);
  tapi_close(q);
  jobq_submit_opts_free(so);
}

static void test_submit_force_setter(void **state) {
  (void)state;
  const char *fn = "jobq_submit_opts_set_force";
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_force(so, 1));
  TAPI_OK(jobq_submit_opts_set_force(so, 0));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_force(so, 2));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_force(so, -1));
  TAPI_OK(jobq_submit_opts_set_dedupe(so, "f", 0));
  jobq_t *q = tapi_open(NULL, 0);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, so, a));
  assert_int_equal(jobq_submit(q, "k", NULL, so, b), 1); /* force still 0 */
  TAPI_OK(jobq_submit_opts_set_force(so, 1));
  REFUSED(so, JOBQ_EINVAL, fn, jobq_submit_opts_set_force(so, 7));
  TAPI_OK(jobq_submit(q, "k", NULL, so, b)); /* force still 1 */
  assert_string_not_equal(a, b);
  tapi_close(q);
  jobq_submit_opts_free(so);
}

/* ======================================================================== */
/* jobq_filter_t                                                            */
/* ======================================================================== */

static void list_ids(jobq_t *q, const jobq_filter_t *f, char ids[][JOBQ_ID_SIZE], size_t *n) {
  jobq_page_t *p = NULL;
  TAPI_OK(jobq_list(q, f, &p));
  *n = jobq_page_count(p);
  for (size_t i = 0; i < *n; i++) memcpy(ids[i], jobq_job_id(jobq_page_job(p, i)), JOBQ_ID_SIZE);
  jobq_page_free(p);
}

static void test_filter_setters(void **state) {
  (void)state;
  jobq_filter_t *f = jobq_filter_new();
  assert_non_null(f);
  char *s256 = tapi_repeat('o', 256), *s257 = tapi_repeat('o', 257);
  char *k64 = tapi_repeat('k', 64), *k65 = tapi_repeat('k', 65);
  /* owner */
  TAPI_OK(jobq_filter_set_owner(f, s256));
  TAPI_OK(jobq_filter_set_owner(f, NULL));
  TAPI_OK(jobq_filter_set_owner(f, "bob"));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_owner", jobq_filter_set_owner(f, ""));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_owner", jobq_filter_set_owner(f, s257));
  TAPI_OK(jobq_filter_set_owner(f, NULL));
  /* kind */
  TAPI_OK(jobq_filter_set_kind(f, k64));
  TAPI_OK(jobq_filter_set_kind(f, NULL));
  TAPI_OK(jobq_filter_set_kind(f, "a"));
  REFUSED(f, JOBQ_EKIND, "jobq_filter_set_kind", jobq_filter_set_kind(f, ""));
  REFUSED(f, JOBQ_EKIND, "jobq_filter_set_kind", jobq_filter_set_kind(f, k65));
  REFUSED(f, JOBQ_EKIND, "jobq_filter_set_kind", jobq_filter_set_kind(f, "bad kind"));
  REFUSED(f, JOBQ_EKIND, "jobq_filter_set_kind", jobq_filter_set_kind(f, "-x"));
  TAPI_OK(jobq_filter_set_kind(f, NULL));
  /* state */
  for (int s = -1; s <= JOBQ_CANCELLED; s++) TAPI_OK(jobq_filter_set_state(f, s));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_state", jobq_filter_set_state(f, -2));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_state", jobq_filter_set_state(f, 5));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_state", jobq_filter_set_state(f, INT_MIN));
  TAPI_OK(jobq_filter_set_state(f, -1));
  /* limit */
  TAPI_OK(jobq_filter_set_limit(f, 1));
  TAPI_OK(jobq_filter_set_limit(f, 1000));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_limit", jobq_filter_set_limit(f, 0));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_limit", jobq_filter_set_limit(f, 1001));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_limit", jobq_filter_set_limit(f, -1));
  /* newest_first */
  TAPI_OK(jobq_filter_set_newest_first(f, 0));
  TAPI_OK(jobq_filter_set_newest_first(f, 1));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_newest_first", jobq_filter_set_newest_first(f, 2));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_newest_first", jobq_filter_set_newest_first(f, -1));
  /* cursor */
  char c36[] = "01890a5d-ac96-774b-bcce-b302099a8057";
  TAPI_OK(jobq_filter_set_cursor(f, c36));
  TAPI_OK(jobq_filter_set_cursor(f, NULL));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_cursor", jobq_filter_set_cursor(f, ""));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_cursor",
          jobq_filter_set_cursor(f, "01890a5d-ac96-774b-bcce-b302099a805"));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_cursor",
          jobq_filter_set_cursor(f, "01890a5d-ac96-774b-bcce-b302099a80577"));
  free(s256);
  free(s257);
  free(k64);
  free(k65);
  jobq_filter_free(f);
}

/* Refused values leave filters doing what they did. */
static void test_filter_behaviour_after_refusal(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_owner(so, "bob"));
  char ids[8][JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "a", NULL, NULL, ids[0]));
  TAPI_OK(jobq_submit(q, "b", NULL, so, ids[1]));
  TAPI_OK(jobq_submit(q, "a", NULL, so, ids[2]));
  TAPI_OK(jobq_cancel(q, ids[0]));
  char got[8][JOBQ_ID_SIZE];
  size_t n;

  jobq_filter_t *f = jobq_filter_new();
  list_ids(q, f, got, &n); /* defaults: all, newest first */
  assert_int_equal(n, 3);
  assert_string_equal(got[0], ids[2]);
  assert_string_equal(got[2], ids[0]);

  TAPI_OK(jobq_filter_set_limit(f, 2));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_limit", jobq_filter_set_limit(f, 0));
  list_ids(q, f, got, &n);
  assert_int_equal(n, 2);
  TAPI_OK(jobq_filter_set_limit(f, 50));

  TAPI_OK(jobq_filter_set_newest_first(f, 0));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_newest_first", jobq_filter_set_newest_first(f, 2));
  list_ids(q, f, got, &n);
  assert_int_equal(n, 3);
  assert_string_equal(got[0], ids[0]);
  assert_string_equal(got[2], ids[2]);

  TAPI_OK(jobq_filter_set_kind(f, "a"));
  REFUSED(f, JOBQ_EKIND, "jobq_filter_set_kind", jobq_filter_set_kind(f, "bad kind"));
  list_ids(q, f, got, &n);
  assert_int_equal(n, 2);
  assert_string_equal(got[0], ids[0]);
  assert_string_equal(got[1], ids[2]);

  TAPI_OK(jobq_filter_set_state(f, JOBQ_QUEUED));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_state", jobq_filter_set_state(f, 9));
  list_ids(q, f, got, &n);
  assert_int_equal(n, 1);
  assert_string_equal(got[0], ids[2]);

  TAPI_OK(jobq_filter_set_kind(f, NULL));
  TAPI_OK(jobq_filter_set_state(f, -1));
  TAPI_OK(jobq_filter_set_owner(f, "bob"));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_owner", jobq_filter_set_owner(f, ""));
  list_ids(q, f, got, &n);
  assert_int_equal(n, 2);
  assert_string_equal(got[0], ids[1]);
  assert_string_equal(got[1], ids[2]);

  /* a cursor, then a refused one: paging continues after the first */
  TAPI_OK(jobq_filter_set_owner(f, NULL));
  TAPI_OK(jobq_filter_set_cursor(f, ids[0]));
  REFUSED(f, JOBQ_EINVAL, "jobq_filter_set_cursor", jobq_filter_set_cursor(f, "short"));
  list_ids(q, f, got, &n);
  assert_int_equal(n, 2);
  assert_string_equal(got[0], ids[1]);
  jobq_filter_free(f);
  jobq_submit_opts_free(so);
  tapi_close(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_free_null_is_harmless),
    cmocka_unit_test(test_null_handles),
    cmocka_unit_test(test_options_storage),
    cmocka_unit_test(test_options_shared_events),
    cmocka_unit_test(test_utf8_option_strings),
    cmocka_unit_test(test_open_url_error_sentences),
    cmocka_unit_test(test_open_defaults_and_copy),
    cmocka_unit_test(test_options_workers),
    cmocka_unit_test(test_options_max_payload),
    cmocka_unit_test(test_options_event_buffer),
    cmocka_unit_test(test_options_clock),
    cmocka_unit_test(test_options_random),
    cmocka_unit_test(test_options_lease),
    cmocka_unit_test(test_options_loop),
    cmocka_unit_test(test_kind_concurrency),
    cmocka_unit_test(test_kind_max_attempts),
    cmocka_unit_test(test_kind_backoff),
    cmocka_unit_test(test_kind_timeout),
    cmocka_unit_test(test_kind_retention),
    cmocka_unit_test(test_kind_on_loop),
    cmocka_unit_test(test_submit_owner),
    cmocka_unit_test(test_submit_priority),
    cmocka_unit_test(test_submit_run_at_and_delay),
    cmocka_unit_test(test_submit_max_attempts),
    cmocka_unit_test(test_submit_dedupe_setter),
    cmocka_unit_test(test_submit_dedupe_null_key_ignores_ttl),
    cmocka_unit_test(test_submit_force_setter),
    cmocka_unit_test(test_filter_setters),
    cmocka_unit_test(test_filter_behaviour_after_refusal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
