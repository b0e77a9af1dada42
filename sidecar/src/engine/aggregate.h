/*
 * aggregate.h - per-function figures, built record by record by the drain thread.
 *
 * A function is identified by (service, package, name): the processes of one service add
 * into the same entry. Each keeps exact call and error counts (records plus the clients'
 * spill counters), duration total/min/max, a log-linear duration histogram (quantiles
 * within 1%), exact counts for the configured Prometheus buckets (calls whose record was
 * dropped are timed only to a coarse bucket: see funcmond_agg_spill_durations), bytes allocated per
 * call (total, max, histogram, buckets), the last call's wall-clock time, and a ring of
 * 10-second slots from which the 1-minute and 5-minute windows (rate, error rate,
 * quantiles) are read.
 *
 * Memory is bounded by MAX_FUNCTIONS whatever the clients do: at most MAX_FUNCTIONS
 * functions, plus at most FUNCMOND_OVERFLOW_ENTRIES "<overflow>" entries (one per service
 * whose new functions found no room), plus one global "<overflow>" entry of service
 * FUNCMOND_OVERFLOW_SERVICE for everything past those. So that one service cannot take
 * the room of those that come later, the last quarter of MAX_FUNCTIONS is kept for
 * services holding fewer than FUNCMOND_SERVICE_FLOOR functions. Every fold is counted.
 *
 * Only the drain thread touches these structures; readers get published copies (view.h).
 */
#ifndef FUNCMOND_AGGREGATE_H
#define FUNCMOND_AGGREGATE_H

#include <stdint.h>

#include "config.h"
#include "funcmon/layout.h"
#include "hist.h"

#define FUNCMOND_WINDOW_SLOT_NS (10ull * 1000000000ull)
#define FUNCMOND_WINDOW_SLOTS 30 /* 5 minutes */
#define FUNCMOND_WINDOW_1M_SLOTS 6
#define FUNCMOND_DURATION_SUB_BITS 7 /* <= 0.4% quantile error */
#define FUNCMOND_WINDOW_SUB_BITS 5   /* <= 1.6% in the windows, a quarter of the memory */
#define FUNCMOND_MEMORY_SUB_BITS 5
#define FUNCMOND_OVERFLOW_ENTRIES 64           /* per-service "<overflow>" entries beyond MAX_FUNCTIONS */
#define FUNCMOND_SERVICE_FLOOR 64              /* functions any service may have from the reserved quarter */
#define FUNCMOND_OVERFLOW_SERVICE "<overflow>" /* service of the one entry past all bounds */

struct funcmond_window_slot {
    uint64_t id; /* absolute slot number (monotonic ns / slot length) the counts belong to */
    uint64_t calls;
    uint64_t errors;
    struct funcmond_hist dur;
};

/* The figures a record changes come first, together in two cache lines (the entry is
 * line-aligned), so that adding a batch of records touches as few lines as it can; names
 * and windows follow. */
struct funcmond_function {
    uint64_t calls;    /* every call: records plus spilled calls */
    uint64_t errors;   /* every failed call */
    uint64_t total_ns; /* over the calls with a duration: records and spilled calls */
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t last_real_ns;    /* wall-clock end of the latest call */
    uint64_t changed;         /* publish generation of the last change */
    struct funcmond_hist dur; /* buckets and count only: sum and extremes are the fields above */
    uint64_t cancelled;
    uint64_t deadline_exceeded;
    uint64_t client_errors; /* HTTP requests answered 4xx (not errors) */
    uint64_t dropped;       /* spilled calls: in every count and total, but with no record (stack, bytes) */
    uint64_t total_bytes;   /* bytes allocated, over calls measured with tracking on */
    uint64_t max_bytes;
    uint64_t freed_bytes;
    struct funcmond_hist mem;
    uint64_t dur_buckets[FUNCMOND_MAX_BUCKETS + 1]; /* per interval (not cumulative); last = above every bound */
    uint64_t mem_buckets[FUNCMOND_MAX_BUCKETS + 1];
    struct funcmond_window_slot window[FUNCMOND_WINDOW_SLOTS];
    uint32_t id;
    int overflow; /* an "<overflow>" entry: of its service, or the global one */
    char service[FUNCMON_SERVICE_MAX + 1];
    char package[FUNCMON_PACKAGE_MAX + 1];
    char name[FUNCMON_NAME_MAX + 1];
} __attribute__((aligned(64)));

/*
 * Recorded calls of one function not yet added to its figures. A function's figures span
 * a few KiB (histogram chunks, Prometheus buckets, the window slot), and with thousands of
 * functions they are not in cache when the next record for one arrives: adding each record
 * there costs about ten cache misses, most of them waiting on the one before (the entry,
 * then a histogram's chunk list, then the chunk). Deferred, a record writes one line of
 * its function's pending entry, without reading it (so the write does not wait for the
 * line), and its count and latest end in small arrays that stay in cache. A full entry
 * joins a short queue that fetches the figures' lines ahead, one step of the chain at a
 * time, while other records go on; it is added to the figures when it leaves the queue.
 * funcmond_agg_flush adds whatever is left, with the same fetch ahead.
 */
