/*
 * loop_epoll.c - the loop on epoll, where io_uring is refused: the same operations, with
 * the same results, for a few more system calls per wake-up.
 *
 * Container runtimes' default seccomp profiles (Docker 25 and later, containerd 2, podman)
 * refuse io_uring, and some hosts set kernel.io_uring_disabled; funcmond must keep every
 * guarantee there. Each kind of operation maps onto something epoll can wait for:
 *  - reads (eventfd, inotify, signalfd) and pidfd polls: the fd in the epoll set, one-shot,
 *    enabled again at each ask (reads are then done non-blocking);
 *  - timeouts: kept here, the nearest one becomes epoll_wait's timeout (rounded up to the
 *    millisecond), so an idle tick costs one system call as on io_uring;
 *  - futex waits: futex_waker.c's threads watch the words and make an eventfd readable;
 *    where futex_waitv is refused, clients are drained on the tick (said once);
 *  - the state file's write, fsync and rename: file_worker.c's thread runs them and makes an
 *    eventfd readable, so a slow fsync never holds up draining (run at once, synchronously,
 *    only where that thread cannot be started);
 *  - futex wakes: done at once (FUTEX_WAKE never blocks).
 * Results go through a completion queue, as on io_uring: a callback never runs from inside
 * the call that asked, and each completion is handed over once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "file_worker.h"
#include "futex_waker.h"
#include "log.h"
#include "loop_backend.h"
#include "sidecar.h"

#define EVENTS_PER_WAIT 64

/* What an op waits on now (op->ep_state). */
enum { EP_IDLE, EP_FD, EP_TIMEOUT, EP_FUTEX, EP_FILE_WORKER };

struct completion {
    struct funcmond_op *op;
    int res;
};

struct epoll_loop {
    struct funcmond_loop base;
    int epfd;
    struct completion *done; /* completions not yet handed over: [head, n) */
    size_t head, n, cap;
    struct funcmond_op *timeouts;                          /* pending, unsorted (there are one or two) */
    struct funcmond_waker *waker;                          /* NULL: futex waits are refused */
    struct funcmond_op op_waker;                           /* the waker's eventfd is readable */
    struct funcmond_file_worker *files;                    /* NULL: the state file's steps run synchronously */
    struct funcmond_op op_files;                           /* the file worker's eventfd is readable */
    struct funcmond_op *file_ops[FUNCMOND_FILE_STEPS_MAX]; /* the job in flight's steps */
    unsigned n_file_ops;
    int files_sync_logged;
};

static struct epoll_loop *
loop_of(struct funcmond *d)
{
    return (struct epoll_loop *)d->loop;
}

/* Room for k more completions. Returns 0 or -ENOMEM. */
static int
reserve(struct epoll_loop *l, size_t k)
{
    if (l->head > 0 && l->n + k > l->cap) {
        memmove(l->done, l->done + l->head, (l->n - l->head) * sizeof(*l->done));
        l->n -= l->head;
        l->head = 0;
    }
    if (l->n + k <= l->cap)
        return 0;
    size_t cap = l->cap != 0 ? 2 * l->cap : 64;
    while (cap < l->n + k)
        cap *= 2;
    struct completion *done = realloc(l->done, cap * sizeof(*done));
    if (done == NULL)
        return -ENOMEM;
    l->done = done;
    l->cap = cap;
    return 0;
}

/* Queues op's completion (room reserved, or -ENOMEM). */
static int
push(struct epoll_loop *l, struct funcmond_op *op, int res)
{
    if (reserve(l, 1) != 0)
        return -ENOMEM;
    op->ep_state = EP_IDLE;
    l->done[l->n++] = (struct completion){op, res};
    return 0;
}

/* Enables op's fd in the epoll set for one event. Returns 0 or -errno. */
static int
enable_fd(struct epoll_loop *l, struct funcmond_op *op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = op};
    if (op->ep_added && op->ep_fd == op->fd) {
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, op->fd, &ev) == 0)
            return 0;
        if (errno != ENOENT) /* ENOENT: the fd was closed and its number reused */
            return -errno;
    } else if (op->ep_added) {
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, op->ep_fd, NULL); /* it may be closed already */
    }
    op->ep_added = 0;
    if (op->kind == FUNCMOND_OP_READ) { /* read only once readable, and never blocked */
        int flags = fcntl(op->fd, F_GETFL);
        if (flags < 0 || fcntl(op->fd, F_SETFL, flags | O_NONBLOCK) != 0)
            return -errno;
    }
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, op->fd, &ev) != 0 &&
        (errno != EEXIST || epoll_ctl(l->epfd, EPOLL_CTL_MOD, op->fd, &ev) != 0))
        return -errno;
    op->ep_added = 1;
    op->ep_fd = op->fd;
    return 0;
}

