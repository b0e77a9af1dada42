/*
 * test_validate.c - corrupt and hostile segments are rejected with the right reason, and
 * the consumer skips and counts what the validator cannot see (bad chains, records, names).
 *
 * Segments are built by hand here, not by the client, so the validator is checked against
 * an independent reading of the layout. Every buffer is allocated at exactly the size
 * handed to the validator, so an over-read shows up under ASan. The SIGBUS guard is checked
 * from the first read (a file that shrank before attach) to a full table (nothing read,
 * nothing claimed), and drop counters are believed only as far as a slot could drop.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "harness.h"
#include "funcmon/consumer.h"
#include "funcmon/validate.h"

#define CHUNK 16u
#define CHUNKS 8u
#define THREADS 2u
#define SITES 16u

static size_t
seg_size(void)
{
    return (size_t)funcmon_segment_bytes(CHUNK, CHUNKS, THREADS, SITES);
}

static unsigned char *
make_segment(void)
{
    unsigned char *buf = calloc(1, seg_size());
    struct funcmon_shm_header *h = (struct funcmon_shm_header *)buf;
    CHECK(buf != NULL);
    h->magic = FUNCMON_SHM_MAGIC;
    h->major = FUNCMON_SHM_MAJOR;
    h->minor = FUNCMON_SHM_MINOR;
    h->header_size = FUNCMON_HEADER_SIZE;
    h->record_size = 64;
    h->site_size = 512;
    h->slot_size = 512;
    h->chunk_size = 64;
    h->chunk_records = CHUNK;
    h->pool_chunks = CHUNKS;
    h->max_threads = THREADS;
    h->max_sites = SITES;
    h->segment_size = seg_size();
    h->sites_offset = FUNCMON_HEADER_SIZE;
    h->slots_offset = h->sites_offset + SITES * 512;
    h->chunks_offset = h->slots_offset + THREADS * 512;
    h->records_offset = h->chunks_offset + CHUNKS * 64;
    h->pid = 4242;
    strcpy(h->service, "svc");
    h->clock_source = FUNCMON_CLOCK_MONOTONIC;
    h->tick_mult = 1ull << 32;
    h->tick_shift = 32;
    /* sites 0..2 published */
    struct funcmon_site_entry *sites = (struct funcmon_site_entry *)(buf + h->sites_offset);
    strcpy(sites[2].name, "fn");
    strcpy(sites[2].package, "pkg");
    strcpy(sites[1].name, "<overflow>");
    strcpy(sites[0].name, "<none>");
    h->site_count = 3;
    /* Slot 0's chain: chunks 0 -> 1 -> 2 -> 3, positions [0, 64); chunks 4..7 free. */
    struct funcmon_chunk *ch = (struct funcmon_chunk *)(buf + h->chunks_offset);
    for (uint32_t k = 0; k < 4; k++) {
        ch[k].slot = 0;
        ch[k].first = (uint64_t)k * CHUNK;
        ch[k].next = k < 3 ? k + 2 : 0;
    }
    for (uint32_t k = 4; k < CHUNKS; k++)
        ch[k].next_free = k + 1 < CHUNKS ? k + 2 : 0;
    h->pool_free = FUNCMON_POOL_WORD(5, 0);
    struct funcmon_thread_slot *slots = (struct funcmon_thread_slot *)(buf + h->slots_offset);
    slots[0].first_chunk = 1;
    slots[0].cur_chunk = 4;
    return buf;
}

static struct funcmon_shm_header *
hdr(unsigned char *buf)
{
    return (struct funcmon_shm_header *)buf;
}

static void
expect(unsigned char *buf, size_t len, enum funcmon_invalid want)
{
    struct funcmon_geometry geo;
    enum funcmon_invalid got = funcmon_validate_segment(buf, len, &geo);
    if (got != want)
        fprintf(stderr, "expected '%s', got '%s'\n", funcmon_invalid_reason(want), funcmon_invalid_reason(got));
    CHECK_EQ(got, want);
    CHECK(strlen(funcmon_invalid_reason(got)) > 0);
}

