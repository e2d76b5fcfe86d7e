/* Checks that bytes from a provider are an MP3 stream, and measures it by
 * walking every MPEG audio frame header. Nothing is decoded.
 *
 * Accepted: an optional ID3v2 tag, then MPEG-1, 2 or 2.5 Layer III frames
 * back to back, all at the first frame's version and sample rate, then
 * optionally an ID3v1 or APE tag. Anything else (bytes between frames, a
 * last frame cut short, free-format bitrates) is refused: it means the
 * provider sent something other than what was asked, or sent it damaged. */
#include "stages/audio.h"
#include "util/err.h"

#include <string.h>

#define BAD(...) jobq__err(JOBQ_EPROVIDER, "not an MP3 stream: " __VA_ARGS__)

typedef struct frame {
  unsigned version;  /* header bits 19-20: 0 MPEG-2.5, 2 MPEG-2, 3 MPEG-1 */
  unsigned rate_idx; /* header bits 10-11 */
  unsigned rate;     /* Hz */
  unsigned samples;  /* per frame: 1152 (MPEG-1) or 576 */
  unsigned crc;      /* a 16-bit CRC follows the header */
  unsigned side;     /* bytes of side information after header (and CRC) */
  size_t len;        /* whole frame, header included */
} frame;

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses the 4-byte header at p; NULL, or why it is not a Layer III header. */
static const char *parse_header(const uint8_t *p, frame *f) {
  static const unsigned kbps1[16] = {0,  32,  40,  48,  56,  64,  80,  96,
                                     112, 128, 160, 192, 224, 256, 320, 0};
  static const unsigned kbps2[16] = {0, 8,  16, 24,  32,  40,  48,  56,
                                     64, 80, 96, 112, 128, 144, 160, 0};
  static const unsigned rates[4][3] = {
      {11025, 12000, 8000}, {0, 0, 0}, {22050, 24000, 16000}, {44100, 48000, 32000}};
  uint32_t h = be32(p);
  if ((h & 0xFFE00000u) != 0xFFE00000u) return "no frame sync";
  unsigned version = h >> 19 & 3, layer = h >> 17 & 3, br = h >> 12 & 15, sr = h >> 10 & 3;
  if (version == 1) return "reserved MPEG version";
  if (layer != 1) return layer == 0 ? "reserved layer" : "MPEG audio, but Layer I or II, not III";
  if (br == 0) return "free-format bitrate (not supported)";
  if (br == 15) return "invalid bitrate index";
  if (sr == 3) return "reserved sample rate index";
  if ((h & 3) == 2) return "reserved emphasis";
  unsigned mono = (h >> 6 & 3) == 3, pad = h >> 9 & 1;
  unsigned kbps = version == 3 ? kbps1[br] : kbps2[br];
  f->version = version;
  f->rate_idx = sr;
  f->rate = rates[version][sr];
  f->samples = version == 3 ? 1152 : 576;
  f->crc = !(h >> 16 & 1);
  f->side = version == 3 ? (mono ? 17 : 32) : (mono ? 9 : 17);
  /* bytes = samples / 8 * bits per second / rate, plus one padding byte */
  f->len = (size_t)(f->samples / 8) * kbps * 1000 / f->rate + pad;
  return NULL;
}

/* Encoder delay and padding (samples) from a Xing/Info frame's LAME
 * extension, which LAME and ffmpeg write; 0 and 0 if there is none. Returns
 * whether the frame at p is a Xing/Info/VBRI frame, which holds no audio. */
static int info_frame(const uint8_t *p, const frame *f, unsigned *delay, unsigned *padding) {
  *delay = *padding = 0;
  size_t at = 4 + (f->crc ? 2 : 0) + f->side;
  if (f->len >= 36 + 4 && memcmp(p + 36, "VBRI", 4) == 0) return 1;
  if (f->len < at + 8) return 0;
  if (memcmp(p + at, "Xing", 4) != 0 && memcmp(p + at, "Info", 4) != 0) return 0;
  uint32_t flags = be32(p + at + 4);
  size_t ext = at + 8 + (flags & 1 ? 4 : 0) + (flags & 2 ? 4 : 0) + (flags & 4 ? 100 : 0) +
               (flags & 8 ? 4 : 0);
  /* The extension: a 9-byte encoder name, then at byte 21 the delay and
   * the padding as two 12-bit numbers. */
  if (f->len >= ext + 24 &&
      (memcmp(p + ext, "LAME", 4) == 0 || memcmp(p + ext, "Lavf", 4) == 0 ||
       memcmp(p + ext, "Lavc", 4) == 0)) {
    const uint8_t *d = p + ext + 21;
    *delay = (unsigned)d[0] << 4 | d[1] >> 4;
    *padding = (unsigned)(d[1] & 15) << 8 | d[2];
  }
  return 1;
}

