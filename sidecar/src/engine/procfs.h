/*
 * procfs.h - /proc reads about a client process.
 */
#ifndef FUNCMOND_PROCFS_H
#define FUNCMOND_PROCFS_H

#include <stdint.h>

#include "sidecar.h"

/* 1 when process pid with that start time is gone (or its pid reused); 0 when it runs, or
 * when /proc cannot be read for want of an fd. */
int funcmond_process_gone(int32_t pid, uint64_t start_time);

/* Reads p's figures from /proc (open fds, stat, status) into p->rt; a file that cannot be
 * read leaves its figures as they were. */
void funcmond_procfs_read(const struct funcmond *d, struct funcmond_process *p);

#endif
