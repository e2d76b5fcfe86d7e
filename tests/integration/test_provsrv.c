/* The test servers of tests/servers/ against the providers' wire formats:
 * every route's success shape, auth failures, validation errors, each fault
 * kind, the synthetic audio (PCM length and pitch, MP3 frame headers), and the
 * S3 server's AWS Signature Version 4 checks. These guard that the doubles
 * the stage tests rely on stay faithful to the real services. */
#include "provsrv.h"

#include <curl/curl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static provsrv_t prov, s3;
static int s3_rc = -1;

#define OPENAI_KEY "test-openai-key"
#define ANTHROPIC_KEY "test-anthropic-key"
#define ELEVEN_KEY "test-elevenlabs-key"

static const char *const OPENAI_H[] = {"Authorization: Bearer " OPENAI_KEY,
                                       "Content-Type: application/json", NULL};
static const char *const ANTHROPIC_H[] = {"x-api-key: " ANTHROPIC_KEY, "anthropic-version: 2023-06-01",
                                          "content-type: application/json", NULL};
static const char *const ELEVEN_H[] = {"xi-api-key: " ELEVEN_KEY, "Content-Type: application/json",
                                       NULL};

static const char NOTE[] =
    "The library runs jobs in the background. Each job has a state. Workers pick queued jobs. "
    "A failed job can be retried! Results are stored in SQLite.";

/* ---- a small HTTP client --------------------------------------------------- */

typedef struct {
  CURLcode rc;
  long status;
  char *body;
  size_t len;
  char ctype[128];
  char retry_after[32];
  char etag[128];
  long elapsed_ms;
} resp_t;

typedef struct {
  const char *method; /* "GET", "POST", "PUT" */
  const char *url;
  const char *const *headers;
  const void *body;
  size_t body_len;
  long timeout_ms;
  const char *sigv4_user; /* "AKID:SECRET": sign with AWS SigV4 for s3 */
  const char *resolve;    /* "host:port:127.0.0.1" */
} req_t;

typedef struct {
  const unsigned char *p;
  size_t left;
} upload_t;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  resp_t *r = ud;
  size_t add = size * n;
  char *d = realloc(r->body, r->len + add + 1);
  if (d == NULL) return 0;
  memcpy(d + r->len, p, add);
  r->len += add;
  d[r->len] = '\0';
  r->body = d;
  return add;
}

static void header_value(const char *line, size_t n, const char *name, char *dst, size_t cap) {
  size_t nl = strlen(name);
  if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return;
  const char *v = line + nl + 1;
  const char *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
  size_t len = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
  memcpy(dst, v, len);
  dst[len] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  resp_t *r = ud;
  size_t len = size * n;
  header_value(p, len, "retry-after", r->retry_after, sizeof r->retry_after);
  header_value(p, len, "etag", r->etag, sizeof r->etag);
  header_value(p, len, "content-type", r->ctype, sizeof r->ctype);
  return len;
}

static size_t on_read(char *dst, size_t size, size_t n, void *ud) {
  upload_t *u = ud;
  size_t k = size * n < u->left ? size * n : u->left;
  memcpy(dst, u->p, k);
  u->p += k;
  u->left -= k;
  return k;
}

static CURL *setup_easy(const req_t *q, resp_t *r, struct curl_slist **hl, struct curl_slist **rl,
                        upload_t *up) {
  CURL *c = curl_easy_init();
  assert_non_null(c);
  curl_easy_setopt(c, CURLOPT_URL, q->url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, q->timeout_ms > 0 ? q->timeout_ms : 30000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  *hl = NULL;
  for (size_t i = 0; q->headers != NULL && q->headers[i] != NULL; i++) {
    *hl = curl_slist_append(*hl, q->headers[i]);
  }
  if (*hl != NULL) curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
  *rl = NULL;
  if (q->resolve != NULL) {
    *rl = curl_slist_append(NULL, q->resolve);
    curl_easy_setopt(c, CURLOPT_RESOLVE, *rl);
  }
  if (q->sigv4_user != NULL) {
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(c, CURLOPT_USERPWD, q->sigv4_user);
  }
  const char *m = q->method != NULL ? q->method : (q->body != NULL ? "POST" : "GET");
  if (strcmp(m, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body != NULL ? q->body : "");
  } else if (strcmp(m, "PUT") == 0) {
    up->p = q->body;
    up->left = q->body_len;
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, up);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
  } else if (strcmp(m, "GET") != 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
  }
  return c;
}

static resp_t call(const req_t *q) {
  resp_t r;
  memset(&r, 0, sizeof r);
  struct curl_slist *hl, *rl;
  upload_t up;
  CURL *c = setup_easy(q, &r, &hl, &rl, &up);
  long t0 = now_ms();
  r.rc = curl_easy_perform(c);
  r.elapsed_ms = now_ms() - t0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(c);
  curl_slist_free_all(hl);
  curl_slist_free_all(rl);
  return r;
}

static void resp_free(resp_t *r) {
  free(r->body);
  r->body = NULL;
}

static char *url_of(const provsrv_t *s, const char *path) {
  static char buf[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof buf[i], "%s%s", s->base_url, path);
  return buf[i];
}

static resp_t post(const char *path, const char *const *headers, const char *body) {
  req_t q = {.method = "POST", .url = url_of(&prov, path), .headers = headers, .body = body,
             .body_len = body != NULL ? strlen(body) : 0};
  return call(&q);
}

static json_t *parse(const resp_t *r) {
  json_error_t e;
  json_t *j = json_loadb(r->body != NULL ? r->body : "", r->len, 0, &e);
  if (j == NULL) fail_msg("not JSON (%s): %.300s", e.text, r->body != NULL ? r->body : "");
  return j;
}

static const char *jstr(json_t *j, const char *path) {
  /* path: "a.b.0.c" */
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *cur = j;
  for (char *tok = strtok(buf, "."); tok != NULL && cur != NULL; tok = strtok(NULL, ".")) {
    if (json_is_array(cur)) {
      cur = json_array_get(cur, (size_t)atoi(tok));
    } else {
      cur = json_object_get(cur, tok);
    }
  }
  return json_is_string(cur) ? json_string_value(cur) : NULL;
}

static json_t *jget(json_t *j, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *cur = j;
  for (char *tok = strtok(buf, "."); tok != NULL && cur != NULL; tok = strtok(NULL, ".")) {
    cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(tok)) : json_object_get(cur, tok);
  }
  return cur;
}

static void assert_jstr(json_t *j, const char *path, const char *want) {
  const char *got = jstr(j, path);
  if (got == NULL || strcmp(got, want) != 0) {
    char *d = json_dumps(j, JSON_COMPACT);
    fail_msg("%s: want \"%s\", got %s%s%s in %.400s", path, want, got ? "\"" : "",
             got ? got : "(none)", got ? "\"" : "", d);
  }
}

