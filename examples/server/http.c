/* jobq-server's HTTP side: H2O on the loop, one handler that routes every
 * request, authentication, CORS, the JSON answers and the request log.
 *
 * H2O does the protocol: parsing (HTTP/1.1 and HTTP/2), the body size
 * limit (413), the request timeout (slow clients are dropped), keep-alive
 * and the graceful close of idle connections at shutdown. Nothing here
 * parses HTTP. */
#include "server.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static srv_t *g_srv; /* the handler's H2O struct has room for one pointer: this */

/* ---- the call's life ---- */

/* Placed in the request's memory pool: H2O runs it when it frees the
 * request, which may be before the call answered (the client went away). */
static void done_inflight(srv_call *c);

static void on_req_gone(void *p) {
  srv_call *c = *(srv_call **)p;
  c->req = NULL;
  if (!c->answered) {
    srv_log(c); /* went away unanswered: logged with status 499 */
    done_inflight(c);
  }
  if (!c->busy) free(c);
}

void srv_hold(srv_call *c) { c->busy++; }

int srv_release(srv_call *c) {
  if (--c->busy > 0) return 0;
  if (c->req == NULL) {
    free(c);
    return 1;
  }
  return 0;
}

static void done_inflight(srv_call *c) {
  if (c->answered) return;
  c->answered = 1;
  c->s->inflight--;
}

void srv_stream_done(srv_call *c) {
  done_inflight(c);
  srv_log(c);
}

/* ---- the log ---- */

static void json_escape_into(char *dst, size_t cap, const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 7 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      dst[o++] = '\\';
      dst[o++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f) {
      o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", ch);
    } else {
      dst[o++] = (char)ch;
    }
  }
  dst[o] = '\0';
}

void srv_log(srv_call *c) {
  if (c->s->conf.quiet || c->logged) return;
  c->logged = 1;
  char method[16] = "?", path[512] = "?", owner[160] = "";
  if (c->req) {
    json_escape_into(method, sizeof method, c->req->method.base, c->req->method.len);
    /* The path without its query: a query may carry anything. */
    size_t plen = c->req->query_at != SIZE_MAX ? c->req->query_at : c->req->path.len;
    json_escape_into(path, sizeof path, c->req->path.base, plen);
  }
  if (c->owner) json_escape_into(owner, sizeof owner, c->owner, strlen(c->owner));
  char when[32];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  srv_iso8601((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, when);
  double ms = (double)(uv_hrtime() - c->t0) / 1e6;
  fprintf(stderr,
          "{\"time\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%d,\"ms\":%.3f,"
          "\"bytes\":%zu,\"owner\":%s%s%s}\n",
          when, method, path, c->req || c->answered ? c->status : 499, ms, c->bytes,
          c->owner ? "\"" : "", c->owner ? owner : (c->admin ? "\"*\"" : "null"),
          c->owner ? "\"" : "");
}

/* ---- answers ---- */

void srv_add_cors(srv_call *c) {
  const srv_conf *k = &c->s->conf;
  if (c->req == NULL || k->n_cors == 0) return;
  h2o_iovec_t origin = srv_header(c, "origin");
  if (origin.len == 0) return;
  for (size_t i = 0; i < k->n_cors; i++) {
    const char *a = k->cors[i];
    if (strcmp(a, "*") == 0 || (strlen(a) == origin.len && memcmp(a, origin.base, origin.len) == 0)) {
      h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN,
                     NULL, origin.base, origin.len);
      h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_VARY, NULL,
                     H2O_STRLIT("Origin"));
      h2o_add_header_by_str(&c->req->pool, &c->req->res.headers,
                            H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                            H2O_STRLIT("Retry-After, Last-Event-ID"));
      return;
    }
  }
}

static const char *reason_of(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 415: return "Unsupported Media Type";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Status";
  }
}

void srv_reply_raw(srv_call *c, int status, const char *type, const char *body, size_t len) {
  if (c->answered) return;
  c->status = status;
  c->bytes = len;
  h2o_req_t *req = c->req;
  done_inflight(c);
  if (req == NULL) return;
  req->res.status = status;
  req->res.reason = reason_of(status);
  /* The length, known: without it H2O's chunked filter (HTTP/1.1) closes
   * the connection after every answer but a 200 (a 202 submit, a 404...).
   * 204 and 304 carry no body and no length. */
  if (status != 204 && status != 304) req->res.content_length = len;
  if (type)
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
                   strlen(type));
  srv_add_cors(c);
  srv_log(c);
  /* Last: H2O may free the request (and with it, the call) inside. */
  h2o_send_inline(req, body, len);
}