static void
validator_cases(void)
{
    unsigned char *b = make_segment();
    size_t n = seg_size();

    expect(b, n, FUNCMON_VALID);
    expect(b, sizeof(struct funcmon_shm_header) - 1, FUNCMON_INVALID_TOO_SMALL);
    expect(NULL, n, FUNCMON_INVALID_TOO_SMALL);
    /* A mapping shorter than the segment claims. */
    expect(b, n - 64, FUNCMON_INVALID_SEGMENT_SIZE);

#define CASE(mutation, reason)                                                                                                     \
    do {                                                                                                                           \
        unsigned char *m = make_segment();                                                                                         \
        mutation;                                                                                                                  \
        expect(m, n, reason);                                                                                                      \
        free(m);                                                                                                                   \
    } while (0)

    CASE(hdr(m)->magic = 0, FUNCMON_INVALID_NOT_READY);
    CASE(hdr(m)->magic = 0x1234, FUNCMON_INVALID_MAGIC);
    CASE(hdr(m)->magic = __builtin_bswap64(FUNCMON_SHM_MAGIC), FUNCMON_INVALID_BYTE_ORDER);
    CASE(hdr(m)->major = FUNCMON_SHM_MAJOR + 1, FUNCMON_INVALID_MAJOR);
    CASE(hdr(m)->minor = FUNCMON_SHM_MINOR + 7, FUNCMON_VALID); /* a newer minor only appends */
    CASE(hdr(m)->header_size = 100, FUNCMON_INVALID_HEADER_SIZE);
    CASE(hdr(m)->header_size = 0xffffffffu, FUNCMON_INVALID_HEADER_SIZE);
    CASE(hdr(m)->record_size = 32, FUNCMON_INVALID_RECORD_SIZE);
    CASE(hdr(m)->slot_size = 0, FUNCMON_INVALID_RECORD_SIZE);
    CASE(hdr(m)->chunk_size = 128, FUNCMON_INVALID_RECORD_SIZE);
    CASE(hdr(m)->chunk_records = 100, FUNCMON_INVALID_GEOMETRY); /* not a power of two */
    CASE(hdr(m)->chunk_records = 0, FUNCMON_INVALID_GEOMETRY);
    CASE(hdr(m)->chunk_records = 1u << 31, FUNCMON_INVALID_GEOMETRY);
    CASE(hdr(m)->pool_chunks = 1, FUNCMON_INVALID_GEOMETRY);
    CASE(hdr(m)->pool_chunks = 0xffffffffu, FUNCMON_INVALID_GEOMETRY);
    CASE(hdr(m)->pool_chunks = CHUNKS * 2, FUNCMON_INVALID_SEGMENT_SIZE); /* the pool would not fit */
    CASE(hdr(m)->max_threads = 0xffffffffu, FUNCMON_INVALID_GEOMETRY);    /* huge counts */
    CASE(hdr(m)->max_sites = 0xffffffffu, FUNCMON_INVALID_GEOMETRY);
    CASE(hdr(m)->max_threads = THREADS * 2, FUNCMON_INVALID_SEGMENT_SIZE); /* slots would not fit */
    CASE(hdr(m)->segment_size = UINT64_MAX, FUNCMON_INVALID_SEGMENT_SIZE);
    CASE(hdr(m)->records_offset = UINT64_MAX - 63, FUNCMON_INVALID_OFFSET); /* past the end, and would wrap */
    CASE(hdr(m)->records_offset += 64, FUNCMON_INVALID_OFFSET);             /* last chunk past the end */
    CASE(hdr(m)->chunks_offset = hdr(m)->segment_size, FUNCMON_INVALID_OFFSET);
    CASE(hdr(m)->slots_offset += 8, FUNCMON_INVALID_OFFSET); /* misaligned */
    CASE(hdr(m)->sites_offset = 0, FUNCMON_INVALID_OFFSET);  /* inside the header */
    CASE(hdr(m)->slots_offset = hdr(m)->sites_offset + 256, FUNCMON_INVALID_OVERLAP);
    CASE(hdr(m)->records_offset = hdr(m)->slots_offset, FUNCMON_INVALID_OVERLAP);
    CASE(hdr(m)->chunks_offset = hdr(m)->sites_offset + 512, FUNCMON_INVALID_OVERLAP);
    CASE(hdr(m)->records_offset = hdr(m)->chunks_offset + 64, FUNCMON_INVALID_OVERLAP);
    CASE(hdr(m)->site_count = SITES + 1, FUNCMON_INVALID_COUNT);
    CASE(hdr(m)->site_count = 0xffffffffu, FUNCMON_INVALID_COUNT);
    CASE(memset(hdr(m)->service, 'x', sizeof(hdr(m)->service)), FUNCMON_INVALID_SERVICE); /* unterminated */
    CASE(hdr(m)->service[0] = '\0', FUNCMON_INVALID_SERVICE);
    CASE(hdr(m)->pid = 0, FUNCMON_INVALID_PID);
    CASE(hdr(m)->pid = -5, FUNCMON_INVALID_PID);
    CASE(hdr(m)->clock_source = 9, FUNCMON_INVALID_CLOCK);
    CASE(hdr(m)->tick_mult = 0, FUNCMON_INVALID_CLOCK);
    CASE(hdr(m)->tick_shift = 64, FUNCMON_INVALID_CLOCK);
#undef CASE
    free(b);
}

