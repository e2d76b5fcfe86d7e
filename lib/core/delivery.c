/* Delivery records and the public view of the outbox (jobq_webhook_deliveries
 * and its getters). */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

JOBQ_API void jobq_storage_delivery_clear(jobq_storage_delivery *d) {
  if (d == NULL) return;
  free(d->id);
  free(d->endpoint);
  free(d->url);
  free(d->last_error);
  memset(d, 0, sizeof *d);
}
