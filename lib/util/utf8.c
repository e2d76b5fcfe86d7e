/* Strict UTF-8 (RFC 3629): shortest form only, no surrogates, at most
 * U+10FFFF. See utf8.h. */
#include "util/utf8.h"
#include "util/err.h"

#include <stdint.h>
#include <string.h>

size_t jobq__utf8_seq(const unsigned char *s, size_t avail) {
  unsigned char b = s[0];
  if (b < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (b >= 0xc2 && b <= 0xdf) { n = 2; cp = b & 0x1f; }
  else if (b >= 0xe0 && b <= 0xef) { n = 3; cp = b & 0x0f; }
  else if (b >= 0xf0 && b <= 0xf4) { n = 4; cp = b & 0x07; }
  else return 0; /* continuation byte, C0/C1 (overlong), F5..FF */
  if (avail < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

size_t jobq__utf8_bad_at(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t n = jobq__utf8_seq(p + i, len - i);
    if (n == 0) return i;
    i += n;
  }
  return len;
}

int jobq__utf8_check(const char *fn, const char *what, const char *s) {
  if (s == NULL) return 0;
  size_t len = strlen(s);
  size_t at = jobq__utf8_bad_at(s, len);
  if (at == len) return 0;
  return jobq__err(JOBQ_EINVAL, "%s: %s is not valid UTF-8 (byte 0x%02x at offset %zu)", fn, what,
                   (unsigned)(unsigned char)s[at], at);
}

void jobq__utf8_fix(char *s) {
  unsigned char *p = (unsigned char *)s;
  size_t len = strlen(s), i = 0;
  while (i < len) {
    size_t n = p[i] < 0x80 ? 1 : jobq__utf8_seq(p + i, len - i);
    if (n) {
      i += n;
      continue;
    }
    /* A lead byte whose sequence only lacks bytes past the end: a cut. */
    size_t need = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 0;
    if (need && len - i < need) {
      int cut = 1;
      for (size_t k = i + 1; k < len; k++)
        if ((p[k] & 0xc0) != 0x80) cut = 0;
      if (cut) {
        p[i] = '\0';
        return;
      }
    }
    p[i++] = '?';
  }
}
