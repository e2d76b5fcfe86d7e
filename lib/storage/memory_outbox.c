/* The memory backend's webhook outbox (see memory_outbox.h).
 *
 * Each delivery is in three places: the id map, the outbox's list ordered
 * by (created_at, id) (deliveries come mostly in time order, so an insert
 * walks back a step or two from the end), and its job's list. outbox_list
 * goes by id (storage.h): it sorts what it pages through, which is fine
 * for a backend that lives as long as one process. While pending or sending it is also in its
 * endpoint's heap ordered by (next_at, id), so that a claim looks only at
 * the endpoints it serves and takes the earliest first at any depth.
 *
 * A delivery's job is never gone here: a job and its deliveries are
 * deleted together (jobq__mbox_forget), so claim's "its job is no longer
 * stored" cannot happen in this backend. */
#include "storage/memory_outbox.h"

#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct jobq__mdeliv {
  jobq_storage_delivery d;   /* its strings owned */
  jobq__mhooks *owner;       /* the job's subscriptions */
  jobq__mendpoint *ep;
  jobq__mdeliv *jnext;       /* the job's list (or a prepared list) */
  jobq__mdeliv *prev, *next; /* the outbox, by (created_at, id) */
  jobq__mdeliv *tmp;         /* a claim's own lists */
  uint32_t hidx;
  uint8_t in_heap;
};

typedef struct mdisabled {
  int64_t at;
  char url[];
} mdisabled;

#define MAX_HOOKS 8

static int oom(const char *fn) {
  return jobq__err(JOBQ_ENOMEM, "memory storage: %s: out of memory", fn);
}

static int due_less(const void *a, const void *b) {
  const jobq__mdeliv *x = a, *y = b;
  if (x->d.next_at != y->d.next_at) return x->d.next_at < y->d.next_at;
  return strcmp(x->d.id, y->d.id) < 0;
}

static uint32_t *due_slot(void *e) { return &((jobq__mdeliv *)e)->hidx; }

static int ord_less(const jobq__mdeliv *x, const jobq__mdeliv *y) {
  if (x->d.created_at != y->d.created_at) return x->d.created_at < y->d.created_at;
  return strcmp(x->d.id, y->d.id) < 0;
}

static int is_active(int state) {
  return state == JOBQ_DELIVERY_PENDING || state == JOBQ_DELIVERY_SENDING;
}

static void d_free(jobq__mdeliv *x) {
  jobq_storage_delivery_clear(&x->d);
  free(x);
}

/* ---- subscriptions ---- */

void jobq__mhooks_free(jobq__mhooks *h) {
  if (h == NULL) return;
  for (int i = 0; i < h->n; i++) {
    free(h->hook[i].endpoint);
    free(h->hook[i].url);
  }
  free(h);
}

/* The core writes this text and it is always well formed; anything else is
 * refused rather than stored as "no hooks", since a job that silently lost
 * its subscriptions would never be announced. */
int jobq__mhooks_parse(const char *json, const char *what, jobq__mhooks **out) {
  *out = NULL;
  json_t *a = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
  size_t n = json_is_array(a) ? json_array_size(a) : 0;
  if (n == 0 || n > MAX_HOOKS) {
    json_decref(a);
    return jobq__err(JOBQ_EINVAL, "memory storage: %s: webhooks is not a JSON array of 1 to %d hooks",
                     what, MAX_HOOKS);
  }
  jobq__mhooks *h = calloc(1, sizeof *h + n * sizeof h->hook[0]);
  if (h == NULL) {
    json_decref(a);
    return oom(what);
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    json_t *o = json_array_get(a, i);
    json_t *e = json_object_get(o, "e"), *on = json_object_get(o, "on");
    json_t *u = json_object_get(o, "u"), *p = json_object_get(o, "p");
    if (!json_is_string(e) || json_string_length(e) == 0 || !json_is_integer(on) ||
        json_integer_value(on) < 1 || json_integer_value(on) > 15 ||
        (u && !json_is_string(u) && !json_is_null(u)) || (p && !json_is_integer(p))) {
      rc = jobq__err(JOBQ_EINVAL,
                     "memory storage: %s: webhooks hook %zu is not {\"e\": name, \"on\": 1..15, "
                     "\"u\"?: url, \"p\"?: 0|1}",
                     what, i);
      break;
    }
    jobq__mhook *k = &h->hook[i];
    h->n = (int)i + 1; /* so that a failure frees what was copied */
    k->mask = (int)json_integer_value(on);
    k->flags = p && json_integer_value(p) == 1 ? 1 : 0;
    if ((k->endpoint = jobq__strdup(json_string_value(e))) == NULL ||
        (json_is_string(u) && (k->url = jobq__strdup(json_string_value(u))) == NULL))
      rc = oom(what);
  }
  json_decref(a);
  if (rc) {
    jobq__mhooks_free(h);
    return rc;
  }
  *out = h;
  return 0;
}

