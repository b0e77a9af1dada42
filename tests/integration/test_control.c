/*
 * test_control.c - the control thread: allocator samples, trim with before/after figures,
 * unknown requests, no answer after shutdown, and no cost while idle; and the requester's
 * non-blocking steps (funcmon/control.h) against it: post, wake, poll, and what does not
 * count as an answer.
 *
 * Figures are checked against the process's own view (/proc/self/statm, the wall clock);
 * idleness against the kernel's count of the control thread's context switches.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "funcmon/control.h"
#include "funcmon.h"
#include "harness.h"

/* Voluntary context switches of the thread named funcmon-ctl, or -1 if there is none. */
static long
control_thread_switches(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    long found = -1;
    CHECK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[4096];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (strncmp(buf, "Name:\tfuncmon-ctl\n", 18) != 0)
            continue;
        char *v = strstr(buf, "voluntary_ctxt_switches:");
        CHECK(v != NULL);
        found = strtol(v + strlen("voluntary_ctxt_switches:"), NULL, 10);
    }
    closedir(d);
    return found;
}

static uint64_t
statm_rss(void)
{
    unsigned long size, rss;
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    CHECK_EQ(fscanf(f, "%lu %lu", &size, &rss), 2);
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Polls `request` until it is answered (5 s at most); returns its status. */
static int32_t
poll_answer(const struct funcmon_shm_header *h, uint32_t request)
{
    int32_t status = 1;
    for (int i = 0; i < 5000; i++) {
        if (funcmon_control_poll(h, request, &status))
            return status;
        struct timespec ms1 = {0, 1000000};
        nanosleep(&ms1, NULL);
    }
    CHECK(!"control request answered within 5 s");
    return status;
}

/* Stores what a client could write into the response word (atomically: the control
 * thread reads and writes the same word). */
static void
fake_response(struct funcmon_shm_header *h, uint32_t response)
{
    __atomic_store_n(&h->ctl_response, response, __ATOMIC_RELEASE);
}

static void
poll_steps(struct funcmon_shm_header *h)
{
    int32_t status = 1;
    uint64_t served = h->ctl_served;
    CHECK(funcmon_control_wake_word(h) == &h->ctl_request);

    /* Posted, not woken: not answered, nor by a stale number, one from the future or one
     * half the number space away. Then woken: answered, status 0. */
    uint32_t r = funcmon_control_post(h, FUNCMON_CTL_SAMPLE);
    CHECK_EQ(r, h->ctl_request);
    CHECK_EQ(funcmon_control_poll(h, r, &status), 0);
    CHECK_EQ(h->ctl_response, r - 1); /* the previous request's answer */
    CHECK_EQ(funcmon_control_poll(h, r, &status), 0);
    fake_response(h, r + 1);
    CHECK_EQ(funcmon_control_poll(h, r, &status), 0);
    fake_response(h, r + 0x80000000u);
    CHECK_EQ(funcmon_control_poll(h, r, &status), 0);
    fake_response(h, r - 0x7fffffffu);
    CHECK_EQ(funcmon_control_poll(h, r, &status), 0);
    CHECK_EQ(status, 1); /* left alone while there is no answer */
    fake_response(h, r - 1);
    uint64_t before = harness_clock_ns(CLOCK_REALTIME);
    funcmon_control_wake(h);
    CHECK_EQ(poll_answer(h, r), 0);
    CHECK_EQ(h->ctl_served, served + 1);
    CHECK_GE(h->alloc_stats.sampled_real_ns, before);

    /* A status that is no errno reads as EPROTO. Written before the post, so that the
     * control thread's own answer comes after it in every sense. */
    uint32_t next = __atomic_load_n(&h->ctl_request, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&h->ctl_status, 12345, __ATOMIC_RELAXED);
    fake_response(h, next);
    CHECK_EQ(funcmon_control_post(h, 77), next);
    CHECK_EQ(funcmon_control_poll(h, next, &status), 1);
    CHECK_EQ(status, -EPROTO);
    __atomic_store_n(&h->ctl_status, INT32_MIN, __ATOMIC_RELAXED);
    CHECK_EQ(funcmon_control_poll(h, next, &status), 1);
    CHECK_EQ(status, -EPROTO);
    fake_response(h, next - 1);
    /* Posted again, so that the thread's answer is ordered after the stores above. */
    CHECK_EQ(funcmon_control_post(h, 77), next + 1);
    funcmon_control_wake(h);
    CHECK_EQ(poll_answer(h, next + 1), -EINVAL); /* the thread's own answer to op 77 */
    CHECK_EQ(funcmon_control_poll(h, next, &status), 1);
    CHECK_EQ(status, -EINVAL);
    CHECK_EQ(h->ctl_served, served + 2);

    /* Two posted before one wake: the thread serves the newest once, and that answer
     * counts for both. */
    uint32_t r1 = funcmon_control_post(h, FUNCMON_CTL_SAMPLE);
    uint32_t r2 = funcmon_control_post(h, FUNCMON_CTL_TRIM);
    CHECK_EQ(r2, r1 + 1);
    CHECK_EQ(funcmon_control_poll(h, r1, &status), 0);
    funcmon_control_wake(h);
    CHECK_EQ(poll_answer(h, r2), 0);
    CHECK_EQ(funcmon_control_poll(h, r1, &status), 1);
    CHECK_EQ(status, 0);
    CHECK_EQ(h->ctl_served, served + 3);
    CHECK_GT(h->ctl_after.sampled_real_ns, 0);
}

int
main(void)
{
    struct funcmon_consumer c;

    harness_private_prefix();
    CHECK_EQ(funcmon_init(NULL), 0);
    harness_open_self(&c);
    struct funcmon_shm_header *h = c.hdr;

    /* Sample: figures from this process, taken now. */
    uint64_t before = harness_clock_ns(CLOCK_REALTIME);
    CHECK_EQ(funcmon_consumer_control(&c, FUNCMON_CTL_SAMPLE, 5000), 0);
    uint64_t after = harness_clock_ns(CLOCK_REALTIME);
    CHECK_EQ(h->ctl_served, 1);
    CHECK_GE(h->alloc_stats.sampled_real_ns, before);
    CHECK_LE(h->alloc_stats.sampled_real_ns, after);
    /* A sanitizer's allocator replaces glibc's heap: mallinfo2 then truthfully reports an
     * empty glibc heap, and only the process figures can be checked. */
    int glibc_heap = !harness_malloc_replaced();
    if (glibc_heap)
        CHECK_GT(h->alloc_stats.system, 0);
    CHECK_GE(h->alloc_stats.system, h->alloc_stats.free);
    uint64_t rss = statm_rss();
    CHECK_GT(h->alloc_stats.rss, rss / 2);
    CHECK_LT(h->alloc_stats.rss, rss * 2);

    /* Trim: before and after figures, the heap no larger after. A freed run of blocks in
     * the middle of the heap gives malloc_trim something to return. */
    void *volatile blocks[2000]; /* volatile: the compiler may not pair and drop malloc/free */
    for (int i = 0; i < 2000; i++)
        blocks[i] = malloc(4000);
    void *volatile pin = malloc(100); /* keeps the top of the heap in use */
    for (int i = 0; i < 2000; i++)
        free(blocks[i]);
    CHECK_EQ(funcmon_consumer_control(&c, FUNCMON_CTL_TRIM, 5000), 0);
    CHECK_EQ(h->ctl_served, 2);
    CHECK_GT(h->ctl_before.sampled_real_ns, 0);
    CHECK_GE(h->ctl_after.sampled_real_ns, h->ctl_before.sampled_real_ns);
    CHECK_LE(h->ctl_after.system, h->ctl_before.system);
    CHECK_LE(h->ctl_after.rss, h->ctl_before.rss + 256 * 1024); /* the sampling itself may touch a page or two */
    if (glibc_heap)
        CHECK_GE(h->ctl_before.free, 2000 * 4000 / 2);
    free(pin);

    /* An unknown operation is answered with EINVAL, and the thread goes on serving. */
    CHECK_EQ(funcmon_consumer_control(&c, 77, 5000), -EINVAL);
    CHECK_EQ(funcmon_consumer_control(&c, FUNCMON_CTL_SAMPLE, 5000), 0);
    CHECK_EQ(h->ctl_served, 4);

    /* Idle costs nothing: after its one calibration wake-up (a second after start), the
     * control thread does not run at all while nobody asks. */
    sleep(2);
    long s0 = control_thread_switches();
    CHECK_GE(s0, 0);
    sleep(1);
    long s1 = control_thread_switches();
    CHECK_EQ(s1, s0);
    /* The calibration refined by then is still sane: 1 s of ticks is 1 s. */
    struct funcmon_clock clk;
    CHECK_EQ(funcmon_consumer_clock(&c, &clk), 0);
    uint64_t t0 = funcmon__ticks();
    struct timespec ms100 = {0, 100000000};
    uint64_t m0 = harness_clock_ns(CLOCK_REALTIME);
    nanosleep(&ms100, NULL);
    uint64_t t1 = funcmon__ticks(), m1 = harness_clock_ns(CLOCK_REALTIME);
    int64_t measured = funcmon_clock_since_ref_ns(&clk, t1) - funcmon_clock_since_ref_ns(&clk, t0);
    int64_t truth = (int64_t)(m1 - m0);
    CHECK_LT(llabs(measured - truth), truth / 100 + 200000);

    /* The non-blocking steps, against the control thread now asleep without a timeout (it
     * did not run for a second above): a request posted and not woken stays unanswered. */
    poll_steps(h);

    /* After shutdown nobody answers: the requester is told, not hung. */
    funcmon_shutdown();
    CHECK_EQ(control_thread_switches(), -1); /* the thread is gone */
    CHECK_EQ(funcmon_consumer_control(&c, FUNCMON_CTL_SAMPLE, 200), -ETIMEDOUT);
    funcmon_consumer_close(&c);
    printf("test_control: ok\n");
    return 0;
}
