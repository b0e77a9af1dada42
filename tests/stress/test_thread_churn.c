/*
 * test_thread_churn.c - 1,000 short-lived threads on 8 slots: slots are recycled, no call
 * is lost, no slot leaks; and with nobody draining, the threads beyond the slots still
 * run and are counted exactly (the documented fallback).
 *
 * Each thread makes 100 calls of one site, every 10th failed. Truth is what the test
 * called: records drained plus the site's spill counters must equal it exactly.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

#define SLOTS 8
#define CALLS_PER_THREAD 100

static uint32_t site;
static struct funcmon_consumer c;
static struct harness_tally tally;
static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop_draining;

static void *
worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        struct funcmon_call call = funcmon_begin(site);
        funcmon_end(&call, i % 10 == 0);
    }
    return NULL;
}

static void
drain(void)
{
    pthread_mutex_lock(&drain_lock);
    harness_drain_all(&c, &tally);
    pthread_mutex_unlock(&drain_lock);
}

/* The sidecar's part: drain on a timer. */
static void *
drainer(void *arg)
{
    struct timespec ms = {0, 1000000};
    (void)arg;
    while (!__atomic_load_n(&stop_draining, __ATOMIC_ACQUIRE)) {
        drain();
        nanosleep(&ms, NULL);
    }
    return NULL;
}

static void
run_threads(int n, int concurrent)
{
    pthread_t th[16];
    for (int done = 0; done < n; done += concurrent) {
        for (int i = 0; i < concurrent; i++)
            CHECK_EQ(pthread_create(&th[i], NULL, worker, NULL), 0);
        for (int i = 0; i < concurrent; i++)
            CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
}

static void
expect_exact(uint64_t threads)
{
    uint64_t spill_calls, spill_errors;
    drain();
    CHECK_EQ(funcmon_consumer_spill(&c, site, &spill_calls, &spill_errors), 0);
    CHECK_EQ(tally.calls[site] + spill_calls, threads * CALLS_PER_THREAD);
    CHECK_EQ(tally.errors[site] + spill_errors, threads * CALLS_PER_THREAD / 10);
    CHECK_EQ(c.bad_records, 0);
}

int
main(void)
{
    struct funcmon_options o = {0};
    struct funcmon_slot_info si;
    pthread_t d;

    harness_private_prefix();
    o.max_threads = SLOTS;
    o.pool_records = 64 * 128;
    CHECK_EQ(funcmon_init(&o), 0);
    site = FUNCMON_SITE("churn", "stress");
    harness_open_self(&c);

    /* With a consumer: 1,000 threads, 4 at a time, on 8 slots. */
    CHECK_EQ(pthread_create(&d, NULL, drainer, NULL), 0);
    run_threads(1000, 4);
    __atomic_store_n(&stop_draining, 1, __ATOMIC_RELEASE);
    CHECK_EQ(pthread_join(d, NULL), 0);
    expect_exact(1000);
    CHECK_EQ(funcmon_consumer_dropped(&c), 0);
    CHECK_GT(c.recycled, 0);
    CHECK_GE(c.hdr->threads_claimed + c.hdr->fallback_threads, 1000);
    /* Every thread is gone, every slot drained: all free again, none leaked. */
    for (uint32_t i = 0; i < SLOTS; i++) {
        CHECK_EQ(funcmon_consumer_slot(&c, i, &si), 0);
        CHECK_EQ(si.state, FUNCMON_SLOT_FREE);
        CHECK_EQ(si.depth, 0);
        CHECK_EQ(si.head, si.tail);
    }
    printf("with a consumer: %llu slot claims, %llu threads without a slot, %llu slots recycled\n",
           (unsigned long long)c.hdr->threads_claimed, (unsigned long long)c.hdr->fallback_threads, (unsigned long long)c.recycled);

    /* Without a consumer: retired slots cannot be reused until drained, so threads past the
     * eighth run without a ring; their calls are still counted exactly. */
    uint64_t fallback_before = c.hdr->fallback_threads;
    run_threads(40, 4);
    CHECK_GE(c.hdr->fallback_threads - fallback_before, 40 - SLOTS);
    CHECK_GT(c.hdr->fallback_calls, 0);
    expect_exact(1040);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
    printf("test_thread_churn: ok\n");
    return 0;
}
