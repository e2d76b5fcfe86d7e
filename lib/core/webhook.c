/* The webhook sender: claims deliveries from the store's outbox and posts
 * them on the loop.
 *
 * Two sides, so that neither storage nor the network blocks the other:
 *  - a thread of its own (storage calls may block; the loop must not, and
 *    the maintenance thread's heartbeats must not wait behind a slow
 *    outbox) claims deliveries with a lease, builds and signs each body, and
 *    later stores how each try ended, in batches;
 *  - the loop sends them through lib/net (libcurl's multi interface: no
 *    thread per request), at most `concurrency` at once, and hands each
 *    answer back.
 * A delivery is claimed before it is sent and its lease outlives the
 * request's timeout, so no two processes send the same delivery at once; a
 * process that dies mid-send leaves a lease that ends, and any process
 * sends it again: at least once, with the same webhook-id.
 *
 * Locks: wh->mu guards the lists and counters below; it may be taken with
 * q->mu held (jobq__wh_kick from the core), never the other way round. */
#include "core/internal.h"
#include "core/ext.h"
#include "core/webhook_int.h"
#include "net/addrpolicy.h"
#include "net/http.h"
#include "util/id.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How often the thread looks at the outbox when nothing told it to:
 * deliveries other processes added, or that fell due. */
#define POLL_MS 1000
/* A claim that news (a job's end here, slots come free) asks for waits
 * until this long after the previous one: at a hundred thousand job ends a
 * second, one claim then takes a few hundred deliveries rather than each
 * its own (every claim is a write transaction), for 2 ms more latency. */
#define GATHER_NS 2000000u
/* Jobs first. A delivery costs more CPU than a short job: an HTTP request,
 * its answer, two outbox writes. While the workers' claims bring short
 * jobs (claim.c stamps claim.backlog_at; short: claimed JOBQ_CLAIM_BATCH at
 * a time, their handlers averaging under 0.5 ms), claims of deliveries
 * wait, at most yield_ms in a row (jobq_options_set_webhook_yield), so that a burst of jobs (and of their
 * submits, which share the store's writer with deliveries) runs at full
 * speed and its deliveries follow it; a backlog that lasts
 * longer shares the CPU again, so no delivery waits long for it.
 * BACKLOG_NS: how long after the last full claim the backlog counts as
 * still there. Slow jobs (claims sized to idle workers) never defer. */
#define BACKLOG_NS 20000000u
#define YIELD_POLL_NS 5000000u

typedef struct wh_try {
  struct jobq__wh *wh;
  struct wh_try *next;         /* in to_send or done */
  struct wh_try *fprev, *fnext; /* in flying: claimed, not yet stored */
  jobq_storage_delivery d;
  const jobq__wh_endpoint *ep;
  char *kind;                  /* the job's, for the failure event */
  char *body;
  size_t body_len;
  char *hdr[5];
  const char *url;             /* d.url or the endpoint's */
  /* The answer (set on the loop). */
  int res_state;               /* JOBQ_DELIVERY_* */
  int status;
  char *error;
  int64_t retry_after_ms;      /* -1: none */
  int disable;
  int answered;
} wh_try;

struct jobq__wh {
  jobq_t *q;
  jobq__http *http;            /* made on the loop at the first send */
  uv_mutex_t mu;
  uv_cond_t cv;
  uv_thread_t thread;
  int thread_on;
  int stop;                    /* the thread is to stop */
  int gone;                    /* the thread has stopped: the loop frees answers itself */
  int kicked;
  wh_try *to_send;             /* thread -> loop */
  wh_try *done;                /* loop -> thread */
  wh_try *flying;
  int in_flight;               /* claimed and not yet stored */
  int64_t tries[4];            /* by outcome, JOBQ_DELIVERY_* */
  const char **names, **urls;  /* the endpoints, for claims */
};

static void try_free(wh_try *t) {
  jobq_storage_delivery_clear(&t->d);
  free(t->body);
  for (int i = 0; i < 5; i++) free(t->hdr[i]);
  free(t->error);
  free(t->kind);
  free(t);
}

static void fly_del(struct jobq__wh *wh, wh_try *t) {
  if (t->fprev) t->fprev->fnext = t->fnext;
  else wh->flying = t->fnext;
  if (t->fnext) t->fnext->fprev = t->fprev;
  t->fprev = t->fnext = NULL;
}

/* ---- the loop side ---- */

