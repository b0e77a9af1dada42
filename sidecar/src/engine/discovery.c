/*
 * discovery.c - finding client segments, checking them, attaching, and letting them go.
 *
 * Segments appear as files "<SHM_PREFIX>.<service>.<pid>" in SHM_DIR (/dev/shm). They are
 * found at start by a scan, as they appear by inotify (its reads go through the event
 * loop), and by a slow rescan as a safety net for missed events. A new file is usually
 * still being written (the client stores the magic last): it stays pending and is looked
 * at again on every tick for up to 10 seconds.
 *
 * A segment is untrusted input. It is attached only if it is a regular file owned by our
 * user (unless SIDECAR.ALLOW_OTHER_UIDS; both seen by lstat before anything is opened),
 * passes funcmon_validate_segment, and its pid matches its name. Anything else is
 * rejected once, counted and logged with the reason (at a bounded rate), and not looked
 * at again unless the file is replaced.
 *
 * No client is lost for want of a resource: a segment that finds every SIGBUS guard entry
 * taken (after the process that ended longest ago was let go), or no fd or memory, waits
 * untouched and is looked at again at every tick until it is attached. No segment is left
 * behind either: when funcmond stops, those of ended processes go at once (read to the
 * end); a live client's stays for the next run, or for the client to remove at its exit.
 *
 * When a client exits (pidfd, or /proc start time where pidfds are unavailable, so a
 * reused pid is not mistaken for the same process) or shuts funcmon down, its segment is
 * drained to the last record and the process stays listed for EXITED_RETENTION_S; then
 * the segment is unmapped and unlinked, unless the name now belongs to a newer file.
 *
 * The announcement "<SHM_PREFIX>-sidecar" tells clients a sidecar runs (its pid); an
 * exclusive flock on it, held for funcmond's lifetime, keeps a second one off the prefix.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "funcmon/process.h"
#include "clock.h"
#include "log.h"
#include "ingest.h"
#include "procfs.h"
#include "sidecar.h"
#include "snapshot.h"

#define PENDING_GIVE_UP_NS (10 * FUNCMOND_SECOND_NS)

static void
announce_path(const struct funcmond *d, char *path, size_t size)
{
    snprintf(path, size, "%s/%s-sidecar", d->cfg.shm_dir, d->cfg.shm_prefix);
}

/* The announcement is also the lock that keeps a second funcmond off the prefix: two would
 * drain the same rings, and one that failed to start would unlink the other's announcement
 * (clients then unlink segments funcmond had not collected yet). So the lock is taken
 * before anything else, and the file is only written or removed by its holder. */
int
funcmond_discovery_lock(struct funcmond *d, int *holder)
{
    char path[FUNCMOND_PATH_MAX + 96], buf[32];
    struct stat st, now;

    *holder = 0;
    if (d->lock_held)
        return 0;
    announce_path(d, path, sizeof(path));
    for (int tries = 0; tries < 10; tries++) {
        /* O_NONBLOCK: a FIFO planted there must not make us wait. */
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return -EINVAL;
        }
        /* Another user's file there (SHM_DIR is writable by all) could hold the lock, or
         * name a pid, in our place: it is refused, not trusted. */
        if (st.st_uid != geteuid()) {
            close(fd);
            return -EPERM;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = -errno;
            if (err == -EWOULDBLOCK) {
                ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
                buf[n > 0 ? n : 0] = '\0';
                long pid = strtol(buf, NULL, 10);
                *holder = pid > 0 && pid <= INT32_MAX ? (int)pid : 0;
            }
            close(fd);
            return err;
        }
        /* The holder before us may have unlinked the file between our open and our lock:
         * a lock on a name nobody sees any more excludes no one. Then take the new one. */
        if (lstat(path, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
            d->lock_fd = fd;
            d->lock_held = 1;
            /* Our pid at once, so a funcmond refused meanwhile names us, not an old one.
             * Written over the old content, then cut: a client never reads it empty. */
            int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
            if (pwrite(fd, buf, (size_t)len, 0) != len || ftruncate(fd, len) != 0)
                LOG_WARN("cannot announce the sidecar in %s: %s", path, strerror(errno));
            return 0;
        }
        close(fd);
    }
    return -EBUSY; /* replaced ten times in a row: something else is at work there */
}

