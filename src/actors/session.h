/**
 * session: the actor that owns one client connection.
 *
 * States: HELLO (waiting for ClientHello; only plaintext handshake frames of at most
 * 1024 bytes), LOGIN (handshake done; the first sealed frame must be LOGIN), LIVE
 * (logged in), CLOSING (BYE or LOGOUT_ACK queued, flushing, then closed).
 *
 * Output budget: what a session holds for its peer (sealed bytes queued on the socket,
 * answers waiting for the store, pushes waiting for the LoginRsp) is capped per session
 * (max_conn_queue_kb) and counted in the server-wide srv->queued, held to max_queued_mb:
 * past it, the sessions holding the most with bytes the kernel would not take (slow
 * readers) are closed with BYE{SERVER_BUSY}, heaviest first (session__shed). A session
 * has at most one write in flight; what comes meanwhile is appended to one pending buffer
 * that grows by doubling, so a large backlog lives in a few large blocks (mapped, and
 * given back to the system when freed) rather than thousands of small ones.
 *
 * Input path (worker thread): uv_read into the worker's shared buffer → frame_rd_feed
 * reassembles frames in place → HELLO is handled in plaintext; every later frame is opened
 * with chan_open (a failure closes at once, answering nothing) → the type is checked for
 * the state → nanopb decodes into the worker's scratch → the handler answers with
 * session_send. Output: each frame is sealed into its own write request; the bytes queued
 * on the socket are counted and capped (a session past the cap is closed with
 * BYE{SERVER_BUSY}).
 *
 * Closing: session_close(s, code, reason) sends BYE{code, reason} when the handshake is
 * complete (PROTOCOL.md §3), stops reading, shuts the socket down after the queued frames
 * and frees the session when its handle is closed. A frame that fails to open, or any
 * problem before the handshake is complete, is session_abort: close now, no answer.
 *
 * Relay (actors/relay.h): in a cluster, a session whose user's home is another node is
 * relayed (RELAY_EDGE): after LOGIN every decrypted frame goes to the home unchanged and
 * the home's frames are sealed and written here. At the home, a remote session
 * (RELAY_HOME, session_open_remote) has no socket: session_send_encoded hands its frames,
 * unsealed, to the bus, and closing it frees it at the end of the loop turn.
 *
 * Memory: an idle logged-in session is the uv_tcp_t, the 80-byte chan_t, the 24-byte
 * frame reader and a few words of state, plus one small block with its app, user and
 * device ids; no buffer.
 *
 * Threading: every function runs on the owning worker's thread only.
 */
#ifndef CIM_ACTORS_SESSION_H
#define CIM_ACTORS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <pb.h>

#include "actors/acceptor.h"
#include "actors/worker.h"
#include "core/blob.h"
#include "core/chan.h"
#include "core/frame.h"

struct store_req;
struct store_login;
struct store_op;
struct xonline_req;
struct reply;

enum {
    SESSION_ST_HELLO = 0,
    SESSION_ST_LOGIN,
    SESSION_ST_LIVE,
    SESSION_ST_CLOSING,
};

