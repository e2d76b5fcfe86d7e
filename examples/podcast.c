/* podcast: the whole pipeline of the job pattern, end to end.
 *
 * Text in, a two-host podcast out: a script stage writes the dialogue, a TTS
 * stage speaks it, an upload stage publishes the audio. With no configuration
 * everything runs offline: the template script, espeak-ng voices, and a local
 * "podcasts" directory. A configuration file (JSON, see docs/stages.md)
 * selects real providers instead.
 *
 *   podcast FILE                 submit, run it here, show progress, print the result
 *   podcast --submit FILE        submit only; print the ticket (the job id) and exit
 *   podcast --work [--for MS]    run submitted podcasts (until none is left, or for MS)
 *   podcast --status ID          print the job as JSON (poll it as a client would)
 *
 * Options: --config FILE, --storage URL (default sqlite:podcast.db, or
 * $JOBQ_STORAGE), --mp3 (MP3 instead of WAV with the offline voices),
 * --out DIR (where the local upload puts files; default "podcasts"),
 * --webhook URL (announce the job's end to URL by a signed POST).
 *
 * Webhooks: the endpoint is named "podcast"; its secret is
 * $JOBQ_WEBHOOK_SECRET_PODCAST, or, in the one-process mode (podcast FILE)
 * when that is unset, one made here from 32 random bytes and printed on
 * stderr so that the receiver can check the signature. The example is
 * offline and the library refuses internal addresses, so a URL on this
 * machine (127.0.0.0/8, ::1, localhost) is allowed by naming exactly its
 * host in jobq_options_set_webhook_allow; nothing else is allowed. */
#include <jansson.h>
#include <jobq.h>
#include <jobq/stages.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIND "podcast"
#define ENDPOINT "podcast"
#define SECRET_ENV "JOBQ_WEBHOOK_SECRET_PODCAST"

static const char *opt_config, *opt_storage, *opt_out = "podcasts", *opt_webhook;
static int opt_mp3;
/* The endpoint's secret: from SECRET_ENV, or made by make_secret. */
static char secret_buf[64];
static const char *secret;

static char *read_file(const char *path, size_t max) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "podcast: cannot open %s\n", path);
    return NULL;
  }
  char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
  fclose(f);
  if (buf == NULL) return NULL;
  if (n > max) {
    fprintf(stderr, "podcast: %s is over %zu bytes\n", path, max);
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* A JSON string literal for s (quotes and escapes). */
static char *json_str(const char *s) {
  size_t n = strlen(s);
  char *o = malloc(n * 6 + 3), *p = o;
  if (o == NULL) return NULL;
  *p++ = '"';
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') *p++ = '\\', *p++ = (char)c;
    else if (c == '\n') *p++ = '\\', *p++ = 'n';
    else if (c < 0x20) p += sprintf(p, "\\u%04x", c);
    else *p++ = (char)c;
  }
  *p++ = '"';
  *p = '\0';
  return o;
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "podcast: %s: %s (%s)\n", what, jobq_last_error(), jobq_err_name(rc));
  return 1;
}

/* "whsec_" + base64 of 32 bytes from /dev/urandom, into secret_buf. */
static int make_secret(void) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char key[33] = {0};
  FILE *f = fopen("/dev/urandom", "rb");
  size_t n = f ? fread(key, 1, 32, f) : 0;
  if (f) fclose(f);
  if (n != 32) {
    fprintf(stderr, "podcast: cannot read /dev/urandom to make a webhook secret; set %s\n",
            SECRET_ENV);
    return 1;
  }
  char *p = secret_buf + sprintf(secret_buf, "whsec_");
  for (int i = 0; i < 33; i += 3) {
    uint32_t v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];
    *p++ = b64[v >> 18 & 63];
    *p++ = b64[v >> 12 & 63];
    *p++ = i + 1 < 32 ? b64[v >> 6 & 63] : '=';
    *p++ = i + 2 < 32 ? b64[v & 63] : '=';
  }
  *p = '\0';
  return 0;
}

/* The address list that allows url's host when it is this machine (a
 * literal 127.x.y.z, [::1], or localhost, which may resolve to either), into
 * out; "" for any other host, which must then be public. Only the URL's own
 * host is named: never a prefix, so no other internal address opens up. */
