/* Shared helpers for the test_run_*.c tests (static inline only: every test
 * program includes this header on its own).
 *
 *   - a fake clock (jobq_options_set_clock) and a fixed random source;
 *   - bounded waits that use real time only as failure guards;
 *   - "gate:" storage: the memory backend with a gate that can hold one
 *     claim or finish call after the memory backend has applied it, so that
 *     races between the core and storage can be reproduced exactly; its
 *     close records the stored jobs so tests can see what close left behind.
 */
#ifndef TESTUTIL_RUN_H
#define TESTUTIL_RUN_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"
#include "jobq/storage.h"

/* ---- time ---------------------------------------------------------------- */

static inline uint64_t tr_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void tr_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* The failure guard for "this normally takes a millisecond". */
#define TR_GUARD_MS 10000

/* A fake clock: jobq sees whatever the test sets. */
typedef struct tr_clock {
  _Atomic int64_t now;
} tr_clock;

static inline int64_t tr_clock_fn(void *ud) { return atomic_load(&((tr_clock *)ud)->now); }
static inline void tr_clock_set(tr_clock *c, int64_t t) { atomic_store(&c->now, t); }
static inline void tr_clock_add(tr_clock *c, int64_t d) { atomic_fetch_add(&c->now, d); }

/* A fixed "random" value for the backoff jitter. */
static inline double tr_random_fn(void *ud) { return *(const double *)ud; }

/* TR_FILTER=pattern runs only the matching tests (for debugging). */
static inline void tr_filter_from_env(void) {
  const char *f = getenv("TR_FILTER");
  if (f && *f) cmocka_set_test_filter(f);
}

/* Runs fn in a child process, for scenarios in which a bug crashes or hangs
 * the program: the test then fails with a sentence instead of taking the
 * other tests down. Call it while this process has no other threads. The
 * child must not use cmocka's asserts (return non-zero instead). *stage, if
 * given, is memory shared with the child (tr_shared_int) that it can set to
 * say how far it got. Returns 0 when fn returned 0; else fills why. */
typedef int (*tr_child_fn)(void *arg);

static inline volatile int *tr_shared_int(void) {
  void *p = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  *(volatile int *)p = 0;
  return p;
}

static inline int tr_fork_run(tr_child_fn fn, void *arg, unsigned guard_s, char *why,
                              size_t cap) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* cmocka's handlers would jump back into the test runner in the child. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    alarm(guard_s);
    _exit(fn(arg));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status)) {
    snprintf(why, cap, "the child exited with %d", WEXITSTATUS(status));
    return WEXITSTATUS(status);
  }
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  snprintf(why, cap, "the child was killed by signal %d (%s)", sig,
           sig == SIGALRM ? "hung: the guard alarm fired" : strsignal(sig));
  return 128 + sig;
}

/* A check inside a tr_fork_run child. */
#define TR_CHK(cond)                                                                       \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "child check failed: %s (%s:%d) [%s]\n", #cond, __FILE__, __LINE__, \
              jobq_last_error());                                                          \
      return 2;                                                                            \
    }                                                                                      \
  } while (0)

/* ---- opening ----------------------------------------------------------- */

typedef struct tr_open_args {
  int workers;          /* -1: default */
  tr_clock *clock;      /* NULL: real clock */
  const double *random; /* NULL: default */
  int event_buffer;     /* 0: default (buffering starts at first jobq_next_event) */
  const char *storage;  /* NULL: memory: */
  struct uv_loop_s *loop;
} tr_open_args;

static inline jobq_t *tr_open(const tr_open_args *a) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  if (a->workers >= 0) assert_int_equal(jobq_options_set_workers(o, a->workers), 0);
  if (a->clock) assert_int_equal(jobq_options_set_clock(o, tr_clock_fn, a->clock), 0);
  if (a->random)
    assert_int_equal(jobq_options_set_random(o, tr_random_fn, (void *)(uintptr_t)a->random), 0);
  if (a->event_buffer > 0) assert_int_equal(jobq_options_set_event_buffer(o, a->event_buffer), 0);
  if (a->storage) assert_int_equal(jobq_options_set_storage(o, a->storage), 0);
  if (a->loop) assert_int_equal(jobq_options_set_loop(o, a->loop), 0);
  jobq_t *q = NULL;
  int rc = jobq_open(&q, o);
  jobq_options_free(o);
  if (rc != 0) fail_msg("jobq_open: %s (%s)", jobq_err_name(rc), jobq_last_error());
  assert_non_null(q);
  return q;
}

