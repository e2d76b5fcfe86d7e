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

#ifdef __cplusplus
}
#endif
#endif /* JOBQ_POSTGRES_H */
