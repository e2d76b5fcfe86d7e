/* The backend API (jobq/storage.h): jobq_storage_ops_init,
 * jobq_storage_register, jobq_storage_job_clear, jobq_storage_set_error, and
 * a "counting" backend that forwards to the memory backend's table, counts
 * and records the core's calls, and fails on demand. Also what the storage
 * layer tells the core beyond the vtable: a URL's default work directory. */
#include "testutil.h"

#include "jobq/storage.h"
#include "core/ext.h"      /* jobq__workdir */
#include "core/internal.h" /* jobq__default_workdir */

#include <limits.h>
#include <pthread.h>
#include <unistd.h>

extern const jobq_storage_ops jobq__memory_ops;

/* ======================================================================== */
/* the counting backend                                                     */
/* ======================================================================== */

static struct {
  atomic_int open, close, insert, claim, finish, progress, cancel, get, list, next_run_at;
} calls;

/* A negative code makes that member fail; say=0 fails without a sentence. */
static struct {
  atomic_int open, insert, claim, finish, get, list;
  atomic_int say;
} fail;

static struct {
  char open_url[256];
  void *opened_state, *closed_state, *seen_state;
  size_t insert_n;
  int insert_force[8];
  int64_t insert_now;
  char insert_kind[65];
  size_t claim_max, claim_n_kinds;
  char claim_kind0[65];
  int claim_kinds_null;
  int64_t claim_now;
  char finish_id[JOBQ_ID_SIZE];
  int finish_attempt, finish_outcome;
  char finish_result[64], finish_error[64];
  int64_t finish_run_at, finish_now;
  size_t finish_n;
  char progress_id[JOBQ_ID_SIZE], progress_step[64];
  int progress_attempt, progress_percent;
  char cancel_id[JOBQ_ID_SIZE];
  int64_t cancel_now;
  char get_id[JOBQ_ID_SIZE];
  int64_t get_now;
  char list_owner[64], list_kind[65], list_cursor[JOBQ_ID_SIZE];
  int list_state, list_limit, list_newest_first;
} rec;

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : "(null)"); }

static int failing(atomic_int *code, const char *what) {
  int c = atomic_load(code);
  if (c == 0) return 0;
  if (atomic_load(&fail.say)) jobq_storage_set_error(what);
  return c;
}

static int c_open(const char *url, void **out) {
  calls.open++;
  pthread_mutex_lock(&rec_mu);
  copy(rec.open_url, sizeof rec.open_url, url);
  pthread_mutex_unlock(&rec_mu);
  int rc = failing(&fail.open, "counting: cannot open");
  if (rc) return rc;
  /* the memory backend only takes "memory:" */
  rc = jobq__memory_ops.open("memory:", out);
  if (rc == 0) rec.opened_state = *out;
  return rc;
}

static void c_close(void *st) {
  calls.close++;
  rec.closed_state = st;
  jobq__memory_ops.close(st);
}

static int c_insert(void *st, jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                    int *out_dup) {
  calls.insert++;
  pthread_mutex_lock(&rec_mu);
  rec.seen_state = st;
  rec.insert_n = n;
  rec.insert_now = now;
  for (size_t i = 0; i < n && i < 8; i++) rec.insert_force[i] = force ? force[i] : -1;
  copy(rec.insert_kind, sizeof rec.insert_kind, n ? jobs[0]->kind : NULL);
  pthread_mutex_unlock(&rec_mu);
  int rc = failing(&fail.insert, "counting: disk full");
  if (rc) return rc;
  return jobq__memory_ops.insert(st, jobs, n, force, now, out_dup);
}

static int c_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out, size_t *n_out) {
  calls.claim++;
  pthread_mutex_lock(&rec_mu);
  rec.claim_max = req->max;
  rec.claim_now = req->now;
  rec.claim_kinds_null = req->kinds == NULL;
  rec.claim_n_kinds = req->n_kinds;
  copy(rec.claim_kind0, sizeof rec.claim_kind0, req->kinds && req->n_kinds ? req->kinds[0] : NULL);
  pthread_mutex_unlock(&rec_mu);
  int rc = failing(&fail.claim, "counting: claim broke");
  if (rc) return rc;
  return jobq__memory_ops.claim(st, req, out, n_out);
}

static int c_finish(void *st, const jobq_storage_finish *f, size_t n, int *out_state) {
  calls.finish++;
  pthread_mutex_lock(&rec_mu);
  rec.finish_n = n;
  if (n) {
    copy(rec.finish_id, sizeof rec.finish_id, f[0].id);
    rec.finish_attempt = f[0].attempt;
    rec.finish_outcome = f[0].outcome;
    copy(rec.finish_result, sizeof rec.finish_result, f[0].result);
    copy(rec.finish_error, sizeof rec.finish_error, f[0].error);
    rec.finish_run_at = f[0].run_at;
    rec.finish_now = f[0].now;
  }
  pthread_mutex_unlock(&rec_mu);
  int rc = failing(&fail.finish, "counting: finish broke");
  if (rc) return rc;
  return jobq__memory_ops.finish(st, f, n, out_state);
}

