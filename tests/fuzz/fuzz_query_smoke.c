/*
 * fuzz_query_smoke.c - runs the checks of the HTTP query fuzz target over 30,000 generated
 * queries in every test run, so the parser and the decoder are exercised (and sanitised)
 * even where libFuzzer is not built.
 *
 * Queries are pieced together from the fragments a hostile client would aim with: the
 * known keys, their bounds and one past them, separators, '+', escapes that are whole,
 * cut short, not hex or NUL, and raw bytes, then cut or flipped at random. The seed of the
 * generator is fixed: a failure repeats.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fuzz_http.h"

#define QUERIES 30000
#define QUERY_MAX 512

/* splitmix64: a fixed, well-mixed sequence of 64-bit values. */
static uint64_t
next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int
main(void)
{
    static const char *const pieces[] = {
        "service=",
        "package=",
        "sort=",
        "limit=",
        "min_ms=",
        "seconds=",
        "pid=",
        "name=",
        "avg",
        "total",
        "calls",
        "errors",
        "0",
        "1",
        "-1",
        "3600",
        "3601",
        "1000000",
        "1000001",
        "86400000",
        "2147483647",
        "2147483648",
        "99999999999999999999",
        "&",
        "=",
        "+",
        "%",
        "%2",
        "%2F",
        "%2f",
        "%00",
        "%zz",
        "%%41",
        "%g0",
        "%FF",
        "%26",
        "%3D",
        "%20",
        "a",
        "GET_/v1/users",
        "..",
        "/",
        " ",
    };
    const size_t n_pieces = sizeof(pieces) / sizeof(pieces[0]);
    uint64_t state = 0x2545f4914f6cdd1dull;
    uint8_t buf[QUERY_MAX];
    for (int iter = 0; iter < QUERIES; iter++) {
        size_t len = 0;
        for (int p = (int)(next_random(&state) % 12); p >= 0; p--) {
            const char *piece = pieces[next_random(&state) % n_pieces];
            size_t pl = strlen(piece);
            if (len + pl > sizeof(buf))
                break;
            memcpy(buf + len, piece, pl);
            len += pl;
        }
        for (int m = (int)(next_random(&state) % 3); m > 0 && len > 0; m--) {
            uint64_t r = next_random(&state);
            switch (r % 3) {
            case 0: /* any byte anywhere, NUL and bytes above 0x7f included */
                buf[(r >> 8) % len] = (uint8_t)(r >> 32);
                break;
            case 1: /* cut short, possibly inside an escape */
                len = (size_t)(r >> 8) % (len + 1);
                break;
            default: /* a stray separator */
                buf[(r >> 8) % len] = "&=%+"[(r >> 32) % 4];
                break;
            }
        }
        fuzz_check_query(buf, len);
    }
    printf("test_fuzz_http_query: %d generated queries handled\n", QUERIES);
    return 0;
}
