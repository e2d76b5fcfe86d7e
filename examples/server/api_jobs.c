/* jobq-server's general API for any kind: /v1/jobs (submit, get, cancel,
 * list), the job's webhook deliveries, /v1/stats, /metrics and /healthz.
 * The shapes are in examples/server/openapi.json and docs/server.md. */
#include "server.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void srv_iso8601(int64_t ms, char buf[32]) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

json_t *srv_job_json(const jobq_job_t *job) {
  char *text = jobq_job_to_json(job);
  if (text == NULL) return NULL;
  json_t *j = json_loads(text, 0, NULL);
  jobq_free(text);
  return j;
}

int srv_may_see(const srv_call *c, const jobq_job_t *job) {
  if (c->admin) return 1;
  const char *o = jobq_job_owner(job);
  return o && c->owner && strcmp(o, c->owner) == 0;
}

/* Reads job :id (param 0) for the caller: the job, or NULL after answering
 * 404 (unknown, or another owner's: the same answer, so that ids of other
 * owners cannot be probed) or the storage error. */
static jobq_job_t *job_for_caller(srv_call *c) {
  char id[JOBQ_ID_SIZE + 1];
  if (srv_param(c, 0, id, sizeof id) != 0) {
    srv_reply_error(c, 404, "JOBQ_ENOTFOUND", "no job with that id");
    return NULL;
  }
  jobq_job_t *job = NULL;
  int rc = jobq_get(c->s->q, id, &job);
  if (rc == JOBQ_EINVAL || rc == JOBQ_ENOTFOUND || (rc == 0 && !srv_may_see(c, job))) {
    jobq_job_free(job);
    srv_reply_error(c, 404, "JOBQ_ENOTFOUND", "no job with id '%s'", id);
    return NULL;
  }
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return NULL;
  }
  return job;
}

/* ---- POST /v1/jobs ---- */

typedef struct {
  char *kind, *payload;
  jobq_submit_opts_t *so;
  char id[JOBQ_ID_SIZE];
  int rc;
  char err[512];
  jobq_job_t *job;
} submit_work;

static void submit_free(submit_work *w) {
  if (w == NULL) return;
  free(w->kind);
  free(w->payload);
  jobq_submit_opts_free(w->so);
  jobq_job_free(w->job);
  free(w);
}

static void submit_cleanup(srv_call *c) { submit_free(c->ud); }

static void submit_run(srv_call *c) {
  submit_work *w = c->ud;
  w->rc = jobq_submit(c->s->q, w->kind, w->payload, w->so, w->id);
  if (w->rc < 0) snprintf(w->err, sizeof w->err, "%s", jobq_last_error());
  else if (jobq_get(c->s->q, w->id, &w->job) != 0) w->job = NULL;
}

static void submit_after(srv_call *c) {
  submit_work *w = c->ud;
  c->ud = NULL;
  if (w->rc < 0) {
    srv_reply_jobq(c, w->rc, w->err);
  } else {
    json_t *body = json_pack("{s:b, s:s, s:b}", "success", 1, "id", w->id, "deduplicated",
                             w->rc == 1);
    if (w->job) json_object_set_new(body, "job", srv_job_json(w->job));
    srv_reply_json(c, w->rc == 1 ? 200 : 202, body);
  }
  submit_free(w);
}

/* A member that must be a string (or absent): 0, or -1 after answering 400. */
static int opt_string(srv_call *c, json_t *o, const char *name, const char **out) {
  json_t *v = json_object_get(o, name);
  *out = NULL;
  if (v == NULL || json_is_null(v)) return 0;
  if (!json_is_string(v)) {
    srv_reply_error(c, 400, "invalid_field", "'%s' must be a string", name);
    return -1;
  }
  *out = json_string_value(v);
  return 0;
}

