/* jobq-server's routing: each file contributes a table of (method,
 * pattern, authentication, function); a request takes the first route whose
 * pattern and method match. A path that some pattern matches with another
 * method is answered 405 with Allow, any other path 404. */
#include "server.h"

#include <string.h>

static const srv_route *const tables[] = {srv_routes_jobs, srv_routes_stream,
                                          srv_routes_podcast, srv_routes_dashboard,
                                          srv_routes_openapi};

/* 1 if path matches pattern; the ":" segments' values go to param. */
static int match(const char *pattern, const char *path, size_t plen, h2o_iovec_t param[2]) {
  const char *p = pattern, *q = path, *end = path + plen;
  int n = 0;
  while (*p && q < end) {
    if (*p == ':') {
      const char *seg = q;
      while (q < end && *q != '/') q++;
      if (q == seg || n == 2) return 0;
      param[n++] = h2o_iovec_init(seg, (size_t)(q - seg));
      while (*p && *p != '/') p++;
    } else if (*p++ != *q++) {
      return 0;
    }
  }
  return *p == '\0' && q == end;
}

int srv_route_find(const char *method, size_t mlen, const char *path, size_t plen,
                   const srv_route **out, h2o_iovec_t param[2], char *allow, size_t allow_cap) {
  allow[0] = '\0';
  size_t used = 0;
  int path_found = 0;
  /* HEAD is GET without a body (H2O drops the body). */
  int head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
    for (const srv_route *r = tables[t]; r->method; r++) {
      h2o_iovec_t pv[2] = {{NULL, 0}, {NULL, 0}};
      if (!match(r->pattern, path, plen, pv)) continue;
      path_found = 1;
      size_t rl = strlen(r->method);
      if ((rl == mlen && memcmp(r->method, method, mlen) == 0) ||
          (head && strcmp(r->method, "GET") == 0)) {
        *out = r;
        param[0] = pv[0];
        param[1] = pv[1];
        return 0;
      }
      if (strstr(allow, r->method) == NULL && used + rl + 3 < allow_cap) {
        if (used) {
          memcpy(allow + used, ", ", 2);
          used += 2;
        }
        memcpy(allow + used, r->method, rl + 1);
        used += rl;
      }
    }
  }
  return path_found ? 405 : 404;
}
