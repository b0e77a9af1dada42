/*
 * test_pprof.c - the pprof module against the real reader: `go tool pprof`.
 *
 * A forked child burns CPU in funcmon_test_burn on two threads; funcmond_pprof_cpu samples
 * it for 2 s and `go tool pprof -top` must put that function on top with a plausible
 * sample count. A heap-style profile built with the builder must show the summed values
 * per function. Error cases: a pid that does not exist, bad arguments, cancellation.
 * Without `go` in PATH the checks that need it are skipped (exit 77) after the rest ran.
 *
 * Build with frame pointers and symbols (-fno-omit-frame-pointer, -rdynamic or simply not
 * stripped): the kernel walks the child's stack by frame pointers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "pprof.h"

#define BURN_SECONDS 4

volatile uint64_t funcmon_test_sink;

void funcmon_test_burn(void);
void funcmon_test_burn_loop(void);

/* The function the CPU profile must find: not static, not inlined, a leaf. */
__attribute__((noinline)) void
funcmon_test_burn(void)
{
    uint64_t x = funcmon_test_sink;

    for (int i = 0; i < 20000; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    funcmon_test_sink = x;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void
funcmon_test_burn_loop(void)
{
    double end = now_s() + BURN_SECONDS;

    while (now_s() < end)
        funcmon_test_burn();
}

static void *
burn_thread(void *arg)
{
    (void)arg;
    funcmon_test_burn_loop();
    return NULL;
}

/* Child: a second thread, then "ready" on the pipe, then both burn. */
static pid_t
start_burner(void)
{
    int fds[2];
    char c;
    pid_t pid;

    CHECK_EQ(pipe(fds), 0);
    pid = fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
        pthread_t t;
        close(fds[0]);
        if (pthread_create(&t, NULL, burn_thread, NULL) != 0)
            _exit(2);
        if (write(fds[1], "r", 1) != 1)
            _exit(2);
        funcmon_test_burn_loop();
        pthread_join(t, NULL);
        _exit(0);
    }
    close(fds[1]);
    CHECK_EQ(read(fds[0], &c, 1), 1);
    close(fds[0]);
    return pid;
}

static void
write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");

    CHECK(fp != NULL);
    CHECK_EQ(fwrite(data, 1, len, fp), len);
    CHECK_EQ(fclose(fp), 0);
}

static int
have_go(void)
{
    return system("command -v go >/dev/null 2>&1") == 0;
}

/* Runs `go tool pprof <args> <file>` and returns its stdout (malloc'd). */
static char *
run_pprof(const char *args, const char *file)
{
    char cmd[1024], *out = NULL;
    size_t len = 0, cap = 0;
    FILE *fp;
    int status;

    snprintf(cmd, sizeof(cmd), "go tool pprof %s '%s'", args, file);
    fp = popen(cmd, "r");
    CHECK(fp != NULL);
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            out = realloc(out, cap);
            CHECK(out != NULL);
        }
        size_t n = fread(out + len, 1, 4096, fp);
        if (n == 0)
            break;
        len += n;
    }
    out[len] = '\0';
    status = pclose(fp);
    printf("$ %s\n%s", cmd, out);
    CHECK_EQ(status, 0);
    return out;
}

