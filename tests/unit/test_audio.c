/* lib/stages audio helpers: PCM buffers, WAV, MP3 through LAME, espeak-ng.
 * Random inputs come from a fixed-seed generator, so runs repeat. Files go
 * to a mkdtemp directory under the working directory, removed at the end. */
/* jobq-test-requires: espeak lame (left out of builds without them) */
#define _GNU_SOURCE /* memmem */
#include "testutil.h"

#include "stages/audio.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9e3779b97f4a7c15ull; }
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}
static size_t rng_below(size_t n) { return (size_t)(rng() % n); }

static char tmpdir[64];

static void path_in(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", tmpdir, name);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static uint8_t *read_all(const char *path, size_t *len) {
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
static uint8_t *exact_copy(const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  assert_non_null(c);
  if (n) memcpy(c, p, n);
  return c;
}

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

/* A byte string under construction. */
typedef struct bytes {
  uint8_t *p;
  size_t n, cap;
} bytes;

static void b_raw(bytes *b, const void *s, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
}
static void b_str(bytes *b, const char *s) { b_raw(b, s, strlen(s)); }
static void b_u8(bytes *b, unsigned v) {
  uint8_t c = (uint8_t)v;
  b_raw(b, &c, 1);
}
static void b_u16(bytes *b, unsigned v) {
  b_u8(b, v & 0xff);
  b_u8(b, v >> 8 & 0xff);
}
static void b_u32(bytes *b, uint32_t v) {
  b_u16(b, v & 0xffff);
  b_u16(b, v >> 16);
}
static void b_zero(bytes *b, size_t n) {
  for (size_t i = 0; i < n; i++) b_u8(b, 0);
}
static void b_free(bytes *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* A fmt chunk body of 16 bytes. */
static void b_fmt(bytes *b, unsigned tag, unsigned ch, uint32_t rate, uint32_t byte_rate, unsigned align,
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
static void b_riff(bytes *b) {
  b_str(b, "RIFF");
  b_u32(b, 0);
  b_str(b, "WAVE");
}
static void b_riff_done(bytes *b) {
  uint32_t v = (uint32_t)(b->n - 8);
  for (int i = 0; i < 4; i++) b->p[4 + i] = (uint8_t)(v >> (8 * i));
}

/* A mono 16-bit WAV of n samples s. */
static void b_wav_mono(bytes *b, uint32_t rate, const int16_t *s, size_t n) {
  b_riff(b);
  b_fmt(b, 1, 1, rate, rate * 2, 2, 16);
  b_str(b, "data");
  b_u32(b, (uint32_t)(2 * n));
  for (size_t i = 0; i < n; i++) b_u16(b, (uint16_t)s[i]);
  b_riff_done(b);
}

static jobq__pcm sine(int rate, double hz, double seconds, double amp) {
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
static double crossing_hz(const jobq__pcm *p) {
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

/* ======================================================================== */
/* PCM                                                                      */
/* ======================================================================== */

static void test_pcm_append(void **state) {
  (void)state;
  jobq__pcm p = {.rate = 8000};
  const int16_t a[3] = {1, -2, 3};
  ASSERT_RC(0, jobq__pcm_append(&p, a, 3));
  ASSERT_RC(0, jobq__pcm_append(&p, NULL, 0));
  ASSERT_RC(JOBQ_EINVAL, jobq__pcm_append(&p, NULL, 1));
  assert_int_equal(p.n, 3);
  /* Appending the buffer to itself, across a reallocation. */
  for (int i = 0; i < 5000; i++) ASSERT_RC(0, jobq__pcm_append(&p, a, 3));
  size_t n = p.n;
  ASSERT_RC(0, jobq__pcm_append(&p, p.samples, p.n));
  assert_int_equal(p.n, 2 * n);
  for (size_t i = 0; i < p.n; i++) assert_int_equal(p.samples[i], a[i % 3]);
  assert_true(p.cap >= p.n);
  jobq__pcm_free(&p);
  assert_null(p.samples);
  assert_int_equal(p.n, 0);
  assert_int_equal(p.cap, 0);
  assert_int_equal(p.rate, 0);
  jobq__pcm_free(NULL);
}

static void test_pcm_silence(void **state) {
  (void)state;
  jobq__pcm p = {.rate = 22050};
  const int16_t one = 7;
  ASSERT_RC(0, jobq__pcm_append(&p, &one, 1));
  static const struct {
    int rate, ms;
    size_t want;
  } cases[] = {{22050, 1000, 22050}, {22050, 10, 220}, {22050, 1, 22}, {22050, 0, 0},
               {44100, 333, 14685}, {48000, 250, 12000}, {24000, 1, 24}};
  size_t total = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    p.rate = cases[i].rate;
    ASSERT_RC(0, jobq__pcm_append_silence(&p, cases[i].ms));
    total += cases[i].want;
    assert_int_equal(p.n, total);
  }
  assert_int_equal(p.samples[0], 7);
  for (size_t i = 1; i < p.n; i++) assert_int_equal(p.samples[i], 0);
  ASSERT_RC(JOBQ_EINVAL, jobq__pcm_append_silence(&p, -1));
  p.rate = 0;
  ASSERT_RC(JOBQ_EINVAL, jobq__pcm_append_silence(&p, 10));
  assert_int_equal(p.n, total);
  jobq__pcm_free(&p);
}

static void test_pcm_seconds_rms(void **state) {
  (void)state;
  jobq__pcm p = {.rate = 22050};
  assert_true(jobq__pcm_rms(&p) == 0.0);
  assert_true(jobq__pcm_seconds(&p) == 0.0);
  int16_t k[100];
  for (int i = 0; i < 100; i++) k[i] = (i & 1) ? 1000 : -1000;
  ASSERT_RC(0, jobq__pcm_append(&p, k, 100));
  assert_true(fabs(jobq__pcm_rms(&p) - 1000.0) < 1e-9);
  jobq__pcm_free(&p);

  p = sine(22050, 441, 1.0, 10000); /* 441 whole periods */
  assert_true(fabs(jobq__pcm_seconds(&p) - 1.0) < 1e-12);
  assert_true(fabs(jobq__pcm_rms(&p) - 10000 / sqrt(2)) < 2);
  p.rate = 11025;
  assert_true(fabs(jobq__pcm_seconds(&p) - 2.0) < 1e-12);
  p.rate = 0;
  assert_true(jobq__pcm_seconds(&p) == 0.0);
  jobq__pcm_free(&p);

  p.rate = 8000;
  for (int i = 0; i < 100; i++) k[i] = -32768;
  ASSERT_RC(0, jobq__pcm_append(&p, k, 100));
  assert_true(jobq__pcm_rms(&p) == 32767.0);
  jobq__pcm_free(&p);
  assert_true(jobq__pcm_rms(NULL) == 0.0);
}

static void test_resample_double(void **state) {
  (void)state;
  jobq__pcm src = sine(22050, 440, 1.0, 12000);
  jobq__pcm dst = {.rate = 44100};
  ASSERT_RC(0, jobq__pcm_append_pcm(&dst, &src));
  assert_int_equal(dst.rate, 44100);
  assert_true(dst.n + 1 >= 2 * src.n && dst.n <= 2 * src.n + 1);
  /* Even outputs sit on input samples, odd ones halfway between. */
  for (size_t k = 0; k + 1 < src.n; k++) {
    assert_int_equal(dst.samples[2 * k], src.samples[k]);
    double mid = (src.samples[k] + src.samples[k + 1]) / 2.0;
    assert_true(fabs(dst.samples[2 * k + 1] - mid) <= 0.5);
  }
  assert_true(fabs(crossing_hz(&dst) - 440) < 2);
  assert_true(fabs(jobq__pcm_seconds(&dst) - 1.0) < 1e-4);
  jobq__pcm_free(&dst);
  jobq__pcm_free(&src);
}

static void test_resample_other_rates(void **state) {
  (void)state;
  static const int pairs[][2] = {{22050, 24000}, {24000, 22050}, {44100, 22050}, {16000, 48000}, {48000, 44100}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    int from = pairs[i][0], to = pairs[i][1];
    jobq__pcm src = sine(from, 440, 0.75, 9000);
    jobq__pcm dst = {.rate = to};
    const int16_t lead[2] = {5, 6};
    ASSERT_RC(0, jobq__pcm_append(&dst, lead, 2));
    ASSERT_RC(0, jobq__pcm_append_pcm(&dst, &src));
    double want = (double)src.n * to / from;
    assert_true(fabs((double)(dst.n - 2) - want) <= 1.0);
    assert_int_equal(dst.samples[0], 5);
    assert_int_equal(dst.samples[1], 6);
    jobq__pcm body = {.samples = dst.samples + 2, .n = dst.n - 2, .rate = to};
    assert_true(fabs(crossing_hz(&body) - 440) < 3);
    jobq__pcm_free(&dst);
    jobq__pcm_free(&src);
  }
  /* rate 0 takes the source's rate and copies exactly */
  jobq__pcm src = sine(24000, 300, 0.1, 5000);
  jobq__pcm dst = {0};
  ASSERT_RC(0, jobq__pcm_append_pcm(&dst, &src));
  assert_int_equal(dst.rate, 24000);
  assert_int_equal(dst.n, src.n);
  assert_memory_equal(dst.samples, src.samples, src.n * sizeof *src.samples);
  /* a source without a rate is refused, dst untouched */
  src.rate = 0;
  ASSERT_RC(JOBQ_EINVAL, jobq__pcm_append_pcm(&dst, &src));
  assert_int_equal(dst.n, src.n);
  /* an empty source at another rate adds nothing */
  jobq__pcm empty = {.rate = 8000};
  ASSERT_RC(0, jobq__pcm_append_pcm(&dst, &empty));
  assert_int_equal(dst.n, src.n);
  assert_int_equal(dst.rate, 24000);
  jobq__pcm_free(&dst);
  jobq__pcm_free(&src);
}

/* ======================================================================== */
/* WAV                                                                      */
/* ======================================================================== */

static void test_wav_write_bytes(void **state) {
  (void)state;
  jobq__pcm p = {.rate = 22050};
  static const int16_t edge[] = {0, 1, -1, 32767, -32768, 0x1234, -0x1234};
  ASSERT_RC(0, jobq__pcm_append(&p, edge, 7));
  rng_seed(11);
  for (int i = 0; i < 994; i++) {
    int16_t v = (int16_t)rng();
    ASSERT_RC(0, jobq__pcm_append(&p, &v, 1));
  }
  char path[128], tmp[140];
  path_in(path, sizeof path, "a.wav");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  ASSERT_RC(0, jobq__wav_write(path, &p));
  assert_false(exists(tmp));

  size_t len;
  uint8_t *b = read_all(path, &len);
  assert_int_equal(len, 44 + 2 * 1001);
  assert_memory_equal(b, "RIFF", 4);
  assert_int_equal(le32(b + 4), 36 + 2 * 1001);
  assert_memory_equal(b + 8, "WAVEfmt ", 8);
  assert_int_equal(le32(b + 16), 16);
  assert_int_equal(le16(b + 20), 1);     /* PCM */
  assert_int_equal(le16(b + 22), 1);     /* mono */
  assert_int_equal(le32(b + 24), 22050); /* rate */
  assert_int_equal(le32(b + 28), 44100); /* byte rate */
  assert_int_equal(le16(b + 32), 2);     /* block align */
  assert_int_equal(le16(b + 34), 16);    /* bits */
  assert_memory_equal(b + 36, "data", 4);
  assert_int_equal(le32(b + 40), 2 * 1001);
  for (size_t i = 0; i < p.n; i++) assert_int_equal((int16_t)le16(b + 44 + 2 * i), p.samples[i]);

  jobq__pcm back = {0};
  ASSERT_RC(0, jobq__wav_parse(b, len, &back));
  assert_int_equal(back.rate, 22050);
  assert_int_equal(back.n, p.n);
  assert_memory_equal(back.samples, p.samples, p.n * sizeof *p.samples);
  jobq__pcm_free(&back);
  free(b);

  /* Rewriting replaces the file whole. */
  p.n = 3;
  p.rate = 8000;
  ASSERT_RC(0, jobq__wav_write(path, &p));
  b = read_all(path, &len);
  assert_int_equal(len, 50);
  assert_int_equal(le32(b + 24), 8000);
  free(b);
  unlink(path);

  /* Refusals leave no file behind. */
  p.rate = 0;
  ASSERT_RC(JOBQ_EINVAL, jobq__wav_write(path, &p));
  assert_false(exists(path));
  p.rate = 8000;
  char bad[160], badtmp[170];
  snprintf(bad, sizeof bad, "%s/no/such/dir.wav", tmpdir);
  snprintf(badtmp, sizeof badtmp, "%s.tmp", bad);
  ASSERT_RC(JOBQ_EIO, jobq__wav_write(bad, &p));
  assert_non_null(strstr(jobq_last_error(), "dir.wav"));
  assert_false(exists(badtmp));
  /* The rename fails (a directory is in the way): the .tmp goes. */
  path_in(bad, sizeof bad, "adir");
  snprintf(badtmp, sizeof badtmp, "%s.tmp", bad);
  assert_int_equal(mkdir(bad, 0700), 0);
  ASSERT_RC(JOBQ_EIO, jobq__wav_write(bad, &p));
  assert_false(exists(badtmp));
  assert_int_equal(rmdir(bad), 0);
  jobq__pcm_free(&p);
}

static void test_wav_parse_chunks(void **state) {
  (void)state;
  const int16_t s[5] = {100, -200, 300, -32768, 32767};
  /* LIST (odd size, padded) before fmt, fact between fmt and data, and an
   * odd-sized chunk after data that the parser never needs. */
  bytes b = {0};
  b_riff(&b);
  b_str(&b, "LIST");
  b_u32(&b, 5);
  b_str(&b, "INFOx");
  b_u8(&b, 0); /* pad */
  b_fmt(&b, 1, 1, 16000, 32000, 2, 16);
  b_str(&b, "fact");
  b_u32(&b, 4);
  b_u32(&b, 5);
  b_str(&b, "data");
  b_u32(&b, 10);
  for (int i = 0; i < 5; i++) b_u16(&b, (uint16_t)s[i]);
  b_str(&b, "junk");
  b_u32(&b, 3);
  b_str(&b, "abc");
  b_riff_done(&b);
  jobq__pcm p = {0};
  ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
  assert_int_equal(p.rate, 16000);
  assert_int_equal(p.n, 5);
  assert_memory_equal(p.samples, s, sizeof s);
  /* A second parse appends at the same rate. */
  ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
  assert_int_equal(p.n, 10);
  assert_memory_equal(p.samples + 5, s, sizeof s);
  jobq__pcm_free(&p);
  /* Into a buffer at twice the rate: resampled. */
  p.rate = 32000;
  ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
  assert_int_equal(p.rate, 32000);
  assert_int_equal(p.n, 10);
  assert_int_equal(p.samples[0], 100);
  assert_int_equal(p.samples[2], -200);
  jobq__pcm_free(&p);
  /* Bytes after an honest RIFF size are not read. */
  b_str(&b, "trailing garbage");
  ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
  assert_int_equal(p.n, 5);
  jobq__pcm_free(&p);
  b_free(&b);
}

static void test_wav_parse_stereo(void **state) {
  (void)state;
  static const int16_t lr[][2] = {{1000, 3000}, {-100, -301}, {32767, 32767}, {-32768, -32768}, {32767, -32768}, {7, 8}};
  static const int16_t want[] = {2000, -200, 32767, -32768, 0, 7};
  bytes b = {0};
  b_riff(&b);
  b_fmt(&b, 1, 2, 44100, 44100 * 4, 4, 16);
  b_str(&b, "data");
  b_u32(&b, 6 * 4);
  for (int i = 0; i < 6; i++) {
    b_u16(&b, (uint16_t)lr[i][0]);
    b_u16(&b, (uint16_t)lr[i][1]);
  }
  b_riff_done(&b);
  jobq__pcm p = {0};
  ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
  assert_int_equal(p.rate, 44100);
  assert_int_equal(p.n, 6);
  assert_memory_equal(p.samples, want, sizeof want);
  jobq__pcm_free(&p);
  b_free(&b);
}

static void b_fmt_extensible(bytes *b, unsigned channels, unsigned sub) {
  static const uint8_t tail[14] = {0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71};
  b_str(b, "fmt ");
  b_u32(b, 40);
  b_u16(b, 0xFFFE);
  b_u16(b, channels);
  b_u32(b, 24000);
  b_u32(b, 24000 * 2 * channels);
  b_u16(b, 2 * channels);
  b_u16(b, 16);
  b_u16(b, 22);           /* cbSize */
  b_u16(b, 16);           /* valid bits */
  b_u32(b, channels == 1 ? 4 : 3); /* channel mask */
  b_u16(b, sub);
  b_raw(b, tail, sizeof tail);
}

static void test_wav_parse_extensible_and_streamed(void **state) {
  (void)state;
  bytes b = {0};
  b_riff(&b);
  b_fmt_extensible(&b, 1, 1);
  b_str(&b, "data");
  b_u32(&b, 4);
  b_u16(&b, 1234);
  b_u16(&b, (uint16_t)-1234);
  b_riff_done(&b);
  jobq__pcm p = {0};
  ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
  assert_int_equal(p.rate, 24000);
  assert_int_equal(p.n, 2);
  assert_int_equal(p.samples[0], 1234);
  assert_int_equal(p.samples[1], -1234);
  jobq__pcm_free(&p);
  b_free(&b);

  /* A streamed WAV (OpenAI: both sizes 0xFFFFFFFF; ElevenLabs: 0x7FFFFFFF;
   * an unfinished libsndfile header: both 0) runs to the end of the input;
   * a half sample at the end is dropped. */
  static const uint32_t ph[][2] = {{0xFFFFFFFFu, 0xFFFFFFFFu}, {0x7FFFFFFFu, 0x7FFFFFFFu}, {0, 0}};
  for (int i = 0; i < 3; i++) {
    b_riff(&b);
    b_fmt(&b, 1, 1, 24000, 48000, 2, 16);
    b_str(&b, "data");
    b_u32(&b, ph[i][1]);
    b_u16(&b, 1);
    b_u16(&b, 2);
    b_u16(&b, 3);
    b_u8(&b, 9);
    for (int k = 0; k < 4; k++) b.p[4 + k] = (uint8_t)(ph[i][0] >> (8 * k));
    ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
    assert_int_equal(p.n, 3);
    assert_int_equal(p.samples[2], 3);
    jobq__pcm_free(&p);
    b_free(&b);
  }
}

/* Bad WAVs: each one, built by a function of its own, must be refused with
 * JOBQ_EPROVIDER and leave the output buffer as it was. */
typedef void (*wav_case_fn)(bytes *b);

static void wc_empty(bytes *b) { (void)b; }
static void wc_three(bytes *b) { b_str(b, "RIF"); }
static void wc_riff_only(bytes *b) {
  b_str(b, "RIFF");
  b_u32(b, 4);
}
static void wc_not_wave(bytes *b) {
  b_str(b, "RIFF");
  b_u32(b, 4);
  b_str(b, "AVI ");
}
static void wc_rifx(bytes *b) {
  b_str(b, "RIFX");
  b_u32(b, 4);
  b_str(b, "WAVE");
}
static void wc_no_chunks(bytes *b) {
  b_riff(b);
  b_riff_done(b);
}
static void wc_fmt_truncated(bytes *b) {
  b_riff(b);
  b_str(b, "fmt ");
  b_u32(b, 16);
  b_u16(b, 1);
  b_u16(b, 1);
  b_u32(b, 8000);
  b_u16(b, 0);
}
static void wc_fmt_short(bytes *b) {
  b_riff(b);
  b_str(b, "fmt ");
  b_u32(b, 14);
  b_u16(b, 1);
  b_u16(b, 1);
  b_u32(b, 8000);
  b_u32(b, 16000);
  b_u16(b, 2);
  b_str(b, "data");
  b_u32(b, 2);
  b_u16(b, 0);
  b_riff_done(b);
}
static void data2(bytes *b) {
  b_str(b, "data");
  b_u32(b, 4);
  b_u32(b, 0x00010002);
  b_riff_done(b);
}
static void wc_float(bytes *b) {
  b_riff(b);
  b_fmt(b, 3, 1, 8000, 32000, 4, 32);
  data2(b);
}
static void wc_8bit(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 8000, 1, 8);
  data2(b);
}
static void wc_24bit(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 24000, 3, 24);
  data2(b);
}
static void wc_alaw(bytes *b) {
  b_riff(b);
  b_fmt(b, 6, 1, 8000, 8000, 1, 8);
  data2(b);
}
static void wc_mp3_in_wav(bytes *b) {
  b_riff(b);
  b_fmt(b, 0x55, 1, 8000, 2000, 1, 0);
  data2(b);
}
static void wc_zero_channels(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 0, 8000, 0, 0, 16);
  data2(b);
}
static void wc_three_channels(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 3, 8000, 48000, 6, 16);
  data2(b);
}
static void wc_rate_zero(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 0, 0, 2, 16);
  data2(b);
}
static void wc_rate_huge(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 0x7fffffff, 0xfffffffe, 2, 16);
  data2(b);
}
static void wc_bad_align(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 32000, 4, 16);
  data2(b);
}
static void wc_bad_byte_rate(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 8000, 2, 16);
  data2(b);
}
static void wc_data_first(bytes *b) {
  b_riff(b);
  b_str(b, "data");
  b_u32(b, 4);
  b_u32(b, 0);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  b_riff_done(b);
}
static void wc_no_data(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  b_riff_done(b);
}
static void wc_data_too_long(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  b_str(b, "data");
  b_u32(b, 1000);
  b_zero(b, 10);
  b_riff_done(b);
}
static void wc_data_too_long_streamish(bytes *b) {
  /* the RIFF size is a placeholder, but the data size is a real number */
  wc_data_too_long(b);
  for (int i = 0; i < 4; i++) b->p[4 + i] = 0xFF;
}
static void wc_data_odd(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  b_str(b, "data");
  b_u32(b, 3);
  b_zero(b, 4);
  b_riff_done(b);
}
static void wc_stereo_partial_frame(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 2, 8000, 32000, 4, 16);
  b_str(b, "data");
  b_u32(b, 6);
  b_zero(b, 6);
  b_riff_done(b);
}
static void wc_list_too_long(bytes *b) {
  b_riff(b);
  b_str(b, "LIST");
  b_u32(b, 0x10000);
  b_zero(b, 40);
  b_riff_done(b);
}
static void wc_two_fmt(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  data2(b);
}
static void wc_ext_float(bytes *b) {
  b_riff(b);
  b_fmt_extensible(b, 1, 3);
  data2(b);
}
static void wc_riff_size_small(bytes *b) {
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  data2(b);
  b->p[4] = 2; /* RIFF size 2: not even "WAVE" fits */
  b->p[5] = b->p[6] = b->p[7] = 0;
}
static void wc_riff_cuts_data(bytes *b) {
  /* an honest-looking RIFF size that ends inside the data chunk */
  b_riff(b);
  b_fmt(b, 1, 1, 8000, 16000, 2, 16);
  b_str(b, "data");
  b_u32(b, 8);
  b_zero(b, 8);
  b_riff_done(b);
  b->p[4] -= 4;
}
static void wc_random(bytes *b) {
  rng_seed(99);
  for (int i = 0; i < 1000; i++) b_u8(b, (unsigned)rng());
}
static void wc_random_riff(bytes *b) {
  b_riff(b);
  rng_seed(7);
  for (int i = 0; i < 500; i++) b_u8(b, (unsigned)rng());
  b_riff_done(b);
}
static void wc_mp3(bytes *b) {
  for (int i = 0; i < 3; i++) {
    b_u8(b, 0xFF);
    b_u8(b, 0xFB);
    b_u8(b, 0x90);
    b_u8(b, 0x00);
    b_zero(b, 413);
  }
}

