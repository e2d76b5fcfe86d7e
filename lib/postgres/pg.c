/* The PostgreSQL backend: "postgres://user:pass@host:port/db?schema=NAME&
 * pool=N&..." (libpq's connection URI; "postgresql://" too).
 *
 * A store is a bounded pool of connections (pool, default 4), each made on
 * first use with search_path set to the queue's schema; an operation takes
 * one, runs its statements, and gives it back. A connection that was lost
 * is made again on a later call, after a pause that doubles up to 5 s, so a
 * restarting server is not hammered. The operations live in pg_jobs.c
 * (insert, progress, checkpoint, cancel, prune), pg_claim.c (claim, finish,
 * heartbeat, rescue), pg_read.c (get, list, ...) and pg_notify.c
 * (LISTEN/NOTIFY wake-ups).
 *
 * This file: the URL, the pool, errors, the schema and its migrations, the
 * helpers the others share, and the vtable. docs/postgres.md says why the
 * schema looks as it does. */
#include "postgres/pg_int.h"
#include "jobq/postgres.h"
#include "util/err.h"
#include "util/mem.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *jobq__pg_i64(char *buf, int64_t v) {
  snprintf(buf, 24, "%" PRId64, v);
  return buf;
}

/* ---- URL ---- */

/* The URL with its password (user:PASS@ and password=PASS) replaced by
 * "***", for sentences and logs. */
static char *redact(const char *url) {
  size_t n = strlen(url);
  char *out = malloc(n + 8);
  if (out == NULL) return NULL;
  const char *p = strstr(url, "://");
  size_t o = 0, i = 0;
  if (p) {
    const char *auth = p + 3;
    size_t alen = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon) {
      size_t head = (size_t)(colon + 1 - url);
      memcpy(out, url, head);
      o = head;
      memcpy(out + o, "***", 3);
      o += 3;
      i = (size_t)(at - url);
    }
  }
  while (i < n) {
    /* password=VALUE in the query */
    if ((url[i] == '?' || url[i] == '&') && strncmp(url + i + 1, "password=", 9) == 0) {
      memcpy(out + o, url + i, 10);
      o += 10;
      i += 10;
      while (i < n && url[i] != '&') i++;
      memcpy(out + o, "***", 3);
      o += 3;
      continue;
    }
    out[o++] = url[i++];
  }
  out[o] = '\0';
  return out;
}

static int name_ok(const char *s, size_t n) {
  if (n == 0 || n > 48) return 0; /* leaves room in the 63 bytes of a name */
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
      return 0;
  return 1;
}

/* Takes libjobq's own parameters (schema, pool) out of the URL; the rest,
 * which libpq must accept, becomes s->conninfo. */
