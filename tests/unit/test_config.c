/*
 * test_config.c - funcmond's configuration: defaults, a full file in block and in flow
 * style, environment overrides of every kind of key, every error (one line naming the key
 * and the file or the variable, the caller's struct untouched), and print -> load giving
 * back the same values.
 *
 * Files go to a fresh mkdtemp directory removed at the end. The environment is passed as
 * an array, so the test neither reads nor changes its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

#define FIELD_SIZE(f) sizeof(((struct funcmond_config *)0)->f)
#define FIELD(cfg, off, type) (*(type *)((char *)(cfg) + (off)))

static char dir[PATH_MAX];
static int nfiles;
static char path[PATH_MAX + 32]; /* the file last written */
static char err[2048];
static int nerrors; /* error cases checked */
static char text[16384];

static void
write_bytes(const char *data, size_t len)
{
    FILE *f;

    snprintf(path, sizeof(path), "%s/c%03d.yaml", dir, nfiles++);
    CHECK((f = fopen(path, "w")) != NULL);
    CHECK_EQ(fwrite(data, 1, len, f), len);
    CHECK_EQ(fclose(f), 0);
}

/* Loads yaml (NULL: no file) and envp into *cfg; the message, if any, is in err. */
static int
load(struct funcmond_config *cfg, const char *yaml, char *const *envp)
{
    if (yaml != NULL)
        write_bytes(yaml, strlen(yaml));
    return funcmond_config_load(cfg, yaml != NULL ? path : NULL, envp, err, sizeof(err));
}

#define LOAD_OK(cfg, yaml, envp) load_ok(__LINE__, cfg, yaml, envp)

static void
load_ok(int line, struct funcmond_config *cfg, const char *yaml, char *const *envp)
{
    if (load(cfg, yaml, envp) != 0) {
        fprintf(stderr, "%s:%d: load failed: %s\n--- file:\n%s\n", __FILE__, line, err, yaml ? yaml : "(none)");
        exit(1);
    }
    CHECK_STREQ(err, "");
}

/*
 * Loads yaml (NULL: no file) with envp and expects an error: -1, the struct untouched, one
 * line starting "<file>: <what>: " (or "<file>: " when what is NULL) for a file error or
 * "environment: <what>: " for an environment error, containing every needle.
 */
static void
expect_error(int line, const char *yaml, char *const *envp, int from_env, const char *what, const char *const *needles)
{
    struct funcmond_config cfg, before;
    char prefix[PATH_MAX + 256];
    int rc;

    memset(&cfg, 0x5a, sizeof(cfg));
    memcpy(&before, &cfg, sizeof(cfg));
    rc = load(&cfg, yaml, envp);
    if (from_env)
        snprintf(prefix, sizeof(prefix), "environment: %s: ", what);
    else if (what != NULL)
        snprintf(prefix, sizeof(prefix), "%s: %s: ", path, what);
    else
        snprintf(prefix, sizeof(prefix), "%s: ", path);
    if (rc != -EINVAL) {
        fprintf(stderr, "%s:%d: expected an error starting \"%s\", load returned %d\n--- file:\n%s\n", __FILE__, line, prefix, rc,
                yaml ? yaml : "(none)");
        exit(1);
    }
    if (memcmp(&cfg, &before, sizeof(cfg)) != 0) {
        fprintf(stderr, "%s:%d: a failed load changed the struct (%s)\n", __FILE__, line, err);
        exit(1);
    }
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strchr(err, '\n') != NULL) {
        fprintf(stderr, "%s:%d: message \"%s\" does not start with \"%s\" or is not one line\n", __FILE__, line, err, prefix);
        exit(1);
    }
    for (; *needles != NULL; needles++) {
        if (strstr(err, *needles) == NULL) {
            fprintf(stderr, "%s:%d: message \"%s\" does not contain \"%s\"\n", __FILE__, line, err, *needles);
            exit(1);
        }
    }
    nerrors++;
}

#define FILE_ERROR(yaml, what, ...) expect_error(__LINE__, yaml, NULL, 0, what, (const char *const[]){__VA_ARGS__, NULL})
#define ENV_ERROR(yaml, envp, var, ...) expect_error(__LINE__, yaml, envp, 1, var, (const char *const[]){__VA_ARGS__, NULL})
/* One variable: ENV("NAME=value"). */
#define ENV(...) ((char *[]){__VA_ARGS__, NULL})

#define SAME(a, b) same(__LINE__, a, b)