static void on_http_done(void *ud, const jobq__http_resp *resp);

static void hand_back(struct jobq__wh *wh, wh_try *t) {
  uv_mutex_lock(&wh->mu);
  if (wh->gone) {
    /* jobq_close already stored what it could: this answer is lost, and the
     * delivery's lease makes it go out again later. */
    uv_mutex_unlock(&wh->mu);
    try_free(t);
    return;
  }
  t->answered = 1;
  t->next = wh->done;
  wh->done = t;
  uv_cond_signal(&wh->cv);
  uv_mutex_unlock(&wh->mu);
}

static void start_one(struct jobq__wh *wh, wh_try *t) {
  jobq_t *q = wh->q;
  const char *secrets[2] = {t->ep->secret, NULL};
  jobq__http_opts o;
  memset(&o, 0, sizeof o);
  o.provider = "webhook";
  o.method = "POST";
  o.url = t->url;
  o.headers = (const char *const *)t->hdr;
  o.n_headers = 5;
  o.body = t->body;
  o.body_len = t->body_len;
  o.connect_timeout_ms = q->wh_cfg.connect_ms;
  o.timeout_ms = q->wh_cfg.total_ms;
  o.max_response = 1 << 20;
  o.keep_response = JOBQ_WH_KEEP_RESPONSE;
  o.max_tries = 1;          /* the outbox retries, durably, on its own schedule */
  o.secrets = secrets;
  o.n_secrets = 1;
  o.refuse_internal = 1;
  o.allow = q->wh_allow;
  int rc = wh->http ? jobq__http_start(wh->http, &o, on_http_done, t, NULL)
                    : jobq__err(JOBQ_ENOMEM, "webhook: cannot start an HTTP client");
  if (rc) {
    t->res_state = t->d.attempts >= q->wh_cfg.max_attempts ? JOBQ_DELIVERY_FAILED
                                                          : JOBQ_DELIVERY_PENDING;
    t->error = jobq__strdup(jobq_last_error());
    t->retry_after_ms = -1;
    hand_back(wh, t);
  }
}

void jobq__wh_on_loop(jobq_t *q) {
  struct jobq__wh *wh = q->wh;
  if (wh == NULL) return;
  uv_mutex_lock(&wh->mu);
  wh_try *list = wh->gone ? NULL : wh->to_send;
  if (list) wh->to_send = NULL;
  uv_mutex_unlock(&wh->mu);
  if (list == NULL) return;
  if (wh->http == NULL && jobq__http_new(q->loop_s.loop, &wh->http) == 0 &&
      jobq__http_checked_only(wh->http, q->wh_allow) != 0) {
    /* Out of memory: the client cannot keep connections safely; none. */
    jobq__http_close(wh->http, NULL, NULL);
    wh->http = NULL;
  }
  /* The list was built newest first: send in claim order. */
  wh_try *rev = NULL;
  while (list) {
    wh_try *n = list->next;
    list->next = rev;
    rev = list;
    list = n;
  }
  while (rev) {
    wh_try *n = rev->next;
    rev->next = NULL;
    start_one(wh, rev);
    rev = n;
  }
}

static void on_http_done(void *ud, const jobq__http_resp *resp) {
  wh_try *t = ud;
  struct jobq__wh *wh = t->wh;
  jobq_t *q = wh->q;
  t->status = (int)resp->status;
  t->retry_after_ms = -1;
  const char *why = resp->error;
  char msg[320];
  if (resp->status >= 200 && resp->status <= 299) {
    /* Delivered, even if its body was too long to read: the status said so. */
    t->res_state = JOBQ_DELIVERY_DELIVERED;
    why = NULL;
  } else if (resp->status == 410) {
    t->res_state = JOBQ_DELIVERY_FAILED;
    t->disable = 1;
    why = "webhook: HTTP 410 Gone: the receiver wants no more deliveries, so the URL is disabled "
          "(jobq_webhook_enable undoes it)";
  } else if (resp->refused) {
    t->res_state = JOBQ_DELIVERY_FAILED; /* the same name gives the same answer */
  } else if (resp->rc == JOBQ_ECANCELLED) {
    t->res_state = JOBQ_DELIVERY_PENDING;
    t->status = 0;
    why = "webhook: the sending process closed before the receiver answered";
  } else {
    if (resp->status >= 300 && resp->status <= 399) {
      snprintf(msg, sizeof msg,
               "webhook: HTTP %ld: redirects are not followed; give the URL the receiver "
               "redirects to",
               resp->status);
      why = msg;
    }
    if ((resp->status == 429 || resp->status == 503) && resp->retry_after_sent_ms >= 0)
      t->retry_after_ms = resp->retry_after_sent_ms;
    t->res_state = t->d.attempts >= q->wh_cfg.max_attempts ? JOBQ_DELIVERY_FAILED
                                                           : JOBQ_DELIVERY_PENDING;
  }
  if (why == NULL && t->res_state != JOBQ_DELIVERY_DELIVERED) {
    snprintf(msg, sizeof msg, "webhook: HTTP %ld", resp->status);
    why = msg;
  }
  if (why) t->error = jobq__strdup(why);
  hand_back(wh, t);
}

