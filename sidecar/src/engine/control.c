/*
 * control.c - requests to clients' control threads, and the queue through which other
 * threads ask the drain thread for them.
 *
 * A control request (an allocator sample, a trim) is written into the client's segment
 * and its control thread woken; the answer is polled at every tick, and a client that does
 * not answer within the request's timeout is answered -ETIMEDOUT. One request per client
 * is in flight at a time. The HTTP server never touches a segment: it queues a trim job
 * (request.h) and the drain thread carries it out between its own steps, calling the job's
 * done callback once every client answered or timed out, or when stopping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "funcmon/control.h"
#include "log.h"
#include "sidecar.h"

/* The control request's wake was sent. */
static void
on_ctl_woken(struct funcmond *d, struct funcmond_op *op, int res)
{
    struct funcmond_process *p = FUNCMOND_PROC_OF(op, op_ctl);
    (void)d;
    if (res == -EINVAL || res == -ENOSYS) /* no futex wake through the loop: do it directly */
        funcmon_control_wake(p->c.hdr);
}

int
funcmond_control(struct funcmond *d, struct funcmond_process *p, uint32_t op, int timeout_ms,
                 void (*on_done)(struct funcmond *d, struct funcmond_process *p, int status, void *arg), void *arg)
{
    if (p->ctl.active)
        return -EBUSY;
    if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
        return -ESRCH;
    struct funcmon_shm_header *h = p->c.hdr;
    uint32_t req = funcmon_control_post(h, op);
    if (p->op_ctl.on_complete == NULL)
        p->op_ctl = (struct funcmond_op){.on_complete = on_ctl_woken, .inflight = &p->ops_inflight};
    if (!d->futex_wait_ok || funcmond_loop_futex_wake(d, &p->op_ctl, funcmon_control_wake_word(h), 1) != 0)
        funcmon_control_wake(h);
    p->ctl.op = op;
    p->ctl.request = req;
    p->ctl.deadline_ns = funcmond_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    p->ctl.on_done = on_done;
    p->ctl.arg = arg;
    p->ctl.active = 1;
    return 0;
}

/* Takes the answers the clients' control threads have written, and times out the rest. */
static void
check_answers(struct funcmond *d, uint64_t now)
{
    for (struct funcmond_process *p = d->procs; p != NULL; p = p->next) {
        if (!p->ctl.active)
            continue;
        struct funcmon_shm_header *h = p->c.hdr;
        int32_t status;
        /* The figures are read only once the poll said answered: its acquire load of
         * ctl_response orders them after the control thread wrote them. */
        if (funcmon_control_poll(h, p->ctl.request, &status)) {
            if (status == 0) {
                p->rt.alloc = h->alloc_stats;
                if (p->ctl.op == FUNCMON_CTL_SAMPLE)
                    p->rt.totals = h->alloc_totals;
                p->rt.have_alloc = 1;
            }
        } else if (now >= p->ctl.deadline_ns || p->state != FUNCMOND_PROC_LIVE) {
            status = -ETIMEDOUT;
        } else {
            continue;
        }
        p->ctl.active = 0;
        if (p->ctl.on_done != NULL)
            p->ctl.on_done(d, p, status, p->ctl.arg);
    }
}

static void
on_sample_done(struct funcmond *d, struct funcmond_process *p, int status, void *arg)
{
    (void)d;
    (void)arg;
    if (status != 0)
        LOG_DEBUG("%s: allocator sample failed: %s", p->shm_name, strerror(-status));
}

/* --- requests from other threads --- */

int
funcmond_request_trim(struct funcmond_requests *q, struct funcmond_trim_job *job)
{
    uint64_t one = 1;
    job->n = job->pending = 0;
    pthread_mutex_lock(&q->lock);
    if (q->closed) { /* the loop has answered its last request */
        pthread_mutex_unlock(&q->lock);
        return -ESHUTDOWN;
    }
    job->next = q->queued;
    q->queued = job;
    pthread_mutex_unlock(&q->lock);
    /* If the wake-up cannot be written the job still runs, at the next tick. */
    if (write(q->fd, &one, sizeof(one)) != sizeof(one))
        LOG_DEBUG("request wake-up: %s", strerror(errno));
    return 0;
}

