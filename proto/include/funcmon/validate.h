/*
 * funcmon/validate.h - accept or reject a mapped segment before anything reads it.
 *
 * The sidecar maps segments written by other processes, which may be buggy, from another
 * version, half-created, or hostile. This validator is the gate: given the bytes of a
 * mapping and their count, it checks the header's identity and geometry and returns the
 * geometry as a private copy, so the reader never re-reads sizes or offsets from memory the
 * writer can still change. It reads only the first FUNCMON_HEADER_SIZE bytes (and only if
 * the mapping is at least that long), so it never reads outside the mapping whatever the
 * bytes are. What it cannot check once and for all (indices, counts and names that change
 * while the client runs) the consumer checks at every use.
 */
#ifndef FUNCMON_VALIDATE_H
#define FUNCMON_VALIDATE_H

#include <string.h>

#include "funcmon/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

enum funcmon_invalid {
    FUNCMON_VALID = 0,
    FUNCMON_INVALID_TOO_SMALL,    /* the mapping is shorter than a header */
    FUNCMON_INVALID_NOT_READY,    /* magic still 0: the client is creating it, look again later */
    FUNCMON_INVALID_BYTE_ORDER,   /* written by a machine of the other byte order */
    FUNCMON_INVALID_MAGIC,        /* not a funcmon segment */
    FUNCMON_INVALID_MAJOR,        /* an incompatible layout version */
    FUNCMON_INVALID_HEADER_SIZE,  /* header_size below this version's, or past the mapping */
    FUNCMON_INVALID_RECORD_SIZE,  /* record, site, slot or chunk size is not this version's */
    FUNCMON_INVALID_GEOMETRY,     /* chunk_records, pool_chunks, max_threads or max_sites out of range */
    FUNCMON_INVALID_SEGMENT_SIZE, /* segment_size disagrees with the mapping or the geometry */
    FUNCMON_INVALID_OFFSET,       /* a region is misaligned, inside the header or past the end */
    FUNCMON_INVALID_OVERLAP,      /* two regions overlap */
    FUNCMON_INVALID_COUNT,        /* site_count larger than the table */
    FUNCMON_INVALID_SERVICE,      /* service name not NUL-terminated, or empty */
    FUNCMON_INVALID_PID,          /* pid not positive */
    FUNCMON_INVALID_CLOCK,        /* unknown clock source or a zero multiplier */
    FUNCMON_INVALID__COUNT
};

/* A human-readable reason for a validation result. */
static inline const char *
funcmon_invalid_reason(enum funcmon_invalid why)
{
    static const char *const reasons[FUNCMON_INVALID__COUNT] = {
        "valid",
        "segment smaller than a header",
        "segment not initialised yet",
        "segment written with the other byte order",
        "bad magic: not a funcmon segment",
        "incompatible major version",
        "bad header size",
        "record, site, slot or chunk size differs from this version",
        "chunk records, pool chunks, thread or site count out of range",
        "segment size disagrees with the mapping or the geometry",
        "region offset misaligned, inside the header or past the end",
        "regions overlap",
        "site count larger than the site table",
        "service name unterminated or empty",
        "pid not positive",
        "unknown clock source",
    };
    if ((unsigned)why >= FUNCMON_INVALID__COUNT)
        return "unknown reason";
    return reasons[why];
}

/* The geometry of a validated segment, copied out of it. */
struct funcmon_geometry {
    uint64_t segment_size;
    uint64_t sites_offset;
    uint64_t slots_offset;
    uint64_t chunks_offset;
    uint64_t records_offset;
    uint64_t chunk_bytes; /* chunk_records * record_size */
    uint32_t chunk_records;
    uint32_t pool_chunks;
    uint32_t max_threads;
    uint32_t max_sites;
    uint16_t major;
    uint16_t minor;
    int32_t pid;
    uint64_t proc_start_time;
    char service[FUNCMON_SERVICE_MAX + 1];
};

static inline int
funcmon__region_ok(uint64_t off, uint64_t len, uint64_t header, uint64_t size)
{
    return off % FUNCMON_CACHE_LINE == 0 && off >= header && off <= size && len <= size - off;
}

static inline int
funcmon__regions_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen != 0 && blen != 0 && a < b + blen && b < a + alen;
}

/*
 * Validates the segment of `len` bytes at `base` (any alignment). On FUNCMON_VALID, *geo
 * holds its geometry; on FUNCMON_INVALID_MAJOR, geo->major and geo->minor hold the
 * segment's version (to say which it is); otherwise *geo is unspecified. Reads at most FUNCMON_HEADER_SIZE
 * bytes, through a private copy, so the verdict cannot be changed halfway by a writer.
 */
