/* Internals under lib/util: ids (UUIDv7), the hash map, the heap, the JSON
 * check, the event that ends an attempt. Random tests use a fixed-seed generator and print the seed. */
#include "testutil.h"

#include "util/heap.h"
#include "util/id.h"
#include "util/json.h"
#include "util/map.h"
#include "util/state.h"
#include "util/err.h"
#include "util/utf8.h"

#include <jansson.h>
#include <pthread.h>

/* ---- a deterministic generator ---- */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9e3779b97f4a7c15ull; }
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}
static size_t rng_below(size_t n) { return (size_t)(rng() % n); }

/* ======================================================================== */
/* ids                                                                      */
/* ======================================================================== */

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static void check_id_format(const char *id) {
  assert_int_equal(strlen(id), 36);
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) assert_int_equal(id[i], '-');
    else assert_true(is_hex(id[i]));
  }
  assert_int_equal(id[14], '7'); /* version 7 */
  /* variant 10xx: the first hex digit of the 4th group is 8, 9, a or b */
  assert_non_null(strchr("89ab", id[19]));
  assert_int_equal(jobq__id_valid(id), 1);
}

static int64_t id_ms(const char *id) {
  char hex[13];
  memcpy(hex, id, 8);
  memcpy(hex + 8, id + 9, 4);
  hex[12] = '\0';
  return (int64_t)strtoll(hex, NULL, 16);
}

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_id_format(void **state) {
  (void)state;
  char id[JOBQ_ID_SIZE];
  memset(id, 'X', sizeof id);
  jobq__id_new(id, real_ms());
  check_id_format(id);
  for (int i = 0; i < 1000; i++) {
    jobq__id_new(id, real_ms());
    check_id_format(id);
  }
}

static void test_id_valid(void **state) {
  (void)state;
  assert_int_equal(jobq__id_valid("01890a5d-ac96-774b-bcce-b302099a8057"), 1);
  assert_int_equal(jobq__id_valid("00000000-0000-0000-0000-000000000000"), 1);
  assert_int_equal(jobq__id_valid(""), 0);
  assert_int_equal(jobq__id_valid("01890A5D-AC96-774B-BCCE-B302099A8057"), 0); /* upper case */
  assert_int_equal(jobq__id_valid("01890a5d-ac96-774b-bcce-b302099a805"), 0);  /* 35 */
  assert_int_equal(jobq__id_valid("01890a5d-ac96-774b-bcce-b302099a80577"), 0); /* 37 */
  assert_int_equal(jobq__id_valid("01890a5dac96-774b-bcce-b302099a8057-"), 0);  /* dashes moved */
  assert_int_equal(jobq__id_valid("01890a5d-ac96-774b-bcce-b302099a805g"), 0);  /* not hex */
  assert_int_equal(jobq__id_valid("01890a5d-ac96-774b-bcce b302099a8057"), 0);
  assert_int_equal(jobq__id_valid("------------------------------------"), 0);
}

static void test_id_100k_unique_increasing(void **state) {
  (void)state;
  char prev[JOBQ_ID_SIZE], cur[JOBQ_ID_SIZE];
  jobq__id_new(prev, real_ms());
  for (int i = 0; i < 100000; i++) {
    jobq__id_new(cur, real_ms());
    if (strcmp(prev, cur) >= 0) fail_msg("id %d: '%s' is not greater than '%s'", i, cur, prev);
    memcpy(prev, cur, sizeof cur);
  }
  check_id_format(cur);
}

/* The same millisecond (and a clock that steps back) on one thread: still
 * strictly increasing; the counter's overflow moves the time on by 1 ms. */
typedef struct {
  int64_t ms;
  int bad;
  char msg[256];
} same_ms_arg;

static void *same_ms_thread(void *p) {
  same_ms_arg *a = p;
  char prev[JOBQ_ID_SIZE] = "", cur[JOBQ_ID_SIZE];
  int saw_next = 0;
  for (int i = 0; i < 5000; i++) {
    jobq__id_new(cur, i % 7 == 3 ? a->ms - 5 : a->ms); /* sometimes "earlier" */
    int64_t t = id_ms(cur);
    if (prev[0] && strcmp(prev, cur) >= 0) {
      a->bad++;
      snprintf(a->msg, sizeof a->msg, "%d: %s <= %s", i, cur, prev);
    }
    if (t != a->ms && t != a->ms + 1) {
      a->bad++;
      snprintf(a->msg, sizeof a->msg, "%d: time %lld", i, (long long)t);
    }
    if (t == a->ms + 1) saw_next = 1;
    if (cur[14] != '7' || !strchr("89ab", cur[19])) a->bad++;
    memcpy(prev, cur, sizeof cur);
  }
  /* the counter starts below 0x400 and has 12 bits: 5000 ids overflow it */
  if (!saw_next) {
    a->bad++;
    snprintf(a->msg, sizeof a->msg, "the counter never overflowed");
  }
  return NULL;
}

