/* The HTTP providers of the pipeline stages against local servers that speak
 * the providers' wire formats (tests/servers/providers.py: OpenAI, Anthropic,
 * ElevenLabs, a plain PUT target; tests/servers/s3.js: an S3 server that
 * checks AWS SigV4). Real libcurl, real HTTP over 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"
#include "jobq/stages.h"
#include "provsrv.h"
#include "stages/audio.h"
#include "util/fs.h"

#define OPENAI_KEY "sk-test-openai-0123456789abcdef"
#define ANTHROPIC_KEY "sk-ant-test-0123456789abcdef"
#define ELEVEN_KEY "xi-test-0123456789abcdef"
#define UPLOAD_AUTH "Bearer up-0123456789abcdef"

static provsrv_t prov, s3;
static int have_s3;
static char tmpdir[256];

static int group_setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/jobq-providers-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  const char *args[] = {"--openai-key", OPENAI_KEY, "--anthropic-key", ANTHROPIC_KEY,
                        "--elevenlabs-key", ELEVEN_KEY, "--upload-auth", UPLOAD_AUTH, NULL};
  assert_int_equal(provsrv_start("providers.py", args, &prov), 0);
  int rc = provsrv_start("s3.js", NULL, &s3);
  assert_true(rc == 0 || rc == -2);
  have_s3 = rc == 0;
  setenv("TEST_UPLOAD_AUTH", UPLOAD_AUTH, 1);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  provsrv_stop(&prov);
  if (have_s3) provsrv_stop(&s3);
  jobq__rmtree(tmpdir);
  return 0;
}

static int reset(void **state) {
  (void)state;
  assert_int_equal(provsrv_reset(&prov), 0);
  return 0;
}

/* ---- configurations --------------------------------------------------------- */

static char cfg[4096];

static const char *script_cfg(const char *provider, int max_tries) {
  static char b[512];
  snprintf(b, sizeof b,
           "{\"provider\": \"%s\", \"base_url\": \"%s\", \"api_key\": \"%s\", \"max_tries\": %d, "
           "\"backoff_base_ms\": 50, \"timeout_ms\": 2000, \"model\": \"test-model\"}",
           provider, prov.base_url, strcmp(provider, "openai") == 0 ? OPENAI_KEY : ANTHROPIC_KEY,
           max_tries);
  return b;
}

static const char *tts_cfg(const char *mode, int max_tries) {
  static char b[512];
  snprintf(b, sizeof b,
           "{\"provider\": \"elevenlabs\", \"base_url\": \"%s\", \"api_key\": \"%s\", \"mode\": "
           "\"%s\", \"voices\": {\"Alex\": \"voiceAAA\", \"Sam\": \"voiceBBB\"}, \"max_tries\": %d, "
           "\"backoff_base_ms\": 50, \"timeout_ms\": 2000, \"sample_rate\": 24000, \"format\": \"wav\"}",
           prov.base_url, ELEVEN_KEY, mode, max_tries);
  return b;
}

static const char *s3_cfg(const char *secret) {
  static char b[512];
  snprintf(b, sizeof b,
           "{\"provider\": \"s3\", \"endpoint\": \"%s\", \"bucket\": \"podcasts\", \"region\": "
           "\"us-east-1\", \"access_key\": \"S3RVER\", \"secret_key\": \"%s\", \"key_prefix\": "
           "\"shows/\", \"max_tries\": 2, \"backoff_base_ms\": 50}",
           s3.base_url, secret);
  return b;
}

static const char *put_cfg(void) {
  static char b[512];
  snprintf(b, sizeof b,
           "{\"provider\": \"http\", \"url\": \"%s/upload/{key}\", \"auth_env\": \"TEST_UPLOAD_AUTH\", "
           "\"public_base\": \"https://cdn.example.com/pods/\", \"max_tries\": 2, \"backoff_base_ms\": 50}",
           prov.base_url);
  return b;
}

static const char *local_cfg(void) {
  static char b[512];
  snprintf(b, sizeof b, "{\"provider\": \"local\", \"dir\": \"%s/out\"}", tmpdir);
  return b;
}

static const char *pipeline_cfg(const char *script, const char *tts, const char *upload) {
  snprintf(cfg, sizeof cfg, "{\"script\": %s, \"tts\": %s, \"upload\": %s}", script, tts, upload);
  return cfg;
}

/* ---- running ------------------------------------------------------------------- */

static jobq_t *q;

