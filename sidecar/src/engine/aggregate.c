/*
 * aggregate.c - the per-function aggregate (see aggregate.h).
 *
 * The drain adds tens of millions of records a second: the usual one is only written to
 * its function's pending entry (funcmond_agg_record_deferred, aggregate.h), and a full
 * entry is added to the figures here in one go, which does no allocation in the common
 * case (histogram chunks are allocated once per power of two), no division, and no search
 * longer than the configured bucket list. Everything derived (quantiles, cumulative
 * buckets, window rates) is computed when a view is published, for changed functions only.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"

static uint32_t
hash_key(const char *service, const char *package, const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a over the three strings and their terminators */
    for (const char *parts[3] = {service, package, name}, **p = parts; p < parts + 3; p++) {
        for (const unsigned char *c = (const unsigned char *)*p; *c != '\0'; c++)
            h = (h ^ *c) * 16777619u;
        h = (h ^ 0xffu) * 16777619u;
    }
    return h;
}

static int
key_equal(const struct funcmond_function *f, const char *service, const char *package, const char *name)
{
    return strcmp(f->name, name) == 0 && strcmp(f->package, package) == 0 && strcmp(f->service, service) == 0;
}

int
funcmond_agg_init(struct funcmond_aggregate *agg, const struct funcmond_config *cfg)
{
    memset(agg, 0, sizeof(*agg));
    agg->cfg = cfg;
    agg->n_dur_bounds = (uint32_t)cfg->n_duration_buckets;
    for (uint32_t i = 0; i < agg->n_dur_bounds; i++)
        agg->dur_bounds_ns[i] = (uint64_t)llround(cfg->duration_buckets[i] * 1e9);
    agg->n_mem_bounds = (uint32_t)cfg->n_memory_buckets;
    for (uint32_t i = 0; i < agg->n_mem_bounds; i++)
        agg->mem_bounds[i] = (uint64_t)llround(floor(cfg->memory_buckets[i]));
    agg->index_mask = 1023;
    agg->index = calloc(agg->index_mask + 1, sizeof(*agg->index));
    agg->generation = 1;
    return agg->index != NULL ? 0 : -ENOMEM;
}

static void
free_function(struct funcmond_function *f)
{
    funcmond_hist_free(&f->dur);
    funcmond_hist_free(&f->mem);
    for (int i = 0; i < FUNCMOND_WINDOW_SLOTS; i++)
        funcmond_hist_free(&f->window[i].dur);
    free(f);
}

void
funcmond_agg_free(struct funcmond_aggregate *agg)
{
    for (uint32_t i = 0; i < agg->n_fns; i++)
        free_function(agg->fns[i]);
    free(agg->fns);
    free(agg->pending);
    free(agg->pending_state);
    free(agg->pending_last_real_ns);
    free(agg->pending_ids);
    free(agg->index);
    free(agg->services);
    free(agg->service_index);
    memset(agg, 0, sizeof(*agg));
}

static uint32_t
lookup(const struct funcmond_aggregate *agg, uint32_t hash, const char *service, const char *package, const char *name,
       uint32_t *slot_out)
{
    for (uint32_t i = hash & agg->index_mask;; i = (i + 1) & agg->index_mask) {
        uint32_t v = agg->index[i];
        if (v == 0) {
            if (slot_out != NULL)
                *slot_out = i;
            return UINT32_MAX;
        }
        if (key_equal(agg->fns[v - 1], service, package, name))
            return v - 1;
    }
}

int
funcmond_agg_find(const struct funcmond_aggregate *agg, const char *service, const char *package, const char *name, uint32_t *id)
{
    uint32_t found = lookup(agg, hash_key(service, package, name), service, package, name, NULL);
    if (found == UINT32_MAX)
        return -ENOENT;
    *id = found;
    return 0;
}

/* Doubles the index once it is half full. */
static int
grow_index(struct funcmond_aggregate *agg)
{
    uint32_t mask = agg->index_mask * 2 + 1;
    uint32_t *index = calloc((size_t)mask + 1, sizeof(*index));
    if (index == NULL)
        return -ENOMEM;
    for (uint32_t id = 0; id < agg->n_fns; id++) {
        const struct funcmond_function *f = agg->fns[id];
        uint32_t i = hash_key(f->service, f->package, f->name) & mask;
        while (index[i] != 0)
            i = (i + 1) & mask;
        index[i] = id + 1;
    }
    free(agg->index);
    agg->index = index;
    agg->index_mask = mask;
    return 0;
}

