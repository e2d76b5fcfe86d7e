/* Time zones: the TZif reader and POSIX TZ rules (lib/util/tz.c) on the
 * system tz database and on files made here under a TZDIR of our own (valid,
 * truncated, damaged), and jobq_end_of_day. Values checked with
 * `TZ=<zone> date -d @<seconds>` (GNU date, tzdata 2025b). Needs the system
 * tz database (Debian package tzdata):
 * jobq-test-requires: tzdata */
#include "testutil.h"

#include "util/tz.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tzdir[128];

static void put32(unsigned char **p, uint32_t v) {
  for (int i = 3; i >= 0; i--) *(*p)++ = (unsigned char)(v >> (8 * i));
}

/* A TZif file: version 1 (no 64-bit block, no footer) or 2/3 (both, with
 * footer). Types: offs[i] (east of UTC), isdst 0. */
static size_t make_tzif(unsigned char *buf, int version, const int64_t *times, const uint8_t *idx,
                        int nt, const int32_t *offs, int ntypes, const char *footer) {
  unsigned char *p = buf;
  for (int pass = 0; pass < (version >= 2 ? 2 : 1); pass++) {
    memcpy(p, "TZif", 4);
    p[4] = version == 1 ? 0 : (unsigned char)('0' + version);
    memset(p + 5, 0, 15);
    p += 20;
    uint32_t c[6] = {0, 0, 0, (uint32_t)nt, (uint32_t)ntypes, 4};
    for (int i = 0; i < 6; i++) put32(&p, c[i]);
    for (int i = 0; i < nt; i++) {
      if (pass == 1) put32(&p, (uint32_t)((uint64_t)times[i] >> 32));
      put32(&p, (uint32_t)times[i]);
    }
    for (int i = 0; i < nt; i++) *p++ = idx[i];
    for (int i = 0; i < ntypes; i++) {
      put32(&p, (uint32_t)offs[i]);
      *p++ = 0;
      *p++ = 0;
    }
    memcpy(p, "ZZZ", 4);
    p += 4;
  }
  if (version >= 2) {
    *p++ = '\n';
    size_t n = strlen(footer);
    memcpy(p, footer, n);
    p += n;
    *p++ = '\n';
  }
  return (size_t)(p - buf);
}

static void write_file(const char *rel, const void *data, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", tzdir, rel);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  mkdir(path, 0755);
  *slash = '/';
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
}

static unsigned char *read_system(const char *name, size_t *n) {
  char path[256];
  snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  unsigned char *b = malloc(1 << 16);
  *n = fread(b, 1, 1 << 16, f);
  fclose(f);
  return b;
}

static int setup(void **state) {
  (void)state;
  snprintf(tzdir, sizeof tzdir, "tz-test-XXXXXX");
  if (mkdtemp(tzdir) == NULL) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tzdir);
  return system(cmd) == 0 ? 0 : -1;
}

static const jobq__tz *zone(const char *name) {
  const jobq__tz *z = NULL;
  int rc = jobq__tz_get("test", name, &z);
  if (rc != 0) {
    print_error("zone '%s': %s\n", name, jobq_last_error());
    fail();
  }
  return z;
}

/* ---- the system database ---- */

static void test_builtin_and_fixed(void **state) {
  (void)state;
  const jobq__tz *u = zone(NULL);
  assert_ptr_equal(u, zone(""));
  assert_ptr_equal(u, zone("UTC"));
  assert_int_equal(jobq__tz_offset(u, 0), 0);
  int64_t t;
  assert_int_equal(jobq__tz_next_transition(u, 0, &t), 0);
  assert_int_equal(jobq__tz_offset(zone("+05:30"), 12345), 19800);
  assert_int_equal(jobq__tz_offset(zone("UTC-03:30"), 0), -12600);
  assert_int_equal(jobq__tz_offset(zone("-0800"), 0), -28800);
  assert_int_equal(jobq__tz_offset(zone("UTC+2"), 0), 7200);
  /* the same offset written two ways is one cached zone */
  assert_ptr_equal(zone("+05:30"), zone("UTC+0530"));
  /* Etc/UTC comes from the database; Etc/GMT+2 keeps the database's
   * (POSIX) sign: two hours behind */
  assert_int_equal(jobq__tz_offset(zone("Etc/UTC"), 1767225600), 0);
  assert_int_equal(jobq__tz_offset(zone("Etc/GMT+2"), 1767225600), -7200);
  /* loaded once, then cached */
  assert_ptr_equal(zone("America/New_York"), zone("America/New_York"));
}