/* Size of an ID3v2 tag at p (n bytes available), 0 if there is none, or
 * (size_t)-1 if one starts but is malformed or longer than the input. */
static size_t id3v2_size(const uint8_t *p, size_t n) {
  if (n < 3 || memcmp(p, "ID3", 3) != 0) return 0;
  if (n < 10) return (size_t)-1;
  if (p[3] < 2 || p[3] > 4 || p[4] == 0xFF) return (size_t)-1;
  if ((p[6] | p[7] | p[8] | p[9]) & 0x80) return (size_t)-1; /* not syncsafe */
  size_t size = (size_t)p[6] << 21 | (size_t)p[7] << 14 | (size_t)p[8] << 7 | p[9];
  size += 10 + (p[3] == 4 && (p[5] & 0x10) ? 10 : 0); /* header, and v2.4's footer */
  return size > n ? (size_t)-1 : size;
}

/* Tags that may follow the last frame: ID3v1 (exactly the last 128 bytes),
 * or an APEv2 / Lyrics3 block (which an ID3v1 tag may follow in turn). */
static int trailing_tag(const uint8_t *p, size_t n) {
  if (n == 128 && memcmp(p, "TAG", 3) == 0) return 1;
  if (n >= 32 && memcmp(p, "APETAGEX", 8) == 0) return 1;
  if (n >= 11 && memcmp(p, "LYRICSBEGIN", 11) == 0) return 1;
  return 0;
}

int jobq__mp3_probe(const void *bytes, size_t len, double *out_seconds) {
  if (bytes == NULL && len > 0) return jobq__err(JOBQ_EINVAL, "jobq__mp3_probe: NULL bytes");
  const uint8_t *b = bytes;
  if (len == 0) return BAD("no bytes");
  size_t pos = id3v2_size(b, len);
  if (pos == (size_t)-1) return BAD("malformed or truncated ID3v2 tag");
  if (len - pos < 4) return BAD("no frame after %zu bytes of ID3v2 tag", pos);

  frame first, f;
  const char *why = parse_header(b + pos, &first);
  if (why != NULL) return BAD("%s at byte %zu", why, pos);
  if (first.len > len - pos)
    return BAD("the first frame (%zu bytes) is cut short at %zu bytes", first.len, len - pos);
  unsigned delay, padding;
  int info = info_frame(b + pos, &first, &delay, &padding);
  size_t frames = info ? 0 : 1;
  size_t at = pos + first.len;
  /* A lone header is likely chance (random bytes hold a sync word every
   * few KiB); a second one exactly where the first frame ends is not. */
  if (len - at < 4 || parse_header(b + at, &f) != NULL || f.version != first.version ||
      f.rate_idx != first.rate_idx)
    return BAD("no second frame header where the first frame ends (byte %zu)", at);

  while (at < len) {
    size_t left = len - at;
    if (trailing_tag(b + at, left)) break;
    if (left < 4) return BAD("%zu stray bytes after the last frame", left);
    why = parse_header(b + at, &f);
    if (why != NULL) return BAD("%s at byte %zu, after %zu frames", why, at, frames);
    if (f.version != first.version || f.rate_idx != first.rate_idx)
      return BAD("the frame at byte %zu changes the MPEG version or sample rate", at);
    if (f.len > left) return BAD("the last frame is cut short (%zu of %zu bytes)", left, f.len);
    frames++;
    at += f.len;
  }
  if (frames == 0) return BAD("no audio frames");
  if (out_seconds != NULL) {
    /* frames < len, and samples per frame <= 1152: no overflow. */
    uint64_t samples = (uint64_t)frames * first.samples;
    if ((uint64_t)delay + padding <= samples) samples -= (uint64_t)delay + padding;
    *out_seconds = (double)samples / first.rate;
  }
  return 0;
}
