/* jobq_cron_next: the parser (every accepted form, every rejection with its
 * code and sentence), next occurrences in UTC, fixed offsets and IANA zones
 * across DST changes, checked against values computed by hand and with
 * `TZ=<zone> date -d @<seconds>` (GNU date, tzdata 2025b). Needs the system
 * tz database (Debian package tzdata):
 * jobq-test-requires: tzdata */
#include "testutil.h"

#include <time.h>

/* "2026-03-08T07:00Z" (or with seconds, "...:SS.mmmZ" not needed) -> ms.
 * timegm is the C library's, independent of the code under test. */
static int64_t utc(const char *iso) {
  struct tm tm = {0};
  int y, mo, d, h = 0, mi = 0;
  int n = sscanf(iso, "%d-%d-%dT%d:%d", &y, &mo, &d, &h, &mi);
  assert_true(n == 3 || n == 5);
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return (int64_t)timegm(&tm) * 1000;
}

/* Occurrences of expr in tz after `after`, each fed back in, must be exactly
 * want[] (UTC, "YYYY-MM-DDTHH:MM"). */
static void check_seq(const char *expr, const char *tz, int64_t after, const char *const *want) {
  int64_t t = after;
  for (int i = 0; want[i]; i++) {
    int64_t next = -42;
    int rc = jobq_cron_next(expr, tz, t, &next);
    if (rc != 0 || next != utc(want[i])) {
      print_error("'%s' in %s after %lld: occurrence %d is %lld (rc %d: %s), want %s = %lld\n",
                  expr, tz ? tz : "UTC", (long long)t, i + 1, (long long)next, rc,
                  jobq_last_error(), want[i], (long long)utc(want[i]));
      fail();
    }
    t = next;
  }
}

#define SEQ(expr, tz, after, ...)                                  \
  do {                                                             \
    static const char *const w_[] = {__VA_ARGS__, NULL};           \
    check_seq((expr), (tz), (after), w_);                          \
  } while (0)

/* ---- UTC ---- */

static void test_utc_basics(void **state) {
  (void)state;
  SEQ("*/15 * * * *", NULL, utc("2026-01-01T00:07") + 30000, "2026-01-01T00:15", "2026-01-01T00:30",
      "2026-01-01T00:45", "2026-01-01T01:00");
  /* strictly after: an instant on an occurrence moves on to the next */
  SEQ("0 3 * * *", "", utc("2026-01-01T03:00"), "2026-01-02T03:00");
  SEQ("0 3 * * *", "UTC", utc("2026-01-01T03:00") - 1, "2026-01-01T03:00");
  /* 1 ms after an occurrence is already past it */
  SEQ("0 3 * * *", NULL, utc("2026-01-01T03:00") + 1, "2026-01-02T03:00");
  SEQ("30 4 1,15 * *", NULL, utc("2026-01-01T05:00"), "2026-01-15T04:30", "2026-02-01T04:30",
      "2026-02-15T04:30");
  SEQ("0 9-17/4 * * *", NULL, utc("2026-01-01T00:00"), "2026-01-01T09:00", "2026-01-01T13:00",
      "2026-01-01T17:00", "2026-01-02T09:00");
  SEQ("5,10-12 0 * * *", NULL, utc("2026-01-01T00:00"), "2026-01-01T00:05", "2026-01-01T00:10",
      "2026-01-01T00:11", "2026-01-01T00:12", "2026-01-02T00:05");
  /* last minute of the year to the first of the next */
  SEQ("* * * * *", NULL, utc("2026-12-31T23:59"), "2027-01-01T00:00", "2027-01-01T00:01");
  SEQ("59 23 31 12 *", NULL, utc("2026-06-01T00:00"), "2026-12-31T23:59", "2027-12-31T23:59");
  /* before 1970: floor, not truncation, of negative ms */
  int64_t t = -42;
  assert_int_equal(jobq_cron_next("0 0 1 1 *", NULL, -1, &t), 0);
  assert_int_equal(t, 0);
  SEQ("0 12 * * *", NULL, utc("1969-12-31T12:00") - 1, "1969-12-31T12:00", "1970-01-01T12:00");
}

