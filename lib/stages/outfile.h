/* Files that appear whole or not at all. Bytes go to "<path>.tmp", which is
 * renamed over path only after everything was written and synced: a reader
 * (or a job rerun after a crash) never finds a half-written file, and a
 * failure removes the .tmp. Internal to libjobq. */
#ifndef JOBQ_STAGES_OUTFILE_H
#define JOBQ_STAGES_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobq__outfile {
  int fd;
  char *path;
  char *tmp;
} jobq__outfile;

/* Creates (or truncates) "<path>.tmp". 0, JOBQ_EINVAL, JOBQ_ENOMEM or
 * JOBQ_EIO; on failure *o needs no cleanup. */
int jobq__outfile_open(jobq__outfile *o, const char *path);
/* Appends n bytes. JOBQ_EIO on failure (then call jobq__outfile_abort). */
int jobq__outfile_write(jobq__outfile *o, const void *p, size_t n);
/* Overwrites n bytes at offset off (for headers known only at the end). */
int jobq__outfile_write_at(jobq__outfile *o, uint64_t off, const void *p, size_t n);
/* Syncs, closes and renames the .tmp over path. Releases o whatever happens;
 * on failure the .tmp is removed and path is left as it was. */
int jobq__outfile_commit(jobq__outfile *o);
/* Closes and removes the .tmp. Safe on a zeroed or released jobq__outfile. */
void jobq__outfile_abort(jobq__outfile *o);

#endif
