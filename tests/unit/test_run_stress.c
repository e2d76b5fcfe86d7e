/* Stress: 4 submitting threads x 5000 jobs, 2 or 4 workers, handlers that
 * succeed, fail for retry (backoff 0: retried at once) or fail for good, and
 * a thread that cancels every 7th job meanwhile. Each handler's outcome is a
 * function of (job, attempt), so the end state of every job that was not
 * cancelled is known in advance. At the end every job must have reached
 * exactly one terminal state, seen by the subscriber as exactly one terminal
 * event, with one handler call per attempt. */
#include "testutil_run.h"

#include "util/map.h"

#define PER_THREAD 5000
#define SUBMITTERS 4
#define NJOBS (SUBMITTERS * PER_THREAD)
#define MAX_ATTEMPTS 3
#define CANCEL_EVERY 7
#define STRESS_GUARD_MS 120000

enum { O_SUCCEED, O_RETRY, O_FAIL };

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static int outcome(int i, int attempt) {
  int r = (int)(mix((uint64_t)i * 131 + (uint64_t)attempt) % 10);
  return r < 6 ? O_SUCCEED : r < 8 ? O_RETRY : O_FAIL;
}

/* The end of a job nobody cancelled. */
static void expected_end(int i, int *state, int *attempts) {
  for (int a = 1;; a++) {
    int o = outcome(i, a);
    if (o == O_SUCCEED || o == O_FAIL || a == MAX_ATTEMPTS) {
      *state = o == O_SUCCEED ? JOBQ_SUCCEEDED : JOBQ_FAILED;
      *attempts = a;
      return;
    }
  }
}

typedef struct rec {
  char id[JOBQ_ID_SIZE];
  uint8_t type;
} rec;

typedef struct stress {
  jobq_t *q;
  char (*ids)[JOBQ_ID_SIZE];
  atomic_int *ready;
  atomic_int *calls;
  int *cancel_rc;
  atomic_int finish_errors;
  atomic_int submit_errors;
  atomic_int terminal_seen;
  atomic_int cancel_timeouts;
  /* the subscriber's log (loop thread only; read after close) */
  rec *log;
  size_t n_log, cap_log;
  int log_oom;
} stress;

static int payload_index(const char *payload) {
  const char *p = strstr(payload, "\"i\":");
  return p ? atoi(p + 4) : -1;
}

static void stress_handler(jobq_ctx_t *ctx, void *ud) {
  stress *s = ud;
  int i = payload_index(jobq_ctx_payload(ctx));
  if (i < 0 || i >= NJOBS) {
    atomic_fetch_add(&s->finish_errors, 1);
    jobq_ctx_fail(ctx, "bad payload", 0);
    return;
  }
  atomic_fetch_add(&s->calls[i], 1);
  int rc;
  switch (outcome(i, jobq_ctx_attempt(ctx))) {
    case O_SUCCEED:
      rc = jobq_ctx_succeed(ctx, "true");
      break;
    case O_RETRY:
      rc = jobq_ctx_fail(ctx, "try again", 1);
      break;
    default:
      rc = jobq_ctx_fail(ctx, "no way", 0);
      break;
  }
  if (rc != 0) atomic_fetch_add(&s->finish_errors, 1);
}

static void stress_sub(const jobq_event_t *ev, void *ud) {
  stress *s = ud;
  int type = jobq_event_type(ev);
  if (type != JOBQ_EVENT_STARTED && !tr_ev_is_terminal(type)) return;
  if (s->n_log == s->cap_log) {
    size_t nc = s->cap_log ? s->cap_log * 2 : 4096;
    rec *nv = realloc(s->log, nc * sizeof *nv);
    if (nv == NULL) {
      s->log_oom = 1;
      return;
    }
    s->log = nv;
    s->cap_log = nc;
  }
  rec *r = &s->log[s->n_log++];
  memcpy(r->id, jobq_event_job_id(ev), JOBQ_ID_SIZE);
  r->type = (uint8_t)type;
  if (tr_ev_is_terminal(type)) atomic_fetch_add(&s->terminal_seen, 1);
}

/* Jobs to cancel: every CANCEL_EVERY-th; every other one of them delayed. */
static int is_cancel_target(int i) { return i % CANCEL_EVERY == CANCEL_EVERY / 2; }
static int is_delayed(int i) { return i % (2 * CANCEL_EVERY) == CANCEL_EVERY / 2; }

typedef struct submitter {
  stress *s;
  int t;
} submitter;

