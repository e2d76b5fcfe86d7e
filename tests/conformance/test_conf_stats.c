/* Storage conformance, layer 1 (the vtable; see conf_storage.h): shared
 * stats, stats_add and stats_read. */
#include "conf_storage.h"

#include <math.h>

static void need_stats(conf_store *s) {
  CK(s->ops->stats_add && s->ops->stats_read, "the %s backend has no stats_add/stats_read",
     s->ops->scheme);
}

/* Reads the one record of kind (depth as given). */
static jobq_storage_kind_stats read_kind(conf_store *s, const char *kind, int depth, int64_t now) {
  jobq_storage_kind_stats *v = NULL;
  size_t n = 0;
  CK_OK(s->ops->stats_read(s->st, kind, depth, now, &v, &n));
  CK_INT(n, 1);
  CK_STR(v[0].kind, kind);
  jobq_storage_kind_stats r = v[0];
  free(v);
  return r;
}

static void ks_clear(jobq_storage_kind_stats *r) {
  free(r->kind);
  free(r->started);
}

/* Counters and buckets add up; the moving average weighs each attempt 0.2. */
static void stats_add_adds_up(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  need_stats(&s);
  jobq_storage_stats_delta d[2];
  memset(d, 0, sizeof d);
  d[0].kind = "a";
  d[0].count[JOBQ_STAT_STARTED] = 3;
  d[0].count[JOBQ_STAT_SUCCEEDED] = 2;
  d[0].hist[7] = 2; /* (50, 100] ms */
  d[0].duration_sum_ms = 200;
  d[1].kind = ""; /* kind-less: a key lookup that found nothing */
  d[1].count[JOBQ_STAT_CACHE_MISS] = 4;
  CK_OK(s.ops->stats_add(s.st, d, 2, T));
  jobq_storage_kind_stats r = read_kind(&s, "a", 0, T);
  CK_INT(r.count[JOBQ_STAT_STARTED], 3);
  CK_INT(r.count[JOBQ_STAT_SUCCEEDED], 2);
  CK_INT(r.hist[7], 2);
  CK(r.avg_ms == 100, "average %g after two attempts of 100 ms", r.avg_ms);
  CK(r.duration_sum_ms == 200, "sum %g", r.duration_sum_ms);
  ks_clear(&r);
  memset(d, 0, sizeof d);
  d[0].kind = "a";
  d[0].count[JOBQ_STAT_FAILED] = 1;
  d[0].hist[8] = 1;
  d[0].duration_sum_ms = 200;
  CK_OK(s.ops->stats_add(s.st, d, 1, T + 1));
  r = read_kind(&s, "a", 0, T + 1);
  CK_INT(r.count[JOBQ_STAT_STARTED], 3);
  CK_INT(r.count[JOBQ_STAT_FAILED], 1);
  CK_INT(r.hist[7], 2);
  CK_INT(r.hist[8], 1);
  CK(fabs(r.avg_ms - 120) < 1e-9, "average %g; expected 100 x 0.8 + 200 x 0.2 = 120", r.avg_ms);
  ks_clear(&r);
  /* Every kind: "a" and the kind-less counts. */
  jobq_storage_kind_stats *v = NULL;
  size_t n = 0;
  CK_OK(s.ops->stats_read(s.st, NULL, 0, T + 1, &v, &n));
  CK_INT(n, 2);
  int64_t misses = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i].kind[0] == '\0') misses = v[i].count[JOBQ_STAT_CACHE_MISS];
    ks_clear(&v[i]);
  }
  free(v);
  CK_INT(misses, 4);
  /* A kind nobody counted: one record of zeros. */
  r = read_kind(&s, "nothing", 1, T);
  CK_INT(r.count[JOBQ_STAT_STARTED], 0);
  CK_INT(r.queued, 0);
  CK_INT(r.concurrency, 0);
  CK(r.avg_ms == 0, "average %g of a kind without history", r.avg_ms);
  ks_clear(&r);
  cs_close(&s);
}

