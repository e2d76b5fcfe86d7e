/* Storage conformance, layer 1: every backend through its vtable
 * (include/jobq/storage.h), looked up by URL as the core does. Each test runs
 * once per row of conf_backends[] (see conformance.h). Times are explicit
 * "now" values, so nothing here depends on the machine's speed. */
#include "conformance.h"

#define T CONF_T0

static const conf_fin FIN_OK = {JOBQ_OUTCOME_SUCCEEDED, NULL, NULL, 0, 0, NULL};

static conf_fin fin_of(int outcome, const char *error) {
  conf_fin f = {0};
  f.outcome = outcome;
  f.error = error;
  return f;
}

/* ---- insert and get ---------------------------------------------------------- */

static void insert_get_every_field(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  static const char payload[] = "{\"to\":\"a@b.c\",\"n\":[1,2.5,-3e2],\"s\":\"caf\\u00e9 \xe2\x98\x95\"}";
  char owner[257];
  memset(owner, 'o', 256);
  owner[256] = '\0';
  char kind[65];
  memset(kind, 'k', 64);
  kind[64] = '\0';
  conf_spec sp = {0};
  sp.kind = kind;
  sp.payload = payload;
  sp.owner = owner;
  sp.priority = -1000;
  sp.max_attempts = 4;
  sp.dedupe_key = "key-1";
  sp.dedupe_ttl = 5000;
  char id[JOBQ_ID_SIZE];
  CK_INT(cs_insert(&s, T, sp, id), 0);
  CK(jobq__id_valid(id), "the id is kept as given: %s", id);

  jobq_storage_job j;
  cs_get(&s, id, T + 7, &j);
  CK_STR(j.id, id);
  CK_STR(j.kind, kind);
  CK_STR(j.payload, payload);
  CK_STR(j.owner, owner);
  CK_STR(j.step, NULL);
  CK_STR(j.result, NULL);
  CK_STR(j.error, NULL);
  CK_STR(j.dedupe_key, "key-1");
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.priority, -1000);
  CK_INT(j.progress, 0);
  CK_INT(j.attempts, 0);
  CK_INT(j.max_attempts, 4);
  CK_INT(j.cancel_requested, 0);
  CK_INT(j.created_at, T);
  CK_INT(j.run_at, T);
  CK_INT(j.started_at, 0);
  CK_INT(j.finished_at, 0);
  CK_INT(j.dedupe_ttl_ms, 5000);
  CK_INT(j.position, 0);
  CK_INT(j.n_attempt_log, 0);
  jobq_storage_job_clear(&j);

  /* A job without the optional fields, delayed. */
  conf_spec sp2 = {0};
  sp2.kind = "b";
  sp2.payload = "null";
  sp2.priority = 1000;
  sp2.run_at = T + 60000;
  char id2[JOBQ_ID_SIZE];
  CK_INT(cs_insert(&s, T, sp2, id2), 0);
  cs_get(&s, id2, T, &j);
  CK_STR(j.payload, "null");
  CK_STR(j.owner, NULL);
  CK_STR(j.dedupe_key, NULL);
  CK_INT(j.priority, 1000);
  CK_INT(j.max_attempts, 0);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.run_at, T + 60000);
  CK_INT(j.position, -1); /* not due: not waiting in line */
  jobq_storage_job_clear(&j);

  /* Unknown ids. */
  char nope[JOBQ_ID_SIZE];
  jobq__id_new(nope, T);
  memset(&j, 0, sizeof j);
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, nope, T, &j));
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, "not-an-id", T, &j));
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, "", T, &j));
  cs_close(&s);
}

static void insert_batch(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  conf_spec sp[5];
  memset(sp, 0, sizeof sp);
  sp[0].kind = "a";
  sp[1].kind = "b";
  sp[1].priority = 3;
  sp[2].kind = "a";
  sp[2].run_at = T + 10;
  sp[3].kind = "c";
  sp[3].owner = "bob";
  sp[4].kind = "a";
  sp[4].payload = "[1]";
  char ids[5][JOBQ_ID_SIZE];
  int dup[5];
  CK_OK(cs_insert_n(&s, T, sp, 5, ids, dup));
  for (int i = 0; i < 5; i++) {
    CK_INT(dup[i], 0);
    jobq_storage_job j;
    cs_get(&s, ids[i], T, &j);
    CK_STR(j.kind, sp[i].kind);
    CK_STR(j.payload, sp[i].payload ? sp[i].payload : "{}");
    jobq_storage_job_clear(&j);
  }
  /* Stored in the batch's order: FIFO. */
  jobq_storage_filter f = {NULL, NULL, -1, 10, 0, NULL};
  jobq_storage_job *out = NULL;
  size_t n = 0;
  int more = 1;
  CK_OK(s.ops->list(s.st, &f, &out, &n, &more));
  CK_INT(n, 5);
  CK_INT(more, 0);
  for (size_t i = 0; i < n; i++) {
    CK_STR(out[i].id, ids[i]);
    jobq_storage_job_clear(&out[i]);
  }
  free(out);
  /* An empty batch stores nothing and is not an error. */
  CK_OK(cs_insert_n(&s, T, sp, 0, NULL, NULL));
  cs_close(&s);
}

/* A batch that fails stores none of its jobs (provoked with an id that is
 * already stored, for backends that refuse one). */
static void insert_all_or_none(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char x[JOBQ_ID_SIZE];
  cs_add(&s, T, "orig", 0, 0, x);
  conf_spec sp[3];
  memset(sp, 0, sizeof sp);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  jobq__id_new(a, T);
  jobq__id_new(b, T);
  sp[0].id = a;
  sp[0].kind = "new";
  sp[0].dedupe_key = "kk";
  sp[1].id = x; /* taken */
  sp[1].kind = "clash";
  sp[2].id = b;
  sp[2].kind = "new";
  int rc = cs_insert_n(&s, T, sp, 3, NULL, NULL);
  CK(rc < 0, "inserting a batch with a taken id returned %d (%s); expected an error", rc,
     jobq_err_name(rc));
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, a, T, &j));
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, b, T, &j));
  cs_get(&s, x, T, &j);
  CK_STR(j.kind, "orig");
  jobq_storage_job_clear(&j);
  /* The failed batch took no dedupe key either. */
  conf_spec k = {0};
  k.dedupe_key = "kk";
  CK_INT(cs_insert(&s, T, k, NULL), 0);
  /* Exactly the two good jobs are stored. */
  jobq_storage_filter f = {NULL, NULL, -1, 10, 0, NULL};
  jobq_storage_job *out = NULL;
  size_t n = 0;
  int more = 0;
  CK_OK(s.ops->list(s.st, &f, &out, &n, &more));
  CK_INT(n, 2);
  for (size_t i = 0; i < n; i++) jobq_storage_job_clear(&out[i]);
  free(out);
  cs_close(&s);
}

/* ---- dedupe ------------------------------------------------------------------------ */

static int ins_key(conf_store *s, int64_t now, const char *kind, const char *key, int64_t ttl,
                   int force, char *id) {
  conf_spec sp = {0};
  sp.kind = kind;
  sp.dedupe_key = key;
  sp.dedupe_ttl = ttl;
  sp.force = force;
  return cs_insert(s, now, sp, id);
}

