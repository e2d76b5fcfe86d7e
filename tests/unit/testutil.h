/* Shared helpers for the unit tests (static inline only: every .c file in
 * tests/unit that is not a test_*.c is linked into every test program, so
 * helpers live here instead). Each engineer's helpers sit in their own
 * section with their own prefix. */
#ifndef JOBQ_TESTS_UNIT_TESTUTIL_H
#define JOBQ_TESTS_UNIT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"

#endif /* JOBQ_TESTS_UNIT_TESTUTIL_H */

/* ---- helpers of the test_api_*.c tests (prefix tapi_ / TAPI_) ------------ */
#ifndef JOBQ_TESTS_UNIT_TESTUTIL_TAPI
#define JOBQ_TESTS_UNIT_TESTUTIL_TAPI

#include "jobq/storage.h" /* jobq_storage_set_error */

/* Fails unless rc == want and jobq_last_error() is a non-empty sentence that
 * contains fn (the function that failed). */
static inline void tapi_check_err(long long rc, long long want, const char *fn, const char *expr,
                                  const char *file, int line) {
  const char *e = jobq_last_error();
  int ok = rc == want && e != NULL && e[0] != '\0' && (fn == NULL || strstr(e, fn) != NULL);
  if (!ok) {
    print_error("%s:%d: %s\n    returned %lld (%s), expected %lld (%s)\n"
                "    jobq_last_error() = \"%s\" (must be non-empty and name %s)\n",
                file, line, expr, rc, jobq_err_name((int)rc), want, jobq_err_name((int)want),
                e ? e : "(NULL)", fn ? fn : "-");
    _fail(file, line);
  }
}

/* Clears the calling thread's error sentence first, so that a sentence left
 * over from an earlier call cannot pass for this call's. */
#define TAPI_ERR(want, fn, expr)                                                  \
  do {                                                                            \
    jobq_storage_set_error("");                                                   \
    long long tapi_rc_ = (long long)(expr);                                       \
    tapi_check_err(tapi_rc_, (long long)(want), (fn), #expr, __FILE__, __LINE__); \
  } while (0)

#define TAPI_OK(expr)                                                                  \
  do {                                                                                 \
    long long tapi_rc_ = (long long)(expr);                                            \
    if (tapi_rc_ != 0) {                                                               \
      print_error("%s:%d: %s\n    returned %lld (%s): %s\n", __FILE__, __LINE__, #expr, \
                  tapi_rc_, jobq_err_name((int)tapi_rc_), jobq_last_error());          \
      _fail(__FILE__, __LINE__);                                                       \
    }                                                                                  \
  } while (0)

/* The last error sentence contains needle. */
#define TAPI_ERR_HAS(needle)                                                              \
  do {                                                                                    \
    if (strstr(jobq_last_error(), (needle)) == NULL) {                                    \
      print_error("%s:%d: jobq_last_error() = \"%s\" does not contain \"%s\"\n", __FILE__, \
                  __LINE__, jobq_last_error(), (needle));                                 \
      _fail(__FILE__, __LINE__);                                                          \
    }                                                                                     \
  } while (0)

/* A clock the test moves by hand. */
typedef struct tapi_clock {
  _Atomic int64_t now;
} tapi_clock;

static inline int64_t tapi_clock_fn(void *ud) { return atomic_load(&((tapi_clock *)ud)->now); }
static inline void tapi_clock_set(tapi_clock *c, int64_t now) { atomic_store(&c->now, now); }

/* Opens a memory queue without worker threads (jobq_start is never called);
 * clk may be NULL for the real clock, max_payload 0 for the default. */
static inline jobq_t *tapi_open(tapi_clock *clk, size_t max_payload) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  TAPI_OK(jobq_options_set_storage(o, "memory:"));
  TAPI_OK(jobq_options_set_workers(o, 0));
  if (clk) TAPI_OK(jobq_options_set_clock(o, tapi_clock_fn, clk));
  if (max_payload) TAPI_OK(jobq_options_set_max_payload(o, max_payload));
  jobq_t *q = NULL;
  TAPI_OK(jobq_open(&q, o));
  jobq_options_free(o);
  assert_non_null(q);
  return q;
}