/* Every field of a and b is equal (strings up to their terminator, buckets exactly). */
static void
same(int line, const struct funcmond_config *a, const struct funcmond_config *b)
{
#define SAME_NUM(f)                                                                                                                \
    if (a->f != b->f) {                                                                                                            \
        fprintf(stderr, "%s:%d: %s differs: %lld vs %lld\n", __FILE__, line, #f, (long long)a->f, (long long)b->f);                \
        exit(1);                                                                                                                   \
    }
#define SAME_STR(f)                                                                                                                \
    if (strcmp(a->f, b->f) != 0) {                                                                                                 \
        fprintf(stderr, "%s:%d: %s differs: \"%s\" vs \"%s\"\n", __FILE__, line, #f, a->f, b->f);                                  \
        exit(1);                                                                                                                   \
    }
#define SAME_LIST(f, n)                                                                                                            \
    SAME_NUM(n);                                                                                                                   \
    for (size_t i = 0; i < a->n; i++)                                                                                              \
        if (a->f[i] != b->f[i]) {                                                                                                  \
            fprintf(stderr, "%s:%d: %s[%zu] differs: %.17g vs %.17g\n", __FILE__, line, #f, i, a->f[i], b->f[i]);                  \
            exit(1);                                                                                                               \
        }
    SAME_NUM(profiling_enabled);
    SAME_STR(profiling_path);
    SAME_NUM(cpu_profile_duration_s);
    SAME_NUM(memory_profile_interval_s);
    SAME_NUM(metrics_enabled);
    SAME_STR(metrics_path);
    SAME_STR(metrics_skip_paths);
    SAME_STR(http_listen);
    SAME_STR(auth_token);
    SAME_STR(shm_prefix);
    SAME_STR(shm_dir);
    SAME_NUM(drain_interval_ms);
    SAME_STR(state_file);
    SAME_NUM(state_interval_s);
    SAME_NUM(max_functions);
    SAME_NUM(exited_retention_s);
    SAME_NUM(rescan_interval_s);
    SAME_NUM(allow_other_uids);
    SAME_LIST(duration_buckets, n_duration_buckets);
    SAME_LIST(memory_buckets, n_memory_buckets);
#undef SAME_NUM
#undef SAME_STR
#undef SAME_LIST
}

static void
set_list(double *dst, size_t *n, const double *v, size_t count)
{
    memset(dst, 0, FUNCMOND_MAX_BUCKETS * sizeof(double));
    memcpy(dst, v, count * sizeof(double));
    *n = count;
}

#define SET_LIST(cfg, f, ...)                                                                                                      \
    set_list((cfg)->f##_buckets, &(cfg)->n_##f##_buckets, (const double[]){__VA_ARGS__},                                           \
             sizeof((const double[]){__VA_ARGS__}) / sizeof(double))

/* Defaults as DESIGN §4 and config.h give them, written out independently of config.c. */
static void
check_defaults(const struct funcmond_config *c)
{
    static const double duration[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
    static const double memory[] = {1024, 10240, 102400, 1048576, 10485760, 104857600};

    CHECK_EQ(c->profiling_enabled, 1);
    CHECK_STREQ(c->profiling_path, "/debug");
    CHECK_EQ(c->cpu_profile_duration_s, 30);
    CHECK_EQ(c->memory_profile_interval_s, 60);
    CHECK_EQ(c->metrics_enabled, 1);
    CHECK_STREQ(c->metrics_path, "/metrics");
    CHECK_STREQ(c->metrics_skip_paths, "/swagger/*;/metrics;/debug/*");
    CHECK_STREQ(c->http_listen, "127.0.0.1:10000");
    CHECK_STREQ(c->auth_token, "");
    CHECK_EQ(c->http2, 0);
    CHECK_STREQ(c->shm_prefix, "funcmon");
    CHECK_STREQ(c->shm_dir, "/dev/shm");
    CHECK_EQ(c->drain_interval_ms, 10);
    CHECK_STREQ(c->state_file, "");
    CHECK_EQ(c->state_interval_s, 5);
    CHECK_EQ(c->max_functions, 10000);
    CHECK_EQ(c->exited_retention_s, 60);
    CHECK_EQ(c->rescan_interval_s, 5);
    CHECK_EQ(c->allow_other_uids, 0);
    CHECK_EQ(c->n_duration_buckets, sizeof(duration) / sizeof(duration[0]));
    CHECK(memcmp(c->duration_buckets, duration, sizeof(duration)) == 0);
    CHECK_EQ(c->n_memory_buckets, sizeof(memory) / sizeof(memory[0]));
    CHECK(memcmp(c->memory_buckets, memory, sizeof(memory)) == 0);
}

/* The values of FULL_BLOCK and FULL_FLOW: every key away from its default. */
static void
full_expected(struct funcmond_config *c)
{
    memset(c, 0, sizeof(*c));
    c->profiling_enabled = 0;
    strcpy(c->profiling_path, "/prof");
    c->cpu_profile_duration_s = 45;
    c->memory_profile_interval_s = 120;
    c->metrics_enabled = 0;
    strcpy(c->metrics_path, "/m");
    strcpy(c->metrics_skip_paths, "/health;/ready/*");
    strcpy(c->http_listen, "[::1]:9100");
    strcpy(c->auth_token, "s3cret");
    c->http2 = 1;
    strcpy(c->shm_prefix, "fmtest");
    strcpy(c->shm_dir, "/run/shm");
    c->drain_interval_ms = 25;
    strcpy(c->state_file, "/var/lib/funcmond/state.msgpack");
    c->state_interval_s = 9;
    c->max_functions = 500;
    c->exited_retention_s = 0;
    c->rescan_interval_s = 2;
    c->allow_other_uids = 1;
    SET_LIST(c, duration, 0.001, 0.5, 2);
    SET_LIST(c, memory, 512, 4096, 1e6);
}

static const char FULL_BLOCK[] = "# every key, none at its default\n"
                                 "PROFILING:\n"
                                 "  ENABLED: false\n"
                                 "  PATH: /prof\n"
                                 "  CPU_PROFILE_DURATION: 45\n"
                                 "  MEMORY_PROFILE_INTERVAL: 120\n"
                                 "METRICS:\n"
                                 "  ENABLED: no\n"
                                 "  PATH: \"/m\"\n"
                                 "  SKIP_PATHS: '/health;/ready/*'\n"
                                 "HTTP:\n"
                                 "  LISTEN: \"[::1]:9100\"\n"
                                 "  AUTH_TOKEN: s3cret   # a comment after a value\n"
                                 "  HTTP2: true\n"
                                 "SIDECAR:\n"
                                 "  SHM_PREFIX: fmtest\n"
                                 "  SHM_DIR: /run/shm\n"
                                 "  DRAIN_INTERVAL_MS: 25\n"
                                 "  STATE_FILE: /var/lib/funcmond/state.msgpack\n"
                                 "  STATE_INTERVAL_S: 9\n"
                                 "  MAX_FUNCTIONS: 500\n"
                                 "  EXITED_RETENTION_S: 0\n"
                                 "  RESCAN_INTERVAL_S: 2\n"
                                 "  ALLOW_OTHER_UIDS: on\n"
                                 "  DURATION_BUCKETS:\n"
                                 "    - 0.001\n"
                                 "    - .5\n"
                                 "    - 2\n"
                                 "  MEMORY_BUCKETS: [512, 4096, 1e6]\n";

static const char FULL_FLOW[] =
    "PROFILING: {ENABLED: Off, PATH: \"/prof\", CPU_PROFILE_DURATION: 45, MEMORY_PROFILE_INTERVAL: 120}\n"
    "METRICS:   {ENABLED: FALSE, PATH: /m, SKIP_PATHS: \"/health;/ready/*\"}\n"
    "HTTP:      {LISTEN: \"[::1]:9100\", AUTH_TOKEN: \"s3cret\", HTTP2: on}\n"
    "SIDECAR:   {SHM_PREFIX: fmtest, SHM_DIR: /run/shm, DRAIN_INTERVAL_MS: 25,\n"
    "            STATE_FILE: /var/lib/funcmond/state.msgpack, STATE_INTERVAL_S: 9, MAX_FUNCTIONS: 500,\n"
    "            EXITED_RETENTION_S: 0, RESCAN_INTERVAL_S: 2, ALLOW_OTHER_UIDS: YES,\n"
    "            DURATION_BUCKETS: [.001, 0.5, 2.0], MEMORY_BUCKETS: [512, 4096, 1000000]}\n";

static void
test_defaults(void)
{
    struct funcmond_config c;

    funcmond_config_defaults(&c);
    check_defaults(&c);
    LOAD_OK(&c, NULL, NULL);
    check_defaults(&c);
    CHECK_EQ(funcmond_config_load(&c, "", ENV("UNRELATED=1"), err, sizeof(err)), 0);
    check_defaults(&c);
    /* Files that set nothing. */
    LOAD_OK(&c, "", NULL);
    check_defaults(&c);
    LOAD_OK(&c, "# only a comment\n\n   # and another\n", NULL);
    check_defaults(&c);
    LOAD_OK(&c, "---\n", NULL);
    check_defaults(&c);
    LOAD_OK(&c, "~\n", NULL);
    check_defaults(&c);
    LOAD_OK(&c, "PROFILING:\n  # ENABLED: false\nMETRICS: ~\nHTTP: {}\n", NULL);
    check_defaults(&c);
}

static void
test_full_file(void)
{
    struct funcmond_config want, got, flow;

    full_expected(&want);
    LOAD_OK(&got, FULL_BLOCK, NULL);
    SAME(&got, &want);
    LOAD_OK(&flow, FULL_FLOW, NULL);
    SAME(&flow, &want);
    /* The whole document as one flow mapping. */
    LOAD_OK(&got, "{HTTP: {LISTEN: \"localhost:1\"}, SIDECAR: {MEMORY_BUCKETS: [1]}}", NULL);
    CHECK_STREQ(got.http_listen, "localhost:1");
    CHECK_EQ(got.n_memory_buckets, 1);
    CHECK(got.memory_buckets[0] == 1);
    /* Any scalar style is a value: quoted numbers and booleans, plain strings that look like numbers. */
    LOAD_OK(&got, "SIDECAR: {DRAIN_INTERVAL_MS: \"7\", ALLOW_OTHER_UIDS: 'true', SHM_PREFIX: 123, STATE_FILE: \"\"}\n", NULL);
    CHECK_EQ(got.drain_interval_ms, 7);
    CHECK_EQ(got.allow_other_uids, 1);
    CHECK_STREQ(got.shm_prefix, "123");
    CHECK_STREQ(got.state_file, "");
    /* Anchors and aliases are plain YAML. */
    LOAD_OK(&got, "SIDECAR:\n  STATE_INTERVAL_S: &n 17\n  RESCAN_INTERVAL_S: *n\n", NULL);
    CHECK_EQ(got.state_interval_s, 17);
    CHECK_EQ(got.rescan_interval_s, 17);
}

static void
test_env_overrides(void)
{
    struct funcmond_config c, want;
    char *env[] = {/* Not ours: ignored, whatever they hold. */
                   "HTTP_PROXY=http://proxy:3128", "SIDECAR_FOO=1", "PROFILING=1", "PROFILING_ENABLEDX=0", "profiling_enabled=0",
                   "XPROFILING_ENABLED=0", "PROFILING_ENABLED", "SIDECAR_DRAIN_INTERVAL=0",
                   /* Every key. */
                   "PROFILING_ENABLED=YES", "PROFILING_PATH=/p2", "PROFILING_CPU_PROFILE_DURATION=3600",
                   "PROFILING_MEMORY_PROFILE_INTERVAL=86400", "METRICS_ENABLED=1", "METRICS_PATH=/m2",
                   "METRICS_SKIP_PATHS=", "HTTP_LISTEN=0.0.0.0:0", "HTTP_AUTH_TOKEN=", "SIDECAR_SHM_PREFIX=env",
                   "SIDECAR_SHM_DIR=/e", "SIDECAR_DRAIN_INTERVAL_MS=1", "SIDECAR_STATE_FILE=", "SIDECAR_STATE_INTERVAL_S=3600",
                   "SIDECAR_MAX_FUNCTIONS=1000000", "SIDECAR_EXITED_RETENTION_S=86400", "SIDECAR_RESCAN_INTERVAL_S=1",
                   "SIDECAR_ALLOW_OTHER_UIDS=off", "SIDECAR_DURATION_BUCKETS=0.25,0.5 , 1", "SIDECAR_MEMORY_BUCKETS= [ 1, 2,3 ] ",
                   /* A second definition is not seen, as with getenv. */
                   "SIDECAR_DRAIN_INTERVAL_MS=7", NULL};

    memset(&want, 0, sizeof(want));
    want.profiling_enabled = 1;
    strcpy(want.profiling_path, "/p2");
    want.cpu_profile_duration_s = 3600;
    want.memory_profile_interval_s = 86400;
    want.metrics_enabled = 1;
    strcpy(want.metrics_path, "/m2");
    strcpy(want.http_listen, "0.0.0.0:0");
    strcpy(want.shm_prefix, "env");
    strcpy(want.shm_dir, "/e");
    want.drain_interval_ms = 1;
    want.state_interval_s = 3600;
    want.max_functions = 1000000;
    want.exited_retention_s = 86400;
    want.rescan_interval_s = 1;
    want.allow_other_uids = 0;
    SET_LIST(&want, duration, 0.25, 0.5, 1);
    SET_LIST(&want, memory, 1, 2, 3);
    LOAD_OK(&c, FULL_BLOCK, env);
    SAME(&c, &want);
    LOAD_OK(&c, FULL_FLOW, env);
    SAME(&c, &want);

    /* The other list syntax for each list; keys the environment leaves alone keep the file's value. */
    full_expected(&want);
    SET_LIST(&want, duration, 0.125);
    SET_LIST(&want, memory, 7, 8);
    LOAD_OK(&c, FULL_BLOCK, ENV("SIDECAR_DURATION_BUCKETS=[0.125]", "SIDECAR_MEMORY_BUCKETS=7,8"));
    SAME(&c, &want);
    LOAD_OK(&c, FULL_BLOCK, ENV("SIDECAR_DURATION_BUCKETS=[0.125 ]", "SIDECAR_MEMORY_BUCKETS= 7 , 8"));
    SAME(&c, &want);

    /* Without a file too. */
    LOAD_OK(&c, NULL, ENV("HTTP_AUTH_TOKEN=t0k", "SIDECAR_ALLOW_OTHER_UIDS=True"));
    CHECK_STREQ(c.auth_token, "t0k");
    CHECK_EQ(c.allow_other_uids, 1);

    /* Validation sees merged values: the file's METRICS.PATH collides with the default
     * PROFILING.PATH, and the environment moves PROFILING.PATH away. */
    LOAD_OK(&c, "METRICS: {PATH: /debug}\n", ENV("PROFILING_PATH=/prof"));
    CHECK_STREQ(c.metrics_path, "/debug");
    CHECK_STREQ(c.profiling_path, "/prof");
}

static void
test_booleans(void)
{
    static const struct {
        const char *text;
        int value;
    } ok[] = {{"true", 1},  {"TRUE", 1},  {"True", 1}, {"yes", 1}, {"YES", 1}, {"on", 1},  {"On", 1}, {"1", 1},
              {"false", 0}, {"FALSE", 0}, {"no", 0},   {"No", 0},  {"off", 0}, {"OFF", 0}, {"0", 0}};
    static const char *const bad[] = {"2", "y", "n", "enabled", "tru", "truee", "-1", " true", "01"};
    struct funcmond_config c;
    char var[128];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "SIDECAR: {ALLOW_OTHER_UIDS: '%s'}\nPROFILING: {ENABLED: %s}\n", ok[i].text, ok[i].text);
        LOAD_OK(&c, text, NULL);
        CHECK_EQ(c.allow_other_uids, ok[i].value);
        CHECK_EQ(c.profiling_enabled, ok[i].value);
        snprintf(var, sizeof(var), "METRICS_ENABLED=%s", ok[i].text);
        LOAD_OK(&c, NULL, ENV(var));
        CHECK_EQ(c.metrics_enabled, ok[i].value);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char shown[64];
        snprintf(shown, sizeof(shown), "\"%s\" is not a boolean", bad[i]);
        snprintf(text, sizeof(text), "SIDECAR:\n  ALLOW_OTHER_UIDS: '%s'\n", bad[i]);
        FILE_ERROR(text, "SIDECAR.ALLOW_OTHER_UIDS", shown, "(line 2)");
        snprintf(var, sizeof(var), "HTTP_HTTP2=%s", bad[i]);
        ENV_ERROR(NULL, ENV(var), "HTTP_HTTP2", shown);
        snprintf(var, sizeof(var), "METRICS_ENABLED=%s", bad[i]);
        ENV_ERROR(NULL, ENV(var), "METRICS_ENABLED", shown);
    }
    ENV_ERROR(NULL, ENV("PROFILING_ENABLED="), "PROFILING_ENABLED", "\"\" is not a boolean");
    FILE_ERROR("PROFILING: {ENABLED: null}\n", "PROFILING.ENABLED", "has no value");
    FILE_ERROR("PROFILING: {ENABLED: [true]}\n", "PROFILING.ENABLED", "expected a single value, found a list");
}

static const struct {
    const char *sec, *key;
    uint32_t min, max;
    size_t off;
} ints[] = {
    {"PROFILING", "CPU_PROFILE_DURATION", 1, 3600, offsetof(struct funcmond_config, cpu_profile_duration_s)},
    {"PROFILING", "MEMORY_PROFILE_INTERVAL", 1, 86400, offsetof(struct funcmond_config, memory_profile_interval_s)},
    {"SIDECAR", "DRAIN_INTERVAL_MS", 1, 10000, offsetof(struct funcmond_config, drain_interval_ms)},
    {"SIDECAR", "STATE_INTERVAL_S", 1, 3600, offsetof(struct funcmond_config, state_interval_s)},
    {"SIDECAR", "MAX_FUNCTIONS", 1, 1000000, offsetof(struct funcmond_config, max_functions)},
    {"SIDECAR", "EXITED_RETENTION_S", 0, 86400, offsetof(struct funcmond_config, exited_retention_s)},
    {"SIDECAR", "RESCAN_INTERVAL_S", 1, 3600, offsetof(struct funcmond_config, rescan_interval_s)},
};

static void
test_integers(void)
{
    static const char *const garbage[] = {"-1",  "+5", "1.0", "10abc", "0x10", " 10",       "10 ", "1e3", "99999999999999999999",
                                          "010", "00", "",    "true",  "١٢",   "4294967296"};
    struct funcmond_config c;
    char what[64], var[64], env[128], shown[64];

    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        uint64_t edges[2] = {ints[i].min, ints[i].max};
        snprintf(what, sizeof(what), "%s.%s", ints[i].sec, ints[i].key);
        snprintf(var, sizeof(var), "%s_%s", ints[i].sec, ints[i].key);
        for (int e = 0; e < 2; e++) {
            snprintf(text, sizeof(text), "%s:\n  %s: %llu\n", ints[i].sec, ints[i].key, (unsigned long long)edges[e]);
            LOAD_OK(&c, text, NULL);
            CHECK_EQ(FIELD(&c, ints[i].off, uint32_t), edges[e]);
            snprintf(env, sizeof(env), "%s=%llu", var, (unsigned long long)edges[e]);
            LOAD_OK(&c, NULL, ENV(env));
            CHECK_EQ(FIELD(&c, ints[i].off, uint32_t), edges[e]);
        }
        /* Just outside the range. */
        for (int e = 0; e < 2; e++) {
            unsigned long long v = e == 0 ? (unsigned long long)ints[i].min - 1 : (unsigned long long)ints[i].max + 1;
            if (e == 0 && ints[i].min == 0)
                continue;
            snprintf(text, sizeof(text), "%s:\n  %s: %llu\n", ints[i].sec, ints[i].key, v);
            snprintf(shown, sizeof(shown), "\"%llu\" is out of range %u..%u", v, ints[i].min, ints[i].max);
            FILE_ERROR(text, what, shown, "(line 2)");
            snprintf(env, sizeof(env), "%s=%llu", var, v);
            ENV_ERROR(NULL, ENV(env), var, shown);
        }
        /* Not a decimal whole number. */
        for (size_t g = 0; g < sizeof(garbage) / sizeof(garbage[0]); g++) {
            snprintf(text, sizeof(text), "%s: {%s: '%s'}\n", ints[i].sec, ints[i].key, garbage[g]);
            snprintf(shown, sizeof(shown), "\"%s\"", garbage[g]);
            FILE_ERROR(text, what, shown);
            snprintf(env, sizeof(env), "%s=%s", var, garbage[g]);
            ENV_ERROR(NULL, ENV(env), var, shown);
        }
        snprintf(text, sizeof(text), "%s: {%s: }\n", ints[i].sec, ints[i].key);
        FILE_ERROR(text, what, "has no value");
        snprintf(text, sizeof(text), "%s: {%s: {a: 1}}\n", ints[i].sec, ints[i].key);
        FILE_ERROR(text, what, "expected a single value, found a mapping");
    }
    FILE_ERROR("SIDECAR: {MAX_FUNCTIONS: 010}\n", "SIDECAR.MAX_FUNCTIONS", "leading zero");
    FILE_ERROR("SIDECAR: {MAX_FUNCTIONS: 99999999999999999999}\n", "SIDECAR.MAX_FUNCTIONS", "out of range 1..1000000");
}

static void
test_buckets(void)
{
    struct funcmond_config c;
    char env[1024];
    size_t o;

    LOAD_OK(&c, "SIDECAR: {DURATION_BUCKETS: [.5, 1e3, 2E3, 3000.5]}\n", NULL);
    CHECK_EQ(c.n_duration_buckets, 4);
    CHECK(c.duration_buckets[0] == 0.5 && c.duration_buckets[1] == 1000 && c.duration_buckets[2] == 2000);
    CHECK(c.duration_buckets[3] == 3000.5);

    /* Exactly FUNCMOND_MAX_BUCKETS values fit; one more does not, in the file or the environment. */
    o = (size_t)snprintf(text, sizeof(text), "SIDECAR: {MEMORY_BUCKETS: [");
    for (int i = 1; i <= FUNCMOND_MAX_BUCKETS; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%d", i > 1 ? ", " : "", i);
    snprintf(text + o, sizeof(text) - o, "]}\n");
    LOAD_OK(&c, text, NULL);
    CHECK_EQ(c.n_memory_buckets, FUNCMOND_MAX_BUCKETS);
    CHECK(c.memory_buckets[FUNCMOND_MAX_BUCKETS - 1] == FUNCMOND_MAX_BUCKETS);
    snprintf(text + o, sizeof(text) - o, ", 33]}\n");
    FILE_ERROR(text, "SIDECAR.MEMORY_BUCKETS", "more than 32 values");
    o = (size_t)snprintf(env, sizeof(env), "SIDECAR_MEMORY_BUCKETS=");
    for (int i = 1; i <= FUNCMOND_MAX_BUCKETS; i++)
        o += (size_t)snprintf(env + o, sizeof(env) - o, "%s%d", i > 1 ? "," : "", i);
    LOAD_OK(&c, NULL, ENV(env));
    CHECK_EQ(c.n_memory_buckets, FUNCMOND_MAX_BUCKETS);
    snprintf(env + o, sizeof(env) - o, ",33");
    ENV_ERROR(NULL, ENV(env), "SIDECAR_MEMORY_BUCKETS", "more than 32 values");

    /* Bad values in the file. */
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [abc]}\n", "SIDECAR.DURATION_BUCKETS", "value #1: \"abc\" is not a number");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [1, 2x]}\n", "SIDECAR.DURATION_BUCKETS", "value #2: \"2x\" is not a number");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [.inf]}\n", "SIDECAR.DURATION_BUCKETS", "\".inf\" is not a number");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [inf]}\n", "SIDECAR.DURATION_BUCKETS", "\"inf\" is not a finite number");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [nan]}\n", "SIDECAR.DURATION_BUCKETS", "\"nan\" is not a finite number");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [1e400]}\n", "SIDECAR.DURATION_BUCKETS", "\"1e400\" is not a finite number");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [1e-400]}\n", "SIDECAR.DURATION_BUCKETS", "\"1e-400\" is too close to zero");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [' 1']}\n", "SIDECAR.DURATION_BUCKETS", "\" 1\" is not a number");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: []}\n", "SIDECAR.DURATION_BUCKETS", "must not be empty");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [1, 1]}\n", "SIDECAR.DURATION_BUCKETS", "value #2 (1)", "strictly increasing");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [0.5, 2, 1.5]}\n", "SIDECAR.DURATION_BUCKETS", "value #3 (1.5)", "(2)",
               "strictly increasing");
    FILE_ERROR("SIDECAR: {DURATION_BUCKETS: [0, 1]}\n", "SIDECAR.DURATION_BUCKETS", "value #1 (0) must be greater than 0");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: [-1, 1]}\n", "SIDECAR.MEMORY_BUCKETS", "value #1 (-1) must be greater than 0");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: 1}\n", "SIDECAR.MEMORY_BUCKETS", "expected a list of numbers, found a single value");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: \"1,2\"}\n", "SIDECAR.MEMORY_BUCKETS", "expected a list of numbers");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: }\n", "SIDECAR.MEMORY_BUCKETS", "expected a list of numbers, found no value");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: {a: 1}}\n", "SIDECAR.MEMORY_BUCKETS", "found a mapping");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: [{a: 1}]}\n", "SIDECAR.MEMORY_BUCKETS", "value #1: expected a number, found a mapping");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: [1, [2]]}\n", "SIDECAR.MEMORY_BUCKETS", "value #2: expected a number, found a list");
    FILE_ERROR("SIDECAR: {MEMORY_BUCKETS: [1, ~]}\n", "SIDECAR.MEMORY_BUCKETS", "value #2: expected a number, found no value");
    FILE_ERROR("SIDECAR:\n  MEMORY_BUCKETS:\n    - 1\n    - x\n", "SIDECAR.MEMORY_BUCKETS", "value #2", "(line 4)");

    /* Bad values in the environment, in both syntaxes. */
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=1,,2"), "SIDECAR_DURATION_BUCKETS", "value #2 is empty");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=1,2,"), "SIDECAR_DURATION_BUCKETS", "value #3 is empty");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=[1,2"), "SIDECAR_DURATION_BUCKETS", "does not end with ']'");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=["), "SIDECAR_DURATION_BUCKETS", "does not end with ']'");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=1,2]"), "SIDECAR_DURATION_BUCKETS", "value #2: \"2]\" is not a number");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=[]"), "SIDECAR_DURATION_BUCKETS", "must not be empty");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS= [ ] "), "SIDECAR_DURATION_BUCKETS", "must not be empty");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS="), "SIDECAR_DURATION_BUCKETS", "must not be empty");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=1 2"), "SIDECAR_DURATION_BUCKETS", "value #1: \"1 2\" is not a number");
    ENV_ERROR(NULL, ENV("SIDECAR_DURATION_BUCKETS=[1, [2]]"), "SIDECAR_DURATION_BUCKETS", "value #2: \"[2]\" is not a number");
    ENV_ERROR(NULL, ENV("SIDECAR_MEMORY_BUCKETS=2,1"), "SIDECAR_MEMORY_BUCKETS", "strictly increasing");
    ENV_ERROR(NULL, ENV("SIDECAR_MEMORY_BUCKETS=[0]"), "SIDECAR_MEMORY_BUCKETS", "must be greater than 0");
    ENV_ERROR(NULL, ENV("SIDECAR_MEMORY_BUCKETS=1,inf"), "SIDECAR_MEMORY_BUCKETS", "\"inf\" is not a finite number");
}

