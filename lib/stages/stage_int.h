/* The pipeline runtime's private structures, shared with the built-in
 * modules (the other files of lib/stages). Nothing here is ABI. */
#ifndef JOBQ_STAGES_STAGE_INT_H
#define JOBQ_STAGES_STAGE_INT_H

#include "jobq.h"
#include "jobq/stages.h"

#include <jansson.h>
#include <stdatomic.h>
#include <uv.h>

struct jobq__http;

/* A built-in provider: module "script" + provider "template", etc. */
typedef struct jobq__provider {
  const char *module;
  const char *name;
  int mode; /* JOBQ_STAGE_BLOCKING or JOBQ_STAGE_ON_LOOP */
  /* Checks cfg (the module's whole configuration object) and builds the
   * provider's state; JOBQ_ECONFIG with a sentence naming the key. */
  int (*configure)(const json_t *cfg, void **out_state);
  void (*free)(void *state);
  jobq_stage_fn run; /* ud is the state */
} jobq__provider;

/* A provider's configured state, shared by the pipelines copied from one
 * builder. */
typedef struct jobq__module {
  atomic_int refs;
  const jobq__provider *prov;
  void *state;
} jobq__module;

typedef struct pl_stage {
  char *name;
  jobq_stage_fn fn;
  void *ud;
  int mode;
  int from, to, has_share;
  char *step;
  jobq__module *mod; /* built-in: holds a reference; NULL for host stages */
} pl_stage;

struct jobq_pipeline_s {
  pl_stage *stages;
  int n;
};

typedef struct pl_reg pl_reg;
typedef struct pl_run pl_run;

struct jobq_stage_s {
  pl_run *run;
  const pl_stage *def;
  int index;
  char *input;
  jobq_stage_cancel_fn cancel_fn; /* loop thread only */
  void *cancel_ud;
  int cancel_called;
  atomic_int finished;
  int failed, retryable;
  /* failed by jobq__stage_defer: push the job back by defer_ms without
   * counting the attempt */
  int defer;
  int64_t defer_ms;
  char *output, *error;
  jobq_stage_t *next_done; /* reg's list of finished runs to process */
};

/* The loop's HTTP client for on-loop providers (created on first use); NULL
 * with jobq_last_error() set if it cannot be. */
struct jobq__http *jobq__stage_http(jobq_stage_t *st);

/* Providers (lib/stages/script*.c, tts*.c, upload*.c). */
const jobq__provider *jobq__provider_find(const char *module, const char *name);
/* The default share and step of a built-in module. */
void jobq__module_defaults(const char *module, int *from, int *to, const char **step);

/* Config helpers: string/int members with a sentence on a bad type. */
int jobq__cfg_str(const json_t *cfg, const char *module, const char *key, int required,
               const char **out);
int jobq__cfg_int(const json_t *cfg, const char *module, const char *key, long long lo,
               long long hi, long long *out);
/* An API key from cfg "api_key", or the environment variable named by
 * cfg "api_key_env" (default env_default). Copied into *out (free()). */
int jobq__cfg_secret(const json_t *cfg, const char *module, const char *provider,
                  const char *key, const char *env_key, const char *env_default, char **out);

/* Output helpers: the stage's input object with more members; fails the
 * stage with JOBQ_EJSON-style sentences when the input is not an object. */
json_t *jobq__stage_input_object(jobq_stage_t *st);
/* Serialises obj (stolen) and succeeds the stage with it. */
int jobq__stage_succeed_json(jobq_stage_t *st, json_t *obj);
/* Ends the stage so that its job is pushed back by delay_ms (0..1 day)
 * without counting the attempt (jobq_ctx_retry_after), with message as the
 * job's error: a provider's Retry-After longer than the stage waits within
 * an attempt. A store that cannot defer gets a retryable failure instead. */
int jobq__stage_defer(jobq_stage_t *st, int64_t delay_ms, const char *message);
/* jobq_stage_fail with a formatted message. */
int jobq__stage_failf(jobq_stage_t *st, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
