/* jobq-server: the job service over HTTP, on the SQLite default.
 *
 *   jobq-server --listen 127.0.0.1:8080 --storage sqlite:./jobq.db [--config FILE]
 *
 * See docs/server.md (the guide) and docs/man/jobq-server.1 (every
 * flag). This file reads the command line, the configuration file and the
 * environment, opens the queue on the server's loop, starts H2O, and on
 * SIGTERM or SIGINT shuts down in order: stop accepting, answer what is in
 * flight, end the streams, close the queue. */
#include "../url_shown.h"
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static srv_t S;
static uv_signal_t sig_term, sig_int;
static uv_timer_t drain_timer;
static uint64_t drain_started, conns_wait_from;
/* How long in-flight requests get to finish after SIGTERM. */
#define REQUEST_GRACE_MS 10000

static const char usage_text[] =
    "usage: jobq-server [--listen HOST:PORT] [--storage URL] [--config FILE]\n"
    "                   [--workers N] [--submit-only] [--audio-dir DIR] [--cors ORIGIN]\n"
    "                   [--max-body BYTES] [--request-timeout MS] [--drain MS] [--quiet]\n"
    "                   [--no-auth]\n"
    "  --listen HOST:PORT     address to serve on (default 127.0.0.1:8080)\n"
    "  --storage URL          the queue's store (default sqlite:./jobq.db, or $JOBQ_STORAGE)\n"
    "  --config FILE          JSON configuration (docs/server.md); flags override it\n"
    "  --workers N            worker threads running jobs here (default 4)\n"
    "  --submit-only          run no jobs here: `jobq worker` processes on the store do\n"
    "  --audio-dir DIR        the local upload directory, served at /audio/ (default podcasts)\n"
    "  --cors ORIGIN          allow a browser origin (repeatable; * for any)\n"
    "  --max-body BYTES       largest request body (default 1048576)\n"
    "  --request-timeout MS   a request must arrive within (default 10000)\n"
    "  --drain MS             at SIGTERM, how long running jobs get (default 0: released\n"
    "                         at once, resumed from their last checkpoint by the next process)\n"
    "  --quiet                no request log\n"
    "  --no-auth              accept requests without a key, as administrator (local trials)\n"
    "API keys: JOBQ_API_KEYS=key:owner,... (owner * = administrator), or \"keys\" in the\n"
    "config. The cron endpoint's secret: JOBQ_CRON_SECRET or \"cronSecret\".\n";

static void usage(void) { fputs(usage_text, stderr); }

static char *xstrdup(const char *s) {
  char *d = s ? strdup(s) : NULL;
  if (s && d == NULL) {
    fprintf(stderr, "jobq-server: out of memory\n");
    exit(2);
  }
  return d;
}

static char *read_file(const char *path, size_t max) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "jobq-server: cannot open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
  fclose(f);
  if (buf == NULL) return NULL;
  if (n > max) {
    fprintf(stderr, "jobq-server: %s is over %zu bytes\n", path, max);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

static int parse_listen(srv_conf *k, const char *v) {
  const char *colon = strrchr(v, ':');
  char *end;
  long port = colon ? strtol(colon + 1, &end, 10) : -1;
  if (colon == NULL || colon == v || *end || port < 0 || port > 65535) {
    fprintf(stderr, "jobq-server: --listen wants HOST:PORT, e.g. 127.0.0.1:8080 (got '%s')\n", v);
    return -1;
  }
  const char *h = v;
  size_t hl = (size_t)(colon - v);
  if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') h++, hl -= 2; /* [::1]:8080 */
  free(k->listen_host);
  k->listen_host = strndup(h, hl);
  k->listen_port = (int)port;
  return 0;
}

/* "key:owner,key:owner": owner "*" is an administrator. */
static int add_keys(srv_conf *k, const char *spec, const char *where) {
  char *copy = xstrdup(spec), *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ') tok++;
    if (*tok == '\0') continue;
    char *colon = strrchr(tok, ':');
    if (colon == NULL || colon == tok || colon[1] == '\0') {
      fprintf(stderr, "jobq-server: %s: each entry is key:owner (owner * for an administrator)\n",
              where);
      free(copy);
      return -1;
    }
    *colon = '\0';
    srv_key *nk = realloc(k->keys, (k->n_keys + 1) * sizeof *nk);
    if (nk == NULL) exit(2);
    k->keys = nk;
    k->keys[k->n_keys].key = xstrdup(tok);
    k->keys[k->n_keys].owner = strcmp(colon + 1, "*") == 0 ? NULL : xstrdup(colon + 1);
    k->n_keys++;
  }
  free(copy);
  return 0;
}

