/* Webhooks end to end: real queues (memory and SQLite) send real HTTP to
 * tests/servers/webhook_receiver.py on 127.0.0.1, which checks every
 * signature with its own implementation (Python's hmac, hashlib, base64) and
 * records every request; at the end the npm package standardwebhooks (the
 * specification's reference library) verifies every delivery the receiver
 * got. The cases:
 *
 *  - both kinds of subscription (a job's own URL, a kind-default endpoint)
 *    arrive, with the documented headers and body; the payload only where
 *    asked for; a rotation signs with both secrets;
 *  - 500, 500, 200: three tries with the same webhook-id, then no more;
 *  - a receiver that hangs: the tries time out and are retried, while other
 *    deliveries arrive and one worker runs its jobs;
 *  - 410: failed at once, the URL disabled for later deliveries (no request
 *    sent), jobq_webhook_enable restores it;
 *  - Retry-After on 429 and 503 sets the next try, capped; not on 500;
 *  - SSRF: every refused literal address class, bad schemes, long URLs and
 *    user:pass@ refused at submit with nothing stored; a name resolving to
 *    127.0.0.1 without the allow-list fails at delivery, with no request;
 *  - a delivery whose tries are spent: event, stats, Prometheus, and
 *    jobq_webhook_redeliver;
 *  - progress deliveries at checkpoints, coalesced, dropped by the end;
 *  - the secrets appear nowhere: jobs, events, logs, errors, deliveries,
 *    stats, the SQLite file (every test's events, logs and errors are
 *    searched too).
 * Waits are for conditions, with generous caps; no duration is asserted. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/ext.h" /* jobq__checkpoint */
#include "jobq.h"
#include "jobq/storage.h"
#include "provsrv.h"

#define WAIT_CAP_MS 30000

/* Secrets: each distinctive, so that a leak is found by a plain search. The
 * keys are ASCII so that their raw bytes are searchable as text too. */
#define KEY_APP "app-key:0123456789abcdefghijklm" /* 31 bytes */
#define KEY_CLIENTS "clients-key:ABCDEFGHIJKLMNOPQRS"
#define KEY_ROT_OLD "rotation-old-key:zyxwvutsrqpo"
#define KEY_ROT_NEW "rotation-new-key:nmlkjihgfedc"
#define KEY_LEAK "leak-check-key:Q7W8E9R0T1Y2U3I"

static struct {
  const char *key;
  char whsec[128];
  char b64[96];
} sec[5];
enum { S_APP, S_CLIENTS, S_ROT_OLD, S_ROT_NEW, S_LEAK, N_SEC };

static provsrv_t rcv;
static char tmpdir[512];
static char manifest[600];

/* ---- small things ---- */

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void b64(const unsigned char *in, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = '\0';
}

#define OK(expr)                                                                          \
  do {                                                                                    \
    int ok_rc_ = (expr);                                                                  \
    if (ok_rc_ != 0)                                                                      \
      fail_msg("%s:%d: %s returned %d (%s): %s", __FILE__, __LINE__, #expr, ok_rc_,       \
               jobq_err_name(ok_rc_), jobq_last_error());                                 \
  } while (0)

/* ---- what libjobq said: logs, events, errors (searched for secrets) ---- */

static pthread_mutex_t said_mu = PTHREAD_MUTEX_INITIALIZER;
static char *said;
static size_t said_len, said_cap;

static void say(const char *s) {
  pthread_mutex_lock(&said_mu);
  size_t n = strlen(s);
  if (said_len + n + 2 > said_cap) {
    size_t nc = (said_cap + n + 2) * 2;
    char *p = realloc(said, nc);
    if (p == NULL) abort();
    said = p;
    said_cap = nc;
  }
  memcpy(said + said_len, s, n);
  said_len += n;
  said[said_len++] = '\n';
  said[said_len] = '\0';
  pthread_mutex_unlock(&said_mu);
}

static void on_log(int level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  say(msg);
}

typedef struct ev {
  int type;
  char job[JOBQ_ID_SIZE];
  char delivery[128];
  char error[512];
} ev;
static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static ev evs[4096];
static int n_evs;

static void on_event(const jobq_event_t *e, void *ud) {
  (void)ud;
  char *j = jobq_event_to_json(e);
  if (j) say(j);
  jobq_free(j);
  pthread_mutex_lock(&ev_mu);
  if (n_evs < (int)(sizeof evs / sizeof evs[0])) {
    ev *x = &evs[n_evs++];
    memset(x, 0, sizeof *x);
    x->type = jobq_event_type(e);
    snprintf(x->job, sizeof x->job, "%s", jobq_event_job_id(e) ? jobq_event_job_id(e) : "");
    const char *d = jobq_event_delivery_id(e);
    snprintf(x->delivery, sizeof x->delivery, "%s", d ? d : "");
    const char *er = jobq_event_error(e);
    snprintf(x->error, sizeof x->error, "%s", er ? er : "");
  }
  pthread_mutex_unlock(&ev_mu);
}

/* The WEBHOOK_FAILED events of delivery id (copies the last into *out). */
/* A snapshot whose try counters say `delivered`, `retried`, `failed`: the
 * counters follow the stored answer by a moment (capped wait). */
static jobq_stats_t *stats_with_tries(jobq_t *q, int64_t delivered, int64_t retried,
                                      int64_t failed) {
  int64_t end = mono_ms() + WAIT_CAP_MS;
  for (;;) {
    jobq_stats_t *st = NULL;
    OK(jobq_stats(q, &st));
    if ((jobq_stats_webhook_tries(st, JOBQ_DELIVERY_DELIVERED) == delivered &&
         jobq_stats_webhook_tries(st, JOBQ_DELIVERY_PENDING) == retried &&
         jobq_stats_webhook_tries(st, JOBQ_DELIVERY_FAILED) == failed) ||
        mono_ms() > end)
      return st;
    jobq_stats_free(st);
    sleep_ms(5);
  }
}

static int failed_events(const char *delivery, ev *out);

/* The failure event comes after the failure is stored (events reach the
 * subscriber from the loop): waits for n of them (capped), then counts. */
static int failed_events_wait(const char *delivery, ev *out, int n) {
  int64_t end = mono_ms() + WAIT_CAP_MS;
  while (failed_events(delivery, NULL) < n && mono_ms() < end) sleep_ms(5);
  return failed_events(delivery, out);
}

static int failed_events(const char *delivery, ev *out) {
  int n = 0;
  pthread_mutex_lock(&ev_mu);
  for (int i = 0; i < n_evs; i++)
    if (evs[i].type == JOBQ_EVENT_WEBHOOK_FAILED && strcmp(evs[i].delivery, delivery) == 0) {
      n++;
      if (out) *out = evs[i];
    }
  pthread_mutex_unlock(&ev_mu);
  return n;
}

/* An expected failure: the code, a sentence naming fn; the sentence kept. */
static void expect_err(int rc, int want, const char *fn, const char *expr, int line) {
  const char *e = jobq_last_error();
  say(e);
  if (rc != want || e == NULL || e[0] == '\0' || (fn && strstr(e, fn) == NULL))
    fail_msg("line %d: %s returned %d (%s), expected %d (%s); jobq_last_error() = \"%s\"", line,
             expr, rc, jobq_err_name(rc), want, jobq_err_name(want), e ? e : "(null)");
}
#define ERR(want, fn, expr) expect_err((expr), (want), (fn), #expr, __LINE__)

/* Fails if any form of any secret occurs in text[0..len). */
static void assert_no_secret(const char *what, const char *text, size_t len) {
  for (int i = 0; i < N_SEC; i++) {
    const char *needles[3] = {sec[i].whsec, sec[i].b64, sec[i].key};
    for (int k = 0; k < 3; k++)
      if (memmem(text, len, needles[k], strlen(needles[k])) != NULL)
        fail_msg("%s contains secret %d (%s form)", what, i,
                 k == 0 ? "whsec_" : k == 1 ? "base64 key" : "raw key bytes");
  }
}

/* ---- the receiver ---- */