static const struct {
    const char *sec, *key;
    size_t size, off;
} strings[] = {
    {"PROFILING", "PATH", FIELD_SIZE(profiling_path), offsetof(struct funcmond_config, profiling_path)},
    {"METRICS", "PATH", FIELD_SIZE(metrics_path), offsetof(struct funcmond_config, metrics_path)},
    {"METRICS", "SKIP_PATHS", FIELD_SIZE(metrics_skip_paths), offsetof(struct funcmond_config, metrics_skip_paths)},
    {"HTTP", "LISTEN", FIELD_SIZE(http_listen), offsetof(struct funcmond_config, http_listen)},
    {"HTTP", "AUTH_TOKEN", FIELD_SIZE(auth_token), offsetof(struct funcmond_config, auth_token)},
    {"SIDECAR", "SHM_PREFIX", FIELD_SIZE(shm_prefix), offsetof(struct funcmond_config, shm_prefix)},
    {"SIDECAR", "SHM_DIR", FIELD_SIZE(shm_dir), offsetof(struct funcmond_config, shm_dir)},
    {"SIDECAR", "STATE_FILE", FIELD_SIZE(state_file), offsetof(struct funcmond_config, state_file)},
};

/* A value of n bytes that key i accepts apart from its length. */
static void
long_value(size_t i, size_t n, char *out)
{
    if (strcmp(strings[i].key, "LISTEN") == 0) {
        /* host name labels of 63 characters, then ":1" */
        for (size_t j = 0; j < n - 2; j++)
            out[j] = j % 64 == 63 ? '.' : 'a';
        memcpy(out + n - 2, ":1", 3);
        return;
    }
    memset(out, 'a', n);
    out[n] = '\0';
    if (strcmp(strings[i].key, "PATH") == 0)
        out[0] = '/';
}

