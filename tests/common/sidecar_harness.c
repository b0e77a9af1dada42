/*
 * sidecar_harness.c - funcmond's loop in a test process (see sidecar_harness.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "harness.h"
#include "refuse_io_uring.h"
#include "sidecar_harness.h"
#include "snapshot.h"
#include "tick.h"

static void *
loop(void *arg)
{
    struct sidecar *s = arg;
    /* In the loop's own thread: drain_init blocks SIGTERM/SIGINT for this thread only. */
    CHECK_EQ(funcmond_drain_init(s->d), 0);
    __atomic_store_n(&s->running, 1, __ATOMIC_RELEASE);
    CHECK_EQ(funcmond_drain_run(s->d), 0);
    return NULL;
}

void
sidecar_start(struct sidecar *s, const char *const *env)
{
    char prefix_env[128], err[1024];
    const char *envp[64];
    int n = 0;

    memset(s, 0, sizeof(*s));
    harness_refuse_io_uring_if_asked(); /* before the drain loop starts */
    snprintf(prefix_env, sizeof(prefix_env), "SIDECAR_SHM_PREFIX=%s", harness_private_prefix());
    envp[n++] = prefix_env;
    for (int i = 0; env != NULL && env[i] != NULL && n < 62; i++)
        envp[n++] = env[i];
    envp[n++] = "SIDECAR_DRAIN_INTERVAL_MS=5"; /* after the caller's: the first one counts */
    envp[n] = NULL;
    s->d = calloc(1, sizeof(*s->d));
    CHECK(s->d != NULL);
    if (funcmond_config_load(&s->d->cfg, NULL, (char *const *)envp, err, sizeof(err)) != 0) {
        fprintf(stderr, "config: %s\n", err);
        CHECK(0);
    }
    CHECK_EQ(funcmond_agg_init(&s->d->agg, &s->d->cfg), 0);
    CHECK_EQ(funcmond_snapshot_load(s->d), 0);
    CHECK_EQ(pthread_create(&s->thread, NULL, loop, s), 0);
    while (!__atomic_load_n(&s->running, __ATOMIC_ACQUIRE))
        usleep(1000);
    s->reader = funcmond_view_reader(s->d->views);
    CHECK(s->reader != NULL);
    /* A run meant for the epoll loop must not silently use io_uring. */
    const char *refused = getenv("FUNCMON_TEST_REFUSE_IO_URING");
    if (refused != NULL && (strcmp(refused, "1") == 0 || strcmp(refused, "futex_waitv") == 0)) {
        const struct funcmond_view *v = funcmond_view_begin(s->reader);
        enum funcmond_event_loop loop = v->event_loop;
        funcmond_view_end(s->reader);
        CHECK_EQ(loop, FUNCMOND_EVENT_LOOP_EPOLL);
        /* futex_waitv refused too: the waker must really be off (clients drained on the
         * tick), set once by the loop's start, before `running`. */
        if (strcmp(refused, "futex_waitv") == 0)
            CHECK_EQ(s->d->futex_wait_ok, 0);
    }
}

void
sidecar_stop(struct sidecar *s)
{
    __atomic_store_n(&s->d->stop, 1, __ATOMIC_RELEASE);
    CHECK_EQ(pthread_join(s->thread, NULL), 0);
    funcmond_view_reader_free(s->reader);
    funcmond_drain_close(s->d);
    funcmond_snapshot_free(s->d);
    funcmond_agg_free(&s->d->agg);
    free(s->d);
    s->d = NULL;
}

int
sidecar_function(struct sidecar *s, const char *service, const char *package, const char *name, struct funcmond_fn_view *out)
{
    int found = -1;
    const struct funcmond_view *v = funcmond_view_begin(s->reader);
    for (uint32_t i = 0; i < v->n_fns; i++) {
        const struct funcmond_fn_view *f = &v->fns[i];
        if (strcmp(f->service, service) == 0 && strcmp(f->package, package) == 0 && strcmp(f->name, name) == 0) {
            *out = *f;
            found = 0;
            break;
        }
    }
    funcmond_view_end(s->reader);
    return found;
}

int
sidecar_snapshot(struct sidecar *s, struct funcmond_counters *counters, struct funcmond_proc_view *procs, int max)
{
    const struct funcmond_view *v = funcmond_view_begin(s->reader);
    int n = (int)v->n_procs < max ? (int)v->n_procs : max;
    *counters = v->counters;
    if (n > 0) /* no processes: v->procs may be NULL */
        memcpy(procs, v->procs, (size_t)n * sizeof(*procs));
    funcmond_view_end(s->reader);
    return n;
}

int
sidecar_wait_calls(struct sidecar *s, const char *service, const char *package, const char *name, uint64_t calls, int seconds)
{
    struct funcmond_fn_view f = {0};
    for (int i = 0; i < seconds * 100; i++) {
        if (sidecar_function(s, service, package, name, &f) == 0 && f.calls >= calls)
            break;
        usleep(10000);
    }
    if (f.calls != calls) {
        fprintf(stderr, "%s/%s:%s: %llu calls, expected %llu\n", service, package, name, (unsigned long long)f.calls,
                (unsigned long long)calls);
        return -1;
    }
    return 0;
}

pid_t
spawn(const char *program, char *const argv[], const char *const *env, int *out_fd)
{
    int fds[2];
    if (out_fd != NULL)
        CHECK_EQ(pipe(fds), 0);
    pid_t pid = fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failing test takes its children with it */
        if (out_fd != NULL) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
        }
        for (int i = 0; env != NULL && env[i] != NULL; i += 2)
            setenv(env[i], env[i + 1], 1);
        execv(program, argv);
        _exit(127);
    }
    if (out_fd != NULL) {
        close(fds[1]);
        *out_fd = fds[0];
    }
    return pid;
}

/* Reads what a child writes until it closes fd (at most 127 bytes) into buf. */
static void
read_all(int fd, char buf[128])
{
    size_t len = 0;
    ssize_t n;
    while (len < 127 && (n = read(fd, buf + len, 127 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fd);
}

void
read_done(int fd, unsigned long long *calls, unsigned long long *errors)
{
    char buf[128];
    read_all(fd, buf);
    if (sscanf(buf, "done %llu %llu", calls, errors) != 2) {
        fprintf(stderr, "client said: '%s'\n", buf);
        CHECK(0);
    }
}

void
read_done_timed(int fd, unsigned long long *calls, unsigned long long *errors, unsigned long long *ns)
{
    char buf[128];
    read_all(fd, buf);
    if (sscanf(buf, "done %llu %llu %llu", calls, errors, ns) != 3) {
        fprintf(stderr, "client said: '%s'\n", buf);
        CHECK(0);
    }
}

void
wait_ok(pid_t pid)
{
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "pid %d: status %d\n", (int)pid, status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
