/* JSON checks for payloads and results. */
#ifndef JOBQ_UTIL_JSON_H
#define JOBQ_UTIL_JSON_H

#include "util/private.h"

#include <stddef.h>

/* 0 if text (len bytes) is one valid JSON value; else JOBQ_EJSON with the
 * parser's message in jobq_last_error(), prefixed by what ("payload"). */
JOBQ_PRIVATE int jobq__json_check(const char *what_fn, const char *what, const char *text, size_t len);

#endif
