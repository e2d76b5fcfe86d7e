/* Claims and the ends of attempts on the PostgreSQL backend, each batch one
 * statement: a claim is an UPDATE of the rows a FOR UPDATE SKIP LOCKED
 * sub-select picked (claimers in other processes skip each other's rows
 * instead of waiting for them), a batch of finishes one UPDATE joined with
 * the arrays of its outcomes; heartbeats and rescue likewise. */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a claim sets; $1 now, $2 lease end, $3 max, $5/$6 the default max
 * attempts by kind ($7 for any other kind). A job stored with max_attempts
 * 0 takes its claimer's default. A statement that waited inside the server
 * (a lock of jobq_jobs, a slow disk) for more than half the lease (and at
 * least 200 ms) has the wait added to the lease: counted from $1 alone the
 * lease could have run out by the commit, and a rescue would then run the
 * job a second time while its handler runs (storage.h wants the time read
 * again when the claim applies; the server cannot read the queue's clock,
 * so it adds the one duration it measures, clock_timestamp() when the row
 * is written minus transaction_timestamp() when the statement's first
 * message came: statement_timestamp() would not do, the extended protocol
 * sets it again at Bind and Execute, after a lock wait of the Parse). A
 * shorter wait is not added, so a claim's lease is exactly $2 as storage.h
 * says, and what it loses is covered by heartbeats every lease/3. */
#define CLAIM_SET                                                                               \
  "UPDATE jobq_jobs j SET state = 1, attempts = j.attempts + 1, started_at = $1, "              \
  "finished_at = NULL, lease_until = $2::int8 + (SELECT CASE WHEN w > greatest(($2::int8 - "   \
  "$1::int8) / 2, 200) THEN w ELSE 0 END FROM (SELECT (extract(epoch FROM clock_timestamp() - " \
  "transaction_timestamp()) * 1000)::int8 AS w) x), progress = 0, max_attempts = CASE WHEN "    \
  "j.max_attempts = 0 THEN coalesce((SELECT m.v FROM unnest($5::text[], $6::int[]) AS m(k, v) " \
  "WHERE m.k = j.kind AND m.v > 0 LIMIT 1), $7) ELSE j.max_attempts END FROM c "               \
  "WHERE j.seq = c.cseq RETURNING " PG_JOB_COLS

/* The claim, and its "started" events for other processes' listeners
 * (TOK this store's token, CH the channel: PG_EV_INSERT). */
#define CLAIM_EV(EV, TOK, CH)                                                                  \
  ", u AS (" CLAIM_SET "), "                                                                   \
  EV("SELECT " TOK ", id, kind, 2, 1, 0, NULL, attempts, NULL, NULL, " PG_NOW_MS               \
     " FROM u WHERE true", TOK, CH)                                                            \
  "SELECT * FROM u WHERE (SELECT count(*) FROM evn) >= 0"

/* Listed kinds ($4, with limits $8): the best of each kind (each kind's
 * walk of jobq_jobs_claim stops at its limit), merged by priority then
 * age. Rows a kind locked beyond the merge's cut are only locked until the
 * commit. No claim can use jobq_jobs_run_at (its predicate is
 * "state + 0 = 0", pg.c's migration slot 6): whatever the statistics say,
 * a claim walks jobq_jobs_claim in its order and stops at its limit. */
#define CLAIM_KINDS_SQL(EV) \
    "WITH c(cseq) AS (SELECT s.seq FROM unnest($4::text[], $8::int[]) AS k(kind, lim), "       \
    "LATERAL (SELECT seq, priority FROM jobq_jobs WHERE state = 0 AND kind = k.kind AND "      \
    "run_at <= $1 ORDER BY priority DESC, seq LIMIT k.lim FOR UPDATE SKIP LOCKED) s "          \
    "ORDER BY s.priority DESC, s.seq LIMIT $3)" CLAIM_EV(EV, "$10::int8", "$9")
static const char *const claim_kinds_sql[2] = {CLAIM_KINDS_SQL(PG_EV_OFF),
                                               CLAIM_KINDS_SQL(PG_EV_ON)};

/* Any kind but those excluded ($4). */
#define CLAIM_ANY_SQL(EV) \
    "WITH c(cseq) AS (SELECT seq FROM jobq_jobs WHERE state = 0 AND run_at <= $1 AND "          \
    "NOT (kind = ANY($4::text[])) ORDER BY priority DESC, seq LIMIT $3 FOR UPDATE SKIP LOCKED)" \
    CLAIM_EV(EV, "$9::int8", "$8")
