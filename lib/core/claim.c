/* Claiming: the claim loop of workers and the feeder, the hand-off of a
 * batch's extra jobs to idle workers, jobq_claim.
 *
 * A claim reserves capacity of concurrency-limited kinds under the core lock,
 * then asks storage without the lock (storage may block). */
#include "core/attempt.h"
#include "core/stats.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define SPIN_NS 50000u
/* Up to this many jobs per claim of a fast kind. Each claim is a storage
 * round trip and a commit: on PostgreSQL, 1,024 rather than 256 drained a
 * backlog 10 % faster (fewer claim and finish statements, each a WAL
 * flush); memory and SQLite were the same within noise. */
#define JOBQ_CLAIM_BATCH 1024
#define JOBQ_CLAIM_MANY_MAX 1024 /* jobq_claim_many.md */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t queue_clock(void *ud) { return jobq__now(ud); }

/* Gives back claimed jobs that cannot be run (no memory for their ctx):
 * the lease would otherwise hold them. They are the recs still holding an
 * id (the others moved into their ctx). mu held; released around storage,
 * like every storage call. */
static void give_back_unstarted(jobq_t *q, jobq_storage_job *recs, size_t got, int64_t now) {
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  for (size_t i = 0; i < got; i++) {
    if (recs[i].id[0] == '\0') continue;
    jobq_storage_finish f = {0};
    int st;
    f.id = recs[i].id;
    f.attempt = recs[i].attempts;
    f.outcome = JOBQ_OUTCOME_RELEASE;
    f.now = now;
    q->ops->finish(q->st, &f, 1, &st);
    jobq_storage_job_clear(&recs[i]);
  }
  uv_mutex_lock(&q->mu);
  jobq__storage_end(q);
}

/* Claims up to max due jobs of kinds (NULL: any kind) into out[], *n_out of
 * them. mu held on entry and exit (released around the storage call).
 * Concurrency-limited kinds reserve their share first, so a limit holds
 * exactly however many claims run at once. With kinds NULL storage cannot
 * count per kind, so max shrinks to the smallest free share of a limited
 * kind that is not full: no kind can then get more than its room. */
