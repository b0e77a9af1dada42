/*
 * demo_main.c - funcmon-demo: options, start, and a clean stop.
 *
 * The demo service shows a person what funcmon records for a real C service: it starts
 * profiling (allocation tracking on unless FUNCMON_TRACK_ALLOC says otherwise), serves its
 * JSON routes with libmicrohttpd, every request profiled by the middleware, optionally
 * drives itself with its own load, and stops cleanly on SIGINT, SIGTERM or after --seconds:
 * load first, then the server (so every request in flight completes and is recorded), then
 * profiling, so that the sidecar has every record. Exit codes: 0 after a clean stop, 1 when
 * it cannot start, 2 for a bad command line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <funcmon.h>
#include <funcmon_http.h>
#include <funcmon_mhd.h>

#include "demo.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"
#define MAX_RPS 5000
#define MAX_SECONDS (7 * 24 * 3600)
/* One thread per connection, each with its own funcmon ring: stay well inside the default
 * FUNCMON_MAX_THREADS of 64. */
#define CONNECTION_LIMIT 48
#define CONNECTION_TIMEOUT_S 30

struct options {
    struct sockaddr_in listen;
    unsigned rps;     /* 0: no load */
    unsigned seconds; /* 0: until a signal */
};

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: funcmon-demo [--listen ADDR:PORT] [--load RPS] [--seconds N]\n"
            "       funcmon-demo --help\n"
            "\n"
            "A small JSON HTTP service profiled by funcmon: every request through the\n"
            "libmicrohttpd middleware, its handlers through all four instrumentation styles.\n"
            "Run funcmond beside it to see the profiles.\n"
            "\n"
            "  --listen ADDR:PORT  where to serve (default %s; port 0 picks a free one)\n"
            "  --load RPS          send about RPS requests per second of every route to itself\n"
            "                      (1 to %d)\n"
            "  --seconds N         stop after N seconds (default: run until SIGINT or SIGTERM)\n"
            "  --help              this text\n"
            "\n"
            "Routes: GET /healthz, GET /v1/users, GET /v1/users/:id, POST /v1/payments\n"
            "({\"user_id\": 1, \"amount\": 250}), GET /v1/scenarios/{slow,deadline,fail,repeat,\n"
            "memory,database,api,file}. Environment: FUNCMON_SERVICE, FUNCMON_SHM_PREFIX,\n"
            "FUNCMON_TRACK_ALLOC (default on here), FUNCMON_SKIP_PATHS and the other FUNCMON_*\n"
            "variables of libfuncmon. Exit codes: 0 after a clean stop, 1 when it cannot\n"
            "start, 2 for a bad command line.\n",
            DEFAULT_LISTEN, MAX_RPS);
}

/* Parses a decimal number in [min, max]; -1 when it is not one. */
static long
parse_number(const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || text[0] == '+' || text[0] == ' ' || value < min ||
        value > max)
        return -1;
    return value;
}

/* Parses "ADDR:PORT" (ADDR an IPv4 address or "localhost"); 0, or -1 with why set. */
static int
parse_listen(const char *text, struct sockaddr_in *addr, const char **why)
{
    const char *colon = strrchr(text, ':');
    char host[INET_ADDRSTRLEN];
    if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(host)) {
        *why = "expected ADDR:PORT, e.g. 127.0.0.1:8080";
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    long port = parse_number(colon + 1, 0, 65535);
    if (port < 0) {
        *why = "the port must be a number from 0 to 65535";
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
        *why = "the address must be an IPv4 address such as 127.0.0.1, or localhost";
        return -1;
    }
    return 0;
}

/* Parses the command line into *opts; returns 0, 1 after --help, or 2 after an error. */
static int
parse_options(int argc, char **argv, struct options *opts)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"load", required_argument, NULL, 'r'},
                                             {"seconds", required_argument, NULL, 's'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *why = NULL;
    int opt;
    memset(opts, 0, sizeof(*opts));
    parse_listen(DEFAULT_LISTEN, &opts->listen, &why);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        long value;
        switch (opt) {
        case 'l':
            if (parse_listen(optarg, &opts->listen, &why) != 0) {
                fprintf(stderr, "funcmon-demo: --listen '%s': %s\n", optarg, why);
                return 2;
            }
            break;
        case 'r':
            if ((value = parse_number(optarg, 1, MAX_RPS)) < 0) {
                fprintf(stderr, "funcmon-demo: --load '%s': expected requests per second from 1 to %d\n", optarg, MAX_RPS);
                return 2;
            }
            opts->rps = (unsigned)value;
            break;
        case 's':
            if ((value = parse_number(optarg, 1, MAX_SECONDS)) < 0) {
                fprintf(stderr, "funcmon-demo: --seconds '%s': expected a number of seconds from 1 to %d\n", optarg, MAX_SECONDS);
                return 2;
            }
            opts->seconds = (unsigned)value;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            if (optopt != 0)
                fprintf(stderr, "funcmon-demo: option --%s needs a value\n",
                        optopt == 'l'   ? "listen"
                        : optopt == 'r' ? "load"
                                        : "seconds");
            else
                fprintf(stderr, "funcmon-demo: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "Try 'funcmon-demo --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "funcmon-demo: unexpected argument '%s'\nTry 'funcmon-demo --help'.\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* A listening socket on addr; sets *port to the port it got. -errno on failure. */
static int
listen_on(const struct sockaddr_in *addr, unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -errno;
    struct sockaddr_in bound;
    socklen_t len = sizeof(bound);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &len) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    *port = ntohs(bound.sin_port);
    return fd;
}

/* Waits for SIGINT or SIGTERM (blocked in every thread), or until seconds have passed when
 * seconds > 0. Returns the signal, or 0 when the time ran out. */
static int
wait_for_stop(const sigset_t *stop_signals, unsigned seconds)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec timeout = {.tv_sec = 1, .tv_nsec = 0};
        if (seconds > 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long left_ns = (long long)seconds * 1000000000ll -
                                ((long long)(now.tv_sec - start.tv_sec) * 1000000000ll + (now.tv_nsec - start.tv_nsec));
            if (left_ns <= 0)
                return 0;
            if (left_ns < 1000000000ll)
                timeout.tv_sec = 0, timeout.tv_nsec = (long)left_ns;
        }
        int sig = sigtimedwait(stop_signals, NULL, &timeout);
        if (sig > 0)
            return sig;
    }
}