#define FUNCMOND_PENDING_LINE_CALLS 16
#define FUNCMOND_PENDING_LINES 4
#define FUNCMOND_PENDING_CALLS (FUNCMOND_PENDING_LINE_CALLS * FUNCMOND_PENDING_LINES)
#define FUNCMOND_PENDING_ERROR 0x80000000u /* in a held call: it failed; the rest is its duration */
#define FUNCMOND_PENDING_LISTED 0x80u      /* in a pending state: the id is in pending_ids */
struct funcmond_pending_line {
    uint32_t call[FUNCMOND_PENDING_LINE_CALLS]; /* durations below 2^31 ns (with FUNCMOND_PENDING_ERROR) */
} __attribute__((aligned(64)));
struct funcmond_pending {
    struct funcmond_pending_line line[FUNCMOND_PENDING_LINES];
};

/* Full entries waiting for their lines (a power of two): the steps of the fetch are spread
 * over it, each far enough behind the one before for a miss to memory to complete. */
#define FUNCMOND_FULL_QUEUE 64

struct funcmond_service_use {
    char service[FUNCMON_SERVICE_MAX + 1];
    uint32_t functions; /* its entries counted against MAX_FUNCTIONS */
};

struct funcmond_aggregate {
    const struct funcmond_config *cfg;
    uint64_t dur_bounds_ns[FUNCMOND_MAX_BUCKETS];
    uint64_t mem_bounds[FUNCMOND_MAX_BUCKETS];
    uint32_t n_dur_bounds;
    uint32_t n_mem_bounds;
    struct funcmond_function **fns; /* by id */
    uint32_t n_fns;
    uint32_t cap_fns;
    uint32_t n_regular;               /* functions counted against MAX_FUNCTIONS */
    uint32_t n_overflow;              /* per-service overflow entries, up to FUNCMOND_OVERFLOW_ENTRIES */
    struct funcmond_pending *pending; /* by id, cap_fns of them (64-byte aligned) */
    uint8_t *pending_state;           /* by id: calls held, | FUNCMOND_PENDING_LISTED */
    uint64_t *pending_last_real_ns;   /* by id: latest wall-clock end of the calls held */
    uint32_t *pending_ids;            /* ids whose pending entry may hold calls */
    uint32_t n_pending_ids;
    uint32_t full_queue[FUNCMOND_FULL_QUEUE]; /* ids of full entries, oldest at full_queued - FUNCMOND_FULL_QUEUE */
    uint64_t full_queued;                     /* entries ever queued (since the last flush) */
    uint32_t *index;                          /* open addressing: id + 1, 0 = empty */
    uint32_t index_mask;
    /* Functions per service (only services that have some: at most the entries). */
    struct funcmond_service_use *services;
    uint32_t n_services;
    uint32_t cap_services;
    uint32_t *service_index; /* open addressing: position + 1, 0 = empty */
    uint32_t service_index_mask;
    uint64_t overflow_folds; /* functions folded into an overflow entry */
    uint64_t now_slot;       /* current window slot (set by funcmond_agg_tick) */
    uint64_t generation;     /* bumped by every publish: marks what changed since */
    int dirty;               /* something changed since the last publish */
};

/* Prepares an empty aggregate for cfg (which must outlive it). Returns 0 or -ENOMEM. */
int funcmond_agg_init(struct funcmond_aggregate *agg, const struct funcmond_config *cfg);
void funcmond_agg_free(struct funcmond_aggregate *agg);

/* The id of (service, package, name) in *id, created if new and the rules above give it
 * room; otherwise the id of an overflow entry (funcmond_agg_overflow). Returns 0, or
 * -ENOMEM when memory ran out (*id not set). */
int funcmond_agg_function(struct funcmond_aggregate *agg, const char *service, const char *package, const char *name, uint32_t *id);

/* The overflow entry for the service in *id: its own while FUNCMOND_OVERFLOW_ENTRIES
 * allow, otherwise the global one; created if new. Returns 0 or -ENOMEM. */
int funcmond_agg_overflow(struct funcmond_aggregate *agg, const char *service, uint32_t *id);

/* Looks up without creating: 0 with *id, or -ENOENT. */
int funcmond_agg_find(const struct funcmond_aggregate *agg, const char *service, const char *package, const char *name,
                      uint32_t *id);

/* Sets the window slot for records that follow (monotonic ns). */
void funcmond_agg_tick(struct funcmond_aggregate *agg, uint64_t now_mono_ns);

/* Adds one recorded call: its duration, its record flags, the bytes it allocated and freed
 * (when measured: FUNCMON_RECORD_ALLOC) and its wall-clock end. */
