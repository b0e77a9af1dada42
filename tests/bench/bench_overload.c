/*
 * bench_overload.c - what a client under overload loses, judged through a real funcmond
 * with its default settings (DESIGN §2 and §7, the bars of protocol 2).
 *
 *   sidecar_burst_drops    one thread, default settings, making 32,768 calls at full speed
 *                          and pausing 2 ms, over and over for 20 M calls: records dropped
 *                          (bar: 0), and whether funcmond's call_count equals the calls
 *                          made
 *   sidecar_flat_out_stop  one thread calling flat out for 10 s, default settings, while
 *                          funcmond is stopped (SIGSTOP) for 1 s in the middle: whether
 *                          funcmond's call_count equals the calls made, and how far its
 *                          total_duration is from the truth this bench measured itself
 *                          (bar: within 1%), with the calls that were dropped
 *
 * Only public interfaces are used: funcmon.h on the client side, funcmond's HTTP answers
 * on the other (PROFILE dropped_count when funcmond has it, else its drop counters), so
 * the same lines judge any protocol.
 *
 * The truth of sidecar_flat_out_stop, measured without funcmon: each call's body does a
 * fixed amount of work (about a microsecond), and this bench reads the TSC itself just
 * after funcmon_begin and just before funcmon_end. funcmon's span (from its clock read in
 * begin to the one in end) is that span plus what lies between the two reads on each
 * side: begin's last stores and the bench's own read. That gap is measured in the same
 * thread between the calls, on stand-in calls that have the bench's reads where funcmon's
 * stand (64 after each 1,024 calls). clock_gettime would do worse: it costs about 25 ns and
 * reads the counter in its middle. A call whose CPU was taken from it next to one of
 * funcmon's clock reads (a window around begin or end longer than 1 us) cannot be split:
 * it counts as the middle of what the bench read around and inside it, and half the
 * difference is the "+-" of the line, the resolution of the method in this run (near 0 on
 * an idle machine). Ticks become nanoseconds through the bench's own calibration against
 * CLOCK_MONOTONIC over the run, not funcmon's. The body is long enough that the gap is a
 * small part of a call, and short enough that the 1 s stop outlasts any default buffer (a
 * million calls a second against a segment of about 33 MiB: at most ~540,000 64-byte
 * records).
 *
 * Usage: bench_overload FUNCMOND [burst|stop]...
 * BENCH_BURST_CALLS (default 20000000) and BENCH_STOP_SECONDS (default 10) shorten them.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "funcmon.h"
#include "funcmond_proc.h"

#define BURST_CALLS 32768
#define BURST_PAUSE_NS 2000000
#define BODY_ITERATIONS 600 /* a dependent multiply-add chain: about 1 us here */
#define PREEMPTED_NS 1000.0 /* a clock read window this long lost its CPU */

static const char *funcmond;

static uint64_t
env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    return v != NULL && strtoull(v, NULL, 10) > 0 ? strtoull(v, NULL, 10) : fallback;
}

/* A real funcmond on a private prefix and this process's client with default settings
 * (only the prefix and the service name chosen), attached to each other. */
static void
start_pair(struct funcmond_proc *sidecar, const char *service)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "fm%s-%d", service, (int)getpid());
    if (funcmond_proc_start_client(sidecar, funcmond, prefix, service) != 0)
        exit(1);
}

static void
stop_pair(struct funcmond_proc *sidecar)
{
    funcmon_shutdown();
    funcmond_proc_stop(sidecar);
}

/* funcmond's count of (service, name) once it stopped growing at `calls`, and the calls it
 * says were dropped. */
static void
counted(struct funcmond_proc *sidecar, const char *service, const char *name, uint64_t calls, uint64_t *seen, uint64_t *dropped,
        const char **source)
{
    funcmond_wait_calls(sidecar, service, name, calls, 60, seen);
    usleep(200000); /* drop counters are read by funcmond's next passes */
    if (funcmond_dropped(sidecar, service, "bench", name, dropped, source) != 0) {
        fprintf(stderr, "%s: funcmond gave no drop figure\n", service);
        *dropped = UINT64_MAX;
        *source = "none";
    }
}