static void on_http_closed(void *ud) {
  struct jobq__wh *wh = ud;
  wh->http = NULL;
  jobq__ext_closed(wh->q);
}

/* The queue closes (storage is closed, the thread has stopped and put back
 * what was in flight): abort the requests (their answers are dropped in
 * hand_back) and close the client. */
static void close_on_loop(void *ud, jobq_t *q) {
  struct jobq__wh *wh = ud;
  uv_mutex_lock(&wh->mu);
  wh_try *list = wh->to_send; /* handed over, never started */
  wh->to_send = NULL;
  uv_mutex_unlock(&wh->mu);
  while (list) {
    wh_try *n = list->next;
    try_free(list);
    list = n;
  }
  if (wh->http) jobq__http_close(wh->http, on_http_closed, wh);
  else jobq__ext_closed(q);
}

static void ext_free(void *ud) {
  struct jobq__wh *wh = ud;
  if (wh->q->wh == wh) wh->q->wh = NULL;
  uv_mutex_destroy(&wh->mu);
  uv_cond_destroy(&wh->cv);
  free(wh->names);
  free(wh->urls);
  free(wh);
}

/* ---- the thread ---- */

int64_t jobq__wh_backoff_ms(int attempt, int64_t base_ms, int64_t max_delay_ms) {
  int64_t d = base_ms;
  for (int i = 1; i < attempt && d < max_delay_ms; i++) d = d > max_delay_ms / 4 ? max_delay_ms : d * 4;
  return d < max_delay_ms ? d : max_delay_ms;
}

static int64_t next_try_at(jobq_t *q, const wh_try *t, int64_t now) {
  int64_t d;
  if (t->retry_after_ms >= 0) {
    d = t->retry_after_ms;
  } else {
    d = jobq__wh_backoff_ms(t->d.attempts, q->wh_cfg.base_ms, q->wh_cfg.max_delay_ms);
    double r = q->o.random ? q->o.random(q->o.random_ud) : jobq__random_unit();
    d = (int64_t)((double)d * (0.8 + 0.4 * r));
  }
  if (d > q->wh_cfg.max_delay_ms) d = q->wh_cfg.max_delay_ms;
  return now + d;
}

static void report_failed(jobq_t *q, const jobq_storage_delivery *d, const char *kind,
                          const char *error) {
  char msg[JOBQ_ERROR_MAX];
  snprintf(msg, sizeof msg, "webhook delivery %s to endpoint '%s' failed for good after %d %s: %s",
           d->id, d->endpoint ? d->endpoint : "?", d->attempts, d->attempts == 1 ? "try" : "tries",
           error ? error : "unknown error");
  uv_mutex_lock(&q->mu);
  if (!q->closed || q->closed == 1)
    jobq__emit(q, JOBQ_EVENT_WEBHOOK_FAILED, d->job_id, kind, -1, 0, d->id, d->attempts, msg, NULL);
  jobq__log(q, JOBQ_LOG_WARN, "%s", msg);
  uv_mutex_unlock(&q->mu);
}

/* Stores how the answered tries ended, in one call. Returns the earliest
 * next try it stored (the queue's clock), INT64_MAX if none. */
