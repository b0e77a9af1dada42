/*
 * segment.c - creating, publishing and retiring this process's shared-memory segment.
 *
 * One segment per process, /<prefix>.<service>.<pid>, created O_EXCL with mode 0600 so no
 * other user can read or write it (FUNCMON_SHM_GROUP=<group> makes it 0660 for that group,
 * for a sidecar running under another uid). All of its memory is reserved with
 * posix_fallocate before anything is written: on a full tmpfs (a container's 64 MB
 * /dev/shm) init fails with ENOSPC instead of the service dying of SIGBUS on a later write.
 * The magic is stored last, with release, so a sidecar that finds the name early sees
 * "not ready" instead of a half-written header.
 *
 * A name clash is an error, with two exceptions, both stale segments that are replaced: one
 * left by an earlier process with our pid (pid reuse, typically pid 1 in a restarted
 * container), told apart by its start time; and our own, shut down, that an attached
 * sidecar has not collected yet (init after shutdown).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "funcmon/process.h"
#include "funcmon/validate.h"
#include "internal.h"

/* Service names become part of a file name: keep [A-Za-z0-9._-], map the rest to '_'. */
static void
sanitise(char *dst, size_t dstlen, const char *src)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < dstlen; i++) {
        unsigned char ch = (unsigned char)src[i];
        int ok =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        dst[i] = ok ? (char)ch : '_';
    }
    dst[i] = '\0';
}

/* An existing segment of our name is stale when it is a funcmon segment of our pid with
 * another start time (a previous process that had our pid), or our own from before a
 * funcmon_shutdown that a sidecar has not collected yet (it keeps its own mapping). */
static int
is_stale_segment(const char *name, int32_t pid, uint64_t start_time)
{
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    struct stat st;
    struct funcmon_geometry geo;
    int stale = 0;

    if (fd < 0)
        return 0;
    /* Read, not mapped: a file that shrinks under a mapping would raise SIGBUS in the
     * service; a read of a shrunk file is only short. */
    struct funcmon_shm_header h;
    if (fstat(fd, &st) == 0 && st.st_uid == geteuid() && (size_t)st.st_size >= sizeof(h) &&
        pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h)) {
        if (funcmon_validate_segment(&h, (size_t)st.st_size, &geo) == FUNCMON_VALID && geo.pid == pid &&
            (geo.proc_start_time != start_time || h.state == FUNCMON_STATE_SHUTDOWN))
            stale = 1;
    }
    close(fd);
    return stale;
}

static int
open_exclusive(const char *name, mode_t mode, int32_t pid, uint64_t start_time)
{
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST && is_stale_segment(name, pid, start_time)) {
        shm_unlink(name);
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    }
    return fd < 0 ? -errno : fd;
}

/* FUNCMON_SHM_GROUP: a group name or number that may also read and write the segment. */
static int
apply_group(int fd)
{
    const char *group = getenv("FUNCMON_SHM_GROUP");
    char *end;
    gid_t gid;

    if (group == NULL || group[0] == '\0')
        return 0;
    unsigned long num = strtoul(group, &end, 10);
    if (*end == '\0') {
        gid = (gid_t)num;
    } else {
        struct group *gr = getgrnam(group);
        if (gr == NULL)
            return -EINVAL;
        gid = gr->gr_gid;
    }
    if (fchown(fd, (uid_t)-1, gid) != 0 || fchmod(fd, 0660) != 0)
        return -errno;
    return 0;
}

