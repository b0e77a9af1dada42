/*
 * render_prom.c - the Prometheus text exposition (format 0.0.4) of a published view.
 *
 * GET /metrics is scraped every few seconds and a view can hold thousands of functions,
 * each with two histograms, so the whole page is written into one growing buffer with
 * local append helpers: room is reserved once per line, numbers are formatted by hand
 * from integers (no locale, no per-sample allocation), and each function's label set is
 * escaped once and then copied into every sample that carries it.
 *
 * The names come from client processes and may hold any byte. The format wants valid
 * UTF-8 with backslash, double quote and newline escaped, so a label value is copied
 * sequence by sequence: a valid UTF-8 sequence as is, any other byte as U+FFFD. Two
 * function label sets can become equal through that replacement; Prometheus would see
 * two samples of one series, so such functions are merged (summed) into one series.
 *
 * Families always appear, in the order below, with their HELP and TYPE lines, even when
 * they have no sample (no client yet): a scrape then still documents every family, and a
 * family never disappears from the metadata just because its last process went away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "render_prom.h"
#include "utf8.h"

#define NS_PER_S 1000000000ull
#define BOUND_MAX 32  /* bytes of a formatted bucket bound, with its NUL */
#define LINE_SLACK 64 /* room reserved beyond names and labels: le, punctuation, a value, the newline */

/* A function as rendered: its figures (NULL once merged into an earlier row) and its
 * escaped label set, `len` bytes at `off` in the label buffer. */
struct row {
    const struct funcmond_fn_view *f;
    size_t off;
    size_t len;
};

/* A service's runtime figures, summed over its live processes. */
struct service {
    size_t off; /* its escaped label set in the label buffer */
    size_t len;
    uint64_t threads;
    uint64_t rss;
    uint64_t ticks;
    uint64_t open_fds;
    uint64_t start_ns; /* earliest known start, 0 when none is known */
    uint32_t n_alloc;  /* live processes with an allocator sample: the heap figures sum those */
    uint64_t in_use;
    uint64_t system;
    uint64_t free;
    uint64_t releasable;
    uint64_t objects;
};

struct render {
    const struct funcmond_view *v;
    struct funcmond_buf out;    /* the page */
    struct funcmond_buf labels; /* the escaped label sets */
    struct row *rows;
    uint32_t n_rows;
    struct funcmond_fn_view *merged; /* figures of merged functions */
    struct service *svcs;
    uint32_t n_svcs;
    uint32_t n_dur, n_mem;
    char le_dur[FUNCMOND_MAX_BUCKETS][BOUND_MAX];
    char le_mem[FUNCMOND_MAX_BUCKETS][BOUND_MAX];
};

/* The raw_* helpers append without checking: the caller reserved the room. */
static void
raw(struct funcmond_buf *b, const char *s, size_t n)
{
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void
raw_str(struct funcmond_buf *b, const char *s)
{
    raw(b, s, strlen(s));
}

static void
raw_u64(struct funcmond_buf *b, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        b->data[b->len++] = tmp[--n];
}

/* whole + frac_ns / 1e9 as an exact decimal: "12", "0.0025", "1.000000001". */
static void
raw_fixed9(struct funcmond_buf *b, uint64_t whole, uint64_t frac_ns)
{
    raw_u64(b, whole);
    if (frac_ns == 0)
        return;
    char digits[9];
    int n = 9;
    for (int i = 8; i >= 0; i--) {
        digits[i] = (char)('0' + frac_ns % 10);
        frac_ns /= 10;
    }
    while (digits[n - 1] == '0')
        n--;
    b->data[b->len++] = '.';
    raw(b, digits, (size_t)n);
}

static void
raw_ns_seconds(struct funcmond_buf *b, uint64_t ns)
{
    raw_fixed9(b, ns / NS_PER_S, ns % NS_PER_S);
}

/* Appends the n bytes at s as a label value: valid UTF-8, escaped. The caller reserved 3 * n
 * bytes (U+FFFD is three bytes, an escape two). */
static void
raw_label_value(struct funcmond_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        if (c == '\\' || c == '"') {
            b->data[b->len++] = '\\';
            b->data[b->len++] = (char)c;
            i++;
        } else if (c == '\n') {
            b->data[b->len++] = '\\';
            b->data[b->len++] = 'n';
            i++;
        } else if (c < 0x80) {
            b->data[b->len++] = (char)c;
            i++;
        } else {
            size_t k = funcmond_utf8_len(u + i, n - i);
            if (k == 0) {
                raw(b, "\xEF\xBF\xBD", 3);
                i++;
            } else {
                raw(b, s + i, k);
                i += k;
            }
        }
    }
}

