/* A binary min-heap of pointers whose elements remember their index, so that
 * any element can be removed in O(log n) (a cancelled job leaves the queue
 * without a scan). */
#ifndef JOBQ_UTIL_HEAP_H
#define JOBQ_UTIL_HEAP_H

#include <stddef.h>
#include <stdint.h>

typedef int (*jobq_heap_less)(const void *a, const void *b);
/* Where an element keeps its index (so the heap can update it). */
typedef uint32_t *(*jobq_heap_slot)(void *e);

typedef struct jobq_heap {
  void **v;
  size_t n, cap;
  jobq_heap_less less;
  jobq_heap_slot slot;
} jobq_heap;

int jobq__heap_push(jobq_heap *h, void *e); /* 0 or -1 on out of memory */
int jobq__heap_reserve(jobq_heap *h, size_t extra);
void *jobq__heap_pop(jobq_heap *h);
void jobq__heap_remove(jobq_heap *h, void *e);
static inline void *jobq__heap_top(const jobq_heap *h) { return h->n ? h->v[0] : NULL; }
void jobq__heap_free(jobq_heap *h);

#endif
