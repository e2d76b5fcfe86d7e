/* The text helpers of lib/net/http.c: redaction, error-body snippets,
 * Retry-After values and base64 (no server needed). */
#include "testutil.h"

#include "net/http.h"
#include "net/http_int.h"

#include <time.h>

#define HAS(s, needle)                                                                          \
  do {                                                                                          \
    const char *s_ = (s);                                                                       \
    if (s_ == NULL || strstr(s_, (needle)) == NULL) {                                           \
      print_error("%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,               \
                  s_ ? s_ : "(NULL)", (needle));                                                \
      _fail(__FILE__, __LINE__);                                                                \
    }                                                                                           \
  } while (0)

#define HAS_NOT(s, needle)                                                                     \
  do {                                                                                         \
    const char *s_ = (s);                                                                      \
    if (s_ != NULL && strstr(s_, (needle)) != NULL) {                                          \
      print_error("%s:%d: \"%s\" contains \"%s\"\n", __FILE__, __LINE__, s_, (needle));        \
      _fail(__FILE__, __LINE__);                                                               \
    }                                                                                          \
  } while (0)

static void test_redact(void **state) {
  (void)state;
  char out[128];
  const char *s1[] = {"SECRETKEY", NULL, "abc", "user:SECRETKEY"};
  jobq__http_redact(out, sizeof out, "a SECRETKEY b SECRETKEYSECRETKEY.", s1, 1);
  assert_string_equal(out, "a [redacted] b [redacted].");
  /* NULL entries and short secrets are skipped; overlapping ones hide all */
  jobq__http_redact(out, sizeof out, "abc user:SECRETKEY", s1, 4);
  assert_string_equal(out, "abc [redacted]");
  const char *s2[] = {"XABC", "ABCD1234"};
  jobq__http_redact(out, sizeof out, "-XABCD1234-", s2, 2);
  assert_string_equal(out, "-[redacted]-");
  jobq__http_redact(out, sizeof out, "no secret here, SECRETKE", s1, 1);
  assert_string_equal(out, "no secret here, SECRETKE");
  jobq__http_redact(out, sizeof out, "none", NULL, 0);
  assert_string_equal(out, "none");
  jobq__http_redact(out, sizeof out, NULL, s1, 1);
  assert_string_equal(out, "");
  /* a cut output never holds the beginning of a secret */
  jobq__http_redact(out, 8, "ab SECRETKEY", s1, 1);
  assert_string_equal(out, "ab [red");
  jobq__http_redact(out, 1, "abc", s1, 1);
  assert_string_equal(out, "");
  jobq__http_redact(NULL, 0, "abc", s1, 1); /* nothing to write into */
}

static void test_snippet(void **state) {
  (void)state;
  char out[JOBQ_HTTP_SNIPPET_MAX + 8];
  const char *none[] = {NULL};
#define SNIP(body, secrets, n) jobq__http_snippet(out, sizeof out, body, strlen(body), secrets, n)
  SNIP("{\"error\":{\"message\":\"Rate limit\\nreached\",\"type\":\"x\"}}", none, 0);
  assert_string_equal(out, "Rate limit reached");
  SNIP("  {\"error\": \"bad key\"}", none, 0);
  assert_string_equal(out, "bad key");
  SNIP("{\"detail\": \"Not found\"}", none, 0);
  assert_string_equal(out, "Not found");
  SNIP("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
       "</Error>",
       none, 0);
  assert_string_equal(out, "AccessDenied: Access Denied");
  SNIP("plain\r\n\ttext\x01  here\n", none, 0);
  assert_string_equal(out, "plain text here");
  SNIP("{\"no\": \"message\"}", none, 0);
  assert_string_equal(out, "{\"no\": \"message\"}");
  SNIP("{not json", none, 0);
  assert_string_equal(out, "{not json");
  jobq__http_snippet(out, sizeof out, NULL, 0, none, 0);
  assert_string_equal(out, "");

  /* long bodies: cut at 200 bytes (on a UTF-8 boundary), "..." appended */
  char *big = tapi_repeat('a', 5000);
  SNIP(big, none, 0);
  assert_int_equal(strlen(out), JOBQ_HTTP_SNIPPET_MAX + 3);
  assert_string_equal(out + JOBQ_HTTP_SNIPPET_MAX, "...");
  memcpy(big + 199, "\xc3\xa9", 2); /* é across the cut */
  SNIP(big, none, 0);
  assert_int_equal(strlen(out), 199 + 3);

  /* Redaction shrinks long secrets, so text from near the end of what is
   * examined (2 KiB) becomes visible; a secret cut there is hidden too. */
  char *sec = tapi_repeat('z', 250);
  memcpy(sec, "SECRET-", 7);
  const char *secs[] = {sec};
  memset(big, 'a', 5000);
  for (int i = 0; i < 8; i++) memcpy(big + i * 250, sec, 250);
  memcpy(big + 2030, sec, 250);
  SNIP(big, secs, 1);
  HAS(out, "[redacted]aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa[redacted]...");
  HAS_NOT(out, "SECRET");
  HAS_NOT(out, "zz");
  free(sec);
  free(big);
#undef SNIP
}

static void test_retry_after_parse(void **state) {
  (void)state;
  time_t now = time(NULL);
#define RA(s) jobq__http_retry_after(s, strlen(s), now)
  assert_int_equal(RA("1"), 1);
  assert_int_equal(RA(" 120\r\n"), 120);
  assert_int_equal(RA("0"), 0);
  assert_int_equal(RA("99999999999999999999"), 1000000000);
  assert_int_equal(RA(""), -1);
  assert_int_equal(RA(" \r\n"), -1);
  assert_int_equal(RA("soon"), -1);
  assert_int_equal(RA("-5"), -1);
  char date[64];
  time_t later = now + 30;
  struct tm tm;
  gmtime_r(&later, &tm);
  strftime(date, sizeof date, " %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  assert_int_equal(RA(date), 30);
  time_t past = now - 3600;
  gmtime_r(&past, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  assert_int_equal(RA(date), 0);
#undef RA
}

static void test_base64(void **state) {
  (void)state;
  char out[32];
  static const char *const cases[][2] = {
    {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
    {"alice:pw", "YWxpY2U6cHc="},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(jobq__http_base64(out, sizeof out, cases[i][0], strlen(cases[i][0])), 0);
    assert_string_equal(out, cases[i][1]);
  }
  assert_int_equal(jobq__http_base64(out, 4, "foo", 3), -1); /* needs 5 */
  assert_int_equal(jobq__http_base64(out, 5, "foo", 3), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_redact),
    cmocka_unit_test(test_snippet),
    cmocka_unit_test(test_retry_after_parse),
    cmocka_unit_test(test_base64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
