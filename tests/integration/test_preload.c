/*
 * test_preload.c - libfuncmon_preload.so gives an unmodified program a segment, a control
 * thread and allocation totals, and takes nothing from it: the program's exit status and
 * output are unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "funcmon/consumer.h"
#include "harness.h"

static void
read_line(int fd, const char *want)
{
    char buf[64];
    size_t len = 0;
    while (len < sizeof(buf) - 1) {
        ssize_t n = read(fd, buf + len, 1);
        CHECK_EQ(n, 1);
        if (buf[len++] == '\n')
            break;
    }
    buf[len] = '\0';
    CHECK_STREQ(buf, want);
}

int
main(void)
{
    int to_child[2], from_child[2];
    struct funcmon_consumer c;
    enum funcmon_invalid why;

    if (harness_malloc_replaced())
        SKIP("built with a sanitizer: its runtime must come first, so it cannot be preloaded into a plain program");
    const char *prefix = harness_private_prefix();
    CHECK_EQ(pipe(to_child), 0);
    CHECK_EQ(pipe(from_child), 0);
    pid_t pid = fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[1]);
        close(from_child[0]);
        setenv("LD_PRELOAD", PRELOAD_LIB, 1);
        setenv("FUNCMON_SERVICE", "plain", 1);
        execl(PLAIN_ALLOCATOR, "plain_allocator", (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    read_line(from_child[0], "ready\n");

    char name[300];
    snprintf(name, sizeof(name), "/%s.plain.%d", prefix, (int)pid);
    CHECK_EQ(funcmon_consumer_open(&c, name, &why), 0);
    CHECK_EQ(c.geo.pid, pid);
    CHECK_STREQ(c.geo.service, "plain");
    CHECK(c.hdr->flags & FUNCMON_HEADER_ALLOC_TRACKING);
    CHECK_EQ(funcmon_consumer_control(&c, FUNCMON_CTL_SAMPLE, 5000), 0);
    struct funcmon_alloc_totals t0 = c.hdr->alloc_totals;

    CHECK_EQ(write(to_child[1], "go\n", 3), 3);
    read_line(from_child[0], "done\n");
    CHECK_EQ(funcmon_consumer_control(&c, FUNCMON_CTL_SAMPLE, 5000), 0);
    struct funcmon_alloc_totals t1 = c.hdr->alloc_totals;
    CHECK_EQ(t1.alloc_bytes - t0.alloc_bytes, 100 * 1000 + 50 * 3000);
    CHECK_EQ(t1.alloc_count - t0.alloc_count, 150);
    CHECK_EQ(t1.free_bytes - t0.free_bytes, 50 * 3000);
    CHECK_EQ(t1.free_count - t0.free_count, 50);
    CHECK_GT(c.hdr->alloc_stats.in_use, 100 * 1000);

    close(to_child[1]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    /* It shut down cleanly at exit, and left the name to us, the attached consumer. */
    CHECK_EQ(c.hdr->state, FUNCMON_STATE_SHUTDOWN);
    funcmon_consumer_close(&c);
    printf("test_preload: ok\n");
    return 0;
}
