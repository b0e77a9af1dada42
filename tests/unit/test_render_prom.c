/*
 * test_render_prom.c - the Prometheus page of GET /metrics.
 *
 * A view is built with the real aggregate (no event loop) holding one plain function and
 * functions with hostile names: quotes, backslashes, newlines, invalid and valid
 * multi-byte UTF-8, names of the maximum length, names that only differ in invalid bytes.
 * Checked: the exact lines of the plain function against brute force over what was
 * recorded; the page's structure (HELP and TYPE once per family, before its samples, every
 * family present); every label value valid UTF-8 and unescaping back to the original name
 * (or to the name with U+FFFD for each invalid byte); functions that render alike merged
 * into one series; the runtime and sidecar families from a hand-made process list; the
 * bucket bound formatting; `promtool check metrics` clean (skip, exit 77, without
 * promtool). The render time of 1,000 functions is printed, not asserted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aggregate.h"
#include "check.h"
#include "render_prom.h"
#include "publish.h"
#include "unit_funcmond.h"

#define MAX_LINES 8192

/* The id of a function, created if new; the test fails if it cannot be. */
static uint32_t
function_id(struct funcmond_aggregate *agg, const char *service, const char *package, const char *name)
{
    uint32_t id = UINT32_MAX;
    CHECK_EQ(funcmond_agg_function(agg, service, package, name, &id), 0);
    return id;
}

static char *
render(const struct funcmond_view *v, size_t *len)
{
    char *out = NULL;
    CHECK_EQ(funcmond_render_prom(v, &out, len), 0);
    CHECK(out != NULL);
    CHECK_EQ(strlen(out), *len); /* NUL-terminated, no NUL inside */
    CHECK(*len > 0 && out[*len - 1] == '\n');
    return out;
}

