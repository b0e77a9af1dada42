/*
 * fuzz_state.c - fuzz target for the state-file loader: whatever bytes SIDECAR.STATE_FILE
 * holds, funcmond must not crash, read outside them, or allocate without bound; it either
 * refuses them (and starts empty) or takes figures it can write back and read again.
 *
 * The loader's input is a file anyone with access to its directory may have written, read
 * whole into a buffer and parsed by funcmond_snapshot_parse; this target gives it exactly
 * the fuzzer's bytes (a buffer of their size, so ASan reports any over-read). An accepted
 * image is checked for what funcmond relies on afterwards: names terminated and within
 * their sizes, functions within MAX_FUNCTIONS and the overflow entries; then the image
 * funcmond would write from it is loaded into a second funcmond and must give the same
 * functions and counters (segments are written back only while their files exist: none
 * here). Built as a libFuzzer driver with FUNCMON_FUZZ=ON (clang), with snapshot.c itself
 * compiled in so that the fuzzer sees its branches; fuzz_state_smoke.c runs the same
 * check over generated mutations in every test run.
 */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_state.h"
#include "log.h"
#include "sidecar.h"
#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A violated property: reported with the place, then abort() (a crash to libFuzzer). */
#define FUZZ_ASSERT(cond)                                                                                                          \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: fuzz_state: %s does not hold\n", __FILE__, __LINE__, #cond);                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* A funcmond with nothing attached: the loader needs its configuration, aggregate,
 * counters and restore list. Segment files are looked for in a directory that does not
 * exist, so none of those the image lists is found. */
static struct funcmond *
fuzz_funcmond(void)
{
    struct funcmond *d = calloc(1, sizeof(*d));
    FUZZ_ASSERT(d != NULL);
    funcmond_config_defaults(&d->cfg);
    d->cfg.max_functions = FUZZ_STATE_MAX_FUNCTIONS;
    snprintf(d->cfg.state_file, sizeof(d->cfg.state_file), "fuzz.state");
    snprintf(d->cfg.shm_dir, sizeof(d->cfg.shm_dir), "/nonexistent/funcmon-fuzz");
    FUZZ_ASSERT(funcmond_agg_init(&d->agg, &d->cfg) == 0);
    return d;
}

/* Back to a fresh start, as funcmond is before it loads. */
static void
fuzz_reset(struct funcmond *d)
{
    funcmond_agg_free(&d->agg);
    FUZZ_ASSERT(funcmond_agg_init(&d->agg, &d->cfg) == 0);
    funcmond_snapshot_free(d);
    memset(&d->counters, 0, sizeof(d->counters));
}

static int
empty(const struct funcmond *d)
{
    return d->agg.n_fns == 0 && d->agg.overflow_folds == 0 && d->restore == NULL && d->counters.records == 0 &&
           d->counters.dropped == 0 && d->counters.bad_records == 0 && d->counters.lost == 0;
}

static int
terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* What funcmond relies on in an aggregate it loaded. */
static void
check_bounded(const struct funcmond *d)
{
    const struct funcmond_aggregate *agg = &d->agg;
    /* MAX_FUNCTIONS, a per-service overflow entry each for at most FUNCMOND_OVERFLOW_ENTRIES
     * services, and the global overflow entry. */
    FUZZ_ASSERT(agg->n_fns <= FUZZ_STATE_MAX_FUNCTIONS + FUNCMOND_OVERFLOW_ENTRIES + 1);
    FUZZ_ASSERT(agg->n_regular <= FUZZ_STATE_MAX_FUNCTIONS);
    for (uint32_t i = 0; i < agg->n_fns; i++) {
        const struct funcmond_function *f = agg->fns[i];
        FUZZ_ASSERT(f != NULL && f->id == i);
        FUZZ_ASSERT(terminated(f->service, sizeof(f->service)) && terminated(f->package, sizeof(f->package)));
        FUZZ_ASSERT(terminated(f->name, sizeof(f->name)) && f->name[0] != '\0');
        uint32_t found = UINT32_MAX;
        FUZZ_ASSERT(f->overflow || (funcmond_agg_find(agg, f->service, f->package, f->name, &found) == 0 && found == i));
    }
}

