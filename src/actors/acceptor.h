/**
 * acceptor: the listening socket and connection admission.
 *
 * Runs on the main thread's loop. On readable, it accept4()s every pending connection
 * (non-blocking, close-on-exec), applies the caps — max_conns in all and
 * max_conns_per_ip per peer address — and closes a connection over a cap at once, before
 * any handshake (PROTOCOL.md §6, Limits). Admitted sockets go to the workers round-robin
 * through their mailboxes (worker_post); the raw fd moves, never a uv handle.
 *
 * The acceptor owns the connection counts. Workers report closed connections with
 * acceptor_conn_closed(), a message into the acceptor's own mailbox, so the counts are
 * only ever touched by the acceptor's thread.
 *
 * Threading: everything runs on the acceptor's loop thread except acceptor_conn_closed,
 * which is thread-safe.
 */
#ifndef CIM_ACTORS_ACCEPTOR_H
#define CIM_ACTORS_ACCEPTOR_H

#include <stdint.h>
#include <uv.h>

#include "actors/server.h"

/** A peer address in compact form (the per-address key). */
typedef struct peer_addr {
    uint8_t ip[16];  /* IPv4 in the first 4 bytes, or IPv6 */
    uint8_t family;  /* 4 or 6 */
} peer_addr_t;

#define PEER_ADDR_STRLEN 46 /**< INET6_ADDRSTRLEN: room for any peer_addr_str */

typedef struct acceptor acceptor_t;

/** A hash of @p p (FNV-1a over its address bytes; per-address tables). Any thread. */
uint32_t peer_addr_hash(const peer_addr_t *p);

struct sockaddr_storage;

/** The compact form of a socket address (AF_INET or AF_INET6). Any thread. */
void peer_addr_from(const struct sockaddr_storage *ss, peer_addr_t *p);

/** Write @p p as text ("127.0.0.1", "::1") into @p out. @return @p out. Any thread. */
const char *peer_addr_str(const peer_addr_t *p, char out[PEER_ADDR_STRLEN]);

/**
 * Bind and listen on conf->listen, and on conf->ws_listen unless it is "off" (its
 * connections go to the workers marked as WebSocket ones; both share the caps), on
 * @p loop (the calling thread's).
 * @param[out] out  owned; closed by acceptor_close.
 * @return 0, or -errno / RC_EINVAL (bad listen address).
 */
int acceptor_start(server_t *srv, uv_loop_t *loop, acceptor_t **out);

/** The bound address as "HOST:PORT" (the real port when 0 was asked for). */
const char *acceptor_address(const acceptor_t *a);

/** The WebSocket endpoint's bound address, or NULL (ws_listen = off). */
const char *acceptor_ws_address(const acceptor_t *a);

/** Stop accepting and close the acceptor's handles; frees it once they are closed. */
void acceptor_close(acceptor_t *a);

/** Report that a connection admitted by @p a has closed. Thread-safe. */
void acceptor_conn_closed(acceptor_t *a, const peer_addr_t *peer);

#endif
