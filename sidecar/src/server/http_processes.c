/*
 * http_processes.c - GET /debug/processes, the clients funcmond is attached to, and the
 * shape every per-process answer shares.
 *
 * stats, memory, threads and processes all answer {"processes": [...], "count": N} with
 * each process introduced the same way (pid, service, state); that shape lives here once,
 * and each family adds its own fields through a fill callback. So does the one way the
 * families read a small /proc file of a client.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "http_internal.h"

static const char *
state_name(enum funcmond_proc_state s)
{
    return s == FUNCMOND_PROC_LIVE ? "running" : s == FUNCMOND_PROC_SHUTDOWN ? "shut down" : "exited";
}

struct fval *
funcmond_http_process_base(struct fdoc *doc, const struct funcmond_proc_view *p)
{
    struct fval *o = fdoc_object(doc);
    fobj_i64(doc, o, "pid", p->pid);
    fobj_str(doc, o, "service", p->service);
    fobj_str(doc, o, "state", state_name(p->state));
    return o;
}

struct fval *
funcmond_http_alloc_obj(struct fdoc *doc, const struct funcmond_runtime *rt)
{
    struct fval *m = fdoc_object(doc);
    fobj_u64(doc, m, "in_use", rt->alloc.in_use);
    fobj_u64(doc, m, "system", rt->alloc.system);
    fobj_u64(doc, m, "free", rt->alloc.free);
    fobj_u64(doc, m, "releasable", rt->alloc.releasable);
    fobj_u64(doc, m, "mmapped", rt->alloc.mmapped);
    if (rt->have_alloc && rt->totals.alloc_count != 0) {
        fobj_u64(doc, m, "live_objects", rt->totals.alloc_count - rt->totals.free_count);
        fobj_u64(doc, m, "total_allocated", rt->totals.alloc_bytes);
        fobj_u64(doc, m, "total_freed", rt->totals.free_bytes);
    }
    fobj_time(doc, m, "sampled", rt->alloc.sampled_real_ns);
    return m;
}

/* One object per process, built by `fill`: the common shape of stats, memory and
 * processes, {"processes": [...], "count": N}, and what `top` adds. */
int
funcmond_http_answer_processes(const struct funcmond_http_call *c,
                               void (*fill)(struct fdoc *doc, struct fval *o, const struct funcmond_view *v,
                                            const struct funcmond_proc_view *p),
                               void (*top)(struct fdoc *doc, struct fval *root, const struct funcmond_view *v))
{
    struct funcmond_http *h = c->h;
    const struct funcmond_view *v = funcmond_view_begin(h->reader);
    struct fdoc *doc = fdoc_new();
    struct fval *root = fdoc_object(doc), *arr = fdoc_array(doc);
    for (uint32_t i = 0; i < v->n_procs; i++) {
        struct fval *o = funcmond_http_process_base(doc, &v->procs[i]);
        fill(doc, o, v, &v->procs[i]);
        farr_push(doc, arr, o);
    }
    fobj_put(doc, root, "processes", arr);
    fobj_u64(doc, root, "count", v->n_procs);
    if (top != NULL)
        top(doc, root, v);
    funcmond_view_end(h->reader);
    int ret = funcmond_http_send_doc(c->req, 200, root);
    fdoc_free(doc);
    return ret;
}

static void
fill_process(struct fdoc *doc, struct fval *o, const struct funcmond_view *v, const struct funcmond_proc_view *p)
{
    (void)v;
    fobj_str(doc, o, "segment", p->segment);
    fobj_u64(doc, o, "rings", p->rings_active);
    fobj_u64(doc, o, "rings_total", p->rings_total);
    fobj_u64(doc, o, "pool_chunks", p->pool_chunks);
    fobj_u64(doc, o, "pool_chunks_used", p->pool_chunks_used);
    fobj_u64(doc, o, "records", p->records);
    fobj_u64(doc, o, "drops", p->dropped);
    fobj_u64(doc, o, "bad_records", p->bad_records);
    fobj_u64(doc, o, "calls_without_ring", p->fallback_calls);
    fobj_time(doc, o, "attached", p->attached_real_ns);
    fobj_time(doc, o, "ended", p->ended_real_ns);
}

int
funcmond_http_get_processes(const struct funcmond_http_call *c)
{
    return funcmond_http_answer_processes(c, fill_process, NULL);
}

ssize_t
funcmond_http_read_proc(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = '\0';
    return n;
}
