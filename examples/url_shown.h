/* A storage URL as the example programs print it: a password in it
 * ("postgres://user:secret@host/db", "...?password=secret") shown as ***,
 * so that a log line or a terminal never carries it. */
#ifndef JOBQ_EXAMPLES_URL_SHOWN_H
#define JOBQ_EXAMPLES_URL_SHOWN_H

#include <stdio.h>
#include <string.h>

static inline const char *url_shown(const char *url, char *buf, size_t cap) {
  size_t o = 0;
  const char *scheme_end = strstr(url, "://");
  const char *auth = scheme_end ? scheme_end + 3 : NULL;
  const char *at = auth ? strchr(auth, '@') : NULL;
  const char *slash = auth ? strchr(auth, '/') : NULL;
  if (at && slash && slash < at) at = NULL; /* an '@' in the path, not user:password@ */
  const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
  for (const char *p = url; *p && o + 4 < cap;) {
    if (colon && p == colon + 1) { /* user:***@ */
      o += (size_t)snprintf(buf + o, cap - o, "***");
      p = at;
      continue;
    }
    if ((p == url || p[-1] == '?' || p[-1] == '&') && strncmp(p, "password=", 9) == 0) {
      o += (size_t)snprintf(buf + o, cap - o, "password=***");
      p += strcspn(p, "&");
      continue;
    }
    buf[o++] = *p++;
  }
  buf[o < cap ? o : cap - 1] = '\0';
  return buf;
}

#endif
