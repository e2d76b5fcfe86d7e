/* Storage conformance, layer 1 (the vtable; see conf_storage.h): prune_kind,
 * the retention of one kind (version 3). */
#include "conf_storage.h"

/* A job of kind (owner, key may be NULL) created at `at`, claimed then and
 * ended with outcome at fin; its id goes to id. */
static void ended(conf_store *s, const char *kind, const char *owner, const char *key, int64_t ttl,
                  int64_t at, int64_t fin, int outcome, char *id) {
  conf_spec sp = {0};
  sp.kind = kind;
  sp.owner = owner;
  sp.dedupe_key = key;
  sp.dedupe_ttl = ttl;
  cs_insert(s, at, sp, id);
  claim_kind(s, kind, at, id);
  conf_fin f = outcome == JOBQ_OUTCOME_SUCCEEDED ? FIN_OK : fin_of(outcome, "no");
  int want = outcome == JOBQ_OUTCOME_SUCCEEDED ? JOBQ_SUCCEEDED
             : outcome == JOBQ_OUTCOME_FAILED  ? JOBQ_FAILED
                                               : JOBQ_CANCELLED;
  CK_INT(cs_finish(s, id, 1, fin, f), want);
}

static int gone(conf_store *s, const char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  int rc = s->ops->get(s->st, id, T, &j);
  jobq_storage_job_clear(&j);
  return rc == JOBQ_ENOTFOUND;
}

/* Calls prune_kind until it has nothing more; returns how many it pruned,
 * and how many calls it took in *calls. */
static size_t prune_all(conf_store *s, const char *kind, int64_t before, size_t max, int keep,
                        int *calls) {
  size_t total = 0;
  int n_calls = 0;
  for (;;) {
    jobq_storage_prune p = {kind, before, max, keep, 0};
    char(*ids)[JOBQ_ID_SIZE] = NULL;
    size_t n = 99;
    CK_OK(s->ops->prune_kind(s->st, &p, &ids, &n));
    CK(n <= max, "prune_kind deleted %zu jobs; max was %zu", n, max);
    CK((n == 0) == (ids == NULL), "ids must be NULL exactly when nothing was pruned");
    free(ids);
    total += n;
    n_calls++;
    CK(n_calls < 10000, "prune_kind keeps saying more");
    if (!p.more) break;
  }
  if (calls) *calls = n_calls;
  return total;
}

static void need_prune_kind(conf_store *s) {
  CK(s->ops->version >= 3 && s->ops->prune_kind, "the backend has no prune_kind");
}

/* Only finished jobs of the kind that finished before the cut-off go;
 * succeeded jobs whose key lives past it stay; ids are reported. */
