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
 * Segment map, major 2 (offsets are examples for the defaults; readers use the header's):
 *
 *     0                  header             struct funcmon_shm_header (4 KiB)
 *     sites_offset       site table         max_sites x struct funcmon_site_entry
 *     slots_offset       thread slots       max_threads x struct funcmon_thread_slot
 *     chunks_offset      chunk headers      pool_chunks x struct funcmon_chunk
 *     records_offset     chunk records      pool_chunks x chunk_records x struct funcmon_record
 *
 * Why chunks. In major 1 each thread had its own fixed ring: memory did not follow where
 * the calls were (64 rings reserved whether one thread ran or sixty-four, the 65th thread
 * got counts only), and one thread at full speed filled its ring in 160 us while the
 * sidecar can lose its CPU for milliseconds. Major 2 shares one pool of fixed-size chunks
 * between all threads of the process, so one thread may take most of the pool through a
 * burst or a stall of the sidecar, while an idle thread holds at most one chunk.
 *
 * Positions. Each thread slot keeps free-running 64-bit positions: head (the producer's
 * next) and tail (the consumer's next). A slot's chunks form a chain in position order:
 * a chunk holds the chunk_records positions [first, first + chunk_records) of one slot,
 * position p at record p & (chunk_records - 1) (first need not be a multiple of
 * chunk_records: those indices still cover the chunk once), and names the next chunk of
 * the chain. Each record keeps its position in seq, which a reader checks.
 *
 * Producer (the slot's owning thread). The hot path is major 1's: write a record into
 * memory the thread owns, then one release store of head. Only the first record of a
 * chunk takes the slow path:
 *  1. pop a free chunk: the pool's free list is a lock-free stack whose top is the
 *     header's pool_free word (index + 1 in the low 32 bits, a tag in the high 32 that
 *     every change bumps, so a stale compare-and-swap fails instead of corrupting it);
 *  2. write the chunk's slot and first = head, next = 0;
 *  3. link it with a release store: into the previous chunk's next, or into the slot's
 *     first_chunk when the slot has no chunk; then store the slot's cur_chunk;
 *  4. write the record and publish head. A reader that sees head past the previous chunk
 *     (acquire) therefore finds the link and the new chunk's header.
 * An empty pool drops the record. Its call, error and 4xx flags, its duration and a
 * coarse duration bucket go to the site's spill counters (atomic adds), so call and
 * error counts and total durations stay exact under any overload; the slot's dropped
 * counter grows. The next record tries the pool again (and wakes a sleeping sidecar). A
 * sleeping sidecar is also woken when a slot's backlog reaches high water (2,048 records,
 * or a quarter of the pool), and when a chunk taken leaves the pool more than half used (the
 * header's chunks_taken and chunks_returned). Nothing ever waits for the consumer.
 *
 * Consumer (one sidecar). It keeps, per slot and in its own memory, its tail and the
 * chunk that holds it; the slot's tail and tail_chunk are its published copies (for the
 * producer's wake-up check and for a sidecar that restarts). Draining a slot: load head
 * with acquire, copy the records [tail, head) chunk by chunk. To enter a chunk it loads
 * the link (the previous chunk's next, or first_chunk) with acquire and checks it: index
 * in range, the chunk's slot is this slot and its first is exactly the tail. When the
 * tail leaves a chunk and the next one is entered, the consumer pushes the finished chunk
 * onto the free list. A link that fails its check marks the slot bad: it is not read
 * again. No link is followed without these checks, so a hostile chain (a cycle, an index
 * out of range, another slot's chunk) costs one check, not a loop.
 *
 * Slot reuse. A thread that exits leaves its slot RETIRED, still holding its last chunk.
 * A thread that claims it (compare-and-swap RETIRED -> ACTIVE once tail == head) simply
 * carries on in that chunk: the chain belongs to the slot. Once a retired slot is read to
 * the end the consumer recycles it: RETIRED -> RECYCLING (compare-and-swap, so it and a
 * claimer never both win), clear first_chunk, cur_chunk and tail_chunk, push the last
 * chunk, then FREE (release). A thread that claims a FREE slot starts a new chain at the
 * slot's head on its first record. A sidecar that dies between the two steps leaves
 * RECYCLING behind; the next one finishes it, so a chunk is pushed at most once (it may
 * lose that one chunk if it died between clearing cur_chunk and the push).
 *
 * Sizing. The default pool keeps the default segment below major 1's (34,639,872 bytes):
 * 3,584 chunks of 128 records (8 KiB each, 28 MiB), 4,096 thread slots of 512 bytes,
 * 4,096 sites of 512 bytes: 33,787,904 bytes.
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
#define FUNCMON_SHM_MAJOR 2
/* Minor: bumped when fields are appended or reserved space gains a meaning. */
#define FUNCMON_SHM_MINOR 0

#define FUNCMON_CACHE_LINE 64
#define FUNCMON_HEADER_SIZE 4096
#define FUNCMON_NAME_MAX 127   /* bytes of a function name, without the NUL */
#define FUNCMON_PACKAGE_MAX 63 /* bytes of a package name, without the NUL */
#define FUNCMON_SERVICE_MAX 63 /* bytes of a service name, without the NUL */
#define FUNCMON_THREAD_NAME_MAX 15
#define FUNCMON_INFLIGHT_MAX 16 /* in-flight calls published per thread; deeper ones are counted in depth only */

/* Geometry limits a writer honours and a reader enforces. */
#define FUNCMON_CHUNK_RECORDS_MIN 16u
#define FUNCMON_CHUNK_RECORDS_MAX 65536u
#define FUNCMON_POOL_CHUNKS_MIN 2u
#define FUNCMON_POOL_CHUNKS_MAX (1u << 24)
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
 * thread into its current chunk, published by the release store of its slot's head.
 */
struct funcmon_record {
    uint64_t seq;          /* position the producer wrote it at: a reader checks it equals its tail */
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

/* Spilled calls are also counted by duration, in 64 coarse buckets: bucket 0 holds calls
 * under 128 ns, bucket 63 those of 2^38 ns (275 s) and more, and the buckets between split
 * each power of two [2^e, 2^(e+1)) ns in two halves, e = 7..37. Any value taken to stand
 * for a bucket [lo, hi) is within (hi - lo) / (hi + lo) of every duration in it, at most
 * 1/5, when it is 2 * lo * hi / (lo + hi) (funcmon_spill_bucket_value). */
#define FUNCMON_SPILL_BUCKETS 64u

static inline uint32_t
funcmon_spill_bucket(uint64_t ns)
{
    if (ns < 128)
        return 0;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(ns);
    if (e >= 38)
        return FUNCMON_SPILL_BUCKETS - 1;
    return 1u + (e - 7u) * 2u + (uint32_t)((ns >> (e - 1)) & 1u);
}

/* The bounds [*lo, *hi) of spill bucket b in nanoseconds (*hi = UINT64_MAX for the last). */
static inline void
funcmon_spill_bucket_bounds(uint32_t b, uint64_t *lo, uint64_t *hi)
{
    if (b == 0) {
        *lo = 0;
        *hi = 128;
        return;
    }
    if (b >= FUNCMON_SPILL_BUCKETS - 1) {
        *lo = UINT64_C(1) << 38;
        *hi = UINT64_MAX;
        return;
    }
    uint32_t e = 7u + (b - 1u) / 2u;
    uint64_t base = UINT64_C(1) << e, half = base >> 1;
    *lo = base + ((b - 1u) & 1u) * half;
    *hi = *lo + half;
}

/* The duration that stands for spill bucket b: the one closest, relatively, to every
 * duration the bucket holds (the harmonic mean of its bounds; 64 ns for bucket 0, the
 * lower bound for the last). */
static inline uint64_t
funcmon_spill_bucket_value(uint32_t b)
{
    uint64_t lo, hi;
    funcmon_spill_bucket_bounds(b, &lo, &hi);
    if (b == 0)
        return 64;
    if (hi == UINT64_MAX)
        return lo;
    return (uint64_t)((2.0 * (double)lo * (double)hi) / (double)(lo + hi));
}

/*
 * One call site: (package, name). Written once by the client before site_count covers it
 * (release store), never changed after, except the spill counters.
 */
struct funcmon_site_entry {
    char name[FUNCMON_NAME_MAX + 1];       /* NUL-terminated, non-empty, any other bytes */
    char package[FUNCMON_PACKAGE_MAX + 1]; /* NUL-terminated, may be empty */
    /* Calls of this site that produced no record (the pool was empty, or the thread had no
     * slot). Atomic adds by any thread of the client; with the records drained they make
     * the call and error counts and the total duration exact even when detail is dropped. */
    uint64_t spill_calls;
    uint64_t spill_errors;
    uint32_t state; /* FUNCMON_SITE_* */
    uint32_t name_len;
    uint32_t package_len;
    uint32_t reserved0;
    uint64_t spill_client_errors; /* of the spilled calls, HTTP requests answered 4xx */
    uint64_t spill_ticks;         /* their durations added up, in clock ticks */
    uint8_t reserved1[16];
    /* Of the spilled calls, how many fell in each duration bucket (funcmon_spill_bucket).
     * 32-bit counters that wrap: a reader takes differences modulo 2^32, so it must look
     * more often than once per 2^32 spills of one bucket. */
    uint32_t spill_hist[FUNCMON_SPILL_BUCKETS];
};
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_site_entry) == 512, "site entry size");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_site_entry, spill_calls) == 192, "site.spill_calls offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_site_entry, spill_client_errors) == 224, "site.spill_client_errors offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_site_entry, spill_hist) == 256, "site.spill_hist offset");

