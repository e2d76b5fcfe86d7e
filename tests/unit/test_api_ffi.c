/* What a binding in another language calls instead of what it cannot do
 * safely: the sized submits (jobq_submit_ex, jobq_submit_many_ex,
 * jobq_batch_submit_ex) and the runtime constants (jobq_id_size,
 * jobq_err_code_min, jobq_state_by_name, jobq_event_type_by_name).
 *
 * A sized submit given a short buffer must refuse before anything is
 * stored: each refusal is checked on a "memory:" queue and on a "sqlite:"
 * file by counting the jobs before and after, and by a sentinel in the
 * buffer, which must come back untouched. A big enough buffer gets exactly
 * the id bytes and nothing past them. */
#include "testutil.h"

#define SENTINEL 0x5a
#define BUF 256

/* The two backends every refusal is tried on. */
typedef struct store {
  char dir[32];
  char url[96];
} store;

static void store_init(store *s) {
  snprintf(s->dir, sizeof s->dir, "/tmp/jobq-ffi-XXXXXX");
  assert_non_null(mkdtemp(s->dir));
  snprintf(s->url, sizeof s->url, "sqlite:%s/q.db", s->dir);
}

static void store_done(store *s) {
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
  assert_int_equal(system(cmd), 0);
}

static jobq_t *open_url(const char *url) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  TAPI_OK(jobq_options_set_storage(o, url));
  TAPI_OK(jobq_options_set_workers(o, 0));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  return q;
}

/* Every byte of buf[from, to) still holds the sentinel. */
static void assert_sentinel(const char *buf, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    if ((unsigned char)buf[i] != SENTINEL) {
      print_error("byte %zu was written (0x%02x)\n", i, (unsigned char)buf[i]);
      fail();
    }
  }
}

/* A stored id: 36 characters and its NUL where the buffer says. */
static void assert_id_at(const char *buf) {
  assert_int_equal(buf[JOBQ_ID_SIZE - 1], '\0');
  assert_int_equal(strlen(buf), JOBQ_ID_SIZE - 1);
}

/* ======================================================================== */
/* jobq_submit_ex                                                           */
/* ======================================================================== */

static void submit_ex_short(const char *url) {
  jobq_t *q = open_url(url);
  char buf[BUF];
  /* One job already there, so that "nothing stored" is not "nothing works". */
  TAPI_OK(jobq_submit_ex(q, "k", "{}", NULL, buf, sizeof buf));
  assert_int_equal(tapi_count_jobs(q), 1);
  const size_t caps[] = {0, 1, 8, JOBQ_ID_SIZE - 1};
  for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
    memset(buf, SENTINEL, sizeof buf);
    TAPI_ERR(JOBQ_EINVAL, "jobq_submit_ex", jobq_submit_ex(q, "k", "{}", NULL, buf, caps[i]));
    TAPI_ERR_HAS("out_cap");
    TAPI_ERR_HAS("JOBQ_ID_SIZE (37)");
    assert_sentinel(buf, 0, sizeof buf);
  }
  /* The cap is checked before the input: a short buffer with a bad payload
   * is refused for the buffer. */
  memset(buf, SENTINEL, sizeof buf);
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_ex", jobq_submit_ex(q, "k", "{bad", NULL, buf, 8));
  TAPI_ERR_HAS("out_cap is 8 bytes");
  assert_sentinel(buf, 0, sizeof buf);
  assert_int_equal(tapi_count_jobs(q), 1);
  tapi_close(q);
}

static void test_submit_ex_short_buffer_memory(void **state) {
  (void)state;
  submit_ex_short("memory:");
}

static void test_submit_ex_short_buffer_sqlite(void **state) {
  (void)state;
  store s;
  store_init(&s);
  submit_ex_short(s.url);
  /* And the file, opened again, holds the one job only. */
  jobq_t *q = open_url(s.url);
  assert_int_equal(tapi_count_jobs(q), 1);
  tapi_close(q);
  store_done(&s);
}

