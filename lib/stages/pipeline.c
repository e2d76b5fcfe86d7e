/* The pipeline runtime: runs a job's stages in order on the queue's loop,
 * checkpoints each stage's output, resumes after the last checkpoint.
 *
 * A pipeline kind is an on-loop handler. For each attempt it reads the job's
 * checkpoint, then runs stage after stage: on-loop stages are called on the
 * loop, blocking ones on libuv's thread pool. Storage calls (checkpoint read
 * and write) also go to the pool, since they may wait for a commit and the
 * loop must not. A stage finishes from any thread; its outcome is queued and
 * an async handle makes the loop process it, so that one stage never starts
 * inside another's call stack. */
#include "stages/pipeline_int.h"
#include "util/mem.h"
#include "core/ext.h"
#include "net/http.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CANCEL_POLL_MS 50

struct pl_reg {
  jobq_t *q;
  pl_stage *stages;
  int n;
  /* loop side, created by the first run (handles must be made on the loop) */
  int handles_up;
  uv_async_t async;
  uv_timer_t poll; /* looks for cancelled runs while any runs */
  int poll_on;
  struct jobq__http *http;
  int closing, close_pending;
  pl_run *runs; /* under the loop thread */
  uv_mutex_t mu;
  jobq_stage_t *done_head; /* finished stages, under mu */
};

enum { R_LOAD, R_STAGE, R_SAVE };

struct pl_run {
  pl_reg *reg;
  pl_run *prev, *next;
  jobq_ctx_t *ctx;
  int phase;
  int index;           /* the stage running, or being saved */
  char *input;         /* the next stage's input (owned) */
  jobq_stage_t *st;    /* the stage under way */
  int in_pool;         /* a work request of this run is queued or running */
  uv_work_t work;
  /* results of pool work */
  int work_rc;
  int ck_stage;
  char *ck_output;
  char err[400];
  char *workdir;
  uv_mutex_t wd_mu;
};

/* ---- registration ----------------------------------------------------------- */

static void reg_free(void *ud) {
  pl_reg *r = ud;
  jobq__pipeline_stages_free(r->stages, r->n);
  uv_mutex_destroy(&r->mu);
  free(r);
}

static void reg_close_on_loop(void *ud, jobq_t *q);
static void on_job(jobq_ctx_t *ctx, void *ud);

JOBQ_API int jobq_register_pipeline(jobq_t *q, const char *kind, const jobq_pipeline_t *p,
                                    const jobq_kind_opts_t *ko) {
  static const char F[] = "jobq_register_pipeline";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", F);
  if (p == NULL) return jobq__err(JOBQ_EINVAL, "%s: p is NULL", F);
  if (p->n == 0) return jobq__err(JOBQ_EINVAL, "%s: the pipeline has no stages", F);
  pl_reg *r = calloc(1, sizeof *r);
  if (r == NULL || uv_mutex_init(&r->mu) != 0) {
    free(r);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", F);
  }
  r->q = q;
  if (jobq__pipeline_stages_copy(p, &r->stages) != 0) {
    uv_mutex_destroy(&r->mu);
    free(r);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", F);
  }
  r->n = p->n;
  /* Attached first: once the kind is registered, r must live as long as
   * the queue, and the queue frees it (with a kind or without). */
  jobq__ext e = {reg_close_on_loop, reg_free, r};
  int rc = jobq__ext_add(q, &e);
  if (rc) {
    reg_free(r);
    return rc == JOBQ_ESTATE
               ? jobq__err(rc, "%s: '%.64s': register kinds before jobq_start", F, kind ? kind : "")
               : jobq__err(rc, "%s: out of memory", F);
  }
  return jobq__register_on_loop(q, F, kind, on_job, r, ko);
}

/* ---- running -------------------------------------------------------------------- */

static void process_done(pl_reg *r);
static void run_stage(pl_run *run);

static void on_async(uv_async_t *a) { process_done(a->data); }

