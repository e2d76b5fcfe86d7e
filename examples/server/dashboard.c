/* placeholder: replaced by the dashboard */
#include "server.h"
const srv_route srv_routes_dashboard[] = {{NULL, NULL, 0, NULL}};
