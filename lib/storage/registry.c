/* Storage backends by URL scheme: the built-in ones and those a host
 * registers. The core knows backends only through this table, and through
 * the internal hooks below, which ask a built-in backend what its vtable
 * does not say. */
#define _GNU_SOURCE /* dladdr */
#include "jobq/storage.h"
#include "util/err.h"
#include "util/mem.h"

#include <dlfcn.h>
#include <stdio.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

extern const jobq_storage_ops jobq__memory_ops;
extern const jobq_storage_ops jobq__sqlite_ops;
int jobq__sq_default_workdir(const char *url, char **out); /* storage/sqlite.c */
void jobq__sq_guard_leases(void *st);                       /* storage/sqlite_lease.c */

#define MAX_BACKENDS 32

static const jobq_storage_ops *table[MAX_BACKENDS] = {&jobq__memory_ops, &jobq__sqlite_ops};
static int n_table = 2;
static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t table_mu;

/* fork(): the lock is held across the fork so that the table is whole in
 * the child; the thread that took it in the prepare handler is the one that
 * goes on in the child, so both sides simply unlock it. */
static void fork_lock(void) { uv_mutex_lock(&table_mu); }
static void fork_unlock(void) { uv_mutex_unlock(&table_mu); }

static void init_mu(void) {
  uv_mutex_init(&table_mu);
  pthread_atfork(fork_lock, fork_unlock, fork_unlock);
}

/* The size of a table of each version: up to the first member of the next
 * version. A backend built against an older header has only that much
 * memory, so init must not write past it. */
static const size_t ops_size[JOBQ_STORAGE_OPS_VERSION + 1] = {
  [1] = offsetof(jobq_storage_ops, checkpoint),
  [2] = offsetof(jobq_storage_ops, get_by_key),
  [3] = offsetof(jobq_storage_ops, insert_hooked),
  [4] = sizeof(jobq_storage_ops),
};
_Static_assert(JOBQ_STORAGE_OPS_VERSION == 4,
               "a new jobq_storage_ops version needs its size in ops_size[]");

JOBQ_API int jobq_storage_ops_init(jobq_storage_ops *ops, int version) {
  if (ops == NULL) return jobq__err(JOBQ_EINVAL, "jobq_storage_ops_init: ops is NULL");
  if (version < 1 || version > JOBQ_STORAGE_OPS_VERSION)
    return jobq__err(JOBQ_EINVAL, "jobq_storage_ops_init: version %d is not 1..%d", version,
                     JOBQ_STORAGE_OPS_VERSION);
  memset(ops, 0, ops_size[version]);
  ops->version = version;
  return 0;
}

static int scheme_ok(const char *s) {
  if (s == NULL || *s == '\0' || strlen(s) > 32) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '+' || *s == '-'))
      return 0;
  return 1;
}

JOBQ_API int jobq_storage_register(const jobq_storage_ops *ops) {
  if (ops == NULL) return jobq__err(JOBQ_EINVAL, "jobq_storage_register: ops is NULL");
  if (ops->version < 1)
    return jobq__err(JOBQ_EINVAL, "jobq_storage_register: ops->version %d is not >= 1",
                     ops->version);
  if (!scheme_ok(ops->scheme))
    return jobq__err(JOBQ_EINVAL,
                     "jobq_storage_register: scheme must be 1..32 characters of a-z 0-9 + -");
  if (!ops->open || !ops->close || !ops->insert || !ops->claim || !ops->finish ||
      !ops->progress || !ops->cancel || !ops->get || !ops->list || !ops->next_run_at ||
      !ops->heartbeat || !ops->rescue)
    return jobq__err(JOBQ_EINVAL,
                     "jobq_storage_register: a version 1 member of '%s' is NULL", ops->scheme);
  uv_once(&once, init_mu);
  uv_mutex_lock(&table_mu);
  int rc = 0;
  for (int i = 0; i < n_table; i++)
    if (strcmp(table[i]->scheme, ops->scheme) == 0)
      rc = jobq__err(JOBQ_EEXIST, "jobq_storage_register: scheme '%s' is taken", ops->scheme);
  if (rc == 0 && n_table == MAX_BACKENDS)
    rc = jobq__err(JOBQ_ENOMEM, "jobq_storage_register: at most %d backends", MAX_BACKENDS);
  if (rc == 0) table[n_table++] = ops;
  uv_mutex_unlock(&table_mu);
  return rc;
}

static const jobq_storage_ops *find(const char *url, size_t n) {
  const jobq_storage_ops *found = NULL;
  uv_mutex_lock(&table_mu);
  for (int i = 0; i < n_table; i++)
    if (strlen(table[i]->scheme) == n && strncmp(table[i]->scheme, url, n) == 0) found = table[i];
  uv_mutex_unlock(&table_mu);
  return found;
}

