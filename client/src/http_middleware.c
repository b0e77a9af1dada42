/*
 * http_middleware.c - names and records a profile per HTTP request (see funcmon_http.h).
 *
 * The work per request is to find the request's name and its site id. Both come from
 * tables that are read without locks, because every request of every server thread goes
 * through them: the routes are fixed before the first request; each route keeps the site
 * id of each method, filled on first use; the names of unmatched raw paths live in an
 * open-addressing table whose entries are published with a release store and never move.
 * Locks are taken only to add something (a non-standard method, a raw-path name), and the
 * number of such additions is bounded, so no client can grow memory or the site table
 * without limit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funcmon_http.h"

#define DEFAULT_MAX_UNMATCHED 100u
/* Longest method kept in a name; longer ones are OTHER. With FUNCMON_HTTP_ROUTE_MAX and the
 * '_' a name always fits in FUNCMON_NAME_MAX, so funcmon_site never truncates it. */
#define METHOD_MAX 24
/* Non-standard methods (WebDAV's PROPFIND, ...) given names of their own; later ones are OTHER. */
#define EXTRA_METHODS 16
#define KNOWN_METHODS 9
#define METHOD_OTHER (KNOWN_METHODS + EXTRA_METHODS)
#define METHOD_SLOTS (METHOD_OTHER + 1)
/* Paths with more segments match no route (they are named by their raw path, if that fits). */
#define PATH_SEGMENTS_MAX 64
/* Paths up to this length are copied on the stack for fnmatch. */
#define SKIP_PATH_STACK 512

_Static_assert(METHOD_MAX + 1 + FUNCMON_HTTP_ROUTE_MAX <= FUNCMON_NAME_MAX, "a route name fits in a site name");

static const char *const known_methods[KNOWN_METHODS] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                         "CONNECT", "OPTIONS", "TRACE", "PATCH"};

enum segment_kind {
    SEGMENT_REST = 0,    /* "*": one or more segments to the end */
    SEGMENT_PARAM = 1,   /* ":name": one non-empty segment */
    SEGMENT_LITERAL = 2, /* itself */
};

struct segment {
    enum segment_kind kind;
    uint32_t offset; /* of a literal, in the route's template */
    uint32_t len;
};

struct route {
    char tmpl[FUNCMON_HTTP_ROUTE_MAX + 1];
    uint32_t nsegments;
    struct segment segments[FUNCMON_HTTP_ROUTE_MAX]; /* one per '/', at most */
    uint32_t sites[METHOD_SLOTS];                    /* 0 until the name is interned; then written once */
};

struct raw_name {
    uint32_t site; /* 0: empty; stored with release once the rest is written */
    uint32_t hash;
    uint32_t len;
    char name[FUNCMON_NAME_MAX + 1];
};

struct funcmon_http {
    struct route *routes;
    uint32_t nroutes;
    int serving; /* a request has begun: routes are fixed; set under lock, read with acquire */
    pthread_mutex_t lock;

    char *skip_text; /* the globs, NUL-separated */
    char **skip;
    size_t nskip;

    char extra_methods[EXTRA_METHODS][METHOD_MAX + 1];
    uint32_t nextra; /* written under lock with release */

    uint32_t max_unmatched;
    uint32_t nraw; /* raw-path names handed out; under lock */
    struct raw_name *raw;
    uint32_t raw_mask;
    uint32_t unmatched_sites[METHOD_SLOTS];
};

