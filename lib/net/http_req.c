/* Preparing a request for lib/net/http.c: checking and copying the options
 * of jobq__http_start, configuring its easy handle, and the callbacks curl
 * calls during a transfer (none of them calls done). */
#include "net/http_int.h"
#include "util/mem.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>

#define DEF_CONNECT_MS 10000
#define DEF_TIMEOUT_MS 120000
#define DEF_MAX_RESPONSE ((size_t)64 << 20)
#define DEF_TRIES 4
#define DEF_BACKOFF_BASE_MS 500
#define DEF_BACKOFF_MAX_MS 30000
#define DEF_RETRY_AFTER_MAX_MS 60000

/* ---- per-transfer callbacks ---- */

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  jobq__http_req *r = ud;
  size_t len = size * n;
  if (len > r->max_response - r->seen) {
    r->too_big = 1;
    return 0; /* fails the transfer: CURLE_WRITE_ERROR */
  }
  r->seen += len;
  size_t keep = len;
  if (r->keep_response > 0 && len > r->keep_response - r->len) {
    /* Read to the end all the same (the status is what counts; a response
     * cut short would look like a failure), but keep nothing more. */
    keep = r->keep_response - r->len;
    r->cut = 1;
  }
  if (keep == 0) return len;
  if (r->len + keep + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + keep + 1) cap *= 2;
    if (cap > r->max_response + 1) cap = r->max_response + 1;
    char *nb = realloc(r->buf, cap);
    if (nb == NULL) {
      r->nomem = 1;
      return 0;
    }
    r->buf = nb;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, p, keep);
  r->len += keep;
  return len;
}

/* Installed for refuse_internal requests only: curl calls it with the
 * resolved address of every connection it opens (each address it tries,
 * every try), so the address checked is the address used. Returning
 * CURL_SOCKET_BAD makes curl try the host's next address or fail with
 * CURLE_COULDNT_CONNECT; nothing reaches the network. */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  jobq__http_req *r = ud;
  (void)purpose;
  const struct sockaddr *sa = &a->addr;
  jobq__addr_class c = jobq__addr_class_of(sa);
  if (c != JOBQ_ADDR_PUBLIC && !jobq__addr_allowed(r->allow, sa)) {
    if (!r->refused) {
      char text[64];
      jobq__addr_text(sa, text, sizeof text);
      snprintf(r->note, sizeof r->note,
               "the host '%.128s' resolved to %s (%s), which is refused; add it to the "
               "allow-list to permit it",
               r->host, text, jobq__addr_class_name(c));
    }
    r->refused = 1;
    return CURL_SOCKET_BAD;
  }
  int type = a->socktype;
#ifdef SOCK_CLOEXEC
  type |= SOCK_CLOEXEC;
#endif
  return socket(a->family, type, a->protocol);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  jobq__http_req *r = ud;
  size_t len = size * n;
  /* Each response (a 100 Continue too) starts with its status line. */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
    r->retry_after = -1;
  else if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
    r->retry_after = jobq__http_retry_after(p + 12, len - 12, time(NULL));
  return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud) {
  jobq__http_req *r = ud;
  size_t got = fread(buf, 1, size * n, r->up);
  if (got == 0 && ferror(r->up)) return CURL_READFUNC_ABORT;
  return got;
}

/* curl rewinds the upload when it must send it again on a new connection
 * (a reused one that turned out dead); without this it would fail. */
