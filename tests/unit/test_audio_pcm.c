/* lib/stages/pcm.c: PCM buffers, silence, duration and level, resampling. */
/* jobq-test-requires: stages (left out of builds without them) */
#include "testutil_audio.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pcm_append),
      cmocka_unit_test(test_pcm_silence),
      cmocka_unit_test(test_pcm_seconds_rms),
      cmocka_unit_test(test_resample_double),
      cmocka_unit_test(test_resample_other_rates),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