void srv_reply_json(srv_call *c, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (text == NULL) {
    static const char oom[] =
        "{\"success\":false,\"error\":{\"code\":\"JOBQ_ENOMEM\",\"message\":\"out of memory\"}}";
    srv_reply_raw(c, 500, "application/json", oom, sizeof oom - 1);
    return;
  }
  srv_reply_raw(c, status, "application/json", text, strlen(text));
  free(text);
}

void srv_reply_error(srv_call *c, int status, const char *code, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  srv_reply_json(c, status,
                 json_pack("{s:b, s:{s:s, s:s}}", "success", 0, "error", "code", code, "message",
                           msg));
}

int srv_status_of(int rc) {
  switch (rc) {
  case JOBQ_EINVAL:
  case JOBQ_EJSON:
  case JOBQ_EKIND:
  case JOBQ_ECRON:
  case JOBQ_ETZ:
  case JOBQ_ECONFIG:
    return 400;
  case JOBQ_ENOTFOUND: return 404;
  case JOBQ_ESTATE:
  case JOBQ_EEXIST:
    return 409;
  case JOBQ_ETOOBIG: return 413;
  case JOBQ_EQUOTA: return 429;
  case JOBQ_ECLOSED:
  case JOBQ_ESTORAGE:
  case JOBQ_EBUSY:
  case JOBQ_EIO:
  case JOBQ_EFULL:
  case JOBQ_ECORRUPT:
  case JOBQ_EVERSION:
    return 503;
  default: return 500;
  }
}

void srv_reply_jobq(srv_call *c, int rc, const char *msg) {
  int status = srv_status_of(rc);
  if (c->req && (status == 429 || status == 503))
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                   status == 429 ? "30" : "5", status == 429 ? 2 : 1);
  srv_reply_error(c, status, jobq_err_name(rc), "%s", msg ? msg : jobq_last_error());
}

/* ---- files compiled in ---- */

const srv_asset *srv_asset_find(const char *name) {
  for (const srv_asset *a = srv_assets; a->name; a++)
    if (strcmp(a->name, name) == 0) return a;
  return NULL;
}

void srv_reply_asset(srv_call *c, const char *name) {
  const srv_asset *a = srv_asset_find(name);
  if (a == NULL) {
    srv_reply_error(c, 404, "not_found", "no such file: %s", name);
    return;
  }
  /* FNV-1a of the bytes: the ETag changes whenever the program's copy does. */
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < a->len; i++) h = (h ^ a->data[i]) * 1099511628211ULL;
  char etag[24];
  int n = snprintf(etag, sizeof etag, "\"%016llx\"", (unsigned long long)h);
  h2o_iovec_t inm = srv_header(c, "if-none-match");
  if (c->req) {
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache"));
    h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_ETAG, NULL,
                   h2o_strdup(&c->req->pool, etag, (size_t)n).base, (size_t)n);
  }
  if (inm.len == (size_t)n && memcmp(inm.base, etag, (size_t)n) == 0) {
    srv_reply_raw(c, 304, NULL, "", 0);
    return;
  }
  srv_reply_raw(c, 200, a->type, (const char *)a->data, a->len);
}

/* ---- reading the request ---- */

h2o_iovec_t srv_header(srv_call *c, const char *lower_name) {
  if (c->req == NULL) return h2o_iovec_init(NULL, 0);
  const h2o_token_t *tok = h2o_lookup_token(lower_name, strlen(lower_name));
  ssize_t i = tok ? h2o_find_header(&c->req->headers, tok, -1)
                  : h2o_find_header_by_str(&c->req->headers, lower_name, strlen(lower_name), -1);
  if (i < 0) return h2o_iovec_init(NULL, 0);
  return c->req->headers.entries[i].value;
}

json_t *srv_body_object(srv_call *c) {
  h2o_iovec_t ct = srv_header(c, "content-type");
  static const char want[] = "application/json";
  if (ct.len < sizeof want - 1 || strncasecmp(ct.base, want, sizeof want - 1) != 0 ||
      (ct.len > sizeof want - 1 && ct.base[sizeof want - 1] != ';' &&
       ct.base[sizeof want - 1] != ' ')) {
    srv_reply_error(c, 415, "unsupported_media_type",
                    "the body must be JSON, sent with Content-Type: application/json");
    return NULL;
  }
  json_error_t e;
  const char *b = c->req->entity.base ? c->req->entity.base : "";
  json_t *o = json_loadb(b, c->req->entity.len, JSON_REJECT_DUPLICATES, &e);
  if (o == NULL) {
    srv_reply_error(c, 400, "malformed_json", "the body is not valid JSON: %s at byte %d",
                    e.text, e.position);
    return NULL;
  }
  if (!json_is_object(o)) {
    json_decref(o);
    srv_reply_error(c, 400, "malformed_json", "the body must be a JSON object");
    return NULL;
  }
  return o;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  ch = tolower(ch);
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  return -1;
}

