/* HTTP requests on a libuv loop through libcurl's multi interface (see
 * http.h).
 *
 * The client owns the CURLM, one uv_timer_t for curl's timeout and one
 * uv_poll_t per socket curl asks us to watch. A request owns one easy handle
 * for all its tries (its options are set once; the multi keeps the
 * connections, so a retry reuses one when it can) and a uv_timer_t for the
 * wait before a retry. Checking the options and preparing the easy handle
 * (with the callbacks curl calls during a transfer) is in http_req.c.
 *
 * Re-entrancy: a done callback may call start, abort or close. So done is
 * only ever called where no curl function is on the stack (never from a curl
 * callback), and whoever calls done checks h->closing before touching the
 * multi again. A request's and a socket's memory lives until their handle's
 * close callback, and the client's until the last close callback after
 * jobq__http_close, so pointers held across a done call stay valid. */
#include "net/http.h"
#include "net/http_int.h"
#include "util/err.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

typedef struct jobq__http_sock {
  uv_poll_t poll;
  jobq__http *h;
  curl_socket_t fd;
  struct jobq__http_sock *prev, *next;
} jobq__http_sock;

struct jobq__http {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  jobq__http_req *reqs;   /* requests whose done has not been called */
  jobq__http_sock *socks; /* polls not yet closed */
  int closing;
  int handles; /* our uv handles whose close callback has not run */
  void (*closed)(void *ud);
  void *closed_ud;
  /* jobq__http_checked_only: every request refuses internal addresses
   * with this allow-list, so connections may be kept and reused. */
  int checked;
  jobq__addr_allow *allow;
  int used; /* a request was started: too late to make it checked */
  /* Easy handles of finished requests, reset, for the next ones: a new
   * handle costs allocations (its buffers among them) that showed as a
   * tenth of the CPU of many small requests, such as webhook deliveries. */
  CURL *idle[32];
  int n_idle;
};

/* ---- process-wide: curl_global_init and the jitter generator ---- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc;
static _Atomic uint64_t g_rand;

static void global_init(void) {
  /* Never undone with curl_global_cleanup: a library cannot know that no
   * other part of the process still uses curl. */
  g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  atomic_store(&g_rand, uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32) ^
                            (uint64_t)(uintptr_t)&g_init_rc);
}

/* splitmix64 over an atomic counter: lock-free and safe from any thread,
 * which rand() is not; jitter needs no better. */
