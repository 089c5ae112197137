/**
 * cluster: this node's place in a cluster of cimd nodes over NATS (docs/SCALING.md) —
 * the home node of every user and group, which nodes are alive, and the bus itself.
 *
 * Standalone (conf->cluster_url empty, the default) a cluster_t is a few hundred bytes
 * that answer cluster_home with this node and cluster_node_alive with "this node only":
 * no thread, no connection, no NATS call at all (libnats is never even opened).
 *
 * With a cluster, one thread of its own runs a libuv loop (its timers and its mailbox)
 * and owns the libnats connection. libnats works on its own threads (socket reads, the
 * flusher, message delivery, connection events); its callbacks only parse what arrived
 * and post a small message to this actor's mailbox (mbox_send: the one cross-thread
 * entry), except the answer to a ping, which is sent straight back from the delivery
 * thread so that the round trip measured is the bus's, not this loop's. Nothing here
 * touches another thread's loop, and no other loop ever waits for NATS.
 *
 * Connection. libnats connects (and reconnects) in the background: the first attempt is
 * made on this thread (bounded by CLUSTER_CONNECT_TIMEOUT_MS per server), then retried
 * forever every CLUSTER_RECONNECT_WAIT_MS (plus up to CLUSTER_RECONNECT_JITTER_MS), so a
 * NATS server that is down at start or goes away later only makes the bus "down" until
 * it is back. The events are logged here: "cluster: bus up ..." (info), "cluster: bus
 * down ..." (warn), "cluster: bus up again ..." (info, counted in reconnects).
 *
 * Subjects, all under conf->cluster_name (N below), each message ASCII text:
 *   N.node.<id>.hb    every CLUSTER_HEARTBEAT_MS while the bus is up, from node <id>:
 *                     "<id> <start_ms> <instance> <bus_session>" (start_ms: Unix ms when
 *                     this cimd started; instance: 16 hex digits, random per start;
 *                     bus_session: 1 on its first connection to NATS, +1 on each
 *                     reconnection).
 *   N.node.<id>.ping  a request to node <id> with the reply subject N.node.<from>.pong:
 *                     "<from> <to> <instance of from> <t_ns>"; <id> echoes it unchanged
 *                     to the reply subject. Every CLUSTER_PING_MS to each live peer; the
 *                     round trip goes into the bus latency histogram (cluster_rtt).
 *   N.node.<id>.rin   relayed sessions, edge → home <id> (actors/relay.h): binary, a
 *                     RELAY_HDR-byte header then a frame body; published by
 *                     cluster_relay_send, handed to the relay callback on arrival.
 *   N.node.<id>.rout  relayed sessions, home → edge <id>: the same format.
 *   N.node.<id>.xchk  a sender's home asks home <id> about a DIRECT message's recipient;
 *                     the answer goes to N.node.<from>.xans (binary, actors/xhome.h).
 *   N.node.<id>.xonl  a CONTACT_LIST's home asks home <id> which of its users are online;
 *                     the answer goes to N.node.<from>.xona (binary, actors/xonline.h).
 *   N.node.<id>.xrjq  a restarted origin asks home <id> whether an outbox entry would come
 *                     late there; the answer goes to N.node.<from>.xrja (cluster_rejoin.c).
 *   N.wm.<id>         node <id>'s watermark, every CLUSTER_WATERMARK_MS (actors/xhome.h).
 *   N.out.<o>.<h>     JetStream (stream "<N>_out"): messages of origin <o> for home <h>;
 *                     N.out.probe.<h> a home's drain probe through its own consumer.
 * A heartbeat from a node not in cluster_nodes is ignored; one carrying this node's own
 * id (a second cimd configured with the same node_id) is logged as an error.
 *
 * Liveness. A peer is alive when its heartbeat arrived within CLUSTER_ALIVE_MS; this node
 * is always alive to itself. Changes are logged ("cluster: node 3 is up", "... is down
 * (no heartbeat for 3 s)"). When this node loses the bus every peer is down at once, and
 * alive again only when heard from on the new connection. A peer whose instance or
 * bus_session changed restarted or reconnected: what was relayed with it may be lost.
 *
 * Relay. cluster_relay_send (any thread) copies a message into this actor's mailbox
 * (bounded: RC_EFULL when it is full, so that a caller closes its session rather than
 * lose a frame); the cluster thread publishes it, so no worker ever waits for libnats.
 * What arrives on .rin/.rout goes, on libnats's delivery thread, to the relay callback
 * (cluster_set_relay). When a peer goes down (or restarts, or reconnects), the node-down
 * callback is called with its id on the cluster thread; when the bus goes down, with
 * CLUSTER_ALL_NODES: sessions relayed over the bus cannot be trusted to be whole then.
 *
 * Home nodes: rendezvous hashing over cluster_nodes (core/home.h has the definition,
 * shared with the tools, e.g. cimbench --home-nodes).
 *
 * Threading: cluster_new, cluster_start, cluster_stop and cluster_free on the main thread
 * (server.c). cluster_home, cluster_self, cluster_name,
 * cluster_nodes, cluster_is_enabled, cluster_node_alive, cluster_bus_up, cluster_stats,
 * cluster_rtt and cluster_merge_delay are thread-safe and never block (immutable data and
 * relaxed atomics); cluster_relay_send, cluster_xhome_send, cluster_xhome_committed,
 * cluster_xhome_horizon and cluster_online_ask only post to the mailbox. Everything else
 * runs on the cluster thread, but for the answer to a check (a read transaction on
 * libnats's delivery thread, like the answer to a ping) and the answer to an online
 * question (router lookups, on the same thread).
 */
