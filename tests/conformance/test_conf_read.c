/* Storage conformance, layer 1 (the vtable; see conf_storage.h): get: position, list, next_run_at. */
#include "conf_storage.h"

/* ---- get: position ------------------------------------------------------------------------- */

static int64_t pos_of(conf_store *s, const char *id, int64_t now) {
  jobq_storage_job j;
  cs_get(s, id, now, &j);
  int64_t p = j.position;
  jobq_storage_job_clear(&j);
  return p;
}

static void get_position_counts_jobs_ahead(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], j3[JOBQ_ID_SIZE], j4[JOBQ_ID_SIZE], j5[JOBQ_ID_SIZE],
      j6[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, j1);
  cs_add(&s, T, "a", 0, 0, j2);
  cs_add(&s, T, "a", 5, 0, j3);
  cs_add(&s, T, "a", 0, T + 100, j4);
  cs_add(&s, T, "b", 0, 0, j5); /* another kind: its own line */
  cs_add(&s, T, "a", -1, 0, j6);
  CK_INT(pos_of(&s, j3, T), 0);
  CK_INT(pos_of(&s, j1, T), 1);
  CK_INT(pos_of(&s, j2, T), 2);
  CK_INT(pos_of(&s, j6, T), 3);
  CK_INT(pos_of(&s, j4, T), -1);
  CK_INT(pos_of(&s, j5, T), 0);
  const char *ka[] = {"a"};
  conf_claim cl = {0};
  cl.kinds = ka;
  cl.n_kinds = 1;
  cl.now = T;
  jobq_storage_job out;
  CK_INT(cs_claim_req(&s, cl, &out), 1);
  CK_STR(out.id, j3);
  jobq_storage_job_clear(&out);
  CK_INT(pos_of(&s, j3, T), -1); /* running */
  CK_INT(pos_of(&s, j1, T), 0);
  CK_INT(pos_of(&s, j2, T), 1);
  CK_INT(pos_of(&s, j6, T), 2);
  /* j4 came due (claimed or not): in line behind j1, j2 (FIFO), before j6. */
  CK_INT(pos_of(&s, j4, T + 100), 2);
  int st = -1;
  CK_OK(s.ops->cancel(s.st, j1, T + 100, &st, NULL));
  CK_INT(pos_of(&s, j1, T + 100), -1);
  CK_INT(pos_of(&s, j2, T + 100), 0);
  CK_INT(pos_of(&s, j4, T + 100), 1);
  cs_close(&s);
}

/* A scheduled job that came due but that no claim has looked at yet is in
 * line like any other due job: jobs behind it count it. */
static void get_position_counts_due_scheduled_ahead(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char d[JOBQ_ID_SIZE], e[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, T + 100, d); /* stored first, due at T + 100 */
  cs_add(&s, T, "a", 0, 0, e);       /* stored second, due now */
  CK_INT(pos_of(&s, e, T), 0);
  CK_INT(pos_of(&s, d, T), -1);
  /* At T + 200 both are due; d is ahead of e (same priority, stored first),
   * and the next claim takes d. */
  CK_INT(pos_of(&s, d, T + 200), 0);
  int64_t pe = pos_of(&s, e, T + 200);
  CK(pe == 1, "position of the second job is %" PRId64 " at T+200; expected 1: the job stored "
     "before it came due at T+100 (and the next claim takes it first)", pe);
  cs_claim_expect(&s, T + 200, d);
  CK_INT(pos_of(&s, e, T + 200), 0);
  cs_close(&s);
}

/* Deep in line, position is exact below 1,000 jobs ahead and an estimate
 * beyond (jobq_job_position.md): never less than the true count, and more
 * only by jobs stored within the spans it measures (another kind, another
 * priority, or gone from the line). 5,000 jobs of kind a at priority 0 with
 * a job of kind b after every fourth, 1,200 of priority 5 stored after
 * them, some claimed and some cancelled. */
