/*
 * fuzz_smoke.c - runs the segment checks of the fuzz target over 30,000 mutated segments
 * in every test run, so they are exercised (and sanitised) even where libFuzzer is not
 * built.
 *
 * Mutations start from the valid seed segment and flip bytes, write extreme values into
 * header fields, positions, chunk links, the free list and records, and truncate the
 * mapping: the places a
 * hostile client would aim at. The seed of the generator is fixed: a failure repeats.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "funcmon/layout.h"
#include "funcmon/validate.h"
#include "fuzz_segment.h"

#define SLOTS_AT (FUNCMON_HEADER_SIZE + FUZZ_SITES * sizeof(struct funcmon_site_entry))
#define CHUNKS_AT (SLOTS_AT + FUZZ_THREADS * sizeof(struct funcmon_thread_slot))
#define RECORDS_AT (CHUNKS_AT + FUZZ_CHUNKS * sizeof(struct funcmon_chunk))

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int
main(void)
{
    unsigned char *buf = malloc(fuzz_seed_size());
    /* Field offsets a hostile writer would target: header identity and geometry, site
     * count, calibration, the free list, a slot's head, tail, state and chunk references,
     * chunk headers (owner, link, first position, free link), the first record. */
    const size_t hot[] = {0,
                          8,
                          12,
                          16,
                          20,
                          24,
                          28,
                          32,
                          36,
                          40,
                          48,
                          56,
                          64,
                          72,
                          96,
                          160,
                          168,
                          256,
                          264,
                          272,
                          324,
                          13 * FUNCMON_CACHE_LINE,
                          FUNCMON_HEADER_SIZE,
                          SLOTS_AT,
                          SLOTS_AT + 8,
                          SLOTS_AT + 64,
                          SLOTS_AT + 128,
                          SLOTS_AT + 176,
                          SLOTS_AT + sizeof(struct funcmon_thread_slot) + 72,
                          SLOTS_AT + sizeof(struct funcmon_thread_slot) + 176,
                          CHUNKS_AT,
                          CHUNKS_AT + 8,
                          CHUNKS_AT + 16,
                          CHUNKS_AT + 2 * sizeof(struct funcmon_chunk),
                          CHUNKS_AT + 2 * sizeof(struct funcmon_chunk) + 8,
                          RECORDS_AT,
                          RECORDS_AT + 8};
    const uint64_t extremes[] = {0, 1, 63, 64, 0x7fffffff, 0xffffffff, UINT64_MAX, 1ull << 40, 4095, 4096};
    struct funcmon_geometry geo;

    CHECK(buf != NULL);
    CHECK_EQ(funcmon_validate_segment(buf, fuzz_seed_build(buf), &geo), FUNCMON_VALID); /* the seed is valid */
    for (int iter = 0; iter < 30000; iter++) {
        size_t len = fuzz_seed_build(buf);
        int mutations = 1 + (int)(next() % 4);
        for (int m = 0; m < mutations; m++) {
            switch (next() % 4) {
            case 0: /* a random byte anywhere */
                if (len > 0)
                    buf[next() % len] = (unsigned char)next();
                break;
            case 1: { /* an extreme value into a field */
                size_t off = hot[next() % (sizeof(hot) / sizeof(hot[0]))] + (next() % 2) * 4;
                uint64_t v = extremes[next() % (sizeof(extremes) / sizeof(extremes[0]))];
                if (off + 8 <= len)
                    memcpy(buf + off, &v, 8);
                break;
            }
            case 2: { /* a record with random contents */
                size_t off = RECORDS_AT + (next() % (FUZZ_CHUNKS * FUZZ_CHUNK)) * sizeof(struct funcmon_record);
                for (size_t k = 0; k < sizeof(struct funcmon_record) && off + k + 8 <= len; k += 8) {
                    uint64_t v = next();
                    memcpy(buf + off + k, &v, 8);
                }
                break;
            }
            default: /* a truncated mapping */
                len = next() % (len + 1);
                break;
            }
        }
        fuzz_check_segment(buf, len);
    }
    free(buf);
    printf("test_fuzz_validate: 30000 mutated segments handled\n");
    return 0;
}
