/*
 * pprof.c - pprof profiles: a protobuf encoder for perftools.profiles.Profile, and CPU
 * profiles of a client process by perf_event_open sampling (see pprof.h).
 *
 * The endpoints must answer in the format `go tool pprof` reads, and funcmond links no
 * protobuf library for one message type, so the encoder is written here from the wire
 * format: varints, length-delimited fields, packed repeated fields. The builder interns
 * every string, function, location, mapping and stack in small open-addressing tables, so
 * the output holds each once and identical stacks become one sample.
 *
 * The CPU profile opens one software cpu-clock sampling event per thread of the target
 * (the kernel walks the user stack by frame pointers), reads each event's mmap'd ring
 * every 100 ms or when it is half full, and counts distinct raw stacks. Only at the end
 * are addresses symbolised: /proc/<pid>/maps gives the file and offset behind each address,
 * the file's PT_LOAD headers turn the offset into a link-time address, and its symbol
 * table names it. The target's ELF files are untrusted input (the process may be hostile
 * or the file may change under us): every offset and size is checked against the file
 * size before it is used, and every count is bounded before it drives a loop.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "clock.h"
#include "pprof.h"

#define STRING_MAX 4096              /* longer names are cut: a hostile symbol table must not cost megabytes per frame */
#define MAX_DEPTH 512                /* frames kept per sample, leaf first */
#define MAX_RAW_IPS (16u << 20)      /* addresses kept over all distinct stacks (128 MiB) */
#define MAX_THREADS 8192             /* threads followed at once */
#define MAX_ELF_FILES 1024           /* distinct mapped files opened for symbols */
#define MAX_ELF_SECTIONS (1u << 20)  /* e_shnum (or its extension) above this is not believed */
#define MAX_ELF_READ (64ull << 20)   /* bytes of one symbol or string table we are willing to load */
#define RING_DATA_PAGES 8            /* per thread; halved down to 1 if the locked-memory limit refuses */
#define SCAN_INTERVAL_NS 100000000ll /* rescan /proc/<pid>/task and drain every ring */

/* ---- small helpers ---- */

/* Grows the array at *arrp (of `size`-byte items, capacity *cap) to hold at least `need`.
 * Returns 0, or -1 with the array unchanged if memory ran out. */
static int
grow_to(void *arrp, size_t *cap, size_t need, size_t size)
{
    void *items, *q;
    size_t n;

    if (need <= *cap)
        return 0;
    n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 4)
            return -1;
        n *= 2;
    }
    if (n > SIZE_MAX / size)
        return -1;
    memcpy(&items, arrp, sizeof(items));
    q = realloc(items, n * size);
    if (q == NULL)
        return -1;
    memcpy(arrp, &q, sizeof(q));
    *cap = n;
    return 0;
}

