/* jobq-server's podcast service: the endpoints of the service libjobq
 * replaces, with its JSON shapes (docs/server.md, "The podcast service"):
 *
 *   POST /api/podcast/generate/async     a podcast of a note: a ticket, or the cached job
 *   GET  /api/podcast/jobs/:jobId        the job as the service showed it
 *   GET  /api/podcast/jobs/user/:userId  a user's podcasts, newest first, paged
 *   POST /api/cron/pregenerate           the nightly batch, now; answers its summary
 *
 * The "podcast" kind is the pipeline of docs/stages.md: the configuration's
 * "pipeline", or the offline one (template script, espeak-ng voices, a local
 * upload into the audio directory, which http.c serves at /audio/). A
 * submit-only server registers nothing: the processes that run the kind may
 * be other ones, and their events reach this one through the shared store. */
#include "server.h"

#include <jobq/stages.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIND "podcast"
/* How long a succeeded podcast answers the same request from the cache. */
#define DEFAULT_CACHE_TTL_MS (24 * 3600 * 1000LL)
/* What ETA assumes for one podcast before any has finished (libjobq's own
 * default duration). */
#define DEFAULT_DURATION_MS 45000.0
/* The average duration is read from the store's stats at most this often. */
#define AVG_REFRESH_MS 5000
/* A waiting cron request looks at the server's state this often. */
#define CRON_TICK_MS 1000
/* ... and re-reads its batch every this many ticks, in case its event was
 * missed (a belt to the subscription's braces). */
#define CRON_REREAD_TICKS 5

typedef struct cron_wait cron_wait;

static struct {
  srv_t *s;
  int64_t cache_ttl_ms;
  char *audio_root;  /* conf.audio_dir made absolute, without a trailing '/' */
  /* the "pregenerate" member */
  char **users, **types;
  size_t n_users, n_types;
  char *tz;
  int max_running;
  cron_wait *waits;  /* cron requests waiting for their batch */
  /* the kind's average duration, for estimatedWaitSeconds (pool threads) */
  uv_mutex_t avg_lock;
  double avg_ms;
  uint64_t avg_at;   /* uv_hrtime of the read; 0: never */
} P;

/* ---- the podcast job's shape ---- */

/* srv_reply_json, with numbers as the result has them: audioDuration is
 * 41.27, not 41.270000000000003. */
static void reply(srv_call *c, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
  json_decref(body);
  if (text == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  srv_reply_raw(c, status, "application/json", text, strlen(text));
  free(text);
}

static const char *status_of(int state) {
  switch (state) {
  case JOBQ_QUEUED: return "queued";
  case JOBQ_RUNNING: return "processing";
  case JOBQ_SUCCEEDED: return "completed";
  default: return "failed"; /* failed, and cancelled (error "cancelled") */
  }
}

/* 1 if the Host header is a plain host[:port]: it goes into URLs we hand out. */
static int host_ok(h2o_iovec_t h) {
  if (h.len == 0 || h.len > 255) return 0;
  for (size_t i = 0; i < h.len; i++) {
    char ch = h.base[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']'))
      return 0;
  }
  return 1;
}

/* The local upload answers file:///abs/path. A file under the audio
 * directory is served at /audio/<relative path> (http.c), so the client gets
 * that URL on the host it asked; any other URL (s3, http providers, a file
 * elsewhere) is passed on as it is. */
static json_t *public_url(srv_call *c, const char *url) {
  static const char pre[] = "file://";
  size_t rl = P.audio_root ? strlen(P.audio_root) : 0;
  if (c->req == NULL || rl == 0 || strncmp(url, pre, sizeof pre - 1) != 0)
    return json_string(url);
  const char *path = url + sizeof pre - 1;
  if (strncmp(path, P.audio_root, rl) != 0 || path[rl] != '/' || path[rl + 1] == '\0')
    return json_string(url);
  const char *rel = path + rl + 1;
  h2o_iovec_t host = c->req->authority;
  char fallback[300];
  if (!host_ok(host)) {
    snprintf(fallback, sizeof fallback, "%s:%d", c->s->conf.listen_host, c->s->conf.listen_port);
    host = h2o_iovec_init(fallback, strlen(fallback));
  }
  /* Behind a TLS proxy the request arrives over http: the proxy says so. */
  h2o_iovec_t fwd = srv_header(c, "x-forwarded-proto");
  int https = (fwd.len == 5 && strncasecmp(fwd.base, "https", 5) == 0) ||
              c->req->scheme == &H2O_URL_SCHEME_HTTPS;
  size_t cap = strlen(rel) * 3 + host.len + 32;
  char *out = malloc(cap);
  if (out == NULL) return NULL;
  size_t o = (size_t)snprintf(out, cap, "%s://%.*s/audio/", https ? "https" : "http",
                              (int)host.len, host.base);
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)rel; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr("-._~/", *p)) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
  json_t *j = json_string(out);
  free(out);
  return j;
}

