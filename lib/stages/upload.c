/* The upload module's shared parts: which file, which key. */
#include "stages/upload.h"
#include "util/mem.h"
#include "util/err.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jobq__upload_prefix_check(const char *who, const char *prefix) {
  if (prefix == NULL || *prefix == '\0') return 0;
  char probe[1100];
  /* "a/b/" is fine as a prefix: check it with a file name after it */
  snprintf(probe, sizeof probe, "%s%s", prefix, prefix[strlen(prefix) - 1] == '/' ? "x" : "");
  if (strlen(prefix) > 1000 || !jobq__path_is_contained(probe))
    return jobq__err(JOBQ_ECONFIG, "%s: \"key_prefix\" '%.100s' escapes the upload directory", who,
                     prefix);
  return 0;
}

int jobq__upload_src_get(jobq_stage_t *st, json_t *in, const char *prefix, jobq__upload_src *out) {
  memset(out, 0, sizeof *out);
  out->file = json_string_value(json_object_get(in, "audioFile"));
  if (out->file == NULL || *out->file == '\0') {
    jobq__stage_failf(st, 0, "the input has no \"audioFile\" to upload");
    return JOBQ_EINVAL;
  }
  const char *fmt = json_string_value(json_object_get(in, "audioFormat"));
  const char *ext = "bin";
  out->content_type = "application/octet-stream";
  if (fmt && strcmp(fmt, "mp3") == 0) ext = "mp3", out->content_type = "audio/mpeg";
  else if (fmt && strcmp(fmt, "wav") == 0) ext = "wav", out->content_type = "audio/wav";
  const char *k = json_string_value(json_object_get(in, "uploadKey"));
  char buf[1200];
  if (k) {
    snprintf(buf, sizeof buf, "%s%s", prefix ? prefix : "", k);
  } else {
    snprintf(buf, sizeof buf, "%s%s.%s", prefix ? prefix : "", jobq_stage_job_id(st), ext);
  }
  if (strlen(buf) > 1024 || !jobq__path_is_contained(buf)) {
    jobq__err(JOBQ_EPATH, "upload key '%.200s' escapes the upload directory", buf);
    jobq__stage_failf(st, 0, "upload key '%.200s' escapes the upload directory (no '..', no leading "
                          "'/', no empty part)", buf);
    return JOBQ_EPATH;
  }
  if ((out->key = jobq__strdup(buf)) == NULL) {
    jobq_stage_fail(st, "out of memory", 1);
    return JOBQ_ENOMEM;
  }
  return 0;
}

int jobq__upload_succeed(jobq_stage_t *st, json_t *in, const char *url) {
  if (json_object_set_new(in, "audioUrl", json_string(url)) != 0) {
    json_decref(in);
    return jobq_stage_fail(st, "out of memory", 1);
  }
  return jobq__stage_succeed_json(st, in);
}
