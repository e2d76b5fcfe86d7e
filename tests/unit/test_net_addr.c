/* lib/net/addrpolicy.c: address classes, allow-lists and webhook URL checks.
 * The refusal at connect time, with real requests, is in test_net_http.c. */
#include "testutil.h"

#include "net/addrpolicy.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* An address given as text, as a sockaddr of the right family. */
typedef union addr {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} addr;

static const struct sockaddr *sa_of(addr *a, const char *text) {
  memset(a, 0, sizeof *a);
  if (inet_pton(AF_INET, text, &a->v4.sin_addr) == 1) {
    a->v4.sin_family = AF_INET;
  } else if (inet_pton(AF_INET6, text, &a->v6.sin6_addr) == 1) {
    a->v6.sin6_family = AF_INET6;
  } else {
    fail_msg("test address \"%s\" does not parse", text);
  }
  return &a->sa;
}

typedef struct row {
  const char *addr;
  jobq__addr_class want;
} row;

static void check_rows(const row *rows, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    addr a;
    jobq__addr_class got = jobq__addr_class_of(sa_of(&a, rows[i].addr));
    if (got != rows[i].want) {
      print_error("%s: class %s, expected %s\n", rows[i].addr, jobq__addr_class_name(got),
                  jobq__addr_class_name(rows[i].want));
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

static void test_class_v4(void **state) {
  (void)state;
  static const row rows[] = {
    {"8.8.8.8", JOBQ_ADDR_PUBLIC},
    {"1.1.1.1", JOBQ_ADDR_PUBLIC},
    {"93.184.216.34", JOBQ_ADDR_PUBLIC},
    {"172.15.255.255", JOBQ_ADDR_PUBLIC}, /* just below 172.16/12 */
    {"172.32.0.0", JOBQ_ADDR_PUBLIC},     /* just above */
    {"100.63.255.255", JOBQ_ADDR_PUBLIC}, /* just below 100.64/10 */
    {"100.128.0.0", JOBQ_ADDR_PUBLIC},    /* just above */
    {"223.255.255.255", JOBQ_ADDR_PUBLIC},
    {"127.0.0.1", JOBQ_ADDR_LOOPBACK},
    {"127.255.255.254", JOBQ_ADDR_LOOPBACK},
    {"10.0.0.1", JOBQ_ADDR_PRIVATE},
    {"10.255.255.255", JOBQ_ADDR_PRIVATE},
    {"172.16.0.1", JOBQ_ADDR_PRIVATE},
    {"172.31.255.255", JOBQ_ADDR_PRIVATE},
    {"192.168.1.1", JOBQ_ADDR_PRIVATE},
    {"169.254.0.1", JOBQ_ADDR_LINK_LOCAL},
    {"169.254.255.255", JOBQ_ADDR_LINK_LOCAL},
    {"100.64.0.1", JOBQ_ADDR_CGNAT},
    {"100.127.255.255", JOBQ_ADDR_CGNAT},
    {"224.0.0.1", JOBQ_ADDR_MULTICAST},
    {"239.255.255.250", JOBQ_ADDR_MULTICAST},
    {"0.0.0.0", JOBQ_ADDR_UNSPECIFIED},
    {"0.1.2.3", JOBQ_ADDR_UNSPECIFIED},
    {"255.255.255.255", JOBQ_ADDR_BROADCAST},
    {"169.254.169.254", JOBQ_ADDR_METADATA},
    {"169.254.170.2", JOBQ_ADDR_METADATA},
    {"100.100.100.200", JOBQ_ADDR_METADATA},
    {"168.63.129.16", JOBQ_ADDR_METADATA},
    {"192.0.0.8", JOBQ_ADDR_RESERVED},
    {"192.0.2.1", JOBQ_ADDR_RESERVED},
    {"198.51.100.7", JOBQ_ADDR_RESERVED},
    {"203.0.113.9", JOBQ_ADDR_RESERVED},
    {"192.88.99.1", JOBQ_ADDR_RESERVED},
    {"198.18.0.1", JOBQ_ADDR_RESERVED},
    {"198.19.255.255", JOBQ_ADDR_RESERVED},
    {"198.20.0.0", JOBQ_ADDR_PUBLIC},
    {"240.0.0.1", JOBQ_ADDR_RESERVED},
    {"255.255.255.254", JOBQ_ADDR_RESERVED},
  };
  check_rows(rows, sizeof rows / sizeof rows[0]);
}

static void test_class_v6(void **state) {
  (void)state;
  static const row rows[] = {
    {"2606:4700:4700::1111", JOBQ_ADDR_PUBLIC},
    {"2a00:1450:4001::200e", JOBQ_ADDR_PUBLIC},
    {"3ffe::1", JOBQ_ADDR_PUBLIC},
    {"::1", JOBQ_ADDR_LOOPBACK},
    {"::", JOBQ_ADDR_UNSPECIFIED},
    {"fe80::1", JOBQ_ADDR_LINK_LOCAL},
    {"febf:ffff::1", JOBQ_ADDR_LINK_LOCAL},
    {"fec0::1", JOBQ_ADDR_SITE_LOCAL},
    {"feff::1", JOBQ_ADDR_SITE_LOCAL},
    {"fc00::1", JOBQ_ADDR_UNIQUE_LOCAL},
    {"fd12:3456::1", JOBQ_ADDR_UNIQUE_LOCAL},
    {"fd00:ec2::254", JOBQ_ADDR_METADATA},
    {"fd00:ec2::253", JOBQ_ADDR_UNIQUE_LOCAL},
    {"ff02::1", JOBQ_ADDR_MULTICAST},
    {"ff05::2", JOBQ_ADDR_MULTICAST},
    {"2001:db8::1", JOBQ_ADDR_RESERVED},
    {"2001::1", JOBQ_ADDR_RESERVED},       /* Teredo */
    {"2001:2::1", JOBQ_ADDR_RESERVED},     /* benchmarking */
    {"2001:1ff::1", JOBQ_ADDR_RESERVED},   /* end of 2001::/23 */
    {"2001:200::1", JOBQ_ADDR_PUBLIC},     /* past it */
    {"3fff::1", JOBQ_ADDR_RESERVED},
    {"100::1", JOBQ_ADDR_RESERVED},
    {"64:ff9b:1::1", JOBQ_ADDR_RESERVED},
    {"4000::1", JOBQ_ADDR_RESERVED},       /* outside 2000::/3 */
    {"1::1", JOBQ_ADDR_RESERVED},
    /* IPv4 inside IPv6: the class of the IPv4 address */
    {"::ffff:127.0.0.1", JOBQ_ADDR_LOOPBACK},
    {"::ffff:10.1.2.3", JOBQ_ADDR_PRIVATE},
    {"::ffff:169.254.169.254", JOBQ_ADDR_METADATA},
    {"::ffff:8.8.8.8", JOBQ_ADDR_PUBLIC},
    {"::ffff:0:192.168.0.1", JOBQ_ADDR_PRIVATE}, /* IPv4-translated */
    {"::127.0.0.1", JOBQ_ADDR_LOOPBACK},         /* IPv4-compatible */
    {"::10.0.0.1", JOBQ_ADDR_PRIVATE},
    {"64:ff9b::127.0.0.1", JOBQ_ADDR_LOOPBACK},  /* NAT64 */
    {"64:ff9b::a9fe:a9fe", JOBQ_ADDR_METADATA},  /* 169.254.169.254 */
    {"64:ff9b::100.64.0.1", JOBQ_ADDR_CGNAT},
    {"64:ff9b::8.8.8.8", JOBQ_ADDR_PUBLIC},
    {"2002:7f00:1::", JOBQ_ADDR_LOOPBACK},       /* 6to4 of 127.0.0.1 */
    {"2002:c0a8:101::1", JOBQ_ADDR_PRIVATE},     /* 6to4 of 192.168.1.1 */
    {"2002:e000:1::", JOBQ_ADDR_MULTICAST},      /* 6to4 of 224.0.0.1 */
    {"2002:808:808::1", JOBQ_ADDR_PUBLIC},       /* 6to4 of 8.8.8.8 */
    {"2002:0:0::1", JOBQ_ADDR_UNSPECIFIED},      /* 6to4 of 0.0.0.0 */
    {"2002:ffff:ffff::", JOBQ_ADDR_BROADCAST},
  };
  check_rows(rows, sizeof rows / sizeof rows[0]);
}

static void test_class_names(void **state) {
  (void)state;
  /* Every class has its own name, and only PUBLIC is "public". */
  for (int i = 0; i < JOBQ_ADDR_N_CLASSES; i++) {
    const char *n = jobq__addr_class_name((jobq__addr_class)i);
    assert_non_null(n);
    assert_string_not_equal(n, "unknown");
    for (int k = 0; k < i; k++) assert_string_not_equal(n, jobq__addr_class_name((jobq__addr_class)k));
  }
  assert_string_equal(jobq__addr_class_name(JOBQ_ADDR_LOOPBACK), "loopback");
  assert_string_equal(jobq__addr_class_name(JOBQ_ADDR_CGNAT), "shared address space (CGNAT)");
  assert_string_equal(jobq__addr_class_name(JOBQ_ADDR_METADATA), "cloud metadata");
  assert_string_equal(jobq__addr_class_name(JOBQ_ADDR_N_CLASSES), "unknown");
  /* NULL and other families are never public */
  assert_int_equal(jobq__addr_class_of(NULL), JOBQ_ADDR_RESERVED);
  struct sockaddr un;
  memset(&un, 0, sizeof un);
  un.sa_family = AF_UNIX;
  assert_int_equal(jobq__addr_class_of(&un), JOBQ_ADDR_RESERVED);
  char t[64];
  jobq__addr_text(&un, t, sizeof t);
  assert_string_equal(t, "?");
  addr a;
  jobq__addr_text(sa_of(&a, "::ffff:127.0.0.1"), t, sizeof t);
  assert_string_equal(t, "::ffff:127.0.0.1");
}

/* ---- allow-list ---- */

static int allowed(const jobq__addr_allow *l, const char *text) {
  addr a;
  return jobq__addr_allowed(l, sa_of(&a, text));
}

static void test_allow_parse_and_match(void **state) {
  (void)state;
  jobq__addr_allow *l = NULL;
  TAPI_OK(jobq__addr_allow_parse(" 127.0.0.1 ,10.0.0.0/8,\t::1, fd00::/8 ,192.168.5.0/24", &l));
  assert_non_null(l);
  assert_true(allowed(l, "127.0.0.1"));
  assert_false(allowed(l, "127.0.0.2"));
  assert_true(allowed(l, "10.0.0.0"));
  assert_true(allowed(l, "10.255.1.2"));
  assert_false(allowed(l, "11.0.0.1"));
  assert_true(allowed(l, "192.168.5.200"));
  assert_false(allowed(l, "192.168.6.1"));
  assert_true(allowed(l, "::1"));
  assert_false(allowed(l, "::2"));
  assert_true(allowed(l, "fd12::1"));
  assert_false(allowed(l, "fc00::1"));
  /* the mapped form is the same address; other embeddings are not */
  assert_true(allowed(l, "::ffff:127.0.0.1"));
  assert_true(allowed(l, "::ffff:10.9.9.9"));
  assert_false(allowed(l, "64:ff9b::127.0.0.1"));
  assert_false(allowed(l, "2002:7f00:1::"));
  /* IPv4 entries do not match IPv6 addresses that merely share bytes */
  assert_false(allowed(l, "a00::1"));
  jobq__addr_allow *c = jobq__addr_allow_dup(l);
  assert_non_null(c);
  assert_true(allowed(c, "10.1.1.1"));
  jobq__addr_allow_free(c);
  jobq__addr_allow_free(l);

  /* /0 allows everything of its family; the empty list nothing */
  TAPI_OK(jobq__addr_allow_parse("0.0.0.0/0", &l));
  assert_true(allowed(l, "169.254.169.254"));
  assert_false(allowed(l, "::1"));
  jobq__addr_allow_free(l);
  TAPI_OK(jobq__addr_allow_parse("", &l));
  assert_non_null(l);
  assert_false(allowed(l, "127.0.0.1"));
  jobq__addr_allow_free(l);
  TAPI_OK(jobq__addr_allow_parse("  ", &l));
  assert_false(allowed(l, "127.0.0.1"));
  jobq__addr_allow_free(l);
  assert_false(allowed(NULL, "127.0.0.1"));
  assert_null(jobq__addr_allow_dup(NULL));
  jobq__addr_allow_free(NULL);
}

static void test_allow_bad(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *says;
  } bad[] = {
    {"127.0.0.1,localhost", "item 2 \"localhost\" is not an IPv4 or IPv6 address"},
    {"10.0/8", "item 1 \"10.0/8\" is not an IPv4 or IPv6 address"},
    {"10.0.0.0/33", "item 1 \"10.0.0.0/33\": an IPv4 prefix is at most /32"},
    {"::/129", "an IPv6 prefix is at most /128"},
    {"10.0.0.1/8", "item 1 \"10.0.0.1/8\" has bits set past its /8 prefix"},
    {"fd00::1/8", "has bits set past its /8 prefix"},
    {"10.0.0.0/", "item 1 \"10.0.0.0/\" has a malformed prefix length"},
    {"10.0.0.0/x", "malformed prefix length"},
    {"10.0.0.0/-1", "malformed prefix length"},
    {"10.0.0.0/0008", "malformed prefix length"},
    {"127.0.0.1,,::1", "item 2 is empty"},
    {"127.0.0.1,", "item 2 is empty"},
    {"\xff", "item 1 is not valid UTF-8"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jobq__addr_allow *l = (jobq__addr_allow *)&l; /* must be reset to NULL */
    TAPI_ERR(JOBQ_EINVAL, "allow-list: ", jobq__addr_allow_parse(bad[i].text, &l));
    TAPI_ERR_HAS(bad[i].says);
    assert_null(l);
  }
  jobq__addr_allow *l = NULL;
  TAPI_ERR(JOBQ_EINVAL, "allow-list: text or out is NULL", jobq__addr_allow_parse(NULL, &l));
  TAPI_ERR(JOBQ_EINVAL, "allow-list: ", jobq__addr_allow_parse("127.0.0.1", NULL));
}

/* ---- URLs ---- */

static void url_ok(const char *u) {
  char why[256] = "x";
  int rc = jobq__webhook_url_check(u, why, sizeof why);
  if (rc != 0) fail_msg("\"%s\" refused: %s", u, why);
  assert_string_equal(why, "");
}

static void url_bad(const char *u, const char *says) {
  char why[256] = "";
  TAPI_ERR(JOBQ_EINVAL, "webhook url: ", jobq__webhook_url_check(u, why, sizeof why));
  TAPI_ERR_HAS(says);
  assert_string_equal(why, jobq_last_error());
}

static void test_url_check(void **state) {
  (void)state;
  url_ok("http://example.com/hook");
  url_ok("https://example.com:8443/hooks/1?sig=abc#frag");
  url_ok("HTTPS://Example.COM");
  url_ok("http://127.0.0.1:9000/x"); /* addresses are checked at connect time */
  url_ok("http://[::1]:80/");
  url_ok("https://example.com/caf\xc3\xa9");

  url_bad("ftp://example.com/x", "the scheme \"ftp\" is refused: only http and https");
  url_bad("file:///etc/passwd", "the scheme \"file\" is refused");
  url_bad("gopher://127.0.0.1:6379/_FLUSHALL", "the scheme \"gopher\" is refused");
  url_bad("javascript:alert(1)", "the scheme \"javascript\" is refused");
  url_bad("dict://x", "\"dict\" is refused");
  url_bad("example.com/hook", "no http:// or https:// scheme");
  url_bad("http:example.com", "must start with http:// or https://");
  url_bad("http://", "the url has no host");
  url_bad("https:///path", "the url has no host");
  url_bad("http://:80/x", "the url has no host");
  url_bad("http://user:secret-pw@example.com/", "a user name or password");
  url_bad("https://token@example.com/", "a user name or password");
  url_bad("http://exa mple.com/", "the url is malformed");
  url_bad("http://example.com:99999/", "the url is malformed");
  url_bad("http://[::1/", "the url is malformed");
  url_bad("http://example.com/\xc3\x28", "not valid UTF-8");
  url_bad("", "the url is empty");
  url_bad(NULL, "no url given");
  /* the secret is never quoted */
  char why[256];
  jobq__webhook_url_check("http://user:hunter2-secret@example.com/", why, sizeof why);
  assert_null(strstr(why, "hunter2"));
  assert_null(strstr(jobq_last_error(), "hunter2"));

  /* 2048 bytes pass, 2049 do not */
  char *u = malloc(JOBQ_WEBHOOK_URL_MAX + 2);
  assert_non_null(u);
  const char *head = "https://example.com/";
  size_t hl = strlen(head);
  memcpy(u, head, hl);
  memset(u + hl, 'a', JOBQ_WEBHOOK_URL_MAX - hl);
  u[JOBQ_WEBHOOK_URL_MAX] = '\0';
  url_ok(u);
  u[JOBQ_WEBHOOK_URL_MAX] = 'a';
  u[JOBQ_WEBHOOK_URL_MAX + 1] = '\0';
  url_bad(u, "the url is 2049 bytes long, over the 2048 allowed");
  free(u);

  /* why may be NULL or small; the sentence is still set */
  TAPI_ERR(JOBQ_EINVAL, "webhook url: the scheme", jobq__webhook_url_check("ftp://x", NULL, 0));
  char small[8];
  TAPI_ERR(JOBQ_EINVAL, "webhook url: the scheme",
           jobq__webhook_url_check("ftp://x", small, sizeof small));
  assert_string_equal(small, "webhook");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_class_v4),
    cmocka_unit_test(test_class_v6),
    cmocka_unit_test(test_class_names),
    cmocka_unit_test(test_allow_parse_and_match),
    cmocka_unit_test(test_allow_bad),
    cmocka_unit_test(test_url_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
