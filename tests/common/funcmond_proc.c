/*
 * funcmond_proc.c - a real funcmond process, asked over HTTP (see funcmond_proc.h).
 *
 * The HTTP client is the smallest that works with funcmond: HTTP/1.0, one request per
 * connection, the answer read to the end. The JSON and Prometheus readers look for one
 * figure by name; they are enough for answers funcmond itself wrote, and return "not
 * there" rather than guess, so a field a later funcmond adds or removes is seen as such.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "funcmon.h"
#include "funcmond_proc.h"

/* Up to size - 1 bytes of funcmond's log from its start, NUL-terminated; the length. */
static ssize_t
read_log(int log_fd, char *buf, size_t size)
{
    ssize_t n = pread(log_fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* The port in funcmond's log line "serving HTTP on 127.0.0.1:0 (port N): ...", 0 if none yet. */
static int
logged_port(int log_fd)
{
    char buf[8192];
    read_log(log_fd, buf, sizeof(buf));
    const char *p = strstr(buf, "(port ");
    return p != NULL ? atoi(p + strlen("(port ")) : 0;
}

static void
print_log(int log_fd)
{
    char buf[8192];
    if (read_log(log_fd, buf, sizeof(buf)) > 0)
        fprintf(stderr, "--- funcmond log:\n%s", buf);
}

/* 1 for an environment entry that would change one of funcmond's settings. */
static int
is_funcmond_setting(const char *entry)
{
    static const char *const sections[] = {"PROFILING_", "METRICS_", "HTTP_", "SIDECAR_", "FUNCMON_CONFIG="};
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        if (strncmp(entry, sections[i], strlen(sections[i])) == 0)
            return 1;
    return 0;
}

int
funcmond_proc_start(struct funcmond_proc *f, const char *program, const char *prefix)
{
    char prefix_setting[128], log_path[256];
    char **env;
    size_t n = 0, size = 3;

    memset(f, 0, sizeof(*f));
    snprintf(f->prefix, sizeof(f->prefix), "%s", prefix);
    f->log_fd = -1;
    snprintf(log_path, sizeof(log_path), "/tmp/funcmond-%s-XXXXXX", prefix);
    /* This environment without any of funcmond's settings, then the two chosen here: the
     * rest stay at their defaults whatever the caller's environment holds. */
    for (char **e = environ; *e != NULL; e++)
        size++;
    if ((env = calloc(size, sizeof(*env))) == NULL)
        return -ENOMEM;
    for (char **e = environ; *e != NULL; e++)
        if (!is_funcmond_setting(*e))
            env[n++] = *e;
    snprintf(prefix_setting, sizeof(prefix_setting), "SIDECAR_SHM_PREFIX=%s", prefix);
    env[n++] = prefix_setting;
    env[n++] = "HTTP_LISTEN=127.0.0.1:0";
    f->log_fd = mkostemp(log_path, O_CLOEXEC);
    if (f->log_fd >= 0)
        unlink(log_path);
    f->pid = f->log_fd < 0 ? -1 : fork();
    if (f->pid < 0) {
        int err = errno;
        if (f->log_fd >= 0)
            close(f->log_fd);
        f->log_fd = -1;
        free(env);
        return -err;
    }
    if (f->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failing test or bench takes funcmond with it */
        dup2(f->log_fd, 2);
        char *const argv[] = {"funcmond", NULL};
        execve(program, argv, env);
        _exit(127);
    }
    free(env);
    for (int i = 0; i < 1000; i++) {
        int status;
        if ((f->port = logged_port(f->log_fd)) > 0)
            return 0;
        if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
            fprintf(stderr, "funcmond exited (status %d) before it served HTTP\n", status);
            print_log(f->log_fd);
            f->pid = 0;
            funcmond_proc_stop(f);
            return -ECHILD;
        }
        usleep(10000);
    }
    fprintf(stderr, "funcmond did not serve HTTP within 10 s\n");
    print_log(f->log_fd);
    funcmond_proc_stop(f);
    return -ETIMEDOUT;
}

int
funcmond_proc_start_client(struct funcmond_proc *f, const char *program, const char *prefix, const char *service)
{
    int ret = funcmond_proc_start(f, program, prefix);
    if (ret != 0)
        return ret;
    setenv("FUNCMON_SHM_PREFIX", prefix, 1);
    setenv("FUNCMON_SERVICE", service, 1);
    unsetenv("FUNCMON_RING_RECORDS");
    unsetenv("FUNCMON_MAX_THREADS");
    if (funcmon_init(NULL) != 0)
        ret = -EIO;
    else if ((ret = funcmond_wait_processes(f, 1, 10)) != 0)
        fprintf(stderr, "the client did not attach to funcmond within 10 s\n");
    if (ret != 0)
        funcmond_proc_stop(f);
    return ret;
}

int
funcmond_proc_stop(struct funcmond_proc *f)
{
    int status = -ECHILD;
    if (f->pid > 0) {
        int reaped = 0;
        kill(f->pid, SIGTERM);
        for (int i = 0; i < 1000 && !(reaped = waitpid(f->pid, &status, WNOHANG) == f->pid); i++)
            usleep(10000);
        if (!reaped) {
            fprintf(stderr, "funcmond %d did not stop within 10 s of SIGTERM: killed\n", (int)f->pid);
            print_log(f->log_fd);
            kill(f->pid, SIGKILL);
            waitpid(f->pid, &status, 0);
        }
        f->pid = 0;
    }
    if (f->log_fd >= 0)
        close(f->log_fd);
    f->log_fd = -1;
    char lock[128];
    snprintf(lock, sizeof(lock), "/%s-sidecar", f->prefix);
    shm_unlink(lock);
    return status;
}

int
funcmond_http_get(const struct funcmond_proc *f, const char *path, char **body)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval limit = {.tv_sec = 10};
    char req[1024];
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = 0;

    *body = NULL;
    int len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (buf == NULL || fd < 0 || len >= (int)sizeof(req)) {
        ret = buf == NULL ? -ENOMEM : fd < 0 ? -errno : -ENAMETOOLONG;
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || write(fd, req, (size_t)len) != len) {
        ret = -errno;
        goto out;
    }
    for (ssize_t n;;) {
        if (got + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                ret = -ENOMEM;
                goto out;
            }
            buf = bigger;
            cap *= 2;
        }
        n = read(fd, buf + got, cap - 1 - got);
        if (n < 0) {
            ret = -errno;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    int status = 0;
    const char *end = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || end == NULL) {
        ret = -EPROTO;
        goto out;
    }
    memmove(buf, end + 4, got - (size_t)(end + 4 - buf) + 1);
    *body = buf;
    buf = NULL;
    ret = status;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return ret;
}