static void on_poll(uv_timer_t *t) {
  pl_reg *r = t->data;
  for (pl_run *run = r->runs; run; run = run->next) {
    jobq_stage_t *st = run->st;
    if (st && st->cancel_fn && !st->cancel_called && !atomic_load(&st->finished) &&
        jobq_ctx_cancelled(run->ctx)) {
      st->cancel_called = 1;
      st->cancel_fn(st, st->cancel_ud);
    }
  }
}

static int handles_up(pl_reg *r) {
  if (r->handles_up) return 0;
  uv_loop_t *loop = jobq__loop(r->q);
  if (uv_async_init(loop, &r->async, on_async) != 0) return JOBQ_ENOMEM;
  uv_timer_init(loop, &r->poll);
  r->async.data = r;
  r->poll.data = r;
  r->handles_up = 1;
  return 0;
}

static void poll_update(pl_reg *r) {
  if (r->runs && !r->poll_on) {
    uv_timer_start(&r->poll, on_poll, CANCEL_POLL_MS, CANCEL_POLL_MS);
    r->poll_on = 1;
  } else if (!r->runs && r->poll_on) {
    uv_timer_stop(&r->poll);
    r->poll_on = 0;
  }
}

static void maybe_closed(pl_reg *r);

static void run_free(pl_run *run) {
  pl_reg *r = run->reg;
  if (run->prev) run->prev->next = run->next;
  else r->runs = run->next;
  if (run->next) run->next->prev = run->prev;
  free(run->input);
  free(run->ck_output);
  free(run->workdir);
  uv_mutex_destroy(&run->wd_mu);
  free(run);
  poll_update(r);
  if (r->closing) maybe_closed(r);
}

/* Ends the attempt by pushing the job back by delay_ms, not counted, and
 * frees the run. A store that cannot defer (JOBQ_ENOTSUP) gets the
 * retryable failure the stage would otherwise have been. */
static void run_defer(pl_run *run, const char *msg, int64_t delay_ms) {
  char *m = jobq__strdup(msg);
  if (m) jobq__utf8_fix(m);
  const char *text = m ? m : "pipeline: deferred";
  if (jobq__ctx_retry_after(run->ctx, delay_ms, 0, text) == JOBQ_ENOTSUP)
    jobq_ctx_fail(run->ctx, text, 1);
  free(m);
  run_free(run);
}

/* Ends the attempt with a failure and frees the run. */
static void run_fail(pl_run *run, const char *msg, int retryable) {
  /* Composed here from parts cut to fit (a stage's message, a sentence):
   * made valid UTF-8, which jobq_ctx_fail requires. */
  char *m = jobq__strdup(msg);
  if (m) jobq__utf8_fix(m);
  jobq_ctx_fail(run->ctx, m ? m : "pipeline: out of memory", retryable); /* JOBQ_ESTATE if the attempt already ended */
  free(m);
  run_free(run);
}

static void after_load(uv_work_t *w, int status);
static void work_load(uv_work_t *w) {
  pl_run *run = w->data;
  run->work_rc = jobq__checkpoint_get(jobq__ctx_queue(run->ctx), jobq_ctx_id(run->ctx),
                                      &run->ck_stage, &run->ck_output);
  if (run->work_rc) snprintf(run->err, sizeof run->err, "%s", jobq_last_error());
}

static void on_job(jobq_ctx_t *ctx, void *ud) {
  pl_reg *r = ud;
  if (r->closing || handles_up(r) != 0) {
    jobq_ctx_fail(ctx, "pipeline: cannot start (the queue is closing or out of memory)", 1);
    return;
  }
  pl_run *run = calloc(1, sizeof *run);
  if (run == NULL || uv_mutex_init(&run->wd_mu) != 0) {
    free(run);
    jobq_ctx_fail(ctx, "pipeline: out of memory", 1);
    return;
  }
  run->reg = r;
  run->ctx = ctx;
  run->phase = R_LOAD;
  run->next = r->runs;
  if (r->runs) r->runs->prev = run;
  r->runs = run;
  poll_update(r);
  run->work.data = run;
  run->in_pool = 1;
  jobq_ctx_progress(ctx, 5, "Starting...");
  if (uv_queue_work(jobq__loop(r->q), &run->work, work_load, after_load) != 0) {
    run->in_pool = 0;
    run_fail(run, "pipeline: cannot queue work on the loop's thread pool", 1);
  }
}