static void
on_trim_done(struct funcmond *d, struct funcmond_process *p, int status, void *arg)
{
    struct funcmond_trim_result *r = arg;
    (void)d;
    r->status = status;
    r->answered = 1;
    if (status == 0) {
        r->before = p->c.hdr->ctl_before;
        r->after = p->c.hdr->ctl_after;
    }
    r->job->pending--;
}

/* Sends what can be sent, and hands back the jobs that are complete. */
static void
service_trims(struct funcmond *d)
{
    pthread_mutex_lock(&d->rq.lock);
    struct funcmond_trim_job *fresh = d->rq.queued;
    d->rq.queued = NULL;
    pthread_mutex_unlock(&d->rq.lock);
    while (fresh != NULL) {
        struct funcmond_trim_job *job = fresh;
        fresh = job->next;
        for (struct funcmond_process *p = d->procs; p != NULL && job->n < FUNCMOND_TRIM_MAX; p = p->next) {
            if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
                continue;
            struct funcmond_trim_result *r = &job->results[job->n++];
            memset(r, 0, sizeof(*r));
            r->pid = p->pid;
            memcpy(r->service, p->service, sizeof(r->service));
            r->job = job;
        }
        job->pending = job->n;
        job->next = d->trims;
        d->trims = job;
    }
    for (struct funcmond_trim_job **jp = &d->trims; *jp != NULL;) {
        struct funcmond_trim_job *job = *jp;
        for (uint32_t i = 0; i < job->n; i++) {
            struct funcmond_trim_result *r = &job->results[i];
            if (r->sent)
                continue;
            struct funcmond_process *p = d->procs;
            while (p != NULL && !(p->pid == r->pid && p->state == FUNCMOND_PROC_LIVE && !p->detaching))
                p = p->next;
            int ret = p != NULL ? funcmond_control(d, p, FUNCMON_CTL_TRIM, 1000, on_trim_done, r) : -ESRCH;
            if (ret == -EBUSY)
                continue; /* an allocator sample is being answered: next tick */
            r->sent = 1;
            if (ret != 0) {
                r->status = ret;
                r->answered = 1;
                job->pending--;
            }
        }
        if (job->pending == 0) {
            *jp = job->next;
            job->done(job);
        } else {
            jp = &job->next;
        }
    }
}

/* Another thread queued a request (eventfd). Not called once stopping:
 * funcmond_control_stop answers what is left. */
static void
on_request(struct funcmond *d, struct funcmond_op *op, int res)
{
    (void)res;
    service_trims(d);
    funcmond_loop_repeat(d, op);
}

void
funcmond_control_sample(struct funcmond *d, struct funcmond_process *p, uint64_t now)
{
    if (p->state == FUNCMOND_PROC_LIVE && now >= p->next_sample_mono_ns &&
        funcmond_control(d, p, FUNCMON_CTL_SAMPLE, 1000, on_sample_done, NULL) == 0)
        p->next_sample_mono_ns = now + (uint64_t)d->cfg.memory_profile_interval_s * FUNCMOND_SECOND_NS;
}

void
funcmond_control_poll(struct funcmond *d, uint64_t now)
{
    check_answers(d, now);
    service_trims(d);
}

int
funcmond_control_init(struct funcmond *d)
{
    d->op_request = (struct funcmond_op){.on_complete = on_request, .standing = 1};
    pthread_mutex_init(&d->rq.lock, NULL);
    d->rq.fd = eventfd(0, EFD_CLOEXEC);
    if (d->rq.fd < 0)
        return -errno;
    return 0;
}

void
funcmond_control_start(struct funcmond *d)
{
    funcmond_loop_read(d, &d->op_request, d->rq.fd, &d->request_buf, sizeof(d->request_buf));
}

void
funcmond_control_stop(struct funcmond *d)
{
    pthread_mutex_lock(&d->rq.lock);
    d->rq.closed = 1; /* from here on other threads are told we are stopping */
    pthread_mutex_unlock(&d->rq.lock);
    check_answers(d, UINT64_MAX);
    service_trims(d);
    while (d->trims != NULL) {
        struct funcmond_trim_job *job = d->trims;
        d->trims = job->next;
        for (uint32_t i = 0; i < job->n; i++)
            if (!job->results[i].answered)
                job->results[i].status = -ESHUTDOWN;
        job->done(job);
    }
}

void
funcmond_control_close(struct funcmond *d)
{
    if (d->rq.fd >= 0)
        close(d->rq.fd);
    pthread_mutex_destroy(&d->rq.lock);
}
