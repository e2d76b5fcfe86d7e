#include "util/sbuf.h"
#include "util/utf8.h"

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

/* Texts from users (steps, errors, owners) may hold any bytes; the JSON we
 * write is always valid: bytes that are not UTF-8 become U+FFFD. */
void jobq__sb_json_str(jobq_sbuf *b, const char *s) {
  jobq__sb_raw(b, "\"", 1);
  const char *run = s;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x80) {
      size_t n = jobq__utf8_seq((const unsigned char *)s, strnlen(s, 4));
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