int
json_sum_u64(const char *json, const char *key, uint64_t *sum)
{
    char quoted[128];
    int found = 0;
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    *sum = 0;
    for (const char *p = strstr(json, quoted); p != NULL; p = strstr(p, quoted)) {
        p += strlen(quoted);
        const char *v = p + strspn(p, " \t\r\n");
        if (*v != ':')
            continue; /* the same text as a value, not a key */
        v++;
        v += strspn(v, " \t\r\n");
        if (*v < '0' || *v > '9')
            continue;
        *sum += strtoull(v, NULL, 10);
        found++;
    }
    return found;
}

int
prom_sum(const char *text, const char *name, const char *const *labels, double *sum)
{
    size_t name_len = strlen(name);
    int found = 0;
    *sum = 0;
    for (const char *line = text; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        if (len > name_len && strncmp(line, name, name_len) == 0 && (line[name_len] == '{' || line[name_len] == ' ')) {
            char sample[4096];
            snprintf(sample, sizeof(sample), "%.*s", (int)len, line);
            int match = 1;
            for (int i = 0; labels != NULL && labels[i] != NULL; i++)
                match = match && strstr(sample, labels[i]) != NULL;
            /* the value follows the label set (which may hold spaces in its values) */
            const char *close = line[name_len] == '{' ? strrchr(sample, '}') : sample + name_len;
            if (match && close != NULL) {
                *sum += strtod(close + 1, NULL);
                found++;
            }
        }
        line += len + (eol != NULL);
    }
    return found;
}

int
funcmond_profile_u64(const struct funcmond_proc *f, const char *service, const char *name, const char *field, uint64_t *out)
{
    char path[512], *body;
    snprintf(path, sizeof(path), "/debug/profiles/%s?service=%s", name, service);
    int status = funcmond_http_get(f, path, &body), ret = 0;
    if (status < 0)
        return status;
    if (status != 200 || json_sum_u64(body, field, out) != 1)
        ret = -ENOENT;
    free(body);
    return ret;
}

int
funcmond_wait_calls(const struct funcmond_proc *f, const char *service, const char *name, uint64_t calls, int seconds,
                    uint64_t *seen)
{
    *seen = 0;
    for (int i = 0; i <= seconds * 50; i++) {
        uint64_t n;
        if (funcmond_profile_u64(f, service, name, "call_count", &n) == 0)
            *seen = n;
        if (*seen >= calls)
            return 0;
        usleep(20000);
    }
    return -ETIMEDOUT;
}

int
funcmond_wait_processes(const struct funcmond_proc *f, uint64_t processes, int seconds)
{
    for (int i = 0; i <= seconds * 50; i++) {
        char *body;
        uint64_t n = 0;
        if (funcmond_http_get(f, "/debug/processes", &body) == 200) {
            json_sum_u64(body, "count", &n);
            free(body);
        }
        if (n >= processes)
            return 0;
        usleep(20000);
    }
    return -ETIMEDOUT;
}

int
funcmond_dropped(const struct funcmond_proc *f, const char *service, const char *package, const char *name, uint64_t *dropped,
                 const char **source)
{
    char *body, label_service[192], label_package[192], label_function[192];
    int status;
    if (funcmond_profile_u64(f, service, name, "dropped_count", dropped) == 0) {
        *source = "dropped_count";
        return 0;
    }
    if ((status = funcmond_http_get(f, "/metrics", &body)) != 200) {
        free(body);
        return status < 0 ? status : -EPROTO;
    }
    snprintf(label_service, sizeof(label_service), "service=\"%s\"", service);
    snprintf(label_package, sizeof(label_package), "package=\"%s\"", package);
    snprintf(label_function, sizeof(label_function), "function=\"%s\"", name);
    const char *labels[] = {label_service, label_package, label_function, NULL};
    double value = 0;
    if (prom_sum(body, "function_dropped_total", labels, &value) > 0) {
        free(body);
        *dropped = (uint64_t)value;
        *source = "function_dropped_total";
        return 0;
    }
    int found = prom_sum(body, "funcmon_records_dropped_total", NULL, &value);
    free(body);
    if (found == 0)
        return -ENOENT;
    *dropped = (uint64_t)value;
    *source = "funcmon_records_dropped_total";
    if ((status = funcmond_http_get(f, "/debug/processes", &body)) == 200) {
        uint64_t without_ring;
        if (json_sum_u64(body, "calls_without_ring", &without_ring) > 0) {
            *dropped += without_ring;
            *source = "funcmon_records_dropped_total+calls_without_ring";
        }
    }
    free(body);
    return 0;
}