static void prune_kind_kind_and_cutoff(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  need_prune_kind(&s);
  char ok_old[JOBQ_ID_SIZE], failed_old[JOBQ_ID_SIZE], cancelled_old[JOBQ_ID_SIZE],
      ok_new[JOBQ_ID_SIZE], other[JOBQ_ID_SIZE], queued[JOBQ_ID_SIZE], running[JOBQ_ID_SIZE],
      delayed[JOBQ_ID_SIZE], live_key[JOBQ_ID_SIZE], dead_key[JOBQ_ID_SIZE],
      until_key[JOBQ_ID_SIZE];
  ended(&s, "r", NULL, NULL, 0, T, T + 10, JOBQ_OUTCOME_SUCCEEDED, ok_old);
  ended(&s, "r", NULL, NULL, 0, T, T + 20, JOBQ_OUTCOME_FAILED, failed_old);
  ended(&s, "r", NULL, NULL, 0, T, T + 30, JOBQ_OUTCOME_CANCELLED, cancelled_old);
  ended(&s, "r", NULL, NULL, 0, T, T + 2000, JOBQ_OUTCOME_SUCCEEDED, ok_new);
  ended(&s, "other", NULL, NULL, 0, T, T + 10, JOBQ_OUTCOME_SUCCEEDED, other);
  /* keys: live past the cut-off (ttl), expired before it, absolute past it */
  ended(&s, "r", NULL, "k-live", 5000, T, T + 10, JOBQ_OUTCOME_SUCCEEDED, live_key);
  ended(&s, "r", NULL, "k-dead", 100, T, T + 10, JOBQ_OUTCOME_SUCCEEDED, dead_key);
  ended(&s, "r", NULL, "k-until", -(T + 9000), T, T + 10, JOBQ_OUTCOME_SUCCEEDED, until_key);
  cs_add(&s, T, "r", 0, 0, running);
  claim_kind(&s, "r", T, running);
  cs_add(&s, T, "r", 0, 0, queued);
  cs_add(&s, T, "r", 0, T + 100000, delayed);

  jobq_storage_prune p = {"r", T + 1000, 100, 0, 0};
  char(*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 0;
  CK_OK(s.ops->prune_kind(s.st, &p, &ids, &n));
  CK_INT(p.more, 0);
  CK_INT(n, 4);
  CK(ids != NULL, "ids of the pruned jobs");
  const char *want[] = {ok_old, failed_old, cancelled_old, dead_key};
  for (size_t w = 0; w < 4; w++) {
    int saw = 0;
    for (size_t i = 0; i < n; i++) saw |= strcmp(ids[i], want[w]) == 0;
    CK(saw, "job %zu (%s) was not reported pruned", w, want[w]);
    CK(gone(&s, want[w]), "job %zu (%s) is still stored", w, want[w]);
  }
  free(ids);
  CK_INT(cs_state(&s, ok_new, T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, other, T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, live_key, T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, until_key, T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, running, T), JOBQ_RUNNING);
  CK_INT(cs_state(&s, queued, T), JOBQ_QUEUED);
  CK_INT(cs_state(&s, delayed, T), JOBQ_QUEUED);
  /* A kind nobody stored, and NULL ids: nothing, no error. */
  jobq_storage_prune none = {"nobody", T + 1000000, 100, 0, 0};
  CK_OK(s.ops->prune_kind(s.st, &none, NULL, &n));
  CK_INT(n, 0);
  /* Later cut-offs: the keys expire in turn, the jobs go. */
  CK_INT(prune_all(&s, "r", T + 4000, 100, 0, NULL), 1); /* ok_new; k-live lives to T+5010 */
  CK_INT(prune_all(&s, "r", T + 9500, 100, 0, NULL), 2); /* k-live, k-until */
  CK_INT(cs_state(&s, other, T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, running, T), JOBQ_RUNNING);
  CK_INT(prune_all(&s, "other", T + 9500, 100, 0, NULL), 1);
  cs_close(&s);
}

/* max bounds one call; calls go on (more) until every old job is gone,
 * also past a long run of jobs the kind keeps (other kinds, unfinished). */
static void prune_kind_batches(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  need_prune_kind(&s);
  char id[JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++) ended(&s, "r", NULL, NULL, 0, T, T + 10, JOBQ_OUTCOME_SUCCEEDED, id);
  /* 6,000 queued jobs of another kind between them and the next ones */
  enum { FILL = 6000 };
  conf_spec *sp = calloc(FILL, sizeof *sp);
  char(*fill)[JOBQ_ID_SIZE] = calloc(FILL, sizeof *fill);
  assert_non_null(sp);
  assert_non_null(fill);
  for (int i = 0; i < FILL; i++) sp[i].kind = "filler";
  CK_OK(cs_insert_n(&s, T, sp, FILL, fill, NULL));
  for (int i = 0; i < 7; i++) ended(&s, "r", NULL, NULL, 0, T, T + 10, JOBQ_OUTCOME_SUCCEEDED, id);
  /* one call takes at most max */
  jobq_storage_prune p = {"r", T + 1000, 3, 0, 0};
  size_t n = 0;
  char(*ids)[JOBQ_ID_SIZE] = NULL;
  CK_OK(s.ops->prune_kind(s.st, &p, &ids, &n));
  CK_INT(n, 3);
  CK_INT(p.more, 1);
  free(ids);
  /* max 0: nothing */
  jobq_storage_prune z = {"r", T + 1000, 0, 0, 0};
  CK_OK(s.ops->prune_kind(s.st, &z, NULL, &n));
  CK_INT(n, 0);
  int calls = 0;
  CK_INT(prune_all(&s, "r", T + 1000, 3, 0, &calls), 9);
  CK(calls >= 3, "9 jobs at 3 per call took %d calls", calls);
  CK(gone(&s, id), "the last job is gone");
  /* a fresh pass finds nothing more, and the fillers are all there */
  CK_INT(prune_all(&s, "r", T + 1000, 200, 0, NULL), 0);
  CK_INT(cs_state(&s, fill[0], T), JOBQ_QUEUED);
  CK_INT(cs_state(&s, fill[FILL - 1], T), JOBQ_QUEUED);
  free(sp);
  free(fill);
  cs_close(&s);
}

/* keep_per_owner: each owner's newest n finished jobs of the kind stay,
 * however old; other kinds' and unfinished jobs do not count as newest. */
static void prune_kind_keep_per_owner(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  need_prune_kind(&s);
  char a[5][JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], none[JOBQ_ID_SIZE], a_other[JOBQ_ID_SIZE],
      a_queued[JOBQ_ID_SIZE];
  for (int i = 0; i < 5; i++)
    ended(&s, "r", "alice", NULL, 0, T + i, T + 10 + i,
          i == 1 ? JOBQ_OUTCOME_FAILED : JOBQ_OUTCOME_SUCCEEDED, a[i]);
  ended(&s, "r", "bob", NULL, 0, T + 5, T + 15, JOBQ_OUTCOME_SUCCEEDED, b);
  ended(&s, "r", NULL, NULL, 0, T + 6, T + 16, JOBQ_OUTCOME_SUCCEEDED, none);
  ended(&s, "other", "alice", NULL, 0, T + 7, T + 17, JOBQ_OUTCOME_SUCCEEDED, a_other);
  conf_spec sp = {0};
  sp.kind = "r";
  sp.owner = "alice";
  sp.run_at = T + 100000;
  cs_insert(&s, T + 8, sp, a_queued);
  CK_INT(prune_all(&s, "r", T + 1000, 100, 2, NULL), 4); /* a[0..2] and the ownerless one */
  for (int i = 0; i < 3; i++) CK(gone(&s, a[i]), "alice's job %d is still stored", i);
  CK(gone(&s, none), "the ownerless job is still stored");
  CK_INT(cs_state(&s, a[3], T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, a[4], T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, b, T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, a_other, T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, a_queued, T), JOBQ_QUEUED);
  /* keep 1: alice's older one goes too; again: nothing more */
  CK_INT(prune_all(&s, "r", T + 1000, 100, 1, NULL), 1);
  CK(gone(&s, a[3]), "alice's second newest is still stored");
  CK_INT(prune_all(&s, "r", T + 1000, 100, 1, NULL), 0);
  CK_INT(cs_state(&s, a[4], T), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s, b, T), JOBQ_SUCCEEDED);
  /* without keep, the rest goes */
  CK_INT(prune_all(&s, "r", T + 1000, 100, 0, NULL), 2);
  cs_close(&s);
}