static json_t *rcv_get(const char *route, const char *prefix) {
  char path[1024];
  snprintf(path, sizeof path, "%s?prefix=%s", route, prefix);
  char *body = NULL;
  long st = 0;
  if (provsrv_get(&rcv, path, &body, &st) != 0 || st != 200) fail_msg("receiver: GET %s failed", path);
  json_t *j = json_loads(body, 0, NULL);
  free(body);
  assert_non_null(j);
  return j;
}

static int rcv_count(const char *prefix, const char *field) {
  json_t *j = rcv_get("/count", prefix);
  int n = (int)json_integer_value(json_object_get(j, field));
  json_decref(j);
  return n;
}

/* Waits until the receiver has at least n requests under prefix. */
static void rcv_wait(const char *prefix, const char *field, int n) {
  int64_t end = mono_ms() + WAIT_CAP_MS;
  int have;
  while ((have = rcv_count(prefix, field)) < n) {
    if (mono_ms() > end) fail_msg("receiver: %d %s under %s, waited for %d", have, field, prefix, n);
    sleep_ms(20);
  }
}

/* ---- queues ---- */

static void handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  const char *p = jobq_ctx_payload(ctx);
  if (strstr(p, "\"fail\"")) {
    jobq_ctx_fail(ctx, "the handler failed on purpose", 0);
  } else {
    jobq_ctx_succeed(ctx, "{\"url\":\"https://cdn.example.com/x.mp3\",\"seconds\":912}");
  }
}

static double half(void *ud) {
  (void)ud;
  return 0.5; /* jitter factor exactly 1.0 */
}

/* Options every test starts from: storage, workers, 127.0.0.1 allowed
 * (allow 0: not), logs and randomness captured. */
static jobq_options_t *base_opts(const char *storage, int workers, int allow) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  OK(jobq_options_set_storage(o, storage));
  OK(jobq_options_set_workers(o, workers));
  if (allow) OK(jobq_options_set_webhook_allow(o, "127.0.0.1"));
  OK(jobq_options_set_log(o, on_log, NULL, JOBQ_LOG_INFO));
  OK(jobq_options_set_random(o, half, NULL));
  return o;
}

static jobq_t *open_q(jobq_options_t *o, int start) {
  jobq_t *q = NULL;
  OK(jobq_open(&q, o));
  jobq_options_free(o);
  OK(jobq_subscribe(q, on_event, NULL));
  if (start) {
    OK(jobq_register(q, "work", handler, NULL, NULL));
    OK(jobq_start(q));
  }
  return q;
}

static void url_of(char *buf, size_t cap, const char *path) {
  snprintf(buf, cap, "%s%s", rcv.base_url, path);
}

/* Submits one job of kind "work" with an own URL (path on the receiver,
 * signed by endpoint ep) or none (path NULL). */
static void submit(jobq_t *q, const char *payload, const char *owner, const char *path,
                   const char *ep, char *id) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  if (owner) OK(jobq_submit_opts_set_owner(so, owner));
  if (path) {
    char u[512];
    url_of(u, sizeof u, path);
    OK(jobq_submit_opts_add_webhook(so, u, ep, 0));
  }
  int rc = jobq_submit(q, "work", payload, so, id);
  jobq_submit_opts_free(so);
  OK(rc);
}

static int wait_job(jobq_t *q, const char *id) {
  jobq_job_t *j = NULL;
  int64_t end = mono_ms() + WAIT_CAP_MS;
  for (;;) {
    OK(jobq_get(q, id, &j));
    int s = jobq_job_state(j);
    char *js = jobq_job_to_json(j);
    if (js) say(js);
    jobq_free(js);
    jobq_job_free(j);
    if (s == JOBQ_SUCCEEDED || s == JOBQ_FAILED || s == JOBQ_CANCELLED) return s;
    if (mono_ms() > end) fail_msg("job %s did not end", id);
    sleep_ms(10);
  }
}

/* A copy of one delivery. */
typedef struct dlv {
  int found;
  char id[128];
  char endpoint[80];
  char url[512];
  int has_url;
  int event, state, attempts, last_status;
  char error[512];
  int64_t created_at, next_at, updated_at;
} dlv;

/* The deliveries of job (NULL: all), copied; returns how many (<= cap). */
static int deliveries(jobq_t *q, const char *job, dlv *out, int cap) {
  int n = 0;
  char cursor[256] = "";
  for (;;) {
    jobq_deliveries_t *page = NULL;
    OK(jobq_webhook_deliveries(q, job, -1, 100, cursor[0] ? cursor : NULL, &page));
    char *js = jobq_deliveries_to_json(page);
    assert_non_null(js);
    say(js);
    jobq_free(js);
    for (size_t i = 0; i < jobq_deliveries_count(page); i++) {
      const jobq_delivery_t *d = jobq_deliveries_at(page, i);
      if (n >= cap) continue;
      dlv *x = &out[n++];
      memset(x, 0, sizeof *x);
      x->found = 1;
      snprintf(x->id, sizeof x->id, "%s", jobq_delivery_id(d));
      snprintf(x->endpoint, sizeof x->endpoint, "%s", jobq_delivery_endpoint(d));
      x->has_url = jobq_delivery_url(d) != NULL;
      snprintf(x->url, sizeof x->url, "%s", x->has_url ? jobq_delivery_url(d) : "");
      x->event = jobq_delivery_event(d);
      x->state = jobq_delivery_state(d);
      x->attempts = jobq_delivery_attempts(d);
      x->last_status = jobq_delivery_last_status(d);
      snprintf(x->error, sizeof x->error, "%s",
               jobq_delivery_last_error(d) ? jobq_delivery_last_error(d) : "");
      x->created_at = jobq_delivery_created_at(d);
      x->next_at = jobq_delivery_next_at(d);
      x->updated_at = jobq_delivery_updated_at(d);
    }
    const char *c = jobq_deliveries_next_cursor(page);
    snprintf(cursor, sizeof cursor, "%s", c ? c : "");
    jobq_deliveries_free(page);
    if (cursor[0] == '\0') break;
  }
  return n;
}

static dlv delivery(jobq_t *q, const char *id) {
  dlv all[64];
  char job[JOBQ_ID_SIZE];
  snprintf(job, sizeof job, "%.*s", (int)strcspn(id, ":"), id);
  int n = deliveries(q, job, all, 64);
  for (int i = 0; i < n; i++)
    if (strcmp(all[i].id, id) == 0) return all[i];
  dlv none;
  memset(&none, 0, sizeof none);
  return none;
}

/* Waits until delivery id is in state and (attempts >= 0) has that many
 * attempts. */
static dlv wait_delivery(jobq_t *q, const char *id, int state, int attempts) {
  int64_t end = mono_ms() + WAIT_CAP_MS;
  for (;;) {
    dlv d = delivery(q, id);
    if (d.found && d.state == state && (attempts < 0 || d.attempts == attempts)) return d;
    if (mono_ms() > end)
      fail_msg("delivery %s: found %d, state %s, attempts %d, error \"%s\"; waited for %s/%d", id,
               d.found, jobq_delivery_state_name(d.state), d.attempts, d.error,
               jobq_delivery_state_name(state), attempts);
    sleep_ms(10);
  }
}

static void did(char *out, size_t cap, const char *job, int hook, const char *what) {
  snprintf(out, cap, "%.40s:%d:%.40s", job, hook, what);
}

/* ---- the body ---- */

static int iso_ms(const char *s) { /* 2026-12-06T05:41:40.123Z */
  int y, mo, d, h, mi, se, ms;
  char z;
  return s && strlen(s) == 24 &&
         sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &se, &ms, &z) == 8 &&
         z == 'Z';
}