static int on_seek(void *ud, curl_off_t offset, int origin) {
  jobq__http_req *r = ud;
  return fseeko(r->up, (off_t)offset, origin) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

/* ---- options ---- */

static int known_method(const char *m) {
  static const char *const ok[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strcmp(m, ok[i]) == 0) return 1;
  return 0;
}

int jobq__http_req_check(const jobq__http_opts *o, const char *prov, const char *method) {
  if (o->url == NULL || o->url[0] == '\0') return jobq__err(JOBQ_EINVAL, "%s: no url", prov);
  if (!known_method(method))
    return jobq__err(JOBQ_EINVAL, "%s: unknown HTTP method \"%.16s\"", prov, method);
  if (o->body == NULL && o->body_len > 0)
    return jobq__err(JOBQ_EINVAL, "%s: body_len is %zu but body is NULL", prov, o->body_len);
  int has_body = o->body != NULL || o->body_file != NULL;
  if (o->body != NULL && o->body_file != NULL)
    return jobq__err(JOBQ_EINVAL, "%s: both body and body_file given", prov);
  if (has_body && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
    return jobq__err(JOBQ_EINVAL, "%s: a %s request cannot have a body", prov, method);
  if (o->n_headers > 0 && o->headers == NULL)
    return jobq__err(JOBQ_EINVAL, "%s: n_headers is %zu but headers is NULL", prov, o->n_headers);
  for (size_t i = 0; i < o->n_headers; i++) {
    const char *hd = o->headers[i];
    /* The header itself is not shown: it may carry a key. */
    if (hd == NULL || strpbrk(hd, "\r\n") != NULL || strpbrk(hd, ":;") == NULL || hd[0] == ':')
      return jobq__err(JOBQ_EINVAL, "%s: header %zu is not a \"Name: value\" line", prov, i);
  }
  if (o->n_secrets > 0 && o->secrets == NULL)
    return jobq__err(JOBQ_EINVAL, "%s: n_secrets is %zu but secrets is NULL", prov, o->n_secrets);
  if (o->connect_timeout_ms < 0 || o->timeout_ms < 0 || o->max_tries < 0 ||
      o->backoff_base_ms < 0 || o->backoff_max_ms < 0 || o->retry_after_max_ms < 0)
    return jobq__err(JOBQ_EINVAL, "%s: a timeout, delay or max_tries is negative", prov);
  return 0;
}

/* "host:port" of an http(s) URL into r->where; JOBQ_EINVAL for another. */
static int parse_url(jobq__http_req *r, const char *url) {
  CURLU *u = curl_url();
  if (u == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", r->provider);
  char *scheme = NULL, *host = NULL, *port = NULL;
  int rc = 0;
  /* The URL is not quoted in these sentences: it may carry a key. */
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
    rc = jobq__err(JOBQ_EINVAL, "%s: the url is malformed", r->provider);
  } else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
    rc = jobq__err(JOBQ_EINVAL, "%s: the url's scheme is not http or https", r->provider);
  } else {
    size_t n = strlen(host) + strlen(port) + 2;
    r->where = malloc(n);
    r->host = jobq__strdup(host);
    if (r->where == NULL || r->host == NULL)
      rc = jobq__err(JOBQ_ENOMEM, "%s: out of memory", r->provider);
    else
      snprintf(r->where, n, "%s:%s", host, port);
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return rc;
}

/* The strings never to show: opts.secrets, userpwd, its password, and the
 * base64 of userpwd (what a server echoing the Basic header would show). */
static int copy_secrets(jobq__http_req *r, const jobq__http_opts *o) {
  r->secrets = calloc(o->n_secrets + 3, sizeof *r->secrets);
  if (r->secrets == NULL) return -1;
  for (size_t i = 0; i < o->n_secrets; i++) {
    if (o->secrets[i] == NULL) continue;
    if ((r->secrets[r->n_secrets++] = jobq__strdup(o->secrets[i])) == NULL) return -1;
  }
  if (o->userpwd) {
    const char *colon = strchr(o->userpwd, ':');
    if ((r->secrets[r->n_secrets++] = jobq__strdup(o->userpwd)) == NULL) return -1;
    if (colon && (r->secrets[r->n_secrets++] = jobq__strdup(colon + 1)) == NULL) return -1;
    size_t len = strlen(o->userpwd), size = (len + 2) / 3 * 4 + 1;
    char *b = malloc(size);
    if (b == NULL) return -1;
    jobq__http_base64(b, size, o->userpwd, len);
    r->secrets[r->n_secrets++] = b;
  }
  return 0;
}

static int setup_easy(jobq__http_req *r, const jobq__http_opts *o, const char *method) {
  CURL *e = r->easy;
  CURLcode c = CURLE_OK;
#define SET(opt, val) \
  do { \
    if (c == CURLE_OK) c = curl_easy_setopt(e, opt, val); \
  } while (0)
  SET(CURLOPT_URL, o->url);
  SET(CURLOPT_PRIVATE, (void *)r);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L); /* 2 is "verify"; 1 means the same since 7.66 */
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SET(CURLOPT_CONNECTTIMEOUT_MS, (long)r->connect_ms);
  SET(CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
  /* Stops at once when Content-Length says too much; on_write catches the
   * rest (chunked bodies). Not for HEAD, whose Content-Length announces a
   * body that never comes. */
  if (strcmp(method, "HEAD") != 0) SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, (void *)r);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, (void *)r);
  SET(CURLOPT_ERRORBUFFER, r->errbuf);
  SET(CURLOPT_USERAGENT, "libjobq");
  if (strcmp(method, "HEAD") == 0) {
    SET(CURLOPT_NOBODY, 1L);
  } else if (o->body_file) {
    SET(CURLOPT_UPLOAD, 1L);
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_READDATA, (void *)r);
    SET(CURLOPT_SEEKFUNCTION, on_seek);
    SET(CURLOPT_SEEKDATA, (void *)r);
    if (strcmp(method, "PUT") != 0) SET(CURLOPT_CUSTOMREQUEST, method);
  } else if (o->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
             strcmp(method, "PATCH") == 0) {
    /* Size first: the body may hold NUL bytes. COPYPOSTFIELDS keeps a copy. */
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    SET(CURLOPT_COPYPOSTFIELDS, o->body ? (const char *)o->body : "");
    if (strcmp(method, "POST") != 0) SET(CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") != 0) {
    SET(CURLOPT_CUSTOMREQUEST, method);
  }
  if (r->headers) SET(CURLOPT_HTTPHEADER, r->headers);
  if (o->aws_sigv4) SET(CURLOPT_AWS_SIGV4, o->aws_sigv4);
  if (o->userpwd) SET(CURLOPT_USERPWD, o->userpwd);
  if (o->ca_file) SET(CURLOPT_CAINFO, o->ca_file);
  /* Never followed: a redirect would reach a URL nobody checked (curl's
   * default, said here so that no one turns it on by accident). */
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  if (r->refuse_internal) {
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)r);
    SET(CURLOPT_PROXY, ""); /* "" also ignores http_proxy & co. of the environment */
    if (!r->reuse_ok) { /* a client that also sends unchecked requests */
      SET(CURLOPT_FRESH_CONNECT, 1L);
      SET(CURLOPT_FORBID_REUSE, 1L);
    }
  }