static void add_cors(srv_conf *k, const char *origin) {
  char **n = realloc(k->cors, (k->n_cors + 1) * sizeof *n);
  if (n == NULL) exit(2);
  k->cors = n;
  k->cors[k->n_cors++] = xstrdup(origin);
}

/* The configuration file: every member optional (docs/server.md). */
static int load_config(srv_conf *k, const char *path) {
  char *text = read_file(path, 1 << 20);
  if (text == NULL) return -1;
  json_error_t e;
  json_t *c = json_loads(text, JSON_REJECT_DUPLICATES, &e);
  free(text);
  if (c == NULL || !json_is_object(c)) {
    fprintf(stderr, "jobq-server: %s: %s (line %d)\n", path,
            c ? "the configuration must be a JSON object" : e.text, e.line);
    json_decref(c);
    return -1;
  }
  int rc = 0;
  const char *key;
  json_t *v;
  json_object_foreach(c, key, v) {
    if (strcmp(key, "listen") == 0 && json_is_string(v)) {
      rc = parse_listen(k, json_string_value(v));
    } else if (strcmp(key, "storage") == 0 && json_is_string(v)) {
      free(k->storage);
      k->storage = xstrdup(json_string_value(v));
    } else if (strcmp(key, "workers") == 0 && json_is_integer(v)) {
      if (json_integer_value(v) < 0 || json_integer_value(v) > 1024) {
        fprintf(stderr, "jobq-server: %s: \"workers\" wants 0..1024\n", path);
        rc = -1;
      }
      k->workers = (int)json_integer_value(v);
    } else if (strcmp(key, "submitOnly") == 0 && json_is_boolean(v)) {
      k->submit_only = json_is_true(v);
    } else if (strcmp(key, "keys") == 0 && json_is_array(v)) {
      size_t i;
      json_t *e2;
      json_array_foreach(v, i, e2) {
        const char *kk = json_string_value(json_object_get(e2, "key"));
        const char *ow = json_string_value(json_object_get(e2, "owner"));
        if (kk == NULL || ow == NULL || !*kk || !*ow) {
          fprintf(stderr, "jobq-server: %s: keys[%zu] needs \"key\" and \"owner\" strings\n",
                  path, i);
          rc = -1;
          break;
        }
        srv_key *nk = realloc(k->keys, (k->n_keys + 1) * sizeof *nk);
        if (nk == NULL) exit(2);
        k->keys = nk;
        k->keys[k->n_keys].key = xstrdup(kk);
        k->keys[k->n_keys].owner = strcmp(ow, "*") == 0 ? NULL : xstrdup(ow);
        k->n_keys++;
      }
    } else if (strcmp(key, "cronSecret") == 0 && json_is_string(v)) {
      free(k->cron_secret);
      k->cron_secret = xstrdup(json_string_value(v));
    } else if (strcmp(key, "cors") == 0 && json_is_array(v)) {
      size_t i;
      json_t *e2;
      json_array_foreach(v, i, e2) if (json_is_string(e2)) add_cors(k, json_string_value(e2));
    } else if (strcmp(key, "maxBody") == 0 && json_is_integer(v) && json_integer_value(v) > 0 &&
               json_integer_value(v) <= (1LL << 30)) {
      k->max_body = (size_t)json_integer_value(v);
    } else if (strcmp(key, "requestTimeoutMs") == 0 && json_is_integer(v) &&
               json_integer_value(v) > 0 && json_integer_value(v) <= 3600000) {
      k->req_timeout_ms = json_integer_value(v);
    } else if (strcmp(key, "drainMs") == 0 && json_is_integer(v)) {
      if (json_integer_value(v) < 0 || json_integer_value(v) > 86400000) {
        fprintf(stderr, "jobq-server: %s: \"drainMs\" wants 0..86400000\n", path);
        rc = -1;
      }
      k->drain_ms = json_integer_value(v);
    } else if (strcmp(key, "audioDir") == 0 && json_is_string(v)) {
      free(k->audio_dir);
      k->audio_dir = xstrdup(json_string_value(v));
    } else if (strcmp(key, "pipeline") == 0 && json_is_object(v)) {
      free(k->pipeline_json);
      k->pipeline_json = json_dumps(v, JSON_COMPACT);
    } else if (strcmp(key, "ownerQuotas") == 0 && json_is_object(v)) {
      json_decref(k->quotas);
      k->quotas = json_incref(v);
    } else if (strcmp(key, "pregenerate") == 0 && json_is_object(v)) {
      json_decref(k->pregenerate);
      k->pregenerate = json_incref(v);
    } else if (strcmp(key, "podcast") == 0 && json_is_object(v)) {
      json_decref(k->podcast);
      k->podcast = json_incref(v);
    } else {
      fprintf(stderr, "jobq-server: %s: unknown member or wrong type: \"%s\"\n", path, key);
      rc = -1;
    }
    if (rc) break;
  }
  json_decref(c);
  return rc;
}

