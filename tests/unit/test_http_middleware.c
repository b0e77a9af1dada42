/*
 * test_http_middleware.c - the HTTP middleware names, flags and skips requests as promised.
 *
 * Requests are fed to funcmon_http_begin/end directly, with methods, paths and statuses a
 * server could see (route parameters, query strings, odd methods, control bytes, paths too
 * long for a name, more raw paths than the cap), from one thread and from several at once.
 * The test drains its own segment and counts records by the name their site carries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "funcmon.h"
#include "funcmon_http.h"
#include "harness.h"

#define MAX_NAMES 256

/* Records drained, by name. */
struct by_name {
    struct funcmon_consumer *c;
    int n;
    char name[MAX_NAMES][FUNCMON_NAME_MAX + 1];
    uint64_t calls[MAX_NAMES];
    uint64_t errors[MAX_NAMES];
    uint32_t flags_or[MAX_NAMES];
    uint64_t records;
};

static void
count_record(void *arg, uint32_t ring, const struct funcmon_record *rec)
{
    struct by_name *b = arg;
    (void)ring;
    const struct funcmon_site_info *si = funcmon_consumer_site(b->c, rec->site);
    CHECK(si != NULL);
    CHECK_STREQ(si->package, FUNCMON_HTTP_PACKAGE);
    CHECK_EQ(rec->depth, 0);
    CHECK_EQ(rec->parent_site, FUNCMON_SITE_NONE);
    int i = 0;
    while (i < b->n && strcmp(b->name[i], si->name) != 0)
        i++;
    if (i == b->n) {
        CHECK_LT(b->n, MAX_NAMES);
        snprintf(b->name[b->n++], sizeof(b->name[0]), "%s", si->name);
    }
    b->calls[i]++;
    b->errors[i] += (rec->flags & FUNCMON_RECORD_ERROR) != 0;
    b->flags_or[i] |= rec->flags;
    b->records++;
}

static void
drain(struct funcmon_consumer *c, struct by_name *b)
{
    memset(b, 0, sizeof(*b));
    b->c = c;
    while (funcmon_consumer_drain(c, count_record, b, SIZE_MAX) != 0)
        ;
    CHECK_EQ(c->bad_records, 0);
}

static int
find(const struct by_name *b, const char *name)
{
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->name[i], name) == 0)
            return i;
    return -1;
}

static uint64_t
calls_of(const struct by_name *b, const char *name)
{
    int i = find(b, name);
    return i < 0 ? 0 : b->calls[i];
}

static uint32_t
flags_of(const struct by_name *b, const char *name)
{
    int i = find(b, name);
    CHECK(i >= 0);
    return b->flags_or[i];
}

/* One request, begun and ended with `status`. Returns hc.active after begin. */
static int
request(struct funcmon_http *http, const char *method, const char *path, int status)
{
    struct funcmon_http_call hc;
    funcmon_http_begin(http, &hc, method, strlen(method), path, strlen(path));
    int active = hc.active;
    funcmon_http_end(&hc, status);
    return active;
}

