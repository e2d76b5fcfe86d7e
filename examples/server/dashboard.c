/* jobq-server's dashboard: GET / is the operator's page, GET
 * /dashboard/<file> its script, style sheet and icon, all compiled in from
 * examples/server/assets (embed.cmake). The files themselves need no key:
 * they hold no data. The page asks the API for everything it shows, with
 * the key the operator types (or brings in the URL fragment), so the data
 * stays behind the same authentication as every other client's.
 *
 * Every answer carries headers that keep the page to itself: a Content
 * Security Policy that runs only the server's own script (nothing inline,
 * nothing from elsewhere: text from jobs cannot become code even if it
 * reached the DOM as markup), no MIME sniffing, no Referer (a key in the
 * URL fragment never leaves, but the page's own URL need not either), and
 * no framing. */
#include "server.h"

#include <string.h>

static void add(srv_call *c, const char *name, const char *value) {
  h2o_add_header_by_str(&c->req->pool, &c->req->res.headers, name, strlen(name), 0, NULL,
                        value, strlen(value));
}

static void security_headers(srv_call *c) {
  if (c->req == NULL) return;
  add(c, "content-security-policy",
      "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
      "frame-ancestors 'none'");
  add(c, "x-content-type-options", "nosniff");
  add(c, "referrer-policy", "no-referrer");
  add(c, "x-frame-options", "DENY");
}

static void get_page(srv_call *c) {
  security_headers(c);
  srv_reply_asset(c, "index.html");
}

/* Only the page's own kinds of file: /dashboard/ is not a way to reach
 * every asset (the OpenAPI document has its own route). */
static int servable(const char *name) {
  static const char *const ext[] = {".html", ".js", ".css", ".svg", ".png"};
  size_t n = strlen(name);
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    size_t e = strlen(ext[i]);
    if (n > e && strcmp(name + n - e, ext[i]) == 0) return 1;
  }
  return 0;
}

static void get_file(srv_call *c) {
  char name[128];
  if (srv_param(c, 0, name, sizeof name) != 0 || !servable(name)) {
    srv_reply_error(c, 404, "not_found", "no such file in the dashboard");
    return;
  }
  security_headers(c);
  srv_reply_asset(c, name);
}

const srv_route srv_routes_dashboard[] = {
    {"GET", "/", SRV_AUTH_NONE, get_page},
    {"GET", "/dashboard/:file", SRV_AUTH_NONE, get_file},
    {NULL, NULL, 0, NULL},
};