void
funcmond_discovery_unlock(struct funcmond *d)
{
    char path[FUNCMOND_PATH_MAX + 96];
    struct stat st, now;

    if (!d->lock_held)
        return;
    announce_path(d, path, sizeof(path));
    /* Unlinked while still locked, so the next funcmond never locks a file on its way out. */
    if (fstat(d->lock_fd, &st) == 0 && lstat(path, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino)
        unlink(path);
    close(d->lock_fd);
    d->lock_fd = -1;
    d->lock_held = 0;
}

/* The segment stops naming us (pid self) as its consumer, unless another reader has taken
 * it over since. Pairs with the client's acquire load of consumer_pid in
 * funcmon__segment_retire (client/src/segment.c): a client retiring after this sees no
 * consumer alive and removes its segment itself. */
static void
disown(struct funcmond_process *p, int32_t self)
{
    __atomic_compare_exchange_n(&p->c.hdr->consumer_pid, &self, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Whether p's process has exited: its pidfd is readable from its exit on (before it is
 * reaped, when /proc still shows it); without one, its /proc start time. */
static int
has_exited(const struct funcmond_process *p)
{
    if (p->pidfd >= 0) {
        struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
        return poll(&pfd, 1, 0) == 1;
    }
    return funcmond_process_gone(p->pid, p->proc_start_time);
}

void
funcmond_discovery_withdraw(struct funcmond *d)
{
    if (d->lock_held && ftruncate(d->lock_fd, 0) != 0)
        LOG_WARN("cannot empty the announcement: %s", strerror(errno));
    int32_t self = (int32_t)getpid();
    for (struct funcmond_process *p = d->procs; p != NULL; p = p->next) {
        if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
            continue;
        disown(p, self);
        /* Exited before it could see that (it left its segment to us), or after (it removed
         * the name itself; our mapping still reads it): either way drained here, to the end. */
        if (has_exited(p))
            funcmond_process_ended(d, p, FUNCMOND_PROC_EXITED);
    }
}

/* Announces this sidecar to clients: a client that shuts down before we attached leaves
 * its segment for us instead of unlinking it, so a short-lived process loses nothing.
 * The announcement is the lock's file, holding our pid (read by client/src/segment.c);
 * funcmond took it at start, a test running the loop in process may not have. */
static void
announce(struct funcmond *d)
{
    char path[FUNCMOND_PATH_MAX + 96];
    int holder, err = funcmond_discovery_lock(d, &holder);

    if (err != 0) {
        announce_path(d, path, sizeof(path));
        LOG_WARN("cannot announce the sidecar in %s: %s", path, strerror(-err));
    }
}

int
funcmond_discovery_init(struct funcmond *d)
{
    announce(d);
    d->inotify_fd = inotify_init1(IN_CLOEXEC); /* read through the loop, only once readable */
    if (d->inotify_fd < 0)
        return -errno;
    if (inotify_add_watch(d->inotify_fd, d->cfg.shm_dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) < 0) {
        int err = -errno;
        close(d->inotify_fd);
        d->inotify_fd = -1;
        return err;
    }
    return 0;
}

static int
has_prefix(const struct funcmond *d, const char *name)
{
    size_t n = strlen(d->cfg.shm_prefix);
    return strncmp(name, d->cfg.shm_prefix, n) == 0 && name[n] == '.';
}

/* Lines about rejected or waiting segments: at most this many a second; the rest are
 * summed up in one line a second later. A flood of hostile files cannot flood the log. */
#define REJECT_LINES_PER_S 20

static void
flush_suppressed(struct funcmond *d, uint64_t now)
{
    if (now - d->log_window_mono_ns < FUNCMOND_SECOND_NS)
        return;
    if (d->log_suppressed > 0)
        LOG_WARN("%llu more segment rejections or waits not logged (at most %d lines a second)",
                 (unsigned long long)d->log_suppressed, REJECT_LINES_PER_S);
    d->log_suppressed = 0;
    d->log_lines = 0;
    d->log_window_mono_ns = now;
}

static int
may_log(struct funcmond *d)
{
    flush_suppressed(d, funcmond_mono_ns());
    if (d->log_lines < REJECT_LINES_PER_S) {
        d->log_lines++;
        return 1;
    }
    d->log_suppressed++;
    return 0;
}

/*
 * Files rejected for good, remembered as a 64-bit hash of (device, inode, name): each is
 * counted and logged once however often a rescan meets it, for 8 bytes. A replaced file
 * (a new inode) is looked at afresh; one rewritten in place is not. Open addressing, at most
 * half full; past SEEN_MAX files, further ones are rejected again at each look (each time
 * counted, the lines still rate-limited).
 */
#define SEEN_MAX (1u << 16)

struct funcmond_seen {
    uint64_t *keys; /* 0: free */
    size_t cap;     /* a power of two */
    size_t n;
    int full_logged;
};

static uint64_t
mix64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

static uint64_t
seen_key(const char *name, const struct stat *st)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    if (st != NULL) {
        h = mix64(h, (uint64_t)st->st_dev);
        h = mix64(h, (uint64_t)st->st_ino);
    }
    return h != 0 ? h : 1;
}

static int
seen_has(const struct funcmond *d, uint64_t key)
{
    const struct funcmond_seen *t = d->seen;
    if (t == NULL)
        return 0;
    for (size_t i = key & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (t->keys[i] == key)
            return 1;
        if (t->keys[i] == 0)
            return 0;
    }
}

static void
seen_put(struct funcmond_seen *t, uint64_t key)
{
    size_t i = key & (t->cap - 1);
    while (t->keys[i] != 0 && t->keys[i] != key)
        i = (i + 1) & (t->cap - 1);
    t->n += t->keys[i] == 0;
    t->keys[i] = key;
}

/* Remembers key. Returns 0, -ENOSPC when SEEN_MAX files are remembered, or -ENOMEM. */
static int
seen_add(struct funcmond *d, uint64_t key)
{
    struct funcmond_seen *t = d->seen;
    if (t == NULL) {
        if ((t = calloc(1, sizeof(*t))) == NULL)
            return -ENOMEM;
        d->seen = t;
    }
    if ((t->n + 1) * 2 > t->cap) {
        if (t->cap >= 2 * (size_t)SEEN_MAX) {
            if (!t->full_logged)
                LOG_WARN("more than %u rejected segment files: further ones are looked at again at every rescan", SEEN_MAX);
            t->full_logged = 1;
            return -ENOSPC;
        }
        size_t cap = t->cap != 0 ? 2 * t->cap : 1024;
        uint64_t *keys = calloc(cap, sizeof(*keys)), *old = t->keys;
        if (keys == NULL)
            return -ENOMEM;
        size_t oldcap = t->cap;
        t->keys = keys;
        t->cap = cap;
        t->n = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] != 0)
                seen_put(t, old[i]);
        free(old);
    }
    seen_put(t, key);
    return 0;
}

