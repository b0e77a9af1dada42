/*
 * funcmon.c - the library's lifecycle: options, init, shutdown, fork, the wrappers, spans.
 *
 * funcmon must never take the service down with it. Every failure here (bad options, no
 * shared memory, no thread) leaves profiling off, prints one line, and returns an error
 * the caller may ignore: profiled calls then run plain.
 *
 * A generation number (funcmon__live_state) ties each thread's cached ring to the current
 * segment. init, shutdown and fork bump it, and every thread re-attaches on its next call;
 * that one shared load is the hot path's only cost for being able to stop and restart.
 * In a forked child the parent's segment is dropped at once (the child must never write
 * into it) and the child's own segment is created on its first profiled call, so a
 * fork+exec costs nothing.
 *
 * Spans (funcmon_record_span) are calls recorded after the fact, apart from the thread's
 * stack: an event loop interleaves requests, so their begin and end do not nest. Their
 * records go through thread.c like a call's end: the same drop accounting and wake-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct funcmon__process funcmon__proc = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t once_handlers = PTHREAD_ONCE_INIT;

void
funcmon__warn(const char *fmt, ...)
{
    va_list ap;
    if (funcmon__proc.opts.quiet)
        return;
    va_start(ap, fmt);
    fputs("funcmon: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void
funcmon__new_generation(void)
{
    uint32_t gen = (__atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED) >> 2) + 1;
    __atomic_store_n(&funcmon__live_state, (gen << 2) | FUNCMON__MODE_RING, __ATOMIC_RELEASE);
}

static int
parse_bool(const char *s, int *out)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0)
        *out = FUNCMON_ON;
    else if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0)
        *out = FUNCMON_OFF;
    else
        return -EINVAL;
    return 0;
}

static int
parse_range(const char *s, uint32_t lo, uint32_t hi, int pow2, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi || (pow2 && (v & (v - 1)) != 0))
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int
check_prefix(const char *s)
{
    return s != NULL && s[0] != '\0' && strchr(s, '/') == NULL && strlen(s) <= FUNCMON_PREFIX_MAX ? 0 : -EINVAL;
}

FUNCMON_API int
funcmon_options_from_env(struct funcmon_options *o, const char **bad)
{
    const char *v;
    int ret = 0;

    memset(o, 0, sizeof(*o));
    o->enabled = FUNCMON_ON;
    o->service = program_invocation_short_name;
    o->shm_prefix = FUNCMON_DEFAULT_PREFIX;
    o->pool_records = FUNCMON_DEFAULT_POOL_RECORDS;
    o->chunk_records = FUNCMON_DEFAULT_CHUNK_RECORDS;
    o->max_threads = FUNCMON_DEFAULT_MAX_THREADS;
    o->max_sites = FUNCMON_DEFAULT_MAX_SITES;
    o->track_alloc = FUNCMON_OFF;
    if (bad != NULL)
        *bad = NULL;
#define BAD(name)                                                                                                                  \
    do {                                                                                                                           \
        if (ret == 0 && bad != NULL)                                                                                               \
            *bad = name;                                                                                                           \
        ret = -EINVAL;                                                                                                             \
    } while (0)
    if ((v = getenv("FUNCMON_ENABLED")) != NULL && parse_bool(v, &o->enabled) != 0)
        BAD("FUNCMON_ENABLED");
    if ((v = getenv("FUNCMON_SERVICE")) != NULL) {
        if (v[0] == '\0')
            BAD("FUNCMON_SERVICE");
        else
            o->service = v;
    }
    if ((v = getenv("FUNCMON_SHM_PREFIX")) != NULL) {
        if (check_prefix(v) != 0)
            BAD("FUNCMON_SHM_PREFIX");
        else
            o->shm_prefix = v;
    }
    if ((v = getenv("FUNCMON_POOL_RECORDS")) != NULL &&
        parse_range(v, FUNCMON_POOL_RECORDS_MIN, FUNCMON_POOL_RECORDS_MAX, 0, &o->pool_records) != 0)
        BAD("FUNCMON_POOL_RECORDS");
    if ((v = getenv("FUNCMON_CHUNK_RECORDS")) != NULL &&
        parse_range(v, FUNCMON_CHUNK_RECORDS_MIN, FUNCMON_CHUNK_RECORDS_MAX, 1, &o->chunk_records) != 0)
        BAD("FUNCMON_CHUNK_RECORDS");
    /* The first protocol's per-thread ring size, still read where FUNCMON_POOL_RECORDS is
     * not set: the pool then holds what its 64 default rings of that size held. */
    uint32_t ring_records;
    if ((v = getenv("FUNCMON_RING_RECORDS")) != NULL) {
        if (parse_range(v, FUNCMON_RING_RECORDS_MIN, FUNCMON_RING_RECORDS_MAX, 1, &ring_records) != 0)
            BAD("FUNCMON_RING_RECORDS");
        else if (getenv("FUNCMON_POOL_RECORDS") == NULL)
            o->pool_records = ring_records * FUNCMON_RING_RECORDS_THREADS;
    }
    if ((v = getenv("FUNCMON_MAX_THREADS")) != NULL &&
        parse_range(v, FUNCMON_MAX_THREADS_MIN, FUNCMON_MAX_THREADS_MAX, 0, &o->max_threads) != 0)
        BAD("FUNCMON_MAX_THREADS");
    if ((v = getenv("FUNCMON_MAX_SITES")) != NULL &&
        parse_range(v, FUNCMON_MAX_SITES_MIN, FUNCMON_MAX_SITES_MAX, 0, &o->max_sites) != 0)
        BAD("FUNCMON_MAX_SITES");
    if ((v = getenv("FUNCMON_TRACK_ALLOC")) != NULL && parse_bool(v, &o->track_alloc) != 0)
        BAD("FUNCMON_TRACK_ALLOC");