int
funcmon__segment_create(struct funcmon__segment *seg, const struct funcmon_options *opts, const char *service, const char *prefix)
{
    char safe_service[FUNCMON_SERVICE_MAX + 1];
    uint64_t start_time = funcmon_process_start_time(0);
    int32_t pid = (int32_t)getpid();
    uint32_t pool_chunks = opts->max_threads < FUNCMON_POOL_CHUNKS_MIN ? FUNCMON_POOL_CHUNKS_MIN : opts->max_threads;
    uint64_t size = funcmon_segment_bytes(opts->ring_records, pool_chunks, opts->max_threads, opts->max_sites);
    void *map = MAP_FAILED;
    int fd, ret;

    memset(seg, 0, sizeof(*seg));
    sanitise(safe_service, sizeof(safe_service), service);
    if (strchr(prefix, '/') != NULL || prefix[0] == '\0')
        return -EINVAL;
    ret = snprintf(seg->name, sizeof(seg->name), "/%s.%s.%d", prefix, safe_service, (int)pid);
    if (ret < 0 || (size_t)ret >= sizeof(seg->name))
        return -ENAMETOOLONG;
    if (size > FUNCMON_SEGMENT_SIZE_MAX || size > (uint64_t)SIZE_MAX)
        return -EINVAL;

    fd = open_exclusive(seg->name, 0600, pid, start_time);
    if (fd < 0)
        return fd;
    if ((ret = apply_group(fd)) != 0)
        goto fail;
    if (ftruncate(fd, (off_t)size) != 0) {
        ret = -errno;
        goto fail;
    }
    /* Reserve every page now: a full tmpfs fails here rather than with SIGBUS later. */
    if ((ret = posix_fallocate(fd, 0, (off_t)size)) != 0) {
        ret = -ret;
        goto fail;
    }
    map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        ret = -errno;
        goto fail;
    }
    close(fd);

    struct funcmon_shm_header *hdr = map;
    seg->hdr = hdr;
    seg->size = (size_t)size;
    seg->ring_records = opts->ring_records;
    seg->max_threads = opts->max_threads;
    seg->max_sites = opts->max_sites;
    hdr->major = FUNCMON_SHM_MAJOR;
    hdr->minor = FUNCMON_SHM_MINOR;
    hdr->header_size = sizeof(*hdr);
    hdr->record_size = sizeof(struct funcmon_record);
    hdr->site_size = sizeof(struct funcmon_site_entry);
    hdr->slot_size = sizeof(struct funcmon_thread_slot);
    hdr->chunk_size = sizeof(struct funcmon_chunk);
    hdr->chunk_records = opts->ring_records;
    hdr->pool_chunks = pool_chunks;
    hdr->max_threads = opts->max_threads;
    hdr->max_sites = opts->max_sites;
    hdr->segment_size = size;
    hdr->sites_offset = FUNCMON_HEADER_SIZE;
    hdr->slots_offset = hdr->sites_offset + (uint64_t)opts->max_sites * sizeof(struct funcmon_site_entry);
    hdr->chunks_offset = hdr->slots_offset + (uint64_t)opts->max_threads * sizeof(struct funcmon_thread_slot);
    hdr->records_offset = hdr->chunks_offset + (uint64_t)pool_chunks * sizeof(struct funcmon_chunk);
    hdr->pid = pid;
    hdr->proc_start_time = start_time;
    hdr->created_real_ns = funcmon__real_ns();
    memcpy(hdr->service, service, strnlen(service, FUNCMON_SERVICE_MAX));
    hdr->state = FUNCMON_STATE_LIVE;
    seg->sites = (struct funcmon_site_entry *)((char *)map + hdr->sites_offset);
    seg->slots = (struct funcmon_thread_slot *)((char *)map + hdr->slots_offset);
    seg->rings = (struct funcmon_record *)((char *)map + hdr->records_offset);
    funcmon__clock_publish(hdr);
    funcmon__sites_mirror(seg);
    /* Last: a reader that sees the magic sees everything above. */
    __atomic_store_n(&hdr->magic, FUNCMON_SHM_MAGIC, __ATOMIC_RELEASE);
    return 0;

fail:
    close(fd);
    shm_unlink(seg->name);
    seg->name[0] = '\0';
    return ret;
}

static int
process_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* funcmond announces itself in the shm object "/<prefix>-sidecar", which holds its pid. */
static int
sidecar_running(const char *prefix)
{
    char name[FUNCMON_PREFIX_MAX + 16], buf[32];
    snprintf(name, sizeof(name), "/%s-sidecar", prefix);
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return process_alive((int32_t)strtol(buf, NULL, 10));
}

void
funcmon__segment_retire(struct funcmon__segment *seg, int unlink_it)
{
    if (seg->hdr == NULL)
        return;
    if (unlink_it) {
        /* Pairs with the consumer's release store of its pid at attach
         * (funcmon_consumer_attach in proto/src/consumer.c). */
        int32_t consumer = __atomic_load_n(&seg->hdr->consumer_pid, __ATOMIC_ACQUIRE);
        __atomic_store_n(&seg->hdr->state, FUNCMON_STATE_SHUTDOWN, __ATOMIC_RELEASE);
        /* An attached sidecar drains the last records and unlinks the segment itself; so
         * does a running sidecar that has not attached yet (a short-lived process). With
         * neither, nobody else would, so the name goes now. */
        if (!process_alive(consumer) && !sidecar_running(funcmon__proc.prefix))
            shm_unlink(seg->name);
    }
    /* Threads may still be between funcmon_begin and funcmon_end, holding pointers into the
     * segment. Replacing the mapping (not unmapping it) makes their last writes land in
     * private zero pages instead of faulting, and drops this process's hold on the shared
     * pages. */
    if (mmap(seg->hdr, seg->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
        MAP_FAILED)
        funcmon__warn("cannot release the segment mapping: %s; it stays mapped", strerror(errno));
    seg->hdr = NULL;
    seg->sites = NULL;
    seg->slots = NULL;
    seg->rings = NULL;
}
