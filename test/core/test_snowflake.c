/* snowflake: strictly increasing ids whatever the clock does, and the bit layout. */
#include "core/snowflake.h"

#include "support/test.h"

#define T0 (SNOWFLAKE_EPOCH_MS + 86400000ULL) /* one day after the epoch */

TEST(snowflake_epoch)
{
    /* 2026-01-01T00:00:00Z, independently: 20454 days after 1970-01-01. */
    ASSERT_U64_EQ(SNOWFLAKE_EPOCH_MS, 20454ULL * 86400ULL * 1000ULL);

    snowflake_t sf;
    ASSERT_OK(snowflake_init(&sf, 0, 0));
    /* At the epoch itself the time bits are 0; before it counts as the epoch. */
    uint64_t id = snowflake_next(&sf, SNOWFLAKE_EPOCH_MS);
    ASSERT_U64_EQ(id >> 22, 0);
    ASSERT_U64_EQ(snowflake_time_ms(id), SNOWFLAKE_EPOCH_MS);
    uint64_t id2 = snowflake_next(&sf, 1000); /* 1970 */
    ASSERT_TRUE(id2 > id);
    ASSERT_U64_EQ(snowflake_time_ms(id2), SNOWFLAKE_EPOCH_MS);
    /* One millisecond later starts a new sequence. */
    uint64_t id3 = snowflake_next(&sf, SNOWFLAKE_EPOCH_MS + 1);
    ASSERT_U64_EQ(id3, 1ULL << 22);
}

/* snowflake_last is the last id issued; snowflake_first_of_ms the lowest id of a ms. */
TEST(snowflake_last_and_first_of_ms)
{
    snowflake_t sf;
    ASSERT_OK(snowflake_init(&sf, 5, 0));
    uint64_t a = snowflake_next(&sf, T0), b = snowflake_next(&sf, T0);
    ASSERT_U64_EQ(snowflake_last(&sf), b);
    ASSERT_TRUE(b > a);
    ASSERT_U64_EQ(snowflake_first_of_ms(T0), 86400000ULL << 22);
    ASSERT_TRUE(snowflake_first_of_ms(T0) <= a);
    ASSERT_TRUE(snowflake_first_of_ms(T0 + 1) > b);
    ASSERT_U64_EQ(snowflake_first_of_ms(SNOWFLAKE_EPOCH_MS), 0);
    ASSERT_U64_EQ(snowflake_first_of_ms(1000), 0); /* before the epoch */
}

TEST(snowflake_layout_and_decode)
{
    snowflake_t sf;
    uint64_t ms;
    uint32_t node, seq;

    ASSERT_RC(snowflake_init(&sf, SNOWFLAKE_NODE_MAX + 1, 0), RC_EINVAL);
    ASSERT_OK(snowflake_init(&sf, 777, 0));
    uint64_t id = snowflake_next(&sf, T0 + 5);
    /* Hand-built: 0 | 41 bits ms | 10 bits node | 12 bits seq. */
    ASSERT_U64_EQ(id, ((T0 + 5 - SNOWFLAKE_EPOCH_MS) << 22) | (777ULL << 12) | 0);
    ASSERT_U64_EQ(id >> 63, 0);
    snowflake_decode(id, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, T0 + 5);
    ASSERT_EQ(node, 777);
    ASSERT_EQ(seq, 0);
    id = snowflake_next(&sf, T0 + 5);
    snowflake_decode(id, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, T0 + 5);
    ASSERT_EQ(node, 777);
    ASSERT_EQ(seq, 1);
    snowflake_decode(id, NULL, NULL, NULL); /* every out-param may be NULL */
    snowflake_decode(id, NULL, &node, NULL);
    ASSERT_EQ(node, 777);

    /* Round trip of the extremes. */
    uint64_t big =
        (((1ULL << 41) - 1) << 22) | ((uint64_t)SNOWFLAKE_NODE_MAX << 12) | SNOWFLAKE_SEQ_MAX;
    snowflake_decode(big, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, SNOWFLAKE_EPOCH_MS + (1ULL << 41) - 1);
    ASSERT_EQ(node, SNOWFLAKE_NODE_MAX);
    ASSERT_EQ(seq, SNOWFLAKE_SEQ_MAX);
    ASSERT_U64_EQ(snowflake_time_ms(big), ms);
}

TEST(snowflake_monotonic_real_clock)
{
    snowflake_t sf;
    uint64_t prev = 0, start = snowflake_now_ms();

    ASSERT_TRUE(start > SNOWFLAKE_EPOCH_MS);
    ASSERT_OK(snowflake_init(&sf, 3, 0));
    for (int i = 0; i < 1000000; i++) {
        uint64_t id = snowflake_next(&sf, snowflake_now_ms());
        if (id <= prev)
            TEST_FAIL_("id %d: %" PRIu64 " <= %" PRIu64, i, id, prev);
        prev = id;
    }
    uint32_t node;
    uint64_t ms;
    snowflake_decode(prev, &ms, &node, NULL);
    ASSERT_EQ(node, 3);
    /* Ids run ahead of the clock by at most (ids / 4096) ms. */
    ASSERT_TRUE(ms >= start);
    ASSERT_TRUE(ms <= snowflake_now_ms() + 1000000 / 4096 + 1);
}

