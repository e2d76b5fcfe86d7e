/* A string-keyed hash map of pointers: open addressing, linear probing,
 * backward-shift deletion (no tombstones, so lookups stay short after many
 * deletions). Keys are not copied: each key must stay valid while its entry
 * is in the map; usually it points into the value (a job's id). */
#ifndef JOBQ_UTIL_MAP_H
#define JOBQ_UTIL_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobq_map_slot {
  const char *key; /* NULL: empty */
  void *val;
  uint64_t hash;
} jobq_map_slot;

typedef struct jobq_map {
  jobq_map_slot *slots;
  size_t cap;   /* power of two, or 0 */
  size_t count;
} jobq_map;

uint64_t jobq__hash(const char *s);
void jobq__map_free(jobq_map *m);
void *jobq__map_get(const jobq_map *m, const char *key);
/* Inserts or replaces; returns 0 or -1 on out of memory (map unchanged). */
int jobq__map_put(jobq_map *m, const char *key, void *val);
/* The same with key's hash (jobq__hash) made beforehand, e.g. outside a
 * lock; and a hint to load the slot where h's probe starts, for a batch of
 * lookups in a map too large for the cache. */
void *jobq__map_get_h(const jobq_map *m, const char *key, uint64_t h);
int jobq__map_put_h(jobq_map *m, const char *key, void *val, uint64_t h);
void jobq__map_prefetch(const jobq_map *m, uint64_t h);
/* Removes key; returns its value or NULL. */
void *jobq__map_del(jobq_map *m, const char *key);
/* Removes key if its value is val (one lookup); 1 if it did. */
int jobq__map_del_val(jobq_map *m, const char *key, const void *val);

/* The entries one by one, in no particular order: start with *cursor 0;
 * each call returns the next entry, or NULL after the last. The map must
 * not change meanwhile (a put may move every entry, a deletion shift one
 * back over the cursor). */
static inline jobq_map_slot *jobq__map_next(const jobq_map *m, size_t *cursor) {
  while (*cursor < m->cap) {
    jobq_map_slot *s = &m->slots[(*cursor)++];
    if (s->key) return s;
  }
  return NULL;
}

/* Makes room for extra more entries so that the next extra puts cannot
 * fail; 0 or -1 on out of memory. */
int jobq__map_reserve(jobq_map *m, size_t extra);
#endif
