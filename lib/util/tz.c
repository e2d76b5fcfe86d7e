/* Time zones: fixed offsets and TZif files from the system tz database, read
 * by hand (see tz.h for why not localtime). A TZif file (RFC 8536) holds a
 * table of transitions (instant -> local time type) and, from version 2 on, a
 * POSIX TZ string ("EST5EDT,M3.2.0,M11.1.0") that gives the rule for every
 * instant after the table's last transition. Debian may ship "slim" files
 * whose table stops early, so the footer rule is not an afterthought: it is
 * what answers for most future instants. */
#include "util/tz.h"

#include "util/civil.h"
#include "util/err.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_MAX_FILE (1 << 20)     /* real files are under 5 KiB */
#define TZ_MAX_TIMES 100000       /* real files have at most a few hundred */
#define TZ_MAX_OFFSET (26 * 3600) /* RFC 8536: -(2^31) < utoff; real ones within +-26 h */
#define TZ_MAX_NAME 255

/* A POSIX TZ rule date: Jn (1..365, never counting Feb 29), n (0..365), or
 * Mm.w.d (month, week 1..5 where 5 = last, weekday 0 = Sunday), at a time of
 * day in local time that may be negative or beyond 24 h (version 3). */
typedef struct {
  char kind; /* 'J', 'N' or 'M' */
  int a, b, c;
  int32_t time;
} rule_date;

typedef struct {
  int32_t std_off, dst_off; /* east of UTC */
  int has_dst;
  rule_date start, end;
} posix_rule;

struct jobq__tz {
  /* The cache: an append-only list whose head is swapped atomically, so
   * lookups take no lock (and a fork() can never leave one held). */
  struct jobq__tz *next;
  char *key;
  int is_fixed;
  int32_t fixed_off;
  int64_t *trans; /* ascending */
  int32_t *trans_off; /* the offset from trans[i] on */
  int ntrans;
  int32_t first_off; /* before the first transition: time type 0 */
  int has_footer;
  posix_rule footer;
};

/* ---- the POSIX TZ rule (the footer) -------------------------------------- */

static int64_t rule_day(const rule_date *r, int64_t y) {
  int64_t jan1 = jobq__days_from_civil(y, 1, 1);
  if (r->kind == 'J') return jan1 + r->a - 1 + (jobq__is_leap(y) && r->a >= 60);
  if (r->kind == 'N') return jan1 + r->a;
  int64_t first = jobq__days_from_civil(y, r->a, 1);
  int64_t day = first + (r->c - jobq__weekday(first) + 7) % 7 + (int64_t)(r->b - 1) * 7;
  while (day - first >= jobq__days_in_month(y, r->a)) day -= 7;
  return day;
}

/* The instants DST starts and ends in year y. The start is written in
 * standard time, the end in daylight time. */
static void rule_year(const posix_rule *p, int64_t y, int64_t *start, int64_t *end) {
  *start = rule_day(&p->start, y) * 86400 + p->start.time - p->std_off;
  *end = rule_day(&p->end, y) * 86400 + p->end.time - p->dst_off;
}

static int64_t year_of(int64_t t) {
  int64_t y;
  int m, d;
  jobq__civil_from_days(jobq__floor_div(t, 86400), &y, &m, &d);
  return y;
}

/* The offset at t is the one the latest rule transition at or before t
 * set: derived from the same instants as rule_transition, so that the
 * offset changes exactly at the transitions it reports, whatever the rule
 * (a start and an end on the same instant, rules at New Year: deciding by
 * "is t between this year's start and end" disagreed with the transitions
 * there). At equal instants the start wins: a rule whose end meets the next
 * start is daylight time all year (RFC 8536, 3.3.1). */
