/* The HTTP upload providers: S3-compatible object storage (a PUT signed
 * with AWS Signature Version 4 by libcurl, path or virtual-host style, the
 * public URL from a CDN base when configured, as with Vultr Object Storage)
 * and a plain HTTP PUT. Both stream the file from the job's work directory
 * on the loop through lib/net. */
#include "stages/httpprov.h"
#include "util/mem.h"
#include "stages/upload.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S3, PUT };

typedef struct up {
  int kind;
  jobq__httpcfg http;
  char *bucket, *region, *access_key, *secret_key, *acl, *prefix, *public_base;
  int virtual_host;
  char *url_template; /* PUT: "https://host/path/{key}" */
  char *auth_header;  /* PUT: "Authorization: ..." from the environment, a secret */
} up;

typedef struct up_run {
  jobq__httpreq hr;
  up *u;
  json_t *in;
  char *url, *public_url;
  char h_ct[128], h_acl[64];
  const char *headers[4];
  const char *secrets[3];
  char userpwd[1200];
} up_run;

static void up_free(void *p) {
  up *u = p;
  if (u == NULL) return;
  jobq__httpcfg_free(&u->http);
  free(u->bucket);
  free(u->region);
  free(u->access_key);
  if (u->secret_key) memset(u->secret_key, 0, strlen(u->secret_key));
  free(u->secret_key);
  free(u->acl);
  free(u->prefix);
  free(u->public_base);
  free(u->url_template);
  if (u->auth_header) memset(u->auth_header, 0, strlen(u->auth_header));
  free(u->auth_header);
  free(u);
}

static char *dup_or(const char *s, const char *def) { return s ? jobq__strdup(s) : def ? jobq__strdup(def) : NULL; }

static int s3_configure(const json_t *cfg, void **out) {
  up *u = calloc(1, sizeof *u);
  if (u == NULL) return jobq__err(JOBQ_ENOMEM, "upload: out of memory");
  u->kind = S3;
  const char *endpoint, *bucket, *region, *style, *acl, *prefix, *pub;
  int rc;
  if ((rc = jobq__cfg_str(cfg, "upload", "endpoint", 1, &endpoint)) ||
      (rc = jobq__cfg_str(cfg, "upload", "bucket", 1, &bucket)) ||
      (rc = jobq__cfg_str(cfg, "upload", "region", 0, &region)) ||
      (rc = jobq__cfg_str(cfg, "upload", "style", 0, &style)) ||
      (rc = jobq__cfg_str(cfg, "upload", "acl", 0, &acl)) ||
      (rc = jobq__cfg_str(cfg, "upload", "key_prefix", 0, &prefix)) ||
      (rc = jobq__cfg_str(cfg, "upload", "public_base", 0, &pub)) ||
      (rc = jobq__upload_prefix_check("upload provider 's3'", prefix)))
    goto fail;
  if (style && strcmp(style, "path") && strcmp(style, "virtual")) {
    rc = jobq__err(JOBQ_ECONFIG, "upload: \"style\" must be \"path\" or \"virtual\"");
    goto fail;
  }
  for (const char *c = bucket; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.')) {
      rc = jobq__err(JOBQ_ECONFIG, "upload: \"bucket\" '%.64s' is not a valid bucket name", bucket);
      goto fail;
    }
  u->virtual_host = style && strcmp(style, "virtual") == 0;
  /* the endpoint is the base URL of the HTTP settings */
  json_t *c2 = json_deep_copy(cfg);
  if (c2 == NULL) goto nomem;
  json_object_set_new(c2, "base_url", json_string(endpoint));
  rc = jobq__httpcfg_parse(c2, "upload", "s3", NULL, NULL, 0, &u->http);
  if (rc == 0)
    rc = jobq__cfg_secret(c2, "upload", "s3", "access_key", "access_key_env", "AWS_ACCESS_KEY_ID",
                       &u->access_key);
  if (rc == 0)
    rc = jobq__cfg_secret(c2, "upload", "s3", "secret_key", "secret_key_env", "AWS_SECRET_ACCESS_KEY",
                       &u->secret_key);
  json_decref(c2);
  if (rc) goto fail;
  u->bucket = jobq__strdup(bucket);
  u->region = dup_or(region, "us-east-1");
  u->acl = dup_or(acl, NULL);
  u->prefix = dup_or(prefix, "");
  u->public_base = dup_or(pub, NULL);
  if (!u->bucket || !u->region || (acl && !u->acl) || !u->prefix || (pub && !u->public_base))
    goto nomem;
  *out = u;
  return 0;
nomem:
  rc = jobq__err(JOBQ_ENOMEM, "upload: out of memory");
fail:
  up_free(u);
  return rc;
}