#undef BAD
    return ret;
}

/* Overlays the caller's non-zero fields on the environment's; checks them. */
static int
merge_options(struct funcmon_options *eff, const struct funcmon_options *opts, const char **bad)
{
    if (opts == NULL)
        return 0;
    if (opts->enabled != 0)
        eff->enabled = opts->enabled > 0 ? FUNCMON_ON : FUNCMON_OFF;
    if (opts->track_alloc != 0)
        eff->track_alloc = opts->track_alloc > 0 ? FUNCMON_ON : FUNCMON_OFF;
    eff->quiet = opts->quiet;
    if (opts->service != NULL) {
        if (opts->service[0] == '\0')
            return *bad = "service", -EINVAL;
        eff->service = opts->service;
    }
    if (opts->shm_prefix != NULL) {
        if (check_prefix(opts->shm_prefix) != 0)
            return *bad = "shm_prefix", -EINVAL;
        eff->shm_prefix = opts->shm_prefix;
    }
    if (opts->pool_records != 0) {
        if (opts->pool_records < FUNCMON_POOL_RECORDS_MIN || opts->pool_records > FUNCMON_POOL_RECORDS_MAX)
            return *bad = "pool_records", -EINVAL;
        eff->pool_records = opts->pool_records;
    }
    if (opts->chunk_records != 0) {
        uint32_t r = opts->chunk_records;
        if (r < FUNCMON_CHUNK_RECORDS_MIN || r > FUNCMON_CHUNK_RECORDS_MAX || (r & (r - 1)) != 0)
            return *bad = "chunk_records", -EINVAL;
        eff->chunk_records = r;
    }
    if (opts->max_threads != 0) {
        if (opts->max_threads > FUNCMON_MAX_THREADS_MAX)
            return *bad = "max_threads", -EINVAL;
        eff->max_threads = opts->max_threads;
    }
    if (opts->max_sites != 0) {
        if (opts->max_sites < FUNCMON_MAX_SITES_MIN || opts->max_sites > FUNCMON_MAX_SITES_MAX)
            return *bad = "max_sites", -EINVAL;
        eff->max_sites = opts->max_sites;
    }
    return 0;
}

