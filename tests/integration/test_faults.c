/* SQLite faults: a busy database, a damaged file, a full disk, a read-only
 * directory. Each gives its own code and a sentence, stores nothing half,
 * and the queue works again once the fault is gone. */
#include <jobq.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

static char dir[64], path[128];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/jobq-faults-XXXXXX");
  if (mkdtemp(dir) == NULL) return -1;
  snprintf(path, sizeof path, "%s/q.db", dir);
  return 0;
}

static int mounted;

static int teardown(void **state) {
  (void)state;
  if (mounted) {
    /* everything in a tmpfs goes with it */
    umount2(dir, MNT_DETACH);
    mounted = 0;
  }
  chmod(dir, 0700);
  char p[160];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", path, sfx[i]);
    unlink(p);
  }
  rmdir(dir);
  return 0;
}

static int open_q(jobq_t **q, const char *opts) {
  char url[256];
  snprintf(url, sizeof url, "sqlite:%s%s", path, opts ? opts : "");
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  int rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc;
}

static size_t count_jobs(jobq_t *q) {
  jobq_filter_t *f = jobq_filter_new();
  jobq_filter_set_limit(f, 1000);
  jobq_page_t *p = NULL;
  assert_int_equal(jobq_list(q, f, &p), 0);
  size_t n = jobq_page_count(p);
  jobq_page_free(p);
  jobq_filter_free(f);
  return n;
}

/* Another connection holds the write lock past busy_timeout. */
static void test_busy(void **state) {
  (void)state;
  jobq_t *q;
  assert_int_equal(open_q(&q, "?busy_timeout=100"), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "1", NULL, id), 0);
  sqlite3 *other = NULL;
  assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
  sqlite3_busy_timeout(other, 10000); /* the queue's own maintenance may be writing */
  assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  int rc = jobq_submit(q, "k", "2", NULL, id);
  assert_int_equal(rc, JOBQ_EBUSY);
  assert_non_null(strstr(jobq_last_error(), "busy"));
  assert_int_equal(count_jobs(q), 1); /* reads go on beside the lock; nothing half-stored */
  assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  assert_int_equal(jobq_submit(q, "k", "3", NULL, id), 0); /* the fault cleared */
  assert_int_equal(count_jobs(q), 2);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* Pages of the file overwritten with garbage. */
