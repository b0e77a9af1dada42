/*
 * test_alloc.c - the allocation tracker: exact inclusive bytes per call, every member of
 * the malloc family, and process totals through the control channel.
 *
 * Expected figures come from the test's own allocations: sizes are chosen so that glibc's
 * usable size equals the request (24 + 16k bytes), which the test checks first with
 * malloc_usable_size; for aligned allocations the expectation is the sum of
 * malloc_usable_size over the blocks the test got.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

static void *volatile keep; /* stops the compiler from eliding allocations */

static void *
thread_allocs(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        void *p = malloc(1000);
        keep = p;
        if (i % 2 == 0)
            free(p); /* 50 freed, 50 kept (freed by main) */
        else
            ((void **)arg)[i / 2] = p;
    }
    return NULL;
}

static void
totals(struct funcmon_consumer *c, struct funcmon_alloc_totals *out)
{
    CHECK_EQ(funcmon_consumer_control(c, FUNCMON_CTL_SAMPLE, 5000), 0);
    *out = c->hdr->alloc_totals;
}

int
main(void)
{
    struct funcmon_consumer c;
    static struct harness_tally t;

    if (harness_malloc_replaced())
        SKIP("built with a sanitizer that replaces malloc: allocation tracking cannot interpose it");
    harness_private_prefix();
    CHECK_EQ(funcmon_init(NULL), 0); /* FUNCMON_TRACK_ALLOC=1 comes from the environment */
    CHECK_EQ(funcmon_alloc_tracking(), 1);
    harness_open_self(&c);
    CHECK(c.hdr->flags & FUNCMON_HEADER_ALLOC_TRACKING);

    uint32_t s_outer = FUNCMON_SITE("outer", "alloc"), s_inner = FUNCMON_SITE("inner", "alloc");
    uint32_t s_realloc = FUNCMON_SITE("realloc", "alloc"), s_aligned = FUNCMON_SITE("aligned", "alloc");
    uint32_t s_none = FUNCMON_SITE("no_alloc", "alloc");

    /* Nested: inclusive, like durations. */
    struct funcmon_call outer = funcmon_begin(s_outer);
    char *a = malloc(1000);
    CHECK_EQ(malloc_usable_size(a), 1000);
    struct funcmon_call inner = funcmon_begin(s_inner);
    char *b = malloc(3000);
    CHECK_EQ(malloc_usable_size(b), 3000);
    free(a);
    funcmon_end(&inner, 0);
    char *cc = calloc(10, 100);
    CHECK_EQ(malloc_usable_size(cc), 1000);
    free(b);
    funcmon_end(&outer, 0);
    free(cc);

    /* realloc: the new block allocated, the old one freed. */
    char *r = malloc(1000);
    struct funcmon_call rc = funcmon_begin(s_realloc);
    r = realloc(r, 5000);
    CHECK_EQ(malloc_usable_size(r), 5000);
    volatile size_t huge = SIZE_MAX / 2;
    CHECK(reallocarray(NULL, huge, 4) == NULL); /* overflow: ENOMEM, nothing counted */
    CHECK_EQ(errno, ENOMEM);
    funcmon_end(&rc, 0);
    free(r);

    /* The aligned family. */
    void *p1 = NULL, *p2, *p3, *p4, *bad = NULL;
    struct funcmon_call al = funcmon_begin(s_aligned);
    CHECK_EQ(posix_memalign(&p1, 64, 1000), 0);
    CHECK_EQ(posix_memalign(&bad, 3, 1000), EINVAL); /* refused, not counted */
    p2 = aligned_alloc(256, 512);
    p3 = memalign(128, 100);
    p4 = valloc(100);
    CHECK(p1 && p2 && p3 && p4);
    CHECK_EQ((uintptr_t)p1 % 64, 0);
    CHECK_EQ((uintptr_t)p2 % 256, 0);
    CHECK_EQ((uintptr_t)p3 % 128, 0);
    uint64_t aligned_bytes = malloc_usable_size(p1) + malloc_usable_size(p2) + malloc_usable_size(p3) + malloc_usable_size(p4);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    funcmon_end(&al, 0);

    struct funcmon_call none = funcmon_begin(s_none);
    funcmon_end(&none, 0);

    harness_drain_all(&c, &t);
    CHECK_EQ(t.alloc_bytes[s_inner], 3000);
    CHECK_EQ(t.free_bytes[s_inner], 1000);
    CHECK_EQ(t.alloc_count[s_inner], 1);
    CHECK_EQ(t.free_count[s_inner], 1);
    CHECK_EQ(t.alloc_bytes[s_outer], 5000);
    CHECK_EQ(t.free_bytes[s_outer], 4000);
    CHECK_EQ(t.alloc_count[s_outer], 3);
    CHECK_EQ(t.free_count[s_outer], 2);
    CHECK(t.flags_or[s_outer] & FUNCMON_RECORD_ALLOC);
    CHECK_EQ(t.alloc_bytes[s_realloc], 5000);
    CHECK_EQ(t.free_bytes[s_realloc], 1000);
    CHECK_EQ(t.alloc_count[s_realloc], 1);
    CHECK_EQ(t.free_count[s_realloc], 1);
    CHECK_EQ(t.alloc_bytes[s_aligned], aligned_bytes);
    CHECK_EQ(t.free_bytes[s_aligned], aligned_bytes);
    CHECK_EQ(t.alloc_count[s_aligned], 4);
    CHECK_EQ(t.free_count[s_aligned], 4);
    CHECK_EQ(t.alloc_bytes[s_none], 0);
    CHECK_EQ(t.free_bytes[s_none], 0);

    /* Process totals: exactly what this thread and an exited thread did in between. */
    void *kept[50];
    pthread_t th;
    struct funcmon_alloc_totals t0, t1, t2;
    totals(&c, &t0);
    for (int i = 0; i < 10; i++) {
        keep = malloc(1000);
        free(keep);
    }
    void *volatile live = malloc(3000); /* volatile: no malloc/free pair for the compiler to drop */
    CHECK_EQ(pthread_create(&th, NULL, thread_allocs, kept), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    totals(&c, &t1);
    /* pthread_create allocates the new thread's TLS vector in this thread: allow for that
     * bookkeeping, and nothing else. */
    uint64_t ours_alloc = 10 * 1000 + 3000 + 100 * 1000, ours_free = 10 * 1000 + 50 * 1000;
    CHECK_GE(t1.alloc_bytes - t0.alloc_bytes, ours_alloc);
    CHECK_LT(t1.alloc_bytes - t0.alloc_bytes, ours_alloc + 4096);
    CHECK_GE(t1.free_bytes - t0.free_bytes, ours_free);
    CHECK_LT(t1.free_bytes - t0.free_bytes, ours_free + 4096);
    /* Main thread only, no thread start-up in between: exact. Blocks count by their usable
     * size, which the allocator may round up (a 3,000-byte request can reuse a slightly
     * larger free block, depending on what the heap held before). */
    uint64_t usable = malloc_usable_size(live);
    for (int i = 0; i < 50; i++)
        usable += malloc_usable_size(kept[i]);
    CHECK_GE(usable, 50 * 1000 + 3000);
    for (int i = 0; i < 50; i++)
        free(kept[i]);
    free(live);
    totals(&c, &t2);
    CHECK_EQ(t2.free_bytes - t1.free_bytes, usable);
    CHECK_EQ(t2.free_count - t1.free_count, 51);
    CHECK_EQ(t2.alloc_bytes, t1.alloc_bytes);
    CHECK_EQ(t2.alloc_count, t1.alloc_count);
    /* Under valgrind the allocator is valgrind's, and mallinfo2 reports zeros. */
    if (getenv("FUNCMON_TEST_UNDER_VALGRIND") == NULL)
        CHECK_GT(c.hdr->alloc_stats.in_use, 0);
    CHECK_GT(c.hdr->alloc_stats.rss, 0);

    funcmon_consumer_close(&c);
    funcmon_shutdown();
    CHECK_EQ(funcmon_alloc_tracking(), 0);
    printf("test_alloc: ok\n");
    return 0;
}
