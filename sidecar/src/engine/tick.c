/*
 * tick.c - funcmond's scheduler: what the drain thread does, and when.
 *
 * Every DRAIN_INTERVAL_MS (IDLE_TICK_FACTOR times less often while no record comes) the
 * timer's callback drains every live client, asks for allocator samples, takes control
 * answers and trim requests, retries pending segments, reads /proc once a second, rescans
 * SHM_DIR every RESCAN_INTERVAL_S, lets ended clients go after their retention, writes the
 * state file every STATE_INTERVAL_S and publishes a view for the readers. Between ticks
 * the loop (loop.c) sleeps; a client past high water wakes it (ingest.c), so does a new
 * segment (discovery.c) or another thread's request (control.c).
 *
 * SIGTERM and SIGINT arrive through a signalfd read by the loop: the loop stops, then
 * every request is answered, every client drained to its last record, a last view
 * published and the state file written, in that order, before funcmond_drain_run returns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "ingest.h"
#include "log.h"
#include "procfs.h"
#include "publish.h"
#include "sidecar.h"
#include "snapshot.h"
#include "tick.h"

/* Ticks in a row without a record after which the sidecar ticks IDLE_TICK_FACTOR times less
 * often, until a record comes. */
#define QUIET_TICKS 10
#define IDLE_TICK_FACTOR 4
/* How long closing waits for the cancelled operations of the processes still attached. */
#define CLOSE_WAIT_NS (10 * FUNCMOND_SECOND_NS)

/* Once a second per live client: its /proc figures, each file opened only while it is
 * read (a client keeps no fd but its pidfd); without a pidfd, its exit. */
static void
read_proc(struct funcmond *d, struct funcmond_process *p)
{
    if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
        return;
    if (p->pidfd < 0) {
        /* Without a pidfd, a start time that changed, or no process, means it is gone. */
        if (funcmond_process_gone(p->pid, p->proc_start_time)) {
            funcmond_process_ended(d, p, FUNCMOND_PROC_EXITED);
            return;
        }
        if (p->pidfd_retry) { /* attached while out of fds: watch its exit properly now */
            p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
            if (p->pidfd >= 0 && funcmond_process_gone(p->pid, p->proc_start_time)) {
                close(p->pidfd);
                p->pidfd = -1;
                funcmond_process_ended(d, p, FUNCMOND_PROC_EXITED);
                return;
            }
            if (p->pidfd >= 0) {
                p->pidfd_retry = 0;
                LOG_INFO("%s: watching its exit by pidfd again", p->shm_name);
                funcmond_ingest_watch(d, p);
            }
        }
    }
    funcmond_procfs_read(d, p);
}

/* --- the tick --- */

/* The next tick. While nothing comes, tick less often: idle clients then cost the sidecar a
 * wake-up every IDLE_TICK_FACTOR intervals. A client past high water wakes it at once anyway;
 * where futex waits are off nothing can wake it, so it keeps to the interval. */
static void
arm_timer(struct funcmond *d)
{
    int idle = d->futex_wait_ok && d->quiet_ticks >= QUIET_TICKS;
    funcmond_loop_timeout(d, &d->op_timer, idle ? d->idle_tick_ns : d->tick_ns);
}

/* SIGTERM or SIGINT: the loop stops, see funcmond_drain_run for what follows. */
static void
on_signal(struct funcmond *d, struct funcmond_op *op, int res)
{
    if (res == (int)sizeof(struct signalfd_siginfo)) {
        const struct signalfd_siginfo *si = (const void *)d->signal_buf;
        LOG_INFO("signal %u: draining and stopping", si->ssi_signo);
        /* Pairs with the acquire load in funcmond_loop_stopping. */
        __atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
    } else {
        funcmond_loop_repeat(d, op);
    }
}

/* Publishes a view when one is due, the functions of calls in flight resolved first. */
static void
publish(struct funcmond *d, uint64_t now, int force)
{
    if (funcmond_view_due(d, now, force))
        funcmond_ingest_inflight(d);
    funcmond_view_maybe_publish(d, now, force);
}

