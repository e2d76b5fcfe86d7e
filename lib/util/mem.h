/* String copies. Every allocation in libjobq goes through malloc, calloc or
 * realloc called from libjobq's own objects, never through libc's strdup
 * (whose inner malloc the allocation-failure torture cannot fail), so these
 * are the only string-copy functions the library uses. */
#ifndef JOBQ_UTIL_MEM_H
#define JOBQ_UTIL_MEM_H

#include "util/private.h"

#include <stddef.h>

/* A malloc'd copy of s, or NULL for s == NULL or out of memory. */
JOBQ_PRIVATE char *jobq__strdup(const char *s);
/* A malloc'd copy of at most n bytes of s, always terminated; NULL when out
 * of memory. */
JOBQ_PRIVATE char *jobq__strndup(const char *s, size_t n);

#endif
