/*
 * pprof_profile.c - the pprof profile builder and its perftools.profiles.Profile encoder
 * (the builder half of pprof.h).
 *
 * The endpoints must answer in the format `go tool pprof` reads, and funcmond links no
 * protobuf library for one message type, so the encoder is written here from the wire
 * format: varints, length-delimited fields, packed repeated fields. The builder interns
 * every string, function, location, mapping and stack in small open-addressing indexes
 * (hash_index.h), so the output holds each once and identical stacks become one sample.
 * Running out of memory is remembered and reported once, by funcmond_pprof_finish, so the
 * callers that feed the builder need no error path per sample.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"
#include "hash_index.h"
#include "pprof.h"

#define STRING_MAX 4096 /* longer names are cut: a hostile symbol table must not cost megabytes per frame */

static int64_t
sat_add(int64_t a, int64_t b)
{
    int64_t r;

    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* ---- protobuf output ---- */

static void
put_varint(struct funcmond_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;

    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    funcmond_buf_append(b, tmp, n);
}

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void
put_key(struct funcmond_buf *b, unsigned field, unsigned wire)
{
    put_varint(b, (uint64_t)field << 3 | wire);
}

/* A scalar field; zero is the proto3 default and is left out. int64 fields go through
 * here too: a negative value is its two's complement, ten bytes on the wire. */
static void
put_uint(struct funcmond_buf *b, unsigned field, uint64_t v)
{
    if (v == 0)
        return;
    put_key(b, field, WIRE_VARINT);
    put_varint(b, v);
}

static void
put_bytes(struct funcmond_buf *b, unsigned field, const void *data, size_t n)
{
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    funcmond_buf_append(b, data, n);
}

/* A nested message or packed field, encoded beforehand into m. */
static void
put_sub(struct funcmond_buf *b, unsigned field, struct funcmond_buf *m)
{
    if (m->failed)
        b->failed = 1;
    put_bytes(b, field, m->data, m->len);
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
    struct funcmond_hash_index index;
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
    struct funcmond_hash_index string_index;
    struct rec_set functions, locations, mappings;
    struct pp_sample *samples;
    size_t n_samples, cap_samples;
    struct funcmond_hash_index sample_index;
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
    struct funcmond_hash_slot *slot;
    uint32_t h;

    if (s == NULL || p->failed)
        return 0;
    k.s = s;
    k.len = strnlen(s, STRING_MAX);
    h = funcmond_hash_bytes(s, k.len);
    if (p->n_strings >= UINT32_MAX - 1 || funcmond_hash_index_reserve(&p->string_index) < 0 ||
        funcmond_array_reserve(&p->strings, &p->cap_strings, p->n_strings + 1, sizeof(*p->strings)) < 0 ||
        funcmond_array_reserve(&p->chars, &p->cap_chars, p->n_chars + k.len, 1) < 0) {
        p->failed = 1;
        return 0;
    }
    slot = funcmond_hash_index_find(&p->string_index, h, str_eq, p, &k);
    if (slot->idx1 != 0)
        return slot->idx1 - 1;
    if (k.len > 0)
        memcpy(p->chars + p->n_chars, s, k.len);
    p->strings[p->n_strings] = (struct pp_string){.off = p->n_chars, .len = k.len};
    p->n_chars += k.len;
    funcmond_hash_index_insert(&p->string_index, slot, h, (uint32_t)p->n_strings);
    return (uint32_t)p->n_strings++;
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
    struct funcmond_hash_slot *slot;
    uint32_t h;

    if (p->failed)
        return 0;
    if (s->n >= UINT32_MAX - 1 || funcmond_hash_index_reserve(&s->index) < 0 ||
        funcmond_array_reserve(&s->items, &s->cap, s->n + 1, s->size) < 0) {
        p->failed = 1;
        return 0;
    }
    h = funcmond_hash_bytes(key, s->size);
    slot = funcmond_hash_index_find(&s->index, h, rec_eq, s, key);
    if (slot->idx1 != 0)
        return slot->idx1;
    memcpy(s->items + s->n * s->size, key, s->size);
    funcmond_hash_index_insert(&s->index, slot, h, (uint32_t)s->n);
    return (uint32_t)++s->n;
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
    funcmond_hash_index_free(&s->index);
}

void
funcmond_pprof_free(struct funcmond_pprof *p)
{
    if (p == NULL)
        return;
    free(p->chars);
    free(p->strings);
    funcmond_hash_index_free(&p->string_index);
    rec_free(&p->functions);
    rec_free(&p->locations);
    rec_free(&p->mappings);
    free(p->samples);
    funcmond_hash_index_free(&p->sample_index);
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

static int
sample_eq(const void *ctx, uint32_t idx, const void *key)
{
    const struct funcmond_pprof *p = ctx;
    const struct pp_sample *s = &p->samples[idx];

    return funcmond_id_run_eq(key, p->locs + s->locs, s->n_locs);
}

/* The location ids p->locs[start .. n_locs) form a stack: add its values to the sample
 * with the same stack, or make them a new sample. */
static void
add_sample(struct funcmond_pprof *p, size_t start, const int64_t *values)
{
    struct funcmond_id_run k = {.ids = p->locs + start, .n = p->n_locs - start};
    uint32_t h = funcmond_hash_bytes(k.ids, k.n * sizeof(*k.ids));
    struct funcmond_hash_slot *slot;

    if (p->n_samples >= UINT32_MAX - 1 || funcmond_hash_index_reserve(&p->sample_index) < 0 ||
        funcmond_array_reserve(&p->samples, &p->cap_samples, p->n_samples + 1, sizeof(*p->samples)) < 0 ||
        funcmond_array_reserve(&p->vals, &p->cap_vals, p->n_vals + (size_t)p->n_values, sizeof(*p->vals)) < 0) {
        p->failed = 1;
        return;
    }
    slot = funcmond_hash_index_find(&p->sample_index, h, sample_eq, p, &k);
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
    funcmond_hash_index_insert(&p->sample_index, slot, h, (uint32_t)p->n_samples);
    p->n_samples++;
}

/* Adds one sample of n_frames frames, leaf first: frames[i] if frames is set, else the bare
 * function name names[i]. */
static void
add_stack(struct funcmond_pprof *p, const struct funcmond_pprof_frame *frames, const char *const *names, int n_frames,
          const int64_t *values)
{
    size_t start;

    if (p == NULL || p->failed || n_frames < 0 || (n_frames > 0 && frames == NULL && names == NULL) || values == NULL)
        return;
    start = p->n_locs;
    if (funcmond_array_reserve(&p->locs, &p->cap_locs, start + (size_t)n_frames, sizeof(*p->locs)) < 0) {
        p->failed = 1;
        return;
    }
    for (int i = 0; i < n_frames; i++) {
        uint32_t id = frames != NULL ? frame_location(p, frames[i].name, frames[i].filename, frames[i].address, frames[i].mapping)
                                     : frame_location(p, names[i], NULL, 0, 0);
        if (id == 0) {
            p->n_locs = start;
            return;
        }
        p->locs[p->n_locs++] = id;
    }
    add_sample(p, start, values);
}

void
funcmond_pprof_add_frames(struct funcmond_pprof *p, const struct funcmond_pprof_frame *frames, int n_frames, const int64_t *values)
{
    add_stack(p, frames, NULL, n_frames, values);
}

void
funcmond_pprof_add(struct funcmond_pprof *p, const char *const *frames, int n_frames, const int64_t *values)
{
    add_stack(p, NULL, frames, n_frames, values);
}

void
funcmond_pprof_comment(struct funcmond_pprof *p, const char *text)
{
    uint32_t s;

    if (p == NULL || text == NULL || p->failed)
        return;
    s = intern(p, text);
    if (p->failed || funcmond_array_reserve(&p->comments, &p->cap_comments, p->n_comments + 1, sizeof(*p->comments)) < 0) {
        p->failed = 1;
        return;
    }
    p->comments[p->n_comments++] = s;
}

static void
encode(const struct funcmond_pprof *p, struct funcmond_buf *out, int64_t time_ns, int64_t duration_ns)
{
    struct funcmond_buf m = {0}, f = {0};

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
    if (m.failed || f.failed)
        out->failed = 1;
    funcmond_buf_free(&m);
    funcmond_buf_free(&f);
}

/* gzip (deflate with a gzip wrapper: windowBits 15 + 16) of in into a malloc'd buffer.
 * Returns 0, or -ENOMEM with *gz untouched. */
static int
gzip_buf(const unsigned char *in, size_t n, unsigned char **gz, size_t *gz_len)
{
    z_stream z;
    struct funcmond_buf out = {0};
    int flush, rc = -ENOMEM;
    char *data;

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
            if (funcmond_buf_reserve(&out, 65536) != 0)
                goto out;
            uInt room = out.cap - out.len > (1u << 30) ? (1u << 30) : (uInt)(out.cap - out.len);
            z.next_out = (Bytef *)out.data + out.len;
            z.avail_out = room;
            if (deflate(&z, flush) == Z_STREAM_ERROR)
                goto out;
            out.len += room - z.avail_out;
        } while (z.avail_out == 0);
    } while (flush != Z_FINISH);
    if ((data = funcmond_buf_take(&out, gz_len)) == NULL)
        goto out;
    *gz = (unsigned char *)data;
    rc = 0;
out:
    deflateEnd(&z);
    funcmond_buf_free(&out);
    return rc;
}

int
funcmond_pprof_finish(struct funcmond_pprof *p, int64_t time_ns, int64_t duration_ns, unsigned char **gz, size_t *gz_len)
{
    struct funcmond_buf out = {0};
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
        if (!out.failed)
            rc = gzip_buf((const unsigned char *)out.data, out.len, gz, gz_len);
    }
    funcmond_buf_free(&out);
    funcmond_pprof_free(p);
    return rc;
}