static void
bench_burst(void)
{
    struct funcmond_proc sidecar;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = BURST_PAUSE_NS};
    uint64_t total = env_u64("BENCH_BURST_CALLS", 20000000), calls = 0, seen, dropped;
    const char *source;

    start_pair(&sidecar, "burst");
    uint32_t site = FUNCMON_SITE("burst_call", "bench");
    uint64_t t0 = now_ns();
    while (calls < total) {
        uint64_t n = total - calls < BURST_CALLS ? total - calls : BURST_CALLS;
        for (uint64_t i = 0; i < n; i++) {
            struct funcmon_call c = funcmon_begin(site);
            funcmon_end(&c, 0);
        }
        calls += n;
        nanosleep(&pause, NULL);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    counted(&sidecar, "burst", "burst_call", calls, &seen, &dropped, &source);
    printf("sidecar_burst_drops value=%llu bar=0 calls=%llu dropped_pct=%.2f call_count=%llu exact=%d "
           "(bursts of %d calls 2 ms apart for %.1f s; drops from %s)\n",
           (unsigned long long)dropped, (unsigned long long)calls, 100.0 * (double)dropped / (double)calls,
           (unsigned long long)seen, seen == calls, BURST_CALLS, secs, source);
    stop_pair(&sidecar);
}

/* This bench's own clock for the truth: the TSC where there is one, read where it stands. */
static inline uint64_t
truth_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return now_ns();
#endif
}

/* A reading of truth_ticks and CLOCK_MONOTONIC taken together (the ticks between two
 * monotonic reads, the monotonic time as their midpoint). */
static void
clock_pair(uint64_t *ticks, double *mono_ns)
{
    uint64_t before = now_ns();
    *ticks = truth_ticks();
    *mono_ns = ((double)before + (double)now_ns()) / 2;
}

static volatile uint64_t body_sink;

static void __attribute__((noinline)) body(void)
{
    uint64_t v = body_sink;
    for (int i = 0; i < BODY_ITERATIONS; i++)
        v = v * 6364136223846793005ull + 1442695040888963407ull;
    body_sink = v;
}

struct stop_caller {
    int stop;
    uint64_t preempted_ticks; /* a clock read window longer than this was preempted */
    uint64_t calls;
    uint64_t clean_calls;     /* calls whose clock read windows were not preempted */
    uint64_t clean_inner;     /* sum of their spans between this bench's inner reads */
    double unclear;           /* sum of the midpoints of the other calls' brackets */
    double unclear_halfwidth; /* and of their half-widths */
    uint64_t gap_ticks;       /* sum of the gaps of the stand-in calls (not preempted) */
    uint64_t gap_samples;
};

/* Stand-ins for profiled calls, with this bench's clock reads where funcmon's stand: what
 * the two reads of the bench inside a call miss of funcmon's span, measured in the same
 * conditions as the calls (the same thread, between them). */
static void
measure_gap(struct stop_caller *s, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t start = truth_ticks();
        uint64_t begun = truth_ticks();
        body();
        uint64_t ending = truth_ticks();
        uint64_t end = truth_ticks();
        uint64_t gap = (end - start) - (ending - begun);
        if (gap < s->preempted_ticks) {
            s->gap_ticks += gap;
            s->gap_samples++;
        }
    }
}

