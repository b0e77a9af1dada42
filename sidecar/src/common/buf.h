/*
 * buf.h - funcmond's one growable byte buffer, for output written piece by piece.
 *
 * The server writes every answer by appending many small pieces: JSON and msgpack
 * documents, the Prometheus page, pprof protobuf and its gzip. Checking each append for a
 * failed allocation would bury those writers in error paths, so the buffer remembers the
 * first failure instead: once an allocation failed (or the buffer's size limit was
 * reached), `failed` is set for good, every later append is a no-op, and the writer checks
 * `failed` once at the end. The array growth of funcmond's other growing tables is here
 * too, so that there is one growth policy and one overflow check.
 *
 * A zero-initialised struct funcmond_buf is an empty buffer without a size limit.
 */
#ifndef FUNCMOND_BUF_H
#define FUNCMOND_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct funcmond_buf {
    char *data;   /* malloc'd; NULL until something was written */
    size_t len;   /* bytes written */
    size_t cap;   /* bytes allocated at data */
    size_t limit; /* most bytes data may take, 0 for no limit: a cap on what one answer may cost */
    int failed;   /* an allocation failed or the limit was hit: the content is incomplete */
};

/* Makes room for n more bytes at data + len, which the caller may then write directly and
 * count into len. Returns 0, or -ENOMEM (and sets failed) if memory ran out, the limit
 * would be passed, or the buffer had failed already. */
static inline int funcmond_buf_reserve(struct funcmond_buf *b, size_t n);

/* Appends n bytes (nothing for n == 0, where data may be NULL). */
void funcmond_buf_append(struct funcmond_buf *b, const void *data, size_t n);

/* Appends printf-style formatted text, however long, without its NUL. */
void funcmond_buf_printf(struct funcmond_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void funcmond_buf_vprintf(struct funcmond_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Hands the content over to the caller: returns data (malloc'd, free() it) with a NUL one
 * past its *len bytes, so text can be used as a C string, and leaves b empty (failed
 * cleared, limit kept). Returns NULL without touching *len if the buffer failed or the NUL
 * found no memory; b is then freed. */
char *funcmond_buf_take(struct funcmond_buf *b, size_t *len);

/* Frees the content and leaves b empty (failed cleared, limit kept). */
void funcmond_buf_free(struct funcmond_buf *b);

/* Grows the array at *arrp (of item_size-byte items, capacity *cap items) to hold at least
 * need items, doubling. Returns 0, or -ENOMEM with the array and *cap unchanged. */
int funcmond_array_reserve(void *arrp, size_t *cap, size_t need, size_t item_size);

/* ---- inline fast path ---- */

int funcmond_buf_reserve_slow(struct funcmond_buf *b, size_t n);

static inline int
funcmond_buf_reserve(struct funcmond_buf *b, size_t n)
{
    if (!b->failed && b->cap - b->len >= n)
        return 0;
    return funcmond_buf_reserve_slow(b, n);
}

#endif
