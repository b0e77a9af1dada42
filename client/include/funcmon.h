/*
 * funcmon.h - function-level resource monitoring for C and C++ services.
 *
 * A service links libfuncmon and marks the functions it wants measured. Every call becomes
 * one fixed-size record (site, start and end time, bytes allocated and freed, error flags)
 * in the calling thread's own ring in POSIX shared memory; the funcmond sidecar reads the
 * rings, aggregates, and serves the results over HTTP and Prometheus. The service never
 * waits for the sidecar: a full ring drops the record's detail and counts it, so call and
 * error counts stay exact.
 *
 * The whole cost of a profiled call is the two inline functions at the end of this file,
 * funcmon_begin() and funcmon_end(): two clock reads, a dozen loads and stores to memory
 * the thread owns, and one release store. No call, system call, lock or allocation.
 * Anything rare (a thread's first call, a full ring, a fork, a disabled library) goes to an
 * exported funcmon__*_slow function.
 *
 * Four ways to instrument (all thread-safe):
 *
 *     rc = funcmon_profile("load_user", "db", load_user, &req);   // wrap a function
 *
 *     struct funcmon_call c = funcmon_begin(FUNCMON_SITE("parse", "http"));
 *     ...; funcmon_end(&c, rc != 0);                              // begin/end in place
 *
 *     FUNCMON_SCOPE("flush", "cache") {                           // a block, any exit
 *         if (write_all() < 0) funcmon_set_error();
 *     }
 *
 *     funcmon_profile_ctx(&ctx, "fetch", "api", fetch, &arg);     // deadline and cancel
 */
#ifndef FUNCMON_H
#define FUNCMON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "funcmon/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FUNCMON_API __attribute__((visibility("default")))
#define FUNCMON__LIKELY(x) __builtin_expect(!!(x), 1)
#define FUNCMON__INLINE static inline __attribute__((always_inline))
#define FUNCMON__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#error "funcmon needs GCC or clang"
#endif

#define FUNCMON_ON 1
#define FUNCMON_OFF (-1)

/* Options of funcmon_init. A zero field takes the environment's value, else the default, so
 * a zeroed struct behaves like NULL; funcmon_options_from_env() shows the effective values. */
struct funcmon_options {
    int enabled;            /* FUNCMON_ON, FUNCMON_OFF (every call runs plain), 0: FUNCMON_ENABLED, default on */
    const char *service;    /* FUNCMON_SERVICE, default the program name */
    const char *shm_prefix; /* FUNCMON_SHM_PREFIX, default "funcmon": segment /<prefix>.<service>.<pid> */
    uint32_t pool_records;  /* FUNCMON_POOL_RECORDS, default 458752, in [32, 2^30]: records in the pool shared by the threads */
    uint32_t chunk_records; /* FUNCMON_CHUNK_RECORDS, default 128, a power of two in [16, 65536]: records a thread takes at once */
    uint32_t max_threads;   /* FUNCMON_MAX_THREADS, default 4096, in [1, 4096]: threads with a slot (the others: counts only) */
    uint32_t max_sites;     /* FUNCMON_MAX_SITES, default 4096, in [16, 65536]; fixed by the first init or site */
    int track_alloc;        /* FUNCMON_ON, FUNCMON_OFF, 0: FUNCMON_TRACK_ALLOC, default off */
    int quiet;              /* non-zero: no line on stderr when init fails */
};

/* Fills *opts from the environment and the defaults. Returns 0, or -EINVAL when a variable
 * holds a bad value (opts then has the default for it, and `bad` names the variable). */
FUNCMON_API int funcmon_options_from_env(struct funcmon_options *opts, const char **bad);

/*
 * Starts profiling: creates this process's segment and its control thread. With opts NULL,
 * everything comes from the environment. Safe to call again after funcmon_shutdown().
 * Returns 0 on success (also when disabled by FUNCMON_ENABLED=0), or -errno: -EINVAL for a
 * bad option, -EEXIST when the segment name is taken, -ENOSPC when shared memory is full,
 * -EACCES, -EALREADY when already initialised. On any error one line goes to stderr and
 * profiling stays off: every profiled call still runs and returns its value.
 */
