/*
 * http.c - the h2o server of funcmond: listening, connections, authentication, and the
 * route table that hands each request of DESIGN §5 to its endpoint family (http_*.c).
 *
 * The server runs in its own thread on h2o's event loop and reads only what the drain
 * thread publishes (views, under ck_epoch) and /proc; it never waits for the drain loop.
 * Answers that take time (a CPU profile for N seconds, a trim every client must answer)
 * are started from the request, finished on another thread, and handed back to the loop
 * as jobs (h2o messages), so no request blocks another. A request whose client went away
 * before its answer was ready is dropped then, never touched after h2o freed it; a job
 * whose client closed its connection (a CPU profile) is cancelled within a sweep (h2o does
 * not read a connection whose answer is pending, so the socket itself is watched).
 *
 * Connections are accepted here, not by h2o, and kept in order of last activity: when file
 * descriptors run out, the listener is left unread for a moment (it stays readable, so
 * retrying at once would spin) and the connections idle longest are shut down, so that a
 * new request is still answered.
 *
 * Paths are matched on the raw request path, percent-decoded without normalisation: a
 * function name may contain '/', '%2F' or '..' and those are data, not navigation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "http_internal.h"
#include "log.h"

/* One accepted connection. When descriptors run out, the connections that moved no bytes
 * for longest are closed first so that a new request can be accepted; activity is seen by
 * the sweep (every SWEEP_MS) from the socket's byte counters. */
struct conn {
    h2o_linklist_t link; /* in conns */
    struct funcmond_http *h;
    h2o_socket_t *sock;
    int fd;
    int shut; /* shut down by us: h2o closes it on its next read or write */
    size_t seen_read, seen_written;
};

#define SWEEP_MS 100          /* how often connections and watched jobs' clients are looked at */
#define ACCEPTS_PER_WAKEUP 16 /* a backlog drains without starving the other sockets */
#define CLOSE_PER_SHORTAGE 32 /* idle connections closed each time descriptors run out */
#define PAUSE_FREED_MS 10     /* listener pause when connections were closed: until h2o has closed them */
#define PAUSE_NONE_MS 250     /* when none could be: no spinning on a listener that cannot be served */

struct handler {
    h2o_handler_t super;
    struct funcmond_http *h;
};

/* ---- answers finished on another thread ---- */

static void
job_unref(struct funcmond_http_job *j)
{
    if (--j->refs == 0) {
        if (j->ops->dispose != NULL)
            j->ops->dispose(j);
        free(j);
    }
}

/* The request's pool is being freed (answered, or the client is gone). */
static void
on_req_disposed(void *p)
{
    struct funcmond_http_job *j = *(struct funcmond_http_job **)p;
    j->orphaned = 1;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
    job_unref(j);
}

struct funcmond_http_job *
funcmond_http_job_new(const struct funcmond_http_call *c, size_t size, const struct funcmond_http_job_ops *ops)
{
    struct funcmond_http_job *j = calloc(1, size);
    if (j == NULL)
        return NULL;
    j->ops = ops;
    j->h = c->h;
    j->req = c->req;
    j->refs = 2;
    j->fd = -1;
    struct funcmond_http_job **ref = h2o_mem_alloc_shared(&c->req->pool, sizeof(*ref), on_req_disposed);
    *ref = j;
    return j;
}

void
funcmond_http_job_post(struct funcmond_http_job *j)
{
    h2o_multithread_send_message(&j->h->receiver, &j->msg);
}

void
funcmond_http_job_abandon(struct funcmond_http_job *j)
{
    j->refs--; /* the finisher's: it will never run; the request's is still held */
}

void
funcmond_http_job_watch_client(struct funcmond_http_job *j)
{
    h2o_req_t *req = j->req;
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    j->fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
    h2o_linklist_insert(&j->h->watched_jobs, &j->watched);
}

/* Jobs posted back to the HTTP thread: each gives back its slot, then answers its request
 * unless the client is gone. */
static void
on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct funcmond_http_job *j = H2O_STRUCT_FROM_MEMBER(struct funcmond_http_job, msg.link, messages->next);
        h2o_linklist_unlink(&j->msg.link);
        if (h2o_linklist_is_linked(&j->watched))
            h2o_linklist_unlink(&j->watched);
        j->ops->finished(j);
        if (!j->orphaned) {
            if (j->client_left) {
                /* Nobody reads it: writing makes h2o see the closed socket and free the
                 * connection, which it does not notice while a response is pending. */
                funcmond_http_send_error(j->req, 503, "the client went away", NULL, NULL);
            } else {
                j->ops->answer(j);
            }
        }
        job_unref(j);
    }
}

