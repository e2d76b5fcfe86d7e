/* Cron schedules on every backend: the vtable's cron_put, cron_del,
 * cron_list and cron_fire (layer 1), and jobq_cron_add / remove / list and
 * the evaluation by started queues (layer 2), with several queues on one
 * SQLite file standing for several processes. Every time is the queues'
 * fake clock; the tests wait (bounded, in real time) only for the
 * maintenance threads to act on a time the test set. */
#include "conf_storage.h"

/* 2026-01-05T02:00:00Z, a Monday; the daily 03:00 schedule fires an hour later. */
#define DAY INT64_C(86400000)
#define MINUTE INT64_C(60000)
#define T_0200 INT64_C(1767578400000)
#define T_0300 INT64_C(1767582000000)

/* ---- layer 1 ---- */

static jobq_storage_cron rec(const char *name, const char *expr, const char *payload,
                             int64_t next_at) {
  jobq_storage_cron c;
  memset(&c, 0, sizeof c);
  c.name = (char *)name;
  c.expr = (char *)expr;
  c.tz = (char *)"UTC";
  c.kind = (char *)"nightly";
  c.payload = (char *)payload;
  c.next_at = next_at;
  return c;
}

static void crons_free(jobq_storage_cron *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].name);
    free(v[i].expr);
    free(v[i].tz);
    free(v[i].kind);
    free(v[i].payload);
    free(v[i].owner);
  }
  free(v);
}

/* The stored schedule called name (a malloc'ed copy in *out); 0 if none. */
static int cs_cron_get(conf_store *s, const char *name, jobq_storage_cron *out) {
  jobq_storage_cron *v = NULL;
  size_t n = 0;
  CK_OK(s->ops->cron_list(s->st, &v, &n));
  int found = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(v[i].name, name) != 0) continue;
    *out = v[i];
    memset(&v[i], 0, sizeof v[i]);
    found = 1;
  }
  crons_free(v, n);
  return found;
}

static void cron_rec_clear(jobq_storage_cron *c) {
  free(c->name);
  free(c->expr);
  free(c->tz);
  free(c->kind);
  free(c->payload);
  free(c->owner);
  memset(c, 0, sizeof *c);
}

static void vt_cron_put_list_del(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  CK(s.ops->cron_put && s.ops->cron_del && s.ops->cron_list && s.ops->cron_fire,
     "backend lacks cron members");
  jobq_storage_cron *v = NULL;
  size_t n = 7;
  CK_OK(s.ops->cron_list(s.st, &v, &n));
  CK_INT(n, 0);
  CK(v == NULL, "an empty list is NULL");

  jobq_storage_cron b = rec("b.report", "0 3 * * *", "{\"b\":1}", T_0300);
  b.owner = (char *)"ops";
  b.priority = 7;
  b.max_attempts = 4;
  b.missed_policy = JOBQ_CRON_MISSED_ALL;
  b.last_run = 5;
  CK_OK(s.ops->cron_put(s.st, &b));
  jobq_storage_cron a = rec("a:hourly", "@hourly", "null", T_0200 + 60 * MINUTE);
  CK_OK(s.ops->cron_put(s.st, &a));
  CK_OK(s.ops->cron_list(s.st, &v, &n));
  CK_INT(n, 2);
  CK_STR(v[0].name, "a:hourly"); /* by name */
  CK_STR(v[1].name, "b.report");
  CK_STR(v[1].expr, "0 3 * * *");
  CK_STR(v[1].tz, "UTC");
  CK_STR(v[1].kind, "nightly");
  CK_STR(v[1].payload, "{\"b\":1}");
  CK_STR(v[1].owner, "ops");
  CK_STR(v[0].owner, NULL);
  CK_INT(v[1].priority, 7);
  CK_INT(v[1].max_attempts, 4);
  CK_INT(v[1].missed_policy, JOBQ_CRON_MISSED_ALL);
  CK_INT(v[1].next_at, T_0300);
  CK_INT(v[1].last_run, 5);
  crons_free(v, n);

  /* Same expr and tz: the stored next_at and last_run stay, the rest is new. */
  jobq_storage_cron b2 = rec("b.report", "0 3 * * *", "{\"b\":2}", T_0300 + DAY);
  b2.priority = 1;
  CK_OK(s.ops->cron_put(s.st, &b2));
  jobq_storage_cron got;
  CK(cs_cron_get(&s, "b.report", &got), "b.report gone");
  CK_INT(got.next_at, T_0300);
  CK_INT(got.last_run, 5);
  CK_STR(got.payload, "{\"b\":2}");
  CK_STR(got.owner, NULL);
  CK_INT(got.priority, 1);
  cron_rec_clear(&got);
  /* Another zone: recomputed, i.e. the caller's times. */
  b2.tz = (char *)"Europe/Paris";
  b2.next_at = T_0300 - 60 * MINUTE;
  CK_OK(s.ops->cron_put(s.st, &b2));
  CK(cs_cron_get(&s, "b.report", &got), "b.report gone");
  CK_INT(got.next_at, T_0300 - 60 * MINUTE);
  CK_INT(got.last_run, 0);
  CK_STR(got.tz, "Europe/Paris");
  cron_rec_clear(&got);
  /* Another expression: likewise. */
  b2.expr = (char *)"0 4 * * *";
  b2.next_at = T_0300 + 60 * MINUTE;
  CK_OK(s.ops->cron_put(s.st, &b2));
  CK(cs_cron_get(&s, "b.report", &got), "b.report gone");
  CK_INT(got.next_at, T_0300 + 60 * MINUTE);
  cron_rec_clear(&got);

  CK_OK(s.ops->cron_del(s.st, "a:hourly"));
  CK_ERR(JOBQ_ENOTFOUND, s.ops->cron_del(s.st, "a:hourly"));
  CK_HAS(jobq_last_error(), "a:hourly");
  CK_OK(s.ops->cron_list(s.st, &v, &n));
  CK_INT(n, 1);
  CK_STR(v[0].name, "b.report");
  crons_free(v, n);
  cs_close(&s);
}

