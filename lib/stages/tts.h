/* What the TTS providers share: which voice speaks for which speaker, and
 * the output fields. */
#ifndef JOBQ_STAGES_TTS_H
#define JOBQ_STAGES_TTS_H

#include "stages/stage_int.h"

#define JOBQ_TTS_MAX_VOICES 16

typedef struct jobq__voices {
  char *speaker[JOBQ_TTS_MAX_VOICES]; /* "voices": {speaker: voice} */
  char *voice[JOBQ_TTS_MAX_VOICES];
  int n;
  char *fallback[2]; /* voices of other speakers, by order of appearance */
  int n_fallback;
} jobq__voices;

/* Reads cfg "voices" (an object) and the fallbacks: cfg[fallback_key] (a
 * list of one or two voices) if fallback_key is set and present, else
 * def0/def1 (may be NULL). what names a voice in sentences ("voice id").
 * JOBQ_ECONFIG / JOBQ_ENOMEM; *v is cleared on error. */
int jobq__voices_parse(const json_t *cfg, const char *what, const char *fallback_key,
                    const char *def0, const char *def1, jobq__voices *v);
void jobq__voices_free(jobq__voices *v);
/* The voice for speaker; seen / n_seen (per run, up to 64) remember the
 * order in which unconfigured speakers appeared. NULL if there is none. */
const char *jobq__voices_pick(const jobq__voices *v, const char *speaker, const char **seen,
                           int *n_seen);

/* Sets in's audioFile, audioFormat and audioDuration (seconds, 2 decimals)
 * and succeeds the stage with in (stolen). */
/* Reads "format" ("wav", the default, or "mp3") into *mp3. JOBQ_ECONFIG for
 * another value; JOBQ_ENOTSUP for "mp3" when libjobq-stages was built
 * without LAME (JOBQ_WITH_LAME=OFF), with a sentence that says so. */
int jobq__tts_format(const json_t *cfg, const char *provider, int *mp3);
int jobq__tts_succeed(jobq_stage_t *st, json_t *in, const char *path, int mp3, double seconds);

#endif
