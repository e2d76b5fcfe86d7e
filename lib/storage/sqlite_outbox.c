/* The webhook outbox on the SQLite backend (storage version 4, schema 10).
 *
 * A job's subscriptions are the nullable column jobq_jobs.webhooks (the
 * compact JSON of storage.h). Every statement that makes a job terminal
 * (finish, release or deferral of a job whose cancel was asked for, cancel
 * of a queued job, rescue with attempts spent) returns that column from the
 * row it updates anyway; only when it is not NULL does the change call
 * jobq__sq_outbox_end, which adds the deliveries: one plain INSERT each,
 * from the hooks parsed once per distinct text (a queue's jobs mostly
 * carry the same few bytes: the writer keeps the last text parsed). The
 * success of a job this store claimed (the hot path) knows the job's hooks
 * from its claim. A job without hooks writes and reads nothing more than
 * before the outbox.
 *
 * Deliveries live in jobq_outbox, keyed by their id "<job>:<hook>:<event>"
 * (INSERT OR IGNORE: a change applied twice adds nothing twice). Claims
 * take the due ones through (state, next_at) on the writer, like any write;
 * lists and counts read on a reader. Disabled URLs (410 Gone) are rows of
 * jobq_webhook_disabled. */
#include "storage/sqlite_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One job's deliveries: their ids are "<job id>:...", a range of the key
 * (':' is followed by ';', and a job id has neither). */
#define JOB_RANGE(p) "id > " p " || ':' AND id < " p " || ';'"
/* (Conditions on state beside a JOB_RANGE are written "+state": else the
 * planner may walk (state, next_at), every pending delivery, rather than
 * the job's few keys.) */

#define DELIVERY_COLS                                                                         \
  "id, job_id, endpoint, url, hook, event, flags, state, attempts, last_status, last_error, " \
  "created_at, next_at, updated_at"

/* The hooks of a job, as json_each rows; text that is not an array (a file
 * edited by hand: the insert refuses it) gives none. */
#define HOOKS(p) "json_each(CASE WHEN json_valid(" p ") AND json_type(" p ") = 'array' THEN " p " ELSE '[]' END) h"

#define NEW_DELIVERY_COLS                                                                      \
  "INSERT OR IGNORE INTO jobq_outbox (id, job_id, endpoint, url, hook, event, flags, created_at, " \
  "next_at, updated_at) "

