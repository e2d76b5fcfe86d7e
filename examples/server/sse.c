/* jobq-server's Server-Sent Events: GET /v1/jobs/:id/events (one job, from
 * its snapshot to its terminal event) and GET /v1/events (every event the
 * caller may see). The protocol is in docs/server.md.
 *
 * H2O streams a response through a generator: h2o_send hands it bytes, and
 * the generator's proceed callback says they are written; until then no
 * other h2o_send may start and the bytes must stay. So each stream queues
 * the frames that come meanwhile (shared, reference-counted: one event sent
 * to 10,000 streams is one frame) and sends them together at proceed. Its
 * stop callback says the client went away. A stream keeps ~100 bytes of
 * its own, so that many thousands stay cheap. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A client that reads nothing while this many frames wait is dropped
 * (more than the ring: a replay fits). It may reconnect and resume. */
#define MAX_PENDING 8192
/* Frames per h2o_send. */
#define SEND_BATCH 256

struct srv_sse {
  srv_waiter w; /* a job stream in the map; /v1/events: in st->global by next/prev */
  h2o_generator_t gen;
  srv_call *c;
  srv_frame **q, **fl; /* queued; in flight (written until proceed) */
  uint32_t qn, qcap, fln, flcap;
  int64_t last_rank; /* a job stream: the newest change the client has */
  uint8_t global, sending, ending;
};

static srv_frame *ping_frame, *ok_frame; /* static frames (refs 0) */

srv_sse *srv_sse_of(srv_waiter *w) { return (srv_sse *)w; }
srv_sse *srv_sse_next_global(srv_sse *x) { return (srv_sse *)x->w.next; }

static srv_frame *static_frame(const char *text) {
  size_t n = strlen(text);
  srv_frame *f = malloc(sizeof *f + n + 1);
  if (f == NULL) return NULL;
  memcpy(f->data, text, n + 1);
  f->refs = 0;
  f->len = (uint32_t)n;
  return f;
}

int srv_sse_may_see(const srv_sse *x, int has_job, const char *owner) {
  if (x->c->admin) return 1;
  return has_job && owner && x->c->owner && strcmp(owner, x->c->owner) == 0;
}

/* ---- the stream's life ---- */

static void unlink_sse(srv_sse *x) {
  struct srv_stream *st = x->c->s->streams;
  srv_unwatch_client(st, &x->w);
  if (x->global) {
    /* The waiter is the stream's first member: a stream's address is its
     * waiter's (NULL for none). */
    srv_waiter *prev = x->w.prev, *next = x->w.next;
    if (prev) prev->next = next;
    else st->global = (srv_sse *)next;
    if (next) next->prev = prev;
  } else {
    srv_map_del(st, &x->w);
  }
  st->n_sse--;
}

static void free_sse(srv_sse *x) {
  for (uint32_t i = 0; i < x->qn; i++) srv_frame_unref(x->q[i]);
  for (uint32_t i = 0; i < x->fln; i++) srv_frame_unref(x->fl[i]);
  free(x->q);
  free(x->fl);
  free(x);
}

/* The end, once nothing is queued or in flight: the last chunk, the log
 * line. H2O frees the request (and then the call) when it is written. */
