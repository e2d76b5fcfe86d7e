/* jobq: the command-line face of libjobq. Submit, inspect, wait for, cancel
 * and run jobs in a queue that lives in a SQLite file (./jobq.db unless
 * --storage or $JOBQ_STORAGE says otherwise), so that several shells, or an
 * API process and worker processes, share one queue.
 *
 *   jobq submit KIND [PAYLOAD] [--owner O] [--priority N] [--delay MS] [--key K [--ttl MS]]
 *                   [--webhook URL [--endpoint NAME]]
 *   jobq get ID | jobq wait ID [--timeout MS] | jobq cancel ID
 *   jobq list [--owner O] [--kind K] [--state S] [--limit N] [--oldest]
 *   jobq work KIND... [--workers N] [--for MS]    run the demo handler (below)
 *   jobq worker --config FILE [--workers N] [--for MS]   run the pipelines FILE names
 *   jobq events [--for MS]                        print events as JSON lines
 *   jobq cron list | cron remove NAME
 *   jobq cron add NAME EXPR KIND [PAYLOAD] [--tz TZ] [--owner O] [--priority N] [--missed P]
 *   jobq cron next EXPR [--tz TZ] [--count N]     the next runs, UTC and local
 *   jobq stats [--json | --prometheus]            what every process on the store did
 *   jobq webhooks list [--job ID] [--state S] [--limit N] [--cursor C] [--json]
 *   jobq webhooks redeliver DELIVERY_ID | webhooks enable URL
 *
 * Webhook endpoints come from the environment: every JOBQ_WEBHOOK_SECRET_<NAME>
 * ("whsec_..." secret) is an endpoint named <name> (lower case) in `submit`
 * and `work` (and `worker`); `submit --webhook URL` signs with endpoint "cli" unless
 * --endpoint names another, and `work` sends the deliveries of all of them.
 * JOBQ_WEBHOOK_ALLOW is the allow-list of internal addresses (e.g.
 * 127.0.0.1 for a receiver on this machine).
 * PAYLOAD is JSON text, @FILE (the whole file) or - (standard input), at
 * most MAX_PAYLOAD bytes. Every argument is checked before the queue is
 * opened: a bad one is a usage error (exit 2) and nothing is stored.
 *
 * The demo handler reads {"ms": N, "fail": "why", "retry": true} from the
 * payload: it works N ms in ten steps with progress, then succeeds echoing
 * the payload, or fails with the message (retryably if "retry" is true).
 *
 * `worker` runs real pipelines (docs/stages.md) instead: the configuration
 * file is {"pipelines": {KIND: STAGES, ...}}, or STAGES alone ({"script":
 * ..., "tts": ..., "upload": ...}, the form jobq-server's "pipeline" member
 * and examples/podcast.c take) for the kind "podcast". With it, a
 * `jobq-server --submit-only` and `jobq worker` processes on one SQLite file
 * are the whole job service. Including jobq/stages.h links libjobq-stages. */
#include <jobq.h>
#include <jobq/stages.h>

#include "url_shown.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The largest payload: the library's default max payload, set explicitly in
 * open_queue so that the CLI and the queue cannot disagree. (A result is
 * held to the same limit, and the demo handler echoes its payload.) */
#define MAX_PAYLOAD ((size_t)1 << 20)
/* Durations in ms (--delay, --ttl, --timeout, --for): 0..ten years, the
 * range jobq_submit_opts_set_delay takes. */
#define MAX_MS (INT64_C(3650) * 86400000)

_Static_assert(MAX_PAYLOAD == 1048576, "the help text says 1048576 bytes");
_Static_assert(MAX_MS == INT64_C(315360000000), "the help text says 315360000000 ms");

static const char *storage;
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static const char help_text[] =
    "usage: jobq [--storage URL] COMMAND ARGS...\n"
    "  submit KIND [PAYLOAD] [--owner O] [--priority N] [--delay MS] [--key K [--ttl MS]]\n"
    "         [--webhook URL [--endpoint NAME]]\n"
    "  get ID | wait ID [--timeout MS] | cancel ID\n"
    "  list [--owner O] [--kind K] [--state S] [--limit N] [--oldest]\n"
    "  work KIND... [--workers N] [--for MS]\n"
    "  worker --config FILE [--workers N] [--for MS]\n"
    "  events [--for MS]\n"
    "  cron list | cron remove NAME\n"
    "  cron add NAME EXPR KIND [PAYLOAD] [--tz TZ] [--owner O] [--priority N] [--missed P]\n"
    "  cron next EXPR [--tz TZ] [--count N]\n"
    "  stats [--json | --prometheus]\n"
    "  webhooks list [--job ID] [--state S] [--limit N] [--cursor C] [--json]\n"
    "  webhooks redeliver DELIVERY_ID | webhooks enable URL\n"
    "  --help\n"
    "PAYLOAD is JSON text (default {}), or @FILE to read it from FILE, or - to read\n"
    "  it from standard input; at most 1048576 bytes (1 MiB). JSON never starts with\n"
    "  '@', so an argument starting with '@' always names a file (@@x: the file @x).\n"
    "N: --priority -1000..1000 (higher runs first), --limit 1..1000, --workers 1..1024.\n"
    "work: runs the demo handler ({\"ms\": N} works N ms; {\"fail\": \"why\"} fails) for KIND.\n"
    "worker: runs the pipelines FILE names (docs/stages.md): {\"pipelines\": {KIND: STAGES,\n"
    "  ...}}, or STAGES alone ({\"script\": ..., \"tts\": ..., \"upload\": ...}) as kind\n"
    "  podcast; --workers: jobs of each pipeline at once (default 4). A bad FILE: exit 2.\n"
    "MS: milliseconds, 0..315360000000 (ten years). --ttl (needs --key) keeps the key\n"
    "  of a succeeded job live for MS more; without it, only while the job is unfinished.\n"
    "cron: schedules kept in the storage; every `jobq work` or `worker` process runs\n"
    "  their occurrences, each once. EXPR: 5 cron fields or @hourly/@daily/..., in TZ\n"
    "  (default UTC; \"Europe/Berlin\", \"+05:30\"). NAME: 1..128 of A-Z a-z 0-9 _ . : -\n"
    "  --missed latest|skip|all: occurrences missed while no worker ran (default latest).\n"
    "  --count 1..1000 (default 5).\n"
    "Numbers are decimal integers; anything else is a usage error. Options may come\n"
    "  before or after the positional arguments; a value never starts with \"--\".\n"
    "webhooks: every JOBQ_WEBHOOK_SECRET_<NAME>=whsec_... in the environment is an\n"
    "  endpoint <name> (lower case) for submit, work and worker. submit --webhook URL (up\n"
    "  to 8) announces the job's end to URL, signed by endpoint --endpoint (default cli,\n"
    "  so JOBQ_WEBHOOK_SECRET_CLI); work and worker send the deliveries of every\n"
    "  endpoint they know.\n"
    "  JOBQ_WEBHOOK_ALLOW: internal addresses URLs may reach (\"127.0.0.1\"; default none).\n"
    "  list: a table (--json: the page as JSON); --state pending|sending|delivered|failed,\n"
    "  --limit 1..1000 (default 50), --cursor C from the previous page.\n"
    "  redeliver: a failed delivery again; enable: a URL disabled by a 410 answer.\n"
    "storage: --storage URL, else $JOBQ_STORAGE, else sqlite:jobq.db\n"
    "exit status: 0 done; 2 a usage error (nothing stored) or another error;\n"
    "  wait: 1 the job failed or was cancelled, 3 --timeout passed\n";