static void test_submit_ex_writes_exactly_the_id(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char buf[BUF];
  /* A cap of exactly JOBQ_ID_SIZE and a larger one write the same bytes. */
  const size_t caps[] = {JOBQ_ID_SIZE, JOBQ_ID_SIZE + 1, sizeof buf, SIZE_MAX};
  for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
    memset(buf, SENTINEL, sizeof buf);
    TAPI_OK(jobq_submit_ex(q, "k", NULL, NULL, buf, caps[i]));
    assert_id_at(buf);
    assert_sentinel(buf, JOBQ_ID_SIZE, sizeof buf);
    assert_int_equal(tapi_state(q, buf), JOBQ_QUEUED);
  }
  /* A dedupe hit answers 1 and the existing id, like jobq_submit. */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_dedupe(so, "key", 0));
  char first[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit_ex(q, "k", NULL, so, first, sizeof first));
  memset(buf, SENTINEL, sizeof buf);
  assert_int_equal(jobq_submit_ex(q, "k", NULL, so, buf, sizeof buf), 1);
  assert_string_equal(buf, first);
  assert_sentinel(buf, JOBQ_ID_SIZE, sizeof buf);
  jobq_submit_opts_free(so);
  assert_int_equal(tapi_count_jobs(q), 5);
  tapi_close(q);
}

static void test_submit_ex_bad_input(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char buf[BUF];
  memset(buf, SENTINEL, sizeof buf);
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_ex: q is NULL",
           jobq_submit_ex(NULL, "k", NULL, NULL, buf, sizeof buf));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_ex: out_id is NULL",
           jobq_submit_ex(q, "k", NULL, NULL, NULL, JOBQ_ID_SIZE));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_ex: kind is NULL",
           jobq_submit_ex(q, NULL, NULL, NULL, buf, sizeof buf));
  TAPI_ERR(JOBQ_EKIND, "jobq_submit_ex", jobq_submit_ex(q, "a b", NULL, NULL, buf, sizeof buf));
  TAPI_ERR(JOBQ_EJSON, "jobq_submit_ex", jobq_submit_ex(q, "k", "{", NULL, buf, sizeof buf));
  assert_sentinel(buf, 0, sizeof buf);
  assert_int_equal(tapi_count_jobs(q), 0);
  /* The old form is unchanged and names itself. */
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit: out_id is NULL", jobq_submit(q, "k", NULL, NULL, NULL));
  tapi_close(q);
}

/* ======================================================================== */
/* jobq_submit_many_ex                                                      */
/* ======================================================================== */

static const char *const kinds3[3] = {"a", "b", "c"};
static const char *const payloads3[3] = {"1", "2", "3"};

static void submit_many_ex_short(const char *url) {
  jobq_t *q = open_url(url);
  char buf[4 * JOBQ_ID_SIZE + 16];
  int dup[3] = {7, 7, 7};
  const size_t caps[] = {0, JOBQ_ID_SIZE, 3 * JOBQ_ID_SIZE - 1};
  for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
    memset(buf, SENTINEL, sizeof buf);
    TAPI_ERR(JOBQ_EINVAL, "jobq_submit_many_ex",
             jobq_submit_many_ex(q, 3, kinds3, payloads3, NULL, buf, caps[i], dup));
    TAPI_ERR_HAS("out_cap");
    TAPI_ERR_HAS("3 ids need n * JOBQ_ID_SIZE = 111 bytes");
    assert_sentinel(buf, 0, sizeof buf);
    assert_int_equal(dup[0] + dup[1] + dup[2], 21);
  }
  assert_int_equal(tapi_count_jobs(q), 0);
  /* n 0 stores nothing and needs no buffer, as with jobq_submit_many. */
  assert_int_equal(jobq_submit_many_ex(q, 0, kinds3, payloads3, NULL, NULL, 0, NULL), 0);
  assert_int_equal(tapi_count_jobs(q), 0);
  tapi_close(q);
}

static void test_submit_many_ex_short_buffer_memory(void **state) {
  (void)state;
  submit_many_ex_short("memory:");
}

