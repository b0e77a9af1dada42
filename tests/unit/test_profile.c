/*
 * test_profile.c - the four ways to profile a call record what the test did.
 *
 * Each call is made a known number of times with known results, sleeps and nesting; the
 * test drains its own segment and compares counts, error flags, context flags, depth,
 * parent sites and durations against what it did.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

static void
sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int
returns_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int
sleeps_2ms(void *arg)
{
    (void)arg;
    sleep_ns(2000000);
    return 0;
}

static int
ctx_task(struct funcmon_ctx *ctx, void *arg)
{
    long sleep = (long)(intptr_t)arg;
    sleep_ns(sleep);
    return funcmon_ctx_err(ctx) != 0 ? -1 : 0;
}

static int
ignores_ctx(struct funcmon_ctx *ctx, void *arg)
{
    (void)ctx;
    (void)arg;
    return 0;
}

static int
scope_with_early_exit(int n)
{
    for (int i = 0; i < n; i++) {
        FUNCMON_SCOPE("scoped", "test")
        {
            if (i == 2)
                break; /* leaves the scope (break and continue apply to its own loop) */
            if (i == 1) {
                funcmon_set_error();
                continue;
            }
        }
    }
    FUNCMON_SCOPE("scoped_return", "test")
    {
        return 42;
    }
    return 0;
}

int
main(void)
{
    struct funcmon_consumer c;
    struct harness_tally t = {0};

    harness_private_prefix();
    CHECK_EQ(funcmon_init(NULL), 0);
    CHECK(funcmon_active());
    CHECK_EQ(funcmon_init(NULL), -EALREADY);
    harness_open_self(&c);

    /* funcmon_profile returns fn's value; non-zero results are errors. */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(funcmon_profile("returns", "test", returns_arg, (void *)(intptr_t)(i % 3)), i % 3);
    CHECK_EQ(funcmon_profile("returns", "test", NULL, NULL), -EINVAL);
    /* Durations against what the call slept. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ(funcmon_profile("sleeps_2ms", "test", sleeps_2ms, NULL), 0);

    /* Contexts: cancelled, deadline passed, live. */
    struct funcmon_ctx ctx;
    funcmon_ctx_init(&ctx, 0);
    funcmon_ctx_cancel(&ctx);
    CHECK_EQ(funcmon_ctx_err(&ctx), FUNCMON_ECANCELED);
    CHECK_EQ(funcmon_profile_ctx(&ctx, "ctx_cancelled", "test", ignores_ctx, NULL), 0);
    funcmon_ctx_init(&ctx, 1000000); /* 1 ms */
    CHECK_EQ(funcmon_profile_ctx(&ctx, "ctx_deadline", "test", ctx_task, (void *)(intptr_t)3000000), -1);
    CHECK_EQ(funcmon_ctx_err(&ctx), FUNCMON_EDEADLINE);
    funcmon_ctx_init(&ctx, 10000000000ull); /* 10 s */
    CHECK_EQ(funcmon_profile_ctx(&ctx, "ctx_live", "test", ctx_task, (void *)(intptr_t)1000), 0);

    /* begin/end in place, nested: inner calls carry depth and their parent's site. */
    uint32_t outer_site = FUNCMON_SITE("outer", "test");
    uint32_t inner_site = FUNCMON_SITE("inner", "test");
    CHECK_EQ(FUNCMON_SITE("outer", "test"), outer_site);
    struct funcmon_call outer = funcmon_begin(outer_site);
    for (int i = 0; i < 3; i++) {
        struct funcmon_call inner = funcmon_begin(inner_site);
        funcmon_end(&inner, i == 0);
    }
    funcmon_end(&outer, 0);

    /* FUNCMON_SCOPE ends on break, continue and return; funcmon_set_error marks it. */
    CHECK_EQ(scope_with_early_exit(5), 42);

    harness_drain_all(&c, &t);
    uint32_t s_returns = funcmon_site("returns", "test");
    CHECK_EQ(t.calls[s_returns], 10);
    CHECK_EQ(t.errors[s_returns], 6); /* i % 3 != 0 for 6 of 0..9 */

    uint32_t s_sleep = funcmon_site("sleeps_2ms", "test");
    CHECK_EQ(t.calls[s_sleep], 5);
    CHECK_EQ(t.errors[s_sleep], 0);
    struct funcmon_record r = t.last[s_sleep];
    uint64_t d = harness_duration_ns(&c, &r);
    CHECK_GE(d, 2000000);
    CHECK_LT(d, 2000000 + 200000000); /* scheduler slack, generous for sanitizer builds */

    uint32_t s_cancel = funcmon_site("ctx_cancelled", "test");
    CHECK_EQ(t.calls[s_cancel], 1);
    CHECK_EQ(t.errors[s_cancel], 1);
    CHECK(t.flags_or[s_cancel] & FUNCMON_RECORD_CANCELLED);
    uint32_t s_deadline = funcmon_site("ctx_deadline", "test");
    CHECK_EQ(t.errors[s_deadline], 1);
    CHECK(t.flags_or[s_deadline] & FUNCMON_RECORD_DEADLINE);
    CHECK(!(t.flags_or[s_deadline] & FUNCMON_RECORD_CANCELLED));
    uint32_t s_live = funcmon_site("ctx_live", "test");
    CHECK_EQ(t.calls[s_live], 1);
    CHECK_EQ(t.errors[s_live], 0);
    CHECK(!(t.flags_or[s_live] & (FUNCMON_RECORD_DEADLINE | FUNCMON_RECORD_CANCELLED)));

    CHECK_EQ(t.calls[inner_site], 3);
    CHECK_EQ(t.errors[inner_site], 1);
    CHECK_EQ(t.last[inner_site].depth, 1);
    CHECK_EQ(t.last[inner_site].parent_site, outer_site);
    CHECK_EQ(t.calls[outer_site], 1);
    CHECK_EQ(t.last[outer_site].depth, 0);
    CHECK_EQ(t.last[outer_site].parent_site, FUNCMON_SITE_NONE);
    CHECK_LE(t.last[outer_site].start, t.last[inner_site].start);
    CHECK_GE(t.last[outer_site].end, t.last[inner_site].end);

    uint32_t s_scoped = funcmon_site("scoped", "test");
    CHECK_EQ(t.calls[s_scoped], 5); /* every pass ends its call: plain, continue, break */
    CHECK_EQ(t.errors[s_scoped], 1);
    CHECK_EQ(t.calls[funcmon_site("scoped_return", "test")], 1);

    /* Nothing in flight any more, nothing dropped. */
    struct funcmon_slot_info si;
    int found = 0;
    for (uint32_t i = 0; i < c.geo.max_threads; i++) {
        CHECK_EQ(funcmon_consumer_slot(&c, i, &si), 0);
        if (si.state == FUNCMON_SLOT_ACTIVE && si.tid == gettid()) {
            found = 1;
            CHECK_EQ(si.depth, 0);
            CHECK_EQ(si.dropped, 0);
        }
    }
    CHECK(found);
    CHECK_EQ(c.bad_records, 0);

    funcmon_consumer_close(&c);
    funcmon_shutdown();
    CHECK(!funcmon_active());
    /* After shutdown calls run plain and still return their values. */
    CHECK_EQ(funcmon_profile("returns", "test", returns_arg, (void *)7), 7);
    printf("test_profile: ok\n");
    return 0;
}
