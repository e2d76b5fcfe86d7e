/* Atomic file output: write "<path>.tmp", fsync, rename. */
#include "stages/outfile.h"
#include "util/mem.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A zeroed jobq__outfile (fd 0, no tmp) owns no descriptor: tmp says whether
 * fd is ours. */
static void release(jobq__outfile *o) {
  if (o->tmp != NULL && o->fd >= 0) close(o->fd);
  free(o->path);
  free(o->tmp);
  o->fd = -1;
  o->path = NULL;
  o->tmp = NULL;
}

static int io_err(jobq__outfile *o, const char *what, int e) {
  return jobq__err(JOBQ_EIO, "cannot %s '%.200s': %s", what, o->tmp ? o->tmp : "(none)",
                   strerror(e));
}

int jobq__outfile_open(jobq__outfile *o, const char *path) {
  o->fd = -1;
  o->path = NULL;
  o->tmp = NULL;
  if (path == NULL || path[0] == '\0') return jobq__err(JOBQ_EINVAL, "output file: no path");
  size_t n = strlen(path);
  o->path = jobq__strdup(path);
  o->tmp = malloc(n + sizeof ".tmp");
  if (o->path == NULL || o->tmp == NULL) {
    release(o);
    return jobq__err(JOBQ_ENOMEM, "output file: out of memory");
  }
  memcpy(o->tmp, path, n);
  memcpy(o->tmp + n, ".tmp", sizeof ".tmp");
  /* O_TRUNC, not O_EXCL: a .tmp left by a crashed run must not block the
   * rerun. Callers give each output its own path, so nobody else writes it. */
  o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (o->fd < 0) {
    int rc = io_err(o, "create", errno);
    release(o);
    return rc;
  }
  return 0;
}

int jobq__outfile_write(jobq__outfile *o, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(o->fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_err(o, "write", errno);
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int jobq__outfile_write_at(jobq__outfile *o, uint64_t off, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    if (off > (uint64_t)INT64_MAX) return io_err(o, "write", EOVERFLOW);
    ssize_t w = pwrite(o->fd, c, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_err(o, "write", errno);
    }
    c += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

int jobq__outfile_commit(jobq__outfile *o) {
  int rc = 0;
  /* The data must be on disk before the rename is: otherwise a crash can
   * leave path renamed but empty. The directory is not synced; losing the
   * rename in a crash only means the job runs again. */
  if (fsync(o->fd) != 0) rc = io_err(o, "sync", errno);
  int fd = o->fd;
  o->fd = -1;
  if (close(fd) != 0 && rc == 0) rc = io_err(o, "close", errno);
  if (rc == 0 && rename(o->tmp, o->path) != 0) {
    int e = errno;
    rc = jobq__err(JOBQ_EIO, "cannot rename '%.200s' to '%.200s': %s", o->tmp, o->path,
                   strerror(e));
  }
  if (rc != 0) unlink(o->tmp);
  release(o);
  return rc;
}

void jobq__outfile_abort(jobq__outfile *o) {
  if (o->tmp != NULL) {
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    unlink(o->tmp);
  }
  release(o);
}
