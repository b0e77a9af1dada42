/*
 * http.c - the h2o server of funcmond: routing, authentication, errors, encodings, and the
 * REST endpoints of DESIGN §5 (render_prom.c writes /metrics, pprof.c the profiles).
 *
 * The server runs in its own thread on h2o's event loop and reads only what the drain
 * thread publishes (views, under ck_epoch) and /proc; it never waits for the drain loop.
 * Answers that take time (a CPU profile for N seconds, a trim every client must answer)
 * are started from the request, finished on another thread, and handed back to the loop
 * as h2o messages, so no request blocks another. A request whose client went away before
 * its answer was ready is dropped then, never touched after h2o freed it; a CPU profile
 * whose client closed its connection is stopped within a sweep (h2o does not read a
 * connection whose answer is pending, so the socket itself is watched).
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
#define H2O_USE_LIBUV 0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
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

#include "doc.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "pprof.h"
#include "render_prom.h"
#include "request.h"
#include "view.h"

struct funcmond_http {
    struct funcmond_requests *requests;
    const struct funcmond_config *cfg;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_evloop_t *loop;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t receiver; /* answers finished on other threads */
    int fd;
    int port;
    pthread_t thread;
    int stop;
    struct funcmond_reader *reader;
    int cpu_profiles; /* running now: one at a time (HTTP thread only) */
    int trims;        /* POST gc waiting for answers: one at a time (HTTP thread only) */
    /* HTTP thread only from here */
    h2o_linklist_t conns;    /* struct conn, least recently active first */
    h2o_linklist_t cpu_jobs; /* struct job of the CPU profiles running, to see their clients leave */
    int paused;              /* the listener is not read: out of file descriptors */
    uint64_t resume_at_ms;   /* then, when to read it again (loop clock) */
    uint64_t next_sweep_ms;
    uint64_t next_fd_warning_ms;
    uint64_t fd_failures; /* accepts refused for want of a descriptor, since the last warning */
    unsigned n_conns;     /* in conns and not shut down by us */
    unsigned max_conns;   /* half the descriptors funcmond may open: the rest are the drain's */
};

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

#define SWEEP_MS 100          /* how often connections and CPU profiles' clients are looked at */
#define ACCEPTS_PER_WAKEUP 16 /* a backlog drains without starving the other sockets */
#define CLOSE_PER_SHORTAGE 32 /* idle connections closed each time descriptors run out */
#define PAUSE_FREED_MS 10     /* listener pause when connections were closed: until h2o has closed them */
#define PAUSE_NONE_MS 250     /* when none could be: no spinning on a listener that cannot be served */

struct handler {
    h2o_handler_t super;
    struct funcmond_http *h;
};

/* ---- answers ---- */

static int
wants_msgpack(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    return i != -1 && h2o_strstr(req->headers.entries[i].value.base, req->headers.entries[i].value.len,
                                 H2O_STRLIT("application/msgpack")) != SIZE_MAX;
}

static void
send_body(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    /* h2o sends from the request's pool: copy the body there */
    char *copy = h2o_mem_alloc_pool(&req->pool, len ? len : 1);
    memcpy(copy, body, len);
    h2o_send_inline(req, copy, len);
}

static const char *
reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

/* Sends root in the encoding the client asked for. */
static int
send_doc(h2o_req_t *req, int status, const struct fval *root)
{
    struct fbuf b = {0};
    int mp = wants_msgpack(req);
    if (mp)
        fdoc_msgpack(root, &b);
    else
        fdoc_json(root, &b);
    if (b.failed) {
        fbuf_free(&b);
        static const char oom[] = "{\"error\":\"out of memory\",\"status\":500}\n";
        send_body(req, 500, "Internal Server Error", "application/json", oom, sizeof(oom) - 1);
        return 0;
    }
    send_body(req, status, reason_of(status), mp ? "application/msgpack" : "application/json", b.data, b.len);
    fbuf_free(&b);
    return 0;
}

/* {"error": message, "status": status} plus whatever `extra` adds. */
static int
send_error(h2o_req_t *req, int status, const char *message, void (*extra)(struct fdoc *, struct fval *, void *), void *arg)
{
    struct fdoc *doc = fdoc_new();
    struct fval *o = doc ? fdoc_object(doc) : NULL;
    if (o != NULL) {
        fobj_str(doc, o, "error", message);
        fobj_u64(doc, o, "status", (uint64_t)status);
        if (extra != NULL)
            extra(doc, o, arg);
    }
    if (status == 401)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
    send_doc(req, status, o);
    fdoc_free(doc);
    return 0;
}

static int
method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int
not_allowed(h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    char msg[96];
    snprintf(msg, sizeof(msg), "method not allowed here; allowed: %s", allow);
    return send_error(req, 405, msg, NULL, NULL);
}

/* ---- query strings ---- */

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long
funcmond_http_unescape(const char *src, size_t n, char *dst, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hex_value(src[i + 1])) < 0 || (lo = hex_value(src[i + 2])) < 0)
                return -1;
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dst[o++] = plus_is_space && c == '+' ? ' ' : c;
        }
    }
    return (long)o;
}

struct query {
    const char *service;
    const char *package;
    const char *sort;
    long limit;      /* -1: none */
    long min_ms;     /* -1: none */
    long seconds;    /* -1: none */
    long pid;        /* -1: none */
    const char *bad; /* the first problem, for a 400 */
};

static long
parse_number(const char *s, long max)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno != 0 || *end != '\0' || v > max ? -1 : v;
}

/* Parses req's query into q; values live in req's pool. Unknown keys and bad values are
 * reported in q->bad. */
