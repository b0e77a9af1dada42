/*
 * publish.h - the drain thread's side of view.h: building and publishing views.
 */
#ifndef FUNCMOND_PUBLISH_H
#define FUNCMOND_PUBLISH_H

#include "sidecar.h"

/* Sets up publication in d (drain thread). Returns 0 or -ENOMEM. */
int funcmond_view_init(struct funcmond *d);
/* Frees every view; no reader may be inside a section. */
void funcmond_view_close(struct funcmond *d);
/* Publishes a new view if it is time (or `force`). Drain thread only. */
void funcmond_view_maybe_publish(struct funcmond *d, uint64_t now_mono_ns, int force);

#endif
