/* The storage conformance suite's harness (header-only: every .c file in
 * tests/conformance that is not a test_*.c would be linked into every test
 * program, so everything here is static inline).
 *
 * A backend is a row in conf_backends[]: a name, how to make its URL inside
 * a test's private temporary directory, and what it promises (durable
 * storage shared between queues, refusal of duplicate ids, ...). Every test
 * body runs once per row as its own cmocka test named "<backend>/<test>",
 * with a fresh directory (mkdtemp: /tmp/jobq-conf-<pid>-XXXXXX) that is
 * removed afterwards with everything in it (database, -wal, -shm); those of
 * runs that died (a sanitizer's abort) are removed by the next run. The
 * "postgres" row (built with libjobq-pg) runs on the server of the ctest
 * fixture tests/conformance/postgres.cmake, whose URL is in the file
 * JOBQ_TEST_POSTGRES_URL_FILE names (or in JOBQ_TEST_POSTGRES_URL); each
 * case gets a fresh schema of its own. Without a server its cases are
 * skipped, and so are those that need an operation the backend does not
 * have yet (conf_backend.lacks).
 *
 * Files: layer 1, the vtable looked up by URL with jobq__storage_lookup,
 * one program per area (test_conf_insert.c, test_conf_claim.c,
 * test_conf_finish.c, test_conf_progress.c, test_conf_read.c,
 * test_conf_lease.c; what they share is in conf_storage.h);
 * test_conf_api.c (layer 2: the public API on each backend);
 * test_conf_durable.c (layer 2 for durable rows: reopen, rescue of a dead
 * claimer's job, several queues on one database; SQLite's faults).
 *
 * Environment, for debugging:
 *   CONF_BACKEND=sqlite   run the rows of that backend only
 *   CONF_FILTER=pattern   cmocka test filter on "<backend>/<test>" names
 *   CONF_SKIP=pattern     cmocka skip filter
 *   CONF_KEEP=1           keep the temporary directories
 *
 * Checks name the backend and the expression on failure (the cmocka test
 * name does too). Only the main thread uses them; helper threads record
 * what they saw and the main thread checks it afterwards. */
#ifndef JOBQ_TESTS_CONFORMANCE_H
#define JOBQ_TESTS_CONFORMANCE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"
#include "jobq/storage.h"
#include "core/internal.h" /* jobq__storage_lookup */
#include "util/id.h"       /* jobq__id_new */

/* ---- backends -------------------------------------------------------------- */

typedef struct conf_backend {
  const char *name;
  /* The storage URL of database `file` in the test's directory dir. */
  void (*make_url)(const char *dir, const char *file, char *out, size_t cap);
  /* URLs this backend must refuse with JOBQ_EURL; i = 0, 1, ... until 0 is
   * returned. */
  int (*bad_url)(const char *dir, int i, char *out, size_t cap);
  /* Jobs outlive the queue that stored them: a reopened URL sees them,
   * several queues may share it, expired leases are rescued. A backend
   * without it documents rescue as a no-op. */
  int durable;
  /* insert refuses an id that is already stored (so that a failing batch
   * can be provoked through the vtable to check all-or-none). */
  int refuses_duplicate_ids;
  /* Tests skipped on this backend, NULL-terminated: they need operations it
   * does not have yet (each skip says so). */
  const char *const *lacks;
  /* Why a case cannot run now (no server), or NULL. */
  const char *(*unavailable)(void);
} conf_backend;

static inline void conf_url_memory(const char *dir, const char *file, char *out, size_t cap) {
  (void)dir;
  (void)file;
  snprintf(out, cap, "memory:");
}

static inline int conf_bad_url_memory(const char *dir, int i, char *out, size_t cap) {
  static const char *const bad[] = {"memory:x", "memory:/tmp/q.db", "memory:?durability=power"};
  (void)dir;
  if (i < 0 || i >= (int)(sizeof bad / sizeof bad[0])) return 0;
  snprintf(out, cap, "%s", bad[i]);
  return 1;
}

static inline void conf_url_sqlite(const char *dir, const char *file, char *out, size_t cap) {
  snprintf(out, cap, "sqlite:%s/%s", dir, file);
}