static void
parse_query(h2o_req_t *req, struct query *q)
{
    memset(q, 0, sizeof(*q));
    q->limit = q->min_ms = q->seconds = q->pid = -1;
    if (req->query_at == SIZE_MAX)
        return;
    const char *s = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (s < end && q->bad == NULL) {
        const char *amp = memchr(s, '&', (size_t)(end - s)), *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        const char *kend = eq ? eq : stop, *vbeg = eq ? eq + 1 : stop;
        char *key = h2o_mem_alloc_pool(&req->pool, (size_t)(kend - s) + 1);
        char *val = h2o_mem_alloc_pool(&req->pool, (size_t)(stop - vbeg) + 1);
        long kl = funcmond_http_unescape(s, (size_t)(kend - s), key, 1);
        long vl = funcmond_http_unescape(vbeg, (size_t)(stop - vbeg), val, 1);
        s = stop + 1;
        if (kl < 0 || vl < 0) {
            q->bad = "bad percent-encoding in the query";
            break;
        }
        key[kl] = '\0';
        val[vl] = '\0';
        if (kl == 0)
            continue;
        if (strlen(val) != (size_t)vl) {
            q->bad = "a query value holds a NUL byte";
        } else if (strcmp(key, "service") == 0) {
            q->service = val;
        } else if (strcmp(key, "package") == 0) {
            q->package = val;
        } else if (strcmp(key, "sort") == 0) {
            if (strcmp(val, "avg") && strcmp(val, "total") && strcmp(val, "calls") && strcmp(val, "errors"))
                q->bad = "sort must be avg, total, calls or errors";
            q->sort = val;
        } else if (strcmp(key, "limit") == 0) {
            if ((q->limit = parse_number(val, 1000000)) < 0)
                q->bad = "limit must be a whole number";
        } else if (strcmp(key, "min_ms") == 0) {
            if ((q->min_ms = parse_number(val, 86400000)) < 0)
                q->bad = "min_ms must be a whole number of milliseconds";
        } else if (strcmp(key, "seconds") == 0) {
            if ((q->seconds = parse_number(val, 3600)) <= 0)
                q->bad = "seconds must be a whole number from 1 to 3600";
        } else if (strcmp(key, "pid") == 0) {
            if ((q->pid = parse_number(val, 0x7fffffff)) <= 0)
                q->bad = "pid must be a positive number";
        } else {
            q->bad = "unknown query parameter";
        }
    }
}

/* ---- profiles ---- */

/* What qsort_r compares by: the view the ids index, and the ?sort= key. */
struct sort_ctx {
    const struct funcmond_view *v;
    const char *key;
};

static int
by_name_cmp(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *s = arg;
    const struct funcmond_fn_view *x = &s->v->fns[*(const uint32_t *)a], *y = &s->v->fns[*(const uint32_t *)b];
    int c = strcmp(x->name, y->name);
    if (c == 0)
        c = strcmp(x->service, y->service);
    return c != 0 ? c : strcmp(x->package, y->package);
}

static int
by_sort_cmp(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *s = arg;
    const struct funcmond_fn_view *x = &s->v->fns[*(const uint32_t *)a], *y = &s->v->fns[*(const uint32_t *)b];
    uint64_t vx, vy;
    if (strcmp(s->key, "avg") == 0)
        vx = x->avg_ns, vy = y->avg_ns;
    else if (strcmp(s->key, "total") == 0)
        vx = x->total_ns, vy = y->total_ns;
    else if (strcmp(s->key, "calls") == 0)
        vx = x->calls, vy = y->calls;
    else
        vx = x->errors, vy = y->errors;
    return vx < vy ? 1 : vx > vy ? -1 : strcmp(x->name, y->name);
}

static struct fval *
profile_obj(struct fdoc *doc, const struct funcmond_fn_view *f)
{
    struct fval *o = fdoc_object(doc);
    fobj_str(doc, o, "name", f->name);
    fobj_str(doc, o, "package", f->package);
    fobj_str(doc, o, "service", f->service);
    fobj_u64(doc, o, "call_count", f->calls);
    fobj_u64(doc, o, "error_count", f->errors);
    fobj_duration(doc, o, "total_duration", f->total_ns);
    fobj_duration(doc, o, "max_duration", f->max_ns);
    fobj_duration(doc, o, "min_duration", f->min_ns);
    fobj_duration(doc, o, "avg_duration", f->avg_ns);
    fobj_duration(doc, o, "p50_duration", f->p50_ns);
    fobj_duration(doc, o, "p90_duration", f->p90_ns);
    fobj_duration(doc, o, "p99_duration", f->p99_ns);
    fobj_duration(doc, o, "p999_duration", f->p999_ns);
    fobj_u64(doc, o, "total_memory", f->total_bytes);
    fobj_u64(doc, o, "max_memory", f->max_bytes);
    fobj_time(doc, o, "last_call_time", f->last_real_ns);
    fobj_double(doc, o, "rate_1m", f->rate_1m);
    fobj_double(doc, o, "error_rate_1m", f->error_rate_1m);
    fobj_double(doc, o, "rate_5m", f->rate_5m);
    fobj_double(doc, o, "error_rate_5m", f->error_rate_5m);
    fobj_u64(doc, o, "cancelled_count", f->cancelled);
    fobj_u64(doc, o, "deadline_exceeded_count", f->deadline_exceeded);
    fobj_u64(doc, o, "client_error_count", f->client_errors);
    fobj_u64(doc, o, "inflight", f->inflight);
    return o;
}

static int
matches(const struct funcmond_fn_view *f, const struct query *q)
{
    return (q->service == NULL || strcmp(f->service, q->service) == 0) &&
           (q->package == NULL || strcmp(f->package, q->package) == 0);
}

