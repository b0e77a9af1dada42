/*
 * request.h - what other threads (the HTTP server) may ask of the drain thread.
 *
 * They never touch its state: a request is queued here, the drain thread is woken through
 * an eventfd, carries the request out between its own steps and calls back when done.
 */
#ifndef FUNCMOND_REQUEST_H
#define FUNCMOND_REQUEST_H

#include <stdint.h>

#include "funcmon/layout.h"

struct funcmond_requests;
struct funcmond_trim_job;

#define FUNCMOND_TRIM_MAX 256

/* One client's answer to a trim request. */
struct funcmond_trim_result {
    int32_t pid;
    char service[FUNCMON_SERVICE_MAX + 1];
    int status; /* 0, -ETIMEDOUT, or the client's -errno */
    int sent;
    int answered;
    struct funcmon_alloc_stats before;
    struct funcmon_alloc_stats after;
    struct funcmond_trim_job *job;
};

/* A request from another thread to trim every live client (POST /debug/gc). */
struct funcmond_trim_job {
    struct funcmond_trim_job *next;
    uint32_t n; /* results */
    uint32_t pending;
    struct funcmond_trim_result results[FUNCMOND_TRIM_MAX];
    /* Called from the drain thread once every client answered or timed out. */
    void (*done)(struct funcmond_trim_job *job);
    void *arg;
};

/* Queues a trim of every live client; thread-safe. job->done runs later on the drain
 * thread. Returns 0, or -ESHUTDOWN when the loop is stopping. */
int funcmond_request_trim(struct funcmond_requests *q, struct funcmond_trim_job *job);

#endif
