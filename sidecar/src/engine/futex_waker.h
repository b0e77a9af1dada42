/*
 * futex_waker.h - clients' wake words watched for the epoll loop.
 *
 * A futex cannot be put in an epoll set, and the drain thread must still wake as soon as
 * a client's wake word changes (a ring past high water), not at the next tick. So a few
 * threads sleep in futex_waitv(2) on the armed words and make an eventfd readable, which
 * the loop watches. The threads never touch the engine: they copy words and values under
 * the set's lock and wait in the kernel; the loop (one thread) does the rest.
 */
#ifndef FUNCMOND_FUTEX_WAKER_H
#define FUNCMOND_FUTEX_WAKER_H

#include <stddef.h>
#include <stdint.h>

struct funcmond_waker;

/* Sets up the set and its eventfd (no thread yet). Returns 0; the -errno of futex_waitv
 * (tried once) when the kernel or a seccomp filter refuses it (-ENOSYS, -EPERM); or
 * another -errno. */
int funcmond_waker_open(struct funcmond_waker **out);
/* Stops and joins the threads and frees it all. */
void funcmond_waker_close(struct funcmond_waker *w);
/* The eventfd (non-blocking): readable once a watched word may have changed. */
int funcmond_waker_fd(const struct funcmond_waker *w);

/* Watches word (u32, shared memory) until it differs from value; cookie names it in
 * take_changed and remove. The threads see it from the next funcmond_waker_flush.
 * Returns 0 or -ENOMEM. */
int funcmond_waker_add(struct funcmond_waker *w, uint32_t *word, uint32_t value, void *cookie);
/* Stops watching cookie's word. Returns 1 if it was watched, 0 otherwise. */
int funcmond_waker_remove(struct funcmond_waker *w, void *cookie);
/* After the eventfd was read: hands each watched word that differs from its value, or
 * that a FUTEX_WAKE woke, to take(arg, cookie), which returns 0 to take it (it is no longer watched) or -errno to
 * leave it for next time; then lets the threads wait again. Returns how many were taken. */
size_t funcmond_waker_take_changed(struct funcmond_waker *w, int (*take)(void *arg, void *cookie), void *arg);
/* Before the loop waits: lets the threads see what was added, starting threads while the
 * words outnumber those they watch. */
void funcmond_waker_flush(struct funcmond_waker *w);

#endif