static void test_wav_parse_rejects(void **state) {
  (void)state;
  static const struct {
    const char *name;
    wav_case_fn fn;
  } cases[] = {
      {"empty", wc_empty},
      {"3 bytes", wc_three},
      {"RIFF only", wc_riff_only},
      {"not WAVE", wc_not_wave},
      {"RIFX", wc_rifx},
      {"no chunks", wc_no_chunks},
      {"fmt truncated", wc_fmt_truncated},
      {"fmt of 14 bytes", wc_fmt_short},
      {"float", wc_float},
      {"8-bit", wc_8bit},
      {"24-bit", wc_24bit},
      {"A-law", wc_alaw},
      {"MP3 in WAV", wc_mp3_in_wav},
      {"0 channels", wc_zero_channels},
      {"3 channels", wc_three_channels},
      {"rate 0", wc_rate_zero},
      {"rate 2^31-1", wc_rate_huge},
      {"block align", wc_bad_align},
      {"byte rate", wc_bad_byte_rate},
      {"data before fmt", wc_data_first},
      {"no data", wc_no_data},
      {"data longer than the file", wc_data_too_long},
      {"data longer than the file, RIFF placeholder", wc_data_too_long_streamish},
      {"odd data size", wc_data_odd},
      {"partial stereo frame", wc_stereo_partial_frame},
      {"LIST past the end", wc_list_too_long},
      {"two fmt", wc_two_fmt},
      {"extensible float", wc_ext_float},
      {"RIFF size 2", wc_riff_size_small},
      {"RIFF size inside data", wc_riff_cuts_data},
      {"random bytes", wc_random},
      {"RIFF/WAVE then random bytes", wc_random_riff},
      {"MP3 frames", wc_mp3},
  };
  static const int16_t keep[3] = {1, 2, 3};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bytes b = {0};
    cases[i].fn(&b);
    uint8_t *c = exact_copy(b.p, b.n);
    jobq__pcm p = {.rate = 22050};
    ASSERT_RC(0, jobq__pcm_append(&p, keep, 3));
    jobq_storage_set_error("");
    int rc = jobq__wav_parse(c, b.n, &p);
    if (rc != JOBQ_EPROVIDER) {
      print_error("case '%s': rc %d (%s): %s\n", cases[i].name, rc, jobq_err_name(rc), jobq_last_error());
      fail();
    }
    assert_non_null(strstr(jobq_last_error(), "WAV"));
    assert_int_equal(p.n, 3);
    assert_int_equal(p.rate, 22050);
    assert_memory_equal(p.samples, keep, sizeof keep);
    jobq__pcm_free(&p);
    free(c);
    b_free(&b);
  }
  jobq__pcm p = {0};
  ASSERT_RC(JOBQ_EINVAL, jobq__wav_parse(NULL, 4, &p));
  ASSERT_RC(JOBQ_EINVAL, jobq__wav_parse("RIFF", 4, NULL));
}

