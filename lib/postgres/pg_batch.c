/* Batches on the PostgreSQL backend (batch_insert, batch_get, the cap in
 * claims, the news of a batch that ended).
 *
 * jobq_batches holds one row per batch: its cap and counters. Members carry
 * their batch in jobq_jobs.batch and the cap in jobq_jobs.bcap. A member of
 * a capped batch waits in state 6 (held), outside the claim indexes, and
 * goes back there after a retry, a release or a deferral; jobq_batch_fill()
 * (schema version 3, pg.c), run before each claim, moves held members that
 * are due to queued while their batch has fewer than max_running members
 * queued or running, under a row lock of the batch. So the cap holds
 * whatever the number of claiming processes, and a claim without batches
 * pays one probe of the empty held index.
 *
 * The end of a member is counted by a trigger in the transaction of the
 * change that ended it (finish, cancel, rescue), so exactly one change sees
 * the batch's open count reach 0 and records its member as last_job. The
 * same trigger writes the BATCH_DONE row for other processes' listeners
 * (shared events) in that transaction (schema slot 5, pg.c). The process
 * that made the change tells its own batch sink once the change committed
 * (jobq__pg_batch_tell): it asks for the batches whose last_job is one of
 * the members it just ended. */
#include "postgres/pg_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_COLS                                                                             \
  "b.id, b.max_running, b.total, b.open, b.succeeded, b.failed, b.cancelled, b.created_at, "   \
  "coalesce(b.finished_at, 0), coalesce(b.last_job, ''), b.errors::text, "                     \
  "(SELECT count(*) FROM jobq_jobs r WHERE r.batch = b.id AND r.state = 1), "                  \
  "(SELECT kind FROM jobq_jobs k WHERE k.id = b.last_job), "                                   \
  "(SELECT state FROM jobq_jobs k WHERE k.id = b.last_job)"

/* Fills out from row i of a BATCH_COLS result; -1 on out of memory. */
static int row_to_batch(PGresult *r, int i, jobq_storage_batch *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, i, 0));
  out->max_running = (int)jobq__pg_int(r, i, 1);
  out->total = jobq__pg_int(r, i, 2);
  int64_t open = jobq__pg_int(r, i, 3);
  out->succeeded = jobq__pg_int(r, i, 4);
  out->failed = jobq__pg_int(r, i, 5);
  out->cancelled = jobq__pg_int(r, i, 6);
  out->created_at = jobq__pg_int(r, i, 7);
  out->finished_at = jobq__pg_int(r, i, 8);
  snprintf(out->last_job, sizeof out->last_job, "%s", PQgetvalue(r, i, 9));
  out->running = jobq__pg_int(r, i, 11);
  out->queued = open - out->running;
  /* errors: [{"jobId", "error"}] in the order members failed */
  json_t *a = json_loads(PQgetvalue(r, i, 10), 0, NULL);
  size_t n = json_is_array(a) ? json_array_size(a) : 0;
  if (n) {
    out->errors = calloc(n, sizeof *out->errors);
    if (out->errors == NULL) {
      json_decref(a);
      return -1;
    }
    for (size_t k = 0; k < n; k++) {
      json_t *e = json_array_get(a, k);
      const char *id = json_string_value(json_object_get(e, "jobId"));
      const char *err = json_string_value(json_object_get(e, "error"));
      snprintf(out->errors[k].job_id, sizeof out->errors[k].job_id, "%s", id ? id : "");
      if ((out->errors[k].error = jobq__strdup(err ? err : "")) == NULL) {
        json_decref(a);
        jobq_storage_batch_clear(out);
        return -1;
      }
      out->n_errors++;
    }
  }
  json_decref(a);
  return 0;
}

int jobq__pg_batch_get(void *st, const char *batch_id, jobq_storage_batch *out) {
  pg_store *s = st;
  PGconn *c = NULL;
  int rc = jobq__pg_acquire(s, &c);
  if (rc) return rc;
  const char *p[1] = {batch_id};
  PGresult *r = NULL;
  rc = jobq__pg_exec(s, c, "SELECT " BATCH_COLS " FROM jobq_batches b WHERE b.id = $1", 1, p,
                     "cannot read a batch", &r);
  jobq__pg_release(s, c);
  if (rc) return rc;
  if (PQntuples(r) == 0) rc = jobq__err(JOBQ_ENOTFOUND, "postgres storage: no batch %.40s", batch_id);
  else if (row_to_batch(r, 0, out) != 0) rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  PQclear(r);
  return rc;
}