static void check_body(const char *body, const char *job, const char *state, const char *owner,
                       int want_payload, const char *payload) {
  json_error_t e;
  json_t *b = json_loads(body, 0, &e);
  if (b == NULL) fail_msg("body is not JSON (%s): %s", e.text, body);
  char type[32];
  snprintf(type, sizeof type, "job.%s", state);
  assert_string_equal(json_string_value(json_object_get(b, "type")), type);
  assert_true(iso_ms(json_string_value(json_object_get(b, "timestamp"))));
  json_t *d = json_object_get(b, "data");
  assert_true(json_is_object(d));
  assert_string_equal(json_string_value(json_object_get(d, "jobId")), job);
  assert_string_equal(json_string_value(json_object_get(d, "kind")), "work");
  if (owner) assert_string_equal(json_string_value(json_object_get(d, "owner")), owner);
  assert_string_equal(json_string_value(json_object_get(d, "state")), state);
  assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 1);
  assert_true(iso_ms(json_string_value(json_object_get(d, "createdAt"))));
  assert_true(iso_ms(json_string_value(json_object_get(d, "startedAt"))));
  assert_true(iso_ms(json_string_value(json_object_get(d, "finishedAt"))));
  assert_true(json_is_integer(json_object_get(d, "durationMs")));
  assert_true(json_integer_value(json_object_get(d, "durationMs")) >= 0);
  if (strcmp(state, "succeeded") == 0) {
    json_t *r = json_object_get(d, "result");
    assert_true(json_is_object(r)); /* the stored JSON, not a string */
    assert_string_equal(json_string_value(json_object_get(r, "url")), "https://cdn.example.com/x.mp3");
    assert_int_equal(json_integer_value(json_object_get(r, "seconds")), 912);
    assert_true(json_is_null(json_object_get(d, "error")));
  } else {
    assert_non_null(json_string_value(json_object_get(d, "error")));
  }
  json_t *p = json_object_get(d, "payload");
  if (!want_payload) {
    if (p != NULL) fail_msg("the body carries the payload unasked: %s", body);
    if (payload && strstr(body, "secret-payload-value")) fail_msg("the payload leaked: %s", body);
  } else {
    json_t *want = json_loads(payload, 0, NULL);
    assert_non_null(want);
    if (!json_equal(p, want)) fail_msg("payload in the body is not the job's: %s", body);
    json_decref(want);
  }
  json_decref(b);
}

/* The receiver's record of the one request under prefix. */
static json_t *only_request(const char *prefix) {
  json_t *log = rcv_get("/log", prefix);
  if (json_array_size(log) != 1)
    fail_msg("%zu requests under %s, expected 1", json_array_size(log), prefix);
  json_t *r = json_incref(json_array_get(log, 0));
  json_decref(log);
  return r;
}

static const char *str(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  if (s == NULL) fail_msg("no string %s", k);
  return s;
}

/* ======================================================================== */

/* A job with its own URL (endpoint "clients", payload on) and a kind's
 * default endpoint ("app", payload off): both arrive, signed, with the
 * documented headers and body; the rotation endpoint signs with both of its
 * secrets and the receiver, knowing only the new one, accepts. */
static void both_subscriptions(const char *storage, const char *tag) {
  char p_default[128], p_job[128], p_rot[128], u_default[512], u_rot[512];
  snprintf(p_default, sizeof p_default, "/ok/%s-default", tag);
  snprintf(p_job, sizeof p_job, "/ok/%s-job", tag);
  snprintf(p_rot, sizeof p_rot, "/ok/%s-rot", tag);
  url_of(u_default, sizeof u_default, p_default);
  url_of(u_rot, sizeof u_rot, p_rot);
  jobq_options_t *o = base_opts(storage, 2, 1);
  OK(jobq_options_add_webhook(o, "app", u_default, sec[S_APP].whsec));
  OK(jobq_options_set_webhook_kinds(o, "app", "work,other"));
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_payload(o, "clients", 1));
  char two[300];
  snprintf(two, sizeof two, "%s %s", sec[S_ROT_OLD].whsec, sec[S_ROT_NEW].whsec);
  OK(jobq_options_add_webhook(o, "rot", u_rot, two));
  OK(jobq_options_set_webhook_kinds(o, "rot", "work"));
  jobq_t *q = open_q(o, 1);

  const char *payload = "{\"text\":\"secret-payload-value\",\"n\":[1,2]}";
  char id[JOBQ_ID_SIZE];
  submit(q, payload, "u42", p_job, "clients", id);
  assert_int_equal(wait_job(q, id), JOBQ_SUCCEEDED);
  rcv_wait(p_default, "requests", 1);
  rcv_wait(p_job, "requests", 1);
  rcv_wait(p_rot, "requests", 1);

  /* Subscriptions are numbered: the job's own first, then the defaults in
   * the order they were added. */
  char d_job[128], d_default[128], d_rot[128];
  did(d_job, sizeof d_job, id, 0, "succeeded");
  did(d_default, sizeof d_default, id, 1, "succeeded");
  did(d_rot, sizeof d_rot, id, 2, "succeeded");

  json_t *r = only_request(p_job);
  assert_string_equal(str(r, "id"), d_job);
  assert_true(json_is_true(json_object_get(r, "verified")));
  assert_int_equal(json_integer_value(json_object_get(r, "secret_index")), S_CLIENTS);
  assert_string_equal(str(r, "ctype"), "application/json");
  assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
  const char *ts = str(r, "timestamp");
  long long tsv = atoll(ts);
  long long now = (long long)time(NULL);
  assert_true(tsv > now - 300 && tsv <= now + 5); /* Unix seconds, not ms */
  assert_true(strncmp(str(r, "signature"), "v1,", 3) == 0);
  assert_null(strchr(str(r, "signature"), ' ')); /* one secret: one signature */
  check_body(str(r, "body"), id, "succeeded", "u42", 1, payload);
  json_decref(r);

  r = only_request(p_default);
  assert_string_equal(str(r, "id"), d_default);
  assert_true(json_is_true(json_object_get(r, "verified")));
  assert_int_equal(json_integer_value(json_object_get(r, "secret_index")), S_APP);
  check_body(str(r, "body"), id, "succeeded", "u42", 0, payload);
  json_decref(r);

  r = only_request(p_rot);
  assert_string_equal(str(r, "id"), d_rot);
  /* The receiver was given the new secret only, not the old one. */
  assert_true(json_is_true(json_object_get(r, "verified")));
  assert_int_equal(json_integer_value(json_object_get(r, "secret_index")), S_ROT_NEW);
  const char *sig = str(r, "signature");
  const char *sp = strchr(sig, ' ');
  assert_non_null(sp);
  assert_true(strncmp(sig, "v1,", 3) == 0 && strncmp(sp + 1, "v1,", 3) == 0);
  assert_null(strchr(sp + 1, ' '));
  check_body(str(r, "body"), id, "succeeded", "u42", 0, payload);
  json_decref(r);

  /* The store's account: three deliveries, each delivered on its first try. */
  dlv all[8];
  int n = deliveries(q, id, all, 8);
  assert_int_equal(n, 3);
  for (int i = 0; i < n; i++) {
    dlv d = wait_delivery(q, all[i].id, JOBQ_DELIVERY_DELIVERED, 1);
    assert_int_equal(d.last_status, 200);
    assert_int_equal(d.event, JOBQ_EVENT_SUCCEEDED);
    assert_int_equal(d.next_at, 0);
    if (strcmp(d.id, d_job) == 0) {
      assert_string_equal(d.endpoint, "clients");
      assert_true(d.has_url);
      assert_true(strstr(d.url, p_job) != NULL);
    } else {
      assert_false(d.has_url); /* the endpoint's URL */
      assert_string_equal(d.endpoint, strcmp(d.id, d_default) == 0 ? "app" : "rot");
    }
  }

  /* A job that fails announces "failed"; "other" is not a kind of "rot". */
  char id2[JOBQ_ID_SIZE];
  submit(q, "{\"fail\":true}", NULL, NULL, NULL, id2);
  assert_int_equal(wait_job(q, id2), JOBQ_FAILED);
  char d2[128];
  did(d2, sizeof d2, id2, 0, "failed");
  wait_delivery(q, d2, JOBQ_DELIVERY_DELIVERED, 1);
  json_t *log = rcv_get("/log", p_default);
  int seen = 0;
  for (size_t i = 0; i < json_array_size(log); i++) {
    json_t *x = json_array_get(log, i);
    if (strcmp(str(x, "id"), d2) == 0) {
      seen++;
      assert_true(json_is_true(json_object_get(x, "verified")));
      check_body(str(x, "body"), id2, "failed", NULL, 0, NULL);
    }
  }
  json_decref(log);
  assert_int_equal(seen, 1);
  OK(jobq_close(q, 5000));
}

static void test_both_subscriptions_memory(void **state) {
  (void)state;
  both_subscriptions("memory:", "mem");
}

