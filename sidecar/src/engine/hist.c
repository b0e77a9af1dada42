/*
 * hist.c - the log-linear histogram: bucket arithmetic, lazy chunks, and the queries.
 *
 * With s = sub_bits, slot 0 holds the values 0 .. 2^s - 1 one per bucket, and slot k >= 1
 * holds [2^(k+s-1), 2^(k+s)) in 2^s buckets of width 2^(k-1), so any 64-bit value has a
 * slot in 0..63. A value's slot and bucket come from one clz and two shifts, its chunk from
 * one popcount over `present`; funcmond_hist_add does only that and a few compares once the
 * slot has been seen, and the first value of a new slot goes to add_slow, which allocates
 * the chunk and inserts it in order. Queries walk the chunks in slot order, so they cost
 * at most 64 * 2^s counters and never allocate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

#define SUB_BITS_MIN 1
#define SUB_BITS_MAX 10

#define below funcmond__hist_below
#define slot_of funcmond__hist_slot_of

/* Inclusive range of bucket i of slot k. Cannot overflow: (2^s + i) < 2^(s+1) is shifted
 * by at most 63 - s, and the last bucket of slot 64 - s ends exactly at UINT64_MAX. */
static inline void
bucket_range(unsigned s, unsigned k, uint64_t i, uint64_t *lo, uint64_t *hi)
{
    if (k == 0) {
        *lo = *hi = i;
        return;
    }
    *lo = (((uint64_t)1 << s) + i) << (k - 1);
    *hi = *lo + below(k - 1);
}

static unsigned
clamp_sub_bits(unsigned sub_bits)
{
    if (sub_bits < SUB_BITS_MIN)
        return SUB_BITS_MIN;
    if (sub_bits > SUB_BITS_MAX)
        return SUB_BITS_MAX;
    return sub_bits;
}

static void
add_totals(struct funcmond_hist *h, uint64_t count, uint64_t sum, uint64_t min, uint64_t max)
{
    h->count += count;
    if (__builtin_add_overflow(h->sum, sum, &h->sum))
        h->sum = UINT64_MAX;
    if (min < h->min)
        h->min = min;
    if (max > h->max)
        h->max = max;
}

/* Allocates the zeroed chunk for slot k (not yet present) and inserts its pointer at its
 * rank. Returns the chunk, or NULL with h unchanged if memory ran out. */
static uint64_t *
insert_chunk(struct funcmond_hist *h, unsigned k)
{
    size_t used = (size_t)__builtin_popcountll(h->present);
    size_t pos = (size_t)__builtin_popcountll(h->present & below(k));
    uint64_t *chunk, **chunks;

    chunk = calloc((size_t)1 << h->sub_bits, sizeof(*chunk));
    if (chunk == NULL)
        return NULL;
    chunks = realloc(h->chunks, (used + 1) * sizeof(*chunks));
    if (chunks == NULL) {
        free(chunk);
        return NULL;
    }
    memmove(chunks + pos + 1, chunks + pos, (used - pos) * sizeof(*chunks));
    chunks[pos] = chunk;
    h->chunks = chunks;
    h->present |= (uint64_t)1 << k;
    return chunk;
}

/* First value of slot k: out of line so the allocator stays off funcmond_hist_add. */
__attribute__((noinline, cold)) static int
add_slow(struct funcmond_hist *h, unsigned k, uint64_t idx, uint64_t n)
{
    uint64_t *chunk = insert_chunk(h, k);

    if (chunk == NULL)
        return -ENOMEM;
    chunk[idx] += n;
    return 0;
}

/* sub_bits outside 1..10 is clamped into it rather than refused: below 1 there is no
 * linear part, above 10 a chunk would pass 8 KiB for accuracy nobody reads. */
void
funcmond_hist_init(struct funcmond_hist *h, unsigned sub_bits)
{
    h->present = 0;
    h->chunks = NULL;
    h->count = 0;
    h->sum = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sub_bits = (uint8_t)clamp_sub_bits(sub_bits);
}

void
funcmond_hist_free(struct funcmond_hist *h)
{
    int used = __builtin_popcountll(h->present);

    for (int i = 0; i < used; i++)
        free(h->chunks[i]);
    free(h->chunks);
    funcmond_hist_init(h, h->sub_bits);
}

int
funcmond__hist_add_one_slow(struct funcmond_hist *h, unsigned k, uint64_t idx)
{
    h->count++;
    return add_slow(h, k, idx, 1);
}

int
funcmond_hist_add_n(struct funcmond_hist *h, uint64_t v, uint64_t n)
{
    uint64_t idx;
    unsigned k;

    if (n == 0)
        return 0;
    h->count += n;
    k = slot_of(h->sub_bits, v, &idx);
    if (__builtin_expect((h->present >> k) & 1, 1)) {
        h->chunks[__builtin_popcountll(h->present & below(k))][idx] += n;
        return 0;
    }
    return add_slow(h, k, idx, n);
}

int
funcmond_hist_add(struct funcmond_hist *h, uint64_t v, uint64_t n)
{
    uint64_t total;

    if (n == 0)
        return 0;
    if (__builtin_mul_overflow(v, n, &total) || __builtin_add_overflow(h->sum, total, &h->sum))
        h->sum = UINT64_MAX;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    return funcmond_hist_add_n(h, v, n);
}

