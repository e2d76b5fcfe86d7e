/* Speech through libespeak-ng, in its synchronous mode: the samples come back
 * through a callback on the calling thread.
 *
 * espeak-ng keeps all of its state in globals (the voice, the parameters,
 * the sound buffer, the callback), so one process-wide mutex covers its
 * initialisation and every synthesis, and each call sets voice and rate
 * afresh instead of trusting what the previous call left. The samples are
 * routed through espeak's user_data to the calling synthesis's buffer. */
#define _GNU_SOURCE /* newlocale, uselocale */
#include "stages/audio.h"
#include "util/mem.h"
#include "util/err.h"

#ifdef JOBQ_HAVE_ESPEAK

#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Names are short: espeak-ng copies "voice+variant" into a 60-byte buffer
 * and "!v/variant" into a 40-byte one without checking. */
#define NAME_MAX_LEN 31

typedef struct lang_entry {
  char lang[NAME_MAX_LEN + 1]; /* e.g. "en-gb" */
  char id[NAME_MAX_LEN + 1];   /* the voice file, e.g. "gmw/en" */
  int prio;                    /* lower is the better match for lang */
} lang_entry;

typedef struct variant_entry {
  char name[NAME_MAX_LEN + 1]; /* e.g. "m3", "Alex" */
} variant_entry;

/* Everything below is guarded by mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int core_ready;   /* espeak_ng_Initialize succeeded */
static int index_ready;  /* langs and variants are loaded */
static int output_ready; /* espeak_ng_InitializeOutput succeeded */
static int sample_rate;
static locale_t utf8_locale;
static lang_entry *langs;
static size_t n_langs;
static variant_entry *variants;
static size_t n_variants;

/* ---- voice names ------------------------------------------------------------ */

typedef struct voice_name {
  char base[NAME_MAX_LEN + 1];
  char variant[NAME_MAX_LEN + 1]; /* "" for none */
} voice_name;

static int name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

/* "base" or "base+variant", each 1..31 of [A-Za-z0-9_-]; a variant of one or
 * two digits is espeak's numbering (1-9: m1-m9, 11-19: f1-f9). No '/' and
 * no '.', so a name can never reach outside espeak's data directory. */
static int parse_voice_name(const char *s, voice_name *v) {
  const char *plus = strchr(s, '+');
  size_t nb = plus ? (size_t)(plus - s) : strlen(s);
  size_t nv = plus ? strlen(plus + 1) : 0;
  if (nb == 0 || nb > NAME_MAX_LEN || (plus && (nv == 0 || nv > NAME_MAX_LEN)))
    return jobq__err(JOBQ_ECONFIG,
                     "espeak-ng voice names are 'name' or 'name+variant', each of 1 to %d characters",
                     NAME_MAX_LEN);
  for (size_t i = 0; i < nb; i++)
    if (!name_char(s[i])) goto bad_char;
  for (size_t i = 0; i < nv; i++)
    if (!name_char(plus[1 + i])) goto bad_char;
  memcpy(v->base, s, nb);
  v->base[nb] = '\0';
  v->variant[0] = '\0';
  if (plus == NULL) return 0;
  if (nv <= 2 && plus[1] >= '0' && plus[1] <= '9' && (nv == 1 || (plus[2] >= '0' && plus[2] <= '9'))) {
    int k = atoi(plus + 1);
    if (k >= 1 && k <= 9) snprintf(v->variant, sizeof v->variant, "m%d", k);
    else if (k >= 11 && k <= 19) snprintf(v->variant, sizeof v->variant, "f%d", k - 10);
    else return jobq__err(JOBQ_ECONFIG, "espeak-ng has no voice variant number %d", k);
  } else {
    memcpy(v->variant, plus + 1, nv + 1);
  }
  return 0;
bad_char:
  return jobq__err(JOBQ_ECONFIG, "espeak-ng voice names are letters, digits, '-' and '_', "
                                 "with an optional '+variant'");
}

static void copy_name(char *dst, const char *src) {
  size_t n = strlen(src);
  memcpy(dst, src, n + 1); /* callers checked n <= NAME_MAX_LEN */
}

/* Reads espeak-ng's voice list once: which voice file speaks which language
 * (espeak_ng_SetVoiceByName only knows file names, and "en-gb" is the file
 * "gmw/en"), and which variants exist (espeak silently ignores an unknown
 * one, which would hide a typo in a configuration). */
