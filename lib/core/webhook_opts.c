/* Webhook configuration: the endpoints and limits in jobq_options_t, a
 * job's own subscriptions in jobq_submit_opts_t, and the subscriptions each
 * new job carries to storage. Secrets stay in this file's structures and in
 * the sender's signing: no sentence here ever quotes one. */
#include "core/internal.h"
#include "core/webhook.h"
#include "net/addrpolicy.h"
#include "util/sbuf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jobq__wh_opts_defaults(jobq__wh_opts *o) {
  memset(o, 0, sizeof *o);
  o->connect_ms = JOBQ_WH_DEFAULT_CONNECT_MS;
  o->total_ms = JOBQ_WH_DEFAULT_TOTAL_MS;
  o->max_attempts = JOBQ_WH_DEFAULT_ATTEMPTS;
  o->base_ms = JOBQ_WH_DEFAULT_BASE_MS;
  o->max_delay_ms = JOBQ_WH_DEFAULT_MAX_DELAY_MS;
  o->concurrency = JOBQ_WH_DEFAULT_CONCURRENCY;
  o->yield_ms = JOBQ_WH_DEFAULT_YIELD_MS;
}

/* Secrets are wiped before their memory goes back: a later allocation (or a
 * core dump) should not find them. */
static void secret_free(char *s) {
  if (s == NULL) return;
  volatile char *p = s;
  while (*p) *p++ = 0;
  free(s);
}

static void endpoint_clear(jobq__wh_endpoint *e) {
  free(e->url);
  secret_free(e->secret);
  free(e->kinds);
  memset(e, 0, sizeof *e);
}

void jobq__wh_opts_clear(jobq__wh_opts *o) {
  for (int i = 0; i < o->n; i++) endpoint_clear(&o->v[i]);
  free(o->v);
  free(o->allow);
  o->v = NULL;
  o->n = 0;
  o->allow = NULL;
}

int jobq__wh_opts_copy(jobq__wh_opts *dst, const jobq__wh_opts *src) {
  *dst = *src;
  dst->v = NULL;
  dst->n = 0;
  dst->allow = NULL;
  if (src->allow && (dst->allow = jobq__strdup(src->allow)) == NULL) return JOBQ_ENOMEM;
  if (src->n == 0) return 0;
  dst->v = calloc((size_t)src->n, sizeof *dst->v);
  if (dst->v == NULL) return JOBQ_ENOMEM;
  for (int i = 0; i < src->n; i++) {
    const jobq__wh_endpoint *s = &src->v[i];
    jobq__wh_endpoint *d = &dst->v[dst->n++];
    memcpy(d->name, s->name, sizeof d->name);
    d->events = s->events;
    d->payload = s->payload;
    if ((s->url && (d->url = jobq__strdup(s->url)) == NULL) ||
        (d->secret = jobq__strdup(s->secret)) == NULL ||
        (s->kinds && (d->kinds = jobq__strdup(s->kinds)) == NULL))
      return JOBQ_ENOMEM;
  }
  return 0;
}

static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > JOBQ_WH_NAME_MAX) return 0;
  for (const char *p = s; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != ':' && *p != '-') return 0;
  return 1;
}

static jobq__wh_endpoint *find(const jobq__wh_opts *o, const char *name) {
  for (int i = 0; i < o->n; i++)
    if (strcmp(o->v[i].name, name) == 0) return &o->v[i];
  return NULL;
}

/* Checks "whsec_a" or "whsec_a whsec_b" by signing with each: the signing
 * code is the one judge of what a secret is. The sentence says which of the
 * two is wrong, never what it is. */
static int secret_check(const char *fn, const char *secret) {
  size_t n = strlen(secret);
  const char *sp = strchr(secret, ' ');
  if (n == 0) return jobq__err(JOBQ_EINVAL, "%s: the secret is empty", fn);
  if (sp && (strchr(sp + 1, ' ') || sp == secret || sp[1] == '\0'))
    return jobq__err(JOBQ_EINVAL,
                     "%s: the secret must be one \"whsec_...\" secret, or two separated by one "
                     "space during a rotation",
                     fn);
  char sig[JOBQ_WEBHOOK_SIGNATURE_SIZE];
  for (int i = 0; i < (sp ? 2 : 1); i++) {
    char one[512];
    const char *s = i == 0 ? secret : sp + 1;
    size_t len = i == 0 && sp ? (size_t)(sp - secret) : strlen(s);
    if (len >= sizeof one)
      return jobq__err(JOBQ_EINVAL, "%s: secret %d is longer than %zu bytes", fn, i + 1,
                       sizeof one - 1);
    memcpy(one, s, len);
    one[len] = '\0';
    int rc = jobq_webhook_sign(one, "check", 0, "", 0, sig, sizeof sig);
    memset(one, 0, sizeof one);
    if (rc) {
      /* jobq_webhook_sign's sentence names its own argument: say ours. */
      return jobq__err(JOBQ_EINVAL,
                       "%s: %s is not a \"whsec_\" secret followed by base64 of the key", fn,
                       sp ? (i == 0 ? "the first secret" : "the second secret") : "the secret");
    }
  }
  return 0;
}