/* RFC 9110 token characters. */
static int
is_tchar(unsigned char ch)
{
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int
is_printable(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

static uint32_t
hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int
parse_skip(struct funcmon_http *http, const char *text)
{
    size_t len = strlen(text), n = 0;
    if ((http->skip_text = malloc(len + 1)) == NULL)
        return -1;
    memcpy(http->skip_text, text, len + 1);
    for (size_t i = 0; i <= len; i++)
        n += text[i] == ';' || text[i] == '\0';
    if ((http->skip = calloc(n, sizeof(*http->skip))) == NULL)
        return -1;
    for (char *p = http->skip_text, *end; p != NULL; p = end) {
        if ((end = strchr(p, ';')) != NULL)
            *end++ = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        size_t plen = strlen(p);
        while (plen > 0 && (p[plen - 1] == ' ' || p[plen - 1] == '\t'))
            p[--plen] = '\0';
        if (plen != 0)
            http->skip[http->nskip++] = p;
    }
    return 0;
}

FUNCMON_API struct funcmon_http *
funcmon_http_new(const struct funcmon_http_options *opts)
{
    const char *skip = opts != NULL ? opts->skip_paths : NULL;
    unsigned max_unmatched = opts != NULL && opts->max_unmatched != 0 ? opts->max_unmatched : DEFAULT_MAX_UNMATCHED;
    struct funcmon_http *http;

    if (max_unmatched > FUNCMON_HTTP_UNMATCHED_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (skip == NULL)
        skip = getenv("FUNCMON_SKIP_PATHS");
    if ((http = calloc(1, sizeof(*http))) == NULL)
        return NULL;
    pthread_mutex_init(&http->lock, NULL);
    http->max_unmatched = max_unmatched;
    /* At most half full, so a probe for a missing name ends soon. */
    uint32_t cap = 16;
    while (cap < 2 * max_unmatched)
        cap *= 2;
    http->raw_mask = cap - 1;
    if ((http->raw = calloc(cap, sizeof(*http->raw))) == NULL || (skip != NULL && parse_skip(http, skip) != 0)) {
        funcmon_http_free(http);
        errno = ENOMEM;
        return NULL;
    }
    return http;
}

FUNCMON_API void
funcmon_http_free(struct funcmon_http *http)
{
    if (http == NULL)
        return;
    pthread_mutex_destroy(&http->lock);
    free(http->routes);
    free(http->skip);
    free(http->skip_text);
    free(http->raw);
    free(http);
}

/* Splits a template into segments. Returns 0 or -EINVAL. */
static int
parse_template(struct route *r, const char *tmpl)
{
    size_t len = strlen(tmpl);
    if (len == 0 || len > FUNCMON_HTTP_ROUTE_MAX || tmpl[0] != '/')
        return -EINVAL;
    memcpy(r->tmpl, tmpl, len + 1);
    r->nsegments = 0;
    for (size_t pos = 1;;) {
        const char *slash = memchr(tmpl + pos, '/', len - pos);
        size_t end = slash != NULL ? (size_t)(slash - tmpl) : len;
        if (r->nsegments == FUNCMON_HTTP_ROUTE_MAX)
            return -EINVAL;
        struct segment *s = &r->segments[r->nsegments++];
        const char *seg = tmpl + pos;
        size_t seg_len = end - pos;
        for (size_t i = 0; i < seg_len; i++)
            if (!is_printable((unsigned char)seg[i]) || seg[i] == '?' || seg[i] == '#')
                return -EINVAL;
        if (seg_len == 1 && seg[0] == '*') {
            if (slash != NULL)
                return -EINVAL; /* "*" only at the end */
            s->kind = SEGMENT_REST;
        } else if (seg_len >= 1 && seg[0] == ':') {
            if (seg_len == 1)
                return -EINVAL;
            s->kind = SEGMENT_PARAM;
        } else {
            if (memchr(seg, '*', seg_len) != NULL)
                return -EINVAL;
            s->kind = SEGMENT_LITERAL;
        }
        s->offset = (uint32_t)pos;
        s->len = (uint32_t)seg_len;
        if (slash == NULL)
            break;
        pos = end + 1;
    }
    return 0;
}

FUNCMON_API int
funcmon_http_route(struct funcmon_http *http, const char *tmpl)
{
    struct route r;
    int ret = 0;

    if (http == NULL || tmpl == NULL) {
        errno = EINVAL;
        return -1;
    }
    memset(&r, 0, sizeof(r));
    if (parse_template(&r, tmpl) != 0) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&http->lock);
    if (http->serving) {
        ret = EBUSY;
        goto out;
    }
    for (uint32_t i = 0; i < http->nroutes; i++)
        if (strcmp(http->routes[i].tmpl, r.tmpl) == 0)
            goto out;
    struct route *grown = realloc(http->routes, (http->nroutes + 1) * sizeof(*grown));
    if (grown == NULL) {
        ret = ENOMEM;
        goto out;
    }
    http->routes = grown;
    http->routes[http->nroutes++] = r;
out:
    pthread_mutex_unlock(&http->lock);
    if (ret != 0) {
        errno = ret;
        return -1;
    }
    return 0;
}

/* The slot of a method: a standard one, one of the first EXTRA_METHODS others, or OTHER. */
static unsigned
method_slot(struct funcmon_http *http, const char *method, size_t len)
{
    if (method == NULL || len == 0 || len > METHOD_MAX)
        return METHOD_OTHER;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)method[i]))
            return METHOD_OTHER;
    for (unsigned i = 0; i < KNOWN_METHODS; i++)
        if (strncmp(known_methods[i], method, len) == 0 && known_methods[i][len] == '\0')
            return i;
    /* Pairs with the release store below: entries below the count are complete. */
    uint32_t n = __atomic_load_n(&http->nextra, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(http->extra_methods[i], method, len) == 0 && http->extra_methods[i][len] == '\0')
            return KNOWN_METHODS + i;
    unsigned slot = METHOD_OTHER;
    pthread_mutex_lock(&http->lock);
    n = http->nextra;
    for (uint32_t i = 0; i < n && slot == METHOD_OTHER; i++)
        if (strncmp(http->extra_methods[i], method, len) == 0 && http->extra_methods[i][len] == '\0')
            slot = KNOWN_METHODS + i;
    if (slot == METHOD_OTHER && n < EXTRA_METHODS) {
        memcpy(http->extra_methods[n], method, len);
        http->extra_methods[n][len] = '\0';
        __atomic_store_n(&http->nextra, n + 1, __ATOMIC_RELEASE);
        slot = KNOWN_METHODS + n;
    }
    pthread_mutex_unlock(&http->lock);
    return slot;
}