static void test_utc_calendar(void **state) {
  (void)state;
  /* Feb 29: leap years only; 2100 is not one (divisible by 100, not 400) */
  SEQ("0 0 29 2 *", NULL, utc("2026-01-01T00:00"), "2028-02-29T00:00", "2032-02-29T00:00");
  SEQ("0 0 29 2 *", NULL, utc("2096-03-01T00:00"), "2104-02-29T00:00");
  SEQ("0 0 29 2 *", NULL, utc("1999-01-01T00:00"), "2000-02-29T00:00");
  /* day 31 skips the short months */
  SEQ("0 0 31 * *", NULL, utc("2026-01-31T00:00"), "2026-03-31T00:00", "2026-05-31T00:00",
      "2026-07-31T00:00", "2026-08-31T00:00");
  /* 2026-01-02 is a Friday, 2026-01-04 a Sunday */
  SEQ("0 12 * * MON-FRI", NULL, utc("2026-01-02T13:00"), "2026-01-05T12:00", "2026-01-06T12:00");
  SEQ("0 0 * * 0", NULL, utc("2026-01-01T00:00"), "2026-01-04T00:00", "2026-01-11T00:00");
  SEQ("0 0 * * 7", NULL, utc("2026-01-01T00:00"), "2026-01-04T00:00", "2026-01-11T00:00");
  SEQ("0 0 * * sun", NULL, utc("2026-01-01T00:00"), "2026-01-04T00:00");
  SEQ("0 0 * * 5-7", NULL, utc("2026-01-01T00:00"), "2026-01-02T00:00", "2026-01-03T00:00",
      "2026-01-04T00:00", "2026-01-09T00:00");
  SEQ("0 0 1 jan,Jul *", NULL, utc("2026-01-01T00:00"), "2026-07-01T00:00", "2027-01-01T00:00");
  SEQ("0 0 1 FEB-APR/2 *", NULL, utc("2026-01-01T00:00"), "2026-02-01T00:00", "2026-04-01T00:00",
      "2027-02-01T00:00");
}

static void test_utc_macros(void **state) {
  (void)state;
  int64_t after = utc("2026-01-01T00:00") + 1;
  SEQ("@yearly", NULL, after, "2027-01-01T00:00");
  SEQ("@annually", NULL, after, "2027-01-01T00:00");
  SEQ("@monthly", NULL, after, "2026-02-01T00:00");
  SEQ("@weekly", NULL, after, "2026-01-04T00:00"); /* Sunday */
  SEQ("@daily", NULL, after, "2026-01-02T00:00");
  SEQ("@midnight", NULL, after, "2026-01-02T00:00");
  SEQ("@hourly", NULL, after, "2026-01-01T01:00", "2026-01-01T02:00");
  SEQ("@HOURLY", NULL, after, "2026-01-01T01:00");
  SEQ("  @daily\t", NULL, after, "2026-01-02T00:00");
  SEQ(" \t0\t3  * *   *  ", NULL, after, "2026-01-01T03:00");
}

/* Vixie cron: both day fields restricted -> either matches; one of them
 * written with '*' -> both must. */
static void test_dom_dow_rule(void **state) {
  (void)state;
  /* every 13th and every Friday (Jan 2026: Fridays 2, 9, 16, 23, 30; the
   * 13th is a Tuesday) */
  SEQ("0 0 13 * FRI", NULL, utc("2026-01-01T00:00"), "2026-01-02T00:00", "2026-01-09T00:00",
      "2026-01-13T00:00", "2026-01-16T00:00");
  /* days 1-7 or Mondays */
  SEQ("0 0 1-7 * 1", NULL, utc("2026-01-06T12:00"), "2026-01-07T00:00", "2026-01-12T00:00",
      "2026-01-19T00:00", "2026-01-26T00:00", "2026-02-01T00:00");
  /* "*\/2" starts with '*': Mondays that are odd days (5, 19 Jan; 9, 23 Feb) */
  SEQ("0 0 */2 * MON", NULL, utc("2026-01-01T00:00"), "2026-01-05T00:00", "2026-01-19T00:00",
      "2026-02-09T00:00", "2026-02-23T00:00");
  /* dom restricted, dow '*': dom alone */
  SEQ("0 0 13 * *", NULL, utc("2026-01-01T00:00"), "2026-01-13T00:00", "2026-02-13T00:00");
  /* dom '*', dow restricted: dow alone */
  SEQ("0 0 * * FRI", NULL, utc("2026-01-03T00:00"), "2026-01-09T00:00");
  /* both restricted with a month: Feb 30 never exists, but Mondays of Feb do */
  SEQ("0 0 30 2 MON", NULL, utc("2026-01-01T00:00"), "2026-02-02T00:00", "2026-02-09T00:00");
}

/* ---- fixed offsets and IANA zones ---- */