static int opt_int(srv_call *c, json_t *o, const char *name, json_int_t lo, json_int_t hi,
                   int *present, json_int_t *out) {
  json_t *v = json_object_get(o, name);
  *present = 0;
  if (v == NULL || json_is_null(v)) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    srv_reply_error(c, 400, "invalid_field", "'%s' must be an integer in %lld..%lld", name,
                    (long long)lo, (long long)hi);
    return -1;
  }
  *present = 1;
  *out = json_integer_value(v);
  return 0;
}

/* Applies a libjobq setter's result: 0, or -1 after answering 400. */
static int setter(srv_call *c, int rc) {
  if (rc == 0) return 0;
  srv_reply_error(c, 400, "invalid_field", "%s", jobq_last_error());
  return -1;
}

/* "webhook": {"url", "endpoint", "events"} or a list of them: the job's
 * own webhook URLs (jobq_submit_opts_add_webhook). endpoint names the
 * JOBQ_WEBHOOK_SECRET_<NAME> that signs (default: the only one there is);
 * events, a list of "succeeded", "failed", "cancelled", "progress"
 * (default: the endpoint's). 0, or -1 after answering 400. */
static int add_webhooks(srv_call *c, json_t *body, jobq_submit_opts_t *so) {
  json_t *v = json_object_get(body, "webhook");
  if (v == NULL || json_is_null(v)) return 0;
  json_t *one = json_is_array(v) ? NULL : v;
  size_t n = json_is_array(v) ? json_array_size(v) : 1;
  for (size_t i = 0; i < n; i++) {
    json_t *h = one ? one : json_array_get(v, i);
    const char *url = json_string_value(json_object_get(h, "url"));
    json_t *ep = json_object_get(h, "endpoint"), *ev = json_object_get(h, "events");
    if (!json_is_object(h) || url == NULL || (ep && !json_is_string(ep)) ||
        (ev && !json_is_array(ev))) {
      srv_reply_error(c, 400, "invalid_field",
                      "'webhook' is {\"url\": string, \"endpoint\": string, \"events\": [...]} "
                      "or a list of them");
      return -1;
    }
    int mask = 0;
    size_t j;
    json_t *e;
    json_array_foreach(ev, j, e) {
      const char *name = json_string_value(e);
      int bit = name == NULL                        ? 0
                : strcmp(name, "succeeded") == 0    ? JOBQ_WEBHOOK_ON_SUCCEEDED
                : strcmp(name, "failed") == 0       ? JOBQ_WEBHOOK_ON_FAILED
                : strcmp(name, "cancelled") == 0    ? JOBQ_WEBHOOK_ON_CANCELLED
                : strcmp(name, "progress") == 0     ? JOBQ_WEBHOOK_ON_PROGRESS
                                                    : 0;
      if (bit == 0) {
        srv_reply_error(c, 400, "invalid_field",
                        "'webhook.events' lists succeeded, failed, cancelled, progress");
        return -1;
      }
      mask |= bit;
    }
    const char *endpoint = ep ? json_string_value(ep) : c->s->default_endpoint;
    if (endpoint == NULL) {
      srv_reply_error(c, 400, "invalid_field",
                      "'webhook.endpoint' names the endpoint whose secret signs: the server has %s",
                      c->s->n_endpoints ? "several (JOBQ_WEBHOOK_SECRET_<NAME>)"
                                        : "none (set JOBQ_WEBHOOK_SECRET_<NAME>)");
      return -1;
    }
    if (setter(c, jobq_submit_opts_add_webhook(so, url, endpoint, mask))) return -1;
  }
  return 0;
}