static void
tick(struct funcmond *d)
{
    uint64_t now = funcmond_mono_ns();

    funcmond_agg_tick(&d->agg, now);
    d->counters.drain_cycles++;
    d->counters.drain_lag_ns = 0;
    for (struct funcmond_process *p = d->procs; p != NULL; p = p->next) {
        if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
            continue;
        p->idle_wakes_this_tick = 0;
        funcmond_ingest_drain(d, p);
        funcmond_control_sample(d, p, now);
        funcmond_ingest_arm_wake(d, p);
    }
    funcmond_control_poll(d, now);
    funcmond_discovery_retry_pending(d, now);
    if (now >= d->next_proc_read_mono_ns) {
        for (struct funcmond_process *p = d->procs; p != NULL; p = p->next)
            read_proc(d, p);
        d->next_proc_read_mono_ns = now + FUNCMOND_SECOND_NS;
    }
    if (now >= d->next_rescan_mono_ns) {
        funcmond_discovery_scan(d);
        d->next_rescan_mono_ns = now + (uint64_t)d->cfg.rescan_interval_s * FUNCMOND_SECOND_NS;
    }
    funcmond_discovery_expire(d, now, 0);
    if (d->cfg.state_file[0] != '\0' && now >= d->next_snapshot_mono_ns) {
        funcmond_snapshot_write(d, 0);
        d->next_snapshot_mono_ns = now + (uint64_t)d->cfg.state_interval_s * FUNCMOND_SECOND_NS;
    }
    publish(d, now, 0);
    d->quiet_ticks = d->counters.records == d->records_at_tick ? d->quiet_ticks + 1 : 0;
    d->records_at_tick = d->counters.records;
}

static void
on_timer(struct funcmond *d, struct funcmond_op *op, int res)
{
    (void)op;
    (void)res;
    tick(d);
    arm_timer(d);
}

int
funcmond_drain_init(struct funcmond *d)
{
    sigset_t mask;
    int ret;

    d->euid = geteuid();
    d->clock_ticks = sysconf(_SC_CLK_TCK);
    d->boot_real_ns = funcmond_boot_real_ns();
    d->start_real_ns = funcmond_real_ns();
    d->futex_wait_ok = 1;
    d->op_timer = (struct funcmond_op){.on_complete = on_timer, .standing = 1};
    d->op_signal = (struct funcmond_op){.on_complete = on_signal, .standing = 1};
    if ((ret = funcmond_control_init(d)) != 0)
        return ret;
    d->tick_ns = (uint64_t)d->cfg.drain_interval_ms * 1000000u;
    d->idle_tick_ns = d->tick_ns * IDLE_TICK_FACTOR;
    d->signal_fd = d->inotify_fd = -1;
    if ((ret = funcmond_loop_init(d)) < 0)
        return ret;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    d->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (d->signal_fd < 0) {
        ret = -errno;
        LOG_ERROR("signalfd: %s", strerror(errno));
        return ret;
    }
    if ((ret = funcmond_discovery_init(d)) != 0)
        LOG_WARN("cannot watch %s (%s): finding segments by rescans only", d->cfg.shm_dir, strerror(-ret));
    if ((ret = funcmond_view_init(d)) != 0)
        return ret;
    return 0;
}

int
funcmond_drain_run(struct funcmond *d)
{
    funcmond_discovery_scan(d);
    d->next_rescan_mono_ns = funcmond_mono_ns() + (uint64_t)d->cfg.rescan_interval_s * FUNCMOND_SECOND_NS;
    arm_timer(d);
    funcmond_loop_read(d, &d->op_signal, d->signal_fd, d->signal_buf, sizeof(struct signalfd_siginfo));
    funcmond_control_start(d);
    funcmond_discovery_watch(d);
    tick(d);
    int ret = funcmond_loop_run(d);
    if (ret != 0)
        return ret;
    /* Stopping: trims still waiting are answered as they stand (their done callbacks must
     * run), every client drained to its last record, then the state written. */
    funcmond_control_stop(d);
    /* Clients that stop from here on must not leave their segments to us (a pod deleted
     * stops the service and funcmond together); then everyone is drained to the end. */
    funcmond_discovery_withdraw(d);
    for (struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        funcmond_ingest_drain_to_end(d, p);
    publish(d, funcmond_mono_ns(), 1);
    if (d->cfg.state_file[0] != '\0')
        funcmond_snapshot_write(d, 1);
    return 0;
}

void
funcmond_drain_close(struct funcmond *d)
{
    funcmond_discovery_expire(d, funcmond_mono_ns(), 1);
    /* Wait for the cancellations, so no completion refers to freed memory, until every
     * process is freed (its guarded mapping with it): each round hands over one completion,
     * and there are two per client. The deadline only bounds a kernel that never answers. */
    uint64_t deadline = funcmond_mono_ns() + CLOSE_WAIT_NS;
    while (d->procs != NULL && funcmond_mono_ns() < deadline) {
        funcmond_loop_complete_within(d, 10000000);
        funcmond_discovery_expire(d, funcmond_mono_ns(), 1);
    }
    funcmond_view_close(d);
    funcmond_discovery_forget(d);
    funcmond_discovery_close(d);
    if (d->signal_fd >= 0)
        close(d->signal_fd);
    funcmond_control_close(d);
    funcmond_loop_close(d);
}