void
funcmond_discovery_forget(struct funcmond *d)
{
    if (d->seen != NULL)
        free(d->seen->keys);
    free(d->seen);
    d->seen = NULL;
}

static struct funcmond_rejected *
find_rejected(struct funcmond *d, const char *name)
{
    for (struct funcmond_rejected *r = d->rejected; r != NULL; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

#define REMEMBERED_MAX 4096

/* Keeps `name` to be looked at again: not ready yet (for up to 10 s), or waiting for room. */
static struct funcmond_rejected *
remember(struct funcmond *d, const char *name, int waiting, uint64_t now)
{
    struct funcmond_rejected *r = find_rejected(d, name);
    if (r == NULL) {
        /* Bounded: past the cap the oldest entries go; a rescan finds them again. */
        size_t n = 0;
        for (struct funcmond_rejected **pp = &d->rejected; *pp != NULL; pp = &(*pp)->next) {
            if (++n >= REMEMBERED_MAX) {
                struct funcmond_rejected *rest = *pp;
                *pp = NULL;
                while (rest != NULL) {
                    struct funcmond_rejected *next = rest->next;
                    free(rest);
                    rest = next;
                }
                break;
            }
        }
        if ((r = calloc(1, sizeof(*r))) == NULL)
            return NULL;
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->first_seen_mono_ns = now;
        r->next = d->rejected;
        d->rejected = r;
    }
    r->not_ready = !waiting;
    r->waiting = waiting;
    return r;
}

static void
forget(struct funcmond *d, const char *name)
{
    for (struct funcmond_rejected **pp = &d->rejected; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, name) == 0) {
            struct funcmond_rejected *r = *pp;
            *pp = r->next;
            free(r);
            return;
        }
    }
}

