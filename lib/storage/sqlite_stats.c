/* Shared stats on the SQLite backend (stats_add, stats_read).
 *
 * jobq_stats holds one row per kind: the counters, the duration buckets,
 * their sum and the moving average, each flush adding to them with one
 * upsert per kind. jobq_stats_live holds one row per kind and process
 * (its store's token): what its workers run, and until when that holds; a
 * flush replaces the process's rows and drops expired rows of any process.
 * A flush is one short write transaction about once a second per process,
 * never on a job's path.
 *
 * Reads run on a reader connection. Without depth they are two primary-key
 * lookups (ETA, on every jobq_get of a queued job). Depth counts the due
 * jobs through the jobq_jobs_due index (a covering scan of every due
 * entry) and the scheduled ones through jobq_jobs_scheduled (a scan of
 * those with a row lookup each): O(queued jobs), what docs/architecture.md
 * measures at a million. Running jobs are not counted from jobq_jobs (no
 * index covers them, by design: see sqlite.c's migration 3 -> 4) but taken
 * from the live processes' rows. */
#include "storage/sqlite_int.h"
#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sql[WS_COUNT] = {
  [WS_STATS_ADD] =
      "INSERT INTO jobq_stats (kind, c0, c1, c2, c3, c4, c5, c6, c7, h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, sum_ms, avg_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33) "
      "ON CONFLICT (kind) DO UPDATE SET c0 = c0 + excluded.c0, c1 = c1 + excluded.c1, c2 = c2 + excluded.c2, c3 = c3 + excluded.c3, c4 = c4 + excluded.c4, c5 = c5 + excluded.c5, c6 = c6 + excluded.c6, c7 = c7 + excluded.c7, h0 = h0 + excluded.h0, h1 = h1 + excluded.h1, h2 = h2 + excluded.h2, h3 = h3 + excluded.h3, h4 = h4 + excluded.h4, h5 = h5 + excluded.h5, h6 = h6 + excluded.h6, h7 = h7 + excluded.h7, h8 = h8 + excluded.h8, h9 = h9 + excluded.h9, h10 = h10 + excluded.h10, h11 = h11 + excluded.h11, h12 = h12 + excluded.h12, h13 = h13 + excluded.h13, h14 = h14 + excluded.h14, h15 = h15 + excluded.h15, h16 = h16 + excluded.h16, h17 = h17 + excluded.h17, h18 = h18 + excluded.h18, h19 = h19 + excluded.h19, h20 = h20 + excluded.h20, h21 = h21 + excluded.h21, sum_ms = sum_ms + excluded.sum_ms, "
      "avg_ms = CASE WHEN excluded.avg_ms = 0 THEN avg_ms WHEN avg_ms = 0 THEN excluded.avg_ms "
      "ELSE avg_ms * ?34 + excluded.avg_ms * (1 - ?34) END",
  [WS_LIVE_SET] = "INSERT OR REPLACE INTO jobq_stats_live (kind, token, concurrency, started, until) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
  [WS_LIVE_DROP] = "DELETE FROM jobq_stats_live WHERE kind = ?1 AND token = ?2",
  [WS_LIVE_EXPIRE] = "DELETE FROM jobq_stats_live WHERE until < ?1",
};

int jobq__sq_stats_prepare(sq_store *s) { return jobq__sq_prepare(s, sql); }

