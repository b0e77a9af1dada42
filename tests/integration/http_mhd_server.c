/*
 * http_mhd_server.c - a small libmicrohttpd server profiled by the funcmon MHD adapter, for
 * tests.
 *
 * It answers what a test can predict: /status/N with status N (queued through
 * funcmon_mhd_queue_response), /sleep/N after N ms, /drop by refusing the request (the
 * handler returns MHD_NO), anything else 200 (queued with plain MHD_queue_response). Like a
 * real application it keeps its own per-request state in *req_cls, takes request bodies
 * over several handler calls, and frees its state in its completed callback; it aborts if
 * the adapter ever hands it a pointer that is not its own, and at exit prints how many
 * requests it saw begin and complete.
 *
 * Usage: http_mhd_server MAX_UNMATCHED THREADS. THREADS 1: one internal polling thread;
 * more: a pool of that many. Listens on an ephemeral port of 127.0.0.1, prints "port N" once
 * it serves, stops cleanly on SIGTERM or SIGINT. funcmon and the skip globs are configured
 * by the environment (FUNCMON_*, FUNCMON_SKIP_PATHS).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "funcmon_mhd.h"
#include "http_test_server.h"

#define APP_MAGIC 0x61707052u

static const char *const routes[] = {
    "/v1/users/:id", "/v1/users/:id/orders/:order", "/v1/items/:id", "/static/*", "/status/:code", "/sleep/:ms", "/drop", NULL};

/* The application's own per-request state. */
struct app_request {
    uint32_t magic;
    size_t body_bytes;
};

static unsigned long requests_begun, requests_completed;

static void
misuse(const char *what)
{
    fprintf(stderr, "http_mhd_server: %s\n", what);
    abort();
}

static long
number_after(const char *url, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (strncmp(url, prefix, plen) != 0 || url[plen] == '\0')
        return -1;
    char *end;
    long v = strtol(url + plen, &end, 10);
    return *end == '\0' && v >= 0 ? v : -1;
}

static enum MHD_Result
answer(struct MHD_Connection *connection, unsigned int status, int through_adapter)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(3, (void *)"ok\n", MHD_RESPMEM_PERSISTENT);
    if (response == NULL)
        return MHD_NO;
    enum MHD_Result rc = through_adapter ? funcmon_mhd_queue_response(connection, status, response)
                                         : MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return rc;
}

static enum MHD_Result
app_handler(void *cls, struct MHD_Connection *connection, const char *url, const char *method, const char *version,
            const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    struct app_request *ar = *req_cls;
    long n;
    (void)cls;
    (void)method;
    (void)version;
    (void)upload_data;

    if (ar == NULL) {
        /* First call: the headers only. */
        if ((ar = calloc(1, sizeof(*ar))) == NULL)
            return MHD_NO;
        ar->magic = APP_MAGIC;
        *req_cls = ar;
        __atomic_fetch_add(&requests_begun, 1, __ATOMIC_RELAXED);
        return MHD_YES;
    }
    if (ar->magic != APP_MAGIC)
        misuse("the access handler got a per-request pointer that is not the application's");
    if (*upload_data_size != 0) {
        ar->body_bytes += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/drop") == 0)
        return MHD_NO;
    if ((n = number_after(url, "/status/")) >= 100 && n <= 599)
        return answer(connection, (unsigned int)n, 1);
    if ((n = number_after(url, "/sleep/")) >= 0 && n <= 1000) {
        struct timespec ts = {n / 1000, (n % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return answer(connection, MHD_HTTP_OK, 0);
}

static void
app_completed(void *cls, struct MHD_Connection *connection, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    struct app_request *ar = *req_cls;
    (void)cls;
    (void)connection;
    (void)toe;
    if (ar == NULL)
        return;
    if (ar->magic != APP_MAGIC)
        misuse("the completed callback got a per-request pointer that is not the application's");
    ar->magic = 0;
    free(ar);
    *req_cls = NULL;
    __atomic_fetch_add(&requests_completed, 1, __ATOMIC_RELAXED);
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MAX_UNMATCHED THREADS\n", argv[0]);
        return 2;
    }
    unsigned threads = (unsigned)strtoul(argv[2], NULL, 10);
    /* Only the main thread takes SIGTERM/SIGINT: block them before MHD starts its threads. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct funcmon_http *http = test_server_middleware(argv[1], routes);
    if (http == NULL)
        return 1;
    struct funcmon_mhd *mw = funcmon_mhd_new(http, app_handler, NULL, app_completed, NULL);
    if (mw == NULL) {
        perror("funcmon_mhd_new");
        return 1;
    }

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, funcmon_mhd_access_handler, mw,
                         MHD_OPTION_NOTIFY_COMPLETED, funcmon_mhd_request_completed, mw, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "MHD_start_daemon failed\n");
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        fprintf(stderr, "no port\n");
        return 1;
    }
    printf("port %u\n", (unsigned)info->port);
    fflush(stdout);

    int sig;
    sigwait(&stop_signals, &sig);
    MHD_stop_daemon(d);
    printf("requests begun %lu completed %lu\n", __atomic_load_n(&requests_begun, __ATOMIC_RELAXED),
           __atomic_load_n(&requests_completed, __ATOMIC_RELAXED));
    funcmon_mhd_free(mw);
    funcmon_http_free(http);
    funcmon_shutdown();
    return 0;
}
