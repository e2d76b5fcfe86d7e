/* SHA-256 after FIPS 180-4 §6.2, written for clarity over speed: a webhook
 * signature hashes one body once, so the straightforward loop is enough. */
#include "util/sha256.h"

#include <string.h>

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void block(uint32_t h[8], const unsigned char *p) {
  uint32_t w[64];
  for (int t = 0; t < 16; t++)
    w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
           (uint32_t)p[4 * t + 3];
  for (int t = 16; t < 64; t++) {
    uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
    uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int t = 0; t < 64; t++) {
    uint32_t t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
    uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += k;
}

void jobq__sha256_init(jobq__sha256_ctx *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->len = 0;
  s->nbuf = 0;
}

void jobq__sha256_update(jobq__sha256_ctx *s, const void *data, size_t n) {
  const unsigned char *p = data;
  s->len += n;
  if (s->nbuf > 0) {
    size_t take = JOBQ__SHA256_BLOCK - s->nbuf;
    if (take > n) take = n;
    memcpy(s->buf + s->nbuf, p, take);
    s->nbuf += take;
    p += take;
    n -= take;
    if (s->nbuf < JOBQ__SHA256_BLOCK) return;
    block(s->h, s->buf);
    s->nbuf = 0;
  }
  for (; n >= JOBQ__SHA256_BLOCK; p += JOBQ__SHA256_BLOCK, n -= JOBQ__SHA256_BLOCK) block(s->h, p);
  if (n > 0) {
    memcpy(s->buf, p, n);
    s->nbuf = n;
  }
}

void jobq__sha256_final(jobq__sha256_ctx *s, unsigned char out[JOBQ__SHA256_SIZE]) {
  /* Padding (§5.1.1): 0x80, zeros to 56 mod 64, the length in bits. */
  uint64_t bits = s->len * 8;
  unsigned char pad[JOBQ__SHA256_BLOCK + 8] = {0x80};
  size_t npad = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
  for (int i = 0; i < 8; i++) pad[npad + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
  jobq__sha256_update(s, pad, npad + 8);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(s->h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
    out[4 * i + 3] = (unsigned char)s->h[i];
  }
  jobq__wipe(s, sizeof *s);
}

void jobq__sha256(const void *data, size_t n, unsigned char out[JOBQ__SHA256_SIZE]) {
  jobq__sha256_ctx s;
  jobq__sha256_init(&s);
  jobq__sha256_update(&s, data, n);
  jobq__sha256_final(&s, out);
}

void jobq__hmac_sha256_init(jobq__hmac_sha256 *h, const void *key, size_t key_len) {
  unsigned char k[JOBQ__SHA256_BLOCK] = {0};
  if (key_len > JOBQ__SHA256_BLOCK)
    jobq__sha256(key, key_len, k);
  else if (key_len > 0)
    memcpy(k, key, key_len);
  unsigned char ikey[JOBQ__SHA256_BLOCK];
  for (int i = 0; i < JOBQ__SHA256_BLOCK; i++) {
    ikey[i] = k[i] ^ 0x36;
    h->okey[i] = k[i] ^ 0x5c;
  }
  jobq__sha256_init(&h->inner);
  jobq__sha256_update(&h->inner, ikey, sizeof ikey);
  jobq__wipe(k, sizeof k);
  jobq__wipe(ikey, sizeof ikey);
}

void jobq__hmac_sha256_update(jobq__hmac_sha256 *h, const void *data, size_t n) {
  jobq__sha256_update(&h->inner, data, n);
}

void jobq__hmac_sha256_final(jobq__hmac_sha256 *h, unsigned char out[JOBQ__SHA256_SIZE]) {
  unsigned char ih[JOBQ__SHA256_SIZE];
  jobq__sha256_final(&h->inner, ih);
  jobq__sha256_ctx o;
  jobq__sha256_init(&o);
  jobq__sha256_update(&o, h->okey, sizeof h->okey);
  jobq__sha256_update(&o, ih, sizeof ih);
  jobq__sha256_final(&o, out);
  jobq__wipe(ih, sizeof ih);
  jobq__wipe(h, sizeof *h);
}

void jobq__wipe(void *p, size_t n) {
  /* A volatile pointer: each store is observable, so none is removed. */
  volatile unsigned char *v = p;
  while (n--) *v++ = 0;
}
