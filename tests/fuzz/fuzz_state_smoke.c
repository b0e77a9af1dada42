/*
 * fuzz_state_smoke.c - runs the state-file fuzz target over 30,000 mutated state images
 * in every test run, so the loader is exercised (and sanitised) even where libFuzzer is
 * not built.
 *
 * Mutations start from real state images (written by funcmond's own writer, and one with
 * segments packed by fuzz_state.c) and aim where a corrupt or hostile file would: random
 * bytes, msgpack headers that claim huge lengths, 32- and 64-bit extremes, numbers changed
 * in place (which keeps most images loadable, so the checks after loading run too), cuts,
 * and regions copied elsewhere (repeated keys, functions and segments). The generator's seed
 * is fixed: a failure repeats. With `--write-seeds DIR` it writes the seeds into DIR
 * instead, as the corpus of the libFuzzer run (`make test-fuzz`).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fuzz_state.h"

#define ITERATIONS 30000
#define MAX_GROWTH 256 /* bytes a mutation may add */

/* The generator's state: a counter that splitmix64 turns into well-mixed numbers. */
static uint64_t counter = 0x2545f4914f6cdd1dull;

static uint64_t
next(void)
{
    uint64_t z = counter += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int
write_seeds(const char *dir)
{
    for (int i = 0; i < FUZZ_STATE_SEEDS; i++) {
        size_t size;
        uint8_t *seed = fuzz_state_seed(i, &size);
        char path[4096];
        snprintf(path, sizeof(path), "%s/seed-%d.state", dir, i);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(seed, 1, size, f) != size || fclose(f) != 0) {
            fprintf(stderr, "%s: %s\n", path, strerror(errno));
            return 1;
        }
        free(seed);
    }
    return 0;
}

/* One mutation of buf[0..*len) (room for *len + MAX_GROWTH bytes). */
static void
mutate(uint8_t *buf, size_t *len)
{
    /* msgpack headers whose length fields follow: str/bin/array/map 16 and 32, ext 32 */
    static const uint8_t headers[] = {0xda, 0xdb, 0xc5, 0xc6, 0xdc, 0xdd, 0xde, 0xdf, 0xc9, 0xcf, 0xd3};
    static const uint64_t extremes[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff, UINT64_MAX, 1ull << 32};
    size_t n = *len;

    switch (next() % 8) {
    case 6:
    case 7: { /* a number's value, the type kept: counts, lengths of arrays, ids, times */
        if (n == 0)
            break;
        for (size_t at = next() % n; at < n; at++) {
            size_t width = buf[at] >= 0xcc && buf[at] <= 0xcf ? (size_t)1 << (buf[at] & 3) : 0;
            if (width == 0 || width > n - at - 1)
                continue;
            uint64_t v = next() % 2 ? next() : extremes[next() % (sizeof(extremes) / sizeof(extremes[0]))];
            for (size_t k = 0; k < width; k++)
                buf[at + 1 + k] = (uint8_t)(v >> (8 * k));
            break;
        }
        break;
    }
    case 0: /* a random byte */
        if (n > 0)
            buf[next() % n] = (uint8_t)next();
        break;
    case 1: /* a header claiming a length, then extreme length bytes */
        if (n > 0) {
            size_t at = next() % n;
            buf[at] = headers[next() % sizeof(headers)];
            uint64_t v = extremes[next() % (sizeof(extremes) / sizeof(extremes[0]))];
            for (size_t k = 1; k <= 8 && at + k < n; k++)
                buf[at + k] = (uint8_t)(v >> (8 * (8 - k)));
        }
        break;
    case 2: /* an extreme value over 4 or 8 bytes */
        if (n >= 8) {
            size_t at = next() % (n - 7);
            uint64_t v = extremes[next() % (sizeof(extremes) / sizeof(extremes[0]))];
            memcpy(buf + at, &v, next() % 2 ? 8 : 4);
        }
        break;
    case 3: /* cut short */
        *len = next() % (n + 1);
        break;
    case 4: { /* a region copied over another place */
        if (n < 2)
            break;
        size_t from = next() % n, to = next() % n, k = 1 + next() % 64;
        if (k > n - from)
            k = n - from;
        if (k > n - to)
            k = n - to;
        memmove(buf + to, buf + from, k);
        break;
    }
    default: { /* a region inserted (a key, a function or a segment twice) */
        if (n < 2)
            break;
        size_t from = next() % n, to = next() % (n + 1), k = 1 + next() % MAX_GROWTH;
        if (k > n - from)
            k = n - from;
        uint8_t tmp[MAX_GROWTH];
        memcpy(tmp, buf + from, k);
        memmove(buf + to + k, buf + to, n - to);
        memcpy(buf + to, tmp, k);
        *len = n + k;
        break;
    }
    }
}

int
main(int argc, char **argv)
{
    uint8_t *seeds[FUZZ_STATE_SEEDS];
    size_t sizes[FUZZ_STATE_SEEDS], largest = 0;

    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        return write_seeds(argv[2]);
    for (int i = 0; i < FUZZ_STATE_SEEDS; i++) {
        seeds[i] = fuzz_state_seed(i, &sizes[i]);
        CHECK(seeds[i] != NULL);
        CHECK_GT(sizes[i], 0);
        CHECK_EQ(fuzz_state_check(seeds[i], sizes[i]), 1); /* every seed loads, and comes back the same */
        if (sizes[i] > largest)
            largest = sizes[i];
    }
    /* Room for the largest seed and a few insertions; each input is then copied into a
     * buffer of exactly its size, so ASan sees any read past its end. */
    size_t room = largest + 4 * MAX_GROWTH;
    uint8_t *work = malloc(room);
    int accepted = 0;
    CHECK(work != NULL);
    for (int iter = 0; iter < ITERATIONS; iter++) {
        int which = (int)(next() % FUZZ_STATE_SEEDS);
        size_t len = sizes[which];
        memcpy(work, seeds[which], len);
        int mutations = next() % 2 ? 1 : 2 + (int)(next() % 3);
        for (int m = 0; m < mutations; m++)
            mutate(work, &len);
        uint8_t *exact = malloc(len ? len : 1);
        CHECK(exact != NULL);
        memcpy(exact, work, len);
        accepted += fuzz_state_check(exact, len);
        free(exact);
    }
    free(work);
    for (int i = 0; i < FUZZ_STATE_SEEDS; i++)
        free(seeds[i]);
    /* Mutations that keep an image loadable reach the checks after loading: enough of them. */
    CHECK_GT(accepted, ITERATIONS / 20);
    printf("test_fuzz_state: %d mutated state images handled, %d accepted\n", ITERATIONS, accepted);
    return 0;
}
