/**
 * migrate: bring a data directory of an older schema to KV_SCHEMA, at cimd's start,
 * before anything is served (docs/STORAGE.md, "Schema versions").
 *
 * Schema 1 → 2: the dedup index is dropped (the window is rebuilt in memory from the log:
 * actors/dedup.h), and conversation records stop carrying a last message and an unread
 * count, which are derived from the conversation index instead (actors/conv.h). For the
 * derivation to give the counts schema 1 held:
 *  - every SYSTEM message of the conversation index is entered in the group events index
 *    (SYSTEM messages never count as unread);
 *  - a group record's read cursor is moved forward to just before its oldest unread
 *    message (schema 1 counted only what came after the member joined; the index also
 *    holds what was said before). DIRECT records need nothing: every entry after their
 *    cursor was counted.
 *
 * Schema 2 → 3: nothing is rewritten. Records stored from now on leave out the head their
 * key implies (actors/message.h); a record stored whole, as schema 2 stored them all, reads
 * the same. The version only keeps an older cimd, which would read a record without its
 * head as a message without an id, off the directory.
 *
 * Schema 3 → 4: nothing is rewritten; kv_open makes the deferred conversation index's log
 * (cpend), empty. Schema 4 → 5: nothing is rewritten. New records go several to an entry
 * of msgs (core/kv_chunk.c); an entry of one record, as every older schema wrote them,
 * reads as before. Again the version keeps older builds off.
 *
 * Schema 5 → 6: nothing is rewritten. cpend's records hold timeline appends too, each key
 * tagged with its database (core/kv_defer.c); a schema 5 cimd's records, which kv_open
 * applies before anything else, are read as such. A schema 5 build would take a tagged
 * timeline key for a conversation's.
 *
 * Schema 6 → 7 (and every migration from an older one): gspans is added, and every group
 * membership of a user homed here (ugroups) gets a span from the first id above every id
 * the directory holds or issued (feed_migrate): older group messages are in the members'
 * timelines, newer ones are read from the group's index (actors/feed.h).
 *
 * Schema 7 → 8: nothing is rewritten. cpend's records may hold new DIRECT conversations'
 * records (tags 3 and 4, core/kv_defer.c: kv_conv_defer), which a schema 7 build would
 * take for a conversation index key of schema 5; kv_open applies a schema 7 cimd's
 * records first. Records made so are empty (conv_decode reads zeros).
 *
 * Everything happens in one write transaction: a crash leaves the old schema, and the next
 * start migrates again.
 *
 * Threading: at start, before the store and the workers run.
 */
#ifndef CIM_ACTORS_MIGRATE_H
#define CIM_ACTORS_MIGRATE_H

#include "core/kv.h"

/**
 * Migrate @p kv (opened with KV_MIGRATE) when kv_schema_found says it is older; nothing
 * to do otherwise. Logs what it did. @return 0 or rc.
 */
int migrate_run(kv_t *kv);

#endif
