/* Rate limits on the PostgreSQL backend (jobq_storage_claim.rates, the
 * rate_window member): a sliding-window log of starts per kind, shared by
 * every process on the schema.
 *
 * jobq_rate_log holds one row per kind and millisecond in which a claim
 * took jobs of the kind (n: how many), so a claim of a batch adds one row,
 * not one per job. A claim with rates runs in a transaction: it takes
 * pg_advisory_xact_lock of each rated kind (in sorted order, so two claims
 * never wait for each other in a circle), forgets the kind's rows that left
 * the window, reads the room left with a fresh snapshot (READ COMMITTED:
 * the statement starts after the lock was granted, so it sees what the
 * previous holder committed), claims at most that many, records what it
 * took and commits, which releases the locks. Two processes therefore
 * cannot both take the window's last place; claims of kinds without a rate
 * take no lock. Deferral (JOBQ_OUTCOME_DEFER) is a finish outcome:
 * pg_claim.c. */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

void jobq__pg_rates_free(pg_rates *rs) {
  free(rs->r);
  free(rs->room);
  free(rs->used);
  free(rs->oldest);
  free(rs->kinds);
  memset(rs, 0, sizeof *rs);
}

int64_t jobq__pg_rate_room(const pg_rates *rs, const char *kind) {
  for (size_t i = 0; i < rs->n; i++)
    if (strcmp(rs->r[i]->kind, kind) == 0) return rs->room[i];
  return -1;
}

static int listed(const char *const *v, size_t n, const char *k) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], k) == 0) return 1;
  return 0;
}

static int by_kind(const void *a, const void *b) {
  return strcmp((*(const jobq_storage_rate *const *)a)->kind,
                (*(const jobq_storage_rate *const *)b)->kind);
}

int jobq__pg_rate_begin(pg_store *s, PGconn *c, const jobq_storage_claim *req, int64_t now,
                        pg_rates *rs) {
  memset(rs, 0, sizeof *rs);
  size_t m = req->n_rates;
  rs->r = calloc(m, sizeof *rs->r);
  rs->room = calloc(m, sizeof *rs->room);
  rs->used = calloc(m, sizeof *rs->used);
  rs->oldest = calloc(m, sizeof *rs->oldest);
  const char **kinds = calloc(m, sizeof *kinds);
  int64_t *edge = calloc(m, sizeof *edge);
  char *a2 = NULL;
  int rc = 0;
  if (!rs->r || !rs->room || !rs->used || !rs->oldest || !kinds || !edge) {
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    goto out;
  }
  /* The rated kinds this claim may take: listed ones, or (any kind) those
   * not excluded. */
  for (size_t i = 0; i < m; i++) {
    const jobq_storage_rate *r = &req->rates[i];
    if (req->kinds ? !listed(req->kinds, req->n_kinds, r->kind)
                   : listed(req->exclude, req->n_exclude, r->kind))
      continue;
    rs->r[rs->n++] = r;
  }
  qsort(rs->r, rs->n, sizeof *rs->r, by_kind);
  for (size_t i = 0; i < rs->n; i++) {
    kinds[i] = rs->r[i]->kind;
    edge[i] = now - rs->r[i]->interval_ms; /* rows at or before it left the window */
  }
  if ((rc = jobq__pg_arr_text(kinds, rs->n, &rs->kinds)) || (rc = jobq__pg_arr_i64(edge, rs->n, &a2)))
    goto out;
  if ((rc = jobq__pg_begin(s, c))) goto out;
  if (rs->n == 0) goto out;
  const char *p[2] = {rs->kinds, a2};
  /* The locks, in the kinds' sorted order (unnest keeps the array's). */
  if ((rc = jobq__pg_exec(s, c,
                          "SELECT count(pg_advisory_xact_lock(hashtextextended('jobq:rate:' || k, "
                          "0))) FROM unnest($1::text[]) AS k",
                          1, p, "cannot lock a rate limit", NULL)))
    goto out;
  /* Then, with a snapshot taken after them: forget what left the window,
   * count the rest. */
  if ((rc = jobq__pg_exec(s, c,
                          "DELETE FROM jobq_rate_log l USING unnest($1::text[], $2::int8[]) AS "
                          "k(kind, edge) WHERE l.kind = k.kind AND l.at <= k.edge",
                          2, p, "cannot forget a rate limit's old starts", NULL)))
    goto out;
  PGresult *r = NULL;
  if ((rc = jobq__pg_exec(s, c,
                          "SELECT k.i, coalesce(sum(l.n), 0), min(l.at) FROM unnest($1::text[], "
                          "$2::int8[]) WITH ORDINALITY AS k(kind, edge, i) LEFT JOIN jobq_rate_log l "
                          "ON l.kind = k.kind AND l.at > k.edge GROUP BY k.i",
                          2, p, "cannot read a rate limit's window", &r)))
    goto out;
  for (int k = 0; k < PQntuples(r); k++) {
    size_t i = (size_t)jobq__pg_int(r, k, 0) - 1;
    if (i >= rs->n) continue;
    rs->used[i] = jobq__pg_int(r, k, 1);
    rs->oldest[i] = PQgetisnull(r, k, 2) ? INT64_MAX : jobq__pg_int(r, k, 2);
    rs->room[i] = rs->used[i] >= rs->r[i]->starts ? 0 : rs->r[i]->starts - rs->used[i];
  }
  PQclear(r);
out:
  free(kinds);
  free(edge);
  free(a2);
  return rc;
}

