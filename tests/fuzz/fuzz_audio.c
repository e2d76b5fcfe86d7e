/* Fuzz target: the parsers of audio a provider sends back (WAV, MP3 frame
 * walk). Untrusted bytes: they must never crash, read out of bounds or
 * leak, and a WAV they accept must hold what it says. */
#include "stages/audio.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  jobq__pcm pcm = {0};
  if (jobq__wav_parse(data, size, &pcm) == 0) {
    /* what was accepted fits in what was given (mixdown only shrinks) */
    if (pcm.n > size / 2 || pcm.rate <= 0) abort();
  }
  jobq__pcm_free(&pcm);
  double secs = -1;
  if (jobq__mp3_probe(data, size, &secs) == 0 && secs < 0) abort();
  return 0;
}
