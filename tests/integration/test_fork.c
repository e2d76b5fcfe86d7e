/* fork() while SQLite queues are open, as pre-fork servers and Python's
 * multiprocessing do: the child opens a queue of its own and uses it (it
 * used to hang on a lock that a parent thread held at the fork), the
 * parent's queues keep working, and the child is refused the queues it
 * inherited instead of touching the parent's threads and files.
 *
 * Each child gets 10 s; one that is still running then is killed and the
 * test fails (that is a hang, however slow the machine). */
#include <jobq.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Under the sanitizers the children would fail for the sanitizers' own
 * reasons: ThreadSanitizer stops a child that starts threads after a fork
 * of a threaded process (its die_after_fork), which every jobq_open does,
 * and AddressSanitizer's allocator takes a lock of its own that a fork can
 * leave held in the child (seen with GCC 12's). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#  define UNDER_SANITIZER 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#    define UNDER_SANITIZER 1
#  endif
#endif
#ifndef UNDER_SANITIZER
#  define UNDER_SANITIZER 0
#endif

static char dir[64];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/jobq-fork-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void url_of(const char *name, char *url, size_t size) {
  snprintf(url, size, "sqlite:%s/%s", dir, name);
}

static int open_q(jobq_t **q, const char *name, int workers) {
  char url[160];
  url_of(name, url, sizeof url);
  jobq_options_t *o = jobq_options_new();
  if (o == NULL) return JOBQ_ENOMEM;
  int rc = jobq_options_set_storage(o, url);
  if (rc == 0) rc = jobq_options_set_workers(o, workers);
  if (rc == 0) rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc;
}

static void ok_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
}

/* Keeps the parent's queue (and so SQLite) busy from another thread, so
 * that forks happen while that thread is inside SQLite or libjobq. */
static jobq_t *busy_q;
static atomic_int busy_stop;

static void *busy_main(void *arg) {
  (void)arg;
  char id[JOBQ_ID_SIZE];
  while (!atomic_load(&busy_stop)) {
    if (jobq_submit(busy_q, "busy", "1", NULL, id) != 0) continue;
    jobq_job_t *j = NULL;
    if (jobq_get(busy_q, id, &j) == 0) jobq_job_free(j);
  }
  return NULL;
}

/* Waits for the child up to 10 s; kills it after that. The exit status,
 * or -1 for a hang, -2 for a signal. */
static int wait_child(pid_t pid) {
  struct timespec nap = {0, 10 * 1000 * 1000};
  for (int i = 0; i < 1000; i++) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
    nanosleep(&nap, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* In the child: a queue of its own on another file, a job in and out. */
static int child_own_queue(int round) {
  char name[32];
  snprintf(name, sizeof name, "child-%d.db", round);
  jobq_t *c;
  if (open_q(&c, name, 0) != 0) return 10;
  char id[JOBQ_ID_SIZE];
  if (jobq_submit(c, "k", "{\"n\":1}", NULL, id) != 0) return 11;
  jobq_ctx_t *ctx = NULL;
  if (jobq_claim(c, NULL, 0, &ctx) != 0 || ctx == NULL) return 12;
  if (jobq_ctx_succeed(ctx, NULL) != 0) return 13;
  jobq_job_t *j = NULL;
  int rc = jobq_wait(c, id, 5000, &j);
  if (rc != 0 || jobq_job_state(j) != JOBQ_SUCCEEDED) {
    fprintf(stderr, "child: wait %s (%s), state %d\n", jobq_err_name(rc), jobq_last_error(),
            rc == 0 ? jobq_job_state(j) : -1);
    return 14;
  }
  jobq_job_free(j);
  if (jobq_close(c, 0) != 0) return 15;
  return 0;
}

static void fork_rounds(int start) {
  if (UNDER_SANITIZER) skip();
  jobq_t *q;
  assert_int_equal(open_q(&q, "parent.db", 2), 0);
  assert_int_equal(jobq_register(q, "busy", ok_handler, NULL, NULL), 0);
  if (start) assert_int_equal(jobq_start(q), 0);
  busy_q = q;
  atomic_store(&busy_stop, 0);
  pthread_t busy;
  assert_int_equal(pthread_create(&busy, NULL, busy_main, NULL), 0);
  int hung = 0, failed = 0;
  for (int round = 0; round < 20; round++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_own_queue(round));
    int rc = wait_child(pid);
    if (rc == -1) {
      hung++;
      break; /* one is enough */
    } else if (rc != 0) {
      failed++;
      print_message("round %d: the child exited with %d\n", round, rc);
    }
  }
  atomic_store(&busy_stop, 1);
  pthread_join(busy, NULL);
  /* The parent's queue still works. */
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "busy", "2", NULL, id), 0);
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(q, id, &j), 0);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 0), 0);
  if (hung || failed) fail_msg("forked children: %d hung, %d failed", hung, failed);
}