/* Appends `name="value"` (with a leading comma unless first) for a NUL-terminated value of
 * at most max bytes. */
static void
label(struct funcmond_buf *b, const char *name, const char *value, size_t max, int first)
{
    size_t n = strnlen(value, max);
    if (funcmond_buf_reserve(b, strlen(name) + 4 + 3 * n) != 0)
        return;
    if (!first)
        b->data[b->len++] = ',';
    raw_str(b, name);
    raw(b, "=\"", 2);
    raw_label_value(b, value, n);
    b->data[b->len++] = '"';
}

/*
 * A bucket bound the way Go's strconv.FormatFloat(x, 'g', -1, 64) writes it, which is what
 * the Prometheus client libraries put in `le` and what Prometheus 3 normalises `le` to:
 * the shortest decimal that reads back as x, in exponent form when its decimal exponent is
 * below -4 or at least 6 (0.005, 2.5, 10, 102400, 1.048576e+06, 1e-05). So `le="..."`
 * matchers written against other exporters match ours.
 */
static void
format_bound(double x, char out[BOUND_MAX])
{
    char e[40], digits[20];
    int nd = 0, exp10, neg = x < 0, prec;
    size_t o = 0;

    if (isnan(x)) {
        snprintf(out, BOUND_MAX, "NaN");
        return;
    }
    if (isinf(x)) {
        snprintf(out, BOUND_MAX, "%s", x > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (x == 0) {
        snprintf(out, BOUND_MAX, "0");
        return;
    }
    /* snprintf and strtod agree on the radix character whatever the locale; only the digits
     * and the exponent are taken from the result. */
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec, x);
        if (strtod(e, NULL) == x)
            break;
    }
    const char *p = e + neg;
    for (; *p != '\0' && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < (int)sizeof(digits))
            digits[nd++] = *p;
    exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (neg)
        out[o++] = '-';
    if (exp10 < -4 || exp10 >= 6) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)nd - 1);
            o += (size_t)nd - 1;
        }
        snprintf(out + o, BOUND_MAX - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return;
    }
    int dp = exp10 + 1; /* digits before the decimal point */
    if (dp <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -dp; i++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)nd);
        o += (size_t)nd;
    } else {
        for (int i = 0; i < dp; i++)
            out[o++] = i < nd ? digits[i] : '0';
        if (nd > dp) {
            out[o++] = '.';
            memcpy(out + o, digits + dp, (size_t)(nd - dp));
            o += (size_t)(nd - dp);
        }
    }
    out[o] = '\0';
}

static void
family(struct funcmond_buf *b, const char *name, const char *type, const char *help)
{
    size_t n = strlen(name);
    if (funcmond_buf_reserve(b, 2 * n + strlen(type) + strlen(help) + 20) != 0)
        return;
    raw(b, "# HELP ", 7);
    raw(b, name, n);
    b->data[b->len++] = ' ';
    raw_str(b, help);
    raw(b, "\n# TYPE ", 8);
    raw(b, name, n);
    b->data[b->len++] = ' ';
    raw_str(b, type);
    b->data[b->len++] = '\n';
}

/* Starts a sample line up to the value: name, suffix, labels (escaped already) and le, any
 * of the last three empty or NULL. Reserves room for the value and the newline too. Returns
 * 0, or -1 when memory ran out (write nothing more on this line then). */
