/*
 * ingest.c - what the clients' segments hold, into the aggregate: records, spill
 * counters, drops, and the end of a client.
 *
 * A segment is untrusted: the consumer (proto/src/consumer.c) bounds every position and
 * site before a record reaches on_record, and what this file credits (spilled errors and
 * duration buckets, drops) never goes beyond what the client could have produced. Sites are resolved to
 * aggregate functions once per process, METRICS.SKIP_PATHS applied then.
 *
 * Draining is driven from above (the tick, a client's wake-up, discovery when a client
 * ends); this file also owns the two operations that watch a client through the loop: the
 * futex wait on its wake word (a ring past high water, drained at once) and the poll on
 * its pidfd (its exit, after which it is drained to its last record).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ingest.h"
#include "log.h"

/* Wake-ups per tick that found little to drain, beyond which a client waits for the timer. */
#define WAKES_PER_TICK 64
/* Records read from one thread slot per pass: a backlog of the whole pool is read over
 * several passes, so one busy slot cannot hold the others (and other clients) for long. */
#define SLOT_RECORDS_PER_PASS 16384u
/* A pass that finds this many records means the client is producing fast: half of the
 * backlog at which a client wakes us (WAKE_BACKLOG in client/src/thread.c). */
#define BUSY_PASS_RECORDS 1024u

int
funcmond_ingest_skip_http(const struct funcmond_config *cfg, const char *package, const char *name)
{
    if (strcmp(package, "http_handler") != 0 || cfg->metrics_skip_paths[0] == '\0')
        return 0;
    const char *path = strchr(name, '_');
    if (path == NULL)
        return 0;
    path++;
    char patterns[sizeof(cfg->metrics_skip_paths)];
    memcpy(patterns, cfg->metrics_skip_paths, sizeof(patterns));
    char *save = NULL;
    for (char *pat = strtok_r(patterns, ";", &save); pat != NULL; pat = strtok_r(NULL, ";", &save))
        if (pat[0] != '\0' && fnmatch(pat, path, 0) == 0)
            return 1;
    return 0;
}

int
funcmond_ingest_resolve_site(struct funcmond *d, struct funcmond_process *p, uint32_t site, uint32_t *fn)
{
    int ret = funcmond_ingest_site_fn(p, site, fn);
    if (ret != -EAGAIN || site >= p->c.geo.max_sites)
        return ret;
    const struct funcmon_site_info *info = funcmon_consumer_site(&p->c, site);
    if (info == NULL)
        return -EAGAIN;
    if (funcmond_ingest_skip_http(&d->cfg, info->package, info->name)) {
        p->site_fn[site] = FUNCMOND_SITE_SKIPPED; /* served nowhere */
        return -ENOENT;
    }
    uint32_t id;
    if ((ret = funcmond_agg_function(&d->agg, p->service, info->package, info->name, &id)) != 0)
        return ret;
    p->site_fn[site] = id + 1;
    *fn = id;
    return 0;
}

struct drain_ctx {
    struct funcmond *d;
    struct funcmond_process *p;
    uint64_t oldest_end;
};

/* Adds an allocating call to its process's stacks: its own stack id follows from its
 * parent's and its site (the consumer has checked both sites are known). */
static void
add_stack(struct funcmond *d, struct funcmond_process *p, const struct funcmon_record *r, uint32_t fn)
{
    uint32_t parent_fn = FUNCMOND_STACK_FN_UNKNOWN, pf;
    if (r->parent_site != FUNCMON_SITE_NONE && funcmond_ingest_resolve_site(d, p, r->parent_site, &pf) == 0)
        parent_fn = pf;
    funcmond_stacks_add(&p->stacks, funcmon_stack_id(r->parent_stack, r->site), r->parent_stack, fn, parent_fn, r->alloc_bytes,
                        r->alloc_count, r->free_bytes);
}

