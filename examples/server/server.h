/* jobq-server: the job service over HTTP. This header is what the files of
 * the program share: the server's state, one request's call, the route
 * table's shape, and the helpers that answer.
 *
 * The program runs one libuv loop. H2O (libh2o, built on libuv) parses
 * HTTP/1.1 and HTTP/2 on it, and the queue runs on it too
 * (jobq_options_set_loop), so that an event of the queue reaches a waiting
 * request or an SSE stream without a thread hop. Calls that wait for a
 * commit (submit, cancel) run on libuv's thread pool, so that the loop
 * never waits for the disk and submits from many connections share group
 * commits; reads (get, list, stats) run on the loop, where they take
 * microseconds. */
#ifndef JOBQ_SERVER_H
#define JOBQ_SERVER_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <jansson.h>
#include <jobq.h>
#include <stdarg.h>
#include <stdint.h>
#include <uv.h>

/* ---- configuration (main.c) ---- */

typedef struct {
  char *key;   /* the API key */
  char *owner; /* the owner it acts as; NULL for an administrator ("*") */
} srv_key;

typedef struct {
  char *listen_host;
  int listen_port;
  char *storage;
  int workers;           /* worker threads of the queue; 0 with submit_only */
  int submit_only;       /* run no handler: separate `jobq` workers do */
  int no_auth;           /* --no-auth: every request acts as administrator */
  srv_key *keys;
  size_t n_keys;
  char *cron_secret;     /* Bearer secret of POST /api/cron/pregenerate */
  char **cors;           /* allowed origins ("*" = any) */
  size_t n_cors;
  size_t max_body;       /* bytes of a request body */
  int64_t req_timeout_ms; /* a request's headers and body must arrive within */
  int64_t drain_ms;      /* SIGTERM: how long running jobs get to finish */
  char *audio_dir;       /* the local upload provider's directory, served at /audio/ */
  char *pipeline_json;   /* the podcast pipeline's stage configuration (docs/stages.md) */
  json_t *quotas;        /* {"kind": max unfinished per owner} or NULL */
  json_t *pregenerate;   /* {"users": [...], "types": [...], "tz": ...} or NULL */
  json_t *podcast;       /* the podcast service's options {"cacheTtlMs": N} or NULL */
  int quiet;             /* no request log */
} srv_conf;

/* ---- the server ---- */

typedef struct srv srv_t;
typedef struct srv_call srv_call;

struct srv {
  uv_loop_t *loop;
  jobq_t *q;
  srv_conf conf;
  h2o_globalconf_t h2o;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept;
  uv_tcp_t listener;
  int listening;
  int draining;     /* SIGTERM seen: new requests are answered 503 */
  long inflight;    /* calls not yet answered (work on the pool included) */
  uint64_t started; /* uv_hrtime at start */
  struct srv_stream *streams; /* stream.c's state; NULL until it starts */
  int n_endpoints;              /* webhook endpoints from JOBQ_WEBHOOK_SECRET_<NAME> */
  const char *default_endpoint; /* the only one, when there is exactly one; else NULL */
  char endpoint_buf[128];
};

/* One request, from its route's call to its answer. Allocated on the heap;
 * H2O may free the request itself when the client goes away (then req
 * becomes NULL), so work that outlives the handler checks c->req first. */
struct srv_call {
  srv_t *s;
  h2o_req_t *req;   /* NULL once H2O freed it (the client went away) */
  int busy;         /* work on the pool, a wait or a stream holds the call */
  int answered;
  int logged;
  const char *owner; /* the key's owner; NULL for an administrator */
  int admin;
  h2o_iovec_t param[2]; /* the route's :parameters, in order */
  uint64_t t0;      /* uv_hrtime at arrival */
  int status;       /* the status answered, for the log */
  size_t bytes;     /* body bytes answered, for the log */
  /* work on the thread pool (srv_work) */
  uv_work_t work;
  void (*work_fn)(srv_call *c);
  void (*after_fn)(srv_call *c);
  void (*cleanup_fn)(srv_call *c); /* frees ud when the client went away */
  void *ud;
};

/* ---- routes (router.c) ---- */

enum { SRV_AUTH_NONE, SRV_AUTH_KEY, SRV_AUTH_ADMIN, SRV_AUTH_CRON };

typedef void (*srv_route_fn)(srv_call *c);

typedef struct {
  const char *method;  /* "GET", "POST", "DELETE", ... */
  const char *pattern; /* "/v1/jobs/:id": a ":" segment matches one non-empty segment */
  int auth;            /* SRV_AUTH_* */
  srv_route_fn fn;
} srv_route;

/* Finds the route of (method, path): 0 and *out, or 404 (no pattern
 * matches) or 405 (patterns match, none with this method; allow gets the
 * methods that do, comma-separated). */
int srv_route_find(const char *method, size_t mlen, const char *path, size_t plen,
                   const srv_route **out, h2o_iovec_t param[2], char *allow, size_t allow_cap);

/* The routes each file contributes, ended by a {NULL} entry. */
extern const srv_route srv_routes_jobs[];    /* api_jobs.c */
extern const srv_route srv_routes_stream[];  /* stream.c */
extern const srv_route srv_routes_podcast[]; /* api_podcast.c */
extern const srv_route srv_routes_dashboard[]; /* dashboard.c */
extern const srv_route srv_routes_openapi[];   /* openapi.c */

