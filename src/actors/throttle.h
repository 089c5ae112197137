/**
 * throttle: failed logins per peer address, so that guessing tokens costs the guesser.
 *
 * Design: a fixed window per address. Each failed login (throttle_fail) counts against
 * its address; once an address has `max` failures within `window_s` seconds of its first
 * one, throttle_blocked says so until that window ends, and the session answers its LOGIN
 * with RATE_LIMITED without looking at the token (so a blocked guesser learns nothing).
 * Successful logins do not reset the count: a guesser with one valid token cannot launder
 * its failures.
 *
 * Memory is bounded whatever clients do: the table has THROTTLE_SLOTS entries in all,
 * split in stripes; a stripe that is full replaces its entry whose window is oldest (an
 * expired one first), so a flood of new addresses can make the throttle forget, never
 * grow.
 *
 * Threading: every function is thread-safe. Each stripe has its own mutex, held for a few
 * comparisons; the table is touched only on the login path, never per message.
 */
#ifndef CIM_ACTORS_THROTTLE_H
#define CIM_ACTORS_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/acceptor.h"

#define THROTTLE_SLOTS 16384 /**< addresses remembered in all */

typedef struct throttle throttle_t;

/**
 * Create a throttle allowing @p max failures per @p window_s seconds per address.
 * @p max 0 disables it: throttle_blocked is then always false and nothing is kept.
 * @return the throttle (owned; throttle_free). Aborts on out of memory, like mem_alloc.
 */
throttle_t *throttle_new(uint32_t max, uint32_t window_s);

/** Free @p t. NULL is a no-op. No other thread may use it any more. */
void throttle_free(throttle_t *t);

/**
 * Is @p peer over its failure budget at @p now_s (seconds, any monotonic clock)?
 * @param[out] retry_s  when blocked: seconds until the window ends (at least 1).
 */
bool throttle_blocked(throttle_t *t, const peer_addr_t *peer, uint64_t now_s,
                      uint32_t *retry_s);

/**
 * Count one failed login from @p peer at @p now_s.
 * @return the failures counted in the address's current window (1 for the first).
 */
uint32_t throttle_fail(throttle_t *t, const peer_addr_t *peer, uint64_t now_s);

#endif
