/* Audio for the TTS stage: 16-bit mono PCM buffers, WAV files, MP3 through
 * LAME, and speech through espeak-ng. Internal to libjobq.
 *
 * Functions return 0 or a negative JOBQ_E* code with jobq_last_error() set
 * (jobq__err), and never leave a half-written file behind: files are written
 * to "<path>.tmp" and renamed into place. */
#ifndef JOBQ_STAGES_AUDIO_H
#define JOBQ_STAGES_AUDIO_H

#include <stddef.h>
#include <stdint.h>

/* A growable mono 16-bit PCM buffer at one sample rate. */
typedef struct jq_pcm {
  int16_t *samples;
  size_t n;    /* samples used */
  size_t cap;
  int rate;    /* samples per second */
} jq_pcm;

void jq_pcm_free(jq_pcm *p);            /* frees samples, zeroes *p */
int jq_pcm_append(jq_pcm *dst, const int16_t *s, size_t n);
int jq_pcm_append_silence(jq_pcm *dst, int ms);
/* Appends src to dst, resampling (linear) if the rates differ; dst->rate 0
 * takes src's rate. */
int jq_pcm_append_pcm(jq_pcm *dst, const jq_pcm *src);
double jq_pcm_seconds(const jq_pcm *p);
/* Root-mean-square level of the samples, 0..32767 (silence: 0). */
double jq_pcm_rms(const jq_pcm *p);

/* WAV: RIFF, PCM format 1, mono, 16-bit. */
int jq_wav_write(const char *path, const jq_pcm *p);
/* Parses a WAV in memory (PCM 16-bit mono or stereo, which is mixed down)
 * into out; JOBQ_EPROVIDER with a sentence if the bytes are not such a WAV. */
int jq_wav_parse(const void *bytes, size_t len, jq_pcm *out);

/* MP3 through libmp3lame, constant bitrate kbps (0: 128). */
int jq_mp3_write(const char *path, const jq_pcm *p, int kbps);
/* Checks that bytes are an MP3 stream: an optional ID3v2 tag, then at least
 * one valid MPEG audio frame header and a second one where the first frame's
 * length says. *out_seconds (may be NULL) receives the duration counted from
 * the frame headers (all frames walked). JOBQ_EPROVIDER if not MP3. */
int jq_mp3_probe(const void *bytes, size_t len, double *out_seconds);

/* Speech for text with espeak-ng (libespeak-ng), appended to out at
 * espeak's rate (22,050 Hz). voice is an espeak-ng voice name such as
 * "en-us" or "en-gb+m3"; NULL "en". Thread-safe: espeak-ng keeps global
 * state, so calls are serialised by a mutex. JOBQ_ECONFIG for an unknown
 * voice, JOBQ_EIO if espeak-ng's data cannot be found. */
int jq_espeak_synth(const char *text, const char *voice, int rate_wpm, jq_pcm *out);

#endif