int jobq__pg_rate_end(pg_store *s, PGconn *c, const jobq_storage_claim *req, int64_t now,
                      pg_rates *rs, PGresult *claimed) {
  int64_t next = INT64_MAX;
  int rc = 0;
  if (rs->n) {
    int64_t *taken = calloc(rs->n, sizeof *taken);
    const char **full = calloc(rs->n, sizeof *full);
    char *a3 = NULL, *af = NULL;
    if (taken == NULL || full == NULL) {
      rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
      goto done;
    }
    for (int k = 0; k < PQntuples(claimed); k++) {
      const char *kind = PQgetvalue(claimed, k, 2); /* PG_JOB_COLS: kind is column 2 */
      for (size_t i = 0; i < rs->n; i++)
        if (strcmp(rs->r[i]->kind, kind) == 0) taken[i]++;
    }
    char nb[24];
    if ((rc = jobq__pg_arr_i64(taken, rs->n, &a3))) goto done;
    const char *p[3] = {rs->kinds, jobq__pg_i64(nb, now), a3};
    if ((rc = jobq__pg_exec(s, c,
                            "INSERT INTO jobq_rate_log (kind, at, n) SELECT k, $2::int8, n FROM "
                            "unnest($1::text[], $3::int8[]) AS t(k, n) WHERE n > 0 "
                            "ON CONFLICT (kind, at) DO UPDATE SET n = jobq_rate_log.n + excluded.n",
                            3, p, "cannot record a rate limit's starts", NULL)))
      goto done;
    /* A kind whose window is now full while it has due jobs left was held
     * back: it has room again when its oldest start leaves the window. */
    size_t nf = 0;
    for (size_t i = 0; i < rs->n; i++) {
      if (taken[i] && now < rs->oldest[i]) rs->oldest[i] = now;
      if (rs->used[i] + taken[i] >= rs->r[i]->starts) full[nf++] = rs->r[i]->kind;
    }
    if (nf && req->rate_next) {
      if ((rc = jobq__pg_arr_text(full, nf, &af))) goto done;
      const char *q[2] = {af, nb};
      PGresult *r = NULL;
      if ((rc = jobq__pg_exec(s, c,
                              "SELECT k FROM unnest($1::text[]) AS k WHERE EXISTS (SELECT 1 FROM "
                              "jobq_jobs WHERE state = 0 AND kind = k AND run_at <= $2::int8)",
                              2, q, "cannot look for due jobs", &r)))
        goto done;
      for (int k = 0; k < PQntuples(r); k++)
        for (size_t i = 0; i < rs->n; i++)
          if (strcmp(rs->r[i]->kind, PQgetvalue(r, k, 0)) == 0 && rs->oldest[i] != INT64_MAX &&
              rs->oldest[i] + rs->r[i]->interval_ms < next)
            next = rs->oldest[i] + rs->r[i]->interval_ms;
      PQclear(r);
    }
  done:
    free(taken);
    free(full);
    free(a3);
    free(af);
    if (rc) return rc;
  }
  if ((rc = jobq__pg_commit(s, c))) return rc;
  if (req->rate_next) *req->rate_next = next;
  return 0;
}

int jobq__pg_rate_window(void *st, const char *kind, int64_t interval_ms, int64_t now,
                         int64_t *out_used) {
  pg_store *s = st;
  *out_used = 0;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  char e[24], nb[24];
  const char *p[3] = {kind, jobq__pg_i64(e, now - interval_ms), jobq__pg_i64(nb, now)};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c,
                     "SELECT coalesce(sum(n), 0) FROM jobq_rate_log WHERE kind = $1 AND "
                     "at > $2::int8 AND at <= $3::int8",
                     3, p, "cannot read a rate limit's window", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  *out_used = jobq__pg_int(r, 0, 0);
  PQclear(r);
  return 0;
}