static void local_allow(const char *url, char *out, size_t cap) {
  out[0] = '\0';
  const char *h = strstr(url, "://");
  if (h == NULL) return;
  h += 3;
  char host[256];
  size_t n;
  if (*h == '[') {
    n = strcspn(h + 1, "]");
    if (n >= sizeof host) return;
    memcpy(host, h + 1, n);
  } else {
    n = strcspn(h, ":/?#");
    if (n >= sizeof host) return;
    memcpy(host, h, n);
  }
  host[n] = '\0';
  unsigned a, b, c, d;
  char end;
  if (strcmp(host, "localhost") == 0) snprintf(out, cap, "127.0.0.1, ::1");
  else if (strcmp(host, "::1") == 0) snprintf(out, cap, "::1");
  else if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &end) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256)
    snprintf(out, cap, "%s", host);
}

/* mode: 's' submit only, 'w' work, 'r' submit and run here. */
static int open_queue(jobq_t **q, int mode) {
  jobq_options_t *o = jobq_options_new();
  const char *url = opt_storage ? opt_storage : getenv("JOBQ_STORAGE");
  int rc = jobq_options_set_storage(o, url ? url : "sqlite:podcast.db");
  /* The endpoint is needed where the job is submitted (to subscribe it) and
   * where deliveries are sent (to sign them); a worker knows it when the
   * secret is in its environment. */
  if (rc == 0 && secret) {
    char allow[300];
    local_allow(opt_webhook ? opt_webhook : "", allow, sizeof allow);
    rc = jobq_options_add_webhook(o, ENDPOINT, NULL, secret);
    if (rc == 0 && allow[0]) rc = jobq_options_set_webhook_allow(o, allow);
    if (rc == 0 && mode == 's') rc = jobq_options_set_webhook_concurrency(o, 0);
  }
  if (rc == 0) rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc ? fail("cannot open the queue", rc) : 0;
}

static int register_pipeline(jobq_t *q) {
  jobq_pipeline_t *p = jobq_pipeline_new();
  if (p == NULL) return fail("jobq_pipeline_new", JOBQ_ENOMEM);
  int rc;
  if (opt_config) {
    char *cfg = read_file(opt_config, 1 << 20);
    if (cfg == NULL) {
      jobq_pipeline_free(p);
      return 1;
    }
    rc = jobq_pipeline_add_config(p, cfg);
    free(cfg);
  } else {
    char cfg[1024];
    char *dir = json_str(opt_out);
    snprintf(cfg, sizeof cfg,
             "{\"script\": {\"provider\": \"template\"},"
             " \"tts\": {\"provider\": \"espeak\", \"format\": \"%s\"},"
             " \"upload\": {\"provider\": \"local\", \"dir\": %s}}",
             opt_mp3 ? "mp3" : "wav", dir ? dir : "\"podcasts\"");
    free(dir);
    rc = jobq_pipeline_add_config(p, cfg);
  }
  if (rc == 0) {
    jobq_kind_opts_t *ko = jobq_kind_opts_new();
    jobq_kind_opts_set_max_attempts(ko, 3);
    jobq_kind_opts_set_backoff(ko, 2000, 60000, 0.2);
    jobq_kind_opts_set_timeout(ko, 600000);
    rc = jobq_register_pipeline(q, KIND, p, ko);
    jobq_kind_opts_free(ko);
  }
  jobq_pipeline_free(p);
  return rc ? fail("cannot set up the pipeline", rc) : 0;
}

static int submit(jobq_t *q, const char *path, char id[JOBQ_ID_SIZE]) {
  char *text = read_file(path, 1 << 20);
  if (text == NULL) return 1;
  /* The title: the first line, if it is short. */
  char title[200] = "";
  const char *body = text;
  size_t tl = strcspn(text, "\n");
  if (tl > 0 && tl < sizeof title && text[tl] == '\n') {
    memcpy(title, text, tl);
    title[tl] = '\0';
    body = text + tl + 1;
  }
  char *jt = json_str(body), *jti = json_str(title);
  free(text);
  if (jt == NULL || jti == NULL) {
    free(jt);
    free(jti);
    return fail("out of memory", JOBQ_ENOMEM);
  }
  size_t n = strlen(jt) + strlen(jti) + 64;
  char *payload = malloc(n);
  if (payload) snprintf(payload, n, "{\"title\": %s, \"text\": %s}", jti, jt);
  free(jt);
  free(jti);
  if (payload == NULL) return fail("out of memory", JOBQ_ENOMEM);
  jobq_submit_opts_t *so = NULL;
  int rc = 0;
  if (opt_webhook) {
    so = jobq_submit_opts_new();
    rc = so ? jobq_submit_opts_add_webhook(so, opt_webhook, ENDPOINT, JOBQ_WEBHOOK_ON_FINISHED)
            : JOBQ_ENOMEM;
  }
  if (rc == 0) rc = jobq_submit(q, KIND, payload, so, id);
  jobq_submit_opts_free(so);
  free(payload);
  return rc ? fail("cannot submit", rc) : 0;
}

