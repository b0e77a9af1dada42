/*
 * pprof_sampler.c - CPU sampling of another process's threads with perf events (see
 * pprof_sampler.h).
 *
 * Each thread's event has a ring the kernel fills with sample records; the sampler drains
 * every ring each 100 ms, or earlier when one is half full (poll wakes it), and counts
 * each distinct raw stack once in an open-addressing index (hash_index.h). Records come
 * from the kernel, but the ring is shared memory whose head we trust only as far as the
 * ring's size: every record length is checked before it is copied out.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "hash_index.h"
#include "pprof_sampler.h"

#define MAX_DEPTH FUNCMOND_SAMPLER_MAX_DEPTH
#define MAX_RAW_IPS (16u << 20)      /* addresses kept over all distinct stacks (128 MiB) */
#define MAX_THREADS 8192             /* threads followed at once */
#define RING_DATA_PAGES 8            /* per thread; halved down to 1 if the locked-memory limit refuses */
#define RECORD_MAX 65536             /* bytes of the largest record (its size is a u16) */
#define SCAN_INTERVAL_NS 100000000ll /* rescan /proc/<pid>/task and drain every ring */

struct perf_thread {
    pid_t tid;
    int fd;     /* -1: could not be opened, or exited */
    int seen;   /* listed by the last scan of /proc/<pid>/task */
    void *base; /* metadata page, then the data pages */
    size_t data_size;
};

struct raw_stack {
    size_t ips; /* position in ips */
    size_t n;
    uint64_t count;
};

struct funcmond_sampler {
    pid_t pid;
    int hz;
    int live;          /* threads with an open event */
    int64_t next_scan; /* CLOCK_MONOTONIC ns of the next look at /proc/<pid>/task */
    size_t page;
    size_t data_pages;           /* for the next thread; lowered if the locked-memory limit refuses */
    struct perf_thread *threads; /* by tid */
    size_t n_threads, cap_threads;
    struct pollfd *pfds;
    size_t cap_pfds;
    uint64_t *ips; /* addresses of all distinct stacks, leaf first */
    size_t n_ips, cap_ips;
    struct raw_stack *stacks;
    size_t n_stacks, cap_stacks;
    struct funcmond_hash_index index;
    struct funcmond_sampler_stats stats;
    int open_err; /* first failure to open a thread, -errno */
    const char *open_what;
    uint64_t *rec; /* one record, copied out of the ring */
    uint64_t stack[MAX_DEPTH];
};

static int
raw_eq(const void *ctx, uint32_t idx, const void *key)
{
    const struct funcmond_sampler *c = ctx;
    const struct raw_stack *s = &c->stacks[idx];

    return funcmond_id_run_eq(key, c->ips + s->ips, s->n);
}

static void
count_stack(struct funcmond_sampler *c, size_t n)
{
    struct funcmond_id_run k = {.ids = c->stack, .n = n};
    uint32_t h = funcmond_hash_bytes(c->stack, n * sizeof(*c->stack));
    struct funcmond_hash_slot *slot;

    c->stats.samples++;
    if (c->n_stacks >= UINT32_MAX - 1 || funcmond_hash_index_reserve(&c->index) < 0) {
        c->stats.dropped++;
        return;
    }
    slot = funcmond_hash_index_find(&c->index, h, raw_eq, c, &k);
    if (slot->idx1 != 0) {
        c->stacks[slot->idx1 - 1].count++;
        return;
    }
    if (c->n_ips + n > MAX_RAW_IPS || funcmond_array_reserve(&c->ips, &c->cap_ips, c->n_ips + n, sizeof(*c->ips)) < 0 ||
        funcmond_array_reserve(&c->stacks, &c->cap_stacks, c->n_stacks + 1, sizeof(*c->stacks)) < 0) {
        c->stats.dropped++;
        return;
    }
    memcpy(c->ips + c->n_ips, c->stack, n * sizeof(*c->stack));
    c->stacks[c->n_stacks] = (struct raw_stack){.ips = c->n_ips, .n = n, .count = 1};
    c->n_ips += n;
    funcmond_hash_index_insert(&c->index, slot, h, (uint32_t)c->n_stacks);
    c->n_stacks++;
}

/* One record of `size` bytes (header included, size >= header). Layout of a sample for
 * sample_type IP | TID | CALLCHAIN: u64 ip; u32 pid, tid; u64 nr; u64 ips[nr]. */