/* A job of an occurrence, as the core makes it. */
static jobq_storage_job occ_job(const char *name, int64_t occ, int64_t now, char *key,
                                size_t cap) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  snprintf(key, cap, "cron:%s:%lld", name, (long long)occ);
  jobq__id_new(j.id, now);
  j.kind = (char *)"nightly";
  j.payload = (char *)"{}";
  j.state = JOBQ_QUEUED;
  j.created_at = now;
  j.run_at = occ;
  j.dedupe_key = key;
  j.position = -1;
  return j;
}

static void vt_cron_fire_is_compare_and_set(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  jobq_storage_cron r = rec("n", "0 3 * * *", "{}", T_0300);
  CK_OK(s.ops->cron_put(s.st, &r));
  int64_t now = T_0300 + 1000;
  char key[100];
  jobq_storage_job j = occ_job("n", T_0300, now, key, sizeof key);
  jobq_storage_job *p = &j;
  size_t ins = 9;
  /* A stale expectation: nothing stored, nothing moved. */
  CK_OK(s.ops->cron_fire(s.st, "n", T_0300 - DAY, T_0300 + DAY, &p, 1, now, &ins));
  CK_INT(ins, 0);
  jobq_storage_job out;
  CK_RC(JOBQ_ENOTFOUND, s.ops->get_by_key(s.st, key, now, &out));
  jobq_storage_cron got;
  CK(cs_cron_get(&s, "n", &got), "n gone");
  CK_INT(got.next_at, T_0300);
  CK_INT(got.last_run, 0);
  cron_rec_clear(&got);
  /* The right one: the job and the move, together. */
  CK_OK(s.ops->cron_fire(s.st, "n", T_0300, T_0300 + DAY, &p, 1, now, &ins));
  CK_INT(ins, 1);
  CK_OK(s.ops->get_by_key(s.st, key, now, &out));
  CK_STR(out.id, j.id);
  CK_INT(out.run_at, T_0300);
  CK_INT(out.state, JOBQ_QUEUED);
  jobq_storage_job_clear(&out);
  CK(cs_cron_get(&s, "n", &got), "n gone");
  CK_INT(got.next_at, T_0300 + DAY);
  CK_INT(got.last_run, T_0300);
  cron_rec_clear(&got);
  /* A second process with the same view: refused by the compare. */
  jobq_storage_job j2 = occ_job("n", T_0300, now, key, sizeof key);
  p = &j2;
  CK_OK(s.ops->cron_fire(s.st, "n", T_0300, T_0300 + DAY, &p, 1, now, &ins));
  CK_INT(ins, 0);
  /* Past the compare (the schedule put back at the old time) the
   * occurrence's key still holds, whatever its job's state. */
  CK_INT(claim_kind(&s, "nightly", now, j.id), 1);
  CK_INT(cs_finish(&s, j.id, 1, now, FIN_OK), JOBQ_SUCCEEDED);
  jobq_storage_cron back = rec("n", "0 4 * * *", "{}", T_0300);
  CK_OK(s.ops->cron_put(s.st, &back));
  back.expr = (char *)"0 3 * * *";
  CK_OK(s.ops->cron_put(s.st, &back));
  CK_OK(s.ops->cron_fire(s.st, "n", T_0300, T_0300 + DAY, &p, 1, now, &ins));
  CK_INT(ins, 0);
  CK_RC(JOBQ_ENOTFOUND, s.ops->get(s.st, j2.id, now, &out));
  CK(cs_cron_get(&s, "n", &got), "n gone");
  CK_INT(got.next_at, T_0300 + DAY); /* the move still happened */
  cron_rec_clear(&got);
  /* A schedule that is gone fires nothing. */
  CK_OK(s.ops->cron_fire(s.st, "none", T_0300, T_0300 + DAY, &p, 1, now, &ins));
  CK_INT(ins, 0);
  /* Several occurrences at once, and none (a skip: only the move). */
  char k1[100], k2[100];
  jobq_storage_job m1 = occ_job("n", T_0300 + DAY, now, k1, sizeof k1);
  jobq_storage_job m2 = occ_job("n", T_0300 + 2 * DAY, now, k2, sizeof k2);
  jobq_storage_job *pp[2] = {&m1, &m2};
  CK_OK(s.ops->cron_fire(s.st, "n", T_0300 + DAY, T_0300 + 3 * DAY, pp, 2, now, &ins));
  CK_INT(ins, 2);
  CK_OK(s.ops->cron_fire(s.st, "n", T_0300 + 3 * DAY, T_0300 + 4 * DAY, NULL, 0, now, &ins));
  CK_INT(ins, 0);
  CK(cs_cron_get(&s, "n", &got), "n gone");
  CK_INT(got.next_at, T_0300 + 4 * DAY);
  CK_INT(got.last_run, T_0300 + 2 * DAY); /* kept when nothing was submitted */
  cron_rec_clear(&got);
  cs_close(&s);
}

