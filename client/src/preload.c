/*
 * preload.c - libfuncmon_preload.so: funcmon for a program that was not built with it.
 *
 * LD_PRELOAD=libfuncmon_preload.so puts the whole client, allocation tracker included,
 * ahead of libc in symbol lookup, and this constructor starts it before main with the
 * settings of the environment. Allocation tracking is on unless FUNCMON_TRACK_ALLOC says
 * otherwise: process totals and allocator statistics are what such a program offers the
 * sidecar, since it has no profiled calls of its own. funcmon_init registers the shutdown
 * at exit.
 */
#include <stdlib.h>

#include "internal.h"

__attribute__((constructor)) static void
preload_start(void)
{
    struct funcmon_options opts = {0};
    if (getenv("FUNCMON_TRACK_ALLOC") == NULL)
        opts.track_alloc = FUNCMON_ON;
    funcmon_init(&opts);
}