/*   TZ=America/New_York date -d @1772953199 -> Sun Mar  8 01:59:59 EST 2026
 *   TZ=America/New_York date -d @1772953200 -> Sun Mar  8 03:00:00 EDT 2026
 *   TZ=America/New_York date -d @1793512799 -> Sun Nov  1 01:59:59 EDT 2026
 *   TZ=America/New_York date -d @1793512800 -> Sun Nov  1 01:00:00 EST 2026 */
static void test_new_york(void **state) {
  (void)state;
  const jobq__tz *z = zone("America/New_York");
  assert_int_equal(jobq__tz_offset(z, 1772953199), -18000);
  assert_int_equal(jobq__tz_offset(z, 1772953200), -14400);
  assert_int_equal(jobq__tz_offset(z, 1793512799), -14400);
  assert_int_equal(jobq__tz_offset(z, 1793512800), -18000);
  int64_t t;
  assert_int_equal(jobq__tz_next_transition(z, 1767225600, &t), 1);
  assert_int_equal(t, 1772953200);
  assert_int_equal(jobq__tz_next_transition(z, 1772953200, &t), 1);
  assert_int_equal(t, 1793512800);
  assert_int_equal(jobq__tz_prev_transition(z, 1772953200, &t), 1);
  assert_int_equal(t, 1772953200);
  assert_int_equal(jobq__tz_prev_transition(z, 1772953199, &t), 1);
  assert_int_equal(t, 1762063200); /* 2025-11-02T06:00Z */

  int64_t u[2];
  const int64_t day_mar8 = 1772928000, day_nov1 = 1793491200; /* local midnight, as if UTC */
  /* 02:30 on 8 March does not exist: the gap ends at 07:00Z */
  assert_int_equal(jobq__tz_local_to_utc(z, day_mar8 + 2 * 3600 + 1800, u), 0);
  assert_int_equal(u[0], 1772953200);
  /* 01:30 on 1 November happens twice: 05:30Z (EDT) and 06:30Z (EST) */
  assert_int_equal(jobq__tz_local_to_utc(z, day_nov1 + 3600 + 1800, u), 2);
  assert_int_equal(u[0], 1793511000);
  assert_int_equal(u[1], 1793514600);
  /* the edges: 01:59:59 and 03:00:00 on 8 March; 00:59:59 and 02:00 on 1 Nov */
  assert_int_equal(jobq__tz_local_to_utc(z, day_mar8 + 2 * 3600 - 1, u), 1);
  assert_int_equal(u[0], 1772953199);
  assert_int_equal(jobq__tz_local_to_utc(z, day_mar8 + 3 * 3600, u), 1);
  assert_int_equal(u[0], 1772953200);
  assert_int_equal(jobq__tz_local_to_utc(z, day_nov1 + 3600 - 1, u), 1);
  assert_int_equal(jobq__tz_local_to_utc(z, day_nov1 + 3600, u), 2);
  assert_int_equal(jobq__tz_local_to_utc(z, day_nov1 + 2 * 3600, u), 1);
  assert_int_equal(u[0], 1793516400);
}

/* Beyond 2037 Debian's files list no transitions: the footer rule answers.
 *   TZ=America/New_York date -d @4108690799 -> Sun Mar 14 01:59:59 EST 2100
 *   TZ=America/New_York date -d @4108690800 -> Sun Mar 14 03:00:00 EDT 2100
 *   TZ=Australia/Sydney date -d @4099651200 -> Mon Nov 30 03:00:00 AEDT 2099 (DST over New Year)
 *   TZ=Australia/Sydney date -d @4118000000 -> Wed Jun 30 10:53:20 AEST 2100 */
