/* jobq-server's OpenAPI 3.1 document: examples/server/assets/openapi.json,
 * compiled into the program, served as it is at GET /openapi.json without a
 * key (a client generator or a browser reads it before it has one), with an
 * ETag. tests/server/openapi_check.py validates every answer the server
 * tests receive against it, so that the document cannot drift from the
 * code. */
#include "server.h"

static void get_openapi(srv_call *c) { srv_reply_asset(c, "openapi.json"); }

const srv_route srv_routes_openapi[] = {
    {"GET", "/openapi.json", SRV_AUTH_NONE, get_openapi},
    {NULL, NULL, 0, NULL},
};
