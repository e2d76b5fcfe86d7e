/* The script module's shared parts: input text, dialogue output, parsing an
 * LLM's answer into a dialogue. */
#include "stages/script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char jobq__script_system_prompt[] =
    "You write scripts for a podcast with two hosts. Turn the user's text into a lively, accurate "
    "dialogue between the hosts. Answer with JSON only, no prose around it, in exactly this "
    "shape: {\"dialogue\": [{\"speaker\": \"<host name>\", \"text\": \"<what they say>\"}, ...]}.";

const char *jobq__script_input_text(jobq_stage_t *st, json_t *in, long long max_chars) {
  const json_t *t = json_object_get(in, "text");
  if (t == NULL) t = json_object_get(in, "noteContent");
  if (!json_is_string(t)) {
    jobq__stage_failf(st, 0, "the input has no \"text\" string");
    return NULL;
  }
  size_t n = json_string_length(t);
  const char *s = json_string_value(t);
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
  if (i == n) {
    jobq__stage_failf(st, 0, "the input text is empty");
    return NULL;
  }
  if ((long long)n > max_chars) {
    jobq__stage_failf(st, 0, "the input text is %zu bytes, over the limit of %lld", n, max_chars);
    return NULL;
  }
  return s;
}

int jobq__script_succeed(jobq_stage_t *st, json_t *in, json_t *dialogue) {
  size_t cap = 256, len = 0, i;
  char *tr = malloc(cap);
  json_t *turn;
  if (tr == NULL) goto nomem;
  tr[0] = '\0';
  json_array_foreach(dialogue, i, turn) {
    const char *sp = json_string_value(json_object_get(turn, "speaker"));
    const char *tx = json_string_value(json_object_get(turn, "text"));
    size_t need = strlen(sp) + strlen(tx) + 4;
    if (len + need + 1 > cap) {
      while (len + need + 1 > cap) cap *= 2;
      char *n = realloc(tr, cap);
      if (n == NULL) goto nomem;
      tr = n;
    }
    len += (size_t)snprintf(tr + len, cap - len, "%s%s: %s", len ? "\n" : "", sp, tx);
  }
  if (json_object_set_new(in, "dialogue", dialogue) != 0) {
    dialogue = NULL;
    goto nomem;
  }
  dialogue = NULL;
  if (json_object_set_new(in, "transcript", json_string(tr)) != 0) goto nomem;
  free(tr);
  return jobq__stage_succeed_json(st, in);
nomem:
  free(tr);
  json_decref(dialogue);
  json_decref(in);
  return jobq_stage_fail(st, "out of memory", 1);
}

/* Each turn must be {"speaker": non-empty string, "text": non-empty string}. */
static int dialogue_ok(const json_t *d, char *why, size_t n) {
  if (!json_is_array(d) || json_array_size(d) == 0) {
    snprintf(why, n, "the dialogue is not a non-empty list");
    return 0;
  }
  size_t i;
  json_t *t;
  json_array_foreach(d, i, t) {
    const json_t *sp = json_object_get(t, "speaker"), *tx = json_object_get(t, "text");
    if (!json_is_string(sp) || !json_is_string(tx) || json_string_length(sp) == 0 ||
        json_string_length(tx) == 0) {
      snprintf(why, n, "turn %zu is not {\"speaker\": text, \"text\": text}", i);
      return 0;
    }
  }
  return 1;
}

json_t *jobq__script_parse_dialogue(const char *text, char *why, size_t why_size) {
  /* Models like to wrap JSON in a Markdown fence: take what is inside. */
  const char *start = strchr(text, '{'), *lb = strchr(text, '[');
  if (start == NULL || (lb && lb < start)) start = lb;
  if (start == NULL) {
    snprintf(why, why_size, "the answer holds no JSON");
    return NULL;
  }
  const char *end = strrchr(text, start[0] == '{' ? '}' : ']');
  if (end == NULL || end < start) {
    snprintf(why, why_size, "the answer's JSON is cut off");
    return NULL;
  }
  json_error_t e;
  json_t *v = json_loadb(start, (size_t)(end - start + 1), 0, &e);
  if (v == NULL) {
    snprintf(why, why_size, "the answer is not valid JSON: %s", e.text);
    return NULL;
  }
  json_t *d = json_is_object(v) ? json_incref(json_object_get(v, "dialogue")) : json_incref(v);
  json_decref(v);
  if (d == NULL || !dialogue_ok(d, why, why_size)) {
    if (d == NULL) snprintf(why, why_size, "the answer has no \"dialogue\" list");
    json_decref(d);
    return NULL;
  }
  return d;
}
