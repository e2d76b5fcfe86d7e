/* Redaction, error-body snippets, Retry-After and base64 for lib/net/http.c. */
#include "net/http.h"
#include "net/http_int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define REDACTED "[redacted]"

/* Secrets shorter than this are ignored (see http.h). */
#define SECRET_MIN 4

/* Bodies up to this size are parsed as JSON for their message; larger ones
 * are not an API's error object, and parsing them would cost for nothing. */
#define JSON_PARSE_MAX (1u << 20)

/* Bytes of the message flattened before redaction. Redaction can shrink
 * the text (a long key becomes "[redacted]"), so this is well above the
 * snippet's length. */
#define FLAT_MAX 2048

/* Every byte inside an occurrence of a secret is hidden, and each run of
 * hidden bytes becomes one "[redacted]": secrets that overlap ("user:key"
 * and "key") leave no piece of either. With tail set, src is the start of a
 * longer text, and an end of it that begins a secret is hidden too. Matching
 * is on src, so a cut output never shows the start of a secret. */
static void redact_n(char *dst, size_t size, const char *src, size_t len,
                     const char *const *secrets, size_t n_secrets, int tail) {
  size_t o = 0, hide_to = 0;
  int hidden = 0;
  for (size_t i = 0; i < len && o + 1 < size; i++) {
    for (size_t k = 0; k < n_secrets; k++) {
      const char *s = secrets ? secrets[k] : NULL;
      size_t sl = s ? strlen(s) : 0;
      if (sl < SECRET_MIN || i + sl <= hide_to) continue;
      size_t avail = len - i < sl ? len - i : sl;
      if (memcmp(src + i, s, avail) != 0 || (avail < sl && !tail)) continue;
      hide_to = i + sl;
    }
    if (i >= hide_to) {
      hidden = 0;
      dst[o++] = src[i];
    } else if (!hidden) {
      hidden = 1;
      for (const char *r = REDACTED; *r != '\0' && o + 1 < size; r++) dst[o++] = *r;
    }
  }
  dst[o] = '\0';
}

void jobq__http_redact(char *dst, size_t size, const char *src, const char *const *secrets,
                    size_t n_secrets) {
  if (dst == NULL || size == 0) return;
  if (src == NULL) src = "";
  redact_n(dst, size, src, strlen(src), secrets, n_secrets, 0);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static const char *json_message(json_t *root) {
  if (!json_is_object(root)) return NULL;
  json_t *e = json_object_get(root, "error");
  if (json_is_object(e)) {
    json_t *m = json_object_get(e, "message");
    if (json_is_string(m)) return json_string_value(m);
  }
  if (json_is_string(e)) return json_string_value(e);
  static const char *const keys[] = {"message", "detail", "error_description"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    json_t *m = json_object_get(root, keys[i]);
    if (json_is_string(m)) return json_string_value(m);
  }
  return NULL;
}

/* memmem, which glibc only declares with _GNU_SOURCE. */
static const char *find(const char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; m <= n && i <= n - m; i++)
    if (memcmp(hay + i, needle, m) == 0) return hay + i;
  return NULL;
}

/* The text between <tag> and </tag>, or NULL. */
static const char *xml_text(const char *body, size_t len, const char *tag, size_t *out_len) {
  char open[32], close[32];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *a = find(body, len, open);
  if (a == NULL) return NULL;
  a += strlen(open);
  const char *b = find(a, len - (size_t)(a - body), close);
  if (b == NULL) return NULL;
  *out_len = (size_t)(b - a);
  return a;
}

/* Control characters become spaces and runs of spaces one space, so that
 * the sentence stays on one line. *more is set when src did not fit. */
static size_t flatten(char *dst, size_t size, const char *src, size_t len, int *more) {
  size_t o = 0, i = 0;
  for (; i < len && o + 1 < size; i++) {
    unsigned char c = (unsigned char)src[i];
    if (c < 0x20 || c == 0x7f) c = ' ';
    if (c == ' ' && (o == 0 || dst[o - 1] == ' ')) continue;
    dst[o++] = (char)c;
  }
  *more = i < len;
  dst[o] = '\0';
  return o;
}

