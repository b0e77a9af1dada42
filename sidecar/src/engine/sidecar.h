/*
 * sidecar.h - the state of funcmond shared by its modules.
 *
 * One drain thread owns everything here: the attached processes, the aggregate, the
 * event loop. Other threads (the HTTP server) never touch it; they read the views the
 * drain thread publishes (publish/view.h) and send it requests through the queue of
 * publish/request.h.
 *
 * Modules, each calling only those before it:
 *   common/: config.c (settings), log.c, clock.c;
 *   loop.c: the event loop, operations with their own completion callbacks, run on io_uring
 *   (loop_uring.c) or, where io_uring is refused, on epoll (loop_epoll.c, futex_waker.c,
 *   file_worker.c);
 *   aggregate.c + hist.c (figures), stacks.c (allocations per call stack);
 *   ingest.c: records, spills and drops into the aggregate; a client's wake-up and exit;
 *   discovery.c (finding, validating, attaching and retiring segments), snapshot.c (state
 *   file), procfs.c (/proc figures), control.c (control requests, other threads' queue);
 *   view.c: read-only views published to readers (publish.h);
 *   tick.c: the scheduler, start and stop;
 *   main.c: command line and signals.
 */
#ifndef FUNCMOND_SIDECAR_H
#define FUNCMOND_SIDECAR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "aggregate.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "funcmon/consumer.h"
#include "loop.h"
#include "request.h"
#include "stacks.h"
#include "view.h"

struct funcmond;
struct funcmond_process;

/* The process an operation embedded in it (op_wake, op_exit, op_ctl) belongs to. */
#define FUNCMOND_PROC_OF(op, member) ((struct funcmond_process *)((char *)(op)-offsetof(struct funcmond_process, member)))

/* What was credited of one site's spilled call durations (ingest.c). Allocated when the
 * site first spills: most sites never do, and this is 264 bytes. */
struct funcmond_spill_buckets_seen {
    uint64_t credited;                    /* spilled calls entered into the histograms so far */
    uint32_t seen[FUNCMON_SPILL_BUCKETS]; /* the site's bucket counters as far as credited (they wrap) */
};

struct funcmond_process {
    struct funcmond_process *next;
    struct funcmon_consumer c;
    char shm_name[256];
    dev_t dev;
    ino_t ino;
    int32_t pid;
    uint64_t proc_start_time;
    char service[FUNCMON_SERVICE_MAX + 1];
    enum funcmond_proc_state state;
    uint64_t attached_real_ns;
    uint64_t ended_mono_ns; /* when it exited or shut down */
    uint64_t ended_real_ns;
    struct funcmon_clock clk;
    uint64_t clk_read_mono_ns;
    uint32_t *site_fn;          /* ingest.c: site id -> its function (see ingest.h) */
    uint64_t *spill_calls_seen; /* per site: spill counters already added */
    uint64_t *spill_errors_seen;
    uint64_t *spill_client_errors_seen;
    uint64_t *spill_ticks_seen; /* per site: spilled durations already added, in clock ticks */
    /* per site: the buckets of its spilled calls already added, NULL until it spills */
    struct funcmond_spill_buckets_seen **spill_buckets_seen;
    uint32_t spill_looks;          /* drain_spills passes (ingest.c) */
    struct funcmond_stacks stacks; /* allocations per call stack (pprof/heap) */
    uint64_t records;              /* records aggregated */
    uint64_t dropped_seen;         /* sum of the rings' drop counters already counted */
    int pidfd;                     /* the one fd a client costs; -1: its exit is seen by /proc start time */
    int pidfd_retry;               /* pidfd_open failed for want of fds: tried again at each /proc read */
    char stat_buf[1024];
    char status_buf[4096];
    int ops_inflight;         /* loop operations referring to this struct */
    int idle_wakes_this_tick; /* wake-ups this tick that found little to drain */
    int wake_armed;
    int detaching;
    struct funcmond_runtime rt;
    uint64_t next_sample_mono_ns;
    struct funcmond_ctl_request ctl;
    struct funcmond_op op_wake, op_exit, op_ctl;
};