#define STAT_COLS "c0, c1, c2, c3, c4, c5, c6, c7, h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, h15, h16, h17, h18, h19, h20, h21, sum_ms, avg_ms"
static const char *const rsql[RS_COUNT] = {
  [RS_STATS_KIND] = "SELECT kind, " STAT_COLS " FROM jobq_stats WHERE kind = ?1",
  [RS_STATS_ALL] = "SELECT kind, " STAT_COLS " FROM jobq_stats",
  [RS_LIVE_KIND] = "SELECT kind, concurrency, started FROM jobq_stats_live WHERE kind = ?1 AND until >= ?2",
  [RS_LIVE_ALL] = "SELECT kind, concurrency, started FROM jobq_stats_live WHERE until >= ?2",
  /* a covering scan of jobq_jobs_due */
  [RS_DEPTH_DUE] = "SELECT kind, count(*), min(seq) FROM jobq_jobs WHERE state = 0 GROUP BY kind",
  [RS_DEPTH_SCHED] = "SELECT kind, sum(run_at > ?2), sum(run_at <= ?2), "
                     "min(CASE WHEN run_at <= ?2 THEN seq END) FROM jobq_jobs "
                     "INDEXED BY jobq_jobs_scheduled WHERE state = 5 AND run_at > -1 GROUP BY kind",
  [RS_DEPTH_AT] = "SELECT run_at FROM jobq_jobs WHERE seq = ?1",
};

/* ---- stats_add ---- */

typedef struct sq_stats_req {
  sq_req h;
  const jobq_storage_stats_delta *d;
  size_t n;
  int64_t now;
} sq_stats_req;

/* "t1,t2,..." for a publication's start times; NULL if none (or no memory,
 * then the times are left out: ETA only loses precision). */
static char *started_text(const jobq_storage_stats_delta *d) {
  if (d->n_started == 0) return NULL;
  char *t = malloc(d->n_started * 21 + 1);
  if (t == NULL) return NULL;
  size_t at = 0;
  for (size_t i = 0; i < d->n_started; i++)
    at += (size_t)snprintf(t + at, 22, "%s%lld", i ? "," : "", (long long)d->started[i]);
  return t;
}

static int stats_run(sq_store *s, sq_req *req) {
  const sq_stats_req *r = (const sq_stats_req *)req;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < r->n; i++) {
    const jobq_storage_stats_delta *d = &r->d[i];
    const char *kind = d->kind ? d->kind : "";
    int64_t k = 0, any = 0;
    for (int j = 0; j < JOBQ_STORAGE_HIST_N; j++) k += d->hist[j];
    for (int j = 0; j < JOBQ_STORAGE_STAT_N; j++) any |= d->count[j];
    if (k || any) {
      sqlite3_stmt *u = s->ws[WS_STATS_ADD];
      sqlite3_bind_text(u, 1, kind, -1, SQLITE_STATIC);
      for (int j = 0; j < JOBQ_STORAGE_STAT_N; j++) sqlite3_bind_int64(u, 2 + j, d->count[j]);
      for (int j = 0; j < JOBQ_STORAGE_HIST_N; j++)
        sqlite3_bind_int64(u, 2 + JOBQ_STORAGE_STAT_N + j, d->hist[j]);
      double mean = k ? d->duration_sum_ms / (double)k : 0;
      if (k && mean <= 0) mean = 1e-3; /* 0 means "none yet" */
      sqlite3_bind_double(u, 32, d->duration_sum_ms);
      sqlite3_bind_double(u, 32 + 1, mean);
      sqlite3_bind_double(u, 32 + 2, pow(0.8, (double)k));
      rc = jobq__sq_run(s, u, "cannot add to the stats");
    }
    if (rc) break;
    if (d->concurrency > 0 || d->n_started) {
      char *t = started_text(d);
      sqlite3_stmt *u = s->ws[WS_LIVE_SET];
      sqlite3_bind_text(u, 1, kind, -1, SQLITE_STATIC);
      sqlite3_bind_int64(u, 2, s->token);
      sqlite3_bind_int(u, 3, d->concurrency);
      jobq__sq_bind_text_or_null(u, 4, t);
      sqlite3_bind_int64(u, 5, d->until);
      rc = jobq__sq_run(s, u, "cannot publish what the workers run");
      free(t);
    } else {
      sqlite3_stmt *u = s->ws[WS_LIVE_DROP];
      sqlite3_bind_text(u, 1, kind, -1, SQLITE_STATIC);
      sqlite3_bind_int64(u, 2, s->token);
      rc = jobq__sq_run(s, u, "cannot withdraw what the workers run");
    }
  }
  if (rc == 0) {
    sqlite3_stmt *u = s->ws[WS_LIVE_EXPIRE];
    sqlite3_bind_int64(u, 1, r->now);
    rc = jobq__sq_run(s, u, "cannot drop expired publications");
  }
  return rc;
}