/* JOBQ_WEBHOOK_SECRET_<NAME>: name upper-cased, '.', ':', '-' as '_'. */
static void env_name(const char *name, char *out, size_t cap) {
  int n = snprintf(out, cap, "JOBQ_WEBHOOK_SECRET_");
  size_t i = (size_t)n;
  for (const char *p = name; *p && i + 1 < cap; p++)
    out[i++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
  out[i] = '\0';
}

JOBQ_API int jobq_options_add_webhook(jobq_options_t *o, const char *name, const char *url,
                                      const char *secret) {
  static const char fn[] = "jobq_options_add_webhook";
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  if (name == NULL) return jobq__err(JOBQ_EINVAL, "%s: name is NULL", fn);
  if (!name_ok(name))
    return jobq__err(JOBQ_EINVAL,
                     "%s: the name must be 1..%d bytes of letters, digits and _ . : -", fn,
                     JOBQ_WH_NAME_MAX);
  if (find(&o->wh, name)) return jobq__err(JOBQ_EEXIST, "%s: endpoint '%s' exists", fn, name);
  char why[256];
  if (url && jobq__webhook_url_check(url, why, sizeof why) != 0)
    return jobq__err(JOBQ_EINVAL, "%s: %s", fn, why);
  char var[JOBQ_WH_NAME_MAX + 32];
  if (secret == NULL) {
    env_name(name, var, sizeof var);
    secret = getenv(var);
    if (secret == NULL || secret[0] == '\0')
      return jobq__err(JOBQ_EINVAL,
                       "%s: no secret given for endpoint '%s', and the environment variable %s "
                       "is not set",
                       fn, name, var);
  }
  int rc = secret_check(fn, secret);
  if (rc) return rc;
  jobq__wh_endpoint e;
  memset(&e, 0, sizeof e);
  snprintf(e.name, sizeof e.name, "%s", name);
  e.events = JOBQ_WEBHOOK_ON_FINISHED;
  if ((url && (e.url = jobq__strdup(url)) == NULL) || (e.secret = jobq__strdup(secret)) == NULL) {
    endpoint_clear(&e);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  }
  jobq__wh_endpoint *v = realloc(o->wh.v, (size_t)(o->wh.n + 1) * sizeof *v);
  if (v == NULL) {
    endpoint_clear(&e);
    return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  }
  o->wh.v = v;
  v[o->wh.n++] = e;
  return 0;
}

static int lookup(const char *fn, jobq_options_t *o, const char *name, jobq__wh_endpoint **out) {
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  if (name == NULL) return jobq__err(JOBQ_EINVAL, "%s: name is NULL", fn);
  *out = find(&o->wh, name);
  if (*out == NULL)
    return jobq__err(JOBQ_ENOTFOUND, "%s: no endpoint '%.64s' (jobq_options_add_webhook first)",
                     fn, name);
  return 0;
}

JOBQ_API int jobq_options_set_webhook_events(jobq_options_t *o, const char *name, int events) {
  static const char fn[] = "jobq_options_set_webhook_events";
  jobq__wh_endpoint *e;
  int rc = lookup(fn, o, name, &e);
  if (rc) return rc;
  if (events < 1 || events > 15)
    return jobq__err(JOBQ_EINVAL, "%s: events is %d; it must be a JOBQ_WEBHOOK_ON_* mask, 1..15",
                     fn, events);
  e->events = events;
  return 0;
}

JOBQ_API int jobq_options_set_webhook_kinds(jobq_options_t *o, const char *name,
                                            const char *kinds) {
  static const char fn[] = "jobq_options_set_webhook_kinds";
  jobq__wh_endpoint *e;
  int rc = lookup(fn, o, name, &e);
  if (rc) return rc;
  char *copy = NULL;
  if (kinds && kinds[0]) {
    /* Each item must be a kind name: a typo would silently subscribe nothing. */
    size_t len = strlen(kinds);
    if (len > 4096) return jobq__err(JOBQ_EINVAL, "%s: kinds is longer than 4096 bytes", fn);
    copy = jobq__strdup(kinds);
    if (copy == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
    size_t i = 0;
    for (char *p = copy;; i++) {
      char *comma = strchr(p, ',');
      if (comma) *comma = '\0';
      if ((rc = jobq__kind_name_check(fn, p)) != 0) {
        free(copy);
        return jobq__err_prefix(rc, fn, "%s: item %zu of kinds: ", fn, i + 1);
      }
      if (!comma) break;
      *comma = ',';
      p = comma + 1;
    }
  }
  free(e->kinds);
  e->kinds = copy;
  return 0;
}

JOBQ_API int jobq_options_set_webhook_payload(jobq_options_t *o, const char *name, int on) {
  static const char fn[] = "jobq_options_set_webhook_payload";
  jobq__wh_endpoint *e;
  int rc = lookup(fn, o, name, &e);
  if (rc) return rc;
  if (on != 0 && on != 1) return jobq__err(JOBQ_EINVAL, "%s: on is %d; it must be 0 or 1", fn, on);
  e->payload = on;
  return 0;
}

JOBQ_API int jobq_options_set_webhook_allow(jobq_options_t *o, const char *list) {
  static const char fn[] = "jobq_options_set_webhook_allow";
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  char *copy = NULL;
  if (list && list[0]) {
    jobq__addr_allow *a = NULL;
    int rc = jobq__addr_allow_parse(list, &a);
    if (rc) {
      jobq__err_prefix(rc, NULL, "%s: ", fn);
      return rc;
    }
    jobq__addr_allow_free(a);
    if ((copy = jobq__strdup(list)) == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  }
  free(o->wh.allow);
  o->wh.allow = copy;
  return 0;
}

JOBQ_API int jobq_options_set_webhook_timeouts(jobq_options_t *o, int64_t connect_ms,
                                               int64_t total_ms) {
  static const char fn[] = "jobq_options_set_webhook_timeouts";
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  if (connect_ms < 1 || connect_ms > 600000 || total_ms < 1 || total_ms > 600000)
    return jobq__err(JOBQ_EINVAL, "%s: each timeout must be 1..600000 ms", fn);
  if (connect_ms > total_ms)
    return jobq__err(JOBQ_EINVAL, "%s: connect_ms %lld is longer than total_ms %lld", fn,
                     (long long)connect_ms, (long long)total_ms);
  o->wh.connect_ms = connect_ms;
  o->wh.total_ms = total_ms;
  return 0;
}

JOBQ_API int jobq_options_set_webhook_retry(jobq_options_t *o, int max_attempts, int64_t base_ms,
                                            int64_t max_delay_ms) {
  static const char fn[] = "jobq_options_set_webhook_retry";
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  if (max_attempts < 1 || max_attempts > 100)
    return jobq__err(JOBQ_EINVAL, "%s: max_attempts is %d; it must be 1..100", fn, max_attempts);
  if (base_ms < 1 || base_ms > 86400000LL || max_delay_ms < base_ms || max_delay_ms > 7 * 86400000LL)
    return jobq__err(JOBQ_EINVAL,
                     "%s: base_ms must be 1..86400000 and max_delay_ms base_ms..604800000", fn);
  o->wh.max_attempts = max_attempts;
  o->wh.base_ms = base_ms;
  o->wh.max_delay_ms = max_delay_ms;
  return 0;
}

JOBQ_API int jobq_options_set_webhook_concurrency(jobq_options_t *o, int n) {
  static const char fn[] = "jobq_options_set_webhook_concurrency";
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  if (n < 0 || n > 10000) return jobq__err(JOBQ_EINVAL, "%s: n is %d; it must be 0..10000", fn, n);
  o->wh.concurrency = n;
  return 0;
}

JOBQ_API int jobq_options_set_webhook_yield(jobq_options_t *o, int ms) {
  static const char fn[] = "jobq_options_set_webhook_yield";
  if (o == NULL) return jobq__err(JOBQ_EINVAL, "%s: opts is NULL", fn);
  if (ms < 0 || ms > 60000)
    return jobq__err(JOBQ_EINVAL, "%s: ms is %d; it must be 0..60000", fn, ms);
  o->wh.yield_ms = ms;
  return 0;
}

/* ---- a job's own subscriptions ---- */

JOBQ_API int jobq_submit_opts_add_webhook(jobq_submit_opts_t *so, const char *url,
                                          const char *endpoint, int events) {
  static const char fn[] = "jobq_submit_opts_add_webhook";
  if (so == NULL) return jobq__err(JOBQ_EINVAL, "%s: so is NULL", fn);
  if (endpoint == NULL) return jobq__err(JOBQ_EINVAL, "%s: endpoint is NULL", fn);
  if (!name_ok(endpoint))
    return jobq__err(JOBQ_EINVAL,
                     "%s: the endpoint name must be 1..%d bytes of letters, digits and _ . : -",
                     fn, JOBQ_WH_NAME_MAX);
  if (events < 0 || events > 15)
    return jobq__err(JOBQ_EINVAL,
                     "%s: events is %d; it must be 0 (the endpoint's) or a JOBQ_WEBHOOK_ON_* "
                     "mask, 1..15",
                     fn, events);
  char why[256];
  if (jobq__webhook_url_check(url, why, sizeof why) != 0)
    return jobq__err(JOBQ_EINVAL, "%s: %s", fn, why);
  if (so->n_wh >= JOBQ_WH_PER_JOB)
    return jobq__err(JOBQ_EINVAL, "%s: a job has at most %d webhooks", fn, JOBQ_WH_PER_JOB);
  jobq__wh_sub *s = &so->wh[so->n_wh];
  if ((s->url = jobq__strdup(url)) == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
  s->events = events;
  so->n_wh++;
  return 0;
}

void jobq__wh_subs_free(jobq_submit_opts_t *so) {
  for (int i = 0; i < so->n_wh; i++) free(so->wh[i].url);
  so->n_wh = 0;
}

/* ---- what a new job carries ---- */

static int kind_listed(const char *kinds, const char *kind) {
  if (kinds == NULL) return 1;
  size_t k = strlen(kind);
  for (const char *p = kinds; *p;) {
    size_t n = strcspn(p, ",");
    if (n == k && strncmp(p, kind, k) == 0) return 1;
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

static void hook(jobq_sbuf *b, int *first, const char *name, int on, const char *url, int payload) {
  jobq__sb_str(b, *first ? "[{\"e\":" : ",{\"e\":");
  *first = 0;
  jobq__sb_json_str(b, name);
  jobq__sb_str(b, ",\"on\":");
  jobq__sb_int(b, on);
  if (url) {
    jobq__sb_str(b, ",\"u\":");
    jobq__sb_json_str(b, url);
  }
  if (payload) jobq__sb_str(b, ",\"p\":1");
  jobq__sb_str(b, "}");
}

int jobq__wh_hooks_json(jobq_t *q, const char *fn, const char *kind, const jobq__wh_sub *subs,
                        int n_subs, char **out) {
  *out = NULL;
  const jobq__wh_opts *o = &q->wh_cfg;
  if (n_subs == 0 && o->n == 0) return 0;
  jobq_sbuf b = {0};
  int first = 1, count = n_subs;
  for (int i = 0; i < o->n; i++) count += o->v[i].url && kind_listed(o->v[i].kinds, kind);
  if (count > JOBQ_WH_PER_JOB)
    return jobq__err(JOBQ_EINVAL,
                     "%s: the job would have %d webhooks (%d of its own and %d of its kind's "
                     "endpoints); at most %d",
                     fn, count, n_subs, count - n_subs, JOBQ_WH_PER_JOB);
  for (int i = 0; i < n_subs; i++) {
    const jobq__wh_endpoint *e = find(o, subs[i].endpoint);
    if (e == NULL) {
      free(b.p);
      return jobq__err(JOBQ_EINVAL,
                       "%s: webhook endpoint '%s' is not configured in this process "
                       "(jobq_options_add_webhook)",
                       fn, subs[i].endpoint);
    }
    char why[320];
    if (jobq__webhook_url_literal_check(subs[i].url, q->wh_allow, why, sizeof why) != 0) {
      free(b.p);
      return jobq__err(JOBQ_EINVAL, "%s: %s", fn, why);
    }
    hook(&b, &first, e->name, subs[i].events ? subs[i].events : e->events, subs[i].url,
         e->payload);
  }
  for (int i = 0; i < o->n; i++) {
    const jobq__wh_endpoint *e = &o->v[i];
    if (e->url && kind_listed(e->kinds, kind)) hook(&b, &first, e->name, e->events, NULL, e->payload);
  }
  if (first) return 0; /* no subscription at all */
  if (!q->ops_outbox) {
    free(b.p);
    return jobq__err(JOBQ_ENOTSUP, "%s: the %s backend keeps no webhook outbox", fn,
                     q->ops->scheme);
  }
  jobq__sb_str(&b, "]");
  *out = jobq__sb_take(&b);
  if (*out == NULL) return jobq__err(JOBQ_ENOMEM, "%s: out of memory", fn);
  return 0;
}

int jobq__wh_backend_ok(const jobq_storage_ops *ops) {
  /* cron_fire_hooked only matters to a backend with cron: one without
   * (cron_fire NULL) never fires a schedule, hooked or not. */
  return ops->version >= 4 && ops->insert_hooked &&
         (ops->cron_fire_hooked || ops->cron_fire == NULL) && ops->outbox_claim &&
         ops->outbox_done && ops->outbox_list && ops->outbox_counts && ops->outbox_redeliver &&
         ops->webhook_enable;
}
