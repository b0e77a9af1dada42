/*
 * test_lifecycle.c - funcmon never takes the service down: disabled, failed init, name
 * clash, stale segment, full shared memory, bad environment, fork, shutdown and re-init.
 *
 * Each case runs in a fresh process (this program re-executed with the case's name and
 * environment) so init sees a clean library. In every case the service's calls must still
 * run and return their values; where init fails, exactly one line goes to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

static int
twice(void *arg)
{
    return 2 * (int)(intptr_t)arg;
}

/* The service's work, profiled every way: must return right whatever funcmon's state. */
static void
service_calls_work(void)
{
    for (int i = 0; i < 100; i++)
        CHECK_EQ(funcmon_profile("twice", "life", twice, (void *)(intptr_t)i), 2 * i);
    struct funcmon_call c = funcmon_begin(FUNCMON_SITE("inline", "life"));
    funcmon_end(&c, 0);
    int n = 0;
    FUNCMON_SCOPE("scope", "life")
    {
        n = 7;
    }
    CHECK_EQ(n, 7);
}

static int
segment_exists_for(pid_t pid)
{
    char path[300];
    snprintf(path, sizeof(path), "/dev/shm/%s.%s.%d", getenv("FUNCMON_SHM_PREFIX"), program_invocation_short_name, (int)pid);
    return access(path, F_OK) == 0;
}

/* ---- cases, each in its own process ---- */

static int
case_disabled(void)
{
    CHECK_EQ(funcmon_init(NULL), 0);
    CHECK(!funcmon_active());
    CHECK(funcmon_segment_name() == NULL);
    service_calls_work();
    CHECK(!segment_exists_for(getpid()));
    return 0;
}

static int
case_init_fails(void)
{
    int expect = -(int)strtol(getenv("EXPECT_ERRNO"), NULL, 10);
    CHECK_EQ(funcmon_init(NULL), expect);
    CHECK(!funcmon_active());
    service_calls_work();
    return 0;
}

