/* Pipelines: stages in order, checkpoints and resume, progress shares,
 * cancellation, the offline built-in stages end to end, bad input. Runs on
 * the memory backend and on a real SQLite file. */
/* jobq-test-requires: espeak lame (left out of builds without them) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "jobq.h"
#include "jobq/stages.h"
#include "jobq/storage.h"
#include "stages/audio.h"
#include "util/fs.h"

static char tmpdir[256];
static const char *backend; /* "memory" or "sqlite" */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int setup_dir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/jobq-pipeline-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  jobq__rmtree(tmpdir);
  return 0;
}

static jobq_t *open_q(const char *dbname) {
  jobq_options_t *o = jobq_options_new();
  char url[512], wd[512];
  if (strcmp(backend, "sqlite") == 0) {
    snprintf(url, sizeof url, "sqlite:%s/%s", tmpdir, dbname);
    assert_int_equal(jobq_options_set_storage(o, url), 0);
  }
  snprintf(wd, sizeof wd, "%s/work", tmpdir);
  assert_int_equal(jobq_options_set_workdir(o, wd), 0);
  jobq_options_set_workers(o, 2);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  return q;
}

static jobq_job_t *wait_done(jobq_t *q, const char *id) {
  for (int i = 0; i < 600; i++) {
    jobq_job_t *j = NULL;
    int rc = jobq_wait(q, id, 100, &j); /* a timeout still gives the snapshot */
    if (rc == 0 && jobq_state_is_terminal(jobq_job_state(j))) return j;
    jobq_job_free(j);
  }
  fail_msg("job %s did not finish", id);
  return NULL;
}

/* ---- host stages ---------------------------------------------------------- */

typedef struct counters {
  atomic_int calls[4];
  atomic_int fail_first[4]; /* fail this stage's first n calls, retryably */
  atomic_int saw_progress_ok;
  atomic_int cancel_called;
} counters;

/* Appends the stage's name to the input's "trail" list. */
static void append_trail(jobq_stage_t *st) {
  json_t *in = json_loads(jobq_stage_input(st), 0, NULL);
  assert_non_null(in);
  json_t *trail = json_object_get(in, "trail");
  if (trail == NULL) json_object_set_new(in, "trail", trail = json_array());
  json_array_append_new(trail, json_string(jobq_stage_name(st)));
  char *out = json_dumps(in, JSON_COMPACT);
  json_decref(in);
  assert_int_equal(jobq_stage_succeed(st, out), 0);
  free(out);
}

static void blocking_stage(jobq_stage_t *st, void *ud) {
  counters *c = ud;
  int i = jobq_stage_index(st);
  atomic_fetch_add(&c->calls[i], 1);
  assert_int_equal(jobq_stage_progress(st, 50, "halfway"), 0);
  if (atomic_load(&c->fail_first[i]) > 0) {
    atomic_fetch_sub(&c->fail_first[i], 1);
    assert_int_equal(jobq_stage_fail(st, "provider said 503", 1), 0);
    return;
  }
  append_trail(st);
}

/* On the loop: finishes from a timer callback, as an I/O stage would. */
typedef struct loop_ctx {
  uv_timer_t t;
  jobq_stage_t *st;
  counters *c;
} loop_ctx;

static void on_timer_closed(uv_handle_t *h) { free(h->data); }

static void loop_fire(uv_timer_t *t) {
  loop_ctx *lc = t->data;
  if (lc->st) append_trail(lc->st);
  uv_close((uv_handle_t *)t, on_timer_closed);
}

static void loop_cancel(jobq_stage_t *st, void *ud) {
  loop_ctx *lc = ud;
  atomic_fetch_add(&lc->c->cancel_called, 1);
  uv_timer_stop(&lc->t);
  assert_int_equal(jobq_stage_fail(st, "aborted", 0), 0);
  lc->st = NULL;
  uv_close((uv_handle_t *)&lc->t, on_timer_closed);
}

static void loop_stage(jobq_stage_t *st, void *ud) {
  counters *c = ud;
  atomic_fetch_add(&c->calls[jobq_stage_index(st)], 1);
  loop_ctx *lc = calloc(1, sizeof *lc);
  lc->st = st;
  lc->c = c;
  uv_timer_init(jobq_stage_loop(st), &lc->t);
  lc->t.data = lc;
  jobq_stage_on_cancel(st, loop_cancel, lc);
  /* a long wait when the payload asks for it (cancellation test) */
  json_t *p = json_loads(jobq_stage_payload(st), 0, NULL);
  int ms = p && json_is_integer(json_object_get(p, "loop_ms")) ? (int)json_integer_value(json_object_get(p, "loop_ms")) : 5;
  json_decref(p);
  uv_timer_start(&lc->t, loop_fire, (uint64_t)ms, 0);
}

