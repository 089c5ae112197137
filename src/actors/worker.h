/**
 * worker: one per-core event loop and the session actors it owns.
 *
 * A worker is a thread running one uv_loop_t. It receives new connections (raw fds from
 * the acceptor), kick orders and completions through its mailbox (core/mbox) and owns,
 * for every connection it was given, one session actor (actors/session.h) until that
 * connection closes. Nothing else touches its loop or its sessions.
 *
 * Per-worker, shared by its sessions (so that an idle session holds no buffer at all):
 *  - the read buffer handed to every uv_read (frames are opened and decoded in place),
 *  - the plaintext encode buffer and the request decode scratch,
 *  - the chan_ctx_t whose AES-GCM contexts are re-keyed per frame.
 *
 * Timeouts use no per-session timer: sessions sit in intrusive lists ordered by their
 * deadline (pending logins by accept time, live sessions by last activity, closing
 * sessions by close time) and one sweep timer per worker closes those past due.
 *
 * Threading: worker_post is thread-safe (the mailbox); everything else in this module
 * and in session runs on the worker's own thread, except worker_new/start/join/free which
 * the server calls from the main thread.
 */
#ifndef CIM_ACTORS_WORKER_H
#define CIM_ACTORS_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "actors/acceptor.h"
#include "actors/server.h"
#include "core/blob.h"
#include "core/chan.h"
#include "core/mbox.h"
#include "core/metrics.h"

struct session;
struct store_req;

/** One thing for one session of a worker: a PUSH to send, or a store request to answer. */
typedef struct delivery {
    uint64_t sid;             /* the session */
    uint32_t type;            /* the frame of push: FT_PUSH (cim.Message) or FT_EVENT */
    blob_t *push;             /* an encoded body to send (a reference), or NULL */
    struct store_req *done;   /* a completed SEND or LOGIN to answer (owned), or NULL */
} delivery_t;

enum {
    WORKER_MSG_CONN = 1, /* u.conn: a new connection to adopt */
    WORKER_MSG_KICK,     /* u.kick: close session sid with BYE{code} */
    WORKER_MSG_STOP,     /* say BYE{SHUTTING_DOWN} to everyone and end the loop */
    WORKER_MSG_DELIVER,  /* u.deliver: pushes and acks, in order */
    WORKER_MSG_RELAY,    /* u.relay: a relayed session's message from the bus (relay.h) */
    WORKER_MSG_NODE_DOWN, /* u.down: a node (or the bus) is gone: end its relayed sessions */
};

typedef struct worker_msg {
    mbox_node_t node;
    int kind;
    union {
        struct {
            int fd;
            peer_addr_t peer;
            bool ws; /* from ws_listen: HTTP first, then a WebSocket session */
        } conn;
        struct {
            uint64_t sid;
            int code;
            const char *reason; /* a string literal; NULL: the same device logged in */
        } kick;
        struct {
            delivery_t *items; /* owned (mem_alloc); freed with its references */
            uint32_t n;
        } deliver;
        struct {
            uint8_t kind;      /* RELAY_LOGIN, RELAY_FRAME, RELAY_CLOSED, RELAY_OVERFLOW */
            bool to_home;      /* this node is the session's home (else its edge) */
            uint32_t edge;     /* the node the client is connected to */
            uint32_t home;     /* the node that serves the session */
            uint64_t sid;      /* the session's id at the edge */
            uint32_t type;     /* RELAY_FRAME: the frame type */
            uint32_t len;      /* bytes in data */
            uint8_t *data;     /* owned (mem_alloc), or NULL: the frame body (LOGIN: the
                                  client's address, then the LoginReq) */
        } relay;
        struct {
            uint32_t node;     /* or CLUSTER_ALL_NODES */
        } down;
    } u;
} worker_msg_t;

/** An intrusive list of sessions, oldest first. */
typedef struct slist {
    struct session *head, *tail;
} slist_t;

#define WORKER_CODES 17 /* cim_Code values counted per login result (OK..TIMEOUT) */

/* What a worker counts for /metrics; written by the worker's thread only. */
typedef struct worker_stats {
    ctr_t conns_opened;       /* connections adopted */
    ctr_t conns_closed;
    ctr_t bytes_in, bytes_out; /* on the wire, encrypted, handed to / read from sockets */
    ctr_t frames_in;
    ctr_t pushes;             /* PUSH and EVENT frames sent */
    ctr_t logins[WORKER_CODES]; /* LoginRsp codes */
} worker_stats_t;

