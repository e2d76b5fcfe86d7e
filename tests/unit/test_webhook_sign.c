/* jobq_webhook_sign and jobq_webhook_verify: the Standard Webhooks example
 * signature, round trips, rotation with two secrets, the tolerance window,
 * the three kinds of JOBQ_ESIGNATURE, and bad input (a specific code, a
 * sentence, nothing written, no secret quoted). The check against the
 * reference implementation is tests/unit/test_webhook_interop.c. */
#include "testutil.h"

/* The example of the Standard Webhooks reference libraries' tests. */
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET2 "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24="
#define MSG_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define TS 1614265330
#define BODY "{\"test\": 2432232314}"
#define SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static int verify1(const char *secret, const char *id, const char *ts, const char *header,
                   const char *body, int64_t now) {
  const char *s[] = {secret};
  return jobq_webhook_verify(s, 1, id, ts, header, body, strlen(body), now,
                             JOBQ_WEBHOOK_TOLERANCE_DEFAULT);
}

/* The sentence never carries key material: neither the secret's base64 nor
 * any MAC of the test. */
static void assert_no_secret_in_error(void) {
  const char *e = jobq_last_error();
  assert_null(strstr(e, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
  assert_null(strstr(e, "c2Vjb25k"));
  assert_null(strstr(e, "g0hM9SsE"));
  assert_null(strstr(e, "whsec_M"));
}

static void test_sign_spec_example(void **state) {
  (void)state;
  char out[JOBQ_WEBHOOK_SIGNATURE_SIZE];
  TAPI_OK(jobq_webhook_sign(SECRET, MSG_ID, TS, BODY, strlen(BODY), out, sizeof out));
  assert_string_equal(out, SIG);
  assert_int_equal(strlen(out) + 1, JOBQ_WEBHOOK_SIGNATURE_SIZE);
  /* the exact size is enough */
  char exact[48];
  TAPI_OK(jobq_webhook_sign(SECRET, MSG_ID, TS, BODY, strlen(BODY), exact, 48));
  assert_string_equal(exact, SIG);
}

static void test_verify_spec_example(void **state) {
  (void)state;
  TAPI_OK(verify1(SECRET, MSG_ID, "1614265330", SIG, BODY, TS));
  /* at both edges of the window */
  TAPI_OK(verify1(SECRET, MSG_ID, "1614265330", SIG, BODY, TS + 300));
  TAPI_OK(verify1(SECRET, MSG_ID, "1614265330", SIG, BODY, TS - 300));
}

static void test_verify_body_binary_safe(void **state) {
  (void)state;
  /* A NUL inside the body counts: body_len, not strlen, is the length. */
  const char body[] = "{\"a\":\"x\"}\0tail";
  char sig[JOBQ_WEBHOOK_SIGNATURE_SIZE], sig_short[JOBQ_WEBHOOK_SIGNATURE_SIZE];
  TAPI_OK(jobq_webhook_sign(SECRET, "m1", 1000, body, sizeof body - 1, sig, sizeof sig));
  TAPI_OK(jobq_webhook_sign(SECRET, "m1", 1000, body, strlen(body), sig_short, sizeof sig_short));
  assert_string_not_equal(sig, sig_short);
  const char *s[] = {SECRET};
  TAPI_OK(jobq_webhook_verify(s, 1, "m1", "1000", sig, body, sizeof body - 1, 1000, 300));
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           jobq_webhook_verify(s, 1, "m1", "1000", sig, body, strlen(body), 1000, 300));
  TAPI_ERR_HAS("no match");
  /* the empty body */
  TAPI_OK(jobq_webhook_sign(SECRET, "m1", 1000, "", 0, sig, sizeof sig));
  TAPI_OK(jobq_webhook_verify(s, 1, "m1", "1000", sig, "", 0, 1000, 300));
}

static void test_verify_rotation(void **state) {
  (void)state;
  char a[JOBQ_WEBHOOK_SIGNATURE_SIZE], b[JOBQ_WEBHOOK_SIGNATURE_SIZE];
  TAPI_OK(jobq_webhook_sign(SECRET, MSG_ID, TS, BODY, strlen(BODY), a, sizeof a));
  TAPI_OK(jobq_webhook_sign(SECRET2, MSG_ID, TS, BODY, strlen(BODY), b, sizeof b));
  assert_string_not_equal(a, b);
  char both[2 * JOBQ_WEBHOOK_SIGNATURE_SIZE];
  snprintf(both, sizeof both, "%s %s", a, b);
  /* The sender signs with both during a rotation; a receiver that knows
   * either accepts. */
  TAPI_OK(verify1(SECRET, MSG_ID, "1614265330", both, BODY, TS));
  TAPI_OK(verify1(SECRET2, MSG_ID, "1614265330", both, BODY, TS));
  /* A receiver with both secrets accepts either signature alone. */
  const char *s[] = {SECRET2, SECRET};
  TAPI_OK(jobq_webhook_verify(s, 2, MSG_ID, "1614265330", a, BODY, strlen(BODY), TS, 300));
  TAPI_OK(jobq_webhook_verify(s, 2, MSG_ID, "1614265330", b, BODY, strlen(BODY), TS, 300));
  /* Neither secret: no match. */
  const char *other[] = {"whsec_b3RoZXI="};
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           jobq_webhook_verify(other, 1, MSG_ID, "1614265330", both, BODY, strlen(BODY), TS, 300));
  TAPI_ERR_HAS("no match");
  assert_no_secret_in_error();
  /* Future versions and unknown entries are skipped, v1 still found. */
  char mixed[200];
  snprintf(mixed, sizeof mixed, "v1a,c29tZXRoaW5n v2,abc  %s", a);
  TAPI_OK(verify1(SECRET, MSG_ID, "1614265330", mixed, BODY, TS));
}