static int parse_args(srv_conf *k, int argc, char **argv) {
  /* The config first, so that flags override it wherever they stand. */
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) {
        usage();
        return -1;
      }
      if (load_config(k, argv[i + 1]) != 0) return -1;
    }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    char *end;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage_text, stdout);
      exit(0);
    } else if (strcmp(a, "--config") == 0 && more) {
      i++;
    } else if (strcmp(a, "--listen") == 0 && more) {
      if (parse_listen(k, argv[++i])) return -1;
    } else if (strcmp(a, "--storage") == 0 && more) {
      free(k->storage);
      k->storage = xstrdup(argv[++i]);
    } else if (strcmp(a, "--workers") == 0 && more) {
      long n = strtol(argv[++i], &end, 10);
      if (*end || n < 0 || n > 1024) {
        fprintf(stderr, "jobq-server: --workers wants 0..1024\n");
        return -1;
      }
      k->workers = (int)n;
    } else if (strcmp(a, "--submit-only") == 0) {
      k->submit_only = 1;
    } else if (strcmp(a, "--no-auth") == 0) {
      k->no_auth = 1;
    } else if (strcmp(a, "--quiet") == 0) {
      k->quiet = 1;
    } else if (strcmp(a, "--audio-dir") == 0 && more) {
      free(k->audio_dir);
      k->audio_dir = xstrdup(argv[++i]);
    } else if (strcmp(a, "--cors") == 0 && more) {
      add_cors(k, argv[++i]);
    } else if (strcmp(a, "--max-body") == 0 && more) {
      long long n = strtoll(argv[++i], &end, 10);
      if (*end || n < 1 || n > (1LL << 30)) {
        fprintf(stderr, "jobq-server: --max-body wants 1..1073741824\n");
        return -1;
      }
      k->max_body = (size_t)n;
    } else if (strcmp(a, "--request-timeout") == 0 && more) {
      long long n = strtoll(argv[++i], &end, 10);
      if (*end || n < 1 || n > 3600000) {
        fprintf(stderr, "jobq-server: --request-timeout wants 1..3600000 ms\n");
        return -1;
      }
      k->req_timeout_ms = n;
    } else if (strcmp(a, "--drain") == 0 && more) {
      long long n = strtoll(argv[++i], &end, 10);
      /* Never "wait for ever" (-1): with the queue on this loop, jobq_close
       * blocks the loop, so jobs running on it could never finish. */
      if (*end || n < 0 || n > 86400000) {
        fprintf(stderr, "jobq-server: --drain wants 0..86400000 ms\n");
        return -1;
      }
      k->drain_ms = n;
    } else {
      fprintf(stderr, "jobq-server: unknown or incomplete argument '%s'\n", a);
      usage();
      return -1;
    }
  }
  return 0;
}

/* ---- shutdown ---- */

