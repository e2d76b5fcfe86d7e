/* The memory backend: every job in this process's memory, lost at exit.
 *
 * One mutex guards the store. Per kind, due jobs wait in a ring per priority
 * when they came in submission order (the common case: O(1) in and out) and
 * in a heap (priority, then submission order) otherwise; jobs waiting for
 * their run_at wait in a heap by time, and a claim first moves those that
 * came due, so claiming costs O(1) or O(log n) at any depth. Jobs are also
 * chained in submission order for listing, and indexed by id, by dedupe
 * key, and while they run by id in a small map of their own.
 *
 * A queued job carries only what it needs to wait (about 140 bytes plus its
 * payload); what an attempt adds (owner, step, result, errors, attempt log)
 * lives in a side record allocated on first use, so a million queued jobs
 * stay small, and a job that runs once and succeeds plainly needs none. A job's webhook subscriptions live there too, and the
 * outbox of deliveries they make in memory_outbox.c: a job without
 * subscriptions costs one pointer test at its end. */
#include "jobq/storage.h"
#include "storage/dedupe.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/heap.h"
#include "util/map.h"
#include "util/mutex.h"
#include "storage/position.h"
#include "storage/batch.h"
#include "storage/ratelog.h"
#include "storage/memory_outbox.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* The due jobs of one priority of a kind: how many, and a seq no greater
 * than any of theirs (exact after a claim took the oldest; a cancel leaves
 * it low). What a deep job's position estimate is made of. */
typedef struct mband {
  int priority;
  size_t n;
  uint64_t lo;
  /* Jobs that come due in submission order (each younger than the last one
   * put here: new submits, the common case) wait in a ring, first in first
   * out, which costs O(1) in and out at any depth where a heap of a million
   * costs some twenty cache misses a claim. The others (retried, released,
   * promoted from delayed: older than jobs already here) go to the kind's
   * heap; a claim takes the better of the heap's top and the first ring's
   * head. A job that leaves out of turn (cancel) leaves a NULL behind.
   * Positions are absolute and wrap (uint32): a job in the ring keeps its
   * own in hidx. */
  struct mjob **ring;
  uint32_t ring_cap; /* a power of 2, or 0 */
  uint32_t head, tail;
  size_t ring_n;     /* live jobs in the ring */
  uint64_t last_seq; /* seq of the job put last */
} mband;

typedef struct mkind {
  char *name;
  jobq_heap ready;   /* due, out of submission order: priority desc, seq asc */
  size_t n_ready;    /* due jobs: the heap's and the bands' rings' */
  jobq_heap delayed; /* not yet due: run_at asc, seq asc */
  size_t requeue;    /* mem_finish: jobs of the batch that may be queued again */
  mband *bands;      /* priority desc; a band whose n fell to 0 stays */
  size_t n_bands, cap_bands;
  int bands_lost;    /* a band could not be allocated: estimates use n_ready */
  /* Retention (mem_prune_kind): while a pass over the jobs is under way
   * (ret_on), the next job it looks at (NULL: the end). A job that goes
   * moves the cursor on to its successor (drop_job). */
  struct mjob *ret_at;
  int ret_on;
} mkind;

typedef struct mext {
  char *owner, *step, *error, *dedupe_key;
  char *result; /* NULL for a succeeded job: "null" (most handlers give none) */
  char *ck_output;   /* pipeline checkpoint: output of stage ck_stage */
  int ck_stage;      /* -1: none (calloc gives 0, so stored as stage + 1) */
  int64_t dedupe_ttl_ms;
  jobq_storage_attempt *log; /* &log1 while there is one attempt */
  int nlog;
  jobq__mhooks *hooks; /* webhook subscriptions (insert_hooked), or NULL */
  /* The first attempt's entry: most jobs have one, and a million of them
   * then cost no allocation of their own. */
  jobq_storage_attempt log1;
} mext;

struct mbatch;

typedef struct mjob {
  struct mjob *prev, *next; /* submission order */
  mkind *kind;
  mext *x;
  struct mbatch *batch; /* NULL: not a member of a batch */
  uint64_t seq;
  int64_t created_at, run_at;
  /* The latest attempt's start, and the end of a finished job. A job
   * without a side record (x NULL) has had at most one attempt, without an
   * error: its attempt log is {started_at, finished_at} when attempts is
   * 1, so a job that runs once and succeeds allocates nothing on its way. */
  int64_t started_at, finished_at;
  uint32_t hidx;
  int16_t priority;
  uint8_t state, progress, cancel_req, delayed;
  uint8_t held; /* due, in its batch's held heap, waiting for a place (cap) */
  uint8_t in_ring; /* due, in its band's ring (hidx: its position there) */
  uint16_t attempts, max_attempts;
  char id[JOBQ_ID_SIZE];
  char payload[];
} mjob;

/* A batch (batch_insert). With a cap, members that are due wait in held
 * until the batch has a place for them: active counts the members in a
 * kind's ready heap or running, and a claim moves held members to their
 * ready heaps while active < cap. So a claim never sees more than the cap
 * allows, and costs nothing more for jobs without a batch. */
typedef struct mbatch {
  char id[JOBQ_ID_SIZE];
  int cap;
  int64_t total, open, running, succeeded, failed, cancelled, created_at, finished_at;
  int64_t active;
  jobq_heap held;
  char last_job[JOBQ_ID_SIZE];
  jobq_storage_batch_error errors[JOBQ_STORAGE_BATCH_ERRORS];
  int n_errors;
} mbatch;

/* A batch that ended, to be told once the store's lock is let go. */
typedef struct mnotice {
  struct mnotice *next;
  jobq_storage_event ev;
  char id[JOBQ_ID_SIZE], batch[JOBQ_ID_SIZE];
  char *kind, *summary;
} mnotice;

#define ID_SHARDS 64 /* a power of 2: id_map takes the hash's top 6 bits */
#define ID_EARLY 64  /* insert: larger batches check their ids before mu */

typedef struct mstore {
  uv_mutex_t mu;
  /* ids has a lock of its own, taken after mu (or alone): an insert checks
   * its ids and grows the map under idmu alone before it takes mu, so the
   * cache misses of a million ids and the map's rehashing as it doubles do
   * not hold up claims and finishes, which need mu and never ids. */
  uv_mutex_t idmu;
  /* id -> mjob, in ID_SHARDS maps by the top bits of the id's hash: each
   * grows by itself, a sixty-fourth at a time, from memory the allocator
   * reuses, where one map of a million ids rehashed 50 MB at once into
   * fresh pages and gave the old ones back (page faults, and a TLB
   * shootdown on every core that runs the process). */
  jobq_map ids[ID_SHARDS];
  /* id -> mjob of the jobs claimed and not finished: finish, progress and
   * heartbeat find their job in this small map, which stays in cache,
   * rather than in ids, where a million jobs cost two cache misses a
   * lookup. A job that could not be put here (out of memory) is found in
   * ids. */
  jobq_map running;
  jobq_map dedupe; /* key -> mjob */
  jobq_map kindmap;
  mkind **kinds;
  size_t n_kinds;
  mjob *first, *last;
  uint64_t seq;
  /* Per-owner quotas (set_quotas) and, only while there are some, the
   * unfinished jobs of each owner: "owner\x1f" (all kinds) and
   * "owner\x1fkind" -> mcount. Entries stay once made (one per owner and
   * kind seen), so that counting never allocates after the checks. */
  jobq_storage_quota *quotas;
  size_t n_quotas;
  jobq_map counts;
  /* Cron schedules, by name, under their own lock cmu (taken before mu):
   * a fire holds it across its check, its inserts and its update. */
  uv_mutex_t cmu;
  jobq_storage_cron *crons;
  size_t n_crons;
  /* Rate limits: kind -> mrate, made by the first claim that limits the
   * kind (mem_claim_rates). */
  jobq_map rates;
  jobq_map stats;  /* kind -> mstat (stats_add) */
  /* Batches: id -> mbatch, kept until close; the capped ones with members
   * not finished, for claims; ended batches waiting to be told. */
  jobq_map batches;
  mbatch **capped;
  size_t n_capped, cap_capped;
  mnotice *notices;
  void (*batch_sink)(void *ud, const jobq_storage_event *ev);
  void *batch_sink_ud;
  jobq__mbox ob; /* the webhook outbox (version 4) */
} mstore;

typedef struct mrate {
  jobq__ratelog log;
  char kind[];
} mrate;

/* A kind's shared stats, and what the store's one publisher said of it. */
typedef struct mstat {
  int64_t count[JOBQ_STORAGE_STAT_N];
  int64_t hist[JOBQ_STORAGE_HIST_N];
  double sum_ms, avg_ms;
  int concurrency;
  int64_t *started;
  size_t n_started;
  int64_t until;
  char kind[];
} mstat;

typedef struct mcount {
  long n;
  char key[];
} mcount;

static int ready_less(const void *a, const void *b) {
  const mjob *x = a, *y = b;
  if (x->priority != y->priority) return x->priority > y->priority;
  return x->seq < y->seq;
}

static int delayed_less(const void *a, const void *b) {
  const mjob *x = a, *y = b;
  if (x->run_at != y->run_at) return x->run_at < y->run_at;
  return x->seq < y->seq;
}

static uint32_t *job_slot(void *e) { return &((mjob *)e)->hidx; }

static int oom(const char *fn) { return jobq__err(JOBQ_ENOMEM, "memory storage: %s: out of memory", fn); }

/* Replaces *slot by a copy of s; -1 on out of memory (then unchanged). */
static int reset(char **slot, const char *s) {
  char *d = NULL;
  if (s && (d = jobq__strdup(s)) == NULL) return -1;
  free(*slot);
  *slot = d;
  return 0;
}

/* j's side record, made on first use (NULL on out of memory); the
 * attempt a job without one had moves into its log. */
static mext *ext(mjob *j) {
  if (j->x) return j->x;
  if ((j->x = calloc(1, sizeof *j->x)) == NULL) return NULL;
  if (j->attempts > 0) {
    j->x->log = &j->x->log1;
    j->x->log1.started_at = j->started_at;
    j->x->log1.finished_at = j->finished_at;
    j->x->nlog = 1;
  }
  return j->x;
}

static mband *band_find(mkind *k, int priority, size_t *at) {
  size_t lo = 0, hi = k->n_bands;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (k->bands[mid].priority == priority) return &k->bands[mid];
    if (k->bands[mid].priority > priority) lo = mid + 1;
    else hi = mid;
  }
  if (at) *at = lo;
  return NULL;
}

static jobq_map *id_map(mstore *s, uint64_t h) { return &s->ids[h >> 58]; }

/* The job with id, or NULL; mu held. */
static mjob *id_get(mstore *s, const char *id) {
  uint64_t h = jobq__hash(id);
  uv_mutex_lock(&s->idmu);
  mjob *j = jobq__map_get_h(id_map(s, h), id, h);
  uv_mutex_unlock(&s->idmu);
  return j;
}

/* Whether an id of jobs[0..n) is stored already (its index in *at), with
 * room made for n more; -1 on out of memory. idmu held. */
static int ids_check(mstore *s, jobq_storage_job *const *jobs, const uint64_t *hs, size_t n,
                     int prefetch, size_t *at) {
  size_t per[ID_SHARDS] = {0};
  for (size_t i = 0; i < n; i++) per[hs[i] >> 58]++;
  for (size_t k = 0; k < ID_SHARDS; k++)
    if (per[k] && jobq__map_reserve(&s->ids[k], per[k]) != 0) return -1;
  for (size_t i = 0; prefetch && i < n && i < 16; i++) jobq__map_prefetch(id_map(s, hs[i]), hs[i]);
  for (size_t i = 0; i < n; i++) {
    /* (a million ids do not fit in the cache: load the slots ahead) */
    if (prefetch && i + 16 < n) jobq__map_prefetch(id_map(s, hs[i + 16]), hs[i + 16]);
    if (jobq__map_get_h(id_map(s, hs[i]), jobs[i]->id, hs[i]) != NULL) {
      *at = i;
      return 1;
    }
  }
  return 0;
}