static inline int conf_bad_url_sqlite(const char *dir, int i, char *out, size_t cap) {
  static const char *const bad[] = {
    "?durability=disk",     "?durability=",          "?busy_timeout=abc",
    "?busy_timeout=-5",     "?busy_timeout=600001",  "?busy_timeout=10ms",
    "?nope=1",              "?durability=crash&x=1", "?durability=crash&",
    "?max_page_count=0",    "?max_page_count=x",     "?max_page_count=-1",
    "?max_page_count=",     "?DURABILITY=power",
  };
  if (i < 0 || i >= (int)(sizeof bad / sizeof bad[0])) return 0;
  snprintf(out, cap, "sqlite:%s/bad.db%s", dir, bad[i]);
  return 1;
}

#ifdef JOBQ_TEST_HAVE_POSTGRES
#include "jobq/postgres.h"

/* The test server's URL, or "" when there is none. */
static inline const char *conf_pg_base(void) {
  static char url[512];
  static int read;
  if (read) return url;
  read = 1;
  const char *e = getenv("JOBQ_TEST_POSTGRES_URL");
  if (e && *e) {
    snprintf(url, sizeof url, "%s", e);
    return url;
  }
  const char *f = getenv("JOBQ_TEST_POSTGRES_URL_FILE");
  FILE *fp = f && *f ? fopen(f, "r") : NULL;
  if (fp) {
    if (fgets(url, sizeof url, fp) == NULL) url[0] = '\0';
    url[strcspn(url, "\r\n")] = '\0';
    fclose(fp);
  }
  return url;
}

static inline const char *conf_pg_unavailable(void) {
  return conf_pg_base()[0] ? NULL
                           : "no PostgreSQL server for the tests (JOBQ_TEST_POSTGRES_URL unset)";
}

/* A schema of its own for database `file` of the case's directory: "c",
 * a hash of the directory, "_", the file name's letters and digits. */
static inline void conf_url_postgres(const char *dir, const char *file, char *out, size_t cap) {
  uint64_t h = 1469598103934665603u;
  for (const char *p = dir; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211u;
  char f[24];
  size_t n = 0;
  for (const char *p = file; *p && n < sizeof f - 1; p++)
    f[n++] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p : '_';
  f[n] = '\0';
  const char *base = conf_pg_base();
  if (!base[0]) base = "postgres://127.0.0.1:1/none";
  snprintf(out, cap, "%s%sschema=c%016llx_%s", base, strchr(base, '?') ? "&" : "?",
           (unsigned long long)h, f);
}

static inline int conf_bad_url_postgres(const char *dir, int i, char *out, size_t cap) {
  static const char *const bad[] = {
    "?schema=",        "?schema=1abc",  "?schema=a-b",       "?schema=a%20b",
    "?schema=a&schema=b", "?pool=0",    "?pool=65",          "?pool=x",
    "?pool=",          "?pool=4x",      "?pool=1&pool=2",    "?nope=1",
    "?schema=ok&",     "?&schema=ok",   "?schema=ok&=x",
  };
  (void)dir;
  if (i < 0 || i >= (int)(sizeof bad / sizeof bad[0])) return 0;
  const char *base = conf_pg_base();
  if (!base[0]) base = "postgres://127.0.0.1:1/none";
  snprintf(out, cap, "%s%s", base, bad[i]);
  return 1;
}

/* The tests that need something the postgres backend does not have yet
 * (docs/postgres.md, "Not there yet"): none at present. The outbox tests
 * skip by themselves when their members are NULL. */
#define CONF_PG_LACKS

/* What the postgres backend does not have yet (docs/postgres.md). */
static const char *const conf_pg_lacks[] = {
  CONF_PG_LACKS
  NULL,
};
#endif

static const conf_backend conf_backends[] = {
  {"memory", conf_url_memory, conf_bad_url_memory, 0, 0, NULL, NULL},
  {"sqlite", conf_url_sqlite, conf_bad_url_sqlite, 1, 1, NULL, NULL},
#ifdef JOBQ_TEST_HAVE_POSTGRES
  {"postgres", conf_url_postgres, conf_bad_url_postgres, 1, 1, conf_pg_lacks,
   conf_pg_unavailable},
#endif
};
#define CONF_N_BACKENDS (sizeof conf_backends / sizeof conf_backends[0])

/* ---- cases ------------------------------------------------------------------ */

typedef struct conf_case conf_case;
typedef void (*conf_fn)(conf_case *c);

/* What a test needs of a backend; rows lacking it do not get the test. */
#define CONF_NEED_DURABLE 1u
#define CONF_NEED_DUP_IDS 2u

typedef struct conf_test {
  const char *name;
  conf_fn fn;
  unsigned need;
  const char *only; /* a backend name, or NULL for every backend */
} conf_test;

#define CONF_TEST(fn) {#fn, fn, 0, NULL}
#define CONF_TEST_NEED(fn, need) {#fn, fn, (need), NULL}
#define CONF_TEST_ONLY(fn, backend) {#fn, fn, 0, (backend)}

struct conf_case {
  const conf_backend *be;
  const conf_test *t;
  char name[160];
  char dir[256];  /* private, made by setup, removed by teardown */
  char url[600];  /* the backend's URL for "q.db" in dir */
};

/* The case running now (tests run one at a time on the main thread). */
static conf_case *conf_cur;

static inline const char *conf_be(void) { return conf_cur ? conf_cur->be->name : "?"; }

/* Another URL (another database) in the case's directory. */
static inline void conf_url(conf_case *c, const char *file, char *out, size_t cap) {
  c->be->make_url(c->dir, file, out, cap);
}

static inline void conf_path(conf_case *c, const char *file, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s", c->dir, file);
}

static inline void conf_rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  char p[4096];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (strlen(dir) + strlen(e->d_name) + 2 > sizeof p) continue;
    memcpy(p, dir, strlen(dir));
    p[strlen(dir)] = '/';
    memcpy(p + strlen(dir) + 1, e->d_name, strlen(e->d_name) + 1);
    struct stat sb;
    if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) conf_rm_tree(p);
    else unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

