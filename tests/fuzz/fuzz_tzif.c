/* Fuzz target: the TZif parser (lib/util/tz.c) and the lookups on whatever
 * it accepts. A file is refused with JOBQ_ETZ or gives a zone whose answers
 * are consistent: every instant local_to_utc returns shows that local time. */
#include "util/tz.h"

#include <jobq.h>

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  jobq__tz *z = NULL;
  int rc = jobq__tz_parse("fuzz", "input", data, size, &z);
  if (rc != 0) {
    if (rc != JOBQ_ETZ && rc != JOBQ_ENOMEM) abort();
    if (z != NULL) abort();
    return 0;
  }
  static const int64_t probes[] = {INT64_C(-4000000000), -1,          0,
                                   INT64_C(1772953200),  INT64_C(1793512800),
                                   INT64_C(2200000000),  INT64_C(4108690800),
                                   INT64_C(253402300799)};
  for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
    int64_t t = probes[i], local = t + jobq__tz_offset(z, t), u[2], tr;
    int n = jobq__tz_local_to_utc(z, local, u);
    for (int k = 0; k < n; k++)
      if (u[k] + jobq__tz_offset(z, u[k]) != local) abort();
    if (jobq__tz_next_transition(z, t, &tr) && tr <= t) abort();
    if (jobq__tz_prev_transition(z, t, &tr) && tr > t) abort();
  }
  jobq__tz_free(z);
  return 0;
}
