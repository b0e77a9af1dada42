/*
 * http_threads.c - GET /debug/threads, /debug/goroutines and /debug/inflight: what every
 * thread of the attached processes is doing now.
 *
 * The kernel knows every thread (/proc/<pid>/task); the view knows the profiled calls
 * running on the threads that have a ring. /threads joins the two as JSON, /goroutines
 * prints the same as text, innermost call first like a stack dump, and /inflight lists
 * only the calls, those running longer than ?min_ms=.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"

struct task_info {
    int32_t tid;
    char name[64];
    char state;
    double cpu_seconds;
};

/* /proc/<pid>/task/<tid>/stat of every thread of pid; returns how many (at most max). */
static int
read_tasks(int32_t pid, struct task_info *out, int max)
{
    char path[96], buf[1024];
    int n = 0;
    double tick = (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL && n < max;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/stat", (int)pid, e->d_name);
        if (funcmond_http_read_proc(path, buf, sizeof(buf)) <= 0)
            continue;
        char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
        if (open_paren == NULL || close_paren == NULL || close_paren < open_paren || close_paren[1] != ' ')
            continue;
        struct task_info *t = &out[n++];
        t->tid = (int32_t)strtol(e->d_name, NULL, 10);
        size_t nl = (size_t)(close_paren - open_paren - 1);
        if (nl >= sizeof(t->name))
            nl = sizeof(t->name) - 1;
        memcpy(t->name, open_paren + 1, nl);
        t->name[nl] = '\0';
        t->state = close_paren[2];
        char *f = close_paren + 3;
        unsigned long long ut = 0, st = 0;
        for (int field = 4; f != NULL && field < 14; field++)
            f = strchr(f + 1, ' ');
        if (f != NULL)
            sscanf(f + 1, "%llu %llu", &ut, &st);
        t->cpu_seconds = (double)(ut + st) / tick;
    }
    closedir(dir);
    return n;
}

static struct fval *
call_obj(struct fdoc *doc, const struct funcmond_view *v, const struct funcmond_call_view *c, uint64_t now)
{
    struct fval *o = fdoc_object(doc);
    if (c->fn < v->n_fns) {
        fobj_str(doc, o, "function", v->fns[c->fn].name);
        fobj_str(doc, o, "package", v->fns[c->fn].package);
    } else {
        fobj_str(doc, o, "function", "<unknown>");
        fobj_str(doc, o, "package", "");
    }
    fobj_u64(doc, o, "depth", c->depth);
    fobj_duration(doc, o, "elapsed", now > c->start_real_ns ? now - c->start_real_ns : 0);
    fobj_time(doc, o, "started", c->start_real_ns);
    return o;
}

static const struct funcmond_thread_view *
ring_thread(const struct funcmond_proc_view *p, int32_t tid)
{
    for (uint32_t i = 0; i < p->n_threads; i++)
        if (p->threads[i].tid == tid)
            return &p->threads[i];
    return NULL;
}