/* ---- a band's ring ---- */

/* The first live job of b's ring, or NULL; drops the NULLs before it. */
static mjob *ring_head(mband *b) {
  while (b->head != b->tail) {
    mjob *j = b->ring[b->head & (b->ring_cap - 1)];
    if (j) return j;
    b->head++;
  }
  return NULL;
}

/* Appends j if it is younger than every job of the ring; 0, or -1 when it
 * must go to the heap (out of order, or no memory to grow the ring). */
static int ring_push(mband *b, mjob *j) {
  if (b->ring_n > 0 && j->seq <= b->last_seq) return -1;
  if (b->ring_n == 0) b->head = b->tail; /* only NULLs left: start afresh */
  if (b->tail - b->head == b->ring_cap) {
    if (b->ring_cap >= (1u << 30)) return -1;
    uint32_t ncap = b->ring_cap ? b->ring_cap * 2 : 64;
    mjob **nr = malloc(ncap * sizeof *nr);
    if (nr == NULL) return -1;
    /* Every job keeps its absolute position; only the mask changes. */
    for (uint32_t i = b->head; i != b->tail; i++)
      nr[i & (ncap - 1)] = b->ring[i & (b->ring_cap - 1)];
    free(b->ring);
    b->ring = nr;
    b->ring_cap = ncap;
  }
  j->hidx = b->tail;
  j->in_ring = 1;
  b->ring[b->tail++ & (b->ring_cap - 1)] = j;
  b->ring_n++;
  b->last_seq = j->seq;
  return 0;
}

static void ring_remove(mband *b, mjob *j) {
  b->ring[j->hidx & (b->ring_cap - 1)] = NULL;
  j->in_ring = 0;
  b->ring_n--;
}

/* Pushes j on its kind's ready set: its band's ring when it comes in
 * order, else the heap (reserved by the caller); and counts it. */
static void ready_push(mkind *k, mjob *j) {
  k->n_ready++;
  size_t at = 0;
  mband *b = band_find(k, j->priority, &at);
  if (b == NULL) {
    if (k->n_bands == k->cap_bands) {
      size_t cap = k->cap_bands ? k->cap_bands * 2 : 4;
      mband *nb = realloc(k->bands, cap * sizeof *nb);
      if (nb == NULL) {
        k->bands_lost = 1;
        jobq__heap_push(&k->ready, j);
        return;
      }
      k->bands = nb;
      k->cap_bands = cap;
    }
    memmove(&k->bands[at + 1], &k->bands[at], (k->n_bands - at) * sizeof *k->bands);
    k->n_bands++;
    b = &k->bands[at];
    memset(b, 0, sizeof *b);
    b->priority = j->priority;
  }
  if (ring_push(b, j) != 0) jobq__heap_push(&k->ready, j);
  if (b->n++ == 0 || j->seq < b->lo) b->lo = j->seq;
}

/* The due job of k a claim takes first, or NULL. */
static mjob *ready_top(mkind *k) {
  mjob *t = jobq__heap_top(&k->ready);
  for (size_t i = 0; i < k->n_bands; i++) {
    mband *b = &k->bands[i];
    if (t && b->priority < t->priority) break; /* the heap's top wins */
    mjob *r = b->ring_n ? ring_head(b) : NULL;
    if (r == NULL) continue;
    if (t == NULL || ready_less(r, t)) t = r;
    break; /* lower bands' rings come after this one */
  }
  return t;
}

/* Uncounts j, which left the ready set; taken: it was the top. */
static void ready_uncount(mkind *k, const mjob *j, int taken) {
  k->n_ready--;
  mband *b = band_find(k, j->priority, NULL);
  if (b == NULL || b->n == 0) return; /* only after bands_lost */
  b->n--;
  /* The top is the oldest of the highest priority: the rest are younger. */
  if (taken) b->lo = j->seq + 1;
}

/* Takes j out of k's ready set (anywhere in it). */
static void ready_remove(mkind *k, mjob *j, int taken) {
  if (j->in_ring) ring_remove(band_find(k, j->priority, NULL), j);
  else jobq__heap_remove(&k->ready, j);
  ready_uncount(k, j, taken);
}

static int mem_open(const char *url, void **out) {
  if (strcmp(url, "memory:") != 0 && strcmp(url, "memory://") != 0)
    return jobq__err(JOBQ_EURL, "memory storage: '%.100s' takes no path or options; use \"memory:\"",
                     url);
  mstore *s = calloc(1, sizeof *s);
  if (s == NULL) return oom("open");
  if (jobq__mutex_init(&s->mu) != 0) {
    free(s);
    return jobq__err(JOBQ_ESTORAGE, "memory storage: cannot create a mutex");
  }
  if (jobq__mutex_init(&s->cmu) != 0) {
    uv_mutex_destroy(&s->mu);
    free(s);
    return jobq__err(JOBQ_ESTORAGE, "memory storage: cannot create a mutex");
  }
  if (jobq__mutex_init(&s->idmu) != 0) {
    uv_mutex_destroy(&s->cmu);
    uv_mutex_destroy(&s->mu);
    free(s);
    return jobq__err(JOBQ_ESTORAGE, "memory storage: cannot create a mutex");
  }
  *out = s;
  return 0;
}

static void free_job(mjob *j) {
  if (j->x) {
    free(j->x->owner);
    free(j->x->step);
    free(j->x->result);
    free(j->x->error);
    free(j->x->dedupe_key);
    free(j->x->ck_output);
    for (int i = 0; i < j->x->nlog; i++) free(j->x->log[i].error);
    if (j->x->log != &j->x->log1) free(j->x->log);
    jobq__mhooks_free(j->x->hooks);
    free(j->x);
  }
  free(j);
}

static void cron_clear(jobq_storage_cron *c) {
  free(c->name);
  free(c->expr);
  free(c->tz);
  free(c->kind);
  free(c->payload);
  free(c->owner);
  memset(c, 0, sizeof *c);
}

static void mem_close(void *st) {
  mstore *s = st;
  for (mjob *j = s->first, *n; j; j = n) {
    n = j->next;
    free_job(j);
  }
  for (size_t i = 0; i < s->n_kinds; i++) {
    jobq__heap_free(&s->kinds[i]->ready);
    jobq__heap_free(&s->kinds[i]->delayed);
    for (size_t b = 0; b < s->kinds[i]->n_bands; b++) free(s->kinds[i]->bands[b].ring);
    free(s->kinds[i]->bands);
    free(s->kinds[i]->name);
    free(s->kinds[i]);
  }
  free(s->kinds);
  for (size_t k = 0; k < ID_SHARDS; k++) jobq__map_free(&s->ids[k]);
  jobq__map_free(&s->running);
  jobq__map_free(&s->dedupe);
  jobq__map_free(&s->kindmap);
  jobq_map_slot *e;
  for (size_t cur = 0; (e = jobq__map_next(&s->counts, &cur));) free(e->val);
  jobq__map_free(&s->counts);
  for (size_t cur = 0; (e = jobq__map_next(&s->rates, &cur));) {
    jobq__ratelog_free(&((mrate *)e->val)->log);
    free(e->val);
  }
  jobq__map_free(&s->rates);
  for (size_t cur = 0; (e = jobq__map_next(&s->stats, &cur));) {
    free(((mstat *)e->val)->started);
    free(e->val);
  }
  jobq__map_free(&s->stats);
  for (size_t i = 0; i < s->n_quotas; i++) free((char *)s->quotas[i].kind);
  free(s->quotas);
  for (size_t i = 0; i < s->n_crons; i++) cron_clear(&s->crons[i]);
  free(s->crons);
  uv_mutex_destroy(&s->cmu);
  uv_mutex_destroy(&s->idmu);
  for (size_t cur = 0; (e = jobq__map_next(&s->batches, &cur));) {
    mbatch *b = e->val;
    for (int i = 0; i < b->n_errors; i++) free(b->errors[i].error);
    jobq__heap_free(&b->held);
    free(b);
  }
  jobq__map_free(&s->batches);
  free(s->capped);
  jobq__mbox_free(&s->ob);
  uv_mutex_destroy(&s->mu);
  free(s);
}

static mkind *kind_get(mstore *s, const char *name, int create) {
  mkind *k = jobq__map_get(&s->kindmap, name);
  if (k || !create) return k;
  mkind **nk = realloc(s->kinds, (s->n_kinds + 1) * sizeof *nk);
  if (nk == NULL) return NULL;
  s->kinds = nk;
  k = calloc(1, sizeof *k);
  if (k == NULL || (k->name = jobq__strdup(name)) == NULL || jobq__map_put(&s->kindmap, k->name, k) != 0) {
    if (k) free(k->name);
    free(k);
    return NULL;
  }
  k->ready.less = ready_less;
  k->ready.slot = job_slot;
  k->delayed.less = delayed_less;
  k->delayed.slot = job_slot;
  s->kinds[s->n_kinds++] = k;
  return k;
}

/* Queues j in its kind's heaps; the heaps were reserved by the caller. */
static void enqueue(mjob *j, int64_t now) {
  j->state = JOBQ_QUEUED;
  j->delayed = j->run_at > now;
  if (j->delayed) {
    jobq__heap_push(&j->kind->delayed, j);
  } else if (j->batch && j->batch->cap) {
    j->held = 1;
    jobq__heap_push(&j->batch->held, j);
  } else {
    ready_push(j->kind, j);
  }
}

static void dequeue(mjob *j) {
  if (j->delayed) {
    jobq__heap_remove(&j->kind->delayed, j);
  } else if (j->held) {
    jobq__heap_remove(&j->batch->held, j);
    j->held = 0;
  } else {
    if (j->batch && j->batch->cap) j->batch->active--;
    ready_remove(j->kind, j, 0);
  }
}

static int key_live(const mjob *j, int64_t now) {
  return jobq__key_live(j->state, j->finished_at, j->x ? j->x->dedupe_ttl_ms : 0,
                        now);
}

/* ---- per-owner quotas ---- */

#define COUNT_KEY_MAX (256 + 64 + 2) /* an owner, a kind, the separator, NUL */

static void count_key(char *buf, const char *owner, const char *kind) {
  snprintf(buf, COUNT_KEY_MAX, "%s\x1f%s", owner, kind ? kind : "");
}

/* The count entry of owner and kind (NULL: all kinds); made with n 0 when
 * create is set (NULL on out of memory). */
static mcount *count_get(mstore *s, const char *owner, const char *kind, int create) {
  char key[COUNT_KEY_MAX];
  count_key(key, owner, kind);
  mcount *c = jobq__map_get(&s->counts, key);
  if (c || !create) return c;
  size_t n = strlen(key) + 1;
  if ((c = calloc(1, sizeof *c + n)) == NULL) return NULL;
  memcpy(c->key, key, n);
  if (jobq__map_put(&s->counts, c->key, c) != 0) {
    free(c);
    return NULL;
  }
  return c;
}

/* A job of owner and kind became unfinished (+1) or finished (-1). The
 * entries exist: insert made them. */
static void count_move(mstore *s, const mjob *j, long d) {
  if (s->n_quotas == 0 || j->x == NULL || j->x->owner == NULL) return;
  mcount *all = count_get(s, j->x->owner, NULL, 0), *one = count_get(s, j->x->owner, j->kind->name, 0);
  if (all) all->n += d;
  if (one) one->n += d;
}

/* Before a batch is applied: which jobs are dedupe hits (dup[i]), and
 * whether the new ones stay within every quota. Makes the count entries
 * the batch needs, so that applying it cannot fail. s->mu held. */