static void dedupe_live_force_batch(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], cc[JOBQ_ID_SIZE], d[JOBQ_ID_SIZE];
  CK_INT(ins_key(&s, T, "a", "K", 1000, 0, a), 0);

  /* Live key: nothing stored, the live job's id comes back. */
  char made[JOBQ_ID_SIZE];
  jobq__id_new(made, T);
  conf_spec sp = {0};
  sp.id = made;
  sp.dedupe_key = "K";
  char got[1][JOBQ_ID_SIZE];
  int dup = -1;
  CK_OK(cs_insert_n(&s, T, &sp, 1, got, &dup));
  CK_INT(dup, 1);
  CK_STR(got[0], a);
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, made, T, &j));

  /* force: a new job that takes the key over. */
  CK_INT(ins_key(&s, T, "a", "K", 1000, 1, cc), 0);
  CK(strcmp(cc, a) != 0, "forced insert returned the old id");
  CK_INT(ins_key(&s, T, "a", "K", 1000, 0, d), 1);
  CK_STR(d, cc);
  CK_INT(cs_state(&s, a, T), JOBQ_QUEUED); /* the old job is untouched */

  /* Within one batch: the second sees the first; force still wins. */
  conf_spec bs[4];
  memset(bs, 0, sizeof bs);
  for (int i = 0; i < 4; i++) bs[i].dedupe_key = "K2";
  bs[2].force = 1;
  bs[3].dedupe_key = NULL;
  char ids[4][JOBQ_ID_SIZE];
  int dups[4];
  CK_OK(cs_insert_n(&s, T, bs, 4, ids, dups));
  CK_INT(dups[0], 0);
  CK_INT(dups[1], 1);
  CK_STR(ids[1], ids[0]);
  CK_INT(dups[2], 0);
  CK(strcmp(ids[2], ids[0]) != 0, "forced batch entry got the old id");
  CK_INT(dups[3], 0);
  CK_INT(ins_key(&s, T, "a", "K2", 0, 0, b), 1);
  CK_STR(b, ids[2]);

  /* A running job keeps its key; so does a scheduled one. */
  char r[JOBQ_ID_SIZE], x[JOBQ_ID_SIZE];
  CK_INT(ins_key(&s, T, "run", "K3", 0, 0, r), 0);
  const char *kinds[] = {"run"};
  conf_claim cl = {0};
  cl.kinds = kinds;
  cl.n_kinds = 1;
  cl.now = T;
  jobq_storage_job cj;
  CK_INT(cs_claim_req(&s, cl, &cj), 1);
  jobq_storage_job_clear(&cj);
  CK_INT(ins_key(&s, T, "run", "K3", 0, 0, x), 1);
  CK_STR(x, r);
  conf_spec later = {0};
  later.dedupe_key = "K4";
  later.run_at = T + 100000;
  char l1[JOBQ_ID_SIZE], l2[JOBQ_ID_SIZE];
  CK_INT(cs_insert(&s, T, later, l1), 0);
  CK_INT(ins_key(&s, T, "a", "K4", 0, 0, l2), 1);
  CK_STR(l2, l1);
  cs_close(&s);
}

/* Claims the one queued job of kind at now; returns its attempt. */
static int claim_kind(conf_store *s, const char *kind, int64_t now, const char *want) {
  const char *kinds[] = {kind};
  conf_claim cl = {0};
  cl.kinds = kinds;
  cl.n_kinds = 1;
  cl.now = now;
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  size_t n = cs_claim_req(s, cl, &j);
  CK(n == 1, "claim of kind %s at %" PRId64 " found nothing", kind, now);
  if (want) CK_STR(j.id, want);
  int att = j.attempts;
  jobq_storage_job_clear(&j);
  return att;
}

