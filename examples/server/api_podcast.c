/* placeholder: replaced by the podcast service's endpoints */
#include "server.h"
int srv_podcast_setup(srv_t *s) { (void)s; return 0; }
const srv_route srv_routes_podcast[] = {{NULL, NULL, 0, NULL}};
