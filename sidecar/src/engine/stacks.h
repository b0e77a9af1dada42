/*
 * stacks.h - allocations per profiled-call stack, for /debug/pprof/heap.
 *
 * A client stamps each record with the stack id of its enclosing call (proto's
 * funcmon_stack_id); a record's own id follows from that and its site. Calls end before
 * the calls around them, so when a record arrives its parent's link may not be known yet:
 * the table keeps, per stack id of one process, the link (parent id, function) and the
 * allocation totals of the calls with that stack, and stacks are named only when read, by
 * walking the links as far as they are known. Totals are inclusive like the records
 * (a call's bytes include its nested calls'); funcmond_stacks_walk hands out what each
 * stack allocated itself, which is what a pprof sample holds.
 */
#ifndef FUNCMOND_STACKS_H
#define FUNCMOND_STACKS_H

#include <stdint.h>

#include "stacks_view.h"

struct funcmond_stacks {
    struct funcmond_stack *slots; /* open addressing, capacity a power of two */
    uint32_t cap;
    uint32_t n;
    struct funcmond_stack other; /* calls of stacks past FUNCMOND_STACKS_MAX (fn = UNKNOWN) */
};

/* Adds one call's allocations to its stack (own id `id`, enclosing `parent`). 0, or -ENOMEM when
 * out of memory (the call is summed under `other`). */
int funcmond_stacks_add(struct funcmond_stacks *s, uint32_t id, uint32_t parent, uint32_t fn, uint32_t parent_fn,
                        uint64_t alloc_bytes, uint64_t alloc_count, uint64_t free_bytes);
/* Learns the link of a call still running (from a thread's in-flight stack), so that the
 * stacks of the calls inside it can be named before it ends. */
void funcmond_stacks_link(struct funcmond_stacks *s, uint32_t id, uint32_t parent, uint32_t fn);
void funcmond_stacks_free(struct funcmond_stacks *s);

/* Copies the used entries of s into a new array (for a published view). NULL with *n = 0
 * when s is empty or out of memory. */
struct funcmond_stack *funcmond_stacks_copy(const struct funcmond_stacks *s, uint32_t *n);

#endif