static void post_job(srv_call *c) {
  json_t *body = srv_body_object(c);
  if (body == NULL) return;
  submit_work *w = calloc(1, sizeof *w);
  const char *kind, *owner, *key;
  json_int_t n;
  int has;
  if (w == NULL || (w->so = jobq_submit_opts_new()) == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    goto out;
  }
  if (opt_string(c, body, "kind", &kind) || opt_string(c, body, "owner", &owner) ||
      opt_string(c, body, "dedupeKey", &key))
    goto out;
  if (kind == NULL) {
    srv_reply_error(c, 400, "invalid_field", "'kind' is required: the kind of job to run");
    goto out;
  }
  if (owner && !c->admin && strcmp(owner, c->owner) != 0) {
    srv_reply_error(c, 403, "forbidden", "this key submits for owner '%s' only", c->owner);
    goto out;
  }
  if (!owner) owner = c->owner;
  if (owner && setter(c, jobq_submit_opts_set_owner(w->so, owner))) goto out;
  if (opt_int(c, body, "priority", -1000000, 1000000, &has, &n) ||
      (has && setter(c, jobq_submit_opts_set_priority(w->so, (int)n))))
    goto out;
  if (opt_int(c, body, "delayMs", 0, INT64_C(315360000000), &has, &n) ||
      (has && setter(c, jobq_submit_opts_set_delay(w->so, n))))
    goto out;
  if (opt_int(c, body, "runAt", 0, INT64_MAX, &has, &n) ||
      (has && setter(c, jobq_submit_opts_set_run_at(w->so, n))))
    goto out;
  if (opt_int(c, body, "maxAttempts", 1, 1000, &has, &n) ||
      (has && setter(c, jobq_submit_opts_set_max_attempts(w->so, (int)n))))
    goto out;
  if (key) {
    json_int_t ttl = 0;
    if (opt_int(c, body, "dedupeTtlMs", 0, INT64_C(315360000000), &has, &ttl) ||
        setter(c, jobq_submit_opts_set_dedupe(w->so, key, ttl)))
      goto out;
    json_t *f = json_object_get(body, "force");
    if (json_is_true(f) && setter(c, jobq_submit_opts_set_force(w->so, 1))) goto out;
  }
  if (add_webhooks(c, body, w->so) != 0) goto out;
  json_t *p = json_object_get(body, "payload");
  w->payload = p ? json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
  w->kind = strdup(kind);
  if (w->payload == NULL || w->kind == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    goto out;
  }
  c->ud = w;
  w = NULL;
  srv_work(c, submit_run, submit_after, submit_cleanup);
out:
  submit_free(w);
  json_decref(body);
}

/* ---- GET /v1/jobs/:id ---- */

static void get_job(srv_call *c) {
  jobq_job_t *job = job_for_caller(c);
  if (job == NULL) return;
  char buf[16];
  int q = srv_query(c, "wait", buf, sizeof buf);
  if (q < 0) {
    jobq_job_free(job);
    return;
  }
  if (q == 1) {
    char *end;
    long secs = strtol(buf, &end, 10);
    if (*end || end == buf || secs < 0 || secs > 60) {
      jobq_job_free(job);
      srv_reply_error(c, 400, "bad_query", "'wait' is a number of seconds, 0..60");
      return;
    }
    if (secs > 0 && !jobq_state_is_terminal(jobq_job_state(job))) {
      srv_long_poll(c, job, (int)secs); /* takes job */
      return;
    }
  }
  srv_reply_json(c, 200, json_pack("{s:b, s:o}", "success", 1, "job", srv_job_json(job)));
  jobq_job_free(job);
}

/* ---- DELETE /v1/jobs/:id ---- */

typedef struct {
  char id[JOBQ_ID_SIZE];
  int rc;
  char err[512];
  jobq_job_t *job;
} cancel_work;

static void cancel_cleanup(srv_call *c) {
  cancel_work *w = c->ud;
  jobq_job_free(w->job);
  free(w);
}

static void cancel_run(srv_call *c) {
  cancel_work *w = c->ud;
  w->rc = jobq_cancel(c->s->q, w->id);
  if (w->rc < 0) snprintf(w->err, sizeof w->err, "%s", jobq_last_error());
  else if (jobq_get(c->s->q, w->id, &w->job) != 0) w->job = NULL;
}

