/*
 * http_h2o_server.c - a small h2o server profiled by the funcmon h2o adapter, for tests.
 *
 * It answers what a test can predict: /status/N with status N, /sleep/N after blocking the
 * loop N ms, /delay/N after an N ms timer while the loop serves others (N must be 20),
 * anything else 200. Its routes are those test_http_middleware.sh expects.
 *
 * Usage: http_h2o_server MAX_UNMATCHED. Listens on an ephemeral port of 127.0.0.1, prints
 * "port N" once it serves, exits 0 on SIGTERM or SIGINT. funcmon and the skip globs are
 * configured by the environment (FUNCMON_*, FUNCMON_SKIP_PATHS).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "funcmon_h2o.h"
#include "http_test_server.h"

#define DELAY_MS 20

static const char *const routes[] = {"/v1/users/:id", "/v1/users/:id/orders/:order",
                                     "/v1/items/:id", "/static/*",
                                     "/status/:code", "/sleep/:ms",
                                     "/delay/:ms",    NULL};

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
static h2o_timeout_t delay_timeout, topup_timeout;
static volatile sig_atomic_t stop;

struct delayed_answer {
    h2o_timeout_entry_t entry; /* first: the timer's callback gets its address */
    h2o_req_t *req;
    uint64_t due_ns; /* CLOCK_MONOTONIC */
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
answer(h2o_req_t *req, int status)
{
    req->res.status = status;
    req->res.reason = status < 400 ? "OK" : "Not OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain"));
    h2o_send_inline(req, H2O_STRLIT("ok\n"));
}

static void
on_delay_done(h2o_timeout_entry_t *entry)
{
    struct delayed_answer *d = (struct delayed_answer *)entry;
    /* h2o's timers count from the loop's cached millisecond clock, so one may fire a little
     * early by the real clock: wait on in 1 ms steps until the full delay has passed. */
    if (mono_ns() < d->due_ns) {
        h2o_timeout_link(ctx.loop, &topup_timeout, &d->entry);
        return;
    }
    answer(d->req, 200);
}

/* A request that goes away while its timer runs must not be answered later. */
static void
on_delayed_disposed(void *p)
{
    struct delayed_answer *d = p;
    if (h2o_timeout_is_linked(&d->entry))
        h2o_timeout_unlink(&d->entry);
}

/* The number after a path prefix, or -1. */
static long
number_after(h2o_req_t *req, const char *prefix)
{
    size_t plen = strlen(prefix), len = req->path.len;
    char buf[16];
    if (req->query_at != SIZE_MAX)
        len = req->query_at;
    if (len <= plen || len - plen >= sizeof(buf) || memcmp(req->path.base, prefix, plen) != 0)
        return -1;
    memcpy(buf, req->path.base + plen, len - plen);
    buf[len - plen] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    return *end == '\0' && v >= 0 ? v : -1;
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    long n;
    (void)self;
    if ((n = number_after(req, "/status/")) >= 100 && n <= 599) {
        answer(req, (int)n);
    } else if ((n = number_after(req, "/sleep/")) >= 0 && n <= 1000) {
        struct timespec ts = {n / 1000, (n % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        answer(req, 200);
    } else if ((n = number_after(req, "/delay/")) >= 0) {
        if (n != DELAY_MS) {
            answer(req, 400);
            return 0;
        }
        struct delayed_answer *d = h2o_mem_alloc_shared(&req->pool, sizeof(*d), on_delayed_disposed);
        memset(d, 0, sizeof(*d));
        d->entry.cb = on_delay_done;
        d->req = req;
        d->due_ns = mono_ns() + DELAY_MS * 1000000u;
        h2o_timeout_link(ctx.loop, &delay_timeout, &d->entry);
    } else {
        answer(req, 200);
    }
    return 0;
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&accept_ctx, sock);
}

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MAX_UNMATCHED\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct funcmon_http *http = test_server_middleware(argv[1], routes);
    if (http == NULL)
        return 1;

    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("listen on 127.0.0.1");
        return 1;
    }

    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *app = h2o_create_handler(path, sizeof(*app));
    app->on_req = on_req;
    /* Registered after the application's handler: the adapter still runs first. */
    if (funcmon_h2o_register(path, http) != 0) {
        perror("funcmon_h2o_register");
        return 1;
    }
    h2o_context_init(&ctx, h2o_evloop_create(), &config);
    h2o_timeout_init(ctx.loop, &delay_timeout, DELAY_MS);
    h2o_timeout_init(ctx.loop, &topup_timeout, 1);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;
    h2o_socket_t *listener = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);

    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    while (!stop)
        h2o_evloop_run(ctx.loop, 100);
    /* h2o 2.2.5 cannot dispose of a context with connections open: exit with it in place. */
    funcmon_shutdown();
    return 0;
}