FUNCMON_API int funcmon_init(const struct funcmon_options *opts);

/* Stops profiling: marks the segment shut down, stops the control thread, and unlinks the
 * segment unless a sidecar has attached (it then drains and unlinks it). Calls made after it
 * run plain. Threads still inside a profiled call are safe: their last writes land in
 * private memory. */
FUNCMON_API void funcmon_shutdown(void);

/* 1 when calls are being recorded (initialised, enabled, segment created). */
FUNCMON_API int funcmon_active(void);

/* The segment's shm name ("/funcmon.svc.123"), or NULL when not active. */
FUNCMON_API const char *funcmon_segment_name(void);

/* 1 when the allocation tracker counts this process's malloc family calls. It may be off
 * although requested: another interposer (a sanitizer, another malloc) came first. */
FUNCMON_API int funcmon_alloc_tracking(void);

/* Runs fn(arg), records the call, returns fn's result; a non-zero result is an error. */
FUNCMON_API int funcmon_profile(const char *name, const char *package, int (*fn)(void *), void *arg);

/* A context in the sense of Go's context.Context: a deadline and a cancel flag. */
struct funcmon_ctx {
    uint64_t deadline_ns; /* CLOCK_MONOTONIC nanoseconds; 0 = none */
    int cancelled;        /* set with funcmon_ctx_cancel, from any thread */
};

#define FUNCMON_ECANCELED 1 /* funcmon_ctx_err: the context was cancelled */
#define FUNCMON_EDEADLINE 2 /* funcmon_ctx_err: the deadline has passed */

/* Initialises ctx with a deadline timeout_ns from now (0: no deadline). */
FUNCMON_API void funcmon_ctx_init(struct funcmon_ctx *ctx, uint64_t timeout_ns);
/* Cancels ctx; thread-safe. */
FUNCMON_API void funcmon_ctx_cancel(struct funcmon_ctx *ctx);
/* 0 while ctx is live, FUNCMON_ECANCELED, or FUNCMON_EDEADLINE. */
FUNCMON_API int funcmon_ctx_err(const struct funcmon_ctx *ctx);

/*
 * Runs fn(ctx, arg), records the call, returns fn's result. A call that ends cancelled or
 * past its deadline is recorded with FUNCMON_RECORD_CANCELLED or _DEADLINE, and as an error.
 */
FUNCMON_API int funcmon_profile_ctx(struct funcmon_ctx *ctx, const char *name, const char *package,
                                    int (*fn)(struct funcmon_ctx *, void *), void *arg);

/*
 * Site ids. A site is one (package, name) pair; its id is what a record carries. Ids are
 * small integers that stay the same for the life of the process, across funcmon_shutdown
 * and funcmon_init, and in forked children:
 *   0  FUNCMON_SITE_NONE: never returned for a site; "no site", and the value of an empty
 *      cache (below);
 *   1  FUNCMON_SITE_OVERFLOW: the site table was full; such calls are counted under
 *      "<overflow>" (package "funcmon");
 *   2 and up: one (package, name) pair each.
 */

/*
 * Interns (package, name) and returns its site id; the same pair always gives the same id,
 * from any thread. Names longer than FUNCMON_NAME_MAX (packages: FUNCMON_PACKAGE_MAX) bytes
 * are truncated; a NULL or empty name is "<unnamed>". When the site table is full the id
 * is FUNCMON_SITE_OVERFLOW, whose calls are counted under the name "<overflow>". Takes a
 * hash lookup; use FUNCMON_SITE or funcmon_site_cached on hot paths.
 */
FUNCMON_API uint32_t funcmon_site(const char *name, const char *package);

/*
 * The site id of (name, package), remembered in *cache: the first call (with *cache == 0)
 * interns the pair and stores its id there; every later call is one load and does not read
 * name or package. For names known only at run time that repeat (a command table, a
 * route): keep one uint32_t per name, zero-initialised, e.g. beside the command.
 * A cache belongs to one (name, package) pair; threads may share it (racing first calls
 * store the same id). Never returns 0.
 */