/* Checks the LLM's dialogue JSON; returns its number of turns. */
static size_t check_dialogue(const char *content) {
  assert_non_null(content);
  json_error_t e;
  json_t *d = json_loads(content, 0, &e);
  if (d == NULL) fail_msg("assistant text is not JSON: %s: %.200s", e.text, content);
  json_t *turns = json_object_get(d, "dialogue");
  assert_true(json_is_array(turns));
  size_t n = json_array_size(turns);
  assert_in_range(n, 4, 8);
  for (size_t i = 0; i < n; i++) {
    json_t *t = json_array_get(turns, i);
    assert_string_equal(json_string_value(json_object_get(t, "speaker")), i % 2 ? "Sam" : "Alex");
    const char *text = json_string_value(json_object_get(t, "text"));
    assert_non_null(text);
    assert_true(text[0] != '\0');
  }
  json_decref(d);
  return n;
}

static void assert_openai_error(const resp_t *r, long status, const char *code) {
  if (r->status != status) fail_msg("want %ld, got %ld: %.300s", status, r->status, r->body);
  assert_string_equal(r->ctype, "application/json");
  json_t *j = parse(r);
  assert_non_null(jstr(j, "error.message"));
  assert_non_null(jstr(j, "error.type"));
  assert_non_null(json_object_get(json_object_get(j, "error"), "code"));
  if (code != NULL) assert_jstr(j, "error.code", code);
  json_decref(j);
}

static void assert_anthropic_error(const resp_t *r, long status, const char *type) {
  if (r->status != status) fail_msg("want %ld, got %ld: %.300s", status, r->status, r->body);
  json_t *j = parse(r);
  assert_jstr(j, "type", "error");
  assert_jstr(j, "error.type", type);
  assert_non_null(jstr(j, "error.message"));
  json_decref(j);
}

static void assert_eleven_error(const resp_t *r, long status, const char *estatus) {
  if (r->status != status) fail_msg("want %ld, got %ld: %.300s", status, r->status, r->body);
  json_t *j = parse(r);
  assert_jstr(j, "detail.status", estatus);
  assert_non_null(jstr(j, "detail.message"));
  json_decref(j);
}

/* 422 with detail [{loc: [...], msg, type}]; loc0/loc1 name its start. */
static void assert_eleven_422(const resp_t *r, const char *loc0, const char *loc1) {
  if (r->status != 422) fail_msg("want 422, got %ld: %.300s", r->status, r->body);
  json_t *j = parse(r);
  json_t *det = json_object_get(j, "detail");
  assert_true(json_is_array(det));
  assert_true(json_array_size(det) >= 1);
  json_t *e = json_array_get(det, 0);
  json_t *loc = json_object_get(e, "loc");
  assert_true(json_is_array(loc));
  assert_string_equal(json_string_value(json_array_get(loc, 0)), loc0);
  if (loc1 != NULL) assert_string_equal(json_string_value(json_array_get(loc, 1)), loc1);
  assert_true(json_is_string(json_object_get(e, "msg")));
  assert_true(json_is_string(json_object_get(e, "type")));
  json_decref(j);
}

/* ---- fixtures ---------------------------------------------------------------- */

static int group_setup(void **state) {
  (void)state;
  if (provsrv_start("providers.py", NULL, &prov) != 0) return -1;
  s3_rc = provsrv_start("s3.js", NULL, &s3);
  return s3_rc == -1 ? -1 : 0;
}

static int group_teardown(void **state) {
  (void)state;
  provsrv_stop(&prov);
  if (s3_rc == 0) provsrv_stop(&s3);
  curl_global_cleanup();
  return 0;
}

static int reset(void **state) {
  (void)state;
  return provsrv_reset(&prov);
}

/* ---- OpenAI ------------------------------------------------------------------ */

static char *chat_body(const char *model, const char *user, const char *extra) {
  json_t *b = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:f}", "model", model, "messages", "role",
                        "system", "content", "Answer with {\"dialogue\": [...]} JSON only.", "role",
                        "user", "content", user, "temperature", 0.7);
  if (extra != NULL) {
    json_t *x = json_loads(extra, 0, NULL);
    assert_non_null(x);
    json_object_update(b, x);
    json_decref(x);
  }
  char *s = json_dumps(b, JSON_COMPACT);
  json_decref(b);
  return s;
}

static void test_openai_success(void **state) {
  (void)state;
  char *body = chat_body("gpt-4o-mini", NOTE, "{\"max_tokens\": 2000}");
  resp_t r = post("/v1/chat/completions", OPENAI_H, body);
  free(body);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, "application/json");
  json_t *j = parse(&r);
  assert_jstr(j, "object", "chat.completion");
  assert_jstr(j, "model", "gpt-4o-mini");
  assert_true(strncmp(jstr(j, "id"), "chatcmpl-", 9) == 0);
  assert_true(json_is_integer(json_object_get(j, "created")));
  assert_int_equal(json_integer_value(jget(j, "choices.0.index")), 0);
  assert_jstr(j, "choices.0.message.role", "assistant");
  assert_jstr(j, "choices.0.finish_reason", "stop");
  /* Five sentences, five turns, in order. */
  const char *content = jstr(j, "choices.0.message.content");
  assert_int_equal(check_dialogue(content), 5);
  json_t *d = json_loads(content, 0, NULL);
  assert_jstr(d, "dialogue.0.text", "The library runs jobs in the background.");
  assert_jstr(d, "dialogue.3.text", "A failed job can be retried!");
  json_decref(d);
  json_int_t p = json_integer_value(jget(j, "usage.prompt_tokens"));
  json_int_t c = json_integer_value(jget(j, "usage.completion_tokens"));
  assert_true(p > 0 && c > 0);
  assert_int_equal(json_integer_value(jget(j, "usage.total_tokens")), p + c);
  json_decref(j);
  resp_free(&r);

  /* The log has the request as sent. */
  assert_int_equal(provsrv_count(&prov, "openai"), 1);
  char *log = provsrv_requests(&prov, "openai");
  assert_non_null(log);
  json_t *l = json_loads(log, 0, NULL);
  free(log);
  assert_int_equal(json_array_size(l), 1);
  assert_jstr(l, "0.method", "POST");
  assert_jstr(l, "0.path", "/v1/chat/completions");
  assert_jstr(l, "0.headers.authorization", "Bearer " OPENAI_KEY);
  assert_true(strstr(jstr(l, "0.body"), "gpt-4o-mini") != NULL);
  assert_int_equal(json_integer_value(jget(l, "0.status")), 200);
  assert_true(json_is_null(jget(l, "0.fault")));
  json_decref(l);
}

