#include "util/state.h"

#include "jobq.h"

int jobq__state_end_event(int state) {
  switch (state) {
    case JOBQ_SUCCEEDED: return JOBQ_EVENT_SUCCEEDED;
    case JOBQ_FAILED: return JOBQ_EVENT_FAILED;
    case JOBQ_CANCELLED: return JOBQ_EVENT_CANCELLED;
    default: return JOBQ_EVENT_RETRYING; /* queued again */
  }
}