static void after_load(uv_work_t *w, int status) {
  pl_run *run = w->data;
  pl_reg *r = run->reg;
  run->in_pool = 0;
  if (status != 0 || run->work_rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "pipeline: cannot read the checkpoint: %s",
             status ? "cancelled" : run->err);
    run_fail(run, msg, 1);
    return;
  }
  if (run->ck_stage >= 0) {
    run->index = run->ck_stage + 1;
    run->input = run->ck_output;
    run->ck_output = NULL;
    if (run->index >= r->n) {
      /* Every stage was done (a crash came between the last checkpoint and
       * the end): the output stands. */
      jobq_ctx_succeed(run->ctx, run->input);
      run_free(run);
      return;
    }
  } else {
    run->index = 0;
    run->input = jobq__strdup(jobq_ctx_payload(run->ctx));
    if (run->input == NULL) {
      run_fail(run, "pipeline: out of memory", 1);
      return;
    }
  }
  run_stage(run);
}

static void work_stage(uv_work_t *w) {
  pl_run *run = w->data;
  jobq_stage_t *st = run->st;
  st->def->fn(st, st->def->ud);
}

static void after_stage(uv_work_t *w, int status) {
  pl_run *run = w->data;
  run->in_pool = 0;
  if (status != 0) {
    run->st = NULL;
    run_fail(run, "pipeline: the stage's work was cancelled", 1);
    return;
  }
  process_done(run->reg); /* its outcome may have waited for the pool */
}

static void run_stage(pl_run *run) {
  pl_reg *r = run->reg;
  if (jobq_ctx_cancelled(run->ctx) || r->closing) {
    run_fail(run, "cancelled", 0);
    return;
  }
  const pl_stage *def = &r->stages[run->index];
  jobq_stage_t *st = calloc(1, sizeof *st);
  if (st == NULL) {
    run_fail(run, "pipeline: out of memory", 1);
    return;
  }
  st->run = run;
  st->def = def;
  st->index = run->index;
  st->input = run->input;
  run->input = NULL;
  atomic_init(&st->finished, 0);
  run->st = st;
  run->phase = R_STAGE;
  jobq_ctx_progress(run->ctx, def->from, def->step);
  if (def->mode == JOBQ_STAGE_ON_LOOP) {
    def->fn(st, def->ud);
    return; /* its outcome comes through the async handle */
  }
  run->in_pool = 1;
  if (uv_queue_work(jobq__loop(r->q), &run->work, work_stage, after_stage) != 0) {
    run->in_pool = 0;
    run->st = NULL;
    free(st->input);
    free(st);
    run_fail(run, "pipeline: cannot queue work on the loop's thread pool", 1);
  }
}

static void stage_free(jobq_stage_t *st) {
  free(st->input);
  free(st->output);
  free(st->error);
  free(st);
}

static void work_save(uv_work_t *w) {
  pl_run *run = w->data;
  const pl_stage *def = &run->reg->stages[run->index];
  run->work_rc = jobq__checkpoint(run->ctx, run->index, run->input, def->to, NULL);
  if (run->work_rc) snprintf(run->err, sizeof run->err, "%s", jobq_last_error());
}

static void after_save(uv_work_t *w, int status) {
  pl_run *run = w->data;
  run->in_pool = 0;
  if (status == 0 && (run->work_rc == 0 || run->work_rc == JOBQ_ENOTSUP)) {
    run->index++;
    run_stage(run);
    return;
  }
  char msg[512];
  snprintf(msg, sizeof msg, "pipeline: cannot checkpoint stage '%s': %s",
           run->reg->stages[run->index].name, status ? "cancelled" : run->err);
  /* JOBQ_ESTATE: the attempt ended meanwhile (cancel, timeout, rescue). */
  run_fail(run, msg, run->work_rc != JOBQ_ESTATE);
}

