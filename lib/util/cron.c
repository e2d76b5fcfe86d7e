/* Cron expressions: parsing into bitmasks and the next occurrence.
 *
 * The search runs on local civil time and skips whole months, days and hours
 * that cannot match (a bit scan finds the next allowed hour or minute), so a
 * typical expression is resolved in a few steps instead of a scan over
 * minutes. Time zones enter only at the edges: the UTC timeline is cut into
 * segments of constant offset, each is searched as a span of local time, and
 * the gap or repeat at each transition is handled by the rules of
 * docs/reference/jobq_cron_next.md. */
#include "util/cron.h"

#include "util/civil.h"
#include "util/err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* ---- parsing ----------------------------------------------------------------- */

typedef struct {
  const char *name;
  int lo, hi;
  const char *const *names; /* 3-letter names for lo.. , or NULL */
  const char *names_hint;
} field_def;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const field_def fields[5] = {
    {"minute", 0, 59, NULL, NULL},
    {"hour", 0, 23, NULL, NULL},
    {"day-of-month", 1, 31, NULL, NULL},
    {"month", 1, 12, month_names, "JAN-DEC"},
    {"day-of-week", 0, 7, dow_names, "SUN-SAT"},
};

static const struct {
  const char *name, *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

#define FIELD_ERR(fmt, ...)                                                               \
  jobq__err(JOBQ_ECRON, "%s: field %d (%s) " fmt, fn, fi + 1, fields[fi].name, __VA_ARGS__)

/* A number or (month, day-of-week) name at s..e. 0 and *v, or -1. */
static int parse_value(const field_def *f, const char *s, const char *e, int *v) {
  if (s == e) return -1;
  if (isdigit((unsigned char)*s)) {
    int n = 0;
    for (const char *p = s; p < e; p++) {
      if (!isdigit((unsigned char)*p) || n > 1000) return -1;
      n = n * 10 + (*p - '0');
    }
    *v = n;
    return 0;
  }
  if (f->names == NULL || e - s != 3) return -1;
  for (int i = 0; f->names[i]; i++)
    if (strncasecmp(s, f->names[i], 3) == 0) {
      *v = f->lo + i;
      return 0;
    }
  return -1;
}

static int value_err(const char *fn, int fi, const char *s, const char *e) {
  const field_def *f = &fields[fi];
  int len = (int)(e - s);
  if (len == 0) return FIELD_ERR("has an empty item%s", "");
  int v;
  if (parse_value(f, s, e, &v) == 0)
    return FIELD_ERR("'%.*s' is out of range %d-%d", len > 32 ? 32 : len, s, f->lo, f->hi);
  if (f->names)
    return FIELD_ERR("'%.*s' is not a number or a name (%s)", len > 32 ? 32 : len, s, f->names_hint);
  return FIELD_ERR("'%.*s' is not a number", len > 32 ? 32 : len, s);
}

/* One comma-separated item: "*", "v", "a-b", "*\/n" or "a-b/n". */
static int parse_item(const char *fn, int fi, const char *s, const char *e, uint64_t *bits) {
  const field_def *f = &fields[fi];
  int len = (int)(e - s), qlen = len > 32 ? 32 : len;
  const char *slash = memchr(s, '/', (size_t)(e - s));
  const char *re = slash ? slash : e;
  int lo, hi, step = 1;
  if (re - s == 1 && *s == '*') {
    lo = f->lo;
    hi = f->hi == 7 ? 6 : f->hi; /* '*' in day-of-week is 0-6 */
  } else {
    const char *dash = memchr(s, '-', (size_t)(re - s));
    const char *ae = dash ? dash : re;
    if (parse_value(f, s, ae, &lo) != 0 || lo < f->lo || lo > f->hi) return value_err(fn, fi, s, ae);
    hi = lo;
    if (dash) {
      if (parse_value(f, dash + 1, re, &hi) != 0 || hi < f->lo || hi > f->hi)
        return value_err(fn, fi, dash + 1, re);
      if (hi < lo)
        return FIELD_ERR("range '%.*s' runs backwards (write the smaller value first)", qlen, s);
    } else if (slash) {
      return FIELD_ERR("'%.*s' has a step without a range (write a-b/n or */n)", qlen, s);
    }
  }
  if (slash) {
    int span = f->hi == 7 ? 7 : f->hi; /* the largest step that still means something */
    int n = 0;
    const char *p = slash + 1;
    if (p == e) return FIELD_ERR("step in '%.*s' is empty", qlen, s);
    for (; p < e; p++) {
      if (!isdigit((unsigned char)*p) || n > 1000)
        return FIELD_ERR("step in '%.*s' is not a number", qlen, s);
      n = n * 10 + (*p - '0');
    }
    if (n < 1 || n > span) return FIELD_ERR("step in '%.*s' is out of range 1-%d", qlen, s, span);
    step = n;
  }
  for (int v = lo; v <= hi; v += step) *bits |= UINT64_C(1) << v;
  return 0;
}

static int parse_field(const char *fn, int fi, const char *s, const char *e, uint64_t *bits) {
  *bits = 0;
  for (;;) {
    const char *c = memchr(s, ',', (size_t)(e - s));
    const char *ie = c ? c : e;
    int rc = parse_item(fn, fi, s, ie, bits);
    if (rc != 0) return rc;
    if (!c) return 0;
    s = c + 1;
  }
}

/* No month of the expression has any of its days (only with the day-of-week
 * field a '*', where the day-of-month field alone decides). */
static int never_matches(const jobq__cron *c) {
  if ((c->flags & JOBQ__CRON_DOM_STAR) || !(c->flags & JOBQ__CRON_DOW_STAR)) return 0;
  for (int m = 1; m <= 12; m++) {
    if (!(c->months >> m & 1)) continue;
    int maxd = m == 2 ? 29 : jobq__days_in_month(2001, m);
    if (c->dom & (((UINT32_C(1) << maxd) - 1) << 1)) return 0;
  }
  return 1;
}

int jobq__cron_parse(const char *fn, const char *expr, jobq__cron *out) {
  size_t len = strnlen(expr, JOBQ__CRON_MAX_LEN + 1);
  if (len > JOBQ__CRON_MAX_LEN)
    return jobq__err(JOBQ_ECRON, "%s: expression is longer than %d bytes", fn, JOBQ__CRON_MAX_LEN);
  const char *s = expr, *end = expr + len;
  while (s < end && isspace((unsigned char)*s)) s++;
  while (end > s && isspace((unsigned char)end[-1])) end--;
  if (s == end) return jobq__err(JOBQ_ECRON, "%s: expression is empty", fn);
  if (*s == '@') {
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
      if ((size_t)(end - s) == strlen(macros[i].name) &&
          strncasecmp(s, macros[i].name, (size_t)(end - s)) == 0)
        return jobq__cron_parse(fn, macros[i].expr, out);
    int n = (int)(end - s);
    return jobq__err(JOBQ_ECRON,
                     "%s: unknown macro '%.*s' (known: @yearly, @annually, @monthly, @weekly, "
                     "@daily, @midnight, @hourly)",
                     fn, n > 32 ? 32 : n, s);
  }
  const char *fs[6], *fe[6];
  int nf = 0;
  for (const char *p = s; p < end;) {
    while (p < end && isspace((unsigned char)*p)) p++;
    if (p == end) break;
    const char *b = p;
    while (p < end && !isspace((unsigned char)*p)) p++;
    if (nf == 5) {
      int n = (int)(p - b);
      return jobq__err(JOBQ_ECRON,
                       "%s: too many fields: '%.*s' after the fifth (expected minute hour "
                       "day-of-month month day-of-week)",
                       fn, n > 32 ? 32 : n, b);
    }
    fs[nf] = b;
    fe[nf++] = p;
  }
  if (nf < 5)
    return jobq__err(JOBQ_ECRON,
                     "%s: expression has %d field%s, expected 5 (minute hour day-of-month month "
                     "day-of-week)",
                     fn, nf, nf == 1 ? "" : "s");
  uint64_t b[5];
  for (int fi = 0; fi < 5; fi++) {
    int rc = parse_field(fn, fi, fs[fi], fe[fi], &b[fi]);
    if (rc != 0) return rc;
  }
  jobq__cron c = {0};
  c.minutes = b[0];
  c.hours = (uint32_t)b[1];
  c.dom = (uint32_t)b[2];
  c.months = (uint16_t)b[3];
  c.dow = (uint8_t)((b[4] | b[4] >> 7) & 0x7f); /* 7 is Sunday too */
  if (*fs[1] == '*') c.flags |= JOBQ__CRON_HOUR_STAR;
  if (*fs[2] == '*') c.flags |= JOBQ__CRON_DOM_STAR;
  if (*fs[4] == '*') c.flags |= JOBQ__CRON_DOW_STAR;
  if (never_matches(&c)) {
    int n = (int)(end - s);
    return jobq__err(JOBQ_ECRON,
                     "%s: expression '%.*s' never matches: none of its months has that day of "
                     "the month",
                     fn, n > 64 ? 64 : n, s);
  }
  *out = c;
  return 0;
}

/* ---- the next occurrence ------------------------------------------------------ */

#define NONE INT64_MAX

/* Vixie cron: when both day fields are restricted (neither starts with '*'),
 * a day matches if either does; otherwise both must (one of them is all). */
static int day_matches(const jobq__cron *c, int d, int64_t day) {
  int dom = c->dom >> d & 1, dow = c->dow >> jobq__weekday(day) & 1;
  if (c->flags & (JOBQ__CRON_DOM_STAR | JOBQ__CRON_DOW_STAR)) return dom && dow;
  return dom || dow;
}

/* The lowest set bit at or above i, or -1. */
static int next_bit(uint64_t bits, int i) {
  if (i >= 64) return -1;
  bits &= ~UINT64_C(0) << i;
  return bits ? __builtin_ctzll(bits) : -1;
}

/* The first matching local time (seconds, a whole minute) at or after from
 * and at or before limit, or NONE. */
static int64_t next_local(const jobq__cron *c, int64_t from, int64_t limit) {
  int64_t minute = -jobq__floor_div(-from, 60); /* round up to a whole minute */
  int64_t day = jobq__floor_div(minute, 1440);
  int mod = (int)(minute - day * 1440), h = mod / 60, mi = mod % 60;
  int64_t y;
  int mo, d;
  jobq__civil_from_days(day, &y, &mo, &d);
  for (;;) {
    if (day * 86400 + h * 3600 + mi * 60 > limit) return NONE;
    if (!(c->months >> mo & 1)) {
      int nm = next_bit(c->months, mo + 1);
      if (nm < 0) {
        y++;
        nm = next_bit(c->months, 1);
      }
      mo = nm;
      d = 1;
      h = mi = 0;
      day = jobq__days_from_civil(y, mo, 1);
      continue;
    }
    if (!day_matches(c, d, day)) {
      int dim = jobq__days_in_month(y, mo), nd = d + 1;
      if (c->dow == 0x7f) { /* the day-of-month field alone decides: jump to its next day */
        int b = next_bit(c->dom, d + 1);
        nd = b < 0 ? dim + 1 : b;
      }
      day += nd - d;
      d = nd;
      if (d > dim) {
        day -= d - dim - 1;
        d = 1;
        if (++mo > 12) {
          mo = 1;
          y++;
        }
      }
      h = mi = 0;
      continue;
    }
    int nh = next_bit(c->hours, h);
    if (nh < 0) { /* no hour left today */
      mi = 0;
      h = 24;
    } else {
      if (nh != h) mi = 0;
      h = nh;
      int nmi = next_bit(c->minutes, mi);
      if (nmi >= 0) {
        int64_t l = day * 86400 + h * 3600 + nmi * 60;
        return l <= limit ? l : NONE;
      }
      mi = 0;
      h++;
    }
    if (h >= 24) {
      h = 0;
      day++;
      if (++d > jobq__days_in_month(y, mo)) {
        d = 1;
        if (++mo > 12) {
          mo = 1;
          y++;
        }
      }
    }
  }
}

int jobq__cron_next(const char *fn, const jobq__cron *c, const jobq__tz *z, int64_t after_ms,
                    int64_t *out_ms) {
  int64_t cur = jobq__floor_div(after_ms, 1000) + 1; /* whole seconds: t*1000 > after_ms */
  int64_t horizon = cur + jobq__tz_offset(z, cur) + (int64_t)JOBQ__CRON_HORIZON_YEARS * 366 * 86400;
  int repeat = (c->flags & JOBQ__CRON_HOUR_STAR) != 0;
  /* Local times below `covered` were already shown before the current
   * segment (clocks were set back): a schedule with a fixed hour does not
   * fire on them again. */
  int64_t covered = INT64_MIN, t;
  if (jobq__tz_prev_transition(z, cur, &t)) {
    int32_t before = jobq__tz_offset(z, t - 1), after = jobq__tz_offset(z, t);
    if (before > after) covered = t + before;
    /* The search starts exactly at the end of a gap (after_ms in the last
     * second before clocks went forward): a time that matched in the
     * skipped span fires now, as it would have from any earlier start. */
    if (t == cur && after > before && next_local(c, t + before, t + after - 1) != NONE) {
      *out_ms = t * 1000;
      return 0;
    }
  }
  for (;;) {
    int32_t off = jobq__tz_offset(z, cur);
    int64_t te;
    int has_end = jobq__tz_next_transition(z, cur, &te);
    int64_t from = cur + off, limit = horizon;
    if (!repeat && covered > from) from = covered;
    if (has_end && te + off - 1 < limit) limit = te + off - 1;
    int64_t l = next_local(c, from, limit);
    if (l != NONE) {
      *out_ms = (l - off) * 1000;
      return 0;
    }
    if (!has_end || te + off > horizon) break;
    int32_t next_off = jobq__tz_offset(z, te);
    /* Clocks set forward: a time that matched in the skipped span fires at
     * the first instant after it, which is the transition itself. */
    if (next_off > off && next_local(c, te + off, te + next_off - 1) != NONE) {
      *out_ms = te * 1000;
      return 0;
    }
    if (te + off > covered) covered = te + off;
    cur = te;
  }
  return jobq__err(JOBQ_ECRON, "%s: expression never matches in the %d years after the given time",
                   fn, JOBQ__CRON_HORIZON_YEARS);
}
