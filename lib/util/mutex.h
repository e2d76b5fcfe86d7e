/* Mutexes that spin briefly before sleeping. The core and storage locks are
 * held for well under a microsecond; with the default mutex a contended
 * acquire sleeps in the kernel and its release pays a wake-up system call,
 * which at hundreds of thousands of jobs per second costs more than the
 * work itself. */
#ifndef JOBQ_UTIL_MUTEX_H
#define JOBQ_UTIL_MUTEX_H

#include <uv.h>

int jobq__mutex_init(uv_mutex_t *m);

#endif
