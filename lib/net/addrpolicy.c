/* Address classes, allow-lists and webhook URL checks (see addrpolicy.h).
 *
 * Cloud metadata addresses named on their own (so that a sentence says what
 * was at stake, and so that one outside the private ranges is refused too):
 *   169.254.169.254  AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle IMDS
 *   fd00:ec2::254    AWS IMDS over IPv6
 *   169.254.170.2    AWS ECS task metadata and credentials
 *   100.100.100.200  Alibaba Cloud metadata (inside CGNAT space)
 *   168.63.129.16    Azure WireServer: a public-range address that only
 *                    answers inside Azure, and hands out VM configuration;
 *                    no other class would catch it
 * The rest of 169.254/16 and fc00::/7 is refused anyway, as link-local and
 * unique-local. */
#include "net/addrpolicy.h"
#include "util/err.h"
#include "util/utf8.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- classes ---- */

static int v4_in(uint32_t a, uint32_t net, int bits) {
  uint32_t mask = bits == 0 ? 0 : 0xFFFFFFFFu << (32 - bits);
  return (a & mask) == net;
}

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static jobq__addr_class class_v4(uint32_t a) {
  static const uint32_t metadata[] = {V4(169, 254, 169, 254), V4(169, 254, 170, 2),
                                      V4(100, 100, 100, 200), V4(168, 63, 129, 16)};
  for (size_t i = 0; i < sizeof metadata / sizeof metadata[0]; i++)
    if (a == metadata[i]) return JOBQ_ADDR_METADATA;
  if (a == V4(255, 255, 255, 255)) return JOBQ_ADDR_BROADCAST;
  if (v4_in(a, V4(0, 0, 0, 0), 8)) return JOBQ_ADDR_UNSPECIFIED;
  if (v4_in(a, V4(127, 0, 0, 0), 8)) return JOBQ_ADDR_LOOPBACK;
  if (v4_in(a, V4(10, 0, 0, 0), 8) || v4_in(a, V4(172, 16, 0, 0), 12) ||
      v4_in(a, V4(192, 168, 0, 0), 16))
    return JOBQ_ADDR_PRIVATE;
  if (v4_in(a, V4(169, 254, 0, 0), 16)) return JOBQ_ADDR_LINK_LOCAL;
  if (v4_in(a, V4(100, 64, 0, 0), 10)) return JOBQ_ADDR_CGNAT;
  if (v4_in(a, V4(224, 0, 0, 0), 4)) return JOBQ_ADDR_MULTICAST;
  /* 192.0.0/24 IETF protocol assignments (NAT64 discovery, DS-Lite...);
   * 192.0.2/24, 198.51.100/24, 203.0.113/24 documentation; 192.88.99/24
   * the old 6to4 relay anycast; 198.18/15 benchmarking, which VPNs and
   * "fake-IP" DNS proxies hand out for internal names; 240/4 reserved. */
  if (v4_in(a, V4(192, 0, 0, 0), 24) || v4_in(a, V4(192, 0, 2, 0), 24) ||
      v4_in(a, V4(198, 51, 100, 0), 24) || v4_in(a, V4(203, 0, 113, 0), 24) ||
      v4_in(a, V4(192, 88, 99, 0), 24) || v4_in(a, V4(198, 18, 0, 0), 15) ||
      v4_in(a, V4(240, 0, 0, 0), 4))
    return JOBQ_ADDR_RESERVED;
  return JOBQ_ADDR_PUBLIC;
}

static uint32_t v4_at(const unsigned char *b) {
  return V4(b[0], b[1], b[2], b[3]);
}

/* The first bits of b equal those of p (bits a multiple of 8 or not). */
static int v6_in(const unsigned char *b, const unsigned char *p, int bits) {
  int whole = bits / 8, rest = bits % 8;
  if (memcmp(b, p, (size_t)whole) != 0) return 0;
  if (rest == 0) return 1;
  unsigned char mask = (unsigned char)(0xFF << (8 - rest));
  return (b[whole] & mask) == (p[whole] & mask);
}