/* The transcript as the service gave it, a list of {speaker, text}: the
 * result's dialogue; or, from a pipeline whose script stage made only the
 * text form, its "Speaker: text" lines. */
static json_t *transcript_of(const json_t *r) {
  json_t *list = json_array();
  const json_t *d = json_object_get(r, "dialogue");
  if (json_is_array(d)) {
    size_t i;
    const json_t *turn;
    json_array_foreach(d, i, turn) {
      const char *sp = json_string_value(json_object_get(turn, "speaker"));
      const char *tx = json_string_value(json_object_get(turn, "text"));
      if (sp && tx) json_array_append_new(list, json_pack("{s:s, s:s}", "speaker", sp, "text", tx));
    }
    return list;
  }
  const char *t = json_string_value(json_object_get(r, "transcript"));
  while (t && *t) {
    size_t n = strcspn(t, "\n");
    const char *colon = memchr(t, ':', n);
    if (colon) {
      const char *tx = colon + 1;
      while (tx < t + n && *tx == ' ') tx++;
      json_array_append_new(list, json_pack("{s:s%, s:s%}", "speaker", t, (size_t)(colon - t),
                                            "text", tx, (size_t)(t + n - tx)));
    }
    t += n + (t[n] == '\n');
  }
  return list;
}

/* The result's members the service answered, added to o (completed jobs). */
static void add_result(srv_call *c, json_t *o, const jobq_job_t *job) {
  const char *res = jobq_job_result(job);
  json_t *r = res ? json_loads(res, 0, NULL) : NULL;
  if (r == NULL) return;
  const char *url = json_string_value(json_object_get(r, "audioUrl"));
  if (url) json_object_set_new(o, "audioUrl", public_url(c, url));
  json_t *dur = json_object_get(r, "audioDuration");
  if (json_is_number(dur)) json_object_set(o, "audioDuration", dur);
  json_object_set_new(o, "transcript", transcript_of(r));
  json_decref(r);
}

/* {jobId, status, progress, currentStep, createdAt, completedAt, audioUrl,
 * audioDuration, transcript, error}: members only where they apply. */
static json_t *podcast_job_json(srv_call *c, const jobq_job_t *job) {
  int st = jobq_job_state(job);
  char when[32];
  srv_iso8601(jobq_job_created_at(job), when);
  json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "jobId", jobq_job_id(job), "status",
                        status_of(st), "progress", jobq_job_progress(job), "createdAt", when);
  if (o == NULL) return NULL;
  const char *step = jobq_job_step(job);
  if (step && *step) json_object_set_new(o, "currentStep", json_string(step));
  if (jobq_state_is_terminal(st) && jobq_job_finished_at(job) > 0) {
    srv_iso8601(jobq_job_finished_at(job), when);
    json_object_set_new(o, "completedAt", json_string(when));
  }
  if (st == JOBQ_SUCCEEDED) {
    add_result(c, o, job);
  } else if (st == JOBQ_CANCELLED) {
    json_object_set_new(o, "error", json_string("cancelled"));
  } else if (st == JOBQ_FAILED) {
    const char *e = jobq_job_error(job);
    json_object_set_new(o, "error", json_string(e && *e ? e : "failed"));
  }
  return o;
}

/* ---- POST /api/podcast/generate/async ---- */

/* The cache key of a request: one per (user, note, duration, content). The
 * parts are hashed together, each with its length, so that no user or note
 * id can make another request's key, and the key stays short whatever they
 * hold. */
static int cache_key(const char *user, const char *note, const char *duration,
                     const char *content, char out[80]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  EVP_MD_CTX *h = EVP_MD_CTX_new();
  int ok = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL);
  const char *parts[] = {user, note, duration, content};
  for (size_t i = 0; i < 4 && ok; i++) {
    char len[24];
    int n = snprintf(len, sizeof len, "%zu:", strlen(parts[i]));
    ok = EVP_DigestUpdate(h, len, (size_t)n) && EVP_DigestUpdate(h, parts[i], strlen(parts[i]));
  }
  ok = ok && EVP_DigestFinal_ex(h, d, &dlen) && dlen >= 24;
  EVP_MD_CTX_free(h);
  if (!ok) return -1;
  int o = snprintf(out, 80, "podcast:note:");
  for (size_t i = 0; i < 24; i++) o += snprintf(out + o, (size_t)(80 - o), "%02x", d[i]);
  return 0;
}

/* The kind's average attempt duration from the store's stats, read at most
 * every AVG_REFRESH_MS (pool threads only: jobq_stats writes this process's
 * counts first). */