struct funcmond_rejected {
    struct funcmond_rejected *next;
    char name[256];
    dev_t dev;
    ino_t ino;
    int not_ready; /* still being created: look again, for up to 10 s */
    int waiting;   /* waits for a guard entry or an fd: look again, without end */
    int logged;    /* its wait was logged and counted */
    uint64_t first_seen_mono_ns;
};

struct funcmond {
    struct funcmond_config cfg;
    struct funcmond_aggregate agg;
    struct funcmond_process *procs;
    struct funcmond_rejected *rejected; /* files to look at again (pending, waiting) */
    struct funcmond_seen *seen;         /* files rejected for good (discovery.c) */
    uint64_t log_window_mono_ns;        /* rejection lines: the current second, */
    uint32_t log_lines;                 /* the lines written in it, */
    uint64_t log_suppressed;            /* and those left out since the last summary */
    struct funcmond_counters counters;
    struct funcmond_loop *loop; /* loop.h */
    int futex_wait_ok;          /* the loop can wait for clients' wake words */
    int inotify_fd;
    int signal_fd;
    int stop;
    char inotify_buf[4096] __attribute__((aligned(8)));
    char signal_buf[128];
    uint64_t tick_ns;         /* DRAIN_INTERVAL_MS */
    uint64_t idle_tick_ns;    /* IDLE_TICK_FACTOR times that, while nothing comes */
    uint64_t records_at_tick; /* counters.records at the last tick */
    uint32_t quiet_ticks;     /* ticks in a row that found no record */
    struct funcmond_op op_timer, op_inotify, op_signal;
    uint64_t next_rescan_mono_ns;
    uint64_t next_proc_read_mono_ns;
    uint64_t next_snapshot_mono_ns;
    uint64_t last_publish_mono_ns;
    uint64_t start_real_ns;
    uint32_t clients; /* live processes */
    uid_t euid;
    long clock_ticks; /* sysconf(_SC_CLK_TCK) */
    uint64_t boot_real_ns;
    struct funcmond_views *views;      /* view.h */
    struct funcmond_snapshot_io *snap; /* snapshot.c, in flight */
    struct funcmond_restore *restore;  /* snapshot.c: positions and spill counters from the state file */
    struct funcmond_requests rq;       /* other threads' requests */
    uint64_t request_buf;
    struct funcmond_op op_request;
    struct funcmond_trim_job *trims; /* started, waiting for answers */
    int lock_fd, lock_held;          /* discovery.c: the announcement, flock'ed while we run */
};

/* discovery.c */
/* Takes the single-instance lock of SHM_PREFIX: an exclusive flock on the announcement
 * "<SHM_DIR>/<SHM_PREFIX>-sidecar", held until funcmond_discovery_unlock. Returns 0;
 * -EWOULDBLOCK when another funcmond holds it (its pid in *holder, 0 if unknown); -EINVAL
 * when the file is not a regular file; -EPERM when another user owns it; or another -errno
 * when it cannot be opened or locked. */
int funcmond_discovery_lock(struct funcmond *d, int *holder);
/* Removes the announcement and lets the lock go; nothing if it is not held. */
void funcmond_discovery_unlock(struct funcmond *d);
/* Stopping: from now on clients remove their own segments. Empties the announcement (the
 * lock stays held, so no second funcmond starts before this one is done), tells every live
 * client it has no consumer, and marks ended those that exited meanwhile (drained to their
 * last record, their segments removed with the others'). */
void funcmond_discovery_withdraw(struct funcmond *d);
int funcmond_discovery_init(struct funcmond *d);
void funcmond_discovery_scan(struct funcmond *d);
void funcmond_discovery_inotify(struct funcmond *d, size_t len);
/* Starts reading inotify events through the loop (nothing without an inotify fd). */
void funcmond_discovery_watch(struct funcmond *d);
void funcmond_discovery_retry_pending(struct funcmond *d, uint64_t now_mono_ns);
/* Detaches and frees processes whose retention ran out (all of them if `all`). */
void funcmond_discovery_expire(struct funcmond *d, uint64_t now_mono_ns, int all);
void funcmond_discovery_close(struct funcmond *d);
/* Frees what discovery remembers of rejected files. */
void funcmond_discovery_forget(struct funcmond *d);

#endif
