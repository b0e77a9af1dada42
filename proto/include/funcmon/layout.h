/*
 * funcmon/layout.h - the shared-memory segment layout and record format.
 *
 * This is the one definition of what a client process writes into POSIX shared memory and
 * what funcmond reads back. Both sides include it; nothing else defines layout. The segment
 * is a versioned ABI between two programs that may be built at different times:
 *
 *  - the header starts with a magic whose byte-swapped form is recognisable, then a major
 *    and a minor version. A major bump means an incompatible change and a reader refuses
 *    the segment; a minor bump only appends fields at the end of the header or uses
 *    reserved space, so an older reader still works;
 *  - readers find every region through byte offsets stored in the header, never through
 *    compiled-in positions, and the geometry (sizes and counts) is stored beside them;
 *  - no pointers are stored, only indices and offsets, because the two processes map the
 *    segment at different addresses;
 *  - everything a reader takes from the segment is untrusted (see validate.h).
 *
 * Segment map (offsets are examples for the defaults; readers use the header's values):
 *
 *     0                  header             struct funcmon_shm_header (4 KiB)
 *     sites_offset       site table         max_sites x struct funcmon_site_entry
 *     slots_offset       thread slots       max_threads x struct funcmon_thread_slot
 *     rings_offset       rings              max_threads x ring_records x struct funcmon_record
 *
 * Ring protocol (one single-producer/single-consumer ring per thread slot): head and tail
 * are free-running 64-bit counters; the record for position p lives at index
 * p & (ring_records - 1). The producer writes a record, then publishes head = p + 1 with a
 * release store; the consumer loads head with acquire, copies records [tail, head), then
 * publishes tail with a release store, which the producer pairs with an acquire load before
 * it reuses a record. A full ring drops the record and counts it; the producer never waits.
 */
#ifndef FUNCMON_LAYOUT_H
#define FUNCMON_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define FUNCMON__STATIC_ASSERT(cond, msg) static_assert(cond, msg)
extern "C" {
#else
#define FUNCMON__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* "FUNCMON\1" read as a little-endian 64-bit word. A reader that sees the byte-swapped value
 * is looking at a segment written by a machine of the other byte order. */
#define FUNCMON_SHM_MAGIC UINT64_C(0x014e4f4d434e5546)
/* Major: bumped for any change an older reader would misread; readers refuse other majors. */
#define FUNCMON_SHM_MAJOR 1
/* Minor: bumped when fields are appended or reserved space gains a meaning. */
#define FUNCMON_SHM_MINOR 1 /* 1: stack ids, FUNCMON_RECORD_CLIENT_ERROR and its spill counter */

#define FUNCMON_CACHE_LINE 64
#define FUNCMON_HEADER_SIZE 4096
#define FUNCMON_NAME_MAX 127   /* bytes of a function name, without the NUL */
#define FUNCMON_PACKAGE_MAX 63 /* bytes of a package name, without the NUL */
#define FUNCMON_SERVICE_MAX 63 /* bytes of a service name, without the NUL */
#define FUNCMON_THREAD_NAME_MAX 15
#define FUNCMON_INFLIGHT_MAX 16 /* in-flight calls published per thread; deeper ones are counted in depth only */

/* Geometry limits a writer honours and a reader enforces. */
#define FUNCMON_RING_RECORDS_MIN 64u
#define FUNCMON_RING_RECORDS_MAX (1u << 22)
#define FUNCMON_MAX_THREADS_MIN 1u
#define FUNCMON_MAX_THREADS_MAX 4096u
#define FUNCMON_MAX_SITES_MIN 16u
#define FUNCMON_MAX_SITES_MAX 65536u
/* Segments larger than this are refused by readers: 1 TiB is far beyond any valid geometry. */
#define FUNCMON_SEGMENT_SIZE_MAX (UINT64_C(1) << 40)

/* Site id 0 means "no site" (an outer call's parent, an unset cache). */
#define FUNCMON_SITE_NONE 0u
/* Site id 1 collects the calls of sites interned after the site table filled up. */
#define FUNCMON_SITE_OVERFLOW 1u

/*
 * Stack ids name a chain of profiled calls (a call and every call enclosing it on its
 * thread) in 32 bits: id(call) = funcmon_stack_id(id(enclosing call), site), and 0 for "no
 * enclosing call". A record carries its parent's id, so a reader learns every id's parent
 * and site from the records of calls that end, and walks the links to name a stack (for
 * allocations per call stack). Ids are per process, like site ids. Distinct stacks collide
 * with a probability of about n^2 / 2^33 for n stacks: a reader must bound its walks.
 */
static inline uint32_t
funcmon_stack_id(uint32_t parent, uint32_t site)
{
    uint32_t h = (parent ^ 0x9e3779b9u) * 0x85ebca6bu + site * 0xc2b2ae35u;
    h ^= h >> 15;
    return h != 0 ? h : 1;
}

/* record.flags. A newer minor version may add flags: readers ignore the bits they do not
 * know, so a record stays countable by every reader of the same major. */
#define FUNCMON_RECORD_ERROR 0x0001u        /* the call failed (non-zero result, or marked) */
#define FUNCMON_RECORD_CANCELLED 0x0002u    /* its context was cancelled (also ERROR) */
#define FUNCMON_RECORD_DEADLINE 0x0004u     /* it ended after its context's deadline (also ERROR) */
#define FUNCMON_RECORD_ALLOC 0x0008u        /* the alloc_* fields were measured (tracking on) */
#define FUNCMON_RECORD_CLIENT_ERROR 0x0010u /* an HTTP request answered 4xx (not an ERROR) */
#define FUNCMON_RECORD_FLAGS_KNOWN 0x001fu

/*
 * One profiled call. Fixed size, a power of two, one cache line. Written by the producing
 * thread into its own ring, published by the release store of the slot's head.
 */
struct funcmon_record {
    uint64_t seq;          /* ring position the producer wrote it at: a reader checks it equals its tail */
    uint32_t site;         /* site id: index into the site table */
    uint32_t parent_site;  /* site of the enclosing profiled call on this thread, or FUNCMON_SITE_NONE */
    uint16_t flags;        /* FUNCMON_RECORD_* */
    uint16_t depth;        /* profiled calls enclosing this one on its thread when it began */
    uint32_t parent_stack; /* stack id of the enclosing call (funcmon_stack_id), 0 for none */
    uint64_t start;        /* clock ticks at begin (see the header's clock calibration) */
    uint64_t end;          /* clock ticks at end */
    uint64_t alloc_bytes;  /* bytes allocated by this thread between begin and end, nested calls included */
    uint64_t free_bytes;   /* bytes freed by this thread between begin and end */
    uint32_t alloc_count;  /* allocations between begin and end */
    uint32_t free_count;   /* frees between begin and end */
};
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_record) == 64, "record is one cache line");
FUNCMON__STATIC_ASSERT((sizeof(struct funcmon_record) & (sizeof(struct funcmon_record) - 1)) == 0, "record size is a power of two");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_record, site) == 8, "record.site offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_record, start) == 24, "record.start offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_record, alloc_bytes) == 40, "record.alloc_bytes offset");