static void vt_cron_survives_reopen(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  jobq_storage_cron r = rec("keep", "0 3 * * *", "{}", T_0300);
  CK_OK(s.ops->cron_put(s.st, &r));
  cs_close(&s);
  cs_open(c, &s);
  jobq_storage_cron got;
  CK(cs_cron_get(&s, "keep", &got), "the schedule did not survive a reopen");
  CK_INT(got.next_at, T_0300);
  cron_rec_clear(&got);
  cs_close(&s);
}

/* ---- layer 2 ---- */

/* Waits (real time, bounded) until pred(q, arg) holds; 1 if it did. */
static int wait_for(int (*pred)(jobq_t *, const void *), jobq_t *q, const void *arg) {
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  while (!pred(q, arg)) {
    if (conf_mono_ms() > end) return 0;
    conf_sleep_ms(2);
  }
  return 1;
}

static int key_stored(jobq_t *q, const void *key) {
  jobq_job_t *j = NULL;
  int rc = jobq_get_by_key(q, key, &j);
  jobq_job_free(j);
  return rc == 0;
}

typedef struct next_is {
  const char *name;
  int64_t next;
} next_is;

/* The listed schedule's next run and last run; 0 when it is not listed. */
static int cron_times(jobq_t *q, const char *name, int64_t *next, int64_t *last) {
  jobq_cron_list_t *l = NULL;
  if (jobq_cron_list(q, &l) != 0) return 0;
  int found = 0;
  for (size_t i = 0; i < jobq_cron_list_count(l); i++) {
    const jobq_cron_t *cr = jobq_cron_list_get(l, i);
    if (strcmp(jobq_cron_name(cr), name) != 0) continue;
    if (next) *next = jobq_cron_next_run(cr);
    if (last) *last = jobq_cron_last_run(cr);
    found = 1;
  }
  jobq_cron_list_free(l);
  return found;
}

static int next_reached(jobq_t *q, const void *arg) {
  const next_is *w = arg;
  int64_t next = 0;
  return cron_times(q, w->name, &next, NULL) && next == w->next;
}

/* The run_at of every job of kind, in ascending order; *n of them. */
static int64_t *run_ats(jobq_t *q, const char *kind, size_t *n) {
  size_t cap = 64;
  int64_t *v = malloc(cap * sizeof *v);
  *n = 0;
  jobq_filter_t *f = jobq_filter_new();
  CK_OK(jobq_filter_set_kind(f, kind));
  CK_OK(jobq_filter_set_limit(f, 500));
  for (;;) {
    jobq_page_t *pg = NULL;
    CK_OK(jobq_list(q, f, &pg));
    for (size_t i = 0; i < jobq_page_count(pg); i++) {
      if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
      v[(*n)++] = jobq_job_run_at(jobq_page_job(pg, i));
    }
    const char *cur = jobq_page_next_cursor(pg);
    if (cur) CK_OK(jobq_filter_set_cursor(f, cur));
    jobq_page_free(pg);
    if (cur == NULL) break;
  }
  jobq_filter_free(f);
  for (size_t i = 1; i < *n; i++) /* insertion sort: small lists */
    for (size_t k = i; k > 0 && v[k - 1] > v[k]; k--) {
      int64_t t = v[k];
      v[k] = v[k - 1];
      v[k - 1] = t;
    }
  return v;
}

