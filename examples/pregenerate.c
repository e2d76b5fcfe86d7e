/* pregenerate: the nightly pre-generation run of a podcast service.
 *
 * At 03:00 in the service's time zone a cron entry, stored in the queue so
 * that every process sees it and each night runs once, submits one
 * "pregenerate" job. Its handler submits one batch of podcast jobs, one per
 * user and type, each with the key podcast:{user}:{type}:{date} that lives
 * until the end of that day in the zone however late the job finishes, at
 * most 5 running at once; it waits for the batch and prints its summary.
 * Any request for the same key that day is answered from the cache, with
 * the cached result, without a job. Offline: the built-in template script,
 * espeak-ng voices and a local directory.
 *
 *   pregenerate [--runs N]            keep the nightly schedule, run the
 *                                     queue until N nightly runs finished
 *                                     (default 1), then answer user0's
 *                                     requests from the cache
 *   pregenerate --request USER TYPE   answer one request as an API would:
 *                                     the cached job if its key is live,
 *                                     else a new job (not run here)
 *   pregenerate --force               regenerate now: one batch whose jobs
 *                                     take today's keys over
 *
 * Options: --storage URL (default sqlite:pregenerate.db), --tz ZONE
 * (default UTC), --at CRON (default "0 3 * * *"), --users N (default 3),
 * --types T,... (default daily,weekly), --out DIR (default "podcasts"),
 * --start YYYY-MM-DDTHH:MM:SSZ: the queue's clock reads that time at launch
 * and then runs at the real pace (a test starts a few seconds before 03:00).
 *
 * Exit status: 0 done; 1 a batch had failures or a request was not cached
 * (--request); 2 usage or another error.
 *
 * jobq-test-requires: espeak */
#include <jansson.h>
#include <jobq.h>
#include <jobq/stages.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_USERS 1000
#define MAX_TYPES 8

static const char *opt_storage = "sqlite:pregenerate.db", *opt_tz = "UTC",
                  *opt_at = "0 3 * * *", *opt_out = "podcasts";
static int opt_users = 3, opt_runs = 1;
static char types_buf[256] = "daily,weekly";
static const char *types[MAX_TYPES];
static int n_types;
static int64_t clock_offset; /* --start: added to the real clock */

static atomic_int runs_done, runs_failed;

static int64_t offset_clock(void *ud) {
  (void)ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + clock_offset;
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "pregenerate: %s: %s (%s)\n", what, jobq_last_error(), jobq_err_name(rc));
  return 2;
}

static int usage(const char *msg) {
  fprintf(stderr,
          "pregenerate: %s\n"
          "usage: pregenerate [--runs N] | --request USER TYPE | --force\n"
          "  [--storage URL] [--tz ZONE] [--at CRON] [--users N] [--types T,...]\n"
          "  [--out DIR] [--start YYYY-MM-DDTHH:MM:SSZ]\n",
          msg);
  return 2;
}

/* The cache key of one user's podcast of one type on the date of `at` in
 * the service's zone, and when it expires: the end of that day there. */
static int podcast_key(const char *user, const char *type, int64_t at, char *key, size_t cap,
                       int64_t *until) {
  char date[JOBQ_DATE_SIZE];
  int rc = jobq_local_date(opt_tz, at, date, sizeof date);
  if (rc == 0) rc = jobq_end_of_day(opt_tz, at, until);
  if (rc == 0) snprintf(key, cap, "podcast:%s:%s:%s", user, type, date);
  return rc;
}

/* One batch: a podcast per user and type, at most 5 running at once; waits
 * for it and prints its summary. 0, 1 when members failed, or < 0. */