/* ---- the outbox's structure ---- */

static jobq__mendpoint *ep_get(jobq__mbox *b, const char *name, int create) {
  jobq__mendpoint *e = jobq__map_get(&b->endpoints, name);
  if (e || !create) return e;
  size_t len = strlen(name) + 1;
  if ((e = calloc(1, sizeof *e + len)) == NULL) return NULL;
  memcpy(e->name, name, len);
  e->due.less = due_less;
  e->due.slot = due_slot;
  if (jobq__map_put(&b->endpoints, e->name, e) != 0) {
    free(e);
    return NULL;
  }
  return e;
}

static void heap_in(jobq__mdeliv *x) {
  jobq__heap_push(&x->ep->due, x); /* room was there: see callers */
  x->in_heap = 1;
}

static void heap_out(jobq__mdeliv *x) {
  if (!x->in_heap) return;
  jobq__heap_remove(&x->ep->due, x);
  x->in_heap = 0;
}

static void set_state(jobq__mbox *b, jobq__mdeliv *x, int state) {
  b->counts[x->d.state]--;
  b->counts[state]++;
  if (x->owner) x->owner->active += is_active(state) - is_active(x->d.state);
  x->d.state = state;
}

static void order_insert(jobq__mbox *b, jobq__mdeliv *x) {
  jobq__mdeliv *p = b->last;
  while (p && ord_less(x, p)) p = p->prev;
  x->prev = p;
  x->next = p ? p->next : b->first;
  if (x->next) x->next->prev = x;
  else b->last = x;
  if (p) p->next = x;
  else b->first = x;
}

/* Takes x out of the outbox (not out of its job's list). */
static void unlink_d(jobq__mbox *b, jobq__mdeliv *x) {
  heap_out(x);
  jobq__map_del(&b->ids, x->d.id);
  if (x->prev) x->prev->next = x->next;
  else b->first = x->next;
  if (x->next) x->next->prev = x->prev;
  else b->last = x->prev;
  b->counts[x->d.state]--;
  if (x->owner && is_active(x->d.state)) x->owner->active--;
}

void jobq__mbox_free(jobq__mbox *b) {
  for (jobq__mdeliv *x = b->first, *n; x; x = n) {
    n = x->next;
    d_free(x);
  }
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&b->endpoints, &cur));) {
    jobq__heap_free(&((jobq__mendpoint *)e->val)->due);
    free(e->val);
  }
  for (size_t cur = 0; (e = jobq__map_next(&b->disabled, &cur));) free(e->val);
  jobq__map_free(&b->ids);
  jobq__map_free(&b->endpoints);
  jobq__map_free(&b->disabled);
  memset(b, 0, sizeof *b);
}

/* ---- changes that add deliveries ---- */

/* Prepares the delivery "<job>:<i>:<suffix>" unless it is stored already
 * (a change applied twice adds nothing twice); -1 on out of memory. Room
 * in the id map and the endpoint's heap is promised to it (reserved), so
 * that several prepares before one apply add up. */
