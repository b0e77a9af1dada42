/*
 * consumer.c - attach to a client's segment and drain it, trusting nothing in it.
 *
 * See funcmon/consumer.h for the contract. The pieces that matter for safety:
 *  - geometry comes from funcmon_validate_segment's private copy, taken once;
 *  - ring positions: head is re-read at every drain and must be within one capacity of
 *    the reader's own tail, otherwise the ring is abandoned (a producer index far ahead
 *    or behind would otherwise make us read garbage or loop for 2^64 records);
 *  - records are copied, then checked; names are copied, then checked;
 *  - a ring's drop counter is believed only as far as the ring could have dropped: it may
 *    grow by at most one record per nanosecond since it was last read (since its process
 *    started, at the first read); one that falls or jumps further marks the ring bad;
 *  - the mapping is under the SIGBUS guard before the first byte of it is read; with no
 *    guard entry free, nothing is read and the segment is not marked as consumed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "funcmon/consumer.h"
#include "funcmon/control.h"

/*
 * A client can shrink its segment file after we mapped it; touching the lost pages would
 * raise SIGBUS and kill the reader. Every consumer's mapping is registered here before
 * its first byte is read (a table full means no attach, not an unguarded one), and a
 * SIGBUS inside one replaces that whole mapping with zero pages and marks it faulted: the
 * faulting read is retried on zeros (which fail every check), and the owner of the
 * consumer sees funcmon_consumer_faulted() and lets the segment go. A SIGBUS anywhere else
 * gets the previous disposition. The table is a fixed array: the handler reads it.
 */
#define GUARDED_MAX 4096

static struct {
    uintptr_t lo; /* 0: free entry */
    uintptr_t hi;
    int faulted;
} guarded[GUARDED_MAX];
/* Entries guard() may hand out, at most GUARDED_MAX; lowered only by tests. */
static unsigned guard_limit = GUARDED_MAX;
static unsigned guards_used; /* entries handed out and not yet given back */
static struct sigaction previous_sigbus;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void
on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    (void)uctx;
    for (int i = 0; i < GUARDED_MAX; i++) {
        /* Pairs with guard()'s release store of lo, made after hi: a range seen is whole. */
        uintptr_t lo = __atomic_load_n(&guarded[i].lo, __ATOMIC_ACQUIRE), hi = __atomic_load_n(&guarded[i].hi, __ATOMIC_RELAXED);
        if (lo != 0 && a >= lo && a < hi) {
            mmap((void *)lo, hi - lo, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
            /* Pairs with funcmon_consumer_faulted's acquire load: the zeros are mapped first. */
            __atomic_store_n(&guarded[i].faulted, 1, __ATOMIC_RELEASE);
            return;
        }
    }
    sigaction(sig, &previous_sigbus, NULL); /* not ours: the fault repeats under it */
}

static void
install_guard(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous_sigbus);
}

