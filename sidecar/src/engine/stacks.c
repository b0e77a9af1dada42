/*
 * stacks.c - allocations per profiled-call stack (see stacks.h for why it is shaped so).
 *
 * The drain thread adds to an open-addressing table per process; a published view holds a
 * copy sorted by id, which the HTTP thread walks without touching the drain thread's table.
 * Every id comes from a client and may be hostile: lookups are bounded by the table, walks
 * by FUNCMOND_STACK_DEPTH_MAX, and an id that is 0 or repeats is never trusted as a link.
 */
#include "stacks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t
slot_of(uint32_t id, uint32_t cap)
{
    return (id * 0x9e3779b1u) & (cap - 1);
}

static int
grow(struct funcmond_stacks *s)
{
    uint32_t cap = s->cap != 0 ? s->cap * 2 : 64;
    struct funcmond_stack *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->cap; i++) {
        if (s->slots[i].id == 0)
            continue;
        uint32_t j = slot_of(s->slots[i].id, cap);
        while (slots[j].id != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static void
add_to(struct funcmond_stack *e, uint64_t alloc_bytes, uint64_t alloc_count, uint64_t free_bytes)
{
    e->calls++;
    e->alloc_bytes = add_sat(e->alloc_bytes, alloc_bytes);
    e->alloc_count = add_sat(e->alloc_count, alloc_count);
    e->free_bytes = add_sat(e->free_bytes, free_bytes);
}

/* The entry of id, created with this link if new; NULL when the table is full or out of
 * memory (*oom tells which). */
static struct funcmond_stack *
entry(struct funcmond_stacks *s, uint32_t id, uint32_t parent, uint32_t fn, uint32_t parent_fn, int *oom)
{
    *oom = 0;
    if (id == 0 || id == parent) /* not a link anyone can follow */
        return NULL;
    if (s->cap != 0) {
        for (uint32_t j = slot_of(id, s->cap);; j = (j + 1) & (s->cap - 1)) {
            if (s->slots[j].id == id)
                return &s->slots[j];
            if (s->slots[j].id == 0)
                break;
        }
    }
    if (s->n >= FUNCMOND_STACKS_MAX)
        return NULL;
    if ((s->n + 1) * 4 > s->cap * 3 && grow(s) != 0) {
        *oom = 1;
        return NULL;
    }
    uint32_t j = slot_of(id, s->cap);
    while (s->slots[j].id != 0)
        j = (j + 1) & (s->cap - 1);
    struct funcmond_stack *e = &s->slots[j];
    memset(e, 0, sizeof(*e));
    e->id = id;
    e->parent = parent;
    e->fn = fn;
    e->parent_fn = parent_fn;
    s->n++;
    return e;
}

int
funcmond_stacks_add(struct funcmond_stacks *s, uint32_t id, uint32_t parent, uint32_t fn, uint32_t parent_fn, uint64_t alloc_bytes,
                    uint64_t alloc_count, uint64_t free_bytes)
{
    int oom;
    struct funcmond_stack *e = entry(s, id, parent, fn, parent_fn, &oom);
    if (e == NULL) {
        e = &s->other;
        e->fn = FUNCMOND_STACK_FN_UNKNOWN;
    }
    add_to(e, alloc_bytes, alloc_count, free_bytes);
    return oom ? -ENOMEM : 0;
}

void
funcmond_stacks_link(struct funcmond_stacks *s, uint32_t id, uint32_t parent, uint32_t fn)
{
    int oom;
    (void)entry(s, id, parent, fn, FUNCMOND_STACK_FN_UNKNOWN, &oom);
}

void
funcmond_stacks_free(struct funcmond_stacks *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

static int
by_id(const void *a, const void *b)
{
    uint32_t x = ((const struct funcmond_stack *)a)->id, y = ((const struct funcmond_stack *)b)->id;
    return x < y ? -1 : x > y;
}

struct funcmond_stack *
funcmond_stacks_copy(const struct funcmond_stacks *s, uint32_t *n)
{
    uint32_t total = s->n + (s->other.calls != 0);
    *n = 0;
    if (total == 0)
        return NULL;
    struct funcmond_stack *out = malloc(total * sizeof(*out));
    if (out == NULL)
        return NULL;
    uint32_t k = 0;
    if (s->other.calls != 0)
        out[k++] = s->other; /* id 0: sorts first */
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->slots[i].id != 0)
            out[k++] = s->slots[i];
    qsort(out, k, sizeof(*out), by_id);
    *n = k;
    return out;
}

/* Index of the entry with id (never 0) in e sorted by id, or -1. */
static int64_t
find(const struct funcmond_stack *e, uint32_t n, uint32_t id)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && e[lo].id == id && id != 0 ? (int64_t)lo : -1;
}

int
funcmond_stacks_walk(const struct funcmond_stack *e, uint32_t n, void (*fn)(void *arg, const struct funcmond_stack_sample *sample),
                     void *arg)
{
    if (n == 0)
        return 0;
    /* A stack's own bytes: its calls' (inclusive) bytes less its direct callees'. A parent
     * still running has not counted its callees yet: clamp at zero. The sums come from
     * clients, so they are added up without overflow (saturating) and never signed. */
    uint64_t *kids = calloc((size_t)n * 3, sizeof(*kids));
    if (kids == NULL)
        return -ENOMEM;
    uint64_t *kids_count = kids + n, *kids_free = kids + 2 * (size_t)n;
    for (uint32_t i = 0; i < n; i++) {
        int64_t p = e[i].parent != e[i].id ? find(e, n, e[i].parent) : -1;
        if (p < 0)
            continue;
        kids[p] = add_sat(kids[p], e[i].alloc_bytes);
        kids_count[p] = add_sat(kids_count[p], e[i].alloc_count);
        kids_free[p] = add_sat(kids_free[p], e[i].free_bytes);
    }
    uint32_t frames[FUNCMOND_STACK_DEPTH_MAX];
    for (uint32_t i = 0; i < n; i++) {
        struct funcmond_stack_sample s = {0};
        s.calls = e[i].calls;
        s.alloc_bytes = e[i].alloc_bytes > kids[i] ? e[i].alloc_bytes - kids[i] : 0;
        s.alloc_count = e[i].alloc_count > kids_count[i] ? e[i].alloc_count - kids_count[i] : 0;
        s.free_bytes = e[i].free_bytes > kids_free[i] ? e[i].free_bytes - kids_free[i] : 0;
        if (s.alloc_bytes == 0 && s.alloc_count == 0)
            continue;
        int k = 0;
        if (e[i].id == 0) { /* the "<other stacks>" sum */
            s.truncated = 1;
        } else {
            int64_t cur = (int64_t)i;
            frames[k++] = e[i].fn;
            while (e[cur].parent != 0 && k < FUNCMOND_STACK_DEPTH_MAX) {
                int64_t p = find(e, n, e[cur].parent);
                if (p < 0) { /* the enclosing call has not ended yet: name it from the record */
                    if (e[cur].parent_fn != FUNCMOND_STACK_FN_UNKNOWN)
                        frames[k++] = e[cur].parent_fn;
                    s.truncated = 1;
                    break;
                }
                frames[k++] = e[p].fn;
                cur = p;
            }
            if (k == FUNCMOND_STACK_DEPTH_MAX && e[cur].parent != 0)
                s.truncated = 1;
        }
        s.frames = frames;
        s.n_frames = k;
        fn(arg, &s);
    }
    free(kids);
    return 0;
}
