/*
 * test_buf.c - the sidecar's growable buffer: content that survives many small and a few
 * large appends, printf of text longer than any first block, a failure that sticks (forced
 * with the size limit, the buffer's stand-in for running out of memory), and take/free
 * handing over and resetting the content. Array growth is checked alongside.
 */
#include <errno.h>
#include <stdint.h>

#include "buf.h"
#include "check.h"

static void
many_small_appends(void)
{
    struct funcmond_buf b = {0};

    for (int i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);
        funcmond_buf_append(&b, &c, 1);
    }
    CHECK_EQ(b.failed, 0);
    CHECK_EQ(b.len, 100000);
    CHECK_GE(b.cap, b.len);
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] != (char)('a' + i % 26))
            CHECK_EQ(b.data[i], (char)('a' + i % 26));
    funcmond_buf_append(&b, NULL, 0); /* nothing, and no read of NULL */
    CHECK_EQ(b.len, 100000);
    funcmond_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_EQ(b.len, 0);
    CHECK_EQ(b.cap, 0);
}

static void
large_appends(void)
{
    struct funcmond_buf b = {0};
    size_t big = 3u << 20;
    char *chunk = malloc(big);

    CHECK(chunk != NULL);
    for (size_t i = 0; i < big; i++)
        chunk[i] = (char)(i * 7);
    funcmond_buf_append(&b, "x", 1);
    funcmond_buf_append(&b, chunk, big); /* far past the first block in one step */
    funcmond_buf_append(&b, chunk, big);
    CHECK_EQ(b.failed, 0);
    CHECK_EQ(b.len, 1 + 2 * big);
    CHECK_EQ(b.data[0], 'x');
    CHECK(memcmp(b.data + 1, chunk, big) == 0);
    CHECK(memcmp(b.data + 1 + big, chunk, big) == 0);

    /* reserve, then write straight into the room */
    size_t before = b.len;
    CHECK_EQ(funcmond_buf_reserve(&b, 100000), 0);
    CHECK_GE(b.cap - b.len, 100000);
    memset(b.data + b.len, 'z', 100000);
    b.len += 100000;
    CHECK_EQ(b.data[before + 99999], 'z');
    funcmond_buf_free(&b);
    free(chunk);
}

static void
printf_appends(void)
{
    struct funcmond_buf b = {0};
    char name[10001];
    size_t len;
    char *text;

    funcmond_buf_printf(&b, "%d-%s", 42, "ok");
    CHECK_EQ(b.len, 5);
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    funcmond_buf_printf(&b, "[%s]", name); /* longer than the room left: formatted again */
    CHECK_EQ(b.len, 5 + 10002);
    funcmond_buf_printf(&b, "%s", ""); /* nothing */
    CHECK_EQ(b.len, 5 + 10002);
    text = funcmond_buf_take(&b, &len);
    CHECK(text != NULL);
    CHECK_EQ(len, 10007);
    CHECK_EQ(strlen(text), 10007); /* NUL-terminated one past len */
    CHECK(strncmp(text, "42-ok[nnn", 9) == 0);
    CHECK_EQ(text[len - 1], ']');
    free(text);
    /* take leaves the buffer empty and usable */
    CHECK(b.data == NULL);
    CHECK_EQ(b.len, 0);
    funcmond_buf_append(&b, "again", 5);
    CHECK_EQ(b.len, 5);
    funcmond_buf_free(&b);

    /* an empty buffer hands over "" */
    text = funcmond_buf_take(&b, &len);
    CHECK(text != NULL);
    CHECK_EQ(len, 0);
    CHECK_STREQ(text, "");
    free(text);
}

static void
failure_sticks(void)
{
    struct funcmond_buf b = {.limit = 10000};
    size_t len = 12345;
    char block[4000];

    memset(block, 'b', sizeof(block));
    funcmond_buf_append(&b, block, sizeof(block));
    funcmond_buf_append(&b, block, sizeof(block));
    CHECK_EQ(b.failed, 0);
    CHECK_EQ(b.len, 8000);
    CHECK_LE(b.cap, 10000);                        /* doubling stops at the limit */
    funcmond_buf_append(&b, block, sizeof(block)); /* 12000 > 10000 */
    CHECK_EQ(b.failed, 1);
    CHECK_EQ(b.len, 8000); /* nothing of the failed append */
    /* every later call is a no-op, even one that would fit */
    funcmond_buf_append(&b, "x", 1);
    funcmond_buf_printf(&b, "%d", 7);
    CHECK_EQ(b.len, 8000);
    CHECK_EQ(funcmond_buf_reserve(&b, 1), -ENOMEM);
    CHECK_EQ(funcmond_buf_reserve(&b, 0), -ENOMEM);
    /* take reports it and frees */
    CHECK(funcmond_buf_take(&b, &len) == NULL);
    CHECK_EQ(len, 12345);
    CHECK(b.data == NULL);
    CHECK_EQ(b.failed, 0);
    CHECK_EQ(b.limit, 10000); /* kept */

    /* printf past the limit fails too */
    funcmond_buf_append(&b, block, sizeof(block));
    char name[8000];
    memset(name, 'p', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    funcmond_buf_printf(&b, "%s", name);
    CHECK_EQ(b.failed, 1);
    CHECK_EQ(b.len, 4000);
    funcmond_buf_free(&b);
    CHECK_EQ(b.failed, 0);

    /* a size that would overflow */
    funcmond_buf_append(&b, "x", 1);
    CHECK_EQ(funcmond_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    CHECK_EQ(b.failed, 1);
    funcmond_buf_free(&b);

    /* exactly at the limit is fine, and so is the NUL of take when it fits */
    b.limit = 4001;
    funcmond_buf_append(&b, block, sizeof(block));
    char *text = funcmond_buf_take(&b, &len);
    CHECK(text != NULL);
    CHECK_EQ(len, 4000);
    free(text);
}

static void
array_growth(void)
{
    uint64_t *items = NULL;
    size_t cap = 0;

    for (size_t i = 0; i < 50000; i++) {
        CHECK_EQ(funcmond_array_reserve(&items, &cap, i + 1, sizeof(*items)), 0);
        CHECK_GE(cap, i + 1);
        items[i] = i * 3;
    }
    for (size_t i = 0; i < 50000; i++)
        if (items[i] != i * 3)
            CHECK_EQ(items[i], i * 3);
    size_t before = cap;
    CHECK_EQ(funcmond_array_reserve(&items, &cap, 10, sizeof(*items)), 0); /* already room */
    CHECK_EQ(cap, before);
    CHECK_EQ(funcmond_array_reserve(&items, &cap, SIZE_MAX / 2, sizeof(*items)), -ENOMEM);
    CHECK_EQ(cap, before); /* unchanged on failure */
    CHECK_EQ(items[49999], 49999 * 3);
    free(items);
}

int
main(void)
{
    many_small_appends();
    large_appends();
    printf_appends();
    failure_sticks();
    array_growth();
    return 0;
}
