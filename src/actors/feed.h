/**
 * feed: what a user's timeline holds (PROTOCOL.md, "Timelines and ids"), read from where
 * it is stored.
 *
 * A message goes to a user's own timeline (timeline database) when it is DIRECT, or a
 * RECALL; a group's message is stored once, in the group's conversation index (cmsgs,
 * app NUL 'G' group id), and each member keeps only when they were in the group: their
 * *spans* (gspans database, user key NUL gid → pairs of u64 BE ids, first and last
 * inclusive, the last UINT64_MAX while they are in it). A span opens at the event that
 * adds the user (CREATED, JOINED, ADDED: the event is theirs) and closes at the event that
 * removes them (LEFT, KICKED, DISMISSED: theirs too), which is exactly the set of group
 * messages the group's writer gave them when it wrote a copy to every member: a 1,000-
 * member group's message costs one index entry instead of 1,000 timeline entries.
 *
 * The feed of a user is their timeline merged with the group index over each span, in id
 * order: SYNC pages it, LoginRsp's latest_msg_id is its newest id. Spans are kept for the
 * users homed here (like the group lists), and survive the membership, so a device that
 * was away syncs what was said while its user was in the group. A user keeps at most
 * FEED_SPANS_MAX spans of one group; past that the oldest goes (a join and leave loop
 * cannot grow a record without bound).
 *
 * Schema 7 (docs/STORAGE.md): directories of older schemas wrote a group's messages into
 * every member's timeline; their migration opens a span for every current member from the
 * first id after the migration (feed_migrate), so nothing is counted twice.
 *
 * Threading: pure; any thread, inside the caller's transaction.
 */
#ifndef CIM_ACTORS_FEED_H
#define CIM_ACTORS_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

#define FEED_SPANS_MAX 64 /* spans of one user in one group */

/** @p user joins group @p gid at event @p id (write txn): a span opens, unless one is
 * open, or a span already reaches @p id (a replay). @return 0 or rc. */
int feed_join(kv_txn_t *txn, const char *app, const char *user, uint64_t gid, uint64_t id);

/** @p user leaves group @p gid at event @p id (write txn): the open span closes there.
 * @return 0 or rc. */
int feed_leave(kv_txn_t *txn, const char *app, const char *user, uint64_t gid, uint64_t id);

/**
 * Page a user's feed forwards (kv_timeline_page's contract).
 * @param[in]  after        ids strictly greater than this.
 * @param[out] ids          up to @p max ids, ascending (@p max 0: only the count).
 * @param[out] n            how many were written.
 * @param[out] total_after  how many ids the feed holds after @p after in all.
 * @return 0 or rc.
 */
int feed_page(kv_txn_t *txn, const char *app, const char *user, uint64_t after, uint64_t *ids,
              size_t max, size_t *n, uint64_t *total_after);

/** @return 1 when one of @p user's spans of group @p gid holds @p id, 0 when none does,
 * or rc. */
int feed_covers(kv_txn_t *txn, const char *app, const char *user, uint64_t gid, uint64_t id);

/** One span: group @p gid's ids from @p first to @p last (UINT64_MAX: still a member). */
typedef struct feed_span {
    uint64_t gid, first, last;
} feed_span_t;

/** Every span of @p user, by group, oldest first (cimdump). @param[out] out  mem_free it.
 * @return 0 or rc. */
int feed_spans(kv_txn_t *txn, const char *app, const char *user, feed_span_t **out, size_t *n);

/** How many ids a user's feed holds. @return 0 or rc. */
int feed_count(kv_txn_t *txn, const char *app, const char *user, uint64_t *out);

/** The newest id of a user's feed, 0 when empty. @return 0 or rc. */
int feed_last(kv_txn_t *txn, const char *app, const char *user, uint64_t *out);

/** @return 0 when message @p id is in the user's feed, RC_ENOTFOUND, or rc. Reads the
 * message's record for its conversation. */
int feed_has(kv_txn_t *txn, const char *app, const char *user, uint64_t id);

/** feed_has for a message known to be of conversation @p conv_type with @p to (a group's
 * id for a group): no record read. */
int feed_has_in(kv_txn_t *txn, const char *app, const char *user, uint64_t id, int conv_type,
                const char *to);

/** @return 1 when the user's feed holds an id greater than @p id (a message that came late
 * would land behind it), 0 when not, or rc. Stops at the first such id. */
int feed_newer(kv_txn_t *txn, const char *app, const char *user, uint64_t id);

/**
 * Migration to schema 7 (write txn): a span from @p from for every membership of a user
 * homed here (the group lists, ugroups), whose older messages their timelines hold.
 * @param[out] n  spans opened. @return 0 or rc.
 */
int feed_migrate(kv_txn_t *txn, uint64_t from, uint64_t *n);

#endif
