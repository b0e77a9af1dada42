/*
 * test_sidecar.c - funcmond's loop against real client processes, checked against what
 * the clients did.
 *
 * Cases (argv[1]), each its own ctest test:
 *   e2e       two processes of one service, several threads, known calls, sleeps and
 *             failures: exact counts, durations within the sleep and scheduler slack,
 *             last call time near the wall clock, both processes listed as exited, their
 *             segments removed after the retention time;
 *   kill9     a client killed mid-stream: the count equals what its rings and spill
 *             counters say it published (read from its segment after the kill);
 *   hostile   corrupt and hostile segments beside a good client: rejected or skipped and
 *             counted, the good client's figures exact, the loop still running;
 *   overflow  more functions than MAX_FUNCTIONS: the rest fold into "<overflow>",
 *             counted, with exact totals;
 *   storm     a client that bumps its wake word in a loop without producing: funcmond
 *             answers a bounded number of its wake-ups per drain cycle and keeps serving
 *             a good client meanwhile;
 *   spills    a client's spill counters written in the client's order (the call, then its
 *             error) with funcmond reading in between: every error is counted once the
 *             call it belongs to is, errors never run ahead of calls, and a counter that
 *             goes back adds nothing when it climbs again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "funcmon/consumer.h"
#include "harness.h"
#include "sidecar_harness.h"

static const char *prefix;

static uint64_t
real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static pid_t
client(const char *service, const char *threads, const char *calls, const char *sleep_us, const char *fail_every, int *out)
{
    char *argv[] = {"e2e_client", (char *)threads, (char *)calls, (char *)sleep_us, (char *)fail_every, NULL};
    const char *env[] = {"FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", service, "FUNCMON_RING_RECORDS", "65536", NULL};
    return spawn(E2E_CLIENT, argv, env, out);
}

static int
segment_file_exists(pid_t pid, const char *service)
{
    char path[300];
    snprintf(path, sizeof(path), "/dev/shm/%s.%s.%d", prefix, service, (int)pid);
    return access(path, F_OK) == 0;
}

static int
case_e2e(void)
{
    struct sidecar s;
    struct funcmond_fn_view f;
    unsigned long long c1, e1, c2, e2;
    int o1, o2;
    const char *env[] = {"SIDECAR_EXITED_RETENTION_S=4", "PROFILING_MEMORY_PROFILE_INTERVAL=1", NULL};

    sidecar_start(&s, env);
    /* 3 threads x 100 calls sleeping 2 ms, every 4th failing; and 2 threads x 150. */
    pid_t a = client("svc", "3", "100", "2000", "4", &o1);
    pid_t b = client("svc", "2", "150", "2000", "4", &o2);
    read_done(o1, &c1, &e1);
    read_done(o2, &c2, &e2);
    wait_ok(a);
    wait_ok(b);
    CHECK_EQ(c1, 300);
    CHECK_EQ(c2, 300);
    CHECK_EQ(sidecar_wait_calls(&s, "svc", "e2e", "work", c1 + c2, 10), 0);
    CHECK_EQ(sidecar_wait_calls(&s, "svc", "e2e", "fast", c1 + c2, 10), 0);
    CHECK_EQ(sidecar_function(&s, "svc", "e2e", "work", &f), 0);
    CHECK_EQ(f.errors, e1 + e2);
    CHECK_EQ(f.errors, 75 + 76); /* i % 4 == 0 for 25 of 100 per thread, 38 of 150 */
    CHECK_EQ(f.records, 600);
    CHECK_GE(f.min_ns, 2000000);
    CHECK_LT(f.max_ns, 2000000 + 250000000); /* scheduler slack, generous for sanitizers */
    CHECK_GE(f.p50_ns, 2000000 * 99 / 100);
    CHECK_GE(f.avg_ns, 2000000);
    CHECK_EQ(f.total_ns / f.records, f.avg_ns);
    uint64_t now = real_ns();
    CHECK_LT(now - f.last_real_ns, 1000000000ull);
    CHECK_GT(f.rate_1m, 0);
    CHECK(f.error_rate_1m > 0.24 && f.error_rate_1m < 0.26);
    /* Cumulative buckets never fall, and every call is below the last bound (10 s). */
    for (int i = 1; i < 11; i++)
        CHECK_GE(f.dur_cum[i], f.dur_cum[i - 1]);
    CHECK_EQ(f.dur_cum[10], 600);

    /* Both processes were seen, exited, and their segments go after the retention time. */
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[8];
    int n = 0, exited = 0;
    for (int i = 0; i < 300 && exited < 2; i++) {
        usleep(10000);
        n = sidecar_snapshot(&s, &counters, procs, 8);
        exited = 0;
        for (int k = 0; k < n; k++)
            exited += procs[k].state != FUNCMOND_PROC_LIVE;
    }
    CHECK_EQ(n, 2);
    CHECK_EQ(exited, 2);
    for (int k = 0; k < n; k++) {
        CHECK(procs[k].pid == a || procs[k].pid == b);
        CHECK_STREQ(procs[k].service, "svc");
        CHECK_EQ(procs[k].records, 600); /* each: 300 of "work", 300 of "fast" */
        CHECK_EQ(procs[k].dropped, 0);
    }
    CHECK_EQ(counters.records, 1200);
    CHECK_EQ(counters.dropped, 0);
    CHECK_EQ(counters.bad_records, 0);
    for (int i = 0; i < 500 && (segment_file_exists(a, "svc") || segment_file_exists(b, "svc")); i++)
        usleep(10000);
    CHECK(!segment_file_exists(a, "svc"));
    CHECK(!segment_file_exists(b, "svc"));
    sidecar_stop(&s);
    printf("test_sidecar e2e: ok\n");
    return 0;
}