/* site.state */
#define FUNCMON_SITE_EMPTY 0u
#define FUNCMON_SITE_PUBLISHED 1u

/*
 * One call site: (package, name). Written once by the client before site_count covers it
 * (release store), never changed after, except the spill counters.
 */
struct funcmon_site_entry {
    char name[FUNCMON_NAME_MAX + 1];       /* NUL-terminated, non-empty, any other bytes */
    char package[FUNCMON_PACKAGE_MAX + 1]; /* NUL-terminated, may be empty */
    /* Calls of this site that produced no record (ring full, or the thread had no slot).
     * Atomic adds by any thread of the client; with the records drained they make the call
     * and error counts exact even when detail is dropped. */
    uint64_t spill_calls;
    uint64_t spill_errors;
    uint32_t state; /* FUNCMON_SITE_* */
    uint32_t name_len;
    uint32_t package_len;
    uint32_t reserved0;
    /* Of the spilled calls, HTTP requests answered 4xx (FUNCMON_RECORD_CLIENT_ERROR; minor 1). */
    uint64_t spill_client_errors;
    uint8_t reserved[256 - 128 - 64 - 16 - 16 - 8];
};
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_site_entry) == 256, "site entry size");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_site_entry, spill_calls) == 192, "site.spill_calls offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_site_entry, spill_client_errors) == 224, "site.spill_client_errors offset");

/* slot.state */
#define FUNCMON_SLOT_FREE 0u    /* never used, or recycled: any thread may claim it (CAS) */
#define FUNCMON_SLOT_ACTIVE 1u  /* owned by a live thread */
#define FUNCMON_SLOT_RETIRED 2u /* its thread exited; reusable once tail == head */

struct funcmon_inflight {
    uint32_t site;
    uint32_t stack; /* this call's stack id (funcmon_stack_id) */
    uint64_t start; /* clock ticks */
};

/*
 * One thread's ring control. Producer and consumer indices sit on their own cache lines so
 * that neither side's stores invalidate the line the other side writes.
 */
