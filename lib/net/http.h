/* HTTP requests on a libuv loop through libcurl's multi interface.
 *
 * Internal to libjobq (the stage modules use it). One jobq__http per loop: it
 * owns a CURLM whose sockets are watched with uv_poll_t and whose timeout is a
 * uv_timer_t (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), so requests
 * need no thread and nothing polls. Every function here must be called on the
 * loop's thread; every callback runs there.
 *
 * A request is tried up to max_tries times: network errors (but not a TLS
 * certificate that fails verification), timeouts and the
 * statuses 408, 429, 500, 502, 503, 504 and 529 are retried after an
 * exponential backoff with jitter, or after the server's Retry-After (seconds
 * or an HTTP date) when it sent one, capped at retry_after_max_ms. Any other
 * status is final and reported as it is (the caller decides what a 400
 * means). TLS peers are always verified. Redirects are never followed: a
 * 3xx is the final status (a followed one would reach a URL nobody chose).
 *
 * Secrets (API keys, the S3 secret) never appear in an error sentence: each
 * string listed in opts.secrets is replaced with "[redacted]" in everything
 * this module writes, and it never logs headers. userpwd is always a secret,
 * and so are its password (after the ':') and the base64 that curl sends in
 * a Basic Authorization header (which a server may echo). Sentences name
 * the host and port, never the URL (its query may hold a key). */
#ifndef JOBQ_NET_HTTP_H
#define JOBQ_NET_HTTP_H

#include "util/private.h"

#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;

typedef struct jobq__http jobq__http;
typedef struct jobq__http_req jobq__http_req;

typedef struct jobq__http_opts {
  const char *provider;       /* name in error sentences, e.g. "openai"; NULL: "http" */
  const char *method;         /* "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" or "OPTIONS";
                                 NULL: GET, POST with a body, PUT with a body_file.
                                 GET and HEAD cannot have a body (JOBQ_EINVAL) */
  const char *url;
  const char *const *headers; /* "Name: value" lines (no CR or LF). With a body, give
                                 Content-Type: libcurl's default is
                                 application/x-www-form-urlencoded */
  size_t n_headers;
  const void *body;           /* request body, copied by jobq__http_start; may be NULL */
  size_t body_len;
  const char *body_file;      /* or: send this file's bytes (PUT of an artifact). Opened
                                 again for every try; one that cannot be read is
                                 reported through done (JOBQ_EIO), not by start */
  int64_t connect_timeout_ms; /* per try; 0: 10,000 */
  int64_t timeout_ms;         /* whole try, transfer included; 0: 120,000 */
  size_t max_response;        /* bytes; a longer body fails the request (JOBQ_ETOOBIG); 0: 64 MiB */
  int max_tries;              /* 0: 4; 1: no retry */
  int64_t backoff_base_ms;    /* 0: 500; the delay before try n+1 is base * 2^(n-1), jittered, */
  int64_t backoff_max_ms;     /* capped here; 0: 30,000 */
  int64_t retry_after_max_ms; /* longest Retry-After honoured; 0: 60,000 (longer: give up) */
  const char *aws_sigv4;      /* CURLOPT_AWS_SIGV4, e.g. "aws:amz:us-east-1:s3"; NULL: none */
  const char *userpwd;        /* CURLOPT_USERPWD ("AKID:SECRET" for SigV4); a secret */
  const char *const *secrets; /* strings never to show (API keys); userpwd is always one */
  size_t n_secrets;
  const char *ca_file;        /* CURLOPT_CAINFO; NULL: the system's */

  /* For URLs chosen by users (webhooks), see net/addrpolicy.h. With
   * refuse_internal, every address curl is about to connect to is checked
   * (in CURLOPT_OPENSOCKETFUNCTION, after resolution, so DNS rebinding
   * gains nothing) and any that is not public is refused unless allow names
   * it: no socket is opened, no byte sent, and the request ends with
   * JOBQ_ENETWORK, resp.refused set and a sentence like "webhook: the host
   * 'localhost' resolved to 127.0.0.1 (loopback), which is refused; add it
   * to the allow-list to permit it", without retries (the same name gives
   * the same answer). Such requests never use a proxy from the environment
   * (the proxy, not this check, would choose the address) and never share
   * connections with other requests (a connection opened by a request
   * without the check must not carry one with it), unless their client
   * sends checked requests only (jobq__http_checked_only). A host with several
   * addresses is reached on an allowed one if it has one. */
  int refuse_internal;
  const struct jobq__addr_allow *allow; /* copied by start; NULL: none */
  size_t keep_response;       /* bytes of the body kept; the rest is read and discarded
                                 (resp.body_cut), still bounded by max_response; 0: keep all */
} jobq__http_opts;

