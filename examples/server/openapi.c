/* placeholder: replaced by the OpenAPI document */
#include "server.h"
const srv_route srv_routes_openapi[] = {{NULL, NULL, 0, NULL}};