#define DEEP_EXACT 1000
static void get_position_deep_is_exact_then_bounded(conf_case *c) {
  enum { NA = 5000, NH = 1200, NB = NA / 4, N = NA + NB + NH };
  conf_store s;
  cs_open(c, &s);
  conf_spec *spec = calloc(N, sizeof *spec);
  char(*ids)[JOBQ_ID_SIZE] = calloc(N, sizeof *ids);
  int *live = calloc(N, sizeof *live);
  CK(spec && ids && live, "out of memory");
  size_t n = 0;
  for (int i = 0; i < NA; i++) {
    spec[n++].kind = "a";
    if (i % 4 == 3) spec[n++].kind = "b";
  }
  for (int i = 0; i < NH; i++) {
    spec[n].kind = "a";
    spec[n++].priority = 5;
  }
  CK_OK(cs_insert_n(&s, T, spec, n, ids, NULL));
  for (size_t i = 0; i < n; i++) live[i] = strcmp(spec[i].kind, "a") == 0;
  /* Claim the 1,200 of priority 5 but 300, and cancel every third a-job of
   * priority 0 from the 2,000th on: holes the seq arithmetic cannot see. */
  const char *ka[] = {"a"};
  conf_claim cl = {0};
  cl.kinds = ka;
  cl.n_kinds = 1;
  cl.now = T;
  for (int i = 0; i < NH - 300; i++) {
    jobq_storage_job out;
    CK_INT(cs_claim_req(&s, cl, &out), 1);
    jobq_storage_job_clear(&out);
  }
  for (size_t i = NA + NB; i < NA + NB + NH - 300; i++) live[i] = 0;
  int a_seen = 0;
  for (size_t i = 0; i < NA + NB; i++) {
    if (!live[i]) continue;
    if (++a_seen >= 2000 && a_seen % 3 == 0) {
      int st = -1;
      CK_OK(s.ops->cancel(s.st, ids[i], T, &st, NULL));
      live[i] = 0;
    }
  }
  /* The true position of each live a-job, and the most the estimate may
   * add: every job stored between the oldest live one of its priority and
   * it, plus the whole span of the higher priority's live jobs. */
  size_t first_p0 = 0, first_p5 = NA + NB + NH - 300, last_p5 = N - 1;
  while (!live[first_p0]) first_p0++;
  int64_t ahead0 = 0, hi = 300;
  int checked = 0;
  for (size_t i = 0; i < N; i++) {
    if (!live[i]) continue;
    int64_t want = spec[i].priority == 5 ? (int64_t)(i - first_p5) : hi + ahead0;
    int64_t most = spec[i].priority == 5 ? (int64_t)(i - first_p5)
                                         : (int64_t)(last_p5 - first_p5 + 1) + (int64_t)(i - first_p0);
    if (spec[i].priority == 0) ahead0++;
    if (i % 37 != 0 && want != DEEP_EXACT - 1 && want != DEEP_EXACT) continue;
    int64_t got = pos_of(&s, ids[i], T);
    checked++;
    if (want < DEEP_EXACT) {
      CK(got == want, "position of a job with %" PRId64 " ahead is %" PRId64 "; below %d it is exact",
         want, got, DEEP_EXACT);
    } else {
      CK(got >= want && got <= most,
         "position of a job with %" PRId64 " ahead is %" PRId64 "; from %d on it is an estimate "
         "between the true count and %" PRId64 " (the jobs stored within the spans it measures)",
         want, got, DEEP_EXACT, most);
    }
  }
  CK(checked > 100, "only %d positions checked", checked);
  free(spec);
  free(ids);
  free(live);
  cs_close(&s);
}

/* ---- list ------------------------------------------------------------------------------------ */

/* Lists every page of f (limit per page); checks each page's size, the
 * `more` flag, and that no id repeats. Returns the ids in order. */
static size_t list_all(conf_store *s, jobq_storage_filter f, char (*ids)[JOBQ_ID_SIZE], size_t cap,
                       int *pages) {
  size_t total = 0;
  char cursor[JOBQ_ID_SIZE];
  *pages = 0;
  f.cursor = NULL;
  for (;;) {
    jobq_storage_job *out = NULL;
    size_t n = 99999;
    int more = -1;
    CK_OK(s->ops->list(s->st, &f, &out, &n, &more));
    (*pages)++;
    CK(n <= (size_t)f.limit, "a page of %zu jobs for limit %d", n, f.limit);
    CK(more == 0 || more == 1, "more is %d", more);
    CK(!more || n == (size_t)f.limit, "more set on a page of %zu < limit %d", n, f.limit);
    for (size_t i = 0; i < n; i++) {
      CK(total < cap, "more than %zu jobs listed", cap);
      for (size_t k = 0; k < total; k++)
        CK(strcmp(ids[k], out[i].id) != 0, "job %s listed twice (page %d)", out[i].id, *pages);
      memcpy(ids[total++], out[i].id, JOBQ_ID_SIZE);
      CK_INT(out[i].position, -1);
    }
    if (n) memcpy(cursor, out[n - 1].id, JOBQ_ID_SIZE);
    for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&out[i]);
    free(out);
    if (!more) break;
    CK(n > 0, "more set on an empty page");
    f.cursor = cursor;
    CK(*pages < 1000, "paging does not end");
  }
  return total;
}

