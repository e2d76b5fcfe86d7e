/* Time-sortable unique ids (UUIDv7, RFC 9562) and the random source. */
#ifndef JOBQ_UTIL_ID_H
#define JOBQ_UTIL_ID_H

#include <stddef.h>
#include <stdint.h>

/* Writes a UUIDv7 text id (36 chars + NUL) for time now_ms into out. */
void jobq__id_new(char *out, int64_t now_ms);
/* Fills buf with n bytes from the kernel's CSPRNG (buffered per thread). */
void jobq__random_bytes(void *buf, size_t n);
/* A uniform double in [0, 1). */
double jobq__random_unit(void);
/* 1 if s looks like an id this library makes (36 chars of hex and dashes). */
int jobq__id_valid(const char *s);

#endif
