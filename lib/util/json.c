#include "util/json.h"
#include "util/err.h"

#include <jansson.h>

int jobq__json_check(const char *fn, const char *what, const char *text, size_t len) {
  json_error_t e;
  /* JSON_DECODE_ANY: a payload may be any JSON value, not only an object.
   * JSON_ALLOW_NUL is off: an embedded NUL would be cut off by C strings. */
  json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &e);
  if (v == NULL) {
    return jobq__err(JOBQ_EJSON, "%s: %s is not valid JSON: %s at line %d, column %d", fn, what,
                     e.text, e.line, e.column);
  }
  json_decref(v);
  return 0;
}