static void
test_strings(void)
{
    struct funcmond_config c;
    char value[FUNCMOND_PATH_MAX + 2], what[64], var[64], env[sizeof(var) + sizeof(value) + 1], shown[64];

    /* Each string field takes size - 1 bytes, not size. */
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        snprintf(what, sizeof(what), "%s.%s", strings[i].sec, strings[i].key);
        snprintf(var, sizeof(var), "%s_%s", strings[i].sec, strings[i].key);
        long_value(i, strings[i].size - 1, value);
        snprintf(text, sizeof(text), "%s:\n  %s: \"%s\"\n", strings[i].sec, strings[i].key, value);
        LOAD_OK(&c, text, NULL);
        CHECK_STREQ((char *)&c + strings[i].off, value);
        snprintf(env, sizeof(env), "%s=%s", var, value);
        LOAD_OK(&c, NULL, ENV(env));
        CHECK_STREQ((char *)&c + strings[i].off, value);

        long_value(i, strings[i].size, value);
        snprintf(shown, sizeof(shown), "is too long (%zu bytes, at most %zu)", strings[i].size, strings[i].size - 1);
        snprintf(text, sizeof(text), "%s:\n  %s: \"%s\"\n", strings[i].sec, strings[i].key, value);
        FILE_ERROR(text, what, shown);
        snprintf(env, sizeof(env), "%s=%s", var, value);
        ENV_ERROR(NULL, ENV(env), var, shown);

        /* A string key given no value, a list or a mapping. */
        snprintf(text, sizeof(text), "%s: {%s: ~}\n", strings[i].sec, strings[i].key);
        FILE_ERROR(text, what, "has no value (write \"\" for an empty string)");
        snprintf(text, sizeof(text), "%s: {%s: [a]}\n", strings[i].sec, strings[i].key);
        FILE_ERROR(text, what, "expected a single value, found a list");
        /* Not UTF-8 (from the environment: a YAML file cannot hold it). */
        snprintf(env, sizeof(env), "%s=/\xff", var);
        ENV_ERROR(NULL, ENV(env), var, "is not valid UTF-8");
    }
    FILE_ERROR("SIDECAR: {STATE_FILE: \"a\\0b\"}\n", "SIDECAR.STATE_FILE", "contains a NUL character");

    /* PATH values. */
    LOAD_OK(&c, "PROFILING: {PATH: /}\nMETRICS: {PATH: /metrics/}\n", NULL);
    CHECK_STREQ(c.profiling_path, "/");
    CHECK_STREQ(c.metrics_path, "/metrics/");
    FILE_ERROR("PROFILING: {PATH: debug}\n", "PROFILING.PATH", "\"debug\" must start with '/'");
    FILE_ERROR("PROFILING: {PATH: \"\"}\n", "PROFILING.PATH", "\"\" must start with '/'");
    FILE_ERROR("PROFILING: {PATH: /de bug}\n", "PROFILING.PATH", "\"/de bug\" contains whitespace");
    FILE_ERROR("PROFILING: {PATH: /debug/}\n", "PROFILING.PATH", "\"/debug/\" must not end with '/'");
    FILE_ERROR("PROFILING: {PATH: //}\n", "PROFILING.PATH", "must not end with '/'");
    FILE_ERROR("METRICS: {PATH: metrics}\n", "METRICS.PATH", "\"metrics\" must start with '/'");
    FILE_ERROR("METRICS: {PATH: \"/a\\tb\"}\n", "METRICS.PATH", "\"/a\\x09b\" contains whitespace or a control character");
    ENV_ERROR(NULL, ENV("PROFILING_PATH=/x/"), "PROFILING_PATH", "must not end with '/'");
    ENV_ERROR(NULL, ENV("METRICS_PATH=/a b"), "METRICS_PATH", "contains whitespace");

    /* SHM_PREFIX and SHM_DIR. */
    FILE_ERROR("SIDECAR: {SHM_PREFIX: \"\"}\n", "SIDECAR.SHM_PREFIX", "must not be empty");
    FILE_ERROR("SIDECAR: {SHM_PREFIX: a/b}\n", "SIDECAR.SHM_PREFIX", "\"a/b\" must not contain '/'");
    ENV_ERROR(NULL, ENV("SIDECAR_SHM_PREFIX="), "SIDECAR_SHM_PREFIX", "must not be empty");
    FILE_ERROR("SIDECAR: {SHM_DIR: ''}\n", "SIDECAR.SHM_DIR", "must not be empty");

    /* AUTH_TOKEN: no control characters, and never shown. */
    FILE_ERROR("HTTP: {AUTH_TOKEN: \"sekrit\\n\"}\n", "HTTP.AUTH_TOKEN", "control character");
    CHECK(strstr(err, "sekrit") == NULL);
    ENV_ERROR(NULL, ENV("HTTP_AUTH_TOKEN=sekrit\x01"), "HTTP_AUTH_TOKEN", "control character");
    CHECK(strstr(err, "sekrit") == NULL);
    LOAD_OK(&c, "HTTP: {AUTH_TOKEN: \"a b:c#d'e\\\"f\"}\n", NULL);
    CHECK_STREQ(c.auth_token, "a b:c#d'e\"f");

    /* Long values are cut in messages. */
    FILE_ERROR("PROFILING: {PATH: "
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
               "PROFILING.PATH", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... must start with '/'");
}