static double average_ms(jobq_t *q) {
  uv_mutex_lock(&P.avg_lock);
  uint64_t now = uv_hrtime();
  if (P.avg_at == 0 || now - P.avg_at > (uint64_t)AVG_REFRESH_MS * 1000000) {
    jobq_stats_t *st = NULL;
    if (jobq_stats(q, &st) == 0) {
      for (int i = 0; i < jobq_stats_kind_count(st); i++)
        if (strcmp(jobq_stats_kind_name(st, i), KIND) == 0) {
          double a = jobq_stats_kind_average_ms(st, i);
          if (!isnan(a) && a > 0) P.avg_ms = a;
        }
      jobq_stats_free(st);
      P.avg_at = now;
    }
  }
  double a = P.avg_ms > 0 ? P.avg_ms : DEFAULT_DURATION_MS;
  uv_mutex_unlock(&P.avg_lock);
  return a;
}

typedef struct {
  char *payload;
  jobq_submit_opts_t *so;
  char id[JOBQ_ID_SIZE];
  int rc;
  char err[512];
  jobq_job_t *job;
  double avg_ms;
} gen_work;

static void gen_free(gen_work *w) {
  if (w == NULL) return;
  free(w->payload);
  jobq_submit_opts_free(w->so);
  jobq_job_free(w->job);
  free(w);
}

static void gen_cleanup(srv_call *c) { gen_free(c->ud); }

static void gen_run(srv_call *c) {
  gen_work *w = c->ud;
  w->rc = jobq_submit(c->s->q, KIND, w->payload, w->so, w->id);
  if (w->rc < 0) {
    snprintf(w->err, sizeof w->err, "%s", jobq_last_error());
    return;
  }
  if (jobq_get(c->s->q, w->id, &w->job) != 0) w->job = NULL;
  if (w->rc == 0) w->avg_ms = average_ms(c->s->q);
}

/* 200 with the job a live cache key holds. */
static void reply_cached(srv_call *c, const jobq_job_t *job) {
  int st = jobq_job_state(job);
  json_t *body = json_pack("{s:b, s:b, s:s, s:s, s:s}", "success", 1, "cached", 1, "jobId",
                           jobq_job_id(job), "status", status_of(st), "message",
                           st == JOBQ_SUCCEEDED ? "This podcast was generated already"
                                                : "This podcast is being generated already");
  if (body && st == JOBQ_SUCCEEDED) add_result(c, body, job);
  if (body) json_object_set_new(body, "job", podcast_job_json(c, job));
  reply(c, 200, body);
}

static void gen_after(srv_call *c) {
  gen_work *w = c->ud;
  c->ud = NULL;
  if (w->rc < 0) {
    srv_reply_jobq(c, w->rc, w->err);
  } else if (w->rc == 1 && w->job) {
    reply_cached(c, w->job); /* a request like it came in meanwhile */
  } else {
    /* Until the podcast is ready: until it starts (libjobq's ETA, from its
     * place in line), then one average run of the kind. */
    int64_t pos = w->job ? jobq_job_position(w->job) : -1;
    int64_t eta = w->job ? jobq_job_eta_ms(w->job) : -1;
    double wait_ms = (eta > 0 ? (double)eta : 0) + w->avg_ms;
    json_t *body = json_pack("{s:b, s:s, s:s, s:s, s:I, s:I}", "success", 1, "jobId", w->id,
                             "status", "queued", "message", "Podcast generation started",
                             "position", (json_int_t)(pos > 0 ? pos : 0),
                             "estimatedWaitSeconds", (json_int_t)ceil(wait_ms / 1000.0));
    reply(c, 202, body);
  }
  gen_free(w);
}

/* A member that must be a non-empty string when present: 1 present, 0
 * absent (or null), -1 after answering 400. */
static int str_member(srv_call *c, json_t *body, const char *name, const char **out) {
  json_t *v = json_object_get(body, name);
  *out = NULL;
  if (v == NULL || json_is_null(v)) return 0;
  if (!json_is_string(v) || json_string_length(v) == 0) {
    srv_reply_error(c, 400, "invalid_field", "'%s' must be a non-empty string", name);
    return -1;
  }
  *out = json_string_value(v);
  return 1;
}