/* A stage finished: go on with the next, or end the attempt. */
static void stage_done(pl_run *run, jobq_stage_t *st) {
  pl_reg *r = run->reg;
  run->st = NULL;
  if (st->failed) {
    char msg[4096];
    snprintf(msg, sizeof msg, "stage %s: %s", st->def->name, st->error ? st->error : "failed");
    int retryable = st->retryable, defer = st->defer;
    int64_t defer_ms = st->defer_ms;
    stage_free(st);
    if (defer) {
      size_t len = strlen(msg);
      snprintf(msg + len, sizeof msg - len, "; pushed back %lld ms, attempt not counted",
               (long long)defer_ms);
      run_defer(run, msg, defer_ms);
      return;
    }
    run_fail(run, msg, retryable);
    return;
  }
  char *out = st->output;
  st->output = NULL;
  stage_free(st);
  if (run->index == r->n - 1) {
    jobq_ctx_progress(run->ctx, 100, "Done");
    int rc = jobq_ctx_succeed(run->ctx, out); /* the last output is the job's result */
    free(out);
    if (rc == JOBQ_ETOOBIG || rc == JOBQ_EJSON || rc == JOBQ_ENOMEM) {
      /* A result the queue refuses would be refused again on retry. */
      char msg[600];
      snprintf(msg, sizeof msg, "stage %s: its output cannot be the job's result: %s",
               r->stages[run->index].name, jobq_last_error());
      run_fail(run, msg, rc == JOBQ_ENOMEM);
      return;
    }
    run_free(run); /* else done, or the attempt had ended (JOBQ_ESTATE) */
    return;
  }
  run->input = out;
  run->phase = R_SAVE;
  jobq_ctx_progress(run->ctx, r->stages[run->index].to, NULL);
  run->in_pool = 1;
  if (uv_queue_work(jobq__loop(r->q), &run->work, work_save, after_save) != 0) {
    run->in_pool = 0;
    run_fail(run, "pipeline: cannot queue work on the loop's thread pool", 1);
  }
}

static void process_done(pl_reg *r) {
  uv_mutex_lock(&r->mu);
  jobq_stage_t *list = r->done_head;
  r->done_head = NULL;
  uv_mutex_unlock(&r->mu);
  jobq_stage_t *keep = NULL;
  while (list) {
    jobq_stage_t *st = list;
    list = st->next_done;
    /* A blocking stage that finished before its function returned waits
     * for the pool to let go of the run (after_stage calls again). */
    if (st->run->in_pool) {
      st->next_done = keep;
      keep = st;
      continue;
    }
    stage_done(st->run, st);
  }
  if (keep) {
    uv_mutex_lock(&r->mu);
    jobq_stage_t **tail = &keep;
    while (*tail) tail = &(*tail)->next_done;
    *tail = r->done_head;
    r->done_head = keep;
    uv_mutex_unlock(&r->mu);
  }
}

static int finish(jobq_stage_t *st, const char *fn, int failed, const char *text, int retryable,
                  int64_t defer_ms) {
  int expect = 0;
  if (!atomic_compare_exchange_strong(&st->finished, &expect, 1))
    return jobq__err(JOBQ_ESTATE, "%s: the stage has already finished", fn);
  st->failed = failed;
  st->retryable = retryable;
  st->defer = failed && defer_ms >= 0;
  st->defer_ms = defer_ms;
  char *copy = jobq__strdup(text);
  if (failed) st->error = copy; /* NULL on out of memory: "failed" */
  else st->output = copy;
  if (!failed && copy == NULL) {
    st->failed = 1;
    st->retryable = 1;
  }
  pl_reg *r = st->run->reg;
  uv_mutex_lock(&r->mu);
  st->next_done = r->done_head;
  r->done_head = st;
  uv_mutex_unlock(&r->mu);
  uv_async_send(&r->async);
  return 0;
}

