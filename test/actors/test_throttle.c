/* throttle: failed logins per address in a fixed window, bounded memory, thread safety. */
#include "actors/throttle.h"

#include <pthread.h>

#include "support/test.h"

static peer_addr_t v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    peer_addr_t p;
    memset(&p, 0, sizeof(p));
    p.family = 4;
    p.ip[0] = a;
    p.ip[1] = b;
    p.ip[2] = c;
    p.ip[3] = d;
    return p;
}

TEST(throttle_window)
{
    throttle_t *t = throttle_new(3, 60);
    peer_addr_t a = v4(10, 0, 0, 1), b = v4(10, 0, 0, 2);
    uint32_t retry = 0;

    ASSERT_TRUE(!throttle_blocked(t, &a, 100, &retry));
    ASSERT_EQ(throttle_fail(t, &a, 100), 1);
    ASSERT_EQ(throttle_fail(t, &a, 110), 2);
    ASSERT_TRUE(!throttle_blocked(t, &a, 110, &retry));
    ASSERT_EQ(throttle_fail(t, &a, 120), 3);
    ASSERT_TRUE(throttle_blocked(t, &a, 120, &retry));
    ASSERT_EQ(retry, 40); /* the window began at 100 */
    ASSERT_TRUE(!throttle_blocked(t, &b, 120, &retry)); /* another address */
    ASSERT_TRUE(throttle_blocked(t, &a, 159, &retry));
    ASSERT_EQ(retry, 1);
    ASSERT_TRUE(!throttle_blocked(t, &a, 160, &retry)); /* the window is over */
    ASSERT_EQ(throttle_fail(t, &a, 160), 1);            /* a new one begins */
    throttle_free(t);
}

TEST(throttle_off_and_null)
{
    throttle_t *t = throttle_new(0, 60);
    peer_addr_t a = v4(10, 0, 0, 1);
    uint32_t retry = 0;

    for (int i = 0; i < 100; i++)
        (void)throttle_fail(t, &a, 100);
    ASSERT_TRUE(!throttle_blocked(t, &a, 100, &retry));
    throttle_free(t);
    ASSERT_TRUE(!throttle_blocked(NULL, &a, 100, &retry));
    ASSERT_EQ(throttle_fail(NULL, &a, 100), 0);
    throttle_free(NULL);
}

TEST(throttle_v4_v6_distinct)
{
    throttle_t *t = throttle_new(1, 60);
    peer_addr_t a = v4(127, 0, 0, 1), b;
    uint32_t retry;

    memset(&b, 0, sizeof(b));
    b.family = 6;
    b.ip[15] = 1; /* ::1 */
    (void)throttle_fail(t, &a, 5);
    ASSERT_TRUE(throttle_blocked(t, &a, 5, &retry));
    ASSERT_TRUE(!throttle_blocked(t, &b, 5, &retry));
    throttle_free(t);
}

/* A flood of addresses replaces the oldest windows: the table never grows, and a recent
 * offender is still remembered while the old ones are forgotten first. */
TEST(throttle_bounded)
{
    throttle_t *t = throttle_new(2, 3600);
    peer_addr_t bad = v4(192, 168, 1, 1);
    uint32_t retry;

    for (uint32_t i = 0; i < 4 * THROTTLE_SLOTS; i++) {
        peer_addr_t p = v4(10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i);
        (void)throttle_fail(t, &p, 10);
    }
    (void)throttle_fail(t, &bad, 20);
    (void)throttle_fail(t, &bad, 20);
    ASSERT_TRUE(throttle_blocked(t, &bad, 21, &retry));
    for (uint32_t i = 0; i < THROTTLE_SLOTS / 64; i++) { /* a little more flood, later */
        peer_addr_t p = v4(11, 0, (uint8_t)(i >> 8), (uint8_t)i);
        (void)throttle_fail(t, &p, 15);
    }
    ASSERT_TRUE(throttle_blocked(t, &bad, 21, &retry));
    throttle_free(t);
}

typedef struct arg {
    throttle_t *t;
    uint8_t id;
} arg_t;

static void *hammer(void *p)
{
    arg_t *a = p;
    uint32_t retry;
    for (int i = 0; i < 20000; i++) {
        peer_addr_t x = v4(10, a->id, (uint8_t)(i >> 8), (uint8_t)i);
        (void)throttle_fail(a->t, &x, 1 + (uint64_t)i / 1000);
        (void)throttle_blocked(a->t, &x, 1 + (uint64_t)i / 1000, &retry);
    }
    return NULL;
}

/* Workers call it concurrently (run under TSan with the other threaded tests). */
TEST(throttle_threads)
{
    throttle_t *t = throttle_new(5, 10);
    pthread_t th[4];
    arg_t args[4];

    for (int i = 0; i < 4; i++) {
        args[i].t = t;
        args[i].id = (uint8_t)i;
        ASSERT_EQ(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    throttle_free(t);
}