static int
sample(struct render *r, const char *name, const char *suffix, const struct funcmond_buf *labels, size_t off, size_t len,
       const char *le)
{
    struct funcmond_buf *b = &r->out;
    size_t nn = strlen(name), ns = suffix != NULL ? strlen(suffix) : 0, nl = le != NULL ? strlen(le) : 0;
    if (funcmond_buf_reserve(b, nn + ns + len + nl + LINE_SLACK) != 0)
        return -1;
    raw(b, name, nn);
    if (ns != 0)
        raw(b, suffix, ns);
    if (len != 0 || le != NULL) {
        b->data[b->len++] = '{';
        if (len != 0)
            raw(b, labels->data + off, len);
        if (le != NULL) {
            if (len != 0)
                b->data[b->len++] = ',';
            raw(b, "le=\"", 4);
            raw(b, le, nl);
            b->data[b->len++] = '"';
        }
        b->data[b->len++] = '}';
    }
    b->data[b->len++] = ' ';
    return 0;
}

static void
end_u64(struct funcmond_buf *b, uint64_t v)
{
    raw_u64(b, v);
    b->data[b->len++] = '\n';
}

static void
end_ns_seconds(struct funcmond_buf *b, uint64_t ns)
{
    raw_ns_seconds(b, ns);
    b->data[b->len++] = '\n';
}

/* ---- functions ---- */

/* Adds the rendered figures of f into m (two functions that share a label set). */
static void
add_function(struct funcmond_fn_view *m, const struct funcmond_fn_view *f, const struct render *r)
{
    m->calls += f->calls;
    m->errors += f->errors;
    m->dropped += f->dropped;
    m->records += f->records;
    m->total_ns += f->total_ns;
    m->total_bytes += f->total_bytes;
    m->mem_records += f->mem_records;
    m->inflight += f->inflight;
    for (uint32_t i = 0; i < r->n_dur; i++)
        m->dur_cum[i] += f->dur_cum[i];
    for (uint32_t i = 0; i < r->n_mem; i++)
        m->mem_cum[i] += f->mem_cum[i];
}

static int
cmp_label_sets(const void *a, const void *b, void *arg)
{
    const struct render *r = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const struct row *rx = &r->rows[x], *ry = &r->rows[y];
    int c = memcmp(r->labels.data + rx->off, r->labels.data + ry->off, rx->len < ry->len ? rx->len : ry->len);
    if (c != 0)
        return c;
    if (rx->len != ry->len)
        return rx->len < ry->len ? -1 : 1;
    return x < y ? -1 : x > y; /* equal sets: the first function leads */
}

static int
same_label_set(const struct render *r, uint32_t x, uint32_t y)
{
    const struct row *rx = &r->rows[x], *ry = &r->rows[y];
    return rx->len == ry->len && memcmp(r->labels.data + rx->off, r->labels.data + ry->off, rx->len) == 0;
}

/*
 * Merges functions whose label sets are equal. The aggregate's keys are distinct, and a
 * label set equals its key's bytes unless it holds U+FFFD (replaced or genuine), so only
 * those candidates can collide. Returns 0 or -1 when memory ran out.
 */
static int
merge_collisions(struct render *r, uint32_t *cand, uint32_t n_cand)
{
    uint32_t groups = 0, k = 0;

    qsort_r(cand, n_cand, sizeof(*cand), cmp_label_sets, r);
    for (uint32_t i = 1; i < n_cand; i++)
        if (same_label_set(r, cand[i - 1], cand[i]) && (i == 1 || !same_label_set(r, cand[i - 2], cand[i - 1])))
            groups++;
    if (groups == 0)
        return 0;
    if ((r->merged = malloc(groups * sizeof(*r->merged))) == NULL)
        return -1;
    for (uint32_t i = 0, j; i < n_cand; i = j) {
        for (j = i + 1; j < n_cand && same_label_set(r, cand[i], cand[j]); j++)
            ;
        if (j - i < 2)
            continue;
        struct funcmond_fn_view *m = &r->merged[k++];
        *m = *r->rows[cand[i]].f;
        for (uint32_t t = i + 1; t < j; t++) {
            add_function(m, r->rows[cand[t]].f, r);
            r->rows[cand[t]].f = NULL;
        }
        r->rows[cand[i]].f = m;
    }
    return 0;
}

