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
 *   stormwake the same with FUTEX_WAKE calls on a wake word left unchanged: each wake-up
 *             is answered (as a FUTEX_WAIT woken by a wake), within the same budget;
 *   flip      a file under the prefix whose size flips between 0 and 64 KiB while funcmond
 *             looks at it: no SIGBUS, a good client counted exactly meanwhile;
 *   guardfull the table of guarded mappings (lowered to 3) full of retained exited
 *             segments, then of live clients: a new client waits, keeps its segment, and
 *             once room comes back is attached and counted exactly, never as rejected;
 *   fds       live clients cost funcmond at most one long-lived fd each, /proc figures
 *             still read; a client met while funcmond is out of fds is attached later,
 *             one met with a single fd to spare is not taken for exited;
 *   dropped   a client's drop counters that fall or jump past what a ring could drop are
 *             not believed: the counted drops stay at the believable ones;
 *   rejectlog more rejected files than funcmond remembers: each counted and logged once,
 *             however many rescans;
 *   idletick  no client: the tick stretches while idle only where a wake-up could
 *             come, i.e. not where futex waits are off;
 *   crowd     100 live clients attached when the loop stops: every one freed at close,
 *             the table of guarded mappings back to what it was;
 *   leftover  no segment left once client and funcmond have both stopped, whichever
 *             stops first;
 *   special   a FIFO under the prefix is rejected without being opened;
 *   spills    a client's spill counters written in the client's order (the call, then its
 *             error) with funcmond reading in between: every error is counted once the
 *             call it belongs to is, errors never run ahead of calls, and a counter that
 *             goes back adds nothing when it climbs again;
 *   reattach  with a state file, an exited client's segment let go but its file back
 *             (as when the removal failed) and attached again in the same run: its calls
 *             are not counted again, nor as lost;
 *   carry     with a state file, a live client whose segment waits for room during a
 *             whole run (the guard table lowered to 1): the state file of that run still
 *             holds what was counted from it, so the next run counts none of it as lost;
 *   spilltime a client's spilled durations (ticks and coarse buckets) written into its
 *             segment: counted as dropped, the total exact, quantiles within 20.5%, a
 *             bucket ahead of its call or behind it credited once, bucket counters that
 *             wrap past 2^32, and a restart with a state file counting nothing twice;
 *   spillclient threads beyond FUNCMON_MAX_THREADS make calls that leave no record: each
 *             is in dropped_count, and the total duration is within 1% of what the
 *             client timed from outside (skipped while the client does not time them).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <dirent.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
    const char *env[] = {"FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", service, "FUNCMON_POOL_RECORDS", "1048576", NULL};
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

/* Rewinds every slot of a copied segment image to the start of its chain, so a reader
 * reads its records again. A drained slot's chunks went back to the pool, but a chunk's
 * header still names its slot and first position until it is taken again: the chain's
 * first chunk is the one of the slot starting at 0. Rewinds at most `max` slots; returns
 * the chunk found for the first slot rewound (index + 1), 0 if none. */
