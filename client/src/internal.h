/*
 * internal.h - state shared by the modules of libfuncmon, not part of the public API.
 *
 * The library has one process-wide state (struct funcmon__process) guarded by one mutex
 * for the rare operations (init, shutdown, a thread's first call, fork), and per-thread
 * state in TLS for the hot path. Modules: funcmon.c (options, init, shutdown, fork,
 * profile wrappers), segment.c (creating and retiring the shared-memory segment),
 * thread.c (slots, slow paths), site.c (site registry), clock.c (timestamps and
 * calibration), alloc.c (allocation tracker), control.c (control thread).
 */
#ifndef FUNCMON_INTERNAL_H
#define FUNCMON_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "funcmon.h"

#define FUNCMON_DEFAULT_CHUNK_RECORDS 128u
#define FUNCMON_DEFAULT_POOL_RECORDS (3584u * FUNCMON_DEFAULT_CHUNK_RECORDS)
#define FUNCMON_DEFAULT_MAX_THREADS 4096u
#define FUNCMON_POOL_RECORDS_MIN 32u
#define FUNCMON_POOL_RECORDS_MAX (1u << 30)
/* FUNCMON_RING_RECORDS, the first protocol's per-thread ring size: a power of two in this
 * range, read as a pool of that many records for each of its 64 default threads. */
#define FUNCMON_RING_RECORDS_MIN 64u
#define FUNCMON_RING_RECORDS_MAX (1u << 22)
#define FUNCMON_RING_RECORDS_THREADS 64u
#define FUNCMON_DEFAULT_MAX_SITES 4096u
#define FUNCMON_DEFAULT_PREFIX "funcmon"
#define FUNCMON_PREFIX_MAX 64
#define FUNCMON_SHM_NAME_MAX 160

#define FUNCMON__HIDDEN __attribute__((visibility("hidden")))

/* A created and mapped segment. */
struct funcmon__segment {
    struct funcmon_shm_header *hdr; /* NULL when there is none */
    size_t size;
    char name[FUNCMON_SHM_NAME_MAX]; /* "/<prefix>.<service>.<pid>" */
    struct funcmon_site_entry *sites;
    struct funcmon_thread_slot *slots;
    struct funcmon_chunk *chunks;
    struct funcmon_record *records; /* chunk i's at records + i * chunk_records */
    uint32_t chunk_records;
    uint32_t pool_chunks;
    uint32_t max_threads;
    uint32_t max_sites;
};

struct funcmon__process {
    pthread_mutex_t lock; /* init, shutdown, attach after fork, control thread start/stop */
    int initialised;      /* funcmon_init succeeded (enabled or not) and shutdown has not run */
    int enabled;          /* profiling requested and a segment should exist */
    int need_segment;     /* forked child: create a segment before the first record */
    struct funcmon_options opts;
    char service[FUNCMON_SERVICE_MAX + 1];
    char prefix[FUNCMON_PREFIX_MAX + 1];
    struct funcmon__segment seg;
    _Atomic uint32_t slot_hint; /* where the next slot search starts */
    pthread_t control_thread;
    int control_running;
    _Atomic int control_stop;
};

extern FUNCMON__HIDDEN struct funcmon__process funcmon__proc;

/* funcmon.c */
FUNCMON__HIDDEN void funcmon__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Bumps the generation: every thread re-attaches on its next call. Needs proc.lock. */
FUNCMON__HIDDEN void funcmon__new_generation(void);
/* Creates the segment if a fork left the process without one. Needs proc.lock. */
FUNCMON__HIDDEN int funcmon__ensure_segment_locked(void);

/* segment.c */
FUNCMON__HIDDEN int funcmon__segment_create(struct funcmon__segment *seg, const struct funcmon_options *opts, const char *service,
                                            const char *prefix);
/* Stops the segment: marks it shut down, unlinks it when no consumer will, and replaces the
 * mapping with private memory so late writers are harmless. unlink = 0 in a forked child. */
FUNCMON__HIDDEN void funcmon__segment_retire(struct funcmon__segment *seg, int unlink_it);

/* thread.c */
FUNCMON__HIDDEN int funcmon__thread_key_init(void);
/* Makes sure the thread's exit runs funcmon__alloc_thread_exit. */
FUNCMON__HIDDEN void funcmon__thread_want_exit_hook(struct funcmon__thread *t);
FUNCMON__HIDDEN void funcmon__thread_forget_all(void);
/* Writes a span's record on t's ring (t owns a live ring): through the same full-ring and
 * high-water checks as a call's end, but leaving t's depth and error marks alone. */
FUNCMON__HIDDEN void funcmon__record_span(struct funcmon__thread *t, uint32_t site, uint64_t start, uint64_t end, uint32_t flags);

/* site.c */
/* Makes seg the segment new sites are written to, and writes every interned site into its
 * table; NULL stops mirroring. Needs proc.lock. */
FUNCMON__HIDDEN void funcmon__sites_mirror(struct funcmon__segment *seg);
/* The number of site ids the registry hands out (fixed by the first init or site). */
FUNCMON__HIDDEN uint32_t funcmon__sites_limit(uint32_t wanted);
FUNCMON__HIDDEN void funcmon__sites_atfork_prepare(void);
FUNCMON__HIDDEN void funcmon__sites_atfork_parent(void);
FUNCMON__HIDDEN void funcmon__sites_atfork_child(void);

/* clock.c */
/* Chooses the clock (TSC when invariant and trusted by the kernel, FUNCMON_CLOCK to force)
 * and calibrates it. */
FUNCMON__HIDDEN void funcmon__clock_init(void);
/* Writes the current calibration into a header (sequence-locked). */
FUNCMON__HIDDEN void funcmon__clock_publish(struct funcmon_shm_header *hdr);
/* Re-measures the tick rate over the time since funcmon__clock_init, for a precise rate. */
FUNCMON__HIDDEN void funcmon__clock_refine(void);
FUNCMON__HIDDEN uint64_t funcmon__real_ns(void);
/* fork: the control thread may hold the calibration lock; take it across the fork. */
FUNCMON__HIDDEN void funcmon__clock_atfork_prepare(void);
FUNCMON__HIDDEN void funcmon__clock_atfork_release(void);
FUNCMON__HIDDEN uint64_t funcmon__mono_ns(void);

/* alloc.c */
FUNCMON__HIDDEN void funcmon__alloc_enable(int on);
FUNCMON__HIDDEN int funcmon__alloc_interposed(void);
FUNCMON__HIDDEN void funcmon__alloc_totals(struct funcmon_alloc_totals *out);
FUNCMON__HIDDEN void funcmon__alloc_atfork_prepare(void);
FUNCMON__HIDDEN void funcmon__alloc_atfork_parent(void);
FUNCMON__HIDDEN void funcmon__alloc_atfork_child(void);
/* Detaches the calling thread's counters from the process totals (thread exit). */
FUNCMON__HIDDEN void funcmon__alloc_thread_exit(struct funcmon__thread *t);
/* The allocator's figures (mallinfo2) and the RSS, now. */
FUNCMON__HIDDEN void funcmon__alloc_stats_sample(struct funcmon_alloc_stats *out);

/* control.c */
FUNCMON__HIDDEN int funcmon__control_start(void);
FUNCMON__HIDDEN void funcmon__control_stop(void);
/* fork: taken after proc.lock and before the others, so that the control thread is asleep,
 * holding nothing, when fork copies the process. */
FUNCMON__HIDDEN void funcmon__control_atfork_prepare(void);
FUNCMON__HIDDEN void funcmon__control_atfork_release(void);

#endif