static int
case_kill9(void)
{
    struct sidecar s;
    struct funcmond_fn_view f;
    const char *env[] = {"SIDECAR_EXITED_RETENTION_S=30", NULL};

    sidecar_start(&s, env);
    /* Calls until killed, 4 threads, no sleep: the rings are busy when the kill lands. */
    pid_t c = client("victim", "4", "0", "0", "3", NULL);
    for (int i = 0; i < 200; i++) {
        if (sidecar_function(&s, "victim", "e2e", "work", &f) == 0 && f.calls > 50000)
            break;
        usleep(10000);
    }
    kill(c, SIGKILL);
    int status;
    CHECK_EQ(waitpid(c, &status, 0), c);
    /* Truth from the segment itself: every published record plus every spilled call. */
    char name[300];
    struct funcmon_consumer seg;
    enum funcmon_invalid why;
    snprintf(name, sizeof(name), "/%s.victim.%d", prefix, (int)c);
    CHECK_EQ(funcmon_consumer_open(&seg, name, &why), 0);
    uint64_t published = 0, spilled = 0, spill_errors = 0;
    struct funcmon_slot_info si;
    for (uint32_t i = 0; i < seg.geo.max_threads; i++) {
        CHECK_EQ(funcmon_consumer_slot(&seg, i, &si), 0);
        published += si.head; /* every ring started at 0; records of both sites */
    }
    uint32_t count = seg.hdr->site_count;
    for (uint32_t id = 2; id < count; id++) {
        uint64_t sc, se;
        funcmon_consumer_spill(&seg, id, &sc, &se);
        spilled += sc;
        spill_errors += se;
    }
    funcmon_consumer_close(&seg);
    CHECK_EQ(sidecar_wait_calls(&s, "victim", "e2e", "work", published + spilled, 10), 0);
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[4];
    int n = 0;
    for (int i = 0; i < 300; i++) {
        n = sidecar_snapshot(&s, &counters, procs, 4);
        if (n == 1 && procs[0].state == FUNCMOND_PROC_EXITED)
            break;
        usleep(10000);
    }
    CHECK_EQ(n, 1);
    CHECK_EQ(procs[0].state, FUNCMOND_PROC_EXITED);
    CHECK_EQ(procs[0].records, published);
    CHECK_EQ(counters.bad_records, 0);
    printf("test_sidecar kill9: %llu records published and %llu spilled before the kill, all counted\n",
           (unsigned long long)published, (unsigned long long)spilled);
    sidecar_stop(&s);
    return 0;
}