static void test_fixed_offsets(void **state) {
  (void)state;
  int64_t after = utc("2026-01-01T00:00");
  SEQ("0 12 * * *", "+05:30", after, "2026-01-01T06:30");
  SEQ("0 12 * * *", "+0530", after, "2026-01-01T06:30");
  SEQ("0 12 * * *", "UTC+05:30", after, "2026-01-01T06:30");
  SEQ("0 12 * * *", "-08:00", after, "2026-01-01T20:00");
  SEQ("0 12 * * *", "-0800", after, "2026-01-01T20:00");
  SEQ("0 12 * * *", "UTC-8", after, "2026-01-01T20:00");
  SEQ("0 12 * * *", "UTC+2", after, "2026-01-01T10:00");
  SEQ("0 12 * * *", "+02", after, "2026-01-01T10:00");
  SEQ("0 12 * * *", "UTC-03:30", after, "2026-01-01T15:30");
  SEQ("0 12 * * *", "+18:00", after, "2026-01-01T18:00");
  /* local time there is still 31 December, 06:00 */
  SEQ("0 12 * * *", "-18:00", after, "2026-01-01T06:00");
  SEQ("0 12 * * *", "+00:00", after, "2026-01-01T12:00");
  /* local midnight on +14 is the previous UTC day */
  SEQ("0 0 * * *", "+14:00", after, "2026-01-01T10:00", "2026-01-02T10:00");
}

static void test_kolkata(void **state) {
  (void)state;
  /* +05:30, no DST. TZ=Asia/Kolkata date -d @1767238200: Thu Jan 1 09:00 IST 2026 */
  SEQ("0 9 * * *", "Asia/Kolkata", utc("2026-01-01T00:00"), "2026-01-01T03:30",
      "2026-01-02T03:30");
  int64_t t;
  assert_int_equal(jobq_cron_next("0 9 * * *", "Asia/Kolkata", utc("2026-01-01T00:00"), &t), 0);
  assert_int_equal(t, INT64_C(1767238200000));
  /* the same as the fixed offset */
  int64_t u;
  for (int64_t a = utc("2026-06-01T00:00"); a < utc("2026-06-03T00:00"); a += 3600000) {
    assert_int_equal(jobq_cron_next("*/7 */5 * * *", "Asia/Kolkata", a, &t), 0);
    assert_int_equal(jobq_cron_next("*/7 */5 * * *", "+05:30", a, &u), 0);
    assert_int_equal(t, u);
  }
}

/* America/New_York 2026: 02:00 EST -> 03:00 EDT on 8 March (07:00Z);
 * 02:00 EDT -> 01:00 EST on 1 November (06:00Z).
 *   TZ=America/New_York date -d @1772953199  -> Sun Mar  8 01:59:59 EST 2026
 *   TZ=America/New_York date -d @1772953200  -> Sun Mar  8 03:00:00 EDT 2026
 *   TZ=America/New_York date -d @1793512799  -> Sun Nov  1 01:59:59 EDT 2026
 *   TZ=America/New_York date -d @1793512800  -> Sun Nov  1 01:00:00 EST 2026 */
static void test_new_york_spring_forward(void **state) {
  (void)state;
  const char *ny = "America/New_York";
  /* 02:30 does not exist on 8 March: once, at the end of the gap */
  SEQ("30 2 * * *", ny, utc("2026-03-06T12:00"), "2026-03-07T07:30", "2026-03-08T07:00",
      "2026-03-09T06:30", "2026-03-10T06:30");
  int64_t t;
  assert_int_equal(jobq_cron_next("30 2 * * *", ny, utc("2026-03-07T12:00"), &t), 0);
  assert_int_equal(t, INT64_C(1772953200000));
  /* hourly: 01:00 EST, then 03:00 EDT once (02:00 fires at the end of the
   * gap, which is 03:00 itself: not twice), then 04:00 EDT */
  SEQ("0 * * * *", ny, utc("2026-03-08T05:30"), "2026-03-08T06:00", "2026-03-08T07:00",
      "2026-03-08T08:00", "2026-03-08T09:00");
  /* several matches in the gap fire once in all */
  SEQ("*/20 2 * * *", ny, utc("2026-03-08T05:00"), "2026-03-08T07:00", "2026-03-09T06:00");
  /* 01:xx exists: unaffected */
  SEQ("*/20 1 * * *", ny, utc("2026-03-08T05:00"), "2026-03-08T06:00", "2026-03-08T06:20",
      "2026-03-08T06:40", "2026-03-09T05:00");
  /* asked from inside... after the gap's end, 02:30 of that day is gone */
  SEQ("30 2 * * *", ny, utc("2026-03-08T07:00"), "2026-03-09T06:30");
  /* asked in the last second before the gap: the end of the gap is still
   * ahead (the search used to start past it and miss it) */
  int64_t last[] = {1772953199000, 1772953199500, 1772953199999};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(jobq_cron_next("30 2 * * *", ny, last[i], &t), 0);
    assert_int_equal(t, INT64_C(1772953200000));
    assert_int_equal(jobq_cron_next("*/20 2 * * *", ny, last[i], &t), 0);
    assert_int_equal(t, INT64_C(1772953200000));
    assert_int_equal(jobq_cron_next("0 * * * *", ny, last[i], &t), 0);
    assert_int_equal(t, INT64_C(1772953200000));
  }
  /* at the end of the gap itself, the next is the next day's */
  assert_int_equal(jobq_cron_next("30 2 * * *", ny, 1772953200000, &t), 0);
  assert_int_equal(t, INT64_C(1773037800000));
}

