/*
 * funcmon_http.h - a profile per HTTP request, for any C HTTP server.
 *
 * Every request becomes one funcmon record in package "http_handler", named after the route
 * it matched, `<METHOD>_<route template>` (GET_/v1/users/:id), so that requests for
 * /v1/users/1 and /v1/users/2 add up under one name. Its duration runs from
 * funcmon_http_begin to funcmon_http_end, which may be called from a completion callback
 * long after other requests began and ended on the same thread: request profiles are spans
 * (funcmon_record_span), not nested calls. A status >= 500 makes the request an error; a
 * 4xx status is flagged FUNCMON_RECORD_CLIENT_ERROR and counted apart, not as an error.
 *
 * Names stay bounded whatever clients send: a path that matches no route is named by its
 * raw path only until max_unmatched distinct such names exist, then `<METHOD>_<unmatched>`;
 * so are paths too long for a name or holding bytes outside printable ASCII; a method that
 * is not an HTTP token, or one beyond the first 16 non-standard methods seen, is `OTHER`.
 * Paths matching a skip glob (FUNCMON_SKIP_PATHS, e.g. "/metrics;/debug/\x2a": a star spans
 * slashes) record nothing.
 *
 *     struct funcmon_http *http = funcmon_http_new(NULL);        // skip globs from the env
 *     funcmon_http_route(http, "/v1/users/:id");                 // before the first request
 *     funcmon_http_route(http, "/static/\x2a");                 // "\x2a" is "*"
 *     ...
 *     struct funcmon_http_call hc;                               // per request
 *     funcmon_http_begin(http, &hc, method, method_len, path, path_len);
 *     ...                                                        // the request runs
 *     funcmon_http_end(&hc, status);                             // when its answer is sent
 *
 * Adapters for h2o (funcmon_h2o.h) and libmicrohttpd (funcmon_mhd.h) do the begin and end.
 * Everything here is thread-safe: one struct funcmon_http serves all of a server's threads,
 * and a request may end on another thread than the one it began on.
 */
#ifndef FUNCMON_HTTP_H
#define FUNCMON_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "funcmon.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The package of every request profile. */
#define FUNCMON_HTTP_PACKAGE "http_handler"
/* Longest route template, in bytes (a name holds the method, '_' and the template). */
#define FUNCMON_HTTP_ROUTE_MAX 96
/* Largest max_unmatched. */
#define FUNCMON_HTTP_UNMATCHED_MAX 65536u

/* Route templates, skip globs and the names handed out; shared by a server's threads. */
struct funcmon_http;

struct funcmon_http_options {
    const char *skip_paths; /* ';'-separated fnmatch globs (flags 0, so '*' spans '/'); NULL:
                               FUNCMON_SKIP_PATHS from the environment, unset = none */
    unsigned max_unmatched; /* distinct raw-path names before they fold into <METHOD>_<unmatched>;
                               0: 100; at most FUNCMON_HTTP_UNMATCHED_MAX */
};

/* Creates a middleware; opts NULL takes every default. Returns NULL with errno EINVAL (bad
 * option) or ENOMEM. */
FUNCMON_API struct funcmon_http *funcmon_http_new(const struct funcmon_http_options *opts);

/* Frees it. No request may be between begin and end, nor any thread inside a call. */
FUNCMON_API void funcmon_http_free(struct funcmon_http *http);

/*
 * Adds a route template: '/'-separated segments, each a literal, a parameter ":name" that
 * matches one non-empty path segment, or, as the last segment only, "*" that matches the
 * rest of the path (one or more segments: "/static/\x2a" matches /static/ and /static/a/b,
 * not /static). Paths are matched as given to funcmon_http_begin, without the query string
 * and without percent-decoding.
 * When several routes match, the one whose first differing segment is more specific wins
 * (literal over parameter over "*"), whatever the order they were added in. Adding a
 * template twice is harmless. Call before the first request, from one thread at a time.
 * Returns 0, or -1 with errno EINVAL (not a template: no leading '/', a '*' not last, an
 * empty parameter name, bytes outside printable ASCII, '?' or '#', longer than
 * FUNCMON_HTTP_ROUTE_MAX), ENOMEM, or EBUSY once a request has begun.
 */
FUNCMON_API int funcmon_http_route(struct funcmon_http *http, const char *tmpl);

/* One request in flight; fill it with funcmon_http_begin. */
struct funcmon_http_call {
    uint64_t start;      /* funcmon_now() at begin */
    uint32_t site;       /* its name's site id */
    uint32_t generation; /* funcmon's generation at begin (init, shutdown and fork change it) */
    int active;          /* 0: nothing to record (skipped, profiling off, or ended) */
};

/*
 * Begins the profile of a request. method and path are the request's, as sent (not
 * necessarily NUL-terminated; the path may carry a query string, which is ignored). Leaves
 * hc->active 0 when the path is skipped or profiling is off. Never fails.
 */
FUNCMON_API void funcmon_http_begin(struct funcmon_http *http, struct funcmon_http_call *hc, const char *method, size_t method_len,
                                    const char *path, size_t path_len);

/*
 * Ends it with the HTTP status sent: >= 500 is an error (FUNCMON_RECORD_ERROR), 400..499 a
 * client error (FUNCMON_RECORD_CLIENT_ERROR, not an error); below 100 (0: no answer was
 * sent, the client went away or the server dropped the request) is an error and cancelled
 * (FUNCMON_RECORD_ERROR | FUNCMON_RECORD_CANCELLED). Any thread may end it, and ending it
 * twice, even from two threads at once, records it once. A request that began before a
 * funcmon_shutdown, funcmon_init or fork and ends after it is not recorded: its start is
 * in the clock of a segment that is gone.
 */
FUNCMON_API void funcmon_http_end(struct funcmon_http_call *hc, int status);

#ifdef __cplusplus
}
#endif

#endif
