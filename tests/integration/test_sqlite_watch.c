/* The SQLite backend's watcher (lib/storage/sqlite_watch.c) watches the
 * database's -wal file itself, not its directory: a directory watch costs
 * its start a walk of every entry the kernel caches for that directory
 * (88 ms each in a busy /tmp), at every return to idle. Read from this
 * process's inotify descriptors (/proc/self/fdinfo lists the inode of
 * every watch): once the queue is idle, the -wal file's inode is watched
 * and the directory's is not. Linux only, as inotify is. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jobq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Whether an inotify descriptor of this process has a watch on inode ino. */
static int watched(unsigned long ino) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return 0;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char link[300], target[128];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (strcmp(target, "anon_inode:inotify") != 0) continue;
    char info[300], line[512];
    snprintf(info, sizeof info, "/proc/self/fdinfo/%s", e->d_name);
    FILE *f = fopen(info, "r");
    while (f && !found && fgets(line, sizeof line, f)) {
      const char *p = strstr(line, " ino:");
      if (strncmp(line, "inotify ", 8) == 0 && p && strtoul(p + 5, NULL, 16) == ino) found = 1;
    }
    if (f) fclose(f);
  }
  closedir(d);
  return found;
}

static void test_watches_the_wal_file(void **state) {
  (void)state;
  char dir[] = "/tmp/jobq_watch_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256], wal[300], url[400];
  snprintf(path, sizeof path, "%s/q.db", dir);
  snprintf(wal, sizeof wal, "%s-wal", path);
  snprintf(url, sizeof url, "sqlite:%s", path);
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  jobq_t *q = NULL;
  if (jobq_open(&q, o) != 0) fail_msg("jobq_open: %s", jobq_last_error());
  jobq_options_free(o);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "{}", NULL, id), 0);

  struct stat sw, sd;
  assert_int_equal(stat(wal, &sw), 0);
  assert_int_equal(stat(dir, &sd), 0);
  /* The watcher looks every millisecond while the file keeps changing and
   * watches again 50 ms after the last change: wait for that, at most 5 s
   * (the bound only ends a failing run). */
  int on_wal = 0;
  for (int i = 0; i < 500 && !on_wal; i++) {
    on_wal = watched((unsigned long)sw.st_ino);
    if (!on_wal) {
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
    }
  }
  if (!on_wal)
    fail_msg("no inotify watch on %s (inode %lu)%s", wal, (unsigned long)sw.st_ino,
             watched((unsigned long)sd.st_ino) ? "; its directory is watched instead" : "");
  assert_false(watched((unsigned long)sd.st_ino));
  assert_int_equal(jobq_close(q, 0), 0);
  unlink(wal);
  char shm[300];
  snprintf(shm, sizeof shm, "%s-shm", path);
  unlink(shm);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_watches_the_wal_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