static void test_openai_turns(void **state) {
  (void)state;
  /* One sentence: padded to four turns; twenty: grouped into eight, all kept. */
  char *body = chat_body("m", "Just one sentence here.", NULL);
  resp_t r = post("/v1/chat/completions", OPENAI_H, body);
  free(body);
  assert_int_equal(r.status, 200);
  json_t *j = parse(&r);
  assert_int_equal(check_dialogue(jstr(j, "choices.0.message.content")), 4);
  json_decref(j);
  resp_free(&r);

  char note[2048] = "", all[2048] = "";
  for (int i = 0; i < 20; i++) {
    char s[64];
    snprintf(s, sizeof s, "%sSentence number %d is here.", i ? " " : "", i);
    strcat(note, s);
  }
  body = chat_body("m", note, NULL);
  r = post("/v1/chat/completions", OPENAI_H, body);
  free(body);
  assert_int_equal(r.status, 200);
  j = parse(&r);
  const char *content = jstr(j, "choices.0.message.content");
  assert_int_equal(check_dialogue(content), 8);
  json_t *d = json_loads(content, 0, NULL);
  for (size_t i = 0; i < 8; i++) {
    if (i) strcat(all, " ");
    strcat(all, json_string_value(jget(json_array_get(json_object_get(d, "dialogue"), i), "text")));
  }
  assert_string_equal(all, note);
  json_decref(d);
  json_decref(j);
  resp_free(&r);
}

static void test_openai_auth(void **state) {
  (void)state;
  char *body = chat_body("m", NOTE, NULL);
  const char *const none[] = {"Content-Type: application/json", NULL};
  resp_t r = post("/v1/chat/completions", none, body);
  assert_openai_error(&r, 401, NULL);
  resp_free(&r);

  const char *const wrong[] = {"Authorization: Bearer sk-wrong-0123456789abcdef",
                               "Content-Type: application/json", NULL};
  r = post("/v1/chat/completions", wrong, body);
  assert_openai_error(&r, 401, "invalid_api_key");
  json_t *j = parse(&r);
  const char *msg = jstr(j, "error.message");
  assert_non_null(strstr(msg, "Incorrect API key provided"));
  assert_null(strstr(msg, "sk-wrong-0123456789abcdef")); /* masked */
  assert_non_null(strstr(msg, "cdef"));
  assert_jstr(j, "error.type", "invalid_request_error");
  json_decref(j);
  resp_free(&r);
  free(body);
}

