/*
 * libjobq pipelines: a job kind made of ordered stages. These functions are
 * in libjobq-stages (libjobq-stages.so.0; pkg-config libjobq-stages, CMake
 * jobq::stages), which links libjobq: a host that only queues jobs links
 * libjobq alone and never loads espeak-ng or LAME.
 *
 * A pipeline runs its stages one after the other for each job. The first
 * stage gets the job's payload, each later stage the previous stage's output
 * (JSON text), and the last stage's output is the job's result. Each stage
 * owns a share of the progress bar (script 10-25 %, audio 30-75 %, upload
 * 80-95 % for the built-in modules) and a step text ("Generating script...").
 * When a stage succeeds its output is checkpointed in storage together with
 * the job's progress, so a retry (after a failure, a timeout, or a crash of
 * the process) resumes at the stage that failed, not from the start.
 *
 * Large artifacts (audio) live as files in the job's work directory,
 * jobq_stage_workdir(), referenced from the JSON; jobq_prune removes the
 * directory with the job.
 *
 * Built-in stages (jobq_pipeline_add_builtin), each configured with JSON:
 *   "script"  text -> two-host dialogue: providers "template" (offline),
 *             "openai" (chat completions), "anthropic" (Messages)
 *   "tts"     dialogue -> one audio file: "espeak" (offline, libespeak-ng),
 *             "elevenlabs" (text-to-speech or text-to-dialogue); WAV, or MP3
 *             through LAME. A build without espeak-ng or LAME
 *             (JOBQ_WITH_ESPEAK/JOBQ_WITH_LAME=OFF) refuses them at
 *             configuration with JOBQ_ENOTSUP.
 *   "upload"  audio file -> URL: "local" (a directory, file:// URLs), "s3"
 *             (AWS SigV4, path or virtual-host style), "http" (plain PUT)
 * docs/stages.md describes each provider's configuration.
 *
 * Host stages sit beside the built-in ones. A stage is either blocking (it
 * runs on a thread of libuv's pool, UV_THREADPOOL_SIZE, and may block) or
 * on-loop (it runs on the queue's loop thread, must not block, and finishes
 * later from a callback). Either kind finishes its run with
 * jobq_stage_succeed or jobq_stage_fail, exactly once, from any thread.
 */
#ifndef JOBQ_STAGES_H
#define JOBQ_STAGES_H

#include "../jobq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct jobq_pipeline_s jobq_pipeline_t; /* a list of stages, to register */
typedef struct jobq_stage_s jobq_stage_t;       /* one run of one stage for one job */

/* Where a host stage runs. */
#define JOBQ_STAGE_BLOCKING 0 /* a thread of libuv's pool; may block */
#define JOBQ_STAGE_ON_LOOP  1 /* the loop thread; must not block */

/* Runs one stage for one job. Finish with jobq_stage_succeed/fail, before
 * returning or later, from any thread. */
typedef void (*jobq_stage_fn)(jobq_stage_t *st, void *ud);

/* Called on the loop thread when the job is cancelled (or times out, or the
 * queue closes) while an on-loop stage runs, so that it can abort its I/O and
 * then fail. */
typedef void (*jobq_stage_cancel_fn)(jobq_stage_t *st, void *ud);

/* ---- building a pipeline ---------------------------------------------- */

JOBQ_API jobq_pipeline_t *jobq_pipeline_new(void); /* NULL on out of memory */
JOBQ_API void jobq_pipeline_free(jobq_pipeline_t *p);

/* Appends a host stage. name: 1..64 characters of [A-Za-z0-9_.-], unique in
 * the pipeline. mode: JOBQ_STAGE_BLOCKING or JOBQ_STAGE_ON_LOOP. */
JOBQ_API int jobq_pipeline_add_stage(jobq_pipeline_t *p, const char *name, jobq_stage_fn fn,
                                     void *ud, int mode);

