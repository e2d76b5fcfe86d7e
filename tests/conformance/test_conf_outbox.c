/* Storage conformance, layer 1 (the vtable; see conf_storage.h): the webhook
 * outbox (version 4): the deliveries each change adds (insert_hooked,
 * cron_fire_hooked, finish, cancel, rescue, checkpoint), outbox_claim,
 * outbox_done, outbox_list, outbox_counts, outbox_redeliver,
 * webhook_enable, and prune's guard. A backend whose table is older than
 * version 4, or that leaves the outbox out, is skipped with a message. */
#include "conf_storage.h"

#define MAXD 32

/* Opens the case's store; 0 (store closed, test skipped) when the backend
 * has no outbox. */
static int ob_open(conf_case *c, conf_store *s) {
  cs_open(c, s);
  if (s->ops->version >= 4 && s->ops->outbox_claim && s->ops->insert_hooked) return 1;
  print_message("[%s] skipped: the backend has no webhook outbox (storage version %d, "
                "outbox_claim %s)\n",
                c->be->name, s->ops->version,
                s->ops->version >= 4 && s->ops->outbox_claim ? "set" : "NULL");
  cs_close(s);
  skip();
  return 0;
}

/* Inserts one job with subscriptions hooks (NULL: none) at now; returns
 * the call's code, the id in id and the dedupe flag in *dup. */
static int hk_insert_rc(conf_store *s, int64_t now, conf_spec sp, const char *hooks, char *id,
                        int *dup) {
  jobq_storage_job r;
  memset(&r, 0, sizeof r);
  if (sp.id) snprintf(r.id, sizeof r.id, "%s", sp.id);
  else jobq__id_new(r.id, now);
  r.kind = (char *)(sp.kind ? sp.kind : "a");
  r.payload = (char *)(sp.payload ? sp.payload : "{}");
  r.owner = (char *)sp.owner;
  r.state = JOBQ_QUEUED;
  r.priority = sp.priority;
  r.max_attempts = sp.max_attempts;
  r.created_at = now;
  r.run_at = sp.run_at ? sp.run_at : now;
  r.dedupe_key = (char *)sp.dedupe_key;
  r.dedupe_ttl_ms = sp.dedupe_ttl;
  r.position = -1;
  jobq_storage_job *p = &r;
  const char *w[1] = {hooks};
  int force = sp.force, d = -1;
  int rc = s->ops->insert_hooked(s->st, &p, w, 1, &force, now, &d, NULL, 0);
  if (id) memcpy(id, r.id, JOBQ_ID_SIZE);
  if (dup) *dup = d;
  return rc;
}

static void hk_insert(conf_store *s, int64_t now, const char *kind, const char *hooks, char *id) {
  conf_spec sp = {0};
  sp.kind = kind;
  int dup = -1;
  CK_OK(hk_insert_rc(s, now, sp, hooks, id, &dup));
  CK_INT(dup, 0);
}

/* A hooked job of kind, claimed at at and ended with outcome at fin
 * (returns the state finish reported). */
static int hk_ended(conf_store *s, const char *kind, const char *hooks, int64_t at, int64_t fin,
                    int outcome, char *id) {
  hk_insert(s, at, kind, hooks, id);
  int att = claim_kind(s, kind, at, id);
  conf_fin f = outcome == JOBQ_OUTCOME_SUCCEEDED ? FIN_OK : fin_of(outcome, "no");
  return cs_finish(s, id, att, fin, f);
}

/* Every delivery of job (NULL: all), oldest first, into out (at most MAXD,
 * cleared by the caller with ob_clear); returns how many. */
static size_t ob_list(conf_store *s, const char *job, int state, jobq_storage_delivery *out) {
  jobq_storage_outbox_filter f = {job, state, MAXD, NULL};
  jobq_storage_delivery *v = NULL;
  size_t n = 999;
  int more = -1;
  CK_OK(s->ops->outbox_list(s->st, &f, &v, &n, &more));
  CK(n <= MAXD, "outbox_list returned %zu for limit %d", n, MAXD);
  CK((n == 0) == (v == NULL), "outbox_list: out must be NULL exactly when nothing matched");
  CK_INT(more, 0);
  if (n) memcpy(out, v, n * sizeof *v);
  free(v);
  return n;
}

static void ob_clear(jobq_storage_delivery *v, size_t n) {
  for (size_t i = 0; i < n; i++) jobq_storage_delivery_clear(&v[i]);
}

static size_t ob_count_job(conf_store *s, const char *job) {
  jobq_storage_delivery v[MAXD];
  size_t n = ob_list(s, job, -1, v);
  ob_clear(v, n);
  return n;
}

static const jobq_storage_delivery *ob_find(const jobq_storage_delivery *v, size_t n,
                                            const char *id) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].id, id) == 0) return &v[i];
  return NULL;
}

static void did(char *out, size_t cap, const char *job, int hook, const char *ev) {
  snprintf(out, cap, "%s:%d:%s", job, hook, ev);
}

/* d is a fresh delivery: id, job, hook, event, endpoint, url, flags,
 * pending, attempts 0, created = next = updated = at. */
static void ck_fresh(const jobq_storage_delivery *d, const char *job, int hook, int event,
                     const char *ep, const char *url, int flags, int64_t at) {
  CK(d != NULL, "delivery of job %s hook %d is missing", job, hook);
  CK_STR(d->job_id, job);
  CK_INT(d->hook, hook);
  CK_INT(d->event, event);
  CK_STR(d->endpoint, ep);
  CK_STR(d->url, url);
  CK_INT(d->flags, flags);
  CK_INT(d->state, JOBQ_DELIVERY_PENDING);
  CK_INT(d->attempts, 0);
  CK_INT(d->last_status, 0);
  CK_STR(d->last_error, NULL);
  CK_INT(d->created_at, at);
  CK_INT(d->next_at, at);
  CK_INT(d->updated_at, at);
}

static void ck_counts(conf_store *s, int64_t pending, int64_t sending, int64_t delivered,
                      int64_t failed) {
  int64_t c[4] = {-1, -1, -1, -1};
  CK_OK(s->ops->outbox_counts(s->st, c));
  CK_INT(c[JOBQ_DELIVERY_PENDING], pending);
  CK_INT(c[JOBQ_DELIVERY_SENDING], sending);
  CK_INT(c[JOBQ_DELIVERY_DELIVERED], delivered);
  CK_INT(c[JOBQ_DELIVERY_FAILED], failed);
}

/* outbox_claim of endpoints eps (urls may be NULL) at now; returns how
 * many; *next (if not NULL) the out parameter. */