static void test_openai_validation(void **state) {
  (void)state;
  static const struct {
    const char *body;
    const char *code;
  } cases[] = {
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", NULL},
      {"{\"model\": 5, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "invalid_type"},
      {"{\"model\": \"m\"}", "missing_required_parameter"},
      {"{\"model\": \"m\", \"messages\": []}", "empty_array"},
      {"{\"model\": \"m\", \"messages\": \"hi\"}", "invalid_type"},
      {"{\"model\": \"m\", \"messages\": [{\"content\": \"hi\"}]}", "missing_required_parameter"},
      {"{\"model\": \"m\", \"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}",
       "invalid_value"},
      {"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
       "\"max_tokens\": 10, \"max_completion_tokens\": 10}",
       "invalid_value"},
      {"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
       "\"max_tokens\": 0}",
       "integer_below_min_value"},
      {"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
       "\"temperature\": 3}",
       "decimal_above_max_value"},
      {"{\"model\": \"m\", \"messages\": [", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    resp_t r = post("/v1/chat/completions", OPENAI_H, cases[i].body);
    assert_openai_error(&r, 400, cases[i].code);
    resp_free(&r);
  }
  /* max_completion_tokens alone is fine. */
  char *body = chat_body("m", NOTE, "{\"max_completion_tokens\": 4000}");
  resp_t r = post("/v1/chat/completions", OPENAI_H, body);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  /* Not JSON by its Content-Type. */
  const char *const text[] = {"Authorization: Bearer " OPENAI_KEY, "Content-Type: text/plain",
                              NULL};
  r = post("/v1/chat/completions", text, body);
  assert_openai_error(&r, 400, NULL);
  resp_free(&r);
  free(body);
  /* Wrong method, unknown path. */
  req_t q = {.method = "GET", .url = url_of(&prov, "/v1/chat/completions"), .headers = OPENAI_H};
  r = call(&q);
  assert_openai_error(&r, 405, NULL);
  resp_free(&r);
  r = post("/v1/chat/complete", OPENAI_H, "{}");
  assert_openai_error(&r, 404, NULL);
  resp_free(&r);
}

static void test_openai_length(void **state) {
  (void)state;
  char *body = chat_body("m", NOTE, "{\"max_tokens\": 5}");
  resp_t r = post("/v1/chat/completions", OPENAI_H, body);
  free(body);
  assert_int_equal(r.status, 200);
  json_t *j = parse(&r);
  assert_jstr(j, "choices.0.finish_reason", "length");
  assert_int_equal(json_integer_value(jget(j, "usage.completion_tokens")), 5);
  const char *content = jstr(j, "choices.0.message.content");
  assert_true(strlen(content) <= 20);
  assert_null(json_loads(content, 0, NULL)); /* cut off: not JSON */
  json_decref(j);
  resp_free(&r);
}

/* ---- Anthropic --------------------------------------------------------------- */

static const char *msgs_body(void) {
  static char buf[1024];
  snprintf(buf, sizeof buf,
           "{\"model\": \"claude-sonnet-4-5\", \"max_tokens\": 2048, \"system\": \"Answer with "
           "{\\\"dialogue\\\": [...]} JSON only.\", \"messages\": [{\"role\": \"user\", "
           "\"content\": \"%s\"}]}",
           NOTE);
  return buf;
}

static void test_anthropic_success(void **state) {
  (void)state;
  resp_t r = post("/v1/messages", ANTHROPIC_H, msgs_body());
  assert_int_equal(r.status, 200);
  json_t *j = parse(&r);
  assert_jstr(j, "type", "message");
  assert_jstr(j, "role", "assistant");
  assert_jstr(j, "model", "claude-sonnet-4-5");
  assert_true(strncmp(jstr(j, "id"), "msg_", 4) == 0);
  assert_jstr(j, "content.0.type", "text");
  assert_int_equal(check_dialogue(jstr(j, "content.0.text")), 5);
  assert_jstr(j, "stop_reason", "end_turn");
  assert_true(json_is_null(json_object_get(j, "stop_sequence")));
  assert_true(json_integer_value(jget(j, "usage.input_tokens")) > 0);
  assert_true(json_integer_value(jget(j, "usage.output_tokens")) > 0);
  json_decref(j);
  resp_free(&r);

  /* Content as a list of blocks; a small max_tokens stops early. */
  r = post("/v1/messages", ANTHROPIC_H,
           "{\"model\": \"c\", \"max_tokens\": 3, \"messages\": [{\"role\": \"user\", "
           "\"content\": [{\"type\": \"text\", \"text\": \"One. Two. Three.\"}]}]}");
  assert_int_equal(r.status, 200);
  j = parse(&r);
  assert_jstr(j, "stop_reason", "max_tokens");
  assert_int_equal(json_integer_value(jget(j, "usage.output_tokens")), 3);
  json_decref(j);
  resp_free(&r);
}

static void test_anthropic_errors(void **state) {
  (void)state;
  const char *const nokey[] = {"anthropic-version: 2023-06-01", "content-type: application/json",
                               NULL};
  resp_t r = post("/v1/messages", nokey, msgs_body());
  assert_anthropic_error(&r, 401, "authentication_error");
  resp_free(&r);
  const char *const badkey[] = {"x-api-key: nope", "anthropic-version: 2023-06-01",
                                "content-type: application/json", NULL};
  r = post("/v1/messages", badkey, msgs_body());
  assert_anthropic_error(&r, 401, "authentication_error");
  resp_free(&r);
  const char *const nover[] = {"x-api-key: " ANTHROPIC_KEY, "content-type: application/json", NULL};
  r = post("/v1/messages", nover, msgs_body());
  assert_anthropic_error(&r, 400, "invalid_request_error");
  json_t *j = parse(&r);
  assert_non_null(strstr(jstr(j, "error.message"), "anthropic-version"));
  json_decref(j);
  resp_free(&r);

  static const struct {
    const char *body;
    const char *mentions;
  } cases[] = {
      {"{\"model\": \"c\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "max_tokens"},
      {"{\"model\": \"c\", \"max_tokens\": \"100\", \"messages\": [{\"role\": \"user\", "
       "\"content\": \"hi\"}]}",
       "max_tokens"},
      {"{\"model\": \"c\", \"max_tokens\": 100, \"messages\": []}", "messages"},
      {"{\"model\": \"c\", \"max_tokens\": 100}", "messages"},
      {"{\"max_tokens\": 100, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "model"},
      {"{\"model\": \"c\", \"max_tokens\": 100, \"messages\": [{\"role\": \"system\", "
       "\"content\": \"hi\"}]}",
       "system"},
      {"{\"model\": \"c\", \"max_tokens\": 100, \"system\": 5, \"messages\": [{\"role\": "
       "\"user\", \"content\": \"hi\"}]}",
       "system"},
      {"{\"model\": \"c\", \"max_tokens\": 100, \"messages\": [{\"role\": \"user\"", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    r = post("/v1/messages", ANTHROPIC_H, cases[i].body);
    assert_anthropic_error(&r, 400, "invalid_request_error");
    if (cases[i].mentions != NULL) {
      j = parse(&r);
      if (strstr(jstr(j, "error.message"), cases[i].mentions) == NULL) {
        fail_msg("case %zu: \"%s\" does not mention %s", i, jstr(j, "error.message"),
                 cases[i].mentions);
      }
      json_decref(j);
    }
    resp_free(&r);
  }
}

/* ---- ElevenLabs ---------------------------------------------------------------- */

static resp_t tts(const char *voice, const char *format, const char *text) {
  char path[256];
  if (format != NULL) {
    snprintf(path, sizeof path, "/v1/text-to-speech/%s?output_format=%s", voice, format);
  } else {
    snprintf(path, sizeof path, "/v1/text-to-speech/%s", voice);
  }
  json_t *b = json_pack("{s:s, s:s, s:{s:f, s:f}}", "text", text, "model_id",
                        "eleven_multilingual_v2", "voice_settings", "stability", 0.5,
                        "similarity_boost", 0.75);
  char *s = json_dumps(b, JSON_COMPACT);
  json_decref(b);
  resp_t r = post(path, ELEVEN_H, s);
  free(s);
  return r;
}

static const int16_t *samples(const resp_t *r, size_t *n) {
  assert_int_equal(r->len % 2, 0);
  *n = r->len / 2;
  return (const int16_t *)(const void *)r->body;
}

/* Sign changes in samples [from, to): the pitch of a voice. */
static int crossings(const int16_t *s, size_t from, size_t to) {
  int n = 0;
  for (size_t i = from + 1; i < to; i++) {
    if ((s[i - 1] < 0) != (s[i] < 0)) n++;
  }
  return n;
}

static void test_tts_pcm(void **state) {
  (void)state;
  const char *text = "Hello there, this is a short line.";
  size_t chars = strlen(text);
  static const int rates[] = {16000, 22050, 24000, 44100};
  for (size_t k = 0; k < 4; k++) {
    char fmt[32];
    snprintf(fmt, sizeof fmt, "pcm_%d", rates[k]);
    resp_t r = tts("voiceAAAA", fmt, text);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "audio/pcm");
    size_t block = (size_t)rates[k] * 60 / 1000; /* 60 ms a character */
    assert_int_equal(r.len, chars * block * 2);
    resp_free(&r);
  }

  /* Four times the text, four times the duration. */
  char longer[256];
  snprintf(longer, sizeof longer, "%s %s %s %s", text, text, text, text);
  resp_t a = tts("voiceAAAA", "pcm_16000", text);
  resp_t b = tts("voiceAAAA", "pcm_16000", longer);
  assert_int_equal(b.len, strlen(longer) * 960 * 2);
  assert_true(b.len > 4 * a.len - 2 * 960 * 2 && b.len < 4 * a.len + 4 * 960 * 2);
  resp_free(&b);

  /* Not silence, but silent on the space after "Hello" (character 5). */
  size_t n;
  const int16_t *s = samples(&a, &n);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (double)s[i] * s[i];
  assert_true(sum / (double)n > 1000.0 * 1000.0);
  for (size_t i = 5 * 960; i < 6 * 960; i++) assert_int_equal(s[i], 0);
  int ca = crossings(s, 1 * 960, 2 * 960);
  assert_in_range(ca, 2 * 5, 2 * 21); /* 100 to 333 Hz over 60 ms */

  /* Another voice, another pitch. */
  resp_t c = tts("voiceBBBB", "pcm_16000", text);
  assert_int_equal(c.len, a.len);
  const int16_t *sc = samples(&c, &n);
  int cc = crossings(sc, 1 * 960, 2 * 960);
  assert_true(ca != cc);
  resp_free(&a);
  resp_free(&c);

  /* The stream route answers the same way. */
  resp_t st = post("/v1/text-to-speech/voiceAAAA/stream?output_format=pcm_16000", ELEVEN_H,
                   "{\"text\": \"Hi there\"}");
  assert_int_equal(st.status, 200);
  assert_int_equal(st.len, 8 * 960 * 2);
  resp_free(&st);
}

/* Walks MPEG audio frames; returns their count, failing on a bad header. */
static size_t mp3_frames(const unsigned char *p, size_t len, int mpeg1, int kbps, int rate) {
  static const int br1[] = {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320};
  static const int br2[] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160};
  static const int sr1[] = {44100, 48000, 32000}, sr2[] = {22050, 24000, 16000};
  size_t off = 0, frames = 0;
  while (off < len) {
    assert_true(off + 4 <= len);
    const unsigned char *h = p + off;
    assert_int_equal(h[0], 0xFF);
    assert_int_equal(h[1] & 0xE0, 0xE0);              /* frame sync */
    assert_int_equal((h[1] >> 3) & 3, mpeg1 ? 3 : 2); /* MPEG-1 / MPEG-2 */
    assert_int_equal((h[1] >> 1) & 3, 1);             /* layer III */
    assert_int_equal(h[1] & 1, 1);                    /* no CRC */
    int bi = h[2] >> 4, si = (h[2] >> 2) & 3, pad = (h[2] >> 1) & 1;
    assert_true(bi > 0 && bi < 15 && si < 3);
    assert_int_equal(mpeg1 ? br1[bi] : br2[bi], kbps);
    assert_int_equal(mpeg1 ? sr1[si] : sr2[si], rate);
    assert_int_equal(h[3] >> 6, 3); /* mono */
    size_t size = (size_t)((mpeg1 ? 144 : 72) * kbps * 1000 / rate + pad);
    /* Side information of zeros: no audio data, silence. */
    for (size_t i = 4; i < 4 + (mpeg1 ? 17u : 9u); i++) assert_int_equal(h[i], 0);
    off += size;
    frames++;
  }
  assert_int_equal(off, len);
  return frames;
}

static void test_tts_mp3(void **state) {
  (void)state;
  const char *text = "An MP3 from the test server is silence of the right length.";
  double secs = strlen(text) * 0.060;
  resp_t r = tts("voiceAAAA", NULL, text); /* default: mp3_44100_128 */
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, "audio/mpeg");
  const unsigned char *p = (const unsigned char *)r.body;
  assert_int_equal(p[0], 0xFF);
  assert_int_equal(p[1], 0xFB);
  assert_int_equal(p[2] & 0xFC, 0x90); /* 128 kbps, 44.1 kHz */
  size_t frames = mp3_frames(p, r.len, 1, 128, 44100);
  double got = frames * 1152.0 / 44100;
  assert_true(got >= secs && got < secs + 1152.0 / 44100 + 1e-9);
  /* 128 kbps exactly on average. */
  double kbps = r.len * 8.0 / got / 1000;
  assert_true(kbps > 127.0 && kbps < 129.0);
  resp_free(&r);

  r = tts("voiceAAAA", "mp3_22050_32", text);
  assert_int_equal(r.status, 200);
  assert_int_equal((unsigned char)r.body[1], 0xF3);
  frames = mp3_frames((const unsigned char *)r.body, r.len, 0, 32, 22050);
  assert_true(frames * 576.0 / 22050 >= secs);
  resp_free(&r);

  r = tts("voiceAAAA", "mp3_44100_192", text);
  assert_int_equal(r.status, 200);
  mp3_frames((const unsigned char *)r.body, r.len, 1, 192, 44100);
  resp_free(&r);
}

static void test_tts_errors(void **state) {
  (void)state;
  const char *const nokey[] = {"Content-Type: application/json", NULL};
  resp_t r = post("/v1/text-to-speech/v1?output_format=pcm_16000", nokey, "{\"text\": \"hi\"}");
  assert_eleven_error(&r, 401, "needs_authorization");
  resp_free(&r);
  const char *const badkey[] = {"xi-api-key: nope", "Content-Type: application/json", NULL};
  r = post("/v1/text-to-speech/v1?output_format=pcm_16000", badkey, "{\"text\": \"hi\"}");
  assert_eleven_error(&r, 401, "invalid_api_key");
  json_t *j = parse(&r);
  assert_jstr(j, "detail.message", "Invalid API key");
  json_decref(j);
  resp_free(&r);

  r = post("/v1/text-to-speech/v1?output_format=pcm_16000", ELEVEN_H, "{\"model_id\": \"m\"}");
  assert_eleven_422(&r, "body", "text");
  resp_free(&r);
  r = post("/v1/text-to-speech/v1?output_format=pcm_16000", ELEVEN_H, "{\"text\": \"\"}");
  assert_eleven_422(&r, "body", "text");
  resp_free(&r);
  r = post("/v1/text-to-speech/v1?output_format=pcm_16000", ELEVEN_H, "{\"text\": 5}");
  assert_eleven_422(&r, "body", "text");
  resp_free(&r);
  r = post("/v1/text-to-speech/v1?output_format=pcm_16000", ELEVEN_H,
           "{\"text\": \"hi\", \"voice_settings\": {\"stability\": 7}}");
  assert_eleven_422(&r, "body", "voice_settings");
  resp_free(&r);
  r = post("/v1/text-to-speech/v1?output_format=wav_11", ELEVEN_H, "{\"text\": \"hi\"}");
  assert_eleven_422(&r, "query", "output_format");
  resp_free(&r);
  r = post("/v1/text-to-speech/v1?output_format=pcm_16000", ELEVEN_H, "{\"text\": ");
  assert_eleven_422(&r, "body", NULL);
  resp_free(&r);
  req_t q = {.method = "GET", .url = url_of(&prov, "/v1/text-to-speech/v1"), .headers = ELEVEN_H};
  r = call(&q);
  assert_int_equal(r.status, 405);
  resp_free(&r);
}

static void test_dialogue(void **state) {
  (void)state;
  const char *body =
      "{\"model_id\": \"eleven_v3\", \"inputs\": [{\"text\": \"Welcome to the show.\", "
      "\"voice_id\": \"hostA\"}, {\"text\": \"Glad to be here.\", \"voice_id\": \"hostB\"}, "
      "{\"text\": \"Let us begin.\", \"voice_id\": \"hostA\"}]}";
  size_t chars = strlen("Welcome to the show.") + strlen("Glad to be here.") + strlen("Let us begin.");
  resp_t r = post("/v1/text-to-dialogue?output_format=pcm_24000", ELEVEN_H, body);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, "audio/pcm");
  assert_int_equal(r.len, chars * 1440 * 2);
  size_t n;
  const int16_t *s = samples(&r, &n);
  /* "Welcome" (host A) and "Glad" (host B): two pitches. */
  int a = crossings(s, 1 * 1440, 2 * 1440);
  size_t b0 = strlen("Welcome to the show.") + 1;
  int b = crossings(s, b0 * 1440, (b0 + 1) * 1440);
  assert_true(a > 0 && b > 0 && a != b);
  resp_free(&r);

  r = post("/v1/text-to-dialogue", ELEVEN_H, body);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, "audio/mpeg");
  mp3_frames((const unsigned char *)r.body, r.len, 1, 128, 44100);
  resp_free(&r);

  /* Eleven distinct voices: one too many. */
  char many[2048] = "{\"inputs\": [";
  for (int i = 0; i < 11; i++) {
    char item[96];
    snprintf(item, sizeof item, "%s{\"text\": \"Line %d.\", \"voice_id\": \"voice%02d\"}",
             i ? ", " : "", i, i);
    strcat(many, item);
  }
  strcat(many, "]}");
  r = post("/v1/text-to-dialogue?output_format=pcm_16000", ELEVEN_H, many);
  assert_eleven_422(&r, "body", "inputs");
  resp_free(&r);
  r = post("/v1/text-to-dialogue?output_format=pcm_16000", ELEVEN_H, "{\"inputs\": []}");
  assert_eleven_422(&r, "body", "inputs");
  resp_free(&r);
  r = post("/v1/text-to-dialogue?output_format=pcm_16000", ELEVEN_H,
           "{\"inputs\": [{\"text\": \"Hi.\"}]}");
  assert_eleven_422(&r, "body", "inputs");
  {
    json_t *j = parse(&r);
    json_t *loc = jget(j, "detail.0.loc");
    assert_int_equal(json_integer_value(json_array_get(loc, 2)), 0);
    assert_string_equal(json_string_value(json_array_get(loc, 3)), "voice_id");
    json_decref(j);
  }
  resp_free(&r);
  const char *const badkey[] = {"xi-api-key: nope", "Content-Type: application/json", NULL};
  r = post("/v1/text-to-dialogue?output_format=pcm_16000", badkey, body);
  assert_eleven_error(&r, 401, "invalid_api_key");
  resp_free(&r);
}

