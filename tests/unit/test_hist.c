/*
 * test_hist.c - the sidecar's log-linear histogram against exact answers: quantiles,
 * count_le, totals, merge, the extremes 0 and UINT64_MAX, bucket geometry, the weighted
 * insert (n equal values at once) against as many single ones, and that the batch add
 * files values exactly as one add at a time does.
 *
 * Every expected value is computed by the test from its own copy of the samples, sorted:
 * a quantile is compared with the exact order statistic of the same rank (sorted index
 * ceil(q * n) - 1), count_le with a binary search. Samples come from a fixed-seed
 * generator, so a failure reproduces. The one timing line printed at the end is
 * information, never a check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <time.h>

#include "check.h"
#include "hist.h"

#define N_SAMPLES 1000000
#define NS_US 1000ull
#define NS_MS 1000000ull
#define NS_S 1000000000ull

/* xorshift64 and Box-Muller: fixed seed, no libc state. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rand64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double
uniform(void) /* in (0, 1) */
{
    return ((double)(rand64() >> 11) + 0.5) * 0x1p-53;
}

static double
normal(void)
{
    return sqrt(-2.0 * log(uniform())) * cos(2.0 * M_PI * uniform());
}

static uint64_t
lognormal(double median, double sigma)
{
    double x = median * exp(sigma * normal());
    return x >= 0x1p64 ? UINT64_MAX : (uint64_t)(x + 0.5);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

struct samples {
    const char *name;
    uint64_t *v;      /* in generation order */
    uint64_t *sorted; /* the truth */
    size_t n;
};

static void
samples_sort(struct samples *s)
{
    s->sorted = malloc(s->n * sizeof(*s->sorted));
    CHECK(s->sorted != NULL);
    memcpy(s->sorted, s->v, s->n * sizeof(*s->sorted));
    qsort(s->sorted, s->n, sizeof(*s->sorted), cmp_u64);
}

/* The value of rank ceil(q * n), at least 1: the definition the histogram documents. */
static uint64_t
exact_quantile(const struct samples *s, double q)
{
    size_t rank = (size_t)ceil(q * (double)s->n);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->sorted[rank - 1];
}

/* Number of samples <= b. */
static uint64_t
exact_le(const struct samples *s, uint64_t b)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->sorted[mid] <= b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Number of samples in [lo, hi]. */
static uint64_t
exact_in(const struct samples *s, uint64_t lo, uint64_t hi)
{
    return exact_le(s, hi) - (lo == 0 ? 0 : exact_le(s, lo - 1));
}

static void
fill(struct funcmond_hist *h, unsigned sub_bits, const uint64_t *v, size_t n)
{
    funcmond_hist_init(h, sub_bits);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(funcmond_hist_add(h, v[i], 1), 0);
}

struct bucket {
    uint64_t lo, hi, n;
};

struct buckets {
    struct bucket *b;
    size_t len, cap;
};

static void
on_bucket(void *arg, uint64_t lo, uint64_t hi, uint64_t n)
{
    struct buckets *bs = arg;
    if (bs->len == bs->cap) {
        bs->cap = bs->cap ? 2 * bs->cap : 256;
        bs->b = realloc(bs->b, bs->cap * sizeof(*bs->b));
        CHECK(bs->b != NULL);
    }
    bs->b[bs->len++] = (struct bucket){lo, hi, n};
}

static struct buckets
collect(const struct funcmond_hist *h)
{
    struct buckets bs = {0};
    funcmond_hist_foreach(h, on_bucket, &bs);
    return bs;
}

/* Width of the bucket starting at lo, from the definition rather than from the code. */
static uint64_t
expected_width(unsigned s, uint64_t lo)
{
    if (lo < (1ull << s))
        return 1;
    int e = 63 - __builtin_clzll(lo);
    return 1ull << (e - (int)s);
}

static void
check_totals(const struct funcmond_hist *h, const struct samples *s)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < s->n; i++)
        if (__builtin_add_overflow(sum, s->v[i], &sum))
            sum = UINT64_MAX;
    CHECK_EQ(h->count, s->n);
    CHECK(h->sum == sum);
    CHECK(h->min == s->sorted[0]);
    CHECK(h->max == s->sorted[s->n - 1]);
}