int jobq__claim_locked(jobq_t *q, const char *const *kinds, size_t nk, size_t max,
                       jobq_ctx_t **out, size_t *n_out) {
  const char *names_s[16];
  int lim_s[16];
  kind_reg *kr_s[16];
  const char **names = names_s;
  int *lim = lim_s;
  kind_reg **krs = kr_s;
  jobq_storage_job *recs = NULL;
  size_t n = 0, n_ex = 0, got = 0;
  int rc = 0;
  *n_out = 0;

  /* With kinds NULL every kind may come, except limited ones that are full. */
  size_t cap = kinds ? nk : (size_t)q->kinds.n;
  if (cap > 16) {
    names = malloc(cap * sizeof *names);
    lim = malloc(cap * sizeof *lim);
    krs = malloc(cap * sizeof *krs);
    if (!names || !lim || !krs) {
      rc = jobq__err(JOBQ_ENOMEM, "claim: out of memory");
      goto done;
    }
  }
  if (kinds) {
    for (size_t i = 0; i < nk; i++) {
      kind_reg *k = jobq__kind_find(q, kinds[i]);
      int l = -1;
      if (k && jobq__kind_limit(k) > 0) {
        l = jobq__kind_limit(k) - k->running - k->pending;
        if (l <= 0) continue;
        if ((size_t)l > max) l = (int)max;
        k->pending += l;
      }
      names[n] = kinds[i];
      lim[n] = l;
      krs[n++] = k;
    }
    if (n == 0) goto done; /* every kind is at its limit */
  } else {
    for (int i = 0; i < q->kinds.n; i++) {
      kind_reg *k = &q->kinds.v[i];
      if (jobq__kind_limit(k) <= 0) continue;
      int room = jobq__kind_limit(k) - k->running - k->pending;
      if (room <= 0) {
        names[n_ex++] = k->name; /* excluded */
      } else {
        if ((size_t)room < max) max = (size_t)room;
        krs[n++] = k;
      }
    }
    for (size_t i = 0; i < n; i++) {
      lim[i] = (int)max;
      krs[i]->pending += lim[i];
    }
  }

  recs = calloc(max, sizeof *recs);
  if (recs == NULL || jobq__map_reserve(&q->running.map, (size_t)q->claim.in_flight + max) ||
      jobq__heap_reserve(&q->running.tmo, (size_t)q->claim.in_flight + max)) {
    rc = jobq__err(JOBQ_ENOMEM, "claim: out of memory");
    goto unreserve;
  }
  jobq_storage_claim req = {0};
  req.kinds = kinds ? names : NULL;
  req.kind_limit = kinds ? lim : NULL;
  req.n_kinds = kinds ? n : 0;
  req.exclude = kinds ? NULL : names;
  req.n_exclude = kinds ? 0 : n_ex;
  req.max = max;
  req.now = jobq__now(q);
  req.lease_ms = q->o.lease_ms;
  req.clock = queue_clock;
  req.clock_ud = q;
  req.default_max_attempts = JOBQ_DEFAULT_MAX_ATTEMPTS;
  req.ma_kinds = q->kinds.ma_names;
  req.ma_values = q->kinds.ma_values;
  req.n_ma = (size_t)q->kinds.n_ma;
  int64_t next = INT64_MAX, rate_next = INT64_MAX;
  if (q->kinds.n_rates) {
    /* Only a backend with rate_window reads these (jobq_register checked). */
    req.rates = q->kinds.rates;
    req.n_rates = (size_t)q->kinds.n_rates;
    req.rate_next = &rate_next;
  }
  q->claim.in_flight++;
  jobq__storage_begin(q);
  uv_mutex_unlock(&q->mu);
  rc = q->ops->claim(q->st, &req, recs, &got);
  if (rc == 0 && got == 0)
    q->ops->next_run_at(q->st, req.kinds, req.n_kinds, req.now, &next);
  uv_mutex_lock(&q->mu);
  q->claim.in_flight--;
  jobq__storage_end(q);
  jobq__health_note(q, JOBQ_OP_CLAIM, rc);
  if (rc == 0 && rate_next != INT64_MAX) {
    /* A kind waits for room in its window: come back when there is some,
     * as for a delayed job (no polling meanwhile). */
    q->claim.rate_limited++;
    /* The store-wide count too (which kind waited, storage does not say). */
    jobq__stats_count(q, NULL, JOBQ_STAT_RATE_WAIT, 1);
    if (rate_next < next) next = rate_next;
    if (got > 0 && next < q->loop_s.wake_at) {
      q->loop_s.wake_at = next;
      jobq__kick_loop(q);
    }
  }

  if (rc < 0 || got == 0) {
    if (rc == 0 && next < q->loop_s.wake_at) {
      q->loop_s.wake_at = next;
      jobq__kick_loop(q);
    }
    goto unreserve;
  }
  size_t n_lost = 0;
  uint64_t t0_ns = uv_hrtime(); /* one clock read for the batch */
  for (size_t i = 0; i < got; i++) {
    jobq_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
      n_lost++; /* recs[i] stays: given back below */
      continue;
    }
    ctx->rec = recs[i];
    memset(&recs[i], 0, sizeof recs[i]);
    ctx->q = q;
    ctx->refs = 1;
    ctx->state = JOBQ_ATTEMPT_RUNNING;
    ctx->kr = jobq__kind_find(q, ctx->rec.kind);
    ctx->t0_ns = t0_ns;
    atomic_init(&ctx->cancelled, ctx->rec.cancel_requested ? 1 : 0);
    if (q->claim.cancel_hints.count && jobq__map_get(&q->claim.cancel_hints, ctx->rec.id))
      atomic_store(&ctx->cancelled, 1);
    q->refs++;
    jobq__map_put(&q->running.map, ctx->rec.id, ctx); /* reserved above */
    jobq__slot_take(ctx);
    if (ctx->kr) {
      if (ctx->rec.max_attempts == 0) ctx->rec.max_attempts = ctx->kr->ko.max_attempts;
      if (ctx->kr->ko.timeout_ms > 0) {
        ctx->deadline = req.now + ctx->kr->ko.timeout_ms;
        jobq__heap_push(&q->running.tmo, ctx); /* reserved above */
        ctx->in_tmo = 1;
        if (ctx->deadline < q->loop_s.timer_at) jobq__kick_loop(q);
      }
    }
    if (ctx->rec.max_attempts == 0) ctx->rec.max_attempts = JOBQ_DEFAULT_MAX_ATTEMPTS;
    jobq__stats_count(q, ctx->rec.kind, JOBQ_STAT_STARTED, 1);
    jobq__emit(q, JOBQ_EVENT_STARTED, ctx->rec.id, ctx->rec.kind, JOBQ_RUNNING, 0, NULL,
               ctx->rec.attempts, NULL, NULL);
    jobq__notify_waiters(q, ctx->rec.id);
    out[(*n_out)++] = ctx;
  }
  if (n_lost) give_back_unstarted(q, recs, got, req.now);
  rc = *n_out ? 0 : jobq__err(JOBQ_ENOMEM, "claim: out of memory");

