/* What every backend says when a batch is done (jobq/storage.h,
 * batch_insert): the summary JSON, built one way for all of them. */
#ifndef JOBQ_STORAGE_BATCH_H
#define JOBQ_STORAGE_BATCH_H

#include "jobq/storage.h"

/* {"batchId", "total", "succeeded", "failed", "cancelled", "errors":
 * [{"jobId", "error"}]}, malloc'ed; NULL on out of memory. */
char *jobq__batch_summary(const jobq_storage_batch *b);

#endif