static void
on_record(struct funcmond_sampler *c, const unsigned char *rec, size_t size)
{
    struct perf_event_header h;
    uint64_t ip, nr, context = PERF_CONTEXT_USER;
    size_t n = 0;

    memcpy(&h, rec, sizeof(h));
    if (h.type == PERF_RECORD_LOST && size >= sizeof(h) + 16) {
        uint64_t lost;
        memcpy(&lost, rec + sizeof(h) + 8, sizeof(lost));
        c->stats.lost += lost;
        return;
    }
    if (h.type != PERF_RECORD_SAMPLE || size < sizeof(h) + 24)
        return;
    memcpy(&ip, rec + sizeof(h), sizeof(ip));
    memcpy(&nr, rec + sizeof(h) + 16, sizeof(nr));
    if (nr > (size - sizeof(h) - 24) / sizeof(uint64_t))
        nr = (size - sizeof(h) - 24) / sizeof(uint64_t);
    for (uint64_t i = 0; i < nr && n < MAX_DEPTH; i++) {
        uint64_t v;
        memcpy(&v, rec + sizeof(h) + 24 + i * sizeof(v), sizeof(v));
        if (v >= PERF_CONTEXT_MAX) { /* a marker: the following entries are from that context */
            context = v;
            continue;
        }
        if (context == PERF_CONTEXT_USER)
            c->stack[n++] = v;
    }
    if (n == 0 && ip != 0)
        c->stack[n++] = ip;
    if (n > 0)
        count_stack(c, n);
}

/* Copies len bytes at ring position pos (free-running) out of the data area. */
static void
ring_copy(void *dst, const unsigned char *data, size_t size, uint64_t pos, size_t len)
{
    size_t off = (size_t)(pos & (size - 1));
    size_t first = size - off < len ? size - off : len;

    memcpy(dst, data + off, first);
    memcpy((unsigned char *)dst + first, data, len - first); /* the part that wrapped */
}

/* Reads every complete record in t's ring and gives the space back to the kernel. */
static void
drain(struct funcmond_sampler *c, struct perf_thread *t)
{
    struct perf_event_mmap_page *pg = t->base;
    const unsigned char *data = (const unsigned char *)t->base + c->page;
    /* Acquire: pairs with the kernel's release of data_head after it wrote the records
     * (perf_output_put_handle), so the record bytes we read below are complete. */
    uint64_t head = __atomic_load_n(&pg->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = pg->data_tail; /* only we write it */

    if (head - tail > t->data_size) /* cannot happen with a sane kernel; resynchronise */
        tail = head;
    while (head - tail >= sizeof(struct perf_event_header)) {
        struct perf_event_header h;
        ring_copy(&h, data, t->data_size, tail, sizeof(h));
        if (h.size < sizeof(h) || h.size > head - tail) {
            tail = head;
            break;
        }
        ring_copy(c->rec, data, t->data_size, tail, h.size);
        on_record(c, (const unsigned char *)c->rec, h.size);
        tail += h.size;
    }
    /* Release: our reads of the records happen before the kernel sees the space free
     * (pairs with the full barrier in perf_output_begin before it reads data_tail). */
    __atomic_store_n(&pg->data_tail, tail, __ATOMIC_RELEASE);
}

static void
thread_close(struct funcmond_sampler *c, struct perf_thread *t)
{
    if (t->fd < 0)
        return;
    ioctl(t->fd, PERF_EVENT_IOC_DISABLE, 0);
    drain(c, t);
    munmap(t->base, c->page + t->data_size);
    close(t->fd);
    t->fd = -1;
    t->base = NULL;
}

/* Opens and enables the sampling event of one thread. Returns 0 or -errno; c->open_what
 * names the step that failed. */
static int
thread_open(struct funcmond_sampler *c, struct perf_thread *t)
{
    struct perf_event_attr a;
    int fd, err;

    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_CPU_CLOCK;
    a.sample_freq = (uint64_t)c->hz;
    a.freq = 1; /* cpu-clock turns this into a fixed period of 1e9 / hz ns */
    a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_CALLCHAIN;
    a.disabled = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    a.exclude_callchain_kernel = 1;
    a.watermark = 1; /* wake poll() when the ring is half full (wakeup_watermark 0) */
    fd = (int)syscall(SYS_perf_event_open, &a, t->tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        c->open_what = "perf_event_open";
        return -errno;
    }
    for (;;) {
        size_t len = c->page * (1 + c->data_pages);
        void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base != MAP_FAILED) {
            t->fd = fd;
            t->base = base;
            t->data_size = c->page * c->data_pages;
            break;
        }
        err = errno;
        if ((err != EPERM && err != ENOMEM) || c->data_pages == 1) {
            close(fd);
            c->open_what = "mmap of the perf ring";
            return -err;
        }
        c->data_pages /= 2; /* over the locked-memory allowance: smaller rings for this and later threads */
    }
    if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        err = errno;
        thread_close(c, t);
        c->open_what = "PERF_EVENT_IOC_ENABLE";
        return -err;
    }
    return 0;
}