/* ---- faults ---------------------------------------------------------------------- */

/* A valid request on route. */
static resp_t valid(const char *route, long timeout_ms) {
  req_t q = {.method = "POST", .timeout_ms = timeout_ms};
  static char chat[1024];
  if (strcmp(route, "openai") == 0) {
    char *b = chat_body("m", NOTE, NULL);
    snprintf(chat, sizeof chat, "%s", b);
    free(b);
    q.url = url_of(&prov, "/v1/chat/completions");
    q.headers = OPENAI_H;
    q.body = chat;
  } else if (strcmp(route, "anthropic") == 0) {
    q.url = url_of(&prov, "/v1/messages");
    q.headers = ANTHROPIC_H;
    q.body = msgs_body();
  } else if (strcmp(route, "tts") == 0) {
    q.url = url_of(&prov, "/v1/text-to-speech/v1?output_format=pcm_16000");
    q.headers = ELEVEN_H;
    q.body = "{\"text\": \"Hello there.\"}";
  } else {
    q.url = url_of(&prov, "/v1/text-to-dialogue?output_format=pcm_16000");
    q.headers = ELEVEN_H;
    q.body = "{\"inputs\": [{\"text\": \"Hello.\", \"voice_id\": \"a\"}]}";
  }
  q.body_len = strlen(q.body);
  return call(&q);
}

