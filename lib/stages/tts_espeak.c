/* The offline TTS provider: each turn of the dialogue spoken by espeak-ng
 * with its host's voice, joined with short pauses into one WAV or MP3 file
 * in the job's work directory. */
#include "stages/audio.h"
#include "stages/tts.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct esp {
  jobq__voices voices; /* configured speakers; en-us+m3 and en-gb+f3 for the others */
  int mp3;
  long long pause_ms, rate_wpm, kbps;
} esp;

static void esp_free(void *p) {
  esp *e = p;
  if (e == NULL) return;
  jobq__voices_free(&e->voices);
  free(e);
}

static int esp_configure(const json_t *cfg, void **out) {
  if (!jobq__espeak_available())
    return jobq__err(JOBQ_ENOTSUP,
                     "tts provider 'espeak': libjobq-stages was built without espeak-ng "
                     "(JOBQ_WITH_ESPEAK=OFF); configure another tts provider");
  esp *e = calloc(1, sizeof *e);
  if (e == NULL) return jobq__err(JOBQ_ENOMEM, "tts: out of memory");
  int rc = 0;
  e->pause_ms = 350;
  e->rate_wpm = 165;
  e->kbps = 128;
  if ((rc = jobq__tts_format(cfg, "espeak", &e->mp3))) goto fail;
  if ((rc = jobq__cfg_int(cfg, "tts", "pause_ms", 0, 5000, &e->pause_ms)) ||
      (rc = jobq__cfg_int(cfg, "tts", "rate_wpm", 80, 450, &e->rate_wpm)) ||
      (rc = jobq__cfg_int(cfg, "tts", "bitrate", 32, 320, &e->kbps)))
    goto fail;
  if ((rc = jobq__voices_parse(cfg, "espeak-ng voice", NULL, "en-us+m3", "en-gb+f3", &e->voices)))
    goto fail;
  /* Every configured voice must exist: try each now, not at 3 a.m. */
  for (int i = 0; i < e->voices.n + e->voices.n_fallback; i++) {
    const char *voice = i < e->voices.n ? e->voices.voice[i] : e->voices.fallback[i - e->voices.n];
    jobq__pcm probe = {0};
    rc = jobq__espeak_synth("a", voice, (int)e->rate_wpm, &probe);
    jobq__pcm_free(&probe);
    if (rc) {
      jobq__err_prefix(rc, NULL, "tts provider 'espeak': ");
      goto fail;
    }
  }
  *out = e;
  return 0;
fail:
  esp_free(e);
  return rc;
}

static void esp_run(jobq_stage_t *st, void *ud) {
  esp *e = ud;
  json_t *in = jobq__stage_input_object(st);
  if (in == NULL) return;
  const json_t *d = json_object_get(in, "dialogue");
  if (!json_is_array(d) || json_array_size(d) == 0) {
    json_decref(in);
    jobq__stage_failf(st, 0, "the input has no \"dialogue\" list to speak");
    return;
  }
  jobq__pcm all = {0};
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
      jobq__pcm_free(&all);
      json_decref(in);
      jobq__stage_failf(st, 0, "dialogue turn %zu is not {\"speaker\", \"text\"}", i);
      return;
    }
    char step[96];
    snprintf(step, sizeof step, "Generating audio for segment %zu of %zu...", i + 1, n);
    jobq_stage_progress(st, (int)(i * 90 / n), step);
    if (i > 0 && (rc = jobq__pcm_append_silence(&all, (int)e->pause_ms)) != 0) break;
    if ((rc = jobq__espeak_synth(tx, jobq__voices_pick(&e->voices, sp, seen, &n_seen), (int)e->rate_wpm, &all)) != 0)
      break;
  }
  if (rc) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s", rc == JOBQ_ECANCELLED ? "cancelled" : jobq_last_error());
    jobq__pcm_free(&all);
    json_decref(in);
    jobq_stage_fail(st, msg, rc != JOBQ_ECANCELLED && rc != JOBQ_EINVAL);
    return;
  }
  const char *wd = jobq_stage_workdir(st);
  if (wd == NULL) {
    jobq__pcm_free(&all);
    json_decref(in);
    jobq__stage_failf(st, 1, "%s", jobq_last_error());
    return;
  }
  jobq_stage_progress(st, 92, e->mp3 ? "Encoding MP3..." : "Writing audio...");
  char path[4200];
  snprintf(path, sizeof path, "%s/audio.%s", wd, e->mp3 ? "mp3" : "wav");
  rc = e->mp3 ? jobq__mp3_write(path, &all, (int)e->kbps) : jobq__wav_write(path, &all);
  double secs = jobq__pcm_seconds(&all);
  jobq__pcm_free(&all);
  if (rc) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s", jobq_last_error());
    json_decref(in);
    jobq_stage_fail(st, msg, 1);
    return;
  }
  jobq__tts_succeed(st, in, path, e->mp3, secs);
}

const jobq__provider jobq__tts_espeak = {
  "tts", "espeak", JOBQ_STAGE_BLOCKING, esp_configure, esp_free, esp_run,
};