static const struct {
  const char *cmd, *synopsis;
} synopses[] = {
    {"submit", "submit KIND [PAYLOAD] [--owner O] [--priority N] [--delay MS] [--key K [--ttl MS]]\n"
               "       [--webhook URL [--endpoint NAME]]"},
    {"get", "get ID"},
    {"wait", "wait ID [--timeout MS]"},
    {"cancel", "cancel ID"},
    {"list", "list [--owner O] [--kind K] [--state S] [--limit N] [--oldest]"},
    {"work", "work KIND... [--workers N] [--for MS]"},
    {"worker", "worker --config FILE [--workers N] [--for MS]"},
    {"events", "events [--for MS]"},
    {"cron", "cron list | cron remove NAME | cron next EXPR [--tz TZ] [--count N]\n"
             "       jobq cron add NAME EXPR KIND [PAYLOAD] [--tz TZ] [--owner O] [--priority N] "
             "[--missed P]"},
    {"stats", "stats [--json | --prometheus]"},
    {"webhooks", "webhooks list [--job ID] [--state S] [--limit N] [--cursor C] [--json]\n"
                 "       jobq webhooks redeliver DELIVERY_ID | jobq webhooks enable URL"},
};

static int help(void) {
  fputs(help_text, stdout);
  return 0;
}

/* A usage error: "jobq: CMD: what", the command's synopsis (the whole help
 * without a command), on stderr; returns the exit status 2. */
static int usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("jobq: ", stderr);
  if (cmd) fprintf(stderr, "%s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  for (size_t i = 0; cmd && i < sizeof synopses / sizeof synopses[0]; i++)
    if (strcmp(synopses[i].cmd, cmd) == 0) {
      fprintf(stderr, "usage: jobq %s\n(jobq --help says more)\n", synopses[i].synopsis);
      return 2;
    }
  fputs(help_text, stderr);
  return 2;
}

static int fail(const char *what) {
  fprintf(stderr, "jobq: %s: %s\n", what, jobq_last_error());
  return 2;
}

/* The value of the option argv[*i] (and *i moves onto it), or NULL after a
 * usage error when there is none. */
static const char *value(const char *cmd, int argc, char **argv, int *i) {
  if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
    usage_error(cmd, "%s needs a value", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

/* The value of the option argv[*i] as a decimal integer in lo..hi: 0, or 2
 * after a usage error that names the option and the range. Empty text,
 * blanks, trailing characters and numbers out of range are refused. */
static int number(const char *cmd, int argc, char **argv, int *i, long long lo, long long hi,
                  long long *out) {
  const char *opt = argv[*i];
  const char *text = value(cmd, argc, argv, i);
  if (text == NULL) return 2;
  const char *p = text + (text[0] == '-' || text[0] == '+');
  if (*p >= '0' && *p <= '9') {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*end == '\0' && errno == 0 && v >= lo && v <= hi) {
      *out = v;
      return 0;
    }
  }
  return usage_error(cmd, "%s takes %s %lld..%lld%s, not '%s'", opt,
                     hi == MAX_MS ? "milliseconds," : "an integer in", lo, hi,
                     hi == MAX_MS ? " (ten years)" : "", text);
}

static int is_option(const char *a) { return strncmp(a, "--", 2) == 0; }

/* Reads all of f into *out (NUL-terminated, to free), refusing more than
 * MAX_PAYLOAD bytes and NUL bytes. where names the source in messages. */
static int read_payload(FILE *f, const char *where, char **out) {
  size_t cap = 0, len = 0;
  char *buf = NULL;
  for (;;) {
    if (len == cap) {
      /* Never more than one byte past the limit: that byte says "too big". */
      size_t ncap = cap ? cap * 2 : 65536;
      if (ncap > MAX_PAYLOAD + 1) ncap = MAX_PAYLOAD + 1;
      if (ncap == cap) break;
      char *nb = realloc(buf, ncap + 1);
      if (nb == NULL) {
        free(buf);
        fprintf(stderr, "jobq: submit: out of memory reading the payload from %s\n", where);
        return 2;
      }
      buf = nb;
      cap = ncap;
    }
    size_t want = cap - len;
    size_t n = fread(buf + len, 1, want, f);
    len += n;
    if (n < want) {
      if (ferror(f)) {
        fprintf(stderr, "jobq: submit: cannot read the payload from %s: %s\n", where,
                strerror(errno));
        free(buf);
        return 2;
      }
      break;
    }
  }
  if (len > MAX_PAYLOAD) {
    fprintf(stderr,
            "jobq: submit: the payload from %s is larger than %zu bytes (1 MiB), the most a job "
            "takes\n",
            where, MAX_PAYLOAD);
    free(buf);
    return 2;
  }
  const char *nul = memchr(buf, '\0', len);
  if (nul) {
    fprintf(stderr,
            "jobq: submit: the payload from %s has a NUL byte at offset %zu; JSON text has none "
            "(write \\u0000 inside a string)\n",
            where, (size_t)(nul - buf));
    free(buf);
    return 2;
  }
  buf[len] = '\0';
  *out = buf;
  return 0;
}

/* The payload that the PAYLOAD argument arg stands for: arg itself, or read
 * from @FILE or - (then *buf is set, to free). 0 or the exit status 2. */
static int load_payload(const char *arg, const char **payload, char **buf) {
  *buf = NULL;
  if (strcmp(arg, "-") == 0) {
    int rc = read_payload(stdin, "standard input", buf);
    if (rc == 0) *payload = *buf;
    return rc;
  }
  if (arg[0] != '@') {
    *payload = arg;
    return 0;
  }
  const char *path = arg + 1;
  if (path[0] == '\0') return usage_error("submit", "'@' needs a file name: @FILE");
  size_t wlen = strlen(path) + 3;
  char *where = malloc(wlen);
  if (where == NULL) {
    fprintf(stderr, "jobq: submit: out of memory\n");
    return 2;
  }
  snprintf(where, wlen, "'%s'", path);
  int rc = 2;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "jobq: submit: cannot read the payload file %s: %s\n", where, strerror(errno));
  } else {
    rc = read_payload(f, where, buf);
    fclose(f);
    if (rc == 0) *payload = *buf;
  }
  free(where);
  return rc;
}

/* ---- webhook endpoints from the environment ---- */

extern char **environ;

#define SECRET_VAR "JOBQ_WEBHOOK_SECRET_"

/* The endpoint name that the environment entry e ("NAME=VALUE") stands
 * for, in lower case, into name (cap bytes); NULL if e is not a
 * JOBQ_WEBHOOK_SECRET_<NAME> entry. A name too long for name is cut, and
 * jobq_options_add_webhook then refuses it (names take at most 64 bytes). */