/* ---- routing ---- */

/*
 * The debug endpoints, under PROFILING.PATH. `allow` lists the methods a route accepts,
 * as the Allow header of a 405 gives them. A prefix route takes a non-empty rest.
 */
struct route {
    const char *path; /* after PROFILING.PATH and its '/' */
    int prefix;
    const char *allow;
    funcmond_http_handler serve;
};

#define ALLOW_READ "GET, HEAD"

static const struct route debug_routes[] = {
    {"profiles", 0, ALLOW_READ, funcmond_http_get_profiles},
    {"profiles/", 1, ALLOW_READ, funcmond_http_get_profile},
    {"stats", 0, ALLOW_READ, funcmond_http_get_stats},
    {"memory", 0, ALLOW_READ, funcmond_http_get_memory},
    {"gc", 0, "POST", funcmond_http_post_gc},
    {"threads", 0, ALLOW_READ, funcmond_http_get_threads},
    {"goroutines", 0, ALLOW_READ, funcmond_http_get_goroutines},
    {"inflight", 0, ALLOW_READ, funcmond_http_get_inflight},
    {"processes", 0, ALLOW_READ, funcmond_http_get_processes},
    {"pprof", 0, ALLOW_READ, funcmond_http_get_pprof_index},
    {"pprof/", 0, ALLOW_READ, funcmond_http_get_pprof_index},
    {"pprof/profile", 0, ALLOW_READ, funcmond_http_get_cpu_profile},
    {"pprof/heap", 0, ALLOW_READ, funcmond_http_get_heap_profile},
};

/* METRICS.PATH: outside PROFILING.PATH, without a token, its query not read. */
static const struct route metrics_route = {NULL, 0, ALLOW_READ, funcmond_http_get_metrics};

/* An unknown path under PROFILING.PATH is told 405 for a method no reader uses, 404 for
 * the others. */
static const char unknown_allow[] = ALLOW_READ;

#undef ALLOW_READ

/* The route for `sub` (the path after PROFILING.PATH and its '/'), or NULL. */
static const struct route *
find_route(const char *sub, size_t slen)
{
    for (size_t i = 0; i < sizeof(debug_routes) / sizeof(debug_routes[0]); i++) {
        const struct route *r = &debug_routes[i];
        size_t rl = strlen(r->path);
        if (r->prefix ? slen > rl && memcmp(sub, r->path, rl) == 0 : h2o_memis(sub, slen, r->path, rl))
            return r;
    }
    return NULL;
}

/* Whether the request's method is one of `allow` ("GET, HEAD"). */
static int
method_allowed(h2o_req_t *req, const char *allow)
{
    for (const char *m = allow; *m != '\0';) {
        size_t n = strcspn(m, ",");
        if (h2o_memis(req->method.base, req->method.len, m, n))
            return 1;
        m += n;
        m += strspn(m, ", ");
    }
    return 0;
}

static int
not_allowed(h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    char msg[96];
    snprintf(msg, sizeof(msg), "method not allowed here; allowed: %s", allow);
    return funcmond_http_send_error(req, 405, msg, NULL, NULL);
}

static int
authorised(const struct funcmond_http *h, h2o_req_t *req)
{
    const char *token = h->cfg->auth_token;
    size_t tl = strlen(token);
    if (tl == 0)
        return 1;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len != tl + 7 || strncasecmp(v.base, "Bearer ", 7) != 0)
        return 0;
    unsigned char diff = 0; /* constant time: no early exit on the first wrong byte */
    for (size_t k = 0; k < tl; k++)
        diff |= (unsigned char)(v.base[7 + k] ^ token[k]);
    return diff == 0;
}

/* Parses req's query into q, its strings in req's pool. Returns 0 or -EINVAL (q->bad). */
static int
parse_query(h2o_req_t *req, struct funcmond_http_query *q)
{
    size_t at = req->query_at != SIZE_MAX ? req->query_at + 1 : req->path.len, len = req->path.len - at;
    char *storage = h2o_mem_alloc_pool(&req->pool, FUNCMOND_HTTP_QUERY_STORAGE(len));
    return funcmond_http_parse_query(req->path.base + at, len, storage, q);
}

