/*
 * bench_client.c - what a profiled call costs the service, against baselines from the
 * same run (DESIGN §7).
 *
 * Every figure is the median over 101 batches of 2^15 operations, in ns per operation,
 * the loop included in figure and baseline alike. A consumer process drains the rings
 * every 200 us meanwhile, as the sidecar would; batches are 2 ms apart so that it keeps
 * up, and the bench reports the drops it saw (a figure with drops would time the drop
 * path instead). Lines: `name median=X baseline=Y ratio=R`.
 *   client_call_ns            begin+end, record published   vs two back-to-back rdtsc
 *   client_call_ns (vs clock) the same                      vs two clock_gettime
 *   client_call_tracked_ns    with allocation tracking on   vs two back-to-back rdtsc
 *   malloc_free_tracked_ns    malloc(64)+free, tracked      vs the same untracked
 *   malloc_free_untracked_ns  through funcmon, tracking off vs glibc's own malloc+free
 *   disabled_call_ns          a plain call inside begin/end, FUNCMON_ENABLED=0, vs the plain call
 *   client_call_2threads_ns   per call, two threads at once vs one thread
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "funcmon.h"
#include "funcmon/consumer.h"

/* 2^15 calls take under 1 ms: half a default-size ring's worth of headroom in the bench's
 * 64 Ki-record ring, so the consumer keeps up and no call takes the drop path. */
#define BATCH (1u << 15)
#define BATCHES 101

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);

static volatile uint64_t sink;

__attribute__((noinline)) static int
empty_call(int x)
{
    __asm__ volatile("" ::: "memory");
    return x + 1;
}

typedef void (*batch_fn)(void);

static void
b_floor_rdtsc(void)
{
    uint64_t s = 0;
    for (unsigned i = 0; i < BATCH; i++) {
        uint64_t a = __builtin_ia32_rdtsc();
        uint64_t b = __builtin_ia32_rdtsc();
        s += b - a;
    }
    sink = s;
}

static void
b_clock_gettime(void)
{
    struct timespec a, b;
    uint64_t s = 0;
    for (unsigned i = 0; i < BATCH; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        s += (uint64_t)(b.tv_nsec - a.tv_nsec);
    }
    sink = s;
}

static void
b_plain_call(void)
{
    int s = 0;
    for (unsigned i = 0; i < BATCH; i++)
        s = empty_call(s);
    sink = (uint64_t)s;
}

static uint32_t bench_site;

static void
b_profiled_call(void)
{
    for (unsigned i = 0; i < BATCH; i++) {
        struct funcmon_call c = funcmon_begin(bench_site);
        __asm__ volatile("" ::: "memory");
        funcmon_end(&c, 0);
    }
}

/* A plain call wrapped in begin/end: compared with b_plain_call when disabled. */
static void
b_profiled_plain_call(void)
{
    int s = 0;
    for (unsigned i = 0; i < BATCH; i++) {
        struct funcmon_call c = funcmon_begin(bench_site);
        s = empty_call(s);
        funcmon_end(&c, 0);
    }
    sink = (uint64_t)s;
}

static void
b_malloc_free(void)
{
    for (unsigned i = 0; i < BATCH; i++) {
        void *p = malloc(64);
        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
    }
}

static void
b_libc_malloc_free(void)
{
    for (unsigned i = 0; i < BATCH; i++) {
        void *p = __libc_malloc(64);
        __asm__ volatile("" : : "r"(p) : "memory");
        __libc_free(p);
    }
}

static double
measure(batch_fn fn)
{
    double v[BATCHES];
    struct timespec gap = {0, 2000000};
    fn(); /* warm-up */
    for (int i = 0; i < BATCHES; i++) {
        nanosleep(&gap, NULL);
        uint64_t t0 = now_ns();
        fn();
        v[i] = (double)(now_ns() - t0) / BATCH;
    }
    return median(v, BATCHES);
}

/* Two threads measuring at once; returns the mean of their medians. */
static double measure_two_threads(batch_fn fn);

struct pair_arg {
    batch_fn fn;
    double result;
    pthread_barrier_t *barrier;
};

static void *
pair_thread(void *arg)
{
    struct pair_arg *p = arg;
    pthread_barrier_wait(p->barrier);
    p->result = measure(p->fn);
    return NULL;
}

