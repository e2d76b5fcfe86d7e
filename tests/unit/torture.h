/* The allocation-failure torture's machinery (after curl's "torture" runs),
 * shared by test_torture.c (the core) and test_torture_pipeline.c
 * (libjobq-stages). A scenario runs once to count the allocations made on
 * the test thread, then once more for each of them with exactly that
 * allocation failing. Every call must then either work or return
 * JOBQ_ENOMEM with a sentence; nothing may crash or leak (ASan/LSan builds
 * check leaks).
 *
 * Allocations are wrapped at link time (-Wl,--wrap=malloc,... in
 * CMakeLists.txt) and counted on the test thread only, so the count is the
 * same on every run. Include this header from one file per program. */
#ifndef JOBQ_TESTS_TORTURE_H
#define JOBQ_TESTS_TORTURE_H

#include <jobq.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);

static _Thread_local int armed;   /* count and fail on this thread only */
static _Thread_local long count;  /* allocations seen while armed */
static _Thread_local long fail_at; /* fail the allocation with this number; 0 none */

static int should_fail(void) {
  if (!armed) return 0;
  count++;
  return count == fail_at;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return should_fail() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }

/* Asserts rc is 0 or ENOMEM with a sentence; returns 1 when it was ENOMEM. */
static int oom(int rc, const char *what) {
  if (rc == JOBQ_ENOMEM) {
    assert_true(strlen(jobq_last_error()) > 0);
    return 1;
  }
  if (rc < 0) fail_msg("%s: unexpected %s: %s", what, jobq_err_name(rc), jobq_last_error());
  return 0;
}

/* Runs scenario once counting allocations (at least min_allocs), then once
 * with each allocation failing in turn. */
static void torture_run(void (*scenario)(void), long min_allocs, const char *name) {
  armed = 1;
  count = 0;
  fail_at = 0;
  scenario();
  armed = 0;
  long total = count;
  assert_true(total >= min_allocs); /* the scenario does allocate */
  for (long k = 1; k <= total; k++) {
    armed = 1;
    count = 0;
    fail_at = k;
    scenario();
    armed = 0;
  }
  print_message("torture (%s): %ld allocations, each failed once\n", name, total);
}

#endif