static size_t ob_claim(conf_store *s, const char *const *eps, const char *const *urls, size_t ne,
                       size_t max, int64_t now, int64_t lease, jobq_storage_delivery *out,
                       jobq_storage_job *jobs, int64_t *next) {
  int64_t nx = -12345;
  jobq_storage_outbox_claim r = {eps, urls, ne, max, now, lease, &nx};
  size_t n = 999;
  memset(out, 0, max * sizeof *out);
  memset(jobs, 0, max * sizeof *jobs);
  CK_OK(s->ops->outbox_claim(s->st, &r, out, jobs, &n));
  CK(n <= max, "outbox_claim returned %zu for max %zu", n, max);
  CK(nx != -12345, "outbox_claim did not set next_at");
  if (next) *next = nx;
  return n;
}

static void claim_clear(jobq_storage_delivery *d, jobq_storage_job *j, size_t n) {
  for (size_t i = 0; i < n; i++) {
    jobq_storage_delivery_clear(&d[i]);
    jobq_storage_job_clear(&j[i]);
  }
}

static int ob_done1(conf_store *s, const char *id, int attempt, int state, int status,
                    const char *error, int64_t next_at, int64_t now, const char *disable) {
  jobq_storage_outbox_result r = {id, attempt, state, status, error, next_at, now, disable};
  int applied = -1;
  CK_OK(s->ops->outbox_done(s->st, &r, 1, &applied));
  return applied;
}

/* The hooks most tests use: endpoint "a" for every end, "b" with its own
 * URL and the payload for success and failure, "c" for failure and
 * cancel. */
#define HOOKS3                                                                    \
  "[{\"e\":\"a\",\"on\":7},{\"e\":\"b\",\"on\":3,\"u\":\"https://b.example/own\"," \
  "\"p\":1},{\"e\":\"c\",\"on\":6}]"

/* ---- the changes that add deliveries ---------------------------------------------------------- */

static void end_succeeded(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char id[JOBQ_ID_SIZE], x[128];
  CK_INT(hk_ended(&s, "a", HOOKS3, T, T + 5, JOBQ_OUTCOME_SUCCEEDED, id), JOBQ_SUCCEEDED);
  jobq_storage_delivery v[MAXD];
  size_t n = ob_list(&s, id, -1, v);
  CK_INT(n, 2);
  did(x, sizeof x, id, 0, "succeeded");
  ck_fresh(ob_find(v, n, x), id, 0, JOBQ_EVENT_SUCCEEDED, "a", NULL, 0, T + 5);
  did(x, sizeof x, id, 1, "succeeded");
  ck_fresh(ob_find(v, n, x), id, 1, JOBQ_EVENT_SUCCEEDED, "b", "https://b.example/own", 1, T + 5);
  ob_clear(v, n);
  ck_counts(&s, 2, 0, 0, 0);
  cs_close(&s);
}

static void end_failed(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char id[JOBQ_ID_SIZE], x[128];
  CK_INT(hk_ended(&s, "a", HOOKS3, T, T + 7, JOBQ_OUTCOME_FAILED, id), JOBQ_FAILED);
  jobq_storage_delivery v[MAXD];
  size_t n = ob_list(&s, id, -1, v);
  CK_INT(n, 3);
  did(x, sizeof x, id, 0, "failed");
  ck_fresh(ob_find(v, n, x), id, 0, JOBQ_EVENT_FAILED, "a", NULL, 0, T + 7);
  did(x, sizeof x, id, 1, "failed");
  ck_fresh(ob_find(v, n, x), id, 1, JOBQ_EVENT_FAILED, "b", "https://b.example/own", 1, T + 7);
  did(x, sizeof x, id, 2, "failed");
  ck_fresh(ob_find(v, n, x), id, 2, JOBQ_EVENT_FAILED, "c", NULL, 0, T + 7);
  ob_clear(v, n);
  cs_close(&s);
}

/* The cancelled deliveries of job id made at `at`: hooks 0 and 2. */
static void ck_cancelled(conf_store *s, const char *id, int64_t at) {
  char x[128];
  jobq_storage_delivery v[MAXD];
  size_t n = ob_list(s, id, -1, v);
  CK_INT(n, 2);
  did(x, sizeof x, id, 0, "cancelled");
  ck_fresh(ob_find(v, n, x), id, 0, JOBQ_EVENT_CANCELLED, "a", NULL, 0, at);
  did(x, sizeof x, id, 2, "cancelled");
  ck_fresh(ob_find(v, n, x), id, 2, JOBQ_EVENT_CANCELLED, "c", NULL, 0, at);
  ob_clear(v, n);
}

/* Every path to cancelled: the outcome, a requested cancel whatever the
 * outcome (retry here), the cancel of a queued job. */
static void end_cancelled_paths(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], q[JOBQ_ID_SIZE];
  CK_INT(hk_ended(&s, "a", HOOKS3, T, T + 3, JOBQ_OUTCOME_CANCELLED, a), JOBQ_CANCELLED);
  ck_cancelled(&s, a, T + 3);

  hk_insert(&s, T, "b", HOOKS3, b);
  int att = claim_kind(&s, "b", T + 1, b);
  int st = -1;
  CK_OK(s.ops->cancel(s.st, b, T + 2, &st, NULL));
  CK_INT(st, JOBQ_RUNNING);
  CK_INT(ob_count_job(&s, b), 0); /* a request is not an end */
  conf_fin f = fin_of(JOBQ_OUTCOME_RETRY, "again");
  f.run_at = T + 100;
  CK_INT(cs_finish(&s, b, att, T + 4, f), JOBQ_CANCELLED);
  ck_cancelled(&s, b, T + 4);

  hk_insert(&s, T, "q", HOOKS3, q);
  CK_OK(s.ops->cancel(s.st, q, T + 9, &st, NULL));
  CK_INT(st, JOBQ_CANCELLED);
  ck_cancelled(&s, q, T + 9);
  ck_counts(&s, 6, 0, 0, 0);
  cs_close(&s);
}

