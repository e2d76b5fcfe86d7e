/* The ElevenLabs TTS provider: text-to-dialogue (several voices per request,
 * about 2,000 characters each) or text-to-speech (one request per turn),
 * asked for raw PCM so that the segments join exactly, with pauses, into one
 * WAV or MP3 file. Requests run on the loop through lib/net, one after the
 * other (a provider limits concurrent requests per key); the file is
 * written on libuv's pool. */
#include "stages/audio.h"
#include "util/mem.h"
#include "stages/httpprov.h"
#include "stages/tts.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct el {
  jobq__httpcfg http;
  int dialogue; /* text-to-dialogue, else text-to-speech */
  char *model;
  jobq__voices voices; /* "voices", then "default_voices" by order of appearance */
  long long rate, pause_ms, max_chars, kbps;
  int mp3;
} el;

typedef struct el_run {
  jobq__httpreq hr;
  el *e;
  json_t *in;
  json_t *reqs; /* the request bodies, in order */
  size_t next;
  char *body;
  char auth[600];
  const char *headers[2];
  const char *secrets[1];
  jobq__pcm pcm;
  uv_work_t work;
  char path[4200];
  int wrc;
  char werr[400];
} el_run;

static void el_free(void *p) {
  el *e = p;
  if (e == NULL) return;
  jobq__httpcfg_free(&e->http);
  free(e->model);
  jobq__voices_free(&e->voices);
  free(e);
}

static int el_configure(const json_t *cfg, void **out) {
  el *e = calloc(1, sizeof *e);
  if (e == NULL) return jobq__err(JOBQ_ENOMEM, "tts: out of memory");
  e->rate = 24000;
  e->pause_ms = 300;
  e->max_chars = 2000;
  e->kbps = 128;
  const char *mode, *model;
  int rc;
  if ((rc = jobq__httpcfg_parse(cfg, "tts", "elevenlabs", "https://api.elevenlabs.io",
                             "ELEVENLABS_API_KEY", 1, &e->http)) ||
      (rc = jobq__cfg_str(cfg, "tts", "mode", 0, &mode)) ||
      (rc = jobq__cfg_str(cfg, "tts", "model_id", 0, &model)) ||
      (rc = jobq__cfg_int(cfg, "tts", "sample_rate", 16000, 44100, &e->rate)) ||
      (rc = jobq__cfg_int(cfg, "tts", "pause_ms", 0, 5000, &e->pause_ms)) ||
      (rc = jobq__cfg_int(cfg, "tts", "max_chars_per_request", 100, 5000, &e->max_chars)) ||
      (rc = jobq__cfg_int(cfg, "tts", "bitrate", 32, 320, &e->kbps)))
    goto fail;
  if (mode && strcmp(mode, "dialogue") && strcmp(mode, "tts")) {
    rc = jobq__err(JOBQ_ECONFIG, "tts: \"mode\" must be \"dialogue\" or \"tts\"");
    goto fail;
  }
  if (e->rate != 16000 && e->rate != 22050 && e->rate != 24000 && e->rate != 44100) {
    rc = jobq__err(JOBQ_ECONFIG, "tts: \"sample_rate\" must be 16000, 22050, 24000 or 44100");
    goto fail;
  }
  if ((rc = jobq__tts_format(cfg, "elevenlabs", &e->mp3))) goto fail;
  e->dialogue = mode == NULL || strcmp(mode, "dialogue") == 0;
  e->model = jobq__strdup(model ? model : e->dialogue ? "eleven_v3" : "eleven_multilingual_v2");
  if (e->model == NULL) goto nomem;
  if ((rc = jobq__voices_parse(cfg, "voice id", "default_voices", NULL, NULL, &e->voices))) goto fail;
  if (e->voices.n == 0 && e->voices.n_fallback == 0) {
    rc = jobq__err(JOBQ_ECONFIG, "tts provider 'elevenlabs': \"voices\" or \"default_voices\" is required");
    goto fail;
  }
  *out = e;
  return 0;
nomem:
  rc = jobq__err(JOBQ_ENOMEM, "tts: out of memory");
fail:
  el_free(e);
  return rc;
}