int jobq__pg_set_batch_sink(void *st, void (*sink)(void *ud, const jobq_storage_event *ev),
                            void *ud) {
  pg_store *s = st;
  /* Called once, right after open, before any other call (storage.h). */
  s->batch_sink = sink;
  s->batch_sink_ud = ud;
  return 0;
}

/* {"batchId", "total", "succeeded", "failed", "cancelled", "errors":
 * [{"jobId", "error"}]}, as every backend writes it; NULL on out of memory. */
static char *summary(const jobq_storage_batch *b) {
  json_t *o = json_object(), *errs = json_array();
  if (o == NULL || errs == NULL) {
    json_decref(o);
    json_decref(errs);
    return NULL;
  }
  json_object_set_new(o, "batchId", json_string(b->id));
  json_object_set_new(o, "total", json_integer(b->total));
  json_object_set_new(o, "succeeded", json_integer(b->succeeded));
  json_object_set_new(o, "failed", json_integer(b->failed));
  json_object_set_new(o, "cancelled", json_integer(b->cancelled));
  for (int i = 0; i < b->n_errors; i++) {
    json_t *e = json_object();
    json_object_set_new(e, "jobId", json_string(b->errors[i].job_id));
    json_object_set_new(e, "error", json_string(b->errors[i].error ? b->errors[i].error : ""));
    json_array_append_new(errs, e);
  }
  json_object_set_new(o, "errors", errs);
  char *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  return out;
}

/* The batches that ended, read after the change that ended them committed,
 * for this store's own sink. Other processes hear of them by the row the
 * trigger wrote in that change's transaction (pg.c, slot 5), or, for a
 * batch done at its insert, the row the insert's transaction wrote
 * (jobq__pg_batch_members): this store's token is that row's origin, so it
 * does not hear its own batch twice. */
static const char tell_ended_sql[] =
    "SELECT " BATCH_COLS " FROM jobq_batches b WHERE b.open = 0 AND b.last_job = ANY($1::text[])";
static const char tell_one_sql[] = "SELECT " BATCH_COLS " FROM jobq_batches b WHERE b.id = $1";

/* Hands the sink the news of the batches in r (BATCH_COLS rows). News only:
 * out of memory drops it (the batch is done all the same). */
static void tell_rows(pg_store *s, PGresult *r) {
  for (int i = 0; s->batch_sink && i < PQntuples(r); i++) {
    jobq_storage_batch b;
    if (row_to_batch(r, i, &b) != 0) continue;
    char *sum = summary(&b);
    char *kind = jobq__pg_text(r, i, 12);
    jobq_storage_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = JOBQ_EVENT_BATCH_DONE;
    ev.state = b.last_job[0] ? (int)jobq__pg_int(r, i, 13) : -1;
    ev.time = b.finished_at;
    ev.id = b.last_job;
    ev.kind = kind;
    ev.step = b.id;
    ev.result = sum;
    if (sum) s->batch_sink(s->batch_sink_ud, &ev);
    free(sum);
    free(kind);
    jobq_storage_batch_clear(&b);
  }
}

/* Reads with sql and p1 as $1, then tells. */
static void tell(pg_store *s, const char *sql, const char *p1) {
  if (s->batch_sink == NULL) return;
  PGconn *c = NULL;
  if (jobq__pg_acquire(s, &c) != 0) return; /* news only */
  const char *p[1] = {p1};
  PGresult *r = NULL;
  int rc = jobq__pg_exec(s, c, sql, 1, p, "cannot read an ended batch", &r);
  /* the connection goes back first: a sink may call into the store */
  jobq__pg_release(s, c);
  if (rc == 0) {
    tell_rows(s, r);
    PQclear(r);
  }
}

void jobq__pg_batch_tell(pg_store *s, const char *ids) {
  tell(s, tell_ended_sql, ids);
}

char *jobq__pg_batch_summary(PGconn *c, const char *batch_id) {
  const char *p[1] = {batch_id};
  PGresult *r = PQexecParams(c, "SELECT " BATCH_COLS " FROM jobq_batches b WHERE b.id = $1", 1,
                             NULL, p, NULL, NULL, 0);
  char *sum = NULL;
  if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
    jobq_storage_batch b;
    if (row_to_batch(r, 0, &b) == 0) {
      sum = summary(&b);
      jobq_storage_batch_clear(&b);
    }
  }
  PQclear(r);
  return sum;
}

