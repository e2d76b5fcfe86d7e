/* cron_bench: how long the next occurrence of a cron schedule takes to
 * compute. A program, not a test: it prints one line per figure and never
 * fails because the machine is slow.
 *
 *   cron_bench [--schedules N] [--rounds R] [--storage URL]
 *
 * N (default 10,000) varied schedules: expressions drawn from a fixed
 * pseudo-random sequence (single values, lists, ranges, steps, names, both
 * day fields, @-macros), each in one of UTC, fixed offsets and IANA zones
 * with DST on both hemispheres. Each round evaluates every schedule once,
 * from the instant the previous round reached for it.
 *
 *   cron_next_api_10000   jobq_cron_next: parse, zone lookup (cached), next
 *                         occurrence; ns per evaluation and ms per round
 *   cron_next_parsed_10000  the next occurrence alone on pre-parsed
 *                         schedules and resolved zones (what a scheduler
 *                         that keeps its schedules parsed pays)
 *
 * Then N schedules stored with jobq_cron_add (URL default
 * sqlite:/tmp/cron_bench.db, removed first), evaluated as a started
 * queue's maintenance thread does (jobq__cron_evaluate), under a fake clock:
 *
 *   cron_pass_none_due_10000   one pass that finds none due: with the list
 *                         read again (once a second) and between reads
 *   cron_fire_1000_of_10000    one pass in which 1,000 of them are due at
 *                         once: each fired in its own transaction */
#include <jobq.h>

#include "core/internal.h" /* jobq__cron_evaluate */
#include "util/cron.h"
#include "util/tz.h"

#include <unistd.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;
static unsigned rnd(unsigned n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *const zones[] = {
    NULL, "UTC", "+05:30", "-08:00", "America/New_York", "Europe/London", "Europe/Berlin",
    "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Australia/Lord_Howe",
    "America/Sao_Paulo", "Pacific/Auckland", "America/Los_Angeles"};
#define NZONES (sizeof zones / sizeof zones[0])

static void field(char *out, size_t n, int lo, int hi, const char *const *names) {
  int span = hi - lo + 1;
  switch (rnd(7)) {
    case 0: snprintf(out, n, "*"); break;
    case 1: snprintf(out, n, "*/%d", 1 + (int)rnd((unsigned)(span > 12 ? 12 : span))); break;
    case 2: {
      int a = lo + (int)rnd((unsigned)span), b = a + (int)rnd((unsigned)(hi - a + 1));
      snprintf(out, n, "%d-%d", a, b);
      break;
    }
    case 3: {
      int a = lo + (int)rnd((unsigned)span), b = lo + (int)rnd((unsigned)span);
      snprintf(out, n, "%d,%d", a < b ? a : b, a < b ? b : a);
      break;
    }
    case 4:
      if (names) {
        snprintf(out, n, "%s", names[rnd(hi == 12 ? 12 : 7)]);
        break;
      }
      /* fall through */
    default: snprintf(out, n, "%d", lo + (int)rnd((unsigned)span)); break;
  }
}

static _Atomic int64_t fake_now;
static int64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

/* Stored schedules: n of them, a tenth daily at 03:00 UTC, the rest on
 * 1 January (not due during the rounds). */
static int stored(const char *url, int n, int rounds) {
  if (strncmp(url, "sqlite:", 7) == 0) {
    char path[600];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
      snprintf(path, sizeof path, "%s%s", url + 7, suffix[i]);
      unlink(path);
    }
  }
  const int64_t t0300 = INT64_C(1767582000000); /* 2026-01-05T03:00Z */
  fake_now = t0300 - 30000;
  jobq_options_t *o = jobq_options_new();
  jobq_t *q = NULL;
  if (jobq_options_set_storage(o, url) || jobq_options_set_clock(o, fake_clock, NULL) ||
      jobq_open(&q, o)) {
    fprintf(stderr, "cron_bench: %s: %s\n", url, jobq_last_error());
    return 1;
  }
  jobq_options_free(o);
  int due = n / 10;
  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "s%05d", i);
    if (jobq_cron_add(q, name, i < due ? "0 3 * * *" : "0 4 1 1 *", NULL, "bench", "{}", NULL)) {
      fprintf(stderr, "cron_bench: add: %s\n", jobq_last_error());
      return 1;
    }
  }
  /* The queue is not started: only this thread evaluates. */
  jobq__cron_evaluate(q, fake_now); /* first read */
  uint64_t read_ns = 0, cached_ns = 0, fire_ns = 0;
  for (int r = 0; r < rounds; r++) {
    uv_mutex_lock(&q->mu);
    q->cron.changed = 1;
    uv_mutex_unlock(&q->mu);
    uint64_t t = now_ns();
    jobq__cron_evaluate(q, fake_now); /* reads the list */
    read_ns += now_ns() - t;
    t = now_ns();
    jobq__cron_evaluate(q, fake_now); /* between reads */
    cached_ns += now_ns() - t;
  }
  int fire_rounds = rounds < 5 ? rounds : 5;
  for (int r = 0; r < fire_rounds; r++) {
    fake_now = t0300 + r * INT64_C(86400000);
    uint64_t t = now_ns();
    jobq__cron_evaluate(q, fake_now);
    fire_ns += now_ns() - t;
  }
  jobq_filter_t *f = jobq_filter_new();
  jobq_filter_set_limit(f, 1000);
  size_t jobs = 0;
  for (;;) {
    jobq_page_t *pg = NULL;
    if (jobq_list(q, f, &pg) != 0) return 1;
    jobs += jobq_page_count(pg);
    const char *cur = jobq_page_next_cursor(pg);
    if (cur) jobq_filter_set_cursor(f, cur);
    jobq_page_free(pg);
    if (cur == NULL) break;
  }
  jobq_filter_free(f);
  if (jobs != (size_t)due * (size_t)fire_rounds) {
    fprintf(stderr, "cron_bench: %zu jobs stored, expected %d\n", jobs, due * fire_rounds);
    return 1;
  }
  printf("cron_pass_none_due_%d (%s): %.2f ms with the list read, %.3f ms between reads (%d rounds)\n",
         n, url, (double)read_ns / 1e6 / rounds, (double)cached_ns / 1e6 / rounds, rounds);
  printf("cron_fire_%d_of_%d (%s): %.1f ms per pass, %.1f us per schedule fired (%d rounds)\n", due,
         n, url, (double)fire_ns / 1e6 / fire_rounds, (double)fire_ns / 1e3 / fire_rounds / due,
         fire_rounds);
  jobq_close(q, 0);
  return 0;
}

