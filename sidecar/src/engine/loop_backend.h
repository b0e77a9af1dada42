/*
 * loop_backend.h - what loop.c asks of the kernel interface it runs on: io_uring
 * (loop_uring.c) or, where io_uring is refused, epoll (loop_epoll.c). Private to the loop.
 *
 * loop.c keeps what every backend shares (an operation's request, the per-owner count of
 * operations in flight, standing operations asked again, the rule that nothing is consumed
 * once stopping); a backend only submits, cancels, waits and hands each completion to
 * funcmond_loop_complete. One indirect call per operation, none per record.
 */
#ifndef FUNCMOND_LOOP_BACKEND_H
#define FUNCMOND_LOOP_BACKEND_H

#include "loop.h"

struct funcmond_loop_backend {
    enum funcmond_event_loop kind;
    /* Submits op's request (op->kind and its fields). Returns 0, or -EBUSY without room. */
    int (*submit)(struct funcmond *d, struct funcmond_op *op);
    /* Submits n requests in order, each started only once the one before succeeded (a
     * failed one completes those after it with -ECANCELED). 0, or -EBUSY with none. */
    int (*submit_linked)(struct funcmond *d, struct funcmond_op *const *ops, unsigned n);
    /* Moves op's pending timeout to op->ts from now (one completion still comes). Returns 0,
     * or -EBUSY without room (the old one then stands). */
    int (*retime)(struct funcmond *d, struct funcmond_op *op);
    /* Cancels op (see funcmond_loop_cancel). */
    int (*cancel)(struct funcmond *d, struct funcmond_op *op);
    /* Waits until something completes and runs what is in. 0, or the -errno of the wait. */
    int (*run_once)(struct funcmond *d);
    int (*complete_one)(struct funcmond *d);
    void (*complete_within)(struct funcmond *d, uint64_t timeout_ns);
    void (*close)(struct funcmond *d);
};

struct funcmond_loop {
    const struct funcmond_loop_backend *be;
    struct funcmond_op *unarmed; /* standing operations that found no room */
};

/* Hands op its result: counts it out of *op->inflight and, unless stopping (and op is not
 * marked while_stopping), runs its callback. For the backends. */
void funcmond_loop_complete(struct funcmond *d, struct funcmond_op *op, int res);

/* Sets d->loop up on io_uring. Returns 0, or the -errno of io_uring_setup or of a first
 * io_uring_enter (a filter may refuse one and not the other). */
int funcmond_loop_uring_open(struct funcmond *d);
/* Sets d->loop up on epoll; may clear d->futex_wait_ok (logged). Returns 0 or -errno. */
int funcmond_loop_epoll_open(struct funcmond *d);

#endif
