/* placeholder: replaced by the OpenAPI document's route */
#include "server.h"
static void get_openapi(srv_call *c) { srv_reply_asset(c, "openapi.json"); }
const srv_route srv_routes_openapi[] = {{"GET", "/openapi.json", SRV_AUTH_NONE, get_openapi},
                                        {NULL, NULL, 0, NULL}};