static int c_progress(void *st, const char *id, int attempt, int percent, const char *step) {
  calls.progress++;
  pthread_mutex_lock(&rec_mu);
  copy(rec.progress_id, sizeof rec.progress_id, id);
  copy(rec.progress_step, sizeof rec.progress_step, step);
  rec.progress_attempt = attempt;
  rec.progress_percent = percent;
  pthread_mutex_unlock(&rec_mu);
  return jobq__memory_ops.progress(st, id, attempt, percent, step);
}

static int c_cancel(void *st, const char *id, int64_t now, int *out_state, char **out_kind) {
  calls.cancel++;
  pthread_mutex_lock(&rec_mu);
  copy(rec.cancel_id, sizeof rec.cancel_id, id);
  rec.cancel_now = now;
  pthread_mutex_unlock(&rec_mu);
  return jobq__memory_ops.cancel(st, id, now, out_state, out_kind);
}

static int c_get(void *st, const char *id, int64_t now, jobq_storage_job *out) {
  calls.get++;
  pthread_mutex_lock(&rec_mu);
  copy(rec.get_id, sizeof rec.get_id, id);
  rec.get_now = now;
  pthread_mutex_unlock(&rec_mu);
  int rc = failing(&fail.get, "counting: get broke");
  if (rc) return rc;
  return jobq__memory_ops.get(st, id, now, out);
}

static int c_list(void *st, const jobq_storage_filter *f, jobq_storage_job **out, size_t *n_out,
                  int *more) {
  calls.list++;
  pthread_mutex_lock(&rec_mu);
  copy(rec.list_owner, sizeof rec.list_owner, f->owner);
  copy(rec.list_kind, sizeof rec.list_kind, f->kind);
  copy(rec.list_cursor, sizeof rec.list_cursor, f->cursor);
  rec.list_state = f->state;
  rec.list_limit = f->limit;
  rec.list_newest_first = f->newest_first;
  pthread_mutex_unlock(&rec_mu);
  int rc = failing(&fail.list, "counting: list broke");
  if (rc) return rc;
  return jobq__memory_ops.list(st, f, out, n_out, more);
}

static int c_next_run_at(void *st, const char *const *kinds, size_t n_kinds, int64_t now,
                         int64_t *out) {
  calls.next_run_at++;
  return jobq__memory_ops.next_run_at(st, kinds, n_kinds, now, out);
}

static jobq_storage_ops counting_ops;

static void counting_register_once(void) {
  static int done;
  if (done) return;
  /* every member the memory backend has, then ours over them */
  counting_ops = jobq__memory_ops;
  counting_ops.scheme = "counting";
  counting_ops.open = c_open;
  counting_ops.close = c_close;
  counting_ops.insert = c_insert;
  counting_ops.claim = c_claim;
  counting_ops.finish = c_finish;
  counting_ops.progress = c_progress;
  counting_ops.cancel = c_cancel;
  counting_ops.get = c_get;
  counting_ops.list = c_list;
  counting_ops.next_run_at = c_next_run_at;
  TAPI_OK(jobq_storage_register(&counting_ops));
  done = 1;
}

static int reset(void **state) {
  (void)state;
  counting_register_once();
  memset(&calls, 0, sizeof calls);
  memset(&fail, 0, sizeof fail);
  atomic_store(&fail.say, 1);
  memset(&rec, 0, sizeof rec);
  return 0;
}

static jobq_t *open_counting(const char *url, tapi_clock *clk) {
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, url));
  TAPI_OK(jobq_options_set_workers(o, 0));
  if (clk) TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, clk));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  return q;
}

/* ======================================================================== */
/* jobq_storage_ops_init                                                    */
/* ======================================================================== */