static int64_t store_answers(struct jobq__wh *wh, wh_try *list) {
  jobq_t *q = wh->q;
  size_t n = 0;
  int64_t earliest = INT64_MAX;
  for (wh_try *t = list; t; t = t->next) n++;
  if (n == 0) return earliest;
  jobq_storage_outbox_result *r = calloc(n, sizeof *r);
  int *applied = calloc(n, sizeof *applied);
  int64_t now = jobq__now(q);
  size_t i = 0;
  for (wh_try *t = list; t && r; t = t->next, i++) {
    r[i].id = t->d.id;
    r[i].attempt = t->d.attempts;
    r[i].state = t->res_state;
    r[i].status = t->status;
    r[i].error = t->error;
    r[i].now = now;
    if (t->res_state == JOBQ_DELIVERY_PENDING) {
      r[i].next_at = next_try_at(q, t, now);
      if (r[i].next_at < earliest) earliest = r[i].next_at;
    }
    if (t->disable) r[i].disable_url = t->url;
  }
  int rc = r && applied ? q->ops->outbox_done(q->st, r, n, applied) : JOBQ_ENOMEM;
  if (rc == JOBQ_ENOMEM && (!r || !applied)) jobq__err(rc, "out of memory");
  uv_mutex_lock(&q->mu);
  jobq__health_note(q, JOBQ_OP_WEBHOOK, rc);
  uv_mutex_unlock(&q->mu);
  i = 0;
  for (wh_try *t = list; t; t = t->next, i++) {
    if (rc == 0 && applied[i]) {
      uv_mutex_lock(&wh->mu);
      wh->tries[t->res_state]++;
      uv_mutex_unlock(&wh->mu);
      if (t->res_state == JOBQ_DELIVERY_FAILED) {
        t->d.state = JOBQ_DELIVERY_FAILED;
        report_failed(q, &t->d, t->kind, t->error);
      }
    }
    /* Not stored (storage failed, or another process's claim took over
     * after our lease ended): the lease brings it back. */
  }
  free(r);
  free(applied);
  return earliest;
}

static void build_try(struct jobq__wh *wh, wh_try *t, const jobq_storage_job *job, int64_t now) {
  jobq_t *q = wh->q;
  t->body = jobq__wh_body(&t->d, job, now, &t->body_len);
  int64_t ts = now / 1000;
  char sig[2][JOBQ_WEBHOOK_SIGNATURE_SIZE];
  int nsig = 0;
  /* One signature per secret: both during a rotation. */
  const char *sp = strchr(t->ep->secret, ' ');
  for (int k = 0; k < (sp ? 2 : 1) && t->body; k++) {
    char one[512];
    const char *s = k == 0 ? t->ep->secret : sp + 1;
    size_t len = k == 0 && sp ? (size_t)(sp - t->ep->secret) : strlen(s);
    if (len >= sizeof one) continue;
    memcpy(one, s, len);
    one[len] = '\0';
    if (jobq_webhook_sign(one, t->d.id, ts, t->body, t->body_len, sig[nsig], sizeof sig[0]) == 0)
      nsig++;
    memset(one, 0, sizeof one);
  }
  size_t cap = strlen(t->d.id) + 32;
  t->hdr[0] = jobq__strdup("Content-Type: application/json");
  t->hdr[1] = malloc(cap);
  t->hdr[2] = malloc(48);
  t->hdr[3] = malloc(32 + 2 * JOBQ_WEBHOOK_SIGNATURE_SIZE);
  t->hdr[4] = malloc(48);
  if (t->hdr[1]) snprintf(t->hdr[1], cap, "webhook-id: %s", t->d.id);
  if (t->hdr[2]) snprintf(t->hdr[2], 48, "webhook-timestamp: %" PRId64, ts);
  if (t->hdr[3])
    snprintf(t->hdr[3], 32 + 2 * JOBQ_WEBHOOK_SIGNATURE_SIZE, "webhook-signature: %s%s%s",
             nsig > 0 ? sig[0] : "", nsig > 1 ? " " : "", nsig > 1 ? sig[1] : "");
  if (t->hdr[4]) snprintf(t->hdr[4], 48, "User-Agent: libjobq/%s", jobq_version_string());
  (void)q;
}

static const jobq__wh_endpoint *endpoint_of(jobq_t *q, const char *name) {
  for (int i = 0; i < q->wh_cfg.n; i++)
    if (name && strcmp(q->wh_cfg.v[i].name, name) == 0) return &q->wh_cfg.v[i];
  return NULL;
}

/* Claims what there is room for and hands it to the loop. Returns when
 * the outbox may have more for us: the earliest next_at it reported. */