/* Jobs created at or after the cut-off cannot have finished before it:
 * even a pass cut short there leaves nothing old behind for the next one,
 * which begins at the oldest job again. */
static void prune_kind_new_pass_from_oldest(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  need_prune_kind(&s);
  char early[JOBQ_ID_SIZE], later[JOBQ_ID_SIZE], queued_old[JOBQ_ID_SIZE];
  cs_add(&s, T, "r", 0, T + 2500, queued_old);
  ended(&s, "r", NULL, NULL, 0, T + 1, T + 10, JOBQ_OUTCOME_SUCCEEDED, early);
  ended(&s, "r", NULL, NULL, 0, T + 2000, T + 2010, JOBQ_OUTCOME_SUCCEEDED, later);
  CK_INT(prune_all(&s, "r", T + 1000, 100, 0, NULL), 1);
  /* the queued job, older than both, finishes now: the next pass finds it */
  claim_kind(&s, "r", T + 3000, queued_old);
  CK_INT(cs_finish(&s, queued_old, 1, T + 3000, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(prune_all(&s, "r", T + 5000, 100, 0, NULL), 2);
  CK(gone(&s, queued_old) && gone(&s, later), "both are gone");
  cs_close(&s);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(prune_kind_kind_and_cutoff),
    CONF_TEST(prune_kind_batches),
    CONF_TEST(prune_kind_keep_per_owner),
    CONF_TEST(prune_kind_new_pass_from_oldest),
  };
  return conf_run("storage vtable: prune_kind (retention)", tests, sizeof tests / sizeof tests[0]);
}