static jobq_t *cq_open_clock(conf_case *c, conf_clock *clk, int missed) {
  jobq_options_t *opts = jobq_options_new();
  CK_OK(jobq_options_set_storage(opts, c->url));
  CK_OK(jobq_options_set_clock(opts, conf_clock_fn, clk));
  CK_OK(jobq_options_set_workers(opts, 0));
  CK_OK(jobq_options_set_lease(opts, 100)); /* maintenance ticks every 25 ms */
  CK_OK(jobq_options_set_cron_missed(opts, missed));
  CK_OK(jobq_options_set_log(opts, NULL, NULL, 0));
  jobq_t *q = NULL;
  CK_OK(jobq_open(&q, opts));
  jobq_options_free(opts);
  return q;
}

static void api_cron_add_list_remove(conf_case *c) {
  conf_clock clk = {T_0200};
  jobq_t *q = cq_open_clock(c, &clk, JOBQ_CRON_MISSED_ALL);
  jobq_cron_list_t *l = NULL;
  CK_OK(jobq_cron_list(q, &l));
  CK_INT(jobq_cron_list_count(l), 0);
  CK(jobq_cron_list_get(l, 0) == NULL, "get past the end");
  jobq_cron_list_free(l);

  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_owner(so, "ops"));
  CK_OK(jobq_submit_opts_set_priority(so, 3));
  CK_OK(jobq_submit_opts_set_max_attempts(so, 2));
  CK_OK(jobq_cron_add(q, "nightly-report", "0 3 * * *", NULL, "report", "{\"r\":1}", so));
  CK_OK(jobq_cron_add(q, "hourly", "@hourly", "Europe/Paris", "tick", NULL, NULL));
  jobq_submit_opts_free(so);
  CK_OK(jobq_cron_list(q, &l));
  CK_INT(jobq_cron_list_count(l), 2);
  const jobq_cron_t *h = jobq_cron_list_get(l, 0), *n = jobq_cron_list_get(l, 1);
  CK_STR(jobq_cron_name(h), "hourly");
  CK_STR(jobq_cron_tz(h), "Europe/Paris");
  CK_STR(jobq_cron_payload(h), "null");
  CK_INT(jobq_cron_next_run(h), T_0200 + 60 * MINUTE);
  CK_STR(jobq_cron_name(n), "nightly-report");
  CK_STR(jobq_cron_expr(n), "0 3 * * *");
  CK_STR(jobq_cron_tz(n), "UTC");
  CK_STR(jobq_cron_kind(n), "report");
  CK_STR(jobq_cron_payload(n), "{\"r\":1}");
  CK_INT(jobq_cron_next_run(n), T_0300);
  CK_INT(jobq_cron_last_run(n), 0);
  CK_INT(jobq_cron_missed_policy(n), JOBQ_CRON_MISSED_ALL);
  jobq_cron_list_free(l);

  /* Replacing with the same expression keeps the next run, even an hour
   * later; another expression recomputes it. */
  conf_clock_set(&clk, T_0200 + 30 * MINUTE);
  CK_OK(jobq_cron_add(q, "nightly-report", "0 3 * * *", "UTC", "report", "{\"r\":2}", NULL));
  int64_t next = 0;
  CK(cron_times(q, "nightly-report", &next, NULL), "listed");
  CK_INT(next, T_0300);
  CK_OK(jobq_cron_add(q, "nightly-report", "45 2 * * *", "UTC", "report", "{\"r\":2}", NULL));
  CK(cron_times(q, "nightly-report", &next, NULL), "listed");
  CK_INT(next, T_0200 + 45 * MINUTE);

  CK_OK(jobq_cron_remove(q, "hourly"));
  CK_ERR(JOBQ_ENOTFOUND, jobq_cron_remove(q, "hourly"));
  CK_HAS(jobq_last_error(), "jobq_cron_remove: no schedule 'hourly'");
  CK_OK(jobq_cron_list(q, &l));
  CK_INT(jobq_cron_list_count(l), 1);
  jobq_cron_list_free(l);
  cq_close(q);
}

