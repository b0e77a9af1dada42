/*
 * futex_waker.c - threads sleeping in futex_waitv(2) on clients' wake words, for the
 * epoll loop (see futex_waker.h).
 *
 * futex_waitv (Linux 5.16) waits on up to 128 words at once. Each thread waits on its own
 * slice of at most 127 armed words plus `gen`, the set's generation, which the loop bumps
 * (and wakes) whenever the set changed or it has looked at the words: a thread then takes
 * a fresh copy of its slice. When a client word changes (or cannot be read: a truncated
 * segment), the thread makes the eventfd readable and waits for the loop to look, which
 * always bumps gen; so a thread never spins on a word that stays changed. Threads are
 * started as the words outnumber what they watch, one per 127 armed words, up to as many
 * as the clients funcmond can attach (4096); past that, or when a thread cannot be
 * started, the rest are drained on the tick, which is said once.
 *
 * A wake on a word that did not change still completes its wait (with 0, as io_uring's
 * FUTEX_WAIT does), so that the loop's per-client wake budget applies to it: a client that
 * calls FUTEX_WAKE in a loop must not keep the threads and the loop busy for nothing.
 *
 * Shared with the threads, under `lock`: the set (word, value, cookie, woken; the threads
 * copy word and value and set woken, never use the cookie) and `stopping`; `gen` also
 * atomically, as the futex word. Nothing else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "futex_waker.h"
#include "log.h"

#ifndef SYS_futex_waitv
#error "futex_waitv (Linux 5.16) is missing from <sys/syscall.h>: newer kernel headers are needed"
#endif

#define SLICE (FUTEX_WAITV_MAX - 1) /* words per thread, beside gen */
#define CLIENTS_MAX 4096            /* as many as the SIGBUS guard lets funcmond attach */
#define THREADS_MAX ((CLIENTS_MAX + SLICE - 1) / SLICE)
#define STACK_BYTES (256 * 1024)

struct watched {
    uint32_t *word;
    uint32_t value;
    void *cookie;
    int woken; /* a wake came for it (its word may be unchanged) */
};

struct waker_thread {
    struct funcmond_waker *w;
    unsigned index; /* watches set[index * SLICE ...] */
    pthread_t tid;
};

struct funcmond_waker {
    pthread_mutex_t lock;
    struct watched *set;
    size_t n, cap;
    uint32_t gen; /* futex word; changed under lock, read atomically */
    int stopping;
    int efd;
    int dirty; /* loop only: words added since the threads last looked */
    unsigned n_threads;
    int short_logged;
    struct waker_thread threads[THREADS_MAX];
};

static long
futex_waitv(struct futex_waitv *v, unsigned n)
{
    return syscall(SYS_futex_waitv, v, n, 0, NULL, CLOCK_MONOTONIC);
}

static void
wake_gen(struct funcmond_waker *w)
{
    syscall(SYS_futex, &w->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* The loop's side: the set changed, or the words were looked at. Lock held. */
static void
bump(struct funcmond_waker *w)
{
    /* Pairs with the threads' acquire loads of gen. */
    __atomic_add_fetch(&w->gen, 1, __ATOMIC_RELEASE);
}

static void
post(struct funcmond_waker *w)
{
    uint64_t one = 1;
    /* A failed write leaves the counter readable (it can only fail when full). */
    if (write(w->efd, &one, sizeof(one)) != sizeof(one))
        return;
}

/* A wake came for word: its wait completes even if the word is as it was. The entry is
 * found by its word, since the set may have been reordered since the copy. */
static void
mark_woken(struct funcmond_waker *w, const uint32_t *word)
{
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n; i++) {
        if (w->set[i].word == word) {
            w->set[i].woken = 1;
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

static void *
watch(void *arg)
{
    struct waker_thread *t = arg;
    struct funcmond_waker *w = t->w;
    struct futex_waitv v[FUTEX_WAITV_MAX];

    for (;;) {
        pthread_mutex_lock(&w->lock);
        if (__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE)) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        uint32_t g = __atomic_load_n(&w->gen, __ATOMIC_RELAXED); /* the lock orders it */
        size_t first = (size_t)t->index * SLICE, n = 0;
        for (size_t i = first; i < w->n && n < SLICE; i++, n++)
            v[1 + n] = (struct futex_waitv){.val = w->set[i].value, .uaddr = (uintptr_t)w->set[i].word, .flags = FUTEX_32};
        pthread_mutex_unlock(&w->lock);
        v[0] = (struct futex_waitv){.val = g, .uaddr = (uintptr_t)&w->gen, .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG};

        long r = futex_waitv(v, (unsigned)(1 + n));
        if (r == 0 || (r < 0 && errno == EINTR) || __atomic_load_n(&w->gen, __ATOMIC_ACQUIRE) != g)
            continue; /* the set changed: copy it again */
        if (r > 0 && (size_t)r <= n)
            mark_woken(w, (uint32_t *)(uintptr_t)v[r].uaddr);
        /* A client word was woken (r > 0), changed (-EAGAIN with gen as it was), or cannot
         * be read (-EFAULT): the loop looks, then bumps gen. */
        post(w);
        while (__atomic_load_n(&w->gen, __ATOMIC_ACQUIRE) == g && !__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE))
            syscall(SYS_futex, &w->gen, FUTEX_WAIT_PRIVATE, g, NULL, NULL, 0);
    }
    return NULL;
}

int
funcmond_waker_open(struct funcmond_waker **out)
{
    struct funcmond_waker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    /* A value that differs: the kernel answers at once, EAGAIN where it takes the call. */
    struct futex_waitv v = {.val = 1, .uaddr = (uintptr_t)&w->gen, .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG};
    if (futex_waitv(&v, 1) != -1 || errno != EAGAIN) {
        int err = errno == EAGAIN ? -EINVAL : -errno;
        free(w);
        return err;
    }
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0) {
        int err = -errno;
        free(w);
        return err;
    }
    pthread_mutex_init(&w->lock, NULL);
    *out = w;
    return 0;
}

void
funcmond_waker_close(struct funcmond_waker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    __atomic_store_n(&w->stopping, 1, __ATOMIC_RELEASE);
    bump(w);
    pthread_mutex_unlock(&w->lock);
    wake_gen(w);
    for (unsigned i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i].tid, NULL);
    pthread_mutex_destroy(&w->lock);
    close(w->efd);
    free(w->set);
    free(w);
}

