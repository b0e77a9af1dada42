/*
 * http_query.h - the query string and percent-decoding rules of funcmond's REST API.
 *
 * Every byte of a query comes from the network. The parser and the decoder are kept apart
 * from h2o and from the server so that they can be fuzzed on their own (tests/fuzz/): they
 * take a byte range and caller-provided storage, allocate nothing and keep no state.
 */
#ifndef FUNCMOND_HTTP_QUERY_H
#define FUNCMOND_HTTP_QUERY_H

#include <stddef.h>

/* What the debug endpoints read from a query; each endpoint uses the keys it needs. */
struct funcmond_http_query {
    const char *service; /* NULL: none */
    const char *package; /* NULL: none */
    const char *sort;    /* NULL, or avg, total, calls or errors */
    long limit;          /* -1: none */
    long min_ms;         /* -1: none */
    long seconds;        /* -1: none */
    long pid;            /* -1: none */
    const char *bad;     /* the first problem, for a 400; NULL when the query is good */
};

/* Bytes of storage funcmond_http_parse_query() needs for a query of len bytes: every key
 * and value decoded (never longer than encoded) with a NUL each. */
#define FUNCMOND_HTTP_QUERY_STORAGE(len) (2 * (size_t)(len) + 2)

/*
 * Percent-decodes src[0..n) into dst (at least n bytes) without any path normalisation;
 * `plus_is_space` for query values. A '%' must be followed by two hex digits. Returns the
 * decoded length (at most n), or -EINVAL on a bad escape (dst then holds a partial result).
 */
long funcmond_http_unescape(const char *src, size_t n, char *dst, int plus_is_space);

/*
 * Parses a query string (the bytes after '?', without it) into *q. Keys and values are
 * percent-decoded ('+' is a space) into `storage`, which must hold
 * FUNCMOND_HTTP_QUERY_STORAGE(len) bytes and outlive q's strings. Empty keys are skipped;
 * an unknown key, a value out of range, a NUL byte in a value or a bad escape stops the
 * parse. Returns 0, or -EINVAL with the reason in q->bad.
 */
int funcmond_http_parse_query(const char *query, size_t len, char *storage, struct funcmond_http_query *q);

#endif
