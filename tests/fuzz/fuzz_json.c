/* Fuzz target: the payload/result JSON validator, checked against jansson
 * (a differential fuzzer: both must agree on what is valid JSON). */
#include "util/json.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Payloads are C strings: what follows a NUL never reaches the validator. */
  size_t n = strnlen((const char *)data, size);
  int mine = jobq__json_check("fuzz", "input", (const char *)data, n) == 0;
  json_error_t e;
  json_t *v = json_loadb((const char *)data, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  int theirs = v != NULL;
  json_decref(v);
  /* Known, intended differences: jansson refuses nesting deeper than 2048
   * (we refuse deeper than 512) and numbers it cannot hold (1e999, 2^64),
   * which JSON itself allows. */
  int known = (mine && !theirs &&
               (strstr(e.text, "too big") || strstr(e.text, "overflow") || strstr(e.text, "nesting"))) ||
              (!mine && theirs && n > 512);
  if (mine != theirs && !known)
  {
    fprintf(stderr, "validator says %s, jansson says %s (%s) for %zu bytes: ", mine ? "valid" : "invalid",
            theirs ? "valid" : "invalid", theirs ? "" : e.text, n);
    fwrite(data, 1, n, stderr);
    fputc('\n', stderr);
    abort();
  }
  return 0;
}