/* Every quantile within the design bound: the midpoint of a bucket of width w <= x / 2^s
 * is within w / 2 of any x in it, so |estimate - x| * 2^(s+1) <= x. */
static void
check_quantiles(const struct funcmond_hist *h, const struct samples *s)
{
    static const double qs[] = {0, 1e-6, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 0.99999, 1};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        uint64_t est = funcmond_hist_quantile(h, qs[i]), x = exact_quantile(s, qs[i]);
        uint64_t diff = est > x ? est - x : x - est;
        int ok = ((unsigned __int128)diff << (h->sub_bits + 1)) <= x;
        if (!ok)
            fprintf(stderr, "%s sub_bits %u q %g: histogram %" PRIu64 ", exact %" PRIu64 "\n", s->name, h->sub_bits, qs[i], est, x);
        CHECK(ok);
    }
}

/* The four quantiles the product reports, within 1%; printed for the record. */
static void
check_reported_quantiles(const struct funcmond_hist *h, const struct samples *s)
{
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    static const char *names[] = {"p50", "p90", "p99", "p999"};
    printf("test_hist: %s (n=%zu, sub_bits=%u):", s->name, s->n, h->sub_bits);
    for (size_t i = 0; i < 4; i++) {
        uint64_t est = funcmond_hist_quantile(h, qs[i]), x = exact_quantile(s, qs[i]);
        double rel = fabs((double)est - (double)x) / (double)x;
        printf(" %s %.4f ms (exact %.4f, err %.3f%%)", names[i], (double)est / NS_MS, (double)x / NS_MS, 100 * rel);
        if (rel > 0.01)
            fprintf(stderr, "\n%s %s: histogram %" PRIu64 ", exact %" PRIu64 "\n", s->name, names[i], est, x);
        CHECK(rel <= 0.01);
    }
    printf("\n");
}

/* foreach: ordered, non-empty, counts summing to count and equal to the samples in each
 * range; each range is what bucket_of says and has the documented width; and count_le is
 * exact at both edges of every non-empty bucket (hi, and lo - 1, which is the previous,
 * possibly empty, bucket's hi). */
static void
check_buckets(const struct funcmond_hist *h, const struct samples *s)
{
    struct buckets bs = collect(h);
    uint64_t total = 0;
    for (size_t i = 0; i < bs.len; i++) {
        const struct bucket *b = &bs.b[i];
        uint64_t lo, hi;
        CHECK(b->lo <= b->hi);
        CHECK_GT(b->n, 0);
        if (i > 0)
            CHECK(b->lo > bs.b[i - 1].hi);
        CHECK(b->hi - b->lo + 1 == expected_width(h->sub_bits, b->lo));
        CHECK(b->lo % expected_width(h->sub_bits, b->lo) == 0);
        funcmond_hist_bucket_of(h->sub_bits, b->lo, &lo, &hi);
        CHECK(lo == b->lo && hi == b->hi);
        funcmond_hist_bucket_of(h->sub_bits, b->hi, &lo, &hi);
        CHECK(lo == b->lo && hi == b->hi);
        CHECK_EQ(b->n, exact_in(s, b->lo, b->hi));
        CHECK_EQ(funcmond_hist_count_le(h, b->hi), exact_le(s, b->hi));
        if (b->lo > 0)
            CHECK_EQ(funcmond_hist_count_le(h, b->lo - 1), exact_le(s, b->lo - 1));
        total += b->n;
    }
    CHECK_EQ(total, h->count);
    free(bs.b);
}

/* count_le at arbitrary bounds: exact at any bucket's hi; elsewhere off by at most the
 * samples in the bucket holding the bound, and never decreasing. */
