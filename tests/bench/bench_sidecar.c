/*
 * bench_sidecar.c - what funcmond costs and how fast it drains (DESIGN §7).
 *
 *   sidecar_drain_records_per_s  records drained and aggregated per second on one core,
 *                                from 8 threads' chunks filled beforehand (median of 7 rounds),
 *                                against the 50 M/s bar
 *   sidecar_drain_1024fn_records_per_s, sidecar_drain_8192fn_records_per_s
 *                                the same with the records spread over 1,024 and 8,192
 *                                functions in a scattered order, so that each record finds
 *                                its function's figures out of cache as in a large service
 *   sidecar_drain_ns_per_record  the drain thread's CPU time per record in the 8,192
 *                                function case (median of 7 rounds), against the 10 ns bar
 *   sidecar_flat_out_drops       one producer thread calling as fast as it can for 10 s
 *                                with default settings: records it dropped (bar: 0), the
 *                                calls it made, and funcmond's CPU share meanwhile
 *   cpu_stalls_over_200us        baseline for the line above: two threads that only read
 *                                the clock for 5 s, one per core, count the times their CPU
 *                                was taken from them for more than 200 us (the first
 *                                protocol's default ring lasted a producer at full speed
 *                                that long; the default pool lasts it about 9 ms)
 *   sidecar_idle_cpu_pct         funcmond's CPU with 10 idle clients of 200 threads for 30 s,
 *                                in % of one core (bar: 0.5)
 *   sidecar_epoll_idle_cpu_pct   the same with io_uring refused (a seccomp filter, as in a
 *                                container), so funcmond runs on epoll, against the line
 *                                above: what the fallback costs
 *   metrics_render_ms            /metrics rendered for 1,000 functions (bar: 20 ms)
 * Usage: bench_sidecar FUNCMOND E2E_CLIENT [drain|flat|idle|render]...
 * (BENCH_IDLE_SECONDS shortens the idle measurements, for a quick look; BENCH_DRAIN_FNS=16,
 * 1024 or 8192 runs only that drain line, to profile it.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "funcmon.h"
#include "render_prom.h"
#include "ingest.h"
#include "sidecar.h"
#include "tick.h"
#include "publish.h"
#include "refuse_io_uring.h"

#define THREADS 8
#define RING 65536u
#define DRAIN_FNS_MAX 8192u

static char prefix[64];

static uint32_t sites[DRAIN_FNS_MAX];
static uint32_t fill_fns_log2; /* the functions the fill threads spread over: 2^this */

/* With 16 functions each ring cycles through them in order; with more, record i of ring t
 * goes to a function picked by a multiplicative hash of (i, t), spread evenly (every
 * function gets its share of each ring) but never in address order. */
static void *
fill(void *arg)
{
    long t = (long)(intptr_t)arg;
    for (uint32_t i = 0; i < RING; i++) {
        uint32_t k = fill_fns_log2 == 4 ? (i + (uint32_t)t) & 15 : ((i + (uint32_t)t * RING) * 2654435761u) >> (32 - fill_fns_log2);
        struct funcmon_call c = funcmon_begin(sites[k]);
        funcmon_end(&c, (i & 31) == 0);
    }
    return NULL;
}

static uint64_t
thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One drain measurement with the records spread over 2^fns_log2 functions: prints its
 * records-per-second line (named `line`), and with cpu_line its CPU-ns-per-record line. */
