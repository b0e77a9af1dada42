/*
 * sidecar_harness.h - runs funcmond's drain loop inside a test process, reads what it
 * publishes as the HTTP server will (through views), and starts client processes.
 */
#ifndef FUNCMON_TEST_SIDECAR_HARNESS_H
#define FUNCMON_TEST_SIDECAR_HARNESS_H

#include <pthread.h>
#include <sys/types.h>

#include "view.h"

struct sidecar {
    struct funcmond *d;
    pthread_t thread;
    struct funcmond_reader *reader;
    int running;
};

/* Starts the loop in a thread with the settings in `env` ("NAME=value", NULL-terminated)
 * on top of: SIDECAR_SHM_PREFIX = the test's private prefix, 5 ms drain interval. */
void sidecar_start(struct sidecar *s, const char *const *env);
/* Stops the loop (final drain, state file) and frees it. */
void sidecar_stop(struct sidecar *s);

/* A copy of function (service, package, name) from the current view; 0 if found. */
int sidecar_function(struct sidecar *s, const char *service, const char *package, const char *name, struct funcmond_fn_view *out);
/* A copy of the current view's counters and process list (up to max processes). */
int sidecar_snapshot(struct sidecar *s, struct funcmond_counters *counters, struct funcmond_proc_view *procs, int max);

/* Waits up to `seconds` until calls of (service, package, name) reach `calls`. Returns 0
 * when they did (exactly), -1 otherwise, printing what it saw. */
int sidecar_wait_calls(struct sidecar *s, const char *service, const char *package, const char *name, uint64_t calls, int seconds);

/* Starts `program` with argv (NULL-terminated) and extra environment (NAME, value pairs,
 * NULL-terminated); its stdout goes to *out_fd if out_fd != NULL. Returns the pid. */
pid_t spawn(const char *program, char *const argv[], const char *const *env, int *out_fd);

/* Reads a child's "done CALLS ERRORS" line. */
void read_done(int fd, unsigned long long *calls, unsigned long long *errors);
/* Reads a child's "done CALLS ERRORS NS" line (e2e_client with E2E_TIME_CALLS=1). */
void read_done_timed(int fd, unsigned long long *calls, unsigned long long *errors, unsigned long long *ns);

/* Waits for pid and checks it exited with status 0. */
void wait_ok(pid_t pid);

#endif
