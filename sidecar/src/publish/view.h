/*
 * view.h - consistent, read-only copies of the aggregate for threads other than the
 * drain thread (the HTTP server, tests).
 *
 * The drain thread owns the live aggregate and must never wait for a reader. At most
 * every 100 ms while figures change (every second otherwise, so rates and process
 * figures stay fresh) it publishes a view: every function's figures with quantiles,
 * cumulative buckets and window rates already computed (only changed functions are
 * recomputed), every process, and the sidecar's counters. Publishing swaps one pointer.
 * Readers enter a Concurrency Kit epoch section, read the current view, and leave; the old
 * view is freed by ck_epoch once no reader can still see it. Readers never block the
 * drain thread and never see a half-updated function.
 */
#ifndef FUNCMOND_VIEW_H
#define FUNCMOND_VIEW_H

#include <stdint.h>

#include <ck_epoch.h>

#include "config.h"
#include "funcmon/layout.h"
#include "stacks_view.h"

enum funcmond_proc_state {
    FUNCMOND_PROC_LIVE,     /* attached, its process running */
    FUNCMOND_PROC_SHUTDOWN, /* the client called funcmon_shutdown; drained, kept for the retention time */
    FUNCMOND_PROC_EXITED    /* the process is gone; drained, kept for the retention time */
};

/* What the drain thread's loop runs on: io_uring, or epoll where io_uring is refused (a
 * container runtime's default seccomp profile, kernel.io_uring_disabled). */
enum funcmond_event_loop { FUNCMOND_EVENT_LOOP_IO_URING, FUNCMOND_EVENT_LOOP_EPOLL };

/* Its name, as /metrics and /debug/stats show it. */
static inline const char *
funcmond_event_loop_name(enum funcmond_event_loop e)
{
    return e == FUNCMOND_EVENT_LOOP_EPOLL ? "epoll" : "io_uring";
}

/* Runtime figures of a client process, from /proc and its control thread. */
struct funcmond_runtime {
    uint64_t rss_bytes;
    uint64_t vm_bytes;
    uint64_t utime_ticks;
    uint64_t stime_ticks;
    uint32_t threads;
    uint32_t open_fds;
    uint64_t start_real_ns; /* process start, wall clock */
    char state;             /* /proc state letter */
    int have_alloc;         /* alloc/totals hold a sample */
    struct funcmon_alloc_stats alloc;
    struct funcmon_alloc_totals totals;
};

/* Sidecar counters (its own metrics). */
struct funcmond_counters {
    uint64_t records;     /* records aggregated */
    uint64_t dropped;     /* records clients dropped (full rings) */
    uint64_t bad_records; /* records skipped as invalid */
    uint64_t segments_rejected;
    uint64_t segments_attached;
    uint64_t segments_deferred; /* segments that had to wait for a guard entry or an fd */
    uint64_t lost;              /* records consumed before a crash and not in the state file */
    uint64_t drain_lag_ns;      /* age of the oldest record at the last drain cycle */
    uint64_t drain_cycles;
    uint64_t wakeups; /* drains started by a client's wake-up */
};

struct funcmond_fn_view {
    char service[FUNCMON_SERVICE_MAX + 1];
    char package[FUNCMON_PACKAGE_MAX + 1];
    char name[FUNCMON_NAME_MAX + 1];
    int overflow;
    uint64_t calls;
    uint64_t errors;
    uint64_t cancelled;
    uint64_t deadline_exceeded;
    uint64_t client_errors;
    uint64_t dropped; /* calls whose record never reached funcmond (in every count and total) */
    uint64_t records; /* calls with a duration (the histogram's count) */
    uint64_t total_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t avg_ns;
    uint64_t p50_ns, p90_ns, p99_ns, p999_ns;
    uint64_t total_bytes;
    uint64_t max_bytes;
    uint64_t freed_bytes;
    uint64_t mem_records; /* calls measured with allocation tracking */
    uint64_t last_real_ns;
    double rate_1m;       /* calls per second over the last minute */
    double error_rate_1m; /* failed calls / calls over the last minute (0 with no calls) */
    double rate_5m;
    double error_rate_5m;
    uint64_t p50_1m_ns, p99_1m_ns, p50_5m_ns, p99_5m_ns;
    uint64_t dur_cum[FUNCMOND_MAX_BUCKETS]; /* cumulative counts for the configured bounds */
    uint64_t mem_cum[FUNCMOND_MAX_BUCKETS];
    uint32_t inflight; /* calls running now, across processes */
};

