/* The public scheduling helpers: cron occurrences and local day ends. Pure
 * functions of their arguments (and of the system tz database), no queue:
 * the cron scheduler and result caches build on them. */
#include "util/civil.h"
#include "util/cron.h"
#include "util/err.h"
#include "util/tz.h"

#include "jobq.h"

#include <stdio.h>

JOBQ_API int jobq_cron_next(const char *expr, const char *tz, int64_t after_ms, int64_t *out_ms) {
  static const char fn[] = "jobq_cron_next";
  if (expr == NULL) return jobq__err(JOBQ_EINVAL, "%s: expr is NULL", fn);
  if (out_ms == NULL) return jobq__err(JOBQ_EINVAL, "%s: out_ms is NULL", fn);
  if (after_ms < JOBQ__CRON_MIN_MS || after_ms > JOBQ__CRON_MAX_MS)
    return jobq__err(JOBQ_EINVAL, "%s: after_ms %lld is outside the years 1 to 9999", fn,
                     (long long)after_ms);
  jobq__cron c;
  int rc = jobq__cron_parse(fn, expr, &c);
  if (rc != 0) return rc;
  const jobq__tz *z;
  if ((rc = jobq__tz_get(fn, tz, &z)) != 0) return rc;
  return jobq__cron_next(fn, &c, z, after_ms, out_ms);
}

JOBQ_API int jobq_end_of_day(const char *tz, int64_t at_ms, int64_t *out_ms) {
  static const char fn[] = "jobq_end_of_day";
  if (out_ms == NULL) return jobq__err(JOBQ_EINVAL, "%s: out_ms is NULL", fn);
  if (at_ms < JOBQ__CRON_MIN_MS || at_ms > JOBQ__CRON_MAX_MS)
    return jobq__err(JOBQ_EINVAL, "%s: at_ms %lld is outside the years 1 to 9999", fn,
                     (long long)at_ms);
  const jobq__tz *z;
  int rc = jobq__tz_get(fn, tz, &z);
  if (rc != 0) return rc;
  int64_t t = jobq__floor_div(at_ms, 1000);
  int64_t day = jobq__floor_div(t + jobq__tz_offset(z, t), 86400);
  /* Local midnight of the next day. When it is skipped (a DST start at
   * 00:00) the day begins at the end of the gap; when it occurs twice, at its
   * first occurrence: either way, the first instant that reads as that day. */
  int64_t u[2];
  int n = jobq__tz_local_to_utc(z, (day + 1) * 86400, u);
  /* Clocks set back across midnight: at_ms may lie in the second showing of
   * the old day, after the new one first began. */
  if (n == 2 && u[0] * 1000 <= at_ms) u[0] = u[1];
  *out_ms = u[0] * 1000;
  return 0;
}

JOBQ_API int jobq_local_date(const char *tz, int64_t at_ms, char *out, size_t cap) {
  static const char fn[] = "jobq_local_date";
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "%s: out is NULL", fn);
  if (cap < JOBQ_DATE_SIZE)
    return jobq__err(JOBQ_EINVAL, "%s: cap %zu is below JOBQ_DATE_SIZE (%d)", fn, cap,
                     JOBQ_DATE_SIZE);
  if (at_ms < JOBQ__CRON_MIN_MS || at_ms > JOBQ__CRON_MAX_MS)
    return jobq__err(JOBQ_EINVAL, "%s: at_ms %lld is outside the years 1 to 9999", fn,
                     (long long)at_ms);
  const jobq__tz *z;
  int rc = jobq__tz_get(fn, tz, &z);
  if (rc != 0) return rc;
  int64_t t = jobq__floor_div(at_ms, 1000), y;
  int m, d;
  jobq__civil_from_days(jobq__floor_div(t + jobq__tz_offset(z, t), 86400), &y, &m, &d);
  snprintf(out, cap, "%04lld-%02d-%02d", (long long)y, m, d);
  return 0;
}