static void list_filters(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  /* 12 jobs: owners alice/bob/none, kinds a/b, states mixed. */
  char ids[12][JOBQ_ID_SIZE];
  static const char *const owner[] = {"alice", "bob", NULL};
  for (int i = 0; i < 12; i++) {
    conf_spec sp = {0};
    sp.kind = i % 2 ? "b" : "a";
    sp.owner = owner[i % 3];
    sp.run_at = i == 11 ? T + 1000 : 0; /* one scheduled: still "queued" */
    cs_insert(&s, T, sp, ids[i]);
  }
  /* 0: running; 1: succeeded; 2: failed; 3: cancelled; the rest queued. */
  cs_claim_expect(&s, T, ids[0]);
  cs_claim_expect(&s, T, ids[1]);
  CK_INT(cs_finish(&s, ids[1], 1, T, FIN_OK), JOBQ_SUCCEEDED);
  cs_claim_expect(&s, T, ids[2]);
  CK_INT(cs_finish(&s, ids[2], 1, T, fin_of(JOBQ_OUTCOME_FAILED, "listed error")), JOBQ_FAILED);
  int st;
  CK_OK(s.ops->cancel(s.st, ids[3], T, &st, NULL));

  char got[20][JOBQ_ID_SIZE];
  int pages;
  jobq_storage_filter f = {NULL, NULL, -1, 100, 1, NULL};
  /* Everything, newest first. */
  CK_INT(list_all(&s, f, got, 20, &pages), 12);
  for (int i = 0; i < 12; i++) CK_STR(got[i], ids[11 - i]);
  /* Owner. */
  f.owner = "alice";
  CK_INT(list_all(&s, f, got, 20, &pages), 4);
  for (int i = 0; i < 4; i++) CK_STR(got[i], ids[9 - 3 * i]);
  f.owner = "nobody";
  CK_INT(list_all(&s, f, got, 20, &pages), 0);
  /* Kind. */
  f.owner = NULL;
  f.kind = "b";
  f.newest_first = 0;
  CK_INT(list_all(&s, f, got, 20, &pages), 6);
  for (int i = 0; i < 6; i++) CK_STR(got[i], ids[2 * i + 1]);
  /* Owner and kind. */
  f.owner = "bob";
  CK_INT(list_all(&s, f, got, 20, &pages), 2);
  CK_STR(got[0], ids[1]);
  CK_STR(got[1], ids[7]);
  /* States. */
  f.owner = NULL;
  f.kind = NULL;
  static const int states[] = {JOBQ_QUEUED, JOBQ_RUNNING, JOBQ_SUCCEEDED, JOBQ_FAILED,
                               JOBQ_CANCELLED};
  static const size_t counts[] = {8, 1, 1, 1, 1};
  for (int i = 0; i < 5; i++) {
    f.state = states[i];
    size_t n = list_all(&s, f, got, 20, &pages);
    CK(n == counts[i], "state %s lists %zu jobs; expected %zu", jobq_state_name(states[i]), n,
       counts[i]);
  }
  f.state = JOBQ_QUEUED;
  list_all(&s, f, got, 20, &pages);
  CK_STR(got[0], ids[4]);
  CK_STR(got[7], ids[11]);
  /* Records are whole: the failed job with its attempt log. */
  f.state = JOBQ_FAILED;
  jobq_storage_job *out = NULL;
  size_t n = 0;
  int more = 0;
  CK_OK(s.ops->list(s.st, &f, &out, &n, &more));
  CK_INT(n, 1);
  if (n == 1) {
    CK_STR(out[0].id, ids[2]);
    CK_STR(out[0].kind, "a");
    CK_STR(out[0].owner, NULL);
    CK_STR(out[0].payload, "{}");
    CK_STR(out[0].error, "listed error");
    CK_INT(out[0].attempts, 1);
    CK_INT(out[0].n_attempt_log, 1);
    if (out[0].n_attempt_log == 1) CK_STR(out[0].attempt_log[0].error, "listed error");
    jobq_storage_job_clear(&out[0]);
  }
  free(out);
  cs_close(&s);
}

