/* WAV files: writing 16-bit mono PCM, and reading the 16-bit PCM WAVs that
 * TTS providers send. The reader takes untrusted bytes: every size is checked
 * against what is left before it is used, and anything that is not plainly a
 * 16-bit PCM WAV is refused with a sentence saying why. */
#include "stages/audio.h"
#include "stages/outfile.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* ---- writing ---------------------------------------------------------------- */

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, v);
  put16(p + 2, v >> 16);
}

int jobq__wav_write(const char *path, const jobq__pcm *p) {
  if (path == NULL || p == NULL || (p->samples == NULL && p->n > 0))
    return jobq__err(JOBQ_EINVAL, "jobq__wav_write: NULL argument");
  if (p->rate <= 0) return jobq__err(JOBQ_EINVAL, "jobq__wav_write: the buffer has no sample rate");
  /* The RIFF size field (36 + data bytes) is 32 bits. */
  if (p->n > (UINT32_MAX - 36u) / 2u)
    return jobq__err(JOBQ_EINVAL, "jobq__wav_write: %zu samples do not fit in a WAV file", p->n);
  uint32_t data = (uint32_t)p->n * 2u;

  uint8_t h[44];
  memcpy(h, "RIFF", 4);
  put32(h + 4, 36u + data);
  memcpy(h + 8, "WAVEfmt ", 8);
  put32(h + 16, 16);                    /* fmt chunk size */
  put16(h + 20, 1);                     /* PCM */
  put16(h + 22, 1);                     /* mono */
  put32(h + 24, (uint32_t)p->rate);
  put32(h + 28, (uint32_t)p->rate * 2u); /* byte rate; rate <= INT_MAX, so no overflow */
  put16(h + 32, 2);                     /* block align */
  put16(h + 34, 16);                    /* bits per sample */
  memcpy(h + 36, "data", 4);
  put32(h + 40, data);

  jobq__outfile f;
  int rc = jobq__outfile_open(&f, path);
  if (rc < 0) return rc;
  rc = jobq__outfile_write(&f, h, sizeof h);
  /* Byte by byte into a buffer: the file is little-endian whatever the host. */
  uint8_t buf[8192];
  for (size_t i = 0; rc == 0 && i < p->n;) {
    size_t k = 0;
    for (; k < sizeof buf / 2 && i < p->n; k++, i++) put16(buf + 2 * k, (uint16_t)p->samples[i]);
    rc = jobq__outfile_write(&f, buf, 2 * k);
  }
  if (rc < 0) {
    jobq__outfile_abort(&f);
    return rc;
  }
  return jobq__outfile_commit(&f);
}

/* ---- reading ---------------------------------------------------------------- */

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }

#define BAD(...) jobq__err(JOBQ_EPROVIDER, "not a 16-bit PCM WAV: " __VA_ARGS__)

/* Streaming writers do not know the length when they send the header and put
 * a placeholder in the size fields: 0xFFFFFFFF (OpenAI), 0x7FFFFFFF
 * (ElevenLabs), or 0 (a header never finalised, e.g. libsndfile's). */
static int placeholder(uint32_t v) { return v == 0 || v == 0x7FFFFFFFu || v == 0xFFFFFFFFu; }

static const char *format_name(uint32_t tag) {
  switch (tag) {
    case 2: return " (MS ADPCM)";
    case 3: return " (IEEE float)";
    case 6: return " (A-law)";
    case 7: return " (mu-law)";
    case 0x11: return " (IMA ADPCM)";
    case 0x55: return " (MP3)";
    default: return "";
  }
}

typedef struct fmt_info {
  uint32_t channels, rate, align;
} fmt_info;

/* The KSDATAFORMAT_SUBTYPE_PCM GUID, after its first two bytes (the format
 * tag, 1 for PCM). */
static const uint8_t pcm_guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                          0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

static int parse_fmt(const uint8_t *c, uint32_t size, fmt_info *fi) {
  if (size < 16) return BAD("the fmt chunk has %u bytes (at least 16 needed)", size);
  uint32_t tag = get16(c), channels = get16(c + 2), rate = get32(c + 4);
  uint32_t byte_rate = get32(c + 8), align = get16(c + 12), bits = get16(c + 14);
  if (tag == 0xFFFE) {
    /* WAVE_FORMAT_EXTENSIBLE (written by ffmpeg and sox): PCM only if its
     * sub-format GUID says so and all 16 bits are valid. */
    if (size < 40 || get16(c + 16) < 22)
      return BAD("the extensible fmt chunk has %u bytes (40 needed)", size);
    uint32_t sub = get16(c + 24);
    if (sub != 1 || memcmp(c + 26, pcm_guid_tail, sizeof pcm_guid_tail) != 0)
      return BAD("extensible format with sub-format %u%s, not PCM", sub, format_name(sub));
    if (get16(c + 18) != 16) return BAD("%u valid bits per sample, not 16", get16(c + 18));
  } else if (tag != 1) {
    return BAD("format code %u%s is not PCM (1)", tag, format_name(tag));
  }
  if (bits != 16) return BAD("%u bits per sample; only 16-bit samples are read", bits);
  if (channels != 1 && channels != 2)
    return BAD("%u channels; only mono and stereo are read", channels);
  /* Outside these, the header is damaged rather than unusual; the bound also
   * keeps the arithmetic below small. */
  if (rate < 1000 || rate > 768000) return BAD("sample rate %u Hz", rate);
  if (align != channels * 2) return BAD("block align %u for %u 16-bit channels", align, channels);
  if (byte_rate != rate * align)
    return BAD("byte rate %u for %u Hz x %u bytes", byte_rate, rate, align);
  fi->channels = channels;
  fi->rate = rate;
  fi->align = align;
  return 0;
}