static jobq_pipeline_t *three_stages(counters *c) {
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_non_null(p);
  assert_int_equal(jobq_pipeline_add_stage(p, "one", blocking_stage, c, JOBQ_STAGE_BLOCKING), 0);
  assert_int_equal(jobq_pipeline_add_stage(p, "two", loop_stage, c, JOBQ_STAGE_ON_LOOP), 0);
  assert_int_equal(jobq_pipeline_add_stage(p, "three", blocking_stage, c, JOBQ_STAGE_BLOCKING), 0);
  assert_int_equal(jobq_pipeline_set_progress(p, "one", 10, 20, "Stage one..."), 0);
  return p;
}

static void check_trail(const char *result, const char *want) {
  json_t *r = json_loads(result, 0, NULL);
  assert_non_null(r);
  char *t = json_dumps(json_object_get(r, "trail"), JSON_COMPACT);
  assert_string_equal(t, want);
  free(t);
  json_decref(r);
}

typedef struct progress_log {
  int n;
  int values[256];
  char steps[256][64];
} progress_log;

static void on_event(const jobq_event_t *ev, void *ud) {
  progress_log *pl = ud;
  if (jobq_event_type(ev) != JOBQ_EVENT_PROGRESS || pl->n >= 256) return;
  pl->values[pl->n] = jobq_event_progress(ev);
  snprintf(pl->steps[pl->n], 64, "%s", jobq_event_step(ev) ? jobq_event_step(ev) : "");
  pl->n++;
}

static void test_stages_in_order(void **state) {
  (void)state;
  counters c = {0};
  jobq_t *q = open_q("order.db");
  jobq_pipeline_t *p = three_stages(&c);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, NULL), 0);
  jobq_pipeline_free(p); /* copied */
  progress_log pl = {0};
  assert_int_equal(jobq_subscribe(q, on_event, &pl), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{\"x\": 1}", NULL, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  check_trail(jobq_job_result(j), "[\"one\",\"two\",\"three\"]");
  assert_int_equal(jobq_job_progress(j), 100);
  jobq_job_free(j);
  for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&c.calls[i]), 1);
  assert_int_equal(jobq_close(q, 5000), 0);
  /* Progress: stage one's own share 10..20 (50 % of it is 15) with its step;
   * stages without a share split 5..95: two is 35..65, three 65..95. */
  int saw15 = 0, saw_two = 0, saw_three_half = 0, last = 0, monotonic = 1;
  for (int i = 0; i < pl.n; i++) {
    if (pl.values[i] == 15 && strcmp(pl.steps[i], "halfway") == 0) saw15 = 1;
    if (pl.values[i] == 35 && strcmp(pl.steps[i], "Running two...") == 0) saw_two = 1;
    if (pl.values[i] == 80) saw_three_half = 1;
    if (pl.values[i] < last) monotonic = 0;
    last = pl.values[i];
  }
  assert_true(saw15);
  assert_true(saw_two);
  assert_true(saw_three_half);
  assert_true(monotonic);
}

/* A stage that fails retryably resumes at that stage: the stages before it
 * are not run again (their outputs were checkpointed). */
static void test_retry_resumes_at_failed_stage(void **state) {
  (void)state;
  counters c = {0};
  atomic_store(&c.fail_first[2], 2);
  jobq_t *q = open_q("resume.db");
  jobq_pipeline_t *p = three_stages(&c);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  jobq_kind_opts_set_max_attempts(ko, 5);
  jobq_kind_opts_set_backoff(ko, 10, 20, 0);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, ko), 0);
  jobq_kind_opts_free(ko);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{}", NULL, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 3);
  check_trail(jobq_job_result(j), "[\"one\",\"two\",\"three\"]");
  /* the failed attempts' errors name the stage */
  assert_non_null(strstr(jobq_job_attempt_error(j, 0), "stage three: provider said 503"));
  jobq_job_free(j);
  assert_int_equal(atomic_load(&c.calls[0]), 1);
  assert_int_equal(atomic_load(&c.calls[1]), 1);
  assert_int_equal(atomic_load(&c.calls[2]), 3);
  assert_int_equal(jobq_close(q, 5000), 0);
}

/* The checkpoint outlives the process's queue: a job released at close in
 * the middle of stage two resumes at stage two in the next queue. */
/* A backend of vtable version 1 has no checkpoints: pipelines still run,
 * and a retry starts again from the first stage. */
extern const jobq_storage_ops jobq__memory_ops;
static jobq_storage_ops v1_ops;

static int v1_open(const char *url, void **out) {
  (void)url;
  return jobq__memory_ops.open("memory:", out);
}