static void list_paging(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  enum { N = 23 };
  char ids[N][JOBQ_ID_SIZE];
  for (int i = 0; i < N; i++) {
    conf_spec sp = {0};
    sp.owner = i % 2 ? "odd" : "even";
    sp.priority = i % 5; /* priority does not change list order */
    cs_insert(&s, T, sp, ids[i]);
  }
  char got[N + 5][JOBQ_ID_SIZE];
  int pages;
  static const int limits[] = {1, 5, 7, 23, 24, 1000};
  for (size_t li = 0; li < sizeof limits / sizeof limits[0]; li++) {
    for (int newest = 0; newest <= 1; newest++) {
      jobq_storage_filter f = {NULL, NULL, -1, limits[li], newest, NULL};
      size_t n = list_all(&s, f, got, N + 5, &pages);
      CK(n == N, "limit %d newest_first %d: listed %zu of %d jobs", limits[li], newest, n, N);
      for (int i = 0; i < N; i++) CK_STR(got[i], ids[newest ? N - 1 - i : i]);
      int want_pages = (N + limits[li] - 1) / limits[li];
      CK(pages == want_pages, "limit %d: %d pages for %d jobs (more must be 0 on the last)",
         limits[li], pages, N);
    }
  }
  /* Paging with a filter: the cursor of a page may name any job. */
  jobq_storage_filter f = {"odd", NULL, -1, 4, 0, NULL};
  size_t n = list_all(&s, f, got, N + 5, &pages);
  CK_INT(n, 11);
  for (int i = 0; i < 11; i++) CK_STR(got[i], ids[2 * i + 1]);
  /* A cursor that names a job the filter does not select still works. */
  f.owner = "odd";
  f.cursor = ids[4];
  f.limit = 100;
  jobq_storage_job *out = NULL;
  int more = 0;
  CK_OK(s.ops->list(s.st, &f, &out, &n, &more));
  CK_INT(n, 9); /* 5, 7, ..., 21 */
  if (n) CK_STR(out[0].id, ids[5]);
  for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&out[i]);
  free(out);
  /* After the last job: an empty page, no more. */
  f.owner = NULL;
  f.cursor = ids[N - 1];
  f.newest_first = 0;
  out = NULL;
  more = 1;
  n = 99;
  CK_OK(s.ops->list(s.st, &f, &out, &n, &more));
  CK_INT(n, 0);
  CK_INT(more, 0);
  free(out);
  /* Jobs stored between pages show up at the end of a FIFO walk, never twice. */
  f.cursor = NULL;
  f.limit = 10;
  out = NULL;
  CK_OK(s.ops->list(s.st, &f, &out, &n, &more));
  CK_INT(n, 10);
  CK_INT(more, 1);
  char cur[JOBQ_ID_SIZE];
  memcpy(cur, out[9].id, JOBQ_ID_SIZE);
  for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&out[i]);
  free(out);
  char extra[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, extra);
  f.cursor = cur;
  f.limit = 100;
  out = NULL;
  CK_OK(s.ops->list(s.st, &f, &out, &n, &more));
  CK_INT(n, N - 10 + 1);
  if (n == N - 10 + 1) {
    CK_STR(out[0].id, ids[10]);
    CK_STR(out[n - 1].id, extra);
  }
  for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&out[i]);
  free(out);
  cs_close(&s);
}

static void list_bad_cursor(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  jobq__id_new(nope, T);
  static const char *const bad[] = {NULL, "not a cursor", ""};
  for (int i = 0; i < 3; i++) {
    for (int newest = 0; newest <= 1; newest++) {
      jobq_storage_filter f = {NULL, NULL, -1, 10, newest, bad[i] ? bad[i] : nope};
      jobq_storage_job *out = NULL;
      size_t n = 0;
      int more = 0;
      jobq_storage_set_error("");
      int rc = s.ops->list(s.st, &f, &out, &n, &more);
      CK(rc == JOBQ_EINVAL, "list with cursor '%s' returned %d (%s) and %zu jobs; expected "
         "JOBQ_EINVAL", f.cursor, rc, jobq_err_name(rc), n);
      CK(jobq_last_error()[0] != '\0', "no error sentence for a bad cursor");
      if (rc == 0) {
        for (size_t k = 0; k < n; k++) jobq_storage_job_clear(&out[k]);
        free(out);
      }
    }
  }
  cs_close(&s);
}