static void cancel_after(srv_call *c) {
  cancel_work *w = c->ud;
  c->ud = NULL;
  if (w->rc < 0) {
    srv_reply_jobq(c, w->rc, w->err);
  } else {
    json_t *body = json_pack("{s:b}", "success", 1);
    if (w->job) json_object_set_new(body, "job", srv_job_json(w->job));
    srv_reply_json(c, 200, body);
  }
  jobq_job_free(w->job);
  free(w);
}

static void delete_job(srv_call *c) {
  jobq_job_t *job = job_for_caller(c);
  if (job == NULL) return;
  int st = jobq_job_state(job);
  if (jobq_state_is_terminal(st)) {
    srv_reply_error(c, 409, "JOBQ_ESTATE", "job '%s' has already %s", jobq_job_id(job),
                    jobq_state_name(st));
    jobq_job_free(job);
    return;
  }
  cancel_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    jobq_job_free(job);
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  snprintf(w->id, sizeof w->id, "%s", jobq_job_id(job));
  jobq_job_free(job);
  c->ud = w;
  srv_work(c, cancel_run, cancel_after, cancel_cleanup);
}

/* ---- GET /v1/jobs ---- */

static int state_of(const char *name) {
  for (int s = 0; s <= JOBQ_CANCELLED; s++)
    if (strcmp(jobq_state_name(s), name) == 0) return s;
  return -1;
}

