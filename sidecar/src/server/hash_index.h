/*
 * hash_index.h - an open-addressing index that finds an item by its bytes.
 *
 * The pprof builder stores each string, function, location, mapping and stack once, and
 * the CPU sampler counts each distinct call chain once; both keep their items in plain
 * arrays and need only a way from a key to the position of the item that holds it. The
 * index stores positions and hashes, never keys, so each user compares keys its own way
 * (a callback given the position) and owns the item storage.
 */
#ifndef FUNCMOND_HASH_INDEX_H
#define FUNCMOND_HASH_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct funcmond_hash_slot {
    uint32_t idx1; /* item position + 1, 0 for an empty slot */
    uint32_t hash;
};

/* Zero-initialised it is empty. */
struct funcmond_hash_index {
    struct funcmond_hash_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;   /* used slots */
};

/* Whether the item at position idx equals key (ctx: the caller's item storage). */
typedef int (*funcmond_hash_eq_fn)(const void *ctx, uint32_t idx, const void *key);

/* FNV-1a of n bytes, folded to 32 bits. */
uint32_t funcmond_hash_bytes(const void *data, size_t n);

/* Makes room for one more entry (load at most 3/4). Returns 0, or -ENOMEM with the index
 * unchanged. */
int funcmond_hash_index_reserve(struct funcmond_hash_index *t);

/* The slot of the item equal to key (by hash, then eq), or the empty slot where it
 * belongs. The index must have room (funcmond_hash_index_reserve since the last insert),
 * so an empty slot always exists. */
struct funcmond_hash_slot *funcmond_hash_index_find(const struct funcmond_hash_index *t, uint32_t hash, funcmond_hash_eq_fn eq,
                                                    const void *ctx, const void *key);

/* Fills the empty slot that find returned with the item at position idx. */
void funcmond_hash_index_insert(struct funcmond_hash_index *t, struct funcmond_hash_slot *slot, uint32_t hash, uint32_t idx);

void funcmond_hash_index_free(struct funcmond_hash_index *t);

/* A key that is a run of n 64-bit ids (a stack: location ids, or raw addresses). */
struct funcmond_id_run {
    const uint64_t *ids;
    size_t n;
};

/* Whether the n ids at ids equal the run k, for eq callbacks. */
static inline int
funcmond_id_run_eq(const struct funcmond_id_run *k, const uint64_t *ids, size_t n)
{
    return n == k->n && (n == 0 || memcmp(ids, k->ids, n * sizeof(*ids)) == 0);
}

#endif
