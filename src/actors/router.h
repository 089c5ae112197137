/**
 * router: who is online where — (app, user) → the live sessions of that user.
 *
 * Every delivery reads it, so lookups take no global lock: the table is split into
 * ROUTER_SHARDS shards by a hash of (app, user), each with its own reader-writer lock.
 * A lookup read-locks one shard for the time it takes to copy the user's handful of
 * entries out; logins and logouts write-lock one shard. Sessions on other workers are
 * reached only through the worker's mailbox: an entry names (worker index, session id),
 * never a pointer another thread could dereference.
 *
 * Registration enforces the device rules of PROTOCOL.md §6: a login with the device_id
 * of a live session replaces that entry and reports it as kicked; with single_session,
 * every other session of the user is kicked.
 *
 * Threading: every function is thread-safe (shard locks). Locks are held only inside
 * these functions, never across a callback or a uv call.
 */
#ifndef CIM_ACTORS_ROUTER_H
#define CIM_ACTORS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROUTER_SHARDS 64
#define ROUTER_DEVICE_MAX 65 /* 64 bytes + NUL */

/** One live, logged-in session. */
typedef struct router_ent {
    uint64_t sid;                     /* session id, unique in the process */
    uint32_t worker;                  /* index of the worker that owns the session */
    uint32_t kind;                    /* DeviceKind */
    char device[ROUTER_DEVICE_MAX];   /* device_id */
} router_ent_t;

typedef struct router router_t;

/** @return a new, empty router; free with router_free(). Aborts on OOM. */
router_t *router_new(void);

/** Free the router (no other thread may use it any more). NULL is a no-op. */
void router_free(router_t *r);

/**
 * Add @p ent for (@p app, @p user).
 *
 * @param[in]  single  true: every other session of the user is kicked (single_session).
 * @param[out] kicked  room for @p kicked_max entries that must be closed with
 *                     BYE{KICKED}: the live session with the same device_id (always),
 *                     and with @p single all others. They are removed from the router.
 * @param[out] nkicked how many were written.
 * @param[out] first   true when the user had no session before (came online).
 * @return 0 (aborts on OOM).
 */
int router_add(router_t *r, const char *app, const char *user, const router_ent_t *ent,
               bool single, router_ent_t *kicked, size_t kicked_max, size_t *nkicked,
               bool *first);

/**
 * Remove session @p sid of (@p app, @p user); a no-op when it is not there (already
 * replaced by a kick).
 * @return true when the user has no session left (went offline).
 */
bool router_remove(router_t *r, const char *app, const char *user, uint64_t sid);

/**
 * Copy the sessions of (@p app, @p user) into @p out.
 * @return the number of live sessions (may exceed @p max: only @p max were copied).
 */
size_t router_lookup(router_t *r, const char *app, const char *user, router_ent_t *out,
                     size_t max);

/** @return the number of live sessions in all (approximate while others change it). */
size_t router_count(router_t *r);

#endif