/* Retry, release and defer are not ends; jobs without hooks add nothing. */
static void no_delivery_when_not_an_end(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char id[JOBQ_ID_SIZE], plain[JOBQ_ID_SIZE];
  hk_insert(&s, T, "a", HOOKS3, id);
  int att = claim_kind(&s, "a", T, id);
  conf_fin f = fin_of(JOBQ_OUTCOME_RETRY, "again");
  f.run_at = T + 10;
  CK_INT(cs_finish(&s, id, att, T + 1, f), JOBQ_QUEUED);
  att = claim_kind(&s, "a", T + 10, id);
  CK_INT(cs_finish(&s, id, att, T + 11, fin_of(JOBQ_OUTCOME_RELEASE, NULL)), JOBQ_QUEUED);
  att = claim_kind(&s, "a", T + 12, id);
  if (s.ops->rate_window) {
    f = fin_of(JOBQ_OUTCOME_DEFER, "rate");
    f.run_at = T + 20;
    CK_INT(cs_finish(&s, id, att, T + 13, f), JOBQ_QUEUED);
    att = claim_kind(&s, "a", T + 20, id);
  }
  CK_INT(ob_count_job(&s, id), 0);
  ck_counts(&s, 0, 0, 0, 0);
  /* A job stored by insert_hooked without hooks, and one by insert. */
  hk_insert(&s, T, "p", NULL, plain);
  claim_kind(&s, "p", T, plain);
  CK_INT(cs_finish(&s, plain, 1, T + 30, FIN_OK), JOBQ_SUCCEEDED);
  cs_add(&s, T, "p", 0, 0, plain);
  claim_kind(&s, "p", T, plain);
  CK_INT(cs_finish(&s, plain, 1, T + 30, fin_of(JOBQ_OUTCOME_FAILED, "x")), JOBQ_FAILED);
  ck_counts(&s, 0, 0, 0, 0);
  /* The hooked job's end still adds its deliveries. */
  CK_INT(cs_finish(&s, id, att, T + 40, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(ob_count_job(&s, id), 2);
  cs_close(&s);
}

/* A finish applied twice (a stale second one) adds nothing twice. */
static void end_applied_once(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char id[JOBQ_ID_SIZE];
  hk_insert(&s, T, "a", HOOKS3, id);
  int att = claim_kind(&s, "a", T, id);
  jobq_storage_finish f[2];
  memset(f, 0, sizeof f);
  for (int i = 0; i < 2; i++) {
    f[i].id = id;
    f[i].attempt = att;
    f[i].outcome = i ? JOBQ_OUTCOME_FAILED : JOBQ_OUTCOME_SUCCEEDED;
    f[i].error = i ? "late" : NULL;
    f[i].now = T + 5;
  }
  int out[2] = {-1, -1};
  CK_OK(s.ops->finish(s.st, f, 2, out));
  CK_INT(out[0], JOBQ_SUCCEEDED);
  CK_INT(out[1], JOBQ_ESTATE);
  CK_INT(ob_count_job(&s, id), 2);
  ck_counts(&s, 2, 0, 0, 0);
  cs_close(&s);
}

/* Rescue of an attempt whose lease ended, with attempts spent, fails the
 * job: its failed deliveries (durable backends; the others' rescue is a
 * no-op). A rescue back to queued adds nothing. */
static void end_rescue_spent(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.kind = "a";
  sp.max_attempts = 1;
  CK_OK(hk_insert_rc(&s, T, sp, HOOKS3, a, NULL));
  sp.max_attempts = 2;
  CK_OK(hk_insert_rc(&s, T, sp, HOOKS3, b, NULL));
  jobq_storage_job j[2];
  conf_claim cl = {0};
  cl.max = 2;
  cl.now = T;
  cl.lease_ms = 100;
  CK_INT(cs_claim_req(&s, cl, j), 2);
  jobq_storage_job_clear(&j[0]);
  jobq_storage_job_clear(&j[1]);
  size_t n = 0;
  CK_OK(s.ops->rescue(s.st, T + 500, &n));
  CK_INT(n, 2);
  CK_INT(cs_state(&s, a, T + 500), JOBQ_FAILED);
  CK_INT(cs_state(&s, b, T + 500), JOBQ_QUEUED);
  jobq_storage_delivery v[MAXD];
  size_t k = ob_list(&s, a, -1, v);
  CK_INT(k, 3);
  char x[128];
  did(x, sizeof x, a, 0, "failed");
  const jobq_storage_delivery *d = ob_find(v, k, x);
  CK(d != NULL, "no delivery %s after the rescue", x);
  if (d) {
    CK_INT(d->event, JOBQ_EVENT_FAILED);
    CK_INT(d->state, JOBQ_DELIVERY_PENDING);
    CK(d->created_at >= T + 100 && d->created_at <= T + 500,
       "created_at T%+" PRId64 " is not the rescue's time", d->created_at - T);
  }
  ob_clear(v, k);
  CK_INT(ob_count_job(&s, b), 0);
  cs_close(&s);
}

/* A dedupe hit stores nothing, its subscriptions included; batch inserts
 * carry subscriptions per job. */
static void dedupe_and_batch(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char first[JOBQ_ID_SIZE], hit[JOBQ_ID_SIZE];
  conf_spec sp = {0};
  sp.kind = "a";
  sp.dedupe_key = "k1";
  int dup = -1;
  CK_OK(hk_insert_rc(&s, T, sp, NULL, first, &dup));
  CK_INT(dup, 0);
  CK_OK(hk_insert_rc(&s, T + 1, sp, HOOKS3, hit, &dup));
  CK_INT(dup, 1);
  CK_STR(hit, first);
  claim_kind(&s, "a", T + 2, first);
  CK_INT(cs_finish(&s, first, 1, T + 3, FIN_OK), JOBQ_SUCCEEDED);
  ck_counts(&s, 0, 0, 0, 0);

  if (s.ops->batch_insert) {
    jobq_storage_job r[3];
    jobq_storage_job *p[3];
    memset(r, 0, sizeof r);
    const char *hooks[3] = {"[{\"e\":\"a\",\"on\":1}]", NULL, "[{\"e\":\"b\",\"on\":3}]"};
    for (int i = 0; i < 3; i++) {
      jobq__id_new(r[i].id, T);
      r[i].kind = (char *)"bt";
      r[i].payload = (char *)"{}";
      r[i].created_at = r[i].run_at = T;
      r[i].position = -1;
      p[i] = &r[i];
    }
    int force[3] = {0, 0, 0}, d[3] = {-1, -1, -1};
    CK_OK(s.ops->insert_hooked(s.st, p, hooks, 3, force, T, d, "batch-1", 0));
    jobq_storage_batch b;
    memset(&b, 0, sizeof b);
    CK_OK(s.ops->batch_get(s.st, "batch-1", &b));
    CK_INT(b.total, 3);
    jobq_storage_batch_clear(&b);
    for (int i = 0; i < 3; i++) {
      int att = claim_kind(&s, "bt", T + 1, NULL);
      (void)att;
    }
    for (int i = 0; i < 3; i++) CK_INT(cs_finish(&s, r[i].id, 1, T + 5, FIN_OK), JOBQ_SUCCEEDED);
    CK_INT(ob_count_job(&s, r[0].id), 1);
    CK_INT(ob_count_job(&s, r[1].id), 0);
    CK_INT(ob_count_job(&s, r[2].id), 1);
    /* insert_hooked with webhooks NULL: no job has any. */
    jobq__id_new(r[1].id, T);
    CK_OK(s.ops->insert_hooked(s.st, &p[1], NULL, 1, force, T, d, NULL, 0));
    claim_kind(&s, "bt", T + 6, r[1].id);
    CK_INT(cs_finish(&s, r[1].id, 1, T + 7, FIN_OK), JOBQ_SUCCEEDED);
    ck_counts(&s, 2, 0, 0, 0);
  }
  cs_close(&s);
}

static void cron_fire_hooked_adds_hooks(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  CK(s.ops->cron_fire_hooked != NULL, "cron_fire_hooked is NULL");
  if (s.ops->cron_put) {
    jobq_storage_cron cr = {0};
    cr.name = (char *)"nightly";
    cr.expr = (char *)"0 0 * * *";
    cr.tz = (char *)"UTC";
    cr.kind = (char *)"cr";
    cr.payload = (char *)"{}";
    cr.next_at = T + 1000;
    CK_OK(s.ops->cron_put(s.st, &cr));
    jobq_storage_job r;
    memset(&r, 0, sizeof r);
    jobq__id_new(r.id, T + 1000);
    r.kind = (char *)"cr";
    r.payload = (char *)"{}";
    r.created_at = r.run_at = T + 1000;
    r.dedupe_key = (char *)"cron:nightly:1700000001000";
    r.position = -1;
    jobq_storage_job *p = &r;
    const char *w[1] = {"[{\"e\":\"a\",\"on\":1,\"p\":1}]"};
    size_t ins = 99;
    CK_OK(s.ops->cron_fire_hooked(s.st, "nightly", T + 1000, T + 2000, &p, w, 1, T + 1000, &ins));
    CK_INT(ins, 1);
    claim_kind(&s, "cr", T + 1000, r.id);
    CK_INT(cs_finish(&s, r.id, 1, T + 1500, FIN_OK), JOBQ_SUCCEEDED);
    jobq_storage_delivery v[MAXD];
    size_t n = ob_list(&s, r.id, -1, v);
    CK_INT(n, 1);
    char x[128];
    did(x, sizeof x, r.id, 0, "succeeded");
    ck_fresh(ob_find(v, n, x), r.id, 0, JOBQ_EVENT_SUCCEEDED, "a", NULL, 1, T + 1500);
    ob_clear(v, n);
  }
  cs_close(&s);
}

/* Text that is not a webhooks array: refused with JOBQ_EINVAL (nothing
 * stored) or stored as "no hooks"; never a crash. */
static void bad_webhooks_text(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  static const char *const bad[] = {"not json", "{}", "[]", "[1]", "[{\"on\":1}]",
                                    "[{\"e\":\"a\",\"on\":99}]", "[{\"e\":\"a\"}]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char id[JOBQ_ID_SIZE];
    conf_spec sp = {0};
    sp.kind = "bad";
    int dup = -1;
    jobq_storage_set_error("");
    int rc = hk_insert_rc(&s, T, sp, bad[i], id, &dup);
    CK(rc == 0 || rc == JOBQ_EINVAL, "webhooks '%s': rc %d", bad[i], rc);
    if (rc == JOBQ_EINVAL) {
      CK(jobq_last_error()[0] != '\0', "webhooks '%s': EINVAL without a sentence", bad[i]);
      jobq_storage_job j;
      memset(&j, 0, sizeof j);
      CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, id, T, &j));
      continue;
    }
    claim_kind(&s, "bad", T, id);
    CK_INT(cs_finish(&s, id, 1, T + 1, FIN_OK), JOBQ_SUCCEEDED);
  }
  ck_counts(&s, 0, 0, 0, 0);
  cs_close(&s);
}

