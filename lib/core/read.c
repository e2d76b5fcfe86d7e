/* Reading: snapshots, pages, long polls. A snapshot is storage's record with
 * what only this process knows laid over it: the live progress of attempts
 * running here (storage gets it coalesced), and estimates. */
#include "core/internal.h"
#include "core/stats.h"
#include "util/sbuf.h"

#include <stdlib.h>
#include <string.h>

void jobq__job_overlay(jobq_t *q, jobq_job_t *job, const jobq_storage_kind_stats *ks) {
  jobq_storage_job *r = &job->rec;
  job->eta_ms = -1;
  kind_reg *k = r->kind ? jobq__kind_find(q, r->kind) : NULL;
  if (r->max_attempts == 0 && k) r->max_attempts = k->ko.max_attempts;
  if (r->state == JOBQ_RUNNING) {
    jobq_ctx_t *ctx = jobq__map_get(&q->running.map, r->id);
    if (ctx && ctx->rec.attempts == r->attempts) {
      r->progress = ctx->progress;
      if (ctx->step && (r->step == NULL || strcmp(r->step, ctx->step) != 0)) {
        char *s = jobq__strdup(ctx->step);
        if (s) {
          free(r->step);
          r->step = s;
        }
      }
      if (atomic_load(&ctx->cancelled) && !jobq__attempt_timed_out(ctx)) r->cancel_requested = 1;
    }
  }
  job->eta_ms = jobq__eta(q, r, ks);
}

/* The kind's shared stats for a queued job's ETA (a few key lookups), or
 * NULL: the job is not waiting in line, or the backend keeps no stats, or
 * they cannot be read now (the ETA then uses what this process knows). */
static jobq_storage_kind_stats *eta_stats(jobq_t *q, const jobq_storage_job *r) {
  if (r->state != JOBQ_QUEUED || r->position < 0 || r->kind == NULL || q->ops->version < 3 ||
      q->ops->stats_read == NULL)
    return NULL;
  jobq_storage_kind_stats *v = NULL;
  size_t n = 0;
  if (q->ops->stats_read(q->st, r->kind, 0, jobq__now(q), &v, &n) != 0) return NULL;
  if (n == 1) return v;
  jobq__kind_stats_free(v, n);
  return NULL;
}

static int begin_op(jobq_t *q, const char *fn) {
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
  }
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  return 0;
}

/* Ends a storage call; leaves mu held. */
static void end_op(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
}

static int check_id(const char *fn, const char *id) {
  if (id == NULL || *id == '\0') return jobq__err(JOBQ_EINVAL, "%s: id is NULL or empty", fn);
  if (strlen(id) != JOBQ_ID_SIZE - 1) return jobq__err(JOBQ_ENOTFOUND, "%s: no job '%.64s'", fn, id);
  return 0;
}

static int get(jobq_t *q, const char *fn, const char *id, jobq_job_t **out) {
  jobq_job_t *job = calloc(1, sizeof *job);
  if (job == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  int rc = begin_op(q, fn);
  if (rc) {
    free(job);
    return rc;
  }
  rc = q->ops->get(q->st, id, jobq__now(q), &job->rec);
  jobq_storage_kind_stats *ks = rc == 0 ? eta_stats(q, &job->rec) : NULL;
  end_op(q);
  if (rc == 0) jobq__job_overlay(q, job, ks);
  uv_mutex_unlock(&q->mu);
  jobq__kind_stats_free(ks, ks ? 1 : 0);
  if (rc) {
    free(job);
    if (rc == JOBQ_ENOTFOUND) return jobq__err(rc, "%s: no job %s", fn, id);
    return rc;
  }
  *out = job;
  return 0;
}

JOBQ_API int jobq_get(jobq_t *q, const char *id, jobq_job_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_get: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_get");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_get: out is NULL");
  int rc = check_id("jobq_get", id);
  if (rc) return rc;
  return get(q, "jobq_get", id, out);
}

