/* libjobq's webhook signatures checked by code nobody here wrote: the
 * reference implementation of the Standard Webhooks specification (npm:
 * standardwebhooks, installed by tests/servers/install.sh) verifies what
 * jobq_webhook_sign made and signs what jobq_webhook_verify must accept;
 * Python's standard library (hmac, hashlib, base64) verifies the same
 * signatures, as docs/webhooks.md shows a receiver doing. Bodies: empty,
 * UTF-8, 1 MiB, and JSON with escapes and every kind of character; one
 * delivery signed with two secrets (a rotation).
 * Exits 77 (CTest: skipped) when node or the npm package is missing, after
 * the Python check has run. */
#include "testutil.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NCASES 6
static const char *const secrets[] = {
  "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=",
  /* 64 random bytes, longer than a SHA-256 block: the key is hashed first */
  "whsec_3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0g=",
};

static char dir[256];
static char manifest[300];
static const char *src;
static int64_t now;

typedef struct {
  char *body;
  size_t len;
  const char *id;
  const char *secret;
  char sig[2 * JOBQ_WEBHOOK_SIGNATURE_SIZE]; /* one entry, or two joined by '|' */
} wcase;
static wcase cases[NCASES];

static char *make_big(size_t *len) {
  /* {"data":"..."} of exactly 1 MiB: ASCII with 2-, 3- and 4-byte UTF-8
   * sequences mixed in. */
  const size_t total = 1u << 20;
  char *b = malloc(total);
  assert_non_null(b);
  size_t o = (size_t)sprintf(b, "{\"data\":\"");
  static const char *const bits[] = {"abc", "\xc3\xa9", "\xe4\xb8\x96", "\xf0\x9f\x8e\x99", " "};
  for (size_t i = 0; o < total - 2 - 4; i++) {
    const char *s = bits[i % 5];
    size_t n = strlen(s);
    memcpy(b + o, s, n);
    o += n;
  }
  while (o < total - 2) b[o++] = 'x';
  memcpy(b + o, "\"}", 2);
  *len = total;
  return b;
}

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  assert_non_null(d);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static void write_file(const char *path, const char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
  (void)state;
  src = getenv("JOBQ_SOURCE_DIR");
  if (src == NULL) src = ".";
  now = (int64_t)time(NULL); /* the npm library checks against its own clock */
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/jobq-whsign-XXXXXX", tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(dir));
  snprintf(manifest, sizeof manifest, "%s/manifest", dir);

  static const char utf8[] = "{\"title\":\"Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x99\",\"ok\":true}";
  /* JSON whose escapes a careless receiver would normalise: \u0000, a lone
   * escaped surrogate pair, \/, escaped controls, DEL, and spacing kept */
  static const char escapes[] =
    "{ \"nul\": \"a\\u0000b\", \"pair\": \"\\ud83c\\udf99\", \"slash\": \"\\/\",\n"
    "  \"ctl\": \"\\b\\f\\n\\r\\t\\u001f\", \"del\": \"\x7f\", \"q\": \"\\\"\\\\\",\t\"n\": -0.5e+10 }";
  size_t big_len = 0;
  char *big = make_big(&big_len);
  cases[0] = (wcase){dup_n("", 0), 0, "msg_empty", secrets[0], ""};
  cases[1] = (wcase){dup_n(utf8, sizeof utf8 - 1), sizeof utf8 - 1, "msg_utf8", secrets[0], ""};
  cases[2] = (wcase){big, big_len, "msg_1MiB", secrets[1], ""};
  cases[3] = (wcase){dup_n(escapes, sizeof escapes - 1), sizeof escapes - 1,
                     "0190a5f4-7c1e-7000-8000-000000000001", secrets[2], ""};
  /* a rotation: one delivery, signed with both secrets; checked with each */
  cases[4] = (wcase){dup_n(utf8, sizeof utf8 - 1), sizeof utf8 - 1, "msg_rotation", secrets[0], ""};
  cases[5] = (wcase){dup_n(utf8, sizeof utf8 - 1), sizeof utf8 - 1, "msg_rotation", secrets[1], ""};

  FILE *m = fopen(manifest, "w");
  assert_non_null(m);
  for (int i = 0; i < NCASES; i++) {
    wcase *c = &cases[i];
    if (i >= 4) {
      char a[JOBQ_WEBHOOK_SIGNATURE_SIZE], b[JOBQ_WEBHOOK_SIGNATURE_SIZE];
      TAPI_OK(jobq_webhook_sign(secrets[0], c->id, now, c->body, c->len, a, sizeof a));
      TAPI_OK(jobq_webhook_sign(secrets[1], c->id, now, c->body, c->len, b, sizeof b));
      snprintf(c->sig, sizeof c->sig, "%s|%s", a, b);
    } else {
      TAPI_OK(jobq_webhook_sign(c->secret, c->id, now, c->body, c->len, c->sig, sizeof c->sig));
    }
    char path[400];
    snprintf(path, sizeof path, "%s/body%d", dir, i);
    write_file(path, c->body, c->len);
    fprintf(m, "%s %s %lld %s %s\n", c->secret, c->id, (long long)now, path, c->sig);
  }
  assert_int_equal(fclose(m), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < NCASES; i++) {
    char path[400];
    snprintf(path, sizeof path, "%s/body%d", dir, i);
    unlink(path);
    free(cases[i].body);
  }
  unlink(manifest);
  rmdir(dir);
  return 0;
}