static void bar(int tty, int progress, const char *step, int *last_p, char *last_step) {
  if (!tty) {
    if (progress == *last_p && strcmp(step, last_step) == 0) return;
    printf("%3d%%  %s\n", progress, step);
  } else {
    char b[31];
    int fill = progress * 30 / 100;
    for (int i = 0; i < 30; i++) b[i] = i < fill ? '#' : '.';
    b[30] = '\0';
    printf("\r[%s] %3d%%  %-50.50s", b, progress, step);
  }
  fflush(stdout);
  *last_p = progress;
  snprintf(last_step, 256, "%s", step);
}

/* Follows the job with jobq_wait (a long poll: it returns at each change)
 * until it ends, then prints the result. */
static int follow(jobq_t *q, const char *id) {
  int tty = isatty(STDOUT_FILENO), last_p = -1;
  char last_step[256] = "";
  for (;;) {
    jobq_job_t *job = NULL;
    int rc = jobq_wait(q, id, 1000, &job);
    if (rc == JOBQ_ETIMEDOUT) { /* no change within the second: ask again */
      jobq_job_free(job);
      continue;
    }
    if (rc) return fail("jobq_wait", rc);
    int state = jobq_job_state(job);
    const char *step = jobq_job_step(job);
    bar(tty, jobq_job_progress(job), step ? step : jobq_state_name(state), &last_p, last_step);
    if (jobq_state_is_terminal(state)) {
      if (tty) printf("\n");
      if (state == JOBQ_SUCCEEDED) {
        /* {audioUrl, audioDuration, transcript}, as the podcast service answered */
        json_t *r = json_loads(jobq_job_result(job), 0, NULL);
        json_t *out = json_pack("{s:O?, s:O?, s:O?}", "audioUrl", json_object_get(r, "audioUrl"),
                                "audioDuration", json_object_get(r, "audioDuration"), "transcript",
                                json_object_get(r, "transcript"));
        char *text = out ? json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
        printf("%s\n", text ? text : jobq_job_result(job));
        free(text);
        json_decref(out);
        json_decref(r);
      } else {
        fprintf(stderr, "podcast: job %s %s: %s\n", id, jobq_state_name(state),
                jobq_job_error(job) ? jobq_job_error(job) : "");
      }
      jobq_job_free(job);
      return state == JOBQ_SUCCEEDED ? 0 : 1;
    }
    jobq_job_free(job);
  }
}

/* After the job ended: waits (at most 30 s) until its webhook delivery is
 * delivered or failed, and says so on stderr. One still pending stays in the
 * store: a later `podcast --work` with the same secret sends it. */
static void report_delivery(jobq_t *q, const char *id) {
  for (int waited = 0;; waited += 100) {
    jobq_deliveries_t *d = NULL;
    if (jobq_webhook_deliveries(q, id, -1, 10, NULL, &d) != 0) {
      fprintf(stderr, "podcast: webhook: %s\n", jobq_last_error());
      return;
    }
    const jobq_delivery_t *r = jobq_deliveries_at(d, 0);
    int st = r ? jobq_delivery_state(r) : -1;
    if (r && (st == JOBQ_DELIVERY_DELIVERED || st == JOBQ_DELIVERY_FAILED || waited >= 30000)) {
      const char *err = jobq_delivery_last_error(r);
      fprintf(stderr, "podcast: webhook %s to %s: %s", jobq_delivery_id(r), opt_webhook,
              jobq_delivery_state_name(st));
      if (jobq_delivery_last_status(r)) fprintf(stderr, " (HTTP %d)", jobq_delivery_last_status(r));
      if (st != JOBQ_DELIVERY_DELIVERED && err) fprintf(stderr, ": %s", err);
      if (st == JOBQ_DELIVERY_PENDING || st == JOBQ_DELIVERY_SENDING)
        fprintf(stderr, "; `podcast --work` with %s set sends it later", SECRET_ENV);
      fprintf(stderr, "\n");
      jobq_deliveries_free(d);
      return;
    }
    jobq_deliveries_free(d);
    usleep(100 * 1000);
  }
}

static int status(jobq_t *q, const char *id) {
  jobq_job_t *job = NULL;
  int rc = jobq_get(q, id, &job);
  if (rc) return fail("jobq_get", rc);
  char *js = jobq_job_to_json(job);
  printf("%s\n", js ? js : "{}");
  jobq_free(js);
  jobq_job_free(job);
  return 0;
}