TEST(snowflake_clock_steps_back)
{
    snowflake_t sf;
    uint64_t ms;
    uint32_t node, seq;

    ASSERT_OK(snowflake_init(&sf, 9, 0));
    uint64_t a = snowflake_next(&sf, T0 + 10000);
    uint64_t b = snowflake_next(&sf, T0 + 10000);
    /* The clock jumps back 5 s: the generator keeps its millisecond and counts on. */
    uint64_t prev = b;
    for (int i = 0; i < 100; i++) {
        uint64_t id = snowflake_next(&sf, T0 + 5000 + (uint64_t)i);
        ASSERT_TRUE(id > prev);
        prev = id;
    }
    ASSERT_TRUE(a < b);
    snowflake_decode(prev, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, T0 + 10000);
    ASSERT_EQ(node, 9);
    ASSERT_EQ(seq, 101);
    /* Once the clock passes the last millisecond again, a fresh sequence starts. */
    uint64_t c = snowflake_next(&sf, T0 + 10001);
    ASSERT_TRUE(c > prev);
    snowflake_decode(c, &ms, NULL, &seq);
    ASSERT_U64_EQ(ms, T0 + 10001);
    ASSERT_EQ(seq, 0);
    /* Back a long way (an hour), then forward. */
    uint64_t d = snowflake_next(&sf, T0 - 3600000);
    ASSERT_TRUE(d > c);
    uint64_t e = snowflake_next(&sf, T0 + 20000);
    ASSERT_TRUE(e > d);
}

TEST(snowflake_sequence_overflow)
{
    snowflake_t sf;
    uint64_t prev = 0, ms;
    uint32_t node, seq;
    const int n = 3 * 4096 + 100;

    ASSERT_OK(snowflake_init(&sf, SNOWFLAKE_NODE_MAX, 0));
    for (int i = 0; i < n; i++) {
        uint64_t id = snowflake_next(&sf, T0); /* a frozen clock */
        if (id <= prev)
            TEST_FAIL_("id %d: %" PRIu64 " <= %" PRIu64, i, id, prev);
        snowflake_decode(id, &ms, &node, &seq);
        /* Sequence numbers run 0..4095, then the next millisecond is borrowed. */
        ASSERT_U64_EQ(ms, T0 + (uint64_t)(i / 4096));
        ASSERT_EQ(node, SNOWFLAKE_NODE_MAX);
        ASSERT_EQ(seq, i % 4096);
        prev = id;
    }
    /* The real clock catching up with the borrowed time continues the same run... */
    uint64_t id = snowflake_next(&sf, T0 + 3);
    ASSERT_TRUE(id > prev);
    snowflake_decode(id, &ms, NULL, &seq);
    ASSERT_U64_EQ(ms, T0 + 3);
    ASSERT_EQ(seq, 100);
    /* ...and passing it starts over at sequence 0. */
    id = snowflake_next(&sf, T0 + 4);
    snowflake_decode(id, &ms, NULL, &seq);
    ASSERT_U64_EQ(ms, T0 + 4);
    ASSERT_EQ(seq, 0);
}

TEST(snowflake_floor_seeding)
{
    snowflake_t sf;
    uint64_t ms;
    uint32_t node, seq;

    /* A restart with the clock behind the largest stored id (same node). */
    ASSERT_OK(snowflake_init(&sf, 5, 0));
    uint64_t floor = 0;
    for (int i = 0; i < 10; i++)
        floor = snowflake_next(&sf, T0 + 60000);
    ASSERT_OK(snowflake_init(&sf, 5, floor));
    uint64_t id = snowflake_next(&sf, T0);
    ASSERT_TRUE(id > floor);
    ASSERT_U64_EQ(id, floor + 1);
    /* Clock ahead of the floor: a normal id. */
    ASSERT_OK(snowflake_init(&sf, 5, floor));
    id = snowflake_next(&sf, T0 + 70000);
    ASSERT_TRUE(id > floor);
    snowflake_decode(id, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, T0 + 70000);
    ASSERT_EQ(seq, 0);
    /* Same millisecond as the floor, clock frozen there. */
    ASSERT_OK(snowflake_init(&sf, 5, floor));
    id = snowflake_next(&sf, T0 + 60000);
    ASSERT_U64_EQ(id, floor + 1);

    /* The floor's sequence was the last of its millisecond: borrow the next. */
    uint64_t full = ((T0 + 100 - SNOWFLAKE_EPOCH_MS) << 22) | (5ULL << 12) | SNOWFLAKE_SEQ_MAX;
    ASSERT_OK(snowflake_init(&sf, 5, full));
    id = snowflake_next(&sf, T0);
    ASSERT_TRUE(id > full);
    snowflake_decode(id, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, T0 + 101);
    ASSERT_EQ(seq, 0);

    /* The node id changed since the floor was issued: still above it. */
    uint64_t f7 = ((T0 + 100 - SNOWFLAKE_EPOCH_MS) << 22) | (7ULL << 12) | 42;
    ASSERT_OK(snowflake_init(&sf, 3, f7)); /* smaller node: needs a later ms */
    id = snowflake_next(&sf, T0);
    ASSERT_TRUE(id > f7);
    snowflake_decode(id, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, T0 + 101);
    ASSERT_EQ(node, 3);
    ASSERT_OK(snowflake_init(&sf, 9, f7)); /* larger node: same ms will do */
    id = snowflake_next(&sf, T0);
    ASSERT_TRUE(id > f7);
    snowflake_decode(id, &ms, &node, &seq);
    ASSERT_U64_EQ(ms, T0 + 100);
    ASSERT_EQ(node, 9);

    /* Many ids after seeding, with a clock that never catches up: all above the floor. */
    ASSERT_OK(snowflake_init(&sf, 5, floor));
    uint64_t prev = floor;
    for (int i = 0; i < 10000; i++) {
        id = snowflake_next(&sf, T0);
        ASSERT_TRUE(id > prev);
        prev = id;
    }
}