static void dedupe_ttl_and_finished(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a[JOBQ_ID_SIZE], x[JOBQ_ID_SIZE];
  /* Succeeded: live for ttl after finished_at, not at ttl. */
  CK_INT(ins_key(&s, T, "ttl", "K", 1000, 0, a), 0);
  claim_kind(&s, "ttl", T, a);
  CK_INT(cs_finish(&s, a, 1, T + 10, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(ins_key(&s, T + 10 + 999, "ttl", "K", 1000, 0, x), 1);
  CK_STR(x, a);
  CK_INT(ins_key(&s, T + 10 + 1000, "ttl", "K", 1000, 0, x), 0);
  CK(strcmp(x, a) != 0, "a key past its ttl returned the old job");

  /* ttl 0: only while unfinished. */
  CK_INT(ins_key(&s, T, "ttl0", "K0", 0, 0, a), 0);
  claim_kind(&s, "ttl0", T, a);
  CK_INT(cs_finish(&s, a, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(ins_key(&s, T, "ttl0", "K0", 0, 0, x), 0);

  /* Failed and cancelled jobs do not keep the key, whatever the ttl. */
  CK_INT(ins_key(&s, T, "f", "KF", 1000000, 0, a), 0);
  claim_kind(&s, "f", T, a);
  CK_INT(cs_finish(&s, a, 1, T, fin_of(JOBQ_OUTCOME_FAILED, "boom")), JOBQ_FAILED);
  CK_INT(ins_key(&s, T, "f", "KF", 1000000, 0, x), 0);

  CK_INT(ins_key(&s, T, "cq", "KC", 1000000, 0, a), 0);
  int st = -1;
  CK_OK(s.ops->cancel(s.st, a, T, &st, NULL));
  CK_INT(ins_key(&s, T, "cq", "KC", 1000000, 0, x), 0);

  CK_INT(ins_key(&s, T, "cr", "KR", 1000000, 0, a), 0);
  claim_kind(&s, "cr", T, a);
  CK_INT(cs_finish(&s, a, 1, T, fin_of(JOBQ_OUTCOME_CANCELLED, NULL)), JOBQ_CANCELLED);
  CK_INT(ins_key(&s, T, "cr", "KR", 1000000, 0, x), 0);

  /* A job waiting for a retry is queued: the key stays live. */
  CK_INT(ins_key(&s, T, "rt", "KT", 0, 0, a), 0);
  claim_kind(&s, "rt", T, a);
  conf_fin rf = fin_of(JOBQ_OUTCOME_RETRY, "again");
  rf.run_at = T + 5000;
  CK_INT(cs_finish(&s, a, 1, T, rf), JOBQ_QUEUED);
  CK_INT(ins_key(&s, T, "rt", "KT", 0, 0, x), 1);
  CK_STR(x, a);
  cs_close(&s);
}

/* ---- claim ---------------------------------------------------------------------------- */

static void claim_priority_then_fifo(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  static const int prio[] = {0, 5, 0, 5, -3, 1000, -1000, 0};
  char ids[8][JOBQ_ID_SIZE];
  for (int i = 0; i < 8; i++) cs_add(&s, T, "a", prio[i], 0, ids[i]);
  static const int order[] = {5, 1, 3, 0, 2, 7, 4, 6};
  for (int i = 0; i < 8; i++) {
    int att = cs_claim_expect(&s, T, ids[order[i]]);
    CK_INT(att, 1);
  }
  cs_claim_none(&s, T);
  cs_close(&s);
}

static void claim_across_kinds(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a1[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE], b9[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE],
      c1[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a1);
  cs_add(&s, T, "b", 0, 0, b1);
  cs_add(&s, T, "b", 9, 0, b9);
  cs_add(&s, T, "a", 0, 0, a2);
  cs_add(&s, T, "c", 0, 0, c1);
  const char *ab[] = {"a", "b"};
  const char *want[] = {b9, a1, b1, a2};
  for (int i = 0; i < 4; i++) {
    conf_claim cl = {0};
    cl.kinds = ab;
    cl.n_kinds = 2;
    cl.now = T;
    jobq_storage_job j;
    memset(&j, 0, sizeof j);
    CK_INT(cs_claim_req(&s, cl, &j), 1);
    CK_STR(j.id, want[i]);
    jobq_storage_job_clear(&j);
  }
  /* Only c is left, and a, b claims do not see it. */
  conf_claim cl = {0};
  cl.kinds = ab;
  cl.n_kinds = 2;
  cl.now = T;
  jobq_storage_job j;
  CK_INT(cs_claim_req(&s, cl, &j), 0);
  const char *none[] = {"no-such-kind"};
  cl.kinds = none;
  cl.n_kinds = 1;
  CK_INT(cs_claim_req(&s, cl, &j), 0);
  cs_claim_expect(&s, T, c1);
  cs_close(&s);
}

/* max > 1: the best jobs, in claim order. */
static void claim_batch_best_in_order(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  static const char *const kind[] = {"a", "b", "a", "b", "a", "c", "b"};
  static const int prio[] = {0, 2, 2, 0, 7, 2, -1};
  char ids[7][JOBQ_ID_SIZE];
  for (int i = 0; i < 7; i++) cs_add(&s, T, kind[i], prio[i], 0, ids[i]);
  /* Best first: 4 (7), then priority 2 in FIFO order 1, 2, 5, then 0, 3, then 6. */
  jobq_storage_job out[4];
  memset(out, 0, sizeof out);
  conf_claim cl = {0};
  cl.max = 4;
  cl.now = T;
  CK_INT(cs_claim_req(&s, cl, out), 4);
  static const int want[] = {4, 1, 2, 5};
  for (int i = 0; i < 4; i++) {
    CK_STR(out[i].id, ids[want[i]]);
    CK_INT(out[i].state, JOBQ_RUNNING);
    CK_INT(out[i].attempts, 1);
    jobq_storage_job_clear(&out[i]);
  }
  /* Asking for more than there is returns what there is, in order. */
  jobq_storage_job rest[10];
  memset(rest, 0, sizeof rest);
  cl.max = 10;
  CK_INT(cs_claim_req(&s, cl, rest), 3);
  static const int want2[] = {0, 3, 6};
  for (int i = 0; i < 3; i++) {
    CK_STR(rest[i].id, ids[want2[i]]);
    jobq_storage_job_clear(&rest[i]);
  }
  cs_close(&s);
}

/* FIFO means the order jobs were stored in, which need not be the order
 * of their ids (ids are made before storing, on several threads). */
static void claim_fifo_is_store_order(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char ids[4][JOBQ_ID_SIZE];
  for (int i = 0; i < 4; i++) jobq__id_new(ids[i], T); /* increasing */
  for (int i = 3; i >= 0; i--) {                       /* stored in reverse */
    conf_spec sp = {0};
    sp.id = ids[i];
    cs_insert(&s, T, sp, NULL);
  }
  /* One at a time. */
  cs_claim_expect(&s, T, ids[3]);
  /* Several at once: the same order. */
  jobq_storage_job out[3];
  memset(out, 0, sizeof out);
  conf_claim cl = {0};
  cl.max = 3;
  cl.now = T;
  CK_INT(cs_claim_req(&s, cl, out), 3);
  char got[3][JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) {
    memcpy(got[i], out[i].id, JOBQ_ID_SIZE);
    jobq_storage_job_clear(&out[i]);
  }
  for (int i = 0; i < 3; i++) {
    CK(strcmp(got[i], ids[2 - i]) == 0,
       "batch claim entry %d is %s; expected %s (stored order %s, %s, %s; the batch came back "
       "as %s, %s, %s)",
       i, got[i], ids[2 - i], ids[2], ids[1], ids[0], got[0], got[1], got[2]);
  }
  cs_close(&s);
}

/* A claim of many jobs at once: best first throughout. */
static void claim_large_batch_in_order(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  enum { N = 1100 };
  conf_spec *sp = calloc(N, sizeof *sp);
  char(*ids)[JOBQ_ID_SIZE] = calloc(N, JOBQ_ID_SIZE);
  jobq_storage_job *out = calloc(N, sizeof *out);
  assert_non_null(sp);
  assert_non_null(ids);
  assert_non_null(out);
  for (int i = 0; i < N; i++) {
    sp[i].kind = i % 2 ? "a" : "b";
    sp[i].priority = (i * 7) % 3;
  }
  CK_OK(cs_insert_n(&s, T, sp, N, ids, NULL));
  conf_claim cl = {0};
  cl.max = N;
  cl.now = T;
  CK_INT(cs_claim_req(&s, cl, out), N);
  /* Expected: priority 2, then 1, then 0, each in stored order. */
  int k = 0, bad = -1;
  for (int p = 2; p >= 0; p--)
    for (int i = 0; i < N; i++)
      if ((i * 7) % 3 == p) {
        if (bad < 0 && strcmp(out[k].id, ids[i]) != 0) bad = k;
        k++;
      }
  int bad_prio = bad >= 0 ? out[bad].priority : 0;
  for (int i = 0; i < N; i++) jobq_storage_job_clear(&out[i]);
  free(out);
  free(ids);
  free(sp);
  cs_close(&s);
  CK(bad < 0, "a claim of %d jobs: entry %d (priority %d) is out of order; the ones before it "
     "were in order", N, bad, bad_prio);
}

static void claim_kind_limits(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a1[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE], b2[JOBQ_ID_SIZE], a3[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a1);
  cs_add(&s, T, "b", 0, 0, b1);
  cs_add(&s, T, "a", 0, 0, a2);
  cs_add(&s, T, "b", 0, 0, b2);
  cs_add(&s, T, "a", 0, 0, a3);
  const char *ab[] = {"a", "b"};
  int lim[] = {1, -1};
  conf_claim cl = {0};
  cl.kinds = ab;
  cl.limits = lim;
  cl.n_kinds = 2;
  cl.max = 10;
  cl.now = T;
  jobq_storage_job out[10];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 3);
  CK_STR(out[0].id, a1);
  CK_STR(out[1].id, b1);
  CK_STR(out[2].id, b2);
  for (int i = 0; i < 3; i++) jobq_storage_job_clear(&out[i]);
  /* Limit 0: that kind is not claimed at all. */
  int lim0[] = {0, 5};
  cl.limits = lim0;
  CK_INT(cs_claim_req(&s, cl, out), 0);
  CK_INT(cs_state(&s, a2, T), JOBQ_QUEUED);
  /* Limit 2 of 2 left, max 1: max wins. */
  int lim2[] = {2, 0};
  cl.limits = lim2;
  cl.max = 1;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, a2);
  jobq_storage_job_clear(&out[0]);
  cl.limits = NULL;
  cl.max = 10;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, a3);
  jobq_storage_job_clear(&out[0]);
  cs_close(&s);
}

static void claim_exclude_with_any_kind(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a1[JOBQ_ID_SIZE], b1[JOBQ_ID_SIZE], c1[JOBQ_ID_SIZE], a2[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a1);
  cs_add(&s, T, "b", 0, 0, b1);
  cs_add(&s, T, "c", 5, 0, c1);
  cs_add(&s, T, "a", 0, 0, a2);
  const char *ex_ac[] = {"a", "c"};
  conf_claim cl = {0};
  cl.exclude = ex_ac;
  cl.n_exclude = 2;
  cl.max = 10;
  cl.now = T;
  jobq_storage_job out[10];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, b1);
  jobq_storage_job_clear(&out[0]);
  const char *ex_a[] = {"a"};
  cl.exclude = ex_a;
  cl.n_exclude = 1;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  CK_STR(out[0].id, c1);
  jobq_storage_job_clear(&out[0]);
  cl.exclude = NULL;
  cl.n_exclude = 0;
  CK_INT(cs_claim_req(&s, cl, out), 2);
  CK_STR(out[0].id, a1);
  CK_STR(out[1].id, a2);
  jobq_storage_job_clear(&out[0]);
  jobq_storage_job_clear(&out[1]);
  cs_close(&s);
}

static void claim_scheduled_not_before_due(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char d1[JOBQ_ID_SIZE], d2[JOBQ_ID_SIZE], q1[JOBQ_ID_SIZE], hi[JOBQ_ID_SIZE],
      lo[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, T + 1000, d1);
  cs_add(&s, T, "a", 0, T + 500, d2);
  cs_add(&s, T, "a", -5, 0, q1);
  cs_add(&s, T, "a", 0, T - 50, hi); /* in the past: due now */
  cs_claim_expect(&s, T, hi);
  cs_claim_expect(&s, T, q1);
  cs_claim_none(&s, T);
  cs_claim_none(&s, T + 499);
  cs_claim_expect(&s, T + 500, d2);
  cs_claim_none(&s, T + 999);
  cs_claim_expect(&s, T + 1000, d1);

  /* A scheduled job that came due competes by priority with due jobs. */
  cs_add(&s, T, "a", 0, 0, lo);
  cs_add(&s, T, "a", 9, T + 100, hi);
  cs_claim_expect(&s, T + 100, hi);
  cs_claim_expect(&s, T + 100, lo);
  cs_close(&s);
}

