/* finish_async on the PostgreSQL backend: group commit of finishes. Workers
 * hand their outcomes to a thread of the store and go on; the thread takes
 * every outcome that arrived while its last statement ran and applies them
 * all with one finish (one UPDATE, one commit: pg_claim.c), then answers
 * each caller. With N workers finishing at once, that is one round trip
 * and one WAL flush for N jobs instead of N. */
#include "postgres/pg_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* At most this many outcomes go in one statement. */
#define GROUP_MAX 1024

struct pg_fa_req {
  struct pg_fa_req *next;
  jobq_storage_finish *fin; /* n copies, strings in the same block */
  size_t n;
  void (*done)(void *ud, int rc, const int *out_state);
  void *ud;
};

static void fa_main(void *arg) {
  pg_store *s = arg;
  jobq_storage_finish *all = NULL;
  int *states = NULL;
  size_t cap = 0;
  uv_mutex_lock(&s->fa_mu);
  for (;;) {
    while (s->fa_head == NULL && !s->fa_stop) uv_cond_wait(&s->fa_cv, &s->fa_mu);
    if (s->fa_head == NULL) break; /* stopping, and nothing left to answer */
    /* the group: requests in arrival order, up to GROUP_MAX outcomes (one
     * request always goes, however large) */
    pg_fa_req *grp = s->fa_head, *last = grp;
    size_t total = grp->n;
    while (last->next && total + last->next->n <= GROUP_MAX) {
      last = last->next;
      total += last->n;
    }
    s->fa_head = last->next;
    if (s->fa_head == NULL) s->fa_tail = NULL;
    last->next = NULL;
    uv_mutex_unlock(&s->fa_mu);
    int rc = 0;
    if (total > cap) {
      jobq_storage_finish *na = realloc(all, total * sizeof *na);
      int *ns = na ? realloc(states, total * sizeof *ns) : NULL;
      if (na) all = na;
      if (ns) states = ns;
      if (na && ns) cap = total;
      else rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    }
    if (rc == 0) {
      size_t k = 0;
      for (pg_fa_req *r = grp; r; r = r->next) {
        memcpy(all + k, r->fin, r->n * sizeof *all);
        k += r->n;
      }
      rc = jobq__pg_finish(s, all, total, states);
    }
    size_t k = 0;
    while (grp) {
      pg_fa_req *next = grp->next;
      grp->done(grp->ud, rc, rc == 0 ? states + k : NULL);
      k += grp->n;
      free(grp);
      grp = next;
    }
    uv_mutex_lock(&s->fa_mu);
  }
  uv_mutex_unlock(&s->fa_mu);
  free(all);
  free(states);
}

int jobq__pg_finish_async(void *st, const jobq_storage_finish *f, size_t n,
                          void (*done)(void *ud, int rc, const int *out_state), void *ud) {
  pg_store *s = st;
  /* One block: the request, its copy of f and the strings. */
  size_t strs = 0;
  for (size_t i = 0; i < n; i++) {
    strs += strlen(f[i].id) + 1;
    if (f[i].result) strs += strlen(f[i].result) + 1;
    if (f[i].error) strs += strlen(f[i].error) + 1;
    if (f[i].step) strs += strlen(f[i].step) + 1;
  }
  size_t head = sizeof(pg_fa_req) + n * sizeof(jobq_storage_finish);
  char *mem = malloc(head + strs);
  if (mem == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  pg_fa_req *r = (pg_fa_req *)mem;
  memset(r, 0, sizeof *r);
  r->fin = (jobq_storage_finish *)(mem + sizeof(pg_fa_req));
  char *p = mem + head;
  for (size_t i = 0; i < n; i++) {
    r->fin[i] = f[i];
    const char **fields[] = {&r->fin[i].id, &r->fin[i].result, &r->fin[i].error, &r->fin[i].step};
    for (size_t k = 0; k < 4; k++) {
      if (*fields[k] == NULL) continue;
      size_t len = strlen(*fields[k]) + 1;
      memcpy(p, *fields[k], len);
      *fields[k] = p;
      p += len;
    }
  }
  r->n = n;
  r->done = done;
  r->ud = ud;
  uv_mutex_lock(&s->fa_mu);
  int rc = 0;
  if (!s->fa_started) {
    /* the thread starts with the first finish: a submit-only process has none */
    if (uv_thread_create(&s->fa_thread, fa_main, s) == 0) s->fa_started = 1;
    else rc = jobq__err(JOBQ_ENOMEM, "postgres storage: cannot start the finishing thread");
  }
  if (rc == 0) {
    if (s->fa_tail) s->fa_tail->next = r;
    else s->fa_head = r;
    s->fa_tail = r;
    uv_cond_signal(&s->fa_cv);
  }
  uv_mutex_unlock(&s->fa_mu);
  if (rc) free(mem);
  return rc;
}

void jobq__pg_finish_async_stop(pg_store *s) {
  uv_mutex_lock(&s->fa_mu);
  s->fa_stop = 1;
  uv_cond_signal(&s->fa_cv);
  int started = s->fa_started;
  uv_mutex_unlock(&s->fa_mu);
  if (started) uv_thread_join(&s->fa_thread); /* it answers what is queued first */
}
