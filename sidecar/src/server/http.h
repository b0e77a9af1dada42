/*
 * http.h - funcmond's HTTP face: the REST API of DESIGN §5 and /metrics, over h2o.
 */
#ifndef FUNCMOND_HTTP_H
#define FUNCMOND_HTTP_H

#include <stddef.h>

#include "config.h"
#include "request.h"
#include "view.h"

struct funcmond_http;

/*
 * Binds cfg's HTTP.LISTEN (errors are reported here, before the loop starts) and starts the
 * server thread. Answers come from the views the drain thread publishes and from /proc;
 * the server never touches the drain thread's state; trims go through `requests`. Returns 0 and *out, or -errno with a
 * message in err.
 */
int funcmond_http_start(const struct funcmond_config *cfg, struct funcmond_views *views, struct funcmond_requests *requests,
                        struct funcmond_http **out, char *err, size_t errlen);
/* Stops the server thread and frees it. */
void funcmond_http_stop(struct funcmond_http *h);

#endif