/* Progress at checkpoints: one pending per hook (coalesced), a new one
 * once that one is being sent, the pending one dropped at the end. The
 * checkpoint is given no time: the delivery carries the attempt's start. */
static void progress_coalesced_and_dropped(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char id[JOBQ_ID_SIZE], x[128];
  hk_insert(&s, T, "a", "[{\"e\":\"a\",\"on\":9},{\"e\":\"b\",\"on\":1},{\"e\":\"c\",\"on\":8}]", id);
  int att = claim_kind(&s, "a", T + 10, id);
  CK_OK(s.ops->checkpoint(s.st, id, att, 0, "{}", 20, "one"));
  jobq_storage_delivery v[MAXD];
  size_t n = ob_list(&s, id, -1, v);
  CK_INT(n, 2);
  did(x, sizeof x, id, 0, "progress:0");
  ck_fresh(ob_find(v, n, x), id, 0, JOBQ_EVENT_PROGRESS, "a", NULL, 0, T + 10);
  did(x, sizeof x, id, 2, "progress:0");
  ck_fresh(ob_find(v, n, x), id, 2, JOBQ_EVENT_PROGRESS, "c", NULL, 0, T + 10);
  ob_clear(v, n);
  CK_OK(s.ops->checkpoint(s.st, id, att, 1, "{}", 40, "two"));
  CK_INT(ob_count_job(&s, id), 2); /* coalesced */

  /* Hook 0's is being sent: the next boundary adds one for hook 0 only. */
  const char *eps[] = {"a"};
  jobq_storage_delivery d[4];
  jobq_storage_job j[4];
  CK_INT(ob_claim(&s, eps, NULL, 1, 4, T + 20, 1000, d, j, NULL), 1);
  claim_clear(d, j, 1);
  CK_OK(s.ops->checkpoint(s.st, id, att, 2, "{}", 60, "three"));
  n = ob_list(&s, id, -1, v);
  CK_INT(n, 3);
  did(x, sizeof x, id, 0, "progress:2");
  CK(ob_find(v, n, x) != NULL, "no delivery %s", x);
  ob_clear(v, n);
  CK_OK(s.ops->checkpoint(s.st, id, att, 3, "{}", 80, "four"));
  CK_INT(ob_count_job(&s, id), 3);
  ck_counts(&s, 2, 1, 0, 0);

  /* The end: pending progress gone, the one being sent stays. */
  CK_INT(cs_finish(&s, id, att, T + 30, FIN_OK), JOBQ_SUCCEEDED);
  n = ob_list(&s, id, -1, v);
  CK_INT(n, 3);
  did(x, sizeof x, id, 0, "progress:0");
  const jobq_storage_delivery *p0 = ob_find(v, n, x);
  CK(p0 && p0->state == JOBQ_DELIVERY_SENDING, "the progress delivery being sent is gone");
  did(x, sizeof x, id, 0, "succeeded");
  ck_fresh(ob_find(v, n, x), id, 0, JOBQ_EVENT_SUCCEEDED, "a", NULL, 0, T + 30);
  did(x, sizeof x, id, 1, "succeeded");
  ck_fresh(ob_find(v, n, x), id, 1, JOBQ_EVENT_SUCCEEDED, "b", NULL, 0, T + 30);
  ob_clear(v, n);
  ck_counts(&s, 2, 1, 0, 0);
  /* A stale checkpoint adds nothing. */
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, id, att, 4, "{}", 90, NULL));
  CK_INT(ob_count_job(&s, id), 3);
  cs_close(&s);
}

