/* actors/dedup: the window's tables as they grow and expire — what its memory gauge says,
 * and that its stripes double at spread-out fills, not all at once (every stripe doubling
 * together was a rehash of ~33 M slots on the writer at 25 M entries: docs/BENCHMARKS.md,
 * sixth pass). */
#include <stdio.h>
#include <stdlib.h>

#include "actors/dedup.h"
#include "core/snowflake.h"
#include "support/test.h"

#define SLOT 16         /* bytes of a slot: hash and id */
#define PER_STRIPE 2100 /* adds to each stripe */

/* Filled in round-robin order — every stripe holding the same count after each round, as
 * a hash spreads a large window (at 25 M entries the stripes differ by ~0.2 %) — the
 * stripes still double in different rounds: the writer's stall is spread out. */
TEST(dedup_stripes_double_one_at_a_time)
{
    dedup_t *d = dedup_new(24);
    uint64_t id = snowflake_first_of_ms(SNOWFLAKE_EPOCH_MS + 86400000ull * 300);
    size_t before = DEDUP_STRIPES * 2048 * SLOT, after = 2 * before;
    size_t first = 0, last = 0, bytes = 0, prev = 0, n = 0, got[DEDUP_STRIPES] = {0};
    char (*cmid)[DEDUP_STRIPES][12] = calloc(PER_STRIPE, sizeof(*cmid));

    ASSERT_NOT_NULL(cmid);
    ASSERT_EQ(dedup_bytes(d), 0);
    /* PER_STRIPE client_msg_ids for every stripe */
    for (size_t c = 0, full = 0; full < DEDUP_STRIPES; c++) {
        char s[12];
        snprintf(s, sizeof(s), "c%zu", c);
        unsigned k = dedup_stripe("alice", s);
        ASSERT_TRUE(k < DEDUP_STRIPES);
        if (got[k] < PER_STRIPE) {
            snprintf(cmid[got[k]][k], sizeof(cmid[0][0]), "%s", s);
            full += ++got[k] == PER_STRIPE;
        }
    }
    /* Every table grows from 64 slots by doubling, past 2,048 slots (at 1,280 to 1,532
     * entries) to 4,096; none to 8,192 (at 2,560 or more). One generation. */
    for (size_t r = 0; r < PER_STRIPE; r++) {
        for (unsigned k = 0; k < DEDUP_STRIPES; k++) {
            dedup_add(d, "alice", cmid[r][k], id + ++n);
            bytes = dedup_bytes(d);
            ASSERT_TRUE(bytes >= prev);
            if (first == 0 && bytes > before)
                first = n; /* the first stripe past 2,048 slots */
            if (last == 0 && bytes == after)
                last = n; /* the last one */
            prev = bytes;
        }
    }
    ASSERT_EQ(dedup_count(d), n);
    ASSERT_EQ(bytes, after);
    /* With one threshold (0.75) all 64 doubled in one round (within 64 adds); staggered
     * from 0.625 to 0.748 of 2,048, over ~250 rounds */
    ASSERT_TRUE(first != 0 && last != 0);
    ASSERT_TRUE(last - first > 200 * DEDUP_STRIPES);
    ASSERT_TRUE(first >= 1280 * DEDUP_STRIPES && last <= 1533 * DEDUP_STRIPES);
    /* past the window, the tables are freed */
    dedup_expire(d, snowflake_time_ms(id) + 48 * 3600000ull);
    ASSERT_EQ(dedup_count(d), 0);
    ASSERT_EQ(dedup_bytes(d), 0);
    dedup_free(d);
    free(cmid);
}