static uint32_t
rewind_slots(unsigned char *img, uint32_t max)
{
    struct funcmon_shm_header *h = (struct funcmon_shm_header *)img;
    struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(img + h->slots_offset);
    struct funcmon_chunk *ch = (struct funcmon_chunk *)(img + h->chunks_offset);
    uint32_t found = 0, rewound = 0;
    for (uint32_t i = 0; i < h->max_threads && rewound < max; i++) {
        if (slot[i].head == 0)
            continue;
        for (uint32_t k = 0; k < h->pool_chunks; k++) {
            if (ch[k].slot == i && ch[k].first == 0) {
                slot[i].tail = 0;
                slot[i].tail_chunk = 0;
                slot[i].first_chunk = k + 1;
                found = found != 0 ? found : k + 1;
                rewound++;
                break;
            }
        }
    }
    return found;
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
    const char *cenv[] = {"FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", "good", "FUNCMON_POOL_RECORDS", "8192", NULL};
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
    VARIANT(h->records_offset = h->segment_size, 1);         /* records past the end */
    VARIANT(h->slots_offset = h->sites_offset, 1);           /* overlapping regions */
    VARIANT(h->max_threads = 0x7fffffff, 1);                 /* huge counts */
    VARIANT(memset(h->service, 'S', sizeof(h->service)), 1); /* unterminated service */
    VARIANT(h->pid = 1, 1);                                  /* name and header disagree */
    int disagree = pid_base;
    /* Valid headers with hostile contents: skipped record by record, counted. */
    VARIANT(
        {
            struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(m + h->slots_offset);
            slot[0].head += 1000000000ull; /* producer index far ahead */
        },
        0);
    VARIANT(
        {
            /* Replay a thread's first chunk (and no more), every record with a bad site id. */
            struct funcmon_record *r = (struct funcmon_record *)(m + h->records_offset);
            struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(m + h->slots_offset);
            uint32_t first = rewind_slots(m, 1);
            CHECK_NE(first, 0);
            for (uint32_t i = 0; i < h->max_threads; i++)
                if (slot[i].first_chunk == first && slot[i].head > h->chunk_records)
                    slot[i].head = h->chunk_records;
            for (uint32_t k = 0; k < h->chunk_records; k++)
                r[(uint64_t)(first - 1) * h->chunk_records + k].site = 0xfffffff0u;
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
    /* Rejected after it was mapped: it must not claim a consumer, or its client (were it
     * one) would leave it to funcmond, and nobody would ever remove it. */
    char evil[300];
    struct funcmon_shm_header eh;
    snprintf(evil, sizeof(evil), "/dev/shm/%s.evil.%d", prefix, disagree);
    fd = open(evil, O_RDONLY);
    CHECK_GE(fd, 0);
    CHECK_EQ(pread(fd, &eh, sizeof(eh), 0), (ssize_t)sizeof(eh));
    close(fd);
    CHECK_EQ(eh.consumer_pid, 0);
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

/* The child of case_storm: a real client whose segment's wake word it bumps (or leaves as
 * it is, with `bump` 0) and wakes in a loop for `seconds`, never publishing a record. */
static void
storm(double seconds, int bump)
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
        if (bump)
            __atomic_fetch_add(&h->wake_word, 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &h->wake_word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
    funcmon_shutdown();
    _exit(0);
}

static int
case_storm(int bump)
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
        storm(4.0, bump);
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
    printf("test_sidecar %s: %llu wake-ups answered in %llu drain cycles\n", bump ? "storm" : "stormwake",
           (unsigned long long)wakeups, (unsigned long long)cycles);
    return 0;
}

/* Counts the counters' field until it reaches `want` or `seconds` pass; returns the last. */
static uint64_t
wait_counter(struct sidecar *s, size_t offset, uint64_t want, int seconds)
{
    struct funcmond_counters c;
    struct funcmond_proc_view procs[1];
    uint64_t v = 0;
    for (int i = 0; i < seconds * 100; i++) {
        sidecar_snapshot(s, &c, procs, 1);
        memcpy(&v, (const char *)&c + offset, sizeof(v));
        if (v >= want)
            break;
        usleep(10000);
    }
    return v;
}
#define WAIT_COUNTER(s, field, want, seconds) wait_counter(s, offsetof(struct funcmond_counters, field), want, seconds)

/* Waits until `want` processes are listed with `live` of them live; returns 0 if so. */
static int
wait_procs(struct sidecar *s, int want, int live, int seconds)
{
    struct funcmond_counters c;
    struct funcmond_proc_view procs[64];
    int n = 0, l = 0;
    for (int i = 0; i < seconds * 100; i++) {
        n = sidecar_snapshot(s, &c, procs, 64);
        l = 0;
        for (int k = 0; k < n; k++)
            l += procs[k].state == FUNCMOND_PROC_LIVE;
        if (n == want && l == live)
            return 0;
        usleep(10000);
    }
    fprintf(stderr, "%d processes listed, %d live; expected %d, %d live\n", n, l, want, live);
    return -1;
}

static int
case_flip(void)
{
    struct sidecar s;
    unsigned long long calls, errors;
    int out;
    char path[300];
    const char *env[] = {"SIDECAR_RESCAN_INTERVAL_S=1", NULL};

    snprintf(path, sizeof(path), "/dev/shm/%s.flip.%d", prefix, 999999);
    /* Forked before the sidecar's threads exist: it only flips the file's size. */
    pid_t flipper = fork();
    CHECK_GE(flipper, 0);
    if (flipper == 0) {
        int fd = open(path, O_RDWR | O_CREAT, 0600);
        if (fd < 0)
            _exit(3);
        uint64_t end = real_ns() + 4000000000ull;
        while (real_ns() < end)
            if (ftruncate(fd, 65536) != 0 || ftruncate(fd, 0) != 0)
                _exit(4);
        _exit(0);
    }
    sidecar_start(&s, env);
    pid_t good = client("good", "2", "500", "0", "0", &out);
    read_done(out, &calls, &errors);
    wait_ok(good);
    CHECK_EQ(sidecar_wait_calls(&s, "good", "e2e", "work", calls, 10), 0);
    wait_ok(flipper); /* funcmond looked at the flipping file for the whole 4 s */
    CHECK_EQ(sidecar_wait_calls(&s, "good", "e2e", "work", calls, 1), 0);
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[4];
    CHECK_EQ(sidecar_snapshot(&s, &counters, procs, 4), 1);
    CHECK_EQ(counters.bad_records, 0);
    sidecar_stop(&s);
    unlink(path);
    printf("test_sidecar flip: funcmond survived 4 s of a file flipping between 0 and 64 KiB\n");
    return 0;
}

/* A copy of the segment file of (service, pid); *len its size. */
static unsigned char *
copy_segment(const char *service, pid_t pid, size_t *len)
{
    char src[300];
    struct stat st;
    snprintf(src, sizeof(src), "/dev/shm/%s.%s.%d", prefix, service, (int)pid);
    int fd = open(src, O_RDONLY);
    CHECK_GE(fd, 0);
    CHECK_EQ(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    unsigned char *img = malloc(*len);
    CHECK(img != NULL);
    CHECK_EQ(pread(fd, img, *len, 0), (ssize_t)*len);
    close(fd);
    return img;
}

static int
case_guardfull(void)
{
    struct sidecar s;
    unsigned long long calls, errors, c2, e2;
    int out, out2;
    const char *env[] = {"SIDECAR_EXITED_RETENTION_S=60", "SIDECAR_RESCAN_INTERVAL_S=1", NULL};

    funcmon_consumer_guard_limit(3);
    sidecar_start(&s, env);
    /* A real segment, exited and retained: one entry. Two copies under pids that do not
     * exist (exited, retained): the table is full. */
    pid_t first = client("first", "1", "10", "0", "0", &out);
    read_done(out, &calls, &errors);
    wait_ok(first);
    CHECK_EQ(sidecar_wait_calls(&s, "first", "e2e", "work", 10, 10), 0);
    size_t len;
    unsigned char *img = copy_segment("first", first, &len);
    struct funcmon_shm_header *h = (struct funcmon_shm_header *)img;
    CHECK_NE(rewind_slots(img, h->max_threads), 0); /* the copies' records are read again */
    for (int k = 1; k <= 2; k++) {
        h->pid = 900000 + k;
        plant("first", h->pid, img, len);
    }
    free(img);
    CHECK_EQ(wait_procs(&s, 3, 0, 10), 0);
    CHECK_EQ(sidecar_wait_calls(&s, "first", "e2e", "work", 30, 10), 0);

    /* A new client while the table is full of exited segments: one of them goes early. */
    pid_t a = client("late", "2", "300", "0", "0", &out);
    read_done(out, &calls, &errors);
    wait_ok(a);
    CHECK_EQ(sidecar_wait_calls(&s, "late", "e2e", "work", calls, 10), 0);

    /* The table full of live clients: a new one waits, and keeps its segment meanwhile. */
    pid_t live[3];
    int lout[3];
    for (int k = 0; k < 3; k++)
        live[k] = client("busy", "1", "0", "1000", "0", &lout[k]);
    CHECK_EQ(wait_procs(&s, 3, 3, 10), 0);
    pid_t b = client("waiting", "2", "400", "0", "0", &out2);
    read_done(out2, &c2, &e2);
    wait_ok(b);
    usleep(500000);
    struct funcmond_fn_view f;
    CHECK_NE(sidecar_function(&s, "waiting", "e2e", "work", &f), 0); /* not attached yet */
    CHECK(segment_file_exists(b, "waiting"));
    /* Room comes back when a live client exits: the waiting one is attached, exactly. */
    kill(live[0], SIGTERM);
    read_done(lout[0], &calls, &errors);
    wait_ok(live[0]);
    CHECK_EQ(sidecar_wait_calls(&s, "waiting", "e2e", "work", c2, 10), 0);
    CHECK_EQ(sidecar_wait_calls(&s, "waiting", "e2e", "fast", c2, 1), 0);
    for (int k = 1; k < 3; k++) {
        kill(live[k], SIGTERM);
        read_done(lout[k], &calls, &errors);
        wait_ok(live[k]);
    }
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[8];
    sidecar_snapshot(&s, &counters, procs, 8);
    CHECK_EQ(counters.segments_rejected, 0);
    CHECK_GE(counters.segments_deferred, 1); /* "waiting" at least (a "busy" one may wait a tick for room too) */
    sidecar_stop(&s);
    funcmon_consumer_guard_limit(0);
    for (int i = 0; i < 100 && segment_file_exists(b, "waiting"); i++)
        usleep(10000);
    CHECK(!segment_file_exists(b, "waiting"));
    printf("test_sidecar guardfull: %llu calls of a client that waited for room, all counted\n", c2);
    return 0;
}

static int
count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;
    CHECK(dir != NULL);
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n - 1; /* the directory's own */
}

/* The fewest of a few looks at count_fds: funcmond's own short-lived fds (a /proc file
 * being read, a rescan) are not what is counted. */
static int
fewest_fds(void)
{
    int fewest = count_fds();
    for (int i = 0; i < 10; i++) {
        usleep(20000);
        int n = count_fds();
        fewest = n < fewest ? n : fewest;
    }
    return fewest;
}

/* This process, funcmond, short of fds: a limit on fd numbers, with every free number
 * below it filled, so that exactly `spare` more can be opened. */
struct starve {
    struct rlimit full;
    int fillers[256];
    int n;
};

static void
starve_begin(struct starve *st, int spare)
{
    int highest = 0;
    DIR *dir = opendir("/proc/self/fd");
    CHECK(dir != NULL);
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (e->d_name[0] != '.' && atoi(e->d_name) > highest)
            highest = atoi(e->d_name);
    closedir(dir);
    st->n = 0;
    for (;;) { /* the holes below the highest fd */
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK_GE(fd, 0);
        if (fd > highest) {
            close(fd);
            break;
        }
        CHECK_LT(st->n, 256);
        st->fillers[st->n++] = fd;
    }
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &st->full), 0);
    struct rlimit low = st->full;
    low.rlim_cur = (rlim_t)(highest + 1 + spare);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    /* The premise: exactly `spare` fds can be opened now. */
    int probe[2] = {-1, -1};
    for (int k = 0; k <= spare; k++)
        probe[k] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int k = 0; k <= spare; k++)
        if (probe[k] >= 0)
            close(probe[k]);
    CHECK_EQ(probe[spare], -1);
    CHECK(spare == 0 || probe[0] >= 0);
}