/* The queue's clock when a test sets one (0: the real clock). */
static _Atomic int64_t fake_now;
static int64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

static void open_pipeline(const char *config, int max_attempts) {
  jobq_options_t *o = jobq_options_new();
  if (fake_now) jobq_options_set_clock(o, fake_clock, NULL);
  char url[512], wd[512];
  snprintf(url, sizeof url, "sqlite:%s/jobs.db", tmpdir);
  snprintf(wd, sizeof wd, "%s/work", tmpdir);
  jobq_options_set_storage(o, url);
  jobq_options_set_workdir(o, wd);
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  jobq_pipeline_t *p = jobq_pipeline_new();
  if (jobq_pipeline_add_config(p, config) != 0) fail_msg("config: %s", jobq_last_error());
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  jobq_kind_opts_set_max_attempts(ko, max_attempts);
  jobq_kind_opts_set_backoff(ko, 20, 50, 0);
  assert_int_equal(jobq_register_pipeline(q, "podcast", p, ko), 0);
  jobq_kind_opts_free(ko);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
}

static jobq_job_t *run_job(const char *payload, char id[JOBQ_ID_SIZE]) {
  assert_int_equal(jobq_submit(q, "podcast", payload, NULL, id), 0);
  for (int i = 0; i < 600; i++) {
    jobq_job_t *j = NULL;
    int rc = jobq_wait(q, id, 100, &j); /* a timeout still gives the snapshot */
    if (rc == 0 && jobq_state_is_terminal(jobq_job_state(j))) return j;
    jobq_job_free(j);
  }
  fail_msg("job %s did not finish", id);
  return NULL;
}

static jobq_job_t *run_wait(const char *id) {
  for (int i = 0; i < 600; i++) {
    jobq_job_t *j = NULL;
    int rc = jobq_wait(q, id, 100, &j);
    if (rc == 0 && jobq_state_is_terminal(jobq_job_state(j))) return j;
    jobq_job_free(j);
  }
  fail_msg("job %s did not finish", id);
  return NULL;
}

static void close_q(void) {
  assert_int_equal(jobq_close(q, 5000), 0);
  q = NULL;
}

static const char *PAYLOAD =
    "{\"title\": \"Small bridges\", \"text\": \"Counties must inspect small bridges every four "
    "years. A weak bridge gets a weight limit within thirty days. Records are public.\"}";

/* No key may show up in anything the library says. */
static void assert_no_key(const char *s) {
  if (s == NULL) return;
  const char *keys[] = {OPENAI_KEY, ANTHROPIC_KEY, ELEVEN_KEY, "up-0123456789abcdef", "S3RVER-wrong"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strstr(s, keys[i])) fail_msg("a secret appears in: %s", s);
}

static void assert_job_clean(jobq_job_t *j) {
  assert_no_key(jobq_job_error(j));
  for (int i = 0; i < jobq_job_attempts(j); i++) assert_no_key(jobq_job_attempt_error(j, i));
  char *js = jobq_job_to_json(j);
  assert_no_key(js);
  jobq_free(js);
  assert_no_key(jobq_last_error());
}

static json_t *requests(const char *route) {
  char *t = provsrv_requests(&prov, route);
  assert_non_null(t);
  json_t *v = json_loads(t, 0, NULL);
  free(t);
  assert_non_null(v);
  return v;
}

/* GET of a URL with curl easy; SigV4-signed when userpwd is set. */
static unsigned char *http_get(const char *url, const char *userpwd, size_t *n, long *status);

static size_t sink(char *p, size_t s, size_t m, void *ud) {
  json_t *buf = ud; /* a json string used as a byte buffer would be awkward: use a struct */
  (void)buf;
  (void)p;
  return s * m;
}

typedef struct bytes {
  unsigned char *p;
  size_t n;
} bytes;

static size_t collect(char *p, size_t s, size_t m, void *ud) {
  bytes *b = ud;
  unsigned char *np = realloc(b->p, b->n + s * m + 1);
  if (np == NULL) return 0;
  memcpy(np + b->n, p, s * m);
  b->p = np;
  b->n += s * m;
  return s * m;
}

static unsigned char *http_get(const char *url, const char *userpwd, size_t *n, long *status) {
  (void)sink;
  CURL *c = curl_easy_init();
  bytes b = {NULL, 0};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  if (userpwd) {
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
  }
  struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) {
    free(b.p);
    return NULL;
  }
  *n = b.n;
  return b.p;
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

