/* What the HTTP providers share: their configuration (base URL, key,
 * timeouts, retries) and one request in flight per stage run, aborted when
 * the job is cancelled. */
#ifndef JOBQ_STAGES_HTTPPROV_H
#define JOBQ_STAGES_HTTPPROV_H

#include "net/http.h"
#include "stages/stage_int.h"

typedef struct jobq__httpcfg {
  const char *provider;   /* "openai": in sentences */
  char *base_url;         /* without a trailing slash */
  char *api_key;          /* a secret: never in a sentence */
  char *ca_file;
  long long timeout_ms, connect_timeout_ms, max_tries, backoff_base_ms, backoff_max_ms,
      retry_after_max_ms, max_response;
} jobq__httpcfg;

/* Reads base_url (default def_base), api_key / api_key_env (default
 * env_default; required when need_key), timeout_ms, connect_timeout_ms,
 * max_tries, backoff_base_ms, backoff_max_ms, retry_after_max_ms,
 * max_response_bytes, ca_file. JOBQ_ECONFIG with a sentence. */
int jobq__httpcfg_parse(const json_t *cfg, const char *module, const char *provider,
                     const char *def_base, const char *env_default, int need_key,
                     jobq__httpcfg *out);
void jobq__httpcfg_free(jobq__httpcfg *c);
/* Fills o's provider, timeouts, retries and secrets from c. */
void jobq__httpcfg_opts(const jobq__httpcfg *c, jobq__http_opts *o);

/* One request of a stage run: started with jobq__httpreq_start, its done(hr,
 * resp) is called on the loop; a cancel of the job aborts it (done then
 * sees JOBQ_ECANCELLED). */
typedef struct jobq__httpreq jobq__httpreq;
typedef void (*jobq__httpreq_fn)(jobq__httpreq *hr, const jobq__http_resp *resp);
struct jobq__httpreq {
  jobq_stage_t *st;
  jobq__http_req *req;
  jobq__httpreq_fn done;
  void *ud;
};
/* 0, or fails the stage and returns < 0. */
int jobq__httpreq_start(jobq__httpreq *hr, jobq_stage_t *st, const jobq__http_opts *o, jobq__httpreq_fn done,
                     void *ud);
/* The usual failure of a request: cancelled (not retryable), the provider's
 * HTTP error (429 and 5xx retryable, other 4xx not), network and timeouts
 * (retryable). Fails the stage with resp->error. */
void jobq__httpreq_fail(jobq_stage_t *st, const jobq__httpcfg *c, const jobq__http_resp *resp);
/* (A provider's error message in an error body becomes part of resp->error
 * in lib/net: jobq__http_snippet.) */

#endif