static double
measure_two_threads(batch_fn fn)
{
    pthread_barrier_t barrier;
    pthread_t th[2];
    struct pair_arg args[2];
    pthread_barrier_init(&barrier, NULL, 2);
    for (int i = 0; i < 2; i++) {
        args[i] = (struct pair_arg){fn, 0, &barrier};
        pthread_create(&th[i], NULL, pair_thread, &args[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    return (args[0].result + args[1].result) / 2;
}

static void
noop(void *arg, uint32_t ring, const struct funcmon_record *rec)
{
    (void)ring;
    *(uint64_t *)arg += rec->end - rec->start;
}

/* The sidecar's stand-in: another process draining every 200 us until killed. */
static pid_t
start_consumer(const char *name)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    struct funcmon_consumer c;
    uint64_t sum = 0;
    struct timespec pause = {0, 200000};
    if (funcmon_consumer_open(&c, name, NULL) != 0)
        _exit(1);
    for (;;) {
        funcmon_consumer_drain(&c, noop, &sum, SIZE_MAX);
        nanosleep(&pause, NULL);
    }
}

static void
stop_consumer(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void
line(const char *name, double v, const char *base_name, double base)
{
    printf("%s median=%.2f %s=%.2f ratio=%.2f\n", name, v, base_name, base, v / base);
}

static uint64_t
dropped_now(const char *name)
{
    struct funcmon_consumer c;
    if (funcmon_consumer_open(&c, name, NULL) != 0)
        return UINT64_MAX;
    uint64_t d = funcmon_consumer_dropped(&c);
    funcmon_consumer_close(&c);
    return d;
}

int
main(void)
{
    struct funcmon_options o = {0};
    char prefix[64], name[300];

    snprintf(prefix, sizeof(prefix), "fmbench-%d", (int)getpid());
    o.shm_prefix = prefix;
    o.service = "bench";

    double floor_rdtsc = measure(b_floor_rdtsc);
    double clock2 = measure(b_clock_gettime);
    double plain = measure(b_plain_call);
    double libc_mf = measure(b_libc_malloc_free);
    double untracked_mf = measure(b_malloc_free); /* funcmon's malloc, tracking off */

    /* Profiling on, tracking off. */
    o.track_alloc = FUNCMON_OFF;
    if (funcmon_init(&o) != 0)
        return 1;
    snprintf(name, sizeof(name), "%s", funcmon_segment_name());
    bench_site = FUNCMON_SITE("bench_fn", "bench");
    pid_t consumer = start_consumer(name);
    usleep(20000);
    double call = measure(b_profiled_call);
    double call2 = measure_two_threads(b_profiled_call);
    uint64_t drops = dropped_now(name);
    stop_consumer(consumer);
    funcmon_shutdown();
    shm_unlink(name);

    /* Tracking on. */
    o.track_alloc = FUNCMON_ON;
    if (funcmon_init(&o) != 0)
        return 1;
    snprintf(name, sizeof(name), "%s", funcmon_segment_name());
    consumer = start_consumer(name);
    usleep(20000);
    double call_tracked = measure(b_profiled_call);
    double mf_tracked = measure(b_malloc_free);
    drops += dropped_now(name);
    stop_consumer(consumer);
    funcmon_shutdown();
    shm_unlink(name);

    /* Disabled: FUNCMON_ENABLED=0 */
    o.enabled = FUNCMON_OFF;
    funcmon_init(&o);
    double disabled = measure(b_profiled_plain_call);
    funcmon_shutdown();

    line("client_call_ns", call, "floor_2rdtsc", floor_rdtsc);
    line("client_call_ns", call, "two_clock_gettime", clock2);
    line("client_call_ns", call, "empty_call", plain);
    line("client_call_tracked_ns", call_tracked, "floor_2rdtsc", floor_rdtsc);
    line("malloc_free_tracked_ns", mf_tracked, "untracked_malloc_free", untracked_mf);
    line("malloc_free_untracked_ns", untracked_mf, "libc_malloc_free", libc_mf);
    printf("disabled_call_ns median=%.2f plain_call=%.2f diff=%.2f\n", disabled, plain, disabled - plain);
    line("client_call_2threads_ns", call2, "one_thread", call);
    printf("records_dropped_during_bench %llu\n", (unsigned long long)drops);
    return 0;
}
