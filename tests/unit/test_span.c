/*
 * test_span.c - funcmon_record_span records calls that do not nest, and leaves the thread's
 * stack of calls alone.
 *
 * Request spans begin and end out of order on an event-loop thread, so they are recorded
 * after the fact. The test records spans with known sites, flags and sleeps, inside and
 * outside open calls, on a thread's first use, on a full ring, and on a thread without a
 * ring, then drains its own segment and checks each record, the thread's in-flight state,
 * the drop and spill counters and the sidecar wake-up against what it did.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

static void
sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The slot of the calling thread, as the sidecar sees it. */
static void
own_slot(struct funcmon_consumer *c, pid_t tid, struct funcmon_slot_info *out)
{
    for (uint32_t i = 0; i < c->geo.max_threads; i++) {
        CHECK_EQ(funcmon_consumer_slot(c, i, out), 0);
        if (out->state == FUNCMON_SLOT_ACTIVE && out->tid == tid)
            return;
    }
    fprintf(stderr, "no active slot for thread %d\n", (int)tid);
    exit(1);
}

static void
check_span_record(const struct funcmon_record *r, uint32_t site, uint32_t flags)
{
    CHECK_EQ(r->site, site);
    CHECK_EQ(r->flags, flags);
    CHECK_EQ(r->depth, 0);
    CHECK_EQ(r->parent_site, FUNCMON_SITE_NONE);
    CHECK_EQ(r->alloc_bytes, 0);
    CHECK_EQ(r->free_bytes, 0);
    CHECK_EQ(r->alloc_count, 0);
    CHECK_EQ(r->free_count, 0);
    CHECK_LE(r->start, r->end);
}

struct first_use {
    uint32_t site;
    pid_t tid;
    struct funcmon_consumer *c;
    uint32_t depth_after;
};

/* A thread whose first profiled act is a span: it attaches, and no call stays in flight. */
static void *
first_use_thread(void *arg)
{
    struct first_use *fu = arg;
    struct funcmon_slot_info si;
    fu->tid = gettid();
    funcmon_record_span(fu->site, funcmon_now(), FUNCMON_RECORD_ERROR);
    own_slot(fu->c, fu->tid, &si);
    fu->depth_after = si.depth;
    return NULL;
}

/* Spans of the ordinary kind, nested in calls and on a fresh thread. */
static void
spans_are_recorded(void)
{
    struct funcmon_consumer c;
    struct harness_tally t = {0};
    struct funcmon_slot_info si;

    CHECK_EQ(funcmon_init(NULL), 0);
    harness_open_self(&c);

    uint32_t s_sleep = funcmon_site("GET_/sleep", "http_handler");
    uint32_t s_nested = funcmon_site("GET_/nested", "http_handler");
    uint32_t s_deep = funcmon_site("GET_/deep", "http_handler");
    uint32_t s_future = funcmon_site("GET_/future", "http_handler");
    uint32_t s_thread = funcmon_site("GET_/thread", "http_handler");
    uint32_t s_outer = FUNCMON_SITE("outer", "test");
    uint32_t s_inner = FUNCMON_SITE("inner", "test");

    /* Durations: three spans around a 2 ms sleep, flags as given (ALLOC is not a span's). */
    for (int i = 0; i < 3; i++) {
        uint64_t start = funcmon_now();
        sleep_ns(2000000);
        funcmon_record_span(s_sleep, start, FUNCMON_RECORD_CLIENT_ERROR | FUNCMON_RECORD_ALLOC);
    }

    /* Inside an open call marked failed: the span is neither part of the stack nor failed,
     * and the call keeps its depth, its place in flight and its error mark. */
    struct funcmon_call outer = funcmon_begin(s_outer);
    funcmon_set_error();
    uint64_t nested_start = funcmon_now();
    funcmon_record_span(s_nested, nested_start, 0);
    own_slot(&c, gettid(), &si);
    CHECK_EQ(si.depth, 1);
    CHECK_EQ(si.inflight[0].site, s_outer);
    struct funcmon_call inner = funcmon_begin(s_inner);
    funcmon_record_span(s_deep, funcmon_now(), FUNCMON_RECORD_ERROR);
    funcmon_set_error();
    funcmon_record_span(s_deep, funcmon_now(), 0);
    own_slot(&c, gettid(), &si);
    CHECK_EQ(si.depth, 2);
    CHECK_EQ(si.inflight[1].site, s_inner);
    funcmon_end(&inner, 0);
    funcmon_end(&outer, 0);

    /* A start after now is a zero-length span, not a negative one. */
    funcmon_record_span(s_future, funcmon_now() + (UINT64_C(1) << 40), 0);

    /* A thread's first profiled act may be a span. */
    struct first_use fu = {.site = s_thread, .c = &c};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, first_use_thread, &fu), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(fu.depth_after, 0);

    CHECK_EQ(harness_drain_all(&c, &t), 10); /* 3 sleep, 1 nested, 2 deep, outer, inner, future, thread */
    CHECK_EQ(c.bad_records, 0);
    CHECK_EQ(t.calls[s_sleep], 3);
    CHECK_EQ(t.errors[s_sleep], 0);
    check_span_record(&t.last[s_sleep], s_sleep, FUNCMON_RECORD_CLIENT_ERROR);
    uint64_t d = harness_duration_ns(&c, &t.last[s_sleep]);
    CHECK_GE(d, 2000000);
    CHECK_LT(d, 2000000 + 200000000); /* scheduler slack, generous for sanitizer builds */

    CHECK_EQ(t.calls[s_nested], 1);
    check_span_record(&t.last[s_nested], s_nested, 0);
    CHECK_EQ(t.last[s_nested].start, nested_start);
    CHECK_EQ(t.calls[s_deep], 2);
    CHECK_EQ(t.errors[s_deep], 1); /* the span marked failed, not the one after set_error */
    check_span_record(&t.last[s_deep], s_deep, 0);
    CHECK_EQ(t.calls[s_outer], 1);
    CHECK_EQ(t.errors[s_outer], 1);
    CHECK_EQ(t.last[s_outer].depth, 0);
    CHECK_LE(t.last[s_outer].start, nested_start);
    CHECK_EQ(t.calls[s_inner], 1);
    CHECK_EQ(t.errors[s_inner], 1);
    CHECK_EQ(t.last[s_inner].depth, 1);
    CHECK_EQ(t.last[s_inner].parent_site, s_outer);
    CHECK_EQ(t.calls[s_future], 1);
    CHECK_EQ(t.last[s_future].end, t.last[s_future].start);
    CHECK_EQ(t.calls[s_thread], 1);
    check_span_record(&t.last[s_thread], s_thread, FUNCMON_RECORD_ERROR);

    own_slot(&c, gettid(), &si);
    CHECK_EQ(si.depth, 0);
    CHECK_EQ(si.dropped, 0);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
}