static void test_v1_backend_without_checkpoints(void **state) {
  (void)state;
  v1_ops = jobq__memory_ops;
  v1_ops.version = 1;
  v1_ops.scheme = "memv1";
  v1_ops.open = v1_open;
  v1_ops.checkpoint = NULL; /* what a backend compiled against version 1 has not */
  v1_ops.checkpoint_get = NULL;
  v1_ops.prune = NULL;
  int rc = jobq_storage_register(&v1_ops);
  assert_true(rc == 0 || rc == JOBQ_EEXIST);
  jobq_options_t *o = jobq_options_new();
  jobq_options_set_storage(o, "memv1:");
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  counters c = {0};
  atomic_store(&c.fail_first[2], 1);
  jobq_pipeline_t *p = three_stages(&c);
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  jobq_kind_opts_set_backoff(ko, 10, 20, 0);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, ko), 0);
  jobq_kind_opts_free(ko);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{}", NULL, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  check_trail(jobq_job_result(j), "[\"one\",\"two\",\"three\"]");
  jobq_job_free(j);
  assert_int_equal(atomic_load(&c.calls[0]), 2); /* no checkpoint: from the start */
  assert_int_equal(atomic_load(&c.calls[2]), 2);
  size_t n = 0;
  assert_int_equal(jobq_prune(q, 0, &n), JOBQ_ENOTSUP);
  assert_non_null(strstr(jobq_last_error(), "memv1"));
  assert_int_equal(jobq_close(q, 5000), 0);
}

static void test_checkpoint_survives_reopen(void **state) {
  (void)state;
  if (strcmp(backend, "sqlite") != 0) skip();
  counters c = {0};
  jobq_t *q = open_q("reopen.db");
  jobq_pipeline_t *p = three_stages(&c);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{\"loop_ms\": 60000}", NULL, id), 0);
  for (int i = 0; i < 500 && atomic_load(&c.calls[1]) == 0; i++) sleep_ms(10);
  assert_int_equal(atomic_load(&c.calls[1]), 1);
  assert_int_equal(jobq_close(q, 0), 0); /* released: stage two was under way */
  assert_int_equal(atomic_load(&c.cancel_called), 1);

  jobq_t *q2 = open_q("reopen.db");
  jobq_job_t *j = NULL;
  assert_int_equal(jobq_get(q2, id, &j), 0);
  assert_int_equal(jobq_job_state(j), JOBQ_QUEUED);
  assert_true(jobq_job_progress(j) >= 20); /* at least stage one's end, stored with the checkpoint */
  jobq_job_free(j);
  counters c2 = {0};
  jobq_pipeline_t *p2 = three_stages(&c2);
  assert_int_equal(jobq_register_pipeline(q2, "pipe", p2, NULL), 0);
  jobq_pipeline_free(p2);
  jobq_pipeline_free(p);
  /* the new attempt must not wait a minute in stage two: same payload, but
   * stage two of this run fires quickly only if told so; use a fresh job
   * check instead: stage one must not run again */
  assert_int_equal(jobq_start(q2), 0);
  for (int i = 0; i < 500 && atomic_load(&c2.calls[1]) == 0; i++) sleep_ms(10);
  assert_int_equal(atomic_load(&c2.calls[0]), 0); /* resumed after stage one */
  assert_int_equal(atomic_load(&c2.calls[1]), 1);
  assert_int_equal(jobq_cancel(q2, id), 0);
  j = wait_done(q2, id);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  jobq_job_free(j);
  assert_int_equal(atomic_load(&c2.cancel_called), 1);
  assert_int_equal(jobq_close(q2, 5000), 0);
}

/* A worker process killed (SIGKILL) in the middle of stage two: once its
 * lease expires another process rescues the job, and the new attempt
 * resumes at stage two from the checkpoint; stage one never runs again. */
static int crash_pipe[2];

static void hang_stage(jobq_stage_t *st, void *ud) {
  (void)st;
  (void)ud;
  char c = 'x';
  if (write(crash_pipe[1], &c, 1) != 1) _exit(3);
  for (;;) pause(); /* killed here */
}

static jobq_t *open_lease_q(const char *db, int lease_ms) {
  jobq_options_t *o = jobq_options_new();
  char url[512], wd[512];
  snprintf(url, sizeof url, "sqlite:%s/%s", tmpdir, db);
  snprintf(wd, sizeof wd, "%s/work", tmpdir);
  jobq_options_set_storage(o, url);
  jobq_options_set_workdir(o, wd);
  jobq_options_set_lease(o, lease_ms);
  jobq_t *q = NULL;
  assert_int_equal(jobq_open(&q, o), 0);
  jobq_options_free(o);
  return q;
}

