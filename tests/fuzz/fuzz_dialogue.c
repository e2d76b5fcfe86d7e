/* Fuzz target: turning an LLM's answer text into a dialogue. The text comes
 * from a remote model: whatever it is, the parser gives a valid dialogue or
 * NULL with a reason, never a crash. */
#include "stages/script.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char why[256] = "";
  json_t *d = jobq__script_parse_dialogue(text, why, sizeof why);
  if (d == NULL && why[0] == '\0') abort(); /* a refusal always says why */
  if (d != NULL) {
    if (!json_is_array(d) || json_array_size(d) == 0) abort();
    size_t i;
    json_t *t;
    json_array_foreach(d, i, t) {
      if (!json_is_string(json_object_get(t, "speaker")) || !json_is_string(json_object_get(t, "text")))
        abort();
    }
  }
  json_decref(d);
  free(text);
  return 0;
}