/* ---- the whole pipeline over HTTP ------------------------------------------------- */

static void check_audio_result(jobq_job_t *j, json_t **out_result) {
  if (jobq_job_state(j) != JOBQ_SUCCEEDED) fail_msg("job %s: %s", jobq_state_name(jobq_job_state(j)), jobq_job_error(j));
  json_t *r = json_loads(jobq_job_result(j), 0, NULL);
  assert_non_null(r);
  const char *file = json_string_value(json_object_get(r, "audioFile"));
  assert_non_null(file);
  size_t n = 0;
  unsigned char *wav = slurp(file, &n);
  assert_non_null(wav);
  jobq__pcm pcm = {0};
  assert_int_equal(jobq__wav_parse(wav, n, &pcm), 0);
  assert_int_equal(pcm.rate, 24000);
  double dur = json_real_value(json_object_get(r, "audioDuration"));
  assert_true(dur > 1.0);
  assert_true(jobq__pcm_seconds(&pcm) > dur - 0.05 && jobq__pcm_seconds(&pcm) < dur + 0.05);
  assert_true(jobq__pcm_rms(&pcm) > 300.0); /* the double's voices are tones, not silence */
  jobq__pcm_free(&pcm);
  free(wav);
  assert_true(json_array_size(json_object_get(r, "dialogue")) >= 2);
  assert_non_null(strstr(json_string_value(json_object_get(r, "transcript")), "Alex: "));
  *out_result = r;
}

static void test_openai_elevenlabs_s3(void **state) {
  (void)state;
  if (!have_s3) skip();
  open_pipeline(pipeline_cfg(script_cfg("openai", 2), tts_cfg("dialogue", 2), s3_cfg("S3RVER")), 2);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job(PAYLOAD, id);
  json_t *r;
  check_audio_result(j, &r);
  assert_job_clean(j);
  /* uploaded: the object's bytes are the file's */
  const char *url = json_string_value(json_object_get(r, "audioUrl"));
  char want[256];
  snprintf(want, sizeof want, "%s/podcasts/shows/%s.wav", s3.base_url, id);
  assert_string_equal(url, want);
  size_t n1 = 0, n2 = 0;
  long status = 0;
  unsigned char *got = http_get(url, "S3RVER:S3RVER", &n2, &status);
  assert_int_equal(status, 200);
  unsigned char *local = slurp(json_string_value(json_object_get(r, "audioFile")), &n1);
  assert_int_equal(n1, n2);
  assert_memory_equal(local, got, n1);
  free(got);
  free(local);
  json_decref(r);
  jobq_job_free(j);
  /* what the providers received */
  json_t *oa = requests("openai");
  assert_int_equal(json_array_size(oa), 1);
  json_t *h = json_object_get(json_array_get(oa, 0), "headers");
  assert_string_equal(json_string_value(json_object_get(h, "authorization")), "Bearer " OPENAI_KEY);
  json_t *body = json_loads(json_string_value(json_object_get(json_array_get(oa, 0), "body")), 0, NULL);
  assert_string_equal(json_string_value(json_object_get(body, "model")), "test-model");
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(body, "messages"), 0), "role")), "system");
  assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(body, "messages"), 1), "content")), "Counties must inspect"));
  json_decref(body);
  json_decref(oa);
  json_t *dl = requests("dialogue");
  assert_true(json_array_size(dl) >= 1);
  h = json_object_get(json_array_get(dl, 0), "headers");
  assert_string_equal(json_string_value(json_object_get(h, "xi-api-key")), ELEVEN_KEY);
  assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 0), "query")), "output_format=pcm_24000");
  body = json_loads(json_string_value(json_object_get(json_array_get(dl, 0), "body")), 0, NULL);
  json_t *in0 = json_array_get(json_object_get(body, "inputs"), 0);
  assert_string_equal(json_string_value(json_object_get(in0, "voice_id")), "voiceAAA");
  json_decref(body);
  json_decref(dl);
  close_q();
}

