/*
 * doc.c - the answer tree and its JSON and msgpack writers (see doc.h).
 *
 * Nodes live in an arena of 64 KiB blocks freed all at once with the answer. msgpack is
 * written with msgpack-c's packer into our buffer; JSON by hand, because its escaping of
 * arbitrary bytes is the part that matters here.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doc.h"
#include "utf8.h"

enum ftype { F_NULL, F_BOOL, F_U64, F_I64, F_DOUBLE, F_STR, F_ARRAY, F_OBJECT };

struct fval {
    enum ftype type;
    union {
        uint64_t u;
        int64_t i;
        double d;
        struct {
            const char *p;
            size_t n;
        } s;
    } v;
    struct fval *first, *last; /* children of arrays and objects */
    struct fval *next;
    const char *key; /* member name within an object */
    size_t key_len;
    size_t count;
};

struct block {
    struct block *next;
    size_t used;
    char data[65536 - 2 * sizeof(void *)];
};

struct fdoc {
    struct block *blocks;
    int failed;
};

/* ---- arena ---- */

struct fdoc *
fdoc_new(void)
{
    return calloc(1, sizeof(struct fdoc));
}

void
fdoc_free(struct fdoc *d)
{
    if (d == NULL)
        return;
    while (d->blocks != NULL) {
        struct block *b = d->blocks;
        d->blocks = b->next;
        free(b);
    }
    free(d);
}

static void *
alloc(struct fdoc *d, size_t n)
{
    if (d == NULL) /* fdoc_new failed: every builder call is a no-op, the writers report it */
        return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n > sizeof(((struct block *)0)->data)) {
        /* a large string: a block of its own */
        struct block *big = malloc(sizeof(struct block) - sizeof(big->data) + n);
        if (big == NULL)
            return d->failed = 1, NULL;
        big->used = n;
        if (d->blocks != NULL) {
            big->next = d->blocks->next;
            d->blocks->next = big;
        } else {
            big->next = NULL;
            d->blocks = big;
        }
        return big->data;
    }
    if (d->blocks == NULL || d->blocks->used + n > sizeof(d->blocks->data)) {
        struct block *b = malloc(sizeof(*b));
        if (b == NULL)
            return d->failed = 1, NULL;
        b->used = 0;
        b->next = d->blocks;
        d->blocks = b;
    }
    void *p = d->blocks->data + d->blocks->used;
    d->blocks->used += n;
    return p;
}

static struct fval *
node(struct fdoc *d, enum ftype type)
{
    struct fval *v = alloc(d, sizeof(*v));
    if (v != NULL) {
        memset(v, 0, sizeof(*v));
        v->type = type;
    }
    return v;
}

