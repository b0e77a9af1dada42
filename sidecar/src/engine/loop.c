/*
 * loop.c - funcmond's event loop: operations asked by their owners, handed to the kernel
 * interface that runs them (io_uring, or epoll where io_uring is refused), and
 * completions handed back to the operation they belong to.
 *
 * One thread sleeps in one place and costs nothing while clients are idle. The loop does
 * not know what its operations are: each one is a struct funcmond_op whose callback its
 * owner set (see loop.h). What the loop keeps is the bookkeeping every owner relies on: the
 * request itself (so that it can be asked again), the per-owner count of operations in
 * flight (a process is freed only once the kernel is done with it), the rule that nothing
 * is consumed once stopping, and standing operations asked again when there was no room.
 *
 * io_uring is refused in containers under their runtime's default seccomp profile (Docker
 * 25 and later, containerd 2, podman) and on hosts that set kernel.io_uring_disabled.
 * funcmond then says so once and runs on epoll, with the same guarantees.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop_backend.h"
#include "sidecar.h"

/* Why io_uring was refused, for the one line that says so. */
static void
describe_refusal(int err, char *why, size_t size)
{
    char disabled[16] = "";
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (f != NULL) {
        if (fgets(disabled, sizeof(disabled), f) == NULL)
            disabled[0] = '\0';
        fclose(f);
        disabled[strcspn(disabled, "\n")] = '\0';
    }
    if (disabled[0] != '\0' && strcmp(disabled, "0") != 0)
        snprintf(why, size, "%s; kernel.io_uring_disabled = %s", strerror(-err), disabled);
    else if (err == -ENOSYS)
        snprintf(why, size, "%s: a seccomp profile refuses it, or the kernel has none", strerror(-err));
    else
        snprintf(why, size, "%s: a seccomp profile or a security module refuses it", strerror(-err));
}

int
funcmond_loop_init(struct funcmond *d)
{
    char why[160];
    int ret = funcmond_loop_uring_open(d);
    if (ret == 0)
        return 0;
    if (ret != -ENOSYS && ret != -EPERM && ret != -EACCES) {
        LOG_ERROR("io_uring_queue_init: %s", strerror(-ret));
        return ret;
    }
    describe_refusal(ret, why, sizeof(why));
    LOG_WARN("io_uring is refused (%s): the drain loop runs on epoll, with the same guarantees", why);
    ret = funcmond_loop_epoll_open(d);
    if (ret != 0)
        LOG_ERROR("epoll loop: %s", strerror(-ret));
    return ret;
}

void
funcmond_loop_close(struct funcmond *d)
{
    if (d->loop != NULL)
        d->loop->be->close(d);
    d->loop = NULL;
}

enum funcmond_event_loop
funcmond_loop_event_loop(const struct funcmond *d)
{
    return d->loop != NULL ? d->loop->be->kind : FUNCMOND_EVENT_LOOP_IO_URING;
}

/* Submits what op asks for, counting it in flight; a standing op without room waits on the
 * unarmed list. A timeout asked again while pending replaces the pending one, counted
 * once. */
static int
submit(struct funcmond *d, struct funcmond_op *op)
{
    int ret;
    if (op->kind == FUNCMOND_OP_TIMEOUT && op->timeout_pending) {
        ret = d->loop->be->retime(d, op);
        return ret == 0 || op->standing ? 0 : ret; /* without room the old one stands */
    }
    ret = d->loop->be->submit(d, op);
    if (ret == 0) {
        if (op->inflight != NULL)
            (*op->inflight)++;
        op->timeout_pending = op->kind == FUNCMOND_OP_TIMEOUT;
        return 0;
    }
    if (!op->standing)
        return ret;
    if (!op->unarmed) {
        op->unarmed = 1;
        op->next_unarmed = d->loop->unarmed;
        d->loop->unarmed = op;
    }
    return 0;
}

int
funcmond_loop_read(struct funcmond *d, struct funcmond_op *op, int fd, void *buf, uint32_t len)
{
    op->kind = FUNCMOND_OP_READ;
    op->fd = fd;
    op->buf = buf;
    op->len = len;
    return submit(d, op);
}

