/* Cron schedules: jobq_cron_add/remove/list, and their evaluation.
 *
 * Schedules live in storage (cron_put, cron_list), so every process on a
 * store sees the same ones. Every started queue evaluates them on its
 * maintenance thread: it reads the list again at most once a second (other
 * processes add and remove schedules), keeping each schedule's parsed
 * expression and zone between reads (parsing on every evaluation cost five
 * times as much), and fires those whose next run has come. Firing is
 * storage's cron_fire: a compare-and-set of the schedule's next run in the
 * same transaction as the inserts of the jobs, each with the occurrence's
 * dedupe key, so that of several processes that evaluate the same
 * occurrence exactly one stores it. The storage layer knows no cron syntax:
 * the times are computed here (lib/util/cron.h). */
#include "core/internal.h"
#include "util/cron.h"
#include "util/id.h"
#include "util/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRON_NAME_MAX 128
/* How often the list is read again (the queue's clock). */
#define CRON_READ_MS 1000
/* An occurrence evaluated later than this after its time was missed (its
 * processes were down); the missed policy decides about it. */
#define CRON_LATE_MS 60000
/* JOBQ_CRON_MISSED_ALL submits at most this many missed occurrences. */
#define CRON_ALL_MAX 1000
/* "cron:" name ":" and the occurrence's ms */
#define CRON_KEY_MAX (5 + CRON_NAME_MAX + 1 + 21)

/* One schedule as this queue last read it. */
typedef struct jobq__cron_entry {
  jobq_storage_cron rec;
  jobq__cron parsed;
  const jobq__tz *tz;
  int ok; /* parsed and tz loaded; else skipped (logged once per read) */
} cron_entry;

struct jobq_cron_s {
  jobq_storage_cron rec;
};

struct jobq_cron_list_s {
  size_t n;
  jobq_cron_t *v;
};

static void rec_clear(jobq_storage_cron *c) {
  free(c->name);
  free(c->expr);
  free(c->tz);
  free(c->kind);
  free(c->payload);
  free(c->owner);
  memset(c, 0, sizeof *c);
}

static void recs_free(jobq_storage_cron *v, size_t n) {
  for (size_t i = 0; i < n; i++) rec_clear(&v[i]);
  free(v);
}

/* ---- checks ---- */

static int name_check(const char *fn, const char *name) {
  if (name == NULL) return jobq__err(JOBQ_EINVAL, "%s: name is NULL", fn);
  size_t n = strlen(name);
  if (n == 0) return jobq__err(JOBQ_EINVAL, "%s: name is empty", fn);
  if (n > CRON_NAME_MAX)
    return jobq__err(JOBQ_EINVAL, "%s: name is %zu bytes long, at most %d allowed", fn, n,
                     CRON_NAME_MAX);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '.' || c == ':' || c == '-')
      continue;
    return jobq__err(JOBQ_EINVAL,
                     "%s: name has character 0x%02x at offset %zu; allowed are letters, digits "
                     "and _ . : -",
                     fn, c, i);
  }
  return 0;
}

static int backend_check(jobq_t *q, const char *fn) {
  if (q->ops->version < 3 || !q->ops->cron_put || !q->ops->cron_del || !q->ops->cron_list ||
      !q->ops->cron_fire)
    return jobq__err(JOBQ_ENOTSUP, "%s: the %s backend cannot store cron schedules", fn,
                     q->ops->scheme);
  return 0;
}

/* Counts a storage call from the caller's thread (see jobq__storage_begin). */
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

/* Ends it; changed: a schedule changed, so this queue reads the list again
 * at its next maintenance tick. */
static void end_op(jobq_t *q, int changed) {
  uv_mutex_lock(&q->mu);
  if (changed) q->cron.changed = 1;
  jobq__storage_end(q);
  uv_mutex_unlock(&q->mu);
}

static int storage_rc(int rc, const char *fn) {
  if (jobq_last_error()[0] == '\0') jobq__err(rc, "%s", jobq_strerror(rc));
  return jobq__err_prefix(rc, NULL, "%s: ", fn);
}

/* ---- the public functions ---- */