static int parse_url(pg_store *s, const char *url) {
  s->pool = 4;
  if ((s->shown = redact(url)) == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  const char *q = strchr(url, '?');
  size_t base = q ? (size_t)(q - url) : strlen(url);
  char *ci = malloc(strlen(url) + 1);
  if (ci == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  memcpy(ci, url, base);
  size_t o = base;
  int n_kept = 0, have_schema = 0, have_pool = 0;
  while (q && *q) {
    q++;
    size_t len = strcspn(q, "&");
    if (len == 0) {
      free(ci);
      return jobq__err(JOBQ_EURL, "postgres storage URL '%.200s': an empty parameter ('&&', or "
                       "'&' or '?' at the end)", s->shown);
    }
    if (strncmp(q, "schema=", 7) == 0) {
      if (have_schema++ || !name_ok(q + 7, len - 7)) {
        free(ci);
        return jobq__err(JOBQ_EURL,
                         "postgres storage URL '%.200s': schema must be given once, as 1..48 "
                         "characters of A-Z a-z 0-9 _ not starting with a digit",
                         s->shown);
      }
      s->schema = jobq__strndup(q + 7, len - 7);
    } else if (strncmp(q, "pool=", 5) == 0) {
      char num[8] = "";
      long v = -1;
      if (len - 5 >= 1 && len - 5 < sizeof num) {
        memcpy(num, q + 5, len - 5);
        num[len - 5] = '\0';
        char *end;
        v = strtol(num, &end, 10);
        if (*end != '\0' || num[0] < '0' || num[0] > '9') v = -1;
      }
      if (have_pool++ || v < 1 || v > PG_POOL_MAX) {
        free(ci);
        return jobq__err(JOBQ_EURL,
                         "postgres storage URL '%.200s': pool must be given once, as a number of "
                         "connections 1..%d",
                         s->shown, PG_POOL_MAX);
      }
      s->pool = (int)v;
    } else {
      ci[o++] = n_kept++ ? '&' : '?';
      memcpy(ci + o, q, len);
      o += len;
    }
    q += len;
  }
  ci[o] = '\0';
  s->conninfo = ci;
  if (s->schema == NULL && !have_schema) s->schema = jobq__strdup("jobq");
  if (s->schema == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  /* libpq's own check of the rest: a misspelt parameter is refused here,
   * not at the first connect. */
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(ci, &err);
  if (opts == NULL) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", err ? err : "out of memory");
    msg[strcspn(msg, "\n")] = '\0';
    PQfreemem(err);
    return jobq__err(JOBQ_EURL, "postgres storage URL '%.200s': libpq refuses it: %s", s->shown,
                     msg);
  }
  PQconninfoFree(opts);
  size_t cn = strlen("jobq_") + strlen(s->schema) + 1;
  if ((s->channel = malloc(cn)) == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  snprintf(s->channel, cn, "jobq_%s", s->schema);
  return 0;
}

/* ---- errors ---- */

int jobq__pg_fail(pg_store *s, PGconn *c, PGresult *res, const char *what) {
  char msg[300];
  const char *m = res ? PQresultErrorMessage(res) : "";
  if (m == NULL || *m == '\0') m = c ? PQerrorMessage(c) : "no connection";
  snprintf(msg, sizeof msg, "%s", m);
  msg[strcspn(msg, "\n")] = '\0';
  const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  int code = JOBQ_ESTORAGE;
  const char *hint = "";
  if (c == NULL || PQstatus(c) != CONNECTION_OK || (sqlstate && strncmp(sqlstate, "08", 2) == 0) ||
      (sqlstate && strncmp(sqlstate, "57P", 3) == 0)) {
    code = JOBQ_EIO;
    hint = " (the connection was lost: the next call connects again)";
  } else if (sqlstate && strcmp(sqlstate, "57014") == 0) {
    /* query_canceled: the server's statement_timeout (a URL's
     * options=-c statement_timeout=...) or a pg_cancel_backend; the
     * statement's work was rolled back */
    code = JOBQ_ETIMEDOUT;
    hint = " (the statement was cancelled and nothing of it was stored)";
  } else if (sqlstate && strcmp(sqlstate, "23505") == 0) {
    code = JOBQ_EEXIST;
  } else if (sqlstate && strcmp(sqlstate, "53100") == 0) {
    code = JOBQ_EFULL;
  } else if (sqlstate && strncmp(sqlstate, "53", 2) == 0) {
    code = JOBQ_EBUSY;
  } else if (sqlstate && (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
                          strcmp(sqlstate, "55P03") == 0)) {
    code = JOBQ_EBUSY;
  }
  PQclear(res);
  return jobq__err(code, "postgres storage '%.200s': %s: %s%s", s->shown, what, msg, hint);
}

int jobq__pg_exec(pg_store *s, PGconn *c, const char *sql, int n, const char *const *params,
                  const char *what, PGresult **out) {
  if (out) *out = NULL;
  /* without parameters, the simple protocol: a migration is several statements */
  PGresult *res = n ? PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return jobq__pg_fail(s, c, res, what);
  if (out) *out = res;
  else PQclear(res);
  return 0;
}

/* FNV-1a of a statement's text: its prepared name. Two texts never share
 * a name, so a name found on a server connection (42P05: a pooler's
 * connection that another client or an earlier session of ours prepared)
 * is the same statement. */
static uint64_t sql_hash(const char *sql) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  return h;
}

static int sqlstate_is(PGresult *r, const char *code) {
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  return st && strcmp(st, code) == 0;
}

/* The pool slot c was lent from, if c may run prepared statements now. */
static pg_conn *prep_slot(pg_store *s, PGconn *c, int n) {
  pg_conn *slot = NULL;
  /* Other slots change under mu as they are lent and given back; this
   * one's prepared set is its borrower's alone. */
  uv_mutex_lock(&s->mu);
  for (int i = 0; i < s->pool && slot == NULL; i++)
    if (s->conns[i].c == c && s->conns[i].busy) slot = &s->conns[i];
  uv_mutex_unlock(&s->mu);
  /* Inside a transaction a failed EXECUTE would abort it: unnamed there. */
  if (slot == NULL || n == 0 || PQtransactionStatus(c) != PQTRANS_IDLE) return NULL;
  return slot;
}

/* Index of sql's hash h in slot's prepared ones, preparing it if needed:
 * -1 if it cannot be (the slot is full, the server refused: run unnamed),
 * -2 if the connection was lost (*res holds the failure). *did: prepared now. */
static int prep_find(pg_conn *slot, PGconn *c, uint64_t h, const char *name, const char *sql,
                     int n, PGresult **res, int *did) {
  *res = NULL;
  *did = 0;
  int k = 0;
  while (k < slot->n_prep && slot->prep[k] != h) k++;
  if (k < slot->n_prep) return k;
  if (slot->n_prep == PG_PREP_MAX) return -1;
  PGresult *pr = PQprepare(c, name, sql, n, NULL);
  if (PQresultStatus(pr) != PGRES_COMMAND_OK && !sqlstate_is(pr, "42P05")) {
    if (PQstatus(c) != CONNECTION_OK) {
      *res = pr;
      return -2;
    }
    PQclear(pr);
    return -1;
  }
  PQclear(pr);
  *did = 1;
  slot->prep[slot->n_prep] = h;
  return slot->n_prep++;
}

int jobq__pg_prepare(pg_store *s, PGconn *c, const char *sql, int n) {
  pg_conn *slot = prep_slot(s, c, n);
  if (slot == NULL) return 0;
  uint64_t h = sql_hash(sql);
  char name[32];
  snprintf(name, sizeof name, "jobq_%016" PRIx64, h);
  PGresult *res;
  int did;
  int k = prep_find(slot, c, h, name, sql, n, &res, &did);
  PQclear(res);
  return k >= 0 && did;
}

int jobq__pg_exec_prep(pg_store *s, PGconn *c, const char *sql, int n,
                       const char *const *params, const char *what, PGresult **out) {
  if (out) *out = NULL;
  pg_conn *slot = prep_slot(s, c, n);
  if (slot == NULL) return jobq__pg_exec(s, c, sql, n, params, what, out);
  uint64_t h = sql_hash(sql);
  char name[32];
  snprintf(name, sizeof name, "jobq_%016" PRIx64, h);
  PGresult *pr;
  int did;
  int k = prep_find(slot, c, h, name, sql, n, &pr, &did);
  if (k == -2) return jobq__pg_fail(s, c, pr, what);
  if (k < 0) return jobq__pg_exec(s, c, sql, n, params, what, out);
  PGresult *res = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (sqlstate_is(res, "26000") && PQtransactionStatus(c) == PQTRANS_IDLE) {
      /* not on this server connection: forget it, run this call unnamed */
      PQclear(res);
      slot->prep[k] = slot->prep[--slot->n_prep];
      return jobq__pg_exec(s, c, sql, n, params, what, out);
    }
    return jobq__pg_fail(s, c, res, what);
  }
  if (out) *out = res;
  else PQclear(res);
  return 0;
}

int jobq__pg_begin(pg_store *s, PGconn *c) {
  return jobq__pg_exec(s, c, "BEGIN", 0, NULL, "cannot start a transaction", NULL);
}

int jobq__pg_commit(pg_store *s, PGconn *c) {
  return jobq__pg_exec(s, c, "COMMIT", 0, NULL, "cannot commit", NULL);
}

void jobq__pg_rollback(PGconn *c) {
  if (PQstatus(c) != CONNECTION_OK) return;
  PQclear(PQexec(c, "ROLLBACK"));
}

/* ---- schema ---- */

/* Forward migrations: migrations[v] takes schema v to v + 1, inside one
 * transaction under an advisory lock of the schema. A schema whose version
 * is newer than this libjobq knows is refused, untouched. */
static const char *const migrations[PG_SCHEMA_VERSION] = {
  /* 0 -> 1: the jobs. fillfactor 70 leaves room in each page for the new
   * version of a row that a heartbeat, a progress write or a checkpoint
   * makes, so that those updates stay HOT (no index entry, pruned within the
   * page); autovacuum runs after 2 % of the rows changed, not 20 %: the
   * table is a queue whose rows all change a few times and are deleted. */
  "CREATE TABLE jobq_meta (key text PRIMARY KEY, value text NOT NULL);"
  "CREATE TABLE jobq_jobs ("
  "  seq bigserial PRIMARY KEY,"
  "  id text NOT NULL UNIQUE,"
  "  kind text NOT NULL,"
  "  state smallint NOT NULL,"
  "  priority integer NOT NULL DEFAULT 0,"
  "  run_at bigint NOT NULL,"
  "  attempts integer NOT NULL DEFAULT 0,"
  "  max_attempts integer NOT NULL DEFAULT 0,"
  "  progress integer NOT NULL DEFAULT 0,"
  "  cancel_req boolean NOT NULL DEFAULT false,"
  "  created_at bigint NOT NULL,"
  "  started_at bigint,"
  "  finished_at bigint,"
  "  lease_until bigint,"
  "  owner text,"
  "  payload text NOT NULL,"
  "  step text,"
  "  result text,"
  "  error text,"
  "  dedupe_key text,"
  "  dedupe_ttl bigint NOT NULL DEFAULT 0,"
  "  attempt_log jsonb,"
  "  ck_stage integer,"
  "  ck_output text"
  ") WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, "
  "  autovacuum_analyze_scale_factor = 0.02);"
  /* claims of listed kinds: the best queued jobs of a kind */
  "CREATE INDEX jobq_jobs_claim ON jobq_jobs (kind, priority DESC, seq) WHERE state = 0;"
  /* claims of any kind */
  "CREATE INDEX jobq_jobs_claim_any ON jobq_jobs (priority DESC, seq) WHERE state = 0;"
  /* the next wake-up (next_run_at) */
  "CREATE INDEX jobq_jobs_run_at ON jobq_jobs (kind, run_at) WHERE state = 0;"
  /* rescue: the running jobs, keyed by seq and not by lease_until, so that
   * a heartbeat changes no indexed column and stays a HOT update */
  "CREATE INDEX jobq_jobs_running ON jobq_jobs (seq) WHERE state = 1;"
  "CREATE INDEX jobq_jobs_dedupe ON jobq_jobs (dedupe_key, seq) WHERE dedupe_key IS NOT NULL;"
  "CREATE INDEX jobq_jobs_owner ON jobq_jobs (owner, seq) WHERE owner IS NOT NULL;",
  /* slot 1: reserved */
  "SELECT 1",
  /* slot 2 (2 -> 3): batches, owner quotas, rate limits (docs/postgres.md).
   * A member of a capped batch waits in state 6 (held) outside the claim
   * indexes; jobq_batch_fill() (called before each claim) moves held
   * members to queued while their batch has fewer than max_running members
   * queued or running, under a row lock of the batch, each statement with
   * a fresh snapshot (READ COMMITTED), so that claimers of several
   * processes never exceed the cap. A trigger counts the end of a member
   * in the ending change's own transaction, whichever statement made it
   * (finish, cancel, rescue): exactly one change sees open reach 0 and
   * records itself as last_job. Functions keep the schema's search_path
   * (SET search_path FROM CURRENT), so they work on any connection. */
  "ALTER TABLE jobq_jobs ADD COLUMN batch text, ADD COLUMN bcap integer NOT NULL DEFAULT 0;"
  "CREATE INDEX jobq_jobs_held ON jobq_jobs (batch, priority DESC, seq) WHERE state = 6;"
  "CREATE INDEX jobq_jobs_batch ON jobq_jobs (batch, state) WHERE batch IS NOT NULL AND "
  "  state IN (0, 1);"
  /* quotas count an owner's unfinished jobs exactly, from this index alone */
  "CREATE INDEX jobq_jobs_open_owner ON jobq_jobs (owner, kind) WHERE owner IS NOT NULL AND "
  "  state IN (0, 1, 6);"
  "CREATE TABLE jobq_batches ("
  "  id text PRIMARY KEY,"
  "  max_running integer NOT NULL,"
  "  total bigint NOT NULL,"
  "  open bigint NOT NULL,"
  "  succeeded bigint NOT NULL DEFAULT 0,"
  "  failed bigint NOT NULL DEFAULT 0,"
  "  cancelled bigint NOT NULL DEFAULT 0,"
  "  errors jsonb NOT NULL DEFAULT '[]',"
  "  created_at bigint NOT NULL,"
  "  finished_at bigint,"
  "  last_job text);"
  /* rate limits: one row per kind and millisecond in which claims took
   * jobs of the kind */
  "CREATE TABLE jobq_rate_log (kind text NOT NULL, at bigint NOT NULL, n bigint NOT NULL, "
  "  PRIMARY KEY (kind, at));"
  "CREATE FUNCTION jobq_batch_member_end() RETURNS trigger LANGUAGE plpgsql "
  "SET search_path FROM CURRENT AS $f$ "
  "DECLARE left_open bigint; "
  "BEGIN "
  "  UPDATE jobq_batches SET open = open - 1, "
  "    succeeded = succeeded + (NEW.state = 2)::int, "
  "    failed = failed + (NEW.state = 3)::int, "
  "    cancelled = cancelled + (NEW.state = 4)::int, "
  "    errors = CASE WHEN NEW.state = 3 AND jsonb_array_length(errors) < 20 THEN errors || "
  "      jsonb_build_array(jsonb_build_object('jobId', NEW.id, 'error', "
  "      coalesce(NEW.error, 'failed'))) ELSE errors END, "
  "    finished_at = CASE WHEN open = 1 THEN greatest(coalesce(NEW.finished_at, 1), 1) "
  "      ELSE finished_at END, "
  "    last_job = CASE WHEN open = 1 THEN NEW.id ELSE last_job END "
  "  WHERE id = NEW.batch RETURNING open INTO left_open; "
  /* a place was freed: idle workers of every process look again */
  "  IF left_open > 0 AND EXISTS (SELECT 1 FROM jobq_jobs WHERE batch = NEW.batch AND "
  "      state = 6) THEN "
  "    PERFORM pg_notify('jobq_' || current_schema(), ''); "
  "  END IF; "
  "  RETURN NULL; "
  "END $f$;"
  "CREATE TRIGGER jobq_batch_member_end AFTER UPDATE OF state ON jobq_jobs FOR EACH ROW "
  "  WHEN (OLD.batch IS NOT NULL AND OLD.state NOT IN (2, 3, 4) AND NEW.state IN (2, 3, 4)) "
  "  EXECUTE FUNCTION jobq_batch_member_end();"
  /* The batches with held members are found by a skip scan of
   * jobq_jobs_held (one probe per batch, not per member). */
  "CREATE FUNCTION jobq_batch_fill(now bigint) RETURNS integer LANGUAGE plpgsql "
  "SET search_path FROM CURRENT AS $f$ "
  "DECLARE b text; slots bigint; moved integer := 0; k integer; "
  "BEGIN "
  "  FOR b IN WITH RECURSIVE t(id) AS ("
  "      SELECT min(batch) FROM jobq_jobs WHERE state = 6 "
  "      UNION ALL SELECT (SELECT min(batch) FROM jobq_jobs WHERE state = 6 AND batch > t.id) "
  "      FROM t WHERE t.id IS NOT NULL) SELECT id FROM t WHERE id IS NOT NULL LOOP "
  /* SKIP LOCKED: a batch locked by another fill is being filled; one
   * locked by a member's end gets a NOTIFY from the trigger after that
   * commit, and the next claim fills it. So a fill never waits, and never
   * takes part in a deadlock. */
  "    PERFORM 1 FROM jobq_batches WHERE id = b FOR UPDATE SKIP LOCKED; "
  "    CONTINUE WHEN NOT FOUND; "
  "    SELECT max_running - (SELECT count(*) FROM jobq_jobs WHERE batch = b AND "
  "      state IN (0, 1)) INTO slots FROM jobq_batches WHERE id = b; "
  "    IF slots > 0 THEN "
  "      UPDATE jobq_jobs SET state = 0 WHERE seq IN (SELECT seq FROM jobq_jobs WHERE "
  "        state = 6 AND batch = b AND run_at <= now ORDER BY priority DESC, seq LIMIT slots); "
  "      GET DIAGNOSTICS k = ROW_COUNT; "
  "      moved := moved + k; "
  "    END IF; "
  "  END LOOP; "
  "  RETURN moved; "
  "END $f$;",
  /* slot 3 (3 -> 4): cron schedules (pg_cron.c), by name; shared stats
   * (pg_stats.c): per kind the counters (JOBQ_STAT_*) and duration buckets
   * as arrays, their sum and the moving average, and per kind and store
   * (its token) what its workers run until an expiry it renews; retention
   * by kind (pg_retention.c): the finished jobs of a kind by finish time.
   * A finish changes state, so it is never a HOT update and writes an entry
   * in every index whose predicate holds: this one adds one entry per
   * finished job, for a pruning pass that reads only what it can delete. */
  "CREATE TABLE jobq_cron ("
  "  name text PRIMARY KEY,"
  "  expr text NOT NULL,"
  "  tz text NOT NULL,"
  "  kind text NOT NULL,"
  "  payload text NOT NULL,"
  "  owner text,"
  "  priority integer NOT NULL DEFAULT 0,"
  "  max_attempts integer NOT NULL DEFAULT 0,"
  "  missed integer NOT NULL DEFAULT 0,"
  "  next_at bigint NOT NULL,"
  "  last_run bigint NOT NULL DEFAULT 0"
  ");"
  "CREATE TABLE jobq_stats ("
  "  kind text PRIMARY KEY,"
  "  counts bigint[] NOT NULL,"
  "  hist bigint[] NOT NULL,"
  "  sum_ms double precision NOT NULL DEFAULT 0,"
  "  avg_ms double precision NOT NULL DEFAULT 0"
  ");"
  "CREATE TABLE jobq_stats_live ("
  "  kind text NOT NULL,"
  "  token bigint NOT NULL,"
  "  concurrency integer NOT NULL,"
  "  started bigint[],"
  "  until bigint NOT NULL,"
  "  PRIMARY KEY (kind, token)"
  ");"
  "CREATE INDEX jobq_jobs_finished ON jobq_jobs (kind, finished_at, seq) WHERE state IN (2, 3, 4);",
  /* slot 4 (4 -> 5): the webhook outbox (pg_outbox.c). A job's subscriptions are
   * the nullable jobs.webhooks (no default: adding it rewrites nothing).
   * Deliveries are keyed by their id "<job>:<hook>:<event>" in byte order
   * (COLLATE "C"), so a list pages job by job as SQLite's does whatever the
   * database's collation; claims walk (state, next_at); a job's deliveries
   * (its end, prune) are found by job_id. */
  "ALTER TABLE jobq_jobs ADD COLUMN webhooks text;"
  "CREATE TABLE jobq_outbox ("
  "  id text COLLATE \"C\" PRIMARY KEY,"
  "  job_id text NOT NULL,"
  "  endpoint text NOT NULL,"
  "  url text,"
  "  hook integer NOT NULL,"
  "  event integer NOT NULL,"
  "  flags integer NOT NULL DEFAULT 0,"
  "  state smallint NOT NULL DEFAULT 0,"
  "  attempts integer NOT NULL DEFAULT 0,"
  "  last_status integer NOT NULL DEFAULT 0,"
  "  last_error text,"
  "  created_at bigint NOT NULL,"
  "  next_at bigint NOT NULL,"
  "  updated_at bigint NOT NULL"
  ");"
  "CREATE INDEX jobq_outbox_due ON jobq_outbox (state, next_at);"
  "CREATE INDEX jobq_outbox_job ON jobq_outbox (job_id);"
  "CREATE TABLE jobq_webhook_disabled (url text PRIMARY KEY, disabled_at bigint NOT NULL);"
  /* ... and events shared between processes (pg_events.c). Unlogged: an
   * event is news for listeners that are up now, not a record; skipping
   * the WAL keeps its cost off every change's commit, and a server crash
   * that empties the table loses only news nobody could have read. tx is
   * the writing transaction's id: readers page by it (pg_events.c says
   * why not by seq). */
  "CREATE UNLOGGED TABLE jobq_events ("
  "  seq bigserial PRIMARY KEY,"
  "  tx bigint NOT NULL DEFAULT txid_current(),"
  "  origin bigint NOT NULL,"
  "  job_id text NOT NULL,"
  "  kind text,"
  "  type integer NOT NULL,"
  "  state integer NOT NULL,"
  "  progress integer NOT NULL DEFAULT 0,"
  "  step text,"
  "  attempt integer NOT NULL DEFAULT 0,"
  "  error text,"
  "  result text,"
  "  time bigint NOT NULL"
  ");"
  "CREATE INDEX jobq_events_tx ON jobq_events (tx, seq);"
  "CREATE INDEX jobq_events_time ON jobq_events (time);"
  "CREATE UNLOGGED TABLE jobq_listeners (token bigint PRIMARY KEY, until bigint NOT NULL);",
  /* slot 5 (5 -> 6): a batch's BATCH_DONE event row is written by the
   * trigger that sees the batch's last member end, so in the transaction
   * that ended it: a process that stops right after that commit no longer
   * leaves the other processes without the event. The row's origin is the
   * ending store's token, which the statements that can end a member
   * (finish, cancel, rescue) put in the transaction-local setting
   * jobq.origin (so that store does not hear its own event twice; it tells
   * its own sink after the commit, pg_batch.c); 0 (every listener hears it)
   * when none is set. Written only while a store other than the origin
   * listens, as the statements' own event rows (pg_int.h, PG_EV_LISTENED);
   * its summary is made by the reader (pg_events.c). */
  "CREATE OR REPLACE FUNCTION jobq_batch_member_end() RETURNS trigger LANGUAGE plpgsql "
  "SET search_path FROM CURRENT AS $f$ "
  "DECLARE left_open bigint; o bigint; t bigint; "
  "BEGIN "
  "  UPDATE jobq_batches SET open = open - 1, "
  "    succeeded = succeeded + (NEW.state = 2)::int, "
  "    failed = failed + (NEW.state = 3)::int, "
  "    cancelled = cancelled + (NEW.state = 4)::int, "
  "    errors = CASE WHEN NEW.state = 3 AND jsonb_array_length(errors) < 20 THEN errors || "
  "      jsonb_build_array(jsonb_build_object('jobId', NEW.id, 'error', "
  "      coalesce(NEW.error, 'failed'))) ELSE errors END, "
  "    finished_at = CASE WHEN open = 1 THEN greatest(coalesce(NEW.finished_at, 1), 1) "
  "      ELSE finished_at END, "
  "    last_job = CASE WHEN open = 1 THEN NEW.id ELSE last_job END "
  "  WHERE id = NEW.batch RETURNING open INTO left_open; "
  "  IF left_open > 0 AND EXISTS (SELECT 1 FROM jobq_jobs WHERE batch = NEW.batch AND "
  "      state = 6) THEN "
  "    PERFORM pg_notify('jobq_' || current_schema(), ''); "
  "  END IF; "
  "  IF left_open = 0 THEN "
  "    o := coalesce(nullif(current_setting('jobq.origin', true), '')::bigint, 0); "
  "    t := (extract(epoch FROM clock_timestamp()) * 1000)::int8; "
  "    IF EXISTS (SELECT 1 FROM jobq_listeners WHERE token <> o AND until > t) THEN "
  "      INSERT INTO jobq_events (origin, job_id, kind, type, state, progress, step, attempt, "
  "        error, result, time) VALUES (o, NEW.id, NEW.kind, 10, NEW.state, 0, NEW.batch, 0, "
  "        NULL, NULL, t); "
  "      PERFORM pg_notify('jobq_' || current_schema() || '_ev', ''); "
  "    END IF; "
  "  END IF; "
  "  RETURN NULL; "
  "END $f$;"
  /* ... and the queued jobs (held ones too) in seq order, for lists by
   * state: jobq_list(state queued) walked the primary key from the oldest
   * job, through every finished one, to its first queued job (milliseconds
   * per call with 20,000 finished jobs, a scan of the table with many
   * more). One more index entry per submit and per retry. */
  "CREATE INDEX jobq_jobs_queued ON jobq_jobs (seq) WHERE state IN (0, 6);",
  /* slot 6 (6 -> 7): jobq_jobs_run_at serves the next-due reads only
   * (pg_read.c, which say "state + 0 = 0"): a claim ("state = 0") cannot
   * match its predicate. The planner chose it for claims whenever its
   * statistics saw few queued rows (a new schema before its first analyze,
   * a backlog that came after the last one) and then read every due row of
   * the kind and sorted them, for each claim: 20 ms a claim with 100,000
   * jobs queued, four times what the claims and finishes of a drain cost
   * otherwise. The claim index (kind, priority DESC, seq) gives the claim's
   * order, and its walk stops at the claim's limit, whatever the
   * statistics say. */
  "DROP INDEX jobq_jobs_run_at;"
  "CREATE INDEX jobq_jobs_run_at ON jobq_jobs (kind, run_at) WHERE state + 0 = 0;",
};

static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message; /* NOTICEs ("schema already exists") are not the host's business */
}