/* A profiled call running now. */
struct funcmond_call_view {
    uint32_t fn; /* index into the view's fns, UINT32_MAX when not known yet */
    uint32_t depth;
    uint64_t start_real_ns; /* wall clock of its begin */
};

/* A thread of a client with a ring, and its in-flight stack (outermost first). */
struct funcmond_thread_view {
    int32_t tid;
    char name[FUNCMON_THREAD_NAME_MAX + 1];
    uint32_t depth;   /* calls in flight (may exceed the published entries) */
    uint32_t n_calls; /* entries of calls[] */
    struct funcmond_call_view calls[FUNCMON_INFLIGHT_MAX];
};

struct funcmond_proc_view {
    int32_t pid;
    char service[FUNCMON_SERVICE_MAX + 1];
    char segment[256];
    enum funcmond_proc_state state;
    uint64_t attached_real_ns;
    uint64_t ended_real_ns;
    uint64_t records;
    uint64_t dropped;
    uint64_t bad_records;
    uint32_t rings_active; /* thread slots owned by live threads */
    uint32_t rings_total;  /* thread slots */
    uint32_t pool_chunks;
    uint32_t pool_chunks_used; /* chunks holding records not yet read, or being written */
    uint32_t sites;
    uint64_t fallback_calls; /* calls of threads that had no ring */
    struct funcmond_runtime rt;
    uint32_t n_threads; /* threads holding a ring now (live processes) */
    struct funcmond_thread_view *threads;
    uint32_t n_stacks; /* allocations per call stack, sorted by id (stacks.h) */
    struct funcmond_stack *stacks;
};

struct funcmond_view {
    uint64_t generation;
    uint64_t published_real_ns;
    uint64_t start_real_ns; /* the sidecar's */
    enum funcmond_event_loop event_loop;
    uint32_t n_fns;
    struct funcmond_fn_view *fns;
    uint32_t n_procs;
    struct funcmond_proc_view *procs;
    struct funcmond_counters counters;
    uint64_t functions_overflow; /* functions folded into overflow entries */
    uint32_t clients;
    uint32_t n_dur_bounds;
    uint32_t n_mem_bounds;
    double dur_bounds_s[FUNCMOND_MAX_BUCKETS];
    double mem_bounds[FUNCMOND_MAX_BUCKETS];
    ck_epoch_entry_t epoch_entry;
};

struct funcmond_views;
struct funcmond_reader;

/* A reader for one thread; thread-safe. NULL when out of memory. */
struct funcmond_reader *funcmond_view_reader(struct funcmond_views *vs);
void funcmond_view_reader_free(struct funcmond_reader *r);
/* Enters a read section and returns the current view (never NULL after init), valid until
 * funcmond_view_end. Sections do not nest. */
const struct funcmond_view *funcmond_view_begin(struct funcmond_reader *r);
void funcmond_view_end(struct funcmond_reader *r);

/* The keys of functions by_name[0..n) of v (positions sorted by name, then service, then
 * package) in /debug/profiles: the name; where a name is shared, "<package>:<name>" (within
 * one service) or "<service>/<package>:<name>" (across services), with '%', '/' and ':' of
 * the service and '%' and ':' of the package percent-encoded, so that the parts can be
 * told apart; a name that equals another function's key gets the service form too. No
 * two keys are equal. keys[i] (for by_name[i]) is allocated; free them with
 * funcmond_view_profile_keys_free. Returns 0 or -ENOMEM (nothing to free). */
int funcmond_view_profile_keys(const struct funcmond_view *v, const uint32_t *by_name, uint32_t n, char **keys);
void funcmond_view_profile_keys_free(char **keys, uint32_t n);

#endif
