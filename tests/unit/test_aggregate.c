/*
 * test_aggregate.c - the aggregate and its published view against brute force: exact
 * Prometheus bucket counts for the configured bounds, quantiles within 1% of the exact
 * ones on log-normal and bimodal samples, exact counts, sums and extremes, window rates,
 * the overflow entry past MAX_FUNCTIONS, and that entries stay bounded by MAX_FUNCTIONS
 * however many services create functions, with room left for a quiet service that comes
 * late; spilled calls folded in by their total and coarse buckets (quantile bound, exact
 * totals, extremes that bracket them); and that records added through the drain's
 * deferred path give the same figures as records added one by one.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "check.h"
#include "publish.h"
#include "unit_funcmond.h"

#define N 200000

/* The id of a function, created if new; the test fails if it cannot be. */
static uint32_t
function_id(struct funcmond_aggregate *agg, const char *service, const char *package, const char *name)
{
    uint32_t id = UINT32_MAX;
    CHECK_EQ(funcmond_agg_function(agg, service, package, name, &id), 0);
    return id;
}

static uint64_t rng = 88172645463325252ull;

static double
uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

static double
normal(void)
{
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Relative error of `got` as the q-quantile of sorted[0..n): against the exact order
 * statistic of rank ceil(q * n). */
static double
quantile_error(uint64_t got, const uint64_t *sorted, size_t n, double q)
{
    double exact = (double)sorted[(size_t)ceil(q * (double)n) - 1];
    return fabs((double)got - exact) / exact;
}

/* Prometheus buckets: value <= bound, counted exactly. */
static void
check_prom_buckets(const struct funcmond_view *v, const struct funcmond_fn_view *f, const uint64_t *values, size_t n)
{
    for (uint32_t b = 0; b < v->n_dur_bounds; b++) {
        uint64_t bound = (uint64_t)llround(v->dur_bounds_s[b] * 1e9), brute = 0;
        for (size_t i = 0; i < n; i++)
            brute += values[i] <= bound;
        CHECK_EQ(f->dur_cum[b], brute);
    }
}

static void
check_function(struct funcmond *d, uint32_t id, uint64_t *samples, size_t n, uint64_t errors)
{
    const struct funcmond_view *v;
    struct funcmond_reader *r = funcmond_view_reader(d->views);
    funcmond_view_maybe_publish(d, 0, 1);
    v = funcmond_view_begin(r);
    const struct funcmond_fn_view *f = &v->fns[id];
    uint64_t sum = 0;
    qsort(samples, n, sizeof(*samples), cmp_u64);
    for (size_t i = 0; i < n; i++)
        sum += samples[i];
    CHECK_EQ(f->calls, n);
    CHECK_EQ(f->records, n);
    CHECK_EQ(f->errors, errors);
    CHECK_EQ(f->total_ns, sum);
    CHECK_EQ(f->min_ns, samples[0]);
    CHECK_EQ(f->max_ns, samples[n - 1]);
    check_prom_buckets(v, f, samples, n);
    /* Quantiles within 1% of the exact order statistic. */
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    const uint64_t got[] = {f->p50_ns, f->p90_ns, f->p99_ns, f->p999_ns};
    for (int k = 0; k < 4; k++) {
        double err = quantile_error(got[k], samples, n, qs[k]);
        if (err > 0.01)
            fprintf(stderr, "q%.3f: %llu, %.3f%% off\n", qs[k], (unsigned long long)got[k], err * 100);
        CHECK(err <= 0.01);
    }
    /* Every call is inside the current window slot: the 1-minute figures see them all. */
    CHECK(f->error_rate_1m > 0 && fabs(f->error_rate_1m - (double)errors / (double)n) < 1e-9);
    CHECK_GT(f->rate_1m, 0);
    funcmond_view_end(r);
    funcmond_view_reader_free(r);
}

/* Many services creating many functions against MAX_FUNCTIONS = 1000: the entries stay
 * within the cap plus the overflow entries' own bound, one noisy service does not take
 * the room of those that come after it, and every call lands in exactly one entry. */
static void
check_bounded(void)
{
    struct funcmond_config cfg;
    struct funcmond_aggregate agg;
    char err[256], service[32], name[32];
    char *const env[] = {"SIDECAR_MAX_FUNCTIONS=1000", NULL};
    const uint32_t cap = 1000;
    uint64_t calls = 0;

    CHECK_EQ(funcmond_config_load(&cfg, NULL, env, err, sizeof(err)), 0);
    CHECK_EQ(funcmond_agg_init(&agg, &cfg), 0);
    /* A noisy service first: it keeps creating new functions. */
    uint32_t noisy = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "fn%d", i);
        uint32_t id;
        CHECK_EQ(funcmond_agg_function(&agg, "noisy", "pkg", name, &id), 0);
        funcmond_agg_spill(&agg, id, 1, 0, 0);
        calls++;
        noisy += !agg.fns[id]->overflow;
    }
    /* A quiet service arriving late still gets each of its functions. */
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "quiet%d", i);
        uint32_t id;
        CHECK_EQ(funcmond_agg_function(&agg, "quiet", "pkg", name, &id), 0);
        CHECK_STREQ(agg.fns[id]->name, name);
        CHECK_STREQ(agg.fns[id]->service, "quiet");
        funcmond_agg_spill(&agg, id, 1, 0, 0);
        calls++;
    }
    /* Then a flood of services, each with many functions. */
    for (int s = 0; s < 2000; s++) {
        snprintf(service, sizeof(service), "svc%d", s);
        for (int i = 0; i < 20; i++) {
            snprintf(name, sizeof(name), "fn%d", i);
            uint32_t id;
            CHECK_EQ(funcmond_agg_function(&agg, service, "pkg", name, &id), 0);
            funcmond_agg_spill(&agg, id, 1, 0, 0);
            calls++;
        }
    }
    uint64_t total = 0;
    uint32_t overflow = 0;
    for (uint32_t i = 0; i < agg.n_fns; i++) {
        total += agg.fns[i]->calls;
        overflow += agg.fns[i]->overflow != 0;
    }
    printf("bounded: %u entries (%u overflow) for cap %u; the noisy service holds %u\n", agg.n_fns, overflow, cap, noisy);
    CHECK_EQ(total, calls);
    CHECK_LE(agg.n_fns, cap + FUNCMOND_OVERFLOW_ENTRIES + 1);
    CHECK_LE(noisy, cap - cap / 4);
    funcmond_agg_free(&agg);
}