static inline enum funcmon_invalid
funcmon_validate_segment(const void *base, size_t len, struct funcmon_geometry *geo)
{
    struct funcmon_shm_header h;
    uint64_t sites_len, slots_len, chunks_len, records_len;

    if (base == NULL || len < sizeof(h))
        return FUNCMON_INVALID_TOO_SMALL;
    memcpy(&h, base, sizeof(h));
    if (h.magic == 0)
        return FUNCMON_INVALID_NOT_READY;
    if (h.magic == __builtin_bswap64(FUNCMON_SHM_MAGIC))
        return FUNCMON_INVALID_BYTE_ORDER;
    if (h.magic != FUNCMON_SHM_MAGIC)
        return FUNCMON_INVALID_MAGIC;
    if (h.major != FUNCMON_SHM_MAJOR) {
        if (geo != NULL) {
            geo->major = h.major;
            geo->minor = h.minor;
        }
        return FUNCMON_INVALID_MAJOR;
    }
    if (h.header_size < sizeof(h) || h.header_size > len)
        return FUNCMON_INVALID_HEADER_SIZE;
    if (h.record_size != sizeof(struct funcmon_record) || h.site_size != sizeof(struct funcmon_site_entry) ||
        h.slot_size != sizeof(struct funcmon_thread_slot) || h.chunk_size != sizeof(struct funcmon_chunk))
        return FUNCMON_INVALID_RECORD_SIZE;
    if (h.chunk_records < FUNCMON_CHUNK_RECORDS_MIN || h.chunk_records > FUNCMON_CHUNK_RECORDS_MAX ||
        (h.chunk_records & (h.chunk_records - 1)) != 0 || h.pool_chunks < FUNCMON_POOL_CHUNKS_MIN ||
        h.pool_chunks > FUNCMON_POOL_CHUNKS_MAX || h.max_threads < FUNCMON_MAX_THREADS_MIN ||
        h.max_threads > FUNCMON_MAX_THREADS_MAX || h.max_sites < FUNCMON_MAX_SITES_MIN || h.max_sites > FUNCMON_MAX_SITES_MAX)
        return FUNCMON_INVALID_GEOMETRY;
    /* With the geometry bounded above, none of these products can overflow 64 bits. */
    sites_len = (uint64_t)h.max_sites * h.site_size;
    slots_len = (uint64_t)h.max_threads * h.slot_size;
    chunks_len = (uint64_t)h.pool_chunks * h.chunk_size;
    records_len = (uint64_t)h.pool_chunks * h.chunk_records * h.record_size;
    if (h.segment_size > len || h.segment_size > FUNCMON_SEGMENT_SIZE_MAX ||
        h.segment_size < h.header_size + sites_len + slots_len + chunks_len + records_len)
        return FUNCMON_INVALID_SEGMENT_SIZE;
    if (!funcmon__region_ok(h.sites_offset, sites_len, h.header_size, h.segment_size) ||
        !funcmon__region_ok(h.slots_offset, slots_len, h.header_size, h.segment_size) ||
        !funcmon__region_ok(h.chunks_offset, chunks_len, h.header_size, h.segment_size) ||
        !funcmon__region_ok(h.records_offset, records_len, h.header_size, h.segment_size))
        return FUNCMON_INVALID_OFFSET;
    {
        const uint64_t off[4] = {h.sites_offset, h.slots_offset, h.chunks_offset, h.records_offset};
        const uint64_t rlen[4] = {sites_len, slots_len, chunks_len, records_len};
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++)
                if (funcmon__regions_overlap(off[a], rlen[a], off[b], rlen[b]))
                    return FUNCMON_INVALID_OVERLAP;
    }
    if (h.site_count > h.max_sites)
        return FUNCMON_INVALID_COUNT;
    if (memchr(h.service, '\0', sizeof(h.service)) == NULL || h.service[0] == '\0')
        return FUNCMON_INVALID_SERVICE;
    if (h.pid <= 0)
        return FUNCMON_INVALID_PID;
    if ((h.clock_source != FUNCMON_CLOCK_TSC && h.clock_source != FUNCMON_CLOCK_MONOTONIC) || h.tick_mult == 0 || h.tick_shift > 63)
        return FUNCMON_INVALID_CLOCK;

    if (geo != NULL) {
        geo->segment_size = h.segment_size;
        geo->sites_offset = h.sites_offset;
        geo->slots_offset = h.slots_offset;
        geo->chunks_offset = h.chunks_offset;
        geo->records_offset = h.records_offset;
        geo->chunk_bytes = (uint64_t)h.chunk_records * h.record_size;
        geo->chunk_records = h.chunk_records;
        geo->pool_chunks = h.pool_chunks;
        geo->max_threads = h.max_threads;
        geo->max_sites = h.max_sites;
        geo->major = h.major;
        geo->minor = h.minor;
        geo->pid = h.pid;
        geo->proc_start_time = h.proc_start_time;
        memcpy(geo->service, h.service, sizeof(geo->service));
    }
    return FUNCMON_VALID;
}

#ifdef __cplusplus
}
#endif

#endif