static void test_new_york_fall_back(void **state) {
  (void)state;
  const char *ny = "America/New_York";
  /* fixed hour: 01:30 occurs twice, fires at the first (EDT) only */
  SEQ("30 1 * * *", ny, utc("2026-10-31T12:00"), "2026-11-01T05:30", "2026-11-02T06:30");
  /* also when asked from between the two occurrences */
  SEQ("30 1 * * *", ny, utc("2026-11-01T05:45"), "2026-11-02T06:30");
  SEQ("*/20 1 * * *", ny, utc("2026-10-31T12:00"), "2026-11-01T05:00", "2026-11-01T05:20",
      "2026-11-01T05:40", "2026-11-02T06:00", "2026-11-02T06:20");
  /* asked during the second 01:xx (EST): the repeated times do not fire */
  SEQ("*/20 1 * * *", ny, utc("2026-11-01T06:10"), "2026-11-02T06:00");
  /* 02:30 exists once (EST) */
  SEQ("30 2 * * *", ny, utc("2026-10-31T12:00"), "2026-11-01T07:30", "2026-11-02T07:30");
  /* hour '*': each occurrence, every hour of elapsed time */
  SEQ("0 * * * *", ny, utc("2026-11-01T03:30"), "2026-11-01T04:00", "2026-11-01T05:00",
      "2026-11-01T06:00", "2026-11-01T07:00", "2026-11-01T08:00");
  SEQ("30 */1 * * *", ny, utc("2026-11-01T05:00"), "2026-11-01T05:30", "2026-11-01T06:30",
      "2026-11-01T07:30");
  int64_t t;
  assert_int_equal(jobq_cron_next("0 * * * *", ny, utc("2026-11-01T05:00"), &t), 0);
  assert_int_equal(t, INT64_C(1793512800000)); /* the second 01:00, EST */
}

/* Europe/London: GMT -> BST at 01:00Z on 29 March 2026, back at 01:00Z on
 * 25 October 2026.
 *   TZ=Europe/London date -d @1774746000 -> Sun Mar 29 02:00:00 BST 2026
 *   TZ=Europe/London date -d @1792888200 -> Sun Oct 25 01:30:00 BST 2026 */
static void test_london(void **state) {
  (void)state;
  const char *l = "Europe/London";
  SEQ("30 1 * * *", l, utc("2026-03-28T12:00"), "2026-03-29T01:00", "2026-03-30T00:30");
  SEQ("30 1 * * *", l, utc("2026-10-24T12:00"), "2026-10-25T00:30", "2026-10-26T01:30");
  SEQ("30 * * * *", l, utc("2026-10-24T23:00"), "2026-10-24T23:30", "2026-10-25T00:30",
      "2026-10-25T01:30", "2026-10-25T02:30");
  SEQ("0 12 * * *", l, utc("2026-01-01T00:00"), "2026-01-01T12:00");
  SEQ("0 12 1 7 *", l, utc("2026-01-01T00:00"), "2026-07-01T11:00");
}

/* Australia/Lord_Howe: +10:30 standard, +11 summer, half-hour changes at
 * 02:00 local on the first Sundays of April and October (4 Oct, 5 Apr).
 *   TZ=Australia/Lord_Howe date -d @1791041399 -> Sun Oct  4 01:59:59 +1030 2026
 *   TZ=Australia/Lord_Howe date -d @1791041400 -> Sun Oct  4 02:30:00 +11 2026
 *   TZ=Australia/Lord_Howe date -d @1775314800 -> Sun Apr  5 01:30:00 +1030 2026 */
