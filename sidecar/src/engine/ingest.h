/*
 * ingest.h - records from the clients' rings and spill counters into the aggregate.
 */
#ifndef FUNCMOND_INGEST_H
#define FUNCMOND_INGEST_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "sidecar.h"

/* p->site_fn[site]: 0 while the site is not resolved, this for a site left out by
 * METRICS.SKIP_PATHS, otherwise its function id + 1. Only ingest.c writes it; read it
 * through funcmond_ingest_site_fn. */
#define FUNCMOND_SITE_SKIPPED UINT32_MAX

/* True for an HTTP request profile (package "http_handler", name "<METHOD>_<path>") whose
 * path matches METRICS.SKIP_PATHS: it is left out of everything funcmond serves. */
int funcmond_ingest_skip_http(const struct funcmond_config *cfg, const char *package, const char *name);

/* Resolves p's site to its function (created in the aggregate on first use, remembered in
 * p). Returns 0 with the function id in *fn; -EAGAIN when the client has not published the
 * site yet; -ENOENT when METRICS.SKIP_PATHS leaves it out; -ENOMEM when the aggregate is
 * out of memory (tried again at the next use). */
int funcmond_ingest_resolve_site(struct funcmond *d, struct funcmond_process *p, uint32_t site, uint32_t *fn);

/* The function of p's site as resolved so far, without resolving it: 0 with *fn, -EAGAIN
 * when not resolved yet (or site out of range), -ENOENT when skipped. */
static inline int
funcmond_ingest_site_fn(const struct funcmond_process *p, uint32_t site, uint32_t *fn)
{
    uint32_t v = site < p->c.geo.max_sites ? p->site_fn[site] : 0;
    if (v == 0)
        return -EAGAIN;
    if (v == FUNCMOND_SITE_SKIPPED)
        return -ENOENT;
    *fn = v - 1;
    return 0;
}

/* One pass over p's busy thread slots (up to SLOT_RECORDS_PER_PASS records of each), and
 * what its spill counters gained; returns how many records. A segment that shrank under
 * its mapping or a client that shut funcmon down marks p ended. */
size_t funcmond_ingest_drain(struct funcmond *d, struct funcmond_process *p);

/* Drains p to its last record (passes that read every slot until one finds nothing): for
 * a client that ended, and for everyone when funcmond stops. Returns records delivered. */
size_t funcmond_ingest_drain_to_end(struct funcmond *d, struct funcmond_process *p);

/* Resolves the functions of the calls in flight in live clients (creating them in the
 * aggregate) and links their stacks, so that the next view shows them. Called by the tick
 * just before it publishes: building a view changes nothing. */
void funcmond_ingest_inflight(struct funcmond *d);

/* Marks p ended (exited or shut down), drained to its last record; it is kept listed for
 * EXITED_RETENTION_S (discovery.c lets it go then). */
void funcmond_process_ended(struct funcmond *d, struct funcmond_process *p, enum funcmond_proc_state why);

/* Arms the wake-up wait and the exit watch of a newly attached process. */
void funcmond_ingest_watch(struct funcmond *d, struct funcmond_process *p);
/* Arms p's wake-up wait again if it is not armed (a live client, futex waits available). */
void funcmond_ingest_arm_wake(struct funcmond *d, struct funcmond_process *p);
/* Cancels p's operations in flight; p is freed once none refers to it. */
void funcmond_ingest_unwatch(struct funcmond *d, struct funcmond_process *p);

#endif