static int put_configure(const json_t *cfg, void **out) {
  up *u = calloc(1, sizeof *u);
  if (u == NULL) return jobq__err(JOBQ_ENOMEM, "upload: out of memory");
  u->kind = PUT;
  const char *url, *prefix, *pub, *auth_env;
  int rc;
  if ((rc = jobq__cfg_str(cfg, "upload", "url", 1, &url)) ||
      (rc = jobq__cfg_str(cfg, "upload", "key_prefix", 0, &prefix)) ||
      (rc = jobq__cfg_str(cfg, "upload", "public_base", 0, &pub)) ||
      (rc = jobq__cfg_str(cfg, "upload", "auth_env", 0, &auth_env)) ||
      (rc = jobq__upload_prefix_check("upload provider 'http'", prefix)))
    goto fail;
  if (strstr(url, "{key}") == NULL) {
    rc = jobq__err(JOBQ_ECONFIG, "upload provider 'http': \"url\" must contain {key}");
    goto fail;
  }
  json_t *c2 = json_deep_copy(cfg);
  if (c2 == NULL) goto nomem;
  json_object_set_new(c2, "base_url", json_string(url));
  rc = jobq__httpcfg_parse(c2, "upload", "http", NULL, NULL, 0, &u->http);
  json_decref(c2);
  if (rc) goto fail;
  if (auth_env) {
    const char *v = getenv(auth_env);
    if (v == NULL || *v == '\0') {
      rc = jobq__err(JOBQ_ECONFIG, "upload provider 'http': the environment variable %s is not set",
                     auth_env);
      goto fail;
    }
    size_t n = strlen(v) + 32;
    if ((u->auth_header = malloc(n)) == NULL) goto nomem;
    snprintf(u->auth_header, n, "Authorization: %s", v);
  }
  u->url_template = jobq__strdup(url);
  u->prefix = dup_or(prefix, "");
  u->public_base = dup_or(pub, NULL);
  if (!u->url_template || !u->prefix || (pub && !u->public_base)) goto nomem;
  *out = u;
  return 0;
nomem:
  rc = jobq__err(JOBQ_ENOMEM, "upload: out of memory");
fail:
  up_free(u);
  return rc;
}

/* RFC 3986: everything but unreserved characters and '/' is %XX. S3 signs
 * the encoded path, so a '+' or a space must be encoded before libcurl
 * signs the URL. */
static char *encode_key(const char *key) {
  char *o = malloc(strlen(key) * 3 + 1), *p = o;
  if (o == NULL) return NULL;
  for (const unsigned char *c = (const unsigned char *)key; *c; c++) {
    if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
        *c == '-' || *c == '_' || *c == '.' || *c == '~' || *c == '/')
      *p++ = (char)*c;
    else
      p += sprintf(p, "%%%02X", *c);
  }
  *p = '\0';
  return o;
}

static char *join(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *o = malloc(n);
  if (o) snprintf(o, n, "%s%s%s", a, b, c);
  return o;
}

static void run_free(up_run *r) {
  json_decref(r->in);
  free(r->url);
  free(r->public_url);
  memset(r->userpwd, 0, sizeof r->userpwd);
  free(r);
}

static void on_put(jobq__httpreq *hr, const jobq__http_resp *resp) {
  up_run *r = hr->ud;
  jobq_stage_t *st = hr->st;
  if (resp->rc != 0 || resp->status < 200 || resp->status >= 300) {
    jobq__httpreq_fail(st, &r->u->http, resp);
    run_free(r);
    return;
  }
  json_t *in = r->in;
  r->in = NULL;
  char *url = r->public_url;
  r->public_url = NULL;
  run_free(r);
  jobq_stage_progress(st, 100, NULL);
  jobq__upload_succeed(st, in, url);
  free(url);
}