static void test_anthropic_tts_put(void **state) {
  (void)state;
  open_pipeline(pipeline_cfg(script_cfg("anthropic", 2), tts_cfg("tts", 2), put_cfg()), 2);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job(PAYLOAD, id);
  json_t *r;
  check_audio_result(j, &r);
  char want[256];
  snprintf(want, sizeof want, "https://cdn.example.com/pods/%s.wav", id);
  assert_string_equal(json_string_value(json_object_get(r, "audioUrl")), want);
  /* the PUT target got the file, with the Authorization from the environment */
  char path[128];
  snprintf(path, sizeof path, "/upload/%s.wav", id);
  char *got = NULL;
  long status = 0;
  assert_int_equal(provsrv_get(&prov, path, &got, &status), 0);
  assert_int_equal(status, 200);
  free(got);
  json_decref(r);
  assert_job_clean(j);
  jobq_job_free(j);
  json_t *an = requests("anthropic");
  json_t *h = json_object_get(json_array_get(an, 0), "headers");
  assert_string_equal(json_string_value(json_object_get(h, "x-api-key")), ANTHROPIC_KEY);
  assert_string_equal(json_string_value(json_object_get(h, "anthropic-version")), "2023-06-01");
  json_decref(an);
  /* text-to-speech: one request per turn, each with its speaker's voice */
  json_t *tts = requests("tts");
  assert_true(json_array_size(tts) >= 3);
  assert_string_equal(json_string_value(json_object_get(json_array_get(tts, 0), "path")), "/v1/text-to-speech/voiceAAA");
  assert_string_equal(json_string_value(json_object_get(json_array_get(tts, 1), "path")), "/v1/text-to-speech/voiceBBB");
  json_decref(tts);
  close_q();
}

/* ---- retries, resume, cancel, faults ------------------------------------------------- */

/* TTS fails on the first attempt (every try 500); the retry resumes at TTS:
 * the script provider was called exactly once. */
static void test_resume_at_tts(void **state) {
  (void)state;
  open_pipeline(pipeline_cfg(script_cfg("openai", 1), tts_cfg("dialogue", 2), local_cfg()), 3);
  assert_int_equal(provsrv_fault(&prov, "dialogue", "[{\"status\": 500}, {\"status\": 500}]"), 0);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job(PAYLOAD, id);
  json_t *r;
  check_audio_result(j, &r);
  json_decref(r);
  assert_int_equal(jobq_job_attempts(j), 2);
  const char *e0 = jobq_job_attempt_error(j, 0);
  assert_non_null(strstr(e0, "stage tts: elevenlabs: HTTP 500"));
  assert_job_clean(j);
  jobq_job_free(j);
  assert_int_equal(provsrv_count(&prov, "openai"), 1);
  assert_true(provsrv_count(&prov, "dialogue") >= 3);
  close_q();
}

/* 429 with Retry-After: the client waits and tries again within the attempt. */
static void test_429_retry_after(void **state) {
  (void)state;
  open_pipeline(pipeline_cfg(script_cfg("openai", 3), tts_cfg("dialogue", 2), local_cfg()), 1);
  assert_int_equal(provsrv_fault(&prov, "openai", "{\"status\": 429, \"retry_after\": 1}"), 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job(PAYLOAD, id);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(provsrv_count(&prov, "openai"), 2);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(secs >= 0.95); /* waited for Retry-After: 1 */
  jobq_job_free(j);
  close_q();
}

/* 429 with a Retry-After longer than the stage waits within an attempt
 * (retry_after_max_ms): the job is pushed back by it, on the queue's clock,
 * without counting the attempt, and its error quotes the provider. Once
 * that time has come it runs again as attempt 1. */
static void test_429_long_retry_after_defers(void **state) {
  (void)state;
  const int64_t t0 = INT64_C(1700000000000);
  fake_now = t0;
  char script[512];
  snprintf(script, sizeof script,
           "{\"provider\": \"openai\", \"base_url\": \"%s\", \"api_key\": \"%s\", "
           "\"max_tries\": 3, \"backoff_base_ms\": 50, \"timeout_ms\": 2000, "
           "\"retry_after_max_ms\": 1000, \"model\": \"test-model\"}",
           prov.base_url, OPENAI_KEY);
  open_pipeline(pipeline_cfg(script, tts_cfg("dialogue", 2), local_cfg()), 1);
  assert_int_equal(provsrv_fault(&prov, "openai", "{\"status\": 429, \"retry_after\": 120}"), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "podcast", PAYLOAD, NULL, id), 0);
  jobq_job_t *j = NULL;
  for (int i = 0; i < 600; i++) {
    jobq_job_free(j);
    j = NULL;
    jobq_wait(q, id, 100, &j);
    if (j && jobq_job_state(j) == JOBQ_QUEUED && jobq_job_error(j)) break;
  }
  assert_non_null(j);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_int_equal(jobq_job_attempts(j), 0); /* not counted: max_attempts 1 is still ahead */
  assert_int_equal(jobq_job_run_at(j), t0 + 120000);
  const char *e = jobq_job_error(j);
  assert_non_null(strstr(e, "stage script: openai: HTTP 429"));
  assert_non_null(strstr(e, "Retry-After 120 s"));
  assert_non_null(strstr(e, "pushed back 120000 ms"));
  assert_job_clean(j);
  jobq_job_free(j);
  assert_int_equal(provsrv_count(&prov, "openai"), 1); /* no second try within the attempt */
  /* Its time comes; a submit wakes the workers (the loop's timer runs on
   * real time). */
  fake_now = t0 + 120000;
  char other[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "podcast", PAYLOAD, NULL, other), 0);
  j = run_wait(id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 1);
  jobq_job_free(j);
  j = run_wait(other);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  jobq_job_free(j);
  close_q();
  fake_now = 0;
}