/* Every prefix of a valid WAV is refused (its data size is honest). */
static void test_wav_parse_prefixes(void **state) {
  (void)state;
  int16_t s[50];
  for (int i = 0; i < 50; i++) s[i] = (int16_t)(i * 300 - 7000);
  bytes b = {0};
  b_wav_mono(&b, 22050, s, 50);
  for (size_t n = 0; n < b.n; n++) {
    uint8_t *c = exact_copy(b.p, n);
    jobq__pcm p = {0};
    ASSERT_RC(JOBQ_EPROVIDER, jobq__wav_parse(c, n, &p));
    assert_int_equal(p.n, 0);
    free(c);
  }
  jobq__pcm p = {0};
  ASSERT_RC(0, jobq__wav_parse(b.p, b.n, &p));
  assert_memory_equal(p.samples, s, sizeof s);
  jobq__pcm_free(&p);
  b_free(&b);
}

/* ======================================================================== */
/* MP3                                                                      */
/* ======================================================================== */

/* A Layer III header: version 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5. */
static void b_mp3_header(bytes *b, unsigned version, unsigned br_idx, unsigned sr_idx, unsigned pad,
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
static void b_mp3_frames(bytes *b, size_t n, unsigned version, unsigned br_idx, unsigned sr_idx,
                         unsigned kbps, unsigned rate) {
  unsigned spf = version == 3 ? 1152 : 576;
  for (size_t i = 0; i < n; i++) {
    unsigned pad = (unsigned)(i % 3 == 1);
    size_t flen = (size_t)spf / 8 * kbps * 1000 / rate + pad;
    b_mp3_header(b, version, br_idx, sr_idx, pad, 1);
    b_zero(b, flen - 4);
  }
}

static void probe_ok(const uint8_t *p, size_t n, double want, double tol) {
  uint8_t *c = exact_copy(p, n);
  double d = -1;
  ASSERT_RC(0, jobq__mp3_probe(c, n, &d));
  if (fabs(d - want) > tol) {
    print_error("duration %.6f s, expected %.6f +- %.3f\n", d, want, tol);
    fail();
  }
  ASSERT_RC(0, jobq__mp3_probe(c, n, NULL));
  free(c);
}

static void test_mp3_probe_synthetic(void **state) {
  (void)state;
  bytes b = {0};
  b_mp3_frames(&b, 100, 3, 9, 0, 128, 44100); /* 417/418-byte frames */
  probe_ok(b.p, b.n, 100 * 1152 / 44100.0, 1e-9);
  b_free(&b);
  b_mp3_frames(&b, 37, 2, 8, 0, 64, 22050); /* MPEG-2, 208/209 bytes */
  probe_ok(b.p, b.n, 37 * 576 / 22050.0, 1e-9);
  b_free(&b);
  b_mp3_frames(&b, 5, 0, 1, 2, 8, 8000); /* MPEG-2.5, 72/73 bytes */
  probe_ok(b.p, b.n, 5 * 576 / 8000.0, 1e-9);
  b_free(&b);
  b_mp3_frames(&b, 2, 3, 14, 1, 320, 48000); /* the minimum: two frames */
  probe_ok(b.p, b.n, 2 * 1152 / 48000.0, 1e-9);
  b_free(&b);
}

static void b_id3v2(bytes *b, unsigned major, unsigned flags, uint32_t size) {
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

static void test_mp3_probe_tags(void **state) {
  (void)state;
  double want = 20 * 1152 / 44100.0;
  bytes b = {0};
  b_id3v2(&b, 3, 0, 300); /* syncsafe 300: 00 00 02 2c */
  assert_int_equal(b.p[8], 2);
  assert_int_equal(b.p[9], 0x2c);
  b_mp3_frames(&b, 20, 3, 9, 0, 128, 44100);
  probe_ok(b.p, b.n, want, 1e-9);
  b_str(&b, "TAG"); /* ID3v1 at the end */
  b_zero(&b, 125);
  probe_ok(b.p, b.n, want, 1e-9);
  b_free(&b);

  b_id3v2(&b, 4, 0x10, 5000); /* v2.4 with a footer */
  b_mp3_frames(&b, 20, 3, 9, 0, 128, 44100);
  b_str(&b, "APETAGEX");
  b_zero(&b, 24);
  probe_ok(b.p, b.n, want, 1e-9);
  b_free(&b);
}

static void test_mp3_probe_rejects(void **state) {
  (void)state;
  struct {
    const char *name;
    bytes b;
  } c[24];
  size_t n = 0;
  memset(c, 0, sizeof c);
#define CASE(label) (c[n].name = (label), &c[n++].b)
  bytes *b;
  CASE("empty");
  b = CASE("3 bytes");
  b_str(b, "\xff\xfb\x90");
  b = CASE("a WAV");
  int16_t s[100] = {0};
  b_wav_mono(b, 44100, s, 100);
  b = CASE("random bytes");
  rng_seed(5);
  for (int i = 0; i < 4000; i++) b_u8(b, (unsigned)rng());
  b = CASE("one frame only");
  b_mp3_frames(b, 1, 3, 9, 0, 128, 44100);
  b = CASE("second header missing, more bytes present");
  b_mp3_frames(b, 1, 3, 9, 0, 128, 44100);
  b_zero(b, 2000);
  b = CASE("second header one byte late");
  b_mp3_frames(b, 1, 3, 9, 0, 128, 44100);
  b_u8(b, 0);
  b_mp3_frames(b, 5, 3, 9, 0, 128, 44100);
  b = CASE("second frame at another sample rate");
  b_mp3_frames(b, 1, 3, 9, 0, 128, 44100);
  b_mp3_frames(b, 3, 3, 9, 1, 128, 48000);
  b = CASE("sample rate changes later");
  b_mp3_frames(b, 5, 3, 9, 0, 128, 44100);
  b_mp3_frames(b, 3, 3, 9, 1, 128, 48000);
  b = CASE("first frame cut short");
  b_mp3_frames(b, 1, 3, 9, 0, 128, 44100);
  b->n -= 10;
  b = CASE("last frame cut short");
  b_mp3_frames(b, 10, 3, 9, 0, 128, 44100);
  b->n -= 100;
  b = CASE("garbage between frames");
  b_mp3_frames(b, 10, 3, 9, 0, 128, 44100);
  b_str(b, "xyz");
  b_mp3_frames(b, 10, 3, 9, 0, 128, 44100);
  b = CASE("stray bytes at the end");
  b_mp3_frames(b, 10, 3, 9, 0, 128, 44100);
  b_zero(b, 2);
  b = CASE("Layer II");
  for (int i = 0; i < 3; i++) {
    b_str(b, "\xff\xfd\x90");
    b_u8(b, 0xc0);
    b_zero(b, 413);
  }
  b = CASE("free format");
  for (int i = 0; i < 3; i++) {
    b_str(b, "\xff\xfb\x00");
    b_u8(b, 0xc0);
    b_zero(b, 413);
  }
  b = CASE("bitrate index 15");
  b_str(b, "\xff\xfb\xf0\xc0");
  b_zero(b, 2000);
  b = CASE("reserved version");
  b_str(b, "\xff\xeb\x90\xc0");
  b_zero(b, 2000);
  b = CASE("ID3 tag only");
  b_id3v2(b, 3, 0, 100);
  b = CASE("ID3 size past the end");
  b_id3v2(b, 3, 0, 100);
  b->p[8] = 0x7f;
  b_mp3_frames(b, 3, 3, 9, 0, 128, 44100);
  b = CASE("ID3 size not syncsafe");
  b_id3v2(b, 3, 0, 100);
  b->p[9] |= 0x80;
  b_mp3_frames(b, 3, 3, 9, 0, 128, 44100);
  b = CASE("ID3 header cut");
  b_str(b, "ID3\x03");
  b = CASE("ID3 then garbage");
  b_id3v2(b, 3, 0, 100);
  b_str(b, "not audio at all, just text");
#undef CASE
  for (size_t i = 0; i < n; i++) {
    uint8_t *cp = exact_copy(c[i].b.p, c[i].b.n);
    double d = -7;
    jobq_storage_set_error("");
    int rc = jobq__mp3_probe(cp, c[i].b.n, &d);
    if (rc != JOBQ_EPROVIDER) {
      print_error("case '%s': rc %d (%s)\n", c[i].name, rc, jobq_err_name(rc));
      fail();
    }
    assert_non_null(strstr(jobq_last_error(), "MP3"));
    assert_true(d == -7);
    free(cp);
    b_free(&c[i].b);
  }
  ASSERT_RC(JOBQ_EINVAL, jobq__mp3_probe(NULL, 10, NULL));
}

/* info: LAME writes its Info tag, which needs a frame of about 180 bytes
 * (not at 144-byte frames: 48 kbps at 24 kHz, 32 kbps at 16 kHz). With it,
 * the probe trims the encoder delay and padding and is exact. */
static void mp3_roundtrip(int rate, double seconds, int kbps, int info) {
  jobq__pcm p = sine(rate, 440, seconds, 8000);
  char path[128], tmp[140];
  path_in(path, sizeof path, "t.mp3");
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  ASSERT_RC(0, jobq__mp3_write(path, &p, kbps));
  assert_false(exists(tmp));
  size_t len;
  uint8_t *b = read_all(path, &len);
  assert_true(len > 1000);
  assert_int_equal(b[0], 0xFF);
  assert_int_equal(b[1] & 0xE0, 0xE0);
  assert_true((memmem(b, len < 200 ? len : 200, "Info", 4) != NULL) == info);
  double d = -1;
  ASSERT_RC(0, jobq__mp3_probe(b, len, &d));
  if (fabs(d - jobq__pcm_seconds(&p)) > (info ? 0.001 : 0.1)) {
    print_error("%d Hz %d kbps: MP3 lasts %.4f s, PCM %.4f s\n", rate, kbps, d, jobq__pcm_seconds(&p));
    fail();
  }
  /* The same stream behind an ID3v2 tag. */
  bytes t = {0};
  b_id3v2(&t, 3, 0, 1000);
  b_raw(&t, b, len);
  double d2 = -1;
  ASSERT_RC(0, jobq__mp3_probe(t.p, t.n, &d2));
  assert_true(d2 == d);
  b_free(&t);
  free(b);
  unlink(path);
  jobq__pcm_free(&p);
}

static void test_mp3_write_probe(void **state) {
  (void)state;
  mp3_roundtrip(22050, 2.0, 0, 1);
  mp3_roundtrip(44100, 3.5, 64, 1);
  mp3_roundtrip(24000, 1.25, 48, 0);
  mp3_roundtrip(16000, 0.3, 32, 0);
  mp3_roundtrip(48000, 1.0, 320, 1);

  /* No samples, and one: still a valid stream, of exactly that length. */
  char path[128];
  path_in(path, sizeof path, "short.mp3");
  jobq__pcm p = {.rate = 22050};
  for (int k = 0; k < 2; k++) {
    ASSERT_RC(0, jobq__mp3_write(path, &p, 0));
    size_t len;
    uint8_t *b = read_all(path, &len);
    double d = -1;
    ASSERT_RC(0, jobq__mp3_probe(b, len, &d));
    assert_true(fabs(d - k / 22050.0) < 1e-9);
    free(b);
    const int16_t one = 1000;
    ASSERT_RC(0, jobq__pcm_append(&p, &one, 1));
  }
  unlink(path);
  jobq__pcm_free(&p);
}

static void test_mp3_write_errors(void **state) {
  (void)state;
  jobq__pcm p = sine(22050, 440, 0.2, 8000);
  char path[128];
  path_in(path, sizeof path, "e.mp3");
  ASSERT_RC(JOBQ_EINVAL, jobq__mp3_write(path, &p, 100));
  ASSERT_RC(JOBQ_EINVAL, jobq__mp3_write(path, &p, -1));
  ASSERT_RC(JOBQ_EINVAL, jobq__mp3_write(NULL, &p, 0));
  p.rate = 0;
  ASSERT_RC(JOBQ_EINVAL, jobq__mp3_write(path, &p, 0));
  assert_false(exists(path));
  p.rate = 22050;
  char bad[160], badtmp[170];
  snprintf(bad, sizeof bad, "%s/missing/x.mp3", tmpdir);
  snprintf(badtmp, sizeof badtmp, "%s.tmp", bad);
  ASSERT_RC(JOBQ_EIO, jobq__mp3_write(bad, &p, 0));
  assert_false(exists(badtmp));
  jobq__pcm_free(&p);
}

/* ======================================================================== */
/* fuzz-style: random and mutated inputs must never crash either parser     */
/* ======================================================================== */

static void test_parsers_fuzz(void **state) {
  (void)state;
  /* seeds: a mono and a stereo WAV, an ID3-tagged MP3 stream, and an MP3
   * from LAME */
  bytes seeds[4] = {{0}};
  int16_t s[300];
  for (int i = 0; i < 300; i++) s[i] = (int16_t)(i * 97);
  b_wav_mono(&seeds[0], 22050, s, 300);
  b_riff(&seeds[1]);
  b_str(&seeds[1], "LIST");
  b_u32(&seeds[1], 3);
  b_str(&seeds[1], "abc");
  b_u8(&seeds[1], 0);
  b_fmt(&seeds[1], 1, 2, 8000, 32000, 4, 16);
  b_str(&seeds[1], "data");
  b_u32(&seeds[1], 400);
  b_raw(&seeds[1], s, 400);
  b_riff_done(&seeds[1]);
  b_id3v2(&seeds[2], 4, 0x10, 50);
  b_mp3_frames(&seeds[2], 12, 2, 8, 0, 64, 22050);
  b_str(&seeds[2], "TAG");
  b_zero(&seeds[2], 125);
  jobq__pcm p = sine(22050, 300, 0.5, 9000);
  char path[128];
  path_in(path, sizeof path, "f.mp3");
  ASSERT_RC(0, jobq__mp3_write(path, &p, 32));
  jobq__pcm_free(&p);
  size_t mlen;
  uint8_t *m = read_all(path, &mlen);
  b_raw(&seeds[3], m, mlen);
  free(m);
  unlink(path);

  rng_seed(20260101);
  size_t wav_ok = 0, mp3_ok = 0;
  uint8_t *buf = malloc(130000);
  assert_non_null(buf);
  for (int it = 0; it < 10000; it++) {
    size_t n;
    if (it % 5 == 4) {
      n = rng_below(600);
      for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rng();
      if (n >= 12 && rng_below(2)) memcpy(buf, "RIFF\xff\xff\xff\xffWAVE", 12);
    } else {
      const bytes *sd = &seeds[it % 4];
      n = sd->n;
      memcpy(buf, sd->p, n);
      int muts = 1 + (int)rng_below(6);
      for (int k = 0; k < muts; k++) {
        size_t at = rng_below(n ? n : 1);
        switch (rng_below(6)) {
          case 0: buf[at] ^= (uint8_t)(1u << rng_below(8)); break;
          case 1: buf[at] = (uint8_t)rng(); break;
          case 2: /* a size field's worth of random bytes */
            for (size_t j = at; j < at + 4 && j < n; j++) buf[j] = (uint8_t)rng();
            break;
          case 3: buf[at] = 0xFF; break;
          case 4: n = at; break; /* truncate */
          default: /* duplicate a span (frames or chunks twice) */
            if (n < 60000) {
              size_t span = rng_below(n - at + 1);
              memmove(buf + at + span, buf + at, n - at);
              n += span;
            }
        }
      }
    }
    uint8_t *c = exact_copy(buf, n);
    jobq__pcm out = {0};
    int rc = jobq__wav_parse(c, n, &out);
    assert_true(rc == 0 || rc == JOBQ_EPROVIDER);
    if (rc == 0) {
      wav_ok++;
      assert_true(out.rate >= 1000);
      assert_true(out.n <= n / 2);
    }
    jobq__pcm_free(&out);
    double d = -1;
    rc = jobq__mp3_probe(c, n, &d);
    assert_true(rc == 0 || rc == JOBQ_EPROVIDER);
    if (rc == 0) {
      mp3_ok++;
      assert_true(d >= 0 && d < 1000);
    }
    free(c);
  }
  free(buf);
  print_message("fuzz: 10000 inputs, %zu parsed as WAV, %zu as MP3\n", wav_ok, mp3_ok);
  assert_true(wav_ok > 0 && mp3_ok > 0);
  for (int i = 0; i < 4; i++) b_free(&seeds[i]);
}

/* ======================================================================== */
/* espeak-ng                                                                */
/* ======================================================================== */

static const char *sentence = "The quick brown fox jumps over the lazy dog, and then it runs away.";

/* Speech has a clear level; these thresholds are far below it and far above
 * digital silence. */
#define SPEECH_RMS 300.0

static void check_speech(const jobq__pcm *p, double min_seconds) {
  assert_int_equal(p->rate, 22050);
  if (jobq__pcm_seconds(p) <= min_seconds || jobq__pcm_rms(p) <= SPEECH_RMS) {
    print_error("speech of %.3f s at rms %.1f\n", jobq__pcm_seconds(p), jobq__pcm_rms(p));
    fail();
  }
}

/* Must run before any other espeak test: the first call initialises
 * espeak-ng, which must print nothing, on either stream. */
static void test_espeak_quiet(void **state) {
  (void)state;
  char path[128];
  path_in(path, sizeof path, "stdio.txt");
  fflush(stdout);
  fflush(stderr);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  int o1 = dup(1), o2 = dup(2);
  dup2(fd, 1);
  dup2(fd, 2);
  jobq__pcm p = {0};
  int rc1 = jobq__espeak_synth("Hello there. Is anyone listening?", "en-us", 0, &p);
  int rc2 = jobq__espeak_synth("Unknown voice.", "xx", 0, &p);
  fflush(stdout);
  fflush(stderr);
  dup2(o1, 1);
  dup2(o2, 2);
  close(o1);
  close(o2);
  close(fd);
  ASSERT_RC(0, rc1);
  ASSERT_RC(JOBQ_ECONFIG, rc2);
  size_t len;
  uint8_t *out = read_all(path, &len);
  if (len != 0) {
    print_error("espeak printed %zu bytes: %.*s\n", len, (int)(len > 300 ? 300 : len), (const char *)out);
    fail();
  }
  free(out);
  unlink(path);
  check_speech(&p, 0.5);
  jobq__pcm_free(&p);
}

static void test_espeak_sentence(void **state) {
  (void)state;
  jobq__pcm p = {0};
  ASSERT_RC(0, jobq__espeak_synth(sentence, "en-us", 175, &p));
  check_speech(&p, 1.0);
  /* Slower speech lasts longer. */
  jobq__pcm slow = {0};
  ASSERT_RC(0, jobq__espeak_synth(sentence, "en-us", 90, &slow));
  check_speech(&slow, 1.0);
  assert_true(jobq__pcm_seconds(&slow) > 1.4 * jobq__pcm_seconds(&p));
  /* Appending to a buffer at another rate resamples. */
  jobq__pcm hi = {.rate = 44100};
  ASSERT_RC(0, jobq__espeak_synth(sentence, NULL, 0, &hi));
  assert_int_equal(hi.rate, 44100);
  assert_true(jobq__pcm_seconds(&hi) > 1.0 && jobq__pcm_rms(&hi) > SPEECH_RMS);
  /* A clip ends with its speech: espeak's trailing silence, which depends
   * on the call before, is cut, so the same text gives the same length. */
  assert_int_not_equal(p.samples[p.n - 1], 0);
  jobq__pcm t1 = {0}, t2 = {0};
  ASSERT_RC(0, jobq__espeak_synth("Three.", "en-us+m3", 0, &t1));
  ASSERT_RC(0, jobq__espeak_synth("One thread says this sentence, about apples and pears.", "en-us", 0, &t2));
  jobq__pcm_free(&t2);
  ASSERT_RC(0, jobq__espeak_synth("Three.", "en-us+m3", 0, &t2));
  assert_true(fabs(jobq__pcm_seconds(&t1) - jobq__pcm_seconds(&t2)) < 0.005);
  jobq__pcm_free(&t1);
  jobq__pcm_free(&t2);
  /* Non-ASCII text in UTF-8. */
  jobq__pcm fr = {0};
  ASSERT_RC(0, jobq__espeak_synth("Ça va très bien, merci. Où est la gare ?", "fr", 0, &fr));
  check_speech(&fr, 1.0);
  jobq__pcm_free(&p);
  jobq__pcm_free(&slow);
  jobq__pcm_free(&hi);
  jobq__pcm_free(&fr);
}

/* Median fundamental frequency of the voiced 40 ms frames, by
 * autocorrelation over 70..400 Hz. */
static double median_f0(const jobq__pcm *p) {
  size_t frame = (size_t)p->rate / 25, nf = 0;
  size_t lo = (size_t)p->rate / 400, hi = (size_t)p->rate / 70;
  double *f0 = calloc(p->n / frame + 1, sizeof *f0);
  assert_non_null(f0);
  for (size_t s = 0; s + frame + hi < p->n; s += frame) {
    const int16_t *x = p->samples + s;
    double e = 0;
    for (size_t i = 0; i < frame; i++) e += (double)x[i] * x[i];
    if (sqrt(e / frame) < 1500) continue;
    double best = 0;
    size_t lag = 0;
    for (size_t l = lo; l <= hi; l++) {
      double r = 0;
      for (size_t i = 0; i < frame; i++) r += (double)x[i] * x[i + l];
      if (r > best) {
        best = r;
        lag = l;
      }
    }
    if (lag && best > 0.5 * e) f0[nf++] = (double)p->rate / lag;
  }
  assert_true(nf >= 5);
  for (size_t i = 1; i < nf; i++)
    for (size_t j = i; j > 0 && f0[j - 1] > f0[j]; j--) {
      double t = f0[j];
      f0[j] = f0[j - 1];
      f0[j - 1] = t;
    }
  double m = f0[nf / 2];
  free(f0);
  return m;
}

static void test_espeak_voices_differ(void **state) {
  (void)state;
  jobq__pcm m = {0}, f = {0};
  ASSERT_RC(0, jobq__espeak_synth(sentence, "en-us+m3", 0, &m));
  ASSERT_RC(0, jobq__espeak_synth(sentence, "en-gb+f2", 0, &f));
  check_speech(&m, 1.0);
  check_speech(&f, 1.0);
  assert_true(m.n != f.n || memcmp(m.samples, f.samples, m.n * sizeof *m.samples) != 0);
  /* Different voices, not merely different noise: the female variant
   * speaks clearly higher. */
  double fm = median_f0(&m), ff = median_f0(&f);
  print_message("median F0: en-us+m3 %.0f Hz, en-gb+f2 %.0f Hz\n", fm, ff);
  assert_true(ff > 1.3 * fm);
  jobq__pcm_free(&m);
  jobq__pcm_free(&f);
}

static void test_espeak_errors(void **state) {
  (void)state;
  static const int16_t keep[2] = {4, 5};
  jobq__pcm p = {.rate = 22050};
  ASSERT_RC(0, jobq__pcm_append(&p, keep, 2));
  ASSERT_RC(JOBQ_ECONFIG, jobq__espeak_synth("hi", "xx", 0, &p));
  assert_string_equal(jobq_last_error(), "espeak-ng has no voice 'xx'");
  ASSERT_RC(JOBQ_ECONFIG, jobq__espeak_synth("hi", "en+nosuchvariant", 0, &p));
  assert_non_null(strstr(jobq_last_error(), "nosuchvariant"));
  ASSERT_RC(JOBQ_ECONFIG, jobq__espeak_synth("hi", "en+99", 0, &p));
  static const char *const bad[] = {"", "+m3", "en+", "../../etc/passwd", "en us", "gmw/en",
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                    "en+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                    "en+m3+f2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = jobq__espeak_synth("hi", bad[i], 0, &p);
    if (rc != JOBQ_ECONFIG) {
      print_error("voice '%s': rc %d\n", bad[i], rc);
      fail();
    }
  }
  ASSERT_RC(JOBQ_EINVAL, jobq__espeak_synth("", "en", 0, &p));
  ASSERT_RC(JOBQ_EINVAL, jobq__espeak_synth(NULL, "en", 0, &p));
  ASSERT_RC(JOBQ_EINVAL, jobq__espeak_synth("hi", "en", 10, &p));
  ASSERT_RC(JOBQ_EINVAL, jobq__espeak_synth("hi", "en", 1000, &p));
  ASSERT_RC(JOBQ_EINVAL, jobq__espeak_synth("hi", "en", 0, NULL));
  assert_int_equal(p.n, 2);
  assert_memory_equal(p.samples, keep, sizeof keep);
  /* numbered variants and named ones work */
  ASSERT_RC(0, jobq__espeak_synth("hi", "en+3", 0, &p));
  ASSERT_RC(0, jobq__espeak_synth("hi", "en-us+13", 0, &p));
  ASSERT_RC(0, jobq__espeak_synth("hi", "en-GB+Alex", 0, &p));
  assert_true(p.n > 2);
  jobq__pcm_free(&p);
}

/* Control character 1 starts an espeak embedded command ("\0011A": volume
 * 1%); text must be read as text. */
static void test_espeak_control_chars(void **state) {
  (void)state;
  jobq__pcm a = {0}, b = {0};
  ASSERT_RC(0, jobq__espeak_synth("This is spoken at the normal volume, all of it.", "en", 0, &a));
  ASSERT_RC(0, jobq__espeak_synth("\0011A This is spoken at the normal volume, all of it.", "en", 0, &b));
  assert_true(jobq__pcm_rms(&b) > 0.7 * jobq__pcm_rms(&a));
  jobq__pcm_free(&a);
  jobq__pcm_free(&b);
}

typedef struct synth_job {
  const char *text, *voice;
  double ref_seconds;
  int rounds;
  int rc;
  int bad; /* a result was silent or of the wrong length */
  double bad_seconds, bad_rms;
} synth_job;

static void *synth_thread(void *arg) {
  synth_job *j = arg;
  for (int r = 0; r < j->rounds; r++) {
    jobq__pcm p = {0};
    j->rc = jobq__espeak_synth(j->text, j->voice, 0, &p);
    if (j->rc != 0) return NULL;
    /* espeak-ng adds a little randomness, so lengths vary slightly; two
     * syntheses mixed into one buffer would be far off. */
    if (p.rate != 22050 || jobq__pcm_rms(&p) <= SPEECH_RMS ||
        fabs(jobq__pcm_seconds(&p) - j->ref_seconds) > 0.1 * j->ref_seconds) {
      j->bad = 1;
      j->bad_seconds = jobq__pcm_seconds(&p);
      j->bad_rms = jobq__pcm_rms(&p);
    }
    jobq__pcm_free(&p);
  }
  return NULL;
}

static void test_espeak_threads(void **state) {
  (void)state;
  synth_job jobs[4] = {
      {.text = "One thread says this sentence, about apples and pears.", .voice = "en-us"},
      {.text = "A second thread says something else entirely, and takes rather longer to say it.", .voice = "en-gb+f2"},
      {.text = "Three.", .voice = "en-us+m3"},
      {.text = "Der vierte Faden spricht Deutsch, und zwar ziemlich lange.", .voice = "de"},
  };
  for (int i = 0; i < 4; i++) {
    jobq__pcm p = {0};
    ASSERT_RC(0, jobq__espeak_synth(jobs[i].text, jobs[i].voice, 0, &p));
    jobs[i].ref_seconds = jobq__pcm_seconds(&p);
    jobs[i].rounds = 3;
    jobq__pcm_free(&p);
  }
  pthread_t t[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, synth_thread, &jobs[i]), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  for (int i = 0; i < 4; i++) {
    ASSERT_RC(0, jobs[i].rc);
    if (jobs[i].bad) {
      print_error("'%s' (%s): %.3f s at rms %.0f, alone %.3f s\n", jobs[i].text, jobs[i].voice,
                  jobs[i].bad_seconds, jobs[i].bad_rms, jobs[i].ref_seconds);
      fail();
    }
  }
}

/* Prints how much faster than real time espeak-ng speaks; never asserts
 * it (machines and sanitizer builds differ). */
static void test_espeak_speed(void **state) {
  (void)state;
  static const char *para =
      "Background jobs are the quiet workers of most applications. They send the emails, resize "
      "the pictures, charge the cards and build the reports that nobody wants to wait for while a "
      "page loads. A good job queue keeps them safe when a process crashes, retries them when a "
      "network call fails, and tells the rest of the program what happened. ";
  /* about 60 words, five times over: some 300 words */
  char text[2048] = "";
  for (int i = 0; i < 5; i++) strcat(text, para);
  jobq__pcm p = {0};
  struct timespec a, b;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
  ASSERT_RC(0, jobq__espeak_synth(text, "en-us", 175, &p));
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
  double cpu = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  print_message("espeak-ng: %.1f s of audio in %.3f s of CPU: %.0fx real time\n", jobq__pcm_seconds(&p), cpu,
                cpu > 0 ? jobq__pcm_seconds(&p) / cpu : 0.0);
  check_speech(&p, 60.0);
  jobq__pcm_free(&p);
}

/* ---- setup ----------------------------------------------------------------- */

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "audio_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pcm_append),
      cmocka_unit_test(test_pcm_silence),
      cmocka_unit_test(test_pcm_seconds_rms),
      cmocka_unit_test(test_resample_double),
      cmocka_unit_test(test_resample_other_rates),
      cmocka_unit_test(test_wav_write_bytes),
      cmocka_unit_test(test_wav_parse_chunks),
      cmocka_unit_test(test_wav_parse_stereo),
      cmocka_unit_test(test_wav_parse_extensible_and_streamed),
      cmocka_unit_test(test_wav_parse_rejects),
      cmocka_unit_test(test_wav_parse_prefixes),
      cmocka_unit_test(test_mp3_probe_synthetic),
      cmocka_unit_test(test_mp3_probe_tags),
      cmocka_unit_test(test_mp3_probe_rejects),
      cmocka_unit_test(test_mp3_write_probe),
      cmocka_unit_test(test_mp3_write_errors),
      cmocka_unit_test(test_parsers_fuzz),
      cmocka_unit_test(test_espeak_quiet), /* first espeak call of the process */
      cmocka_unit_test(test_espeak_sentence),
      cmocka_unit_test(test_espeak_voices_differ),
      cmocka_unit_test(test_espeak_errors),
      cmocka_unit_test(test_espeak_control_chars),
      cmocka_unit_test(test_espeak_threads),
      cmocka_unit_test(test_espeak_speed),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