static void
check_count_le(const struct funcmond_hist *h, const struct samples *s)
{
    static const uint64_t prom[] = {
        1 * NS_US,   10 * NS_US,   25 * NS_US, 50 * NS_US,   100 * NS_US, 250 * NS_US, 500 * NS_US,
        1 * NS_MS,   2500 * NS_US, 5 * NS_MS,  10 * NS_MS,   25 * NS_MS,  50 * NS_MS,  100 * NS_MS,
        250 * NS_MS, 500 * NS_MS,  1 * NS_S,   2500 * NS_MS, 5 * NS_S,    10 * NS_S,
    };
    uint64_t prev = 0;

    for (size_t i = 0; i < sizeof(prom) / sizeof(prom[0]); i++) {
        uint64_t lo, hi, got = funcmond_hist_count_le(h, prom[i]), want = exact_le(s, prom[i]);
        funcmond_hist_bucket_of(h->sub_bits, prom[i], &lo, &hi);
        uint64_t slack = exact_in(s, lo, hi);
        uint64_t diff = got > want ? got - want : want - got;
        if (diff > slack)
            fprintf(stderr,
                    "%s le %" PRIu64 ": histogram %" PRIu64 ", exact %" PRIu64 ", bucket [%" PRIu64 ", %" PRIu64 "] holds %" PRIu64
                    "\n",
                    s->name, prom[i], got, want, lo, hi, slack);
        CHECK_LE(diff, slack);
        CHECK_GE(got, prev);
        prev = got;
        /* The bucket's own edges are exact. */
        CHECK_EQ(funcmond_hist_count_le(h, hi), exact_le(s, hi));
        if (lo > 0)
            CHECK_EQ(funcmond_hist_count_le(h, lo - 1), exact_le(s, lo - 1));
    }
    /* Random bounds, and the hi of each one's bucket (empty buckets included). */
    for (int i = 0; i < 2000; i++) {
        uint64_t b = s->sorted[rand64() % s->n] + (rand64() % 3) - 1, lo, hi;
        uint64_t got = funcmond_hist_count_le(h, b), want = exact_le(s, b);
        funcmond_hist_bucket_of(h->sub_bits, b, &lo, &hi);
        uint64_t diff = got > want ? got - want : want - got;
        CHECK_LE(diff, exact_in(s, lo, hi));
        CHECK_EQ(funcmond_hist_count_le(h, hi), exact_le(s, hi));
    }
    if (s->sorted[0] > 0)
        CHECK_EQ(funcmond_hist_count_le(h, s->sorted[0] - 1), 0);
    CHECK_EQ(funcmond_hist_count_le(h, s->sorted[s->n - 1]), s->n);
    CHECK_EQ(funcmond_hist_count_le(h, UINT64_MAX), s->n);
}

static void
check_same(const struct funcmond_hist *a, const struct funcmond_hist *b)
{
    struct buckets ba = collect(a), bb = collect(b);
    CHECK_EQ(a->sub_bits, b->sub_bits);
    CHECK(a->count == b->count);
    CHECK(a->sum == b->sum);
    CHECK(a->min == b->min);
    CHECK(a->max == b->max);
    CHECK(a->present == b->present);
    CHECK_EQ(ba.len, bb.len);
    CHECK(ba.len == 0 || memcmp(ba.b, bb.b, ba.len * sizeof(*ba.b)) == 0);
    for (int i = 0; i <= 1000; i++)
        CHECK(funcmond_hist_quantile(a, i / 1000.0) == funcmond_hist_quantile(b, i / 1000.0));
    free(ba.b);
    free(bb.b);
}

/* Merging the parts of a partition in either order gives the histogram of the whole.
 * split_at partitions by value, so one side has slots the other lacks and merge must
 * insert chunks before, between and after the existing ones; 0 splits odd/even. */
static void
check_merge(const struct funcmond_hist *whole, const struct samples *s, uint64_t split_at)
{
    struct funcmond_hist a, b, e;
    funcmond_hist_init(&a, whole->sub_bits);
    funcmond_hist_init(&b, whole->sub_bits);
    for (size_t i = 0; i < s->n; i++) {
        int left = split_at ? s->v[i] < split_at : (i & 1) == 0;
        CHECK_EQ(funcmond_hist_add(left ? &a : &b, s->v[i], 1), 0);
    }
    CHECK_EQ(funcmond_hist_merge(&b, &a), 0);
    check_same(&b, whole);
    funcmond_hist_free(&b);
    for (size_t i = 0; i < s->n; i++) {
        int left = split_at ? s->v[i] < split_at : (i & 1) == 0;
        if (!left)
            CHECK_EQ(funcmond_hist_add(&b, s->v[i], 1), 0);
    }
    CHECK_EQ(funcmond_hist_merge(&a, &b), 0);
    check_same(&a, whole);
    /* Into an empty histogram, and an empty one into a full one. */
    funcmond_hist_init(&e, whole->sub_bits);
    CHECK_EQ(funcmond_hist_merge(&e, whole), 0);
    check_same(&e, whole);
    funcmond_hist_free(&b);
    CHECK_EQ(funcmond_hist_merge(&e, &b), 0);
    check_same(&e, whole);
    funcmond_hist_free(&a);
    funcmond_hist_free(&e);
}