static int
get_threads(const struct funcmond_http_call *call, int as_text)
{
    struct funcmond_http *h = call->h;
    static struct task_info tasks[4096];
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    struct funcmond_buf text = {0};
    uint64_t now = funcmond_real_ns();
    uint32_t shown = 0;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        const struct funcmond_proc_view *p = &v->procs[i];
        if (p->state != FUNCMOND_PROC_LIVE)
            continue;
        shown++;
        int n = read_tasks(p->pid, tasks, 4096);
        struct fval *o = funcmond_http_process_base(doc, p), *ts = fdoc_array(doc);
        funcmond_buf_printf(&text, "process %d (%s): %d threads\n\n", (int)p->pid, p->service, n);
        for (int k = 0; k < n; k++) {
            struct fval *t = fdoc_object(doc), *calls = fdoc_array(doc);
            const struct funcmond_thread_view *rt = ring_thread(p, tasks[k].tid);
            fobj_i64(doc, t, "tid", tasks[k].tid);
            fobj_str(doc, t, "name", tasks[k].name);
            fobj_strn(doc, t, "state", &tasks[k].state, 1);
            fobj_double(doc, t, "cpu_seconds", tasks[k].cpu_seconds);
            funcmond_buf_printf(&text, "thread %d [%s] %c, %.2f s cpu%s\n", (int)tasks[k].tid, tasks[k].name, tasks[k].state,
                                tasks[k].cpu_seconds, rt != NULL && rt->depth ? ":" : "");
            for (uint32_t c = 0; rt != NULL && c < rt->n_calls; c++) {
                farr_push(doc, calls, call_obj(doc, v, &rt->calls[c], now));
                const struct funcmond_call_view *cv = &rt->calls[rt->n_calls - 1 - c]; /* innermost first, like a stack */
                char el[48];
                fdoc_go_duration(now > cv->start_real_ns ? now - cv->start_real_ns : 0, el, sizeof(el));
                funcmond_buf_printf(&text, "    %s.%s (running %s)\n", cv->fn < v->n_fns ? v->fns[cv->fn].package : "",
                                    cv->fn < v->n_fns ? v->fns[cv->fn].name : "<unknown>", el);
            }
            if (rt != NULL && rt->depth > rt->n_calls)
                funcmond_buf_printf(&text, "    ... %u more outer calls\n", rt->depth - rt->n_calls);
            fobj_u64(doc, t, "inflight_depth", rt != NULL ? rt->depth : 0);
            fobj_put(doc, t, "inflight", calls);
            farr_push(doc, ts, t);
        }
        funcmond_buf_printf(&text, "\n");
        fobj_put(doc, o, "threads", ts);
        fobj_u64(doc, o, "count", (uint64_t)n);
        farr_push(doc, arr, o);
    }
    fobj_put(doc, root, "processes", arr);
    fobj_u64(doc, root, "count", shown);
    funcmond_view_end(h->reader);
    int ret;
    if (as_text)
        funcmond_http_send_body(call->req, 200, "OK", "text/plain; charset=utf-8", text.data ? text.data : "", text.len);
    else
        funcmond_http_send_doc(call->req, 200, root);
    ret = 0;
    funcmond_buf_free(&text);
    fdoc_free(doc);
    return ret;
}

int
funcmond_http_get_threads(const struct funcmond_http_call *c)
{
    return get_threads(c, 0);
}

int
funcmond_http_get_goroutines(const struct funcmond_http_call *c)
{
    return get_threads(c, 1);
}

int
funcmond_http_get_inflight(const struct funcmond_http_call *call)
{
    struct funcmond_http *h = call->h;
    const struct funcmond_http_query *q = call->query;
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    uint64_t now = funcmond_real_ns(), min_ns = q->min_ms > 0 ? (uint64_t)q->min_ms * 1000000u : 0, n = 0;
    for (uint32_t i = 0; i < v->n_procs; i++) {
        const struct funcmond_proc_view *p = &v->procs[i];
        for (uint32_t t = 0; p->state == FUNCMOND_PROC_LIVE && t < p->n_threads; t++) {
            const struct funcmond_thread_view *th = &p->threads[t];
            for (uint32_t c = 0; c < th->n_calls; c++) {
                uint64_t elapsed = now > th->calls[c].start_real_ns ? now - th->calls[c].start_real_ns : 0;
                if (elapsed < min_ns)
                    continue;
                struct fval *o = call_obj(doc, v, &th->calls[c], now);
                fobj_i64(doc, o, "pid", p->pid);
                fobj_str(doc, o, "service", p->service);
                fobj_i64(doc, o, "tid", th->tid);
                fobj_str(doc, o, "thread", th->name);
                farr_push(doc, arr, o);
                n++;
            }
        }
    }
    fobj_put(doc, root, "calls", arr);
    fobj_u64(doc, root, "count", n);
    fobj_u64(doc, root, "min_ms", q->min_ms > 0 ? (uint64_t)q->min_ms : 0);
    funcmond_view_end(h->reader);
    int ret = funcmond_http_send_doc(call->req, 200, root);
    fdoc_free(doc);
    return ret;
}
