/* What the layer-1 storage conformance tests (test_conf_insert.c,
 * test_conf_claim.c, test_conf_finish.c, test_conf_progress.c,
 * test_conf_read.c, test_conf_lease.c, test_conf_stats.c) share: every backend through its
 * vtable (include/jobq/storage.h), looked up by URL as the core does. Each
 * test runs once per row of conf_backends[] (see conformance.h). Times are
 * explicit "now" values, so nothing here depends on the machine's speed. */
#ifndef JOBQ_TESTS_CONF_STORAGE_H
#define JOBQ_TESTS_CONF_STORAGE_H

#include "conformance.h"

#define T CONF_T0

#define FIN_OK ((conf_fin){JOBQ_OUTCOME_SUCCEEDED, NULL, NULL, 0, 0, NULL})

static inline conf_fin fin_of(int outcome, const char *error) {
  conf_fin f = {0};
  f.outcome = outcome;
  f.error = error;
  return f;
}

/* Claims the one queued job of kind at now; returns its attempt. */
static inline int claim_kind(conf_store *s, const char *kind, int64_t now, const char *want) {
  const char *kinds[] = {kind};
  conf_claim cl = {0};
  cl.kinds = kinds;
  cl.n_kinds = 1;
  cl.now = now;
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  size_t n = cs_claim_req(s, cl, &j);
  CK(n == 1, "claim of kind %s at %" PRId64 " found nothing", kind, now);
  if (want) CK_STR(j.id, want);
  int att = j.attempts;
  jobq_storage_job_clear(&j);
  return att;
}

#endif