static void sse_finish(srv_sse *x) {
  srv_call *c = x->c;
  h2o_req_t *req = c->req;
  unlink_sse(x);
  free_sse(x);
  srv_stream_done(c);
  if (c->s->draining) req->http1_is_persistent = 0; /* SIGTERM: close the connection too */
  srv_release(c); /* c->req is set: the call stays until H2O frees the request */
  h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

static void flush(srv_sse *x) {
  if (x->sending || x->qn == 0) return;
  uint32_t n = x->qn < SEND_BATCH ? x->qn : SEND_BATCH;
  if (x->flcap < n) {
    srv_frame **fl = realloc(x->fl, SEND_BATCH * sizeof *fl);
    if (fl == NULL) return; /* sent at the next push or ping */
    x->fl = fl;
    x->flcap = SEND_BATCH;
  }
  memcpy(x->fl, x->q, n * sizeof *x->q);
  x->fln = n;
  memmove(x->q, x->q + n, (x->qn - n) * sizeof *x->q);
  x->qn -= n;
  h2o_iovec_t v[SEND_BATCH];
  for (uint32_t i = 0; i < n; i++) {
    v[i] = h2o_iovec_init(x->fl[i]->data, x->fl[i]->len);
    x->c->bytes += x->fl[i]->len;
  }
  x->sending = 1;
  h2o_send(x->c->req, v, n, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req) {
  (void)req;
  srv_sse *x = H2O_STRUCT_FROM_MEMBER(srv_sse, gen, g);
  for (uint32_t i = 0; i < x->fln; i++) srv_frame_unref(x->fl[i]);
  x->fln = 0;
  x->sending = 0;
  if (x->qn == 0 && x->qcap > 16) { /* a burst is over: give its room back */
    free(x->q);
    x->q = NULL;
    x->qcap = 0;
  }
  if (x->qn) flush(x);
  else if (x->ending) sse_finish(x);
}

/* The client went away (or H2O closes the connection). */
static void on_stop(h2o_generator_t *g, h2o_req_t *req) {
  (void)req;
  srv_sse *x = H2O_STRUCT_FROM_MEMBER(srv_sse, gen, g);
  srv_call *c = x->c;
  unlink_sse(x);
  free_sse(x);
  srv_stream_done(c);
  srv_release(c);
}

void srv_sse_gone(srv_sse *x) {
  if (x->sending) { /* the write fails (stop) or completes (then the end) */
    x->ending = 1;
    return;
  }
  srv_call *c = x->c;
  h2o_req_t *req = c->req;
  unlink_sse(x);
  free_sse(x);
  srv_stream_done(c);
  srv_release(c);
  /* An error, not the last chunk: H2O closes the connection after it. */
  h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
}

void srv_sse_end(srv_sse *x) {
  if (x->ending) return;
  x->ending = 1;
  if (x->sending) return; /* on_proceed finishes */
  if (x->qn) flush(x);
  else sse_finish(x);
}

/* Queues f and sends it if nothing is in flight: 0, or -1 when the stream
 * ended instead (x may be gone). */
static int push(srv_sse *x, srv_frame *f) {
  if (x->ending) return -1;
  if (x->qn >= MAX_PENDING) {
    srv_sse_end(x); /* it reads nothing: dropped; it may resume */
    return -1;
  }
  if (x->qn == x->qcap) {
    uint32_t cap = x->qcap ? x->qcap * 2 : 4;
    srv_frame **q = realloc(x->q, cap * sizeof *q);
    if (q == NULL) {
      srv_sse_end(x);
      return -1;
    }
    x->q = q;
    x->qcap = cap;
  }
  if (f->refs) f->refs++;
  x->q[x->qn++] = f;
  flush(x);
  return 0;
}

int srv_sse_push(srv_sse *x, srv_frame *f) { return push(x, f); }

void srv_sse_job_event(srv_sse *x, srv_frame *f, int64_t rank, int terminal, int restart) {
  if (x->ending) return;
  if (restart && srv_rank_restarts(rank, x->last_rank)) {
    x->last_rank = rank; /* a new run: what follows ranks from here */
  } else {
    if (!terminal && rank < x->last_rank) return; /* older than what it has */
    if (rank > x->last_rank) x->last_rank = rank;
  }
  if (push(x, f) == 0 && terminal) srv_sse_end(x);
}

static void ping(srv_sse *x) {
  if (!x->sending && !x->ending && x->qn == 0 && ping_frame) (void)push(x, ping_frame);
}

void srv_sse_ping_all(struct srv_stream *st) {
  for (size_t i = 0; i < st->nb; i++)
    for (srv_waiter *w = st->buckets[i], *next; w; w = next) {
      next = w->next;
      if (w->type == SRV_W_JOB_SSE) ping(srv_sse_of(w));
    }
  for (srv_sse *x = st->global, *next; x; x = next) {
    next = srv_sse_next_global(x);
    ping(x);
  }
}

/* ---- starting a stream ---- */

static void sse_headers(srv_call *c) {
  h2o_req_t *req = c->req;
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                 H2O_STRLIT("no-cache"));
  h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                        H2O_STRLIT("no"));
}

