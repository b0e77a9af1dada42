/*
 * thread.c - a thread's slot and chunks: claiming a slot, the rare paths of a call,
 * releasing it.
 *
 * Each thread claims a slot (its chain of chunks and its in-flight stack) on its first
 * profiled call and releases it from a TLS destructor when it exits. A released slot is
 * RETIRED, still holding its last chunk: the next thread to claim it carries on in that
 * chunk, or the sidecar, once it has read the slot to the end, gives the chunk back and
 * makes the slot FREE. Positions are never reset, so a reader's tail stays valid across
 * owners. funcmon/layout.h describes the protocol.
 *
 * Everything funcmon_begin/funcmon_end cannot do in a few instructions comes here:
 *  - first call of a thread, or first call after init, shutdown or fork (generation
 *    changed): attach;
 *  - no slot free (more threads than FUNCMON_MAX_THREADS): the thread runs in "slow" mode,
 *    its calls counted in the per-site spill counters (exact counts and durations, no
 *    detail), and it tries again for a slot every SLOT_RETRY_CALLS calls;
 *  - the first record of a chunk: take a chunk from the pool and link it to the chain;
 *    wake a sleeping sidecar (futex) if the slot's backlog is past the high-water mark;
 *  - the pool is empty: drop the record, count it in the slot and in the site's spill
 *    counters. Nothing here waits or blocks on the sidecar.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* A chunk goes from its last writer to its next through funcmond, another process, which
 * ThreadSanitizer cannot see (the release of head, funcmond's acquire and its release
 * push, the next writer's acquire pop): the two ends of that hand-over are told to it
 * directly. Nothing in other builds. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define CHUNK_LEFT(c) __tsan_release(c)
#define CHUNK_TAKEN(c) __tsan_acquire(c)
#else
#define CHUNK_LEFT(c) ((void)(c))
#define CHUNK_TAKEN(c) ((void)(c))
#endif

#define SLOT_RETRY_CALLS 4096u
/* High water: a sleeping sidecar is woken once a slot holds this many unread records, or a
 * quarter of the pool if that is less (looked at when a chunk is taken). It was a quarter
 * of protocol 1's default ring; the default pool behind it is 224 times larger, so the
 * sidecar has that much longer to respond. */
#define WAKE_BACKLOG 2048u

FUNCMON_API __thread struct funcmon__thread funcmon__tls __attribute__((tls_model("initial-exec")));
/* Generation 1, ring mode. Thread states start at 0, so every thread attaches first. */
FUNCMON_API uint32_t funcmon__live_state = (1u << 2) | FUNCMON__MODE_RING;

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static int exit_key_ok;

static void on_thread_exit(void *arg);