static void *submit_main(void *arg) {
  submitter *sb = arg;
  stress *s = sb->s;
  /* Half of the jobs to be cancelled are due in an hour: their cancel is
   * sure to find them queued. The other half race with the workers. */
  jobq_submit_opts_t *later = jobq_submit_opts_new();
  if (later == NULL || jobq_submit_opts_set_delay(later, 3600000) != 0)
    atomic_fetch_add(&s->submit_errors, 1);
  /* Interleaved indices, so the canceller finds work early everywhere. */
  for (int k = 0; k < PER_THREAD; k++) {
    int i = sb->t + k * SUBMITTERS;
    char payload[32];
    snprintf(payload, sizeof payload, "{\"i\":%d}", i);
    const jobq_submit_opts_t *so = is_delayed(i) ? later : NULL;
    if (jobq_submit(s->q, "stress", payload, so, s->ids[i]) != 0) {
      atomic_fetch_add(&s->submit_errors, 1);
      continue;
    }
    atomic_store(&s->ready[i], 1);
  }
  jobq_submit_opts_free(later);
  return NULL;
}

static void *cancel_main(void *arg) {
  stress *s = arg;
  for (int i = CANCEL_EVERY / 2; i < NJOBS; i += CANCEL_EVERY) {
    if (!tr_wait_flag(&s->ready[i], STRESS_GUARD_MS)) {
      atomic_fetch_add(&s->cancel_timeouts, 1);
      s->cancel_rc[i] = -99;
      continue;
    }
    s->cancel_rc[i] = jobq_cancel(s->q, s->ids[i]);
  }
  return NULL;
}