/* The name of a method slot; extra slots are complete once handed out. */
static const char *
method_name(const struct funcmon_http *http, unsigned slot)
{
    if (slot < KNOWN_METHODS)
        return known_methods[slot];
    if (slot < METHOD_OTHER)
        return http->extra_methods[slot - KNOWN_METHODS];
    return "OTHER";
}

/* A site id cached in *cache, interned from "<method>_<rest>" on first use. Racing threads
 * intern the same name and so store the same id. */
static uint32_t
cached_site(uint32_t *cache, const char *method, const char *rest)
{
    uint32_t site = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (site != 0)
        return site;
    char name[FUNCMON_NAME_MAX + 1];
    size_t mlen = strlen(method);
    memcpy(name, method, mlen);
    name[mlen] = '_';
    snprintf(name + mlen + 1, sizeof(name) - mlen - 1, "%s", rest);
    site = funcmon_site(name, FUNCMON_HTTP_PACKAGE);
    __atomic_store_n(cache, site, __ATOMIC_RELAXED);
    return site;
}

struct path_segments {
    uint32_t n;
    struct {
        uint32_t offset, len;
    } s[PATH_SEGMENTS_MAX];
};

/* Splits an absolute path into segments; 0 when it has too many or is not absolute. */
static int
split_path(const char *path, size_t len, struct path_segments *ps)
{
    if (len == 0 || path[0] != '/')
        return 0;
    ps->n = 0;
    for (size_t pos = 1;;) {
        const char *slash = memchr(path + pos, '/', len - pos);
        size_t end = slash != NULL ? (size_t)(slash - path) : len;
        if (ps->n == PATH_SEGMENTS_MAX)
            return 0;
        ps->s[ps->n].offset = (uint32_t)pos;
        ps->s[ps->n].len = (uint32_t)(end - pos);
        ps->n++;
        if (slash == NULL)
            return 1;
        pos = end + 1;
    }
}

static int
route_matches(const struct route *r, const char *path, const struct path_segments *ps)
{
    for (uint32_t i = 0; i < r->nsegments; i++) {
        const struct segment *seg = &r->segments[i];
        if (seg->kind == SEGMENT_REST)
            return i < ps->n; /* one or more segments left */
        if (i >= ps->n)
            return 0;
        if (seg->kind == SEGMENT_PARAM) {
            if (ps->s[i].len == 0)
                return 0;
        } else if (seg->len != ps->s[i].len || memcmp(r->tmpl + seg->offset, path + ps->s[i].offset, seg->len) != 0) {
            return 0;
        }
    }
    return r->nsegments == ps->n;
}

/* 1 when route a is more specific than b: at the first segment where their kinds differ, a's
 * is the more specific. */
static int
more_specific(const struct route *a, const struct route *b)
{
    for (uint32_t i = 0; i < a->nsegments && i < b->nsegments; i++)
        if (a->segments[i].kind != b->segments[i].kind)
            return a->segments[i].kind > b->segments[i].kind;
    return a->nsegments > b->nsegments;
}

static struct route *
match_route(struct funcmon_http *http, const char *path, size_t len)
{
    struct path_segments ps;
    struct route *best = NULL;

    if (http->nroutes == 0 || !split_path(path, len, &ps))
        return NULL;
    for (uint32_t i = 0; i < http->nroutes; i++) {
        struct route *r = &http->routes[i];
        if (route_matches(r, path, &ps) && (best == NULL || more_specific(r, best)))
            best = r;
    }
    return best;
}

/* The site of "<method>_<raw path>", or of "<method>_<unmatched>" when the path cannot be a
 * name or the cap on raw names is reached. */
