/* The webhook outbox on the PostgreSQL backend through the public API: a
 * job's own URL and a kind-default endpoint, both delivered to a small
 * HTTP receiver on 127.0.0.1 by the queue that ran the job (the delivery
 * is written with the job's end, claimed from the outbox, sent, and marked
 * delivered); a receiver that answers 410 fails the delivery and disables
 * the URL. (tests/integration/test_webhooks.c checks the requests
 * themselves, signatures included, on memory and SQLite.)
 * Skipped without a server. jobq-test-requires: postgres */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"
#include "jobq/postgres.h"

static char base_url[512], url[640];

static const char *base(void) {
  if (base_url[0]) return base_url;
  const char *e = getenv("JOBQ_TEST_POSTGRES_URL");
  if (e && *e) {
    snprintf(base_url, sizeof base_url, "%s", e);
    return base_url;
  }
  const char *f = getenv("JOBQ_TEST_POSTGRES_URL_FILE");
  FILE *fp = f ? fopen(f, "r") : NULL;
  if (fp) {
    if (fgets(base_url, sizeof base_url, fp) == NULL) base_url[0] = '\0';
    base_url[strcspn(base_url, "\r\n")] = '\0';
    fclose(fp);
  }
  return base_url;
}

static void need_server(void) {
  if (!base()[0]) {
    print_message("skipped: no PostgreSQL server (JOBQ_TEST_POSTGRES_URL unset)\n");
    skip();
  }
  static int n;
  snprintf(url, sizeof url, "%s?schema=t_wh_%ld_%d", base(), (long)getpid(), ++n);
}

/* ---- a receiver: answers every request with status `status` ---- */

typedef struct receiver {
  int fd, port, status;
  atomic_int requests;
  pthread_t th;
} receiver;

static void *serve(void *arg) {
  receiver *r = arg;
  for (;;) {
    int c = accept(r->fd, NULL, NULL);
    if (c < 0) return NULL; /* closed: stop */
    /* the headers, then the body Content-Length says */
    char buf[65536];
    size_t got = 0;
    long body = -1;
    char *end = NULL;
    while (got < sizeof buf - 1) {
      ssize_t k = read(c, buf + got, sizeof buf - 1 - got);
      if (k <= 0) break;
      got += (size_t)k;
      buf[got] = '\0';
      if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
        char *cl = strcasestr(buf, "content-length:");
        body = cl ? atol(cl + 15) : 0;
      }
      if (end && (long)(got - (size_t)(end + 4 - buf)) >= body) break;
    }
    atomic_fetch_add(&r->requests, 1);
    char resp[128];
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     r->status);
    ssize_t w = write(c, resp, (size_t)n);
    (void)w;
    close(c);
  }
}