JOBQ_API int jobq_cron_add(jobq_t *q, const char *name, const char *expr, const char *tz,
                           const char *kind, const char *payload_json,
                           const jobq_submit_opts_t *so) {
  static const char fn[] = "jobq_cron_add";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  int rc = name_check(fn, name);
  if (rc) return rc;
  if (expr == NULL) return jobq__err(JOBQ_EINVAL, "%s: expr is NULL", fn);
  jobq__cron parsed;
  if ((rc = jobq__cron_parse(fn, expr, &parsed)) != 0) return rc;
  const jobq__tz *z;
  if ((rc = jobq__tz_get(fn, tz, &z)) != 0) return rc;
  if ((rc = jobq__kind_name_check(fn, kind)) != 0) return rc;
  const char *payload = payload_json ? payload_json : "null";
  size_t len = strlen(payload);
  if (len > q->o.max_payload)
    return jobq__err(JOBQ_ETOOBIG, "%s: payload is %zu bytes, the limit is %zu", fn, len,
                     q->o.max_payload);
  if ((rc = jobq__json_check(fn, "payload", payload, len)) != 0) return rc;
  if (so && so->dedupe_key)
    return jobq__err(JOBQ_EINVAL,
                     "%s: the submit options set a dedupe key; each occurrence's key is "
                     "\"cron:<name>:<occurrence ms>\"",
                     fn);
  if (so && (so->run_at >= 0 || so->delay_ms >= 0))
    return jobq__err(JOBQ_EINVAL,
                     "%s: the submit options set run_at or a delay; each occurrence runs at its "
                     "own time",
                     fn);
  if (so && so->n_wh)
    return jobq__err(JOBQ_EINVAL,
                     "%s: the submit options add webhooks; a schedule's jobs are subscribed to "
                     "the endpoints configured for their kind (jobq_options_add_webhook)",
                     fn);
  if ((rc = backend_check(q, fn)) != 0) return rc;
  int64_t now = jobq__now(q), next;
  if (now < JOBQ__CRON_MIN_MS || now > JOBQ__CRON_MAX_MS)
    return jobq__err(JOBQ_EINVAL, "%s: the queue's clock (%lld) is outside the years 1 to 9999",
                     fn, (long long)now);
  if ((rc = jobq__cron_next(fn, &parsed, z, now, &next)) != 0) return rc;

  jobq_storage_cron c = {
      .name = (char *)name,
      .expr = (char *)expr,
      .tz = (char *)(tz && tz[0] ? tz : "UTC"),
      .kind = (char *)kind,
      .payload = (char *)payload,
      .owner = so ? so->owner : NULL,
      .priority = so ? so->priority : 0,
      .max_attempts = so ? so->max_attempts : 0,
      .missed_policy = q->o.cron_missed,
      .next_at = next,
      .last_run = 0,
  };
  if ((rc = begin_op(q, fn)) != 0) return rc;
  jobq__set_detail("");
  rc = q->ops->cron_put(q->st, &c);
  end_op(q, rc == 0);
  return rc ? storage_rc(rc, fn) : 0;
}

JOBQ_API int jobq_cron_remove(jobq_t *q, const char *name) {
  static const char fn[] = "jobq_cron_remove";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  int rc = name_check(fn, name);
  if (rc || (rc = backend_check(q, fn)) != 0) return rc;
  if ((rc = begin_op(q, fn)) != 0) return rc;
  jobq__set_detail("");
  rc = q->ops->cron_del(q->st, name);
  end_op(q, rc == 0);
  if (rc == JOBQ_ENOTFOUND) return jobq__err(rc, "%s: no schedule '%s'", fn, name);
  return rc ? storage_rc(rc, fn) : 0;
}

JOBQ_API int jobq_cron_list(jobq_t *q, jobq_cron_list_t **out) {
  static const char fn[] = "jobq_cron_list";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "%s: out is NULL", fn);
  int rc = backend_check(q, fn);
  if (rc) return rc;
  jobq_cron_list_t *l = calloc(1, sizeof *l);
  if (l == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  if ((rc = begin_op(q, fn)) != 0) {
    free(l);
    return rc;
  }
  jobq__set_detail("");
  jobq_storage_cron *v = NULL;
  size_t n = 0;
  rc = q->ops->cron_list(q->st, &v, &n);
  end_op(q, 0);
  if (rc) {
    free(l);
    return storage_rc(rc, fn);
  }
  /* jobq_cron_t is the record itself: the array is the list. */
  _Static_assert(sizeof(jobq_cron_t) == sizeof(jobq_storage_cron), "jobq_cron_t wraps the record");
  l->v = (jobq_cron_t *)v;
  l->n = n;
  *out = l;
  return 0;
}

