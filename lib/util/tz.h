/* Time zones without the C library's: UTC, fixed offsets, and IANA names read
 * from the system's tz database (TZif files, RFC 8536) by our own parser.
 * localtime()/mktime() depend on the process-wide TZ variable, and changing
 * it (setenv + tzset) races with every other thread that asks for a local
 * time; a library must not do that. A zone here is an immutable value that
 * any thread may use at once.
 *
 * Names accepted by jobq__tz_get (docs/reference/jobq_cron_next.md):
 *   NULL, "" or "UTC"                      UTC
 *   "+05:30" "-08:00" "+0530" "+05"        fixed offsets, ISO 8601 sign:
 *   "UTC+2" "UTC-03:30"                    '+' is east of (ahead of) UTC,
 *                                          at most 18:00 either way
 *   "America/New_York", "Etc/UTC", ...     a file of the tz database under
 *                                          $TZDIR, else /usr/share/zoneinfo
 * Instants are seconds since the epoch (UTC); "local" values are the local
 * civil time counted the same way (local date and time as if it were UTC). */
#ifndef JOBQ_UTIL_TZ_H
#define JOBQ_UTIL_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobq__tz jobq__tz;

/* The zone called name. Loaded zones are cached for the life of the process
 * (keyed by the file's path, so a different TZDIR loads afresh) and are
 * never freed: a pointer stays valid forever and needs no release. Errors:
 * JOBQ_ETZ (unknown, malformed or unreadable zone), JOBQ_ENOMEM, with a
 * sentence that starts with "fn: ". */
int jobq__tz_get(const char *fn, const char *name, const jobq__tz **out);

/* Parses a TZif file image (v1, v2, v3 or v4). For the fuzzer and the
 * loader; *out must be released with jobq__tz_free. JOBQ_ETZ with a sentence
 * "fn: <what> ..." when the data is malformed. */
int jobq__tz_parse(const char *fn, const char *what, const unsigned char *data, size_t n,
                   jobq__tz **out);
void jobq__tz_free(jobq__tz *z);

/* Offset east of UTC, in seconds, in effect at instant t. */
int32_t jobq__tz_offset(const jobq__tz *z, int64_t t);

/* The first instant after t at which the zone's rules change (a DST start or
 * end, a change of standard offset). 1 and *out, or 0 if there is none. */
int jobq__tz_next_transition(const jobq__tz *z, int64_t t, int64_t *out);
/* The last transition at or before t: 1 and *out, or 0 if there is none. */
int jobq__tz_prev_transition(const jobq__tz *z, int64_t t, int64_t *out);

/* The instants whose local civil time is `local`:
 *   1: the usual case, out[0].
 *   2: the local time occurs twice (clocks set back): out[0] < out[1].
 *   0: it does not occur (clocks set forward over it); out[0] is the first
 *      instant after the gap, the transition itself. */
int jobq__tz_local_to_utc(const jobq__tz *z, int64_t local, int64_t out[2]);

#endif
