/* The built-in providers, their defaults, and the helpers they share for
 * configuration and JSON in and out. */
#include "stages/stage_int.h"
#include "util/mem.h"
#include "util/err.h"
#include "util/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const jobq__provider jobq__script_template, jobq__script_openai, jobq__script_anthropic;
extern const jobq__provider jobq__tts_espeak, jobq__tts_elevenlabs;
extern const jobq__provider jobq__upload_local, jobq__upload_s3, jobq__upload_http;

static const jobq__provider *const providers[] = {
  &jobq__script_template, &jobq__script_openai, &jobq__script_anthropic,
  &jobq__tts_espeak,      &jobq__tts_elevenlabs,
  &jobq__upload_local,    &jobq__upload_s3,      &jobq__upload_http,
};

/* name NULL: any provider of the module (to tell "unknown module" apart). */
const jobq__provider *jobq__provider_find(const char *module, const char *name) {
  for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
    if (strcmp(providers[i]->module, module) == 0 &&
        (name == NULL || strcmp(providers[i]->name, name) == 0))
      return providers[i];
  return NULL;
}

/* After the progress the podcast service reported: script 10-25 %, audio
 * 30-75 %, upload 80-95 %. */
void jobq__module_defaults(const char *module, int *from, int *to, const char **step) {
  if (strcmp(module, "script") == 0) {
    *from = 10, *to = 25, *step = "Generating script...";
  } else if (strcmp(module, "tts") == 0) {
    *from = 30, *to = 75, *step = "Generating audio...";
  } else {
    *from = 80, *to = 95, *step = "Uploading audio...";
  }
}

int jobq__cfg_str(const json_t *cfg, const char *module, const char *key, int required,
               const char **out) {
  const json_t *v = json_object_get(cfg, key);
  *out = NULL;
  if (v == NULL || json_is_null(v)) {
    if (required) return jobq__err(JOBQ_ECONFIG, "%s: \"%s\" is required", module, key);
    return 0;
  }
  if (!json_is_string(v) || json_string_length(v) == 0)
    return jobq__err(JOBQ_ECONFIG, "%s: \"%s\" must be a non-empty string", module, key);
  *out = json_string_value(v);
  return 0;
}

int jobq__cfg_int(const json_t *cfg, const char *module, const char *key, long long lo,
               long long hi, long long *out) {
  const json_t *v = json_object_get(cfg, key);
  if (v == NULL) return 0; /* keep the default in *out */
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return jobq__err(JOBQ_ECONFIG, "%s: \"%s\" must be an integer in %lld..%lld", module, key,
                     lo, hi);
  *out = json_integer_value(v);
  return 0;
}

int jobq__cfg_secret(const json_t *cfg, const char *module, const char *provider,
                  const char *key, const char *env_key, const char *env_default, char **out) {
  const char *v, *env;
  int rc;
  *out = NULL;
  if ((rc = jobq__cfg_str(cfg, module, key, 0, &v)) != 0) return rc;
  if ((rc = jobq__cfg_str(cfg, module, env_key, 0, &env)) != 0) return rc;
  if (env == NULL) env = env_default;
  if (v == NULL) v = getenv(env);
  if (v == NULL || *v == '\0')
    return jobq__err(JOBQ_ECONFIG,
                     "%s provider '%s': no %s: set the environment variable %s or \"%s\"", module,
                     provider, key, env, key);
  if ((*out = jobq__strdup(v)) == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", module);
  return 0;
}

json_t *jobq__stage_input_object(jobq_stage_t *st) {
  json_error_t e;
  /* Without JSON_ALLOW_NUL, jansson refuses a string with \u0000 in it,
   * which a C string would cut: such input fails the stage. */
  json_t *in = json_loads(jobq_stage_input(st), 0, &e);
  if (in == NULL) {
    jobq__stage_failf(st, 0, "the input is not a JSON object: %s", e.text);
    return NULL;
  }
  if (!json_is_object(in)) {
    json_decref(in);
    jobq__stage_failf(st, 0, "the input is not a JSON object");
    return NULL;
  }
  return in;
}

int jobq__stage_succeed_json(jobq_stage_t *st, json_t *obj) {
  char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
  json_decref(obj);
  if (text == NULL) return jobq_stage_fail(st, "out of memory", 1);
  int rc = jobq_stage_succeed(st, text);
  free(text);
  return rc;
}

int jobq__stage_failf(jobq_stage_t *st, int retryable, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  jobq__utf8_fix(msg); /* parts of any origin (a provider's answer, a path), cut to fit */
  return jobq_stage_fail(st, msg, retryable);
}