int
funcmond_loop_timeout(struct funcmond *d, struct funcmond_op *op, uint64_t ns)
{
    op->kind = FUNCMOND_OP_TIMEOUT;
    op->ts.tv_sec = (long long)(ns / 1000000000u);
    op->ts.tv_nsec = (long long)(ns % 1000000000u);
    return submit(d, op);
}

int
funcmond_loop_poll_in(struct funcmond *d, struct funcmond_op *op, int fd)
{
    op->kind = FUNCMOND_OP_POLL_IN;
    op->fd = fd;
    return submit(d, op);
}

static int
ask_futex(struct funcmond *d, struct funcmond_op *op, enum funcmond_op_kind kind, uint32_t *word, uint32_t value)
{
    op->kind = kind;
    op->word = word;
    op->value = value;
    return submit(d, op);
}

int
funcmond_loop_futex_wait(struct funcmond *d, struct funcmond_op *op, uint32_t *word, uint32_t value)
{
    return ask_futex(d, op, FUNCMOND_OP_FUTEX_WAIT, word, value);
}

int
funcmond_loop_futex_wake(struct funcmond *d, struct funcmond_op *op, uint32_t *word, uint32_t count)
{
    return ask_futex(d, op, FUNCMOND_OP_FUTEX_WAKE, word, count);
}

int
funcmond_loop_replace_file(struct funcmond *d, struct funcmond_op *write, struct funcmond_op *fsync, struct funcmond_op *rename,
                           int fd, const void *buf, uint32_t len, const char *tmp, const char *path)
{
    struct funcmond_op *const steps[] = {write, fsync, rename};
    write->kind = FUNCMOND_OP_WRITE;
    write->fd = fd;
    write->buf = (void *)buf;
    write->len = len;
    fsync->kind = FUNCMOND_OP_FSYNC;
    fsync->fd = fd;
    rename->kind = FUNCMOND_OP_RENAME;
    rename->path = tmp;
    rename->path2 = path;
    int ret = d->loop->be->submit_linked(d, steps, 3);
    if (ret != 0)
        return ret;
    for (int i = 0; i < 3; i++)
        if (steps[i]->inflight != NULL)
            (*steps[i]->inflight)++;
    return 0;
}

int
funcmond_loop_repeat(struct funcmond *d, struct funcmond_op *op)
{
    return submit(d, op);
}

int
funcmond_loop_cancel(struct funcmond *d, struct funcmond_op *op)
{
    return d->loop->be->cancel(d, op);
}

int
funcmond_loop_stopping(const struct funcmond *d)
{
    /* Pairs with the release store of whoever stops the loop (the signal's callback, or
     * another thread in tests). */
    return __atomic_load_n(&d->stop, __ATOMIC_ACQUIRE);
}

void
funcmond_loop_complete(struct funcmond *d, struct funcmond_op *op, int res)
{
    if (op->inflight != NULL)
        (*op->inflight)--;
    op->timeout_pending = 0;
    if (funcmond_loop_stopping(d) && !op->while_stopping)
        return;
    op->on_complete(d, op, res);
}

/* Asks again what found no room last time. */
static void
rearm(struct funcmond *d)
{
    struct funcmond_op *op = d->loop->unarmed;
    d->loop->unarmed = NULL;
    while (op != NULL) {
        struct funcmond_op *next = op->next_unarmed;
        op->unarmed = 0;
        submit(d, op);
        op = next;
    }
}

int
funcmond_loop_run(struct funcmond *d)
{
    while (!funcmond_loop_stopping(d)) {
        rearm(d);
        int ret = d->loop->be->run_once(d);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int
funcmond_loop_complete_one(struct funcmond *d)
{
    return d->loop->be->complete_one(d);
}

void
funcmond_loop_complete_within(struct funcmond *d, uint64_t timeout_ns)
{
    d->loop->be->complete_within(d, timeout_ns);
}