static void test_damaged_file(void **state) {
  (void)state;
  jobq_t *q;
  assert_int_equal(open_q(&q, NULL), 0);
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 200; i++) assert_int_equal(jobq_submit(q, "k", "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  /* Fold the WAL into the file, then damage every page but the first. */
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  struct stat sb;
  assert_int_equal(fstat(fd, &sb), 0);
  char junk[4096];
  memset(junk, 0xA5, sizeof junk);
  for (off_t off = 4096; off + 4096 <= sb.st_size; off += 4096)
    assert_int_equal(pwrite(fd, junk, sizeof junk, off), (ssize_t)sizeof junk);
  close(fd);
  int rc = open_q(&q, NULL);
  if (rc == 0) {
    /* The header survived; reading the jobs finds the damage. */
    jobq_page_t *p = NULL;
    rc = jobq_list(q, NULL, &p);
    jobq_page_free(p);
    if (rc == 0) rc = jobq_get(q, id, &(jobq_job_t *){NULL});
    if (rc != JOBQ_ECORRUPT) fail_msg("got %s: %s", jobq_err_name(rc), jobq_last_error());
    assert_int_equal(jobq_close(q, 0), 0);
  } else if (rc != JOBQ_ECORRUPT) {
    fail_msg("open got %s: %s", jobq_err_name(rc), jobq_last_error());
  }
  assert_true(strlen(jobq_last_error()) > 0);
}

/* The index that claims read is damaged (the rest of the file is fine):
 * registered workers run nothing, and the process can see why: an event,
 * jobq_health, the stats and the log hook. Before, nothing said anything
 * while jobq_claim returned JOBQ_ECORRUPT. */
static atomic_int ran;
static void run_one(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  atomic_fetch_add(&ran, 1);
  jobq_ctx_succeed(ctx, NULL);
}
static char heard[2048];
static atomic_int n_heard;
static void hear(int level, const char *msg, void *ud) {
  (void)ud;
  if (atomic_fetch_add(&n_heard, 1) == 0) snprintf(heard, sizeof heard, "%d|%s", level, msg);
}

static void test_damaged_index_workers(void **state) {
  (void)state;
  jobq_t *q;
  assert_int_equal(open_q(&q, NULL), 0);
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) assert_int_equal(jobq_submit(q, "k", "1", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT rootpage, (SELECT page_size FROM pragma_page_size) "
                                      "FROM sqlite_schema WHERE name = 'jobq_jobs_due'",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long root = sqlite3_column_int(st, 0), psz = sqlite3_column_int(st, 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  char junk[65536];
  memset(junk, 0xA5, sizeof junk);
  assert_int_equal(pwrite(fd, junk, (size_t)psz, (root - 1) * psz), psz);
  close(fd);

  char url[256];
  snprintf(url, sizeof url, "sqlite:%s", path);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, 2), 0);
  assert_int_equal(jobq_options_set_event_buffer(o, 256), 0);
  assert_int_equal(jobq_options_set_log(o, hear, NULL, JOBQ_LOG_ERROR), 0);
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  assert_int_equal(jobq_register(q, "k", run_one, NULL, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  jobq_event_t *ev = NULL;
  for (int i = 0; i < 1000; i++) {
    if (jobq_next_event(q, 10, &ev) == 0 && jobq_event_type(ev) == JOBQ_EVENT_STORAGE_ERROR) break;
    jobq_event_free(ev);
    ev = NULL;
  }
  if (ev == NULL) fail_msg("no storage_error event within 10 s");
  assert_int_equal(jobq_event_code(ev), JOBQ_ECORRUPT);
  /* Claims usually fail first; a rescue may (it reads the jobs too). */
  if (strstr(jobq_event_error(ev), "malformed") == NULL)
    fail_msg("error: %s", jobq_event_error(ev));
  jobq_event_free(ev);
  assert_int_equal(atomic_load(&ran), 0);
  assert_int_equal(jobq_health(q), JOBQ_ECORRUPT);
  assert_non_null(strstr(jobq_last_error(), "jobq_health: storage has failed"));
  jobq_stats_t *s = NULL;
  assert_int_equal(jobq_stats(q, &s), 0);
  assert_true(jobq_stats_storage_errors(s) >= 1);
  assert_int_equal(jobq_stats_last_storage_code(s), JOBQ_ECORRUPT);
  jobq_stats_free(s);
  assert_int_equal(jobq_close(q, 0), 0); /* delivers the queued log lines */
  assert_true(atomic_load(&n_heard) >= 1);
  if (strstr(heard, "1|storage failed this process's ") == NULL) fail_msg("heard: %s", heard);
  assert_non_null(strstr(heard, "(JOBQ_ECORRUPT)"));
}

/* A full disk (the file's size limit), then room again. */
static void test_full_then_room(void **state) {
  (void)state;
  jobq_t *q;
  assert_int_equal(open_q(&q, "?max_page_count=40"), 0);
  char big[3000];
  memset(big, 'a', sizeof big);
  big[0] = '"';
  big[sizeof big - 2] = '"';
  big[sizeof big - 1] = '\0';
  char id[JOBQ_ID_SIZE];
  int rc, n = 0;
  while ((rc = jobq_submit(q, "k", big, NULL, id)) == 0) n++;
  assert_int_equal(rc, JOBQ_EFULL);
  assert_non_null(strstr(jobq_last_error(), "size limit of 40 pages (max_page_count)"));
  assert_non_null(strstr(jobq_last_error(), "nothing of this transaction was stored"));
  assert_null(strstr(jobq_last_error(), "roll"));
  assert_int_equal(count_jobs(q), (size_t)n);
  assert_int_equal(jobq_close(q, 0), 0);
  assert_int_equal(open_q(&q, "?max_page_count=100000"), 0); /* room again */
  assert_int_equal(count_jobs(q), (size_t)n);
  assert_int_equal(jobq_submit(q, "k", big, NULL, id), 0);
  jobq_ctx_t *ctx = NULL;
  assert_int_equal(jobq_claim(q, NULL, 0, &ctx), 0);
  assert_int_equal(jobq_ctx_succeed(ctx, NULL), 0);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* A small file system of its own for dir; 0 where mounting is not allowed
 * (not root, or no tmpfs): the test is then skipped. */
static int mount_small(const char *size) {
  char opts[32];
  snprintf(opts, sizeof opts, "size=%s", size);
  if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) return 0;
  mounted = 1;
  return 1;
}

/* Writes a file of `bytes` bytes into dir, or, with bytes < 0, one that
 * takes all the room left. */
static void filler(const char *name, long bytes) {
  char p[160];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  char buf[4096];
  memset(buf, 0x5A, sizeof buf);
  for (long done = 0; bytes < 0 || done < bytes; done += (long)sizeof buf)
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) {
      assert_true(bytes < 0);
      break;
    }
  close(fd);
}

static void drop_filler(const char *name) {
  char p[160];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  assert_int_equal(unlink(p), 0);
}

/* A real full disk while jobs go in: JOBQ_EFULL with a sentence that says
 * so (the commit fails, SQLite rolls back by itself, and the ROLLBACK that
 * follows must not replace the cause), nothing half-stored, and the queue
 * works again once there is room. */
static void test_disk_full_submit(void **state) {
  (void)state;
  if (!mount_small("512k")) skip();
  filler("spare", 128 * 1024);
  jobq_t *q;
  assert_int_equal(open_q(&q, NULL), 0);
  char big[3000];
  memset(big, 'a', sizeof big);
  big[0] = '"';
  big[sizeof big - 2] = '"';
  big[sizeof big - 1] = '\0';
  char id[JOBQ_ID_SIZE];
  int rc, n = 0;
  while ((rc = jobq_submit(q, "k", big, NULL, id)) == 0) n++;
  if (rc != JOBQ_EFULL) fail_msg("got %s: %s", jobq_err_name(rc), jobq_last_error());
  char want[200];
  snprintf(want, sizeof want, "the disk holding '%s' is full (SQLite: ", dir);
  if (strstr(jobq_last_error(), want) == NULL ||
      strstr(jobq_last_error(), "nothing of this transaction was stored; free space and retry") ==
          NULL ||
      strstr(jobq_last_error(), "roll") != NULL)
    fail_msg("sentence: %s", jobq_last_error());
  /* a batch does not fit either, and says why */
  const char *kinds[] = {"k", "k"};
  const char *payloads[] = {big, big};
  char ids[2 * JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit_many(q, 2, kinds, payloads, NULL, ids, NULL), JOBQ_EFULL);
  assert_non_null(strstr(jobq_last_error(), want));
  drop_filler("spare");
  assert_int_equal(count_jobs(q), (size_t)n);
  assert_int_equal(jobq_submit(q, "k", big, NULL, id), 0);
  assert_int_equal(count_jobs(q), (size_t)n + 1);
  assert_int_equal(jobq_close(q, 0), 0);
}

/* Opening on a full disk: JOBQ_EFULL, naming the directory (it was
 * JOBQ_EIO, "disk I/O error"). */
static void test_disk_full_open(void **state) {
  (void)state;
  if (!mount_small("64k")) skip();
  filler("all", -1);
  jobq_t *q;
  int rc = open_q(&q, NULL);
  if (rc != JOBQ_EFULL) fail_msg("got %s: %s", jobq_err_name(rc), jobq_last_error());
  char want[200];
  snprintf(want, sizeof want, "the disk holding '%s' is full", dir);
  if (strstr(jobq_last_error(), want) == NULL || strstr(jobq_last_error(), "free space") == NULL)
    fail_msg("sentence: %s", jobq_last_error());
  /* With a little room (enough for the shared-memory file, not the rest),
   * SQLite says "disk I/O error": still a full disk. */
  drop_filler("all");
  filler("most", 32 * 1024);
  rc = open_q(&q, NULL);
  if (rc != JOBQ_EFULL) fail_msg("got %s: %s", jobq_err_name(rc), jobq_last_error());
  if (strstr(jobq_last_error(), want) == NULL) fail_msg("sentence: %s", jobq_last_error());
}

static void test_readonly_directory(void **state) {
  (void)state;
  if (geteuid() == 0) skip(); /* root writes anywhere */
  assert_int_equal(chmod(dir, 0500), 0);
  jobq_t *q;
  assert_int_equal(open_q(&q, NULL), JOBQ_EIO);
  assert_non_null(strstr(jobq_last_error(), "not writable"));
}

static void test_missing_directory(void **state) {
  (void)state;
  char url[256];
  snprintf(url, sizeof url, "sqlite:%s/nope/q.db", dir);
  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  jobq_t *q;
  assert_int_equal(jobq_open(&q, o), JOBQ_EIO);
  assert_non_null(strstr(jobq_last_error(), "does not exist"));
  jobq_options_free(o);
}

/* Removes a database file and its -wal, -shm and -journal files. */
static void remove_db(const char *db) {
  char p[300];
  const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", db, sfx[i]);
    unlink(p);
  }
}

/* The whole of a file; NULL if it cannot be read. */
static unsigned char *slurp(const char *file, size_t *n) {
  FILE *f = fopen(file, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, len = 0;
  unsigned char *b = malloc(cap);
  size_t got;
  while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) {
      unsigned char *nb = realloc(b, cap *= 2);
      if (nb == NULL) free(b);
      b = nb;
    }
  }
  fclose(f);
  *n = len;
  return b;
}

