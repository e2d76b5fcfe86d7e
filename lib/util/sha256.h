/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for signing webhooks
 * without a crypto library dependency. Not for passwords or anything that
 * needs a slow hash. */
#ifndef JOBQ_UTIL_SHA256_H
#define JOBQ_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define JOBQ__SHA256_SIZE 32
#define JOBQ__SHA256_BLOCK 64

typedef struct jobq__sha256_ctx {
  uint32_t h[8];
  uint64_t len;                            /* bytes hashed so far */
  unsigned char buf[JOBQ__SHA256_BLOCK];   /* a partial block */
  size_t nbuf;
} jobq__sha256_ctx;

void jobq__sha256_init(jobq__sha256_ctx *s);
void jobq__sha256_update(jobq__sha256_ctx *s, const void *data, size_t n);
/* Writes the digest and wipes the state. */
void jobq__sha256_final(jobq__sha256_ctx *s, unsigned char out[JOBQ__SHA256_SIZE]);
/* One call: the digest of data. */
void jobq__sha256(const void *data, size_t n, unsigned char out[JOBQ__SHA256_SIZE]);

/* HMAC-SHA256, streaming: init with the key (any length; a key longer than
 * a block is hashed first, RFC 2104 §2), update with the message, final. */
typedef struct jobq__hmac_sha256 {
  jobq__sha256_ctx inner;
  unsigned char okey[JOBQ__SHA256_BLOCK];  /* key XOR opad, for final */
} jobq__hmac_sha256;

void jobq__hmac_sha256_init(jobq__hmac_sha256 *h, const void *key, size_t key_len);
void jobq__hmac_sha256_update(jobq__hmac_sha256 *h, const void *data, size_t n);
/* Writes the MAC and wipes the state (the key material goes with it). */
void jobq__hmac_sha256_final(jobq__hmac_sha256 *h, unsigned char out[JOBQ__SHA256_SIZE]);

/* Wipes n bytes in a way the compiler may not drop as a dead store. */
void jobq__wipe(void *p, size_t n);

#endif
