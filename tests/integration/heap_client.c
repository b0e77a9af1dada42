/*
 * heap_client.c - a profiled program with known allocations on known call stacks, for the
 * test of /debug/pprof/heap.
 *
 * With allocation tracking on, it makes N calls of "handler" (package heap), each allocating
 * 104 bytes itself and calling "query" (1000 bytes) and "render" (10000 bytes, of which it
 * keeps 5992 for good); then N calls of "query" on their own; then one call of
 * "server" that stays running while it makes N more calls of "handler" inside it, prints
 * "ready <N>", and waits for SIGTERM. Before "server", N times a chain of 20 nested calls of
 * "recurse" that each allocate 104 bytes: deeper than a thread's published in-flight stack.
 * Usage: heap_client N. Exits 77 when tracking is off.
 * The tracker counts usable sizes: every size here is one glibc's malloc hands out exactly.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "funcmon.h"

static void *volatile keep[4]; /* so the compiler keeps every allocation */

static int
query(void *arg)
{
    (void)arg;
    keep[0] = malloc(1000);
    free(keep[0]);
    return 0;
}

static int
render(void *arg)
{
    (void)arg;
    keep[1] = malloc(4008);
    keep[2] = malloc(5992);
    free(keep[1]); /* the 5992 bytes stay allocated: in use in the heap profile */
    return 0;
}

static int
handler(void *arg)
{
    (void)arg;
    keep[3] = malloc(104);
    funcmon_profile("query", "heap", query, NULL);
    funcmon_profile("render", "heap", render, NULL);
    free(keep[3]);
    return 0;
}

#define RECURSE_DEPTH 20

static int
recurse(void *arg)
{
    intptr_t left = (intptr_t)arg;
    void *p = malloc(104);
    keep[0] = p;
    if (left > 1)
        funcmon_profile("recurse", "heap", recurse, (void *)(left - 1));
    free(p);
    return 0;
}

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    if (n < 1)
        return 2;
    signal(SIGTERM, on_term);
    if (funcmon_init(NULL) != 0)
        return 3;
    if (!funcmon_alloc_tracking()) {
        fprintf(stderr, "heap_client: allocation tracking is off (another allocator comes first)\n");
        return 77;
    }
    for (long i = 0; i < n; i++)
        funcmon_profile("handler", "heap", handler, NULL);
    for (long i = 0; i < n; i++)
        funcmon_profile("query", "heap", query, NULL);
    for (long i = 0; i < n; i++)
        funcmon_profile("recurse", "heap", recurse, (void *)(intptr_t)RECURSE_DEPTH);
    FUNCMON_SCOPE("server", "heap")
    {
        for (long i = 0; i < n; i++)
            funcmon_profile("handler", "heap", handler, NULL);
        printf("ready %ld\n", n);
        fflush(stdout);
        while (!stop)
            pause();
    }
    funcmon_shutdown();
    return 0;
}
