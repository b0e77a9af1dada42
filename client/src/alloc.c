/*
 * alloc.c - the allocation tracker: bytes allocated and freed per call and per process.
 *
 * libfuncmon defines the malloc family (malloc, calloc, realloc, reallocarray, free,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc). Each forwards to glibc's
 * __libc_* entry points; while tracking is on (FUNCMON_TRACK_ALLOC=1 at funcmon_init) it
 * also adds the block's usable size (malloc_usable_size) to the calling thread's counters.
 * A record carries the difference of those counters between its begin and end, so it
 * includes nested calls, like its duration. Usable size, not requested size, because it is
 * what free can know too: allocated minus freed then nets to zero for a block freed in the
 * same call, and equals the requested size for most small requests (glibc rounds to 16).
 *
 * When libfuncmon is linked, its definitions come before libc's in symbol lookup; for a
 * program not linked with it, libfuncmon_preload.so does the same through LD_PRELOAD. If
 * something else comes first (ASan, TSan, another malloc), our definitions are never
 * called: funcmon_init sees that through dlsym and reports tracking as unavailable instead
 * of reporting zeros as truth.
 *
 * The allocator's own figures (mallinfo2) and the RSS are sampled here too, for the control
 * thread's answers and the last figures of funcmon_shutdown.
 *
 * Process totals: each counting thread is listed; a sample (control request) sums the
 * listed threads' counters (relaxed loads of words only their owner writes) plus what
 * exited threads left. No shared cache line is written on an allocation.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "funcmon/process.h"
#include "internal.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

static int tracking; /* read relaxed on every allocation, written by init and shutdown */

static struct {
    pthread_mutex_t lock;
    struct funcmon__thread *head;
    struct funcmon_alloc_totals exited;   /* left by threads that exited */
    struct funcmon_alloc_totals baseline; /* subtracted: counts from before a fork */
} threads = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void
list_thread(struct funcmon__thread *t)
{
    t->alloc_listed = 1; /* first: an allocation below must not list it again */
    pthread_mutex_lock(&threads.lock);
    t->alloc_prev = NULL;
    t->alloc_next = threads.head;
    if (threads.head != NULL)
        threads.head->alloc_prev = t;
    threads.head = t;
    pthread_mutex_unlock(&threads.lock);
    funcmon__thread_want_exit_hook(t);
}

static inline void
add(uint64_t *word, uint64_t v)
{
    /* Only this thread writes the word; the store is atomic for the sampling reader. */
    __atomic_store_n(word, *word + v, __ATOMIC_RELAXED);
}

/* The calling thread's counters while tracking is on (listed on first use), else NULL. */
static inline struct funcmon__thread *
counting_thread(void)
{
    if (!__atomic_load_n(&tracking, __ATOMIC_RELAXED))
        return NULL;
    struct funcmon__thread *t = &funcmon__tls;
    if (t->alloc_listed == 0)
        list_thread(t);
    return t;
}

static inline void
count_alloc(void *p)
{
    struct funcmon__thread *t;
    if (p != NULL && (t = counting_thread()) != NULL) {
        add(&t->alloc_bytes, malloc_usable_size(p));
        add(&t->alloc_count, 1);
    }
}

/* A block of `bytes` usable bytes freed. */
static inline void
count_freed(size_t bytes)
{
    struct funcmon__thread *t = counting_thread();
    if (t != NULL) {
        add(&t->free_bytes, bytes);
        add(&t->free_count, 1);
    }
}

FUNCMON_API void *
malloc(size_t size)
{
    void *p = __libc_malloc(size);
    count_alloc(p);
    return p;
}

/* Our own definition, whatever `malloc` resolves to: tells whether we are the interposer.
 * (An alias does not need malloc's optimisation attributes; GCC warns that it lacks them.) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-attributes"
#endif
extern __typeof(malloc) funcmon__own_malloc __attribute__((alias("malloc"), visibility("hidden")));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

FUNCMON_API void *
calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);
    count_alloc(p);
    return p;
}

FUNCMON_API void
free(void *ptr)
{
    if (ptr != NULL && __atomic_load_n(&tracking, __ATOMIC_RELAXED))
        count_freed(malloc_usable_size(ptr));
    __libc_free(ptr);
}

FUNCMON_API void *
realloc(void *ptr, size_t size)
{
    size_t old = (ptr != NULL && __atomic_load_n(&tracking, __ATOMIC_RELAXED)) ? malloc_usable_size(ptr) : 0;
    void *p = __libc_realloc(ptr, size);
    if (p == NULL && (size != 0 || ptr == NULL))
        return NULL; /* failed: the old block is untouched */
    if (ptr != NULL)
        count_freed(old);
    count_alloc(p);
    return p;
}

FUNCMON_API void *
reallocarray(void *ptr, size_t n, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(ptr, bytes);
}