static void test_footer_rule(void **state) {
  (void)state;
  const jobq__tz *z = zone("America/New_York");
  assert_int_equal(jobq__tz_offset(z, 4108690799), -18000);
  assert_int_equal(jobq__tz_offset(z, 4108690800), -14400);
  int64_t t;
  assert_int_equal(jobq__tz_next_transition(z, 4102444800, &t), 1);
  assert_int_equal(t, 4108690800);
  assert_int_equal(jobq__tz_prev_transition(z, 4108690800 + 10, &t), 1);
  assert_int_equal(t, 4108690800);
  const jobq__tz *s = zone("Australia/Sydney");
  assert_int_equal(jobq__tz_offset(s, 4099651200), 39600);
  assert_int_equal(jobq__tz_offset(s, 4102444800), 39600); /* 2100-01-01T00:00Z: summer */
  assert_int_equal(jobq__tz_offset(s, 4118000000), 36000); /* 2100-06-30: winter */
  /* Every hour of 2099-2101: the offset is one of the two and agrees with
   * local_to_utc's round trip. */
  for (int64_t u = 4070908800; u < 4165603200; u += 3600) {
    int32_t off = jobq__tz_offset(z, u);
    assert_true(off == -18000 || off == -14400);
    int64_t back[2];
    int n = jobq__tz_local_to_utc(z, u + off, back);
    assert_true(n == 1 || n == 2);
    assert_true(back[0] == u || (n == 2 && back[1] == u));
  }
}

/* ---- files of our own under TZDIR ---- */

static void test_crafted_zones(void **state) {
  (void)state;
  unsigned char buf[4096];
  /* +01:00 until 2000-01-01T00:00Z (946684800), +02:00 after; v2 footer */
  int64_t times[] = {946684800};
  uint8_t idx[] = {1};
  int32_t offs[] = {3600, 7200};
  write_file("Test/Step", buf, make_tzif(buf, 2, times, idx, 1, offs, 2, "<+02>-2"));
  /* the same as version 1: after the table, the last type */
  write_file("Test/StepV1", buf, make_tzif(buf, 1, times, idx, 1, offs, 2, ""));
  /* no table at all, only a rule: +03, +04 from the last Sunday of March
   * 02:00 to the last Sunday of October 03:00 (local) */
  int32_t off3[] = {10800};
  write_file("Test/RuleOnly", buf,
             make_tzif(buf, 3, NULL, NULL, 0, off3, 1, "<+03>-3<+04>,M3.5.0/2,M10.5.0/3"));
  /* permanent DST written as a rule (version 3: times beyond 24 h) */
  write_file("Test/AllYear", buf,
             make_tzif(buf, 3, NULL, NULL, 0, off3, 1, "XXX3YYY,0/0,J365/25"));
  setenv("TZDIR", tzdir, 1);

  const jobq__tz *z = zone("Test/Step");
  assert_int_equal(jobq__tz_offset(z, 946684799), 3600);
  assert_int_equal(jobq__tz_offset(z, 946684800), 7200);
  assert_int_equal(jobq__tz_offset(z, INT64_C(100000000000)), 7200);
  z = zone("Test/StepV1");
  assert_int_equal(jobq__tz_offset(z, -1000), 3600);
  assert_int_equal(jobq__tz_offset(z, 946684800), 7200);
  z = zone("Test/RuleOnly");
  /* 2026-03-29 is the last Sunday of March: 02:00 +03 = 23:00Z on the 28th */
  assert_int_equal(jobq__tz_offset(z, 1774738799), 10800);
  assert_int_equal(jobq__tz_offset(z, 1774738800), 14400);
  /* 2026-10-25: 03:00 +04 = 23:00Z on the 24th */
  assert_int_equal(jobq__tz_offset(z, 1792882799), 14400);
  assert_int_equal(jobq__tz_offset(z, 1792882800), 10800);
  z = zone("Test/AllYear");
  for (int64_t u = 1767225600 - 86400; u < 1767225600 + 400 * 86400; u += 3 * 3600)
    assert_int_equal(jobq__tz_offset(z, u), -7200);

  /* through the public functions */
  int64_t t;
  assert_int_equal(jobq_cron_next("0 12 * * *", "Test/Step", 946684800000, &t), 0);
  assert_int_equal(t, INT64_C(946684800000) + 10 * 3600000);
  assert_int_equal(jobq_cron_next("30 2 29 3 *", "Test/RuleOnly", 1767225600000, &t), 0);
  assert_int_equal(t, INT64_C(1774738800000)); /* in the gap: at its end */
  assert_int_equal(jobq_end_of_day("Test/RuleOnly", 1774738800000, &t), 0);
  /* 29 March runs from 21:00Z on the 28th (00:00 +03) to 20:00Z (00:00 +04): 23 hours */
  assert_int_equal(t, INT64_C(1774738800000) + (21 * 3600) * 1000);

  /* The cache is keyed by the file's path: another TZDIR reads afresh. */
  const jobq__tz *a = zone("Test/Step");
  char other[64];
  snprintf(other, sizeof other, "%.50s/other", tzdir);
  mkdir(other, 0755);
  char save[128];
  snprintf(save, sizeof save, "%s", tzdir);
  snprintf(tzdir, sizeof tzdir, "%s", other);
  int32_t off5[] = {18000};
  write_file("Test/Step", buf, make_tzif(buf, 2, NULL, NULL, 0, off5, 1, "<+05>-5"));
  setenv("TZDIR", other, 1);
  const jobq__tz *b = zone("Test/Step");
  assert_ptr_not_equal(a, b);
  assert_int_equal(jobq__tz_offset(b, 0), 18000);
  snprintf(tzdir, sizeof tzdir, "%s", save);
  unsetenv("TZDIR");
}

