/*
 * tick.h - running funcmond's drain thread: start, loop until told to stop, tear down.
 */
#ifndef FUNCMOND_TICK_H
#define FUNCMOND_TICK_H

#include "sidecar.h"

/* Sets up the loop, the signalfd (SIGTERM and SIGINT blocked in the calling thread), the
 * request queue, discovery's inotify watch and the first view. Returns 0 or -errno. */
int funcmond_drain_init(struct funcmond *d);
/* Runs the loop until SIGTERM/SIGINT (or d->stop). On the way out every client is drained
 * to its last record, a last view published and the state file written. Returns 0 after a
 * clean stop, or the -errno of a failed wait. */
int funcmond_drain_run(struct funcmond *d);
/* Detaches every client (segments of live ones stay for the next run) and frees it all. */
void funcmond_drain_close(struct funcmond *d);

#endif
