/* The -wal file does not keep a peak that a long reader caused.
 *
 * A reader in another process (plain SQLite, as another program or an API
 * process would read) holds a read transaction while this process submits
 * jobs: no checkpoint can copy past the reader's snapshot, so the WAL grows
 * well past its usual bound (CKPT_LIMIT frames, about 20 MB). Once the
 * reader ends, the next commits must reset the WAL (its frame count, read
 * from the wal-index header in the -shm file, falls back below the limit)
 * and cut the -wal file back to the documented size: 5,000 frames of 4 KiB
 * pages, 20,600,032 bytes (docs/architecture.md, "Checkpoints"). Before
 * journal_size_limit was set the file kept its peak size until the last
 * connection closed.
 *
 * Nothing here depends on the machine's speed: the test counts frames and
 * bytes, and submits until a state is reached (with a cap on the number of
 * batches, not on time). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jobq.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAL_LIMIT_BYTES 20600032L /* 5000 * (4096 + 24) + 32 */
#define WAL_LIMIT_FRAMES 5000
#define BATCH 1000

/* The reader: told through `cmd` to begin ('b') and end ('e') a read
 * transaction, or to quit ('q'); answers each command with one byte on
 * `ack` ('k', or 'x' when SQLite refused). */
static void reader_child(const char *path, int cmd, int ack) {
  sqlite3 *db = NULL;
  char c;
  while (read(cmd, &c, 1) == 1 && c != 'q') {
    char ok = 'k';
    if (c == 'b') {
      if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
          sqlite3_exec(db, "BEGIN; SELECT count(*) FROM jobq_jobs;", NULL, NULL, NULL) != SQLITE_OK)
        ok = 'x';
    } else if (c == 'e') {
      if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) ok = 'x';
      sqlite3_close(db);
      db = NULL;
    }
    if (write(ack, &ok, 1) != 1) break;
  }
  sqlite3_close(db);
  _exit(0);
}

static char tell(int cmd, int ack, char c) {
  char r = 0;
  if (write(cmd, &c, 1) != 1 || read(ack, &r, 1) != 1) return 0;
  return r;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* WalIndexHdr.mxFrame: offset 16 of the -shm file, native byte order. */
static long wal_frames(const char *shm) {
  uint32_t v = 0;
  int fd = open(shm, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = pread(fd, &v, sizeof v, 16);
  close(fd);
  return n == (ssize_t)sizeof v ? (long)v : -1;
}

static void submit_batch(jobq_t *q) {
  static const char *kinds[BATCH], *payloads[BATCH];
  static char ids[BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < BATCH; i++) {
    kinds[i] = "w";
    payloads[i] = "{\"pad\":\"......................................................\"}";
  }
  assert_int_equal(jobq_submit_many(q, BATCH, kinds, payloads, NULL, ids, NULL), 0);
}

static void test_wal_shrinks_after_reader_ends(void **state) {
  (void)state;
  char dir[] = "/tmp/jobq_wal_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256], wal[300], shm[300], url[400];
  snprintf(path, sizeof path, "%s/q.db", dir);
  snprintf(wal, sizeof wal, "%s-wal", path);
  snprintf(shm, sizeof shm, "%s-shm", path);
  /* A short busy_timeout: a RESTART waits that long for the reader. */
  snprintf(url, sizeof url, "sqlite:%s?busy_timeout=50", path);

  /* The reader is forked before this process touches SQLite. */
  int to_child[2], from_child[2];
  assert_int_equal(pipe(to_child), 0);
  assert_int_equal(pipe(from_child), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(to_child[1]);
    close(from_child[0]);
    reader_child(path, to_child[0], from_child[1]);
  }
  close(to_child[0]);
  close(from_child[1]);
  int cmd = to_child[1], ack = from_child[0];

  jobq_options_t *o = jobq_options_new();
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  submit_batch(q);

  /* The reader pins the WAL: it grows to twice the limit. */
  assert_int_equal(tell(cmd, ack, 'b'), 'k');
  int batches = 0;
  while (wal_frames(shm) < 2 * WAL_LIMIT_FRAMES && batches < 2000) {
    submit_batch(q);
    batches++;
  }
  long peak_frames = wal_frames(shm), peak_bytes = file_size(wal);
  print_message("with the reader: %ld frames, -wal %ld bytes after %d batches\n", peak_frames,
                peak_bytes, batches);
  assert_true(peak_frames >= 2 * WAL_LIMIT_FRAMES);
  assert_true(peak_bytes > 2 * WAL_LIMIT_BYTES);

  /* The reader ends: the WAL resets and the file is cut back. */
  assert_int_equal(tell(cmd, ack, 'e'), 'k');
  long frames = wal_frames(shm), bytes = file_size(wal);
  for (batches = 0; batches < 50 && (frames >= WAL_LIMIT_FRAMES || bytes > WAL_LIMIT_BYTES);
       batches++) {
    submit_batch(q);
    frames = wal_frames(shm);
    bytes = file_size(wal);
  }
  print_message("after the reader: %ld frames, -wal %ld bytes after %d batches\n", frames, bytes,
                batches);
  assert_true(frames >= 0 && frames < WAL_LIMIT_FRAMES);
  assert_true(bytes <= WAL_LIMIT_BYTES);

  assert_int_equal(jobq_close(q, 0), 0);
  tell(cmd, ack, 'q');
  close(cmd);
  close(ack);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  char rm[600];
  snprintf(rm, sizeof rm, "rm -rf %s", dir);
  assert_int_equal(system(rm), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_wal_shrinks_after_reader_ends),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
