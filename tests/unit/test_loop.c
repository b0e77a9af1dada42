/*
 * test_loop.c - funcmond's event loop on its own, on io_uring ("uring") or on epoll with
 * io_uring refused by a seccomp filter ("epoll"): both must give owners the same results.
 *
 *   - a timeout asked again while pending replaces it: one completion, counted in flight
 *     once, at the new deadline;
 *   - the state file's steps (write, fsync, rename) complete later through the loop, never
 *     from inside the call, with the bytes written, 0, 0 and the file replaced; a failed
 *     step makes those after it complete with -ECANCELED. On epoll they run on a thread,
 *     whose eventfd the loop watches, and the loop keeps running other operations meanwhile;
 *   - a big state file on a real disk, whose write and fsync take a while: a 1 ms timer
 *     keeps completing until they are done (checked where they took 20 ms or more; on a
 *     medium where they are faster there is nothing to see, which is said).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "loop.h"
#include "refuse_io_uring.h"
#include "sidecar.h"

struct seen {
    int calls;
    int res;
};

static struct seen seen[8];
static int order[8], n_order;

static uint64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct funcmond_op ops[8];

static void
on_op(struct funcmond *d, struct funcmond_op *op, int res)
{
    (void)d;
    int i = (int)(op - ops);
    seen[i].calls++;
    seen[i].res = res;
    order[n_order++] = i;
}

static void
reset(int *inflight)
{
    memset(seen, 0, sizeof(seen));
    n_order = 0;
    for (int i = 0; i < 8; i++)
        ops[i] = (struct funcmond_op){.on_complete = on_op, .inflight = inflight};
}

/* Runs completions until want callbacks ran or ms passed. */
static void
run_until(struct funcmond *d, int want, uint64_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (n_order < want && mono_ms() < end)
        funcmond_loop_complete_within(d, 20000000);
}

static void
timeout_replaced(struct funcmond *d)
{
    int inflight = 0;
    reset(&inflight);
    uint64_t t0 = mono_ms();
    CHECK_EQ(funcmond_loop_timeout(d, &ops[0], 2000000000ull), 0);
    CHECK_EQ(inflight, 1);
    CHECK_EQ(funcmond_loop_timeout(d, &ops[0], 30000000ull), 0); /* replaces: counted once */
    CHECK_EQ(inflight, 1);
    run_until(d, 1, 1500);
    CHECK_EQ(seen[0].calls, 1);
    CHECK_EQ(seen[0].res, -ETIME);
    CHECK_LT(mono_ms() - t0, 1500);
    CHECK_EQ(inflight, 0);
    run_until(d, 2, 300); /* nothing else comes */
    CHECK_EQ(seen[0].calls, 1);
    CHECK_EQ(inflight, 0);
}

static void on_tick(struct funcmond *d, struct funcmond_op *op, int res);
static int ticks, ticker_stop, ticker_inflight;
static struct funcmond_op ticker = {.on_complete = on_tick, .inflight = &ticker_inflight};

static void
on_tick(struct funcmond *d, struct funcmond_op *op, int res)
{
    (void)res;
    ticks++;
    if (!ticker_stop)
        funcmond_loop_timeout(d, op, 1000000ull);
}

