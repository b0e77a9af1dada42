/*
 * fuzz_validate.c - fuzz target for the segment validator and the consumer: whatever
 * bytes a client leaves in its segment, the reader must not crash, hang, or read outside
 * the mapping.
 *
 * Random bytes almost never make a header the validator accepts, so a libFuzzer input is
 * read as edits to a valid seed segment: a length change, then (offset, length, bytes)
 * patches. The fuzzer thereby steers every header field, position, chunk link, free-list
 * word, record and name
 * while the rest stays plausible. The mutated segment is copied into a buffer of exactly
 * its size, so ASan reports any over-read. Built as a libFuzzer driver with FUNCMON_FUZZ=ON
 * (clang); fuzz_smoke.c runs the same checks over generated mutations in every test run.
 */
#include <stdlib.h>
#include <string.h>

#include "funcmon/consumer.h"
#include "funcmon/validate.h"
#include "fuzz_segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

size_t
fuzz_seed_size(void)
{
    return (size_t)funcmon_segment_bytes(FUZZ_CHUNK, FUZZ_CHUNKS, FUZZ_THREADS, FUZZ_SITES);
}

size_t
fuzz_seed_build(unsigned char *buf)
{
    size_t size = fuzz_seed_size();
    struct funcmon_shm_header *h = (struct funcmon_shm_header *)buf;
    memset(buf, 0, size);
    h->magic = FUNCMON_SHM_MAGIC;
    h->major = FUNCMON_SHM_MAJOR;
    h->header_size = FUNCMON_HEADER_SIZE;
    h->record_size = sizeof(struct funcmon_record);
    h->site_size = sizeof(struct funcmon_site_entry);
    h->slot_size = sizeof(struct funcmon_thread_slot);
    h->chunk_size = sizeof(struct funcmon_chunk);
    h->chunk_records = FUZZ_CHUNK;
    h->pool_chunks = FUZZ_CHUNKS;
    h->max_threads = FUZZ_THREADS;
    h->max_sites = FUZZ_SITES;
    h->segment_size = size;
    h->sites_offset = FUNCMON_HEADER_SIZE;
    h->slots_offset = h->sites_offset + FUZZ_SITES * sizeof(struct funcmon_site_entry);
    h->chunks_offset = h->slots_offset + FUZZ_THREADS * sizeof(struct funcmon_thread_slot);
    h->records_offset = h->chunks_offset + FUZZ_CHUNKS * sizeof(struct funcmon_chunk);
    h->pid = 1;
    strcpy(h->service, "fuzz");
    h->clock_source = FUNCMON_CLOCK_TSC;
    h->tick_mult = 3ull << 30;
    h->tick_shift = 32;
    h->site_count = 4;
    struct funcmon_site_entry *s = (struct funcmon_site_entry *)(buf + h->sites_offset);
    for (int i = 0; i < 4; i++)
        s[i].name[0] = (char)('a' + i);
    struct funcmon_thread_slot *slot = (struct funcmon_thread_slot *)(buf + h->slots_offset);
    struct funcmon_chunk *ch = (struct funcmon_chunk *)(buf + h->chunks_offset);
    struct funcmon_record *r = (struct funcmon_record *)(buf + h->records_offset);
    /* Slot 0, retired: a chain of chunks 0 -> 2 -> 4 holding positions [0, 40). Slot 1,
     * active: chunk 1 from position 5 (not a multiple of the chunk size), read up to 5,
     * written up to 12. Chunks 3 and 5 are free. */
    static const uint32_t chain[3] = {0, 2, 4};
    for (uint64_t p = 0; p < 40; p++) {
        struct funcmon_record *rec = &r[chain[p / FUZZ_CHUNK] * FUZZ_CHUNK + (p & (FUZZ_CHUNK - 1))];
        rec->seq = p;
        rec->site = (uint32_t)(p % 4);
        rec->end = p + 1;
    }
    for (int k = 0; k < 3; k++) {
        ch[chain[k]].slot = 0;
        ch[chain[k]].first = (uint64_t)k * FUZZ_CHUNK;
        ch[chain[k]].next = k < 2 ? chain[k + 1] + 1 : 0;
    }
    slot[0].head = 40;
    slot[0].depth = 3;
    slot[0].first_chunk = 1;
    slot[0].cur_chunk = 5;
    slot[0].state = FUNCMON_SLOT_RETIRED;
    for (uint64_t p = 5; p < 12; p++) {
        struct funcmon_record *rec = &r[1 * FUZZ_CHUNK + (p & (FUZZ_CHUNK - 1))];
        rec->seq = p;
        rec->site = 2;
        rec->end = p + 3;
    }
    ch[1].slot = 1;
    ch[1].first = 5;
    slot[1].head = 12;
    slot[1].tail = 5;
    slot[1].first_chunk = 2;
    slot[1].cur_chunk = 2;
    slot[1].state = FUNCMON_SLOT_ACTIVE;
    ch[3].next_free = 6;
    h->pool_free = FUNCMON_POOL_WORD(4, 7);
    return size;
}

static void
count(void *arg, uint32_t ring, const struct funcmon_record *rec)
{
    (void)ring;
    *(uint64_t *)arg += rec->site;
}

void
fuzz_check_segment(const unsigned char *seg, size_t len)
{
    struct funcmon_consumer c;
    struct funcmon_geometry geo;
    unsigned char *buf = malloc(len ? len : 1);
    uint64_t sum = 0;

    if (buf == NULL)
        return;
    memcpy(buf, seg, len);
    if (funcmon_validate_segment(buf, len, &geo) == FUNCMON_VALID && funcmon_consumer_attach(&c, buf, len, NULL) == 0) {
        for (int round = 0; round < 2; round++)
            funcmon_consumer_drain(&c, count, &sum, SIZE_MAX);
        for (uint32_t id = 0; id < c.geo.max_sites && id < 64; id++)
            funcmon_consumer_site(&c, id);
        funcmon_consumer_site(&c, UINT32_MAX);
        struct funcmon_slot_info si;
        for (uint32_t i = 0; i < c.geo.max_threads && i < 64; i++)
            funcmon_consumer_slot(&c, i, &si);
        uint64_t calls, errors;
        funcmon_consumer_spill(&c, 1, &calls, &errors);
        funcmon_consumer_dropped(&c);
        struct funcmon_clock clk;
        if (funcmon_consumer_clock(&c, &clk) == 0)
            sum += funcmon_clock_real_ns(&clk, sum);
        funcmon_consumer_close(&c);
    }
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char *seg;
    size_t full = fuzz_seed_size();

    if (seg == NULL && (seg = malloc(full)) == NULL)
        return 0;
    size_t len = fuzz_seed_build(seg);
    /* byte 0: how much shorter the mapping is (0 = whole, else len * b / 256) */
    if (size > 0) {
        if (data[0] != 0)
            len = len * data[0] / 256;
        data++;
        size--;
    }
    /* then patches: offset (2 bytes, scaled to the segment), count (1 byte), bytes */
    while (size >= 3) {
        size_t off = ((size_t)data[0] | (size_t)data[1] << 8) * full / 65536;
        size_t n = data[2];
        data += 3;
        size -= 3;
        if (n > size)
            n = size;
        if (n > full - off)
            n = full - off;
        memcpy(seg + off, data, n);
        data += n;
        size -= n;
    }
    fuzz_check_segment(seg, len);
    return 0;
}
