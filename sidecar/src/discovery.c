/*
 * discovery.c - finding client segments, checking them, attaching, and letting them go.
 *
 * Segments appear as files "<SHM_PREFIX>.<service>.<pid>" in SHM_DIR (/dev/shm). They are
 * found at start by a scan, as they appear by inotify (its reads go through the io_uring
 * loop), and by a slow rescan as a safety net for missed events. A new file is usually
 * still being written (the client stores the magic last): it stays pending and is looked
 * at again on every tick for up to 10 seconds.
 *
 * A segment is untrusted input. It is attached only if it is a regular file owned by our
 * user (unless SIDECAR.ALLOW_OTHER_UIDS), passes funcmon_validate_segment, and its pid
 * matches its name. Anything else is rejected once, counted and logged with the reason,
 * and not looked at again unless the file is replaced.
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
#include "log.h"
#include "sidecar.h"
#include "snapshot.h"

#define PENDING_GIVE_UP_NS (10ull * 1000000000ull)

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
    d->inotify_fd = inotify_init1(IN_CLOEXEC); /* blocking: io_uring waits for its reads */
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

static struct funcmond_rejected *
find_rejected(struct funcmond *d, const char *name)
{
    for (struct funcmond_rejected *r = d->rejected; r != NULL; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

#define REMEMBERED_MAX 4096

static void
remember(struct funcmond *d, const char *name, const struct stat *st, int not_ready, uint64_t now)
{
    struct funcmond_rejected *r = find_rejected(d, name);
    if (r == NULL) {
        /* Bounded: past the cap the oldest entries go (a rejected file is then looked at
         * once more if it is still there). */
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
            return;
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->first_seen_mono_ns = now;
        r->next = d->rejected;
        d->rejected = r;
    }
    r->dev = st != NULL ? st->st_dev : 0;
    r->ino = st != NULL ? st->st_ino : 0;
    r->not_ready = not_ready;
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

static void
reject(struct funcmond *d, const char *name, const struct stat *st, const char *why)
{
    d->counters.segments_rejected++;
    LOG_WARN("rejected segment %s: %s", name, why);
    remember(d, name, st, 0, funcmond_mono_ns());
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
    funcmon_consumer_close(&p->c);
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->stat_fd >= 0)
        close(p->stat_fd);
    if (p->status_fd >= 0)
        close(p->status_fd);
    free(p->site_fn);
    free(p->spill_calls_seen);
    free(p->spill_errors_seen);
    free(p->spill_client_errors_seen);
    funcmond_stacks_free(&p->stacks);
    free(p);
}

/* Tries to attach the segment file `name` of SHM_DIR. */
static void
try_attach(struct funcmond *d, const char *name)
{
    char path[FUNCMOND_PATH_MAX + 256];
    struct stat st;
    enum funcmon_invalid why;
    uint64_t now = funcmond_mono_ns();

    if (!has_prefix(d, name) || strlen(name) >= sizeof(((struct funcmond_process *)0)->shm_name) - 1)
        return;
    snprintf(path, sizeof(path), "%s/%s", d->cfg.shm_dir, name);
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            forget(d, name); /* gone: nothing to remember it for */
        else
            reject(d, name, NULL, strerror(errno));
        return;
    }
    if (fstat(fd, &st) != 0 || already_attached(d, &st)) {
        close(fd);
        return;
    }
    struct funcmond_rejected *r = find_rejected(d, name);
    if (r != NULL && !r->not_ready && r->dev == st.st_dev && r->ino == st.st_ino) {
        close(fd); /* rejected before, same file */
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        reject(d, name, &st, "not a regular file");
        return;
    }
    if (st.st_uid != d->euid && !d->cfg.allow_other_uids) {
        char msg[96];
        close(fd);
        snprintf(msg, sizeof(msg), "owned by uid %u, not %u (SIDECAR.ALLOW_OTHER_UIDS)", (unsigned)st.st_uid, (unsigned)d->euid);
        reject(d, name, &st, msg);
        return;
    }
    if ((uint64_t)st.st_size < sizeof(struct funcmon_shm_header) || (uint64_t)st.st_size > FUNCMON_SEGMENT_SIZE_MAX) {
        close(fd);
        if (st.st_size == 0 || (uint64_t)st.st_size < sizeof(struct funcmon_shm_header))
            remember(d, name, &st, 1, now); /* still being sized by its client */
        else
            reject(d, name, &st, "larger than any valid segment");
        return;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) {
        reject(d, name, &st, strerror(map_errno));
        return;
    }

    struct funcmond_process *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        munmap(map, (size_t)st.st_size);
        return;
    }
    p->pidfd = p->stat_fd = p->status_fd = -1;
    if (funcmon_consumer_attach(&p->c, map, (size_t)st.st_size, &why) != 0) {
        munmap(map, (size_t)st.st_size);
        free(p);
        if (why == FUNCMON_INVALID_NOT_READY)
            remember(d, name, &st, 1, now);
        else
            reject(d, name, &st, why == FUNCMON_VALID ? "out of memory" : funcmon_invalid_reason(why));
        return;
    }
    p->c.owns_mapping = 1;
    /* The name must end in the pid the header claims. */
    const char *dot = strrchr(name, '.');
    char *end;
    long name_pid = dot != NULL ? strtol(dot + 1, &end, 10) : -1;
    if (dot == NULL || *end != '\0' || name_pid != p->c.geo.pid) {
        free_process(p);
        reject(d, name, &st, "its name and its header's pid disagree");
        return;
    }
    p->site_fn = calloc(p->c.geo.max_sites, sizeof(*p->site_fn));
    p->spill_calls_seen = calloc(p->c.geo.max_sites, sizeof(uint64_t));
    p->spill_errors_seen = calloc(p->c.geo.max_sites, sizeof(uint64_t));
    p->spill_client_errors_seen = calloc(p->c.geo.max_sites, sizeof(uint64_t));
    if (p->site_fn == NULL || p->spill_calls_seen == NULL || p->spill_errors_seen == NULL || p->spill_client_errors_seen == NULL) {
        free_process(p);
        LOG_ERROR("out of memory attaching %s", name);
        return;
    }
    forget(d, name);
    snprintf(p->shm_name, sizeof(p->shm_name), "%s", name);
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->pid = p->c.geo.pid;
    p->proc_start_time = p->c.geo.proc_start_time;
    memcpy(p->service, p->c.geo.service, sizeof(p->service));
    p->attached_real_ns = funcmond_real_ns();
    p->state = FUNCMOND_PROC_LIVE;
    p->next_sample_mono_ns = now;
    funcmon_consumer_clock(&p->c, &p->clk);
    p->clk_read_mono_ns = now;
    funcmond_snapshot_restore_process(d, p);

    /* The pid a segment names must belong to the segment file's owner: otherwise a user
     * could point the sidecar (its CPU profiles, /proc reads) at someone else's process. */
    char proc_dir[64];
    struct stat pst;
    snprintf(proc_dir, sizeof(proc_dir), "/proc/%d", (int)p->pid);
    if (stat(proc_dir, &pst) == 0 && pst.st_uid != st.st_uid) {
        free_process(p);
        reject(d, name, &st, "its pid belongs to another user than the segment file");
        return;
    }
    if (p->c.guard < 0) {
        free_process(p);
        reject(d, name, &st, "too many segments mapped to guard this one against truncation");
        return;
    }
    /* Is it the process that created the segment, and is it still there? */
    int alive = funcmon_process_start_time(p->pid) == p->proc_start_time;
    if (alive) {
        p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
        if (p->pidfd >= 0 && funcmon_process_start_time(p->pid) != p->proc_start_time) {
            close(p->pidfd); /* the pid was reused between the two looks */
            p->pidfd = -1;
            alive = 0;
        }
        char proc_path[64];
        snprintf(proc_path, sizeof(proc_path), "/proc/%d/stat", (int)p->pid);
        p->stat_fd = open(proc_path, O_RDONLY | O_CLOEXEC);
        snprintf(proc_path, sizeof(proc_path), "/proc/%d/status", (int)p->pid);
        p->status_fd = open(proc_path, O_RDONLY | O_CLOEXEC);
    }
    p->next = d->procs;
    d->procs = p;
    d->counters.segments_attached++;
    d->clients++;
    LOG_INFO("attached %s: service '%s', pid %d%s", name, p->service, (int)p->pid, alive ? "" : " (already exited)");
    funcmond_drain_watch(d, p);
    if (!alive) {
        funcmond_drain_process(d, p);
        funcmond_process_ended(d, p, FUNCMOND_PROC_EXITED);
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

void
funcmond_discovery_retry_pending(struct funcmond *d, uint64_t now)
{
    struct funcmond_rejected *r = d->rejected, *next;
    for (; r != NULL; r = next) {
        next = r->next;
        if (!r->not_ready)
            continue;
        if (now - r->first_seen_mono_ns > PENDING_GIVE_UP_NS) {
            r->not_ready = 0;
            d->counters.segments_rejected++;
            LOG_WARN("rejected segment %s: not initialised after 10 s", r->name);
            continue;
        }
        char name[256];
        snprintf(name, sizeof(name), "%s", r->name);
        try_attach(d, name); /* may free r */
    }
}

void
funcmond_process_ended(struct funcmond *d, struct funcmond_process *p, enum funcmond_proc_state why)
{
    if (p->state != FUNCMOND_PROC_LIVE)
        return;
    p->state = why;
    funcmond_drain_process(d, p); /* to the last record */
    p->ended_mono_ns = funcmond_mono_ns();
    p->ended_real_ns = funcmond_real_ns();
    d->clients--;
    LOG_INFO("%s: pid %d %s; %llu records", p->shm_name, (int)p->pid, why == FUNCMOND_PROC_EXITED ? "exited" : "shut funcmon down",
             (unsigned long long)p->records);
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

void
funcmond_discovery_expire(struct funcmond *d, uint64_t now, int all)
{
    uint64_t keep = (uint64_t)d->cfg.exited_retention_s * 1000000000ull;
    for (struct funcmond_process **pp = &d->procs; *pp != NULL;) {
        struct funcmond_process *p = *pp;
        /* ended may be later than `now`, taken before this tick drained */
        int expired = p->state != FUNCMOND_PROC_LIVE && now >= p->ended_mono_ns && now - p->ended_mono_ns >= keep;
        if (!all && !expired && !p->detaching) {
            pp = &p->next;
            continue;
        }
        if (!p->detaching) {
            if (p->state == FUNCMOND_PROC_LIVE)
                d->clients--;
            if (expired)
                unlink_segment(d, p);
            p->detaching = 1;
            funcmond_drain_unwatch(d, p);
        }
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