static int schema_version(pg_store *s, PGconn *c, int *out) {
  PGresult *r = NULL;
  int rc = jobq__pg_exec(s, c, "SELECT to_regclass('jobq_meta') IS NOT NULL", 0, NULL,
                         "cannot read the schema", &r);
  if (rc) return rc;
  int has = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  *out = 0;
  if (!has) return 0;
  rc = jobq__pg_exec(s, c, "SELECT value FROM jobq_meta WHERE key = 'schema_version'", 0, NULL,
                     "cannot read the schema version", &r);
  if (rc) return rc;
  if (PQntuples(r) == 1) *out = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  if (*out < 1)
    return jobq__err(JOBQ_ECORRUPT,
                     "postgres storage '%.200s': schema %s has a jobq_meta table without a valid "
                     "schema version: it was not made by libjobq; it was not changed",
                     s->shown, s->schema);
  return 0;
}

const char *jobq__pg_migration(int i) {
  return i >= 0 && i < PG_SCHEMA_VERSION ? migrations[i] : NULL;
}

static int migrate(pg_store *s, PGconn *c) {
  int rc, v = 0;
  const char *p[2] = {s->schema, NULL};
  /* A schema at this version needs no write at all: a read-only
   * connection (a replica for status reads, default_transaction_read_only)
   * opens it, where CREATE SCHEMA IF NOT EXISTS would be refused. Anything
   * else (missing, older, newer, unreadable) takes the locked path. */
  if (schema_version(s, c, &v) == 0 && v == PG_SCHEMA_VERSION) return 0;
  v = 0;
  if ((rc = jobq__pg_begin(s, c))) return rc;
  /* One process migrates at a time; the others wait here, then find the
   * schema made. */
  if ((rc = jobq__pg_exec(s, c, "SELECT pg_advisory_xact_lock(hashtext('jobq:' || $1))", 1, p,
                          "cannot lock the schema for its migration", NULL)))
    goto fail;
  char *ident = PQescapeIdentifier(c, s->schema, strlen(s->schema));
  if (ident == NULL) {
    rc = jobq__pg_fail(s, c, NULL, "cannot quote the schema name");
    goto fail;
  }
  char sql[160];
  snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", ident);
  PQfreemem(ident);
  if ((rc = jobq__pg_exec(s, c, sql, 0, NULL, "cannot create the schema", NULL))) goto fail;
  if ((rc = schema_version(s, c, &v))) goto fail;
  if (v > PG_SCHEMA_VERSION) {
    rc = jobq__err(JOBQ_EVERSION,
                   "postgres storage '%.200s': schema %s has libjobq schema version %d; this "
                   "libjobq (%s) knows up to %d. Upgrade libjobq; the schema was not changed.",
                   s->shown, s->schema, v, JOBQ_VERSION_STRING, PG_SCHEMA_VERSION);
    goto fail;
  }
  for (; v < PG_SCHEMA_VERSION; v++) {
    if ((rc = jobq__pg_exec(s, c, migrations[v], 0, NULL, "cannot migrate the schema", NULL)))
      goto fail;
    char ver[24];
    const char *vp[1] = {jobq__pg_i64(ver, v + 1)};
    if ((rc = jobq__pg_exec(s, c,
                            "INSERT INTO jobq_meta (key, value) VALUES ('schema_version', $1) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            1, vp, "cannot record the schema version", NULL)))
      goto fail;
  }
  return jobq__pg_commit(s, c);
fail:
  jobq__pg_rollback(c);
  return rc;
}

int jobq__pg_connect(pg_store *s, int do_migrate, PGconn **out) {
  *out = NULL;
  PGconn *c = PQconnectdb(s->conninfo);
  if (c == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    /* libpq's lines on one line: "...failed: Connection refused Is the server..." */
    char msg[300];
    size_t o = 0;
    for (const char *p = PQerrorMessage(c); *p && o < sizeof msg - 1; p++) {
      int space = *p == '\n' || *p == '\t' || *p == ' ';
      if (space && (o == 0 || msg[o - 1] == ' ')) continue;
      msg[o++] = space ? ' ' : *p;
    }
    while (o && msg[o - 1] == ' ') o--;
    msg[o] = '\0';
    PQfinish(c);
    return jobq__err(JOBQ_EIO, "postgres storage '%.200s': cannot connect: %s", s->shown, msg);
  }
  PQsetNoticeProcessor(c, quiet, NULL);
  char *ident = PQescapeIdentifier(c, s->schema, strlen(s->schema));
  if (ident == NULL) {
    int rc = jobq__pg_fail(s, c, NULL, "cannot quote the schema name");
    PQfinish(c);
    return rc;
  }
  /* The queue's tables are small and hot (cached): at the default
   * random_page_cost (4, disks that seek) the planner joined a batch of
   * finishes to the running jobs by a hash over a scan of them all (or of
   * the whole table) instead of by their index, a cost that grew with the
   * number of running jobs and processes. 1.1 is what PostgreSQL's
   * documentation suggests for data in cache or on SSDs; a lower value the
   * role or the URL's options set is kept. Session state, like the
   * search_path: through a transaction-mode PgBouncer it may not hold,
   * which costs speed only. Both in one round trip (simple protocol). */
  char sql[400];
  snprintf(sql, sizeof sql,
           "SET search_path TO %s; SELECT set_config('random_page_cost', '1.1', false) "
           "WHERE current_setting('random_page_cost')::float8 > 1.1",
           ident);
  PQfreemem(ident);
  int rc = jobq__pg_exec(s, c, sql, 0, NULL, "cannot select the schema", NULL);
  if (rc == 0 && do_migrate) rc = migrate(s, c);
  if (rc) {
    PQfinish(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* ---- the pool ---- */

int jobq__pg_acquire(pg_store *s, PGconn **out) {
  uv_mutex_lock(&s->mu);
  pg_conn *slot = NULL;
  for (;;) {
    /* a connected idle one first, else an empty slot */
    for (int i = 0; i < s->pool && slot == NULL; i++)
      if (!s->conns[i].busy && s->conns[i].c) slot = &s->conns[i];
    for (int i = 0; i < s->pool && slot == NULL; i++)
      if (!s->conns[i].busy) slot = &s->conns[i];
    if (slot) break;
    uv_cond_wait(&s->cv, &s->mu);
  }
  slot->busy = 1;
  PGconn *c = slot->c;
  /* A connection the server ended while it sat idle (a restart,
   * pg_terminate_backend) has the server's goodbye and EOF waiting on its
   * socket: reading them (libpq's socket does not block) marks it bad, so
   * that it is replaced now rather than failing the caller's statement. */
  if (c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE)
    PQconsumeInput(c);
  if (c && PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    c = slot->c = NULL;
    slot->n_prep = 0;
  }
  int64_t wait_until = s->retry_at;
  uv_mutex_unlock(&s->mu);
  int rc = 0;
  if (c == NULL) {
    if (mono_ms() < wait_until) {
      rc = jobq__err(JOBQ_EIO,
                     "postgres storage '%.200s': the server could not be reached a moment ago; "
                     "the next try is in %" PRId64 " ms",
                     s->shown, wait_until - mono_ms());
    } else {
      rc = jobq__pg_connect(s, 0, &c);
    }
  }
  uv_mutex_lock(&s->mu);
  if (rc) {
    slot->busy = 0;
    if (wait_until == s->retry_at && mono_ms() >= s->retry_at) {
      /* this call's own failure to connect: back off (doubling, up to 5 s) */
      s->retry_at = mono_ms() + s->backoff_ms;
      s->backoff_ms = s->backoff_ms * 2 > 5000 ? 5000 : s->backoff_ms * 2;
    }
    uv_cond_signal(&s->cv);
  } else {
    if (slot->c != c) slot->n_prep = 0; /* a new connection prepared nothing */
    slot->c = c;
    s->backoff_ms = 50;
    s->retry_at = 0;
  }
  uv_mutex_unlock(&s->mu);
  if (rc == 0) *out = c;
  return rc;
}

void jobq__pg_release(pg_store *s, PGconn *c) {
  uv_mutex_lock(&s->mu);
  for (int i = 0; i < s->pool; i++) {
    if (s->conns[i].c != c || !s->conns[i].busy) continue;
    s->conns[i].busy = 0;
    /* A connection left inside a transaction (a failure between BEGIN and
     * ROLLBACK) or broken is not lent again as it is. */
    if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE) {
      PQfinish(c);
      s->conns[i].c = NULL;
      s->conns[i].n_prep = 0;
    }
    break;
  }
  uv_cond_signal(&s->cv);
  uv_mutex_unlock(&s->mu);
}

/* ---- rows ---- */

int64_t jobq__pg_int(PGresult *res, int r, int c) {
  if (PQgetisnull(res, r, c)) return 0;
  return strtoll(PQgetvalue(res, r, c), NULL, 10);
}

char *jobq__pg_text(PGresult *res, int r, int c) {
  if (PQgetisnull(res, r, c)) return NULL;
  return jobq__strdup(PQgetvalue(res, r, c));
}

int jobq__pg_row_to_job(PGresult *res, int r, jobq_storage_job *out, int64_t *seq) {
  memset(out, 0, sizeof *out);
  if (seq) *seq = jobq__pg_int(res, r, 0);
  snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, r, 1));
  out->state = (int)jobq__pg_int(res, r, 3);
  if (out->state == PG_HELD) out->state = JOBQ_QUEUED; /* held: a queued member of a batch */
  out->priority = (int)jobq__pg_int(res, r, 4);
  out->run_at = jobq__pg_int(res, r, 5);
  out->attempts = (int)jobq__pg_int(res, r, 6);
  out->max_attempts = (int)jobq__pg_int(res, r, 7);
  out->progress = (int)jobq__pg_int(res, r, 8);
  out->cancel_requested = PQgetvalue(res, r, 9)[0] == 't';
  out->created_at = jobq__pg_int(res, r, 10);
  out->started_at = jobq__pg_int(res, r, 11);
  out->finished_at = jobq__pg_int(res, r, 12);
  out->dedupe_ttl_ms = jobq__pg_int(res, r, 19);
  out->position = -1;
  struct { int col; char **dst; } t[] = {{2, &out->kind},   {13, &out->owner}, {14, &out->payload},
                                         {15, &out->step},  {16, &out->result}, {17, &out->error},
                                         {18, &out->dedupe_key}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    if (PQgetisnull(res, r, t[i].col)) continue;
    if ((*t[i].dst = jobq__strdup(PQgetvalue(res, r, t[i].col))) == NULL) goto nomem;
  }
  /* attempt_log holds the attempts that ended with an error, as [started,
   * finished, error] (as SQLite's does); a running or succeeded attempt is
   * described by started_at / finished_at alone. */
  json_t *a = PQgetisnull(res, r, 20) ? NULL : json_loads(PQgetvalue(res, r, 20), 0, NULL);
  size_t nf = json_is_array(a) ? json_array_size(a) : 0;
  size_t n = (size_t)(out->attempts > 0 ? out->attempts : 0);
  if (n < nf) n = nf;
  if (n) {
    out->attempt_log = calloc(n, sizeof *out->attempt_log);
    if (out->attempt_log == NULL) {
      json_decref(a);
      goto nomem;
    }
    out->n_attempt_log = (int)n;
    for (size_t i = 0; i < nf; i++) {
      json_t *e = json_array_get(a, i);
      out->attempt_log[i].started_at = json_integer_value(json_array_get(e, 0));
      out->attempt_log[i].finished_at = json_integer_value(json_array_get(e, 1));
      const char *err = json_string_value(json_array_get(e, 2));
      if (err && (out->attempt_log[i].error = jobq__strdup(err)) == NULL) {
        json_decref(a);
        goto nomem;
      }
    }
    if (n > nf) {
      out->attempt_log[n - 1].started_at = out->started_at;
      out->attempt_log[n - 1].finished_at = out->state == JOBQ_RUNNING ? 0 : out->finished_at;
    }
  }
  json_decref(a);
  return 0;
nomem:
  jobq_storage_job_clear(out);
  return -1;
}

/* ---- array parameters ---- */

int jobq__pg_arr_text(const char *const *v, size_t n, char **out) {
  size_t cap = 3;
  for (size_t i = 0; i < n; i++) cap += v[i] ? 2 * strlen(v[i]) + 3 : 5;
  char *b = malloc(cap);
  if (b == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  size_t o = 0;
  b[o++] = '{';
  for (size_t i = 0; i < n; i++) {
    if (i) b[o++] = ',';
    if (v[i] == NULL) {
      memcpy(b + o, "NULL", 4);
      o += 4;
      continue;
    }
    b[o++] = '"';
    for (const char *p = v[i]; *p; p++) {
      if (*p == '"' || *p == '\\') b[o++] = '\\';
      b[o++] = *p;
    }
    b[o++] = '"';
  }
  b[o++] = '}';
  b[o] = '\0';
  *out = b;
  return 0;
}

int jobq__pg_arr_i64(const int64_t *v, size_t n, char **out) {
  char *b = malloc(3 + n * 21);
  if (b == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  size_t o = 0;
  b[o++] = '{';
  for (size_t i = 0; i < n; i++) o += (size_t)sprintf(b + o, "%s%" PRId64, i ? "," : "", v[i]);
  b[o++] = '}';
  b[o] = '\0';
  *out = b;
  return 0;
}

int jobq__pg_miss(pg_store *s, PGconn *c, const char *id, int *out_state) {
  PGresult *r = NULL;
  const char *p[1] = {id};
  int rc = jobq__pg_exec(s, c, "SELECT 1 FROM jobq_jobs WHERE id = $1", 1, p, "cannot read a job", &r);
  if (rc) return rc;
  *out_state = PQntuples(r) ? JOBQ_ESTATE : JOBQ_ENOTFOUND;
  PQclear(r);
  return 0;
}

/* ---- open, close ---- */

static void pg_free(pg_store *s) {
  jobq__pg_retention_free(s);
  if (s->conns)
    for (int i = 0; i < s->pool; i++)
      if (s->conns[i].c) PQfinish(s->conns[i].c);
  free(s->conns);
  free(s->conninfo);
  free(s->shown);
  free(s->schema);
  free(s->channel);
  jobq__pg_quotas_free(s);
  free(s);
}

/* With JOBQ_PG_COUNTS naming a file, a store appends one line to it at its
 * close: what it asked of the server (tests/bench/pg_bench.sh adds up the
 * lines of every process into figures per 1,000 jobs). One write() of an
 * O_APPEND file, so the lines of several processes do not mix. */
static void counts_write(pg_store *s) {
  const char *path = getenv("JOBQ_PG_COUNTS");
  if (path == NULL || *path == '\0') return;
  char line[256];
  int n = snprintf(line, sizeof line,
                   "claims %" PRIu64 " empty %" PRIu64 " claimed %" PRIu64 " fills %" PRIu64
                   " next_due %" PRIu64 " finishes %" PRIu64 "\n",
                   (uint64_t)s->n_claims, (uint64_t)s->n_empty, (uint64_t)s->n_claimed,
                   (uint64_t)s->n_fills, (uint64_t)s->n_next, (uint64_t)s->n_finishes);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (n > 0 && write(fd, line, (size_t)n) != n) {
    /* a benchmark aid: nothing to report to */
  }
  close(fd);
}

static void pg_close(void *st) {
  pg_store *s = st;
  counts_write(s);
  jobq__pg_events_stop(s);
  jobq__pg_notify_stop(s);
  jobq__pg_finish_async_stop(s);
  jobq__pg_leader_stop(s);
  uv_mutex_destroy(&s->lmu);
  uv_mutex_destroy(&s->fa_mu);
  uv_cond_destroy(&s->fa_cv);
  uv_mutex_destroy(&s->mu);
  uv_cond_destroy(&s->cv);
  uv_mutex_destroy(&s->nmu);
  pg_free(s);
}

static int pg_open(const char *url, void **out) {
  pg_store *s = calloc(1, sizeof *s);
  if (s == NULL) return jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  s->wake_fd[0] = s->wake_fd[1] = -1;
  s->ev_wake[0] = s->ev_wake[1] = -1;
  s->token = jobq__pg_new_token(s);
  s->backoff_ms = 50;
  int rc = parse_url(s, url);
  if (rc == 0 && (s->conns = calloc((size_t)s->pool, sizeof *s->conns)) == NULL)
    rc = jobq__err(JOBQ_ENOMEM, "postgres storage: out of memory");
  if (rc) {
    pg_free(s);
    return rc;
  }
  /* The first connection migrates the schema and joins the pool. */
  PGconn *c = NULL;
  if ((rc = jobq__pg_connect(s, 1, &c))) {
    pg_free(s);
    return rc;
  }
  s->conns[0].c = c;
  if (uv_mutex_init(&s->mu) || uv_cond_init(&s->cv) || uv_mutex_init(&s->nmu) ||
      uv_mutex_init(&s->fa_mu) || uv_cond_init(&s->fa_cv) || uv_mutex_init(&s->lmu)) {
    pg_free(s);
    return jobq__err(JOBQ_ENOMEM, "postgres storage: cannot create a lock");
  }
  *out = s;
  return 0;
}

static jobq_storage_ops pg_ops_of(const char *scheme) {
  jobq_storage_ops o = JOBQ_STORAGE_OPS_INIT;
  o.scheme = scheme;
  o.open = pg_open;
  o.close = pg_close;
  o.insert = jobq__pg_insert;
  o.claim = jobq__pg_claim;
  o.finish = jobq__pg_finish;
  o.progress = jobq__pg_progress;
  o.cancel = jobq__pg_cancel;
  o.get = jobq__pg_get;
  o.list = jobq__pg_list;
  o.next_run_at = jobq__pg_next_run_at;
  o.heartbeat = jobq__pg_heartbeat;
  o.rescue = jobq__pg_rescue;
  o.set_notify = jobq__pg_set_notify;
  o.finish_async = jobq__pg_finish_async;
  o.checkpoint = jobq__pg_checkpoint;
  o.checkpoint_get = jobq__pg_checkpoint_get;
  o.prune = jobq__pg_prune;
  o.get_by_key = jobq__pg_get_by_key;
  o.cron_put = jobq__pg_cron_put;
  o.cron_del = jobq__pg_cron_del;
  o.cron_list = jobq__pg_cron_list;
  o.cron_fire = jobq__pg_cron_fire;
  o.cron_fire_hooked = jobq__pg_cron_fire_hooked;
  o.stats_add = jobq__pg_stats_add;
  o.stats_read = jobq__pg_stats_read;
  o.prune_kind = jobq__pg_prune_kind;
  o.set_quotas = jobq__pg_set_quotas;
  o.rate_window = jobq__pg_rate_window;
  o.batch_insert = jobq__pg_batch_insert;
  o.batch_get = jobq__pg_batch_get;
  o.set_batch_sink = jobq__pg_set_batch_sink;
  o.insert_hooked = jobq__pg_insert_hooked;
  o.outbox_claim = jobq__pg_outbox_claim;
  o.outbox_done = jobq__pg_outbox_done;
  o.outbox_list = jobq__pg_outbox_list;
  o.outbox_counts = jobq__pg_outbox_counts;
  o.outbox_redeliver = jobq__pg_outbox_redeliver;
  o.webhook_enable = jobq__pg_webhook_enable;
  o.set_event_sink = jobq__pg_set_event_sink;
  return o;
}

static jobq_storage_ops pg_ops[2];
static uv_once_t pg_once = UV_ONCE_INIT;

static void make_ops(void) {
  pg_ops[0] = pg_ops_of("postgres");
  pg_ops[1] = pg_ops_of("postgresql");
}

JOBQ_API int jobq_postgres_register(void) {
  uv_once(&pg_once, make_ops);
  for (int i = 0; i < 2; i++) {
    int rc = jobq_storage_register(&pg_ops[i]);
    /* registered already (by an earlier call, or libjobq's dlopen): fine,
     * when it is this very table */
    if (rc == JOBQ_EEXIST) continue;
    if (rc) return rc;
  }
  return 0;
}