static int quota_check(mstore *s, jobq_storage_job *const *jobs, size_t n, const int *force,
                       int64_t now, char *dup) {
  jobq_map seen = {0}; /* dedupe keys this batch takes */
  jobq_map add = {0};  /* count entry -> new jobs of this batch (as a pointer-sized int) */
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const jobq_storage_job *r = jobs[i];
    dup[i] = 0;
    if (r->dedupe_key && !(force && force[i])) {
      mjob *old = jobq__map_get(&s->dedupe, r->dedupe_key);
      dup[i] = jobq__map_get(&seen, r->dedupe_key) != NULL || (old && key_live(old, now));
    }
    if (dup[i]) continue;
    if (r->dedupe_key && jobq__map_put(&seen, r->dedupe_key, (void *)1) != 0) {
      rc = oom("insert");
      break;
    }
    if (r->owner == NULL) continue;
    mcount *both[2] = {count_get(s, r->owner, NULL, 1), count_get(s, r->owner, r->kind, 1)};
    if (both[0] == NULL || both[1] == NULL) {
      rc = oom("insert");
      break;
    }
    for (int b = 0; b < 2 && rc == 0; b++) {
      intptr_t k = (intptr_t)jobq__map_get(&add, both[b]->key) + 1;
      if (jobq__map_put(&add, both[b]->key, (void *)k) != 0) {
        rc = oom("insert");
        break;
      }
      for (size_t q = 0; q < s->n_quotas; q++) {
        const char *qk = s->quotas[q].kind;
        if (b == 0 ? qk != NULL : (qk == NULL || strcmp(qk, r->kind) != 0)) continue;
        if (both[b]->n + (long)k > s->quotas[q].max) {
          rc = jobq__err(JOBQ_EQUOTA,
                         "memory storage: owner '%.256s' has %ld unfinished jobs%s%s%s; its quota "
                         "is %d",
                         r->owner, both[b]->n + (long)k - 1, qk ? " of kind '" : "", qk ? qk : "",
                         qk ? "'" : "", s->quotas[q].max);
          break;
        }
      }
    }
  }
  jobq__map_free(&seen);
  jobq__map_free(&add);
  return rc;
}

static int mem_set_quotas(void *st, const jobq_storage_quota *q, size_t n) {
  mstore *s = st;
  jobq_storage_quota *v = calloc(n ? n : 1, sizeof *v);
  if (v == NULL) return oom("set_quotas");
  for (size_t i = 0; i < n; i++) {
    v[i].max = q[i].max;
    if (q[i].kind && (v[i].kind = jobq__strdup(q[i].kind)) == NULL) {
      for (size_t k = 0; k < i; k++) free((char *)v[k].kind);
      free(v);
      return oom("set_quotas");
    }
  }
  uv_mutex_lock(&s->mu);
  s->quotas = v;
  s->n_quotas = n;
  uv_mutex_unlock(&s->mu);
  return 0;
}

/* ---- batches ---- */

/* Moves held members of capped batches to their kinds' ready heaps while
 * each batch has a place. Out of memory: they wait for a later claim. */
static void batches_fill(mstore *s) {
  for (size_t i = 0; i < s->n_capped; i++) {
    mbatch *b = s->capped[i];
    mjob *j;
    while (b->active < b->cap && (j = jobq__heap_top(&b->held)) != NULL) {
      if (jobq__heap_reserve(&j->kind->ready, 1) != 0) return;
      jobq__heap_pop(&b->held);
      j->held = 0;
      ready_push(j->kind, j);
      b->active++;
    }
  }
}

static void batch_view(const mbatch *b, jobq_storage_batch *v) {
  memset(v, 0, sizeof *v);
  memcpy(v->id, b->id, JOBQ_ID_SIZE);
  v->max_running = b->cap;
  v->total = b->total;
  v->running = b->running;
  v->queued = b->open - b->running;
  v->succeeded = b->succeeded;
  v->failed = b->failed;
  v->cancelled = b->cancelled;
  v->created_at = b->created_at;
  v->finished_at = b->finished_at;
  memcpy(v->last_job, b->last_job, JOBQ_ID_SIZE);
  v->errors = (jobq_storage_batch_error *)b->errors; /* borrowed */
  v->n_errors = b->n_errors;
}

/* b's last member (last; NULL for a batch without members) ended at now:
 * b is done, and its news waits in s->notices for the lock to go. The
 * news is dropped on out of memory (it is news; the batch is done). */
static void batch_ended(mstore *s, mbatch *b, const mjob *last, int64_t now) {
  b->finished_at = now > 0 ? now : 1;
  if (last) memcpy(b->last_job, last->id, JOBQ_ID_SIZE);
  for (size_t i = 0; i < s->n_capped; i++) {
    if (s->capped[i] == b) {
      s->capped[i] = s->capped[--s->n_capped];
      break;
    }
  }
  if (s->batch_sink == NULL) return;
  jobq_storage_batch v;
  batch_view(b, &v);
  mnotice *n = calloc(1, sizeof *n);
  if (n == NULL) return;
  n->summary = jobq__batch_summary(&v);
  if (last && (n->kind = jobq__strdup(last->kind->name)) == NULL) {
    free(n->summary);
    n->summary = NULL;
  }
  if (n->summary == NULL) {
    free(n);
    return;
  }
  memcpy(n->id, b->last_job, JOBQ_ID_SIZE);
  memcpy(n->batch, b->id, JOBQ_ID_SIZE);
  n->ev.type = JOBQ_EVENT_BATCH_DONE;
  n->ev.state = last ? last->state : -1;
  n->ev.time = b->finished_at;
  n->next = s->notices;
  s->notices = n;
}

/* A member of a batch ended in state at now; err: the error a failed one
 * leaves to its batch (taken if kept). */
static void member_done(mstore *s, mjob *j, int state, char **err, int64_t now) {
  mbatch *b = j->batch;
  b->open--;
  if (state == JOBQ_SUCCEEDED) b->succeeded++;
  else if (state == JOBQ_FAILED) b->failed++;
  else b->cancelled++;
  if (state == JOBQ_FAILED && err && *err && b->n_errors < JOBQ_STORAGE_BATCH_ERRORS) {
    memcpy(b->errors[b->n_errors].job_id, j->id, JOBQ_ID_SIZE);
    b->errors[b->n_errors++].error = *err;
    *err = NULL;
  }
  if (b->open == 0) batch_ended(s, b, j, now);
}

/* Takes the notices (mu held); tell them once it is not. */
static mnotice *notices_take(mstore *s) {
  mnotice *n = s->notices, *rev = NULL;
  s->notices = NULL;
  while (n) { /* made newest first: tell them in order */
    mnotice *next = n->next;
    n->next = rev;
    rev = n;
    n = next;
  }
  return rev;
}

static void notices_tell(mstore *s, mnotice *n) {
  while (n) {
    mnotice *next = n->next;
    n->ev.id = n->id;
    n->ev.kind = n->kind;
    n->ev.step = n->batch;
    n->ev.result = n->summary;
    s->batch_sink(s->batch_sink_ud, &n->ev);
    free(n->kind);
    free(n->summary);
    free(n);
    n = next;
  }
}

static int mem_set_batch_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                              void *ud) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  s->batch_sink = sink;
  s->batch_sink_ud = ud;
  uv_mutex_unlock(&s->mu);
  return 0;
}

static int mem_batch_get(void *st, const char *id, jobq_storage_batch *out) {
  mstore *s = st;
  int rc = 0;
  uv_mutex_lock(&s->mu);
  mbatch *b = jobq__map_get(&s->batches, id);
  if (b == NULL) {
    rc = JOBQ_ENOTFOUND;
  } else {
    batch_view(b, out);
    out->errors = NULL;
    out->n_errors = 0;
    if (b->n_errors && (out->errors = calloc((size_t)b->n_errors, sizeof *out->errors)) == NULL)
      rc = oom("batch_get");
    for (int i = 0; rc == 0 && i < b->n_errors; i++) {
      memcpy(out->errors[i].job_id, b->errors[i].job_id, JOBQ_ID_SIZE);
      out->n_errors++;
      if ((out->errors[i].error = jobq__strdup(b->errors[i].error)) == NULL) rc = oom("batch_get");
    }
    if (rc) jobq_storage_batch_clear(out);
  }
  uv_mutex_unlock(&s->mu);
  return rc;
}

/* insert and batch_insert (batch_id set), and cron_fire's inserts (quotas
 * 0: counted by quotas but not checked against them); webhooks[i], when
 * webhooks is not NULL, job i's subscriptions (insert_hooked). */
