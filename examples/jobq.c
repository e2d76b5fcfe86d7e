/* jobq: the command-line face of libjobq. Submit, inspect, wait for, cancel
 * and run jobs in a queue that lives in a SQLite file (./jobq.db unless
 * --storage or $JOBQ_STORAGE says otherwise), so that several shells, or an
 * API process and worker processes, share one queue.
 *
 *   jobq submit KIND [JSON] [--owner O] [--priority N] [--delay MS] [--key K --ttl MS]
 *   jobq get ID | jobq wait ID [--timeout MS] | jobq cancel ID
 *   jobq list [--owner O] [--kind K] [--state S] [--limit N] [--oldest]
 *   jobq work KIND... [--workers N] [--for MS]    run the demo handler (below)
 *   jobq events [--for MS]                        print events as JSON lines
 *
 * The demo handler reads {"ms": N, "fail": "why", "retry": true} from the
 * payload: it works N ms in ten steps with progress, then succeeds echoing
 * the payload, or fails with the message (retryably if "retry" is true). */
#include <jobq.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *storage;
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: jobq [--storage URL] COMMAND ...\n"
          "  submit KIND [JSON] [--owner O] [--priority N] [--delay MS] [--key K --ttl MS]\n"
          "  get ID | wait ID [--timeout MS] | cancel ID\n"
          "  list [--owner O] [--kind K] [--state S] [--limit N] [--oldest]\n"
          "  work KIND... [--workers N] [--for MS]\n"
          "  events [--for MS]\n"
          "storage: --storage URL, else $JOBQ_STORAGE, else sqlite:jobq.db\n");
  return 2;
}

static int fail(const char *what) {
  fprintf(stderr, "jobq: %s: %s\n", what, jobq_last_error());
  return 2;
}

/* Option value after argv[*i], or NULL (and a message). */
static const char *arg(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "jobq: %s needs a value\n", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

static int open_queue(jobq_t **q, int workers) {
  jobq_options_t *o = jobq_options_new();
  if (o == NULL) return fail("options");
  int rc = jobq_options_set_storage(o, storage);
  if (rc == 0) rc = jobq_options_set_workers(o, workers);
  if (rc == 0) rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc ? fail("open") : 0;
}

static void print_job(const jobq_job_t *job) {
  char *js = jobq_job_to_json(job);
  if (js) puts(js);
  jobq_free(js);
}

static int cmd_submit(jobq_t *q, int argc, char **argv) {
  if (argc < 1) return usage();
  const char *kind = argv[0];
  const char *payload = "{}";
  int i = 1;
  if (i < argc && strncmp(argv[i], "--", 2) != 0) payload = argv[i++];
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  const char *key = NULL, *v;
  long long ttl = 0;
  int rc = so ? 0 : JOBQ_ENOMEM;
  for (; i < argc && rc == 0; i++) {
    if (strcmp(argv[i], "--owner") == 0 && (v = arg(argc, argv, &i))) rc = jobq_submit_opts_set_owner(so, v);
    else if (strcmp(argv[i], "--priority") == 0 && (v = arg(argc, argv, &i)))
      rc = jobq_submit_opts_set_priority(so, atoi(v));
    else if (strcmp(argv[i], "--delay") == 0 && (v = arg(argc, argv, &i)))
      rc = jobq_submit_opts_set_delay(so, atoll(v));
    else if (strcmp(argv[i], "--key") == 0 && (v = arg(argc, argv, &i))) key = v;
    else if (strcmp(argv[i], "--ttl") == 0 && (v = arg(argc, argv, &i))) ttl = atoll(v);
    else {
      jobq_submit_opts_free(so);
      return usage();
    }
  }
  if (rc == 0 && key) rc = jobq_submit_opts_set_dedupe(so, key, ttl);
  char id[JOBQ_ID_SIZE];
  if (rc == 0) rc = jobq_submit(q, kind, payload, so, id);
  jobq_submit_opts_free(so);
  if (rc < 0) return fail("submit");
  printf("%s%s\n", id, rc == 1 ? " (existing job: dedupe key is live)" : "");
  return 0;
}

static int cmd_get(jobq_t *q, int argc, char **argv) {
  if (argc != 1) return usage();
  jobq_job_t *job;
  if (jobq_get(q, argv[0], &job) != 0) return fail("get");
  print_job(job);
  jobq_job_free(job);
  return 0;
}

static int cmd_wait(jobq_t *q, int argc, char **argv) {
  if (argc < 1) return usage();
  long timeout = -1;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (strcmp(argv[i], "--timeout") == 0 && (v = arg(argc, argv, &i))) timeout = atol(v);
    else return usage();
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    jobq_job_t *job = NULL;
    int rc = jobq_wait(q, argv[0], 1000, &job);
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
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long ms = (long)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    if (stop || (timeout >= 0 && ms >= timeout)) {
      fprintf(stderr, "jobq: wait: not finished after %ld ms\n", ms);
      return 3;
    }
  }
}