unreserve:
  for (size_t i = 0; i < n; i++)
    if (krs[i] && lim[i] > 0) krs[i]->pending -= lim[i];
  if (q->claim.in_flight == 0 && q->claim.cancel_hints.count) jobq__cancel_hints_clear(q);
done:
  free(recs);
  if (names != names_s) free(names);
  if (lim != lim_s) free(lim);
  if (krs != kr_s) free(krs);
  return rc;
}

static void run_handler(jobq_t *q, jobq_ctx_t *ctx) {
  ctx->refs++;
  ctx->in_handler = 1;
  q->claim.handlers_active++;
  /* Timed from here, not from the claim: a job may wait in a batch. The
   * time only feeds the kind's average (batch_size), so 1 call in 16 is
   * timed: two clock reads were a tenth of a no-op job's worker time. */
  ctx->t0_ns = (q->claim.timed++ & 15) == 0 ? uv_hrtime() : 0;
  uv_mutex_unlock(&q->mu);
  ctx->kr->fn(ctx, ctx->kr->ud);
  uv_mutex_lock(&q->mu);
  q->claim.handlers_active--;
  ctx->in_handler = 0;
  /* A timed-out attempt's slot is free once its handler returned (and, if
   * it returned without finishing, once its succeed/fail came). */
  jobq__slot_check(q, ctx);
  jobq__ctx_put(ctx);
}

/* How many jobs one claim should take. Every claim is a storage round trip
 * (with SQLite, a commit), so for handlers that take well under a
 * millisecond a worker takes several and hands the rest to idle workers;
 * for slower handlers it takes one per idle worker, so that no job waits
 * behind a slow one while another worker is free. */
static size_t batch_size(jobq_t *q, const char **kinds, int n, int to_loop) {
  if (to_loop) return JOBQ_CLAIM_BATCH;
  int fast = n > 0;
  for (int i = 0; i < n && fast; i++) {
    kind_reg *k = jobq__kind_find(q, kinds[i]);
    if (k == NULL || k->avg_ms <= 0 || k->avg_ms > 0.5) fast = 0;
  }
  size_t b = fast ? JOBQ_CLAIM_BATCH : (size_t)q->claim.idle + 1;
  return b > JOBQ_CLAIM_BATCH ? JOBQ_CLAIM_BATCH : b;
}

static int handoff_push(jobq_t *q, jobq_ctx_t *ctx) {
  if (q->claim.handoff_head > 0 && q->claim.handoff_head == q->claim.n_handoff)
    q->claim.handoff_head = q->claim.n_handoff = 0;
  if (q->claim.n_handoff == q->claim.cap_handoff) {
    size_t nc = q->claim.cap_handoff ? q->claim.cap_handoff * 2 : 64;
    jobq_ctx_t **nh = realloc(q->claim.handoff, nc * sizeof *nh);
    if (nh == NULL) return -1;
    q->claim.handoff = nh;
    q->claim.cap_handoff = nc;
  }
  q->claim.handoff[q->claim.n_handoff++] = ctx;
  return 0;
}

void jobq__release_handoff(jobq_t *q) {
  while (q->claim.handoff_head < q->claim.n_handoff) {
    jobq_ctx_t *ctx = q->claim.handoff[q->claim.handoff_head++];
    jobq__attempt_give_back(q, ctx);
    /* The give-back released mu around storage: the list may have
     * changed, but only this function and workers (stopped) take from it. */
  }
  q->claim.handoff_head = q->claim.n_handoff = 0;
}

/* After a failed claim, a claimer waits this long before the next, doubling
 * per failure in a row up to the maximum: a damaged file or a full disk
 * answers at once, and a quick loop of retries would only burn a core.
 * A submit (storage answering again) wakes it early. */
#define RETRY_MIN_NS (100 * 1000000ull)
#define RETRY_MAX_NS (2000 * 1000000ull)

