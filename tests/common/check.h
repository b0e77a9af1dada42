/*
 * check.h - assertions for the funcmon tests.
 *
 * Each failed check prints the expression, both sides and the place, then exits 1, so a
 * test fails loudly with what it saw. SKIP exits 77, which ctest reports as skipped; a
 * test skips only for a reason it prints.
 */
#ifndef FUNCMON_TEST_CHECK_H
#define FUNCMON_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                                               \
            exit(1);                                                                                                               \
        }                                                                                                                          \
    } while (0)

#define CHECK_OP(a, op, b)                                                                                                         \
    do {                                                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                                                            \
        if (!(check_a_ op check_b_)) {                                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s %s %s) failed: %lld %s %lld\n", __FILE__, __LINE__, #a, #op, #b, check_a_, #op,       \
                    check_b_);                                                                                                     \
            exit(1);                                                                                                               \
        }                                                                                                                          \
    } while (0)

#define CHECK_EQ(a, b) CHECK_OP(a, ==, b)
#define CHECK_NE(a, b) CHECK_OP(a, !=, b)
#define CHECK_LT(a, b) CHECK_OP(a, <, b)
#define CHECK_LE(a, b) CHECK_OP(a, <=, b)
#define CHECK_GT(a, b) CHECK_OP(a, >, b)
#define CHECK_GE(a, b) CHECK_OP(a, >=, b)

#define CHECK_STREQ(a, b)                                                                                                          \
    do {                                                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                                                               \
        if (check_a_ == NULL || check_b_ == NULL || strcmp(check_a_, check_b_) != 0) {                                             \
            fprintf(stderr, "%s:%d: CHECK(%s == %s) failed: \"%s\" vs \"%s\"\n", __FILE__, __LINE__, #a, #b,                       \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                                               \
            exit(1);                                                                                                               \
        }                                                                                                                          \
    } while (0)

#define SKIP(...)                                                                                                                  \
    do {                                                                                                                           \
        fprintf(stderr, "SKIP: " __VA_ARGS__);                                                                                     \
        fputc('\n', stderr);                                                                                                       \
        exit(77);                                                                                                                  \
    } while (0)

#endif