static void
bench_drain_over(unsigned fns_log2, const char *line, const char *cpu_line)
{
    struct funcmon_options o = {0};
    char err[256], env_prefix[96], service[32];
    uint32_t fns = 1u << fns_log2;
    /* A service of its own for each run: the segment of the one before may still be
     * winding down. Room for every function: by default the last quarter of MAX_FUNCTIONS
     * is kept for other services, and a service past that is folded into one entry. */
    snprintf(service, sizeof(service), fns == 16 ? "bench" : "bench%u", fns);
    o.shm_prefix = prefix;
    o.service = service;
    o.pool_records = 2 * THREADS * RING;
    o.max_threads = THREADS * 2;
    o.max_sites = 2 * DRAIN_FNS_MAX; /* fixed by the first init: room for the largest run */
    if (funcmon_init(&o) != 0)
        exit(1);
    for (uint32_t i = 0; i < fns; i++) {
        char name[32];
        snprintf(name, sizeof(name), "fn_%u", i);
        sites[i] = funcmon_site(name, "bench");
    }
    fill_fns_log2 = fns_log2;
    struct funcmond *d = calloc(1, sizeof(*d));
    snprintf(env_prefix, sizeof(env_prefix), "SIDECAR_SHM_PREFIX=%s", prefix);
    char *const env[] = {env_prefix, "SIDECAR_MAX_FUNCTIONS=65536", NULL};
    if (d == NULL || funcmond_config_load(&d->cfg, NULL, env, err, sizeof(err)) != 0 || funcmond_agg_init(&d->agg, &d->cfg) != 0 ||
        funcmond_drain_init(d) != 0)
        exit(1);
    /* Threads that stay alive hold their rings for every round. */
    double rates[7], cpu_per_record[7];
    pthread_t th[THREADS];
    for (int round = 0; round < 8; round++) {
        for (long t = 0; t < THREADS; t++)
            pthread_create(&th[t], NULL, fill, (void *)(intptr_t)t);
        for (long t = 0; t < THREADS; t++)
            pthread_join(th[t], NULL);
        if (d->procs == NULL)
            funcmond_discovery_scan(d);
        struct funcmond_process *p = d->procs;
        if (p == NULL)
            exit(1);
        uint64_t before = p->records, cpu0 = thread_cpu_ns(), t0 = now_ns();
        while (funcmond_ingest_drain(d, p) != 0)
            ;
        uint64_t t1 = now_ns(), cpu1 = thread_cpu_ns();
        if (round > 0) {
            rates[round - 1] = (double)(p->records - before) / ((double)(t1 - t0) / 1e9);
            cpu_per_record[round - 1] = (double)(cpu1 - cpu0) / (double)(p->records - before);
        }
        if (p->records - before != (uint64_t)THREADS * RING) {
            fprintf(stderr, "drained %llu, expected %u\n", (unsigned long long)(p->records - before), THREADS * RING);
            exit(1);
        }
    }
    if (d->agg.n_fns != fns) {
        fprintf(stderr, "%u functions in the aggregate, expected %u\n", d->agg.n_fns, fns);
        exit(1);
    }
    double rate = median(rates, 7);
    printf("%s median=%.0f bar=50000000 ratio=%.2f (%u records a round, %u functions)\n", line, rate, rate / 50e6, THREADS * RING,
           fns);
    if (cpu_line != NULL) {
        double ns = median(cpu_per_record, 7);
        printf("%s median=%.2f bar=10 ratio=%.2f (thread CPU time per record, %u functions)\n", cpu_line, ns, ns / 10, fns);
    }
    funcmond_drain_close(d);
    funcmond_agg_free(&d->agg);
    free(d);
    funcmon_shutdown();
}

/* BENCH_DRAIN_FNS=16|1024|8192 runs that case alone (to profile one). */
static void
bench_drain(void)
{
    const char *only = getenv("BENCH_DRAIN_FNS");
    if (only == NULL || strcmp(only, "16") == 0)
        bench_drain_over(4, "sidecar_drain_records_per_s", NULL);
    if (only == NULL || strcmp(only, "1024") == 0)
        bench_drain_over(10, "sidecar_drain_1024fn_records_per_s", NULL);
    if (only == NULL || strcmp(only, "8192") == 0)
        bench_drain_over(13, "sidecar_drain_8192fn_records_per_s", "sidecar_drain_ns_per_record");
}

/* Starts program; with refuse_uring, with io_uring refused to it (it runs on epoll). */
static pid_t
start_as(const char *program, char *const argv[], int refuse_uring)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (refuse_uring && harness_refuse_io_uring(0) != 0)
            _exit(127);
        setenv("SIDECAR_SHM_PREFIX", prefix, 1);
        setenv("FUNCMON_SHM_PREFIX", prefix, 1);
        execv(program, argv);
        _exit(127);
    }
    return pid;
}

static pid_t
start(const char *program, char *const argv[])
{
    return start_as(program, argv, 0);
}

/* CPU seconds a process has used: the scheduler's own nanoseconds, summed over its threads
 * (/proc/PID/task/TID/schedstat). The user + system ticks of /proc/PID/stat are sampled at
 * the clock tick, too coarse for a process that wakes for microseconds every few
 * milliseconds; they are the fallback where schedstat is missing. */
