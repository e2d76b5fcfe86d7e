/* Cron expressions: the standard five fields (minute hour day-of-month month
 * day-of-week) and the @-macros, parsed into bitmasks, and the next
 * occurrence after an instant in a time zone. The rules, with examples, are
 * in docs/reference/jobq_cron_next.md. */
#ifndef JOBQ_UTIL_CRON_H
#define JOBQ_UTIL_CRON_H

#include "util/tz.h"

#include <stdint.h>

#define JOBQ__CRON_MAX_LEN 1024

/* Flags: the field was written starting with '*' ("*" or "*\/n"). Vixie
 * cron's rule keys on how the field is written, not on the set it gives. */
#define JOBQ__CRON_DOM_STAR 1u
#define JOBQ__CRON_DOW_STAR 2u
#define JOBQ__CRON_HOUR_STAR 4u

typedef struct {
  uint64_t minutes; /* bits 0..59 */
  uint32_t hours;   /* bits 0..23 */
  uint32_t dom;     /* bits 1..31 */
  uint16_t months;  /* bits 1..12 */
  uint8_t dow;      /* bits 0..6, 0 = Sunday (7 is folded into 0) */
  uint8_t flags;
} jobq__cron;

/* 0, or JOBQ_ECRON with a sentence "fn: ..." that names the first bad field
 * and quotes it. Also refuses a day-of-month/month combination that no year
 * has (e.g. "0 0 30 2 *"). *out is written only on success. */
int jobq__cron_parse(const char *fn, const char *expr, jobq__cron *out);

/* The first occurrence strictly after after_ms (ms since the epoch, UTC),
 * in ms, following the DST rules of the reference page. JOBQ_ECRON when
 * there is none within JOBQ__CRON_HORIZON_YEARS. *out_ms written only on
 * success. after_ms must lie within JOBQ__CRON_MIN_MS..JOBQ__CRON_MAX_MS. */
#define JOBQ__CRON_HORIZON_YEARS 100
#define JOBQ__CRON_MIN_MS INT64_C(-62135596800000) /* 0001-01-01T00:00:00Z */
#define JOBQ__CRON_MAX_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */
int jobq__cron_next(const char *fn, const jobq__cron *c, const jobq__tz *z, int64_t after_ms,
                    int64_t *out_ms);

#endif
