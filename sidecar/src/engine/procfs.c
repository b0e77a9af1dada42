/*
 * procfs.c - what /proc says about a client: its CPU, memory, threads and fds, and whether
 * it is still the process that created its segment.
 *
 * A client costs funcmond one fd (its pidfd): its /proc files are opened only while they
 * are read, once a second, on the drain thread. The buffers are bounded and every field
 * parsed is optional: a short or odd file leaves the figures it does not hold as they were.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "funcmon/process.h"
#include "procfs.h"

static void
parse_stat(const struct funcmond *d, struct funcmond_process *p, size_t len)
{
    p->stat_buf[len < sizeof(p->stat_buf) ? len : sizeof(p->stat_buf) - 1] = '\0';
    char *s = strrchr(p->stat_buf, ')');
    if (s == NULL || s[1] != ' ')
        return;
    s += 2;
    /* fields from 3 on: state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime(15) cutime cstime priority nice num_threads(20) itrealvalue
     * starttime(22) vsize(23) rss(24) */
    unsigned long long v[22] = {0};
    char state = *s;
    char *end = s + 1;
    for (int i = 4; i <= 24 && *end == ' '; i++)
        v[i - 3] = strtoull(end + 1, &end, 10);
    p->rt.state = state;
    p->rt.utime_ticks = v[14 - 3];
    p->rt.stime_ticks = v[15 - 3];
    p->rt.threads = (uint32_t)v[20 - 3];
    p->rt.vm_bytes = v[23 - 3];
    p->rt.rss_bytes = v[24 - 3] * (uint64_t)sysconf(_SC_PAGESIZE);
    p->rt.start_real_ns = d->boot_real_ns + v[22 - 3] * FUNCMOND_SECOND_NS / (uint64_t)d->clock_ticks;
}

static void
parse_status(struct funcmond_process *p, size_t len)
{
    p->status_buf[len < sizeof(p->status_buf) ? len : sizeof(p->status_buf) - 1] = '\0';
    const char *v = strstr(p->status_buf, "\nVmRSS:");
    if (v != NULL)
        p->rt.rss_bytes = strtoull(v + 7, NULL, 10) * 1024;
    v = strstr(p->status_buf, "\nThreads:");
    if (v != NULL)
        p->rt.threads = (uint32_t)strtoul(v + 9, NULL, 10);
}

static uint32_t
count_fds(int32_t pid)
{
    char path[64];
    uint32_t n = 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

int
funcmond_process_gone(int32_t pid, uint64_t start_time)
{
    uint64_t now = funcmon_process_start_time(pid);
    if (now != 0)
        return now != start_time;
    /* /proc unreadable: gone only when the kernel says so, not for want of an fd. */
    return kill(pid, 0) != 0 && errno == ESRCH;
}

void
funcmond_procfs_read(const struct funcmond *d, struct funcmond_process *p)
{
    char path[64];
    p->rt.open_fds = count_fds(p->pid);
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)p->pid);
    size_t n = funcmon_read_proc_file(path, p->stat_buf, sizeof(p->stat_buf));
    if (n > 0)
        parse_stat(d, p, n);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
    n = funcmon_read_proc_file(path, p->status_buf, sizeof(p->status_buf));
    if (n > 0)
        parse_status(p, n);
}
