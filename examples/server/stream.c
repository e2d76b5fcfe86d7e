/* placeholder: replaced by the streams (SSE and long polls) */
#include "server.h"
int srv_stream_start(srv_t *s) { (void)s; return 0; }
void srv_stream_stop(srv_t *s) { (void)s; }
void srv_long_poll(srv_call *c, jobq_job_t *job, int secs) {
  (void)secs;
  srv_reply_json(c, 200, json_pack("{s:b, s:o}", "success", 1, "job", srv_job_json(job)));
  jobq_job_free(job);
}
const srv_route srv_routes_stream[] = {{NULL, NULL, 0, NULL}};