static void test_ops_init(void **state) {
  (void)state;
  jobq_storage_ops ops;
  memset(&ops, 0xab, sizeof ops);
  unsigned char before[sizeof ops];
  memcpy(before, &ops, sizeof ops);
  TAPI_ERR(JOBQ_EINVAL, "jobq_storage_ops_init", jobq_storage_ops_init(NULL, 1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_storage_ops_init", jobq_storage_ops_init(&ops, 0));
  TAPI_ERR(JOBQ_EINVAL, "jobq_storage_ops_init", jobq_storage_ops_init(&ops, -1));
  TAPI_ERR(JOBQ_EINVAL, "jobq_storage_ops_init",
           jobq_storage_ops_init(&ops, JOBQ_STORAGE_OPS_VERSION + 1));
  assert_memory_equal(before, &ops, sizeof ops); /* refused: untouched */
  TAPI_OK(jobq_storage_ops_init(&ops, 1));
  assert_int_equal(ops.version, 1);
  assert_null(ops.scheme);
  assert_null(ops.open);
  assert_null(ops.close);
  assert_null(ops.insert);
  assert_null(ops.claim);
  assert_null(ops.finish);
  assert_null(ops.progress);
  assert_null(ops.cancel);
  assert_null(ops.get);
  assert_null(ops.list);
  assert_null(ops.next_run_at);
  /* the macro and the function agree */
  jobq_storage_ops m = JOBQ_STORAGE_OPS_INIT;
  assert_int_equal(m.version, JOBQ_STORAGE_OPS_VERSION);
  assert_null(m.scheme);
  assert_null(m.open);
  assert_null(m.next_run_at);
  assert_null(m.checkpoint);
  assert_null(m.checkpoint_get);
  assert_null(m.prune);
  assert_null(m.get_by_key);
  assert_null(m.prune_kind); /* the last version 3 member */
  assert_null(m.insert_hooked);
  assert_null(m.webhook_enable); /* the last version 4 member */
  assert_int_equal(JOBQ_STORAGE_OPS_VERSION, 4);
  /* a version-1 table is still accepted (members are only appended) */
  assert_int_equal(jobq_storage_ops_init(&ops, 1), 0);
  assert_int_equal(ops.version, 1);
}

/* A backend built against a version-1 header has a table that ends where
 * the version-2 members begin; whatever follows it in memory is not the
 * table's. Here that memory is a canary in a larger buffer. */
#define CANARY 0xa5

static void check_canary(const unsigned char *buf, size_t from, size_t to, const char *what) {
  for (size_t i = from; i < to; i++)
    if (buf[i] != CANARY)
      fail_msg("%s: byte %zu was written (0x%02x), the table ends at %zu", what, i, buf[i], from);
}

static void test_ops_init_writes_only_its_version(void **state) {
  (void)state;
  const size_t v1_size = offsetof(jobq_storage_ops, checkpoint); /* first version 2 member */
  _Alignas(jobq_storage_ops) unsigned char buf[sizeof(jobq_storage_ops) + 64];
  jobq_storage_ops *ops = (jobq_storage_ops *)buf;

  memset(buf, CANARY, sizeof buf);
  TAPI_OK(jobq_storage_ops_init(ops, 1));
  check_canary(buf, v1_size, sizeof buf, "init(ops, 1)");
  assert_int_equal(ops->version, 1);
  assert_null(ops->scheme);
  assert_null(ops->open);
  assert_null(ops->finish);
  assert_null(ops->rescue);
  assert_null(ops->set_notify);
  assert_null(ops->finish_async);
  assert_null(ops->set_event_sink); /* the last version 1 member */

  /* Version 2 ends where get_by_key (version 3) begins. */
  const size_t v2_size = offsetof(jobq_storage_ops, get_by_key);
  memset(buf, CANARY, sizeof buf);
  TAPI_OK(jobq_storage_ops_init(ops, 2));
  check_canary(buf, v2_size, sizeof buf, "init(ops, 2)");
  assert_int_equal(ops->version, 2);
  assert_null(ops->prune); /* the last version 2 member */

  /* The current version: the whole table, and still nothing past it. */
  memset(buf, CANARY, sizeof buf);
  TAPI_OK(jobq_storage_ops_init(ops, JOBQ_STORAGE_OPS_VERSION));
  check_canary(buf, sizeof(jobq_storage_ops), sizeof buf, "init(ops, current)");
  assert_int_equal(ops->version, JOBQ_STORAGE_OPS_VERSION);
  assert_null(ops->set_event_sink);
  assert_null(ops->checkpoint);
  assert_null(ops->checkpoint_get);
  assert_null(ops->prune);
  assert_null(ops->get_by_key);
  assert_null(ops->prune_kind);

  /* Refused: a defined code, a sentence naming the version, nothing written. */
  static const int bad[] = {0, -1, JOBQ_STORAGE_OPS_VERSION + 1, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(buf, CANARY, sizeof buf);
    TAPI_ERR(JOBQ_EINVAL, "jobq_storage_ops_init", jobq_storage_ops_init(ops, bad[i]));
    char want[64];
    snprintf(want, sizeof want, "version %d is not 1..%d", bad[i], JOBQ_STORAGE_OPS_VERSION);
    TAPI_ERR_HAS(want);
    check_canary(buf, 0, sizeof buf, "refused init");
  }
  TAPI_ERR(JOBQ_EINVAL, "jobq_storage_ops_init", jobq_storage_ops_init(NULL, 1));
  TAPI_ERR_HAS("ops is NULL");
}
#undef CANARY

/* ======================================================================== */
/* jobq_storage_register                                                    */
/* ======================================================================== */

static int x_open(const char *u, void **o) {
  (void)u;
  (void)o;
  return JOBQ_ENOTSUP;
}

/* A complete table (the memory backend's members) whose open refuses. */
static void full_table(jobq_storage_ops *ops, const char *scheme) {
  *ops = jobq__memory_ops;
  ops->scheme = scheme;
  ops->open = x_open;
}

/* The members every table of version 1 must have. */
#define MEMBER(m) {#m, offsetof(jobq_storage_ops, m)}
static const struct {
  const char *name;
  size_t off;
} required[] = {
  MEMBER(open),   MEMBER(close),  MEMBER(insert), MEMBER(claim), MEMBER(finish),
  MEMBER(progress), MEMBER(cancel), MEMBER(get),  MEMBER(list),  MEMBER(next_run_at),
  MEMBER(heartbeat), MEMBER(rescue),
};
#undef MEMBER

static void test_register_refusals(void **state) {
  (void)state;
  const char *fn = "jobq_storage_register";
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_storage_register(NULL));
  jobq_storage_ops ops;
  full_table(&ops, "refusedscheme");
  ops.version = 0;
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_storage_register(&ops));
  ops.version = -3;
  TAPI_ERR(JOBQ_EINVAL, fn, jobq_storage_register(&ops));
  /* bad schemes */
  char s33[34];
  memset(s33, 'a', 33);
  s33[33] = '\0';
  const char *bad[] = {NULL, "", "Upper", "with:colon", "sp ace", "dot.ted", "under_score", "slash/",
                       s33, "caf\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    full_table(&ops, bad[i]);
    TAPI_ERR(JOBQ_EINVAL, fn, jobq_storage_register(&ops));
    TAPI_ERR_HAS("scheme");
  }
  /* each version 1 member is required */
  for (size_t m = 0; m < sizeof required / sizeof required[0]; m++) {
    full_table(&ops, "missingmember");
    memset((char *)&ops + required[m].off, 0, sizeof(void (*)(void)));
    TAPI_ERR(JOBQ_EINVAL, fn, jobq_storage_register(&ops));
    TAPI_ERR_HAS("missingmember");
  }
  /* none of those was registered: their schemes stay unknown */
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "missingmember:"));
  jobq_t *q = NULL;
  jobq_storage_set_error("");
  assert_int_equal(jobq_open(&q, o), JOBQ_EURL);
  assert_null(q);
  jobq_options_free(o);
  /* "memory" is taken */
  static jobq_storage_ops mem2;
  full_table(&mem2, "memory");
  TAPI_ERR(JOBQ_EEXIST, fn, jobq_storage_register(&mem2));
  TAPI_ERR(JOBQ_EEXIST, fn, jobq_storage_register(&jobq__memory_ops));
  TAPI_ERR_HAS("memory");
}

