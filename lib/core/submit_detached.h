/* A job made outside any queue (libjobq-pg's jobq_pg_submit, which inserts
 * on the host's own database connection): the checks and defaults of
 * jobq_submit, less what only a queue knows. */
#ifndef JOBQ_CORE_SUBMIT_DETACHED_H
#define JOBQ_CORE_SUBMIT_DETACHED_H

#include "jobq/storage.h"
#include "util/private.h"

#include <stdint.h>

/* Fills rec (borrowing kind, payload and the strings of so; a new id made
 * at now) and *force, as jobq_submit would with a queue of default
 * options: the kind's name, the payload's JSON and its size (the default
 * limit), the run time. Webhook subscriptions need a queue's outbox and are
 * refused (JOBQ_ENOTSUP). 0, or a code with a sentence that starts with
 * fn. */
JOBQ_PRIVATE int jobq__submit_prepare_detached(const char *fn, const char *kind,
                                               const char *payload,
                                               const jobq_submit_opts_t *so, int64_t now,
                                               jobq_storage_job *rec, int *force);

#endif
