/*
 * harness.h - what the funcmon tests share: a private segment prefix per test process
 * (removed at exit with every segment under it), and a consumer that counts records.
 */
#ifndef FUNCMON_TEST_HARNESS_H
#define FUNCMON_TEST_HARNESS_H

#include <stdint.h>
#include <time.h>

#include "funcmon/consumer.h"

/* Sets FUNCMON_SHM_PREFIX to a prefix unique to this test process and removes every
 * /dev/shm segment under it at exit. Returns the prefix. First, with
 * FUNCMON_TEST_REFUSE_IO_URING=1, refuses io_uring to the process and everything it starts
 * (refuse_io_uring.h). */
const char *harness_private_prefix(void);

/* Removes every segment whose name starts with "<prefix>.". Returns how many. */
int harness_remove_segments(const char *prefix);

/* 1 when built with a sanitizer that replaces malloc (allocation tracking cannot work). */
int harness_malloc_replaced(void);

/* Per-site tallies of drained records. */
struct harness_tally {
    uint64_t calls[512];
    uint64_t errors[512];
    uint64_t flags_or[512];
    uint64_t alloc_bytes[512];
    uint64_t free_bytes[512];
    uint64_t alloc_count[512];
    uint64_t free_count[512];
    uint64_t min_ticks[512];
    uint64_t max_ticks[512];
    uint64_t records;
    struct funcmon_record last[512]; /* last record of each site */
};

/* funcmon_record_fn that adds a record to a struct harness_tally. */
void harness_tally_record(void *arg, uint32_t ring, const struct funcmon_record *rec);

/* The clock `id` (CLOCK_REALTIME, CLOCK_BOOTTIME, ...) in nanoseconds. */
uint64_t harness_clock_ns(clockid_t id);

/* Opens the segment of this process (funcmon_segment_name()) as a consumer. */
void harness_open_self(struct funcmon_consumer *c);

/* Drains everything available into the tally, ending with a full pass (so retired slots
 * that are read to the end are free again); returns records drained. */
uint64_t harness_drain_all(struct funcmon_consumer *c, struct harness_tally *t);

/* Duration of a record in nanoseconds through the segment's calibration. */
uint64_t harness_duration_ns(struct funcmon_consumer *c, const struct funcmon_record *rec);

#endif