struct funcmon_thread_slot {
    /* line 0: written by the producer on every call, read by the consumer */
    uint64_t head;  /* next ring position to write; records [tail, head) are published */
    uint32_t depth; /* profiled calls in flight on this thread now */
    uint32_t reserved0;
    uint8_t pad0[FUNCMON_CACHE_LINE - 16];
    /* line 1: written by the consumer only */
    uint64_t tail; /* next ring position the consumer will read */
    uint8_t pad1[FUNCMON_CACHE_LINE - 8];
    /* line 2: ownership and rare counters */
    uint32_t state;      /* FUNCMON_SLOT_*; transitions by compare-and-swap */
    int32_t tid;         /* kernel thread id of the owner (last owner when retired) */
    uint64_t generation; /* bumped by every claim, so a reader sees that the owner changed */
    uint64_t dropped;    /* records this ring could not take because it was full (owner writes) */
    uint64_t claimed_ticks;
    char thread_name[FUNCMON_THREAD_NAME_MAX + 1];
    uint8_t pad2[FUNCMON_CACHE_LINE - 48];
    /* line 3: reserved for minor versions */
    uint8_t reserved3[FUNCMON_CACHE_LINE];
    /* lines 4..7: the in-flight stack, entries [0, min(depth, FUNCMON_INFLIGHT_MAX)) valid */
    struct funcmon_inflight inflight[FUNCMON_INFLIGHT_MAX];
};
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_thread_slot) == 512, "thread slot size");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_thread_slot, tail) == 64, "slot.tail on its own line");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_thread_slot, state) == 128, "slot.state offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_thread_slot, inflight) == 256, "slot.inflight offset");

/* header.clock_source */
#define FUNCMON_CLOCK_TSC 1u       /* invariant TSC; ns = (ticks - ref_ticks) * tick_mult >> tick_shift */
#define FUNCMON_CLOCK_MONOTONIC 2u /* CLOCK_MONOTONIC nanoseconds; tick_mult = 1, tick_shift = 0 */

/* header.state */
#define FUNCMON_STATE_LIVE 1u     /* the client is running */
#define FUNCMON_STATE_SHUTDOWN 2u /* funcmon_shutdown ran: no more records will come */

/* header.flags */
#define FUNCMON_HEADER_ALLOC_TRACKING 0x1u /* the allocation tracker is counting */

/* Control operations (header.ctl_op) */
#define FUNCMON_CTL_NONE 0u
#define FUNCMON_CTL_SAMPLE 1u /* refresh alloc_stats and the allocation totals */
#define FUNCMON_CTL_TRIM 2u   /* malloc_trim(0); ctl_before and ctl_after hold the figures */

/* Allocator figures, from mallinfo2 and /proc/self/statm, in bytes. */
struct funcmon_alloc_stats {
    uint64_t system;          /* bytes the allocator holds from the system (arena + mmapped) */
    uint64_t in_use;          /* bytes in allocated blocks (uordblks + mmapped) */
    uint64_t free;            /* bytes in free blocks (fordblks) */
    uint64_t releasable;      /* bytes malloc_trim could release at the top of the heap (keepcost) */
    uint64_t mmapped;         /* bytes in blocks mapped on their own (hblkhd) */
    uint64_t rss;             /* resident set size of the process */
    uint64_t sampled_real_ns; /* CLOCK_REALTIME of the sample */
    uint64_t reserved;
};

/* Allocation totals of the tracker since tracking began, all threads, exited ones included. */
struct funcmon_alloc_totals {
    uint64_t alloc_bytes;
    uint64_t free_bytes;
    uint64_t alloc_count;
    uint64_t free_count;
};

/*
 * The segment header. Identity and geometry are written once before the magic is
 * published; the rest is live state, grouped by writer onto separate cache lines.
 */
struct funcmon_shm_header {
    /* identity and geometry: written before `magic`, never changed after */
    uint64_t magic; /* FUNCMON_SHM_MAGIC, stored last with release: 0 means "still being created" */
    uint16_t major;
    uint16_t minor;
    uint32_t header_size; /* sizeof(struct funcmon_shm_header) of the writer */
    uint32_t record_size;
    uint32_t site_size;
    uint32_t slot_size;
    uint32_t ring_records; /* records per ring, a power of two */
    uint32_t max_threads;  /* thread slots and rings */
    uint32_t max_sites;    /* site table entries, ids 0 and 1 included */
    uint64_t segment_size; /* bytes, as created */
    uint64_t sites_offset;
    uint64_t slots_offset;
    uint64_t rings_offset; /* ring i starts at rings_offset + i * ring_records * record_size */
    int32_t pid;
    uint32_t flags;           /* FUNCMON_HEADER_* */
    uint64_t proc_start_time; /* field 22 of /proc/<pid>/stat: tells pid reuse apart */
    uint64_t created_real_ns; /* CLOCK_REALTIME at creation */
    char service[FUNCMON_SERVICE_MAX + 1];
    uint8_t pad0[4 * FUNCMON_CACHE_LINE - 96 - (FUNCMON_SERVICE_MAX + 1)];