static void expect_tz_err(const char *name, const char *needle) {
  int64_t t = -42;
  TAPI_ERR(JOBQ_ETZ, "jobq_cron_next", jobq_cron_next("* * * * *", name, 0, &t));
  TAPI_ERR_HAS(needle);
  assert_int_equal(t, -42);
  TAPI_ERR(JOBQ_ETZ, "jobq_end_of_day", jobq_end_of_day(name, 0, &t));
  assert_int_equal(t, -42);
}

static void test_damaged_files(void **state) {
  (void)state;
  size_t n;
  unsigned char *ny = read_system("America/New_York", &n);
  /* every proper prefix is refused by the parser, none crashes */
  for (size_t k = 0; k < n; k++) {
    jobq__tz *z = NULL;
    int rc = jobq__tz_parse("test", "file", ny, k, &z);
    if (rc != JOBQ_ETZ) {
      print_error("prefix of %zu bytes of %zu: rc %d\n", k, n, rc);
      fail();
    }
    assert_null(z);
  }
  jobq__tz *z = NULL;
  assert_int_equal(jobq__tz_parse("test", "file", ny, n, &z), 0);
  jobq__tz_free(z);
  /* every single byte changed: refused or accepted, never a crash (the
   * sanitizer builds check the reads) */
  unsigned char *copy = malloc(n);
  for (size_t k = 0; k < n; k++) {
    memcpy(copy, ny, n);
    copy[k] ^= 0xa5;
    z = NULL;
    int rc = jobq__tz_parse("test", "file", copy, n, &z);
    assert_true(rc == 0 || rc == JOBQ_ETZ);
    if (rc == 0) {
      (void)jobq__tz_offset(z, 1772953200);
      int64_t u[2];
      (void)jobq__tz_local_to_utc(z, 1772953200, u);
      jobq__tz_free(z);
    }
  }
  free(copy);

  write_file("Bad/Truncated", ny, n / 2);
  write_file("Bad/Empty", "", 0);
  unsigned char bad[64];
  memcpy(bad, ny, sizeof bad);
  bad[0] = 'X';
  write_file("Bad/Magic", bad, sizeof bad);
  memcpy(bad, ny, sizeof bad);
  bad[4] = '9';
  write_file("Bad/Version", bad, sizeof bad);
  /* a footer that is not a POSIX TZ rule */
  unsigned char buf[512];
  int32_t off[] = {0};
  write_file("Bad/Footer", buf, make_tzif(buf, 2, NULL, NULL, 0, off, 1, "EST5EDT,M13.1.0,M11.1.0"));
  write_file("Bad/NoRule", buf, make_tzif(buf, 2, NULL, NULL, 0, off, 1, "EST5EDT"));
  /* a transition to a type that does not exist */
  int64_t times[] = {0};
  uint8_t idx[] = {7};
  write_file("Bad/Type", buf, make_tzif(buf, 2, times, idx, 1, off, 1, ""));
  /* transitions out of order */
  int64_t times2[] = {100, 50};
  uint8_t idx2[] = {0, 0};
  write_file("Bad/Order", buf, make_tzif(buf, 2, times2, idx2, 2, off, 1, ""));
  char link[200];
  snprintf(link, sizeof link, "%s/Bad/Outside", tzdir);
  assert_int_equal(symlink("/usr/share/zoneinfo/Europe/London", link), 0);
  setenv("TZDIR", tzdir, 1);

  expect_tz_err("Bad/Truncated", "jobq_cron_next: time zone file 'Bad/Truncated' is truncated");
  expect_tz_err("Bad/Empty", "is not a TZif file");
  expect_tz_err("Bad/Magic", "is not a TZif file");
  expect_tz_err("Bad/Version", "unknown TZif version");
  expect_tz_err("Bad/Footer", "is not a valid POSIX TZ rule");
  expect_tz_err("Bad/NoRule", "is not a valid POSIX TZ rule");
  expect_tz_err("Bad/Type", "a transition to a missing type");
  expect_tz_err("Bad/Order", "transitions out of order");
  expect_tz_err("Bad/Outside", "leads outside the tz database");
  expect_tz_err("Bad", "not a zone file"); /* a directory */
  expect_tz_err("Bad/Missing", "not in the tz database");
  expect_tz_err("America/New_York", "not in the tz database"); /* only TZDIR is searched */
  unsetenv("TZDIR");
  free(ny);
}

