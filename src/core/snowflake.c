#include "core/snowflake.h"

#include <time.h>

#include "core/rc.h"

#define TIME_SHIFT (SNOWFLAKE_NODE_BITS + SNOWFLAKE_SEQ_BITS)

/* The generator state (last_ms, seq) read as one counter, ms * 4096 + seq: the position of
 * the last id issued. Counting on by one past seq 4095 carries into the next millisecond,
 * which is exactly the "borrow the next millisecond" rule, and a clock that stepped back
 * simply counts on from the last position. For a fixed node, ids grow with the position. */
static uint64_t pos_get(const snowflake_t *sf)
{
    return (sf->last_ms << SNOWFLAKE_SEQ_BITS) | sf->seq;
}

static void pos_set(snowflake_t *sf, uint64_t pos)
{
    sf->last_ms = pos >> SNOWFLAKE_SEQ_BITS;
    sf->seq = (uint32_t)(pos & SNOWFLAKE_SEQ_MAX);
}

int snowflake_init(snowflake_t *sf, uint32_t node, uint64_t floor)
{
    uint64_t fms, fpos, first;
    uint32_t fnode;

    if (node > SNOWFLAKE_NODE_MAX)
        return RC_EINVAL;
    sf->node = node;
    pos_set(sf, 0);
    if (floor == 0)
        return 0;

    /* Find the first position whose id (with our node) is above the floor, then pretend
     * the position just before it was issued last. The floor may come from another node
     * id (the operator changed node_id): the node bits sit between time and sequence, so
     * within the floor's millisecond a larger node beats every sequence number of the
     * floor's node, a smaller one none. */
    fms = floor >> TIME_SHIFT;
    fnode = (uint32_t)(floor >> SNOWFLAKE_SEQ_BITS) & SNOWFLAKE_NODE_MAX;
    fpos = (fms << SNOWFLAKE_SEQ_BITS) | (floor & SNOWFLAKE_SEQ_MAX);
    if (node > fnode)
        first = fms << SNOWFLAKE_SEQ_BITS;
    else if (node == fnode)
        first = fpos + 1;
    else
        first = (fms + 1) << SNOWFLAKE_SEQ_BITS;
    pos_set(sf, first > 0 ? first - 1 : 0);
    return 0;
}

uint64_t snowflake_next(snowflake_t *sf, uint64_t now_ms)
{
    uint64_t ms = now_ms > SNOWFLAKE_EPOCH_MS ? now_ms - SNOWFLAKE_EPOCH_MS : 0;

    /* A new millisecond starts at sequence 0; anything else (same ms, clock stepped back,
     * or ids running ahead after a burst) counts on from the last position. The 41 time
     * bits last until 2095; the generator does not guard against their overflow. */
    if (ms > sf->last_ms)
        pos_set(sf, ms << SNOWFLAKE_SEQ_BITS);
    else
        pos_set(sf, pos_get(sf) + 1);
    return snowflake_last(sf);
}

uint64_t snowflake_last(const snowflake_t *sf)
{
    return (sf->last_ms << TIME_SHIFT) | ((uint64_t)sf->node << SNOWFLAKE_SEQ_BITS) | sf->seq;
}

uint64_t snowflake_first_of_ms(uint64_t unix_ms)
{
    return unix_ms > SNOWFLAKE_EPOCH_MS ? (unix_ms - SNOWFLAKE_EPOCH_MS) << TIME_SHIFT : 0;
}

uint64_t snowflake_time_ms(uint64_t id)
{
    return (id >> TIME_SHIFT) + SNOWFLAKE_EPOCH_MS;
}

void snowflake_decode(uint64_t id, uint64_t *unix_ms, uint32_t *node, uint32_t *seq)
{
    if (unix_ms != NULL)
        *unix_ms = snowflake_time_ms(id);
    if (node != NULL)
        *node = (uint32_t)(id >> SNOWFLAKE_SEQ_BITS) & SNOWFLAKE_NODE_MAX;
    if (seq != NULL)
        *seq = (uint32_t)id & SNOWFLAKE_SEQ_MAX;
}

uint64_t snowflake_now_ms(void)
{
    struct timespec ts;

    /* CLOCK_REALTIME cannot fail with a valid clock id and pointer; the generator copes
     * with whatever time it is given anyway. */
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
