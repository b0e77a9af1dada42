/*
 * test_restart.c - the real funcmond stopped and started again while a client keeps
 * calling: the client never blocks, what it recorded meanwhile is counted after the
 * restart, and with a state file the totals continue: exactly after SIGTERM, and after
 * SIGKILL exactly up to the records counted as lost, also for a client that appeared after
 * the last state file write (in no state file, its consumed records are counted as lost).
 *
 * Truth is the client's own count of its calls. The totals are read back from the state
 * file the last funcmond wrote when it stopped. Once client and funcmond have both stopped
 * no segment is left: funcmond removes an exited client's at SIGTERM, within the retention
 * time; a client whose funcmond was killed removes its own.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "harness.h"
#include "sidecar_harness.h"
#include "snapshot.h"

static const char *prefix;
static char state[256];
static char log_path[256]; /* the running funcmond's stderr */

/* A funcmond writing the state file at start and every `interval` seconds, serving HTTP on
 * an ephemeral loopback port (never the default one, which anything else may hold). */
static pid_t
start_funcmond(const char *interval)
{
    char *argv[] = {"funcmond", NULL};
    const char *env[] = {
        "SIDECAR_SHM_PREFIX", prefix, "SIDECAR_STATE_FILE", state, "SIDECAR_STATE_INTERVAL_S", interval, "HTTP_LISTEN",
        "127.0.0.1:0",        NULL};
    /* Its log goes to a file, read back at the stop (which loop ran). */
    int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK_GE(log, 0);
    int saved = dup(2);
    CHECK_GE(saved, 0);
    CHECK_EQ(dup2(log, 2), 2);
    pid_t pid = spawn(FUNCMOND, argv, env, NULL);
    CHECK_EQ(dup2(saved, 2), 2);
    close(saved);
    close(log);
    return pid;
}

/* Shows the stopped funcmond's log; where the test refused io_uring, it must have said that
 * it ran on epoll. */