static void
atfork_prepare(void)
{
    pthread_mutex_lock(&funcmon__proc.lock);
    /* Before the locks the control thread may need while awake; after proc.lock, which it
     * never takes (shutdown holds proc.lock while it waits for the thread to end). */
    funcmon__control_atfork_prepare();
    funcmon__sites_atfork_prepare();
    funcmon__alloc_atfork_prepare();
    funcmon__clock_atfork_prepare();
}

static void
atfork_parent(void)
{
    funcmon__clock_atfork_release();
    funcmon__alloc_atfork_parent();
    funcmon__sites_atfork_parent();
    funcmon__control_atfork_release();
    pthread_mutex_unlock(&funcmon__proc.lock);
}

static void
atfork_child(void)
{
    struct funcmon__process *p = &funcmon__proc;

    funcmon__clock_atfork_release();
    funcmon__alloc_atfork_child();
    funcmon__sites_atfork_child();
    /* The control thread did not survive the fork; the parent's segment is the parent's. */
    p->control_running = 0;
    funcmon__segment_retire(&p->seg, 0);
    p->need_segment = p->enabled;
    funcmon__thread_forget_all();
    funcmon__new_generation();
    funcmon__control_atfork_release();
    pthread_mutex_unlock(&p->lock);
}

static void
exit_handler(void)
{
    funcmon_shutdown();
}

static void
register_handlers(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    atexit(exit_handler);
}

/* At load, not at init: the site registry works before funcmon_init, and a fork while a
 * thread interns a site must not leave its lock held in the child. */
__attribute__((constructor)) static void
register_handlers_at_load(void)
{
    pthread_once(&once_handlers, register_handlers);
}

/* Creates the segment and its control thread from proc.opts. Needs proc.lock. */
static int
start_segment_locked(void)
{
    struct funcmon__process *p = &funcmon__proc;
    int ret = funcmon__segment_create(&p->seg, &p->opts, p->service, p->prefix);
    if (ret != 0) {
        funcmon__warn("cannot create shared memory segment for service '%s' (prefix '%s'): %s; profiling is off", p->service,
                      p->prefix, strerror(-ret));
        return ret;
    }
    if (funcmon_alloc_tracking())
        p->seg.hdr->flags |= FUNCMON_HEADER_ALLOC_TRACKING;
    if ((ret = funcmon__control_start()) != 0) {
        funcmon__warn("cannot start the control thread: %s; profiling is off", strerror(-ret));
        funcmon__sites_mirror(NULL);
        funcmon__segment_retire(&p->seg, 1);
        return ret;
    }
    return 0;
}

int
funcmon__ensure_segment_locked(void)
{
    struct funcmon__process *p = &funcmon__proc;
    if (!p->need_segment)
        return p->seg.hdr != NULL ? 0 : -ENODEV;
    p->need_segment = 0;
    int ret = start_segment_locked();
    if (ret != 0)
        p->enabled = 0;
    return ret;
}

