/*
 * harness.c - shared helpers of the funcmon tests (see harness.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"
#include "refuse_io_uring.h"

static char prefix[64];

int
harness_remove_segments(const char *pre)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    size_t len = strlen(pre);
    int removed = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        /* "<prefix>.*" segments, and "<prefix>-sidecar", a sidecar's announcement */
        if (strncmp(e->d_name, pre, len) == 0 && (e->d_name[len] == '.' || strcmp(e->d_name + len, "-sidecar") == 0)) {
            char name[300];
            snprintf(name, sizeof(name), "/%s", e->d_name);
            if (shm_unlink(name) == 0)
                removed++;
        }
    }
    closedir(d);
    return removed;
}

static void
cleanup(void)
{
    /* Only the process that chose the prefix cleans up, not its forked children. */
    static pid_t owner;
    if (owner == 0)
        owner = (pid_t)strtol(strrchr(prefix, 'p') + 1, NULL, 10);
    if (owner == getpid())
        harness_remove_segments(prefix);
}

const char *
harness_private_prefix(void)
{
    if (prefix[0] == '\0') {
        harness_refuse_io_uring_if_asked(); /* before any thread or child: all of them inherit it */
        snprintf(prefix, sizeof(prefix), "fmtest-p%d", (int)getpid());
        setenv("FUNCMON_SHM_PREFIX", prefix, 1);
        atexit(cleanup);
    }
    return prefix;
}

int
harness_malloc_replaced(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}

void
harness_tally_record(void *arg, uint32_t ring, const struct funcmon_record *rec)
{
    struct harness_tally *t = arg;
    uint32_t s = rec->site;
    (void)ring;
    CHECK_LT(s, 512);
    if (t->calls[s] == 0 || rec->end - rec->start < t->min_ticks[s])
        t->min_ticks[s] = rec->end - rec->start;
    if (rec->end - rec->start > t->max_ticks[s])
        t->max_ticks[s] = rec->end - rec->start;
    t->calls[s]++;
    t->errors[s] += (rec->flags & FUNCMON_RECORD_ERROR) != 0;
    t->flags_or[s] |= rec->flags;
    t->alloc_bytes[s] += rec->alloc_bytes;
    t->free_bytes[s] += rec->free_bytes;
    t->alloc_count[s] += rec->alloc_count;
    t->free_count[s] += rec->free_count;
    t->last[s] = *rec;
    t->records++;
}

void
harness_open_self(struct funcmon_consumer *c)
{
    enum funcmon_invalid why;
    const char *name = funcmon_segment_name();
    CHECK(name != NULL);
    int ret = funcmon_consumer_open(c, name, &why);
    if (ret != 0)
        fprintf(stderr, "consumer_open(%s): %d (%s)\n", name, ret, funcmon_invalid_reason(why));
    CHECK_EQ(ret, 0);
}

uint64_t
harness_drain_all(struct funcmon_consumer *c, struct harness_tally *t)
{
    uint64_t total = 0;
    size_t n;
    while ((n = funcmon_consumer_drain(c, harness_tally_record, t, SIZE_MAX)) != 0)
        total += n;
    /* A slot retired since the last full pass is recycled only by the next one. */
    for (unsigned k = 0; k < FUNCMON_CONSUMER_FULL_PASS_EVERY; k++)
        total += funcmon_consumer_drain(c, harness_tally_record, t, SIZE_MAX);
    return total;
}

uint64_t
harness_duration_ns(struct funcmon_consumer *c, const struct funcmon_record *rec)
{
    struct funcmon_clock clk;
    CHECK_EQ(funcmon_consumer_clock(c, &clk), 0);
    return (uint64_t)(funcmon_clock_since_ref_ns(&clk, rec->end) - funcmon_clock_since_ref_ns(&clk, rec->start));
}

uint64_t
harness_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