/* Directories of runs that died without their teardown (a sanitizer's
 * abort, a crash): /tmp/jobq-conf-<pid>-XXXXXX whose process is gone. */
static inline void conf_rm_stale_dirs(void) {
  DIR *d = opendir("/tmp");
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    long pid = 0;
    char rest[64];
    if (sscanf(e->d_name, "jobq-conf-%ld-%63s", &pid, rest) != 2 || pid <= 0) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    char p[300];
    snprintf(p, sizeof p, "/tmp/%.250s", e->d_name);
    conf_rm_tree(p);
  }
  closedir(d);
}

static inline int conf_setup(void **state) {
  conf_case *c = *state;
  snprintf(c->dir, sizeof c->dir, "/tmp/jobq-conf-%ld-XXXXXX", (long)getpid());
  if (mkdtemp(c->dir) == NULL) {
    print_error("[%s] mkdtemp: %s\n", c->be->name, strerror(errno));
    return -1;
  }
  c->be->make_url(c->dir, "q.db", c->url, sizeof c->url);
  conf_cur = c;
  return 0;
}

static inline int conf_teardown(void **state) {
  conf_case *c = *state;
  const char *keep = getenv("CONF_KEEP");
  if (keep && *keep == '1') print_message("[%s] kept %s\n", c->be->name, c->dir);
  else conf_rm_tree(c->dir);
  conf_cur = NULL;
  return 0;
}

static inline void conf_run_case(void **state) {
  conf_case *c = *state;
  conf_cur = c;
  const char *why = c->be->unavailable ? c->be->unavailable() : NULL;
  if (why) {
    print_message("[%s] %s: skipped: %s\n", c->be->name, c->t->name, why);
    skip();
  }
  for (const char *const *l = c->be->lacks; l && *l; l++) {
    if (strcmp(*l, c->t->name) != 0) continue;
    print_message("[%s] %s: skipped: not yet on %s\n", c->be->name, c->t->name, c->be->name);
    skip();
  }
  c->t->fn(c);
}

/* Runs every test against every backend that can take it; cmocka's exit
 * status (the number of failures). */