static int load_voice_index(void) {
  const espeak_VOICE **v = espeak_ListVoices(NULL);
  size_t cap = 0;
  for (const espeak_VOICE **p = v; *p; p++)
    for (const char *l = (*p)->languages; l && *l; l += strlen(l + 1) + 2) cap++;
  langs = calloc(cap ? cap : 1, sizeof *langs);
  if (langs == NULL) return jobq__err(JOBQ_ENOMEM, "espeak-ng: out of memory");
  for (const espeak_VOICE **p = v; *p; p++) {
    const char *id = (*p)->identifier;
    if (id == NULL || strlen(id) > NAME_MAX_LEN) continue;
    /* languages: a priority byte and a NUL-terminated name, repeated; a
     * zero priority byte ends the list. */
    for (const char *l = (*p)->languages; l && *l; l += strlen(l + 1) + 2) {
      if (strlen(l + 1) > NAME_MAX_LEN) continue;
      lang_entry *e = &langs[n_langs++];
      copy_name(e->lang, l + 1);
      copy_name(e->id, id);
      e->prio = (unsigned char)*l;
    }
  }
  espeak_VOICE sel;
  memset(&sel, 0, sizeof sel);
  sel.languages = "variant";
  v = espeak_ListVoices(&sel);
  cap = 0;
  for (const espeak_VOICE **p = v; *p; p++) cap++;
  variants = calloc(cap ? cap : 1, sizeof *variants);
  if (variants == NULL) {
    free(langs);
    langs = NULL;
    n_langs = 0;
    return jobq__err(JOBQ_ENOMEM, "espeak-ng: out of memory");
  }
  for (const espeak_VOICE **p = v; *p; p++) {
    const char *id = (*p)->identifier, *slash = id ? strrchr(id, '/') : NULL;
    const char *name = slash ? slash + 1 : id;
    if (name == NULL || strlen(name) > NAME_MAX_LEN) continue;
    copy_name(variants[n_variants++].name, name);
  }
  return 0;
}

/* The voice file for base: the voice that lists it as a language with the
 * best priority, else the voice whose file is named so. NULL if none. */
static const char *find_voice(const char *base) {
  const lang_entry *best = NULL;
  for (size_t i = 0; i < n_langs; i++)
    if (strcasecmp(langs[i].lang, base) == 0 && (best == NULL || langs[i].prio < best->prio))
      best = &langs[i];
  if (best) return best->id;
  for (size_t i = 0; i < n_langs; i++) {
    const char *slash = strrchr(langs[i].id, '/');
    if (strcasecmp(slash ? slash + 1 : langs[i].id, base) == 0) return langs[i].id;
  }
  return NULL;
}

static int find_variant(const char *name) {
  for (size_t i = 0; i < n_variants; i++)
    if (strcmp(variants[i].name, name) == 0) return 1;
  return 0;
}

/* ---- initialisation ------------------------------------------------------------ */

static int status_err(int code, const char *what, espeak_ng_STATUS st) {
  char msg[200];
  espeak_ng_GetStatusCodeMessage(st, msg, sizeof msg);
  return jobq__err(code, "espeak-ng %s: %s", what, msg);
}

/* espeak-ng classifies characters with iswalpha() and friends, which need a
 * UTF-8 LC_CTYPE. It sets one itself, for the whole process, with
 * setlocale(); we undo that (the application's locale is not ours to
 * change) and give the thread that runs espeak a UTF-8 locale of its own
 * with uselocale() instead. */
static locale_t get_utf8_locale(void) {
  if (utf8_locale == (locale_t)0) {
    static const char *const names[] = {"C.UTF-8", "C.utf8", "en_US.UTF-8"};
    for (size_t i = 0; i < 3 && utf8_locale == (locale_t)0; i++)
      utf8_locale = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
  }
  return utf8_locale;
}

/* Called with mu held. A failure leaves the next call to try again. */
static int init_locked(void) {
  if (output_ready) return 0;
  if (!core_ready) {
    const char *cur = setlocale(LC_CTYPE, NULL);
    char *saved = jobq__strdup(cur ? cur : "C");
    if (saved == NULL) return jobq__err(JOBQ_ENOMEM, "espeak-ng: out of memory");
    /* NULL: espeak's own search ($ESPEAK_DATA_PATH, then its install path). */
    espeak_ng_InitializePath(NULL);
    espeak_ng_ERROR_CONTEXT ctx = NULL;
    espeak_ng_STATUS st = espeak_ng_Initialize(&ctx);
    setlocale(LC_CTYPE, saved);
    free(saved);
    /* The context names the file that failed, but can only be printed to a
     * FILE; the status sentence is enough to act on. */
    espeak_ng_ClearErrorContext(&ctx);
    if (st != ENS_OK)
      return status_err(JOBQ_EIO, "cannot load its data (is espeak-ng-data installed?)", st);
    core_ready = 1;
  }
  if (!index_ready) {
    int rc = load_voice_index();
    if (rc < 0) return rc;
    index_ready = 1;
  }
  /* 200 ms of sound per callback. (espeak-ng 1.51 also probes for a
   * PulseAudio server here, though this mode never plays anything.) */
  espeak_ng_STATUS st = espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 200, NULL);
  if (st != ENS_OK) return status_err(JOBQ_ENOMEM, "cannot set up its output", st);
  sample_rate = espeak_ng_GetSampleRate();
  if (sample_rate <= 0) return jobq__err(JOBQ_EIO, "espeak-ng reports sample rate %d", sample_rate);
  output_ready = 1;
  return 0;
}

/* ---- synthesis ---------------------------------------------------------------- */

typedef struct collect {
  jobq__pcm pcm;
  int rc;
} collect;