/* Decodes n frames at d into a new buffer, then appends it to out (which
 * resamples if out has another rate), so out is unchanged on failure. */
static int decode(const uint8_t *d, size_t n, const fmt_info *fi, jobq__pcm *out) {
  jobq__pcm tmp = {.rate = (int)fi->rate};
  int rc = 0;
  if (n > 0) {
    tmp.samples = malloc(n * sizeof *tmp.samples); /* n <= len / 2: no overflow */
    if (tmp.samples == NULL) return jobq__err(JOBQ_ENOMEM, "WAV: out of memory for %zu samples", n);
    tmp.n = tmp.cap = n;
    for (size_t i = 0; i < n; i++) {
      if (fi->channels == 1) {
        tmp.samples[i] = (int16_t)get16(d + 2 * i);
      } else {
        int32_t l = (int16_t)get16(d + 4 * i), r = (int16_t)get16(d + 4 * i + 2);
        tmp.samples[i] = (int16_t)((l + r) / 2);
      }
    }
  }
  rc = jobq__pcm_append_pcm(out, &tmp);
  jobq__pcm_free(&tmp);
  return rc;
}

int jobq__wav_parse(const void *bytes, size_t len, jobq__pcm *out) {
  if (out == NULL || (bytes == NULL && len > 0))
    return jobq__err(JOBQ_EINVAL, "jobq__wav_parse: NULL argument");
  const uint8_t *b = bytes;
  if (len == 0) return BAD("no bytes");
  if (len < 12 || memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WAVE", 4) != 0)
    return BAD("no RIFF/WAVE header");
  uint32_t riff = get32(b + 4);
  /* An honest RIFF size bounds the chunks (bytes after it are not ours); one
   * larger than the input is a streaming placeholder or a truncation, and a
   * chunk running past the end tells those apart below. */
  size_t end = len;
  if (!placeholder(riff) && (uint64_t)riff + 8u <= len) {
    if (riff < 4) return BAD("RIFF size %u", riff);
    end = (size_t)riff + 8u;
  }
  fmt_info fi = {0, 0, 0};
  int have_fmt = 0;
  size_t pos = 12;
  for (;;) {
    if (end - pos < 8) return BAD("%s", have_fmt ? "no data chunk" : "no fmt chunk");
    const uint8_t *id = b + pos;
    uint32_t size = get32(b + pos + 4);
    pos += 8;
    size_t avail = end - pos;
    if (memcmp(id, "fmt ", 4) == 0) {
      if (have_fmt) return BAD("two fmt chunks");
      if (size > avail) return BAD("the fmt chunk (%u bytes) runs past the end", size);
      int rc = parse_fmt(b + pos, size, &fi);
      if (rc < 0) return rc;
      have_fmt = 1;
    } else if (memcmp(id, "data", 4) == 0) {
      if (!have_fmt) return BAD("the data chunk comes before the fmt chunk");
      size_t n;
      if (size <= avail && !(size == 0 && riff == 0)) {
        if (size % fi.align != 0)
          return BAD("%u data bytes are not a whole number of %u-byte frames", size, fi.align);
        n = size / fi.align;
      } else if (placeholder(size)) {
        /* A streamed WAV: the samples run to the end of the input; a partial
         * last frame (the stream cut mid-sample) is dropped. */
        n = avail / fi.align;
      } else {
        return BAD("the data chunk says %u bytes but only %zu follow", size, avail);
      }
      return decode(b + pos, n, &fi, out);
    }
    /* Anything else (LIST, fact, cue, bext, ...) is skipped. */
    if (size > avail) {
      char name[5];
      for (int i = 0; i < 4; i++) name[i] = id[i] >= 32 && id[i] < 127 ? (char)id[i] : '?';
      name[4] = '\0';
      return BAD("the '%s' chunk (%u bytes) runs past the end", name, size);
    }
    pos += size;
    /* Chunks are padded to even sizes; writers often omit the pad byte of
     * the last chunk, so a missing one at the very end is no error. */
    if ((size & 1u) && pos < end) pos++;
  }
}