static int insert_impl(mstore *s, const char *batch_id, int cap, jobq_storage_job *const *jobs,
                       const char *const *webhooks, size_t n, const int *force, int64_t now,
                       int *out_dup, int quotas) {
  int rc = 0;
  mbatch *b = NULL;
  /* made[i], then the hash of job i's id, made before the lock is taken */
  mjob **made = calloc(n ? n : 1, sizeof *made + sizeof(uint64_t));
  if (made == NULL) return oom("insert");
  uint64_t *hs = (uint64_t *)(made + (n ? n : 1));
  if (batch_id) {
    if ((b = calloc(1, sizeof *b)) == NULL) {
      free(made);
      return oom("insert");
    }
    snprintf(b->id, sizeof b->id, "%s", batch_id);
    b->cap = cap;
    b->created_at = now;
    b->held.less = ready_less;
    b->held.slot = job_slot;
    if (cap && jobq__heap_reserve(&b->held, n) != 0) goto nomem;
  }
  /* Allocate everything first, so that a failure leaves the store as it was. */
  for (size_t i = 0; i < n; i++) {
    const jobq_storage_job *r = jobs[i];
    size_t plen = strlen(r->payload) + 1;
    mjob *j = calloc(1, sizeof *j + plen);
    if (j == NULL) goto nomem;
    made[i] = j;
    memcpy(j->payload, r->payload, plen);
    memcpy(j->id, r->id, JOBQ_ID_SIZE);
    hs[i] = jobq__hash(j->id);
    j->created_at = r->created_at;
    j->run_at = r->run_at;
    j->priority = (int16_t)r->priority;
    j->max_attempts = (uint16_t)r->max_attempts;
    const char *hooks = webhooks ? webhooks[i] : NULL;
    if (r->owner || r->dedupe_key || hooks) {
      if (ext(j) == NULL) goto nomem;
      if (reset(&j->x->owner, r->owner) || reset(&j->x->dedupe_key, r->dedupe_key)) goto nomem;
      j->x->dedupe_ttl_ms = r->dedupe_ttl_ms;
    }
    if (hooks) {
      if ((rc = jobq__mhooks_parse(hooks, "insert", &j->x->hooks)) != 0) goto fail;
      j->x->hooks->job = j;
      j->x->hooks->job_id = j->id;
    }
  }
  /* Ids are the core's UUIDs: one already stored is a bug somewhere, and
   * the batch is refused whole. (Ids within one batch are distinct by
   * construction; checking that too would cost O(n^2) per batch.) For a
   * large batch the check and the map's growth go first, under idmu alone;
   * under mu the check is made again (the slots are in cache by then), in
   * case another insert stored one of them meanwhile. A small batch is
   * checked under mu only: its few lookups are not worth two more locks. */
  size_t rep_at = 0;
  int rep = 0;
  if (n > ID_EARLY) {
    uv_mutex_lock(&s->idmu);
    rep = ids_check(s, jobs, hs, n, 1, &rep_at);
    uv_mutex_unlock(&s->idmu);
  }
  if (rep < 0) goto nomem;
  if (rep > 0) {
    for (size_t x = 0; x < n; x++)
      if (made[x]) free_job(made[x]);
    free(made);
    if (b) jobq__heap_free(&b->held);
    free(b);
    return jobq__err(JOBQ_EEXIST, "memory storage: job id %s is already stored", jobs[rep_at]->id);
  }
  uv_mutex_lock(&s->mu);
  if (b) {
    if (jobq__map_get(&s->batches, b->id)) {
      uv_mutex_unlock(&s->mu);
      for (size_t x = 0; x < n; x++)
        if (made[x]) free_job(made[x]);
      free(made);
      jobq__heap_free(&b->held);
      free(b);
      return jobq__err(JOBQ_EEXIST, "memory storage: batch id %s is already stored", batch_id);
    }
    if (jobq__map_reserve(&s->batches, 1)) {
      uv_mutex_unlock(&s->mu);
      goto nomem;
    }
    if (cap && s->n_capped == s->cap_capped) {
      size_t nc = s->cap_capped ? s->cap_capped * 2 : 8;
      mbatch **p = realloc(s->capped, nc * sizeof *p);
      if (p == NULL) {
        uv_mutex_unlock(&s->mu);
        goto nomem;
      }
      s->capped = p;
      s->cap_capped = nc;
    }
  }
  if (jobq__map_reserve(&s->dedupe, n)) {
    uv_mutex_unlock(&s->mu);
    goto nomem;
  }
  for (size_t i = 0; i < n; i++) {
    /* (a batch is mostly of one kind: ask the map once) */
    made[i]->kind = i > 0 && strcmp(jobs[i]->kind, made[i - 1]->kind->name) == 0
                        ? made[i - 1]->kind
                        : kind_get(s, jobs[i]->kind, 1);
    if (made[i]->kind == NULL) {
      uv_mutex_unlock(&s->mu);
      goto nomem;
    }
  }
  for (size_t i = 0; i < n; i++) {
    mkind *k = made[i]->kind;
    if (i > 0 && k == made[i - 1]->kind) continue;
    if (jobq__heap_reserve(&k->ready, n) || jobq__heap_reserve(&k->delayed, n)) {
      uv_mutex_unlock(&s->mu);
      goto nomem;
    }
  }
  if (s->n_quotas && quotas) {
    char dup_s[64], *dup = n <= 64 ? dup_s : malloc(n);
    int qrc = dup ? quota_check(s, jobs, n, force, now, dup) : oom("insert");
    if (dup != dup_s) free(dup);
    if (qrc) {
      uv_mutex_unlock(&s->mu);
      for (size_t x = 0; x < n; x++)
        if (made[x]) free_job(made[x]);
      free(made);
      if (b) jobq__heap_free(&b->held);
      free(b);
      return qrc;
    }
  }
  /* Jobs not checked against quotas (cron_fire's) still count: their
   * owners' entries must exist. */
  for (size_t i = 0; s->n_quotas && !quotas && i < n; i++) {
    const char *o = jobs[i]->owner;
    if (o && (count_get(s, o, NULL, 1) == NULL || count_get(s, o, jobs[i]->kind, 1) == NULL)) {
      uv_mutex_unlock(&s->mu);
      goto nomem;
    }
  }
  uv_mutex_lock(&s->idmu);
  rep = ids_check(s, jobs, hs, n, n <= ID_EARLY, &rep_at);
  if (rep != 0) {
    uv_mutex_unlock(&s->idmu);
    uv_mutex_unlock(&s->mu);
    if (rep < 0) goto nomem;
    for (size_t x = 0; x < n; x++)
      if (made[x]) free_job(made[x]);
    free(made);
    if (b) jobq__heap_free(&b->held);
    free(b);
    return jobq__err(JOBQ_EEXIST, "memory storage: job id %s is already stored", jobs[rep_at]->id);
  }
  /* From here on nothing can fail (idmu held: room in ids was made). */
  for (size_t i = 0; i < n; i++) {
    mjob *j = made[i];
    out_dup[i] = 0;
    if (j->x && j->x->dedupe_key) {
      mjob *old = jobq__map_get(&s->dedupe, j->x->dedupe_key);
      if (old && key_live(old, now) && !(force && force[i])) {
        memcpy(jobs[i]->id, old->id, JOBQ_ID_SIZE);
        out_dup[i] = 1;
        free_job(j);
        made[i] = NULL;
        continue;
      }
      jobq__map_put(&s->dedupe, j->x->dedupe_key, j);
    }
    count_move(s, j, +1);
    j->seq = ++s->seq;
    jobq__map_put_h(id_map(s, hs[i]), j->id, j, hs[i]);
    j->prev = s->last;
    if (s->last) s->last->next = j;
    else s->first = j;
    s->last = j;
    if (b) {
      j->batch = b;
      b->total++;
    }
    enqueue(j, now);
  }
  uv_mutex_unlock(&s->idmu);
  mnotice *told = NULL;
  if (b) {
    b->open = b->total;
    jobq__map_put(&s->batches, b->id, b);
    if (b->total == 0) batch_ended(s, b, NULL, now);
    else if (cap) s->capped[s->n_capped++] = b;
    told = notices_take(s);
  }
  uv_mutex_unlock(&s->mu);
  free(made);
  notices_tell(s, told);
  return 0;
nomem:
  rc = oom("insert");
fail:
  for (size_t i = 0; i < n; i++)
    if (made[i]) free_job(made[i]);
  free(made);
  if (b) jobq__heap_free(&b->held);
  free(b);
  return rc;
}

static int mem_insert(void *st, jobq_storage_job *const *jobs, size_t n, const int *force,
                      int64_t now, int *out_dup) {
  return insert_impl(st, NULL, 0, jobs, NULL, n, force, now, out_dup, 1);
}

static int mem_batch_insert(void *st, const char *batch_id, int max_running,
                            jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                            int *out_dup) {
  return insert_impl(st, batch_id, max_running, jobs, NULL, n, force, now, out_dup, 1);
}

static int mem_insert_hooked(void *st, jobq_storage_job *const *jobs, const char *const *webhooks,
                             size_t n, const int *force, int64_t now, int *out_dup,
                             const char *batch_id, int max_running) {
  return insert_impl(st, batch_id, batch_id ? max_running : 0, jobs, webhooks, n, force, now,
                     out_dup, 1);
}

/* ---- cron schedules ---- */

/* The schedule called name, or NULL; *at: where it is or would go. cmu held. */
static jobq_storage_cron *cron_find(mstore *s, const char *name, size_t *at) {
  size_t lo = 0, hi = s->n_crons;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(s->crons[mid].name, name);
    if (c == 0) {
      *at = mid;
      return &s->crons[mid];
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  *at = lo;
  return NULL;
}

static int cron_copy(jobq_storage_cron *d, const jobq_storage_cron *c) {
  *d = *c;
  d->name = d->expr = d->tz = d->kind = d->payload = d->owner = NULL;
  if (reset(&d->name, c->name) || reset(&d->expr, c->expr) || reset(&d->tz, c->tz) ||
      reset(&d->kind, c->kind) || reset(&d->payload, c->payload) || reset(&d->owner, c->owner)) {
    cron_clear(d);
    return -1;
  }
  return 0;
}

static int str_eq(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static int mem_cron_put(void *st, const jobq_storage_cron *c) {
  mstore *s = st;
  jobq_storage_cron nc;
  if (cron_copy(&nc, c) != 0) return oom("cron_put");
  uv_mutex_lock(&s->cmu);
  size_t at;
  jobq_storage_cron *old = cron_find(s, c->name, &at);
  if (old) {
    if (str_eq(old->expr, c->expr) && str_eq(old->tz, c->tz)) {
      nc.next_at = old->next_at;
      nc.last_run = old->last_run;
    }
    cron_clear(old);
    *old = nc;
    uv_mutex_unlock(&s->cmu);
    return 0;
  }
  jobq_storage_cron *v = realloc(s->crons, (s->n_crons + 1) * sizeof *v);
  if (v == NULL) {
    uv_mutex_unlock(&s->cmu);
    cron_clear(&nc);
    return oom("cron_put");
  }
  s->crons = v;
  memmove(&v[at + 1], &v[at], (s->n_crons - at) * sizeof *v);
  v[at] = nc;
  s->n_crons++;
  uv_mutex_unlock(&s->cmu);
  return 0;
}

static int mem_cron_del(void *st, const char *name) {
  mstore *s = st;
  uv_mutex_lock(&s->cmu);
  size_t at;
  jobq_storage_cron *c = cron_find(s, name, &at);
  if (c) {
    cron_clear(c);
    memmove(&s->crons[at], &s->crons[at + 1], (s->n_crons - at - 1) * sizeof *s->crons);
    s->n_crons--;
  }
  uv_mutex_unlock(&s->cmu);
  return c ? 0 : jobq__err(JOBQ_ENOTFOUND, "memory storage: no cron schedule '%.128s'", name);
}

static int mem_cron_list(void *st, jobq_storage_cron **out, size_t *n_out) {
  mstore *s = st;
  *out = NULL;
  *n_out = 0;
  uv_mutex_lock(&s->cmu);
  size_t n = s->n_crons;
  jobq_storage_cron *v = n ? calloc(n, sizeof *v) : NULL;
  int rc = n && v == NULL ? -1 : 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (cron_copy(&v[i], &s->crons[i]) != 0) {
      for (size_t k = 0; k < i; k++) cron_clear(&v[k]);
      rc = -1;
    }
  }
  uv_mutex_unlock(&s->cmu);
  if (rc) {
    free(v);
    return oom("cron_list");
  }
  *out = v;
  *n_out = n;
  return 0;
}

/* cron_fire and cron_fire_hooked (webhooks not NULL). */
static int cron_fire_impl(mstore *s, const char *name, int64_t expect_next_at,
                          int64_t new_next_at, jobq_storage_job *const *jobs,
                          const char *const *webhooks, size_t n, int64_t now,
                          size_t *n_inserted) {
  *n_inserted = 0;
  jobq_storage_job **fresh = calloc(n ? n : 1, sizeof *fresh);
  const char **fresh_hooks = webhooks ? calloc(n ? n : 1, sizeof *fresh_hooks) : NULL;
  int *dup = calloc(n ? n : 1, sizeof *dup);
  int rc = 0;
  if (fresh == NULL || dup == NULL || (webhooks && fresh_hooks == NULL)) {
    rc = oom("cron_fire");
    goto out;
  }
  uv_mutex_lock(&s->cmu);
  size_t at;
  jobq_storage_cron *c = cron_find(s, name, &at);
  if (c == NULL || c->next_at != expect_next_at) {
    uv_mutex_unlock(&s->cmu); /* gone, or fired by someone else */
    goto out;
  }
  /* An occurrence whose key any job holds is not stored again. */
  size_t k = 0;
  int64_t last = 0;
  uv_mutex_lock(&s->mu);
  for (size_t i = 0; i < n; i++) {
    if (jobs[i]->run_at > last) last = jobs[i]->run_at;
    if (jobs[i]->dedupe_key && jobq__map_get(&s->dedupe, jobs[i]->dedupe_key)) continue;
    if (fresh_hooks) fresh_hooks[k] = webhooks[i];
    fresh[k++] = jobs[i];
  }
  uv_mutex_unlock(&s->mu);
  /* Counted by quotas but not checked against them. */
  rc = k ? insert_impl(s, NULL, 0, fresh, fresh_hooks, k, NULL, now, dup, 0) : 0;
  if (rc == 0) {
    for (size_t i = 0; i < k; i++) *n_inserted += !dup[i];
    c->next_at = new_next_at;
    if (last > 0) c->last_run = last;
  }
  uv_mutex_unlock(&s->cmu);
out:
  free(fresh);
  free(fresh_hooks);
  free(dup);
  return rc;
}

static int mem_cron_fire(void *st, const char *name, int64_t expect_next_at, int64_t new_next_at,
                         jobq_storage_job *const *jobs, size_t n, int64_t now, size_t *n_inserted) {
  return cron_fire_impl(st, name, expect_next_at, new_next_at, jobs, NULL, n, now, n_inserted);
}

static int mem_cron_fire_hooked(void *st, const char *name, int64_t expect_next_at,
                                int64_t new_next_at, jobq_storage_job *const *jobs,
                                const char *const *webhooks, size_t n, int64_t now,
                                size_t *n_inserted) {
  return cron_fire_impl(st, name, expect_next_at, new_next_at, jobs, webhooks, n, now,
                        n_inserted);
}

/* Moves the jobs of k that came due into its ready heap. */
static void promote(mkind *k, int64_t now) {
  mjob *j;
  while ((j = jobq__heap_top(&k->delayed)) && j->run_at <= now) {
    /* Out of memory: the job stays delayed and is promoted by a later call. */
    mbatch *b = j->batch && j->batch->cap ? j->batch : NULL;
    if (jobq__heap_reserve(b ? &b->held : &k->ready, 1) != 0) return;
    jobq__heap_pop(&k->delayed);
    j->delayed = 0;
    if (b) {
      j->held = 1;
      jobq__heap_push(&b->held, j);
    } else {
      ready_push(k, j);
    }
  }
}


static int fill(const mjob *j, jobq_storage_job *out, int with_log) {
  memset(out, 0, sizeof *out);
  memcpy(out->id, j->id, JOBQ_ID_SIZE);
  out->state = j->state;
  out->priority = j->priority;
  out->progress = j->progress;
  out->attempts = j->attempts;
  out->max_attempts = j->max_attempts;
  out->cancel_requested = j->cancel_req;
  out->created_at = j->created_at;
  out->run_at = j->run_at;
  out->position = -1;
  if ((out->kind = jobq__strdup(j->kind->name)) == NULL || (out->payload = jobq__strdup(j->payload)) == NULL)
    goto nomem;
  out->started_at = j->started_at;
  out->finished_at = j->finished_at;
  if (j->x == NULL && j->state == JOBQ_SUCCEEDED && (out->result = jobq__strdup("null")) == NULL)
    goto nomem;
  if (j->x == NULL && with_log && j->attempts > 0) { /* its one attempt */
    if ((out->attempt_log = calloc(1, sizeof *out->attempt_log)) == NULL) goto nomem;
    out->n_attempt_log = 1;
    out->attempt_log[0].started_at = j->started_at;
    out->attempt_log[0].finished_at = j->finished_at;
  }
  if (j->x) {
    const mext *x = j->x;
    out->dedupe_ttl_ms = x->dedupe_ttl_ms;
    if ((x->owner && !(out->owner = jobq__strdup(x->owner))) || (x->step && !(out->step = jobq__strdup(x->step))) ||
        ((x->result || j->state == JOBQ_SUCCEEDED) &&
         !(out->result = jobq__strdup(x->result ? x->result : "null"))) ||
        (x->error && !(out->error = jobq__strdup(x->error))) ||
        (x->dedupe_key && !(out->dedupe_key = jobq__strdup(x->dedupe_key))))
      goto nomem;
    if (with_log && x->nlog) {
      out->attempt_log = calloc((size_t)x->nlog, sizeof *out->attempt_log);
      if (out->attempt_log == NULL) goto nomem;
      out->n_attempt_log = x->nlog;
      for (int i = 0; i < x->nlog; i++) {
        out->attempt_log[i].started_at = x->log[i].started_at;
        out->attempt_log[i].finished_at = x->log[i].finished_at;
        if (x->log[i].error && !(out->attempt_log[i].error = jobq__strdup(x->log[i].error))) goto nomem;
      }
    }
  }
  return 0;
nomem:
  jobq_storage_job_clear(out);
  return -1;
}

/* Room for one more entry in x's attempt log (the first one inline);
 * NULL on out of memory (then unchanged). */
static jobq_storage_attempt *log_room(mext *x) {
  if (x->nlog == 0) return x->log ? x->log : (x->log = &x->log1);
  jobq_storage_attempt *nl;
  if (x->log == &x->log1) {
    if ((nl = malloc(2 * sizeof *nl)) == NULL) return NULL;
    nl[0] = x->log1;
  } else if ((nl = realloc(x->log, (size_t)(x->nlog + 1) * sizeof *nl)) == NULL) {
    return NULL;
  }
  return x->log = nl;
}

static int excluded(const jobq_storage_claim *req, const char *name) {
  for (size_t i = 0; i < req->n_exclude; i++)
    if (strcmp(req->exclude[i], name) == 0) return 1;
  return 0;
}

/* The rate limit req gives for kind, or NULL. */
static const jobq_storage_rate *rate_of(const jobq_storage_claim *req, const char *kind) {
  for (size_t i = 0; i < req->n_rates; i++)
    if (strcmp(req->rates[i].kind, kind) == 0) return &req->rates[i];
  return NULL;
}

/* The kind's log, made on first use; NULL when out of memory. */
static mrate *rate_get(mstore *s, const char *kind) {
  mrate *r = jobq__map_get(&s->rates, kind);
  if (r) return r;
  size_t len = strlen(kind);
  if ((r = calloc(1, sizeof *r + len + 1)) == NULL) return NULL;
  memcpy(r->kind, kind, len + 1);
  if (jobq__map_put(&s->rates, r->kind, r) != 0) {
    free(r);
    return NULL;
  }
  return r;
}

static int mem_rate_window(void *st, const char *kind, int64_t interval_ms, int64_t now,
                           int64_t *out_used) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  mrate *r = jobq__map_get(&s->rates, kind);
  *out_used = r ? jobq__ratelog_used(&r->log, interval_ms, now) : 0;
  uv_mutex_unlock(&s->mu);
  return 0;
}