int srv_query(srv_call *c, const char *name, char *buf, size_t cap) {
  if (c->req == NULL || c->req->query_at == SIZE_MAX) return 0;
  const char *p = c->req->path.base + c->req->query_at + 1;
  const char *end = c->req->path.base + c->req->path.len;
  size_t nlen = strlen(name);
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    if (amp == NULL) amp = end;
    const char *eq = memchr(p, '=', (size_t)(amp - p));
    const char *kend = eq ? eq : amp;
    if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
      size_t o = 0;
      for (const char *v = eq ? eq + 1 : amp; v < amp; v++) {
        int ch = (unsigned char)*v;
        if (ch == '+') {
          ch = ' ';
        } else if (ch == '%') {
          int hi = v + 2 < amp ? hexval(v[1]) : -1, lo = v + 2 < amp ? hexval(v[2]) : -1;
          if (hi < 0 || lo < 0) {
            srv_reply_error(c, 400, "bad_query", "query parameter '%s' is badly %%-encoded", name);
            return -1;
          }
          ch = hi << 4 | lo;
          v += 2;
        }
        if (ch == 0 || o + 1 >= cap) {
          srv_reply_error(c, 400, "bad_query", "query parameter '%s' is too long or holds NUL",
                          name);
          return -1;
        }
        buf[o++] = (char)ch;
      }
      buf[o] = '\0';
      return 1;
    }
    p = amp + 1;
  }
  return 0;
}

int srv_param(srv_call *c, int i, char *buf, size_t cap) {
  if (c->param[i].len + 1 > cap) return -1;
  memcpy(buf, c->param[i].base, c->param[i].len);
  buf[c->param[i].len] = '\0';
  return 0;
}

/* ---- work on the pool ---- */

static void on_work(uv_work_t *w) {
  srv_call *c = w->data;
  c->work_fn(c);
}

static void on_work_done(uv_work_t *w, int status) {
  (void)status;
  srv_call *c = w->data;
  if (c->req == NULL) {
    if (c->cleanup_fn) c->cleanup_fn(c);
    done_inflight(c);
    srv_release(c);
    return;
  }
  c->busy--; /* the after function may answer, which may free the call */
  c->after_fn(c);
}

void srv_work(srv_call *c, void (*work)(srv_call *c), void (*after)(srv_call *c),
              void (*cleanup)(srv_call *c)) {
  c->work_fn = work;
  c->after_fn = after;
  c->cleanup_fn = cleanup;
  c->work.data = c;
  srv_hold(c);
  int rc = uv_queue_work(c->s->loop, &c->work, on_work, on_work_done);
  if (rc != 0) {
    c->busy--;
    srv_reply_error(c, 503, "unavailable", "cannot queue the work: %s", uv_strerror(rc));
  }
}

/* ---- authentication ---- */

/* SHA-256 of both, compared with CRYPTO_memcmp: the time depends on neither
 * the key's length nor where it differs. */
