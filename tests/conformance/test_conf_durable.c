/* Storage conformance, layer 2 for durable backends (rows of conf_backends[]
 * with .durable = 1: SQLite now, PostgreSQL later): data outlives the queue,
 * a job abandoned by a dead process is rescued by another queue once its
 * lease expires, and several queues on one database never run a job twice.
 * Then SQLite's own fault cases (missing directory, not a database, a newer
 * schema, URL options).
 *
 * One test kills a real process: the test program runs itself
 * (/proc/self/exe --conf-child-claim URL) as a child that claims a job and
 * dies by SIGKILL while holding it. */
#include "conformance.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define T CONF_T0

static conf_qopts clock_opts(conf_clock *clk) {
  conf_qopts o = {0};
  conf_clock_set(clk, T);
  o.clock = clk;
  return o;
}

static void succeed_settled(jobq_t *q, jobq_ctx_t *ctx, const char *result, int want) {
  char id[JOBQ_ID_SIZE];
  snprintf(id, sizeof id, "%s", jobq_ctx_id(ctx));
  CK_OK(jobq_ctx_succeed(ctx, result));
  CK(cq_wait_state(q, id, want), "job %s did not become %s", id, jobq_state_name(want));
}

/* ---- persistence ------------------------------------------------------------------ */

static void durable_reopen_keeps_everything(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, clock_opts(&clk));
  char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], j3[JOBQ_ID_SIZE], j4[JOBQ_ID_SIZE], j5[JOBQ_ID_SIZE],
      j7[JOBQ_ID_SIZE], x[JOBQ_ID_SIZE];
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_owner(so, "owner-1"));
  CK_OK(jobq_submit_opts_set_priority(so, 3));
  CK_OK(jobq_submit_opts_set_max_attempts(so, 7));
  cq_submit(q, "p", "{\"big\":[1,2,3],\"s\":\"\\u00e9\"}", so, j1);
  jobq_submit_opts_free(so);
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_delay(so, 10000));
  cq_submit(q, "p", "2", so, j2);
  jobq_submit_opts_free(so);
  cq_submit(q, "done", "3", NULL, j3);
  cq_submit(q, "bad", "4", NULL, j4);
  cq_submit(q, "gone", "5", NULL, j5);
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe(so, "dk", 0));
  cq_submit(q, "p", "7", so, j7);
  jobq_submit_opts_free(so);

  conf_clock_set(&clk, T + 5);
  jobq_ctx_t *ctx = cq_claim_expect(q, "done", j3);
  CK_OK(jobq_ctx_progress(ctx, 30, "halfway"));
  conf_clock_set(&clk, T + 6);
  succeed_settled(q, ctx, "{\"r\":true}", JOBQ_SUCCEEDED);
  ctx = cq_claim_expect(q, "bad", j4);
  CK_OK(jobq_ctx_fail(ctx, "broken", 0));
  CK(cq_wait_state(q, j4, JOBQ_FAILED), "job did not fail");
  CK_OK(jobq_cancel(q, j5));
  cq_close(q);

  conf_clock_set(&clk, T + 100);
  q = cq_open(c, clock_opts(&clk));
  conf_clock_set(&clk, T + 100);
  jobq_job_t *j = cq_get(q, j1);
  CK_INT(jobq_job_state(j), JOBQ_QUEUED);
  CK_STR(jobq_job_kind(j), "p");
  CK_STR(jobq_job_payload(j), "{\"big\":[1,2,3],\"s\":\"\\u00e9\"}");
  CK_STR(jobq_job_owner(j), "owner-1");
  CK_INT(jobq_job_priority(j), 3);
  CK_INT(jobq_job_max_attempts(j), 7);
  CK_INT(jobq_job_created_at(j), T);
  CK_INT(jobq_job_run_at(j), T);
  CK_INT(jobq_job_attempts(j), 0);
  jobq_job_free(j);
  j = cq_get(q, j2);
  CK_INT(jobq_job_state(j), JOBQ_QUEUED);
  CK_INT(jobq_job_run_at(j), T + 10000);
  jobq_job_free(j);
  j = cq_get(q, j3);
  CK_INT(jobq_job_state(j), JOBQ_SUCCEEDED);
  CK_STR(jobq_job_result(j), "{\"r\":true}");
  CK_INT(jobq_job_progress(j), 100);
  CK_STR(jobq_job_step(j), "halfway");
  CK_INT(jobq_job_attempts(j), 1);
  CK_INT(jobq_job_started_at(j), T + 5);
  CK_INT(jobq_job_finished_at(j), T + 6);
  CK_INT(jobq_job_attempt_started_at(j, 0), T + 5);
  CK_INT(jobq_job_attempt_finished_at(j, 0), T + 6);
  jobq_job_free(j);
  j = cq_get(q, j4);
  CK_INT(jobq_job_state(j), JOBQ_FAILED);
  CK_STR(jobq_job_error(j), "broken");
  CK_STR(jobq_job_attempt_error(j, 0), "broken");
  jobq_job_free(j);
  j = cq_get(q, j5);
  CK_INT(jobq_job_state(j), JOBQ_CANCELLED);
  CK_STR(jobq_job_error(j), "cancelled");
  jobq_job_free(j);
  /* The dedupe key lives on. */
  so = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_dedupe(so, "dk", 0));
  CK_RC(1, jobq_submit(q, "p", "8", so, x));
  jobq_submit_opts_free(so);
  CK_STR(x, j7);
  /* Everything is listed, and claims continue in order. */
  jobq_page_t *p = NULL;
  CK_OK(jobq_list(q, NULL, &p));
  CK_INT(jobq_page_count(p), 6);
  if (jobq_page_count(p) == 6) CK_STR(jobq_job_id(jobq_page_job(p, 5)), j1);
  jobq_page_free(p);
  ctx = cq_claim_expect(q, NULL, j1);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  ctx = cq_claim_expect(q, NULL, j7);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_claim_none(q, NULL);
  conf_clock_set(&clk, T + 10000);
  ctx = cq_claim_expect(q, NULL, j2);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_close(q);
}

/* ---- a dead claimer ------------------------------------------------------------------- */

/* Another process claimed the job (through the vtable, with a 100 ms lease)
 * and never came back: no heartbeat, no finish. */