static inline uint32_t funcmon_site_cached(uint32_t *cache, const char *name, const char *package);

/* FUNCMON_SITE(name, package): the site id of a call site, interned on first use and then
 * a single load. name and package must be the same on every pass (string literals). */
#define FUNCMON_SITE(name, package)                                                                                                \
    __extension__({                                                                                                                \
        static uint32_t funcmon__site_cache;                                                                                       \
        funcmon_site_cached(&funcmon__site_cache, (name), (package));                                                              \
    })

/* An in-flight call, returned by funcmon_begin; treat as opaque. */
struct funcmon_call {
    uint64_t start;
    uint64_t alloc_bytes;
    uint64_t free_bytes;
    uint32_t alloc_count;
    uint32_t free_count;
    uint32_t site;
    uint32_t parent_site;
    uint32_t parent_stack;
    uint32_t depth;
    uint32_t mode; /* FUNCMON__CALL_* */
};

/* Begins a profiled call of a site. */
static inline struct funcmon_call funcmon_begin(uint32_t site);
/* Ends it; err non-zero marks it failed (as does funcmon_set_error inside it). */
static inline void funcmon_end(struct funcmon_call *call, int err);

/* Marks the innermost profiled call in flight on this thread as failed. */
FUNCMON_API void funcmon_set_error(void);

/* Now, in the clock of the records (TSC ticks or CLOCK_MONOTONIC nanoseconds): the start of a
 * span for funcmon_record_span. */
FUNCMON_API uint64_t funcmon_now(void);

/*
 * Records one finished call of `site` that ran from start_ticks (a funcmon_now() value) to
 * now, apart from the thread's stack of profiled calls: for work that does not nest, such as
 * requests interleaved on one event-loop thread and ended in a completion callback. The
 * record goes to the calling thread's ring with depth 0, parent FUNCMON_SITE_NONE, no
 * allocation figures, and the given FUNCMON_RECORD_ERROR / _CANCELLED / _DEADLINE /
 * _CLIENT_ERROR flags (others are ignored). The calls in flight on the thread, its depth and
 * its error marks are left as they were. A full ring drops the record and counts it (and its
 * error) like any call. Does nothing when profiling is off. `site` comes from funcmon_site()
 * or FUNCMON_SITE(); a start later than now is recorded as a zero-length call.
 */
FUNCMON_API void funcmon_record_span(uint32_t site, uint64_t start_ticks, uint32_t flags);

/* FUNCMON_SCOPE(name, package) { ... }: profiles the block. The call ends however the block
 * is left (end of block, return, goto, break, continue); funcmon_set_error() inside marks it
 * failed. The block is the body of a one-pass loop, so a break or continue directly inside
 * it leaves the block, not an enclosing loop. */
#define FUNCMON_SCOPE(name, package) FUNCMON__SCOPE(FUNCMON__CAT(funcmon__scope_, __COUNTER__), name, package)
#define FUNCMON__CAT(a, b) FUNCMON__CAT2(a, b)
#define FUNCMON__CAT2(a, b) a##b
#define FUNCMON__SCOPE(var, name, package)                                                                                         \
    for (struct funcmon_call var __attribute__((cleanup(funcmon__scope_cleanup))) = funcmon_begin(FUNCMON_SITE(name, package));    \
         (var.mode & FUNCMON__CALL_LEAVING) == 0; var.mode |= FUNCMON__CALL_LEAVING)

/* ----- internals below this line: the hot path, inline, and its slow paths ----- */

#define FUNCMON__CALL_OFF 0u     /* profiling off: funcmon_end does nothing */
#define FUNCMON__CALL_FAST 1u    /* recorded into the thread's ring */
#define FUNCMON__CALL_SLOW 2u    /* the thread has no ring: funcmon_end goes to the slow path */
#define FUNCMON__CALL_LEAVING 4u /* FUNCMON_SCOPE's loop ran once */

#define FUNCMON__MODE_NONE 0u /* thread not attached in this generation */
#define FUNCMON__MODE_RING 1u /* thread owns a ring */
#define FUNCMON__MODE_OFF 2u  /* profiling off for this thread */
#define FUNCMON__MODE_SLOW 3u /* no ring: calls counted by the slow path */

