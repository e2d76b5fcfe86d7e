/* Standard Webhooks 1.0 signatures: signing for the delivery that comes
 * with the outbox, and verification for C receivers. The signed content is
 * "<id>.<timestamp>.<body>"; the key is the base64 part of "whsec_<base64>".
 * Neither secrets nor MACs are ever put into an error sentence: a sentence
 * may end up in a log that the receiver's operators read. */
#include "util/base64.h"
#include "util/err.h"
#include "util/sha256.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "whsec_"
#define PREFIX_LEN (sizeof PREFIX - 1)
/* Keys are 24 to 64 bytes in practice; the bound keeps the key on the
 * stack and still leaves room for any sane secret. */
#define KEY_MAX 1024

/* "v1," + 44 base64 characters + NUL (the header's size in jobq.h). */
_Static_assert(JOBQ_WEBHOOK_SIGNATURE_SIZE == 3 + JOBQ__BASE64_LEN(JOBQ__SHA256_SIZE) + 1,
               "JOBQ_WEBHOOK_SIGNATURE_SIZE");

/* The spec leaves the id's characters open; printable ASCII without spaces
 * keeps it a valid header value that needs no quoting anywhere. */
static int id_ok(const char *id) {
  if (id[0] == '\0') return 0;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    if (*p < 0x21 || *p > 0x7e) return 0;
  return 1;
}

/* Decodes secret into key; the sentence names the argument (what), never
 * the secret. */
static int decode_secret(const char *fn, const char *what, const char *secret,
                         unsigned char key[KEY_MAX], size_t *key_len) {
  if (strncmp(secret, PREFIX, PREFIX_LEN) != 0)
    return jobq__err(JOBQ_EINVAL, "%s: %s does not start with \"whsec_\"", fn, what);
  const char *b64 = secret + PREFIX_LEN;
  size_t n = strlen(b64);
  if (n == 0) return jobq__err(JOBQ_EINVAL, "%s: %s has no key after \"whsec_\"", fn, what);
  if (n > JOBQ__BASE64_LEN(KEY_MAX))
    return jobq__err(JOBQ_EINVAL, "%s: %s is longer than %d bytes of key", fn, what, KEY_MAX);
  long got = jobq__base64_decode(b64, n, key, KEY_MAX);
  if (got <= 0)
    return jobq__err(JOBQ_EINVAL, "%s: %s is not \"whsec_\" followed by base64 (RFC 4648)", fn,
                     what);
  *key_len = (size_t)got;
  return 0;
}

static void mac(const unsigned char *key, size_t key_len, const char *id, int64_t ts,
                const char *body, size_t body_len, unsigned char out[JOBQ__SHA256_SIZE]) {
  char t[24];
  int tn = snprintf(t, sizeof t, "%" PRId64, ts);
  jobq__hmac_sha256 h;
  jobq__hmac_sha256_init(&h, key, key_len);
  jobq__hmac_sha256_update(&h, id, strlen(id));
  jobq__hmac_sha256_update(&h, ".", 1);
  jobq__hmac_sha256_update(&h, t, (size_t)tn);
  jobq__hmac_sha256_update(&h, ".", 1);
  jobq__hmac_sha256_update(&h, body, body_len);
  jobq__hmac_sha256_final(&h, out);
}

JOBQ_API int jobq_webhook_sign(const char *secret, const char *msg_id, int64_t timestamp_s,
                               const char *body, size_t body_len, char *out, size_t cap) {
  static const char fn[] = "jobq_webhook_sign";
  if (secret == NULL) return jobq__err(JOBQ_EINVAL, "%s: secret is NULL", fn);
  if (msg_id == NULL) return jobq__err(JOBQ_EINVAL, "%s: msg_id is NULL", fn);
  if (body == NULL) return jobq__err(JOBQ_EINVAL, "%s: body is NULL (use \"\" for none)", fn);
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "%s: out is NULL", fn);
  if (cap < JOBQ_WEBHOOK_SIGNATURE_SIZE)
    return jobq__err(JOBQ_EINVAL, "%s: cap is %zu, less than JOBQ_WEBHOOK_SIGNATURE_SIZE (%d)", fn,
                     cap, JOBQ_WEBHOOK_SIGNATURE_SIZE);
  if (!id_ok(msg_id))
    return jobq__err(JOBQ_EINVAL,
                     "%s: msg_id is empty or has a character outside printable ASCII "
                     "(spaces and control characters are refused)",
                     fn);
  if (timestamp_s < 0) return jobq__err(JOBQ_EINVAL, "%s: timestamp_s is negative", fn);
  unsigned char key[KEY_MAX];
  size_t key_len = 0;
  int rc = decode_secret(fn, "secret", secret, key, &key_len);
  if (rc != 0) return rc;
  unsigned char m[JOBQ__SHA256_SIZE];
  mac(key, key_len, msg_id, timestamp_s, body, body_len, m);
  jobq__wipe(key, key_len);
  memcpy(out, "v1,", 3);
  jobq__base64_encode(m, sizeof m, out + 3);
  return 0;
}

/* Strict decimal: digits only, no sign, no spaces, fits int64. */
static int parse_ts(const char *s, int64_t *out) {
  if (*s == '\0') return -1;
  int64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    if (v > (INT64_MAX - (*s - '0')) / 10) return -1;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  return 0;
}

