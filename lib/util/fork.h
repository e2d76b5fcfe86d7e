/* fork(): which process a queue belongs to. A child of fork() has none of
 * its parent's threads, so the queues it inherited cannot work there; the
 * core refuses them (core/queue.c: jobq__inherited) and the SQLite backend
 * refuses to open their files again (storage/sqlite_fork.c). */
#ifndef JOBQ_UTIL_FORK_H
#define JOBQ_UTIL_FORK_H

/* Registers the fork handlers, once per process; jobq_open calls it before
 * it makes anything that a child could inherit. */
void jobq__fork_init(void);

/* How many fork()s this process is away from the one that called
 * jobq__fork_init first: something made under another number was made by
 * an ancestor, whose threads this process does not have. One atomic load. */
unsigned jobq__fork_gen(void);

#endif