static int nomem(void) { return jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory"); }
static void pend_free(sq_store *s);

/* A webhooks text parsed (the writer's cache, sq_store.hooks_cache). */
typedef struct sq_hook {
  char *e, *u;
  int on, p;
} sq_hook;
struct sq_hooks {
  char *text;
  int n;
  int any_progress; /* some hook asks for progress */
  sq_hook v[8];
};

static void hooks_clear(struct sq_hooks *h) {
  free(h->text);
  for (int i = 0; i < h->n; i++) {
    free(h->v[i].e);
    free(h->v[i].u);
  }
  memset(h, 0, sizeof *h);
}

void jobq__sq_hooks_cache_free(sq_store *s) {
  if (s->hooks_cache) hooks_clear(s->hooks_cache);
  free(s->hooks_cache);
  s->hooks_cache = NULL;
  pend_free(s);
}

/* The parsed hooks of text, from the cache or parsed now; NULL on out of
 * memory. Text the insert would have refused (a file edited by hand)
 * parses as no hooks. */
static const struct sq_hooks *hooks_parsed(sq_store *s, const char *text) {
  if (s->hooks_cache == NULL && (s->hooks_cache = calloc(1, sizeof *s->hooks_cache)) == NULL)
    return NULL;
  struct sq_hooks *h = s->hooks_cache;
  if (h->text && strcmp(h->text, text) == 0) return h;
  hooks_clear(h);
  json_error_t e;
  json_t *a = json_loads(text, 0, &e);
  size_t n = json_is_array(a) ? json_array_size(a) : 0;
  for (size_t i = 0; i < n && i < 8; i++) {
    json_t *o = json_array_get(a, i);
    const char *ep = json_string_value(json_object_get(o, "e"));
    const char *u = json_string_value(json_object_get(o, "u"));
    sq_hook *k = &h->v[h->n];
    k->on = (int)json_integer_value(json_object_get(o, "on"));
    k->p = json_integer_value(json_object_get(o, "p")) == 1;
    if (ep == NULL) { /* not a hook: keep the index of those after it */
      k->on = 0;
      ep = "";
    }
    if ((k->e = jobq__strdup(ep)) == NULL || (u && (k->u = jobq__strdup(u)) == NULL)) {
      free(k->e);
      k->e = NULL;
      json_decref(a);
      hooks_clear(h);
      return NULL;
    }
    if (k->on & 8) h->any_progress = 1;
    h->n++;
  }
  json_decref(a);
  if ((h->text = jobq__strdup(text)) == NULL) {
    hooks_clear(h);
    return NULL;
  }
  return h;
}

/* Deliveries added by the transaction's job ends, written together. */
#define OB_MANY 32
/* Announcements settled per statement. */
#define NEWS_CHUNK 512
#define NEWS_CHUNK_S "512"
#define OB_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define ANN_ROW "(?, ?, ?)"
typedef struct sq_obrow {
  size_t id, job, ep, url; /* offsets into buf; url SIZE_MAX: none */
  int hook, event, flags;
  int ann;                 /* an announcement: job and event (the job's state) only */
  int64_t now;
} sq_obrow;
struct sq_obpend {
  char *buf;
  size_t len, cap;
  sq_obrow *v;
  size_t n, cap_v;
};

static const char *const sql[WS_COUNT] = {
  [WS_OB_INSERT] = NEW_DELIVERY_COLS "VALUES " OB_ROW,
  /* WS_OB_INSERT_MANY: made by jobq__sq_outbox_prepare */
  [WS_OB_DROP_PROGRESS] =
      "DELETE FROM jobq_outbox WHERE " JOB_RANGE("?1") " AND event = 3 AND +state = 0",
  /* ?1 job, ?2 stage, ?3 hooks, ?4 now; one pending progress delivery per
   * job and hook at most (coalescing) */
  [WS_OB_PROGRESS] =
      NEW_DELIVERY_COLS
      "SELECT ?1 || ':' || h.key || ':progress:' || ?2, ?1, json_extract(h.value, '$.e'), "
      "json_extract(h.value, '$.u'), h.key, 3, coalesce(json_extract(h.value, '$.p'), 0) = 1, "
      "?4, ?4, ?4 FROM " HOOKS("?3") " WHERE h.type = 'object' AND "
      "(coalesce(json_extract(h.value, '$.on'), 0) & 8) <> 0 AND NOT EXISTS (SELECT 1 FROM "
      "jobq_outbox o WHERE o.id > ?1 || ':' AND o.id < ?1 || ';' AND o.hook = h.key AND o.event = 3 "
      "AND +o.state = 0)",
  /* due deliveries of state ?1 with next_at <= ?2, of the endpoints ?3 */
  [WS_OB_DUE] = "SELECT " DELIVERY_COLS " FROM jobq_outbox WHERE state = ?1 AND next_at <= ?2 AND "
                "endpoint IN (SELECT value FROM json_each(?3)) ORDER BY next_at, id LIMIT ?4",
  [WS_OB_JOB] = "SELECT " SQ_JOB_COLS " FROM jobq_jobs WHERE id = ?1",
  [WS_OB_DISABLED] = "SELECT disabled_at FROM jobq_webhook_disabled WHERE url = ?1",
  [WS_OB_TAKE] =
      "UPDATE jobq_outbox SET state = 1, attempts = attempts + 1, next_at = ?2, updated_at = ?3 "
      "WHERE id = ?1",
  [WS_OB_FAIL] =
      "UPDATE jobq_outbox SET state = 3, last_error = ?2, next_at = 0, updated_at = ?3 WHERE id = ?1",
  /* the earliest of state ?1 of the endpoints ?2 that the claim did not take (?3) */
  /* the earliest of state ?1 of the endpoints ?2 in (?3, ?4): past what a
   * claim read (it took all of those, unless it hit its max), before the
   * leases it just gave */
  [WS_OB_NEXT] = "SELECT next_at FROM jobq_outbox WHERE state = ?1 AND next_at > ?3 AND "
                 "next_at < ?4 AND endpoint IN (SELECT value FROM json_each(?2)) "
                 "ORDER BY next_at LIMIT 1",
  [WS_OB_ANY_DISABLED] = "SELECT 1 FROM jobq_webhook_disabled LIMIT 1",
  [WS_OB_DONE] =
      "UPDATE jobq_outbox SET state = ?3, last_status = ?4, last_error = ?5, updated_at = ?6, "
      "next_at = ?7 WHERE id = ?1 AND state = 1 AND attempts = ?2",
  [WS_OB_DISABLE] =
      "INSERT INTO jobq_webhook_disabled (url, disabled_at) VALUES (?1, ?2) "
      "ON CONFLICT (url) DO UPDATE SET disabled_at = excluded.disabled_at",
  [WS_OB_REDELIVER] =
      "UPDATE jobq_outbox SET state = 0, attempts = 0, next_at = ?2, updated_at = ?2 "
      "WHERE id = ?1 AND state = 3",
  [WS_OB_STATE] = "SELECT state FROM jobq_outbox WHERE id = ?1",
  [WS_OB_ENABLE] = "DELETE FROM jobq_webhook_disabled WHERE url = ?1",
  [WS_OB_BUSY] = "SELECT 1 FROM jobq_outbox WHERE " JOB_RANGE("?1") " AND +state IN (0, 1) LIMIT 1",
  [WS_OB_DELETE_JOB] = "DELETE FROM jobq_outbox WHERE " JOB_RANGE("?1"),
  [WS_OB_ANN] = "INSERT INTO jobq_outbox_news (job, state, at) VALUES " ANN_ROW,
  /* WS_OB_ANN_MANY: made by jobq__sq_outbox_prepare */
  /* the oldest announcements, with their jobs' subscriptions (NULL: the
   * job is gone, which a prune's settling first rules out) */
  [WS_OB_NEWS] = "SELECT n.seq, n.job, n.state, n.at, j.webhooks FROM jobq_outbox_news n "
                 "LEFT JOIN jobq_jobs j ON j.id = n.job ORDER BY n.seq LIMIT " NEWS_CHUNK_S,
  [WS_OB_NEWS_DONE] = "DELETE FROM jobq_outbox_news WHERE seq <= ?1",
};

int jobq__sq_outbox_prepare(sq_store *s) {
  int rc = jobq__sq_prepare(s, sql);
  if (rc) return rc;
  char many[sizeof NEW_DELIVERY_COLS + 8 + OB_MANY * (sizeof OB_ROW + 1)];
  size_t n = (size_t)snprintf(many, sizeof many, "%sVALUES ", NEW_DELIVERY_COLS);
  for (int i = 0; i < OB_MANY; i++)
    n += (size_t)snprintf(many + n, sizeof many - n, "%s%s", i ? "," : "", OB_ROW);
  rc = sqlite3_prepare_v3(s->w, many, -1, SQLITE_PREPARE_PERSISTENT, &s->ws[WS_OB_INSERT_MANY], NULL);
  if (rc != SQLITE_OK) return jobq__sq_error(s->w, rc, "cannot prepare a statement", s->path);
  char ann[96 + OB_MANY * (sizeof ANN_ROW + 1)];
  n = (size_t)snprintf(ann, sizeof ann, "INSERT INTO jobq_outbox_news (job, state, at) VALUES ");
  for (int i = 0; i < OB_MANY; i++)
    n += (size_t)snprintf(ann + n, sizeof ann - n, "%s%s", i ? "," : "", ANN_ROW);
  rc = sqlite3_prepare_v3(s->w, ann, -1, SQLITE_PREPARE_PERSISTENT, &s->ws[WS_OB_ANN_MANY], NULL);
  return rc == SQLITE_OK ? 0 : jobq__sq_error(s->w, rc, "cannot prepare a statement", s->path);
}

/* ---- deliveries added, written together ---- */

static size_t pend_str(struct sq_obpend *p, const char *str, int *oom) {
  size_t n = strlen(str) + 1;
  if (p->len + n > p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 4096;
    while (cap < p->len + n) cap *= 2;
    char *b = realloc(p->buf, cap);
    if (b == NULL) {
      *oom = 1;
      return 0;
    }
    p->buf = b;
    p->cap = cap;
  }
  memcpy(p->buf + p->len, str, n);
  p->len += n;
  return p->len - n;
}

/* A pending row: a delivery, or (id, ep NULL) an announcement of job's
 * end in state `event`. */
static int pend_add(sq_store *s, const char *id, const char *job, const char *ep, const char *url,
                    int hook, int event, int flags, int64_t now) {
  if (s->ob_pend == NULL && (s->ob_pend = calloc(1, sizeof *s->ob_pend)) == NULL) return nomem();
  struct sq_obpend *p = s->ob_pend;
  if (p->n == p->cap_v) {
    size_t cap = p->cap_v ? p->cap_v * 2 : 64;
    sq_obrow *v = realloc(p->v, cap * sizeof *v);
    if (v == NULL) return nomem();
    p->v = v;
    p->cap_v = cap;
  }
  int oom = 0;
  sq_obrow r = {0};
  /* The first string of a row is its id's (or job's): a drop cuts there. */
  r.ann = id == NULL;
  r.id = pend_str(p, id ? id : job, &oom);
  r.job = id ? pend_str(p, job, &oom) : r.id;
  r.ep = ep ? pend_str(p, ep, &oom) : SIZE_MAX;
  r.url = url ? pend_str(p, url, &oom) : SIZE_MAX;
  if (oom) return nomem();
  r.hook = hook;
  r.event = event;
  r.flags = flags;
  r.now = now;
  p->v[p->n++] = r;
  return 0;
}

static void pend_free(sq_store *s) {
  if (s->ob_pend == NULL) return;
  free(s->ob_pend->buf);
  free(s->ob_pend->v);
  free(s->ob_pend);
  s->ob_pend = NULL;
}

size_t jobq__sq_outbox_mark(sq_store *s) {
  return s->ob_pend ? s->ob_pend->n : 0;
}

void jobq__sq_outbox_drop(sq_store *s, size_t mark) {
  struct sq_obpend *p = s->ob_pend;
  if (p == NULL || mark >= p->n) return;
  p->n = mark;
  p->len = mark ? p->v[mark].id : 0; /* the rows' strings are in order */
}

static void bind_row(sqlite3_stmt *u, int base, const struct sq_obpend *p, const sq_obrow *r) {
  sqlite3_bind_text(u, base + 1, p->buf + r->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(u, base + 2, p->buf + r->job, -1, SQLITE_STATIC);
  sqlite3_bind_text(u, base + 3, p->buf + r->ep, -1, SQLITE_STATIC);
  if (r->url == SIZE_MAX) sqlite3_bind_null(u, base + 4);
  else sqlite3_bind_text(u, base + 4, p->buf + r->url, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, base + 5, r->hook);
  sqlite3_bind_int(u, base + 6, r->event);
  sqlite3_bind_int(u, base + 7, r->flags);
  sqlite3_bind_int64(u, base + 8, r->now);
  sqlite3_bind_int64(u, base + 9, r->now);
  sqlite3_bind_int64(u, base + 10, r->now);
}

static void bind_ann(sqlite3_stmt *u, int base, const struct sq_obpend *p, const sq_obrow *r) {
  sqlite3_bind_text(u, base + 1, p->buf + r->job, -1, SQLITE_STATIC);
  sqlite3_bind_int(u, base + 2, r->event);
  sqlite3_bind_int64(u, base + 3, r->now);
}

/* The pending rows of one type (ann), OB_MANY to a statement. */
static int flush_type(sq_store *s, int ann) {
  struct sq_obpend *p = s->ob_pend;
  const sq_obrow *batch[OB_MANY];
  size_t k = 0, left = 0;
  for (size_t i = 0; i < p->n; i++) left += p->v[i].ann == ann;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < p->n; i++) {
    if (p->v[i].ann != ann) continue;
    batch[k++] = &p->v[i];
    left--;
    if (k < OB_MANY && left > 0) continue;
    /* a whole batch, or the rest one by one */
    int many = k == OB_MANY;
    size_t m0 = 0;
    while (rc == 0 && m0 < k) {
      size_t m1 = many ? k : m0 + 1;
      sqlite3_stmt *u =
          s->ws[ann ? (many ? WS_OB_ANN_MANY : WS_OB_ANN) : (many ? WS_OB_INSERT_MANY : WS_OB_INSERT)];
      for (size_t m = m0; m < m1; m++) {
        if (ann) bind_ann(u, (int)(m - m0) * 3, p, batch[m]);
        else bind_row(u, (int)(m - m0) * 10, p, batch[m]);
      }
      rc = jobq__sq_run(s, u, ann ? "cannot store webhook announcements" : "cannot store webhook deliveries");
      m0 = m1;
    }
    k = 0;
  }
  return rc;
}

int jobq__sq_outbox_flush(sq_store *s) {
  struct sq_obpend *p = s->ob_pend;
  if (p == NULL || p->n == 0) return 0;
  int rc = flush_type(s, 0);
  if (rc == 0) rc = flush_type(s, 1);
  p->n = 0;
  p->len = 0;
  /* The job ends that added them are written: if they are not, nothing of
   * the transaction may commit. */
  if (rc) s->tx_doomed = 1;
  return rc;
}


/* ---- the subscriptions ---- */

int jobq__sq_hooks_check(const char *const *hooks, size_t n) {
  const char *ok = NULL; /* the last text found good: a batch's jobs mostly share one */
  for (size_t i = 0; hooks && i < n; i++) {
    if (hooks[i] == NULL) continue;
    if (ok && (hooks[i] == ok || strcmp(hooks[i], ok) == 0)) continue;
    json_error_t e;
    json_t *a = json_loads(hooks[i], JSON_REJECT_DUPLICATES, &e);
    const char *why = NULL;
    if (!json_is_array(a)) why = "is not a JSON array";
    else if (json_array_size(a) < 1 || json_array_size(a) > 8) why = "must hold 1 to 8 hooks";
    for (size_t k = 0; why == NULL && k < json_array_size(a); k++) {
      json_t *h = json_array_get(a, k), *on = json_object_get(h, "on"), *u = json_object_get(h, "u"),
             *p = json_object_get(h, "p");
      if (!json_is_object(h)) why = "has a hook that is not an object";
      else if (!json_is_string(json_object_get(h, "e"))) why = "has a hook without \"e\" (endpoint)";
      else if (!json_is_integer(on) || json_integer_value(on) < 1 || json_integer_value(on) > 15)
        why = "has a hook whose \"on\" is not a mask 1..15";
      else if (u && !json_is_string(u)) why = "has a hook whose \"u\" is not a string";
      else if (p && !json_is_integer(p)) why = "has a hook whose \"p\" is not 0 or 1";
    }
    json_decref(a);
    if (why == NULL) ok = hooks[i];
    if (why)
      return jobq__err(JOBQ_EINVAL,
                       "sqlite storage: the webhooks of job %zu %s (nothing was stored): %.120s", i,
                       why, hooks[i]);
  }
  return 0;
}

/* ---- changes of jobs ---- */

int jobq__sq_outbox_end(sq_store *s, const char *job, int state, const char *hooks, int64_t now) {
  if (state < JOBQ_SUCCEEDED || state > JOBQ_CANCELLED) return 0;
  int k = state - JOBQ_SUCCEEDED;
  const struct sq_hooks *h = hooks_parsed(s, hooks);
  if (h == NULL) return jobq__sq_poison(s, jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory"));
  int rc = 0;
  if (h->any_progress) { /* a job's end drops its progress deliveries not yet sent */
    sqlite3_stmt *d = s->ws[WS_OB_DROP_PROGRESS];
    sqlite3_bind_text(d, 1, job, -1, SQLITE_TRANSIENT);
    rc = jobq__sq_run(s, d, "cannot drop a job's pending progress webhooks");
  }
  /* Its announcement, added to the transaction's pending rows (written
   * before it commits), if any subscription wants this end. */
  int any = 0;
  for (int i = 0; i < h->n; i++) any |= (h->v[i].on & (1 << k)) != 0;
  if (rc == 0 && any) rc = pend_add(s, NULL, job, NULL, NULL, 0, state, 0, now);
  return jobq__sq_poison(s, rc);
}

/* An announcement's deliveries, as pending rows: one per subscription that
 * wants the end (JOBQ_WEBHOOK_ON_SUCCEEDED, _FAILED, _CANCELLED), created
 * at the job's end. */
static int deliveries_of(sq_store *s, const char *job, int state, const struct sq_hooks *h,
                         int64_t at) {
  static const char *const word[] = {"succeeded", "failed", "cancelled"};
  if (state < JOBQ_SUCCEEDED || state > JOBQ_CANCELLED) return 0;
  int k = state - JOBQ_SUCCEEDED, rc = 0;
  for (int i = 0; rc == 0 && i < h->n; i++) {
    if (!(h->v[i].on & (1 << k))) continue;
    char id[JOBQ_ID_SIZE + 24];
    snprintf(id, sizeof id, "%s:%d:%s", job, i, word[k]);
    rc = pend_add(s, id, job, h->v[i].e, h->v[i].u, i, JOBQ_EVENT_SUCCEEDED + k, h->v[i].p, at);
  }
  return rc;
}

int jobq__sq_outbox_settle(sq_store *s) {
  int rc = jobq__sq_outbox_flush(s);
  for (;;) {
    if (rc) break;
    sqlite3_stmt *q = s->ws[WS_OB_NEWS];
    int64_t last = -1;
    int rows = 0, src;
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
      rows++;
      last = sqlite3_column_int64(q, 0);
      const char *text = (const char *)sqlite3_column_text(q, 4);
      if (text == NULL) continue; /* the job is gone: nothing to announce */
      const struct sq_hooks *h = hooks_parsed(s, text);
      if (h == NULL) {
        rc = nomem();
        break;
      }
      rc = deliveries_of(s, (const char *)sqlite3_column_text(q, 1), sqlite3_column_int(q, 2), h,
                         sqlite3_column_int64(q, 3));
      if (rc) break;
    }
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW)
      rc = jobq__sq_error(s->w, src, "cannot read webhook announcements", s->path);
    sqlite3_reset(q);
    if (rc || rows == 0) break;
    if ((rc = jobq__sq_outbox_flush(s)) != 0) break;
    sqlite3_stmt *d = s->ws[WS_OB_NEWS_DONE];
    sqlite3_bind_int64(d, 1, last);
    if ((rc = jobq__sq_run(s, d, "cannot clear webhook announcements")) != 0) break;
    if (rows < NEWS_CHUNK) break;
  }
  if (rc) s->tx_doomed = 1;
  return rc;
}