static void test_register_and_duplicate(void **state) {
  (void)state;
  /* a valid 32-character scheme of the allowed characters */
  static jobq_storage_ops ok, again;
  full_table(&ok, "abcdefghijklmnopqrstuvwxyz0+-123");
  assert_int_equal(strlen(ok.scheme), 32);
  TAPI_OK(jobq_storage_register(&ok));
  full_table(&again, "abcdefghijklmnopqrstuvwxyz0+-123");
  TAPI_ERR(JOBQ_EEXIST, "jobq_storage_register", jobq_storage_register(&again));
  /* it serves its URLs: its open's refusal comes back from jobq_open */
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "abcdefghijklmnopqrstuvwxyz0+-123:x"));
  jobq_t *q = NULL;
  jobq_storage_set_error("");
  assert_int_equal(jobq_open(&q, o), JOBQ_ENOTSUP);
  assert_null(q);
  assert_true(jobq_last_error()[0] != '\0');
  /* a prefix of a registered scheme is not that scheme */
  TAPI_OK(jobq_options_set_storage(o, "abcdefghijklmnopqrstuvwxyz0+-12:x"));
  assert_int_equal(jobq_open(&q, o), JOBQ_EURL);
  TAPI_OK(jobq_options_set_storage(o, "mem:"));
  assert_int_equal(jobq_open(&q, o), JOBQ_EURL);
  TAPI_OK(jobq_options_set_storage(o, "memoryx:"));
  assert_int_equal(jobq_open(&q, o), JOBQ_EURL);
  assert_null(q);
  jobq_options_free(o);
  /* counting is registered already (setup): a second time is refused */
  TAPI_ERR(JOBQ_EEXIST, "jobq_storage_register", jobq_storage_register(&counting_ops));
}

/* ======================================================================== */
/* the core through the vtable                                              */
/* ======================================================================== */