static void generate(srv_call *c) {
  json_t *body = srv_body_object(c);
  if (body == NULL) return;
  gen_work *w = NULL;
  const char *content, *note, *user, *duration;
  int has;
  if ((has = str_member(c, body, "noteContent", &content)) < 0) goto out;
  if (!has) {
    srv_reply_error(c, 400, "invalid_field",
                    "'noteContent' is required: the note's text, a non-empty string");
    goto out;
  }
  if (str_member(c, body, "noteId", &note) < 0 || str_member(c, body, "userId", &user) < 0 ||
      str_member(c, body, "duration", &duration) < 0)
    goto out;
  if (!duration) duration = "short";
  if (strcmp(duration, "short") && strcmp(duration, "medium") && strcmp(duration, "long")) {
    srv_reply_error(c, 400, "invalid_field", "'duration' is one of short, medium, long (got '%s')",
                    duration);
    goto out;
  }
  json_t *fv = json_object_get(body, "forceRegenerate");
  if (fv && !json_is_boolean(fv) && !json_is_null(fv)) {
    srv_reply_error(c, 400, "invalid_field", "'forceRegenerate' must be true or false");
    goto out;
  }
  int force = json_is_true(fv);
  /* The job belongs to userId: an owner's key submits for its owner only. */
  if (!c->admin) {
    if (user && strcmp(user, c->owner) != 0) {
      srv_reply_error(c, 403, "forbidden", "this key submits for user '%s' only", c->owner);
      goto out;
    }
    user = c->owner;
  } else if (!user) {
    srv_reply_error(c, 400, "invalid_field",
                    "'userId' is required with an administrator key: the podcast's owner");
    goto out;
  }
  char key[80];
  if (cache_key(user, note ? note : "", duration, content, key) != 0) {
    srv_reply_error(c, 500, "internal", "cannot hash the request (OpenSSL)");
    goto out;
  }
  if (!force) {
    /* The cache, answered here on the loop: a read, no commit to wait for. */
    jobq_job_t *job = NULL;
    int rc = jobq_get_by_key(c->s->q, key, &job);
    if (rc == 0) {
      reply_cached(c, job);
      jobq_job_free(job);
      goto out;
    }
    if (rc != JOBQ_ENOTFOUND) {
      srv_reply_jobq(c, rc, NULL);
      goto out;
    }
  }
  w = calloc(1, sizeof *w);
  json_t *payload = json_pack("{s:s, s:s, s:s, s:s}", "noteId", note ? note : "", "noteContent",
                              content, "userId", user, "duration", duration);
  if (w) w->payload = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
  json_decref(payload);
  if (w == NULL || w->payload == NULL || (w->so = jobq_submit_opts_new()) == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    goto out;
  }
  int rc = jobq_submit_opts_set_owner(w->so, user);
  if (rc == 0) rc = jobq_submit_opts_set_dedupe(w->so, key, P.cache_ttl_ms);
  if (rc == 0) rc = jobq_submit_opts_set_force(w->so, force);
  if (rc != 0) { /* an owner over 256 bytes, say */
    srv_reply_error(c, 400, "invalid_field", "%s", jobq_last_error());
    goto out;
  }
  c->ud = w;
  w = NULL;
  srv_work(c, gen_run, gen_after, gen_cleanup);
out:
  gen_free(w);
  json_decref(body);
}

/* ---- GET /api/podcast/jobs/:jobId ---- */

static void get_podcast(srv_call *c) {
  char id[JOBQ_ID_SIZE + 1];
  jobq_job_t *job = NULL;
  int rc = srv_param(c, 0, id, sizeof id) == 0 ? jobq_get(c->s->q, id, &job) : JOBQ_ENOTFOUND;
  /* Another owner's job, or another kind's, is unknown here: ids cannot be
   * probed. */
  if (rc == JOBQ_EINVAL || rc == JOBQ_ENOTFOUND ||
      (rc == 0 && (!srv_may_see(c, job) || strcmp(jobq_job_kind(job), KIND) != 0))) {
    jobq_job_free(job);
    srv_reply_error(c, 404, "JOBQ_ENOTFOUND", "no podcast job with that id");
    return;
  }
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  reply(c, 200, json_pack("{s:b, s:o}", "success", 1, "job", podcast_job_json(c, job)));
  jobq_job_free(job);
}

/* ---- GET /api/podcast/jobs/user/:userId ---- */

