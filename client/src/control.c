/*
 * control.c - the client's control thread: answers the sidecar's requests.
 *
 * Some figures can only be taken inside the service process (mallinfo2, the tracker's
 * totals) and some actions only done there (malloc_trim). Rather than signals, which would
 * interrupt application threads and their system calls, the client runs one small thread
 * that sleeps on a futex word in the segment header. The sidecar writes an operation,
 * increments the word and wakes it; the thread serves the request, stores the request
 * number in ctl_response and wakes that word. While idle the thread is blocked in the
 * kernel: no timer, no polling, no cost. Its one timed wait, a second after start,
 * refines the clock calibration.
 *
 * The request comes from another process: the operation code is checked, and nothing else
 * is read from the request.
 *
 * fork() copies only the forking thread, and every lock as it stands. So that the control
 * thread never holds one in a child (the allocator's, the C library's, a sanitizer's), it
 * is only ever in one of two states a fork may meet: asleep on its futex, or inside
 * `busy`, which the fork handlers take first. funcmon__control_start returns once the
 * new thread has finished starting (thread start-up allocates), not before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static long
futex(uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

static int
serve(struct funcmon_shm_header *hdr, uint32_t op)
{
    struct funcmon_alloc_stats before, after;
    struct funcmon_alloc_totals totals;

    switch (op) {
    case FUNCMON_CTL_SAMPLE:
        funcmon__clock_refine();
        funcmon__clock_publish(hdr);
        funcmon__alloc_stats_sample(&after);
        funcmon__alloc_totals(&totals);
        hdr->alloc_stats = after;
        hdr->alloc_totals = totals;
        return 0;
    case FUNCMON_CTL_TRIM:
        funcmon__alloc_stats_sample(&before);
        malloc_trim(0);
        funcmon__alloc_stats_sample(&after);
        hdr->ctl_before = before;
        hdr->ctl_after = after;
        hdr->alloc_stats = after;
        return 0;
    default:
        return -EINVAL;
    }
}

/* Held by the control thread while it is awake, by the fork handlers across a fork. */
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;

/* Futex word: 1 once the control thread runs its own code (one thread at a time: it is
 * started and stopped under proc.lock). Not on the starter's stack: the wait for it is
 * bounded, and the thread may set it after the starter has gone on. */
static uint32_t control_started;

static void *
control_main(void *arg)
{
    struct funcmon_shm_header *hdr = arg;
    uint32_t served = 0;                                   /* a fresh segment starts at 0: requests sent before we ran are served */
    uint64_t refine_at = funcmon__mono_ns() + 1000000000u; /* 0 once done */
    sigset_t all;

    /* Signals are the application's business: let its own threads take them. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    prctl(PR_SET_NAME, "funcmon-ctl", 0, 0, 0);
    pthread_mutex_lock(&busy);
    /* Pairs with funcmon__control_start's acquire load of control_started. */
    __atomic_store_n(&control_started, 1, __ATOMIC_RELEASE);
    futex(&control_started, FUTEX_WAKE_PRIVATE, 1, NULL);

    /* control_stop pairs with funcmon__control_stop's release store. */
    while (!atomic_load_explicit(&funcmon__proc.control_stop, memory_order_acquire)) {
        /* Pairs with the release half of the requester's increment of ctl_request, made
         * after it stored ctl_op (funcmon_control_post in proto/src/control.c). */
        uint32_t req = __atomic_load_n(&hdr->ctl_request, __ATOMIC_ACQUIRE);
        if (req == served) {
            /* Shared futex: the sidecar wakes it from its own process. Until the clock is
             * refined, a second after start, the wait is bounded; then it is not. */
            struct timespec left, *timeout = NULL;
            if (refine_at != 0) {
                uint64_t now = funcmon__mono_ns();
                if (now >= refine_at) {
                    funcmon__clock_refine();
                    funcmon__clock_publish(hdr);
                    refine_at = 0;
                    continue;
                }
                left.tv_sec = (time_t)((refine_at - now) / 1000000000u);
                left.tv_nsec = (long)((refine_at - now) % 1000000000u);
                timeout = &left;
            }
            pthread_mutex_unlock(&busy);
            futex(&hdr->ctl_request, FUTEX_WAIT, served, timeout);
            pthread_mutex_lock(&busy);
            continue;
        }
        served = req;
        if (atomic_load_explicit(&funcmon__proc.control_stop, memory_order_acquire))
            break;
        /* Pairs with funcmon_control_post's release store of ctl_op. Any value may come:
         * serve() answers an unknown one with EINVAL. */
        hdr->ctl_status = serve(hdr, __atomic_load_n(&hdr->ctl_op, __ATOMIC_ACQUIRE));
        hdr->ctl_served++;
        /* Pairs with the requester's acquire load of ctl_response before it reads results
         * (funcmon_control_poll in proto/src/control.c). */
        __atomic_store_n(&hdr->ctl_response, req, __ATOMIC_RELEASE);
        futex(&hdr->ctl_response, FUTEX_WAKE, INT32_MAX, NULL);
    }
    pthread_mutex_unlock(&busy);
    return NULL;
}

int
funcmon__control_start(void)
{
    struct funcmon__process *p = &funcmon__proc;
    pthread_attr_t attr;
    int ret;

    if (p->control_running || p->seg.hdr == NULL)
        return 0;
    atomic_store_explicit(&p->control_stop, 0, memory_order_relaxed);
    __atomic_store_n(&control_started, 0, __ATOMIC_RELAXED);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    ret = pthread_create(&p->control_thread, &attr, control_main, p->seg.hdr);
    pthread_attr_destroy(&attr);
    if (ret != 0)
        return -ret;
    /* Pairs with the thread's release store once its start-up is over. Bounded: should a
     * start-up ever wait on us (a loader lock held by a dlopen that runs funcmon_init from a
     * constructor), init goes on after a second, only without the fork guarantee. */
    const struct timespec slice = {0, 10000000};
    for (int i = 0; i < 100 && __atomic_load_n(&control_started, __ATOMIC_ACQUIRE) == 0; i++)
        futex(&control_started, FUTEX_WAIT_PRIVATE, 0, &slice);
    p->control_running = 1;
    return 0;
}

void
funcmon__control_atfork_prepare(void)
{
    pthread_mutex_lock(&busy);
}

void
funcmon__control_atfork_release(void)
{
    pthread_mutex_unlock(&busy);
}

void
funcmon__control_stop(void)
{
    struct funcmon__process *p = &funcmon__proc;
    if (!p->control_running)
        return;
    /* Pairs with the control thread's acquire load of control_stop. */
    atomic_store_explicit(&p->control_stop, 1, memory_order_release);
    /* Change the word, so a thread between its check and its wait does not sleep on; and
     * keep waking it: the word is in shared memory, and a sidecar could set it back. */
    __atomic_fetch_add(&p->seg.hdr->ctl_request, 1, __ATOMIC_RELEASE);
    for (;;) {
        futex(&p->seg.hdr->ctl_request, FUTEX_WAKE, INT32_MAX, NULL);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += 100000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        if (pthread_timedjoin_np(p->control_thread, NULL, &deadline) == 0)
            break;
    }
    p->control_running = 0;
}