/* Rejects a file for good: counted and logged the first time only. */
static void
reject(struct funcmond *d, const char *name, const struct stat *st, const char *why)
{
    uint64_t key = seen_key(name, st);
    forget(d, name);
    if (seen_has(d, key))
        return;
    (void)seen_add(d, key); /* if it cannot be remembered, it is rejected again at each look */
    d->counters.segments_rejected++;
    if (may_log(d))
        LOG_WARN("rejected segment %s: %s", name, why);
}

/* A valid-looking segment that cannot be attached for want of a resource (a guard entry,
 * an fd): nothing of it was read or written, so its client still owns it; it is looked at
 * again at every tick until it is attached. Counted and logged once. */
static void
defer(struct funcmond *d, const char *name, const char *why)
{
    struct funcmond_rejected *r = remember(d, name, 1, funcmond_mono_ns());
    if (r == NULL || r->logged)
        return;
    r->logged = 1;
    d->counters.segments_deferred++;
    if (may_log(d))
        LOG_WARN("segment %s waits: %s; attached as soon as there is room", name, why);
}

static int
already_attached(const struct funcmond *d, const struct stat *st)
{
    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        if (p->dev == st->st_dev && p->ino == st->st_ino)
            return 1;
    return 0;
}

static void
free_process(struct funcmond_process *p)
{
    if (p->spill_buckets_seen != NULL) /* before the consumer forgets max_sites */
        for (uint32_t site = 0; site < p->c.geo.max_sites; site++)
            free(p->spill_buckets_seen[site]);
    free(p->spill_buckets_seen);
    funcmon_consumer_close(&p->c);
    if (p->pidfd >= 0)
        close(p->pidfd);
    free(p->site_fn);
    free(p->spill_calls_seen);
    free(p->spill_errors_seen);
    free(p->spill_client_errors_seen);
    free(p->spill_ticks_seen);
    funcmond_stacks_free(&p->stacks);
    free(p);
}

/* Gives up a process attach has just mapped and claimed: the segment stops naming us as
 * its consumer (its client removes it then), and p is freed. */
static void
abandon(struct funcmond_process *p)
{
    disown(p, (int32_t)getpid());
    free_process(p);
}