JOBQ_API int jobq_get_by_key(jobq_t *q, const char *key, jobq_job_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_get_by_key: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_get_by_key");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_get_by_key: out is NULL");
  if (key == NULL || key[0] == '\0')
    return jobq__err(JOBQ_EINVAL, "jobq_get_by_key: key is NULL or empty");
  size_t n = strlen(key);
  if (n > JOBQ_DEDUPE_MAX)
    return jobq__err(JOBQ_EINVAL, "jobq_get_by_key: key is %zu bytes, at most %d", n,
                     JOBQ_DEDUPE_MAX);
  if (q->ops->version < 3 || q->ops->get_by_key == NULL)
    return jobq__err(JOBQ_ENOTSUP, "jobq_get_by_key: the %s backend cannot look up keys",
                     q->ops->scheme);
  jobq_job_t *job = calloc(1, sizeof *job);
  if (job == NULL) return jobq__err(JOBQ_ENOMEM, "jobq_get_by_key: out of memory");
  int rc = begin_op(q, "jobq_get_by_key");
  if (rc) {
    free(job);
    return rc;
  }
  jobq__set_detail("");
  rc = q->ops->get_by_key(q->st, key, jobq__now(q), &job->rec);
  jobq_storage_kind_stats *ks = rc == 0 ? eta_stats(q, &job->rec) : NULL;
  end_op(q);
  if (rc == 0) jobq__job_overlay(q, job, ks);
  /* A lookup is the result cache's hit or miss; a miss has no kind. */
  if (rc == 0 || rc == JOBQ_ENOTFOUND)
    jobq__stats_count(q, rc == 0 ? job->rec.kind : NULL,
                      rc == 0 ? JOBQ_STAT_CACHE_HIT : JOBQ_STAT_CACHE_MISS, 1);
  uv_mutex_unlock(&q->mu);
  jobq__kind_stats_free(ks, ks ? 1 : 0);
  if (rc) {
    free(job);
    if (rc == JOBQ_ENOTFOUND)
      return jobq__err(rc, "jobq_get_by_key: no live job holds the key '%.100s'", key);
    if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
    return jobq__err_prefix(rc, NULL, "jobq_get_by_key: ");
  }
  *out = job;
  return 0;
}

JOBQ_API void jobq_job_free(jobq_job_t *job) {
  if (job == NULL) return;
  jobq_storage_job_clear(&job->rec);
  free(job);
}

/* ---- jobq_wait ---- */

static void waiter_remove(jobq_t *q, waiter *w) {
  waiter *head = jobq__map_get(&q->waiters, w->id);
  if (head == w) {
    if (w->next) jobq__map_put(&q->waiters, w->next->id, w->next); /* cannot grow */
    else jobq__map_del(&q->waiters, w->id);
    return;
  }
  for (waiter *p = head; p; p = p->next) {
    if (p->next == w) {
      p->next = w->next;
      return;
    }
  }
}

