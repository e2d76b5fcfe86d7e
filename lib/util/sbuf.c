#include "util/sbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jobq__sb_raw(jobq_sbuf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + n + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (np == NULL) {
      b->failed = 1;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

void jobq__sb_str(jobq_sbuf *b, const char *s) { jobq__sb_raw(b, s, strlen(s)); }

/* Length of the well-formed UTF-8 sequence at s (first byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *s) {
  unsigned char c = s[0];
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
  else return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/* Texts from users (steps, errors, owners) may hold any bytes; the JSON we
 * write is always valid: bytes that are not UTF-8 become U+FFFD. */
void jobq__sb_json_str(jobq_sbuf *b, const char *s) {
  jobq__sb_raw(b, "\"", 1);
  const char *run = s;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x80) {
      size_t n = utf8_len((const unsigned char *)s);
      if (n) {
        s += n - 1;
        continue;
      }
      jobq__sb_raw(b, run, (size_t)(s - run));
      jobq__sb_raw(b, "\\ufffd", 6);
      run = s + 1;
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    jobq__sb_raw(b, run, (size_t)(s - run));
    char esc[8];
    switch (c) {
      case '"': jobq__sb_raw(b, "\\\"", 2); break;
      case '\\': jobq__sb_raw(b, "\\\\", 2); break;
      case '\n': jobq__sb_raw(b, "\\n", 2); break;
      case '\r': jobq__sb_raw(b, "\\r", 2); break;
      case '\t': jobq__sb_raw(b, "\\t", 2); break;
      default:
        snprintf(esc, sizeof esc, "\\u%04x", c);
        jobq__sb_raw(b, esc, 6);
    }
    run = s + 1;
  }
  jobq__sb_raw(b, run, (size_t)(s - run));
  jobq__sb_raw(b, "\"", 1);
}

void jobq__sb_int(jobq_sbuf *b, int64_t v) {
  char t[32];
  int n = snprintf(t, sizeof t, "%" PRId64, v);
  jobq__sb_raw(b, t, (size_t)n);
}

void jobq__sb_key(jobq_sbuf *b, const char *key, int *first) {
  if (!*first) jobq__sb_raw(b, ",", 1);
  *first = 0;
  jobq__sb_json_str(b, key);
  jobq__sb_raw(b, ":", 1);
}

char *jobq__sb_take(jobq_sbuf *b) {
  if (b->failed || b->p == NULL) {
    free(b->p);
    b->p = NULL;
    if (!b->failed) {
      char *e = malloc(1);
      if (e) *e = '\0';
      return e;
    }
    return NULL;
  }
  char *p = b->p;
  b->p = NULL;
  return p;
}
