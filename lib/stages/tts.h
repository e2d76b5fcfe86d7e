/* What the TTS providers share: which voice speaks for which speaker, and
 * the output fields. */
#ifndef JOBQ_STAGES_TTS_H
#define JOBQ_STAGES_TTS_H

#include "stages/stage_int.h"

#define JQ_TTS_MAX_VOICES 16

typedef struct jq_voices {
  char *speaker[JQ_TTS_MAX_VOICES]; /* "voices": {speaker: voice} */
  char *voice[JQ_TTS_MAX_VOICES];
  int n;
  char *fallback[2]; /* voices of other speakers, by order of appearance */
  int n_fallback;
} jq_voices;

/* Reads cfg "voices" (an object) and the fallbacks: cfg[fallback_key] (a
 * list of one or two voices) if fallback_key is set and present, else
 * def0/def1 (may be NULL). what names a voice in sentences ("voice id").
 * JOBQ_ECONFIG / JOBQ_ENOMEM; *v is cleared on error. */
int jq_voices_parse(const json_t *cfg, const char *what, const char *fallback_key,
                    const char *def0, const char *def1, jq_voices *v);
void jq_voices_free(jq_voices *v);
/* The voice for speaker; seen / n_seen (per run, up to 64) remember the
 * order in which unconfigured speakers appeared. NULL if there is none. */
const char *jq_voices_pick(const jq_voices *v, const char *speaker, const char **seen,
                           int *n_seen);

/* Sets in's audioFile, audioFormat and audioDuration (seconds, 2 decimals)
 * and succeeds the stage with in (stolen). */
int jq_tts_succeed(jobq_stage_t *st, json_t *in, const char *path, int mp3, double seconds);

#endif