#undef SET
  if (c == CURLE_OUT_OF_MEMORY) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", r->provider);
  if (c != CURLE_OK)
    return jobq__err(JOBQ_EINVAL, "%s: libcurl refused an option: %s", r->provider,
                     curl_easy_strerror(c));
  return 0;
}

int jobq__http_req_setup(jobq__http_req *r, const jobq__http_opts *o, const char *prov,
                      const char *method) {
  r->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEF_CONNECT_MS;
  r->timeout_ms = o->timeout_ms ? o->timeout_ms : DEF_TIMEOUT_MS;
  r->max_response = o->max_response ? o->max_response : DEF_MAX_RESPONSE;
  if (r->max_response > SIZE_MAX / 4) r->max_response = SIZE_MAX / 4; /* room for +1 */
  r->max_tries = o->max_tries ? o->max_tries : DEF_TRIES;
  r->backoff_base_ms = o->backoff_base_ms ? o->backoff_base_ms : DEF_BACKOFF_BASE_MS;
  r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : DEF_BACKOFF_MAX_MS;
  r->retry_after_max_ms = o->retry_after_max_ms ? o->retry_after_max_ms : DEF_RETRY_AFTER_MAX_MS;
  r->retry_after = -1;
  r->refuse_internal = o->refuse_internal != 0;
  r->keep_response = o->keep_response;
  if ((r->provider = jobq__strdup(prov)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", prov);
  int rc = parse_url(r, o->url);
  if (rc != 0) return rc;
  if (o->allow && (r->allow = jobq__addr_allow_dup(o->allow)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", prov);
  if (copy_secrets(r, o) != 0 || (o->body_file && (r->body_file = jobq__strdup(o->body_file)) == NULL))
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", prov);
  for (size_t i = 0; i < o->n_headers; i++) {
    struct curl_slist *l = curl_slist_append(r->headers, o->headers[i]);
    if (l == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", prov);
    r->headers = l;
  }
  if ((r->easy = jobq__http_easy_get(r->h)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "%s: curl_easy_init failed", prov);
  return setup_easy(r, o, method);
}