static void durable_abandoned_job_rescued_by_other_queue(conf_case *c) {
  conf_clock clk;
  conf_qopts o = clock_opts(&clk);
  o.lease_ms = 1000; /* this queue rescues every 500 ms of its clock */
  jobq_t *q = cq_open(c, o);
  char id[JOBQ_ID_SIZE], later[JOBQ_ID_SIZE];
  cq_submit(q, "r", "{\"n\":1}", NULL, id);
  cq_submit(q, "r", "{\"n\":2}", NULL, later);

  conf_store dead;
  cs_open(c, &dead);
  const char *kinds[] = {"r"};
  conf_claim cl = {0};
  cl.kinds = kinds;
  cl.n_kinds = 1;
  cl.now = T;
  cl.lease_ms = 100;
  jobq_storage_job rec;
  memset(&rec, 0, sizeof rec);
  CK_INT(cs_claim_req(&dead, cl, &rec), 1);
  CK_STR(rec.id, id);
  jobq_storage_job_clear(&rec);

  /* While the lease lives the job stays with its claimer. */
  jobq_job_t *j = cq_get(q, id);
  CK_INT(jobq_job_state(j), JOBQ_RUNNING);
  CK_INT(jobq_job_attempts(j), 1);
  jobq_job_free(j);
  jobq_ctx_t *ctx = cq_claim_expect(q, "r", later);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_claim_none(q, "r");

  /* Past the lease (and this queue's next rescue round). */
  conf_clock_set(&clk, T + 1000);
  const char *rk[] = {"r", NULL};
  ctx = NULL;
  int rc = jobq_claim(q, rk, CONF_GUARD_MS, &ctx);
  CK(rc == 0, "the abandoned job was not rescued and claimed within %d ms: %s (%s)",
     CONF_GUARD_MS, jobq_err_name(rc), jobq_last_error());
  CK_STR(jobq_ctx_id(ctx), id);
  CK_INT(jobq_ctx_attempt(ctx), 2);
  CK_STR(jobq_ctx_payload(ctx), "{\"n\":1}");
  j = cq_get(q, id);
  CK_INT(jobq_job_attempts(j), 2);
  CK_HAS(jobq_job_attempt_error(j, 0), "lease");
  CK_INT(jobq_job_attempt_started_at(j, 0), T);
  CK_STR(jobq_job_attempt_error(j, 1), NULL);
  jobq_job_free(j);

  /* The dead attempt's late news is refused. */
  CK_INT(cs_finish(&dead, id, 1, T + 1001, (conf_fin){JOBQ_OUTCOME_SUCCEEDED, "1", NULL, 0, 0, NULL}),
         JOBQ_ESTATE);
  jobq_storage_lease l = {id, 1, 77, 77};
  CK_OK(dead.ops->heartbeat(dead.st, &l, 1, T + 100000));
  CK_INT(l.still_running, 0);
  cs_close(&dead);

  succeed_settled(q, ctx, "\"second try\"", JOBQ_SUCCEEDED);
  j = cq_get(q, id);
  CK_STR(jobq_job_result(j), "\"second try\"");
  jobq_job_free(j);
  cq_close(q);
}

/* The child: claims one job of kind "victim" with a 100 ms lease, says
 * which on stdout, then dies without a word. */
static int child_claim_and_die(const char *url) {
  if (conf_register_backends() != 0) return 6;
  jobq_options_t *opts = jobq_options_new();
  if (opts == NULL || jobq_options_set_storage(opts, url) != 0 ||
      jobq_options_set_lease(opts, 100) != 0)
    return 2;
  jobq_t *q = NULL;
  if (jobq_open(&q, opts) != 0) return 3;
  jobq_options_free(opts);
  const char *kinds[] = {"victim", NULL};
  jobq_ctx_t *ctx = NULL;
  if (jobq_claim(q, kinds, CONF_GUARD_MS, &ctx) != 0) return 4;
  printf("%s\n", jobq_ctx_id(ctx));
  fflush(stdout);
  raise(SIGKILL);
  return 5;
}