int jobq__sq_outbox_progress(sq_store *s, const char *job, int stage, const char *hooks,
                             int64_t now) {
  sqlite3_stmt *u = s->ws[WS_OB_PROGRESS];
  sqlite3_bind_text(u, 1, job, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(u, 2, stage);
  sqlite3_bind_text(u, 3, hooks, -1, SQLITE_TRANSIENT);
  /* checkpoint has no time of its own: the attempt's start, the latest
   * time on the queue's clock we know (storage.h) */
  sqlite3_bind_int64(u, 4, now);
  return jobq__sq_poison(s, jobq__sq_run(s, u, "cannot store a job's progress webhooks"));
}

int jobq__sq_outbox_busy(sq_store *s, const char *job, int *busy) {
  sqlite3_stmt *q = s->ws[WS_OB_BUSY];
  sqlite3_bind_text(q, 1, job, -1, SQLITE_TRANSIENT);
  int src = sqlite3_step(q);
  *busy = src == SQLITE_ROW;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return src == SQLITE_ROW || src == SQLITE_DONE
             ? 0
             : jobq__sq_error(s->w, src, "cannot read a job's webhook deliveries", s->path);
}

int jobq__sq_outbox_forget(sq_store *s, const char *job) {
  sqlite3_stmt *d = s->ws[WS_OB_DELETE_JOB];
  sqlite3_bind_text(d, 1, job, -1, SQLITE_TRANSIENT);
  return jobq__sq_run(s, d, "cannot delete a job's webhook deliveries");
}

/* ---- records ---- */

static char *col_dup(sqlite3_stmt *st, int i, int *oom) {
  if (sqlite3_column_type(st, i) == SQLITE_NULL) return NULL;
  const unsigned char *t = sqlite3_column_text(st, i);
  size_t n = (size_t)sqlite3_column_bytes(st, i);
  char *d = t ? malloc(n + 1) : NULL;
  if (d == NULL) {
    *oom = 1;
    return NULL;
  }
  memcpy(d, t, n);
  d[n] = '\0';
  return d;
}

/* Fills out from a row of DELIVERY_COLS; -1 on out of memory. */
static int row_to_delivery(sqlite3_stmt *st, jobq_storage_delivery *out) {
  memset(out, 0, sizeof *out);
  int oom = 0;
  out->id = col_dup(st, 0, &oom);
  const char *job = (const char *)sqlite3_column_text(st, 1);
  snprintf(out->job_id, sizeof out->job_id, "%s", job ? job : "");
  out->endpoint = col_dup(st, 2, &oom);
  out->url = col_dup(st, 3, &oom);
  out->hook = sqlite3_column_int(st, 4);
  out->event = sqlite3_column_int(st, 5);
  out->flags = sqlite3_column_int(st, 6);
  out->state = sqlite3_column_int(st, 7);
  out->attempts = sqlite3_column_int(st, 8);
  out->last_status = sqlite3_column_int(st, 9);
  out->last_error = col_dup(st, 10, &oom);
  out->created_at = sqlite3_column_int64(st, 11);
  out->next_at = sqlite3_column_int64(st, 12);
  out->updated_at = sqlite3_column_int64(st, 13);
  if (oom) {
    jobq_storage_delivery_clear(out);
    return -1;
  }
  return 0;
}

/* A JSON array of n strings (malloc'ed text), NULL when out of memory. */
static char *json_strings(const char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++)
    if (json_array_append_new(a, json_string(v[i] ? v[i] : "")) != 0) {
      json_decref(a);
      a = NULL;
    }
  char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
  json_decref(a);
  return t;
}

