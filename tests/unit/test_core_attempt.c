/* The attempt state machine (lib/core/attempt.h): every change the diagram
 * at jobq__attempt_state allows is taken, every other one stops the program
 * (assert) instead of leaving an attempt in a state nobody handles. */
#include "testutil.h"
#include "testutil_run.h"

#include "core/attempt.h"

#include <signal.h>
#include <sys/resource.h>

#define N_STATES (JOBQ_ATTEMPT_RELEASED + 1)

static const char *const names[N_STATES] = {"RUNNING",   "FINISHING", "FINISHED", "TIMING_OUT",
                                            "TIMED_OUT", "RELEASING", "RELEASED"};

/* The legal changes, written out apart from the table in attempt.h. */
static int legal(int from, int to) {
  switch (from) {
  case JOBQ_ATTEMPT_RUNNING:
    return to == JOBQ_ATTEMPT_FINISHING || to == JOBQ_ATTEMPT_TIMING_OUT ||
           to == JOBQ_ATTEMPT_RELEASING;
  case JOBQ_ATTEMPT_FINISHING:
    return to == JOBQ_ATTEMPT_FINISHED || to == JOBQ_ATTEMPT_RUNNING;
  case JOBQ_ATTEMPT_TIMING_OUT:
    return to == JOBQ_ATTEMPT_TIMED_OUT || to == JOBQ_ATTEMPT_RUNNING;
  case JOBQ_ATTEMPT_RELEASING:
    return to == JOBQ_ATTEMPT_RELEASED;
  default:
    return 0; /* FINISHED, TIMED_OUT and RELEASED are final */
  }
}

static int pair[2];

static int child_move(void *arg) {
  (void)arg;
  /* An expected abort should not leave a core file behind. */
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(SIGABRT, SIG_DFL);
  jobq_ctx_t ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.state = (jobq__attempt_state)pair[0];
  jobq__attempt_to(&ctx, (jobq__attempt_state)pair[1]);
  return ctx.state == (jobq__attempt_state)pair[1] ? 0 : 3;
}

static void test_attempt_transitions(void **state) {
  (void)state;
  int bad = 0;
  for (int from = 0; from < N_STATES; from++) {
    for (int to = 0; to < N_STATES; to++) {
      pair[0] = from;
      pair[1] = to;
      char why[200];
      int rc = tr_fork_run(child_move, NULL, 10, why, sizeof why);
      int want_ok = legal(from, to);
      if (want_ok ? rc != 0 : rc == 0) {
        fprintf(stderr, "%s -> %s: %s, expected %s\n", names[from], names[to],
                rc == 0 ? "taken" : why, want_ok ? "taken" : "an assertion failure");
        bad++;
      }
    }
  }
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attempt_transitions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