static void api_cron_bad_input(conf_case *c) {
  conf_clock clk = {T_0200};
  jobq_t *q = cq_open_clock(c, &clk, 0);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  char longname[200];
  memset(longname, 'n', 129);
  longname[129] = '\0';
  char *big = malloc(2 * 1024 * 1024);
  memset(big, ' ', 2 * 1024 * 1024 - 3);
  memcpy(big + 2 * 1024 * 1024 - 3, "{}", 3);
  struct {
    int want;
    const char *needle;
    int rc;
  } cases[32];
  int k = 0;
#define BAD(want_, needle_, call_)                                 \
  do {                                                             \
    jobq_storage_set_error("");                                    \
    cases[k].rc = (call_);                                         \
    cases[k].want = (want_);                                       \
    cases[k].needle = (needle_);                                   \
    CK_RC(cases[k].want, cases[k].rc);                             \
    CK_HAS(jobq_last_error(), cases[k].needle);                    \
    k++;                                                           \
  } while (0)
  BAD(JOBQ_EINVAL, "q is NULL", jobq_cron_add(NULL, "n", "* * * * *", NULL, "k", NULL, NULL));
  BAD(JOBQ_EINVAL, "name is NULL", jobq_cron_add(q, NULL, "* * * * *", NULL, "k", NULL, NULL));
  BAD(JOBQ_EINVAL, "name is empty", jobq_cron_add(q, "", "* * * * *", NULL, "k", NULL, NULL));
  BAD(JOBQ_EINVAL, "at most 128", jobq_cron_add(q, longname, "* * * * *", NULL, "k", NULL, NULL));
  BAD(JOBQ_EINVAL, "0x20 at offset 1",
      jobq_cron_add(q, "a b", "* * * * *", NULL, "k", NULL, NULL));
  BAD(JOBQ_EINVAL, "expr is NULL", jobq_cron_add(q, "n", NULL, NULL, "k", NULL, NULL));
  BAD(JOBQ_ECRON, "jobq_cron_add", jobq_cron_add(q, "n", "61 * * * *", NULL, "k", NULL, NULL));
  BAD(JOBQ_ECRON, "jobq_cron_add", jobq_cron_add(q, "n", "0 0 30 2 *", NULL, "k", NULL, NULL));
  BAD(JOBQ_ETZ, "jobq_cron_add", jobq_cron_add(q, "n", "* * * * *", "Mars/Olympus", "k", NULL, NULL));
  BAD(JOBQ_EINVAL, "kind is NULL", jobq_cron_add(q, "n", "* * * * *", NULL, NULL, NULL, NULL));
  BAD(JOBQ_EKIND, "kind is empty", jobq_cron_add(q, "n", "* * * * *", NULL, "", NULL, NULL));
  BAD(JOBQ_EJSON, "payload is not valid JSON", jobq_cron_add(q, "n", "* * * * *", NULL, "k", "{nope", NULL));
  BAD(JOBQ_ETOOBIG, "payload is", jobq_cron_add(q, "n", "* * * * *", NULL, "k", big, NULL));
  CK_OK(jobq_submit_opts_set_dedupe(so, "mine", 1000));
  BAD(JOBQ_EINVAL, "dedupe key", jobq_cron_add(q, "n", "* * * * *", NULL, "k", NULL, so));
  jobq_submit_opts_free(so);
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_run_at(so, T_0300));
  BAD(JOBQ_EINVAL, "run_at or a delay", jobq_cron_add(q, "n", "* * * * *", NULL, "k", NULL, so));
  jobq_submit_opts_free(so);
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_delay(so, 1000));
  BAD(JOBQ_EINVAL, "run_at or a delay", jobq_cron_add(q, "n", "* * * * *", NULL, "k", NULL, so));
  jobq_submit_opts_free(so);
  BAD(JOBQ_EINVAL, "q is NULL", jobq_cron_remove(NULL, "n"));
  BAD(JOBQ_EINVAL, "name is NULL", jobq_cron_remove(q, NULL));
  BAD(JOBQ_EINVAL, "0x2f at offset 1", jobq_cron_remove(q, "a/b"));
  BAD(JOBQ_ENOTFOUND, "no schedule 'n'", jobq_cron_remove(q, "n"));
  jobq_cron_list_t *l = NULL;
  BAD(JOBQ_EINVAL, "q is NULL", jobq_cron_list(NULL, &l));
  BAD(JOBQ_EINVAL, "out is NULL", jobq_cron_list(q, NULL));
  jobq_options_t *o = jobq_options_new();
  BAD(JOBQ_EINVAL, "opts is NULL", jobq_options_set_cron_missed(NULL, 0));
  BAD(JOBQ_EINVAL, "policy 3", jobq_options_set_cron_missed(o, 3));
  BAD(JOBQ_EINVAL, "policy -1", jobq_options_set_cron_missed(o, -1));
  jobq_options_free(o);