static int prepare_one(jobq__mbox *b, const jobq__mhooks *h, int i, int event, const char *suffix,
                       int64_t now, jobq__mnew *n) {
  char id[JOBQ_ID_SIZE + 48];
  snprintf(id, sizeof id, "%s:%d:%s", h->job_id, i, suffix);
  if (jobq__map_get(&b->ids, id)) return 0;
  const jobq__mhook *k = &h->hook[i];
  jobq__mendpoint *ep = ep_get(b, k->endpoint, 1);
  if (ep == NULL || jobq__heap_reserve(&ep->due, ep->reserved + 1) != 0 ||
      jobq__map_reserve(&b->ids, b->reserved + 1) != 0)
    return -1;
  jobq__mdeliv *x = calloc(1, sizeof *x);
  if (x == NULL) return -1;
  if ((x->d.id = jobq__strdup(id)) == NULL || (x->d.endpoint = jobq__strdup(k->endpoint)) == NULL ||
      (k->url && (x->d.url = jobq__strdup(k->url)) == NULL)) {
    d_free(x);
    return -1;
  }
  snprintf(x->d.job_id, sizeof x->d.job_id, "%s", h->job_id);
  x->d.hook = i;
  x->d.event = event;
  x->d.flags = k->flags;
  x->d.state = JOBQ_DELIVERY_PENDING;
  x->d.created_at = x->d.next_at = x->d.updated_at = now;
  x->ep = ep;
  ep->reserved++;
  b->reserved++;
  x->jnext = n->list;
  n->list = x;
  return 0;
}

int jobq__mbox_prepare_end(jobq__mbox *b, const jobq__mhooks *h, int state, int64_t now,
                           jobq__mnew *n) {
  int bit, event;
  const char *suffix;
  if (state == JOBQ_SUCCEEDED) {
    bit = JOBQ_WEBHOOK_ON_SUCCEEDED;
    event = JOBQ_EVENT_SUCCEEDED;
    suffix = "succeeded";
  } else if (state == JOBQ_FAILED) {
    bit = JOBQ_WEBHOOK_ON_FAILED;
    event = JOBQ_EVENT_FAILED;
    suffix = "failed";
  } else {
    bit = JOBQ_WEBHOOK_ON_CANCELLED;
    event = JOBQ_EVENT_CANCELLED;
    suffix = "cancelled";
  }
  for (int i = 0; i < h->n; i++)
    if ((h->hook[i].mask & bit) && prepare_one(b, h, i, event, suffix, now, n) != 0) return -1;
  return 0;
}

int jobq__mbox_prepare_progress(jobq__mbox *b, const jobq__mhooks *h, int stage, int64_t now,
                                jobq__mnew *n) {
  char suffix[32];
  snprintf(suffix, sizeof suffix, "progress:%d", stage);
  for (int i = 0; i < h->n; i++) {
    if (!(h->hook[i].mask & JOBQ_WEBHOOK_ON_PROGRESS)) continue;
    /* Coalesced: the body is built when it is sent, with the latest
     * progress, so one waiting delivery per hook is enough. */
    int waiting = 0;
    for (const jobq__mdeliv *x = h->list; x && !waiting; x = x->jnext)
      waiting = x->d.hook == i && x->d.event == JOBQ_EVENT_PROGRESS &&
                x->d.state == JOBQ_DELIVERY_PENDING;
    if (!waiting && prepare_one(b, h, i, JOBQ_EVENT_PROGRESS, suffix, now, n) != 0) return -1;
  }
  return 0;
}

void jobq__mbox_discard(jobq__mbox *b, jobq__mnew *n) {
  for (jobq__mdeliv *x = n->list, *next; x; x = next) {
    next = x->jnext;
    x->ep->reserved--;
    b->reserved--;
    d_free(x);
  }
  n->list = NULL;
}

void jobq__mbox_apply(jobq__mbox *b, jobq__mhooks *h, jobq__mnew *n, int ended) {
  if (ended) { /* the job's end drops a progress delivery not yet sent */
    for (jobq__mdeliv **pp = &h->list; *pp;) {
      jobq__mdeliv *x = *pp;
      if (x->d.event == JOBQ_EVENT_PROGRESS && x->d.state == JOBQ_DELIVERY_PENDING) {
        *pp = x->jnext;
        unlink_d(b, x);
        d_free(x);
      } else {
        pp = &x->jnext;
      }
    }
  }
  for (jobq__mdeliv *x = n->list, *next; x; x = next) {
    next = x->jnext;
    x->ep->reserved--;
    b->reserved--;
    if (jobq__map_get(&b->ids, x->d.id)) { /* prepared twice in one batch */
      d_free(x);
      continue;
    }
    jobq__map_put(&b->ids, x->d.id, x); /* reserved: cannot fail */
    heap_in(x);
    order_insert(b, x);
    b->counts[JOBQ_DELIVERY_PENDING]++;
    x->owner = h;
    h->active++;
    x->jnext = h->list;
    h->list = x;
  }
  n->list = NULL;
}

