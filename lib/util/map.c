#include "util/map.h"

#include <stdlib.h>
#include <string.h>

/* Eight bytes at a time (a byte at a time cost a job about 50 ns per
 * lookup, a dozen times on its way through the queue), then a final
 * avalanche: ids share long prefixes (UUIDv7 starts with the time), so the
 * low bits must depend on every byte. */
uint64_t jobq__hash(const char *s) {
  size_t n = strlen(s);
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
  for (; n >= 8; s += 8, n -= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
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

void *jobq__map_get_h(const jobq_map *m, const char *key, uint64_t h) {
  jobq_map_slot *s = find(m, key, h);
  return s ? s->val : NULL;
}

void jobq__map_prefetch(const jobq_map *m, uint64_t h) {
  if (m->cap) __builtin_prefetch(&m->slots[h & (m->cap - 1)]);
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
  return jobq__map_put_h(m, key, val, jobq__hash(key));
}

int jobq__map_put_h(jobq_map *m, const char *key, void *val, uint64_t h) {
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

static void *del_slot(jobq_map *m, jobq_map_slot *s);

void *jobq__map_del(jobq_map *m, const char *key) {
  jobq_map_slot *s = find(m, key, jobq__hash(key));
  return s ? del_slot(m, s) : NULL;
}

int jobq__map_del_val(jobq_map *m, const char *key, const void *val) {
  jobq_map_slot *s = find(m, key, jobq__hash(key));
  if (s == NULL || s->val != val) return 0;
  del_slot(m, s);
  return 1;
}

static void *del_slot(jobq_map *m, jobq_map_slot *s) {
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