/* ---- next_run_at ------------------------------------------------------------------------------- */

static void next_run_at_earliest_scheduled(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  int64_t next = 0;
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T, &next));
  CK_INT(next, INT64_MAX);
  char x[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, x); /* due now: not counted */
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T, &next));
  CK_INT(next, INT64_MAX);
  cs_add(&s, T, "a", 0, T + 300, x);
  cs_add(&s, T, "b", 0, T + 200, x);
  cs_add(&s, T, "a", 0, T + 250, x);
  cs_add(&s, T, "c", 0, T + 900, x);
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T, &next));
  CK_INT(next, T + 200);
  const char *ka[] = {"a"};
  CK_OK(s.ops->next_run_at(s.st, ka, 1, T, &next));
  CK_INT(next, T + 250);
  const char *kac[] = {"c", "a"};
  CK_OK(s.ops->next_run_at(s.st, kac, 2, T, &next));
  CK_INT(next, T + 250);
  const char *kz[] = {"zzz"};
  CK_OK(s.ops->next_run_at(s.st, kz, 1, T, &next));
  CK_INT(next, INT64_MAX);
  /* Claimed, retried and running jobs. */
  const char *kc[] = {"c"};
  CK_OK(s.ops->next_run_at(s.st, kc, 1, T, &next));
  CK_INT(next, T + 900);
  char r[JOBQ_ID_SIZE];
  cs_add(&s, T, "r", 0, 0, r);
  claim_kind(&s, "r", T, r);
  const char *kr[] = {"r"};
  CK_OK(s.ops->next_run_at(s.st, kr, 1, T, &next));
  CK_INT(next, INT64_MAX);
  conf_fin rf = fin_of(JOBQ_OUTCOME_RETRY, "later");
  rf.run_at = T + 50;
  CK_INT(cs_finish(&s, r, 1, T, rf), JOBQ_QUEUED);
  CK_OK(s.ops->next_run_at(s.st, kr, 1, T, &next));
  CK_INT(next, T + 50);
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T, &next));
  CK_INT(next, T + 50);
  cs_close(&s);
}

static const char *rel_t(int64_t t, char *buf, size_t cap) {
  if (t == INT64_MAX) snprintf(buf, cap, "INT64_MAX (none)");
  else snprintf(buf, cap, "T%+" PRId64, t - T);
  return buf;
}

/* Jobs that came due are not "not yet due": the answer is the earliest of
 * those still in the future, whether or not a claim has looked since. */
static void next_run_at_skips_jobs_already_due(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char x[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, T + 100, x);
  cs_add(&s, T, "a", 0, T + 200, x);
  cs_add(&s, T, "b", 0, T + 400, x);
  int64_t next = 0;
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T + 150, &next));
  char buf[64];
  CK(next == T + 200, "next_run_at(any kind, now = T+150) = %s; expected T+200 (a job of kind a "
     "is due at T+200; the one at T+100 is already due)", rel_t(next, buf, sizeof buf));
  const char *ka[] = {"a"};
  CK_OK(s.ops->next_run_at(s.st, ka, 1, T + 150, &next));
  CK(next == T + 200, "next_run_at(kind a, now = T+150) = %s; expected T+200",
     rel_t(next, buf, sizeof buf));
  cs_close(&s);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(get_position_counts_jobs_ahead),
    CONF_TEST(get_position_counts_due_scheduled_ahead),
    CONF_TEST(get_position_deep_is_exact_then_bounded),
    CONF_TEST(list_filters),
    CONF_TEST(list_paging),
    CONF_TEST(list_bad_cursor),
    CONF_TEST(next_run_at_earliest_scheduled),
    CONF_TEST(next_run_at_skips_jobs_already_due),
  };
  return conf_run("storage vtable: get: position, list, next_run_at", tests, sizeof tests / sizeof tests[0]);
}