static void
test_listen(void)
{
    static const char *const ok[] = {"127.0.0.1:10000",
                                     "localhost:80",
                                     "[::1]:8080",
                                     "[::]:0",
                                     "0.0.0.0:0",
                                     "[fe80::1%eth0]:80",
                                     "my-host.example.com:65535",
                                     "svc_name:1",
                                     "host.:1",
                                     "[::ffff:1.2.3.4]:9"};
    static const struct {
        const char *value, *problem;
    } bad[] = {
        {"127.0.0.1", "is not host:port"},
        {"127.0.0.1:", "bad port: \"\" is not a whole number"},
        {":80", "has no host"},
        {"::1:80", "must be in brackets"},
        {"[::1]80", "expected ':' and a port after ']'"},
        {"[::1:80", "without ']'"},
        {"[zz::1]:80", "not an IPv6 address"},
        {"[]:80", "not an IPv6 address"},
        {"[fe80::1%]:80", "not an IPv6 address"},
        {"[127.0.0.1]:80", "not an IPv6 address"},
        {"host:65536", "\"65536\" is out of range 0..65535"},
        {"host:-1", "\"-1\" is not a decimal whole number"},
        {"host:http", "\"http\" is not a decimal whole number"},
        {"host:080", "leading zero"},
        {"256.1.1.1:80", "neither an IPv4 address nor a valid host name"},
        {"1.2.3:80", "neither an IPv4 address"},
        {"bad_host!:80", "neither an IPv4 address"},
        {"-bad:80", "neither an IPv4 address"},
        {"bad-:80", "neither an IPv4 address"},
        {"a..b:80", "neither an IPv4 address"},
        {"ho st:80", "neither an IPv4 address"},
    };
    struct funcmond_config c;
    char env[320];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "HTTP: {LISTEN: \"%s\"}\n", ok[i]);
        LOAD_OK(&c, text, NULL);
        CHECK_STREQ(c.http_listen, ok[i]);
        snprintf(env, sizeof(env), "HTTP_LISTEN=%s", ok[i]);
        LOAD_OK(&c, NULL, ENV(env));
        CHECK_STREQ(c.http_listen, ok[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char shown[320];
        snprintf(shown, sizeof(shown), "\"%s\"", bad[i].value);
        snprintf(text, sizeof(text), "HTTP:\n  LISTEN: \"%s\"\n", bad[i].value);
        FILE_ERROR(text, "HTTP.LISTEN", shown, bad[i].problem, "(line 2)");
        snprintf(env, sizeof(env), "HTTP_LISTEN=%s", bad[i].value);
        ENV_ERROR(NULL, ENV(env), "HTTP_LISTEN", shown, bad[i].problem);
    }
}

