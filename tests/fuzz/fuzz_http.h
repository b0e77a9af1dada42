/*
 * fuzz_http.h - the one-input check of funcmond's query parser and percent-decoder that
 * both HTTP fuzz drivers run (fuzz_http_query.c under libFuzzer, fuzz_query_smoke.c in
 * every test run).
 */
#ifndef FUNCMON_FUZZ_HTTP_H
#define FUNCMON_FUZZ_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Runs `size` bytes (copied to a buffer of exactly that size) through the decoder, both
 * ways, and the query parser, and checks what they promise; aborts with a message when a
 * promise is broken. */
void fuzz_check_query(const uint8_t *data, size_t size);

#endif
