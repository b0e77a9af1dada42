/*
 * http_internal.h - what the HTTP server (http.c) shares with its endpoint families
 * (http_<family>.c): the server's state, the call a route hands to its handler, the ways
 * to answer, and answers finished on another thread.
 *
 * The server owns the socket side (listening, connections, tokens, routing); a family only
 * turns a call into an answer. Families read the published views through h->reader, never
 * the drain thread's state, and each keeps its own rules (one CPU profile at a time, one
 * trim) in the counters below.
 */
#ifndef FUNCMOND_HTTP_INTERNAL_H
#define FUNCMOND_HTTP_INTERNAL_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <stdint.h>

#include "config.h"
#include "doc.h"
#include "http_query.h"
#include "request.h"
#include "view.h"

struct funcmond_http {
    struct funcmond_requests *requests;
    const struct funcmond_config *cfg;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_evloop_t *loop;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t receiver; /* answers finished on other threads */
    int fd;
    int port;
    pthread_t thread;
    int stop;
    struct funcmond_reader *reader;
    int cpu_profiles; /* running now: one at a time (HTTP thread only) */
    int trims;        /* POST gc waiting for answers: one at a time (HTTP thread only) */
    /* HTTP thread only from here */
    h2o_linklist_t conns;        /* struct conn, least recently active first */
    h2o_linklist_t watched_jobs; /* struct funcmond_http_job whose clients are watched for leaving */
    int paused;                  /* the listener is not read: out of file descriptors */
    uint64_t resume_at_ms;       /* then, when to read it again (loop clock) */
    uint64_t next_sweep_ms;
    uint64_t next_fd_warning_ms;
    uint64_t fd_failures; /* accepts refused for want of a descriptor, since the last warning */
    unsigned n_conns;     /* in conns and not shut down by us */
    unsigned max_conns;   /* half the descriptors funcmond may open: the rest are the drain's */
};

/* ---- routes ---- */

/* One request as a route's handler sees it: its method allowed and, under PROFILING.PATH,
 * its token checked and its query parsed and valid (METRICS.PATH's handler gets an empty
 * query). */
struct funcmond_http_call {
    struct funcmond_http *h;
    h2o_req_t *req;
    const struct funcmond_http_query *query;
    const char *rest; /* after a prefix route's path (raw, not decoded); "" otherwise */
    size_t rest_len;
};

/* Answers the call (now, or later through a job). Returns 0: h2o has the request. */
typedef int (*funcmond_http_handler)(const struct funcmond_http_call *c);

/* The endpoint families, one file each; http.c routes to them. */
int funcmond_http_get_profiles(const struct funcmond_http_call *c);     /* http_profiles.c */
int funcmond_http_get_profile(const struct funcmond_http_call *c);      /* http_profiles.c: profiles/<name> */
int funcmond_http_get_processes(const struct funcmond_http_call *c);    /* http_processes.c */
int funcmond_http_get_stats(const struct funcmond_http_call *c);        /* http_stats.c */
int funcmond_http_get_memory(const struct funcmond_http_call *c);       /* http_memory.c */
int funcmond_http_post_gc(const struct funcmond_http_call *c);          /* http_memory.c */
int funcmond_http_get_threads(const struct funcmond_http_call *c);      /* http_threads.c: JSON */
int funcmond_http_get_goroutines(const struct funcmond_http_call *c);   /* http_threads.c: the same as text */
int funcmond_http_get_inflight(const struct funcmond_http_call *c);     /* http_threads.c */
int funcmond_http_get_pprof_index(const struct funcmond_http_call *c);  /* http_pprof.c: pprof and pprof/ */
int funcmond_http_get_cpu_profile(const struct funcmond_http_call *c);  /* http_pprof.c */
int funcmond_http_get_heap_profile(const struct funcmond_http_call *c); /* http_pprof.c */
int funcmond_http_get_metrics(const struct funcmond_http_call *c);      /* http_metrics.c */

/* ---- answers (http_answer.c) ---- */

/* Sends body (copied) with status, Content-Type `type` and Cache-Control: no-store. */
void funcmond_http_send_body(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len);
/* Sends root as JSON, or msgpack when the client's Accept asks for it; a 500 if it cannot
 * be encoded (root NULL: out of memory). Returns 0. */
