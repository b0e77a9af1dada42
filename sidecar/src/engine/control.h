/*
 * control.h - control requests to clients (allocator samples, trims) and the queue of
 * requests from other threads (request.h) that the drain thread serves.
 */
#ifndef FUNCMOND_CONTROL_H
#define FUNCMOND_CONTROL_H

#include <pthread.h>
#include <stdint.h>

#include "request.h"

struct funcmond;
struct funcmond_process;

/* The queue other threads put requests in (request.h): the drain thread reads request_fd
 * and takes the list. */
struct funcmond_requests {
    pthread_mutex_t lock;
    struct funcmond_trim_job *queued; /* not yet started */
    int fd;                           /* eventfd: requests are waiting */
    int closed;                       /* stopping: no more requests taken */
};

/* A pending control request: answered through on_done, from the drain thread. */
struct funcmond_ctl_request {
    uint32_t op;
    uint32_t request;     /* the ctl_request value that identifies our request */
    uint64_t deadline_ns; /* monotonic */
    void (*on_done)(struct funcmond *d, struct funcmond_process *p, int status, void *arg);
    void *arg;
    int active;
};

/* Sends a control request; on_done runs from the drain thread with the client's status, or
 * -ETIMEDOUT after timeout_ms. Returns 0; -EBUSY when one is already pending; -ESRCH when
 * p is not a live client. */
int funcmond_control(struct funcmond *d, struct funcmond_process *p, uint32_t op, int timeout_ms,
                     void (*on_done)(struct funcmond *d, struct funcmond_process *p, int status, void *arg), void *arg);

/* Asks p for an allocator sample when its MEMORY_PROFILE interval is up (at the tick). */
void funcmond_control_sample(struct funcmond *d, struct funcmond_process *p, uint64_t now);
/* Takes the clients' answers, times out the late ones, starts queued trims and hands
 * back the trim jobs that are complete (at the tick). */
void funcmond_control_poll(struct funcmond *d, uint64_t now);

/* Sets up the request queue. Returns 0 or the -errno of eventfd. */
int funcmond_control_init(struct funcmond *d);
/* Starts reading the queue's eventfd through the loop. */
void funcmond_control_start(struct funcmond *d);
/* Stopping: no more requests are taken (funcmond_request_trim answers -ESHUTDOWN); every
 * request still waiting is answered as it stands and every trim job handed back. */
void funcmond_control_stop(struct funcmond *d);
/* Frees the queue; no other thread may use it any more. */
void funcmond_control_close(struct funcmond *d);

#endif
