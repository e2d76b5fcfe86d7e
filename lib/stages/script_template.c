/* The offline script provider: turns the input text into a two-host
 * dialogue with no network, sentence by sentence. It is what the podcast
 * example runs offline, and a fallback when no LLM is configured. */
#include "stages/script.h"
#include "util/mem.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

typedef struct tpl {
  char *host[2];
  long long max_chars;
  long long max_turns;
} tpl;

static void tpl_free(void *p) {
  tpl *t = p;
  if (t == NULL) return;
  free(t->host[0]);
  free(t->host[1]);
  free(t);
}

static int tpl_configure(const json_t *cfg, void **out) {
  tpl *t = calloc(1, sizeof *t);
  if (t == NULL) return jobq__err(JOBQ_ENOMEM, "script: out of memory");
  t->max_chars = JOBQ_SCRIPT_MAX_CHARS_DEFAULT;
  t->max_turns = 40;
  const json_t *hosts = json_object_get(cfg, "hosts");
  const char *h0 = "Alex", *h1 = "Sam";
  int rc = 0;
  if (hosts) {
    if (!json_is_array(hosts) || json_array_size(hosts) != 2 ||
        !json_is_string(json_array_get(hosts, 0)) || !json_is_string(json_array_get(hosts, 1)) ||
        json_string_length(json_array_get(hosts, 0)) == 0 ||
        json_string_length(json_array_get(hosts, 1)) == 0) {
      rc = jobq__err(JOBQ_ECONFIG, "script: \"hosts\" must be a list of two non-empty names");
      goto fail;
    }
    h0 = json_string_value(json_array_get(hosts, 0));
    h1 = json_string_value(json_array_get(hosts, 1));
  }
  if ((rc = jobq__cfg_int(cfg, "script", "max_chars", 1, 1000000, &t->max_chars)) ||
      (rc = jobq__cfg_int(cfg, "script", "max_turns", 4, 1000, &t->max_turns)))
    goto fail;
  t->host[0] = jobq__strdup(h0);
  t->host[1] = jobq__strdup(h1);
  if (!t->host[0] || !t->host[1]) {
    rc = jobq__err(JOBQ_ENOMEM, "script: out of memory");
    goto fail;
  }
  *out = t;
  return 0;
fail:
  tpl_free(t);
  return rc;
}

/* The next sentence of s at *pos: up to ., ! or ? followed by a space (or
 * the end), trimmed; NULL at the end. */
static char *next_sentence(const char *s, size_t *pos) {
  size_t i = *pos, n = strlen(s);
  while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
  if (i >= n) return NULL;
  size_t b = i;
  while (i < n) {
    char c = s[i++];
    if ((c == '.' || c == '!' || c == '?') && (i >= n || s[i] == ' ' || s[i] == '\n')) break;
    if (c == '\n' && i < n && s[i] == '\n') break; /* a paragraph ends a sentence too */
  }
  size_t e = i;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\r')) e--;
  *pos = i;
  char *out = malloc(e - b + 1);
  if (out == NULL) return NULL;
  size_t k = 0;
  for (size_t j = b; j < e; j++) out[k++] = (s[j] == '\n' || s[j] == '\t' || s[j] == '\r') ? ' ' : s[j];
  out[k] = '\0';
  return out;
}

static int add(json_t *d, const char *speaker, const char *text) {
  json_t *t = json_pack("{s:s, s:s}", "speaker", speaker, "text", text);
  return t == NULL || json_array_append_new(d, t) != 0;
}

static void tpl_run(jobq_stage_t *st, void *ud) {
  tpl *t = ud;
  json_t *in = jobq__stage_input_object(st);
  if (in == NULL) return;
  const char *text = jobq__script_input_text(st, in, t->max_chars);
  if (text == NULL) {
    json_decref(in);
    return;
  }
  const char *title = json_string_value(json_object_get(in, "title"));
  json_t *d = json_array();
  char intro[512];
  int bad = d == NULL;
  if (title && *title)
    snprintf(intro, sizeof intro, "Welcome back! I'm %s, and with me is %s. Today: %.300s.",
             t->host[0], t->host[1], title);
  else
    snprintf(intro, sizeof intro, "Welcome back! I'm %s, and with me is %s. Let's get into it.",
             t->host[0], t->host[1]);
  bad = bad || add(d, t->host[0], intro);
  /* Sentences alternate between the hosts; the second host sometimes
   * reacts first, so that it sounds like a conversation, not a reading. */
  static const char *const reactions[] = {"Right.", "Interesting.", "Okay, and then?",
                                          "That matters.", "Go on."};
  size_t pos = 0;
  int turn = 1, spoke = 0; /* the other host takes the first sentence */
  char *s;
  while (!bad && (long long)json_array_size(d) < t->max_turns - 1 &&
         (s = next_sentence(text, &pos)) != NULL) {
    const char *who = t->host[turn % 2];
    char line[2048];
    if (turn % 2 == 1 && turn % 4 == 1)
      snprintf(line, sizeof line, "%s %s", reactions[(turn / 4) % 5], s);
    else
      snprintf(line, sizeof line, "%s", s);
    bad = add(d, who, line);
    free(s);
    turn++;
    spoke = 1;
  }
  /* the host who did not speak last says goodbye */
  if (!bad && spoke) bad = add(d, t->host[turn % 2], "That's all for today. Thanks for listening!");
  if (bad || !spoke) {
    json_decref(d);
    json_decref(in);
    jobq_stage_fail(st, bad ? "out of memory" : "the input text has no sentences", bad);
    return;
  }
  jobq_stage_progress(st, 100, NULL);
  jobq__script_succeed(st, in, d);
}

const jobq__provider jobq__script_template = {
  "script", "template", JOBQ_STAGE_BLOCKING, tpl_configure, tpl_free, tpl_run,
};
