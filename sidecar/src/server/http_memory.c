/*
 * http_memory.c - GET /debug/memory, where each attached process's memory goes, and
 * POST /debug/gc, which asks every client to give free memory back (malloc_trim).
 *
 * /memory adds to the view's allocator figures what only /proc knows now (status and
 * smaps_rollup of a live process) and the service's functions that allocated most. A trim
 * is carried out by the drain thread, which talks to the clients: the request is queued
 * there and answered when every client answered or timed out (a second at most), as a
 * job, so that no other request waits for it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_internal.h"

static void
proc_kb_fields(struct fdoc *doc, struct fval *o, int32_t pid, const char *file, const char *const *keys)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    if (funcmond_http_read_proc(path, buf, sizeof(buf)) <= 0)
        return;
    for (int i = 0; keys[i] != NULL; i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "\n%s:", keys[i]);
        const char *at = strstr(buf, needle);
        if (at == NULL && strncmp(buf, needle + 1, strlen(needle) - 1) == 0)
            at = buf - 1;
        if (at == NULL)
            continue;
        char lower[64];
        size_t k = 0;
        for (; keys[i][k] != '\0' && k < sizeof(lower) - 1; k++)
            lower[k] = (char)(keys[i][k] >= 'A' && keys[i][k] <= 'Z' ? keys[i][k] + 32 : keys[i][k]);
        lower[k] = '\0';
        fobj_u64(doc, o, lower, strtoull(at + strlen(needle), NULL, 10) * 1024);
    }
}

static void
fill_memory(struct fdoc *doc, struct fval *o, const struct funcmond_view *v, const struct funcmond_proc_view *p)
{
    static const char *const status_keys[] = {"VmPeak",   "VmSize", "VmHWM", "VmRSS",  "RssAnon", "RssFile",
                                              "RssShmem", "VmData", "VmStk", "VmSwap", NULL};
    static const char *const smaps_keys[] = {
        "Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Anonymous", "Swap", NULL};
    fobj_u64(doc, o, "rss", p->rt.rss_bytes);
    fobj_u64(doc, o, "virtual", p->rt.vm_bytes);
    if (p->state == FUNCMOND_PROC_LIVE) {
        struct fval *st = fdoc_object(doc), *sm = fdoc_object(doc);
        proc_kb_fields(doc, st, p->pid, "status", status_keys);
        proc_kb_fields(doc, sm, p->pid, "smaps_rollup", smaps_keys);
        fobj_put(doc, o, "status", st);
        fobj_put(doc, o, "smaps_rollup", sm);
    }
    fobj_put(doc, o, "allocator", funcmond_http_alloc_obj(doc, &p->rt));
    /* the service's functions that allocated most */
    uint32_t top[10], n = 0;
    for (uint32_t k = 0; k < v->n_fns; k++) {
        const struct funcmond_fn_view *f = &v->fns[k];
        if (f->total_bytes == 0 || strcmp(f->service, p->service) != 0)
            continue;
        uint32_t at = n < 10 ? n++ : 10;
        while (at > 0 && v->fns[top[at - 1]].total_bytes < f->total_bytes) {
            if (at < 10)
                top[at] = top[at - 1];
            at--;
        }
        if (at < 10)
            top[at] = k;
    }
    struct fval *tops = fdoc_array(doc);
    for (uint32_t k = 0; k < n; k++) {
        struct fval *t = fdoc_object(doc);
        fobj_str(doc, t, "name", v->fns[top[k]].name);
        fobj_str(doc, t, "package", v->fns[top[k]].package);
        fobj_u64(doc, t, "total_memory", v->fns[top[k]].total_bytes);
        fobj_u64(doc, t, "max_memory", v->fns[top[k]].max_bytes);
        fobj_u64(doc, t, "freed_memory", v->fns[top[k]].freed_bytes);
        farr_push(doc, tops, t);
    }
    fobj_put(doc, o, "top_functions", tops);
}