static const char *const ROUTES[] = {"openai", "anthropic", "tts", "dialogue"};

static void check_fault_error(const char *route, const resp_t *r, long status) {
  if (strcmp(route, "openai") == 0) {
    assert_openai_error(r, status, status == 429 ? "rate_limit_exceeded"
                                   : status == 401 ? "invalid_api_key"
                                                   : NULL);
    if (status >= 500) {
      json_t *j = parse(r);
      assert_jstr(j, "error.type", "server_error");
      json_decref(j);
    }
  } else if (strcmp(route, "anthropic") == 0) {
    const char *type = status == 429   ? "rate_limit_error"
                       : status == 529 ? "overloaded_error"
                       : status == 401 ? "authentication_error"
                                       : "api_error";
    assert_anthropic_error(r, status, type);
  } else {
    const char *st = status == 429   ? "too_many_concurrent_requests"
                     : status == 401 ? "invalid_api_key"
                     : status == 503 ? "system_busy"
                                     : "internal_server_error";
    assert_eleven_error(r, status, st);
  }
}

static void test_fault_status(void **state) {
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    const char *route = ROUTES[i];
    long statuses[] = {429, 500, 503, 401, strcmp(route, "anthropic") == 0 ? 529 : 500};
    for (size_t k = 0; k < 5; k++) {
      char f[64];
      if (statuses[k] == 429) {
        snprintf(f, sizeof f, "{\"status\": 429, \"retry_after\": 2}");
      } else {
        snprintf(f, sizeof f, "{\"status\": %ld}", statuses[k]);
      }
      assert_int_equal(provsrv_fault(&prov, route, f), 0);
      resp_t r = valid(route, 0);
      if (strcmp(route, "anthropic") == 0 && statuses[k] == 503) {
        assert_int_equal(r.status, 503); /* not an Anthropic status: a generic api_error */
        assert_anthropic_error(&r, 503, "api_error");
      } else {
        check_fault_error(route, &r, statuses[k]);
      }
      if (statuses[k] == 429) assert_string_equal(r.retry_after, "2");
      resp_free(&r);
      /* One fault, one request: the next is answered. */
      r = valid(route, 0);
      assert_int_equal(r.status, 200);
      resp_free(&r);
    }
  }
  /* 429 without retry_after still says when. */
  assert_int_equal(provsrv_fault(&prov, "openai", "{\"status\": 429}"), 0);
  resp_t r = valid("openai", 0);
  assert_int_equal(r.status, 429);
  assert_string_equal(r.retry_after, "1");
  resp_free(&r);
}

static void test_fault_queue(void **state) {
  (void)state;
  assert_int_equal(provsrv_fault(&prov, "tts", "[{\"status\": 500}, {}, {\"status\": 429}]"), 0);
  long want[] = {500, 200, 429, 200};
  for (size_t i = 0; i < 4; i++) {
    resp_t r = valid("tts", 0);
    assert_int_equal(r.status, want[i]);
    resp_free(&r);
  }
  assert_int_equal(provsrv_count(&prov, "tts"), 4);
  assert_int_equal(provsrv_count(&prov, "openai"), 0);
  char *log = provsrv_requests(&prov, "tts");
  json_t *l = json_loads(log, 0, NULL);
  free(log);
  assert_int_equal(json_array_size(l), 4);
  assert_int_equal(json_integer_value(jget(l, "0.fault.status")), 500);
  assert_int_equal(json_integer_value(jget(l, "0.status")), 500);
  assert_int_equal(json_integer_value(jget(l, "2.status")), 429);
  assert_true(json_is_null(jget(l, "3.fault")));
  assert_jstr(l, "0.path", "/v1/text-to-speech/v1");
  assert_jstr(l, "0.query", "output_format=pcm_16000");
  assert_jstr(l, "0.headers.xi-api-key", ELEVEN_KEY);
  assert_jstr(l, "0.body_encoding", "utf-8");
  json_decref(l);

  /* Reset clears the log, the counts and what is queued. */
  assert_int_equal(provsrv_fault(&prov, "tts", "{\"status\": 500}"), 0);
  assert_int_equal(provsrv_reset(&prov), 0);
  assert_int_equal(provsrv_count(&prov, "tts"), 0);
  resp_t r = valid("tts", 0);
  assert_int_equal(r.status, 200);
  resp_free(&r);

  /* Mistakes in a fault are refused, not ignored. */
  assert_int_equal(provsrv_fault(&prov, "tts", "{\"stauts\": 500}"), -1);
  assert_int_equal(provsrv_fault(&prov, "nowhere", "{\"status\": 500}"), -1);
}