static void claim_record_and_max_attempts(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char ma[JOBQ_ID_SIZE], mb[JOBQ_ID_SIZE], mc[JOBQ_ID_SIZE], md[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.kind = "ma";
  sp.owner = "own";
  sp.payload = "{\"p\":1}";
  sp.priority = 4;
  cs_insert(&s, T, sp, ma);
  cs_add(&s, T, "mb", 0, 0, mb);
  conf_spec sc = {0};
  sc.kind = "mc";
  sc.max_attempts = 2;
  cs_insert(&s, T, sc, mc);
  cs_add(&s, T, "md", 0, 0, md);
  const char *mk[] = {"ma", "zz", "md"};
  const int mv[] = {7, 9, 0}; /* 0: not a value, the default applies */
  conf_claim cl = {0};
  cl.max = 4;
  cl.now = T + 3;
  cl.lease_ms = 60000;
  cl.ma_kinds = mk;
  cl.ma_values = mv;
  cl.n_ma = 3;
  cl.default_max_attempts = 5;
  jobq_storage_job out[4];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 4);
  CK_STR(out[0].id, ma);
  CK_STR(out[0].kind, "ma");
  CK_STR(out[0].payload, "{\"p\":1}");
  CK_STR(out[0].owner, "own");
  CK_INT(out[0].priority, 4);
  CK_INT(out[0].state, JOBQ_RUNNING);
  CK_INT(out[0].attempts, 1);
  CK_INT(out[0].started_at, T + 3);
  CK_INT(out[0].created_at, T);
  CK_INT(out[0].progress, 0);
  CK_INT(out[0].cancel_requested, 0);
  CK_INT(out[0].max_attempts, 7);
  for (int i = 1; i < 4; i++) {
    int want = strcmp(out[i].id, mc) == 0 ? 2 : 5;
    CK(out[i].max_attempts == want, "job of kind %s claimed with max_attempts %d; expected %d",
       out[i].kind, out[i].max_attempts, want);
  }
  for (int i = 0; i < 4; i++) jobq_storage_job_clear(&out[i]);
  /* Stored that way, so that a rescuer knows it too. */
  jobq_storage_job j;
  cs_get(&s, ma, T + 4, &j);
  CK_INT(j.max_attempts, 7);
  CK_INT(j.state, JOBQ_RUNNING);
  CK_INT(j.attempts, 1);
  CK_INT(j.started_at, T + 3);
  CK_INT(j.finished_at, 0);
  CK_INT(j.position, -1);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T + 3);
    CK_INT(j.attempt_log[0].finished_at, 0);
    CK_STR(j.attempt_log[0].error, NULL);
  }
  jobq_storage_job_clear(&j);
  cs_get(&s, md, T + 4, &j);
  CK_INT(j.max_attempts, 5);
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

/* ---- finish ------------------------------------------------------------------------------ */

static void finish_succeeded(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T + 1, id);
  CK_OK(s.ops->progress(s.st, id, 1, 40, "working"));
  conf_fin f = {0};
  f.outcome = JOBQ_OUTCOME_SUCCEEDED;
  f.result = "{\"ok\":true,\"n\":[1,2]}";
  f.progress = 40;
  f.step = "done";
  CK_INT(cs_finish(&s, id, 1, T + 20, f), JOBQ_SUCCEEDED);
  jobq_storage_job j;
  cs_get(&s, id, T + 30, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.result, "{\"ok\":true,\"n\":[1,2]}");
  CK_STR(j.error, NULL);
  CK_INT(j.progress, 100);
  CK_STR(j.step, "done");
  CK_INT(j.attempts, 1);
  CK_INT(j.started_at, T + 1);
  CK_INT(j.finished_at, T + 20);
  CK_INT(j.position, -1);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T + 1);
    CK_INT(j.attempt_log[0].finished_at, T + 20);
    CK_STR(j.attempt_log[0].error, NULL);
  }
  jobq_storage_job_clear(&j);
  /* result NULL is stored as JSON null; step NULL keeps the stored step. */
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  CK_OK(s.ops->progress(s.st, id, 1, 10, "kept"));
  CK_INT(cs_finish(&s, id, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  cs_get(&s, id, T, &j);
  CK_STR(j.result, "null");
  CK_STR(j.step, "kept");
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

static void finish_failed(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  conf_fin f = fin_of(JOBQ_OUTCOME_FAILED, "disk on fire");
  f.progress = 55;
  f.step = "step 3";
  CK_INT(cs_finish(&s, id, 1, T + 9, f), JOBQ_FAILED);
  jobq_storage_job j;
  cs_get(&s, id, T + 10, &j);
  CK_INT(j.state, JOBQ_FAILED);
  CK_STR(j.error, "disk on fire");
  CK_STR(j.result, NULL);
  CK_INT(j.progress, 55);
  CK_STR(j.step, "step 3");
  CK_INT(j.finished_at, T + 9);
  CK_INT(j.attempts, 1);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T);
    CK_INT(j.attempt_log[0].finished_at, T + 9);
    CK_STR(j.attempt_log[0].error, "disk on fire");
  }
  jobq_storage_job_clear(&j);
  cs_claim_none(&s, T + 100000);
  cs_close(&s);
}

static void finish_retry_then_succeed(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "try again");
  r.run_at = T + 5000;
  CK_INT(cs_finish(&s, id, 1, T + 10, r), JOBQ_QUEUED);
  jobq_storage_job j;
  cs_get(&s, id, T + 10, &j);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.run_at, T + 5000);
  CK_STR(j.error, "try again");
  CK_INT(j.attempts, 1);
  CK_INT(j.position, -1); /* waiting for its time, not in line */
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T);
    CK_INT(j.attempt_log[0].finished_at, T + 10);
    CK_STR(j.attempt_log[0].error, "try again");
  }
  jobq_storage_job_clear(&j);
  int64_t next = 0;
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T + 10, &next));
  CK_INT(next, T + 5000);
  cs_claim_none(&s, T + 4999);
  CK_INT(cs_claim_expect(&s, T + 5000, id), 2);
  cs_get(&s, id, T + 5001, &j);
  CK_INT(j.attempts, 2);
  CK_INT(j.started_at, T + 5000);
  CK_INT(j.n_attempt_log, 2);
  if (j.n_attempt_log == 2) {
    CK_STR(j.attempt_log[0].error, "try again");
    CK_INT(j.attempt_log[1].started_at, T + 5000);
    CK_INT(j.attempt_log[1].finished_at, 0);
    CK_STR(j.attempt_log[1].error, NULL);
  }
  jobq_storage_job_clear(&j);
  /* The first attempt's number is stale now. */
  CK_INT(cs_finish(&s, id, 1, T + 5002, FIN_OK), JOBQ_ESTATE);
  CK_INT(cs_finish(&s, id, 2, T + 5003, FIN_OK), JOBQ_SUCCEEDED);
  cs_get(&s, id, T + 5004, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_INT(j.finished_at, T + 5003);
  CK_INT(j.n_attempt_log, 2);
  if (j.n_attempt_log == 2) {
    CK_STR(j.attempt_log[0].error, "try again");
    CK_INT(j.attempt_log[1].finished_at, T + 5003);
    CK_STR(j.attempt_log[1].error, NULL);
  }
  jobq_storage_job_clear(&j);

  /* A retry due at once (run_at <= now) is claimable at once. */
  cs_add(&s, T, "b", 0, 0, id);
  cs_claim_expect(&s, T, id);
  r.run_at = T;
  CK_INT(cs_finish(&s, id, 1, T, r), JOBQ_QUEUED);
  CK_INT(cs_claim_expect(&s, T, id), 2);
  cs_close(&s);
}

