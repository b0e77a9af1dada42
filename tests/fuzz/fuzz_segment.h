/*
 * fuzz_segment.h - the valid segment both fuzz drivers start from, and the one-input
 * check they share.
 */
#ifndef FUNCMON_FUZZ_SEGMENT_H
#define FUNCMON_FUZZ_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_CHUNK 16u
#define FUZZ_CHUNKS 6u
#define FUZZ_THREADS 2u
#define FUZZ_SITES 16u

/* Bytes of the seed segment. */
size_t fuzz_seed_size(void);

/* Writes a valid segment with published sites, records and an in-flight stack into buf
 * (fuzz_seed_size() bytes). Returns its size. */
size_t fuzz_seed_build(unsigned char *buf);

/* Validates `len` bytes at `seg` (copied to a buffer of exactly that size) and, if they
 * are accepted, attaches a consumer and exercises every reader. Never crashes. */
void fuzz_check_segment(const unsigned char *seg, size_t len);

#endif