static void test_id_same_ms(void **state) {
  (void)state;
  same_ms_arg a = {.ms = 1700000000000, .bad = 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, same_ms_thread, &a), 0);
  pthread_join(t, NULL);
  if (a.bad) fail_msg("%d problems, last: %s", a.bad, a.msg);
}

typedef struct {
  char ids[6][JOBQ_ID_SIZE];
} prefix_arg;

static void *prefix_thread(void *p) {
  /* a fresh thread: no earlier time remembered */
  prefix_arg *a = p;
  jobq__id_new(a->ids[0], 0);
  jobq__id_new(a->ids[1], 1);
  jobq__id_new(a->ids[2], INT64_C(0x0123456789ab));
  jobq__id_new(a->ids[3], INT64_C(1700000000123));
  jobq__id_new(a->ids[4], INT64_C(1700000000124));
  jobq__id_new(a->ids[5], INT64_C(0xffffffffffff)); /* the largest 48-bit time */
  return NULL;
}

static void test_id_timestamp_prefix(void **state) {
  (void)state;
  prefix_arg a;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, prefix_thread, &a), 0);
  pthread_join(t, NULL);
  assert_memory_equal(a.ids[0], "00000000-0000-7", 15);
  assert_memory_equal(a.ids[1], "00000000-0001-7", 15);
  assert_memory_equal(a.ids[2], "01234567-89ab-7", 15);
  assert_int_equal(id_ms(a.ids[3]), INT64_C(1700000000123));
  assert_int_equal(id_ms(a.ids[4]), INT64_C(1700000000124));
  assert_memory_equal(a.ids[5], "ffffffff-ffff-7", 15);
  for (int i = 0; i < 6; i++) check_id_format(a.ids[i]);
  for (int i = 1; i < 6; i++) assert_true(strcmp(a.ids[i - 1], a.ids[i]) < 0);
}

static void *negative_ms_thread(void *p) {
  jobq__id_new(p, -5);
  return NULL;
}

static void test_id_negative_ms_is_zero(void **state) {
  (void)state;
  char id[JOBQ_ID_SIZE];
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, negative_ms_thread, id), 0);
  pthread_join(t, NULL);
  assert_memory_equal(id, "00000000-0000-7", 15);
  check_id_format(id);
}

enum { TH = 4, PER = 25000 };
static char thread_ids[TH * PER][JOBQ_ID_SIZE];

typedef struct {
  int idx;
  pthread_barrier_t *bar;
  int bad;
} mt_arg;

static void *mt_ids(void *p) {
  mt_arg *a = p;
  pthread_barrier_wait(a->bar);
  for (int i = 0; i < PER; i++) {
    char *id = thread_ids[a->idx * PER + i];
    jobq__id_new(id, real_ms());
    if (i > 0 && strcmp(thread_ids[a->idx * PER + i - 1], id) >= 0) a->bad++;
  }
  return NULL;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

static void test_id_threads_unique(void **state) {
  (void)state;
  pthread_t t[TH];
  mt_arg a[TH];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, TH);
  for (int i = 0; i < TH; i++) {
    a[i] = (mt_arg){.idx = i, .bar = &bar, .bad = 0};
    assert_int_equal(pthread_create(&t[i], NULL, mt_ids, &a[i]), 0);
  }
  for (int i = 0; i < TH; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&bar);
  for (int i = 0; i < TH; i++) assert_int_equal(a[i].bad, 0);
  qsort(thread_ids, TH * PER, JOBQ_ID_SIZE, cmp_id);
  for (int i = 1; i < TH * PER; i++)
    if (strcmp(thread_ids[i - 1], thread_ids[i]) == 0) fail_msg("duplicate id %s", thread_ids[i]);
  for (int i = 0; i < TH * PER; i += 997) check_id_format(thread_ids[i]);
}

static void test_random(void **state) {
  (void)state;
  double sum = 0;
  for (int i = 0; i < 10000; i++) {
    double r = jobq__random_unit();
    assert_true(r >= 0.0 && r < 1.0);
    sum += r;
  }
  assert_true(sum / 10000 > 0.45 && sum / 10000 < 0.55);
  /* more than the 4 KiB pool in one call: no chunk repeats, not all zero */
  enum { N = 3 * 4096 + 100 };
  static unsigned char buf[N];
  memset(buf, 0, sizeof buf);
  jobq__random_bytes(buf, N);
  int zero_run = 0, max_zero_run = 0;
  for (int i = 0; i < N; i++) {
    zero_run = buf[i] ? 0 : zero_run + 1;
    if (zero_run > max_zero_run) max_zero_run = zero_run;
  }
  assert_true(max_zero_run < 16);
  for (int i = 0; i + 64 <= N - 64; i += 64)
    assert_memory_not_equal(buf + i, buf + i + 64, 64);
  unsigned char a[16], b[16];
  jobq__random_bytes(a, sizeof a);
  jobq__random_bytes(b, sizeof b);
  assert_memory_not_equal(a, b, sizeof a);
}