static const char *
copy(struct fdoc *d, const char *s, size_t n)
{
    char *p = alloc(d, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

struct fval *
fdoc_object(struct fdoc *d)
{
    return node(d, F_OBJECT);
}

struct fval *
fdoc_array(struct fdoc *d)
{
    return node(d, F_ARRAY);
}

static void
append_child(struct fval *parent, struct fval *child)
{
    if (parent == NULL || child == NULL)
        return;
    if (parent->last != NULL)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->count++;
}

void
fobj_putn(struct fdoc *d, struct fval *obj, const char *key, size_t key_len, struct fval *child)
{
    if (child == NULL)
        return;
    child->key = copy(d, key, key_len);
    child->key_len = key_len;
    if (child->key != NULL)
        append_child(obj, child);
}

void
fobj_put(struct fdoc *d, struct fval *obj, const char *key, struct fval *child)
{
    fobj_putn(d, obj, key, strlen(key), child);
}

void
fobj_strn(struct fdoc *d, struct fval *obj, const char *key, const char *s, size_t n)
{
    struct fval *v = node(d, F_STR);
    if (v == NULL)
        return;
    v->v.s.p = copy(d, s, n);
    v->v.s.n = n;
    if (v->v.s.p != NULL)
        fobj_put(d, obj, key, v);
}

void
fobj_str(struct fdoc *d, struct fval *obj, const char *key, const char *s)
{
    fobj_strn(d, obj, key, s, strlen(s));
}

/* A new scalar member of obj (NULL, and nothing added, when out of memory). */
static struct fval *
scalar(struct fdoc *d, struct fval *obj, const char *key, enum ftype type)
{
    struct fval *v = node(d, type);
    fobj_put(d, obj, key, v);
    return v;
}

void
fobj_u64(struct fdoc *d, struct fval *obj, const char *key, uint64_t u)
{
    struct fval *v = scalar(d, obj, key, F_U64);
    if (v != NULL)
        v->v.u = u;
}

void
fobj_i64(struct fdoc *d, struct fval *obj, const char *key, int64_t i)
{
    struct fval *v = scalar(d, obj, key, F_I64);
    if (v != NULL)
        v->v.i = i;
}

void
fobj_double(struct fdoc *d, struct fval *obj, const char *key, double x)
{
    struct fval *v = scalar(d, obj, key, F_DOUBLE);
    if (v != NULL)
        v->v.d = x;
}

void
fobj_bool(struct fdoc *d, struct fval *obj, const char *key, int b)
{
    struct fval *v = scalar(d, obj, key, F_BOOL);
    if (v != NULL)
        v->v.u = b != 0;
}

void
farr_push(struct fdoc *d, struct fval *arr, struct fval *child)
{
    (void)d;
    append_child(arr, child);
}

void
farr_str(struct fdoc *d, struct fval *arr, const char *s)
{
    struct fval *v = node(d, F_STR);
    if (v == NULL)
        return;
    v->v.s.n = strlen(s);
    v->v.s.p = copy(d, s, v->v.s.n);
    if (v->v.s.p != NULL)
        append_child(arr, v);
}

/* Go's time.Duration.String(): "0s", "1.5µs", "16.7ms", "2.5s", "1m30s", "2h0m0s". */
void
fdoc_go_duration(uint64_t ns, char *buf, size_t len)
{
    char frac[16];
    if (ns == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    /* fraction of `digits` digits of v / 10^digits, without trailing zeros */
    static const uint64_t pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};
#define FRAC(v, digits)                                                                                                            \
    do {                                                                                                                           \
        uint64_t f_ = (v) % pow10[digits];                                                                                         \
        int n_ = digits;                                                                                                           \
        frac[0] = '\0';                                                                                                            \
        if (f_ != 0) {                                                                                                             \
            while (f_ % 10 == 0) {                                                                                                 \
                f_ /= 10;                                                                                                          \
                n_--;                                                                                                              \
            }                                                                                                                      \
            snprintf(frac, sizeof(frac), ".%0*llu", n_, (unsigned long long)f_);                                                   \
        }                                                                                                                          \
    } while (0)
    if (ns < 1000) {
        snprintf(buf, len, "%lluns", (unsigned long long)ns);
    } else if (ns < 1000000) {
        FRAC(ns, 3);
        snprintf(buf, len, "%llu%sµs", (unsigned long long)(ns / 1000), frac);
    } else if (ns < 1000000000) {
        FRAC(ns, 6);
        snprintf(buf, len, "%llu%sms", (unsigned long long)(ns / 1000000), frac);
    } else {
        uint64_t secs = ns / 1000000000, h = secs / 3600, m = secs / 60 % 60, s = secs % 60;
        FRAC(ns, 9);
        if (h != 0)
            snprintf(buf, len, "%lluh%llum%llu%ss", (unsigned long long)h, (unsigned long long)m, (unsigned long long)s, frac);
        else if (m != 0)
            snprintf(buf, len, "%llum%llu%ss", (unsigned long long)m, (unsigned long long)s, frac);
        else
            snprintf(buf, len, "%llu%ss", (unsigned long long)s, frac);
    }
#undef FRAC
}

void
fobj_duration(struct fdoc *d, struct fval *obj, const char *key, uint64_t ns)
{
    char s[48], k[96];
    fdoc_go_duration(ns, s, sizeof(s));
    fobj_str(d, obj, key, s);
    snprintf(k, sizeof(k), "%s_ns", key);
    fobj_u64(d, obj, k, ns);
}

void
fobj_time(struct fdoc *d, struct fval *obj, const char *key, uint64_t real_ns)
{
    char s[64], frac[16] = "";
    if (real_ns == 0) {
        fobj_str(d, obj, key, "");
        return;
    }
    time_t secs = (time_t)(real_ns / 1000000000);
    uint64_t nanos = real_ns % 1000000000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    if (nanos != 0) {
        int digits = 9;
        while (nanos % 10 == 0) {
            nanos /= 10;
            digits--;
        }
        snprintf(frac, sizeof(frac), ".%0*llu", digits, (unsigned long long)nanos);
    }
    snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, frac);
    fobj_str(d, obj, key, s);
}

/* ---- JSON ---- */

static void
json_string(struct funcmond_buf *b, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    funcmond_buf_append(b, "\"", 1);
    size_t run = 0; /* bytes that need no escape, appended in one go */
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t l = c >= 0x20 && c != '"' && c != '\\' ? funcmond_utf8_len(s + i, n - i) : 0;
        if (l != 0) {
            i += l;
            run += l;
            continue;
        }
        funcmond_buf_append(b, s + i - run, run);
        run = 0;
        if (c == '"')
            funcmond_buf_append(b, "\\\"", 2);
        else if (c == '\\')
            funcmond_buf_append(b, "\\\\", 2);
        else if (c == '\n')
            funcmond_buf_append(b, "\\n", 2);
        else if (c == '\t')
            funcmond_buf_append(b, "\\t", 2);
        else if (c == '\r')
            funcmond_buf_append(b, "\\r", 2);
        else
            funcmond_buf_printf(b, "\\u%04x", c); /* control byte, or a byte that is not UTF-8 */
        i++;
    }
    funcmond_buf_append(b, s + n - run, run);
    funcmond_buf_append(b, "\"", 1);
}

