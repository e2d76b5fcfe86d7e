/* jobq-server's fan-out of the queue's events: one jobq_subscribe callback
 * on the loop hands each event to the long polls and job streams waiting
 * on its job (a hash map job id -> waiters) and to the /v1/events streams
 * (filtered by owner), and keeps the recent events in a ring for
 * /v1/events resumption. Also the long polls of GET /v1/jobs/:id?wait=N.
 * The SSE side (H2O streaming, the endpoints) is sse.c. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct srv_stream *g_streams; /* H2O's read callback has no room for a pointer */

/* A ring that holds big results is cut to this many bytes (oldest first). */
#define RING_MAX_BYTES ((size_t)32 << 20)

/* ---- frames ---- */

srv_frame *srv_frame_event(const char *id, const char *name, const char *data) {
  size_t n = (id ? strlen(id) + 5 : 0) + strlen(name) + 8 + strlen(data) + 8;
  srv_frame *f = malloc(sizeof *f + n + 1);
  if (f == NULL) return NULL;
  int len = id ? snprintf(f->data, n + 1, "id: %s\nevent: %s\ndata: %s\n\n", id, name, data)
               : snprintf(f->data, n + 1, "event: %s\ndata: %s\n\n", name, data);
  f->refs = 1;
  f->len = (uint32_t)len;
  return f;
}

void srv_frame_unref(srv_frame *f) {
  if (f && f->refs && --f->refs == 0) free(f);
}

/* ---- ranks ---- */

int64_t srv_rank(int state, int attempt, int progress) {
  if (attempt < 0) attempt = 0;
  if (progress < 0) progress = 0;
  if (progress > 100) progress = 100;
  int stage;
  if (jobq_state_is_terminal(state)) stage = SRV_STAGE_DONE;
  else if (state == JOBQ_RUNNING) stage = 1 + progress;
  else stage = attempt == 0 ? 0 : SRV_STAGE_RETRY;
  return (int64_t)attempt * 128 + stage;
}

int srv_rank_restarts(int64_t rank, int64_t last) {
  /* the same attempt again (or a later one), and not the very change the
   * client has: an old attempt's start heard late stays stale */
  return rank != last && rank / 128 >= last / 128;
}

int64_t srv_rank_of_job(const jobq_job_t *job) {
  return srv_rank(jobq_job_state(job), jobq_job_attempts(job), jobq_job_progress(job));
}

void srv_rank_text(int64_t rank, char buf[32]) {
  snprintf(buf, 32, "%lld.%d", (long long)(rank / 128), (int)(rank % 128));
}

int srv_rank_parse(const char *text, size_t len, int64_t *out) {
  char buf[32];
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, text, len);
  buf[len] = '\0';
  long long a;
  int st, n = 0;
  if (sscanf(buf, "%lld.%d%n", &a, &st, &n) != 2 || (size_t)n != len || a < 0 ||
      a > (1LL << 40) || st < 0 || st > SRV_STAGE_DONE || buf[0] == '+' || buf[0] == '-')
    return -1;
  *out = a * 128 + st;
  return 0;
}

/* ---- the map: job id -> waiters ---- */

uint32_t srv_hash_id(const char *id) {
  uint32_t h = 2166136261u;
  for (; *id; id++) h = (h ^ (unsigned char)*id) * 16777619u;
  return h;
}

static void map_grow(struct srv_stream *st) {
  size_t nb = st->nb ? st->nb * 2 : 1024;
  srv_waiter **b = calloc(nb, sizeof *b);
  if (b == NULL) return; /* keep the longer chains */
  for (size_t i = 0; i < st->nb; i++) {
    srv_waiter *w = st->buckets[i], *next;
    for (; w; w = next) {
      next = w->next;
      srv_waiter **head = &b[w->hash & (nb - 1)];
      w->prev = NULL;
      w->next = *head;
      if (*head) (*head)->prev = w;
      *head = w;
    }
  }
  free(st->buckets);
  st->buckets = b;
  st->nb = nb;
}