static void
starve_end(struct starve *st)
{
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &st->full), 0);
    for (int k = 0; k < st->n; k++)
        close(st->fillers[k]);
}

/* Starts e2e_client (argv) as `service` with the full fd limit; stdout to the pipe `fds`. */
static pid_t
spawn_full(char **argv, const char *service, const struct rlimit *full, const int fds[2])
{
    pid_t c = fork();
    CHECK_GE(c, 0);
    if (c == 0) {
        setrlimit(RLIMIT_NOFILE, full);
        dup2(fds[1], 1);
        close(fds[0]);
        setenv("FUNCMON_SHM_PREFIX", prefix, 1);
        setenv("FUNCMON_SERVICE", service, 1);
        execv(E2E_CLIENT, argv);
        _exit(127);
    }
    return c;
}

static int
case_fds(void)
{
    struct sidecar s;
    unsigned long long calls, errors;
    enum { N = 8 };
    pid_t live[N];
    int lout[N];
    const char *env[] = {"SIDECAR_RESCAN_INTERVAL_S=60", NULL};

    sidecar_start(&s, env);
    usleep(100000);
    int before = fewest_fds();
    for (int k = 0; k < N; k++)
        live[k] = client("idle", "1", "0", "2000", "0", &lout[k]);
    CHECK_EQ(wait_procs(&s, N, N, 10), 0);
    usleep(1500000); /* a /proc read is due every second */
    int after = fewest_fds();
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[N];
    CHECK_EQ(sidecar_snapshot(&s, &counters, procs, N), N);
    for (int k = 0; k < N; k++) {
        CHECK_GE(procs[k].rt.threads, 1); /* /proc figures are still read */
        CHECK_GT(procs[k].rt.rss_bytes, 0);
        CHECK_NE(procs[k].rt.state, 0);
    }
    /* N pipes of ours, and at most one fd per client in funcmond. */
    fprintf(stderr, "fds: %d before, %d with %d clients\n", before, after, N);
    CHECK_LE(after - before, N + N);
    for (int k = 0; k < N; k++) {
        kill(live[k], SIGTERM);
        read_done(lout[k], &calls, &errors);
        wait_ok(live[k]);
    }
    CHECK_EQ(wait_procs(&s, N, 0, 10), 0); /* every exit seen */

    /* Out of fds when a client appears: it is attached once fds are back, not rejected. */
    struct starve st;
    unsigned long long made, failed;
    int pipefd[2];
    char *argv1[] = {"e2e_client", "1", "200", "0", "0", NULL};
    CHECK_EQ(pipe(pipefd), 0);
    sidecar_snapshot(&s, &counters, procs, N);
    uint64_t deferred = counters.segments_deferred;
    starve_begin(&st, 0);
    pid_t c = spawn_full(argv1, "starved", &st.full, pipefd);
    for (int i = 0; i < 500 && !segment_file_exists(c, "starved"); i++)
        usleep(10000);
    usleep(200000); /* funcmond meets it now, without fds */
    starve_end(&st);
    close(pipefd[1]);
    read_done(pipefd[0], &made, &failed);
    wait_ok(c);
    CHECK_EQ(sidecar_wait_calls(&s, "starved", "e2e", "work", 200, 10), 0);
    sidecar_snapshot(&s, &counters, procs, N);
    CHECK_GT(counters.segments_deferred, deferred); /* it did wait: the case was met */
    /* One fd to spare: enough to map the segment, not to read /proc while the pidfd is
     * held. The client still runs, and every call it makes is counted. */
    char *argv2[] = {"e2e_client", "1", "0", "1000", "0", NULL};
    CHECK_EQ(pipe(pipefd), 0);
    starve_begin(&st, 1);
    c = spawn_full(argv2, "scarce", &st.full, pipefd);
    usleep(500000);
    starve_end(&st);
    close(pipefd[1]);
    usleep(1200000);
    kill(c, SIGTERM);
    read_done(pipefd[0], &made, &failed);
    wait_ok(c);
    CHECK_EQ(sidecar_wait_calls(&s, "scarce", "e2e", "work", made, 10), 0);
    sidecar_snapshot(&s, &counters, procs, N);
    CHECK_EQ(counters.segments_rejected, 0);
    sidecar_stop(&s);
    printf("test_sidecar fds: %d fds for %d live clients; clients met without fds counted\n", after - before - N, N);
    return 0;
}

