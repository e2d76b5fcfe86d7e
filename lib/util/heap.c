#include "util/heap.h"

#include <stdlib.h>

static void set(jobq_heap *h, size_t i, void *e) {
  h->v[i] = e;
  *h->slot(e) = (uint32_t)i;
}

static void up(jobq_heap *h, size_t i) {
  void *e = h->v[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!h->less(e, h->v[p])) break;
    set(h, i, h->v[p]);
    i = p;
  }
  set(h, i, e);
}

static void down(jobq_heap *h, size_t i) {
  void *e = h->v[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && h->less(h->v[c + 1], h->v[c])) c++;
    if (!h->less(h->v[c], e)) break;
    set(h, i, h->v[c]);
    i = c;
  }
  set(h, i, e);
}

int jobq__heap_reserve(jobq_heap *h, size_t extra) {
  if (h->n + extra <= h->cap) return 0;
  size_t ncap = h->cap ? h->cap : 64;
  while (ncap < h->n + extra) ncap *= 2;
  void **nv = realloc(h->v, ncap * sizeof *nv);
  if (nv == NULL) return -1;
  h->v = nv;
  h->cap = ncap;
  return 0;
}

int jobq__heap_push(jobq_heap *h, void *e) {
  if (jobq__heap_reserve(h, 1) != 0) return -1;
  h->v[h->n++] = e;
  up(h, h->n - 1);
  return 0;
}

void jobq__heap_remove(jobq_heap *h, void *e) {
  size_t i = *h->slot(e);
  void *last = h->v[--h->n];
  if (i == h->n) return;
  set(h, i, last);
  if (i > 0 && h->less(last, h->v[(i - 1) / 2])) up(h, i);
  else down(h, i);
}

void *jobq__heap_pop(jobq_heap *h) {
  if (h->n == 0) return NULL;
  void *top = h->v[0];
  jobq__heap_remove(h, top);
  return top;
}

void jobq__heap_free(jobq_heap *h) {
  free(h->v);
  h->v = NULL;
  h->n = h->cap = 0;
}