#undef BAD
  /* Nothing was stored by any of them. */
  CK_OK(jobq_cron_list(q, &l));
  CK_INT(jobq_cron_list_count(l), 0);
  jobq_cron_list_free(l);
  /* Accessors of nothing. */
  CK_INT(jobq_cron_list_count(NULL), 0);
  CK(jobq_cron_list_get(NULL, 0) == NULL, "get of NULL");
  CK(jobq_cron_name(NULL) == NULL && jobq_cron_expr(NULL) == NULL && jobq_cron_tz(NULL) == NULL &&
         jobq_cron_kind(NULL) == NULL && jobq_cron_payload(NULL) == NULL,
     "string accessors of NULL");
  CK_INT(jobq_cron_next_run(NULL), 0);
  CK_INT(jobq_cron_last_run(NULL), 0);
  CK_INT(jobq_cron_missed_policy(NULL), JOBQ_EINVAL);
  jobq_cron_list_free(NULL);
  free(big);
  cq_close(q);
}

/* One started queue: each occurrence, as the clock passes it, once. */
static void api_cron_fires_each_occurrence(conf_case *c) {
  conf_clock clk = {T_0200 + 30 * 1000};
  jobq_t *q = cq_open_clock(c, &clk, 0);
  CK_OK(jobq_cron_add(q, "every-minute", "* * * * *", NULL, "tick", "{\"n\":1}", NULL));
  CK_OK(jobq_start(q));
  for (int i = 1; i <= 5; i++) {
    int64_t occ = T_0200 + i * MINUTE;
    conf_clock_set(&clk, occ);
    char key[100];
    snprintf(key, sizeof key, "cron:every-minute:%lld", (long long)occ);
    CK(wait_for(key_stored, q, key), "occurrence %d was not submitted", i);
    jobq_job_t *j = NULL;
    CK_OK(jobq_get_by_key(q, key, &j));
    CK_STR(jobq_job_kind(j), "tick");
    CK_STR(jobq_job_payload(j), "{\"n\":1}");
    CK_INT(jobq_job_run_at(j), occ);
    CK_INT(jobq_job_state(j), JOBQ_QUEUED);
    jobq_job_free(j);
  }
  next_is w = {"every-minute", T_0200 + 6 * MINUTE};
  CK(wait_for(next_reached, q, &w), "next run did not move on");
  int64_t last = 0;
  CK(cron_times(q, "every-minute", NULL, &last), "listed");
  CK_INT(last, T_0200 + 5 * MINUTE);
  size_t n = 0;
  int64_t *v = run_ats(q, "tick", &n);
  CK_INT(n, 5);
  for (size_t i = 0; i < n; i++) CK_INT(v[i], T_0200 + (int64_t)(i + 1) * MINUTE);
  free(v);
  /* A removed schedule submits nothing more; a sibling shows the pass ran. */
  CK_OK(jobq_cron_add(q, "sibling", "* * * * *", NULL, "other", NULL, NULL));
  CK_OK(jobq_cron_remove(q, "every-minute"));
  conf_clock_set(&clk, T_0200 + 7 * MINUTE);
  char key[100];
  snprintf(key, sizeof key, "cron:sibling:%lld", (long long)(T_0200 + 7 * MINUTE));
  CK(wait_for(key_stored, q, key), "the sibling did not fire");
  v = run_ats(q, "tick", &n);
  CK_INT(n, 5);
  free(v);
  cq_close(q);
}

/* A queue that is not started evaluates nothing. */
static void api_cron_submit_only_queue_does_not_fire(conf_case *c) {
  conf_clock clk = {T_0200};
  jobq_t *q = cq_open_clock(c, &clk, 0);
  CK_OK(jobq_cron_add(q, "n", "* * * * *", NULL, "tick", NULL, NULL));
  conf_clock_set(&clk, T_0200 + 10 * MINUTE);
  conf_sleep_ms(100); /* four maintenance ticks */
  int64_t next = 0;
  CK(cron_times(q, "n", &next, NULL), "listed");
  CK_INT(next, T_0200 + MINUTE);
  size_t n = 0;
  int64_t *v = run_ats(q, "tick", &n);
  CK_INT(n, 0);
  free(v);
  cq_close(q);
}

/* Every process was down for three days across a daily schedule's runs:
 * the schedule is added, the clock jumps, and only then a queue starts. */
static void missed_case(conf_case *c, int policy, const char *expr, int64_t jump, int64_t want_next,
                        size_t want_n, int64_t first_run, int64_t step) {
  conf_clock clk = {T_0200};
  jobq_t *q = cq_open_clock(c, &clk, policy);
  CK_OK(jobq_cron_add(q, "s", expr, "UTC", "job", NULL, NULL));
  conf_clock_set(&clk, T_0200 + jump);
  CK_OK(jobq_start(q));
  next_is w = {"s", want_next};
  CK(wait_for(next_reached, q, &w), "the schedule was not evaluated");
  size_t n = 0;
  int64_t *v = run_ats(q, "job", &n);
  CK_INT(n, want_n);
  for (size_t i = 0; i < n; i++) CK_INT(v[i], first_run + (int64_t)i * step);
  free(v);
  cq_close(q);
}