void jobq__mbox_forget(jobq__mbox *b, jobq__mhooks *h) {
  for (jobq__mdeliv *x = h->list, *next; x; x = next) {
    next = x->jnext;
    unlink_d(b, x);
    d_free(x);
  }
  h->list = NULL;
  h->active = 0;
}

/* ---- the version 4 members ---- */

static int copy_d(jobq_storage_delivery *o, const jobq_storage_delivery *d) {
  *o = *d;
  o->id = o->endpoint = o->url = o->last_error = NULL;
  if ((o->id = jobq__strdup(d->id)) == NULL || (o->endpoint = jobq__strdup(d->endpoint)) == NULL ||
      (d->url && (o->url = jobq__strdup(d->url)) == NULL) ||
      (d->last_error && (o->last_error = jobq__strdup(d->last_error)) == NULL)) {
    jobq_storage_delivery_clear(o);
    return -1;
  }
  return 0;
}

/* "the URL answered 410 Gone on <UTC time> and is disabled" */
static char *gone_sentence(int64_t at_ms) {
  time_t t = (time_t)(at_ms / 1000);
  struct tm tm;
  char when[32] = "?";
  if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  char buf[96];
  snprintf(buf, sizeof buf, "the URL answered 410 Gone on %s and is disabled", when);
  return jobq__strdup(buf);
}

int jobq__mbox_claim(jobq__mbox *b, const jobq_storage_outbox_claim *req,
                     jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out,
                     int (*fill_job)(void *job, jobq_storage_job *out)) {
  *n_out = 0;
  size_t ne = req->n_endpoints;
  jobq__mendpoint *small[16], **eps = ne <= 16 ? small : malloc(ne * sizeof *eps);
  if (eps == NULL) return oom("outbox_claim");
  for (size_t k = 0; k < ne; k++) eps[k] = ep_get(b, req->endpoints[k], 0);
  /* Popped and put back at the end: sending ones whose lease ends at now
   * exactly (not yet claimable: aside), and the ones taken (so that next_at
   * counts only what the claim left). */
  jobq__mdeliv *aside = NULL, *taken = NULL;
  int rc = 0;
  while (*n_out < req->max) {
    size_t best = 0;
    jobq__mdeliv *t = NULL;
    for (size_t k = 0; k < ne; k++) {
      jobq__mdeliv *top = eps[k] ? jobq__heap_top(&eps[k]->due) : NULL;
      if (top && (t == NULL || due_less(top, t))) {
        t = top;
        best = k;
      }
    }
    if (t == NULL || t->d.next_at > req->now) break;
    heap_out(t);
    if (t->d.state == JOBQ_DELIVERY_SENDING && t->d.next_at >= req->now) {
      t->tmp = aside;
      aside = t;
      continue;
    }
    const char *url = t->d.url ? t->d.url : (req->urls ? req->urls[best] : NULL);
    const mdisabled *dis = url ? jobq__map_get(&b->disabled, url) : NULL;
    jobq_storage_delivery *o = &out[*n_out];
    jobq_storage_job *j = &jobs[*n_out];
    memset(j, 0, sizeof *j);
    char *err = dis ? gone_sentence(dis->at) : NULL;
    char *err2 = dis ? jobq__strdup(err) : NULL;
    if ((dis && (err == NULL || err2 == NULL)) || copy_d(o, &t->d) != 0) {
      free(err);
      free(err2);
      heap_in(t);
      rc = *n_out ? 0 : oom("outbox_claim");
      break;
    }
    if (fill_job(t->owner->job, j) != 0) {
      free(err);
      free(err2);
      jobq_storage_delivery_clear(o);
      heap_in(t);
      rc = *n_out ? 0 : oom("outbox_claim");
      break;
    }
    /* Nothing fails from here on. */
    if (dis) { /* failed for good, returned so that the caller reports it */
      set_state(b, t, JOBQ_DELIVERY_FAILED);
      t->d.next_at = 0;
      free(t->d.last_error);
      t->d.last_error = err2;
      free(o->last_error);
      o->last_error = err;
    } else {
      set_state(b, t, JOBQ_DELIVERY_SENDING);
      t->d.attempts++;
      t->d.next_at = req->now + req->lease_ms;
      t->tmp = taken;
      taken = t;
    }
    t->d.updated_at = req->now;
    o->state = t->d.state;
    o->attempts = t->d.attempts;
    o->next_at = t->d.next_at;
    o->updated_at = t->d.updated_at;
    (*n_out)++;
  }
  int64_t next = INT64_MAX;
  for (size_t k = 0; k < ne; k++) {
    const jobq__mdeliv *top = eps[k] ? jobq__heap_top(&eps[k]->due) : NULL;
    if (top && top->d.next_at < next) next = top->d.next_at;
  }
  /* They were in the heaps a moment ago: putting them back allocates
   * nothing. */
  for (jobq__mdeliv *x = aside, *n; x; x = n) {
    n = x->tmp;
    if (x->d.next_at < next) next = x->d.next_at;
    heap_in(x);
  }
  for (jobq__mdeliv *x = taken, *n; x; x = n) {
    n = x->tmp;
    heap_in(x);
  }
  if (req->next_at) *req->next_at = next;
  if (eps != small) free(eps);
  return rc;
}