/* Unlinks the segment file if it is still the one we mapped. */
static void
unlink_segment(const struct funcmond *d, const struct funcmond_process *p)
{
    char path[FUNCMOND_PATH_MAX + 256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", d->cfg.shm_dir, p->shm_name);
    if (lstat(path, &st) == 0 && st.st_dev == p->dev && st.st_ino == p->ino && unlink(path) != 0)
        LOG_WARN("cannot remove %s: %s", path, strerror(errno));
}

/* Starts letting p go: no more reads, its operations cancelled; freed by expire once the
 * kernel is done with it. A segment whose process ended is removed (it is read to the end). */
static void
let_go(struct funcmond *d, struct funcmond_process *p, int remove)
{
    if (p->detaching)
        return;
    funcmond_snapshot_remember_process(d, p); /* no more reads: what was counted is final */
    if (p->state == FUNCMOND_PROC_LIVE) {
        d->clients--;
        /* The client no longer has a consumer: when it exits it removes its segment itself
         * (unless a sidecar is announced), even if our pid is reused by then. */
        disown(p, (int32_t)getpid());
    }
    if (remove)
        unlink_segment(d, p);
    p->detaching = 1;
    funcmond_ingest_unwatch(d, p);
}

/*
 * Every guard entry is taken: frees one by letting go early of the process that ended
 * longest ago (read to its last record, only listed until its retention time). Live
 * clients are never let go for a newcomer. Returns 0 when an entry is free now, -EBUSY
 * when none is (yet: one on its way out comes back once the kernel is done with it).
 */
static int
make_room(struct funcmond *d)
{
    struct funcmond_process **oldest = NULL;
    for (struct funcmond_process **pp = &d->procs; *pp != NULL; pp = &(*pp)->next) {
        struct funcmond_process *p = *pp;
        if (p->detaching && p->ops_inflight > 0)
            return -EBUSY; /* one is on its way out already: its entry comes back shortly */
        /* One with a control request pending is answered (as timed out) at the next tick first. */
        if (p->state != FUNCMOND_PROC_LIVE && !p->detaching && !p->ctl.active &&
            (oldest == NULL || p->ended_mono_ns < (*oldest)->ended_mono_ns))
            oldest = pp;
    }
    if (oldest == NULL)
        return -EBUSY;
    struct funcmond_process *p = *oldest;
    LOG_INFO("%s: let go before its retention time, to make room for a new segment", p->shm_name);
    let_go(d, p, 1);
    if (p->ops_inflight > 0)
        return -EBUSY;
    *oldest = p->next;
    free_process(p);
    return funcmon_consumer_guard_room() > 0 ? 0 : -EBUSY;
}

static int
out_of_fds(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOMEM;
}

/* What try_attach does about a file it did not attach. */
enum attach_outcome {
    ATTACH_LEAVE,     /* attached, or nothing to do: the same file as before, or a swap seen afresh later */
    ATTACH_FORGET,    /* gone: nothing to remember it for */
    ATTACH_NOT_READY, /* still being created or sized by its client: looked at again for up to 10 s */
    ATTACH_DEFER,     /* valid-looking, no room (guard entry, fd, memory): looked at again until attached */
    ATTACH_REJECT     /* rejected for good, as the file of `reject_st` (NULL: by name only) */
};

/* Tries to attach the segment file `name` of SHM_DIR. Every way out goes through `out`,
 * which gives back what was taken (in the reverse order) and records the outcome. */
static void
try_attach(struct funcmond *d, const char *name)
{
    char path[FUNCMOND_PATH_MAX + 256], msg[128];
    struct stat lst, st;
    const struct stat *reject_st = NULL;
    enum funcmon_invalid why;
    enum attach_outcome outcome = ATTACH_LEAVE;
    const char *reason = NULL;
    uint64_t now = funcmond_mono_ns();
    int fd = -1, attached = 0; /* attached: p holds the mapping and names us as the consumer */
    void *map = MAP_FAILED;
    struct funcmond_process *p = NULL;

    if (!has_prefix(d, name) || strlen(name) >= sizeof(((struct funcmond_process *)0)->shm_name) - 1)
        goto out;
    snprintf(path, sizeof(path), "%s/%s", d->cfg.shm_dir, name);
    /* Its type and owner first, without opening it: a device node or a FIFO is never
     * opened, let alone for writing. */
    if (lstat(path, &lst) != 0) {
        outcome = errno == ENOENT ? ATTACH_FORGET : ATTACH_REJECT;
        reason = strerror(errno);
        goto out;
    }
    if (already_attached(d, &lst) || seen_has(d, seen_key(name, &lst)))
        goto out; /* attached, or rejected before: the same file */
    outcome = ATTACH_REJECT;
    reject_st = &lst;
    if (!S_ISREG(lst.st_mode)) {
        reason = "not a regular file";
        goto out;
    }
    if (lst.st_uid != d->euid && !d->cfg.allow_other_uids) {
        snprintf(msg, sizeof(msg), "owned by uid %u, not %u (SIDECAR.ALLOW_OTHER_UIDS)", (unsigned)lst.st_uid, (unsigned)d->euid);
        reason = msg;
        goto out;
    }
    /* A file still being sized (or junk of that size) gets no room made for it: that would
     * let an ended client go before its time at every retry. */
    if ((uint64_t)lst.st_size < sizeof(struct funcmon_shm_header)) {
        outcome = ATTACH_NOT_READY;
        goto out;
    }
    if (funcmon_consumer_guard_room() == 0 && make_room(d) != 0) {
        outcome = ATTACH_DEFER;
        reason = "every mapping funcmond can guard is taken";
        goto out;
    }
    fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        outcome = errno == ENOENT ? ATTACH_FORGET : out_of_fds(errno) ? ATTACH_DEFER : ATTACH_REJECT;
        reason = strerror(errno);
        goto out;
    }
    /* The file opened must be the one looked at: a swap in between is looked at afresh
     * when its own event or the next rescan comes. */
    if (fstat(fd, &st) != 0 || st.st_dev != lst.st_dev || st.st_ino != lst.st_ino || !S_ISREG(st.st_mode)) {
        outcome = ATTACH_LEAVE;
        goto out;
    }
    reject_st = &st;
    if ((uint64_t)st.st_size < sizeof(struct funcmon_shm_header)) {
        outcome = ATTACH_NOT_READY; /* still being sized by its client */
        goto out;
    }
    if ((uint64_t)st.st_size > FUNCMON_SEGMENT_SIZE_MAX) {
        reason = "larger than any valid segment";
        goto out;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        outcome = errno == ENOMEM || errno == EAGAIN ? ATTACH_DEFER : ATTACH_REJECT;
        reason = strerror(errno);
        goto out;
    }
    close(fd); /* the mapping stays */
    fd = -1;

    if ((p = calloc(1, sizeof(*p))) == NULL) {
        outcome = ATTACH_DEFER;
        reason = "out of memory";
        goto out;
    }
    p->pidfd = -1;
    int ret = funcmon_consumer_attach(&p->c, map, (size_t)st.st_size, &why);
    if (ret != 0) {
        if (ret == -EBUSY || ret == -ENOMEM) {
            outcome = ATTACH_DEFER;
            reason = ret == -EBUSY ? "every mapping funcmond can guard is taken" : "out of memory";
        } else if (why == FUNCMON_INVALID_NOT_READY) {
            outcome = ATTACH_NOT_READY;
        } else if (why == FUNCMON_INVALID_MAJOR) {
            /* The usual cause is a client library and a funcmond of different releases:
             * say which is which. */
            outcome = ATTACH_REJECT;
            snprintf(msg, sizeof(msg),
                     "protocol major version %u, this funcmond reads major %u (client library and funcmond must match)",
                     (unsigned)p->c.geo.major, (unsigned)FUNCMON_SHM_MAJOR);
            reason = msg;
        } else {
            outcome = ATTACH_REJECT;
            reason = funcmon_invalid_reason(why);
        }
        goto out;
    }
    attached = 1;
    p->c.owns_mapping = 1;
    /* The name must end in the pid the header claims. */
    const char *dot = strrchr(name, '.');
    char *end;
    long name_pid = dot != NULL ? strtol(dot + 1, &end, 10) : -1;
    if (dot == NULL || *end != '\0' || name_pid != p->c.geo.pid) {
        outcome = ATTACH_REJECT;
        reason = "its name and its header's pid disagree";
        goto out;
    }
    p->site_fn = calloc(p->c.geo.max_sites, sizeof(*p->site_fn));
    p->spill_calls_seen = calloc(p->c.geo.max_sites, sizeof(uint64_t));
    p->spill_errors_seen = calloc(p->c.geo.max_sites, sizeof(uint64_t));
    p->spill_client_errors_seen = calloc(p->c.geo.max_sites, sizeof(uint64_t));
    p->spill_ticks_seen = calloc(p->c.geo.max_sites, sizeof(uint64_t));
    p->spill_buckets_seen = calloc(p->c.geo.max_sites, sizeof(*p->spill_buckets_seen));
    if (p->site_fn == NULL || p->spill_calls_seen == NULL || p->spill_errors_seen == NULL || p->spill_client_errors_seen == NULL ||
        p->spill_ticks_seen == NULL || p->spill_buckets_seen == NULL) {
        outcome = ATTACH_DEFER;
        reason = "out of memory";
        goto out;
    }
    snprintf(p->shm_name, sizeof(p->shm_name), "%s", name);
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->pid = p->c.geo.pid;
    p->proc_start_time = p->c.geo.proc_start_time;
    memcpy(p->service, p->c.geo.service, sizeof(p->service));

    /* The pid a segment names must belong to the segment file's owner: otherwise a user
     * could point the sidecar (its CPU profiles, /proc reads) at someone else's process. */
    char proc_dir[64];
    struct stat pst;
    snprintf(proc_dir, sizeof(proc_dir), "/proc/%d", (int)p->pid);
    if (stat(proc_dir, &pst) == 0 && pst.st_uid != st.st_uid) {
        outcome = ATTACH_REJECT;
        reason = "its pid belongs to another user than the segment file";
        goto out;
    }
    /* Is it the process that created the segment, and is it still there? Its pidfd is
     * the one fd it costs; /proc files are opened only while they are read. Without fds
     * the client is still attached, its exit seen by its start time until a pidfd can be
     * had (tried again at every /proc read). */
    int alive = !funcmond_process_gone(p->pid, p->proc_start_time);
    if (alive) {
        p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
        if (p->pidfd < 0 && out_of_fds(errno)) {
            p->pidfd_retry = 1;
            d->counters.segments_deferred++;
            if (may_log(d))
                LOG_WARN("%s: no fd to watch its exit (%s); watching its start time until one is free", name, strerror(errno));
        }
        if (p->pidfd >= 0 && funcmond_process_gone(p->pid, p->proc_start_time)) {
            close(p->pidfd); /* the pid was reused between the two looks */
            p->pidfd = -1;
            alive = 0;
        }
    }
    forget(d, name);
    p->attached_real_ns = funcmond_real_ns();
    p->state = FUNCMOND_PROC_LIVE;
    p->next_sample_mono_ns = now;
    funcmon_consumer_clock(&p->c, &p->clk);
    p->clk_read_mono_ns = now;
    funcmond_snapshot_restore_process(d, p);
    p->next = d->procs;
    d->procs = p;
    d->counters.segments_attached++;
    d->clients++;
    LOG_INFO("attached %s: service '%s', pid %d%s", name, p->service, (int)p->pid, alive ? "" : " (already exited)");
    funcmond_ingest_watch(d, p);
    if (!alive)
        funcmond_process_ended(d, p, FUNCMOND_PROC_EXITED);
    return;

out:
    if (attached) {
        abandon(p); /* unmaps too: the consumer owns the mapping */
    } else {
        free(p);
        if (map != MAP_FAILED)
            munmap(map, (size_t)st.st_size);
    }
    if (fd >= 0)
        close(fd);
    switch (outcome) {
    case ATTACH_LEAVE:
        break;
    case ATTACH_FORGET:
        forget(d, name);
        break;
    case ATTACH_NOT_READY:
        remember(d, name, 0, now);
        break;
    case ATTACH_DEFER:
        defer(d, name, reason);
        break;
    case ATTACH_REJECT:
        reject(d, name, reject_st, reason);
        break;
    }
}

