#include "util/map.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a, then a final avalanche: ids share long prefixes (UUIDv7 starts with
 * the time), so the low bits must depend on every byte. */
uint64_t jobq__hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

void jobq__map_free(jobq_map *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->count = 0;
}

static jobq_map_slot *find(const jobq_map *m, const char *key, uint64_t h) {
  if (m->cap == 0) return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    jobq_map_slot *s = &m->slots[i];
    if (s->key == NULL) return NULL;
    if (s->hash == h && strcmp(s->key, key) == 0) return s;
  }
}

void *jobq__map_get(const jobq_map *m, const char *key) {
  jobq_map_slot *s = find(m, key, jobq__hash(key));
  return s ? s->val : NULL;
}

static void place(jobq_map_slot *slots, size_t cap, const char *key, void *val, uint64_t h) {
  size_t mask = cap - 1;
  size_t i = h & mask;
  while (slots[i].key != NULL) i = (i + 1) & mask;
  slots[i].key = key;
  slots[i].val = val;
  slots[i].hash = h;
}

static int grow(jobq_map *m) {
  size_t ncap = m->cap ? m->cap * 2 : 16;
  jobq_map_slot *ns = calloc(ncap, sizeof *ns);
  if (ns == NULL) return -1;
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i].key) place(ns, ncap, m->slots[i].key, m->slots[i].val, m->slots[i].hash);
  free(m->slots);
  m->slots = ns;
  m->cap = ncap;
  return 0;
}

int jobq__map_put(jobq_map *m, const char *key, void *val) {
  uint64_t h = jobq__hash(key);
  jobq_map_slot *s = find(m, key, h);
  if (s) {
    s->key = key;
    s->val = val;
    return 0;
  }
  /* Load factor at most 1/2 keeps probe sequences short. */
  if ((m->count + 1) * 2 > m->cap && grow(m) != 0) return -1;
  place(m->slots, m->cap, key, val, h);
  m->count++;
  return 0;
}

void *jobq__map_del(jobq_map *m, const char *key) {
  uint64_t h = jobq__hash(key);
  jobq_map_slot *s = find(m, key, h);
  if (s == NULL) return NULL;
  void *val = s->val;
  size_t mask = m->cap - 1;
  size_t i = (size_t)(s - m->slots);
  /* Backward shift: pull later members of the probe run into the hole when
   * their home slot is not between the hole and themselves. */
  size_t j = i;
  for (;;) {
    m->slots[i].key = NULL;
    for (;;) {
      j = (j + 1) & mask;
      if (m->slots[j].key == NULL) {
        m->count--;
        return val;
      }
      size_t home = m->slots[j].hash & mask;
      if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) break;
    }
    m->slots[i] = m->slots[j];
    i = j;
  }
}

int jobq__map_reserve(jobq_map *m, size_t extra) {
  while ((m->count + extra) * 2 > m->cap)
    if (grow(m) != 0) return -1;
  return 0;
}
