/*
 * http_stats.c - GET /debug/stats: per process, its uptime, threads, memory, CPU time and
 * what funcmond read from it (records, drops); and what funcmond's drain loop runs on
 * ("event_loop": "io_uring", or "epoll" where io_uring is refused).
 *
 * Everything comes from the view the drain thread published: answering reads no /proc
 * file and waits for no one.
 */
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"

static void
fill_stats(struct fdoc *doc, struct fval *o, const struct funcmond_view *v, const struct funcmond_proc_view *p)
{
    uint64_t now = funcmond_real_ns();
    double tick = (double)sysconf(_SC_CLK_TCK);
    uint64_t start = p->rt.start_real_ns, end = p->state == FUNCMOND_PROC_LIVE ? now : p->ended_real_ns;
    (void)v;
    fobj_duration(doc, o, "uptime", start != 0 && end > start ? end - start : 0);
    fobj_u64(doc, o, "threads", p->rt.threads);
    fobj_put(doc, o, "memory", funcmond_http_alloc_obj(doc, &p->rt));
    fobj_u64(doc, o, "rss", p->rt.rss_bytes);
    fobj_double(doc, o, "cpu_user_seconds", (double)p->rt.utime_ticks / tick);
    fobj_double(doc, o, "cpu_system_seconds", (double)p->rt.stime_ticks / tick);
    fobj_u64(doc, o, "open_fds", p->rt.open_fds);
    fobj_u64(doc, o, "records", p->records);
    fobj_u64(doc, o, "drops", p->dropped);
}

static void
fill_sidecar(struct fdoc *doc, struct fval *root, const struct funcmond_view *v)
{
    fobj_str(doc, root, "event_loop", funcmond_event_loop_name(v->event_loop));
}

int
funcmond_http_get_stats(const struct funcmond_http_call *c)
{
    return funcmond_http_answer_processes(c, fill_stats, fill_sidecar);
}