static void test_counting_backend_calls(void **state) {
  (void)state;
  tapi_clock clk = {0};
  tapi_clock_set(&clk, 5000);
  jobq_t *q = open_counting("counting:some/path?x=1", &clk);
  assert_int_equal(calls.open, 1);
  assert_string_equal(rec.open_url, "counting:some/path?x=1"); /* the whole URL */
  assert_non_null(rec.opened_state);

  /* submit -> insert */
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", "{\"n\":1}", NULL, id));
  assert_int_equal(calls.insert, 1);
  assert_int_equal(rec.insert_n, 1);
  assert_int_equal(rec.insert_now, 5000);
  assert_int_equal(rec.insert_force[0], 0);
  assert_string_equal(rec.insert_kind, "k");
  assert_ptr_equal(rec.seen_state, rec.opened_state);
  /* submit_many -> one insert of n */
  const char *kinds[] = {"k", "k", "k"};
  const char *payloads[] = {NULL, NULL, NULL};
  char ids[3 * JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit_many(q, 3, kinds, payloads, NULL, ids, NULL), 0);
  assert_int_equal(calls.insert, 2);
  assert_int_equal(rec.insert_n, 3);
  /* force reaches the backend */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  TAPI_OK(jobq_submit_opts_set_dedupe(so, "d", 0));
  TAPI_OK(jobq_submit_opts_set_force(so, 1));
  char fid[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "other", NULL, so, fid));
  assert_int_equal(rec.insert_force[0], 1);
  assert_string_equal(rec.insert_kind, "other");
  jobq_submit_opts_free(so);
  /* refused input never reaches storage */
  TAPI_ERR(JOBQ_EJSON, "jobq_submit", jobq_submit(q, "k", "{", NULL, id + 0));
  TAPI_ERR(JOBQ_EKIND, "jobq_submit", jobq_submit(q, "", NULL, NULL, fid));
  assert_int_equal(calls.insert, 3);

  /* get */
  tapi_clock_set(&clk, 6000);
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(calls.get, 1);
  assert_string_equal(rec.get_id, id);
  assert_int_equal(rec.get_now, 6000);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  jobq_job_free(j);

  /* claim */
  jobq_ctx_t *ctx = tapi_claim(q, "k");
  assert_true(calls.claim >= 1);
  assert_int_equal(rec.claim_max, 1);
  assert_int_equal(rec.claim_now, 6000);
  assert_int_equal(rec.claim_kinds_null, 0);
  assert_int_equal(rec.claim_n_kinds, 1);
  assert_string_equal(rec.claim_kind0, "k");
  assert_string_equal(jobq_ctx_id(ctx), id);
  /* progress at 100 is written through */
  TAPI_OK(jobq_ctx_progress(ctx, 100, "all"));
  assert_true(calls.progress >= 1);
  assert_string_equal(rec.progress_id, id);
  assert_int_equal(rec.progress_attempt, 1);
  assert_int_equal(rec.progress_percent, 100);
  assert_string_equal(rec.progress_step, "all");
  /* succeed -> finish */
  tapi_clock_set(&clk, 6500);
  TAPI_OK(jobq_ctx_succeed(ctx, "{\"ok\":1}"));
  assert_int_equal(calls.finish, 1);
  assert_int_equal(rec.finish_n, 1);
  assert_string_equal(rec.finish_id, id);
  assert_int_equal(rec.finish_attempt, 1);
  assert_int_equal(rec.finish_outcome, JOBQ_OUTCOME_SUCCEEDED);
  assert_string_equal(rec.finish_result, "{\"ok\":1}");
  assert_int_equal(rec.finish_now, 6500);
  assert_int_equal(tapi_state(q, id), JOBQ_SUCCEEDED);

  /* claim with any kind, fail retryable -> RETRY with run_at */
  ctx = tapi_claim(q, NULL);
  assert_int_equal(rec.claim_kinds_null, 1);
  const char *cid = ids;
  assert_string_equal(jobq_ctx_id(ctx), cid);
  TAPI_OK(jobq_ctx_fail(ctx, "try later", 1));
  assert_int_equal(calls.finish, 2);
  assert_int_equal(rec.finish_outcome, JOBQ_OUTCOME_RETRY);
  assert_string_equal(rec.finish_error, "try later");
  assert_int_equal(rec.finish_now, 6500);
  assert_true(rec.finish_run_at > 6500 && rec.finish_run_at <= 6500 + 1000);
  /* fail for good -> FAILED */
  ctx = tapi_claim(q, "k");
  assert_string_equal(jobq_ctx_id(ctx), ids + JOBQ_ID_SIZE);
  TAPI_OK(jobq_ctx_fail(ctx, "no", 0));
  assert_int_equal(rec.finish_outcome, JOBQ_OUTCOME_FAILED);
  assert_string_equal(rec.finish_error, "no");

  /* cancel */
  tapi_clock_set(&clk, 7000);
  TAPI_OK(jobq_cancel(q, ids + 2 * JOBQ_ID_SIZE));
  assert_int_equal(calls.cancel, 1);
  assert_string_equal(rec.cancel_id, ids + 2 * JOBQ_ID_SIZE);
  assert_int_equal(rec.cancel_now, 7000);

  /* list: the filter's fields reach the backend */
  jobq_filter_t *f = jobq_filter_new();
  TAPI_OK(jobq_filter_set_owner(f, "own"));
  TAPI_OK(jobq_filter_set_kind(f, "k"));
  TAPI_OK(jobq_filter_set_state(f, JOBQ_FAILED));
  TAPI_OK(jobq_filter_set_limit(f, 17));
  TAPI_OK(jobq_filter_set_newest_first(f, 0));
  TAPI_OK(jobq_filter_set_cursor(f, id));
  jobq_page_t *p = NULL;
  TAPI_OK(jobq_list(q, f, &p));
  jobq_page_free(p);
  assert_int_equal(calls.list, 1);
  assert_string_equal(rec.list_owner, "own");
  assert_string_equal(rec.list_kind, "k");
  assert_string_equal(rec.list_cursor, id);
  assert_int_equal(rec.list_state, JOBQ_FAILED);
  assert_int_equal(rec.list_limit, 17);
  assert_int_equal(rec.list_newest_first, 0);
  jobq_filter_free(f);
  TAPI_OK(jobq_list(q, NULL, &p)); /* defaults */
  assert_int_equal(jobq_page_count(p), 5);
  jobq_page_free(p);
  assert_string_equal(rec.list_owner, "(null)");
  assert_string_equal(rec.list_kind, "(null)");
  assert_string_equal(rec.list_cursor, "(null)");
  assert_int_equal(rec.list_state, -1);
  assert_int_equal(rec.list_limit, 50);
  assert_int_equal(rec.list_newest_first, 1);

  /* a claim that finds nothing due asks when the next job is */
  int before = calls.next_run_at;
  jobq_ctx_t *none = NULL;
  const char *nk[] = {"nothing-here", NULL};
  TAPI_ERR(JOBQ_ETIMEDOUT, "jobq_claim", jobq_claim(q, nk, 0, &none));
  assert_true(calls.next_run_at > before);

  /* close -> close, with the state open gave */
  assert_int_equal(calls.close, 0);
  tapi_close(q);
  assert_int_equal(calls.close, 1);
  assert_ptr_equal(rec.closed_state, rec.opened_state);
}