/* ---- claim ---- */

#define CLAIM_MAX 4096

typedef struct sq_ob_claim_req {
  sq_req h;
  const jobq_storage_outbox_claim *c;
  const char *eps; /* the endpoints, a JSON array */
  jobq_storage_delivery *out;
  jobq_storage_job *jobs;
  size_t *n_out;
} sq_ob_claim_req;

/* Up to max due deliveries of state `state` (next_at <= until), appended
 * to v (*n of them, room for cap). */
static int due(sq_store *s, sq_ob_claim_req *r, int state, int64_t until, size_t max,
               jobq_storage_delivery *v, size_t *n) {
  sqlite3_stmt *q = s->ws[WS_OB_DUE];
  sqlite3_bind_int(q, 1, state);
  sqlite3_bind_int64(q, 2, until);
  sqlite3_bind_text(q, 3, r->eps, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 4, (int64_t)max);
  int src, rc = 0;
  while ((src = sqlite3_step(q)) == SQLITE_ROW) {
    if (row_to_delivery(q, &v[*n]) != 0) {
      rc = nomem();
      break;
    }
    (*n)++;
  }
  if (rc == 0 && src != SQLITE_DONE)
    rc = jobq__sq_error(s->w, src, "cannot read due webhook deliveries", s->path);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return rc;
}