/* Per-thread state, in static TLS. Everything the hot path touches is here or in the
 * thread's own slot and chunk. */
struct funcmon__thread {
    uint32_t state; /* generation << 2 | FUNCMON__MODE_* */
    uint32_t depth; /* profiled calls in flight */
    /* The innermost call in flight: its stack id << 32 | its site (0: none). Kept here, not
     * read back from the slot's in-flight stack, so it is right at any depth and whatever
     * the slot held before this thread owned it. */
    uint64_t top;
    uint64_t head;                  /* next position */
    uint64_t check_at;              /* head at which funcmon_end must take the slow path: the end of the chunk */
    uint64_t mask;                  /* chunk_records - 1 */
    struct funcmon_record *records; /* the current chunk's records: position p at records[p & mask] */
    struct funcmon_thread_slot *slot;
    uint64_t err_bits;     /* bit d: the call at depth d was marked failed */
    uint32_t record_flags; /* flags every record of this thread carries (FUNCMON_RECORD_ALLOC) */
    uint32_t exiting;      /* the thread is past its TLS destructor: no new ring */
    uint32_t retry_in;     /* FUNCMON__MODE_SLOW: calls until the next try for a free slot */
    uint32_t max_sites;
    struct funcmon_shm_header *hdr; /* the segment this thread writes to (slow paths only) */
    struct funcmon_site_entry *sites;
    struct funcmon_chunk *chunks; /* the segment's chunk headers */
    struct funcmon_record *pool;  /* the segment's chunk records */
    struct funcmon_chunk *chunk;  /* the chunk written now, NULL if none */
    uint64_t chunk_end;           /* the position after the current chunk's last (head if none) */
    uint32_t pool_chunks;
    uint32_t slot_index;
    uint32_t wake_backlog;              /* unread records of the slot at which a sleeping sidecar is woken */
    struct funcmon__thread *alloc_next; /* the allocation tracker's list of counting threads */
    struct funcmon__thread *alloc_prev;
    uint32_t alloc_listed; /* 0 not yet, 1 listed, 2 exited (never again) */
    /* allocation tracker counters, monotonic for the thread's life */
    uint64_t alloc_bytes;
    uint64_t free_bytes;
    uint64_t alloc_count;
    uint64_t free_count;
};

extern FUNCMON_API __thread struct funcmon__thread funcmon__tls __attribute__((tls_model("initial-exec")));
/* generation << 2 | FUNCMON__MODE_RING: a thread whose state equals it owns a live ring. */
extern FUNCMON_API uint32_t funcmon__live_state;
/* 1: timestamps are TSC ticks; 0: CLOCK_MONOTONIC nanoseconds. */
extern FUNCMON_API int funcmon__clock_tsc;

FUNCMON_API struct funcmon_call funcmon__begin_slow(uint32_t site);
FUNCMON_API void funcmon__end_slow(struct funcmon_call *call, uint64_t end, uint32_t flags);
FUNCMON_API uint32_t funcmon__site_cached_slow(uint32_t *cache, const char *name, const char *package);
FUNCMON_API uint64_t funcmon__mono_ticks(void);

FUNCMON__INLINE uint64_t
funcmon__ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (FUNCMON__LIKELY(funcmon__clock_tsc))
        return __builtin_ia32_rdtsc();
#endif
    return funcmon__mono_ticks();
}

FUNCMON__INLINE uint32_t
funcmon_site_cached(uint32_t *cache, const char *name, const char *package)
{
    /* Relaxed: the id is a plain number; the site it names is published by the registry. */
    uint32_t id = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (FUNCMON__UNLIKELY(id == FUNCMON_SITE_NONE))
        id = funcmon__site_cached_slow(cache, name, package);
    return id;
}

