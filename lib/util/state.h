/* What the core and the storage backends both say about job states. */
#ifndef JOBQ_UTIL_STATE_H
#define JOBQ_UTIL_STATE_H

/* The event that announces the end of an attempt which left its job in
 * state (JOBQ_SUCCEEDED, JOBQ_FAILED, JOBQ_CANCELLED, or JOBQ_QUEUED for a
 * retry): JOBQ_EVENT_SUCCEEDED, _FAILED, _CANCELLED or _RETRYING. The core
 * publishes its own attempts' ends with it, and a backend that shares
 * events between processes writes the same types for other processes. */
int jobq__state_end_event(int state);

#endif
