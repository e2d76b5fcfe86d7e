/* Progress writes of one attempt reach storage in the order the values were
 * taken. The maintenance thread writes coalesced progress some time after
 * it took the value; a checkpoint (or a handler's own progress write) that
 * comes meanwhile must not be overtaken by that older value, or the job
 * shows an older progress than its checkpoint, even after a restart.
 *
 * The "slowflush" backend is the memory backend whose progress write, once
 * armed, sleeps before it applies, as a write stuck behind a group commit
 * would; both progress and checkpoint writes note the value they stored,
 * in the order they were applied. */
#include "testutil.h"
#include "testutil_run.h"

#include "core/ext.h"
#include "jobq/storage.h"

#include <pthread.h>

extern const jobq_storage_ops jobq__memory_ops;

#define SLOW_MS 400

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static int applied[16];
static atomic_int n_applied;
static atomic_int armed, in_slow;

static void note(int v) {
  int i = atomic_load(&n_applied);
  if (i < 16) applied[i] = v;
  atomic_store(&n_applied, i + 1);
}

static int sf_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}

static int sf_progress(void *st, const char *id, int attempt, int percent, const char *step) {
  if (atomic_exchange(&armed, 0)) {
    atomic_store(&in_slow, 1);
    tr_sleep_ms(SLOW_MS);
  }
  pthread_mutex_lock(&rec_mu);
  int rc = jobq__memory_ops.progress(st, id, attempt, percent, step);
  if (rc == 0) note(percent);
  pthread_mutex_unlock(&rec_mu);
  atomic_store(&in_slow, 0);
  return rc;
}

static int sf_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                         int progress, const char *step) {
  pthread_mutex_lock(&rec_mu);
  int rc = jobq__memory_ops.checkpoint(st, id, attempt, stage, output, progress, step);
  if (rc == 0) note(progress);
  pthread_mutex_unlock(&rec_mu);
  return rc;
}

static void register_once(void) {
  static jobq_storage_ops ops;
  static int done;
  if (done) return;
  ops = jobq__memory_ops;
  ops.scheme = "slowflush";
  ops.open = sf_open;
  ops.progress = sf_progress;
  ops.checkpoint = sf_checkpoint;
  assert_int_equal(jobq_storage_register(&ops), 0);
  done = 1;
}

/* Starts an attempt whose coalesced progress (15) is being written, slowly,
 * by the maintenance thread, after a first direct write (10). */
static jobq_t *attempt_with_flush_in_flight(jobq_ctx_t **out) {
  register_once();
  atomic_store(&n_applied, 0);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, "slowflush:"), 0);
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "{}", NULL, id), 0);
  jobq_ctx_t *ctx = NULL;
  assert_int_equal(jobq_claim(q, NULL, 1000, &ctx), 0);
  assert_int_equal(jobq_ctx_progress(ctx, 10, "first"), 0); /* written at once */
  assert_int_equal(atomic_load(&n_applied), 1);
  atomic_store(&armed, 1);
  assert_int_equal(jobq_ctx_progress(ctx, 15, "second"), 0); /* coalesced: left to the timer */
  uint64_t t0 = tr_mono_ms();
  while (!atomic_load(&in_slow)) {
    if (tr_mono_ms() - t0 > 5000) fail_msg("the maintenance thread never wrote the progress");
    tr_sleep_ms(1);
  }
  *out = ctx;
  return q;
}

/* The values stored so far, copied under the lock (so that a failing
 * assertion never leaves it held). */
static int snapshot(int out[3]) {
  pthread_mutex_lock(&rec_mu);
  int n = atomic_load(&n_applied);
  for (int i = 0; i < 3; i++) out[i] = i < n ? applied[i] : -1;
  pthread_mutex_unlock(&rec_mu);
  return n;
}

static void finish(jobq_t *q, jobq_ctx_t *ctx) {
  assert_int_equal(jobq_ctx_succeed(ctx, "{}"), 0);
  assert_int_equal(jobq_close(q, 1000), 0);
}

static void test_checkpoint_after_flush(void **state) {
  (void)state;
  jobq_ctx_t *ctx = NULL;
  jobq_t *q = attempt_with_flush_in_flight(&ctx);
  /* The flush of 15 is asleep in storage: the checkpoint at 20 must land
   * after it, not before. */
  assert_int_equal(jobq__checkpoint(ctx, 0, "{\"stage\": 0}", 20, "checkpointed"), 0);
  while (atomic_load(&in_slow)) tr_sleep_ms(1);
  int v[3];
  int n = snapshot(v);
  finish(q, ctx);
  assert_int_equal(n, 3);
  assert_int_equal(v[0], 10);
  if (v[2] != 20)
    fail_msg("stored progress went 10, %d, %d: the older coalesced value landed after the "
             "checkpoint",
             v[1], v[2]);
}

/* A handler's own write (on a worker thread, 250 ms after the last one)
 * waits for the flush in flight the same way. */
static void test_direct_write_after_flush(void **state) {
  (void)state;
  jobq_ctx_t *ctx = NULL;
  jobq_t *q = attempt_with_flush_in_flight(&ctx);
  assert_int_equal(jobq_ctx_progress(ctx, 100, "done"), 0); /* 100 is always written */
  while (atomic_load(&in_slow)) tr_sleep_ms(1);
  int v[3];
  int n = snapshot(v);
  finish(q, ctx);
  assert_int_equal(n, 3);
  if (v[2] != 100)
    fail_msg("stored progress went 10, %d, %d: the older coalesced value landed last", v[1],
             v[2]);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_checkpoint_after_flush),
                                     cmocka_unit_test(test_direct_write_after_flush)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