static void test_counting_queues_are_separate(void **state) {
  (void)state;
  jobq_t *a = open_counting("counting:", NULL);
  jobq_t *b = open_counting("counting:", NULL);
  assert_int_equal(calls.open, 2);
  char id[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(a, "k", NULL, NULL, id));
  jobq_job_t *j = NULL;
  TAPI_ERR(JOBQ_ENOTFOUND, "jobq_get", jobq_get(b, id, &j));
  assert_int_equal(tapi_count_jobs(a), 1);
  assert_int_equal(tapi_count_jobs(b), 0);
  tapi_close(a);
  tapi_close(b);
  assert_int_equal(calls.close, 2);
}

/* ======================================================================== */
/* backend failures                                                         */
/* ======================================================================== */

static void test_backend_failures_propagate(void **state) {
  (void)state;
  /* open */
  atomic_store(&fail.open, JOBQ_EIO);
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "counting:"));
  jobq_t *sentinel = (jobq_t *)&o, *q = sentinel;
  jobq_storage_set_error("");
  assert_int_equal(jobq_open(&q, o), JOBQ_EIO);
  assert_ptr_equal(q, sentinel);
  TAPI_ERR_HAS("counting: cannot open");
  assert_int_equal(calls.close, 0); /* nothing was opened */
  jobq_options_free(o);
  atomic_store(&fail.open, 0);

  q = open_counting("counting:", NULL);
  char id[JOBQ_ID_SIZE], id2[JOBQ_ID_SIZE];
  TAPI_OK(jobq_submit(q, "k", NULL, NULL, id));

  /* insert: the code and the backend's sentence; nothing stored */
  atomic_store(&fail.insert, JOBQ_EFULL);
  memset(id2, 'X', sizeof id2);
  jobq_storage_set_error("");
  assert_int_equal(jobq_submit(q, "k", NULL, NULL, id2), JOBQ_EFULL);
  TAPI_ERR_HAS("counting: disk full");
  assert_int_equal(id2[0], 'X');
  const char *kinds[] = {"k", "k"};
  const char *payloads[] = {NULL, NULL};
  char ids[2 * JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit_many(q, 2, kinds, payloads, NULL, ids, NULL), JOBQ_EFULL);
  atomic_store(&fail.insert, 0);
  assert_int_equal(tapi_count_jobs(q), 1);

  /* get, list */
  atomic_store(&fail.get, JOBQ_ECORRUPT);
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(q, id, &j), JOBQ_ECORRUPT);
  assert_null(j);
  atomic_store(&fail.get, 0);
  atomic_store(&fail.list, JOBQ_EBUSY);
  jobq_page_t *p = NULL;
  assert_int_equal(jobq_list(q, NULL, &p), JOBQ_EBUSY);
  assert_null(p);
  atomic_store(&fail.list, 0);

  /* claim: the backend's code, not "nothing due" */
  atomic_store(&fail.claim, JOBQ_ESTORAGE);
  jobq_ctx_t *ctx = NULL;
  assert_int_equal(jobq_claim(q, NULL, 0, &ctx), JOBQ_ESTORAGE);
  assert_null(ctx);
  atomic_store(&fail.claim, 0);
  assert_int_equal(tapi_state(q, id), JOBQ_QUEUED);

  /* finish: the attempt stays open, and a later succeed goes through */
  ctx = tapi_claim(q, "k");
  atomic_store(&fail.finish, JOBQ_ESTORAGE);
  jobq_storage_set_error("");
  assert_int_equal(jobq_ctx_succeed(ctx, "1"), JOBQ_ESTORAGE);
  TAPI_ERR_HAS("counting: finish broke");
  assert_int_equal(tapi_state(q, id), JOBQ_RUNNING);
  atomic_store(&fail.finish, 0);
  TAPI_OK(jobq_ctx_succeed(ctx, "2"));
  j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_string_equal(jobq_job_result(j), "2");
  jobq_job_free(j);
  tapi_close(q);
}