static const char *endpoint_of(const char *e, char *name, size_t cap) {
  size_t pl = strlen(SECRET_VAR);
  if (strncmp(e, SECRET_VAR, pl) != 0) return NULL;
  const char *n = e + pl, *eq = strchr(n, '=');
  if (eq == NULL) return NULL;
  size_t len = (size_t)(eq - n), i;
  for (i = 0; i < len && i + 1 < cap; i++)
    name[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] - 'A' + 'a' : n[i]);
  name[i] = '\0';
  return eq + 1;
}

/* Whether the environment has a secret for endpoint `name`. */
static int endpoint_known(const char *name) {
  char n[128];
  for (char **e = environ; *e; e++)
    if (endpoint_of(*e, n, sizeof n) && strcmp(n, name) == 0) return 1;
  return 0;
}

/* Every JOBQ_WEBHOOK_SECRET_<NAME> as endpoint <name> (no URL of its own:
 * it signs the URLs jobs bring), and JOBQ_WEBHOOK_ALLOW as the allow-list:
 * 0, or the exit status 2 after a sentence that names the variable. The
 * secret goes from the environment into the options, nowhere else
 * (jobq_options_add_webhook's sentences never quote it). */
static int add_endpoints(jobq_options_t *o) {
  const char *allow = getenv("JOBQ_WEBHOOK_ALLOW");
  if (allow && jobq_options_set_webhook_allow(o, allow) != 0) {
    fprintf(stderr, "jobq: JOBQ_WEBHOOK_ALLOW: %s\n", jobq_last_error());
    return 2;
  }
  for (char **e = environ; *e; e++) {
    char name[128];
    const char *secret = endpoint_of(*e, name, sizeof name);
    if (secret && jobq_options_add_webhook(o, name, NULL, secret) != 0) {
      fprintf(stderr, "jobq: %.*s: %s\n", (int)(secret - 1 - *e), *e, jobq_last_error());
      return 2;
    }
  }
  return 0;
}

/* Which webhook configuration a command's queue gets. */
enum { HOOKS_NONE, HOOKS_SIGN, HOOKS_SEND };

/* HOOKS_SIGN: the endpoints, to subscribe jobs to them, but no sending (the
 * process ends right after; the workers send). HOOKS_SEND: the endpoints,
 * and this process sends their deliveries. */
static int open_queue_hooks(jobq_t **q, int workers, int hooks) {
  jobq_options_t *o = jobq_options_new();
  if (o == NULL) return fail("options");
  int rc = jobq_options_set_storage(o, storage);
  if (rc == 0) rc = jobq_options_set_workers(o, workers);
  if (rc == 0) rc = jobq_options_set_max_payload(o, MAX_PAYLOAD);
  if (rc == 0 && hooks != HOOKS_NONE && add_endpoints(o) != 0) {
    jobq_options_free(o);
    return 2;
  }
  if (rc == 0 && hooks == HOOKS_SIGN) rc = jobq_options_set_webhook_concurrency(o, 0);
  if (rc == 0) rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc ? fail("open") : 0;
}

static int open_queue(jobq_t **q, int workers) { return open_queue_hooks(q, workers, HOOKS_NONE); }

static void print_job(const jobq_job_t *job) {
  char *js = jobq_job_to_json(job);
  if (js) puts(js);
  jobq_free(js);
}

