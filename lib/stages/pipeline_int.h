/* What the pipeline builder (pipeline_build.c: jobq_pipeline_new ...
 * jobq_pipeline_set_progress) hands the runtime (pipeline.c: registration
 * and runs). The structures themselves are in stage_int.h, since a run of
 * a stage points at its definition. Nothing here is ABI. */
#ifndef JOBQ_STAGES_PIPELINE_INT_H
#define JOBQ_STAGES_PIPELINE_INT_H

#include "stages/stage_int.h"

/* A copy of p's stages (p->n of them) for a registration, each share and
 * step resolved: stages without a share get equal parts of 5..95 % by
 * position, those without a step "Running <name>...". Each built-in stage
 * holds a reference on its configured module. JOBQ_ENOMEM (no sentence:
 * the caller says it) and nothing made. */
int jobq__pipeline_stages_copy(const jobq_pipeline_t *p, pl_stage **out);
/* Frees n stages of a copy, and the array. */
void jobq__pipeline_stages_free(pl_stage *stages, int n);

#endif
