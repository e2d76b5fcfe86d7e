/* The offline TTS provider: each turn of the dialogue spoken by espeak-ng
 * with its host's voice, joined with short pauses into one WAV or MP3 file
 * in the job's work directory. */
#include "stages/audio.h"
#include "stages/stage_int.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOICES 16

typedef struct esp {
  char *speaker[MAX_VOICES]; /* configured speaker -> voice */
  char *voice[MAX_VOICES];
  int n;
  char *host_voice[2];       /* voices for other speakers, by first appearance */
  int mp3;
  long long pause_ms, rate_wpm, kbps;
} esp;

static void esp_free(void *p) {
  esp *e = p;
  if (e == NULL) return;
  for (int i = 0; i < e->n; i++) free(e->speaker[i]), free(e->voice[i]);
  free(e->host_voice[0]);
  free(e->host_voice[1]);
  free(e);
}

static int esp_configure(const json_t *cfg, void **out) {
  esp *e = calloc(1, sizeof *e);
  if (e == NULL) return jobq__err(JOBQ_ENOMEM, "tts: out of memory");
  int rc = 0;
  e->pause_ms = 350;
  e->rate_wpm = 165;
  e->kbps = 128;
  const char *fmt;
  if ((rc = jq_cfg_str(cfg, "tts", "format", 0, &fmt))) goto fail;
  if (fmt && strcmp(fmt, "mp3") && strcmp(fmt, "wav")) {
    rc = jobq__err(JOBQ_ECONFIG, "tts: \"format\" must be \"wav\" or \"mp3\", not '%.32s'", fmt);
    goto fail;
  }
  e->mp3 = fmt && strcmp(fmt, "mp3") == 0;
  if ((rc = jq_cfg_int(cfg, "tts", "pause_ms", 0, 5000, &e->pause_ms)) ||
      (rc = jq_cfg_int(cfg, "tts", "rate_wpm", 80, 450, &e->rate_wpm)) ||
      (rc = jq_cfg_int(cfg, "tts", "bitrate", 32, 320, &e->kbps)))
    goto fail;
  const json_t *voices = json_object_get(cfg, "voices");
  if (voices && !json_is_object(voices)) {
    rc = jobq__err(JOBQ_ECONFIG, "tts: \"voices\" must be an object {speaker: voice}");
    goto fail;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)voices, k, v) {
    if (!json_is_string(v) || json_string_length(v) == 0 || e->n == MAX_VOICES) {
      rc = jobq__err(JOBQ_ECONFIG, "tts: \"voices\": '%.64s' must name an espeak-ng voice (at most %d)",
                     k, MAX_VOICES);
      goto fail;
    }
    e->speaker[e->n] = strdup(k);
    e->voice[e->n] = strdup(json_string_value(v));
    e->n++;
    if (!e->speaker[e->n - 1] || !e->voice[e->n - 1]) goto nomem;
  }
  e->host_voice[0] = strdup("en-us+m3");
  e->host_voice[1] = strdup("en-gb+f3");
  if (!e->host_voice[0] || !e->host_voice[1]) goto nomem;
  /* Every configured voice must exist: try each now, not at 3 a.m. */
  for (int i = 0; i < e->n + 2; i++) {
    const char *voice = i < e->n ? e->voice[i] : e->host_voice[i - e->n];
    jq_pcm probe = {0};
    rc = jq_espeak_synth("a", voice, (int)e->rate_wpm, &probe);
    jq_pcm_free(&probe);
    if (rc) {
      char msg[400];
      snprintf(msg, sizeof msg, "tts provider 'espeak': %s", jobq_last_error());
      jobq__set_detail(msg);
      goto fail;
    }
  }
  *out = e;
  return 0;
nomem:
  rc = jobq__err(JOBQ_ENOMEM, "tts: out of memory");
fail:
  esp_free(e);
  return rc;
}