static uint32_t
hash_bytes(const void *data, size_t n)
{
    const unsigned char *d = data;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= d[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static int64_t
sat_add(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* ---- open-addressing index: maps a key to the position of the item that holds it ---- */

struct slot {
    uint32_t idx1; /* item index + 1, 0 for an empty slot */
    uint32_t hash;
};

struct table {
    struct slot *slots;
    size_t cap; /* power of two */
    size_t n;
};

typedef int (*eq_fn)(const void *ctx, uint32_t idx, const void *key);

/* Makes room for one more entry (load at most 3/4). Returns 0 or -1 if memory ran out. */
static int
table_reserve(struct table *t)
{
    size_t cap;
    struct slot *s;

    if ((t->n + 1) * 4 <= t->cap * 3)
        return 0;
    cap = t->cap ? t->cap * 2 : 64;
    if (cap > SIZE_MAX / sizeof(*s) || (s = calloc(cap, sizeof(*s))) == NULL)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].idx1 == 0)
            continue;
        size_t j = t->slots[i].hash & (cap - 1);
        while (s[j].idx1 != 0)
            j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

/* Returns the slot of the item equal to key, or the empty slot where it belongs. The table
 * must have room (table_reserve), so an empty slot always exists. */
static struct slot *
table_find(const struct table *t, uint32_t hash, eq_fn eq, const void *ctx, const void *key)
{
    size_t mask = t->cap - 1;

    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        struct slot *s = &t->slots[i];
        if (s->idx1 == 0 || (s->hash == hash && eq(ctx, s->idx1 - 1, key)))
            return s;
    }
}

/* ---- protobuf output ---- */

struct buf {
    unsigned char *p;
    size_t len, cap;
    int oom;
};

static void
buf_put(struct buf *b, const void *data, size_t n)
{
    if (n == 0 || b->oom)
        return;
    if (b->len > SIZE_MAX - n || grow_to(&b->p, &b->cap, b->len + n, 1) < 0) {
        b->oom = 1;
        return;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void
put_varint(struct buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;

    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    buf_put(b, tmp, n);
}

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void
put_key(struct buf *b, unsigned field, unsigned wire)
{
    put_varint(b, (uint64_t)field << 3 | wire);
}

/* A scalar field; zero is the proto3 default and is left out. int64 fields go through
 * here too: a negative value is its two's complement, ten bytes on the wire. */
static void
put_uint(struct buf *b, unsigned field, uint64_t v)
{
    if (v == 0)
        return;
    put_key(b, field, WIRE_VARINT);
    put_varint(b, v);
}

static void
put_bytes(struct buf *b, unsigned field, const void *data, size_t n)
{
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    buf_put(b, data, n);
}

/* A nested message or packed field, encoded beforehand into m. */
static void
put_sub(struct buf *b, unsigned field, struct buf *m)
{
    if (m->oom)
        b->oom = 1;
    put_bytes(b, field, m->p, m->len);
    m->len = 0;
}

/* ---- the profile builder ---- */

/* Field numbers of perftools.profiles (profile.proto). */
enum {
    PROFILE_SAMPLE_TYPE = 1,
    PROFILE_SAMPLE = 2,
    PROFILE_MAPPING = 3,
    PROFILE_LOCATION = 4,
    PROFILE_FUNCTION = 5,
    PROFILE_STRING_TABLE = 6,
    PROFILE_TIME_NANOS = 9,
    PROFILE_DURATION_NANOS = 10,
    PROFILE_PERIOD_TYPE = 11,
    PROFILE_PERIOD = 12,
    PROFILE_COMMENT = 13,
    VALUE_TYPE_TYPE = 1,
    VALUE_TYPE_UNIT = 2,
    SAMPLE_LOCATION_ID = 1,
    SAMPLE_VALUE = 2,
    MAPPING_ID = 1,
    MAPPING_MEMORY_START = 2,
    MAPPING_MEMORY_LIMIT = 3,
    MAPPING_FILE_OFFSET = 4,
    MAPPING_FILENAME = 5,
    MAPPING_HAS_FUNCTIONS = 7,
    LOCATION_ID = 1,
    LOCATION_MAPPING_ID = 2,
    LOCATION_ADDRESS = 3,
    LOCATION_LINE = 4,
    LINE_FUNCTION_ID = 1,
    FUNCTION_ID = 1,
    FUNCTION_NAME = 2,
    FUNCTION_SYSTEM_NAME = 3,
    FUNCTION_FILENAME = 4,
};

struct pp_string {
    size_t off, len; /* in chars */
};

/* Items compared with memcmp as keys: no implicit padding. */
struct pp_function {
    uint32_t name, system_name, filename; /* string indices */
};

struct pp_location {
    uint64_t address;
    uint32_t function_id, mapping_id;
};

struct pp_mapping {
    uint64_t start, limit, offset;
    uint32_t filename, pad;
};

struct pp_sample {
    size_t locs, vals; /* positions in locs[] and vals[] */
    size_t n_locs;
};

/* Fixed-size items, deduplicated; an item's id is its index + 1. */
struct rec_set {
    unsigned char *items;
    size_t n, cap, size;
    struct table index;
};

struct funcmond_pprof {
    int n_values;
    int failed; /* memory ran out at some point: finish reports -ENOMEM */
    int64_t period;
    uint32_t period_type, period_unit;
    uint32_t types[FUNCMOND_PPROF_MAX_VALUES], units[FUNCMOND_PPROF_MAX_VALUES];
    char *chars; /* string bytes, back to back */
    size_t n_chars, cap_chars;
    struct pp_string *strings; /* the string table; [0] is "" */
    size_t n_strings, cap_strings;
    struct table string_index;
    struct rec_set functions, locations, mappings;
    struct pp_sample *samples;
    size_t n_samples, cap_samples;
    struct table sample_index;
    uint64_t *locs; /* location ids of all samples */
    size_t n_locs, cap_locs;
    int64_t *vals; /* values of all samples, n_values each */
    size_t n_vals, cap_vals;
    uint32_t *comments; /* string indices */
    size_t n_comments, cap_comments;
};

struct str_key {
    const char *s;
    size_t len;
};

static int
str_eq(const void *ctx, uint32_t idx, const void *key)
{
    const struct funcmond_pprof *p = ctx;
    const struct str_key *k = key;
    const struct pp_string *e = &p->strings[idx];

    return e->len == k->len && memcmp(p->chars + e->off, k->s, k->len) == 0;
}

/* Index of s in the string table, added if new. Returns 0 ("") for NULL, and on failure
 * with p->failed set. */
static uint32_t
intern(struct funcmond_pprof *p, const char *s)
{
    struct str_key k;
    struct slot *slot;
    uint32_t h;

    if (s == NULL || p->failed)
        return 0;
    k.s = s;
    k.len = strnlen(s, STRING_MAX);
    h = hash_bytes(s, k.len);
    if (p->n_strings >= UINT32_MAX - 1 || table_reserve(&p->string_index) < 0 ||
        grow_to(&p->strings, &p->cap_strings, p->n_strings + 1, sizeof(*p->strings)) < 0 ||
        grow_to(&p->chars, &p->cap_chars, p->n_chars + k.len, 1) < 0) {
        p->failed = 1;
        return 0;
    }
    slot = table_find(&p->string_index, h, str_eq, p, &k);
    if (slot->idx1 != 0)
        return slot->idx1 - 1;
    if (k.len > 0)
        memcpy(p->chars + p->n_chars, s, k.len);
    p->strings[p->n_strings] = (struct pp_string){.off = p->n_chars, .len = k.len};
    p->n_chars += k.len;
    slot->idx1 = (uint32_t)++p->n_strings;
    slot->hash = h;
    p->string_index.n++;
    return slot->idx1 - 1;
}

static int
rec_eq(const void *ctx, uint32_t idx, const void *key)
{
    const struct rec_set *s = ctx;

    return memcmp(s->items + (size_t)idx * s->size, key, s->size) == 0;
}

/* Id (index + 1) of the item equal to key, added if new; 0 on failure with p->failed set. */
static uint32_t
rec_intern(struct funcmond_pprof *p, struct rec_set *s, const void *key)
{
    struct slot *slot;
    uint32_t h;

    if (p->failed)
        return 0;
    if (s->n >= UINT32_MAX - 1 || table_reserve(&s->index) < 0 || grow_to(&s->items, &s->cap, s->n + 1, s->size) < 0) {
        p->failed = 1;
        return 0;
    }
    h = hash_bytes(key, s->size);
    slot = table_find(&s->index, h, rec_eq, s, key);
    if (slot->idx1 != 0)
        return slot->idx1;
    memcpy(s->items + s->n * s->size, key, s->size);
    slot->idx1 = (uint32_t)++s->n;
    slot->hash = h;
    s->index.n++;
    return slot->idx1;
}

struct funcmond_pprof *
funcmond_pprof_new(const char *const *sample_types, const char *const *units, int n_values, const char *period_type,
                   const char *period_unit, int64_t period)
{
    struct funcmond_pprof *p;

    if (n_values < 1 || n_values > FUNCMOND_PPROF_MAX_VALUES || sample_types == NULL || units == NULL || period_type == NULL ||
        period_unit == NULL)
        return NULL;
    for (int i = 0; i < n_values; i++)
        if (sample_types[i] == NULL || units[i] == NULL)
            return NULL;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return NULL;
    p->n_values = n_values;
    p->period = period;
    p->functions.size = sizeof(struct pp_function);
    p->locations.size = sizeof(struct pp_location);
    p->mappings.size = sizeof(struct pp_mapping);
    intern(p, ""); /* index 0, as the format requires */
    for (int i = 0; i < n_values; i++) {
        p->types[i] = intern(p, sample_types[i]);
        p->units[i] = intern(p, units[i]);
    }
    p->period_type = intern(p, period_type);
    p->period_unit = intern(p, period_unit);
    if (p->failed) {
        funcmond_pprof_free(p);
        return NULL;
    }
    return p;
}

static void
rec_free(struct rec_set *s)
{
    free(s->items);
    free(s->index.slots);
}

void
funcmond_pprof_free(struct funcmond_pprof *p)
{
    if (p == NULL)
        return;
    free(p->chars);
    free(p->strings);
    free(p->string_index.slots);
    rec_free(&p->functions);
    rec_free(&p->locations);
    rec_free(&p->mappings);
    free(p->samples);
    free(p->sample_index.slots);
    free(p->locs);
    free(p->vals);
    free(p->comments);
    free(p);
}

uint32_t
funcmond_pprof_mapping(struct funcmond_pprof *p, uint64_t start, uint64_t limit, uint64_t offset, const char *filename)
{
    struct pp_mapping m;

    if (p == NULL)
        return 0;
    memset(&m, 0, sizeof(m));
    m.start = start;
    m.limit = limit;
    m.offset = offset;
    m.filename = intern(p, filename);
    return rec_intern(p, &p->mappings, &m);
}

/* Location id of one frame, or 0 on failure. */
static uint32_t
frame_location(struct funcmond_pprof *p, const char *name, const char *filename, uint64_t address, uint32_t mapping)
{
    struct pp_function f;
    struct pp_location l;

    f.name = f.system_name = intern(p, name);
    f.filename = intern(p, filename);
    l.function_id = rec_intern(p, &p->functions, &f);
    l.address = address;
    l.mapping_id = mapping <= p->mappings.n ? mapping : 0;
    return l.function_id ? rec_intern(p, &p->locations, &l) : 0;
}

struct stack_key {
    const uint64_t *ids;
    size_t n;
};

static int
sample_eq(const void *ctx, uint32_t idx, const void *key)
{
    const struct funcmond_pprof *p = ctx;
    const struct stack_key *k = key;
    const struct pp_sample *s = &p->samples[idx];

    return s->n_locs == k->n && (k->n == 0 || memcmp(p->locs + s->locs, k->ids, k->n * sizeof(*k->ids)) == 0);
}

/* The location ids p->locs[start .. n_locs) form a stack: add its values to the sample
 * with the same stack, or make them a new sample. */
static void
add_sample(struct funcmond_pprof *p, size_t start, const int64_t *values)
{
    struct stack_key k = {.ids = p->locs + start, .n = p->n_locs - start};
    uint32_t h = hash_bytes(k.ids, k.n * sizeof(*k.ids));
    struct slot *slot;

    if (p->n_samples >= UINT32_MAX - 1 || table_reserve(&p->sample_index) < 0 ||
        grow_to(&p->samples, &p->cap_samples, p->n_samples + 1, sizeof(*p->samples)) < 0 ||
        grow_to(&p->vals, &p->cap_vals, p->n_vals + (size_t)p->n_values, sizeof(*p->vals)) < 0) {
        p->failed = 1;
        return;
    }
    slot = table_find(&p->sample_index, h, sample_eq, p, &k);
    if (slot->idx1 != 0) {
        int64_t *v = p->vals + p->samples[slot->idx1 - 1].vals;
        for (int i = 0; i < p->n_values; i++)
            v[i] = sat_add(v[i], values[i]);
        p->n_locs = start; /* the stack is already stored */
        return;
    }
    p->samples[p->n_samples] = (struct pp_sample){.locs = start, .vals = p->n_vals, .n_locs = k.n};
    memcpy(p->vals + p->n_vals, values, (size_t)p->n_values * sizeof(*values));
    p->n_vals += (size_t)p->n_values;
    slot->idx1 = (uint32_t)++p->n_samples;
    slot->hash = h;
    p->sample_index.n++;
}

void
funcmond_pprof_add_frames(struct funcmond_pprof *p, const struct funcmond_pprof_frame *frames, int n_frames, const int64_t *values)
{
    size_t start;

    if (p == NULL || p->failed || n_frames < 0 || (n_frames > 0 && frames == NULL) || values == NULL)
        return;
    start = p->n_locs;
    if (grow_to(&p->locs, &p->cap_locs, start + (size_t)n_frames, sizeof(*p->locs)) < 0) {
        p->failed = 1;
        return;
    }
    for (int i = 0; i < n_frames; i++) {
        uint32_t id = frame_location(p, frames[i].name, frames[i].filename, frames[i].address, frames[i].mapping);
        if (id == 0) {
            p->n_locs = start;
            return;
        }
        p->locs[p->n_locs++] = id;
    }
    add_sample(p, start, values);
}

void
funcmond_pprof_add(struct funcmond_pprof *p, const char *const *frames, int n_frames, const int64_t *values)
{
    size_t start;

    if (p == NULL || p->failed || n_frames < 0 || (n_frames > 0 && frames == NULL) || values == NULL)
        return;
    start = p->n_locs;
    if (grow_to(&p->locs, &p->cap_locs, start + (size_t)n_frames, sizeof(*p->locs)) < 0) {
        p->failed = 1;
        return;
    }
    for (int i = 0; i < n_frames; i++) {
        uint32_t id = frame_location(p, frames[i], NULL, 0, 0);
        if (id == 0) {
            p->n_locs = start;
            return;
        }
        p->locs[p->n_locs++] = id;
    }
    add_sample(p, start, values);
}

void
funcmond_pprof_comment(struct funcmond_pprof *p, const char *text)
{
    uint32_t s;

    if (p == NULL || text == NULL || p->failed)
        return;
    s = intern(p, text);
    if (p->failed || grow_to(&p->comments, &p->cap_comments, p->n_comments + 1, sizeof(*p->comments)) < 0) {
        p->failed = 1;
        return;
    }
    p->comments[p->n_comments++] = s;
}

static void
encode(const struct funcmond_pprof *p, struct buf *out, int64_t time_ns, int64_t duration_ns)
{
    struct buf m = {0}, f = {0};

    for (int i = 0; i < p->n_values; i++) {
        put_uint(&m, VALUE_TYPE_TYPE, p->types[i]);
        put_uint(&m, VALUE_TYPE_UNIT, p->units[i]);
        put_sub(out, PROFILE_SAMPLE_TYPE, &m);
    }
    for (size_t i = 0; i < p->n_samples; i++) {
        const struct pp_sample *s = &p->samples[i];
        if (s->n_locs > 0) {
            for (size_t j = 0; j < s->n_locs; j++)
                put_varint(&f, p->locs[s->locs + j]);
            put_sub(&m, SAMPLE_LOCATION_ID, &f);
        }
        for (int j = 0; j < p->n_values; j++)
            put_varint(&f, (uint64_t)p->vals[s->vals + (size_t)j]);
        put_sub(&m, SAMPLE_VALUE, &f);
        put_sub(out, PROFILE_SAMPLE, &m);
    }
    for (size_t i = 0; i < p->mappings.n; i++) {
        const struct pp_mapping *mp = (const struct pp_mapping *)(p->mappings.items + i * sizeof(struct pp_mapping));
        put_uint(&m, MAPPING_ID, i + 1);
        put_uint(&m, MAPPING_MEMORY_START, mp->start);
        put_uint(&m, MAPPING_MEMORY_LIMIT, mp->limit);
        put_uint(&m, MAPPING_FILE_OFFSET, mp->offset);
        put_uint(&m, MAPPING_FILENAME, mp->filename);
        put_uint(&m, MAPPING_HAS_FUNCTIONS, 1);
        put_sub(out, PROFILE_MAPPING, &m);
    }
    for (size_t i = 0; i < p->locations.n; i++) {
        const struct pp_location *l = (const struct pp_location *)(p->locations.items + i * sizeof(struct pp_location));
        put_uint(&m, LOCATION_ID, i + 1);
        put_uint(&m, LOCATION_MAPPING_ID, l->mapping_id);
        put_uint(&m, LOCATION_ADDRESS, l->address);
        put_uint(&f, LINE_FUNCTION_ID, l->function_id);
        put_sub(&m, LOCATION_LINE, &f);
        put_sub(out, PROFILE_LOCATION, &m);
    }
    for (size_t i = 0; i < p->functions.n; i++) {
        const struct pp_function *fn = (const struct pp_function *)(p->functions.items + i * sizeof(struct pp_function));
        put_uint(&m, FUNCTION_ID, i + 1);
        put_uint(&m, FUNCTION_NAME, fn->name);
        put_uint(&m, FUNCTION_SYSTEM_NAME, fn->system_name);
        put_uint(&m, FUNCTION_FILENAME, fn->filename);
        put_sub(out, PROFILE_FUNCTION, &m);
    }
    for (size_t i = 0; i < p->n_strings; i++) /* every entry, "" included: the index is the position */
        put_bytes(out, PROFILE_STRING_TABLE, p->chars + p->strings[i].off, p->strings[i].len);
    put_uint(out, PROFILE_TIME_NANOS, (uint64_t)time_ns);
    put_uint(out, PROFILE_DURATION_NANOS, (uint64_t)duration_ns);
    put_uint(&m, VALUE_TYPE_TYPE, p->period_type);
    put_uint(&m, VALUE_TYPE_UNIT, p->period_unit);
    put_sub(out, PROFILE_PERIOD_TYPE, &m);
    put_uint(out, PROFILE_PERIOD, (uint64_t)p->period);
    for (size_t i = 0; i < p->n_comments; i++) {
        put_key(out, PROFILE_COMMENT, WIRE_VARINT); /* put_uint would drop index 0 */
        put_varint(out, p->comments[i]);
    }
    if (m.oom || f.oom)
        out->oom = 1;
    free(m.p);
    free(f.p);
}

/* gzip (deflate with a gzip wrapper: windowBits 15 + 16) of in into a malloc'd buffer. */
static int
gzip_buf(const unsigned char *in, size_t n, unsigned char **gz, size_t *gz_len)
{
    z_stream z;
    struct buf out = {0};
    int flush, rc;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)in;
    do {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        z.avail_in = chunk;
        n -= chunk;
        flush = n ? Z_NO_FLUSH : Z_FINISH;
        do {
            if (grow_to(&out.p, &out.cap, out.len + 65536, 1) < 0) {
                deflateEnd(&z);
                free(out.p);
                return -ENOMEM;
            }
            uInt room = out.cap - out.len > (1u << 30) ? (1u << 30) : (uInt)(out.cap - out.len);
            z.next_out = out.p + out.len;
            z.avail_out = room;
            rc = deflate(&z, flush);
            out.len += room - z.avail_out;
            if (rc == Z_STREAM_ERROR) {
                deflateEnd(&z);
                free(out.p);
                return -ENOMEM;
            }
        } while (z.avail_out == 0);
    } while (flush != Z_FINISH);
    deflateEnd(&z);
    *gz = out.p;
    *gz_len = out.len;
    return 0;
}

int
funcmond_pprof_finish(struct funcmond_pprof *p, int64_t time_ns, int64_t duration_ns, unsigned char **gz, size_t *gz_len)
{
    struct buf out = {0};
    int rc = -ENOMEM;

    if (gz != NULL)
        *gz = NULL;
    if (gz_len != NULL)
        *gz_len = 0;
    if (p == NULL || gz == NULL || gz_len == NULL) {
        funcmond_pprof_free(p);
        return -EINVAL;
    }
    if (!p->failed) {
        encode(p, &out, time_ns, duration_ns);
        if (!out.oom)
            rc = gzip_buf(out.p, out.len, gz, gz_len);
    }
    free(out.p);
    funcmond_pprof_free(p);
    return rc;
}

/* ---- ELF symbols of the target's mapped files ---- */

struct elf_seg {
    uint64_t vaddr, offset, filesz;
};

struct elf_sym {
    uint64_t value, size;
    size_t name; /* offset in strtab */
};

struct elf_file {
    char *path;           /* as /proc/<pid>/maps shows it */
    uint64_t ino;         /* inode from maps, checked against what we open; 0 for [vdso] */
    int fd;               /* -1 if it could not be opened */
    int loaded;           /* symbols read (or found missing) */
    struct elf_seg *segs; /* PT_LOAD headers with file contents */
    size_t n_segs, cap_segs;
    struct elf_sym *syms; /* FUNC symbols with a size, by value */
    size_t n_syms;
    char *strtab; /* NUL-terminated one byte past its end */
    size_t strtab_len;
};

struct map_ent {
    uint64_t start, end, pgoff;
    size_t file;      /* index in files, or SIZE_MAX for an anonymous or special mapping */
    char *name;       /* path or "[vdso]", "" for anonymous */
    uint32_t mapping; /* pprof mapping id, 0 for none */
};

struct symbolizer {
    pid_t pid;
    struct map_ent *maps; /* executable mappings by start address */
    size_t n_maps, cap_maps;
    struct elf_file *files;
    size_t n_files, cap_files;
};

/* Reads len bytes at off, all inside a file of fsize bytes. Returns 0 or -1. */
static int
read_at(int fd, uint64_t fsize, uint64_t off, uint64_t len, void *dst)
{
    size_t done = 0;

    if (off > fsize || len > fsize - off)
        return -1;
    while (done < len) {
        ssize_t r = pread(fd, (char *)dst + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1; /* error, or the file shrank since fstat */
        done += (size_t)r;
    }
    return 0;
}

static int
sym_cmp(const void *a, const void *b)
{
    const struct elf_sym *x = a, *y = b;

    return x->value < y->value ? -1 : x->value > y->value;
}

/* Loads the FUNC symbols of symbol table section sh (string table: its sh_link). Returns
 * the number kept, or -1 if the section does not check out. */
static long
load_symtab(struct elf_file *f, uint64_t fsize, const Elf64_Shdr *shdrs, size_t shnum, const Elf64_Shdr *sh)
{
    const Elf64_Shdr *st;
    Elf64_Sym chunk[256];
    size_t n, kept = 0, cap = 0;
    struct elf_sym *syms = NULL;
    char *strtab;

    if ((sh->sh_entsize != 0 && sh->sh_entsize != sizeof(Elf64_Sym)) || sh->sh_link >= shnum || sh->sh_size > MAX_ELF_READ ||
        sh->sh_offset > fsize || sh->sh_size > fsize - sh->sh_offset)
        return -1; /* so that sh_offset + i * sizeof(Elf64_Sym) below cannot wrap */
    st = &shdrs[sh->sh_link];
    if (st->sh_type != SHT_STRTAB || st->sh_size == 0 || st->sh_size > MAX_ELF_READ || st->sh_offset > fsize ||
        st->sh_size > fsize - st->sh_offset)
        return -1;
    n = sh->sh_size / sizeof(Elf64_Sym);
    if ((strtab = malloc(st->sh_size + 1)) == NULL)
        return -1;
    if (read_at(f->fd, fsize, st->sh_offset, st->sh_size, strtab) < 0) {
        free(strtab);
        return -1;
    }
    strtab[st->sh_size] = '\0';
    for (size_t i = 0; i < n;) {
        size_t k = n - i < 256 ? n - i : 256;
        if (read_at(f->fd, fsize, sh->sh_offset + i * sizeof(Elf64_Sym), k * sizeof(Elf64_Sym), chunk) < 0)
            goto fail;
        for (size_t j = 0; j < k; j++) {
            const Elf64_Sym *s = &chunk[j];
            if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF || s->st_size == 0 || s->st_name == 0 ||
                s->st_name >= st->sh_size)
                continue;
            if (grow_to(&syms, &cap, kept + 1, sizeof(*syms)) < 0)
                goto fail;
            syms[kept++] = (struct elf_sym){.value = s->st_value, .size = s->st_size, .name = s->st_name};
        }
        i += k;
    }
    if (kept == 0) {
        free(syms);
        free(strtab);
        return 0;
    }
    qsort(syms, kept, sizeof(*syms), sym_cmp);
    f->syms = syms;
    f->n_syms = kept;
    f->strtab = strtab;
    f->strtab_len = st->sh_size;
    return (long)kept;
fail:
    free(syms);
    free(strtab);
    return -1;
}

/* Reads the load segments and the symbols of f, once. Whatever fails leaves f without
 * symbols (its addresses get hex names), never half-loaded. */
static void
elf_load(struct elf_file *f)
{
    Elf64_Ehdr eh;
    Elf64_Shdr *shdrs = NULL;
    struct stat st;
    uint64_t fsize;
    size_t shnum;

    if (f->loaded)
        return;
    f->loaded = 1;
    if (f->fd < 0 || fstat(f->fd, &st) < 0 || st.st_size <= 0)
        return;
    fsize = (uint64_t)st.st_size;
    if (read_at(f->fd, fsize, 0, sizeof(eh), &eh) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN))
        return;

    /* Program headers: PT_LOAD gives file offset -> link-time address. */
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM || eh.e_phoff > fsize ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > fsize - eh.e_phoff)
        return;
    for (size_t i = 0; i < eh.e_phnum; i++) { /* < 65535, and all inside the file */
        Elf64_Phdr ph;
        if (read_at(f->fd, fsize, eh.e_phoff + i * sizeof(ph), sizeof(ph), &ph) < 0)
            break;
        if (ph.p_type != PT_LOAD || ph.p_filesz == 0)
            continue;
        if (grow_to(&f->segs, &f->cap_segs, f->n_segs + 1, sizeof(*f->segs)) < 0)
            break;
        f->segs[f->n_segs++] = (struct elf_seg){.vaddr = ph.p_vaddr, .offset = ph.p_offset, .filesz = ph.p_filesz};
    }
    if (f->n_segs == 0)
        return;

    /* Section headers: find .symtab, else .dynsym. */
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr))
        return;
    shnum = eh.e_shnum;
    if (shnum == 0) { /* extended numbering: the count is in section 0's sh_size */
        Elf64_Shdr sh0;
        if (read_at(f->fd, fsize, eh.e_shoff, sizeof(sh0), &sh0) < 0 || sh0.sh_size > MAX_ELF_SECTIONS)
            return;
        shnum = (size_t)sh0.sh_size;
    }
    if (shnum == 0 || shnum > fsize / sizeof(Elf64_Shdr) || (shdrs = calloc(shnum, sizeof(*shdrs))) == NULL)
        return;
    if (read_at(f->fd, fsize, eh.e_shoff, shnum * sizeof(*shdrs), shdrs) == 0) {
        /* Only the first table of each kind: a hostile file with a million of them must not
         * make us read each one. */
        const unsigned types[2] = {SHT_SYMTAB, SHT_DYNSYM};
        for (int t = 0; t < 2 && f->n_syms == 0; t++)
            for (size_t i = 0; i < shnum; i++)
                if (shdrs[i].sh_type == types[t]) {
                    load_symtab(f, fsize, shdrs, shnum, &shdrs[i]);
                    break;
                }
    }
    free(shdrs);
}

