/* The LLM script providers: OpenAI-compatible chat completions and
 * Anthropic Messages. Both ask for the dialogue as JSON (script.c's system
 * prompt) and run on the loop through lib/net: no thread waits for the
 * model's 10-40 s. */
#include "stages/httpprov.h"
#include "util/mem.h"
#include "stages/script.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPENAI, ANTHROPIC };

typedef struct llm {
  int kind;
  jobq__httpcfg http;
  char *model;
  char *token_param; /* OpenAI: "max_tokens" or "max_completion_tokens" */
  char *anthropic_version;
  long long max_tokens, max_chars;
  double temperature;
} llm;

typedef struct llm_run {
  jobq__httpreq hr;
  llm *l;
  json_t *in;
  char *body;
  char auth[600], hdr2[128];
  const char *headers[3];
  const char *secrets[1];
} llm_run;

static void llm_free(void *p) {
  llm *l = p;
  if (l == NULL) return;
  jobq__httpcfg_free(&l->http);
  free(l->model);
  free(l->token_param);
  free(l->anthropic_version);
  free(l);
}

static int configure(const json_t *cfg, void **out, int kind) {
  const char *name = kind == OPENAI ? "openai" : "anthropic";
  llm *l = calloc(1, sizeof *l);
  if (l == NULL) return jobq__err(JOBQ_ENOMEM, "script: out of memory");
  l->kind = kind;
  l->max_tokens = 4096;
  l->max_chars = JOBQ_SCRIPT_MAX_CHARS_DEFAULT;
  l->temperature = 0.7;
  const char *model, *tp, *ver;
  int rc;
  if ((rc = jobq__httpcfg_parse(cfg, "script", name,
                             kind == OPENAI ? "https://api.openai.com" : "https://api.anthropic.com",
                             kind == OPENAI ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY", 1, &l->http)) ||
      (rc = jobq__cfg_str(cfg, "script", "model", 0, &model)) ||
      (rc = jobq__cfg_str(cfg, "script", "token_param", 0, &tp)) ||
      (rc = jobq__cfg_str(cfg, "script", "anthropic_version", 0, &ver)) ||
      (rc = jobq__cfg_int(cfg, "script", "max_tokens", 16, 200000, &l->max_tokens)) ||
      (rc = jobq__cfg_int(cfg, "script", "max_chars", 1, 1000000, &l->max_chars)))
    goto fail;
  const json_t *t = json_object_get(cfg, "temperature");
  if (t) {
    if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2) {
      rc = jobq__err(JOBQ_ECONFIG, "script: \"temperature\" must be a number in 0..2");
      goto fail;
    }
    l->temperature = json_number_value(t);
  }
  if (tp && strcmp(tp, "max_tokens") && strcmp(tp, "max_completion_tokens")) {
    rc = jobq__err(JOBQ_ECONFIG,
                   "script: \"token_param\" must be \"max_tokens\" or \"max_completion_tokens\"");
    goto fail;
  }
  l->model = jobq__strdup(model ? model : kind == OPENAI ? "gpt-4o-mini" : "claude-3-5-haiku-latest");
  l->token_param = jobq__strdup(tp ? tp : "max_tokens");
  l->anthropic_version = jobq__strdup(ver ? ver : "2023-06-01");
  if (!l->model || !l->token_param || !l->anthropic_version) {
    rc = jobq__err(JOBQ_ENOMEM, "script: out of memory");
    goto fail;
  }
  *out = l;
  return 0;
fail:
  llm_free(l);
  return rc;
}

static int openai_configure(const json_t *cfg, void **out) { return configure(cfg, out, OPENAI); }
static int anthropic_configure(const json_t *cfg, void **out) { return configure(cfg, out, ANTHROPIC); }

static void run_free(llm_run *r) {
  json_decref(r->in);
  free(r->body);
  free(r);
}

/* The answer's text, or NULL with why set. */
static const char *answer_text(const llm *l, json_t *ans, char *why, size_t n) {
  if (l->kind == OPENAI) {
    json_t *c0 = json_array_get(json_object_get(ans, "choices"), 0);
    const char *fr = json_string_value(json_object_get(c0, "finish_reason"));
    if (fr && strcmp(fr, "length") == 0) {
      snprintf(why, n, "the answer was cut off (finish_reason \"length\"): raise max_tokens");
      return NULL;
    }
    const char *s = json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
    if (s == NULL || *s == '\0') snprintf(why, n, "the answer has no message content");
    return s && *s ? s : NULL;
  }
  const char *sr = json_string_value(json_object_get(ans, "stop_reason"));
  if (sr && strcmp(sr, "max_tokens") == 0) {
    snprintf(why, n, "the answer was cut off (stop_reason \"max_tokens\"): raise max_tokens");
    return NULL;
  }
  size_t i;
  json_t *b;
  json_array_foreach(json_object_get(ans, "content"), i, b) {
    const char *ty = json_string_value(json_object_get(b, "type"));
    const char *s = json_string_value(json_object_get(b, "text"));
    if (ty && strcmp(ty, "text") == 0 && s && *s) return s;
  }
  snprintf(why, n, "the answer has no text block");
  return NULL;
}

static void on_answer(jobq__httpreq *hr, const jobq__http_resp *resp) {
  llm_run *r = hr->ud;
  jobq_stage_t *st = hr->st;
  const llm *l = r->l;
  if (resp->rc != 0 || resp->status != 200) {
    jobq__httpreq_fail(st, &l->http, resp);
    run_free(r);
    return;
  }
  char why[256] = "";
  json_error_t e;
  json_t *ans = json_loadb(resp->body, resp->body_len, 0, &e);
  const char *text = ans ? answer_text(l, ans, why, sizeof why) : NULL;
  if (ans == NULL) snprintf(why, sizeof why, "the answer is not JSON: %s", e.text);
  json_t *d = text ? jobq__script_parse_dialogue(text, why, sizeof why) : NULL;
  json_decref(ans);
  if (d == NULL) {
    /* A model may answer better next time; the job's retry asks again. */
    jobq__stage_failf(st, 1, "%s: HTTP 200 but %s", l->http.provider, why);
    run_free(r);
    return;
  }
  jobq_stage_progress(st, 100, NULL);
  json_t *in = r->in;
  r->in = NULL;
  run_free(r);
  jobq__script_succeed(st, in, d);
}

static void llm_run_stage(jobq_stage_t *st, void *ud) {
  llm *l = ud;
  json_t *in = jobq__stage_input_object(st);
  if (in == NULL) return;
  const char *text = jobq__script_input_text(st, in, l->max_chars);
  if (text == NULL) {
    json_decref(in);
    return;
  }
  const char *title = json_string_value(json_object_get(in, "title"));
  char *user = malloc(strlen(text) + (title ? strlen(title) : 0) + 16);
  llm_run *r = calloc(1, sizeof *r);
  if (user == NULL || r == NULL) {
    free(user);
    free(r);
    json_decref(in);
    jobq_stage_fail(st, "out of memory", 1);
    return;
  }
  sprintf(user, "%s%s%s", title ? "Title: " : "", title ? title : "", title ? "\n\n" : "");
  strcat(user, text);
  r->l = l;
  r->in = in;
  json_t *body;
  if (l->kind == OPENAI) {
    body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:I, s:f}", "model", l->model, "messages",
                     "role", "system", "content", jobq__script_system_prompt, "role", "user",
                     "content", user, l->token_param, (json_int_t)l->max_tokens, "temperature",
                     l->temperature);
    snprintf(r->auth, sizeof r->auth, "Authorization: Bearer %s", l->http.api_key);
    r->headers[0] = r->auth;
    r->headers[1] = "Content-Type: application/json";
  } else {
    body = json_pack("{s:s, s:I, s:s, s:[{s:s, s:s}], s:f}", "model", l->model, "max_tokens",
                     (json_int_t)l->max_tokens, "system", jobq__script_system_prompt, "messages",
                     "role", "user", "content", user, "temperature", l->temperature);
    snprintf(r->auth, sizeof r->auth, "x-api-key: %s", l->http.api_key);
    snprintf(r->hdr2, sizeof r->hdr2, "anthropic-version: %s", l->anthropic_version);
    r->headers[0] = r->auth;
    r->headers[1] = r->hdr2;
    r->headers[2] = "Content-Type: application/json";
  }
  free(user);
  r->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (r->body == NULL) {
    run_free(r);
    jobq_stage_fail(st, "out of memory", 1);
    return;
  }
  char url[1200];
  snprintf(url, sizeof url, "%s%s", l->http.base_url,
           l->kind == OPENAI ? "/v1/chat/completions" : "/v1/messages");
  jobq__http_opts o = {0};
  jobq__httpcfg_opts(&l->http, &o);
  r->secrets[0] = l->http.api_key;
  o.secrets = r->secrets;
  o.n_secrets = 1;
  o.method = "POST";
  o.url = url;
  o.headers = r->headers;
  o.n_headers = l->kind == OPENAI ? 2 : 3;
  o.body = r->body;
  o.body_len = strlen(r->body);
  jobq_stage_progress(st, 10, NULL);
  if (jobq__httpreq_start(&r->hr, st, &o, on_answer, r) != 0) run_free(r);
}

const jobq__provider jobq__script_openai = {
  "script", "openai", JOBQ_STAGE_ON_LOOP, openai_configure, llm_free, llm_run_stage,
};
const jobq__provider jobq__script_anthropic = {
  "script", "anthropic", JOBQ_STAGE_ON_LOOP, anthropic_configure, llm_free, llm_run_stage,
};