static int str_differs(const char *a, const char *b) {
  return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* What jobq_wait counts as a change. */
static int differs(const jobq_job_t *a, const jobq_job_t *b) {
  return a->rec.state != b->rec.state || a->rec.progress != b->rec.progress ||
         a->rec.attempts != b->rec.attempts || str_differs(a->rec.step, b->rec.step) ||
         a->rec.cancel_requested != b->rec.cancel_requested;
}

JOBQ_API int jobq_wait(jobq_t *q, const char *id, int timeout_ms, jobq_job_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_wait: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_wait");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_wait: out is NULL");
  int rc = check_id("jobq_wait", id);
  if (rc) return rc;
  if (timeout_ms != 0 && jobq__on_loop_thread(q))
    return jobq__err(JOBQ_EDEADLK, "jobq_wait: a blocking wait on the loop thread");
  waiter w;
  memset(&w, 0, sizeof w);
  memcpy(w.id, id, JOBQ_ID_SIZE);
  if (uv_cond_init(&w.cv) != 0) return jobq__err(JOBQ_ENOMEM, "jobq_wait: cannot make a condition");
  uv_mutex_lock(&q->mu);
  if (q->closed) {
    uv_mutex_unlock(&q->mu);
    uv_cond_destroy(&w.cv);
    return jobq__err(JOBQ_ECLOSED, "jobq_wait: the queue is closing");
  }
  /* Register before reading, so that no change between the read and the
   * wait is missed. */
  w.next = jobq__map_get(&q->waiters, id);
  if (jobq__map_put(&q->waiters, w.id, &w) != 0) {
    uv_mutex_unlock(&q->mu);
    uv_cond_destroy(&w.cv);
    return jobq__err(JOBQ_ENOMEM, "jobq_wait: out of memory");
  }
  q->refs++;
  uv_mutex_unlock(&q->mu);

  jobq_job_t *snap = NULL;
  rc = get(q, "jobq_wait", id, &snap);
  uv_mutex_lock(&q->mu);
  if (rc == 0 && !jobq_state_is_terminal(snap->rec.state)) {
    uint64_t deadline = uv_hrtime() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    while (!w.changed && !q->closed) {
      if (w.recheck) {
        /* Another process changed something: compare with what we saw. */
        w.recheck = 0;
        uv_mutex_unlock(&q->mu);
        jobq_job_t *now_snap = NULL;
        int grc = get(q, "jobq_wait", id, &now_snap);
        uv_mutex_lock(&q->mu);
        if (grc == 0 && differs(snap, now_snap)) w.changed = 1;
        jobq_job_free(now_snap);
        continue;
      }
      uint64_t now = uv_hrtime();
      if (timeout_ms == 0 || (timeout_ms > 0 && now >= deadline)) break;
      if (timeout_ms < 0) uv_cond_wait(&w.cv, &q->mu);
      else uv_cond_timedwait(&w.cv, &q->mu, deadline - now);
    }
    if (q->closed && !w.changed) {
      rc = jobq__err(JOBQ_ECLOSED, "jobq_wait: the queue is closing");
    } else {
      int changed = w.changed;
      waiter_remove(q, &w);
      uv_mutex_unlock(&q->mu);
      jobq_job_free(snap);
      snap = NULL;
      rc = get(q, "jobq_wait", id, &snap);
      if (rc == 0 && !changed) {
        jobq__err(JOBQ_ETIMEDOUT, "jobq_wait: job %s did not change within %d ms", id, timeout_ms);
        rc = JOBQ_ETIMEDOUT;
      }
      uv_mutex_lock(&q->mu);
      goto done;
    }
  }
  waiter_remove(q, &w);
done:
  if (rc == 0 || rc == JOBQ_ETIMEDOUT) *out = snap;
  else jobq_job_free(snap);
  uv_cond_destroy(&w.cv);
  jobq__q_unref(q);
  return rc;
}

/* ---- jobq_list ---- */

JOBQ_API int jobq_list(jobq_t *q, const jobq_filter_t *f, jobq_page_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_list: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_list");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_list: out is NULL");
  jobq_storage_filter sf = {NULL, NULL, -1, 50, 1, NULL};
  if (f) {
    sf.owner = f->owner;
    sf.kind = f->kind;
    sf.state = f->state;
    sf.limit = f->limit;
    sf.newest_first = f->newest_first;
    sf.cursor = f->cursor;
  }
  jobq_page_t *page = calloc(1, sizeof *page);
  if (page == NULL) return jobq__err(JOBQ_ENOMEM, "jobq_list: out of memory");
  int rc = begin_op(q, "jobq_list");
  if (rc) {
    free(page);
    return rc;
  }
  jobq_storage_job *recs = NULL;
  size_t n = 0;
  int more = 0;
  rc = q->ops->list(q->st, &sf, &recs, &n, &more);
  end_op(q);
  if (rc == 0 && n) {
    page->jobs = calloc(n, sizeof *page->jobs);
    if (page->jobs == NULL) {
      rc = jobq__err(JOBQ_ENOMEM, "jobq_list: out of memory");
    } else {
      for (size_t i = 0; i < n; i++) {
        page->jobs[i].rec = recs[i];
        memset(&recs[i], 0, sizeof recs[i]);
        jobq__job_overlay(q, &page->jobs[i], NULL);
      }
      page->n = n;
    }
  }
  uv_mutex_unlock(&q->mu);
  for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&recs[i]);
  free(recs);
  if (rc == 0 && more && page->n && !(page->next_cursor = jobq__strdup(page->jobs[page->n - 1].rec.id)))
    rc = jobq__err(JOBQ_ENOMEM, "jobq_list: out of memory");
  if (rc) {
    jobq_page_free(page);
    return rc;
  }
  *out = page;
  return 0;
}

