/**
 * group: the group record and its keys (groups, members, ugroups databases).
 *
 * A group id is a server-assigned decimal number (a counter in meta, from GROUP_ID_FIRST),
 * shown and accepted as its canonical decimal string: digits, no sign, no leading zero.
 * Keys: groups and members are under app NUL gid (8 bytes, big-endian); members appends
 * the user id; a member's value is the id of the event that added them (the smallest is
 * the longest-standing member). ugroups: user key NUL gid → nothing (GROUP_LIST).
 * Record: flags (bit 0 dismissed, bit 1 open) ‖ created_ms ‖ member_count (u32) ‖
 * owner length ‖ owner ‖ name length ‖ name.
 *
 * Threading: pure helpers over a transaction; any thread (writes: the store only).
 */
#ifndef CIM_ACTORS_GROUP_H
#define CIM_ACTORS_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cim.pb.h"
#include "core/kv.h"

#define GROUP_ID_FIRST 1000
#define GROUP_KEY_MAX (KV_ID_MAX + 1 + 8)

typedef struct group {
    uint64_t gid;
    char name[KV_ID_MAX + 1];
    char owner[KV_ID_MAX + 1];
    uint64_t created_ms;
    uint32_t member_count;
    bool open;
    bool dismissed;
} group_t;

/** Parse a canonical decimal group id. @return 0, or RC_EINVAL. */
int group_id_parse(const char *s, uint64_t *gid);

/** The key of a group (app NUL gid); the members of it share it as a prefix. */
size_t group_key(uint8_t out[GROUP_KEY_MAX], const char *app, uint64_t gid);

/** Load a group. @return 0, RC_ENOTFOUND, or rc. */
int group_load(kv_txn_t *txn, const char *app, uint64_t gid, group_t *g);

/** Store a group (write txn). @return 0 or rc. */
int group_save(kv_txn_t *txn, const char *app, const group_t *g);

/** Fill the protocol's Group from @p g. */
void group_to_pb(const group_t *g, cim_Group *out);

#endif