/* ======================================================================== */
/* map                                                                      */
/* ======================================================================== */

/* Every occupied slot is reachable from its home slot without crossing an
 * empty one (what backward-shift deletion must keep), count matches, and the
 * load factor is at most 1/2. */
static void check_map_invariants(const jobq_map *m) {
  if (m->cap == 0) {
    assert_int_equal(m->count, 0);
    return;
  }
  assert_int_equal(m->cap & (m->cap - 1), 0);
  size_t mask = m->cap - 1, used = 0;
  for (size_t p = 0; p < m->cap; p++) {
    const jobq_map_slot *s = &m->slots[p];
    if (s->key == NULL) continue;
    used++;
    assert_int_equal(s->hash, jobq__hash(s->key));
    for (size_t i = s->hash & mask; i != p; i = (i + 1) & mask)
      if (m->slots[i].key == NULL)
        fail_msg("slot %zu ('%s', home %zu) is cut off by the empty slot %zu", p, s->key,
                 (size_t)(s->hash & mask), i);
  }
  assert_int_equal(used, m->count);
  assert_true(m->count * 2 <= m->cap);
}

static void map_random_run(size_t nkeys, size_t ops, uint64_t seed) {
  print_message("map: %zu keys, %zu ops, seed %llu\n", nkeys, ops, (unsigned long long)seed);
  rng_seed(seed);
  char (*keys)[24] = calloc(nkeys, sizeof *keys);
  void **model = calloc(nkeys, sizeof *model);
  assert_non_null(keys);
  assert_non_null(model);
  for (size_t i = 0; i < nkeys; i++) snprintf(keys[i], sizeof keys[i], "key-%zu", i);
  jobq_map m = {0};
  size_t count = 0;
  for (size_t op = 0; op < ops; op++) {
    size_t k = rng_below(nkeys);
    char probe[24]; /* the same text at another address: lookups compare text */
    memcpy(probe, keys[k], sizeof probe);
    unsigned r = (unsigned)rng_below(100);
    if (r < 45) {
      void *val = (void *)(uintptr_t)(op * 2 + 1);
      assert_int_equal(jobq__map_put(&m, keys[k], val), 0);
      if (model[k] == NULL) count++;
      model[k] = val;
    } else if (r < 80) {
      void *got = jobq__map_del(&m, probe);
      if (got != model[k])
        fail_msg("op %zu: del(%s) returned %p, expected %p", op, probe, got, model[k]);
      if (model[k]) count--;
      model[k] = NULL;
    } else {
      void *got = jobq__map_get(&m, probe);
      if (got != model[k])
        fail_msg("op %zu: get(%s) returned %p, expected %p", op, probe, got, model[k]);
    }
    assert_int_equal(m.count, count);
    if (op % 997 == 0 || op + 1 == ops) {
      check_map_invariants(&m);
      for (size_t i = 0; i < nkeys; i++) {
        void *got = jobq__map_get(&m, keys[i]);
        if (got != model[i])
          fail_msg("op %zu: get(%s) returned %p, expected %p", op, keys[i], got, model[i]);
      }
    }
  }
  /* empty it completely */
  for (size_t i = 0; i < nkeys; i++) {
    void *got = jobq__map_del(&m, keys[i]);
    assert_ptr_equal(got, model[i]);
  }
  assert_int_equal(m.count, 0);
  check_map_invariants(&m);
  for (size_t i = 0; i < nkeys; i++) assert_null(jobq__map_get(&m, keys[i]));
  jobq__map_free(&m);
  assert_null(m.slots);
  assert_int_equal(m.cap, 0);
  assert_int_equal(m.count, 0);
  free(keys);
  free(model);
}

static void test_map_random_100k(void **state) {
  (void)state;
  map_random_run(3000, 100000, 12345);
}

static void test_map_random_small(void **state) {
  (void)state;
  /* few keys: the table stays small, probe runs wrap around its end */
  map_random_run(7, 100000, 777);
  map_random_run(40, 100000, 4242);
}

/* jobq__map_next visits each entry exactly once, with its value, whatever
 * the deletions before (backward shifts move entries between slots). */
