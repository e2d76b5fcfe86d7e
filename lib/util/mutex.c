#define _GNU_SOURCE
#include "util/mutex.h"

#include <pthread.h>

int jobq__mutex_init(uv_mutex_t *m) {
#if defined(PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP)
  pthread_mutexattr_t a;
  if (pthread_mutexattr_init(&a) != 0) return -1;
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
  int rc = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return rc ? -1 : 0;
#else
  return uv_mutex_init(m);
#endif
}