/* ---- inside a stage ---------------------------------------------------------------- */

#define CHECK_ST(fn, ret)                                                  \
  do {                                                                     \
    if (st == NULL) {                                                      \
      jobq__err(JOBQ_EINVAL, "%s: st is NULL", fn);                        \
      return ret;                                                          \
    }                                                                      \
  } while (0)

JOBQ_API const char *jobq_stage_input(jobq_stage_t *st) {
  CHECK_ST("jobq_stage_input", NULL);
  return st->input;
}
JOBQ_API const char *jobq_stage_payload(jobq_stage_t *st) {
  CHECK_ST("jobq_stage_payload", NULL);
  return jobq_ctx_payload(st->run->ctx);
}
JOBQ_API const char *jobq_stage_name(jobq_stage_t *st) {
  CHECK_ST("jobq_stage_name", NULL);
  return st->def->name;
}
JOBQ_API const char *jobq_stage_job_id(jobq_stage_t *st) {
  CHECK_ST("jobq_stage_job_id", NULL);
  return jobq_ctx_id(st->run->ctx);
}
JOBQ_API int jobq_stage_attempt(jobq_stage_t *st) {
  if (st == NULL) return jobq__err(JOBQ_EINVAL, "jobq_stage_attempt: st is NULL");
  return jobq_ctx_attempt(st->run->ctx);
}
JOBQ_API int jobq_stage_index(jobq_stage_t *st) {
  if (st == NULL) return jobq__err(JOBQ_EINVAL, "jobq_stage_index: st is NULL");
  return st->index;
}
JOBQ_API struct uv_loop_s *jobq_stage_loop(jobq_stage_t *st) {
  CHECK_ST("jobq_stage_loop", NULL);
  return jobq__loop(st->run->reg->q);
}

JOBQ_API const char *jobq_stage_workdir(jobq_stage_t *st) {
  CHECK_ST("jobq_stage_workdir", NULL);
  pl_run *run = st->run;
  uv_mutex_lock(&run->wd_mu);
  if (run->workdir == NULL) {
    const char *root = jobq__workdir(run->reg->q);
    const char *id = jobq_ctx_id(run->ctx);
    size_t n = strlen(root) + strlen(id) + 2;
    char *d = malloc(n);
    if (d == NULL) {
      jobq__err(JOBQ_ENOMEM, "jobq_stage_workdir: out of memory");
    } else {
      snprintf(d, n, "%s/%s", root, id);
      if (jobq__mkdirs(d, 1) != 0) {
        jobq__err_prefix(JOBQ_EIO, NULL, "jobq_stage_workdir: ");
        free(d);
        d = NULL;
      }
      run->workdir = d;
    }
  }
  const char *wd = run->workdir;
  uv_mutex_unlock(&run->wd_mu);
  return wd;
}

JOBQ_API int jobq_stage_progress(jobq_stage_t *st, int percent, const char *step) {
  if (st == NULL) return jobq__err(JOBQ_EINVAL, "jobq_stage_progress: st is NULL");
  if (percent < 0 || percent > 100)
    return jobq__err(JOBQ_EINVAL, "jobq_stage_progress: percent %d is outside 0..100", percent);
  if (atomic_load(&st->finished))
    return jobq__err(JOBQ_ESTATE, "jobq_stage_progress: the stage has finished");
  int p = st->def->from + (st->def->to - st->def->from) * percent / 100;
  int rc = jobq_ctx_progress(st->run->ctx, p, step);
  if (rc) jobq__err_prefix(rc, "jobq_ctx_progress", "jobq_stage_progress: ");
  return rc;
}

JOBQ_API int jobq_stage_cancelled(jobq_stage_t *st) {
  if (st == NULL) {
    jobq__err(JOBQ_EINVAL, "jobq_stage_cancelled: st is NULL");
    return 0; /* like jobq_ctx_cancelled(NULL): a flag, not a code */
  }
  return jobq_ctx_cancelled(st->run->ctx) || st->run->reg->closing;
}