static void test_fork_then_open_stopped(void **state) {
  (void)state;
  fork_rounds(0);
}

static void test_fork_then_open_started(void **state) {
  (void)state;
  fork_rounds(1);
}

/* The child is refused the queue it inherited, with a sentence that says
 * why, and closing it there leaves the parent's queue alone; opening the
 * same file again in the child is refused too (SQLite's per-process file
 * bookkeeping came along from the parent). */
static int child_inherited(jobq_t *q, jobq_ctx_t *held) {
  char id[JOBQ_ID_SIZE];
  int rc = jobq_submit(q, "k", "1", NULL, id);
  if (rc != JOBQ_ENOTSUP) return 20;
  if (strstr(jobq_last_error(), "fork") == NULL) return 21;
  jobq_job_t *j = NULL;
  if (jobq_get(q, "nope", &j) != JOBQ_ENOTSUP) return 22;
  jobq_ctx_t *ctx = NULL;
  if (jobq_claim(q, NULL, 0, &ctx) != JOBQ_ENOTSUP) return 23;
  if (held != NULL && jobq_ctx_succeed(held, NULL) != JOBQ_ENOTSUP) return 28;
  if (jobq_close(q, 0) != 0) return 24;
  jobq_t *again;
  rc = open_q(&again, "parent.db", 0);
  if (rc != JOBQ_ENOTSUP) return 25;
  if (strstr(jobq_last_error(), "fork") == NULL) return 26;
  /* another file is fine */
  return child_own_queue(99) ? 27 : 0;
}

static void test_fork_inherited_queue(void **state) {
  (void)state;
  if (UNDER_SANITIZER) skip();
  jobq_t *q;
  assert_int_equal(open_q(&q, "parent.db", 1), 0);
  assert_int_equal(jobq_register(q, "k", ok_handler, NULL, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE], held_id[JOBQ_ID_SIZE];
  /* an attempt claimed by hand before the fork, finished by the parent */
  assert_int_equal(jobq_submit(q, "manual", "1", NULL, held_id), 0);
  jobq_ctx_t *held = NULL;
  const char *manual[] = {"manual", NULL};
  assert_int_equal(jobq_claim(q, manual, 0, &held), 0);
  assert_non_null(held);
  assert_int_equal(jobq_submit(q, "k", "1", NULL, id), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(child_inherited(q, held));
  int rc = wait_child(pid);
  if (rc != 0) fail_msg("the child exited with %d (-1: hung)", rc);
  /* The parent's queue is untouched by the child's close. */
  assert_int_equal(jobq_ctx_succeed(held, NULL), 0);
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_wait(q, id, 10000, &j), 0);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  assert_int_equal(jobq_submit(q, "k", "2", NULL, id), 0);
  assert_int_equal(jobq_close(q, 5000), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_fork_then_open_stopped, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fork_then_open_started, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fork_inherited_queue, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
