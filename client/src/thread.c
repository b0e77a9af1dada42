/*
 * thread.c - a thread's ring: claiming a slot, the rare paths of a call, releasing it.
 *
 * Each thread claims a slot (its ring and in-flight stack) on its first profiled call and
 * releases it from a TLS destructor when it exits. A released slot is RETIRED until the
 * sidecar has drained it; then the sidecar, or the next thread looking for a slot, makes
 * it reusable. Ring positions are never reset, so a reader's tail stays valid across
 * owners.
 *
 * Everything funcmon_begin/funcmon_end cannot do in a few instructions comes here:
 *  - first call of a thread, or first call after init, shutdown or fork (generation
 *    changed): attach;
 *  - no slot free (more threads than FUNCMON_MAX_THREADS): the thread runs in "slow" mode,
 *    its calls counted in the per-site spill counters (exact counts, no detail), and it
 *    tries again for a slot every SLOT_RETRY_CALLS calls;
 *  - the ring reached its high-water mark: wake a sleeping sidecar (futex) if it asked;
 *  - the ring is full: drop the record, count it in the slot and in the site's spill
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

#define SLOT_RETRY_CALLS 4096u
/* High water: a sleeping sidecar is woken once a ring is a quarter full, which leaves it
 * three quarters of a ring of time to respond before a producer at full speed drops. */
#define FUNCMON_WAKE_DIVISOR 4

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

/* Drops the thread's ring. check_at = head sends the end of any call still in flight to
 * funcmon__end_slow, which counts it without a ring instead of writing through NULL. */
static void
forget_ring(struct funcmon__thread *t)
{
    t->slot = NULL;
    t->records = NULL;
    t->check_at = t->head;
}

static uint32_t
ring_mask(const struct funcmon__thread *t)
{
    return (uint32_t)t->mask;
}

/* Where funcmon_end must next leave the fast path, given the consumer's tail: at the
 * high-water mark (a quarter full), then every 1/16 of the ring above it, and at every call
 * while the ring is full. */
static void
set_check_at(struct funcmon__thread *t, uint64_t tail)
{
    uint64_t cap = (uint64_t)ring_mask(t) + 1, used = t->head - tail;
    if (used >= cap) {
        t->check_at = t->head;
    } else if (used < cap / FUNCMON_WAKE_DIVISOR) {
        t->check_at = tail + cap / FUNCMON_WAKE_DIVISOR;
    } else {
        uint64_t next = t->head + cap / 16;
        t->check_at = next < tail + cap ? next : tail + cap;
    }
}

static void
spill(struct funcmon__thread *t, uint32_t site, uint32_t flags)
{
    if (t->sites == NULL || site >= t->max_sites)
        return;
    __atomic_fetch_add(&t->sites[site].spill_calls, 1, __ATOMIC_RELAXED);
    if (flags & FUNCMON_RECORD_ERROR)
        __atomic_fetch_add(&t->sites[site].spill_errors, 1, __ATOMIC_RELAXED);
    if (flags & FUNCMON_RECORD_CLIENT_ERROR)
        __atomic_fetch_add(&t->sites[site].spill_client_errors, 1, __ATOMIC_RELAXED);
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
    t->records = seg->rings + (uint64_t)index * seg->ring_records;
    t->mask = seg->ring_records - 1;
    t->head = __atomic_load_n(&slot->head, __ATOMIC_RELAXED);
    /* tail: pairs with the consumer's release store (drain_ring in proto/src/consumer.c);
     * depth: with its acquire load before it reads inflight[] (funcmon_consumer_slot). */
    set_check_at(t, __atomic_load_n(&slot->tail, __ATOMIC_ACQUIRE));
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

/* At a check point of t's ring: 0 when it is full (the record is dropped and counted, the
 * call and its error in the site's spill counters, and the sidecar woken), 1 when there is
 * room (the sidecar woken if the ring is past high water). *tail: the consumer's tail. */
static int
room_for_record(struct funcmon__thread *t, uint32_t site, uint32_t flags, uint64_t *tail)
{
    uint64_t cap = t->mask + 1;
    /* Pairs with the consumer's release store of tail (drain_ring in proto/src/consumer.c). */
    *tail = __atomic_load_n(&t->slot->tail, __ATOMIC_ACQUIRE);
    uint64_t used = t->head - *tail;
    if (used >= cap) {
        /* Full: drop the detail, keep the count. Only this thread writes `dropped`. */
        __atomic_store_n(&t->slot->dropped, t->slot->dropped + 1, __ATOMIC_RELAXED);
        spill(t, site, flags);
        set_check_at(t, *tail);
        if (t->hdr != NULL)
            wake_consumer(t->hdr);
        return 0;
    }
    if (used >= cap / FUNCMON_WAKE_DIVISOR && t->hdr != NULL)
        wake_consumer(t->hdr);
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
    if (call->mode == FUNCMON__CALL_SLOW || t->slot == NULL) {
        spill(t, call->site, flags);
        if (t->hdr != NULL)
            __atomic_fetch_add(&t->hdr->fallback_calls, 1, __ATOMIC_RELAXED);
        t->err_bits &= ~bit;
        t->depth = depth;
        t->top = (uint64_t)call->parent_stack << 32 | call->parent_site;
        return;
    }
    uint64_t tail;
    if (!room_for_record(t, call->site, flags, &tail)) {
        t->err_bits &= ~bit;
        t->depth = depth;
        t->top = (uint64_t)call->parent_stack << 32 | call->parent_site;
        __atomic_store_n(&t->slot->depth, depth, __ATOMIC_RELEASE);
        return;
    }
    funcmon__publish(t, call, end, flags, t->head);
    set_check_at(t, tail);
}

/* A span's record at ring position head: like funcmon__publish, without touching the
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
    uint64_t tail;
    if (!room_for_record(t, site, flags, &tail))
        return;
    publish_span(t, site, start, end, flags, head);
    set_check_at(t, tail);
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