static void test_lord_howe(void **state) {
  (void)state;
  const char *lh = "Australia/Lord_Howe";
  /* 02:15 falls in the 30-minute gap: fires at its end, 02:30 +11 */
  SEQ("15 2 * * *", lh, utc("2026-10-03T12:00"), "2026-10-03T15:30", "2026-10-04T15:15");
  /* 01:30-01:59 repeats on 5 April: once, at +11 */
  SEQ("30 1 * * *", lh, utc("2026-04-04T12:00"), "2026-04-04T14:30", "2026-04-05T15:00");
  SEQ("45 * * * *", lh, utc("2026-04-04T14:00"), "2026-04-04T14:45", "2026-04-04T15:15",
      "2026-04-04T16:15");
  SEQ("0 3 * * *", lh, utc("2026-04-04T12:00"), "2026-04-04T16:30", "2026-04-05T16:30");
}

/* Past the last transition the TZif table lists (2037 in Debian's files),
 * the footer rule decides.
 *   TZ=Europe/London date -d @4109878800     -> Sun Mar 28 02:00:00 BST 2100
 *   TZ=America/New_York date -d @4108172400  -> Sun Mar 14 03:00:00 EDT 2100 */
static void test_far_future_footer_rule(void **state) {
  (void)state;
  SEQ("30 1 * * *", "Europe/London", utc("2100-03-27T00:00"), "2100-03-27T01:30",
      "2100-03-28T01:00", "2100-03-29T00:30");
  SEQ("0 12 1 7 *", "Europe/London", utc("2100-01-01T00:00"), "2100-07-01T11:00",
      "2101-07-01T11:00");
  SEQ("30 2 * * *", "America/New_York", utc("2100-03-13T12:00"), "2100-03-14T07:00",
      "2100-03-15T06:30");
  SEQ("0 0 1 1 *", "Australia/Lord_Howe", utc("2500-06-01T00:00"), "2500-12-31T13:00");
}

/* ---- the DST rules against a minute-by-minute reference ---- */

/* A simple matcher of the five fields for the reference below (names not
 * needed: the expressions used are numeric). */
static int field_has(const char *f, int v, int lo, int hi) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", f);
  for (char *save = NULL, *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save)) {
    int a = lo, b = hi, step = 1;
    char *sl = strchr(it, '/');
    if (sl) step = atoi(sl + 1);
    if (it[0] != '*') {
      a = atoi(it);
      b = strchr(it, '-') ? atoi(strchr(it, '-') + 1) : (sl ? hi : a);
    }
    if (v >= a && v <= b && (v - a) % step == 0) return 1;
  }
  return 0;
}

static int ref_matches(char f[5][32], const struct tm *tm) {
  int dom = field_has(f[2], tm->tm_mday, 1, 31), dow = field_has(f[4], tm->tm_wday, 0, 6);
  int day = (f[2][0] == '*' || f[4][0] == '*') ? dom && dow : dom || dow;
  return tm->tm_sec == 0 && field_has(f[0], tm->tm_min, 0, 59) && field_has(f[1], tm->tm_hour, 0, 23) &&
         day && field_has(f[3], tm->tm_mon + 1, 1, 12);
}

/* Does the schedule fire at UTC minute t, by the documented rules, read off
 * the C library's localtime_r (TZ set by the caller)? */
static int ref_fires(char f[5][32], int hour_star, time_t t) {
  struct tm now, before;
  localtime_r(&t, &now);
  time_t tb = t - 1;
  localtime_r(&tb, &before);
  if (ref_matches(f, &now)) {
    if (hour_star) return 1;
    /* a second showing of this local time: the same wall clock at the
     * earlier offset was an earlier instant */
    for (time_t d = 1800; d <= 3 * 3600; d += 1800) {
      time_t e = t - d;
      struct tm x;
      localtime_r(&e, &x);
      if (x.tm_hour == now.tm_hour && x.tm_min == now.tm_min && x.tm_mday == now.tm_mday &&
          x.tm_sec == now.tm_sec && x.tm_gmtoff > now.tm_gmtoff)
        return 0;
    }
    return 1;
  }
  /* the end of a gap: did a skipped local minute match? */
  if (now.tm_gmtoff > before.tm_gmtoff) {
    for (long k = 0; k < now.tm_gmtoff - before.tm_gmtoff; k += 60) {
      time_t fake = t + before.tm_gmtoff + k; /* local wall time, read as UTC */
      struct tm w;
      gmtime_r(&fake, &w);
      if (ref_matches(f, &w)) return 1;
    }
  }
  return 0;
}

