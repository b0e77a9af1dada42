/*
 * funcmon/consumer.h - the reading side of the shared-memory protocol.
 *
 * The sidecar (and the tests) attach to a client's segment, drain its rings record by
 * record in per-thread order, read its sites, convert its clock, and send it control
 * requests. Everything read from the segment is treated as untrusted: the geometry is the
 * validator's private copy, ring positions are checked against the capacity, each record
 * is copied out before it is checked (site id in range, flags known, position matching),
 * and names are copied once and checked for termination. A bad ring is skipped and
 * counted; a bad record is skipped and counted; nothing makes the reader loop without end
 * or read outside the mapping.
 */
#ifndef FUNCMON_CONSUMER_H
#define FUNCMON_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "funcmon/layout.h"
#include "funcmon/validate.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The reader's own state for one thread slot's chain: never taken from the segment after
 * attach, except through checked links. */
struct funcmon_consumer_ring {
    uint64_t tail;
    uint64_t chunk_first; /* the first position of the chunk holding tail */
    uint32_t chunk;       /* that chunk, index + 1; 0 before the first read of the chain */
    uint64_t dropped;     /* the slot's drop counter, as far as it was believed */
    uint64_t dropped_ns;  /* CLOCK_BOOTTIME of that read (the process start before the first) */
    uint32_t quiet;       /* passes in a row that found nothing (up to a bound) */
    int bad;              /* a protocol violation was seen: the ring is no longer read */
};

/* A site as copied out of the segment. */
struct funcmon_site_info {
    char name[FUNCMON_NAME_MAX + 1];
    char package[FUNCMON_PACKAGE_MAX + 1];
    int valid; /* 0: unterminated or empty name; its records are counted as bad */
};

/* A thread slot as copied out of the segment. */
struct funcmon_slot_info {
    uint32_t state;
    int32_t tid;
    uint64_t generation;
    uint64_t head;
    uint64_t tail;
    uint64_t dropped;
    uint32_t depth;   /* calls in flight */
    uint32_t entries; /* valid entries of inflight[] */
    struct funcmon_inflight inflight[FUNCMON_INFLIGHT_MAX];
    char thread_name[FUNCMON_THREAD_NAME_MAX + 1];
};

/* The clock calibration of a segment. */
struct funcmon_clock {
    uint32_t source; /* FUNCMON_CLOCK_* */
    uint32_t shift;
    uint64_t mult;
    uint64_t ref_ticks;
    uint64_t ref_mono_ns;
    uint64_t ref_real_ns;
};

struct funcmon_consumer {
    char name[256];      /* shm name, "" when attached to memory */
    unsigned char *base; /* the mapping */
    size_t len;          /* its length */
    int owns_mapping;    /* funcmon_consumer_close unmaps it */
    struct funcmon_geometry geo;
    struct funcmon_shm_header *hdr;
    struct funcmon_consumer_ring *rings;
    struct funcmon_site_info *sites;
    uint8_t *site_ok;     /* sites[i].valid, one byte each: every record's check reads it, and
                           * 8,192 of these fit in cache where 8,192 site copies do not */
    uint32_t sites_known; /* sites [0, sites_known) copied */
    /* what this reader has seen */
    uint64_t records;         /* records delivered */
    uint64_t bad_records;     /* records skipped: bad position, site, flags or times */
    uint64_t bad_rings;       /* rings given up on: position out of range */
    uint64_t recycled;        /* retired slots made free again */
    uint64_t chunks_returned; /* chunks given back to the pool */
    uint64_t chunks_kept;     /* chunks that could not be given back (the free list kept changing) */
    uint64_t pool_records;    /* pool_chunks * chunk_records */
    uint64_t passes;          /* funcmon_consumer_drain calls */
    /* Rings in use at the last full pass (a slot not free, or with records), so that a pass
     * over an idle client reads only those; a slot claimed since is seen by the header's
     * claim counter changing, which makes the next pass a full one. */
    uint32_t *live;
    uint32_t n_live;
    uint32_t *busy; /* of those, the ones with records in the last few passes */
    uint32_t n_busy;
    uint64_t claims_seen;
    uint32_t wake_seen;     /* the client's wake word at the last pass */
    int read_all_next;      /* funcmon_consumer_read_all_next was called */
    uint64_t dropped_total; /* sum of the rings' believed drop counters */
    int guard;              /* entry of the SIGBUS guard, -1 if none */
};

/* Called for each drained record, in ring order; rec is the reader's own copy. */
typedef void (*funcmon_record_fn)(void *arg, uint32_t ring, const struct funcmon_record *rec);

/*
 * Opens the shm segment `name` ("/funcmon.svc.123"), maps it, validates it, and marks it as
 * having a consumer (so the client leaves unlinking to us). Returns 0, -errno from
 * open/map, -EINVAL for a file that is not regular, -EBUSY when every entry of the SIGBUS
 * guard is taken (nothing was read or written: try again once one is free), or -EPROTO
 * with *why set (FUNCMON_INVALID_NOT_READY: try again later).
 */
int funcmon_consumer_open(struct funcmon_consumer *c, const char *name, enum funcmon_invalid *why);

/* Like funcmon_consumer_open for memory already mapped by the caller (not unmapped). */
int funcmon_consumer_attach(struct funcmon_consumer *c, void *base, size_t len, enum funcmon_invalid *why);