static uint64_t rand_next(void) {
  uint64_t z = atomic_fetch_add_explicit(&g_rand, 0x9E3779B97F4A7C15ull, memory_order_relaxed);
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- handle bookkeeping ---- */

CURL *jobq__http_easy_get(jobq__http *h) {
  if (h->n_idle > 0) return h->idle[--h->n_idle];
  return curl_easy_init();
}

static void easy_put(jobq__http *h, CURL *e) {
  if (!h->closing && h->n_idle < (int)(sizeof h->idle / sizeof h->idle[0])) {
    curl_easy_reset(e); /* options back to defaults: nothing of the last request stays */
    h->idle[h->n_idle++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

static void handle_closed(jobq__http *h) {
  if (--h->handles > 0 || !h->closing) return;
  void (*closed)(void *) = h->closed;
  void *ud = h->closed_ud;
  jobq__addr_allow_free(h->allow);
  free(h);
  if (closed) closed(ud);
}

static void on_timer_closed(uv_handle_t *t) { handle_closed(t->data); }

static void on_sock_closed(uv_handle_t *p) {
  jobq__http_sock *k = p->data;
  jobq__http *h = k->h;
  free(k);
  handle_closed(h);
}

static void sock_close(jobq__http_sock *k) {
  jobq__http *h = k->h;
  if (k->prev) k->prev->next = k->next;
  else h->socks = k->next;
  if (k->next) k->next->prev = k->prev;
  uv_close((uv_handle_t *)&k->poll, on_sock_closed);
}

static void on_req_closed(uv_handle_t *t) {
  jobq__http_req *r = t->data;
  jobq__http *h = r->h;
  free(r);
  handle_closed(h);
}

static void close_upload(jobq__http_req *r) {
  if (r->up) fclose(r->up);
  r->up = NULL;
}

/* Frees what the request holds; the request itself goes with its timer. */
static void req_destroy(jobq__http_req *r) {
  close_upload(r);
  if (r->easy) easy_put(r->h, r->easy);
  curl_slist_free_all(r->headers);
  for (size_t i = 0; i < r->n_secrets; i++) free(r->secrets[i]);
  free(r->secrets);
  free(r->provider);
  free(r->where);
  free(r->host);
  jobq__addr_allow_free(r->allow);
  free(r->body_file);
  free(r->buf);
  uv_close((uv_handle_t *)&r->timer, on_req_closed);
}

static void req_unlink(jobq__http_req *r) {
  if (r->prev) r->prev->next = r->next;
  else r->h->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* ---- outcome of a request ---- */

static void os_error(int e, char *buf, size_t size) {
  uv_strerror_r(-e, buf, size);
  if (buf[0] >= 'a' && buf[0] <= 'z') buf[0] = (char)(buf[0] - 'a' + 'A');
}

/* The error sentence for rc (and the status), redacted; "" if none is due. */
static void describe(jobq__http_req *r, int rc, char *out, size_t size) {
  char msg[768];
  const char *p = r->provider;
  switch (rc) {
  case 0: {
    if (r->status < 400) {
      out[0] = '\0';
      return;
    }
    char after[40] = "", snip[JOBQ_HTTP_SNIPPET_MAX + 8];
    if (r->tries > 1) snprintf(after, sizeof after, " after %d tries", r->tries);
    jobq__http_snippet(snip, sizeof snip, r->buf, r->len, (const char *const *)r->secrets,
                    r->n_secrets);
    snprintf(msg, sizeof msg, "%s: HTTP %ld%s%s%s%s", p, r->status, after, r->note,
             snip[0] ? ": " : "", snip);
    break;
  }
  case JOBQ_ETOOBIG:
    snprintf(msg, sizeof msg, "%s: the response from %s is longer than %zu bytes", p, r->where,
             r->max_response);
    break;
  case JOBQ_ECANCELLED:
    snprintf(msg, sizeof msg, "%s: request to %s cancelled", p, r->where);
    break;
  default: {
    char after[40] = "";
    if (r->tries > 1) snprintf(after, sizeof after, " (after %d tries)", r->tries);
    snprintf(msg, sizeof msg, "%s: %s%s", p, r->note[0] ? r->note : jobq_strerror(rc), after);
    break;
  }
  }
  jobq__http_redact(out, size, msg, (const char *const *)r->secrets, r->n_secrets);
}

/* Ends the request: done(ud, resp) once, then its resources go. */
static void finish(jobq__http_req *r, int rc) {
  jobq__http *h = r->h;
  if (r->in_multi) curl_multi_remove_handle(h->multi, r->easy);
  r->in_multi = 0;
  uv_timer_stop(&r->timer);
  close_upload(r);
  r->state = JOBQ_HTTP_DONE;
  req_unlink(r);

  char err[512];
  describe(r, rc, err, sizeof err);
  char *ctype = NULL;
  if (r->tries > 0) curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
  if (r->buf) r->buf[r->len] = '\0';
  jobq__http_resp resp = {
    .rc = rc,
    .status = r->status,
    .body = r->buf ? r->buf : "",
    .body_len = r->buf ? r->len : 0,
    .content_type = ctype,
    .tries = r->tries,
    .refused = r->refused,
    .body_cut = r->cut,
    .error = err[0] ? err : NULL,
    .retry_after_ms = r->retry_after_long ? r->retry_after * 1000 : -1,
    .retry_after_sent_ms = rc == 0 && r->retry_after >= 0 ? r->retry_after * 1000 : -1,
  };
  r->done(r->ud, &resp);
  req_destroy(r);
}

static int retryable_status(long s) {
  return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504 || s == 529;
}

/* rc for a finished try, with r->note set to the cause; *retry when another
 * try could go differently. */
static int classify(jobq__http_req *r, CURLcode res, int *retry) {
  *retry = 0;
  if (r->nomem) {
    snprintf(r->note, sizeof r->note, "out of memory for the response from %s", r->where);
    return JOBQ_ENOMEM;
  }
  if (r->too_big || res == CURLE_FILESIZE_EXCEEDED) return JOBQ_ETOOBIG;
  if (r->refused && res != CURLE_OK && res != CURLE_OPERATION_TIMEDOUT)
    return JOBQ_ENETWORK; /* r->note says which address; the next try would resolve the same */
  /* Another of the host's addresses was used: the refusal is no news. */
  r->refused = 0;
  r->note[0] = '\0';
  const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(res);
  switch (res) {
  case CURLE_OK:
    *retry = retryable_status(r->status);
    return 0;
  case CURLE_OPERATION_TIMEDOUT: {
    curl_off_t connected = 0;
    curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &connected);
    if (connected > 0)
      snprintf(r->note, sizeof r->note, "no complete response from %s within %lld ms", r->where,
               (long long)r->timeout_ms);
    else
      snprintf(r->note, sizeof r->note, "could not connect to %s within %lld ms", r->where,
               (long long)(r->connect_ms < r->timeout_ms ? r->connect_ms : r->timeout_ms));
    *retry = 1;
    return JOBQ_ETIMEDOUT;
  }
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    snprintf(r->note, sizeof r->note, "could not resolve %s: %s", r->where, detail);
    *retry = 1;
    return JOBQ_ENETWORK;
  case CURLE_COULDNT_CONNECT: {
    long e = 0;
    char why[128];
    curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &e);
    if (e > 0) os_error((int)e, why, sizeof why);
    snprintf(r->note, sizeof r->note, "could not connect to %s: %s", r->where,
             e > 0 ? why : detail);
    *retry = 1;
    return JOBQ_ENETWORK;
  }
  /* A certificate that fails verification fails the same way next time. */
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_INVALIDCERTSTATUS:
    snprintf(r->note, sizeof r->note, "TLS verification of %s failed: %s", r->where, detail);
    return JOBQ_ENETWORK;
  case CURLE_READ_ERROR:
  case CURLE_ABORTED_BY_CALLBACK:
    snprintf(r->note, sizeof r->note, "could not read body_file %s", r->body_file);
    return JOBQ_EIO;
  case CURLE_OUT_OF_MEMORY:
    snprintf(r->note, sizeof r->note, "out of memory in libcurl");
    return JOBQ_ENOMEM;
  default:
    snprintf(r->note, sizeof r->note, "transfer with %s failed: %s", r->where, detail);
    *retry = 1;
    return JOBQ_ENETWORK;
  }
}

/* base * 2^(tries-1), capped, with equal jitter: half of it fixed so that
 * waits keep growing, half random so that clients that failed together do
 * not come back together. */
static int64_t backoff_ms(const jobq__http_req *r) {
  int64_t d = r->backoff_base_ms;
  for (int i = 1; i < r->tries && d <= r->backoff_max_ms / 2; i++) d *= 2;
  if (d > r->backoff_max_ms) d = r->backoff_max_ms;
  int64_t half = d / 2;
  return half + (int64_t)(rand_next() % (uint64_t)(d - half + 1));
}

static void on_req_timer(uv_timer_t *t);

static void try_done(jobq__http_req *r, CURLcode res) {
  curl_multi_remove_handle(r->h->multi, r->easy);
  r->in_multi = 0;
  close_upload(r);
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
  int retry = 0;
  int rc = classify(r, res, &retry);
  r->retry_after_long =
      retry && rc == 0 && r->retry_after >= 0 && r->retry_after * 1000 > r->retry_after_max_ms;
  if (retry && r->tries < r->max_tries) {
    int64_t delay = -1;
    if (rc == 0 && r->retry_after >= 0) {
      if (r->retry_after * 1000 <= r->retry_after_max_ms)
        delay = r->retry_after * 1000;
      else
        snprintf(r->note, sizeof r->note, " (Retry-After %lld s is beyond the %lld ms allowed)",
                 (long long)r->retry_after, (long long)r->retry_after_max_ms);
    } else {
      delay = backoff_ms(r);
    }
    if (delay >= 0) {
      r->state = JOBQ_HTTP_WAITING;
      uv_timer_start(&r->timer, on_req_timer, (uint64_t)delay, 0);
      return;
    }
  }
  finish(r, rc);
}

/* ---- the multi's callbacks (none of them calls done) ---- */

static void check_info(jobq__http *h);

static void on_poll(uv_poll_t *p, int status, int events) {
  jobq__http_sock *k = p->data;
  jobq__http *h = k->h;
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  int running;
  /* May close k (CURL_POLL_REMOVE); its memory stays until on_sock_closed. */
  curl_multi_socket_action(h->multi, k->fd, flags, &running);
  check_info(h);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)easy;
  jobq__http *h = userp;
  jobq__http_sock *k = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (k) {
      if (!h->closing) curl_multi_assign(h->multi, s, NULL);
      sock_close(k);
    }
    return 0;
  }
  if (h->closing) return 0;
  if (k == NULL) {
    /* On failure the transfer is left unwatched and ends at its timeout:
     * returning -1 would make the whole multi unusable. */
    k = calloc(1, sizeof *k);
    if (k == NULL) return 0;
    if (uv_poll_init_socket(h->loop, &k->poll, s) != 0) {
      free(k);
      return 0;
    }
    k->poll.data = k;
    k->h = h;
    k->fd = s;
    k->next = h->socks;
    if (h->socks) h->socks->prev = k;
    h->socks = k;
    h->handles++;
    curl_multi_assign(h->multi, s, k);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&k->poll, ev, on_poll);
  return 0;
}

static void on_timeout(uv_timer_t *t) {
  jobq__http *h = t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_info(h);
}

static int on_curl_timer(CURLM *m, long ms, void *userp) {
  (void)m;
  jobq__http *h = userp;
  /* ms 0 means "now", but curl must not be called back from inside this
   * callback: a 0 ms timer runs it on the next loop iteration. */
  if (ms < 0 || h->closing)
    uv_timer_stop(&h->timer);
  else
    uv_timer_start(&h->timer, on_timeout, (uint64_t)ms, 0);
  return 0;
}

/* Takes finished transfers off the multi. done may close the client, after
 * which the multi is gone: hence the check on every round. */
static void check_info(jobq__http *h) {
  CURLMsg *m;
  int left;
  while (!h->closing && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    CURLcode res = m->data.result; /* m is invalid after the next curl call */
    char *p = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
    if (p) try_done((jobq__http_req *)p, res);
  }
}

/* ---- tries ---- */

/* Opens body_file (again: each try sends it from the start) and hands the
 * easy handle to the multi. */
static int begin_try(jobq__http_req *r) {
  r->len = 0;
  r->too_big = r->nomem = 0;
  r->seen = 0;
  r->cut = r->refused = 0;
  r->retry_after = -1;
  r->status = 0;
  r->note[0] = r->errbuf[0] = '\0';
  if (r->body_file) {
    int fd = open(r->body_file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int e = 0;
    if (fd < 0 || fstat(fd, &st) != 0) e = errno;
    else if (!S_ISREG(st.st_mode)) e = EISDIR;
    else if ((r->up = fdopen(fd, "rb")) == NULL) e = errno;
    if (e != 0) {
      if (fd >= 0) close(fd);
      char why[128];
      os_error(e, why, sizeof why);
      snprintf(r->note, sizeof r->note, "cannot read body_file %s: %s", r->body_file,
               e == EISDIR ? "not a regular file" : why);
      return JOBQ_EIO;
    }
    curl_easy_setopt(r->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
  }
  CURLMcode mc = curl_multi_add_handle(r->h->multi, r->easy);
  if (mc != CURLM_OK) {
    close_upload(r);
    snprintf(r->note, sizeof r->note, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    return JOBQ_ENOMEM;
  }
  r->in_multi = 1;
  r->state = JOBQ_HTTP_RUNNING;
  r->tries++;
  return 0;
}

static void on_req_timer(uv_timer_t *t) {
  jobq__http_req *r = t->data;
  if (r->state == JOBQ_HTTP_FAILING) {
    finish(r, r->fail_rc);
  } else if (r->state == JOBQ_HTTP_WAITING) {
    int rc = begin_try(r);
    if (rc != 0) finish(r, rc);
  }
}

/* ---- the interface ---- */

int jobq__http_new(uv_loop_t *loop, jobq__http **out) {
  if (out) *out = NULL;
  if (loop == NULL || out == NULL)
    return jobq__err(JOBQ_EINVAL, "jobq__http_new: loop or out is NULL");
  pthread_once(&g_once, global_init);
  if (g_init_rc != CURLE_OK)
    return jobq__err(JOBQ_EIO, "http: curl_global_init failed: %s", curl_easy_strerror(g_init_rc));
  jobq__http *h = calloc(1, sizeof *h);
  if (h == NULL) return jobq__err(JOBQ_ENOMEM, "http: out of memory");
  if ((h->multi = curl_multi_init()) == NULL) {
    free(h);
    return jobq__err(JOBQ_ENOMEM, "http: curl_multi_init failed");
  }
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h);
  h->loop = loop;
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->handles = 1;
  *out = h;
  return 0;
}

int jobq__http_checked_only(jobq__http *h, const jobq__addr_allow *allow) {
  if (h->used) return jobq__err(JOBQ_ESTATE, "http: the client has sent requests already");
  jobq__addr_allow *a = NULL;
  if (allow && (a = jobq__addr_allow_dup(allow)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "http: out of memory");
  jobq__addr_allow_free(h->allow);
  h->allow = a;
  h->checked = 1;
  return 0;
}

int jobq__http_start(jobq__http *h, const jobq__http_opts *o, jobq__http_done_fn done, void *ud,
                  jobq__http_req **out_req) {
  if (out_req) *out_req = NULL;
  if (h == NULL || o == NULL || done == NULL)
    return jobq__err(JOBQ_EINVAL, "jobq__http_start: client, options or done is NULL");
  const char *prov = o->provider ? o->provider : "http";
  if (h->closing) return jobq__err(JOBQ_ECLOSED, "%s: the HTTP client is closing", prov);
  jobq__http_opts oc;
  if (h->checked) {
    if (!o->refuse_internal)
      return jobq__err(JOBQ_EINVAL,
                       "%s: this client sends only requests that refuse internal addresses", prov);
    oc = *o;
    oc.allow = h->allow; /* one allow-list for every connection the client keeps */
    o = &oc;
  }
  const char *method = o->method ? o->method
                       : o->body_file ? "PUT"
                       : o->body ? "POST"
                                 : "GET";
  int rc = jobq__http_req_check(o, prov, method);
  if (rc != 0) return rc;

  jobq__http_req *r = calloc(1, sizeof *r);
  if (r == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", prov);
  r->h = h;
  r->done = done;
  r->ud = ud;
  uv_timer_init(h->loop, &r->timer);
  r->timer.data = r;
  h->handles++;
  h->used = 1;
  r->reuse_ok = h->checked;
  rc = jobq__http_req_setup(r, o, prov, method);
  if (rc == 0) {
    rc = begin_try(r);
    if (rc == JOBQ_EIO) {
      /* done must not run inside start: the timer reports it. */
      r->state = JOBQ_HTTP_FAILING;
      r->fail_rc = rc;
      uv_timer_start(&r->timer, on_req_timer, 0, 0);
      rc = 0;
    } else if (rc != 0) {
      char err[512];
      jobq__http_redact(err, sizeof err, r->note, (const char *const *)r->secrets, r->n_secrets);
      jobq__err(rc, "%s: %s", prov, err);
    }
  }
  if (rc != 0) {
    req_destroy(r);
    return rc;
  }
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  if (out_req) *out_req = r;
  return 0;
}

void jobq__http_abort(jobq__http_req *r) {
  if (r == NULL || r->state == JOBQ_HTTP_DONE) return;
  finish(r, JOBQ_ECANCELLED);
}

void jobq__http_close(jobq__http *h, void (*closed)(void *ud), void *ud) {
  if (h == NULL || h->closing) return;
  h->closing = 1;
  h->closed = closed;
  h->closed_ud = ud;
  /* done may abort others (they leave the list) and cannot start new ones. */
  while (h->reqs) finish(h->reqs, JOBQ_ECANCELLED);
  while (h->n_idle > 0) curl_easy_cleanup(h->idle[--h->n_idle]);
  /* May report sockets of cached connections through on_socket (REMOVE). */
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  while (h->socks) sock_close(h->socks);
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}
