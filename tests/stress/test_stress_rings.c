/*
 * test_stress_rings.c - 8 threads x 1M calls, drained by a consumer in another process:
 * every record arrives exactly once, in per-thread order, never torn.
 *
 * Each producer thread has its own site and marks call k as failed when k % 7 == 0. The
 * consumer process checks, record by record, that a ring only carries its thread's site,
 * that the k-th record of a site has the k-th error flag (a lost, doubled or reordered
 * record breaks the pattern), that start times never go back, and that each record sits
 * at the position it claims (the consumer's seq check). The producers never block: they
 * pace themselves on their own ring's fill level so the exactly-once claim is testable
 * (drops are covered by test_ring); the test asserts that none happened.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

#define THREADS 8
#define CALLS 1000000ull
#define RING 4096u

static uint32_t sites[THREADS];

struct site_state {
    uint64_t count;
    uint64_t errors;
    uint64_t last_start;
};

struct verify {
    struct site_state per_site[64];
    uint32_t ring_site[64]; /* the site each ring carries, 0 = none yet */
    uint64_t total;
};

static void
check_record(void *arg, uint32_t ring, const struct funcmon_record *r)
{
    struct verify *v = arg;
    CHECK_LT(ring, 64);
    CHECK_LT(r->site, 64);
    if (v->ring_site[ring] == 0)
        v->ring_site[ring] = r->site;
    CHECK_EQ(r->site, v->ring_site[ring]); /* one thread per ring while they all live */
    struct site_state *s = &v->per_site[r->site];
    int want_err = s->count % 7 == 0;
    CHECK_EQ((r->flags & FUNCMON_RECORD_ERROR) != 0, want_err);
    CHECK_EQ(r->flags & ~FUNCMON_RECORD_ERROR, 0);
    CHECK_EQ(r->depth, 0);
    CHECK_EQ(r->parent_site, 0);
    CHECK_EQ(r->alloc_bytes + r->free_bytes + r->alloc_count + r->free_count, 0);
    CHECK_GE(r->end, r->start);
    CHECK_GE(r->start, s->last_start);
    s->last_start = r->start;
    s->count++;
    s->errors += want_err;
    v->total++;
}

static int
consumer_process(const char *name)
{
    static struct verify v;
    struct funcmon_consumer c;
    enum funcmon_invalid why;
    struct timespec pause = {0, 100000}; /* drain every 100 us, like a sidecar on a timer */
    time_t give_up = time(NULL) + 240;

    CHECK_EQ(funcmon_consumer_open(&c, name, &why), 0);
    while (v.total < THREADS * CALLS) {
        if (funcmon_consumer_drain(&c, check_record, &v, SIZE_MAX) == 0)
            nanosleep(&pause, NULL);
        if (time(NULL) > give_up) {
            fprintf(stderr, "consumer: only %llu of %llu records after 240 s\n", (unsigned long long)v.total,
                    (unsigned long long)(THREADS * CALLS));
            return 1;
        }
    }
    /* Nothing more than what was called. */
    funcmon_consumer_drain(&c, check_record, &v, SIZE_MAX);
    CHECK_EQ(v.total, THREADS * CALLS);
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(v.per_site[sites[i]].count, CALLS);
        CHECK_EQ(v.per_site[sites[i]].errors, (CALLS + 6) / 7);
    }
    CHECK_EQ(funcmon_consumer_dropped(&c), 0);
    CHECK_EQ(c.bad_records, 0);
    CHECK_EQ(c.bad_rings, 0);
    funcmon_consumer_close(&c);
    printf("consumer: %llu records, each exactly once, in order\n", (unsigned long long)v.total);
    return 0;
}

static void *
producer(void *arg)
{
    uint32_t site = sites[(intptr_t)arg];
    for (uint64_t k = 0; k < CALLS; k++) {
        if ((k & 63) == 0) {
            /* Pace on this thread's own backlog (its TLS state and slot): leave room. */
            while (funcmon__tls.slot != NULL &&
                   funcmon__tls.head - __atomic_load_n(&funcmon__tls.slot->tail, __ATOMIC_ACQUIRE) > RING - 128)
                sched_yield();
        }
        struct funcmon_call c = funcmon_begin(site);
        funcmon_end(&c, k % 7 == 0);
    }
    return NULL;
}

int
main(void)
{
    struct funcmon_options o = {0};
    pthread_t th[THREADS];
    char name[300];

    harness_private_prefix();
    /* Room for every thread's paced backlog, plus the chunk each is part way through. */
    o.pool_records = THREADS * (RING + 256);
    o.max_threads = 16;
    CHECK_EQ(funcmon_init(&o), 0);
    snprintf(name, sizeof(name), "%s", funcmon_segment_name());
    for (int i = 0; i < THREADS; i++) {
        char fn[32];
        snprintf(fn, sizeof(fn), "producer_%d", i);
        sites[i] = funcmon_site(fn, "stress");
        CHECK_LT(sites[i], 64);
    }
    pid_t consumer = fork();
    CHECK_GE(consumer, 0);
    if (consumer == 0)
        _exit(consumer_process(name));

    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, producer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    int status;
    CHECK_EQ(waitpid(consumer, &status, 0), consumer);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    funcmon_shutdown();
    printf("test_stress_rings: ok (%d threads x %llu calls)\n", THREADS, (unsigned long long)CALLS);
    return 0;
}