/* Name of the function at link-time address vaddr in f, or NULL. */
static const char *
elf_lookup(const struct elf_file *f, uint64_t vaddr)
{
    size_t lo = 0, hi = f->n_syms;

    while (lo < hi) { /* first symbol above vaddr */
        size_t mid = lo + (hi - lo) / 2;
        if (f->syms[mid].value <= vaddr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* The nearest symbols below may be aliases or nested; look at a few. */
    for (size_t i = lo, k = 0; i > 0 && k < 16; i--, k++) {
        const struct elf_sym *s = &f->syms[i - 1];
        if (vaddr - s->value < s->size)
            return f->strtab + s->name;
    }
    return NULL;
}

static void
elf_close(struct elf_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Opens a regular file without following anything the target could swap in: by O_PATH
 * first, checked for type and inode, then reopened for reading through /proc/self/fd. */
static int
open_checked(const char *path, uint64_t ino)
{
    char self[64];
    struct stat st;
    int pfd, fd = -1;

    if ((pfd = open(path, O_PATH | O_CLOEXEC)) < 0)
        return -1;
    if (fstat(pfd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_ino == ino) {
        snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
        fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    }
    close(pfd);
    return fd;
}

/* The target's [vdso] is the kernel's image, the same as ours when the kernel and the ABI
 * are (checked by size): its symbols come from a copy of our own, in a memfd so that the
 * file reader serves it, and no access to the target's memory is needed. */
static int
own_vdso_fd(uint64_t size)
{
    unsigned long long start = 0, end = 0;
    char *line = NULL;
    size_t cap = 0, done = 0;
    FILE *fp = fopen("/proc/self/maps", "re");
    int fd;

    if (fp == NULL)
        return -1;
    while (getline(&line, &cap, fp) > 0)
        if (strstr(line, "[vdso]") != NULL && sscanf(line, "%llx-%llx", &start, &end) == 2)
            break;
    free(line);
    fclose(fp);
    if (end <= start || end - start != size || (fd = memfd_create("funcmond-vdso", MFD_CLOEXEC)) < 0)
        return -1;
    while (done < size) {
        ssize_t w = write(fd, (const char *)(uintptr_t)start + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    return fd;
}

static void
elf_open(struct elf_file *f, pid_t pid, const struct map_ent *m)
{
    char path[PATH_MAX + 64];

    f->fd = -1;
    if (f->ino == 0) {
        if (strcmp(f->path, "[vdso]") == 0)
            f->fd = own_vdso_fd(m->end - m->start);
        return;
    }
    if (snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, f->path) < (int)sizeof(path))
        f->fd = open_checked(path, f->ino);
    if (f->fd < 0) { /* deleted, replaced, or outside our view: the mapping itself */
        snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, m->start, m->end);
        f->fd = open_checked(path, f->ino);
    }
}

static void
maps_free(struct symbolizer *sy)
{
    for (size_t i = 0; i < sy->n_maps; i++)
        free(sy->maps[i].name);
    free(sy->maps);
    sy->maps = NULL;
    sy->n_maps = sy->cap_maps = 0;
}

static void
symbolizer_free(struct symbolizer *sy)
{
    maps_free(sy);
    for (size_t i = 0; i < sy->n_files; i++) {
        elf_close(&sy->files[i]);
        free(sy->files[i].path);
        free(sy->files[i].segs);
        free(sy->files[i].syms);
        free(sy->files[i].strtab);
    }
    free(sy->files);
    sy->files = NULL;
    sy->n_files = sy->cap_files = 0;
}

/* Index of the file (path, ino) in sy->files, opened now if new; SIZE_MAX if none. */
static size_t
file_for(struct symbolizer *sy, const char *path, uint64_t ino, const struct map_ent *m)
{
    struct elf_file *f;

    for (size_t i = 0; i < sy->n_files; i++)
        if (sy->files[i].ino == ino && strcmp(sy->files[i].path, path) == 0)
            return i;
    if (sy->n_files >= MAX_ELF_FILES || grow_to(&sy->files, &sy->cap_files, sy->n_files + 1, sizeof(*sy->files)) < 0)
        return SIZE_MAX;
    f = &sy->files[sy->n_files];
    memset(f, 0, sizeof(*f));
    if ((f->path = strdup(path)) == NULL)
        return SIZE_MAX;
    f->ino = ino;
    elf_open(f, sy->pid, m);
    return sy->n_files++;
}

/* (Re)reads the executable mappings of the target and opens the files behind them, so
 * that they can be read after the target has exited. On failure the previous mappings
 * stay. Returns 0 or -errno. */
static int
read_maps(struct symbolizer *sy)
{
    char path[64], *line = NULL;
    size_t cap = 0;
    struct symbolizer next = *sy;
    FILE *fp;
    int rc = 0;

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)sy->pid);
    if ((fp = fopen(path, "re")) == NULL)
        return errno == ENOENT ? -ESRCH : -errno;
    next.maps = NULL;
    next.n_maps = next.cap_maps = 0;
    while (getline(&line, &cap, fp) > 0) {
        unsigned long long start, end, off, ino;
        unsigned maj, mnr;
        char perms[8];
        int pos = 0;
        struct map_ent m;

        if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj, &mnr, &ino, &pos) < 7 || pos == 0 ||
            strchr(perms, 'x') == NULL || end <= start)
            continue;
        line[strcspn(line, "\n")] = '\0';
        memset(&m, 0, sizeof(m));
        m.start = start;
        m.end = end;
        m.pgoff = off;
        m.file = SIZE_MAX;
        if ((m.name = strdup(line + pos)) == NULL || grow_to(&next.maps, &next.cap_maps, next.n_maps + 1, sizeof(m)) < 0) {
            free(m.name);
            rc = -ENOMEM;
            break;
        }
        if (m.name[0] == '/' && ino != 0)
            m.file = file_for(&next, m.name, ino, &m);
        else if (strcmp(m.name, "[vdso]") == 0)
            m.file = file_for(&next, m.name, 0, &m);
        next.maps[next.n_maps++] = m;
    }
    free(line);
    fclose(fp);
    sy->files = next.files; /* files opened so far are kept either way */
    sy->n_files = next.n_files;
    sy->cap_files = next.cap_files;
    if (rc < 0 || next.n_maps == 0) {
        maps_free(&next);
        return rc < 0 ? rc : -ESRCH;
    }
    maps_free(sy);
    sy->maps = next.maps; /* /proc/<pid>/maps is sorted by address */
    sy->n_maps = next.n_maps;
    sy->cap_maps = next.cap_maps;
    return 0;
}