int
funcmond_hist_add_values(struct funcmond_hist *h, const uint32_t *values, size_t n)
{
    const unsigned s = h->sub_bits;
    uint64_t present = h->present, **chunks = h->chunks;
    int ret = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t idx;
        unsigned k = slot_of(s, values[i], &idx);

        if (__builtin_expect((present >> k) & 1, 1)) {
            chunks[__builtin_popcountll(present & below(k))][idx]++;
            continue;
        }
        if (add_slow(h, k, idx, 1) != 0)
            ret = -ENOMEM;
        present = h->present; /* a chunk was inserted: the list moved */
        chunks = h->chunks;
    }
    h->count += n;
    return ret;
}

/* Totals are combined even when a chunk cannot be allocated, as funcmond_hist_add does:
 * count/sum/min/max stay exact and only that slot's buckets are lost. */
int
funcmond_hist_merge(struct funcmond_hist *dst, const struct funcmond_hist *src)
{
    size_t width, pos = 0;
    int ret = 0;

    if (dst->sub_bits != src->sub_bits)
        return -EINVAL;
    width = (size_t)1 << src->sub_bits;
    for (uint64_t rest = src->present; rest != 0; rest &= rest - 1) {
        unsigned k = (unsigned)__builtin_ctzll(rest);
        const uint64_t *from = src->chunks[pos++];
        uint64_t *to;

        if ((dst->present >> k) & 1)
            to = dst->chunks[__builtin_popcountll(dst->present & below(k))];
        else
            to = insert_chunk(dst, k);
        if (to == NULL) {
            ret = -ENOMEM;
            continue;
        }
        for (size_t i = 0; i < width; i++)
            to[i] += from[i];
    }
    if (src->count != 0)
        add_totals(dst, src->count, src->sum, src->min, src->max);
    return ret;
}

uint64_t
funcmond_hist_quantile(const struct funcmond_hist *h, double q)
{
    size_t width = (size_t)1 << h->sub_bits, pos = 0;
    uint64_t rank, seen = 0;
    double r;

    if (h->count == 0)
        return 0;
    if (!(q > 0)) /* also NaN */
        q = 0;
    else if (q > 1)
        q = 1;
    /* rank = ceil(q * count) in [1, count], without libm and without converting a double
     * that may have rounded up to 2^64. */
    r = q * (double)h->count;
    if (r >= (double)h->count) {
        rank = h->count;
    } else {
        rank = (uint64_t)r;
        rank += (double)rank < r;
        if (rank == 0)
            rank = 1;
    }
    for (uint64_t rest = h->present; rest != 0; rest &= rest - 1) {
        unsigned k = (unsigned)__builtin_ctzll(rest);
        const uint64_t *chunk = h->chunks[pos++];

        for (size_t i = 0; i < width; i++) {
            uint64_t lo, hi, mid;

            seen += chunk[i];
            if (seen < rank)
                continue;
            bucket_range(h->sub_bits, k, i, &lo, &hi);
            mid = lo + (hi - lo) / 2;
            if (h->min <= h->max && mid < h->min) /* min > max: extremes not kept (add_one) */
                return h->min;
            if (h->min <= h->max && mid > h->max)
                return h->max;
            return mid;
        }
    }
    return h->min <= h->max ? h->max : 0; /* only when buckets were lost to out of memory */
}

uint64_t
funcmond_hist_count_le(const struct funcmond_hist *h, uint64_t bound)
{
    size_t width = (size_t)1 << h->sub_bits, pos = 0;
    uint64_t bidx, total = 0;
    unsigned bk;

    if (h->count == 0 || (h->min <= h->max && bound < h->min))
        return 0;
    if (h->min <= h->max && bound >= h->max)
        return h->count;
    bk = slot_of(h->sub_bits, bound, &bidx);
    for (uint64_t rest = h->present; rest != 0; rest &= rest - 1) {
        unsigned k = (unsigned)__builtin_ctzll(rest);
        const uint64_t *chunk = h->chunks[pos++];
        uint64_t lo, hi;

        if (k > bk)
            break;
        if (k < bk) {
            for (size_t i = 0; i < width; i++)
                total += chunk[i];
            continue;
        }
        for (size_t i = 0; i < bidx; i++)
            total += chunk[i];
        /* The bucket holding bound: its share of the bucket's width, in 128 bits since a
         * count times a width can exceed 64. bound == hi gives the whole bucket. */
        bucket_range(h->sub_bits, k, bidx, &lo, &hi);
        total += (uint64_t)((unsigned __int128)chunk[bidx] * (bound - lo + 1) / ((unsigned __int128)(hi - lo) + 1));
        break;
    }
    return total < h->count ? total : h->count;
}

void
funcmond_hist_foreach(const struct funcmond_hist *h, void (*fn)(void *arg, uint64_t lo, uint64_t hi, uint64_t n), void *arg)
{
    size_t width = (size_t)1 << h->sub_bits, pos = 0;

    for (uint64_t rest = h->present; rest != 0; rest &= rest - 1) {
        unsigned k = (unsigned)__builtin_ctzll(rest);
        const uint64_t *chunk = h->chunks[pos++];

        for (size_t i = 0; i < width; i++) {
            uint64_t lo, hi;

            if (chunk[i] == 0)
                continue;
            bucket_range(h->sub_bits, k, i, &lo, &hi);
            fn(arg, lo, hi, chunk[i]);
        }
    }
}

/* sub_bits is clamped to 1..10 as in funcmond_hist_init, so it answers for any histogram
 * made with the same argument. */
void
funcmond_hist_bucket_of(unsigned sub_bits, uint64_t v, uint64_t *lo, uint64_t *hi)
{
    unsigned s = clamp_sub_bits(sub_bits);
    uint64_t idx;
    unsigned k = slot_of(s, v, &idx);

    bucket_range(s, k, idx, lo, hi);
}
