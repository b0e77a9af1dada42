/*
 * main.c - funcmond, the funcmon sidecar: command line, configuration, start and stop.
 *
 * funcmond finds the shared-memory segments of profiled processes, drains their rings,
 * and aggregates every call (see sidecar.h for the modules). Configuration errors are
 * reported before anything starts, naming the key, with exit code 2; so is a second
 * funcmond on the same SHM_PREFIX, with exit code 1 (one prefix, one lock). SIGTERM and
 * SIGINT stop it cleanly: every client drained to its last record, the state file
 * written, exit code 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "http.h"
#include "log.h"
#include "sidecar.h"
#include "tick.h"
#include "snapshot.h"

#ifndef FUNCMON_VERSION
#define FUNCMON_VERSION "0"
#endif

extern char **environ;

static void
usage(FILE *out)
{
    fputs("Usage: funcmond [-c FILE] [--check-config]\n"
          "       funcmond --help | --version\n"
          "\n"
          "The funcmon sidecar: drains the shared-memory rings of profiled processes and\n"
          "aggregates every call per function.\n"
          "\n"
          "  -c, --config FILE   YAML configuration (default: $FUNCMON_CONFIG, else built-in defaults)\n"
          "      --check-config  check the configuration, print the effective values, exit\n"
          "  -h, --help          this text\n"
          "  -V, --version       the version\n"
          "\n"
          "Every key can be set from the environment: its dotted path in upper case with '.'\n"
          "replaced by '_' (PROFILING_PATH=/dbg, SIDECAR_DRAIN_INTERVAL_MS=5). Exit codes: 0 after a\n"
          "clean stop, 1 on a runtime failure or when another funcmond runs with the same SIDECAR.SHM_PREFIX,\n"
          "2 on a bad command line or configuration.\n",
          out);
}

/* Every HTTP connection and every client costs descriptors, and the soft limit (often
 * 1024) is far below what the hard limit allows: take the hard limit, and say what it is. */
static void
raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0)
        return;
    rlim_t was = r.rlim_cur;
    r.rlim_cur = r.rlim_max;
    if (was != r.rlim_max && setrlimit(RLIMIT_NOFILE, &r) != 0) {
        LOG_WARN("open files: cannot raise the limit from %llu to %llu: %s", (unsigned long long)was,
                 (unsigned long long)r.rlim_max, strerror(errno));
        return;
    }
    LOG_INFO("open files: limit %llu%s", (unsigned long long)r.rlim_cur, was != r.rlim_max ? " (raised to the hard limit)" : "");
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"check-config", no_argument, NULL, 'C'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *config_file = getenv("FUNCMON_CONFIG");
    int check_only = 0, opt;
    char err[1024];

    while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_file = optarg;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("funcmond %s\n", FUNCMON_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "funcmond: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (getenv("FUNCMOND_DEBUG") != NULL && strcmp(getenv("FUNCMOND_DEBUG"), "1") == 0)
        funcmond_log_min = FUNCMOND_LOG_DEBUG;

    struct funcmond *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        fputs("funcmond: out of memory\n", stderr);
        return 1;
    }
    if (funcmond_config_load(&d->cfg, config_file, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "funcmond: %s\n", err);
        free(d);
        return 2;
    }
    if (check_only) {
        funcmond_config_print(&d->cfg, stdout);
        free(d);
        return 0;
    }
    int ret = 1, holder, locked;
    /* One funcmond per prefix, decided before anything is touched (state file, HTTP port,
     * announcement), so a second one leaves the first and its clients alone. */
    if ((locked = funcmond_discovery_lock(d, &holder)) != 0) {
        if (locked == -EWOULDBLOCK)
            LOG_ERROR("another funcmond (pid %d) is running with SIDECAR.SHM_PREFIX '%s' in %s: not starting", holder,
                      d->cfg.shm_prefix, d->cfg.shm_dir);
        else if (locked == -EPERM || locked == -EINVAL)
            LOG_ERROR("%s/%s-sidecar is %s: not starting (remove it; one funcmond per SIDECAR.SHM_PREFIX)", d->cfg.shm_dir,
                      d->cfg.shm_prefix, locked == -EPERM ? "owned by another user" : "not a regular file");
        else
            LOG_ERROR("cannot lock %s/%s-sidecar (one funcmond per SIDECAR.SHM_PREFIX): %s", d->cfg.shm_dir, d->cfg.shm_prefix,
                      strerror(-locked));
        free(d);
        return 1;
    }
    raise_fd_limit();
    int loaded = 0;
    if (funcmond_agg_init(&d->agg, &d->cfg) != 0 || (loaded = funcmond_snapshot_load(d)) == -ENOMEM) {
        LOG_ERROR("out of memory");
        goto out;
    }
    if (loaded != 0) {
        ret = 2; /* SIDECAR.STATE_FILE is not a regular file (logged): a configuration error */
        goto out;
    }
    if (funcmond_drain_init(d) != 0)
        goto out;
    struct funcmond_http *http = NULL;
    if ((d->cfg.profiling_enabled || d->cfg.metrics_enabled) &&
        funcmond_http_start(&d->cfg, d->views, &d->rq, &http, err, sizeof(err)) != 0) {
        LOG_ERROR("%s", err);
        funcmond_drain_close(d);
        goto out;
    }
    LOG_INFO("funcmond %s: watching %s for '%s.*' segments, draining every %u ms", FUNCMON_VERSION, d->cfg.shm_dir,
             d->cfg.shm_prefix, d->cfg.drain_interval_ms);
    ret = funcmond_drain_run(d) == 0 ? 0 : 1;
    funcmond_http_stop(http); /* before the views it reads go */
    funcmond_drain_close(d);
    LOG_INFO("stopped: %llu records from %llu segments, %llu dropped by clients, %llu lost",
             (unsigned long long)d->counters.records, (unsigned long long)d->counters.segments_attached,
             (unsigned long long)d->counters.dropped, (unsigned long long)d->counters.lost);
out:
    funcmond_discovery_unlock(d); /* if drain_close did not */
    funcmond_snapshot_free(d);
    funcmond_agg_free(&d->agg);
    free(d);
    return ret;
}