static void
check_log(void)
{
    static char buf[65536];
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    CHECK_GE(fd, 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    CHECK_GE(n, 0);
    buf[n] = '\0';
    fputs(buf, stderr);
    const char *refused = getenv("FUNCMON_TEST_REFUSE_IO_URING");
    if (refused != NULL && strcmp(refused, "1") == 0)
        CHECK(strstr(buf, "the drain loop runs on epoll") != NULL);
}

static void
stop_funcmond(pid_t pid, int sig)
{
    int status;
    kill(pid, sig);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    check_log();
    if (sig == SIGTERM)
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The totals of (svc, e2e, work) and the lost count in the state file. */
static void
read_state(uint64_t *calls, uint64_t *errors, uint64_t *lost)
{
    struct funcmond *d = calloc(1, sizeof(*d));
    char err[256];
    char *const env[] = {NULL};
    CHECK(d != NULL);
    CHECK_EQ(funcmond_config_load(&d->cfg, NULL, env, err, sizeof(err)), 0);
    snprintf(d->cfg.state_file, sizeof(d->cfg.state_file), "%s", state);
    CHECK_EQ(funcmond_agg_init(&d->agg, &d->cfg), 0);
    CHECK_EQ(funcmond_snapshot_load(d), 0);
    uint32_t id;
    CHECK_EQ(funcmond_agg_find(&d->agg, "svc", "e2e", "work", &id), 0);
    *calls = d->agg.fns[id]->calls;
    *errors = d->agg.fns[id]->errors;
    *lost = d->counters.lost;
    funcmond_snapshot_free(d);
    funcmond_agg_free(&d->agg);
    free(d);
}

/* Checks no segment is left under the prefix, naming any that is (then removed). */
static void
check_no_segment(void)
{
    char prefix_dot[128];
    int left = 0;
    snprintf(prefix_dot, sizeof(prefix_dot), "%s.", prefix);
    DIR *dir = opendir("/dev/shm");
    CHECK(dir != NULL);
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (strncmp(e->d_name, prefix_dot, strlen(prefix_dot)) == 0) {
            fprintf(stderr, "left behind: %s\n", e->d_name);
            left++;
        }
    closedir(dir);
    harness_remove_segments(prefix);
    CHECK_EQ(left, 0);
}

/* stop_signal stops the first funcmond. late: the first funcmond writes the state file
 * once, at its start, before the client exists, so the client is in no state file when
 * that funcmond is killed. */
static void
run(int stop_signal, int late)
{
    unsigned long long made, failed;
    uint64_t calls, errors, lost;
    int out;
    char *argv[] = {"e2e_client", "2", "0", "200", "7", NULL};
    const char *env[] = {"FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", "svc", "FUNCMON_POOL_RECORDS", "1048576", NULL};

    /* A fresh start: no state file, and no segment of an earlier run's client (whose
     * records, consumed and in no state file now, would count as lost). */
    unlink(state);
    harness_remove_segments(prefix);
    pid_t sidecar = start_funcmond(late ? "3600" : "1");
    if (late) {
        for (int i = 0; i < 1000 && access(state, F_OK) != 0; i++)
            usleep(10000);
        CHECK_EQ(access(state, F_OK), 0);
    }
    pid_t c = spawn(E2E_CLIENT, argv, env, &out);
    sleep(2); /* a state file write (every second) and a few thousand calls */
    stop_funcmond(sidecar, stop_signal);
    usleep(700000); /* the client goes on alone: its rings hold the calls */
    sidecar = start_funcmond("1");
    sleep(2);
    kill(c, SIGTERM);
    read_done(out, &made, &failed);
    wait_ok(c);
    usleep(300000);
    stop_funcmond(sidecar, SIGTERM); /* within the client's retention time */
    check_no_segment();
    read_state(&calls, &errors, &lost);
    printf("%s%s: client made %llu calls (%llu failed); totals %llu (%llu failed), %llu lost\n",
           stop_signal == SIGTERM ? "SIGTERM" : "SIGKILL", late ? " after the last state write" : "", made, failed,
           (unsigned long long)calls, (unsigned long long)errors, (unsigned long long)lost);
    if (stop_signal == SIGTERM) {
        CHECK_EQ(lost, 0);
        CHECK_EQ(calls, made);
        CHECK_EQ(errors, failed);
    } else {
        CHECK_EQ(calls + lost, made); /* lost records are exactly those missing */
        CHECK_LE(errors, failed);
        if (late)
            CHECK_GT(lost, 0); /* the first funcmond consumed records that no state file holds */
    }
    CHECK_GT(made, 1000);
}

/* funcmond killed while the client runs: the client, exiting later, removes its segment. */
static void
vanish(void)
{
    unsigned long long made, failed;
    int out;
    char *argv[] = {"e2e_client", "1", "0", "1000", "0", NULL};
    const char *env[] = {"FUNCMON_SHM_PREFIX", prefix, "FUNCMON_SERVICE", "svc", NULL};

    pid_t sidecar = start_funcmond("1");
    pid_t c = spawn(E2E_CLIENT, argv, env, &out);
    sleep(1); /* attached */
    stop_funcmond(sidecar, SIGKILL);
    kill(c, SIGTERM);
    read_done(out, &made, &failed);
    wait_ok(c);
    CHECK_GT(made, 0);
    check_no_segment();
    printf("vanish: the client removed its own segment\n");
}

int
main(void)
{
    prefix = harness_private_prefix();
    char dir[] = "/tmp/funcmond-restart-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(state, sizeof(state), "%s/state.msgpack", dir);
    snprintf(log_path, sizeof(log_path), "%s/funcmond.log", dir);
    alarm(120);
    run(SIGTERM, 0);
    run(SIGKILL, 0);
    run(SIGKILL, 1);
    vanish();
    unlink(state);
    unlink(log_path);
    rmdir(dir);
    printf("test_restart: ok\n");
    return 0;
}