static const struct map_ent *
map_for(const struct symbolizer *sy, uint64_t addr)
{
    size_t lo = 0, hi = sy->n_maps;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < sy->maps[mid].start)
            hi = mid;
        else if (addr >= sy->maps[mid].end)
            lo = mid + 1;
        else
            return &sy->maps[mid];
    }
    return NULL;
}

/* Fills frame for address addr (lookup: the address to name, a return address minus one
 * for callers so that a call at the very end of a function is not given to the next).
 * hex receives the "0x..." name when there is no symbol. */
static void
symbolize(struct symbolizer *sy, uint64_t addr, uint64_t lookup, struct funcmond_pprof_frame *frame, char *hex, size_t hexlen)
{
    const struct map_ent *m = map_for(sy, lookup);
    const char *name = NULL;

    frame->address = addr;
    frame->filename = m ? m->name : NULL;
    frame->mapping = m ? m->mapping : 0;
    if (m != NULL && m->file != SIZE_MAX) {
        struct elf_file *f = &sy->files[m->file];
        uint64_t off = lookup - m->start + m->pgoff;
        elf_load(f);
        for (size_t i = 0; i < f->n_segs; i++) {
            const struct elf_seg *s = &f->segs[i];
            if (off >= s->offset && off - s->offset < s->filesz) {
                name = elf_lookup(f, off - s->offset + s->vaddr);
                break;
            }
        }
    }
    if (name == NULL) {
        snprintf(hex, hexlen, "0x%" PRIx64, addr);
        name = hex;
    }
    frame->name = name;
}

