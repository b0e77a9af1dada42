/*
 * test_sites.c - runtime-interned names: one id per (package, name) from any thread,
 * caches of ids for names made at run time, truncation, odd names, and the overflow site
 * when the table is full.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "check.h"
#include "funcmon.h"
#include "harness.h"

#define THREADS 4
#define NAMES 10

static uint32_t ids[THREADS][NAMES];
static uint32_t cached[THREADS][NAMES];
/* One cache per name, shared by every thread, as a service keeps one beside each command. */
static uint32_t caches[NAMES];

static void *
intern_all(void *arg)
{
    int t = (int)(intptr_t)arg;
    char name[32];
    /* Each thread interns the same names in a different order. */
    for (int k = 0; k < NAMES; k++) {
        int i = (k + t * 3) % NAMES;
        snprintf(name, sizeof(name), "dyn_%d", i);
        ids[t][i] = funcmon_site(name, "sites");
        cached[t][i] = funcmon_site_cached(&caches[i], name, "sites");
        struct funcmon_call c = funcmon_begin(cached[t][i]);
        funcmon_end(&c, 0);
    }
    return NULL;
}

int
main(void)
{
    struct funcmon_options o = {0};
    struct funcmon_consumer c;
    static struct harness_tally t;
    pthread_t th[THREADS];

    harness_private_prefix();
    o.max_sites = 16; /* ids 0 and 1 are reserved: 14 left */
    CHECK_EQ(funcmon_init(&o), 0);
    harness_open_self(&c);

    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, intern_all, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < NAMES; i++) {
        CHECK_GT(ids[0][i], FUNCMON_SITE_OVERFLOW);
        for (int k = 1; k < THREADS; k++)
            CHECK_EQ(ids[k][i], ids[0][i]);
        for (int k = 0; k < THREADS; k++)
            CHECK_EQ(cached[k][i], ids[0][i]);
        CHECK_EQ(caches[i], ids[0][i]);
        for (int j = 0; j < i; j++)
            CHECK_NE(ids[0][j], ids[0][i]);
    }
    /* A filled cache is all a later call reads: the name it is given is not looked at. */
    char reused[32] = "dyn_0";
    CHECK_EQ(funcmon_site_cached(&caches[0], reused, "sites"), ids[0][0]);
    snprintf(reused, sizeof(reused), "not_interned");
    CHECK_EQ(funcmon_site_cached(&caches[0], reused, "sites"), ids[0][0]);
    CHECK_EQ(funcmon_site_cached(&caches[0], NULL, NULL), ids[0][0]);
    /* Same name, other package: another site. Package NULL is "". */
    uint32_t a = funcmon_site("dyn_0", "other");
    CHECK_NE(a, ids[0][0]);
    CHECK_EQ(funcmon_site("plain", NULL), funcmon_site("plain", ""));
    /* NULL or empty names have a name. */
    uint32_t unnamed = funcmon_site(NULL, "sites");
    CHECK_EQ(funcmon_site("", "sites"), unnamed);
    /* Names longer than the limit are truncated, and compare equal once truncated. */
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    uint32_t lid = funcmon_site(longname, "sites");
    longname[200] = '\0';
    CHECK_EQ(funcmon_site(longname, "sites"), lid);
    /* 10 + other + plain + unnamed + long = 14 sites: the table is full now. */
    CHECK_EQ(funcmon_site("one_too_many", "sites"), FUNCMON_SITE_OVERFLOW);
    CHECK_EQ(funcmon_site("two_too_many", "sites"), FUNCMON_SITE_OVERFLOW);
    uint32_t full_cache = 0; /* a full table: the cache keeps the overflow site, never 0 */
    CHECK_EQ(funcmon_site_cached(&full_cache, "cached_too_many", "sites"), FUNCMON_SITE_OVERFLOW);
    CHECK_EQ(full_cache, FUNCMON_SITE_OVERFLOW);
    struct funcmon_call call = funcmon_begin(funcmon_site("three_too_many", "sites"));
    funcmon_end(&call, 1);

    harness_drain_all(&c, &t);
    for (int i = 0; i < NAMES; i++) {
        CHECK_EQ(t.calls[ids[0][i]], THREADS);
        const struct funcmon_site_info *si = funcmon_consumer_site(&c, ids[0][i]);
        char want[32];
        snprintf(want, sizeof(want), "dyn_%d", i);
        CHECK(si != NULL);
        CHECK_STREQ(si->name, want);
        CHECK_STREQ(si->package, "sites");
    }
    const struct funcmon_site_info *li = funcmon_consumer_site(&c, lid);
    CHECK(li != NULL);
    CHECK_EQ(strlen(li->name), FUNCMON_NAME_MAX);
    CHECK_STREQ(funcmon_consumer_site(&c, unnamed)->name, "<unnamed>");
    CHECK_EQ(t.calls[FUNCMON_SITE_OVERFLOW], 1);
    CHECK_EQ(t.errors[FUNCMON_SITE_OVERFLOW], 1);
    CHECK_EQ(c.hdr->sites_overflowed, 4);
    CHECK_EQ(c.hdr->site_count, 16);
    funcmon_consumer_close(&c);
    funcmon_shutdown();
    printf("test_sites: ok\n");
    return 0;
}