static int
thread_cmp(const void *a, const void *b)
{
    const struct perf_thread *x = a, *y = b;

    return (x->tid > y->tid) - (x->tid < y->tid);
}

/* Opens events for the threads of the target not yet followed, and forgets threads that
 * are gone. Returns the number of threads with an open event, or -errno if the task list
 * cannot be read (-ESRCH: the process is gone). */
static int
scan_threads(struct funcmond_sampler *c)
{
    char path[64];
    struct dirent *de;
    DIR *d;
    size_t n_old = c->n_threads, live = 0, w = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)c->pid);
    if ((d = opendir(path)) == NULL)
        return errno == ENOENT ? -ESRCH : -errno;
    for (size_t i = 0; i < c->n_threads; i++)
        c->threads[i].seen = 0;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long tid = strtol(de->d_name, &end, 10);
        struct perf_thread key = {.tid = (pid_t)tid}, *t;

        if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end != '\0' || tid <= 0 || tid > INT_MAX)
            continue;
        if (n_old > 0 && (t = bsearch(&key, c->threads, n_old, sizeof(*t), thread_cmp)) != NULL) {
            t->seen = 1;
            continue;
        }
        if (c->n_threads >= MAX_THREADS || funcmond_array_reserve(&c->threads, &c->cap_threads, c->n_threads + 1, sizeof(*t)) < 0) {
            c->stats.over_limit = 1;
            continue;
        }
        t = &c->threads[c->n_threads++];
        *t = (struct perf_thread){.tid = (pid_t)tid, .fd = -1, .seen = 1};
        int rc = thread_open(c, t);
        if (rc < 0 && c->open_err == 0)
            c->open_err = rc;
        if (rc < 0 && rc != -ESRCH) { /* ESRCH: the thread exited in between */
            c->stats.unfollowed++;
            if (c->stats.follow_err == 0)
                c->stats.follow_err = rc;
        }
    }
    closedir(d);
    /* Keep open events (their exit shows as POLLHUP) and threads still listed; drop the
     * rest so the list does not grow with every short-lived thread. */
    for (size_t i = 0; i < c->n_threads; i++) {
        if (c->threads[i].fd < 0 && !c->threads[i].seen)
            continue;
        live += c->threads[i].fd >= 0;
        c->threads[w++] = c->threads[i];
    }
    c->n_threads = w;
    qsort(c->threads, c->n_threads, sizeof(*c->threads), thread_cmp);
    return (int)live;
}

static int
read_int_file(const char *path, int dflt)
{
    FILE *fp = fopen(path, "re");
    int v = dflt;

    if (fp != NULL) {
        if (fscanf(fp, "%d", &v) != 1)
            v = dflt;
        fclose(fp);
    }
    return v;
}

/* The one-line reason for a failure to open the first thread. */
static void
open_error(const struct funcmond_sampler *c, int rc, char *err, size_t errlen)
{
    const char *what = c->open_what ? c->open_what : "perf_event_open";
    char paranoid[96];

    switch (-rc) {
    case EACCES:
    case EPERM:
        if (strcmp(what, "perf_event_open") == 0) {
            snprintf(paranoid, sizeof(paranoid), "kernel.perf_event_paranoid=%d; needs the same uid or CAP_PERFMON",
                     read_int_file("/proc/sys/kernel/perf_event_paranoid", -9));
            snprintf(err, errlen, "%s on pid %d: %s (%s)", what, (int)c->pid, strerror(-rc), paranoid);
        } else {
            snprintf(err, errlen, "%s: %s (locked memory over kernel.perf_event_mlock_kb and RLIMIT_MEMLOCK)", what, strerror(-rc));
        }
        break;
    case ESRCH:
        snprintf(err, errlen, "%s on pid %d: %s (the process exited)", what, (int)c->pid, strerror(-rc));
        break;
    case ENOENT:
    case ENODEV:
    case EOPNOTSUPP:
    case ENOSYS:
        snprintf(err, errlen, "%s: %s (no software cpu-clock perf events on this kernel)", what, strerror(-rc));
        break;
    case EINVAL:
        snprintf(err, errlen, "%s: %s (hz %d over kernel.perf_event_max_sample_rate?)", what, strerror(-rc), c->hz);
        break;
    default:
        snprintf(err, errlen, "%s on pid %d: %s", what, (int)c->pid, strerror(-rc));
        break;
    }
}

