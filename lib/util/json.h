/* JSON checks for payloads and results. */
#ifndef JOBQ_UTIL_JSON_H
#define JOBQ_UTIL_JSON_H

#include <stddef.h>

/* 0 if text (len bytes) is one valid JSON value; else JOBQ_EJSON with the
 * parser's message in jobq_last_error(), prefixed by what ("payload"). */
int jobq__json_check(const char *what_fn, const char *what, const char *text, size_t len);

#endif