static int mem_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out,
                     size_t *n_out) {
  mstore *s = st;
  *n_out = 0;
  size_t nk = req->kinds ? req->n_kinds : 0;
  mkind *small[16];
  int lim_small[16], ma_small[16];
  mrate *rt_small[16];
  mkind **ks = small;
  int *lim = lim_small, *ma = ma_small;
  mrate **rt = rt_small;
  int64_t rate_next = INT64_MAX;
  if (req->rate_next) *req->rate_next = INT64_MAX;
  uv_mutex_lock(&s->mu);
  size_t total = req->kinds ? nk : s->n_kinds;
  if (total > 16) {
    ks = malloc(total * sizeof *ks);
    lim = malloc(total * sizeof *lim);
    ma = malloc(total * sizeof *ma);
    rt = malloc(total * sizeof *rt);
    if (ks == NULL || lim == NULL || ma == NULL || rt == NULL) {
      uv_mutex_unlock(&s->mu);
      free(ks);
      free(lim);
      free(ma);
      free(rt);
      return oom("claim");
    }
  }
  size_t m = 0;
  for (size_t i = 0; i < total; i++) {
    mkind *k = req->kinds ? kind_get(s, req->kinds[i], 0) : s->kinds[i];
    int l = req->kinds && req->kind_limit ? req->kind_limit[i] : -1;
    if (k == NULL || l == 0) continue;
    if (req->kinds == NULL && excluded(req, k->name)) continue;
    promote(k, req->now);
    /* A rate-limited kind takes at most the room its window has left. */
    const jobq_storage_rate *rl = req->n_rates ? rate_of(req, k->name) : NULL;
    rt[m] = NULL;
    if (rl) {
      mrate *r = rate_get(s, k->name);
      if (r == NULL || jobq__ratelog_reserve(&r->log) != 0) {
        uv_mutex_unlock(&s->mu);
        if (ks != small) free(ks);
        if (lim != lim_small) free(lim);
        if (ma != ma_small) free(ma);
        if (rt != rt_small) free(rt);
        return oom("claim");
      }
      int64_t room = jobq__ratelog_room(&r->log, rl->starts, rl->interval_ms, req->now);
      if (room == 0) {
        if (k->n_ready) {
          int64_t t = jobq__ratelog_next(&r->log, rl->interval_ms);
          if (t < rate_next) rate_next = t;
        }
        continue;
      }
      if (l < 0 || l > room) l = (int)(room > INT_MAX ? INT_MAX : room);
      rt[m] = r;
    }
    ks[m] = k;
    ma[m] = req->default_max_attempts;
    for (size_t x = 0; x < req->n_ma; x++)
      if (req->ma_values[x] > 0 && strcmp(req->ma_kinds[x], k->name) == 0) ma[m] = req->ma_values[x];
    lim[m++] = l;
  }
  if (s->n_capped) batches_fill(s);
  int rc = 0;
  /* Out of memory for the running map: finish finds these jobs in ids. */
  int tracked = jobq__map_reserve(&s->running, req->max) == 0;
  while (*n_out < req->max) {
    size_t best = SIZE_MAX;
    mjob *j = NULL;
    for (size_t i = 0; i < m; i++) {
      mjob *t = lim[i] == 0 ? NULL : ready_top(ks[i]);
      if (t == NULL) continue;
      if (best == SIZE_MAX || ready_less(t, j)) {
        best = i;
        j = t;
      }
    }
    if (best == SIZE_MAX) break;
    /* A first attempt of a job without a side record needs none. */
    mext *x = j->x == NULL && j->attempts == 0 ? NULL : ext(j);
    jobq_storage_attempt *nl = x ? log_room(x) : NULL;
    /* (room in the heap for the undo below: j may come from a ring) */
    if ((x == NULL && j->x == NULL && j->attempts > 0) || (x && nl == NULL) ||
        jobq__heap_reserve(&ks[best]->ready, 1) != 0) {
      rc = *n_out ? 0 : oom("claim");
      break;
    }
    if (x) {
      nl[x->nlog].started_at = req->now;
      nl[x->nlog].finished_at = 0;
      nl[x->nlog].error = NULL;
      x->nlog++;
    }
    ready_remove(ks[best], j, 1);
    j->state = JOBQ_RUNNING;
    j->attempts++;
    j->progress = 0;
    if (j->max_attempts == 0) j->max_attempts = (uint16_t)(ma[best] > 0 ? ma[best] : 3);
    j->started_at = req->now;
    if (j->batch) j->batch->running++;
    if (lim[best] > 0) lim[best]--;
    if (fill(j, &out[*n_out], 0) != 0) {
      /* Put it back as it was: a claim that cannot report a job must not
       * leave it running with nobody to run it. */
      j->state = JOBQ_QUEUED;
      j->attempts--;
      if (x) x->nlog--;
      if (j->batch) j->batch->running--;
      /* (max_attempts keeps the resolved value: harmless) */
      ready_push(ks[best], j);
      rc = *n_out ? 0 : oom("claim");
      break;
    }
    if (tracked) jobq__map_put(&s->running, j->id, j); /* reserved */
    (*n_out)++;
  }
  /* Record what each limited kind took; a kind whose room ran out while
   * it had due jobs left was held back. */
  for (size_t i = 0; i < m; i++) {
    if (rt[i] == NULL) continue;
    int64_t taken = 0;
    for (size_t o = 0; o < *n_out; o++) taken += strcmp(out[o].kind, ks[i]->name) == 0;
    if (taken) jobq__ratelog_add(&rt[i]->log, req->now, taken);
    const jobq_storage_rate *rl = rate_of(req, ks[i]->name);
    if (jobq__ratelog_room(&rt[i]->log, rl->starts, rl->interval_ms, req->now) == 0 &&
        ks[i]->n_ready) {
      int64_t t = jobq__ratelog_next(&rt[i]->log, rl->interval_ms);
      if (t < rate_next) rate_next = t;
    }
  }
  if (req->rate_next) *req->rate_next = rate_next;
  uv_mutex_unlock(&s->mu);
  if (ks != small) free(ks);
  if (lim != lim_small) free(lim);
  if (ma != ma_small) free(ma);
  if (rt != rt_small) free(rt);
  return rc;
}

/* One entry of a finish batch, made ready before anything is applied: the
 * job it applies to and the copies it stores, so that applying it cannot
 * fail. */
typedef struct fin_prep {
  mjob *j;            /* NULL: nothing to apply (miss says why) */
  int miss;           /* JOBQ_ENOTFOUND or JOBQ_ESTATE when j is NULL */
  int outcome;        /* f's, or CANCELLED when a cancel was requested */
  char *err, *err2;   /* the error, for the attempt log and for the job */
  char *res, *step;
  char *berr;         /* a failed member's error, for its batch */
  jobq__mnew hooked;  /* the deliveries its end adds (a job with webhooks) */
} fin_prep;

