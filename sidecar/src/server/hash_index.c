/*
 * hash_index.c - the open-addressing index (see hash_index.h).
 *
 * Linear probing over a power-of-two table kept at most 3/4 full, so a probe sequence
 * always ends at an empty slot; growing rehashes from the stored hashes, without the keys.
 */
#include <errno.h>
#include <stdlib.h>

#include "hash_index.h"

#define FIRST_CAP 64

uint32_t
funcmond_hash_bytes(const void *data, size_t n)
{
    const unsigned char *d = data;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= d[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

int
funcmond_hash_index_reserve(struct funcmond_hash_index *t)
{
    size_t cap;
    struct funcmond_hash_slot *s;

    if ((t->n + 1) * 4 <= t->cap * 3)
        return 0;
    cap = t->cap ? t->cap * 2 : FIRST_CAP;
    if (cap > SIZE_MAX / sizeof(*s) || (s = calloc(cap, sizeof(*s))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].idx1 == 0)
            continue;
        size_t j = t->slots[i].hash & (cap - 1);
        while (s[j].idx1 != 0)
            j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

struct funcmond_hash_slot *
funcmond_hash_index_find(const struct funcmond_hash_index *t, uint32_t hash, funcmond_hash_eq_fn eq, const void *ctx,
                         const void *key)
{
    size_t mask = t->cap - 1;

    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        struct funcmond_hash_slot *s = &t->slots[i];
        if (s->idx1 == 0 || (s->hash == hash && eq(ctx, s->idx1 - 1, key)))
            return s;
    }
}

void
funcmond_hash_index_insert(struct funcmond_hash_index *t, struct funcmond_hash_slot *slot, uint32_t hash, uint32_t idx)
{
    slot->idx1 = idx + 1;
    slot->hash = hash;
    t->n++;
}

void
funcmond_hash_index_free(struct funcmond_hash_index *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->n = 0;
}
