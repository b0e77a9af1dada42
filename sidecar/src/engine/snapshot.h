/*
 * snapshot.h - the state file: totals that survive a restart of funcmond.
 */
#ifndef FUNCMOND_SNAPSHOT_H
#define FUNCMOND_SNAPSHOT_H

#include "sidecar.h"

/* Loads SIDECAR.STATE_FILE into the (empty) aggregate at start. A missing file is a fresh
 * start; a corrupt, truncated, foreign or oversized one is set aside as
 * <file>.corrupt-<time> with a warning, and the start is fresh too. Returns 0; -EINVAL
 * (logged) when the path is not a regular file (a FIFO, a device), which is left as it is
 * and must stop the start; -ENOMEM when memory ran out. */
int funcmond_snapshot_load(struct funcmond *d);

/* Parses a state image (the bytes of a state file, untrusted) into d's empty aggregate,
 * counters and restore list; funcmond_snapshot_load reads the file and calls it. Returns 0;
 * or, with *why saying what is wrong and d left as empty as it was (the aggregate made anew
 * from d->cfg): -EBADMSG (not msgpack, not a state file, malformed), -EOVERFLOW (a length
 * beyond the image), -E2BIG (more segments or detail than funcmond keeps, or an entry
 * larger than any it writes), -ENOMEM. */
int funcmond_snapshot_parse(struct funcmond *d, const void *image, size_t len, const char **why);

/* Writes the state file: msgpack into <file>.tmp, fsync, rename over <file>, all through
 * the event loop. With `wait`, returns once it is on disk (used when stopping). */
void funcmond_snapshot_write(struct funcmond *d, int wait);

/* The state image funcmond_snapshot_write would write now, in a buffer of *len bytes the
 * caller frees. Forgets, as the write does, what is kept about segments whose files are
 * gone. Returns 0 or -ENOMEM. */
int funcmond_snapshot_image(struct funcmond *d, char **image, size_t *len);

/* At attach, with a state file configured: if the file knew this segment (same name, pid
 * and start time), takes over what was already counted from it (spill counters, drops);
 * either way counts as lost the records an earlier reader consumed after the last write
 * (for a segment the file does not know: all it consumed), which the totals do not hold.
 * A segment attached again in the same run counts nothing twice. */
void funcmond_snapshot_restore_process(struct funcmond *d, struct funcmond_process *p);

/* When funcmond lets go of p, with a state file configured: remembers what was counted
 * from it (ring positions, drops, spill counters), so that attaching the same segment
 * again in this run (its file was not removed) counts nothing twice and nothing as lost.
 * What is remembered, and what the state file said about segments not attached now (they
 * wait for room), is written with the state file until the segment's file is gone. */
void funcmond_snapshot_remember_process(struct funcmond *d, const struct funcmond_process *p);

void funcmond_snapshot_free(struct funcmond *d);

#endif
