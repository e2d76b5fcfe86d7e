/* lib/stages/espeak.c: speech from libespeak-ng, its errors, threads and
 * speed. */
/* jobq-test-requires: stages espeak (left out of builds without them) */
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include "testutil_audio.h"

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

int main(void) {
  const struct CMUnitTest tests[] = {
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
