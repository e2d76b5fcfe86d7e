/* Per-owner quotas on the PostgreSQL backend (set_quotas).
 *
 * An insert with owned jobs, when quotas are set, is a transaction that
 * first takes pg_advisory_xact_lock of each owner (in sorted order, so two
 * inserts never wait for each other in a circle), inserts, then counts each
 * owner's unfinished jobs (queued, held, running) exactly from the partial
 * index jobq_jobs_open_owner and refuses the whole batch when a new job
 * puts an owner over a quota. The count's snapshot is taken after the
 * owner's lock was granted (READ COMMITTED), so it includes what the
 * previous holder committed: the quota holds across processes. Inserts of
 * different owners do not wait for each other; jobs without an owner take
 * no lock. */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

int jobq__pg_set_quotas(void *st, const jobq_storage_quota *quotas, size_t n) {
  pg_store *s = st;
  jobq__pg_quotas_free(s);
  if (n == 0) return 0;
  if ((s->quotas = calloc(n, sizeof *s->quotas)) == NULL)
    return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  for (size_t i = 0; i < n; i++) {
    s->quotas[i].max = quotas[i].max;
    if (quotas[i].kind && (s->quotas[i].kind = jobq__strdup(quotas[i].kind)) == NULL) {
      s->n_quotas = i + 1;
      jobq__pg_quotas_free(s);
      return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
    }
  }
  s->n_quotas = n;
  return 0;
}

void jobq__pg_quotas_free(pg_store *s) {
  for (size_t i = 0; i < s->n_quotas; i++) free((char *)s->quotas[i].kind);
  free(s->quotas);
  s->quotas = NULL;
  s->n_quotas = 0;
}

int jobq__pg_quota_applies(const pg_store *s, jobq_storage_job *const *jobs, size_t n) {
  if (s->n_quotas == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (jobs[i]->owner) return 1;
  return 0;
}

static int by_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The distinct owners of jobs, sorted: *out malloc'ed, *k how many. */
static int owners(jobq_storage_job *const *jobs, size_t n, const char ***out, size_t *k) {
  const char **v = calloc(n ? n : 1, sizeof *v);
  if (v == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (jobs[i]->owner) v[m++] = jobs[i]->owner;
  qsort(v, m, sizeof *v, by_str);
  size_t d = 0;
  for (size_t i = 0; i < m; i++)
    if (d == 0 || strcmp(v[d - 1], v[i]) != 0) v[d++] = v[i];
  *out = v;
  *k = d;
  return 0;
}

int jobq__pg_quota_lock(pg_store *s, PGconn *c, jobq_storage_job *const *jobs, size_t n) {
  const char **v = NULL;
  size_t k = 0;
  char *arr = NULL;
  int rc = owners(jobs, n, &v, &k);
  if (rc == 0) rc = jobq__pg_arr_text(v, k, &arr);
  free(v);
  if (rc) return rc;
  const char *p[1] = {arr};
  rc = jobq__pg_exec(s, c,
                     "SELECT count(pg_advisory_xact_lock(hashtextextended('jobq:owner:' || o, 0))) "
                     "FROM unnest($1::text[]) AS o",
                     1, p, "cannot lock an owner's count", NULL);
  free(arr);
  return rc;
}

int jobq__pg_quota_check(pg_store *s, PGconn *c, jobq_storage_job *const *jobs, size_t n,
                         const int *dup) {
  const char **v = NULL;
  size_t k = 0;
  char *arr = NULL;
  int rc = owners(jobs, n, &v, &k);
  if (rc == 0) rc = jobq__pg_arr_text(v, k, &arr);
  free(v);
  if (rc) return rc;
  const char *p[1] = {arr};
  PGresult *r = NULL;
  /* this transaction's own rows included: the counts after the insert */
  rc = jobq__pg_exec(s, c,
                     "SELECT owner, kind, count(*) FROM jobq_jobs WHERE owner = ANY($1::text[]) "
                     "AND state IN (0, 1, 6) GROUP BY owner, kind",
                     1, p, "cannot count an owner's jobs", &r);
  free(arr);
  if (rc) return rc;
  /* Owners in the batch's order; for each quota, the jobs the batch adds
   * (dedupe hits add none) and the count with them. */
  for (size_t i = 0; rc == 0 && i < n; i++) {
    const char *ow = jobs[i]->owner;
    if (ow == NULL || dup[i]) continue;
    int first = 1;
    for (size_t m = 0; m < i && first; m++)
      if (!dup[m] && jobs[m]->owner && strcmp(jobs[m]->owner, ow) == 0) first = 0;
    if (!first) continue;
    for (size_t q = 0; rc == 0 && q < s->n_quotas; q++) {
      const char *qk = s->quotas[q].kind;
      long added = 0, after = 0;
      for (size_t m = 0; m < n; m++)
        if (!dup[m] && jobs[m]->owner && strcmp(jobs[m]->owner, ow) == 0 &&
            (qk == NULL || strcmp(jobs[m]->kind, qk) == 0))
          added++;
      if (added == 0) continue;
      for (int t = 0; t < PQntuples(r); t++)
        if (strcmp(PQgetvalue(r, t, 0), ow) == 0 && (qk == NULL || strcmp(PQgetvalue(r, t, 1), qk) == 0))
          after += (long)jobq__pg_int(r, t, 2);
      if (after <= s->quotas[q].max) continue;
      /* As the jobs were counted one by one: the refused job found the
       * quota's max (or more, when the owner was over it already). */
      long before = after - added;
      rc = jobq__err(JOBQ_EQUOTA,
                     "postgres storage: owner '%.256s' has %ld unfinished jobs%s%s%s; its quota "
                     "is %d",
                     ow, before > s->quotas[q].max ? before : (long)s->quotas[q].max,
                     qk ? " of kind '" : "", qk ? qk : "", qk ? "'" : "", s->quotas[q].max);
    }
  }
  PQclear(r);
  return rc;
}