static void check_against_reference(const char *expr, const char *tz, time_t from, time_t to) {
  char f[5][32];
  assert_int_equal(sscanf(expr, "%31s %31s %31s %31s %31s", f[0], f[1], f[2], f[3], f[4]), 5);
  int hour_star = f[1][0] == '*';
  int64_t t = (int64_t)from * 1000;
  for (time_t m = from + 60; m <= to; m += 60) {
    if (!ref_fires(f, hour_star, m)) continue;
    int64_t next = -42;
    assert_int_equal(jobq_cron_next(expr, tz, t, &next), 0);
    if (next != (int64_t)m * 1000) {
      print_error("'%s' in %s after %lld: got %lld, reference %lld\n", expr, tz, (long long)t,
                  (long long)next, (long long)m * 1000);
      fail();
    }
    t = next;
  }
}

/* Three days around each 2026 change in three zones (one with 30-minute
 * steps), every expression: the same occurrences as the reference. */
static void test_dst_against_reference(void **state) {
  (void)state;
  static const char *const exprs[] = {"30 2 * * *",  "0 * * * *",     "*/20 1 * * *", "30 1 * * *",
                                      "*/15 * * * *", "0 2 * * *",    "45 1,2 * * *", "0 */2 * * *",
                                      "10 0-3 * * *", "*/30 1-2 * * 0", "0 3 * * *",  "59 1 * * *"};
  static const struct {
    const char *tz;
    const char *day[2];
  } zones[] = {
      {"America/New_York", {"2026-03-08", "2026-11-01"}},
      {"Europe/London", {"2026-03-29", "2026-10-25"}},
      {"Australia/Lord_Howe", {"2026-04-05", "2026-10-04"}},
  };
  for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
    setenv("TZ", zones[z].tz, 1);
    tzset();
    for (int d = 0; d < 2; d++) {
      char iso[32];
      snprintf(iso, sizeof iso, "%sT00:00", zones[z].day[d]);
      time_t mid = (time_t)(utc(iso) / 1000);
      for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++)
        check_against_reference(exprs[e], zones[z].tz, mid - 36 * 3600, mid + 36 * 3600);
    }
  }
  unsetenv("TZ");
  tzset();
}

/* ---- rejections ---- */

static void expect_cron_err(const char *expr, const char *sentence) {
  int64_t t = -42;
  TAPI_ERR(JOBQ_ECRON, "jobq_cron_next", jobq_cron_next(expr, NULL, 0, &t));
  if (strcmp(jobq_last_error(), sentence) != 0) {
    print_error("'%s':\n  got  \"%s\"\n  want \"%s\"\n", expr, jobq_last_error(), sentence);
    fail();
  }
  assert_int_equal(t, -42);
}