static int
get_profiles(struct funcmond_http *h, h2o_req_t *req, const struct query *q)
{
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    uint32_t *by_name = malloc((v->n_fns ? v->n_fns : 1) * sizeof(uint32_t)), *order = NULL;
    struct fdoc *doc = fdoc_new();
    int ret;
    if (by_name == NULL || doc == NULL || (order = malloc((v->n_fns ? v->n_fns : 1) * sizeof(uint32_t) * 2)) == NULL) {
        funcmond_view_end(h->reader);
        free(by_name);
        fdoc_free(doc);
        return send_error(req, 500, "out of memory", NULL, NULL);
    }
    /* by_name: the functions asked for, by name, so that keys are unique among them */
    uint32_t n_sel = 0;
    for (uint32_t i = 0; i < v->n_fns; i++)
        if (matches(&v->fns[i], q))
            by_name[n_sel++] = i;
    struct sort_ctx sort = {v, q->sort};
    qsort_r(by_name, n_sel, sizeof(*by_name), by_name_cmp, &sort);
    /* order: positions in by_name, sorted as asked */
    uint32_t n = n_sel;
    for (uint32_t pos = 0; pos < n_sel; pos++)
        order[pos] = pos;
    if (q->sort != NULL) {
        uint32_t *ids = order + v->n_fns; /* sort ids, then map back to positions */
        for (uint32_t i = 0; i < n; i++)
            ids[i] = by_name[order[i]];
        qsort_r(ids, n, sizeof(*ids), by_sort_cmp, &sort);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t pos = 0;
            /* by_name is sorted by (name, service, package): binary search the id's place */
            uint32_t lo = 0, hi = n_sel;
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (by_name_cmp(&by_name[mid], &ids[i], &sort) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            pos = lo;
            order[i] = pos;
        }
    }
    if (q->limit >= 0 && (uint32_t)q->limit < n)
        n = (uint32_t)q->limit;
    /* Keys are unique among the functions asked for (view.h), whatever the limit. */
    char **keys = calloc(n_sel ? n_sel : 1, sizeof(*keys));
    if (keys == NULL || funcmond_view_profile_keys(v, by_name, n_sel, keys) != 0) {
        funcmond_view_end(h->reader);
        free(keys);
        free(by_name);
        free(order);
        fdoc_free(doc);
        return send_error(req, 500, "out of memory", NULL, NULL);
    }
    struct fval *root = fdoc_object(doc), *profiles = fdoc_object(doc);
    for (uint32_t i = 0; i < n; i++)
        fobj_put(doc, profiles, keys[order[i]], profile_obj(doc, &v->fns[by_name[order[i]]]));
    funcmond_view_profile_keys_free(keys, n_sel);
    free(keys);
    fobj_put(doc, root, "profiles", profiles);
    fobj_u64(doc, root, "count", n);
    funcmond_view_end(h->reader);
    ret = send_doc(req, 200, root);
    fdoc_free(doc);
    free(by_name);
    free(order);
    return ret;
}

struct candidates {
    const struct funcmond_view *v;
    const uint32_t *ids;
    uint32_t n;
    const char *name;
};

static void
add_candidates(struct fdoc *doc, struct fval *o, void *arg)
{
    struct candidates *c = arg;
    struct fval *arr = fdoc_array(doc);
    char key[FUNCMON_SERVICE_MAX + FUNCMON_PACKAGE_MAX + FUNCMON_NAME_MAX + 8];
    for (uint32_t i = 0; i < c->n; i++) {
        const struct funcmond_fn_view *f = &c->v->fns[c->ids[i]];
        snprintf(key, sizeof(key), "%s/%s:%s", f->service, f->package, f->name);
        farr_str(doc, arr, key);
    }
    fobj_str(doc, o, "name", c->name);
    fobj_put(doc, o, "candidates", arr);
}

static void
add_name(struct fdoc *doc, struct fval *o, void *arg)
{
    fobj_str(doc, o, "name", arg);
}

static int
get_profile(struct funcmond_http *h, h2o_req_t *req, const char *name, const struct query *q)
{
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    uint32_t ids[16], n = 0;
    for (uint32_t i = 0; i < v->n_fns; i++)
        if (strcmp(v->fns[i].name, name) == 0 && matches(&v->fns[i], q) && n < 16)
            ids[n++] = i;
    int ret;
    if (n == 0) {
        ret = send_error(req, 404, "no profile of that name", add_name, (void *)name);
    } else if (n > 1) {
        struct candidates c = {v, ids, n, name};
        ret = send_error(req, 409, "ambiguous name: choose with ?service= and ?package=", add_candidates, &c);
    } else {
        struct fdoc *doc = fdoc_new();
        ret = send_doc(req, 200, doc ? profile_obj(doc, &v->fns[ids[0]]) : NULL);
        fdoc_free(doc);
    }
    funcmond_view_end(h->reader);
    return ret;
}

/* ---- processes ---- */

static const char *
state_name(enum funcmond_proc_state s)
{
    return s == FUNCMOND_PROC_LIVE ? "running" : s == FUNCMOND_PROC_SHUTDOWN ? "shut down" : "exited";
}

static uint64_t
now_real_ns(void)
{
    return funcmond_real_ns();
}

static struct fval *
process_base(struct fdoc *doc, const struct funcmond_proc_view *p)
{
    struct fval *o = fdoc_object(doc);
    fobj_i64(doc, o, "pid", p->pid);
    fobj_str(doc, o, "service", p->service);
    fobj_str(doc, o, "state", state_name(p->state));
    return o;
}

static struct fval *
alloc_obj(struct fdoc *doc, const struct funcmond_runtime *rt)
{
    struct fval *m = fdoc_object(doc);
    fobj_u64(doc, m, "in_use", rt->alloc.in_use);
    fobj_u64(doc, m, "system", rt->alloc.system);
    fobj_u64(doc, m, "free", rt->alloc.free);
    fobj_u64(doc, m, "releasable", rt->alloc.releasable);
    fobj_u64(doc, m, "mmapped", rt->alloc.mmapped);
    if (rt->have_alloc && rt->totals.alloc_count != 0) {
        fobj_u64(doc, m, "live_objects", rt->totals.alloc_count - rt->totals.free_count);
        fobj_u64(doc, m, "total_allocated", rt->totals.alloc_bytes);
        fobj_u64(doc, m, "total_freed", rt->totals.free_bytes);
    }
    fobj_time(doc, m, "sampled", rt->alloc.sampled_real_ns);
    return m;
}

/* One object per process, built by `fill`: the common shape of stats, memory and
 * processes, {"processes": [...], "count": N}. */
