/* Storage is never called under the core lock (docs/architecture.md,
 * "Threads"): a backend may block, and while it does every other thread
 * must still get through the core. The "lockprobe" backend is the memory
 * backend with an asynchronous finish; inside that finish it asks another
 * thread to read the job (jobq_get takes the core lock) and notes whether
 * the read could complete. */
#include "testutil.h"
#include "testutil_run.h"

#include "jobq/storage.h"

#include <pthread.h>

extern const jobq_storage_ops jobq__memory_ops;

#define N_JOBS 4
#define PROBE_WAIT_MS 2000

static jobq_t *g_q;
static atomic_int probes, blocked;
static tr_racer racers[N_JOBS * 2];
static char racer_ids[N_JOBS * 2][JOBQ_ID_SIZE];

/* Answers of asynchronous finishes, delivered from threads of their own
 * (never from inside finish_async, as storage.h asks). */
typedef struct delivery {
  pthread_t t;
  void (*done)(void *ud, int rc, const int *out_state);
  void *ud;
  int rc;
  int state;
} delivery;
static delivery deliveries[N_JOBS * 2];
static atomic_int n_deliveries;

static void read_job(void *arg) {
  jobq_job_t *j = NULL;
  jobq_get(g_q, arg, &j);
  jobq_job_free(j);
}

static void *deliver(void *p) {
  delivery *d = p;
  d->done(d->ud, d->rc, &d->state);
  return NULL;
}

static int lp_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}

static int lp_finish_async(void *st, const jobq_storage_finish *f, size_t n,
                           void (*done)(void *ud, int rc, const int *out_state), void *ud) {
  assert_int_equal(n, 1);
  int i = atomic_fetch_add(&probes, 1);
  if (i >= N_JOBS * 2) return JOBQ_EIO; /* more finishes than this test makes */
  memcpy(racer_ids[i], f->id, JOBQ_ID_SIZE);
  tr_racer_start(&racers[i], read_job, racer_ids[i]);
  if (!tr_racer_wait(&racers[i], PROBE_WAIT_MS)) atomic_fetch_add(&blocked, 1);
  delivery *d = &deliveries[i];
  d->done = done;
  d->ud = ud;
  d->rc = jobq__memory_ops.finish(st, f, 1, &d->state);
  atomic_fetch_add(&n_deliveries, 1);
  pthread_create(&d->t, NULL, deliver, d);
  return 0;
}

static void register_once(void) {
  static jobq_storage_ops ops;
  static int done;
  if (done) return;
  ops = jobq__memory_ops;
  ops.scheme = "lockprobe";
  ops.open = lp_open;
  ops.finish_async = lp_finish_async;
  assert_int_equal(jobq_storage_register(&ops), 0);
  done = 1;
}

static void succeed_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, "1");
}

static void test_finish_async_without_core_lock(void **state) {
  (void)state;
  register_once();
  tr_open_args a = {.workers = 2, .storage = "lockprobe:"};
  g_q = tr_open(&a);
  tr_register(g_q, "t", succeed_handler, NULL, NULL);
  assert_int_equal(jobq_start(g_q), 0);
  char ids[N_JOBS][JOBQ_ID_SIZE];
  for (int i = 0; i < N_JOBS; i++) tr_submit(g_q, "t", "{}", NULL, ids[i]);
  for (int i = 0; i < N_JOBS; i++) {
    jobq_job_t *j = tr_wait_terminal(g_q, ids[i], 30000);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    jobq_job_free(j);
  }
  int n = atomic_load(&probes);
  for (int i = 0; i < n && i < N_JOBS * 2; i++) tr_racer_join(&racers[i]);
  if (atomic_load(&blocked) != 0)
    fail_msg("BUG: in %d of %d asynchronous finishes a jobq_get on another thread could not "
             "take the core lock for %d ms: finish_async was called under it",
             atomic_load(&blocked), n, PROBE_WAIT_MS);
  assert_int_equal(n, N_JOBS);
  assert_int_equal(jobq_close(g_q, 5000), 0);
  for (int i = 0; i < atomic_load(&n_deliveries); i++) pthread_join(deliveries[i].t, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_finish_async_without_core_lock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