static void test_map_iterate(void **state) {
  (void)state;
  jobq_map m = {0};
  size_t cur = 0;
  assert_null(jobq__map_next(&m, &cur)); /* an empty map, never allocated */
  enum { N = 3000 };
  static char keys[N][16];
  static int vals[N], seen[N];
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", i);
    vals[i] = i;
    assert_int_equal(jobq__map_put(&m, keys[i], &vals[i]), 0);
  }
  for (int i = 0; i < N; i += 3) assert_ptr_equal(jobq__map_del(&m, keys[i]), &vals[i]);
  memset(seen, 0, sizeof seen);
  size_t n = 0;
  jobq_map_slot *e;
  for (cur = 0; (e = jobq__map_next(&m, &cur));) {
    int i = *(int *)e->val;
    assert_true(i >= 0 && i < N);
    assert_string_equal(e->key, keys[i]);
    seen[i]++;
    n++;
  }
  assert_int_equal(n, m.count);
  for (int i = 0; i < N; i++) assert_int_equal(seen[i], i % 3 == 0 ? 0 : 1);
  assert_null(jobq__map_next(&m, &cur)); /* stays at the end */
  jobq__map_free(&m);
}

static void test_map_empty_and_replace(void **state) {
  (void)state;
  jobq_map m = {0};
  assert_null(jobq__map_get(&m, "nothing"));
  assert_null(jobq__map_del(&m, "nothing"));
  int a, b;
  static char k1[] = "alpha";
  char k1b[] = "alpha";
  assert_int_equal(jobq__map_put(&m, k1, &a), 0);
  assert_ptr_equal(jobq__map_get(&m, "alpha"), &a);
  assert_int_equal(m.count, 1);
  /* replace, through another pointer with the same text */
  assert_int_equal(jobq__map_put(&m, k1b, &b), 0);
  assert_int_equal(m.count, 1);
  assert_ptr_equal(jobq__map_get(&m, k1), &b);
  assert_null(jobq__map_get(&m, "alph"));
  assert_null(jobq__map_get(&m, "alphaa"));
  assert_null(jobq__map_get(&m, ""));
  assert_ptr_equal(jobq__map_del(&m, "alpha"), &b);
  assert_null(jobq__map_del(&m, "alpha"));
  assert_int_equal(m.count, 0);
  /* the empty string is a key like any other */
  assert_int_equal(jobq__map_put(&m, "", &a), 0);
  assert_ptr_equal(jobq__map_get(&m, ""), &a);
  check_map_invariants(&m);
  jobq__map_free(&m);
  jobq__map_free(&m); /* twice is harmless */
}

/* Directed: a probe run that wraps from the last slot to slot 0, then
 * deletions at its start, middle and end. */
static void test_map_wraparound_delete(void **state) {
  (void)state;
  jobq_map m = {0};
  int dummy;
  assert_int_equal(jobq__map_put(&m, "seed", &dummy), 0);
  assert_ptr_equal(jobq__map_del(&m, "seed"), &dummy);
  size_t cap = m.cap;
  assert_true(cap >= 16);
  size_t mask = cap - 1;
  /* 3 keys whose home is the last slot, 2 whose home is slot 0 */
  static char keys[5][16];
  int n_last = 0, n_first = 0;
  for (int i = 0; n_last < 3 || n_first < 2; i++) {
    char k[16];
    snprintf(k, sizeof k, "w%d", i);
    size_t home = jobq__hash(k) & mask;
    if (home == mask && n_last < 3) memcpy(keys[n_last++], k, sizeof k);
    else if (home == 0 && n_first < 2) memcpy(keys[3 + n_first++], k, sizeof k);
    assert_true(i < 1000000);
  }
  int vals[5];
  for (int i = 0; i < 5; i++) assert_int_equal(jobq__map_put(&m, keys[i], &vals[i]), 0);
  assert_int_equal(m.cap, cap); /* 5 entries do not grow a 16-slot table */
  check_map_invariants(&m);
  /* the run: last slot, 0, 1, 2, 3 */
  assert_ptr_equal(m.slots[mask].key, keys[0]);
  int order[5] = {0, 4, 2, 3, 1}; /* start, then middle, ... */
  int gone[5] = {0};
  for (int s = 0; s < 5; s++) {
    int d = order[s];
    assert_ptr_equal(jobq__map_del(&m, keys[d]), &vals[d]);
    gone[d] = 1;
    check_map_invariants(&m);
    for (int i = 0; i < 5; i++) {
      if (gone[i]) assert_null(jobq__map_get(&m, keys[i]));
      else assert_ptr_equal(jobq__map_get(&m, keys[i]), &vals[i]);
    }
  }
  assert_int_equal(m.count, 0);
  jobq__map_free(&m);
}