/* After the last attempt the job fails with the provider and the status. */
static void test_last_attempt_names_provider(void **state) {
  (void)state;
  open_pipeline(pipeline_cfg(script_cfg("anthropic", 2), tts_cfg("dialogue", 1), local_cfg()), 2);
  assert_int_equal(provsrv_fault(&prov, "anthropic", "[{\"status\": 529}, {\"status\": 529}, {\"status\": 529}, {\"status\": 529}]"), 0);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 2);
  const char *e = jobq_job_error(j);
  if (strstr(e, "stage script: anthropic: HTTP 529 after 2 tries") == NULL) fail_msg("error: %s", e);
  assert_job_clean(j);
  jobq_job_free(j);
  close_q();
}

/* A 401 is not retried; the key is not in the error. */
static void test_bad_key_not_retried(void **state) {
  (void)state;
  open_pipeline(pipeline_cfg(script_cfg("openai", 3), tts_cfg("dialogue", 1), local_cfg()), 3);
  assert_int_equal(provsrv_fault(&prov, "openai", "{\"status\": 401}"), 0);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_int_equal(provsrv_count(&prov, "openai"), 1);
  assert_non_null(strstr(jobq_job_error(j), "HTTP 401"));
  assert_job_clean(j);
  jobq_job_free(j);
  close_q();
}

/* Cancelling while the TTS request hangs aborts it: the job ends cancelled
 * long before the provider would have answered. */
static void test_cancel_aborts_request(void **state) {
  (void)state;
  open_pipeline(pipeline_cfg(script_cfg("openai", 1), tts_cfg("dialogue", 1), local_cfg()), 1);
  assert_int_equal(provsrv_fault(&prov, "dialogue", "{\"hang_ms\": 30000}"), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "podcast", PAYLOAD, NULL, id), 0);
  /* wait until the dialogue request is at the server */
  for (int i = 0; i < 1000 && provsrv_count(&prov, "dialogue") < 1; i++) usleep(10000);
  assert_int_equal(provsrv_count(&prov, "dialogue"), 1);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(jobq_cancel(q, id), 0);
  jobq_job_t *j = NULL;
  for (int i = 0; i < 300; i++) {
    j = NULL;
    jobq_wait(q, id, 100, &j); /* 0 or JOBQ_ETIMEDOUT, with the snapshot */
    if (j && jobq_state_is_terminal(jobq_job_state(j))) break;
    jobq_job_free(j);
    j = NULL;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_non_null(j);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  jobq_job_free(j);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(secs < 20.0); /* the hang is 30 s: the request was aborted */
  close_q();
}

/* Closing the queue while a provider request is in flight: close returns
 * at once (the request is aborted), and the job goes back to the queue for
 * another worker, its attempt not counted. */