#ifndef CIM_ACTORS_CLUSTER_H
#define CIM_ACTORS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conf.h"
#include "core/metrics.h"

#define CLUSTER_HEARTBEAT_MS 1000         /* a heartbeat this often while the bus is up */
#define CLUSTER_ALIVE_MS 3000             /* a peer heard from within this is alive */
#define CLUSTER_SWEEP_MS 250              /* how often liveness changes are looked for */
#define CLUSTER_PING_MS 5000              /* a ping to each live peer this often */
#define CLUSTER_CONNECT_TIMEOUT_MS 2000   /* one connection attempt to one server */
#define CLUSTER_RECONNECT_WAIT_MS 1000    /* between attempts, forever */
#define CLUSTER_RECONNECT_JITTER_MS 250   /* added at random to each wait */
#define CLUSTER_MBOX_MAX 65536            /* messages the mailbox holds (relayed frames
                                             past it are refused, heartbeats dropped) */
#define CLUSTER_ALL_NODES UINT32_MAX      /* node-down callback: every peer (bus down) */

#define CLUSTER_WATERMARK_MS 5          /* a watermark (and a merge step) this often */
#define CLUSTER_CHECK_TIMEOUT_MS 3000    /* a recipient's home that does not answer a check */
#define CLUSTER_PUBLISH_WAIT_MS 3000     /* JetStream that does not acknowledge a publish */
#define CLUSTER_APPLIED_WAIT_MS 3000     /* a sent message not in every timeline by then:
                                            SERVER_BUSY, retry with the same client_msg_id */
#define CLUSTER_EVENT_MAX 1024           /* bytes of an encoded Event on the bus */
#define CLUSTER_FORWARD_WAIT_MS 6000     /* a group's home that does not answer a forwarded
                                            request (it may wait CLUSTER_APPLIED_WAIT_MS) */
#define CLUSTER_APPLIED_ASK_MS 250       /* no "applied" report from the recipient's home:
                                            ask it again this often */