static double
cpu_seconds(pid_t pid)
{
    char path[96], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    uint64_t ns = 0;
    int found = 0;
    for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long run = 0;
        if (f != NULL && fscanf(f, "%llu", &run) == 1) {
            ns += run;
            found = 1;
        }
        if (f != NULL)
            fclose(f);
    }
    if (dir != NULL)
        closedir(dir);
    if (found)
        return (double)ns / 1e9;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    for (int field = 2; p != NULL && field < 14; field++)
        p = strchr(p + 1, ' ');
    if (p != NULL)
        sscanf(p + 1, "%llu %llu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void *
watch_stalls(void *arg)
{
    uint64_t *stalls = arg, last = now_ns(), end = last + 5000000000ull;
    for (uint64_t t = last; t < end; last = t) {
        t = now_ns();
        *stalls += t - last > 200000;
    }
    return NULL;
}

/* Stalls a busy thread sees with nothing else running: what the machine takes away. */
static void
bench_stalls(void)
{
    pthread_t th[2];
    uint64_t stalls[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, watch_stalls, &stalls[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    printf("cpu_stalls_over_200us value=%llu threads=2 seconds=5 (a full-speed producer fills the default pool in ~9 ms)\n",
           (unsigned long long)(stalls[0] + stalls[1]));
}

static void
bench_flat_out(const char *funcmond)
{
    char *argv[] = {"funcmond", NULL};
    pid_t sidecar = start(funcmond, argv);
    struct funcmon_options o = {0};
    usleep(300000);
    o.shm_prefix = prefix;
    o.service = "flat";
    if (funcmon_init(&o) != 0) /* default ring and thread settings */
        exit(1);
    uint32_t site = FUNCMON_SITE("flat_out", "bench");
    usleep(200000); /* attached */
    double cpu0 = cpu_seconds(sidecar);
    uint64_t t0 = now_ns(), calls = 0, end = t0 + 10000000000ull;
    while (now_ns() < end) {
        for (int i = 0; i < 4096; i++) {
            struct funcmon_call c = funcmon_begin(site);
            funcmon_end(&c, 0);
        }
        calls += 4096;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    usleep(100000);
    double cpu = cpu_seconds(sidecar) - cpu0;
    struct funcmon_consumer c;
    uint64_t dropped = UINT64_MAX;
    if (funcmon_consumer_open(&c, funcmon_segment_name(), NULL) == 0) {
        dropped = funcmon_consumer_dropped(&c);
        funcmon_consumer_close(&c);
    }
    printf("sidecar_flat_out_drops value=%llu bar=0 calls=%llu (%.1f M/s for %.1f s) sidecar_cpu=%.1f%% of a core\n",
           (unsigned long long)dropped, (unsigned long long)calls, (double)calls / secs / 1e6, secs, 100 * cpu / secs);
    funcmon_shutdown();
    stop(sidecar);
}

/* A loopback port free now, for funcmond's HTTP server (0 if none). */
static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* The event loop funcmond on port says it runs ("io_uring", "epoll"), from /debug/stats;
 * "" when it cannot be asked. */
static void
event_loop_of(int port, char *out, size_t size)
{
    static char reply[65536];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static const char req[] = "GET /debug/stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    size_t got = 0;
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1) {
        for (ssize_t n; got < sizeof(reply) - 1 && (n = read(fd, reply + got, sizeof(reply) - 1 - got)) > 0;)
            got += (size_t)n;
    }
    close(fd);
    reply[got] = '\0';
    const char *p = strstr(reply, "\"event_loop\"");
    if (p == NULL)
        return;
    p += strlen("\"event_loop\"");
    p += strspn(p, " \t:");
    if (*p++ != '"')
        return;
    size_t n = strcspn(p, "\"");
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), p);
}

/* funcmond's CPU share (% of a core) with 10 idle clients of 200 threads, on io_uring or on epoll. Exits
 * (failing) when funcmond did not start (the seccomp filter could not be installed, say),
 * or, asked for epoll, does not say it runs on epoll: a figure of a process that is not
 * there, or not on epoll, would be printed as if measured. */
static double
idle_cpu_pct(const char *funcmond, const char *client, int refuse_uring, double *secs)
{
    char *argv[] = {"funcmond", NULL};
    /* 200 threads each: one call each, sleeping a minute; every thread holds a slot. */
    char *cargv[] = {"e2e_client", "200", "0", "60000000", "0", NULL};
    const char *env = getenv("BENCH_IDLE_SECONDS");
    int seconds = env != NULL && atoi(env) > 0 ? atoi(env) : 30;
    char listen[64], loop[16] = "";
    int port = free_port(), status = 0;
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    setenv("HTTP_LISTEN", listen, 1);
    pid_t sidecar = start_as(funcmond, argv, refuse_uring), clients[10];
    unsetenv("HTTP_LISTEN");
    for (int i = 0; i < 10; i++)
        clients[i] = start(client, cargv);
    sleep(2); /* attached, first samples taken */
    int gone = waitpid(sidecar, &status, WNOHANG) == sidecar;
    if (!gone && refuse_uring)
        event_loop_of(port, loop, sizeof(loop));
    if (gone || (refuse_uring && strcmp(loop, "epoll") != 0)) {
        if (gone)
            fprintf(stderr, "funcmond%s exited (status %d) before it was measured\n", refuse_uring ? " with io_uring refused" : "",
                    status);
        else
            fprintf(stderr, "funcmond runs on '%s' (from /debug/stats on port %d), not on epoll\n", loop, port);
        for (int i = 0; i < 10; i++)
            kill(clients[i], SIGKILL);
        if (!gone)
            kill(sidecar, SIGKILL);
        exit(1);
    }
    double cpu0 = cpu_seconds(sidecar);
    uint64_t t0 = now_ns();
    sleep((unsigned)seconds);
    double cpu = cpu_seconds(sidecar) - cpu0;
    *secs = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < 10; i++) {
        kill(clients[i], SIGKILL);
        waitpid(clients[i], NULL, 0);
    }
    stop(sidecar);
    return 100 * cpu / *secs;
}

