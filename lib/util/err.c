/* Error names and sentences. The table is indexed by -code; codes are ABI and
 * are only ever appended (see jobq.h). */
#include "util/err.h"
#include "util/utf8.h"
#include "jobq/storage.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  const char *text;
} errtab[] = {
  {"JOBQ_OK", "success"},
  {"JOBQ_EINVAL", "invalid argument"},
  {"JOBQ_ENOMEM", "out of memory"},
  {"JOBQ_ENOTFOUND", "no job with that id"},
  {"JOBQ_EJSON", "not valid JSON"},
  {"JOBQ_ETOOBIG", "payload or result too large"},
  {"JOBQ_EKIND", "invalid kind name"},
  {"JOBQ_EEXIST", "already exists"},
  {"JOBQ_ESTATE", "not allowed in the job's current state"},
  {"JOBQ_ETIMEDOUT", "timed out"},
  {"JOBQ_ECLOSED", "queue is closed"},
  {"JOBQ_ESTORAGE", "storage backend failed"},
  {"JOBQ_EURL", "invalid or unsupported storage URL"},
  {"JOBQ_ECANCELLED", "job was cancelled"},
  {"JOBQ_EDEADLK", "call would block the loop thread"},
  {"JOBQ_EBUSY", "resource busy"},
  {"JOBQ_EIO", "I/O error"},
  {"JOBQ_ECORRUPT", "stored data is damaged"},
  {"JOBQ_EFULL", "storage is full"},
  {"JOBQ_EVERSION", "data written by a newer version"},
  {"JOBQ_ENOTSUP", "not supported"},
  {"JOBQ_ECONFIG", "invalid or incomplete configuration"},
  {"JOBQ_EPROVIDER", "the provider answered with an error"},
  {"JOBQ_ENETWORK", "network error"},
  {"JOBQ_EPATH", "path escapes its directory"},
  {"JOBQ_ECRON", "a cron expression is malformed"},
  {"JOBQ_ETZ", "unknown or malformed time zone"},
  {"JOBQ_EQUOTA", "the owner's quota of unfinished jobs is reached"},
  {"JOBQ_ESIGNATURE", "a webhook signature does not match, or its timestamp is too old or too new"},
};

#define NERR ((int)(sizeof errtab / sizeof errtab[0]))

static _Thread_local char detail[512];

JOBQ_API const char *jobq_strerror(int code) {
  if (code > 0 || code <= -NERR) return "unknown error";
  return errtab[-code].text;
}

JOBQ_API const char *jobq_err_name(int code) {
  if (code > 0 || code <= -NERR) return "JOBQ_EUNKNOWN";
  return errtab[-code].name;
}

/* The table's last row: a binding enumerates 0 down to this with
 * jobq_err_name and jobq_strerror instead of copying the macros. */
JOBQ_API int jobq_err_code_min(void) { return -(NERR - 1); }

JOBQ_API const char *jobq_last_error(void) { return detail; }

void jobq__set_detail(const char *msg) {
  if (msg == NULL) msg = "";
  size_t n = strlen(msg);
  if (n >= sizeof detail) n = sizeof detail - 1;
  memmove(detail, msg, n);
  detail[n] = '\0';
  jobq__utf8_fix(detail);
}

JOBQ_API void jobq_storage_set_error(const char *message) { jobq__set_detail(message); }

int jobq__err(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  jobq__utf8_fix(detail); /* a quoted argument or the cut may break a character */
  return code;
}

int jobq__err_prefix(int code, const char *strip, const char *fmt, ...) {
  char cause[sizeof detail];
  const char *c = detail;
  if (strip != NULL) {
    size_t n = strlen(strip);
    if (strncmp(c, strip, n) == 0 && c[n] == ':' && c[n + 1] == ' ') c += n + 2;
  }
  snprintf(cause, sizeof cause, "%s", *c ? c : jobq_strerror(code));
  char pre[sizeof detail];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  size_t np = strlen(pre), nc = strlen(cause);
  if (nc > sizeof detail - 1 - np) nc = sizeof detail - 1 - np;
  memcpy(detail, pre, np);
  memcpy(detail + np, cause, nc);
  detail[np + nc] = '\0';
  jobq__utf8_fix(detail);
  return code;
}