static void
test_structure(void)
{
    struct funcmond_config c;

    FILE_ERROR("- a\n- b\n", NULL, "at the top level, found a list");
    FILE_ERROR("hello\n", NULL, "at the top level, found a single value");
    FILE_ERROR("PROFILNG:\n  ENABLED: true\n", "PROFILNG", "unknown section (did you mean PROFILING?)", "(line 1)");
    FILE_ERROR("HTTP: {}\nprofiling: {}\n", "profiling", "unknown section (names are upper case: did you mean PROFILING?)",
               "(line 2)");
    FILE_ERROR("LOGGING: {LEVEL: debug}\n", "LOGGING", "unknown section");
    CHECK(strstr(err, "did you mean") == NULL);
    FILE_ERROR("SIDECAR:\n  SHM_PREFIX: x\n  DRAIN_INTERVL_MS: 5\n", "SIDECAR.DRAIN_INTERVL_MS",
               "unknown key (did you mean DRAIN_INTERVAL_MS?)", "(line 3)");
    FILE_ERROR("METRICS: {LISTEN: \"a:1\"}\n", "METRICS.LISTEN", "unknown key");
    FILE_ERROR("PROFILING: {enabled: true}\n", "PROFILING.enabled", "names are upper case: did you mean ENABLED?");
    FILE_ERROR("PROFILING: 5\n", "PROFILING", "expected a mapping of keys, found a single value");
    FILE_ERROR("PROFILING: [ENABLED]\n", "PROFILING", "expected a mapping of keys, found a list");
    FILE_ERROR("PROFILING: {ENABLED: {a: 1}}\n", "PROFILING.ENABLED", "expected a single value, found a mapping");
    FILE_ERROR("PROFILING:\n  ENABLED: true\n  PATH: /p\n  ENABLED: false\n", "PROFILING.ENABLED",
               "key given twice (first at line 2)", "(line 4)");
    FILE_ERROR("PROFILING: {ENABLED: true, ENABLED: true}\n", "PROFILING.ENABLED", "key given twice");
    FILE_ERROR("HTTP: {}\nMETRICS: {}\nHTTP: {LISTEN: \"a:1\"}\n", "HTTP", "section given twice (first at line 1)", "(line 3)");
    FILE_ERROR("PROFILING:\n  ? [A]\n  : 1\n", "PROFILING", "a key must be a name, found a list");
    FILE_ERROR("? {A: 1}\n: 1\n", NULL, "a section must be a name, found a mapping");
    FILE_ERROR("PROFILING: {}\n---\nMETRICS: {}\n", NULL, "more than one YAML document", "(line 3)");
    /* A second, empty document is harmless. */
    LOAD_OK(&c, "PROFILING: {PATH: /p}\n---\n", NULL);
    CHECK_STREQ(c.profiling_path, "/p");
    /* A file value is checked even when the environment overrides it: the file must be
     * valid on its own. */
    FILE_ERROR("SIDECAR: {DRAIN_INTERVAL_MS: 0}\n", "SIDECAR.DRAIN_INTERVAL_MS", "out of range",
               /* envp is NULL here; the same with an override: */ "");
    expect_error(__LINE__, "SIDECAR: {DRAIN_INTERVAL_MS: 0}\n", ENV("SIDECAR_DRAIN_INTERVAL_MS=5"), 0, "SIDECAR.DRAIN_INTERVAL_MS",
                 (const char *const[]){"out of range", NULL});
}