/*
 * Every request: METRICS.PATH first, then under PROFILING.PATH, in this order, the token
 * (401), the query (400), the method (405, also for an unknown path) and the route (404).
 */
static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct funcmond_http *h = ((struct handler *)self)->h;
    const struct funcmond_config *cfg = h->cfg;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *path = req->path.base;
    struct funcmond_http_query q;
    struct funcmond_http_call call = {h, req, &q, "", 0};

    if (cfg->metrics_enabled && h2o_memis(path, plen, cfg->metrics_path, strlen(cfg->metrics_path))) {
        char none[FUNCMOND_HTTP_QUERY_STORAGE(0)];
        funcmond_http_parse_query("", 0, none, &q); /* not read: an empty query */
        if (!method_allowed(req, metrics_route.allow))
            return not_allowed(req, metrics_route.allow);
        return metrics_route.serve(&call);
    }
    size_t base = strcmp(cfg->profiling_path, "/") == 0 ? 0 : strlen(cfg->profiling_path);
    if (!cfg->profiling_enabled || plen <= base || memcmp(path, cfg->profiling_path, base) != 0 || path[base] != '/')
        return funcmond_http_send_error(req, 404, "no such endpoint", NULL, NULL);
    if (!authorised(h, req))
        return funcmond_http_send_error(req, 401, "missing or wrong bearer token", NULL, NULL);
    if (parse_query(req, &q) != 0)
        return funcmond_http_send_error(req, 400, q.bad, NULL, NULL);
    const char *sub = path + base + 1;
    size_t slen = plen - base - 1;
    const struct route *r = find_route(sub, slen);
    const char *allow = r != NULL ? r->allow : unknown_allow;
    if (!method_allowed(req, allow))
        return not_allowed(req, allow);
    if (r == NULL)
        return funcmond_http_send_error(req, 404, "no such endpoint", NULL, NULL);
    if (r->prefix) {
        size_t rl = strlen(r->path);
        call.rest = sub + rl;
        call.rest_len = slen - rl;
    }
    return r->serve(&call);
}

/* ---- server ---- */

/* h2o closed the socket (its connection is done): forget it. */
static void
on_conn_closed(void *arg)
{
    struct conn *c = arg;
    h2o_linklist_unlink(&c->link);
    if (!c->shut)
        c->h->n_conns--;
    free(c);
}

/* Whether a watched job (a running CPU profile) answers on this descriptor: its connection
 * is not idle. */
static int
serves_watched_job(struct funcmond_http *h, int fd)
{
    for (h2o_linklist_t *l = h->watched_jobs.next; l != &h->watched_jobs; l = l->next) {
        const struct funcmond_http_job *j = H2O_STRUCT_FROM_MEMBER(struct funcmond_http_job, watched, l);
        if (!j->orphaned && j->fd == fd)
            return 1;
    }
    return 0;
}

/* Out of descriptors: stop reading the listener (it stays readable, and accepting again
 * at once would only spin), and shut down the connections idle longest so that h2o closes
 * them and the next accept succeeds. shutdown() rather than close(): h2o owns the socket
 * and closes it itself when its read or write fails. */
/* Shuts down up to `most` of the connections idle longest (never a running CPU profile's);
 * returns how many. */
static unsigned
shed_idle(struct funcmond_http *h, unsigned most)
{
    unsigned closed = 0;
    for (h2o_linklist_t *l = h->conns.next; l != &h->conns && closed < most; l = l->next) {
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, l);
        if (c->shut || serves_watched_job(h, c->fd))
            continue;
        shutdown(c->fd, SHUT_RDWR);
        c->shut = 1;
        h->n_conns--; /* h2o closes it at its next read or write */
        closed++;
    }
    return closed;
}