typedef struct session {
    uv_tcp_t tcp;
    worker_t *w;
    uint64_t sid;               /* unique in the process: worker index << 48 | counter */
    struct session *prev, *next; /* the worker list the session is on */
    slist_t *list;              /* which one (NULL: none) */
    uint64_t since_ms;          /* accept time / last activity / close time, per list */
    frame_rd_t rd;
    chan_t ch;
    uint32_t out_bytes;         /* sealed bytes queued on the socket: in flight + pending */
    struct wreq *wr_pend;       /* sealed bytes waiting for the write in flight, or NULL */
    bool writing;               /* a uv_write is in flight */
    struct session *bl_prev, *bl_next; /* the worker's backlog list (out_bytes > 0) */
    bool backlogged;            /* on it */
    uint8_t *cork;              /* sealed frames of this loop turn, written at its end */
    uint32_t cork_len, cork_cap;
    uint64_t cork_ctr;          /* nonce counter of the cork's first frame */
    uint64_t pend_ctr;          /* nonce counter of wr_pend's first frame */
    struct session *cork_next;  /* the worker's list of sessions with a cork */
    bool corked;                /* on that list */
    uint32_t max_len;           /* largest frame accepted in the current state */
    uint8_t state;              /* SESSION_ST_* */
    uint8_t kind;               /* DeviceKind after login */
    bool reading;
    bool closed;                /* uv_close called */
    bool routed;                /* in the router (logged in, not yet unrouted) */
    bool login_pending;         /* LIVE, but the LoginRsp waits for the store */
    bool first_online;          /* this login brought the user online (presence) */
    uint32_t async_issued;       /* requests handed to the store ... */
    uint32_t async_done;         /* ... and answered: answers must keep request order */
    uint32_t xsends;             /* cluster SENDs in flight (and checks, CONTACT_LISTs
                                    asking other homes): their answers come from the
                                    cluster thread, so later requests wait for them */
    struct reply *rq_head, *rq_tail; /* answers waiting for earlier store requests */
    struct reply *pq_head, *pq_tail; /* pushes waiting for the LoginRsp (login_pending) */
    uint32_t rq_bytes;
    uint32_t pq_bytes;          /* bytes of the pushes waiting for the LoginRsp */
    uint32_t held;              /* requests waiting in rq to be run in order */
    float tokens;               /* SEND token bucket */
    uint32_t tb_ms;             /* its last refill (loop clock, wraps) */
    uint64_t acked;             /* delivery cursor as last sent to the store */
    uint64_t delivered;         /* highest timeline id this connection was given: the
                                   LoginRsp's latest, pushes, SYNC pages (PUSH_ACK cap) */
    peer_addr_t peer;
    /* A WebSocket session (actors/ws.c): its h2o connection (NULL once gone), and whether
     * the session sits inside one of its callbacks (nothing may close it there). */
    struct st_h2o_websocket_conn_t *ws;
    bool is_ws;
    bool ws_in_cb;
    bool ws_kill;               /* closed: free at the end of the loop turn */
    bool ws_closing;            /* a close frame waits for its queued messages (ws.c) */
    uint16_t ws_close_code;
    struct session *ws_close_next; /* the worker's list of those */
    /* A session relayed between nodes (actors/relay.h). */
    uint8_t relay;              /* RELAY_NONE, RELAY_EDGE (client here, served by its home)
                                   or RELAY_HOME (a remote session: client at an edge) */
    bool relay_pending;         /* edge: the LOGIN went to the home, no LoginRsp{OK} yet */
    bool relay_gone;            /* the other node knows the session is over (or is gone) */
    bool relay_kill;            /* home: closed: free at the end of the loop turn */
    uint32_t relay_node;        /* edge: the home; home: the edge */
    uint32_t relay_req_id;      /* edge: the LOGIN's req_id (refused here if the home goes) */
    uint64_t relay_sid;         /* home: the session's id at the edge */
    struct session *relay_next; /* home: the worker's map of remote sessions */
    char *ids;                  /* after login: "app\0user\0device\0", one block */
    const char *app, *user, *device; /* into ids */
} session_t;

/** Bytes held for the session's peer: queued on the socket, answers and pushes waiting. */
static inline uint32_t session__held(const session_t *s)
{
    return s->out_bytes + s->rq_bytes + s->pq_bytes;
}

/**
 * Adopt the connected socket @p fd on worker @p w (takes ownership of @p fd: closed on
 * failure too).
 * @return 0, or a UV_E* code.
 */
int session_open(worker_t *w, int fd, const peer_addr_t *peer);

/**
 * A session on a WebSocket connection of worker @p w (actors/ws.c): the same actor as a
 * TCP one, its frames carried one per binary message. Its connection (and the acceptor's
 * count of it) belongs to ws.c. @return the session (in the HELLO state).
 */
session_t *session_open_ws(worker_t *w, const peer_addr_t *peer);

/**
 * A remote session on worker @p w (actors/relay.h): the session of a client connected to
 * edge node @p edge as session @p edge_sid there, from @p peer. Its output goes to the
 * edge over the bus (relay_out), unsealed; it has no socket and counts in no acceptor
 * cap. @return the session (state LOGIN: feed it the LOGIN with session__login).
 */
