/*
 * loop.h - funcmond's event loop: operations that carry their own completion callback.
 *
 * Everything the drain thread waits for is an operation of this loop. Each one is a struct
 * funcmond_op owned by the module that asks for it (the tick's timer, discovery's inotify
 * read, a client's wake-up wait, the state file's steps...): the owner asks the loop for
 * what it wants (a read, a timeout, a futex wait...) and its on_complete runs with the
 * result. Adding an operation adds an op and a callback in its owner; the loop knows none
 * of them.
 *
 * The loop runs on io_uring. Where io_uring is refused (a container runtime's default
 * seccomp profile, the sysctl kernel.io_uring_disabled) it runs the same operations on
 * epoll (loop_epoll.c), with the same results: owners never see which one runs, except
 * through funcmond_loop_event_loop. The choice is per operation, never per record.
 */
#ifndef FUNCMOND_LOOP_H
#define FUNCMOND_LOOP_H

#include <linux/time_types.h>
#include <stddef.h>
#include <stdint.h>

#include "view.h"

struct funcmond;
struct funcmond_loop;

/* What an operation asks for; kept in it, so that the loop can ask again. */
enum funcmond_op_kind {
    FUNCMOND_OP_NONE,
    FUNCMOND_OP_READ,       /* fd, buf, len: one read at the file position */
    FUNCMOND_OP_TIMEOUT,    /* ts: completes with -ETIME once it passed */
    FUNCMOND_OP_POLL_IN,    /* fd: completes with the poll mask once fd is readable */
    FUNCMOND_OP_FUTEX_WAIT, /* word, value: completes once *word is no longer value */
    FUNCMOND_OP_FUTEX_WAKE, /* word, value (count): completes with how many were woken */
    FUNCMOND_OP_WRITE,      /* fd, buf, len: at offset 0 */
    FUNCMOND_OP_FSYNC,      /* fd */
    FUNCMOND_OP_RENAME      /* path -> path2 */
};

struct funcmond_op {
    /* Runs on the drain thread with the result (>= 0, or -errno; -ECANCELED once
     * cancelled). Once the loop is stopping, only for operations marked while_stopping
     * (see funcmond_loop_stopping). */
    void (*on_complete)(struct funcmond *d, struct funcmond_op *op, int res);
    /* The owner's count of its operations in flight (a process is freed only at zero), or
     * NULL. Counted up when asked, down when the completion is in. */
    int *inflight;
    /* Stopping: the last drain and the state file are done, and nothing may be consumed
     * after them (the next run would count it as lost). Only operations whose callback
     * does no more than bookkeeping then, or that are the state file's own, set this. */
    int while_stopping;
    /* Never dropped for want of room: asked again before the loop's next wait. A timer,
     * signal or request read that is lost would stop the loop ticking, stopping or serving. */
    int standing;

    /* The loop's own, set by the functions below. */
    enum funcmond_op_kind kind;
    int fd;
    void *buf;
    uint32_t len;
    uint32_t *word;
    uint32_t value;
    const char *path, *path2;
    struct __kernel_timespec ts;
    int unarmed;         /* on the loop's list of standing operations to ask again */
    int timeout_pending; /* a timeout asked and not completed yet (see funcmond_loop_timeout) */
    struct funcmond_op *next_unarmed;
    /* epoll only (loop_epoll.c) */
    int ep_state;      /* what the op waits on now */
    int ep_fd;         /* the fd it is registered with, when ep_added */
    int ep_added;      /* registered with epoll (disabled between asks) */
    uint64_t deadline; /* a timeout's, monotonic ns */
    struct funcmond_op *next_timeout;
};

/* Sets up the loop on io_uring; where io_uring is refused (io_uring_setup or _enter fail
 * with ENOSYS, EPERM or EACCES) says so once (a warning naming why) and sets it up on
 * epoll. May clear d->futex_wait_ok (futex waits cannot be watched: clients are drained on
 * the timer). Returns 0 or -errno (logged). */
int funcmond_loop_init(struct funcmond *d);
/* Tears the loop down (its threads joined); nothing may be in flight that refers to
 * freed memory. */
void funcmond_loop_close(struct funcmond *d);
/* Which loop runs (for the published view). */
enum funcmond_event_loop funcmond_loop_event_loop(const struct funcmond *d);

/*
 * Asking for an operation: each returns 0 (op completes later, through on_complete, never
 * from inside the call), or -EBUSY when the loop has no room now (nothing asked, nothing
 * counted; the caller must cope). A standing op is never refused: without room it is asked
 * again before the loop's next wait, and 0 is returned. An op asks for one thing at a time,
 * except futex wakes.
 */
int funcmond_loop_read(struct funcmond *d, struct funcmond_op *op, int fd, void *buf, uint32_t len);
/* Asked again while its timeout is pending, it replaces that one on either loop: the op
 * still completes once and is counted in flight once, at the new deadline (or at the old
 * one, when that passed before the kernel took the new one). */
int funcmond_loop_timeout(struct funcmond *d, struct funcmond_op *op, uint64_t ns);
int funcmond_loop_poll_in(struct funcmond *d, struct funcmond_op *op, int fd);
/* Futex wait and wake on a u32 word in shared memory (never process-private). A wait
 * whose word differs from value already completes at once (-EAGAIN); a waiter woken by
 * a wake (completion 0) rechecks the word itself. */
int funcmond_loop_futex_wait(struct funcmond *d, struct funcmond_op *op, uint32_t *word, uint32_t value);
int funcmond_loop_futex_wake(struct funcmond *d, struct funcmond_op *op, uint32_t *word, uint32_t count);
/* Replaces the file `path` atomically: writes buf (len bytes) into fd at offset 0, fsyncs
 * fd, renames tmp over path, each step completing through its own op (write, fsync,
 * rename), in that order; a step that fails makes those after it complete with
 * -ECANCELED. All three or none: 0, or -EBUSY with nothing started. */
int funcmond_loop_replace_file(struct funcmond *d, struct funcmond_op *write, struct funcmond_op *fsync, struct funcmond_op *rename,
                               int fd, const void *buf, uint32_t len, const char *tmp, const char *path);
/* Asks again what op asked last (a read or a poll that completed). */
int funcmond_loop_repeat(struct funcmond *d, struct funcmond_op *op);
/* Cancels op if it is in flight: it then completes with -ECANCELED (or with its result,
 * when that came first). Returns 0, or -EBUSY when there is no room now. */
int funcmond_loop_cancel(struct funcmond *d, struct funcmond_op *op);

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