/* Makes room for cap functions in fns and the pending arrays (cap above cap_fns).
 * Returns 0, or -ENOMEM with the aggregate unchanged. */
static int
grow_functions(struct funcmond_aggregate *agg, uint32_t cap)
{
    struct funcmond_function **fns = realloc(agg->fns, cap * sizeof(*fns));
    if (fns == NULL)
        return -ENOMEM;
    agg->fns = fns;
    uint32_t *ids = realloc(agg->pending_ids, cap * sizeof(*ids));
    if (ids == NULL)
        return -ENOMEM;
    agg->pending_ids = ids;
    uint8_t *state = realloc(agg->pending_state, cap);
    if (state == NULL)
        return -ENOMEM;
    memset(state + agg->cap_fns, 0, cap - agg->cap_fns);
    agg->pending_state = state;
    uint64_t *last = realloc(agg->pending_last_real_ns, cap * sizeof(*last));
    if (last == NULL)
        return -ENOMEM;
    memset(last + agg->cap_fns, 0, (cap - agg->cap_fns) * sizeof(*last));
    agg->pending_last_real_ns = last;
    struct funcmond_pending *pending = aligned_alloc(_Alignof(struct funcmond_pending), cap * sizeof(*pending));
    if (pending == NULL)
        return -ENOMEM;
    memset(pending, 0, cap * sizeof(*pending));
    if (agg->pending != NULL)
        memcpy(pending, agg->pending, agg->cap_fns * sizeof(*pending));
    free(agg->pending);
    agg->pending = pending;
    agg->cap_fns = cap;
    return 0;
}

/* Adds a new entry; 0 with *id, or -ENOMEM. */
static int
create(struct funcmond_aggregate *agg, const char *service, const char *package, const char *name, int overflow, uint32_t *id)
{
    struct funcmond_function *f;
    uint32_t slot;

    if ((agg->n_fns + 1) * 2 > agg->index_mask + 1 && grow_index(agg) != 0)
        return -ENOMEM;
    if (agg->n_fns == agg->cap_fns && grow_functions(agg, agg->cap_fns ? agg->cap_fns * 2 : 64) != 0)
        return -ENOMEM;
    if ((f = aligned_alloc(_Alignof(struct funcmond_function), sizeof(*f))) == NULL)
        return -ENOMEM;
    memset(f, 0, sizeof(*f));
    snprintf(f->service, sizeof(f->service), "%s", service);
    snprintf(f->package, sizeof(f->package), "%s", package);
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->overflow = overflow;
    f->min_ns = UINT64_MAX;
    funcmond_hist_init(&f->dur, FUNCMOND_DURATION_SUB_BITS);
    funcmond_hist_init(&f->mem, FUNCMOND_MEMORY_SUB_BITS);
    for (int i = 0; i < FUNCMOND_WINDOW_SLOTS; i++)
        funcmond_hist_init(&f->window[i].dur, FUNCMOND_WINDOW_SUB_BITS);
    f->id = agg->n_fns;
    f->changed = agg->generation;
    lookup(agg, hash_key(f->service, f->package, f->name), f->service, f->package, f->name, &slot);
    agg->index[slot] = f->id + 1;
    agg->fns[agg->n_fns++] = f;
    agg->dirty = 1;
    if (!overflow)
        agg->n_regular++;
    *id = f->id;
    return 0;
}