/* A backend that fails without a sentence: the core's fallback sentence
 * ("<function>: storage ...") must replace whatever an earlier failing call
 * on this thread left behind. */
static void test_silent_insert_failure_sentence(void **state) {
  (void)state;
  jobq_t *q = open_counting("counting:", NULL);
  atomic_store(&fail.say, 0);
  atomic_store(&fail.insert, JOBQ_ESTORAGE);
  jobq_job_t *j = NULL;
  /* an earlier, unrelated error on this thread */
  assert_int_equal(jobq_get(q, "no-such-id", &j), JOBQ_ENOTFOUND);
  assert_non_null(strstr(jobq_last_error(), "jobq_get"));
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", NULL, NULL, id), JOBQ_ESTORAGE);
  if (strstr(jobq_last_error(), "jobq_submit") == NULL)
    fail_msg("after a storage failure jobq_submit left the sentence \"%s\"", jobq_last_error());
  atomic_store(&fail.insert, 0);
  tapi_close(q);
}

static void test_silent_open_failure_sentence(void **state) {
  (void)state;
  atomic_store(&fail.say, 0);
  atomic_store(&fail.open, JOBQ_EIO);
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, "counting:"));
  /* an earlier, unrelated error on this thread */
  assert_int_equal(jobq_filter_set_limit(NULL, 5), JOBQ_EINVAL);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), JOBQ_EIO);
  if (strstr(jobq_last_error(), "jobq_filter_set_limit") != NULL ||
      strstr(jobq_last_error(), "counting:") == NULL)
    fail_msg("after the storage failed to open, jobq_open left the sentence \"%s\"",
             jobq_last_error());
  jobq_options_free(o);
}

/* ======================================================================== */
/* jobq_storage_job_clear, jobq_storage_set_error                           */
/* ======================================================================== */

static char *dupstr(const char *s) {
  char *d = malloc(strlen(s) + 1);
  assert_non_null(d);
  strcpy(d, s);
  return d;
}

static void test_job_clear(void **state) {
  (void)state;
  jobq_storage_job_clear(NULL);
  jobq_storage_job r;
  memset(&r, 0, sizeof r);
  jobq_storage_job_clear(&r); /* all NULL: fine */
  strcpy(r.id, "01890a5d-ac96-774b-bcce-b302099a8057");
  r.kind = dupstr("k");
  r.payload = dupstr("{}");
  r.owner = dupstr("o");
  r.step = dupstr("s");
  r.result = dupstr("1");
  r.error = dupstr("e");
  r.dedupe_key = dupstr("d");
  r.state = JOBQ_FAILED;
  r.attempts = 2;
  r.created_at = 99;
  r.n_attempt_log = 2;
  r.attempt_log = calloc(2, sizeof *r.attempt_log);
  assert_non_null(r.attempt_log);
  r.attempt_log[0].error = dupstr("a0");
  r.attempt_log[1].error = NULL;
  jobq_storage_job_clear(&r); /* frees everything (ASan would see a leak) */
  jobq_storage_job zero;
  memset(&zero, 0, sizeof zero);
  assert_memory_equal(&r, &zero, sizeof r);
  jobq_storage_job_clear(&r); /* again: harmless */
}

static void *set_error_thread(void *arg) {
  jobq_storage_set_error("from the other thread");
  snprintf(arg, 64, "%s", jobq_last_error());
  return NULL;
}