/* A kind's options in one call. */
static inline jobq_kind_opts_t *tr_kind_opts(int concurrency, int max_attempts, int64_t base,
                                             int64_t max, double jitter, int64_t timeout_ms,
                                             int on_loop) {
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  assert_non_null(ko);
  assert_int_equal(jobq_kind_opts_set_concurrency(ko, concurrency), 0);
  assert_int_equal(jobq_kind_opts_set_max_attempts(ko, max_attempts), 0);
  assert_int_equal(jobq_kind_opts_set_backoff(ko, base, max, jitter), 0);
  assert_int_equal(jobq_kind_opts_set_timeout(ko, timeout_ms), 0);
  assert_int_equal(jobq_kind_opts_set_on_loop(ko, on_loop), 0);
  return ko;
}

static inline void tr_register(jobq_t *q, const char *kind, jobq_handler_fn fn, void *ud,
                               jobq_kind_opts_t *ko) {
  int rc = jobq_register(q, kind, fn, ud, ko);
  if (rc != 0) fail_msg("jobq_register(%s): %s (%s)", kind, jobq_err_name(rc), jobq_last_error());
  jobq_kind_opts_free(ko);
}

/* A handler for kinds that are only registered for their options. */
static inline void tr_never_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_fail(ctx, "tr_never_handler ran", 0);
}

static inline void tr_submit(jobq_t *q, const char *kind, const char *payload,
                             const jobq_submit_opts_t *so, char *id) {
  int rc = jobq_submit(q, kind, payload, so, id);
  if (rc != 0) fail_msg("jobq_submit(%s): %s (%s)", kind, jobq_err_name(rc), jobq_last_error());
  assert_int_equal((int)strlen(id), JOBQ_ID_SIZE - 1);
}

static inline jobq_submit_opts_t *tr_prio(int priority) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  assert_int_equal(jobq_submit_opts_set_priority(so, priority), 0);
  return so;
}

static inline jobq_ctx_t *tr_claim(jobq_t *q, const char *const *kinds) {
  jobq_ctx_t *ctx = NULL;
  int rc = jobq_claim(q, kinds, 0, &ctx);
  if (rc != 0) fail_msg("jobq_claim: %s (%s)", jobq_err_name(rc), jobq_last_error());
  assert_non_null(ctx);
  return ctx;
}

static inline void tr_claim_none(jobq_t *q, const char *const *kinds) {
  jobq_ctx_t *ctx = (jobq_ctx_t *)(uintptr_t)0x1;
  assert_int_equal(jobq_claim(q, kinds, 0, &ctx), JOBQ_ETIMEDOUT);
  assert_ptr_equal(ctx, (jobq_ctx_t *)(uintptr_t)0x1);
}

static inline jobq_job_t *tr_get(jobq_t *q, const char *id) {
  jobq_job_t *j = NULL;
  int rc = jobq_get(q, id, &j);
  if (rc != 0) fail_msg("jobq_get(%s): %s (%s)", id, jobq_err_name(rc), jobq_last_error());
  assert_non_null(j);
  return j;
}

static inline int tr_state(jobq_t *q, const char *id) {
  jobq_job_t *j = tr_get(q, id);
  int s = jobq_job_state(j);
  jobq_job_free(j);
  return s;
}

/* Blocks until the job is terminal (or until guard_ms passed: then returns
 * the last snapshot, which is not terminal). Uses jobq_wait, so no polling. */
static inline jobq_job_t *tr_wait_terminal(jobq_t *q, const char *id, int guard_ms) {
  uint64_t end = tr_mono_ms() + (uint64_t)guard_ms;
  jobq_job_t *j = tr_get(q, id);
  while (!jobq_state_is_terminal(jobq_job_state(j)) && tr_mono_ms() < end) {
    jobq_job_free(j);
    j = NULL;
    int rc = jobq_wait(q, id, 100, &j);
    if (rc != 0 && rc != JOBQ_ETIMEDOUT)
      fail_msg("jobq_wait(%s): %s (%s)", id, jobq_err_name(rc), jobq_last_error());
    assert_non_null(j);
  }
  return j;
}