static int cmd_submit(int argc, char **argv) {
  const char *C = "submit";
  const char *kind = NULL, *payload_arg = NULL, *owner = NULL, *key = NULL, *endpoint = NULL;
  const char *hooks[8];
  int nhooks = 0;
  long long priority = 0, delay = -1, ttl = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--webhook") == 0) {
      if (nhooks == 8) return usage_error(C, "a job takes at most 8 --webhook URLs");
      if ((hooks[nhooks++] = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--endpoint") == 0) {
      if ((endpoint = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--owner") == 0) {
      if ((owner = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--key") == 0) {
      if ((key = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--priority") == 0) {
      if (number(C, argc, argv, &i, -1000, 1000, &priority)) return 2;
    } else if (strcmp(a, "--delay") == 0) {
      if (number(C, argc, argv, &i, 0, MAX_MS, &delay)) return 2;
    } else if (strcmp(a, "--ttl") == 0) {
      if (number(C, argc, argv, &i, 0, MAX_MS, &ttl)) return 2;
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else if (kind == NULL) {
      kind = a;
    } else if (payload_arg == NULL) {
      payload_arg = a;
    } else {
      return usage_error(C, "unexpected argument '%s' (the payload is one argument: quote it)", a);
    }
  }
  if (kind == NULL) return usage_error(C, "needs a KIND");
  if (ttl >= 0 && key == NULL)
    return usage_error(C, "--ttl needs --key (it is how long a succeeded job keeps its key)");
  if (endpoint && nhooks == 0)
    return usage_error(C, "--endpoint needs --webhook (it names the secret that signs the URL)");
  if (nhooks && endpoint == NULL) endpoint = "cli";
  if (nhooks && !endpoint_known(endpoint)) {
    char var[128];
    size_t i = 0;
    for (const char *p = endpoint; *p && i + 1 < sizeof var; p++)
      var[i++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    var[i] = '\0';
    return usage_error(C, "--webhook: endpoint '%s' has no secret: set " SECRET_VAR "%s=whsec_...",
                       endpoint, var);
  }
  /* The URLs are checked (scheme, host, length, no credentials) before the
   * queue is opened, so that a bad one stores nothing. */
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  if (so == NULL) return fail("submit");
  for (int h = 0; h < nhooks; h++)
    if (jobq_submit_opts_add_webhook(so, hooks[h], endpoint, 0) != 0) {
      jobq_submit_opts_free(so);
      return usage_error(C, "--webhook: %s", jobq_last_error());
    }

  const char *payload = "{}";
  char *buf = NULL;
  if (payload_arg && load_payload(payload_arg, &payload, &buf)) {
    jobq_submit_opts_free(so);
    return 2;
  }

  jobq_t *q;
  if (open_queue_hooks(&q, 0, nhooks ? HOOKS_SIGN : HOOKS_NONE)) {
    jobq_submit_opts_free(so);
    free(buf);
    return 2;
  }
  int rc = 0;
  if (rc == 0 && owner) rc = jobq_submit_opts_set_owner(so, owner);
  if (rc == 0) rc = jobq_submit_opts_set_priority(so, (int)priority);
  if (rc == 0 && delay >= 0) rc = jobq_submit_opts_set_delay(so, delay);
  if (rc == 0 && key) rc = jobq_submit_opts_set_dedupe(so, key, ttl >= 0 ? ttl : 0);
  char id[JOBQ_ID_SIZE];
  if (rc == 0) rc = jobq_submit(q, kind, payload, so, id);
  jobq_submit_opts_free(so);
  free(buf);
  int status = rc < 0 ? fail("submit") : 0;
  if (rc >= 0) printf("%s%s\n", id, rc == 1 ? " (existing job: dedupe key is live)" : "");
  jobq_close(q, 0);
  return status;
}

/* get ID, cancel ID: exactly one job id. 0, the exit status 2 after a usage
 * error, or -1 after --help (exit 0). */
static int one_id(const char *C, int argc, char **argv, const char **id) {
  *id = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) {
      help();
      return -1;
    }
    if (is_option(argv[i])) return usage_error(C, "unknown option '%s'", argv[i]);
    if (*id) return usage_error(C, "takes one job id, not also '%s'", argv[i]);
    *id = argv[i];
  }
  if (*id == NULL) return usage_error(C, "needs a job id");
  return 0;
}

static int cmd_get(int argc, char **argv) {
  const char *id;
  int rc = one_id("get", argc, argv, &id);
  if (rc) return rc < 0 ? 0 : rc;
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  jobq_job_t *job;
  if (jobq_get(q, id, &job) != 0) rc = fail("get");
  else {
    print_job(job);
    jobq_job_free(job);
  }
  jobq_close(q, 0);
  return rc;
}

static int cmd_cancel(int argc, char **argv) {
  const char *id;
  int rc = one_id("cancel", argc, argv, &id);
  if (rc) return rc < 0 ? 0 : rc;
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  if (jobq_cancel(q, id) != 0) rc = fail("cancel");
  jobq_close(q, 0);
  return rc;
}

static long long elapsed_ms(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static int wait_for(jobq_t *q, const char *id, long long timeout) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    long long left = timeout < 0 ? 1000 : timeout - elapsed_ms(&t0);
    jobq_job_t *job = NULL;
    int rc = jobq_wait(q, id, left < 0 ? 0 : left > 1000 ? 1000 : (int)left, &job);
    if (rc < 0 && rc != JOBQ_ETIMEDOUT) return fail("wait");
    int st = jobq_job_state(job);
    if (jobq_state_is_terminal(st)) {
      print_job(job);
      jobq_job_free(job);
      return st == JOBQ_SUCCEEDED ? 0 : 1;
    }
    fprintf(stderr, "%s %3d%% %s\n", jobq_state_name(st), jobq_job_progress(job),
            jobq_job_step(job) ? jobq_job_step(job) : "");
    jobq_job_free(job);
    long long ms = elapsed_ms(&t0);
    if (stop || (timeout >= 0 && ms >= timeout)) {
      fprintf(stderr, "jobq: wait: not finished after %lld ms\n", ms);
      return 3;
    }
  }
}

static int cmd_wait(int argc, char **argv) {
  const char *C = "wait", *id = NULL;
  long long timeout = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--timeout") == 0) {
      if (number(C, argc, argv, &i, 0, MAX_MS, &timeout)) return 2;
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else if (id) {
      return usage_error(C, "takes one job id, not also '%s'", a);
    } else {
      id = a;
    }
  }
  if (id == NULL) return usage_error(C, "needs a job id");
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  int rc = wait_for(q, id, timeout);
  jobq_close(q, 0);
  return rc;
}

static int cmd_list(int argc, char **argv) {
  const char *C = "list", *owner = NULL, *kind = NULL;
  long long limit = 0;
  int state = -1, oldest = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "--owner") == 0) {
      if ((owner = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--kind") == 0) {
      if ((kind = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--limit") == 0) {
      if (number(C, argc, argv, &i, 1, 1000, &limit)) return 2;
    } else if (strcmp(a, "--oldest") == 0) {
      oldest = 1;
    } else if (strcmp(a, "--state") == 0) {
      if ((v = value(C, argc, argv, &i)) == NULL) return 2;
      state = -1;
      for (int s = JOBQ_QUEUED; s <= JOBQ_CANCELLED; s++)
        if (strcmp(jobq_state_name(s), v) == 0) state = s;
      if (state < 0) {
        char names[128] = "";
        for (int s = JOBQ_QUEUED; s <= JOBQ_CANCELLED; s++) {
          if (s > JOBQ_QUEUED) strncat(names, ", ", sizeof names - strlen(names) - 1);
          strncat(names, jobq_state_name(s), sizeof names - strlen(names) - 1);
        }
        return usage_error(C, "--state takes one of %s, not '%s'", names, v);
      }
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else {
      return usage_error(C, "unexpected argument '%s'", a);
    }
  }
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  jobq_filter_t *f = jobq_filter_new();
  int rc = f ? 0 : JOBQ_ENOMEM;
  if (rc == 0 && owner) rc = jobq_filter_set_owner(f, owner);
  if (rc == 0 && kind) rc = jobq_filter_set_kind(f, kind);
  if (rc == 0 && limit) rc = jobq_filter_set_limit(f, (int)limit);
  if (rc == 0 && oldest) rc = jobq_filter_set_newest_first(f, 0);
  if (rc == 0 && state >= 0) rc = jobq_filter_set_state(f, state);
  jobq_page_t *page = NULL;
  if (rc == 0) rc = jobq_list(q, f, &page);
  jobq_filter_free(f);
  if (rc != 0) {
    rc = fail("list");
  } else {
    for (size_t i = 0; i < jobq_page_count(page); i++) print_job(jobq_page_job(page, i));
    if (jobq_page_next_cursor(page)) fprintf(stderr, "(more: raise --limit)\n");
    jobq_page_free(page);
  }
  jobq_close(q, 0);
  return rc;
}

static void demo(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  json_t *p = json_loads(jobq_ctx_payload(ctx), JSON_DECODE_ANY, NULL);
  long ms = (long)json_integer_value(json_object_get(p, "ms"));
  const char *why = json_string_value(json_object_get(p, "fail"));
  int retry = json_is_true(json_object_get(p, "retry"));
  for (int step = 1; step <= 10; step++) {
    if (jobq_ctx_cancelled(ctx)) {
      json_decref(p);
      jobq_ctx_fail(ctx, "stopped: cancelled", 0);
      return;
    }
    struct timespec ts = {ms / 10 / 1000, (ms / 10 % 1000) * 1000000};
    nanosleep(&ts, NULL);
    char text[64];
    snprintf(text, sizeof text, "Working... step %d of 10", step);
    jobq_ctx_progress(ctx, step * 10, text);
  }
  if (why) jobq_ctx_fail(ctx, why, retry);
  else jobq_ctx_succeed(ctx, jobq_ctx_payload(ctx));
  json_decref(p);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static int cmd_work(int argc, char **argv) {
  const char *C = "work";
  long long workers = 4, for_ms = -1;
  int nk = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--workers") == 0) {
      if (number(C, argc, argv, &i, 1, 1024, &workers)) return 2;
    } else if (strcmp(a, "--for") == 0) {
      if (number(C, argc, argv, &i, 0, MAX_MS, &for_ms)) return 2;
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else {
      nk++;
    }
  }
  if (nk == 0) return usage_error(C, "needs at least one KIND");
  jobq_t *q;
  if (open_queue_hooks(&q, (int)workers, HOOKS_SEND)) return 2;
  int rc = 0;
  /* The arguments were checked above: every option here takes a value. */
  for (int i = 0; i < argc && rc == 0; i++) {
    if (is_option(argv[i])) i++;
    else if (jobq_register(q, argv[i], demo, NULL, NULL) != 0) rc = fail("register");
  }
  if (rc == 0 && jobq_start(q) != 0) rc = fail("start");
  if (rc) {
    jobq_close(q, 0);
    return rc;
  }
  char shown[1024];
  fprintf(stderr, "jobq: working (%lld workers) on %s; Ctrl-C stops\n", workers,
          url_shown(storage, shown, sizeof shown));
  for (long long t = 0; !stop && (for_ms < 0 || t < for_ms); t += 50) sleep_ms(50);
  return jobq_close(q, 10000) ? fail("close") : 0;
}

/* ---- worker: pipelines from a configuration file ---- */

/* The most pipelines one file may name. */
#define MAX_PIPELINES 64

typedef struct {
  const char *kind; /* a member name of the configuration (lives in it) */
  jobq_pipeline_t *p;
} pipeline_def;

/* A bad configuration: "jobq: worker: FILE: what" on stderr; the exit
 * status 2. Not a usage error (the command line was right): no synopsis. */
static int config_error(const char *path, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "jobq: worker: %s: ", path);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return 2;
}

/* A kind name as jobq_register takes it (1..64 of [A-Za-z0-9_.:-], first a
 * letter or digit), checked here so that a bad one is refused before the
 * queue is opened: 0, or the exit status 2. */
static int kind_check(const char *path, const char *kind) {
  static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-";
  size_t n = strlen(kind), good = strspn(kind, ok);
  if (n == 0 || n > 64)
    return config_error(path, "pipeline kind '%s' takes 1..64 characters, not %zu", kind, n);
  if (good < n)
    return config_error(path, "pipeline kind '%s' has '%c' at offset %zu; allowed are "
                              "A-Z a-z 0-9 _ . : -", kind, kind[good], good);
  if (strchr("_.:-", kind[0]))
    return config_error(path, "pipeline kind '%s' must start with a letter or a digit", kind);
  return 0;
}

/* One pipeline from its stages object: checked by jobq_pipeline_add_config
 * (providers, keys, voices, the upload directory). 0, or the exit status 2. */
static int pipeline_build(const char *path, const char *kind, json_t *stages,
                          jobq_pipeline_t **out) {
  *out = NULL;
  if (!json_is_object(stages))
    return config_error(path, "pipeline '%s' must be an object of stages: {\"script\": {...}, "
                              "\"tts\": {...}, \"upload\": {...}}", kind);
  if (json_object_size(stages) == 0)
    return config_error(path, "pipeline '%s' has no stages: give \"script\", \"tts\" and/or "
                              "\"upload\" (docs/stages.md)", kind);
  char *text = json_dumps(stages, JSON_COMPACT);
  jobq_pipeline_t *p = text ? jobq_pipeline_new() : NULL;
  if (p == NULL) {
    free(text);
    return config_error(path, "out of memory");
  }
  int rc = jobq_pipeline_add_config(p, text);
  free(text);
  if (rc != 0) {
    jobq_pipeline_free(p);
    return config_error(path, "pipeline '%s': %s", kind, jobq_last_error());
  }
  *out = p;
  return 0;
}

/* Reads the configuration FILE into defs (*n of them; the pipelines to
 * free, the kinds living in *root, to decref). Either form:
 *   {"pipelines": {"podcast": {"script": ..., ...}, "digest": {...}}}
 *   {"script": ..., "tts": ..., "upload": ...}     (the kind "podcast")
 * 0, or the exit status 2 after a sentence naming FILE and what is wrong;
 * then nothing is left to free. */
static int load_pipelines(const char *path, json_t **root, pipeline_def *defs, int *n) {
  *n = 0;
  *root = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return config_error(path, "cannot read the configuration: %s", strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
    fclose(f);
    return config_error(path, "cannot read the configuration: %s", strerror(EISDIR));
  }
  json_error_t e;
  json_t *c = json_loadf(f, JSON_REJECT_DUPLICATES, &e);
  fclose(f);
  if (c == NULL)
    return config_error(path, "not valid JSON: %s (line %d, column %d)", e.text, e.line,
                        e.column);
  if (!json_is_object(c)) {
    json_decref(c);
    return config_error(path, "the configuration must be a JSON object: {\"pipelines\": {KIND: "
                              "STAGES, ...}} or STAGES ({\"script\": ..., \"tts\": ..., "
                              "\"upload\": ...})");
  }
  int rc = 0;
  json_t *pipes = json_object_get(c, "pipelines");
  if (pipes == NULL) {
    rc = pipeline_build(path, "podcast", c, &defs[0].p);
    if (rc == 0) defs[(*n)++].kind = "podcast";
  } else if (json_object_size(c) != 1) {
    const char *key;
    json_t *v;
    json_object_foreach(c, key, v) if (strcmp(key, "pipelines") != 0) break;
    rc = config_error(path, "unknown member '%s' beside \"pipelines\" (put each pipeline's "
                            "stages inside it)", key);
  } else if (!json_is_object(pipes) || json_object_size(pipes) == 0) {
    rc = config_error(path, "\"pipelines\" must be an object that names at least one pipeline: "
                            "{\"podcast\": {\"script\": ..., ...}}");
  } else if (json_object_size(pipes) > MAX_PIPELINES) {
    rc = config_error(path, "\"pipelines\" names %zu pipelines; at most %d are accepted",
                      json_object_size(pipes), MAX_PIPELINES);
  } else {
    const char *kind;
    json_t *stages;
    json_object_foreach(pipes, kind, stages) {
      if ((rc = kind_check(path, kind)) != 0 ||
          (rc = pipeline_build(path, kind, stages, &defs[*n].p)) != 0)
        break;
      defs[(*n)++].kind = kind;
    }
  }
  if (rc != 0) {
    while (*n > 0) jobq_pipeline_free(defs[--*n].p);
    json_decref(c);
    return rc;
  }
  *root = c;
  return 0;
}

/* The kinds' options: those of examples/podcast.c (3 attempts, a backoff of
 * 2..60 s, 10 minutes an attempt), and at most `workers` jobs of each at
 * once in this process. */
static int register_pipelines(jobq_t *q, const pipeline_def *defs, int n, int workers) {
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  int rc = ko ? 0 : JOBQ_ENOMEM;
  if (rc == 0) rc = jobq_kind_opts_set_max_attempts(ko, 3);
  if (rc == 0) rc = jobq_kind_opts_set_backoff(ko, 2000, 60000, 0.2);
  if (rc == 0) rc = jobq_kind_opts_set_timeout(ko, 600000);
  if (rc == 0) rc = jobq_kind_opts_set_concurrency(ko, workers);
  for (int i = 0; rc == 0 && i < n; i++) rc = jobq_register_pipeline(q, defs[i].kind, defs[i].p, ko);
  jobq_kind_opts_free(ko);
  return rc ? fail("worker") : 0;
}

static int cmd_worker(int argc, char **argv) {
  const char *C = "worker", *config = NULL;
  long long workers = 4, for_ms = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--config") == 0) {
      if ((config = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--workers") == 0) {
      if (number(C, argc, argv, &i, 1, 1024, &workers)) return 2;
    } else if (strcmp(a, "--for") == 0) {
      if (number(C, argc, argv, &i, 0, MAX_MS, &for_ms)) return 2;
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else {
      return usage_error(C, "unexpected argument '%s' (the kinds come from --config FILE)", a);
    }
  }
  if (config == NULL) return usage_error(C, "needs --config FILE (the pipelines to run)");
  /* Blocking stages (espeak-ng, the local upload's copy) run on libuv's
   * pool, 4 threads unless UV_THREADPOOL_SIZE says otherwise: give the
   * jobs that run at once a thread each. Set before anything uses it. */
  if (getenv("UV_THREADPOOL_SIZE") == NULL && workers > 4) {
    char n[24];
    snprintf(n, sizeof n, "%d", (int)workers);
    setenv("UV_THREADPOOL_SIZE", n, 1);
  }
  /* The pipelines are built (and their configurations checked) before the
   * queue is opened: a bad file creates no database. */
  pipeline_def defs[MAX_PIPELINES];
  json_t *root;
  int n = 0;
  int rc = load_pipelines(config, &root, defs, &n);
  if (rc) return rc;
  jobq_t *q = NULL;
  if (open_queue_hooks(&q, 0, HOOKS_SEND) != 0) rc = 2;
  if (rc == 0) rc = register_pipelines(q, defs, n, (int)workers);
  if (rc == 0 && jobq_start(q) != 0) rc = fail("start");
  if (rc == 0) {
    fputs("jobq: worker: running", stderr);
    for (int i = 0; i < n; i++) fprintf(stderr, "%s %s", i ? "," : "", defs[i].kind);
    char shown[1024];
    fprintf(stderr, " (%lld at a time each) on %s; Ctrl-C stops\n", workers,
            url_shown(storage, shown, sizeof shown));
  }
  for (int i = 0; i < n; i++) jobq_pipeline_free(defs[i].p);
  /* The kinds were copied by jobq_register_pipeline: the names may go. */
  json_decref(root);
  if (rc) {
    if (q) jobq_close(q, 0);
    return rc;
  }
  for (long long t = 0; !stop && (for_ms < 0 || t < for_ms); t += 50) sleep_ms(50);
  return jobq_close(q, 10000) ? fail("close") : 0;
}

static int cmd_events(int argc, char **argv) {
  const char *C = "events";
  long long for_ms = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--for") == 0) {
      if (number(C, argc, argv, &i, 0, MAX_MS, &for_ms)) return 2;
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else {
      return usage_error(C, "unexpected argument '%s'", a);
    }
  }
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  jobq_event_t *ev;
  jobq_next_event(q, 0, &ev); /* start buffering */
  for (long long t = 0; !stop && (for_ms < 0 || t < for_ms); t += 200) {
    while (jobq_next_event(q, 200, &ev) == 0) {
      char *js = jobq_event_to_json(ev);
      if (js) puts(js);
      fflush(stdout);
      jobq_free(js);
      jobq_event_free(ev);
    }
  }
  return jobq_close(q, 0) ? fail("close") : 0;
}

/* ---- cron ---- */

static const char *const missed_names[] = {"latest", "skip", "all"}; /* JOBQ_CRON_MISSED_* */

/* A schedule's name as jobq_cron_add takes it: 0, or the exit status 2. */
static int cron_name_check(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 128)
    return usage_error("cron", "NAME takes 1..128 characters, not %zu", n);
  size_t bad = strspn(name,
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-");
  if (bad < n)
    return usage_error("cron", "NAME '%s' has '%c' at offset %zu; allowed are A-Z a-z 0-9 _ . : -",
                       name, name[bad], bad);
  return 0;
}

/* EXPR in TZ: 0, or the exit status 2 with the library's sentence. */
static int cron_expr_check(const char *expr, const char *tz, int64_t *first) {
  int64_t now = (int64_t)time(NULL) * 1000, next;
  if (jobq_cron_next(expr, tz, now, &next) != 0)
    return usage_error("cron", "%s", jobq_last_error());
  if (first) *first = next;
  return 0;
}

/* "2026-03-08T07:00:00Z" */
static void iso_utc(int64_t ms, char *out, size_t cap) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The offset east of UTC, in seconds, of tz at ms: a fixed offset as
 * jobq_cron_next reads it ("+05:30", "-0800", "+05", "UTC+2"), else the C
 * library's reading of the zone file (this program has one thread, so it
 * may set TZ). */
static long tz_offset(const char *tz, int64_t ms) {
  if (tz == NULL || *tz == '\0' || strcmp(tz, "UTC") == 0) return 0;
  const char *p = strncmp(tz, "UTC", 3) == 0 ? tz + 3 : tz;
  if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1, h = 0, m = 0;
    p++;
    if (sscanf(p, "%2d:%2d", &h, &m) == 2 || sscanf(p, "%2d%2d", &h, &m) >= 1)
      return sign * (h * 3600L + m * 60L);
    return 0;
  }
  setenv("TZ", tz, 1);
  tzset();
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&t, &tm);
  return tm.tm_gmtoff;
}

/* "2026-03-08T03:00:00-04:00" */
static void iso_local(int64_t ms, const char *tz, char *out, size_t cap) {
  long off = tz_offset(tz, ms);
  time_t t = (time_t)(ms / 1000 + off);
  struct tm tm;
  gmtime_r(&t, &tm);
  char day[32];
  strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
  long a = off < 0 ? -off : off;
  snprintf(out, cap, "%s%c%02ld:%02ld", day, off < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
}

static int cron_list(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) return help();
    if (is_option(argv[i])) return usage_error("cron", "unknown option '%s'", argv[i]);
    return usage_error("cron", "list: unexpected argument '%s'", argv[i]);
  }
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  jobq_cron_list_t *l = NULL;
  int rc = 0;
  if (jobq_cron_list(q, &l) != 0) {
    rc = fail("cron list");
  } else {
    for (size_t i = 0; i < jobq_cron_list_count(l); i++) {
      const jobq_cron_t *c = jobq_cron_list_get(l, i);
      char next[32], last[32];
      iso_utc(jobq_cron_next_run(c), next, sizeof next);
      iso_utc(jobq_cron_last_run(c), last, sizeof last);
      int m = jobq_cron_missed_policy(c);
      json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:o, s:s}", "name", jobq_cron_name(c),
                            "expr", jobq_cron_expr(c), "tz", jobq_cron_tz(c), "kind",
                            jobq_cron_kind(c), "payload",
                            json_loads(jobq_cron_payload(c), JSON_DECODE_ANY, NULL), "next_run",
                            next, "last_run", jobq_cron_last_run(c) ? json_string(last) : json_null(),
                            "missed", m >= 0 && m <= 2 ? missed_names[m] : "?");
      char *js = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
      if (js) puts(js);
      free(js);
      json_decref(o);
    }
    jobq_cron_list_free(l);
  }
  jobq_close(q, 0);
  return rc;
}

