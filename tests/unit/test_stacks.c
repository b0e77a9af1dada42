/*
 * test_stacks.c - the sidecar's table of allocations per call stack, against stacks the
 * test builds with the client's own stack ids: each stack's own bytes, names of stacks whose
 * outer calls are still running, and hostile links (cycles, id 0, a full table) that must
 * neither loop nor crash.
 */
#include "check.h"
#include "funcmon/layout.h"
#include "stacks.h"

struct seen {
    int n;
    uint32_t frames[8][FUNCMOND_STACK_DEPTH_MAX];
    int n_frames[8], truncated[8];
    uint64_t bytes[8], count[8], freed[8];
};

static void
collect(void *arg, const struct funcmond_stack_sample *s)
{
    struct seen *x = arg;
    if (x->n >= 8)
        return;
    memcpy(x->frames[x->n], s->frames, (size_t)s->n_frames * sizeof(uint32_t));
    x->n_frames[x->n] = s->n_frames;
    x->truncated[x->n] = s->truncated;
    x->bytes[x->n] = s->alloc_bytes;
    x->count[x->n] = s->alloc_count;
    x->freed[x->n] = s->free_bytes;
    x->n++;
}

/* Index of the sample whose innermost frame is fn and that has n frames, or -1. */
static int
sample(const struct seen *x, uint32_t fn, int n)
{
    for (int i = 0; i < x->n; i++)
        if (x->n_frames[i] == n && n > 0 && x->frames[i][0] == fn)
            return i;
    return -1;
}

int
main(void)
{
    struct funcmond_stacks s = {0};
    struct seen x = {0};
    uint32_t n;

    /* main (site 2, fn 10) -> handler (3, fn 11) -> query (4, fn 12): inclusive bytes. */
    uint32_t id_main = funcmon_stack_id(0, 2), id_h = funcmon_stack_id(id_main, 3), id_q = funcmon_stack_id(id_h, 4);
    CHECK_EQ(funcmond_stacks_add(&s, id_q, id_h, 12, 11, 1000, 1, 0), 0);
    CHECK_EQ(funcmond_stacks_add(&s, id_q, id_h, 12, 11, 1000, 1, 0), 0);
    CHECK_EQ(funcmond_stacks_add(&s, id_h, id_main, 11, 10, 2100, 3, 2000), 0); /* 100 its own */
    /* main is still running: its children are named through the record's parent function. */
    struct funcmond_stack *e = funcmond_stacks_copy(&s, &n);
    CHECK_EQ(n, 2);
    CHECK_EQ(funcmond_stacks_walk(e, n, collect, &x), 0);
    CHECK_EQ(x.n, 2);
    int q = sample(&x, 12, 3), h = sample(&x, 11, 2);
    CHECK(q >= 0 && h >= 0);
    CHECK_EQ(x.frames[q][1], 11);
    CHECK_EQ(x.frames[q][2], 10);
    CHECK(x.truncated[q]);
    CHECK_EQ(x.bytes[q], 2000);
    CHECK_EQ(x.count[q], 2);
    CHECK_EQ(x.bytes[h], 100);
    CHECK_EQ(x.count[h], 1);
    CHECK_EQ(x.freed[h], 2000);
    free(e);

    /* Learning main's link (from a thread's in-flight stack) completes the names. */
    funcmond_stacks_link(&s, id_main, 0, 10);
    e = funcmond_stacks_copy(&s, &n);
    memset(&x, 0, sizeof(x));
    CHECK_EQ(funcmond_stacks_walk(e, n, collect, &x), 0);
    CHECK_EQ(x.n, 2); /* main allocated nothing itself: no sample */
    q = sample(&x, 12, 3);
    CHECK(q >= 0 && !x.truncated[q]);
    free(e);

    /* Hostile links: a cycle of two ids, an id that is its own parent, id 0. */
    funcmond_stacks_free(&s);
    CHECK_EQ(funcmond_stacks_add(&s, 111, 222, 1, FUNCMOND_STACK_FN_UNKNOWN, 10, 1, 0), 0);
    CHECK_EQ(funcmond_stacks_add(&s, 222, 111, 2, FUNCMOND_STACK_FN_UNKNOWN, 30, 1, 0), 0);
    CHECK_EQ(funcmond_stacks_add(&s, 333, 333, 3, FUNCMOND_STACK_FN_UNKNOWN, 5, 1, 0), 0);
    CHECK_EQ(funcmond_stacks_add(&s, 0, 9, 4, FUNCMOND_STACK_FN_UNKNOWN, 7, 1, 0), 0);
    e = funcmond_stacks_copy(&s, &n);
    CHECK_EQ(n, 3); /* 111, 222 and the "other" sum */
    memset(&x, 0, sizeof(x));
    CHECK_EQ(funcmond_stacks_walk(e, n, collect, &x), 0);
    int cyc = sample(&x, 2, FUNCMOND_STACK_DEPTH_MAX);
    CHECK(cyc >= 0 && x.truncated[cyc]); /* cut at the depth bound */
    free(e);

    /* A full table: the rest is summed, nothing is lost. */
    funcmond_stacks_free(&s);
    uint64_t total = 0;
    for (uint32_t i = 1; i <= FUNCMOND_STACKS_MAX + 100; i++) {
        CHECK_EQ(funcmond_stacks_add(&s, i * 7919u, 0, i, FUNCMOND_STACK_FN_UNKNOWN, i, 1, 0), 0);
        total += i;
    }
    CHECK_EQ(s.n, FUNCMOND_STACKS_MAX);
    e = funcmond_stacks_copy(&s, &n);
    CHECK_EQ(n, FUNCMOND_STACKS_MAX + 1);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += e[i].alloc_bytes;
    CHECK_EQ(sum, total);
    free(e);
    funcmond_stacks_free(&s);
    printf("test_stacks: ok\n");
    return 0;
}