#define CLUSTER_PROBE_RETRY_MS 2000      /* a drain probe that did not come back: another */
#define CLUSTER_JS_RETRY_MS 1000         /* JetStream not usable on the connection: again */
#define CLUSTER_ONLINE_WAIT_MS 1000      /* a CONTACT_LIST waits this long at most for the
                                            homes of its contacts: the silent ones' are
                                            listed offline */

/**
 * Can @p from send to @p to, both of @p app (a DIRECT message; @p system: the admin API's
 * SYSTEM message, which blocks do not stop)? Asked of this node, the recipient's home, by
 * the sender's home (libnats's delivery thread: it may open a read transaction).
 * @return the cim_Code, @p why its reason when not OK.
 */
typedef int (*cluster_check_cb)(void *srv, const char *app, const char *from, const char *to,
                                bool system, const char **why);

/**
 * Is message @p id applied on this node: in the timeline of user @p name of @p app, or
 * (@p record) its record here (a group's message or change, a RECALL: every home it goes to
 * keeps its record)? Asked of this node by the message's origin when an "applied" report
 * did not come (libnats's delivery thread: a read transaction). Storage errors read as
 * false.
 */
typedef bool (*cluster_has_cb)(void *srv, const char *app, const char *name, uint64_t id,
                               bool record);

/**
 * Deliver transient message @p rec (an encoded cim.Message, borrowed) to the live sessions
 * of user @p name of @p app homed here (a transient SEND from another home, after its
 * check), or (@p group) of the members of group @p name homed here (libnats's delivery
 * thread). Best effort.
 */
typedef void (*cluster_deliver_cb)(void *srv, const char *app, const char *name, bool group,
                                   const uint8_t *rec, size_t len);

/**
 * A relayed message arrived (libnats's delivery thread): @p to_home is true for .rin
 * (this node is the home), false for .rout (this node is the edge). @p data is borrowed
 * for the call.
 */
typedef void (*cluster_relay_cb)(void *ctx, bool to_home, const uint8_t *data, size_t len);

/** Node @p node (or CLUSTER_ALL_NODES) is gone (cluster thread). */
typedef void (*cluster_down_cb)(void *ctx, uint32_t node);

typedef struct cluster cluster_t;

/** What /metrics shows of the cluster (all zero standalone). */
typedef struct cluster_stats {
    bool bus_up;                /* gauge: connected to a NATS server */
    uint32_t peers_up;          /* gauge: other nodes alive */
    uint64_t reconnects_total;  /* the connection came back after it was lost */
    uint64_t relay_sent_total;  /* relayed messages published (actors/relay.h) */
    uint64_t relay_received_total; /* relayed messages received */
    uint64_t relay_refused_total;  /* cluster_relay_send refused: mailbox full */
    uint64_t xhome_forwarded_total; /* messages JetStream stored for another home */
    uint64_t xhome_consumed_total;  /* messages of other origins applied here */
    uint64_t xhome_dropped_total;   /* malformed bus messages dropped */
    uint64_t xhome_late_total;      /* messages that came after a greater id was applied */
    uint64_t xhome_reissued_total;  /* held messages given a new id (late at a home) */
    uint64_t xhome_held_total;      /* messages held while their homes were asked */
    uint64_t xhome_refused_total;   /* sends refused: home or JetStream unavailable */
    uint64_t xhome_pending;         /* gauge: messages waiting in the merge */
    uint64_t online_asked_total;    /* questions to other homes: which contacts are online */
    uint64_t online_unanswered_total; /* homes that did not answer one in time (down, the
                                         bus, CLUSTER_ONLINE_WAIT_MS) */
} cluster_stats_t;

/**
 * The cluster actor for @p conf (not running): node_id, cluster_url, cluster_name,
 * cluster_nodes, which conf_check has validated. @p conf must outlive it.
 * Standalone (cluster_url empty) it stays a plain struct: cluster_start does nothing.
 * Aborts on OOM.
 * @return owned; free with cluster_free.
 */
cluster_t *cluster_new(const conf_t *conf);

