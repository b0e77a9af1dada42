/*
 * http_query.c - query strings and percent-decoding for funcmond's REST API.
 *
 * Separators are found before anything is decoded, so an escaped '&' or '=' (%26, %3D) is
 * data, and a value is checked against its key's rule before any endpoint sees it: the
 * endpoints get numbers in range and strings without NUL bytes, or a 400 naming the first
 * problem.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http_query.h"

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long
funcmond_http_unescape(const char *src, size_t n, char *dst, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = hex_value(src[i + 1])) < 0 || (lo = hex_value(src[i + 2])) < 0)
                return -EINVAL;
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dst[o++] = plus_is_space && c == '+' ? ' ' : c;
        }
    }
    return (long)o;
}

/* A whole decimal number from 0 to max, digits only; -1 otherwise. */
static long
parse_number(const char *s, long max)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno != 0 || *end != '\0' || v > max ? -1 : v;
}

/* Checks one decoded key=value and records it in q; sets q->bad when it is not allowed. */
static void
take_pair(struct funcmond_http_query *q, const char *key, const char *val, size_t vl)
{
    if (strlen(val) != vl) {
        q->bad = "a query value holds a NUL byte";
    } else if (strcmp(key, "service") == 0) {
        q->service = val;
    } else if (strcmp(key, "package") == 0) {
        q->package = val;
    } else if (strcmp(key, "sort") == 0) {
        if (strcmp(val, "avg") && strcmp(val, "total") && strcmp(val, "calls") && strcmp(val, "errors"))
            q->bad = "sort must be avg, total, calls or errors";
        q->sort = val;
    } else if (strcmp(key, "limit") == 0) {
        if ((q->limit = parse_number(val, 1000000)) < 0)
            q->bad = "limit must be a whole number";
    } else if (strcmp(key, "min_ms") == 0) {
        if ((q->min_ms = parse_number(val, 86400000)) < 0)
            q->bad = "min_ms must be a whole number of milliseconds";
    } else if (strcmp(key, "seconds") == 0) {
        if ((q->seconds = parse_number(val, 3600)) <= 0)
            q->bad = "seconds must be a whole number from 1 to 3600";
    } else if (strcmp(key, "pid") == 0) {
        if ((q->pid = parse_number(val, 0x7fffffff)) <= 0)
            q->bad = "pid must be a positive number";
    } else {
        q->bad = "unknown query parameter";
    }
}

int
funcmond_http_parse_query(const char *query, size_t len, char *storage, struct funcmond_http_query *q)
{
    const char *s = query, *end = query + len;
    memset(q, 0, sizeof(*q));
    q->limit = q->min_ms = q->seconds = q->pid = -1;
    /* Each pair takes its key's and value's encoded lengths plus two NULs of storage; its
     * '&' pays for one of them, hence 2 * len + 2 in all. */
    while (s < end && q->bad == NULL) {
        const char *amp = memchr(s, '&', (size_t)(end - s)), *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        const char *kend = eq ? eq : stop, *vbeg = eq ? eq + 1 : stop;
        char *key = storage, *val = key + (kend - s) + 1;
        storage = val + (stop - vbeg) + 1;
        long kl = funcmond_http_unescape(s, (size_t)(kend - s), key, 1);
        long vl = funcmond_http_unescape(vbeg, (size_t)(stop - vbeg), val, 1);
        s = stop + 1;
        if (kl < 0 || vl < 0) {
            q->bad = "bad percent-encoding in the query";
            break;
        }
        key[kl] = '\0';
        val[vl] = '\0';
        if (kl != 0)
            take_pair(q, key, val, (size_t)vl);
    }
    return q->bad != NULL ? -EINVAL : 0;
}
