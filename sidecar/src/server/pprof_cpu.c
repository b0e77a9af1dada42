/*
 * pprof_cpu.c - funcmond_pprof_cpu (pprof.h): a CPU profile of a client process.
 *
 * The glue of three modules, kept apart so that each stays about one thing: the sampler
 * counts raw stacks while the process runs (pprof_sampler.h), the symboliser names their
 * addresses from the process's ELF files once sampling is over (pprof_symbols.h), and the
 * builder encodes the named stacks as a profile (pprof_profile.c). The mappings are read
 * at the start, so that files are open before the process can exit, and again at the
 * end, for libraries loaded during the run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pprof.h"
#include "pprof_sampler.h"
#include "pprof_symbols.h"

#define MAX_DEPTH FUNCMOND_SAMPLER_MAX_DEPTH

/* Turns the counted stacks into the pprof profile. Returns what funcmond_pprof_finish
 * returns. */
static int
build_profile(const struct funcmond_sampler *s, struct funcmond_symbols *sy, pid_t pid, int hz, int64_t start_ns,
              int64_t duration_ns, unsigned char **gz, size_t *gz_len)
{
    static const char *const types[] = {"samples", "cpu"}, *const units[] = {"count", "nanoseconds"};
    const int64_t period = 1000000000ll / hz;
    const struct funcmond_sampler_stats *st = funcmond_sampler_stats(s);
    struct funcmond_pprof_frame *frames = NULL;
    char(*hex)[24] = NULL, note[128];
    struct funcmond_pprof *p;

    if ((p = funcmond_pprof_new(types, units, 2, "cpu", "nanoseconds", period)) == NULL)
        return -ENOMEM;
    funcmond_symbols_declare_mappings(sy, p);
    frames = calloc(MAX_DEPTH, sizeof(*frames));
    hex = calloc(MAX_DEPTH, sizeof(*hex));
    if (frames == NULL || hex == NULL) {
        free(frames);
        free(hex);
        funcmond_pprof_free(p);
        return -ENOMEM;
    }
    for (size_t i = 0, n_stacks = funcmond_sampler_n_stacks(s); i < n_stacks; i++) {
        size_t n;
        uint64_t count;
        const uint64_t *ips = funcmond_sampler_stack(s, i, &n, &count);
        int64_t values[2] = {(int64_t)count, 0};
        for (size_t j = 0; j < n; j++) {
            uint64_t a = ips[j];
            funcmond_symbols_frame(sy, a, j > 0 && a > 0 ? a - 1 : a, &frames[j], hex[j], sizeof(hex[j]));
        }
        if (__builtin_mul_overflow(values[0], period, &values[1]))
            values[1] = INT64_MAX;
        funcmond_pprof_add_frames(p, frames, (int)n, values);
    }
    snprintf(note, sizeof(note), "pid %d, %d Hz, %" PRIu64 " samples", (int)pid, hz, st->samples);
    funcmond_pprof_comment(p, note);
    if (st->lost > 0 || st->dropped > 0) {
        snprintf(note, sizeof(note), "%" PRIu64 " samples lost (ring overflow), %" PRIu64 " dropped (memory limit)", st->lost,
                 st->dropped);
        funcmond_pprof_comment(p, note);
    }
    if (st->unfollowed > 0 || st->over_limit) {
        snprintf(note, sizeof(note), "%" PRIu64 " threads not sampled (%s)%s", st->unfollowed,
                 st->follow_err ? strerror(-st->follow_err) : "-", st->over_limit ? ", more past the thread limit" : "");
        funcmond_pprof_comment(p, note);
    }
    free(frames);
    free(hex);
    return funcmond_pprof_finish(p, start_ns, duration_ns, gz, gz_len);
}

int
funcmond_pprof_cpu(pid_t pid, int seconds, int hz, const volatile int *cancel, unsigned char **gz, size_t *gz_len, char *err,
                   size_t errlen)
{
    struct funcmond_sampler *s = NULL;
    struct funcmond_symbols *sy = NULL;
    char dummy[1];
    int64_t start_real, start, deadline, now;
    int rc;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (gz != NULL)
        *gz = NULL;
    if (gz_len != NULL)
        *gz_len = 0;
    if (pid <= 0 || seconds < 1 || seconds > FUNCMOND_PPROF_CPU_MAX_SECONDS || hz < 1 || hz > FUNCMOND_PPROF_CPU_MAX_HZ ||
        gz == NULL || gz_len == NULL) {
        snprintf(err, errlen, "invalid argument (pid %d, seconds %d, hz %d)", (int)pid, seconds, hz);
        return -EINVAL;
    }
    if ((sy = funcmond_symbols_new(pid)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }

    start_real = (int64_t)funcmond_real_ns();
    start = (int64_t)funcmond_mono_ns();
    deadline = start + (int64_t)seconds * 1000000000ll;
    if ((rc = funcmond_sampler_start(pid, hz, &s, err, errlen)) < 0)
        goto out;
    if ((rc = funcmond_symbols_read_maps(sy)) < 0) {
        snprintf(err, errlen, "reading /proc/%d/maps: %s", (int)pid, strerror(-rc));
        goto out;
    }
    if ((rc = funcmond_sampler_run(s, deadline, cancel)) < 0) {
        snprintf(err, errlen, rc == -ECANCELED ? "cancelled" : "out of memory");
        goto out;
    }
    now = (int64_t)funcmond_mono_ns();
    funcmond_sampler_stop(s);
    funcmond_symbols_read_maps(sy); /* pick up libraries loaded during the run; keeps the old list if the process is gone */
    rc = build_profile(s, sy, pid, hz, start_real, (now < deadline ? now : deadline) - start, gz, gz_len);
    if (rc < 0)
        snprintf(err, errlen, "building the profile: %s", strerror(-rc));
out:
    funcmond_sampler_free(s);
    funcmond_symbols_free(sy);
    return rc;
}