/**
 * With a cluster: start the thread, which connects to NATS in the background (see
 * Connection above); the bus is down until the first connection. Standalone: nothing.
 * @return 0, or a UV_E* code (loop, mailbox or thread), logged.
 */
int cluster_start(cluster_t *c);

/**
 * Stop the thread and close the connection: unsubscribe, close (libnats flushes what it
 * holds), wait for every libnats thread to end (at most CLUSTER_CONNECT_TIMEOUT_MS plus a
 * few seconds), join. A cluster never started, or standalone, is a no-op; so is a second
 * call.
 */
void cluster_stop(cluster_t *c);

/**
 * Where relayed messages and node-down events go. Call before cluster_start (main
 * thread); the callbacks and @p ctx must stay valid until cluster_stop returns.
 */
void cluster_set_relay(cluster_t *c, cluster_relay_cb on_msg, cluster_down_cb on_down,
                       void *ctx);

/**
 * Publish @p hdr then @p body (one message) to node @p node on N.node.<node>.rin
 * (@p to_home) or .rout. Copies both; the cluster thread publishes it.
 * @param[in] force  ignore the mailbox bound (a session's last word: BYE, "closed").
 * @return 0, RC_EFULL (the mailbox holds CLUSTER_MBOX_MAX messages or
 *         CLUSTER_RELAY_QUEUED_MAX bytes: close the session), RC_ECLOSED (stopping or
 *         standalone), RC_ETOOBIG (over CLUSTER_RELAY_MAX).
 * @note Any thread.
 */
int cluster_relay_send(cluster_t *c, uint32_t node, bool to_home, const void *hdr,
                       size_t hlen, const void *body, size_t blen, bool force);

#define CLUSTER_RELAY_MAX (1u << 20) /* bytes of one relayed message (NATS's default cap) */
#define CLUSTER_RELAY_QUEUED_MAX (64u << 20) /* relayed bytes waiting for the cluster thread:
                                                past it cluster_relay_send is RC_EFULL */

/* ---- messages between homes (docs/SCALING.md; cluster_xhome.c) -------------------------

 * A DIRECT SEND in a cluster: the worker hands the request (store_send_t, xhome set, home the
 * recipient's) to cluster_xhome_send when the recipient's home is another node; the cluster thread
 * asks that home (N.node.<home>.xchk, the cluster_check_cb there) and, on OK, queues the request
 * to the store with the home's floor. When the home is this node the worker queues it to the store
 * itself. The store commits the message and its outbox entry and hands the request to
 * cluster_xhome_committed; the cluster thread publishes it to JetStream (N.out.<self>.<home>,
 * Nats-Msg-Id = the id), puts it in this home's merge once JetStream has stored it (at once for a
 * message that stays on this node), and answers the sender OK once it is in every timeline
 * (PROTOCOL.md: SEND_ACK{OK} means stored in every recipient's timeline): applied by this home's
 * store, and reported applied by the recipient's home (N.node.<origin>.xapd, u64 id; asked again
 * with N.node.<home>.xapq, u64 id then app NUL user NUL, when no report came within
 * CLUSTER_APPLIED_ASK_MS). Not in every timeline within CLUSTER_APPLIED_WAIT_MS: SERVER_BUSY
 * (stored; a resend of the client_msg_id answers OK once it is applied). What this home consumes
 * (N.out.*.<self>, durable consumer "home-<self>") goes into the merge too; the merge releases in
 * id order with the watermarks (N.wm.<origin>, core NATS) and the store appends (store_apply),
 * after which the JetStream message is acknowledged.
 *
 * A transient DIRECT SEND to a user of another home takes the same check, carrying the message:
 * the home delivers it to the recipient's live sessions when the check is OK; nothing is stored.
 */

/**
 * Where the checks go and what the merge feeds (the server_t: its store and workers).
 * Before cluster_start.
 */