static void test_verify_tolerance(void **state) {
  (void)state;
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           verify1(SECRET, MSG_ID, "1614265330", SIG, BODY, TS + 301));
  TAPI_ERR_HAS("timestamp outside tolerance");
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           verify1(SECRET, MSG_ID, "1614265330", SIG, BODY, TS - 301));
  TAPI_ERR_HAS("timestamp outside tolerance");
  const char *s[] = {SECRET};
  /* tolerance 0: only the very second */
  TAPI_OK(jobq_webhook_verify(s, 1, MSG_ID, "1614265330", SIG, BODY, strlen(BODY), TS, 0));
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           jobq_webhook_verify(s, 1, MSG_ID, "1614265330", SIG, BODY, strlen(BODY), TS + 1, 0));
  /* extremes do not overflow */
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           jobq_webhook_verify(s, 1, MSG_ID, "9223372036854775807", SIG, BODY, strlen(BODY),
                               INT64_MIN, INT64_MAX - 1));
  TAPI_ERR_HAS("timestamp outside tolerance");
  /* A replay with a changed timestamp: in the window, but the MAC covers it. */
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           verify1(SECRET, MSG_ID, "1614265331", SIG, BODY, TS));
  TAPI_ERR_HAS("no match");
}

static void test_verify_malformed(void **state) {
  (void)state;
  static const char *const bad_ts[] = {"", "abc", "-1614265330", "+1614265330", " 1614265330",
                                       "1614265330 ", "1614265330.0", "1e9",
                                       "99999999999999999999"};
  for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
    TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify", verify1(SECRET, MSG_ID, bad_ts[i], SIG, BODY, TS));
    TAPI_ERR_HAS("malformed header");
  }
  static const char *const bad_sig[] = {"", " ", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                        "v1,", "v1,g0hM9SsE", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
                                        "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE="};
  for (size_t i = 0; i < sizeof bad_sig / sizeof bad_sig[0]; i++) {
    TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify", verify1(SECRET, MSG_ID, "1614265330", bad_sig[i], BODY, TS));
    TAPI_ERR_HAS("malformed header");
    assert_no_secret_in_error();
  }
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify", verify1(SECRET, "", "1614265330", SIG, BODY, TS));
  TAPI_ERR_HAS("malformed header");
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify", verify1(SECRET, "msg 1", "1614265330", SIG, BODY, TS));
  TAPI_ERR_HAS("malformed header");
  /* a wrong MAC of the right shape */
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           verify1(SECRET, MSG_ID, "1614265330", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", BODY, TS));
  TAPI_ERR_HAS("no match");
  TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
           verify1(SECRET, MSG_ID, "1614265330", SIG, "{\"test\": 2432232315}", TS));
  TAPI_ERR_HAS("no match");
  assert_no_secret_in_error();
}

/* Each bad argument: JOBQ_EINVAL, a sentence naming the function, out
 * untouched. */