/* True when the page holds this exact line. */
static int
has_line(const char *page, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = page; (p = strstr(p, line)) != NULL; p++)
        if ((p == page || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

static void
check_line(const char *page, const char *line)
{
    if (!has_line(page, line)) {
        fprintf(stderr, "missing line: %s\n", line);
        exit(1);
    }
}

/* Checks the sample "<name>{<labels><more>} <value>" is a line of the page (`more`: further
 * labels, with their leading comma, or ""). */
static void
check_sample(const char *page, const char *name, const char *labels, const char *more, const char *value)
{
    char line[1024];
    snprintf(line, sizeof(line), "%s{%s%s} %s", name, labels, more, value);
    check_line(page, line);
}

static void
check_no_line_with(const char *page, const char *what)
{
    if (strstr(page, what) != NULL) {
        fprintf(stderr, "unexpected: %s\n", what);
        exit(1);
    }
}

/* Decodes code points: no overlong form, no surrogate, nothing past U+10FFFF. */
static int
valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp, min;
        int more;
        if (u[i] < 0x80) {
            i++;
            continue;
        } else if ((u[i] & 0xE0) == 0xC0) {
            cp = u[i] & 0x1F, min = 0x80, more = 1;
        } else if ((u[i] & 0xF0) == 0xE0) {
            cp = u[i] & 0x0F, min = 0x800, more = 2;
        } else if ((u[i] & 0xF8) == 0xF0) {
            cp = u[i] & 0x07, min = 0x10000, more = 3;
        } else {
            return 0;
        }
        if (i + (size_t)more >= n)
            return 0;
        for (size_t k = 1; k <= (size_t)more; k++) {
            if ((u[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (u[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += (size_t)more + 1;
    }
    return 1;
}

/* Every function label value seen on the page, unescaped. */
static char *seen_fn[MAX_LINES];
static size_t n_seen_fn;

static void
remember_function(const char *value)
{
    for (size_t i = 0; i < n_seen_fn; i++)
        if (strcmp(seen_fn[i], value) == 0)
            return;
    CHECK_LT(n_seen_fn, MAX_LINES);
    seen_fn[n_seen_fn++] = strdup(value);
}

static int
seen_function(const char *value)
{
    for (size_t i = 0; i < n_seen_fn; i++)
        if (strcmp(seen_fn[i], value) == 0)
            return 1;
    return 0;
}

/* Parses the labels of one sample line from just after '{'; returns the byte after '}'. Each
 * value must be valid UTF-8 and use only the three escapes of the format. */
static const char *
parse_labels(const char *p, const char *line_end)
{
    char value[1024];
    while (*p != '}') {
        const char *name = p;
        while (p < line_end && *p != '=')
            p++;
        CHECK(p + 1 < line_end && p[1] == '"');
        size_t name_len = (size_t)(p - name), n = 0;
        for (p += 2; *p != '"'; p++) {
            CHECK(p < line_end);
            CHECK_LT(n, sizeof(value) - 1);
            if (*p == '\\') {
                p++;
                CHECK(*p == '\\' || *p == '"' || *p == 'n');
                value[n++] = *p == 'n' ? '\n' : *p;
            } else {
                value[n++] = *p;
            }
        }
        value[n] = '\0';
        if (!valid_utf8(value, n)) {
            fprintf(stderr, "label value not valid UTF-8: %s\n", value);
            exit(1);
        }
        if (name_len == 8 && memcmp(name, "function", 8) == 0)
            remember_function(value);
        p++;
        if (*p == ',')
            p++;
    }
    return p + 1;
}

/*
 * Walks the page: every family has HELP then TYPE, once, before its samples; a sample
 * belongs to the family just declared (histograms: _bucket, _sum, _count); each label
 * value is checked by parse_labels. Returns the number of families.
 */
static int
check_structure(const char *page, size_t len)
{
    char family[128] = "", type[32] = "";
    char declared[64][128];
    int n_families = 0;

    CHECK(valid_utf8(page, len));
    for (const char *line = page; *line != '\0';) {
        const char *end = strchr(line, '\n');
        CHECK(end != NULL);
        if (strncmp(line, "# HELP ", 7) == 0) {
            CHECK_EQ(sscanf(line, "# HELP %127s", family), 1);
            for (int i = 0; i < n_families; i++)
                CHECK(strcmp(declared[i], family) != 0);
            CHECK_LT(n_families, 64);
            snprintf(declared[n_families++], sizeof(declared[0]), "%s", family);
            type[0] = '\0';
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128];
            CHECK_EQ(sscanf(line, "# TYPE %127s %31s", name, type), 2);
            CHECK_STREQ(name, family);
        } else {
            CHECK(line[0] != '#');
            CHECK(type[0] != '\0');
            size_t n = strcspn(line, "{ ");
            char name[160];
            CHECK_LT(n, sizeof(name));
            memcpy(name, line, n);
            name[n] = '\0';
            if (strcmp(type, "histogram") == 0) {
                size_t fl = strlen(family);
                CHECK(strncmp(name, family, fl) == 0);
                CHECK(strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 || strcmp(name + fl, "_count") == 0);
            } else {
                CHECK_STREQ(name, family);
            }
            const char *p = line + n;
            if (*p == '{')
                p = parse_labels(p + 1, end);
            CHECK(*p == ' ');
            char *num_end;
            strtod(p + 1, &num_end);
            CHECK(num_end == end);
        }
        line = end + 1;
    }
    return n_families;
}

static const char *const families[] = {
    "function_duration_seconds",
    "function_calls_total",
    "function_errors_total",
    "function_dropped_total",
    "function_memory_bytes",
    "function_inflight",
    "threads_total",
    "heap_alloc_bytes",
    "heap_sys_bytes",
    "heap_idle_bytes",
    "heap_inuse_bytes",
    "heap_released_bytes",
    "heap_objects_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_start_time_seconds",
    "process_open_fds",
    "funcmon_records_total",
    "funcmon_records_dropped_total",
    "funcmon_clients",
    "funcmon_functions_overflow_total",
    "funcmon_segments_rejected_total",
    "funcmon_segments_deferred_total",
    "funcmon_drain_lag_seconds",
    "funcmon_records_lost_total",
    "funcmon_bad_records_total",
    "funcmon_event_loop_info",
};

static void
check_families(const char *page)
{
    const char *prev = page;
    int n = check_structure(page, strlen(page));
    CHECK_EQ(n, (int)(sizeof(families) / sizeof(families[0])));
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char help[160];
        snprintf(help, sizeof(help), "# HELP %s ", families[i]);
        const char *at = strstr(page, help);
        CHECK(at != NULL);
        CHECK(at >= prev); /* in the documented order */
        prev = at;
    }
}

/* Returns a path to promtool from PATH, or NULL. */
static const char *
find_promtool(void)
{
    static char path[4096];
    const char *dirs = getenv("PATH");
    if (dirs == NULL)
        return NULL;
    while (*dirs != '\0') {
        size_t n = strcspn(dirs, ":");
        if (n != 0 && n < sizeof(path) - 16) {
            snprintf(path, sizeof(path), "%.*s/promtool", (int)n, dirs);
            if (access(path, X_OK) == 0)
                return path;
        }
        dirs += n + (dirs[n] == ':');
    }
    return NULL;
}

/* Runs `promtool check metrics` over the page; returns its exit status, prints its output. */
static int
promtool_check(const char *promtool, const char *page, size_t len)
{
    const char *tmpdir = getenv("TMPDIR");
    char file[4096], cmd[8300], out[4096];
    snprintf(file, sizeof(file), "%s/test_render_prom.XXXXXX", tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
    int fd = mkstemp(file);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, page, len), (long long)len);
    close(fd);
    snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s' 2>&1", promtool, file);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    size_t n;
    while ((n = fread(out, 1, sizeof(out), f)) > 0)
        fwrite(out, 1, n, stderr);
    int status = pclose(f);
    unlink(file);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double
elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* The default settings. */
static char *const no_settings[] = {NULL};

/* Names that need care, their package "odd" in service "svc"; `shown` is the label value
 * expected on the page (NULL: the name itself). */
static const struct {
    const char *name;
    const char *shown;
} odd[] = {
    {"say \"hi\"", NULL},
    {"back\\slash\\\\", NULL},
    {"multi\nline\n", NULL},
    {"h\xc3\xa9llo/\xc3\xbcn\xc3\xaf"
     "code",
     NULL},
    {"emoji \xf0\x9f\x98\x80 \xe2\x82\xac", NULL},
    {"bad\xff\xfeutf8", "bad\xef\xbf\xbd\xef\xbf\xbdutf8"},
    {"trunc\xe2\x82", "trunc\xef\xbf\xbd\xef\xbf\xbd"},
    {"overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd"},
    {"surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"toohigh\xf4\x90\x80\x80", "toohigh\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"cont\x80only\"\xc3", "cont\xef\xbf\xbdonly\"\xef\xbf\xbd"},
};

int
main(void)
{
    struct funcmond *d = unit_funcmond_new(no_settings);
    struct funcmond_aggregate *agg = &d->agg;
    size_t len;

    /* (a) one plain function: durations across the bounds, one exactly on a bound (le is
     * "less or equal"), errors, calls without a record, two calls with memory measured. */
    static const uint64_t durs[] = {1000000, 5000000, 7000000, 300000000, 20000000000ull};
    static const uint64_t bytes[] = {2000, 2000000, 0, 0, 0};
    uint32_t simple = function_id(agg, "svc", "pkg", "simple");
    uint64_t sum_ns = 0;
    for (int i = 0; i < 5; i++) {
        uint32_t flags = (i == 1 || i == 4 ? FUNCMON_RECORD_ERROR : 0) | (bytes[i] != 0 ? FUNCMON_RECORD_ALLOC : 0);
        funcmond_agg_record(agg, simple, durs[i], flags, bytes[i], 0, 1);
        sum_ns += durs[i];
    }
    funcmond_agg_spill(agg, simple, 3, 1, 0);
    /* a function with calls whose record was dropped, timed by their total and buckets: two
     * of 1 ms recorded, two of about 2 ms and one of 30 ms spilled */
    uint32_t spilled = function_id(agg, "svc", "pkg", "spilled");
    uint32_t spill_buckets[FUNCMON_SPILL_BUCKETS] = {0};
    for (int i = 0; i < 2; i++)
        funcmond_agg_record(agg, spilled, 1000000, 0, 0, 0, 1);
    spill_buckets[funcmon_spill_bucket(2000000)] += 2;
    spill_buckets[funcmon_spill_bucket(30000000)] += 1;
    funcmond_agg_spill(agg, spilled, 3, 0, 0);
    funcmond_agg_spill_durations(agg, spilled, 2000000 + 2100000 + 30000000, spill_buckets);

    /* odd names, one call each */
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        funcmond_agg_record(agg, function_id(agg, "svc", "odd", odd[i].name), 1000, 0, 0, 0, 1);
    funcmond_agg_record(agg, function_id(agg, "svc", "http_handler", "GET_/v1/users/:id"), 1000, 0, 0, 0, 1);
    /* the longest names, all escapes and replacements */
    char longest[FUNCMON_NAME_MAX + 1], longest_shown[4 * FUNCMON_NAME_MAX];
    size_t ls = 0;
    for (int i = 0; i < FUNCMON_NAME_MAX; i++) {
        static const char pattern[] = {'"', '\\', '\n', (char)0xff};
        longest[i] = pattern[i % 4];
        if (i % 4 == 3)
            ls += (size_t)snprintf(longest_shown + ls, sizeof(longest_shown) - ls, "\xef\xbf\xbd");
        else
            longest_shown[ls++] = longest[i];
    }
    longest[FUNCMON_NAME_MAX] = '\0';
    longest_shown[ls] = '\0';
    funcmond_agg_record(agg, function_id(agg, "svc", "odd", longest), 1000, 0, 0, 0, 1);
    /* three names that render alike: two with an invalid byte, one with a genuine U+FFFD */
    uint32_t c1 = function_id(agg, "svc", "odd", "x\xff");
    uint32_t c2 = function_id(agg, "svc", "odd", "x\xfe");
    uint32_t c3 = function_id(agg, "svc", "odd", "x\xef\xbf\xbd");
    funcmond_agg_record(agg, c1, 2000000, 0, 0, 0, 1);
    for (int i = 0; i < 2; i++)
        funcmond_agg_record(agg, c2, 20000000, FUNCMON_RECORD_ERROR, 0, 0, 1);
    for (int i = 0; i < 4; i++)
        funcmond_agg_record(agg, c3, 200000000, 0, 0, 0, 1);
    /* a service and package that need escaping too */
    funcmond_agg_record(agg, function_id(agg, "weird\\svc\xc3", "p\"kg", "f"), 1000, 0, 0, 0, 1);

    d->counters.records = 12345;
    d->counters.dropped = 17;
    d->counters.bad_records = 2;
    d->counters.segments_rejected = 3;
    d->counters.segments_deferred = 4;
    d->counters.lost = 5;
    d->counters.drain_lag_ns = 2500000;
    d->clients = 2;
    funcmond_view_maybe_publish(d, 0, 1);

    struct funcmond_reader *rd = funcmond_view_reader(d->views);
    CHECK(rd != NULL);
    const struct funcmond_view *v = funcmond_view_begin(rd);

    /* Runtime figures: a hand-made process list on a copy of the view. */
    struct funcmond_proc_view procs[5];
    memset(procs, 0, sizeof(procs));
    snprintf(procs[0].service, sizeof(procs[0].service), "svc");
    procs[0].state = FUNCMOND_PROC_LIVE;
    procs[0].rt.threads = 4;
    procs[0].rt.rss_bytes = 1000;
    procs[0].rt.utime_ticks = 150;
    procs[0].rt.stime_ticks = 50;
    procs[0].rt.open_fds = 10;
    procs[0].rt.start_real_ns = 1700000000123456789ull;
    procs[0].rt.have_alloc = 1;
    procs[0].rt.alloc.system = 5000;
    procs[0].rt.alloc.in_use = 3000;
    procs[0].rt.alloc.free = 2000;
    procs[0].rt.alloc.releasable = 700;
    procs[0].rt.totals.alloc_count = 100;
    procs[0].rt.totals.free_count = 40;
    procs[1] = procs[0];
    procs[1].rt.threads = 8;
    procs[1].rt.rss_bytes = 2000;
    procs[1].rt.utime_ticks = 1;
    procs[1].rt.stime_ticks = 0;
    procs[1].rt.open_fds = 5;
    procs[1].rt.start_real_ns = 1600000000500000000ull;
    procs[1].rt.have_alloc = 0; /* no allocator sample: not in the heap sums */
    procs[2] = procs[0];
    procs[2].state = FUNCMOND_PROC_EXITED; /* not counted */
    procs[2].rt.threads = 100;
    memset(&procs[3], 0, sizeof(procs[3]));
    snprintf(procs[3].service, sizeof(procs[3].service), "other");
    procs[3].state = FUNCMOND_PROC_LIVE;
    procs[3].rt.threads = 1;
    procs[4] = procs[0];
    snprintf(procs[4].service, sizeof(procs[4].service), "shut");
    procs[4].state = FUNCMOND_PROC_SHUTDOWN;
    struct funcmond_view hv = *v;
    hv.procs = procs;
    hv.n_procs = 5;
    hv.functions_overflow = 7;

    char *page = render(&hv, &len);
    check_families(page);

    /* (a) exact lines of the plain function, buckets by brute force over `durs` */
    static const char *const le_dur[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"};
    static const char *const le_mem[] = {"1024", "10240", "102400", "1.048576e+06", "1.048576e+07", "1.048576e+08"};
    static const uint64_t mem_bounds[] = {1024, 10240, 102400, 1048576, 10485760, 104857600};
    const char *labels = "service=\"svc\",package=\"pkg\",function=\"simple\"";
    char line[512];
    int expected_lines = 0;
    CHECK_EQ(v->n_dur_bounds, 11);
    CHECK_EQ(v->n_mem_bounds, 6);
    for (int b = 0; b < 11; b++) {
        uint64_t bound = (uint64_t)llround(v->dur_bounds_s[b] * 1e9), brute = 0;
        for (int i = 0; i < 5; i++)
            brute += durs[i] <= bound;
        snprintf(line, sizeof(line), "function_duration_seconds_bucket{%s,le=\"%s\"} %" PRIu64, labels, le_dur[b], brute);
        check_line(page, line);
        expected_lines++;
    }
    check_line(page, "function_duration_seconds_bucket{service=\"svc\",package=\"pkg\",function=\"simple\",le=\"0.005\"} 2");
    check_line(page, "function_duration_seconds_bucket{service=\"svc\",package=\"pkg\",function=\"simple\",le=\"+Inf\"} 5");
    CHECK_EQ(sum_ns, 20313000000ull);
    check_line(page, "function_duration_seconds_sum{service=\"svc\",package=\"pkg\",function=\"simple\"} 20.313");
    check_line(page, "function_duration_seconds_count{service=\"svc\",package=\"pkg\",function=\"simple\"} 5");
    check_line(page, "function_calls_total{service=\"svc\",package=\"pkg\",function=\"simple\"} 8");
    check_line(page, "function_errors_total{service=\"svc\",package=\"pkg\",function=\"simple\"} 3");
    check_line(page, "function_inflight{service=\"svc\",package=\"pkg\",function=\"simple\"} 0");
    expected_lines += 6; /* +Inf, _sum, _count, calls, errors, inflight */
    check_line(page, "function_dropped_total{service=\"svc\",package=\"pkg\",function=\"simple\"} 3");
    expected_lines++;
    for (int b = 0; b < 6; b++) {
        uint64_t brute = 0;
        for (int i = 0; i < 5; i++)
            brute += bytes[i] != 0 && bytes[i] <= mem_bounds[b];
        snprintf(line, sizeof(line), "function_memory_bytes_bucket{%s,le=\"%s\"} %" PRIu64, labels, le_mem[b], brute);
        check_line(page, line);
        expected_lines++;
    }
    check_line(page, "function_memory_bytes_bucket{service=\"svc\",package=\"pkg\",function=\"simple\",le=\"+Inf\"} 2");
    check_line(page, "function_memory_bytes_sum{service=\"svc\",package=\"pkg\",function=\"simple\"} 2002000");
    check_line(page, "function_memory_bytes_count{service=\"svc\",package=\"pkg\",function=\"simple\"} 2");
    expected_lines += 3;
    int n = 0;
    for (const char *p = page; (p = strstr(p, labels)) != NULL; p++)
        n++;
    CHECK_EQ(n, expected_lines); /* nothing else carries its label set */

    /* dropped calls: in the histogram at their bucket's value (about 1.8 ms and 28.8 ms), in
     * the sum exactly, and counted on their own */
    CHECK_EQ(funcmon_spill_bucket_value(funcmon_spill_bucket(2000000)) / 100000, 17);
    CHECK_EQ(funcmon_spill_bucket_value(funcmon_spill_bucket(30000000)) / 1000000, 28);
    const char *spilled_labels = "service=\"svc\",package=\"pkg\",function=\"spilled\"";
    check_sample(page, "function_duration_seconds_bucket", spilled_labels, ",le=\"0.005\"", "4");
    check_sample(page, "function_duration_seconds_bucket", spilled_labels, ",le=\"0.025\"", "4");
    check_sample(page, "function_duration_seconds_bucket", spilled_labels, ",le=\"0.05\"", "5");
    check_sample(page, "function_duration_seconds_bucket", spilled_labels, ",le=\"+Inf\"", "5");
    check_sample(page, "function_duration_seconds_sum", spilled_labels, "", "0.0361");
    check_sample(page, "function_duration_seconds_count", spilled_labels, "", "5");
    check_sample(page, "function_calls_total", spilled_labels, "", "5");
    check_sample(page, "function_dropped_total", spilled_labels, "", "3");
    check_line(page, "# TYPE function_dropped_total counter");

    /* (c) label values: valid UTF-8 (check_structure), and each name shown as itself or with
     * U+FFFD for each invalid byte */
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        const char *shown = odd[i].shown != NULL ? odd[i].shown : odd[i].name;
        if (!seen_function(shown)) {
            fprintf(stderr, "function label for name %zu not found\n", i);
            exit(1);
        }
    }
    CHECK(seen_function("GET_/v1/users/:id"));
    CHECK(seen_function(longest_shown));
    check_line(page, "function_calls_total{service=\"svc\",package=\"http_handler\",function=\"GET_/v1/users/:id\"} 1");
    check_line(page, "function_calls_total{service=\"svc\",package=\"odd\",function=\"say \\\"hi\\\"\"} 1");
    check_line(page, "function_calls_total{service=\"svc\",package=\"odd\",function=\"back\\\\slash\\\\\\\\\"} 1");
    check_line(page, "function_calls_total{service=\"svc\",package=\"odd\",function=\"multi\\nline\\n\"} 1");
    check_line(page, "function_calls_total{service=\"weird\\\\svc\xef\xbf\xbd\",package=\"p\\\"kg\",function=\"f\"} 1");

    /* the three names that render alike: one series, summed */
    const char *x = "service=\"svc\",package=\"odd\",function=\"x\xef\xbf\xbd\"";
    snprintf(line, sizeof(line), "function_calls_total{%s} 7", x);
    check_line(page, line);
    snprintf(line, sizeof(line), "function_errors_total{%s} 2", x);
    check_line(page, line);
    snprintf(line, sizeof(line), "function_duration_seconds_bucket{%s,le=\"0.005\"} 1", x);
    check_line(page, line);
    snprintf(line, sizeof(line), "function_duration_seconds_bucket{%s,le=\"0.025\"} 3", x);
    check_line(page, line);
    snprintf(line, sizeof(line), "function_duration_seconds_bucket{%s,le=\"0.25\"} 7", x);
    check_line(page, line);
    snprintf(line, sizeof(line), "function_duration_seconds_sum{%s} 0.842", x);
    check_line(page, line);
    n = 0;
    snprintf(line, sizeof(line), "function_calls_total{%s}", x);
    for (const char *p = page; (p = strstr(p, line)) != NULL; p++)
        n++;
    CHECK_EQ(n, 1);

    /* runtime: live processes only, summed per service */
    check_line(page, "# TYPE threads_total untyped");
    check_line(page, "# TYPE heap_objects_total untyped");
    check_line(page, "# TYPE process_cpu_seconds_total counter");
    check_line(page, "threads_total{service=\"svc\"} 12");
    check_line(page, "threads_total{service=\"other\"} 1");
    check_line(page, "heap_alloc_bytes{service=\"svc\"} 3000");
    check_line(page, "heap_sys_bytes{service=\"svc\"} 5000");
    check_line(page, "heap_idle_bytes{service=\"svc\"} 2000");
    check_line(page, "heap_inuse_bytes{service=\"svc\"} 3000");
    check_line(page, "heap_released_bytes{service=\"svc\"} 700");
    check_line(page, "heap_objects_total{service=\"svc\"} 60");
    check_line(page, "process_resident_memory_bytes{service=\"svc\"} 3000");
    check_line(page, "process_start_time_seconds{service=\"svc\"} 1600000000.5");
    check_line(page, "process_open_fds{service=\"svc\"} 15");
    check_no_line_with(page, "heap_alloc_bytes{service=\"other\"}");
    check_no_line_with(page, "heap_objects_total{service=\"other\"}");
    check_no_line_with(page, "process_start_time_seconds{service=\"other\"}");
    check_no_line_with(page, "{service=\"shut\"}");
    const char *cpu = strstr(page, "\nprocess_cpu_seconds_total{service=\"svc\"} ");
    CHECK(cpu != NULL);
    double cpu_s = strtod(strchr(cpu, '}') + 2, NULL);
    CHECK(fabs(cpu_s - 201.0 / (double)sysconf(_SC_CLK_TCK)) < 1e-9);

    /* the sidecar's own */
    check_line(page, "funcmon_records_total 12345");
    check_line(page, "funcmon_records_dropped_total 17");
    check_line(page, "funcmon_records_lost_total 5");
    check_line(page, "funcmon_bad_records_total 2");
    check_line(page, "funcmon_event_loop_info{backend=\"io_uring\"} 1"); /* the view's zero value */
    check_line(page, "funcmon_clients 2");
    check_line(page, "funcmon_functions_overflow_total 7");
    check_line(page, "funcmon_segments_rejected_total 3");
    check_line(page, "funcmon_segments_deferred_total 4");
    check_line(page, "funcmon_drain_lag_seconds 0.0025");
    /* where io_uring is refused, the label says so */
    struct funcmond_view lv = hv;
    lv.event_loop = FUNCMOND_EVENT_LOOP_EPOLL;
    size_t llen;
    char *lpage = render(&lv, &llen);
    check_line(lpage, "funcmon_event_loop_info{backend=\"epoll\"} 1");
    free(lpage);

    /* bounds in the shortest form that reads back, the way Go writes them */
    struct funcmond_view bv = hv;
    static const double bounds[] = {1e-5, 0.005, 0.1 + 0.2, 1, 2.5, 123456.789, 1048576, 1e21};
    static const char *const shown_bounds[] = {"1e-05", "0.005",      "0.30000000000000004", "1",
                                               "2.5",   "123456.789", "1.048576e+06",        "1e+21"};
    bv.n_dur_bounds = 8;
    memcpy(bv.dur_bounds_s, bounds, sizeof(bounds));
    size_t blen;
    char *bpage = render(&bv, &blen);
    for (int i = 0; i < 8; i++) {
        snprintf(line, sizeof(line), "function_duration_seconds_bucket{%s,le=\"%s\"} ", labels, shown_bounds[i]);
        CHECK(strstr(bpage, line) != NULL);
    }
    free(bpage);

    /* an empty view: every family still declared */
    struct funcmond_view ev = hv;
    ev.n_fns = 0;
    ev.fns = NULL;
    ev.n_procs = 0;
    ev.procs = NULL;
    size_t elen;
    char *epage = render(&ev, &elen);
    check_families(epage);

    funcmond_view_end(rd);
    funcmond_view_reader_free(rd);
    unit_funcmond_free(d);

    /* (d) 1,000 functions */
    d = unit_funcmond_new(no_settings);
    for (int i = 0; i < 1000; i++) {
        char name[64];
        snprintf(name, sizeof(name), "handler_%04d", i);
        uint32_t id = function_id(&d->agg, "service", i % 2 ? "pkg/internal/store" : "http_handler", name);
        for (int k = 0; k < 20; k++)
            funcmond_agg_record(&d->agg, id, 1000ull * (uint64_t)(i + 1) * (uint64_t)(k + 1) * 37, (k % 7) ? 0 : 1,
                                (uint64_t)k * 1000, 0, 1);
    }
    funcmond_view_maybe_publish(d, 0, 1);
    rd = funcmond_view_reader(d->views);
    v = funcmond_view_begin(rd);
    double best = 1e9;
    size_t big_len = 0;
    char *big = NULL;
    for (int run = 0; run < 5; run++) {
        struct timespec t0, t1;
        free(big);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_EQ(funcmond_render_prom(v, &big, &big_len), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (elapsed_ms(&t0, &t1) < best)
            best = elapsed_ms(&t0, &t1);
    }
    funcmond_view_end(rd);
    funcmond_view_reader_free(rd);
    unit_funcmond_free(d);
    printf("test_render_prom: 1,000 functions rendered in %.2f ms (best of 5, %zu bytes)\n", best, big_len);

    /* (b) promtool */
    const char *promtool = find_promtool();
    if (promtool == NULL) {
        free(page);
        free(epage);
        free(big);
        SKIP("promtool not found in PATH (Debian package prometheus); every other check passed");
    }
    CHECK_EQ(promtool_check(promtool, page, len), 0);
    CHECK_EQ(promtool_check(promtool, epage, elen), 0);
    CHECK_EQ(promtool_check(promtool, big, big_len), 0);
    free(page);
    free(epage);
    free(big);
    for (size_t i = 0; i < n_seen_fn; i++)
        free(seen_fn[i]);
    printf("test_render_prom: ok\n");
    return 0;
}
