/* UTF-8 checks for every text the API stores (owners, dedupe keys, steps,
 * error messages, paths...): strict RFC 3629, the same rules the JSON
 * validator applies inside payload strings. Readers in other languages
 * (Python, Node, JSON consumers) decode what libjobq stores; text they
 * cannot decode is refused where it enters, not found later. */
#ifndef JOBQ_UTIL_UTF8_H
#define JOBQ_UTIL_UTF8_H

#include "util/private.h"

#include <stddef.h>

/* The length (1..4) of the well-formed UTF-8 sequence at s, which has
 * avail > 0 bytes, or 0 when there is none: a stray continuation byte, an
 * overlong form, a surrogate (U+D800..U+DFFF), a code point above U+10FFFF,
 * or a sequence cut short. */
size_t jobq__utf8_seq(const unsigned char *s, size_t avail);

/* The offset of the first byte of s[0..len) that does not begin a
 * well-formed sequence, or len when all of it is valid UTF-8. */
size_t jobq__utf8_bad_at(const char *s, size_t len);

/* 0 when s (a C string; NULL counts as valid) is valid UTF-8; else
 * JOBQ_EINVAL with "<fn>: <what> is not valid UTF-8 (byte 0x.. at offset
 * N)" in jobq_last_error(). */
JOBQ_PRIVATE int jobq__utf8_check(const char *fn, const char *what, const char *s);

/* Makes the C string s valid UTF-8 in place, for text libjobq composes
 * itself from parts it does not control (a provider's answer, a path, a
 * sentence cut to fit a buffer): a sequence cut short at the very end is
 * dropped, every other byte that does not begin a well-formed sequence
 * becomes '?'. */
JOBQ_PRIVATE void jobq__utf8_fix(char *s);

#endif
