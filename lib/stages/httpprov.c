/* Shared parts of the HTTP providers: configuration, one request per stage
 * run with cancellation, the failure rules. */
#include "stages/httpprov.h"
#include "util/mem.h"
#include "util/err.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jobq__httpcfg_parse(const json_t *cfg, const char *module, const char *provider,
                     const char *def_base, const char *env_default, int need_key,
                     jobq__httpcfg *out) {
  memset(out, 0, sizeof *out);
  out->provider = provider;
  out->timeout_ms = 120000;
  out->connect_timeout_ms = 10000;
  out->max_tries = 4;
  out->backoff_base_ms = 1000;
  out->backoff_max_ms = 30000;
  out->retry_after_max_ms = 60000;
  out->max_response = 64ll << 20;
  const char *base, *ca;
  int rc;
  if ((rc = jobq__cfg_str(cfg, module, "base_url", 0, &base)) ||
      (rc = jobq__cfg_str(cfg, module, "ca_file", 0, &ca)) ||
      (rc = jobq__cfg_int(cfg, module, "timeout_ms", 100, 3600000, &out->timeout_ms)) ||
      (rc = jobq__cfg_int(cfg, module, "connect_timeout_ms", 100, 600000, &out->connect_timeout_ms)) ||
      (rc = jobq__cfg_int(cfg, module, "max_tries", 1, 20, &out->max_tries)) ||
      (rc = jobq__cfg_int(cfg, module, "backoff_base_ms", 1, 600000, &out->backoff_base_ms)) ||
      (rc = jobq__cfg_int(cfg, module, "backoff_max_ms", 1, 3600000, &out->backoff_max_ms)) ||
      (rc = jobq__cfg_int(cfg, module, "retry_after_max_ms", 0, 3600000, &out->retry_after_max_ms)) ||
      (rc = jobq__cfg_int(cfg, module, "max_response_bytes", 1024, 1ll << 32, &out->max_response)))
    return rc;
  if (base == NULL) base = def_base;
  if (base == NULL)
    return jobq__err(JOBQ_ECONFIG, "%s provider '%s': \"base_url\" is required", module, provider);
  if (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)
    return jobq__err(JOBQ_ECONFIG, "%s provider '%s': \"base_url\" must start with http:// or https://",
                     module, provider);
  if (need_key &&
      (rc = jobq__cfg_secret(cfg, module, provider, "api_key", "api_key_env", env_default, &out->api_key)))
    return rc;
  out->base_url = jobq__strdup(base);
  out->ca_file = ca ? jobq__strdup(ca) : NULL;
  if (out->base_url == NULL || (ca && out->ca_file == NULL)) {
    jobq__httpcfg_free(out);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", module);
  }
  size_t n = strlen(out->base_url);
  while (n > 0 && out->base_url[n - 1] == '/') out->base_url[--n] = '\0';
  return 0;
}

void jobq__httpcfg_free(jobq__httpcfg *c) {
  free(c->base_url);
  if (c->api_key) {
    /* a key should not linger in freed memory */
    memset(c->api_key, 0, strlen(c->api_key));
    free(c->api_key);
  }
  free(c->ca_file);
  memset(c, 0, sizeof *c);
}

void jobq__httpcfg_opts(const jobq__httpcfg *c, jobq__http_opts *o) {
  o->provider = c->provider;
  o->timeout_ms = c->timeout_ms;
  o->connect_timeout_ms = c->connect_timeout_ms;
  o->max_tries = (int)c->max_tries;
  o->backoff_base_ms = c->backoff_base_ms;
  o->backoff_max_ms = c->backoff_max_ms;
  o->retry_after_max_ms = c->retry_after_max_ms;
  o->max_response = (size_t)c->max_response;
  o->ca_file = c->ca_file;
}

static void on_cancel(jobq_stage_t *st, void *ud) {
  (void)st;
  jobq__httpreq *hr = ud;
  if (hr->req) jobq__http_abort(hr->req); /* done runs with JOBQ_ECANCELLED */
}

static void on_done(void *ud, const jobq__http_resp *resp) {
  jobq__httpreq *hr = ud;
  hr->req = NULL;
  jobq_stage_on_cancel(hr->st, NULL, NULL);
  hr->done(hr, resp);
}

int jobq__httpreq_start(jobq__httpreq *hr, jobq_stage_t *st, const jobq__http_opts *o, jobq__httpreq_fn done,
                     void *ud) {
  hr->st = st;
  hr->done = done;
  hr->ud = ud;
  hr->req = NULL;
  struct jobq__http *h = jobq__stage_http(st);
  int rc = h ? jobq__http_start(h, o, on_done, hr, &hr->req) : JOBQ_ENOMEM;
  if (rc) {
    jobq__stage_failf(st, 1, "%s: cannot start the request: %s", o->provider, jobq_last_error());
    return rc;
  }
  jobq_stage_on_cancel(st, on_cancel, hr);
  return 0;
}

void jobq__httpreq_fail(jobq_stage_t *st, const jobq__httpcfg *c, const jobq__http_resp *resp) {
  if (resp->rc == JOBQ_ECANCELLED) {
    jobq_stage_fail(st, "cancelled", 0);
    return;
  }
  int retryable = 1;
  if (resp->rc == 0 && resp->status >= 400 && resp->status < 500 && resp->status != 408 &&
      resp->status != 429)
    retryable = 0; /* the same request would be refused again */
  if (resp->rc == JOBQ_ETOOBIG) retryable = 0;
  /* The provider asked for a longer wait than we make within an attempt:
   * give the worker back and run the job when the provider is ready, not
   * counting the attempt (being told to wait is not the job's failure). A
   * wait beyond a day is a plain failure. */
  if (resp->rc == 0 && resp->retry_after_ms >= 0 && resp->retry_after_ms <= INT64_C(86400000)) {
    char msg[1024];
    if (resp->error) snprintf(msg, sizeof msg, "%s", resp->error);
    else snprintf(msg, sizeof msg, "%s: HTTP %ld", c->provider, resp->status);
    jobq__utf8_fix(msg);
    jobq__stage_defer(st, resp->retry_after_ms, msg);
    return;
  }
  if (resp->error)
    jobq__stage_failf(st, retryable, "%s", resp->error); /* made valid UTF-8 there */
  else
    jobq__stage_failf(st, retryable, "%s: HTTP %ld", c->provider, resp->status);
}