static int
case_clash(void)
{
    char name[300];
    snprintf(name, sizeof(name), "/%s.%s.%d", getenv("FUNCMON_SHM_PREFIX"), program_invocation_short_name, (int)getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK_GE(fd, 0);
    CHECK_EQ(write(fd, "not funcmon", 11), 11);
    close(fd);
    CHECK_EQ(funcmon_init(NULL), -EEXIST);
    service_calls_work();
    /* Someone else's file is left alone. */
    struct stat st;
    fd = shm_open(name, O_RDONLY, 0);
    CHECK_GE(fd, 0);
    CHECK_EQ(fstat(fd, &st), 0);
    CHECK_EQ(st.st_size, 11);
    close(fd);
    shm_unlink(name);
    return 0;
}

static int
case_stale(void)
{
    /* A segment an earlier process with our pid left: same pid, other start time. */
    struct funcmon_options o = {0};
    o.service = "stale-template";
    CHECK_EQ(funcmon_init(&o), 0);
    const char *tmpl = funcmon_segment_name();
    CHECK(tmpl != NULL);
    char tmpl_name[300], name[300];
    snprintf(tmpl_name, sizeof(tmpl_name), "%s", tmpl);
    snprintf(name, sizeof(name), "/%s.%s.%d", getenv("FUNCMON_SHM_PREFIX"), "stale", (int)getpid());
    int src = shm_open(tmpl_name, O_RDONLY, 0), dst = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(src >= 0 && dst >= 0);
    struct funcmon_shm_header h;
    CHECK_EQ(pread(src, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    h.proc_start_time = 1;
    CHECK_EQ(pwrite(dst, &h, sizeof(h), 0), (ssize_t)sizeof(h));
    struct stat st;
    CHECK_EQ(fstat(src, &st), 0);
    CHECK_EQ(ftruncate(dst, st.st_size), 0);
    close(src);
    close(dst);
    funcmon_shutdown();

    o.service = "stale";
    CHECK_EQ(funcmon_init(&o), 0);
    CHECK_STREQ(funcmon_segment_name(), name);
    struct funcmon_consumer c;
    harness_open_self(&c);
    CHECK_NE(c.hdr->proc_start_time, 1);
    service_calls_work();
    static struct harness_tally t;
    harness_drain_all(&c, &t);
    CHECK_EQ(t.calls[funcmon_site("twice", "life")], 100);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
    shm_unlink(name);
    return 0;
}

static int
case_fork(void)
{
    struct funcmon_consumer parent;
    static struct harness_tally tp, tc;
    CHECK_EQ(funcmon_init(NULL), 0);
    char parent_name[300];
    snprintf(parent_name, sizeof(parent_name), "%s", funcmon_segment_name());
    harness_open_self(&parent);
    uint32_t s_parent = FUNCMON_SITE("parent_fn", "life"), s_child = FUNCMON_SITE("child_fn", "life");

    for (int i = 0; i < 10; i++) {
        struct funcmon_call c = funcmon_begin(s_parent);
        funcmon_end(&c, 0);
    }
    /* A child that profiles: gets its own segment, with the sites interned before. */
    pid_t pid = fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
        CHECK(!segment_exists_for(getpid())); /* not before its first record */
        for (int i = 0; i < 5; i++) {
            struct funcmon_call c = funcmon_begin(s_child);
            funcmon_end(&c, 1);
        }
        const char *mine = funcmon_segment_name();
        CHECK(mine != NULL);
        CHECK(strcmp(mine, parent_name) != 0);
        CHECK(segment_exists_for(getpid()));
        struct funcmon_consumer own;
        harness_open_self(&own);
        CHECK_EQ(own.geo.pid, getpid());
        harness_drain_all(&own, &tc);
        CHECK_EQ(tc.calls[s_child], 5);
        CHECK_EQ(tc.errors[s_child], 5);
        CHECK_EQ(tc.calls[s_parent], 0);
        CHECK_STREQ(funcmon_consumer_site(&own, s_child)->name, "child_fn");
        service_calls_work();
        funcmon_consumer_close(&own);
        funcmon_shutdown();
        _exit(0);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The child attached a consumer to its own segment, so its shutdown left the name for
     * a sidecar to collect; the harness removes it at exit. */
    /* A fork inside a profiled call: the child returns through the call's end, which must
     * neither write into the parent's segment nor crash, and then profiles on its own. */
    pid_t inside = -1;
    FUNCMON_SCOPE("forks", "life")
    {
        inside = fork();
        CHECK_GE(inside, 0);
    }
    if (inside == 0) {
        struct funcmon_call c = funcmon_begin(s_child);
        funcmon_end(&c, 0);
        CHECK(funcmon_segment_name() != NULL);
        funcmon_shutdown();
        _exit(0);
    }
    CHECK_EQ(waitpid(inside, &status, 0), inside);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* A child that only execs (or exits) without profiling creates nothing. */
    pid_t quiet = fork();
    if (quiet == 0)
        _exit(0);
    CHECK_EQ(waitpid(quiet, &status, 0), quiet);
    CHECK(!segment_exists_for(quiet));

    for (int i = 0; i < 10; i++) {
        struct funcmon_call c = funcmon_begin(s_parent);
        funcmon_end(&c, 0);
    }
    harness_drain_all(&parent, &tp);
    CHECK_EQ(tp.calls[s_parent], 20);
    CHECK_EQ(tp.calls[s_child], 0);                       /* the children never wrote into the parent's segment */
    CHECK_EQ(tp.calls[funcmon_site("forks", "life")], 1); /* the parent's side of that call */
    CHECK_EQ(parent.bad_records, 0);
    funcmon_consumer_close(&parent);
    funcmon_shutdown();
    return 0;
}

/* Forks at the moments a fork is most likely to meet the control thread awake: right after
 * init starts it, and while the sidecar asks it for a sample. Each child starts a control
 * thread of its own, which takes the allocator's locks as a thread start does: a lock the
 * parent's control thread held when fork copied it would hang the child for ever. */
static int
case_fork_busy(void)
{
    struct funcmon_options o = {.pool_records = 256, .chunk_records = FUNCMON_CHUNK_RECORDS_MIN, .max_threads = 4};
    for (int round = 0; round < 40; round++) {
        CHECK_EQ(funcmon_init(&o), 0);
        char name[300];
        snprintf(name, sizeof(name), "%s", funcmon_segment_name());
        struct funcmon_consumer c;
        harness_open_self(&c);
        if (round % 2 == 1) { /* a sample, as funcmond asks for one */
            __atomic_store_n(&c.hdr->ctl_op, FUNCMON_CTL_SAMPLE, __ATOMIC_RELEASE);
            __atomic_add_fetch(&c.hdr->ctl_request, 1, __ATOMIC_ACQ_REL);
            syscall(SYS_futex, &c.hdr->ctl_request, FUTEX_WAKE, 1, NULL, NULL, 0);
        }
        pid_t pid = fork();
        CHECK_GE(pid, 0);
        if (pid == 0) {
            uint32_t site = FUNCMON_SITE("busy_child", "life");
            struct funcmon_call call = funcmon_begin(site);
            funcmon_end(&call, 0);
            CHECK(funcmon_segment_name() != NULL);
            funcmon_shutdown();
            _exit(0);
        }
        int status;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        funcmon_consumer_close(&c);
        funcmon_shutdown();
        shm_unlink(name);
    }
    return 0;
}

static int
case_restart(void)
{
    /* Without a consumer, shutdown unlinks; with one, the name stays for it. */
    CHECK_EQ(funcmon_init(NULL), 0);
    char first[300];
    snprintf(first, sizeof(first), "/dev/shm%s", funcmon_segment_name());
    uint32_t site = FUNCMON_SITE("restart_fn", "life");
    struct funcmon_call straddling = funcmon_begin(site); /* begun before shutdown */
    funcmon_shutdown();
    CHECK_NE(access(first, F_OK), 0);
    struct funcmon_call nested = funcmon_begin(site); /* a call inside it, after shutdown */
    funcmon_end(&nested, 0);
    funcmon_end(&straddling, 0); /* ends after: harmless, not recorded anywhere live */
    service_calls_work();        /* plain calls between runs */

    CHECK_EQ(funcmon_init(NULL), 0);
    struct funcmon_consumer c;
    static struct harness_tally t;
    harness_open_self(&c);
    char second[300];
    snprintf(second, sizeof(second), "/dev/shm%s", funcmon_segment_name());
    for (int i = 0; i < 3; i++) {
        struct funcmon_call call = funcmon_begin(site);
        funcmon_end(&call, 0);
    }
    harness_drain_all(&c, &t);
    CHECK_EQ(t.calls[site], 3);
    funcmon_shutdown();
    CHECK_EQ(access(second, F_OK), 0); /* a consumer is attached: it unlinks */
    CHECK_EQ(c.hdr->state, FUNCMON_STATE_SHUTDOWN);

    /* A third run while the shut-down segment still waits for its consumer: it replaces
     * it (the consumer keeps reading its own mapping of the old one). */
    CHECK_EQ(funcmon_init(NULL), 0);
    struct funcmon_call third = funcmon_begin(site);
    funcmon_end(&third, 0);
    struct funcmon_consumer c3;
    static struct harness_tally t3;
    harness_open_self(&c3);
    CHECK(c3.hdr != c.hdr);
    harness_drain_all(&c3, &t3);
    CHECK_EQ(t3.calls[site], 1);
    CHECK_EQ(c.hdr->state, FUNCMON_STATE_SHUTDOWN); /* the old mapping is intact */
    funcmon_shutdown();
    funcmon_consumer_close(&c3);
    funcmon_consumer_close(&c);
    unlink(second);
    return 0;
}

/* ---- driver ---- */

struct result {
    int status;
    int stderr_lines;
    char stderr_text[2048];
};

static struct result
run_case(const char *name, const char *const *env)
{
    struct result r = {0};
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        for (int i = 0; env != NULL && env[i] != NULL; i += 2)
            setenv(env[i], env[i + 1], 1);
        execl("/proc/self/exe", program_invocation_name, name, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(pipefd[0], r.stderr_text + len, sizeof(r.stderr_text) - 1 - len)) > 0)
        len += (size_t)n;
    close(pipefd[0]);
    r.stderr_text[len] = '\0';
    for (size_t i = 0; i < len; i++)
        r.stderr_lines += r.stderr_text[i] == '\n';
    CHECK_EQ(waitpid(pid, &r.status, 0), pid);
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        fprintf(stderr, "case %s failed (status %d):\n%s", name, r.status, r.stderr_text);
    CHECK(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    return r;
}

static void
expect_one_line(const struct result *r, const char *needle)
{
    if (r->stderr_lines != 1 || strstr(r->stderr_text, needle) == NULL)
        fprintf(stderr, "expected one line naming '%s', got:\n%s", needle, r->stderr_text);
    CHECK_EQ(r->stderr_lines, 1);
    CHECK(strstr(r->stderr_text, needle) != NULL);
    CHECK(strncmp(r->stderr_text, "funcmon: ", 9) == 0);
}

int
main(int argc, char **argv)
{
    if (argc == 2) {
        /* A case that hangs is killed by SIGALRM: run_case then names it, with its output,
         * long before ctest's timeout would say only "Timeout". */
        alarm(20);
        if (strcmp(argv[1], "disabled") == 0)
            return case_disabled();
        if (strcmp(argv[1], "init_fails") == 0)
            return case_init_fails();
        if (strcmp(argv[1], "clash") == 0)
            return case_clash();
        if (strcmp(argv[1], "stale") == 0)
            return case_stale();
        if (strcmp(argv[1], "fork") == 0)
            return case_fork();
        if (strcmp(argv[1], "fork_busy") == 0)
            return case_fork_busy();
        if (strcmp(argv[1], "restart") == 0)
            return case_restart();
        if (strcmp(argv[1], "fork-suite") == 0) {
            /* Its own ctest test (test_fork), so that it can be skipped alone. */
#if defined(__SANITIZE_THREAD__)
            SKIP("ThreadSanitizer cannot follow a forked child of a threaded process that starts a thread");
#endif
            harness_private_prefix();
            struct result r = run_case("fork", NULL);
            CHECK_EQ(r.stderr_lines, 0);
            r = run_case("fork_busy", NULL);
            CHECK_EQ(r.stderr_lines, 0);
            printf("test_fork: ok\n");
            return 0;
        }
        return 2;
    }
    const char *prefix = harness_private_prefix();
    struct result r;

    r = run_case("disabled", (const char *const[]){"FUNCMON_ENABLED", "0", NULL});
    CHECK_EQ(r.stderr_lines, 0);

    /* A prefix that cannot name a shm object, bad values: EINVAL, one line naming it. */
    r = run_case("init_fails", (const char *const[]){"FUNCMON_SHM_PREFIX", "no/such/dir", "EXPECT_ERRNO", "22", NULL});
    expect_one_line(&r, "FUNCMON_SHM_PREFIX");
    r = run_case("init_fails", (const char *const[]){"FUNCMON_CHUNK_RECORDS", "100", "EXPECT_ERRNO", "22", NULL});
    expect_one_line(&r, "FUNCMON_CHUNK_RECORDS '100'");
    r = run_case("init_fails", (const char *const[]){"FUNCMON_POOL_RECORDS", "10", "EXPECT_ERRNO", "22", NULL});
    expect_one_line(&r, "FUNCMON_POOL_RECORDS '10'");
    r = run_case("init_fails", (const char *const[]){"FUNCMON_RING_RECORDS", "100", "EXPECT_ERRNO", "22", NULL});
    expect_one_line(&r, "FUNCMON_RING_RECORDS '100'");
    r = run_case("init_fails", (const char *const[]){"FUNCMON_MAX_THREADS", "0", "EXPECT_ERRNO", "22", NULL});
    expect_one_line(&r, "FUNCMON_MAX_THREADS");
    r = run_case("init_fails", (const char *const[]){"FUNCMON_ENABLED", "maybe", "EXPECT_ERRNO", "22", NULL});
    expect_one_line(&r, "FUNCMON_ENABLED");
    /* More shared memory than the machine has: ENOSPC at init, never SIGBUS later. */
    r = run_case("init_fails", (const char *const[]){"FUNCMON_POOL_RECORDS", "1073741824", "EXPECT_ERRNO", "28", NULL});
    expect_one_line(&r, "No space left on device");
    CHECK_EQ(harness_remove_segments(prefix), 0); /* nothing left behind */

    r = run_case("clash", NULL);
    expect_one_line(&r, "File exists");
    r = run_case("stale", NULL);
    CHECK_EQ(r.stderr_lines, 0);
    r = run_case("restart", NULL);
    CHECK_EQ(r.stderr_lines, 0);
    harness_remove_segments(prefix);
    printf("test_lifecycle: ok\n");
    return 0;
}