/* The job with id, looked up first among the running ones. */
static mjob *find_job(mstore *s, const char *id) {
  mjob *j = s->running.count ? jobq__map_get(&s->running, id) : NULL;
  return j ? j : id_get(s, id);
}

static int attempt_running(const mjob *j, const jobq_storage_finish *f) {
  return j->state == JOBQ_RUNNING && j->attempts == f->attempt;
}

static void fin_prep_free(mstore *s, fin_prep *p) {
  if (p->hooked.list) jobq__mbox_discard(&s->ob, &p->hooked);
  free(p->err);
  free(p->err2);
  free(p->res);
  free(p->step);
  free(p->berr);
}

/* Finds f's job and copies what it will store; -1 on out of memory. A job
 * that does not run f's attempt now will not later in the batch (finish
 * never makes a job running), so it needs no copies. */
static int finish_prepare(mstore *s, const jobq_storage_finish *f, fin_prep *p) {
  memset(p, 0, sizeof *p);
  mjob *j = find_job(s, f->id);
  if (j == NULL || !attempt_running(j, f)) {
    p->miss = j == NULL ? JOBQ_ENOTFOUND : JOBQ_ESTATE;
    return 0;
  }
  p->j = j;
  int outcome = j->cancel_req ? JOBQ_OUTCOME_CANCELLED : f->outcome;
  p->outcome = outcome;
  const char *etext = f->error;
  if (outcome == JOBQ_OUTCOME_CANCELLED && etext == NULL) etext = "cancelled";
  if (outcome != JOBQ_OUTCOME_SUCCEEDED && outcome != JOBQ_OUTCOME_RELEASE && etext) {
    /* (DEFER: err2 alone is stored, on the job; its attempt entry goes) */
    if ((p->err = jobq__strdup(etext)) == NULL || (p->err2 = jobq__strdup(etext)) == NULL) return -1;
  }
  if (outcome == JOBQ_OUTCOME_SUCCEEDED && f->result && strcmp(f->result, "null") != 0 &&
      (p->res = jobq__strdup(f->result)) == NULL)
    return -1;
  if (outcome != JOBQ_OUTCOME_RELEASE && f->step && (p->step = jobq__strdup(f->step)) == NULL) return -1;
  /* A retried, released or deferred job goes back into one of its kind's
   * heaps (a member of a capped batch: its batch's held heap). */
  if (outcome == JOBQ_OUTCOME_RETRY || outcome == JOBQ_OUTCOME_RELEASE ||
      outcome == JOBQ_OUTCOME_DEFER) {
    j->kind->requeue++;
    if (j->batch && j->batch->cap && jobq__heap_reserve(&j->batch->held, 1) != 0) return -1;
  }
  if (j->batch && outcome == JOBQ_OUTCOME_FAILED &&
      (p->berr = jobq__strdup(etext ? etext : "failed")) == NULL)
    return -1;
  /* Only a plain success or release can do without a side record. */
  if ((p->res || p->step || p->err ||
       (outcome != JOBQ_OUTCOME_SUCCEEDED && outcome != JOBQ_OUTCOME_RELEASE)) &&
      ext(j) == NULL)
    return -1;
  if (j->x && j->x->hooks && outcome != JOBQ_OUTCOME_RETRY && outcome != JOBQ_OUTCOME_RELEASE &&
      outcome != JOBQ_OUTCOME_DEFER) {
    int state = outcome == JOBQ_OUTCOME_SUCCEEDED ? JOBQ_SUCCEEDED
                : outcome == JOBQ_OUTCOME_FAILED  ? JOBQ_FAILED
                                                  : JOBQ_CANCELLED;
    if (jobq__mbox_prepare_end(&s->ob, j->x->hooks, state, f->now, &p->hooked) != 0) return -1;
  }
  return 0;
}

/* Applies a prepared entry; cannot fail. Takes the copies it stores out of
 * p (the caller frees the rest). Returns the job's state afterwards, or
 * JOBQ_ENOTFOUND / JOBQ_ESTATE. */
static int finish_apply(mstore *s, const jobq_storage_finish *f, fin_prep *p) {
  mjob *j = p->j;
  if (j == NULL) return p->miss;
  /* An earlier entry of the batch for the same job ended this attempt. */
  if (!attempt_running(j, f)) return JOBQ_ESTATE;
  if (s->running.count) jobq__map_del(&s->running, j->id); /* (ids are unique) */
  if (j->batch) { /* it stops running, whatever comes next */
    j->batch->running--;
    if (j->batch->cap) j->batch->active--;
  }
  /* x is NULL only for a plain success or release (finish_prepare) */
  mext *x = j->x;
  jobq_storage_attempt *a = x ? &x->log[x->nlog - 1] : NULL;
  int outcome = p->outcome;
  char *err = p->err, *err2 = p->err2;
  p->err = p->err2 = NULL;
  if (outcome != JOBQ_OUTCOME_RELEASE) {
    if (p->step) {
      free(x->step);
      x->step = p->step;
      p->step = NULL;
    }
    if (f->progress >= 0 && f->progress <= 100) j->progress = (uint8_t)f->progress;
  }
  switch (outcome) {
    case JOBQ_OUTCOME_RELEASE:
      j->attempts--;
      if (x) x->nlog--;
      j->run_at = f->now;
      enqueue(j, f->now);
      return JOBQ_QUEUED;
    case JOBQ_OUTCOME_DEFER:
      /* Not counted: as a release, but at run_at and with its reason. */
      j->attempts--;
      x->nlog--;
      free(x->error);
      x->error = err2;
      free(err);
      j->run_at = f->run_at;
      enqueue(j, f->now);
      return JOBQ_QUEUED;
    case JOBQ_OUTCOME_RETRY:
      a->finished_at = f->now;
      a->error = err;
      free(x->error);
      x->error = err2;
      j->run_at = f->run_at;
      enqueue(j, f->now);
      return JOBQ_QUEUED;
    case JOBQ_OUTCOME_SUCCEEDED:
      if (x) {
        free(x->result);
        x->result = p->res;
        p->res = NULL;
      }
      j->progress = 100;
      j->state = JOBQ_SUCCEEDED;
      break;
    case JOBQ_OUTCOME_FAILED:
      j->state = JOBQ_FAILED;
      break;
    default:
      j->state = JOBQ_CANCELLED;
      break;
  }
  if (a) a->finished_at = f->now;
  j->finished_at = f->now;
  if (err) {
    a->error = err;
    free(x->error);
    x->error = err2;
  }
  if (x && x->hooks) jobq__mbox_apply(&s->ob, x->hooks, &p->hooked, 1);
  if (j->batch) member_done(s, j, j->state, &p->berr, f->now);
  return j->state;
}

#define FIN_SMALL 16

/* All or nothing, as the vtable asks: every allocation of the batch (the
 * copies each entry stores, room in the heaps for the jobs that are queued
 * again) is made first; applying them then has no failure point. */
static int mem_finish(void *st, const jobq_storage_finish *f, size_t n, int *out_state) {
  mstore *s = st;
  fin_prep small[FIN_SMALL];
  fin_prep *p = n <= FIN_SMALL ? small : malloc(n * sizeof *p);
  if (p == NULL) return oom("finish");
  int fail = 0;
  size_t made = 0;
  uv_mutex_lock(&s->mu);
  for (; made < n && !fail; made++) fail = finish_prepare(s, &f[made], &p[made]) != 0;
  /* Room for every job that may be queued again, per kind (either heap:
   * run_at decides); the counts are cleared for the next batch. */
  for (size_t i = 0; i < made; i++) {
    mkind *k = p[i].j ? p[i].j->kind : NULL;
    if (k == NULL || k->requeue == 0) continue;
    if (!fail && (jobq__heap_reserve(&k->ready, k->requeue) ||
                  jobq__heap_reserve(&k->delayed, k->requeue)))
      fail = 1;
    k->requeue = 0;
  }
  if (!fail)
    for (size_t i = 0; i < n; i++) {
      out_state[i] = finish_apply(s, &f[i], &p[i]);
      if (out_state[i] >= 0 && jobq_state_is_terminal(out_state[i]) && p[i].j)
        count_move(s, p[i].j, -1);
    }
  mnotice *told = s->notices ? notices_take(s) : NULL;
  uv_mutex_unlock(&s->mu);
  notices_tell(s, told);
  for (size_t i = 0; i < made; i++) fin_prep_free(s, &p[i]);
  if (p != small) free(p);
  return fail ? oom("finish") : 0;
}