static int by_next_at(const void *a, const void *b) {
  const jobq_storage_delivery *x = a, *y = b;
  if (x->next_at != y->next_at) return x->next_at < y->next_at ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* The URL a delivery goes to: its own, else its endpoint's. */
static const char *effective_url(const jobq_storage_outbox_claim *c, const jobq_storage_delivery *d) {
  if (d->url) return d->url;
  for (size_t i = 0; i < c->n_endpoints; i++)
    if (c->endpoints[i] && strcmp(c->endpoints[i], d->endpoint) == 0) return c->urls ? c->urls[i] : NULL;
  return NULL;
}

/* Delivery d fails for good now with `why`. */
static int fail_now(sq_store *s, jobq_storage_delivery *d, const char *why, int64_t now) {
  char *e = jobq__strdup(why);
  if (e == NULL) return nomem();
  sqlite3_stmt *u = s->ws[WS_OB_FAIL];
  sqlite3_bind_text(u, 1, d->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(u, 2, why, -1, SQLITE_STATIC);
  sqlite3_bind_int64(u, 3, now);
  int rc = jobq__sq_run(s, u, "cannot fail a webhook delivery");
  if (rc) {
    free(e);
    return rc;
  }
  free(d->last_error);
  d->last_error = e;
  d->state = JOBQ_DELIVERY_FAILED;
  d->next_at = 0;
  d->updated_at = now;
  return 0;
}

/* *out: the time URL was disabled, 0 if it is not. */
static int disabled_at(sq_store *s, const char *url, int64_t *out) {
  sqlite3_stmt *q = s->ws[WS_OB_DISABLED];
  sqlite3_bind_text(q, 1, url, -1, SQLITE_STATIC);
  int src = sqlite3_step(q);
  *out = src == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
  if (src == SQLITE_ROW && *out == 0) *out = 1; /* disabled at the epoch: still disabled */
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return src == SQLITE_ROW || src == SQLITE_DONE
             ? 0
             : jobq__sq_error(s->w, src, "cannot read disabled webhook URLs", s->path);
}

/* jobs[i]: the job of d, as get fills it but without position or attempt
 * log; *gone when it is no longer stored (then zeroed). */
static int job_of(sq_store *s, const char *id, jobq_storage_job *out, int *gone) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *q = s->ws[WS_OB_JOB];
  sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
  int src = sqlite3_step(q), rc = 0;
  *gone = src == SQLITE_DONE;
  if (src == SQLITE_ROW) {
    if (jobq__sq_row_to_job(q, out, NULL, NULL) != 0) {
      rc = nomem();
    } else {
      for (int i = 0; i < out->n_attempt_log; i++) free(out->attempt_log[i].error);
      free(out->attempt_log);
      out->attempt_log = NULL;
      out->n_attempt_log = 0;
      out->position = -1;
    }
  } else if (src != SQLITE_DONE) {
    rc = jobq__sq_error(s->w, src, "cannot read a webhook delivery's job", s->path);
  }
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  return rc;
}

static void claim_undo(sq_store *s, sq_req *req) {
  (void)s;
  sq_ob_claim_req *r = (sq_ob_claim_req *)req;
  for (size_t i = 0; i < *r->n_out; i++) {
    jobq_storage_delivery_clear(&r->out[i]);
    jobq_storage_job_clear(&r->jobs[i]);
  }
  *r->n_out = 0;
  if (r->c->next_at) *r->c->next_at = INT64_MAX;
}

static int claim_run(sq_store *s, sq_req *req) {
  int frc = jobq__sq_outbox_settle(s); /* every announced delivery first */
  if (frc) return frc;
  sq_ob_claim_req *r = (sq_ob_claim_req *)req;
  const jobq_storage_outbox_claim *c = r->c;
  int64_t now = c->now;
  /* "up to max": one call takes at most CLAIM_MAX */
  size_t max = c->max < CLAIM_MAX ? c->max : CLAIM_MAX, n = 0;
  memset(r->jobs, 0, max * sizeof *r->jobs);
  /* The due ones of each state, best first, then the best of both: both
   * walk (state, next_at) in order and stop at max. The lists are read
   * before anything changes (a statement reading a table must not run
   * beside writes to it). */
  /* One more than max of each: the first one left, if any, is the next. */
  jobq_storage_delivery *v = calloc(2 * (max + 1), sizeof *v);
  if (v == NULL) return nomem();
  int rc = due(s, r, JOBQ_DELIVERY_PENDING, now, max + 1, v, &n);
  if (rc == 0) rc = due(s, r, JOBQ_DELIVERY_SENDING, now - 1, max + 1, v, &n);
  if (rc == 0) qsort(v, n, sizeof *v, by_next_at);
  size_t keep = n < max ? n : max;
  int64_t left = rc == 0 && n > keep ? v[keep].next_at : INT64_MAX;
  for (size_t i = keep; i < n; i++) jobq_storage_delivery_clear(&v[i]);
  n = rc ? n : keep;
  /* Disabled URLs are rare: look them up only when there are any. */
  int any_disabled = 0;
  if (rc == 0) {
    sqlite3_stmt *q = s->ws[WS_OB_ANY_DISABLED];
    int src = sqlite3_step(q);
    any_disabled = src == SQLITE_ROW;
    if (src != SQLITE_ROW && src != SQLITE_DONE)
      rc = jobq__sq_error(s->w, src, "cannot read disabled webhook URLs", s->path);
    sqlite3_reset(q);
  }
  size_t i = 0;
  for (; rc == 0 && i < n; i++) {
    jobq_storage_delivery *d = &v[i];
    jobq_storage_job *j = &r->jobs[i];
    int gone = 0;
    if ((rc = job_of(s, d->job_id, j, &gone))) break;
    if (gone) {
      rc = fail_now(s, d, "its job is no longer stored", now);
      continue;
    }
    const char *url = effective_url(c, d);
    int64_t at = 0;
    if (any_disabled && url && (rc = disabled_at(s, url, &at))) break;
    if (at) {
      time_t t = (time_t)(at / 1000);
      struct tm tm;
      char why[96], when[32];
      gmtime_r(&t, &tm);
      strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
      snprintf(why, sizeof why, "the URL answered 410 Gone on %s and is disabled", when);
      rc = fail_now(s, d, why, now);
      continue;
    }
    sqlite3_stmt *u = s->ws[WS_OB_TAKE];
    sqlite3_bind_text(u, 1, d->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, now + c->lease_ms);
    sqlite3_bind_int64(u, 3, now);
    if ((rc = jobq__sq_run(s, u, "cannot claim a webhook delivery"))) break;
    d->state = JOBQ_DELIVERY_SENDING;
    d->attempts++;
    d->next_at = now + c->lease_ms;
    d->updated_at = now;
  }
  if (rc == 0 && c->next_at) {
    /* The earliest of what was left: a due one the max left (read
     * above), else, everything due having been taken, the next past now
     * (pending) or a lease ending before the ones just given (sending). */
    int64_t next = left;
    for (int state = JOBQ_DELIVERY_PENDING; rc == 0 && left == INT64_MAX &&
                                            state <= JOBQ_DELIVERY_SENDING;
         state++) {
      sqlite3_stmt *q = s->ws[WS_OB_NEXT];
      sqlite3_bind_int(q, 1, state);
      sqlite3_bind_text(q, 2, r->eps, -1, SQLITE_STATIC);
      sqlite3_bind_int64(q, 3, state == JOBQ_DELIVERY_PENDING ? now : now - 1);
      sqlite3_bind_int64(q, 4, now + c->lease_ms);
      int src = sqlite3_step(q);
      if (src == SQLITE_ROW && sqlite3_column_int64(q, 0) < next) next = sqlite3_column_int64(q, 0);
      if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = jobq__sq_error(s->w, src, "cannot read the next webhook delivery", s->path);
      sqlite3_reset(q);
      sqlite3_clear_bindings(q);
    }
    if (rc == 0) *c->next_at = next;
  }
  if (rc) {
    for (size_t k = 0; k < n; k++) {
      jobq_storage_delivery_clear(&v[k]);
      jobq_storage_job_clear(&r->jobs[k]);
    }
    free(v);
    return rc;
  }
  memcpy(r->out, v, n * sizeof *v);
  free(v);
  *r->n_out = n;
  return 0;
}

static const sq_op claim_op = {claim_run, claim_undo};

int jobq__sq_outbox_claim(void *st, const jobq_storage_outbox_claim *req,
                          jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out) {
  *n_out = 0;
  if (req->next_at) *req->next_at = INT64_MAX;
  if (req->max == 0 || req->n_endpoints == 0) return 0;
  char *eps = json_strings(req->endpoints, req->n_endpoints);
  if (eps == NULL) return nomem();
  sq_ob_claim_req r = {0};
  r.h.op = &claim_op;
  r.h.savepoint = 1; /* several rows */
  r.c = req;
  r.eps = eps;
  r.out = out;
  r.jobs = jobs;
  r.n_out = n_out;
  int rc = jobq__sq_submit(st, &r.h);
  free(eps);
  return rc;
}

/* ---- done ---- */

typedef struct sq_ob_done_req {
  sq_req h;
  const jobq_storage_outbox_result *r;
  size_t n;
  int *applied;
} sq_ob_done_req;

static int done_run(sq_store *s, sq_req *req) {
  int frc = jobq__sq_outbox_flush(s); /* this transaction's deliveries first */
  if (frc) return frc;
  sq_ob_done_req *q = (sq_ob_done_req *)req;
  for (size_t i = 0; i < q->n; i++) {
    const jobq_storage_outbox_result *r = &q->r[i];
    sqlite3_stmt *u = s->ws[WS_OB_DONE];
    sqlite3_bind_text(u, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(u, 2, r->attempt);
    sqlite3_bind_int(u, 3, r->state);
    sqlite3_bind_int(u, 4, r->status);
    jobq__sq_bind_text_or_null(u, 5, r->error);
    sqlite3_bind_int64(u, 6, r->now);
    sqlite3_bind_int64(u, 7, r->state == JOBQ_DELIVERY_PENDING ? r->next_at : 0);
    int rc = jobq__sq_run(s, u, "cannot store a webhook delivery's try");
    if (rc) return rc;
    int applied = sqlite3_changes(s->w) > 0;
    if (q->applied) q->applied[i] = applied;
    if (applied && r->disable_url) {
      sqlite3_stmt *d = s->ws[WS_OB_DISABLE];
      sqlite3_bind_text(d, 1, r->disable_url, -1, SQLITE_STATIC);
      sqlite3_bind_int64(d, 2, r->now);
      if ((rc = jobq__sq_run(s, d, "cannot disable a webhook URL"))) return rc;
    }
  }
  return 0;
}

static void done_undo(sq_store *s, sq_req *req) {
  (void)s;
  sq_ob_done_req *q = (sq_ob_done_req *)req;
  if (q->applied) memset(q->applied, 0, q->n * sizeof *q->applied);
}

static const sq_op done_op = {done_run, done_undo};

int jobq__sq_outbox_done(void *st, const jobq_storage_outbox_result *r, size_t n, int *applied) {
  for (size_t i = 0; i < n; i++) {
    int state = r[i].state;
    if (r[i].id == NULL || (state != JOBQ_DELIVERY_PENDING && state != JOBQ_DELIVERY_DELIVERED &&
                            state != JOBQ_DELIVERY_FAILED))
      return jobq__err(JOBQ_EINVAL,
                       "sqlite storage: outbox_done: result %zu has %s (nothing was stored)", i,
                       r[i].id ? "a state other than pending, delivered or failed" : "no id");
  }
  if (applied) memset(applied, 0, n * sizeof *applied);
  if (n == 0) return 0;
  sq_ob_done_req q = {0};
  q.h.op = &done_op;
  q.h.savepoint = 1; /* all or none */
  q.r = r;
  q.n = n;
  q.applied = applied;
  return jobq__sq_submit(st, &q.h);
}

/* ---- redeliver, enable ---- */

typedef struct sq_ob_one_req {
  sq_req h;
  const char *key; /* a delivery's id, or a URL */
  int64_t now;
} sq_ob_one_req;

static int redeliver_run(sq_store *s, sq_req *req) {
  int frc = jobq__sq_outbox_settle(s); /* every announced delivery first */
  if (frc) return frc;
  sq_ob_one_req *r = (sq_ob_one_req *)req;
  sqlite3_stmt *u = s->ws[WS_OB_REDELIVER];
  sqlite3_bind_text(u, 1, r->key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(u, 2, r->now);
  int rc = jobq__sq_run(s, u, "cannot redeliver a webhook");
  if (rc || sqlite3_changes(s->w) > 0) return rc;
  sqlite3_stmt *q = s->ws[WS_OB_STATE];
  sqlite3_bind_text(q, 1, r->key, -1, SQLITE_STATIC);
  int src = sqlite3_step(q);
  int state = src == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (src != SQLITE_ROW && src != SQLITE_DONE)
    return jobq__sq_error(s->w, src, "cannot read a webhook delivery", s->path);
  if (state < 0)
    return jobq__err(JOBQ_ENOTFOUND, "sqlite storage: no webhook delivery '%.200s'", r->key);
  return jobq__err(JOBQ_ESTATE,
                   "sqlite storage: webhook delivery '%.200s' is %s, not failed: only a failed "
                   "delivery is sent again",
                   r->key,
                   state == JOBQ_DELIVERY_PENDING ? "pending"
                   : state == JOBQ_DELIVERY_SENDING ? "being sent"
                                                    : "delivered");
}

static int enable_run(sq_store *s, sq_req *req) {
  sq_ob_one_req *r = (sq_ob_one_req *)req;
  sqlite3_stmt *u = s->ws[WS_OB_ENABLE];
  sqlite3_bind_text(u, 1, r->key, -1, SQLITE_STATIC);
  int rc = jobq__sq_run(s, u, "cannot enable a webhook URL");
  if (rc == 0 && sqlite3_changes(s->w) == 0)
    rc = jobq__err(JOBQ_ENOTFOUND, "sqlite storage: the webhook URL '%.300s' is not disabled",
                   r->key);
  return rc;
}

static const sq_op redeliver_op = {redeliver_run, NULL};
static const sq_op enable_op = {enable_run, NULL};

int jobq__sq_outbox_redeliver(void *st, const char *id, int64_t now) {
  sq_ob_one_req r = {.h = {.op = &redeliver_op}, .key = id, .now = now};
  return jobq__sq_submit(st, &r.h);
}

int jobq__sq_webhook_enable(void *st, const char *url) {
  sq_ob_one_req r = {.h = {.op = &enable_op}, .key = url};
  return jobq__sq_submit(st, &r.h);
}

/* ---- reads ---- */

static int settle_run(sq_store *s, sq_req *req) {
  (void)req;
  return jobq__sq_outbox_settle(s);
}

static const sq_op settle_op = {settle_run, NULL};

/* Before a read of the outbox: announcements still waiting (the reader
 * sees every committed one) become deliveries, through the writer. */
static int settle_for_read(sq_store *s) {
  sq_reader *r = jobq__sq_reader(s);
  sqlite3_stmt *q = NULL;
  int any = 0;
  int rc = jobq__sq_reader_stmt(s, r, RS_OB_NEWS, "SELECT EXISTS (SELECT 1 FROM jobq_outbox_news)", &q);
  if (rc == 0) {
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) any = sqlite3_column_int(q, 0);
    else rc = jobq__sq_error(r->db, src, "cannot read webhook announcements", s->path);
    sqlite3_reset(q);
  }
  uv_mutex_unlock(&r->mu);
  if (rc || !any) return rc;
  sq_req h = {0};
  h.op = &settle_op;
  h.savepoint = 1; /* several rows */
  return jobq__sq_submit(s, &h);
}

int jobq__sq_outbox_counts(void *st, int64_t counts[4]) {
  sq_store *s = st;
  for (int i = 0; i < 4; i++) counts[i] = 0;
  int rc = settle_for_read(s);
  if (rc) return rc;
  sq_reader *r = jobq__sq_reader(s);
  sqlite3_stmt *q = NULL;
  /* one count per state, each a range of the (state, next_at) index */
  rc = jobq__sq_reader_stmt(s, r, RS_OB_COUNTS,
                                "SELECT (SELECT count(*) FROM jobq_outbox WHERE state = 0), "
                                "(SELECT count(*) FROM jobq_outbox WHERE state = 1), "
                                "(SELECT count(*) FROM jobq_outbox WHERE state = 2), "
                                "(SELECT count(*) FROM jobq_outbox WHERE state = 3)",
                                &q);
  if (rc == 0) {
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW)
      for (int i = 0; i < 4; i++) counts[i] = sqlite3_column_int64(q, i);
    else
      rc = jobq__sq_error(r->db, src, "cannot count webhook deliveries", s->path);
    sqlite3_reset(q);
  }
  uv_mutex_unlock(&r->mu);
  return rc;
}

int jobq__sq_outbox_list(void *st, const jobq_storage_outbox_filter *f,
                         jobq_storage_delivery **out, size_t *n_out, int *more) {
  sq_store *s = st;
  *out = NULL;
  *n_out = 0;
  *more = 0;
  if (f->limit < 1)
    return jobq__err(JOBQ_EINVAL, "sqlite storage: outbox_list: limit must be at least 1");
  int src0 = settle_for_read(s);
  if (src0) return src0;
  char sql_[512];
  int len = snprintf(sql_, sizeof sql_, "SELECT " DELIVERY_COLS " FROM jobq_outbox WHERE 1");
  if (f->job_id) len += snprintf(sql_ + len, sizeof sql_ - (size_t)len, " AND " JOB_RANGE("?1"));
  if (f->state >= 0)
    len += snprintf(sql_ + len, sizeof sql_ - (size_t)len, f->job_id ? " AND +state = ?2" : " AND state = ?2");
  if (f->cursor) len += snprintf(sql_ + len, sizeof sql_ - (size_t)len, " AND id > ?4");
  snprintf(sql_ + len, sizeof sql_ - (size_t)len, " ORDER BY id LIMIT ?5");
  jobq_storage_delivery *v = calloc((size_t)f->limit, sizeof *v);
  if (v == NULL) return nomem();
  sq_reader *r = jobq__sq_reader(s);
  int rc = 0, src;
  size_t got = 0;
  sqlite3_stmt *q = NULL;
  if (f->cursor) {
    /* A cursor that names no delivery is a mistake worth saying. */
    sqlite3_stmt *c = NULL;
    rc = jobq__sq_reader_stmt(s, r, RS_OB_CURSOR, "SELECT created_at FROM jobq_outbox WHERE id = ?1", &c);
    if (rc == 0) {
      sqlite3_bind_text(c, 1, f->cursor, -1, SQLITE_STATIC);
      src = sqlite3_step(c);
      if (src == SQLITE_DONE)
        rc = jobq__err(JOBQ_EINVAL, "sqlite storage: cursor %.200s names no webhook delivery", f->cursor);
      else if (src != SQLITE_ROW)
        rc = jobq__sq_error(r->db, src, "cannot list webhook deliveries", s->path);
      sqlite3_reset(c);
      sqlite3_clear_bindings(c);
    }
    if (rc) goto out;
  }
  src = sqlite3_prepare_v2(r->db, sql_, -1, &q, NULL);
  if (src != SQLITE_OK) {
    rc = jobq__sq_error(r->db, src, "cannot list webhook deliveries", s->path);
    goto out;
  }
  if (f->job_id) sqlite3_bind_text(q, 1, f->job_id, -1, SQLITE_STATIC);
  if (f->state >= 0) sqlite3_bind_int(q, 2, f->state);
  if (f->cursor) sqlite3_bind_text(q, 4, f->cursor, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 5, (int64_t)f->limit + 1);
  while ((src = sqlite3_step(q)) == SQLITE_ROW) {
    if (got == (size_t)f->limit) {
      *more = 1;
      break;
    }
    if (row_to_delivery(q, &v[got]) != 0) {
      rc = nomem();
      break;
    }
    got++;
  }
  if (rc == 0 && src != SQLITE_ROW && src != SQLITE_DONE)
    rc = jobq__sq_error(r->db, src, "cannot list webhook deliveries", s->path);
out:
  sqlite3_finalize(q);
  uv_mutex_unlock(&r->mu);
  if (rc) {
    for (size_t i = 0; i < got; i++) jobq_storage_delivery_clear(&v[i]);
    got = 0;
    *more = 0;
  }
  if (got == 0) {
    free(v);
    v = NULL;
  }
  *out = v;
  *n_out = got;
  return rc;
}
