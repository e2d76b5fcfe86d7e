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

#endif
