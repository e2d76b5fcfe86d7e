/* lib/stages/mp3_probe.c and mp3.c: MP3 durations from frame headers (with
 * ID3 tags) and MP3 files written through LAME. */
/* jobq-test-requires: stages lame (left out of builds without them) */
#define _GNU_SOURCE /* memmem */
#include "testutil_audio.h"

/* ======================================================================== */
/* MP3                                                                      */
/* ======================================================================== */

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mp3_probe_synthetic),
      cmocka_unit_test(test_mp3_probe_tags),
      cmocka_unit_test(test_mp3_probe_rejects),
      cmocka_unit_test(test_mp3_write_probe),
      cmocka_unit_test(test_mp3_write_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
