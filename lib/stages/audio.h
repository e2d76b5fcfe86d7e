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
typedef struct jobq__pcm {
  int16_t *samples;
  size_t n;    /* samples used */
  size_t cap;
  int rate;    /* samples per second */
} jobq__pcm;

void jobq__pcm_free(jobq__pcm *p);            /* frees samples, zeroes *p */
int jobq__pcm_append(jobq__pcm *dst, const int16_t *s, size_t n);
/* Appends rate * ms / 1000 zero samples (truncated); dst->rate must be set. */
int jobq__pcm_append_silence(jobq__pcm *dst, int ms);
/* Appends src to dst, resampling (linear) if the rates differ; dst->rate 0
 * takes src's rate. The length becomes src->n * dst->rate / src->rate,
 * rounded. No low-pass filter: downsampling aliases (fine for speech). */
int jobq__pcm_append_pcm(jobq__pcm *dst, const jobq__pcm *src);
double jobq__pcm_seconds(const jobq__pcm *p);
/* Root-mean-square level of the samples, 0..32767 (silence: 0). */
double jobq__pcm_rms(const jobq__pcm *p);

/* WAV: RIFF, PCM format 1, mono, 16-bit. */
int jobq__wav_write(const char *path, const jobq__pcm *p);
/* Parses a WAV in memory (PCM 16-bit mono or stereo, which is mixed down)
 * and appends its samples to out (out->rate 0 takes the WAV's rate; another
 * rate is resampled, as by jobq__pcm_append_pcm); JOBQ_EPROVIDER with a
 * sentence if the bytes are not such a WAV, and out is then unchanged.
 * Chunks other than fmt and data are skipped. A data size larger than the
 * input is refused, except the placeholders of streamed WAVs (0xFFFFFFFF,
 * 0x7FFFFFFF, or 0 with a RIFF size of 0), read as "up to the end". */
int jobq__wav_parse(const void *bytes, size_t len, jobq__pcm *out);

/* MP3 through libmp3lame, constant bitrate kbps (0: 128), with LAME's Info
 * tag when the frames are large enough to hold it. JOBQ_EINVAL for a
 * bitrate that MPEG audio does not have at the rate LAME picks. */
int jobq__mp3_write(const char *path, const jobq__pcm *p, int kbps);
/* 1 when this build has LAME (CMake JOBQ_WITH_LAME), else 0: then
 * jobq__mp3_write is JOBQ_ENOTSUP and configurations that ask for MP3 are
 * refused (stages/tts.c). */
int jobq__mp3_available(void);
/* Checks that bytes are an MP3 stream: an optional ID3v2 tag, then at least
 * one valid MPEG audio frame header and a second one where the first frame's
 * length says. *out_seconds (may be NULL) receives the duration counted from
 * the frame headers (all frames walked); a Xing/Info/VBRI frame is not
 * counted, and the encoder delay and padding of a LAME tag are taken off.
 * JOBQ_EPROVIDER if not MP3: also for Layer I/II or free-format frames,
 * bytes between frames, a last frame cut short, or a change of sample rate;
 * an ID3v1, APE or Lyrics3 tag after the frames is allowed. */
int jobq__mp3_probe(const void *bytes, size_t len, double *out_seconds);

/* Speech for text (UTF-8, not empty: else JOBQ_EINVAL) with espeak-ng
 * (libespeak-ng), appended to out at espeak's rate (22,050 Hz) when
 * out->rate is 0 or that, else resampled to out->rate. voice is an espeak-ng
 * language or voice name with an optional variant, such as "en-us",
 * "en-gb+m3" or "en+f2" ("+3" is m3, "+13" f3); NULL "en". rate_wpm: words
 * per minute, 80..450, 0 for espeak's 175 (else JOBQ_EINVAL). The clip ends
 * where the speech does (espeak's trailing silence, whose length varies from
 * call to call, is cut): add pauses with jobq__pcm_append_silence. Control
 * characters in text are read as spaces (espeak would take them as
 * commands). Thread-safe: espeak-ng keeps global state, so calls are
 * serialised by a mutex. JOBQ_ECONFIG for an unknown voice or variant,
 * JOBQ_EIO if espeak-ng's data cannot be found; out is unchanged on error. */
int jobq__espeak_synth(const char *text, const char *voice, int rate_wpm, jobq__pcm *out);
/* 1 when this build has espeak-ng (CMake JOBQ_WITH_ESPEAK), else 0: then
 * jobq__espeak_synth is JOBQ_ENOTSUP and the 'espeak' provider is refused
 * at configuration. */
int jobq__espeak_available(void);

#endif
