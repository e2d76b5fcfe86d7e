/* Which addresses a request to a URL chosen by a user may reach.
 *
 * Internal to libjobq. Webhook URLs come from whoever submits a job; without
 * a check, "http://169.254.169.254/..." or a name that resolves to 10.0.0.5
 * would make libjobq a proxy into the network it runs in (server-side
 * request forgery). So such requests only connect to public addresses: each
 * address curl is about to connect to is classified here (lib/net/http_req.c
 * does it in CURLOPT_OPENSOCKETFUNCTION, on the resolved address, so that a
 * name that resolves to a public address when checked and to an internal one
 * when used gains nothing), and any class but JOBQ_ADDR_PUBLIC is refused
 * unless an allow-list names the address.
 *
 * The URL itself is checked earlier (jobq__webhook_url_check), where a bad
 * one can be refused with a sentence before anything is stored. */
#ifndef JOBQ_NET_ADDRPOLICY_H
#define JOBQ_NET_ADDRPOLICY_H

#include <stddef.h>

struct sockaddr;

typedef enum jobq__addr_class {
  JOBQ_ADDR_PUBLIC = 0,  /* reachable on the internet: allowed */
  JOBQ_ADDR_LOOPBACK,    /* 127.0.0.0/8, ::1 */
  JOBQ_ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16 (RFC 1918) */
  JOBQ_ADDR_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
  JOBQ_ADDR_CGNAT,       /* 100.64/10, shared address space (RFC 6598) */
  JOBQ_ADDR_MULTICAST,   /* 224/4, ff00::/8 */
  JOBQ_ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: (Linux connects 0.0.0.0 to the host itself) */
  JOBQ_ADDR_BROADCAST,   /* 255.255.255.255 */
  JOBQ_ADDR_METADATA,    /* cloud instance metadata services, see addrpolicy.c */
  JOBQ_ADDR_UNIQUE_LOCAL, /* fc00::/7, the IPv6 private ranges (RFC 4193) */
  JOBQ_ADDR_SITE_LOCAL,  /* fec0::/10, deprecated but still routed inside some sites */
  JOBQ_ADDR_RESERVED,    /* benchmarking, documentation, IETF-reserved, 240/4, IPv6
                            outside 2000::/3: nothing a public receiver has */
  JOBQ_ADDR_N_CLASSES
} jobq__addr_class;

/* The class of an AF_INET or AF_INET6 address (JOBQ_ADDR_RESERVED for any
 * other family or NULL). IPv6 forms that carry an IPv4 address
 * (::ffff:0:0/96 mapped, ::ffff:0:0:0/96 translated, ::/96 compatible,
 * 64:ff9b::/96 NAT64, 2002::/16 6to4) take the class of that IPv4 address:
 * the packet ends up there. */
jobq__addr_class jobq__addr_class_of(const struct sockaddr *sa);

/* A name for sentences: "loopback", "private", "link-local", "shared
 * address space (CGNAT)", "cloud metadata", ... Static storage. */
const char *jobq__addr_class_name(jobq__addr_class c);

/* Writes the address (no port) as text, e.g. "127.0.0.1" or "fe80::1";
 * "?" for an unknown family. */
void jobq__addr_text(const struct sockaddr *sa, char *dst, size_t size);

/* ---- allow-list ---- */

typedef struct jobq__addr_allow jobq__addr_allow;

/* Parses a comma-separated list of addresses and CIDR prefixes, IPv4 and
 * IPv6, e.g. "127.0.0.1, 10.0.0.0/8, ::1, fd00::/8" (blanks around items
 * are ignored; "" is the empty list). A prefix with bits set past its
 * length ("10.0.0.1/8") is refused: it is more likely a typo than meant.
 * 0 with *out set (free with jobq__addr_allow_free), or JOBQ_EINVAL with a
 * sentence naming the item ("allow-list: item 2 \"10.0/8\" is not an IPv4
 * or IPv6 address") and *out NULL, or JOBQ_ENOMEM. */
int jobq__addr_allow_parse(const char *text, jobq__addr_allow **out);

/* A copy (NULL for NULL or out of memory). */
jobq__addr_allow *jobq__addr_allow_dup(const jobq__addr_allow *list);

void jobq__addr_allow_free(jobq__addr_allow *list);

/* 1 when list (may be NULL: empty) names sa, else 0. An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) matches the IPv4 entries too: it is the same
 * address. */
int jobq__addr_allowed(const jobq__addr_allow *list, const struct sockaddr *sa);

/* ---- URLs ---- */

#define JOBQ_WEBHOOK_URL_MAX 2048

/* Checks a webhook URL before it is accepted: valid UTF-8, at most
 * JOBQ_WEBHOOK_URL_MAX bytes, scheme http or https (any case), a host, no
 * userinfo ("user:pass@": credentials in a URL end up in logs and sentences;
 * send them in headers), and something libcurl can parse. 0, or JOBQ_EINVAL
 * with the reason in why (at most cap bytes, never quoting the URL, which
 * may hold a key) and in jobq_last_error(), both starting "webhook url: ". */
int jobq__webhook_url_check(const char *url, char *why, size_t cap);

/* When url's host is a literal address (127.0.0.1, [::1], and the other
 * spellings libcurl reads as one, such as 2130706433), refuses it unless it
 * is public or allow names it: JOBQ_EINVAL, with a sentence in why and in
 * jobq_last_error() like "webhook url: the host 10.0.0.5 is not a
 * public address (private), so it is refused; ...". A name passes (it is checked on its
 * resolved address when used), and so does a URL that
 * jobq__webhook_url_check refuses (check that first). */
int jobq__webhook_url_literal_check(const char *url, const jobq__addr_allow *allow, char *why,
                                    size_t cap);

#endif