/* Escapes every function's label set once. Returns 0 or -1 when memory ran out. */
static int
build_rows(struct render *r)
{
    const struct funcmond_view *v = r->v;
    uint32_t *cand = NULL, n_cand = 0;
    int rc = -1;

    r->n_rows = v->n_fns;
    if (v->n_fns == 0)
        return 0;
    if ((r->rows = calloc(v->n_fns, sizeof(*r->rows))) == NULL || (cand = malloc(v->n_fns * sizeof(*cand))) == NULL)
        goto out;
    if (funcmond_buf_reserve(&r->labels, (size_t)v->n_fns * 96) != 0)
        goto out;
    for (uint32_t i = 0; i < v->n_fns; i++) {
        const struct funcmond_fn_view *f = &v->fns[i];
        struct row *row = &r->rows[i];
        row->f = f;
        row->off = r->labels.len;
        label(&r->labels, "service", f->service, sizeof(f->service), 1);
        label(&r->labels, "package", f->package, sizeof(f->package), 0);
        label(&r->labels, "function", f->name, sizeof(f->name), 0);
        if (r->labels.failed)
            goto out;
        row->len = r->labels.len - row->off;
        if (memmem(r->labels.data + row->off, row->len, "\xEF\xBF\xBD", 3) != NULL)
            cand[n_cand++] = i;
    }
    rc = n_cand > 1 ? merge_collisions(r, cand, n_cand) : 0;
out:
    free(cand);
    return rc;
}

static void
fn_histogram(struct render *r, const char *name, int memory)
{
    uint32_t nb = memory ? r->n_mem : r->n_dur;
    for (uint32_t i = 0; i < r->n_rows; i++) {
        const struct row *row = &r->rows[i];
        const struct funcmond_fn_view *f = row->f;
        if (f == NULL)
            continue;
        const uint64_t *cum = memory ? f->mem_cum : f->dur_cum;
        uint64_t count = memory ? f->mem_records : f->records;
        for (uint32_t k = 0; k < nb; k++)
            if (sample(r, name, "_bucket", &r->labels, row->off, row->len, memory ? r->le_mem[k] : r->le_dur[k]) == 0)
                end_u64(&r->out, cum[k]);
        if (sample(r, name, "_bucket", &r->labels, row->off, row->len, "+Inf") == 0)
            end_u64(&r->out, count);
        if (sample(r, name, "_sum", &r->labels, row->off, row->len, NULL) == 0) {
            if (memory)
                end_u64(&r->out, f->total_bytes);
            else
                end_ns_seconds(&r->out, f->total_ns);
        }
        if (sample(r, name, "_count", &r->labels, row->off, row->len, NULL) == 0)
            end_u64(&r->out, count);
    }
}

enum fn_figure { FN_CALLS, FN_ERRORS, FN_DROPPED, FN_INFLIGHT };

static uint64_t
fn_figure_of(const struct funcmond_fn_view *f, enum fn_figure which)
{
    switch (which) {
    case FN_CALLS:
        return f->calls;
    case FN_ERRORS:
        return f->errors;
    case FN_DROPPED:
        return f->dropped;
    case FN_INFLIGHT:
        break;
    }
    return f->inflight;
}

static void
fn_simple(struct render *r, const char *name, enum fn_figure which)
{
    for (uint32_t i = 0; i < r->n_rows; i++) {
        const struct row *row = &r->rows[i];
        const struct funcmond_fn_view *f = row->f;
        if (f == NULL || sample(r, name, NULL, &r->labels, row->off, row->len, NULL) != 0)
            continue;
        end_u64(&r->out, fn_figure_of(f, which));
    }
}

/* ---- runtime ---- */

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

/* Sums the live processes per service (services keyed by their escaped label, so two
 * names that render alike add up). Returns 0 or -1 when memory ran out. */