struct seen {
    uint32_t sites[64];
    uint64_t seqs[64];
    uint16_t flags[64];
    int n;
};

static void
on_record(void *arg, uint32_t ring, const struct funcmon_record *r)
{
    struct seen *s = arg;
    (void)ring;
    CHECK_LT(s->n, 64);
    s->sites[s->n] = r->site;
    s->seqs[s->n] = r->seq;
    s->flags[s->n] = r->flags;
    s->n++;
}

static struct funcmon_chunk *
chunk(unsigned char *b, uint32_t idx)
{
    return (struct funcmon_chunk *)(b + hdr(b)->chunks_offset) + idx;
}

/* Slot 0's record at position pos (make_segment's chain: chunk pos / CHUNK). */
static struct funcmon_record *
rec0(unsigned char *b, uint64_t pos)
{
    return (struct funcmon_record *)(b + hdr(b)->records_offset) + (pos / CHUNK) * CHUNK + pos % CHUNK;
}

static struct funcmon_thread_slot *
slot(unsigned char *b, int i)
{
    return (struct funcmon_thread_slot *)(b + hdr(b)->slots_offset) + i;
}

static void
put(unsigned char *b, uint64_t pos, uint32_t site, uint16_t flags, uint64_t start, uint64_t end)
{
    struct funcmon_record *r = rec0(b, pos);
    memset(r, 0, sizeof(*r));
    r->seq = pos;
    r->site = site;
    r->flags = flags;
    r->start = start;
    r->end = end;
}