/* A segment file with the test's prefix, holding `len` bytes from `data`. */
static void
plant(const char *service, int pid, const void *data, size_t len)
{
    char path[300], tmp[300];
    /* Written under another name and renamed in, so the sidecar sees it whole. */
    snprintf(path, sizeof(path), "/dev/shm/%s.%s.%d", prefix, service, pid);
    snprintf(tmp, sizeof(tmp), "/dev/shm/planting-%s", prefix);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK_GE(fd, 0);
    CHECK_EQ(write(fd, data, len), (ssize_t)len);
    close(fd);
    CHECK_EQ(rename(tmp, path), 0);
}

static int
case_hostile(void)
{
    struct sidecar s;
    unsigned long long calls, errors;
    int out;
    const char *env[] = {"SIDECAR_EXITED_RETENTION_S=30", "SIDECAR_RESCAN_INTERVAL_S=1", NULL};

    /* A real, valid segment to start from: a client that waits before exiting. */
    sidecar_start(&s, env);
    char *argv[] = {"e2e_client", "2", "1000", "0", "5", NULL};
    const char *cenv[] = {"FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", "good", "FUNCMON_RING_RECORDS", "4096", NULL};
    pid_t good = spawn(E2E_CLIENT, argv, cenv, &out);
    read_done(out, &calls, &errors);
    wait_ok(good);
    CHECK_EQ(sidecar_wait_calls(&s, "good", "e2e", "work", calls, 10), 0);

    /* Its bytes, turned hostile in several ways, planted under other names. */
    char src[300];
    snprintf(src, sizeof(src), "/dev/shm/%s.good.%d", prefix, (int)good);
    int fd = open(src, O_RDONLY);
    CHECK_GE(fd, 0);
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    size_t len = (size_t)st.st_size;
    unsigned char *img = malloc(len), *m = malloc(len);
    CHECK(img != NULL && m != NULL);
    CHECK_EQ(pread(fd, img, len, 0), (ssize_t)len);
    close(fd);
    struct funcmon_shm_header *h = (struct funcmon_shm_header *)m;
    int pid_base = 900000; /* no such processes: they count as exited, drained once */
    int rejected_expected = 0;

#define VARIANT(mutation, rejected)                                                                                                \
    do {                                                                                                                           \
        memcpy(m, img, len);                                                                                                       \
        h->pid = ++pid_base;                                                                                                       \
        mutation;                                                                                                                  \
        plant("evil", pid_base, m, len);                                                                                           \
        rejected_expected += (rejected);                                                                                           \
    } while (0)

    VARIANT(h->magic = 0x6e6f74206d616763ull, 1);            /* not funcmon */
    VARIANT(h->major = 77, 1);                               /* future major */
    VARIANT(h->rings_offset = h->segment_size, 1);           /* rings past the end */
    VARIANT(h->slots_offset = h->sites_offset, 1);           /* overlapping regions */
    VARIANT(h->max_threads = 0x7fffffff, 1);                 /* huge counts */
    VARIANT(memset(h->service, 'S', sizeof(h->service)), 1); /* unterminated service */
    VARIANT(h->pid = 1, 1);                                  /* name and header disagree */
    /* Valid headers with hostile contents: skipped record by record, counted. */
    VARIANT(
        {
            struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(m + h->slots_offset);
            slot[0].head += 1000000000ull; /* producer index far ahead */
        },
        0);
    VARIANT(
        {
            struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(m + h->slots_offset);
            struct funcmon_record *r = (struct funcmon_record *)(m + h->rings_offset);
            slot[0].tail = 0; /* replay the first ring: every record with a bad site id */
            for (uint64_t p = 0; p < slot[0].head && p < h->ring_records; p++)
                r[p].site = 0xfffffff0u;
        },
        0);
    VARIANT(
        {
            struct funcmon_site_entry *sites = (struct funcmon_site_entry *)(m + h->sites_offset);
            memset(sites[2].name, 0xff, sizeof(sites[2].name)); /* garbage, unterminated name */
        },
        0);
    plant("evil", ++pid_base, "tiny", 4); /* truncated: pending, then rejected after 10 s */
    plant("evil2", ++pid_base, img, 100); /* truncated below a header */
#undef VARIANT

    /* Wait for the rescan to see them all, and for the pending ones to give up. */
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[16];
    for (int i = 0; i < 1500; i++) {
        sidecar_snapshot(&s, &counters, procs, 16);
        if (counters.segments_rejected >= (uint64_t)rejected_expected + 2)
            break;
        usleep(10000);
    }
    CHECK_EQ(counters.segments_rejected, rejected_expected + 2);
    CHECK_GT(counters.bad_records, 0);
    /* The good client's figures did not move; the loop still serves. */
    struct funcmond_fn_view f;
    CHECK_EQ(sidecar_function(&s, "good", "e2e", "work", &f), 0);
    CHECK_EQ(f.calls, calls);
    CHECK_EQ(f.errors, errors);
    int out2;
    pid_t again = client("good", "1", "10", "0", "0", &out2);
    read_done(out2, &calls, &errors);
    wait_ok(again);
    CHECK_EQ(sidecar_wait_calls(&s, "good", "e2e", "work", 2000 + 10, 10), 0);
    sidecar_stop(&s);
    free(img);
    free(m);
    printf("test_sidecar hostile: %llu segments rejected, %llu bad records skipped\n",
           (unsigned long long)counters.segments_rejected, (unsigned long long)counters.bad_records);
    return 0;
}