static void test_submit_many_ex_short_buffer_sqlite(void **state) {
  (void)state;
  store s;
  store_init(&s);
  submit_many_ex_short(s.url);
  store_done(&s);
}

static void test_submit_many_ex_writes_exactly_the_ids(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char buf[BUF];
  const size_t caps[] = {3 * JOBQ_ID_SIZE, sizeof buf};
  for (size_t c = 0; c < 2; c++) {
    memset(buf, SENTINEL, sizeof buf);
    int dup[3] = {7, 7, 7};
    assert_int_equal(jobq_submit_many_ex(q, 3, kinds3, payloads3, NULL, buf, caps[c], dup), 0);
    for (int i = 0; i < 3; i++) {
      assert_id_at(buf + i * JOBQ_ID_SIZE);
      assert_int_equal(dup[i], 0);
      assert_int_equal(tapi_state(q, buf + i * JOBQ_ID_SIZE), JOBQ_QUEUED);
    }
    assert_sentinel(buf, 3 * JOBQ_ID_SIZE, sizeof buf);
  }
  assert_int_equal(tapi_count_jobs(q), 6);
  /* Bad input names the _ex form; nothing is written. */
  memset(buf, SENTINEL, sizeof buf);
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_many_ex: q is NULL",
           jobq_submit_many_ex(NULL, 3, kinds3, payloads3, NULL, buf, sizeof buf, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_many_ex: out_ids is NULL",
           jobq_submit_many_ex(q, 3, kinds3, payloads3, NULL, NULL, sizeof buf, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_submit_many_ex: kinds is NULL",
           jobq_submit_many_ex(q, 3, NULL, payloads3, NULL, buf, sizeof buf, NULL));
  const char *const bad[3] = {"a", "b c", "d"};
  TAPI_ERR(JOBQ_EKIND, "jobq_submit_many_ex: job 1 refused",
           jobq_submit_many_ex(q, 3, bad, payloads3, NULL, buf, sizeof buf, NULL));
  assert_sentinel(buf, 0, sizeof buf);
  assert_int_equal(tapi_count_jobs(q), 6);
  tapi_close(q);
}

/* ======================================================================== */
/* jobq_batch_submit_ex                                                     */
/* ======================================================================== */

static void batch_submit_ex_short(const char *url) {
  jobq_t *q = open_url(url);
  char bid[BUF], ids[BUF];
  struct {
    size_t batch_cap, ids_cap;
    const char *says;
  } cases[] = {
      {0, sizeof ids, "batch_cap is 0 bytes"},
      {JOBQ_ID_SIZE - 1, sizeof ids, "batch_cap is 36 bytes"},
      {sizeof bid, 0, "ids_cap is 0 bytes"},
      {sizeof bid, 3 * JOBQ_ID_SIZE - 1, "ids_cap is 110 bytes; 3 ids need"},
      {1, 1, "batch_cap"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(bid, SENTINEL, sizeof bid);
    memset(ids, SENTINEL, sizeof ids);
    TAPI_ERR(JOBQ_EINVAL, "jobq_batch_submit_ex",
             jobq_batch_submit_ex(q, 3, kinds3, payloads3, NULL, 0, bid, cases[i].batch_cap, ids,
                                  cases[i].ids_cap, NULL));
    TAPI_ERR_HAS(cases[i].says);
    assert_sentinel(bid, 0, sizeof bid);
    assert_sentinel(ids, 0, sizeof ids);
  }
  assert_int_equal(tapi_count_jobs(q), 0);
  /* Exact caps: exactly the ids, a batch that exists. */
  memset(bid, SENTINEL, sizeof bid);
  memset(ids, SENTINEL, sizeof ids);
  assert_int_equal(jobq_batch_submit_ex(q, 3, kinds3, payloads3, NULL, 2, bid, JOBQ_ID_SIZE, ids,
                                        3 * JOBQ_ID_SIZE, NULL),
                   0);
  assert_id_at(bid);
  assert_sentinel(bid, JOBQ_ID_SIZE, sizeof bid);
  for (int i = 0; i < 3; i++) assert_id_at(ids + i * JOBQ_ID_SIZE);
  assert_sentinel(ids, 3 * JOBQ_ID_SIZE, sizeof ids);
  jobq_batch_t *b = NULL;
  TAPI_OK(jobq_batch_get(q, bid, &b));
  assert_int_equal(jobq_batch_count(b, -1), 3);
  assert_int_equal(jobq_batch_max_running(b), 2);
  jobq_batch_free(b);
  assert_int_equal(tapi_count_jobs(q), 3);
  tapi_close(q);
}

static void test_batch_submit_ex_short_buffers_memory(void **state) {
  (void)state;
  batch_submit_ex_short("memory:");
}

static void test_batch_submit_ex_short_buffers_sqlite(void **state) {
  (void)state;
  store s;
  store_init(&s);
  batch_submit_ex_short(s.url);
  store_done(&s);
}

static void test_batch_submit_ex_bad_input(void **state) {
  (void)state;
  jobq_t *q = tapi_open(NULL, 0);
  char bid[BUF], ids[BUF];
  memset(bid, SENTINEL, sizeof bid);
  memset(ids, SENTINEL, sizeof ids);
  TAPI_ERR(JOBQ_EINVAL, "jobq_batch_submit_ex: q is NULL",
           jobq_batch_submit_ex(NULL, 3, kinds3, payloads3, NULL, 0, bid, sizeof bid, ids,
                                sizeof ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_batch_submit_ex: the batch is empty",
           jobq_batch_submit_ex(q, 0, kinds3, payloads3, NULL, 0, bid, sizeof bid, ids,
                                sizeof ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_batch_submit_ex: out_batch_id is NULL",
           jobq_batch_submit_ex(q, 3, kinds3, payloads3, NULL, 0, NULL, sizeof bid, ids,
                                sizeof ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_batch_submit_ex: out_ids is NULL",
           jobq_batch_submit_ex(q, 3, kinds3, payloads3, NULL, 0, bid, sizeof bid, NULL,
                                sizeof ids, NULL));
  TAPI_ERR(JOBQ_EINVAL, "jobq_batch_submit_ex: max_running is -1",
           jobq_batch_submit_ex(q, 3, kinds3, payloads3, NULL, -1, bid, sizeof bid, ids,
                                sizeof ids, NULL));
  assert_sentinel(bid, 0, sizeof bid);
  assert_sentinel(ids, 0, sizeof ids);
  assert_int_equal(tapi_count_jobs(q), 0);
  tapi_close(q);
}

/* ======================================================================== */
/* runtime constants                                                        */
/* ======================================================================== */

static void test_id_size(void **state) {
  (void)state;
  assert_int_equal(jobq_id_size(), JOBQ_ID_SIZE);
  assert_int_equal(jobq_id_size(), 37);
}

static void test_err_code_min_enumerates_every_code(void **state) {
  (void)state;
  int min = jobq_err_code_min();
  assert_int_equal(min, JOBQ_ESIGNATURE); /* the newest code of this version */
  /* Every value 0..min is a code with its own name and a sentence. */
  for (int c = 0; c >= min; c--) {
    const char *name = jobq_err_name(c);
    assert_non_null(name);
    assert_string_not_equal(name, "JOBQ_EUNKNOWN");
    assert_string_not_equal(jobq_strerror(c), "unknown error");
    for (int d = 0; d > c; d--) assert_string_not_equal(name, jobq_err_name(d));
  }
  assert_string_equal(jobq_err_name(0), "JOBQ_OK");
  assert_string_equal(jobq_err_name(min), "JOBQ_ESIGNATURE");
  /* Past either end: the documented stand-ins, never NULL. */
  const int outside[] = {min - 1, min - 1000, 1, 42, INT32_MIN, INT32_MAX};
  for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
    assert_string_equal(jobq_err_name(outside[i]), "JOBQ_EUNKNOWN");
    assert_string_equal(jobq_strerror(outside[i]), "unknown error");
  }
}

static void test_state_by_name(void **state) {
  (void)state;
  /* The enumeration idiom: from 0 until NULL. */
  int n = 0;
  for (int s = 0; jobq_state_name(s) != NULL; s++) {
    assert_int_equal(jobq_state_by_name(jobq_state_name(s)), s);
    n++;
  }
  assert_int_equal(n, JOBQ_CANCELLED + 1);
  assert_null(jobq_state_name(-1));
  assert_null(jobq_state_name(JOBQ_CANCELLED + 1));
  assert_int_equal(jobq_state_by_name("queued"), JOBQ_QUEUED);
  assert_int_equal(jobq_state_by_name("cancelled"), JOBQ_CANCELLED);

  TAPI_ERR(JOBQ_EINVAL, "jobq_state_by_name: name is NULL", jobq_state_by_name(NULL));
  const char *bad[] = {"", "Queued", "queued ", " queued", "canceled", "done", "0",
                       "queued\n", "caf\xc3\xa9", "bad\xff"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    TAPI_ERR(JOBQ_EINVAL, "jobq_state_by_name", jobq_state_by_name(bad[i]));
    TAPI_ERR_HAS("is not a state");
  }
  /* A long name is cut in the sentence, which stays valid UTF-8. */
  char *longname = tapi_repeat('x', 5000);
  TAPI_ERR(JOBQ_EINVAL, "jobq_state_by_name", jobq_state_by_name(longname));
  assert_true(strlen(jobq_last_error()) < 200);
  free(longname);
}

static void test_event_type_by_name(void **state) {
  (void)state;
  /* The enumeration idiom: from 1 (JOBQ_EVENT_SUBMITTED) until NULL. */
  assert_null(jobq_event_type_name(0));
  int n = 0;
  for (int t = 1; jobq_event_type_name(t) != NULL; t++) {
    assert_int_equal(jobq_event_type_by_name(jobq_event_type_name(t)), t);
    n++;
  }
  assert_int_equal(n, JOBQ_EVENT_WEBHOOK_FAILED);
  assert_null(jobq_event_type_name(-1));
  assert_null(jobq_event_type_name(JOBQ_EVENT_WEBHOOK_FAILED + 1));
  assert_int_equal(jobq_event_type_by_name("submitted"), JOBQ_EVENT_SUBMITTED);
  assert_int_equal(jobq_event_type_by_name("batch_done"), JOBQ_EVENT_BATCH_DONE);
  assert_int_equal(jobq_event_type_by_name("webhook_failed"), JOBQ_EVENT_WEBHOOK_FAILED);

  TAPI_ERR(JOBQ_EINVAL, "jobq_event_type_by_name: name is NULL", jobq_event_type_by_name(NULL));
  /* "queued" is a state, not an event; "batch-done" is not the spelling. */
  const char *bad[] = {"", "Submitted", "queued", "batch-done", "storage error", "1", "bad\xff"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    TAPI_ERR(JOBQ_EINVAL, "jobq_event_type_by_name", jobq_event_type_by_name(bad[i]));
    TAPI_ERR_HAS("is not an event type");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_submit_ex_short_buffer_memory),
      cmocka_unit_test(test_submit_ex_short_buffer_sqlite),
      cmocka_unit_test(test_submit_ex_writes_exactly_the_id),
      cmocka_unit_test(test_submit_ex_bad_input),
      cmocka_unit_test(test_submit_many_ex_short_buffer_memory),
      cmocka_unit_test(test_submit_many_ex_short_buffer_sqlite),
      cmocka_unit_test(test_submit_many_ex_writes_exactly_the_ids),
      cmocka_unit_test(test_batch_submit_ex_short_buffers_memory),
      cmocka_unit_test(test_batch_submit_ex_short_buffers_sqlite),
      cmocka_unit_test(test_batch_submit_ex_bad_input),
      cmocka_unit_test(test_id_size),
      cmocka_unit_test(test_err_code_min_enumerates_every_code),
      cmocka_unit_test(test_state_by_name),
      cmocka_unit_test(test_event_type_by_name),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