/* ---- claim ---------------------------------------------------------------------------------- */

/* Only the listed endpoints, due ones, by (next_at, id), at most max; the
 * claimed ones are sending under a lease, with their jobs. */
static void claim_filter_order_lease(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], j3[JOBQ_ID_SIZE], j4[JOBQ_ID_SIZE];
  const char *hk = "[{\"e\":\"a\",\"on\":7},{\"e\":\"b\",\"on\":7}]";
  hk_ended(&s, "k1", hk, T, T + 30, JOBQ_OUTCOME_SUCCEEDED, j1);
  hk_ended(&s, "k2", hk, T, T + 10, JOBQ_OUTCOME_SUCCEEDED, j2);
  hk_ended(&s, "k3", hk, T, T + 20, JOBQ_OUTCOME_SUCCEEDED, j3);
  hk_ended(&s, "k4", "[{\"e\":\"a\",\"on\":7}]", T, T + 500, JOBQ_OUTCOME_SUCCEEDED, j4);
  ck_counts(&s, 7, 0, 0, 0);

  const char *ea[] = {"a"};
  jobq_storage_delivery d[8];
  jobq_storage_job j[8];
  int64_t next = 0;
  /* Nothing due yet. */
  CK_INT(ob_claim(&s, ea, NULL, 1, 8, T + 5, 1000, d, j, &next), 0);
  CK_INT(next, T + 10);
  /* Two of a's three due ones, earliest first. */
  size_t n = ob_claim(&s, ea, NULL, 1, 2, T + 100, 1000, d, j, &next);
  CK_INT(n, 2);
  char x[128];
  did(x, sizeof x, j2, 0, "succeeded");
  CK_STR(d[0].id, x);
  did(x, sizeof x, j3, 0, "succeeded");
  CK_STR(d[1].id, x);
  CK_INT(next, T + 30); /* j1's, left by max */
  for (size_t i = 0; i < n; i++) {
    CK_INT(d[i].state, JOBQ_DELIVERY_SENDING);
    CK_INT(d[i].attempts, 1);
    CK_INT(d[i].next_at, T + 1100);
    CK_INT(d[i].updated_at, T + 100);
    CK_STR(d[i].endpoint, "a");
    CK_STR(j[i].id, d[i].job_id);
    CK_INT(j[i].state, JOBQ_SUCCEEDED);
    CK_STR(j[i].kind, i == 0 ? "k2" : "k3");
    CK_STR(j[i].payload, "{}");
    CK_INT(j[i].position, -1);
    CK_INT(j[i].n_attempt_log, 0);
    CK(j[i].attempt_log == NULL, "claim's job carries an attempt log");
  }
  claim_clear(d, j, n);
  ck_counts(&s, 5, 2, 0, 0);
  /* The rest of a: j1's; j4's is not due; b's are not listed. */
  n = ob_claim(&s, ea, NULL, 1, 8, T + 100, 1000, d, j, &next);
  CK_INT(n, 1);
  did(x, sizeof x, j1, 0, "succeeded");
  CK_STR(d[0].id, x);
  claim_clear(d, j, n);
  CK_INT(next, T + 500);
  /* Leased ones are not claimed again before their lease ended. */
  n = ob_claim(&s, ea, NULL, 1, 8, T + 600, 1000, d, j, &next);
  CK_INT(n, 1);
  did(x, sizeof x, j4, 0, "succeeded");
  CK_STR(d[0].id, x);
  claim_clear(d, j, n);
  CK_INT(next, T + 1100); /* the leases of the first two */
  CK_INT(ob_claim(&s, ea, NULL, 1, 8, T + 1100, 1000, d, j, &next), 0);
  CK_INT(next, T + 1100);
  /* After the lease: claimed again (the claimer died), attempts 2. */
  n = ob_claim(&s, ea, NULL, 1, 8, T + 1101, 1000, d, j, &next);
  CK_INT(n, 3); /* the three leases that ended at T+1100, by id */
  for (size_t i = 0; i < n; i++) {
    if (i) CK(strcmp(d[i - 1].id, d[i].id) < 0, "%s before %s", d[i - 1].id, d[i].id);
    CK_INT(d[i].attempts, 2);
    CK_INT(d[i].next_at, T + 2101);
    CK_INT(d[i].state, JOBQ_DELIVERY_SENDING);
    CK(strcmp(d[i].job_id, j4) != 0, "j4's lease has not ended");
  }
  claim_clear(d, j, n);
  CK_INT(next, T + 1600); /* j4's lease */
  /* Two endpoints at once, merged by (next_at, id). */
  const char *eb[] = {"zzz-unknown", "b"};
  n = ob_claim(&s, eb, NULL, 2, 8, T + 1101, 1000, d, j, &next);
  CK_INT(n, 3);
  for (size_t i = 0; i < n; i++) CK_STR(d[i].endpoint, "b");
  CK(d[0].created_at == T + 10 && d[1].created_at == T + 20 && d[2].created_at == T + 30,
     "b's not in next_at order");
  claim_clear(d, j, n);
  CK_INT(next, INT64_MAX);
  ck_counts(&s, 0, 7, 0, 0);
  cs_close(&s);
}

/* Equal next_at: by id. */
static void claim_ties_by_id(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char ids[4][JOBQ_ID_SIZE];
  for (int i = 0; i < 4; i++) hk_ended(&s, "k", "[{\"e\":\"a\",\"on\":1}]", T, T + 50, JOBQ_OUTCOME_SUCCEEDED, ids[i]);
  const char *ea[] = {"a"};
  jobq_storage_delivery d[4];
  jobq_storage_job j[4];
  size_t n = ob_claim(&s, ea, NULL, 1, 4, T + 50, 1000, d, j, NULL);
  CK_INT(n, 4);
  for (size_t i = 1; i < n; i++)
    CK(strcmp(d[i - 1].id, d[i].id) < 0, "claim order at equal next_at: %s before %s",
       d[i - 1].id, d[i].id);
  claim_clear(d, j, n);
  cs_close(&s);
}

/* ---- done ----------------------------------------------------------------------------------- */