static void
bad_templates_and_options(void)
{
    struct funcmon_http_options o = {.max_unmatched = FUNCMON_HTTP_UNMATCHED_MAX + 1};
    errno = 0;
    CHECK(funcmon_http_new(&o) == NULL);
    CHECK_EQ(errno, EINVAL);

    struct funcmon_http *http = funcmon_http_new(NULL);
    CHECK(http != NULL);
    const char *bad[] = {"", "v1/users", "/a/*/b", "/a*", "/a/:", "/a b", "/a?b", "/a#b", "/a/\x01", "/\xc3\xbc", NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        errno = 0;
        CHECK_EQ(funcmon_http_route(http, bad[i]), -1);
        CHECK_EQ(errno, EINVAL);
    }
    char longest[FUNCMON_HTTP_ROUTE_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[0] = '/';
    longest[FUNCMON_HTTP_ROUTE_MAX] = '\0';
    CHECK_EQ(funcmon_http_route(http, longest), 0);
    longest[FUNCMON_HTTP_ROUTE_MAX] = 'a';
    longest[FUNCMON_HTTP_ROUTE_MAX + 1] = '\0';
    CHECK_EQ(funcmon_http_route(http, longest), -1);
    CHECK_EQ(errno, EINVAL);
    memset(longest, '/', FUNCMON_HTTP_ROUTE_MAX); /* as many segments as a template can have */
    longest[FUNCMON_HTTP_ROUTE_MAX] = '\0';
    CHECK_EQ(funcmon_http_route(http, longest), 0);
    CHECK_EQ(funcmon_http_route(NULL, "/a"), -1);
    CHECK_EQ(funcmon_http_route(http, NULL), -1);
    CHECK_EQ(funcmon_http_route(http, "/a/:id"), 0);
    CHECK_EQ(funcmon_http_route(http, "/a/:id"), 0); /* twice is harmless */
    funcmon_http_free(http);
    funcmon_http_free(NULL);
}

/* Names, flags, skips and the cap, from one thread. */
static void
names_and_flags(struct funcmon_consumer *c)
{
    struct funcmon_http_options o = {.skip_paths = " /health ; /skip/*;;", .max_unmatched = 4};
    struct funcmon_http *http = funcmon_http_new(&o);
    struct by_name b;
    CHECK(http != NULL);
    const char *routes[] = {"/v1/users/:id", "/v1/users/me", "/v1/:kind/me", "/v1/users/:id/orders/:order", "/static/*", "/", NULL};
    for (int i = 0; routes[i] != NULL; i++)
        CHECK_EQ(funcmon_http_route(http, routes[i]), 0);

    /* Routes: parameters, the most specific route, the query string, the rest of a path. */
    CHECK(request(http, "GET", "/v1/users/42", 200));
    CHECK(request(http, "GET", "/v1/users/7?x=1&next=/v1/users/me", 200));
    CHECK(request(http, "GET", "/v1/users/me", 200));
    CHECK(request(http, "GET", "/v1/teams/me", 200));
    CHECK(request(http, "GET", "/v1/users/42/orders/9", 200));
    CHECK(request(http, "GET", "/static/", 200));
    CHECK(request(http, "GET", "/static/css/site.css?v=3", 200));
    CHECK(request(http, "GET", "/", 200));
    CHECK(request(http, "GET", "/?q=1", 200));
    /* After the first request the routes are fixed. */
    errno = 0;
    CHECK_EQ(funcmon_http_route(http, "/late"), -1);
    CHECK_EQ(errno, EBUSY);

    /* Methods: standard, non-standard tokens (16 get names), not tokens, too long. */
    CHECK(request(http, "POST", "/v1/users/42", 201));
    CHECK(request(http, "PROPFIND", "/v1/users/42", 207));
    for (int i = 1; i <= 16; i++) {
        char m[16];
        snprintf(m, sizeof(m), "X%d", i);
        CHECK(request(http, m, "/v1/users/42", 200));
    }
    CHECK(request(http, "GE T", "/v1/users/42", 200));
    CHECK(request(http, "", "/v1/users/42", 200));
    CHECK(request(http, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "/v1/users/42", 200));
    struct funcmon_http_call hc;
    funcmon_http_begin(http, &hc, NULL, 0, NULL, 0); /* nothing at all: a name anyway */
    CHECK(hc.active);
    funcmon_http_end(&hc, 200);

    /* Status classes; a second end records nothing. */
    CHECK(request(http, "DELETE", "/v1/users/1", 204));
    CHECK(request(http, "DELETE", "/v1/users/1", 399));
    CHECK(request(http, "DELETE", "/v1/users/2", 404));
    CHECK(request(http, "DELETE", "/v1/users/3", 499));
    CHECK(request(http, "PUT", "/v1/users/1", 500));
    CHECK(request(http, "PUT", "/v1/users/1", 503));
    CHECK(request(http, "PATCH", "/v1/users/1", 0));
    funcmon_http_begin(http, &hc, "HEAD", 4, "/v1/users/1", 11);
    funcmon_http_end(&hc, 200);
    funcmon_http_end(&hc, 500);

    /* Skipped paths record nothing. */
    CHECK(!request(http, "GET", "/health", 200));
    CHECK(!request(http, "GET", "/health?full=1", 200));
    CHECK(!request(http, "GET", "/skip/a/b", 500));
    funcmon_http_end(&hc, 200); /* an ended call stays ended */

    /* Raw paths: up to 4 names, then <unmatched>; paths that cannot be names fold at once. */
    CHECK(request(http, "GET", "/v1/users/", 200)); /* a parameter needs a segment */
    CHECK(request(http, "GET", "/static", 200));    /* "*" needs one or more segments */
    CHECK(request(http, "GET", "/healthz", 200));   /* not a skip glob's match */
    CHECK(request(http, "GET", "/a\x01z", 200));
    CHECK(request(http, "GET", "/\xc3\xbc", 200));
    char long_path[200];
    memset(long_path, 'p', sizeof(long_path));
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    CHECK(request(http, "GET", long_path, 200));
    CHECK(request(http, "GET", "/r/1", 200));
    CHECK(request(http, "GET", "/r/2", 200));
    CHECK(request(http, "GET", "/r/1", 404));
    CHECK(request(http, "POST", "/r/3", 200));
    CHECK(request(http, "OTHER", "/r/4", 200));

    drain(c, &b);
    CHECK_EQ(calls_of(&b, "GET_/v1/users/:id"), 2);
    CHECK_EQ(calls_of(&b, "GET_/v1/users/me"), 1);
    CHECK_EQ(calls_of(&b, "GET_/v1/:kind/me"), 1);
    CHECK_EQ(calls_of(&b, "GET_/v1/users/:id/orders/:order"), 1);
    CHECK_EQ(calls_of(&b, "GET_/static/*"), 2);
    CHECK_EQ(calls_of(&b, "GET_/"), 2);
    CHECK_EQ(calls_of(&b, "POST_/v1/users/:id"), 1);
    CHECK_EQ(calls_of(&b, "PROPFIND_/v1/users/:id"), 1);
    for (int i = 1; i <= 15; i++) {
        char n[64];
        snprintf(n, sizeof(n), "X%d_/v1/users/:id", i);
        CHECK_EQ(calls_of(&b, n), 1);
    }
    CHECK_EQ(calls_of(&b, "X16_/v1/users/:id"), 0);
    CHECK_EQ(calls_of(&b, "OTHER_/v1/users/:id"), 4); /* X16, "GE T", "", too long */
    CHECK_EQ(calls_of(&b, "OTHER_<unmatched>"), 2);   /* no method and no path; OTHER /r/4 */

    CHECK_EQ(calls_of(&b, "DELETE_/v1/users/:id"), 4);
    CHECK_EQ(b.errors[find(&b, "DELETE_/v1/users/:id")], 0);
    CHECK_EQ(flags_of(&b, "DELETE_/v1/users/:id"), FUNCMON_RECORD_CLIENT_ERROR);
    CHECK_EQ(calls_of(&b, "PUT_/v1/users/:id"), 2);
    CHECK_EQ(b.errors[find(&b, "PUT_/v1/users/:id")], 2);
    CHECK_EQ(flags_of(&b, "PUT_/v1/users/:id"), FUNCMON_RECORD_ERROR);
    CHECK_EQ(flags_of(&b, "PATCH_/v1/users/:id"), FUNCMON_RECORD_ERROR | FUNCMON_RECORD_CANCELLED);
    CHECK_EQ(calls_of(&b, "HEAD_/v1/users/:id"), 1);
    CHECK_EQ(flags_of(&b, "HEAD_/v1/users/:id"), 0);
    CHECK_EQ(flags_of(&b, "GET_/v1/users/:id"), 0);

    CHECK_EQ(calls_of(&b, "GET_/v1/users/"), 1);
    CHECK_EQ(calls_of(&b, "GET_/static"), 1);
    CHECK_EQ(calls_of(&b, "GET_/healthz"), 1);
    CHECK_EQ(calls_of(&b, "GET_/r/1"), 2);
    CHECK_EQ(flags_of(&b, "GET_/r/1"), FUNCMON_RECORD_CLIENT_ERROR);
    CHECK_EQ(calls_of(&b, "GET_/r/2"), 0);
    CHECK_EQ(calls_of(&b, "GET_<unmatched>"), 4); /* control byte, non-ASCII, too long, /r/2 */
    CHECK_EQ(calls_of(&b, "POST_<unmatched>"), 1);
    for (int i = 0; i < b.n; i++) {
        CHECK(strstr(b.name[i], "health") == NULL || strcmp(b.name[i], "GET_/healthz") == 0);
        CHECK(strstr(b.name[i], "skip") == NULL);
    }
    CHECK_EQ(b.records, 9 + 2 + 16 + 3 + 1 + 8 + 11);
    funcmon_http_free(http);
}

/* FUNCMON_SKIP_PATHS is read when the options give no globs; an empty string means none. */
static void
skip_from_environment(struct funcmon_consumer *c)
{
    struct by_name b;
    setenv("FUNCMON_SKIP_PATHS", "/metrics;/debug/*", 1);
    struct funcmon_http *http = funcmon_http_new(NULL);
    CHECK(http != NULL);
    CHECK(!request(http, "GET", "/metrics", 200));
    CHECK(!request(http, "GET", "/debug/profiles/GET_/v1", 200));
    CHECK(request(http, "GET", "/metricsX", 200));
    CHECK(request(http, "GET", "/debugger", 200));
    funcmon_http_free(http);

    struct funcmon_http_options o = {.skip_paths = ""};
    http = funcmon_http_new(&o);
    CHECK(request(http, "GET", "/metrics", 200));
    funcmon_http_free(http);
    unsetenv("FUNCMON_SKIP_PATHS");

    /* The default cap: 100 raw names. */
    http = funcmon_http_new(NULL);
    for (int i = 0; i < 101; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/default/%d", i);
        CHECK(request(http, "GET", path, 200));
    }
    funcmon_http_free(http);

    drain(c, &b);
    CHECK_EQ(calls_of(&b, "GET_/metricsX"), 1);
    CHECK_EQ(calls_of(&b, "GET_/debugger"), 1);
    CHECK_EQ(calls_of(&b, "GET_/metrics"), 1);
    CHECK_EQ(calls_of(&b, "GET_/default/99"), 1);
    CHECK_EQ(calls_of(&b, "GET_/default/100"), 0);
    CHECK_EQ(calls_of(&b, "GET_<unmatched>"), 1);
    CHECK_EQ(b.records, 3 + 101);
}

#define THREADS 4
#define REQUESTS 2000
#define RAW_PER_THREAD 100
#define THREADED_CAP 50

struct worker {
    struct funcmon_http *http;
    int index;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    char path[64];
    for (int i = 0; i < REQUESTS; i++) {
        snprintf(path, sizeof(path), "/v1/users/%d", i);
        request(w->http, i % 2 ? "GET" : "POST", path, i % 10 == 0 ? 500 : 200);
        if (i % (REQUESTS / RAW_PER_THREAD) == 0) {
            snprintf(path, sizeof(path), "/raw/%d/%d", w->index, i);
            request(w->http, "GET", path, 200);
        }
    }
    return NULL;
}

/* Many threads share one middleware: counts exact, the cap held exactly. */
static void
threads_share_one(struct funcmon_consumer *c)
{
    struct funcmon_http_options o = {.skip_paths = "", .max_unmatched = THREADED_CAP};
    struct funcmon_http *http = funcmon_http_new(&o);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    struct by_name b;

    CHECK_EQ(funcmon_http_route(http, "/v1/users/:id"), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){http, i};
        CHECK_EQ(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    drain(c, &b);
    CHECK_EQ(calls_of(&b, "GET_/v1/users/:id"), THREADS * REQUESTS / 2);
    CHECK_EQ(calls_of(&b, "POST_/v1/users/:id"), THREADS * REQUESTS / 2);
    CHECK_EQ(b.errors[find(&b, "POST_/v1/users/:id")], THREADS * REQUESTS / 10);
    CHECK_EQ(b.errors[find(&b, "GET_/v1/users/:id")], 0);
    int raw_names = 0;
    for (int i = 0; i < b.n; i++)
        if (strncmp(b.name[i], "GET_/raw/", 9) == 0) {
            CHECK_EQ(b.calls[i], 1);
            raw_names++;
        }
    CHECK_EQ(raw_names, THREADED_CAP);
    CHECK_EQ(calls_of(&b, "GET_<unmatched>"), THREADS * RAW_PER_THREAD - THREADED_CAP);
    CHECK_EQ(b.records, THREADS * (REQUESTS + RAW_PER_THREAD));
    funcmon_http_free(http);
}

int
main(void)
{
    struct funcmon_consumer c;

    harness_private_prefix();
    unsetenv("FUNCMON_SKIP_PATHS");
    bad_templates_and_options();
    CHECK_EQ(funcmon_init(NULL), 0);
    harness_open_self(&c);
    names_and_flags(&c);
    skip_from_environment(&c);
    threads_share_one(&c);
    funcmon_consumer_close(&c);
    funcmon_shutdown();

    /* Profiling off: requests run, nothing is recorded, and begin soon says so. */
    struct funcmon_http *http = funcmon_http_new(NULL);
    request(http, "GET", "/off", 200);
    CHECK(!request(http, "GET", "/off", 200));
    funcmon_http_free(http);
    printf("test_http_middleware: ok\n");
    return 0;
}
