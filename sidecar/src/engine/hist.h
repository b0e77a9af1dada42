/*
 * hist.h - log-linear histograms of non-negative 64-bit values (durations in ns, bytes).
 *
 * A value v falls in a bucket of width at most v / 2^sub_bits: values below 2^sub_bits
 * are exact, above that each power of two is split into 2^sub_bits equal buckets. A
 * quantile reported from a bucket is that bucket's midpoint, so its relative error is at
 * most 2^-(sub_bits+1): sub_bits = 7 gives <= 0.4%, well inside the 1% the product
 * promises. Buckets are stored sparsely, one chunk per power of two actually seen, so a
 * function whose calls span a few powers of two costs a few KiB.
 */
#ifndef FUNCMOND_HIST_H
#define FUNCMOND_HIST_H

#include <stddef.h>
#include <stdint.h>

struct funcmond_hist {
    uint64_t present;  /* bit k: chunk for slot k exists; slot 0 holds values < 2^sub_bits, slot k > 0
                          the power of two 2^(k + sub_bits - 1) */
    uint64_t **chunks; /* dense, ordered by slot: chunks[popcount(present & ((1ull << k) - 1))] */
    uint64_t count;    /* values recorded */
    uint64_t sum;      /* their sum (saturating) */
    uint64_t min;      /* smallest value, UINT64_MAX when empty */
    uint64_t max;      /* largest value, 0 when empty */
    uint8_t sub_bits;  /* 1..10 */
};

/* Initialises an empty histogram. */
void funcmond_hist_init(struct funcmond_hist *h, unsigned sub_bits);
/* Frees its chunks; h is empty afterwards. */
void funcmond_hist_free(struct funcmond_hist *h);
/* Records v n times. Returns 0, or -ENOMEM if memory ran out (the value is then only counted in
 * count/sum/min/max). Inline fast path for the common case in hist.c. */
int funcmond_hist_add(struct funcmond_hist *h, uint64_t v, uint64_t n);
/* Records one value in its bucket and the count only, for callers that keep sum, min and
 * max themselves: the fast path of the aggregate. Until the caller sets min <= max, the
 * histogram's extremes are unknown and queries do not clamp to them. Returns 0 or -ENOMEM
 * as funcmond_hist_add. */
static inline int funcmond_hist_add_one(struct funcmond_hist *h, uint64_t v);
/* Like funcmond_hist_add_one for n equal values at once (n = 0 adds nothing): calls
 * known only by a count and a representative value. */
int funcmond_hist_add_n(struct funcmond_hist *h, uint64_t v, uint64_t n);
/* Records each of values[0..n) as funcmond_hist_add_one does (bucket and count; sum and
 * extremes are the caller's), in one pass that keeps the histogram's own fields out of
 * memory: the batch form, for a function's deferred calls. Returns 0, or -ENOMEM when a
 * chunk could not be allocated (its values are then only counted). */
int funcmond_hist_add_values(struct funcmond_hist *h, const uint32_t *values, size_t n);
/* Adds every bucket of src into dst. Returns 0, -EINVAL when their sub_bits differ (nothing
 * added), or -ENOMEM when memory ran out. */
int funcmond_hist_merge(struct funcmond_hist *dst, const struct funcmond_hist *src);
/* The q-quantile (0 <= q <= 1): the midpoint of the bucket holding the value of rank
 * ceil(q * count) (at least 1), clamped to [min, max]; 0 when empty. */
uint64_t funcmond_hist_quantile(const struct funcmond_hist *h, double q);
/* Number of recorded values <= bound (exact when bound + 1 is a bucket boundary;
 * otherwise values in the bucket containing bound are split proportionally). */
uint64_t funcmond_hist_count_le(const struct funcmond_hist *h, uint64_t bound);
/* Calls fn(arg, lo, hi, n) for every non-empty bucket [lo, hi] in increasing order. */
void funcmond_hist_foreach(const struct funcmond_hist *h, void (*fn)(void *arg, uint64_t lo, uint64_t hi, uint64_t n), void *arg);
/* The bucket [lo, hi] that holds v. */
void funcmond_hist_bucket_of(unsigned sub_bits, uint64_t v, uint64_t *lo, uint64_t *hi);

/* ---- inline fast path ---- */

static inline uint64_t
funcmond__hist_below(unsigned k)
{
    return ((uint64_t)1 << k) - 1;
}

/* Slot of v and its bucket within the slot. OR-ing in the low mask sends every v < 2^s
 * to slot 0 with shift 0 (and keeps clz's argument non-zero); above that the shift is
 * e - s = k - 1 and the mask drops the leading one bit. */
static inline unsigned
funcmond__hist_slot_of(unsigned s, uint64_t v, uint64_t *idx)
{
    uint64_t mask = funcmond__hist_below(s);
    unsigned k = 64 - s - (unsigned)__builtin_clzll(v | mask);

    *idx = (v >> (k - (k != 0))) & mask;
    return k;
}

int funcmond__hist_add_one_slow(struct funcmond_hist *h, unsigned k, uint64_t idx);

static inline int
funcmond_hist_add_one(struct funcmond_hist *h, uint64_t v)
{
    uint64_t idx;
    unsigned k = funcmond__hist_slot_of(h->sub_bits, v, &idx);
    if (__builtin_expect((h->present >> k) & 1, 1)) {
        h->chunks[__builtin_popcountll(h->present & funcmond__hist_below(k))][idx]++;
        h->count++;
        return 0;
    }
    return funcmond__hist_add_one_slow(h, k, idx);
}

#endif