static void api_cron_missed_latest(conf_case *c) {
  /* 03:00 on days 0, 1, 2 were missed: the latest, once. */
  missed_case(c, JOBQ_CRON_MISSED_LATEST, "0 3 * * *", 3 * DAY, T_0300 + 3 * DAY, 1,
              T_0300 + 2 * DAY, 0);
}

static void api_cron_missed_skip(conf_case *c) {
  missed_case(c, JOBQ_CRON_MISSED_SKIP, "0 3 * * *", 3 * DAY, T_0300 + 3 * DAY, 0, 0, 0);
}

static void api_cron_missed_all(conf_case *c) {
  missed_case(c, JOBQ_CRON_MISSED_ALL, "0 3 * * *", 3 * DAY, T_0300 + 3 * DAY, 3, T_0300, DAY);
}

static void api_cron_missed_all_at_most_1000(conf_case *c) {
  /* 4,320 minutes missed: the latest 1,000, oldest first. */
  missed_case(c, JOBQ_CRON_MISSED_ALL, "* * * * *", 3 * DAY, T_0200 + 3 * DAY + MINUTE, 1000,
              T_0200 + 3 * DAY - 999 * MINUTE, MINUTE);
}

static void api_cron_skip_still_runs_on_time(conf_case *c) {
  /* Evaluated within the minute, an occurrence is not missed. */
  missed_case(c, JOBQ_CRON_MISSED_SKIP, "0 3 * * *", 60 * MINUTE + 20 * 1000, T_0300 + DAY, 1,
              T_0300, 0);
}

/* America/New_York springs forward on 2026-03-08 at 02:00: 02:30 does not
 * exist that day and runs at the end of the gap (03:00 EDT). */
static void api_cron_dst_new_york(conf_case *c) {
  const int64_t t0 = INT64_C(1772798400000);       /* 2026-03-06T12:00Z */
  const int64_t runs[3] = {INT64_C(1772868600000),  /* 03-07 02:30 EST = 07:30Z */
                           INT64_C(1772953200000),  /* 03-08 03:00 EDT = 07:00Z */
                           INT64_C(1773037800000)}; /* 03-09 02:30 EDT = 06:30Z */
  int64_t x;
  CK_OK(jobq_cron_next("30 2 * * *", "America/New_York", runs[2], &x));
  conf_clock clk = {t0};
  jobq_t *q = cq_open_clock(c, &clk, 0);
  CK_OK(jobq_cron_add(q, "ny", "30 2 * * *", "America/New_York", "job", NULL, NULL));
  CK_OK(jobq_start(q));
  for (int i = 0; i < 3; i++) {
    int64_t next = 0;
    CK(cron_times(q, "ny", &next, NULL), "listed");
    CK_INT(next, runs[i]);
    conf_clock_set(&clk, runs[i]);
    next_is w = {"ny", i < 2 ? runs[i + 1] : x};
    CK(wait_for(next_reached, q, &w), "run %d was not evaluated", i);
  }
  size_t n = 0;
  int64_t *v = run_ats(q, "job", &n);
  CK_INT(n, 3);
  for (size_t i = 0; i < n; i++) CK_INT(v[i], runs[i]);
  free(v);
  cq_close(q);
}

/* Several queues on one SQLite file (several processes) evaluate the same
 * schedules under one clock that moves across many occurrences: each
 * occurrence is stored exactly once. */
#define RACE_QUEUES 4
#define RACE_STEPS 40

static int all_keys_stored(jobq_t *q, const void *arg) {
  const int64_t *occ = arg;
  char key[100];
  for (int s = 0; s < 3; s++) {
    snprintf(key, sizeof key, "cron:race%d:%lld", s, (long long)*occ);
    if (!key_stored(q, key)) return 0;
  }
  return 1;
}

