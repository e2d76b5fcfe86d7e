/* The WAV and MP3 parsers (wav.c, mp3_probe.c) on random and mutated
 * inputs: they must never crash, read out of bounds or hang. */
/* jobq-test-requires: stages lame (left out of builds without them) */
#include "testutil_audio.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parsers_fuzz),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