static int key_equal(const char *have, size_t hlen, const char *want) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)have, hlen, a);
  SHA256((const unsigned char *)want, strlen(want), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

/* The presented credential: x-api-key, else the token of
 * "Authorization: Bearer". */
static h2o_iovec_t credential(srv_call *c) {
  h2o_iovec_t k = srv_header(c, "x-api-key");
  if (k.len) return k;
  h2o_iovec_t a = srv_header(c, "authorization");
  if (a.len > 7 && strncasecmp(a.base, "Bearer ", 7) == 0) {
    a.base += 7;
    a.len -= 7;
    while (a.len && *a.base == ' ') a.base++, a.len--;
    return a;
  }
  return h2o_iovec_init(NULL, 0);
}

/* 0 and c->owner/c->admin set, or -1 after answering 401/403. */
static int authenticate(srv_call *c, int auth) {
  const srv_conf *k = &c->s->conf;
  if (auth == SRV_AUTH_NONE) return 0;
  if (k->no_auth) {
    c->admin = 1;
    return 0;
  }
  h2o_iovec_t cred = credential(c);
  if (auth == SRV_AUTH_CRON && k->cron_secret && cred.len &&
      key_equal(cred.base, cred.len, k->cron_secret)) {
    c->admin = 1;
    return 0;
  }
  int found = -1;
  if (cred.len)
    for (size_t i = 0; i < k->n_keys; i++) /* every key, found or not: no early exit */
      if (key_equal(cred.base, cred.len, k->keys[i].key) && found < 0) found = (int)i;
  if (found < 0) {
    if (c->req)
      h2o_add_header(&c->req->pool, &c->req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                     H2O_STRLIT("Bearer"));
    srv_reply_error(c, 401, "unauthorized",
                    cred.len ? "the API key is not valid"
                             : "an API key is required (x-api-key or Authorization: Bearer)");
    return -1;
  }
  c->owner = k->keys[found].owner;
  c->admin = c->owner == NULL;
  if ((auth == SRV_AUTH_ADMIN || auth == SRV_AUTH_CRON) && !c->admin) {
    srv_reply_error(c, 403, "forbidden", "this needs an administrator key");
    return -1;
  }
  return 0;
}

/* ---- the handler ---- */

static int preflight(srv_call *c) {
  h2o_iovec_t m = srv_header(c, "access-control-request-method");
  if (m.len == 0) return 0;
  srv_add_cors(c);
  if (c->req->res.headers.size) { /* the origin is allowed */
    h2o_add_header_by_str(&c->req->pool, &c->req->res.headers,
                          H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          H2O_STRLIT("GET, POST, DELETE, OPTIONS"));
    h2o_add_header_by_str(&c->req->pool, &c->req->res.headers,
                          H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                          H2O_STRLIT("content-type, x-api-key, authorization, last-event-id"));
    h2o_add_header_by_str(&c->req->pool, &c->req->res.headers,
                          H2O_STRLIT("access-control-max-age"), 0, NULL, H2O_STRLIT("600"));
  }
  c->status = 204;
  done_inflight(c);
  srv_log(c);
  c->req->res.status = 204;
  c->req->res.reason = "No Content";
  h2o_send_inline(c->req, "", 0);
  return 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  (void)self;
  srv_t *s = g_srv;
  srv_call *c = calloc(1, sizeof *c);
  if (c == NULL) return -1; /* H2O answers 404; nothing better without memory */
  c->s = s;
  c->req = req;
  c->t0 = uv_hrtime();
  c->status = 500;
  s->inflight++;
  srv_call **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, on_req_gone);
  *slot = c;

  if (s->draining) {
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONNECTION, NULL, H2O_STRLIT("close"));
    srv_reply_error(c, 503, "shutting_down", "the server is shutting down");
    return 0;
  }
  if (req->method.len == 7 && memcmp(req->method.base, "OPTIONS", 7) == 0 && preflight(c))
    return 0;
  if (req->entity.len > s->conf.max_body) {
    srv_reply_error(c, 413, "too_large", "the body is %zu bytes; at most %zu are accepted",
                    req->entity.len, s->conf.max_body);
    return 0;
  }
  /* path_normalized: without the query, %-decoded, "." and ".." resolved */
  const char *path = req->path_normalized.base;
  size_t plen = req->path_normalized.len;
  const srv_route *r = NULL;
  char allow[64];
  int st = srv_route_find(req->method.base, req->method.len, path, plen, &r, c->param, allow,
                          sizeof allow);
  if (st == 404) {
    srv_reply_error(c, 404, "not_found", "no such route: %.*s", (int)(plen > 200 ? 200 : plen),
                    path);
    return 0;
  }
  if (st == 405) {
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    srv_reply_error(c, 405, "method_not_allowed", "%.*s is not allowed here; allowed: %s",
                    (int)req->method.len, req->method.base, allow);
    return 0;
  }
  if (authenticate(c, r->auth) != 0) return 0;
  r->fn(c);
  return 0;
}

/* ---- the listener ---- */

static void on_conn_closed(uv_handle_t *h) { free(h); }

static void on_accept(uv_stream_t *listener, int status) {
  srv_t *s = listener->data;
  if (status != 0 || s->draining) return;
  uv_tcp_t *conn = malloc(sizeof *conn);
  if (conn == NULL) return;
  uv_tcp_init(listener->loop, conn);
  if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
    uv_close((uv_handle_t *)conn, on_conn_closed);
    return;
  }
  uv_tcp_nodelay(conn, 1);
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_closed);
  h2o_accept(&s->accept, sock);
}