static void test_rejections(void **state) {
  (void)state;
  /* out of range, in each field */
  expect_cron_err("60 * * * *", "jobq_cron_next: field 1 (minute) '60' is out of range 0-59");
  expect_cron_err("0 25 * * *", "jobq_cron_next: field 2 (hour) '25' is out of range 0-23");
  expect_cron_err("0 0 0 * *", "jobq_cron_next: field 3 (day-of-month) '0' is out of range 1-31");
  expect_cron_err("0 0 32 * *", "jobq_cron_next: field 3 (day-of-month) '32' is out of range 1-31");
  expect_cron_err("0 0 * 13 *", "jobq_cron_next: field 4 (month) '13' is out of range 1-12");
  expect_cron_err("0 0 * 0 *", "jobq_cron_next: field 4 (month) '0' is out of range 1-12");
  expect_cron_err("0 0 * * 8", "jobq_cron_next: field 5 (day-of-week) '8' is out of range 0-7");
  expect_cron_err("0 1-24 * * *", "jobq_cron_next: field 2 (hour) '24' is out of range 0-23");
  expect_cron_err("0 99999999999 * * *",
                  "jobq_cron_next: field 2 (hour) '99999999999' is not a number");
  /* bad steps */
  expect_cron_err("*/0 * * * *", "jobq_cron_next: field 1 (minute) step in '*/0' is out of range 1-59");
  expect_cron_err("*/60 * * * *", "jobq_cron_next: field 1 (minute) step in '*/60' is out of range 1-59");
  expect_cron_err("0 */24 * * *", "jobq_cron_next: field 2 (hour) step in '*/24' is out of range 1-23");
  expect_cron_err("1-5/x * * * *", "jobq_cron_next: field 1 (minute) step in '1-5/x' is not a number");
  expect_cron_err("*/ * * * *", "jobq_cron_next: field 1 (minute) step in '*/' is empty");
  expect_cron_err("5/15 * * * *",
                  "jobq_cron_next: field 1 (minute) '5/15' has a step without a range (write a-b/n or */n)");
  expect_cron_err("0 0 * * */8", "jobq_cron_next: field 5 (day-of-week) step in '*/8' is out of range 1-7");
  /* ranges, lists */
  expect_cron_err("5-2 * * * *",
                  "jobq_cron_next: field 1 (minute) range '5-2' runs backwards (write the smaller value first)");
  expect_cron_err("1,,2 * * * *", "jobq_cron_next: field 1 (minute) has an empty item");
  expect_cron_err("1, * * * *", "jobq_cron_next: field 1 (minute) has an empty item");
  expect_cron_err("1- * * * *", "jobq_cron_next: field 1 (minute) has an empty item");
  /* unknown names, and names where none are allowed */
  expect_cron_err("0 0 * FOO *",
                  "jobq_cron_next: field 4 (month) 'FOO' is not a number or a name (JAN-DEC)");
  expect_cron_err("0 0 * * MONDAY",
                  "jobq_cron_next: field 5 (day-of-week) 'MONDAY' is not a number or a name (SUN-SAT)");
  expect_cron_err("0 0 * * MON#2",
                  "jobq_cron_next: field 5 (day-of-week) 'MON#2' is not a number or a name (SUN-SAT)");
  expect_cron_err("0 0 * JAN-MON *",
                  "jobq_cron_next: field 4 (month) 'MON' is not a number or a name (JAN-DEC)");
  expect_cron_err("0 0 L * *", "jobq_cron_next: field 3 (day-of-month) 'L' is not a number");
  expect_cron_err("0 0 ? * *", "jobq_cron_next: field 3 (day-of-month) '?' is not a number");
  expect_cron_err("JAN * * * *", "jobq_cron_next: field 1 (minute) 'JAN' is not a number");
  expect_cron_err("-1 * * * *", "jobq_cron_next: field 1 (minute) has an empty item");
  /* field counts */
  expect_cron_err("", "jobq_cron_next: expression is empty");
  expect_cron_err(" \t ", "jobq_cron_next: expression is empty");
  expect_cron_err("*", "jobq_cron_next: expression has 1 field, expected 5 (minute hour "
                       "day-of-month month day-of-week)");
  expect_cron_err("* * * *", "jobq_cron_next: expression has 4 fields, expected 5 (minute hour "
                             "day-of-month month day-of-week)");
  expect_cron_err("0 * * * * *", "jobq_cron_next: too many fields: '*' after the fifth (expected "
                                 "minute hour day-of-month month day-of-week)");
  expect_cron_err("0 3 * * * /usr/bin/backup",
                  "jobq_cron_next: too many fields: '/usr/bin/backup' after the fifth (expected "
                  "minute hour day-of-month month day-of-week)");
  /* macros */
  expect_cron_err("@reboot", "jobq_cron_next: unknown macro '@reboot' (known: @yearly, "
                             "@annually, @monthly, @weekly, @daily, @midnight, @hourly)");
  expect_cron_err("@daily 3", "jobq_cron_next: unknown macro '@daily 3' (known: @yearly, "
                              "@annually, @monthly, @weekly, @daily, @midnight, @hourly)");
  /* never matches */
  expect_cron_err("0 0 30 2 *",
                  "jobq_cron_next: expression '0 0 30 2 *' never matches: none of its months "
                  "has that day of the month");
  expect_cron_err("0 0 31 4,6,9,11 *",
                  "jobq_cron_next: expression '0 0 31 4,6,9,11 *' never matches: none of its "
                  "months has that day of the month");
  /* too long */
  char *big = tapi_repeat('1', 1025);
  expect_cron_err(big, "jobq_cron_next: expression is longer than 1024 bytes");
  free(big);
  /* the first error wins: field 2 before field 5 */
  expect_cron_err("0 24 * * 9", "jobq_cron_next: field 2 (hour) '24' is out of range 0-23");
}

/* Expressions that match rarely are still found (the search skips months
 * and days), and the accepted range of after_ms ends at year 9999. */