static void test_set_error(void **state) {
  (void)state;
  jobq_storage_set_error("backend says: no");
  assert_string_equal(jobq_last_error(), "backend says: no");
  char other[64];
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, set_error_thread, other), 0);
  pthread_join(t, NULL);
  assert_string_equal(other, "from the other thread");
  assert_string_equal(jobq_last_error(), "backend says: no"); /* per thread */
  jobq_storage_set_error("");
  assert_string_equal(jobq_last_error(), "");
  jobq_storage_set_error("x");
  jobq_storage_set_error(NULL);
  assert_string_equal(jobq_last_error(), "");
  /* printf-free: % is just a character */
  jobq_storage_set_error("100%s %d %n");
  assert_string_equal(jobq_last_error(), "100%s %d %n");
}

/* ======================================================================== */
/* the default work directory of a storage URL                              */
/* ======================================================================== */

/* jobq__default_workdir(url) is dir (made absolute against the working
 * directory when relative). */
static void expect_workdir(const char *url, const char *dir) {
  char want[4600];
  if (dir[0] == '/') {
    snprintf(want, sizeof want, "%s", dir);
  } else {
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/%s", cwd, dir);
  }
  char *got = jobq__default_workdir(url);
  assert_non_null(got);
  if (strcmp(got, want) != 0) fail_msg("default workdir of '%s': '%s', not '%s'", url, got, want);
  free(got);
}

static void test_default_workdir(void **state) {
  (void)state;
  /* SQLite: beside the database, without the URL's options */
  expect_workdir("sqlite:/var/lib/app/jobs.db", "/var/lib/app/jobs.db-work");
  expect_workdir("sqlite:/var/lib/app/jobs.db?durability=power&busy_timeout=10",
                 "/var/lib/app/jobs.db-work");
  expect_workdir("sqlite:jobs.db", "jobs.db-work");
  expect_workdir("sqlite:./sub/jobs.db?durability=crash", "sub/jobs.db-work");
  /* no path of its own: the working directory's jobq-work */
  expect_workdir("sqlite:", "jobq-work");
  expect_workdir("sqlite:?durability=power", "jobq-work");
  /* memory, and a host's backend, have no files: jobq-work */
  expect_workdir("memory:", "jobq-work");
  expect_workdir("counting:/srv/q.db", "jobq-work");

  /* And a queue opened without jobq_options_set_workdir uses it. */
  char dir[] = "/tmp/jobq-api-storage-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char url[128], want[128];
  snprintf(url, sizeof url, "sqlite:%s/q.db?durability=crash", dir);
  snprintf(want, sizeof want, "%s/q.db-work", dir);
  jobq_options_t *o = jobq_options_new();
  TAPI_OK(jobq_options_set_storage(o, url));
  TAPI_OK(jobq_options_set_workers(o, 0));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  assert_string_equal(jobq__workdir(q), want);
  TAPI_OK(jobq_close(q, 0));
  static const char *const files[] = {"q.db", "q.db-wal", "q.db-shm"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  assert_int_equal(rmdir(dir), 0); /* nothing else was made there */
}

/* A postgres:// URL in a program without libjobq-pg (this one links the
 * static libjobq alone, so the backend libjobq loads by itself can never
 * register here): JOBQ_EURL, a sentence naming libjobq-pg, and no password
 * quoted. Twice: the load is tried once, the sentence stays. */
static void test_postgres_without_libjobq_pg(void **state) {
  (void)state;
  static const char *const urls[] = {"postgres://u:pw-s3cr3t@127.0.0.1:5432/db",
                                     "postgresql://u:pw-s3cr3t@127.0.0.1/db?schema=x",
                                     "postgres://u:pw-s3cr3t@127.0.0.1:5432/db"};
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    jobq_options_t *o = jobq_options_new();
    TAPI_OK(jobq_options_set_storage(o, urls[i]));
    jobq_t *q = NULL;
    jobq_storage_set_error("");
    assert_int_equal(jobq_open(&q, o), JOBQ_EURL);
    assert_null(q);
    const char *e = jobq_last_error();
    assert_non_null(strstr(e, "install libjobq-pg"));
    assert_non_null(strstr(e, "jobq_postgres_register()"));
    assert_null(strstr(e, "s3cr3t"));
    jobq_options_free(o);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_postgres_without_libjobq_pg, reset),
    cmocka_unit_test_setup(test_ops_init, reset),
    cmocka_unit_test_setup(test_ops_init_writes_only_its_version, reset),
    cmocka_unit_test_setup(test_register_refusals, reset),
    cmocka_unit_test_setup(test_register_and_duplicate, reset),
    cmocka_unit_test_setup(test_counting_backend_calls, reset),
    cmocka_unit_test_setup(test_counting_queues_are_separate, reset),
    cmocka_unit_test_setup(test_backend_failures_propagate, reset),
    cmocka_unit_test_setup(test_silent_insert_failure_sentence, reset),
    cmocka_unit_test_setup(test_silent_open_failure_sentence, reset),
    cmocka_unit_test_setup(test_job_clear, reset),
    cmocka_unit_test_setup(test_set_error, reset),
    cmocka_unit_test_setup(test_default_workdir, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