static void durable_killed_process_job_rescued(conf_case *c) {
  conf_qopts o = {0};
  o.lease_ms = 100; /* rescue rounds every 50 ms */
  jobq_t *q = cq_open(c, o);
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "victim", "{}", NULL, id);

  int pipefd[2];
  CK_INT(pipe(pipefd), 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  CK(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* Straight to exec: nothing of the parent's threads is touched. */
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    close(pipefd[1]);
    execl("/proc/self/exe", "conf-child", "--conf-child-claim", c->url, (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  char line[128] = {0};
  size_t got = 0;
  for (;;) {
    ssize_t r = read(pipefd[0], line + got, sizeof line - 1 - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(pipefd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
     "the child did not die holding the job (status 0x%x, it said \"%s\")", status, line);
  line[strcspn(line, "\n")] = '\0';
  CK_STR(line, id);

  /* The child's lease (100 ms) runs out; this queue rescues and claims it. */
  const char *kinds[] = {"victim", NULL};
  jobq_ctx_t *ctx = NULL;
  int rc = jobq_claim(q, kinds, CONF_GUARD_MS, &ctx);
  CK(rc == 0, "the killed process's job was not rescued within %d ms: %s (%s)", CONF_GUARD_MS,
     jobq_err_name(rc), jobq_last_error());
  CK_STR(jobq_ctx_id(ctx), id);
  CK_INT(jobq_ctx_attempt(ctx), 2);
  succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  jobq_job_t *j = cq_get(q, id);
  CK_HAS(jobq_job_attempt_error(j, 0), "lease expired");
  jobq_job_free(j);
  cq_close(q);
}

/* ---- several queues on one database ----------------------------------------------------- */

enum { NJOBS = 240, NTHREADS = 4 };

typedef struct claimer {
  jobq_t *q;
  _Atomic int *claimed; /* shared total */
  int n;
  char ids[NJOBS][JOBQ_ID_SIZE];
  int errors;
  int first_error;
} claimer;

static void *claimer_main(void *p) {
  claimer *cl = p;
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  while (atomic_load(cl->claimed) < NJOBS && conf_mono_ms() < end) {
    jobq_ctx_t *ctx = NULL;
    int rc = jobq_claim(cl->q, NULL, 0, &ctx);
    if (rc == JOBQ_ETIMEDOUT) {
      conf_sleep_ms(1);
      continue;
    }
    if (rc != 0) {
      if (!cl->errors++) cl->first_error = rc;
      continue;
    }
    if (cl->n < NJOBS) memcpy(cl->ids[cl->n], jobq_ctx_id(ctx), JOBQ_ID_SIZE);
    cl->n++;
    atomic_fetch_add(cl->claimed, 1);
    rc = jobq_ctx_succeed(ctx, NULL);
    if (rc != 0 && !cl->errors++) cl->first_error = rc;
  }
  return NULL;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

typedef struct run_count {
  _Atomic int runs[NJOBS];
} run_count;

static void count_handler(jobq_ctx_t *ctx, void *ud) {
  run_count *rc = ud;
  int i = atoi(jobq_ctx_payload(ctx));
  if (i >= 0 && i < NJOBS) atomic_fetch_add(&rc->runs[i], 1);
  jobq_ctx_succeed(ctx, NULL);
}

static size_t count_state(jobq_t *q, int state) {
  jobq_filter_t *f = jobq_filter_new();
  CK_OK(jobq_filter_set_limit(f, 1000));
  CK_OK(jobq_filter_set_state(f, state));
  jobq_page_t *p = NULL;
  CK_OK(jobq_list(q, f, &p));
  size_t n = jobq_page_count(p);
  CK(jobq_page_next_cursor(p) == NULL, "more than 1000 jobs");
  jobq_page_free(p);
  jobq_filter_free(f);
  return n;
}

static void durable_two_queues_never_share_a_job(conf_case *c) {
  jobq_t *qa = cq_open(c, (conf_qopts){0});
  jobq_t *qb = cq_open(c, (conf_qopts){0});
  /* Phase 1: host threads claiming through both queues at once. */
  const char *kinds[NJOBS], *payloads[NJOBS];
  char pl[NJOBS][12];
  for (int i = 0; i < NJOBS; i++) {
    kinds[i] = i % 2 ? "x" : "y";
    snprintf(pl[i], sizeof pl[i], "%d", i);
    payloads[i] = pl[i];
  }
  static char ids[NJOBS * JOBQ_ID_SIZE];
  CK_RC(0, jobq_submit_many(qa, NJOBS, kinds, payloads, NULL, ids, NULL));
  static claimer cls[NTHREADS];
  _Atomic int claimed = 0;
  pthread_t th[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    memset(&cls[t], 0, sizeof cls[t]);
    cls[t].q = t % 2 ? qb : qa;
    cls[t].claimed = &claimed;
    CK_INT(pthread_create(&th[t], NULL, claimer_main, &cls[t]), 0);
  }
  for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
  static char all[NJOBS * NTHREADS][JOBQ_ID_SIZE];
  size_t n = 0;
  for (int t = 0; t < NTHREADS; t++) {
    CK(cls[t].errors == 0, "claimer %d had %d errors, the first %s", t, cls[t].errors,
       jobq_err_name(cls[t].first_error));
    for (int i = 0; i < cls[t].n && i < NJOBS; i++) memcpy(all[n++], cls[t].ids[i], JOBQ_ID_SIZE);
  }
  qsort(all, n, JOBQ_ID_SIZE, cmp_id);
  for (size_t i = 1; i < n; i++)
    CK(strcmp(all[i - 1], all[i]) != 0, "job %s was claimed twice", all[i]);
  CK(n == NJOBS, "%zu jobs were claimed; expected %d (queue A: %d + %d, B: %d + %d)", n, NJOBS,
     cls[0].n, cls[2].n, cls[1].n, cls[3].n);
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  while (count_state(qb, JOBQ_SUCCEEDED) < NJOBS && conf_mono_ms() < end) conf_sleep_ms(5);
  CK_INT(count_state(qb, JOBQ_SUCCEEDED), NJOBS);
  CK_INT(count_state(qa, JOBQ_SUCCEEDED), NJOBS);
  cq_close(qa);
  cq_close(qb);

  /* Phase 2: worker threads of two queues; each job runs once. */
  jobq_options_t *opts = jobq_options_new();
  CK_OK(jobq_options_set_storage(opts, c->url));
  CK_OK(jobq_options_set_workers(opts, 2));
  CK_OK(jobq_open(&qa, opts));
  CK_OK(jobq_open(&qb, opts));
  jobq_options_free(opts);
  static run_count rcount;
  for (int i = 0; i < NJOBS; i++) atomic_store(&rcount.runs[i], 0);
  CK_OK(jobq_register(qa, "w", count_handler, &rcount, NULL));
  CK_OK(jobq_register(qb, "w", count_handler, &rcount, NULL));
  CK_OK(jobq_start(qa));
  CK_OK(jobq_start(qb));
  for (int i = 0; i < NJOBS; i++) kinds[i] = "w";
  CK_RC(0, jobq_submit_many(qa, NJOBS / 2, kinds, payloads, NULL, ids, NULL));
  CK_RC(0, jobq_submit_many(qb, NJOBS / 2, kinds, payloads + NJOBS / 2, NULL, ids, NULL));
  end = conf_mono_ms() + CONF_GUARD_MS;
  while (count_state(qa, JOBQ_SUCCEEDED) < 2 * NJOBS && conf_mono_ms() < end) conf_sleep_ms(5);
  CK_INT(count_state(qa, JOBQ_SUCCEEDED), 2 * NJOBS);
  CK_OK(jobq_close(qa, CONF_GUARD_MS));
  CK_OK(jobq_close(qb, CONF_GUARD_MS));
  for (int i = 0; i < NJOBS; i++)
    CK(atomic_load(&rcount.runs[i]) == 1, "job %d ran %d times", i, atomic_load(&rcount.runs[i]));
}

/* ---- SQLite faults ------------------------------------------------------------------------- */

static int open_url_rc(const char *url) {
  jobq_options_t *opts = jobq_options_new();
  CK_OK(jobq_options_set_storage(opts, url));
  jobq_t *q = (jobq_t *)&q;
  jobq_storage_set_error("");
  int rc = jobq_open(&q, opts);
  jobq_options_free(opts);
  if (rc == 0) {
    jobq_close(q, 0);
    return 0;
  }
  CK(q == (jobq_t *)&q, "a failed jobq_open wrote *out");
  CK(jobq_last_error()[0] != '\0', "jobq_open(\"%s\") failed without a sentence", url);
  return rc;
}

static int vtable_open_rc(const char *url) {
  const jobq_storage_ops *ops = NULL;
  void *st = NULL;
  int rc = jobq__storage_lookup(url, &ops);
  if (rc == 0 && (rc = ops->open(url, &st)) == 0) ops->close(st);
  return rc;
}

/* A per-owner quota holds across queues (processes) on one store: the
 * count and the insert share a transaction. 4 threads on 2 queues race to
 * submit 25 jobs each for one owner whose quota is 10. */
typedef struct quota_racer {
  jobq_t *q;
  int ok, refused, other, first_other;
} quota_racer;

static void *quota_racer_main(void *p) {
  quota_racer *r = p;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  jobq_submit_opts_set_owner(so, "racer");
  for (int i = 0; i < 25; i++) {
    char id[JOBQ_ID_SIZE];
    int rc = jobq_submit(r->q, i % 2 ? "qa" : "qb", "{}", so, id);
    if (rc == 0) r->ok++;
    else if (rc == JOBQ_EQUOTA) r->refused++;
    else if (!r->other++) r->first_other = rc;
  }
  jobq_submit_opts_free(so);
  return NULL;
}

static void durable_quota_holds_across_queues(conf_case *c) {
  conf_qopts o = {0};
  o.workers = 0;
  o.quota_max[0] = 10;
  jobq_t *qa = cq_open(c, o), *qb = cq_open(c, o);
  quota_racer r[4] = {{qa, 0, 0, 0, 0}, {qb, 0, 0, 0, 0}, {qa, 0, 0, 0, 0}, {qb, 0, 0, 0, 0}};
  pthread_t t[4];
  for (int i = 0; i < 4; i++) CK(pthread_create(&t[i], NULL, quota_racer_main, &r[i]) == 0, "thread");
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  int ok = 0, refused = 0;
  for (int i = 0; i < 4; i++) {
    CK(r[i].other == 0, "a submit failed with %s: %s", jobq_err_name(r[i].first_other),
       jobq_last_error());
    ok += r[i].ok;
    refused += r[i].refused;
  }
  CK_INT(ok, 10);
  CK_INT(refused, 90);
  jobq_filter_t *f = jobq_filter_new();
  CK_OK(jobq_filter_set_owner(f, "racer"));
  CK_OK(jobq_filter_set_limit(f, 1000));
  jobq_page_t *pg = NULL;
  CK_OK(jobq_list(qb, f, &pg));
  CK_INT(jobq_page_count(pg), 10);
  jobq_page_free(pg);
  jobq_filter_free(f);
  cq_close(qa);
  cq_close(qb);
}

/* ---- shared stats and ETA across processes ---- */

/* The worker queue's handler: a "block" job holds its worker until the
 * gate opens; any other takes exactly 1000 ms of the fake clock. */
static conf_clock *stats_clk;
static atomic_int stats_blocked, stats_gate;

static void stats_handler(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  if (strcmp(jobq_ctx_payload(ctx), "\"block\"") == 0) {
    atomic_store(&stats_blocked, 1);
    while (!atomic_load(&stats_gate)) conf_sleep_ms(1);
  } else {
    conf_clock_set(stats_clk, conf_clock_fn(stats_clk) + 1000);
  }
  jobq_ctx_succeed(ctx, NULL);
}

/* An API queue that runs nothing sees, through the store, what a worker
 * queue did: its counters, durations, depth, and a running job; and it
 * gives a queued job an ETA from them. */
static void durable_api_queue_sees_worker_stats(conf_case *c) {
  conf_clock clk;
  conf_clock_set(&clk, T);
  stats_clk = &clk;
  atomic_store(&stats_blocked, 0);
  atomic_store(&stats_gate, 0);
  conf_qopts o = {0};
  o.clock = &clk;
  o.workers = 2;
  jobq_t *w = cq_open(c, o);
  o.workers = 0;
  jobq_t *api = cq_open(c, o);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  CK_OK(jobq_kind_opts_set_concurrency(ko, 1));
  CK_OK(jobq_register(w, "k", stats_handler, NULL, ko));
  jobq_kind_opts_free(ko);
  CK_OK(jobq_start(w));
  char j1[JOBQ_ID_SIZE], j2[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE], x1[JOBQ_ID_SIZE], x2[JOBQ_ID_SIZE];
  /* Two jobs of 1000 ms each, one after the other. */
  cq_submit(api, "k", "{}", NULL, j1);
  CK(cq_wait_state(w, j1, JOBQ_SUCCEEDED), "j1 did not succeed");
  cq_submit(api, "k", "{}", NULL, j2);
  CK(cq_wait_state(w, j2, JOBQ_SUCCEEDED), "j2 did not succeed");
  /* One that runs until the gate opens; it started 400 ms ago. */
  cq_submit(api, "k", "\"block\"", NULL, b);
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  while (!atomic_load(&stats_blocked)) {
    CK(conf_mono_ms() < end, "the blocking job did not start");
    conf_sleep_ms(1);
  }
  int64_t t_b = T + 2000; /* its claim: after the two 1000 ms jobs */
  conf_clock_set(&clk, t_b + 400);
  cq_submit(api, "k", "{}", NULL, x1); /* wait behind it: concurrency 1 */
  cq_submit(api, "k", "{}", NULL, x2);
  /* The worker's snapshot adds its counts and publication to the store. */
  jobq_stats_t *st = NULL;
  CK_OK(jobq_stats(w, &st));
  jobq_stats_free(st);

  /* ETA in the API queue, which never registered "k": A = 1000 (two
   * attempts of 1000 ms), c = 1, the running job has 600 ms left. */
  jobq_job_t *j = cq_get(api, x1);
  CK_INT(jobq_job_position(j), 0);
  CK_INT(jobq_job_eta_ms(j), 600);
  jobq_job_free(j);
  j = cq_get(api, x2);
  CK_INT(jobq_job_position(j), 1);
  CK_INT(jobq_job_eta_ms(j), 1600);
  jobq_job_free(j);

  CK_OK(jobq_stats(api, &st));
  CK_INT(jobq_stats_kind_count(st), 1);
  CK_STR(jobq_stats_kind_name(st, 0), "k");
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_STARTED), 3);
  CK_INT(jobq_stats_kind_counter(st, 0, JOBQ_STAT_SUCCEEDED), 2);
  CK_INT(jobq_stats_kind_running(st, 0), 1);
  CK_INT(jobq_stats_kind_queued(st, 0), 2);
  CK_INT(jobq_stats_kind_concurrency(st, 0), 1);
  CK(jobq_stats_kind_average_ms(st, 0) == 1000, "average %g",
     jobq_stats_kind_average_ms(st, 0));
  double p50 = jobq_stats_kind_duration_quantile(st, 0, 0.5);
  CK(p50 > 500 && p50 <= 1000, "p50 %g is not in the bucket of 1000 ms", p50);
  jobq_stats_free(st);

  /* The worker closes: it withdraws; the API queue assumes one worker. */
  atomic_store(&stats_gate, 1);
  CK(cq_wait_state(w, b, JOBQ_SUCCEEDED), "the blocking job did not succeed");
  cq_close(w);
  CK_OK(jobq_stats(api, &st));
  CK_INT(jobq_stats_kind_concurrency(st, 0), 0);
  CK_INT(jobq_stats_kind_running(st, 0), 0);
  /* b, and x1 or x2 if the worker took them before it closed */
  CK(jobq_stats_kind_counter(st, 0, JOBQ_STAT_SUCCEEDED) >= 3, "succeeded %lld",
     (long long)jobq_stats_kind_counter(st, 0, JOBQ_STAT_SUCCEEDED));
  jobq_stats_free(st);
  cq_close(api);
}

/* A batch's cap holds across queues (processes) on one store, and its end
 * is told once: by the queue whose finish ended it, to the other through
 * shared events. Two queues claim in turns; whenever neither may claim,
 * the oldest running member finishes. */
static void durable_batch_cap_across_queues(conf_case *c) {
  conf_qopts o = {0};
  o.workers = 0;
  o.event_buffer = 4096;
  jobq_t *q[2] = {cq_open(c, o), cq_open(c, o)};
  jobq_event_t *ev = NULL;
  /* Each store looks for listeners at most once a second: wait (bounded)
   * until each queue hears the other's probe jobs. */
  int heard[2] = {0, 0};
  uint64_t until = conf_mono_ms() + CONF_GUARD_MS;
  while (!(heard[0] && heard[1]) && conf_mono_ms() < until) {
    for (int i = 0; i < 2; i++) {
      char pid[JOBQ_ID_SIZE];
      cq_submit(q[1 - i], "probe", "{}", NULL, pid);
      ev = NULL;
      while (!heard[i] && jobq_next_event(q[i], 50, &ev) == 0) {
        heard[i] = jobq_event_type(ev) == JOBQ_EVENT_SUBMITTED &&
                   strcmp(jobq_event_job_id(ev), pid) == 0;
        jobq_event_free(ev);
        ev = NULL;
      }
    }
  }
  CK(heard[0] && heard[1], "the queues never heard each other");
  const char *kinds[12], *payloads[12];
  for (int i = 0; i < 12; i++) kinds[i] = "dcap", payloads[i] = "{}";
  char bid[JOBQ_ID_SIZE], ids[12 * JOBQ_ID_SIZE];
  CK_RC(0, jobq_batch_submit(q[0], 12, kinds, payloads, NULL, 3, bid, ids, NULL));
  jobq_ctx_t *run[12];
  int owner[12], n_run = 0, done = 0, max_seen = 0, turn = 0;
  while (done < 12) {
    jobq_ctx_t *ctx = cq_claim_now(q[turn], "dcap");
    if (ctx) {
      owner[n_run] = turn;
      run[n_run++] = ctx;
      if (n_run > max_seen) max_seen = n_run;
      jobq_batch_t *b = NULL;
      CK_OK(jobq_batch_get(q[1 - turn], bid, &b));
      CK(jobq_batch_count(b, JOBQ_RUNNING) <= 3, "%lld running",
         (long long)jobq_batch_count(b, JOBQ_RUNNING));
      jobq_batch_free(b);
    } else if (cq_claim_now(q[1 - turn], "dcap") == NULL) {
      CK(n_run > 0, "nothing running and nothing to claim with %d done", done);
      char id[JOBQ_ID_SIZE];
      snprintf(id, sizeof id, "%s", jobq_ctx_id(run[0]));
      CK_OK(jobq_ctx_succeed(run[0], NULL));
      CK(cq_wait_state(q[owner[0]], id, JOBQ_SUCCEEDED), "job %s did not succeed", id);
      memmove(run, run + 1, (size_t)(n_run - 1) * sizeof *run);
      memmove(owner, owner + 1, (size_t)(n_run - 1) * sizeof *owner);
      n_run--;
      done++;
    } else {
      CONF_FAIL("the other queue claimed past the turn");
    }
    turn = 1 - turn;
  }
  CK_INT(max_seen, 3);
  /* Each queue hears of the end exactly once. */
  for (int i = 0; i < 2; i++) {
    int seen = 0;
    uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
    while (seen == 0 && conf_mono_ms() < end) {
      ev = NULL;
      if (jobq_next_event(q[i], 50, &ev) == 0 && jobq_event_type(ev) == JOBQ_EVENT_BATCH_DONE) {
        CK_STR(jobq_event_batch_id(ev), bid);
        seen++;
      }
      jobq_event_free(ev);
    }
    ev = NULL;
    while (jobq_next_event(q[i], 300, &ev) == 0) {
      if (jobq_event_type(ev) == JOBQ_EVENT_BATCH_DONE) seen++;
      jobq_event_free(ev);
      ev = NULL;
    }
    CK_INT(seen, 1);
  }
  cq_close(q[0]);
  cq_close(q[1]);
}

static void sqlite_fault_missing_directory(conf_case *c) {
  char url[700], path[600];
  conf_path(c, "missing", path, sizeof path);
  snprintf(url, sizeof url, "sqlite:%s/deeper/q.db", path);
  CK_RC(JOBQ_EIO, open_url_rc(url));
  CK_HAS(jobq_last_error(), "missing");
  CK_RC(JOBQ_EIO, vtable_open_rc(url));
  CK(!conf_exists(path), "opening created %s", path);
  /* A regular file where the directory should be. */
  conf_path(c, "plainfile", path, sizeof path);
  FILE *f = fopen(path, "w");
  CK(f != NULL, "cannot write %s", path);
  fputs("x", f);
  fclose(f);
  snprintf(url, sizeof url, "sqlite:%s/q.db", path);
  CK_RC(JOBQ_EIO, open_url_rc(url));
}

static void sqlite_fault_not_a_database(conf_case *c) {
  char path[600], url[700];
  conf_path(c, "notes.txt", path, sizeof path);
  FILE *f = fopen(path, "w");
  CK(f != NULL, "cannot write %s", path);
  for (int i = 0; i < 200; i++) fprintf(f, "line %d: this is a text file, not a database\n", i);
  fclose(f);
  size_t n0 = 0, n1 = 0;
  unsigned char *before = conf_slurp(path, &n0);
  CK(before != NULL, "cannot read %s", path);
  snprintf(url, sizeof url, "sqlite:%s", path);
  CK_RC(JOBQ_ECORRUPT, open_url_rc(url));
  CK_RC(JOBQ_ECORRUPT, vtable_open_rc(url));
  unsigned char *after = conf_slurp(path, &n1);
  CK(after != NULL && n0 == n1 && memcmp(before, after, n0) == 0,
     "the text file was changed by a failed open (%zu -> %zu bytes)", n0, n1);
  free(before);
  free(after);
}

static void make_newer_schema_db(const char *path) {
  sqlite3 *db = NULL;
  CK_INT(sqlite3_open(path, &db), SQLITE_OK);
  char *err = NULL;
  int rc = sqlite3_exec(db,
                        "CREATE TABLE jobq_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT "
                        "ROWID;"
                        "INSERT INTO jobq_meta(key, value) VALUES ('schema_version', '999');"
                        "CREATE TABLE jobq_jobs_from_the_future(x);",
                        NULL, NULL, &err);
  CK(rc == SQLITE_OK, "cannot make the test database: %s", err ? err : "?");
  sqlite3_free(err);
  CK_INT(sqlite3_close(db), SQLITE_OK);
}

static void sqlite_fault_newer_schema_untouched(conf_case *c) {
  char path[600], url[700];
  conf_path(c, "future.db", path, sizeof path);
  make_newer_schema_db(path);
  size_t n0 = 0, n1 = 0;
  unsigned char *before = conf_slurp(path, &n0);
  CK(before != NULL && n0 > 0, "cannot read %s", path);
  struct stat st0, st1;
  CK_INT(stat(path, &st0), 0);
  snprintf(url, sizeof url, "sqlite:%s", path);
  CK_RC(JOBQ_EVERSION, open_url_rc(url));
  CK_HAS(jobq_last_error(), "999");
  CK_RC(JOBQ_EVERSION, vtable_open_rc(url));
  snprintf(url, sizeof url, "sqlite:%s?durability=power&busy_timeout=100", path);
  CK_RC(JOBQ_EVERSION, open_url_rc(url));
  unsigned char *after = conf_slurp(path, &n1);
  CK(after != NULL && n0 == n1 && memcmp(before, after, n0) == 0,
     "the newer database was changed by a refused open (%zu -> %zu bytes)", n0, n1);
  CK_INT(stat(path, &st1), 0);
  CK(st0.st_mtime == st1.st_mtime && st0.st_size == st1.st_size, "the file's mtime/size changed");
  free(before);
  free(after);
  /* And it still says 999. */
  sqlite3 *db = NULL;
  CK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *q = NULL;
  CK_INT(sqlite3_prepare_v2(db, "SELECT value FROM jobq_meta WHERE key = 'schema_version'", -1, &q,
                            NULL),
         SQLITE_OK);
  CK_INT(sqlite3_step(q), SQLITE_ROW);
  CK_STR((const char *)sqlite3_column_text(q, 0), "999");
  sqlite3_finalize(q);
  sqlite3_close(db);
}

static size_t count_all(jobq_t *q) { return count_state(q, -1); }

/* A full disk (max_page_count): JOBQ_EFULL, nothing half-stored, and the
 * database is fine once there is room again. */
static void sqlite_fault_disk_full(conf_case *c) {
  jobq_t *q = cq_open(c, (conf_qopts){0});
  cq_close(q);
  char path[600], url[700];
  conf_path(c, "q.db", path, sizeof path);
  struct stat sb;
  CK_INT(stat(path, &sb), 0);
  long pages = (long)(sb.st_size / 4096);
  snprintf(url, sizeof url, "%s?max_page_count=%ld", c->url, pages + 6);
  conf_qopts o = {0};
  o.url = url;
  q = cq_open(c, o);
  static char big[20003];
  memset(big, 'x', sizeof big - 1);
  big[0] = '"';
  big[sizeof big - 2] = '"';
  big[sizeof big - 1] = '\0';
  int stored = 0, rc = 0;
  char id[JOBQ_ID_SIZE];
  while (stored < 200) {
    jobq_storage_set_error("");
    rc = jobq_submit(q, "fill", big, NULL, id);
    if (rc != 0) break;
    stored++;
  }
  CK(rc == JOBQ_EFULL, "after %d jobs a submit returned %d (%s); expected JOBQ_EFULL (%s)", stored,
     rc, jobq_err_name(rc), jobq_last_error());
  CK(jobq_last_error()[0] != '\0', "JOBQ_EFULL without a sentence");
  CK_INT(count_all(q), stored);
  /* A batch does not fit either, and leaves nothing behind. */
  const char *kinds[] = {"fill", "fill", "fill"};
  const char *payloads[] = {"1", big, big};
  char ids[3 * JOBQ_ID_SIZE];
  CK_ERR(JOBQ_EFULL, jobq_submit_many(q, 3, kinds, payloads, NULL, ids, NULL));
  CK_INT(count_all(q), stored);
  cq_close(q);
  /* Room again: everything stored is there, and new jobs go in. */
  q = cq_open(c, (conf_qopts){0});
  CK_INT(count_all(q), stored);
  cq_submit(q, "fill", big, NULL, id);
  CK_INT(count_all(q), stored + 1);
  cq_close(q);
}

/* The URL's options are honoured, and a database made by this libjobq
 * reopens under other options. */
static void sqlite_url_options_work(conf_case *c) {
  char url[700];
  snprintf(url, sizeof url, "%s?durability=power&busy_timeout=250", c->url);
  conf_qopts o = {0};
  o.url = url;
  jobq_t *q = cq_open(c, o);
  char id[JOBQ_ID_SIZE];
  cq_submit(q, "k", "1", NULL, id);
  cq_close(q);
  snprintf(url, sizeof url, "%s?busy_timeout=0&durability=crash", c->url);
  q = cq_open(c, o);
  jobq_ctx_t *ctx = cq_claim_expect(q, "k", id);
  CK_OK(jobq_ctx_succeed(ctx, NULL));
  cq_close(q);
  q = cq_open(c, (conf_qopts){0});
  CK(cq_wait_state(q, id, JOBQ_SUCCEEDED), "the job is not succeeded after reopening");
  cq_close(q);
}

/* ---- SQLite: leases by owner, the checkpointer ----------------------------------- */

/* One integer from the database file, through a connection of its own. */
static int64_t sq_int(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int64_t v = -1;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

/* A queue keeps one row in jobq_leases while it runs jobs, never later
 * than the earliest lease among them, and none once nothing runs. */
static void sqlite_lease_row_follows_running_jobs(conf_case *c) {
  const char *path = c->url + strlen("sqlite:");
  jobq_t *q = cq_open(c, (conf_qopts){0});
  char a[JOBQ_ID_SIZE], b[JOBQ_ID_SIZE];
  cq_submit(q, "k", "1", NULL, a);
  cq_submit(q, "k", "2", NULL, b);
  CK_INT(sq_int(path, "SELECT count(*) FROM jobq_leases"), 0);
  jobq_ctx_t *ca = cq_claim_expect(q, "k", a);
  jobq_ctx_t *cb = cq_claim_expect(q, "k", b);
  CK_INT(sq_int(path, "SELECT count(*) FROM jobq_leases"), 1); /* one row, not one per job */
  CK_INT(sq_int(path, "SELECT count(*) FROM jobq_jobs WHERE state = 1 AND "
                      "lease_owner = (SELECT owner FROM jobq_leases)"),
         2);
  CK_INT(sq_int(path, "SELECT (SELECT until FROM jobq_leases) <= "
                      "(SELECT min(lease_until) FROM jobq_jobs WHERE state = 1)"),
         1);
  CK_INT(sq_int(path, "SELECT (SELECT until FROM jobq_leases) > 0"), 1);
  succeed_settled(q, ca, NULL, JOBQ_SUCCEEDED);
  CK_INT(sq_int(path, "SELECT count(*) FROM jobq_leases"), 1); /* b still runs */
  succeed_settled(q, cb, NULL, JOBQ_SUCCEEDED);
  CK_INT(sq_int(path, "SELECT count(*) FROM jobq_leases"), 0);
  cq_close(q);
}

/* A heartbeat stores the lease_until its caller gave, even when it had to
 * wait for the write lock: a rescue at a given "now" must not depend on
 * how long the writer waited. (It once added the wall-clock time it waited,
 * so a rescue just past the heartbeat's time found nothing when the writer
 * thread was slow to run, e.g. under load.) The heartbeat runs on a thread
 * of its own while a connection of the test holds the write lock for
 * 50 ms after that thread started. */
typedef struct hb_call {
  conf_store *s;
  jobq_storage_lease *l;
  int64_t until;
  atomic_int started;
  int rc;
} hb_call;

static void *hb_main(void *p) {
  hb_call *h = p;
  atomic_store(&h->started, 1);
  h->rc = h->s->ops->heartbeat(h->s->st, h->l, 1, h->until);
  return NULL;
}

static void sqlite_heartbeat_that_waits_stores_callers_time(conf_case *c) {
  const char *path = c->url + strlen("sqlite:");
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
  sqlite3 *db = NULL;
  CK_INT(sqlite3_open(path, &db), SQLITE_OK);
  CK_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  jobq_storage_lease l = {id, 1, 0, 0};
  hb_call h = {&s, &l, T + 1000, 0, -1};
  pthread_t th;
  CK_INT(pthread_create(&th, NULL, hb_main, &h), 0);
  while (!atomic_load(&h.started)) conf_sleep_ms(1);
  conf_sleep_ms(50); /* the heartbeat waits for the write lock meanwhile */
  CK_INT(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  pthread_join(th, NULL);
  sqlite3_close(db);
  CK_OK(h.rc);
  CK_INT(l.still_running, 1);
  CK_INT(sq_int(path, "SELECT lease_until - 1000 FROM jobq_jobs"), T);
  size_t n = 99;
  CK_OK(s.ops->rescue(s.st, T + 1000, &n));
  CK_INT(n, 0);
  CK_OK(s.ops->rescue(s.st, T + 1001, &n));
  CK_INT(n, 1);
  CK_INT(cs_state(&s, id, T + 1001), JOBQ_QUEUED);
  cs_close(&s);
}

/* Under a steady stream of commits the -wal file stays bounded (the
 * writer steps in once the checkpointer falls 4,000 frames behind, about
 * 16 MB), and every job is in the database once the queue closed. Without
 * a bound this load leaves a WAL of some 55 MB (measured). */
static void sqlite_wal_stays_bounded(conf_case *c) {
  const char *path = c->url + strlen("sqlite:");
  char wal[700];
  snprintf(wal, sizeof wal, "%s-wal", path);
  jobq_t *q = cq_open(c, (conf_qopts){0});
  enum { BATCH = 1000, BATCHES = 200 };
  static const char *kinds[BATCH], *payloads[BATCH];
  static char ids[BATCH * JOBQ_ID_SIZE];
  for (int i = 0; i < BATCH; i++) {
    kinds[i] = "bulk";
    payloads[i] = "{\"text\":\"a payload of some length, like a short summary\"}";
  }
  off_t most = 0;
  for (int b = 0; b < BATCHES; b++) {
    CK_OK(jobq_submit_many(q, BATCH, kinds, payloads, NULL, ids, NULL));
    struct stat st;
    if (stat(wal, &st) == 0 && st.st_size > most) most = st.st_size;
  }
  CK(most < (off_t)24 << 20, "the -wal file grew to %lld bytes", (long long)most);
  CK(most > 0, "no -wal file beside %s", path);
  cq_close(q);
  CK_INT(sq_int(path, "SELECT count(*) FROM jobq_jobs WHERE kind = 'bulk'"), BATCH * BATCHES);
}

/* jobq_close gives a running attempt back: the job is queued again with the
 * attempt not counted, for the next queue on the database; the attempt's ctx
 * reports the close. (Kept last: see the report on user_finish_async.) */
static void durable_close_releases_running_job(conf_case *c) {
  conf_clock clk;
  jobq_t *q = cq_open(c, clock_opts(&clk));
  char id[JOBQ_ID_SIZE], other[JOBQ_ID_SIZE];
  cq_submit(q, "held", "6", NULL, id);
  cq_submit(q, "held", "7", NULL, other);
  jobq_ctx_t *held = cq_claim_expect(q, "held", id);
  CK_OK(jobq_ctx_progress(held, 50, "half"));
  CK_OK(jobq_close(q, 0));
  CK_INT(jobq_ctx_cancelled(held), 1);
  CK_ERR(JOBQ_ECLOSED, jobq_ctx_succeed(held, "1")); /* q goes with the last ctx */
  q = cq_open(c, clock_opts(&clk));
  jobq_job_t *j = cq_get(q, id);
  CK_INT(jobq_job_state(j), JOBQ_QUEUED);
  CK_INT(jobq_job_attempts(j), 0);
  CK_STR(jobq_job_result(j), NULL);
  jobq_job_free(j);
  jobq_ctx_t *ctx = cq_claim_expect(q, "held", id); /* still first in line */
  CK_INT(jobq_ctx_attempt(ctx), 1);
  succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  ctx = cq_claim_expect(q, "held", other);
  succeed_settled(q, ctx, NULL, JOBQ_SUCCEEDED);
  cq_close(q);
}

/* Retention across processes (two queues on one store): the one that
 * registered the kind and started prunes what the other submitted, keeping
 * each owner's newest job (keep_per_owner 1); a kind that only a queue that
 * never started registered is not pruned. */
static int durable_gone(jobq_t *q, const char *id) {
  uint64_t end = conf_mono_ms() + CONF_GUARD_MS;
  for (;;) {
    jobq_job_t *j = NULL;
    int rc = jobq_get(q, id, &j);
    jobq_job_free(j);
    if (rc == JOBQ_ENOTFOUND) return 1;
    if (conf_mono_ms() > end) return 0;
    conf_sleep_ms(2);
  }
}

static void durable_retention_by_the_registering_queue(conf_case *c) {
  conf_clock clk;
  conf_clock_set(&clk, T);
  conf_qopts o = {0};
  o.clock = &clk;
  o.workers = 0;
  jobq_t *api = cq_open(c, o), *worker = cq_open(c, o);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  CK_OK(jobq_kind_opts_set_retention(ko, 3600000));
  CK_OK(jobq_kind_opts_set_keep_per_owner(ko, 1));
  CK_OK(jobq_register(worker, "r", conf_noop_handler, NULL, ko));
  CK_OK(jobq_register(api, "unstarted", conf_noop_handler, NULL, ko)); /* api never starts */
  jobq_kind_opts_free(ko);
  CK_OK(jobq_start(worker));
  jobq_submit_opts_t *alice = jobq_submit_opts_new();
  CK_OK(jobq_submit_opts_set_owner(alice, "alice"));
  char a[3][JOBQ_ID_SIZE], anon[JOBQ_ID_SIZE], un[JOBQ_ID_SIZE];
  for (int i = 0; i < 3; i++) cq_submit(api, "r", "{}", alice, a[i]);
  cq_submit(api, "r", "{}", NULL, anon);
  cq_submit(api, "unstarted", "{}", NULL, un);
  jobq_submit_opts_free(alice);
  for (int i = 0; i < 3; i++)
    succeed_settled(worker, cq_claim_expect(worker, "r", a[i]), NULL, JOBQ_SUCCEEDED);
  succeed_settled(worker, cq_claim_expect(worker, "r", anon), NULL, JOBQ_SUCCEEDED);
  succeed_settled(worker, cq_claim_expect(worker, "unstarted", un), NULL, JOBQ_SUCCEEDED);
  conf_clock_set(&clk, T + 3600000 + 120000);
  CK(durable_gone(api, a[0]) && durable_gone(api, a[1]) && durable_gone(api, anon),
     "the old jobs were not pruned within %d ms", CONF_GUARD_MS);
  CK_INT(cq_state(api, a[2]), JOBQ_SUCCEEDED); /* alice's newest */
  CK_INT(cq_state(api, un), JOBQ_SUCCEEDED);
  cq_close(worker);
  cq_close(api);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--conf-child-claim") == 0) return child_claim_and_die(argv[2]);
  static const conf_test tests[] = {
    CONF_TEST_NEED(durable_reopen_keeps_everything, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_abandoned_job_rescued_by_other_queue, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_killed_process_job_rescued, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_two_queues_never_share_a_job, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_quota_holds_across_queues, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_api_queue_sees_worker_stats, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_batch_cap_across_queues, CONF_NEED_DURABLE),
    CONF_TEST_ONLY(sqlite_fault_missing_directory, "sqlite"),
    CONF_TEST_ONLY(sqlite_fault_not_a_database, "sqlite"),
    CONF_TEST_ONLY(sqlite_fault_newer_schema_untouched, "sqlite"),
    CONF_TEST_ONLY(sqlite_fault_disk_full, "sqlite"),
    CONF_TEST_ONLY(sqlite_url_options_work, "sqlite"),
    CONF_TEST_ONLY(sqlite_lease_row_follows_running_jobs, "sqlite"),
    CONF_TEST_ONLY(sqlite_heartbeat_that_waits_stores_callers_time, "sqlite"),
    CONF_TEST_ONLY(sqlite_wal_stays_bounded, "sqlite"),
    CONF_TEST_NEED(durable_close_releases_running_job, CONF_NEED_DURABLE),
    CONF_TEST_NEED(durable_retention_by_the_registering_queue, CONF_NEED_DURABLE),
  };
  return conf_run("durable storage", tests, sizeof tests / sizeof tests[0]);
}