/* A publisher's concurrency and start times hold until its expiry, are
 * replaced by its next publication and withdrawn by concurrency 0. */
static void stats_live_publication_expires(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  need_stats(&s);
  int64_t started[2] = {T - 300, T - 100};
  jobq_storage_stats_delta d;
  memset(&d, 0, sizeof d);
  d.kind = "a";
  d.concurrency = 3;
  d.started = started;
  d.n_started = 2;
  d.until = T + 5000;
  CK_OK(s.ops->stats_add(s.st, &d, 1, T));
  jobq_storage_kind_stats r = read_kind(&s, "a", 0, T + 5000);
  CK_INT(r.concurrency, 3);
  CK_INT(r.n_started, 2);
  int64_t lo = r.n_started == 2 ? (r.started[0] < r.started[1] ? r.started[0] : r.started[1]) : 0;
  CK_INT(lo, T - 300);
  ks_clear(&r);
  r = read_kind(&s, "a", 0, T + 5001); /* expired */
  CK_INT(r.concurrency, 0);
  CK_INT(r.n_started, 0);
  ks_clear(&r);
  /* renewed, with one attempt running now */
  d.n_started = 1;
  d.until = T + 9000;
  CK_OK(s.ops->stats_add(s.st, &d, 1, T + 4000));
  r = read_kind(&s, "a", 0, T + 6000);
  CK_INT(r.concurrency, 3);
  CK_INT(r.n_started, 1);
  ks_clear(&r);
  /* withdrawn */
  memset(&d, 0, sizeof d);
  d.kind = "a";
  CK_OK(s.ops->stats_add(s.st, &d, 1, T + 6000));
  r = read_kind(&s, "a", 0, T + 6000);
  CK_INT(r.concurrency, 0);
  CK_INT(r.n_started, 0);
  ks_clear(&r);
  cs_close(&s);
}

/* Depth: due jobs (and scheduled ones that came due), scheduled ones, and
 * since when the first-submitted due job waits. */
static void stats_read_depth(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  need_stats(&s);
  char a1[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE], a3[JOBQ_ID_SIZE], a4[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, T + 50, a1); /* scheduled, comes due at T + 50 */
  cs_add(&s, T + 10, "a", 0, 0, a2);
  cs_add(&s, T + 20, "a", 5, 0, a3);
  cs_add(&s, T + 30, "a", 0, T + 10000, a4);
  cs_add(&s, T + 40, "b", 0, 0, b1);
  jobq_storage_kind_stats r = read_kind(&s, "a", 1, T + 40);
  CK_INT(r.queued, 2);
  CK_INT(r.scheduled, 2);
  CK_INT(r.oldest_queued_at, T + 10);
  ks_clear(&r);
  r = read_kind(&s, "a", 1, T + 60); /* a1 came due: first submitted */
  CK_INT(r.queued, 3);
  CK_INT(r.scheduled, 1);
  CK_INT(r.oldest_queued_at, T + 50);
  ks_clear(&r);
  r = read_kind(&s, "a", 0, T + 60); /* without depth: none counted */
  CK_INT(r.queued, 0);
  CK_INT(r.scheduled, 0);
  ks_clear(&r);
  /* every kind, with depth: a and b */
  jobq_storage_kind_stats *v = NULL;
  size_t n = 0;
  CK_OK(s.ops->stats_read(s.st, NULL, 1, T + 60, &v, &n));
  CK_INT(n, 2);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(v[i].kind, "b") == 0) CK_INT(v[i].queued, 1);
    ks_clear(&v[i]);
  }
  free(v);
  /* claimed: no longer queued */
  claim_kind(&s, "a", T + 60, a3);
  r = read_kind(&s, "a", 1, T + 60);
  CK_INT(r.queued, 2);
  ks_clear(&r);
  cs_close(&s);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(stats_add_adds_up),
    CONF_TEST(stats_live_publication_expires),
    CONF_TEST(stats_read_depth),
  };
  return conf_run("storage vtable: shared stats", tests, sizeof tests / sizeof tests[0]);
}