static void list_jobs(srv_call *c) {
  char owner[256], state[32], kind[128], cursor[512], limit[16], order[16];
  int ho, hs, hk, hc, hl, hord;
  if ((ho = srv_query(c, "owner", owner, sizeof owner)) < 0 ||
      (hs = srv_query(c, "state", state, sizeof state)) < 0 ||
      (hk = srv_query(c, "kind", kind, sizeof kind)) < 0 ||
      (hc = srv_query(c, "cursor", cursor, sizeof cursor)) < 0 ||
      (hl = srv_query(c, "limit", limit, sizeof limit)) < 0 ||
      (hord = srv_query(c, "order", order, sizeof order)) < 0)
    return;
  if (!c->admin) {
    if (ho && strcmp(owner, c->owner) != 0) {
      srv_reply_error(c, 403, "forbidden", "this key lists owner '%s' only", c->owner);
      return;
    }
    snprintf(owner, sizeof owner, "%s", c->owner);
    ho = 1;
  }
  jobq_filter_t *f = jobq_filter_new();
  if (f == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  int rc = 0;
  if (ho) rc = jobq_filter_set_owner(f, owner);
  if (rc == 0 && hk) rc = jobq_filter_set_kind(f, kind);
  if (rc == 0 && hs) {
    int st = state_of(state);
    if (st < 0) {
      jobq_filter_free(f);
      srv_reply_error(c, 400, "bad_query",
                      "'state' is one of queued, running, succeeded, failed, cancelled");
      return;
    }
    rc = jobq_filter_set_state(f, st);
  }
  if (rc == 0 && hl) {
    char *end;
    long n = strtol(limit, &end, 10);
    /* Clamped into int's range only: jobq_filter_set_limit says the range. */
    if (n > INT_MAX) n = INT_MAX;
    if (n < INT_MIN) n = INT_MIN;
    if (*end || end == limit) {
      jobq_filter_free(f);
      srv_reply_error(c, 400, "bad_query", "'limit' is a number of jobs");
      return;
    }
    rc = jobq_filter_set_limit(f, (int)n);
  }
  /* Newest first unless ?order=oldest: what a status page wants. */
  if (rc == 0) rc = jobq_filter_set_newest_first(f, !(hord && strcmp(order, "oldest") == 0));
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
    json_array_append_new(jobs, srv_job_json(jobq_page_job(page, i)));
  const char *next = jobq_page_next_cursor(page);
  json_t *body = json_pack("{s:b, s:o, s:o}", "success", 1, "jobs", jobs, "nextCursor",
                           next ? json_string(next) : json_null());
  jobq_page_free(page);
  srv_reply_json(c, 200, body);
}

/* ---- GET /v1/jobs/:id/deliveries ---- */

static void get_deliveries(srv_call *c) {
  jobq_job_t *job = job_for_caller(c);
  if (job == NULL) return;
  char cursor[512], limit[16];
  int hc = srv_query(c, "cursor", cursor, sizeof cursor), hl = 0;
  if (hc < 0 || (hl = srv_query(c, "limit", limit, sizeof limit)) < 0) {
    jobq_job_free(job);
    return;
  }
  long n = 100;
  if (hl) {
    char *end;
    n = strtol(limit, &end, 10);
    if (*end || end == limit || n < 1 || n > 1000) {
      jobq_job_free(job);
      srv_reply_error(c, 400, "bad_query", "'limit' is a number of deliveries, 1..1000");
      return;
    }
  }
  jobq_deliveries_t *d = NULL;
  int rc = jobq_webhook_deliveries(c->s->q, jobq_job_id(job), -1, (int)n, hc ? cursor : NULL, &d);
  jobq_job_free(job);
  if (rc == JOBQ_EINVAL) {
    srv_reply_error(c, 400, "bad_query", "%s", jobq_last_error());
    return;
  }
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  char *text = jobq_deliveries_to_json(d);
  jobq_deliveries_free(d);
  /* {"deliveries": [...], "nextCursor": ...}, with success added */
  json_t *body = text ? json_loads(text, 0, NULL) : NULL;
  jobq_free(text);
  if (body == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  json_object_set_new(body, "success", json_true());
  srv_reply_json(c, 200, body);
}

/* ---- stats, metrics, health ---- */

static void get_stats(srv_call *c) {
  jobq_stats_t *st = NULL;
  int rc = jobq_stats(c->s->q, &st);
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  char *text = jobq_stats_to_json(st);
  jobq_stats_free(st);
  json_t *stats = text ? json_loads(text, 0, NULL) : NULL;
  jobq_free(text);
  if (stats == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  srv_reply_json(c, 200, json_pack("{s:b, s:o}", "success", 1, "stats", stats));
}

static void get_metrics(srv_call *c) {
  jobq_stats_t *st = NULL;
  int rc = jobq_stats(c->s->q, &st);
  if (rc != 0) {
    srv_reply_jobq(c, rc, NULL);
    return;
  }
  char *text = jobq_stats_to_prometheus(st);
  jobq_stats_free(st);
  if (text == NULL) {
    srv_reply_error(c, 500, "JOBQ_ENOMEM", "out of memory");
    return;
  }
  srv_reply_raw(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
  jobq_free(text);
}

static void get_health(srv_call *c) {
  int rc = jobq_health(c->s->q);
  double up = (double)(uv_hrtime() - c->s->started) / 1e9;
  if (rc == 0) {
    srv_reply_json(c, 200, json_pack("{s:s, s:f}", "status", "ok", "uptimeSeconds", up));
  } else {
    srv_reply_json(c, 503,
                   json_pack("{s:s, s:s, s:s}", "status", "failing", "code", jobq_err_name(rc),
                             "message", jobq_last_error()));
  }
}

const srv_route srv_routes_jobs[] = {
    {"POST", "/v1/jobs", SRV_AUTH_KEY, post_job},
    {"GET", "/v1/jobs", SRV_AUTH_KEY, list_jobs},
    {"GET", "/v1/jobs/:id", SRV_AUTH_KEY, get_job},
    {"DELETE", "/v1/jobs/:id", SRV_AUTH_KEY, delete_job},
    {"GET", "/v1/jobs/:id/deliveries", SRV_AUTH_KEY, get_deliveries},
    {"GET", "/v1/stats", SRV_AUTH_ADMIN, get_stats},
    {"GET", "/metrics", SRV_AUTH_ADMIN, get_metrics},
    {"GET", "/healthz", SRV_AUTH_NONE, get_health},
    {NULL, NULL, 0, NULL},
};