static int exists(const char *file) {
  struct stat sb;
  return stat(file, &sb) == 0;
}

static int open_url(jobq_t **q, const char *url) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, 0), 0);
  int rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc;
}

/* Another program's database: a table "users" with a row, in SQLite's
 * default rollback-journal mode. */
static void make_foreign_db(const char *file) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
                                "INSERT INTO users (name) VALUES ('ada');",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* One text value of a query on a connection of its own. */
static void query_text(const char *file, const char *sql, char *out, size_t n) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  out[0] = '\0';
  assert_int_equal(sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* A database with another program's tables is refused before anything is
 * written: same bytes, no -wal or -shm file, still in rollback-journal mode. */
static void test_foreign_database_untouched(void **state) {
  (void)state;
  make_foreign_db(path);
  struct stat st0, st1;
  assert_int_equal(stat(path, &st0), 0);
  size_t n0 = 0, n1 = 0;
  unsigned char *before = slurp(path, &n0);
  assert_non_null(before);
  const char *opts[] = {"", "?busy_timeout=100", "?durability=power&shared_schema=0"};
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    jobq_t *q = NULL;
    int rc = open_q(&q, opts[i]);
    if (rc == 0) jobq_close(q, 0);
    if (rc != JOBQ_ECORRUPT) fail_msg("opts '%s': got %s: %s", opts[i], jobq_err_name(rc), jobq_last_error());
    const char *e = jobq_last_error();
    if (!strstr(e, path) || !strstr(e, "users") || !strstr(e, "shared_schema=1"))
      fail_msg("the sentence names neither the file, its table nor the way out: %s", e);
  }
  unsigned char *after = slurp(path, &n1);
  assert_non_null(after);
  if (n0 != n1 || memcmp(before, after, n0) != 0)
    fail_msg("the refused database was changed (%zu -> %zu bytes)", n0, n1);
  free(before);
  free(after);
  assert_int_equal(stat(path, &st1), 0);
  assert_true(st0.st_mtime == st1.st_mtime && st0.st_size == st1.st_size);
  char p[200], v[64];
  snprintf(p, sizeof p, "%s-wal", path);
  assert_false(exists(p));
  snprintf(p, sizeof p, "%s-shm", path);
  assert_false(exists(p));
  snprintf(p, sizeof p, "%s-journal", path);
  assert_false(exists(p));
  query_text(path, "PRAGMA journal_mode", v, sizeof v);
  assert_string_equal(v, "delete");
  query_text(path, "SELECT group_concat(name) FROM sqlite_master", v, sizeof v);
  assert_string_equal(v, "users");
}

