/* A strict RFC 8259 validator for payloads and results. Submitting checks
 * every payload, so this runs on the hot path: it allocates nothing and
 * looks at each byte once, where building a jansson tree to throw it away
 * would allocate per value. Nesting is limited (JOBQ_JSON_MAX_DEPTH) so that
 * hostile input cannot exhaust anything. */
#include "util/json.h"
#include "util/err.h"
#include "util/utf8.h"

#include <stdint.h>
#include <string.h>

#define JOBQ_JSON_MAX_DEPTH 512

typedef struct {
  const unsigned char *p, *end, *start;
  const char *why;
} cur;

static void ws(cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int fail(cur *c, const char *why) {
  c->why = why;
  return -1;
}

static int hex4(cur *c, unsigned *out) {
  if (c->end - c->p < 4) return fail(c, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char h = c->p[i];
    v <<= 4;
    if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
    else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
    else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
    else return fail(c, "invalid \\u escape");
  }
  c->p += 4;
  *out = v;
  return 0;
}

/* One UTF-8 sequence at c->p (first byte >= 0x80): well-formed, shortest
 * form, no surrogates, at most U+10FFFF (util/utf8.c). */
static int utf8(cur *c) {
  size_t n = jobq__utf8_seq(c->p, (size_t)(c->end - c->p));
  if (n == 0) return fail(c, "invalid UTF-8");
  c->p += n;
  return 0;
}

static int string(cur *c) {
  c->p++; /* opening quote */
  while (c->p < c->end) {
    unsigned char ch = *c->p;
    if (ch == '"') {
      c->p++;
      return 0;
    }
    if (ch < 0x20) return fail(c, "control character in string");
    if (ch == '\\') {
      c->p++;
      if (c->p >= c->end) break;
      unsigned char e = *c->p++;
      if (e == 'u') {
        unsigned u;
        if (hex4(c, &u)) return -1;
        if (u >= 0xd800 && u <= 0xdbff) {
          /* A high surrogate must be followed by a low one. */
          if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u')
            return fail(c, "unpaired surrogate in \\u escape");
          c->p += 2;
          unsigned lo;
          if (hex4(c, &lo)) return -1;
          if (lo < 0xdc00 || lo > 0xdfff) return fail(c, "unpaired surrogate in \\u escape");
        } else if (u >= 0xdc00 && u <= 0xdfff) {
          return fail(c, "unpaired surrogate in \\u escape");
        }
      } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
        return fail(c, "invalid escape");
      }
      continue;
    }
    if (ch >= 0x80) {
      if (utf8(c)) return -1;
      continue;
    }
    c->p++;
  }
  return fail(c, "unterminated string");
}

static int digits(cur *c) {
  const unsigned char *s = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
  return c->p > s ? 0 : -1;
}

static int number(cur *c) {
  if (*c->p == '-') c->p++;
  if (c->p >= c->end) return fail(c, "invalid number");
  if (*c->p == '0') c->p++;
  else if (digits(c)) return fail(c, "invalid number");
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (digits(c)) return fail(c, "invalid number");
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    if (digits(c)) return fail(c, "invalid number");
  }
  return 0;
}

static int literal(cur *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return fail(c, "invalid literal");
  c->p += n;
  return 0;
}

/* Iterative, with the open containers on a small stack of bits. */
static int value(cur *c) {
  unsigned char stack[JOBQ_JSON_MAX_DEPTH / 8];
  int depth = 0;
  for (;;) {
    /* Expect a value. */
    ws(c);
    if (c->p >= c->end) return fail(c, "unexpected end of input");
    unsigned char ch = *c->p;
    int opened = 0;
    if (ch == '{' || ch == '[') {
      if (depth == JOBQ_JSON_MAX_DEPTH) return fail(c, "nested too deeply");
      int obj = ch == '{';
      if (obj) stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
      else stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
      depth++;
      c->p++;
      ws(c);
      if (c->p < c->end && *c->p == (obj ? '}' : ']')) {
        c->p++;
        depth--;
      } else if (obj) {
        if (c->p >= c->end || *c->p != '"') return fail(c, "expected a string key");
        if (string(c)) return -1;
        ws(c);
        if (c->p >= c->end || *c->p != ':') return fail(c, "expected ':'");
        c->p++;
        continue;
      } else {
        continue;
      }
      opened = 1;
    }
    if (!opened) {
      int rc;
      if (ch == '"') rc = string(c);
      else if (ch == '-' || (ch >= '0' && ch <= '9')) rc = number(c);
      else if (ch == 't') rc = literal(c, "true");
      else if (ch == 'f') rc = literal(c, "false");
      else if (ch == 'n') rc = literal(c, "null");
      else rc = fail(c, "unexpected character");
      if (rc) return -1;
    }
    /* After a value: close containers or move to the next member. */
    for (;;) {
      ws(c);
      if (depth == 0) return 0;
      int obj = (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
      if (c->p >= c->end) return fail(c, "unexpected end of input");
      if (*c->p == ',') {
        c->p++;
        if (obj) {
          ws(c);
          if (c->p >= c->end || *c->p != '"') return fail(c, "expected a string key");
          if (string(c)) return -1;
          ws(c);
          if (c->p >= c->end || *c->p != ':') return fail(c, "expected ':'");
          c->p++;
        }
        break; /* next value */
      }
      if (*c->p == (obj ? '}' : ']')) {
        c->p++;
        depth--;
        continue;
      }
      return fail(c, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
}

int jobq__json_check(const char *fn, const char *what, const char *text, size_t len) {
  cur c;
  c.start = c.p = (const unsigned char *)text;
  c.end = c.p + len;
  c.why = NULL;
  if (value(&c) == 0) {
    ws(&c);
    if (c.p == c.end) return 0;
    c.why = "unexpected text after the value";
  }
  return jobq__err(JOBQ_EJSON, "%s: %s is not valid JSON: %s at byte %zu", fn, what, c.why,
                   (size_t)(c.p - c.start));
}