/* A file step as the worker takes it; -EINVAL for an op that is none. */
static int
file_step_of(const struct funcmond_op *op, struct funcmond_file_step *s)
{
    switch (op->kind) {
    case FUNCMOND_OP_WRITE:
        *s = (struct funcmond_file_step){.kind = FUNCMOND_FILE_WRITE, .fd = op->fd, .buf = op->buf, .len = op->len};
        return 0;
    case FUNCMOND_OP_FSYNC:
        *s = (struct funcmond_file_step){.kind = FUNCMOND_FILE_FSYNC, .fd = op->fd};
        return 0;
    case FUNCMOND_OP_RENAME:
        *s = (struct funcmond_file_step){.kind = FUNCMOND_FILE_RENAME, .fd = -1, .path = op->path, .path2 = op->path2};
        return 0;
    default:
        return -EINVAL;
    }
}

/* Runs a step at once: its result. */
static int
run_step(const struct funcmond_op *op)
{
    struct funcmond_file_step s;
    int res[FUNCMOND_FILE_STEPS_MAX];
    if (op->kind == FUNCMOND_OP_FUTEX_WAKE) {
        long n = syscall(SYS_futex, op->word, FUTEX_WAKE, (int)op->value, NULL, NULL, 0); /* shared: not _PRIVATE */
        return n >= 0 ? (int)n : -errno;
    }
    if (file_step_of(op, &s) != 0)
        return 0;
    funcmond_file_steps_run(&s, 1, res);
    return res[0];
}

static void
unlink_timeout(struct epoll_loop *l, struct funcmond_op *op)
{
    for (struct funcmond_op **pp = &l->timeouts; *pp != NULL; pp = &(*pp)->next_timeout) {
        if (*pp == op) {
            *pp = op->next_timeout;
            return;
        }
    }
}

/* Puts op's timeout (op->ts from now) on the pending list. */
static void
add_timeout(struct epoll_loop *l, struct funcmond_op *op)
{
    op->deadline = funcmond_mono_ns() + (uint64_t)op->ts.tv_sec * 1000000000u + (uint64_t)op->ts.tv_nsec;
    op->next_timeout = l->timeouts;
    l->timeouts = op;
    op->ep_state = EP_TIMEOUT;
}

/* Moves a pending timeout; one that passed already has its completion queued, which stands
 * for this ask, as on io_uring. */
static int
epoll_retime(struct funcmond *d, struct funcmond_op *op)
{
    struct epoll_loop *l = loop_of(d);
    if (op->ep_state != EP_TIMEOUT)
        return 0;
    unlink_timeout(l, op);
    add_timeout(l, op);
    return 0;
}

static int
epoll_submit(struct funcmond *d, struct funcmond_op *op)
{
    struct epoll_loop *l = loop_of(d);
    int ret;

    switch (op->kind) {
    case FUNCMOND_OP_READ:
    case FUNCMOND_OP_POLL_IN:
        if (reserve(l, 1) != 0)
            return -EBUSY;
        if ((ret = enable_fd(l, op)) != 0)
            return push(l, op, ret); /* as io_uring answers a read it cannot do */
        op->ep_state = EP_FD;
        return 0;
    case FUNCMOND_OP_TIMEOUT:
        if (op->ep_state == EP_TIMEOUT) /* asked again before it passed: the new one counts */
            unlink_timeout(l, op);
        add_timeout(l, op);
        return 0;
    case FUNCMOND_OP_FUTEX_WAIT:
        if (reserve(l, 1) != 0)
            return -EBUSY;
        if (l->waker == NULL)
            return push(l, op, -ENOSYS);
        /* Pairs with the producer's release increment of the word: a change made before
         * this look completes the wait at once, as the kernel does. */
        if (__atomic_load_n(op->word, __ATOMIC_ACQUIRE) != op->value)
            return push(l, op, -EAGAIN);
        if (funcmond_waker_add(l->waker, op->word, op->value, op) != 0)
            return -EBUSY;
        op->ep_state = EP_FUTEX;
        return 0;
    default:
        if (reserve(l, 1) != 0)
            return -EBUSY;
        return push(l, op, run_step(op));
    }
}

/* The state file's steps: handed to the worker, whose eventfd completes them later; run at
 * once where it cannot take them. */