FUNCMON_API int
funcmon_init(const struct funcmon_options *opts)
{
    struct funcmon__process *p = &funcmon__proc;
    struct funcmon_options eff;
    const char *bad = NULL;
    int ret;

    pthread_once(&once_handlers, register_handlers);
    pthread_mutex_lock(&p->lock);
    if (p->initialised) {
        pthread_mutex_unlock(&p->lock);
        return -EALREADY;
    }
    p->opts.quiet = opts != NULL && opts->quiet;
    ret = funcmon_options_from_env(&eff, &bad);
    if (ret == 0)
        ret = merge_options(&eff, opts, &bad);
    if (ret != 0) {
        const char *val = bad != NULL && strncmp(bad, "FUNCMON_", 8) == 0 ? getenv(bad) : NULL;
        funcmon__warn("invalid %s%s%s%s; profiling is off", bad ? bad : "option", val ? " '" : "", val ? val : "", val ? "'" : "");
        goto out;
    }
    p->opts = eff;
    snprintf(p->service, sizeof(p->service), "%s", eff.service);
    snprintf(p->prefix, sizeof(p->prefix), "%s", eff.shm_prefix);
    p->opts.service = p->service;
    p->opts.shm_prefix = p->prefix;
    p->initialised = 1;
    p->enabled = 0;
    if (eff.enabled != FUNCMON_ON)
        goto out;

    if ((ret = funcmon__thread_key_init()) != 0) {
        funcmon__warn("cannot create a thread key: %s; profiling is off", strerror(-ret));
        p->initialised = 0;
        goto out;
    }
    funcmon__clock_init();
    p->opts.max_sites = funcmon__sites_limit(eff.max_sites);
    if (eff.track_alloc == FUNCMON_ON) {
        if (funcmon__alloc_interposed())
            funcmon__alloc_enable(1);
        else
            funcmon__warn("allocation tracking unavailable: another library's malloc comes first (a sanitizer or allocator)");
    }
    if ((ret = start_segment_locked()) != 0) {
        funcmon__alloc_enable(0);
        p->initialised = 0; /* a later funcmon_init may try again */
        goto out;
    }
    p->enabled = 1;
out:
    funcmon__new_generation();
    pthread_mutex_unlock(&p->lock);
    return ret;
}

FUNCMON_API void
funcmon_shutdown(void)
{
    struct funcmon__process *p = &funcmon__proc;

    pthread_mutex_lock(&p->lock);
    if (!p->initialised) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    funcmon__control_stop();
    funcmon__sites_mirror(NULL);
    if (p->seg.hdr != NULL) {
        /* Final figures for a sidecar that reads the segment after we are gone. */
        funcmon__alloc_totals(&p->seg.hdr->alloc_totals);
        funcmon__alloc_stats_sample(&p->seg.hdr->alloc_stats);
    }
    funcmon__segment_retire(&p->seg, 1);
    funcmon__alloc_enable(0);
    p->initialised = 0;
    p->enabled = 0;
    p->need_segment = 0;
    funcmon__new_generation();
    pthread_mutex_unlock(&p->lock);
}

FUNCMON_API int
funcmon_active(void)
{
    struct funcmon__process *p = &funcmon__proc;
    pthread_mutex_lock(&p->lock);
    int active = p->enabled && (p->seg.hdr != NULL || p->need_segment);
    pthread_mutex_unlock(&p->lock);
    return active;
}

FUNCMON_API const char *
funcmon_segment_name(void)
{
    struct funcmon__process *p = &funcmon__proc;
    pthread_mutex_lock(&p->lock);
    const char *name = p->seg.hdr != NULL ? p->seg.name : NULL;
    pthread_mutex_unlock(&p->lock);
    return name;
}

/* True when this thread runs profiled calls plain: skip even the site lookup. */
static int
thread_is_off(void)
{
    uint32_t live = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED);
    return funcmon__tls.state == (live ^ FUNCMON__MODE_RING ^ FUNCMON__MODE_OFF);
}

FUNCMON_API int
funcmon_profile(const char *name, const char *package, int (*fn)(void *), void *arg)
{
    if (fn == NULL)
        return -EINVAL;
    if (thread_is_off())
        return fn(arg);
    struct funcmon_call call = funcmon_begin(funcmon_site(name, package));
    int rc = fn(arg);
    funcmon_end(&call, rc);
    return rc;
}

FUNCMON_API void
funcmon_ctx_init(struct funcmon_ctx *ctx, uint64_t timeout_ns)
{
    ctx->deadline_ns = timeout_ns != 0 ? funcmon__mono_ns() + timeout_ns : 0;
    __atomic_store_n(&ctx->cancelled, 0, __ATOMIC_RELAXED);
}