static const sq_op stats_op = {stats_run, NULL};

int jobq__sq_stats_add(void *st, const jobq_storage_stats_delta *d, size_t n, int64_t now) {
  if (n == 0) return 0;
  sq_stats_req r = {0};
  r.h.op = &stats_op;
  r.h.savepoint = 1; /* several rows that go together */
  r.d = d;
  r.n = n;
  r.now = now;
  return jobq__sq_submit(st, &r.h);
}

/* ---- stats_read ---- */

typedef struct kinds_buf {
  jobq_storage_kind_stats *v;
  size_t n, cap;
} kinds_buf;

static jobq_storage_kind_stats *find(kinds_buf *b, const char *kind, int create) {
  for (size_t i = 0; i < b->n; i++)
    if (strcmp(b->v[i].kind, kind) == 0) return &b->v[i];
  if (!create) return NULL;
  if (b->n == b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 8;
    jobq_storage_kind_stats *nv = realloc(b->v, nc * sizeof *nv);
    if (nv == NULL) return NULL;
    b->v = nv;
    b->cap = nc;
  }
  jobq_storage_kind_stats *r = &b->v[b->n];
  memset(r, 0, sizeof *r);
  if ((r->kind = jobq__strdup(kind)) == NULL) return NULL;
  b->n++;
  return r;
}

static void buf_free(kinds_buf *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->v[i].kind);
    free(b->v[i].started);
  }
  free(b->v);
}

/* Appends the start times of text "t1,t2,..." to r. */
static int add_started(jobq_storage_kind_stats *r, const char *t) {
  if (t == NULL || *t == '\0') return 0;
  size_t n = 1;
  for (const char *p = t; *p; p++) n += *p == ',';
  int64_t *nv = realloc(r->started, (r->n_started + n) * sizeof *nv);
  if (nv == NULL) return -1;
  r->started = nv;
  for (const char *p = t; *p;) {
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p) break;
    r->started[r->n_started++] = v;
    p = *end == ',' ? end + 1 : end;
  }
  return 0;
}

#define OOM() jobq__err(JOBQ_ENOMEM, "sqlite storage: out of memory")

