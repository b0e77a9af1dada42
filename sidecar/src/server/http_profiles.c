/*
 * http_profiles.c - GET /debug/profiles and /debug/profiles/<name>: the aggregated figures
 * of every profiled function (DESIGN §5).
 *
 * A profile is identified by (service, package, name) but keyed by its name, which is
 * what people look for; the view gives each the shortest key that is unique among the
 * functions asked for, and /profiles/<name> asks for ?service= or ?package= (409) when a
 * name alone is ambiguous. The name is the rest of the path, percent-decoded without
 * normalisation: a function name may hold '/', '%2F' or '..', and those are data.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

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
    fobj_u64(doc, o, "dropped_count", f->dropped);
    fobj_double(doc, o, "rate_5m", f->rate_5m);
    fobj_double(doc, o, "error_rate_5m", f->error_rate_5m);
    fobj_u64(doc, o, "cancelled_count", f->cancelled);
    fobj_u64(doc, o, "deadline_exceeded_count", f->deadline_exceeded);
    fobj_u64(doc, o, "client_error_count", f->client_errors);
    fobj_u64(doc, o, "inflight", f->inflight);
    return o;
}

static int
matches(const struct funcmond_fn_view *f, const struct funcmond_http_query *q)
{
    return (q->service == NULL || strcmp(f->service, q->service) == 0) &&
           (q->package == NULL || strcmp(f->package, q->package) == 0);
}

int
funcmond_http_get_profiles(const struct funcmond_http_call *c)
{
    struct funcmond_http *h = c->h;
    h2o_req_t *req = c->req;
    const struct funcmond_http_query *q = c->query;
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    uint32_t *by_name = malloc((v->n_fns ? v->n_fns : 1) * sizeof(uint32_t)), *order = NULL;
    struct fdoc *doc = fdoc_new();
    int ret;
    if (by_name == NULL || doc == NULL || (order = malloc((v->n_fns ? v->n_fns : 1) * sizeof(uint32_t) * 2)) == NULL) {
        funcmond_view_end(h->reader);
        free(by_name);
        fdoc_free(doc);
        return funcmond_http_send_error(req, 500, "out of memory", NULL, NULL);
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
        return funcmond_http_send_error(req, 500, "out of memory", NULL, NULL);
    }
    struct fval *root = fdoc_object(doc), *profiles = fdoc_object(doc);
    for (uint32_t i = 0; i < n; i++)
        fobj_put(doc, profiles, keys[order[i]], profile_obj(doc, &v->fns[by_name[order[i]]]));
    funcmond_view_profile_keys_free(keys, n_sel);
    free(keys);
    fobj_put(doc, root, "profiles", profiles);
    fobj_u64(doc, root, "count", n);
    funcmond_view_end(h->reader);
    ret = funcmond_http_send_doc(req, 200, root);
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
get_profile(struct funcmond_http *h, h2o_req_t *req, const char *name, const struct funcmond_http_query *q)
{
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    uint32_t ids[16], n = 0;
    for (uint32_t i = 0; i < v->n_fns; i++)
        if (strcmp(v->fns[i].name, name) == 0 && matches(&v->fns[i], q) && n < 16)
            ids[n++] = i;
    int ret;
    if (n == 0) {
        ret = funcmond_http_send_error(req, 404, "no profile of that name", add_name, (void *)name);
    } else if (n > 1) {
        struct candidates c = {v, ids, n, name};
        ret = funcmond_http_send_error(req, 409, "ambiguous name: choose with ?service= and ?package=", add_candidates, &c);
    } else {
        struct fdoc *doc = fdoc_new();
        ret = funcmond_http_send_doc(req, 200, doc ? profile_obj(doc, &v->fns[ids[0]]) : NULL);
        fdoc_free(doc);
    }
    funcmond_view_end(h->reader);
    return ret;
}

int
funcmond_http_get_profile(const struct funcmond_http_call *c)
{
    char *name = h2o_mem_alloc_pool(&c->req->pool, c->rest_len + 1);
    long nl = funcmond_http_unescape(c->rest, c->rest_len, name, 0);
    if (nl < 0)
        return funcmond_http_send_error(c->req, 400, "bad percent-encoding in the name", NULL, NULL);
    name[nl] = '\0';
    if ((size_t)nl != strlen(name) || nl > FUNCMON_NAME_MAX)
        return funcmond_http_send_error(c->req, 404, "no profile of that name", NULL, NULL);
    return get_profile(c->h, c->req, name, c->query);
}