static void run_stress(int workers) {
  stress *s = calloc(1, sizeof *s);
  s->ids = calloc(NJOBS, sizeof *s->ids);
  s->ready = calloc(NJOBS, sizeof *s->ready);
  s->calls = calloc(NJOBS, sizeof *s->calls);
  s->cancel_rc = calloc(NJOBS, sizeof *s->cancel_rc);
  assert_non_null(s->ids);
  for (int i = 0; i < NJOBS; i++) s->cancel_rc[i] = 1; /* not asked */

  tr_open_args a = {.workers = workers};
  s->q = tr_open(&a);
  tr_register(s->q, "stress", stress_handler, s,
              tr_kind_opts(0, MAX_ATTEMPTS, 0, 0, 0.0, 0, 0));
  assert_int_equal(jobq_subscribe(s->q, stress_sub, s), 0);
  assert_int_equal(jobq_start(s->q), 0);

  pthread_t ts[SUBMITTERS], tc;
  submitter sb[SUBMITTERS];
  pthread_create(&tc, NULL, cancel_main, s);
  for (int t = 0; t < SUBMITTERS; t++) {
    sb[t].s = s;
    sb[t].t = t;
    pthread_create(&ts[t], NULL, submit_main, &sb[t]);
  }
  for (int t = 0; t < SUBMITTERS; t++) pthread_join(ts[t], NULL);
  pthread_join(tc, NULL);
  assert_int_equal(atomic_load(&s->submit_errors), 0);
  assert_int_equal(atomic_load(&s->cancel_timeouts), 0);

  /* Wait for every job to end (the bound is only a failure guard). */
  uint64_t end = tr_mono_ms() + STRESS_GUARD_MS;
  for (int i = 0; i < NJOBS; i++) {
    uint64_t now = tr_mono_ms();
    jobq_job_t *j = tr_wait_terminal(s->q, s->ids[i], now < end ? (int)(end - now) : 0);
    int st = jobq_job_state(j);
    int att = jobq_job_attempts(j);
    jobq_job_free(j);
    if (!jobq_state_is_terminal(st)) fail_msg("job %d is still %s", i, jobq_state_name(st));
    (void)att;
  }
  /* ... and for the subscriber to have heard of all of them. */
  while (atomic_load(&s->terminal_seen) < NJOBS && tr_mono_ms() < end) tr_sleep_ms(2);

  int n_state[5] = {0};
  int cancelled_asked = 0, cancelled_late = 0;
  for (int i = 0; i < NJOBS; i++) {
    jobq_job_t *j = tr_get(s->q, s->ids[i]);
    int st = jobq_job_state(j);
    int att = jobq_job_attempts(j);
    jobq_job_free(j);
    n_state[st]++;
    int calls = atomic_load(&s->calls[i]);
    if (calls != att) fail_msg("job %d: %d handler calls, %d attempts", i, calls, att);
    int rc = s->cancel_rc[i];
    if (is_delayed(i) && (rc != 0 || att != 0))
      fail_msg("delayed job %d: cancel returned %s, %d attempts", i, jobq_err_name(rc), att);
    if (is_cancel_target(i) != (rc != 1)) fail_msg("job %d: cancel bookkeeping", i);
    if (rc == 0) {
      cancelled_asked++;
      if (st != JOBQ_CANCELLED)
        fail_msg("job %d: cancel returned 0 but it ended %s", i, jobq_state_name(st));
      if (att > MAX_ATTEMPTS) fail_msg("job %d: %d attempts", i, att);
    } else {
      if (rc != 1 && rc != JOBQ_ESTATE)
        fail_msg("job %d: jobq_cancel returned %s", i, jobq_err_name(rc));
      if (rc == JOBQ_ESTATE) cancelled_late++;
      int est, eatt;
      expected_end(i, &est, &eatt);
      if (st != est || att != eatt)
        fail_msg("job %d: ended %s after %d attempts, expected %s after %d", i,
                 jobq_state_name(st), att, jobq_state_name(est), eatt);
    }
  }
  assert_int_equal(n_state[JOBQ_QUEUED], 0);
  assert_int_equal(n_state[JOBQ_RUNNING], 0);
  assert_int_equal(n_state[JOBQ_SUCCEEDED] + n_state[JOBQ_FAILED] + n_state[JOBQ_CANCELLED],
                   NJOBS);
  assert_int_equal(n_state[JOBQ_CANCELLED], cancelled_asked);
  assert_int_equal(cancelled_asked + cancelled_late, (NJOBS - CANCEL_EVERY / 2 + CANCEL_EVERY - 1) /
                                                         CANCEL_EVERY);
  assert_int_equal(atomic_load(&s->finish_errors), 0);

  /* Close first: then the subscriber's log is complete and still. */
  assert_int_equal(jobq_close(s->q, 1000), 0);
  assert_int_equal(s->log_oom, 0);
  jobq_map idx = {0};
  for (int i = 0; i < NJOBS; i++) assert_int_equal(jobq__map_put(&idx, s->ids[i], &s->ids[i]), 0);
  int *terminal = calloc(NJOBS, sizeof *terminal);
  int *term_type = calloc(NJOBS, sizeof *term_type);
  int *started = calloc(NJOBS, sizeof *started);
  for (size_t k = 0; k < s->n_log; k++) {
    char(*p)[JOBQ_ID_SIZE] = jobq__map_get(&idx, s->log[k].id);
    if (p == NULL) fail_msg("event for unknown job %s", s->log[k].id);
    int i = (int)(p - s->ids);
    if (s->log[k].type == JOBQ_EVENT_STARTED) {
      started[i]++;
    } else {
      terminal[i]++;
      term_type[i] = s->log[k].type;
    }
  }
  for (int i = 0; i < NJOBS; i++) {
    int calls = atomic_load(&s->calls[i]);
    if (terminal[i] != 1) fail_msg("job %d: %d terminal events", i, terminal[i]);
    if (started[i] != calls) fail_msg("job %d: %d started events, %d calls", i, started[i], calls);
    int want = s->cancel_rc[i] == 0 ? JOBQ_EVENT_CANCELLED : 0;
    if (want == 0) {
      int est, eatt;
      expected_end(i, &est, &eatt);
      want = est == JOBQ_SUCCEEDED ? JOBQ_EVENT_SUCCEEDED : JOBQ_EVENT_FAILED;
    }
    if (term_type[i] != want)
      fail_msg("job %d: terminal event %s, expected %s", i, jobq_event_type_name(term_type[i]),
               jobq_event_type_name(want));
  }
  /* Something of each kind happened (the delayed targets are cancelled for
   * sure; success and failure follow from outcome()). */
  assert_true(n_state[JOBQ_SUCCEEDED] > 0);
  assert_true(n_state[JOBQ_FAILED] > 0);
  assert_true(n_state[JOBQ_CANCELLED] >= NJOBS / (2 * CANCEL_EVERY));
  print_message("workers=%d: %d succeeded, %d failed, %d cancelled (%d cancels came late)\n",
                workers, n_state[JOBQ_SUCCEEDED], n_state[JOBQ_FAILED], n_state[JOBQ_CANCELLED],
                cancelled_late);

  jobq__map_free(&idx);
  free(terminal);
  free(term_type);
  free(started);
  free(s->log);
  free(s->ids);
  free((void *)s->ready);
  free((void *)s->calls);
  free(s->cancel_rc);
  free(s);
}

static void test_stress_2_workers(void **state) {
  (void)state;
  run_stress(2);
}

static void test_stress_4_workers(void **state) {
  (void)state;
  run_stress(4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_stress_2_workers),
    cmocka_unit_test(test_stress_4_workers),
  };
  tr_filter_from_env();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
