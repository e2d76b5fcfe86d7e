/* Storage conformance, layer 1 (the vtable; see conf_storage.h): insert, get and dedupe. */
#include "conf_storage.h"

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

/* ---- batches (version 3: batch_insert, batch_get, set_batch_sink) ---------- */

typedef struct batch_news {
  int n;
  char id[JOBQ_ID_SIZE], batch[JOBQ_ID_SIZE], kind[65];
  int type, state;
  char result[1024];
} batch_news;

static void batch_news_sink(void *ud, const jobq_storage_event *ev) {
  batch_news *b = ud;
  b->n++;
  b->type = ev->type;
  b->state = ev->state;
  snprintf(b->id, sizeof b->id, "%s", ev->id ? ev->id : "(null)");
  snprintf(b->batch, sizeof b->batch, "%s", ev->step ? ev->step : "(null)");
  snprintf(b->kind, sizeof b->kind, "%s", ev->kind ? ev->kind : "(null)");
  snprintf(b->result, sizeof b->result, "%s", ev->result ? ev->result : "(null)");
}

static void cs_batch(conf_store *s, const char *bid, jobq_storage_batch *out) {
  memset(out, 0, sizeof *out);
  CK_OK(s->ops->batch_get(s->st, bid, out));
}

/* The members, the cap in claims, the counters and one piece of news when
 * the last member ends, through the vtable. */
static void batch_insert_claim_finish(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  CK(s.ops->batch_insert && s.ops->batch_get && s.ops->set_batch_sink, "no batch members");
  batch_news news = {0};
  CK_OK(s.ops->set_batch_sink(s.st, batch_news_sink, &news));
  char held[JOBQ_ID_SIZE];
  conf_spec k = {0};
  k.kind = "bk";
  k.dedupe_key = "bkey";
  CK_INT(cs_insert(&s, T, k, held), 0);
  conf_spec sp[4];
  memset(sp, 0, sizeof sp);
  for (int i = 0; i < 4; i++) sp[i].kind = "bk";
  sp[3].dedupe_key = "bkey"; /* a hit: not a member */
  sp[2].run_at = T + 500;    /* scheduled: comes due into the batch's line */
  char bid[JOBQ_ID_SIZE], ids[4][JOBQ_ID_SIZE];
  int dup[4];
  jobq__id_new(bid, T);
  CK_OK(cs_insert_nb(&s, T, sp, 4, ids, dup, bid, 1));
  CK_INT(dup[3], 1);
  CK_STR(ids[3], held);
  jobq_storage_batch b;
  cs_batch(&s, bid, &b);
  CK_STR(b.id, bid);
  CK_INT(b.total, 3);
  CK_INT(b.queued, 3);
  CK_INT(b.max_running, 1);
  CK_INT(b.created_at, T);
  CK_INT(b.finished_at, 0);
  jobq_storage_batch_clear(&b);
  /* The job outside the batch is claimed as ever; of the batch, one. */
  cs_claim_expect(&s, T, held);
  cs_claim_expect(&s, T, ids[0]);
  cs_claim_none(&s, T + 1000);
  cs_batch(&s, bid, &b);
  CK_INT(b.running, 1);
  CK_INT(b.queued, 2);
  jobq_storage_batch_clear(&b);
  CK_INT(cs_finish(&s, ids[0], 1, T + 1000, fin_of(JOBQ_OUTCOME_FAILED, "bad")), JOBQ_FAILED);
  CK_INT(news.n, 0);
  cs_claim_expect(&s, T + 1000, ids[1]);
  cs_claim_none(&s, T + 1000);
  CK_INT(cs_finish(&s, ids[1], 1, T + 1000, fin_of(JOBQ_OUTCOME_SUCCEEDED, NULL)), JOBQ_SUCCEEDED);
  cs_claim_expect(&s, T + 1000, ids[2]);
  CK_INT(cs_finish(&s, ids[2], 1, T + 2000, fin_of(JOBQ_OUTCOME_SUCCEEDED, NULL)), JOBQ_SUCCEEDED);
  CK_INT(news.n, 1);
  CK_INT(news.type, JOBQ_EVENT_BATCH_DONE);
  CK_INT(news.state, JOBQ_SUCCEEDED);
  CK_STR(news.id, ids[2]);
  CK_STR(news.batch, bid);
  CK_STR(news.kind, "bk");
  char want[512];
  snprintf(want, sizeof want,
           "{\"batchId\":\"%s\",\"total\":3,\"succeeded\":2,\"failed\":1,\"cancelled\":0,"
           "\"errors\":[{\"jobId\":\"%s\",\"error\":\"bad\"}]}",
           bid, ids[0]);
  CK_STR(news.result, want);
  cs_batch(&s, bid, &b);
  CK_INT(b.finished_at, T + 2000);
  CK_STR(b.last_job, ids[2]);
  CK_INT(b.succeeded, 2);
  CK_INT(b.failed, 1);
  CK_INT(b.n_errors, 1);
  CK_STR(b.errors[0].job_id, ids[0]);
  CK_STR(b.errors[0].error, "bad");
  jobq_storage_batch_clear(&b);
  CK_RC(JOBQ_ENOTFOUND, s.ops->batch_get(s.st, held, &b));
  cs_close(&s);
}

/* A batch_insert that fails stores neither its jobs nor its batch. */
static void batch_insert_all_or_none(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char x[JOBQ_ID_SIZE];
  cs_add(&s, T, "orig", 0, 0, x);
  conf_spec sp[2];
  memset(sp, 0, sizeof sp);
  char a[JOBQ_ID_SIZE], bid[JOBQ_ID_SIZE];
  jobq__id_new(a, T);
  jobq__id_new(bid, T);
  sp[0].id = a;
  sp[1].id = x; /* taken */
  int rc = cs_insert_nb(&s, T, sp, 2, NULL, NULL, bid, 2);
  CK(rc < 0, "a batch with a taken id returned %d; expected an error", rc);
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, a, T, &j));
  jobq_storage_batch b;
  CK_RC(JOBQ_ENOTFOUND, s.ops->batch_get(s.st, bid, &b));
  cs_close(&s);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(insert_get_every_field),
    CONF_TEST(insert_batch),
    CONF_TEST_NEED(insert_all_or_none, CONF_NEED_DUP_IDS),
    CONF_TEST(batch_insert_claim_finish),
    CONF_TEST_NEED(batch_insert_all_or_none, CONF_NEED_DUP_IDS),
    CONF_TEST(dedupe_live_force_batch),
    CONF_TEST(dedupe_ttl_and_finished),
  };
  return conf_run("storage vtable: insert, get and dedupe", tests, sizeof tests / sizeof tests[0]);
}