static void claim_loop(jobq_t *q, const char **kinds, int n, int to_loop) {
  jobq_ctx_t *got_s[JOBQ_CLAIM_BATCH];
  uint64_t retry_ns = RETRY_MIN_NS;
  uv_mutex_lock(&q->mu);
  while (!q->stopping) {
    if (!to_loop && q->claim.handoff_head < q->claim.n_handoff) {
      run_handler(q, q->claim.handoff[q->claim.handoff_head++]);
      continue;
    }
    uint64_t gen = q->claim.work_gen;
    size_t got = 0;
    size_t want = batch_size(q, kinds, n, to_loop);
    int rc = jobq__claim_locked(q, kinds, (size_t)n, want, got_s, &got);
    if (got > 0 && want == JOBQ_CLAIM_BATCH && !to_loop) /* short jobs flow: see webhook.c */
      atomic_store_explicit(&q->claim.backlog_at, uv_hrtime(), memory_order_relaxed);
    if (got > 0) {
      if (!to_loop) {
        for (size_t i = 1; i < got; i++)
          if (handoff_push(q, got_s[i]) != 0) jobq__attempt_give_back(q, got_s[i]);
        if (got > 1) jobq__wake_claimers(q); /* for the hand-off */
        run_handler(q, got_s[0]);
        continue;
      }
      for (size_t i = 0; i < got; i++) {
        jobq_ctx_t **ni = q->claim.inbox;
        if (q->claim.n_inbox == q->claim.cap_inbox) {
          size_t nc = q->claim.cap_inbox ? q->claim.cap_inbox * 2 : 64;
          ni = realloc(q->claim.inbox, nc * sizeof *ni);
          if (ni) {
            q->claim.inbox = ni;
            q->claim.cap_inbox = nc;
          }
        }
        if (ni == NULL) {
          /* out of memory: give the job back rather than lose it */
          jobq__attempt_give_back(q, got_s[i]);
          continue;
        }
        q->claim.inbox[q->claim.n_inbox++] = got_s[i];
      }
      jobq__kick_loop(q);
      continue;
    }
    if (q->stopping) break;
    if (rc < 0) {
      /* Storage trouble (noted for jobq_health and the log by the claim):
       * retry later, without spinning. */
      q->claim.idle++;
      uv_cond_timedwait(&q->claim.work_cv, &q->mu, retry_ns);
      q->claim.idle--;
      retry_ns = retry_ns * 2 > RETRY_MAX_NS ? RETRY_MAX_NS : retry_ns * 2;
      continue;
    }
    retry_ns = RETRY_MIN_NS;
    if (gen != q->claim.work_gen) continue;
    /* Work often comes back within microseconds (a busy submitter): spin
     * briefly before sleeping, which would cost the submitter a wake-up
     * system call per job. After SPIN_NS an idle worker sleeps. While it
     * spins it yields its core to any thread that waits for one: with more
     * threads than cores (two workers and a submitter on two), a worker
     * spinning through its slice took the submitter's time, and the faster
     * the workers, the slower the queue (e2e_single_2w: 0.3-0.5 million
     * jobs/s spinning, 0.7-0.9 yielding). */
    uv_mutex_unlock(&q->mu);
    uint64_t t0 = uv_hrtime();
    while (q->claim.work_gen == gen && !q->stopping && uv_hrtime() - t0 < SPIN_NS) {
      cpu_relax();
      sched_yield();
    }
    uv_mutex_lock(&q->mu);
    if (gen != q->claim.work_gen) continue;
    q->claim.idle++;
    if (gen == q->claim.work_gen && !q->stopping) uv_cond_wait(&q->claim.work_cv, &q->mu);
    q->claim.idle--;
  }
  uv_mutex_unlock(&q->mu);
}

void jobq__worker_main(void *arg) {
  jobq_t *q = arg;
  claim_loop(q, q->kinds.worker, q->kinds.n_worker, 0);
}

void jobq__feeder_main(void *arg) {
  jobq_t *q = arg;
  claim_loop(q, q->kinds.loop, q->kinds.n_loop, 1);
}

void jobq__run_loop_inbox(jobq_t *q) {
  uv_mutex_lock(&q->mu);
  while (q->claim.n_inbox > 0) {
    jobq_ctx_t **batch = q->claim.inbox;
    size_t n = q->claim.n_inbox;
    q->claim.inbox = NULL;
    q->claim.n_inbox = q->claim.cap_inbox = 0;
    for (size_t i = 0; i < n; i++) {
      jobq_ctx_t *ctx = batch[i];
      if (ctx->state != JOBQ_ATTEMPT_RUNNING) {
        /* Released or timed out before its handler ran: nobody will call
         * succeed/fail on it, so drop the user's reference here. */
        ctx->user_done = 1;
        jobq__slot_check(q, ctx);
        jobq__ctx_put(ctx);
        continue;
      }
      run_handler(q, ctx);
    }
    free(batch);
  }
  uv_mutex_unlock(&q->mu);
}

