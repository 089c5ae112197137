/**
 * dedup: the deduplication window of SEND (PROTOCOL.md §6, Send): which client_msg_id a
 * user has already had stored, and under which msg_id, for at least `dedup_window_h` hours.
 *
 * Design. Checking a resend must not cost a random B-tree insert per message (an index
 * keyed by (user, client_msg_id) dirtied a random page per send and grew forever), so the
 * window lives in memory: a 64-bit hash of (user, client_msg_id) → msg_id, in tables of
 * open addressing. Nothing is written for it: at start it is rebuilt from the tail of the
 * `msgs` log (every record carries its sender and client_msg_id), so a restart, a crash
 * included, knows every id the log holds.
 *
 * A hash hit is a candidate, not an answer: the record it names is read and must have that
 * sender and client_msg_id, and the id must be in that user's timeline in that app (the
 * hash knows no app; a record of another app, a message lost with a failed batch or removed
 * by retention, or a 64-bit collision all fail this check). So a hit costs two reads, and
 * only resends (rare) and collisions pay them.
 *
 * Time: entries sit in generations of window/4 by the time in their msg_id; DEDUP_GENS
 * generations are kept, so an entry is known for at least the window and at most 5/4 of
 * it. A generation past that is dropped whole (dedup_expire), no entry by entry deletion.
 * Memory: about 24 bytes per message sent in the last window (e.g. 10 M messages a day:
 * 240 MB for 24 h); docs/STORAGE.md has the sizing.
 *
 * Visibility: the store adds an entry while it applies a batch, before the commit, so that
 * a second copy in the same batch is caught (its transaction sees the first's writes).
 * Workers must not answer with an id that is not committed yet: they pass
 * @p committed_only, and ids above the last committed one (dedup_committed) are skipped —
 * the store, which sees them, answers such a resend after its commit.
 *
 * Threading: thread-safe. The table is split in stripes, each with its own mutex, held
 * for a few probes; the store thread writes, workers read.
 */
#ifndef CIM_ACTORS_DEDUP_H
#define CIM_ACTORS_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

#define DEDUP_GENS 5     /**< generations kept: 4 spans of window/4 are always covered */
#define DEDUP_STRIPES 64 /**< tables per generation, each with its own lock */

typedef struct dedup dedup_t;

/**
 * An empty window of @p window_h hours (at least 1).
 * @return it (owned; dedup_free). Aborts on out of memory, like mem_alloc.
 */
dedup_t *dedup_new(uint32_t window_h);

/** Free @p d. NULL is a no-op. */
void dedup_free(dedup_t *d);

/**
 * Rebuild from the log: every message of the last window in `msgs` with a non-empty
 * client_msg_id (read transaction @p txn), then mark everything up to the newest committed.
 * @param[out] loaded  how many entries (may be NULL).
 * @return 0 or rc.
 */
int dedup_load(dedup_t *d, kv_txn_t *txn, uint64_t now_ms, size_t *loaded);

/** Remember that @p user's @p cmid was stored as @p msg_id (store thread). */
void dedup_add(dedup_t *d, const char *user, const char *cmid, uint64_t msg_id);

/* dedup_find: a message committed by this node in a cluster whose record matches, still in
 * the outbox (on its way to its timelines, the sender's included): a resend must neither
 * store it again nor be answered OK yet. */
#define DEDUP_PENDING 1

/**
 * Look up a resend: the id under which (@p app, @p user) stored @p cmid within the window,
 * checked against the records in @p txn (see the design note).
 * @param[in] committed_only  skip ids above the last committed one (worker threads).
 * @param[out] out  the id (written only when found or pending).
 * @return 0 (found), DEDUP_PENDING, RC_ENOTFOUND, or rc from reading the records.
 */
int dedup_find(dedup_t *d, kv_txn_t *txn, const char *app, const char *user, const char *cmid,
               bool committed_only, uint64_t *out);

/** The store committed every id up to @p id (store thread, after each commit). */
void dedup_committed(dedup_t *d, uint64_t id);

/** Drop generations older than the window allows at @p now_ms (store thread, hourly). */
void dedup_expire(dedup_t *d, uint64_t now_ms);

/** Entries held now (statistics). */
size_t dedup_count(dedup_t *d);

/** The stripe (0 to DEDUP_STRIPES - 1) that holds (@p user, @p cmid) (tests). */
unsigned dedup_stripe(const char *user, const char *cmid);

/** Bytes of the tables that hold them (statistics: 16 a slot, 1.3 to 3.2 slots an entry). */
size_t dedup_bytes(dedup_t *d);

#endif
