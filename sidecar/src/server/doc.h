/*
 * doc.h - answers as a small tree of values, written out as JSON or as msgpack.
 *
 * Every REST answer of funcmond exists in two encodings (JSON by default, msgpack for
 * `Accept: application/msgpack`). Handlers build the answer once as a tree in an arena and
 * the tree is written in the encoding asked for, so the two can never disagree. Strings
 * are byte strings: JSON output escapes whatever bytes a client put in a name (control
 * bytes and bytes that are not UTF-8 become \u00XX, so nothing is lost or invalid), and
 * msgpack carries them as they are.
 */
#ifndef FUNCMOND_DOC_H
#define FUNCMOND_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct fdoc;
struct fval;

/* Answers are written into funcmond's growable buffer (buf.h: data, len, and `failed`
 * once an allocation failed, checked at the end). */

/* An arena holding one answer's tree. NULL when out of memory. */
struct fdoc *fdoc_new(void);
void fdoc_free(struct fdoc *d);

struct fval *fdoc_object(struct fdoc *d);
struct fval *fdoc_array(struct fdoc *d);

/* Members of an object, in insertion order. Keys and strings are copied. */
void fobj_str(struct fdoc *d, struct fval *obj, const char *key, const char *s);
void fobj_strn(struct fdoc *d, struct fval *obj, const char *key, const char *s, size_t n);
void fobj_u64(struct fdoc *d, struct fval *obj, const char *key, uint64_t v);
void fobj_i64(struct fdoc *d, struct fval *obj, const char *key, int64_t v);
void fobj_double(struct fdoc *d, struct fval *obj, const char *key, double v);
void fobj_bool(struct fdoc *d, struct fval *obj, const char *key, int v);
void fobj_put(struct fdoc *d, struct fval *obj, const char *key, struct fval *child);
/* A member whose key is any bytes (profile names). */
void fobj_putn(struct fdoc *d, struct fval *obj, const char *key, size_t key_len, struct fval *child);
/* A duration: "<key>" as a Go duration string ("2.5s", "16.7ms", "850µs") and "<key>_ns". */
void fobj_duration(struct fdoc *d, struct fval *obj, const char *key, uint64_t ns);
/* A time: RFC 3339 UTC ("2026-01-15T10:30:00.5Z"); "" for 0 (never). */
void fobj_time(struct fdoc *d, struct fval *obj, const char *key, uint64_t real_ns);

void farr_push(struct fdoc *d, struct fval *arr, struct fval *child);
void farr_str(struct fdoc *d, struct fval *arr, const char *s);

/* Writes the tree. */
void fdoc_json(const struct fval *v, struct funcmond_buf *out);
void fdoc_msgpack(const struct fval *v, struct funcmond_buf *out);

/* Go's time.Duration.String() of ns, into buf (at least 32 bytes). */
void fdoc_go_duration(uint64_t ns, char *buf, size_t len);

#endif
