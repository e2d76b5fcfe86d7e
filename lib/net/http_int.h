/* Internals of lib/net/http.c: the text helpers in http_text.c, apart so
 * that they can be tested on their own. Internal to libjobq. */
#ifndef JOBQ_NET_HTTP_INT_H
#define JOBQ_NET_HTTP_INT_H

#include "net/http.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- text ---- */

/* Characters of a response body kept in an error sentence. */
#define JQ_HTTP_SNIPPET_MAX 200

/* The error message of a response body on one line, at most
 * JQ_HTTP_SNIPPET_MAX bytes (cut at a UTF-8 boundary, "..." appended) and
 * redacted. A JSON body gives its "error.message", "error", "message" or
 * "detail" string, an S3-style XML body its <Code> and <Message>; any other
 * body is used as it is. dst gets "" for an empty body. */
void jq_http_snippet(char *dst, size_t size, const char *body, size_t len,
                     const char *const *secrets, size_t n_secrets);

/* A Retry-After header value (the part after the colon, not NUL-terminated):
 * delta-seconds, or an HTTP date taken relative to now. Seconds to wait (0
 * for a date in the past), or -1 if the value is neither. */
int64_t jq_http_retry_after(const char *value, size_t len, time_t now);

/* Standard base64 of src with padding into dst (NUL-terminated); 0, or -1 if
 * dst is too small. Used to redact the Basic credentials curl sends. */
int jq_http_base64(char *dst, size_t size, const char *src, size_t len);

#endif