static jobq__addr_class class_v6(const unsigned char *b) {
  static const unsigned char zero[16] = {0};
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const unsigned char translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
  static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
  static const unsigned char nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 1};
  static const unsigned char metadata[16] = {0xfd, 0, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54};
  static const unsigned char discard[8] = {0x01, 0x00};
  static const unsigned char ietf[3] = {0x20, 0x01, 0x00};
  static const unsigned char doc[4] = {0x20, 0x01, 0x0d, 0xb8};
  static const unsigned char doc2[3] = {0x3f, 0xff, 0x00};

  if (memcmp(b, zero, 16) == 0) return JOBQ_ADDR_UNSPECIFIED;
  if (memcmp(b, zero, 15) == 0 && b[15] == 1) return JOBQ_ADDR_LOOPBACK;
  if (memcmp(b, metadata, 16) == 0) return JOBQ_ADDR_METADATA;
  /* The forms that carry an IPv4 address in their last 32 bits (::/96 is
   * the deprecated "IPv4-compatible" form, still accepted by some stacks). */
  if (memcmp(b, mapped, 12) == 0 || memcmp(b, translated, 12) == 0 || memcmp(b, zero, 12) == 0 ||
      memcmp(b, nat64, 12) == 0)
    return class_v4(v4_at(b + 12));
  if (b[0] == 0x20 && b[1] == 0x02) return class_v4(v4_at(b + 2)); /* 6to4: 2002:AABB:CCDD:: */
  if (b[0] == 0xff) return JOBQ_ADDR_MULTICAST;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return JOBQ_ADDR_LINK_LOCAL;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return JOBQ_ADDR_SITE_LOCAL;
  if ((b[0] & 0xfe) == 0xfc) return JOBQ_ADDR_UNIQUE_LOCAL;
  /* 64:ff9b:1::/48 local-use NAT64 (a translator of the local network, the
   * IPv4 position depends on its prefix); 100::/64 discard-only; 2001::/23
   * IETF assignments (Teredo, whose client address is obfuscated,
   * benchmarking 2001:2::/48, ORCHID); 2001:db8::/32 and 3fff::/20
   * documentation. */
  if (v6_in(b, nat64_local, 48) || v6_in(b, discard, 64) || v6_in(b, ietf, 23) ||
      v6_in(b, doc, 32) || v6_in(b, doc2, 20))
    return JOBQ_ADDR_RESERVED;
  /* Only 2000::/3 is allocated for global unicast. */
  if ((b[0] & 0xe0) == 0x20) return JOBQ_ADDR_PUBLIC;
  return JOBQ_ADDR_RESERVED;
}

jobq__addr_class jobq__addr_class_of(const struct sockaddr *sa) {
  if (sa == NULL) return JOBQ_ADDR_RESERVED;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
    return class_v4(ntohl(s4->sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
    return class_v6(s6->sin6_addr.s6_addr);
  }
  return JOBQ_ADDR_RESERVED;
}

const char *jobq__addr_class_name(jobq__addr_class c) {
  switch (c) {
  case JOBQ_ADDR_PUBLIC: return "public";
  case JOBQ_ADDR_LOOPBACK: return "loopback";
  case JOBQ_ADDR_PRIVATE: return "private";
  case JOBQ_ADDR_LINK_LOCAL: return "link-local";
  case JOBQ_ADDR_CGNAT: return "shared address space (CGNAT)";
  case JOBQ_ADDR_MULTICAST: return "multicast";
  case JOBQ_ADDR_UNSPECIFIED: return "unspecified";
  case JOBQ_ADDR_BROADCAST: return "broadcast";
  case JOBQ_ADDR_METADATA: return "cloud metadata";
  case JOBQ_ADDR_UNIQUE_LOCAL: return "unique-local";
  case JOBQ_ADDR_SITE_LOCAL: return "site-local";
  case JOBQ_ADDR_RESERVED: return "reserved";
  default: return "unknown";
  }
}

void jobq__addr_text(const struct sockaddr *sa, char *dst, size_t size) {
  if (size == 0) return;
  const char *ok = NULL;
  char buf[INET6_ADDRSTRLEN];
  if (sa && sa->sa_family == AF_INET)
    ok = inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                   sizeof buf);
  else if (sa && sa->sa_family == AF_INET6)
    ok = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                   sizeof buf);
  snprintf(dst, size, "%s", ok ? buf : "?");
}

/* ---- allow-list ---- */

typedef struct allow_net {
  int v6;
  unsigned char b[16];
  int bits;
} allow_net;

struct jobq__addr_allow {
  size_t n;
  allow_net nets[]; /* n of them */
};

static int prefix_clean(const unsigned char *b, int len, int bits) {
  for (int i = bits; i < len * 8; i++)
    if (b[i / 8] & (0x80 >> (i % 8))) return 0;
  return 1;
}