static void done_applied_and_stale(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], j3[JOBQ_ID_SIZE];
  const char *hk = "[{\"e\":\"a\",\"on\":1}]";
  hk_ended(&s, "k", hk, T, T + 1, JOBQ_OUTCOME_SUCCEEDED, j1);
  hk_ended(&s, "k", hk, T, T + 2, JOBQ_OUTCOME_SUCCEEDED, j2);
  hk_ended(&s, "k", hk, T, T + 3, JOBQ_OUTCOME_SUCCEEDED, j3);
  char d1[128], d2[128], d3[128];
  did(d1, sizeof d1, j1, 0, "succeeded");
  did(d2, sizeof d2, j2, 0, "succeeded");
  did(d3, sizeof d3, j3, 0, "succeeded");
  const char *ea[] = {"a"};
  jobq_storage_delivery d[4];
  jobq_storage_job j[4];
  CK_INT(ob_claim(&s, ea, NULL, 1, 2, T + 10, 1000, d, j, NULL), 2);
  claim_clear(d, j, 2);
  /* Stale: a wrong attempt, a pending delivery, an unknown id. */
  CK_INT(ob_done1(&s, d1, 2, JOBQ_DELIVERY_DELIVERED, 200, NULL, 0, T + 11, NULL), 0);
  CK_INT(ob_done1(&s, d3, 0, JOBQ_DELIVERY_DELIVERED, 200, NULL, 0, T + 11, NULL), 0);
  CK_INT(ob_done1(&s, "nope:0:succeeded", 1, JOBQ_DELIVERY_DELIVERED, 200, NULL, 0, T + 11, NULL),
         0);
  ck_counts(&s, 1, 2, 0, 0);
  /* A batch: d1 delivered, d2 again later; applied reports each. */
  jobq_storage_outbox_result r[3] = {
    {d1, 1, JOBQ_DELIVERY_DELIVERED, 204, NULL, 0, T + 20, NULL},
    {d2, 1, JOBQ_DELIVERY_PENDING, 503, "503 Service Unavailable", T + 5000, T + 20, NULL},
    {d1, 1, JOBQ_DELIVERY_FAILED, 0, "stale", 0, T + 21, NULL},
  };
  int applied[3] = {-1, -1, -1};
  CK_OK(s.ops->outbox_done(s.st, r, 3, applied));
  CK_INT(applied[0], 1);
  CK_INT(applied[1], 1);
  CK_INT(applied[2], 0);
  jobq_storage_delivery v[MAXD];
  size_t n = ob_list(&s, NULL, -1, v);
  CK_INT(n, 3);
  const jobq_storage_delivery *x = ob_find(v, n, d1);
  CK(x != NULL, "d1 missing");
  if (x) {
    CK_INT(x->state, JOBQ_DELIVERY_DELIVERED);
    CK_INT(x->last_status, 204);
    CK_STR(x->last_error, NULL);
    CK_INT(x->next_at, 0);
    CK_INT(x->updated_at, T + 20);
    CK_INT(x->attempts, 1);
  }
  x = ob_find(v, n, d2);
  CK(x != NULL, "d2 missing");
  if (x) {
    CK_INT(x->state, JOBQ_DELIVERY_PENDING);
    CK_INT(x->last_status, 503);
    CK_STR(x->last_error, "503 Service Unavailable");
    CK_INT(x->next_at, T + 5000);
    CK_INT(x->updated_at, T + 20);
    CK_INT(x->attempts, 1);
  }
  ob_clear(v, n);
  ck_counts(&s, 2, 0, 1, 0);
  /* d2 comes back at its next_at, with attempts 2; it fails for good. */
  int64_t next = 0;
  CK_INT(ob_claim(&s, ea, NULL, 1, 4, T + 4999, 1000, d, j, &next), 1); /* d3 */
  claim_clear(d, j, 1);
  CK_INT(next, T + 5000);
  CK_INT(ob_claim(&s, ea, NULL, 1, 4, T + 5000, 1000, d, j, NULL), 1);
  CK_STR(d[0].id, d2);
  CK_INT(d[0].attempts, 2);
  CK_STR(d[0].last_error, "503 Service Unavailable"); /* kept while it is sent */
  claim_clear(d, j, 1);
  CK_OK(s.ops->outbox_done(s.st, &(jobq_storage_outbox_result){d2, 2, JOBQ_DELIVERY_FAILED, 500,
                                                              "500 Internal Server Error", 0,
                                                              T + 5001, NULL},
                           1, NULL));
  n = ob_list(&s, NULL, JOBQ_DELIVERY_FAILED, v);
  CK_INT(n, 1);
  CK_STR(v[0].id, d2);
  CK_INT(v[0].next_at, 0);
  CK_INT(v[0].last_status, 500);
  CK_STR(v[0].last_error, "500 Internal Server Error");
  ob_clear(v, n);
  ck_counts(&s, 0, 1, 1, 1);
  cs_close(&s);
}

/* 410 Gone disables the URL: later claims of deliveries to it (their own
 * URL, or their endpoint's from urls[]) return them failed. */
