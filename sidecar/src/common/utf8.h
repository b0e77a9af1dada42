/*
 * utf8.h - funcmond's one UTF-8 decoder.
 *
 * Names, services, packages and config strings come from clients and files, and every
 * writer of them (JSON, Prometheus text, the YAML of --check-config) must know where a
 * valid character ends to copy it as is and escape or replace everything else. Valid is
 * Unicode's well-formed UTF-8 (table 3-7): the shortest form, no surrogates, nothing above
 * U+10FFFF.
 */
#ifndef FUNCMOND_UTF8_H
#define FUNCMOND_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the character at s (len > 0 bytes left) into *cp. Returns its length in bytes,
 * or 0 when s does not start with a valid character (*cp is then not written). */
static inline size_t
funcmond_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n;
    uint32_t v, least;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        n = 2, v = s[0] & 0x1f, least = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3, v = s[0] & 0x0f, least = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4, v = s[0] & 0x07, least = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < least || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* The length of the valid character at s (len > 0 bytes left), 0 if it does not start one. */
static inline size_t
funcmond_utf8_len(const unsigned char *s, size_t len)
{
    uint32_t cp;
    return funcmond_utf8_decode(s, len, &cp);
}

/* Whether the len bytes at s are all valid characters. */
static inline int
funcmond_utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if ((n = funcmond_utf8_len((const unsigned char *)s + i, len - i)) == 0)
            return 0;
    return 1;
}

#endif