static int run_batch(jobq_t *q, int force, char *summary, size_t cap) {
  size_t n = (size_t)opt_users * (size_t)n_types;
  const char **kinds = calloc(n, sizeof *kinds), **payloads = calloc(n, sizeof *payloads);
  jobq_submit_opts_t **so = calloc(n, sizeof *so);
  char *ids = malloc(n * JOBQ_ID_SIZE), *texts = malloc(n * 256);
  int *dup = calloc(n, sizeof *dup);
  int rc = kinds && payloads && so && ids && texts && dup ? 0 : JOBQ_ENOMEM;
  int64_t now = jobq_now(q);
  for (size_t i = 0; i < n && rc == 0; i++) {
    char user[32], key[128];
    int64_t until;
    snprintf(user, sizeof user, "user%zu", i / (size_t)n_types);
    const char *type = types[i % (size_t)n_types];
    if ((rc = podcast_key(user, type, now, key, sizeof key, &until)) != 0) break;
    snprintf(texts + i * 256, 256,
             "{\"title\": \"The %s briefing\", \"text\": \"Good morning %s. Here is your %s "
             "podcast. The bridge inspection is complete and the results are good.\"}",
             type, user, type);
    kinds[i] = "podcast";
    payloads[i] = texts + i * 256;
    so[i] = jobq_submit_opts_new();
    if (so[i] == NULL) {
      rc = JOBQ_ENOMEM;
      break;
    }
    if ((rc = jobq_submit_opts_set_owner(so[i], user)) != 0 ||
        (rc = jobq_submit_opts_set_dedupe_until(so[i], key, until)) != 0 ||
        (rc = jobq_submit_opts_set_force(so[i], force)) != 0)
      break;
  }
  char batch[JOBQ_ID_SIZE];
  if (rc == 0) {
    rc = jobq_batch_submit(q, n, kinds, payloads, (const jobq_submit_opts_t *const *)so, 5, batch,
                           ids, dup);
    if (rc >= 0) {
      printf("batch %s: %zu podcasts submitted, %d already cached or on their way\n", batch,
             n - (size_t)rc, rc);
      fflush(stdout);
      rc = 0;
    } else {
      fail("jobq_batch_submit", rc);
    }
  }
  /* Wait for the batch (this runs on a worker thread: it may block). */
  jobq_batch_t *b = NULL;
  while (rc == 0) {
    if ((rc = jobq_batch_get(q, batch, &b)) != 0) {
      fail("jobq_batch_get", rc);
      break;
    }
    if (jobq_batch_done(b)) break;
    jobq_batch_free(b);
    b = NULL;
    usleep(100 * 1000);
  }
  if (rc == 0 && b) {
    char *js = jobq_batch_to_json(b);
    printf("summary: %s\n", js ? js : "?");
    fflush(stdout);
    if (js) snprintf(summary, cap, "%s", js);
    jobq_free(js);
    rc = jobq_batch_count(b, JOBQ_FAILED) + jobq_batch_count(b, JOBQ_CANCELLED) > 0;
  }
  jobq_batch_free(b);
  for (size_t i = 0; so && i < n; i++) jobq_submit_opts_free(so[i]);
  free(kinds);
  free(payloads);
  free(so);
  free(ids);
  free(texts);
  free(dup);
  return rc;
}

/* The "pregenerate" kind: what the cron entry submits each night. */
static void pregenerate_handler(jobq_ctx_t *ctx, void *ud) {
  jobq_t *q = ud;
  /* The schedule says how many users (another process may have added it). */
  int users;
  if (sscanf(jobq_ctx_payload(ctx), "{\"users\": %d}", &users) == 1 && users >= 1 &&
      users <= MAX_USERS)
    opt_users = users;
  char summary[4096] = "null";
  int rc = run_batch(q, 0, summary, sizeof summary);
  if (rc < 0) jobq_ctx_fail(ctx, jobq_last_error(), 1);
  else jobq_ctx_succeed(ctx, summary);
  if (rc != 0) atomic_fetch_add(&runs_failed, 1);
  atomic_fetch_add(&runs_done, 1);
}

static int open_queue(jobq_t **q, int workers) {
  jobq_options_t *o = jobq_options_new();
  int rc = o ? jobq_options_set_storage(o, opt_storage) : JOBQ_ENOMEM;
  if (rc == 0) rc = jobq_options_set_workers(o, workers);
  if (rc == 0 && clock_offset) rc = jobq_options_set_clock(o, offset_clock, NULL);
  if (rc == 0) rc = jobq_open(q, o);
  jobq_options_free(o);
  return rc ? fail("cannot open the queue", rc) : 0;
}

static int register_kinds(jobq_t *q) {
  char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "{\"script\": {\"provider\": \"template\"},"
           " \"tts\": {\"provider\": \"espeak\", \"format\": \"wav\"},"
           " \"upload\": {\"provider\": \"local\", \"dir\": \"%s\"}}",
           opt_out);
  jobq_pipeline_t *p = jobq_pipeline_new();
  int rc = p ? jobq_pipeline_add_config(p, cfg) : JOBQ_ENOMEM;
  if (rc == 0) rc = jobq_register_pipeline(q, "podcast", p, NULL);
  jobq_pipeline_free(p);
  if (rc) return fail("the podcast pipeline", rc);
  /* One run a night; a retry would make another batch of the same keys
   * (their jobs would join the first: harmless), so one attempt. */
  jobq_kind_opts_t *ko = jobq_kind_opts_new();
  rc = ko ? jobq_kind_opts_set_max_attempts(ko, 1) : JOBQ_ENOMEM;
  if (rc == 0) rc = jobq_register(q, "pregenerate", pregenerate_handler, q, ko);
  jobq_kind_opts_free(ko);
  return rc ? fail("jobq_register", rc) : 0;
}

/* Answers user's request for type as an API would: from the cache if the
 * key is live. 0 cached (or --submit), 1 not cached, 2 error. */