void
funcmond_discovery_scan(struct funcmond *d)
{
    DIR *dir = opendir(d->cfg.shm_dir);
    struct dirent *e;
    if (dir == NULL) {
        LOG_WARN("cannot read %s: %s", d->cfg.shm_dir, strerror(errno));
        return;
    }
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.' && has_prefix(d, e->d_name))
            try_attach(d, e->d_name);
    closedir(dir);
}

void
funcmond_discovery_inotify(struct funcmond *d, size_t len)
{
    size_t off = 0;
    /* The kernel hands whole events; still, never read past what it said it wrote. */
    while (off + sizeof(struct inotify_event) <= len) {
        const struct inotify_event *ev = (const struct inotify_event *)(d->inotify_buf + off);
        if (off + sizeof(*ev) + ev->len > len)
            break;
        if (ev->mask & IN_Q_OVERFLOW)
            funcmond_discovery_scan(d);
        else if (ev->len > 0 && memchr(ev->name, '\0', ev->len) != NULL)
            try_attach(d, ev->name);
        off += sizeof(*ev) + ev->len;
    }
}

/* Events came (new segment files), or the read failed. */
static void
on_inotify_read(struct funcmond *d, struct funcmond_op *op, int res)
{
    if (res > 0)
        funcmond_discovery_inotify(d, (size_t)res);
    else if (res < 0 && res != -EINTR && res != -EAGAIN)
        LOG_WARN("inotify read failed: %s; relying on rescans", strerror(-res));
    if (res >= 0 || res == -EINTR || res == -EAGAIN)
        funcmond_loop_repeat(d, op);
}