/* One item of the list (NUL-terminated, trimmed) into *n. */
static int parse_item(char *item, size_t idx, allow_net *n) {
  char *slash = strchr(item, '/');
  int bits = -1;
  if (slash) {
    *slash = '\0';
    const char *p = slash + 1;
    char *end = (char *)(uintptr_t)p;
    long v = (p[0] >= '0' && p[0] <= '9') ? strtol(p, &end, 10) : -1;
    if (v < 0 || *end != '\0' || end - p > 3) {
      *slash = '/';
      return jobq__err(JOBQ_EINVAL, "allow-list: item %zu \"%.64s\" has a malformed prefix length",
                       idx, item);
    }
    bits = (int)v;
  }
  memset(n, 0, sizeof *n);
  if (inet_pton(AF_INET, item, n->b) == 1) {
    n->v6 = 0;
  } else if (inet_pton(AF_INET6, item, n->b) == 1) {
    n->v6 = 1;
  } else {
    if (slash) *slash = '/';
    return jobq__err(JOBQ_EINVAL, "allow-list: item %zu \"%.64s\" is not an IPv4 or IPv6 address",
                     idx, item);
  }
  int max = n->v6 ? 128 : 32;
  if (slash) *slash = '/';
  if (bits > max)
    return jobq__err(JOBQ_EINVAL, "allow-list: item %zu \"%.64s\": an IPv%d prefix is at most /%d",
                     idx, item, n->v6 ? 6 : 4, max);
  n->bits = bits < 0 ? max : bits;
  if (!prefix_clean(n->b, n->v6 ? 16 : 4, n->bits))
    return jobq__err(JOBQ_EINVAL,
                     "allow-list: item %zu \"%.64s\" has bits set past its /%d prefix "
                     "(write the network address)",
                     idx, item, n->bits);
  return 0;
}

int jobq__addr_allow_parse(const char *text, jobq__addr_allow **out) {
  if (out) *out = NULL;
  if (text == NULL || out == NULL) return jobq__err(JOBQ_EINVAL, "allow-list: text or out is NULL");
  size_t n = 0, len = strlen(text);
  int blank = 1;
  for (size_t i = 0; i < len; i++) {
    if (text[i] == ',') n++;
    else if (text[i] != ' ' && text[i] != '\t') blank = 0;
  }
  if (blank && n == 0) len = 0; /* "" or only blanks: the empty list */
  size_t items = len == 0 ? 0 : n + 1;
  jobq__addr_allow *l = calloc(1, sizeof *l + items * sizeof l->nets[0]);
  char *copy = malloc(len + 1);
  if (l == NULL || copy == NULL) {
    free(l);
    free(copy);
    return jobq__err(JOBQ_ENOMEM, "allow-list: out of memory");
  }
  memcpy(copy, text, len);
  copy[len] = '\0';
  char *p = copy;
  for (size_t i = 0; i < items; i++) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    while (*p == ' ' || *p == '\t') p++;
    size_t k = strlen(p);
    while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t')) p[--k] = '\0';
    int rc = 0;
    if (k == 0)
      rc = jobq__err(JOBQ_EINVAL, "allow-list: item %zu is empty", i + 1);
    else if (jobq__utf8_bad_at(p, k) != k)
      rc = jobq__err(JOBQ_EINVAL, "allow-list: item %zu is not valid UTF-8", i + 1);
    else
      rc = parse_item(p, i + 1, &l->nets[i]);
    if (rc != 0) {
      free(copy);
      free(l);
      return rc;
    }
    l->n++;
    p = comma ? comma + 1 : p + k;
  }
  free(copy);
  *out = l;
  return 0;
}

jobq__addr_allow *jobq__addr_allow_dup(const jobq__addr_allow *list) {
  if (list == NULL) return NULL;
  size_t size = sizeof *list + list->n * sizeof list->nets[0];
  jobq__addr_allow *c = malloc(size);
  if (c) memcpy(c, list, size);
  return c;
}

void jobq__addr_allow_free(jobq__addr_allow *list) { free(list); }

static int net_has(const allow_net *n, int v6, const unsigned char *b) {
  return n->v6 == v6 && v6_in(b, n->b, n->bits);
}

int jobq__addr_allowed(const jobq__addr_allow *list, const struct sockaddr *sa) {
  if (list == NULL || sa == NULL) return 0;
  const unsigned char *b;
  int v6;
  if (sa->sa_family == AF_INET) {
    b = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    v6 = 0;
  } else if (sa->sa_family == AF_INET6) {
    b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    v6 = 1;
  } else {
    return 0;
  }
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  int is_mapped = v6 && memcmp(b, mapped, 12) == 0;
  for (size_t i = 0; i < list->n; i++) {
    if (net_has(&list->nets[i], v6, b)) return 1;
    if (is_mapped && net_has(&list->nets[i], 0, b + 12)) return 1;
  }
  return 0;
}

/* ---- URLs ---- */

static int url_fail(char *why, size_t cap, const char *fmt, ...) JOBQ_PRINTF(3, 4);
static int url_fail(char *why, size_t cap, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (why && cap > 0) snprintf(why, cap, "webhook url: %s", msg);
  return jobq__err(JOBQ_EINVAL, "webhook url: %s", msg);
}