static void test_crash_resumes_at_stage(void **state) {
  (void)state;
  if (strcmp(backend, "sqlite") != 0) skip();
  assert_int_equal(pipe(crash_pipe), 0);
  /* submitted by a submit-only queue */
  jobq_t *sq = open_lease_q("crash.db", 600);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(sq, "pipe", "{}", NULL, id), 0);
  assert_int_equal(jobq_close(sq, 0), 0);
  /* The worker is a fresh process (this one has threads: fork alone would
   * leave the child without them). */
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    char fd[16];
    snprintf(fd, sizeof fd, "%d", crash_pipe[1]);
    execl("/proc/self/exe", "test_pipeline", "--crash-child", tmpdir, fd, (char *)NULL);
    _exit(4);
  }
  char c;
  assert_int_equal(read(crash_pipe[0], &c, 1), 1); /* the child is in stage two */
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  assert_true(WIFSIGNALED(status));
  close(crash_pipe[0]);
  close(crash_pipe[1]);

  counters c2 = {0};
  jobq_t *q = open_lease_q("crash.db", 600);
  jobq_pipeline_t *p = three_stages(&c2); /* the same stage names, stage two quick now */
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, NULL), 0);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  jobq_job_t *j = wait_done(q, id); /* after the lease expires and a rescue */
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_int_equal(jobq_job_attempts(j), 2);
  assert_non_null(strstr(jobq_job_attempt_error(j, 0), "lease expired"));
  /* stage one's output came from the checkpoint the killed process wrote */
  check_trail(jobq_job_result(j), "[\"one\",\"two\",\"three\"]");
  jobq_job_free(j);
  assert_int_equal(atomic_load(&c2.calls[0]), 0);
  assert_int_equal(atomic_load(&c2.calls[1]), 1);
  assert_int_equal(atomic_load(&c2.calls[2]), 1);
  assert_int_equal(jobq_close(q, 5000), 0);
}

static void test_cancel_mid_stage(void **state) {
  (void)state;
  counters c = {0};
  jobq_t *q = open_q("cancel.db");
  jobq_pipeline_t *p = three_stages(&c);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, NULL), 0);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{\"loop_ms\": 60000}", NULL, id), 0);
  for (int i = 0; i < 500 && atomic_load(&c.calls[1]) == 0; i++) sleep_ms(10);
  assert_int_equal(jobq_cancel(q, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_CANCELLED);
  jobq_job_free(j);
  assert_int_equal(atomic_load(&c.cancel_called), 1);
  assert_int_equal(atomic_load(&c.calls[2]), 0);
  assert_int_equal(jobq_close(q, 5000), 0);
}

static void fail_for_good(jobq_stage_t *st, void *ud) {
  (void)ud;
  jobq_stage_fail(st, "bad input: no title", 0);
}

static void test_fail_for_good(void **state) {
  (void)state;
  counters c = {0};
  jobq_t *q = open_q("fail.db");
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_int_equal(jobq_pipeline_add_stage(p, "one", blocking_stage, &c, JOBQ_STAGE_BLOCKING), 0);
  assert_int_equal(jobq_pipeline_add_stage(p, "check", fail_for_good, NULL, JOBQ_STAGE_ON_LOOP), 0);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, NULL), 0);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{}", NULL, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 1);
  assert_string_equal(jobq_job_error(j), "stage check: bad input: no title");
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 5000), 0);
}

/* A stage's step and error texts must be valid UTF-8: refused with the
 * stage function's name, and the stage can still finish. */
typedef struct {
  atomic_int bad;
  char progress_err[256], fail_err[256];
} utf8_probe;

static void utf8_stage(jobq_stage_t *st, void *ud) {
  utf8_probe *u = ud;
  if (jobq_stage_progress(st, 50, "caf\xe9") != JOBQ_EINVAL) atomic_fetch_add(&u->bad, 1);
  snprintf(u->progress_err, sizeof u->progress_err, "%s", jobq_last_error());
  if (jobq_stage_fail(st, "caf\xe9 \xed\xa0\x80", 0) != JOBQ_EINVAL) atomic_fetch_add(&u->bad, 1);
  snprintf(u->fail_err, sizeof u->fail_err, "%s", jobq_last_error());
  if (jobq_stage_progress(st, 50, "Caf\xc3\xa9...") != 0) atomic_fetch_add(&u->bad, 1);
  if (jobq_stage_fail(st, "caf\xc3\xa9 closed", 0) != 0) atomic_fetch_add(&u->bad, 1);
}

