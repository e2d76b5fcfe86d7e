/* lib/stages/wav.c: writing WAV files and parsing them, with every way a
 * file can be malformed refused. */
/* jobq-test-requires: stages (left out of builds without them) */
#include "testutil_audio.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wav_write_bytes),
      cmocka_unit_test(test_wav_parse_chunks),
      cmocka_unit_test(test_wav_parse_stereo),
      cmocka_unit_test(test_wav_parse_extensible_and_streamed),
      cmocka_unit_test(test_wav_parse_rejects),
      cmocka_unit_test(test_wav_parse_prefixes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