static uint32_t
raw_site(struct funcmon_http *http, unsigned slot, const char *path, size_t path_len)
{
    const char *method = method_name(http, slot);
    size_t mlen = strlen(method);
    char name[FUNCMON_NAME_MAX + 1];

    if (path_len == 0 || mlen + 1 + path_len > FUNCMON_NAME_MAX)
        goto unmatched;
    for (size_t i = 0; i < path_len; i++)
        if (!is_printable((unsigned char)path[i]))
            goto unmatched;
    memcpy(name, method, mlen);
    name[mlen] = '_';
    memcpy(name + mlen + 1, path, path_len);
    size_t len = mlen + 1 + path_len;
    name[len] = '\0';
    uint32_t hash = hash_bytes(name, len);

    /* Lock-free lookup: an entry is complete once its site is seen (acquire). */
    for (uint32_t i = hash & http->raw_mask;; i = (i + 1) & http->raw_mask) {
        struct raw_name *e = &http->raw[i];
        uint32_t site = __atomic_load_n(&e->site, __ATOMIC_ACQUIRE);
        if (site == 0)
            break;
        if (e->hash == hash && e->len == len && memcmp(e->name, name, len) == 0)
            return site;
    }
    uint32_t site = 0;
    pthread_mutex_lock(&http->lock);
    uint32_t i = hash & http->raw_mask;
    for (;; i = (i + 1) & http->raw_mask) {
        struct raw_name *e = &http->raw[i];
        if (e->site == 0)
            break;
        if (e->hash == hash && e->len == len && memcmp(e->name, name, len) == 0) {
            site = e->site;
            break;
        }
    }
    if (site == 0 && http->nraw < http->max_unmatched) {
        struct raw_name *e = &http->raw[i];
        e->hash = hash;
        e->len = (uint32_t)len;
        memcpy(e->name, name, len + 1);
        site = funcmon_site(name, FUNCMON_HTTP_PACKAGE);
        http->nraw++;
        __atomic_store_n(&e->site, site, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&http->lock);
    if (site != 0)
        return site;
unmatched:
    return cached_site(&http->unmatched_sites[slot], method, "<unmatched>");
}

static int
skipped(const struct funcmon_http *http, const char *path, size_t len)
{
    char stack[SKIP_PATH_STACK];
    char *copy = len < sizeof(stack) ? stack : malloc(len + 1);
    int skip = 0;

    if (copy == NULL)
        return 0;
    memcpy(copy, path, len);
    copy[len] = '\0';
    for (size_t i = 0; i < http->nskip && !skip; i++)
        skip = fnmatch(http->skip[i], copy, 0) == 0;
    if (copy != stack)
        free(copy);
    return skip;
}

/* 1 when profiling is off for this thread: the state the begin fast path tests, read the same
 * way (a thread that has not attached yet is not known to be off). */
static int
thread_profiling_off(void)
{
    uint32_t live = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED);
    return funcmon__tls.state == (live ^ FUNCMON__MODE_RING ^ FUNCMON__MODE_OFF);
}

/* Fixes the routes at the first request; pairs with the lock in funcmon_http_route. */
static void
start_serving(struct funcmon_http *http)
{
    if (__atomic_load_n(&http->serving, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&http->lock);
    __atomic_store_n(&http->serving, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&http->lock);
}

FUNCMON_API void
funcmon_http_begin(struct funcmon_http *http, struct funcmon_http_call *hc, const char *method, size_t method_len, const char *path,
                   size_t path_len)
{
    if (hc == NULL)
        return;
    hc->active = 0;
    hc->start = funcmon_now();
    if (http == NULL || thread_profiling_off())
        return;
    start_serving(http);
    if (path == NULL)
        path_len = 0;
    const char *query = path_len != 0 ? memchr(path, '?', path_len) : NULL;
    if (query != NULL)
        path_len = (size_t)(query - path);
    if (http->nskip != 0 && skipped(http, path != NULL ? path : "", path_len))
        return;
    unsigned slot = method_slot(http, method, method_len);
    struct route *r = match_route(http, path, path_len);
    hc->site = r != NULL ? cached_site(&r->sites[slot], method_name(http, slot), r->tmpl) : raw_site(http, slot, path, path_len);
    hc->generation = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED) & ~3u;
    hc->active = 1;
}

FUNCMON_API void
funcmon_http_end(struct funcmon_http_call *hc, int status)
{
    uint32_t flags = 0;

    /* One end records, whichever thread gets here first. */
    if (hc == NULL || !__atomic_exchange_n(&hc->active, 0, __ATOMIC_ACQ_REL))
        return;
    if ((__atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED) & ~3u) != hc->generation)
        return;
    if (status >= 500)
        flags = FUNCMON_RECORD_ERROR;
    else if (status >= 400)
        flags = FUNCMON_RECORD_CLIENT_ERROR;
    else if (status < 100)
        flags = FUNCMON_RECORD_ERROR | FUNCMON_RECORD_CANCELLED;
    funcmon_record_span(hc->site, hc->start, flags);
}