int
funcmond_waker_fd(const struct funcmond_waker *w)
{
    return w->efd;
}

int
funcmond_waker_add(struct funcmond_waker *w, uint32_t *word, uint32_t value, void *cookie)
{
    pthread_mutex_lock(&w->lock);
    if (w->n == w->cap) {
        size_t cap = w->cap != 0 ? 2 * w->cap : 64;
        struct watched *set = realloc(w->set, cap * sizeof(*set));
        if (set == NULL) {
            pthread_mutex_unlock(&w->lock);
            return -ENOMEM;
        }
        w->set = set;
        w->cap = cap;
    }
    w->set[w->n++] = (struct watched){.word = word, .value = value, .cookie = cookie, .woken = 0};
    pthread_mutex_unlock(&w->lock);
    w->dirty = 1;
    return 0;
}

int
funcmond_waker_remove(struct funcmond_waker *w, void *cookie)
{
    int found = 0;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n; i++) {
        if (w->set[i].cookie == cookie) {
            w->set[i] = w->set[--w->n];
            found = 1;
            break;
        }
    }
    /* No bump: a thread still waiting on the word only wakes the loop for nothing once. */
    pthread_mutex_unlock(&w->lock);
    return found;
}

size_t
funcmond_waker_take_changed(struct funcmond_waker *w, int (*take)(void *arg, void *cookie), void *arg)
{
    uint64_t count;
    size_t taken = 0, kept = 0;
    while (read(w->efd, &count, sizeof(count)) > 0)
        ;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n; i++) {
        /* A truncated segment reads as zeros here (the SIGBUS guard maps them in), so it is
         * seen as changed, and its client let go by the drain that follows. Pairs with the
         * producer's release increment of the word. */
        if ((w->set[i].woken || __atomic_load_n(w->set[i].word, __ATOMIC_ACQUIRE) != w->set[i].value) &&
            take(arg, w->set[i].cookie) == 0) {
            taken++;
            continue;
        }
        w->set[kept++] = w->set[i];
    }
    w->n = kept;
    bump(w); /* looked: every thread copies its slice again */
    pthread_mutex_unlock(&w->lock);
    wake_gen(w);
    return taken;
}

/* Starts threads until they cover the set. Lock not held (the new thread takes it). */
static void
start_threads(struct funcmond_waker *w, size_t n)
{
    pthread_attr_t attr;
    sigset_t all, old;
    if (w->n_threads * (size_t)SLICE >= n)
        return;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_BYTES);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals stay with the threads that read them */
    while (w->n_threads * (size_t)SLICE < n && w->n_threads < THREADS_MAX) {
        struct waker_thread *t = &w->threads[w->n_threads];
        t->w = w;
        t->index = w->n_threads;
        int err = pthread_create(&t->tid, &attr, watch, t);
        if (err != 0) {
            if (!w->short_logged)
                LOG_WARN("cannot start a thread to watch client wake-ups (%s): clients past the first %u are drained on the "
                         "tick only",
                         strerror(err), w->n_threads * SLICE);
            w->short_logged = 1;
            break;
        }
        w->n_threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (w->n_threads * (size_t)SLICE < n && w->n_threads == THREADS_MAX && !w->short_logged) {
        LOG_WARN("more than %u clients wait for wake-ups: those past them are drained on the tick only", THREADS_MAX * SLICE);
        w->short_logged = 1;
    }
}

void
funcmond_waker_flush(struct funcmond_waker *w)
{
    if (!w->dirty)
        return;
    w->dirty = 0;
    pthread_mutex_lock(&w->lock);
    size_t n = w->n;
    bump(w);
    pthread_mutex_unlock(&w->lock);
    wake_gen(w);
    start_threads(w, n);
}