static int
case_overflow(void)
{
    struct sidecar s;
    const char *env[] = {"SIDECAR_MAX_FUNCTIONS=3", NULL};
    char *argv1[] = {"e2e_client", "1", "20", "0", "0", "alpha", NULL};
    char *argv2[] = {"e2e_client", "1", "30", "0", "0", "beta", NULL};
    char *argv3[] = {"e2e_client", "1", "40", "0", "0", "gamma", NULL};
    const char *cenv[] = {"FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", "many", NULL};
    unsigned long long calls, errors;
    int out;

    sidecar_start(&s, env);
    /* alpha + fast are two functions; beta is the third; gamma no longer fits. */
    pid_t p = spawn(E2E_CLIENT, argv1, cenv, &out);
    read_done(out, &calls, &errors);
    wait_ok(p);
    CHECK_EQ(sidecar_wait_calls(&s, "many", "e2e", "alpha", 20, 10), 0);
    p = spawn(E2E_CLIENT, argv2, cenv, &out);
    read_done(out, &calls, &errors);
    wait_ok(p);
    CHECK_EQ(sidecar_wait_calls(&s, "many", "e2e", "beta", 30, 10), 0);
    p = spawn(E2E_CLIENT, argv3, cenv, &out);
    read_done(out, &calls, &errors);
    wait_ok(p);
    CHECK_EQ(sidecar_wait_calls(&s, "many", "funcmon", "<overflow>", 40, 10), 0);
    struct funcmond_fn_view f;
    CHECK_NE(sidecar_function(&s, "many", "e2e", "gamma", &f), 0);
    CHECK_EQ(sidecar_wait_calls(&s, "many", "e2e", "fast", 90, 10), 0);
    const struct funcmond_view *v = funcmond_view_begin(s.reader);
    uint64_t folds = v->functions_overflow;
    funcmond_view_end(s.reader);
    CHECK_EQ(folds, 1);
    sidecar_stop(&s);
    printf("test_sidecar overflow: ok\n");
    return 0;
}

/* The child of case_storm: a real client whose segment's wake word it bumps and wakes in a
 * loop for `seconds`, never publishing a record. */
