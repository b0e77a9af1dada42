/*
 * file_worker.h - the state file's write, fsync and rename on a thread of their own, for
 * the epoll loop.
 *
 * On io_uring these steps run in the kernel while the drain thread goes on draining; on
 * epoll they would block it for as long as an fsync on a slow volume takes. So one thread
 * runs them and makes an eventfd readable when the job is done, which the loop watches.
 * The thread gets a copy of what one job needs (fd, buffer, paths) and nothing else of
 * the engine; the buffer and fd stay the caller's and must live until the job is taken.
 */
#ifndef FUNCMOND_FILE_WORKER_H
#define FUNCMOND_FILE_WORKER_H

#include <stdint.h>

#define FUNCMOND_FILE_STEPS_MAX 3

enum funcmond_file_step_kind { FUNCMOND_FILE_WRITE, FUNCMOND_FILE_FSYNC, FUNCMOND_FILE_RENAME };

struct funcmond_file_step {
    enum funcmond_file_step_kind kind;
    int fd;          /* write, fsync */
    const void *buf; /* write: len bytes at offset 0 */
    uint32_t len;
    const char *path; /* rename: path -> path2 (copied when the job is started) */
    const char *path2;
};

struct funcmond_file_worker;

/* Sets up the worker and its eventfd (the thread starts with the first job). Returns 0
 * or -errno. */
int funcmond_file_worker_open(struct funcmond_file_worker **out);
/* Waits for the job in flight, if any, then stops and joins the thread and frees it all. */
void funcmond_file_worker_close(struct funcmond_file_worker *w);
/* The eventfd (non-blocking): readable once a job is done. */
int funcmond_file_worker_fd(const struct funcmond_file_worker *w);

/* Starts a job of n steps run in order, each only once the one before succeeded (a write
 * succeeds when it wrote all of len); the steps after a failed one result in -ECANCELED.
 * Returns 0; -EBUSY while a job is in flight or not taken yet; -ENAMETOOLONG for a path
 * that does not fit; or the -errno of starting the thread. */
int funcmond_file_worker_start(struct funcmond_file_worker *w, const struct funcmond_file_step *steps, unsigned n);
/* After the eventfd was readable: when the job is done, stores each step's result (the
 * bytes written, 0, or -errno) in res and returns how many steps it had; otherwise 0. */
unsigned funcmond_file_worker_take(struct funcmond_file_worker *w, int res[FUNCMOND_FILE_STEPS_MAX]);

/* Runs the steps here and now, with the same results (where no thread can be started). */
void funcmond_file_steps_run(const struct funcmond_file_step *steps, unsigned n, int res[FUNCMOND_FILE_STEPS_MAX]);

#endif