static const char *const claim_any_sql[2] = {CLAIM_ANY_SQL(PG_EV_OFF), CLAIM_ANY_SQL(PG_EV_ON)};

/* Any kind but those excluded ($4), where the rate-limited kinds ($8, with
 * the room their windows have, $9) take at most that many each. */
#define CLAIM_ANY_RATED_SQL(EV) \
    "WITH c(cseq) AS (SELECT x.seq FROM ("                                                     \
    "(SELECT s.seq, s.priority FROM unnest($8::text[], $9::int[]) AS k(kind, lim), "           \
    "LATERAL (SELECT seq, priority FROM jobq_jobs WHERE state = 0 AND kind = k.kind AND "      \
    "run_at <= $1 ORDER BY priority DESC, seq LIMIT k.lim FOR UPDATE SKIP LOCKED) s) "         \
    "UNION ALL (SELECT o.seq, o.priority FROM (SELECT seq, priority FROM jobq_jobs WHERE "     \
    "state = 0 AND run_at <= $1 AND NOT (kind = ANY($4::text[])) AND NOT (kind = "             \
    "ANY($8::text[])) ORDER BY priority DESC, seq LIMIT $3 FOR UPDATE SKIP LOCKED) o)) x "     \
    "ORDER BY x.priority DESC, x.seq LIMIT $3)" CLAIM_EV(EV, "$11::int8", "$10")
static const char *const claim_any_rated_sql[2] = {CLAIM_ANY_RATED_SQL(PG_EV_OFF),
                                                   CLAIM_ANY_RATED_SQL(PG_EV_ON)};

typedef struct ranked {
  jobq_storage_job j;
  int64_t seq;
} ranked;