static int
build_services(struct render *r)
{
    const struct funcmond_view *v = r->v;

    if (v->n_procs == 0)
        return 0;
    if ((r->svcs = calloc(v->n_procs, sizeof(*r->svcs))) == NULL)
        return -1;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        const struct funcmond_proc_view *p = &v->procs[i];
        const struct funcmond_runtime *rt = &p->rt;
        struct service *s = NULL;
        size_t off = r->labels.len;

        if (p->state != FUNCMOND_PROC_LIVE)
            continue;
        label(&r->labels, "service", p->service, sizeof(p->service), 1);
        if (r->labels.failed)
            return -1;
        size_t len = r->labels.len - off;
        for (uint32_t k = 0; k < r->n_svcs && s == NULL; k++)
            if (r->svcs[k].len == len && memcmp(r->labels.data + r->svcs[k].off, r->labels.data + off, len) == 0)
                s = &r->svcs[k];
        if (s != NULL) {
            r->labels.len = off; /* already there */
        } else {
            s = &r->svcs[r->n_svcs++];
            s->off = off;
            s->len = len;
        }
        s->threads = sat_add(s->threads, rt->threads);
        s->rss = sat_add(s->rss, rt->rss_bytes);
        s->ticks = sat_add(s->ticks, sat_add(rt->utime_ticks, rt->stime_ticks));
        s->open_fds = sat_add(s->open_fds, rt->open_fds);
        if (rt->start_real_ns != 0 && (s->start_ns == 0 || rt->start_real_ns < s->start_ns))
            s->start_ns = rt->start_real_ns;
        if (rt->have_alloc) {
            s->n_alloc++;
            s->in_use = sat_add(s->in_use, rt->alloc.in_use);
            s->system = sat_add(s->system, rt->alloc.system);
            s->free = sat_add(s->free, rt->alloc.free);
            s->releasable = sat_add(s->releasable, rt->alloc.releasable);
            /* Both totals come from the client's memory: never let a torn or hostile pair
             * wrap around. */
            if (rt->totals.alloc_count > rt->totals.free_count)
                s->objects = sat_add(s->objects, rt->totals.alloc_count - rt->totals.free_count);
        }
    }
    return 0;
}

enum svc_figure {
    SVC_THREADS,
    SVC_HEAP_ALLOC,
    SVC_HEAP_SYS,
    SVC_HEAP_IDLE,
    SVC_HEAP_INUSE,
    SVC_HEAP_RELEASED,
    SVC_HEAP_OBJECTS,
    SVC_RSS,
    SVC_CPU,
    SVC_START,
    SVC_FDS
};

static void
svc_family(struct render *r, const char *name, enum svc_figure which, long hz)
{
    for (uint32_t i = 0; i < r->n_svcs; i++) {
        const struct service *s = &r->svcs[i];
        uint64_t value;
        switch (which) {
        case SVC_THREADS:
            value = s->threads;
            break;
        case SVC_HEAP_ALLOC:
        case SVC_HEAP_INUSE:
            value = s->in_use;
            break;
        case SVC_HEAP_SYS:
            value = s->system;
            break;
        case SVC_HEAP_IDLE:
            value = s->free;
            break;
        case SVC_HEAP_RELEASED:
            value = s->releasable;
            break;
        case SVC_HEAP_OBJECTS:
            value = s->objects;
            break;
        case SVC_RSS:
            value = s->rss;
            break;
        case SVC_START:
            value = s->start_ns;
            break;
        case SVC_CPU:
            value = s->ticks;
            break;
        default:
            value = s->open_fds;
            break;
        }
        /* Heap figures exist only for services with an allocator sample (a client without a
         * control thread never has one); a start time only once /proc was read. */
        if (which >= SVC_HEAP_ALLOC && which <= SVC_HEAP_OBJECTS && s->n_alloc == 0)
            continue;
        if (which == SVC_START && s->start_ns == 0)
            continue;
        if (sample(r, name, NULL, &r->labels, s->off, s->len, NULL) != 0)
            continue;
        if (which == SVC_START) {
            end_ns_seconds(&r->out, value);
        } else if (which == SVC_CPU) {
            /* ticks / hz, rounded to the nanosecond: hz is small, so r * 1e9 cannot overflow. */
            uint64_t whole = value / (uint64_t)hz, frac = ((value % (uint64_t)hz) * NS_PER_S + (uint64_t)hz / 2) / (uint64_t)hz;
            if (frac == NS_PER_S) {
                whole++;
                frac = 0;
            }
            raw_fixed9(&r->out, whole, frac);
            r->out.data[r->out.len++] = '\n';
        } else {
            end_u64(&r->out, value);
        }
    }
}

/* ---- the sidecar's own ---- */

static void
own_u64(struct render *r, const char *name, const char *type, const char *help, uint64_t value)
{
    family(&r->out, name, type, help);
    if (sample(r, name, NULL, NULL, 0, 0, NULL) == 0)
        end_u64(&r->out, value);
}