/* The functions of a service, or NULL; with `add`, a zero entry is made for a new one. */
static struct funcmond_service_use *
service_use(struct funcmond_aggregate *agg, const char *service, int add)
{
    uint32_t h = hash_key(service, "", "");
    if (agg->service_index == NULL) {
        if (!add)
            return NULL;
        agg->service_index_mask = 63;
        if ((agg->service_index = calloc(agg->service_index_mask + 1, sizeof(*agg->service_index))) == NULL)
            return NULL;
    }
    uint32_t i = h & agg->service_index_mask;
    for (; agg->service_index[i] != 0; i = (i + 1) & agg->service_index_mask)
        if (strcmp(agg->services[agg->service_index[i] - 1].service, service) == 0)
            return &agg->services[agg->service_index[i] - 1];
    if (!add)
        return NULL;
    if ((agg->n_services + 1) * 2 > agg->service_index_mask + 1) {
        /* Half full: double the index and place every service again. */
        uint32_t mask = agg->service_index_mask * 2 + 1;
        uint32_t *index = calloc((size_t)mask + 1, sizeof(*index));
        if (index == NULL)
            return NULL;
        for (uint32_t k = 0; k < agg->n_services; k++) {
            uint32_t j = hash_key(agg->services[k].service, "", "") & mask;
            while (index[j] != 0)
                j = (j + 1) & mask;
            index[j] = k + 1;
        }
        free(agg->service_index);
        agg->service_index = index;
        agg->service_index_mask = mask;
        for (i = h & mask; index[i] != 0; i = (i + 1) & mask)
            ;
    }
    if (agg->n_services == agg->cap_services) {
        uint32_t cap = agg->cap_services ? agg->cap_services * 2 : 16;
        struct funcmond_service_use *services = realloc(agg->services, cap * sizeof(*services));
        if (services == NULL)
            return NULL;
        agg->services = services;
        agg->cap_services = cap;
    }
    struct funcmond_service_use *u = &agg->services[agg->n_services];
    memset(u, 0, sizeof(*u));
    snprintf(u->service, sizeof(u->service), "%s", service);
    agg->service_index[i] = ++agg->n_services;
    return u;
}

int
funcmond_agg_overflow(struct funcmond_aggregate *agg, const char *service, uint32_t *id)
{
    if (funcmond_agg_find(agg, service, "funcmon", "<overflow>", id) == 0)
        return 0;
    if (agg->n_overflow < FUNCMOND_OVERFLOW_ENTRIES && strcmp(service, FUNCMOND_OVERFLOW_SERVICE) != 0) {
        int ret = create(agg, service, "funcmon", "<overflow>", 1, id);
        agg->n_overflow += ret == 0;
        return ret;
    }
    if (funcmond_agg_find(agg, FUNCMOND_OVERFLOW_SERVICE, "funcmon", "<overflow>", id) == 0)
        return 0;
    return create(agg, FUNCMOND_OVERFLOW_SERVICE, "funcmon", "<overflow>", 1, id);
}

int
funcmond_agg_function(struct funcmond_aggregate *agg, const char *service, const char *package, const char *name, uint32_t *id)
{
    if (funcmond_agg_find(agg, service, package, name, id) == 0)
        return 0;
    /* Room: below the cap's last quarter for anyone; in that quarter only for a service
     * that holds fewer than FUNCMOND_SERVICE_FLOOR functions, so services that come after
     * a noisy one still get theirs. Entries are never freed (their counts are totals). */
    uint32_t cap = agg->cfg->max_functions, open = cap - cap / 4;
    if (agg->n_regular < cap) {
        struct funcmond_service_use *u = service_use(agg, service, 0);
        if (agg->n_regular < open || u == NULL || u->functions < FUNCMOND_SERVICE_FLOOR) {
            if (u == NULL && (u = service_use(agg, service, 1)) == NULL)
                return -ENOMEM;
            int ret = create(agg, service, package, name, 0, id);
            u->functions += ret == 0;
            return ret;
        }
    }
    agg->overflow_folds++;
    return funcmond_agg_overflow(agg, service, id);
}

void
funcmond_agg_tick(struct funcmond_aggregate *agg, uint64_t now_mono_ns)
{
    uint64_t slot = now_mono_ns / FUNCMOND_WINDOW_SLOT_NS;
    if (slot != agg->now_slot)
        funcmond_agg_flush(agg); /* deferred calls belong to the slot they were drained in */
    agg->now_slot = slot;
}

static struct funcmond_window_slot *
window_slot(struct funcmond_aggregate *agg, struct funcmond_function *f)
{
    struct funcmond_window_slot *w = &f->window[agg->now_slot % FUNCMOND_WINDOW_SLOTS];
    if (w->id != agg->now_slot) {
        /* The slot last held counts from 5 minutes ago: start it over. */
        w->id = agg->now_slot;
        w->calls = 0;
        w->errors = 0;
        funcmond_hist_free(&w->dur);
        funcmond_hist_init(&w->dur, FUNCMOND_WINDOW_SUB_BITS);
    }
    return w;
}