/* Makes the backends of the rows that are not built in known (a child
 * process started by a test calls it too); 0 or a JOBQ code. */
static inline int conf_register_backends(void) {
#ifdef JOBQ_TEST_HAVE_POSTGRES
  int rc = jobq_postgres_register();
  if (rc) print_error("jobq_postgres_register: %s\n", jobq_last_error());
  return rc;
#else
  return 0;
#endif
}

static inline int conf_run(const char *group, const conf_test *tests, size_t n) {
  conf_rm_stale_dirs();
  if (conf_register_backends() != 0) return 1;
  const char *only_be = getenv("CONF_BACKEND");
  const char *flt = getenv("CONF_FILTER");
  const char *skp = getenv("CONF_SKIP");
  if (flt && *flt) cmocka_set_test_filter(flt);
  if (skp && *skp) cmocka_set_skip_filter(skp);
  conf_case *cases = calloc(n * CONF_N_BACKENDS, sizeof *cases);
  struct CMUnitTest *ut = calloc(n * CONF_N_BACKENDS, sizeof *ut);
  assert_non_null(cases);
  assert_non_null(ut);
  size_t k = 0;
  for (size_t b = 0; b < CONF_N_BACKENDS; b++) {
    const conf_backend *be = &conf_backends[b];
    if (only_be && *only_be && strcmp(only_be, be->name) != 0) continue;
    for (size_t i = 0; i < n; i++) {
      const conf_test *t = &tests[i];
      if ((t->need & CONF_NEED_DURABLE) && !be->durable) continue;
      if ((t->need & CONF_NEED_DUP_IDS) && !be->refuses_duplicate_ids) continue;
      if (t->only && strcmp(t->only, be->name) != 0) continue;
      conf_case *c = &cases[k];
      c->be = be;
      c->t = t;
      snprintf(c->name, sizeof c->name, "%s/%s", be->name, t->name);
      ut[k].name = c->name;
      ut[k].test_func = conf_run_case;
      ut[k].setup_func = conf_setup;
      ut[k].teardown_func = conf_teardown;
      ut[k].initial_state = c;
      k++;
    }
  }
  int rc = _cmocka_run_group_tests(group, ut, k, NULL, NULL);
  free(ut);
  free(cases);
  return rc;
}

/* ---- checks ------------------------------------------------------------------ */

#define CONF_FAIL(...)                                              \
  do {                                                              \
    print_error("[%s] %s:%d: ", conf_be(), __FILE__, __LINE__);    \
    print_error(__VA_ARGS__);                                       \
    print_error("\n");                                              \
    _fail(__FILE__, __LINE__);                                      \
  } while (0)