/* A function whose calls are half recorded, half spilled (their durations known only as a
 * total and coarse buckets, folded in four parts): counts, total and average exact, the
 * dropped count, quantiles within 1% of those of the calls as entered (a spilled call at
 * its bucket's value) and so within 20.5% of the true ones, extremes that bracket every
 * call, and Prometheus buckets exact for what was entered. */
static void
check_spill_fold(void)
{
    enum { RECORDED = 20000, SPILLED = 20000, PARTS = 4 };
    static uint64_t truth[RECORDED + SPILLED], entered[RECORDED + SPILLED];
    char *const env[] = {NULL};
    struct funcmond *d = unit_funcmond_new(env);
    uint32_t id = function_id(&d->agg, "svc", "pkg", "mixed");
    uint64_t sum = 0, errors = 0;
    for (size_t i = 0; i < RECORDED; i++) {
        truth[i] = entered[i] = (uint64_t)llround(exp(log(2e6) + normal()));
        errors += i % 7 == 0;
        funcmond_agg_record(&d->agg, id, truth[i], i % 7 == 0 ? FUNCMON_RECORD_ERROR : 0, 0, 0, 1);
        sum += truth[i];
    }
    for (int part = 0; part < PARTS; part++) {
        uint32_t per_bucket[FUNCMON_SPILL_BUCKETS] = {0};
        uint64_t part_ns = 0, part_errors = 0;
        for (size_t i = RECORDED + (size_t)part * SPILLED / PARTS; i < RECORDED + (size_t)(part + 1) * SPILLED / PARTS; i++) {
            truth[i] = (uint64_t)llround(exp(log(5e6) + 1.5 * normal()));
            uint32_t b = funcmon_spill_bucket(truth[i]);
            entered[i] = funcmon_spill_bucket_value(b);
            per_bucket[b]++;
            part_ns += truth[i];
            part_errors += i % 5 == 0;
        }
        funcmond_agg_spill(&d->agg, id, SPILLED / PARTS, part_errors, 0);
        funcmond_agg_spill_durations(&d->agg, id, part_ns, per_bucket);
        sum += part_ns;
        errors += part_errors;
    }
    /* A fold with nothing in it changes nothing. */
    uint32_t none[FUNCMON_SPILL_BUCKETS] = {0};
    funcmond_agg_spill_durations(&d->agg, id, 0, none);

    struct funcmond_reader *r = funcmond_view_reader(d->views);
    funcmond_view_maybe_publish(d, 0, 1);
    const struct funcmond_view *v = funcmond_view_begin(r);
    const struct funcmond_fn_view *f = &v->fns[id];
    const size_t n = RECORDED + SPILLED;
    CHECK_EQ(f->calls, n);
    CHECK_EQ(f->dropped, SPILLED);
    CHECK_EQ(f->records, n);
    CHECK_EQ(f->errors, errors);
    CHECK_EQ(f->total_ns, sum);
    CHECK_EQ(f->avg_ns, sum / n);
    qsort(truth, n, sizeof(*truth), cmp_u64);
    CHECK_LE(f->min_ns, truth[0]);
    CHECK_GE(f->max_ns, truth[n - 1]);
    check_prom_buckets(v, f, entered, n);
    qsort(entered, n, sizeof(*entered), cmp_u64);
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    const uint64_t got[] = {f->p50_ns, f->p90_ns, f->p99_ns, f->p999_ns};
    for (int k = 0; k < 4; k++) {
        double err_entered = quantile_error(got[k], entered, n, qs[k]), err_true = quantile_error(got[k], truth, n, qs[k]);
        printf("spill fold q%.3f: %llu, %.2f%% off the true one\n", qs[k], (unsigned long long)got[k], err_true * 100);
        CHECK(err_entered <= 0.01);
        CHECK(err_true <= 0.205);
    }
    CHECK(fabs(f->error_rate_1m - (double)errors / (double)n) < 1e-9);
    funcmond_view_end(r);

    /* One spilled call: its extremes are its bucket's lower bound and, below the bucket's
     * upper bound, the fold's total: here its exact duration. */
    uint32_t one = function_id(&d->agg, "svc", "pkg", "one"), per_bucket[FUNCMON_SPILL_BUCKETS] = {0};
    uint64_t lo, hi;
    funcmon_spill_bucket_bounds(funcmon_spill_bucket(1000), &lo, &hi);
    per_bucket[funcmon_spill_bucket(1000)] = 1;
    funcmond_agg_spill(&d->agg, one, 1, 0, 0);
    funcmond_agg_spill_durations(&d->agg, one, 1000, per_bucket);
    CHECK(lo <= 1000 && 1000 < hi);
    CHECK_EQ(d->agg.fns[one]->min_ns, lo);
    CHECK_EQ(d->agg.fns[one]->max_ns, 1000);
    /* The total lags behind the buckets (read a moment apart): the maximum is still at
     * least the bucket's lower bound. Past 275 s, at most the total. */
    memset(per_bucket, 0, sizeof(per_bucket));
    per_bucket[FUNCMON_SPILL_BUCKETS - 1] = 2;
    funcmond_agg_spill(&d->agg, one, 2, 0, 0);
    funcmond_agg_spill_durations(&d->agg, one, 0, per_bucket);
    CHECK_EQ(d->agg.fns[one]->max_ns, 1ull << 38);
    funcmond_agg_spill_durations(&d->agg, one, 1000ull << 30, none);
    CHECK_EQ(d->agg.fns[one]->max_ns, 1ull << 38); /* the total alone says nothing of one call */
    per_bucket[FUNCMON_SPILL_BUCKETS - 1] = 1;
    funcmond_agg_spill(&d->agg, one, 1, 0, 0);
    funcmond_agg_spill_durations(&d->agg, one, 600ull * 1000000000, per_bucket);
    CHECK_EQ(d->agg.fns[one]->max_ns, 600ull * 1000000000);
    CHECK_EQ(d->agg.fns[one]->dropped, 4);
    CHECK_EQ(d->agg.fns[one]->dur.count, 4);
    /* A client's lie cannot wrap the total. */
    funcmond_agg_spill_durations(&d->agg, one, UINT64_MAX - 5, none);
    CHECK_EQ(d->agg.fns[one]->total_ns, UINT64_MAX);

    funcmond_view_reader_free(r);
    unit_funcmond_free(d);
}