static void on_closed_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void finish_shutdown(void) {
  uv_timer_stop(&drain_timer);
  uv_close((uv_handle_t *)&drain_timer, NULL);
  /* The queue: with a host loop jobq_close runs here, on the loop's thread. */
  int rc = jobq_close(S.q, (int)S.conf.drain_ms);
  S.q = NULL;
  if (rc != 0) fprintf(stderr, "jobq-server: closing the queue: %s\n", jobq_last_error());
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  srv_http_dispose(&S);
  /* H2O's connections that outlived the grace period go with the loop. */
  uv_walk(S.loop, on_closed_walk, NULL);
}

static void on_drain_tick(uv_timer_t *t) {
  (void)t;
  uint64_t waited_ms = (uv_hrtime() - drain_started) / 1000000;
  if (S.inflight > 0 && waited_ms < REQUEST_GRACE_MS) return;
  /* Answered: let H2O close the connections (a second at most). */
  if (S.inflight == 0 && !srv_http_idle(&S) && waited_ms < REQUEST_GRACE_MS + 1000) {
    if (conns_wait_from == 0) conns_wait_from = waited_ms;
    if (waited_ms - conns_wait_from < 1000) return;
  }
  if (S.inflight > 0)
    fprintf(stderr, "jobq-server: %ld requests still unanswered after %d ms; closing anyway\n",
            S.inflight, REQUEST_GRACE_MS);
  finish_shutdown();
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (S.draining) return;
  S.draining = 1;
  fprintf(stderr, "jobq-server: %s: stop accepting, answer what is in flight, close the queue\n",
          signum == SIGTERM ? "SIGTERM" : "SIGINT");
  srv_http_stop_accepting(&S);
  srv_stream_stop(&S);
  drain_started = uv_hrtime();
  uv_timer_start(&drain_timer, on_drain_tick, 0, 10);
}

/* ---- webhook endpoints from the environment ---- */

extern char **environ;

#define SECRET_VAR "JOBQ_WEBHOOK_SECRET_"

/* Every JOBQ_WEBHOOK_SECRET_<NAME>=whsec_... is endpoint <name> (lower
 * case), which signs the URLs jobs bring ("webhook" in POST /v1/jobs), and
 * JOBQ_WEBHOOK_ALLOW the allow-list of internal addresses; as with the jobq
 * command, so that a server and its worker processes agree. The secret goes
 * from the environment into the options, nowhere else. 0, or -1 after a
 * sentence that names the variable (never its value). */