static void up_run_stage(jobq_stage_t *st, void *ud) {
  up *u = ud;
  json_t *in = jobq__stage_input_object(st);
  if (in == NULL) return;
  jobq__upload_src src;
  if (jobq__upload_src_get(st, in, u->prefix, &src) != 0) {
    json_decref(in);
    return;
  }
  up_run *r = calloc(1, sizeof *r);
  char *ekey = encode_key(src.key);
  free(src.key);
  if (r == NULL || ekey == NULL) {
    free(r);
    free(ekey);
    json_decref(in);
    jobq_stage_fail(st, "out of memory", 1);
    return;
  }
  r->u = u;
  r->in = in;
  int nh = 0;
  snprintf(r->h_ct, sizeof r->h_ct, "Content-Type: %s", src.content_type);
  r->headers[nh++] = r->h_ct;
  if (u->kind == S3) {
    const char *base = u->http.base_url;
    if (u->virtual_host) {
      /* https://host -> https://bucket.host */
      const char *host = strstr(base, "://") + 3;
      char scheme[16];
      snprintf(scheme, sizeof scheme, "%.*s", (int)(host - base), base);
      char *h = join(scheme, u->bucket, ".");
      char *b2 = h ? join(h, host, "/") : NULL;
      r->url = b2 ? join(b2, ekey, "") : NULL;
      free(h);
      free(b2);
    } else {
      char *b1 = join(base, "/", u->bucket);
      r->url = b1 ? join(b1, "/", ekey) : NULL;
      free(b1);
    }
    /* libcurl signs only what it is given: the payload hash header must be
     * sent for S3 to accept the request. */
    r->headers[nh++] = "x-amz-content-sha256: UNSIGNED-PAYLOAD";
    if (u->acl) {
      snprintf(r->h_acl, sizeof r->h_acl, "x-amz-acl: %.40s", u->acl);
      r->headers[nh++] = r->h_acl;
    }
    snprintf(r->userpwd, sizeof r->userpwd, "%s:%s", u->access_key, u->secret_key);
    r->secrets[0] = u->secret_key;
  } else {
    const char *at = strstr(u->url_template, "{key}");
    char *head = jobq__strndup(u->url_template, (size_t)(at - u->url_template));
    r->url = head ? join(head, ekey, at + 5) : NULL;
    free(head);
    if (u->auth_header) {
      r->headers[nh++] = u->auth_header;
      r->secrets[0] = u->auth_header + 15; /* the value after "Authorization: " */
    }
  }
  r->public_url = u->public_base ? join(u->public_base, u->public_base[strlen(u->public_base) - 1] == '/' ? "" : "/", ekey)
                                 : (r->url ? jobq__strdup(r->url) : NULL);
  free(ekey);
  if (r->url == NULL || r->public_url == NULL) {
    run_free(r);
    jobq_stage_fail(st, "out of memory", 1);
    return;
  }
  jobq__http_opts o = {0};
  jobq__httpcfg_opts(&u->http, &o);
  o.method = "PUT";
  o.url = r->url;
  o.headers = r->headers;
  o.n_headers = (size_t)nh;
  o.body_file = json_string_value(json_object_get(in, "audioFile"));
  char sigv4[120];
  if (u->kind == S3) {
    snprintf(sigv4, sizeof sigv4, "aws:amz:%.60s:s3", u->region);
    o.aws_sigv4 = sigv4;
    o.userpwd = r->userpwd;
  }
  o.secrets = r->secrets;
  o.n_secrets = r->secrets[0] ? 1 : 0;
  jobq_stage_progress(st, 10, NULL);
  if (jobq__httpreq_start(&r->hr, st, &o, on_put, r) != 0) run_free(r);
}

const jobq__provider jobq__upload_s3 = {
  "upload", "s3", JOBQ_STAGE_ON_LOOP, s3_configure, up_free, up_run_stage,
};
const jobq__provider jobq__upload_http = {
  "upload", "http", JOBQ_STAGE_ON_LOOP, put_configure, up_free, up_run_stage,
};
