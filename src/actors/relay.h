/**
 * relay: sessions whose client reached another node than its user's home ("edges relay,
 * homes serve", docs/SCALING.md).
 *
 * Roles. The *edge* is the node a client's connection reached: it does the handshake,
 * the encryption, the frame layer, the token check and the client's timeouts. When the
 * user's home (cluster_home) is another node, the edge session becomes a relay
 * (RELAY_EDGE): nothing of it goes into this node's router or store; its LOGIN and every
 * later decrypted frame go unchanged to the home, and every frame the home sends back is
 * sealed and written to the client as the session's own. At the home, a *remote
 * session* (RELAY_HOME) is the same session actor as a local one (router, device kicks,
 * presence, store, pushes, admin kicks: all unchanged), whose output goes to the edge
 * over the bus, unsealed, instead of to a socket.
 *
 * Bus messages (cluster.h: N.node.<home>.rin edge → home, N.node.<edge>.rout home →
 * edge), a RELAY_HDR-byte header, big-endian:
 *   0  u8   kind: RELAY_LOGIN (edge → home), RELAY_FRAME (both), RELAY_CLOSED (both)
 *   1  u8[3] zero
 *   4  u32  the edge node
 *   8  u64  the session's id at the edge (the key of a session on both nodes, with 4)
 *  16  u32  RELAY_FRAME: the frame type (0 otherwise)
 *  20  u32  the home node
 * then the body: RELAY_FRAME the frame's plaintext protobuf body; RELAY_LOGIN the
 * client's address (u8 family 4 or 6, 16 address bytes) then the LoginReq as the client
 * sent it; RELAY_CLOSED nothing ("this session is over on my side").
 *
 * Ordering: one edge session's messages come from one worker through the cluster thread
 * onto one subject, so NATS keeps them in order; at the home they all go to one worker
 * (chosen by a hash of edge node and edge sid), in order; the way back likewise.
 *
 * Failure: the mailboxes between a worker and the bus are bounded; a frame that finds
 * one full closes its session with BYE{SERVER_BUSY} rather than go missing. A home that
 * goes down (heartbeats), restarts, or the bus going down, closes the edge's relayed
 * sessions with BYE{SERVER_BUSY, "home node unavailable"}; an edge going away ends the
 * home's remote sessions as a client's disconnect would. A frame for a session the other
 * side does not know is answered with RELAY_CLOSED.
 *
 * Threading: relay_on_bus runs on libnats's delivery thread, relay_on_node_down on the
 * cluster thread: both only post to worker mailboxes. Everything else runs on the worker
 * that owns the session.
 */
#ifndef CIM_ACTORS_RELAY_H
#define CIM_ACTORS_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/acceptor.h"
#include "actors/worker.h"

struct session;

#define RELAY_HDR  24
#define RELAY_ADDR 17 /* the client's address before a LoginReq: family, 16 bytes */

/* Bus message kinds (RELAY_OVERFLOW is local: a worker mailbox was full). */
enum { RELAY_LOGIN = 1, RELAY_FRAME, RELAY_CLOSED, RELAY_OVERFLOW };

/* What a session is to the relay (session.relay). */
enum { RELAY_NONE = 0, RELAY_EDGE, RELAY_HOME };

/**
 * A message arrived on .rin (@p to_home) or .rout: check its header, copy it into a
 * WORKER_MSG_RELAY for the worker of its session (edge: the worker in the sid; home: a
 * hash of edge node and sid). A frame that finds that mailbox full becomes a forced
 * RELAY_OVERFLOW (the session is closed with SERVER_BUSY). @p srv is the server_t.
 * libnats's delivery thread (cluster_relay_cb).
 */
void relay_on_bus(void *srv, bool to_home, const uint8_t *data, size_t len);

/** Node @p node (or CLUSTER_ALL_NODES) is gone: tell every worker. Cluster thread. */
void relay_on_node_down(void *srv, uint32_t node);

/** Handle a WORKER_MSG_RELAY on worker @p w (frees its data). Worker thread. */
void relay_take(worker_t *w, worker_msg_t *m);

/**
 * End this worker's relayed sessions with @p node (or all): edge sessions with
 * BYE{SERVER_BUSY}, remote sessions as if their client had gone. Worker thread.
 */
void relay_node_down(worker_t *w, uint32_t node);

/**
 * Edge: send the LOGIN of session @p s (already marked RELAY_EDGE with its home in
 * relay_node) to the home, with the client's address.
 * @return 0, RC_EFULL (the bus mailbox is full) or RC_ECLOSED (stopping).
 */
int relay_login(struct session *s, const uint8_t *body, size_t len);

/**
 * Edge: forward a client's decrypted frame to the home. A full mailbox closes @p s with
 * BYE{SERVER_BUSY}. @return 0, or RC_ECLOSED (@p s is closing).
 */
int relay_forward(struct session *s, uint32_t type, const uint8_t *body, size_t len);

/**
 * Home: send a frame of remote session @p s to its edge. A full mailbox closes @p s with
 * BYE{SERVER_BUSY} (which is forced through). @return 0, RC_EFULL or RC_ECLOSED.
 */
int relay_out(struct session *s, uint32_t type, const uint8_t *body, size_t len);

/**
 * The session ends on this side: tell the other (RELAY_CLOSED), once, unless it is the
 * one that said so. A no-op for a session that is not relayed.
 */
void relay_detach(struct session *s);

/** Home: put remote session @p s in / take it out of its worker's map. */
void relay__map_add(worker_t *w, struct session *s);
void relay__map_del(worker_t *w, struct session *s);

#endif