static void
test_malformed(void)
{
    FILE_ERROR("PROFILING: {ENABLED: true\n", NULL, "YAML syntax error at line ", ", column ");
    FILE_ERROR("PROFILING:\n\tENABLED: true\n", NULL, "YAML syntax error at line 2");
    FILE_ERROR("PROFILING: {PATH: \"/unterminated}\n", NULL, "YAML syntax error");
    FILE_ERROR("PROFILING:\n  ENABLED: true\n PATH: /p\n", NULL, "YAML syntax error at line 3");
    FILE_ERROR("PROFILING: *nowhere\n", NULL, "undefined alias");
    FILE_ERROR("PROFILING: {PATH: \"/\xc3\x28\"}\n", NULL, "cannot read YAML at byte", "UTF-8");
    FILE_ERROR("PROFILING: [1, , 2]\n", NULL, "YAML syntax error");
}

static void
test_files(void)
{
    struct funcmond_config c;
    char missing[PATH_MAX + 32], under[PATH_MAX + 64], *big;

    snprintf(missing, sizeof(missing), "%s/missing.yaml", dir);
    CHECK_EQ(funcmond_config_load(&c, missing, NULL, err, sizeof(err)), -ENOENT);
    CHECK(strncmp(err, missing, strlen(missing)) == 0);
    CHECK(strstr(err, ": cannot open: No such file or directory") != NULL);
    nerrors++;

    /* A FIFO is refused at once: opening it would wait for a writer that may never come
     * (the alarm turns such a wait into a failure). */
    snprintf(path, sizeof(path), "%s/c%03d.yaml", dir, nfiles++);
    CHECK_EQ(mkfifo(path, 0600), 0);
    alarm(10);
    CHECK_EQ(funcmond_config_load(&c, path, NULL, err, sizeof(err)), -EINVAL);
    alarm(0);
    CHECK(strncmp(err, path, strlen(path)) == 0);
    CHECK(strstr(err, ": not a regular file (a FIFO)") != NULL);
    nerrors++;

    CHECK_EQ(funcmond_config_load(&c, dir, NULL, err, sizeof(err)), -EINVAL);
    CHECK(strncmp(err, dir, strlen(dir)) == 0);
    CHECK(strstr(err, ": not a regular file (a directory)") != NULL);
    nerrors++;

    write_bytes("PROFILING: {}\n", 14);
    snprintf(under, sizeof(under), "%s/x.yaml", path);
    CHECK_EQ(funcmond_config_load(&c, under, NULL, err, sizeof(err)), -ENOTDIR);
    CHECK(strstr(err, ": cannot open: Not a directory") != NULL);
    nerrors++;

    /* Without read permission; root reads it anyway, so only checked for other users. */
    write_bytes("PROFILING: {}\n", 14);
    CHECK_EQ(chmod(path, 0), 0);
    if (geteuid() != 0) {
        CHECK_EQ(funcmond_config_load(&c, path, NULL, err, sizeof(err)), -EACCES);
        CHECK(strncmp(err, path, strlen(path)) == 0);
        CHECK(strstr(err, ": cannot open: Permission denied") != NULL);
        nerrors++;
    }

    /* Past the size limit: the wrong file, however it parses. */
    CHECK((big = malloc(2 * 1024 * 1024)) != NULL);
    memset(big, '#', 2 * 1024 * 1024);
    write_bytes(big, 2 * 1024 * 1024);
    free(big);
    CHECK_EQ(funcmond_config_load(&c, path, NULL, err, sizeof(err)), -EFBIG);
    CHECK(strstr(err, "not a configuration file") != NULL);
    nerrors++;

    /* The message is cut to errlen; with no buffer the result is still -EINVAL. */
    {
        char small[8];
        write_bytes("NOPE: {}\n", 9);
        CHECK_EQ(funcmond_config_load(&c, path, NULL, small, sizeof(small)), -EINVAL);
        CHECK_EQ(strlen(small), sizeof(small) - 1);
        CHECK_EQ(funcmond_config_load(&c, path, NULL, NULL, 0), -EINVAL);
        CHECK_EQ(funcmond_config_load(&c, NULL, NULL, NULL, 0), 0);
    }
}