static int read_all(sq_store *s, sq_reader *r, const char *kind, int depth, int64_t now,
                    kinds_buf *b) {
  sqlite3_stmt *q;
  int rc, src;
  /* counters */
  int which = kind ? RS_STATS_KIND : RS_STATS_ALL;
  if ((rc = jobq__sq_reader_stmt(s, r, which, rsql[which], &q))) return rc;
  if (kind) sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
  while ((src = sqlite3_step(q)) == SQLITE_ROW) {
    jobq_storage_kind_stats *k = find(b, (const char *)sqlite3_column_text(q, 0), 1);
    if (k == NULL) {
      rc = OOM();
      break;
    }
    for (int j = 0; j < JOBQ_STORAGE_STAT_N; j++) k->count[j] = sqlite3_column_int64(q, 1 + j);
    for (int j = 0; j < JOBQ_STORAGE_HIST_N; j++)
      k->hist[j] = sqlite3_column_int64(q, 1 + JOBQ_STORAGE_STAT_N + j);
    k->duration_sum_ms = sqlite3_column_double(q, 1 + JOBQ_STORAGE_STAT_N + JOBQ_STORAGE_HIST_N);
    k->avg_ms = sqlite3_column_double(q, 2 + JOBQ_STORAGE_STAT_N + JOBQ_STORAGE_HIST_N);
  }
  if (rc == 0 && src != SQLITE_DONE) rc = jobq__sq_error(r->db, src, "cannot read the stats", s->path);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (rc) return rc;
  /* live publications */
  which = kind ? RS_LIVE_KIND : RS_LIVE_ALL;
  if ((rc = jobq__sq_reader_stmt(s, r, which, rsql[which], &q))) return rc;
  if (kind) sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, now);
  while ((src = sqlite3_step(q)) == SQLITE_ROW) {
    jobq_storage_kind_stats *k = find(b, (const char *)sqlite3_column_text(q, 0), 1);
    if (k == NULL || add_started(k, (const char *)sqlite3_column_text(q, 2)) != 0) {
      rc = OOM();
      break;
    }
    k->concurrency += sqlite3_column_int(q, 1);
  }
  if (rc == 0 && src != SQLITE_DONE)
    rc = jobq__sq_error(r->db, src, "cannot read what the workers run", s->path);
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
  if (rc || !depth) return rc;
  /* depth: due jobs (and the seq of the first submitted), scheduled jobs */
  for (int pass = 0; pass < 2 && rc == 0; pass++) {
    which = pass == 0 ? RS_DEPTH_DUE : RS_DEPTH_SCHED;
    if ((rc = jobq__sq_reader_stmt(s, r, which, rsql[which], &q))) return rc;
    if (pass == 1) sqlite3_bind_int64(q, 2, now);
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
      const char *kn = (const char *)sqlite3_column_text(q, 0);
      if (kind && strcmp(kn, kind) != 0) continue;
      jobq_storage_kind_stats *k = find(b, kn, 1);
      if (k == NULL) {
        rc = OOM();
        break;
      }
      int64_t first;
      if (pass == 0) {
        k->queued += sqlite3_column_int64(q, 1);
        first = sqlite3_column_int64(q, 2);
      } else {
        k->scheduled += sqlite3_column_int64(q, 1);
        k->queued += sqlite3_column_int64(q, 2);
        first = sqlite3_column_type(q, 3) == SQLITE_NULL ? 0 : sqlite3_column_int64(q, 3);
      }
      /* oldest_queued_at holds the first seq for now (below: its run_at) */
      if (first > 0 && (k->oldest_queued_at == 0 || first < k->oldest_queued_at))
        k->oldest_queued_at = first;
    }
    if (rc == 0 && src != SQLITE_DONE) rc = jobq__sq_error(r->db, src, "cannot count the jobs", s->path);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
  }
  if (rc) return rc;
  if ((rc = jobq__sq_reader_stmt(s, r, RS_DEPTH_AT, rsql[RS_DEPTH_AT], &q))) return rc;
  for (size_t i = 0; rc == 0 && i < b->n; i++) {
    if (b->v[i].oldest_queued_at == 0) continue;
    sqlite3_bind_int64(q, 1, b->v[i].oldest_queued_at);
    src = sqlite3_step(q);
    b->v[i].oldest_queued_at = src == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    if (src != SQLITE_ROW && src != SQLITE_DONE)
      rc = jobq__sq_error(r->db, src, "cannot read the oldest job", s->path);
    sqlite3_reset(q);
  }
  return rc;
}

int jobq__sq_stats_read(void *st, const char *kind, int depth, int64_t now,
                        jobq_storage_kind_stats **out, size_t *n_out) {
  sq_store *s = st;
  *out = NULL;
  *n_out = 0;
  kinds_buf b = {0};
  if (kind && find(&b, kind, 1) == NULL) return OOM(); /* one record, whatever is stored */
  sq_reader *r = jobq__sq_reader(s);
  /* One read transaction: the parts come from one snapshot. */
  int rc = depth ? jobq__sq_exec(r->db, "BEGIN", "cannot read the stats", s->path) : 0;
  if (rc == 0) rc = read_all(s, r, kind, depth, now, &b);
  if (depth) sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
  uv_mutex_unlock(&r->mu);
  if (rc) {
    buf_free(&b);
    return rc;
  }
  *out = b.v;
  *n_out = b.n;
  if (b.v == NULL) *out = NULL;
  return 0;
}
