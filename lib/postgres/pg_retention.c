/* Retention on the PostgreSQL backend (prune_kind): the finished jobs of
 * one kind that finished before a cut-off, oldest first, deleted up to a
 * few hundred at a time by one statement.
 *
 * The partial index jobq_jobs_finished (kind, finished_at, seq) WHERE the
 * job finished (schema slot 3; pg.c says what it costs a finish) holds
 * exactly the rows a call may delete, in the order it deletes them, so a
 * call reads no queued or running job and no job of another kind. What it
 * still reads and keeps are the kind's old jobs that a rule keeps: cache
 * entries whose key lives on, an owner's newest (keep_per_owner). So that a
 * kind with many of those is not read again by every call, one call looks
 * at most at RET_SCAN rows and remembers (per kind, in this store) the
 * (finished_at, seq) where it stopped; the next call goes on from there,
 * and a pass that reached the cut-off starts the next one from the oldest.
 * Two processes pruning at once delete each row once (the DELETE of a row
 * another one deleted meanwhile matches nothing). */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows one call looks at, at most. */
#define RET_SCAN 2048

struct pg_ret_cursor {
  char *kind;
  int64_t fin, seq; /* the pass under way has looked at every row up to (fin, seq) */
  int active;       /* 0: no pass under way, start from the oldest */
};

void jobq__pg_retention_free(pg_store *s) {
  for (size_t i = 0; i < s->n_ret; i++) free(s->ret[i].kind);
  free(s->ret);
  s->ret = NULL;
  s->n_ret = 0;
}

/* The kind's cursor, made on first use; NULL when out of memory. Under mu. */
static struct pg_ret_cursor *cursor(pg_store *s, const char *kind) {
  for (size_t i = 0; i < s->n_ret; i++)
    if (strcmp(s->ret[i].kind, kind) == 0) return &s->ret[i];
  struct pg_ret_cursor *v = realloc(s->ret, (s->n_ret + 1) * sizeof *v);
  if (v == NULL) return NULL;
  s->ret = v;
  if ((v[s->n_ret].kind = jobq__strdup(kind)) == NULL) return NULL;
  v[s->n_ret].fin = v[s->n_ret].seq = 0;
  v[s->n_ret].active = 0;
  return &v[s->n_ret++];
}

/* $1 kind, $2 before, $3 max, $4 keep_per_owner, $5/$6 the cursor, $7 RET_SCAN.
 * w: the rows this call looks at; c: those it deletes (a succeeded job
 * whose key lives past the cut-off stays, as in prune; so does one of the
 * keep newest finished jobs of its owner and kind, and, as in prune, one
 * with a webhook delivery pending or being sent); od: the deleted jobs'
 * deliveries; the last row: what w held, for the cursor, joined to the
 * deleted ids (one row with a NULL id when none). */
static const char *const ret_sql =
    "WITH w AS (SELECT seq, id, finished_at, owner, state, dedupe_key, dedupe_ttl, webhooks "
    "  FROM jobq_jobs "
    "  WHERE kind = $1 AND state IN (2, 3, 4) AND finished_at < $2::int8 "
    "  AND (finished_at, seq) > ($5::int8, $6::int8) ORDER BY finished_at, seq LIMIT $7::int8), "
    "c AS (SELECT w.seq, w.finished_at FROM w WHERE NOT (w.state = 2 AND w.dedupe_key IS NOT NULL "
    "  AND CASE WHEN w.dedupe_ttl < 0 THEN -w.dedupe_ttl > $2::int8 "
    "  ELSE w.dedupe_ttl > $2::int8 - w.finished_at END) "
    "  AND NOT ($4::int > 0 AND w.owner IS NOT NULL AND (SELECT count(*) FROM (SELECT 1 "
    "  FROM jobq_jobs o WHERE o.owner = w.owner AND o.seq > w.seq AND o.kind = $1 "
    "  AND o.state IN (2, 3, 4) LIMIT $4::int) AS newer) < $4::int) "
    "  AND NOT (w.webhooks IS NOT NULL AND EXISTS (SELECT 1 FROM jobq_outbox x "
    "  WHERE x.job_id = w.id AND x.state IN (0, 1))) "
    "  ORDER BY w.finished_at, w.seq LIMIT $3::int8), "
    "d AS (DELETE FROM jobq_jobs j USING c WHERE j.seq = c.seq AND j.state IN (2, 3, 4) "
    "  RETURNING j.id, j.webhooks, c.finished_at, c.seq), "
    "od AS (DELETE FROM jobq_outbox x USING d WHERE d.webhooks IS NOT NULL AND x.job_id = d.id), "
    "ws AS (SELECT count(*) AS n, (array_agg(finished_at ORDER BY finished_at DESC, seq DESC))[1] "
    "  AS lf, (array_agg(seq ORDER BY finished_at DESC, seq DESC))[1] AS ls FROM w) "
    "SELECT d.id, d.finished_at, d.seq, ws.n, ws.lf, ws.ls FROM ws LEFT JOIN d ON true";