static int
answer_processes(struct funcmond_http *h, h2o_req_t *req,
                 void (*fill)(struct fdoc *doc, struct fval *o, const struct funcmond_view *v, const struct funcmond_proc_view *p))
{
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    for (uint32_t i = 0; i < v->n_procs; i++) {
        struct fval *o = process_base(doc, &v->procs[i]);
        fill(doc, o, v, &v->procs[i]);
        farr_push(doc, arr, o);
    }
    fobj_put(doc, root, "processes", arr);
    fobj_u64(doc, root, "count", v->n_procs);
    funcmond_view_end(h->reader);
    int ret = send_doc(req, 200, root);
    fdoc_free(doc);
    return ret;
}

static void
fill_stats(struct fdoc *doc, struct fval *o, const struct funcmond_view *v, const struct funcmond_proc_view *p)
{
    uint64_t now = now_real_ns();
    double tick = (double)sysconf(_SC_CLK_TCK);
    uint64_t start = p->rt.start_real_ns, end = p->state == FUNCMOND_PROC_LIVE ? now : p->ended_real_ns;
    (void)v;
    fobj_duration(doc, o, "uptime", start != 0 && end > start ? end - start : 0);
    fobj_u64(doc, o, "threads", p->rt.threads);
    fobj_put(doc, o, "memory", alloc_obj(doc, &p->rt));
    fobj_u64(doc, o, "rss", p->rt.rss_bytes);
    fobj_double(doc, o, "cpu_user_seconds", (double)p->rt.utime_ticks / tick);
    fobj_double(doc, o, "cpu_system_seconds", (double)p->rt.stime_ticks / tick);
    fobj_u64(doc, o, "open_fds", p->rt.open_fds);
    fobj_u64(doc, o, "records", p->records);
    fobj_u64(doc, o, "drops", p->dropped);
}

static void
fill_process(struct fdoc *doc, struct fval *o, const struct funcmond_view *v, const struct funcmond_proc_view *p)
{
    (void)v;
    fobj_str(doc, o, "segment", p->segment);
    fobj_u64(doc, o, "rings", p->rings_active);
    fobj_u64(doc, o, "rings_total", p->rings_total);
    fobj_u64(doc, o, "records", p->records);
    fobj_u64(doc, o, "drops", p->dropped);
    fobj_u64(doc, o, "bad_records", p->bad_records);
    fobj_u64(doc, o, "calls_without_ring", p->fallback_calls);
    fobj_time(doc, o, "attached", p->attached_real_ns);
    fobj_time(doc, o, "ended", p->ended_real_ns);
}

/* "Key:   123 kB" lines of a /proc file into an object, values in bytes. */
static void
proc_kb_fields(struct fdoc *doc, struct fval *o, int32_t pid, const char *file, const char *const *keys)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (int i = 0; keys[i] != NULL; i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "\n%s:", keys[i]);
        const char *at = strstr(buf, needle);
        if (at == NULL && strncmp(buf, needle + 1, strlen(needle) - 1) == 0)
            at = buf - 1;
        if (at == NULL)
            continue;
        char lower[64];
        size_t k = 0;
        for (; keys[i][k] != '\0' && k < sizeof(lower) - 1; k++)
            lower[k] = (char)(keys[i][k] >= 'A' && keys[i][k] <= 'Z' ? keys[i][k] + 32 : keys[i][k]);
        lower[k] = '\0';
        fobj_u64(doc, o, lower, strtoull(at + strlen(needle), NULL, 10) * 1024);
    }
}

static void
fill_memory(struct fdoc *doc, struct fval *o, const struct funcmond_view *v, const struct funcmond_proc_view *p)
{
    static const char *const status_keys[] = {"VmPeak",   "VmSize", "VmHWM", "VmRSS",  "RssAnon", "RssFile",
                                              "RssShmem", "VmData", "VmStk", "VmSwap", NULL};
    static const char *const smaps_keys[] = {
        "Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Anonymous", "Swap", NULL};
    fobj_u64(doc, o, "rss", p->rt.rss_bytes);
    fobj_u64(doc, o, "virtual", p->rt.vm_bytes);
    if (p->state == FUNCMOND_PROC_LIVE) {
        struct fval *st = fdoc_object(doc), *sm = fdoc_object(doc);
        proc_kb_fields(doc, st, p->pid, "status", status_keys);
        proc_kb_fields(doc, sm, p->pid, "smaps_rollup", smaps_keys);
        fobj_put(doc, o, "status", st);
        fobj_put(doc, o, "smaps_rollup", sm);
    }
    fobj_put(doc, o, "allocator", alloc_obj(doc, &p->rt));
    /* the service's functions that allocated most */
    uint32_t top[10], n = 0;
    for (uint32_t k = 0; k < v->n_fns; k++) {
        const struct funcmond_fn_view *f = &v->fns[k];
        if (f->total_bytes == 0 || strcmp(f->service, p->service) != 0)
            continue;
        uint32_t at = n < 10 ? n++ : 10;
        while (at > 0 && v->fns[top[at - 1]].total_bytes < f->total_bytes) {
            if (at < 10)
                top[at] = top[at - 1];
            at--;
        }
        if (at < 10)
            top[at] = k;
    }
    struct fval *tops = fdoc_array(doc);
    for (uint32_t k = 0; k < n; k++) {
        struct fval *t = fdoc_object(doc);
        fobj_str(doc, t, "name", v->fns[top[k]].name);
        fobj_str(doc, t, "package", v->fns[top[k]].package);
        fobj_u64(doc, t, "total_memory", v->fns[top[k]].total_bytes);
        fobj_u64(doc, t, "max_memory", v->fns[top[k]].max_bytes);
        fobj_u64(doc, t, "freed_memory", v->fns[top[k]].freed_bytes);
        farr_push(doc, tops, t);
    }
    fobj_put(doc, o, "top_functions", tops);
}

/* ---- threads and calls in flight ---- */

struct task_info {
    int32_t tid;
    char name[64];
    char state;
    double cpu_seconds;
};