static void test_fault_malformed(void **state) {
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(provsrv_fault(&prov, ROUTES[i], "{\"malformed\": true}"), 0);
    resp_t r = valid(ROUTES[i], 0);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    if (i < 2) {
      assert_string_equal(r.ctype, "application/json");
      assert_null(json_loadb(r.body, r.len, 0, NULL));
    } else {
      assert_non_null(strstr(r.ctype, "text/html"));
      assert_true(strncmp(r.body, "<!DOCTYPE html>", 15) == 0);
    }
    resp_free(&r);
  }
}

static void test_fault_truncated(void **state) {
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(provsrv_fault(&prov, ROUTES[i], "{\"truncated\": true}"), 0);
    resp_t r = valid(ROUTES[i], 0);
    assert_int_equal(r.rc, CURLE_PARTIAL_FILE);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 0);
    resp_free(&r);
    r = valid(ROUTES[i], 0);
    assert_int_equal(r.rc, CURLE_OK);
    resp_free(&r);
  }
}

static void test_fault_hang_and_delay(void **state) {
  (void)state;
  /* A hang outlasts the client's timeout; the server keeps serving others. */
  assert_int_equal(provsrv_fault(&prov, "tts", "{\"hang_ms\": 3000}"), 0);
  resp_t r = valid("tts", 300);
  assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
  assert_true(r.elapsed_ms < 2600);
  resp_free(&r);
  r = valid("tts", 0);
  assert_int_equal(r.status, 200);
  assert_true(r.elapsed_ms < 2600 /* before the 3 s hang ends: served beside it */);
  resp_free(&r);

  /* A delay answers correctly, later. */
  assert_int_equal(provsrv_fault(&prov, "openai", "{\"delay_ms\": 400}"), 0);
  r = valid("openai", 0);
  assert_int_equal(r.status, 200);
  assert_true(r.elapsed_ms >= 400);
  resp_free(&r);

  /* A standing delay holds for every request until reset. */
  assert_int_equal(provsrv_default_delay(&prov, "anthropic", 250), 0);
  for (int i = 0; i < 2; i++) {
    r = valid("anthropic", 0);
    assert_int_equal(r.status, 200);
    assert_true(r.elapsed_ms >= 250);
    resp_free(&r);
  }
  assert_int_equal(provsrv_reset(&prov), 0);
  r = valid("anthropic", 0);
  assert_true(r.elapsed_ms < 250);
  resp_free(&r);
}

static void test_fault_empty_content(void **state) {
  (void)state;
  assert_int_equal(provsrv_fault(&prov, "openai", "{\"empty_content\": true}"), 0);
  resp_t r = valid("openai", 0);
  assert_int_equal(r.status, 200);
  json_t *j = parse(&r);
  assert_jstr(j, "choices.0.message.content", "");
  assert_jstr(j, "choices.0.finish_reason", "stop");
  json_decref(j);
  resp_free(&r);
  assert_int_equal(provsrv_fault(&prov, "anthropic", "{\"empty_content\": true}"), 0);
  r = valid("anthropic", 0);
  assert_int_equal(r.status, 200);
  j = parse(&r);
  assert_jstr(j, "content.0.text", "");
  assert_jstr(j, "stop_reason", "end_turn");
  json_decref(j);
  resp_free(&r);
}

/* 200 requests at once, each held 1 s by a standing delay: all answered
 * together, as a benchmark of 200 concurrent jobs needs. */