/* ---- jobq_claim, jobq_claim_many ---- */

/* Checks kinds (NULL-terminated, 1..1024 well-formed names, or NULL) for fn
 * and counts them into *nk. */
static int kinds_check(const char *fn, const char *const *kinds, size_t *nk) {
  size_t n = 0;
  if (kinds) {
    for (; kinds[n]; n++) {
      if (n == 1024) return jobq__err(JOBQ_EINVAL, "%s: more than 1024 kinds", fn);
      int rc = jobq__kind_name_check(fn, kinds[n]);
      if (rc) return rc;
    }
    if (n == 0) return jobq__err(JOBQ_EINVAL, "%s: kinds is empty (use NULL for any)", fn);
  }
  *nk = n;
  return 0;
}

/* The wait both claims share: one storage claim of up to max jobs per
 * round, until at least one came, the timeout passed or close began. The
 * batch is the workers' own claim (jobq__claim_locked), so fairness between
 * kinds, concurrency and rate limits, batch caps and leases are theirs. */
static int claim_wait(jobq_t *q, const char *fn, const char *const *kinds, size_t nk, size_t max,
                      int timeout_ms, jobq_ctx_t **out, size_t *n_out) {
  if (timeout_ms != 0 && jobq__on_loop_thread(q))
    return jobq__err(JOBQ_EDEADLK, "%s: a blocking claim on the loop thread", fn);
  uv_mutex_lock(&q->mu);
  if (q->stopping) {
    uv_mutex_unlock(&q->mu);
    return jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
  }
  q->refs++;
  uint64_t deadline = uv_hrtime() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  int rc;
  for (;;) {
    if (q->stopping) {
      rc = jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
      break;
    }
    uint64_t gen = q->claim.work_gen;
    size_t got = 0;
    rc = jobq__claim_locked(q, kinds, nk, max, out, &got);
    if (rc == 0 && got > 0) {
      *n_out = got;
      break;
    }
    if (rc < 0) break;
    if (q->stopping) {
      rc = jobq__err(JOBQ_ECLOSED, "%s: the queue is closing", fn);
      break;
    }
    if (gen != q->claim.work_gen) continue;
    uint64_t now = uv_hrtime();
    if (timeout_ms == 0 || (timeout_ms > 0 && now >= deadline)) {
      rc = jobq__err(JOBQ_ETIMEDOUT, "%s: no job was due within %d ms", fn, timeout_ms);
      break;
    }
    q->claim.idle++;
    if (gen != q->claim.work_gen) {
      q->claim.idle--;
      continue;
    }
    if (timeout_ms < 0) uv_cond_wait(&q->claim.work_cv, &q->mu);
    else uv_cond_timedwait(&q->claim.work_cv, &q->mu, deadline - now);
    q->claim.idle--;
  }
  jobq__q_unref(q);
  return rc;
}

JOBQ_API int jobq_claim(jobq_t *q, const char *const *kinds, int timeout_ms, jobq_ctx_t **out) {
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "jobq_claim: q is NULL");
  if (jobq__inherited(q)) return jobq__inherited_err("jobq_claim");
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "jobq_claim: out is NULL");
  size_t nk = 0, got = 0;
  int rc = kinds_check("jobq_claim", kinds, &nk);
  if (rc) return rc;
  return claim_wait(q, "jobq_claim", kinds, nk, 1, timeout_ms, out, &got);
}

JOBQ_API int jobq_claim_many(jobq_t *q, const char *const *kinds, size_t max, int timeout_ms,
                             jobq_ctx_t **out, size_t *n_out) {
  const char *fn = "jobq_claim_many";
  if (q == NULL) return jobq__err(JOBQ_EINVAL, "%s: q is NULL", fn);
  if (jobq__inherited(q)) return jobq__inherited_err(fn);
  if (out == NULL) return jobq__err(JOBQ_EINVAL, "%s: out is NULL", fn);
  if (n_out == NULL) return jobq__err(JOBQ_EINVAL, "%s: n_out is NULL", fn);
  if (max == 0 || max > JOBQ_CLAIM_MANY_MAX)
    return jobq__err(JOBQ_EINVAL, "%s: max is %zu, not 1..%d", fn, max, JOBQ_CLAIM_MANY_MAX);
  size_t nk = 0;
  int rc = kinds_check(fn, kinds, &nk);
  if (rc) return rc;
  /* claim_wait writes out[] and *n_out only when it returns 0. */
  return claim_wait(q, fn, kinds, nk, max, timeout_ms, out, n_out);
}