JOBQ_API size_t jobq_page_count(const jobq_page_t *p) { return p ? p->n : 0; }
JOBQ_API const jobq_job_t *jobq_page_job(const jobq_page_t *p, size_t i) {
  return p && i < p->n ? &p->jobs[i] : NULL;
}
JOBQ_API const char *jobq_page_next_cursor(const jobq_page_t *p) { return p ? p->next_cursor : NULL; }
JOBQ_API void jobq_page_free(jobq_page_t *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->n; i++) jobq_storage_job_clear(&p->jobs[i].rec);
  free(p->jobs);
  free(p->next_cursor);
  free(p);
}

/* ---- snapshot accessors ---- */

#define R(job) (&(job)->rec)
JOBQ_API const char *jobq_job_id(const jobq_job_t *j) { return j ? R(j)->id : NULL; }
JOBQ_API const char *jobq_job_kind(const jobq_job_t *j) { return j ? R(j)->kind : NULL; }
JOBQ_API int jobq_job_state(const jobq_job_t *j) { return j ? R(j)->state : JOBQ_EINVAL; }
JOBQ_API const char *jobq_job_payload(const jobq_job_t *j) { return j ? R(j)->payload : NULL; }
JOBQ_API const char *jobq_job_owner(const jobq_job_t *j) { return j ? R(j)->owner : NULL; }
JOBQ_API int jobq_job_priority(const jobq_job_t *j) { return j ? R(j)->priority : 0; }
JOBQ_API int jobq_job_progress(const jobq_job_t *j) { return j ? R(j)->progress : JOBQ_EINVAL; }
JOBQ_API const char *jobq_job_step(const jobq_job_t *j) { return j ? R(j)->step : NULL; }
JOBQ_API const char *jobq_job_result(const jobq_job_t *j) { return j ? R(j)->result : NULL; }
JOBQ_API const char *jobq_job_error(const jobq_job_t *j) { return j ? R(j)->error : NULL; }
JOBQ_API int jobq_job_attempts(const jobq_job_t *j) { return j ? R(j)->attempts : JOBQ_EINVAL; }
JOBQ_API int jobq_job_max_attempts(const jobq_job_t *j) { return j ? R(j)->max_attempts : JOBQ_EINVAL; }
JOBQ_API int jobq_job_cancel_requested(const jobq_job_t *j) { return j ? R(j)->cancel_requested : 0; }
JOBQ_API int64_t jobq_job_created_at(const jobq_job_t *j) { return j ? R(j)->created_at : JOBQ_EINVAL; }
JOBQ_API int64_t jobq_job_run_at(const jobq_job_t *j) { return j ? R(j)->run_at : JOBQ_EINVAL; }
JOBQ_API int64_t jobq_job_started_at(const jobq_job_t *j) { return j ? R(j)->started_at : 0; }
JOBQ_API int64_t jobq_job_finished_at(const jobq_job_t *j) { return j ? R(j)->finished_at : 0; }
JOBQ_API int64_t jobq_job_position(const jobq_job_t *j) { return j ? R(j)->position : -1; }
JOBQ_API int64_t jobq_job_eta_ms(const jobq_job_t *j) { return j ? j->eta_ms : -1; }

static const jobq_storage_attempt *attempt(const jobq_job_t *j, int i) {
  if (j == NULL || i < 0 || i >= R(j)->n_attempt_log) return NULL;
  return &R(j)->attempt_log[i];
}
JOBQ_API const char *jobq_job_attempt_error(const jobq_job_t *j, int i) {
  const jobq_storage_attempt *a = attempt(j, i);
  return a ? a->error : NULL;
}
JOBQ_API int64_t jobq_job_attempt_started_at(const jobq_job_t *j, int i) {
  const jobq_storage_attempt *a = attempt(j, i);
  return a ? a->started_at : JOBQ_EINVAL;
}
JOBQ_API int64_t jobq_job_attempt_finished_at(const jobq_job_t *j, int i) {
  const jobq_storage_attempt *a = attempt(j, i);
  return a ? a->finished_at : JOBQ_EINVAL;
}