static void test_concurrency(void **state) {
  (void)state;
  enum { N = 200 };
  assert_int_equal(provsrv_default_delay(&prov, "tts", 1000), 0);
  CURLM *m = curl_multi_init();
  assert_non_null(m);
  static resp_t rs[N];
  static struct curl_slist *hl[N], *rl[N];
  static upload_t up[N];
  CURL *cs[N];
  req_t q = {.method = "POST",
             .url = url_of(&prov, "/v1/text-to-speech/v1?output_format=pcm_16000"),
             .headers = ELEVEN_H,
             .body = "{\"text\": \"Hi\"}",
             .body_len = 14,
             .timeout_ms = 20000};
  for (int i = 0; i < N; i++) {
    memset(&rs[i], 0, sizeof rs[i]);
    cs[i] = setup_easy(&q, &rs[i], &hl[i], &rl[i], &up[i]);
    curl_easy_setopt(cs[i], CURLOPT_PRIVATE, (char *)&rs[i]);
    curl_multi_add_handle(m, cs[i]);
  }
  long t0 = now_ms();
  int running = 1;
  while (running) {
    assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
    if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  long elapsed = now_ms() - t0;
  CURLMsg *msg;
  int left, ok = 0;
  while ((msg = curl_multi_info_read(m, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    long st = 0;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
    if (msg->data.result == CURLE_OK && st == 200) ok++;
  }
  for (int i = 0; i < N; i++) {
    curl_multi_remove_handle(m, cs[i]);
    curl_easy_cleanup(cs[i]);
    curl_slist_free_all(hl[i]);
    resp_free(&rs[i]);
  }
  curl_multi_cleanup(m);
  assert_int_equal(ok, N);
  assert_int_equal(provsrv_count(&prov, "tts"), N);
  if (elapsed > 10000) fail_msg("200 delayed requests took %ld ms: not concurrent", elapsed);
}

/* ---- S3 --------------------------------------------------------------------- */

#define S3_OK_USER "S3RVER:S3RVER"
#define UNSIGNED "x-amz-content-sha256: UNSIGNED-PAYLOAD"

static void need_s3(void) {
  if (s3_rc == -2) skip();
  assert_int_equal(s3_rc, 0);
}

static unsigned char *payload(size_t n) {
  unsigned char *p = malloc(n);
  assert_non_null(p);
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (unsigned char)x;
  }
  return p;
}

static resp_t s3_put(const char *url, const char *user, const char *const *headers,
                     const void *body, size_t len, const char *resolve) {
  req_t q = {.method = "PUT", .url = url, .headers = headers, .body = body, .body_len = len,
             .sigv4_user = user, .resolve = resolve};
  return call(&q);
}

static resp_t s3_get(const char *url, const char *user, const char *const *headers,
                     const char *resolve) {
  req_t q = {.method = "GET", .url = url, .headers = headers, .sigv4_user = user,
             .resolve = resolve};
  return call(&q);
}

static void assert_s3_error(const resp_t *r, long status, const char *code) {
  if (r->status != status) fail_msg("want %ld, got %ld: %.400s", status, r->status, r->body);
  char want[96];
  snprintf(want, sizeof want, "<Code>%s</Code>", code);
  if (r->body == NULL || strstr(r->body, want) == NULL) {
    fail_msg("want %s in: %.400s", want, r->body ? r->body : "");
  }
  assert_non_null(strstr(r->body, "<Error>"));
}

static void test_s3_roundtrip(void **state) {
  (void)state;
  need_s3();
  size_t n = 200 * 1024;
  unsigned char *data = payload(n);
  const char *const h[] = {UNSIGNED, "Content-Type: audio/mpeg", NULL};
  resp_t r = s3_put(url_of(&s3, "/podcasts/tests/round%20trip.mp3"), S3_OK_USER, h, data, n, NULL);
  if (r.status != 200) fail_msg("PUT: %ld %.400s", r.status, r.body);
  assert_true(strlen(r.etag) > 2 && r.etag[0] == '"');
  resp_free(&r);

  const char *const g[] = {UNSIGNED, NULL};
  r = s3_get(url_of(&s3, "/podcasts/tests/round%20trip.mp3"), S3_OK_USER, g, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, "audio/mpeg");
  assert_int_equal(r.len, n);
  assert_memory_equal(r.body, data, n);
  resp_free(&r);

  /* A payload hash that matches (SHA-256 of nothing) is taken. */
  const char *const empty[] = {
      "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      NULL};
  r = s3_put(url_of(&s3, "/podcasts/tests/empty"), S3_OK_USER, empty, "", 0, NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  free(data);
}

static void test_s3_errors(void **state) {
  (void)state;
  need_s3();
  unsigned char *data = payload(4096);
  const char *const h[] = {UNSIGNED, NULL};
  resp_t r = s3_put(url_of(&s3, "/podcasts/x.mp3"), "S3RVER:wrong-secret", h, data, 4096, NULL);
  assert_s3_error(&r, 403, "SignatureDoesNotMatch");
  resp_free(&r);
  r = s3_put(url_of(&s3, "/podcasts/x.mp3"), "NOBODY:S3RVER", h, data, 4096, NULL);
  assert_s3_error(&r, 403, "InvalidAccessKeyId");
  resp_free(&r);
  r = s3_put(url_of(&s3, "/podcasts/x.mp3"), NULL, NULL, data, 4096, NULL);
  assert_s3_error(&r, 403, "AccessDenied");
  resp_free(&r);
  const char *const bad[] = {
      "x-amz-content-sha256: 0000000000000000000000000000000000000000000000000000000000000000",
      NULL};
  r = s3_put(url_of(&s3, "/podcasts/x.mp3"), S3_OK_USER, bad, data, 4096, NULL);
  assert_s3_error(&r, 400, "XAmzContentSHA256Mismatch");
  resp_free(&r);
  r = s3_get(url_of(&s3, "/podcasts/no-such-key"), S3_OK_USER, h, NULL);
  assert_s3_error(&r, 404, "NoSuchKey");
  resp_free(&r);
  r = s3_put(url_of(&s3, "/no-such-bucket/x.mp3"), S3_OK_USER, h, data, 4096, NULL);
  assert_s3_error(&r, 404, "NoSuchBucket");
  resp_free(&r);
  /* Nothing was stored by the refused requests. */
  r = s3_get(url_of(&s3, "/podcasts/x.mp3"), S3_OK_USER, h, NULL);
  assert_s3_error(&r, 404, "NoSuchKey");
  resp_free(&r);
  free(data);
}

static void test_s3_public_read(void **state) {
  (void)state;
  need_s3();
  unsigned char *data = payload(1000);
  const char *const pub[] = {UNSIGNED, "x-amz-acl: public-read", "Content-Type: audio/mpeg", NULL};
  const char *const priv[] = {UNSIGNED, NULL};
  resp_t r = s3_put(url_of(&s3, "/podcasts/pub/a.mp3"), S3_OK_USER, pub, data, 1000, NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  r = s3_put(url_of(&s3, "/podcasts/priv/a.mp3"), S3_OK_USER, priv, data, 1000, NULL);
  assert_int_equal(r.status, 200);
  resp_free(&r);
  r = s3_get(url_of(&s3, "/podcasts/pub/a.mp3"), NULL, NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 1000);
  assert_memory_equal(r.body, data, 1000);
  resp_free(&r);
  r = s3_get(url_of(&s3, "/podcasts/priv/a.mp3"), NULL, NULL, NULL);
  assert_s3_error(&r, 403, "AccessDenied");
  resp_free(&r);
  free(data);
}

static void test_s3_virtual_host(void **state) {
  (void)state;
  need_s3();
  char resolve[64], url[128], path_url[128];
  snprintf(resolve, sizeof resolve, "podcasts.localhost:%d:127.0.0.1", s3.port);
  snprintf(url, sizeof url, "http://podcasts.localhost:%d/vhost/b.mp3", s3.port);
  snprintf(path_url, sizeof path_url, "%s/podcasts/vhost/b.mp3", s3.base_url);
  unsigned char *data = payload(3000);
  const char *const h[] = {UNSIGNED, NULL};
  resp_t r = s3_put(url, S3_OK_USER, h, data, 3000, resolve);
  if (r.status != 200) fail_msg("PUT: %ld %.400s", r.status, r.body);
  resp_free(&r);
  r = s3_get(path_url, S3_OK_USER, h, NULL); /* the same object, path style */
  assert_int_equal(r.status, 200);
  assert_memory_equal(r.body, data, 3000);
  resp_free(&r);
  r = s3_get(url, S3_OK_USER, h, resolve);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 3000);
  resp_free(&r);
  r = s3_put(url, "S3RVER:wrong-secret", h, data, 3000, resolve);
  assert_s3_error(&r, 403, "SignatureDoesNotMatch");
  resp_free(&r);
  free(data);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_openai_success, reset),
      cmocka_unit_test_setup(test_openai_turns, reset),
      cmocka_unit_test_setup(test_openai_auth, reset),
      cmocka_unit_test_setup(test_openai_validation, reset),
      cmocka_unit_test_setup(test_openai_length, reset),
      cmocka_unit_test_setup(test_anthropic_success, reset),
      cmocka_unit_test_setup(test_anthropic_errors, reset),
      cmocka_unit_test_setup(test_tts_pcm, reset),
      cmocka_unit_test_setup(test_tts_mp3, reset),
      cmocka_unit_test_setup(test_tts_errors, reset),
      cmocka_unit_test_setup(test_dialogue, reset),
      cmocka_unit_test_setup(test_fault_status, reset),
      cmocka_unit_test_setup(test_fault_queue, reset),
      cmocka_unit_test_setup(test_fault_malformed, reset),
      cmocka_unit_test_setup(test_fault_truncated, reset),
      cmocka_unit_test_setup(test_fault_hang_and_delay, reset),
      cmocka_unit_test_setup(test_fault_empty_content, reset),
      cmocka_unit_test_setup_teardown(test_concurrency, reset, reset),
      cmocka_unit_test(test_s3_roundtrip),
      cmocka_unit_test(test_s3_errors),
      cmocka_unit_test(test_s3_public_read),
      cmocka_unit_test(test_s3_virtual_host),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