/* A full ring: spans and calls beyond it are dropped and counted exactly, errors included;
 * the high-water mark wakes a sleeping sidecar once; the ring goes on after a drain. */
static void
full_ring_counts(void)
{
    struct funcmon_options o = {.pool_records = 64, .chunk_records = 16};
    struct funcmon_consumer c;
    struct harness_tally t = {0};
    struct funcmon_slot_info si;
    uint64_t calls, errors;

    CHECK_EQ(funcmon_init(&o), 0);
    harness_open_self(&c);
    uint32_t s_span = funcmon_site("GET_/full", "http_handler");
    uint32_t s_call = FUNCMON_SITE("call_on_full_ring", "test");

    /* A sidecar about to sleep until a ring fills says so; the span that finds the ring a
     * quarter full (16 of 64) wakes it, the ones before do not. */
    __atomic_store_n(&c.hdr->consumer_waiting, 1, __ATOMIC_SEQ_CST);
    uint64_t wakeups = __atomic_load_n(&c.hdr->wakeups, __ATOMIC_RELAXED);
    for (int i = 0; i < 16; i++)
        funcmon_record_span(s_span, funcmon_now(), 0);
    CHECK_EQ(__atomic_load_n(&c.hdr->wakeups, __ATOMIC_RELAXED), wakeups);
    CHECK_EQ(__atomic_load_n(&c.hdr->consumer_waiting, __ATOMIC_RELAXED), 1);
    funcmon_record_span(s_span, funcmon_now(), 0);
    CHECK_EQ(__atomic_load_n(&c.hdr->wakeups, __ATOMIC_RELAXED), wakeups + 1);
    CHECK_EQ(__atomic_load_n(&c.hdr->consumer_waiting, __ATOMIC_RELAXED), 0);

    /* 17 in the ring; 47 more fill it; 36 spans (every third failed, every third after that
     * answered 4xx) and 5 calls (3 failed) find it full. */
    for (int i = 0; i < 47; i++)
        funcmon_record_span(s_span, funcmon_now(), 0);
    for (int i = 0; i < 36; i++) {
        funcmon_record_span(s_span, funcmon_now(),
                            i % 3 == 0   ? FUNCMON_RECORD_ERROR
                            : i % 3 == 1 ? FUNCMON_RECORD_CLIENT_ERROR
                                         : 0);
        if (i % 8 == 0) {
            struct funcmon_call call = funcmon_begin(s_call);
            funcmon_end(&call, i % 16 == 0);
        }
    }
    own_slot(&c, gettid(), &si);
    CHECK_EQ(si.dropped, 36 + 5);
    CHECK_EQ(si.depth, 0);
    CHECK_EQ(funcmon_consumer_spill(&c, s_span, &calls, &errors), 0);
    CHECK_EQ(calls, 36);
    CHECK_EQ(errors, 12);
    uint64_t client_errors;
    CHECK_EQ(funcmon_consumer_spill_client_errors(&c, s_span, &client_errors), 0);
    CHECK_EQ(client_errors, 12);
    CHECK_EQ(funcmon_consumer_spill(&c, s_call, &calls, &errors), 0);
    CHECK_EQ(calls, 5);
    CHECK_EQ(errors, 3); /* i = 0, 16, 32 */

    CHECK_EQ(harness_drain_all(&c, &t), 64);
    CHECK_EQ(t.calls[s_span], 64);
    CHECK_EQ(t.errors[s_span], 0);
    CHECK_EQ(t.calls[s_call], 0);

    /* After the drain, spans and calls alternate through the ring twice over: none lost,
     * none overwritten (each record's sequence is checked by the consumer). */
    memset(&t, 0, sizeof(t));
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 20; i++) {
            funcmon_record_span(s_span, funcmon_now(), FUNCMON_RECORD_ERROR);
            struct funcmon_call call = funcmon_begin(s_call);
            funcmon_end(&call, 0);
        }
        CHECK_EQ(harness_drain_all(&c, &t), 40);
    }
    CHECK_EQ(t.calls[s_span], 80);
    CHECK_EQ(t.errors[s_span], 80);
    CHECK_EQ(t.calls[s_call], 80);
    CHECK_EQ(c.bad_records, 0);
    own_slot(&c, gettid(), &si);
    CHECK_EQ(si.dropped, 36 + 5);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
}