int jobq__mbox_done(jobq__mbox *b, const jobq_storage_outbox_result *r, size_t n, int *applied) {
  for (size_t i = 0; i < n; i++)
    if (r[i].id == NULL ||
        (r[i].state != JOBQ_DELIVERY_PENDING && r[i].state != JOBQ_DELIVERY_DELIVERED &&
         r[i].state != JOBQ_DELIVERY_FAILED))
      return jobq__err(JOBQ_EINVAL,
                       "memory storage: outbox_done: result %zu has no id or a state that is not "
                       "pending, delivered or failed",
                       i);
  /* Every copy first, so that the batch applies whole or not at all. */
  char **errs = calloc(n ? n : 1, sizeof *errs);
  mdisabled **dis = calloc(n ? n : 1, sizeof *dis);
  int rc = errs && dis ? 0 : -1;
  size_t ndis = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (r[i].error && (errs[i] = jobq__strdup(r[i].error)) == NULL) rc = -1;
    if (r[i].disable_url) {
      size_t len = strlen(r[i].disable_url) + 1;
      if ((dis[i] = malloc(sizeof *dis[i] + len)) == NULL) {
        rc = -1;
        break;
      }
      memcpy(dis[i]->url, r[i].disable_url, len);
      dis[i]->at = r[i].now;
      ndis++;
    }
  }
  if (rc == 0 && ndis && jobq__map_reserve(&b->disabled, ndis) != 0) rc = -1;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    jobq__mdeliv *x = jobq__map_get(&b->ids, r[i].id);
    int ok = x && x->d.state == JOBQ_DELIVERY_SENDING && x->d.attempts == r[i].attempt;
    if (applied) applied[i] = ok;
    if (!ok) continue;
    heap_out(x);
    set_state(b, x, r[i].state);
    x->d.last_status = r[i].status;
    free(x->d.last_error);
    x->d.last_error = errs[i];
    errs[i] = NULL;
    x->d.updated_at = r[i].now;
    x->d.next_at = r[i].state == JOBQ_DELIVERY_PENDING ? r[i].next_at : 0;
    if (r[i].state == JOBQ_DELIVERY_PENDING) heap_in(x); /* it just left it: no allocation */
    if (dis[i]) {
      mdisabled *old = jobq__map_get(&b->disabled, dis[i]->url);
      if (old) {
        old->at = dis[i]->at;
      } else {
        jobq__map_put(&b->disabled, dis[i]->url, dis[i]); /* reserved */
        dis[i] = NULL;
      }
    }
  }
  for (size_t i = 0; errs && dis && i < n; i++) {
    free(errs[i]);
    free(dis[i]);
  }
  free(errs);
  free(dis);
  return rc ? oom("outbox_done") : 0;
}