static int cron_add(int argc, char **argv) {
  const char *C = "cron";
  const char *pos[4] = {NULL, NULL, NULL, NULL}, *tz = NULL, *owner = NULL;
  long long priority = 0;
  int npos = 0, missed = JOBQ_CRON_MISSED_LATEST;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "--tz") == 0) {
      if ((tz = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--owner") == 0) {
      if ((owner = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--priority") == 0) {
      if (number(C, argc, argv, &i, -1000, 1000, &priority)) return 2;
    } else if (strcmp(a, "--missed") == 0) {
      if ((v = value(C, argc, argv, &i)) == NULL) return 2;
      missed = -1;
      for (int m = 0; m < 3; m++)
        if (strcmp(v, missed_names[m]) == 0) missed = m;
      if (missed < 0) return usage_error(C, "--missed takes latest, skip or all, not '%s'", v);
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else if (npos < 4) {
      pos[npos++] = a;
    } else {
      return usage_error(C, "add: unexpected argument '%s' (the payload is one argument: quote it)",
                         a);
    }
  }
  if (npos < 3) return usage_error(C, "add needs NAME EXPR KIND");
  int rc = cron_name_check(pos[0]);
  if (rc || (rc = cron_expr_check(pos[1], tz, NULL))) return rc;
  const char *payload = "{}";
  char *buf = NULL;
  if (pos[3] && load_payload(pos[3], &payload, &buf)) return 2;
  jobq_t *q;
  jobq_options_t *o = jobq_options_new();
  rc = o ? jobq_options_set_storage(o, storage) : JOBQ_ENOMEM;
  if (rc == 0) rc = jobq_options_set_max_payload(o, MAX_PAYLOAD);
  if (rc == 0) rc = jobq_options_set_cron_missed(o, missed);
  if (rc == 0) rc = jobq_open(&q, o);
  jobq_options_free(o);
  if (rc) {
    free(buf);
    return fail("open");
  }
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  rc = so ? 0 : JOBQ_ENOMEM;
  if (rc == 0 && owner) rc = jobq_submit_opts_set_owner(so, owner);
  if (rc == 0) rc = jobq_submit_opts_set_priority(so, (int)priority);
  if (rc == 0) rc = jobq_cron_add(q, pos[0], pos[1], tz, pos[2], payload, so);
  jobq_submit_opts_free(so);
  free(buf);
  int status = rc ? fail("cron add") : 0;
  if (rc == 0) {
    jobq_cron_list_t *l = NULL;
    if (jobq_cron_list(q, &l) == 0) {
      for (size_t i = 0; i < jobq_cron_list_count(l); i++) {
        const jobq_cron_t *c = jobq_cron_list_get(l, i);
        if (strcmp(jobq_cron_name(c), pos[0]) != 0) continue;
        char next[32];
        iso_utc(jobq_cron_next_run(c), next, sizeof next);
        printf("%s next %s\n", pos[0], next);
      }
      jobq_cron_list_free(l);
    }
  }
  jobq_close(q, 0);
  return status;
}

static int cron_remove(int argc, char **argv) {
  const char *name = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) return help();
    if (is_option(argv[i])) return usage_error("cron", "unknown option '%s'", argv[i]);
    if (name) return usage_error("cron", "remove takes one NAME, not also '%s'", argv[i]);
    name = argv[i];
  }
  if (name == NULL) return usage_error("cron", "remove needs a NAME");
  int rc = cron_name_check(name);
  if (rc) return rc;
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  if (jobq_cron_remove(q, name) != 0) rc = fail("cron remove");
  jobq_close(q, 0);
  return rc;
}

static int cron_next(int argc, char **argv) {
  const char *C = "cron", *expr = NULL, *tz = NULL;
  long long count = 5;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--tz") == 0) {
      if ((tz = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--count") == 0) {
      if (number(C, argc, argv, &i, 1, 1000, &count)) return 2;
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else if (expr) {
      return usage_error(C, "next takes one EXPR, not also '%s' (quote the expression)", a);
    } else {
      expr = a;
    }
  }
  if (expr == NULL) return usage_error(C, "next needs an EXPR");
  int64_t t;
  int rc = cron_expr_check(expr, tz, &t);
  if (rc) return rc;
  for (long long i = 0; i < count; i++) {
    char u[32], l[64];
    iso_utc(t, u, sizeof u);
    iso_local(t, tz, l, sizeof l);
    printf("%s  %s\n", u, l);
    if (i + 1 < count && jobq_cron_next(expr, tz, t, &t) != 0) break;
  }
  return 0;
}

static int cmd_cron(int argc, char **argv) {
  if (argc == 0) return usage_error("cron", "needs list, add, remove or next");
  const char *sub = argv[0];
  if (strcmp(sub, "--help") == 0) return help();
  if (strcmp(sub, "list") == 0) return cron_list(argc - 1, argv + 1);
  if (strcmp(sub, "add") == 0) return cron_add(argc - 1, argv + 1);
  if (strcmp(sub, "remove") == 0) return cron_remove(argc - 1, argv + 1);
  if (strcmp(sub, "next") == 0) return cron_next(argc - 1, argv + 1);
  return usage_error("cron", "unknown subcommand '%s'; use list, add, remove or next", sub);
}

/* stats: a table per kind (default), the snapshot's JSON, or the Prometheus
 * text exposition (what a /metrics endpoint would serve). */
static int cmd_stats(int argc, char **argv) {
  const char *C = "stats";
  int format = 0; /* 0 table, 1 JSON, 2 Prometheus */
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--json") == 0 || strcmp(a, "--prometheus") == 0) {
      if (format) return usage_error(C, "takes one of --json and --prometheus");
      format = a[2] == 'j' ? 1 : 2;
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else {
      return usage_error(C, "unexpected argument '%s'", a);
    }
  }
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  jobq_stats_t *st = NULL;
  int rc = jobq_stats(q, &st) ? fail("stats") : 0;
  if (rc == 0 && format) {
    char *text = format == 1 ? jobq_stats_to_json(st) : jobq_stats_to_prometheus(st);
    if (text == NULL) rc = fail("stats");
    else if (format == 1) puts(text);
    else fputs(text, stdout);
    jobq_free(text);
  } else if (rc == 0) {
    int n = jobq_stats_kind_count(st);
    if (n < 0) rc = fail("stats");
    else
      printf("%-20s %8s %8s %8s %8s %8s %8s %9s %9s\n", "KIND", "QUEUED", "SCHED", "RUNNING",
             "DONE", "FAILED", "ERR%", "P50 ms", "P95 ms");
    for (int i = 0; rc == 0 && i < n; i++) {
      double er = jobq_stats_kind_error_rate(st, i);
      printf("%-20s %8lld %8lld %8lld %8lld %8lld %8.1f %9.0f %9.0f\n", jobq_stats_kind_name(st, i),
             (long long)jobq_stats_kind_queued(st, i), (long long)jobq_stats_kind_scheduled(st, i),
             (long long)jobq_stats_kind_running(st, i),
             (long long)jobq_stats_kind_counter(st, i, JOBQ_STAT_SUCCEEDED),
             (long long)jobq_stats_kind_counter(st, i, JOBQ_STAT_FAILED), er == er ? er * 100 : 0.0,
             jobq_stats_kind_duration_quantile(st, i, 0.5),
             jobq_stats_kind_duration_quantile(st, i, 0.95));
    }
    if (rc == 0)
      printf("cache: %lld hits, %lld misses\n", (long long)jobq_stats_total(st, JOBQ_STAT_CACHE_HIT),
             (long long)jobq_stats_total(st, JOBQ_STAT_CACHE_MISS));
  }
  jobq_stats_free(st);
  if (jobq_close(q, 0) && rc == 0) rc = fail("close");
  return rc;
}

/* ---- webhooks ---- */

/* "succeeded", "failed", "cancelled", "progress": what a delivery announces. */
static const char *event_name(int ev) {
  switch (ev) {
    case JOBQ_EVENT_SUCCEEDED: return "succeeded";
    case JOBQ_EVENT_FAILED: return "failed";
    case JOBQ_EVENT_CANCELLED: return "cancelled";
    case JOBQ_EVENT_PROGRESS: return "progress";
    default: return "?";
  }
}

/* The outbox as a table (one delivery a line) or as the page's JSON. The
 * next page's cursor goes to stderr, so that stdout stays the table. */
static int webhooks_list(int argc, char **argv) {
  const char *C = "webhooks", *job = NULL, *cursor = NULL;
  long long limit = 50;
  int state = -1, json = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "--job") == 0) {
      if ((job = value(C, argc, argv, &i)) == NULL) return 2;
      if (strlen(job) != JOBQ_ID_SIZE - 1)
        return usage_error(C, "--job takes a job id (36 characters), not '%s'", job);
    } else if (strcmp(a, "--cursor") == 0) {
      if ((cursor = value(C, argc, argv, &i)) == NULL) return 2;
    } else if (strcmp(a, "--limit") == 0) {
      if (number(C, argc, argv, &i, 1, 1000, &limit)) return 2;
    } else if (strcmp(a, "--json") == 0) {
      json = 1;
    } else if (strcmp(a, "--state") == 0) {
      if ((v = value(C, argc, argv, &i)) == NULL) return 2;
      state = -1;
      for (int s = JOBQ_DELIVERY_PENDING; s <= JOBQ_DELIVERY_FAILED; s++)
        if (strcmp(jobq_delivery_state_name(s), v) == 0) state = s;
      if (state < 0)
        return usage_error(C, "--state takes pending, sending, delivered or failed, not '%s'", v);
    } else if (strcmp(a, "--help") == 0) {
      return help();
    } else if (is_option(a)) {
      return usage_error(C, "unknown option '%s'", a);
    } else {
      return usage_error(C, "list: unexpected argument '%s'", a);
    }
  }
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  jobq_deliveries_t *d = NULL;
  int rc = 0;
  if (jobq_webhook_deliveries(q, job, state, (int)limit, cursor, &d) != 0) {
    rc = fail("webhooks list");
  } else if (json) {
    char *js = jobq_deliveries_to_json(d);
    if (js == NULL) rc = fail("webhooks list");
    else puts(js);
    jobq_free(js);
  } else {
    printf("%-50s %-36s %-12s %-9s %-9s %5s %6s %-20s %s\n", "ID", "JOB", "ENDPOINT", "EVENT",
           "STATE", "TRIES", "STATUS", "NEXT TRY", "LAST ERROR");
    for (size_t i = 0; i < jobq_deliveries_count(d); i++) {
      const jobq_delivery_t *r = jobq_deliveries_at(d, i);
      char next[32] = "-", status[16] = "-";
      if (jobq_delivery_next_at(r) > 0) iso_utc(jobq_delivery_next_at(r), next, sizeof next);
      if (jobq_delivery_last_status(r) > 0)
        snprintf(status, sizeof status, "%d", jobq_delivery_last_status(r));
      const char *err = jobq_delivery_last_error(r);
      printf("%-50s %-36s %-12s %-9s %-9s %5d %6s %-20s %s\n", jobq_delivery_id(r),
             jobq_delivery_job_id(r), jobq_delivery_endpoint(r),
             event_name(jobq_delivery_event(r)),
             jobq_delivery_state_name(jobq_delivery_state(r)), jobq_delivery_attempts(r), status,
             next, err ? err : "-");
    }
  }
  if (rc == 0 && !json && jobq_deliveries_next_cursor(d))
    fprintf(stderr, "(more: --cursor %s)\n", jobq_deliveries_next_cursor(d));
  jobq_deliveries_free(d);
  if (jobq_close(q, 0) && rc == 0) rc = fail("close");
  return rc;
}

