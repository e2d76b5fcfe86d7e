/* Internals of lib/net/http.c shared with http_req.c (preparing a request)
 * and http_text.c (text helpers), apart so that each file stays short and
 * the text helpers can be tested on their own. Internal to libjobq. */
#ifndef JOBQ_NET_HTTP_INT_H
#define JOBQ_NET_HTTP_INT_H

#include "net/addrpolicy.h"
#include "net/http.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <uv.h>

/* ---- a request ---- */

enum jobq__http_req_state {
  JOBQ_HTTP_RUNNING, /* the easy handle is in the multi */
  JOBQ_HTTP_WAITING, /* the timer will start the next try */
  JOBQ_HTTP_FAILING, /* the timer will call done (a failure found inside start) */
  JOBQ_HTTP_DONE     /* done has been called; memory waits for the timer's close */
};

struct jobq__http_req {
  jobq__http *h;
  jobq__http_req *prev, *next;
  CURL *easy;
  struct curl_slist *headers;
  uv_timer_t timer;
  int state;
  int in_multi;
  jobq__http_done_fn done;
  void *ud;

  char *provider;
  char *where; /* "host:port", for sentences (never the URL: it may hold a key) */
  char *host;  /* the host alone, for the refusal sentence */
  int refuse_internal;
  int reuse_ok;        /* its client sends checked requests only (jobq__http_checked_only) */
  jobq__addr_allow *allow; /* owned copy */
  size_t keep_response;
  char *body_file;
  FILE *up;
  char **secrets;
  size_t n_secrets;
  int64_t connect_ms, timeout_ms, backoff_base_ms, backoff_max_ms, retry_after_max_ms;
  size_t max_response;
  int max_tries;

  /* the current (or last) try */
  int tries;
  long status;
  char *buf;
  size_t len, cap;
  int too_big, nomem;
  size_t seen;         /* body bytes received in this try (kept or not) */
  int cut;             /* bytes past keep_response were discarded */
  int refused;         /* an address was refused in this try; note says which */
  int64_t retry_after; /* seconds, from this try's response; -1: none */
  int retry_after_long; /* it was longer than retry_after_max_ms: not waited for */
  int fail_rc;         /* for JOBQ_HTTP_FAILING */
  char note[320];      /* the cause, when known before finish */
  char errbuf[CURL_ERROR_SIZE];
};

/* Checks the options of jobq__http_start: 0, or JOBQ_EINVAL with
 * jobq_last_error() set. method is the one the request will use. */
int jobq__http_req_check(const jobq__http_opts *o, const char *prov, const char *method);

/* Copies the options into r (defaults applied) and prepares r->easy with
 * them and with the per-transfer callbacks. 0, or JOBQ_EINVAL / JOBQ_ENOMEM
 * with jobq_last_error() set; r's fields are then freed by the caller's
 * usual path. */
int jobq__http_req_setup(jobq__http_req *r, const jobq__http_opts *o, const char *prov,
                      const char *method);

/* An easy handle for a new request of h: one a finished request left
 * (reset to curl's defaults), or a new one; NULL when out of memory. */
CURL *jobq__http_easy_get(jobq__http *h);

/* ---- text ---- */

/* Characters of a response body kept in an error sentence. */
#define JOBQ_HTTP_SNIPPET_MAX 200

/* The error message of a response body on one line, at most
 * JOBQ_HTTP_SNIPPET_MAX bytes (cut at a UTF-8 boundary, "..." appended) and
 * redacted. A JSON body gives its "error.message", "error", "message" or
 * "detail" string, an S3-style XML body its <Code> and <Message>; any other
 * body is used as it is. dst gets "" for an empty body. */
void jobq__http_snippet(char *dst, size_t size, const char *body, size_t len,
                     const char *const *secrets, size_t n_secrets);

/* A Retry-After header value (the part after the colon, not NUL-terminated):
 * delta-seconds, or an HTTP date taken relative to now. Seconds to wait (0
 * for a date in the past), or -1 if the value is neither. */
int64_t jobq__http_retry_after(const char *value, size_t len, time_t now);

/* Standard base64 of src with padding into dst (NUL-terminated); 0, or -1 if
 * dst is too small. Used to redact the Basic credentials curl sends. */
int jobq__http_base64(char *dst, size_t size, const char *src, size_t len);

#endif