static int mem_progress(void *st, const char *id, int attempt, int percent, const char *step) {
  mstore *s = st;
  int rc = 0;
  uv_mutex_lock(&s->mu);
  mjob *j = find_job(s, id);
  if (j == NULL) rc = JOBQ_ENOTFOUND;
  else if (j->state != JOBQ_RUNNING || j->attempts != attempt) rc = JOBQ_ESTATE;
  else if (step && (ext(j) == NULL || reset(&j->x->step, step) != 0)) rc = oom("progress");
  else j->progress = (uint8_t)percent;
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int mem_cancel(void *st, const char *id, int64_t now, int *out_state, char **out_kind) {
  mstore *s = st;
  int rc = 0;
  uv_mutex_lock(&s->mu);
  mjob *j = id_get(s, id);
  if (j == NULL) {
    rc = JOBQ_ENOTFOUND;
  } else if (j->state == JOBQ_QUEUED) {
    char *err = jobq__strdup("cancelled");
    jobq__mnew hooked = {0};
    if (ext(j) == NULL || err == NULL ||
        (j->x->hooks &&
         jobq__mbox_prepare_end(&s->ob, j->x->hooks, JOBQ_CANCELLED, now, &hooked) != 0)) {
      jobq__mbox_discard(&s->ob, &hooked);
      free(err);
      rc = oom("cancel");
    } else {
      if (j->x->hooks) jobq__mbox_apply(&s->ob, j->x->hooks, &hooked, 1);
      dequeue(j);
      j->state = JOBQ_CANCELLED;
      count_move(s, j, -1);
      j->finished_at = now;
      free(j->x->error);
      j->x->error = err;
      if (j->batch) member_done(s, j, JOBQ_CANCELLED, NULL, now);
    }
  } else if (j->state == JOBQ_RUNNING) {
    j->cancel_req = 1;
  } else {
    rc = JOBQ_ESTATE;
  }
  if (j) *out_state = j->state;
  if (rc == 0 && out_kind && (*out_kind = jobq__strdup(j->kind->name)) == NULL) rc = oom("cancel");
  mnotice *told = s->notices ? notices_take(s) : NULL;
  uv_mutex_unlock(&s->mu);
  notices_tell(s, told);
  return rc;
}

/* Due jobs of j's kind that a claim takes before j: exact up to
 * JOBQ__POSITION_EXACT, an upper bound beyond (jobq_job_position.md).
 * The exact part walks only the heap nodes ahead of j (a node that is not
 * ahead has nothing ahead below it), and the rings: those of higher
 * priorities count whole, j's own from its head up to j (a ring is in seq
 * order), so it stops after a bounded number. */
static int64_t position(mjob *j, int64_t now) {
  if (j->state != JOBQ_QUEUED) return -1;
  mkind *k = j->kind;
  promote(k, now);
  if (j->delayed || j->held) return -1;
  const jobq_heap *h = &k->ready;
  enum { CAP = JOBQ__POSITION_EXACT + 1 };
  uint32_t stack[2 * CAP + 1];
  size_t sp = 0;
  int64_t ahead = 0;
  if (h->n) stack[sp++] = 0;
  while (sp && ahead < CAP) {
    uint32_t i = stack[--sp];
    if (!ready_less(h->v[i], j)) continue;
    ahead++;
    for (size_t c = 2 * (size_t)i + 1; c <= 2 * (size_t)i + 2; c++)
      if (c < h->n) stack[sp++] = (uint32_t)c;
  }
  for (size_t bi = 0; bi < k->n_bands && ahead < CAP; bi++) {
    mband *b = &k->bands[bi];
    if (b->priority > j->priority) {
      ahead += (int64_t)b->ring_n;
      continue;
    }
    if (b->priority < j->priority || b->ring_n == 0) break;
    for (uint32_t i = b->head; i != b->tail && ahead < CAP; i++) {
      const mjob *r = b->ring[i & (b->ring_cap - 1)];
      if (r == NULL) continue;
      if (r->seq >= j->seq) break;
      ahead++;
    }
    break;
  }
  if (ahead < CAP) return ahead;
  /* Deep: every job of a higher priority, and of j's own those within its
   * seq distance from the oldest one (or all the others, if fewer). */
  int64_t est = (int64_t)k->n_ready - 1;
  if (!k->bands_lost) {
    int64_t hi = 0;
    size_t b = 0;
    for (; b < k->n_bands && k->bands[b].priority > j->priority; b++) hi += (int64_t)k->bands[b].n;
    if (b < k->n_bands && k->bands[b].priority == j->priority && k->bands[b].n > 0) {
      int64_t same = (int64_t)k->bands[b].n - 1;
      int64_t dist = (int64_t)(j->seq - k->bands[b].lo);
      if (k->bands[b].lo <= j->seq && dist < same) same = dist;
      if (hi + same < est) est = hi + same;
    }
  }
  return est < CAP ? CAP : est;
}

static int mem_get(void *st, const char *id, int64_t now, jobq_storage_job *out) {
  mstore *s = st;
  int rc = 0;
  uv_mutex_lock(&s->mu);
  mjob *j = id_get(s, id);
  if (j == NULL) rc = JOBQ_ENOTFOUND;
  else if (fill(j, out, 1) != 0) rc = oom("get");
  else out->position = position(j, now);
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int mem_get_by_key(void *st, const char *key, int64_t now, jobq_storage_job *out) {
  mstore *s = st;
  int rc = 0;
  uv_mutex_lock(&s->mu);
  /* The map holds the newest job with each key (a forced submit takes the
   * key over). */
  mjob *j = jobq__map_get(&s->dedupe, key);
  if (j == NULL || !key_live(j, now)) rc = JOBQ_ENOTFOUND;
  else if (fill(j, out, 1) != 0) rc = oom("get_by_key");
  else out->position = position(j, now);
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int matches(const mjob *j, const jobq_storage_filter *f) {
  if (f->state >= 0 && j->state != f->state) return 0;
  if (f->kind && strcmp(j->kind->name, f->kind) != 0) return 0;
  if (f->owner && !(j->x && j->x->owner && strcmp(j->x->owner, f->owner) == 0)) return 0;
  return 1;
}

static int mem_list(void *st, const jobq_storage_filter *f, jobq_storage_job **out, size_t *n_out,
                    int *more) {
  mstore *s = st;
  *out = NULL;
  *n_out = 0;
  *more = 0;
  jobq_storage_job *v = calloc((size_t)f->limit, sizeof *v);
  if (v == NULL) return oom("list");
  uv_mutex_lock(&s->mu);
  mjob *j;
  if (f->cursor) {
    mjob *c = id_get(s, f->cursor);
    if (c == NULL) {
      uv_mutex_unlock(&s->mu);
      free(v);
      return jobq__err(JOBQ_EINVAL, "memory storage: cursor %.40s names no job", f->cursor);
    }
    j = f->newest_first ? c->prev : c->next;
  } else {
    j = f->newest_first ? s->last : s->first;
  }
  size_t n = 0;
  for (; j; j = f->newest_first ? j->prev : j->next) {
    if (!matches(j, f)) continue;
    if (n == (size_t)f->limit) {
      *more = 1;
      break;
    }
    if (fill(j, &v[n], 1) != 0) {
      uv_mutex_unlock(&s->mu);
      for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&v[i]);
      free(v);
      return oom("list");
    }
    n++;
  }
  uv_mutex_unlock(&s->mu);
  *out = v;
  *n_out = n;
  return 0;
}

static int mem_next_run_at(void *st, const char *const *kinds, size_t n_kinds, int64_t now,
                           int64_t *out) {
  mstore *s = st;
  int64_t best = INT64_MAX;
  uv_mutex_lock(&s->mu);
  size_t total = kinds ? n_kinds : s->n_kinds;
  for (size_t i = 0; i < total; i++) {
    mkind *k = kinds ? kind_get(s, kinds[i], 0) : s->kinds[i];
    if (k == NULL) continue;
    promote(k, now); /* what came due is not "next" */
    mjob *t = jobq__heap_top(&k->delayed);
    if (t && t->run_at > now && t->run_at < best) best = t->run_at;
  }
  uv_mutex_unlock(&s->mu);
  *out = best;
  return 0;
}

static int mem_heartbeat(void *st, jobq_storage_lease *l, size_t n, int64_t lease_until) {
  mstore *s = st;
  (void)lease_until; /* a memory job cannot outlive the process running it */
  uv_mutex_lock(&s->mu);
  for (size_t i = 0; i < n; i++) {
    mjob *j = find_job(s, l[i].id);
    l[i].still_running = j && j->state == JOBQ_RUNNING && j->attempts == l[i].attempt;
    l[i].cancel_requested = j ? j->cancel_req : 0;
  }
  uv_mutex_unlock(&s->mu);
  return 0;
}

static int mem_checkpoint(void *st, const char *id, int attempt, int stage, const char *output,
                          int progress, const char *step) {
  mstore *s = st;
  int rc = 0;
  uv_mutex_lock(&s->mu);
  mjob *j = id_get(s, id);
  if (j == NULL) {
    rc = JOBQ_ENOTFOUND;
  } else if (j->state != JOBQ_RUNNING || j->attempts != attempt) {
    rc = JOBQ_ESTATE;
  } else if (ext(j) == NULL) {
    rc = oom("checkpoint");
  } else {
    char *out = jobq__strdup(output);
    char *stp = step ? jobq__strdup(step) : NULL;
    jobq__mnew hooked = {0};
    if (out == NULL || (step && stp == NULL) ||
        (j->x->hooks &&
         /* checkpoint is given no time: the attempt's start is the latest
          * one it knows on the queue's clock (storage.h) */
         jobq__mbox_prepare_progress(&s->ob, j->x->hooks, stage, j->started_at, &hooked) !=
             0)) {
      jobq__mbox_discard(&s->ob, &hooked);
      free(out);
      free(stp);
      rc = oom("checkpoint");
    } else {
      if (j->x->hooks) jobq__mbox_apply(&s->ob, j->x->hooks, &hooked, 0);
      free(j->x->ck_output);
      j->x->ck_output = out;
      j->x->ck_stage = stage + 1;
      j->progress = (uint8_t)progress;
      if (stp) {
        free(j->x->step);
        j->x->step = stp;
      }
    }
  }
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int mem_checkpoint_get(void *st, const char *id, int *out_stage, char **out_output) {
  mstore *s = st;
  int rc = 0;
  *out_stage = -1;
  *out_output = NULL;
  uv_mutex_lock(&s->mu);
  mjob *j = id_get(s, id);
  if (j == NULL) {
    rc = JOBQ_ENOTFOUND;
  } else if (j->x && j->x->ck_stage > 0) {
    if ((*out_output = jobq__strdup(j->x->ck_output)) == NULL) rc = oom("checkpoint_get");
    else *out_stage = j->x->ck_stage - 1;
  }
  uv_mutex_unlock(&s->mu);
  return rc;
}

/* Takes a finished job out of the store and frees it; a retention cursor
 * on it moves on to the next job. */
static void drop_job(mstore *s, mjob *j) {
  for (size_t i = 0; i < s->n_kinds; i++)
    if (s->kinds[i]->ret_at == j) s->kinds[i]->ret_at = j->next;
  if (j->x && j->x->dedupe_key && jobq__map_get(&s->dedupe, j->x->dedupe_key) == j)
    jobq__map_del(&s->dedupe, j->x->dedupe_key);
  if (j->x && j->x->hooks) jobq__mbox_forget(&s->ob, j->x->hooks);
  uv_mutex_lock(&s->idmu);
  jobq__map_del(id_map(s, jobq__hash(j->id)), j->id);
  uv_mutex_unlock(&s->idmu);
  if (j->prev) j->prev->next = j->next;
  else s->first = j->next;
  if (j->next) j->next->prev = j->prev;
  else s->last = j->prev;
  free_job(j);
}

/* A finished job that prune may take at `before` (the live-key rule). */
static int prunable(const mjob *j, int64_t before) {
  if (!jobq_state_is_terminal(j->state) || j->finished_at >= before) return 0;
  if (j->x == NULL) return 1; /* no key, no hooks */
  /* Its news is still to be sent: the body needs the job. */
  if (j->x->hooks && j->x->hooks->active) return 0;
  /* A cache entry stays while its key lives on past `before` (<= now). */
  return !(j->state == JOBQ_SUCCEEDED && j->x->dedupe_key &&
           jobq__key_expiry(j->finished_at, j->x->dedupe_ttl_ms) > before);
}

static int mem_prune(void *st, int64_t before, size_t max, char (**out_ids)[JOBQ_ID_SIZE],
                     size_t *n_out) {
  mstore *s = st;
  char (*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 0, cap = 0;
  *n_out = 0;
  if (out_ids) *out_ids = NULL;
  uv_mutex_lock(&s->mu);
  for (mjob *j = s->first, *next; j && n < max; j = next) {
    next = j->next;
    if (!prunable(j, before)) continue;
    if (out_ids && n == cap) {
      size_t nc = cap ? cap * 2 : 64;
      void *p = realloc(ids, nc * sizeof *ids);
      if (p == NULL) break; /* prune fewer now; the rest goes next time */
      ids = p;
      cap = nc;
    }
    if (out_ids) memcpy(ids[n], j->id, JOBQ_ID_SIZE);
    n++;
    drop_job(s, j);
  }
  uv_mutex_unlock(&s->mu);
  *n_out = n;
  if (out_ids) *out_ids = n ? ids : NULL;
  if (out_ids && n == 0) free(ids);
  return 0;
}

/* ---- retention (prune_kind) ----
 *
 * A pass walks the jobs in submission order from the oldest, a cursor per
 * kind carrying it from one call to the next, and ends at the first job
 * created at or after the cut-off (a job finishes after it was created, so
 * none beyond can be old enough). One call looks at RET_SCAN jobs at most,
 * since claims wait for the store's lock meanwhile. */
#define RET_SCAN 4096

/* keep_per_owner: drops from cand[0..*n) (in submission order) every job
 * that is one of the `keep` finished jobs of its owner and kind submitted
 * last. One walk from the newest job back to the oldest candidate, counting
 * per owner of a candidate. 0 or -1 on out of memory. */
static int keep_newest(mstore *s, mkind *k, mjob **cand, size_t *n, int keep) {
  jobq_map seen = {0}; /* owner -> count + 1 of its finished jobs of k seen */
  size_t owned = 0;
  for (size_t i = 0; i < *n; i++) {
    const char *o = cand[i]->x ? cand[i]->x->owner : NULL;
    if (o == NULL || jobq__map_get(&seen, o)) continue;
    if (jobq__map_put(&seen, o, (void *)(uintptr_t)1) != 0) {
      jobq__map_free(&seen);
      return -1;
    }
    owned++;
  }
  if (owned == 0) return 0;
  size_t ci = *n;
  for (mjob *j = s->last; j && ci > 0; j = j->prev) {
    int is_cand = j == cand[ci - 1];
    if (is_cand) ci--;
    if (j->kind != k || !jobq_state_is_terminal(j->state) || j->x == NULL || j->x->owner == NULL)
      continue;
    uintptr_t c = (uintptr_t)jobq__map_get(&seen, j->x->owner);
    if (c == 0) continue; /* no candidate of this owner */
    if (is_cand && c - 1 < (uintptr_t)keep) cand[ci] = NULL; /* among the newest: kept */
    jobq__map_put(&seen, j->x->owner, (void *)(c + 1)); /* an existing key: cannot fail */
  }
  size_t m = 0;
  for (size_t i = 0; i < *n; i++)
    if (cand[i]) cand[m++] = cand[i];
  *n = m;
  jobq__map_free(&seen);
  return 0;
}

static int mem_prune_kind(void *st, jobq_storage_prune *req, char (**out_ids)[JOBQ_ID_SIZE],
                          size_t *n_out) {
  mstore *s = st;
  *n_out = 0;
  if (out_ids) *out_ids = NULL;
  req->more = 0;
  if (req->max == 0) return 0;
  size_t cap = req->max < RET_SCAN ? req->max : RET_SCAN;
  mjob **cand = malloc(cap * sizeof *cand);
  char (*ids)[JOBQ_ID_SIZE] = out_ids ? malloc(cap * sizeof *ids) : NULL;
  if (cand == NULL || (out_ids && ids == NULL)) {
    free(cand);
    free(ids);
    return oom("prune_kind");
  }
  uv_mutex_lock(&s->mu);
  mkind *k = kind_get(s, req->kind, 0);
  size_t n = 0;
  if (k) {
    mjob *j = k->ret_on ? k->ret_at : s->first;
    int end = 1;
    for (size_t seen = 0; j; j = j->next) {
      if (n == cap || seen == RET_SCAN) {
        end = 0; /* more next time, from j */
        break;
      }
      if (j->created_at >= req->before) break; /* nothing newer is old enough */
      seen++;
      if (j->kind == k && prunable(j, req->before)) cand[n++] = j;
    }
    k->ret_on = !end;
    k->ret_at = end ? NULL : j;
    req->more = !end;
    if (req->keep_per_owner > 0 && n && keep_newest(s, k, cand, &n, req->keep_per_owner) != 0) {
      /* Out of memory: keep everything this time, look again next pass. */
      n = 0;
    }
    for (size_t i = 0; i < n; i++) {
      if (ids) memcpy(ids[i], cand[i]->id, JOBQ_ID_SIZE);
      drop_job(s, cand[i]);
    }
  }
  uv_mutex_unlock(&s->mu);
  free(cand);
  *n_out = n;
  if (out_ids) *out_ids = n ? ids : NULL;
  if (out_ids && n == 0) free(ids);
  return 0;
}

/* Nothing to rescue: memory jobs live and die with the one process that
 * holds them, which also runs all of their attempts. */
static int mem_rescue(void *st, int64_t now, size_t *n_out) {
  (void)st;
  (void)now;
  *n_out = 0;
  return 0;
}

/* ---- shared stats (one process: the store's publisher is itself) ---- */

static mstat *stat_get(mstore *s, const char *kind) {
  mstat *m = jobq__map_get(&s->stats, kind);
  if (m) return m;
  size_t n = strlen(kind);
  if ((m = calloc(1, sizeof *m + n + 1)) == NULL) return NULL;
  memcpy(m->kind, kind, n + 1);
  if (jobq__map_put(&s->stats, m->kind, m) != 0) {
    free(m);
    return NULL;
  }
  return m;
}

static int mem_stats_add(void *st, const jobq_storage_stats_delta *d, size_t n, int64_t now) {
  mstore *s = st;
  (void)now;
  uv_mutex_lock(&s->mu);
  /* Everything that can fail first, so that a failure changes nothing. */
  mstat **m = calloc(n ? n : 1, sizeof *m);
  int64_t **copies = calloc(n ? n : 1, sizeof *copies);
  int rc = m && copies ? 0 : oom("stats_add");
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if ((m[i] = stat_get(s, d[i].kind ? d[i].kind : "")) == NULL) rc = oom("stats_add");
    else if (d[i].n_started &&
             (copies[i] = malloc(d[i].n_started * sizeof(int64_t))) == NULL)
      rc = oom("stats_add");
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int64_t k = 0;
    for (int j = 0; j < JOBQ_STORAGE_STAT_N; j++) m[i]->count[j] += d[i].count[j];
    for (int j = 0; j < JOBQ_STORAGE_HIST_N; j++) {
      m[i]->hist[j] += d[i].hist[j];
      k += d[i].hist[j];
    }
    m[i]->sum_ms += d[i].duration_sum_ms;
    if (k > 0) {
      double mean = d[i].duration_sum_ms / (double)k, w = pow(0.8, (double)k);
      m[i]->avg_ms = m[i]->avg_ms > 0 ? m[i]->avg_ms * w + mean * (1 - w) : mean;
      if (m[i]->avg_ms <= 0) m[i]->avg_ms = 1e-3; /* 0 means "none yet" */
    }
    free(m[i]->started);
    m[i]->started = copies[i];
    copies[i] = NULL;
    if (d[i].n_started) memcpy(m[i]->started, d[i].started, d[i].n_started * sizeof(int64_t));
    m[i]->n_started = d[i].n_started;
    m[i]->concurrency = d[i].concurrency;
    m[i]->until = d[i].until;
  }
  for (size_t i = 0; copies && i < n; i++) free(copies[i]);
  free(copies);
  free(m);
  uv_mutex_unlock(&s->mu);
  return rc;
}

/* Fills r for kind name (copied) from its stats and, with depth, its jobs. */
static int stat_fill(mstore *s, const char *name, int depth, int64_t now,
                     jobq_storage_kind_stats *r) {
  memset(r, 0, sizeof *r);
  if ((r->kind = jobq__strdup(name)) == NULL) return -1;
  mstat *m = jobq__map_get(&s->stats, name);
  if (m) {
    memcpy(r->count, m->count, sizeof r->count);
    memcpy(r->hist, m->hist, sizeof r->hist);
    r->duration_sum_ms = m->sum_ms;
    r->avg_ms = m->avg_ms;
    if (m->until >= now && (m->concurrency > 0 || m->n_started)) {
      r->concurrency = m->concurrency;
      if (m->n_started) {
        if ((r->started = malloc(m->n_started * sizeof(int64_t))) == NULL) return -1;
        memcpy(r->started, m->started, m->n_started * sizeof(int64_t));
        r->n_started = m->n_started;
      }
    }
  }
  mkind *k = depth ? kind_get(s, name, 0) : NULL;
  if (k) {
    /* O(queued jobs of the kind): a walk of its two heaps. */
    const mjob *oldest = NULL;
    r->queued = (int64_t)k->n_ready;
    for (size_t i = 0; i < k->ready.n; i++) {
      const mjob *j = k->ready.v[i];
      if (oldest == NULL || j->seq < oldest->seq) oldest = j;
    }
    for (size_t i = 0; i < k->n_bands; i++) { /* a ring's oldest is its head */
      const mjob *j = k->bands[i].ring_n ? ring_head(&k->bands[i]) : NULL;
      if (j && (oldest == NULL || j->seq < oldest->seq)) oldest = j;
    }
    for (size_t i = 0; i < k->delayed.n; i++) {
      const mjob *j = k->delayed.v[i];
      if (j->run_at > now) {
        r->scheduled++;
        continue;
      }
      r->queued++;
      if (oldest == NULL || j->seq < oldest->seq) oldest = j;
    }
    r->oldest_queued_at = oldest ? oldest->run_at : 0;
  }
  return 0;
}

static int mem_stats_read(void *st, const char *kind, int depth, int64_t now,
                          jobq_storage_kind_stats **out, size_t *n_out) {
  mstore *s = st;
  *out = NULL;
  *n_out = 0;
  uv_mutex_lock(&s->mu);
  size_t cap = kind ? 1 : s->stats.count + s->n_kinds, n = 0;
  jobq_storage_kind_stats *v = calloc(cap ? cap : 1, sizeof *v);
  int rc = v ? 0 : oom("stats_read");
  if (rc == 0 && kind) {
    if (stat_fill(s, kind, depth, now, &v[n++]) != 0) rc = oom("stats_read");
  } else if (rc == 0) {
    /* The kinds with stats, then those with jobs only. */
    jobq_map_slot *e;
    for (size_t cur = 0; rc == 0 && (e = jobq__map_next(&s->stats, &cur));)
      if (stat_fill(s, ((mstat *)e->val)->kind, depth, now, &v[n++]) != 0) rc = oom("stats_read");
    for (size_t i = 0; rc == 0 && i < s->n_kinds; i++) {
      if (jobq__map_get(&s->stats, s->kinds[i]->name)) continue;
      if (stat_fill(s, s->kinds[i]->name, depth, now, &v[n++]) != 0) rc = oom("stats_read");
    }
  }
  uv_mutex_unlock(&s->mu);
  if (rc) {
    for (size_t i = 0; i < n; i++) {
      free(v[i].kind);
      free(v[i].started);
    }
    free(v);
    return rc;
  }
  *out = v;
  *n_out = n;
  return 0;
}

/* ---- the webhook outbox (version 4; memory_outbox.c) ---- */

static int fill_claimed(void *job, jobq_storage_job *out) { return fill(job, out, 0); }

static int mem_outbox_claim(void *st, const jobq_storage_outbox_claim *req,
                            jobq_storage_delivery *out, jobq_storage_job *jobs, size_t *n_out) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  int rc = jobq__mbox_claim(&s->ob, req, out, jobs, n_out, fill_claimed);
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int mem_outbox_done(void *st, const jobq_storage_outbox_result *r, size_t n, int *applied) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  int rc = jobq__mbox_done(&s->ob, r, n, applied);
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int mem_outbox_list(void *st, const jobq_storage_outbox_filter *f,
                           jobq_storage_delivery **out, size_t *n_out, int *more) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  const mjob *j = f->job_id ? id_get(s, f->job_id) : NULL;
  int rc = jobq__mbox_list(&s->ob, f, j && j->x ? j->x->hooks : NULL, out, n_out, more);
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int mem_outbox_counts(void *st, int64_t counts[4]) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  memcpy(counts, s->ob.counts, sizeof s->ob.counts);
  uv_mutex_unlock(&s->mu);
  return 0;
}

static int mem_outbox_redeliver(void *st, const char *id, int64_t now) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  int rc = jobq__mbox_redeliver(&s->ob, id, now);
  uv_mutex_unlock(&s->mu);
  return rc;
}

static int mem_webhook_enable(void *st, const char *url) {
  mstore *s = st;
  uv_mutex_lock(&s->mu);
  int rc = jobq__mbox_enable(&s->ob, url);
  uv_mutex_unlock(&s->mu);
  return rc;
}

const jobq_storage_ops jobq__memory_ops = {
  .version = JOBQ_STORAGE_OPS_VERSION,
  .scheme = "memory",
  .open = mem_open,
  .close = mem_close,
  .insert = mem_insert,
  .claim = mem_claim,
  .finish = mem_finish,
  .progress = mem_progress,
  .cancel = mem_cancel,
  .get = mem_get,
  .list = mem_list,
  .next_run_at = mem_next_run_at,
  .heartbeat = mem_heartbeat,
  .rescue = mem_rescue,
  .set_notify = NULL,
  .checkpoint = mem_checkpoint,
  .checkpoint_get = mem_checkpoint_get,
  .prune = mem_prune,
  .get_by_key = mem_get_by_key,
  .set_quotas = mem_set_quotas,
  .cron_put = mem_cron_put,
  .cron_del = mem_cron_del,
  .cron_list = mem_cron_list,
  .cron_fire = mem_cron_fire,
  .rate_window = mem_rate_window,
  .stats_add = mem_stats_add,
  .stats_read = mem_stats_read,
  .batch_insert = mem_batch_insert,
  .batch_get = mem_batch_get,
  .set_batch_sink = mem_set_batch_sink,
  .prune_kind = mem_prune_kind,
  .insert_hooked = mem_insert_hooked,
  .cron_fire_hooked = mem_cron_fire_hooked,
  .outbox_claim = mem_outbox_claim,
  .outbox_done = mem_outbox_done,
  .outbox_list = mem_outbox_list,
  .outbox_counts = mem_outbox_counts,
  .outbox_redeliver = mem_outbox_redeliver,
  .webhook_enable = mem_webhook_enable,
};