FUNCMON__INLINE struct funcmon_call
funcmon_begin(uint32_t site)
{
    struct funcmon__thread *t = &funcmon__tls;
    struct funcmon_call c;
    uint32_t state = t->state, live = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED);

    if (FUNCMON__UNLIKELY(state != live)) {
        if (state == (live ^ FUNCMON__MODE_RING ^ FUNCMON__MODE_OFF)) {
            c.mode = FUNCMON__CALL_OFF;
            return c;
        }
        return funcmon__begin_slow(site);
    }
    uint32_t depth = t->depth;
    c.mode = FUNCMON__CALL_FAST;
    c.site = site;
    c.depth = depth;
    uint64_t top = t->top;
    c.parent_site = (uint32_t)top;
    c.parent_stack = (uint32_t)(top >> 32);
    uint32_t stack = funcmon_stack_id(c.parent_stack, site);
    t->top = (uint64_t)stack << 32 | site;
    c.alloc_bytes = t->alloc_bytes;
    c.free_bytes = t->free_bytes;
    c.alloc_count = (uint32_t)t->alloc_count;
    c.free_count = (uint32_t)t->free_count;
    c.start = funcmon__ticks();
    if (depth < FUNCMON_INFLIGHT_MAX) {
        t->slot->inflight[depth].site = site;
        t->slot->inflight[depth].stack = stack;
        t->slot->inflight[depth].start = c.start;
    }
    t->depth = depth + 1;
    /* Pairs with the sidecar's acquire load of depth before it reads inflight[]. */
    __atomic_store_n(&t->slot->depth, depth + 1, __ATOMIC_RELEASE);
    return c;
}

/* Writes the record of a call ending now at ring position head and publishes it. */
FUNCMON__INLINE void
funcmon__publish(struct funcmon__thread *t, const struct funcmon_call *call, uint64_t end, uint32_t flags, uint64_t head)
{
    uint32_t depth = call->depth;
    uint64_t bit = (uint64_t)(depth < 64) << (depth & 63);
    struct funcmon_record *r = &t->records[head & t->mask];
    r->seq = head;
    r->site = call->site;
    r->parent_site = call->parent_site;
    r->flags = (uint16_t)(flags | ((t->err_bits & bit) != 0) | t->record_flags);
    r->depth = (uint16_t)depth;
    r->parent_stack = call->parent_stack;
    r->start = call->start;
    r->end = end;
    r->alloc_bytes = t->alloc_bytes - call->alloc_bytes;
    r->free_bytes = t->free_bytes - call->free_bytes;
    r->alloc_count = (uint32_t)t->alloc_count - call->alloc_count;
    r->free_count = (uint32_t)t->free_count - call->free_count;
    t->err_bits &= ~bit;
    t->head = head + 1;
    t->depth = depth;
    t->top = (uint64_t)call->parent_stack << 32 | call->parent_site;
    /* Pairs with the consumer's acquire load of head before it reads the record; depth
     * with its acquire load before it reads inflight[] (proto/src/consumer.c). */
    __atomic_store_n(&t->slot->head, head + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&t->slot->depth, depth, __ATOMIC_RELEASE);
}

/* funcmon_end with record flags (FUNCMON_RECORD_ERROR, _CANCELLED, _DEADLINE). */
FUNCMON__INLINE void
funcmon__end(struct funcmon_call *call, uint32_t flags)
{
    struct funcmon__thread *t = &funcmon__tls;

    if (call->mode != FUNCMON__CALL_FAST) {
        if (call->mode != FUNCMON__CALL_OFF)
            funcmon__end_slow(call, funcmon__ticks(), flags);
        return;
    }
    uint64_t end = funcmon__ticks();
    uint64_t head = t->head;
    if (FUNCMON__UNLIKELY(head == t->check_at)) {
        funcmon__end_slow(call, end, flags);
        return;
    }
    funcmon__publish(t, call, end, flags, head);
}

FUNCMON__INLINE void
funcmon_end(struct funcmon_call *call, int err)
{
    funcmon__end(call, err != 0 ? FUNCMON_RECORD_ERROR : 0);
}

static inline void
funcmon__scope_cleanup(struct funcmon_call *call)
{
    call->mode &= ~FUNCMON__CALL_LEAVING;
    funcmon_end(call, 0);
}

#ifdef __cplusplus
}
#endif

#endif