static void test_never_within_horizon(void **state) {
  (void)state;
  int64_t t = -42;
  assert_int_equal(jobq_cron_next("0 0 29 2 *", NULL, utc("2099-03-01T00:00"), &t), 0);
  assert_int_equal(t, utc("2104-02-29T00:00"));
  /* "*\/31" in the day-of-month field is {1} and starts with '*', so the
   * day must also be a Saturday: 1 February on a Saturday (2025, then 2031) */
  assert_int_equal(jobq_cron_next("0 0 */31 2 SAT", NULL, utc("2026-01-01T00:00"), &t), 0);
  assert_int_equal(t, utc("2031-02-01T00:00"));
  /* the accepted range */
  t = -42;
  TAPI_ERR(JOBQ_EINVAL, "jobq_cron_next", jobq_cron_next("* * * * *", NULL, INT64_C(253402300800000), &t));
  TAPI_ERR_HAS("outside the years 1 to 9999");
  assert_int_equal(t, -42);
  assert_int_equal(jobq_cron_next("* * * * *", NULL, INT64_C(253402300799999), &t), 0);
  assert_int_equal(t, INT64_C(253402300800000)); /* 10000-01-01T00:00Z */
  TAPI_ERR(JOBQ_EINVAL, "jobq_cron_next",
           jobq_cron_next("* * * * *", NULL, INT64_C(-62135596800001), &t));
}

static void test_bad_arguments(void **state) {
  (void)state;
  int64_t t = -42;
  TAPI_ERR(JOBQ_EINVAL, "jobq_cron_next", jobq_cron_next(NULL, NULL, 0, &t));
  TAPI_ERR_HAS("expr is NULL");
  TAPI_ERR(JOBQ_EINVAL, "jobq_cron_next", jobq_cron_next("* * * * *", NULL, 0, NULL));
  TAPI_ERR_HAS("out_ms is NULL");
  TAPI_ERR(JOBQ_EINVAL, "jobq_cron_next", jobq_cron_next("* * * * *", NULL, INT64_MAX, &t));
  TAPI_ERR(JOBQ_EINVAL, "jobq_cron_next", jobq_cron_next("* * * * *", NULL, INT64_MIN, &t));
  /* unknown or malformed zones */
  TAPI_ERR(JOBQ_ETZ, "jobq_cron_next", jobq_cron_next("* * * * *", "Mars/Olympus_Mons", 0, &t));
  assert_string_equal(jobq_last_error(), "jobq_cron_next: unknown time zone 'Mars/Olympus_Mons' "
                                         "(not in the tz database /usr/share/zoneinfo)");
  TAPI_ERR(JOBQ_ETZ, "jobq_cron_next", jobq_cron_next("* * * * *", "+19:00", 0, &t));
  assert_string_equal(jobq_last_error(),
                      "jobq_cron_next: time zone '+19:00' is not a valid offset (use +HH:MM, "
                      "+HHMM or +HH, at most 18:00, optionally after UTC)");
  const char *bad_offsets[] = {"+530", "+05:3", "+05:60", "UTC+", "+", "-", "+05:30x", "+123",
                               "UTC+2:", "+ 5"};
  for (size_t i = 0; i < sizeof bad_offsets / sizeof bad_offsets[0]; i++) {
    TAPI_ERR(JOBQ_ETZ, "jobq_cron_next", jobq_cron_next("* * * * *", bad_offsets[i], 0, &t));
    TAPI_ERR_HAS("is not a valid offset");
  }
  const char *bad_names[] = {"../etc/passwd", "/etc/passwd", "America/../../etc/passwd",
                             "America//New_York", "America/", "New York", "Europe/London\n",
                             "utc", "Etc/UTC.", "America\\New_York"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
    TAPI_ERR(JOBQ_ETZ, "jobq_cron_next", jobq_cron_next("* * * * *", bad_names[i], 0, &t));
  char *longname = tapi_repeat('A', 256);
  TAPI_ERR(JOBQ_ETZ, "jobq_cron_next", jobq_cron_next("* * * * *", longname, 0, &t));
  TAPI_ERR_HAS("is malformed");
  free(longname);
  /* the expression is checked first */
  TAPI_ERR(JOBQ_ECRON, "jobq_cron_next", jobq_cron_next("61 * * * *", "Mars/Base", 0, &t));
  assert_int_equal(t, -42);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_utc_basics),
      cmocka_unit_test(test_utc_calendar),
      cmocka_unit_test(test_utc_macros),
      cmocka_unit_test(test_dom_dow_rule),
      cmocka_unit_test(test_fixed_offsets),
      cmocka_unit_test(test_kolkata),
      cmocka_unit_test(test_new_york_spring_forward),
      cmocka_unit_test(test_new_york_fall_back),
      cmocka_unit_test(test_london),
      cmocka_unit_test(test_lord_howe),
      cmocka_unit_test(test_far_future_footer_rule),
      cmocka_unit_test(test_dst_against_reference),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_never_within_horizon),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