static int ct_equal(const unsigned char *a, const unsigned char *b, size_t n) {
  /* Every byte is looked at whatever differs, so the time says nothing
   * about how much of a forged MAC was right. */
  unsigned char d = 0;
  for (size_t i = 0; i < n; i++) d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

JOBQ_API int jobq_webhook_verify(const char *const *secrets, size_t n_secrets, const char *msg_id,
                                 const char *timestamp, const char *signature_header,
                                 const char *body, size_t body_len, int64_t now_s,
                                 int64_t tolerance_s) {
  static const char fn[] = "jobq_webhook_verify";
  if (secrets == NULL) return jobq__err(JOBQ_EINVAL, "%s: secrets is NULL", fn);
  if (n_secrets == 0) return jobq__err(JOBQ_EINVAL, "%s: n_secrets is 0", fn);
  for (size_t i = 0; i < n_secrets; i++)
    if (secrets[i] == NULL) return jobq__err(JOBQ_EINVAL, "%s: secrets[%zu] is NULL", fn, i);
  if (msg_id == NULL) return jobq__err(JOBQ_EINVAL, "%s: msg_id is NULL", fn);
  if (timestamp == NULL) return jobq__err(JOBQ_EINVAL, "%s: timestamp is NULL", fn);
  if (signature_header == NULL) return jobq__err(JOBQ_EINVAL, "%s: signature_header is NULL", fn);
  if (body == NULL) return jobq__err(JOBQ_EINVAL, "%s: body is NULL (use \"\" for none)", fn);
  if (tolerance_s < 0) return jobq__err(JOBQ_EINVAL, "%s: tolerance_s is negative", fn);
  /* The secrets are the receiver's own configuration: a bad one is a
   * programming error (EINVAL) even when the message is forged, so every
   * secret is checked before the message is looked at. */
  for (size_t i = 0; i < n_secrets; i++) {
    unsigned char key[KEY_MAX];
    size_t key_len = 0;
    char what[40];
    snprintf(what, sizeof what, "secrets[%zu]", i);
    int rc = decode_secret(fn, what, secrets[i], key, &key_len);
    jobq__wipe(key, sizeof key);
    if (rc != 0) return rc;
  }
  /* From here on the input came from the network: anything wrong with it
   * is JOBQ_ESIGNATURE. */
  if (!id_ok(msg_id))
    return jobq__err(JOBQ_ESIGNATURE,
                     "%s: malformed header: webhook-id is empty or has a character outside "
                     "printable ASCII",
                     fn);
  int64_t ts = 0;
  if (parse_ts(timestamp, &ts) != 0)
    return jobq__err(JOBQ_ESIGNATURE,
                     "%s: malformed header: webhook-timestamp is not a number of seconds", fn);
  /* |now - ts| > tolerance in unsigned arithmetic: the true distance
   * between two int64 values always fits a uint64, and nothing overflows. */
  uint64_t dist = ts < now_s ? (uint64_t)now_s - (uint64_t)ts : (uint64_t)ts - (uint64_t)now_s;
  if (dist > (uint64_t)tolerance_s)
    return jobq__err(JOBQ_ESIGNATURE,
                     "%s: timestamp outside tolerance: webhook-timestamp is %" PRIu64
                     " s %s now, more than the %" PRId64 " s allowed",
                     fn, dist, ts < now_s ? "before" : "after", tolerance_s);

  /* The header's "v1,<base64>" entries, separated by spaces. Entries of
   * other versions are skipped (the spec reserves them); a v1 entry that is
   * not 32 bytes of base64 cannot match and is skipped too. */
  enum { MAX_SIGS = 16 };
  unsigned char sigs[MAX_SIGS][JOBQ__SHA256_SIZE];
  size_t nsigs = 0;
  for (const char *p = signature_header; *p && nsigs < MAX_SIGS;) {
    while (*p == ' ') p++;
    const char *e = p;
    while (*e && *e != ' ') e++;
    size_t n = (size_t)(e - p);
    if (n > 3 && memcmp(p, "v1,", 3) == 0) {
      long got = jobq__base64_decode(p + 3, n - 3, sigs[nsigs], JOBQ__SHA256_SIZE);
      if (got == JOBQ__SHA256_SIZE) nsigs++;
    }
    p = e;
  }
  if (nsigs == 0)
    return jobq__err(JOBQ_ESIGNATURE,
                     "%s: malformed header: webhook-signature has no \"v1,<base64>\" entry of "
                     "32 bytes",
                     fn);

  int match = 0;
  for (size_t i = 0; i < n_secrets; i++) {
    unsigned char key[KEY_MAX];
    size_t key_len = 0;
    (void)decode_secret(fn, "secret", secrets[i], key, &key_len); /* checked above */
    unsigned char m[JOBQ__SHA256_SIZE];
    mac(key, key_len, msg_id, ts, body, body_len, m);
    jobq__wipe(key, key_len);
    for (size_t j = 0; j < nsigs; j++) match |= ct_equal(m, sigs[j], sizeof m);
    jobq__wipe(m, sizeof m);
  }
  if (!match)
    return jobq__err(JOBQ_ESIGNATURE,
                     "%s: no match: no v1 signature of webhook-signature matches any of the %zu "
                     "secret(s)",
                     fn, n_secrets);
  return 0;
}