#define SIGN_BAD(...)                                                                        \
  do {                                                                                       \
    memset(out, 'Z', sizeof out);                                                            \
    TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_sign", jobq_webhook_sign(__VA_ARGS__));              \
    for (size_t k_ = 0; k_ < sizeof out; k_++) assert_int_equal(out[k_], 'Z');               \
    assert_no_secret_in_error();                                                             \
  } while (0)

static void test_sign_bad_input(void **state) {
  (void)state;
  char out[64];
  size_t n = strlen(BODY);
  SIGN_BAD(NULL, MSG_ID, TS, BODY, n, out, sizeof out);
  TAPI_ERR_HAS("secret is NULL");
  SIGN_BAD(SECRET, NULL, TS, BODY, n, out, sizeof out);
  SIGN_BAD(SECRET, MSG_ID, TS, NULL, 0, out, sizeof out);
  TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_sign", jobq_webhook_sign(SECRET, MSG_ID, TS, BODY, n, NULL, 64));
  SIGN_BAD(SECRET, MSG_ID, TS, BODY, n, out, 47);
  TAPI_ERR_HAS("JOBQ_WEBHOOK_SIGNATURE_SIZE");
  SIGN_BAD(SECRET, MSG_ID, TS, BODY, n, out, 0);
  SIGN_BAD(SECRET, "", TS, BODY, n, out, sizeof out);
  TAPI_ERR_HAS("msg_id");
  SIGN_BAD(SECRET, "msg 1", TS, BODY, n, out, sizeof out);
  SIGN_BAD(SECRET, "msg\n1", TS, BODY, n, out, sizeof out);
  SIGN_BAD(SECRET, "msg\x7f", TS, BODY, n, out, sizeof out);
  SIGN_BAD(SECRET, "msg_\xc3\xa9", TS, BODY, n, out, sizeof out);
  SIGN_BAD(SECRET, MSG_ID, -1, BODY, n, out, sizeof out);
  /* secrets: the prefix is required, the rest strict base64, not empty */
  SIGN_BAD("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", MSG_ID, TS, BODY, n, out, sizeof out);
  TAPI_ERR_HAS("whsec_");
  SIGN_BAD("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", MSG_ID, TS, BODY, n, out, sizeof out);
  SIGN_BAD("whsec_", MSG_ID, TS, BODY, n, out, sizeof out);
  SIGN_BAD("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", MSG_ID, TS, BODY, n, out, sizeof out);
  SIGN_BAD("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!", MSG_ID, TS, BODY, n, out, sizeof out);
  SIGN_BAD("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ", MSG_ID, TS, BODY, n, out, sizeof out);
  /* a very long secret is refused, not truncated */
  char *big = malloc(4000);
  assert_non_null(big);
  memcpy(big, "whsec_", 6);
  memset(big + 6, 'A', 3992);
  big[3998] = '\0';
  SIGN_BAD(big, MSG_ID, TS, BODY, n, out, sizeof out);
  free(big);
  /* a key longer than a SHA-256 block is fine (it is hashed first) */
  char longkey[6 + 200 + 1] = "whsec_";
  memset(longkey + 6, 'Q', 200);
  longkey[206] = '\0';
  TAPI_OK(jobq_webhook_sign(longkey, MSG_ID, TS, BODY, n, out, sizeof out));
  const char *s[] = {longkey};
  TAPI_OK(jobq_webhook_verify(s, 1, MSG_ID, "1614265330", out, BODY, n, TS, 300));
}

static void test_verify_bad_input(void **state) {
  (void)state;
  const char *s[] = {SECRET};
  const char *s_null[] = {SECRET, NULL};
  const char *s_bad[] = {SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
  size_t n = strlen(BODY);
#define VBAD(...)                                                                              \
  do {                                                                                       \
    TAPI_ERR(JOBQ_EINVAL, "jobq_webhook_verify", jobq_webhook_verify(__VA_ARGS__));          \
    assert_no_secret_in_error();                                                             \
  } while (0)
  VBAD(NULL, 1, MSG_ID, "1614265330", SIG, BODY, n, TS, 300);
  VBAD(s, 0, MSG_ID, "1614265330", SIG, BODY, n, TS, 300);
  VBAD(s_null, 2, MSG_ID, "1614265330", SIG, BODY, n, TS, 300);
  TAPI_ERR_HAS("secrets[1] is NULL");
  /* a bad secret is the receiver's mistake, even beside a good one */
  VBAD(s_bad, 2, MSG_ID, "1614265330", SIG, BODY, n, TS, 300);
  TAPI_ERR_HAS("secrets[1]");
  VBAD(s, 1, NULL, "1614265330", SIG, BODY, n, TS, 300);
  VBAD(s, 1, MSG_ID, NULL, SIG, BODY, n, TS, 300);
  VBAD(s, 1, MSG_ID, "1614265330", NULL, BODY, n, TS, 300);
  VBAD(s, 1, MSG_ID, "1614265330", SIG, NULL, 0, TS, 300);
  VBAD(s, 1, MSG_ID, "1614265330", SIG, BODY, n, TS, -1);
#undef VBAD
}

/* The new code's value (ABI), name and sentence. */
static void test_esignature_code(void **state) {
  (void)state;
  assert_int_equal(JOBQ_ESIGNATURE, -28);
  assert_string_equal(jobq_err_name(JOBQ_ESIGNATURE), "JOBQ_ESIGNATURE");
  assert_string_equal(jobq_strerror(JOBQ_ESIGNATURE),
                      "a webhook signature does not match, or its timestamp is too old or too new");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sign_spec_example),   cmocka_unit_test(test_verify_spec_example),
    cmocka_unit_test(test_verify_body_binary_safe), cmocka_unit_test(test_verify_rotation),
    cmocka_unit_test(test_verify_tolerance),    cmocka_unit_test(test_verify_malformed),
    cmocka_unit_test(test_sign_bad_input),      cmocka_unit_test(test_verify_bad_input),
    cmocka_unit_test(test_esignature_code),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