static void *
stop_caller(void *arg)
{
    struct stop_caller *s = arg;
    uint32_t site = FUNCMON_SITE("stop_call", "bench");
    while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        for (int i = 0; i < 1024; i++) {
            uint64_t before = truth_ticks();
            struct funcmon_call c = funcmon_begin(site);
            uint64_t begun = truth_ticks();
            body();
            uint64_t ending = truth_ticks();
            funcmon_end(&c, 0);
            uint64_t after = truth_ticks();
            if (begun - before < s->preempted_ticks && after - ending < s->preempted_ticks) {
                s->clean_inner += ending - begun;
                s->clean_calls++;
            } else {
                /* The thread lost its CPU next to one of funcmon's clock reads: inside its
                 * span or not, nobody knows. */
                s->unclear += ((double)(ending - begun) + (double)(after - before)) / 2;
                s->unclear_halfwidth += ((double)(after - before) - (double)(ending - begun)) / 2;
            }
        }
        s->calls += 1024;
        measure_gap(s, 64);
    }
    return NULL;
}

static void
sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void
bench_stop(void)
{
    struct funcmond_proc sidecar;
    struct stop_caller s = {0};
    pthread_t th;
    uint64_t seconds = env_u64("BENCH_STOP_SECONDS", 10), seen, dropped, total_ns = 0, ticks0, ticks1;
    double mono0, mono1;
    const char *source;

    if (seconds < 2)
        seconds = 2; /* room for the 1 s stop in the middle */
    start_pair(&sidecar, "stop");
    uint64_t before_stop = seconds * 1000000000ull / 2 - 500000000ull;
    clock_pair(&ticks0, &mono0);
    sleep_ns(20000000);
    clock_pair(&ticks1, &mono1);
    s.preempted_ticks = (uint64_t)(PREEMPTED_NS * (double)(ticks1 - ticks0) / (mono1 - mono0));
    clock_pair(&ticks0, &mono0);
    pthread_create(&th, NULL, stop_caller, &s);
    sleep_ns(before_stop);
    kill(sidecar.pid, SIGSTOP);
    sleep_ns(1000000000ull);
    kill(sidecar.pid, SIGCONT);
    sleep_ns(seconds * 1000000000ull - before_stop - 1000000000ull);
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    clock_pair(&ticks1, &mono1);
    double ns_per_tick = (mono1 - mono0) / (double)(ticks1 - ticks0);

    counted(&sidecar, "stop", "stop_call", s.calls, &seen, &dropped, &source);
    if (funcmond_profile_u64(&sidecar, "stop", "stop_call", "total_duration_ns", &total_ns) != 0)
        fprintf(stderr, "stop: funcmond gave no total_duration_ns\n");
    double gap = s.gap_samples > 0 ? (double)s.gap_ticks / (double)s.gap_samples : 0;
    double truth = ((double)s.clean_inner + (double)s.clean_calls * gap + s.unclear) * ns_per_tick;
    double resolution = s.unclear_halfwidth * ns_per_tick;
    printf("sidecar_flat_out_stop call_count_exact=%d total_duration_err_pct=%.3f bar=1 dropped=%llu calls=%llu "
           "(%.2f M/s for %.1f s, funcmond stopped 1 s; total_duration %.6f s against %.6f s +- %.3f%%, %.1f ns a call between "
           "clock reads; drops from %s)\n",
           seen == s.calls, 100 * ((double)total_ns - truth) / truth, (unsigned long long)dropped, (unsigned long long)s.calls,
           (double)s.calls / ((mono1 - mono0) / 1e9) / 1e6, (mono1 - mono0) / 1e9, (double)total_ns / 1e9, truth / 1e9,
           100 * resolution / truth, gap * ns_per_tick, source);
    stop_pair(&sidecar);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_overload FUNCMOND [burst|stop]...\n");
        return 2;
    }
    funcmond = argv[1];
    signal(SIGPIPE, SIG_IGN);
    for (int i = 2; i < argc || argc == 2; i++) {
        if (argc == 2 || strcmp(argv[i], "burst") == 0)
            bench_burst();
        if (argc == 2 || strcmp(argv[i], "stop") == 0)
            bench_stop();
        if (argc == 2)
            break;
    }
    return 0;
}
