/*
 * funcmon_mhd.h - a profile per request of a libmicrohttpd server.
 *
 * The adapter wraps the application's access handler and its request-completed callback.
 * A request's profile (funcmon_http.h: named after the route its url matched) begins at the
 * first call of the access handler for it and ends at libmicrohttpd's request-completed
 * notification, with the status of the response the application queued. A request that
 * ends without a complete response (the handler returned MHD_NO, the client went away, a
 * timeout, shutdown) is recorded as an error and cancelled.
 *
 * Usage: hand libmicrohttpd the adapter's two callbacks, with the wrapper as their closure,
 * in place of the application's own; the application's callbacks are called as before, with
 * their own closures and their own per-request pointer (`*req_cls`, NULL on the first call
 * of each request, kept across calls, passed to the completed callback):
 *
 *     struct funcmon_http *http = funcmon_http_new(NULL);
 *     funcmon_http_route(http, "/v1/users/:id");
 *     struct funcmon_mhd *mw = funcmon_mhd_new(http, app_handler, app_cls, app_completed, NULL);
 *     struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, port, NULL, NULL,
 *                                             funcmon_mhd_access_handler, mw,
 *                                             MHD_OPTION_NOTIFY_COMPLETED, funcmon_mhd_request_completed, mw,
 *                                             MHD_OPTION_THREAD_POOL_SIZE, 4u,   // optional
 *                                             MHD_OPTION_END);
 *     ...
 *     MHD_stop_daemon(d);
 *     funcmon_mhd_free(mw);
 *     funcmon_http_free(http);
 *
 * The status: the adapter asks libmicrohttpd which status is queued after each call of the
 * application's handler, so plain MHD_queue_response works; funcmon_mhd_queue_response is a
 * drop-in that also notes it, for libmicrohttpd versions that cannot tell.
 *
 * Every threading mode works (internal polling thread, thread pool, thread per connection,
 * external select): each request's begin and end run on the thread that serves it. Names use
 * libmicrohttpd's url (percent-decoded, without the query string). Not supported together:
 * MHD_OPTION_URI_LOG_CALLBACK, whose value would take the place of the adapter's per-request
 * pointer.
 */
#ifndef FUNCMON_MHD_H
#define FUNCMON_MHD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "funcmon_http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An application's callbacks and the middleware that profiles them. */
struct funcmon_mhd;

/*
 * Wraps an access handler (required) and a request-completed callback (NULL: none) with
 * their closures. http NULL passes every request through unprofiled. Returns NULL with errno
 * EINVAL (no handler) or ENOMEM. http must outlive the wrapper, and the wrapper the daemon.
 */
FUNCMON_API struct funcmon_mhd *funcmon_mhd_new(struct funcmon_http *http, MHD_AccessHandlerCallback handler, void *handler_cls,
                                                MHD_RequestCompletedCallback completed, void *completed_cls);

/* Frees the wrapper, after MHD_stop_daemon. */
FUNCMON_API void funcmon_mhd_free(struct funcmon_mhd *mw);

/* The access handler to give MHD_start_daemon, with the wrapper as its closure. */
FUNCMON_API enum MHD_Result funcmon_mhd_access_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                                       const char *method, const char *version, const char *upload_data,
                                                       size_t *upload_data_size, void **req_cls);

/* The callback to give MHD_OPTION_NOTIFY_COMPLETED, with the wrapper as its closure. */
FUNCMON_API void funcmon_mhd_request_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                                               enum MHD_RequestTerminationCode toe);

/* MHD_queue_response, noting the status for the request's profile. Call it where
 * MHD_queue_response would be called: inside the access handler. */
FUNCMON_API enum MHD_Result funcmon_mhd_queue_response(struct MHD_Connection *connection, unsigned int status,
                                                       struct MHD_Response *response);

#ifdef __cplusplus
}
#endif

#endif