static void list_user(srv_call *c) {
  char user[300], limit[16], cursor[512];
  if (srv_param(c, 0, user, sizeof user) != 0) {
    srv_reply_error(c, 400, "invalid_field", "the user id is over 256 bytes");
    return;
  }
  if (!c->admin && strcmp(user, c->owner) != 0) {
    srv_reply_error(c, 403, "forbidden", "this key lists user '%s' only", c->owner);
    return;
  }
  int hl, hc;
  if ((hl = srv_query(c, "limit", limit, sizeof limit)) < 0 ||
      (hc = srv_query(c, "cursor", cursor, sizeof cursor)) < 0)
    return;
  long n = 20;
  if (hl) {
    char *end;
    n = strtol(limit, &end, 10);
    if (*end || end == limit || n < 1 || n > 100) {
      srv_reply_error(c, 400, "bad_query", "'limit' is a number of jobs, 1..100");
      return;
    }
  }
  jobq_filter_t *f = jobq_filter_new();
  if (f == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  int rc = jobq_filter_set_owner(f, user);
  if (rc == 0) rc = jobq_filter_set_kind(f, KIND);
  if (rc == 0) rc = jobq_filter_set_limit(f, (int)n);
  if (rc == 0) rc = jobq_filter_set_newest_first(f, 1);
  if (rc == 0 && hc) rc = jobq_filter_set_cursor(f, cursor);
  if (rc != 0) {
    jobq_filter_free(f);
    srv_reply_error(c, 400, "bad_query", "%s", jobq_last_error());
    return;
  }
  jobq_page_t *page = NULL;
  rc = jobq_list(c->s->q, f, &page);
  jobq_filter_free(f);
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  json_t *jobs = json_array();
  for (size_t i = 0; i < jobq_page_count(page); i++)
    json_array_append_new(jobs, podcast_job_json(c, jobq_page_job(page, i)));
  const char *next = jobq_page_next_cursor(page);
  json_t *body = json_pack("{s:b, s:o, s:o}", "success", 1, "jobs", jobs, "nextCursor",
                           next ? json_string(next) : json_null());
  jobq_page_free(page);
  reply(c, 200, body);
}

/* ---- POST /api/cron/pregenerate ---- */

/* One request waiting for its batch. The batch's end arrives as a
 * JOBQ_EVENT_BATCH_DONE event on the loop (from this process or, with a
 * submit-only server, from the workers' processes through the store): the
 * request is held (srv_hold) meanwhile, and never waits on the loop. */
struct cron_wait {
  cron_wait *next;
  srv_call *c;
  char batch[JOBQ_ID_SIZE];
  size_t total;  /* users x types */
  int cached;    /* of them, dedupe hits: today's podcast was there already */
  uv_timer_t timer;
  int ticks;
};

typedef struct {
  size_t n;
  const char **kinds, **payloads;
  jobq_submit_opts_t **so;
  char *ids;
  int *dup;
  int max_running;
  char batch[JOBQ_ID_SIZE];
  int rc;
  char err[512];
} cron_work;

static void cron_work_free(cron_work *w) {
  if (w == NULL) return;
  for (size_t i = 0; i < w->n; i++) {
    if (w->payloads) free((char *)w->payloads[i]);
    if (w->so) jobq_submit_opts_free(w->so[i]);
  }
  free(w->kinds);
  free(w->payloads);
  free(w->so);
  free(w->ids);
  free(w->dup);
  free(w);
}

static void on_wait_closed(uv_handle_t *h) { free(h->data); }

/* Answers the summary (or, with summary NULL, that the server stops), ends
 * the hold and frees w. */
static void cron_finish(cron_wait *w, int succeeded, int failed, json_t *errors) {
  for (cron_wait **p = &P.waits; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  srv_call *c = w->c;
  if (errors) {
    /* successful: the members that succeeded, and the podcasts that were
     * cached already (they hold today's key: queued, running or done). */
    reply(c, 200,
                   json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:o}", "success", 1, "batchId",
                             w->batch, "total", (json_int_t)w->total, "successful",
                             (json_int_t)(succeeded + w->cached), "failed", (json_int_t)failed,
                             "cached", (json_int_t)w->cached, "errors", errors));
  } else {
    srv_reply_error(c, 503, "shutting_down",
                    "the server is shutting down; batch %s goes on in the queue", w->batch);
  }
  srv_release(c);
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, on_wait_closed);
}

/* The summary of a finished batch from its snapshot (read on the loop). */
static void finish_from_batch(cron_wait *w, const jobq_batch_t *b) {
  json_t *errors = json_array();
  for (int i = 0; i < jobq_batch_error_count(b); i++)
    json_array_append_new(errors, json_pack("{s:s, s:s}", "jobId", jobq_batch_error_job_id(b, i),
                                            "error", jobq_batch_error(b, i)));
  cron_finish(w, (int)jobq_batch_count(b, JOBQ_SUCCEEDED),
              (int)(jobq_batch_count(b, JOBQ_FAILED) + jobq_batch_count(b, JOBQ_CANCELLED)),
              errors);
}

/* 1 (and answered) if the batch is done. */
static int check_batch(cron_wait *w) {
  jobq_batch_t *b = NULL;
  if (jobq_batch_get(P.s->q, w->batch, &b) != 0) return 0; /* try at the next event or tick */
  int done = jobq_batch_done(b);
  if (done) finish_from_batch(w, b);
  jobq_batch_free(b);
  return done;
}

static void on_cron_tick(uv_timer_t *t) {
  cron_wait *w = t->data;
  if (P.s->draining) {
    cron_finish(w, 0, 0, NULL);
    return;
  }
  if (w->c->req == NULL) { /* the client went away: nobody to tell */
    cron_finish(w, 0, 0, json_array());
    return;
  }
  if (++w->ticks % CRON_REREAD_TICKS == 0) check_batch(w);
}

