/* Runs a fuzz target without libFuzzer, so that every build checks it: each
 * file named on the command line (or found in a named directory) once, then
 * a fixed number of deterministic mutations of them. A clang build with
 * -DJOBQ_FUZZ=ON links the real libFuzzer instead. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *seeds[256];
static size_t seed_len[256];
static int n_seeds;

static void add_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL || n_seeds == 256) {
    if (f) fclose(f);
    return;
  }
  uint8_t *b = malloc(65536);
  size_t n = b ? fread(b, 1, 65536, f) : 0;
  fclose(f);
  if (b == NULL) return;
  seeds[n_seeds] = b;
  seed_len[n_seeds++] = n;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

int main(int argc, char **argv) {
  long rounds = getenv("JOBQ_FUZZ_ROUNDS") ? atol(getenv("JOBQ_FUZZ_ROUNDS")) : 20000;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
        add_file(p);
      }
      if (d) closedir(d);
    } else {
      add_file(argv[i]);
    }
  }
  for (int i = 0; i < n_seeds; i++) LLVMFuzzerTestOneInput(seeds[i], seed_len[i]);
  static const char dict[] = "{}[]\":,\\u0123456789eE+-.truefalsenull \t\n\xc3\xa9\xf0\x9f\x98\x80\xed\xa0\x80";
  uint8_t buf[4096];
  for (long r = 0; r < rounds && n_seeds > 0; r++) {
    int s = (int)(next() % (uint64_t)n_seeds);
    size_t n = seed_len[s] < sizeof buf ? seed_len[s] : sizeof buf;
    memcpy(buf, seeds[s], n);
    int muts = 1 + (int)(next() % 4);
    for (int m = 0; m < muts; m++) {
      uint64_t k = next();
      size_t pos = n ? (size_t)(k >> 8) % n : 0;
      switch (k % 4) {
        case 0: if (n) buf[pos] = (uint8_t)dict[(k >> 32) % (sizeof dict - 1)]; break;
        case 1: if (n) buf[pos] = (uint8_t)(k >> 40); break;
        case 2: if (n < sizeof buf) { memmove(buf + pos + 1, buf + pos, n - pos); buf[pos] = (uint8_t)dict[(k >> 32) % (sizeof dict - 1)]; n++; } break;
        default: if (n) { memmove(buf + pos, buf + pos + 1, n - pos - 1); n--; } break;
      }
    }
    LLVMFuzzerTestOneInput(buf, n);
  }
  printf("%d seeds, %ld mutations: ok\n", n_seeds, rounds);
  for (int i = 0; i < n_seeds; i++) free(seeds[i]);
  return 0;
}