static int ranked_cmp(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->j.priority != y->j.priority) return x->j.priority > y->j.priority ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int jobq__pg_claim(void *st, const jobq_storage_claim *req, jobq_storage_job *out, size_t *n_out) {
  pg_store *s = st;
  *n_out = 0;
  if (req->rate_next) *req->rate_next = INT64_MAX;
  if (req->max == 0) return 0;
  char *a4 = NULL, *a5 = NULL, *a6 = NULL, *a8 = NULL, *a10 = NULL;
  int64_t *lims = NULL, *mav = NULL, *rlims = NULL;
  pg_rates rs = {0};
  int rc = 0;
  if (req->kinds) {
    lims = calloc(req->n_kinds ? req->n_kinds : 1, sizeof *lims);
    if (lims == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    for (size_t i = 0; i < req->n_kinds; i++) {
      int64_t l = req->kind_limit && req->kind_limit[i] >= 0 ? req->kind_limit[i] : (int64_t)req->max;
      lims[i] = l > (int64_t)req->max ? (int64_t)req->max : l;
    }
    if ((rc = jobq__pg_arr_text(req->kinds, req->n_kinds, &a4))) goto out;
  } else if ((rc = jobq__pg_arr_text(req->exclude, req->n_exclude, &a4))) {
    goto out;
  }
  mav = calloc(req->n_ma ? req->n_ma : 1, sizeof *mav);
  if (mav == NULL) {
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    goto out;
  }
  for (size_t i = 0; i < req->n_ma; i++) mav[i] = req->ma_values[i];
  if ((rc = jobq__pg_arr_text(req->ma_kinds, req->n_ma, &a5)) ||
      (rc = jobq__pg_arr_i64(mav, req->n_ma, &a6)))
    goto out;
  /* A heartbeat adds a wait longer than half of this (below) */
  atomic_store_explicit(&s->lease_ms, req->lease_ms, memory_order_relaxed);
  PGconn *c = NULL;
  if ((rc = jobq__pg_acquire(s, &c))) goto out;
  /* The time is read when the statement goes out, not when the request was
   * made (a wait for a connection), so that the lease counts from the claim. */
  int64_t now = req->clock ? req->clock(req->clock_ud) : req->now;
  if (now < req->now) now = req->now;
  /* Held members of capped batches get their places first (their own
   * transaction: once queued they count against the cap). */
  if ((rc = jobq__pg_batch_fill(s, c, now))) {
    jobq__pg_release(s, c);
    goto out;
  }
  /* Read again: the fill may have waited (for a lock of jobq_jobs), and the
   * lease must count from the claim's own statement. */
  if (req->clock) {
    int64_t t = req->clock(req->clock_ud);
    if (t > now) now = t;
  }
  /* Rate limits: the claim, the window's count and the record of what it
   * took are one transaction, under a lock per rated kind. */
  if (req->n_rates && (rc = jobq__pg_rate_begin(s, c, req, now, &rs))) {
    jobq__pg_rollback(c);
    jobq__pg_release(s, c);
    goto out;
  }
  if (req->kinds) {
    for (size_t i = 0; i < req->n_kinds; i++) {
      int64_t room = jobq__pg_rate_room(&rs, req->kinds[i]);
      if (room >= 0 && room < lims[i]) lims[i] = room;
    }
    rc = jobq__pg_arr_i64(lims, req->n_kinds, &a8);
  } else if (rs.n) {
    if ((rlims = calloc(rs.n, sizeof *rlims)) == NULL)
      rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    for (size_t i = 0; rc == 0 && i < rs.n; i++)
      rlims[i] = rs.room[i] < (int64_t)req->max ? rs.room[i] : (int64_t)req->max;
    if (rc == 0) rc = jobq__pg_arr_i64(rlims, rs.n, &a10);
  }
  char b1[24], b2[24], b3[24], b7[24], tok[24];
  int dflt = req->default_max_attempts > 0 ? req->default_max_attempts : 3;
  /* $8 the limits of the listed kinds, or $8, $9 the rated kinds and their
   * room (claim_any_rated_sql), or neither; the channel and the token
   * follow */
  const char *p[11] = {jobq__pg_i64(b1, now), jobq__pg_i64(b2, now + req->lease_ms),
                       jobq__pg_i64(b3, (int64_t)req->max), a4, a5, a6, jobq__pg_i64(b7, dflt)};
  int np = 7;
  const char *const *sql = claim_any_sql;
  if (req->kinds) {
    p[np++] = a8;
    sql = claim_kinds_sql;
  } else if (rs.n) {
    p[np++] = rs.kinds;
    p[np++] = a10;
    sql = claim_any_rated_sql;
  }
  p[np++] = s->channel;
  p[np++] = jobq__pg_i64(tok, s->token);
  PGresult *r = NULL;
  const char *text = sql[jobq__pg_listened(s, c)];
  /* Outside a rate limit's transaction the claim is a prepared statement.
   * Preparing it (once per connection) is a transaction of its own that
   * takes the table's locks and may wait for them: it is done before the
   * time is read again, so that the lease counts from the claim's own
   * statement. */
  if (rc == 0 && !req->n_rates && req->clock && jobq__pg_prepare(s, c, text, np) == 1) {
    int64_t t = req->clock(req->clock_ud);
    if (t > now) {
      now = t;
      p[0] = jobq__pg_i64(b1, now);
      p[1] = jobq__pg_i64(b2, now + req->lease_ms);
    }
  }
  if (rc == 0) rc = jobq__pg_exec_prep(s, c, text, np, p, "cannot claim jobs", &r);
  if (rc == 0 && req->n_rates && (rc = jobq__pg_rate_end(s, c, req, now, &rs, r)) != 0) {
    PQclear(r);
    r = NULL;
  }
  if (rc && req->n_rates) jobq__pg_rollback(c);
  jobq__pg_release(s, c);
  if (rc) goto out;
  size_t n = (size_t)PQntuples(r);
  atomic_fetch_add_explicit(&s->n_claims, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(n ? &s->n_claimed : &s->n_empty, n ? n : 1, memory_order_relaxed);
  ranked *v = calloc(n ? n : 1, sizeof *v);
  if (v == NULL) {
    /* Claimed and committed: the jobs come back through rescue when their
     * lease ends. */
    PQclear(r);
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory (claimed jobs return at their "
                   "lease's end)");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (jobq__pg_row_to_job(r, (int)i, &v[i].j, &v[i].seq) != 0) {
      for (size_t k = 0; k < i; k++) jobq_storage_job_clear(&v[k].j);
      free(v);
      PQclear(r);
      rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory (claimed jobs return at their "
                     "lease's end)");
      goto out;
    }
  }
  PQclear(r);
  /* RETURNING has no order: best first, as the claim picked them */
  qsort(v, n, sizeof *v, ranked_cmp);
  for (size_t i = 0; i < n && i < req->max; i++) out[i] = v[i].j;
  *n_out = n < req->max ? n : req->max;
  free(v);
out:
  free(a4);
  free(a5);
  free(a6);
  free(a8);
  free(a10);
  free(lims);
  free(rlims);
  free(mav);
  jobq__pg_rates_free(&rs);
  return rc;
}

/* ---- finish ---- */

/* f.ns: the new state, -1 for a release, -2 for a deferral (the attempt not
 * counted, queued again at run_at with its reason). A job of a capped batch
 * that becomes queued again waits held (6) for a place. A cancel asked for meanwhile ends
 * the job cancelled whatever the outcome; a failed attempt (and a
 * cancelled one) is appended to attempt_log. A NOTIFY goes out when a job
 * became queued again (a retry due now, a release), with the commit. A
 * job's end adds its webhook deliveries in the same statement
 * (PG_OUTBOX_END_CTES). The rows are found by id (one probe of the unique
 * index per entry): "state + 0 = 1" keeps the planner off the partial index
 * of running jobs, whose bitmap scan it chose from its estimate of few
 * running rows, and which then read every entry of that index, dead ones
 * included (a bitmap scan never marks them dead), in every group: 18 index
 * entries per job finished in pg_bench.sh's e2e_procs_2p, growing with the
 * jobs run since the last vacuum and with the jobs running. */
/* Every entry's answer (both finish statements): its new state, or
 * whether a job has its id; N forces the statement's NOTIFY CTE. The lookup
 * runs only for an entry the UPDATE did not match (a stale attempt, an
 * unknown id): as an EXISTS the planner made it a hashed scan of the whole
 * table for every group, whatever its entries. */
#define FINISH_ANSWER(N) \
    "SELECT f.ord, u.state, k.known IS NOT NULL, " N ", u.bm, (SELECT count(*) FROM evn) " \
    "FROM unnest($1::text[]) WITH ORDINALITY AS f(id, ord) " \
    "LEFT JOIN u ON u.ord = f.ord " \
    "LEFT JOIN LATERAL (SELECT true AS known FROM jobq_jobs x WHERE u.ord IS NULL AND " \
    "x.id = f.id LIMIT 1) k ON true"
#define FINISH_SQL(EV) \
    "WITH u AS (UPDATE jobq_jobs j SET " \
    "state = CASE WHEN j.cancel_req THEN 4 WHEN f.ns <= 0 AND j.bcap > 0 THEN 6 " \
    "  WHEN f.ns <= 0 THEN 0 ELSE f.ns END, " \
    "attempts = CASE WHEN f.ns < 0 AND NOT j.cancel_req THEN j.attempts - 1 ELSE j.attempts END, " \
    "run_at = CASE WHEN f.ns = -1 THEN f.now WHEN j.cancel_req THEN j.run_at " \
    "  ELSE coalesce(f.run_at, j.run_at) END, " \
    "result = CASE WHEN j.cancel_req OR f.ns < 0 THEN j.result ELSE coalesce(f.res, j.result) END, " \
    "error = CASE WHEN j.cancel_req THEN CASE WHEN f.ns = -2 THEN 'cancelled' ELSE " \
    "  coalesce(f.err, 'cancelled') END WHEN f.ns = -1 THEN j.error " \
    "  ELSE coalesce(f.err, j.error) END, " \
    "progress = CASE WHEN f.ns < 0 THEN j.progress ELSE f.prog END, " \
    "step = CASE WHEN f.ns < 0 THEN j.step ELSE coalesce(f.step, j.step) END, " \
    "finished_at = CASE WHEN j.cancel_req THEN f.now WHEN f.ns < 0 THEN j.finished_at " \
    "  ELSE f.fin END, " \
    "lease_until = NULL, " \
    "attempt_log = CASE WHEN j.cancel_req OR (f.ns >= 0 AND f.err IS NOT NULL) THEN " \
    "  coalesce(j.attempt_log, '[]'::jsonb) || jsonb_build_array(jsonb_build_array(j.started_at, " \
    "  f.now, CASE WHEN j.cancel_req AND f.ns = -2 THEN 'cancelled' WHEN j.cancel_req THEN " \
    "  coalesce(f.err, 'cancelled') ELSE f.err END)) " \
    "  ELSE j.attempt_log END " \
    "FROM unnest($1::text[], $2::int[], $3::int[], $4::int8[], $5::text[], $6::text[], $7::int[], " \
    "  $8::text[], $9::int8[], $10::int8[]) WITH ORDINALITY " \
    "  AS f(id, att, ns, run_at, res, err, prog, step, fin, now, ord) " \
    PG_ORIGIN_FROM("$12::int8") \
    "WHERE j.id = f.id AND j.state + 0 = 1 AND j.attempts = f.att " \
    "RETURNING f.ord, j.state, j.run_at <= f.now AS due, j.batch IS NOT NULL AS bm, j.id, " \
    "j.webhooks, f.now AS ob_now, j.kind, j.progress, j.step, j.error, j.result, f.att), " \
    "n AS (SELECT pg_notify($11, '') FROM u WHERE u.state = 0 AND u.due LIMIT 1), " \
    PG_OUTBOX_END_CTES("u") ", " \
    /* the events: retrying (queued again, held ones included), succeeded, \
     * failed, cancelled */ \
    EV("SELECT $12::int8, id, kind, CASE WHEN state IN (0, 6) THEN 4 ELSE state + 3 END, " \
       "CASE WHEN state = 6 THEN 0 ELSE state END, progress, step, att, " \
       "CASE WHEN state = 2 THEN NULL ELSE error END, CASE WHEN state = 2 THEN result END, " \
       PG_NOW_MS " FROM u WHERE true", "$12::int8", "$11") \
    FINISH_ANSWER("(SELECT count(*) FROM n)")
static const char *const finish_sql[2] = {FINISH_SQL(PG_EV_OFF), FINISH_SQL(PG_EV_ON)};

/* The common group: every entry a success without a step. The same rows,
 * answer and side effects as FINISH_SQL gives such entries (a cancel asked
 * for meanwhile still ends the job cancelled, with its attempt logged), from
 * 4 arrays instead of 10 and without the branches of the other outcomes:
 * a third less of the server's time per finished job, which the finishes
 * of a drain are half of. No NOTIFY: no entry becomes queued again. */
#define FINISH_OK_SQL(EV) \
    "WITH u AS (UPDATE jobq_jobs j SET " \
    "state = CASE WHEN j.cancel_req THEN 4 ELSE 2 END, " \
    "result = CASE WHEN j.cancel_req THEN j.result ELSE f.res END, " \
    "error = CASE WHEN j.cancel_req THEN 'cancelled' ELSE j.error END, " \
    "progress = 100, finished_at = f.now, lease_until = NULL, " \
    "attempt_log = CASE WHEN j.cancel_req THEN coalesce(j.attempt_log, '[]'::jsonb) || " \
    "  jsonb_build_array(jsonb_build_array(j.started_at, f.now, 'cancelled')) " \
    "  ELSE j.attempt_log END " \
    "FROM unnest($1::text[], $2::int[], $3::text[], $4::int8[]) WITH ORDINALITY " \
    "  AS f(id, att, res, now, ord) " \
    PG_ORIGIN_FROM("$6::int8") \
    "WHERE j.id = f.id AND j.state + 0 = 1 AND j.attempts = f.att " \
    "RETURNING f.ord, j.state, j.batch IS NOT NULL AS bm, j.id, " \
    "j.webhooks, f.now AS ob_now, j.kind, j.progress, j.step, j.error, j.result, f.att), " \
    PG_OUTBOX_END_CTES("u") ", " \
    EV("SELECT $6::int8, id, kind, state + 3, state, progress, step, att, " \
       "CASE WHEN state = 2 THEN NULL ELSE error END, CASE WHEN state = 2 THEN result END, " \
       PG_NOW_MS " FROM u WHERE true", "$6::int8", "$5") \
    FINISH_ANSWER("0")
static const char *const finish_ok_sql[2] = {FINISH_OK_SQL(PG_EV_OFF), FINISH_OK_SQL(PG_EV_ON)};

int jobq__pg_finish(void *st, const jobq_storage_finish *f, size_t n, int *out_state) {
  pg_store *s = st;
  if (n == 0) return 0;
  const char **id = calloc(n, sizeof *id), **res = calloc(n, sizeof *res),
             **err = calloc(n, sizeof *err), **step = calloc(n, sizeof *step);
  int64_t *att = calloc(n, sizeof *att), *ns = calloc(n, sizeof *ns),
          *prog = calloc(n, sizeof *prog), *now = calloc(n, sizeof *now);
  char *a[10] = {0}, *ra_s = NULL, *fin_s = NULL;
  int rc = 0;
  if (!id || !res || !err || !step || !att || !ns || !prog || !now) {
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    goto out;
  }
  /* run_at and finished_at may be NULL: their arrays are built as text */
  char **ra_t = calloc(n, sizeof *ra_t), **fin_t = calloc(n, sizeof *fin_t);
  char *numbuf = calloc(n * 2, 24);
  if (!ra_t || !fin_t || !numbuf) {
    free(ra_t);
    free(fin_t);
    free(numbuf);
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    const jobq_storage_finish *x = &f[i];
    id[i] = x->id;
    att[i] = x->attempt;
    now[i] = x->now;
    step[i] = x->step;
    prog[i] = x->progress;
    const char *e = x->outcome == JOBQ_OUTCOME_SUCCEEDED || x->outcome == JOBQ_OUTCOME_RELEASE
                        ? NULL : x->error;
    if (x->outcome == JOBQ_OUTCOME_CANCELLED && e == NULL) e = "cancelled";
    if (e == NULL && x->outcome == JOBQ_OUTCOME_DEFER) e = "deferred";
    if (e == NULL && x->outcome != JOBQ_OUTCOME_SUCCEEDED && x->outcome != JOBQ_OUTCOME_RELEASE)
      e = "failed";
    err[i] = e;
    switch (x->outcome) {
      case JOBQ_OUTCOME_SUCCEEDED:
        ns[i] = JOBQ_SUCCEEDED;
        res[i] = x->result ? x->result : "null";
        prog[i] = 100;
        break;
      case JOBQ_OUTCOME_FAILED: ns[i] = JOBQ_FAILED; break;
      case JOBQ_OUTCOME_RETRY: ns[i] = JOBQ_QUEUED; break;
      case JOBQ_OUTCOME_RELEASE: ns[i] = -1; break;
      case JOBQ_OUTCOME_DEFER: ns[i] = -2; break;
      default: ns[i] = JOBQ_CANCELLED; break;
    }
    if (x->outcome == JOBQ_OUTCOME_RETRY || x->outcome == JOBQ_OUTCOME_DEFER) ra_t[i] = (char *)jobq__pg_i64(numbuf + i * 48, x->run_at);
    if (x->outcome != JOBQ_OUTCOME_RETRY && x->outcome != JOBQ_OUTCOME_RELEASE &&
        x->outcome != JOBQ_OUTCOME_DEFER)
      fin_t[i] = (char *)jobq__pg_i64(numbuf + i * 48 + 24, x->now);
  }
  rc = jobq__pg_arr_text((const char *const *)ra_t, n, &ra_s);
  if (rc == 0) rc = jobq__pg_arr_text((const char *const *)fin_t, n, &fin_s);
  free(ra_t);
  free(fin_t);
  free(numbuf);
  if (rc || (rc = jobq__pg_arr_text(id, n, &a[0])) || (rc = jobq__pg_arr_i64(att, n, &a[1])) ||
      (rc = jobq__pg_arr_i64(ns, n, &a[2])) || (rc = jobq__pg_arr_text(res, n, &a[4])) ||
      (rc = jobq__pg_arr_text(err, n, &a[5])) || (rc = jobq__pg_arr_i64(prog, n, &a[6])) ||
      (rc = jobq__pg_arr_text(step, n, &a[7])) || (rc = jobq__pg_arr_i64(now, n, &a[9])))
    goto out;
  a[3] = ra_s;
  a[8] = fin_s;
  ra_s = fin_s = NULL;
  PGconn *c = NULL;
  if ((rc = jobq__pg_acquire(s, &c))) goto out;
  const char *p[12];
  char tok[24];
  /* all successes without a step: FINISH_OK_SQL's 4 arrays */
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++)
    ok = f[i].outcome == JOBQ_OUTCOME_SUCCEEDED && f[i].step == NULL;
  const char *const *sql = finish_sql;
  int np = 12;
  if (ok) {
    sql = finish_ok_sql;
    np = 6;
    p[0] = a[0];
    p[1] = a[1];
    p[2] = a[4];
    p[3] = a[9];
    p[4] = s->channel;
    p[5] = jobq__pg_i64(tok, s->token);
  } else {
    for (int i = 0; i < 10; i++) p[i] = a[i];
    p[10] = s->channel;
    p[11] = jobq__pg_i64(tok, s->token);
  }
  PGresult *r = NULL;
  /* Ends of members of several batches lock their batch rows (the
   * trigger) in the order the rows are updated, so two groups ending
   * members of the same batches can deadlock; PostgreSQL then rolls one
   * back whole (40P01, JOBQ_EBUSY), and it is run again. */
  atomic_fetch_add_explicit(&s->n_finishes, 1, memory_order_relaxed);
  for (int t = 0; t < 4; t++)
    if ((rc = jobq__pg_exec_prep(s, c, sql[jobq__pg_listened(s, c)], np, p, "cannot finish jobs",
                                 &r)) != JOBQ_EBUSY)
      break;
  if (rc == 0) {
    size_t nb = 0; /* members of batches this ended: id[0..nb) */
    for (int k = 0; k < PQntuples(r); k++) {
      size_t i = (size_t)jobq__pg_int(r, k, 0) - 1;
      if (i >= n) continue;
      if (!PQgetisnull(r, k, 1)) out_state[i] = (int)jobq__pg_int(r, k, 1);
      else out_state[i] = PQgetvalue(r, k, 2)[0] == 't' ? JOBQ_ESTATE : JOBQ_ENOTFOUND;
      if (out_state[i] == PG_HELD) out_state[i] = JOBQ_QUEUED;
      if (out_state[i] >= JOBQ_SUCCEEDED && !PQgetisnull(r, k, 4) && PQgetvalue(r, k, 4)[0] == 't')
        id[nb++] = f[i].id;
    }
    PQclear(r);
    char *arr = NULL;
    jobq__pg_release(s, c);
    c = NULL;
    if (nb && jobq__pg_arr_text(id, nb, &arr) == 0) jobq__pg_batch_tell(s, arr);
    free(arr);
  }
  if (c) jobq__pg_release(s, c);
out:
  for (int i = 0; i < 10; i++) free(a[i]);
  free(ra_s);
  free(fin_s);
  free(id);
  free(res);
  free(err);
  free(step);
  free(att);
  free(ns);
  free(prog);
  free(now);
  return rc;
}

/* ---- heartbeat, rescue ---- */

/* A heartbeat's lease end is computed by the core before the call, and the
 * call may wait: for a pooled connection, for the statement's preparation,
 * for a lock of jobq_jobs or of the job's row inside the server (a cancel, a
 * rescue, a long transaction of another process). Stored as given, such a
 * lease could already have run out when the heartbeat commits, and another
 * process's rescue would then run the job a second time while its handler
 * runs: on PostgreSQL nothing but the lease protects a live process's jobs.
 * So, as a claim does, a heartbeat that waited for more than half the
 * lease (and at least 200 ms) has the wait added: the local part measured
 * here ($5), the server's part as clock_timestamp() when the row is written
 * minus transaction_timestamp() when the statement's first message came.
 * The rows are locked first (l, FOR UPDATE): an UPDATE that waits for a row
 * merely locked by another transaction goes on with the values it computed
 * before the wait, so the clock must be read after the row's lock. A
 * shorter wait is not added, so the lease is exactly $3 as storage.h says;
 * what it loses is covered by the next beat, a third of a lease later.
 * "state + 0 = 1" finds the rows by id, as a finish does (FINISH_SQL): a
 * bitmap scan of the running-jobs index, which stale statistics can make
 * the planner choose, reads its dead entries at every beat (12 ms for a
 * list of running jobs right after 100,000 jobs ran). */
#define HB_WAITED \
  "($5::int8 + (extract(epoch FROM clock_timestamp() - transaction_timestamp()) * 1000)::int8)"
#define HEARTBEAT_SQL \
  "WITH l AS (SELECT j.seq, h.ord FROM jobq_jobs j, unnest($1::text[], $2::int[]) WITH " \
  "ORDINALITY AS h(id, att, ord) WHERE j.id = h.id AND j.state + 0 = 1 AND j.attempts = h.att " \
  "FOR UPDATE OF j) " \
  "UPDATE jobq_jobs j SET lease_until = $3::int8 + CASE WHEN " HB_WAITED " > $4::int8 THEN " \
  HB_WAITED " ELSE 0 END FROM l WHERE j.seq = l.seq RETURNING l.ord, j.cancel_req"

static int64_t hb_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int jobq__pg_heartbeat(void *st, jobq_storage_lease *l, size_t n, int64_t lease_until) {
  pg_store *s = st;
  if (n == 0) return 0;
  int64_t t0 = hb_mono_ms();
  const char **ids = calloc(n, sizeof *ids);
  int64_t *att = calloc(n, sizeof *att);
  char *a1 = NULL, *a2 = NULL;
  int rc = 0;
  if (ids == NULL || att == NULL) {
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    ids[i] = l[i].id;
    att[i] = l[i].attempt;
  }
  if ((rc = jobq__pg_arr_text(ids, n, &a1)) || (rc = jobq__pg_arr_i64(att, n, &a2))) goto out;
  PGconn *c = NULL;
  if ((rc = jobq__pg_acquire(s, &c))) goto out;
  /* Preparing takes the table's locks too (once per connection): before
   * the local wait is measured. */
  jobq__pg_prepare(s, c, HEARTBEAT_SQL, 5);
  /* Half the lease: the claims of this store said how long it is. */
  int64_t lease_ms = atomic_load_explicit(&s->lease_ms, memory_order_relaxed);
  int64_t local = hb_mono_ms() - t0;
  char ub[24], thr[24], lw[24];
  const char *p[5] = {a1, a2, jobq__pg_i64(ub, lease_until),
                      jobq__pg_i64(thr, lease_ms / 2 > 200 ? lease_ms / 2 : 200),
                      jobq__pg_i64(lw, local > 0 ? local : 0)};
  PGresult *r = NULL;
  /* lease_until is in no index: a heartbeat is a HOT update */
  rc = jobq__pg_exec_prep(s, c, HEARTBEAT_SQL, 5, p, "cannot extend leases", &r);
  jobq__pg_release(s, c);
  if (rc) goto out;
  for (size_t i = 0; i < n; i++) l[i].still_running = l[i].cancel_requested = 0;
  for (int k = 0; k < PQntuples(r); k++) {
    size_t i = (size_t)jobq__pg_int(r, k, 0) - 1;
    if (i >= n) continue;
    l[i].still_running = 1;
    l[i].cancel_requested = PQgetvalue(r, k, 1)[0] == 't';
  }
  PQclear(r);
out:
  free(ids);
  free(att);
  free(a1);
  free(a2);
  return rc;
}

int jobq__pg_rescue(void *st, int64_t now, size_t *n_out) {
  pg_store *s = st;
  *n_out = 0;
  /* One store of the schema rescues for all (pg_leader.c); the others
   * report nothing to do. */
  if (!jobq__pg_is_leader(s)) return 0;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  char nb[24], tok[24];
  const char *p[3] = {jobq__pg_i64(nb, now), s->channel, jobq__pg_i64(tok, s->token)};
  PGresult *r = NULL;
  /* The running jobs come from jobq_jobs_running (few rows: what the
   * workers of every process run); SKIP LOCKED leaves a job that its
   * process is finishing right now to that process. */
#define RESCUE_SQL(EV) \
      "WITH e AS (SELECT seq FROM jobq_jobs WHERE state = 1 AND lease_until < $1 " \
      "FOR UPDATE SKIP LOCKED), " \
      "u AS (UPDATE jobq_jobs j SET " \
      "state = CASE WHEN j.cancel_req THEN 4 WHEN j.attempts < j.max_attempts THEN " \
      "  CASE WHEN j.bcap > 0 THEN 6 ELSE 0 END ELSE 3 END, " \
      "finished_at = CASE WHEN j.cancel_req OR j.attempts >= j.max_attempts THEN $1::int8 " \
      "  ELSE NULL END, " \
      "error = 'lease expired: the process running the job stopped', run_at = $1, " \
      "lease_until = NULL, attempt_log = coalesce(j.attempt_log, '[]'::jsonb) || " \
      "  jsonb_build_array(jsonb_build_array(j.started_at, $1::int8, " \
      "  'lease expired: the process running the job stopped')) " \
      "FROM e " PG_ORIGIN_FROM("$3::int8") "WHERE j.seq = e.seq RETURNING j.id, j.state, j.batch, j.webhooks, " \
      "$1::int8 AS ob_now, j.kind, j.attempts, j.error), " \
      "n AS (SELECT pg_notify($2, '') FROM u WHERE u.state = 0 LIMIT 1), " \
      PG_OUTBOX_END_CTES("u") ", " \
      EV("SELECT $3::int8, id, kind, CASE WHEN state IN (0, 6) THEN 4 ELSE state + 3 END, " \
         "CASE WHEN state = 6 THEN 0 ELSE state END, 0, NULL, attempts, error, NULL, " \
         PG_NOW_MS " FROM u WHERE true", "$3::int8", "$2") \
      "SELECT count(*), (SELECT count(*) FROM n), (SELECT array_agg(id) FROM u WHERE " \
      "batch IS NOT NULL AND state IN (3, 4)), (SELECT count(*) FROM evn) FROM u"
  static const char *const sql[2] = {RESCUE_SQL(PG_EV_OFF), RESCUE_SQL(PG_EV_ON)};
  rc = jobq__pg_exec(s, c, sql[jobq__pg_listened(s, c)], 3, p, "cannot rescue jobs", &r);
  jobq__pg_release(s, c);
  if (rc == 0) {
    *n_out = (size_t)jobq__pg_int(r, 0, 0);
    /* members of batches that ended here: the batches they finished */
    if (!PQgetisnull(r, 0, 2)) jobq__pg_batch_tell(s, PQgetvalue(r, 0, 2));
    PQclear(r);
  }
  return rc;
}