typedef struct worker {
    server_t *srv;
    worker_stats_t stats;
    struct ws_ctx *ws;        /* HTTP and WebSocket connections (actors/ws.c), or NULL */
    uint32_t index;
    char tag[16];             /* log tag: "w0", "w1", ... */
    uv_thread_t thread;
    uv_loop_t loop;
    mbox_t box;
    uv_timer_t sweep;
    uv_check_t flush;         /* end of each loop turn: write the sessions' corks */
    struct session *corked;   /* sessions with frames gathered this turn */
    chan_ctx_t *cc;
    uint8_t *rbuf;            /* shared read buffer, rbuf_len bytes */
    size_t rbuf_len;
    bool rbuf_busy;           /* handed out by on_alloc and not yet returned by on_read */
    uint8_t *obuf;            /* plaintext encode buffer, max_body bytes */
    void *scratch;            /* decode scratch for the largest request message */
    struct session **tab;     /* sid → session, open addressing */
    size_t tab_cap;           /* power of two */
    size_t nsessions;
    uint64_t next_sid;
    slist_t pending;          /* handshake or login not finished, by accept time */
    slist_t live;             /* logged in, by last activity */
    slist_t closing;          /* BYE sent, waiting for the flush, by close time */
    struct session **rtab;    /* remote sessions (relay.h) by (edge node, edge sid):
                                 chained through session.relay_next */
    size_t rtab_cap;          /* power of two, or 0 */
    size_t nremote;
    struct session *backlog;  /* sessions with bytes queued on their socket (slow readers) */
    _Atomic uint64_t heaviest; /* the most bytes one of them holds, as of the last sweep */
    _Atomic uint64_t swept_ms; /* worker_now() at the last sweep: proof of life (watchdog) */
    uint64_t freed;           /* output bytes closed sessions held, since the last malloc_trim */
    bool stopping;
    uint64_t stop_deadline_ms;
} worker_t;

/** @return a new worker (not running); free with worker_free(). Aborts on OOM. */
worker_t *worker_new(server_t *srv, uint32_t index);

/**
 * Set up the worker's loop, mailbox and sweep timer without starting a thread (the fuzz
 * target drives the loop itself with uv_run). @return 0 or a UV_E* code.
 */
int worker_open(worker_t *w);

/** worker_open, then start the worker's thread running the loop. @return 0 or UV_E*. */
int worker_start(worker_t *w);

/**
 * Hand @p m to the worker (any thread).
 * @param[in] force  ignore the mailbox bound (messages that must not be refused).
 * @return 0 (ownership of @p m moved), RC_EFULL or RC_ECLOSED (caller still owns @p m).
 */
int worker_post(worker_t *w, worker_msg_t *m, bool force);

/**
 * Hand a batch of deliveries to the worker (any thread): takes ownership of @p items
 * (mem_alloc'ed), the references and the acks in it, even on failure (then released).
 */
void worker_deliver(worker_t *w, delivery_t *items, uint32_t n);

/** Release a delivery batch that will not be delivered. */
void worker_deliveries_free(delivery_t *items, uint32_t n);

/** Wait for the worker's thread to end (after WORKER_MSG_STOP), then worker_drain. */
void worker_join(worker_t *w);

/**
 * Release the messages left in a joined worker's mailbox (connections are closed, the
 * rest dropped). Call again once producers that outlive the workers (the cluster's
 * threads) have stopped: a send under way at the mailbox's close may land after the join.
 */
void worker_drain(worker_t *w);

/** Free a joined (or never started) worker. NULL is a no-op. */
void worker_free(worker_t *w);

/** Current time in ms on the worker's loop clock (uv_now). */
uint64_t worker_now(const worker_t *w);

/** Find a live session of this worker by id. @return it, or NULL (gone). */
struct session *worker_find(worker_t *w, uint64_t sid);

/** Register / unregister a session in the worker's table (session module only). */
void worker__add(worker_t *w, struct session *s);
void worker__del(worker_t *w, struct session *s);

/** Move a session to the tail of list @p l (removing it from its current list). */
void worker__list_move(worker_t *w, struct session *s, slist_t *l);

/** Put @p s on the list of sessions to flush at the end of this loop turn (once: a no-op
 * when it is on it already). */
void worker__cork(worker_t *w, struct session *s);

/** Take @p s off that list (it is being freed). */
void worker__uncork(worker_t *w, struct session *s);

/** When stopping and no session is left, close the worker's handles (ends the loop). */
void worker__maybe_finish(worker_t *w);

/** Take a session off whatever list it is on. */
void worker__list_del(struct session *s);

#endif