static uint32_t
bucket_index(const uint64_t *bounds, uint32_t n, uint64_t v)
{
    uint32_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    return i;
}

void
funcmond_agg_record(struct funcmond_aggregate *agg, uint32_t id, uint64_t dur_ns, uint32_t flags, uint64_t alloc_bytes,
                    uint64_t free_bytes, uint64_t end_real_ns)
{
    struct funcmond_function *f = agg->fns[id];
    int err = (flags & FUNCMON_RECORD_ERROR) != 0;

    f->calls++;
    f->errors += (uint64_t)err;
    f->cancelled += (flags & FUNCMON_RECORD_CANCELLED) != 0;
    f->deadline_exceeded += (flags & FUNCMON_RECORD_DEADLINE) != 0;
    f->client_errors += (flags & FUNCMON_RECORD_CLIENT_ERROR) != 0;
    f->total_ns += dur_ns;
    if (dur_ns < f->min_ns)
        f->min_ns = dur_ns;
    if (dur_ns > f->max_ns)
        f->max_ns = dur_ns;
    if (end_real_ns > f->last_real_ns)
        f->last_real_ns = end_real_ns;
    funcmond_hist_add_one(&f->dur, dur_ns); /* sum and extremes are f's own */
    f->dur_buckets[bucket_index(agg->dur_bounds_ns, agg->n_dur_bounds, dur_ns)]++;
    if (flags & FUNCMON_RECORD_ALLOC) {
        f->total_bytes += alloc_bytes;
        f->freed_bytes += free_bytes;
        if (alloc_bytes > f->max_bytes)
            f->max_bytes = alloc_bytes;
        funcmond_hist_add(&f->mem, alloc_bytes, 1);
        f->mem_buckets[bucket_index(agg->mem_bounds, agg->n_mem_bounds, alloc_bytes)]++;
    }
    struct funcmond_window_slot *w = window_slot(agg, f);
    w->calls++;
    w->errors += (uint64_t)err;
    funcmond_hist_add_one(&w->dur, dur_ns);
    f->changed = agg->generation;
    agg->dirty = 1;
}

/* Adds the calls held in id's pending entry to its figures and empties the entry (it stays
 * listed). The batch's own count, errors, sum and extremes are added once; the
 * histograms take the durations in one pass each, the Prometheus buckets one step a call. */
static void
add_pending(struct funcmond_aggregate *agg, uint32_t id)
{
    const struct funcmond_pending *pd = &agg->pending[id];
    struct funcmond_function *f = agg->fns[id];
    uint32_t n = agg->pending_state[id] & ~FUNCMOND_PENDING_LISTED, errors = 0, durs[FUNCMOND_PENDING_CALLS];
    if (n == 0)
        return;
    struct funcmond_window_slot *w = window_slot(agg, f);
    uint64_t total = 0, lo = f->min_ns, hi = f->max_ns;
    for (uint32_t i = 0; i < n; i++) {
        const struct funcmond_pending_line *line = &pd->line[i / FUNCMOND_PENDING_LINE_CALLS];
        uint32_t call = line->call[i % FUNCMOND_PENDING_LINE_CALLS], dur_ns = call & ~FUNCMOND_PENDING_ERROR;
        durs[i] = dur_ns;
        errors += call >> 31;
        total += dur_ns;
        lo = dur_ns < lo ? dur_ns : lo;
        hi = dur_ns > hi ? dur_ns : hi;
        f->dur_buckets[bucket_index(agg->dur_bounds_ns, agg->n_dur_bounds, dur_ns)]++;
    }
    funcmond_hist_add_values(&f->dur, durs, n); /* sum and extremes are f's own */
    funcmond_hist_add_values(&w->dur, durs, n);
    f->calls += n;
    f->errors += errors;
    f->total_ns += total;
    f->min_ns = lo;
    f->max_ns = hi;
    if (agg->pending_last_real_ns[id] > f->last_real_ns)
        f->last_real_ns = agg->pending_last_real_ns[id];
    agg->pending_last_real_ns[id] = 0;
    w->calls += n;
    w->errors += errors;
    f->changed = agg->generation;
    agg->dirty = 1;
    agg->pending_state[id] &= FUNCMOND_PENDING_LISTED;
}

void
funcmond__agg_pending_add(struct funcmond_aggregate *agg, uint32_t id)
{
    add_pending(agg, id);
}

