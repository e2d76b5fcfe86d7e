/* The in-memory sliding-window log of starts (ratelog.h). */
#include "storage/ratelog.h"

#include <stdlib.h>

#define AT(l, i) ((l)->at[((l)->head + (i)) % (l)->cap])
#define N(l, i) ((l)->n[((l)->head + (i)) % (l)->cap])

int64_t jobq__ratelog_room(jobq__ratelog *l, int starts, int64_t interval_ms, int64_t now) {
  while (l->count > 0 && l->at[l->head] <= now - interval_ms) {
    l->used -= l->n[l->head];
    l->head = (l->head + 1) % l->cap;
    l->count--;
  }
  return l->used >= starts ? 0 : starts - l->used;
}

int jobq__ratelog_reserve(jobq__ratelog *l) {
  if (l->count < l->cap) return 0;
  size_t nc = l->cap ? l->cap * 2 : 8;
  int64_t *at = malloc(nc * sizeof *at), *n = malloc(nc * sizeof *n);
  if (at == NULL || n == NULL) {
    free(at);
    free(n);
    return -1;
  }
  for (size_t i = 0; i < l->count; i++) {
    at[i] = AT(l, i);
    n[i] = N(l, i);
  }
  free(l->at);
  free(l->n);
  l->at = at;
  l->n = n;
  l->cap = nc;
  l->head = 0;
  return 0;
}

void jobq__ratelog_add(jobq__ratelog *l, int64_t now, int64_t n) {
  l->used += n;
  if (l->count > 0 && AT(l, l->count - 1) >= now) {
    N(l, l->count - 1) += n;
    return;
  }
  l->count++;
  AT(l, l->count - 1) = now;
  N(l, l->count - 1) = n;
}

int64_t jobq__ratelog_next(const jobq__ratelog *l, int64_t interval_ms) {
  return l->count ? l->at[l->head] + interval_ms : INT64_MAX;
}

int64_t jobq__ratelog_used(const jobq__ratelog *l, int64_t interval_ms, int64_t now) {
  int64_t used = 0;
  for (size_t i = 0; i < l->count; i++)
    if (AT(l, i) > now - interval_ms) used += N(l, i);
  return used;
}

void jobq__ratelog_free(jobq__ratelog *l) {
  free(l->at);
  free(l->n);
  l->at = l->n = NULL;
  l->head = l->count = l->cap = 0;
  l->used = 0;
}
