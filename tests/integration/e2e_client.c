/*
 * e2e_client.c - a profiled program the sidecar tests drive: known calls, sleeps and
 * failures on several threads, or calls until told to stop.
 *
 * Usage: e2e_client THREADS CALLS SLEEP_US FAIL_EVERY [FN]
 *   each thread makes CALLS calls of FN (default "work", package "e2e") that sleep
 *   SLEEP_US microseconds and fail when i % FAIL_EVERY == 0 (0: never), plus CALLS calls
 *   of "fast"; then prints "done <calls> <errors>" and exits.
 * CALLS = 0: calls until SIGTERM (one call every SLEEP_US), then prints the same line.
 * E2E_ALLOC_BYTES=N: each call of FN also allocates and frees N bytes.
 * E2E_PACKAGE=P: FN's package is P instead of "e2e".
 * E2E_TIME_CALLS=1: each call of FN is also timed from outside (CLOCK_MONOTONIC), and the
 *   line ends with their total in nanoseconds: "done <calls> <errors> <ns>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "funcmon.h"

static long threads, calls, sleep_us, fail_every;
static const char *fn_name = "work", *fn_package = "e2e";
static int stop; /* set by SIGTERM's handler, read by every thread: atomic */
#define MAX_THREADS 512

static uint64_t made[MAX_THREADS], failed[MAX_THREADS], timed_ns[MAX_THREADS];
static int time_calls; /* E2E_TIME_CALLS */

static long alloc_bytes; /* E2E_ALLOC_BYTES: allocated and freed inside each call of FN */

static int
work(void *arg)
{
    long i = (long)(intptr_t)arg;
    if (alloc_bytes > 0) {
        void *volatile p = malloc((size_t)alloc_bytes);
        free(p);
    }
    if (sleep_us > 0) {
        struct timespec ts = {sleep_us / 1000000, (sleep_us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !__atomic_load_n(&stop, __ATOMIC_RELAXED))
            ;
    }
    return fail_every > 0 && i % fail_every == 0;
}

static int
fast(void *arg)
{
    return (int)(intptr_t)arg & 0;
}

static void *
run(void *arg)
{
    long t = (long)(intptr_t)arg;
    for (long i = 0; calls == 0 ? !__atomic_load_n(&stop, __ATOMIC_RELAXED) : i < calls; i++) {
        struct timespec t0, t1;
        if (time_calls)
            clock_gettime(CLOCK_MONOTONIC, &t0);
        failed[t] += funcmon_profile(fn_name, fn_package, work, (void *)(intptr_t)i) != 0;
        if (time_calls) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            timed_ns[t] += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec));
        }
        made[t]++;
        if (calls != 0)
            funcmon_profile("fast", "e2e", fast, NULL);
    }
    return NULL;
}

static void
on_term(int sig)
{
    (void)sig;
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
}

int
main(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    threads = strtol(argv[1], NULL, 10);
    calls = strtol(argv[2], NULL, 10);
    sleep_us = strtol(argv[3], NULL, 10);
    fail_every = strtol(argv[4], NULL, 10);
    if (argc > 5)
        fn_name = argv[5];
    if (threads < 1 || threads > MAX_THREADS)
        return 2;
    if (getenv("E2E_PACKAGE") != NULL)
        fn_package = getenv("E2E_PACKAGE");
    time_calls = getenv("E2E_TIME_CALLS") != NULL && atoi(getenv("E2E_TIME_CALLS")) != 0;
    if (getenv("E2E_ALLOC_BYTES") != NULL)
        alloc_bytes = strtol(getenv("E2E_ALLOC_BYTES"), NULL, 10);
    signal(SIGTERM, on_term);
    if (funcmon_init(NULL) != 0)
        return 3;
    pthread_t th[MAX_THREADS];
    for (long t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, run, (void *)(intptr_t)t);
    uint64_t total = 0, errors = 0, ns = 0;
    for (long t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        total += made[t];
        errors += failed[t];
        ns += timed_ns[t];
    }
    if (time_calls)
        printf("done %llu %llu %llu\n", (unsigned long long)total, (unsigned long long)errors, (unsigned long long)ns);
    else
        printf("done %llu %llu\n", (unsigned long long)total, (unsigned long long)errors);
    fflush(stdout);
    funcmon_shutdown();
    return 0;
}
