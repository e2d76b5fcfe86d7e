/* SHA-256, HMAC-SHA256 and base64 (lib/util/sha256.c, lib/util/base64.c)
 * against the published vectors: FIPS 180-4's examples (NIST CSRC "Example
 * Algorithms", SHA-256 and the one-million-'a' message), RFC 4231 test
 * cases 1-7, RFC 4648 §10; and base64 text the strict decoder must refuse. */
#include "testutil.h"

#include "util/base64.h"
#include "util/sha256.h"

static void hex(const unsigned char *b, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void check_sha(const void *msg, size_t n, const char *want) {
  unsigned char d[JOBQ__SHA256_SIZE];
  char h[2 * JOBQ__SHA256_SIZE + 1];
  jobq__sha256(msg, n, d);
  hex(d, sizeof d, h);
  assert_string_equal(h, want);
}

static void test_sha256_nist(void **state) {
  (void)state;
  check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  check_sha(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                     "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  assert_int_equal(strlen(m896), 112);
  check_sha(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  char *a = malloc(1000000);
  assert_non_null(a);
  memset(a, 'a', 1000000);
  check_sha(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  free(a);
}

/* Any split of the message into updates gives the one-shot digest: the
 * partial-block buffer and the padding cross every block boundary. */
static void test_sha256_streaming(void **state) {
  (void)state;
  unsigned char msg[300];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)(i * 7 + 3);
  for (size_t n = 0; n <= sizeof msg; n += 1) {
    unsigned char one[JOBQ__SHA256_SIZE], parts[JOBQ__SHA256_SIZE];
    jobq__sha256(msg, n, one);
    for (size_t step = 1; step <= 70; step += 23) {
      jobq__sha256_ctx s;
      jobq__sha256_init(&s);
      for (size_t o = 0; o < n; o += step) jobq__sha256_update(&s, msg + o, n - o < step ? n - o : step);
      jobq__sha256_final(&s, parts);
      assert_memory_equal(one, parts, sizeof one);
    }
  }
}

static void check_hmac(const void *key, size_t kn, const void *data, size_t dn, const char *want) {
  unsigned char m[JOBQ__SHA256_SIZE];
  char h[2 * JOBQ__SHA256_SIZE + 1];
  jobq__hmac_sha256 c;
  jobq__hmac_sha256_init(&c, key, kn);
  /* in two pieces, to cover the streaming path too */
  jobq__hmac_sha256_update(&c, data, dn / 2);
  jobq__hmac_sha256_update(&c, (const char *)data + dn / 2, dn - dn / 2);
  jobq__hmac_sha256_final(&c, m);
  hex(m, sizeof m, h);
  h[strlen(want)] = '\0'; /* case 5 gives the first 128 bits only */
  assert_string_equal(h, want);
}

static void test_hmac_rfc4231(void **state) {
  (void)state;
  unsigned char k[131], d[50];
  memset(k, 0x0b, 20);
  check_hmac(k, 20, "Hi There", 8,
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  check_hmac("Jefe", 4, "what do ya want for nothing?", 28,
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  memset(k, 0xaa, 20);
  memset(d, 0xdd, 50);
  check_hmac(k, 20, d, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  for (int i = 0; i < 25; i++) k[i] = (unsigned char)(i + 1);
  memset(d, 0xcd, 50);
  check_hmac(k, 25, d, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  memset(k, 0x0c, 20);
  check_hmac(k, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b");
  memset(k, 0xaa, 131);
  const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  check_hmac(k, 131, d6, strlen(d6),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  const char *d7 = "This is a test using a larger than block-size key and a larger than "
                   "block-size data. The key needs to be hashed before being used by the HMAC "
                   "algorithm.";
  check_hmac(k, 131, d7, strlen(d7),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static void test_base64_rfc4648(void **state) {
  (void)state;
  static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *const text[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    char out[16];
    memset(out, 'X', sizeof out);
    size_t n = jobq__base64_encode(plain[i], strlen(plain[i]), out);
    assert_int_equal(n, JOBQ__BASE64_LEN(strlen(plain[i])));
    assert_string_equal(out, text[i]);
    unsigned char back[16];
    long got = jobq__base64_decode(text[i], strlen(text[i]), back, sizeof back);
    assert_int_equal(got, (long)strlen(plain[i]));
    assert_memory_equal(back, plain[i], (size_t)got);
  }
  /* every byte value and both extra characters of the alphabet */
  unsigned char all[256], back[256];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  char t[JOBQ__BASE64_LEN(256) + 1];
  jobq__base64_encode(all, 256, t);
  assert_non_null(strchr(t, '+'));
  assert_non_null(strchr(t, '/'));
  assert_int_equal(jobq__base64_decode(t, strlen(t), back, sizeof back), 256);
  assert_memory_equal(all, back, 256);
}

static void test_base64_refuses(void **state) {
  (void)state;
  static const char *const bad[] = {
    "Zg",       /* no padding */
    "Zg=",      /* length not a multiple of 4 */
    "Zm9vY",    /* likewise */
    "Zg=a",     /* a character after '=' */
    "Z===",     /* three '=' */
    "====",     /* only padding */
    "=Zg=",     /* '=' first */
    "Zg==Zg==", /* padding in the middle */
    "Zh==",     /* bits past the last byte not zero (RFC 4648 §3.5) */
    "Zm9=",     /* likewise, one '=' */
    "Zm-v",     /* the URL-safe alphabet is not this one */
    "Zm_v",     /* likewise */
    "Zm9v Yg=", /* a space */
    "Zm9v\nYg=", /* a line break */
    "Zm9\x80",  /* not ASCII */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    unsigned char out[16];
    if (jobq__base64_decode(bad[i], strlen(bad[i]), out, sizeof out) != -1)
      fail_msg("decoded \"%s\"", bad[i]);
  }
  /* a NUL inside the length is not a character of the alphabet */
  unsigned char out[16];
  assert_int_equal(jobq__base64_decode("Zm\0v", 4, out, sizeof out), -1);
  /* out too small: refused, not cut */
  assert_int_equal(jobq__base64_decode("Zm9vYmFy", 8, out, 5), -1);
  assert_int_equal(jobq__base64_decode("Zm9vYmFy", 8, out, 6), 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sha256_nist),    cmocka_unit_test(test_sha256_streaming),
    cmocka_unit_test(test_hmac_rfc4231),   cmocka_unit_test(test_base64_rfc4648),
    cmocka_unit_test(test_base64_refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
