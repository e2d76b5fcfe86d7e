/* The pipeline builder: a list of host and built-in stages with their
 * shares of the progress bar, checked as it is built. jobq_register_pipeline
 * (pipeline.c) takes a copy of it (jobq__pipeline_stages_copy). */
#include "stages/pipeline_int.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STAGE_NAME_MAX 64

static void module_unref(jobq__module *m) {
  if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
    if (m->prov->free) m->prov->free(m->state);
    free(m);
  }
}

static void stage_clear(pl_stage *s) {
  free(s->name);
  free(s->step);
  module_unref(s->mod);
}

JOBQ_API jobq_pipeline_t *jobq_pipeline_new(void) {
  jobq_pipeline_t *p = calloc(1, sizeof *p);
  if (p == NULL) jobq__err(JOBQ_ENOMEM, "jobq_pipeline_new: out of memory");
  return p;
}

JOBQ_API void jobq_pipeline_free(jobq_pipeline_t *p) {
  if (p == NULL) return;
  for (int i = 0; i < p->n; i++) stage_clear(&p->stages[i]);
  free(p->stages);
  free(p);
}

static int name_ok(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > STAGE_NAME_MAX) return 0;
  for (const char *c = n; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
          *c == '_' || *c == '-' || *c == '.'))
      return 0;
  return 1;
}

static pl_stage *find_stage(const jobq_pipeline_t *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->stages[i].name, name) == 0) return &p->stages[i];
  return NULL;
}