static void
out_of_fds(struct funcmond_http *h, int err)
{
    unsigned closed = shed_idle(h, CLOSE_PER_SHORTAGE);
    uint64_t now = h2o_now(h->loop);
    h2o_socket_read_stop(h->listener);
    h->paused = 1;
    h->resume_at_ms = now + (closed > 0 ? PAUSE_FREED_MS : PAUSE_NONE_MS);
    h->fd_failures++;
    if (now >= h->next_fd_warning_ms) { /* at most one line every 10 s */
        LOG_WARN("HTTP: out of file descriptors (%s, %llu accepts refused): closed %u idle connections, not accepting for %u ms",
                 strerror(err), (unsigned long long)h->fd_failures, closed, closed > 0 ? PAUSE_FREED_MS : PAUSE_NONE_MS);
        h->next_fd_warning_ms = now + 10000;
        h->fd_failures = 0;
    }
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
    struct funcmond_http *h = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
        /* Connections take at most half the descriptors, whoever opens them: the drain
         * thread's (clients' segments and pidfds, /proc, the state file) are never all
         * held by idle connections. At the cap the one idle longest makes way. */
        if (h->n_conns >= h->max_conns && shed_idle(h, 1) == 0) {
            out_of_fds(h, EMFILE);
            return;
        }
        int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                out_of_fds(h, errno);
            return; /* EAGAIN: the backlog is empty; anything else concerns that one connection */
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        c->h = h;
        h->n_conns++;
        c->sock = h2o_evloop_socket_create(h->loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
        c->sock->on_close.cb = on_conn_closed;
        c->sock->on_close.data = c;
        h2o_linklist_insert(&h->conns, &c->link); /* the newest is the most recently active */
        h2o_accept(&h->accept_ctx, c->sock);
    }
}

/* Every SWEEP_MS on the HTTP thread: connections that moved bytes go to the end of the
 * list (the head is then the one idle longest); a watched job whose client closed its
 * connection is cancelled; a paused listener is read again when its pause is over. */
static void
sweep(struct funcmond_http *h)
{
    uint64_t now = h2o_now(h->loop);
    if (h->paused && now >= h->resume_at_ms) {
        h->paused = 0;
        h2o_socket_read_start(h->listener, on_accept);
    }
    if (now < h->next_sweep_ms)
        return;
    h->next_sweep_ms = now + SWEEP_MS;
    h2o_linklist_t active;
    h2o_linklist_init_anchor(&active);
    for (h2o_linklist_t *l = h->conns.next, *next; l != &h->conns; l = next) {
        next = l->next;
        struct conn *c = H2O_STRUCT_FROM_MEMBER(struct conn, link, l);
        if (c->sock->bytes_read != c->seen_read || c->sock->bytes_written != c->seen_written) {
            c->seen_read = c->sock->bytes_read;
            c->seen_written = c->sock->bytes_written;
            h2o_linklist_unlink(&c->link);
            h2o_linklist_insert(&active, &c->link);
        }
    }
    h2o_linklist_insert_list(&h->conns, &active);
    for (h2o_linklist_t *l = h->watched_jobs.next; l != &h->watched_jobs; l = l->next) {
        struct funcmond_http_job *j = H2O_STRUCT_FROM_MEMBER(struct funcmond_http_job, watched, l);
        if (j->orphaned || j->client_left || j->fd < 0)
            continue;
        /* The peer's FIN (POLLRDHUP) or a reset; pipelined bytes (POLLIN alone) are not a leave. */
        struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            j->client_left = 1;
            __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
            if (j->ops->client_left != NULL)
                j->ops->client_left(j);
        }
    }
}

static void *
server_main(void *arg)
{
    struct funcmond_http *h = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* SIGTERM is the drain thread's */
    while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
        h2o_evloop_run(h->loop, h->paused ? PAUSE_FREED_MS : SWEEP_MS);
        sweep(h);
    }
    /* Stop listening and let the loop close what it can before the context goes. */
    h2o_socket_read_stop(h->listener);
    h2o_socket_close(h->listener);
    for (int i = 0; i < 3; i++)
        h2o_evloop_run(h->loop, 0);
    return NULL;
}

/* Whether a bound address is reachable from this host only: 127.0.0.0/8, ::1, or
 * 127.0.0.0/8 mapped into IPv6. */
static int
is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family != AF_INET6)
        return 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* "host:port" or "[v6]:port" into a listening socket; *loopback tells whether only this
 * host can reach it. */
static int
listen_on(const char *spec, int *port, int *loopback, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL)
        return snprintf(err, errlen, "HTTP.LISTEN '%.200s': expected host:port", spec), -EINVAL;
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof(host))
        return snprintf(err, errlen, "HTTP.LISTEN '%.200s': host too long", spec), -EINVAL;
    memcpy(host, spec, hl);
    host[hl] = '\0';
    char *hp = host;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        hp = host + 1;
    }
    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(hp, colon + 1, &hints, &ai);
    if (gai != 0)
        return snprintf(err, errlen, "HTTP.LISTEN '%.200s': %s", spec, gai_strerror(gai)), -EINVAL;
    int fd = -1, e = 0;
    for (struct addrinfo *a = ai; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        int one = 1;
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
                        bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 1024) != 0)) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return snprintf(err, errlen, "HTTP.LISTEN '%.200s': %s", spec, strerror(e ? e : EADDRNOTAVAIL)), -(e ? e : EADDRNOTAVAIL);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *loopback = is_loopback(&ss);
    *port =
        ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int