JOBQ_API size_t jobq_cron_list_count(const jobq_cron_list_t *l) { return l ? l->n : 0; }

JOBQ_API const jobq_cron_t *jobq_cron_list_get(const jobq_cron_list_t *l, size_t i) {
  return l && i < l->n ? &l->v[i] : NULL;
}

JOBQ_API void jobq_cron_list_free(jobq_cron_list_t *l) {
  if (l == NULL) return;
  for (size_t i = 0; i < l->n; i++) rec_clear(&l->v[i].rec);
  free(l->v);
  free(l);
}

JOBQ_API const char *jobq_cron_name(const jobq_cron_t *c) { return c ? c->rec.name : NULL; }
JOBQ_API const char *jobq_cron_expr(const jobq_cron_t *c) { return c ? c->rec.expr : NULL; }
JOBQ_API const char *jobq_cron_tz(const jobq_cron_t *c) { return c ? c->rec.tz : NULL; }
JOBQ_API const char *jobq_cron_kind(const jobq_cron_t *c) { return c ? c->rec.kind : NULL; }
JOBQ_API const char *jobq_cron_payload(const jobq_cron_t *c) { return c ? c->rec.payload : NULL; }
JOBQ_API int64_t jobq_cron_next_run(const jobq_cron_t *c) { return c ? c->rec.next_at : 0; }
JOBQ_API int64_t jobq_cron_last_run(const jobq_cron_t *c) { return c ? c->rec.last_run : 0; }
JOBQ_API int jobq_cron_missed_policy(const jobq_cron_t *c) {
  return c ? c->rec.missed_policy : JOBQ_EINVAL;
}

/* ---- evaluation (the maintenance thread) ---- */

int jobq__cron_wanted(jobq_t *q, int64_t now) {
  /* A queue that only submits (never started) leaves schedules to those
   * that work. */
  if (!q->started || q->ops->version < 3 || !q->ops->cron_list || !q->ops->cron_fire) return 0;
  return q->cron.changed || now >= q->cron.next_read || now >= q->cron.next_due;
}

void jobq__cron_free(jobq_t *q) {
  for (size_t i = 0; i < q->cron.n; i++) rec_clear(&q->cron.v[i].rec);
  free(q->cron.v);
  q->cron.v = NULL;
  q->cron.n = 0;
}

static int str_eq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