static void
check_all(const struct samples *s, unsigned sub_bits, uint64_t split_at)
{
    struct funcmond_hist h;
    fill(&h, sub_bits, s->v, s->n);
    check_totals(&h, s);
    check_quantiles(&h, s);
    check_buckets(&h, s);
    check_count_le(&h, s);
    check_merge(&h, s, split_at);
    check_merge(&h, s, 0);
    funcmond_hist_free(&h);
}

/* Bucket geometry for every sub_bits around every power of two: v is inside its bucket,
 * the bucket has the documented width and alignment, and neighbours tile without gaps. */
static void
check_geometry(void)
{
    for (unsigned s = 1; s <= 10; s++) {
        for (int e = 0; e < 64; e++) {
            uint64_t p = 1ull << e;
            uint64_t vs[] = {p - 1, p, p + 1, p + (p >> 1), p | (rand64() & (p - 1)), (p - 1) << 1 | 1};
            for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
                uint64_t v = vs[i], lo, hi, lo2, hi2;
                funcmond_hist_bucket_of(s, v, &lo, &hi);
                CHECK(lo <= v && v <= hi);
                CHECK(hi - lo + 1 == expected_width(s, lo));
                CHECK(lo % expected_width(s, lo) == 0);
                if (hi != UINT64_MAX) {
                    funcmond_hist_bucket_of(s, hi + 1, &lo2, &hi2);
                    CHECK(lo2 == hi + 1);
                }
                if (lo != 0) {
                    funcmond_hist_bucket_of(s, lo - 1, &lo2, &hi2);
                    CHECK(hi2 == lo - 1);
                }
            }
        }
        uint64_t lo, hi;
        funcmond_hist_bucket_of(s, 0, &lo, &hi);
        CHECK(lo == 0 && hi == 0);
        funcmond_hist_bucket_of(s, UINT64_MAX, &lo, &hi);
        CHECK(hi == UINT64_MAX);
        CHECK(lo == UINT64_MAX - ((1ull << (63 - s)) - 1));
    }
}

/* Values below 2^(s+1) have buckets of width 1, so everything about them is exact. */
static void
check_small_exact(void)
{
    struct samples s = {"small", NULL, NULL, 50000};
    struct funcmond_hist h;
    s.v = malloc(s.n * sizeof(*s.v));
    CHECK(s.v != NULL);
    for (size_t i = 0; i < s.n; i++)
        s.v[i] = (rand64() % 256) * (rand64() % 2); /* 0..255, half of them 0 */
    samples_sort(&s);
    fill(&h, 7, s.v, s.n);
    check_totals(&h, &s);
    for (int i = 0; i <= 10000; i++)
        CHECK(funcmond_hist_quantile(&h, i / 10000.0) == exact_quantile(&s, i / 10000.0));
    for (uint64_t b = 0; b < 300; b++)
        CHECK_EQ(funcmond_hist_count_le(&h, b), exact_le(&s, b));
    struct buckets bs = collect(&h);
    for (size_t i = 0; i < bs.len; i++)
        CHECK(bs.b[i].lo == bs.b[i].hi);
    free(bs.b);
    funcmond_hist_free(&h);
    free(s.v);
    free(s.sorted);
}