static int cmd_cancel(jobq_t *q, int argc, char **argv) {
  if (argc != 1) return usage();
  if (jobq_cancel(q, argv[0]) != 0) return fail("cancel");
  return 0;
}

static int cmd_list(jobq_t *q, int argc, char **argv) {
  jobq_filter_t *f = jobq_filter_new();
  int rc = f ? 0 : JOBQ_ENOMEM;
  for (int i = 0; i < argc && rc == 0; i++) {
    const char *v;
    if (strcmp(argv[i], "--owner") == 0 && (v = arg(argc, argv, &i))) rc = jobq_filter_set_owner(f, v);
    else if (strcmp(argv[i], "--kind") == 0 && (v = arg(argc, argv, &i))) rc = jobq_filter_set_kind(f, v);
    else if (strcmp(argv[i], "--limit") == 0 && (v = arg(argc, argv, &i))) rc = jobq_filter_set_limit(f, atoi(v));
    else if (strcmp(argv[i], "--oldest") == 0) rc = jobq_filter_set_newest_first(f, 0);
    else if (strcmp(argv[i], "--state") == 0 && (v = arg(argc, argv, &i))) {
      int st = -1;
      for (int s = JOBQ_QUEUED; s <= JOBQ_CANCELLED; s++)
        if (strcmp(jobq_state_name(s), v) == 0) st = s;
      if (st < 0) {
        fprintf(stderr, "jobq: list: unknown state '%s'\n", v);
        jobq_filter_free(f);
        return 2;
      }
      rc = jobq_filter_set_state(f, st);
    } else {
      jobq_filter_free(f);
      return usage();
    }
  }
  jobq_page_t *page = NULL;
  if (rc == 0) rc = jobq_list(q, f, &page);
  jobq_filter_free(f);
  if (rc != 0) return fail("list");
  for (size_t i = 0; i < jobq_page_count(page); i++) print_job(jobq_page_job(page, i));
  if (jobq_page_next_cursor(page)) fprintf(stderr, "(more: raise --limit)\n");
  jobq_page_free(page);
  return 0;
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
  int workers = 4;
  long for_ms = -1;
  int nk = 0;
  for (int i = 0; i < argc; i++) {
    const char *v;
    if (strcmp(argv[i], "--workers") == 0 && (v = arg(argc, argv, &i))) workers = atoi(v);
    else if (strcmp(argv[i], "--for") == 0 && (v = arg(argc, argv, &i))) for_ms = atol(v);
    else if (strncmp(argv[i], "--", 2) == 0) return usage();
    else nk++;
  }
  if (nk == 0) return usage();
  jobq_t *q;
  if (open_queue(&q, workers)) return 2;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "--", 2) == 0) {
      i++;
      continue;
    }
    if (jobq_register(q, argv[i], demo, NULL, NULL) != 0) return fail("register");
  }
  if (jobq_start(q) != 0) return fail("start");
  fprintf(stderr, "jobq: working (%d workers) on %s; Ctrl-C stops\n", workers, storage);
  for (long t = 0; !stop && (for_ms < 0 || t < for_ms); t += 50) sleep_ms(50);
  return jobq_close(q, 10000) ? fail("close") : 0;
}

static int cmd_events(int argc, char **argv) {
  long for_ms = -1;
  for (int i = 0; i < argc; i++) {
    const char *v;
    if (strcmp(argv[i], "--for") == 0 && (v = arg(argc, argv, &i))) for_ms = atol(v);
    else return usage();
  }
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  jobq_event_t *ev;
  jobq_next_event(q, 0, &ev); /* start buffering */
  for (long t = 0; !stop && (for_ms < 0 || t < for_ms); t += 200) {
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

int main(int argc, char **argv) {
  storage = getenv("JOBQ_STORAGE") ? getenv("JOBQ_STORAGE") : "sqlite:jobq.db";
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "--storage") == 0) {
    storage = argv[i + 1];
    i += 2;
  }
  if (i >= argc) return usage();
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  const char *cmd = argv[i++];
  if (strcmp(cmd, "work") == 0) return cmd_work(argc - i, argv + i);
  if (strcmp(cmd, "events") == 0) return cmd_events(argc - i, argv + i);
  int (*fn)(jobq_t *, int, char **) = NULL;
  if (strcmp(cmd, "submit") == 0) fn = cmd_submit;
  else if (strcmp(cmd, "get") == 0) fn = cmd_get;
  else if (strcmp(cmd, "wait") == 0) fn = cmd_wait;
  else if (strcmp(cmd, "cancel") == 0) fn = cmd_cancel;
  else if (strcmp(cmd, "list") == 0) fn = cmd_list;
  else return usage();
  jobq_t *q;
  if (open_queue(&q, 0)) return 2;
  int rc = fn(q, argc - i, argv + i);
  jobq_close(q, 0);
  return rc;
}