static void
consumer_cases(void)
{
    struct funcmon_consumer c;
    struct seen s;
    enum funcmon_invalid why;

    /* Good and bad records side by side: only the good ones are delivered. */
    unsigned char *b = make_segment();
    put(b, 0, 2, 0, 10, 20);                             /* good */
    put(b, 1, 9, 0, 10, 20);                             /* site not published */
    put(b, 2, 0xffffffffu, 0, 10, 20);                   /* site far out of range */
    put(b, 3, 2, 0x8000 | FUNCMON_RECORD_ERROR, 10, 20); /* a flag of a newer minor: ignored */
    put(b, 4, 2, 0, 30, 20);                             /* ends before it starts */
    put(b, 5, 2, FUNCMON_RECORD_ERROR, 10, 20);          /* good */
    put(b, 6, 2, 0, 10, 20);
    rec0(b, 6)->seq = 99; /* stale or torn: position mismatch */
    slot(b, 0)->head = 7;
    slot(b, 0)->state = FUNCMON_SLOT_ACTIVE; /* a live thread's: read on every full pass */
    /* Ring 1: producer index far ahead of the tail. */
    slot(b, 1)->head = 1000000;
    CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
    CHECK_EQ(c.bad_rings, 1); /* ring 1 is refused at attach */
    memset(&s, 0, sizeof(s));
    CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 3);
    CHECK_EQ(s.n, 3);
    CHECK_EQ(s.seqs[0], 0);
    CHECK_EQ(s.seqs[1], 3);
    CHECK_EQ(s.flags[1], FUNCMON_RECORD_ERROR);
    CHECK_EQ(s.seqs[2], 5);
    CHECK_EQ(c.bad_records, 4);
    CHECK_EQ(slot(b, 0)->tail, 7); /* everything consumed, bad ones included */
    /* A head moved backwards (or wrapped) later is a bad ring too, never a 2^64 loop; a
     * quiet slot is looked at on the next full pass (one in 16). */
    slot(b, 0)->head = 3;
    for (int pass = 0; pass < 16; pass++)
        CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 0);
    CHECK_EQ(c.bad_rings, 2);
    funcmon_consumer_close(&c);
    free(b);

    /* An unterminated or empty site name: the site is invalid, its records bad. */
    b = make_segment();
    struct funcmon_site_entry *sites = (struct funcmon_site_entry *)(b + hdr(b)->sites_offset);
    memset(sites[2].name, 'A', sizeof(sites[2].name));
    put(b, 0, 2, 0, 1, 2);
    slot(b, 0)->head = 1;
    CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
    CHECK_EQ(funcmon_consumer_site(&c, 2), NULL);
    memset(&s, 0, sizeof(s));
    CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 0);
    CHECK_EQ(c.bad_records, 1);
    funcmon_consumer_close(&c);
    free(b);

    /* A tail beyond head at attach (a lying previous reader): the ring is refused. */
    b = make_segment();
    slot(b, 0)->head = 5;
    slot(b, 0)->tail = 9;
    CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
    CHECK_EQ(c.bad_rings, 1);
    funcmon_consumer_close(&c);
    free(b);

    /* Retired and drained: recycled to FREE; retired with records left: kept. */
    b = make_segment();
    put(b, 0, 2, 0, 1, 2);
    slot(b, 0)->head = 1;
    slot(b, 0)->state = FUNCMON_SLOT_RETIRED;
    slot(b, 1)->state = FUNCMON_SLOT_RETIRED;
    CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
    memset(&s, 0, sizeof(s));
    CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 1);
    CHECK_EQ(slot(b, 0)->state, FUNCMON_SLOT_FREE);
    CHECK_EQ(slot(b, 1)->state, FUNCMON_SLOT_FREE);
    CHECK_EQ(c.recycled, 2);
    /* Slot 0's last chunk went back to the pool; no chunk reference is left behind. */
    CHECK_EQ(slot(b, 0)->first_chunk, 0);
    CHECK_EQ(slot(b, 0)->cur_chunk, 0);
    CHECK_EQ(slot(b, 0)->tail_chunk, 0);
    CHECK_EQ(FUNCMON_POOL_TOP(hdr(b)->pool_free), 1);
    CHECK_EQ(chunk(b, 0)->next_free, 5);
    CHECK_EQ(c.chunks_returned, 1);
    /* A calibration that keeps changing (odd sequence forever) is reported, not waited on. */
    struct funcmon_clock clk;
    hdr(b)->calib_seq = 1;
    CHECK_EQ(funcmon_consumer_clock(&c, &clk), -EAGAIN);
    hdr(b)->calib_seq = 2;
    CHECK_EQ(funcmon_consumer_clock(&c, &clk), 0);
    CHECK_EQ(funcmon_clock_since_ref_ns(&clk, 1000), 1000); /* monotonic: ticks are ns */
    funcmon_consumer_close(&c);

    /* Attach refuses what the validator refuses, with its reason. */
    hdr(b)->major = 99;
    CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), -EPROTO);
    CHECK_EQ(why, FUNCMON_INVALID_MAJOR);
    free(b);
}

/* Drains slot 0's chain as make_segment links it, after `mutate`; returns records delivered. */
static size_t
drain_chain(uint64_t head, void (*mutate)(unsigned char *), struct funcmon_consumer *c, unsigned char **out)
{
    enum funcmon_invalid why;
    struct seen s;
    unsigned char *b = make_segment();
    for (uint64_t p = 0; p < head; p++)
        put(b, p, 2, 0, p, p + 1);
    slot(b, 0)->head = head;
    if (mutate != NULL)
        mutate(b);
    CHECK_EQ(funcmon_consumer_attach(c, b, seg_size(), &why), 0);
    memset(&s, 0, sizeof(s));
    size_t n = 0, got;
    while ((got = funcmon_consumer_drain(c, on_record, &s, 16)) != 0) {
        n += got;
        s.n = 0;
    }
    *out = b;
    return n;
}

static void
other_slots_chunk(unsigned char *b)
{
    chunk(b, 1)->slot = 1;
}

static void
cycle(unsigned char *b)
{
    chunk(b, 1)->next = 1; /* back to chunk 0 */
}