static void
add_bucket(void *arg, uint64_t lo, uint64_t hi, uint64_t n)
{
    uint64_t *h = arg; /* a running hash of every (lo, hi, n) */
    *h = (*h ^ lo) * 1099511628211ull;
    *h = (*h ^ hi) * 1099511628211ull;
    *h = (*h ^ n) * 1099511628211ull;
}

static uint64_t
hist_digest(const struct funcmond_hist *h)
{
    uint64_t digest = 14695981039346656037ull ^ h->count;
    funcmond_hist_foreach(h, add_bucket, &digest);
    return digest;
}

/* Every figure of f and g is the same. */
static void
check_same_function(const struct funcmond_function *f, const struct funcmond_function *g)
{
    static const size_t counters[] = {
        offsetof(struct funcmond_function, calls),         offsetof(struct funcmond_function, errors),
        offsetof(struct funcmond_function, cancelled),     offsetof(struct funcmond_function, deadline_exceeded),
        offsetof(struct funcmond_function, client_errors), offsetof(struct funcmond_function, total_ns),
        offsetof(struct funcmond_function, min_ns),        offsetof(struct funcmond_function, max_ns),
        offsetof(struct funcmond_function, total_bytes),   offsetof(struct funcmond_function, max_bytes),
        offsetof(struct funcmond_function, freed_bytes),   offsetof(struct funcmond_function, last_real_ns),
        offsetof(struct funcmond_function, changed)};
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        uint64_t a, b;
        memcpy(&a, (const char *)f + counters[i], sizeof(a));
        memcpy(&b, (const char *)g + counters[i], sizeof(b));
        if (a != b)
            fprintf(stderr, "figure at offset %zu differs\n", counters[i]);
        CHECK_EQ(a, b);
    }
    CHECK_EQ(hist_digest(&f->dur), hist_digest(&g->dur));
    CHECK_EQ(hist_digest(&f->mem), hist_digest(&g->mem));
    CHECK_EQ(f->mem.sum, g->mem.sum);
    for (int i = 0; i <= FUNCMOND_MAX_BUCKETS; i++) {
        CHECK_EQ(f->dur_buckets[i], g->dur_buckets[i]);
        CHECK_EQ(f->mem_buckets[i], g->mem_buckets[i]);
    }
    for (int i = 0; i < FUNCMOND_WINDOW_SLOTS; i++) {
        CHECK_EQ(f->window[i].id, g->window[i].id);
        CHECK_EQ(f->window[i].calls, g->window[i].calls);
        CHECK_EQ(f->window[i].errors, g->window[i].errors);
        CHECK_EQ(hist_digest(&f->window[i].dur), hist_digest(&g->window[i].dur));
    }
}

