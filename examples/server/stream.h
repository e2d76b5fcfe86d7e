/* jobq-server's streams, shared by stream.c (the queue's events fanned out
 * to waiters, the recent-event ring, long polls) and sse.c (Server-Sent
 * Events: the response streamed through H2O, the two endpoints).
 *
 * Everything here runs on the loop: the queue's subscriber, H2O's
 * callbacks and the timers, so nothing is locked. */
#ifndef JOBQ_SERVER_STREAM_H
#define JOBQ_SERVER_STREAM_H

#include "server.h"

/* ---- frames: one SSE event's bytes, shared by every stream it goes to ---- */

/* refs == 0 marks a static frame (": ping"), never freed. */
typedef struct srv_frame {
  uint32_t refs;
  uint32_t len;
  char data[];
} srv_frame;

/* "id: ID\nevent: NAME\ndata: DATA\n\n" (id omitted if NULL); refs 1, or
 * NULL when out of memory. */
srv_frame *srv_frame_event(const char *id, const char *name, const char *data);
void srv_frame_unref(srv_frame *f);

/* ---- a job's changes, ordered ---- */

/* A job stream's ids come from the job's state, not from a counter, so that
 * a Last-Event-ID stays meaningful across a server restart: the server
 * compares it with the stored job. rank = attempt * 128 + stage, where the
 * stage is 0 queued before any attempt, 1 + progress while running
 * (1..101), 102 queued again for a retry, 103 finished. Written
 * "ATTEMPT.STAGE". */
#define SRV_STAGE_RETRY 102
#define SRV_STAGE_DONE 103
int64_t srv_rank(int state, int attempt, int progress);
int64_t srv_rank_of_job(const jobq_job_t *job);
/* 1 if rank, the rank of a started or retrying event, begins a new run
 * after last: the same attempt or a later one, and another change. */
int srv_rank_restarts(int64_t rank, int64_t last);
void srv_rank_text(int64_t rank, char buf[32]);
/* 0 and *out, or -1 if text is not an id of this form. */
int srv_rank_parse(const char *text, size_t len, int64_t *out);

/* ---- waiters of one job: long polls and job streams ---- */

enum { SRV_W_POLL = 1, SRV_W_JOB_SSE = 2, SRV_W_SSE = 3 };

typedef struct srv_waiter {
  struct srv_waiter *next, *prev;
  uint32_t hash;
  uint8_t type; /* SRV_W_*; /v1/events streams are SRV_W_SSE */
  char id[JOBQ_ID_SIZE];
  h2o_socket_t *sock;         /* HTTP/1: the connection watched for the client's close */
  struct srv_waiter *snext;   /* in srv_stream.socks */
} srv_waiter;

typedef struct srv_sse srv_sse;

/* The recent events of /v1/events, for resumption. */
typedef struct {
  uint64_t seq;
  srv_frame *f;
  char *owner;   /* the job's owner; NULL if none or unknown */
  uint8_t has_job;
} srv_ring_ent;

#define SRV_RING 4096

typedef struct {
  char id[JOBQ_ID_SIZE];
  char *owner;
  uint8_t used;
} srv_owner_ent;

#define SRV_OWNER_CACHE 4096

struct srv_stream {
  srv_t *s;
  int stopped;
  /* job id -> waiters, chained, a power-of-two number of buckets */
  srv_waiter **buckets;
  size_t nb, nw;
  /* /v1/events streams (linked through their waiter's next/prev) */
  srv_sse *global;
  size_t n_sse;
  /* the recent-event ring: seq 1.. ; entry seq n at ring[n % SRV_RING] */
  srv_ring_ent ring[SRV_RING];
  uint64_t newest, count;
  size_t ring_bytes;
  int64_t start_ms; /* global ids are "START-SEQ": unique across restarts */
  /* job id -> owner, direct-mapped: owners never change, so a hit is right */
  int need_owner; /* some key is bound to an owner */
  srv_owner_ent owners[SRV_OWNER_CACHE];
  uv_timer_t ping;
  uv_timer_t catch_up;
  /* HTTP/1 socket -> waiter, for the client's close (srv_watch_client) */
  srv_waiter **socks;
  size_t nsb, nsw;
};

uint32_t srv_hash_id(const char *id);
void srv_map_add(struct srv_stream *st, srv_waiter *w, const char *id);
void srv_map_del(struct srv_stream *st, srv_waiter *w);
/* Replays to x the ring's events after seq `after` that x may see: 1, 0
 * if the ring no longer (or never) held them, or -1 if the stream ended
 * meanwhile (out of memory; x may be gone: do not touch it). */
int srv_ring_replay(struct srv_stream *st, srv_sse *x, uint64_t after);

/* An HTTP/1 connection reads nothing while H2O answers its request, so a
 * client that leaves is noticed only at the next write: seconds for a
 * stream (its ping), a minute for a long poll, with its memory and file
 * descriptor held. So the waiter reads the socket meanwhile: its close
 * ends the stream or answers the poll at once. Bytes the client sends
 * (a pipelined request) stop the watch and stay in H2O's buffer for it.
 * srv_unwatch_client before the waiter goes. */
void srv_watch_client(struct srv_stream *st, srv_waiter *w, h2o_req_t *req);
void srv_unwatch_client(struct srv_stream *st, srv_waiter *w);

/* ---- SSE streams (sse.c) ---- */

/* The job stream of one event of its job: frame (id from the job's state)
 * with the event's rank; terminal ends the stream after it; restart (a
 * started or retrying event) begins a new run, whose ranks may be below the
 * last run's when its attempt was not counted (a release, a deferral). */
void srv_sse_job_event(srv_sse *x, srv_frame *f, int64_t rank, int terminal, int restart);
/* A /v1/events stream: 1 if the stream's caller may see an event of a job
 * of owner (has_job 0: an event about the queue). */
int srv_sse_may_see(const srv_sse *x, int has_job, const char *owner);
/* Queues f on x: 0, or -1 if the stream ended instead (x may be gone). */
int srv_sse_push(srv_sse *x, srv_frame *f);
/* Ends the stream after what it has queued (SIGTERM). */
void srv_sse_end(srv_sse *x);
/* Its client closed the connection. */
void srv_sse_gone(srv_sse *x);
/* The job read again: what the stream lacks of it (a snapshot, and the
 * terminal event, which ends the stream). */
void srv_sse_catch_up(srv_sse *x, const jobq_job_t *job);
/* Every 15 s: ": ping" to every idle stream. */
void srv_sse_ping_all(struct srv_stream *st);
srv_sse *srv_sse_next_global(srv_sse *x);
/* sse.c's: a waiter of type SRV_W_JOB_SSE is this stream. */
srv_sse *srv_sse_of(srv_waiter *w);

/* ---- long polls (stream.c) ---- */
/* The answer of the polls one event answers, shared (srv_poll_body_free). */
typedef struct {
  int done, rc;
  char *text;
} srv_poll_body;
void srv_poll_body_free(srv_poll_body *b);
/* An event of the poll's job (rank after it): answers if newer than the
 * poll's snapshot. shared: NULL, or the body the job's other polls share. */
void srv_poll_event(srv_waiter *w, int64_t rank, int terminal, int restart,
                    srv_poll_body *shared);
/* Answers the poll with its job as it is now (timeout, SIGTERM). */
void srv_poll_answer(srv_waiter *w, srv_poll_body *shared);

#endif
