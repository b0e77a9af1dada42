/*
 * file_worker.c - the state file's steps run on a thread, for the epoll loop (see
 * file_worker.h).
 *
 * One job at a time (funcmond writes one state file at a time). Shared with the thread,
 * under `lock`: the job (steps, results), `state` and `stopping`. The thread reads the
 * caller's buffer and uses its fd only between start and the eventfd post; the mutex
 * orders the caller's writes to the buffer before the thread's reads, and the thread's
 * results before the caller's take.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "config.h"
#include "file_worker.h"

#define STACK_BYTES (128 * 1024)

enum job_state { JOB_NONE, JOB_QUEUED, JOB_DONE };

struct funcmond_file_worker {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when a job is queued, or when stopping */
    enum job_state state;
    int stopping;
    int started;
    int efd;
    pthread_t tid;
    unsigned n;
    struct funcmond_file_step steps[FUNCMOND_FILE_STEPS_MAX];
    int res[FUNCMOND_FILE_STEPS_MAX];
    char path[FUNCMOND_PATH_MAX + 8], path2[FUNCMOND_PATH_MAX + 8]; /* the rename's, copied */
};

/* Writes all of buf at offset 0: the bytes written, or -errno. */
static int
write_all(int fd, const char *buf, uint32_t len)
{
    uint32_t off = 0;
    while (off < len) {
        ssize_t n = pwrite(fd, buf + off, len - off, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : (int)off;
        off += (uint32_t)n;
    }
    return (int)off;
}

static int
run_step(const struct funcmond_file_step *s)
{
    switch (s->kind) {
    case FUNCMOND_FILE_WRITE:
        return write_all(s->fd, s->buf, s->len);
    case FUNCMOND_FILE_FSYNC:
        return fsync(s->fd) == 0 ? 0 : -errno;
    case FUNCMOND_FILE_RENAME:
        return rename(s->path, s->path2) == 0 ? 0 : -errno;
    }
    return -EINVAL;
}

void
funcmond_file_steps_run(const struct funcmond_file_step *steps, unsigned n, int res[FUNCMOND_FILE_STEPS_MAX])
{
    int failed = 0;
    for (unsigned i = 0; i < n && i < FUNCMOND_FILE_STEPS_MAX; i++) {
        res[i] = failed ? -ECANCELED : run_step(&steps[i]);
        if (res[i] < 0 || (steps[i].kind == FUNCMOND_FILE_WRITE && (uint32_t)res[i] != steps[i].len))
            failed = 1; /* a short write breaks the chain too, as on io_uring */
    }
}

static void *
work(void *arg)
{
    struct funcmond_file_worker *w = arg;
    struct funcmond_file_step steps[FUNCMOND_FILE_STEPS_MAX];
    int res[FUNCMOND_FILE_STEPS_MAX];

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->state != JOB_QUEUED && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->state != JOB_QUEUED)
            break; /* stopping, nothing queued */
        unsigned n = w->n;
        for (unsigned i = 0; i < n; i++)
            steps[i] = w->steps[i];
        pthread_mutex_unlock(&w->lock);
        funcmond_file_steps_run(steps, n, res);
        pthread_mutex_lock(&w->lock);
        for (unsigned i = 0; i < n; i++)
            w->res[i] = res[i];
        w->state = JOB_DONE;
        /* Fails only with the counter full: it is readable then anyway. */
        (void)eventfd_write(w->efd, 1);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int
funcmond_file_worker_open(struct funcmond_file_worker **out)
{
    struct funcmond_file_worker *w = calloc(1, sizeof(*w));
    int err = -ENOMEM;
    if (w == NULL || (w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        goto fail;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    *out = w;
    return 0;
fail:
    if (w != NULL)
        err = -errno;
    free(w);
    return err;
}

void
funcmond_file_worker_close(struct funcmond_file_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->started)
        pthread_join(w->tid, NULL); /* after the job in flight, if any */
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    close(w->efd);
    free(w);
}

int
funcmond_file_worker_fd(const struct funcmond_file_worker *w)
{
    return w->efd;
}

/* Starts the thread, signals blocked (they stay with the threads that read them). */
static int
start_thread(struct funcmond_file_worker *w)
{
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_BYTES);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&w->tid, &attr, work, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0)
        return -err;
    w->started = 1;
    return 0;
}

int
funcmond_file_worker_start(struct funcmond_file_worker *w, const struct funcmond_file_step *steps, unsigned n)
{
    if (n == 0 || n > FUNCMOND_FILE_STEPS_MAX)
        return -EINVAL;
    pthread_mutex_lock(&w->lock);
    int busy = w->state != JOB_NONE;
    pthread_mutex_unlock(&w->lock);
    if (busy)
        return -EBUSY;
    if (!w->started) {
        int ret = start_thread(w);
        if (ret != 0)
            return ret;
    }
    pthread_mutex_lock(&w->lock);
    for (unsigned i = 0; i < n; i++) {
        w->steps[i] = steps[i];
        if (steps[i].kind != FUNCMOND_FILE_RENAME)
            continue;
        if ((size_t)snprintf(w->path, sizeof(w->path), "%s", steps[i].path) >= sizeof(w->path) ||
            (size_t)snprintf(w->path2, sizeof(w->path2), "%s", steps[i].path2) >= sizeof(w->path2)) {
            pthread_mutex_unlock(&w->lock);
            return -ENAMETOOLONG;
        }
        w->steps[i].path = w->path;
        w->steps[i].path2 = w->path2;
    }
    w->n = n;
    w->state = JOB_QUEUED;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

unsigned
funcmond_file_worker_take(struct funcmond_file_worker *w, int res[FUNCMOND_FILE_STEPS_MAX])
{
    uint64_t count;
    unsigned n = 0;
    while (read(w->efd, &count, sizeof(count)) > 0)
        ;
    pthread_mutex_lock(&w->lock);
    if (w->state == JOB_DONE) {
        n = w->n;
        for (unsigned i = 0; i < n; i++)
            res[i] = w->res[i];
        w->state = JOB_NONE;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}
