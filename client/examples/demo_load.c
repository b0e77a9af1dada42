/*
 * demo_load.c - the load generator of funcmon-demo: real HTTP requests to the service's own
 * routes over loopback, at a steady rate.
 *
 * A demo of a monitor is only as good as the traffic it watches, and a person trying the
 * demo should not need a second tool to make some. The generator goes through the
 * service's real socket and HTTP stack, so what the sidecar shows is exactly what it would
 * show for outside clients: every request profiled by the middleware, every route of the
 * mix (users, unknown ids, valid, rejected and failing payments, each scenario) with its
 * real status. Each worker thread keeps one keep-alive connection and sends its share of
 * the rate on a fixed schedule, so a slow request delays only its own worker; a worker that
 * falls more than a second behind starts afresh rather than bursting. Counts are per
 * worker and summed after the workers have been joined: nothing is shared while it runs
 * but the stop flag.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

#define MAX_WORKERS 16
#define RESPONSE_BUFFER 16384
#define IO_TIMEOUT_S 10

enum request_kind { PLAIN, USER_BY_ID, PAYMENT };

/* The mix: weights out of 100. Every route is in it, with its failure cases. */
static const struct {
    unsigned weight;
    const char *method;
    const char *path;
    enum request_kind kind;
} mix[] = {
    {5, "GET", "/healthz", PLAIN},
    {12, "GET", "/v1/users", PLAIN},
    {25, "GET", "/v1/users/", USER_BY_ID}, /* ids 1..12: 11 and 12 are unknown (404) */
    {25, "POST", "/v1/payments", PAYMENT}, /* 201, 400, 404, 422, 502, 504 */
    {3, "GET", "/v1/scenarios/slow", PLAIN},
    {5, "GET", "/v1/scenarios/deadline", PLAIN},
    {4, "GET", "/v1/scenarios/fail", PLAIN},
    {5, "GET", "/v1/scenarios/repeat", PLAIN},
    {6, "GET", "/v1/scenarios/memory", PLAIN},
    {5, "GET", "/v1/scenarios/database", PLAIN},
    {3, "GET", "/v1/scenarios/api", PLAIN},
    {2, "GET", "/v1/scenarios/file", PLAIN},
};

struct worker {
    pthread_t thread;
    struct demo_load *load;
    uint64_t first_ns;    /* when its first request is due */
    uint64_t interval_ns; /* between its requests */
    int fd;               /* its keep-alive connection, -1 when none */
    struct demo_load_counts counts;
    char request[1024];
    char response[RESPONSE_BUFFER];
};

struct demo_load {
    struct sockaddr_in target;
    char host[64]; /* the Host header */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* signalled on stop */
    int stopping;        /* under lock */
    unsigned n_workers;
    struct worker workers[];
};

/* Sleeps until the monotonic time due_ns or until the load stops; 1 when stopping. */
static int
wait_until(struct demo_load *load, uint64_t due_ns)
{
    struct timespec due = {.tv_sec = (time_t)(due_ns / 1000000000ull), .tv_nsec = (long)(due_ns % 1000000000ull)};
    pthread_mutex_lock(&load->lock);
    while (!load->stopping && monotonic_ns() < due_ns)
        if (pthread_cond_timedwait(&load->wake, &load->lock, &due) == ETIMEDOUT)
            break;
    int stopping = load->stopping;
    pthread_mutex_unlock(&load->lock);
    return stopping;
}

static void
disconnect(struct worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

static int
connect_to_service(struct worker *w)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval timeout = {.tv_sec = IO_TIMEOUT_S};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&w->load->target, sizeof(w->load->target)) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    w->fd = fd;
    return 0;
}

/* Builds the next request of the mix into w->request; returns its length. */
static size_t
build_request(struct worker *w)
{
    unsigned pick = demo_random(100), i = 0;
    while (pick >= mix[i].weight) /* the weights add up to 100 */
        pick -= mix[i++].weight;
    char path[64], body[128] = "";
    snprintf(path, sizeof(path), "%s", mix[i].path);
    if (mix[i].kind == USER_BY_ID) {
        snprintf(path, sizeof(path), "%s%u", mix[i].path, 1 + demo_random(DEMO_USER_COUNT + 2));
    } else if (mix[i].kind == PAYMENT) {
        unsigned shape = demo_random(100);
        if (shape < 3)
            snprintf(body, sizeof(body), "not json"); /* 400 */
        else if (shape < 5)
            snprintf(body, sizeof(body), "{\"user_id\": %u, \"amount\": -%u}", 1 + demo_random(DEMO_USER_COUNT),
                     1 + demo_random(100)); /* 400 */
        else                                /* 1..12000 cents: over 10000 is 422; endings 7 and 9 fail at the gateway */
            snprintf(body, sizeof(body), "{\"user_id\": %u, \"amount\": %u, \"currency\": \"EUR\"}",
                     1 + demo_random(DEMO_USER_COUNT + 1), 1 + demo_random(12000));
    }
    int len;
    if (mix[i].kind == PAYMENT)
        len = snprintf(w->request, sizeof(w->request),
                       "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: funcmon-demo-load\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       mix[i].method, path, w->load->host, strlen(body), body);
    else
        len = snprintf(w->request, sizeof(w->request), "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: funcmon-demo-load\r\n\r\n",
                       mix[i].method, path, w->load->host);
    return (size_t)len < sizeof(w->request) ? (size_t)len : sizeof(w->request) - 1;
}

static int
send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The value of header name in the header block [start, end), or NULL. */
static const char *
find_header(const char *start, const char *end, const char *name)
{
    size_t name_len = strlen(name);
    for (const char *line = start; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > name_len && line[name_len] == ':' && strncasecmp(line, name, name_len) == 0) {
            const char *value = line + name_len + 1;
            while (value < eol && (*value == ' ' || *value == '\t'))
                value++;
            return value;
        }
        line = eol + 2;
    }
    return NULL;
}

