/* The TTS module's shared parts: voices per speaker, the output fields. */
#include "stages/tts.h"
#include "stages/audio.h"
#include "util/mem.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

void jobq__voices_free(jobq__voices *v) {
  for (int i = 0; i < v->n; i++) free(v->speaker[i]), free(v->voice[i]);
  for (int i = 0; i < v->n_fallback; i++) free(v->fallback[i]);
  memset(v, 0, sizeof *v);
}

static int add_fallback(jobq__voices *v, const char *voice) {
  if ((v->fallback[v->n_fallback] = jobq__strdup(voice)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "tts: out of memory");
  v->n_fallback++;
  return 0;
}

int jobq__voices_parse(const json_t *cfg, const char *what, const char *fallback_key,
                    const char *def0, const char *def1, jobq__voices *v) {
  memset(v, 0, sizeof *v);
  int rc = 0;
  const json_t *voices = json_object_get(cfg, "voices");
  if (voices && !json_is_object(voices)) {
    rc = jobq__err(JOBQ_ECONFIG, "tts: \"voices\" must be an object {speaker: %s}", what);
    goto fail;
  }
  const char *k;
  json_t *val;
  json_object_foreach((json_t *)voices, k, val) {
    if (!json_is_string(val) || json_string_length(val) == 0 || v->n == JOBQ_TTS_MAX_VOICES) {
      rc = jobq__err(JOBQ_ECONFIG, "tts: \"voices\": '%.64s' must be a %s (at most %d voices)", k,
                     what, JOBQ_TTS_MAX_VOICES);
      goto fail;
    }
    v->speaker[v->n] = jobq__strdup(k);
    v->voice[v->n] = jobq__strdup(json_string_value(val));
    v->n++;
    if (!v->speaker[v->n - 1] || !v->voice[v->n - 1]) {
      rc = jobq__err(JOBQ_ENOMEM, "tts: out of memory");
      goto fail;
    }
  }
  const json_t *defs = fallback_key ? json_object_get(cfg, fallback_key) : NULL;
  if (defs) {
    if (!json_is_array(defs) || json_array_size(defs) < 1 || json_array_size(defs) > 2) {
      rc = jobq__err(JOBQ_ECONFIG, "tts: \"%s\" must be a list of one or two %ss", fallback_key,
                     what);
      goto fail;
    }
    for (size_t i = 0; i < json_array_size(defs); i++) {
      const char *s = json_string_value(json_array_get(defs, i));
      if (s == NULL || *s == '\0') {
        rc = jobq__err(JOBQ_ECONFIG, "tts: \"%s\" must hold %ss", fallback_key, what);
        goto fail;
      }
      if ((rc = add_fallback(v, s)) != 0) goto fail;
    }
  } else {
    if (def0 && (rc = add_fallback(v, def0)) != 0) goto fail;
    if (def1 && (rc = add_fallback(v, def1)) != 0) goto fail;
  }
  return 0;
fail:
  jobq__voices_free(v);
  return rc;
}

const char *jobq__voices_pick(const jobq__voices *v, const char *speaker, const char **seen,
                           int *n_seen) {
  for (int i = 0; i < v->n; i++)
    if (strcmp(v->speaker[i], speaker) == 0) return v->voice[i];
  if (v->n_fallback == 0) return NULL;
  for (int i = 0; i < *n_seen; i++)
    if (strcmp(seen[i], speaker) == 0) return v->fallback[i % v->n_fallback];
  if (*n_seen < 64) seen[(*n_seen)++] = speaker;
  return v->fallback[(*n_seen - 1) % v->n_fallback];
}

int jobq__tts_format(const json_t *cfg, const char *provider, int *mp3) {
  const char *fmt;
  int rc = jobq__cfg_str(cfg, "tts", "format", 0, &fmt);
  if (rc) return rc;
  if (fmt && strcmp(fmt, "mp3") && strcmp(fmt, "wav"))
    return jobq__err(JOBQ_ECONFIG, "tts: \"format\" must be \"wav\" or \"mp3\", not '%.32s'", fmt);
  *mp3 = fmt && strcmp(fmt, "mp3") == 0;
  if (*mp3 && !jobq__mp3_available())
    return jobq__err(JOBQ_ENOTSUP,
                     "tts provider '%s': \"format\": \"mp3\" needs LAME, and libjobq-stages was "
                     "built without LAME (JOBQ_WITH_LAME=OFF); use \"wav\"",
                     provider);
  return 0;
}

int jobq__tts_succeed(jobq_stage_t *st, json_t *in, const char *path, int mp3, double seconds) {
  if (json_object_set_new(in, "audioFile", json_string(path)) ||
      json_object_set_new(in, "audioFormat", json_string(mp3 ? "mp3" : "wav")) ||
      json_object_set_new(in, "audioDuration",
                          json_real((double)(long long)(seconds * 100 + 0.5) / 100))) {
    json_decref(in);
    return jobq_stage_fail(st, "out of memory", 1);
  }
  jobq_stage_progress(st, 100, NULL);
  return jobq__stage_succeed_json(st, in);
}