void cluster_set_xhome(cluster_t *c, cluster_check_cb check, cluster_has_cb has,
                       cluster_deliver_cb deliver, void *srv);

struct store_send;

/**
 * Check then store @p r (see above). Takes @p r on 0: it is answered through its worker
 * (SERVER_BUSY when the home is down or silent, the home's refusal, or the store's
 * answer). Any thread.
 * @return 0, RC_EFULL (the mailbox is full: answer SERVER_BUSY), RC_ECLOSED.
 */
int cluster_xhome_send(cluster_t *c, struct store_send *r);

/**
 * A resend of a DIRECT message already in the sender's timeline here (@p r: msg_id,
 * time_ms, code OK, home the recipient's, another node): answered OK once the recipient's
 * home says it holds it, SERVER_BUSY after CLUSTER_APPLIED_WAIT_MS. Takes @p r on 0. Any
 * thread. @return 0, RC_EFULL, RC_ECLOSED.
 */
int cluster_xhome_resend(cluster_t *c, struct store_send *r);

struct store_op;

/**
 * CONTACT_ADD or BLOCK of a user homed on another node: that home says whether the user
 * exists (the check of a SEND); NOT_FOUND is answered, else @p op goes to the store.
 * SERVER_BUSY when the home is down or silent. Takes @p op on 0. Any thread.
 * @return 0, RC_EFULL, RC_ECLOSED.
 */
int cluster_xhome_check_op(cluster_t *c, struct store_op *op);

/**
 * @p reader read its DIRECT conversation with @p peer, homed on another node, up to
 * @p up_to: tell the peer's home (N.node.<home>.xrd, core NATS: best effort, like every
 * event), which records it (the peer's peer_read_up_to) and sends the peer's sessions
 * EVENT{READ}. Any thread.
 */
void cluster_xhome_read(cluster_t *c, const char *app, const char *reader, const char *peer,
                        uint64_t up_to);

/**
 * A presence change of @p user of @p app (homed here): EVENT{PRESENCE} @p ev (encoded,
 * @p len bytes) goes to every other node (N.node.<n>.xpr, core NATS, best effort), whose
 * cluster_presence_cb hands it to the users there who list @p user. Standalone: nothing.
 * Any thread.
 */
void cluster_presence(cluster_t *c, const char *app, const char *user, const uint8_t *ev,
                      size_t len);

/**
 * A transient message to group @p group of @p app (encoded, @p len bytes): to every other
 * node (N.node.<n>.xtg, core NATS, best effort), whose cluster_deliver_cb hands it to the
 * group's members homed there. Standalone: nothing. Any thread.
 */
void cluster_group_transient(cluster_t *c, const char *app, const char *group,
                             const uint8_t *rec, size_t len);

/** A presence change from another node: see session_presence_here. */
typedef void (*cluster_presence_cb)(void *srv, const char *app, const char *user,
                                    const uint8_t *ev, size_t len);

/** Where presence changes from other nodes go. Before cluster_start. */
void cluster_set_presence(cluster_t *c, cluster_presence_cb cb);

struct store_req;

/**
 * The store is done with @p q, a SEND or an op the cluster answers: one whose message (a
 * group's message or change, a RECALL, handed over already) must first be applied here and
 * at the other homes whose timelines get it (wait_apply / wait_id, and wait_homes), or one
 * forwarded from another node (xorigin: answered there). Takes @p q. Store thread.
 */
void cluster_xhome_done(cluster_t *c, struct store_req *q);

/**
 * A group's SEND (a store_send_t) or change (a store_op_t: GROUP_JOIN, _LEAVE, _ADD, _KICK,
 * _DISMISS) from a session of this node, the group homed on another node: run at the
 * group's home (N.node.<home>.xsnd / .xop, answered on N.node.<self>.xfa), which checks it
 * in its own order and answers once what it made is in every timeline it goes to.
 * SERVER_BUSY when that home is down or silent (CLUSTER_FORWARD_WAIT_MS). Takes @p q on 0.
 * Any thread. @return 0, RC_EFULL, RC_ECLOSED.
 */
