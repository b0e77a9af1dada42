/*
 * http_h2o.c - the h2o adapter of the HTTP middleware (see funcmon_h2o.h).
 *
 * h2o calls a path's handlers in order until one takes the request; ours comes first,
 * begins the profile and declines. h2o has no hook for "response finished", but every
 * request's memory pool is cleared once the request is disposed of, after the last byte is
 * sent (or the connection dropped), on the loop's thread: a small shared allocation on the
 * pool with a dispose callback ends the profile there, with the status that was sent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "funcmon_h2o.h"

struct profiling_handler {
    h2o_handler_t super; /* first, as h2o expects */
    struct funcmon_http *http;
};

/* Lives in the request's pool until h2o disposes of the request. */
struct request_profile {
    struct funcmon_http_call call;
    h2o_req_t *req;
};

static void
on_request_disposed(void *p)
{
    struct request_profile *profile = p;
    /* The pool is cleared before the request is reused, so res.status is still the answer. */
    funcmon_http_end(&profile->call, profile->req->res.status);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct profiling_handler *handler = (struct profiling_handler *)self;
    struct funcmon_http_call call;

    /* A reprocessed or delegated request is the same request: profiled once. */
    if (req->num_reprocessed != 0 || req->num_delegated != 0)
        return -1;
    /* The raw path: path_normalized has %2F decoded and dot segments resolved. */
    funcmon_http_begin(handler->http, &call, req->input.method.base, req->input.method.len, req->input.path.base,
                       req->input.path.len);
    if (call.active) {
        struct request_profile *profile = h2o_mem_alloc_shared(&req->pool, sizeof(*profile), on_request_disposed);
        profile->call = call;
        profile->req = req;
    }
    return -1;
}

FUNCMON_API int
funcmon_h2o_register(h2o_pathconf_t *pathconf, struct funcmon_http *http)
{
    if (pathconf == NULL || http == NULL) {
        errno = EINVAL;
        return -1;
    }
    /* h2o_create_handler appends (and aborts on want of memory, like every h2o allocation);
     * move ours to the front so it sees every request of the path. */
    struct profiling_handler *handler = (struct profiling_handler *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->http = http;
    h2o_handler_t **entries = pathconf->handlers.entries;
    size_t n = pathconf->handlers.size;
    memmove(entries + 1, entries, (n - 1) * sizeof(*entries));
    entries[0] = &handler->super;
    return 0;
}
