/*
 * funcmond_proc.h - a real funcmond process for tests and benchmarks, judged only through
 * what users see: its HTTP API.
 *
 * Tests that judge the shared-memory protocol from outside (every call counted, what was
 * dropped, totals exact) must not read the engine's private structures, which change with
 * the protocol: they start the funcmond binary with its default settings on a private
 * segment prefix and an ephemeral loopback port, ask /debug/profiles, /debug/processes and
 * /metrics, and stop it by its pid.
 */
#ifndef FUNCMON_TEST_FUNCMOND_PROC_H
#define FUNCMON_TEST_FUNCMOND_PROC_H

#include <stdint.h>
#include <sys/types.h>

struct funcmond_proc {
    pid_t pid;
    int port;        /* where it serves HTTP (127.0.0.1) */
    int log_fd;      /* its stderr: a file already unlinked, so nothing is left behind */
    char prefix[64]; /* SIDECAR_SHM_PREFIX */
};

/* Starts `program` (the funcmond binary) with SIDECAR_SHM_PREFIX=prefix, HTTP on
 * 127.0.0.1:0, everything else default, and waits up to 10 s until it serves HTTP. Returns
 * 0, or -errno (the log is printed when funcmond did not come up). */
int funcmond_proc_start(struct funcmond_proc *f, const char *program, const char *prefix);

/* funcmond_proc_start, then this process's client with default settings: funcmon_init(NULL)
 * with FUNCMON_SHM_PREFIX=prefix, FUNCMON_SERVICE=service and no ring or thread setting in
 * the environment; waits up to 10 s until funcmond lists it. Returns 0 or -errno (funcmond
 * stopped again). */
int funcmond_proc_start_client(struct funcmond_proc *f, const char *program, const char *prefix, const char *service);

/* SIGTERM, then SIGKILL after 10 s; closes its log and removes its "<prefix>-sidecar" lock.
 * Returns its wait status, or -errno. */
int funcmond_proc_stop(struct funcmond_proc *f);

/* GET path from funcmond. *body (NUL-terminated, to free) holds the answer's body.
 * Returns the HTTP status, or -errno (then *body is NULL). */
int funcmond_http_get(const struct funcmond_proc *f, const char *path, char **body);

/* Sum of every number in json under "key" (at any depth). Returns how many there were. */
int json_sum_u64(const char *json, const char *key, uint64_t *sum);

/* Sum of the Prometheus samples of metric `name` (exactly that name) whose labels contain
 * each of the NULL-terminated `labels` ("function=\"f\""). Returns how many there were. */
int prom_sum(const char *text, const char *name, const char *const *labels, double *sum);

/* A figure of PROFILE (service, name) ("call_count", "total_duration_ns", ...). Returns 0,
 * -ENOENT when the profile or the field is not there, or -errno. */
int funcmond_profile_u64(const struct funcmond_proc *f, const char *service, const char *name, const char *field, uint64_t *out);

/* Waits up to `seconds` until PROFILE (service, name) counts at least `calls`; *seen is
 * the last call_count read (0 if none). Returns 0 when it reached calls, -ETIMEDOUT. */
int funcmond_wait_calls(const struct funcmond_proc *f, const char *service, const char *name, uint64_t calls, int seconds,
                        uint64_t *seen);

/* Waits up to `seconds` until funcmond lists `processes` attached clients. Returns 0 or
 * -ETIMEDOUT. */
int funcmond_wait_processes(const struct funcmond_proc *f, uint64_t processes, int seconds);

/* Calls of function (service, package, name) whose record never reached funcmond, from
 * the most precise figure funcmond offers: PROFILE dropped_count; else the metric
 * function_dropped_total of that function; else, for a funcmond without either, the
 * figures of every process: funcmon_records_dropped_total (records of full rings) plus
 * calls_without_ring of /debug/processes (calls of threads that had no ring). *source
 * names the figure used. Returns 0 or -errno. */
int funcmond_dropped(const struct funcmond_proc *f, const char *service, const char *package, const char *name, uint64_t *dropped,
                     const char **source);

#endif