static void test_both_subscriptions_sqlite(void **state) {
  (void)state;
  char s[700];
  snprintf(s, sizeof s, "sqlite:%s/both.db", tmpdir);
  both_subscriptions(s, "sql");
}

/* 500, 500, 200: three tries of one delivery, the same webhook-id, and none
 * after the 200. */
static void flaky(const char *storage, const char *tag) {
  jobq_options_t *o = base_opts(storage, 1, 1);
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_retry(o, 5, 50, 1000));
  jobq_t *q = open_q(o, 1);
  char path[160], prefix[128];
  snprintf(prefix, sizeof prefix, "/flaky/%s", tag);
  snprintf(path, sizeof path, "%s?fail=2", prefix);
  char id[JOBQ_ID_SIZE], d[128];
  submit(q, "{}", NULL, path, "clients", id);
  assert_int_equal(wait_job(q, id), JOBQ_SUCCEEDED);
  did(d, sizeof d, id, 0, "succeeded");
  dlv x = wait_delivery(q, d, JOBQ_DELIVERY_DELIVERED, -1);
  assert_int_equal(x.attempts, 3);
  assert_int_equal(x.last_status, 200);
  assert_int_equal(x.next_at, 0);
  /* No try after the 200: the delivery is done, whatever time passes. */
  sleep_ms(500);
  json_t *log = rcv_get("/log", prefix);
  assert_int_equal(json_array_size(log), 3);
  static const int want[3] = {500, 500, 200};
  for (size_t i = 0; i < 3; i++) {
    json_t *r = json_array_get(log, i);
    assert_string_equal(str(r, "id"), d);
    assert_true(json_is_true(json_object_get(r, "verified")));
    assert_int_equal(json_integer_value(json_object_get(r, "status")), want[i]);
  }
  json_decref(log);
  jobq_stats_t *st = stats_with_tries(q, 1, 2, 0);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_DELIVERED), 1);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_PENDING), 2);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_FAILED), 0);
  jobq_stats_free(st);
  OK(jobq_close(q, 5000));
}

static void test_flaky_memory(void **state) {
  (void)state;
  flaky("memory:", "mem");
}

static void test_flaky_sqlite(void **state) {
  (void)state;
  char s[700];
  snprintf(s, sizeof s, "sqlite:%s/flaky.db", tmpdir);
  flaky(s, "sql");
}

/* A receiver that never answers. First with a long timeout: while 5 tries
 * hang, one worker runs 20 jobs and their 20 deliveries to /ok arrive (no
 * worker slot, no sending slot of the others is held). Closing puts the
 * hanging ones back. Then a process with a short timeout takes them over:
 * each try times out, is retried, and fails once its tries are spent. */
static void test_hang(void **state) {
  (void)state;
  char s[700];
  snprintf(s, sizeof s, "sqlite:%s/hang.db", tmpdir);
  jobq_options_t *o = base_opts(s, 1, 1);
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_timeouts(o, 5000, 600000));
  jobq_t *q = open_q(o, 1);
  char hang[5][JOBQ_ID_SIZE], ok[20][JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) submit(q, "{}", NULL, "/hang/h1", "clients", hang[i]);
  rcv_wait("/hang/h1", "hanging", 5);
  for (int i = 0; i < 20; i++) submit(q, "{}", NULL, "/ok/h1", "clients", ok[i]);
  for (int i = 0; i < 20; i++) assert_int_equal(wait_job(q, ok[i]), JOBQ_SUCCEEDED);
  rcv_wait("/ok/h1", "ids", 20);
  /* The 5 are still hanging (their timeout is 10 minutes): they did not
   * stand in the way. */
  assert_int_equal(rcv_count("/hang/h1", "hanging"), 5);
  assert_int_equal(rcv_count("/hang/h1", "requests"), 5);
  for (int i = 0; i < 5; i++) {
    char d[128];
    did(d, sizeof d, hang[i], 0, "succeeded");
    dlv x = delivery(q, d);
    assert_int_equal(x.state, JOBQ_DELIVERY_SENDING);
    assert_int_equal(x.attempts, 1);
  }
  OK(jobq_close(q, 200));
  /* Back in the outbox, for the next process. */
  jobq_options_t *o2 = base_opts(s, 0, 1);
  OK(jobq_options_set_webhook_concurrency(o2, 0));
  OK(jobq_options_add_webhook(o2, "clients", NULL, sec[S_CLIENTS].whsec));
  q = open_q(o2, 0);
  for (int i = 0; i < 5; i++) {
    char d[128];
    did(d, sizeof d, hang[i], 0, "succeeded");
    dlv x = delivery(q, d);
    assert_int_equal(x.state, JOBQ_DELIVERY_PENDING);
    assert_int_equal(x.attempts, 1);
    assert_true(strstr(x.error, "closed") != NULL);
  }
  OK(jobq_close(q, 1000));
  rcv_wait("/hang/h1", "drops", 5); /* the connections were closed */

  /* A short timeout: each try times out, and is retried. */
  jobq_options_t *o3 = base_opts(s, 1, 1);
  OK(jobq_options_add_webhook(o3, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_timeouts(o3, 300, 300));
  OK(jobq_options_set_webhook_retry(o3, 3, 50, 200));
  q = open_q(o3, 1);
  char more[5][JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) submit(q, "{}", NULL, "/ok/h2", "clients", more[i]);
  for (int i = 0; i < 5; i++) {
    char d[128];
    did(d, sizeof d, hang[i], 0, "succeeded");
    dlv x = wait_delivery(q, d, JOBQ_DELIVERY_FAILED, 3);
    assert_int_equal(x.last_status, 0);
    /* Timed out: usually waiting for the answer; on a loaded machine the
     * receiver may not even accept the connection in time. */
    if ((strstr(x.error, "no complete response") == NULL &&
         strstr(x.error, "could not connect") == NULL) ||
        strstr(x.error, "within 300 ms") == NULL)
      fail_msg("a hanging try ended with \"%s\"", x.error);
    ev e;
    assert_int_equal(failed_events_wait(d, &e, 1), 1);
  }
  for (int i = 0; i < 5; i++) assert_int_equal(wait_job(q, more[i]), JOBQ_SUCCEEDED);
  rcv_wait("/ok/h2", "ids", 5);
  /* 5 tries in the first process, 10 more here; each the same id again. */
  rcv_wait("/hang/h1", "drops", 15);
  json_t *log = rcv_get("/log", "/hang/h1");
  assert_int_equal(json_array_size(log), 15);
  assert_int_equal(rcv_count("/hang/h1", "ids"), 5);
  assert_int_equal(rcv_count("/hang/h1", "verified"), 15);
  json_decref(log);
  OK(jobq_close(q, 1000));
}

/* 410: failed at once, and the URL disabled: a later delivery to it fails
 * without a request, until jobq_webhook_enable. */
