/*
 * loop.h - funcmond's io_uring loop: operations that carry their own completion callback.
 *
 * Everything the drain thread waits for is an io_uring operation. Each one is a struct
 * funcmond_op owned by the module that submits it (the tick's timer, discovery's inotify
 * read, a client's wake-up wait, the state file's steps...); user_data points at it and
 * its on_complete runs with the result. Adding an operation adds an op and a callback in
 * its owner; the loop knows none of them.
 */
#ifndef FUNCMOND_LOOP_H
#define FUNCMOND_LOOP_H

#include <liburing.h>
#include <stdint.h>

struct funcmond;

struct funcmond_op {
    /* Runs on the drain thread with the completion's res and flags. Once the loop is
     * stopping, only for operations marked while_stopping (see funcmond_loop_stopping). */
    void (*on_complete)(struct funcmond *d, struct funcmond_op *op, int res, uint32_t flags);
    /* Standing operations (armed through funcmond_loop_arm): fills the entry. */
    void (*prep)(struct funcmond *d, struct funcmond_op *op, struct io_uring_sqe *sqe);
    /* The owner's count of its operations in flight (a process is freed only at zero), or
     * NULL. Counted up at submission, down when the completion is in. */
    int *inflight;
    /* Stopping: the last drain and the state file are done, and nothing may be consumed
     * after them (the next run would count it as lost). Only operations whose callback
     * does no more than bookkeeping then, or that are the state file's own, set this. */
    int while_stopping;
    int unarmed; /* on the loop's list of standing operations to arm again */
    struct funcmond_op *next_unarmed;
};

/* Sets up the ring. Returns 0 or the -errno of io_uring_queue_init (logged). */
int funcmond_loop_init(struct funcmond *d);
/* Tears the ring down; nothing may be in flight that refers to freed memory. */
void funcmond_loop_close(struct funcmond *d);

/* A submission entry, submitting what is queued to make room if needed; NULL when the
 * kernel takes none (its completion queue overflowed): the caller must cope. */
struct io_uring_sqe *funcmond_sqe(struct funcmond *d);
/* Makes room for n entries in a row; returns 0, or -EBUSY when there is none. */
int funcmond_sqe_room(struct funcmond *d, unsigned n);

/* A submission entry for op, its user_data set and *op->inflight counted; NULL (nothing
 * counted) when there is none. */
struct io_uring_sqe *funcmond_loop_sqe(struct funcmond *d, struct funcmond_op *op);
/* Arms a standing operation through op->prep. When no entry is free it is armed again
 * before the loop's next wait: a timer, signal or request read that is lost would stop
 * the loop ticking, stopping or serving. */
void funcmond_loop_arm(struct funcmond *d, struct funcmond_op *op);
/* Cancels every operation in flight with op's user_data; its answer needs no handling.
 * Returns 0, or -EBUSY when no entry is free. */
int funcmond_loop_cancel(struct funcmond *d, struct funcmond_op *op);

/* Futex wait and wake on a u32 word in shared memory (IORING_OP_FUTEX_WAIT/WAKE, kernel
 * 6.7). liburing 2.3 has no helpers for them; they are prepared as the kernel documents
 * them (the futex2 flags in fd, the address, the value in off, the mask in addr3). */
void funcmond_loop_prep_futex_wait(struct io_uring_sqe *sqe, uint32_t *word, uint32_t value);
void funcmond_loop_prep_futex_wake(struct io_uring_sqe *sqe, uint32_t *word, uint32_t count);

/* Whether the loop is stopping (d->stop, set from any thread). */
int funcmond_loop_stopping(const struct funcmond *d);
/* Runs completions until funcmond_loop_stopping. Returns 0, or the -errno of a failed
 * wait (logged). */
int funcmond_loop_run(struct funcmond *d);
/* Submits, waits for one completion and runs it. Returns 0 (also when interrupted, with
 * nothing run), or the -errno of a failed wait. */
int funcmond_loop_complete_one(struct funcmond *d);
/* Submits and runs at most one completion, waiting up to timeout_ns for it. */
void funcmond_loop_complete_within(struct funcmond *d, uint64_t timeout_ns);

#endif