void srv_map_add(struct srv_stream *st, srv_waiter *w, const char *id) {
  if (st->nw >= st->nb * 2) map_grow(st);
  snprintf(w->id, sizeof w->id, "%s", id);
  w->hash = srv_hash_id(w->id);
  srv_waiter **head = &st->buckets[w->hash & (st->nb - 1)];
  w->prev = NULL;
  w->next = *head;
  if (*head) (*head)->prev = w;
  *head = w;
  st->nw++;
}

void srv_map_del(struct srv_stream *st, srv_waiter *w) {
  if (w->prev) w->prev->next = w->next;
  else st->buckets[w->hash & (st->nb - 1)] = w->next;
  if (w->next) w->next->prev = w->prev;
  w->next = w->prev = NULL;
  st->nw--;
}

/* ---- watching for the client's close ---- */

static size_t sock_slot(const struct srv_stream *st, const h2o_socket_t *sock) {
  uintptr_t v = (uintptr_t)sock;
  return (size_t)((v >> 4) ^ (v >> 13)) & (st->nsb - 1);
}

static void on_client_read(h2o_socket_t *sock, const char *err) {
  h2o_socket_read_stop(sock);
  struct srv_stream *st = g_streams;
  if (st == NULL || st->nsb == 0) return;
  srv_waiter *w = st->socks[sock_slot(st, sock)];
  while (w && w->sock != sock) w = w->snext;
  if (w == NULL) return; /* its answer is written: H2O reads the socket again soon */
  if (err == NULL) { /* the client sent something: it stays for H2O */
    srv_unwatch_client(st, w);
    return;
  }
  if (w->type == SRV_W_POLL) srv_poll_answer(w, NULL); /* to no one: H2O then closes */
  else srv_sse_gone(srv_sse_of(w));
}

void srv_watch_client(struct srv_stream *st, srv_waiter *w, h2o_req_t *req) {
  if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL) return;
  h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
  if (sock == NULL) return;
  /* The request's method, path and headers point into the socket's input
   * buffer, and a read first reserves 4096 free bytes there: a buffer with
   * less would move. One read at most (on_client_read stops), so with that
   * much room the request stays where it is. */
  h2o_buffer_t *in = sock->input;
  if (in->bytes == NULL ||
      in->capacity - in->size - (size_t)(in->bytes - in->_buf) < 4096)
    return;
  if (st->nsw >= st->nsb) {
    size_t nb = st->nsb ? st->nsb * 2 : 1024;
    srv_waiter **b = calloc(nb, sizeof *b);
    if (b == NULL) return; /* unwatched: noticed at the next write */
    size_t old = st->nsb;
    srv_waiter **ob = st->socks;
    st->socks = b;
    st->nsb = nb;
    for (size_t i = 0; i < old; i++)
      for (srv_waiter *x = ob[i], *next; x; x = next) {
        next = x->snext;
        x->snext = b[sock_slot(st, x->sock)];
        b[sock_slot(st, x->sock)] = x;
      }
    free(ob);
  }
  w->sock = sock;
  size_t i = sock_slot(st, sock);
  w->snext = st->socks[i];
  st->socks[i] = w;
  st->nsw++;
  h2o_socket_read_start(sock, on_client_read);
}

void srv_unwatch_client(struct srv_stream *st, srv_waiter *w) {
  if (w->sock == NULL) return;
  srv_waiter **p = &st->socks[sock_slot(st, w->sock)];
  while (*p && *p != w) p = &(*p)->snext;
  if (*p) *p = w->snext;
  w->sock = NULL;
  w->snext = NULL;
  st->nsw--;
}

/* ---- owners ---- */

/* The owner of job id (NULL if none, or the job is gone): from the cache,
 * else read once. Only /v1/events of owner keys need it. */
static const char *owner_of(struct srv_stream *st, const char *id) {
  srv_owner_ent *e = &st->owners[srv_hash_id(id) % SRV_OWNER_CACHE];
  if (e->used && strcmp(e->id, id) == 0) return e->owner;
  jobq_job_t *job = NULL;
  if (jobq_get(st->s->q, id, &job) != 0) return NULL; /* not cached: it may appear */
  free(e->owner);
  const char *o = jobq_job_owner(job);
  e->owner = o ? strdup(o) : NULL;
  snprintf(e->id, sizeof e->id, "%s", id);
  e->used = 1;
  jobq_job_free(job);
  return e->owner;
}