static void
render(struct render *r)
{
    const struct funcmond_view *v = r->v;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0 || hz > 1000000)
        hz = 100;

    /* Size the page up front: a line per bucket and a few more per function. */
    size_t lines = r->n_dur + r->n_mem + 8, est = 16384;
    for (uint32_t i = 0; i < r->n_rows; i++)
        est += lines * (r->rows[i].len + 56);
    funcmond_buf_reserve(&r->out, est);

    family(&r->out, "function_duration_seconds", "histogram", "Duration of profiled function calls in seconds.");
    fn_histogram(r, "function_duration_seconds", 0);
    family(&r->out, "function_calls_total", "counter", "Calls of profiled functions, including calls whose record was dropped.");
    fn_simple(r, "function_calls_total", FN_CALLS);
    family(&r->out, "function_errors_total", "counter", "Calls of profiled functions that failed.");
    fn_simple(r, "function_errors_total", FN_ERRORS);
    family(&r->out, "function_dropped_total", "counter",
           "Calls of profiled functions whose record never reached funcmond: counted in every other figure, their durations to "
           "within 20% in the duration histogram, but with no call stack or bytes.");
    fn_simple(r, "function_dropped_total", FN_DROPPED);
    family(&r->out, "function_memory_bytes", "histogram",
           "Bytes allocated per call of profiled functions, over calls measured with allocation tracking.");
    fn_histogram(r, "function_memory_bytes", 1);
    family(&r->out, "function_inflight", "gauge", "Calls of profiled functions running now.");
    fn_simple(r, "function_inflight", FN_INFLIGHT);

    /*
     * threads_total and heap_objects_total are levels that go down, so they are not
     * counters, but the names are the contract (threads_total is the C analogue of the Go
     * original's goroutines_total). `promtool check metrics` rejects TYPE gauge on a name
     * ending in _total, and DESIGN §6 wants it clean, so they are declared untyped, which
     * Prometheus stores and queries exactly like a gauge.
     */
    family(&r->out, "threads_total", "untyped", "Threads of the service's live processes (a level, not a counter).");
    svc_family(r, "threads_total", SVC_THREADS, hz);
    /* The Go heap figures mapped onto glibc's allocator (mallinfo2 in the client): alloc and
     * inuse are both the bytes in allocated blocks, sys the bytes the allocator holds from
     * the system, idle the bytes in free blocks. Go's HeapReleased counts memory already
     * returned to the system; glibc has no such figure (what malloc_trim returns leaves
     * sys), so released is the closest one it has: the top of the heap that malloc_trim
     * could return now (keepcost). */
    family(&r->out, "heap_alloc_bytes", "gauge", "Bytes in allocated heap blocks of the service's live processes.");
    svc_family(r, "heap_alloc_bytes", SVC_HEAP_ALLOC, hz);
    family(&r->out, "heap_sys_bytes", "gauge", "Bytes the allocators of the service's live processes hold from the system.");
    svc_family(r, "heap_sys_bytes", SVC_HEAP_SYS, hz);
    family(&r->out, "heap_idle_bytes", "gauge", "Bytes in free heap blocks of the service's live processes.");
    svc_family(r, "heap_idle_bytes", SVC_HEAP_IDLE, hz);
    family(&r->out, "heap_inuse_bytes", "gauge", "Bytes in allocated heap blocks of the service's live processes.");
    svc_family(r, "heap_inuse_bytes", SVC_HEAP_INUSE, hz);
    family(&r->out, "heap_released_bytes", "gauge",
           "Bytes at the top of the heaps of the service's live processes that malloc_trim could return to the system.");
    svc_family(r, "heap_released_bytes", SVC_HEAP_RELEASED, hz);
    family(&r->out, "heap_objects_total", "untyped",
           "Heap blocks allocated and not yet freed in the service's live processes, as counted by allocation tracking (a "
           "level, not a counter).");
    svc_family(r, "heap_objects_total", SVC_HEAP_OBJECTS, hz);
    family(&r->out, "process_resident_memory_bytes", "gauge", "Resident memory size of the service's live processes in bytes.");
    svc_family(r, "process_resident_memory_bytes", SVC_RSS, hz);
    /* A sum over live processes: it drops when one exits, which rate() reads as a reset. */
    family(&r->out, "process_cpu_seconds_total", "counter", "User and system CPU time of the service's live processes in seconds.");
    svc_family(r, "process_cpu_seconds_total", SVC_CPU, hz);
    family(&r->out, "process_start_time_seconds", "gauge",
           "Start time of the service's oldest live process since the Unix epoch in seconds.");
    svc_family(r, "process_start_time_seconds", SVC_START, hz);
    family(&r->out, "process_open_fds", "gauge", "Open file descriptors of the service's live processes.");
    svc_family(r, "process_open_fds", SVC_FDS, hz);

    own_u64(r, "funcmon_records_total", "counter", "Records funcmond aggregated.", v->counters.records);
    own_u64(r, "funcmon_records_dropped_total", "counter", "Records clients dropped because their pool had no free chunk.",
            v->counters.dropped);
    own_u64(r, "funcmon_clients", "gauge", "Client processes attached and running.", v->clients);
    own_u64(r, "funcmon_functions_overflow_total", "counter", "Functions folded into an overflow entry past SIDECAR.MAX_FUNCTIONS.",
            v->functions_overflow);
    own_u64(r, "funcmon_segments_rejected_total", "counter", "Shared-memory segments funcmond rejected.",
            v->counters.segments_rejected);
    own_u64(r, "funcmon_segments_deferred_total", "counter",
            "Segments that waited before being attached: every guarded mapping or file descriptor was taken.",
            v->counters.segments_deferred);
    family(&r->out, "funcmon_drain_lag_seconds", "gauge", "Age of the oldest record at the last drain cycle in seconds.");
    if (sample(r, "funcmon_drain_lag_seconds", NULL, NULL, 0, 0, NULL) == 0)
        end_ns_seconds(&r->out, v->counters.drain_lag_ns);
    own_u64(r, "funcmon_records_lost_total", "counter", "Records consumed before a funcmond crash and missing from its state file.",
            v->counters.lost);
    own_u64(r, "funcmon_bad_records_total", "counter", "Records skipped as invalid.", v->counters.bad_records);
    /* An info gauge: the backend is a label, so a query can select hosts by it. */
    family(&r->out, "funcmon_event_loop_info", "gauge",
           "What funcmond's drain loop runs on: io_uring, or epoll where io_uring is refused (value always 1).");
    const char *backend = funcmond_event_loop_name(v->event_loop);
    if (funcmond_buf_reserve(&r->out, strlen(backend) + LINE_SLACK) == 0) {
        raw_str(&r->out, "funcmon_event_loop_info{backend=\"");
        raw_str(&r->out, backend);
        raw_str(&r->out, "\"} ");
        end_u64(&r->out, 1);
    }
}