/* The chunk of h that holds v, or NULL when h has none for it yet. */
static const uint64_t *
chunk_of(const struct funcmond_hist *h, uint64_t v)
{
    uint64_t idx;
    unsigned k = funcmond__hist_slot_of(h->sub_bits, v, &idx);
    if (!((h->present >> k) & 1))
        return NULL;
    return h->chunks[__builtin_popcountll(h->present & funcmond__hist_below(k))] + idx;
}

/* Where in h's chunk list the chunk for v is (present or not): the line to fetch. */
static uint64_t *const *
chunk_ref_of(const struct funcmond_hist *h, uint64_t v)
{
    uint64_t idx;
    unsigned k = funcmond__hist_slot_of(h->sub_bits, v, &idx);
    return h->chunks + __builtin_popcountll(h->present & funcmond__hist_below(k));
}

/* The fetch ahead of a queued entry's figures, in the order the lines depend on each other.
 * Step 0: the entry (its two lines of figures), its window slot, its Prometheus bucket.
 * Step 1 reads the entry: its histograms' chunk lists. Step 2 reads those: the buckets.
 * Only the first call held is followed; the others mostly fall in the same lines. Inlined
 * by force: a separate function holding only prefetches counts as one without effect, and
 * the compiler drops the calls to it. */
static inline __attribute__((always_inline)) void
fetch_ahead(const struct funcmond_aggregate *agg, uint32_t id, int step)
{
    const struct funcmond_function *f = agg->fns[id];
    const struct funcmond_window_slot *w = &f->window[agg->now_slot % FUNCMOND_WINDOW_SLOTS];
    uint64_t v = agg->pending[id].line[0].call[0] & ~FUNCMOND_PENDING_ERROR;
    if (step == 0) {
        __builtin_prefetch(f, 1);
        __builtin_prefetch((const char *)f + 64, 1);
        __builtin_prefetch(w, 1);
        __builtin_prefetch(&w->dur.count, 1);
        __builtin_prefetch(&f->dur_buckets[bucket_index(agg->dur_bounds_ns, agg->n_dur_bounds, v)], 1);
    } else if (step == 1) {
        __builtin_prefetch(chunk_ref_of(&f->dur, v));
        if (w->id == agg->now_slot)
            __builtin_prefetch(chunk_ref_of(&w->dur, v));
    } else {
        const uint64_t *bucket = chunk_of(&f->dur, v);
        if (bucket != NULL)
            __builtin_prefetch(bucket, 1);
        if (w->id == agg->now_slot && (bucket = chunk_of(&w->dur, v)) != NULL)
            __builtin_prefetch(bucket, 1);
    }
}

/* id's entry just filled: it joins the queue, the entries behind it take their next fetch
 * step, and the oldest leaves it, added to its figures. An entry that a busy function had
 * to add before its turn (funcmond__agg_pending_add) is skipped: it is queued again when
 * full again. */
void
funcmond__agg_pending_full(struct funcmond_aggregate *agg, uint32_t id)
{
    const uint64_t q = agg->full_queued, step = FUNCMOND_FULL_QUEUE / 3, mask = FUNCMOND_FULL_QUEUE - 1;
    if (q >= FUNCMOND_FULL_QUEUE) {
        uint32_t oldest = agg->full_queue[q & mask];
        if ((agg->pending_state[oldest] & ~FUNCMOND_PENDING_LISTED) == FUNCMOND_PENDING_CALLS)
            add_pending(agg, oldest);
    }
    agg->full_queue[q & mask] = id;
    agg->full_queued = q + 1;
    fetch_ahead(agg, id, 0);
    if (q >= step)
        fetch_ahead(agg, agg->full_queue[(q - step) & mask], 1);
    if (q >= 2 * step)
        fetch_ahead(agg, agg->full_queue[(q - 2 * step) & mask], 2);
}

/* The list is walked with the same fetch ahead as the queue: each entry's lines are asked
 * for three steps (FLUSH_AHEAD entries each) before it is added. */
#define FLUSH_AHEAD 8