static void run_free(el_run *r) {
  json_decref(r->in);
  json_decref(r->reqs);
  free(r->body);
  jobq__pcm_free(&r->pcm);
  free(r);
}

/* The request bodies: one per turn (tts), or turns grouped up to max_chars
 * (dialogue). Each is {"url path", body}. NULL with why on bad input. */
static json_t *plan(const el *e, const json_t *d, char *why, size_t n) {
  json_t *reqs = json_array(), *cur = NULL;
  size_t cur_chars = 0, i;
  const char *seen[64];
  int n_seen = 0;
  json_t *turn;
  json_array_foreach(d, i, turn) {
    const char *sp = json_string_value(json_object_get(turn, "speaker"));
    const char *tx = json_string_value(json_object_get(turn, "text"));
    if (sp == NULL || tx == NULL || *tx == '\0') {
      snprintf(why, n, "dialogue turn %zu is not {\"speaker\", \"text\"}", i);
      json_decref(reqs);
      return NULL;
    }
    const char *voice = jobq__voices_pick(&e->voices, sp, seen, &n_seen);
    if (voice == NULL) {
      snprintf(why, n, "no voice for speaker '%.64s' (set \"voices\" or \"default_voices\")", sp);
      json_decref(reqs);
      return NULL;
    }
    if (!e->dialogue) {
      char path[300];
      snprintf(path, sizeof path, "/v1/text-to-speech/%s?output_format=pcm_%lld", voice, e->rate);
      json_array_append_new(reqs, json_pack("{s:s, s:{s:s, s:s}}", "path", path, "body", "text", tx,
                                            "model_id", e->model));
      continue;
    }
    size_t len = strlen(tx);
    if (cur == NULL || cur_chars + len > (size_t)e->max_chars) {
      char path[100];
      snprintf(path, sizeof path, "/v1/text-to-dialogue?output_format=pcm_%lld", e->rate);
      cur = json_pack("{s:s, s:{s:[], s:s}}", "path", path, "body", "inputs", "model_id", e->model);
      json_array_append_new(reqs, cur);
      cur_chars = 0;
    }
    json_array_append_new(json_object_get(json_object_get(cur, "body"), "inputs"),
                          json_pack("{s:s, s:s}", "text", tx, "voice_id", voice));
    cur_chars += len;
  }
  return reqs;
}

static void next_request(el_run *r);

static void after_write(uv_work_t *w, int status) {
  el_run *r = w->data;
  jobq_stage_t *st = r->hr.st;
  if (status != 0 || r->wrc != 0) {
    jobq__stage_failf(st, 1, "%s", status ? "cancelled" : r->werr);
    run_free(r);
    return;
  }
  json_t *in = r->in;
  r->in = NULL;
  double secs = jobq__pcm_seconds(&r->pcm);
  char path[sizeof r->path];
  memcpy(path, r->path, sizeof path);
  int mp3 = r->e->mp3;
  run_free(r);
  jobq__tts_succeed(st, in, path, mp3, secs);
}

static void work_write(uv_work_t *w) {
  el_run *r = w->data;
  r->wrc = r->e->mp3 ? jobq__mp3_write(r->path, &r->pcm, (int)r->e->kbps) : jobq__wav_write(r->path, &r->pcm);
  if (r->wrc) snprintf(r->werr, sizeof r->werr, "%s", jobq_last_error());
}

static void on_audio(jobq__httpreq *hr, const jobq__http_resp *resp) {
  el_run *r = hr->ud;
  jobq_stage_t *st = hr->st;
  if (resp->rc != 0 || resp->status != 200) {
    jobq__httpreq_fail(st, &r->e->http, resp);
    run_free(r);
    return;
  }
  const char *ct = resp->content_type ? resp->content_type : "";
  if (strncmp(ct, "text/", 5) == 0 || strstr(ct, "json") || strstr(ct, "html") ||
      resp->body_len == 0 || resp->body_len % 2 != 0) {
    /* An error page or JSON with status 200 is the provider's fault; a retry
     * may get audio. */
    jobq__stage_failf(st, 1, "elevenlabs: HTTP 200 but the answer is not audio (%zu bytes, Content-Type '%.60s')",
                   resp->body_len, ct);
    run_free(r);
    return;
  }
  jobq__pcm seg = {(int16_t *)(void *)resp->body, resp->body_len / 2, resp->body_len / 2, (int)r->e->rate};
  int rc = 0;
  if (r->next > 1 && !r->e->dialogue) rc = jobq__pcm_append_silence(&r->pcm, (int)r->e->pause_ms);
  if (rc == 0) rc = jobq__pcm_append_pcm(&r->pcm, &seg); /* copies: the body is the resp's */
  if (rc) {
    run_free(r);
    jobq_stage_fail(st, "out of memory", 1);
    return;
  }
  next_request(r);
}