struct no_ring {
    uint32_t span_site, call_site;
};

/* A thread without a ring (every slot taken): its spans and calls are counted in spill. */
static void *
no_ring_thread(void *arg)
{
    struct no_ring *nr = arg;
    struct funcmon_call call = funcmon_begin(nr->call_site);
    for (int i = 0; i < 7; i++)
        funcmon_record_span(nr->span_site, funcmon_now(), i < 3 ? FUNCMON_RECORD_ERROR : 0);
    funcmon_set_error(); /* marks the call, not a span */
    funcmon_record_span(nr->span_site, funcmon_now(), 0);
    funcmon_end(&call, 0);
    return NULL;
}

static void
no_ring_counts(void)
{
    struct funcmon_options o = {.max_threads = 1};
    struct funcmon_consumer c;
    struct harness_tally t = {0};
    uint64_t calls, errors;

    CHECK_EQ(funcmon_init(&o), 0);
    harness_open_self(&c);
    struct no_ring nr = {funcmon_site("GET_/no_ring", "http_handler"), FUNCMON_SITE("no_ring_call", "test")};
    funcmon_record_span(nr.span_site, funcmon_now(), 0); /* this thread takes the only slot */
    uint64_t fallback = __atomic_load_n(&c.hdr->fallback_calls, __ATOMIC_RELAXED);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, no_ring_thread, &nr), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);

    CHECK_EQ(funcmon_consumer_spill(&c, nr.span_site, &calls, &errors), 0);
    CHECK_EQ(calls, 8);
    CHECK_EQ(errors, 3);
    CHECK_EQ(funcmon_consumer_spill(&c, nr.call_site, &calls, &errors), 0);
    CHECK_EQ(calls, 1);
    CHECK_EQ(errors, 1);
    CHECK_EQ(__atomic_load_n(&c.hdr->fallback_calls, __ATOMIC_RELAXED), fallback + 9);
    CHECK_EQ(harness_drain_all(&c, &t), 1);
    CHECK_EQ(t.calls[nr.span_site], 1);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
}

int
main(void)
{
    harness_private_prefix();

    /* Before init and after shutdown a span does nothing, and says so by not crashing. */
    uint64_t a = funcmon_now();
    funcmon_record_span(funcmon_site("GET_/off", "http_handler"), a, FUNCMON_RECORD_ERROR);
    CHECK_GE(funcmon_now(), a);

    spans_are_recorded();
    full_ring_counts();
    no_ring_counts();

    funcmon_record_span(funcmon_site("GET_/off", "http_handler"), funcmon_now(), 0);
    CHECK(!funcmon_active());
    printf("test_span: ok\n");
    return 0;
}