#define CK(cond, ...)                                   \
  do {                                                  \
    if (!(cond)) {                                      \
      print_error("[%s] %s:%d: check failed: %s\n    ", \
                  conf_be(), __FILE__, __LINE__, #cond); \
      print_error(__VA_ARGS__);                         \
      print_error("\n");                                \
      _fail(__FILE__, __LINE__);                        \
    }                                                   \
  } while (0)

/* expr returns 0 (JOBQ_OK). */
#define CK_OK(expr)                                                                          \
  do {                                                                                       \
    long long ck_rc_ = (long long)(expr);                                                    \
    if (ck_rc_ != 0)                                                                         \
      CONF_FAIL("%s\n    returned %lld (%s), expected 0; jobq_last_error() = \"%s\"", #expr, \
                ck_rc_, jobq_err_name((int)ck_rc_), jobq_last_error());                      \
  } while (0)

/* expr returns want (a JOBQ_E* code or any int). */
#define CK_RC(want, expr)                                                                     \
  do {                                                                                        \
    long long ck_rc_ = (long long)(expr), ck_w_ = (long long)(want);                          \
    if (ck_rc_ != ck_w_)                                                                      \
      CONF_FAIL("%s\n    returned %lld (%s), expected %lld (%s); jobq_last_error() = \"%s\"", \
                #expr, ck_rc_, jobq_err_name((int)ck_rc_), ck_w_, jobq_err_name((int)ck_w_),  \
                jobq_last_error());                                                           \
  } while (0)

/* expr returns want and leaves a non-empty jobq_last_error() sentence. */
#define CK_ERR(want, expr)                                                          \
  do {                                                                              \
    jobq_storage_set_error("");                                                     \
    CK_RC(want, expr);                                                              \
    if (jobq_last_error()[0] == '\0')                                               \
      CONF_FAIL("%s\n    returned %s but left jobq_last_error() empty", #expr,      \
                jobq_err_name((int)(want)));                                        \
  } while (0)

#define CK_INT(a, b)                                                                      \
  do {                                                                                    \
    long long ck_a_ = (long long)(a), ck_b_ = (long long)(b);                             \
    if (ck_a_ != ck_b_) CONF_FAIL("%s == %s\n    got %lld, expected %lld", #a, #b, ck_a_, ck_b_); \
  } while (0)

static inline int conf_str_eq(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

#define CK_STR(a, b)                                                                  \
  do {                                                                                \
    const char *ck_a_ = (a), *ck_b_ = (b);                                            \
    if (!conf_str_eq(ck_a_, ck_b_))                                                   \
      CONF_FAIL("%s == %s\n    got %s%s%s, expected %s%s%s", #a, #b, ck_a_ ? "\"" : "", \
                ck_a_ ? ck_a_ : "NULL", ck_a_ ? "\"" : "", ck_b_ ? "\"" : "",          \
                ck_b_ ? ck_b_ : "NULL", ck_b_ ? "\"" : "");                             \
  } while (0)

/* a is a string containing needle. */
#define CK_HAS(a, needle)                                                                   \
  do {                                                                                      \
    const char *ck_a_ = (a);                                                                \
    if (ck_a_ == NULL || strstr(ck_a_, (needle)) == NULL)                                   \
      CONF_FAIL("%s contains \"%s\"\n    got %s%s%s", #a, (needle), ck_a_ ? "\"" : "",    \
                ck_a_ ? ck_a_ : "NULL", ck_a_ ? "\"" : "");                                  \
  } while (0)

/* ---- time ------------------------------------------------------------------------ */

/* A fixed fake "now" for vtable calls and fake clocks. */
#define CONF_T0 INT64_C(1700000000000)
/* The failure guard for something that normally takes a millisecond. */
#define CONF_GUARD_MS 10000

static inline uint64_t conf_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void conf_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

typedef struct conf_clock {
  _Atomic int64_t now;
} conf_clock;

static inline int64_t conf_clock_fn(void *ud) { return atomic_load(&((conf_clock *)ud)->now); }
static inline void conf_clock_set(conf_clock *c, int64_t t) { atomic_store(&c->now, t); }

static inline double conf_random_fn(void *ud) { return *(const double *)ud; }

/* ---- the vtable ---------------------------------------------------------------------- */

typedef struct conf_store {
  const jobq_storage_ops *ops;
  void *st;
} conf_store;

static inline void cs_open_url(conf_store *s, const char *url) {
  s->ops = NULL;
  s->st = NULL;
  CK_OK(jobq__storage_lookup(url, &s->ops));
  CK(s->ops != NULL && s->ops->version >= 1, "lookup of %s gave no usable ops", url);
  CK_OK(s->ops->open(url, &s->st));
}

static inline void cs_open(conf_case *c, conf_store *s) { cs_open_url(s, c->url); }

static inline void cs_close(conf_store *s) {
  if (s->st) s->ops->close(s->st);
  s->st = NULL;
}

/* What one job to insert looks like; zero means default. */
typedef struct conf_spec {
  const char *kind;    /* default "a" */
  const char *payload; /* default "{}" */
  const char *owner;
  int priority;
  int64_t run_at;      /* 0: now */
  int max_attempts;    /* 0: the kind's default */
  const char *dedupe_key;
  int64_t dedupe_ttl;
  int force;
  const char *id;      /* NULL: a fresh UUIDv7 */
} conf_spec;

/* Inserts n jobs in one call (batch_insert of batch batch_id with cap
 * max_running, when batch_id is not NULL); ids[i] receives each id (the
 * live job's id for a dedupe hit) and dup[i] the flag. Returns the call's
 * code. */
static inline int cs_insert_nb(conf_store *s, int64_t now, const conf_spec *spec, size_t n,
                               char (*ids)[JOBQ_ID_SIZE], int *dup, const char *batch_id,
                               int max_running) {
  jobq_storage_job *recs = calloc(n ? n : 1, sizeof *recs);
  jobq_storage_job **ptrs = calloc(n ? n : 1, sizeof *ptrs);
  int *force = calloc(n ? n : 1, sizeof *force);
  int *d = calloc(n ? n : 1, sizeof *d);
  assert_non_null(recs);
  assert_non_null(ptrs);
  assert_non_null(force);
  assert_non_null(d);
  for (size_t i = 0; i < n; i++) {
    jobq_storage_job *r = &recs[i];
    if (spec[i].id) snprintf(r->id, sizeof r->id, "%s", spec[i].id);
    else jobq__id_new(r->id, now);
    r->kind = (char *)(spec[i].kind ? spec[i].kind : "a");
    r->payload = (char *)(spec[i].payload ? spec[i].payload : "{}");
    r->owner = (char *)spec[i].owner;
    r->state = JOBQ_QUEUED;
    r->priority = spec[i].priority;
    r->max_attempts = spec[i].max_attempts;
    r->created_at = now;
    r->run_at = spec[i].run_at ? spec[i].run_at : now;
    r->dedupe_key = (char *)spec[i].dedupe_key;
    r->dedupe_ttl_ms = spec[i].dedupe_ttl;
    r->position = -1;
    force[i] = spec[i].force;
    ptrs[i] = r;
  }
  int rc = batch_id ? s->ops->batch_insert(s->st, batch_id, max_running, ptrs, n, force, now, d)
                    : s->ops->insert(s->st, ptrs, n, force, now, d);
  for (size_t i = 0; i < n; i++) {
    if (ids) memcpy(ids[i], recs[i].id, JOBQ_ID_SIZE);
    if (dup) dup[i] = rc == 0 ? d[i] : -1;
  }
  free(recs);
  free(ptrs);
  free(force);
  free(d);
  return rc;
}

static inline int cs_insert_n(conf_store *s, int64_t now, const conf_spec *spec, size_t n,
                              char (*ids)[JOBQ_ID_SIZE], int *dup) {
  return cs_insert_nb(s, now, spec, n, ids, dup, NULL, 0);
}

/* Inserts one job (must succeed); returns its dup flag. */
static inline int cs_insert(conf_store *s, int64_t now, conf_spec spec, char *id) {
  char ids[1][JOBQ_ID_SIZE];
  int dup = -1;
  CK_OK(cs_insert_n(s, now, &spec, 1, ids, &dup));
  if (id) memcpy(id, ids[0], JOBQ_ID_SIZE);
  return dup;
}

/* A job of kind with priority and run_at (0: now), returning its id in id. */
static inline void cs_add(conf_store *s, int64_t now, const char *kind, int priority,
                          int64_t run_at, char *id) {
  conf_spec sp = {0};
  sp.kind = kind;
  sp.priority = priority;
  sp.run_at = run_at;
  cs_insert(s, now, sp, id);
}

typedef struct conf_claim {
  const char *const *kinds;
  const int *limits;
  size_t n_kinds;
  const char *const *exclude;
  size_t n_exclude;
  size_t max;
  int64_t now;
  int64_t lease_ms;
  const char *const *ma_kinds;
  const int *ma_values;
  size_t n_ma;
  int default_max_attempts;
} conf_claim;

/* Claims as cl says into out[] (cl.max entries); returns how many. */
static inline size_t cs_claim_req(conf_store *s, conf_claim cl, jobq_storage_job *out) {
  jobq_storage_claim req = {0};
  req.kinds = cl.kinds;
  req.kind_limit = cl.limits;
  req.n_kinds = cl.n_kinds;
  req.exclude = cl.exclude;
  req.n_exclude = cl.n_exclude;
  req.max = cl.max ? cl.max : 1;
  req.now = cl.now;
  req.lease_ms = cl.lease_ms ? cl.lease_ms : 30000;
  req.ma_kinds = cl.ma_kinds;
  req.ma_values = cl.ma_values;
  req.n_ma = cl.n_ma;
  req.default_max_attempts = cl.default_max_attempts ? cl.default_max_attempts : 3;
  size_t n = 12345;
  CK_OK(s->ops->claim(s->st, &req, out, &n));
  CK(n <= req.max, "claim returned %zu records for max %zu", n, req.max);
  return n;
}

/* Claims one job of any kind at now (lease 30 s); 1 if one came. */
static inline int cs_claim1(conf_store *s, int64_t now, jobq_storage_job *out) {
  conf_claim cl = {0};
  cl.now = now;
  return (int)cs_claim_req(s, cl, out);
}

/* Claims one job at now and checks it is id; returns its attempt. */
static inline int cs_claim_expect(conf_store *s, int64_t now, const char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  int n = cs_claim1(s, now, &j);
  CK(n == 1, "claim at now=%" PRId64 " returned nothing; expected job %s", now, id);
  CK_STR(j.id, id);
  CK_INT(j.state, JOBQ_RUNNING);
  int att = j.attempts;
  jobq_storage_job_clear(&j);
  return att;
}

static inline void cs_claim_none(conf_store *s, int64_t now) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  int n = cs_claim1(s, now, &j);
  if (n) {
    char id[JOBQ_ID_SIZE];
    snprintf(id, sizeof id, "%s", j.id);
    jobq_storage_job_clear(&j);
    CONF_FAIL("claim at now=%" PRId64 " returned job %s; expected nothing", now, id);
  }
}

typedef struct conf_fin {
  int outcome;
  const char *result;
  const char *error;
  int64_t run_at;
  int progress;
  const char *step;
} conf_fin;

/* Applies one outcome (the call must succeed); returns out_state. */
static inline int cs_finish(conf_store *s, const char *id, int attempt, int64_t now, conf_fin f) {
  jobq_storage_finish sf = {0};
  sf.id = id;
  sf.attempt = attempt;
  sf.outcome = f.outcome;
  sf.result = f.result;
  sf.error = f.error;
  sf.run_at = f.run_at;
  sf.now = now;
  sf.progress = f.progress;
  sf.step = f.step;
  int st = 12345;
  CK_OK(s->ops->finish(s->st, &sf, 1, &st));
  return st;
}

static inline void cs_get(conf_store *s, const char *id, int64_t now, jobq_storage_job *out) {
  memset(out, 0, sizeof *out);
  CK_OK(s->ops->get(s->st, id, now, out));
}

static inline int cs_state(conf_store *s, const char *id, int64_t now) {
  jobq_storage_job j;
  cs_get(s, id, now, &j);
  int st = j.state;
  jobq_storage_job_clear(&j);
  return st;
}

/* ---- the public API ---------------------------------------------------------------------- */

typedef struct conf_qopts {
  conf_clock *clock;  /* NULL: the real clock */
  double *random;     /* NULL: a fixed 0.5 */
  int workers;        /* -1: default */
  int64_t lease_ms;   /* 0: default */
  size_t max_payload; /* 0: default */
  int event_buffer;   /* 0: off */
  const char *url;    /* NULL: the case's URL */
  /* per-owner quotas: quota_kind[i] (NULL: all kinds) at most quota_max[i] */
  const char *quota_kind[4];
  int quota_max[4];
} conf_qopts;

static double conf_half = 0.5;

static inline int cq_open_rc(conf_case *c, conf_qopts o, jobq_t **q) {
  jobq_options_t *opts = jobq_options_new();
  assert_non_null(opts);
  CK_OK(jobq_options_set_storage(opts, o.url ? o.url : c->url));
  if (o.clock) CK_OK(jobq_options_set_clock(opts, conf_clock_fn, o.clock));
  CK_OK(jobq_options_set_random(opts, conf_random_fn, o.random ? o.random : &conf_half));
  if (o.workers >= 0) CK_OK(jobq_options_set_workers(opts, o.workers));
  if (o.lease_ms) CK_OK(jobq_options_set_lease(opts, o.lease_ms));
  if (o.max_payload) CK_OK(jobq_options_set_max_payload(opts, o.max_payload));
  if (o.event_buffer) CK_OK(jobq_options_set_event_buffer(opts, o.event_buffer));
  for (int i = 0; i < 4 && o.quota_max[i]; i++)
    CK_OK(jobq_options_set_owner_quota(opts, o.quota_kind[i], o.quota_max[i]));
  jobq_storage_set_error("");
  int rc = jobq_open(q, opts);
  jobq_options_free(opts);
  return rc;
}

static inline jobq_t *cq_open(conf_case *c, conf_qopts o) {
  jobq_t *q = NULL;
  CK_OK(cq_open_rc(c, o, &q));
  CK(q != NULL, "jobq_open gave no queue");
  return q;
}

static inline void cq_close(jobq_t *q) { CK_OK(jobq_close(q, 0)); }

static inline void cq_submit(jobq_t *q, const char *kind, const char *payload,
                             const jobq_submit_opts_t *so, char *id) {
  CK_RC(0, jobq_submit(q, kind, payload, so, id));
}

/* Submits kind with priority; id receives the id. */
static inline void cq_submit_p(jobq_t *q, const char *kind, int priority, char *id) {
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  CK_OK(jobq_submit_opts_set_priority(so, priority));
  cq_submit(q, kind, "{}", so, id);
  jobq_submit_opts_free(so);
}

/* jobq_claim with timeout 0 (any kind when kind is NULL); NULL when none. */
static inline jobq_ctx_t *cq_claim_now(jobq_t *q, const char *kind) {
  const char *kinds[2] = {kind, NULL};
  jobq_ctx_t *ctx = NULL;
  int rc = jobq_claim(q, kind ? kinds : NULL, 0, &ctx);
  if (rc == JOBQ_ETIMEDOUT) return NULL;
  CK_OK(rc);
  return ctx;
}

static inline jobq_ctx_t *cq_claim_expect(jobq_t *q, const char *kind, const char *id) {
  jobq_ctx_t *ctx = cq_claim_now(q, kind);
  CK(ctx != NULL, "jobq_claim(%s) found nothing due; expected job %s", kind ? kind : "any", id);
  CK_STR(jobq_ctx_id(ctx), id);
  return ctx;
}

static inline void cq_claim_none(jobq_t *q, const char *kind) {
  jobq_ctx_t *ctx = cq_claim_now(q, kind);
  if (ctx) {
    char id[JOBQ_ID_SIZE];
    snprintf(id, sizeof id, "%s", jobq_ctx_id(ctx));
    jobq_ctx_fail(ctx, "unexpected", 0);
    CONF_FAIL("jobq_claim(%s) returned job %s; expected JOBQ_ETIMEDOUT", kind ? kind : "any", id);
  }
}

static inline jobq_job_t *cq_get(jobq_t *q, const char *id) {
  jobq_job_t *j = NULL;
  CK_OK(jobq_get(q, id, &j));
  return j;
}

static inline int cq_state(jobq_t *q, const char *id) {
  jobq_job_t *j = cq_get(q, id);
  int st = jobq_job_state(j);
  jobq_job_free(j);
  return st;
}

/* Waits (real time, bounded) until job id has state want; 1 if it did. */
static inline int cq_wait_state(jobq_t *q, const char *id, int want) {
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  for (;;) {
    jobq_job_t *j = NULL;
    int rc = jobq_wait(q, id, 100, &j);
    int st = j ? jobq_job_state(j) : -1;
    jobq_job_free(j);
    if (st == want) return 1;
    if ((rc != 0 && rc != JOBQ_ETIMEDOUT) || conf_mono_ms() > end) return 0;
  }
}

static inline void conf_noop_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, NULL);
}

/* Reads a whole file into a malloc'ed buffer; NULL if it cannot. */
static inline unsigned char *conf_slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  unsigned char *buf = NULL;
  size_t cap = 0, len = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      unsigned char *nb = realloc(buf, cap);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t r = fread(buf + len, 1, cap - len, f);
    if (r == 0) break;
    len += r;
  }
  fclose(f);
  *n = len;
  return buf;
}

static inline int conf_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

#endif /* JOBQ_TESTS_CONFORMANCE_H */