static int32_t rule_offset(const posix_rule *p, int64_t t) {
  if (!p->has_dst) return p->std_off;
  int64_t y = year_of(t), best = INT64_MIN;
  int dst = 0;
  for (int64_t k = y - 2; k <= y + 1; k++) {
    int64_t s, e;
    rule_year(p, k, &s, &e);
    if (e <= t && e > best) {
      best = e;
      dst = 0;
    }
    if (s <= t && s >= best) {
      best = s;
      dst = 1;
    }
  }
  return dst ? p->dst_off : p->std_off;
}

/* dir > 0: the first rule transition after t; dir < 0: the last at or
 * before t. The three years around t always hold one of each. */
static int64_t rule_transition(const posix_rule *p, int64_t t, int dir) {
  int64_t y = year_of(t), best = dir > 0 ? INT64_MAX : INT64_MIN;
  for (int64_t k = y - 1; k <= y + 1; k++) {
    int64_t v[2];
    rule_year(p, k, &v[0], &v[1]);
    for (int i = 0; i < 2; i++) {
      if (dir > 0 && v[i] > t && v[i] < best) best = v[i];
      if (dir < 0 && v[i] <= t && v[i] > best) best = v[i];
    }
  }
  return best;
}

/* [+-]hh[:mm[:ss]], hours up to max_h. */
static const char *parse_hms(const char *s, int max_h, int32_t *out) {
  int sign = 1;
  if (*s == '+' || *s == '-') sign = *s++ == '-' ? -1 : 1;
  int32_t v[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) {
    if (i > 0) {
      if (*s != ':') break;
      s++;
    }
    if (*s < '0' || *s > '9') return NULL;
    int n = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 3) n = n * 10 + (*s++ - '0'), digits++;
    if (*s >= '0' && *s <= '9') return NULL;
    if ((i == 0 && n > max_h) || (i > 0 && (n > 59 || digits != 2))) return NULL;
    v[i] = n;
  }
  *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
  return s;
}

/* An abbreviation: three or more letters, or <...> of [A-Za-z0-9+-]. */
static const char *parse_abbr(const char *s) {
  const char *b = s;
  if (*s == '<') {
    s++;
    b = s;
    while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
           *s == '+' || *s == '-')
      s++;
    if (*s != '>' || s - b < 3) return NULL;
    return s + 1;
  }
  while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) s++;
  return s - b >= 3 ? s : NULL;
}

static const char *parse_num(const char *s, int lo, int hi, int *out) {
  if (*s < '0' || *s > '9') return NULL;
  int n = 0;
  while (*s >= '0' && *s <= '9') {
    n = n * 10 + (*s++ - '0');
    if (n > hi) return NULL;
  }
  if (n < lo) return NULL;
  *out = n;
  return s;
}

static const char *parse_rule_date(const char *s, rule_date *r) {
  memset(r, 0, sizeof *r);
  if (*s == 'J') {
    r->kind = 'J';
    s = parse_num(s + 1, 1, 365, &r->a);
  } else if (*s == 'M') {
    r->kind = 'M';
    s = parse_num(s + 1, 1, 12, &r->a);
    if (s == NULL || *s != '.') return NULL;
    s = parse_num(s + 1, 1, 5, &r->b);
    if (s == NULL || *s != '.') return NULL;
    s = parse_num(s + 1, 0, 6, &r->c);
  } else {
    r->kind = 'N';
    s = parse_num(s, 0, 365, &r->a);
  }
  if (s == NULL) return NULL;
  r->time = 7200; /* POSIX: 02:00 when no time is given */
  if (*s == '/') s = parse_hms(s + 1, 167, &r->time);
  return s;
}

/* 0, or -1 when s is not a POSIX TZ string this parser understands. A DST
 * name with no rule (whose meaning POSIX leaves to the implementation) is
 * refused: TZif footers always spell the rule out. */