/* 0 and UINT64_MAX, saturating sums, n > 1, n == 0, sub_bits clamping, reuse after free. */
static void
check_edges(void)
{
    struct funcmond_hist h, one;
    for (unsigned s = 1; s <= 10; s++) {
        funcmond_hist_init(&h, s);
        CHECK_EQ(funcmond_hist_add(&h, 0, 1), 0);
        CHECK_EQ(funcmond_hist_add(&h, UINT64_MAX, 1), 0);
        CHECK_EQ(funcmond_hist_add(&h, 1, 1), 0);
        CHECK_EQ(funcmond_hist_add(&h, 1ull << 63, 1), 0);
        CHECK_EQ(h.count, 4);
        CHECK(h.sum == UINT64_MAX); /* saturated */
        CHECK(h.min == 0);
        CHECK(h.max == UINT64_MAX);
        CHECK(funcmond_hist_quantile(&h, 0) == 0);
        CHECK(funcmond_hist_quantile(&h, 0.25) == 0);
        CHECK(funcmond_hist_quantile(&h, 0.5) == 1);
        /* The top bucket's midpoint, not max: a quantile is always a midpoint. */
        uint64_t top = UINT64_MAX - ((1ull << (63 - s)) - 1);
        CHECK(funcmond_hist_quantile(&h, 1) == top + (UINT64_MAX - top) / 2);
        CHECK(funcmond_hist_quantile(&h, 2) == funcmond_hist_quantile(&h, 1));
        CHECK(funcmond_hist_quantile(&h, -1) == 0);
        CHECK(funcmond_hist_quantile(&h, NAN) == 0);
        CHECK_EQ(funcmond_hist_count_le(&h, 0), 1);
        CHECK_EQ(funcmond_hist_count_le(&h, 1), 2);
        CHECK_EQ(funcmond_hist_count_le(&h, (1ull << 63) - 1), 2);
        CHECK_EQ(funcmond_hist_count_le(&h, UINT64_MAX - 1), 3);
        CHECK_EQ(funcmond_hist_count_le(&h, UINT64_MAX), 4);
        struct buckets bs = collect(&h);
        CHECK_EQ(bs.len, 4);
        CHECK(bs.b[0].lo == 0 && bs.b[0].hi == 0);
        CHECK(bs.b[1].lo == 1 && bs.b[1].hi == 1);
        CHECK(bs.b[2].lo == 1ull << 63);
        CHECK(bs.b[3].hi == UINT64_MAX);
        free(bs.b);

        /* Repeated adds: n > 1 is n adds of one, n == 0 is nothing, and sum saturates on
         * the product too. */
        struct funcmond_hist five;
        uint64_t lo, hi;
        funcmond_hist_init(&one, s);
        funcmond_hist_init(&five, s);
        for (int i = 0; i < 5; i++)
            CHECK_EQ(funcmond_hist_add(&one, 12345, 1), 0);
        CHECK_EQ(funcmond_hist_add(&five, 12345, 5), 0);
        CHECK_EQ(funcmond_hist_add(&five, 77, 0), 0);
        check_same(&one, &five);
        CHECK_EQ(five.count, 5);
        CHECK_EQ(five.sum, 5 * 12345);
        CHECK_EQ(five.min, 12345);
        funcmond_hist_free(&five);
        CHECK_EQ(funcmond_hist_add(&h, 12345, 5), 0);
        funcmond_hist_bucket_of(s, 12345, &lo, &hi);
        CHECK_EQ(funcmond_hist_count_le(&h, hi), 2 + 5);
        CHECK_EQ(funcmond_hist_count_le(&h, lo - 1), 2);
        CHECK_EQ(h.count, 9);
        CHECK(h.sum == UINT64_MAX);
        funcmond_hist_free(&one);
        CHECK_EQ(funcmond_hist_add(&one, UINT64_MAX, 3), 0); /* v * n overflows */
        CHECK(one.sum == UINT64_MAX);
        CHECK_EQ(one.count, 3);
        funcmond_hist_free(&one);
        CHECK_EQ(funcmond_hist_add(&one, 1ull << 62, 2), 0); /* 2^63: no saturation */
        CHECK(one.sum == 1ull << 63);

        /* Merge refuses a different sub_bits and leaves dst alone. */
        struct funcmond_hist other;
        funcmond_hist_init(&other, s == 10 ? 9 : s + 1);
        CHECK_EQ(funcmond_hist_add(&other, 5, 1), 0);
        CHECK_EQ(funcmond_hist_merge(&one, &other), -EINVAL);
        CHECK_EQ(one.count, 2);
        funcmond_hist_free(&other);
        funcmond_hist_free(&one);

        /* Merge inserts a slot between two existing ones. */
        struct funcmond_hist outer, inner, all;
        funcmond_hist_init(&outer, s);
        funcmond_hist_init(&inner, s);
        funcmond_hist_init(&all, s);
        uint64_t spread[] = {3, 1ull << 12, 1ull << 20, 1ull << 40, UINT64_MAX};
        for (size_t i = 0; i < sizeof(spread) / sizeof(spread[0]); i++) {
            CHECK_EQ(funcmond_hist_add(i % 2 ? &inner : &outer, spread[i], i + 1), 0);
            CHECK_EQ(funcmond_hist_add(&all, spread[i], i + 1), 0);
        }
        CHECK_EQ(funcmond_hist_merge(&outer, &inner), 0);
        check_same(&outer, &all);
        funcmond_hist_free(&outer);
        funcmond_hist_free(&inner);
        funcmond_hist_free(&all);

        /* Free leaves an empty, reusable histogram. */
        funcmond_hist_free(&h);
        CHECK_EQ(h.sub_bits, s);
        CHECK_EQ(h.count, 0);
        CHECK(h.present == 0 && h.chunks == NULL);
        CHECK(h.min == UINT64_MAX);
        CHECK_EQ(h.max, 0);
        CHECK_EQ(h.sum, 0);
        CHECK_EQ(funcmond_hist_quantile(&h, 0.5), 0);
        CHECK_EQ(funcmond_hist_count_le(&h, UINT64_MAX), 0);
        CHECK_EQ(funcmond_hist_add(&h, 42, 1), 0);
        CHECK_EQ(funcmond_hist_quantile(&h, 0.5), 42);
        funcmond_hist_free(&h);
    }
    funcmond_hist_init(&h, 0);
    CHECK_EQ(h.sub_bits, 1);
    funcmond_hist_init(&h, 11);
    CHECK_EQ(h.sub_bits, 10);
    funcmond_hist_init(&h, 1000);
    CHECK_EQ(h.sub_bits, 10);
}

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* funcmond_hist_add_values in uneven batches (new slots appearing inside a batch) gives the
 * histogram funcmond_hist_add_one gives. */