static void test_stage_text_must_be_utf8(void **state) {
  (void)state;
  utf8_probe u = {0};
  jobq_t *q = open_q("utf8.db");
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_int_equal(jobq_pipeline_add_stage(p, "u", utf8_stage, &u, JOBQ_STAGE_BLOCKING), 0);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, NULL), 0);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{}", NULL, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_string_equal(jobq_job_error(j), "stage u: caf\xc3\xa9 closed");
  jobq_job_free(j);
  assert_int_equal(atomic_load(&u.bad), 0);
  assert_string_equal(u.progress_err,
                      "jobq_stage_progress: step is not valid UTF-8 (byte 0xe9 at offset 3)");
  assert_string_equal(u.fail_err,
                      "jobq_stage_fail: message is not valid UTF-8 (byte 0xe9 at offset 3)");
  assert_int_equal(jobq_close(q, 5000), 0);
}

/* ---- the offline built-in stages ---------------------------------------------- */

static char *offline_config(const char *fmt) {
  static char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "{\"script\": {\"provider\": \"template\", \"max_chars\": 2000},"
           " \"tts\": {\"provider\": \"espeak\", \"format\": \"%s\", \"pause_ms\": 200},"
           " \"upload\": {\"provider\": \"local\", \"dir\": \"%s/out\"}}",
           fmt, tmpdir);
  return cfg;
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

static void run_offline(const char *fmt) {
  jobq_t *q = open_q("offline.db");
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_int_equal(jobq_pipeline_add_config(p, offline_config(fmt)), 0);
  assert_int_equal(jobq_register_pipeline(q, "podcast", p, NULL), 0);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "podcast",
                               "{\"title\": \"Bridges\", \"text\": \"Counties must inspect small "
                               "bridges every four years. A weak bridge gets a weight limit.\"}",
                               NULL, id),
                   0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  json_t *r = json_loads(jobq_job_result(j), 0, NULL);
  assert_non_null(r);
  char url[1024];
  assert_non_null(json_string_value(json_object_get(r, "audioUrl")));
  snprintf(url, sizeof url, "%s", json_string_value(json_object_get(r, "audioUrl")));
  assert_int_equal(strncmp(url, "file://", 7), 0);
  char want_end[128];
  snprintf(want_end, sizeof want_end, "/out/%s.%s", id, fmt);
  assert_non_null(strstr(url, want_end));
  double dur = json_real_value(json_object_get(r, "audioDuration"));
  assert_true(dur > 2.0 && dur < 60.0);
  assert_string_equal(json_string_value(json_object_get(r, "audioFormat")), fmt);
  const char *tr = json_string_value(json_object_get(r, "transcript"));
  assert_non_null(tr);
  assert_non_null(strstr(tr, "Alex: Welcome back!"));
  assert_non_null(strstr(tr, "Sam: "));
  assert_true(json_array_size(json_object_get(r, "dialogue")) >= 4);
  /* the uploaded file is real audio of that length, not silence */
  size_t n = 0;
  unsigned char *bytes = slurp(url + 7, &n);
  assert_non_null(bytes);
  if (strcmp(fmt, "wav") == 0) {
    jobq__pcm pcm = {0};
    assert_int_equal(jobq__wav_parse(bytes, n, &pcm), 0);
    assert_true(jobq__pcm_seconds(&pcm) > dur - 0.05 && jobq__pcm_seconds(&pcm) < dur + 0.05);
    assert_true(jobq__pcm_rms(&pcm) > 300.0);
    jobq__pcm_free(&pcm);
  } else {
    double secs = 0;
    assert_int_equal(jobq__mp3_probe(bytes, n, &secs), 0);
    assert_true(secs > dur - 0.2 && secs < dur + 0.2);
  }
  free(bytes);
  json_decref(r);
  jobq_job_free(j);
  /* prune removes the job and its work directory; the upload stays */
  char wd[512];
  snprintf(wd, sizeof wd, "%s/work/%s", tmpdir, id);
  struct stat sb;
  assert_int_equal(stat(wd, &sb), 0);
  size_t pruned = 0;
  sleep_ms(5); /* "finished more than 0 ms ago" */
  assert_int_equal(jobq_prune(q, 0, &pruned), 0);
  assert_true(pruned >= 1);
  assert_int_not_equal(stat(wd, &sb), 0);
  assert_int_equal(stat(url + 7, &sb), 0);
  assert_int_equal(jobq_get(q, id, &j), JOBQ_ENOTFOUND);
  assert_int_equal(jobq_close(q, 5000), 0);
}

static void test_offline_wav(void **state) {
  (void)state;
  run_offline("wav");
}

static void test_offline_mp3(void **state) {
  (void)state;
  run_offline("mp3");
}

