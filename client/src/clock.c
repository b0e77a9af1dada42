/*
 * clock.c - the timestamps of records, and how the sidecar turns them into time.
 *
 * A profiled call reads the clock twice, so the clock sets the floor of its cost: rdtsc
 * costs about 10 ns here, clock_gettime(CLOCK_MONOTONIC) about 25. The TSC is used when it
 * is invariant (constant rate, running in every C-state) and the kernel itself trusts it
 * as its clocksource, which also means it is synchronised across CPUs; otherwise records
 * carry CLOCK_MONOTONIC nanoseconds. FUNCMON_CLOCK=tsc|monotonic overrides the choice.
 *
 * The header carries a calibration, ns = ((ticks - ref_ticks) * tick_mult) >> tick_shift
 * (128-bit product) plus the CLOCK_MONOTONIC and CLOCK_REALTIME readings at ref_ticks. Init
 * measures the rate over 1 ms; the control thread re-measures it over the whole time since
 * init when asked to sample (and once a second after start), which makes the rate precise
 * to parts per million without costing anything on the hot path.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "internal.h"

FUNCMON_API int funcmon__clock_tsc;

#define CALIB_SHIFT 32u

static struct {
    pthread_mutex_t lock;
    uint64_t ref_ticks;
    uint64_t ref_mono_ns;
    uint64_t ref_real_ns;
    uint64_t tick_mult;
    int ready;
} calib = {.lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t
funcmon__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
funcmon__real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

FUNCMON_API uint64_t
funcmon__mono_ticks(void)
{
    return funcmon__mono_ns();
}

static int
tsc_is_trustworthy(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned int eax, ebx, ecx, edx;
    char src[32] = "";
    FILE *f;

    if (!__get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx) || !(edx & (1u << 8)))
        return 0; /* not invariant */
    const char *force = getenv("FUNCMON_CLOCK");
    if (force != NULL && strcmp(force, "tsc") == 0)
        return 1;
    f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
    if (f == NULL)
        return 0;
    if (fgets(src, sizeof(src), f) == NULL)
        src[0] = '\0';
    fclose(f);
    return strncmp(src, "tsc", 3) == 0 && (src[3] == '\n' || src[3] == '\0');
#else
    return 0;
#endif
}

/* A (ticks, monotonic ns) pair read as close together as this machine allows: the
 * tightest of a few tries, ticks taken at the midpoint. */
static void
read_pair(uint64_t *ticks, uint64_t *mono)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 7; i++) {
        uint64_t a = funcmon__ticks();
        uint64_t m = funcmon__mono_ns();
        uint64_t b = funcmon__ticks();
        if (b - a < best) {
            best = b - a;
            *ticks = a + (b - a) / 2;
            *mono = m;
        }
    }
}

static uint64_t
rate_between(uint64_t t0, uint64_t m0, uint64_t t1, uint64_t m1)
{
    if (t1 <= t0 || m1 <= m0)
        return 0;
    return (uint64_t)(((unsigned __int128)(m1 - m0) << CALIB_SHIFT) / (t1 - t0));
}

void
funcmon__clock_init(void)
{
    const char *force = getenv("FUNCMON_CLOCK");
    int tsc = tsc_is_trustworthy();

    if (force != NULL && strcmp(force, "monotonic") == 0)
        tsc = 0;
    pthread_mutex_lock(&calib.lock);
    if (calib.ready && funcmon__clock_tsc == tsc) {
        pthread_mutex_unlock(&calib.lock);
        return;
    }
    funcmon__clock_tsc = tsc;
    read_pair(&calib.ref_ticks, &calib.ref_mono_ns);
    calib.ref_real_ns = funcmon__real_ns() - (funcmon__mono_ns() - calib.ref_mono_ns);
    if (tsc) {
        struct timespec pause = {0, 1000000};
        uint64_t t1, m1;
        nanosleep(&pause, NULL);
        read_pair(&t1, &m1);
        calib.tick_mult = rate_between(calib.ref_ticks, calib.ref_mono_ns, t1, m1);
        if (calib.tick_mult == 0) { /* the TSC did not move: do not trust it */
            funcmon__clock_tsc = 0;
            read_pair(&calib.ref_ticks, &calib.ref_mono_ns);
        }
    }
    if (!funcmon__clock_tsc)
        calib.tick_mult = UINT64_C(1) << CALIB_SHIFT;
    calib.ready = 1;
    pthread_mutex_unlock(&calib.lock);
}

void
funcmon__clock_atfork_prepare(void)
{
    pthread_mutex_lock(&calib.lock);
}

void
funcmon__clock_atfork_release(void)
{
    pthread_mutex_unlock(&calib.lock);
}

void
funcmon__clock_refine(void)
{
    uint64_t t1, m1, mult;

    if (!funcmon__clock_tsc)
        return;
    read_pair(&t1, &m1);
    pthread_mutex_lock(&calib.lock);
    /* Below 100 ms the init measurement is as good as this one. */
    if (m1 - calib.ref_mono_ns >= 100000000u && (mult = rate_between(calib.ref_ticks, calib.ref_mono_ns, t1, m1)) != 0)
        calib.tick_mult = mult;
    pthread_mutex_unlock(&calib.lock);
}

void
funcmon__clock_publish(struct funcmon_shm_header *hdr)
{
    pthread_mutex_lock(&calib.lock);
    /* Sequence lock: an odd value tells a reader to retry. The acquire half of the
     * increment keeps the field stores after it; the release store of the even value
     * keeps them before it. (No fences: ThreadSanitizer checks atomics, not fences.) */
    uint32_t seq = __atomic_fetch_add(&hdr->calib_seq, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&hdr->clock_source, funcmon__clock_tsc ? FUNCMON_CLOCK_TSC : FUNCMON_CLOCK_MONOTONIC, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->tick_shift, CALIB_SHIFT, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->tick_mult, calib.tick_mult, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->ref_ticks, calib.ref_ticks, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->ref_mono_ns, calib.ref_mono_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->ref_real_ns, calib.ref_real_ns, __ATOMIC_RELAXED);
    /* Pairs with the reader's acquire load of calib_seq (funcmon_consumer_clock). */
    __atomic_store_n(&hdr->calib_seq, seq + 2, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&calib.lock);
}
