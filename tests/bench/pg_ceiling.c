/* pg_ceiling: the PostgreSQL ceiling of a job queue on this machine, with
 * no libjobq in the way. A bare libpq program that runs the statements
 * libjobq-pg runs (lib/postgres: a batched INSERT, the batched
 * FOR UPDATE SKIP LOCKED claim, the batched unnest finish), on a table of
 * libjobq-pg's own (its migrations, run here: columns, fillfactor, every
 * index and trigger a claim and a finish maintain), and reports
 * claim+complete jobs/s. tests/bench/pg_bench.sh divides libjobq's figures
 * by it. Not a test: it never fails because the machine is slow.
 *
 *   pg_ceiling --url postgres://... [--jobs N] [--batch B] [--workers W]
 *
 * W threads, each with its own connection, loop: claim up to B due jobs
 * (one autocommitted statement), complete them (one more). A worker in
 * libjobq claims and finishes per job in the same way but with group
 * commit of finishes across workers; B is the batch such a group reaches.
 * jobq-test-requires: postgres */
#include <libpq-fe.h>

#include "postgres/pg_int.h" /* PG_SCHEMA_VERSION, jobq__pg_migration */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *url;
static long n_jobs = 20000;
static int batch = 1, workers = 1;
static char schema[64];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(PGconn *c, const char *what) {
  fprintf(stderr, "pg_ceiling: %s: %s", what, c ? PQerrorMessage(c) : "no connection\n");
  exit(1);
}

static PGconn *conn(void) {
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) != CONNECTION_OK) die(c, "connect");
  char sql[128];
  snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die(c, sql);
  PQclear(r);
  return c;
}

static PGresult *run(PGconn *c, const char *sql, int n, const char *const *p) {
  PGresult *r = n ? PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0) : PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die(c, sql);
  return r;
}

/* libjobq-pg's claim of listed kinds (pg_claim.c), one kind. */
static const char *claim_sql =
    "WITH c(cseq) AS (SELECT s.seq FROM unnest($3::text[], $4::int[]) AS k(kind, lim), "
    "LATERAL (SELECT seq, priority FROM jobq_jobs WHERE state = 0 AND kind = k.kind AND "
    "run_at <= $1 ORDER BY priority DESC, seq LIMIT k.lim FOR UPDATE SKIP LOCKED) s "
    "ORDER BY s.priority DESC, s.seq LIMIT $2) "
    "UPDATE jobq_jobs j SET state = 1, attempts = j.attempts + 1, started_at = $1, "
    "finished_at = NULL, lease_until = $1::int8 + 30000, progress = 0 FROM c "
    "WHERE j.seq = c.cseq RETURNING j.id, j.attempts, j.payload";

/* libjobq-pg's finish (pg_claim.c), success only. */
static const char *finish_sql =
    "UPDATE jobq_jobs j SET state = 2, finished_at = $3, lease_until = NULL, progress = 100, "
    "result = 'null' FROM unnest($1::text[], $2::int[]) AS f(id, att) "
    "WHERE j.id = f.id AND j.state = 1 AND j.attempts = f.att";

static void *worker(void *arg) {
  long *done = arg;
  PGconn *c = conn();
  char now[24], lim[24], lims[32];
  snprintf(lim, sizeof lim, "%d", batch);
  snprintf(lims, sizeof lims, "{%d}", batch);
  size_t cap = (size_t)batch * 40 + 8;
  char *ids = malloc(cap), *atts = malloc((size_t)batch * 12 + 8);
  for (;;) {
    snprintf(now, sizeof now, "%" PRId64, wall_ms());
    const char *p[4] = {now, lim, "{bench}", lims};
    PGresult *r = run(c, claim_sql, 4, p);
    int n = PQntuples(r);
    if (n == 0) {
      PQclear(r);
      break;
    }
    size_t o = 0, a = 0;
    ids[o++] = '{';
    atts[a++] = '{';
    for (int i = 0; i < n; i++) {
      o += (size_t)snprintf(ids + o, cap - o, "%s\"%s\"", i ? "," : "", PQgetvalue(r, i, 0));
      a += (size_t)sprintf(atts + a, "%s%s", i ? "," : "", PQgetvalue(r, i, 1));
    }
    ids[o++] = '}';
    ids[o] = '\0';
    atts[a++] = '}';
    atts[a] = '\0';
    PQclear(r);
    snprintf(now, sizeof now, "%" PRId64, wall_ms());
    const char *f[3] = {ids, atts, now};
    PQclear(run(c, finish_sql, 3, f));
    *done += n;
  }
  free(ids);
  free(atts);
  PQfinish(c);
  return NULL;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) url = argv[++i];
    else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) n_jobs = atol(argv[++i]);
    else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
    else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) workers = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: pg_ceiling --url URL [--jobs N] [--batch B] [--workers W]\n");
      return 2;
    }
  }
  if (url == NULL || n_jobs < 1 || batch < 1 || workers < 1 || workers > 256) {
    fprintf(stderr, "usage: pg_ceiling --url URL [--jobs N] [--batch B] [--workers W]\n");
    return 2;
  }
  snprintf(schema, sizeof schema, "ceiling_%ld", (long)getpid());
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) != CONNECTION_OK) die(c, "connect");
  char sql[256];
  snprintf(sql, sizeof sql, "CREATE SCHEMA %s; SET search_path TO %s", schema, schema);
  PQclear(run(c, sql, 0, NULL));
  for (int v = 0; v < PG_SCHEMA_VERSION; v++) PQclear(run(c, jobq__pg_migration(v), 0, NULL));

  /* The jobs, 1,000 rows per INSERT statement like libjobq-pg's batches,
   * made by generate_series rather than sent as unnest arrays (the
   * claim+complete figure, not this one, is the ceiling). */
  double t0 = now_s();
  int64_t t = wall_ms();
  for (long done = 0; done < n_jobs;) {
    long k = n_jobs - done > 1000 ? 1000 : n_jobs - done;
    char n1[24], ts[24];
    snprintf(n1, sizeof n1, "%ld", done);
    snprintf(ts, sizeof ts, "%" PRId64, t);
    const char *p[3] = {n1, ts, NULL};
    char kk[24];
    snprintf(kk, sizeof kk, "%ld", k);
    p[2] = kk;
    PQclear(run(c,
                "INSERT INTO jobq_jobs (id, kind, state, priority, run_at, max_attempts, "
                "created_at, payload) SELECT 'ceil-' || ($1::int8 + g), 'bench', 0, 0, $2::int8, 3, "
                "$2::int8, '{\"n\":1}' FROM generate_series(1, $3::int) g ORDER BY g",
                3, p));
    done += k;
  }
  double t_ins = now_s() - t0;
  PQclear(run(c, "ANALYZE jobq_jobs", 0, NULL));

  pthread_t th[256];
  long done[256] = {0};
  t0 = now_s();
  for (int i = 0; i < workers; i++) pthread_create(&th[i], NULL, worker, &done[i]);
  long total = 0;
  for (int i = 0; i < workers; i++) {
    pthread_join(th[i], NULL);
    total += done[i];
  }
  double t_run = now_s() - t0;
  printf("pg_ceiling insert (batches of 1000)              %10.0f jobs/s\n", n_jobs / t_ins);
  printf("pg_ceiling claim+complete (batch %4d, %2d workers) %10.0f jobs/s (%ld jobs)\n", batch,
         workers, total / t_run, total);
  snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", schema);
  PQclear(run(c, sql, 0, NULL));
  PQfinish(c);
  return total == n_jobs ? 0 : 1;
}