static void expect_job_failure(const char *payload, const char *err_part) {
  jobq_t *q = open_q("badinput.db");
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_int_equal(jobq_pipeline_add_config(p, offline_config("wav")), 0);
  assert_int_equal(jobq_register_pipeline(q, "podcast", p, NULL), 0);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "podcast", payload, NULL, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_FAILED);
  assert_int_equal(jobq_job_attempts(j), 1); /* bad input is not retried */
  if (strstr(jobq_job_error(j), err_part) == NULL)
    fail_msg("error '%s' lacks '%s'", jobq_job_error(j), err_part);
  jobq_job_free(j);
  assert_int_equal(jobq_close(q, 5000), 0);
}

static void test_bad_job_input(void **state) {
  (void)state;
  expect_job_failure("{\"text\": \"   \"}", "stage script: the input text is empty");
  expect_job_failure("{\"title\": \"no text\"}", "stage script: the input has no \"text\"");
  expect_job_failure("[1, 2]", "stage script: the input is not a JSON object");
  /* \u0000 in a string: a built-in stage would cut it as a C string, so it
   * refuses the input (the payload itself keeps it as JSON text). */
  expect_job_failure("{\"text\": \"Hello.\\u0000 Cut here.\"}",
                     "stage script: the input is not a JSON object: \\u0000 is not allowed");
  char big[2600];
  memset(big, 'a', sizeof big);
  memcpy(big, "{\"text\": \"", 10);
  memcpy(big + sizeof big - 3, "\"}", 3);
  expect_job_failure(big, "over the limit of 2000");
  /* an upload key that escapes: refused, nothing written outside out/ */
  expect_job_failure("{\"text\": \"Hello there. Bye now.\", \"uploadKey\": \"../../escaped.wav\"}",
                     "escapes the upload directory");
  char esc[512];
  snprintf(esc, sizeof esc, "%s/escaped.wav", tmpdir);
  struct stat sb;
  assert_int_not_equal(stat(esc, &sb), 0);
  expect_job_failure("{\"text\": \"Hello there.\", \"uploadKey\": \"/etc/passwd\"}",
                     "escapes the upload directory");
}

/* ---- bad input to the API -------------------------------------------------------- */

static void noop_stage(jobq_stage_t *st, void *ud) {
  (void)ud;
  jobq_stage_succeed(st, "{}");
}

#define EXPECT_ERR(call, code, fn)                                                   \
  do {                                                                               \
    int rc_ = (call);                                                                \
    if (rc_ != (code) || strstr(jobq_last_error(), fn) == NULL)                      \
      fail_msg("%s: rc %d (%s), last_error '%s'", #call, rc_, jobq_err_name(rc_),    \
               jobq_last_error());                                                   \
  } while (0)