int
funcmond_sampler_start(pid_t pid, int hz, struct funcmond_sampler **out, char *err, size_t errlen)
{
    struct funcmond_sampler *c;
    int rc;

    if (out == NULL || err == NULL || errlen == 0)
        return -EINVAL;
    *out = NULL;
    err[0] = '\0';
    if (pid <= 0 || hz < 1) {
        snprintf(err, errlen, "invalid argument (pid %d, hz %d)", (int)pid, hz);
        return -EINVAL;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->rec = malloc(RECORD_MAX)) == NULL) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->pid = pid;
    c->hz = hz;
    c->page = (size_t)sysconf(_SC_PAGESIZE);
    c->data_pages = RING_DATA_PAGES;
    c->next_scan = (int64_t)funcmond_mono_ns() + SCAN_INTERVAL_NS;
    c->live = scan_threads(c);
    if (c->live <= 0) {
        rc = c->live < 0 ? c->live : c->open_err ? c->open_err : -ESRCH;
        if (c->live < 0 || c->open_err == 0)
            snprintf(err, errlen, "no process %d", (int)pid);
        else
            open_error(c, rc, err, errlen);
        funcmond_sampler_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int
funcmond_sampler_run(struct funcmond_sampler *c, int64_t deadline_ns, const volatile int *cancel)
{
    int64_t now;

    while (c->live > 0) {
        /* set by another thread (the HTTP thread, when the client leaves) */
        if (cancel != NULL && __atomic_load_n(cancel, __ATOMIC_ACQUIRE))
            return -ECANCELED;
        now = (int64_t)funcmond_mono_ns();
        if (now >= deadline_ns)
            break;
        if (now >= c->next_scan) {
            int live = scan_threads(c);
            if (live < 0) {
                c->live = 0;
                break; /* the process is gone: what was counted is the profile */
            }
            c->live = live;
            c->next_scan = now + SCAN_INTERVAL_NS;
        }
        if (funcmond_array_reserve(&c->pfds, &c->cap_pfds, c->n_threads, sizeof(*c->pfds)) < 0)
            return -ENOMEM;
        for (size_t i = 0; i < c->n_threads; i++) /* poll ignores fd -1 */
            c->pfds[i] = (struct pollfd){.fd = c->threads[i].fd, .events = POLLIN};
        int64_t wake = c->next_scan < deadline_ns ? c->next_scan : deadline_ns;
        poll(c->pfds, c->n_threads, (int)((wake - now + 999999) / 1000000));
        for (size_t i = 0; i < c->n_threads; i++) {
            struct perf_thread *t = &c->threads[i];
            if (t->fd < 0)
                continue;
            drain(c, t);
            if (c->pfds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) { /* the thread exited */
                thread_close(c, t);
                c->live--;
            }
        }
    }
    return 0;
}

void
funcmond_sampler_stop(struct funcmond_sampler *c)
{
    for (size_t i = 0; i < c->n_threads; i++)
        thread_close(c, &c->threads[i]);
    c->live = 0;
}

size_t
funcmond_sampler_n_stacks(const struct funcmond_sampler *c)
{
    return c->n_stacks;
}

const uint64_t *
funcmond_sampler_stack(const struct funcmond_sampler *c, size_t i, size_t *n, uint64_t *count)
{
    const struct raw_stack *s = &c->stacks[i];

    *n = s->n;
    *count = s->count;
    return c->ips + s->ips;
}

const struct funcmond_sampler_stats *
funcmond_sampler_stats(const struct funcmond_sampler *c)
{
    return &c->stats;
}

void
funcmond_sampler_free(struct funcmond_sampler *c)
{
    if (c == NULL)
        return;
    funcmond_sampler_stop(c);
    free(c->threads);
    free(c->pfds);
    free(c->ips);
    free(c->stacks);
    funcmond_hash_index_free(&c->index);
    free(c->rec);
    free(c);
}