session_t *session_open_remote(worker_t *w, const peer_addr_t *peer, uint32_t edge,
                               uint64_t edge_sid);

/**
 * Home: a frame the client sent through its edge, for remote session @p s: counts as
 * activity and is handled as a local session's decrypted frame.
 */
void session__relay_in(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/**
 * Edge: a frame the home sent for relayed session @p s: sealed and queued for the client.
 * LoginRsp{OK} ends the login wait; a BYE closes the connection once it is written.
 */
void session__relay_out(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/**
 * Edge: the home of relayed session @p s is gone: a login still waiting for it is refused
 * with LoginRsp{SERVER_BUSY}, a live session closed with BYE{SERVER_BUSY}.
 */
void session__relay_lost(session_t *s);

/** Edge: the home ended relayed session @p s: flush what is queued and close (no BYE). */
void session__relay_end(session_t *s, const char *why);

/** A WebSocket session's queued output grew (> 0) or was sent (< 0) by @p delta bytes. */
void session__ws_out(session_t *s, int64_t delta);

/** Close a WebSocket session for a WebSocket-level fault (@p code: 1002, 1003, ...): the
 * close frame goes out first, the session ends when the peer answers or the sweep gives up
 * on it. */
void session__ws_fail(session_t *s, int code, const char *why);

/**
 * Process @p n bytes received on the session's socket: reassemble, open, decode and
 * handle every frame they complete (what the read callback does; the fuzz target calls
 * it directly). Errors close the session as PROTOCOL.md prescribes.
 * @param[in] data  may be modified in place (frames are decrypted where they lie).
 */
void session_feed(session_t *s, uint8_t *data, size_t n);

/**
 * Encode @p msg with @p fields, seal it as frame @p type and queue it.
 * @return 0, RC_ETOOBIG (encoded body over max_body), RC_ECLOSED (closing), or
 *         another rc; on a failure other than RC_ECLOSED the session is being closed.
 */
int session_send(session_t *s, uint32_t type, const pb_msgdesc_t *fields, const void *msg);

/**
 * Answer a request, keeping answers in request order (PROTOCOL.md §3): when earlier
 * requests of this session are still with the store, the encoded answer waits for them.
 * Use this for every answer; session_send is for pushes and BYE, which may come anywhere.
 * @return as session_send.
 */
int session_answer(session_t *s, uint32_t type, const pb_msgdesc_t *fields, const void *msg);

/** Seal and queue an already encoded body as frame @p type (unordered, like session_send). */
int session_send_encoded(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/**
 * Push an encoded body as frame @p type — FT_PUSH with a cim.Message (from the store or a
 * transient send) or FT_EVENT with a cim.Event — if the session is live.
 */
void session_push(session_t *s, uint32_t type, const blob_t *body);

/**
 * Answer a request the store completed (SEND → SEND_ACK, LOGIN → LoginRsp), then release
 * the answers that waited for it. Takes ownership of @p req. @p s may be NULL (the
 * session is gone): then only frees.
 */
void session_complete(session_t *s, struct store_req *req);

/**
 * Refuse request frame @p type with an answer of its ack type (type + 1): every *Rsp
 * starts with req_id, code, reason, so a Result-shaped body serves them all.
 */
int session__fail(session_t *s, uint32_t type, uint32_t req_id, int code, const char *reason);

/**
 * Hand an op to the store (filling in who asks); the completion answers it
 * (session__op_done). On RC_EFULL the request is refused with SERVER_BUSY. Takes @p op.
 */
int session__post_op(session_t *s, struct store_op *op);

/** Answer a request with a Result-shaped body (req_id, code, reason) as frame @p type. */
int session_reply(session_t *s, uint32_t type, uint32_t req_id, int code, const char *reason);

/**
 * Close after the handshake: BYE{@p code, @p reason} (when keys exist), flush, close.
 * Safe to call more than once; the first call wins.
 */
void session_close(session_t *s, int code, const char *reason);

/** Close at once without a word (crypto failure, pre-handshake errors). */
void session_abort(session_t *s, const char *why);

/** Close without BYE after the last answer was queued (LOGOUT). */
void session_finish(session_t *s);

/* ---- internals shared by session*.c ----------------------------------------------- */

/**
 * Write what the session gathered this loop turn (its cork) with one system call; what
 * the kernel does not take is queued (uv_write). Called by the worker at the end of each
 * loop turn and before a close. @return 0, or an rc (the session is closed).
 */
int session__flush(session_t *s);

/**
 * The req_id of a request body that did not decode as its message (field 1 of every
 * request), so that even its refusal is matched by the client. @return it, or 0.
 */
uint32_t session__req_id(const uint8_t *body, size_t len);

/** Queue an unsealed handshake frame (HELLO_ACK). @return 0 or rc. */
int session__send_plain(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/** Handle a frame in state HELLO (plaintext). @return 0 or rc (rc: abort). */
int session__hello(session_t *s, uint32_t type, uint8_t *frame, uint32_t len);

/** Handle LOGIN (state LOGIN) with its plaintext body. @return 0 or rc. */
int session__login(session_t *s, const uint8_t *body, size_t len);

/** Handle LOGOUT. */
int session__logout(session_t *s, const uint8_t *body, size_t len);

/** Handle SEND (session_msg.c). */
int session__send(session_t *s, const uint8_t *body, size_t len);

/** Handle PUSH_ACK. */
int session__push_ack(session_t *s, const uint8_t *body, size_t len);

/** Handle SYNC. */
int session__sync(session_t *s, const uint8_t *body, size_t len);

/** Handle the group changes (session_group.c): CREATE, JOIN, LEAVE, ADD, KICK, DISMISS. */
int session__group(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/** Handle GROUP_MEMBERS and GROUP_LIST. */
int session__group_read(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/** Answer an op the store completed. Takes @p op. */
void session__op_done(session_t *s, struct store_op *op);

/** Handle READ, RECALL, CONTACT_ADD/REMOVE, BLOCK/UNBLOCK (session_conv.c). */
int session__conv_write(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/** Handle HISTORY, CONV_LIST, CONTACT_LIST. */
int session__conv_read(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/**
 * Answer a CONTACT_LIST whose contacts' homes were asked which are online (@p q, back from
 * the cluster thread: actors/xonline.h). Takes @p q.
 */
void session__contacts_done(session_t *s, struct xonline_req *q);

/** Tell the online users who list this session's user that it came online / went away. */
void session__presence(session_t *s, bool online);

/**
 * EVENT{PRESENCE} @p ev (encoded, @p len bytes) of @p user of @p app to the online users
 * of this node who list that user (rcontacts). @p ctx is the server_t. Any thread (a
 * read transaction): also cluster_presence_cb, for a user of another home.
 */
void session_presence_here(void *ctx, const char *app, const char *user, const uint8_t *ev,
                           size_t len);

/**
 * Keep request @p type (its plaintext @p body) to run once the store requests before it
 * are answered, so that it sees their effects; every later request then waits behind it
 * too, keeping requests in order. @return 0, or RC_EFULL (closed: too much waiting).
 */
int session__hold(session_t *s, uint32_t type, const uint8_t *body, size_t len);

/** Send the pushes that arrived before the LoginRsp, in order (right after it). */
void session__release_pushes(session_t *s);

/** Answer LOGIN once the store completed it (session_auth.c). Takes @p req. */
void session__login_done(session_t *s, struct store_login *req);

/** Handle PING. */
int session__ping(session_t *s, const uint8_t *body, size_t len);

/**
 * Enforce the server's output budget from worker @p w: while srv->queued is over
 * max_queued_mb, close this worker's heaviest slow reader with BYE{SERVER_BUSY} (one that
 * is already closing and still holds bytes is cut without waiting). @p all: shed even
 * when another worker publishes a heavier reader (the sweep passes false, so that each
 * worker sheds only when it holds the heaviest one; the send path passes true).
 * @return how many sessions were closed.
 */
unsigned session__shed(worker_t *w, bool all);

/** Forget the session's router entry (before close). */
void session__unroute(session_t *s);

#endif
