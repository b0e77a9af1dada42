/*
 * config.h - funcmond's configuration: the YAML file of DESIGN §4, overridden key by key
 * from the environment, checked completely before anything starts.
 */
#ifndef FUNCMOND_CONFIG_H
#define FUNCMOND_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define FUNCMOND_MAX_BUCKETS 32
#define FUNCMOND_PATH_MAX 4096

struct funcmond_config {
    /* PROFILING */
    int profiling_enabled;              /* PROFILING.ENABLED, default 1 */
    char profiling_path[128];           /* PROFILING.PATH, default "/debug"; starts with '/', no trailing '/' (except "/") */
    uint32_t cpu_profile_duration_s;    /* PROFILING.CPU_PROFILE_DURATION, default 30, 1..3600 */
    uint32_t memory_profile_interval_s; /* PROFILING.MEMORY_PROFILE_INTERVAL, default 60, 1..86400 */
    /* METRICS */
    int metrics_enabled;           /* METRICS.ENABLED, default 1 */
    char metrics_path[128];        /* METRICS.PATH, default "/metrics" */
    char metrics_skip_paths[1024]; /* METRICS.SKIP_PATHS: globs separated by ";" (default in config.c) */
    /* HTTP */
    char http_listen[256]; /* HTTP.LISTEN, default "127.0.0.1:10000": host:port, [v6]:port */
    char auth_token[256];  /* HTTP.AUTH_TOKEN, default "" (no auth) */
    int http2;             /* HTTP.HTTP2, default 0: HTTP/1.1 only; 1 also cleartext HTTP/2 (prior knowledge, h2c) */
    /* SIDECAR */
    char shm_prefix[65];                           /* SIDECAR.SHM_PREFIX, default "funcmon"; no '/' */
    char shm_dir[FUNCMOND_PATH_MAX];               /* SIDECAR.SHM_DIR, default "/dev/shm": where POSIX shm objects live */
    uint32_t drain_interval_ms;                    /* SIDECAR.DRAIN_INTERVAL_MS, default 10, 1..10000 */
    char state_file[FUNCMOND_PATH_MAX];            /* SIDECAR.STATE_FILE, default "" (no persistence) */
    uint32_t state_interval_s;                     /* SIDECAR.STATE_INTERVAL_S, default 5, 1..3600 */
    uint32_t max_functions;                        /* SIDECAR.MAX_FUNCTIONS, default 10000, 1..1000000 */
    uint32_t exited_retention_s;                   /* SIDECAR.EXITED_RETENTION_S, default 60, 0..86400 */
    uint32_t rescan_interval_s;                    /* SIDECAR.RESCAN_INTERVAL_S, default 5, 1..3600 */
    int allow_other_uids;                          /* SIDECAR.ALLOW_OTHER_UIDS, default 0: only segments owned by our euid */
    double duration_buckets[FUNCMOND_MAX_BUCKETS]; /* SIDECAR.DURATION_BUCKETS, seconds, strictly increasing, > 0 */
    size_t n_duration_buckets;
    double memory_buckets[FUNCMOND_MAX_BUCKETS]; /* SIDECAR.MEMORY_BUCKETS, bytes, strictly increasing, > 0 */
    size_t n_memory_buckets;
};

/* Fills cfg with the defaults of DESIGN §4. */
void funcmond_config_defaults(struct funcmond_config *cfg);

/*
 * Loads the configuration: defaults, then the YAML file `path` (NULL or "" for none),
 * then the environment `envp` (NULL-terminated "NAME=value" strings, e.g. environ): for
 * each key, the upper-case dotted path with '.' replaced by '_' (PROFILING_PATH,
 * SIDECAR_DRAIN_INTERVAL_MS, SIDECAR_DURATION_BUCKETS="0.005,0.01,1" or "[0.005, 0.01]").
 * Returns 0, or a -errno with one line in err naming the key (and the file, or the
 * environment variable) and what is wrong: the error of the failed stat, open or read
 * (-ENOENT, -EACCES, ...), -ENOMEM, -EFBIG for a file past the size limit, and -EINVAL for
 * everything else (not a regular file, unknown key, wrong type, out of range, malformed
 * YAML). cfg is fully valid on success.
 */
int funcmond_config_load(struct funcmond_config *cfg, const char *path, char *const *envp, char *err, size_t errlen);

/* What kind of file a st_mode is, for a message refusing one that is not a regular file:
 * "a FIFO", "a directory", "a character device"... */
const char *funcmond_file_kind(mode_t mode);

/* Writes the effective configuration as YAML (for --check-config). */
void funcmond_config_print(const struct funcmond_config *cfg, FILE *out);

#endif