/* Every event of the queue; only a batch's end matters here. */
static void on_event(const jobq_event_t *ev, void *ud) {
  (void)ud;
  if (jobq_event_type(ev) != JOBQ_EVENT_BATCH_DONE) return;
  const char *id = jobq_event_batch_id(ev);
  for (cron_wait *w = P.waits; w && id; w = w->next) {
    if (strcmp(w->batch, id) != 0) continue;
    /* {"batchId", "total", "succeeded", "failed", "cancelled", "errors": [{"jobId", "error"}]} */
    const char *res = jobq_event_result(ev);
    json_t *r = res ? json_loads(res, 0, NULL) : NULL;
    json_t *errs = json_object_get(r, "errors");
    if (r && json_is_array(errs)) {
      cron_finish(w,
                  (int)json_integer_value(json_object_get(r, "succeeded")),
                  (int)(json_integer_value(json_object_get(r, "failed")) +
                        json_integer_value(json_object_get(r, "cancelled"))),
                  json_incref(errs));
    } else {
      check_batch(w); /* no summary in the event: read the batch */
    }
    json_decref(r);
    return;
  }
}

static void cron_cleanup(srv_call *c) { cron_work_free(c->ud); }

static void cron_run(srv_call *c) {
  cron_work *w = c->ud;
  w->rc = jobq_batch_submit(c->s->q, w->n, w->kinds, w->payloads,
                            (const jobq_submit_opts_t *const *)w->so, w->max_running, w->batch,
                            w->ids, w->dup);
  if (w->rc < 0) snprintf(w->err, sizeof w->err, "%s", jobq_last_error());
}

static void cron_after(srv_call *c) {
  cron_work *w = c->ud;
  c->ud = NULL;
  if (w->rc < 0) {
    srv_reply_jobq(c, w->rc, w->err);
    cron_work_free(w);
    return;
  }
  cron_wait *cw = calloc(1, sizeof *cw);
  if (cw == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory; batch %s was submitted", w->batch);
    cron_work_free(w);
    return;
  }
  cw->c = c;
  cw->total = w->n;
  cw->cached = w->rc;
  snprintf(cw->batch, sizeof cw->batch, "%s", w->batch);
  cron_work_free(w);
  uv_timer_init(c->s->loop, &cw->timer);
  cw->timer.data = cw;
  srv_hold(c);
  cw->next = P.waits;
  P.waits = cw;
  /* The batch may have ended before this ran (every podcast cached, or
   * quick workers); its event then came already. Nothing can come between
   * this read and the wait: both run on the loop. */
  if (!check_batch(cw)) uv_timer_start(&cw->timer, on_cron_tick, CRON_TICK_MS, CRON_TICK_MS);
}