static int append(jobq_pipeline_t *p, const char *fn, const char *name, jobq_stage_fn f, void *ud,
                  int mode, jobq__module *mod) {
  if (find_stage(p, name))
    return jobq__err(JOBQ_EEXIST, "%s: the pipeline already has a stage '%s'", fn, name);
  pl_stage *ns = realloc(p->stages, (size_t)(p->n + 1) * sizeof *ns);
  if (ns == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  p->stages = ns;
  pl_stage *s = &ns[p->n];
  memset(s, 0, sizeof *s);
  if ((s->name = jobq__strdup(name)) == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  s->fn = f;
  s->ud = ud;
  s->mode = mode;
  s->mod = mod;
  if (mod) {
    const char *step;
    jobq__module_defaults(mod->prov->module, &s->from, &s->to, &step);
    if ((s->step = jobq__strdup(step)) == NULL) {
      free(s->name);
      return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
    }
    s->has_share = 1;
  }
  p->n++;
  return 0;
}

JOBQ_API int jobq_pipeline_add_stage(jobq_pipeline_t *p, const char *name, jobq_stage_fn fn,
                                     void *ud, int mode) {
  static const char F[] = "jobq_pipeline_add_stage";
  if (p == NULL) return jobq__err(JOBQ_EINVAL, "%s: p is NULL", F);
  if (name == NULL) return jobq__err(JOBQ_EINVAL, "%s: name is NULL", F);
  if (!name_ok(name))
    return jobq__err(JOBQ_EINVAL, "%s: stage name '%.80s' is not 1..64 characters of [A-Za-z0-9_.-]",
                     F, name);
  if (fn == NULL) return jobq__err(JOBQ_EINVAL, "%s: fn is NULL", F);
  if (mode != JOBQ_STAGE_BLOCKING && mode != JOBQ_STAGE_ON_LOOP)
    return jobq__err(JOBQ_EINVAL, "%s: mode %d is neither JOBQ_STAGE_BLOCKING nor JOBQ_STAGE_ON_LOOP",
                     F, mode);
  return append(p, F, name, fn, ud, mode, NULL);
}

static int add_builtin(jobq_pipeline_t *p, const char *F, const char *module, const json_t *cfg) {
  if (!json_is_object(cfg))
    return jobq__err(JOBQ_ECONFIG, "%s: the %s configuration is not a JSON object", F, module);
  const json_t *pv = json_object_get(cfg, "provider");
  if (!json_is_string(pv))
    return jobq__err(JOBQ_ECONFIG, "%s: %s: \"provider\" is missing or not a string", F, module);
  const jobq__provider *prov = jobq__provider_find(module, json_string_value(pv));
  if (prov == NULL) {
    if (jobq__provider_find(module, NULL) == NULL)
      return jobq__err(JOBQ_ECONFIG, "%s: unknown module '%.64s' (script, tts or upload)", F,
                       module);
    return jobq__err(JOBQ_ECONFIG, "%s: %s: unknown provider '%.64s'", F, module,
                     json_string_value(pv));
  }
  jobq__module *m = calloc(1, sizeof *m);
  if (m == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", F);
  atomic_init(&m->refs, 1);
  m->prov = prov;
  int rc = prov->configure(cfg, &m->state);
  if (rc) {
    free(m);
    return jobq__err_prefix(rc, NULL, "%s: ", F); /* the provider's sentence */
  }
  rc = append(p, F, module, prov->run, m->state, prov->mode, m);
  if (rc) module_unref(m);
  return rc;
}

static int parse_cfg(const char *F, const char *text, json_t **out) {
  json_error_t e;
  *out = json_loads(text, JSON_REJECT_DUPLICATES, &e);
  if (*out == NULL)
    return jobq__err(JOBQ_ECONFIG, "%s: the configuration is not valid JSON: %s at line %d, column %d",
                     F, e.text, e.line, e.column);
  return 0;
}

JOBQ_API int jobq_pipeline_add_builtin(jobq_pipeline_t *p, const char *module,
                                       const char *config_json) {
  static const char F[] = "jobq_pipeline_add_builtin";
  if (p == NULL) return jobq__err(JOBQ_EINVAL, "%s: p is NULL", F);
  if (module == NULL) return jobq__err(JOBQ_EINVAL, "%s: module is NULL", F);
  if (config_json == NULL) return jobq__err(JOBQ_EINVAL, "%s: config_json is NULL", F);
  json_t *cfg;
  int rc = parse_cfg(F, config_json, &cfg);
  if (rc) return rc;
  rc = add_builtin(p, F, module, cfg);
  json_decref(cfg);
  return rc;
}

JOBQ_API int jobq_pipeline_add_config(jobq_pipeline_t *p, const char *config_json) {
  static const char F[] = "jobq_pipeline_add_config";
  if (p == NULL) return jobq__err(JOBQ_EINVAL, "%s: p is NULL", F);
  if (config_json == NULL) return jobq__err(JOBQ_EINVAL, "%s: config_json is NULL", F);
  json_t *cfg;
  int rc = parse_cfg(F, config_json, &cfg);
  if (rc) return rc;
  if (!json_is_object(cfg)) {
    json_decref(cfg);
    return jobq__err(JOBQ_ECONFIG, "%s: the configuration is not a JSON object", F);
  }
  /* Check every member first, so that a bad one adds nothing. */
  const char *key;
  json_t *val;
  json_object_foreach(cfg, key, val) {
    if (strcmp(key, "script") && strcmp(key, "tts") && strcmp(key, "upload")) {
      rc = jobq__err(JOBQ_ECONFIG, "%s: unknown member '%.64s' (script, tts or upload)", F, key);
      json_decref(cfg); /* key lives in cfg */
      return rc;
    }
  }
  int n0 = p->n;
  static const char *const order[] = {"script", "tts", "upload"};
  for (int i = 0; i < 3 && rc == 0; i++) {
    json_t *m = json_object_get(cfg, order[i]);
    if (m) rc = add_builtin(p, F, order[i], m);
  }
  if (rc) {
    while (p->n > n0) stage_clear(&p->stages[--p->n]);
  }
  json_decref(cfg);
  return rc;
}

JOBQ_API int jobq_pipeline_set_progress(jobq_pipeline_t *p, const char *stage, int from, int to,
                                        const char *step) {
  static const char F[] = "jobq_pipeline_set_progress";
  if (p == NULL) return jobq__err(JOBQ_EINVAL, "%s: p is NULL", F);
  if (stage == NULL) return jobq__err(JOBQ_EINVAL, "%s: stage is NULL", F);
  pl_stage *s = find_stage(p, stage);
  if (s == NULL) return jobq__err(JOBQ_ENOTFOUND, "%s: the pipeline has no stage '%.64s'", F, stage);
  if (from < 0 || to > 100 || from > to)
    return jobq__err(JOBQ_EINVAL, "%s: %d..%d is not a range within 0..100", F, from, to);
  if (step && strlen(step) > 1024) return jobq__err(JOBQ_EINVAL, "%s: step is over 1024 bytes", F);
  int rc = jobq__utf8_check(F, "step", step);
  if (rc) return rc;
  char *copy = NULL;
  if (step && (copy = jobq__strdup(step)) == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", F);
  free(s->step);
  s->step = copy;
  s->from = from;
  s->to = to;
  s->has_share = 1;
  return 0;
}

/* ---- the copy a registration keeps ------------------------------------------ */

int jobq__pipeline_stages_copy(const jobq_pipeline_t *p, pl_stage **out) {
  pl_stage *v = calloc((size_t)p->n, sizeof *v);
  if (v == NULL) return JOBQ_ENOMEM;
  for (int i = 0; i < p->n; i++) {
    pl_stage *d = &v[i];
    const pl_stage *s = &p->stages[i];
    *d = *s;
    d->name = jobq__strdup(s->name);
    if (!d->has_share) {
      d->from = 5 + 90 * i / p->n;
      d->to = 5 + 90 * (i + 1) / p->n;
    }
    if (s->step) {
      d->step = jobq__strdup(s->step);
    } else {
      char buf[96];
      snprintf(buf, sizeof buf, "Running %s...", s->name);
      d->step = jobq__strdup(buf);
    }
    if (d->mod) atomic_fetch_add(&d->mod->refs, 1);
    if (d->name == NULL || d->step == NULL) {
      jobq__pipeline_stages_free(v, i + 1);
      return JOBQ_ENOMEM;
    }
  }
  *out = v;
  return 0;
}

void jobq__pipeline_stages_free(pl_stage *stages, int n) {
  for (int i = 0; i < n; i++) stage_clear(&stages[i]);
  free(stages);
}