/* The same records, with every kind of flag, durations past 2^32 ns and window slots that
 * move, into one aggregate one by one and into another through the deferred path (flushed
 * at uneven points, and by the tick): the figures are the same. */
static void
check_deferred(void)
{
    struct funcmond_config cfg;
    struct funcmond_aggregate one, deferred;
    char err[256], name[32];
    char *const env[] = {NULL};
    const uint32_t fns = 300;
    const uint32_t flag_mix[] = {0,
                                 0,
                                 0,
                                 FUNCMON_RECORD_ERROR,
                                 0,
                                 FUNCMON_RECORD_CLIENT_ERROR,
                                 FUNCMON_RECORD_ALLOC,
                                 FUNCMON_RECORD_ERROR | FUNCMON_RECORD_CANCELLED,
                                 FUNCMON_RECORD_ERROR | FUNCMON_RECORD_DEADLINE,
                                 FUNCMON_RECORD_ALLOC | FUNCMON_RECORD_ERROR};

    CHECK_EQ(funcmond_config_load(&cfg, NULL, env, err, sizeof(err)), 0);
    CHECK_EQ(funcmond_agg_init(&one, &cfg), 0);
    CHECK_EQ(funcmond_agg_init(&deferred, &cfg), 0);
    for (uint32_t i = 0; i < fns; i++) {
        uint32_t a, b;
        snprintf(name, sizeof(name), "fn%u", i);
        CHECK_EQ(funcmond_agg_function(&one, "svc", "pkg", name, &a), 0);
        CHECK_EQ(funcmond_agg_function(&deferred, "svc", "pkg", name, &b), 0);
        CHECK_EQ(a, b);
    }
    uint64_t now = 1000000000000ull;
    for (int round = 0; round < 40; round++) {
        funcmond_agg_tick(&one, now);
        funcmond_agg_tick(&deferred, now);
        uint32_t records = 1 + (uint32_t)(uniform() * 5000);
        for (uint32_t k = 0; k < records; k++) {
            /* A few busy functions and a long tail. */
            uint32_t id = uniform() < 0.5 ? (uint32_t)(uniform() * 4) : (uint32_t)(uniform() * fns);
            uint64_t dur = uniform() < 0.01 ? (uint64_t)(uniform() * 1e13) : (uint64_t)llround(exp(log(2e5) + 2 * normal()));
            uint32_t flags = uniform() < 0.7 ? (uniform() < 0.1 ? FUNCMON_RECORD_ERROR : 0)
                                             : flag_mix[(size_t)(uniform() * (sizeof(flag_mix) / sizeof(flag_mix[0])))];
            uint64_t alloc = (uint64_t)(uniform() * 1e6), freed = (uint64_t)(uniform() * 1e5);
            uint64_t end_real = 1 + (uint64_t)(uniform() * 1e18);
            funcmond_agg_record(&one, id, dur, flags, alloc, freed, end_real);
            funcmond_agg_record_deferred(&deferred, id, dur, flags, alloc, freed, end_real);
        }
        if (round % 3 != 0)
            funcmond_agg_flush(&deferred); /* otherwise the next tick's slot change flushes */
        now += (uint64_t)(uniform() * 2.5 * (double)FUNCMOND_WINDOW_SLOT_NS);
    }
    funcmond_agg_flush(&deferred);
    for (uint32_t i = 0; i < fns; i++)
        check_same_function(one.fns[i], deferred.fns[i]);
    CHECK_EQ(one.dirty, deferred.dirty);
    funcmond_agg_free(&one);
    funcmond_agg_free(&deferred);
}