/* ---- sampling ---- */

struct perf_thread {
    pid_t tid;
    int fd;     /* -1: could not be opened, or exited */
    int seen;   /* listed by the last scan of /proc/<pid>/task */
    void *base; /* metadata page, then the data pages */
    size_t data_size;
};

struct raw_stack {
    size_t ips; /* position in collector.ips */
    size_t n;
    uint64_t count;
};

struct collector {
    pid_t pid;
    int hz;
    size_t page;
    size_t data_pages;           /* for the next thread; lowered if the locked-memory limit refuses */
    struct perf_thread *threads; /* by tid */
    size_t n_threads, cap_threads;
    struct pollfd *pfds;
    size_t cap_pfds;
    uint64_t *ips; /* addresses of all distinct stacks, leaf first */
    size_t n_ips, cap_ips;
    struct raw_stack *stacks;
    size_t n_stacks, cap_stacks;
    struct table index;
    uint64_t samples, lost, dropped;
    uint64_t unfollowed; /* threads that could not be opened (other than exited ones) */
    int over_limit;      /* threads left out past MAX_THREADS or for memory */
    int follow_err;      /* the first of those errors, -errno */
    int open_err;        /* first failure to open a thread, -errno */
    const char *open_what;
    uint64_t *rec; /* one record, copied out of the ring */
    uint64_t stack[MAX_DEPTH];
};

