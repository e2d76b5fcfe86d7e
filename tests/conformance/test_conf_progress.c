/* Storage conformance, layer 1 (the vtable; see conf_storage.h): progress, checkpoints, prune, cancel. */
#include "conf_storage.h"

/* ---- progress, cancel ---------------------------------------------------------------------- */

static void progress_running_attempt_only(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char id[JOBQ_ID_SIZE], q[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_add(&s, T, "q", 0, T + 100000, q);
  jobq__id_new(nope, T);
  cs_claim_expect(&s, T, id);
  CK_OK(s.ops->progress(s.st, id, 1, 30, "step one"));
  jobq_storage_job j;
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 30);
  CK_STR(j.step, "step one");
  jobq_storage_job_clear(&j);
  CK_OK(s.ops->progress(s.st, id, 1, 60, NULL)); /* keeps the step */
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 60);
  CK_STR(j.step, "step one");
  jobq_storage_job_clear(&j);
  /* Not the running attempt, not running, unknown: refused, nothing changes. */
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 2, 90, "wrong attempt"));
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, q, 1, 90, "queued"));
  int rc = s.ops->progress(s.st, nope, 1, 90, "unknown");
  CK(rc == JOBQ_ENOTFOUND || rc == JOBQ_ESTATE,
     "progress of an unknown job returned %d (%s); expected JOBQ_ENOTFOUND (or JOBQ_ESTATE)", rc,
     jobq_err_name(rc));
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 60);
  CK_STR(j.step, "step one");
  jobq_storage_job_clear(&j);
  cs_get(&s, q, T, &j);
  CK_INT(j.progress, 0);
  CK_STR(j.step, NULL);
  jobq_storage_job_clear(&j);
  /* A new attempt starts from 0. */
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "again");
  r.run_at = T;
  r.progress = 60;
  CK_INT(cs_finish(&s, id, 1, T, r), JOBQ_QUEUED);
  CK_INT(cs_claim_expect(&s, T, id), 2);
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 0);
  jobq_storage_job_clear(&j);
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 1, 10, NULL));
  CK_OK(s.ops->progress(s.st, id, 2, 10, NULL));
  CK_INT(cs_finish(&s, id, 2, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_RC(JOBQ_ESTATE, s.ops->progress(s.st, id, 2, 20, NULL));
  cs_close(&s);
}

/* Version 2: a checkpoint belongs to the running attempt, survives a retry
 * (the next attempt reads it), and carries progress and step. */
static void checkpoint_survives_retry(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  CK(s.ops->version >= 2 && s.ops->checkpoint && s.ops->checkpoint_get && s.ops->prune,
     "the backend offers the version 2 members");
  char id[JOBQ_ID_SIZE], q[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, id);
  cs_add(&s, T, "q", 0, T + 100000, q);
  jobq__id_new(nope, T);
  int stage = 7;
  char *out = (char *)"x";
  CK_OK(s.ops->checkpoint_get(s.st, id, &stage, &out));
  CK_INT(stage, -1);
  CK(out == NULL, "no checkpoint: no output");
  CK_RC(JOBQ_ENOTFOUND, s.ops->checkpoint_get(s.st, nope, &stage, &out));
  /* only the running attempt may store one */
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, id, 1, 0, "{\"a\":1}", 20, "one"));
  cs_claim_expect(&s, T, id);
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, id, 2, 0, "{\"a\":1}", 20, "one"));
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, q, 1, 0, "{}", 20, NULL));
  int rc = s.ops->checkpoint(s.st, nope, 1, 0, "{}", 20, NULL);
  CK(rc == JOBQ_ENOTFOUND || rc == JOBQ_ESTATE, "checkpoint of an unknown job: %d", rc);
  CK_OK(s.ops->checkpoint(s.st, id, 1, 0, "{\"a\":1}", 25, "script done"));
  CK_OK(s.ops->checkpoint(s.st, id, 1, 1, "{\"a\":2}", 75, NULL)); /* replaces; keeps the step */
  jobq_storage_job j;
  cs_get(&s, id, T, &j);
  CK_INT(j.progress, 75);
  CK_STR(j.step, "script done");
  jobq_storage_job_clear(&j);
  /* the attempt fails; the next one finds the checkpoint */
  conf_fin r = fin_of(JOBQ_OUTCOME_RETRY, "tts 503");
  r.run_at = T;
  r.progress = 75;
  CK_INT(cs_finish(&s, id, 1, T, r), JOBQ_QUEUED);
  CK_OK(s.ops->checkpoint_get(s.st, id, &stage, &out));
  CK_INT(stage, 1);
  CK_STR(out, "{\"a\":2}");
  free(out);
  CK_INT(cs_claim_expect(&s, T, id), 2);
  CK_OK(s.ops->checkpoint(s.st, id, 2, 2, "{\"a\":3}", 95, "uploaded"));
  CK_OK(s.ops->checkpoint_get(s.st, id, &stage, &out));
  CK_INT(stage, 2);
  CK_STR(out, "{\"a\":3}");
  free(out);
  CK_INT(cs_finish(&s, id, 2, T, FIN_OK), JOBQ_SUCCEEDED);
  CK_RC(JOBQ_ESTATE, s.ops->checkpoint(s.st, id, 2, 3, "{}", 100, NULL));
  cs_close(&s);
}

