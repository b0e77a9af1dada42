/*
 * publish.h - the drain thread's side of view.h: building and publishing views, which
 * only read the engine's state.
 */
#ifndef FUNCMOND_PUBLISH_H
#define FUNCMOND_PUBLISH_H

#include "sidecar.h"

/* Sets up publication in d (drain thread). Returns 0 or -ENOMEM. */
int funcmond_view_init(struct funcmond *d);
/* Frees every view; no reader may be inside a section. */
void funcmond_view_close(struct funcmond *d);
/* Whether a new view is due: `force`, figures changed and PUBLISH_BUSY_NS passed, or
 * PUBLISH_IDLE_NS passed. */
int funcmond_view_due(const struct funcmond *d, uint64_t now_mono_ns, int force);
/* Publishes a new view of d as it stands if one is due (or `force`). Building it changes
 * nothing it describes; only the publication's own bookkeeping moves (the aggregate's
 * generation and dirty flag, the time of the last view). Drain thread only. */
void funcmond_view_maybe_publish(struct funcmond *d, uint64_t now_mono_ns, int force);

#endif
