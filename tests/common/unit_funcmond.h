/*
 * unit_funcmond.h - a funcmond with its aggregate and views but no loop, no clients and
 * no server, for unit tests of what the drain thread builds and publishes.
 */
#ifndef FUNCMON_TEST_UNIT_FUNCMOND_H
#define FUNCMON_TEST_UNIT_FUNCMOND_H

#include <stdlib.h>

#include "check.h"
#include "publish.h"

/* A funcmond with settings `env` ("NAME=value", NULL-terminated), an empty aggregate and
 * views, started long ago (rates over the full window) and at a fixed window slot. */
static inline struct funcmond *
unit_funcmond_new(char *const *env)
{
    struct funcmond *d = calloc(1, sizeof(*d));
    char err[256];
    CHECK(d != NULL);
    CHECK_EQ(funcmond_config_load(&d->cfg, NULL, env, err, sizeof(err)), 0);
    CHECK_EQ(funcmond_agg_init(&d->agg, &d->cfg), 0);
    d->start_real_ns = 1;
    CHECK_EQ(funcmond_view_init(d), 0);
    funcmond_agg_tick(&d->agg, 1000000000000ull);
    return d;
}

/* Frees what unit_funcmond_new made. */
static inline void
unit_funcmond_free(struct funcmond *d)
{
    funcmond_view_close(d);
    funcmond_agg_free(&d->agg);
    free(d);
}

#endif