/* Version 2: prune deletes finished jobs older than the cut, nothing else,
 * and reports their ids. */
static int state_or_gone(conf_store *s, const char *id) {
  jobq_storage_job j;
  memset(&j, 0, sizeof j);
  int rc = s->ops->get(s->st, id, T, &j);
  int st = rc ? rc : j.state;
  jobq_storage_job_clear(&j);
  return st;
}

static void prune_finished_only(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char done_old[JOBQ_ID_SIZE], done_new[JOBQ_ID_SIZE], failed[JOBQ_ID_SIZE], queued[JOBQ_ID_SIZE],
      running[JOBQ_ID_SIZE];
  cs_add(&s, T, "a", 0, 0, done_old);
  cs_add(&s, T, "a", 0, 0, failed);
  cs_add(&s, T, "a", 0, 0, done_new);
  cs_add(&s, T, "a", 0, 0, running);
  cs_add(&s, T, "q", 0, 0, queued);
  cs_claim_expect(&s, T, done_old);
  cs_claim_expect(&s, T, failed);
  cs_claim_expect(&s, T, done_new);
  cs_claim_expect(&s, T, running);
  CK_INT(cs_finish(&s, done_old, 1, T + 10, FIN_OK), JOBQ_SUCCEEDED);
  CK_INT(cs_finish(&s, failed, 1, T + 20, fin_of(JOBQ_OUTCOME_FAILED, "no")), JOBQ_FAILED);
  CK_INT(cs_finish(&s, done_new, 1, T + 1000, FIN_OK), JOBQ_SUCCEEDED);
  char(*ids)[JOBQ_ID_SIZE] = NULL;
  size_t n = 99;
  CK_OK(s.ops->prune(s.st, T + 500, 1000, &ids, &n));
  CK_INT(n, 2);
  CK(ids != NULL, "ids of the pruned jobs");
  int saw_old = 0, saw_failed = 0;
  for (size_t i = 0; i < n; i++) {
    saw_old |= strcmp(ids[i], done_old) == 0;
    saw_failed |= strcmp(ids[i], failed) == 0;
  }
  CK(saw_old && saw_failed, "the two old finished jobs were pruned");
  free(ids);
  CK_INT(state_or_gone(&s, done_old), JOBQ_ENOTFOUND);
  CK_INT(state_or_gone(&s, failed), JOBQ_ENOTFOUND);
  CK_INT(state_or_gone(&s, done_new), JOBQ_SUCCEEDED);
  CK_INT(state_or_gone(&s, running), JOBQ_RUNNING);
  CK_INT(state_or_gone(&s, queued), JOBQ_QUEUED);
  /* max bounds one call; NULL ids is allowed */
  CK_OK(s.ops->prune(s.st, T + 5000, 0, NULL, &n));
  CK_INT(n, 0);
  CK_OK(s.ops->prune(s.st, T + 5000, 10, NULL, &n));
  CK_INT(n, 1);
  CK_INT(state_or_gone(&s, done_new), JOBQ_ENOTFOUND);
  cs_close(&s);
}

