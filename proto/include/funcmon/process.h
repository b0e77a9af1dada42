/*
 * funcmon/process.h - how a process is told apart from a later one with the same pid.
 *
 * A segment's header carries its creator's pid and start time (field 22 of
 * /proc/<pid>/stat, clock ticks since boot). The client writes it, the sidecar compares it
 * with the live process to notice pid reuse; both read it here, the same way, with the
 * one small-/proc-file reader both sides use.
 */
#ifndef FUNCMON_PROCESS_H
#define FUNCMON_PROCESS_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads a small /proc file into buf (size len) with one read, NUL-terminated, without
 * stdio (nothing allocated: the client calls it from its control thread). Returns the
 * bytes read, or 0 when it cannot be read. */
static inline size_t
funcmon_read_proc_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return (size_t)n;
}

/* The start time of process pid (0: the calling process), or 0 when it cannot be read
 * (no such process). */
static inline uint64_t
funcmon_process_start_time(int32_t pid)
{
    char path[64], buf[1024];
    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/stat");
    else
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (funcmon_read_proc_file(path, buf, sizeof(buf)) == 0)
        return 0;
    /* Field 2 (comm) may hold spaces and parentheses: count fields from the last ')'. */
    char *p = strrchr(buf, ')');
    for (int field = 2; p != NULL && field < 22; field++)
        p = strchr(p + 1, ' ');
    return p != NULL ? strtoull(p + 1, NULL, 10) : 0;
}

#endif
