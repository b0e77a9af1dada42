/*
 * loop.c - funcmond's io_uring loop: submission entries, waits, and completions handed to
 * the operation they belong to.
 *
 * One thread sleeps in one place (io_uring_submit_and_wait) and costs nothing while clients
 * are idle. The loop does not know what its operations are: each completion's user_data is
 * a struct funcmond_op whose callback its owner set (see loop.h). What the loop keeps is
 * the bookkeeping every owner relies on: the per-owner count of operations in flight (a
 * process is freed only once the kernel is done with it), the rule that nothing is
 * consumed once stopping, and standing operations armed again when the ring was full.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "sidecar.h"

#define OP_FUTEX_WAIT 51 /* IORING_OP_FUTEX_WAIT, kernel 6.7 */
#define OP_FUTEX_WAKE 52 /* IORING_OP_FUTEX_WAKE */
#define FUTEX2_U32 0x02  /* FUTEX2_SIZE_U32; never FUTEX2_PRIVATE: the word is in shared memory */
#define RING_ENTRIES 256

int
funcmond_loop_init(struct funcmond *d)
{
    int ret = io_uring_queue_init(RING_ENTRIES, &d->ring, 0);
    if (ret < 0)
        LOG_ERROR("io_uring_queue_init: %s", strerror(-ret));
    return ret;
}

void
funcmond_loop_close(struct funcmond *d)
{
    io_uring_queue_exit(&d->ring);
}

struct io_uring_sqe *
funcmond_sqe(struct funcmond *d)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
    if (sqe == NULL) {
        io_uring_submit(&d->ring);
        sqe = io_uring_get_sqe(&d->ring);
    }
    return sqe;
}

int
funcmond_sqe_room(struct funcmond *d, unsigned n)
{
    if (io_uring_sq_space_left(&d->ring) < n)
        io_uring_submit(&d->ring);
    return io_uring_sq_space_left(&d->ring) >= n ? 0 : -EBUSY;
}

struct io_uring_sqe *
funcmond_loop_sqe(struct funcmond *d, struct funcmond_op *op)
{
    struct io_uring_sqe *sqe = funcmond_sqe(d);
    if (sqe == NULL)
        return NULL;
    io_uring_sqe_set_data(sqe, op);
    if (op->inflight != NULL)
        (*op->inflight)++;
    return sqe;
}

void
funcmond_loop_arm(struct funcmond *d, struct funcmond_op *op)
{
    struct io_uring_sqe *sqe = funcmond_loop_sqe(d, op);
    if (sqe == NULL) {
        if (!op->unarmed) {
            op->unarmed = 1;
            op->next_unarmed = d->unarmed;
            d->unarmed = op;
        }
        return;
    }
    op->prep(d, op, sqe);
    io_uring_sqe_set_data(sqe, op); /* prep helpers may clear it */
}

int
funcmond_loop_cancel(struct funcmond *d, struct funcmond_op *op)
{
    struct io_uring_sqe *sqe = funcmond_sqe(d);
    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_cancel(sqe, op, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, NULL); /* the answer to a cancel needs no handling */
    return 0;
}

static void
prep_futex(struct io_uring_sqe *sqe, int opcode, uint32_t *word, uint64_t value)
{
    io_uring_prep_rw(opcode, sqe, FUTEX2_U32, word, 0, value);
    sqe->addr3 = 0xffffffffu;
}

void
funcmond_loop_prep_futex_wait(struct io_uring_sqe *sqe, uint32_t *word, uint32_t value)
{
    prep_futex(sqe, OP_FUTEX_WAIT, word, value);
}

void
funcmond_loop_prep_futex_wake(struct io_uring_sqe *sqe, uint32_t *word, uint32_t count)
{
    prep_futex(sqe, OP_FUTEX_WAKE, word, count);
}

int
funcmond_loop_stopping(const struct funcmond *d)
{
    /* Pairs with the release store of whoever stops the loop (the signal's callback, or
     * another thread in tests). */
    return __atomic_load_n(&d->stop, __ATOMIC_ACQUIRE);
}

static void
complete(struct funcmond *d, const struct io_uring_cqe *cqe)
{
    struct funcmond_op *op = io_uring_cqe_get_data(cqe);
    if (op == NULL)
        return; /* the answer to a cancellation */
    if (op->inflight != NULL)
        (*op->inflight)--;
    if (funcmond_loop_stopping(d) && !op->while_stopping)
        return;
    op->on_complete(d, op, cqe->res, cqe->flags);
}

/* Arms again what found no submission entry last time. */
static void
rearm(struct funcmond *d)
{
    struct funcmond_op *op = d->unarmed;
    d->unarmed = NULL;
    while (op != NULL) {
        struct funcmond_op *next = op->next_unarmed;
        op->unarmed = 0;
        funcmond_loop_arm(d, op);
        op = next;
    }
}

int
funcmond_loop_run(struct funcmond *d)
{
    struct io_uring_cqe *cqe;

    while (!funcmond_loop_stopping(d)) {
        rearm(d);
        int ret = io_uring_submit_and_wait(&d->ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            LOG_ERROR("io_uring_submit_and_wait: %s", strerror(-ret));
            return ret;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&d->ring, head, cqe)
        {
            complete(d, cqe);
            seen++;
        }
        io_uring_cq_advance(&d->ring, seen);
    }
    return 0;
}

int
funcmond_loop_complete_one(struct funcmond *d)
{
    struct io_uring_cqe *cqe;
    int ret = io_uring_submit_and_wait(&d->ring, 1);
    if (ret < 0 && ret != -EINTR)
        return ret;
    if (io_uring_peek_cqe(&d->ring, &cqe) == 0) {
        complete(d, cqe);
        io_uring_cqe_seen(&d->ring, cqe);
    }
    return 0;
}

void
funcmond_loop_complete_within(struct funcmond *d, uint64_t timeout_ns)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {(long long)(timeout_ns / 1000000000u), (long long)(timeout_ns % 1000000000u)};
    io_uring_submit(&d->ring);
    if (io_uring_wait_cqe_timeout(&d->ring, &cqe, &ts) == 0) {
        complete(d, cqe);
        io_uring_cqe_seen(&d->ring, cqe);
    }
}
