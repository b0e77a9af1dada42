/*
 * control.c - the requesting side of the control channel (see funcmon/control.h).
 *
 * The handshake had two copies, a blocking one for tests and tools and an asynchronous
 * one in funcmond's event loop; they differed in details (how many waiters a wake wakes,
 * what counts as an answer), which is how such copies drift apart. Here it is once, as
 * post / wake / poll steps any loop can drive, with the blocking call built on them. The
 * serving side is the client's control thread (client/src/control.c); each atomic below
 * names the access of that thread it pairs with.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "funcmon/control.h"

/* Largest errno value the kernel hands out (MAX_ERRNO): statuses below -this are no errno. */
#define ERRNO_MAX 4095

uint32_t
funcmon_control_post(struct funcmon_shm_header *h, uint32_t op)
{
    /* Pairs with the control thread's acquire load of ctl_op (control_main) after it saw
     * the request; the release half of the increment below orders the op before it too. */
    __atomic_store_n(&h->ctl_op, op, __ATOMIC_RELEASE);
    /* Release half: pairs with the control thread's acquire load of ctl_request, so it
     * reads this op. Acquire half: orders the poll's loads after the post. */
    return __atomic_add_fetch(&h->ctl_request, 1, __ATOMIC_ACQ_REL);
}

uint32_t *
funcmon_control_wake_word(struct funcmon_shm_header *h)
{
    return &h->ctl_request;
}

void
funcmon_control_wake(struct funcmon_shm_header *h)
{
    /* Not FUTEX_PRIVATE: the control thread waits in its own process. */
    syscall(SYS_futex, funcmon_control_wake_word(h), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int
funcmon_control_poll(const struct funcmon_shm_header *h, uint32_t request, int32_t *status)
{
    /* Pairs with the control thread's release store of ctl_response, made after it wrote
     * the status and the figures of the request it served. */
    uint32_t response = __atomic_load_n(&h->ctl_response, __ATOMIC_ACQUIRE);
    /* Read after the response: honest counters only grow, so every number the thread can
     * have answered by then is at most this. */
    uint32_t newest = __atomic_load_n(&h->ctl_request, __ATOMIC_RELAXED);
    /* Ours or a later one, and no later than any request made: serial-number differences,
     * so that a stale number (or garbage 2^31 away) never passes for an answer. */
    if ((int32_t)(response - request) < 0 || (int32_t)(newest - response) < 0)
        return 0;
    int32_t s = __atomic_load_n(&h->ctl_status, __ATOMIC_RELAXED);
    *status = s == 0 || (s < 0 && s >= -ERRNO_MAX) ? s : -EPROTO;
    return 1;
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int
funcmon_control_call(struct funcmon_shm_header *h, uint32_t op, int timeout_ms)
{
    uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    uint32_t request = funcmon_control_post(h, op);
    int32_t status;

    funcmon_control_wake(h);
    for (;;) {
        /* The value the futex wait compares with, read before the poll: an answer stored
         * after it changes the word, and the wait returns at once. */
        uint32_t seen = __atomic_load_n(&h->ctl_response, __ATOMIC_RELAXED);
        if (funcmon_control_poll(h, request, &status))
            return status;
        uint64_t now = mono_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t left = deadline - now;
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
        /* Woken by the control thread's FUTEX_WAKE of ctl_response; a client that keeps
         * changing the word only makes this loop go round until the deadline. */
        syscall(SYS_futex, &h->ctl_response, FUTEX_WAIT, seen, &ts, NULL, 0);
    }
}