/* The "-top" line for function name, or NULL. Columns: flat flat% sum% cum cum% name. */
static int
top_entry(const char *out, const char *name, char *flat, char *cum)
{
    const char *line = out;

    while (line && *line) {
        const char *nl = strchr(line, '\n');
        char l[512], f[64], fp[64], sp[64], c[64], cp[64], n[256];
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len < sizeof(l)) {
            memcpy(l, line, len);
            l[len] = '\0';
            if (sscanf(l, "%63s %63s %63s %63s %63s %255[^\n]", f, fp, sp, c, cp, n) == 6 && strcmp(n, name) == 0) {
                strcpy(flat, f);
                strcpy(cum, c);
                return 1;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* The name on the first data line (after the "flat  flat%" header). */
static void
first_entry(const char *out, char *name, size_t len)
{
    const char *h = strstr(out, "flat%");
    const char *line;
    char f[64], fp[64], sp[64], c[64], cp[64], n[256];

    CHECK(h != NULL);
    line = strchr(h, '\n');
    CHECK(line != NULL);
    CHECK_EQ(sscanf(line + 1, "%63s %63s %63s %63s %63s %255[^\n]", f, fp, sp, c, cp, n), 6);
    snprintf(name, len, "%s", n);
}

/* The total N from "Showing nodes accounting for X, Y% of N total". */
static long long
total_of(const char *out)
{
    const char *s = strstr(out, " of ");
    long long v = -1;

    CHECK(s != NULL);
    CHECK_EQ(sscanf(s, " of %lld total", &v), 1);
    return v;
}

/* Profile files written for go, removed at exit whatever the outcome. */
static char tmp_files[2][512];

static void
remove_tmp_files(void)
{
    for (int i = 0; i < 2; i++)
        if (tmp_files[i][0] != '\0')
            unlink(tmp_files[i]);
}

static void
tmp_path(char *path, size_t len, const char *what)
{
    const char *dir = getenv("TMPDIR");
    int fd;

    snprintf(path, len, "%s/funcmon_pprof_%s_XXXXXX", dir && *dir ? dir : "/tmp", what);
    fd = mkstemp(path);
    CHECK_GE(fd, 0);
    close(fd);
    for (int i = 0; i < 2; i++)
        if (tmp_files[i][0] == '\0') {
            snprintf(tmp_files[i], sizeof(tmp_files[i]), "%s", path);
            break;
        }
}

static void
test_errors(void)
{
    unsigned char *gz = (unsigned char *)1;
    size_t gz_len = 1;
    char err[256];
    pid_t gone;
    int status, cancel = 1;

    /* A pid that just exited and was reaped. */
    gone = fork();
    CHECK_GE(gone, 0);
    if (gone == 0)
        _exit(0);
    CHECK_EQ(waitpid(gone, &status, 0), gone);
    CHECK_EQ(funcmond_pprof_cpu(gone, 1, 99, NULL, &gz, &gz_len, err, sizeof(err)), -ESRCH);
    CHECK(gz == NULL);
    CHECK_EQ(gz_len, 0);
    CHECK_GT(strlen(err), 0);
    printf("missing pid: %s\n", err);

    CHECK_EQ(funcmond_pprof_cpu(getpid(), 0, 99, NULL, &gz, &gz_len, err, sizeof(err)), -EINVAL);
    CHECK_EQ(funcmond_pprof_cpu(getpid(), 1, 0, NULL, &gz, &gz_len, err, sizeof(err)), -EINVAL);
    CHECK_EQ(funcmond_pprof_cpu(-1, 1, 99, NULL, &gz, &gz_len, err, sizeof(err)), -EINVAL);
    printf("bad arguments: %s\n", err);

    /* Cancelled before it starts: returns at once. */
    double t0 = now_s();
    CHECK_EQ(funcmond_pprof_cpu(getpid(), 5, 99, &cancel, &gz, &gz_len, err, sizeof(err)), -ECANCELED);
    CHECK_LT(now_s() - t0, 1.0);
    CHECK(gz == NULL);
    printf("cancelled: %s\n", err);

    CHECK(funcmond_pprof_new(NULL, NULL, 1, "space", "bytes", 1) == NULL);
    CHECK_EQ(funcmond_pprof_finish(NULL, 0, 0, &gz, &gz_len), -EINVAL);
}

/* Returns the profile file written (for go), after the checks that need no go. */
static void
cpu_profile(char *file, size_t len)
{
    unsigned char *gz = NULL;
    size_t gz_len = 0;
    char err[256];
    pid_t child = start_burner();
    int status, rc;

    rc = funcmond_pprof_cpu(child, 2, 99, NULL, &gz, &gz_len, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "funcmond_pprof_cpu: %s\n", err);
    CHECK_EQ(rc, 0);
    CHECK(gz != NULL);
    CHECK_GT(gz_len, 20);
    CHECK_EQ(gz[0], 0x1f); /* gzip magic */
    CHECK_EQ(gz[1], 0x8b);
    kill(child, SIGKILL);
    CHECK_EQ(waitpid(child, &status, 0), child);
    tmp_path(file, len, "cpu");
    write_file(file, gz, gz_len);
    free(gz);
}

static void
heap_profile(char *file, size_t len)
{
    static const char *const types[] = {"alloc_objects", "alloc_space"}, *const units[] = {"count", "bytes"};
    static const char *const inner_outer[] = {"inner", "outer"}, *const other_outer[] = {"other", "outer"},
                             *const outer[] = {"outer"};
    struct funcmond_pprof *p = funcmond_pprof_new(types, units, 2, "space", "bytes", 524288);
    unsigned char *gz = NULL;
    size_t gz_len = 0;

    CHECK(p != NULL);
    funcmond_pprof_add(p, inner_outer, 2, (const int64_t[]){3, 3072});
    funcmond_pprof_add(p, other_outer, 2, (const int64_t[]){1, 1048576});
    funcmond_pprof_add(p, inner_outer, 2, (const int64_t[]){2, 2048}); /* merged with the first */
    funcmond_pprof_add(p, outer, 1, (const int64_t[]){4, 100});
    funcmond_pprof_comment(p, "test heap profile");
    CHECK_EQ(funcmond_pprof_finish(p, 1700000000000000000ll, 1000000000ll, &gz, &gz_len), 0);
    CHECK(gz != NULL);
    tmp_path(file, len, "heap");
    write_file(file, gz, gz_len);
    free(gz);
}

int
main(void)
{
    char cpu_file[512], heap_file[512], flat[64], cum[64], name[256];
    char *out;

    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(remove_tmp_files);
    test_errors();
    cpu_profile(cpu_file, sizeof(cpu_file));
    heap_profile(heap_file, sizeof(heap_file));
    if (!have_go())
        SKIP("`go` not in PATH: cannot check the profiles with `go tool pprof` (Debian: apt-get install golang-go)");

    /* CPU: the burn function on top, enough samples. */
    out = run_pprof("-top", cpu_file);
    first_entry(out, name, sizeof(name));
    CHECK_STREQ(name, "funcmon_test_burn");
    CHECK(strstr(out, "Type: cpu") != NULL);
    free(out);
    out = run_pprof("-top -sample_index=samples", cpu_file);
    long long samples = total_of(out);
    printf("samples: %lld\n", samples);
    CHECK_GT(samples, 50);
    /* Callers are in the stacks too. Not necessarily funcmon_test_burn_loop: gcc may build
     * the leaf without a frame (even with -fno-omit-frame-pointer), and then the frame-pointer
     * walk skips the leaf's direct caller; burn_thread, one up, is always there. */
    CHECK(top_entry(out, "burn_thread", flat, cum));
    CHECK_GT(atoll(cum), 0);
    free(out);

    /* Heap: values summed per stack and per function. */
    out = run_pprof("-top -nodefraction=0 -sample_index=alloc_space -unit=B", heap_file);
    CHECK_EQ(total_of(out), 3072 + 2048 + 1048576 + 100);
    CHECK(top_entry(out, "inner", flat, cum));
    CHECK_STREQ(flat, "5120B");
    CHECK(top_entry(out, "other", flat, cum));
    CHECK_STREQ(flat, "1048576B");
    CHECK(top_entry(out, "outer", flat, cum));
    CHECK_STREQ(flat, "100B");
    CHECK_STREQ(cum, "1053796B");
    free(out);
    out = run_pprof("-top -nodefraction=0 -sample_index=alloc_objects", heap_file);
    CHECK_EQ(total_of(out), 10);
    CHECK(top_entry(out, "inner", flat, cum));
    CHECK_STREQ(flat, "5");
    CHECK(top_entry(out, "outer", flat, cum));
    CHECK_STREQ(cum, "10");
    free(out);
    out = run_pprof("-raw", heap_file);
    CHECK(strstr(out, "test heap profile") != NULL);
    free(out);

    printf("ok\n");
    return 0;
}