/* ---- jobq_end_of_day ---- */

static void check_eod(const char *tz, int64_t at_ms, int64_t want_ms) {
  int64_t t = -42;
  int rc = jobq_end_of_day(tz, at_ms, &t);
  if (rc != 0 || t != want_ms) {
    print_error("end of day in %s at %lld: %lld (rc %d: %s), want %lld\n", tz ? tz : "UTC",
                (long long)at_ms, (long long)t, rc, jobq_last_error(), (long long)want_ms);
    fail();
  }
}

/*   TZ=America/Havana date -d @1772945999 -> Sat Mar  7 23:59:59 CST 2026
 *   TZ=America/Havana date -d @1772946000 -> Sun Mar  8 01:00:00 CDT 2026 (no midnight)
 *   TZ=America/Havana date -d @1793505600 -> Sun Nov  1 00:00:00 CDT 2026
 *   TZ=America/Havana date -d @1793509200 -> Sun Nov  1 00:00:00 CST 2026 (again)
 *   TZ=Australia/Lord_Howe date -d @1791034200 -> Sun Oct  4 00:00:00 +1030 2026
 *   TZ=Australia/Lord_Howe date -d @1791118800 -> Mon Oct  5 00:00:00 +11 2026 */
static void test_end_of_day(void **state) {
  (void)state;
  const int64_t H = 3600000;
  check_eod(NULL, 0, 86400000);
  check_eod("UTC", 86400000 - 1, 86400000);
  check_eod("UTC", 86400000, 2 * 86400000);
  check_eod(NULL, -1, 0); /* 1969-12-31T23:59:59.999Z */
  check_eod("+05:30", 0, 86400000 - 5 * H - H / 2);
  check_eod("UTC-8", 0, 8 * H);
  /* New York: 8 March is 23 hours long (05:00Z to 04:00Z), 1 November 25
   * (04:00Z to 05:00Z the next day) */
  check_eod("America/New_York", INT64_C(1772971200000), INT64_C(1773028800000));
  check_eod("America/New_York", INT64_C(1772946000000), INT64_C(1773028800000));
  check_eod("America/New_York", INT64_C(1772946000000) - 1, INT64_C(1772946000000));
  check_eod("America/New_York", INT64_C(1793534400000), INT64_C(1793595600000));
  check_eod("America/New_York", INT64_C(1793505600000), INT64_C(1793595600000));
  /* Havana sets its clocks forward at midnight: 8 March begins at 01:00 CDT */
  check_eod("America/Havana", INT64_C(1772884800000), INT64_C(1772946000000));
  /* ... and back at 01:00 CDT: 1 November begins at its first 00:00 */
  check_eod("America/Havana", INT64_C(1793448000000), INT64_C(1793505600000));
  check_eod("America/Havana", INT64_C(1793511000000), INT64_C(1793595600000));
  /* Lord Howe: 4 October is 23.5 hours long */
  check_eod("Australia/Lord_Howe", INT64_C(1791034200000), INT64_C(1791118800000));
  /* 2100, from the footer rule: 14 March in New York ends at 04:00Z */
  check_eod("America/New_York", INT64_C(4108708800000), INT64_C(4108766400000));

  int64_t t = -42;
  TAPI_ERR(JOBQ_EINVAL, "jobq_end_of_day", jobq_end_of_day(NULL, 0, NULL));
  TAPI_ERR_HAS("out_ms is NULL");
  TAPI_ERR(JOBQ_EINVAL, "jobq_end_of_day", jobq_end_of_day(NULL, INT64_MAX, &t));
  TAPI_ERR_HAS("outside the years 1 to 9999");
  TAPI_ERR(JOBQ_ETZ, "jobq_end_of_day", jobq_end_of_day("Nowhere/City", 0, &t));
  assert_string_equal(jobq_last_error(), "jobq_end_of_day: unknown time zone 'Nowhere/City' "
                                         "(not in the tz database /usr/share/zoneinfo)");
  TAPI_ERR(JOBQ_ETZ, "jobq_end_of_day", jobq_end_of_day("+25:00", 0, &t));
  assert_int_equal(t, -42);
}