/*
 * Reads one response from w->fd; returns its status code, or -1 when the connection failed
 * or the answer is not HTTP. Sets *keep to 0 when the connection cannot be reused.
 */
static int
read_response(struct worker *w, int *keep)
{
    size_t have = 0;
    char *header_end = NULL;
    while (header_end == NULL) {
        if (have == sizeof(w->response) - 1)
            return -1; /* a header block this large is not from our service */
        ssize_t n = recv(w->fd, w->response + have, sizeof(w->response) - 1 - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        have += (size_t)n;
        w->response[have] = '\0';
        header_end = strstr(w->response, "\r\n\r\n");
    }
    int status;
    if (sscanf(w->response, "HTTP/1.%*[01] %3d", &status) != 1 || status < 100 || status > 599)
        return -1;
    const char *headers = strstr(w->response, "\r\n") + 2;
    const char *length = find_header(headers, header_end + 2, "Content-Length");
    const char *connection = find_header(headers, header_end + 2, "Connection");
    *keep = !(connection != NULL && strncasecmp(connection, "close", 5) == 0);
    if (length == NULL) {
        *keep = 0; /* the body runs to the end of the connection: not ours to wait for */
        return status;
    }
    char *end;
    unsigned long long body_len = strtoull(length, &end, 10);
    if (end == length)
        return -1;
    unsigned long long body_have = have - (size_t)(header_end + 4 - w->response);
    while (body_have < body_len) { /* read and drop the rest of the body */
        ssize_t n = recv(w->fd, w->response, sizeof(w->response), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        body_have += (unsigned long long)n;
    }
    if (body_have != body_len)
        *keep = 0; /* more than announced: the stream is out of step */
    return status;
}

/* Sends one request of the mix and counts its answer. */
static void
one_request(struct worker *w)
{
    size_t len = build_request(w);
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = w->fd >= 0;
        if (!reused && connect_to_service(w) != 0)
            break;
        int keep = 0, status = -1;
        if (send_all(w->fd, w->request, len) == 0)
            status = read_response(w, &keep);
        if (status < 0) {
            disconnect(w);
            if (reused)
                continue; /* the server may have closed an idle connection: one fresh try */
            break;
        }
        if (!keep)
            disconnect(w);
        w->counts.sent++;
        if (status >= 200 && status < 300)
            w->counts.status_2xx++;
        else if (status >= 400 && status < 500)
            w->counts.status_4xx++;
        else if (status >= 500)
            w->counts.status_5xx++;
        else
            w->counts.status_other++;
        return;
    }
    w->counts.failed++;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t due = w->first_ns;
    while (!wait_until(w->load, due)) {
        one_request(w);
        due += w->interval_ns;
        uint64_t now = monotonic_ns();
        if (now > due + 1000000000ull)
            due = now; /* far behind: start afresh instead of bursting to catch up */
    }
    disconnect(w);
    return NULL;
}

struct demo_load *
demo_load_start(const struct sockaddr_in *target, unsigned rps, char *err, size_t errlen)
{
    if (rps == 0) {
        snprintf(err, errlen, "the load must be at least 1 request per second");
        return NULL;
    }
    unsigned n = (rps + 9) / 10; /* about 10 requests per second per connection */
    n = n < 2 ? 2 : n > MAX_WORKERS ? MAX_WORKERS : n;
    struct demo_load *load = calloc(1, sizeof(*load) + n * sizeof(load->workers[0]));
    if (load == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    load->target = *target;
    char address[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &target->sin_addr, address, sizeof(address));
    snprintf(load->host, sizeof(load->host), "%s:%u", address, ntohs(target->sin_port));
    pthread_mutex_init(&load->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&load->wake, &attr);
    pthread_condattr_destroy(&attr);

    /* Worker i sends at t0 + i*step, t0 + (i+n)*step, ...: together one request every step. */
    uint64_t step = 1000000000ull / rps, t0 = monotonic_ns();
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &load->workers[i];
        w->load = load;
        w->fd = -1;
        w->first_ns = t0 + i * step;
        w->interval_ns = step * n;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start a load thread: %s", strerror(rc));
            break;
        }
        load->n_workers++;
    }
    if (load->n_workers == 0) {
        demo_load_stop(load, NULL);
        return NULL;
    }
    return load;
}

void
demo_load_stop(struct demo_load *load, struct demo_load_counts *counts)
{
    pthread_mutex_lock(&load->lock);
    load->stopping = 1;
    pthread_cond_broadcast(&load->wake);
    pthread_mutex_unlock(&load->lock);
    struct demo_load_counts sum = {0};
    for (unsigned i = 0; i < load->n_workers; i++) {
        const struct demo_load_counts *c = &load->workers[i].counts;
        pthread_join(load->workers[i].thread, NULL);
        sum.sent += c->sent;
        sum.status_2xx += c->status_2xx;
        sum.status_4xx += c->status_4xx;
        sum.status_5xx += c->status_5xx;
        sum.status_other += c->status_other;
        sum.failed += c->failed;
    }
    if (counts != NULL)
        *counts = sum;
    pthread_cond_destroy(&load->wake);
    pthread_mutex_destroy(&load->lock);
    free(load);
}