int jobq__pg_batch_members(pg_store *s, PGconn *c, const char *batch_id, int max_running,
                           jobq_storage_job *const *jobs, size_t n, const int *dup, int64_t now) {
  const char **ids = calloc(n ? n : 1, sizeof *ids);
  if (ids == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!dup[i]) ids[k++] = jobs[i]->id;
  char *arr = NULL;
  int rc = jobq__pg_arr_text(ids, k, &arr);
  free(ids);
  if (rc) return rc;
  char cap[24], tot[24], nb[24], fin[24];
  const char *p[6] = {batch_id, jobq__pg_i64(cap, max_running), arr, jobq__pg_i64(tot, (int64_t)k),
                      jobq__pg_i64(nb, now), k ? NULL : jobq__pg_i64(fin, now > 0 ? now : 1)};
  /* A capped batch's members are held from the start: the claims' fill
   * gives them their places. A batch without members is done at once. */
  if (k)
    rc = jobq__pg_exec(s, c,
                       "UPDATE jobq_jobs SET batch = $1, bcap = $2::int, state = CASE WHEN "
                       "$2::int > 0 THEN 6 ELSE state END WHERE id = ANY($3::text[])",
                       3, p, "cannot add jobs to their batch", NULL);
  const char *q[5] = {p[0], p[1], p[3], p[4], p[5]};
  if (rc == 0)
    rc = jobq__pg_exec(s, c,
                       "INSERT INTO jobq_batches (id, max_running, total, open, created_at, "
                       "finished_at, last_job) VALUES ($1, $2::int, $3::int8, $3::int8, $4::int8, "
                       "$5::int8, CASE WHEN $5::int8 IS NULL THEN NULL ELSE '' END)",
                       5, q, "cannot store a batch", NULL);
  /* A batch without members is done at its insert: its BATCH_DONE row for
   * other processes goes in the insert's transaction (c's), as a trigger
   * writes it for a batch whose last member ends. */
  if (rc == 0 && k == 0) {
    char tok[24];
    const char *e[3] = {batch_id, jobq__pg_i64(tok, s->token), s->channel};
    static const char *const done_sql[2] = {
        "WITH " PG_EV_OFF("", "$2::int8", "$3") "SELECT $1::text, (SELECT count(*) FROM evn)",
        "WITH " PG_EV_ON("SELECT $2::int8, '', NULL, 10, -1, 0, $1::text, 0, NULL, NULL, "
                         PG_NOW_MS " WHERE true", "$2::int8", "$3")
        "SELECT $1::text, (SELECT count(*) FROM evn)"};
    rc = jobq__pg_exec(s, c, done_sql[jobq__pg_listened(s, c)], 3, e,
                       "cannot tell of a batch done at its insert", NULL);
  }
  free(arr);
  return rc;
}

int jobq__pg_batch_fill(pg_store *s, PGconn *c, int64_t now) {
  char nb[24];
  const char *p[1] = {jobq__pg_i64(nb, now)};
  atomic_fetch_add_explicit(&s->n_fills, 1, memory_order_relaxed);
  return jobq__pg_exec_prep(s, c, "SELECT jobq_batch_fill($1::int8)", 1, p,
                       "cannot give held batch members their places", NULL);
}

int jobq__pg_batch_insert(void *st, const char *batch_id, int max_running,
                          jobq_storage_job *const *jobs, size_t n, const int *force, int64_t now,
                          int *out_dup) {
  return jobq__pg_batch_insert_hooked(st, batch_id, max_running, jobs, NULL, n, force, now,
                                      out_dup);
}

int jobq__pg_batch_insert_hooked(pg_store *s, const char *batch_id, int max_running,
                                 jobq_storage_job *const *jobs, const char *const *hooks, size_t n,
                                 const int *force, int64_t now, int *out_dup) {
  int rc = jobq__pg_insert_in(s, jobs, hooks, n, force, now, out_dup, batch_id, max_running);
  if (rc) return rc;
  size_t members = 0;
  for (size_t i = 0; i < n; i++) members += !out_dup[i];
  /* done at its insert: told now that the insert committed */
  if (members == 0) tell(s, tell_one_sql, batch_id);
  return 0;
}