/* ---- jobq_local_date ---- */

/*   date -u -d @1765022400                     -> Sat Dec  6 12:00:00 UTC 2025
 *   TZ=Pacific/Kiritimati date -d @1765022400  -> Sun Dec  7 02:00:00 +14 2025
 *   TZ=America/New_York date -d @1765022400    -> Sat Dec  6 07:00:00 EST 2025
 *   TZ=Pacific/Pago_Pago date -d @1765022400   -> Sat Dec  6 01:00:00 SST 2025 */
static void test_local_date(void **state) {
  (void)state;
  char d[JOBQ_DATE_SIZE + 4];
  struct {
    const char *tz;
    int64_t at;
    const char *want;
  } cases[] = {
      {NULL, INT64_C(1765022400000), "2025-12-06"},
      {"Pacific/Kiritimati", INT64_C(1765022400000), "2025-12-07"},
      {"America/New_York", INT64_C(1765022400000), "2025-12-06"},
      {"Pacific/Pago_Pago", INT64_C(1765022400000), "2025-12-06"},
      {"Pacific/Pago_Pago", INT64_C(1765022400000) - 2 * 3600000, "2025-12-05"},
      {"+05:30", INT64_C(1765045800000) - 1, "2025-12-06"}, /* 23:59:59.999 local */
      {"+05:30", INT64_C(1765045800000), "2025-12-07"},
      /* New York's first instant of 8 March 2026, and the last of the 7th */
      {"America/New_York", INT64_C(1772946000000), "2026-03-08"},
      {"America/New_York", INT64_C(1772946000000) - 1, "2026-03-07"},
      {"UTC", -1, "1969-12-31"},
      {"UTC", INT64_C(253402300799999), "9999-12-31"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(d, 'x', sizeof d);
    int rc = jobq_local_date(cases[i].tz, cases[i].at, d, JOBQ_DATE_SIZE);
    if (rc != 0 || strcmp(d, cases[i].want) != 0) {
      print_error("local date in %s at %lld: '%.11s' (rc %d: %s), want %s\n",
                  cases[i].tz ? cases[i].tz : "UTC", (long long)cases[i].at, d, rc,
                  jobq_last_error(), cases[i].want);
      fail();
    }
    /* and the day jobq_end_of_day ends is that date */
    int64_t end = 0;
    if (cases[i].at < INT64_C(253402300799999)) {
      char d2[JOBQ_DATE_SIZE];
      assert_int_equal(jobq_end_of_day(cases[i].tz, cases[i].at, &end), 0);
      assert_int_equal(jobq_local_date(cases[i].tz, end - 1, d2, sizeof d2), 0);
      assert_string_equal(d2, cases[i].want);
    }
  }
  memset(d, 'x', sizeof d);
  TAPI_ERR(JOBQ_EINVAL, "jobq_local_date", jobq_local_date(NULL, 0, NULL, 11));
  TAPI_ERR_HAS("out is NULL");
  TAPI_ERR(JOBQ_EINVAL, "jobq_local_date", jobq_local_date(NULL, 0, d, 10));
  TAPI_ERR_HAS("cap 10 is below JOBQ_DATE_SIZE (11)");
  TAPI_ERR(JOBQ_EINVAL, "jobq_local_date", jobq_local_date(NULL, INT64_MIN, d, sizeof d));
  TAPI_ERR(JOBQ_ETZ, "jobq_local_date", jobq_local_date("Nowhere/City", 0, d, sizeof d));
  assert_int_equal(d[0], 'x'); /* nothing written */
}

/* ---- every zone of the database against the C library ---- */

/* glibc reads the same files with its own code: both must give the same
 * offset at every sampled instant from 1900 to 2200 (the samples step by 29
 * days and 3,607 s, so they fall at every time of day), and local_to_utc
 * must lead each local time back to the instant it came from. The test may
 * set TZ; the library never does. */
static int compare_zone(const char *name, int *zones) {
  const jobq__tz *z = zone(name);
  setenv("TZ", name, 1);
  tzset();
  int bad = 0;
  for (int64_t t = INT64_C(-2208988800); t < INT64_C(7258118400); t += 29 * 86400 + 3607) {
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    int32_t mine = jobq__tz_offset(z, t);
    int64_t u[2];
    int n = jobq__tz_local_to_utc(z, t + mine, u);
    if (tm.tm_gmtoff != mine || n < 1 || (u[0] != t && (n < 2 || u[1] != t))) {
      if (bad++ < 3)
        print_error("%s at %lld: libc offset %ld, ours %d; local_to_utc %d: %lld\n", name,
                    (long long)t, tm.tm_gmtoff, (int)mine, n, (long long)u[0]);
    }
  }
  ++*zones;
  return bad;
}

static int walk(const char *root, const char *rel, int *zones) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  DIR *d = opendir(path);
  if (d == NULL) return 0;
  int bad = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char r[512];
    snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    /* posix/ and right/ are copies (and right/ counts leap seconds);
     * localtime is the machine's own, posixrules a default */
    if (!strcmp(r, "posix") || !strcmp(r, "right") || !strcmp(r, "localtime") ||
        !strcmp(r, "posixrules"))
      continue;
    char full[1100];
    snprintf(full, sizeof full, "%s/%s", root, r);
    struct stat st;
    if (stat(full, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      bad += walk(root, r, zones);
      continue;
    }
    FILE *f = fopen(full, "rb");
    char magic[4] = {0};
    size_t got = f ? fread(magic, 1, 4, f) : 0;
    if (f) fclose(f);
    if (got == 4 && memcmp(magic, "TZif", 4) == 0) bad += compare_zone(r, zones);
  }
  closedir(d);
  return bad;
}