static void receiver_start(receiver *r, int status) {
  memset(r, 0, sizeof *r);
  r->status = status;
  r->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(r->fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
  r->port = ntohs(a.sin_port);
  assert_int_equal(listen(r->fd, 16), 0);
  assert_int_equal(pthread_create(&r->th, NULL, serve, r), 0);
}

static void receiver_stop(receiver *r) {
  shutdown(r->fd, SHUT_RDWR);
  close(r->fd);
  pthread_join(r->th, NULL);
}

/* ---- helpers ---- */

static void work(jobq_ctx_t *ctx, void *ud) {
  (void)ud;
  jobq_ctx_succeed(ctx, "{\"ok\":true}");
}

static jobq_t *open_q(const char *endpoint_url) {
  jobq_options_t *o = jobq_options_new();
  assert_non_null(o);
  assert_int_equal(jobq_options_set_storage(o, url), 0);
  assert_int_equal(jobq_options_set_workers(o, 1), 0);
  assert_int_equal(jobq_options_set_webhook_allow(o, "127.0.0.1"), 0);
  assert_int_equal(jobq_options_add_webhook(o, "app", endpoint_url,
                                            "whsec_dGVzdC1zZWNyZXQtb2YtdGhlLWFwcA=="),
                   0);
  assert_int_equal(jobq_options_set_webhook_retry(o, 2, 50, 100), 0);
  jobq_t *q = NULL;
  int rc = jobq_open(&q, o);
  if (rc) fail_msg("jobq_open: %s", jobq_last_error());
  jobq_options_free(o);
  assert_int_equal(jobq_register(q, "k", work, NULL, NULL), 0);
  assert_int_equal(jobq_start(q), 0);
  return q;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The state of delivery id once it is no longer pending or sending (30 s
 * at most); its last status in *status. */
static int settled(jobq_t *q, const char *job, const char *id, int *status) {
  for (int i = 0; i < 600; i++) {
    jobq_deliveries_t *d = NULL;
    assert_int_equal(jobq_webhook_deliveries(q, job, -1, 10, NULL, &d), 0);
    for (size_t k = 0; k < jobq_deliveries_count(d); k++) {
      const jobq_delivery_t *x = jobq_deliveries_at(d, k);
      int st = jobq_delivery_state(x);
      if (strcmp(jobq_delivery_id(x), id) == 0 &&
          (st == JOBQ_DELIVERY_DELIVERED || st == JOBQ_DELIVERY_FAILED)) {
        *status = jobq_delivery_last_status(x);
        jobq_deliveries_free(d);
        return st;
      }
    }
    jobq_deliveries_free(d);
    sleep_ms(50);
  }
  fail_msg("delivery %s did not settle within 30 s", id);
  return -1;
}

static void wait_done(jobq_t *q, const char *id) {
  for (int i = 0; i < 300; i++) {
    jobq_job_t *j = NULL;
    int rc = jobq_wait(q, id, 100, &j);
    assert_true(rc == 0 || rc == JOBQ_ETIMEDOUT);
    int done = jobq_state_is_terminal(jobq_job_state(j));
    jobq_job_free(j);
    if (done) return;
  }
  fail_msg("job %s did not finish", id);
}

/* ---- cases ---- */

static void test_delivered(void **state) {
  (void)state;
  need_server();
  receiver r;
  receiver_start(&r, 200);
  char ep[128], own[128];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d/default", r.port);
  snprintf(own, sizeof own, "http://127.0.0.1:%d/own", r.port);
  jobq_t *q = open_q(ep);
  jobq_submit_opts_t *so = jobq_submit_opts_new();
  assert_non_null(so);
  assert_int_equal(jobq_submit_opts_add_webhook(so, own, "app", 0), 0);
  char id[JOBQ_ID_SIZE];
  assert_int_equal(jobq_submit(q, "k", "{}", so, id), 0);
  jobq_submit_opts_free(so);
  wait_done(q, id);
  /* both subscriptions: the kind's default endpoint and the job's own URL */
  jobq_deliveries_t *d = NULL;
  assert_int_equal(jobq_webhook_deliveries(q, id, -1, 10, NULL, &d), 0);
  assert_int_equal(jobq_deliveries_count(d), 2);
  char d0[128], d1[128];
  snprintf(d0, sizeof d0, "%s", jobq_delivery_id(jobq_deliveries_at(d, 0)));
  snprintf(d1, sizeof d1, "%s", jobq_delivery_id(jobq_deliveries_at(d, 1)));
  jobq_deliveries_free(d);
  char want[128];
  snprintf(want, sizeof want, "%s:0:succeeded", id);
  assert_string_equal(d0, want);
  snprintf(want, sizeof want, "%s:1:succeeded", id);
  assert_string_equal(d1, want);
  int status = 0;
  assert_int_equal(settled(q, id, d0, &status), JOBQ_DELIVERY_DELIVERED);
  assert_int_equal(status, 200);
  assert_int_equal(settled(q, id, d1, &status), JOBQ_DELIVERY_DELIVERED);
  assert_int_equal(status, 200);
  assert_true(atomic_load(&r.requests) >= 2);
  assert_int_equal(jobq_close(q, 5000), 0);
  receiver_stop(&r);
}

static void test_gone_disables(void **state) {
  (void)state;
  need_server();
  receiver r;
  receiver_start(&r, 410);
  char ep[128];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d/gone", r.port);
  jobq_t *q = open_q(ep);
  char id[JOBQ_ID_SIZE], did[128];
  assert_int_equal(jobq_submit(q, "k", "{}", NULL, id), 0);
  wait_done(q, id);
  snprintf(did, sizeof did, "%s:0:succeeded", id);
  int status = 0;
  assert_int_equal(settled(q, id, did, &status), JOBQ_DELIVERY_FAILED);
  assert_int_equal(status, 410);
  /* disabled: enabling it works once, and says so the second time */
  assert_int_equal(jobq_webhook_enable(q, ep), 0);
  assert_int_equal(jobq_webhook_enable(q, ep), JOBQ_ENOTFOUND);
  assert_int_equal(jobq_close(q, 5000), 0);
  receiver_stop(&r);
}

int main(void) {
  if (jobq_postgres_register() != 0) return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_delivered),
    cmocka_unit_test(test_gone_disables),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
