/* actors/dedup: the window's table, through its candidates — every id added is found
 * while tables grow (a growth moves slots a few per add), across generations, and only
 * once; a generation past the window is gone. */
#include <stdio.h>
#include <string.h>

#include "actors/dedup.h"
#include "core/snowflake.h"
#include "support/test.h"

#define HOUR_MS 3600000ULL

/* An id at unix time @p ms, unique by @p seq. */
static uint64_t id_at(uint64_t ms, uint64_t seq)
{
    ASSERT_TRUE(ms > SNOWFLAKE_EPOCH_MS && seq <= 0x3fffff); /* a time in the id, seq below it */
    return snowflake_first_of_ms(ms) + seq;
}

static void check_one(dedup_t *d, const char *user, uint64_t want)
{
    uint64_t cand[16];
    char cmid[32];
    size_t n;

    snprintf(cmid, sizeof(cmid), "c-%llu", (unsigned long long)want);
    n = dedup_candidates(d, user, cmid, false, cand, 16);
    ASSERT_EQ(n, 1); /* found, and once: a moved slot is not counted twice */
    ASSERT_U64_EQ(cand[0], want);
}

static void add_one(dedup_t *d, const char *user, uint64_t id)
{
    char cmid[32];

    snprintf(cmid, sizeof(cmid), "c-%llu", (unsigned long long)id);
    dedup_add(d, user, cmid, id);
}

TEST(dedup_every_id_found_while_tables_grow)
{
    enum { N = 300000 }; /* each stripe's table grows many times, moves overlapping adds */
    dedup_t *d = dedup_new(24);
    uint64_t base = SNOWFLAKE_EPOCH_MS + 100 * HOUR_MS;
    char user[16];

    for (uint64_t i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "u%llu", (unsigned long long)(i % 1000));
        add_one(d, user, id_at(base, i));
        /* the newest and one far back, at every step (a move in progress included) */
        check_one(d, user, id_at(base, i));
        if (i >= 997) {
            snprintf(user, sizeof(user), "u%llu", (unsigned long long)((i - 997) % 1000));
            check_one(d, user, id_at(base, i - 997));
        }
    }
    ASSERT_EQ(dedup_count(d), N);
    for (uint64_t i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "u%llu", (unsigned long long)(i % 1000));
        check_one(d, user, id_at(base, i));
    }
    dedup_free(d);
}

TEST(dedup_generations_move_and_expire)
{
    enum { N = 50000 };
    dedup_t *d = dedup_new(24); /* spans of 6 h */
    uint64_t t0 = SNOWFLAKE_EPOCH_MS + 102 * HOUR_MS, t1 = t0 + 7 * HOUR_MS;

    /* a generation grown late in its span keeps moving while the next one is added to */
    for (uint64_t i = 0; i < N; i++)
        add_one(d, "a", id_at(t0, i));
    for (uint64_t i = 0; i < N; i++)
        add_one(d, "b", id_at(t1, i));
    for (uint64_t i = 0; i < N; i += 7) {
        check_one(d, "a", id_at(t0, i));
        check_one(d, "b", id_at(t1, i));
    }
    ASSERT_EQ(dedup_count(d), 2 * N);
    /* past the window (5 spans after t0's): t0's generation is dropped whole */
    dedup_expire(d, t0 + 31 * HOUR_MS);
    ASSERT_EQ(dedup_count(d), N);
    {
        uint64_t cand[16];
        char cmid[32];
        snprintf(cmid, sizeof(cmid), "c-%llu", (unsigned long long)id_at(t0, 0));
        ASSERT_EQ(dedup_candidates(d, "a", cmid, false, cand, 16), 0);
    }
    check_one(d, "b", id_at(t1, 0));
    dedup_free(d);
}