static void test_agrees_with_libc(void **state) {
  (void)state;
  int zones = 0;
  int bad = walk("/usr/share/zoneinfo", "", &zones);
  unsetenv("TZ");
  tzset();
  assert_true(zones > 300); /* tzdata 2025b: 598 */
  assert_int_equal(bad, 0);
}

/* ---- threads ---- */

static const char *const thread_zones[] = {"Europe/Paris", "Asia/Tokyo", "America/Chicago",
                                           "Pacific/Chatham", "Africa/Cairo", "Europe/Berlin"};

static void *load_many(void *arg) {
  int64_t *out = arg;
  for (int r = 0; r < 50; r++)
    for (int i = 0; i < 6; i++) {
      int64_t t;
      if (jobq_cron_next("17 */3 * * *", thread_zones[i], 1767225600000 + r * 60000, &t) != 0)
        t = -1;
      out[r * 6 + i] = t;
    }
  return NULL;
}

/* Threads load the same zones at once: each gets the same answers (and the
 * thread sanitizer build checks the cache). */
static void test_threads(void **state) {
  (void)state;
  enum { N = 4 };
  pthread_t th[N];
  static int64_t res[N][300];
  for (int i = 0; i < N; i++) assert_int_equal(pthread_create(&th[i], NULL, load_many, res[i]), 0);
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 1; i < N; i++) assert_memory_equal(res[0], res[i], sizeof res[0]);
  for (int k = 0; k < 300; k++) assert_true(res[0][k] > 1767225600000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builtin_and_fixed),
      cmocka_unit_test(test_new_york),
      cmocka_unit_test(test_footer_rule),
      cmocka_unit_test(test_crafted_zones),
      cmocka_unit_test(test_damaged_files),
      cmocka_unit_test(test_end_of_day),
      cmocka_unit_test(test_local_date),
      cmocka_unit_test(test_agrees_with_libc),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