static int
epoll_submit_linked(struct funcmond *d, struct funcmond_op *const *ops, unsigned n)
{
    struct epoll_loop *l = loop_of(d);
    struct funcmond_file_step steps[FUNCMOND_FILE_STEPS_MAX];
    int res[FUNCMOND_FILE_STEPS_MAX];
    if (n > FUNCMOND_FILE_STEPS_MAX || reserve(l, n) != 0)
        return -EBUSY;
    for (unsigned i = 0; i < n; i++)
        if (file_step_of(ops[i], &steps[i]) != 0)
            return -EINVAL;
    if (l->files != NULL) {
        if (l->n_file_ops != 0)
            return -EBUSY; /* one state file at a time: the last one's steps are not in yet */
        int ret = funcmond_file_worker_start(l->files, steps, n);
        if (ret == 0) {
            for (unsigned i = 0; i < n; i++) {
                l->file_ops[i] = ops[i];
                ops[i]->ep_state = EP_FILE_WORKER;
            }
            l->n_file_ops = n;
            return 0;
        }
        if (ret == -EBUSY)
            return ret;
        if (!l->files_sync_logged)
            LOG_WARN("cannot hand the state file's steps to a thread (%s): written on the drain thread", strerror(-ret));
        l->files_sync_logged = 1;
    }
    funcmond_file_steps_run(steps, n, res);
    for (unsigned i = 0; i < n; i++)
        push(l, ops[i], res[i]);
    return 0;
}

static int
epoll_cancel(struct funcmond *d, struct funcmond_op *op)
{
    struct epoll_loop *l = loop_of(d);
    if (op->ep_state == EP_IDLE || op->ep_state == EP_FILE_WORKER)
        return 0; /* not in flight, its completion is queued already, or the worker has it */
    if (reserve(l, 1) != 0)
        return -EBUSY;
    switch (op->ep_state) {
    case EP_FD:
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, op->ep_fd, NULL);
        op->ep_added = 0;
        break;
    case EP_TIMEOUT:
        unlink_timeout(l, op);
        break;
    case EP_FUTEX:
        funcmond_waker_remove(l->waker, op);
        break;
    }
    return push(l, op, -ECANCELED);
}

/* An fd in the set is ready: op's read is done now, or its poll answered. */
static void
on_fd_event(struct epoll_loop *l, struct funcmond_op *op, uint32_t events)
{
    if (op->ep_state != EP_FD)
        return; /* cancelled meanwhile */
    if (reserve(l, 1) != 0) {
        enable_fd(l, op); /* looked at again at the next wait */
        return;
    }
    if (op->kind == FUNCMOND_OP_POLL_IN) {
        push(l, op, (int)events);
        return;
    }
    ssize_t n = read(op->fd, op->buf, op->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (enable_fd(l, op) != 0)
            push(l, op, -errno);
        return;
    }
    push(l, op, n >= 0 ? (int)n : -errno);
}

static void
fire_timeouts(struct epoll_loop *l, uint64_t now)
{
    for (struct funcmond_op **pp = &l->timeouts; *pp != NULL;) {
        struct funcmond_op *op = *pp;
        if (op->deadline > now || reserve(l, 1) != 0) {
            pp = &op->next_timeout;
            continue;
        }
        *pp = op->next_timeout;
        push(l, op, -ETIME);
    }
}

/* Waits (at most cap_ms, -1: no cap) for something to complete and queues what did.
 * Returns 0 or the -errno of epoll_wait. */
static int
wait_events(struct epoll_loop *l, int cap_ms)
{
    struct epoll_event evs[EVENTS_PER_WAIT];
    int timeout = cap_ms;
    if (l->waker != NULL)
        funcmond_waker_flush(l->waker);
    if (l->head < l->n) {
        timeout = 0;
    } else if (l->timeouts != NULL) {
        uint64_t now = funcmond_mono_ns(), first = UINT64_MAX;
        for (const struct funcmond_op *op = l->timeouts; op != NULL; op = op->next_timeout)
            first = op->deadline < first ? op->deadline : first;
        uint64_t ms = first > now ? (first - now + 999999) / 1000000 : 0;
        if (ms > INT32_MAX)
            ms = INT32_MAX;
        if (timeout < 0 || (int)ms < timeout)
            timeout = (int)ms;
    }
    int n = epoll_wait(l->epfd, evs, EVENTS_PER_WAIT, timeout);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        LOG_ERROR("epoll_wait: %s", strerror(errno));
        return -errno;
    }
    for (int i = 0; i < n; i++)
        on_fd_event(l, evs[i].data.ptr, evs[i].events);
    if (l->timeouts != NULL)
        fire_timeouts(l, funcmond_mono_ns());
    return 0;
}