/* The entry of the last read called name (the list is by name), or NULL. */
static cron_entry *old_entry(cron_entry *v, size_t n, const char *name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(v[mid].rec.name, name);
    if (c == 0) return &v[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* Reads the list again; the parsed forms of unchanged schedules carry over. */
static int reread(jobq_t *q) {
  jobq_storage_cron *v = NULL;
  size_t n = 0;
  jobq__set_detail("");
  int rc = q->ops->cron_list(q->st, &v, &n);
  if (rc) return rc;
  cron_entry *e = n ? calloc(n, sizeof *e) : NULL;
  if (n && e == NULL) {
    recs_free(v, n);
    return jobq__err(JOBQ_ENOMEM, "cron: out of memory");
  }
  int bad = 0;
  char why[256] = "";
  for (size_t i = 0; i < n; i++) {
    e[i].rec = v[i];
    cron_entry *o = old_entry(q->cron.v, q->cron.n, v[i].name);
    if (o && o->ok && str_eq(o->rec.expr, v[i].expr) && str_eq(o->rec.tz, v[i].tz)) {
      e[i].parsed = o->parsed;
      e[i].tz = o->tz;
      e[i].ok = 1;
      continue;
    }
    /* Stored by a process that could read it; this one may lack the zone. */
    e[i].ok = v[i].expr && jobq__cron_parse("cron", v[i].expr, &e[i].parsed) == 0 &&
              jobq__tz_get("cron", v[i].tz, &e[i].tz) == 0;
    if (!e[i].ok && !(o && !o->ok && str_eq(o->rec.expr, v[i].expr) &&
                      str_eq(o->rec.tz, v[i].tz))) {
      bad++;
      snprintf(why, sizeof why, "%s", jobq_last_error());
    }
  }
  free(v); /* the strings moved into e */
  jobq__cron_free(q);
  q->cron.v = e;
  q->cron.n = n;
  if (bad) {
    uv_mutex_lock(&q->mu);
    jobq__log(q, JOBQ_LOG_WARN, "%d cron schedules cannot be evaluated here and are skipped (%s)",
              bad, why);
    uv_mutex_unlock(&q->mu);
  }
  return 0;
}

/* The first occurrence at or after t, or INT64_MAX when there is none. */
static int64_t occ_from(const cron_entry *e, int64_t t) {
  int64_t o;
  if (t - 1 < JOBQ__CRON_MIN_MS || t - 1 > JOBQ__CRON_MAX_MS) return INT64_MAX;
  return jobq__cron_next("cron", &e->parsed, e->tz, t - 1, &o) == 0 ? o : INT64_MAX;
}

/* The latest `max` occurrences in [from, now], oldest first, into out
 * (*n of them). A window back from now that grows fourfold finds where they
 * start, so that a year of every-minute occurrences costs no more than a
 * few windows' worth. */
static size_t occurrences(const cron_entry *e, int64_t from, int64_t now, size_t max,
                          int64_t *out) {
  int64_t start = from;
  for (int64_t w = 60000; now - from > w; w *= 4) {
    size_t k = 0;
    for (int64_t o = occ_from(e, now - w); o <= now && k < max; o = occ_from(e, o + 1)) k++;
    if (k >= max) {
      start = now - w;
      break;
    }
  }
  size_t n = 0, head = 0; /* a ring of the latest max */
  /* from is the stored next run, an occurrence itself: taken as it is, not
   * found again from the instant before it (a run moved to the end of a
   * DST gap would be missed by cron_next within the minute before). */
  for (int64_t o = start == from ? from : occ_from(e, start); o <= now; o = occ_from(e, o + 1)) {
    if (n < max) out[n++] = o;
    else {
      out[head] = o;
      head = (head + 1) % max;
    }
  }
  if (head) { /* rotate: oldest first */
    int64_t tmp[CRON_ALL_MAX];
    for (size_t i = 0; i < n; i++) tmp[i] = out[(head + i) % n];
    memcpy(out, tmp, n * sizeof *out);
  }
  return n;
}

/* Fires one due schedule; the number of jobs stored, or a JOBQ code. */
static int fire(jobq_t *q, cron_entry *e, int64_t now, jobq_storage_job *recs, int64_t *occ) {
  const jobq_storage_cron *c = &e->rec;
  size_t max = c->missed_policy == JOBQ_CRON_MISSED_ALL ? CRON_ALL_MAX : 1;
  size_t n = occurrences(e, c->next_at, now, max, occ);
  if (c->missed_policy == JOBQ_CRON_MISSED_SKIP && n && now - occ[n - 1] > CRON_LATE_MS) n = 0;
  int64_t next = occ_from(e, now + 1);
  char (*keys)[CRON_KEY_MAX] = n ? malloc(n * sizeof *keys) : NULL;
  jobq_storage_job **ptrs = n ? malloc(n * sizeof *ptrs) : NULL;
  if (n && (keys == NULL || ptrs == NULL)) {
    free(keys);
    free(ptrs);
    return jobq__err(JOBQ_ENOMEM, "cron: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    jobq_storage_job *r = &recs[i];
    memset(r, 0, sizeof *r);
    snprintf(keys[i], CRON_KEY_MAX, "cron:%s:%lld", c->name, (long long)occ[i]);
    r->kind = c->kind;
    r->payload = c->payload;
    r->owner = c->owner;
    r->priority = c->priority;
    r->max_attempts = c->max_attempts;
    r->dedupe_key = keys[i];
    r->state = JOBQ_QUEUED;
    r->created_at = now;
    r->run_at = occ[i];
    r->position = -1;
    jobq__id_new(r->id, now);
    ptrs[i] = r;
  }
  /* As a submit does: the new jobs' events wait until "submitted" is out,
   * so that a worker's "started" cannot come first. */
  uv_mutex_lock(&q->mu);
  size_t held = 0;
  if (jobq__events_on(q)) {
    while (held < n && jobq__hold_begin(q, recs[held].id) == 0) held++;
    if (held < n) { /* out of memory: no events rather than some out of order */
      for (size_t i = 0; i < held; i++) jobq__hold_end(q, recs[i].id, 0, NULL);
      held = 0;
    }
  }
  uv_mutex_unlock(&q->mu);
  size_t stored = 0;
  /* The kind's default webhook endpoints, as a submit of it would get. */
  char *hooks = NULL;
  const char **hv = NULL;
  int rc = n ? jobq__wh_hooks_json(q, "cron", c->kind, NULL, 0, &hooks) : 0;
  if (rc == 0 && hooks && (hv = malloc(n * sizeof *hv)) == NULL)
    rc = jobq__err(JOBQ_ENOMEM, "cron: out of memory");
  for (size_t i = 0; hv && i < n; i++) hv[i] = hooks;
  jobq__set_detail("");
  if (rc == 0)
    rc = hv ? q->ops->cron_fire_hooked(q->st, c->name, c->next_at, next, ptrs, hv, n, now, &stored)
            : q->ops->cron_fire(q->st, c->name, c->next_at, next, ptrs, n, now, &stored);
  free(hv);
  free(hooks);
  if (rc == 0) {
    /* Whether this process fired it or another did, the next run moved on
     * (the next read says where, if elsewhere). */
    e->rec.next_at = next;
    if (stored && n) e->rec.last_run = occ[n - 1];
  }
  if (held) {
    uv_mutex_lock(&q->mu);
    for (size_t i = 0; i < held; i++)
      jobq__hold_end(q, recs[i].id, rc == 0 && stored == n, c->kind);
    uv_mutex_unlock(&q->mu);
  }
  free(keys);
  free(ptrs);
  return rc ? rc : (int)stored;
}

void jobq__cron_evaluate(jobq_t *q, int64_t now) {
  uv_mutex_lock(&q->mu);
  int read = q->cron.changed || now >= q->cron.next_read;
  q->cron.changed = 0;
  uv_mutex_unlock(&q->mu);
  int rc = 0;
  if (read) {
    rc = reread(q);
    uv_mutex_lock(&q->mu);
    jobq__health_note(q, JOBQ_OP_CRON, rc);
    q->cron.next_read = now + CRON_READ_MS;
    uv_mutex_unlock(&q->mu);
  }
  size_t fired = 0;
  int64_t due = INT64_MAX;
  jobq_storage_job *recs = NULL;
  int64_t *occ = NULL;
  for (size_t i = 0; i < q->cron.n; i++) {
    cron_entry *e = &q->cron.v[i];
    if (!e->ok) continue;
    if (e->rec.next_at <= now) {
      if (recs == NULL) {
        recs = malloc(CRON_ALL_MAX * sizeof *recs);
        occ = malloc(CRON_ALL_MAX * sizeof *occ);
        if (recs == NULL || occ == NULL) {
          rc = jobq__err(JOBQ_ENOMEM, "cron: out of memory");
          due = now; /* the next tick tries again */
          break;
        }
      }
      rc = fire(q, e, now, recs, occ);
      uv_mutex_lock(&q->mu);
      jobq__health_note(q, JOBQ_OP_CRON, rc < 0 ? rc : 0);
      uv_mutex_unlock(&q->mu);
      if (rc > 0) fired += (size_t)rc;
      /* A failed fire leaves next_at due: the next tick tries again. */
    }
    if (e->rec.next_at < due) due = e->rec.next_at;
  }
  free(recs);
  free(occ);
  uv_mutex_lock(&q->mu);
  /* Until the next read, nothing is due before the earliest next run. */
  q->cron.next_due = due;
  if (fired) jobq__wake_claimers(q);
  uv_mutex_unlock(&q->mu);
}