JOBQ_API int jobq_stage_on_cancel(jobq_stage_t *st, jobq_stage_cancel_fn fn, void *ud) {
  if (st == NULL) return jobq__err(JOBQ_EINVAL, "jobq_stage_on_cancel: st is NULL");
  if (st->def->mode != JOBQ_STAGE_ON_LOOP)
    return jobq__err(JOBQ_ESTATE, "jobq_stage_on_cancel: only for on-loop stages");
  st->cancel_fn = fn;
  st->cancel_ud = ud;
  return 0;
}

JOBQ_API int jobq_stage_succeed(jobq_stage_t *st, const char *output_json) {
  static const char F[] = "jobq_stage_succeed";
  if (st == NULL) return jobq__err(JOBQ_EINVAL, "%s: st is NULL", F);
  if (output_json == NULL) return jobq__err(JOBQ_EINVAL, "%s: output_json is NULL", F);
  int rc = jobq__json_check(F, "output_json", output_json, strlen(output_json));
  if (rc) return rc;
  return finish(st, F, 0, output_json, 0, -1);
}

JOBQ_API int jobq_stage_fail(jobq_stage_t *st, const char *message, int retryable) {
  static const char F[] = "jobq_stage_fail";
  if (st == NULL) return jobq__err(JOBQ_EINVAL, "%s: st is NULL", F);
  if (retryable != 0 && retryable != 1)
    return jobq__err(JOBQ_EINVAL, "%s: retryable must be 0 or 1", F);
  int rc = jobq__utf8_check(F, "message", message);
  if (rc) return rc;
  return finish(st, F, 1, message ? message : "failed", retryable, -1);
}

int jobq__stage_defer(jobq_stage_t *st, int64_t delay_ms, const char *message) {
  static const char F[] = "jobq__stage_defer";
  if (delay_ms < 0 || delay_ms > INT64_C(86400000))
    return jobq__err(JOBQ_EINVAL, "%s: delay_ms %lld is outside 0..86400000", F, (long long)delay_ms);
  return finish(st, F, 1, message ? message : "deferred", 1, delay_ms);
}

/* ---- the loop's HTTP client ------------------------------------------------------ */

struct jobq__http *jobq__stage_http(jobq_stage_t *st) {
  pl_reg *r = st->run->reg;
  if (r->http == NULL && jobq__http_new(jobq__loop(r->q), &r->http) != 0) return NULL;
  return r->http;
}

/* ---- closing -------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  pl_reg *r = h->data;
  if (--r->close_pending == 0) jobq__ext_closed(r->q);
}

static void on_http_closed(void *ud) {
  pl_reg *r = ud;
  r->http = NULL;
  maybe_closed(r);
}

/* Once every run is gone and the HTTP client closed: close the handles. */
static void maybe_closed(pl_reg *r) {
  if (r->runs || r->http || r->close_pending) return;
  if (!r->handles_up) {
    r->close_pending = -1; /* done: nothing to close */
    jobq__ext_closed(r->q);
    return;
  }
  process_done(r);
  if (r->runs) return;
  r->close_pending = 2;
  uv_close((uv_handle_t *)&r->async, on_handle_closed);
  uv_close((uv_handle_t *)&r->poll, on_handle_closed);
}

static void reg_close_on_loop(void *ud, jobq_t *q) {
  pl_reg *r = ud;
  (void)q;
  r->closing = 1;
  for (pl_run *run = r->runs; run; run = run->next) {
    jobq_stage_t *st = run->st;
    if (st && st->cancel_fn && !st->cancel_called && !atomic_load(&st->finished)) {
      st->cancel_called = 1;
      st->cancel_fn(st, st->cancel_ud);
    }
  }
  if (r->http) jobq__http_close(r->http, on_http_closed, r);
  else maybe_closed(r);
}
