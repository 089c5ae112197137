/**
 * The test runner's registration and assertions.
 *
 * TEST(name) { ... } defines and registers a test (a constructor adds it to the runner's
 * table, so no central list has to be edited; the name is unique across the binary and
 * prefixed with its module, e.g. frame_one_byte_at_a_time). TEST_TIMEOUT(name, seconds)
 * sets a longer limit than the default 5 s for slow integration tests.
 *
 * The runner (test/support/runner.c) forks every test into its own child with a timeout,
 * runs up to -j children at once, and ends with the plain line "N passed, N failed".
 * `run_tests PATTERN...` runs the tests whose names match any fnmatch(3) pattern.
 *
 * ASSERT_* print both operands and the location, then abort(); they are never compiled
 * out and are used only in tests.
 */
#ifndef CIM_TEST_H
#define CIM_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rc.h"

typedef void (*test_fn)(void);

/** Add a test to the table (called by the TEST macros from constructors). */
void test_register(const char *name, test_fn fn, unsigned timeout_s);

#define TEST_TIMEOUT(name, secs)                                                           \
    static void test_##name(void);                                                         \
    __attribute__((constructor)) static void register_##name(void)                         \
    {                                                                                      \
        test_register(#name, test_##name, (secs));                                         \
    }                                                                                      \
    static void test_##name(void)

#define TEST(name) TEST_TIMEOUT(name, 5)

#define TEST_FAIL_(...)                                                                    \
    do {                                                                                   \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                    \
        fprintf(stderr, __VA_ARGS__);                                                      \
        fprintf(stderr, "\n");                                                             \
        fflush(stderr);                                                                    \
        abort();                                                                           \
    } while (0)

#define ASSERT_TRUE(c)                                                                     \
    do {                                                                                   \
        if (!(c))                                                                          \
            TEST_FAIL_("assertion failed: %s", #c);                                        \
    } while (0)

#define ASSERT_EQ(a, b)                                                                    \
    do {                                                                                   \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                   \
        if (a_ != b_)                                                                      \
            TEST_FAIL_("%s == %s failed: %jd != %jd", #a, #b, a_, b_);                     \
    } while (0)

#define ASSERT_NE(a, b)                                                                    \
    do {                                                                                   \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                   \
        if (a_ == b_)                                                                      \
            TEST_FAIL_("%s != %s failed: both %jd", #a, #b, a_);                           \
    } while (0)

#define ASSERT_U64_EQ(a, b)                                                                \
    do {                                                                                   \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                   \
        if (a_ != b_)                                                                      \
            TEST_FAIL_("%s == %s failed: %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);        \
    } while (0)

#define ASSERT_LT(a, b)                                                                    \
    do {                                                                                   \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                   \
        if (!(a_ < b_))                                                                    \
            TEST_FAIL_("%s < %s failed: %jd >= %jd", #a, #b, a_, b_);                      \
    } while (0)

#define ASSERT_LE(a, b)                                                                    \
    do {                                                                                   \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                   \
        if (!(a_ <= b_))                                                                   \
            TEST_FAIL_("%s <= %s failed: %jd > %jd", #a, #b, a_, b_);                      \
    } while (0)

#define ASSERT_OK(expr)                                                                    \
    do {                                                                                   \
        int rc_ = (expr);                                                                  \
        if (rc_ != 0)                                                                      \
            TEST_FAIL_("%s failed: %d (%s)", #expr, rc_, rc_str(rc_));                     \
    } while (0)

#define ASSERT_RC(expr, want)                                                              \
    do {                                                                                   \
        int rc_ = (expr), w_ = (want);                                                     \
        if (rc_ != w_)                                                                     \
            TEST_FAIL_("%s: got %d (%s), want %d (%s)", #expr, rc_, rc_str(rc_), w_,       \
                       rc_str(w_));                                                        \
    } while (0)

#define ASSERT_NULL(p)                                                                     \
    do {                                                                                   \
        if ((p) != NULL)                                                                   \
            TEST_FAIL_("%s is not NULL", #p);                                              \
    } while (0)

#define ASSERT_NOT_NULL(p)                                                                 \
    do {                                                                                   \
        if ((p) == NULL)                                                                   \
            TEST_FAIL_("%s is NULL", #p);                                                  \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                 \
    do {                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                   \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                               \
            TEST_FAIL_("%s == %s failed: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",    \
                       b_ ? b_ : "(null)");                                                \
    } while (0)

#define ASSERT_MEMEQ(a, b, n)                                                              \
    do {                                                                                   \
        if (memcmp((a), (b), (n)) != 0)                                                    \
            TEST_FAIL_("%s and %s differ in their first %zu bytes", #a, #b, (size_t)(n));  \
    } while (0)

#endif
