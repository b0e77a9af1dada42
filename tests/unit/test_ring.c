/*
 * test_ring.c - one thread's ring: wrap-around, a full ring, exact drop accounting, and
 * the high-water wake-up of a sleeping consumer.
 *
 * The ring is made small (64 records) so every case is exact: the test knows how many
 * calls it made, which failed, and when the consumer drained.
 */
#define _GNU_SOURCE
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

#define RING 64

struct order {
    uint64_t next_seq;
    uint64_t records;
    uint64_t errors;
};

static void
in_order(void *arg, uint32_t ring, const struct funcmon_record *r)
{
    struct order *o = arg;
    (void)ring;
    CHECK_EQ(r->seq, o->next_seq); /* per-ring order, nothing skipped, nothing twice */
    o->next_seq++;
    o->records++;
    o->errors += (r->flags & FUNCMON_RECORD_ERROR) != 0;
}

static void
calls(uint32_t site, int n, int *made, int *errs)
{
    for (int i = 0; i < n; i++) {
        struct funcmon_call c = funcmon_begin(site);
        int err = (*made % 5) == 0;
        funcmon_end(&c, err);
        *errs += err;
        (*made)++;
    }
}

int
main(void)
{
    struct funcmon_options o = {0};
    struct funcmon_consumer c;
    struct order ord = {0};
    struct funcmon_slot_info si;
    uint64_t spill_calls, spill_errors;
    int made = 0, errs = 0;

    harness_private_prefix();
    o.pool_records = RING;
    o.chunk_records = 16;
    o.max_threads = 2;
    CHECK_EQ(funcmon_init(&o), 0);
    harness_open_self(&c);
    uint32_t site = FUNCMON_SITE("ring_fn", "ring");

    /* Full ring: with nobody draining, 64 records fit and the rest are dropped, counted. */
    calls(site, 100, &made, &errs);
    CHECK_EQ(funcmon_consumer_dropped(&c), 100 - RING);
    CHECK_EQ(funcmon_consumer_spill(&c, site, &spill_calls, &spill_errors), 0);
    CHECK_EQ(spill_calls, 100 - RING);
    CHECK_EQ(funcmon_consumer_drain(&c, in_order, &ord, SIZE_MAX), RING);
    CHECK_EQ(ord.records + funcmon_consumer_dropped(&c), (uint64_t)made);
    /* Error counts stay exact: records' errors plus spilled errors. */
    CHECK_EQ(ord.errors + spill_errors, (uint64_t)errs);

    /* Wrap-around: the positions go round the ring many times, drained as they go. */
    for (int round = 0; round < 50; round++) {
        calls(site, 37, &made, &errs);
        CHECK_EQ(funcmon_consumer_drain(&c, in_order, &ord, SIZE_MAX), 37);
    }
    CHECK_EQ(funcmon_consumer_dropped(&c), 100 - RING); /* no new drops */
    CHECK_EQ(ord.records + funcmon_consumer_dropped(&c), (uint64_t)made);
    CHECK_EQ(funcmon_consumer_spill(&c, site, &spill_calls, &spill_errors), 0);
    CHECK_EQ(ord.errors + spill_errors, (uint64_t)errs);

    /* A partial drain leaves the rest for later, in order. The chunk holding the tail is
     * kept whole until the tail leaves it, so up to a chunk (16) less than the pool fits. */
    calls(site, 50, &made, &errs);
    CHECK_EQ(funcmon_consumer_drain(&c, in_order, &ord, 20), 20);
    calls(site, 18, &made, &errs); /* 30 + 18 left = 48 <= 64 - 16: still no drop */
    CHECK_EQ(funcmon_consumer_drain(&c, in_order, &ord, SIZE_MAX), 48);
    CHECK_EQ(ord.records + funcmon_consumer_dropped(&c), (uint64_t)made);

    /* Filling again after drops resumes recording as soon as there is room. The chunk the
     * thread writes in (chunks start at multiples of 16 here) has `spent` positions
     * already read: the pool takes that many fewer. */
    uint64_t spent = funcmon__tls.head % 16;
    calls(site, RING + 10, &made, &errs);
    CHECK_EQ(funcmon_consumer_dropped(&c), 100 - RING + 10 + spent);
    CHECK_EQ(funcmon_consumer_drain(&c, in_order, &ord, SIZE_MAX), RING - spent);
    calls(site, 5, &made, &errs);
    CHECK_EQ(funcmon_consumer_drain(&c, in_order, &ord, SIZE_MAX), 5);
    CHECK_EQ(ord.records + funcmon_consumer_dropped(&c), (uint64_t)made);
    CHECK_EQ(funcmon_consumer_spill(&c, site, &spill_calls, &spill_errors), 0);
    CHECK_EQ(spill_calls, funcmon_consumer_dropped(&c));
    CHECK_EQ(ord.errors + spill_errors, (uint64_t)errs);

    /* High water: a consumer that said it sleeps is woken once when the ring is a quarter
     * full, and not before. */
    struct funcmon_shm_header *h = c.hdr;
    uint32_t word = __atomic_load_n(&h->wake_word, __ATOMIC_ACQUIRE);
    __atomic_store_n(&h->consumer_waiting, 1, __ATOMIC_RELEASE);
    calls(site, RING / 4 - 1, &made, &errs);
    CHECK_EQ(__atomic_load_n(&h->consumer_waiting, __ATOMIC_ACQUIRE), 1);
    CHECK_EQ(__atomic_load_n(&h->wake_word, __ATOMIC_ACQUIRE), word);
    calls(site, 2, &made, &errs);
    CHECK_EQ(__atomic_load_n(&h->consumer_waiting, __ATOMIC_ACQUIRE), 0);
    CHECK_EQ(__atomic_load_n(&h->wake_word, __ATOMIC_ACQUIRE), word + 1);
    CHECK_EQ(h->wakeups, 1);
    funcmon_consumer_drain(&c, in_order, &ord, SIZE_MAX);
    CHECK_EQ(ord.records + funcmon_consumer_dropped(&c), (uint64_t)made);

    /* The slot shows this thread, nothing in flight. */
    int found = 0;
    for (uint32_t i = 0; i < c.geo.max_threads; i++) {
        CHECK_EQ(funcmon_consumer_slot(&c, i, &si), 0);
        if (si.state == FUNCMON_SLOT_ACTIVE) {
            found++;
            CHECK_EQ(si.tid, gettid());
            CHECK_EQ(si.head, (uint64_t)made - funcmon_consumer_dropped(&c));
            CHECK_EQ(si.tail, si.head);
        }
    }
    CHECK_EQ(found, 1);
    CHECK_EQ(c.bad_records, 0);
    CHECK_EQ(c.bad_rings, 0);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
    printf("test_ring: ok (%d calls)\n", made);
    return 0;
}
