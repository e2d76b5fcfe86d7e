/* UUIDv7: 48 bits of Unix milliseconds, then random bits. Ids from different
 * processes and machines are unique because 74 bits are random; ids from one
 * thread are strictly increasing even within a millisecond because the
 * 12-bit rand_a field is used as a counter seeded randomly (RFC 9562 §6.2,
 * method 1), so FIFO by id matches submission order on one thread. */
#include "util/id.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* getrandom() costs a system call; ids are made at a high rate, so each
 * thread draws 4 KiB at a time and hands it out. */
static _Thread_local unsigned char pool[4096];
static _Thread_local size_t pool_left;

static void fill_pool(void) {
  size_t got = 0;
  while (got < sizeof pool) {
    ssize_t r = getrandom(pool + got, sizeof pool - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      /* No CSPRNG at all is not survivable for unique ids: fall back to a
       * seeded mix rather than crash, keeping ids unique in practice. */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts;
      for (size_t i = got; i < sizeof pool; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        pool[i] = (unsigned char)x;
      }
      break;
    }
    got += (size_t)r;
  }
  pool_left = sizeof pool;
}

void jobq__random_bytes(void *buf, size_t n) {
  unsigned char *out = buf;
  while (n > 0) {
    if (pool_left == 0) fill_pool();
    size_t take = n < pool_left ? n : pool_left;
    memcpy(out, pool + sizeof pool - pool_left, take);
    /* Never hand the same bytes out twice. */
    memset(pool + sizeof pool - pool_left, 0, take);
    pool_left -= take;
    out += take;
    n -= take;
  }
}

double jobq__random_unit(void) {
  uint64_t x;
  jobq__random_bytes(&x, sizeof x);
  return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

static _Thread_local int64_t last_ms = -1;
static _Thread_local unsigned counter; /* 12 bits */

static const char hex[] = "0123456789abcdef";

void jobq__id_new(char *out, int64_t now_ms) {
  unsigned char b[16];
  jobq__random_bytes(b + 6, 10);
  if (now_ms < 0) now_ms = 0;
  if (now_ms <= last_ms) {
    /* Same (or earlier: clock stepped back) millisecond: keep the previous
     * timestamp and count up so ids stay increasing. */
    counter++;
    if (counter > 0xfff) { last_ms++; counter = 0; }
    now_ms = last_ms;
  } else {
    last_ms = now_ms;
    counter = (unsigned)(b[6] | (b[7] << 8)) & 0x3ff; /* leave room to count */
  }
  uint64_t ms = (uint64_t)now_ms;
  b[0] = (unsigned char)(ms >> 40); b[1] = (unsigned char)(ms >> 32);
  b[2] = (unsigned char)(ms >> 24); b[3] = (unsigned char)(ms >> 16);
  b[4] = (unsigned char)(ms >> 8);  b[5] = (unsigned char)ms;
  b[6] = (unsigned char)(0x70 | ((counter >> 8) & 0x0f));
  b[7] = (unsigned char)(counter & 0xff);
  b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
}

int jobq__id_valid(const char *s) {
  for (int i = 0; i < 36; i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return 0;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return 0;
    }
  }
  return s[36] == '\0';
}