static int
raw_eq(const void *ctx, uint32_t idx, const void *key)
{
    const struct collector *c = ctx;
    const struct stack_key *k = key;
    const struct raw_stack *s = &c->stacks[idx];

    return s->n == k->n && memcmp(c->ips + s->ips, k->ids, k->n * sizeof(*k->ids)) == 0;
}

static void
count_stack(struct collector *c, size_t n)
{
    struct stack_key k = {.ids = c->stack, .n = n};
    uint32_t h = hash_bytes(c->stack, n * sizeof(*c->stack));
    struct slot *slot;

    c->samples++;
    if (c->n_stacks >= UINT32_MAX - 1 || table_reserve(&c->index) < 0) {
        c->dropped++;
        return;
    }
    slot = table_find(&c->index, h, raw_eq, c, &k);
    if (slot->idx1 != 0) {
        c->stacks[slot->idx1 - 1].count++;
        return;
    }
    if (c->n_ips + n > MAX_RAW_IPS || grow_to(&c->ips, &c->cap_ips, c->n_ips + n, sizeof(*c->ips)) < 0 ||
        grow_to(&c->stacks, &c->cap_stacks, c->n_stacks + 1, sizeof(*c->stacks)) < 0) {
        c->dropped++;
        return;
    }
    memcpy(c->ips + c->n_ips, c->stack, n * sizeof(*c->stack));
    c->stacks[c->n_stacks] = (struct raw_stack){.ips = c->n_ips, .n = n, .count = 1};
    c->n_ips += n;
    slot->idx1 = (uint32_t)++c->n_stacks;
    slot->hash = h;
    c->index.n++;
}

/* One record of `size` bytes (header included, size >= header). Layout of a sample for
 * sample_type IP | TID | CALLCHAIN: u64 ip; u32 pid, tid; u64 nr; u64 ips[nr]. */
static void
on_record(struct collector *c, const unsigned char *rec, size_t size)
{
    struct perf_event_header h;
    uint64_t ip, nr, context = PERF_CONTEXT_USER;
    size_t n = 0;

    memcpy(&h, rec, sizeof(h));
    if (h.type == PERF_RECORD_LOST && size >= sizeof(h) + 16) {
        uint64_t lost;
        memcpy(&lost, rec + sizeof(h) + 8, sizeof(lost));
        c->lost += lost;
        return;
    }
    if (h.type != PERF_RECORD_SAMPLE || size < sizeof(h) + 24)
        return;
    memcpy(&ip, rec + sizeof(h), sizeof(ip));
    memcpy(&nr, rec + sizeof(h) + 16, sizeof(nr));
    if (nr > (size - sizeof(h) - 24) / sizeof(uint64_t))
        nr = (size - sizeof(h) - 24) / sizeof(uint64_t);
    for (uint64_t i = 0; i < nr && n < MAX_DEPTH; i++) {
        uint64_t v;
        memcpy(&v, rec + sizeof(h) + 24 + i * sizeof(v), sizeof(v));
        if (v >= PERF_CONTEXT_MAX) { /* a marker: the following entries are from that context */
            context = v;
            continue;
        }
        if (context == PERF_CONTEXT_USER)
            c->stack[n++] = v;
    }
    if (n == 0 && ip != 0)
        c->stack[n++] = ip;
    if (n > 0)
        count_stack(c, n);
}