/* Starts the streamed answer: job_id's stream, or /v1/events (NULL). */
static srv_sse *sse_open(srv_call *c, const char *job_id) {
  struct srv_stream *st = c->s->streams;
  if (ping_frame == NULL) ping_frame = static_frame(": ping\n\n");
  if (ok_frame == NULL) ok_frame = static_frame(": ok\n\n");
  srv_sse *x = calloc(1, sizeof *x);
  if (x == NULL || ping_frame == NULL || ok_frame == NULL) {
    free(x);
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return NULL;
  }
  x->c = c;
  x->gen.proceed = on_proceed;
  x->gen.stop = on_stop;
  if (job_id) {
    x->w.type = SRV_W_JOB_SSE;
    srv_map_add(st, &x->w, job_id);
  } else {
    x->global = 1;
    x->w.type = SRV_W_SSE;
    x->w.next = (srv_waiter *)st->global;
    if (st->global) st->global->w.prev = &x->w;
    st->global = x;
  }
  st->n_sse++;
  srv_hold(c);
  c->status = 200;
  h2o_req_t *req = c->req;
  req->res.status = 200;
  req->res.reason = "OK";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                 H2O_STRLIT("text/event-stream"));
  sse_headers(c);
  srv_add_cors(c);
  h2o_start_response(req, &x->gen);
  srv_watch_client(st, &x->w, req);
  return x;
}

static int stream_ready(srv_call *c) {
  struct srv_stream *st = c->s->streams;
  if (st && !st->stopped) return 1;
  srv_reply_error(c, 503, "shutting_down", "the server is shutting down");
  return 0;
}

/* ---- GET /v1/jobs/:id/events ---- */

/* A finished job's terminal event, from the stored job: the event's JSON,
 * its type's name into *name. */
static char *terminal_json(const jobq_job_t *job, const char **name) {
  int st = jobq_job_state(job);
  int type = st == JOBQ_SUCCEEDED ? JOBQ_EVENT_SUCCEEDED
             : st == JOBQ_FAILED  ? JOBQ_EVENT_FAILED
                                  : JOBQ_EVENT_CANCELLED;
  *name = jobq_event_type_name(type);
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "type", *name,
                        "jobId", jobq_job_id(job), "kind", jobq_job_kind(job), "state",
                        jobq_state_name(st), "progress", jobq_job_progress(job), "attempt",
                        jobq_job_attempts(job));
  if (o == NULL) return NULL;
  const char *step = jobq_job_step(job), *err = jobq_job_error(job), *res = jobq_job_result(job);
  if (step && *step) json_object_set_new(o, "step", json_string(step));
  if (err && *err) json_object_set_new(o, "error", json_string(err));
  if (res && *res) {
    json_t *r = json_loads(res, JSON_DECODE_ANY, NULL);
    if (r) json_object_set_new(o, "result", r);
  }
  json_object_set_new(o, "time", json_integer(jobq_job_finished_at(job)));
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return text;
}

static srv_frame *snapshot_frame(const jobq_job_t *job, const char *rid) {
  json_t *j = srv_job_json(job);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  srv_frame *f = text ? srv_frame_event(rid, "snapshot", text) : NULL;
  free(text);
  return f;
}