funcmond_http_start(const struct funcmond_config *cfg, struct funcmond_views *views, struct funcmond_requests *requests,
                    struct funcmond_http **out, char *err, size_t errlen)
{
    struct funcmond_http *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return snprintf(err, errlen, "out of memory"), -ENOMEM;
    h->requests = requests;
    h->cfg = cfg;
    if ((h->reader = funcmond_view_reader(views)) == NULL) {
        free(h);
        return snprintf(err, errlen, "out of memory"), -ENOMEM;
    }
    signal(SIGPIPE, SIG_IGN);
    int loopback = 0;
    h->fd = listen_on(cfg->http_listen, &h->port, &loopback, err, errlen);
    if (h->fd < 0) {
        int ret = h->fd;
        free(h);
        return ret;
    }
    h2o_config_init(&h->config);
    /* No endpoint takes a body: refuse any (413) before h2o buffers it. */
    h->config.max_request_entity_size = 4096;
    /* h2o answers cleartext HTTP/2 (the "PRI *" preface and Upgrade: h2c) only through this
     * switch. Its clients speak HTTP/1.1, and the packaged h2o's HTTP/2 code has none of the
     * later fixes (rapid reset and the like): off unless HTTP.HTTP2 asks for it. */
    h->config.http1.upgrade_to_http2 = cfg->http2;
    h2o_hostconf_t *host = h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct handler *handler = (struct handler *)h2o_create_handler(pathconf, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->h = h;
    h->loop = h2o_evloop_create();
    h2o_context_init(&h->ctx, h->loop, &h->config);
    h2o_multithread_register_receiver(h->ctx.queue, &h->receiver, on_messages);
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;
    h2o_linklist_init_anchor(&h->conns);
    struct rlimit nofile;
    rlim_t fds = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY ? nofile.rlim_cur : 1u << 20;
    h->max_conns = fds / 2 > 16 ? (unsigned)(fds / 2) : 16;
    h2o_linklist_init_anchor(&h->watched_jobs);
    h->listener = h2o_evloop_socket_create(h->loop, h->fd, H2O_SOCKET_FLAG_DONT_READ);
    h->listener->data = h;
    h2o_socket_read_start(h->listener, on_accept);
    int ret = pthread_create(&h->thread, NULL, server_main, h);
    if (ret != 0) {
        snprintf(err, errlen, "cannot start the HTTP thread: %s", strerror(ret));
        h2o_socket_close(h->listener);
        free(h);
        return -ret;
    }
    *out = h;
    LOG_INFO("serving HTTP on %s (port %d): %s/*%s%s", cfg->http_listen, h->port,
             cfg->profiling_enabled ? cfg->profiling_path : "(debug endpoints off)", cfg->metrics_enabled ? ", " : "",
             cfg->metrics_enabled ? cfg->metrics_path : "");
    /* The metrics are public by design; the debug endpoints show names, stacks and memory
     * of the services and start CPU profiles and trims: open to a network, say so. */
    if (!loopback && cfg->profiling_enabled && cfg->auth_token[0] == '\0')
        LOG_WARN("HTTP.LISTEN %s is not a loopback address and HTTP.AUTH_TOKEN is empty: anyone who can reach it can "
                 "use %s/*; set HTTP.AUTH_TOKEN",
                 cfg->http_listen, cfg->profiling_path);
    return 0;
}

void
funcmond_http_stop(struct funcmond_http *h)
{
    if (h == NULL)
        return;
    __atomic_store_n(&h->stop, 1, __ATOMIC_RELEASE);
    pthread_join(h->thread, NULL);
    /* The listening socket is closed (by the thread), so a new funcmond can bind at once.
     * The context, the loop and h stay: h2o 2.2.5 asserts when a context is disposed with a
     * connection still open (any idle keep-alive, a scraper's), and a profiling thread may
     * still post its answer to h's queue. The process exits right after. */
}