/* Copies len bytes at ring position pos (free-running) out of the data area. */
static void
ring_copy(void *dst, const unsigned char *data, size_t size, uint64_t pos, size_t len)
{
    size_t off = (size_t)(pos & (size - 1));
    size_t first = size - off < len ? size - off : len;

    memcpy(dst, data + off, first);
    memcpy((unsigned char *)dst + first, data, len - first); /* the part that wrapped */
}

/* Reads every complete record in t's ring and gives the space back to the kernel. */
static void
drain(struct collector *c, struct perf_thread *t)
{
    struct perf_event_mmap_page *pg = t->base;
    const unsigned char *data = (const unsigned char *)t->base + c->page;
    /* Acquire: pairs with the kernel's release of data_head after it wrote the records
     * (perf_output_put_handle), so the record bytes we read below are complete. */
    uint64_t head = __atomic_load_n(&pg->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = pg->data_tail; /* only we write it */

    if (head - tail > t->data_size) /* cannot happen with a sane kernel; resynchronise */
        tail = head;
    while (head - tail >= sizeof(struct perf_event_header)) {
        struct perf_event_header h;
        ring_copy(&h, data, t->data_size, tail, sizeof(h));
        if (h.size < sizeof(h) || h.size > head - tail) {
            tail = head;
            break;
        }
        ring_copy(c->rec, data, t->data_size, tail, h.size);
        on_record(c, (const unsigned char *)c->rec, h.size);
        tail += h.size;
    }
    /* Release: our reads of the records happen before the kernel sees the space free
     * (pairs with the full barrier in perf_output_begin before it reads data_tail). */
    __atomic_store_n(&pg->data_tail, tail, __ATOMIC_RELEASE);
}

static void
thread_close(struct collector *c, struct perf_thread *t)
{
    if (t->fd < 0)
        return;
    ioctl(t->fd, PERF_EVENT_IOC_DISABLE, 0);
    drain(c, t);
    munmap(t->base, c->page + t->data_size);
    close(t->fd);
    t->fd = -1;
    t->base = NULL;
}

/* Opens and enables the sampling event of one thread. Returns 0 or -errno; c->open_what
 * names the step that failed. */
static int
thread_open(struct collector *c, struct perf_thread *t)
{
    struct perf_event_attr a;
    int fd, err;

    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_CPU_CLOCK;
    a.sample_freq = (uint64_t)c->hz;
    a.freq = 1; /* cpu-clock turns this into a fixed period of 1e9 / hz ns */
    a.sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_CALLCHAIN;
    a.disabled = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    a.exclude_callchain_kernel = 1;
    a.watermark = 1; /* wake poll() when the ring is half full (wakeup_watermark 0) */
    fd = (int)syscall(SYS_perf_event_open, &a, t->tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        c->open_what = "perf_event_open";
        return -errno;
    }
    for (;;) {
        size_t len = c->page * (1 + c->data_pages);
        void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base != MAP_FAILED) {
            t->fd = fd;
            t->base = base;
            t->data_size = c->page * c->data_pages;
            break;
        }
        err = errno;
        if ((err != EPERM && err != ENOMEM) || c->data_pages == 1) {
            close(fd);
            c->open_what = "mmap of the perf ring";
            return -err;
        }
        c->data_pages /= 2; /* over the locked-memory allowance: smaller rings for this and later threads */
    }
    if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        err = errno;
        thread_close(c, t);
        c->open_what = "PERF_EVENT_IOC_ENABLE";
        return -err;
    }
    return 0;
}

static int
thread_cmp(const void *a, const void *b)
{
    const struct perf_thread *x = a, *y = b;

    return (x->tid > y->tid) - (x->tid < y->tid);
}

/* Opens events for the threads of the target not yet followed, and forgets threads that
 * are gone. Returns the number of threads with an open event, or -errno if the task list
 * cannot be read (-ESRCH: the process is gone). */
static int
scan_threads(struct collector *c)
{
    char path[64];
    struct dirent *de;
    DIR *d;
    size_t n_old = c->n_threads, live = 0, w = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)c->pid);
    if ((d = opendir(path)) == NULL)
        return errno == ENOENT ? -ESRCH : -errno;
    for (size_t i = 0; i < c->n_threads; i++)
        c->threads[i].seen = 0;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long tid = strtol(de->d_name, &end, 10);
        struct perf_thread key = {.tid = (pid_t)tid}, *t;

        if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end != '\0' || tid <= 0 || tid > INT_MAX)
            continue;
        if (n_old > 0 && (t = bsearch(&key, c->threads, n_old, sizeof(*t), thread_cmp)) != NULL) {
            t->seen = 1;
            continue;
        }
        if (c->n_threads >= MAX_THREADS || grow_to(&c->threads, &c->cap_threads, c->n_threads + 1, sizeof(*t)) < 0) {
            c->over_limit = 1;
            continue;
        }
        t = &c->threads[c->n_threads++];
        *t = (struct perf_thread){.tid = (pid_t)tid, .fd = -1, .seen = 1};
        int rc = thread_open(c, t);
        if (rc < 0 && c->open_err == 0)
            c->open_err = rc;
        if (rc < 0 && rc != -ESRCH) { /* ESRCH: the thread exited in between */
            c->unfollowed++;
            if (c->follow_err == 0)
                c->follow_err = rc;
        }
    }
    closedir(d);
    /* Keep open events (their exit shows as POLLHUP) and threads still listed; drop the
     * rest so the list does not grow with every short-lived thread. */
    for (size_t i = 0; i < c->n_threads; i++) {
        if (c->threads[i].fd < 0 && !c->threads[i].seen)
            continue;
        live += c->threads[i].fd >= 0;
        c->threads[w++] = c->threads[i];
    }
    c->n_threads = w;
    qsort(c->threads, c->n_threads, sizeof(*c->threads), thread_cmp);
    return (int)live;
}

static void
collector_free(struct collector *c)
{
    for (size_t i = 0; i < c->n_threads; i++)
        thread_close(c, &c->threads[i]);
    free(c->threads);
    free(c->pfds);
    free(c->ips);
    free(c->stacks);
    free(c->index.slots);
    free(c->rec);
}

static int
read_int_file(const char *path, int dflt)
{
    FILE *fp = fopen(path, "re");
    int v = dflt;

    if (fp != NULL) {
        if (fscanf(fp, "%d", &v) != 1)
            v = dflt;
        fclose(fp);
    }
    return v;
}

/* The one-line reason for a failure to open the first thread. */
static void
open_error(const struct collector *c, int rc, char *err, size_t errlen)
{
    const char *what = c->open_what ? c->open_what : "perf_event_open";
    char paranoid[96];

    switch (-rc) {
    case EACCES:
    case EPERM:
        if (strcmp(what, "perf_event_open") == 0) {
            snprintf(paranoid, sizeof(paranoid), "kernel.perf_event_paranoid=%d; needs the same uid or CAP_PERFMON",
                     read_int_file("/proc/sys/kernel/perf_event_paranoid", -9));
            snprintf(err, errlen, "%s on pid %d: %s (%s)", what, (int)c->pid, strerror(-rc), paranoid);
        } else {
            snprintf(err, errlen, "%s: %s (locked memory over kernel.perf_event_mlock_kb and RLIMIT_MEMLOCK)", what, strerror(-rc));
        }
        break;
    case ESRCH:
        snprintf(err, errlen, "%s on pid %d: %s (the process exited)", what, (int)c->pid, strerror(-rc));
        break;
    case ENOENT:
    case ENODEV:
    case EOPNOTSUPP:
    case ENOSYS:
        snprintf(err, errlen, "%s: %s (no software cpu-clock perf events on this kernel)", what, strerror(-rc));
        break;
    case EINVAL:
        snprintf(err, errlen, "%s: %s (hz %d over kernel.perf_event_max_sample_rate?)", what, strerror(-rc), c->hz);
        break;
    default:
        snprintf(err, errlen, "%s on pid %d: %s", what, (int)c->pid, strerror(-rc));
        break;
    }
}

