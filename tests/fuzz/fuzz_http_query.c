/*
 * fuzz_http_query.c - fuzz target for the query parser and the percent-decoder of
 * funcmond's HTTP server: whatever bytes a request carries after its path, they must not
 * crash them, make them read or write outside their buffers, or break their contracts.
 *
 * Each input is checked as a query and as an escaped name, against what http_query.h
 * promises: a decoded length never above the input's and exactly what a second, plain
 * decoder finds; -EINVAL exactly when an escape is malformed; parsed strings inside the
 * caller's storage and numbers in their ranges; and any byte string, escaped properly,
 * decoding (and parsing, as a query value) back to itself. Inputs and outputs live in
 * buffers of exactly their size, so ASan reports any overrun. Built as a libFuzzer driver
 * with FUNCMON_FUZZ=ON (clang); fuzz_query_smoke.c runs the same checks in every test run.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http.h"
#include "http_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                                                          \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, #cond);                                               \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* malloc that a fuzz run cannot survive without. */
static void *
must_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    FUZZ_ASSERT(p != NULL);
    return p;
}

/* The byte "%XY" stands for, the plain way. */
static unsigned char
hex_byte(const char *xy)
{
    char two[3] = {xy[0], xy[1], '\0'};
    return (unsigned char)strtoul(two, NULL, 16);
}

/* The decoder against a second reading of the same rules. */
static void
check_unescape(const char *in, size_t n, int plus_is_space)
{
    char *out = must_alloc(n);
    long got = funcmond_http_unescape(in, n, out, plus_is_space);
    size_t o = 0;
    for (size_t i = 0; i < n; i++, o++) {
        if (in[i] != '%') {
            if (got >= 0)
                FUZZ_ASSERT(out[o] == (plus_is_space && in[i] == '+' ? ' ' : in[i]));
            continue;
        }
        if (n - i < 3 || !isxdigit((unsigned char)in[i + 1]) || !isxdigit((unsigned char)in[i + 2])) {
            FUZZ_ASSERT(got == -EINVAL);
            free(out);
            return;
        }
        if (got >= 0)
            FUZZ_ASSERT((unsigned char)out[o] == hex_byte(in + i + 1));
        i += 2;
    }
    FUZZ_ASSERT(got >= 0 && (size_t)got == o && o <= n);
    free(out);
}

/* A string the parser handed out: inside storage and NUL-terminated there. */
static void
check_inside(const char *s, const char *storage, size_t size)
{
    if (s == NULL)
        return;
    FUZZ_ASSERT(s >= storage && s < storage + size);
    FUZZ_ASSERT(memchr(s, '\0', (size_t)(storage + size - s)) != NULL);
}

static void
check_parse(const char *in, size_t n)
{
    size_t size = FUNCMOND_HTTP_QUERY_STORAGE(n);
    char *storage = must_alloc(size);
    struct funcmond_http_query q;
    int ret = funcmond_http_parse_query(in, n, storage, &q);
    FUZZ_ASSERT(ret == 0 || ret == -EINVAL);
    FUZZ_ASSERT((ret == 0) == (q.bad == NULL));
    check_inside(q.service, storage, size);
    check_inside(q.package, storage, size);
    check_inside(q.sort, storage, size);
    if (ret == 0) {
        FUZZ_ASSERT(q.sort == NULL || strcmp(q.sort, "avg") == 0 || strcmp(q.sort, "total") == 0 || strcmp(q.sort, "calls") == 0 ||
                    strcmp(q.sort, "errors") == 0);
        FUZZ_ASSERT(q.limit >= -1 && q.limit <= 1000000);
        FUZZ_ASSERT(q.min_ms >= -1 && q.min_ms <= 86400000);
        FUZZ_ASSERT(q.seconds == -1 || (q.seconds >= 1 && q.seconds <= 3600));
        FUZZ_ASSERT(q.pid == -1 || (q.pid >= 1 && q.pid <= 0x7fffffff));
    }
    free(storage);
}

/* in[0..n) escaped: letters and digits as they are, a space as '+' when `plus`, every
 * other byte as %XY (upper- or lower-case hex, alternately). Returns the length. */
static size_t
escape(const char *in, size_t n, int plus, char *out)
{
    static const char upper[] = "0123456789ABCDEF", lower[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)in[i];
        if (isalnum(b) && b < 0x80) {
            out[o++] = (char)b;
        } else if (plus && b == ' ') {
            out[o++] = '+';
        } else {
            const char *hex = i % 2 ? lower : upper;
            out[o++] = '%';
            out[o++] = hex[b >> 4];
            out[o++] = hex[b & 15];
        }
    }
    return o;
}

/* Any bytes, escaped, decode to themselves; as a query value they parse to themselves,
 * unless they hold a NUL byte, which a value may not. */
static void
check_round_trip(const char *in, size_t n)
{
    for (int plus = 0; plus <= 1; plus++) {
        char *enc = must_alloc(3 * n), *dec = must_alloc(3 * n);
        size_t len = escape(in, n, plus, enc);
        long got = funcmond_http_unescape(enc, len, dec, plus);
        FUZZ_ASSERT(got >= 0 && (size_t)got == n && memcmp(dec, in, n) == 0);
        free(enc);
        free(dec);
    }
    static const char key[] = "service=", key2[] = "&package=";
    size_t cap = sizeof(key) + sizeof(key2) + 6 * n;
    char *query = must_alloc(cap), *storage = must_alloc(FUNCMOND_HTTP_QUERY_STORAGE(cap));
    size_t len = 0;
    memcpy(query, key, sizeof(key) - 1);
    len += sizeof(key) - 1;
    len += escape(in, n, 1, query + len);
    memcpy(query + len, key2, sizeof(key2) - 1);
    len += sizeof(key2) - 1;
    len += escape(in, n, 1, query + len);
    struct funcmond_http_query q;
    int ret = funcmond_http_parse_query(query, len, storage, &q);
    if (memchr(in, '\0', n) != NULL) {
        FUZZ_ASSERT(ret == -EINVAL && strcmp(q.bad, "a query value holds a NUL byte") == 0);
    } else {
        FUZZ_ASSERT(ret == 0);
        FUZZ_ASSERT(strlen(q.service) == n && memcmp(q.service, in, n) == 0);
        FUZZ_ASSERT(strlen(q.package) == n && memcmp(q.package, in, n) == 0);
    }
    free(query);
    free(storage);
}

void
fuzz_check_query(const uint8_t *data, size_t size)
{
    char *in = must_alloc(size);
    memcpy(in, data, size);
    check_unescape(in, size, 0);
    check_unescape(in, size, 1);
    check_parse(in, size);
    check_round_trip(in, size);
    free(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_query(data, size);
    return 0;
}
