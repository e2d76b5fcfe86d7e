/* A growable string for building JSON text. Out of memory is sticky: after
 * a failed append, every later one is a no-op and jobq__sb_take returns
 * NULL, so callers check once at the end. */
#ifndef JOBQ_UTIL_SBUF_H
#define JOBQ_UTIL_SBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobq_sbuf {
  char *p;
  size_t n, cap;
  int failed;
} jobq_sbuf;

void jobq__sb_raw(jobq_sbuf *b, const char *s, size_t n);
void jobq__sb_str(jobq_sbuf *b, const char *s);       /* raw text */
void jobq__sb_json_str(jobq_sbuf *b, const char *s);  /* as a quoted JSON string */
void jobq__sb_int(jobq_sbuf *b, int64_t v);
/* ,"key": (with a comma unless first) */
void jobq__sb_key(jobq_sbuf *b, const char *key, int *first);
char *jobq__sb_take(jobq_sbuf *b); /* malloc'ed, NUL-terminated; NULL on failure */

#endif