int
main(void)
{
    static uint64_t a[N], b[N];
    char *const env[] = {"SIDECAR_MAX_FUNCTIONS=2", NULL};
    struct funcmond *d = unit_funcmond_new(env);

    uint32_t ln = function_id(&d->agg, "svc", "pkg", "lognormal");
    uint32_t bi = function_id(&d->agg, "svc", "pkg", "bimodal");
    CHECK_NE(ln, bi);
    CHECK_EQ(function_id(&d->agg, "svc", "pkg", "lognormal"), ln);
    uint64_t ln_err = 0, bi_err = 0;
    for (size_t i = 0; i < N; i++) {
        a[i] = (uint64_t)llround(exp(log(2e6) + normal())); /* median 2 ms */
        b[i] = uniform() < 0.9 ? (uint64_t)llround(100000 * exp(0.2 * normal())) : (uint64_t)llround(50e6 * exp(0.2 * normal()));
        int ea = i % 10 == 0, eb = i % 3 == 0;
        ln_err += (uint64_t)ea;
        bi_err += (uint64_t)eb;
        funcmond_agg_record(&d->agg, ln, a[i], ea ? FUNCMON_RECORD_ERROR : 0, 0, 0, 1);
        funcmond_agg_record(&d->agg, bi, b[i], eb ? FUNCMON_RECORD_ERROR : 0, 0, 0, 1);
    }
    check_function(d, ln, a, N, ln_err);
    check_function(d, bi, b, N, bi_err);

    /* Spilled calls count in calls, errors and 4xx answers, not in durations. */
    funcmond_agg_spill(&d->agg, ln, 5, 2, 1);
    funcmond_view_maybe_publish(d, 0, 1);
    struct funcmond_reader *r = funcmond_view_reader(d->views);
    const struct funcmond_view *v = funcmond_view_begin(r);
    CHECK_EQ(v->fns[ln].calls, N + 5);
    CHECK_EQ(v->fns[ln].errors, ln_err + 2);
    CHECK_EQ(v->fns[ln].client_errors, 1);
    CHECK_EQ(v->fns[ln].records, N);
    funcmond_view_end(r);

    /* Past MAX_FUNCTIONS (2): new names of a service fold into its overflow entry. */
    uint32_t o1 = function_id(&d->agg, "svc", "pkg", "third");
    uint32_t o2 = function_id(&d->agg, "svc", "pkg", "fourth");
    uint32_t other = function_id(&d->agg, "other", "pkg", "x");
    CHECK_EQ(o1, o2);
    CHECK_NE(other, o1);
    CHECK_STREQ(d->agg.fns[o1]->name, "<overflow>");
    CHECK_STREQ(d->agg.fns[other]->service, "other");
    CHECK_EQ(d->agg.overflow_folds, 3);

    /* Memory per call: totals, max and buckets for calls measured with tracking on. */
    funcmond_agg_record(&d->agg, ln, 10, FUNCMON_RECORD_ALLOC, 2000, 500, 1);
    funcmond_agg_record(&d->agg, ln, 10, FUNCMON_RECORD_ALLOC, 2000000, 0, 1);
    funcmond_agg_record(&d->agg, ln, 10, 0, 999999, 0, 1); /* not measured: ignored */
    /* An HTTP 4xx answer is counted on its own, not as an error. */
    uint64_t errors_before = d->agg.fns[ln]->errors;
    funcmond_agg_record(&d->agg, ln, 10, FUNCMON_RECORD_CLIENT_ERROR, 0, 0, 1);
    funcmond_agg_record(&d->agg, ln, 10, FUNCMON_RECORD_CLIENT_ERROR, 0, 0, 1);
    funcmond_view_maybe_publish(d, 0, 1);
    v = funcmond_view_begin(r);
    CHECK_EQ(v->fns[ln].client_errors, 1 + 2);
    CHECK_EQ(v->fns[ln].errors, errors_before);
    CHECK_EQ(v->fns[ln].total_bytes, 2002000);
    CHECK_EQ(v->fns[ln].max_bytes, 2000000);
    CHECK_EQ(v->fns[ln].freed_bytes, 500);
    CHECK_EQ(v->fns[ln].mem_records, 2);
    CHECK_EQ(v->fns[ln].mem_cum[0], 0);                   /* <= 1 KiB */
    CHECK_EQ(v->fns[ln].mem_cum[1], 1);                   /* <= 10 KiB */
    CHECK_EQ(v->fns[ln].mem_cum[v->n_mem_bounds - 1], 2); /* <= 100 MiB */
    funcmond_view_end(r);
    funcmond_view_reader_free(r);

    unit_funcmond_free(d);
    check_bounded();
    check_spill_fold();
    check_deferred();
    printf("test_aggregate: ok\n");
    return 0;
}