/* Hands over at most max queued completions (those queued meanwhile wait their turn). */
static void
hand_over(struct funcmond *d, size_t max)
{
    struct epoll_loop *l = loop_of(d);
    for (size_t i = 0; i < max && l->head < l->n; i++) {
        struct completion c = l->done[l->head++];
        if (l->head == l->n)
            l->head = l->n = 0;
        funcmond_loop_complete(d, c.op, c.res);
    }
}

static int
epoll_run_once(struct funcmond *d)
{
    struct epoll_loop *l = loop_of(d);
    int ret = wait_events(l, -1);
    if (ret != 0)
        return ret;
    hand_over(d, l->n - l->head);
    return 0;
}

static int
epoll_complete_one(struct funcmond *d)
{
    struct epoll_loop *l = loop_of(d);
    if (l->head == l->n) {
        int ret = wait_events(l, -1);
        if (ret != 0)
            return ret;
    }
    hand_over(d, 1);
    return 0;
}

static void
epoll_complete_within(struct funcmond *d, uint64_t timeout_ns)
{
    struct epoll_loop *l = loop_of(d);
    if (l->head == l->n)
        wait_events(l, (int)((timeout_ns + 999999) / 1000000 > INT32_MAX ? INT32_MAX : (timeout_ns + 999999) / 1000000));
    hand_over(d, 1);
}

static void
epoll_close(struct funcmond *d)
{
    struct epoll_loop *l = loop_of(d);
    funcmond_waker_close(l->waker);
    funcmond_file_worker_close(l->files);
    close(l->epfd);
    free(l->done);
    free(l);
}

static const struct funcmond_loop_backend epoll_backend = {
    .kind = FUNCMOND_EVENT_LOOP_EPOLL,
    .submit = epoll_submit,
    .submit_linked = epoll_submit_linked,
    .retime = epoll_retime,
    .cancel = epoll_cancel,
    .run_once = epoll_run_once,
    .complete_one = epoll_complete_one,
    .complete_within = epoll_complete_within,
    .close = epoll_close,
};

/* The waker saw a word change or a wake: each such wait completes with 0, as on io_uring.
 * Only the loop's own op. */
static int
take_woken(void *arg, void *cookie)
{
    return push(arg, cookie, 0);
}

static void
on_waker(struct funcmond *d, struct funcmond_op *op, int res)
{
    struct epoll_loop *l = loop_of(d);
    (void)res;
    funcmond_waker_take_changed(l->waker, take_woken, l);
    funcmond_loop_repeat(d, op);
}

/* The file worker's job is done: its steps complete with its results. Only the loop's own
 * op. */
static void
on_files(struct funcmond *d, struct funcmond_op *op, int res)
{
    struct epoll_loop *l = loop_of(d);
    int results[FUNCMOND_FILE_STEPS_MAX];
    (void)res;
    /* Without room the eventfd is left readable: looked at again at the next wait. */
    if (reserve(l, l->n_file_ops) == 0) {
        unsigned n = funcmond_file_worker_take(l->files, results);
        for (unsigned i = 0; i < n && i < l->n_file_ops; i++)
            push(l, l->file_ops[i], results[i]);
        if (n != 0)
            l->n_file_ops = 0;
    }
    funcmond_loop_repeat(d, op);
}

/* Sets up the file worker; without it the state file is written on the drain thread. */
static void
open_file_worker(struct funcmond *d, struct epoll_loop *l)
{
    int ret = funcmond_file_worker_open(&l->files);
    if (ret != 0) {
        l->files = NULL;
        LOG_WARN("cannot set up a thread for the state file (%s): written on the drain thread", strerror(-ret));
        return;
    }
    l->op_files = (struct funcmond_op){.on_complete = on_files, .while_stopping = 1, .standing = 1};
    funcmond_loop_poll_in(d, &l->op_files, funcmond_file_worker_fd(l->files));
}

int
funcmond_loop_epoll_open(struct funcmond *d)
{
    struct epoll_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int err = -errno;
        free(l);
        return err;
    }
    l->base.be = &epoll_backend;
    d->loop = &l->base;
    open_file_worker(d, l);
    int ret = funcmond_waker_open(&l->waker);
    if (ret != 0) {
        l->waker = NULL;
        d->futex_wait_ok = 0;
        LOG_WARN("futex_waitv is refused (%s): clients past high water are drained at the next tick, not at once", strerror(-ret));
        return 0;
    }
    l->op_waker = (struct funcmond_op){.on_complete = on_waker, .while_stopping = 1, .standing = 1};
    funcmond_loop_poll_in(d, &l->op_waker, funcmond_waker_fd(l->waker));
    return 0;
}
