/**
 * store: the one LMDB writer.
 *
 * A thread with its own loop and mailbox. Workers post write requests; on each wake-up
 * the store drains everything queued, applies the whole batch in one write transaction
 * (group commit: one fsync per batch with durability = sync), commits, and only then
 * posts completions back to the workers that asked. Nothing is acknowledged before its
 * commit. The mailbox is bounded: when the writer falls behind, store_* calls return
 * RC_EFULL and the caller answers SERVER_BUSY instead of queueing without limit.
 *
 * Requests so far: user registration on first login (no completion needed: the user's
 * session goes live at once; the registration is idempotent and replayed by the next
 * login should the process die first). The messaging issue adds SEND batches, cursor
 * moves and retention.
 *
 * Threading: store_new/start/stop/free on the main thread; store_user_ensure from any
 * thread (the mailbox); everything else on the store's own thread.
 */
#ifndef CIM_ACTORS_STORE_H
#define CIM_ACTORS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "actors/server.h"

#define STORE_QUEUE_MAX 65536 /* requests queued before callers get RC_EFULL */

typedef struct store store_t;

/** @return a new store (not running) writing to srv->kv. Aborts on OOM. */
store_t *store_new(server_t *srv);

/** Start the store's thread. @return 0 or a UV_E* code. */
int store_start(store_t *st);

/**
 * Ask the store to register (@p app, @p user) if it does not exist. Thread-safe.
 * @return 0 (queued), RC_EFULL (writer behind: answer SERVER_BUSY), RC_ECLOSED.
 */
int store_user_ensure(store_t *st, const char *app, const char *user);

/** Commit what is queued, stop the thread and join it. */
void store_stop(store_t *st);

/** Free a stopped store. NULL is a no-op. */
void store_free(store_t *st);

#endif