static void
on_record(void *arg, uint32_t ring, const struct funcmon_record *r)
{
    struct drain_ctx *x = arg;
    struct funcmond_process *p = x->p;
    uint32_t resolved = p->site_fn[r->site], fn;
    (void)ring;
    if (__builtin_expect(resolved - 1 < FUNCMOND_SITE_SKIPPED - 1, 1))
        fn = resolved - 1; /* the usual case: known, not skipped */
    else if (funcmond_ingest_resolve_site(x->d, p, r->site, &fn) != 0)
        return;
    const struct funcmon_clock *clk = &p->clk;
    uint64_t dur = (uint64_t)(((unsigned __int128)(r->end - r->start) * clk->mult) >> clk->shift);
    /* Wall clock of the end: ends before the calibration reference (possible only for a
     * record older than the client's init) are clamped to the reference. */
    uint64_t since =
        r->end > clk->ref_ticks ? (uint64_t)(((unsigned __int128)(r->end - clk->ref_ticks) * clk->mult) >> clk->shift) : 0;
    if (x->oldest_end == 0 || r->end < x->oldest_end)
        x->oldest_end = r->end;
    /* Added to the figures when the pass ends (funcmond_agg_flush below): one cache line
     * written per record, however many functions there are. */
    funcmond_agg_record_deferred(&x->d->agg, fn, dur, r->flags, r->alloc_bytes, r->free_bytes, clk->ref_real_ns + since);
    /* A nested call without its parent's stack id (a client of minor 0) stays inside its
     * callers' bytes rather than being counted a second time as a stack of its own. */
    if ((r->flags & FUNCMON_RECORD_ALLOC) && (r->alloc_bytes != 0 || r->alloc_count != 0) &&
        (r->depth == 0 || r->parent_stack != 0))
        add_stack(x->d, p, r, fn);
}

/* What to count of a spilled-error counter now: errors are credited only up to the calls
 * already counted, never beyond (a client's lie), and what waits for its calls stays
 * uncredited rather than dropped. The client adds a call before its error, so a read in
 * between, or with the two loads the other way round, sees an error without its call or
 * a call without its error; either way the next read settles it. */
static uint64_t
credit_errors(uint64_t seen_calls, uint64_t errors, uint64_t *seen_errors)
{
    uint64_t creditable = errors < seen_calls ? errors : seen_calls;
    if (creditable <= *seen_errors)
        return 0;
    uint64_t d = creditable - *seen_errors;
    *seen_errors = creditable;
    return d;
}