static void finish_cancelled_outcome(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  CK_INT(cs_finish(&s, id, 1, T + 5, fin_of(JOBQ_OUTCOME_CANCELLED, NULL)), JOBQ_CANCELLED);
  jobq_storage_job j;
  cs_get(&s, id, T + 5, &j);
  CK_INT(j.state, JOBQ_CANCELLED);
  CK_STR(j.error, "cancelled");
  CK_INT(j.finished_at, T + 5);
  jobq_storage_job_clear(&j);
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  CK_INT(cs_finish(&s, id, 1, T, fin_of(JOBQ_OUTCOME_CANCELLED, "stopped by host")),
         JOBQ_CANCELLED);
  cs_get(&s, id, T, &j);
  CK_STR(j.error, "stopped by host");
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

static void finish_release_not_counted(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE], later[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_add(&s, T, "a", 0, 0, later);
  cs_claim_expect(&s, T, id);
  CK_INT(cs_finish(&s, id, 1, T + 3, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_QUEUED);
  jobq_storage_job j;
  cs_get(&s, id, T + 3, &j);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.attempts, 0);
  CK_STR(j.error, NULL);
  CK_INT(j.finished_at, 0);
  CK(j.run_at <= T + 3, "a released job is due at once; run_at %" PRId64, j.run_at);
  jobq_storage_job_clear(&j);
  /* Claimable again at once, as attempt 1. */
  CK_INT(cs_claim_expect(&s, T + 3, id), 1);
  cs_get(&s, id, T + 3, &j);
  CK_INT(j.attempts, 1);
  CK_INT(j.n_attempt_log, 1);
  jobq_storage_job_clear(&j);
  /* Released after a failed attempt: the failed one still counts. */
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "e1");
  r.run_at = T + 3;
  CK_INT(cs_finish(&s, id, 1, T + 3, r), JOBQ_QUEUED);
  CK_INT(cs_claim_expect(&s, T + 3, id), 2);
  CK_INT(cs_finish(&s, id, 2, T + 4, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_QUEUED);
  cs_get(&s, id, T + 4, &j);
  CK_INT(j.attempts, 1);
  CK_STR(j.error, "e1");
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) CK_STR(j.attempt_log[0].error, "e1");
  jobq_storage_job_clear(&j);
  CK_INT(cs_claim_expect(&s, T + 4, id), 2);
  cs_close(&s);
}

static void finish_stale_and_unknown(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], q[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a);
  cs_add(&s, T, "a", 0, 0, b);
  cs_add(&s, T, "q", 0, 0, q);
  jobq__id_new(nope, T);
  cs_claim_expect(&s, T, a);
  cs_claim_expect(&s, T, b);
  /* Several outcomes in one call, each answered on its own. */
  jobq_storage_finish f[5];
  memset(f, 0, sizeof f);
  f[0].id = a;
  f[0].attempt = 1;
  f[0].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[1].id = nope;
  f[1].attempt = 1;
  f[1].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[2].id = b;
  f[2].attempt = 2; /* not the running attempt */
  f[2].outcome = JOBQ_OUTCOME_FAILED;
  f[2].error = "x";
  f[3].id = q; /* queued, never claimed */
  f[3].attempt = 1;
  f[3].outcome = JOBQ_OUTCOME_SUCCEEDED;
  f[4].id = b;
  f[4].attempt = 1;
  f[4].outcome = JOBQ_OUTCOME_FAILED;
  f[4].error = "y";
  for (int i = 0; i < 5; i++) f[i].now = T + 1;
  int st[5] = {99, 99, 99, 99, 99};
  CK_OK(s.ops->finish(s.st, f, 5, st));
  CK_INT(st[0], JOBQ_SUCCEEDED);
  CK_INT(st[1], JOBQ_ENOTFOUND);
  CK_INT(st[2], JOBQ_ESTATE);
  CK_INT(st[3], JOBQ_ESTATE);
  CK_INT(st[4], JOBQ_FAILED);
  CK_INT(cs_state(&s, q, T), JOBQ_QUEUED);
  jobq_storage_job j;
  cs_get(&s, b, T, &j);
  CK_STR(j.error, "y");
  jobq_storage_job_clear(&j);
  /* Finished jobs refuse further outcomes, RELEASE included. */
  CK_INT(cs_finish(&s, a, 1, T + 2, fin_of(JOBQ_OUTCOME_FAILED, "late")), JOBQ_ESTATE);
  CK_INT(cs_finish(&s, a, 1, T + 2, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_ESTATE);
  CK_INT(cs_finish(&s, nope, 1, T + 2, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_ENOTFOUND);
  cs_get(&s, a, T, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.error, NULL);
  CK_INT(j.finished_at, T + 1);
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

/* With cancel_requested set, every outcome but RELEASE ends the job cancelled. */
static void finish_after_cancel_request(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  static const int outcomes[] = {JOBQ_OUTCOME_SUCCEEDED, JOBQ_OUTCOME_FAILED, JOBQ_OUTCOME_RETRY,
                                 JOBQ_OUTCOME_CANCELLED};
  for (int i = 0; i < 4; i++) {
    char id[JOBQ_ID_SIZE];
    cs_add(&s, T, "a", 0, 0, id);
    cs_claim_expect(&s, T, id);
    int st = -1;
    char *kind = NULL;
    CK_OK(s.ops->cancel(s.st, id, T + 1, &st, &kind));
    CK_INT(st, JOBQ_RUNNING);
    CK_STR(kind, "a");
    free(kind);
    jobq_storage_job j;
    cs_get(&s, id, T + 1, &j);
    CK_INT(j.state, JOBQ_RUNNING);
    CK_INT(j.cancel_requested, 1);
    jobq_storage_job_clear(&j);
    conf_fin f = {0};
    f.outcome = outcomes[i];
    if (outcomes[i] == JOBQ_OUTCOME_SUCCEEDED) f.result = "42";
    if (outcomes[i] == JOBQ_OUTCOME_FAILED || outcomes[i] == JOBQ_OUTCOME_RETRY) f.error = "err";
    f.run_at = T + 1000;
    int got = cs_finish(&s, id, 1, T + 2, f);
    CK(got == JOBQ_CANCELLED, "outcome %d after a cancel request gave state %d; expected %d "
       "(cancelled)", outcomes[i], got, JOBQ_CANCELLED);
    cs_get(&s, id, T + 3, &j);
    CK_INT(j.state, JOBQ_CANCELLED);
    CK_INT(j.finished_at, T + 2);
    CK_STR(j.result, NULL);
    CK(j.error != NULL, "a cancelled job has an error text");
    if (outcomes[i] == JOBQ_OUTCOME_SUCCEEDED) CK_STR(j.error, "cancelled");
    jobq_storage_job_clear(&j);
  }
  cs_claim_none(&s, T + 100000);
  /* RELEASE of a job that was asked to stop: it ends cancelled rather than
   * run again (storage.h). */
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_claim_expect(&s, T, id);
  int st = -1;
  CK_OK(s.ops->cancel(s.st, id, T, &st, NULL));
  CK_INT(cs_finish(&s, id, 1, T, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_CANCELLED);
  CK_INT(cs_state(&s, id, T), JOBQ_CANCELLED);
  cs_claim_none(&s, T + 100000);
  cs_close(&s);
}

/* Backends that store asynchronously offer finish_async: it must store
 * exactly what finish stores and call back once. */
typedef struct async_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls, rc, state;
} async_wait;

static void async_done(void *ud, int rc, const int *out_state) {
  async_wait *w = ud;
  pthread_mutex_lock(&w->mu);
  w->calls++;
  w->rc = rc;
  w->state = rc == 0 && out_state ? out_state[0] : 12345;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static int async_finish(conf_store *s, const char *id, int attempt, int outcome, int64_t now) {
  async_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
  char idcopy[JOBQ_ID_SIZE];
  snprintf(idcopy, sizeof idcopy, "%s", id);
  jobq_storage_finish f = {0};
  f.id = idcopy;
  f.attempt = attempt;
  f.outcome = outcome;
  f.result = "{\"async\":1}";
  f.error = outcome == JOBQ_OUTCOME_SUCCEEDED ? NULL : "async error";
  f.now = now;
  CK_OK(s->ops->finish_async(s->st, &f, 1, async_done, &w));
  memset(idcopy, 'x', JOBQ_ID_SIZE - 1); /* the backend had to copy it */
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  pthread_mutex_lock(&w.mu);
  while (w.calls == 0 && conf_mono_ms() < end) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w.cv, &w.mu, &ts);
  }
  int calls = w.calls, rc = w.rc, state = w.state;
  pthread_mutex_unlock(&w.mu);
  CK(calls == 1, "finish_async called back %d times within %d ms; expected once", calls,
     CONF_GUARD_MS);
  CK_OK(rc);
  /* Exactly once: nothing more comes. */
  conf_sleep_ms(20);
  pthread_mutex_lock(&w.mu);
  calls = w.calls;
  pthread_mutex_unlock(&w.mu);
  CK_INT(calls, 1);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  return state;
}

static void finish_async_when_offered(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  if (s.ops->finish_async == NULL) {
    cs_close(&s);
    print_message("[%s] finish_async is not offered (optional): nothing to check\n", conf_be());
    return;
  }
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a);
  cs_add(&s, T, "a", 0, 0, b);
  cs_claim_expect(&s, T, a);
  cs_claim_expect(&s, T, b);
  CK_INT(async_finish(&s, a, 1, JOBQ_OUTCOME_SUCCEEDED, T + 1), JOBQ_SUCCEEDED);
  CK_INT(async_finish(&s, b, 2, JOBQ_OUTCOME_FAILED, T + 1), JOBQ_ESTATE);
  CK_INT(async_finish(&s, b, 1, JOBQ_OUTCOME_FAILED, T + 2), JOBQ_FAILED);
  jobq_storage_job j;
  cs_get(&s, a, T + 3, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.result, "{\"async\":1}");
  CK_INT(j.finished_at, T + 1);
  jobq_storage_job_clear(&j);
  cs_get(&s, b, T + 3, &j);
  CK_INT(j.state, JOBQ_FAILED);
  CK_STR(j.error, "async error");
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

/* ---- progress, cancel ---------------------------------------------------------------------- */

static void progress_running_attempt_only(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE], q[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_add(&s, T, "q", 0, T + 100000, q);
  jobq__id_new(nope, T);
  cs_claim_expect(&s, T, id);
  CK_OK(s.ops->progress(s.st, id, 1, 30, "step one"));
  jobq_storage_job j;
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 30);
  CK_STR(j.step, "step one");
  jobq_storage_job_clear(&j);
  CK_OK(s.ops->progress(s.st, id, 1, 60, NULL)); /* keeps the step */
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 60);
  CK_STR(j.step, "step one");
  jobq_storage_job_clear(&j);
  /* Not the running attempt, not running, unknown: refused, nothing changes. */
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 2, 90, "wrong attempt"));
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, q, 1, 90, "queued"));
  int rc = s.ops->progress(s.st, nope, 1, 90, "unknown");
  CK(rc == JOBQ_ENOTFOUND || rc == JOBQ_ESTATE,
     "progress of an unknown job returned %d (%s); expected JOBQ_ENOTFOUND (or JOBQ_ESTATE)", rc,
     jobq_err_name(rc));
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 60);
  CK_STR(j.step, "step one");
  jobq_storage_job_clear(&j);
  cs_get(&s, q, T, &j);
  CK_INT(j.progress, 0);
  CK_STR(j.step, NULL);
  jobq_storage_job_clear(&j);
  /* A new attempt starts from 0. */
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "again");
  r.run_at = T;
  r.progress = 60;
  CK_INT(cs_finish(&s, id, 1, T, r), JOBQ_QUEUED);
  CK_INT(cs_claim_expect(&s, T, id), 2);
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 0);
  jobq_storage_job_clear(&j);
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 1, 10, NULL));
  CK_OK(s.ops->progress(s.st, id, 2, 10, NULL));
  CK_INT(cs_finish(&s, id, 2, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 2, 20, NULL));
  cs_close(&s);
}