static int
guard(const void *base, size_t len)
{
    pthread_once(&guard_once, install_guard);
    int limit = (int)__atomic_load_n(&guard_limit, __ATOMIC_RELAXED);
    for (int i = 0; i < limit; i++) {
        uintptr_t expected = 0;
        /* Claimed with a sentinel lo the handler matches nothing with; hi is written only
         * once the entry is ours (never on an entry in use: that would unguard it). The
         * acquire half pairs with unguard()'s release store of 0: the entry's last user is
         * done with it. */
        if (__atomic_load_n(&guarded[i].lo, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&guarded[i].lo, &expected, UINTPTR_MAX, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            __atomic_store_n(&guarded[i].faulted, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&guarded[i].hi, (uintptr_t)base + len, __ATOMIC_RELAXED);
            /* Pairs with on_sigbus's acquire load of lo: it sees this entry's hi. */
            __atomic_store_n(&guarded[i].lo, (uintptr_t)base, __ATOMIC_RELEASE);
            __atomic_add_fetch(&guards_used, 1, __ATOMIC_RELAXED);
            return i;
        }
    }
    return -1; /* the table is full: the caller must not read the mapping */
}

static void
unguard(int i)
{
    if (i < 0)
        return;
    /* Pairs with guard()'s acquire compare-and-swap of a free entry. */
    __atomic_store_n(&guarded[i].lo, 0, __ATOMIC_RELEASE);
    __atomic_sub_fetch(&guards_used, 1, __ATOMIC_RELAXED);
}

unsigned
funcmon_consumer_guard_room(void)
{
    unsigned limit = __atomic_load_n(&guard_limit, __ATOMIC_RELAXED), used = __atomic_load_n(&guards_used, __ATOMIC_RELAXED);
    return used < limit ? limit - used : 0;
}

unsigned
funcmon_consumer_guard_limit(unsigned n)
{
    if (n == 0 || n > GUARDED_MAX)
        n = GUARDED_MAX;
    return __atomic_exchange_n(&guard_limit, n, __ATOMIC_RELAXED);
}

int
funcmon_consumer_faulted(const struct funcmon_consumer *c)
{
    /* Pairs with on_sigbus's release store of faulted. */
    return c->guard >= 0 && __atomic_load_n(&guarded[c->guard].faulted, __ATOMIC_ACQUIRE);
}

static struct funcmon_thread_slot *
slot_at(const struct funcmon_consumer *c, uint32_t i)
{
    return (struct funcmon_thread_slot *)(c->base + c->geo.slots_offset + (uint64_t)i * sizeof(struct funcmon_thread_slot));
}

static struct funcmon_site_entry *
site_at(const struct funcmon_consumer *c, uint32_t i)
{
    return (struct funcmon_site_entry *)(c->base + c->geo.sites_offset + (uint64_t)i * sizeof(struct funcmon_site_entry));
}

static struct funcmon_chunk *
chunk_at(const struct funcmon_consumer *c, uint32_t idx)
{
    return (struct funcmon_chunk *)(c->base + c->geo.chunks_offset + (uint64_t)idx * sizeof(struct funcmon_chunk));
}

static const struct funcmon_record *
records_at(const struct funcmon_consumer *c, uint32_t idx)
{
    return (const struct funcmon_record *)(c->base + c->geo.records_offset + (uint64_t)idx * c->geo.chunk_bytes);
}

static uint64_t
boot_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
funcmon_consumer_attach(struct funcmon_consumer *c, void *base, size_t len, enum funcmon_invalid *why)
{
    enum funcmon_invalid v;

    memset(c, 0, sizeof(*c));
    c->guard = -1;
    if (why != NULL)
        *why = FUNCMON_VALID;
    if (base == NULL || len < sizeof(struct funcmon_shm_header)) {
        if (why != NULL)
            *why = FUNCMON_INVALID_TOO_SMALL;
        return -EPROTO;
    }
    /* Guarded before the validator's first read: the file can shrink at any moment. With
     * no entry free nothing is read, and consumer_pid stays as it is, so the client still
     * owns (and removes) its segment until a later attempt succeeds. */
    c->guard = guard(base, len);
    if (c->guard < 0)
        return -EBUSY;
    v = funcmon_validate_segment(base, len, &c->geo);
    /* A fault during validation left zeros where the header was: the file is being
     * resized under us, which is how a segment looks while its client creates it. */
    if (funcmon_consumer_faulted(c))
        v = FUNCMON_INVALID_NOT_READY;
    if (why != NULL)
        *why = v;
    if (v != FUNCMON_VALID) {
        unguard(c->guard);
        c->guard = -1;
        return -EPROTO;
    }
    c->base = base;
    c->len = len;
    c->hdr = base;
    c->rings = calloc(c->geo.max_threads, sizeof(*c->rings));
    c->sites = calloc(c->geo.max_sites, sizeof(*c->sites));
    c->live = calloc(c->geo.max_threads, sizeof(*c->live));
    c->busy = calloc(c->geo.max_threads, sizeof(*c->busy));
    c->site_ok = calloc(c->geo.max_sites, sizeof(*c->site_ok));
    if (c->rings == NULL || c->sites == NULL || c->live == NULL || c->busy == NULL || c->site_ok == NULL) {
        free(c->rings);
        free(c->sites);
        free(c->live);
        free(c->busy);
        free(c->site_ok);
        unguard(c->guard);
        memset(c, 0, sizeof(*c));
        c->guard = -1;
        return -ENOMEM;
    }
    /* Drops counted before this reader came are bounded by the age of the process: the
     * first read of each counter allows one record per nanosecond since its start (field
     * 22 of /proc/<pid>/stat, in clock ticks since boot; a start in the future allows 0). */
    uint64_t now = boot_ns();
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t ns_per_tick = hz > 0 && hz <= 1000000000L ? 1000000000u / (uint64_t)hz : 10000000u;
    uint64_t started = c->geo.proc_start_time <= now / ns_per_tick ? c->geo.proc_start_time * ns_per_tick : now;
    /* Until the first full pass decides, every slot counts as in use. */
    for (uint32_t i = 0; i < c->geo.max_threads; i++)
        c->live[i] = i;
    c->n_live = c->geo.max_threads;
    c->pool_records = (uint64_t)c->geo.pool_chunks * c->geo.chunk_records;
    /* Continue where an earlier reader stopped: its tail is in the slot (its chunk is found
     * at the first read). A tail more than the whole pool below head is a lie; such a ring
     * is never read. A slot an earlier reader left half recycled is finished: its chunk
     * references are cleared before its last chunk goes back, so that chunk is back or lost
     * (one chunk at most), never pushed twice. */
    for (uint32_t i = 0; i < c->geo.max_threads; i++) {
        struct funcmon_thread_slot *s = slot_at(c, i);
        /* Pairs with the producer's release store of head (funcmon__publish in funcmon.h,
         * publish_span in client/src/thread.c). */
        uint64_t head = __atomic_load_n(&s->head, __ATOMIC_ACQUIRE);
        uint64_t tail = __atomic_load_n(&s->tail, __ATOMIC_RELAXED);
        c->rings[i].tail = tail;
        c->rings[i].dropped_ns = started;
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == FUNCMON_SLOT_RECYCLING) {
            __atomic_store_n(&s->first_chunk, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&s->cur_chunk, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&s->tail_chunk, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&s->state, FUNCMON_SLOT_FREE, __ATOMIC_RELEASE);
        }
        if (head - tail > c->pool_records) {
            c->rings[i].bad = 1;
            c->bad_rings++;
        }
    }
    /* Pairs with the client's acquire load of consumer_pid when it retires its segment
     * (funcmon__segment_retire in client/src/segment.c). */
    __atomic_store_n(&c->hdr->consumer_pid, (int32_t)getpid(), __ATOMIC_RELEASE);
    return 0;
}