/* webhooks redeliver ID, webhooks enable URL: one argument, one call. */
static int webhooks_one(const char *sub, int argc, char **argv) {
  const char *C = "webhooks", *arg = NULL;
  int enable = strcmp(sub, "enable") == 0;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0) return help();
    if (is_option(argv[i])) return usage_error(C, "unknown option '%s'", argv[i]);
    if (arg) return usage_error(C, "%s takes one %s, not also '%s'", sub,
                                enable ? "URL" : "DELIVERY_ID", argv[i]);
    arg = argv[i];
  }
  if (arg == NULL) return usage_error(C, "%s needs a%s", sub, enable ? " URL" : " DELIVERY_ID");
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  int rc = 0;
  if ((enable ? jobq_webhook_enable(q, arg) : jobq_webhook_redeliver(q, arg)) != 0)
    rc = fail(enable ? "webhooks enable" : "webhooks redeliver");
  if (jobq_close(q, 0) && rc == 0) rc = fail("close");
  return rc;
}

static int cmd_webhooks(int argc, char **argv) {
  if (argc == 0) return usage_error("webhooks", "needs list, redeliver or enable");
  const char *sub = argv[0];
  if (strcmp(sub, "--help") == 0) return help();
  if (strcmp(sub, "list") == 0) return webhooks_list(argc - 1, argv + 1);
  if (strcmp(sub, "redeliver") == 0 || strcmp(sub, "enable") == 0)
    return webhooks_one(sub, argc - 1, argv + 1);
  return usage_error("webhooks", "unknown subcommand '%s'; use list, redeliver or enable", sub);
}