static void
test_cross_check(void)
{
    FILE_ERROR("PROFILING: {PATH: /x}\nMETRICS:\n  PATH: /x\n", "METRICS.PATH", "\"/x\" is also PROFILING.PATH (set in ",
               " at line 1)", "the two must differ", "(line 3)");
    FILE_ERROR("METRICS: {PATH: /debug}\n", "METRICS.PATH", "\"/debug\" is also PROFILING.PATH (its default)");
    FILE_ERROR("PROFILING: {PATH: /metrics}\n", "PROFILING.PATH", "\"/metrics\" is also METRICS.PATH (its default)");
    ENV_ERROR(NULL, ENV("METRICS_PATH=/debug"), "METRICS_PATH", "is also PROFILING.PATH (its default)");
    ENV_ERROR("PROFILING: {PATH: /x}\n", ENV("METRICS_PATH=/x"), "METRICS_PATH", "is also PROFILING.PATH (set in ");
    ENV_ERROR("METRICS: {PATH: /x}\n", ENV("PROFILING_PATH=/x"), "PROFILING_PATH", "is also METRICS.PATH (set in ");
    ENV_ERROR(NULL, ENV("PROFILING_PATH=/y", "METRICS_PATH=/y"), "METRICS_PATH", "is also PROFILING.PATH (set by PROFILING_PATH)");
}

/* Prints cfg, checks the text holds each needle, loads it back and compares. */
static void
round_trip(int line, const struct funcmond_config *cfg, const char *const *needles)
{
    struct funcmond_config back;
    char *printed = NULL;
    size_t len = 0;
    FILE *mem;

    CHECK((mem = open_memstream(&printed, &len)) != NULL);
    funcmond_config_print(cfg, mem);
    CHECK_EQ(fclose(mem), 0);
    for (; *needles != NULL; needles++) {
        if (strstr(printed, *needles) == NULL) {
            fprintf(stderr, "%s:%d: printed config does not contain \"%s\":\n%s", __FILE__, line, *needles, printed);
            exit(1);
        }
    }
    write_bytes(printed, len);
    if (funcmond_config_load(&back, path, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s:%d: printed config does not load: %s\n%s", __FILE__, line, err, printed);
        exit(1);
    }
    free(printed);
    same(line, &back, cfg);
}

#define ROUND_TRIP(cfg, ...) round_trip(__LINE__, cfg, (const char *const[]){__VA_ARGS__, NULL})

static void
test_print(void)
{
    struct funcmond_config c;
    char env_dir[FUNCMOND_PATH_MAX + 32];
    char *env[] = {
        "SIDECAR_STATE_FILE=/tmp/we\"ird\\ \t\nname: #x &y *z !w |>%@`' \x01\x7f \xc3\xa9 \xc2\x85 \xe2\x80\xa8 \xef\xbb\xbf "
        "\xef\xbf\xbe \xf0\x9f\x98\x80 end ",
        "METRICS_SKIP_PATHS=  leading space;'single';\"double\";- dash",
        "HTTP_AUTH_TOKEN=tok en'\"\\#: {x}, [y] \xc2\x85",
        "SIDECAR_SHM_PREFIX=~",
        "METRICS_PATH=/m:#&*!",
        "PROFILING_PATH=/",
        "HTTP_LISTEN=[fe80::1%eth0]:0",
        "SIDECAR_DURATION_BUCKETS=1e-300,0.1,0.30000000000000004,0.3333333333333333,2.5,1e300",
        "SIDECAR_MEMORY_BUCKETS=1,2,3,4503599627370497,9007199254740993,1.7976931348623157e308",
        "SIDECAR_EXITED_RETENTION_S=0",
        "PROFILING_ENABLED=no",
        "SIDECAR_ALLOW_OTHER_UIDS=yes",
        env_dir,
        NULL,
    };

    funcmond_config_defaults(&c);
    ROUND_TRIP(&c, "PROFILING:\n  ENABLED: true\n  PATH: \"/debug\"\n", "  DRAIN_INTERVAL_MS: 10\n",
               "  DURATION_BUCKETS: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]\n",
               "  MEMORY_BUCKETS: [1024, 10240, 102400, 1048576, 10485760, 104857600]\n", "  AUTH_TOKEN: \"\"\n",
               "  HTTP2: false\n");
    full_expected(&c);
    ROUND_TRIP(&c, "  ENABLED: false\n", "  LISTEN: \"[::1]:9100\"\n", "  MEMORY_BUCKETS: [512, 4096, 1000000]\n");

    /* Strings that need quoting and escaping, a value at its longest, awkward numbers. */
    memset(env_dir, 0, sizeof(env_dir));
    strcpy(env_dir, "SIDECAR_SHM_DIR=");
    memset(env_dir + strlen(env_dir), 'x', FUNCMOND_PATH_MAX - 2);
    strcat(env_dir, "\"");
    LOAD_OK(&c, NULL, env);
    CHECK_EQ(strlen(c.shm_dir), FUNCMOND_PATH_MAX - 1);
    CHECK_STREQ(c.shm_prefix, "~");
    CHECK(c.memory_buckets[4] == 9007199254740992.0); /* 2^53 + 1 rounds to 2^53 */
    ROUND_TRIP(&c, "  SHM_PREFIX: \"~\"\n", "0.30000000000000004", "0.3333333333333333,", "1e-300", "1e+300", "4503599627370497",
               "9007199254740992", "  EXITED_RETENTION_S: 0\n");
}

/* Removes the files and the directory; also at exit, so a failed check leaves nothing behind. */
static void
cleanup(void)
{
    char name[PATH_MAX + 32];

    for (; nfiles > 0; nfiles--) {
        snprintf(name, sizeof(name), "%s/c%03d.yaml", dir, nfiles - 1);
        unlink(name);
    }
    if (dir[0] != '\0')
        rmdir(dir);
    dir[0] = '\0';
}

int
main(void)
{
    const char *tmp = getenv("TMPDIR");
    char made[PATH_MAX];
    int files;

    snprintf(dir, sizeof(dir), "%s/test_config.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ(atexit(cleanup), 0);

    test_defaults();
    test_full_file();
    test_env_overrides();
    test_booleans();
    test_integers();
    test_buckets();
    test_strings();
    test_listen();
    test_structure();
    test_malformed();
    test_files();
    test_cross_check();
    test_print();

    files = nfiles;
    snprintf(made, sizeof(made), "%s", dir);
    cleanup();
    CHECK_EQ(access(made, F_OK), -1); /* every file was ours, so the directory is gone */
    printf("test_config: ok (%d files, %d error cases)\n", files, nerrors);
    return 0;
}