/* Blocks until the job is in state with attempts attempts (bounded). */
static inline jobq_job_t *tr_wait_state(jobq_t *q, const char *id, int state, int attempts,
                                        int guard_ms) {
  uint64_t end = tr_mono_ms() + (uint64_t)guard_ms;
  jobq_job_t *j = tr_get(q, id);
  while (!(jobq_job_state(j) == state && jobq_job_attempts(j) == attempts) &&
         tr_mono_ms() < end) {
    jobq_job_free(j);
    j = NULL;
    int rc = jobq_wait(q, id, 100, &j);
    if (rc != 0 && rc != JOBQ_ETIMEDOUT)
      fail_msg("jobq_wait(%s): %s (%s)", id, jobq_err_name(rc), jobq_last_error());
    assert_non_null(j);
  }
  return j;
}

/* Spins (with short sleeps) until *flag != 0; 1 if it did within guard_ms. */
static inline int tr_wait_flag(atomic_int *flag, int guard_ms) {
  uint64_t end = tr_mono_ms() + (uint64_t)guard_ms;
  while (atomic_load(flag) == 0) {
    if (tr_mono_ms() >= end) return 0;
    tr_sleep_ms(1);
  }
  return 1;
}

/* Until *v >= n; 1 if it did within guard_ms. */
static inline int tr_wait_count(atomic_int *v, int n, int guard_ms) {
  uint64_t end = tr_mono_ms() + (uint64_t)guard_ms;
  while (atomic_load(v) < n) {
    if (tr_mono_ms() >= end) return 0;
    tr_sleep_ms(1);
  }
  return 1;
}

/* ---- events -------------------------------------------------------------- */

/* One event as a test remembers it. */
typedef struct tr_ev {
  char id[JOBQ_ID_SIZE];
  int type, state, progress, attempt;
  int64_t dropped;
  char step[32];
  char error[96];
  char result[64];
  int has_kind;
  pthread_t thread;
} tr_ev;

/* A mutex-protected event log that a subscriber appends to. */
typedef struct tr_log {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tr_ev *v;
  size_t n, cap;
  int terminal; /* terminal events seen */
} tr_log;

static inline void tr_log_init(tr_log *l) {
  memset(l, 0, sizeof *l);
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
}

static inline void tr_log_free(tr_log *l) {
  free(l->v);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
}

static inline int tr_ev_is_terminal(int type) {
  return type == JOBQ_EVENT_SUCCEEDED || type == JOBQ_EVENT_FAILED ||
         type == JOBQ_EVENT_CANCELLED;
}

static inline void tr_ev_fill(tr_ev *e, const jobq_event_t *ev) {
  memset(e, 0, sizeof *e);
  const char *id = jobq_event_job_id(ev);
  if (id) snprintf(e->id, sizeof e->id, "%s", id);
  e->type = jobq_event_type(ev);
  e->state = jobq_event_state(ev);
  e->progress = jobq_event_progress(ev);
  e->attempt = jobq_event_attempt(ev);
  e->dropped = jobq_event_dropped(ev);
  if (jobq_event_step(ev)) snprintf(e->step, sizeof e->step, "%s", jobq_event_step(ev));
  if (jobq_event_error(ev)) snprintf(e->error, sizeof e->error, "%s", jobq_event_error(ev));
  if (jobq_event_result(ev)) snprintf(e->result, sizeof e->result, "%s", jobq_event_result(ev));
  e->has_kind = jobq_event_kind(ev) != NULL;
  e->thread = pthread_self();
}

static inline void tr_log_add(tr_log *l, const jobq_event_t *ev) {
  pthread_mutex_lock(&l->mu);
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 256;
    tr_ev *nv = realloc(l->v, nc * sizeof *nv);
    if (nv == NULL) abort();
    l->v = nv;
    l->cap = nc;
  }
  tr_ev_fill(&l->v[l->n++], ev);
  if (tr_ev_is_terminal(jobq_event_type(ev))) l->terminal++;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

/* A subscriber callback: ud is a tr_log. */
static inline void tr_log_cb(const jobq_event_t *ev, void *ud) { tr_log_add((tr_log *)ud, ev); }

/* Waits until the log holds at least n terminal events; 1 if it did. */
static inline int tr_log_wait_terminal(tr_log *l, int n, int guard_ms) {
  uint64_t end = tr_mono_ms() + (uint64_t)guard_ms;
  pthread_mutex_lock(&l->mu);
  while (l->terminal < n) {
    uint64_t now = tr_mono_ms();
    if (now >= end) break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t left = end - now;
    if (left > 50) left = 50;
    ts.tv_nsec += (long)(left * 1000000u);
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&l->cv, &l->mu, &ts);
  }
  int ok = l->terminal >= n;
  pthread_mutex_unlock(&l->mu);
  return ok;
}

