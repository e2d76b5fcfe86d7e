/* Error codes and the per-thread detail sentence behind jobq_last_error(). */
#ifndef JOBQ_UTIL_ERR_H
#define JOBQ_UTIL_ERR_H

#include "util/private.h"

#include "jobq.h"

#if defined(__GNUC__)
#  define JOBQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define JOBQ_PRINTF(a, b)
#endif

/* Sets the calling thread's detail sentence and returns code, so that error
 * paths read `return jobq__err(JOBQ_EINVAL, "jobq_submit: kind is NULL");`. */
JOBQ_PRIVATE int jobq__err(int code, const char *fmt, ...) JOBQ_PRINTF(2, 3);
/* Sets the sentence only. */
JOBQ_PRIVATE void jobq__set_detail(const char *msg);

#endif