static void
out_of_range(unsigned char *b)
{
    chunk(b, 0)->next = 1000;
}

static void
resume_mid_chain(unsigned char *b)
{
    slot(b, 0)->tail = 20;
    slot(b, 0)->tail_chunk = 2; /* chunk 1 holds 16..31 */
}

static void
resume_lie(unsigned char *b)
{
    slot(b, 0)->tail = 20;
    slot(b, 0)->tail_chunk = 4; /* chunk 3 holds 48..63, not 20 */
}

static void
left_recycling(unsigned char *b)
{
    slot(b, 1)->state = FUNCMON_SLOT_RECYCLING;
    slot(b, 1)->cur_chunk = 6;
    slot(b, 1)->first_chunk = 6;
}

/* Chains of chunks: read in order across chunks, finished chunks given back; links that
 * name another slot's chunk, loop back, or point outside the pool stop the slot's reading
 * after what was good; a reader resumes where the slot says one stopped, unless that is a
 * lie; a recycling left half done by an earlier reader is finished. */
static void
chain_cases(void)
{
    struct funcmon_consumer c;
    unsigned char *b;

    CHECK_EQ(drain_chain(40, NULL, &c, &b), 40);
    CHECK_EQ(c.bad_records, 0);
    CHECK_EQ(c.bad_rings, 0);
    CHECK_EQ(c.chunks_returned, 2); /* chunks 0 and 1; chunk 2 holds the tail */
    CHECK_EQ(slot(b, 0)->tail, 40);
    CHECK_EQ(slot(b, 0)->tail_chunk, 3);
    CHECK_EQ(FUNCMON_POOL_TOP(hdr(b)->pool_free), 2);
    CHECK_EQ(chunk(b, 1)->next_free, 1);
    CHECK_EQ(chunk(b, 0)->next_free, 5);
    funcmon_consumer_close(&c);
    free(b);

    CHECK_EQ(drain_chain(40, other_slots_chunk, &c, &b), 16);
    CHECK_EQ(c.bad_rings, 1);
    CHECK_EQ(c.chunks_returned, 0);
    funcmon_consumer_close(&c);
    free(b);

    CHECK_EQ(drain_chain(40, cycle, &c, &b), 32);
    CHECK_EQ(c.bad_rings, 1);
    CHECK_EQ(c.chunks_returned, 1);
    funcmon_consumer_close(&c);
    free(b);

    CHECK_EQ(drain_chain(40, out_of_range, &c, &b), 16);
    CHECK_EQ(c.bad_rings, 1);
    funcmon_consumer_close(&c);
    free(b);

    CHECK_EQ(drain_chain(40, resume_mid_chain, &c, &b), 20);
    CHECK_EQ(c.bad_rings, 0);
    CHECK_EQ(c.chunks_returned, 1); /* chunk 1; chunk 0 was an earlier reader's to give back */
    funcmon_consumer_close(&c);
    free(b);

    /* A reader stopped part way (after a chunk was given back) and a new one resumes
     * where it left the slot: nothing read twice, nothing skipped. */
    {
        enum funcmon_invalid why;
        struct seen s;
        b = make_segment();
        for (uint64_t p = 0; p < 40; p++)
            put(b, p, 2, 0, p, p + 1);
        slot(b, 0)->head = 40;
        CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
        memset(&s, 0, sizeof(s));
        CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, 20), 20);
        CHECK_EQ(c.chunks_returned, 1);
        funcmon_consumer_close(&c);
        CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
        memset(&s, 0, sizeof(s));
        CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 20);
        CHECK_EQ(s.seqs[0], 20);
        CHECK_EQ(s.seqs[19], 39);
        CHECK_EQ(c.bad_rings, 0);
        funcmon_consumer_close(&c);
        free(b);
    }

    /* A quiet slot (nothing for four passes) is read on full passes only, or on the pass
     * after funcmon_consumer_read_all_next, as for a client that ended. */
    {
        enum funcmon_invalid why;
        struct seen s;
        b = make_segment();
        put(b, 0, 2, 0, 0, 1);
        slot(b, 0)->head = 1;
        slot(b, 0)->state = FUNCMON_SLOT_ACTIVE;
        CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
        memset(&s, 0, sizeof(s));
        CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 1);
        for (int pass = 0; pass < 5; pass++)
            CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 0);
        put(b, 1, 2, 0, 1, 2);
        slot(b, 0)->head = 2;
        CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 0); /* quiet: not looked at */
        funcmon_consumer_read_all_next(&c);
        CHECK_EQ(funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX), 1);
        funcmon_consumer_close(&c);
        free(b);
    }

    CHECK_EQ(drain_chain(40, resume_lie, &c, &b), 0);
    CHECK_EQ(c.bad_rings, 1);
    funcmon_consumer_close(&c);
    free(b);

    CHECK_EQ(drain_chain(0, left_recycling, &c, &b), 0);
    CHECK_EQ(slot(b, 1)->state, FUNCMON_SLOT_FREE);
    CHECK_EQ(slot(b, 1)->cur_chunk, 0);
    CHECK_EQ(slot(b, 1)->first_chunk, 0);
    funcmon_consumer_close(&c);
    free(b);
}