static void test_gone(void **state) {
  (void)state;
  jobq_options_t *o = base_opts("memory:", 1, 1);
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_retry(o, 5, 50, 1000));
  jobq_t *q = open_q(o, 1);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], c[JOBQ_ID_SIZE], da[128], db[128], dc[128];
  submit(q, "{}", NULL, "/gone/g1", "clients", a);
  did(da, sizeof da, a, 0, "succeeded");
  dlv x = wait_delivery(q, da, JOBQ_DELIVERY_FAILED, 1);
  assert_int_equal(x.last_status, 410);
  assert_true(strstr(x.error, "410") != NULL);
  ev e;
  int64_t end = mono_ms() + WAIT_CAP_MS;
  while (failed_events(da, &e) == 0 && mono_ms() < end) sleep_ms(10);
  assert_int_equal(failed_events(da, &e), 1);
  assert_string_equal(e.job, a);
  assert_true(strstr(e.error, "410") != NULL);
  assert_int_equal(rcv_count("/gone/g1", "requests"), 1);

  submit(q, "{}", NULL, "/gone/g1", "clients", b);
  did(db, sizeof db, b, 0, "succeeded");
  x = wait_delivery(q, db, JOBQ_DELIVERY_FAILED, -1);
  assert_int_equal(x.attempts, 0);
  assert_true(strstr(x.error, "answered 410 Gone on ") != NULL);
  assert_true(strstr(x.error, "and is disabled") != NULL);
  end = mono_ms() + WAIT_CAP_MS;
  while (failed_events(db, &e) == 0 && mono_ms() < end) sleep_ms(10);
  assert_int_equal(failed_events(db, &e), 1);
  assert_true(strstr(e.error, "disabled") != NULL);
  /* A job to another URL is not affected. */
  char other[JOBQ_ID_SIZE], dother[128];
  submit(q, "{}", NULL, "/ok/g1", "clients", other);
  did(dother, sizeof dother, other, 0, "succeeded");
  wait_delivery(q, dother, JOBQ_DELIVERY_DELIVERED, 1);
  assert_int_equal(rcv_count("/gone/g1", "requests"), 1); /* none for b */

  char u[512];
  url_of(u, sizeof u, "/gone/g1");
  OK(jobq_webhook_enable(q, u));
  ERR(JOBQ_ENOTFOUND, "jobq_webhook_enable", jobq_webhook_enable(q, u));
  char u2[512];
  url_of(u2, sizeof u2, "/ok/never-disabled");
  ERR(JOBQ_ENOTFOUND, "jobq_webhook_enable", jobq_webhook_enable(q, u2));
  submit(q, "{}", NULL, "/gone/g1", "clients", c);
  did(dc, sizeof dc, c, 0, "succeeded");
  x = wait_delivery(q, dc, JOBQ_DELIVERY_FAILED, 1);
  assert_int_equal(x.last_status, 410);
  assert_int_equal(rcv_count("/gone/g1", "requests"), 2); /* sent again */
  OK(jobq_close(q, 1000));
}

/* Retry-After on 429 and 503 is the wait before the next try (capped at the
 * schedule's longest); a 500's is not. The random source is fixed at 0.5,
 * so the schedule's jitter factor is exactly 1. */
static void test_retry_after(void **state) {
  (void)state;
  jobq_options_t *o = base_opts("memory:", 1, 1);
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_retry(o, 10, 5000, 60000));
  jobq_t *q = open_q(o, 1);
  static const struct {
    const char *path;
    int status;
    int64_t wait;
  } t[] = {
      {"/status/429/ra1?retry_after=7", 429, 7000},
      {"/status/503/ra2?retry_after=100000", 503, 60000}, /* capped */
      {"/status/500/ra4?retry_after=7", 500, 5000},       /* not for a 500: the schedule */
      {"/status/429/ra5", 429, 5000},                     /* none given: the schedule */
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char id[JOBQ_ID_SIZE], d[128];
    submit(q, "{}", NULL, t[i].path, "clients", id);
    did(d, sizeof d, id, 0, "succeeded");
    int64_t end = mono_ms() + WAIT_CAP_MS;
    dlv x;
    for (;;) {
      x = delivery(q, d);
      if (x.found && x.attempts >= 1 && x.state == JOBQ_DELIVERY_PENDING && x.last_status) break;
      if (mono_ms() > end) fail_msg("%s: no answered try", t[i].path);
      sleep_ms(10);
    }
    assert_int_equal(x.attempts, 1);
    assert_int_equal(x.last_status, t[i].status);
    if (x.next_at - x.updated_at != t[i].wait)
      fail_msg("%s: next try %lld ms after the answer, expected %lld", t[i].path,
               (long long)(x.next_at - x.updated_at), (long long)t[i].wait);
  }
  /* "Retry-After: 0" is "now": each try follows the last at once, so all
   * ten are spent (the schedule alone would take hours), and the
   * delivery fails with the last 429 recorded. */
  char id[JOBQ_ID_SIZE], d[128];
  submit(q, "{}", NULL, "/status/429/ra6?retry_after=0", "clients", id);
  did(d, sizeof d, id, 0, "succeeded");
  int64_t end = mono_ms() + WAIT_CAP_MS;
  dlv x;
  for (;;) {
    x = delivery(q, d);
    if (x.found && x.state == JOBQ_DELIVERY_FAILED) break;
    if (mono_ms() > end) fail_msg("Retry-After: 0: the tries were not made at once");
    sleep_ms(10);
  }
  assert_int_equal(x.attempts, 10);
  assert_int_equal(x.last_status, 429);
  OK(jobq_close(q, 1000));
}

/* Server-side request forgery: refused at submit, nothing stored. */
static void test_ssrf_submit(void **state) {
  (void)state;
  jobq_options_t *o = base_opts("memory:", 0, 0);
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  jobq_t *q = open_q(o, 0);
  static const char *const refused_literal[] = {
      "http://127.0.0.1/p-tok",        "http://127.9.9.9:8080/p-tok",
      "http://10.1.2.3/p-tok",         "http://172.16.0.1/p-tok",
      "http://172.31.255.255/p-tok",   "http://192.168.1.1/p-tok",
      "http://169.254.169.254/latest/meta-data/p-tok",
      "http://100.64.0.1/p-tok",       "http://100.127.255.254/p-tok",
      "http://224.0.0.1/p-tok",        "http://239.255.255.250/p-tok",
      "http://0.0.0.0/p-tok",          "http://255.255.255.255/p-tok",
      "http://240.0.0.1/p-tok",        "https://192.0.2.1/p-tok",
      "http://[::1]/p-tok",            "http://[::]/p-tok",
      "http://[fe80::1]/p-tok",        "http://[fc00::1]/p-tok",
      "http://[fd12:3456::1]/p-tok",   "http://[ff02::1]/p-tok",
      "http://[::ffff:127.0.0.1]/p-tok", "http://[::ffff:10.0.0.1]/p-tok",
      "http://[64:ff9b::a9fe:a9fe]/p-tok", "http://[2002:7f00:1::]/p-tok",
      "http://[fec0::1]/p-tok",        "http://[fd00:ec2::254]/p-tok",
      /* other spellings of 127.0.0.1 that resolvers accept */
      "http://2130706433/p-tok",       "http://0x7f.1/p-tok",
      "http://127.1/p-tok",            "http://0177.0.0.1/p-tok",
      "HTTP://127.0.0.1/p-tok",
  };
  size_t jobs_before = 0;
  for (size_t i = 0; i < sizeof refused_literal / sizeof refused_literal[0]; i++) {
    const char *u = refused_literal[i];
    jobq_submit_opts_t *so = jobq_submit_opts_new();
    /* The URL's shape is fine: it is the address that is refused, at submit. */
    int rc = jobq_submit_opts_add_webhook(so, u, "clients", 0);
    if (rc != 0) fail_msg("%s: refused too early: %s", u, jobq_last_error());
    char id[JOBQ_ID_SIZE];
    ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, "work", "{}", so, id));
    const char *e = jobq_last_error();
    if (strstr(e, "not a public address") == NULL) fail_msg("%s: \"%s\"", u, e);
    if (strstr(e, "p-tok") != NULL) fail_msg("%s: the sentence quotes the URL: %s", u, e);
    jobq_submit_opts_free(so);
  }
  static const struct {
    const char *url;
    const char *says;
  } bad[] = {
      {"ftp://example.com/p-tok", "\"ftp\" is refused"},
      {"file:///etc/passwd", "\"file\" is refused"},
      {"gopher://example.com:70/p-tok", "\"gopher\" is refused"},
      {"javascript:alert(1)", "\"javascript\" is refused"},
      {"//example.com/p-tok", "scheme"},
      {"example.com/p-tok", "scheme"},
      {"http:/example.com/p-tok", "http://"},
      {"http://user:sekrit-p-tok@example.com/x", "user name or password"},
      {"http://user@example.com/p-tok", "user name or password"},
      {"http:///p-tok", "no host"},
      {"http://:80/p-tok", "no host"},
      {"http://exa mple.com/p-tok", "malformed"},
      {"http://example.com:99999/p-tok", "malformed"},
      {"http://[::1/p-tok", "malformed"},
      {"", "empty"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jobq_submit_opts_t *so = jobq_submit_opts_new();
    ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
        jobq_submit_opts_add_webhook(so, bad[i].url, "clients", 0));
    const char *e = jobq_last_error();
    if (strstr(e, bad[i].says) == NULL) fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].url, e, bad[i].says);
    if (strstr(e, "p-tok")) fail_msg("%s: the sentence quotes the URL: %s", bad[i].url, e);
    /* nothing was added: the job is submitted without a subscription */
    char id[JOBQ_ID_SIZE];
    OK(jobq_submit(q, "work", "{}", so, id));
    jobq_submit_opts_free(so);
    jobs_before++;
    dlv none[2];
    assert_int_equal(deliveries(q, id, none, 2), 0);
  }
  /* Over 2,048 bytes. */
  char *lng = malloc(2100);
  assert_non_null(lng);
  strcpy(lng, "https://example.com/");
  memset(lng + 20, 'a', 2049 - 20);
  lng[2049] = '\0';
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook", jobq_submit_opts_add_webhook(so, lng, "clients", 0));
  assert_non_null(strstr(jobq_last_error(), "2049 bytes long, over the 2048"));
  lng[2048] = '\0'; /* 2,048 bytes: fine */
  OK(jobq_submit_opts_add_webhook(so, lng, "clients", 0));
  jobq_submit_opts_free(so);
  free(lng);
  /* An endpoint this process does not have. */
  so = jobq_submit_opts_new();
  OK(jobq_submit_opts_add_webhook(so, "https://example.com/h", "nobody", 0));
  char id[JOBQ_ID_SIZE];
  ERR(JOBQ_EINVAL, "jobq_submit", jobq_submit(q, "work", "{}", so, id));
  assert_non_null(strstr(jobq_last_error(), "'nobody' is not configured"));
  jobq_submit_opts_free(so);

  /* Nothing stored by the refused submits: only the ones without a URL. */
  jobq_page_t *p = NULL;
  jobq_filter_t *f = jobq_filter_new();
  OK(jobq_filter_set_limit(f, 1000));
  OK(jobq_list(q, f, &p));
  assert_int_equal(jobq_page_count(p), jobs_before);
  jobq_page_free(p);
  jobq_filter_free(f);
  dlv all[4];
  assert_int_equal(deliveries(q, NULL, all, 4), 0);
  OK(jobq_close(q, 1000));
}