/* Turns the counted stacks into the pprof profile. */
static int
build_profile(struct collector *c, struct symbolizer *sy, int64_t start_ns, int64_t duration_ns, unsigned char **gz, size_t *gz_len)
{
    static const char *const types[] = {"samples", "cpu"}, *const units[] = {"count", "nanoseconds"};
    const int64_t period = 1000000000ll / c->hz;
    struct funcmond_pprof_frame *frames = NULL;
    char(*hex)[24] = NULL, exe[PATH_MAX], path[64], note[128];
    struct funcmond_pprof *p;
    ssize_t n;

    if ((p = funcmond_pprof_new(types, units, 2, "cpu", "nanoseconds", period)) == NULL)
        return -ENOMEM;
    /* The main binary's mappings first: pprof names the profile after mapping 1. */
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)c->pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sy->n_maps; i++) {
            struct map_ent *m = &sy->maps[i];
            if (m->file != SIZE_MAX && (strcmp(m->name, exe) == 0) == (pass == 0))
                m->mapping = funcmond_pprof_mapping(p, m->start, m->end, m->pgoff, m->name);
        }
    frames = calloc(MAX_DEPTH, sizeof(*frames));
    hex = calloc(MAX_DEPTH, sizeof(*hex));
    if (frames == NULL || hex == NULL) {
        free(frames);
        free(hex);
        funcmond_pprof_free(p);
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_stacks; i++) {
        const struct raw_stack *s = &c->stacks[i];
        int64_t values[2] = {(int64_t)s->count, 0};
        for (size_t j = 0; j < s->n; j++) {
            uint64_t a = c->ips[s->ips + j];
            symbolize(sy, a, j > 0 && a > 0 ? a - 1 : a, &frames[j], hex[j], sizeof(hex[j]));
        }
        if (__builtin_mul_overflow(values[0], period, &values[1]))
            values[1] = INT64_MAX;
        funcmond_pprof_add_frames(p, frames, (int)s->n, values);
    }
    snprintf(note, sizeof(note), "pid %d, %d Hz, %" PRIu64 " samples", (int)c->pid, c->hz, c->samples);
    funcmond_pprof_comment(p, note);
    if (c->lost > 0 || c->dropped > 0) {
        snprintf(note, sizeof(note), "%" PRIu64 " samples lost (ring overflow), %" PRIu64 " dropped (memory limit)", c->lost,
                 c->dropped);
        funcmond_pprof_comment(p, note);
    }
    if (c->unfollowed > 0 || c->over_limit) {
        snprintf(note, sizeof(note), "%" PRIu64 " threads not sampled (%s)%s", c->unfollowed,
                 c->follow_err ? strerror(-c->follow_err) : "-", c->over_limit ? ", more past the thread limit" : "");
        funcmond_pprof_comment(p, note);
    }
    free(frames);
    free(hex);
    return funcmond_pprof_finish(p, start_ns, duration_ns, gz, gz_len);
}

int
funcmond_pprof_cpu(pid_t pid, int seconds, int hz, const volatile int *cancel, unsigned char **gz, size_t *gz_len, char *err,
                   size_t errlen)
{
    struct collector c;
    struct symbolizer sy;
    char dummy[1];
    int64_t start_real, start, deadline, next_scan, now;
    int rc, live;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (gz != NULL)
        *gz = NULL;
    if (gz_len != NULL)
        *gz_len = 0;
    if (pid <= 0 || seconds < 1 || seconds > FUNCMOND_PPROF_CPU_MAX_SECONDS || hz < 1 || hz > FUNCMOND_PPROF_CPU_MAX_HZ ||
        gz == NULL || gz_len == NULL) {
        snprintf(err, errlen, "invalid argument (pid %d, seconds %d, hz %d)", (int)pid, seconds, hz);
        return -EINVAL;
    }
    memset(&c, 0, sizeof(c));
    memset(&sy, 0, sizeof(sy));
    c.pid = sy.pid = pid;
    c.hz = hz;
    c.page = (size_t)sysconf(_SC_PAGESIZE);
    c.data_pages = RING_DATA_PAGES;
    if ((c.rec = malloc(65536)) == NULL) { /* the largest record (u16 size) */
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }

    start_real = (int64_t)funcmond_real_ns();
    start = (int64_t)funcmond_mono_ns();
    deadline = start + (int64_t)seconds * 1000000000ll;
    live = scan_threads(&c);
    if (live <= 0) {
        rc = live < 0 ? live : c.open_err ? c.open_err : -ESRCH;
        if (live < 0 || c.open_err == 0)
            snprintf(err, errlen, "no process %d", (int)pid);
        else
            open_error(&c, rc, err, errlen);
        goto out;
    }
    if ((rc = read_maps(&sy)) < 0) {
        snprintf(err, errlen, "reading /proc/%d/maps: %s", (int)pid, strerror(-rc));
        goto out;
    }

    next_scan = start + SCAN_INTERVAL_NS;
    while (live > 0) {
        /* set by another thread (the HTTP thread, when the client leaves) */
        if (cancel != NULL && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
            rc = -ECANCELED;
            snprintf(err, errlen, "cancelled");
            goto out;
        }
        now = (int64_t)funcmond_mono_ns();
        if (now >= deadline)
            break;
        if (now >= next_scan) {
            if ((live = scan_threads(&c)) < 0)
                break; /* the process is gone: profile what we have */
            next_scan = now + SCAN_INTERVAL_NS;
        }
        if (grow_to(&c.pfds, &c.cap_pfds, c.n_threads, sizeof(*c.pfds)) < 0) {
            rc = -ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < c.n_threads; i++) /* poll ignores fd -1 */
            c.pfds[i] = (struct pollfd){.fd = c.threads[i].fd, .events = POLLIN};
        int64_t wake = next_scan < deadline ? next_scan : deadline;
        poll(c.pfds, c.n_threads, (int)((wake - now + 999999) / 1000000));
        for (size_t i = 0; i < c.n_threads; i++) {
            struct perf_thread *t = &c.threads[i];
            if (t->fd < 0)
                continue;
            drain(&c, t);
            if (c.pfds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) { /* the thread exited */
                thread_close(&c, t);
                live--;
            }
        }
    }
    now = (int64_t)funcmond_mono_ns();
    for (size_t i = 0; i < c.n_threads; i++)
        thread_close(&c, &c.threads[i]);
    read_maps(&sy); /* pick up libraries loaded during the run; keeps the old list if the process is gone */
    rc = build_profile(&c, &sy, start_real, (now < deadline ? now : deadline) - start, gz, gz_len);
    if (rc < 0)
        snprintf(err, errlen, "building the profile: %s", strerror(-rc));
out:
    collector_free(&c);
    symbolizer_free(&sy);
    return rc;
}
