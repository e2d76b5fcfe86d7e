/* Fuzz target: the cron parser and jobq_cron_next. Input: three lines, the
 * time zone (empty = UTC), after_ms in decimal, and the expression. Whatever
 * the input, the answer is a code from the documented set; a success is
 * strictly later than after_ms and nothing is written on failure. In UTC a
 * parsed expression is also checked against a plain minute-by-minute scan
 * (with gmtime_r, independent of the code under test) whenever the answer is
 * at most a day ahead: no earlier minute may match, the answer must. */
#include "util/cron.h"

#include <jobq.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int matches(const jobq__cron *c, time_t s) {
  struct tm tm;
  gmtime_r(&s, &tm);
  int dom = c->dom >> tm.tm_mday & 1, dow = c->dow >> tm.tm_wday & 1;
  int day = (c->flags & (JOBQ__CRON_DOM_STAR | JOBQ__CRON_DOW_STAR)) ? dom && dow : dom || dow;
  return (c->minutes >> tm.tm_min & 1) && (c->hours >> tm.tm_hour & 1) && day &&
         (c->months >> (tm.tm_mon + 1) & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 2048) return 0;
  char *buf = malloc(size + 1);
  if (buf == NULL) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *tz = buf, *nl1 = strchr(tz, '\n');
  char *after_s = nl1 ? nl1 + 1 : buf + size, *nl2 = nl1 ? strchr(after_s, '\n') : NULL;
  char *expr = nl2 ? nl2 + 1 : buf + size;
  if (nl1) *nl1 = '\0';
  if (nl2) *nl2 = '\0';
  int64_t after = strtoll(after_s, NULL, 10);

  int64_t out = INT64_MIN;
  int rc = jobq_cron_next(expr, tz, after, &out);
  if (rc != 0 && rc != JOBQ_ECRON && rc != JOBQ_ETZ && rc != JOBQ_EINVAL) abort();
  if (rc != 0 && out != INT64_MIN) abort();
  if (rc != 0 && jobq_last_error()[0] == '\0') abort();
  if (rc == 0) {
    if (out <= after || out % 1000 != 0) abort();
    /* the next one after that is later still */
    int64_t again;
    if (jobq_cron_next(expr, tz, out, &again) == 0 && again <= out) abort();
  }
  jobq__cron c;
  int prc = jobq__cron_parse("fuzz", expr, &c);
  /* a malformed expression is refused as one (or after_ms first) */
  if (prc != 0 && rc != JOBQ_ECRON && rc != JOBQ_EINVAL) abort();
  if (rc == 0 && prc == 0 && tz[0] == '\0' && out - after <= 86400000) {
    time_t first = (time_t)(after >= 0 ? after / 1000 : -((-after + 999) / 1000));
    first = first - ((first % 60) + 60) % 60; /* the minute of after */
    for (time_t s = first;; s += 60) {
      int64_t ms = (int64_t)s * 1000;
      if (ms <= after) continue;
      if (ms > out) abort(); /* the answer did not match */
      int m = matches(&c, s);
      if (ms < out && m) {
        fprintf(stderr, "'%s' after %lld: %lld matches, answer %lld\n", expr, (long long)after,
                (long long)ms, (long long)out);
        abort();
      }
      if (ms == out) {
        if (!m) abort();
        break;
      }
    }
  }
  free(buf);
  return 0;
}
