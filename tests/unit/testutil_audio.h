/* Shared helpers for the test_audio_*.c tests of the audio units under
 * lib/stages (static inline only: every test program includes this header
 * on its own). Random inputs come from a fixed-seed generator, so runs
 * repeat. Files go to a mkdtemp directory under the working directory,
 * made by setup and removed by teardown (cmocka group fixtures).
 *
 *   - rng_seed/rng/rng_below: the generator;
 *   - tmpdir, path_in, exists, read_all, exact_copy, le16/le32: files;
 *   - bytes and b_*: WAV, MP3 frame and ID3 byte strings under construction;
 *   - sine, crossing_hz: PCM test signals;
 *   - ASSERT_RC: a return code, with jobq_last_error() on failure.
 * A test file that needs memmem defines _GNU_SOURCE before any include. */
#ifndef TESTUTIL_AUDIO_H
#define TESTUTIL_AUDIO_H

#include "testutil.h"

#include "stages/audio.h"

#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state __attribute__((unused));
static inline void rng_seed(uint64_t s) { rng_state = s ? s : 0x9e3779b97f4a7c15ull; }
static inline uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}
static inline size_t rng_below(size_t n) { return (size_t)(rng() % n); }

static char tmpdir[64] __attribute__((unused));

static inline void path_in(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", tmpdir, name);
}

static inline int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static inline uint8_t *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* An exact-size heap copy, so that ASan sees any read past the end. */
static inline uint8_t *exact_copy(const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  assert_non_null(c);
  if (n) memcpy(c, p, n);
  return c;
}

static inline uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static inline uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

/* A byte string under construction. */
typedef struct bytes {
  uint8_t *p;
  size_t n, cap;
} bytes;

static inline void b_raw(bytes *b, const void *s, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
}
static inline void b_str(bytes *b, const char *s) { b_raw(b, s, strlen(s)); }
static inline void b_u8(bytes *b, unsigned v) {
  uint8_t c = (uint8_t)v;
  b_raw(b, &c, 1);
}
static inline void b_u16(bytes *b, unsigned v) {
  b_u8(b, v & 0xff);
  b_u8(b, v >> 8 & 0xff);
}
static inline void b_u32(bytes *b, uint32_t v) {
  b_u16(b, v & 0xffff);
  b_u16(b, v >> 16);
}
static inline void b_zero(bytes *b, size_t n) {
  for (size_t i = 0; i < n; i++) b_u8(b, 0);
}
static inline void b_free(bytes *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* A fmt chunk body of 16 bytes. */
static inline void b_fmt(bytes *b, unsigned tag, unsigned ch, uint32_t rate, uint32_t byte_rate, unsigned align,
                  unsigned bits) {
  b_str(b, "fmt ");
  b_u32(b, 16);
  b_u16(b, tag);
  b_u16(b, ch);
  b_u32(b, rate);
  b_u32(b, byte_rate);
  b_u16(b, align);
  b_u16(b, bits);
}

/* RIFF/WAVE header whose size is fixed up by b_riff_done. */
static inline void b_riff(bytes *b) {
  b_str(b, "RIFF");
  b_u32(b, 0);
  b_str(b, "WAVE");
}
static inline void b_riff_done(bytes *b) {
  uint32_t v = (uint32_t)(b->n - 8);
  for (int i = 0; i < 4; i++) b->p[4 + i] = (uint8_t)(v >> (8 * i));
}

/* A mono 16-bit WAV of n samples s. */
static inline void b_wav_mono(bytes *b, uint32_t rate, const int16_t *s, size_t n) {
  b_riff(b);
  b_fmt(b, 1, 1, rate, rate * 2, 2, 16);
  b_str(b, "data");
  b_u32(b, (uint32_t)(2 * n));
  for (size_t i = 0; i < n; i++) b_u16(b, (uint16_t)s[i]);
  b_riff_done(b);
}

static inline jobq__pcm sine(int rate, double hz, double seconds, double amp) {
  jobq__pcm p = {.rate = rate};
  size_t n = (size_t)(rate * seconds + 0.5);
  int16_t *s = malloc(n * sizeof *s);
  assert_non_null(s);
  for (size_t i = 0; i < n; i++) s[i] = (int16_t)lrint(amp * sin(2 * M_PI * hz * (double)i / rate));
  assert_int_equal(jobq__pcm_append(&p, s, n), 0);
  free(s);
  return p;
}

/* Frequency from sign changes: two per period. */
static inline double crossing_hz(const jobq__pcm *p) {
  size_t c = 0;
  for (size_t i = 1; i < p->n; i++)
    if ((p->samples[i - 1] < 0) != (p->samples[i] < 0)) c++;
  return (double)c / 2.0 / jobq__pcm_seconds(p);
}

#define ASSERT_RC(want, expr)                                                                  \
  do {                                                                                         \
    int rc_ = (expr);                                                                          \
    if (rc_ != (want)) {                                                                       \
      print_error("%s:%d: %s returned %d (%s), expected %d: %s\n", __FILE__, __LINE__, #expr, \
                  rc_, jobq_err_name(rc_), (want), jobq_last_error());                         \
      _fail(__FILE__, __LINE__);                                                               \
    }                                                                                          \
  } while (0)

/* A Layer III header: version 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5. */
static inline void b_mp3_header(bytes *b, unsigned version, unsigned br_idx, unsigned sr_idx, unsigned pad,
                         unsigned mono) {
  uint32_t h = 0xFFE00000u | version << 19 | 1u << 17 | 1u << 16 | br_idx << 12 | sr_idx << 10 |
               pad << 9 | (mono ? 3u : 1u) << 6;
  b_u8(b, h >> 24);
  b_u8(b, h >> 16 & 0xff);
  b_u8(b, h >> 8 & 0xff);
  b_u8(b, h & 0xff);
}

/* n frames of zeros after the header; flen is the frame length the test
 * computes itself (samples / 8 * bitrate / rate + padding). */
static inline void b_mp3_frames(bytes *b, size_t n, unsigned version, unsigned br_idx, unsigned sr_idx,
                         unsigned kbps, unsigned rate) {
  unsigned spf = version == 3 ? 1152 : 576;
  for (size_t i = 0; i < n; i++) {
    unsigned pad = (unsigned)(i % 3 == 1);
    size_t flen = (size_t)spf / 8 * kbps * 1000 / rate + pad;
    b_mp3_header(b, version, br_idx, sr_idx, pad, 1);
    b_zero(b, flen - 4);
  }
}

static inline void b_id3v2(bytes *b, unsigned major, unsigned flags, uint32_t size) {
  b_str(b, "ID3");
  b_u8(b, major);
  b_u8(b, 0);
  b_u8(b, flags);
  b_u8(b, size >> 21 & 0x7f);
  b_u8(b, size >> 14 & 0x7f);
  b_u8(b, size >> 7 & 0x7f);
  b_u8(b, size & 0x7f);
  b_str(b, "TIT2");
  b_zero(b, size - 4);
  if (flags & 0x10) {
    b_str(b, "3DI");
    b_zero(b, 7);
  }
}

/* ---- setup ----------------------------------------------------------------- */

static inline int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "audio_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int teardown(void **state) {
  (void)state;
  DIR *d = opendir(tmpdir);
  if (d == NULL) return -1;
  struct dirent *e;
  char path[512];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
    if (unlink(path) != 0) rmdir(path); /* "adir", if a failed test left it */
  }
  closedir(d);
  return rmdir(tmpdir);
}

#endif /* TESTUTIL_AUDIO_H */
