/*
 * libjobq's PostgreSQL storage backend, in a library of its own:
 * libjobq-pg.so.0 (pkg-config libjobq-pg), so that a host that stores its
 * queue in SQLite or in memory never needs libpq.
 *
 * Storage URL: postgres://user:pass@host:port/db?schema=NAME&pool=N&...
 * (libpq's connection URI, "postgresql://" too). docs/postgres.md says what
 * the backend does and what it does not do yet.
 */
#ifndef JOBQ_POSTGRES_H
#define JOBQ_POSTGRES_H

#include "../jobq.h"

#include <stddef.h>

/* libpq's connection: PGconn is libpq's typedef of struct pg_conn. Named by
 * its struct tag so that this header needs neither libpq's headers nor
 * their include path, and never clashes with libpq-fe.h's typedef (in any
 * C standard): a PGconn * passes as it is. */
struct pg_conn;

#ifdef __cplusplus
extern "C" {
#endif

/* Makes the "postgres" and "postgresql" URL schemes available to every
 * queue opened afterwards (jobq_options_set_storage). Idempotent: a second
 * call returns 0. libjobq calls it by itself (through dlopen of
 * libjobq-pg.so.0) the first time it meets such a URL, so a host only calls
 * it when it links libjobq-pg statically or wants the failure early. 0, or
 * a negative JOBQ_E* code with jobq_last_error(). */
JOBQ_API int jobq_postgres_register(void);

/* Submits a job on the host's own libpq connection (a PGconn *), inside the transaction the
 * host has open on it (BEGIN done, COMMIT not yet): the job exists when the
 * host commits, and never when it rolls back. Workers wake at the commit
 * (its NOTIFY is part of the transaction). schema is the queue's (the URL's
 * schema parameter; NULL: "jobq"), and a queue must have been opened on it
 * once (it creates the tables). opts as jobq_submit's, less webhooks. The
 * id (JOBQ_ID_SIZE bytes with its NUL) goes to out_id, out_cap at least
 * JOBQ_ID_SIZE. Never commits, never rolls back the host's transaction: a
 * failure leaves it as it was before the call (a savepoint). Returns 0 (a
 * new job), 1 (a live dedupe key: out_id is the existing job), or a
 * negative JOBQ_E* code with jobq_last_error(); JOBQ_ESTATE when the
 * connection has no open transaction. Not thread-safe on one conn (libpq's
 * rule); distinct connections from any thread. */
JOBQ_API int jobq_pg_submit(struct pg_conn *conn, const char *schema, const char *kind,
                            const char *payload_json, const jobq_submit_opts_t *opts,
                            char *out_id, size_t out_cap);

#ifdef __cplusplus
}
#endif
#endif /* JOBQ_POSTGRES_H */