/* Appends a built-in stage: module "script", "tts" or "upload", configured by
 * config_json (an object; see docs/stages.md), e.g.
 * {"provider": "openai", "model": "gpt-4o-mini"}. The configuration is
 * checked now: an unknown provider, a missing API key (environment variable
 * or "api_key"), a malformed value: JOBQ_ECONFIG with a sentence naming it.
 * The stage's name is the module's name. */
JOBQ_API int jobq_pipeline_add_builtin(jobq_pipeline_t *p, const char *module,
                                       const char *config_json);

/* Appends the stages a configuration object names, in order:
 * {"script": {...}, "tts": {...}, "upload": {...}} (any subset, each as for
 * jobq_pipeline_add_builtin). */
JOBQ_API int jobq_pipeline_add_config(jobq_pipeline_t *p, const char *config_json);

/* The stage's share of the progress bar, from..to percent (0 <= from <= to
 * <= 100), and its step text (UTF-8, NULL: "Running <name>..."). Stages
 * without a share get equal parts of 5..95 %. */
JOBQ_API int jobq_pipeline_set_progress(jobq_pipeline_t *p, const char *stage, int from, int to,
                                        const char *step);

/* Registers the pipeline as the handler of kind (jobq_register's rules;
 * before jobq_start). p is copied: free it when you like. ko may be NULL.
 * The kind runs on the loop thread (the pipeline is asynchronous), so ko's
 * on_loop setting is ignored; its concurrency limits how many jobs run at
 * once (default 1024). */
JOBQ_API int jobq_register_pipeline(jobq_t *q, const char *kind, const jobq_pipeline_t *p,
                                    const jobq_kind_opts_t *ko);

/* ---- inside a stage ----------------------------------------------------- */

/* The stage's input: the previous stage's output, or the job's payload. */
JOBQ_API const char *jobq_stage_input(jobq_stage_t *st);
JOBQ_API const char *jobq_stage_payload(jobq_stage_t *st);
JOBQ_API const char *jobq_stage_name(jobq_stage_t *st);
JOBQ_API const char *jobq_stage_job_id(jobq_stage_t *st);
JOBQ_API int jobq_stage_attempt(jobq_stage_t *st);   /* the job's attempt, 1.. */
JOBQ_API int jobq_stage_index(jobq_stage_t *st);     /* 0 for the first stage */
/* The job's work directory (created on the first call; NULL with
 * jobq_last_error() set if it cannot be). Files the stage writes there are
 * removed with the job by jobq_prune. */
JOBQ_API const char *jobq_stage_workdir(jobq_stage_t *st);
/* The queue's loop, for on-loop stages. */
JOBQ_API struct uv_loop_s *jobq_stage_loop(jobq_stage_t *st);
/* Progress within the stage, 0..100, mapped into the stage's share; step
 * (UTF-8) NULL keeps the current text. */
JOBQ_API int jobq_stage_progress(jobq_stage_t *st, int percent, const char *step);
/* 1 once the job was cancelled, timed out, or the queue is closing. */
JOBQ_API int jobq_stage_cancelled(jobq_stage_t *st);
/* For on-loop stages: fn(st, ud) is called on the loop thread if the run is
 * cancelled while it is under way (at most once; not after it finished). */
JOBQ_API int jobq_stage_on_cancel(jobq_stage_t *st, jobq_stage_cancel_fn fn, void *ud);
/* Ends the run: output_json (valid JSON, copied) goes to the next stage and
 * into the checkpoint. */
JOBQ_API int jobq_stage_succeed(jobq_stage_t *st, const char *output_json);
/* Ends the run and the attempt: retryable 1 lets the job retry (resuming at
 * this stage), 0 fails it for good. message must be UTF-8. */
JOBQ_API int jobq_stage_fail(jobq_stage_t *st, const char *message, int retryable);

#ifdef __cplusplus
}
#endif

#endif /* JOBQ_STAGES_H */