FUNCMON_API void *
memalign(size_t alignment, size_t size)
{
    void *p = __libc_memalign(alignment, size);
    count_alloc(p);
    return p;
}

FUNCMON_API void *
aligned_alloc(size_t alignment, size_t size)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return memalign(alignment, size);
}

FUNCMON_API int
posix_memalign(void **out, size_t alignment, size_t size)
{
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = memalign(alignment, size);
    errno = saved; /* posix_memalign reports through its result, never errno */
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

FUNCMON_API void *
valloc(size_t size)
{
    void *p = __libc_valloc(size);
    count_alloc(p);
    return p;
}

FUNCMON_API void *
pvalloc(size_t size)
{
    void *p = __libc_pvalloc(size);
    count_alloc(p);
    return p;
}

int
funcmon__alloc_interposed(void)
{
    return dlsym(RTLD_DEFAULT, "malloc") == (void *)funcmon__own_malloc;
}

void
funcmon__alloc_enable(int on)
{
    __atomic_store_n(&tracking, on, __ATOMIC_RELAXED);
}

FUNCMON_API int
funcmon_alloc_tracking(void)
{
    return __atomic_load_n(&tracking, __ATOMIC_RELAXED);
}

static void
add_totals(struct funcmon_alloc_totals *sum, const struct funcmon__thread *t)
{
    sum->alloc_bytes += __atomic_load_n(&t->alloc_bytes, __ATOMIC_RELAXED);
    sum->free_bytes += __atomic_load_n(&t->free_bytes, __ATOMIC_RELAXED);
    sum->alloc_count += __atomic_load_n(&t->alloc_count, __ATOMIC_RELAXED);
    sum->free_count += __atomic_load_n(&t->free_count, __ATOMIC_RELAXED);
}

void
funcmon__alloc_totals(struct funcmon_alloc_totals *out)
{
    pthread_mutex_lock(&threads.lock);
    *out = threads.exited;
    for (const struct funcmon__thread *t = threads.head; t != NULL; t = t->alloc_next)
        add_totals(out, t);
    out->alloc_bytes -= threads.baseline.alloc_bytes;
    out->free_bytes -= threads.baseline.free_bytes;
    out->alloc_count -= threads.baseline.alloc_count;
    out->free_count -= threads.baseline.free_count;
    pthread_mutex_unlock(&threads.lock);
}

void
funcmon__alloc_thread_exit(struct funcmon__thread *t)
{
    if (t->alloc_listed != 1) {
        t->alloc_listed = 2;
        return;
    }
    pthread_mutex_lock(&threads.lock);
    if (t->alloc_prev != NULL)
        t->alloc_prev->alloc_next = t->alloc_next;
    else
        threads.head = t->alloc_next;
    if (t->alloc_next != NULL)
        t->alloc_next->alloc_prev = t->alloc_prev;
    add_totals(&threads.exited, t);
    pthread_mutex_unlock(&threads.lock);
    /* Later frees of this thread (other destructors) still count per call, not in totals. */
    t->alloc_listed = 2;
}

/* --- the allocator's own figures (mallinfo2, RSS), for a control request --- */

static uint64_t
rss_bytes(void)
{
    char buf[128];
    if (funcmon_read_proc_file("/proc/self/statm", buf, sizeof(buf)) == 0)
        return 0;
    /* statm: size resident shared ... in pages; parsed without stdio to allocate nothing. */
    char *end;
    (void)strtoull(buf, &end, 10); /* size */
    unsigned long long resident = strtoull(end, NULL, 10);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void
funcmon__alloc_stats_sample(struct funcmon_alloc_stats *out)
{
    struct mallinfo2 mi = mallinfo2();
    memset(out, 0, sizeof(*out));
    out->system = mi.arena + mi.hblkhd;
    out->in_use = mi.uordblks + mi.hblkhd;
    out->free = mi.fordblks;
    out->releasable = mi.keepcost;
    out->mmapped = mi.hblkhd;
    out->rss = rss_bytes();
    out->sampled_real_ns = funcmon__real_ns();
}

void
funcmon__alloc_atfork_prepare(void)
{
    pthread_mutex_lock(&threads.lock);
}

void
funcmon__alloc_atfork_parent(void)
{
    pthread_mutex_unlock(&threads.lock);
}

void
funcmon__alloc_atfork_child(void)
{
    /* Only the forking thread lives on; the child's totals start now. */
    struct funcmon__thread *t = &funcmon__tls;
    threads.head = NULL;
    memset(&threads.exited, 0, sizeof(threads.exited));
    memset(&threads.baseline, 0, sizeof(threads.baseline));
    if (t->alloc_listed == 1) {
        t->alloc_prev = NULL;
        t->alloc_next = NULL;
        threads.head = t;
        add_totals(&threads.baseline, t);
    }
    pthread_mutex_unlock(&threads.lock);
}
