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

/* Sentences are always valid UTF-8 (util/utf8.h: jobq__utf8_fix), also
 * when they quote bad input or are cut to fit. */
/* Sets the calling thread's detail sentence and returns code, so that error
 * paths read `return jobq__err(JOBQ_EINVAL, "jobq_submit: kind is NULL");`. */
JOBQ_PRIVATE int jobq__err(int code, const char *fmt, ...) JOBQ_PRINTF(2, 3);
/* Sets the sentence only. */
JOBQ_PRIVATE void jobq__set_detail(const char *msg);
/* Puts fmt(...) in front of the calling thread's current sentence and
 * returns code: `return jobq__err_prefix(JOBQ_ECONFIG, NULL, "upload: ");`
 * turns "cannot create directory ..." into "upload: cannot create
 * directory ...". The current sentence is copied before anything is
 * written, so it may be the cause of any length. When it starts with
 * "<strip>: " (strip not NULL), that part is dropped: an inner function's
 * name gives way to the outer one's. An empty sentence reads as
 * jobq_strerror(code). */
JOBQ_PRIVATE int jobq__err_prefix(int code, const char *strip, const char *fmt, ...) JOBQ_PRINTF(3, 4);

#endif