/* /proc/<pid>/task/<tid>/stat of every thread of pid; returns how many (at most max). */
static int
read_tasks(int32_t pid, struct task_info *out, int max)
{
    char path[96], buf[1024];
    int n = 0;
    double tick = (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL && n < max;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/stat", (int)pid, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
        if (open_paren == NULL || close_paren == NULL || close_paren < open_paren || close_paren[1] != ' ')
            continue;
        struct task_info *t = &out[n++];
        t->tid = (int32_t)strtol(e->d_name, NULL, 10);
        size_t nl = (size_t)(close_paren - open_paren - 1);
        if (nl >= sizeof(t->name))
            nl = sizeof(t->name) - 1;
        memcpy(t->name, open_paren + 1, nl);
        t->name[nl] = '\0';
        t->state = close_paren[2];
        char *f = close_paren + 3;
        unsigned long long ut = 0, st = 0;
        for (int field = 4; f != NULL && field < 14; field++)
            f = strchr(f + 1, ' ');
        if (f != NULL)
            sscanf(f + 1, "%llu %llu", &ut, &st);
        t->cpu_seconds = (double)(ut + st) / tick;
    }
    closedir(dir);
    return n;
}

static struct fval *
call_obj(struct fdoc *doc, const struct funcmond_view *v, const struct funcmond_call_view *c, uint64_t now)
{
    struct fval *o = fdoc_object(doc);
    if (c->fn < v->n_fns) {
        fobj_str(doc, o, "function", v->fns[c->fn].name);
        fobj_str(doc, o, "package", v->fns[c->fn].package);
    } else {
        fobj_str(doc, o, "function", "<unknown>");
        fobj_str(doc, o, "package", "");
    }
    fobj_u64(doc, o, "depth", c->depth);
    fobj_duration(doc, o, "elapsed", now > c->start_real_ns ? now - c->start_real_ns : 0);
    fobj_time(doc, o, "started", c->start_real_ns);
    return o;
}

static const struct funcmond_thread_view *
ring_thread(const struct funcmond_proc_view *p, int32_t tid)
{
    for (uint32_t i = 0; i < p->n_threads; i++)
        if (p->threads[i].tid == tid)
            return &p->threads[i];
    return NULL;
}

static int
get_threads(struct funcmond_http *h, h2o_req_t *req, int as_text)
{
    static struct task_info tasks[4096];
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    struct fbuf text = {0};
    uint64_t now = now_real_ns();
    uint32_t shown = 0;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        const struct funcmond_proc_view *p = &v->procs[i];
        if (p->state != FUNCMOND_PROC_LIVE)
            continue;
        shown++;
        int n = read_tasks(p->pid, tasks, 4096);
        struct fval *o = process_base(doc, p), *ts = fdoc_array(doc);
        fbuf_printf(&text, "process %d (%s): %d threads\n\n", (int)p->pid, p->service, n);
        for (int k = 0; k < n; k++) {
            struct fval *t = fdoc_object(doc), *calls = fdoc_array(doc);
            const struct funcmond_thread_view *rt = ring_thread(p, tasks[k].tid);
            fobj_i64(doc, t, "tid", tasks[k].tid);
            fobj_str(doc, t, "name", tasks[k].name);
            fobj_strn(doc, t, "state", &tasks[k].state, 1);
            fobj_double(doc, t, "cpu_seconds", tasks[k].cpu_seconds);
            fbuf_printf(&text, "thread %d [%s] %c, %.2f s cpu%s\n", (int)tasks[k].tid, tasks[k].name, tasks[k].state,
                        tasks[k].cpu_seconds, rt != NULL && rt->depth ? ":" : "");
            for (uint32_t c = 0; rt != NULL && c < rt->n_calls; c++) {
                farr_push(doc, calls, call_obj(doc, v, &rt->calls[c], now));
                const struct funcmond_call_view *cv = &rt->calls[rt->n_calls - 1 - c]; /* innermost first, like a stack */
                char el[48];
                fdoc_go_duration(now > cv->start_real_ns ? now - cv->start_real_ns : 0, el, sizeof(el));
                fbuf_printf(&text, "    %s.%s (running %s)\n", cv->fn < v->n_fns ? v->fns[cv->fn].package : "",
                            cv->fn < v->n_fns ? v->fns[cv->fn].name : "<unknown>", el);
            }
            if (rt != NULL && rt->depth > rt->n_calls)
                fbuf_printf(&text, "    ... %u more outer calls\n", rt->depth - rt->n_calls);
            fobj_u64(doc, t, "inflight_depth", rt != NULL ? rt->depth : 0);
            fobj_put(doc, t, "inflight", calls);
            farr_push(doc, ts, t);
        }
        fbuf_printf(&text, "\n");
        fobj_put(doc, o, "threads", ts);
        fobj_u64(doc, o, "count", (uint64_t)n);
        farr_push(doc, arr, o);
    }
    fobj_put(doc, root, "processes", arr);
    fobj_u64(doc, root, "count", shown);
    funcmond_view_end(h->reader);
    int ret;
    if (as_text)
        send_body(req, 200, "OK", "text/plain; charset=utf-8", text.data ? text.data : "", text.len);
    else
        send_doc(req, 200, root);
    ret = 0;
    fbuf_free(&text);
    fdoc_free(doc);
    return ret;
}

static int
get_inflight(struct funcmond_http *h, h2o_req_t *req, const struct query *q)
{
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    uint64_t now = now_real_ns(), min_ns = q->min_ms > 0 ? (uint64_t)q->min_ms * 1000000u : 0, n = 0;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        const struct funcmond_proc_view *p = &v->procs[i];
        for (uint32_t t = 0; p->state == FUNCMOND_PROC_LIVE && t < p->n_threads; t++) {
            const struct funcmond_thread_view *th = &p->threads[t];
            for (uint32_t c = 0; c < th->n_calls; c++) {
                uint64_t elapsed = now > th->calls[c].start_real_ns ? now - th->calls[c].start_real_ns : 0;
                if (elapsed < min_ns)
                    continue;
                struct fval *o = call_obj(doc, v, &th->calls[c], now);
                fobj_i64(doc, o, "pid", p->pid);
                fobj_str(doc, o, "service", p->service);
                fobj_i64(doc, o, "tid", th->tid);
                fobj_str(doc, o, "thread", th->name);
                farr_push(doc, arr, o);
                n++;
            }
        }
    }
    fobj_put(doc, root, "calls", arr);
    fobj_u64(doc, root, "count", n);
    fobj_u64(doc, root, "min_ms", q->min_ms > 0 ? (uint64_t)q->min_ms : 0);
    funcmond_view_end(h->reader);
    int ret = send_doc(req, 200, root);
    fdoc_free(doc);
    return ret;
}