/* slot.state */
#define FUNCMON_SLOT_FREE 0u      /* never used, or recycled: any thread may claim it (CAS) */
#define FUNCMON_SLOT_ACTIVE 1u    /* owned by a live thread */
#define FUNCMON_SLOT_RETIRED 2u   /* its thread exited; reusable once tail == head */
#define FUNCMON_SLOT_RECYCLING 3u /* the consumer is giving its last chunk back; then FREE */

struct funcmon_inflight {
    uint32_t site;
    uint32_t stack; /* this call's stack id (funcmon_stack_id) */
    uint64_t start; /* clock ticks */
};

/*
 * One thread slot: its chain of chunks and what the thread is doing. Producer and consumer
 * positions sit on their own cache lines so that neither side's stores invalidate the line
 * the other side writes. Chunk references are index + 1, 0 for none.
 */
struct funcmon_thread_slot {
    /* line 0: written by the producer on every call, read by the consumer */
    uint64_t head;  /* next position to write; records [tail, head) are published */
    uint32_t depth; /* profiled calls in flight on this thread now */
    uint32_t reserved0;
    uint8_t pad0[FUNCMON_CACHE_LINE - 16];
    /* line 1: written by the consumer only */
    uint64_t tail;       /* next position the consumer will read */
    uint32_t tail_chunk; /* the chunk holding tail (or ending at it), 0 before the first */
    uint32_t reserved1;
    uint8_t pad1[FUNCMON_CACHE_LINE - 16];
    /* line 2: ownership and rare counters */
    uint32_t state;      /* FUNCMON_SLOT_*; transitions by compare-and-swap */
    int32_t tid;         /* kernel thread id of the owner (last owner when retired) */
    uint64_t generation; /* bumped by every claim, so a reader sees that the owner changed */
    uint64_t dropped;    /* records dropped for want of a chunk (owner writes) */
    uint64_t claimed_ticks;
    char thread_name[FUNCMON_THREAD_NAME_MAX + 1];
    uint32_t first_chunk; /* the chunk a chain began with on a slot that had none (owner writes) */
    uint32_t cur_chunk;   /* the chunk the owner writes into now, 0 if none (owner writes) */
    uint8_t pad2[FUNCMON_CACHE_LINE - 56];
    /* line 3: reserved for minor versions */
    uint8_t reserved3[FUNCMON_CACHE_LINE];
    /* lines 4..7: the in-flight stack, entries [0, min(depth, FUNCMON_INFLIGHT_MAX)) valid */
    struct funcmon_inflight inflight[FUNCMON_INFLIGHT_MAX];
};
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_thread_slot) == 512, "thread slot size");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_thread_slot, tail) == 64, "slot.tail on its own line");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_thread_slot, tail_chunk) == 72, "slot.tail_chunk offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_thread_slot, state) == 128, "slot.state offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_thread_slot, first_chunk) == 176, "slot.first_chunk offset");