/* shared_schema=1 puts libjobq's tables beside the host's; the host's table
 * keeps its rows, and the file then opens as libjobq's without the option.
 * An empty file is no one's and opens as a new one. */
static void test_shared_schema_opt_in(void **state) {
  (void)state;
  make_foreign_db(path);
  jobq_t *q = NULL;
  char url[256], v[64], id[JOBQ_ID_SIZE];
  snprintf(url, sizeof url, "sqlite:%s?shared_schema=2", path);
  assert_int_equal(open_url(&q, url), JOBQ_EURL);
  assert_non_null(strstr(jobq_last_error(), "shared_schema=0|1"));
  assert_int_equal(open_q(&q, "?shared_schema=1&busy_timeout=1000"), 0);
  assert_int_equal(jobq_submit(q, "k", "1", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  query_text(path, "SELECT name FROM users", v, sizeof v);
  assert_string_equal(v, "ada");
  assert_int_equal(open_q(&q, NULL), 0);
  assert_int_equal(count_jobs(q), 1);
  assert_int_equal(jobq_close(q, 0), 0);

  char empty[160];
  snprintf(empty, sizeof empty, "%s/empty.db", dir);
  FILE *f = fopen(empty, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(url, sizeof url, "sqlite:%s", empty);
  assert_int_equal(open_url(&q, url), 0);
  assert_int_equal(jobq_submit(q, "k", "1", NULL, id), 0);
  assert_int_equal(jobq_close(q, 0), 0);
  remove_db(empty);
}

/* An SQLite in-memory database is one connection's; the backend uses
 * several. Refused with a pointer to "memory:", and nothing is created. */
static void test_sqlite_memory_refused(void **state) {
  (void)state;
  char cwd_db[] = ":memory:";
  const char *urls[] = {"sqlite::memory:", "sqlite::memory:?busy_timeout=10",
                        "sqlite:file::memory:", "sqlite:file::memory:?cache=shared"};
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    jobq_t *q = NULL;
    int rc = open_url(&q, urls[i]);
    if (rc == 0) jobq_close(q, 0);
    if (rc != JOBQ_EURL || strstr(jobq_last_error(), "\"memory:\"") == NULL)
      fail_msg("%s: got %s: %s", urls[i], jobq_err_name(rc), jobq_last_error());
  }
  char url[256];
  snprintf(url, sizeof url, "sqlite:%s?mode=memory", path);
  jobq_t *q = NULL;
  assert_int_equal(open_url(&q, url), JOBQ_EURL);
  assert_non_null(strstr(jobq_last_error(), "\"memory:\""));
  assert_false(exists(path));
  /* Other SQLite URIs are refused too: the path is a file name. */
  snprintf(url, sizeof url, "sqlite:file:%s", path);
  assert_int_equal(open_url(&q, url), JOBQ_EURL);
  assert_non_null(strstr(jobq_last_error(), "plain file path"));
  assert_false(exists(path));
  assert_false(exists(cwd_db));
  assert_false(exists("file::memory:"));
}

/* Eight processes open the same new file at the same moment (a pipe is the
 * starting gun): whichever switches it to WAL and creates the schema, the
 * others wait for it within the busy timeout instead of failing. Repeated
 * with a new file each round. */
#define FIRST_OPEN_PROCS 8
#define FIRST_OPEN_ROUNDS 50

static void test_concurrent_first_open(void **state) {
  (void)state;
  char db[160], url[200];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int failures = 0, rounds = 0;
  for (int round = 0; round < FIRST_OPEN_ROUNDS; round++, rounds++) {
    snprintf(db, sizeof db, "%s/first-%d.db", dir, round);
    snprintf(url, sizeof url, "sqlite:%s", db);
    int gun[2];
    assert_int_equal(pipe(gun), 0);
    pid_t kids[FIRST_OPEN_PROCS];
    for (int i = 0; i < FIRST_OPEN_PROCS; i++) {
      kids[i] = fork();
      assert_true(kids[i] >= 0);
      if (kids[i] == 0) {
        close(gun[1]);
        char c;
        (void)!read(gun[0], &c, 1); /* EOF when the parent closes its end */
        jobq_options_t *o = jobq_options_new();
        jobq_t *q = NULL;
        int rc = o ? jobq_options_set_storage(o, url) : JOBQ_ENOMEM;
        if (rc == 0) rc = jobq_options_set_workers(o, 0);
        if (rc == 0) rc = jobq_open(&q, o);
        if (rc != 0) fprintf(stderr, "round %d, process %d: %s: %s\n", round, i, jobq_err_name(rc), jobq_last_error());
        else rc = jobq_close(q, 0);
        jobq_options_free(o);
        _exit(rc == 0 ? 0 : 1);
      }
    }
    close(gun[0]);
    close(gun[1]);
    for (int i = 0; i < FIRST_OPEN_PROCS; i++) {
      int st = 0;
      assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failures++;
    }
    remove_db(db);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (t1.tv_sec - t0.tv_sec > 20) break; /* a slow machine runs fewer rounds */
  }
  if (failures) fail_msg("%d of %d first opens failed", failures, rounds * FIRST_OPEN_PROCS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_index_workers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_full_then_room, setup, teardown),
    cmocka_unit_test_setup_teardown(test_disk_full_submit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_disk_full_open, setup, teardown),
    cmocka_unit_test_setup_teardown(test_readonly_directory, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
    cmocka_unit_test_setup_teardown(test_foreign_database_untouched, setup, teardown),
    cmocka_unit_test_setup_teardown(test_shared_schema_opt_in, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sqlite_memory_refused, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