void jobq__http_snippet(char *dst, size_t size, const char *body, size_t len,
                     const char *const *secrets, size_t n_secrets) {
  if (dst == NULL || size == 0) return;
  dst[0] = '\0';
  if (body == NULL || len == 0) return;

  const char *msg = body;
  size_t msg_len = len;
  json_t *root = NULL;
  char xml[FLAT_MAX];
  int cut = 0; /* msg is the start of a longer text */
  size_t skip = 0;
  while (skip < len && is_space(body[skip])) skip++;
  if (skip < len && body[skip] == '{' && len <= JSON_PARSE_MAX) {
    root = json_loadb(body, len, 0, NULL);
    const char *m = json_message(root);
    if (m != NULL) {
      msg = m;
      msg_len = strlen(m);
    }
  } else if (skip < len && body[skip] == '<') {
    size_t cl = 0, ml = 0;
    const char *code = xml_text(body, len, "Code", &cl);
    const char *text = xml_text(body, len, "Message", &ml);
    if (text != NULL) {
      int n = code ? snprintf(xml, sizeof xml, "%.*s: %.*s", (int)cl, code, (int)ml, text)
                   : snprintf(xml, sizeof xml, "%.*s", (int)ml, text);
      msg = xml;
      if (n < 0) xml[0] = '\0';
      cut = n < 0 || (size_t)n >= sizeof xml;
      msg_len = cut ? strlen(xml) : (size_t)n;
    }
  }

  char flat[FLAT_MAX];
  int more = 0;
  size_t n = flatten(flat, sizeof flat, msg, msg_len, &more);
  json_decref(root);
  more |= cut;
  while (n > 0 && flat[n - 1] == ' ') flat[--n] = '\0';

  char red[FLAT_MAX * 3];
  /* When the text was cut, a secret may start before the cut and end after
   * it: tail hides such a beginning. */
  redact_n(red, sizeof red, flat, n, secrets, n_secrets, more);
  size_t rl = strlen(red);
  if (rl > JOBQ_HTTP_SNIPPET_MAX) {
    rl = JOBQ_HTTP_SNIPPET_MAX;
    /* Back off to the start of a UTF-8 sequence. */
    while (rl > 0 && ((unsigned char)red[rl] & 0xC0) == 0x80) rl--;
    more = 1;
  }
  while (rl > 0 && red[rl - 1] == ' ') rl--;
  red[rl] = '\0';
  snprintf(dst, size, "%s%s", red, more ? "..." : "");
}

int64_t jobq__http_retry_after(const char *value, size_t len, time_t now) {
  if (value == NULL) return -1;
  while (len > 0 && is_space(*value)) value++, len--;
  while (len > 0 && is_space(value[len - 1])) len--;
  char buf[64];
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, value, len);
  buf[len] = '\0';
  if (strspn(buf, "0123456789") == len) {
    /* Capped far above any limit a caller sets, so that it still reads as
     * "too long" rather than overflowing. */
    int64_t s = 0;
    for (size_t i = 0; i < len && s < 1000000000; i++) s = s * 10 + (buf[i] - '0');
    return s < 1000000000 ? s : 1000000000;
  }
  if (buf[0] < 'A') return -1; /* a date starts with a day name; "-5" is no date */
  time_t t = curl_getdate(buf, NULL);
  if (t == (time_t)-1) return -1;
  return t > now ? (int64_t)(t - now) : 0;
}

int jobq__http_base64(char *dst, size_t size, const char *src, size_t len) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t need = (len + 2) / 3 * 4 + 1;
  if (dst == NULL || size < need) return -1;
  const unsigned char *s = (const unsigned char *)src;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < len) v |= (uint32_t)s[i + 1] << 8;
    if (i + 2 < len) v |= s[i + 2];
    dst[o++] = tab[(v >> 18) & 63];
    dst[o++] = tab[(v >> 12) & 63];
    dst[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
    dst[o++] = i + 2 < len ? tab[v & 63] : '=';
  }
  dst[o] = '\0';
  return 0;
}