static void disabled_url_fails_deliveries(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  const char *gone = "https://a.example/hook";
  char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], j3[JOBQ_ID_SIZE], j4[JOBQ_ID_SIZE];
  hk_ended(&s, "k", "[{\"e\":\"a\",\"on\":1}]", T, T + 1, JOBQ_OUTCOME_SUCCEEDED, j1);
  hk_ended(&s, "k", "[{\"e\":\"a\",\"on\":1}]", T, T + 2, JOBQ_OUTCOME_SUCCEEDED, j2);
  hk_ended(&s, "k", "[{\"e\":\"b\",\"on\":1,\"u\":\"https://a.example/hook\"}]", T, T + 3,
           JOBQ_OUTCOME_SUCCEEDED, j3);
  hk_ended(&s, "k", "[{\"e\":\"b\",\"on\":1,\"u\":\"https://other.example/\"}]", T, T + 4,
           JOBQ_OUTCOME_SUCCEEDED, j4);
  const char *eps[] = {"a", "b"};
  const char *urls[] = {gone, NULL};
  jobq_storage_delivery d[4];
  jobq_storage_job j[4];
  CK_INT(ob_claim(&s, eps, urls, 2, 1, T + 10, 1000, d, j, NULL), 1);
  char d1[128];
  did(d1, sizeof d1, j1, 0, "succeeded");
  CK_STR(d[0].id, d1);
  claim_clear(d, j, 1);
  /* 2023-11-14T22:13:20Z is T, in seconds. */
  CK_INT(ob_done1(&s, d1, 1, JOBQ_DELIVERY_FAILED, 410, "410 Gone", 0, T + 100, gone), 1);
  size_t n = ob_claim(&s, eps, urls, 2, 4, T + 200, 1000, d, j, NULL);
  CK_INT(n, 3);
  const char *want = "the URL answered 410 Gone on 2023-11-14T22:13:20Z and is disabled";
  char x[128];
  did(x, sizeof x, j2, 0, "succeeded");
  CK_STR(d[0].id, x);
  CK_INT(d[0].state, JOBQ_DELIVERY_FAILED);
  CK_STR(d[0].last_error, want);
  CK_INT(d[0].attempts, 0);
  CK_INT(d[0].next_at, 0);
  CK_INT(d[0].updated_at, T + 200);
  CK_STR(j[0].id, j2);
  CK_STR(j[0].kind, "k");
  did(x, sizeof x, j3, 0, "succeeded");
  CK_STR(d[1].id, x);
  CK_INT(d[1].state, JOBQ_DELIVERY_FAILED);
  CK_STR(d[1].last_error, want);
  did(x, sizeof x, j4, 0, "succeeded");
  CK_STR(d[2].id, x);
  CK_INT(d[2].state, JOBQ_DELIVERY_SENDING);
  CK_INT(d[2].attempts, 1);
  claim_clear(d, j, n);
  ck_counts(&s, 0, 1, 0, 3);
  jobq_storage_delivery v[MAXD];
  n = ob_list(&s, j2, -1, v);
  CK_INT(n, 1);
  CK_INT(v[0].state, JOBQ_DELIVERY_FAILED);
  CK_STR(v[0].last_error, want);
  ob_clear(v, n);

  /* Enabled again: a redelivered one goes out. */
  CK_OK(s.ops->webhook_enable(s.st, gone));
  CK_ERR(JOBQ_ENOTFOUND, s.ops->webhook_enable(s.st, gone));
  CK_ERR(JOBQ_ENOTFOUND, s.ops->webhook_enable(s.st, "https://never.example/"));
  did(x, sizeof x, j2, 0, "succeeded");
  CK_OK(s.ops->outbox_redeliver(s.st, x, T + 300));
  n = ob_claim(&s, eps, urls, 2, 4, T + 300, 1000, d, j, NULL);
  CK_INT(n, 1);
  CK_STR(d[0].id, x);
  CK_INT(d[0].state, JOBQ_DELIVERY_SENDING);
  claim_clear(d, j, n);
  cs_close(&s);
}

static void redeliver_rules(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char j1[JOBQ_ID_SIZE], d1[128];
  hk_ended(&s, "k", "[{\"e\":\"a\",\"on\":1}]", T, T + 1, JOBQ_OUTCOME_SUCCEEDED, j1);
  did(d1, sizeof d1, j1, 0, "succeeded");
  CK_ERR(JOBQ_ENOTFOUND, s.ops->outbox_redeliver(s.st, "nope:0:succeeded", T + 2));
  CK_ERR(JOBQ_ESTATE, s.ops->outbox_redeliver(s.st, d1, T + 2)); /* pending */
  const char *ea[] = {"a"};
  jobq_storage_delivery d[2];
  jobq_storage_job j[2];
  CK_INT(ob_claim(&s, ea, NULL, 1, 1, T + 5, 1000, d, j, NULL), 1);
  claim_clear(d, j, 1);
  CK_ERR(JOBQ_ESTATE, s.ops->outbox_redeliver(s.st, d1, T + 6)); /* sending */
  CK_INT(ob_done1(&s, d1, 1, JOBQ_DELIVERY_FAILED, 500, "boom", 0, T + 7, NULL), 1);
  CK_OK(s.ops->outbox_redeliver(s.st, d1, T + 50));
  jobq_storage_delivery v[MAXD];
  size_t n = ob_list(&s, j1, -1, v);
  CK_INT(n, 1);
  CK_INT(v[0].state, JOBQ_DELIVERY_PENDING);
  CK_INT(v[0].attempts, 0);
  CK_INT(v[0].next_at, T + 50);
  CK_INT(v[0].last_status, 500);
  CK_STR(v[0].last_error, "boom");
  CK_INT(v[0].created_at, T + 1);
  ob_clear(v, n);
  ck_counts(&s, 1, 0, 0, 0);
  int64_t next = 0;
  CK_INT(ob_claim(&s, ea, NULL, 1, 1, T + 49, 1000, d, j, &next), 0);
  CK_INT(next, T + 50);
  CK_INT(ob_claim(&s, ea, NULL, 1, 1, T + 50, 1000, d, j, NULL), 1);
  CK_INT(d[0].attempts, 1);
  claim_clear(d, j, 1);
  /* Delivered is not failed either. */
  CK_INT(ob_done1(&s, d1, 1, JOBQ_DELIVERY_DELIVERED, 200, NULL, 0, T + 60, NULL), 1);
  CK_ERR(JOBQ_ESTATE, s.ops->outbox_redeliver(s.st, d1, T + 70));
  cs_close(&s);
}

/* ---- list, counts ------------------------------------------------------------------------------ */