int jobq__pg_prune_kind(void *st, jobq_storage_prune *req, char (**out_ids)[JOBQ_ID_SIZE],
                        size_t *n_out) {
  pg_store *s = st;
  *n_out = 0;
  if (out_ids) *out_ids = NULL;
  req->more = 0;
  if (req->max == 0) return 0;
  uv_mutex_lock(&s->mu);
  struct pg_ret_cursor *cu = cursor(s, req->kind);
  int64_t cf = INT64_MIN, cs = 0;
  if (cu && cu->active) {
    cf = cu->fin;
    cs = cu->seq;
  }
  uv_mutex_unlock(&s->mu);
  if (cu == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");

  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  /* In a transaction: when the ids cannot be handed back, nothing is
   * deleted. */
  if ((rc = jobq__pg_begin(s, c))) {
    jobq__pg_release(s, c);
    return rc;
  }
  char b[24], m[24], k[24], f[24], q[24], sc[24];
  const char *p[7] = {req->kind,
                      jobq__pg_i64(b, req->before),
                      jobq__pg_i64(m, req->max > INT64_MAX ? INT64_MAX : (int64_t)req->max),
                      jobq__pg_i64(k, req->keep_per_owner > 0 ? req->keep_per_owner : 0),
                      jobq__pg_i64(f, cf),
                      jobq__pg_i64(q, cs),
                      jobq__pg_i64(sc, RET_SCAN)};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, ret_sql, 7, p, "cannot prune jobs", &r);
  size_t n = 0;
  char (*ids)[JOBQ_ID_SIZE] = NULL;
  int64_t lf = 0, ls = 0, seen = 0, df = INT64_MIN, ds = 0;
  if (rc == 0) {
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) n += !PQgetisnull(r, i, 0);
    if (rows) {
      seen = jobq__pg_int(r, 0, 3);
      lf = jobq__pg_int(r, 0, 4);
      ls = jobq__pg_int(r, 0, 5);
    }
    if (n && out_ids && (ids = malloc(n * sizeof *ids)) == NULL)
      rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    size_t o = 0;
    for (int i = 0; rc == 0 && i < rows; i++) {
      if (PQgetisnull(r, i, 0)) continue;
      if (ids) snprintf(ids[o], JOBQ_ID_SIZE, "%s", PQgetvalue(r, i, 0));
      o++;
      int64_t fi = jobq__pg_int(r, i, 1), se = jobq__pg_int(r, i, 2);
      if (fi > df || (fi == df && se > ds)) {
        df = fi;
        ds = se;
      }
    }
    PQclear(r);
  }
  if (rc == 0) rc = jobq__pg_commit(s, c);
  if (rc) {
    jobq__pg_rollback(c);
    jobq__pg_release(s, c);
    free(ids);
    return rc;
  }
  jobq__pg_release(s, c);
  /* Where the next call goes on: after the last job deleted when this one
   * stopped at max (the rows before it were deleted or kept), after the
   * last row looked at when it stopped at RET_SCAN; else the pass is over. */
  uv_mutex_lock(&s->mu);
  cu = cursor(s, req->kind); /* (the array may have moved meanwhile) */
  if (cu) {
    if (n == req->max) {
      cu->active = 1;
      cu->fin = df;
      cu->seq = ds;
    } else if (seen >= RET_SCAN) {
      cu->active = 1;
      cu->fin = lf;
      cu->seq = ls;
    } else {
      cu->active = 0;
    }
    req->more = cu->active;
  }
  uv_mutex_unlock(&s->mu);
  *n_out = n;
  if (out_ids) *out_ids = ids;
  else free(ids);
  return 0;
}