/* ---- the ring ---- */

static void ring_drop_oldest(struct srv_stream *st) {
  srv_ring_ent *e = &st->ring[(st->newest - st->count + 1) % SRV_RING];
  st->ring_bytes -= e->f->len;
  srv_frame_unref(e->f);
  free(e->owner);
  memset(e, 0, sizeof *e);
  st->count--;
}

static void ring_add(struct srv_stream *st, uint64_t seq, srv_frame *f, int has_job,
                     const char *owner) {
  if (st->count == SRV_RING) ring_drop_oldest(st);
  srv_ring_ent *e = &st->ring[seq % SRV_RING];
  e->seq = seq;
  e->f = f;
  f->refs++;
  e->has_job = (uint8_t)has_job;
  e->owner = owner ? strdup(owner) : NULL;
  st->newest = seq;
  st->count++;
  st->ring_bytes += f->len;
  while (st->count > 1 && st->ring_bytes > RING_MAX_BYTES) ring_drop_oldest(st);
}

/* Replays to x the events after seq `after`: 1, or 0 if the ring no longer
 * (or never) held them. */
int srv_ring_replay(struct srv_stream *st, srv_sse *x, uint64_t after) {
  uint64_t oldest = st->newest - st->count + 1;
  if (after > st->newest || after + 1 < oldest) return 0;
  for (uint64_t q = after + 1; q <= st->newest; q++) {
    srv_ring_ent *e = &st->ring[q % SRV_RING];
    if (srv_sse_may_see(x, e->has_job, e->owner) && srv_sse_push(x, e->f) != 0) return -1;
  }
  return 1;
}

/* ---- the subscriber ---- */

static int is_job_change(int type) {
  return type >= JOBQ_EVENT_SUBMITTED && type <= JOBQ_EVENT_CANCELLED;
}

/* The event to the waiters of its job. A job stream's id is the job's rank
 * after the event; a terminal event takes the stored job's (the event's
 * attempt may be 0 for a cancel), so that it ranks above all before it. */
static void to_job_waiters(struct srv_stream *st, const jobq_event_t *ev, const char *id,
                           const char *name, const char *json) {
  if (st->nb == 0) return;
  uint32_t h = srv_hash_id(id);
  srv_waiter *w = st->buckets[h & (st->nb - 1)], *next;
  int terminal = jobq_state_is_terminal(jobq_event_state(ev));
  int64_t rank = srv_rank(jobq_event_state(ev), jobq_event_attempt(ev), jobq_event_progress(ev));
  /* A new run of the job: after a release (jobq_close) or a deferral the
   * attempt is not counted, so the run's ranks start below the last run's
   * and would be taken for stale ones. */
  int type = jobq_event_type(ev);
  int restart = type == JOBQ_EVENT_STARTED || type == JOBQ_EVENT_RETRYING;
  srv_frame *f = NULL;
  srv_poll_body body = {0, 0, NULL};
  int ranked = !terminal;
  for (; w; w = next) {
    next = w->next;
    if (w->hash != h || strcmp(w->id, id) != 0) continue;
    if (w->type == SRV_W_POLL) {
      srv_poll_event(w, rank, terminal, restart, &body);
      continue;
    }
    if (!ranked) {
      jobq_job_t *job = NULL;
      if (jobq_get(st->s->q, id, &job) == 0 && srv_rank_of_job(job) > rank)
        rank = srv_rank_of_job(job);
      jobq_job_free(job);
      ranked = 1;
    }
    if (f == NULL) {
      char rid[32];
      srv_rank_text(rank, rid);
      if ((f = srv_frame_event(rid, name, json)) == NULL) continue; /* out of memory */
    }
    srv_sse_job_event(srv_sse_of(w), f, rank, terminal, restart);
  }
  srv_frame_unref(f);
  srv_poll_body_free(&body);
}