/* A client that shrinks its segment file under the reader's mapping: no SIGBUS kills the
 * reader; the mapping reads as zeros and the consumer reports the fault. */
static void
truncated_under_us(void)
{
    char name[64];
    struct funcmon_consumer c;
    enum funcmon_invalid why;
    struct seen s;
    snprintf(name, sizeof(name), "/fmtest-trunc-%d", (int)getpid());
    unsigned char *b = make_segment();
    put(b, 0, 2, 0, 1, 2);
    slot(b, 0)->head = 1;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK_GE(fd, 0);
    CHECK_EQ(write(fd, b, seg_size()), (ssize_t)seg_size());
    free(b);
    CHECK_EQ(funcmon_consumer_open(&c, name, &why), 0);
    CHECK_EQ(funcmon_consumer_faulted(&c), 0);
    CHECK_EQ(ftruncate(fd, 4096), 0); /* rings and slots are gone */
    memset(&s, 0, sizeof(s));
    funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX);
    CHECK_EQ(funcmon_consumer_faulted(&c), 1);
    CHECK_EQ(s.n, 0);
    funcmon_consumer_close(&c);
    close(fd);
    shm_unlink(name);
}

/* Several readers at once: each mapping stays guarded when others are guarded after it (a
 * later attach once unset the guard of every earlier one), whichever shrinks first. */
static void
truncated_among_many(void)
{
    enum { N = 3 };
    char name[N][64];
    int fd[N];
    struct funcmon_consumer c[N];
    enum funcmon_invalid why;
    struct seen s;
    unsigned char *b = make_segment();
    put(b, 0, 2, 0, 1, 2);
    slot(b, 0)->head = 1;
    for (int i = 0; i < N; i++) {
        snprintf(name[i], sizeof(name[i]), "/fmtest-many-%d-%d", (int)getpid(), i);
        fd[i] = shm_open(name[i], O_RDWR | O_CREAT | O_EXCL, 0600);
        CHECK_GE(fd[i], 0);
        CHECK_EQ(write(fd[i], b, seg_size()), (ssize_t)seg_size());
        CHECK_EQ(funcmon_consumer_open(&c[i], name[i], &why), 0);
    }
    free(b);
    for (int i = 0; i < N; i++) { /* the oldest first */
        CHECK_EQ(ftruncate(fd[i], 4096), 0);
        memset(&s, 0, sizeof(s));
        funcmon_consumer_drain(&c[i], on_record, &s, SIZE_MAX);
        CHECK_EQ(funcmon_consumer_faulted(&c[i]), 1);
        CHECK_EQ(s.n, 0);
        for (int k = i + 1; k < N; k++)
            CHECK_EQ(funcmon_consumer_faulted(&c[k]), 0);
    }
    for (int i = 0; i < N; i++) {
        funcmon_consumer_close(&c[i]);
        close(fd[i]);
        shm_unlink(name[i]);
    }
}

/* A file that shrinks between the reader's fstat and its first read: the header itself is
 * read under the guard, and the segment looks not ready instead of killing the reader. */
