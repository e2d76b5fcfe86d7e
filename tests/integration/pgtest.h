/* What the PostgreSQL tests share: the fixture server's URL
 * (tests/conformance/postgres.cmake), a schema name per test, one SQL value
 * read on a connection of the test's own. Include after cmocka.h. */
#ifndef JOBQ_TESTS_PGTEST_H
#define JOBQ_TESTS_PGTEST_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char pgt_base_url[512];

static inline const char *pgt_base(void) {
  if (pgt_base_url[0]) return pgt_base_url;
  const char *e = getenv("JOBQ_TEST_POSTGRES_URL");
  if (e && *e) {
    snprintf(pgt_base_url, sizeof pgt_base_url, "%s", e);
    return pgt_base_url;
  }
  const char *f = getenv("JOBQ_TEST_POSTGRES_URL_FILE");
  FILE *fp = f ? fopen(f, "r") : NULL;
  if (fp) {
    if (fgets(pgt_base_url, sizeof pgt_base_url, fp) == NULL) pgt_base_url[0] = '\0';
    pgt_base_url[strcspn(pgt_base_url, "\r\n")] = '\0';
    fclose(fp);
  }
  return pgt_base_url;
}

static inline void pgt_need_server(void) {
  if (!pgt_base()[0]) {
    print_message("skipped: no PostgreSQL server (JOBQ_TEST_POSTGRES_URL unset)\n");
    skip();
  }
}

/* A schema of this run (tag, pid, a counter) in schema, and its URL. */
static inline void pgt_schema(const char *tag, char *schema, size_t scap, char *url, size_t ucap) {
  static int n;
  snprintf(schema, scap, "t_%s_%ld_%d", tag, (long)getpid(), ++n);
  snprintf(url, ucap, "%s?schema=%s", pgt_base(), schema);
}

/* One value of SQL ("" when there is no row), on a connection of its own. */
static inline void pgt_sql1(const char *sql, char *out, size_t cap) {
  PGconn *c = PQconnectdb(pgt_base());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  snprintf(out, cap, "%s", st == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
  PQfinish(c);
}

static inline long pgt_int(const char *sql) {
  char v[64];
  pgt_sql1(sql, v, sizeof v);
  return atol(v);
}

static inline void pgt_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

#ifdef PG_SCHEMA_VERSION /* postgres/pg_int.h included before */
/* Makes schema as an older libjobq left it, at version v (libjobq-pg's
 * first v migrations and its schema_version row), then runs then_sql in it
 * (rows of that version), on a connection of its own to base_url. */
static inline void pgt_schema_at(const char *base_url, const char *schema, int v,
                                 const char *then_sql) {
  size_t cap = 1024 + strlen(then_sql);
  for (int i = 0; i < v; i++) cap += strlen(jobq__pg_migration(i));
  char *sql = malloc(cap);
  assert_non_null(sql);
  int at = snprintf(sql, cap, "CREATE SCHEMA %s; SET search_path TO %s; ", schema, schema);
  for (int i = 0; i < v; i++) at += snprintf(sql + at, cap - (size_t)at, "%s; ", jobq__pg_migration(i));
  snprintf(sql + at, cap - (size_t)at,
           "INSERT INTO jobq_meta (key, value) VALUES ('schema_version', '%d'); %s", v, then_sql);
  PGconn *c = PQconnectdb(base_url);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("a version %d schema: %s", v, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
  free(sql);
}
#endif

#endif