/* ---- answers finished elsewhere: trim (POST gc) and CPU profiles ---- */

enum job_kind { JOB_TRIM, JOB_CPU };

struct job {
    h2o_multithread_message_t msg; /* first: the receiver gets &job->msg */
    struct funcmond_http *h;
    enum job_kind kind;
    h2o_req_t *req;
    int refs;     /* the request's and the finisher's; both dropped on the HTTP thread */
    int orphaned; /* the client went away: nobody to answer */
    int cancel;   /* read by the profiling thread */
    int msgpack;
    /* CPU profile */
    h2o_linklist_t running; /* in h->cpu_jobs until finished */
    int fd;                 /* the client's socket, watched for its closing; -1 if unknown */
    int client_left;        /* seen closed while the profile ran */
    int32_t pid;
    int seconds;
    int status;
    char err[256];
    unsigned char *body;
    size_t len;
    /* trim */
    struct funcmond_trim_job trim;
};

static void
job_unref(struct job *j)
{
    if (--j->refs == 0) {
        free(j->body);
        free(j);
    }
}

/* The finisher's side is done (answered or not): the job no longer holds its slot. */
static void
job_finished(struct job *j)
{
    if (j->kind == JOB_CPU) {
        j->h->cpu_profiles--;
        if (h2o_linklist_is_linked(&j->running))
            h2o_linklist_unlink(&j->running);
    } else {
        j->h->trims--;
    }
}

/* The request's pool is being freed (answered, or the client is gone). */
static void
on_req_disposed(void *p)
{
    struct job *j = *(struct job **)p;
    j->orphaned = 1;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
    job_unref(j);
}

static struct job *
job_new(struct funcmond_http *h, h2o_req_t *req, enum job_kind kind)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->h = h;
    j->kind = kind;
    j->req = req;
    j->refs = 2;
    j->msgpack = wants_msgpack(req);
    struct job **ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_req_disposed);
    *ref = j;
    return j;
}

static void
on_trim_finished(struct funcmond_trim_job *tj)
{
    struct job *j = tj->arg;
    h2o_multithread_send_message(&j->h->receiver, &j->msg); /* to the HTTP thread */
}

static void
stats_obj(struct fdoc *doc, struct fval *o, const char *key, const struct funcmon_alloc_stats *s)
{
    struct fval *m = fdoc_object(doc);
    fobj_u64(doc, m, "rss", s->rss);
    fobj_u64(doc, m, "system", s->system);
    fobj_u64(doc, m, "in_use", s->in_use);
    fobj_u64(doc, m, "free", s->free);
    fobj_u64(doc, m, "releasable", s->releasable);
    fobj_put(doc, o, key, m);
}

static void
answer_trim(struct job *j)
{
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    int64_t before = 0, after = 0;
    uint32_t ok = 0;
    for (uint32_t i = 0; i < j->trim.n; i++) {
        const struct funcmond_trim_result *r = &j->trim.results[i];
        struct fval *o = fdoc_object(doc);
        fobj_i64(doc, o, "pid", r->pid);
        fobj_str(doc, o, "service", r->service);
        if (r->status == 0) {
            ok++;
            fobj_str(doc, o, "status", "trimmed");
            stats_obj(doc, o, "before", &r->before);
            stats_obj(doc, o, "after", &r->after);
            /* signed: memory can grow between the two samples */
            int64_t freed = (int64_t)r->before.rss - (int64_t)r->after.rss;
            fobj_i64(doc, o, "freed", freed);
            before += (int64_t)r->before.rss;
            after += (int64_t)r->after.rss;
        } else {
            fobj_str(doc, o, "status", r->status == -ETIMEDOUT ? "no answer within 1 s" : strerror(-r->status));
        }
        farr_push(doc, arr, o);
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "asked %u process(es) to release free memory (malloc_trim); %u answered", j->trim.n, ok);
    fobj_str(doc, root, "message", msg);
    fobj_i64(doc, root, "before", before);
    fobj_i64(doc, root, "after", after);
    fobj_i64(doc, root, "freed", before - after);
    fobj_put(doc, root, "processes", arr);
    fobj_u64(doc, root, "count", j->trim.n);
    send_doc(j->req, 200, root);
    fdoc_free(doc);
}

static void *
cpu_thread(void *arg)
{
    struct job *j = arg;
    j->status = funcmond_pprof_cpu(j->pid, j->seconds, 99, &j->cancel, &j->body, &j->len, j->err, sizeof(j->err));
    h2o_multithread_send_message(&j->h->receiver, &j->msg);
    return NULL;
}

static void
on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct job *j = H2O_STRUCT_FROM_MEMBER(struct job, msg.link, messages->next);
        h2o_linklist_unlink(&j->msg.link);
        job_finished(j);
        if (!j->orphaned) {
            if (j->kind == JOB_TRIM) {
                answer_trim(j);
            } else if (j->client_left) {
                /* Nobody reads it: writing makes h2o see the closed socket and free the
                 * connection, which it does not notice while a response is pending. */
                send_error(j->req, 503, "the client went away", NULL, NULL);
            } else if (j->status != 0) {
                send_error(j->req, j->status == -ESRCH ? 404 : 503, j->err, NULL, NULL);
            } else {
                h2o_add_header(&j->req->pool, &j->req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL,
                               H2O_STRLIT("attachment; filename=\"profile.pb.gz\""));
                send_body(j->req, 200, "OK", "application/octet-stream", (const char *)j->body, j->len);
            }
        }
        job_unref(j);
    }
}

