/* What this build of libjobq-stages was built with (CMake JOBQ_WITH_ESPEAK,
 * JOBQ_WITH_LAME): a provider that is in the build is accepted at
 * configuration, one that was left out is refused there with JOBQ_ENOTSUP and
 * a sentence naming the option, never at run time and never with a crash.
 * CI runs this in the full build and in one with both options off. */
#include <jobq.h>
#include <jobq/stages.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static int add(const char *module, const char *cfg) {
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_non_null(p);
  int rc = jobq_pipeline_add_builtin(p, module, cfg);
  jobq_pipeline_free(p);
  return rc;
}

#if !defined(JOBQ_HAVE_ESPEAK) || !defined(JOBQ_HAVE_LAME)
static void expect_refused(int rc, const char *sentence) {
  assert_int_equal(rc, JOBQ_ENOTSUP);
  if (strstr(jobq_last_error(), sentence) == NULL)
    fail_msg("jobq_last_error() is '%s', expected it to contain '%s'", jobq_last_error(), sentence);
}
#endif

static void test_espeak(void **state) {
  (void)state;
  int rc = add("tts", "{\"provider\": \"espeak\"}");
#ifdef JOBQ_HAVE_ESPEAK
  if (rc != 0) fail_msg("espeak refused in a build with espeak-ng: %s", jobq_last_error());
#else
  expect_refused(rc, "tts provider 'espeak': libjobq-stages was built without espeak-ng "
                     "(JOBQ_WITH_ESPEAK=OFF)");
#endif
}

/* MP3 is refused for every TTS provider, the HTTP one included, since the
 * audio is always encoded here. */
static void test_mp3(void **state) {
  (void)state;
  const char *eleven = "{\"provider\": \"elevenlabs\", \"api_key\": \"k\", \"base_url\": "
                       "\"http://127.0.0.1:9\", \"default_voices\": [\"v1\"], \"format\": \"mp3\"}";
  int rc = add("tts", eleven);
#ifdef JOBQ_HAVE_LAME
  if (rc != 0) fail_msg("MP3 refused in a build with LAME: %s", jobq_last_error());
#else
  expect_refused(rc, "tts provider 'elevenlabs': \"format\": \"mp3\" needs LAME, and "
                     "libjobq-stages was built without LAME (JOBQ_WITH_LAME=OFF)");
#endif
  /* WAV needs neither. */
  const char *wav = "{\"provider\": \"elevenlabs\", \"api_key\": \"k\", \"base_url\": "
                    "\"http://127.0.0.1:9\", \"default_voices\": [\"v1\"], \"format\": \"wav\"}";
  rc = add("tts", wav);
  if (rc != 0) fail_msg("WAV refused: %s", jobq_last_error());
#if defined(JOBQ_HAVE_ESPEAK) && !defined(JOBQ_HAVE_LAME)
  expect_refused(add("tts", "{\"provider\": \"espeak\", \"format\": \"mp3\"}"), "needs LAME");
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_espeak), cmocka_unit_test(test_mp3)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