int main(int argc, char **argv) {
  storage = getenv("JOBQ_STORAGE") ? getenv("JOBQ_STORAGE") : "sqlite:jobq.db";
  int i = 1;
  if (i < argc && strcmp(argv[i], "--storage") == 0) {
    if ((storage = value(NULL, argc, argv, &i)) == NULL) return 2;
    i++;
  }
  if (i >= argc) return usage_error(NULL, "needs a COMMAND");
  const char *cmd = argv[i++];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
    return help();
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int n = argc - i;
  char **rest = argv + i;
  if (strcmp(cmd, "submit") == 0) return cmd_submit(n, rest);
  if (strcmp(cmd, "get") == 0) return cmd_get(n, rest);
  if (strcmp(cmd, "wait") == 0) return cmd_wait(n, rest);
  if (strcmp(cmd, "cancel") == 0) return cmd_cancel(n, rest);
  if (strcmp(cmd, "list") == 0) return cmd_list(n, rest);
  if (strcmp(cmd, "work") == 0) return cmd_work(n, rest);
  if (strcmp(cmd, "worker") == 0) return cmd_worker(n, rest);
  if (strcmp(cmd, "events") == 0) return cmd_events(n, rest);
  if (strcmp(cmd, "cron") == 0) return cmd_cron(n, rest);
  if (strcmp(cmd, "stats") == 0) return cmd_stats(n, rest);
  if (strcmp(cmd, "webhooks") == 0) return cmd_webhooks(n, rest);
  return usage_error(NULL, "unknown command '%s'", cmd);
}
