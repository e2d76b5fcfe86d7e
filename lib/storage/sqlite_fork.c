/* The SQLite backend and fork().
 *
 * A forked child has only the thread that called fork(). Whatever lock
 * another thread held at that moment stays held in the child for good:
 * SQLite's process-wide mutexes (its allocator's above all, taken by every
 * sqlite3_malloc) made a child's jobq_open hang. So the fork waits until
 * no thread is inside those: the prepare handler takes them all, in the
 * order in which SQLite itself nests them (the allocator's last), and both
 * sides release them after the fork.
 *
 * SQLite's bookkeeping of open files is per process too (a file's locks,
 * its WAL index), and a child inherits the parent's copy, which does not
 * match the locks the child really holds (fcntl locks are not inherited).
 * A connection to one of those files in the child could thus read or write
 * without the locks it believes it has. So the child may open other files
 * but not one that the parent had open at the fork; sq_open asks
 * jobq__sq_fork_check. */
#include "storage/sqlite_int.h"
#include "util/err.h"
#include "util/fork.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>

/* SQLite's static mutexes, outermost first, as SQLite nests them: the
 * shared-cache list (held in sqlite3BtreeOpen while the file opens), the
 * VFS's file list (held while a temporary file's name is drawn), the random
 * generator (which finds the VFS under MAIN the first time), MAIN, the
 * page caches, and the allocator, which any of them may take inside. */
static const int static_ids[] = {
  SQLITE_MUTEX_STATIC_OPEN, SQLITE_MUTEX_STATIC_VFS1, SQLITE_MUTEX_STATIC_VFS2,
  SQLITE_MUTEX_STATIC_VFS3, SQLITE_MUTEX_STATIC_PRNG, SQLITE_MUTEX_STATIC_MAIN,
  SQLITE_MUTEX_STATIC_LRU,  SQLITE_MUTEX_STATIC_PMEM, SQLITE_MUTEX_STATIC_MEM,
};
#define N_STATIC ((int)(sizeof static_ids / sizeof static_ids[0]))
static sqlite3_mutex *statics[N_STATIC];

/* The files of this process's stores: made by an ancestor when their
 * generation is not this process's. Under files_mu. */
typedef struct open_file {
  struct open_file *next;
  const sq_store *s;
  dev_t dev;
  ino_t ino;
  unsigned gen;
} open_file;
static open_file *files;
static pthread_mutex_t files_mu = PTHREAD_MUTEX_INITIALIZER;

static void prepare(void) {
  pthread_mutex_lock(&files_mu);
  for (int i = 0; i < N_STATIC; i++) sqlite3_mutex_enter(statics[i]);
}

/* The forking thread, which took the locks in prepare, is the one that goes
 * on in the child: both sides release them the same way. */
static void release(void) {
  for (int i = N_STATIC - 1; i >= 0; i--) sqlite3_mutex_leave(statics[i]);
  pthread_mutex_unlock(&files_mu);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void) {
  /* NULL where SQLite was built without threads; entering NULL is a no-op */
  for (int i = 0; i < N_STATIC; i++) statics[i] = sqlite3_mutex_alloc(static_ids[i]);
  pthread_atfork(prepare, release, release);
}

int jobq__sq_fork_check(const char *path) {
  pthread_once(&once, init);
  struct stat sb;
  if (stat(path, &sb) != 0) return 0; /* a new file: nobody had it open */
  unsigned gen = jobq__fork_gen();
  int inherited = 0;
  pthread_mutex_lock(&files_mu);
  for (open_file *f = files; f; f = f->next)
    if (f->gen != gen && f->dev == sb.st_dev && f->ino == sb.st_ino) inherited = 1;
  pthread_mutex_unlock(&files_mu);
  if (inherited)
    return jobq__err(JOBQ_ENOTSUP,
                     "sqlite storage '%s': the parent process had this file open when it called "
                     "fork(), and SQLite's locks on it do not carry over to this process; open it "
                     "in a process that did not inherit such a queue (open queues after fork(), "
                     "or exec)",
                     path);
  return 0;
}

void jobq__sq_fork_track(const sq_store *s) {
  struct stat sb;
  open_file *f = malloc(sizeof *f);
  /* Not knowing the file only costs the refusal in a future child. */
  if (f == NULL || stat(s->path, &sb) != 0) {
    free(f);
    return;
  }
  f->s = s;
  f->dev = sb.st_dev;
  f->ino = sb.st_ino;
  f->gen = jobq__fork_gen();
  pthread_mutex_lock(&files_mu);
  f->next = files;
  files = f;
  pthread_mutex_unlock(&files_mu);
}

void jobq__sq_fork_untrack(const sq_store *s) {
  pthread_mutex_lock(&files_mu);
  for (open_file **at = &files; *at; at = &(*at)->next) {
    if ((*at)->s == s) {
      open_file *f = *at;
      *at = f->next;
      free(f);
      break;
    }
  }
  pthread_mutex_unlock(&files_mu);
}
