/*
 * funcmon_h2o.h - a profile per request of an h2o server (h2o 2.2, evloop flavour).
 *
 * funcmon_h2o_register puts a handler in front of a path's handlers. For each request it
 * begins the request's profile (funcmon_http.h: named after the route the raw path matches)
 * and declines, so the request goes on to the path's own handlers unchanged. The profile
 * ends when h2o disposes of the request, after the response is sent or the client has gone,
 * with the status in req->res.status (0 when nothing was sent: recorded as an error and
 * cancelled). Its duration is from the start of handling, when h2o has the whole request,
 * to the end of the response, whatever the handlers do in between (answer at once, or
 * later from a timer or another event on the loop).
 *
 * Usage, for each path whose requests are to be profiled (the handler may be registered
 * before or after the path's own handlers; it always runs first):
 *
 *     #define H2O_USE_LIBUV 0                // or link funcmon::h2o, which defines it
 *     #include <h2o.h>
 *     #include "funcmon_h2o.h"
 *
 *     struct funcmon_http *http = funcmon_http_new(NULL);
 *     funcmon_http_route(http, "/v1/users/:id");
 *     h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
 *     my_handler_register(path);
 *     funcmon_h2o_register(path, http);
 *
 * The struct funcmon_http must outlive the h2o configuration. Each h2o thread records on
 * its own ring, so one struct funcmon_http serves every thread of the server. Requests that
 * h2o reprocesses or delegates internally are profiled once, under their first path.
 */
#ifndef FUNCMON_H2O_H
#define FUNCMON_H2O_H

#include <h2o.h>

#include "funcmon_http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Puts the profiling handler first among pathconf's handlers. Returns 0, or -1 with errno
 * EINVAL when pathconf or http is NULL. */
FUNCMON_API int funcmon_h2o_register(h2o_pathconf_t *pathconf, struct funcmon_http *http);

#ifdef __cplusplus
}
#endif

#endif