/* A name that resolves to 127.0.0.1 passes the submit (names are checked
 * when sent), and is refused on its resolved address: the delivery fails
 * at once, and the receiver never sees a request. With the allow-list, the
 * same name is delivered. */
static void test_ssrf_name(void **state) {
  (void)state;
  jobq_options_t *o = base_opts("memory:", 1, 0);
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_retry(o, 5, 50, 1000));
  jobq_t *q = open_q(o, 1);
  char u[512], id[JOBQ_ID_SIZE], d[128];
  snprintf(u, sizeof u, "http://localhost:%d/ok/ssrf-name", rcv.port);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  OK(jobq_submit_opts_add_webhook(so, u, "clients", 0));
  OK(jobq_submit(q, "work", "{}", so, id));
  jobq_submit_opts_free(so);
  assert_int_equal(wait_job(q, id), JOBQ_SUCCEEDED);
  did(d, sizeof d, id, 0, "succeeded");
  dlv x = wait_delivery(q, d, JOBQ_DELIVERY_FAILED, 1);
  assert_int_equal(x.last_status, 0);
  if (strstr(x.error, "loopback") == NULL || strstr(x.error, "refused") == NULL)
    fail_msg("the refusal does not say why: \"%s\"", x.error);
  ev e;
  int64_t end = mono_ms() + WAIT_CAP_MS;
  while (failed_events(d, &e) == 0 && mono_ms() < end) sleep_ms(10);
  assert_int_equal(failed_events(d, &e), 1);
  assert_true(strstr(e.error, "loopback") != NULL);
  assert_int_equal(rcv_count("/ok/ssrf-name", "requests"), 0);
  OK(jobq_close(q, 1000));

  /* localhost may resolve to ::1 first: allow both. */
  o = base_opts("memory:", 1, 0);
  OK(jobq_options_set_webhook_allow(o, "127.0.0.1, ::1"));
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  q = open_q(o, 1);
  snprintf(u, sizeof u, "http://localhost:%d/ok/ssrf-allowed", rcv.port);
  so = jobq_submit_opts_new();
  OK(jobq_submit_opts_add_webhook(so, u, "clients", 0));
  OK(jobq_submit(q, "work", "{}", so, id));
  jobq_submit_opts_free(so);
  did(d, sizeof d, id, 0, "succeeded");
  wait_delivery(q, d, JOBQ_DELIVERY_DELIVERED, 1);
  assert_int_equal(rcv_count("/ok/ssrf-allowed", "verified"), 1);
  OK(jobq_close(q, 1000));
}

static int prom_has(const char *prom, const char *line) {
  size_t n = strlen(line);
  for (const char *p = prom; (p = strstr(p, line)) != NULL; p++)
    if ((p == prom || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) return 1;
  return 0;
}

/* Tries spent: failed, an event, the counts; redeliver sends it again. */
static void test_max_attempts(void **state) {
  (void)state;
  jobq_options_t *o = base_opts("memory:", 1, 1);
  OK(jobq_options_add_webhook(o, "clients", NULL, sec[S_CLIENTS].whsec));
  OK(jobq_options_set_webhook_retry(o, 3, 50, 1000));
  jobq_t *q = open_q(o, 1);
  char id[JOBQ_ID_SIZE], d[128];
  submit(q, "{}", NULL, "/status/500/max", "clients", id);
  did(d, sizeof d, id, 0, "succeeded");
  dlv x = wait_delivery(q, d, JOBQ_DELIVERY_FAILED, 3);
  assert_int_equal(x.last_status, 500);
  assert_true(strstr(x.error, "HTTP 500") != NULL);
  assert_int_equal(x.next_at, 0);
  assert_int_equal(rcv_count("/status/500/max", "requests"), 3);
  ev e;
  int64_t end = mono_ms() + WAIT_CAP_MS;
  while (failed_events(d, &e) == 0 && mono_ms() < end) sleep_ms(10);
  assert_int_equal(failed_events(d, &e), 1);
  assert_string_equal(e.job, id);
  assert_true(strstr(e.error, "3 tries") != NULL);
  /* The log line is handed over on the loop too, after the event. */
  int logged = 0;
  for (end = mono_ms() + WAIT_CAP_MS; !logged && mono_ms() < end;) {
    pthread_mutex_lock(&said_mu);
    logged = strstr(said, "failed for good after 3 tries") != NULL;
    pthread_mutex_unlock(&said_mu);
    if (!logged) sleep_ms(5);
  }
  assert_true(logged);

  jobq_stats_t *st = stats_with_tries(q, 0, 2, 1);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_PENDING), 2);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_FAILED), 1);
  assert_int_equal(jobq_stats_webhook_tries(st, JOBQ_DELIVERY_DELIVERED), 0);
  assert_int_equal(jobq_stats_webhook_tries(st, 7), -1);
  assert_int_equal(jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_FAILED), 1);
  assert_int_equal(jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_PENDING), 0);
  assert_int_equal(jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_SENDING), 0);
  assert_int_equal(jobq_stats_webhook_outbox(st, JOBQ_DELIVERY_DELIVERED), 0);
  assert_int_equal(jobq_stats_webhook_outbox(st, 9), -1);
  char *prom = jobq_stats_to_prometheus(st);
  char *js = jobq_stats_to_json(st);
  assert_non_null(prom);
  assert_non_null(js);
  say(prom);
  say(js);
  if (!prom_has(prom, "jobq_webhook_tries_total{outcome=\"failed\"} 1") ||
      !prom_has(prom, "jobq_webhook_tries_total{outcome=\"retried\"} 2") ||
      !prom_has(prom, "jobq_webhook_tries_total{outcome=\"delivered\"} 0") ||
      !prom_has(prom, "jobq_webhook_outbox{state=\"failed\"} 1") ||
      !prom_has(prom, "jobq_webhook_outbox{state=\"pending\"} 0"))
    fail_msg("Prometheus text lacks the webhook series:\n%s", prom);
  jobq_free(prom);
  jobq_free(js);
  jobq_stats_free(st);

  /* Bad calls first: nothing changes. */
  ERR(JOBQ_ENOTFOUND, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, "no-such:0:succeeded"));
  ERR(JOBQ_EINVAL, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, NULL));
  ERR(JOBQ_EINVAL, "jobq_webhook_redeliver", jobq_webhook_redeliver(NULL, d));
  OK(jobq_webhook_redeliver(q, d));
  x = wait_delivery(q, d, JOBQ_DELIVERY_FAILED, 3);
  assert_int_equal(rcv_count("/status/500/max", "requests"), 6);
  assert_int_equal(rcv_count("/status/500/max", "ids"), 1);
  end = mono_ms() + WAIT_CAP_MS;
  while (failed_events(d, &e) < 2 && mono_ms() < end) sleep_ms(10);
  assert_int_equal(failed_events(d, &e), 2);

  /* A delivered one cannot be redelivered. */
  char id2[JOBQ_ID_SIZE], d2[128];
  submit(q, "{}", NULL, "/ok/max", "clients", id2);
  did(d2, sizeof d2, id2, 0, "succeeded");
  wait_delivery(q, d2, JOBQ_DELIVERY_DELIVERED, 1);
  ERR(JOBQ_ESTATE, "jobq_webhook_redeliver", jobq_webhook_redeliver(q, d2));
  assert_int_equal(delivery(q, d2).state, JOBQ_DELIVERY_DELIVERED);
  OK(jobq_close(q, 1000));
}

