/*
 * http_pprof.c - GET /debug/pprof/, /debug/pprof/profile and /debug/pprof/heap: profiles
 * in the format `go tool pprof` reads (pprof.c builds them).
 *
 * A CPU profile samples a client process for ?seconds= (up to an hour) on a thread of its
 * own and is answered as a job when done: one runs at a time (each holds a perf event and
 * a ring per thread of its target), and it is stopped as soon as its client leaves. The
 * heap profile is built at once from the profiled-call stacks in the view.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http_internal.h"
#include "log.h"
#include "pprof.h"
#include "stacks_view.h"

/* ---- CPU profile ---- */

struct cpu_job {
    struct funcmond_http_job job; /* first */
    int32_t pid;
    int seconds;
    /* the profiling thread's result */
    int status;
    char err[256];
    unsigned char *body;
    size_t len;
};

static void *
cpu_thread(void *arg)
{
    struct cpu_job *j = arg;
    j->status = funcmond_pprof_cpu(j->pid, j->seconds, 99, &j->job.cancel, &j->body, &j->len, j->err, sizeof(j->err));
    funcmond_http_job_post(&j->job);
    return NULL;
}

static void
cpu_finished(struct funcmond_http_job *job)
{
    job->h->cpu_profiles--;
}

static void
cpu_answer(struct funcmond_http_job *job)
{
    const struct cpu_job *j = (const struct cpu_job *)job;
    if (j->status != 0) {
        funcmond_http_send_error(job->req, j->status == -ESRCH ? 404 : 503, j->err, NULL, NULL);
    } else {
        h2o_add_header(&job->req->pool, &job->req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL,
                       H2O_STRLIT("attachment; filename=\"profile.pb.gz\""));
        funcmond_http_send_body(job->req, 200, "OK", "application/octet-stream", (const char *)j->body, j->len);
    }
}

static void
cpu_dispose(struct funcmond_http_job *job)
{
    free(((struct cpu_job *)job)->body);
}

static void
cpu_client_left(struct funcmond_http_job *job)
{
    LOG_INFO("CPU profile of pid %d: its client went away; stopping it", (int)((struct cpu_job *)job)->pid);
}

static const struct funcmond_http_job_ops cpu_ops = {
    .finished = cpu_finished, .answer = cpu_answer, .dispose = cpu_dispose, .client_left = cpu_client_left};

/* The one live process a profile is about: ?pid=, or the only one attached. */
static int
pick_process(struct funcmond_http *h, const struct funcmond_http_query *q, int32_t *pid, char *err, size_t errlen)
{
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    uint32_t live = 0;
    int found = 0;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        if (v->procs[i].state != FUNCMOND_PROC_LIVE)
            continue;
        live++;
        if (q->pid > 0 && v->procs[i].pid == q->pid)
            found = 1;
        if (q->pid <= 0)
            *pid = v->procs[i].pid;
    }
    funcmond_view_end(h->reader);
    if (q->pid > 0) {
        if (!found)
            return snprintf(err, errlen, "no attached process with pid %ld", q->pid), 404;
        *pid = (int32_t)q->pid;
        return 0;
    }
    if (live == 0)
        return snprintf(err, errlen, "no attached process to profile"), 503;
    if (live > 1)
        return snprintf(err, errlen, "%u processes are attached: choose one with ?pid=", live), 400;
    return 0;
}

int
funcmond_http_get_cpu_profile(const struct funcmond_http_call *c)
{
    struct funcmond_http *h = c->h;
    h2o_req_t *req = c->req;
    const struct funcmond_http_query *q = c->query;
    char err[128];
    int32_t pid = 0;
    /* One at a time: each holds a perf event and a ring per thread of its target. */
    if (h->cpu_profiles > 0)
        return funcmond_http_send_error(req, 503, "a CPU profile is already being taken; try again when it is done", NULL, NULL);
    int status = pick_process(h, q, &pid, err, sizeof(err));
    if (status != 0)
        return funcmond_http_send_error(req, status, err, NULL, NULL);
    struct cpu_job *j = (struct cpu_job *)funcmond_http_job_new(c, sizeof(*j), &cpu_ops);
    if (j == NULL)
        return funcmond_http_send_error(req, 500, "out of memory", NULL, NULL);
    j->pid = pid;
    j->seconds = q->seconds > 0 ? (int)q->seconds : (int)h->cfg->cpu_profile_duration_s;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int ret = pthread_create(&t, &attr, cpu_thread, j);
    pthread_attr_destroy(&attr);
    if (ret != 0) {
        funcmond_http_job_abandon(&j->job);
        return funcmond_http_send_error(req, 503, "cannot start a profiling thread", NULL, NULL);
    }
    h->cpu_profiles++;
    /* A profile takes up to an hour: stop it when its client leaves. */
    funcmond_http_job_watch_client(&j->job);
    return 0;
}