static void test_close_with_request_in_flight(void **state) {
  (void)state;
  open_pipeline(pipeline_cfg(script_cfg("openai", 1), tts_cfg("dialogue", 1), local_cfg()), 3);
  /* four jobs, each with its request hanging */
  assert_int_equal(provsrv_fault(&prov, "openai", "[{\"hang_ms\": 30000}, {\"hang_ms\": 30000}, "
                                                  "{\"hang_ms\": 30000}, {\"hang_ms\": 30000}]"), 0);
  char id[JOBQ_ID_SIZE], ids[4][JOBQ_ID_SIZE];
  for (int k = 0; k < 4; k++) assert_int_equal(jobq_submit(q, "podcast", PAYLOAD, NULL, ids[k]), 0);
  memcpy(id, ids[0], sizeof id);
  for (int i = 0; i < 1000 && provsrv_count(&prov, "openai") < 4; i++) usleep(10000);
  assert_int_equal(provsrv_count(&prov, "openai"), 4);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(jobq_close(q, 0), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  q = NULL;
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(secs < 20.0); /* not the 30 s hang */
  /* a new queue on the same file finds it queued, no attempt counted, and runs it */
  open_pipeline(pipeline_cfg(script_cfg("openai", 1), tts_cfg("dialogue", 1), local_cfg()), 3);
  jobq_job_t *j = NULL;
  for (int i = 0; i < 600; i++) {
    j = NULL;
    jobq_wait(q, id, 100, &j);
    if (j && jobq_state_is_terminal(jobq_job_state(j))) break;
    jobq_job_free(j);
    j = NULL;
  }
  assert_non_null(j);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 1); /* the released attempt did not count */
  jobq_job_free(j);
  for (int k = 1; k < 4; k++) {
    j = run_wait(ids[k]);
    assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
    assert_int_equal(jobq_job_attempts(j), 1);
    jobq_job_free(j);
  }
  close_q();
}

/* Timeouts, malformed answers, non-audio: clear errors naming the provider. */
static void test_faults(void **state) {
  (void)state;
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j;
  open_pipeline(pipeline_cfg(script_cfg("openai", 1), tts_cfg("dialogue", 1), local_cfg()), 1);

  assert_int_equal(provsrv_fault(&prov, "openai", "{\"hang_ms\": 4000}"), 0);
  j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  if (strstr(jobq_job_error(j), "openai") == NULL || strstr(jobq_job_error(j), "no complete response") == NULL)
    fail_msg("timeout error: %s", jobq_job_error(j));
  jobq_job_free(j);

  assert_int_equal(provsrv_fault(&prov, "openai", "{\"malformed\": true}"), 0);
  j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  if (strstr(jobq_job_error(j), "openai: HTTP 200 but the answer is not JSON") == NULL)
    fail_msg("malformed error: %s", jobq_job_error(j));
  jobq_job_free(j);

  assert_int_equal(provsrv_fault(&prov, "openai", "{\"empty_content\": true}"), 0);
  j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_non_null(strstr(jobq_job_error(j), "openai: HTTP 200 but"));
  jobq_job_free(j);

  assert_int_equal(provsrv_fault(&prov, "dialogue", "{\"malformed\": true}"), 0);
  j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  if (strstr(jobq_job_error(j), "elevenlabs: HTTP 200 but the answer is not audio") == NULL)
    fail_msg("non-audio error: %s", jobq_job_error(j));
  jobq_job_free(j);

  assert_int_equal(provsrv_fault(&prov, "dialogue", "{\"truncated\": true}"), 0);
  j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_non_null(strstr(jobq_job_error(j), "elevenlabs"));
  assert_job_clean(j);
  jobq_job_free(j);
  close_q();
}

/* Virtual-host style: https://bucket.host/key (here podcasts.localhost, which
 * libcurl resolves to the loopback address), with a CDN base for the URL. */
static void test_s3_virtual_host(void **state) {
  (void)state;
  if (!have_s3) skip();
  char up[512];
  snprintf(up, sizeof up,
           "{\"provider\": \"s3\", \"endpoint\": \"http://localhost:%d\", \"bucket\": \"podcasts\", "
           "\"style\": \"virtual\", \"access_key\": \"S3RVER\", \"secret_key\": \"S3RVER\", "
           "\"acl\": \"public-read\", \"public_base\": \"https://cdn.example.com\", \"max_tries\": 1}",
           s3.port);
  open_pipeline(pipeline_cfg(script_cfg("openai", 1), tts_cfg("dialogue", 1), up), 1);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job("{\"text\": \"One sentence. Two sentences.\", \"uploadKey\": \"a b+c.wav\"}", id);
  json_t *r;
  check_audio_result(j, &r);
  /* the key was percent-encoded, signed, and stored under its real name */
  assert_string_equal(json_string_value(json_object_get(r, "audioUrl")), "https://cdn.example.com/a%20b%2Bc.wav");
  char url[256];
  snprintf(url, sizeof url, "%s/podcasts/a%%20b%%2Bc.wav", s3.base_url);
  size_t n = 0;
  long status = 0;
  unsigned char *got = http_get(url, NULL, &n, &status); /* public-read: no signature */
  assert_int_equal(status, 200);
  assert_true(n > 44);
  assert_memory_equal(got, "RIFF", 4);
  free(got);
  json_decref(r);
  jobq_job_free(j);
  close_q();
}