static void test_map_reserve(void **state) {
  (void)state;
  jobq_map m = {0};
  assert_int_equal(jobq__map_reserve(&m, 0), 0);
  assert_int_equal(jobq__map_reserve(&m, 100), 0);
  size_t cap = m.cap;
  assert_true(cap >= 200);
  jobq_map_slot *slots = m.slots;
  static char keys[100][16];
  for (int i = 0; i < 100; i++) {
    snprintf(keys[i], sizeof keys[i], "r%d", i);
    assert_int_equal(jobq__map_put(&m, keys[i], keys[i]), 0);
    assert_int_equal(m.cap, cap);        /* reserved: no growth */
    assert_ptr_equal(m.slots, slots);
  }
  check_map_invariants(&m);
  /* reserving more keeps everything */
  assert_int_equal(jobq__map_reserve(&m, 1000), 0);
  assert_true(m.cap >= 2 * 1100);
  for (int i = 0; i < 100; i++) assert_ptr_equal(jobq__map_get(&m, keys[i]), keys[i]);
  check_map_invariants(&m);
  jobq__map_free(&m);
}

static void test_map_hash(void **state) {
  (void)state;
  assert_int_equal(jobq__hash("abc"), jobq__hash("abc"));
  assert_true(jobq__hash("abc") != jobq__hash("abd"));
  /* ids share a long prefix: the low bits must still differ */
  int low[16] = {0};
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 1600; i++) {
    snprintf(id, sizeof id, "01890a5d-ac96-774b-bcce-b30209%06d", i);
    low[jobq__hash(id) & 15]++;
  }
  for (int i = 0; i < 16; i++) assert_true(low[i] > 40 && low[i] < 200);
}

/* ======================================================================== */
/* heap                                                                     */
/* ======================================================================== */

typedef struct hel {
  int key;
  uint32_t idx;
  int in;
} hel;

static int hel_less(const void *a, const void *b) { return ((const hel *)a)->key < ((const hel *)b)->key; }
static uint32_t *hel_slot(void *e) { return &((hel *)e)->idx; }

static void check_heap(const jobq_heap *h) {
  for (size_t i = 0; i < h->n; i++) {
    hel *e = h->v[i];
    assert_int_equal(e->idx, i);
    assert_int_equal(e->in, 1);
    if (i > 0) assert_false(hel_less(e, h->v[(i - 1) / 2]));
  }
}

/* sorted multiset of keys */
static int *model_keys;
static size_t model_n;

