/**
 * snowflake: 64-bit message ids, PROTOCOL.md §6.
 *
 * Layout, high to low: 1 zero bit, 41 bits of milliseconds since SNOWFLAKE_EPOCH_MS
 * (2026-01-01T00:00:00Z), 10 bits of node id, 12 bits of sequence.
 *
 * Ids from one generator are strictly increasing, whatever the clock does: when the clock
 * steps back the generator keeps its last millisecond and counts on; when the 4096
 * sequence numbers of a millisecond are used up it borrows the next millisecond (ids run
 * a little ahead of the clock, and catch up as soon as the real clock passes them). Ids
 * never repeat across restarts when the generator is seeded with the largest id already
 * stored (snowflake_init's @p floor).
 *
 * Threading: a snowflake_t belongs to one thread (the store actor). The decode helpers
 * are pure.
 */
#ifndef CIM_CORE_SNOWFLAKE_H
#define CIM_CORE_SNOWFLAKE_H

#include <stdint.h>

#define SNOWFLAKE_EPOCH_MS 1767225600000ULL /**< 2026-01-01T00:00:00Z in Unix ms */
#define SNOWFLAKE_NODE_BITS 10
#define SNOWFLAKE_SEQ_BITS 12
#define SNOWFLAKE_NODE_MAX ((1u << SNOWFLAKE_NODE_BITS) - 1)
#define SNOWFLAKE_SEQ_MAX ((1u << SNOWFLAKE_SEQ_BITS) - 1)

typedef struct snowflake {
    uint64_t last_ms; /* ms since the epoch of the last id issued */
    uint32_t seq;     /* its sequence number */
    uint32_t node;    /* 0..SNOWFLAKE_NODE_MAX */
} snowflake_t;

/**
 * Start a generator for @p node whose ids are all greater than @p floor (0 for none).
 * @p floor may have been issued under another node id (node_id changed across a
 * restart): the generator then starts in the floor's millisecond (larger node) or the one
 * after it (smaller node), whatever the clock says.
 * @return 0, or RC_EINVAL when @p node > SNOWFLAKE_NODE_MAX.
 */
int snowflake_init(snowflake_t *sf, uint32_t node, uint64_t floor);

/**
 * Issue the next id.
 * @param[in] now_ms  the current Unix time in milliseconds (the caller's clock; tests pass
 *                    any value). Times before the epoch count as the epoch.
 * @return an id strictly greater than every id this generator issued before (and than its
 *         floor). Its time is max(now_ms, the last id's time), plus one ms per 4096 ids
 *         issued within one ms. The 41 time bits last until 2095-09; the generator does
 *         not check for their end.
 */
uint64_t snowflake_next(snowflake_t *sf, uint64_t now_ms);

/** @return the last id @p sf issued (its position; its floor before the first issue). */
uint64_t snowflake_last(const snowflake_t *sf);

/**
 * @return the smallest id of Unix millisecond @p unix_ms (node 0, sequence 0), 0 for a
 *         time at or before the epoch: ids >= it are of that time or later.
 */
uint64_t snowflake_first_of_ms(uint64_t unix_ms);

/** @return the Unix time in ms encoded in @p id. */
uint64_t snowflake_time_ms(uint64_t id);

/** Split @p id into Unix ms, node and sequence. Any out-param may be NULL. */
void snowflake_decode(uint64_t id, uint64_t *unix_ms, uint32_t *node, uint32_t *seq);

/** @return the current Unix time in milliseconds (CLOCK_REALTIME). */
uint64_t snowflake_now_ms(void);

#endif