int funcmond_http_send_doc(h2o_req_t *req, int status, const struct fval *root);
/* Sends {"error": message, "status": status} plus whatever `extra` adds (may be NULL);
 * a 401 also carries WWW-Authenticate: Bearer. Returns 0. */
int funcmond_http_send_error(h2o_req_t *req, int status, const char *message, void (*extra)(struct fdoc *, struct fval *, void *),
                             void *arg);

/* ---- per-process answers (http_processes.c) ---- */

/* {"pid", "service", "state"} of one process: what every per-process answer starts with. */
struct fval *funcmond_http_process_base(struct fdoc *doc, const struct funcmond_proc_view *p);
/* A process's allocator statistics as an object. */
struct fval *funcmond_http_alloc_obj(struct fdoc *doc, const struct funcmond_runtime *rt);
/* Reads a /proc file of at most size - 1 bytes (the kernel hands it out in one read) into
 * buf, NUL-terminated. Returns its length, or -errno when it cannot be opened or read. */
ssize_t funcmond_http_read_proc(const char *path, char *buf, size_t size);
/* Answers {"processes": [...], "count": N}: each process's base object completed by `fill`;
 * `top`, unless NULL, adds fields about the sidecar itself to the answer's object. */
int funcmond_http_answer_processes(const struct funcmond_http_call *c,
                                   void (*fill)(struct fdoc *doc, struct fval *o, const struct funcmond_view *v,
                                                const struct funcmond_proc_view *p),
                                   void (*top)(struct fdoc *doc, struct fval *root, const struct funcmond_view *v));

/* ---- answers finished on another thread (http.c) ---- */

struct funcmond_http_job;

/* What a kind of job does on the HTTP thread; each family that starts jobs has one. */
struct funcmond_http_job_ops {
    /* The job came back (answered or not): gives back the family's slot. */
    void (*finished)(struct funcmond_http_job *j);
    /* After finished, when the client is still there: answers j->req. */
    void (*answer)(struct funcmond_http_job *j);
    /* The last reference is going: frees what the job owns (not the job). May be NULL. */
    void (*dispose)(struct funcmond_http_job *j);
    /* A watched job's client closed its connection; j->cancel is set already. May be NULL. */
    void (*client_left)(struct funcmond_http_job *j);
};

/* The start of a family's job struct. A job outlives its request when the client leaves
 * first: the request's pool and the job's return each hold a reference, both dropped on
 * the HTTP thread, and a job whose request is gone is never answered. */
struct funcmond_http_job {
    h2o_multithread_message_t msg; /* first: the receiver gets &job->msg */
    const struct funcmond_http_job_ops *ops;
    struct funcmond_http *h;
    h2o_req_t *req;
    int refs;     /* the request's and the finisher's */
    int orphaned; /* the client went away: nobody to answer */
    int cancel;   /* nobody waits any more: read (atomically) by the job's thread */
    /* watched jobs only (funcmond_http_job_watch_client) */
    h2o_linklist_t watched; /* in h->watched_jobs until finished */
    int fd;                 /* the client's socket, watched for its closing; -1 if unknown */
    int client_left;        /* seen closed while the job ran: answered with a 503 */
};

/* A zeroed job of `size` bytes (a family's struct beginning with struct
 * funcmond_http_job) for req, holding both references. Returns NULL when out of memory. */
struct funcmond_http_job *funcmond_http_job_new(const struct funcmond_http_call *c, size_t size,
                                                const struct funcmond_http_job_ops *ops);
/* The job is done: hands it back to the HTTP thread, where ops->finished and ops->answer
 * run. Any thread; once per job. */
void funcmond_http_job_post(struct funcmond_http_job *j);
/* The job could not be started and will never be posted: drops the finisher's reference
 * (the request's goes with the request). HTTP thread. */
void funcmond_http_job_abandon(struct funcmond_http_job *j);
/* Watches the client's socket while the job runs: h2o does not read a connection whose
 * answer is pending, so it would not see the client leave; the server's sweep does, sets
 * j->cancel and calls ops->client_left. The connection is never shut down as idle. */
void funcmond_http_job_watch_client(struct funcmond_http_job *j);

#endif
