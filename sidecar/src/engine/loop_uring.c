/*
 * loop_uring.c - the loop on io_uring: each operation one submission entry, its user_data
 * the struct funcmond_op it belongs to.
 *
 * The drain thread sleeps in io_uring_submit_and_wait: one system call submits what was
 * asked and waits, for timers, reads, pidfd polls and futex waits alike. Futex wait and
 * wake (IORING_OP_FUTEX_WAIT/WAKE, kernel 6.7) have no helpers in liburing 2.3; they are
 * prepared as the kernel documents them (the futex2 flags in fd, the address, the value in
 * off, the mask in addr3).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop_backend.h"
#include "sidecar.h"

#define OP_FUTEX_WAIT 51 /* IORING_OP_FUTEX_WAIT, kernel 6.7 */
#define OP_FUTEX_WAKE 52 /* IORING_OP_FUTEX_WAKE */
#define FUTEX2_U32 0x02  /* FUTEX2_SIZE_U32; never FUTEX2_PRIVATE: the word is in shared memory */
#define RING_ENTRIES 256

struct uring_loop {
    struct funcmond_loop base;
    struct io_uring ring;
};

static struct io_uring *
ring_of(struct funcmond *d)
{
    return &((struct uring_loop *)d->loop)->ring;
}

/* A submission entry, submitting what is queued to make room if needed; NULL when the
 * kernel takes none (its completion queue overflowed). */
static struct io_uring_sqe *
get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

static void
prep_futex(struct io_uring_sqe *sqe, int opcode, uint32_t *word, uint64_t value)
{
    io_uring_prep_rw(opcode, sqe, FUTEX2_U32, word, 0, value);
    sqe->addr3 = 0xffffffffu;
}

static void
prep(struct io_uring_sqe *sqe, struct funcmond_op *op)
{
    switch (op->kind) {
    case FUNCMOND_OP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, op->len, (uint64_t)-1);
        break;
    case FUNCMOND_OP_TIMEOUT:
        io_uring_prep_timeout(sqe, &op->ts, 0, 0);
        break;
    case FUNCMOND_OP_POLL_IN:
        io_uring_prep_poll_add(sqe, op->fd, POLLIN);
        break;
    case FUNCMOND_OP_FUTEX_WAIT:
        prep_futex(sqe, OP_FUTEX_WAIT, op->word, op->value);
        break;
    case FUNCMOND_OP_FUTEX_WAKE:
        prep_futex(sqe, OP_FUTEX_WAKE, op->word, op->value);
        break;
    case FUNCMOND_OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, op->len, 0);
        break;
    case FUNCMOND_OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, 0);
        break;
    case FUNCMOND_OP_RENAME:
        io_uring_prep_renameat(sqe, AT_FDCWD, op->path, AT_FDCWD, op->path2, 0);
        break;
    case FUNCMOND_OP_NONE:
        io_uring_prep_nop(sqe);
        break;
    }
    io_uring_sqe_set_data(sqe, op); /* liburing 2.3's prep helpers leave it as it was */
}

static int
uring_submit(struct funcmond *d, struct funcmond_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(ring_of(d));
    if (sqe == NULL)
        return -EBUSY;
    prep(sqe, op);
    return 0;
}

static int
uring_submit_linked(struct funcmond *d, struct funcmond_op *const *ops, unsigned n)
{
    struct io_uring *ring = ring_of(d);
    if (io_uring_sq_space_left(ring) < n)
        io_uring_submit(ring);
    if (io_uring_sq_space_left(ring) < n) /* they go in together, or not at all */
        return -EBUSY;
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        prep(sqe, ops[i]);
        if (i + 1 < n)
            sqe->flags |= IOSQE_IO_LINK; /* a failed step cancels the ones after it */
    }
    return 0;
}

static int
uring_retime(struct funcmond *d, struct funcmond_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(ring_of(d));
    if (sqe == NULL)
        return -EBUSY;
    /* In place: the timer keeps its one completion. -ENOENT when it passed already (its
     * completion is in, and stands for this ask). */
    io_uring_prep_timeout_update(sqe, &op->ts, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data(sqe, NULL); /* the answer to an update needs no handling */
    return 0;
}

static int
uring_cancel(struct funcmond *d, struct funcmond_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(ring_of(d));
    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_cancel(sqe, op, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, NULL); /* the answer to a cancel needs no handling */
    return 0;
}

static void
complete_cqe(struct funcmond *d, const struct io_uring_cqe *cqe)
{
    struct funcmond_op *op = io_uring_cqe_get_data(cqe);
    if (op != NULL) /* NULL: the answer to a cancellation */
        funcmond_loop_complete(d, op, cqe->res);
}

static int
uring_run_once(struct funcmond *d)
{
    struct io_uring *ring = ring_of(d);
    struct io_uring_cqe *cqe;
    int ret = io_uring_submit_and_wait(ring, 1);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
        LOG_ERROR("io_uring_submit_and_wait: %s", strerror(-ret));
        return ret;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(ring, head, cqe)
    {
        complete_cqe(d, cqe);
        seen++;
    }
    io_uring_cq_advance(ring, seen);
    return 0;
}

static int
uring_complete_one(struct funcmond *d)
{
    struct io_uring *ring = ring_of(d);
    struct io_uring_cqe *cqe;
    int ret = io_uring_submit_and_wait(ring, 1);
    if (ret < 0 && ret != -EINTR)
        return ret;
    if (io_uring_peek_cqe(ring, &cqe) == 0) {
        complete_cqe(d, cqe);
        io_uring_cqe_seen(ring, cqe);
    }
    return 0;
}

static void
uring_complete_within(struct funcmond *d, uint64_t timeout_ns)
{
    struct io_uring *ring = ring_of(d);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {(long long)(timeout_ns / 1000000000u), (long long)(timeout_ns % 1000000000u)};
    io_uring_submit(ring);
    if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0) {
        complete_cqe(d, cqe);
        io_uring_cqe_seen(ring, cqe);
    }
}

static void
uring_close(struct funcmond *d)
{
    struct uring_loop *l = (struct uring_loop *)d->loop;
    io_uring_queue_exit(&l->ring);
    free(l);
}

static const struct funcmond_loop_backend uring_backend = {
    .kind = FUNCMOND_EVENT_LOOP_IO_URING,
    .submit = uring_submit,
    .submit_linked = uring_submit_linked,
    .retime = uring_retime,
    .cancel = uring_cancel,
    .run_once = uring_run_once,
    .complete_one = uring_complete_one,
    .complete_within = uring_complete_within,
    .close = uring_close,
};

/* One no-op through the ring: a seccomp filter may let io_uring_setup through and refuse
 * io_uring_enter, which would otherwise only show at the first wait. */
static int
probe(struct io_uring *ring)
{
    struct io_uring_cqe *cqe;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, NULL);
    int ret = io_uring_submit_and_wait(ring, 1);
    if (ret < 0)
        return ret;
    if (io_uring_peek_cqe(ring, &cqe) == 0)
        io_uring_cqe_seen(ring, cqe);
    return 0;
}

int
funcmond_loop_uring_open(struct funcmond *d)
{
    struct uring_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    int ret = io_uring_queue_init(RING_ENTRIES, &l->ring, 0);
    if (ret < 0) {
        free(l);
        return ret;
    }
    if ((ret = probe(&l->ring)) < 0) {
        io_uring_queue_exit(&l->ring);
        free(l);
        return ret;
    }
    l->base.be = &uring_backend;
    d->loop = &l->base;
    return 0;
}