static void test_s3_wrong_secret(void **state) {
  (void)state;
  if (!have_s3) skip();
  open_pipeline(pipeline_cfg(script_cfg("openai", 1), tts_cfg("dialogue", 1), s3_cfg("S3RVER-wrong")), 2);
  char id[JOBQ_ID_SIZE];
  jobq_job_t *j = run_job(PAYLOAD, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 1); /* 403 is not retried */
  if (strstr(jobq_job_error(j), "stage upload: s3: HTTP 403") == NULL)
    fail_msg("s3 error: %s", jobq_job_error(j));
  assert_job_clean(j);
  jobq_job_free(j);
  close_q();
}

/* ---- configuration errors ----------------------------------------------------------- */

static void test_config_errors(void **state) {
  (void)state;
  jobq_pipeline_t *p = jobq_pipeline_new();
  unsetenv("OPENAI_API_KEY");
  unsetenv("ANTHROPIC_API_KEY");
  int rc = jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"openai\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "OPENAI_API_KEY"));
  rc = jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"anthropic\", \"api_key_env\": \"MY_KEY_VAR\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "MY_KEY_VAR"));
  setenv("MY_KEY_VAR", "k-from-env-123456", 1);
  assert_int_equal(jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"anthropic\", \"api_key_env\": \"MY_KEY_VAR\"}"), 0);
  rc = jobq_pipeline_add_builtin(p, "tts", "{\"provider\": \"elevenlabs\", \"api_key\": \"k\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "\"voices\""));
  rc = jobq_pipeline_add_builtin(p, "tts", "{\"provider\": \"elevenlabs\", \"api_key\": \"k\", \"voices\": {\"A\": \"v\"}, \"sample_rate\": 12345}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  rc = jobq_pipeline_add_builtin(p, "tts", "{\"provider\": \"elevenlabs\", \"api_key\": \"k\", \"voices\": {\"A\": \"v\"}, \"base_url\": \"ftp://x\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "http"));
  rc = jobq_pipeline_add_builtin(p, "upload", "{\"provider\": \"s3\", \"endpoint\": \"http://x\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "\"bucket\""));
  rc = jobq_pipeline_add_builtin(p, "upload", "{\"provider\": \"s3\", \"endpoint\": \"http://x\", \"bucket\": \"Bad_Bucket\", \"access_key\": \"a\", \"secret_key\": \"b\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  rc = jobq_pipeline_add_builtin(p, "upload", "{\"provider\": \"s3\", \"endpoint\": \"http://x\", \"bucket\": \"b\", \"access_key\": \"a\", \"secret_key\": \"b\", \"key_prefix\": \"../up\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "escapes"));
  rc = jobq_pipeline_add_builtin(p, "upload", "{\"provider\": \"http\", \"url\": \"http://x/no-key\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "{key}"));
  unsetenv("NOPE_AUTH");
  rc = jobq_pipeline_add_builtin(p, "upload", "{\"provider\": \"http\", \"url\": \"http://x/{key}\", \"auth_env\": \"NOPE_AUTH\"}");
  assert_int_equal(rc, JOBQ_ECONFIG);
  assert_non_null(strstr(jobq_last_error(), "NOPE_AUTH"));
  jobq_pipeline_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_openai_elevenlabs_s3, reset),
    cmocka_unit_test_setup(test_anthropic_tts_put, reset),
    cmocka_unit_test_setup(test_resume_at_tts, reset),
    cmocka_unit_test_setup(test_429_retry_after, reset),
    cmocka_unit_test_setup(test_429_long_retry_after_defers, reset),
    cmocka_unit_test_setup(test_last_attempt_names_provider, reset),
    cmocka_unit_test_setup(test_bad_key_not_retried, reset),
    cmocka_unit_test_setup(test_cancel_aborts_request, reset),
    cmocka_unit_test_setup(test_close_with_request_in_flight, reset),
    cmocka_unit_test_setup(test_faults, reset),
    cmocka_unit_test_setup(test_s3_virtual_host, reset),
    cmocka_unit_test_setup(test_s3_wrong_secret, reset),
    cmocka_unit_test(test_config_errors),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