/* Waits until some event of type for id is in the log; 1 if it is. */
static inline int tr_log_wait_event(tr_log *l, const char *id, int type, int guard_ms) {
  uint64_t end = tr_mono_ms() + (uint64_t)guard_ms;
  for (;;) {
    pthread_mutex_lock(&l->mu);
    int found = 0;
    for (size_t i = 0; i < l->n && !found; i++)
      found = l->v[i].type == type && strcmp(l->v[i].id, id) == 0;
    pthread_mutex_unlock(&l->mu);
    if (found) return 1;
    if (tr_mono_ms() >= end) return 0;
    tr_sleep_ms(1);
  }
}

/* The types of id's events in log order, as a string like "1 2 3 5". */
static inline void tr_log_types(tr_log *l, const char *id, char *buf, size_t cap) {
  size_t o = 0;
  buf[0] = '\0';
  pthread_mutex_lock(&l->mu);
  for (size_t i = 0; i < l->n; i++) {
    if (strcmp(l->v[i].id, id) != 0) continue;
    int w = snprintf(buf + o, cap - o, "%s%s", o ? " " : "", jobq_event_type_name(l->v[i].type));
    if (w < 0 || (size_t)w >= cap - o) break;
    o += (size_t)w;
  }
  pthread_mutex_unlock(&l->mu);
}

/* Pulls every event available now (timeout 0) into the log. */
static inline int tr_pull_all(jobq_t *q, tr_log *l) {
  int n = 0;
  for (;;) {
    jobq_event_t *ev = NULL;
    int rc = jobq_next_event(q, 0, &ev);
    if (rc == JOBQ_ETIMEDOUT) return n;
    if (rc != 0) fail_msg("jobq_next_event: %s (%s)", jobq_err_name(rc), jobq_last_error());
    tr_log_add(l, ev);
    jobq_event_free(ev);
    n++;
  }
}

/* A call made on another thread while the test holds something (a storage
 * gate, a subscriber call) that the call may or may not wait for: a correct
 * library may serialize behind it or not. The test gives it a bounded window
 * (tr_racer_wait) before letting go, then joins. */
typedef struct tr_racer {
  pthread_t t;
  void (*fn)(void *);
  void *arg;
  atomic_int done;
} tr_racer;

static inline void *tr_racer_main(void *p) {
  tr_racer *r = p;
  r->fn(r->arg);
  atomic_store(&r->done, 1);
  return NULL;
}

static inline void tr_racer_start(tr_racer *r, void (*fn)(void *), void *arg) {
  r->fn = fn;
  r->arg = arg;
  atomic_store(&r->done, 0);
  pthread_create(&r->t, NULL, tr_racer_main, r);
}

/* 1 if the call returned within ms. */
static inline int tr_racer_wait(tr_racer *r, int ms) { return tr_wait_flag(&r->done, ms); }

static inline void tr_racer_join(tr_racer *r) { pthread_join(r->t, NULL); }

#define TR_RACE_WINDOW_MS 200

/* ---- "gate:" storage ------------------------------------------------------ */

extern const jobq_storage_ops jobq__memory_ops; /* lib/storage/memory.c */

#define TR_GATE_NONE 0
#define TR_GATE_FINISH 1 /* hold the next finish, after memory applied it */
#define TR_GATE_CLAIM 2  /* hold the next claim that got a job, after memory applied it */

typedef struct tr_snap {
  char id[JOBQ_ID_SIZE];
  int state, attempts;
} tr_snap;

typedef struct tr_gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int armed;   /* TR_GATE_* */
  int held;    /* a call waits at the gate */
  int open;    /* the test let it go */
  int closed;  /* the store was closed */
  tr_snap snap[64];
  int n_snap;
} tr_gate;

static inline tr_gate *tr_gate_get(void) {
  static tr_gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, {{{0}, 0, 0}}, 0};
  return &g;
}

static inline void tr_gate_pass(int point) {
  tr_gate *g = tr_gate_get();
  pthread_mutex_lock(&g->mu);
  if (g->armed == point) {
    g->armed = TR_GATE_NONE;
    g->held = 1;
    pthread_cond_broadcast(&g->cv);
    uint64_t end = tr_mono_ms() + 2 * TR_GUARD_MS; /* never hang a test run */
    while (!g->open && tr_mono_ms() < end) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 10 * 1000000L;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    g->held = 0;
    g->open = 0;
    pthread_cond_broadcast(&g->cv);
  }
  pthread_mutex_unlock(&g->mu);
}