/* Version 2: a checkpoint belongs to the running attempt, survives a retry
 * (the next attempt reads it), and carries progress and step. */
static void checkpoint_survives_retry(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  CK(s.ops->version >= 2 && s.ops->checkpoint && s.ops->checkpoint_get && s.ops->prune,
     "the backend offers the version 2 members");
  char id[JOBQ_ID_SIZE], q[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_add(&s, T, "q", 0, T + 100000, q);
  jobq__id_new(nope, T);
  int stage = 7;
  char *out = (char *)"x";
  CK_OK(s.ops->checkpoint_get(s.st, id, &stage, &out));
  CK_INT(stage, -1);
  CK(out == NULL, "no checkpoint: no output");
  CK_RC(JOBQ_ENOTFOUND, s.ops->checkpoint_get(s.st, nope, &stage, &out));
  /* only the running attempt may store one */
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, id, 1, 0, "{\"a\":1}", 20, "one"));
  cs_claim_expect(&s, T, id);
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, id, 2, 0, "{\"a\":1}", 20, "one"));
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, q, 1, 0, "{}", 20, NULL));
  int rc = s.ops->checkpoint(s.st, nope, 1, 0, "{}", 20, NULL);
  CK(rc == JOBQ_ENOTFOUND || rc == JOBQ_ESTATE, "checkpoint of an unknown job: %d", rc);
  CK_OK(s.ops->checkpoint(s.st, id, 1, 0, "{\"a\":1}", 25, "script done"));
  CK_OK(s.ops->checkpoint(s.st, id, 1, 1, "{\"a\":2}", 75, NULL)); /* replaces; keeps the step */
  jobq_storage_job j;
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 75);
  CK_STR(j.step, "script done");
  jobq_storage_job_clear(&j);
  /* the attempt fails; the next one finds the checkpoint */
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "tts 503");
  r.run_at = T;
  r.progress = 75;
  CK_INT(cs_finish(&s, id, 1, T, r), JOBQ_QUEUED);
  CK_OK(s.ops->checkpoint_get(s.st, id, &stage, &out));
  CK_INT(stage, 1);
  CK_STR(out, "{\"a\":2}");
  free(out);
  CK_INT(cs_claim_expect(&s, T, id), 2);
  CK_OK(s.ops->checkpoint(s.st, id, 2, 2, "{\"a\":3}", 95, "uploaded"));
  CK_OK(s.ops->checkpoint_get(s.st, id, &stage, &out));
  CK_INT(stage, 2);
  CK_STR(out, "{\"a\":3}");
  free(out);
  CK_INT(cs_finish(&s, id, 2, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, id, 2, 3, "{}", 100, NULL));
  cs_close(&s);
}

/* Version 2: prune deletes finished jobs older than the cut, nothing else,
 * and reports their ids. */
static int state_or_gone(conf_store *s, const char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  int rc = s->ops->get(s->st, id, T, &j);
  int st = rc ? rc : j.state;
  jobq_storage_job_clear(&j);
  return st;
}