/* The PostgreSQL backend lives in libjobq-pg (so that a host on SQLite never
 * needs libpq). The first postgres:// URL that finds no backend loads it
 * and calls its jobq_postgres_register, once per process, so that programs
 * built on libjobq alone (the jobq CLI, jobq-server, the bindings) take such
 * URLs. It is looked for beside this libjobq first (an installed pair, or a
 * build tree), then where the dynamic linker looks. */
int jobq__storage_lookup(const char *url, const jobq_storage_ops **out);
static uv_once_t pg_once = UV_ONCE_INIT;
static char pg_why[300];

static void load_pg(void) {
  void *h = NULL;
  Dl_info info;
  if (dladdr((void *)&jobq__storage_lookup, &info) && info.dli_fname) {
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash) {
      char path[1024];
      snprintf(path, sizeof path, "%.*s/libjobq-pg.so.0", (int)(slash - info.dli_fname),
               info.dli_fname);
      h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
  }
  if (h == NULL) h = dlopen("libjobq-pg.so.0", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *e = dlerror();
    snprintf(pg_why, sizeof pg_why, "%s", e ? e : "not found");
    return;
  }
  int (*reg)(void) = (int (*)(void))dlsym(h, "jobq_postgres_register");
  if (reg == NULL) {
    snprintf(pg_why, sizeof pg_why, "it has no jobq_postgres_register");
    return;
  }
  if (reg() != 0) snprintf(pg_why, sizeof pg_why, "jobq_postgres_register: %s", jobq_last_error());
  /* the library stays loaded: its table is in ours now */
}

int jobq__storage_lookup(const char *url, const jobq_storage_ops **out) {
  const char *colon = strchr(url, ':');
  size_t n = colon ? (size_t)(colon - url) : 0;
  if (n == 0)
    return jobq__err(JOBQ_EURL, "storage URL '%.100s' has no scheme; expected e.g. \"memory:\"",
                     url);
  uv_once(&once, init_mu);
  const jobq_storage_ops *found = find(url, n);
  int pg = (n == 8 && strncmp(url, "postgres", 8) == 0) ||
           (n == 10 && strncmp(url, "postgresql", 10) == 0);
  if (found == NULL && pg) {
    uv_once(&pg_once, load_pg);
    found = find(url, n);
    /* (the URL is not quoted: it may hold a password) */
    if (found == NULL)
      return jobq__err(JOBQ_EURL,
                       "storage URL '%.*s://...': the PostgreSQL backend is not available: "
                       "install libjobq-pg (libjobq-pg.so.0 could not be loaded: %s), or link "
                       "it and call jobq_postgres_register()",
                       (int)n, url, pg_why[0] ? pg_why : "it registered nothing");
  }
  if (found == NULL)
    return jobq__err(JOBQ_EURL,
                     "storage URL '%.100s': unknown scheme '%.*s'; this build supports "
                     "\"memory:\" and \"sqlite:PATH\"",
                     url, (int)(n > 32 ? 32 : n), url);
  *out = found;
  return 0;
}

/* Internal hooks of the built-in backends, by scheme: things the core asks
 * of storage that are not part of the public vtable (so its ABI stays as
 * it is). A backend without an entry, or a host's, gets the defaults. */
static const struct {
  const char *scheme;
  /* *out: a malloc'd directory for pipeline work files of a queue on url
   * (may be relative), or NULL for the default; 0 or JOBQ_ENOMEM. */
  int (*default_workdir)(const char *url, char **out);
} hooks[] = {
  {"sqlite", jobq__sq_default_workdir},
};

int jobq__storage_default_workdir(const char *url, char **out) {
  *out = NULL;
  const char *colon = strchr(url, ':');
  size_t n = colon ? (size_t)(colon - url) : 0;
  for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
    if (strlen(hooks[i].scheme) != n || strncmp(hooks[i].scheme, url, n) != 0) continue;
    int rc = hooks[i].default_workdir(url, out);
    if (rc || *out) return rc;
  }
  /* No files of its own to sit beside (memory:, a host's backend): a
   * directory in the working directory. */
  *out = jobq__strdup("jobq-work");
  return *out ? 0 : jobq__err(JOBQ_ENOMEM, "storage: out of memory");
}

void jobq__storage_guard_leases(const jobq_storage_ops *ops, void *st) {
  if (ops == &jobq__sqlite_ops) jobq__sq_guard_leases(st);
}

JOBQ_API void jobq_storage_job_clear(jobq_storage_job *j) {
  if (j == NULL) return;
  free(j->kind);
  free(j->payload);
  free(j->owner);
  free(j->step);
  free(j->result);
  free(j->error);
  free(j->dedupe_key);
  for (int i = 0; i < j->n_attempt_log; i++) free(j->attempt_log[i].error);
  free(j->attempt_log);
  memset(j, 0, sizeof *j);
}