static void
check_add_values(const struct samples *s, unsigned sub_bits)
{
    struct funcmond_hist one, batch;
    uint32_t values[64];
    funcmond_hist_init(&one, sub_bits);
    funcmond_hist_init(&batch, sub_bits);
    for (size_t i = 0; i < s->n;) {
        size_t n = 1 + (size_t)(uniform() * 63);
        if (n > s->n - i)
            n = s->n - i;
        for (size_t k = 0; k < n; k++) {
            values[k] = (uint32_t)(s->v[i + k] & UINT32_MAX);
            CHECK_EQ(funcmond_hist_add_one(&one, values[k]), 0);
        }
        CHECK_EQ(funcmond_hist_add_values(&batch, values, n), 0);
        i += n;
    }
    check_same(&one, &batch);
    funcmond_hist_free(&one);
    funcmond_hist_free(&batch);
}

/* Information only: the cost of an add with every slot already present. */
static void
bench_add(const struct samples *s)
{
    struct funcmond_hist h;
    const int rounds = 10;
    fill(&h, 7, s->v, s->n);
    double t0 = now_ns();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < s->n; i++)
            funcmond_hist_add(&h, s->v[i], 1);
    double t1 = now_ns();
    CHECK_EQ(h.count, (uint64_t)s->n * (rounds + 1));
    printf("test_hist: add: %.2f ns per add over %zu log-normal values, sub_bits 7 (information, not a check)\n",
           (t1 - t0) / ((double)s->n * rounds), s->n * rounds);
    funcmond_hist_free(&h);
}

/* funcmond_hist_add_n: n equal values in one step land in the buckets and the count as n
 * single adds do, and leave the sum and extremes to the caller; n = 0 adds nothing. */