static void list_order_filters_paging(conf_case *c) {
  conf_store s;
  if (!ob_open(c, &s)) return;
  char ja[JOBQ_ID_SIZE], jb[JOBQ_ID_SIZE], jc[JOBQ_ID_SIZE];
  const char *hk = "[{\"e\":\"a\",\"on\":7},{\"e\":\"b\",\"on\":7}]";
  /* Ends out of time order: the list goes by id (job by job). */
  hk_ended(&s, "k", hk, T, T + 30, JOBQ_OUTCOME_SUCCEEDED, ja);
  hk_ended(&s, "k", hk, T, T + 10, JOBQ_OUTCOME_FAILED, jb);
  hk_ended(&s, "k", hk, T, T + 20, JOBQ_OUTCOME_SUCCEEDED, jc);
  jobq_storage_delivery all[MAXD];
  size_t n = ob_list(&s, NULL, -1, all);
  CK_INT(n, 6);
  for (size_t i = 1; i < n; i++)
    CK(strcmp(all[i - 1].id, all[i].id) < 0, "list order: %s before %s", all[i - 1].id, all[i].id);
  /* ja, jb, jc were submitted in that order: their ids say so */
  CK_STR(all[0].job_id, ja);
  CK_STR(all[5].job_id, jc);

  /* Pages of 4 then 2; then 2, 2, 2 with the state filter off. */
  for (int limit = 1; limit <= 4; limit++) {
    const char *cursor = NULL;
    char cur[128];
    size_t seen = 0;
    for (int page = 0; page < 10; page++) {
      jobq_storage_outbox_filter f = {NULL, -1, limit, cursor};
      jobq_storage_delivery *v = NULL;
      size_t k = 0;
      int more = -1;
      CK_OK(s.ops->outbox_list(s.st, &f, &v, &k, &more));
      for (size_t i = 0; i < k; i++) {
        CK(seen + i < n, "too many");
        if (seen + i < n) CK_STR(v[i].id, all[seen + i].id);
      }
      seen += k;
      CK_INT(more, seen < n);
      if (k) snprintf(cur, sizeof cur, "%s", v[k - 1].id);
      cursor = cur;
      for (size_t i = 0; i < k; i++) jobq_storage_delivery_clear(&v[i]);
      free(v);
      if (!more) break;
    }
    CK_INT(seen, n);
  }

  /* By job, by state, both, with a cursor. */
  jobq_storage_delivery v[MAXD];
  size_t k = ob_list(&s, jb, -1, v);
  CK_INT(k, 2);
  for (size_t i = 0; i < k; i++) CK_INT(v[i].event, JOBQ_EVENT_FAILED);
  ob_clear(v, k);
  char none[JOBQ_ID_SIZE];
  jobq__id_new(none, T);
  CK_INT(ob_list(&s, none, -1, v), 0);
  const char *ea[] = {"a"};
  jobq_storage_delivery d[4];
  jobq_storage_job j[4];
  CK_INT(ob_claim(&s, ea, NULL, 1, 1, T + 100, 1000, d, j, NULL), 1); /* jb's a */
  claim_clear(d, j, 1);
  k = ob_list(&s, NULL, JOBQ_DELIVERY_SENDING, v);
  CK_INT(k, 1);
  CK_STR(v[0].job_id, jb);
  CK_INT(v[0].hook, 0);
  ob_clear(v, k);
  CK_INT(ob_list(&s, NULL, JOBQ_DELIVERY_DELIVERED, v), 0);
  k = ob_list(&s, ja, JOBQ_DELIVERY_PENDING, v);
  CK_INT(k, 2);
  ob_clear(v, k);
  jobq_storage_outbox_filter f = {jc, JOBQ_DELIVERY_PENDING, 1, NULL};
  jobq_storage_delivery *p = NULL;
  int more = -1;
  CK_OK(s.ops->outbox_list(s.st, &f, &p, &k, &more));
  CK_INT(k, 1);
  CK_INT(more, 1);
  char cur[128];
  snprintf(cur, sizeof cur, "%s", p[0].id);
  CK_INT(p[0].hook, 0);
  jobq_storage_delivery_clear(&p[0]);
  free(p);
  f.cursor = cur;
  CK_OK(s.ops->outbox_list(s.st, &f, &p, &k, &more));
  CK_INT(k, 1);
  CK_INT(more, 0);
  if (k) CK_INT(p[0].hook, 1);
  for (size_t i = 0; i < k; i++) jobq_storage_delivery_clear(&p[i]);
  free(p);
  ob_clear(all, n);
  cs_close(&s);
}

/* ---- prune ------------------------------------------------------------------------------------- */

static size_t prune_n(conf_store *s, int64_t before, int kind_too) {
  size_t n = 0;
  if (kind_too && s->ops->prune_kind) {
    jobq_storage_prune p = {"k", before, 100, 0, 0};
    char(*ids)[JOBQ_ID_SIZE] = NULL;
    CK_OK(s->ops->prune_kind(s->st, &p, &ids, &n));
    free(ids);
    return n;
  }
  CK_OK(s->ops->prune(s->st, before, 100, NULL, &n));
  return n;
}

static int gone_job(conf_store *s, const char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  int rc = s->ops->get(s->st, id, T, &j);
  jobq_storage_job_clear(&j);
  return rc == JOBQ_ENOTFOUND;
}

/* prune and prune_kind keep a job while a delivery of it is pending or
 * sending, and delete its deliveries with it. */
static void prune_guard(conf_case *c) {
  for (int kind_too = 0; kind_too < 2; kind_too++) {
    conf_store s;
    if (!ob_open(c, &s)) return;
    char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], plain[JOBQ_ID_SIZE];
    hk_ended(&s, "k", "[{\"e\":\"a\",\"on\":1}]", T, T + 1, JOBQ_OUTCOME_SUCCEEDED, j1);
    hk_ended(&s, "k", "[{\"e\":\"a\",\"on\":1}]", T, T + 2, JOBQ_OUTCOME_SUCCEEDED, j2);
    hk_ended(&s, "k", NULL, T, T + 3, JOBQ_OUTCOME_SUCCEEDED, plain);
    CK_INT(prune_n(&s, T + 1000, kind_too), 1); /* the one without deliveries */
    CK(gone_job(&s, plain), "the job without hooks stays");
    const char *ea[] = {"a"};
    jobq_storage_delivery d[2];
    jobq_storage_job j[2];
    CK_INT(ob_claim(&s, ea, NULL, 1, 2, T + 10, 1000, d, j, NULL), 2);
    char d1[128];
    snprintf(d1, sizeof d1, "%s", d[0].id);
    claim_clear(d, j, 2);
    CK_INT(prune_n(&s, T + 1000, kind_too), 0); /* sending */
    CK_INT(ob_done1(&s, d1, 1, JOBQ_DELIVERY_DELIVERED, 200, NULL, 0, T + 11, NULL), 1);
    CK_INT(prune_n(&s, T + 1000, kind_too), 1);
    CK(gone_job(&s, j1), "a job whose delivery was delivered is pruned");
    CK(!gone_job(&s, j2), "a job with a sending delivery is kept");
    CK_INT(ob_count_job(&s, j1), 0);
    ck_counts(&s, 0, 1, 0, 0);
    char d2[128];
    did(d2, sizeof d2, j2, 0, "succeeded");
    CK_INT(ob_done1(&s, d2, 1, JOBQ_DELIVERY_FAILED, 0, "timeout", 0, T + 12, NULL), 1);
    CK_INT(prune_n(&s, T + 1000, kind_too), 1);
    CK(gone_job(&s, j2), "a job whose delivery failed is pruned");
    ck_counts(&s, 0, 0, 0, 0);
    CK_INT(ob_count_job(&s, NULL), 0);
    cs_close(&s);
  }
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(end_succeeded),
    CONF_TEST(end_failed),
    CONF_TEST(end_cancelled_paths),
    CONF_TEST(no_delivery_when_not_an_end),
    CONF_TEST(end_applied_once),
    CONF_TEST_NEED(end_rescue_spent, CONF_NEED_DURABLE),
    CONF_TEST(dedupe_and_batch),
    CONF_TEST(cron_fire_hooked_adds_hooks),
    CONF_TEST(bad_webhooks_text),
    CONF_TEST(progress_coalesced_and_dropped),
    CONF_TEST(claim_filter_order_lease),
    CONF_TEST(claim_ties_by_id),
    CONF_TEST(done_applied_and_stale),
    CONF_TEST(disabled_url_fails_deliveries),
    CONF_TEST(redeliver_rules),
    CONF_TEST(list_order_filters_paging),
    CONF_TEST(prune_guard),
  };
  return conf_run("storage vtable: webhook outbox", tests, sizeof tests / sizeof tests[0]);
}