static int
post_gc(struct funcmond_http *h, h2o_req_t *req)
{
    if (h->trims > 0) /* a client that does not answer holds a trim for a second: no pile-up */
        return send_error(req, 503, "a trim is already in progress; try again in a second", NULL, NULL);
    struct job *j = job_new(h, req, JOB_TRIM);
    if (j == NULL)
        return send_error(req, 500, "out of memory", NULL, NULL);
    j->trim.done = on_trim_finished;
    j->trim.arg = j;
    if (funcmond_request_trim(h->requests, &j->trim) != 0) {
        j->refs--; /* the finisher's: it will never run */
        return send_error(req, 503, "the sidecar is stopping", NULL, NULL);
    }
    h->trims++;
    return 0;
}

/* The one live process a profile is about: ?pid=, or the only one attached. */
static int
pick_process(struct funcmond_http *h, const struct query *q, int32_t *pid, char *err, size_t errlen)
{
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    uint32_t live = 0;
    int found = 0;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        if (v->procs[i].state != FUNCMOND_PROC_LIVE)
            continue;
        live++;
        if (q->pid > 0 && v->procs[i].pid == q->pid)
            found = 1;
        if (q->pid <= 0)
            *pid = v->procs[i].pid;
    }
    funcmond_view_end(h->reader);
    if (q->pid > 0) {
        if (!found)
            return snprintf(err, errlen, "no attached process with pid %ld", q->pid), 404;
        *pid = (int32_t)q->pid;
        return 0;
    }
    if (live == 0)
        return snprintf(err, errlen, "no attached process to profile"), 503;
    if (live > 1)
        return snprintf(err, errlen, "%u processes are attached: choose one with ?pid=", live), 400;
    return 0;
}

static int
get_cpu_profile(struct funcmond_http *h, h2o_req_t *req, const struct query *q)
{
    char err[128];
    int32_t pid = 0;
    /* One at a time: each holds a perf event and a ring per thread of its target. */
    if (h->cpu_profiles > 0)
        return send_error(req, 503, "a CPU profile is already being taken; try again when it is done", NULL, NULL);
    int status = pick_process(h, q, &pid, err, sizeof(err));
    if (status != 0)
        return send_error(req, status, err, NULL, NULL);
    struct job *j = job_new(h, req, JOB_CPU);
    if (j == NULL)
        return send_error(req, 500, "out of memory", NULL, NULL);
    j->pid = pid;
    j->seconds = q->seconds > 0 ? (int)q->seconds : (int)h->cfg->cpu_profile_duration_s;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int ret = pthread_create(&t, &attr, cpu_thread, j);
    pthread_attr_destroy(&attr);
    if (ret != 0) {
        j->refs--;
        return send_error(req, 503, "cannot start a profiling thread", NULL, NULL);
    }
    h->cpu_profiles++;
    /* h2o does not read a connection while its response is pending, so it would not see
     * the client leave before the profile ends (up to an hour): the sweep watches the
     * socket instead. */
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    j->fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
    h2o_linklist_insert(&h->cpu_jobs, &j->running);
    return 0;
}

/* One sample of the heap profile being built: a stack's frames as "package.name", innermost
 * first, then "service <name>" at the root. */
struct heap_ctx {
    struct funcmond_pprof *p;
    const struct funcmond_view *v;
    const char *service;
    char names[FUNCMOND_STACK_DEPTH_MAX + 2][FUNCMON_PACKAGE_MAX + FUNCMON_NAME_MAX + FUNCMON_SERVICE_MAX + 16];
};

static void
add_heap_sample(void *arg, const struct funcmond_stack_sample *s)
{
    struct heap_ctx *x = arg;
    const char *frames[FUNCMOND_STACK_DEPTH_MAX + 2];
    int n = 0;
    for (int i = 0; i < s->n_frames; i++) {
        uint32_t fn = s->frames[i];
        if (fn < x->v->n_fns)
            snprintf(x->names[n], sizeof(x->names[n]), "%s.%s", x->v->fns[fn].package, x->v->fns[fn].name);
        else
            snprintf(x->names[n], sizeof(x->names[n]), "<unknown function>");
        frames[n] = x->names[n];
        n++;
    }
    if (s->truncated) {
        snprintf(x->names[n], sizeof(x->names[n]), "%s", s->n_frames == 0 ? "<other stacks>" : "<callers not known yet>");
        frames[n] = x->names[n];
        n++;
    }
    snprintf(x->names[n], sizeof(x->names[n]), "service %s", x->service);
    frames[n] = x->names[n];
    n++;
    int64_t values[] = {(int64_t)s->alloc_count, (int64_t)s->alloc_bytes,
                        s->alloc_bytes > s->free_bytes ? (int64_t)(s->alloc_bytes - s->free_bytes) : 0};
    funcmond_pprof_add(x->p, frames, n, values);
}

/* Allocations per profiled-call stack of every attached process (live, or exited and still
 * listed), as a pprof heap profile: alloc_objects/alloc_space (what each stack allocated
 * itself during its calls) and inuse_space (allocated less freed). */
static int
get_heap_profile(struct funcmond_http *h, h2o_req_t *req)
{
    static const char *const types[] = {"alloc_objects", "alloc_space", "inuse_space"};
    static const char *const units[] = {"count", "bytes", "bytes"};
    struct heap_ctx *x = malloc(sizeof(*x));
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct funcmond_pprof *p = x != NULL ? funcmond_pprof_new(types, units, 3, "space", "bytes", 0) : NULL;
    int failed = p == NULL;
    for (uint32_t i = 0; !failed && i < v->n_procs; i++) {
        x->p = p;
        x->v = v;
        x->service = v->procs[i].service;
        failed = funcmond_stacks_walk(v->procs[i].stacks, v->procs[i].n_stacks, add_heap_sample, x) != 0;
    }
    uint64_t now = now_real_ns(), start = v->start_real_ns;
    funcmond_view_end(h->reader);
    free(x);
    unsigned char *gz = NULL;
    size_t len = 0;
    if (failed || funcmond_pprof_finish(p, (int64_t)now, (int64_t)(now - start), &gz, &len) != 0) {
        if (p != NULL && failed)
            funcmond_pprof_free(p);
        return send_error(req, 500, failed ? "out of memory" : "cannot encode the profile", NULL, NULL);
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL,
                   H2O_STRLIT("attachment; filename=\"heap.pb.gz\""));
    send_body(req, 200, "OK", "application/octet-stream", (const char *)gz, len);
    free(gz);
    return 0;
}