FUNCMON_API void
funcmon_ctx_cancel(struct funcmon_ctx *ctx)
{
    __atomic_store_n(&ctx->cancelled, 1, __ATOMIC_RELEASE);
}

FUNCMON_API int
funcmon_ctx_err(const struct funcmon_ctx *ctx)
{
    if (ctx == NULL)
        return 0;
    if (__atomic_load_n(&ctx->cancelled, __ATOMIC_ACQUIRE))
        return FUNCMON_ECANCELED;
    if (ctx->deadline_ns != 0 && funcmon__mono_ns() >= ctx->deadline_ns)
        return FUNCMON_EDEADLINE;
    return 0;
}

FUNCMON_API int
funcmon_profile_ctx(struct funcmon_ctx *ctx, const char *name, const char *package, int (*fn)(struct funcmon_ctx *, void *),
                    void *arg)
{
    if (fn == NULL)
        return -EINVAL;
    if (thread_is_off())
        return fn(ctx, arg);
    struct funcmon_call call = funcmon_begin(funcmon_site(name, package));
    int rc = fn(ctx, arg);
    uint32_t flags = rc != 0 ? FUNCMON_RECORD_ERROR : 0;
    switch (funcmon_ctx_err(ctx)) {
    case FUNCMON_ECANCELED:
        flags |= FUNCMON_RECORD_CANCELLED | FUNCMON_RECORD_ERROR;
        break;
    case FUNCMON_EDEADLINE:
        flags |= FUNCMON_RECORD_DEADLINE | FUNCMON_RECORD_ERROR;
        break;
    }
    funcmon__end(&call, flags);
    return rc;
}

FUNCMON_API uint64_t
funcmon_now(void)
{
    return funcmon__ticks();
}

/* The flags a span may carry: FUNCMON_RECORD_ALLOC would claim allocation figures it has not. */
#define SPAN_FLAGS (FUNCMON_RECORD_ERROR | FUNCMON_RECORD_CANCELLED | FUNCMON_RECORD_DEADLINE | FUNCMON_RECORD_CLIENT_ERROR)

FUNCMON_API void
funcmon_record_span(uint32_t site, uint64_t start_ticks, uint32_t flags)
{
    struct funcmon__thread *t = &funcmon__tls;
    uint32_t live = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED);

    flags &= SPAN_FLAGS;
    if (FUNCMON__UNLIKELY(t->state != live)) {
        if (t->state == (live ^ FUNCMON__MODE_RING ^ FUNCMON__MODE_OFF))
            return;
        /* First use on this thread in this generation, or no ring: the begin slow path
         * attaches the thread. Its call is taken back at once, so depth and error marks are
         * as they were (a sidecar may glimpse it in flight for that instant). */
        uint64_t err_bits = t->err_bits;
        struct funcmon_call c = funcmon__begin_slow(site);
        if (c.mode == FUNCMON__CALL_OFF)
            return;
        if (c.mode == FUNCMON__CALL_SLOW) {
            /* No ring: the slow end counts it in the spill counters; only the span's own
             * flags may make it an error. */
            uint64_t bit = (uint64_t)(c.depth < 64) << (c.depth & 63);
            t->err_bits = err_bits & ~bit;
            c.start = start_ticks;
            uint64_t now = funcmon__ticks();
            funcmon__end_slow(&c, now < start_ticks ? start_ticks : now, flags);
            t->err_bits = err_bits;
            return;
        }
        t->depth = c.depth;
        t->top = (uint64_t)c.parent_stack << 32 | c.parent_site;
        __atomic_store_n(&t->slot->depth, c.depth, __ATOMIC_RELEASE);
        if (t->state != __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED))
            return;
    }
    uint64_t end = funcmon__ticks();
    funcmon__record_span(t, site, start_ticks, end < start_ticks ? start_ticks : end, flags);
}