static void
make_exit_key(void)
{
    exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

int
funcmon__thread_key_init(void)
{
    pthread_once(&exit_key_once, make_exit_key);
    return exit_key_ok ? 0 : -EAGAIN;
}

void
funcmon__thread_want_exit_hook(struct funcmon__thread *t)
{
    if (exit_key_ok)
        pthread_setspecific(exit_key, t);
}

/* Drops the thread's slot. check_at = head sends the end of any call still in flight to
 * funcmon__end_slow, which counts it without a record instead of writing through NULL. */
static void
forget_ring(struct funcmon__thread *t)
{
    t->slot = NULL;
    t->records = NULL;
    t->chunk = NULL;
    t->chunk_end = t->head;
    t->check_at = t->head;
}

/* Counts a call that produced no record in its site's spill counters: the call, its error
 * and 4xx flags, its duration and duration bucket. */
static void
spill(struct funcmon__thread *t, uint32_t site, uint32_t flags, uint64_t ticks)
{
    if (t->sites == NULL || site >= t->max_sites)
        return;
    struct funcmon_site_entry *s = &t->sites[site];
    __atomic_fetch_add(&s->spill_calls, 1, __ATOMIC_RELAXED);
    if (flags & FUNCMON_RECORD_ERROR)
        __atomic_fetch_add(&s->spill_errors, 1, __ATOMIC_RELAXED);
    if (flags & FUNCMON_RECORD_CLIENT_ERROR)
        __atomic_fetch_add(&s->spill_client_errors, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->spill_ticks, ticks, __ATOMIC_RELAXED);
    /* The calibration may be refined meanwhile: a bucket from the one before is as good. */
    uint64_t ns = ticks;
    if (t->hdr != NULL) {
        uint64_t mult = __atomic_load_n(&t->hdr->tick_mult, __ATOMIC_RELAXED);
        uint32_t shift = __atomic_load_n(&t->hdr->tick_shift, __ATOMIC_RELAXED);
        unsigned __int128 wide = ((unsigned __int128)ticks * mult) >> (shift & 63);
        ns = wide > UINT64_MAX ? UINT64_MAX : (uint64_t)wide;
    }
    __atomic_fetch_add(&s->spill_hist[funcmon_spill_bucket(ns)], 1, __ATOMIC_RELAXED);
}

/* Takes a chunk off the pool's free list: its index, or -1 when the pool is empty. The
 * acquire pairs with the release of the sidecar's push (give_back in proto/src/consumer.c):
 * its reads of the chunk's records are over before we write them, and the next_free it
 * wrote is visible. */
static int64_t
pool_pop(struct funcmon__thread *t)
{
    uint64_t word = __atomic_load_n(&t->hdr->pool_free, __ATOMIC_ACQUIRE);
    for (;;) {
        uint32_t top = FUNCMON_POOL_TOP(word);
        if (top == 0 || top > t->pool_chunks)
            return -1;
        /* The chunk may be popped by another thread between this load and the
         * compare-and-swap; then the tag has changed and the swap fails. */
        uint32_t below = __atomic_load_n(&t->chunks[top - 1].next_free, __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&t->hdr->pool_free, &word, FUNCMON_POOL_WORD(below, FUNCMON_POOL_TAG(word) + 1u), 1,
                                        __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            return (int64_t)top - 1;
    }
}

static void wake_consumer(struct funcmon_shm_header *hdr);

/* Starts a chunk at t's head and links it after the current one (or as the slot's first).
 * Returns 0 when the pool is empty. */
static int
take_chunk(struct funcmon__thread *t)
{
    int64_t idx = t->hdr != NULL && t->chunks != NULL ? pool_pop(t) : -1;
    if (idx < 0)
        return 0;
    struct funcmon_chunk *c = &t->chunks[idx];
    CHUNK_TAKEN(c);
    /* Many threads, each with a small backlog, can empty the pool without any of them
     * reaching its own high water: a pool more than half used wakes a sleeping sidecar
     * too. Both counters sit on the line the pop just wrote. */
    uint64_t taken = __atomic_fetch_add(&t->hdr->chunks_taken, 1, __ATOMIC_RELAXED) + 1;
    if (taken - __atomic_load_n(&t->hdr->chunks_returned, __ATOMIC_RELAXED) > t->pool_chunks / 2)
        wake_consumer(t->hdr);
    __atomic_store_n(&c->slot, t->slot_index, __ATOMIC_RELAXED);
    __atomic_store_n(&c->first, t->head, __ATOMIC_RELAXED);
    __atomic_store_n(&c->next, 0, __ATOMIC_RELAXED);
    /* Release: pairs with the sidecar's acquire load of the link (enter_chunk in
     * proto/src/consumer.c), which then sees the header above. */
    if (t->chunk != NULL) {
        CHUNK_LEFT(t->chunk);
        __atomic_store_n(&t->chunk->next, (uint32_t)idx + 1, __ATOMIC_RELEASE);
    } else
        __atomic_store_n(&t->slot->first_chunk, (uint32_t)idx + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&t->slot->cur_chunk, (uint32_t)idx + 1, __ATOMIC_RELEASE);
    t->chunk = c;
    t->records = t->pool + (uint64_t)idx * (t->mask + 1);
    t->chunk_end = t->head + t->mask + 1;
    return 1;
}

/* Wakes the sidecar if it sleeps waiting for a ring to fill (it set consumer_waiting). */
static void
wake_consumer(struct funcmon_shm_header *hdr)
{
    /* A read-modify-write, not a load: as a full barrier it orders our head store before
     * we look at the flag, and the consumer sets the flag before it reads heads, so one of
     * the two sides always sees the other. Slow path only. */
    if (__atomic_exchange_n(&hdr->consumer_waiting, 0, __ATOMIC_SEQ_CST) == 0)
        return;
    __atomic_fetch_add(&hdr->wake_word, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &hdr->wake_word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    __atomic_fetch_add(&hdr->wakeups, 1, __ATOMIC_RELAXED);
}

static void
release_slot(struct funcmon__thread *t)
{
    struct funcmon_thread_slot *slot = t->slot;
    if (slot == NULL)
        return;
    __atomic_store_n(&slot->depth, 0, __ATOMIC_RELAXED);
    if (t->chunk != NULL)
        CHUNK_LEFT(t->chunk);
    /* Pairs with the acquire CAS of the next claimer and the consumer's acquire load
     * (drain_ring, funcmon_consumer_slot in proto/src/consumer.c). */
    __atomic_store_n(&slot->state, FUNCMON_SLOT_RETIRED, __ATOMIC_RELEASE);
    forget_ring(t);
}

static struct funcmon_thread_slot *
claim_slot(struct funcmon__segment *seg, uint32_t *index)
{
    uint32_t start = atomic_fetch_add_explicit(&funcmon__proc.slot_hint, 1, memory_order_relaxed);
    for (uint32_t i = 0; i < seg->max_threads; i++) {
        uint32_t idx = (start + i) % seg->max_threads;
        struct funcmon_thread_slot *slot = &seg->slots[idx];
        /* The state load pairs with the release stores of the last owner (release_slot) and
         * of the consumer's swap to FREE; the tail load with the consumer's release store
         * of tail (drain_ring in proto/src/consumer.c). */
        uint32_t state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);
        if (state == FUNCMON_SLOT_RETIRED &&
            __atomic_load_n(&slot->tail, __ATOMIC_ACQUIRE) != __atomic_load_n(&slot->head, __ATOMIC_RELAXED))
            continue; /* its last records are not drained yet */
        if (state != FUNCMON_SLOT_FREE && state != FUNCMON_SLOT_RETIRED)
            continue;
        /* A RETIRED slot may turn FREE under us (the sidecar recycling it): try once more.
         * The acquire pairs with the consumer's release swap to FREE (drain_ring), so the
         * tail read below is its final one. */
        for (int tries = 0; tries < 2; tries++) {
            if (__atomic_compare_exchange_n(&slot->state, &state, FUNCMON_SLOT_ACTIVE, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                *index = idx;
                return slot;
            }
            if (state != FUNCMON_SLOT_FREE)
                break;
        }
    }
    return NULL;
}

/* Gives the calling thread a ring in the current generation, or a mode without one. */
static void
attach(struct funcmon__thread *t)
{
    struct funcmon__process *p = &funcmon__proc;
    struct funcmon__segment *seg = &p->seg;
    uint32_t index;

    pthread_mutex_lock(&p->lock);
    uint32_t live = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED);
    uint32_t gen = live & ~3u;
    if ((t->state & ~3u) != gen) {
        /* The old slot belongs to a retired segment (shutdown or fork): forget it. */
        forget_ring(t);
        t->hdr = NULL;
        t->sites = NULL;
    }
    /* Attach reaches back into segment creation because a segment can be owed: a forked
     * child (need_segment) gets its own only at its first profiled call, so that a child
     * that only execs or exits creates nothing; this is that first call. */
    if (!p->enabled || (p->need_segment && funcmon__ensure_segment_locked() != 0) || seg->hdr == NULL) {
        t->state = gen | FUNCMON__MODE_OFF;
        goto out;
    }
    t->hdr = seg->hdr;
    t->sites = seg->sites;
    t->max_sites = seg->max_sites;
    t->record_flags = funcmon_alloc_tracking() ? FUNCMON_RECORD_ALLOC : 0;
    struct funcmon_thread_slot *slot = t->exiting ? NULL : claim_slot(seg, &index);
    if (slot == NULL) {
        if ((t->state & 3u) != FUNCMON__MODE_SLOW || (t->state & ~3u) != gen)
            __atomic_fetch_add(&seg->hdr->fallback_threads, 1, __ATOMIC_RELAXED);
        t->state = gen | FUNCMON__MODE_SLOW;
        t->retry_in = SLOT_RETRY_CALLS;
        goto out;
    }
    slot->tid = (int32_t)syscall(SYS_gettid);
    memset(slot->thread_name, 0, sizeof(slot->thread_name));
    prctl(PR_GET_NAME, slot->thread_name, 0, 0, 0);
    slot->thread_name[FUNCMON_THREAD_NAME_MAX] = '\0';
    slot->claimed_ticks = funcmon__ticks();
    __atomic_fetch_add(&slot->generation, 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(&seg->hdr->threads_claimed, 1, __ATOMIC_RELAXED);
    t->slot = slot;
    t->slot_index = index;
    t->chunks = seg->chunks;
    t->pool = seg->records;
    t->pool_chunks = seg->pool_chunks;
    t->mask = seg->chunk_records - 1;
    uint64_t quarter = (uint64_t)seg->pool_chunks * seg->chunk_records / 4;
    t->wake_backlog = quarter < WAKE_BACKLOG ? (uint32_t)quarter : WAKE_BACKLOG;
    t->head = __atomic_load_n(&slot->head, __ATOMIC_RELAXED);
    /* A retired slot's chain goes on in its last chunk (it belongs to the slot); a free
     * slot has none, and the first record starts one. The claim's acquire orders these
     * reads after the last owner's and the sidecar's stores. */
    t->chunk = NULL;
    t->records = NULL;
    t->chunk_end = t->head;
    uint32_t cur = __atomic_load_n(&slot->cur_chunk, __ATOMIC_RELAXED);
    if (cur != 0 && cur <= seg->pool_chunks) {
        struct funcmon_chunk *c = &seg->chunks[cur - 1];
        uint64_t first = __atomic_load_n(&c->first, __ATOMIC_RELAXED);
        if (t->head - first <= (uint64_t)seg->chunk_records) {
            t->chunk = c;
            t->records = seg->records + (uint64_t)(cur - 1) * seg->chunk_records;
            t->chunk_end = first + seg->chunk_records;
        }
    }
    t->check_at = t->chunk_end;
    /* Pairs with the sidecar's acquire load of depth before it reads inflight[]
     * (funcmon_consumer_slot). */
    __atomic_store_n(&slot->depth, t->depth, __ATOMIC_RELEASE);
    if (exit_key_ok)
        pthread_setspecific(exit_key, t);
    t->state = live;
out:
    pthread_mutex_unlock(&p->lock);
}

FUNCMON_API struct funcmon_call
funcmon__begin_slow(uint32_t site)
{
    struct funcmon__thread *t = &funcmon__tls;
    struct funcmon_call c;
    uint32_t live = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED);

    if ((t->state & ~3u) != (live & ~3u) || (t->state & 3u) == FUNCMON__MODE_NONE ||
        ((t->state & 3u) == FUNCMON__MODE_SLOW && --t->retry_in == 0))
        attach(t);
    if (t->state == live)
        return funcmon_begin(site);
    memset(&c, 0, sizeof(c));
    if ((t->state & 3u) != FUNCMON__MODE_SLOW) {
        c.mode = FUNCMON__CALL_OFF;
        return c;
    }
    /* No ring: time the call anyway (it restores depth and error marks like any other),
     * count it at the end. */
    c.mode = FUNCMON__CALL_SLOW;
    c.site = site;
    c.depth = t->depth;
    c.parent_site = (uint32_t)t->top;
    c.parent_stack = (uint32_t)(t->top >> 32);
    c.start = funcmon__ticks();
    t->depth = c.depth + 1;
    t->top = (uint64_t)funcmon_stack_id(c.parent_stack, site) << 32 | site;
    return c;
}

/* At a check point (check_at): the end of t's chunk, or the position at which the slot's
 * backlog would reach high water. 1 when the record has room, in a new chunk if the last
 * one is full (the sidecar woken if the backlog is past high water); 0 when the pool is
 * empty (the record is dropped and counted, the call with its duration in the site's spill
 * counters, the sidecar woken; the next record tries the pool again). */
static int
room_for_record(struct funcmon__thread *t, uint32_t site, uint32_t flags, uint64_t ticks)
{
    if (t->head == t->chunk_end && !take_chunk(t)) {
        /* Only this thread writes `dropped`. */
        __atomic_store_n(&t->slot->dropped, t->slot->dropped + 1, __ATOMIC_RELAXED);
        spill(t, site, flags, ticks);
        t->check_at = t->head;
        if (t->hdr != NULL) {
            __atomic_fetch_add(&t->hdr->pool_empty, 1, __ATOMIC_RELAXED);
            wake_consumer(t->hdr);
        }
        return 0;
    }
    /* Pairs with the consumer's release store of tail (drain_ring in proto/src/consumer.c). */
    uint64_t tail = __atomic_load_n(&t->slot->tail, __ATOMIC_ACQUIRE);
    if (t->head - tail >= t->wake_backlog) {
        wake_consumer(t->hdr);
        t->check_at = t->chunk_end;
    } else {
        uint64_t high_water = tail + t->wake_backlog;
        t->check_at = high_water < t->chunk_end ? high_water : t->chunk_end;
    }
    return 1;
}

FUNCMON_API void
funcmon__end_slow(struct funcmon_call *call, uint64_t end, uint32_t flags)
{
    struct funcmon__thread *t = &funcmon__tls;
    uint32_t depth = call->depth;
    uint64_t bit = (uint64_t)(depth < 64) << (depth & 63);

    if ((t->err_bits & bit) != 0)
        flags |= FUNCMON_RECORD_ERROR;
    uint64_t ticks = end > call->start ? end - call->start : 0;
    if (call->mode == FUNCMON__CALL_SLOW || t->slot == NULL) {
        spill(t, call->site, flags, ticks);
        if (t->hdr != NULL)
            __atomic_fetch_add(&t->hdr->fallback_calls, 1, __ATOMIC_RELAXED);
        t->err_bits &= ~bit;
        t->depth = depth;
        t->top = (uint64_t)call->parent_stack << 32 | call->parent_site;
        return;
    }
    if (!room_for_record(t, call->site, flags, ticks)) {
        t->err_bits &= ~bit;
        t->depth = depth;
        t->top = (uint64_t)call->parent_stack << 32 | call->parent_site;
        __atomic_store_n(&t->slot->depth, depth, __ATOMIC_RELEASE);
        return;
    }
    funcmon__publish(t, call, end, flags, t->head);
}

/* A span's record at position head: like funcmon__publish, without touching the
 * thread's call stack (depth 0, no parent, no allocation figures). */
static void
publish_span(struct funcmon__thread *t, uint32_t site, uint64_t start, uint64_t end, uint32_t flags, uint64_t head)
{
    struct funcmon_record *r = &t->records[head & t->mask];
    r->seq = head;
    r->site = site;
    r->parent_site = FUNCMON_SITE_NONE;
    r->flags = (uint16_t)flags;
    r->depth = 0;
    r->parent_stack = 0;
    r->start = start;
    r->end = end;
    r->alloc_bytes = 0;
    r->free_bytes = 0;
    r->alloc_count = 0;
    r->free_count = 0;
    t->head = head + 1;
    /* Pairs with the consumer's acquire load of head before it reads the record. */
    __atomic_store_n(&t->slot->head, head + 1, __ATOMIC_RELEASE);
}

void
funcmon__record_span(struct funcmon__thread *t, uint32_t site, uint64_t start, uint64_t end, uint32_t flags)
{
    uint64_t head = t->head;
    if (FUNCMON__LIKELY(head != t->check_at)) {
        publish_span(t, site, start, end, flags, head);
        return;
    }
    if (t->slot == NULL) {
        spill(t, site, flags, end - start);
        if (t->hdr != NULL)
            __atomic_fetch_add(&t->hdr->fallback_calls, 1, __ATOMIC_RELAXED);
        return;
    }
    if (!room_for_record(t, site, flags, end - start))
        return;
    publish_span(t, site, start, end, flags, head);
}

FUNCMON_API void
funcmon_set_error(void)
{
    struct funcmon__thread *t = &funcmon__tls;
    if (t->depth > 0 && t->depth <= 64)
        t->err_bits |= UINT64_C(1) << (t->depth - 1);
}

static void
on_thread_exit(void *arg)
{
    struct funcmon__thread *t = arg;
    uint32_t live = __atomic_load_n(&funcmon__live_state, __ATOMIC_RELAXED);

    /* Only a slot of the current generation is still in a live segment. */
    pthread_mutex_lock(&funcmon__proc.lock);
    if ((t->state & ~3u) == (live & ~3u))
        release_slot(t);
    pthread_mutex_unlock(&funcmon__proc.lock);
    funcmon__alloc_thread_exit(t);
    forget_ring(t);
    t->exiting = 1;
    t->state = FUNCMON__MODE_NONE;
}

void
funcmon__thread_forget_all(void)
{
    struct funcmon__thread *t = &funcmon__tls;
    forget_ring(t);
    t->hdr = NULL;
    t->sites = NULL;
    t->state = FUNCMON__MODE_NONE;
}
