/*
 * http_mhd.c - the libmicrohttpd adapter of the HTTP middleware (see funcmon_mhd.h).
 *
 * libmicrohttpd gives each request one pointer of state (`*req_cls`) that lives from the
 * first access-handler call to the completed notification. The adapter takes that pointer
 * for a small record of its own, which holds the request's profile, the status queued, and
 * the application's own pointer, handed to the application's callbacks in its place. The
 * status comes from libmicrohttpd itself after each handler call, so applications need not
 * change how they answer; funcmon_mhd_queue_response notes it as well, through the request
 * the current thread is handling.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funcmon_mhd.h"

struct funcmon_mhd {
    struct funcmon_http *http;
    MHD_AccessHandlerCallback handler;
    void *handler_cls;
    MHD_RequestCompletedCallback completed;
    void *completed_cls;
};

/* The adapter's per-request state, in libmicrohttpd's per-request pointer. */
struct mhd_request {
    struct funcmon_http_call call;
    void *app_req_cls; /* the application's own per-request pointer */
    struct MHD_Connection *connection;
    unsigned int status; /* queued so far; 0: none */
};

/* The request whose access handler runs on this thread, for funcmon_mhd_queue_response. */
static __thread struct mhd_request *current_request;

FUNCMON_API struct funcmon_mhd *
funcmon_mhd_new(struct funcmon_http *http, MHD_AccessHandlerCallback handler, void *handler_cls,
                MHD_RequestCompletedCallback completed, void *completed_cls)
{
    struct funcmon_mhd *mw;

    if (handler == NULL) {
        errno = EINVAL;
        return NULL;
    }
    if ((mw = calloc(1, sizeof(*mw))) == NULL)
        return NULL;
    mw->http = http;
    mw->handler = handler;
    mw->handler_cls = handler_cls;
    mw->completed = completed;
    mw->completed_cls = completed_cls;
    return mw;
}

FUNCMON_API void
funcmon_mhd_free(struct funcmon_mhd *mw)
{
    free(mw);
}

/* The status libmicrohttpd has queued for the connection's request, or 0. */
static unsigned int
queued_status(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_HTTP_STATUS);
    return info != NULL ? info->http_status : 0;
}

FUNCMON_API enum MHD_Result
funcmon_mhd_access_handler(void *cls, struct MHD_Connection *connection, const char *url, const char *method, const char *version,
                           const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    struct funcmon_mhd *mw = cls;
    struct mhd_request *rq = *req_cls;

    if (rq == NULL) {
        if ((rq = calloc(1, sizeof(*rq))) == NULL) {
            /* Without its record the request cannot be told apart from the application's
             * pointer later: refuse it, as libmicrohttpd does when it runs out of memory. */
            fprintf(stderr, "funcmon: out of memory for a request's profile; request refused\n");
            return MHD_NO;
        }
        rq->connection = connection;
        funcmon_http_begin(mw->http, &rq->call, method, method != NULL ? strlen(method) : 0, url, url != NULL ? strlen(url) : 0);
        *req_cls = rq;
    }
    struct mhd_request *outer = current_request;
    current_request = rq;
    enum MHD_Result rc =
        mw->handler(mw->handler_cls, connection, url, method, version, upload_data, upload_data_size, &rq->app_req_cls);
    current_request = outer;
    unsigned int status = queued_status(connection);
    if (status != 0)
        rq->status = status;
    return rc;
}

FUNCMON_API void
funcmon_mhd_request_completed(void *cls, struct MHD_Connection *connection, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    struct funcmon_mhd *mw = cls;
    struct mhd_request *rq = *req_cls;

    if (rq == NULL) {
        /* The access handler refused the request before the application saw it. */
        if (mw->completed != NULL)
            mw->completed(mw->completed_cls, connection, req_cls, toe);
        return;
    }
    if (mw->completed != NULL)
        mw->completed(mw->completed_cls, connection, &rq->app_req_cls, toe);
    unsigned int status = rq->status != 0 ? rq->status : queued_status(connection);
    funcmon_http_end(&rq->call, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? (int)status : 0);
    free(rq);
    *req_cls = NULL;
}

FUNCMON_API enum MHD_Result
funcmon_mhd_queue_response(struct MHD_Connection *connection, unsigned int status, struct MHD_Response *response)
{
    enum MHD_Result rc = MHD_queue_response(connection, status, response);
    struct mhd_request *rq = current_request;
    if (rc == MHD_YES && rq != NULL && rq->connection == connection)
        rq->status = status;
    return rc;
}