static void on_event(const jobq_event_t *ev, void *ud) {
  struct srv_stream *st = ud;
  int type = jobq_event_type(ev);
  const char *name = jobq_event_type_name(type);
  if (name == NULL || st->stopped) return; /* a type this server does not know */
  char *json = jobq_event_to_json(ev);
  if (json == NULL) return;
  const char *id = jobq_event_job_id(ev);
  int has_job = id && *id;
  if (has_job && is_job_change(type)) to_job_waiters(st, ev, id, name, json);

  uint64_t seq = st->newest + 1;
  char gid[48];
  snprintf(gid, sizeof gid, "%lld-%llu", (long long)st->start_ms, (unsigned long long)seq);
  srv_frame *f = srv_frame_event(gid, name, json);
  jobq_free(json);
  if (f == NULL) return;
  const char *owner = has_job && st->need_owner ? owner_of(st, id) : NULL;
  ring_add(st, seq, f, has_job, owner);
  for (srv_sse *x = st->global, *next; x; x = next) {
    next = srv_sse_next_global(x);
    if (srv_sse_may_see(x, has_job, owner)) (void)srv_sse_push(x, f);
  }
  srv_frame_unref(f);
}

static void on_ping(uv_timer_t *t) { srv_sse_ping_all(t->data); }

/* Another process that writes looks for new listeners at most once a
 * second (docs/architecture.md), so in this server's first second its
 * changes may go unheard: a stream or long poll opened then (after a
 * restart, the clients reconnecting) could wait for a change that came.
 * Once that second is over, every waiter reads its job again. */
static void on_catch_up(uv_timer_t *t) {
  struct srv_stream *st = t->data;
  uv_close((uv_handle_t *)t, NULL);
  if (st->stopped) return;
  for (size_t i = 0; i < st->nb; i++)
    for (srv_waiter *w = st->buckets[i], *next; w; w = next) {
      next = w->next;
      jobq_job_t *job = NULL;
      if (jobq_get(st->s->q, w->id, &job) != 0) continue;
      int64_t rank = srv_rank_of_job(job);
      int terminal = jobq_state_is_terminal(jobq_job_state(job));
      if (w->type == SRV_W_POLL) srv_poll_event(w, rank, terminal, 0, NULL);
      else srv_sse_catch_up(srv_sse_of(w), job);
      jobq_job_free(job);
    }
}

int srv_stream_start(srv_t *s) {
  struct srv_stream *st = calloc(1, sizeof *st);
  if (st == NULL) return JOBQ_ENOMEM;
  st->s = s;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  st->start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  for (size_t i = 0; i < s->conf.n_keys; i++)
    if (s->conf.keys[i].owner) st->need_owner = 1;
  map_grow(st);
  if (st->buckets == NULL) {
    free(st);
    return JOBQ_ENOMEM;
  }
  int rc = jobq_subscribe(s->q, on_event, st);
  if (rc != 0) {
    free(st->buckets);
    free(st);
    return rc;
  }
  uv_timer_init(s->loop, &st->ping);
  st->ping.data = st;
  uv_timer_start(&st->ping, on_ping, 15000, 15000);
  uv_unref((uv_handle_t *)&st->ping); /* the loop ends without waiting for it */
  uv_timer_init(s->loop, &st->catch_up);
  st->catch_up.data = st;
  uv_timer_start(&st->catch_up, on_catch_up, 1500, 0);
  uv_unref((uv_handle_t *)&st->catch_up);
  s->streams = st;
  g_streams = st;
  return 0;
}

void srv_stream_stop(srv_t *s) {
  struct srv_stream *st = s->streams;
  if (st == NULL || st->stopped) return;
  st->stopped = 1;
  if (s->q) jobq_unsubscribe(s->q, on_event, st);
  uv_timer_stop(&st->ping);
  uv_close((uv_handle_t *)&st->ping, NULL);
  if (!uv_is_closing((uv_handle_t *)&st->catch_up)) uv_close((uv_handle_t *)&st->catch_up, NULL);
  /* Long polls answer the job as it is; streams end after what they have
   * queued. Both unlink themselves (the stream once its last write is
   * through): walk with the next pointer taken first. */
  for (size_t i = 0; i < st->nb; i++)
    for (srv_waiter *w = st->buckets[i], *next; w; w = next) {
      next = w->next;
      if (w->type == SRV_W_POLL) srv_poll_answer(w, NULL);
      else srv_sse_end(srv_sse_of(w));
    }
  for (srv_sse *x = st->global, *next; x; x = next) {
    next = srv_sse_next_global(x);
    srv_sse_end(x);
  }
  while (st->count) ring_drop_oldest(st);
  for (size_t i = 0; i < SRV_OWNER_CACHE; i++) {
    free(st->owners[i].owner);
    st->owners[i].owner = NULL;
    st->owners[i].used = 0;
  }
}