static void durable_cron_exactly_once_across_queues(conf_case *c) {
  conf_clock clk = {T_0200 + 1000};
  jobq_t *q[RACE_QUEUES];
  for (int i = 0; i < RACE_QUEUES; i++) q[i] = cq_open_clock(c, &clk, JOBQ_CRON_MISSED_ALL);
  for (int s = 0; s < 3; s++) {
    char name[16];
    snprintf(name, sizeof name, "race%d", s);
    CK_OK(jobq_cron_add(q[s % RACE_QUEUES], name, "* * * * *", NULL, "race", NULL, NULL));
  }
  for (int i = 0; i < RACE_QUEUES; i++) CK_OK(jobq_start(q[i]));
  int last = 0;
  for (int step = 1; step <= RACE_STEPS; step++) {
    int64_t occ = T_0200 + step * MINUTE;
    /* Mostly on the minute; every fifth step the clock jumps two minutes
     * at once (both occurrences are then due: ALL submits each). */
    if (step % 5 == 0) {
      conf_clock_set(&clk, occ + MINUTE);
      CK(wait_for(all_keys_stored, q[step % RACE_QUEUES], &occ), "step %d not submitted", step);
      step++;
      occ += MINUTE;
    } else {
      conf_clock_set(&clk, occ);
    }
    CK(wait_for(all_keys_stored, q[step % RACE_QUEUES], &occ), "step %d not submitted", step);
    last = step;
  }
  /* Let every queue finish the passes it began. */
  for (int i = 0; i < RACE_QUEUES; i++) {
    next_is w = {"race0", T_0200 + (last + 1) * MINUTE};
    CK(wait_for(next_reached, q[i], &w), "queue %d did not settle", i);
  }
  size_t n = 0;
  int64_t *v = run_ats(q[0], "race", &n);
  CK_INT(n, 3 * (size_t)last);
  for (size_t i = 0; i < n; i++) CK_INT(v[i], T_0200 + (int64_t)(i / 3 + 1) * MINUTE);
  free(v);
  for (int i = 0; i < RACE_QUEUES; i++) cq_close(q[i]);
}

/* A schedule one queue adds is evaluated by another (on the same store). */
static void durable_cron_seen_by_other_queue(conf_case *c) {
  conf_clock clk = {T_0200};
  jobq_t *adder = cq_open_clock(c, &clk, 0), *worker = cq_open_clock(c, &clk, 0);
  CK_OK(jobq_start(worker));
  conf_sleep_ms(50); /* the worker has read the (empty) list */
  CK_OK(jobq_cron_add(adder, "from-api", "*/5 * * * *", NULL, "job", NULL, NULL));
  conf_clock_set(&clk, T_0200 + 5 * MINUTE);
  char key[100];
  snprintf(key, sizeof key, "cron:from-api:%lld", (long long)(T_0200 + 5 * MINUTE));
  CK(wait_for(key_stored, adder, key), "the worker did not fire the schedule");
  cq_close(worker);
  cq_close(adder);
}

/* A host's backend without the cron members. */
static const jobq_storage_ops *mem_ops;
static int nocron_open(const char *url, void **out) {
  (void)url;
  return mem_ops->open("memory:", out);
}

static void api_cron_backend_without_schedules(conf_case *c) {
  (void)c;
  static jobq_storage_ops ops;
  if (ops.scheme == NULL) {
    CK_OK(jobq__storage_lookup("memory:", &mem_ops));
    ops = *mem_ops;
    ops.scheme = "nocron";
    ops.open = nocron_open;
    ops.cron_put = NULL;
    ops.cron_del = NULL;
    ops.cron_list = NULL;
    ops.cron_fire = NULL;
    int rc = jobq_storage_register(&ops);
    CK(rc == 0 || rc == JOBQ_EEXIST, "register: %s", jobq_last_error());
  }
  jobq_options_t *o = jobq_options_new();
  CK_OK(jobq_options_set_storage(o, "nocron:"));
  jobq_t *q = NULL;
  CK_OK(jobq_open(&q, o));
  jobq_options_free(o);
  CK_OK(jobq_start(q)); /* evaluation skips a backend without schedules */
  CK_ERR(JOBQ_ENOTSUP, jobq_cron_add(q, "n", "* * * * *", NULL, "k", NULL, NULL));
  CK_HAS(jobq_last_error(), "nocron backend cannot store cron schedules");
  CK_ERR(JOBQ_ENOTSUP, jobq_cron_remove(q, "n"));
  jobq_cron_list_t *l = NULL;
  CK_ERR(JOBQ_ENOTSUP, jobq_cron_list(q, &l));
  cq_close(q);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(vt_cron_put_list_del),
    CONF_TEST(vt_cron_fire_is_compare_and_set),
    CONF_TEST_NEED(vt_cron_survives_reopen, CONF_NEED_DURABLE),
    CONF_TEST(api_cron_add_list_remove),
    CONF_TEST(api_cron_bad_input),
    CONF_TEST(api_cron_fires_each_occurrence),
    CONF_TEST(api_cron_submit_only_queue_does_not_fire),
    CONF_TEST(api_cron_missed_latest),
    CONF_TEST(api_cron_missed_skip),
    CONF_TEST(api_cron_missed_all),
    CONF_TEST(api_cron_missed_all_at_most_1000),
    CONF_TEST(api_cron_skip_still_runs_on_time),
    CONF_TEST(api_cron_dst_new_york),
    CONF_TEST_NEED(durable_cron_exactly_once_across_queues, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_cron_seen_by_other_queue, CONF_NEED_DURABLE),
    CONF_TEST_ONLY(api_cron_backend_without_schedules, "memory"),
  };
  return conf_run("cron", tests, sizeof tests / sizeof tests[0]);
}