static const char *voice_for(const esp *e, const char *speaker, const char **seen, int *n_seen) {
  for (int i = 0; i < e->n; i++)
    if (strcmp(e->speaker[i], speaker) == 0) return e->voice[i];
  for (int i = 0; i < *n_seen; i++)
    if (strcmp(seen[i], speaker) == 0) return e->host_voice[i % 2];
  if (*n_seen < 64) seen[(*n_seen)++] = speaker;
  return e->host_voice[(*n_seen - 1) % 2];
}

static void esp_run(jobq_stage_t *st, void *ud) {
  esp *e = ud;
  json_t *in = jq_stage_input_object(st);
  if (in == NULL) return;
  const json_t *d = json_object_get(in, "dialogue");
  if (!json_is_array(d) || json_array_size(d) == 0) {
    json_decref(in);
    jq_stage_failf(st, 0, "the input has no \"dialogue\" list to speak");
    return;
  }
  jq_pcm all = {0};
  const char *seen[64];
  int n_seen = 0;
  size_t n = json_array_size(d), i;
  json_t *turn;
  int rc = 0;
  json_array_foreach(d, i, turn) {
    if (jobq_stage_cancelled(st)) {
      rc = JOBQ_ECANCELLED;
      break;
    }
    const char *sp = json_string_value(json_object_get(turn, "speaker"));
    const char *tx = json_string_value(json_object_get(turn, "text"));
    if (sp == NULL || tx == NULL) {
      jq_pcm_free(&all);
      json_decref(in);
      jq_stage_failf(st, 0, "dialogue turn %zu is not {\"speaker\", \"text\"}", i);
      return;
    }
    char step[96];
    snprintf(step, sizeof step, "Generating audio for segment %zu of %zu...", i + 1, n);
    jobq_stage_progress(st, (int)(i * 90 / n), step);
    if (i > 0 && (rc = jq_pcm_append_silence(&all, (int)e->pause_ms)) != 0) break;
    if ((rc = jq_espeak_synth(tx, voice_for(e, sp, seen, &n_seen), (int)e->rate_wpm, &all)) != 0)
      break;
  }
  if (rc) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s", rc == JOBQ_ECANCELLED ? "cancelled" : jobq_last_error());
    jq_pcm_free(&all);
    json_decref(in);
    jobq_stage_fail(st, msg, rc != JOBQ_ECANCELLED && rc != JOBQ_EINVAL);
    return;
  }
  const char *wd = jobq_stage_workdir(st);
  if (wd == NULL) {
    jq_pcm_free(&all);
    json_decref(in);
    jq_stage_failf(st, 1, "%s", jobq_last_error());
    return;
  }
  jobq_stage_progress(st, 92, e->mp3 ? "Encoding MP3..." : "Writing audio...");
  char path[4200];
  snprintf(path, sizeof path, "%s/audio.%s", wd, e->mp3 ? "mp3" : "wav");
  rc = e->mp3 ? jq_mp3_write(path, &all, (int)e->kbps) : jq_wav_write(path, &all);
  double secs = jq_pcm_seconds(&all);
  jq_pcm_free(&all);
  if (rc) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s", jobq_last_error());
    json_decref(in);
    jobq_stage_fail(st, msg, 1);
    return;
  }
  if (json_object_set_new(in, "audioFile", json_string(path)) ||
      json_object_set_new(in, "audioFormat", json_string(e->mp3 ? "mp3" : "wav")) ||
      json_object_set_new(in, "audioDuration", json_real((double)(long long)(secs * 100 + 0.5) / 100))) {
    json_decref(in);
    jobq_stage_fail(st, "out of memory", 1);
    return;
  }
  jobq_stage_progress(st, 100, NULL);
  jq_stage_succeed_json(st, in);
}

const jq_provider jq_tts_espeak = {
  "tts", "espeak", JOBQ_STAGE_BLOCKING, esp_configure, esp_free, esp_run,
};