/* The same functions (by id, in the same order: the writer keeps it) and counters. */
static void
check_same(const struct funcmond *a, const struct funcmond *b)
{
    FUZZ_ASSERT(a->agg.n_fns == b->agg.n_fns);
    FUZZ_ASSERT(a->agg.overflow_folds == b->agg.overflow_folds);
    FUZZ_ASSERT(a->counters.records == b->counters.records && a->counters.dropped == b->counters.dropped);
    FUZZ_ASSERT(a->counters.bad_records == b->counters.bad_records && a->counters.lost == b->counters.lost);
    for (uint32_t i = 0; i < a->agg.n_fns; i++) {
        const struct funcmond_function *f = a->agg.fns[i], *g = b->agg.fns[i];
        FUZZ_ASSERT(strcmp(f->service, g->service) == 0 && strcmp(f->package, g->package) == 0 && strcmp(f->name, g->name) == 0);
        FUZZ_ASSERT(f->overflow == g->overflow);
        FUZZ_ASSERT(f->calls == g->calls && f->errors == g->errors && f->cancelled == g->cancelled);
        FUZZ_ASSERT(f->deadline_exceeded == g->deadline_exceeded && f->client_errors == g->client_errors);
        FUZZ_ASSERT(f->dropped == g->dropped);
        FUZZ_ASSERT(f->total_ns == g->total_ns && f->min_ns == g->min_ns && f->max_ns == g->max_ns);
        FUZZ_ASSERT(f->total_bytes == g->total_bytes && f->max_bytes == g->max_bytes && f->freed_bytes == g->freed_bytes);
        FUZZ_ASSERT(f->last_real_ns == g->last_real_ns);
        FUZZ_ASSERT(f->dur.count == g->dur.count && f->mem.count == g->mem.count);
        FUZZ_ASSERT(memcmp(f->dur_buckets, g->dur_buckets, sizeof(f->dur_buckets)) == 0);
        FUZZ_ASSERT(memcmp(f->mem_buckets, g->mem_buckets, sizeof(f->mem_buckets)) == 0);
    }
}

int
fuzz_state_check(const uint8_t *data, size_t size)
{
    static struct funcmond *d, *again;
    const char *why = NULL;
    char *image = NULL;
    size_t image_len = 0;

    if (d == NULL) {
        funcmond_log_min = FUNCMOND_LOG_ERROR; /* each refused input would log a line */
        d = fuzz_funcmond();
        again = fuzz_funcmond();
    }
    int ret = funcmond_snapshot_parse(d, data, size, &why);
    if (ret != 0) {
        FUZZ_ASSERT(ret == -EBADMSG || ret == -EOVERFLOW || ret == -E2BIG || ret == -ENOMEM);
        FUZZ_ASSERT(why != NULL && why[0] != '\0');
        FUZZ_ASSERT(empty(d));
        return 0;
    }
    check_bounded(d);
    /* What funcmond would write now is a state file it reads back to the same figures. */
    FUZZ_ASSERT(funcmond_snapshot_image(d, &image, &image_len) == 0);
    ret = funcmond_snapshot_parse(again, image, image_len, &why);
    if (ret != 0)
        fprintf(stderr, "fuzz_state: the written image does not load again: %d (%s)\n", ret, why);
    FUZZ_ASSERT(ret == 0);
    check_same(d, again);
    free(image);
    fuzz_reset(d);
    fuzz_reset(again);
    return 1;
}

/* ---- seeds ---- */