static void
check_add_n(void)
{
    static const uint64_t values[] = {0, 1, 127, 128, 1000, 1797559, 28760941, 1ull << 38, UINT64_MAX - 1, UINT64_MAX};
    static const uint64_t counts[] = {3, 0, 1, 2, 1000, 7, 1, 5, 2, 1};
    struct funcmond_hist weighted, single, plain;
    funcmond_hist_init(&weighted, 7);
    funcmond_hist_init(&single, 7);
    funcmond_hist_init(&plain, 7);
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        CHECK_EQ(funcmond_hist_add_n(&weighted, values[i], counts[i]), 0);
        CHECK_EQ(funcmond_hist_add(&plain, values[i], counts[i]), 0);
        for (uint64_t k = 0; k < counts[i]; k++)
            CHECK_EQ(funcmond_hist_add_one(&single, values[i]), 0);
        total += counts[i];
    }
    CHECK_EQ(weighted.count, total);
    CHECK_EQ(weighted.count, single.count);
    CHECK_EQ(weighted.sum, 0); /* the caller's */
    CHECK(weighted.min == UINT64_MAX && weighted.max == 0);
    struct buckets w = collect(&weighted), o = collect(&single), q = collect(&plain);
    CHECK_EQ(w.len, o.len);
    CHECK_EQ(w.len, q.len);
    for (size_t i = 0; i < w.len; i++) {
        CHECK(w.b[i].lo == o.b[i].lo && w.b[i].hi == o.b[i].hi && w.b[i].n == o.b[i].n);
        CHECK(w.b[i].lo == q.b[i].lo && w.b[i].n == q.b[i].n);
    }
    /* With the extremes set by the caller, it answers as a histogram that kept them. */
    weighted.min = plain.min;
    weighted.max = plain.max;
    for (int i = 0; i <= 1000; i++)
        CHECK(funcmond_hist_quantile(&weighted, i / 1000.0) == funcmond_hist_quantile(&plain, i / 1000.0));
    /* One step for a count no loop would reach. */
    CHECK_EQ(funcmond_hist_add_n(&weighted, 5000, 1ull << 40), 0);
    CHECK_EQ(weighted.count, total + (1ull << 40));
    uint64_t lo, hi;
    funcmond_hist_bucket_of(7, 5000, &lo, &hi);
    CHECK_EQ(funcmond_hist_count_le(&weighted, hi) - funcmond_hist_count_le(&weighted, lo - 1), 1ull << 40);
    free(w.b);
    free(o.b);
    free(q.b);
    funcmond_hist_free(&weighted);
    funcmond_hist_free(&single);
    funcmond_hist_free(&plain);
}

int
main(void)
{
    struct samples ln = {"log-normal", NULL, NULL, N_SAMPLES}, bi = {"bimodal", NULL, NULL, N_SAMPLES};
    struct funcmond_hist h;

    check_geometry();
    check_small_exact();
    check_edges();
    check_add_n();

    /* Median 2 ms, sigma 1.0. */
    ln.v = malloc(ln.n * sizeof(*ln.v));
    CHECK(ln.v != NULL);
    for (size_t i = 0; i < ln.n; i++)
        ln.v[i] = lognormal(2.0 * NS_MS, 1.0);
    samples_sort(&ln);
    /* 90% around 100 us, 10% around 50 ms, each spread by sigma 0.3. */
    bi.v = malloc(bi.n * sizeof(*bi.v));
    CHECK(bi.v != NULL);
    for (size_t i = 0; i < bi.n; i++)
        bi.v[i] = uniform() < 0.9 ? lognormal(100.0 * NS_US, 0.3) : lognormal(50.0 * NS_MS, 0.3);
    samples_sort(&bi);

    fill(&h, 7, ln.v, ln.n);
    check_reported_quantiles(&h, &ln);
    funcmond_hist_free(&h);
    fill(&h, 7, bi.v, bi.n);
    check_reported_quantiles(&h, &bi);
    funcmond_hist_free(&h);

    check_all(&ln, 7, 2 * NS_MS);
    check_all(&bi, 7, 1 * NS_MS);
    /* Every other sub_bits on a tenth of the samples (the order is random, so a prefix is
     * a fair sample). */
    for (unsigned s = 1; s <= 10; s++) {
        struct samples ln_part = {"log-normal/10", ln.v, NULL, ln.n / 10};
        struct samples bi_part = {"bimodal/10", bi.v, NULL, bi.n / 10};
        samples_sort(&ln_part);
        samples_sort(&bi_part);
        check_all(&ln_part, s, 2 * NS_MS);
        check_all(&bi_part, s, 1 * NS_MS);
        free(ln_part.sorted);
        free(bi_part.sorted);
    }

    check_add_values(&ln, 7);
    check_add_values(&bi, 5);
    bench_add(&ln);
    free(ln.v);
    free(ln.sorted);
    free(bi.v);
    free(bi.sorted);
    printf("test_hist: ok\n");
    return 0;
}