/* espeak's callback: wav is NULL at the end; returning 1 stops synthesis. */
static int on_samples(short *wav, int n, espeak_EVENT *events) {
  collect *c = events ? events[0].user_data : NULL;
  if (c == NULL) return 1;
  if (wav == NULL || n <= 0) return 0;
  c->rc = jobq__pcm_append(&c->pcm, wav, (size_t)n);
  return c->rc < 0;
}

/* espeak-ng reads control character 1 as the start of an embedded command
 * (speed, volume, pitch...) even without SSML, and the setting outlives the
 * call: "\0011A" would mute every later synthesis. Text is data, so control
 * characters become spaces. */
static char *clean_text(const char *text) {
  size_t n = strlen(text);
  char *t = malloc(n + 1);
  if (t == NULL) return NULL;
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = (unsigned char)text[i];
    t[i] = c != 0 && c < 32 && c != '\n' && c != '\t' && c != '\r' ? ' ' : (char)c;
  }
  return t;
}

/* Called with mu held and the thread in a UTF-8 locale. */
static int synth_locked(const char *text, const voice_name *vn, int wpm, collect *c) {
  int rc = init_locked();
  if (rc < 0) return rc;
  const char *id = find_voice(vn->base);
  if (id == NULL) return jobq__err(JOBQ_ECONFIG, "espeak-ng has no voice '%s'", vn->base);
  if (vn->variant[0] && !find_variant(vn->variant))
    return jobq__err(JOBQ_ECONFIG, "espeak-ng has no voice variant '%s'", vn->variant);
  char spec[2 * NAME_MAX_LEN + 2];
  snprintf(spec, sizeof spec, "%s%s%s", id, vn->variant[0] ? "+" : "", vn->variant);
  espeak_ng_STATUS st = espeak_ng_SetVoiceByName(spec);
  if (st == ENS_VOICE_NOT_FOUND) return jobq__err(JOBQ_ECONFIG, "espeak-ng has no voice '%s'", spec);
  if (st != ENS_OK) return status_err(JOBQ_EIO, "cannot load a voice", st);
  st = espeak_ng_SetParameter(espeakRATE, wpm, 0);
  if (st != ENS_OK) return status_err(JOBQ_EIO, "cannot set the rate", st);

  c->pcm.rate = sample_rate;
  espeak_SetSynthCallback(on_samples);
  st = espeak_ng_Synthesize(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, c);
  if (st == ENS_OK) st = espeak_ng_Synchronize();
  if (c->rc < 0) return c->rc;
  if (st != ENS_OK) return status_err(JOBQ_EIO, "failed to synthesise", st);
  /* espeak-ng ends a clip with a run of zero samples whose length depends on
   * what the previous synthesis left in its state (7 ms to 60 ms here). Cut,
   * a clip depends on its own text only; callers add pauses explicitly. */
  while (c->pcm.n > 0 && c->pcm.samples[c->pcm.n - 1] == 0) c->pcm.n--;
  return 0;
}

int jobq__espeak_synth(const char *text, const char *voice, int rate_wpm, jobq__pcm *out) {
  if (text == NULL || out == NULL) return jobq__err(JOBQ_EINVAL, "jobq__espeak_synth: NULL argument");
  if (text[0] == '\0') return jobq__err(JOBQ_EINVAL, "jobq__espeak_synth: no text");
  if (out->rate < 0) return jobq__err(JOBQ_EINVAL, "jobq__espeak_synth: sample rate %d", out->rate);
  if (rate_wpm == 0) rate_wpm = espeakRATE_NORMAL;
  if (rate_wpm < espeakRATE_MINIMUM || rate_wpm > espeakRATE_MAXIMUM)
    return jobq__err(JOBQ_EINVAL, "jobq__espeak_synth: rate %d words per minute is outside %d..%d",
                     rate_wpm, espeakRATE_MINIMUM, espeakRATE_MAXIMUM);
  voice_name vn;
  int rc = parse_voice_name(voice ? voice : "en", &vn);
  if (rc < 0) return rc;
  char *t = clean_text(text);
  if (t == NULL) return jobq__err(JOBQ_ENOMEM, "jobq__espeak_synth: out of memory");

  collect c = {.rc = 0};
  pthread_mutex_lock(&mu);
  locale_t loc = get_utf8_locale();
  locale_t prev = loc ? uselocale(loc) : (locale_t)0;
  rc = synth_locked(t, &vn, rate_wpm, &c);
  if (loc) uselocale(prev);
  pthread_mutex_unlock(&mu);
  free(t);

  /* Appended only now, outside the lock (it may resample): out is unchanged
   * if anything failed. */
  if (rc == 0) rc = jobq__pcm_append_pcm(out, &c.pcm);
  jobq__pcm_free(&c.pcm);
  return rc;
}

int jobq__espeak_available(void) { return 1; }

#else /* built without espeak-ng (JOBQ_WITH_ESPEAK=OFF) */

int jobq__espeak_available(void) { return 0; }

int jobq__espeak_synth(const char *text, const char *voice, int rate_wpm, jobq__pcm *out) {
  (void)text, (void)voice, (void)rate_wpm, (void)out;
  return jobq__err(JOBQ_ENOTSUP, "libjobq-stages was built without espeak-ng (JOBQ_WITH_ESPEAK=OFF)");
}

#endif