/* Runs podcasts until none is queued or running (or for ms). */
static int work(jobq_t *q, long ms) {
  int rc = jobq_start(q);
  if (rc) return fail("jobq_start", rc);
  for (long waited = 0; ms < 0 || waited < ms; waited += 200) {
    usleep(200 * 1000);
    if (ms >= 0) continue;
    jobq_filter_t *f = jobq_filter_new();
    jobq_filter_set_kind(f, KIND);
    int busy = 0;
    for (int s = JOBQ_QUEUED; s <= JOBQ_RUNNING && !busy; s++) {
      jobq_page_t *page = NULL;
      jobq_filter_set_state(f, s);
      jobq_filter_set_limit(f, 1);
      if (jobq_list(q, f, &page) == 0) {
        busy = jobq_page_count(page) > 0;
        jobq_page_free(page);
      }
    }
    jobq_filter_free(f);
    if (!busy) break;
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: podcast [options] FILE | --submit FILE | --work [--for MS] | --status ID\n"
          "options: --config FILE  --storage URL  --mp3  --out DIR  --webhook URL\n"
          "--webhook URL: when the job ends (succeeded, failed or cancelled), POST its\n"
          "  state and result to URL, signed (Standard Webhooks: webhook-id,\n"
          "  webhook-timestamp, webhook-signature headers; see docs/webhooks.md).\n"
          "  The secret is $" SECRET_ENV " (\"whsec_<base64>\"); when it is unset,\n"
          "  podcast FILE makes one and prints it on stderr, for the receiver to check\n"
          "  with (--submit needs the variable: the worker must know the secret too).\n"
          "  --work sends the deliveries when the variable is set; give it the same\n"
          "  --webhook URL if that is on this machine. Only a URL on this machine\n"
          "  (127.x.y.z, [::1], localhost) may be internal; others must be public.\n");
}

int main(int argc, char **argv) {
  const char *file = NULL, *status_id = NULL;
  int do_submit = 0, do_work = 0;
  long for_ms = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (strcmp(a, "--config") == 0 && more) opt_config = argv[++i];
    else if (strcmp(a, "--storage") == 0 && more) opt_storage = argv[++i];
    else if (strcmp(a, "--out") == 0 && more) opt_out = argv[++i];
    else if (strcmp(a, "--mp3") == 0) opt_mp3 = 1;
    else if (strcmp(a, "--webhook") == 0 && more) opt_webhook = argv[++i];
    else if (strcmp(a, "--submit") == 0 && more) do_submit = 1, file = argv[++i];
    else if (strcmp(a, "--status") == 0 && more) status_id = argv[++i];
    else if (strcmp(a, "--work") == 0) do_work = 1;
    else if (strcmp(a, "--for") == 0 && more) for_ms = atol(argv[++i]);
    else if (a[0] != '-' && file == NULL) file = a;
    else {
      usage();
      return 2;
    }
  }
  if (!file && !status_id && !do_work) {
    usage();
    return 2;
  }
  int mode = status_id ? 'g' : do_submit ? 's' : do_work ? 'w' : 'r';
  secret = getenv(SECRET_ENV);
  if (secret && secret[0] == '\0') secret = NULL;
  if (opt_webhook && secret == NULL) {
    if (mode != 'r') {
      fprintf(stderr, "podcast: --webhook with --submit or --work needs %s (the worker must know "
              "the secret)\n", SECRET_ENV);
      return 2;
    }
    if (make_secret()) return 1;
    secret = secret_buf;
    fprintf(stderr, "podcast: webhook secret (set %s to choose it): %s\n", SECRET_ENV, secret);
  }
  if (mode == 'g') secret = NULL; /* --status reads; it neither subscribes nor sends */
  jobq_t *q;
  if (open_queue(&q, mode)) return 1;
  int rc = 0;
  char id[JOBQ_ID_SIZE];
  if (status_id) {
    rc = status(q, status_id);
  } else if (do_submit) {
    /* A submit-only process: no pipeline, no workers; the ticket is durable
     * when jobq_submit returns. */
    rc = submit(q, file, id);
    if (rc == 0) printf("%s\n", id);
  } else if (do_work) {
    rc = register_pipeline(q);
    if (rc == 0) rc = work(q, for_ms);
  } else {
    rc = register_pipeline(q);
    int src = rc == 0 ? jobq_start(q) : 0;
    if (src) rc = fail("jobq_start", src);
    if (rc == 0) rc = submit(q, file, id);
    if (rc == 0) {
      rc = follow(q, id);
      if (opt_webhook) report_delivery(q, id);
    }
  }
  int crc = jobq_close(q, 30000);
  if (crc && rc == 0) rc = fail("jobq_close", crc);
  return rc;
}