static void pregenerate(srv_call *c) {
  if (P.n_users == 0 || P.n_types == 0) {
    /* Nothing to make is not an error for a cron trigger: it would page
     * someone every night. The message says why. */
    reply(c, 200,
                   json_pack("{s:b, s:i, s:i, s:i, s:i, s:[], s:s}", "success", 1, "total", 0,
                             "successful", 0, "failed", 0, "cached", 0, "errors", "message",
                             "no users or types configured (the configuration's "
                             "\"pregenerate\" member): nothing to generate"));
    return;
  }
  char force_q[8];
  int hf = srv_query(c, "force", force_q, sizeof force_q);
  if (hf < 0) return;
  int force = hf == 1 && (strcmp(force_q, "1") == 0 || strcmp(force_q, "true") == 0);
  /* Today's key in the service's zone, and its end: the cache lasts the day
   * however late the batch finishes. */
  int64_t now = jobq_now(c->s->q), until = 0;
  char date[JOBQ_DATE_SIZE];
  int rc = jobq_local_date(P.tz, now, date, sizeof date);
  if (rc == 0) rc = jobq_end_of_day(P.tz, now, &until);
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  cron_work *w = calloc(1, sizeof *w);
  size_t n = P.n_users * P.n_types;
  if (w) {
    w->kinds = calloc(n, sizeof *w->kinds);
    w->payloads = calloc(n, sizeof *w->payloads);
    w->so = calloc(n, sizeof *w->so);
    w->ids = malloc(n * JOBQ_ID_SIZE);
    w->dup = calloc(n, sizeof *w->dup);
    w->n = n;
    w->max_running = P.max_running;
  }
  if (w == NULL || !w->kinds || !w->payloads || !w->so || !w->ids || !w->dup) {
    cron_work_free(w);
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    const char *user = P.users[i / P.n_types], *type = P.types[i % P.n_types];
    char title[200], text[600], key[600];
    snprintf(title, sizeof title, "The %s briefing", type);
    snprintf(text, sizeof text,
             "Good morning %s. Here is your %s podcast. The notes of the day are in, "
             "and here is what matters.",
             user, type);
    snprintf(key, sizeof key, "podcast:%s:%s:%s", user, type, date);
    json_t *p = json_pack("{s:s, s:s, s:s, s:s}", "title", title, "noteContent", text, "userId",
                          user, "type", type);
    w->kinds[i] = KIND;
    w->payloads[i] = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    w->so[i] = jobq_submit_opts_new();
    if (w->payloads[i] == NULL || w->so[i] == NULL) rc = JOBQ_ENOMEM;
    if (rc == 0) rc = jobq_submit_opts_set_owner(w->so[i], user);
    if (rc == 0) rc = jobq_submit_opts_set_dedupe_until(w->so[i], key, until);
    if (rc == 0) rc = jobq_submit_opts_set_force(w->so[i], force);
  }
  if (rc != 0) {
    cron_work_free(w);
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  c->ud = w;
  srv_work(c, cron_run, cron_after, cron_cleanup);
}

/* ---- setup ---- */

static char *xstrdup_or_die(const char *s) {
  char *d = strdup(s);
  if (d == NULL) {
    fprintf(stderr, "jobq-server: out of memory\n");
    exit(2);
  }
  return d;
}

/* A list of non-empty strings into *out: 0, or -1 after printing why. */
static int string_list(const json_t *v, const char *what, char ***out, size_t *n) {
  if (v == NULL) return 0;
  if (!json_is_array(v)) {
    fprintf(stderr, "jobq-server: pregenerate.%s: a list of strings\n", what);
    return -1;
  }
  *out = calloc(json_array_size(v) + 1, sizeof **out);
  if (*out == NULL) return -1;
  size_t i;
  const json_t *e;
  json_array_foreach(v, i, e) {
    const char *s = json_string_value(e);
    if (s == NULL || *s == '\0' || strlen(s) > 200 || strchr(s, ':')) {
      fprintf(stderr,
              "jobq-server: pregenerate.%s[%zu]: a non-empty string of at most 200 bytes "
              "without ':' (it is part of a cache key)\n",
              what, i);
      return -1;
    }
    (*out)[(*n)++] = xstrdup_or_die(s);
  }
  return 0;
}

/* "pregenerate": {"users": [...], "types": [...], "tz": "UTC", "maxRunning": 5} */
static int read_pregenerate(const json_t *pg) {
  P.tz = xstrdup_or_die("UTC");
  P.max_running = 5;
  if (pg == NULL) return 0;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)pg, key, v) {
    if (strcmp(key, "users") == 0) {
      if (string_list(v, "users", &P.users, &P.n_users)) return -1;
    } else if (strcmp(key, "types") == 0) {
      if (string_list(v, "types", &P.types, &P.n_types)) return -1;
    } else if (strcmp(key, "tz") == 0 && json_is_string(v)) {
      free(P.tz);
      P.tz = xstrdup_or_die(json_string_value(v));
      char date[JOBQ_DATE_SIZE];
      if (jobq_local_date(P.tz, 0, date, sizeof date) != 0) {
        fprintf(stderr, "jobq-server: pregenerate.tz: %s\n", jobq_last_error());
        return -1;
      }
    } else if (strcmp(key, "maxRunning") == 0 && json_is_integer(v) &&
               json_integer_value(v) >= 0 && json_integer_value(v) <= 100000) {
      P.max_running = (int)json_integer_value(v);
    } else {
      fprintf(stderr,
              "jobq-server: pregenerate: unknown member or wrong type: \"%s\" (users, types: "
              "lists of strings; tz: a zone name; maxRunning: 0..100000)\n",
              key);
      return -1;
    }
  }
  if (P.types == NULL) { /* the example's default types */
    P.types = calloc(3, sizeof *P.types);
    if (P.types == NULL) return -1;
    P.types[P.n_types++] = xstrdup_or_die("daily");
    P.types[P.n_types++] = xstrdup_or_die("weekly");
  }
  return 0;
}

/* "podcast": {"cacheTtlMs": N} */
static int read_podcast(const json_t *pc) {
  P.cache_ttl_ms = DEFAULT_CACHE_TTL_MS;
  if (pc == NULL) return 0;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)pc, key, v) {
    if (strcmp(key, "cacheTtlMs") == 0 && json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= INT64_C(315360000000)) {
      P.cache_ttl_ms = json_integer_value(v);
    } else {
      fprintf(stderr,
              "jobq-server: podcast: unknown member or wrong type: \"%s\" (cacheTtlMs: "
              "0..315360000000)\n",
              key);
      return -1;
    }
  }
  return 0;
}