int jobq__webhook_url_check(const char *url, char *why, size_t cap) {
  if (why && cap > 0) why[0] = '\0';
  if (url == NULL) return url_fail(why, cap, "no url given");
  size_t len = strlen(url);
  if (len == 0) return url_fail(why, cap, "the url is empty");
  if (len > JOBQ_WEBHOOK_URL_MAX) {
    return url_fail(why, cap, "the url is %zu bytes long, over the %d allowed", len,
                    JOBQ_WEBHOOK_URL_MAX);
  }
  if (jobq__utf8_bad_at(url, len) != len) return url_fail(why, cap, "the url is not valid UTF-8");
  const char *colon = strchr(url, ':');
  size_t slen = colon ? (size_t)(colon - url) : 0;
  int http = slen == 4 && strncasecmp(url, "http", 4) == 0;
  int https = slen == 5 && strncasecmp(url, "https", 5) == 0;
  if (!http && !https) {
    /* The scheme is shown when it looks like one: it holds no secret. */
    char scheme[24] = "";
    int shown = slen > 0 && slen < sizeof scheme;
    for (size_t i = 0; shown && i < slen; i++) {
      char c = url[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '-' || c == '.'))
        shown = 0;
    }
    if (shown) {
      memcpy(scheme, url, slen);
      scheme[slen] = '\0';
    }
    if (!shown) return url_fail(why, cap, "the url has no http:// or https:// scheme");
    return url_fail(why, cap, "the scheme \"%s\" is refused: only http and https are allowed",
                    scheme);
  }
  if (strncmp(colon, "://", 3) != 0)
    return url_fail(why, cap, "the url must start with http:// or https://");
  const char *auth = colon + 3;
  size_t alen = strcspn(auth, "/?#");
  if (alen == 0) return url_fail(why, cap, "the url has no host");
  if (memchr(auth, '@', alen) != NULL)
    return url_fail(why, cap, "the url has a user name or password (user:pass@host), which would end up in "
                    "logs; send credentials in a header");
  if (auth[0] == ':') return url_fail(why, cap, "the url has no host");
  /* Anything else wrong (a bad port, spaces, a malformed IPv6 literal) is
   * what libcurl refuses. */
  CURLU *u = curl_url();
  if (u == NULL) return jobq__err(JOBQ_ENOMEM, "webhook url: out of memory");
  char *host = NULL;
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  int empty = uc == CURLUE_OK && (host == NULL || host[0] == '\0');
  curl_free(host);
  curl_url_cleanup(u);
  if (uc == CURLUE_OUT_OF_MEMORY) return jobq__err(JOBQ_ENOMEM, "webhook url: out of memory");
  if (uc != CURLUE_OK || empty)
    return url_fail(why, cap, "the url is malformed (%s)",
                    uc != CURLUE_OK ? curl_url_strerror(uc) : "no host");
  return 0;
}

int jobq__webhook_url_literal_check(const char *url, const jobq__addr_allow *allow, char *why,
                                    size_t cap) {
  if (why && cap > 0) why[0] = '\0';
  CURLU *u = curl_url();
  if (u == NULL) return jobq__err(JOBQ_ENOMEM, "webhook url: out of memory");
  char *host = NULL;
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  curl_url_cleanup(u);
  if (uc == CURLUE_OUT_OF_MEMORY) return jobq__err(JOBQ_ENOMEM, "webhook url: out of memory");
  if (uc != CURLUE_OK || host == NULL) {
    curl_free(host);
    return 0; /* not this check's to refuse */
  }
  /* libcurl gives IPv4 literals in dotted form whatever their spelling
   * (0x7f.1, 2130706433), and IPv6 ones in brackets. */
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  int literal = 0;
  size_t hl = strlen(host);
  if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
    char v6[INET6_ADDRSTRLEN + 1];
    size_t n = hl - 2;
    const char *pct = memchr(host + 1, '%', n); /* a zone id: fe80::1%eth0 */
    if (pct) n = (size_t)(pct - host - 1);
    if (n < sizeof v6) {
      memcpy(v6, host + 1, n);
      v6[n] = '\0';
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
      s6->sin6_family = AF_INET6;
      literal = inet_pton(AF_INET6, v6, &s6->sin6_addr) == 1;
    }
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    literal = inet_pton(AF_INET, host, &s4->sin_addr) == 1;
  }
  curl_free(host);
  if (!literal) return 0;
  const struct sockaddr *sa = (const struct sockaddr *)&ss;
  jobq__addr_class c = jobq__addr_class_of(sa);
  if (c == JOBQ_ADDR_PUBLIC || jobq__addr_allowed(allow, sa)) return 0;
  char text[INET6_ADDRSTRLEN + 8];
  jobq__addr_text(sa, text, sizeof text);
  return url_fail(why, cap,
                  "the host %s is not a public address (%s), so it is refused; add it to the allow-list "
                  "(jobq_options_set_webhook_allow) to permit it",
                  text, jobq__addr_class_name(c));
}