/* ---- answers (http.c) ---- */

/* Answers status with the JSON body (its reference is taken). */
void srv_reply_json(srv_call *c, int status, json_t *body);
/* Answers {"success": false, "error": {"code": code, "message": ...}}. */
void srv_reply_error(srv_call *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers a libjobq failure rc with its status (404, 409, 429, 503, ...),
 * its name as the code and jobq_last_error() (or msg if not NULL). */
void srv_reply_jobq(srv_call *c, int rc, const char *msg);
/* The HTTP status of a libjobq code. */
int srv_status_of(int rc);
/* Answers with a body of the given type as it is (copied). */
void srv_reply_raw(srv_call *c, int status, const char *type, const char *body, size_t len);
/* Adds the CORS headers the request's Origin earns, if any. */
void srv_add_cors(srv_call *c);
/* Writes the request's log line (once; streams call it at their end). */
void srv_log(srv_call *c);
/* A streamed answer (h2o_start_response) has ended, or its client went
 * away: counts the call answered (once) and writes its log line. Call it
 * while c->req is still set. */
void srv_stream_done(srv_call *c);

/* The request body parsed as a JSON object: NULL after answering 415 (not
 * application/json) or 400 (malformed, or not an object). */
json_t *srv_body_object(srv_call *c);
/* A query parameter's value, decoded, into buf: 1 if present, 0 if not,
 * -1 (after answering 400) if too long or badly encoded. */
int srv_query(srv_call *c, const char *name, char *buf, size_t cap);
/* A request header's value, or an empty iovec. */
h2o_iovec_t srv_header(srv_call *c, const char *lower_name);
/* param i as a NUL-terminated copy into buf; 0, or -1 if it does not fit. */
int srv_param(srv_call *c, int i, char *buf, size_t cap);

/* Runs work(c) on libuv's thread pool, then after(c) on the loop if the
 * client is still there; if it went away, cleanup(c) (may be NULL) frees
 * c->ud instead. The call stays held meanwhile. */
void srv_work(srv_call *c, void (*work)(srv_call *c), void (*after)(srv_call *c),
              void (*cleanup)(srv_call *c));
/* Holds the call past its handler (a long poll, a stream): its memory stays
 * until srv_release, even if the client goes away (then c->req is NULL). */
void srv_hold(srv_call *c);
/* Ends a hold; frees the call if the client went away meanwhile. Returns 1
 * if the call is gone (do not touch c any more), else 0. */
int srv_release(srv_call *c);

/* ---- files compiled in (examples/server/assets, embed.cmake) ---- */

typedef struct {
  const char *name; /* the file's name in assets/, e.g. "index.html" */
  const char *type; /* its media type */
  const unsigned char *data;
  size_t len;
} srv_asset;

extern const srv_asset srv_assets[]; /* ended by a {NULL} entry */
/* The asset of that name, or NULL. */
const srv_asset *srv_asset_find(const char *name);
/* Answers 200 with the asset (Cache-Control: no-cache, an ETag of its
 * bytes, 304 to a matching If-None-Match), or 404 if there is none. */
void srv_reply_asset(srv_call *c, const char *name);

/* ---- the HTTP side (http.c) ---- */

/* Sets H2O up on s->loop and listens on conf.listen_host:listen_port; with
 * a NULL listen_host, sets H2O up without listening. 0 or -1 (printed). */
int srv_http_start(srv_t *s);
/* Serves one connected stream socket (a socketpair's end, ...) as an HTTP
 * connection; it is closed when H2O is done with it. 0, or a libuv error
 * (then fd is still the caller's). */
int srv_http_accept_fd(srv_t *s, int fd);
/* Stops accepting connections and asks H2O to close idle ones; in-flight
 * requests finish. */
void srv_http_stop_accepting(srv_t *s);
/* 1 once H2O holds no connection. */
int srv_http_idle(srv_t *s);
void srv_http_dispose(srv_t *s);

/* ---- jobs as JSON (api_jobs.c) ---- */

/* The /v1 shape of a job: {"id", "kind", "state", ...}. */
json_t *srv_job_json(const jobq_job_t *job);
/* 1 if the caller may see the job (administrator, or the job's owner). */
int srv_may_see(const srv_call *c, const jobq_job_t *job);
/* ISO 8601 UTC with milliseconds of ms since the epoch, into buf (25 bytes). */
void srv_iso8601(int64_t ms, char buf[32]);

/* ---- streams (stream.c) ---- */

/* Starts the queue-event fan-out (subscribes); called once the queue is
 * open. 0 or a libjobq code. */
int srv_stream_start(srv_t *s);
/* Answers GET /v1/jobs/:id?wait=N: when the job changes (any event of it)
 * or after secs, whichever comes first, with the job as it then is. Takes
 * job (the snapshot read now, not terminal). */
void srv_long_poll(srv_call *c, jobq_job_t *job, int secs);
/* Ends every stream and long poll (SIGTERM); they answer what they have. */
void srv_stream_stop(srv_t *s);

/* ---- the podcast service (api_podcast.c) ---- */

/* Registers the podcast pipeline (unless submit_only) and whatever the
 * service needs on the queue. 0, or 1 after printing why on stderr. */
int srv_podcast_setup(srv_t *s);

#endif