/* ---- long polls ---- */

typedef struct {
  srv_waiter w;
  srv_call *c;
  int64_t rank; /* the job's when the poll began */
  uv_timer_t timer;
} lpoll;

static void lp_closed(uv_handle_t *h) { free(h->data); }

/* The answer's body, read and made once for all the polls of the job that
 * one event answers (10,000 polls on one job: one read, one JSON text). */
static void poll_body(srv_t *s, const char *id, srv_poll_body *b) {
  if (b->done) return;
  b->done = 1;
  jobq_job_t *job = NULL;
  b->rc = jobq_get(s->q, id, &job);
  if (b->rc == 0) {
    json_t *o = json_pack("{s:b, s:o}", "success", 1, "job", srv_job_json(job));
    b->text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
  }
  jobq_job_free(job);
}

void srv_poll_answer(srv_waiter *w, srv_poll_body *shared) {
  lpoll *p = (lpoll *)w;
  srv_call *c = p->c;
  srv_t *s = c->s;
  srv_poll_body own = {0, 0, NULL}, *b = shared ? shared : &own;
  srv_map_del(s->streams, &p->w);
  srv_unwatch_client(s->streams, &p->w);
  uv_timer_stop(&p->timer);
  if (c->req == NULL) { /* the client left: nothing to read for it */
    srv_reply_raw(c, 499, NULL, "", 0);
  } else {
    poll_body(s, p->w.id, b);
    if (s->draining) c->req->http1_is_persistent = 0;
    if (b->rc == 0 && b->text)
      srv_reply_raw(c, 200, "application/json", b->text, strlen(b->text));
    else if (b->rc == 0)
      srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    else if (b->rc == JOBQ_ENOTFOUND)
      srv_reply_error(c, 404, "JOBQ_ENOTFOUND", "no job with id '%s'", p->w.id);
    else
      srv_reply_jobq(c, b->rc, jobq_strerror(b->rc));
  }
  srv_poll_body_free(&own);
  srv_release(c);
  uv_close((uv_handle_t *)&p->timer, lp_closed);
}

void srv_poll_body_free(srv_poll_body *b) {
  free(b->text);
  b->text = NULL;
}

/* A change newer than the poll's snapshot answers it; an event the
 * snapshot already showed (another process's, heard late) does not. */
void srv_poll_event(srv_waiter *w, int64_t rank, int terminal, int restart,
                    srv_poll_body *shared) {
  lpoll *p = (lpoll *)w;
  if (terminal || rank > p->rank || (restart && srv_rank_restarts(rank, p->rank)))
    srv_poll_answer(w, shared);
}

static void lp_timeout(uv_timer_t *t) {
  lpoll *p = t->data;
  srv_poll_answer(&p->w, NULL);
}

void srv_long_poll(srv_call *c, jobq_job_t *job, int secs) {
  struct srv_stream *st = c->s->streams;
  lpoll *p = st && !st->stopped ? calloc(1, sizeof *p) : NULL;
  if (p == NULL) {
    srv_reply_json(c, 200, json_pack("{s:b, s:o}", "success", 1, "job", srv_job_json(job)));
    jobq_job_free(job);
    return;
  }
  p->w.type = SRV_W_POLL;
  p->c = c;
  p->rank = srv_rank_of_job(job);
  srv_map_add(st, &p->w, jobq_job_id(job));
  jobq_job_free(job);
  srv_hold(c);
  uv_timer_init(c->s->loop, &p->timer);
  p->timer.data = p;
  uv_timer_start(&p->timer, lp_timeout, (uint64_t)secs * 1000, 0);
  srv_watch_client(st, &p->w, c->req);
}