static int
get_pprof_index(struct funcmond_http *h, h2o_req_t *req)
{
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    char path[256];
    struct fval *o = fdoc_object(doc);
    fobj_str(doc, o, "name", "profile");
    snprintf(path, sizeof(path), "%s/pprof/profile?seconds=%u", h->cfg->profiling_path, h->cfg->cpu_profile_duration_s);
    fobj_str(doc, o, "path", path);
    fobj_str(doc, o, "description", "CPU profile of the attached process (perf cpu-clock sampling, call chains); ?seconds=, ?pid=");
    farr_push(doc, arr, o);
    o = fdoc_object(doc);
    fobj_str(doc, o, "name", "heap");
    snprintf(path, sizeof(path), "%s/pprof/heap", h->cfg->profiling_path);
    fobj_str(doc, o, "path", path);
    fobj_str(doc, o, "description", "bytes and blocks allocated per profiled function (allocation tracking)");
    farr_push(doc, arr, o);
    fobj_put(doc, root, "profiles", arr);
    fobj_u64(doc, root, "count", 2);
    int ret = send_doc(req, 200, root);
    fdoc_free(doc);
    return ret;
}

static int
get_metrics(struct funcmond_http *h, h2o_req_t *req)
{
    char *out = NULL;
    size_t len = 0;
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    int ret = funcmond_render_prom(v, &out, &len);
    funcmond_view_end(h->reader);
    if (ret != 0)
        return send_error(req, 500, "out of memory", NULL, NULL);
    send_body(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out, len);
    free(out);
    return 0;
}

/* ---- routing ---- */

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

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct funcmond_http *h = ((struct handler *)self)->h;
    const struct funcmond_config *cfg = h->cfg;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *path = req->path.base;
    struct query q;

    if (cfg->metrics_enabled && h2o_memis(path, plen, cfg->metrics_path, strlen(cfg->metrics_path))) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            return not_allowed(req, "GET, HEAD");
        return get_metrics(h, req);
    }
    size_t base = strcmp(cfg->profiling_path, "/") == 0 ? 0 : strlen(cfg->profiling_path);
    if (!cfg->profiling_enabled || plen <= base || memcmp(path, cfg->profiling_path, base) != 0 || path[base] != '/')
        return send_error(req, 404, "no such endpoint", NULL, NULL);
    if (!authorised(h, req))
        return send_error(req, 401, "missing or wrong bearer token", NULL, NULL);
    const char *sub = path + base + 1;
    size_t slen = plen - base - 1;
    parse_query(req, &q);
    if (q.bad != NULL)
        return send_error(req, 400, q.bad, NULL, NULL);
#define IS(s) h2o_memis(sub, slen, H2O_STRLIT(s))
    int post = IS("gc");
    if (post ? !method_is(req, "POST") : !method_is(req, "GET") && !method_is(req, "HEAD"))
        return not_allowed(req, post ? "POST" : "GET, HEAD");
    if (IS("profiles"))
        return get_profiles(h, req, &q);
    if (slen > 9 && memcmp(sub, "profiles/", 9) == 0) {
        char *name = h2o_mem_alloc_pool(&req->pool, slen - 9 + 1);
        long nl = funcmond_http_unescape(sub + 9, slen - 9, name, 0);
        if (nl < 0)
            return send_error(req, 400, "bad percent-encoding in the name", NULL, NULL);
        name[nl] = '\0';
        if ((size_t)nl != strlen(name) || nl > FUNCMON_NAME_MAX)
            return send_error(req, 404, "no profile of that name", NULL, NULL);
        return get_profile(h, req, name, &q);
    }
    if (IS("stats"))
        return answer_processes(h, req, fill_stats);
    if (IS("memory"))
        return answer_processes(h, req, fill_memory);
    if (IS("threads"))
        return get_threads(h, req, 0);
    if (IS("goroutines"))
        return get_threads(h, req, 1);
    if (IS("inflight"))
        return get_inflight(h, req, &q);
    if (IS("processes"))
        return answer_processes(h, req, fill_process);
    if (IS("gc"))
        return post_gc(h, req);
    if (IS("pprof") || IS("pprof/"))
        return get_pprof_index(h, req);
    if (IS("pprof/profile"))
        return get_cpu_profile(h, req, &q);
    if (IS("pprof/heap"))
        return get_heap_profile(h, req);
#undef IS
    return send_error(req, 404, "no such endpoint", NULL, NULL);
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

/* Whether a running CPU profile answers on this descriptor: its connection is not idle. */
static int
serves_cpu_profile(struct funcmond_http *h, int fd)
{
    for (h2o_linklist_t *l = h->cpu_jobs.next; l != &h->cpu_jobs; l = l->next) {
        const struct job *j = H2O_STRUCT_FROM_MEMBER(struct job, running, l);
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
        if (c->shut || serves_cpu_profile(h, c->fd))
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
 * list (the head is then the one idle longest); a CPU profile whose client closed its
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
    for (h2o_linklist_t *l = h->cpu_jobs.next; l != &h->cpu_jobs; l = l->next) {
        struct job *j = H2O_STRUCT_FROM_MEMBER(struct job, running, l);
        if (j->orphaned || j->client_left || j->fd < 0)
            continue;
        /* The peer's FIN (POLLRDHUP) or a reset; pipelined bytes (POLLIN alone) are not a leave. */
        struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            j->client_left = 1;
            __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
            LOG_INFO("CPU profile of pid %d: its client went away; stopping it", (int)j->pid);
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
    h2o_linklist_init_anchor(&h->cpu_jobs);
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

int
funcmond_http_port(const struct funcmond_http *h)
{
    return h->port;
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