static int parse_posix(const char *s, posix_rule *p) {
  memset(p, 0, sizeof *p);
  int32_t off;
  if ((s = parse_abbr(s)) == NULL || (s = parse_hms(s, 24, &off)) == NULL) return -1;
  p->std_off = -off; /* POSIX offsets count west of UTC */
  if (*s == '\0') return 0;
  if ((s = parse_abbr(s)) == NULL) return -1;
  p->has_dst = 1;
  p->dst_off = p->std_off + 3600;
  if (*s != ',' && *s != '\0') {
    if ((s = parse_hms(s, 24, &off)) == NULL) return -1;
    p->dst_off = -off;
  }
  if (*s != ',') return -1;
  if ((s = parse_rule_date(s + 1, &p->start)) == NULL || *s != ',') return -1;
  if ((s = parse_rule_date(s + 1, &p->end)) == NULL || *s != '\0') return -1;
  return 0;
}

/* ---- lookups --------------------------------------------------------------- */

static int uses_footer(const jobq__tz *z, int64_t t) {
  return z->has_footer && (z->ntrans == 0 || t >= z->trans[z->ntrans - 1]);
}

/* The index of the last transition at or before t, or -1. */
static int find(const jobq__tz *z, int64_t t) {
  int lo = 0, hi = z->ntrans; /* first index with trans > t */
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (z->trans[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

int32_t jobq__tz_offset(const jobq__tz *z, int64_t t) {
  if (z->is_fixed) return z->fixed_off;
  if (uses_footer(z, t)) return rule_offset(&z->footer, t);
  int i = find(z, t);
  return i < 0 ? z->first_off : z->trans_off[i];
}

int jobq__tz_next_transition(const jobq__tz *z, int64_t t, int64_t *out) {
  if (z->is_fixed) return 0;
  if (z->ntrans > 0 && t < z->trans[z->ntrans - 1]) {
    *out = z->trans[find(z, t) + 1];
    return 1;
  }
  if (!z->has_footer || !z->footer.has_dst) return 0;
  *out = rule_transition(&z->footer, t, 1);
  return 1;
}

int jobq__tz_prev_transition(const jobq__tz *z, int64_t t, int64_t *out) {
  if (z->is_fixed) return 0;
  int64_t best = INT64_MIN;
  if (z->ntrans > 0 && t >= z->trans[0]) best = z->trans[find(z, t)];
  if (uses_footer(z, t) && z->footer.has_dst) {
    int64_t r = rule_transition(&z->footer, t, -1);
    if (r > best) best = r;
  }
  if (best == INT64_MIN) return 0;
  *out = best;
  return 1;
}

/* Every offset in force somewhere within 30 hours of the instants that could
 * show local time L (offsets stay within +-26 h); each candidate u = L - off
 * is a real instant of L when the offset at u is off. */
int jobq__tz_local_to_utc(const jobq__tz *z, int64_t local, int64_t out[2]) {
  if (z->is_fixed) {
    out[0] = local - z->fixed_off;
    return 1;
  }
  enum { WINDOW = 30 * 3600, MAXC = 16 };
  int64_t lo = local - WINDOW, hi = local + WINDOW;
  int32_t cand[MAXC];
  int64_t tr[MAXC];
  int nc = 0, nt = 0;
  cand[nc++] = jobq__tz_offset(z, lo);
  for (int64_t t = lo, T; nt < MAXC && jobq__tz_next_transition(z, t, &T) && T <= hi; t = T) {
    tr[nt++] = T;
    if (nc < MAXC) cand[nc++] = jobq__tz_offset(z, T);
  }
  int n = 0;
  for (int i = 0; i < nc; i++) {
    int64_t u = local - cand[i];
    if (jobq__tz_offset(z, u) != cand[i]) continue;
    int dup = 0;
    for (int k = 0; k < n; k++) dup |= out[k] == u;
    if (dup) continue;
    if (n < 2) {
      out[n++] = u;
    } else if (u > out[1]) { /* keep the first and the last */
      out[1] = u;
    }
    if (n == 2 && out[0] > out[1]) {
      int64_t x = out[0];
      out[0] = out[1];
      out[1] = x;
    }
  }
  if (n > 0) return n;
  for (int i = 0; i < nt; i++) {
    int32_t before = jobq__tz_offset(z, tr[i] - 1), after = jobq__tz_offset(z, tr[i]);
    if (local >= tr[i] + before && local < tr[i] + after) {
      out[0] = tr[i];
      return 0;
    }
  }
  /* Not reachable with consistent data; answer something sane. */
  out[0] = local - jobq__tz_offset(z, local);
  return 1;
}

/* ---- TZif -------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static int64_t be64(const unsigned char *p) {
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

void jobq__tz_free(jobq__tz *z) {
  if (z == NULL) return;
  free(z->key);
  free(z->trans);
  free(z->trans_off);
  free(z);
}

#define BAD(...) (jobq__tz_free(z), jobq__err(JOBQ_ETZ, __VA_ARGS__))

int jobq__tz_parse(const char *fn, const char *what, const unsigned char *d, size_t n,
                   jobq__tz **out) {
  jobq__tz *z = calloc(1, sizeof *z);
  if (z == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory loading %s", fn, what);
  if (n < 44 || memcmp(d, "TZif", 4) != 0)
    return BAD("%s: %s is not a TZif file (no TZif header)", fn, what);
  int version = d[4] == 0 ? 1 : d[4] - '0';
  if (version < 1 || version > 4)
    return BAD("%s: %s has an unknown TZif version byte 0x%02x", fn, what, d[4]);
  /* The counts of a header at p, and the length of the data block after it
   * with times of tsize bytes. */
  size_t p = 0, tsize = 4;
  uint32_t c[6];
  size_t block = 0;
  for (int pass = 0;; pass++) {
    if (n - p < 44 || memcmp(d + p, "TZif", 4) != 0)
      return BAD("%s: %s is truncated or damaged (header %d)", fn, what, pass + 1);
    for (int i = 0; i < 6; i++) c[i] = be32(d + p + 20 + 4 * i);
    /* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
    if (c[3] > TZ_MAX_TIMES || c[4] == 0 || c[4] > 256 || c[5] == 0 || c[5] > 4096 ||
        c[2] > TZ_MAX_TIMES || (c[0] != 0 && c[0] != c[4]) || (c[1] != 0 && c[1] != c[4]))
      return BAD("%s: %s has impossible TZif counts", fn, what);
    block = (size_t)c[3] * tsize + c[3] + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * (tsize + 4) +
            c[1] + c[0];
    if (n - p - 44 < block) return BAD("%s: %s is truncated (data block %d)", fn, what, pass + 1);
    if (version == 1 || pass == 1) break;
    p += 44 + block; /* skip the 32-bit block: version 2+ readers use the 64-bit one */
    tsize = 8;
  }
  if (c[2] != 0)
    return BAD("%s: %s counts leap seconds (a \"right/\" zone), which are not supported", fn, what);
  const unsigned char *q = d + p + 44;
  uint32_t timecnt = c[3], typecnt = c[4];
  int32_t offs[256];
  const unsigned char *types = q + (size_t)timecnt * (tsize + 1);
  for (uint32_t i = 0; i < typecnt; i++) {
    int32_t off = (int32_t)be32(types + 6 * i);
    if (off < -TZ_MAX_OFFSET || off > TZ_MAX_OFFSET || types[6 * i + 4] > 1 ||
        types[6 * i + 5] >= c[5])
      return BAD("%s: %s has a malformed local time type", fn, what);
    offs[i] = off;
  }
  if (timecnt > 0) {
    z->trans = malloc(timecnt * sizeof *z->trans);
    z->trans_off = malloc(timecnt * sizeof *z->trans_off);
    if (z->trans == NULL || z->trans_off == NULL) {
      jobq__tz_free(z);
      return jobq__err(JOBQ_ENOMEM, "%s: out of memory loading %s", fn, what);
    }
  }
  for (uint32_t i = 0; i < timecnt; i++) {
    int64_t t = tsize == 8 ? be64(q + 8 * i) : (int64_t)(int32_t)be32(q + 4 * i);
    unsigned idx = q[(size_t)timecnt * tsize + i];
    if (idx >= typecnt) return BAD("%s: %s has a transition to a missing type", fn, what);
    if (i > 0 && t <= z->trans[i - 1]) return BAD("%s: %s has transitions out of order", fn, what);
    /* Far outside any calendar we compute with (years -292e9..): refuse, so
     * that no arithmetic near INT64 limits can overflow. */
    if (t < -(INT64_C(1) << 59) || t > (INT64_C(1) << 59))
      return BAD("%s: %s has a transition time out of range", fn, what);
    z->trans[i] = t;
    z->trans_off[i] = offs[idx];
  }
  z->ntrans = (int)timecnt;
  z->first_off = offs[0];
  if (version >= 2) {
    const unsigned char *f = q + block, *end = d + n;
    if (f >= end || *f != '\n') return BAD("%s: %s has no TZ string footer", fn, what);
    const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
    if (nl == NULL || nl - f - 1 > 255) return BAD("%s: %s has an unterminated TZ string footer", fn, what);
    char tzs[256];
    memcpy(tzs, f + 1, (size_t)(nl - f - 1));
    tzs[nl - f - 1] = '\0';
    if (tzs[0] != '\0') {
      if (parse_posix(tzs, &z->footer) != 0 || z->footer.std_off < -TZ_MAX_OFFSET ||
          z->footer.std_off > TZ_MAX_OFFSET || z->footer.dst_off < -TZ_MAX_OFFSET ||
          z->footer.dst_off > TZ_MAX_OFFSET)
        return BAD("%s: %s has a TZ string footer '%.64s' that is not a valid POSIX TZ rule", fn,
                   what, tzs);
      z->has_footer = 1;
    }
  }
  *out = z;
  return 0;
}
#undef BAD

/* ---- names ------------------------------------------------------------------- */

/* "+05:30", "-0800", "+05", "+5", and the same after "UTC"; ISO 8601 signs
 * ('+' is east of UTC). 1 and *off, 0 when s is not an offset at all, -1
 * when it starts like one but is malformed. */
static int parse_fixed(const char *s, int32_t *off) {
  if (strncmp(s, "UTC", 3) == 0) s += 3;
  if (*s != '+' && *s != '-') return 0;
  int sign = *s++ == '-' ? -1 : 1;
  int h = 0, m = 0, hd = 0;
  while (*s >= '0' && *s <= '9' && hd < 2) h = h * 10 + (*s++ - '0'), hd++;
  if (hd == 0) return -1;
  int colon = *s == ':';
  if (colon) s++;
  if (*s != '\0' || colon) {
    if (!colon && hd != 2) return -1; /* "+530" reads two ways */
    for (int i = 0; i < 2; i++) {
      if (s[i] < '0' || s[i] > '9') return -1;
      m = m * 10 + (s[i] - '0');
    }
    s += 2;
  }
  if (*s != '\0' || m > 59 || h * 60 + m > 18 * 60) return -1;
  *off = sign * (h * 3600 + m * 60);
  return 1;
}

static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > TZ_MAX_NAME || s[0] == '/' || s[n - 1] == '/') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
             c == '+' || c == '-' || c == '/';
    if (!ok) return 0;
    if (c == '/' && s[i + 1] == '/') return 0;
  }
  return strstr(s, "..") == NULL; /* cannot occur without '.', kept for clarity */
}