static void
slow_steps(struct funcmond *d, const char *dir)
{
    enum { BIG = 64 << 20 };
    char tmp[300], path[300];
    int inflight = 0, ticks_at[3];
    reset(&inflight);
    char *buf = malloc(BIG);
    CHECK(buf != NULL);
    memset(buf, 'x', BIG);
    snprintf(tmp, sizeof(tmp), "%s/big.tmp", dir);
    snprintf(path, sizeof(path), "%s/big", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK_GE(fd, 0);
    ticks = 0;
    CHECK_EQ(funcmond_loop_timeout(d, &ticker, 1000000ull), 0);
    uint64_t t0 = mono_ms();
    CHECK_EQ(funcmond_loop_replace_file(d, &ops[0], &ops[1], &ops[2], fd, buf, BIG, tmp, path), 0);
    while (n_order < 3 && mono_ms() - t0 < 30000) {
        int before = n_order;
        funcmond_loop_complete_within(d, 20000000);
        if (n_order > before)
            ticks_at[n_order - 1] = ticks;
    }
    uint64_t took = mono_ms() - t0;
    CHECK_EQ(n_order, 3);
    CHECK_EQ(seen[0].res, BIG);
    CHECK_EQ(seen[1].res, 0);
    CHECK_EQ(seen[2].res, 0);
    ticker_stop = 1;
    CHECK_EQ(funcmond_loop_cancel(d, &ticker), 0);
    for (uint64_t end = mono_ms() + 1000; ticker_inflight != 0 && mono_ms() < end;)
        funcmond_loop_complete_within(d, 20000000);
    CHECK_EQ(ticker_inflight, 0);
    printf("%d MiB written, fsync'd and renamed in %llu ms; a 1 ms timer completed %d times meanwhile\n", BIG >> 20,
           (unsigned long long)took, ticks_at[2]);
    if (took >= 20)
        CHECK_GE(ticks_at[2], (int)(took / 10)); /* the loop kept running while the steps did */
    else
        printf("the steps took under 20 ms here: nothing to see of the loop meanwhile\n");
    close(fd);
    unlink(path);
    free(buf);
}

static void
replace_file(struct funcmond *d, const char *dir)
{
    char tmp[300], path[300], buf[64];
    static const char text[] = "the new state";
    int inflight = 0;
    reset(&inflight);
    snprintf(tmp, sizeof(tmp), "%s/state.tmp", dir);
    snprintf(path, sizeof(path), "%s/state", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK_GE(fd, 0);
    CHECK_EQ(write(fd, "old", 3), 3);
    close(fd);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK_GE(fd, 0);
    /* A timer asked alongside completes too: the loop runs other operations meanwhile. */
    CHECK_EQ(funcmond_loop_timeout(d, &ops[3], 1000000ull), 0);
    CHECK_EQ(funcmond_loop_replace_file(d, &ops[0], &ops[1], &ops[2], fd, text, sizeof(text) - 1, tmp, path), 0);
    CHECK_EQ(n_order, 0); /* never from inside the call */
    CHECK_EQ(inflight, 4);
    run_until(d, 4, 5000);
    CHECK_EQ(n_order, 4);
    CHECK_EQ(inflight, 0);
    CHECK_EQ(seen[0].res, (int)sizeof(text) - 1);
    CHECK_EQ(seen[1].res, 0);
    CHECK_EQ(seen[2].res, 0);
    CHECK_EQ(seen[3].res, -ETIME);
    int steps = 0; /* the steps complete in their order */
    for (int i = 0; i < n_order; i++)
        if (order[i] != 3)
            CHECK_EQ(order[i], steps++);
    close(fd);
    CHECK_EQ(access(tmp, F_OK), -1);
    fd = open(path, O_RDONLY);
    CHECK_GE(fd, 0);
    CHECK_EQ(read(fd, buf, sizeof(buf)), (long)sizeof(text) - 1);
    CHECK_EQ(memcmp(buf, text, sizeof(text) - 1), 0);
    close(fd);

    /* A failed write cancels the rest; the file stays as it was. */
    reset(&inflight);
    CHECK_EQ(funcmond_loop_replace_file(d, &ops[0], &ops[1], &ops[2], -1, "x", 1, tmp, path), 0);
    run_until(d, 3, 5000);
    CHECK_EQ(n_order, 3);
    CHECK_EQ(seen[0].res, -EBADF);
    CHECK_EQ(seen[1].res, -ECANCELED);
    CHECK_EQ(seen[2].res, -ECANCELED);
    CHECK_EQ(inflight, 0);
    unlink(path);
}

int
main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "uring") != 0 && strcmp(argv[1], "epoll") != 0))
        return 2;
    int epoll = strcmp(argv[1], "epoll") == 0;
    if (epoll) {
        int ret = harness_refuse_io_uring(0);
        CHECK_NE(ret, -EPROTO); /* a filter that is in but does not refuse */
        if (ret != 0) {
            printf("SKIP: cannot refuse io_uring with a seccomp filter: %s\n", strerror(-ret));
            return 77;
        }
    }
    struct funcmond *d = calloc(1, sizeof(*d));
    CHECK(d != NULL);
    d->futex_wait_ok = 1;
    int ret = funcmond_loop_init(d);
    if (ret != 0 && !epoll) {
        printf("SKIP: no io_uring here: %s\n", strerror(-ret));
        return 77;
    }
    CHECK_EQ(ret, 0);
    CHECK_EQ(funcmond_loop_event_loop(d), epoll ? FUNCMOND_EVENT_LOOP_EPOLL : FUNCMOND_EVENT_LOOP_IO_URING);
    char dir[] = "test_loop.XXXXXX"; /* in the build tree: on a disk, where fsync costs */
    CHECK(mkdtemp(dir) != NULL);
    slow_steps(d, dir);
    timeout_replaced(d);
    replace_file(d, dir);
    funcmond_loop_close(d);
    rmdir(dir);
    free(d);
    printf("test_loop %s: ok\n", argv[1]);
    return 0;
}
