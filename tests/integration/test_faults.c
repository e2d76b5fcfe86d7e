/* SQLite faults: a busy database, a damaged file, a full disk, a read-only
 * directory. Each gives its own code and a sentence, stores nothing half,
 * and the queue works again once the fault is gone. */
#include <jobq.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_file, setup, teardown),
    cmocka_unit_test_setup_teardown(test_full_then_room, setup, teardown),
    cmocka_unit_test_setup_teardown(test_disk_full_submit, setup, teardown),
    cmocka_unit_test_setup_teardown(test_disk_full_open, setup, teardown),
    cmocka_unit_test_setup_teardown(test_readonly_directory, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
