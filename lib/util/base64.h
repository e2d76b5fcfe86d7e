/* Base64 (RFC 4648 §4: the standard alphabet, with '=' padding), as the
 * Standard Webhooks secrets and signatures use it. */
#ifndef JOBQ_UTIL_BASE64_H
#define JOBQ_UTIL_BASE64_H

#include <stddef.h>

/* The length of the text for n bytes, without the NUL: 4 * ceil(n / 3). */
#define JOBQ__BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Writes the text of n bytes and a NUL into out, which must hold
 * JOBQ__BASE64_LEN(n) + 1 bytes. Returns the length written. */
size_t jobq__base64_encode(const void *data, size_t n, char *out);
/* Decodes len characters of text into out (cap bytes). Strict, so that one
 * signature has one spelling: the length must be a multiple of 4, only the
 * alphabet, '=' only as the last one or two characters, and the bits the
 * padding leaves over must be zero (§3.5). Returns the number of bytes, or
 * -1 for malformed text or when cap is too small. */
long jobq__base64_decode(const char *text, size_t len, unsigned char *out, size_t cap);

#endif