    /* line 4: clock calibration, a sequence lock written by the client's init and control thread */
    uint32_t calib_seq;    /* odd while being written */
    uint32_t clock_source; /* FUNCMON_CLOCK_* */
    uint32_t tick_shift;
    uint32_t reserved1;
    uint64_t tick_mult;
    uint64_t ref_ticks;   /* a clock reading taken together with the two below */
    uint64_t ref_mono_ns; /* CLOCK_MONOTONIC at ref_ticks */
    uint64_t ref_real_ns; /* CLOCK_REALTIME at ref_ticks */
    uint8_t pad1[FUNCMON_CACHE_LINE - 48];

    /* line 5: client state and counters (client writes) */
    uint32_t state;            /* FUNCMON_STATE_* */
    uint32_t site_count;       /* sites [0, site_count) are published (release store) */
    uint64_t threads_claimed;  /* slot claims so far */
    uint64_t fallback_threads; /* threads that found no free slot */
    uint64_t fallback_calls;   /* calls recorded only in site spill counters, for want of a slot */
    uint64_t sites_overflowed; /* sites folded into FUNCMON_SITE_OVERFLOW */
    uint64_t wakeups;          /* futex wakes the producers sent */
    uint8_t pad2[FUNCMON_CACHE_LINE - 48];

    /* line 6: wake-up of a sleeping consumer */
    uint32_t wake_word;        /* futex word: producers increment it and wake the consumer */
    uint32_t consumer_waiting; /* set by a consumer about to sleep on wake_word, cleared by the waker */
    int32_t consumer_pid;      /* pid of the attached consumer, 0 if none ever attached */
    uint32_t reserved2;
    uint8_t pad3[FUNCMON_CACHE_LINE - 16];

    /* lines 7-8: allocation figures, written by the client's control thread */
    struct funcmon_alloc_stats alloc_stats;
    struct funcmon_alloc_totals alloc_totals;
    uint8_t pad4[2 * FUNCMON_CACHE_LINE - sizeof(struct funcmon_alloc_stats) - sizeof(struct funcmon_alloc_totals)];

    /* lines 9-12: control channel. The consumer writes ctl_op, then increments ctl_request
     * and wakes it; the client's control thread serves it, then stores ctl_response =
     * ctl_request (release) and wakes that word. */
    uint32_t ctl_request;  /* futex word the control thread sleeps on */
    uint32_t ctl_op;       /* FUNCMON_CTL_* */
    uint32_t ctl_response; /* futex word: the request number last served */
    int32_t ctl_status;    /* 0, or -errno for the last request */
    uint64_t ctl_served;   /* requests served */
    uint8_t pad5[FUNCMON_CACHE_LINE - 24];
    struct funcmon_alloc_stats ctl_before; /* TRIM: figures before malloc_trim */
    struct funcmon_alloc_stats ctl_after;  /* TRIM: figures after */
    uint8_t pad6[FUNCMON_CACHE_LINE];

    uint8_t reserved_tail[FUNCMON_HEADER_SIZE - 13 * FUNCMON_CACHE_LINE];
};
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_alloc_stats) == 64, "alloc stats size");
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_shm_header) == FUNCMON_HEADER_SIZE, "header size");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, service) == 96, "header.service offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, calib_seq) == 4 * FUNCMON_CACHE_LINE, "calibration line");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, state) == 5 * FUNCMON_CACHE_LINE, "client state line");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, wake_word) == 6 * FUNCMON_CACHE_LINE, "wake line");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, alloc_stats) == 7 * FUNCMON_CACHE_LINE, "alloc line");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, ctl_request) == 9 * FUNCMON_CACHE_LINE, "control line");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, ctl_before) == 10 * FUNCMON_CACHE_LINE, "control figures");

/* Bytes of a segment with this geometry, regions in the order of the map above. */
static inline uint64_t
funcmon_segment_bytes(uint32_t ring_records, uint32_t max_threads, uint32_t max_sites)
{
    return (uint64_t)FUNCMON_HEADER_SIZE + (uint64_t)max_sites * sizeof(struct funcmon_site_entry) +
           (uint64_t)max_threads * sizeof(struct funcmon_thread_slot) +
           (uint64_t)max_threads * ring_records * sizeof(struct funcmon_record);
}

#ifdef __cplusplus
}
#endif

#endif