static void cancel_each_state(conf_case *c) {
  conf_store s;
  cs_open(c, &s);
  char q[JOBQ_ID_SIZE], d[JOBQ_ID_SIZE], r[JOBQ_ID_SIZE], ok[JOBQ_ID_SIZE], nope[JOBQ_ID_SIZE];
  cs_add(&s, T, "kq", 0, 0, q);
  cs_add(&s, T, "kd", 0, T + 1000, d);
  cs_add(&s, T, "kr", 0, 0, r);
  cs_add(&s, T, "ks", 0, 0, ok);
  jobq__id_new(nope, T);
  const char *kr[] = {"kr", "ks"};
  conf_claim cl = {0};
  cl.kinds = kr;
  cl.n_kinds = 2;
  cl.max = 2;
  cl.now = T;
  jobq_storage_job out[2];
  memset(out, 0, sizeof out);
  CK_INT(cs_claim_req(&s, cl, out), 2);
  jobq_storage_job_clear(&out[0]);
  jobq_storage_job_clear(&out[1]);
  CK_INT(cs_finish(&s, ok, 1, T, FIN_OK), JOBQ_SUCCEEDED);

  /* Queued: cancelled now. */
  int st = -1;
  char *kind = NULL;
  CK_OK(s.ops->cancel(s.st, q, T + 5, &st, &kind));
  CK_INT(st, JOBQ_CANCELLED);
  CK_STR(kind, "kq");
  free(kind);
  jobq_storage_job j;
  cs_get(&s, q, T + 6, &j);
  CK_INT(j.state, JOBQ_CANCELLED);
  CK_STR(j.error, "cancelled");
  CK_INT(j.finished_at, T + 5);
  CK_INT(j.attempts, 0);
  CK_INT(j.position, -1);
  jobq_storage_job_clear(&j);
  /* Queued for later: cancelled too, and never comes due. */
  st = -1;
  CK_OK(s.ops->cancel(s.st, d, T + 5, &st, NULL));
  CK_INT(st, JOBQ_CANCELLED);
  int64_t next = 0;
  CK_OK(s.ops->next_run_at(s.st, NULL, 0, T + 5, &next));
  CK_INT(next, INT64_MAX);
  cs_claim_none(&s, T + 2000);
  /* Running: flagged, still running. */
  st = -1;
  kind = NULL;
  CK_OK(s.ops->cancel(s.st, r, T + 7, &st, &kind));
  CK_INT(st, JOBQ_RUNNING);
  CK_STR(kind, "kr");
  free(kind);
  cs_get(&s, r, T + 7, &j);
  CK_INT(j.state, JOBQ_RUNNING);
  CK_INT(j.cancel_requested, 1);
  CK_INT(j.finished_at, 0);
  jobq_storage_job_clear(&j);
  /* Again while running: still fine. */
  st = -1;
  CK_OK(s.ops->cancel(s.st, r, T + 8, &st, NULL));
  CK_INT(st, JOBQ_RUNNING);
  /* Finished: JOBQ_ESTATE and the state it is in. */
  st = -1;
  kind = NULL;
  CK_RC(JOBQ_ESTATE, s.ops->cancel(s.st, q, T + 9, &st, &kind));
  CK_INT(st, JOBQ_CANCELLED);
  free(kind);
  st = -1;
  kind = NULL;
  CK_RC(JOBQ_ESTATE, s.ops->cancel(s.st, ok, T + 9, &st, &kind));
  CK_INT(st, JOBQ_SUCCEEDED);
  free(kind);
  cs_get(&s, ok, T + 9, &j);
  CK_INT(j.state, JOBQ_SUCCEEDED);
  CK_STR(j.error, NULL);
  jobq_storage_job_clear(&j);
  /* Unknown. */
  st = -1;
  kind = NULL;
  CK_RC(JOBQ_ENOTFOUND, s.ops->cancel(s.st, nope, T, &st, &kind));
  free(kind);
  cs_close(&s);
}

int main(void) {
  static const conf_test tests[] = {
    CONF_TEST(progress_running_attempt_only),
    CONF_TEST(checkpoint_survives_retry),
    CONF_TEST(prune_finished_only),
    CONF_TEST(cancel_each_state),
  };
  return conf_run("storage vtable: progress, checkpoints, prune, cancel", tests, sizeof tests / sizeof tests[0]);
}