static size_t model_lower(int key) {
  size_t lo = 0, hi = model_n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (model_keys[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
static void model_add(int key) {
  size_t p = model_lower(key);
  memmove(model_keys + p + 1, model_keys + p, (model_n - p) * sizeof *model_keys);
  model_keys[p] = key;
  model_n++;
}
static void model_del(int key) {
  size_t p = model_lower(key);
  assert_true(p < model_n && model_keys[p] == key);
  memmove(model_keys + p, model_keys + p + 1, (model_n - p - 1) * sizeof *model_keys);
  model_n--;
}

static void heap_random_run(size_t pool_n, int key_range, size_t ops, uint64_t seed) {
  print_message("heap: pool %zu, keys 0..%d, %zu ops, seed %llu\n", pool_n, key_range - 1, ops,
                (unsigned long long)seed);
  rng_seed(seed);
  hel *pool = calloc(pool_n, sizeof *pool);
  model_keys = calloc(pool_n, sizeof *model_keys);
  assert_non_null(pool);
  assert_non_null(model_keys);
  model_n = 0;
  jobq_heap h = {0};
  h.less = hel_less;
  h.slot = hel_slot;
  assert_null(jobq__heap_top(&h));
  assert_null(jobq__heap_pop(&h));
  for (size_t op = 0; op < ops; op++) {
    unsigned r = (unsigned)rng_below(100);
    if (r < 50) {
      hel *e = &pool[rng_below(pool_n)];
      if (e->in) continue;
      e->key = (int)rng_below((size_t)key_range) - key_range / 2;
      e->in = 1;
      assert_int_equal(jobq__heap_push(&h, e), 0);
      model_add(e->key);
    } else if (r < 75) {
      hel *e = jobq__heap_pop(&h);
      if (model_n == 0) {
        assert_null(e);
        continue;
      }
      assert_non_null(e);
      if (e->key != model_keys[0])
        fail_msg("op %zu: pop gave key %d, the smallest is %d", op, e->key, model_keys[0]);
      e->in = 0;
      model_del(e->key);
    } else {
      hel *e = &pool[rng_below(pool_n)];
      if (!e->in) continue;
      jobq__heap_remove(&h, e);
      e->in = 0;
      model_del(e->key);
    }
    assert_int_equal(h.n, model_n);
    hel *top = jobq__heap_top(&h);
    if (model_n) assert_int_equal(top->key, model_keys[0]);
    else assert_null(top);
    if (op % 101 == 0) check_heap(&h);
  }
  check_heap(&h);
  /* drain: ascending order */
  int last = INT32_MIN;
  while (model_n) {
    hel *e = jobq__heap_pop(&h);
    assert_non_null(e);
    assert_true(e->key >= last);
    assert_int_equal(e->key, model_keys[0]);
    last = e->key;
    e->in = 0;
    model_del(e->key);
  }
  assert_int_equal(h.n, 0);
  assert_null(jobq__heap_pop(&h));
  jobq__heap_free(&h);
  assert_null(h.v);
  free(pool);
  free(model_keys);
  model_keys = NULL;
}

static void test_heap_random(void **state) {
  (void)state;
  heap_random_run(1000, 50, 100000, 99);       /* many equal keys */
  heap_random_run(3000, 1000000, 100000, 31337);
  heap_random_run(5, 3, 20000, 5);             /* tiny */
}

static void test_heap_remove_each_position(void **state) {
  (void)state;
  enum { N = 40 };
  for (int del = 0; del < N; del++) {
    hel e[N];
    jobq_heap h = {0};
    h.less = hel_less;
    h.slot = hel_slot;
    for (int i = 0; i < N; i++) {
      e[i].key = (i * 7919) % N; /* a permutation of 0..N-1 */
      e[i].in = 1;
      assert_int_equal(jobq__heap_push(&h, &e[i]), 0);
    }
    check_heap(&h);
    hel *victim = h.v[del];
    int vkey = victim->key;
    jobq__heap_remove(&h, victim);
    victim->in = 0;
    check_heap(&h);
    for (int k = 0; k < N; k++) {
      if (k == vkey) continue;
      hel *p = jobq__heap_pop(&h);
      assert_non_null(p);
      assert_int_equal(p->key, k);
      p->in = 0;
    }
    assert_null(jobq__heap_pop(&h));
    jobq__heap_free(&h);
  }
}

static void test_heap_reserve(void **state) {
  (void)state;
  jobq_heap h = {0};
  h.less = hel_less;
  h.slot = hel_slot;
  assert_int_equal(jobq__heap_reserve(&h, 1000), 0);
  assert_true(h.cap >= 1000);
  void **v = h.v;
  size_t cap = h.cap;
  static hel e[1000];
  for (int i = 0; i < 1000; i++) {
    e[i].key = 1000 - i;
    e[i].in = 1;
    assert_int_equal(jobq__heap_push(&h, &e[i]), 0);
  }
  assert_ptr_equal(h.v, v);
  assert_int_equal(h.cap, cap);
  check_heap(&h);
  assert_int_equal(((hel *)jobq__heap_top(&h))->key, 1);
  jobq__heap_free(&h);
}

/* ======================================================================== */
/* json                                                                     */
/* ======================================================================== */

static int jcheck(const char *s) { return jobq__json_check("fn_x", "thing", s, strlen(s)); }

static void test_json_valid(void **state) {
  (void)state;
  const char *ok[] = {
    "null", "true", "false", "0", "-1", "1.5e10", "-0.25E-3", "\"\"", "\"text\"",
    "\"esc \\\" \\\\ \\n \\u00e9 \\ud83d\\ude00\"", "\"caf\xc3\xa9\"", "{}", "[]",
    " { \"a\" : 1 } ", "\n\t[1, 2, 3]\r\n", "{\"a\":{\"b\":[1,{\"c\":null}],\"d\":\"e\"}}",
    "[[[[[[[[[[[]]]]]]]]]]]", "{\"a\":1,\"a\":2}", "9007199254740993",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int rc = jcheck(ok[i]);
    if (rc != 0) fail_msg("'%s' refused: %s", ok[i], jobq_last_error());
  }
  /* len counts: what follows is not looked at */
  assert_int_equal(jobq__json_check("f", "w", "[1]garbage", 3), 0);
  assert_int_equal(jobq__json_check("f", "w", "{\"a\":1}}}}", 7), 0);
}

static void test_json_invalid(void **state) {
  (void)state;
  const char *bad[] = {
    "", " ", "\n", "{", "}", "[", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{a:1}", "{'a':1}",
    "'x'", "nul", "nulll", "True", "NaN", "Infinity", "-", "01", "1.", ".5", "+1", "\"open",
    "\"bad \\x escape\"", "{\"a\":1,}", "{} {}", "[] x", "1 2", "null null", "{}garbage",
    "\"\xff\xfe\"", "/* c */ 1", "\"tab\there\"",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jobq_storage_set_error("");
    int rc = jcheck(bad[i]);
    if (rc != JOBQ_EJSON) fail_msg("'%s' gave %d, not JOBQ_EJSON", bad[i], rc);
    const char *e = jobq_last_error();
    assert_non_null(strstr(e, "fn_x"));
    assert_non_null(strstr(e, "thing"));
    assert_non_null(strstr(e, "not valid JSON"));
  }
  /* embedded NUL inside the length */
  assert_int_equal(jobq__json_check("f", "w", "\"a\0b\"", 5), JOBQ_EJSON);
  assert_int_equal(jobq__json_check("f", "w", "[1]\0", 4), JOBQ_EJSON);
  /* a valid text cut short by len */
  assert_int_equal(jobq__json_check("f", "w", "[1,2]", 4), JOBQ_EJSON);
  assert_int_equal(jobq__json_check("f", "w", "null", 0), JOBQ_EJSON);
}

static void test_json_message_has_parser_text(void **state) {
  (void)state;
  const char *text = "{\"a\": [1, 2,, 3]}";
  jobq_storage_set_error("");
  assert_int_equal(jcheck(text), JOBQ_EJSON);
  const char *prefix = "fn_x: thing is not valid JSON: ";
  const char *e = jobq_last_error();
  if (strncmp(e, prefix, strlen(prefix)) != 0) fail_msg("sentence '%s'", e);
  /* the parser's own words follow */
  assert_true(strlen(e + strlen(prefix)) >= 5);
}

static void test_json_edge_cases(void **state) {
  (void)state;
  const char *ok[] = {
    "\"\\/\"", "\"\\b\\f\\n\\r\\t\"", "-0", "0", "0e0", "1E+2", "1e-2", "-0.0e-0", "\"\x7f\"",
    "\"\xf0\x9f\x98\x80\"", "\"\xc2\xa9\"", "\"\xef\xbf\xbf\"", "\"\xf4\x8f\xbf\xbf\"",
    "\"\\ud83d\\ude00\"", "[1,[2,[3,{\"x\":[{}]}]]]", "{\"\":\"\"}", "[null,true,false]",
    " \t\r\n\"x\" \t\r\n",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int rc = jcheck(ok[i]);
    if (rc != 0) fail_msg("ok[%zu] '%s' refused: %s", i, ok[i], jobq_last_error());
  }
  const char *bad[] = {
    "\"\\u12\"", "\"\\u12G4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"",
    "\"\xc0\x80\"", "\"\xc1\xbf\"", "\"\xe0\x80\x80\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
    "\"\xf5\x80\x80\x80\"", "\"\xe2\x82\"", "\"\xe2\x82", "\"\x80\"", "\"\xc2\"", "[1,2", "{\"a\":1",
    "-a", "1e", "1e+", "1.e3", "[,1]", "{,}", "{\"a\" 1}", "\"a\"\"b\"", "tru", "fals", "[1]]", "]",
    "\"\\\"", "\"\\", "[}", "{]", "[1}", "{\"a\":1]", "{1:2}", "{\"a\":1 \"b\":2}", "\x01",
    "\"\x1f\"", "\"\n\"", "\xef\xbb\xbf{}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    jobq_storage_set_error("");
    int rc = jcheck(bad[i]);
    if (rc != JOBQ_EJSON) fail_msg("bad[%zu] '%s' gave %d, not JOBQ_EJSON", i, bad[i], rc);
    assert_non_null(strstr(jobq_last_error(), "not valid JSON"));
  }
}

static void test_json_nesting(void **state) {
  (void)state;
  enum { DEEP = 100, HOSTILE = 1000000 };
  char *s = malloc(2 * DEEP + 1);
  assert_non_null(s);
  for (int i = 0; i < DEEP; i++) {
    s[i] = '[';
    s[2 * DEEP - 1 - i] = ']';
  }
  s[2 * DEEP] = '\0';
  assert_int_equal(jcheck(s), 0);
  s[2 * DEEP - 1] = '\0'; /* one bracket short */
  assert_int_equal(jcheck(s), JOBQ_EJSON);
  free(s);
  /* objects nested in arrays nested in objects */
  char buf[4096];
  size_t n = 0;
  for (int i = 0; i < 50; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"k\":[");
  n += (size_t)snprintf(buf + n, sizeof buf - n, "1");
  for (int i = 0; i < 50; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "]}");
  assert_int_equal(jcheck(buf), 0);
  /* hostile: a million open brackets is refused, without running out of stack */
  char *h = tapi_repeat('[', HOSTILE);
  jobq_storage_set_error("");
  assert_int_equal(jcheck(h), JOBQ_EJSON);
  assert_non_null(strstr(jobq_last_error(), "not valid JSON"));
  free(h);
}

/* ======================================================================== */
/* the event that ends an attempt                                           */
/* ======================================================================== */

/* The core (its own attempts) and the SQLite backend (event rows for other
 * processes, finishes and rescues) take the type from here, so a listener
 * sees the same type whichever process ended the attempt. */
static void test_state_end_event(void **state) {
  (void)state;
  assert_int_equal(jobq__state_end_event(JOBQ_SUCCEEDED), JOBQ_EVENT_SUCCEEDED);
  assert_int_equal(jobq__state_end_event(JOBQ_FAILED), JOBQ_EVENT_FAILED);
  assert_int_equal(jobq__state_end_event(JOBQ_CANCELLED), JOBQ_EVENT_CANCELLED);
  assert_int_equal(jobq__state_end_event(JOBQ_QUEUED), JOBQ_EVENT_RETRYING);
}

/* ======================================================================== */
/* UTF-8                                                                    */
/* ======================================================================== */

static void test_utf8_check(void **state) {
  (void)state;
  for (size_t i = 0; i < TAPI_N_GOOD_UTF8; i++) {
    const char *s = tapi_good_utf8[i];
    assert_int_equal(jobq__utf8_bad_at(s, strlen(s)), strlen(s));
    assert_int_equal(jobq__utf8_check("f", "x", s), 0);
  }
  assert_int_equal(jobq__utf8_check("f", "x", NULL), 0);
  assert_int_equal(jobq__utf8_check("f", "x", ""), 0);
  for (size_t i = 0; i < TAPI_N_BAD_UTF8; i++) {
    const char *s = tapi_bad_utf8[i].s;
    if (jobq__utf8_bad_at(s, strlen(s)) != tapi_bad_utf8[i].at)
      fail_msg("case %zu: bad byte found at %zu, expected %zu", i,
               jobq__utf8_bad_at(s, strlen(s)), tapi_bad_utf8[i].at);
    TAPI_ERR(JOBQ_EINVAL, "f", jobq__utf8_check("f", "the owner", s));
    char want[96];
    snprintf(want, sizeof want, "f: the owner is not valid UTF-8 (byte 0x%02x at offset %zu)",
             (unsigned)(unsigned char)s[tapi_bad_utf8[i].at], tapi_bad_utf8[i].at);
    assert_string_equal(jobq_last_error(), want);
  }
  /* Every code point encodes and checks; every surrogate is refused. */
  for (uint32_t cp = 1; cp <= 0x10ffff; cp++) {
    unsigned char b[5] = {0};
    if (cp < 0x80) b[0] = (unsigned char)cp;
    else if (cp < 0x800) b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f));
    else if (cp < 0x10000)
      b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
      b[2] = (unsigned char)(0x80 | (cp & 0x3f));
    else
      b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
      b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (unsigned char)(0x80 | (cp & 0x3f));
    size_t n = strlen((char *)b);
    int surrogate = cp >= 0xd800 && cp <= 0xdfff;
    if ((jobq__utf8_seq(b, n) == n) == surrogate) fail_msg("U+%04X", (unsigned)cp);
  }
}

static void test_utf8_fix(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
    {"plain", "plain"},
    {"Zo\xc3\xab", "Zo\xc3\xab"},
    {"caf\xe9!", "caf?!"},
    {"\xed\xa0\x80x", "???x"},
    {"\xc0\x80", "??"},
    {"cut \xe6\x97", "cut "},       /* a character cut at the end is dropped */
    {"cut \xf0\x9f\x8e", "cut "},
    {"\xe6\x97 mid", "?? mid"},     /* in the middle it is not a cut */
    {"end \x80", "end ?"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s", cases[i].in);
    jobq__utf8_fix(buf);
    assert_string_equal(buf, cases[i].out);
    assert_int_equal(jobq__utf8_bad_at(buf, strlen(buf)), strlen(buf));
  }
  /* A sentence that quotes bad input, or is cut inside a character, is
   * still valid UTF-8. */
  jobq__err(JOBQ_EINVAL, "f: '%s'", "caf\xe9");
  assert_string_equal(jobq_last_error(), "f: 'caf?'");
  char *big = tapi_repeat('a', 600);
  memcpy(big + 509, "\xe6\x97\xa5", 3);
  jobq_storage_set_error(big);
  assert_int_equal(strlen(jobq_last_error()), 509);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_id_format),
    cmocka_unit_test(test_id_valid),
    cmocka_unit_test(test_id_100k_unique_increasing),
    cmocka_unit_test(test_id_same_ms),
    cmocka_unit_test(test_id_timestamp_prefix),
    cmocka_unit_test(test_id_negative_ms_is_zero),
    cmocka_unit_test(test_id_threads_unique),
    cmocka_unit_test(test_random),
    cmocka_unit_test(test_map_random_100k),
    cmocka_unit_test(test_map_random_small),
    cmocka_unit_test(test_map_empty_and_replace),
    cmocka_unit_test(test_map_wraparound_delete),
    cmocka_unit_test(test_map_reserve),
    cmocka_unit_test(test_map_iterate),
    cmocka_unit_test(test_map_hash),
    cmocka_unit_test(test_heap_random),
    cmocka_unit_test(test_heap_remove_each_position),
    cmocka_unit_test(test_heap_reserve),
    cmocka_unit_test(test_utf8_check),
    cmocka_unit_test(test_utf8_fix),
    cmocka_unit_test(test_json_valid),
    cmocka_unit_test(test_json_invalid),
    cmocka_unit_test(test_json_message_has_parser_text),
    cmocka_unit_test(test_json_edge_cases),
    cmocka_unit_test(test_json_nesting),
    cmocka_unit_test(test_state_end_event),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