static void next_request(el_run *r) {
  jobq_stage_t *st = r->hr.st;
  size_t n = json_array_size(r->reqs);
  if (r->next == n) {
    const char *wd = jobq_stage_workdir(st);
    if (wd == NULL) {
      jobq__stage_failf(st, 1, "%s", jobq_last_error());
      run_free(r);
      return;
    }
    snprintf(r->path, sizeof r->path, "%s/audio.%s", wd, r->e->mp3 ? "mp3" : "wav");
    jobq_stage_progress(st, 92, r->e->mp3 ? "Encoding MP3..." : "Writing audio...");
    r->work.data = r;
    if (uv_queue_work(jobq_stage_loop(st), &r->work, work_write, after_write) != 0) {
      jobq_stage_fail(st, "cannot queue work on the loop's thread pool", 1);
      run_free(r);
    }
    return;
  }
  json_t *q = json_array_get(r->reqs, r->next++);
  char step[96];
  snprintf(step, sizeof step, "Generating audio for segment %zu of %zu...", r->next, n);
  jobq_stage_progress(st, (int)((r->next - 1) * 90 / n), step);
  free(r->body);
  r->body = json_dumps(json_object_get(q, "body"), JSON_COMPACT);
  if (r->body == NULL) {
    jobq_stage_fail(st, "out of memory", 1);
    run_free(r);
    return;
  }
  char url[1600];
  snprintf(url, sizeof url, "%s%s", r->e->http.base_url, json_string_value(json_object_get(q, "path")));
  jobq__http_opts o = {0};
  jobq__httpcfg_opts(&r->e->http, &o);
  o.method = "POST";
  o.url = url;
  o.headers = r->headers;
  o.n_headers = 2;
  o.body = r->body;
  o.body_len = strlen(r->body);
  o.secrets = r->secrets;
  o.n_secrets = 1;
  if (jobq__httpreq_start(&r->hr, st, &o, on_audio, r) != 0) run_free(r);
}

static void el_run_stage(jobq_stage_t *st, void *ud) {
  el *e = ud;
  json_t *in = jobq__stage_input_object(st);
  if (in == NULL) return;
  const json_t *d = json_object_get(in, "dialogue");
  if (!json_is_array(d) || json_array_size(d) == 0) {
    json_decref(in);
    jobq__stage_failf(st, 0, "the input has no \"dialogue\" list to speak");
    return;
  }
  char why[200];
  json_t *reqs = plan(e, d, why, sizeof why);
  if (reqs == NULL) {
    json_decref(in);
    jobq__stage_failf(st, 0, "elevenlabs: %s", why);
    return;
  }
  el_run *r = calloc(1, sizeof *r);
  if (r == NULL) {
    json_decref(in);
    json_decref(reqs);
    jobq_stage_fail(st, "out of memory", 1);
    return;
  }
  r->e = e;
  r->in = in;
  r->reqs = reqs;
  r->hr.st = st;
  r->pcm.rate = (int)e->rate;
  snprintf(r->auth, sizeof r->auth, "xi-api-key: %s", e->http.api_key);
  r->headers[0] = r->auth;
  r->headers[1] = "Content-Type: application/json";
  r->secrets[0] = e->http.api_key;
  next_request(r);
}

const jobq__provider jobq__tts_elevenlabs = {
  "tts", "elevenlabs", JOBQ_STAGE_ON_LOOP, el_configure, el_free, el_run_stage,
};