int cluster_xhome_forward(cluster_t *c, struct store_req *q);

/**
 * An op naming users (GROUP_CREATE, GROUP_ADD) some of whom live on other homes: each of
 * those homes is asked whether they exist (the check of a SEND; NOT_FOUND "unknown user"),
 * then @p op goes to the store with op->xusers set. Takes @p op on 0. Any thread.
 * @return 0, RC_EFULL, RC_ECLOSED.
 */
int cluster_xhome_run_op(cluster_t *c, struct store_op *op);

/** The store committed @p r (r->xmsg set): publish it, answer it. Takes @p r. Store thread. */
void cluster_xhome_committed(cluster_t *c, struct store_send *r);

/** The store will issue no id below @p horizon any more. Store thread. */
void cluster_xhome_horizon(cluster_t *c, uint64_t horizon);

/** The newest id this home applied before (from its data): before cluster_start. */
void cluster_xhome_set_released(cluster_t *c, uint64_t id);

/** The merge delay histogram (seconds); written by the cluster thread only. */
const hist_t *cluster_merge_delay(const cluster_t *c);

struct xonline_req;

/**
 * CONTACT_LIST with contacts homed on other nodes (@p q, actors/xonline.h): the cluster
 * thread asks each of their homes which are online (N.node.<home>.xonl, one request per
 * home) and hands @p q back to its session's worker (worker_deliver, kind XONLINE_REQ)
 * with their online flags set, once every home asked has answered or after
 * CLUSTER_ONLINE_WAIT_MS; a home that is down or silent leaves its contacts offline.
 * Takes @p q on 0 (and always answers it, unless stopping). Any thread.
 * @return 0, RC_EFULL (the mailbox is full), RC_ECLOSED (standalone or stopping): the
 *         caller keeps @p q.
 */
int cluster_online_ask(cluster_t *c, struct xonline_req *q);

/** Free a stopped (or never started) cluster. NULL is a no-op. */
void cluster_free(cluster_t *c);

/** @return true when conf->cluster_url is set (a cluster), false standalone. */
bool cluster_is_enabled(const cluster_t *c);

/** @return this node's id (conf->node_id). */
uint32_t cluster_self(const cluster_t *c);

/** @return the cluster's name (conf->cluster_name), or NULL standalone. */
const char *cluster_name(const cluster_t *c);

/**
 * The cluster's node ids, in the configured order; standalone, this node alone.
 * @param[out] ids  borrowed; valid as long as @p c.
 * @return how many.
 */
size_t cluster_nodes(const cluster_t *c, const uint32_t **ids);

/**
 * The home node of the user or group @p id of @p app (see Home nodes above); standalone,
 * this node. Pure function of cluster_nodes, @p app and @p id.
 */
uint32_t cluster_home(const cluster_t *c, const char *app, const char *id);

/** The index of @p node in cluster_nodes (the bit of a home in a wait mask), or -1. */
int cluster_index_of(const cluster_t *c, uint32_t node);

/**
 * Is @p node alive: this node always; a peer when its heartbeat came within
 * CLUSTER_ALIVE_MS; false for an id not in cluster_nodes. Any thread, lock-free.
 */
bool cluster_node_alive(const cluster_t *c, uint32_t node);

/** Is the NATS connection up? Standalone: false. Any thread, lock-free. */
bool cluster_bus_up(const cluster_t *c);

/** Read the gauges and counters (each read atomically). Any thread. */
void cluster_stats(const cluster_t *c, cluster_stats_t *out);

/**
 * The bus round trips (seconds) of the pings, written by the cluster thread only.
 * @return borrowed; valid as long as @p c.
 */
const hist_t *cluster_rtt(const cluster_t *c);

#endif
