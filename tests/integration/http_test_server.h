/*
 * http_test_server.h - what the middleware's test servers (h2o, libmicrohttpd) share: the
 * middleware built the same way from their command line, so the test script can expect the
 * same names from both.
 */
#ifndef FUNCMON_HTTP_TEST_SERVER_H
#define FUNCMON_HTTP_TEST_SERVER_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funcmon_http.h"

/* Starts funcmon (settings from the environment) and returns a middleware with the routes
 * and max_unmatched (a number, from argv) given; NULL after printing why. */
static inline struct funcmon_http *
test_server_middleware(const char *max_unmatched, const char *const *routes)
{
    if (funcmon_init(NULL) != 0 || !funcmon_active()) {
        fprintf(stderr, "funcmon is not active\n");
        return NULL;
    }
    struct funcmon_http_options opts = {.max_unmatched = (unsigned)strtoul(max_unmatched, NULL, 10)};
    struct funcmon_http *http = funcmon_http_new(&opts);
    if (http == NULL) {
        perror("funcmon_http_new");
        return NULL;
    }
    for (int i = 0; routes[i] != NULL; i++)
        if (funcmon_http_route(http, routes[i]) != 0) {
            fprintf(stderr, "route %s: %s\n", routes[i], strerror(errno));
            funcmon_http_free(http);
            return NULL;
        }
    return http;
}

#endif