static int request(jobq_t *q, const char *user, const char *type, int submit) {
  char key[128];
  int64_t until;
  int rc = podcast_key(user, type, jobq_now(q), key, sizeof key, &until);
  if (rc) return fail("the key", rc);
  jobq_job_t *job = NULL;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = jobq_get_by_key(q, key, &job);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
  if (rc == 0) {
    /* What the API would answer: where the audio is, and how long. */
    const char *res = jobq_job_result(job);
    json_t *r = res ? json_loads(res, 0, NULL) : NULL;
    const char *url = json_string_value(json_object_get(r, "audioUrl"));
    double secs = json_number_value(json_object_get(r, "audioDuration"));
    printf("%s: cached (%s, lookup %.0f us), job %s", key, jobq_state_name(jobq_job_state(job)),
           us, jobq_job_id(job));
    if (url) printf(", audio %s (%.1f s)", url, secs);
    printf("\n");
    json_decref(r);
    jobq_job_free(job);
    return 0;
  }
  if (rc != JOBQ_ENOTFOUND) return fail("jobq_get_by_key", rc);
  printf("%s: not cached (lookup %.0f us)\n", key, us);
  if (!submit) return 1;
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  char id[JOBQ_ID_SIZE];
  rc = so ? jobq_submit_opts_set_dedupe_until(so, key, until) : JOBQ_ENOMEM;
  if (rc == 0) rc = jobq_submit_opts_set_owner(so, user);
  char payload[256];
  snprintf(payload, sizeof payload, "{\"title\": \"The %s briefing\", \"text\": \"Hello %s.\"}",
           type, user);
  if (rc == 0) rc = jobq_submit(q, "podcast", payload, so, id);
  jobq_submit_opts_free(so);
  if (rc < 0) return fail("jobq_submit", rc);
  printf("%s: submitted job %s\n", key, id);
  return 1;
}

static int parse_start(const char *s) {
  struct tm tm = {0};
  char z = 0;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &z) != 7 ||
      z != 'Z')
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t at = (int64_t)timegm(&tm) * 1000;
  clock_offset = at - offset_clock(NULL);
  if (clock_offset == 0) clock_offset = 1; /* "set" */
  return 0;
}

int main(int argc, char **argv) {
  const char *req_user = NULL, *req_type = NULL;
  int force = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--force") == 0) {
      force = 1;
      continue;
    }
    if (strcmp(a, "--request") == 0) {
      if (i + 2 >= argc) return usage("--request needs USER and TYPE");
      req_user = argv[++i];
      req_type = argv[++i];
      continue;
    }
    if (v == NULL) return usage("an option needs a value");
    i++;
    if (strcmp(a, "--storage") == 0) opt_storage = v;
    else if (strcmp(a, "--tz") == 0) opt_tz = v;
    else if (strcmp(a, "--at") == 0) opt_at = v;
    else if (strcmp(a, "--out") == 0) opt_out = v;
    else if (strcmp(a, "--types") == 0) snprintf(types_buf, sizeof types_buf, "%s", v);
    else if (strcmp(a, "--users") == 0 || strcmp(a, "--runs") == 0) {
      char *end;
      long n = strtol(v, &end, 10);
      if (*end || n < 1 || n > MAX_USERS) return usage("--users and --runs take 1..1000");
      if (a[2] == 'u') opt_users = (int)n;
      else opt_runs = (int)n;
    } else if (strcmp(a, "--start") == 0) {
      if (parse_start(v) != 0) return usage("--start takes YYYY-MM-DDTHH:MM:SSZ");
    } else {
      return usage("unknown option");
    }
  }
  for (char *t = strtok(types_buf, ","); t && n_types < MAX_TYPES; t = strtok(NULL, ","))
    types[n_types++] = t;
  if (n_types == 0) return usage("--types needs at least one type");
  int64_t probe;
  if (jobq_cron_next(opt_at, opt_tz, 0, &probe) != 0) return fail("--at/--tz", JOBQ_ECRON);

  jobq_t *q;
  if (req_user) { /* an API process: it reads and submits, it runs nothing */
    if (open_queue(&q, 0)) return 2;
    int rc = request(q, req_user, req_type, 1);
    jobq_close(q, 0);
    return rc;
  }
  if (open_queue(&q, 2)) return 2;
  int rc = register_kinds(q);
  if (rc == 0 && (rc = jobq_start(q)) != 0) rc = fail("jobq_start", rc);
  if (rc == 0 && force) {
    char summary[4096];
    rc = run_batch(q, 1, summary, sizeof summary);
    rc = rc < 0 ? 2 : rc;
  } else if (rc == 0) {
    char payload[64];
    snprintf(payload, sizeof payload, "{\"users\": %d}", opt_users);
    if ((rc = jobq_cron_add(q, "nightly-podcasts", opt_at, opt_tz, "pregenerate", payload, NULL)) != 0)
      rc = fail("jobq_cron_add", rc);
    int64_t next = 0;
    if (rc == 0 && jobq_cron_next(opt_at, opt_tz, jobq_now(q), &next) == 0)
      printf("nightly run \"%s\" in %s: next at %lld (in %lld s)\n", opt_at, opt_tz,
             (long long)next, (long long)((next - jobq_now(q)) / 1000));
    fflush(stdout);
    while (rc == 0 && atomic_load(&runs_done) < opt_runs) usleep(50 * 1000);
    if (rc == 0) {
      /* The next morning's requests of user0: straight from the cache. */
      for (int t = 0; t < n_types && rc == 0; t++)
        if (request(q, "user0", types[t], 0) != 0) rc = 1;
      if (rc == 0 && atomic_load(&runs_failed)) rc = 1;
    }
  }
  jobq_close(q, 5000);
  return rc;
}