void funcmond_agg_record(struct funcmond_aggregate *agg, uint32_t id, uint64_t dur_ns, uint32_t flags, uint64_t alloc_bytes,
                         uint64_t free_bytes, uint64_t end_real_ns);

/* As funcmond_agg_record, but the figures of the usual record (no flag but
 * FUNCMON_RECORD_ERROR, a duration below 2^31 ns) are complete only after
 * funcmond_agg_flush: the drain's per-record path, which writes one cache line of the
 * function's. Inline below. */
static inline void funcmond_agg_record_deferred(struct funcmond_aggregate *agg, uint32_t id, uint64_t dur_ns, uint32_t flags,
                                                uint64_t alloc_bytes, uint64_t free_bytes, uint64_t end_real_ns);

/* Adds every deferred call to its function's figures. The drain calls it when it ends a
 * pass, and funcmond_agg_tick before the window slot moves; cheap when nothing waits. */
void funcmond_agg_flush(struct funcmond_aggregate *agg);

/* Adds calls that left no record (a client's spill counters): counts only, errors and HTTP
 * 4xx answers among them. They are counted as dropped too. */
void funcmond_agg_spill(struct funcmond_aggregate *agg, uint32_t id, uint64_t calls, uint64_t errors, uint64_t client_errors);

/*
 * Adds the durations of spilled calls (counted by funcmond_agg_spill): total_ns, their
 * exact sum, to the total; and per coarse bucket b (funcmon_spill_bucket) per_bucket[b]
 * calls, each entered into the histograms (quantiles, Prometheus buckets, windows) at
 * funcmon_spill_bucket_value(b), within 20% of its true duration. The extremes take the
 * bucket bounds, conservatively: the minimum at most the lower bound of the lowest bucket,
 * the maximum at least what the highest bucket's calls can have taken (below its upper
 * bound, and no more than total_ns when that is above the lower bound), so every quantile
 * and the average stay between them.
 */
void funcmond_agg_spill_durations(struct funcmond_aggregate *agg, uint32_t id, uint64_t total_ns,
                                  const uint32_t per_bucket[FUNCMON_SPILL_BUCKETS]);

/* The duration histogram with its sum and extremes filled in from f (a shallow copy:
 * it shares f's buckets, read-only). */
struct funcmond_hist funcmond_agg_durations(const struct funcmond_function *f);

/* Calls and errors in the last `slots` window slots (ending with the current one). */
void funcmond_agg_window(const struct funcmond_aggregate *agg, const struct funcmond_function *f, int slots, uint64_t *calls,
                         uint64_t *errors, struct funcmond_hist *dur_or_null);

/* ---- inline fast path ---- */

void funcmond__agg_pending_full(struct funcmond_aggregate *agg, uint32_t id);
void funcmond__agg_pending_add(struct funcmond_aggregate *agg, uint32_t id);

static inline void
funcmond_agg_record_deferred(struct funcmond_aggregate *agg, uint32_t id, uint64_t dur_ns, uint32_t flags, uint64_t alloc_bytes,
                             uint64_t free_bytes, uint64_t end_real_ns)
{
    if (__builtin_expect((flags & ~(uint32_t)FUNCMON_RECORD_ERROR) != 0 || dur_ns >= FUNCMOND_PENDING_ERROR, 0)) {
        funcmond_agg_record(agg, id, dur_ns, flags, alloc_bytes, free_bytes, end_real_ns);
        return;
    }
    uint32_t state = agg->pending_state[id];
    if (__builtin_expect((state & ~FUNCMOND_PENDING_LISTED) == FUNCMOND_PENDING_CALLS, 0)) {
        funcmond__agg_pending_add(agg, id); /* full, and still in the queue: a busy function */
        state = agg->pending_state[id];
    }
    if (__builtin_expect(!(state & FUNCMOND_PENDING_LISTED), 0)) {
        agg->pending_ids[agg->n_pending_ids++] = id; /* room for every id: listed once */
        state |= FUNCMOND_PENDING_LISTED;
    }
    uint32_t n = state & ~FUNCMOND_PENDING_LISTED, at = n % FUNCMOND_PENDING_LINE_CALLS;
    struct funcmond_pending_line *line = &agg->pending[id].line[n / FUNCMOND_PENDING_LINE_CALLS];
    line->call[at] = (uint32_t)dur_ns | ((flags & FUNCMON_RECORD_ERROR) ? FUNCMOND_PENDING_ERROR : 0);
    if (end_real_ns > agg->pending_last_real_ns[id])
        agg->pending_last_real_ns[id] = end_real_ns;
    agg->pending_state[id] = (uint8_t)(state + 1);
    if (n + 1 == FUNCMOND_PENDING_CALLS)
        funcmond__agg_pending_full(agg, id);
}

#endif
