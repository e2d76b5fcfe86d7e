/* Small file-system helpers: directories made and removed, paths checked. */
#ifndef JOBQ_UTIL_FS_H
#define JOBQ_UTIL_FS_H

#include "util/private.h"

#include <stddef.h>

/* mkdir -p with mode 0755 (0700 for the last component when private).
 * 0 or JOBQ_EIO with jobq_last_error() set. */
JOBQ_PRIVATE int jobq__mkdirs(const char *path, int private_leaf);
/* rm -rf without following symbolic links; a missing path is fine. */
int jobq__rmtree(const char *path);
/* 1 if rel is a relative path that stays inside its directory: not empty, no
 * leading '/', no "..", "." or empty component, no backslash or control
 * character. */
JOBQ_PRIVATE int jobq__path_is_contained(const char *rel);

#endif
