/* Local provider servers for the integration tests.
 *
 * provsrv_start() runs one of the servers of tests/servers/ as a child
 * process on 127.0.0.1: "providers.py" (OpenAI, Anthropic and ElevenLabs
 * doubles, with fault injection) or "s3.js" (an S3-compatible server that
 * checks AWS Signature Version 4; access key and secret "S3RVER", bucket
 * "podcasts" unless extra_args name another). The child's standard input is a
 * pipe from this process: when the test ends, or dies, the server sees end of
 * file and exits.
 *
 * The sources are found through the JOBQ_SOURCE_DIR environment variable
 * (set by CTest), else relative to the working directory.
 *
 * The HTTP helpers are blocking libcurl easy calls, for the tests' own use.
 * See tests/servers/providers.py for the control routes (/_faults, /_reset,
 * /_requests, /_stats). */
#ifndef JOBQ_TESTS_PROVSRV_H
#define JOBQ_TESTS_PROVSRV_H

#include <sys/types.h>

typedef struct provsrv {
  pid_t pid;
  int stdin_fd;  /* write end of the child's standard input */
  int stdout_fd; /* read end of the child's standard output */
  int port;
  char base_url[64]; /* "http://127.0.0.1:PORT" */
} provsrv_t;

/* Starts tests/servers/<script> ("providers.py" with python3, "s3.js" with
 * node) with extra_args (NULL-terminated, may be NULL) and waits for its
 * port. Returns 0; -1 on failure (a message on stderr); -2 when the server
 * cannot run here (s3.js without its npm packages, or without node): the
 * test should skip(), saying so. */
int provsrv_start(const char *script, const char *const *extra_args, provsrv_t *out);

/* Closes the server's standard input and reaps it (SIGKILL after 3 s). */
void provsrv_stop(provsrv_t *srv);

/* POSTs json_body (Content-Type: application/json) to base_url + path.
 * Returns the HTTP status, or -1 if no answer came. *out_body (if out_body is
 * not NULL) gets the response body, NUL-terminated, to free(). */
int provsrv_post(const provsrv_t *srv, const char *path, const char *json_body, char **out_body);

/* GETs base_url + path. Returns 0 and sets *out_status (and *out_body, to
 * free(), when out_body is not NULL), or -1 if no answer came. */
int provsrv_get(const provsrv_t *srv, const char *path, char **out_body, long *out_status);

/* Queues faults for route ("openai", "anthropic", "tts", "dialogue"):
 * fault_json is one fault object ({"status": 429, "retry_after": 1}) or a
 * JSON array of them. Returns 0, or -1. */
int provsrv_fault(const provsrv_t *srv, const char *route, const char *fault_json);

/* Sets the standing delay of route's answers, in ms (0: none). 0 or -1. */
int provsrv_default_delay(const provsrv_t *srv, const char *route, long delay_ms);

/* Clears faults, standing delays, the request log and the counts. 0 or -1. */
int provsrv_reset(const provsrv_t *srv);

/* Requests received on route since the last reset (from /_stats), or -1. */
int provsrv_count(const provsrv_t *srv, const char *route);

/* The JSON list of requests received on route (see providers.py), to
 * free(); NULL on failure. */
char *provsrv_requests(const provsrv_t *srv, const char *route);

#endif
