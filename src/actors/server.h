/**
 * server: one cimd instance — the shared, read-mostly context every actor is handed,
 * and the start/run/stop sequence.
 *
 * Threads: the caller's thread runs the acceptor loop (and the signal handlers); N worker
 * threads each run one loop of session actors; one store thread is the only LMDB writer;
 * one webhook thread POSTs events to the apps' webhooks (actors/webhook.h); with a
 * cluster_url, one cluster thread keeps this node on the NATS bus (actors/cluster.h).
 *
 * Start: create the data directory when missing, take its lock (datadir: one cimd per
 * directory; a second one fails here, naming the holder's pid), open it (LMDB environment,
 * app "default", identity key: each created when missing), start the webhook thread, the
 * store, the workers, the cluster thread (with a cluster; it connects in the background
 * and hands relayed sessions' frames to the workers), then the acceptor, and log the
 * ready line
 *   "cimd ready: listening on HOST:PORT key HEX64 workers N"
 * followed by " (new identity created in DIR)" when this start created the identity key
 * (tests and scripts wait for it; PORT is the real port when 0 was asked for; the suffix
 * adds no ':' but DIR's own: parse HOST:PORT as the word after "listening on ").
 * The lock is held until server_free.
 * Stop (SIGTERM/SIGINT or server_stop): close the listener, every worker says
 * BYE{SHUTTING_DOWN} to each of its sessions and flushes, the store commits what is
 * queued, the cluster thread leaves the bus, the webhook thread delivers what it can within
 * WEBHOOK_STOP_GRACE_MS, then every loop is closed (uv_loop_close must return 0).
 *
 * Threading: server_t's fields are immutable after server_start, except `stopping`
 * and `queued` (atomics). Pointers to it are shared by all threads.
 */
#ifndef CIM_ACTORS_SERVER_H
#define CIM_ACTORS_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/chan.h"
#include "core/conf.h"
#include "core/datadir.h"
#include "core/kv.h"

struct worker;
struct acceptor;
struct store;
struct router;
struct main_loop;
struct throttle;
struct dedup;
struct admin;
struct ws_global;
struct webhook;
struct cluster;

typedef struct server {
    const conf_t *conf;
    datadir_lock_t *lock; /* the data directory's lock, held from start to server_free */
    kv_t *kv;
    chan_identity_t *identity;
    uint8_t identity_pub[CHAN_KEY];
    bool identity_created; /* this start created identity.key (said in the ready line) */
    struct router *router;
    struct worker **workers;
    uint32_t nworkers;
    struct acceptor *acceptor;
    struct store *store;
    struct main_loop *main;   /* the main thread's loop (acceptor, signals) */
    struct throttle *throttle; /* failed logins per address (NULL: none kept) */
    struct dedup *dedup;      /* the SEND dedup window (owned by the store) */
    struct admin *admin;      /* the admin HTTP listener (NULL: admin_listen = off) */
    struct ws_global *ws;     /* the WebSocket endpoint's HTTP setup (NULL: ws_listen off) */
    _Atomic int ready;        /* serving clients (/healthz) */
    struct webhook *webhook;  /* events to the apps' webhooks (actors/webhook.h) */
    struct cluster *cluster;  /* home nodes, peers and the bus (actors/cluster.h); never NULL
                                 after server_start, a thread only with a cluster_url */
    _Atomic int stopping;
    /* Output bytes queued for all sessions (written by every worker, relaxed): held to
     * conf->max_queued_mb, see session.c's budget. */
    _Atomic uint64_t queued;
} server_t;

/**
 * Open the data directory and start the store and the workers, and bind the listener.
 * @param[out] out  owned; run with server_run, free with server_free.
 * @return 0, or an rc; every failure is logged as one ERROR line saying what failed (data
 *         dir, its lock held by another cimd with that one's pid, bind, ...), so the
 *         caller need not add another. -EBUSY: another process holds the data directory.
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