static void
shrunk_before_attach(void)
{
    char name[64];
    struct funcmon_consumer c;
    enum funcmon_invalid why;
    snprintf(name, sizeof(name), "/fmtest-shrunk-%d", (int)getpid());
    unsigned char *b = make_segment();
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK_GE(fd, 0);
    CHECK_EQ(write(fd, b, seg_size()), (ssize_t)seg_size());
    free(b);
    void *map = mmap(NULL, seg_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(map != MAP_FAILED);
    CHECK_EQ(ftruncate(fd, 0), 0);
    CHECK_EQ(funcmon_consumer_attach(&c, map, seg_size(), &why), -EPROTO);
    CHECK_EQ(why, FUNCMON_INVALID_NOT_READY);
    munmap(map, seg_size());
    close(fd);
    shm_unlink(name);
}

/* No guard entry free: nothing is read or written (the client keeps its segment); the same
 * segment attaches once an entry is given back. */
static void
guard_full(void)
{
    struct funcmon_consumer c1, c2;
    enum funcmon_invalid why;
    unsigned char *b1 = make_segment(), *b2 = make_segment();
    unsigned before = funcmon_consumer_guard_limit(1);
    CHECK_EQ(funcmon_consumer_guard_room(), 1);
    CHECK_EQ(funcmon_consumer_attach(&c1, b1, seg_size(), &why), 0);
    CHECK_EQ(funcmon_consumer_guard_room(), 0);
    CHECK_EQ(funcmon_consumer_attach(&c2, b2, seg_size(), &why), -EBUSY);
    CHECK_EQ(hdr(b2)->consumer_pid, 0);
    funcmon_consumer_close(&c1);
    CHECK_EQ(funcmon_consumer_guard_room(), 1);
    CHECK_EQ(funcmon_consumer_attach(&c2, b2, seg_size(), &why), 0);
    CHECK_EQ(hdr(b2)->consumer_pid, getpid());
    funcmon_consumer_close(&c2);
    funcmon_consumer_guard_limit(before);
    free(b1);
    free(b2);
}

/* Drop counters: believed while they grow at most one per nanosecond; a counter that
 * falls or jumps further marks its ring bad and adds no more than the bound. */
static void
drops_bounded(void)
{
    struct funcmon_consumer c;
    enum funcmon_invalid why;
    struct seen s;
    unsigned char *b = make_segment(); /* started at boot: the first read allows the uptime */
    slot(b, 0)->dropped = 1000;
    slot(b, 0)->state = FUNCMON_SLOT_ACTIVE; /* a live thread's: its counter is read on */
    slot(b, 1)->dropped = UINT64_MAX - 3;
    CHECK_EQ(funcmon_consumer_attach(&c, b, seg_size(), &why), 0);
    memset(&s, 0, sizeof(s));
    funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX);
    uint64_t up = harness_clock_ns(CLOCK_BOOTTIME);
    CHECK_EQ(c.bad_rings, 1);
    CHECK_GT(funcmon_consumer_dropped(&c), 1000);
    CHECK_LE(funcmon_consumer_dropped(&c), 1000 + up);
    uint64_t believed = funcmon_consumer_dropped(&c);
    slot(b, 0)->dropped = 900; /* falls */
    for (int i = 0; i < 16; i++)
        funcmon_consumer_drain(&c, on_record, &s, SIZE_MAX);
    CHECK_EQ(c.bad_rings, 2);
    CHECK_EQ(funcmon_consumer_dropped(&c), believed);
    funcmon_consumer_close(&c);
    free(b);
}

/* A FIFO under a segment's name is refused without being opened. */
static void
fifo_unopened(void)
{
    char name[64], path[96], buf[512];
    struct funcmon_consumer c;
    enum funcmon_invalid why;
    snprintf(name, sizeof(name), "/fmtest-fifo-%d", (int)getpid());
    snprintf(path, sizeof(path), "/dev/shm%s", name);
    CHECK_EQ(mkfifo(path, 0600), 0);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    CHECK_GE(in, 0);
    CHECK_GE(inotify_add_watch(in, path, IN_OPEN), 0);
    CHECK_EQ(funcmon_consumer_open(&c, name, &why), -EINVAL);
    CHECK_EQ(read(in, buf, sizeof(buf)), -1); /* no event: never opened */
    close(in);
    unlink(path);
}

int
main(void)
{
    validator_cases();
    consumer_cases();
    chain_cases();
    truncated_under_us();
    truncated_among_many();
    shrunk_before_attach();
    guard_full();
    drops_bounded();
    fifo_unopened();
    printf("test_validate: ok\n");
    return 0;
}