static int run(const char *cmd) {
  fflush(stdout);
  int rc = system(cmd);
  return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int have_node(void) {
  if (run("command -v node >/dev/null 2>&1") != 0) return 0;
  char p[512];
  snprintf(p, sizeof p, "%s/tests/servers/node_modules/standardwebhooks/package.json", src);
  struct stat st;
  return stat(p, &st) == 0;
}

/* Python's hmac/hashlib/base64 accept every signature libjobq made, and
 * refuse each with a changed body. */
static void test_python_verifies_libjobq(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "python3 '%s/tests/servers/webhook_check.py' '%s'", src, manifest);
  assert_int_equal(run(cmd), 0);
}

/* standardwebhooks' Webhook.verify accepts every signature libjobq made,
 * and refuses each with a changed body, id or timestamp. */
static void test_node_verifies_libjobq(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd '%s/tests/servers' && node webhook_check.js verify '%s'", src,
           manifest);
  assert_int_equal(run(cmd), 0);
}

/* standardwebhooks' Webhook.sign makes, byte for byte, the signature
 * jobq_webhook_sign made, and jobq_webhook_verify accepts it (and refuses
 * it for another body). */
static void test_libjobq_verifies_node(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "cd '%s/tests/servers' && node webhook_check.js sign '%s'", src,
           manifest);
  fflush(stdout);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[256];
  char ts[32];
  snprintf(ts, sizeof ts, "%lld", (long long)now);
  int n = 0;
  while (fgets(line, sizeof line, p) != NULL) {
    assert_true(n < NCASES);
    line[strcspn(line, "\r\n")] = '\0';
    wcase *c = &cases[n];
    char mine[JOBQ_WEBHOOK_SIGNATURE_SIZE];
    TAPI_OK(jobq_webhook_sign(c->secret, c->id, now, c->body, c->len, mine, sizeof mine));
    assert_string_equal(line, mine);
    const char *s[] = {c->secret};
    TAPI_OK(jobq_webhook_verify(s, 1, c->id, ts, line, c->body, c->len, now,
                                JOBQ_WEBHOOK_TOLERANCE_DEFAULT));
    /* a receiver in a rotation holds both secrets */
    TAPI_OK(jobq_webhook_verify(secrets, 3, c->id, ts, line, c->body, c->len, now,
                                JOBQ_WEBHOOK_TOLERANCE_DEFAULT));
    TAPI_ERR(JOBQ_ESIGNATURE, "jobq_webhook_verify",
             jobq_webhook_verify(s, 1, c->id, ts, line, "{}", 2, now,
                                 JOBQ_WEBHOOK_TOLERANCE_DEFAULT));
    TAPI_ERR_HAS("no match");
    n++;
  }
  assert_int_equal(pclose(p), 0);
  assert_int_equal(n, NCASES);
}

int main(void) {
  const struct CMUnitTest python[] = {cmocka_unit_test(test_python_verifies_libjobq)};
  const struct CMUnitTest node[] = {cmocka_unit_test(test_node_verifies_libjobq),
                                    cmocka_unit_test(test_libjobq_verifies_node)};
  int rc = cmocka_run_group_tests_name("python", python, setup, teardown);
  if (rc != 0) return rc;
  src = getenv("JOBQ_SOURCE_DIR") ? getenv("JOBQ_SOURCE_DIR") : ".";
  if (!have_node()) {
    printf("SKIP: node or the npm package standardwebhooks is missing "
           "(bash tests/servers/install.sh installs it)\n");
    return 77;
  }
  return cmocka_run_group_tests_name("node", node, setup, teardown);
}