static inline int tr_gate_open_store(const char *url, void **out) {
  (void)url;
  tr_gate *g = tr_gate_get();
  pthread_mutex_lock(&g->mu);
  g->closed = 0;
  g->n_snap = 0;
  pthread_mutex_unlock(&g->mu);
  return jobq__memory_ops.open("memory:", out);
}

static inline void tr_gate_close_store(void *st) {
  tr_gate *g = tr_gate_get();
  jobq_storage_filter f = {NULL, NULL, -1, 64, 0, NULL};
  jobq_storage_job *v = NULL;
  size_t n = 0;
  int more = 0;
  pthread_mutex_lock(&g->mu);
  g->n_snap = 0;
  if (jobq__memory_ops.list(st, &f, &v, &n, &more) == 0) {
    for (size_t i = 0; i < n && i < 64; i++) {
      memcpy(g->snap[i].id, v[i].id, JOBQ_ID_SIZE);
      g->snap[i].state = v[i].state;
      g->snap[i].attempts = v[i].attempts;
      g->n_snap++;
    }
    for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&v[i]);
    free(v);
  }
  g->closed = 1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
  jobq__memory_ops.close(st);
}

static inline int tr_gate_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out,
                                size_t *n_out) {
  int rc = jobq__memory_ops.claim(st, req, out, n_out);
  if (rc == 0 && *n_out > 0) tr_gate_pass(TR_GATE_CLAIM);
  return rc;
}

static inline int tr_gate_finish(void *st, const jobq_storage_finish *f, size_t n,
                                 int *out_state) {
  int rc = jobq__memory_ops.finish(st, f, n, out_state);
  tr_gate_pass(TR_GATE_FINISH);
  return rc;
}

/* Makes "gate:" available (once per process). */
static inline void tr_gate_register(void) {
  static jobq_storage_ops ops;
  static int done;
  if (done) return;
  ops = jobq__memory_ops;
  ops.scheme = "gate";
  ops.open = tr_gate_open_store;
  ops.close = tr_gate_close_store;
  ops.claim = tr_gate_claim;
  ops.finish = tr_gate_finish;
  int rc = jobq_storage_register(&ops);
  assert_true(rc == 0 || rc == JOBQ_EEXIST);
  done = 1;
}

static inline void tr_gate_arm(int point) {
  tr_gate *g = tr_gate_get();
  pthread_mutex_lock(&g->mu);
  g->armed = point;
  g->open = 0;
  pthread_mutex_unlock(&g->mu);
}

/* 1 once a call is held at the gate (bounded). */
static inline int tr_gate_wait_held(int guard_ms) {
  tr_gate *g = tr_gate_get();
  uint64_t end = tr_mono_ms() + (uint64_t)guard_ms;
  pthread_mutex_lock(&g->mu);
  while (!g->held && tr_mono_ms() < end) {
    pthread_mutex_unlock(&g->mu);
    tr_sleep_ms(1);
    pthread_mutex_lock(&g->mu);
  }
  int held = g->held;
  pthread_mutex_unlock(&g->mu);
  return held;
}

static inline void tr_gate_release(void) {
  tr_gate *g = tr_gate_get();
  pthread_mutex_lock(&g->mu);
  g->armed = TR_GATE_NONE;
  if (g->held) g->open = 1;
  pthread_cond_broadcast(&g->cv);
  while (g->held) pthread_cond_wait(&g->cv, &g->mu);
  g->open = 0;
  pthread_mutex_unlock(&g->mu);
}

/* What the store held for id when it was closed; 0 if found. */
static inline int tr_gate_snapshot(const char *id, int *state, int *attempts) {
  tr_gate *g = tr_gate_get();
  int rc = -1;
  pthread_mutex_lock(&g->mu);
  for (int i = 0; i < g->n_snap; i++) {
    if (strcmp(g->snap[i].id, id) == 0) {
      *state = g->snap[i].state;
      *attempts = g->snap[i].attempts;
      rc = 0;
    }
  }
  pthread_mutex_unlock(&g->mu);
  return rc;
}

static inline int tr_gate_store_closed(void) {
  tr_gate *g = tr_gate_get();
  pthread_mutex_lock(&g->mu);
  int c = g->closed;
  pthread_mutex_unlock(&g->mu);
  return c;
}

#endif
