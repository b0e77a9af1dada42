/*
 * funcmon/control.h - the requesting side of the control channel, in one place.
 *
 * A client process runs a control thread (client/src/control.c) that sleeps on the futex
 * word ctl_request of its segment header and answers requests a reader sends it: sample
 * the allocator, malloc_trim. A blocking reader (the tests, tools) and funcmond's event
 * loop, which must never block on a client, speak the same handshake; so it lives here, in
 * non-blocking steps, and the blocking call is built on them:
 *
 *   1. funcmon_control_post stores the operation, then increments ctl_request; the new
 *      value is the request's number;
 *   2. the requester wakes the control thread: funcmon_control_wake (a futex syscall), or
 *      a FUTEX_WAKE of funcmon_control_wake_word through its own event loop;
 *   3. the control thread serves the request, stores its status, then stores the request
 *      number in ctl_response (release) and wakes that word;
 *   4. funcmon_control_poll tells whether the request is answered, and with what status.
 *      It is the requester's job to give up after a deadline: a client that never answers
 *      must cost it nothing but the wait it chose.
 *
 * The header is shared memory a client (or anything with its permissions) writes at will.
 * A response counts as an answer only when it lies between the request and the newest
 * request posted (serial-number order, so it survives wrapping): an old number, or one
 * from the future, is no answer. A status that is neither 0 nor -errno reads as -EPROTO.
 * Nothing here loops on a value from the segment.
 */
#ifndef FUNCMON_CONTROL_H
#define FUNCMON_CONTROL_H

#include <stdint.h>

#include "funcmon/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Posts control request `op` (FUNCMON_CTL_*) in the segment of h and returns its number,
 * which identifies the answer. Does not wake the client: the caller does, through
 * funcmon_control_wake or funcmon_control_wake_word. One request at a time per requester;
 * a request posted while another is pending supersedes it (the control thread serves the
 * newest operation once, and that answer counts for both).
 */
uint32_t funcmon_control_post(struct funcmon_shm_header *h, uint32_t op);

/* Wakes the client's control thread after funcmon_control_post, with a futex system call
 * (a shared futex: the thread sleeps in another process). Never blocks, never fails in a
 * way the caller could act on: an unanswered request is seen by its deadline. */
void funcmon_control_wake(struct funcmon_shm_header *h);

/* The futex word the control thread sleeps on, for a requester that wakes it through its
 * own event loop (io_uring FUTEX_WAKE of a u32, shared, any count >= 1: one thread waits). */
uint32_t *funcmon_control_wake_word(struct funcmon_shm_header *h);

/*
 * Whether `request` (a number from funcmon_control_post) is answered: 1 with *status set
 * to the client's status (0, or -errno; -EPROTO for any other value), 0 not yet. An answer
 * to a later request counts for an earlier one (the control thread serves only the newest).
 * After 1, the request's figures (alloc_stats, ctl_before, ctl_after) may be read: they
 * were written before the answer.
 */
int funcmon_control_poll(const struct funcmon_shm_header *h, uint32_t request, int32_t *status);

/*
 * The blocking form: posts `op`, wakes the client and sleeps until it answers or
 * timeout_ms (0 or less: no wait beyond one look) has passed. Returns the client's status
 * (0 or -errno, -EPROTO for a status that is neither), or -ETIMEDOUT.
 */
int funcmon_control_call(struct funcmon_shm_header *h, uint32_t op, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
