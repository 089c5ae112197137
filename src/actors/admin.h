/**
 * admin: the admin HTTP listener (admin_listen, default 127.0.0.1:7401) — /healthz,
 * /metrics and the application API under /v1/apps/{app}/ (docs/ADMIN-API.md).
 *
 * A thread of its own with its own libuv loop, serving HTTP/1.1 through libh2o (its libuv
 * flavour) and JSON through jansson, so nothing it does ever waits on or delays message
 * traffic. It reads the store in short read-only transactions, as the workers do; every
 * write goes to the store's mailbox like a session's, and comes back through a completion
 * callback (store_req_t.done) into this thread's own mailbox, after the commit. Kicks go
 * to the workers' mailboxes (WORKER_MSG_KICK), pushes of transient messages through the
 * router like a session's.
 *
 * Threading: admin_start, admin_stop and admin_address run on the main thread; the rest of
 * the module on the admin thread. Counters it renders are read with relaxed loads.
 */
#ifndef CIM_ACTORS_ADMIN_H
#define CIM_ACTORS_ADMIN_H

#include "actors/server.h"

typedef struct admin admin_t;

/**
 * Bind conf->admin_listen and start the admin thread. The ready line of cimd is logged
 * after this, and before it the line "admin: listening on HOST:PORT" (the real port when
 * 0 was asked for).
 * @return 0 (@p out set), or an rc / UV_E* code (logged).
 */
int admin_start(server_t *srv, admin_t **out);

/** "HOST:PORT" the listener is bound to. */
const char *admin_address(const admin_t *a);

/**
 * Stop: close the listener and every connection (answers in flight are sent first, for
 * at most a second), join the thread and free @p a. Call after store_stop, so that every
 * write the API asked for has been answered. NULL is a no-op.
 */
void admin_stop(admin_t *a);

#endif