typedef struct jobq__http_resp {
  int rc;                   /* 0: a final HTTP response arrived (any status; see status);
                               JOBQ_ETIMEDOUT: the last try timed out;
                               JOBQ_ENETWORK: the last try could not connect / was reset;
                               JOBQ_ETOOBIG: the body passed max_response;
                               JOBQ_ECANCELLED: jobq__http_abort or jobq__http_close;
                               JOBQ_ENOMEM, JOBQ_EIO (body_file unreadable) */
  long status;              /* HTTP status of the last try; 0 if none arrived */
  const char *body;         /* the last try's response body, NUL-terminated (not counted in
                               body_len); never NULL (may be what arrived before a failure) */
  size_t body_len;
  const char *content_type; /* the Content-Type header, or NULL */
  int tries;                /* tries made (0 if body_file could not be opened at once) */
  const char *error;        /* when rc < 0 or status >= 400: a sentence naming the provider,
                               e.g. "openai: HTTP 429 after 4 tries: Rate limit reached"
                               (the body's error message, at most ~200 bytes on one line;
                               "after N tries" only when N > 1) or "anthropic: could not
                               connect to 127.0.0.1:9: Connection refused (after 3 tries)";
                               secrets redacted; else NULL */
  int refused;              /* 1: refuse_internal refused an address (rc JOBQ_ENETWORK) */
  int body_cut;             /* 1: the body was longer than keep_response and was cut */
  int64_t retry_after_ms;   /* the last try's Retry-After, in ms, when the request gave up
                               rather than wait that long (longer than retry_after_max_ms);
                               -1 otherwise. A caller may push its job back by it */
  int64_t retry_after_sent_ms; /* the last try's Retry-After in ms (0 included: "now", and
                               a date already past) whenever a final response carried one;
                               -1 if it had none. For callers that retry on their own
                               schedule (the webhook outbox) */
} jobq__http_resp;

/* resp and everything it points to are valid during the call only. done may
 * call jobq__http_start, jobq__http_abort (of any request) and jobq__http_close. */
typedef void (*jobq__http_done_fn)(void *ud, const jobq__http_resp *resp);

/* A client on loop. 0, or JOBQ_ENOMEM / JOBQ_EIO (curl failed to start). */
JOBQ_PRIVATE int jobq__http_new(struct uv_loop_s *loop, jobq__http **out);

/* Aborts every request (each done gets JOBQ_ECANCELLED, before this returns)
 * and closes the loop handles; closed(ud) runs once they are closed (after
 * which the loop holds nothing of h and h is freed), so always later, from
 * the loop. closed may be NULL. May be called from a done callback. From
 * then on jobq__http_start fails with JOBQ_ECLOSED and further jobq__http_close
 * calls are ignored. */
JOBQ_PRIVATE void jobq__http_close(jobq__http *h, void (*closed)(void *ud), void *ud);

/* Makes h a client for checked requests only: from now on every request
 * must set refuse_internal (else JOBQ_EINVAL) and is checked against allow
 * (copied; its own opts.allow is ignored), and so connections are kept and
 * reused: each was opened by a checked request, to an address the check
 * passed, under the one allow-list. (Connections of a client that also
 * sends unchecked requests are never reused by checked ones.) Before the
 * first request: JOBQ_ESTATE after. 0, or JOBQ_ENOMEM. The webhook sender
 * uses one such client per queue. */
JOBQ_PRIVATE int jobq__http_checked_only(jobq__http *h, const struct jobq__addr_allow *allow);

/* Starts a request. done(ud, resp) is called exactly once, later, on the
 * loop thread; never from inside jobq__http_start. *out_req (may be NULL) is
 * valid until done is called. 0, or JOBQ_EINVAL (no url, a url that is not
 * http(s), bad method, malformed header, negative limits) / JOBQ_ENOMEM /
 * JOBQ_ECLOSED (after jobq__http_close) with jobq_last_error() set and done
 * never called. */
JOBQ_PRIVATE int jobq__http_start(jobq__http *h, const jobq__http_opts *opts, jobq__http_done_fn done, void *ud,
                  jobq__http_req **out_req);

/* Stops a request now (the connection is dropped, a pending retry timer
 * stopped); its done is called with JOBQ_ECANCELLED before this returns.
 * Inside the request's own done it does nothing (done runs once). Calling it
 * after that done has returned is a caller bug: the request may be freed. */
JOBQ_PRIVATE void jobq__http_abort(jobq__http_req *req);

/* Copies src to dst (size bytes, NUL-terminated; they must not overlap)
 * with every occurrence of each secret replaced by "[redacted]"; secrets
 * that overlap or touch become one "[redacted]". A cut dst never ends in
 * the start of a secret. Secrets shorter than 4 bytes are ignored (they
 * would redact ordinary words); NULL entries are skipped. */
void jobq__http_redact(char *dst, size_t size, const char *src, const char *const *secrets,
                    size_t n_secrets);

#endif