int
funcmon_consumer_open(struct funcmon_consumer *c, const char *name, enum funcmon_invalid *why)
{
    struct stat st;
    void *map;
    int fd, ret;

    memset(c, 0, sizeof(*c));
    if (why != NULL)
        *why = FUNCMON_VALID;
    if (strlen(name) >= sizeof(c->name))
        return -ENAMETOOLONG;
    /* The type first, through an O_PATH descriptor (nothing is opened for reading or
     * writing): a FIFO or device node under the name is refused unopened. */
    char path[sizeof(c->name) + 16];
    struct stat pst;
    snprintf(path, sizeof(path), "/dev/shm/%s", name[0] == '/' ? name + 1 : name);
    fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ret = fstat(fd, &pst) != 0 ? -errno : !S_ISREG(pst.st_mode) ? -EINVAL : 0;
    close(fd);
    if (ret != 0)
        return ret;
    fd = shm_open(name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    if (!S_ISREG(st.st_mode) || st.st_dev != pst.st_dev || st.st_ino != pst.st_ino) {
        close(fd);
        return -EINVAL; /* replaced between the two looks */
    }
    if (st.st_size < (off_t)sizeof(struct funcmon_shm_header) || (uint64_t)st.st_size > FUNCMON_SEGMENT_SIZE_MAX) {
        close(fd);
        if (why != NULL)
            *why = st.st_size == 0 ? FUNCMON_INVALID_NOT_READY : FUNCMON_INVALID_TOO_SMALL;
        return -EPROTO;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ret = map == MAP_FAILED ? -errno : 0;
    close(fd);
    if (ret != 0)
        return ret;
    ret = funcmon_consumer_attach(c, map, (size_t)st.st_size, why);
    if (ret != 0) {
        munmap(map, (size_t)st.st_size);
        return ret;
    }
    c->owns_mapping = 1;
    strcpy(c->name, name);
    return 0;
}

void
funcmon_consumer_close(struct funcmon_consumer *c)
{
    if (c->base != NULL)
        unguard(c->guard);
    if (c->owns_mapping && c->base != NULL)
        munmap(c->base, c->len);
    free(c->rings);
    free(c->sites);
    free(c->live);
    free(c->busy);
    free(c->site_ok);
    memset(c, 0, sizeof(*c));
}

/* Copies newly published sites. */
static void
refresh_sites(struct funcmon_consumer *c)
{
    /* Pairs with the client's release store of site_count after it wrote the entry
     * (client/src/site.c, publishing a site). */
    uint32_t count = __atomic_load_n(&c->hdr->site_count, __ATOMIC_ACQUIRE);
    if (count > c->geo.max_sites)
        count = c->geo.max_sites;
    for (uint32_t id = c->sites_known; id < count; id++) {
        struct funcmon_site_info *info = &c->sites[id];
        const struct funcmon_site_entry *s = site_at(c, id);
        memcpy(info->name, s->name, sizeof(info->name));
        memcpy(info->package, s->package, sizeof(info->package));
        info->valid = memchr(info->name, '\0', sizeof(info->name)) != NULL && info->name[0] != '\0' &&
                      memchr(info->package, '\0', sizeof(info->package)) != NULL;
        info->name[sizeof(info->name) - 1] = '\0';
        info->package[sizeof(info->package) - 1] = '\0';
        c->site_ok[id] = (uint8_t)info->valid;
    }
    if (count > c->sites_known)
        c->sites_known = count;
}

const struct funcmon_site_info *
funcmon_consumer_site(struct funcmon_consumer *c, uint32_t id)
{
    if (id >= c->sites_known)
        refresh_sites(c);
    if (id >= c->sites_known || !c->sites[id].valid)
        return NULL;
    return &c->sites[id];
}

int
funcmon_consumer_spill(const struct funcmon_consumer *c, uint32_t id, uint64_t *calls, uint64_t *errors)
{
    if (id >= c->geo.max_sites)
        return -EINVAL;
    const struct funcmon_site_entry *s = site_at(c, id);
    *calls = __atomic_load_n(&s->spill_calls, __ATOMIC_RELAXED);
    *errors = __atomic_load_n(&s->spill_errors, __ATOMIC_RELAXED);
    return 0;
}

int
funcmon_consumer_spill_client_errors(const struct funcmon_consumer *c, uint32_t id, uint64_t *client_errors)
{
    if (id >= c->geo.max_sites)
        return -EINVAL;
    *client_errors = __atomic_load_n(&site_at(c, id)->spill_client_errors, __ATOMIC_RELAXED);
    return 0;
}

int
funcmon_consumer_spill_durations(const struct funcmon_consumer *c, uint32_t id, uint64_t *ticks,
                                 uint32_t hist[FUNCMON_SPILL_BUCKETS])
{
    if (id >= c->geo.max_sites)
        return -EINVAL;
    const struct funcmon_site_entry *s = site_at(c, id);
    *ticks = __atomic_load_n(&s->spill_ticks, __ATOMIC_RELAXED);
    for (uint32_t b = 0; b < FUNCMON_SPILL_BUCKETS; b++)
        hist[b] = __atomic_load_n(&s->spill_hist[b], __ATOMIC_RELAXED);
    return 0;
}

static int
record_ok(struct funcmon_consumer *c, struct funcmon_record *r, uint64_t pos)
{
    if (r->seq != pos || r->end < r->start)
        return 0;
    r->flags &= FUNCMON_RECORD_FLAGS_KNOWN; /* a newer minor's flags: not ours to read */
    if (r->site >= c->sites_known || r->parent_site >= c->sites_known)
        refresh_sites(c);
    if (r->parent_site >= c->sites_known)
        r->parent_site = FUNCMON_SITE_NONE; /* an unknown parent is no parent */
    return r->site < c->sites_known && c->site_ok[r->site];
}

/* Reads ring i's drop counter and believes as much of its growth as the ring could have
 * dropped since the last read: one record per nanosecond, far above what a producer can
 * make (a call takes two clock reads and a record write). A counter that falls, or grows
 * faster, is a lie: the believable part is kept and the ring is no longer read. */
static void
check_dropped(struct funcmon_consumer *c, uint32_t i)
{
    struct funcmon_consumer_ring *ring = &c->rings[i];
    if (ring->bad)
        return;
    uint64_t v = __atomic_load_n(&slot_at(c, i)->dropped, __ATOMIC_RELAXED);
    if (v == ring->dropped)
        return; /* the window stays open from the last change: a longer one bounds as well */
    /* The time of this read, taken after it: a time taken before a long pass over other
     * rings would make the window look shorter than the one the counter really grew in. */
    uint64_t now = boot_ns();
    uint64_t bound = now > ring->dropped_ns ? now - ring->dropped_ns : 0;
    ring->dropped_ns = now;
    if (v < ring->dropped || v - ring->dropped > bound) {
        if (v > ring->dropped) {
            ring->dropped += bound;
            c->dropped_total += bound;
        }
        ring->bad = 1;
        c->bad_rings++;
        return;
    }
    c->dropped_total += v - ring->dropped;
    ring->dropped = v;
}

/* Records between two releases of a ring's tail while it is drained (a power of two). */
#define TAIL_RELEASE_EVERY 256u
#define FULL_PASS_EVERY FUNCMON_CONSUMER_FULL_PASS_EVERY
/* Passes without a record after which a slot is read only on full passes and wake-ups. */
#define QUIET_AFTER_PASSES 4u

/* Gives chunk idx (0-based) back to the pool: a push onto the free list. The release pairs
 * with the producer's acquire pop (pool_pop in client/src/thread.c): our reads of its
 * records are over before it writes them. The client can change the list word at will, so
 * the attempts are bounded; a chunk that could not be pushed is counted and kept out of
 * the pool (the client is not following the protocol). */
static void
give_back(struct funcmon_consumer *c, uint32_t idx)
{
    uint64_t word = __atomic_load_n(&c->hdr->pool_free, __ATOMIC_RELAXED);
    for (int tries = 0; tries < 64; tries++) {
        __atomic_store_n(&chunk_at(c, idx)->next_free, FUNCMON_POOL_TOP(word), __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&c->hdr->pool_free, &word, FUNCMON_POOL_WORD(idx + 1, FUNCMON_POOL_TAG(word) + 1u), 1,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
            c->chunks_returned++;
            __atomic_fetch_add(&c->hdr->chunks_returned, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    c->chunks_kept++;
}

/* Follows `link` (a chunk reference loaded from the segment) to the chunk that must hold
 * ring i's positions from `tail`: in range, of this slot, first == tail (or, for the chunk
 * a reader resumes in, first <= tail <= first + chunk_records). Returns 1 and makes it the
 * ring's chunk, 0 when the link is wrong. */
static int
enter_chunk(struct funcmon_consumer *c, uint32_t i, uint32_t link, int resume)
{
    struct funcmon_consumer_ring *ring = &c->rings[i];
    if (link == 0 || link > c->geo.pool_chunks)
        return 0;
    const struct funcmon_chunk *ch = chunk_at(c, link - 1);
    uint32_t owner = __atomic_load_n(&ch->slot, __ATOMIC_RELAXED);
    uint64_t first = __atomic_load_n(&ch->first, __ATOMIC_RELAXED);
    if (owner != i || (resume ? ring->tail - first > c->geo.chunk_records : first != ring->tail))
        return 0;
    ring->chunk = link;
    ring->chunk_first = first;
    /* Published before the chunk before it goes back to the pool: a reader that resumes
     * from the slot finds a chunk this slot still holds. */
    __atomic_store_n(&slot_at(c, i)->tail_chunk, link, __ATOMIC_RELAXED);
    return 1;
}

/* Makes sure ring i's chunk holds its tail, moving along the chain (and giving finished
 * chunks back) as needed. Called only while head > tail. Returns 0 on a broken link. */
static int
find_tail_chunk(struct funcmon_consumer *c, uint32_t i)
{
    struct funcmon_consumer_ring *ring = &c->rings[i];
    struct funcmon_thread_slot *slot = slot_at(c, i);
    if (ring->chunk == 0) {
        /* Resume where a reader before us stopped, or at the chain's start. The acquire
         * loads pair with the producer's release stores of the links (take_chunk in
         * client/src/thread.c). */
        uint32_t link = __atomic_load_n(&slot->tail_chunk, __ATOMIC_ACQUIRE);
        if (link != 0 ? !enter_chunk(c, i, link, 1) : !enter_chunk(c, i, __atomic_load_n(&slot->first_chunk, __ATOMIC_ACQUIRE), 0))
            return 0;
    }
    if (ring->tail - ring->chunk_first < c->geo.chunk_records)
        return 1;
    /* The tail left the chunk and head is past it, so the producer has linked the next one
     * (its release store of head came after the link). The slot's tail is published
     * first: a reader that resumes from the slot must find tail and tail_chunk in step
     * (tail is the next chunk's first position, which the finished chunk ends at). */
    __atomic_store_n(&slot->tail, ring->tail, __ATOMIC_RELEASE);
    uint32_t done = ring->chunk;
    if (!enter_chunk(c, i, __atomic_load_n(&chunk_at(c, done - 1)->next, __ATOMIC_ACQUIRE), 0))
        return 0;
    give_back(c, done - 1);
    return 1;
}

/* Turns retired slot i, read to the end, into a free one: RETIRED -> RECYCLING by
 * compare-and-swap (a thread claiming the slot at the same moment wins or loses as a
 * whole), clear its chunk references, give its last chunk back, then FREE. The state load
 * pairs with the owner's release store of RETIRED (release_slot in client/src/thread.c), so
 * the head read after it is the owner's last; the release store of FREE pairs with the next
 * claimer's acquire compare-and-swap (claim_slot): it starts from our final tail and sees
 * no chunk. */
static void
recycle_slot(struct funcmon_consumer *c, uint32_t i)
{
    struct funcmon_consumer_ring *ring = &c->rings[i];
    struct funcmon_thread_slot *slot = slot_at(c, i);
    uint32_t state = FUNCMON_SLOT_RETIRED;
    if (__atomic_load_n(&slot->state, __ATOMIC_ACQUIRE) != FUNCMON_SLOT_RETIRED ||
        __atomic_load_n(&slot->head, __ATOMIC_ACQUIRE) != ring->tail ||
        !__atomic_compare_exchange_n(&slot->state, &state, FUNCMON_SLOT_RECYCLING, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return;
    /* The last chunk: ours if we read any of the chain, else the one a reader before us
     * stopped in, else the chain's first (a chain never read); each checked like a link. */
    uint32_t last = ring->chunk;
    if (last == 0 && (enter_chunk(c, i, __atomic_load_n(&slot->tail_chunk, __ATOMIC_ACQUIRE), 1) ||
                      enter_chunk(c, i, __atomic_load_n(&slot->first_chunk, __ATOMIC_ACQUIRE), 1)))
        last = ring->chunk;
    __atomic_store_n(&slot->first_chunk, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->cur_chunk, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->tail_chunk, 0, __ATOMIC_RELAXED);
    if (last != 0)
        give_back(c, last - 1);
    ring->chunk = 0;
    __atomic_store_n(&slot->state, FUNCMON_SLOT_FREE, __ATOMIC_RELEASE);
    c->recycled++;
}

/* Drains ring i (slot i's chain of chunks). On a full pass, also makes its slot free again
 * if it is retired and read to the end. Returns the records delivered. */
static size_t
drain_ring(struct funcmon_consumer *c, uint32_t i, funcmon_record_fn fn, void *arg, size_t max_per_ring, int full)
{
    struct funcmon_consumer_ring *ring = &c->rings[i];
    struct funcmon_thread_slot *slot = slot_at(c, i);
    uint64_t mask = c->geo.chunk_records - 1;
    size_t delivered = 0;

    if (ring->bad)
        return 0;
    /* Pairs with the producer's release store of head after writing the records
     * (funcmon__publish in funcmon.h, publish_span in client/src/thread.c). */
    uint64_t head = __atomic_load_n(&slot->head, __ATOMIC_ACQUIRE);
    uint64_t avail = head - ring->tail;
    if (avail > c->pool_records) {
        ring->bad = 1;
        c->bad_rings++;
        return 0;
    }
    if (avail > max_per_ring)
        avail = max_per_ring;
    uint64_t since_release = 0;
    while (avail != 0) {
        if (!find_tail_chunk(c, i)) {
            ring->bad = 1;
            c->bad_rings++;
            break;
        }
        uint64_t n = c->geo.chunk_records - (ring->tail - ring->chunk_first);
        if (n > avail)
            n = avail;
        const struct funcmon_record *base = records_at(c, ring->chunk - 1);
        for (uint64_t k = 0; k < n; k++) {
            struct funcmon_record rec;
            uint64_t pos = ring->tail + k;
            /* The producer wrote these lines on another core: ask for a few ahead, but only
             * lines already published; touching one it is about to write would make it
             * wait for the line to come back. */
            if (k + 8 < n)
                __builtin_prefetch(&base[(pos + 8) & mask]);
            memcpy(&rec, &base[pos & mask], sizeof(rec));
            if (!record_ok(c, &rec, pos)) {
                c->bad_records++;
                continue;
            }
            fn(arg, i, &rec);
            delivered++;
        }
        ring->tail += n;
        avail -= n;
        /* Hand back what is copied as the pass goes, not at its end: the producer's
         * wake-up check looks at this tail. Pairs with its acquire load (room_for_record
         * in client/src/thread.c). */
        since_release += n;
        if (since_release >= TAIL_RELEASE_EVERY || avail == 0) {
            __atomic_store_n(&slot->tail, ring->tail, __ATOMIC_RELEASE);
            since_release = 0;
        }
    }
    if (full && !ring->bad)
        recycle_slot(c, i);
    return delivered;
}

/* Whether slot i is still to be read: claimed or retired, or with records left. */
static int
still_in_use(const struct funcmon_consumer *c, uint32_t i)
{
    const struct funcmon_thread_slot *slot = slot_at(c, i);
    /* Pair with the release stores of state (release_slot) and head (funcmon__publish). */
    return !c->rings[i].bad && (__atomic_load_n(&slot->state, __ATOMIC_ACQUIRE) != FUNCMON_SLOT_FREE ||
                                __atomic_load_n(&slot->head, __ATOMIC_ACQUIRE) != c->rings[i].tail);
}

size_t
funcmon_consumer_drain(struct funcmon_consumer *c, funcmon_record_fn fn, void *arg, size_t max_per_ring)
{
    size_t delivered = 0;
    /* Read before the pass: a claim made during it changes the counter again. Pairs with
     * no release (attach in client/src/thread.c adds to it relaxed): the counter only
     * chooses a full pass, which reads each slot's state with its own acquire. */
    uint64_t claims = __atomic_load_n(&c->hdr->threads_claimed, __ATOMIC_ACQUIRE);
    /* A client wakes us because something filled: then every slot in use is read. The
     * word is only compared, nothing read through it. */
    uint32_t wake = __atomic_load_n(&c->hdr->wake_word, __ATOMIC_RELAXED);
    int woken = wake != c->wake_seen, full = (c->passes++ & (FULL_PASS_EVERY - 1)) == 0 || c->read_all_next;
    c->wake_seen = wake;
    c->read_all_next = 0;

    if (claims == c->claims_seen && c->passes > 1 && !full && !woken) {
        /* The busy slots only (in use, with records in the last QUIET_AFTER_PASSES
         * passes): a quiet one is read on full passes and wake-ups, so thousands of idle
         * threads cost nothing here. */
        uint32_t n_busy = 0;
        for (uint32_t k = 0; k < c->n_busy; k++) {
            uint32_t i = c->busy[k];
            struct funcmon_consumer_ring *ring = &c->rings[i];
            size_t got = drain_ring(c, i, fn, arg, max_per_ring, 0);
            delivered += got;
            ring->quiet = got != 0 ? 0 : ring->quiet + 1;
            if (got != 0)
                check_dropped(c, i);
            if (ring->quiet < QUIET_AFTER_PASSES && !ring->bad)
                c->busy[n_busy++] = i;
        }
        c->n_busy = n_busy;
        c->records += delivered;
        return delivered;
    }
    if (claims == c->claims_seen && c->passes > 1) {
        /* Every slot in use: a slot not in use has no records without a claim first. */
        uint32_t n_live = 0, n_busy = 0;
        for (uint32_t k = 0; k < c->n_live; k++) {
            uint32_t i = c->live[k];
            struct funcmon_consumer_ring *ring = &c->rings[i];
            size_t got = drain_ring(c, i, fn, arg, max_per_ring, full);
            delivered += got;
            ring->quiet = got != 0 ? 0 : ring->quiet < QUIET_AFTER_PASSES ? ring->quiet + 1 : ring->quiet;
            if (got != 0 || full)
                check_dropped(c, i);
            if (!full || still_in_use(c, i)) {
                c->live[n_live++] = i;
                if (ring->quiet < QUIET_AFTER_PASSES && !ring->bad)
                    c->busy[n_busy++] = i;
            }
        }
        c->n_live = n_live;
        c->n_busy = n_busy;
        c->records += delivered;
        return delivered;
    }
    /* Claims since the last look (or the first pass): every slot. */
    uint32_t n_live = 0;
    for (uint32_t i = 0; i < c->geo.max_threads; i++) {
        delivered += drain_ring(c, i, fn, arg, max_per_ring, 1);
        check_dropped(c, i);
        c->rings[i].quiet = 0;
        if (still_in_use(c, i)) {
            c->busy[n_live] = i;
            c->live[n_live++] = i;
        }
    }
    c->n_live = n_live;
    c->n_busy = n_live;
    c->claims_seen = claims;
    c->records += delivered;
    return delivered;
}

void
funcmon_consumer_read_all_next(struct funcmon_consumer *c)
{
    c->read_all_next = 1;
}

uint32_t
funcmon_consumer_slots_in_use(const struct funcmon_consumer *c, const uint32_t **slots)
{
    *slots = c->live;
    return c->n_live;
}

uint32_t
funcmon_consumer_slot_depth(const struct funcmon_consumer *c, uint32_t i)
{
    if (i >= c->geo.max_threads)
        return 0;
    /* Pairs with the producer's release store of depth (funcmon_begin in funcmon.h). */
    return __atomic_load_n(&slot_at(c, i)->depth, __ATOMIC_ACQUIRE);
}

int
funcmon_consumer_slot(const struct funcmon_consumer *c, uint32_t i, struct funcmon_slot_info *out)
{
    if (i >= c->geo.max_threads)
        return -EINVAL;
    const struct funcmon_thread_slot *s = slot_at(c, i);
    memset(out, 0, sizeof(*out));
    /* Pair with the release stores of state (release_slot in client/src/thread.c) and
     * head (funcmon__publish in funcmon.h). */
    out->state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    out->tid = __atomic_load_n(&s->tid, __ATOMIC_RELAXED);
    out->generation = __atomic_load_n(&s->generation, __ATOMIC_RELAXED);
    out->head = __atomic_load_n(&s->head, __ATOMIC_ACQUIRE);
    out->tail = c->rings[i].tail;
    out->dropped = __atomic_load_n(&s->dropped, __ATOMIC_RELAXED);
    /* Pairs with the producer's release store of depth after it wrote the entry
     * (funcmon_begin and funcmon__publish in funcmon.h, attach in client/src/thread.c). */
    out->depth = __atomic_load_n(&s->depth, __ATOMIC_ACQUIRE);
    out->entries = out->depth < FUNCMON_INFLIGHT_MAX ? out->depth : FUNCMON_INFLIGHT_MAX;
    memcpy(out->inflight, s->inflight, out->entries * sizeof(out->inflight[0]));
    memcpy(out->thread_name, s->thread_name, sizeof(out->thread_name));
    out->thread_name[FUNCMON_THREAD_NAME_MAX] = '\0';
    return 0;
}

uint32_t
funcmon_consumer_pool_used(const struct funcmon_consumer *c)
{
    uint64_t taken = __atomic_load_n(&c->hdr->chunks_taken, __ATOMIC_RELAXED);
    uint64_t returned = __atomic_load_n(&c->hdr->chunks_returned, __ATOMIC_RELAXED);
    uint64_t used = taken >= returned ? taken - returned : 0;
    return used < c->geo.pool_chunks ? (uint32_t)used : c->geo.pool_chunks;
}

uint64_t
funcmon_consumer_dropped(struct funcmon_consumer *c)
{
    /* Slots in use and not quiet are read now (a reader asks after producers dropped,
     * before draining); the others count as of the last full pass, or are all read before
     * the first pass. */
    if (c->passes == 0) {
        for (uint32_t i = 0; i < c->geo.max_threads; i++)
            check_dropped(c, i);
    } else {
        for (uint32_t k = 0; k < c->n_live; k++)
            if (c->rings[c->live[k]].quiet < QUIET_AFTER_PASSES)
                check_dropped(c, c->live[k]);
    }
    return c->dropped_total;
}

int
funcmon_consumer_clock(const struct funcmon_consumer *c, struct funcmon_clock *out)
{
    const struct funcmon_shm_header *h = c->hdr;
    /* Sequence lock reader, bounded: a writer that never finishes cannot hold us. */
    for (int tries = 0; tries < 1000; tries++) {
        /* Pairs with the release store of the even sequence after the fields
         * (funcmon__clock_publish in client/src/clock.c). */
        uint32_t seq = __atomic_load_n(&h->calib_seq, __ATOMIC_ACQUIRE);
        if (seq & 1)
            continue;
        /* Acquire loads: the second look at the sequence cannot move before them. They
         * pair with no release of their own (the client stores the fields relaxed). */
        out->source = __atomic_load_n(&h->clock_source, __ATOMIC_ACQUIRE);
        out->shift = __atomic_load_n(&h->tick_shift, __ATOMIC_ACQUIRE);
        out->mult = __atomic_load_n(&h->tick_mult, __ATOMIC_ACQUIRE);
        out->ref_ticks = __atomic_load_n(&h->ref_ticks, __ATOMIC_ACQUIRE);
        out->ref_mono_ns = __atomic_load_n(&h->ref_mono_ns, __ATOMIC_ACQUIRE);
        out->ref_real_ns = __atomic_load_n(&h->ref_real_ns, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&h->calib_seq, __ATOMIC_RELAXED) == seq) {
            if (out->shift > 63 || out->mult == 0)
                return -EPROTO;
            return 0;
        }
    }
    return -EAGAIN;
}

int64_t
funcmon_clock_since_ref_ns(const struct funcmon_clock *clk, uint64_t ticks)
{
    int neg = ticks < clk->ref_ticks;
    uint64_t d = neg ? clk->ref_ticks - ticks : ticks - clk->ref_ticks;
    unsigned __int128 ns = ((unsigned __int128)d * clk->mult) >> clk->shift;
    if (ns > INT64_MAX)
        ns = INT64_MAX;
    return neg ? -(int64_t)ns : (int64_t)ns;
}

uint64_t
funcmon_clock_mono_ns(const struct funcmon_clock *clk, uint64_t ticks)
{
    return clk->ref_mono_ns + (uint64_t)funcmon_clock_since_ref_ns(clk, ticks);
}

uint64_t
funcmon_clock_real_ns(const struct funcmon_clock *clk, uint64_t ticks)
{
    return clk->ref_real_ns + (uint64_t)funcmon_clock_since_ref_ns(clk, ticks);
}

int
funcmon_consumer_control(struct funcmon_consumer *c, uint32_t op, int timeout_ms)
{
    return funcmon_control_call(c->hdr, op, timeout_ms);
}
