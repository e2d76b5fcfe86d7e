/* Growable 16-bit mono PCM buffers: appending, silence, linear resampling,
 * duration and level. */
#include "stages/audio.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAMPLES (SIZE_MAX / sizeof(int16_t))

void jobq__pcm_free(jobq__pcm *p) {
  if (p == NULL) return;
  free(p->samples);
  memset(p, 0, sizeof *p);
}

/* Makes room for extra more samples; capacity doubles so that appending a
 * clip at a time stays linear overall. */
static int reserve(jobq__pcm *p, size_t extra) {
  if (extra > MAX_SAMPLES - p->n)
    return jobq__err(JOBQ_ENOMEM, "PCM buffer: %zu more samples would overflow", extra);
  size_t need = p->n + extra;
  if (need <= p->cap) return 0;
  size_t cap = p->cap < 4096 ? 4096 : p->cap;
  while (cap < need) cap = cap > MAX_SAMPLES / 2 ? need : cap * 2;
  int16_t *s = realloc(p->samples, cap * sizeof *s);
  if (s == NULL) return jobq__err(JOBQ_ENOMEM, "PCM buffer: out of memory for %zu samples", cap);
  p->samples = s;
  p->cap = cap;
  return 0;
}

int jobq__pcm_append(jobq__pcm *dst, const int16_t *s, size_t n) {
  if (dst == NULL || (s == NULL && n > 0)) return jobq__err(JOBQ_EINVAL, "jobq__pcm_append: NULL buffer");
  if (n == 0) return 0;
  /* s may point into dst itself (a clip repeated), and reserve() may move it. */
  int inside = dst->samples != NULL && s >= dst->samples && s < dst->samples + dst->n;
  size_t off = inside ? (size_t)(s - dst->samples) : 0;
  int rc = reserve(dst, n);
  if (rc < 0) return rc;
  if (inside) s = dst->samples + off;
  memmove(dst->samples + dst->n, s, n * sizeof *s);
  dst->n += n;
  return 0;
}

int jobq__pcm_append_silence(jobq__pcm *dst, int ms) {
  if (dst == NULL || ms < 0)
    return jobq__err(JOBQ_EINVAL, "jobq__pcm_append_silence: NULL buffer or negative duration");
  if (dst->rate <= 0)
    return jobq__err(JOBQ_EINVAL, "jobq__pcm_append_silence: the buffer has no sample rate");
  /* int * int fits in 64 bits; the division truncates, so 10 ms at 22,050 Hz
   * is 220 samples, and gaps of equal length are always equal. */
  uint64_t n = (uint64_t)dst->rate * (uint64_t)ms / 1000u;
  if (n > MAX_SAMPLES) return jobq__err(JOBQ_ENOMEM, "PCM buffer: %d ms of silence is too long", ms);
  int rc = reserve(dst, (size_t)n);
  if (rc < 0) return rc;
  memset(dst->samples + dst->n, 0, (size_t)n * sizeof *dst->samples);
  dst->n += (size_t)n;
  return 0;
}

/* a + (b - a) * num / den, rounded to nearest; 0 <= num < den, so the result
 * lies between a and b and fits in int16_t. */
static int16_t lerp(int16_t a, int16_t b, uint64_t num, uint64_t den) {
  int64_t d = ((int64_t)b - a) * (int64_t)num;
  int64_t h = (int64_t)(den / 2);
  int64_t q = d >= 0 ? (d + h) / (int64_t)den : -((-d + h) / (int64_t)den);
  return (int16_t)(a + q);
}

/* Linear interpolation: output sample i sits at input position
 * i * from / to, computed exactly in integers so that no drift builds up over
 * long clips. There is no low-pass filter, so downsampling aliases; the
 * stages resample speech between common rates (22,050 / 24,000 / 44,100 /
 * 48,000 Hz), where this is inaudible enough and cheap. */
static int resample_append(jobq__pcm *dst, const jobq__pcm *src, int to) {
  uint64_t from = (uint64_t)src->rate, t = (uint64_t)to, n = src->n;
  if (n > (UINT64_MAX - from) / t)
    return jobq__err(JOBQ_ENOMEM, "PCM buffer: %zu samples are too many to resample", src->n);
  /* Rounded, so that the duration is kept: 22,050 -> 44,100 Hz doubles. */
  uint64_t out = (n * t + from / 2) / from;
  if (out > MAX_SAMPLES) return jobq__err(JOBQ_ENOMEM, "PCM buffer: resampled clip is too long");
  int rc = reserve(dst, (size_t)out);
  if (rc < 0) return rc;
  const int16_t *s = src->samples;
  int16_t *d = dst->samples + dst->n;
  for (uint64_t i = 0; i < out; i++) {
    uint64_t pos = i * from; /* <= n * t + from / 2: checked above */
    uint64_t k = pos / t;
    d[i] = k + 1 >= n ? s[n - 1] : lerp(s[k], s[k + 1], pos % t, t);
  }
  dst->n += (size_t)out;
  return 0;
}

int jobq__pcm_append_pcm(jobq__pcm *dst, const jobq__pcm *src) {
  if (dst == NULL || src == NULL || (src->samples == NULL && src->n > 0))
    return jobq__err(JOBQ_EINVAL, "jobq__pcm_append_pcm: NULL buffer");
  if (src->rate <= 0 || dst->rate < 0)
    return jobq__err(JOBQ_EINVAL, "jobq__pcm_append_pcm: sample rate %d -> %d", src->rate, dst->rate);
  int to = dst->rate ? dst->rate : src->rate;
  int rc = 0;
  if (to == src->rate) rc = jobq__pcm_append(dst, src->samples, src->n);
  else if (src->n > 0) rc = resample_append(dst, src, to);
  if (rc == 0) dst->rate = to;
  return rc;
}

double jobq__pcm_seconds(const jobq__pcm *p) {
  if (p == NULL || p->rate <= 0) return 0.0;
  return (double)p->n / (double)p->rate;
}

double jobq__pcm_rms(const jobq__pcm *p) {
  if (p == NULL || p->n == 0) return 0.0;
  double sum = 0.0;
  for (size_t i = 0; i < p->n; i++) sum += (double)p->samples[i] * p->samples[i];
  double r = sqrt(sum / (double)p->n);
  /* Samples at -32768 would give 32768; the scale promised is 0..32767. */
  return r > 32767.0 ? 32767.0 : r;
}