static void prune_finished_only(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char done_old[JOBQ_ID_SIZE], done_new[JOBQ_ID_SIZE], failed[JOBQ_ID_SIZE], queued[JOBQ_ID_SIZE],
      running[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, done_old);
  cs_add(&s, T, "a", 0, 0, failed);
  cs_add(&s, T, "a", 0, 0, done_new);
  cs_add(&s, T, "a", 0, 0, running);
  cs_add(&s, T, "q", 0, 0, queued);
  cs_claim_expect(&s, T, done_old);
  cs_claim_expect(&s, T, failed);
  cs_claim_expect(&s, T, done_new);
  cs_claim_expect(&s, T, running);
  CK_INT(cs_finish(&s, done_old, 1, T + 10, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(cs_finish(&s, failed, 1, T + 20, fin_of(JOBQ_OUTCOME_FAILED, "no")), JOBQ_FAILED);
  CK_INT(cs_finish(&s, done_new, 1, T + 1000, FIN_OK), JOBQ_SUCCEEDED);
  char(*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 99;
  CK_OK(s.ops->prune(s.st, T + 500, 1000, &ids, &n));
  CK_INT(n, 2);
  CK(ids != NULL, "ids of the pruned jobs");
  int saw_old = 0, saw_failed = 0;
  for (size_t i = 0; i < n; i++) {
    saw_old |= strcmp(ids[i], done_old) == 0;
    saw_failed |= strcmp(ids[i], failed) == 0;
  }
  CK(saw_old && saw_failed, "the two old finished jobs were pruned");
  free(ids);
  CK_INT(state_or_gone(&s, done_old), JOBQ_ENOTFOUND);
  CK_INT(state_or_gone(&s, failed), JOBQ_ENOTFOUND);
  CK_INT(state_or_gone(&s, done_new), JOBQ_SUCCEEDED);
  CK_INT(state_or_gone(&s, running), JOBQ_RUNNING);
  CK_INT(state_or_gone(&s, queued), JOBQ_QUEUED);
  /* max bounds one call; NULL ids is allowed */
  CK_OK(s.ops->prune(s.st, T + 5000, 0, NULL, &n));
  CK_INT(n, 0);
  CK_OK(s.ops->prune(s.st, T + 5000, 10, NULL, &n));
  CK_INT(n, 1);
  CK_INT(state_or_gone(&s, done_new), JOBQ_ENOTFOUND);
  cs_close(&s);
}

static void cancel_each_state(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char q[JOBQ_ID_SIZE], d[JOBQ_ID_SIZE], r[JOBQ_ID_SIZE], ok[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "kq", 0, 0, q);
  cs_add(&s, T, "kd", 0, T + 1000, d);
  cs_add(&s, T, "kr", 0, 0, r);
  cs_add(&s, T, "ks", 0, 0, ok);
  jobq__id_new(nope, T);
  const char *kr[] = {"kr", "ks"};
  conf_claim cl = {0};
  cl.kinds = kr;
  cl.n_kinds = 2;
  cl.max = 2;
  cl.now = T;
  jobq_storage_job out[2];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 2);
  jobq_storage_job_clear(&out[0]);
  jobq_storage_job_clear(&out[1]);
  CK_INT(cs_finish(&s, ok, 1, T, FIN_OK), JOBQ_SUCCEEDED);

  /* Queued: cancelled now. */
  int st = -1;
  char *kind = NULL;
  CK_OK(s.ops->cancel(s.st, q, T + 5, &st, &kind));
  CK_INT(st, JOBQ_CANCELLED);
  CK_STR(kind, "kq");
  free(kind);
  jobq_storage_job j;
  cs_get(&s, q, T + 6, &j);
  CK_INT(j.state, JOBQ_CANCELLED);
  CK_STR(j.error, "cancelled");
  CK_INT(j.finished_at, T + 5);
  CK_INT(j.attempts, 0);
  CK_INT(j.position, -1);
  jobq_storage_job_clear(&j);
  /* Queued for later: cancelled too, and never comes due. */
  st = -1;
  CK_OK(s.ops->cancel(s.st, d, T + 5, &st, NULL));
  CK_INT(st, JOBQ_CANCELLED);
  int64_t next = 0;
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T + 5, &next));
  CK_INT(next, INT64_MAX);
  cs_claim_none(&s, T + 2000);
  /* Running: flagged, still running. */
  st = -1;
  kind = NULL;
  CK_OK(s.ops->cancel(s.st, r, T + 7, &st, &kind));
  CK_INT(st, JOBQ_RUNNING);
  CK_STR(kind, "kr");
  free(kind);
  cs_get(&s, r, T + 7, &j);
  CK_INT(j.state, JOBQ_RUNNING);
  CK_INT(j.cancel_requested, 1);
  CK_INT(j.finished_at, 0);
  jobq_storage_job_clear(&j);
  /* Again while running: still fine. */
  st = -1;
  CK_OK(s.ops->cancel(s.st, r, T + 8, &st, NULL));
  CK_INT(st, JOBQ_RUNNING);
  /* Finished: JOBQ_ESTATE and the state it is in. */
  st = -1;
  kind = NULL;
  CK_RC(JOBQ_ESTATE, s.ops->cancel(s.st, q, T + 9, &st, &kind));
  CK_INT(st, JOBQ_CANCELLED);
  free(kind);
  st = -1;
  kind = NULL;
  CK_RC(JOBQ_ESTATE, s.ops->cancel(s.st, ok, T + 9, &st, &kind));
  CK_INT(st, JOBQ_SUCCEEDED);
  free(kind);
  cs_get(&s, ok, T + 9, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.error, NULL);
  jobq_storage_job_clear(&j);
  /* Unknown. */
  st = -1;
  kind = NULL;
  CK_RC(JOBQ_ENOTFOUND, s.ops->cancel(s.st, nope, T, &st, &kind));
  free(kind);
  cs_close(&s);
}

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

/* ---- heartbeat, leases, rescue ------------------------------------------------------------------- */