int main(int argc, char **argv) {
  int n = 10000, rounds = 20;
  const char *url = "sqlite:/tmp/cron_bench.db";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--schedules") == 0 && i + 1 < argc) n = atoi(argv[++i]);
    else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc) url = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--schedules N] [--rounds R] [--storage URL]\n", argv[0]);
      return 2;
    }
  }
  if (n < 10 || rounds < 1) {
    fprintf(stderr, "cron_bench: --schedules at least 10, --rounds at least 1\n");
    return 2;
  }
  static const char *const months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  static const char *const days[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};
  static const char *const macros[] = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly"};
  char(*expr)[128] = calloc((size_t)n, sizeof *expr);
  const char **tz = calloc((size_t)n, sizeof *tz);
  jobq__cron *parsed = calloc((size_t)n, sizeof *parsed);
  const jobq__tz **zone = calloc((size_t)n, sizeof *zone);
  int64_t *at = calloc((size_t)n, sizeof *at), *at2 = calloc((size_t)n, sizeof *at2);
  if (!expr || !tz || !parsed || !zone || !at || !at2) return 1;
  const int64_t start = INT64_C(1767225600000); /* 2026-01-01T00:00Z */
  for (int i = 0; i < n; i++) {
    if (rnd(20) == 0) {
      snprintf(expr[i], sizeof expr[i], "%s", macros[rnd(5)]);
    } else {
      char f[5][24];
      field(f[0], sizeof f[0], 0, 59, NULL);
      field(f[1], sizeof f[1], 0, 23, NULL);
      /* mostly unrestricted days, as real schedules are */
      if (rnd(3) == 0) field(f[2], sizeof f[2], 1, 28, NULL);
      else snprintf(f[2], sizeof f[2], "*");
      if (rnd(4) == 0) field(f[3], sizeof f[3], 1, 12, months);
      else snprintf(f[3], sizeof f[3], "*");
      if (rnd(3) == 0) field(f[4], sizeof f[4], 0, 6, days);
      else snprintf(f[4], sizeof f[4], "*");
      snprintf(expr[i], sizeof expr[i], "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
    }
    tz[i] = zones[rnd(NZONES)];
    if (jobq__cron_parse("bench", expr[i], &parsed[i]) != 0 ||
        jobq__tz_get("bench", tz[i], &zone[i]) != 0) {
      fprintf(stderr, "cron_bench: '%s' in %s: %s\n", expr[i], tz[i] ? tz[i] : "UTC",
              jobq_last_error());
      return 1;
    }
    at[i] = at2[i] = start + (int64_t)rnd(86400) * 1000;
  }

  /* warm-up: zones loaded, caches hot */
  for (int i = 0; i < n; i++) {
    int64_t t;
    if (jobq_cron_next(expr[i], tz[i], at[i], &t) != 0) return 1;
  }
  uint64_t t0 = now_ns();
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < n; i++)
      if (jobq_cron_next(expr[i], tz[i], at[i], &at[i]) != 0) return 1;
  uint64_t api = now_ns() - t0;
  t0 = now_ns();
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < n; i++)
      if (jobq__cron_next("bench", &parsed[i], zone[i], at2[i], &at2[i]) != 0) return 1;
  uint64_t raw = now_ns() - t0;
  for (int i = 0; i < n; i++)
    if (at[i] != at2[i]) {
      fprintf(stderr, "cron_bench: '%s' disagrees: %lld vs %lld\n", expr[i], (long long)at[i],
              (long long)at2[i]);
      return 1;
    }
  double evals = (double)n * rounds;
  printf("cron_next_api_%d: %.0f ns per evaluation, %.2f ms per round of %d schedules (%d rounds)\n",
         n, (double)api / evals, (double)api / 1e6 / rounds, n, rounds);
  printf("cron_next_parsed_%d: %.0f ns per evaluation, %.2f ms per round of %d schedules (%d rounds)\n",
         n, (double)raw / evals, (double)raw / 1e6 / rounds, n, rounds);
  free(expr);
  free(tz);
  free(parsed);
  free(zone);
  free(at);
  free(at2);
  return stored(url, n, rounds);
}