void
funcmond_agg_flush(struct funcmond_aggregate *agg)
{
    const uint32_t n = agg->n_pending_ids, *ids = agg->pending_ids;
    for (uint32_t k = 0; k < n + 3 * FLUSH_AHEAD; k++) {
        if (k < n)
            fetch_ahead(agg, ids[k], 0);
        if (k >= FLUSH_AHEAD && k - FLUSH_AHEAD < n)
            fetch_ahead(agg, ids[k - FLUSH_AHEAD], 1);
        if (k >= 2 * FLUSH_AHEAD && k - 2 * FLUSH_AHEAD < n)
            fetch_ahead(agg, ids[k - 2 * FLUSH_AHEAD], 2);
        if (k >= 3 * FLUSH_AHEAD) {
            uint32_t id = ids[k - 3 * FLUSH_AHEAD];
            add_pending(agg, id);
            agg->pending_state[id] = 0;
        }
    }
    agg->n_pending_ids = 0;
    agg->full_queued = 0; /* every queued entry was listed: all added */
}

void
funcmond_agg_spill(struct funcmond_aggregate *agg, uint32_t id, uint64_t calls, uint64_t errors, uint64_t client_errors)
{
    struct funcmond_function *f = agg->fns[id];
    if (calls == 0 && errors == 0 && client_errors == 0)
        return;
    f->calls += calls;
    f->errors += errors;
    f->client_errors += client_errors;
    f->dropped += calls;
    struct funcmond_window_slot *w = window_slot(agg, f);
    w->calls += calls;
    w->errors += errors;
    f->changed = agg->generation;
    agg->dirty = 1;
}

void
funcmond_agg_spill_durations(struct funcmond_aggregate *agg, uint32_t id, uint64_t total_ns,
                             const uint32_t per_bucket[FUNCMON_SPILL_BUCKETS])
{
    struct funcmond_function *f = agg->fns[id];
    struct funcmond_window_slot *w = window_slot(agg, f);
    uint32_t highest = FUNCMON_SPILL_BUCKETS;

    if (__builtin_add_overflow(f->total_ns, total_ns, &f->total_ns))
        f->total_ns = UINT64_MAX; /* only a lying client gets there */
    for (uint32_t b = 0; b < FUNCMON_SPILL_BUCKETS; b++) {
        uint64_t n = per_bucket[b], v = funcmon_spill_bucket_value(b), lo, hi;
        if (n == 0)
            continue;
        funcmond_hist_add_n(&f->dur, v, n); /* sum and extremes are f's own */
        funcmond_hist_add_n(&w->dur, v, n);
        f->dur_buckets[bucket_index(agg->dur_bounds_ns, agg->n_dur_bounds, v)] += n;
        if (highest == FUNCMON_SPILL_BUCKETS) {
            funcmon_spill_bucket_bounds(b, &lo, &hi);
            if (lo < f->min_ns)
                f->min_ns = lo;
        }
        highest = b;
    }
    if (highest != FUNCMON_SPILL_BUCKETS) {
        /* No call of the bucket reaches hi; none of this fold's calls exceeds their sum
         * (unless the sum lags behind the buckets, read a moment apart: then lo). */
        uint64_t lo, hi, upper;
        funcmon_spill_bucket_bounds(highest, &lo, &hi);
        upper = total_ns > lo ? total_ns : lo;
        if (upper > hi - 1)
            upper = hi - 1;
        if (upper > f->max_ns)
            f->max_ns = upper;
    }
    if (total_ns != 0 || highest != FUNCMON_SPILL_BUCKETS) {
        f->changed = agg->generation;
        agg->dirty = 1;
    }
}

void
funcmond_agg_window(const struct funcmond_aggregate *agg, const struct funcmond_function *f, int slots, uint64_t *calls,
                    uint64_t *errors, struct funcmond_hist *dur)
{
    *calls = 0;
    *errors = 0;
    for (int k = 0; k < slots && (uint64_t)k <= agg->now_slot; k++) {
        uint64_t id = agg->now_slot - (uint64_t)k;
        const struct funcmond_window_slot *w = &f->window[id % FUNCMOND_WINDOW_SLOTS];
        if (w->id != id)
            continue;
        *calls += w->calls;
        *errors += w->errors;
        if (dur != NULL)
            funcmond_hist_merge(dur, &w->dur);
    }
}

struct funcmond_hist
funcmond_agg_durations(const struct funcmond_function *f)
{
    struct funcmond_hist h = f->dur;
    h.sum = f->total_ns;
    h.min = f->min_ns;
    h.max = f->max_ns;
    return h;
}