void
funcmond_discovery_watch(struct funcmond *d)
{
    if (d->inotify_fd < 0)
        return;
    d->op_inotify = (struct funcmond_op){.on_complete = on_inotify_read, .standing = 1};
    funcmond_loop_read(d, &d->op_inotify, d->inotify_fd, d->inotify_buf, sizeof(d->inotify_buf));
}

/* Whether a waiting segment could be attached now: a guard entry is free, or one can be
 * made free by letting go of a process that ended. */
static int
room_possible(const struct funcmond *d)
{
    if (funcmon_consumer_guard_room() > 0)
        return 1;
    for (const struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
            return 1;
    return 0;
}

void
funcmond_discovery_retry_pending(struct funcmond *d, uint64_t now)
{
    struct funcmond_rejected *r = d->rejected, *next;
    int room = room_possible(d);
    flush_suppressed(d, now);
    /* try_attach(name) frees or updates only name's own entry, so `next` stays valid. */
    for (; r != NULL; r = next) {
        next = r->next;
        if ((!r->not_ready && !r->waiting) || (r->waiting && !room))
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%s", r->name);
        if (r->not_ready && now - r->first_seen_mono_ns > PENDING_GIVE_UP_NS) {
            char path[FUNCMOND_PATH_MAX + 256];
            struct stat st;
            snprintf(path, sizeof(path), "%s/%s", d->cfg.shm_dir, name);
            /* Remembered as this file, so that rescans leave it alone from now on. */
            reject(d, name, lstat(path, &st) == 0 ? &st : NULL, "not initialised after 10 s"); /* frees r */
        } else {
            try_attach(d, name); /* may free r */
        }
    }
}

void
funcmond_discovery_expire(struct funcmond *d, uint64_t now, int all)
{
    uint64_t keep = (uint64_t)d->cfg.exited_retention_s * FUNCMOND_SECOND_NS;
    for (struct funcmond_process **pp = &d->procs; *pp != NULL;) {
        struct funcmond_process *p = *pp;
        /* ended may be later than `now`, taken before this tick drained */
        int expired = p->state != FUNCMOND_PROC_LIVE && now >= p->ended_mono_ns && now - p->ended_mono_ns >= keep;
        if (!all && !expired && !p->detaching) {
            pp = &p->next;
            continue;
        }
        /* Stopping: a segment whose process ended is read to its last record and counted
         * in the state file; nobody else would remove it. A live client's stays, for the
         * next run (or for the client, which removes it when no sidecar is attached). */
        let_go(d, p, expired || (all && p->state != FUNCMOND_PROC_LIVE));
        if (p->ops_inflight > 0) {
            pp = &p->next; /* freed once the kernel is done with it */
            continue;
        }
        *pp = p->next;
        free_process(p);
    }
}

void
funcmond_discovery_close(struct funcmond *d)
{
    funcmond_discovery_unlock(d);
    while (d->rejected != NULL) {
        struct funcmond_rejected *r = d->rejected;
        d->rejected = r->next;
        free(r);
    }
    if (d->inotify_fd >= 0)
        close(d->inotify_fd);
    d->inotify_fd = -1;
}
