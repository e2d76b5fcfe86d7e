/* Directories for work files: made with parents, removed without following
 * links (a job's directory may hold anything a stage wrote). */
#define _GNU_SOURCE
#include "util/fs.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int jobq__mkdirs(const char *path, int private_leaf) {
  size_t n = strlen(path);
  if (n == 0 || n >= 4096) return jobq__err(JOBQ_EIO, "cannot create directory '%.200s'", path);
  char buf[4096];
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    mode_t mode = (c == '\0' && private_leaf) ? 0700 : 0755;
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
      return jobq__err(JOBQ_EIO, "cannot create directory '%.200s': %s", buf, strerror(errno));
    buf[i] = c;
  }
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return jobq__err(JOBQ_EIO, "'%.200s' is not a directory", path);
  return 0;
}

static int rm_at(int at, const char *name, int depth) {
  if (depth > 64) return -1;
  if (unlinkat(at, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;
  int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (rm_at(dirfd(d), e->d_name, depth + 1) != 0) rc = -1;
  }
  closedir(d);
  if (unlinkat(at, name, AT_REMOVEDIR) != 0 && errno != ENOENT) rc = -1;
  return rc;
}

int jobq__rmtree(const char *path) {
  if (rm_at(AT_FDCWD, path, 0) != 0)
    return jobq__err(JOBQ_EIO, "cannot remove '%.200s': %s", path, strerror(errno));
  return 0;
}

int jobq__path_is_contained(const char *rel) {
  if (rel == NULL || *rel == '\0' || *rel == '/') return 0;
  const char *p = rel;
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)p[i];
      if (c < 0x20 || c == 0x7f || c == '\\') return 0;
    }
    if (!slash) break;
    p = slash + 1;
    if (*p == '\0') return 0; /* trailing slash: not a file */
  }
  return 1;
}
