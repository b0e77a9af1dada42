/*
 * pprof_sampler.h - counts the user-space call chains of every thread of a process by
 * perf_event_open sampling, for the CPU profile (pprof_cpu.c).
 *
 * Sampling and naming are apart: while the process runs, the sampler only reads the
 * kernel's rings and counts distinct raw stacks (addresses), which is cheap enough to keep
 * up with thousands of samples a second; the stacks are symbolised once, at the end
 * (pprof_symbols.h). One software cpu-clock event per thread (the kernel walks the user
 * stack by frame pointers), each with its own mmap'd ring; threads that start during the
 * run are picked up by rescanning /proc/<pid>/task every 100 ms.
 */
#ifndef FUNCMOND_PPROF_SAMPLER_H
#define FUNCMOND_PPROF_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FUNCMOND_SAMPLER_MAX_DEPTH 512 /* frames kept per sample, leaf first */

struct funcmond_sampler;

/* What a run saw besides the stacks, for the profile's comments. */
struct funcmond_sampler_stats {
    uint64_t samples;    /* samples read */
    uint64_t lost;       /* samples the kernel lost (a ring overflowed) */
    uint64_t dropped;    /* samples read but not counted: the stack memory limit */
    uint64_t unfollowed; /* threads that could not be opened (other than ones that exited) */
    int follow_err;      /* the first of those errors, -errno */
    int over_limit;      /* threads left out past the thread limit or for memory */
};

/* Opens and enables sampling events at hz samples per second of CPU time for every thread
 * of process pid. On success returns 0 with *out the sampler. On failure returns -errno
 * with a one-line reason in err (errlen bytes) and *out NULL: -EINVAL (pid <= 0, hz < 1;
 * also, with nothing written, out or err NULL or errlen 0), -ESRCH (no such process, or it
 * exited before any thread could be opened), -ENOMEM, or the error of opening the first
 * thread (perf_event_open, the ring mmap). */
int funcmond_sampler_start(pid_t pid, int hz, struct funcmond_sampler **out, char *err, size_t errlen);

/* Reads samples until CLOCK_MONOTONIC reaches deadline_ns or every thread has ended.
 * `cancel` (may be NULL) is polled at least every 100 ms. Returns 0, -ECANCELED when
 * *cancel became non-zero, or -ENOMEM. What was counted stays readable either way. */
int funcmond_sampler_run(struct funcmond_sampler *s, int64_t deadline_ns, const volatile int *cancel);

/* Disables and closes every event, counting the samples still in the rings. */
void funcmond_sampler_stop(struct funcmond_sampler *s);

/* The distinct stacks counted: stack i has *n addresses (leaf first, at most
 * FUNCMOND_SAMPLER_MAX_DEPTH) and was seen *count times. i < funcmond_sampler_n_stacks(). */
size_t funcmond_sampler_n_stacks(const struct funcmond_sampler *s);
const uint64_t *funcmond_sampler_stack(const struct funcmond_sampler *s, size_t i, size_t *n, uint64_t *count);

const struct funcmond_sampler_stats *funcmond_sampler_stats(const struct funcmond_sampler *s);

/* Stops the sampler if it runs and frees it. NULL is ignored. */
void funcmond_sampler_free(struct funcmond_sampler *s);

#endif