int
main(int argc, char **argv)
{
    struct options opts;
    int rc = parse_options(argc, argv, &opts);
    if (rc != 0)
        return rc == 1 ? 0 : rc;

    /* Every thread started from here on inherits the blocked signals: only the main thread
     * takes SIGINT and SIGTERM, in sigtimedwait. Writes to a closed socket fail, not kill. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct funcmon_options fopts = {0};
    if (getenv("FUNCMON_TRACK_ALLOC") == NULL)
        fopts.track_alloc = FUNCMON_ON; /* so the 1 MiB scenario shows its bytes */
    if (funcmon_init(&fopts) == 0 && funcmon_active())
        printf("funcmon-demo: profiling into %s, allocation tracking %s\n", funcmon_segment_name(),
               funcmon_alloc_tracking() ? "on" : "off");
    else
        printf("funcmon-demo: profiling is off; the service runs all the same\n");

    /* Every request is profiled as <METHOD>_<route template> in package http_handler, except
     * those matching FUNCMON_SKIP_PATHS. Without the middleware the service still runs. */
    struct funcmon_http *http = funcmon_http_new(NULL);
    struct funcmon_mhd *middleware = NULL;
    struct MHD_Daemon *daemon = NULL;
    char address[INET_ADDRSTRLEN];
    unsigned port = 0;
    int status = 1;
    if (http == NULL)
        fprintf(stderr, "funcmon-demo: requests are not profiled: %s\n", strerror(errno));
    for (size_t i = 0; http != NULL && demo_route_templates[i] != NULL; i++) {
        if (funcmon_http_route(http, demo_route_templates[i]) != 0) {
            fprintf(stderr, "funcmon-demo: route '%s': %s\n", demo_route_templates[i], strerror(errno));
            goto out;
        }
    }
    middleware = funcmon_mhd_new(http, demo_on_request, NULL, demo_on_completed, NULL);
    if (middleware == NULL) {
        fprintf(stderr, "funcmon-demo: cannot set up the HTTP middleware: %s\n", strerror(errno));
        goto out;
    }

    inet_ntop(AF_INET, &opts.listen.sin_addr, address, sizeof(address));
    int fd = listen_on(&opts.listen, &port);
    if (fd < 0) {
        fprintf(stderr, "funcmon-demo: cannot listen on %s:%u: %s\n", address, ntohs(opts.listen.sin_port), strerror(-fd));
        goto out;
    }
    daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0,
                         NULL, NULL, funcmon_mhd_access_handler, middleware, MHD_OPTION_LISTEN_SOCKET, fd,
                         MHD_OPTION_NOTIFY_COMPLETED, funcmon_mhd_request_completed, middleware, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    if (daemon == NULL) {
        fprintf(stderr, "funcmon-demo: cannot start the HTTP server on %s:%u\n", address, port);
        close(fd);
        goto out;
    }
    printf("funcmon-demo: listening on http://%s:%u (pid %ld)\n", address, port, (long)getpid());

    struct demo_load *load = NULL;
    if (opts.rps > 0) {
        /* The load goes to the port we got; a wildcard address is reached over loopback. */
        struct sockaddr_in target = opts.listen;
        target.sin_port = htons((uint16_t)port);
        if (target.sin_addr.s_addr == htonl(INADDR_ANY))
            target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        char err[256];
        load = demo_load_start(&target, opts.rps, err, sizeof(err));
        if (load == NULL)
            fprintf(stderr, "funcmon-demo: no load: %s\n", err);
        else
            printf("funcmon-demo: sending about %u requests/s to itself\n", opts.rps);
    }
    fflush(stdout);

    int sig = wait_for_stop(&stop_signals, opts.seconds);
    printf("funcmon-demo: %s, stopping\n", sig == 0 ? "time is up" : strsignal(sig));
    if (load != NULL) {
        struct demo_load_counts c;
        demo_load_stop(load, &c);
        printf("funcmon-demo: load sent %llu requests: %llu 2xx, %llu 4xx, %llu 5xx, %llu other, %llu failed\n",
               (unsigned long long)c.sent, (unsigned long long)c.status_2xx, (unsigned long long)c.status_4xx,
               (unsigned long long)c.status_5xx, (unsigned long long)c.status_other, (unsigned long long)c.failed);
    }
    MHD_stop_daemon(daemon); /* waits for every connection's thread: all requests are recorded */
    daemon = NULL;
    status = 0;
    printf("funcmon-demo: stopped\n");
out:
    if (daemon != NULL)
        MHD_stop_daemon(daemon);
    funcmon_mhd_free(middleware);
    funcmon_http_free(http);
    funcmon_shutdown();
    return status;
}