static void get_job_events(srv_call *c) {
  if (!stream_ready(c)) return;
  char id[JOBQ_ID_SIZE + 1];
  jobq_job_t *job = NULL;
  int rc = srv_param(c, 0, id, sizeof id) != 0 ? JOBQ_ENOTFOUND : jobq_get(c->s->q, id, &job);
  if (rc == JOBQ_EINVAL || rc == JOBQ_ENOTFOUND || (rc == 0 && !srv_may_see(c, job))) {
    jobq_job_free(job);
    srv_reply_error(c, 404, "JOBQ_ENOTFOUND", "no job with that id");
    return;
  }
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  int64_t R = srv_rank_of_job(job), L = -1;
  int term = jobq_state_is_terminal(jobq_job_state(job));
  h2o_iovec_t lei = srv_header(c, "last-event-id");
  if (lei.len && srv_rank_parse(lei.base, lei.len, &L) != 0) L = -1;
  if (term && L >= R) {
    /* It has seen the end: 204 tells an EventSource not to reconnect. */
    jobq_job_free(job);
    srv_reply_raw(c, 204, NULL, "", 0);
    return;
  }
  char rid[32];
  srv_rank_text(R, rid);
  /* What the client lacks: the job as it is now (all of it if no id). */
  srv_frame *snap = L < R ? snapshot_frame(job, rid) : NULL, *done = NULL;
  if (term) {
    const char *name;
    char *t = terminal_json(job, &name);
    done = t ? srv_frame_event(rid, name, t) : NULL;
    free(t);
  }
  if ((L < R && snap == NULL) || (term && done == NULL)) {
    srv_frame_unref(snap);
    srv_frame_unref(done);
    jobq_job_free(job);
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  if (term) { /* finished: the whole answer at once */
    size_t n = (snap ? snap->len : 0) + done->len;
    char *buf = malloc(n);
    if (buf) {
      if (snap) memcpy(buf, snap->data, snap->len);
      memcpy(buf + (snap ? snap->len : 0), done->data, done->len);
      sse_headers(c);
      srv_reply_raw(c, 200, "text/event-stream", buf, n);
    } else {
      srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    }
    free(buf);
    srv_frame_unref(snap);
    srv_frame_unref(done);
    jobq_job_free(job);
    return;
  }
  srv_sse *x = sse_open(c, jobq_job_id(job));
  jobq_job_free(job);
  if (x == NULL) {
    srv_frame_unref(snap);
    return;
  }
  x->last_rank = L > R ? L : R;
  (void)push(x, snap ? snap : ok_frame);
  srv_frame_unref(snap);
}

void srv_sse_catch_up(srv_sse *x, const jobq_job_t *job) {
  int64_t R = srv_rank_of_job(job);
  int term = jobq_state_is_terminal(jobq_job_state(job));
  if (x->ending || R <= x->last_rank) return;
  char rid[32];
  srv_rank_text(R, rid);
  x->last_rank = R;
  srv_frame *snap = snapshot_frame(job, rid), *done = NULL;
  if (term) {
    const char *name;
    char *t = terminal_json(job, &name);
    done = t ? srv_frame_event(rid, name, t) : NULL;
    free(t);
  }
  int rc = snap ? push(x, snap) : 0;
  if (rc == 0 && done) rc = push(x, done);
  if (rc == 0 && term) srv_sse_end(x);
  srv_frame_unref(snap);
  srv_frame_unref(done);
}

/* ---- GET /v1/events ---- */

static void get_events(srv_call *c) {
  if (!stream_ready(c)) return;
  struct srv_stream *st = c->s->streams;
  h2o_iovec_t lei = srv_header(c, "last-event-id");
  srv_sse *x = sse_open(c, NULL);
  if (x == NULL) return;
  if (lei.len) {
    char buf[64];
    long long start = 0;
    unsigned long long seq = 0;
    int n = 0, ok = 0;
    if (lei.len < sizeof buf) {
      memcpy(buf, lei.base, lei.len);
      buf[lei.len] = '\0';
      if (sscanf(buf, "%lld-%llu%n", &start, &seq, &n) == 2 && (size_t)n == lei.len &&
          start == st->start_ms)
        ok = srv_ring_replay(st, x, seq);
      if (ok < 0) return; /* the stream ended during the replay (out of memory) */
    }
    if (!ok) {
      /* Not resumable (another server's id, or older than the ring): the
       * client re-reads what it needs, then follows from here. */
      char gid[48];
      snprintf(gid, sizeof gid, "%lld-%llu", (long long)st->start_ms,
               (unsigned long long)st->newest);
      srv_frame *f = srv_frame_event(
          gid, "reset",
          "{\"type\":\"reset\",\"reason\":\"events after that id are not held any more\"}");
      if (f && push(x, f) != 0) x = NULL;
      srv_frame_unref(f);
    }
  }
  if (x && !x->sending && x->qn == 0) (void)push(x, ok_frame);
}

const srv_route srv_routes_stream[] = {
    {"GET", "/v1/jobs/:id/events", SRV_AUTH_KEY, get_job_events},
    {"GET", "/v1/events", SRV_AUTH_KEY, get_events},
    {NULL, NULL, 0, NULL},
};