static int add_endpoints(jobq_options_t *o, int submit_only) {
  const char *allow = getenv("JOBQ_WEBHOOK_ALLOW");
  if (allow && *allow && jobq_options_set_webhook_allow(o, allow) != 0) {
    fprintf(stderr, "jobq-server: JOBQ_WEBHOOK_ALLOW: %s\n", jobq_last_error());
    return -1;
  }
  size_t pl = strlen(SECRET_VAR);
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (strncmp(*e, SECRET_VAR, pl) != 0 || eq == NULL) continue;
    char name[128];
    size_t len = (size_t)(eq - (*e + pl)), i;
    for (i = 0; i < len && i + 1 < sizeof name; i++) {
      char ch = (*e)[pl + i];
      name[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    name[i] = '\0';
    S.n_endpoints++;
    snprintf(S.endpoint_buf, sizeof S.endpoint_buf, "%s", name);
    S.default_endpoint = S.n_endpoints == 1 ? S.endpoint_buf : NULL;
    if (jobq_options_add_webhook(o, name, NULL, eq + 1) != 0) {
      fprintf(stderr, "jobq-server: %.*s: %s\n", (int)(eq - *e), *e, jobq_last_error());
      return -1;
    }
  }
  /* Submit-only or not, the server sends deliveries too (its sender starts
   * at jobq_open): any live process that has the secret delivers. */
  (void)submit_only;
  return 0;
}

/* ---- start ---- */

/* "ownerQuotas": {"kind": max, ...}: per owner, at most max unfinished jobs
 * of the kind ("*": of all kinds); a submit past it answers 429. */
static int set_quotas(jobq_options_t *o, json_t *quotas) {
  const char *kind;
  json_t *v;
  json_object_foreach(quotas, kind, v) {
    int rc = json_is_integer(v) ? jobq_options_set_owner_quota(o, strcmp(kind, "*") ? kind : NULL,
                                                                 (int)json_integer_value(v))
                                : JOBQ_EINVAL;
    if (rc != 0) {
      fprintf(stderr, "jobq-server: ownerQuotas.%s: %s\n", kind,
              json_is_integer(v) ? jobq_last_error() : "wants an integer");
      return rc;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  srv_conf *k = &S.conf;
  k->listen_host = xstrdup("127.0.0.1");
  k->listen_port = 8080;
  k->workers = 4;
  k->max_body = 1 << 20;
  k->req_timeout_ms = 10000;
  k->audio_dir = xstrdup("podcasts");
  const char *env_storage = getenv("JOBQ_STORAGE");
  k->storage = xstrdup(env_storage && *env_storage ? env_storage : "sqlite:./jobq.db");
  const char *env_keys = getenv("JOBQ_API_KEYS");
  if (env_keys && *env_keys && add_keys(k, env_keys, "JOBQ_API_KEYS") != 0) return 2;
  const char *env_cron = getenv("JOBQ_CRON_SECRET");
  if (env_cron && *env_cron) k->cron_secret = xstrdup(env_cron);
  if (parse_args(k, argc, argv) != 0) return 2;
  if (k->n_keys == 0 && !k->no_auth) {
    fprintf(stderr, "jobq-server: no API keys: set JOBQ_API_KEYS=key:owner,... (owner * for an "
                    "administrator) or \"keys\" in --config; --no-auth serves without keys\n");
    return 2;
  }
  /* Submits and cancels wait for a commit on libuv's pool: more threads
   * than its default 4 let more of them share each group commit. */
  if (getenv("UV_THREADPOOL_SIZE") == NULL) setenv("UV_THREADPOOL_SIZE", "16", 1);
  signal(SIGPIPE, SIG_IGN);

  S.loop = uv_default_loop();
  S.started = uv_hrtime();
  jobq_options_t *o = jobq_options_new();
  if (o == NULL) return 2;
  if (add_endpoints(o, k->submit_only) != 0 || set_quotas(o, k->quotas) != 0) {
    jobq_options_free(o);
    return 2;
  }
  int rc;
  if ((rc = jobq_options_set_storage(o, k->storage)) != 0 ||
      (rc = jobq_options_set_loop(o, S.loop)) != 0 ||
      (rc = jobq_options_set_workers(o, k->submit_only ? 0 : k->workers)) != 0 ||
      (rc = jobq_options_set_shared_events(o, 1)) != 0 || (rc = jobq_open(&S.q, o)) != 0) {
    char shown[1024];
    fprintf(stderr, "jobq-server: cannot open the queue on %s: %s (%s)\n",
            url_shown(k->storage, shown, sizeof shown), jobq_last_error(), jobq_err_name(rc));
    jobq_options_free(o);
    return 1;
  }
  jobq_options_free(o);
  if ((rc = srv_podcast_setup(&S)) != 0 || (rc = srv_stream_start(&S)) != 0 ||
      (!k->submit_only && (rc = jobq_start(S.q)) != 0)) {
    if (rc < 0)
      fprintf(stderr, "jobq-server: cannot start: %s (%s)\n", jobq_last_error(),
              jobq_err_name(rc));
    jobq_close(S.q, 0);
    uv_run(S.loop, UV_RUN_DEFAULT);
    return 1;
  }
  if (srv_http_start(&S) != 0) {
    jobq_close(S.q, 0);
    uv_walk(S.loop, on_closed_walk, NULL);
    uv_run(S.loop, UV_RUN_DEFAULT);
    return 1;
  }
  uv_signal_init(S.loop, &sig_term);
  uv_signal_init(S.loop, &sig_int);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_timer_init(S.loop, &drain_timer);
  char shown[1024];
  fprintf(stderr, "jobq-server: listening on http://%s%s%s:%d/ (storage %s, %s)\n",
          strchr(k->listen_host, ':') ? "[" : "", k->listen_host,
          strchr(k->listen_host, ':') ? "]" : "", k->listen_port,
          url_shown(k->storage, shown, sizeof shown),
          k->submit_only ? "submit-only" : "running jobs");
  uv_run(S.loop, UV_RUN_DEFAULT);
  uv_loop_close(S.loop);
  fprintf(stderr, "jobq-server: stopped\n");
  return 0;
}