/* Releases the reader's memory and the mapping it owns. */
void funcmon_consumer_close(struct funcmon_consumer *c);

/* One pass in this many (a power of two) reads every slot in use, quiet ones included,
 * and looks at each one's state (to recycle a retired one); a pass after a claim reads
 * every slot. */
#define FUNCMON_CONSUMER_FULL_PASS_EVERY 16u

/*
 * Delivers up to max_per_ring records of each ring to fn, then publishes the new tails.
 * Recycles retired slots that are fully drained, on a full pass: a slot retired after
 * the last claim is free again within FUNCMON_CONSUMER_FULL_PASS_EVERY passes. Returns
 * the number delivered.
 */
size_t funcmon_consumer_drain(struct funcmon_consumer *c, funcmon_record_fn fn, void *arg, size_t max_per_ring);

/* Makes the next funcmon_consumer_drain a full pass: every slot in use is read, quiet ones
 * included. A reader that must reach a client's last record (the client ended) asks for
 * it before each pass until a pass delivers nothing. */
void funcmon_consumer_read_all_next(struct funcmon_consumer *c);

/* The site `id`, or NULL when it is out of range or not (yet) published. */
const struct funcmon_site_info *funcmon_consumer_site(struct funcmon_consumer *c, uint32_t id);

/* The spill counters of site `id`: calls and errors that produced no record. */
int funcmon_consumer_spill(const struct funcmon_consumer *c, uint32_t id, uint64_t *calls, uint64_t *errors);
/* Of those calls, HTTP requests answered 4xx. */
int funcmon_consumer_spill_client_errors(const struct funcmon_consumer *c, uint32_t id, uint64_t *client_errors);
/* Of those calls, their durations added up in clock ticks (convert with the segment's
 * clock: the sum converts like one duration), and how many fell in each coarse duration
 * bucket (funcmon_spill_bucket): 32-bit counters that wrap, to be taken as differences
 * modulo 2^32. Relaxed loads, one counter at a time: a spill in progress may show in one
 * figure and not yet in another. Returns 0 or -EINVAL. */
int funcmon_consumer_spill_durations(const struct funcmon_consumer *c, uint32_t id, uint64_t *ticks,
                                     uint32_t hist[FUNCMON_SPILL_BUCKETS]);

/* The thread slots in use as of the last full pass (claimed, retired, or with records
 * left), in index order; every slot before the first pass. Readers of in-flight calls
 * walk these rather than every slot: a client has 4,096 slots and most are free. */
uint32_t funcmon_consumer_slots_in_use(const struct funcmon_consumer *c, const uint32_t **slots);

/* Calls in flight on thread slot `i` now (its depth, one load), 0 for an index out of
 * range: readers skip the slots of idle threads with it before copying any. */
uint32_t funcmon_consumer_slot_depth(const struct funcmon_consumer *c, uint32_t i);

/* A copy of thread slot `i`. Returns 0 or -EINVAL. */
int funcmon_consumer_slot(const struct funcmon_consumer *c, uint32_t i, struct funcmon_slot_info *out);

/* 1 when the segment's file shrank under the mapping (a client truncated it): the
 * mapping now reads as zeros and the segment should be let go. */
int funcmon_consumer_faulted(const struct funcmon_consumer *c);

/* Entries of the SIGBUS guard free now: how many more consumers can attach. */
unsigned funcmon_consumer_guard_room(void);

/* Sets how many mappings may be guarded at once (0 or more than the table: the whole
 * table, 4096); returns the previous limit. Tests lower it to fill the table cheaply. */
unsigned funcmon_consumer_guard_limit(unsigned n);

/* Chunks of the pool held by the client's threads now (taken minus given back, as the
 * segment's counters say; clamped to the pool). */
uint32_t funcmon_consumer_pool_used(const struct funcmon_consumer *c);

/* Sum of the slots' drop counters as far as they are believable (see consumer.c): slots in
 * use that had records in the last passes read now, the others as of the last full pass
 * (all read now before the first pass). */
uint64_t funcmon_consumer_dropped(struct funcmon_consumer *c);

/* Reads the clock calibration. Returns 0, or -EAGAIN if it kept changing. */
int funcmon_consumer_clock(const struct funcmon_consumer *c, struct funcmon_clock *out);

/* Nanoseconds from the calibration reference to `ticks` (negative before it). */
int64_t funcmon_clock_since_ref_ns(const struct funcmon_clock *clk, uint64_t ticks);

/* CLOCK_MONOTONIC and CLOCK_REALTIME nanoseconds of `ticks`. */
uint64_t funcmon_clock_mono_ns(const struct funcmon_clock *clk, uint64_t ticks);
uint64_t funcmon_clock_real_ns(const struct funcmon_clock *clk, uint64_t ticks);

/*
 * Sends control request `op` (FUNCMON_CTL_*) and waits up to timeout_ms for the answer
 * (funcmon_control_call; funcmon/control.h has the steps for a caller that must not block).
 * Returns the client's status (0 or -errno, -EPROTO for a status that is neither), or
 * -ETIMEDOUT when it did not answer.
 */
int funcmon_consumer_control(struct funcmon_consumer *c, uint32_t op, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