static void heartbeat_reports(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], d[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, a);
  cs_add(&s, T, "a", 0, 0, b);
  cs_add(&s, T, "a", 0, 0, d);
  jobq__id_new(nope, T);
  cs_claim_expect(&s, T, a);
  cs_claim_expect(&s, T, b);
  cs_claim_expect(&s, T, d);
  int st;
  CK_OK(s.ops->cancel(s.st, b, T, &st, NULL));
  CK_INT(cs_finish(&s, d, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  jobq_storage_lease l[5];
  memset(l, 0, sizeof l);
  l[0].id = a;
  l[0].attempt = 1;
  l[1].id = b;
  l[1].attempt = 1;
  l[2].id = d; /* finished */
  l[2].attempt = 1;
  l[3].id = a; /* a stale attempt number */
  l[3].attempt = 2;
  l[4].id = nope;
  l[4].attempt = 1;
  for (int i = 0; i < 5; i++) {
    l[i].still_running = 77;
    l[i].cancel_requested = 77;
  }
  CK_OK(s.ops->heartbeat(s.st, l, 5, T + 30000));
  CK_INT(l[0].still_running, 1);
  CK_INT(l[0].cancel_requested, 0);
  CK_INT(l[1].still_running, 1);
  CK_INT(l[1].cancel_requested, 1);
  CK_INT(l[2].still_running, 0);
  CK_INT(l[3].still_running, 0);
  CK_INT(l[4].still_running, 0);
  for (int i = 2; i < 5; i++)
    CK(l[i].cancel_requested == 0 || l[i].cancel_requested == 1, "cancel_requested[%d] = %d", i,
       l[i].cancel_requested);
  /* A heartbeat changes nothing else. */
  CK_INT(cs_state(&s, a, T), JOBQ_RUNNING);
  CK_INT(cs_finish(&s, a, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_OK(s.ops->heartbeat(s.st, l, 0, T));
  cs_close(&s);
}

/* rescue for a backend without durable storage: a documented no-op. */
static void rescue_is_noop(conf_store *s, const char *id, int64_t far) {
  size_t n = 99;
  CK_OK(s->ops->rescue(s->st, far, &n));
  CK(n == 0, "rescue of a non-durable backend rescued %zu jobs; it is documented as a no-op", n);
  CK_INT(cs_state(s, id, far), JOBQ_RUNNING);
}

static void rescue_expired_lease(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.max_attempts = 3;
  cs_insert(&s, T, sp, id);
  conf_claim cl = {0};
  cl.now = T;
  cl.lease_ms = 100;
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  CK_INT(cs_claim_req(&s, cl, &j), 1);
  CK_STR(j.id, id);
  jobq_storage_job_clear(&j);
  if (!c->be->durable) {
    rescue_is_noop(&s, id, T + 1000000000);
    CK_INT(cs_finish(&s, id, 1, T + 1000000000, FIN_OK), JOBQ_SUCCEEDED);
    cs_close(&s);
    return;
  }
  /* Nothing while the lease lives (lease_until = T + 100 is not before T + 100). */
  size_t n = 99;
  CK_OK(s.ops->rescue(s.st, T + 50, &n));
  CK_INT(n, 0);
  CK_OK(s.ops->rescue(s.st, T + 100, &n));
  CK_INT(n, 0);
  CK_INT(cs_state(&s, id, T + 100), JOBQ_RUNNING);
  /* Expired: back to queued, the attempt counted, its error says why. */
  cs_add(&s, T, "a", 0, 0, other); /* queued: not touched */
  CK_OK(s.ops->rescue(s.st, T + 101, &n));
  CK_INT(n, 1);
  cs_get(&s, id, T + 101, &j);
  CK_INT(j.state, JOBQ_QUEUED);
  CK_INT(j.attempts, 1);
  CK_INT(j.cancel_requested, 0);
  CK_HAS(j.error, "lease");
  CK(j.run_at <= T + 101, "a rescued job is due at once; run_at T+%" PRId64, j.run_at - T);
  CK_INT(j.n_attempt_log, 1);
  if (j.n_attempt_log == 1) {
    CK_INT(j.attempt_log[0].started_at, T);
    CK_INT(j.attempt_log[0].finished_at, T + 101);
    CK_HAS(j.attempt_log[0].error, "lease");
  }
  jobq_storage_job_clear(&j);
  CK_INT(cs_state(&s, other, T + 101), JOBQ_QUEUED);
  /* Again: nothing left to rescue. */
  CK_OK(s.ops->rescue(s.st, T + 102, &n));
  CK_INT(n, 0);
  /* The dead attempt's late news is refused; its heartbeat says it is gone. */
  CK_INT(cs_finish(&s, id, 1, T + 103, FIN_OK), JOBQ_ESTATE);
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 1, 50, NULL));
  jobq_storage_lease l = {id, 1, 77, 77};
  CK_OK(s.ops->heartbeat(s.st, &l, 1, T + 100000));
  CK_INT(l.still_running, 0);
  /* The next claim runs it as attempt 2 (the first one in line). */
  CK_INT(cs_claim_expect(&s, T + 104, id), 2);
  CK_INT(cs_finish(&s, id, 2, T + 105, FIN_OK), JOBQ_SUCCEEDED);
  cs_get(&s, id, T + 105, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_INT(j.attempts, 2);
  CK_INT(j.n_attempt_log, 2);
  if (j.n_attempt_log == 2) {
    CK_HAS(j.attempt_log[0].error, "lease");
    CK_STR(j.attempt_log[1].error, NULL);
    CK_INT(j.attempt_log[1].started_at, T + 104);
  }
  jobq_storage_job_clear(&j);
  cs_close(&s);
}

static void rescue_heartbeat_extends_lease(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  conf_claim cl = {0};
  cl.now = T;
  cl.lease_ms = 100;
  jobq_storage_job j;
  CK_INT(cs_claim_req(&s, cl, &j), 1);
  jobq_storage_job_clear(&j);
  jobq_storage_lease l = {id, 1, 0, 0};
  CK_OK(s.ops->heartbeat(s.st, &l, 1, T + 1000));
  CK_INT(l.still_running, 1);
  if (!c->be->durable) {
    rescue_is_noop(&s, id, T + 5000);
    cs_close(&s);
    return;
  }
  size_t n = 99;
  CK_OK(s.ops->rescue(s.st, T + 500, &n));
  CK_INT(n, 0);
  CK_INT(cs_state(&s, id, T + 500), JOBQ_RUNNING);
  CK_OK(s.ops->rescue(s.st, T + 1001, &n));
  CK_INT(n, 1);
  CK_INT(cs_state(&s, id, T + 1001), JOBQ_QUEUED);
  cs_close(&s);
}

static void rescue_attempts_spent_or_cancelled(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char spent[JOBQ_ID_SIZE], canc[JOBQ_ID_SIZE], live[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.kind = "one";
  sp.max_attempts = 1;
  cs_insert(&s, T, sp, spent);
  cs_add(&s, T, "canc", 0, 0, canc);
  cs_add(&s, T, "live", 0, 0, live);
  const char *k1[] = {"one", "canc"};
  conf_claim cl = {0};
  cl.kinds = k1;
  cl.n_kinds = 2;
  cl.max = 2;
  cl.now = T;
  cl.lease_ms = 100;
  jobq_storage_job out[2];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 2);
  jobq_storage_job_clear(&out[0]);
  jobq_storage_job_clear(&out[1]);
  const char *k2[] = {"live"};
  cl.kinds = k2;
  cl.n_kinds = 1;
  cl.max = 1;
  cl.lease_ms = 100000;
  CK_INT(cs_claim_req(&s, cl, out), 1);
  jobq_storage_job_clear(&out[0]);
  int st;
  CK_OK(s.ops->cancel(s.st, canc, T + 1, &st, NULL));
  CK_INT(st, JOBQ_RUNNING);
  if (!c->be->durable) {
    rescue_is_noop(&s, spent, T + 1000000);
    CK_INT(cs_state(&s, canc, T + 1000000), JOBQ_RUNNING);
    cs_close(&s);
    return;
  }
  size_t n = 99;
  CK_OK(s.ops->rescue(s.st, T + 5000, &n));
  CK_INT(n, 2); /* not the one whose lease lives */
  jobq_storage_job j;
  cs_get(&s, spent, T + 5000, &j);
  CK_INT(j.state, JOBQ_FAILED);
  CK_INT(j.attempts, 1);
  CK_INT(j.finished_at, T + 5000);
  CK_HAS(j.error, "lease");
  jobq_storage_job_clear(&j);
  cs_get(&s, canc, T + 5000, &j);
  CK_INT(j.state, JOBQ_CANCELLED);
  CK_INT(j.finished_at, T + 5000);
  jobq_storage_job_clear(&j);
  CK_INT(cs_state(&s, live, T + 5000), JOBQ_RUNNING);
  cs_claim_none(&s, T + 5000);
  cs_close(&s);
}

/* Two handles on the same URL are one queue (durable backends). */
static void shared_between_handles(conf_case *c) {
  conf_store s1, s2;
  cs_open(c, &s1);
  cs_open(c, &s2);
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  cs_add(&s1, T, "a", 0, 0, a);
  cs_add(&s2, T, "a", 0, 0, b);
  CK_INT(cs_state(&s2, a, T), JOBQ_QUEUED);
  cs_claim_expect(&s2, T, a);
  cs_claim_expect(&s1, T, b);
  cs_claim_none(&s1, T);
  cs_claim_none(&s2, T);
  CK_INT(cs_finish(&s1, a, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(cs_state(&s2, a, T), JOBQ_SUCCEEDED);
  cs_close(&s1);
  CK_INT(cs_finish(&s2, b, 1, T, FIN_OK), JOBQ_SUCCEEDED);
  cs_close(&s2);
  /* And a new handle sees it all. */
  cs_open(c, &s1);
  CK_INT(cs_state(&s1, b, T), JOBQ_SUCCEEDED);
  cs_close(&s1);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(insert_get_every_field),
    CONF_TEST(insert_batch),
    CONF_TEST_NEED(insert_all_or_none, CONF_NEED_DUP_IDS),
    CONF_TEST(dedupe_live_force_batch),
    CONF_TEST(dedupe_ttl_and_finished),
    CONF_TEST(claim_priority_then_fifo),
    CONF_TEST(claim_across_kinds),
    CONF_TEST(claim_batch_best_in_order),
    CONF_TEST(claim_fifo_is_store_order),
    CONF_TEST(claim_large_batch_in_order),
    CONF_TEST(claim_kind_limits),
    CONF_TEST(claim_exclude_with_any_kind),
    CONF_TEST(claim_scheduled_not_before_due),
    CONF_TEST(claim_record_and_max_attempts),
    CONF_TEST(finish_succeeded),
    CONF_TEST(finish_failed),
    CONF_TEST(finish_retry_then_succeed),
    CONF_TEST(finish_cancelled_outcome),
    CONF_TEST(finish_release_not_counted),
    CONF_TEST(finish_stale_and_unknown),
    CONF_TEST(finish_after_cancel_request),
    CONF_TEST(finish_async_when_offered),
    CONF_TEST(progress_running_attempt_only),
    CONF_TEST(checkpoint_survives_retry),
    CONF_TEST(prune_finished_only),
    CONF_TEST(cancel_each_state),
    CONF_TEST(get_position_counts_jobs_ahead),
    CONF_TEST(get_position_counts_due_scheduled_ahead),
    CONF_TEST(list_filters),
    CONF_TEST(list_paging),
    CONF_TEST(list_bad_cursor),
    CONF_TEST(next_run_at_earliest_scheduled),
    CONF_TEST(next_run_at_skips_jobs_already_due),
    CONF_TEST(heartbeat_reports),
    CONF_TEST(rescue_expired_lease),
    CONF_TEST(rescue_heartbeat_extends_lease),
    CONF_TEST(rescue_attempts_spent_or_cancelled),
    CONF_TEST_NEED(shared_between_handles, CONF_NEED_DURABLE),
  };
  return conf_run("storage vtable", tests, sizeof tests / sizeof tests[0]);
}
