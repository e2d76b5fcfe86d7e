/* What the script providers share: the input text, the output shape. */
#ifndef JOBQ_STAGES_SCRIPT_H
#define JOBQ_STAGES_SCRIPT_H

#include "stages/stage_int.h"

#define JOBQ_SCRIPT_MAX_CHARS_DEFAULT 20000

/* The text to turn into a dialogue: the input's "text" (or "noteContent",
 * as the podcast service named it), checked: not empty, at most max_chars
 * bytes. On error fails the stage (not retryable) and returns NULL. */
const char *jobq__script_input_text(jobq_stage_t *st, json_t *in, long long max_chars);
/* Sets in["dialogue"] (stolen) and in["transcript"] ("Speaker: text" lines)
 * and succeeds the stage with in (stolen). */
int jobq__script_succeed(jobq_stage_t *st, json_t *in, json_t *dialogue);
/* Parses an LLM's answer: a JSON object {"dialogue": [{"speaker", "text"}...]}
 * (or the bare list), possibly inside a ``` fence. NULL if it is not. */
json_t *jobq__script_parse_dialogue(const char *text, char *why, size_t why_size);
/* The system prompt that asks for that shape. */
extern const char jobq__script_system_prompt[];

#endif
