/**
 * ws: the WebSocket endpoint (ws_listen, default 127.0.0.1:7480; PROTOCOL.md §1).
 *
 * The acceptor hands connections of ws_listen to the workers like TCP ones. A worker
 * serves their HTTP with libh2o on its own loop (one h2o context per worker, one global
 * configuration for all): GET /ws upgrades to RFC 6455 (subprotocol cim.v1 when the
 * client offers subprotocols; the Origin checked against ws_origins), GET /config.json tells a page the server's identity
 * key, and, only with dev_tokens, GET /dev/token mints tokens. After the upgrade the
 * connection is a session actor like a TCP one (session_open_ws): same handshake, limits,
 * timeouts, backpressure, kicks and pushes; each binary message carries exactly one
 * protocol frame, both ways, framed by wslay (through h2o). Text messages close with 1003,
 * a message larger than the largest frame with 1009, a message that is not exactly one
 * frame with BYE{PROTOCOL_ERROR}; wslay answers pings and the close handshake and closes
 * masking violations and bad opcodes with 1002.
 *
 * Threading: ws_global_new/free on the main thread; everything else on the worker that
 * owns the connection.
 */
#ifndef CIM_ACTORS_WS_H
#define CIM_ACTORS_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/acceptor.h"
#include "actors/server.h"

struct worker;
struct session;

#define WS_SUBPROTOCOL "cim.v1"
#define WS_CLOSE_NORMAL 1000

typedef struct ws_global ws_global_t;

/** The shared HTTP configuration (handlers), kept in srv->ws. @return 0 or rc. */
int ws_global_new(server_t *srv, ws_global_t **out);

/** Free it once every worker's context is gone. NULL is a no-op. */
void ws_global_free(ws_global_t *g);

/** Give worker @p w its h2o context (srv->ws set). @return 0 or rc. */
int ws_worker_open(struct worker *w);

/** @return true when worker @p w has no HTTP or WebSocket connection left (or none ever). */
bool ws_worker_idle(const struct worker *w);

/** Dispose worker @p w's context (idle). NULL context: a no-op. */
void ws_worker_close(struct worker *w);

/** Adopt connection @p fd from ws_listen on worker @p w (takes @p fd). */
void ws_adopt(struct worker *w, int fd, const peer_addr_t *peer);

/** Send @p len sealed bytes (whole frames) of session @p s, one message per frame.
 * @return 0 (a failure closes the session). */
int ws_write(struct session *s, const uint8_t *data, uint32_t len);

/** Start the closing handshake with @p code (the session ends when it completes, or when
 * the worker's sweep gives up on it). */
void ws_close(struct session *s, int code, const char *reason);

/** The session is being freed: drop its connection (outside its callbacks). */
void ws_release(struct session *s);

#endif