int
funcmond_http_get_memory(const struct funcmond_http_call *c)
{
    return funcmond_http_answer_processes(c, fill_memory, NULL);
}

/* ---- POST gc ---- */

struct trim_job {
    struct funcmond_http_job job; /* first */
    struct funcmond_trim_job trim;
};

/* On the drain thread: every client answered or timed out. */
static void
on_trim_finished(struct funcmond_trim_job *tj)
{
    struct trim_job *j = tj->arg;
    funcmond_http_job_post(&j->job); /* to the HTTP thread */
}

static void
trim_finished(struct funcmond_http_job *job)
{
    job->h->trims--;
}

static void
stats_obj(struct fdoc *doc, struct fval *o, const char *key, const struct funcmon_alloc_stats *s)
{
    struct fval *m = fdoc_object(doc);
    fobj_u64(doc, m, "rss", s->rss);
    fobj_u64(doc, m, "system", s->system);
    fobj_u64(doc, m, "in_use", s->in_use);
    fobj_u64(doc, m, "free", s->free);
    fobj_u64(doc, m, "releasable", s->releasable);
    fobj_put(doc, o, key, m);
}

static void
answer_trim(struct funcmond_http_job *job)
{
    const struct trim_job *j = (const struct trim_job *)job;
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    int64_t before = 0, after = 0;
    uint32_t ok = 0;
    for (uint32_t i = 0; i < j->trim.n; i++) {
        const struct funcmond_trim_result *r = &j->trim.results[i];
        struct fval *o = fdoc_object(doc);
        fobj_i64(doc, o, "pid", r->pid);
        fobj_str(doc, o, "service", r->service);
        if (r->status == 0) {
            ok++;
            fobj_str(doc, o, "status", "trimmed");
            stats_obj(doc, o, "before", &r->before);
            stats_obj(doc, o, "after", &r->after);
            /* signed: memory can grow between the two samples */
            int64_t freed = (int64_t)r->before.rss - (int64_t)r->after.rss;
            fobj_i64(doc, o, "freed", freed);
            before += (int64_t)r->before.rss;
            after += (int64_t)r->after.rss;
        } else {
            fobj_str(doc, o, "status", r->status == -ETIMEDOUT ? "no answer within 1 s" : strerror(-r->status));
        }
        farr_push(doc, arr, o);
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "asked %u process(es) to release free memory (malloc_trim); %u answered", j->trim.n, ok);
    fobj_str(doc, root, "message", msg);
    fobj_i64(doc, root, "before", before);
    fobj_i64(doc, root, "after", after);
    fobj_i64(doc, root, "freed", before - after);
    fobj_put(doc, root, "processes", arr);
    fobj_u64(doc, root, "count", j->trim.n);
    funcmond_http_send_doc(job->req, 200, root);
    fdoc_free(doc);
}

static const struct funcmond_http_job_ops trim_ops = {.finished = trim_finished, .answer = answer_trim};

int
funcmond_http_post_gc(const struct funcmond_http_call *c)
{
    struct funcmond_http *h = c->h;
    if (h->trims > 0) /* a client that does not answer holds a trim for a second: no pile-up */
        return funcmond_http_send_error(c->req, 503, "a trim is already in progress; try again in a second", NULL, NULL);
    struct trim_job *j = (struct trim_job *)funcmond_http_job_new(c, sizeof(*j), &trim_ops);
    if (j == NULL)
        return funcmond_http_send_error(c->req, 500, "out of memory", NULL, NULL);
    j->trim.done = on_trim_finished;
    j->trim.arg = j;
    if (funcmond_request_trim(h->requests, &j->trim) != 0) {
        funcmond_http_job_abandon(&j->job);
        return funcmond_http_send_error(c->req, 503, "the sidecar is stopping", NULL, NULL);
    }
    h->trims++;
    return 0;
}