/* The child of case_dropped: a real client that writes into its own slot 0's drop counter
 * each value read from fd `cmd`, until end of file. */
static void
liar(int cmd)
{
    struct funcmon_options o = {0};
    o.shm_prefix = prefix;
    o.service = "liar";
    if (funcmon_init(&o) != 0)
        _exit(3);
    /* One call: this thread claims slot 0 (the first claim), whose counter it then sets. */
    struct funcmon_call call = funcmon_begin(FUNCMON_SITE("liar", "e2e"));
    funcmon_end(&call, 0);
    char path[300];
    snprintf(path, sizeof(path), "/dev/shm/%s", funcmon_segment_name());
    int fd = open(path, O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        _exit(4);
    unsigned char *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        _exit(5);
    struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(m + ((struct funcmon_shm_header *)m)->slots_offset);
    uint64_t v;
    while (read(cmd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        __atomic_store_n(&slot[0].dropped, v, __ATOMIC_RELAXED);
    funcmon_shutdown();
    _exit(0);
}

static int
case_dropped(void)
{
    struct sidecar s;
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[4];
    int cmd[2];
    const char *env[] = {"SIDECAR_EXITED_RETENTION_S=60", "SIDECAR_RESCAN_INTERVAL_S=1", NULL};

    CHECK_EQ(pipe(cmd), 0);
    pid_t c = fork(); /* before the sidecar's threads */
    CHECK_GE(c, 0);
    if (c == 0) {
        close(cmd[1]);
        liar(cmd[0]);
    }
    close(cmd[0]);
    sidecar_start(&s, env);
    CHECK_EQ(wait_procs(&s, 1, 1, 10), 0);
    /* Believable: 500 drops over the life of a process older than 500 ns. */
    uint64_t v = 500;
    CHECK_EQ(write(cmd[1], &v, sizeof(v)), (ssize_t)sizeof(v));
    CHECK_EQ(WAIT_COUNTER(&s, dropped, 500, 10), 500);
    /* A counter that falls, then jumps by 2^62: neither is believed. */
    v = 100;
    CHECK_EQ(write(cmd[1], &v, sizeof(v)), (ssize_t)sizeof(v));
    usleep(2000000); /* an idle ring is read on full passes, and an idle view published each second */
    v = 1ull << 62;
    CHECK_EQ(write(cmd[1], &v, sizeof(v)), (ssize_t)sizeof(v));
    usleep(2000000);
    CHECK_EQ(sidecar_snapshot(&s, &counters, procs, 4), 1);
    CHECK_EQ(counters.dropped, 500);
    CHECK_EQ(procs[0].dropped, 500);

    /* An exited copy claiming 2^64 - 8 drops on one ring: at most what a ring could drop in
     * the time the machine has been up (one record per nanosecond, far above any real rate). */
    size_t len;
    unsigned char *img = copy_segment("liar", c, &len);
    struct funcmon_shm_header *h = (struct funcmon_shm_header *)img;
    struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(img + h->slots_offset);
    slot[0].dropped = 0;
    slot[1].dropped = UINT64_MAX - 7;
    h->pid = 900777;
    plant("liar", h->pid, img, len);
    free(img);
    CHECK_EQ(wait_procs(&s, 2, 1, 10), 0);
    usleep(100000);
    int n = sidecar_snapshot(&s, &counters, procs, 4);
    uint64_t sum = 0;
    for (int k = 0; k < n; k++)
        sum += procs[k].dropped;
    fprintf(stderr, "dropped: %llu counted, %llu ns since boot\n", (unsigned long long)counters.dropped,
            (unsigned long long)harness_clock_ns(CLOCK_BOOTTIME));
    CHECK_EQ(sum, counters.dropped);
    CHECK_LE(counters.dropped - 500, harness_clock_ns(CLOCK_BOOTTIME));
    close(cmd[1]);
    wait_ok(c);
    sidecar_stop(&s);
    printf("test_sidecar dropped: lying drop counters not believed (%llu counted)\n", (unsigned long long)counters.dropped);
    return 0;
}

static int
case_rejectlog(void)
{
    struct sidecar s;
    enum { N = 4200 };
    const char *env[] = {"SIDECAR_RESCAN_INTERVAL_S=1", NULL};
    char path[300], logpath[300];

    /* funcmond's log lines go to a file for the length of the run. */
    snprintf(logpath, sizeof(logpath), "/tmp/%s.log", prefix);
    int logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK_GE(logfd, 0);
    int saved = dup(2);
    CHECK_EQ(dup2(logfd, 2), 2);
    sidecar_start(&s, env);
    /* A segment of the first protocol (major 1), as an older client library writes it:
     * rejected with a line naming both versions. */
    struct funcmon_shm_header old;
    memset(&old, 0, sizeof(old));
    old.magic = FUNCMON_SHM_MAGIC;
    old.major = 1;
    old.minor = 1;
    plant("old", 799999, &old, sizeof(old));
    CHECK_EQ(WAIT_COUNTER(&s, segments_rejected, 1, 10), 1);
    /* Sparse files larger than any segment: each one rejected, none costing memory. */
    for (int k = 0; k < N; k++) {
        snprintf(path, sizeof(path), "/dev/shm/%s.big.%d", prefix, 800000 + k);
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
        CHECK_GE(fd, 0);
        CHECK_EQ(ftruncate(fd, (off_t)FUNCMON_SEGMENT_SIZE_MAX + 4096), 0);
        close(fd);
    }
    uint64_t rejected = WAIT_COUNTER(&s, segments_rejected, N + 1, 30);
    usleep(3500000); /* three rescans */
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[1];
    sidecar_snapshot(&s, &counters, procs, 1);
    sidecar_stop(&s);
    dup2(saved, 2);
    close(saved);
    struct stat st;
    CHECK_EQ(fstat(logfd, &st), 0);
    char *log = malloc((size_t)st.st_size + 1);
    CHECK(log != NULL);
    CHECK_EQ(pread(logfd, log, (size_t)st.st_size, 0), (ssize_t)st.st_size);
    log[st.st_size] = '\0';
    size_t lines = 0;
    unsigned long long summed = 0, more;
    for (char *q = log; (q = strstr(q, "rejected segment")) != NULL; q++)
        lines++;
    CHECK(strstr(log, ".old.799999: protocol major version 1, this funcmond reads major 2") != NULL);
    /* Lines left out are summed up: "<n> more segment rejections or waits not logged". */
    for (char *q = log; (q = strstr(q, " more segment rejections")) != NULL; q++) {
        char *num = q;
        while (num > log && num[-1] >= '0' && num[-1] <= '9')
            num--;
        CHECK_EQ(sscanf(num, "%llu", &more), 1);
        summed += more;
    }
    free(log);
    close(logfd);
    unlink(logpath);
    fprintf(stderr, "rejectlog: %d files, %llu rejections counted (%llu before the rescans), %zu lines logged, %llu summed\n", N,
            (unsigned long long)counters.segments_rejected, (unsigned long long)rejected, lines, summed);
    CHECK_EQ(counters.segments_rejected, N + 1); /* and the old one */
    CHECK_LE(lines, N + 1);
    CHECK_EQ(lines + summed, N + 1); /* each rejection logged once, or summed up once */
    printf("test_sidecar rejectlog: %d rejected files counted once, %zu lines logged\n", N, lines);
    return 0;
}

/* Stops the clients of case_leftover one by one, 4 ms apart, while funcmond stops. */
#define TOGETHER 10
static pid_t together[TOGETHER];

static void *
stop_clients(void *arg)
{
    (void)arg;
    for (int k = 0; k < TOGETHER; k++) {
        kill(together[k], SIGTERM);
        usleep(4000);
    }
    return NULL;
}

/* No client: after QUIET_TICKS quiet ticks the timer stretches IDLE_TICK_FACTOR (4) times,
 * since a client's wake-up would wake the loop anyway; where futex waits are off nothing
 * can, so it keeps to the interval (the log line promises the next tick). */
static int
case_idletick(void)
{
    struct sidecar s;
    struct funcmond_counters c0, c1;
    struct funcmond_proc_view procs[1];
    const char *env[] = {"SIDECAR_DRAIN_INTERVAL_MS=50", NULL};

    sidecar_start(&s, env);
    /* Off only where futex_waitv is refused too (the harness checks the loop says so). */
    const char *refused = getenv("FUNCMON_TEST_REFUSE_IO_URING");
    int futex_waits = refused == NULL || strcmp(refused, "futex_waitv") != 0;
    usleep(1000000); /* past the quiet ticks */
    sidecar_snapshot(&s, &c0, procs, 1);
    usleep(2000000);
    sidecar_snapshot(&s, &c1, procs, 1);
    sidecar_stop(&s);
    uint64_t cycles = c1.drain_cycles - c0.drain_cycles;
    printf("test_sidecar idletick: %llu drain cycles in 2 s at 50 ms, futex waits %s\n", (unsigned long long)cycles,
           futex_waits ? "on" : "off");
    if (futex_waits)
        CHECK_LE(cycles, 25); /* 10 at 200 ms */
    else
        CHECK_GE(cycles, 25); /* 40 at 50 ms */
    return 0;
}

/* Many live clients attached when the loop stops: every process is freed at close, its
 * guarded mapping with it, so that starting and stopping again in one process does not
 * eat the table. */
#define CROWD 100
static int
case_crowd(void)
{
    struct sidecar s;
    pid_t pids[CROWD];
    int outs[CROWD];
    unsigned long long calls, errors;
    unsigned room0 = funcmon_consumer_guard_room(), room = room0;
    /* Idle clients with small pools: a hundred default segments would fill /dev/shm. */
    char *argv[] = {"e2e_client", "1", "0", "1000", "0", NULL};
    const char *env[] = {
        "FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", "crowd", "FUNCMON_POOL_RECORDS", "4096", "FUNCMON_MAX_THREADS", "4", NULL};

    CHECK_GE(room0, CROWD);
    sidecar_start(&s, NULL);
    for (int k = 0; k < CROWD; k++)
        pids[k] = spawn(E2E_CLIENT, argv, env, &outs[k]);
    for (int i = 0; i < 3000 && room != room0 - CROWD; i++) {
        usleep(10000);
        room = funcmon_consumer_guard_room();
    }
    CHECK_EQ(room, room0 - CROWD);
    sidecar_stop(&s);
    room = funcmon_consumer_guard_room();
    for (int k = 0; k < CROWD; k++) {
        kill(pids[k], SIGTERM);
        read_done(outs[k], &calls, &errors);
        wait_ok(pids[k]);
    }
    CHECK_EQ(room, room0);
    printf("test_sidecar crowd: %d clients attached at stop, all %u guard entries back\n", CROWD, room0);
    return 0;
}

static int
case_leftover(void)
{
    struct sidecar s;
    unsigned long long calls, errors;
    int out;
    const char *env[] = {"SIDECAR_EXITED_RETENTION_S=60", NULL};

    /* The client stops first, funcmond within the retention time. */
    sidecar_start(&s, env);
    pid_t a = client("left", "2", "100", "0", "0", &out);
    read_done(out, &calls, &errors);
    wait_ok(a);
    CHECK_EQ(sidecar_wait_calls(&s, "left", "e2e", "work", calls, 10), 0);
    CHECK_EQ(wait_procs(&s, 1, 0, 10), 0);
    sidecar_stop(&s);
    CHECK(!segment_file_exists(a, "left"));

    /* funcmond stops first, then the client. */
    sidecar_start(&s, env);
    pid_t b = client("right", "1", "0", "1000", "0", &out);
    CHECK_EQ(wait_procs(&s, 1, 1, 10), 0);
    sidecar_stop(&s);
    CHECK(segment_file_exists(b, "right")); /* live: kept for the next run */
    kill(b, SIGTERM);
    read_done(out, &calls, &errors);
    wait_ok(b);
    CHECK(!segment_file_exists(b, "right"));

    /* Both at once, as when a pod goes: clients exit before, while and after funcmond
     * stops; none may leave its segment to a funcmond that no longer reads it. */
    int outs[TOGETHER];
    sidecar_start(&s, env);
    for (int k = 0; k < TOGETHER; k++)
        together[k] = client("both", "1", "0", "1000", "0", &outs[k]);
    CHECK_EQ(wait_procs(&s, TOGETHER, TOGETHER, 10), 0);
    pthread_t stopper;
    CHECK_EQ(pthread_create(&stopper, NULL, stop_clients, NULL), 0);
    usleep(12000);
    sidecar_stop(&s);
    CHECK_EQ(pthread_join(stopper, NULL), 0);
    for (int k = 0; k < TOGETHER; k++) {
        read_done(outs[k], &calls, &errors);
        wait_ok(together[k]);
    }
    int left = 0;
    for (int k = 0; k < TOGETHER; k++)
        left += segment_file_exists(together[k], "both");
    CHECK_EQ(left, 0);
    CHECK_EQ(harness_remove_segments(prefix), 0);
    printf("test_sidecar leftover: no segment left behind\n");
    return 0;
}

static int
case_special(void)
{
    struct sidecar s;
    char path[300];
    const char *env[] = {"SIDECAR_RESCAN_INTERVAL_S=1", NULL};

    snprintf(path, sizeof(path), "/dev/shm/%s.fifo.%d", prefix, 900555);
    CHECK_EQ(mkfifo(path, 0600), 0);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    CHECK_GE(in, 0);
    CHECK_GE(inotify_add_watch(in, path, IN_OPEN), 0);
    sidecar_start(&s, env);
    CHECK_EQ(WAIT_COUNTER(&s, segments_rejected, 1, 10), 1);
    usleep(1500000); /* a rescan too */
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[1];
    sidecar_snapshot(&s, &counters, procs, 1);
    sidecar_stop(&s);
    char buf[4096];
    ssize_t got = read(in, buf, sizeof(buf));
    int opens = 0;
    for (ssize_t off = 0; got > 0 && off + (ssize_t)sizeof(struct inotify_event) <= got;) {
        const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
        opens += (ev->mask & IN_OPEN) != 0;
        off += (ssize_t)sizeof(*ev) + ev->len;
    }
    close(in);
    unlink(path);
    CHECK_EQ(counters.segments_rejected, 1);
    CHECK_EQ(opens, 0);
    printf("test_sidecar special: a FIFO rejected without being opened\n");
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

/* Forks a spiller (before the sidecar's threads exist, so the child is a plain process):
 * its pid in *c, its sites ("spilled", "marker") in id[], the pipe that stops it at end of
 * file in *quit_out. Returns its segment, mapped (*len bytes). */
static unsigned char *
start_spiller(pid_t *c, uint32_t id[2], int *quit_out, size_t *len)
{
    int ids[2], quit[2];
    CHECK_EQ(pipe(ids), 0);
    CHECK_EQ(pipe(quit), 0);
    *c = fork();
    CHECK_GE(*c, 0);
    if (*c == 0) {
        close(quit[1]);
        spiller(ids[1], quit[0]);
    }
    close(quit[0]);
    CHECK_EQ(read(ids[0], id, 2 * sizeof(id[0])), (ssize_t)(2 * sizeof(id[0])));
    close(ids[0]);
    close(ids[1]);
    CHECK(id[0] >= 2 && id[1] >= 2 && id[0] != id[1]);
    char path[300];
    snprintf(path, sizeof(path), "/dev/shm/%s.spiller.%d", prefix, (int)*c);
    int fd = open(path, O_RDWR);
    CHECK_GE(fd, 0);
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    unsigned char *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    close(fd);
    *quit_out = quit[1];
    *len = (size_t)st.st_size;
    return map;
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
    int quit;
    uint32_t id[2];
    uint64_t marker = 0;
    pid_t c;
    size_t len;

    unsigned char *map = start_spiller(&c, id, &quit, &len);
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
    munmap(map, len);
    close(quit);
    int status;
    CHECK_EQ(waitpid(c, &status, 0), c);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    spills_expect(&s, 16, 7, 3);
    sidecar_stop(&s);
    printf("test_sidecar spills: every spilled error counted with its call\n");
    return 0;
}

/* A state file in a fresh directory; *env_out its SIDECAR_STATE_FILE setting. */
static void
state_file(char *dir, char *path, size_t size, char *env_out, size_t env_size)
{
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, size, "%s/state.msgpack", dir);
    snprintf(env_out, env_size, "SIDECAR_STATE_FILE=%s", path);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nanoseconds of `ticks` through the calibration in the segment's header. */
static uint64_t
header_ns(const struct funcmon_shm_header *h, uint64_t ticks)
{
    uint64_t mult = __atomic_load_n(&h->tick_mult, __ATOMIC_ACQUIRE);
    uint32_t shift = __atomic_load_n(&h->tick_shift, __ATOMIC_ACQUIRE);
    return (uint64_t)(((unsigned __int128)ticks * mult) >> shift);
}

/* Waits up to 2 s for the figures of "spilled" to reach (calls, records); returns the last
 * ones seen in *f. */
static void
spilltime_expect(struct sidecar *s, uint64_t calls, uint64_t records, struct funcmond_fn_view *f)
{
    for (int i = 0; i < 200; i++) {
        if (sidecar_function(s, "spiller", "e2e", "spilled", f) == 0 && f->calls == calls && f->records == records)
            return;
        usleep(10000);
    }
    fprintf(stderr, "spilled: calls %llu records %llu; expected %llu %llu\n", (unsigned long long)f->calls,
            (unsigned long long)f->records, (unsigned long long)calls, (unsigned long long)records);
    CHECK(0);
}

/* The total within a part in 10^4 of the ticks converted (the client refines its
 * calibration in its first moments, and funcmond reads it once a second). */
static void
spilltime_total(const struct funcmond_fn_view *f, uint64_t expected_ns)
{
    uint64_t diff = f->total_ns > expected_ns ? f->total_ns - expected_ns : expected_ns - f->total_ns;
    if (diff > expected_ns / 10000 + 10)
        fprintf(stderr, "spilled: total %llu ns, expected %llu\n", (unsigned long long)f->total_ns,
                (unsigned long long)expected_ns);
    CHECK_LE(diff, expected_ns / 10000 + 10);
}

static int
case_spilltime(void)
{
    enum { N = 1000 };
    static uint64_t truth[N];
    struct sidecar s;
    struct funcmond_fn_view f;
    int quit;
    uint32_t id[2];
    uint64_t marker = 0, rng = 0x2545f4914f6cdd1dull;
    pid_t c;
    size_t len;
    char dir[] = "/tmp/funcmond-spilltime-XXXXXX", state[300], state_env[320];
    state_file(dir, state, sizeof(state), state_env, sizeof(state_env));
    const char *env[] = {state_env, NULL};

    unsigned char *map = start_spiller(&c, id, &quit, &len);
    const struct funcmon_shm_header *h = (const struct funcmon_shm_header *)map;
    struct funcmon_site_entry *sites = (struct funcmon_site_entry *)(map + h->sites_offset);
    struct funcmon_site_entry *sp = &sites[id[0]], *mk = &sites[id[1]];
    sidecar_start(&s, env);

    /* N calls spilled, as the client counts them: durations in ticks, each call's bucket by
     * its duration in ns; the calls last. About 50 us to 50 ms. */
    uint64_t ticks = 0, per_tick_ns = header_ns(h, 1ull << 20);
    CHECK_GT(per_tick_ns, 0);
    for (int i = 0; i < N; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint64_t want_ns = 50000ull << (rng % 11), t = (want_ns << 20) / per_tick_ns + rng % 1000;
        truth[i] = header_ns(h, t);
        ticks += t;
        __atomic_fetch_add(&sp->spill_ticks, t, __ATOMIC_SEQ_CST);
        __atomic_fetch_add(&sp->spill_hist[funcmon_spill_bucket(truth[i])], 1, __ATOMIC_SEQ_CST);
    }
    __atomic_fetch_add(&sp->spill_calls, N, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spilltime_expect(&s, N, N, &f);
    CHECK_EQ(f.dropped, N);
    spilltime_total(&f, header_ns(h, ticks));
    CHECK_EQ(f.avg_ns, f.total_ns / N);
    qsort(truth, N, sizeof(truth[0]), cmp_u64);
    CHECK_LE(f.min_ns, truth[0]);
    CHECK_GE(f.max_ns, truth[N - 1]);
    const int ranks[] = {N / 2, N * 9 / 10, N * 99 / 100, N * 999 / 1000}; /* ceil(q * N) */
    const uint64_t got[] = {f.p50_ns, f.p90_ns, f.p99_ns, f.p999_ns};
    for (int k = 0; k < 4; k++) {
        uint64_t exact = truth[ranks[k] - 1], diff = got[k] > exact ? got[k] - exact : exact - got[k];
        fprintf(stderr, "spilltime: rank %d: %llu ns, exact %llu\n", ranks[k], (unsigned long long)got[k],
                (unsigned long long)exact);
        CHECK_LE(diff, exact * 205 / 1000);
    }

    /* A call counted before its bucket: counted, its bucket credited once it comes. */
    uint32_t b = funcmon_spill_bucket(1000000);
    __atomic_fetch_add(&sp->spill_calls, 2, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spilltime_expect(&s, N + 2, N, &f);
    __atomic_fetch_add(&sp->spill_hist[b], 2, __ATOMIC_SEQ_CST);
    spilltime_expect(&s, N + 2, N + 2, &f);
    /* A bucket ahead of its call waits for it. */
    __atomic_fetch_add(&sp->spill_hist[b], 3, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spilltime_expect(&s, N + 2, N + 2, &f);
    __atomic_fetch_add(&sp->spill_calls, 3, __ATOMIC_SEQ_CST);
    spills_seen(&s, mk, &marker);
    spilltime_expect(&s, N + 5, N + 5, &f);

    /* A bucket counter that wraps past 2^32: its gains taken modulo 2^32. */
    uint64_t calls = N + 5;
    uint32_t start = __atomic_fetch_add(&sp->spill_hist[b], 0xfffffff0u, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&sp->spill_calls, 0xfffffff0u, __ATOMIC_SEQ_CST);
    calls += 0xfffffff0u;
    spills_seen(&s, mk, &marker);
    spilltime_expect(&s, calls, calls, &f);
    __atomic_fetch_add(&sp->spill_hist[b], 0x20, __ATOMIC_SEQ_CST);
    /* 2^32 + 16 added in all: the counter went round once */
    CHECK_EQ(__atomic_load_n(&sp->spill_hist[b], __ATOMIC_SEQ_CST), (uint32_t)(start + 0x10));
    __atomic_fetch_add(&sp->spill_calls, 0x20, __ATOMIC_SEQ_CST);
    calls += 0x20;
    spills_seen(&s, mk, &marker);
    spilltime_expect(&s, calls, calls, &f);
    CHECK_EQ(f.dropped, calls);

    /* A restart: the state file says what was counted; what came while funcmond was away
     * is counted once. */
    sidecar_stop(&s);
    uint64_t t5 = 12345678;
    __atomic_fetch_add(&sp->spill_ticks, t5, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&sp->spill_hist[funcmon_spill_bucket(header_ns(h, t5))], 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&sp->spill_calls, 1, __ATOMIC_SEQ_CST);
    ticks += t5;
    calls += 1;
    sidecar_start(&s, env);
    spilltime_expect(&s, calls, calls, &f);
    spills_seen(&s, mk, &marker);
    spilltime_expect(&s, calls, calls, &f);
    CHECK_EQ(f.dropped, calls);
    spilltime_total(&f, header_ns(h, ticks));

    munmap(map, len);
    close(quit);
    wait_ok(c);
    sidecar_stop(&s);
    unlink(state);
    rmdir(dir);
    printf("test_sidecar spilltime: %llu spilled calls, totals exact, quantiles within 20.5%%\n", (unsigned long long)calls);
    return 0;
}

static int
case_spillclient(void)
{
    struct sidecar s;
    struct funcmond_fn_view f;
    unsigned long long calls, errors, timed_ns;
    int out;

    sidecar_start(&s, NULL);
    /* One thread slot for three threads: two of them make calls that leave no record. */
    char *argv[] = {"e2e_client", "3", "100", "2000", "4", NULL};
    const char *env[] = {
        "FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", "spillclient", "FUNCMON_MAX_THREADS", "1", "E2E_TIME_CALLS", "1", NULL};
    pid_t c = spawn(E2E_CLIENT, argv, env, &out);
    read_done_timed(out, &calls, &errors, &timed_ns);
    wait_ok(c);
    CHECK_EQ(calls, 300);
    CHECK_EQ(sidecar_wait_calls(&s, "spillclient", "e2e", "work", calls, 10), 0);
    /* Every call with a duration, once the last buckets are read. */
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(sidecar_function(&s, "spillclient", "e2e", "work", &f), 0);
        if (f.records == f.calls)
            break;
        usleep(10000);
    }
    fprintf(stderr, "spillclient: %llu calls, %llu dropped, %llu with a duration; %llu ns in all, the client timed %llu\n",
            (unsigned long long)f.calls, (unsigned long long)f.dropped, (unsigned long long)f.records,
            (unsigned long long)f.total_ns, timed_ns);
    CHECK_EQ(f.errors, errors);
    CHECK_GT(f.dropped, 0);
    CHECK_LE(f.dropped, calls);
    if (f.records < f.calls) {
        sidecar_stop(&s);
        SKIP("the client does not time the calls it spills yet: %llu of %llu calls without a duration",
             (unsigned long long)(f.calls - f.records), (unsigned long long)f.calls);
    }
    CHECK_EQ(f.records, calls);
    /* The client's timing from outside includes funcmon's own cost: a little more (and the
     * two clocks may disagree by a part in a thousand). */
    CHECK_LE(f.total_ns, timed_ns + timed_ns / 1000);
    CHECK_GE(f.total_ns, timed_ns - timed_ns / 100);
    CHECK_GE(f.p50_ns, 2000000 * 80 / 100);
    sidecar_stop(&s);
    printf("test_sidecar spillclient: %llu of %llu calls dropped, total duration within 1%%\n", (unsigned long long)f.dropped,
           calls);
    return 0;
}

static int
case_reattach(void)
{
    struct sidecar s;
    unsigned long long calls, errors;
    int out;
    char dir[] = "/tmp/funcmond-reattach-XXXXXX", state[300], state_env[320], seg[300], keep[300];
    state_file(dir, state, sizeof(state), state_env, sizeof(state_env));
    const char *env[] = {"SIDECAR_EXITED_RETENTION_S=0", state_env, NULL};

    sidecar_start(&s, env);
    pid_t a = client("again", "2", "0", "1000", "0", &out);
    CHECK_EQ(wait_procs(&s, 1, 1, 10), 0);
    /* A second name for the segment, outside the prefix: when funcmond removes the file,
     * it is put back, as if the removal had failed. */
    snprintf(seg, sizeof(seg), "/dev/shm/%s.again.%d", prefix, (int)a);
    snprintf(keep, sizeof(keep), "/dev/shm/keep-%s.again.%d", prefix, (int)a);
    CHECK_EQ(link(seg, keep), 0);
    kill(a, SIGTERM);
    read_done(out, &calls, &errors);
    wait_ok(a);
    CHECK_GT(calls, 0);
    CHECK_EQ(sidecar_wait_calls(&s, "again", "e2e", "work", calls, 10), 0);
    for (int i = 0; i < 1000 && segment_file_exists(a, "again"); i++)
        usleep(10000);
    CHECK(!segment_file_exists(a, "again")); /* let go */
    CHECK_EQ(wait_procs(&s, 0, 0, 10), 0);
    CHECK_EQ(rename(keep, seg), 0);
    CHECK_EQ(WAIT_COUNTER(&s, segments_attached, 2, 10), 2);
    for (int i = 0; i < 1000 && segment_file_exists(a, "again"); i++)
        usleep(10000);
    CHECK(!segment_file_exists(a, "again")); /* let go again */
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[4];
    sidecar_snapshot(&s, &counters, procs, 4);
    fprintf(stderr, "reattach: client made %llu calls; counted %llu records, %llu lost\n", calls,
            (unsigned long long)counters.records, (unsigned long long)counters.lost);
    CHECK_EQ(counters.lost, 0);
    CHECK_EQ(counters.records, calls); /* "work" only, in this mode */
    CHECK_EQ(sidecar_wait_calls(&s, "again", "e2e", "work", calls, 1), 0);
    sidecar_stop(&s);
    unlink(state);
    rmdir(dir);
    printf("test_sidecar reattach: %llu calls, counted once, none lost\n", calls);
    return 0;
}

static int
case_carry(void)
{
    struct sidecar s;
    unsigned long long calls[2], errors;
    int out[2];
    pid_t live[2];
    char dir[] = "/tmp/funcmond-carry-XXXXXX", state[300], state_env[320];
    state_file(dir, state, sizeof(state), state_env, sizeof(state_env));
    const char *env[] = {"SIDECAR_RESCAN_INTERVAL_S=1", state_env, NULL};
    struct funcmond_counters counters;
    struct funcmond_proc_view procs[4];

    /* Run 1: both live clients counted; stopping saves their ring positions. */
    sidecar_start(&s, env);
    for (int k = 0; k < 2; k++)
        live[k] = client("carry", "1", "0", "1000", "0", &out[k]);
    CHECK_EQ(wait_procs(&s, 2, 2, 10), 0);
    int counted = 0; /* clients with records counted: what a later run could call lost */
    for (int i = 0; i < 1000 && counted < 2; i++) {
        usleep(10000);
        int n = sidecar_snapshot(&s, &counters, procs, 4);
        counted = 0;
        for (int k = 0; k < n; k++)
            counted += procs[k].records > 0;
    }
    CHECK_EQ(counted, 2);
    sidecar_stop(&s);

    /* Run 2: room for one segment only; the other waits the whole run. */
    funcmon_consumer_guard_limit(1);
    sidecar_start(&s, env);
    CHECK_EQ(WAIT_COUNTER(&s, segments_deferred, 1, 10), 1);
    CHECK_EQ(wait_procs(&s, 1, 1, 10), 0);
    sidecar_stop(&s);
    funcmon_consumer_guard_limit(0);

    /* Run 3: both attached again; nothing they did before was lost. */
    sidecar_start(&s, env);
    CHECK_EQ(wait_procs(&s, 2, 2, 10), 0);
    for (int k = 0; k < 2; k++) {
        kill(live[k], SIGTERM);
        read_done(out[k], &calls[k], &errors);
        wait_ok(live[k]);
    }
    int waited = sidecar_wait_calls(&s, "carry", "e2e", "work", calls[0] + calls[1], 10);
    sidecar_snapshot(&s, &counters, procs, 4);
    fprintf(stderr, "carry: clients made %llu calls; counted %llu records, %llu dropped, %llu lost\n", calls[0] + calls[1],
            (unsigned long long)counters.records, (unsigned long long)counters.dropped, (unsigned long long)counters.lost);
    CHECK_EQ(counters.lost, 0);
    CHECK_EQ(counters.dropped, 0);
    CHECK_EQ(waited, 0);
    sidecar_stop(&s);
    CHECK_EQ(harness_remove_segments(prefix), 0);
    unlink(state);
    rmdir(dir);
    printf("test_sidecar carry: %llu calls across three runs, none lost\n", calls[0] + calls[1]);
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
        return case_storm(1);
    if (strcmp(argv[1], "stormwake") == 0)
        return case_storm(0);
    if (strcmp(argv[1], "flip") == 0)
        return case_flip();
    if (strcmp(argv[1], "guardfull") == 0)
        return case_guardfull();
    if (strcmp(argv[1], "fds") == 0)
        return case_fds();
    if (strcmp(argv[1], "dropped") == 0)
        return case_dropped();
    if (strcmp(argv[1], "rejectlog") == 0)
        return case_rejectlog();
    if (strcmp(argv[1], "idletick") == 0)
        return case_idletick();
    if (strcmp(argv[1], "crowd") == 0)
        return case_crowd();
    if (strcmp(argv[1], "leftover") == 0)
        return case_leftover();
    if (strcmp(argv[1], "special") == 0)
        return case_special();
    if (strcmp(argv[1], "spills") == 0)
        return case_spills();
    if (strcmp(argv[1], "reattach") == 0)
        return case_reattach();
    if (strcmp(argv[1], "carry") == 0)
        return case_carry();
    if (strcmp(argv[1], "spilltime") == 0)
        return case_spilltime();
    if (strcmp(argv[1], "spillclient") == 0)
        return case_spillclient();
    return 2;
}