static _Atomic(jobq__tz *) cache;
static jobq__tz utc_zone = {.is_fixed = 1};

static const jobq__tz *cache_find(const char *key) {
  for (jobq__tz *z = atomic_load_explicit(&cache, memory_order_acquire); z; z = z->next)
    if (strcmp(z->key, key) == 0) return z;
  return NULL;
}

/* Publishes z, or frees it when another thread published the same key first. */
static const jobq__tz *cache_add(jobq__tz *z) {
  jobq__tz *head = atomic_load_explicit(&cache, memory_order_acquire);
  for (;;) {
    for (jobq__tz *o = head; o; o = o->next)
      if (strcmp(o->key, z->key) == 0) {
        jobq__tz_free(z);
        return o;
      }
    z->next = head;
    if (atomic_compare_exchange_weak_explicit(&cache, &head, z, memory_order_acq_rel,
                                              memory_order_acquire))
      return z;
  }
}

static int read_file(const char *fn, const char *name, const char *dir, const char *path,
                     unsigned char **buf, size_t *len) {
  char rdir[PATH_MAX], rpath[PATH_MAX];
  if (realpath(dir, rdir) == NULL)
    return jobq__err(JOBQ_ETZ, "%s: unknown time zone '%s' (the tz database %s: %s)", fn, name, dir,
                     strerror(errno));
  if (realpath(path, rpath) == NULL)
    return jobq__err(JOBQ_ETZ, "%s: unknown time zone '%s' (not in the tz database %s)", fn, name,
                     dir);
  size_t nd = strlen(rdir);
  if (strncmp(rpath, rdir, nd) != 0 || (rpath[nd] != '/' && strcmp(rdir, "/") != 0))
    return jobq__err(JOBQ_ETZ, "%s: time zone '%s' leads outside the tz database %s", fn, name, dir);
  int fd = open(rpath, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return jobq__err(JOBQ_ETZ, "%s: cannot read time zone '%s': %s", fn, name, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_MAX_FILE) {
    close(fd);
    return jobq__err(JOBQ_ETZ, "%s: unknown time zone '%s' (not a zone file)", fn, name);
  }
  unsigned char *b = malloc((size_t)st.st_size + 1);
  if (b == NULL) {
    close(fd);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory reading time zone '%s'", fn, name);
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  *buf = b;
  *len = got;
  return 0;
}

int jobq__tz_get(const char *fn, const char *name, const jobq__tz **out) {
  if (name == NULL || name[0] == '\0' || strcmp(name, "UTC") == 0) {
    *out = &utc_zone;
    return 0;
  }
  int32_t off;
  int f = parse_fixed(name, &off);
  if (f < 0)
    return jobq__err(JOBQ_ETZ,
                     "%s: time zone '%.64s' is not a valid offset (use +HH:MM, +HHMM or +HH, at "
                     "most 18:00, optionally after UTC)",
                     fn, name);
  char key[TZ_MAX_NAME + PATH_MAX + 16];
  /* Read once: the cache key and the file read must agree. */
  const char *dir = getenv("TZDIR");
  if (dir == NULL || dir[0] == '\0') dir = "/usr/share/zoneinfo";
  if (f > 0) {
    snprintf(key, sizeof key, "fixed:%d", (int)off);
  } else {
    if (!name_ok(name))
      return jobq__err(JOBQ_ETZ,
                       "%s: time zone name '%.64s' is malformed (letters, digits, '_', '+', '-' and "
                       "'/' between names, at most 255 bytes)",
                       fn, name);
    if (strlen(dir) > PATH_MAX - TZ_MAX_NAME - 2)
      return jobq__err(JOBQ_ETZ, "%s: TZDIR is too long", fn);
    snprintf(key, sizeof key, "%s/%s", dir, name);
  }
  const jobq__tz *hit = cache_find(key);
  if (hit) {
    *out = hit;
    return 0;
  }
  jobq__tz *z = NULL;
  if (f > 0) {
    z = calloc(1, sizeof *z);
    if (z == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
    z->is_fixed = 1;
    z->fixed_off = off;
  } else {
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = read_file(fn, name, dir, key, &buf, &len);
    if (rc != 0) return rc;
    char what[TZ_MAX_NAME + 32];
    snprintf(what, sizeof what, "time zone file '%s'", name);
    rc = jobq__tz_parse(fn, what, buf, len, &z);
    free(buf);
    if (rc != 0) return rc;
  }
  z->key = jobq__strdup(key);
  if (z->key == NULL) {
    jobq__tz_free(z);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  }
  *out = cache_add(z);
  return 0;
}