static void test_api_bad_input(void **state) {
  (void)state;
  jobq_pipeline_t *p = jobq_pipeline_new();
  EXPECT_ERR(jobq_pipeline_add_stage(NULL, "a", noop_stage, NULL, 0), JOBQ_EINVAL, "jobq_pipeline_add_stage");
  EXPECT_ERR(jobq_pipeline_add_stage(p, NULL, noop_stage, NULL, 0), JOBQ_EINVAL, "name is NULL");
  EXPECT_ERR(jobq_pipeline_add_stage(p, "", noop_stage, NULL, 0), JOBQ_EINVAL, "stage name");
  EXPECT_ERR(jobq_pipeline_add_stage(p, "a b", noop_stage, NULL, 0), JOBQ_EINVAL, "stage name");
  EXPECT_ERR(jobq_pipeline_add_stage(p, "a", NULL, NULL, 0), JOBQ_EINVAL, "fn is NULL");
  EXPECT_ERR(jobq_pipeline_add_stage(p, "a", noop_stage, NULL, 7), JOBQ_EINVAL, "mode 7");
  assert_int_equal(jobq_pipeline_add_stage(p, "a", noop_stage, NULL, 0), 0);
  EXPECT_ERR(jobq_pipeline_add_stage(p, "a", noop_stage, NULL, 0), JOBQ_EEXIST, "already has a stage 'a'");
  EXPECT_ERR(jobq_pipeline_set_progress(p, "zz", 0, 10, NULL), JOBQ_ENOTFOUND, "no stage 'zz'");
  EXPECT_ERR(jobq_pipeline_set_progress(p, "a", 50, 10, NULL), JOBQ_EINVAL, "50..10");
  EXPECT_ERR(jobq_pipeline_set_progress(p, "a", -1, 10, NULL), JOBQ_EINVAL, "within 0..100");
  EXPECT_ERR(jobq_pipeline_set_progress(p, "a", 0, 101, NULL), JOBQ_EINVAL, "within 0..100");
  /* configurations */
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "script", "{\"provider\": "), JOBQ_ECONFIG, "not valid JSON");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "script", "[]"), JOBQ_ECONFIG, "not a JSON object");
  /* a string with \u0000 would be cut in C: refused */
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"template\\u0000x\"}"),
             JOBQ_ECONFIG, "not valid JSON");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "script", "{}"), JOBQ_ECONFIG, "\"provider\" is missing");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"gpt-magic\"}"), JOBQ_ECONFIG,
             "unknown provider 'gpt-magic'");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "video", "{\"provider\": \"x\"}"), JOBQ_ECONFIG,
             "unknown module 'video'");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "tts", "{\"provider\": \"espeak\", \"format\": \"ogg\"}"),
             JOBQ_ECONFIG, "\"format\"");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "tts", "{\"provider\": \"espeak\", \"voices\": {\"Alex\": \"xx-nonexistent\"}}"),
             JOBQ_ECONFIG, "xx-nonexistent");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "upload", "{\"provider\": \"local\"}"), JOBQ_ECONFIG, "\"dir\" is required");
  char cfg[512];
  snprintf(cfg, sizeof cfg, "{\"provider\": \"local\", \"dir\": \"%s/o\", \"key_prefix\": \"../x/\"}", tmpdir);
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "upload", cfg), JOBQ_ECONFIG, "escapes");
  EXPECT_ERR(jobq_pipeline_add_config(p, "{\"script\": {\"provider\": \"template\"}, \"video\": {}}"),
             JOBQ_ECONFIG, "unknown member 'video'");
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"template\", \"max_chars\": 0}"),
             JOBQ_ECONFIG, "\"max_chars\"");
  /* a bad member adds nothing */
  EXPECT_ERR(jobq_pipeline_add_config(p, "{\"script\": {\"provider\": \"template\"}, \"tts\": {\"provider\": \"nope\"}}"),
             JOBQ_ECONFIG, "unknown provider 'nope'");
  assert_int_equal(jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"template\"}"), 0);
  EXPECT_ERR(jobq_pipeline_add_builtin(p, "script", "{\"provider\": \"template\"}"), JOBQ_EEXIST,
             "already has a stage 'script'");
  /* registering */
  jobq_t *q = open_q("api.db");
  jobq_pipeline_t *empty = jobq_pipeline_new();
  EXPECT_ERR(jobq_register_pipeline(q, "k", empty, NULL), JOBQ_EINVAL, "no stages");
  EXPECT_ERR(jobq_register_pipeline(NULL, "k", p, NULL), JOBQ_EINVAL, "q is NULL");
  EXPECT_ERR(jobq_register_pipeline(q, "k", NULL, NULL), JOBQ_EINVAL, "p is NULL");
  EXPECT_ERR(jobq_register_pipeline(q, "bad kind!", p, NULL), JOBQ_EKIND, "jobq_register_pipeline");
  assert_int_equal(jobq_register_pipeline(q, "k", p, NULL), 0);
  EXPECT_ERR(jobq_register_pipeline(q, "k", p, NULL), JOBQ_EEXIST, "jobq_register_pipeline");
  assert_int_equal(jobq_start(q), 0);
  EXPECT_ERR(jobq_register_pipeline(q, "k2", p, NULL), JOBQ_ESTATE, "before jobq_start");
  EXPECT_ERR(jobq_prune(NULL, 0, NULL), JOBQ_EINVAL, "jobq_prune");
  EXPECT_ERR(jobq_prune(q, -1, NULL), JOBQ_EINVAL, "negative");
  assert_int_equal(jobq_close(q, 5000), 0);
  jobq_pipeline_free(empty);
  jobq_pipeline_free(p);
  jobq_pipeline_free(NULL);
  /* stage accessors */
  EXPECT_ERR(jobq_stage_succeed(NULL, "{}"), JOBQ_EINVAL, "jobq_stage_succeed");
  EXPECT_ERR(jobq_stage_fail(NULL, "x", 1), JOBQ_EINVAL, "jobq_stage_fail");
  EXPECT_ERR(jobq_stage_progress(NULL, 1, NULL), JOBQ_EINVAL, "jobq_stage_progress");
  assert_int_equal(jobq_stage_cancelled(NULL), 0);
  assert_non_null(strstr(jobq_last_error(), "jobq_stage_cancelled: st is NULL"));
  EXPECT_ERR(jobq_stage_on_cancel(NULL, NULL, NULL), JOBQ_EINVAL, "jobq_stage_on_cancel");
  EXPECT_ERR(jobq_stage_attempt(NULL), JOBQ_EINVAL, "jobq_stage_attempt");
  EXPECT_ERR(jobq_stage_index(NULL), JOBQ_EINVAL, "jobq_stage_index");
  assert_null(jobq_stage_input(NULL));
  assert_null(jobq_stage_payload(NULL));
  assert_null(jobq_stage_name(NULL));
  assert_null(jobq_stage_job_id(NULL));
  assert_null(jobq_stage_workdir(NULL));
  assert_null(jobq_stage_loop(NULL));
  EXPECT_ERR(jobq_options_set_workdir(NULL, "x"), JOBQ_EINVAL, "jobq_options_set_workdir");
  jobq_options_t *o = jobq_options_new();
  EXPECT_ERR(jobq_options_set_workdir(o, ""), JOBQ_EINVAL, "jobq_options_set_workdir");
  EXPECT_ERR(jobq_options_set_workdir(o, NULL), JOBQ_EINVAL, "jobq_options_set_workdir");
  jobq_options_free(o);
}

