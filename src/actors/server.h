/**
 * server: one cimd instance — the shared, read-mostly context every actor is handed,
 * and the start/run/stop sequence.
 *
 * Threads: the caller's thread runs the acceptor loop (and the signal handlers); N worker
 * threads each run one loop of session actors; one store thread is the only LMDB writer.
 *
 * Start: open the data directory (LMDB environment, identity key, app "default"), start
 * the store, the workers, then the acceptor, and log the ready line
 *   "cimd ready: listening on HOST:PORT key HEX64 workers N"
 * (tests and scripts wait for it; PORT is the real port when 0 was asked for).
 * Stop (SIGTERM/SIGINT or server_stop): close the listener, every worker says
 * BYE{SHUTTING_DOWN} to each of its sessions and flushes, the store commits what is
 * queued, then every loop is closed (uv_loop_close must return 0).
 *
 * Threading: server_t's fields are immutable after server_start, except `stopping`
 * (atomic). Pointers to it are shared by all threads.
 */
#ifndef CIM_ACTORS_SERVER_H
#define CIM_ACTORS_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/chan.h"
#include "core/conf.h"
#include "core/kv.h"

struct worker;
struct acceptor;
struct store;
struct router;
struct main_loop;

typedef struct server {
    const conf_t *conf;
    kv_t *kv;
    chan_identity_t *identity;
    uint8_t identity_pub[CHAN_KEY];
    struct router *router;
    struct worker **workers;
    uint32_t nworkers;
    struct acceptor *acceptor;
    struct store *store;
    struct main_loop *main;   /* the main thread's loop (acceptor, signals) */
    _Atomic int stopping;
} server_t;

/**
 * Open the data directory and start the store and the workers, and bind the listener.
 * @param[out] out  owned; run with server_run, free with server_free.
 * @return 0, or an rc (the log says what failed: data dir, bind, ...).
 */
int server_start(const conf_t *conf, server_t **out);

/**
 * Run the acceptor loop on the calling thread until SIGTERM/SIGINT (or server_stop), then
 * shut down every actor in order.
 * @return 0 after a clean shutdown, or an rc.
 */
int server_run(server_t *s);

/** Ask a server whose server_run has started to stop. Thread-safe (uv_async_send). */
void server_stop(server_t *s);

/** Free a server after server_run returned (or one that never ran). NULL is a no-op. */
void server_free(server_t *s);

#endif