static int cmp_id(const void *a, const void *b) {
  const jobq__mdeliv *x = *(const jobq__mdeliv *const *)a, *y = *(const jobq__mdeliv *const *)b;
  return strcmp(x->d.id, y->d.id);
}

int jobq__mbox_list(jobq__mbox *b, const jobq_storage_outbox_filter *f, const jobq__mhooks *job,
                    jobq_storage_delivery **out, size_t *n_out, int *more) {
  *out = NULL;
  *n_out = 0;
  *more = 0;
  if (f->limit <= 0)
    return jobq__err(JOBQ_EINVAL, "memory storage: outbox_list: limit %d is not >= 1", f->limit);
  const jobq__mdeliv *cur = NULL;
  if (f->cursor && (cur = jobq__map_get(&b->ids, f->cursor)) == NULL)
    return jobq__err(JOBQ_EINVAL, "memory storage: outbox_list: cursor '%.200s' names no delivery",
                     f->cursor);
  /* One job's deliveries (its own short list) or all of them, those past
   * the cursor, sorted by id here. */
  jobq__mdeliv **v = NULL;
  size_t nv = 0;
  if (f->job_id) {
    for (const jobq__mdeliv *x = job ? job->list : NULL; x; x = x->jnext) nv++;
  } else {
    for (const jobq__mdeliv *x = b->first; x; x = x->next) nv++;
  }
  if (nv && (v = malloc(nv * sizeof *v)) == NULL) return oom("outbox_list");
  nv = 0;
  for (jobq__mdeliv *x = f->job_id ? (job ? job->list : NULL) : b->first; x;
       x = f->job_id ? x->jnext : x->next)
    if ((cur == NULL || strcmp(cur->d.id, x->d.id) < 0) &&
        (f->state < 0 || x->d.state == f->state))
      v[nv++] = x;
  if (nv > 1) qsort(v, nv, sizeof *v, cmp_id);
  jobq_storage_delivery *o = calloc((size_t)f->limit, sizeof *o);
  if (o == NULL) {
    free(v);
    return oom("outbox_list");
  }
  size_t n = 0;
  for (size_t vi = 0; vi < nv; vi++) {
    if (n == (size_t)f->limit) {
      *more = 1;
      break;
    }
    if (copy_d(&o[n], &v[vi]->d) != 0) {
      for (size_t i = 0; i < n; i++) jobq_storage_delivery_clear(&o[i]);
      free(o);
      free(v);
      return oom("outbox_list");
    }
    n++;
  }
  free(v);
  if (n == 0) {
    free(o);
    o = NULL;
  }
  *out = o;
  *n_out = n;
  return 0;
}

int jobq__mbox_redeliver(jobq__mbox *b, const char *id, int64_t now) {
  jobq__mdeliv *x = jobq__map_get(&b->ids, id);
  if (x == NULL)
    return jobq__err(JOBQ_ENOTFOUND, "memory storage: outbox_redeliver: no delivery '%.200s'", id);
  if (x->d.state != JOBQ_DELIVERY_FAILED)
    return jobq__err(JOBQ_ESTATE,
                     "memory storage: outbox_redeliver: delivery '%.200s' is %s, not failed", id,
                     x->d.state == JOBQ_DELIVERY_PENDING ? "pending"
                     : x->d.state == JOBQ_DELIVERY_SENDING ? "sending"
                                                           : "delivered");
  if (jobq__heap_reserve(&x->ep->due, x->ep->reserved + 1) != 0) return oom("outbox_redeliver");
  set_state(b, x, JOBQ_DELIVERY_PENDING);
  x->d.attempts = 0;
  x->d.next_at = now;
  x->d.updated_at = now;
  heap_in(x);
  return 0;
}

int jobq__mbox_enable(jobq__mbox *b, const char *url) {
  mdisabled *d = jobq__map_del(&b->disabled, url);
  if (d == NULL)
    return jobq__err(JOBQ_ENOTFOUND, "memory storage: webhook_enable: '%.200s' is not disabled", url);
  free(d);
  return 0;
}