static void
bench_idle(const char *funcmond, const char *client)
{
    double secs, pct = idle_cpu_pct(funcmond, client, 0, &secs);
    printf("sidecar_idle_cpu_pct median=%.3f bar=0.5 ratio=%.2f (10 idle clients of 200 threads, %.0f s)\n", pct, pct / 0.5, secs);
    double epct = idle_cpu_pct(funcmond, client, 1, &secs);
    printf("sidecar_epoll_idle_cpu_pct median=%.3f io_uring=%.3f ratio=%.2f (the same, io_uring refused: the epoll loop)\n", epct,
           pct, pct > 0 ? epct / pct : 0);
}

static void
bench_render(void)
{
    char err[256];
    char *const env[] = {NULL};
    struct funcmond *d = calloc(1, sizeof(*d));
    if (d == NULL || funcmond_config_load(&d->cfg, NULL, env, err, sizeof(err)) != 0 || funcmond_agg_init(&d->agg, &d->cfg) != 0 ||
        funcmond_view_init(d) != 0)
        exit(1);
    funcmond_agg_tick(&d->agg, now_ns());
    for (int i = 0; i < 1000; i++) {
        char name[64];
        snprintf(name, sizeof(name), "GET_/v1/resource_%d/:id", i);
        uint32_t id;
        if (funcmond_agg_function(&d->agg, i % 2 ? "api" : "worker", "http_handler", name, &id) != 0)
            exit(1);
        for (int k = 0; k < 100; k++)
            funcmond_agg_record(&d->agg, id, (uint64_t)(1000 + k * 97 * (i + 1)), k % 9 ? 0 : FUNCMON_RECORD_ERROR, 0, 0, 1);
    }
    funcmond_view_maybe_publish(d, now_ns(), 1);
    struct funcmond_reader *r = funcmond_view_reader(d->views);
    const struct funcmond_view *v = funcmond_view_begin(r);
    double ms[21];
    size_t len = 0;
    for (int i = 0; i < 21; i++) {
        char *out = NULL;
        uint64_t t0 = now_ns();
        if (funcmond_render_prom(v, &out, &len) != 0)
            exit(1);
        ms[i] = (double)(now_ns() - t0) / 1e6;
        free(out);
    }
    funcmond_view_end(r);
    funcmond_view_reader_free(r);
    double m = median(ms, 21);
    printf("metrics_render_ms median=%.3f bar=20 ratio=%.3f (1000 functions, %zu bytes)\n", m, m / 20, len);
    funcmond_view_close(d);
    funcmond_agg_free(&d->agg);
    free(d);
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_sidecar FUNCMOND E2E_CLIENT [drain|flat|idle]...\n");
        return 2;
    }
    snprintf(prefix, sizeof(prefix), "fmbench-%d", (int)getpid());
    int all = argc == 3;
    for (int i = 3; i < argc || all; i++) {
        const char *what = all ? NULL : argv[i];
        if (all || strcmp(what, "drain") == 0)
            bench_drain();
        if (all || strcmp(what, "flat") == 0) {
            bench_stalls();
            bench_flat_out(argv[1]);
        }
        if (all || strcmp(what, "idle") == 0)
            bench_idle(argv[1], argv[2]);
        if (all || strcmp(what, "render") == 0)
            bench_render();
        if (all)
            break;
    }
    /* Whatever the killed clients left behind. */
    DIR *dir = opendir("/dev/shm");
    for (struct dirent *e; dir != NULL && (e = readdir(dir)) != NULL;) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            char path[300];
            snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
            unlink(path);
        }
    }
    if (dir != NULL)
        closedir(dir);
    return 0;
}
