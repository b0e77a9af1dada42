/*
 * test_layout.c - the segment a real client creates has the layout proto/ defines.
 *
 * The static asserts in funcmon/layout.h pin sizes and offsets at compile time; this test
 * checks what a created segment holds: identity, geometry, region offsets in the declared
 * order without overlap, the service name and pid, the clock calibration, and the site
 * table mirroring the registry.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "funcmon.h"
#include "funcmon/validate.h"
#include "harness.h"

int
main(void)
{
    struct funcmon_options o = {0};
    struct funcmon_consumer c;
    struct stat st;
    char path[300];

    harness_private_prefix();
    /* The first protocol's ring size, where no pool size is set, sizes the pool like its 64
     * default rings; the pool size wins where both are set. */
    struct funcmon_options env_opts;
    const char *bad;
    CHECK_EQ(funcmon_options_from_env(&env_opts, &bad), 0);
    CHECK_EQ(env_opts.pool_records, 3584 * 128);
    CHECK_EQ(env_opts.chunk_records, 128);
    CHECK_EQ(env_opts.max_threads, 4096);
    setenv("FUNCMON_RING_RECORDS", "1024", 1);
    CHECK_EQ(funcmon_options_from_env(&env_opts, &bad), 0);
    CHECK_EQ(env_opts.pool_records, 64 * 1024);
    setenv("FUNCMON_POOL_RECORDS", "5000", 1);
    CHECK_EQ(funcmon_options_from_env(&env_opts, &bad), 0);
    CHECK_EQ(env_opts.pool_records, 5000);
    unsetenv("FUNCMON_RING_RECORDS");
    unsetenv("FUNCMON_POOL_RECORDS");
    o.service = "layout svc/1"; /* the file name gets a sanitised copy */
    o.pool_records = 1000;      /* rounded up to 4 chunks of 256 */
    o.chunk_records = 256;
    o.max_threads = 8;
    o.max_sites = 64;
    CHECK_EQ(funcmon_init(&o), 0);
    const char *name = funcmon_segment_name();
    CHECK(name != NULL);
    char expect[200];
    snprintf(expect, sizeof(expect), "/%s.layout_svc_1.%d", harness_private_prefix(), (int)getpid());
    CHECK_STREQ(name, expect);
    snprintf(path, sizeof(path), "/dev/shm%s", name);
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0600);
    /* Everything reserved up front: allocated blocks cover the whole size. */
    CHECK_EQ((uint64_t)st.st_size, 4096 + 64 * 512 + 8 * 512 + 4 * 64 + 4 * 256 * 64); /* header, sites, slots, chunks, records */
    CHECK_GE((uint64_t)st.st_blocks * 512, (uint64_t)st.st_size);

    uint32_t site = FUNCMON_SITE("layout_fn", "layout_pkg");
    harness_open_self(&c);
    const struct funcmon_shm_header *h = c.hdr;
    CHECK_EQ(h->magic, FUNCMON_SHM_MAGIC);
    CHECK_EQ(h->major, FUNCMON_SHM_MAJOR);
    CHECK_EQ(h->minor, FUNCMON_SHM_MINOR);
    CHECK_EQ(h->header_size, sizeof(struct funcmon_shm_header));
    CHECK_EQ(h->record_size, 64);
    CHECK_EQ(h->site_size, sizeof(struct funcmon_site_entry));
    CHECK_EQ(h->slot_size, sizeof(struct funcmon_thread_slot));
    CHECK_EQ(h->chunk_records, 256);
    CHECK_EQ(h->pool_chunks, 4);
    CHECK_EQ(h->chunk_size, sizeof(struct funcmon_chunk));
    CHECK_EQ(h->max_threads, 8);
    CHECK_EQ(h->max_sites, 64);
    CHECK_EQ(h->sites_offset, FUNCMON_HEADER_SIZE);
    CHECK_EQ(h->slots_offset, h->sites_offset + 64 * sizeof(struct funcmon_site_entry));
    CHECK_EQ(h->chunks_offset, h->slots_offset + 8 * sizeof(struct funcmon_thread_slot));
    CHECK_EQ(h->records_offset, h->chunks_offset + 4 * sizeof(struct funcmon_chunk));
    CHECK_EQ(h->records_offset + 4ull * 256 * 64, h->segment_size);
    /* Every chunk on the free list, from the first down. */
    CHECK_EQ(FUNCMON_POOL_TOP(h->pool_free), 1);
    const struct funcmon_chunk *chunks = (const struct funcmon_chunk *)((const char *)h + h->chunks_offset);
    for (uint32_t i = 0; i < 4; i++)
        CHECK_EQ(chunks[i].next_free, i < 3 ? i + 2 : 0);
    CHECK_EQ(h->pid, getpid());
    CHECK_STREQ(h->service, "layout svc/1");
    CHECK_GT(h->proc_start_time, 0);
    CHECK(h->clock_source == FUNCMON_CLOCK_TSC || h->clock_source == FUNCMON_CLOCK_MONOTONIC);
    CHECK_EQ(h->calib_seq % 2, 0);
    CHECK_EQ(h->state, FUNCMON_STATE_LIVE);
    CHECK_EQ(h->consumer_pid, getpid());
    CHECK_EQ(c.geo.chunk_bytes, 256 * 64);
    CHECK_EQ(c.geo.pool_chunks, 4);

    /* The record's cache-line alignment holds in the mapping. */
    CHECK_EQ(h->records_offset % 64, 0);
    CHECK_EQ(h->chunks_offset % 64, 0);
    CHECK_EQ(h->slots_offset % 64, 0);

    /* The site table mirrors the registry: reserved ids first, then ours. */
    const struct funcmon_site_info *none = funcmon_consumer_site(&c, FUNCMON_SITE_NONE);
    const struct funcmon_site_info *ovf = funcmon_consumer_site(&c, FUNCMON_SITE_OVERFLOW);
    const struct funcmon_site_info *mine = funcmon_consumer_site(&c, site);
    CHECK(none != NULL && ovf != NULL && mine != NULL);
    CHECK_STREQ(ovf->name, "<overflow>");
    CHECK_STREQ(mine->name, "layout_fn");
    CHECK_STREQ(mine->package, "layout_pkg");
    CHECK_EQ(funcmon_consumer_site(&c, 63), NULL); /* not published */
    CHECK_EQ(funcmon_consumer_site(&c, 100000), NULL);

    /* The clock converts: a tick reading now lies within a second of the wall clock. */
    struct funcmon_clock clk;
    CHECK_EQ(funcmon_consumer_clock(&c, &clk), 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t real_now = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    uint64_t ticks = funcmon__ticks();
    int64_t diff = (int64_t)(funcmon_clock_real_ns(&clk, ticks) - real_now);
    CHECK_LT(diff < 0 ? -diff : diff, 1000000000);

    funcmon_consumer_close(&c);
    funcmon_shutdown();
    printf("test_layout: ok\n");
    return 0;
}
