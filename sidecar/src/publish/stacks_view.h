/*
 * stacks_view.h - allocations per profiled-call stack as a published view holds them, and
 * the walk that names each stack and hands out what it allocated itself (pprof/heap).
 *
 * The drain thread keeps the live table (engine/stacks.h) and copies its used entries into
 * each view; readers walk the copy.
 */
#ifndef FUNCMOND_STACKS_VIEW_H
#define FUNCMOND_STACKS_VIEW_H

#include <stdint.h>

/* Stacks kept per process; calls of stacks past it are summed under one "<other stacks>". */
#define FUNCMOND_STACKS_MAX 4096
/* Frames named per stack; a deeper stack (or a cycle of colliding ids) is cut there. */
#define FUNCMOND_STACK_DEPTH_MAX 64
/* Function id of a frame that is not known (yet): its call has not ended. */
#define FUNCMOND_STACK_FN_UNKNOWN UINT32_MAX

struct funcmond_stack {
    uint32_t id;        /* 0: empty slot */
    uint32_t parent;    /* stack id of the enclosing call, 0 for none */
    uint32_t fn;        /* function id of the call */
    uint32_t parent_fn; /* function id of the enclosing call, as the record said, or UNKNOWN */
    uint64_t calls;     /* calls measured with allocation tracking */
    uint64_t alloc_bytes;
    uint64_t alloc_count;
    uint64_t free_bytes;
};

/* One stack as read: frames[0] the innermost call's function id, then its callers; its own
 * (exclusive) figures. */
struct funcmond_stack_sample {
    const uint32_t *frames;
    int n_frames;
    int truncated; /* the outermost frames are not known */
    uint64_t calls;
    uint64_t alloc_bytes;
    uint64_t alloc_count;
    uint64_t free_bytes;
};

/* Calls fn for every stack of the n entries (as copied) that allocated anything itself.
 * Returns 0, or -ENOMEM. */
int funcmond_stacks_walk(const struct funcmond_stack *e, uint32_t n,
                         void (*fn)(void *arg, const struct funcmond_stack_sample *sample), void *arg);

#endif
