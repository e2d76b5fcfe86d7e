/* The fork generation (util/fork.h). */
#include "util/fork.h"

#include <pthread.h>
#include <stdatomic.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_uint gen;

static void in_child(void) { atomic_fetch_add_explicit(&gen, 1, memory_order_relaxed); }

static void init(void) { pthread_atfork(NULL, NULL, in_child); }

void jobq__fork_init(void) { pthread_once(&once, init); }

unsigned jobq__fork_gen(void) { return atomic_load_explicit(&gen, memory_order_relaxed); }