static void
pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* A state image with two segments, packed here: the format of snapshot.c, version 1. */
static uint8_t *
seed_with_segments(size_t *size)
{
    msgpack_sbuffer buf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    pack_str(&pk, "format");
    pack_str(&pk, "funcmond-state");
    pack_str(&pk, "version");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "saved_real_ns");
    msgpack_pack_uint64(&pk, 1764547200000000000ull);
    pack_str(&pk, "duration_bounds_ns");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint64(&pk, 1000000);
    msgpack_pack_uint64(&pk, 5000000);
    pack_str(&pk, "memory_bounds");
    msgpack_pack_array(&pk, 0);
    pack_str(&pk, "counters");
    msgpack_pack_map(&pk, 5);
    const char *counters[] = {"records", "dropped", "bad_records", "lost", "overflow_folds"};
    for (int i = 0; i < 5; i++) {
        pack_str(&pk, counters[i]);
        msgpack_pack_uint64(&pk, (uint64_t)(i + 1) * 100);
    }
    pack_str(&pk, "functions");
    msgpack_pack_array(&pk, 0);
    pack_str(&pk, "segments");
    msgpack_pack_array(&pk, 2);
    for (int s = 0; s < 2; s++) {
        char name[64];
        snprintf(name, sizeof(name), "funcmon.fuzz.%d", 100 + s);
        msgpack_pack_map(&pk, 6);
        pack_str(&pk, "name");
        pack_str(&pk, name);
        pack_str(&pk, "pid");
        msgpack_pack_uint64(&pk, 100 + (uint64_t)s);
        pack_str(&pk, "start_time");
        msgpack_pack_uint64(&pk, 123456);
        pack_str(&pk, "dropped");
        msgpack_pack_uint64(&pk, 7);
        pack_str(&pk, "tails");
        msgpack_pack_array(&pk, 4);
        for (int k = 0; k < 4; k++)
            msgpack_pack_uint64(&pk, (uint64_t)k * 1000);
        pack_str(&pk, "spill");
        msgpack_pack_array(&pk, 3);
        for (int k = 0; k < 2; k++) {
            msgpack_pack_array(&pk, 3 + (uint32_t)(k == 0)); /* older files have three fields */
            msgpack_pack_uint64(&pk, 2 + (uint64_t)k);
            msgpack_pack_uint64(&pk, 50);
            msgpack_pack_uint64(&pk, 5);
            if (k == 0)
                msgpack_pack_uint64(&pk, 1);
        }
        /* and newer ones seven: client errors, ticks, calls with a bucket, the buckets */
        unsigned char buckets[4 * FUNCMON_SPILL_BUCKETS] = {0};
        buckets[4 * 20] = 40;
        buckets[4 * 21 + 3] = 0xff; /* a counter past 2^31: they wrap */
        msgpack_pack_array(&pk, 7);
        msgpack_pack_uint64(&pk, 4);
        msgpack_pack_uint64(&pk, 60);
        msgpack_pack_uint64(&pk, 6);
        msgpack_pack_uint64(&pk, 2);
        msgpack_pack_uint64(&pk, 123456789);
        msgpack_pack_uint64(&pk, 40);
        msgpack_pack_bin(&pk, sizeof(buckets));
        msgpack_pack_bin_body(&pk, buckets, sizeof(buckets));
    }
    *size = buf.size;
    return (uint8_t *)msgpack_sbuffer_release(&buf);
}

/* An image written by funcmond from an aggregate with `n` functions of `services`
 * services (past MAX_FUNCTIONS: overflow entries), each with recorded calls. */
static uint8_t *
seed_written(uint32_t n, uint32_t services, size_t *size)
{
    struct funcmond *d = fuzz_funcmond();
    char *image = NULL;
    for (uint32_t i = 0; i < n; i++) {
        char service[32], name[32];
        snprintf(service, sizeof(service), "svc%u", i % services);
        snprintf(name, sizeof(name), "fn_%u", i);
        uint32_t id;
        FUZZ_ASSERT(funcmond_agg_function(&d->agg, service, i % 3 == 0 ? "" : "pkg", name, &id) == 0);
        for (uint64_t k = 0; k <= i % 5; k++)
            funcmond_agg_record(&d->agg, id, 1000 + k * 777777 * (i + 1), k == 1 ? FUNCMON_RECORD_ERROR : FUNCMON_RECORD_ALLOC,
                                4096 * k, 1024 * k, 1764547200000000000ull + k);
        funcmond_agg_spill(&d->agg, id, i, i / 2, i / 3);
        uint32_t buckets[FUNCMON_SPILL_BUCKETS] = {0};
        buckets[i % FUNCMON_SPILL_BUCKETS] = i;
        funcmond_agg_spill_durations(&d->agg, id, (uint64_t)i * 3000000, buckets);
    }
    d->counters.records = 1000 + n;
    d->counters.lost = n / 2;
    FUZZ_ASSERT(funcmond_snapshot_image(d, &image, size) == 0);
    funcmond_agg_free(&d->agg);
    funcmond_snapshot_free(d);
    free(d);
    return (uint8_t *)image;
}

uint8_t *
fuzz_state_seed(int which, size_t *size)
{
    funcmond_log_min = FUNCMOND_LOG_ERROR;
    switch (which) {
    case 0:
        return seed_written(0, 1, size);
    case 1:
        return seed_written(5, 2, size);
    case 2:
        return seed_written(FUZZ_STATE_MAX_FUNCTIONS + 8, 3, size);
    default:
        return seed_with_segments(size);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_state_check(data, size);
    return 0;
}