/* Payloads and results were checked as JSON when they came in, so they go
 * into the snapshot's JSON as they are, exactly as given (jansson would
 * turn 2^64 into a float and cut "\u0000"). */
JOBQ_API char *jobq_job_to_json(const jobq_job_t *j) {
  if (j == NULL) {
    jobq__err(JOBQ_EINVAL, "jobq_job_to_json: job is NULL");
    return NULL;
  }
  const jobq_storage_job *r = R(j);
  jobq_sbuf b = {0};
  int first = 1;
  jobq__sb_str(&b, "{");
  jobq__sb_key(&b, "id", &first);
  jobq__sb_json_str(&b, r->id);
  jobq__sb_key(&b, "kind", &first);
  jobq__sb_json_str(&b, r->kind ? r->kind : "");
  jobq__sb_key(&b, "state", &first);
  jobq__sb_json_str(&b, jobq_state_name(r->state) ? jobq_state_name(r->state) : "unknown");
  jobq__sb_key(&b, "payload", &first);
  jobq__sb_str(&b, r->payload ? r->payload : "null");
  if (r->owner) {
    jobq__sb_key(&b, "owner", &first);
    jobq__sb_json_str(&b, r->owner);
  }
  jobq__sb_key(&b, "priority", &first);
  jobq__sb_int(&b, r->priority);
  jobq__sb_key(&b, "progress", &first);
  jobq__sb_int(&b, r->progress);
  if (r->step) {
    jobq__sb_key(&b, "step", &first);
    jobq__sb_json_str(&b, r->step);
  }
  if (r->result) {
    jobq__sb_key(&b, "result", &first);
    jobq__sb_str(&b, r->result);
  }
  if (r->error) {
    jobq__sb_key(&b, "error", &first);
    jobq__sb_json_str(&b, r->error);
  }
  jobq__sb_key(&b, "attempts", &first);
  jobq__sb_int(&b, r->attempts);
  jobq__sb_key(&b, "maxAttempts", &first);
  jobq__sb_int(&b, r->max_attempts);
  if (r->cancel_requested) {
    jobq__sb_key(&b, "cancelRequested", &first);
    jobq__sb_str(&b, "true");
  }
  jobq__sb_key(&b, "createdAt", &first);
  jobq__sb_int(&b, r->created_at);
  jobq__sb_key(&b, "runAt", &first);
  jobq__sb_int(&b, r->run_at);
  if (r->started_at) {
    jobq__sb_key(&b, "startedAt", &first);
    jobq__sb_int(&b, r->started_at);
  }
  if (r->finished_at) {
    jobq__sb_key(&b, "finishedAt", &first);
    jobq__sb_int(&b, r->finished_at);
  }
  if (r->position >= 0) {
    jobq__sb_key(&b, "position", &first);
    jobq__sb_int(&b, r->position);
  }
  if (j->eta_ms >= 0) {
    jobq__sb_key(&b, "etaMs", &first);
    jobq__sb_int(&b, j->eta_ms);
  }
  jobq__sb_key(&b, "attemptLog", &first);
  jobq__sb_str(&b, "[");
  for (int i = 0; i < r->n_attempt_log; i++) {
    int f2 = 1;
    jobq__sb_str(&b, i ? ",{" : "{");
    jobq__sb_key(&b, "startedAt", &f2);
    jobq__sb_int(&b, r->attempt_log[i].started_at);
    if (r->attempt_log[i].finished_at) {
      jobq__sb_key(&b, "finishedAt", &f2);
      jobq__sb_int(&b, r->attempt_log[i].finished_at);
    }
    if (r->attempt_log[i].error) {
      jobq__sb_key(&b, "error", &f2);
      jobq__sb_json_str(&b, r->attempt_log[i].error);
    }
    jobq__sb_str(&b, "}");
  }
  jobq__sb_str(&b, "]}");
  char *out = jobq__sb_take(&b);
  if (out == NULL) jobq__err(JOBQ_ENOMEM, "jobq_job_to_json: out of memory");
  return out;
}