/* ---- progress ---- */

static atomic_int prog_step;   /* the test lets the handler go on */
static atomic_int prog_done;   /* the handler reached the step */

static void wait_step(atomic_int *a, int want) {
  int64_t end = mono_ms() + WAIT_CAP_MS;
  while (atomic_load(a) < want) {
    if (mono_ms() > end) fail_msg("step %d not reached (%d)", want, atomic_load(a));
    sleep_ms(5);
  }
}

static void prog_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  int64_t end = mono_ms() + WAIT_CAP_MS;
  jobq__checkpoint(ctx, 0, "{\"s\":0}", 25, "script");
  jobq__checkpoint(ctx, 1, "{\"s\":1}", 50, "voice");
  jobq__checkpoint(ctx, 2, "{\"s\":2}", 75, "mix");
  atomic_store(&prog_done, 1);
  while (atomic_load(&prog_step) < 1 && mono_ms() < end) sleep_ms(5);
  jobq__checkpoint(ctx, 3, "{\"s\":3}", 90, "upload");
  jobq__checkpoint(ctx, 4, "{\"s\":4}", 95, "upload");
  atomic_store(&prog_done, 2);
  while (atomic_load(&prog_step) < 2 && mono_ms() < end) sleep_ms(5);
  jobq_ctx_succeed(ctx, "{\"url\":\"https://cdn.example.com/x.mp3\",\"seconds\":912}");
}

/* Checkpoints make progress deliveries, one pending at a time per job and
 * subscription; its body, made when sent, has the latest progress; the
 * job's end drops one not yet sent. The worker process sends none
 * (concurrency 0); a second process on the file sends them when the test
 * opens it. */
static void test_progress(void **state) {
  (void)state;
  char s[700], u[512];
  snprintf(s, sizeof s, "sqlite:%s/progress.db", tmpdir);
  url_of(u, sizeof u, "/ok/progress");
  jobq_options_t *o = base_opts(s, 1, 1);
  OK(jobq_options_add_webhook(o, "app", u, sec[S_APP].whsec));
  OK(jobq_options_set_webhook_events(o, "app", JOBQ_WEBHOOK_ON_PROGRESS | JOBQ_WEBHOOK_ON_FINISHED));
  OK(jobq_options_set_webhook_concurrency(o, 0));
  jobq_t *w = NULL;
  OK(jobq_open(&w, o));
  jobq_options_free(o);
  OK(jobq_register(w, "work", prog_handler, NULL, NULL));
  OK(jobq_start(w));
  char id[JOBQ_ID_SIZE];
  submit(w, "{}", NULL, NULL, NULL, id);
  wait_step(&prog_done, 1);
  char p0[128], p3[128], fin[128];
  did(p0, sizeof p0, id, 0, "progress:0");
  did(p3, sizeof p3, id, 0, "progress:3");
  did(fin, sizeof fin, id, 0, "succeeded");
  dlv all[8];
  int n = deliveries(w, id, all, 8);
  assert_int_equal(n, 1); /* three checkpoints, one delivery */
  assert_string_equal(all[0].id, p0);
  assert_int_equal(all[0].event, JOBQ_EVENT_PROGRESS);
  assert_int_equal(all[0].state, JOBQ_DELIVERY_PENDING);

  jobq_options_t *o2 = base_opts(s, 0, 1);
  OK(jobq_options_add_webhook(o2, "app", u, sec[S_APP].whsec));
  jobq_t *snd = open_q(o2, 0);
  rcv_wait("/ok/progress", "requests", 1);
  wait_delivery(snd, p0, JOBQ_DELIVERY_DELIVERED, 1);
  OK(jobq_close(snd, 1000));
  json_t *r = only_request("/ok/progress");
  assert_string_equal(str(r, "id"), p0);
  assert_true(json_is_true(json_object_get(r, "verified")));
  json_t *b = json_loads(str(r, "body"), 0, NULL);
  assert_non_null(b);
  assert_string_equal(json_string_value(json_object_get(b, "type")), "job.progress");
  json_t *data = json_object_get(b, "data");
  assert_string_equal(json_string_value(json_object_get(data, "state")), "running");
  assert_int_equal(json_integer_value(json_object_get(data, "progress")), 75); /* the latest */
  assert_string_equal(json_string_value(json_object_get(data, "step")), "mix");
  json_decref(b);
  json_decref(r);

  /* Two more checkpoints: one new delivery (the first was sent). */
  atomic_store(&prog_step, 1);
  wait_step(&prog_done, 2);
  n = deliveries(w, id, all, 8);
  assert_int_equal(n, 2);
  assert_int_equal(delivery(w, p3).state, JOBQ_DELIVERY_PENDING);
  /* The end drops it, and adds the terminal one. */
  atomic_store(&prog_step, 2);
  assert_int_equal(wait_job(w, id), JOBQ_SUCCEEDED);
  n = deliveries(w, id, all, 8);
  assert_int_equal(n, 2);
  assert_false(delivery(w, p3).found);
  assert_int_equal(delivery(w, fin).state, JOBQ_DELIVERY_PENDING);
  OK(jobq_close(w, 1000));

  o2 = base_opts(s, 0, 1);
  OK(jobq_options_add_webhook(o2, "app", u, sec[S_APP].whsec));
  snd = open_q(o2, 0);
  wait_delivery(snd, fin, JOBQ_DELIVERY_DELIVERED, 1);
  OK(jobq_close(snd, 1000));
  json_t *log = rcv_get("/log", "/ok/progress");
  assert_int_equal(json_array_size(log), 2);
  assert_string_equal(str(json_array_get(log, 1), "id"), fin);
  json_decref(log);
}

/* ---- secrets ---- */