/* ---- heap profile ---- */

/* One sample of the heap profile being built: a stack's frames as "package.name", innermost
 * first, then "service <name>" at the root. */
struct heap_ctx {
    struct funcmond_pprof *p;
    const struct funcmond_view *v;
    const char *service;
    char names[FUNCMOND_STACK_DEPTH_MAX + 2][FUNCMON_PACKAGE_MAX + FUNCMON_NAME_MAX + FUNCMON_SERVICE_MAX + 16];
};

static void
add_heap_sample(void *arg, const struct funcmond_stack_sample *s)
{
    struct heap_ctx *x = arg;
    const char *frames[FUNCMOND_STACK_DEPTH_MAX + 2];
    int n = 0;
    for (int i = 0; i < s->n_frames; i++) {
        uint32_t fn = s->frames[i];
        if (fn < x->v->n_fns)
            snprintf(x->names[n], sizeof(x->names[n]), "%s.%s", x->v->fns[fn].package, x->v->fns[fn].name);
        else
            snprintf(x->names[n], sizeof(x->names[n]), "<unknown function>");
        frames[n] = x->names[n];
        n++;
    }
    if (s->truncated) {
        snprintf(x->names[n], sizeof(x->names[n]), "%s", s->n_frames == 0 ? "<other stacks>" : "<callers not known yet>");
        frames[n] = x->names[n];
        n++;
    }
    snprintf(x->names[n], sizeof(x->names[n]), "service %s", x->service);
    frames[n] = x->names[n];
    n++;
    int64_t values[] = {(int64_t)s->alloc_count, (int64_t)s->alloc_bytes,
                        s->alloc_bytes > s->free_bytes ? (int64_t)(s->alloc_bytes - s->free_bytes) : 0};
    funcmond_pprof_add(x->p, frames, n, values);
}

/* Allocations per profiled-call stack of every attached process (live, or exited and still
 * listed), as a pprof heap profile: alloc_objects/alloc_space (what each stack allocated
 * itself during its calls) and inuse_space (allocated less freed). */
int
funcmond_http_get_heap_profile(const struct funcmond_http_call *c)
{
    struct funcmond_http *h = c->h;
    h2o_req_t *req = c->req;
    static const char *const types[] = {"alloc_objects", "alloc_space", "inuse_space"};
    static const char *const units[] = {"count", "bytes", "bytes"};
    struct heap_ctx *x = malloc(sizeof(*x));
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct funcmond_pprof *p = x != NULL ? funcmond_pprof_new(types, units, 3, "space", "bytes", 0) : NULL;
    int failed = p == NULL;
    for (uint32_t i = 0; !failed && i < v->n_procs; i++) {
        x->p = p;
        x->v = v;
        x->service = v->procs[i].service;
        failed = funcmond_stacks_walk(v->procs[i].stacks, v->procs[i].n_stacks, add_heap_sample, x) != 0;
    }
    uint64_t now = funcmond_real_ns(), start = v->start_real_ns;
    funcmond_view_end(h->reader);
    free(x);
    unsigned char *gz = NULL;
    size_t len = 0;
    if (failed || funcmond_pprof_finish(p, (int64_t)now, (int64_t)(now - start), &gz, &len) != 0) {
        if (p != NULL && failed)
            funcmond_pprof_free(p);
        return funcmond_http_send_error(req, 500, failed ? "out of memory" : "cannot encode the profile", NULL, NULL);
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL,
                   H2O_STRLIT("attachment; filename=\"heap.pb.gz\""));
    funcmond_http_send_body(req, 200, "OK", "application/octet-stream", (const char *)gz, len);
    free(gz);
    return 0;
}

/* ---- index ---- */

int
funcmond_http_get_pprof_index(const struct funcmond_http_call *c)
{
    struct funcmond_http *h = c->h;
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    char path[256];
    struct fval *o = fdoc_object(doc);
    fobj_str(doc, o, "name", "profile");
    snprintf(path, sizeof(path), "%s/pprof/profile?seconds=%u", h->cfg->profiling_path, h->cfg->cpu_profile_duration_s);
    fobj_str(doc, o, "path", path);
    fobj_str(doc, o, "description", "CPU profile of the attached process (perf cpu-clock sampling, call chains); ?seconds=, ?pid=");
    farr_push(doc, arr, o);
    o = fdoc_object(doc);
    fobj_str(doc, o, "name", "heap");
    snprintf(path, sizeof(path), "%s/pprof/heap", h->cfg->profiling_path);
    fobj_str(doc, o, "path", path);
    fobj_str(doc, o, "description", "bytes and blocks allocated per profiled function (allocation tracking)");
    farr_push(doc, arr, o);
    fobj_put(doc, root, "profiles", arr);
    fobj_u64(doc, root, "count", 2);
    int ret = funcmond_http_send_doc(c->req, 200, root);
    fdoc_free(doc);
    return ret;
}