/* Registers the "podcast" pipeline: 0, 1 (printed) on a failure, or 0 with
 * a warning when the offline default cannot run in this build or on this
 * machine: the server then only queues podcasts, for workers elsewhere. */
static int register_pipeline(srv_t *s) {
  char *cfg = NULL;
  if (s->conf.pipeline_json) {
    cfg = xstrdup_or_die(s->conf.pipeline_json);
  } else {
    json_t *d = json_pack("{s:{s:s}, s:{s:s, s:s}, s:{s:s, s:s}}", "script", "provider",
                          "template", "tts", "provider", "espeak", "format", "wav", "upload",
                          "provider", "local", "dir", s->conf.audio_dir);
    cfg = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
  }
  jobq_pipeline_t *p = jobq_pipeline_new();
  int rc = p && cfg ? jobq_pipeline_add_config(p, cfg) : JOBQ_ENOMEM;
  free(cfg);
  if (rc != 0 && !s->conf.pipeline_json && (rc == JOBQ_ENOTSUP || rc == JOBQ_EIO)) {
    fprintf(stderr,
            "jobq-server: warning: the offline podcast pipeline cannot run here (%s); podcast "
            "jobs are queued for other workers (set \"pipeline\" in the configuration)\n",
            jobq_last_error());
    jobq_pipeline_free(p);
    return 0;
  }
  if (rc == 0) {
    /* As examples/podcast.c: three attempts, backoff, a 10 min timeout;
     * and no more podcasts at once than --workers, so that queued ones do
     * not all start and crowd the thread pool that submits use too. */
    jobq_kind_opts_t *ko = jobq_kind_opts_new();
    rc = ko ? jobq_kind_opts_set_max_attempts(ko, 3) : JOBQ_ENOMEM;
    if (rc == 0) rc = jobq_kind_opts_set_backoff(ko, 2000, 60000, 0.2);
    if (rc == 0) rc = jobq_kind_opts_set_timeout(ko, 600000);
    if (rc == 0 && s->conf.workers > 0) rc = jobq_kind_opts_set_concurrency(ko, s->conf.workers);
    if (rc == 0) rc = jobq_register_pipeline(s->q, KIND, p, ko);
    jobq_kind_opts_free(ko);
  }
  jobq_pipeline_free(p);
  if (rc != 0) {
    fprintf(stderr, "jobq-server: the podcast pipeline%s: %s (%s)\n",
            s->conf.pipeline_json ? " (configuration's \"pipeline\")" : "", jobq_last_error(),
            jobq_err_name(rc));
    return 1;
  }
  return 0;
}

int srv_podcast_setup(srv_t *s) {
  P.s = s;
  if (uv_mutex_init(&P.avg_lock) != 0) return 1;
  if (read_podcast(s->conf.podcast) != 0 || read_pregenerate(s->conf.pregenerate) != 0) return 1;
  if (!s->conf.submit_only && register_pipeline(s) != 0) return 1;
  /* The local upload's file:// URLs name the directory's absolute path
   * (created by the pipeline above; a submit-only server may not have it:
   * then the path it will have). */
  if (s->conf.audio_dir) {
    char buf[PATH_MAX], cwd[PATH_MAX];
    if (realpath(s->conf.audio_dir, buf) != NULL) {
      P.audio_root = xstrdup_or_die(buf);
    } else if (s->conf.audio_dir[0] == '/') {
      P.audio_root = xstrdup_or_die(s->conf.audio_dir);
    } else if (getcwd(cwd, sizeof cwd) != NULL) {
      size_t n = strlen(cwd) + strlen(s->conf.audio_dir) + 2;
      P.audio_root = malloc(n);
      if (P.audio_root) snprintf(P.audio_root, n, "%s/%s", cwd, s->conf.audio_dir);
    }
    size_t n = P.audio_root ? strlen(P.audio_root) : 0;
    while (n > 1 && P.audio_root[n - 1] == '/') P.audio_root[--n] = '\0';
  }
  int rc = jobq_subscribe(s->q, on_event, NULL);
  if (rc != 0) {
    fprintf(stderr, "jobq-server: cannot subscribe to the queue's events: %s\n",
            jobq_last_error());
    return 1;
  }
  return 0;
}

const srv_route srv_routes_podcast[] = {
    {"POST", "/api/podcast/generate/async", SRV_AUTH_KEY, generate},
    {"GET", "/api/podcast/jobs/user/:userId", SRV_AUTH_KEY, list_user},
    {"GET", "/api/podcast/jobs/:jobId", SRV_AUTH_KEY, get_podcast},
    {"POST", "/api/cron/pregenerate", SRV_AUTH_CRON, pregenerate},
    {NULL, NULL, 0, NULL},
};