static inline void tapi_close(jobq_t *q) { TAPI_OK(jobq_close(q, 1000)); }

/* How many jobs jobq_list sees (all pages). */
static inline size_t tapi_count_jobs(jobq_t *q) {
  jobq_filter_t *f = jobq_filter_new();
  assert_non_null(f);
  TAPI_OK(jobq_filter_set_limit(f, 1000));
  size_t total = 0;
  for (;;) {
    jobq_page_t *p = NULL;
    TAPI_OK(jobq_list(q, f, &p));
    total += jobq_page_count(p);
    const char *c = jobq_page_next_cursor(p);
    if (c == NULL) {
      jobq_page_free(p);
      break;
    }
    TAPI_OK(jobq_filter_set_cursor(f, c));
    jobq_page_free(p);
  }
  jobq_filter_free(f);
  return total;
}

/* Claims the next due job of kind (NULL: any) without waiting; must succeed. */
static inline jobq_ctx_t *tapi_claim(jobq_t *q, const char *kind) {
  const char *kinds[2] = {kind, NULL};
  jobq_ctx_t *ctx = NULL;
  TAPI_OK(jobq_claim(q, kind ? kinds : NULL, 0, &ctx));
  assert_non_null(ctx);
  return ctx;
}

/* The job's state now (asserts that it exists). */
static inline int tapi_state(jobq_t *q, const char *id) {
  jobq_job_t *j = NULL;
  TAPI_OK(jobq_get(q, id, &j));
  int s = jobq_job_state(j);
  jobq_job_free(j);
  return s;
}

static inline char *tapi_repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* Text that is not valid UTF-8, each with the offset of its first bad byte:
 * a stray continuation byte, overlong forms, surrogates, code points above
 * U+10FFFF, bytes that never occur, sequences cut short. */
static const struct {
  const char *s;
  size_t at;
} tapi_bad_utf8[] __attribute__((unused)) = {
  {"\x80", 0},
  {"ab\xbf", 2},
  {"\xc0\x80", 0},             /* overlong NUL */
  {"\xc1\xbf", 0},             /* overlong '\x7f' */
  {"x\xe0\x80\xaf", 1},        /* overlong '/' in three bytes */
  {"\xf0\x8f\xbf\xbf", 0},     /* overlong U+FFFF in four bytes */
  {"\xed\xa0\x80", 0},         /* U+D800, a surrogate */
  {"\xed\xbf\xbf", 0},         /* U+DFFF */
  {"\xf4\x90\x80\x80", 0},     /* U+110000 */
  {"\xf5\x80\x80\x80", 0},
  {"\xff", 0},
  {"Zo\xc3", 2},               /* cut at the end */
  {"\xe2\x82 euro", 0},        /* cut in the middle */
  {"caf\xe9", 3},              /* Latin-1, not UTF-8 */
};
#define TAPI_N_BAD_UTF8 (sizeof tapi_bad_utf8 / sizeof tapi_bad_utf8[0])

/* Valid UTF-8 of every length, up to the last code point. */
static const char *const tapi_good_utf8[] __attribute__((unused)) = {
  "plain", "Zo\xc3\xab", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x8e\x99 podcast",
  "\xef\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "\xc2\x80",
};
#define TAPI_N_GOOD_UTF8 (sizeof tapi_good_utf8 / sizeof tapi_good_utf8[0])

/* Fails unless the last error is JOBQ_EINVAL's sentence for text that is not
 * valid UTF-8, naming fn and what. */
#define TAPI_ERR_UTF8(fn, what, expr)                                  \
  do {                                                                \
    TAPI_ERR(JOBQ_EINVAL, fn, expr);                                  \
    TAPI_ERR_HAS(what " is not valid UTF-8");                         \
  } while (0)

#endif /* JOBQ_TESTS_UNIT_TESTUTIL_TAPI */