static void
storm(double seconds)
{
    struct funcmon_options o = {0};
    o.shm_prefix = prefix;
    o.service = "storm";
    if (funcmon_init(&o) != 0)
        _exit(3);
    char path[300];
    snprintf(path, sizeof(path), "/dev/shm/%s", funcmon_segment_name());
    int fd = open(path, O_RDWR);
    if (fd < 0)
        _exit(4);
    struct funcmon_shm_header *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (h == MAP_FAILED)
        _exit(5);
    uint64_t end = real_ns() + (uint64_t)(seconds * 1e9);
    while (real_ns() < end) {
        __atomic_fetch_add(&h->wake_word, 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &h->wake_word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
    funcmon_shutdown();
    _exit(0);
}

static int
case_storm(void)
{
    struct sidecar s;
    struct funcmond_counters c0, c1;
    struct funcmond_proc_view procs[4];
    unsigned long long calls, errors;
    int out;

    /* Forked before the sidecar's threads exist, so the child is a plain process. */
    pid_t bad = fork();
    CHECK_GE(bad, 0);
    if (bad == 0)
        storm(4.0);
    sidecar_start(&s, NULL);
    /* Wait until funcmond watches it, then count its wake-ups over a second. */
    int attached = 0;
    for (int i = 0; i < 500 && !attached; i++) {
        attached = sidecar_snapshot(&s, &c0, procs, 4) >= 1;
        usleep(10000);
    }
    CHECK(attached);
    sidecar_snapshot(&s, &c0, procs, 4);
    pid_t good = client("good", "2", "5000", "0", "0", &out);
    usleep(1000000);
    sidecar_snapshot(&s, &c1, procs, 4);
    read_done(out, &calls, &errors);
    wait_ok(good);
    CHECK_EQ(sidecar_wait_calls(&s, "good", "e2e", "work", calls, 10), 0);
    uint64_t wakeups = c1.wakeups - c0.wakeups, cycles = c1.drain_cycles - c0.drain_cycles;
    /* Each drain cycle allows 64 idle wake-ups; the storm makes millions of wake calls. */
    CHECK_GT(wakeups, 0);
    CHECK_LE(wakeups, 65 * (cycles + 2));
    int status;
    CHECK_EQ(waitpid(bad, &status, 0), bad);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    sidecar_stop(&s);
    printf("test_sidecar storm: %llu wake-ups answered in %llu drain cycles\n", (unsigned long long)wakeups,
           (unsigned long long)cycles);
    return 0;
}

/* The child of case_spills: a real client with two sites, "spilled" and "marker", whose
 * ids it writes to `ids`; it stays until `quit` reaches end of file, then shuts down. */
static void
spiller(int ids, int quit)
{
    struct funcmon_options o = {0};
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    o.shm_prefix = prefix;
    o.service = "spiller";
    if (funcmon_init(&o) != 0)
        _exit(3);
    uint32_t id[2] = {funcmon_site("spilled", "e2e"), funcmon_site("marker", "e2e")};
    if (write(ids, id, sizeof(id)) != (ssize_t)sizeof(id))
        _exit(4);
    char c;
    while (read(quit, &c, 1) > 0)
        ;
    funcmon_shutdown();
    _exit(0);
}

/* Waits until the sidecar has looked at the spill counters since they last changed: the
 * marker site's calls, bumped after them, reach `marker`. */
static void
spills_seen(struct sidecar *s, struct funcmon_site_entry *marker_site, uint64_t *marker)
{
    __atomic_fetch_add(&marker_site->spill_calls, 1, __ATOMIC_SEQ_CST);
    CHECK_EQ(sidecar_wait_calls(s, "spiller", "e2e", "marker", ++*marker, 10), 0);
}

/* Expects (calls, errors, client errors) of "spilled", waiting up to 2 s for them. */
static void
spills_expect(struct sidecar *s, uint64_t calls, uint64_t errors, uint64_t client_errors)
{
    struct funcmond_fn_view f = {0};
    for (int i = 0; i < 200; i++) {
        if (sidecar_function(s, "spiller", "e2e", "spilled", &f) == 0 && f.calls == calls && f.errors == errors &&
            f.client_errors == client_errors)
            return;
        usleep(10000);
    }
    fprintf(stderr, "spilled: calls %llu errors %llu client errors %llu; expected %llu %llu %llu\n", (unsigned long long)f.calls,
            (unsigned long long)f.errors, (unsigned long long)f.client_errors, (unsigned long long)calls,
            (unsigned long long)errors, (unsigned long long)client_errors);
    CHECK(0);
}

static int
case_spills(void)
{
    struct sidecar s;
    int ids[2], quit[2];
    uint32_t id[2];
    uint64_t marker = 0;

    /* Forked before the sidecar's threads exist, so the child is a plain process. */
    CHECK_EQ(pipe(ids), 0);
    CHECK_EQ(pipe(quit), 0);
    pid_t c = fork();
    CHECK_GE(c, 0);
    if (c == 0) {
        close(quit[1]);
        spiller(ids[1], quit[0]);
    }
    close(quit[0]);
    CHECK_EQ(read(ids[0], id, sizeof(id)), (ssize_t)sizeof(id));
    CHECK(id[0] >= 2 && id[1] >= 2 && id[0] != id[1]);
    char path[300];
    snprintf(path, sizeof(path), "/dev/shm/%s.spiller.%d", prefix, (int)c);
    int fd = open(path, O_RDWR);
    CHECK_GE(fd, 0);
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    unsigned char *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    close(fd);
    struct funcmon_site_entry *sites = (struct funcmon_site_entry *)(map + ((struct funcmon_shm_header *)map)->sites_offset);
    struct funcmon_site_entry *sp = &sites[id[0]], *mk = &sites[id[1]];

    sidecar_start(&s, NULL);
    /* The client's order: the call first; funcmond reads it before the error comes. */
    __atomic_fetch_add(&sp->spill_calls, 1, __ATOMIC_SEQ_CST);
    CHECK_EQ(sidecar_wait_calls(&s, "spiller", "e2e", "spilled", 1, 10), 0);
    spills_expect(&s, 1, 0, 0);
    __atomic_fetch_add(&sp->spill_errors, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&sp->spill_client_errors, 1, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spills_expect(&s, 1, 1, 1); /* the error of the call already counted */

    /* Errors ahead of calls (a read between the two adds the other way round, or a client
     * that lies): never more errors than calls; the rest waits for its calls. */
    __atomic_fetch_add(&sp->spill_errors, 5, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&sp->spill_client_errors, 2, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spills_expect(&s, 1, 1, 1);
    __atomic_fetch_add(&sp->spill_calls, 3, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spills_expect(&s, 4, 4, 3);
    __atomic_fetch_add(&sp->spill_calls, 10, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spills_expect(&s, 14, 6, 3);

    /* A counter that goes back (a lie: they only grow) adds nothing, also when it climbs
     * back to where it was. */
    __atomic_store_n(&sp->spill_calls, 2, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spills_expect(&s, 14, 6, 3);
    __atomic_store_n(&sp->spill_calls, 15, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spills_expect(&s, 15, 6, 3);

    /* The client's end: its last counts are all there after its shutdown. */
    __atomic_fetch_add(&sp->spill_calls, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&sp->spill_errors, 1, __ATOMIC_SEQ_CST);
    munmap(map, (size_t)st.st_size);
    close(quit[1]);
    int status;
    CHECK_EQ(waitpid(c, &status, 0), c);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    spills_expect(&s, 16, 7, 3);
    sidecar_stop(&s);
    close(ids[0]);
    close(ids[1]);
    printf("test_sidecar spills: every spilled error counted with its call\n");
    return 0;
}

int
main(int argc, char **argv)
{
    prefix = harness_private_prefix();
    if (argc != 2)
        return 2;
    alarm(120);
    if (strcmp(argv[1], "e2e") == 0)
        return case_e2e();
    if (strcmp(argv[1], "kill9") == 0)
        return case_kill9();
    if (strcmp(argv[1], "hostile") == 0)
        return case_hostile();
    if (strcmp(argv[1], "overflow") == 0)
        return case_overflow();
    if (strcmp(argv[1], "storm") == 0)
        return case_storm();
    if (strcmp(argv[1], "spills") == 0)
        return case_spills();
    return 2;
}
