/* Files that appear whole or not at all. Bytes go to "<path>.tmp", which is
 * renamed over path only after everything was written and synced: a reader
 * (or a job rerun after a crash) never finds a half-written file, and a
 * failure removes the .tmp. Internal to libjobq. */
#ifndef JOBQ_STAGES_OUTFILE_H
#define JOBQ_STAGES_OUTFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct jq_outfile {
  int fd;
  char *path;
  char *tmp;
} jq_outfile;

/* Creates (or truncates) "<path>.tmp". 0, JOBQ_EINVAL, JOBQ_ENOMEM or
 * JOBQ_EIO; on failure *o needs no cleanup. */
int jq_outfile_open(jq_outfile *o, const char *path);
/* Appends n bytes. JOBQ_EIO on failure (then call jq_outfile_abort). */
int jq_outfile_write(jq_outfile *o, const void *p, size_t n);
/* Overwrites n bytes at offset off (for headers known only at the end). */
int jq_outfile_write_at(jq_outfile *o, uint64_t off, const void *p, size_t n);
/* Syncs, closes and renames the .tmp over path. Releases o whatever happens;
 * on failure the .tmp is removed and path is left as it was. */
int jq_outfile_commit(jq_outfile *o);
/* Closes and removes the .tmp. Safe on a zeroed or released jq_outfile. */
void jq_outfile_abort(jq_outfile *o);

#endif