/*
 * A chunk's header: whose positions its records hold. Written by the producer that pops
 * it before the link that makes it reachable; next_free by whoever pushes it.
 */
struct funcmon_chunk {
    uint32_t slot;      /* the slot whose chain holds it */
    uint32_t next;      /* the next chunk of that chain, 0 until linked (release store) */
    uint64_t first;     /* the first position it holds */
    uint32_t next_free; /* below it on the free list, 0 for the bottom */
    uint32_t reserved0;
    uint8_t pad[FUNCMON_CACHE_LINE - 24];
};
FUNCMON__STATIC_ASSERT(sizeof(struct funcmon_chunk) == FUNCMON_CACHE_LINE, "chunk header size");

/* The pool_free word: top of the free list (index + 1, 0 when empty) and its tag. */
#define FUNCMON_POOL_TOP(word) ((uint32_t)(word))
#define FUNCMON_POOL_TAG(word) ((uint32_t)((word) >> 32))
#define FUNCMON_POOL_WORD(top, tag) ((uint64_t)(tag) << 32 | (uint32_t)(top))
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
    uint32_t chunk_records; /* records per chunk, a power of two */
    uint32_t max_threads;   /* thread slots */
    uint32_t max_sites;     /* site table entries, ids 0 and 1 included */
    uint64_t segment_size;  /* bytes, as created */
    uint64_t sites_offset;
    uint64_t slots_offset;
    uint64_t chunks_offset; /* chunk headers */
    int32_t pid;
    uint32_t flags;           /* FUNCMON_HEADER_* */
    uint64_t proc_start_time; /* field 22 of /proc/<pid>/stat: tells pid reuse apart */
    uint64_t created_real_ns; /* CLOCK_REALTIME at creation */
    char service[FUNCMON_SERVICE_MAX + 1];
    uint64_t records_offset; /* chunk i's records start at records_offset + i * chunk_records * record_size */
    uint32_t pool_chunks;    /* chunks in the pool */
    uint32_t chunk_size;     /* sizeof(struct funcmon_chunk) of the writer */
    uint8_t pad0[4 * FUNCMON_CACHE_LINE - 112 - (FUNCMON_SERVICE_MAX + 1)];

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
    uint64_t pool_empty;       /* records dropped because the pool had no free chunk */
    uint8_t pad2[FUNCMON_CACHE_LINE - 56];

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

    /* line 13: the pool's free list, changed by compare-and-swap by producers taking a
     * chunk and by the consumer giving one back (FUNCMON_POOL_WORD) */
    uint64_t pool_free;
    uint64_t chunks_taken;    /* chunks producers took off the list (they own the line then) */
    uint64_t chunks_returned; /* chunks the consumer gave back */
    uint8_t pad7[FUNCMON_CACHE_LINE - 24];

    uint8_t reserved_tail[FUNCMON_HEADER_SIZE - 14 * FUNCMON_CACHE_LINE];
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
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, records_offset) == 160, "header.records_offset offset");
FUNCMON__STATIC_ASSERT(offsetof(struct funcmon_shm_header, pool_free) == 13 * FUNCMON_CACHE_LINE, "pool line");

/* Bytes of a segment with this geometry, regions in the order of the map above. */
static inline uint64_t
funcmon_segment_bytes(uint32_t chunk_records, uint32_t pool_chunks, uint32_t max_threads, uint32_t max_sites)
{
    return (uint64_t)FUNCMON_HEADER_SIZE + (uint64_t)max_sites * sizeof(struct funcmon_site_entry) +
           (uint64_t)max_threads * sizeof(struct funcmon_thread_slot) + (uint64_t)pool_chunks * sizeof(struct funcmon_chunk) +
           (uint64_t)pool_chunks * chunk_records * sizeof(struct funcmon_record);
}

#ifdef __cplusplus
}
#endif

#endif