/* Stage outputs must be JSON; a stage finishes once. */
static void twice_stage(jobq_stage_t *st, void *ud) {
  atomic_int *bad = ud;
  if (jobq_stage_succeed(st, "{not json") != JOBQ_EJSON) atomic_fetch_add(bad, 1);
  if (jobq_stage_fail(st, "x", 2) != JOBQ_EINVAL) atomic_fetch_add(bad, 1);
  if (jobq_stage_progress(st, 101, NULL) != JOBQ_EINVAL) atomic_fetch_add(bad, 1);
  if (jobq_stage_on_cancel(st, NULL, NULL) != JOBQ_ESTATE) atomic_fetch_add(bad, 1); /* blocking */
  if (jobq_stage_succeed(st, "{\"ok\": true}") != 0) atomic_fetch_add(bad, 1);
  if (jobq_stage_succeed(st, "{}") != JOBQ_ESTATE) atomic_fetch_add(bad, 1);
}

static void test_stage_finishes_once(void **state) {
  (void)state;
  atomic_int bad = 0;
  jobq_t *q = open_q("once.db");
  jobq_pipeline_t *p = jobq_pipeline_new();
  assert_int_equal(jobq_pipeline_add_stage(p, "t", twice_stage, &bad, JOBQ_STAGE_BLOCKING), 0);
  assert_int_equal(jobq_register_pipeline(q, "pipe", p, NULL), 0);
  jobq_pipeline_free(p);
  assert_int_equal(jobq_start(q), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "pipe", "{}", NULL, id), 0);
  jobq_job_t *j = wait_done(q, id);
  assert_int_equal(jobq_job_state(j), JOBQ_SUCCEEDED);
  assert_string_equal(jobq_job_result(j), "{\"ok\": true}");
  jobq_job_free(j);
  assert_int_equal(atomic_load(&bad), 0);
  assert_int_equal(jobq_close(q, 5000), 0);
}

static int use_memory(void **state) {
  (void)state;
  backend = "memory";
  return 0;
}

static int use_sqlite(void **state) {
  (void)state;
  backend = "sqlite";
  return 0;
}

#define BOTH(t) cmocka_unit_test_setup(t, use_memory), cmocka_unit_test_setup(t, use_sqlite)

/* The worker process of test_crash_resumes_at_stage. */
static int crash_child(const char *dir, int fd) {
  snprintf(tmpdir, sizeof tmpdir, "%s", dir);
  crash_pipe[1] = fd;
  counters c = {0};
  jobq_t *q = open_lease_q("crash.db", 600);
  jobq_pipeline_t *p = jobq_pipeline_new();
  jobq_pipeline_add_stage(p, "one", blocking_stage, &c, JOBQ_STAGE_BLOCKING);
  jobq_pipeline_add_stage(p, "two", hang_stage, NULL, JOBQ_STAGE_BLOCKING);
  jobq_pipeline_add_stage(p, "three", blocking_stage, &c, JOBQ_STAGE_BLOCKING);
  if (jobq_register_pipeline(q, "pipe", p, NULL) || jobq_start(q)) return 2;
  for (;;) pause();
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--crash-child") == 0) return crash_child(argv[2], atoi(argv[3]));
  const struct CMUnitTest tests[] = {
    BOTH(test_stages_in_order),
    BOTH(test_retry_resumes_at_failed_stage),
    cmocka_unit_test_setup(test_checkpoint_survives_reopen, use_sqlite),
    cmocka_unit_test(test_v1_backend_without_checkpoints),
    cmocka_unit_test_setup(test_crash_resumes_at_stage, use_sqlite),
    BOTH(test_cancel_mid_stage),
    BOTH(test_fail_for_good),
    BOTH(test_stage_finishes_once),
    cmocka_unit_test_setup(test_offline_wav, use_sqlite),
    cmocka_unit_test_setup(test_offline_mp3, use_memory),
    cmocka_unit_test_setup(test_bad_job_input, use_sqlite),
    cmocka_unit_test_setup(test_api_bad_input, use_memory),
    cmocka_unit_test_setup(test_stage_text_must_be_utf8, use_memory),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