/* Nanoseconds of `ticks` clock ticks: a sum of durations converts like one duration. */
static uint64_t
ticks_ns(const struct funcmon_clock *clk, uint64_t ticks)
{
    unsigned __int128 ns = ((unsigned __int128)ticks * clk->mult) >> clk->shift;
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

/* Of the bucket counters now[] (which wrap), what to credit: each counter's gain modulo
 * 2^32, as long as the spilled calls counted so far have no bucket yet. The client counts
 * a call and its bucket a moment apart, in either order: a bucket whose call is not
 * counted yet waits for it (credited at a later look, not dropped), and a client that
 * counts more buckets than calls gets no more than its calls. Returns the calls credited,
 * gained[] per bucket. */
static uint64_t
credit_buckets(struct funcmond_spill_buckets_seen *seen, uint64_t calls_seen, const uint32_t now[FUNCMON_SPILL_BUCKETS],
               uint32_t gained[FUNCMON_SPILL_BUCKETS])
{
    uint64_t room = calls_seen > seen->credited ? calls_seen - seen->credited : 0, credited = 0;
    for (uint32_t b = 0; b < FUNCMON_SPILL_BUCKETS; b++) {
        uint32_t gain = now[b] - seen->seen[b];
        if (gain > room - credited)
            gain = (uint32_t)(room - credited);
        gained[b] = gain;
        seen->seen[b] += gain;
        credited += gain;
    }
    seen->credited += credited;
    return credited;
}

/* Adds what a site's spilled durations gained since we last looked: their ticks exactly
 * (the seen value only grows, like the counts'), their buckets as credit_buckets allows.
 * A site left out (resolved -ENOENT) moves its seen values on and adds nothing. */
static void
drain_spill_durations(struct funcmond *d, struct funcmond_process *p, uint32_t site, int resolved, uint32_t fn)
{
    struct funcmond_spill_buckets_seen *seen = p->spill_buckets_seen[site];
    uint32_t now[FUNCMON_SPILL_BUCKETS], gained[FUNCMON_SPILL_BUCKETS];
    uint64_t ticks, ns = 0;

    if (seen == NULL && (seen = p->spill_buckets_seen[site] = calloc(1, sizeof(*seen))) == NULL)
        return; /* out of memory: tried again at the next look */
    if (funcmon_consumer_spill_durations(&p->c, site, &ticks, now) != 0)
        return;
    if (ticks > p->spill_ticks_seen[site]) {
        /* Both ends converted, so the total is the conversion of the whole sum however it
         * was read in parts. */
        ns = ticks_ns(&p->clk, ticks) - ticks_ns(&p->clk, p->spill_ticks_seen[site]);
        p->spill_ticks_seen[site] = ticks;
    }
    uint64_t credited = credit_buckets(seen, p->spill_calls_seen[site], now, gained);
    if (resolved == 0 && (ns != 0 || credited != 0))
        funcmond_agg_spill_durations(&d->agg, fn, ns, gained);
}

/* Spilled calls of a site whose bucket was not credited yet (it came after the call was
 * counted, or the memory for it did not): looked for again one pass in this many. */
#define SPILL_PENDING_LOOK_EVERY 16u

/* Adds what the client's spill counters gained since we last looked. The seen values only
 * grow: a counter that goes back is a client's lie, and climbing back adds nothing. The
 * durations (four more cache lines a site) are read only when the calls grew, now and then
 * while some of a site's calls still wait for their bucket, and once more for every site
 * that spilled when the client has ended (a duration it added just after a call we had
 * counted is not left behind). */
static void
drain_spills(struct funcmond *d, struct funcmond_process *p)
{
    /* Pairs with the client's release store of site_count in set_entry (client/src/site.c),
     * after it wrote the entry. */
    uint32_t count = __atomic_load_n(&p->c.hdr->site_count, __ATOMIC_ACQUIRE);
    if (count > p->c.geo.max_sites)
        count = p->c.geo.max_sites;
    int pending_look = p->spill_looks++ % SPILL_PENDING_LOOK_EVERY == 0, last_look = p->state != FUNCMOND_PROC_LIVE;
    for (uint32_t site = 1; site < count; site++) {
        uint64_t calls, errors, client_errors;
        funcmon_consumer_spill(&p->c, site, &calls, &errors);
        funcmon_consumer_spill_client_errors(&p->c, site, &client_errors);
        const struct funcmond_spill_buckets_seen *seen = p->spill_buckets_seen[site];
        int pending = (pending_look && (seen != NULL ? seen->credited : 0) < p->spill_calls_seen[site]) ||
                      (last_look && p->spill_calls_seen[site] != 0);
        int calls_grew = calls > p->spill_calls_seen[site];
        if (!calls_grew && !pending && errors <= p->spill_errors_seen[site] && client_errors <= p->spill_client_errors_seen[site])
            continue;
        uint32_t fn = UINT32_MAX;
        int resolved = funcmond_ingest_resolve_site(d, p, site, &fn);
        if (resolved != 0 && resolved != -ENOENT)
            continue; /* not published yet: next cycle */
        uint64_t dc = 0;
        if (calls_grew) {
            dc = calls - p->spill_calls_seen[site];
            p->spill_calls_seen[site] = calls;
        }
        uint64_t de = credit_errors(p->spill_calls_seen[site], errors, &p->spill_errors_seen[site]);
        uint64_t dce = credit_errors(p->spill_calls_seen[site], client_errors, &p->spill_client_errors_seen[site]);
        if (resolved == 0)
            funcmond_agg_spill(&d->agg, fn, dc, de, dce);
        if (calls_grew || pending)
            drain_spill_durations(d, p, site, resolved, fn);
    }
}

size_t
funcmond_ingest_drain(struct funcmond *d, struct funcmond_process *p)
{
    struct drain_ctx x = {d, p, 0};
    uint64_t now = funcmond_mono_ns();

    if (p->detaching)
        return 0;
    if (now - p->clk_read_mono_ns >= FUNCMOND_SECOND_NS) {
        funcmon_consumer_clock(&p->c, &p->clk); /* keeps the last good one on failure */
        p->clk_read_mono_ns = now;
    }
    uint64_t bad_before = p->c.bad_records, rings_bad_before = p->c.bad_rings;
    /* The ring positions are read and released inside the consumer (proto/src/consumer.c):
     * its acquire load of a ring's head pairs with the producer's release store of it
     * (client/include/funcmon.h), its release store of the tail with the producer's
     * acquire load (client/src/thread.c). */
    size_t n = funcmon_consumer_drain(&p->c, on_record, &x, SLOT_RECORDS_PER_PASS);
    funcmond_agg_flush(&d->agg);
    p->records += n;
    d->counters.records += n;
    d->counters.bad_records += p->c.bad_records - bad_before;
    if (p->c.bad_rings != rings_bad_before)
        LOG_WARN("%s: %llu ring(s) with positions or drop counts out of range, no longer read", p->shm_name,
                 (unsigned long long)(p->c.bad_rings - rings_bad_before));
    drain_spills(d, p);
    if (funcmon_consumer_faulted(&p->c) && p->state == FUNCMOND_PROC_LIVE) {
        LOG_WARN("%s: the segment file shrank under its mapping; letting it go", p->shm_name);
        d->counters.segments_rejected++;
        funcmond_process_ended(d, p, FUNCMOND_PROC_EXITED);
        return n;
    }
    /* Believable drops only (see consumer.c): a lying counter adds at most what its ring
     * could have dropped since it was last read. */
    uint64_t dropped = funcmon_consumer_dropped(&p->c);
    if (dropped > p->dropped_seen) {
        d->counters.dropped += dropped - p->dropped_seen;
        p->dropped_seen = dropped;
    }
    if (x.oldest_end != 0) {
        uint64_t end_mono = funcmon_clock_mono_ns(&p->clk, x.oldest_end);
        uint64_t lag = now > end_mono ? now - end_mono : 0;
        if (lag > d->counters.drain_lag_ns)
            d->counters.drain_lag_ns = lag;
    }
    /* Pairs with the client's release store of FUNCMON_STATE_SHUTDOWN in
     * funcmon__segment_retire (client/src/segment.c), after its last record. */
    if (p->state == FUNCMOND_PROC_LIVE && __atomic_load_n(&p->c.hdr->state, __ATOMIC_ACQUIRE) == FUNCMON_STATE_SHUTDOWN)
        funcmond_process_ended(d, p, FUNCMOND_PROC_SHUTDOWN);
    return n;
}

/* Passes that read every slot in use, until one finds nothing: a pass reads at most
 * SLOT_RECORDS_PER_PASS of a slot, and quiet slots only on full passes. Bounded, for a
 * client that keeps writing: 4,096 passes read a whole default pool many times over. */
size_t
funcmond_ingest_drain_to_end(struct funcmond *d, struct funcmond_process *p)
{
    size_t total = 0, n;
    int passes = 0;
    do {
        funcmon_consumer_read_all_next(&p->c);
        n = funcmond_ingest_drain(d, p);
        total += n;
    } while (n != 0 && ++passes < 4096);
    return total;
}

void
funcmond_process_ended(struct funcmond *d, struct funcmond_process *p, enum funcmond_proc_state why)
{
    if (p->state != FUNCMOND_PROC_LIVE)
        return;
    p->state = why;
    funcmond_ingest_drain_to_end(d, p);
    p->ended_mono_ns = funcmond_mono_ns();
    p->ended_real_ns = funcmond_real_ns();
    d->clients--;
    LOG_INFO("%s: pid %d %s; %llu records", p->shm_name, (int)p->pid, why == FUNCMOND_PROC_EXITED ? "exited" : "shut funcmon down",
             (unsigned long long)p->records);
}

/* Resolves the functions of p's calls that have not ended yet, and learns the links of
 * their stacks (an allocation's stack is known by its id; its callers by these links). */
static void
resolve_inflight(struct funcmond *d, struct funcmond_process *p)
{
    struct funcmon_slot_info si;
    if (p->state != FUNCMOND_PROC_LIVE || p->detaching)
        return;
    const uint32_t *in_use;
    uint32_t n = funcmon_consumer_slots_in_use(&p->c, &in_use);
    for (uint32_t j = 0; j < n; j++) {
        if (funcmon_consumer_slot_depth(&p->c, in_use[j]) == 0 || funcmon_consumer_slot(&p->c, in_use[j], &si) != 0 ||
            si.state != FUNCMON_SLOT_ACTIVE)
            continue;
        uint32_t parent = 0;
        int linking = 1;
        for (uint32_t k = 0; k < si.entries; k++) {
            uint32_t site = si.inflight[k].site, id = si.inflight[k].stack;
            if (site >= p->c.geo.max_sites) {
                linking = 0;
                continue;
            }
            uint32_t fn;
            int resolved = funcmond_ingest_resolve_site(d, p, site, &fn);
            /* Read while the thread runs: links are learnt only while they add up. */
            linking = linking && id == funcmon_stack_id(parent, site);
            if (linking && resolved == 0)
                funcmond_stacks_link(&p->stacks, id, parent, fn);
            parent = id;
        }
    }
}

void
funcmond_ingest_inflight(struct funcmond *d)
{
    for (struct funcmond_process *p = d->procs; p != NULL; p = p->next)
        resolve_inflight(d, p);
}

/* --- watching a client through the loop --- */

/* Drains a client that woke us. While it produces fast (a pass finds BUSY_PASS_RECORDS or
 * more) it is drained again at once instead of waiting for its next wake-up. Returns
 * whether the wake-up was earned: a slot past high water holds twice that. */
static int
drain_busy(struct funcmond *d, struct funcmond_process *p)
{
    size_t n = funcmond_ingest_drain(d, p);
    int earned = n >= BUSY_PASS_RECORDS;
    for (int pass = 0; pass < 64 && n >= BUSY_PASS_RECORDS; pass++)
        n = funcmond_ingest_drain(d, p);
    funcmond_ingest_arm_wake(d, p);
    return earned;
}

/* p's wake word changed: its rings crossed high water. Also called once stopping, for
 * the bookkeeping only. */
static void
on_wake(struct funcmond *d, struct funcmond_op *op, int res)
{
    struct funcmond_process *p = FUNCMOND_PROC_OF(op, op_wake);
    p->wake_armed = 0;
    if (funcmond_loop_stopping(d))
        return;
    if (res == -EINVAL || res == -ENOSYS) {
        d->futex_wait_ok = 0;
        LOG_INFO("futex waits through the event loop unavailable (%s): draining on the timer only", strerror(-res));
    } else if (res != -ECANCELED && !p->detaching && p->state == FUNCMOND_PROC_LIVE) {
        d->counters.wakeups++;
        /* A client that changes its wake word in a loop must not keep us from the
         * others: past a budget of wake-ups per tick that found little to drain, it
         * waits for the timer like everyone. A producer at full speed earns every
         * wake-up it makes, however many: limiting those would cost it records. */
        if (p->idle_wakes_this_tick < WAKES_PER_TICK && !drain_busy(d, p))
            p->idle_wakes_this_tick++;
    }
}

/* p's pidfd became readable: it exited. */
static void
on_exit_seen(struct funcmond *d, struct funcmond_op *op, int res)
{
    struct funcmond_process *p = FUNCMOND_PROC_OF(op, op_exit);
    if (res != -ECANCELED && !p->detaching)
        funcmond_process_ended(d, p, FUNCMOND_PROC_EXITED);
}

/* Sets up p's two operations once; each counts in p->ops_inflight while in flight. */
static void
watch_ops_init(struct funcmond_process *p)
{
    p->op_wake = (struct funcmond_op){.on_complete = on_wake, .inflight = &p->ops_inflight, .while_stopping = 1};
    p->op_exit = (struct funcmond_op){.on_complete = on_exit_seen, .inflight = &p->ops_inflight};
}

/* Arms the wait for p's wake word. Setting consumer_waiting tells its producers to wake us
 * when a ring crosses high water; the value read first makes a wake that comes before the
 * wait is registered complete it at once (-EAGAIN) instead of being lost. */
void
funcmond_ingest_arm_wake(struct funcmond *d, struct funcmond_process *p)
{
    if (!d->futex_wait_ok || p->wake_armed || p->detaching || p->state != FUNCMOND_PROC_LIVE)
        return;
    if (p->op_wake.on_complete == NULL)
        watch_ops_init(p);
    struct funcmon_shm_header *h = p->c.hdr;
    /* Pairs with the producer's release increment of wake_word in wake_consumer
     * (client/src/thread.c). */
    uint32_t cur = __atomic_load_n(&h->wake_word, __ATOMIC_ACQUIRE);
    /* Pairs with the producer's seq_cst exchange of consumer_waiting in wake_consumer: one
     * of the two sides sees the other's store (the flag, or the ring's head). */
    __atomic_store_n(&h->consumer_waiting, 1, __ATOMIC_SEQ_CST);
    if (funcmond_loop_futex_wait(d, &p->op_wake, &h->wake_word, cur) != 0)
        return;
    p->wake_armed = 1;
}

void
funcmond_ingest_watch(struct funcmond *d, struct funcmond_process *p)
{
    if (p->op_exit.on_complete == NULL)
        watch_ops_init(p);
    if (p->pidfd >= 0)
        funcmond_loop_poll_in(d, &p->op_exit, p->pidfd);
    funcmond_ingest_arm_wake(d, p);
}

void
funcmond_ingest_unwatch(struct funcmond *d, struct funcmond_process *p)
{
    /* Producers need not wake a reader that is leaving. Pairs with the producer's seq_cst
     * exchange in wake_consumer (client/src/thread.c), which then finds 0 and skips the
     * wake. */
    __atomic_store_n(&p->c.hdr->consumer_waiting, 0, __ATOMIC_RELEASE);
    /* Cancel everything that refers to p; it is freed when the last completion is in. */
    if (p->ops_inflight == 0)
        return;
    struct funcmond_op *ops[] = {&p->op_wake, &p->op_exit, &p->op_ctl};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (funcmond_loop_cancel(d, ops[i]) != 0)
            return;
}