static int64_t claim_some(struct jobq__wh *wh, size_t room) {
  jobq_t *q = wh->q;
  if (room > 256) room = 256; /* keep one claim's transaction short */
  int64_t now = jobq__now(q), next = INT64_MAX;
  jobq_storage_delivery *d = calloc(room, sizeof *d);
  jobq_storage_job *j = calloc(room, sizeof *j);
  size_t n = 0;
  if (d == NULL || j == NULL) {
    free(d);
    free(j);
    return now + POLL_MS;
  }
  jobq_storage_outbox_claim req;
  memset(&req, 0, sizeof req);
  req.endpoints = wh->names;
  req.urls = wh->urls;
  req.n_endpoints = (size_t)q->wh_cfg.n;
  req.max = room;
  req.now = now;
  /* Longer than any request may take, so that nobody else sends it while
   * ours may still arrive. */
  req.lease_ms = q->wh_cfg.total_ms * 2 + 30000;
  req.next_at = &next;
  jobq__set_detail("");
  int rc = q->ops->outbox_claim(q->st, &req, d, j, &n);
  if (rc && jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
  uv_mutex_lock(&q->mu);
  jobq__health_note(q, JOBQ_OP_WEBHOOK, rc);
  uv_mutex_unlock(&q->mu);
  if (rc) n = 0;
  wh_try *list = NULL;
  int sent = 0;
  for (size_t i = 0; i < n; i++) {
    if (d[i].state == JOBQ_DELIVERY_FAILED) {
      /* Failed at the claim (a disabled URL, a job gone): news only. */
      report_failed(q, &d[i], j[i].kind, d[i].last_error);
      uv_mutex_lock(&wh->mu);
      wh->tries[JOBQ_DELIVERY_FAILED]++;
      uv_mutex_unlock(&wh->mu);
      jobq_storage_delivery_clear(&d[i]);
      jobq_storage_job_clear(&j[i]);
      continue;
    }
    wh_try *t = calloc(1, sizeof *t);
    if (t == NULL) { /* its lease brings it back */
      jobq_storage_delivery_clear(&d[i]);
      jobq_storage_job_clear(&j[i]);
      continue;
    }
    t->wh = wh;
    t->d = d[i];
    t->ep = endpoint_of(q, t->d.endpoint);
    t->url = t->d.url ? t->d.url : (t->ep ? t->ep->url : NULL);
    if (t->ep == NULL || t->url == NULL) {
      /* The claim only takes our endpoints, so only a URL-less endpoint
       * named by a job without a URL of its own gets here. */
      t->res_state = JOBQ_DELIVERY_FAILED;
      t->error = jobq__strdup("webhook: the endpoint has no URL and the job gave none");
      t->next = NULL;
      uv_mutex_lock(&wh->mu);
      wh->in_flight++;
      uv_mutex_unlock(&wh->mu);
      store_answers(wh, t);
      uv_mutex_lock(&wh->mu);
      wh->in_flight--;
      uv_mutex_unlock(&wh->mu);
      try_free(t);
      jobq_storage_job_clear(&j[i]);
      continue;
    }
    build_try(wh, t, &j[i], now);
    t->kind = j[i].kind; /* taken */
    j[i].kind = NULL;
    jobq_storage_job_clear(&j[i]);
    if (t->body == NULL || !t->hdr[0] || !t->hdr[1] || !t->hdr[2] || !t->hdr[3] || !t->hdr[4]) {
      try_free(t); /* out of memory: the lease brings it back */
      continue;
    }
    t->next = list;
    list = t;
    sent++;
  }
  free(d);
  free(j);
  if (sent) {
    uv_mutex_lock(&wh->mu);
    for (wh_try *t = list; t; t = t->next) {
      t->fnext = wh->flying;
      if (wh->flying) wh->flying->fprev = t;
      wh->flying = t;
      wh->in_flight++;
    }
    /* to_send keeps newest first; the loop reverses it. */
    wh_try *last = list;
    while (last->next) last = last->next;
    last->next = wh->to_send;
    wh->to_send = list;
    uv_mutex_unlock(&wh->mu);
    uv_mutex_lock(&q->mu);
    jobq__kick_loop(q); /* the loop sends them (jobq__wh_on_loop) */
    uv_mutex_unlock(&q->mu);
  }
  if (rc) return now + POLL_MS; /* storage failed: health says so; try again later */
  if (n == room) return now;     /* there may be more */
  return next;
}

int jobq__wh_yield(uint64_t now_ns, uint64_t backlog_at, uint64_t yield_ns, uint64_t *since) {
  /* A worker may stamp after now_ns was read: a stamp ahead is fresh. */
  if (backlog_at == 0 || (now_ns > backlog_at && now_ns - backlog_at >= BACKLOG_NS)) {
    *since = 0; /* no backlog: the next one starts a new second */
    return 0;
  }
  if (*since == 0) *since = now_ns;
  return now_ns - *since < yield_ns;
}

static void thread_main(void *arg) {
  struct jobq__wh *wh = arg;
  jobq_t *q = wh->q;
  /* When to claim next, in real time (uv_hrtime): the queue's clock may be
   * a test's, which stands still, while polls must go on. */
  uint64_t next_claim = 0, last_claim = 0;
  int freed = 0; /* slots came free since the last claim */
  uint64_t yielding_since = 0; /* claims wait for the workers' short jobs */
  const uint64_t yield_ns = (uint64_t)q->wh_cfg.yield_ms * 1000000u;
  uv_mutex_lock(&wh->mu);
  for (;;) {
    if (wh->stop) break;
    uint64_t now_ns = uv_hrtime();
    int room = q->wh_cfg.concurrency - wh->in_flight;
    int news = wh->kicked || freed;
    uint64_t gathered = last_claim + GATHER_NS;
    int want_claim = room > 0 && ((news && now_ns >= gathered) || now_ns >= next_claim);
    uint64_t backlog = atomic_load_explicit(&q->claim.backlog_at, memory_order_relaxed);
    int yield = jobq__wh_yield(now_ns, backlog, yield_ns, &yielding_since) && want_claim;
    if (yield) want_claim = 0;
    if (wh->done == NULL && !want_claim) {
      uint64_t at = news && gathered < next_claim ? gathered : next_claim;
      if (yield && now_ns + YIELD_POLL_NS < at) at = now_ns + YIELD_POLL_NS;
      uint64_t wait = room > 0 && at > now_ns ? at - now_ns : (uint64_t)POLL_MS * 1000000u;
      if (wait > (uint64_t)POLL_MS * 1000000u) wait = (uint64_t)POLL_MS * 1000000u;
      uv_cond_timedwait(&wh->cv, &wh->mu, wait);
      continue;
    }
    wh_try *done = wh->done;
    wh->done = NULL;
    if (want_claim) {
      wh->kicked = 0;
      freed = 0;
    }
    for (wh_try *t = done; t; t = t->next) fly_del(wh, t);
    uv_mutex_unlock(&wh->mu);
    if (done) {
      int64_t qnow = jobq__now(q);
      int64_t retry_at = store_answers(wh, done);
      if (retry_at != INT64_MAX) {
        /* Wake for the earliest retry just stored. */
        int64_t d = retry_at <= qnow ? 0 : retry_at - qnow;
        uint64_t at = uv_hrtime() + (d > POLL_MS ? POLL_MS : (uint64_t)d) * 1000000u;
        if (at < next_claim) next_claim = at;
      }
      int k = 0;
      while (done) {
        wh_try *n = done->next;
        try_free(done);
        done = n;
        k++;
      }
      uv_mutex_lock(&wh->mu);
      int was_full = room <= 0;
      wh->in_flight -= k;
      room = q->wh_cfg.concurrency - wh->in_flight;
      uv_mutex_unlock(&wh->mu);
      /* Slots came free after we had no room: deliveries may be waiting
       * (claimed once the gathering time has passed). */
      if (room > 0 && was_full) freed = 1;
    }
    if (want_claim && room > 0) {
      last_claim = uv_hrtime();
      int64_t qnow = jobq__now(q);
      int64_t at = claim_some(wh, (size_t)room);
      int64_t d = at <= qnow ? 0 : at - qnow;
      if (d > POLL_MS) d = POLL_MS;
      next_claim = uv_hrtime() + (uint64_t)d * 1000000u;
    }
    uv_mutex_lock(&wh->mu);
  }
  uv_mutex_unlock(&wh->mu);
}

/* ---- the core's entry points ---- */

int jobq__wh_open(jobq_t *q) {
  if (q->wh_cfg.n == 0 || q->wh_cfg.concurrency == 0) return 0;
  struct jobq__wh *wh = calloc(1, sizeof *wh);
  if (wh == NULL) return jobq__err(JOBQ_ENOMEM, "jobq_open: out of memory");
  wh->q = q;
  wh->names = calloc((size_t)q->wh_cfg.n, sizeof *wh->names);
  wh->urls = calloc((size_t)q->wh_cfg.n, sizeof *wh->urls);
  int mu = 0, cv = 0;
  if (!wh->names || !wh->urls || !(mu = uv_mutex_init(&wh->mu) == 0) ||
      !(cv = uv_cond_init(&wh->cv) == 0)) {
    if (mu) uv_mutex_destroy(&wh->mu);
    free(wh->names);
    free(wh->urls);
    free(wh);
    return jobq__err(JOBQ_ENOMEM, "jobq_open: out of memory");
  }
  for (int i = 0; i < q->wh_cfg.n; i++) {
    wh->names[i] = q->wh_cfg.v[i].name;
    wh->urls[i] = q->wh_cfg.v[i].url;
  }
  jobq__ext e = {close_on_loop, ext_free, wh};
  if (jobq__ext_add(q, &e) != 0) {
    ext_free(wh);
    return jobq__err(JOBQ_ENOMEM, "jobq_open: out of memory");
  }
  q->wh = wh; /* freed with the queue's extensions from now on */
  if (uv_thread_create(&wh->thread, thread_main, wh) != 0)
    return jobq__err(JOBQ_ENOMEM, "jobq_open: cannot start the webhook thread");
  wh->thread_on = 1;
  return 0;
}

void jobq__wh_kick(jobq_t *q) {
  struct jobq__wh *wh = q->wh;
  if (wh == NULL) return;
  uv_mutex_lock(&wh->mu);
  if (!wh->kicked) {
    wh->kicked = 1;
    uv_cond_signal(&wh->cv);
  }
  uv_mutex_unlock(&wh->mu);
}

void jobq__wh_stop(jobq_t *q, uint64_t deadline_ns) {
  struct jobq__wh *wh = q->wh;
  if (wh == NULL || !wh->thread_on) return;
  uv_mutex_lock(&wh->mu);
  wh->stop = 1;
  uv_cond_signal(&wh->cv);
  uv_mutex_unlock(&wh->mu);
  uv_thread_join(&wh->thread);
  wh->thread_on = 0;
  /* Give the tries in flight until the deadline to answer, storing the
   * answers as they come. */
  uv_mutex_lock(&wh->mu);
  for (;;) {
    wh_try *done = wh->done;
    wh->done = NULL;
    for (wh_try *t = done; t; t = t->next) fly_del(wh, t);
    if (done) {
      uv_mutex_unlock(&wh->mu);
      store_answers(wh, done);
      int k = 0;
      while (done) {
        wh_try *n = done->next;
        try_free(done);
        done = n;
        k++;
      }
      uv_mutex_lock(&wh->mu);
      wh->in_flight -= k;
      continue;
    }
    uint64_t now = uv_hrtime();
    if (wh->flying == NULL || now >= deadline_ns) break;
    uv_cond_timedwait(&wh->cv, &wh->mu, deadline_ns - now);
  }
  /* The rest go back to the outbox at once, counted as a try: the receiver
   * may have had it (at least once). From now on answers are dropped. */
  wh->gone = 1;
  size_t n = 0;
  for (wh_try *t = wh->flying; t; t = t->fnext) n++;
  jobq_storage_outbox_result *r = n ? calloc(n, sizeof *r) : NULL;
  int64_t now = jobq__now(q);
  size_t i = 0;
  for (wh_try *t = wh->flying; t && r; t = t->fnext) {
    /* A copy: the loop may free the try once we let go of the lock. */
    if ((r[i].id = jobq__strdup(t->d.id)) == NULL) continue; /* its lease brings it back */
    r[i].attempt = t->d.attempts;
    r[i].state = JOBQ_DELIVERY_PENDING;
    r[i].error = "webhook: the sending process closed before the receiver answered";
    r[i].next_at = now;
    r[i].now = now;
    i++;
  }
  n = i;
  /* Their ids stay valid: the tries are freed by the loop (abort) or by
   * close_on_loop (never started), both after this. */
  uv_mutex_unlock(&wh->mu);
  if (r && n) q->ops->outbox_done(q->st, r, n, NULL);
  for (i = 0; r && i < n; i++) free((char *)r[i].id);
  free(r);
}

void jobq__wh_tries(jobq_t *q, int64_t out[4]) {
  memset(out, 0, 4 * sizeof *out);
  struct jobq__wh *wh = q->wh;
  if (wh == NULL) return;
  uv_mutex_lock(&wh->mu);
  memcpy(out, wh->tries, 4 * sizeof *out);
  uv_mutex_unlock(&wh->mu);
}