static void
json_value(const struct fval *v, struct funcmond_buf *b)
{
    switch (v->type) {
    case F_NULL:
        funcmond_buf_append(b, "null", 4);
        break;
    case F_BOOL:
        funcmond_buf_append(b, v->v.u ? "true" : "false", v->v.u ? 4 : 5);
        break;
    case F_U64:
        funcmond_buf_printf(b, "%llu", (unsigned long long)v->v.u);
        break;
    case F_I64:
        funcmond_buf_printf(b, "%lld", (long long)v->v.i);
        break;
    case F_DOUBLE:
        if (v->v.d != v->v.d || v->v.d > 1e300 || v->v.d < -1e300)
            funcmond_buf_append(b, "null", 4); /* JSON has no NaN or infinity */
        else
            funcmond_buf_printf(b, "%.17g", v->v.d);
        break;
    case F_STR:
        json_string(b, v->v.s.p, v->v.s.n);
        break;
    case F_ARRAY:
    case F_OBJECT:
        funcmond_buf_append(b, v->type == F_ARRAY ? "[" : "{", 1);
        for (const struct fval *c = v->first; c != NULL; c = c->next) {
            if (c != v->first)
                funcmond_buf_append(b, ",", 1);
            if (v->type == F_OBJECT) {
                json_string(b, c->key, c->key_len);
                funcmond_buf_append(b, ":", 1);
            }
            json_value(c, b);
        }
        funcmond_buf_append(b, v->type == F_ARRAY ? "]" : "}", 1);
        break;
    }
}

void
fdoc_json(const struct fval *v, struct funcmond_buf *out)
{
    if (v == NULL) {
        out->failed = 1;
        return;
    }
    json_value(v, out);
    funcmond_buf_append(out, "\n", 1);
}

/* ---- msgpack ---- */

static int
msgpack_to_buf(void *data, const char *buf, size_t len)
{
    funcmond_buf_append(data, buf, len);
    return ((struct funcmond_buf *)data)->failed ? -1 : 0;
}

static void
mp_value(const struct fval *v, msgpack_packer *pk)
{
    switch (v->type) {
    case F_NULL:
        msgpack_pack_nil(pk);
        break;
    case F_BOOL:
        if (v->v.u)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case F_U64:
        msgpack_pack_uint64(pk, v->v.u);
        break;
    case F_I64:
        msgpack_pack_int64(pk, v->v.i);
        break;
    case F_DOUBLE:
        msgpack_pack_double(pk, v->v.d);
        break;
    case F_STR:
        msgpack_pack_str(pk, v->v.s.n);
        msgpack_pack_str_body(pk, v->v.s.p, v->v.s.n);
        break;
    case F_ARRAY:
        msgpack_pack_array(pk, v->count);
        for (const struct fval *c = v->first; c != NULL; c = c->next)
            mp_value(c, pk);
        break;
    case F_OBJECT:
        msgpack_pack_map(pk, v->count);
        for (const struct fval *c = v->first; c != NULL; c = c->next) {
            msgpack_pack_str(pk, c->key_len);
            msgpack_pack_str_body(pk, c->key, c->key_len);
            mp_value(c, pk);
        }
        break;
    }
}

void
fdoc_msgpack(const struct fval *v, struct funcmond_buf *out)
{
    msgpack_packer pk;
    if (v == NULL) {
        out->failed = 1;
        return;
    }
    msgpack_packer_init(&pk, out, msgpack_to_buf);
    mp_value(v, &pk);
}
