/* What the upload providers share: the artifact to upload and its key. */
#ifndef JOBQ_STAGES_UPLOAD_H
#define JOBQ_STAGES_UPLOAD_H

#include "stages/stage_int.h"

typedef struct jobq__upload_src {
  const char *file;         /* the input's "audioFile" */
  const char *content_type; /* from "audioFormat": audio/mpeg, audio/wav */
  char *key;                /* malloc'ed: "uploadKey", or prefix + job id + extension */
} jobq__upload_src;

/* Reads the input's artifact and chooses its key. A key that would escape
 * its directory or bucket (absolute, "..", empty parts) fails the stage for
 * good with a sentence naming it. Returns 0, or fails the stage and returns
 * < 0. */
int jobq__upload_src_get(jobq_stage_t *st, json_t *in, const char *prefix, jobq__upload_src *out);
/* Checks a configured key prefix ("" allowed; else a contained path that
 * ends in '/' or not). JOBQ_ECONFIG if it escapes. */
int jobq__upload_prefix_check(const char *module_provider, const char *prefix);
/* Sets in["audioUrl"] = url and succeeds the stage with in (stolen). */
int jobq__upload_succeed(jobq_stage_t *st, json_t *in, const char *url);

#endif
