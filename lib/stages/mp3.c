/* MP3 files from PCM through libmp3lame: mono, constant bitrate, with LAME's
 * Info tag in the first frame (it carries the encoder delay and padding, so
 * players can trim them and report the exact duration). */
#include "stages/audio.h"
#include "stages/outfile.h"
#include "util/err.h"

#ifdef JOBQ_HAVE_LAME

#include <lame/lame.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>

_Static_assert(sizeof(short) == sizeof(int16_t), "LAME takes samples as short");

/* lame_init_params() fills tables that LAME keeps in globals (pow43 and
 * friends), again for every encoder it sets up; this keeps two threads from
 * filling them at once. (An encoder running meanwhile still reads them while
 * they are rewritten with the same values; LAME offers no way around that.) */
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;

/* LAME's default reporters print to stderr; a library must stay quiet. */
static void quiet(const char *fmt, va_list ap) {
  (void)fmt;
  (void)ap;
}

/* Layer III bitrates (kbps) of MPEG-1 and MPEG-2/2.5; which apply depends on
 * the output rate LAME picks, which lame_init_params() checks. */
static int valid_kbps(int k) {
  static const int ok[] = {8,  16,  24,  32,  40,  48,  56,  64,  80,
                           96, 112, 128, 144, 160, 192, 224, 256, 320};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (ok[i] == k) return 1;
  return 0;
}

/* Samples handed to LAME per call; the output bound is LAME's own rule
 * (1.25 * samples + 7200 bytes), which also covers a flush. */
#define CHUNK 8192
#define MP3BUF (CHUNK + CHUNK / 4 + 7200)

static int encode(lame_t gf, const jobq__pcm *p, jobq__outfile *f, unsigned char *buf) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < p->n; i += CHUNK) {
    int k = p->n - i < CHUNK ? (int)(p->n - i) : CHUNK;
    int w = lame_encode_buffer(gf, (const short *)p->samples + i, NULL, k, buf, MP3BUF);
    if (w < 0) return jobq__err(JOBQ_EIO, "LAME failed to encode (error %d)", w);
    rc = jobq__outfile_write(f, buf, (size_t)w);
  }
  if (rc < 0) return rc;
  int w = lame_encode_flush(gf, buf, MP3BUF);
  if (w < 0) return jobq__err(JOBQ_EIO, "LAME failed to flush (error %d)", w);
  rc = jobq__outfile_write(f, buf, (size_t)w);
  if (rc < 0) return rc;
  /* LAME left an empty first frame for the Info tag, which only now knows
   * the frame count; nothing precedes it in our files (no ID3 tag). */
  size_t t = lame_get_lametag_frame(gf, buf, MP3BUF);
  if (t > MP3BUF) return jobq__err(JOBQ_EIO, "LAME's Info tag needs %zu bytes", t);
  if (t > 0) rc = jobq__outfile_write_at(f, 0, buf, t);
  return rc;
}

int jobq__mp3_write(const char *path, const jobq__pcm *p, int kbps) {
  if (path == NULL || p == NULL || (p->samples == NULL && p->n > 0))
    return jobq__err(JOBQ_EINVAL, "jobq__mp3_write: NULL argument");
  if (p->rate <= 0) return jobq__err(JOBQ_EINVAL, "jobq__mp3_write: the buffer has no sample rate");
  if (kbps == 0) kbps = 128;
  if (!valid_kbps(kbps))
    return jobq__err(JOBQ_EINVAL, "jobq__mp3_write: %d kbps is not an MP3 bitrate", kbps);

  lame_t gf = lame_init();
  if (gf == NULL) return jobq__err(JOBQ_ENOMEM, "LAME: out of memory");
  lame_set_errorf(gf, quiet);
  lame_set_debugf(gf, quiet);
  lame_set_msgf(gf, quiet);
  lame_set_in_samplerate(gf, p->rate);
  lame_set_num_channels(gf, 1);
  lame_set_mode(gf, MONO);
  lame_set_VBR(gf, vbr_off);
  lame_set_brate(gf, kbps);
  pthread_mutex_lock(&init_mu);
  int lrc = lame_init_params(gf);
  pthread_mutex_unlock(&init_mu);
  if (lrc < 0) {
    lame_close(gf);
    return jobq__err(JOBQ_EINVAL, "jobq__mp3_write: LAME cannot encode %d Hz at %d kbps (error %d)",
                     p->rate, kbps, lrc);
  }

  unsigned char *buf = malloc(MP3BUF);
  if (buf == NULL) {
    lame_close(gf);
    return jobq__err(JOBQ_ENOMEM, "jobq__mp3_write: out of memory");
  }
  jobq__outfile f;
  int rc = jobq__outfile_open(&f, path);
  if (rc == 0) {
    rc = encode(gf, p, &f, buf);
    if (rc == 0) rc = jobq__outfile_commit(&f);
    else jobq__outfile_abort(&f);
  }
  free(buf);
  lame_close(gf);
  return rc;
}

int jobq__mp3_available(void) { return 1; }

#else /* built without LAME (JOBQ_WITH_LAME=OFF) */

int jobq__mp3_available(void) { return 0; }

int jobq__mp3_write(const char *path, const jobq__pcm *p, int kbps) {
  (void)path, (void)p, (void)kbps;
  return jobq__err(JOBQ_ENOTSUP, "MP3 output: libjobq-stages was built without LAME (JOBQ_WITH_LAME=OFF)");
}

#endif
