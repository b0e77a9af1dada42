/*
 * buf.c - the growable byte buffer and array growth (see buf.h).
 *
 * Capacities double from a first block, so n appends cost O(n) copies in all; every size
 * computation is checked for overflow, since a length can come from a client's bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_FIRST_CAP 4096 /* bytes: most answers fit in one or two blocks */
#define ARRAY_FIRST_CAP 16 /* items */

static int
fail(struct funcmond_buf *b)
{
    b->failed = 1;
    return -ENOMEM;
}

int
funcmond_buf_reserve_slow(struct funcmond_buf *b, size_t n)
{
    size_t need, cap;
    char *data;

    if (b->failed)
        return -ENOMEM;
    if (b->cap - b->len >= n)
        return 0;
    if (n > SIZE_MAX - b->len)
        return fail(b);
    need = b->len + n;
    if (b->limit != 0 && need > b->limit)
        return fail(b);
    cap = b->cap ? b->cap : BUF_FIRST_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    if (b->limit != 0 && cap > b->limit)
        cap = b->limit;
    if ((data = realloc(b->data, cap)) == NULL)
        return fail(b);
    b->data = data;
    b->cap = cap;
    return 0;
}

void
funcmond_buf_append(struct funcmond_buf *b, const void *data, size_t n)
{
    if (n == 0 || funcmond_buf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, data, n);
    b->len += n;
}

void
funcmond_buf_vprintf(struct funcmond_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    int n;

    if (funcmond_buf_reserve(b, 1) != 0)
        return;
    /* Straight into the room left; only text longer than that is formatted twice. */
    va_copy(again, ap);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n > 0 && (size_t)n >= b->cap - b->len) {
        if (funcmond_buf_reserve(b, (size_t)n + 1) == 0)
            vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        else
            n = 0;
    }
    va_end(again);
    if (n > 0)
        b->len += (size_t)n;
}

void
funcmond_buf_printf(struct funcmond_buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    funcmond_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *
funcmond_buf_take(struct funcmond_buf *b, size_t *len)
{
    char *data;

    if (funcmond_buf_reserve(b, 1) != 0) {
        funcmond_buf_free(b);
        return NULL;
    }
    data = b->data;
    data[b->len] = '\0';
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}

void
funcmond_buf_free(struct funcmond_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

int
funcmond_array_reserve(void *arrp, size_t *cap, size_t need, size_t item_size)
{
    void *items;
    size_t n;

    if (need <= *cap)
        return 0;
    n = *cap ? *cap : ARRAY_FIRST_CAP;
    while (n < need) {
        if (n > SIZE_MAX / 4)
            return -ENOMEM;
        n *= 2;
    }
    if (n > SIZE_MAX / item_size)
        return -ENOMEM;
    /* arrp points at a pointer of any object type: read and write it as bytes. */
    memcpy(&items, arrp, sizeof(items));
    if ((items = realloc(items, n * item_size)) == NULL)
        return -ENOMEM;
    memcpy(arrp, &items, sizeof(items));
    *cap = n;
    return 0;
}
