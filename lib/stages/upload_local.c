/* The local upload provider: copies the artifact into a directory and
 * answers a file:// URL. Keys never leave the directory. */
#include "stages/upload.h"
#include "util/mem.h"
#include "util/err.h"
#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct local {
  char *dir;    /* absolute */
  char *prefix;
} local;

static void local_free(void *p) {
  local *l = p;
  if (l == NULL) return;
  free(l->dir);
  free(l->prefix);
  free(l);
}

static int local_configure(const json_t *cfg, void **out) {
  const char *dir, *prefix;
  int rc;
  if ((rc = jobq__cfg_str(cfg, "upload", "dir", 1, &dir)) ||
      (rc = jobq__cfg_str(cfg, "upload", "key_prefix", 0, &prefix)) ||
      (rc = jobq__upload_prefix_check("upload provider 'local'", prefix)))
    return rc;
  if ((rc = jobq__mkdirs(dir, 0)) != 0)
    return jobq__err_prefix(JOBQ_ECONFIG, NULL, "upload provider 'local': ");
  local *l = calloc(1, sizeof *l);
  char abs[PATH_MAX];
  if (l == NULL) return jobq__err(JOBQ_ENOMEM, "upload: out of memory");
  if (realpath(dir, abs) == NULL) {
    free(l);
    return jobq__err(JOBQ_ECONFIG, "upload provider 'local': cannot resolve '%.200s': %s", dir,
                     strerror(errno));
  }
  l->dir = jobq__strdup(abs);
  l->prefix = jobq__strdup(prefix ? prefix : "");
  if (!l->dir || !l->prefix) {
    local_free(l);
    return jobq__err(JOBQ_ENOMEM, "upload: out of memory");
  }
  *out = l;
  return 0;
}

/* Copies src to dst through dst.tmp and a rename: a reader never sees half
 * a file. */
static int copy_file(const char *src, const char *dst, char *why, size_t n) {
  char tmp[PATH_MAX + 1200];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= sizeof tmp) {
    snprintf(why, n, "the path is too long");
    return -1;
  }
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    snprintf(why, n, "cannot open '%.200s': %s", src, strerror(errno));
    return -1;
  }
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (out < 0) {
    snprintf(why, n, "cannot create '%.200s': %s", tmp, strerror(errno));
    close(in);
    return -1;
  }
  char buf[65536];
  ssize_t r;
  int rc = 0;
  while ((r = read(in, buf, sizeof buf)) > 0) {
    for (ssize_t off = 0; off < r;) {
      ssize_t w = write(out, buf + off, (size_t)(r - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        rc = -1;
        break;
      }
      off += w;
    }
    if (rc) break;
  }
  if (r < 0) rc = -1;
  if (rc) snprintf(why, n, "cannot copy to '%.200s': %s", tmp, strerror(errno));
  if (close(out) != 0 && rc == 0) {
    rc = -1;
    snprintf(why, n, "cannot write '%.200s': %s", tmp, strerror(errno));
  }
  close(in);
  if (rc == 0 && rename(tmp, dst) != 0) {
    rc = -1;
    snprintf(why, n, "cannot rename into '%.200s': %s", dst, strerror(errno));
  }
  if (rc) unlink(tmp);
  return rc;
}

static void local_run(jobq_stage_t *st, void *ud) {
  local *l = ud;
  json_t *in = jobq__stage_input_object(st);
  if (in == NULL) return;
  jobq__upload_src src;
  if (jobq__upload_src_get(st, in, l->prefix, &src) != 0) {
    json_decref(in);
    return;
  }
  char dst[PATH_MAX + 1100];
  snprintf(dst, sizeof dst, "%s/%s", l->dir, src.key);
  /* the key may hold directories (contained, checked above) */
  char *slash = strrchr(dst, '/');
  int rc = 0;
  char why[512] = "";
  if (slash && slash > dst + strlen(l->dir)) {
    *slash = '\0';
    rc = jobq__mkdirs(dst, 0);
    if (rc) snprintf(why, sizeof why, "%s", jobq_last_error());
    *slash = '/';
  }
  if (rc == 0) rc = copy_file(src.file, dst, why, sizeof why);
  free(src.key);
  if (rc) {
    json_decref(in);
    jobq__stage_failf(st, 1, "upload provider 'local': %s", why);
    return;
  }
  char url[PATH_MAX + 1200];
  snprintf(url, sizeof url, "file://%s", dst);
  jobq_stage_progress(st, 100, NULL);
  jobq__upload_succeed(st, in, url);
}

const jobq__provider jobq__upload_local = {
  "upload", "local", JOBQ_STAGE_BLOCKING, local_configure, local_free, local_run,
};