static char *slurp(const char *path, size_t *len) {
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = NULL;
  size_t cap = 0;
  for (;;) {
    if (*len + 65536 > cap) {
      cap = (cap + 65536) * 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    size_t got = fread(buf + *len, 1, cap - *len, f);
    *len += got;
    if (got == 0) break;
  }
  fclose(f);
  return buf;
}

static void check_file(const char *path, int must_exist) {
  size_t len;
  char *b = slurp(path, &len);
  if (b == NULL) {
    if (must_exist) fail_msg("cannot read %s", path);
    return;
  }
  assert_no_secret(path, b, len);
  free(b);
}

/* A scenario with every kind of delivery on a SQLite file, the secret
 * distinctive; everything libjobq shows or stores is searched for it. */
static void test_secrets_never_appear(void **state) {
  (void)state;
  char db[600], s[700], u[512];
  snprintf(db, sizeof db, "%s/leak.db", tmpdir);
  snprintf(s, sizeof s, "sqlite:%s", db);
  url_of(u, sizeof u, "/ok/leak");
  jobq_options_t *o = base_opts(s, 2, 1);
  char two[300];
  snprintf(two, sizeof two, "%s %s", sec[S_LEAK].whsec, sec[S_ROT_OLD].whsec);
  OK(jobq_options_add_webhook(o, "leak", u, two));
  OK(jobq_options_set_webhook_events(o, "leak", 15));
  OK(jobq_options_set_webhook_payload(o, "leak", 1));
  OK(jobq_options_set_webhook_retry(o, 2, 50, 100));
  /* An endpoint from the environment. */
  setenv("JOBQ_WEBHOOK_SECRET_ENV_EP", sec[S_CLIENTS].whsec, 1);
  OK(jobq_options_add_webhook(o, "env-ep", NULL, NULL));
  unsetenv("JOBQ_WEBHOOK_SECRET_ENV_EP");
  /* Bad secrets: their sentences must not quote them either. */
  char bad[200];
  snprintf(bad, sizeof bad, "%s!", sec[S_LEAK].whsec);
  ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(o, "bad", NULL, bad));
  snprintf(bad, sizeof bad, "whsec_%s", sec[S_LEAK].key);
  ERR(JOBQ_EINVAL, "jobq_options_add_webhook", jobq_options_add_webhook(o, "bad2", NULL, bad));
  ERR(JOBQ_EEXIST, "jobq_options_add_webhook",
      jobq_options_add_webhook(o, "leak", NULL, sec[S_LEAK].whsec));
  ERR(JOBQ_EINVAL, "jobq_options_add_webhook",
      jobq_options_add_webhook(o, "no-env", NULL, NULL));
  jobq_t *q = open_q(o, 1);
  const char *paths[] = {"/ok/leak-a", "/status/500/leak", "/gone/leak", "/status/429/leak?retry_after=0"};
  char ids[5][JOBQ_ID_SIZE];
  for (int i = 0; i < 4; i++) submit(q, "{\"p\":1}", "owner-leak", paths[i], i == 0 ? "env-ep" : "leak", ids[i]);
  submit(q, "{\"fail\":true}", "owner-leak", NULL, NULL, ids[4]);
  char bad_url[600];
  url_of(bad_url, sizeof bad_url, "/ok/x");
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  ERR(JOBQ_EINVAL, "jobq_submit_opts_add_webhook",
      jobq_submit_opts_add_webhook(so, "ftp://x/y", "leak", 0));
  jobq_submit_opts_free(so);
  ERR(JOBQ_EINVAL, "jobq_webhook_deliveries", jobq_webhook_deliveries(q, NULL, 9, 10, NULL, NULL));
  for (int i = 0; i < 5; i++) wait_job(q, ids[i]);
  /* every delivery ends: delivered or failed */
  int64_t end = mono_ms() + WAIT_CAP_MS;
  for (;;) {
    dlv all[64];
    int n = deliveries(q, NULL, all, 64), open = 0;
    for (int i = 0; i < n; i++)
      open += all[i].state == JOBQ_DELIVERY_PENDING || all[i].state == JOBQ_DELIVERY_SENDING;
    if (open == 0 && n >= 9) break;
    if (mono_ms() > end) fail_msg("%d deliveries still open of %d", open, n);
    sleep_ms(20);
  }
  for (int i = 0; i < 5; i++) {
    jobq_job_t *j = NULL;
    OK(jobq_get(q, ids[i], &j));
    char *js = jobq_job_to_json(j);
    say(js);
    jobq_free(js);
    jobq_job_free(j);
    char d[128];
    did(d, sizeof d, ids[i], 0, "succeeded");
    if (jobq_webhook_redeliver(q, d) != 0) say(jobq_last_error());
  }
  jobq_stats_t *st = NULL;
  OK(jobq_stats(q, &st));
  char *prom = jobq_stats_to_prometheus(st), *js = jobq_stats_to_json(st);
  say(prom);
  say(js);
  jobq_free(prom);
  jobq_free(js);
  jobq_stats_free(st);
  char wal[620];
  snprintf(wal, sizeof wal, "%s-wal", db);
  check_file(db, 1);
  check_file(wal, 0);
  OK(jobq_close(q, 2000));
  check_file(db, 1);
  check_file(wal, 0);
  pthread_mutex_lock(&said_mu);
  assert_no_secret("what libjobq said", said, said_len);
  pthread_mutex_unlock(&said_mu);
}

/* Runs after the others: standardwebhooks checks every request the
 * receiver got (it wrote each to the manifest), and the receiver's own
 * check passed for each. */
static void test_reference_library_verifies_all(void **state) {
  (void)state;
  json_t *log = rcv_get("/log", "");
  size_t n = json_array_size(log);
  assert_true(n >= 50);
  for (size_t i = 0; i < n; i++)
    if (!json_is_true(json_object_get(json_array_get(log, i), "verified")))
      fail_msg("request %zu (%s) did not verify", i, str(json_array_get(log, i), "path"));
  json_decref(log);
  const char *src = getenv("JOBQ_SOURCE_DIR");
  char mods[1024];
  snprintf(mods, sizeof mods, "%s/tests/servers/node_modules/standardwebhooks/package.json",
           src ? src : "../../..");
  struct stat stt;
  if (system("command -v node >/dev/null 2>&1") != 0 || stat(mods, &stt) != 0) {
    printf("SKIP: node or the npm package standardwebhooks is missing "
           "(bash tests/servers/install.sh installs it)\n");
    skip();
  }
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "cd '%s/tests/servers' && node webhook_check.js verify '%s' > '%s.out'",
           src ? src : "../../..", manifest, manifest);
  fflush(stdout);
  int rc = system(cmd);
  size_t len;
  char path[700];
  snprintf(path, sizeof path, "%s.out", manifest);
  char *out = slurp(path, &len);
  size_t lines = 0;
  for (size_t i = 0; out && i < len; i++) lines += out[i] == '\n';
  if (rc != 0) fail_msg("standardwebhooks refused a delivery:\n%.*s", (int)len, out ? out : "");
  assert_int_equal(lines, n); /* one "verified" line per request */
  free(out);
}

/* Every test: nothing it made libjobq say holds a secret. */
static int no_secret_said(void **state) {
  (void)state;
  pthread_mutex_lock(&said_mu);
  if (said) assert_no_secret("what libjobq said", said, said_len);
  pthread_mutex_unlock(&said_mu);
  return 0;
}

static int setup(void **state) {
  (void)state;
  const char *keys[N_SEC] = {KEY_APP, KEY_CLIENTS, KEY_ROT_OLD, KEY_ROT_NEW, KEY_LEAK};
  for (int i = 0; i < N_SEC; i++) {
    sec[i].key = keys[i];
    b64((const unsigned char *)keys[i], strlen(keys[i]), sec[i].b64);
    snprintf(sec[i].whsec, sizeof sec[i].whsec, "whsec_%s", sec[i].b64);
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/jobq-webhooks-XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(tmpdir) == NULL) return -1;
  snprintf(manifest, sizeof manifest, "%s/manifest", tmpdir);
  /* The receiver knows every secret but the rotation's old one. */
  const char *args[] = {"--dir",          tmpdir,
                        "--secret",       sec[S_APP].whsec,
                        "--secret",       sec[S_CLIENTS].whsec,
                        "--secret",       "whsec_bm90LXVzZWQtc2xvdC10d28=", /* S_ROT_OLD's place */
                        "--secret",       sec[S_ROT_NEW].whsec,
                        "--secret",       sec[S_LEAK].whsec,
                        NULL};
  if (provsrv_start("webhook_receiver.py", args, &rcv) != 0) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  provsrv_stop(&rcv);
  if (getenv("JOBQ_WEBHOOKS_KEEP") == NULL) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  }
  free(said);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_both_subscriptions_memory, no_secret_said),
      cmocka_unit_test_teardown(test_both_subscriptions_sqlite, no_secret_said),
      cmocka_unit_test_teardown(test_flaky_memory, no_secret_said),
      cmocka_unit_test_teardown(test_flaky_sqlite, no_secret_said),
      cmocka_unit_test_teardown(test_hang, no_secret_said),
      cmocka_unit_test_teardown(test_gone, no_secret_said),
      cmocka_unit_test_teardown(test_retry_after, no_secret_said),
      cmocka_unit_test_teardown(test_ssrf_submit, no_secret_said),
      cmocka_unit_test_teardown(test_ssrf_name, no_secret_said),
      cmocka_unit_test_teardown(test_max_attempts, no_secret_said),
      cmocka_unit_test_teardown(test_progress, no_secret_said),
      cmocka_unit_test_teardown(test_secrets_never_appear, no_secret_said),
      cmocka_unit_test(test_reference_library_verifies_all),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
