/* What the built-in backends' get reports as a queued job's position
 * (docs/reference/jobq_job_position.md): exact while fewer than this many
 * due jobs are ahead, an upper bound at or beyond it, so a jobq_get costs
 * at most about this many index steps at any depth. */
#ifndef JOBQ_STORAGE_POSITION_H
#define JOBQ_STORAGE_POSITION_H

#define JOBQ__POSITION_EXACT 1000

#endif