int srv_http_start(srv_t *s) {
  g_srv = s;
  h2o_config_init(&s->h2o);
  /* H2O refuses bodies past its limit itself, with a plain-text 413; up to
   * four times ours it reads them, so that on_req answers the JSON 413. */
  s->h2o.max_request_entity_size = s->conf.max_body > SIZE_MAX / 4 ? SIZE_MAX : s->conf.max_body * 4;
  s->h2o.http1.req_timeout = (uint64_t)s->conf.req_timeout_ms;
  s->h2o.http2.idle_timeout = (uint64_t)s->conf.req_timeout_ms;
  s->h2o.server_name = h2o_iovec_init(H2O_STRLIT("jobq-server"));
  h2o_hostconf_t *host =
      h2o_config_register_host(&s->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  if (s->conf.audio_dir) {
    /* The local upload provider's files: H2O's file handler answers Range
     * requests (206) and conditional ones itself. */
    h2o_pathconf_t *audio = h2o_config_register_path(host, "/audio", 0);
    /* H2O's default map knows mp3 but not wav: a player wants audio/wav. */
    h2o_mimemap_t *mime = h2o_mimemap_create();
    h2o_mimemap_define_mimetype(mime, "wav", "audio/wav", NULL);
    h2o_mimemap_define_mimetype(mime, "mp3", "audio/mpeg", NULL);
    h2o_file_register(audio, s->conf.audio_dir, NULL, mime, 0);
    h2o_mem_release_shared(mime); /* the handler holds its own reference */
  }
  h2o_pathconf_t *root = h2o_config_register_path(host, "/", 0);
  h2o_handler_t *h = h2o_create_handler(root, sizeof *h);
  h->on_req = on_req;
  h2o_context_init(&s->ctx, s->loop, &s->h2o);
  s->accept.ctx = &s->ctx;
  s->accept.hosts = s->h2o.hosts;
  /* No address: H2O is ready, and connections come in through
   * srv_http_accept_fd (tests/fuzz/fuzz_server.c feeds one a socketpair). */
  if (s->conf.listen_host == NULL) return 0;

  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(s->conf.listen_host, s->conf.listen_port, (struct sockaddr_in *)&addr);
  if (rc != 0)
    rc = uv_ip6_addr(s->conf.listen_host, s->conf.listen_port, (struct sockaddr_in6 *)&addr);
  if (rc != 0) {
    fprintf(stderr, "jobq-server: --listen: '%s' is not an IPv4 or IPv6 address\n",
            s->conf.listen_host);
    return -1;
  }
  uv_tcp_init(s->loop, &s->listener);
  s->listener.data = s;
  if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_accept)) != 0) {
    fprintf(stderr, "jobq-server: cannot listen on %s:%d: %s\n", s->conf.listen_host,
            s->conf.listen_port, uv_strerror(rc));
    uv_close((uv_handle_t *)&s->listener, NULL);
    return -1;
  }
  s->listening = 1;
  /* --listen HOST:0 takes a free port: the start line says which. */
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen) == 0)
    s->conf.listen_port = ntohs(bound.ss_family == AF_INET6
                                    ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                    : ((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

int srv_http_accept_fd(srv_t *s, int fd) {
  uv_pipe_t *conn = malloc(sizeof *conn);
  if (conn == NULL) return UV_ENOMEM;
  uv_pipe_init(s->loop, conn, 0);
  int rc = uv_pipe_open(conn, fd);
  if (rc != 0) {
    uv_close((uv_handle_t *)conn, on_conn_closed);
    return rc;
  }
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, on_conn_closed);
  h2o_accept(&s->accept, sock);
  return 0;
}

void srv_http_stop_accepting(srv_t *s) {
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = 0;
  }
  /* HTTP/2 connections get a GOAWAY (their open streams finish); HTTP/1
   * ones are answered "Connection: close" from now on (on_req). */
  if (!h2o_linklist_is_empty(&s->ctx.http2._conns)) h2o_context_request_shutdown(&s->ctx);
}

int srv_http_idle(srv_t *s) {
  return h2o_linklist_is_empty(&s->ctx.http1._conns) && h2o_linklist_is_empty(&s->ctx.http2._conns);
}

void srv_http_dispose(srv_t *s) {
  /* With connections left (a client that keeps one open past the grace
   * period), H2O cannot dispose its context: the process exits without. */
  if (!srv_http_idle(s)) return;
  h2o_context_dispose(&s->ctx);
  h2o_config_dispose(&s->h2o);
}