int
funcmond_render_prom(const struct funcmond_view *v, char **out, size_t *len)
{
    struct render *r = calloc(1, sizeof(*r));
    char *page;
    size_t page_len;
    int rc = -ENOMEM;

    if (r == NULL)
        return -ENOMEM;
    r->v = v;
    r->n_dur = v->n_dur_bounds < FUNCMOND_MAX_BUCKETS ? v->n_dur_bounds : FUNCMOND_MAX_BUCKETS;
    r->n_mem = v->n_mem_bounds < FUNCMOND_MAX_BUCKETS ? v->n_mem_bounds : FUNCMOND_MAX_BUCKETS;
    for (uint32_t i = 0; i < r->n_dur; i++)
        format_bound(v->dur_bounds_s[i], r->le_dur[i]);
    for (uint32_t i = 0; i < r->n_mem; i++)
        format_bound(v->mem_bounds[i], r->le_mem[i]);
    if (build_rows(r) != 0 || build_services(r) != 0)
        goto out;
    render(r);
    if ((page = funcmond_buf_take(&r->out, &page_len)) == NULL)
        goto out;
    *out = page;
    *len = page_len;
    rc = 0;
out:
    funcmond_buf_free(&r->out);
    funcmond_buf_free(&r->labels);
    free(r->rows);
    free(r->merged);
    free(r->svcs);
    free(r);
    return rc;
}
