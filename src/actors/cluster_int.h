/**
 * cluster internals shared by cluster.c (the connection, heartbeats, liveness, relay),
 * cluster_xhome.c (messages between homes) and cluster_online.c (CONTACT_LIST's online flag
 * for contacts of other homes). Everything here is the cluster thread's unless a field says
 * otherwise.
 */
#ifndef CIM_ACTORS_CLUSTER_INT_H
#define CIM_ACTORS_CLUSTER_INT_H

#include <nats/nats.h>
#include <stdatomic.h>
#include <uv.h>

#include "actors/cluster.h"
#include "actors/xhome.h"
#include "core/mbox.h"

struct store_send;
struct xh_out;
struct xh_check;
struct xh_wait;
struct onl_wait;

#define SUBJ_MAX (CONF_CLUSTER_NAME_MAX + 32) /* "N.node.<u32>.pong" and the NUL */
#define TEXT_MAX 96                          /* a heartbeat's or a ping's text */
#define URLS_MAX 32                          /* servers in cluster_url */
#define DRAIN_BUDGET 256                     /* mailbox messages per wake-up */
#define CLOSE_WAIT_MS 5000                   /* for libnats's threads to end at stop */
#define CLOSE_DRAIN_MS 1000                  /* for a subscription's queue at stop */
#define WAIT_BUCKET_BITS 12                  /* 4096 buckets of waiting requests by id */

enum { MSG_CONNECTED = 1, MSG_DISCONNECTED, MSG_RECONNECTED, MSG_CLOSED, MSG_HEARTBEAT,
       MSG_PONG, MSG_STOP, MSG_RELAY,
       /* messages between homes (cluster_xhome.c) */
       MSG_XCHECK, MSG_XANS, MSG_XCOMMITTED, MSG_XACK, MSG_XIN, MSG_XWM, MSG_XHORIZON,
       MSG_XAPPLIED, MSG_XRESEND, MSG_XAPD, MSG_XCHECK_OP, MSG_XREAD, MSG_XPRES, MSG_XDONE,
       MSG_XFWD, MSG_XFWD_ANS, MSG_XRUN_OP, MSG_XTG,
       /* the outbox after a restart (cluster_rejoin.c) */
       MSG_XRJQ, MSG_XRJA, MSG_XRJ_DONE,
       /* contacts' online flags (cluster_online.c) */
       MSG_XONL, MSG_XONA };

/* What libnats's threads (and cluster_stop) hand to the cluster thread. */
typedef struct cl_msg {
    mbox_node_t node;
    int kind;          /* MSG_* */
    uint32_t from;     /* MSG_HEARTBEAT: the sender; MSG_PONG: the node pinged; MSG_XAPD:
                          the home that applied it */
    uint64_t start_ms; /* MSG_HEARTBEAT */
    uint64_t instance; /* MSG_HEARTBEAT */
    uint32_t bus_session; /* MSG_HEARTBEAT: the sender's connection count (0: not said) */
    uint64_t rtt_ns;   /* MSG_PONG */
    uint32_t to;       /* MSG_RELAY, MSG_XREAD: the node it goes to; MSG_XACK: the home */
    bool to_home;      /* MSG_RELAY: .rin (true) or .rout */
    void *ptr;         /* MSG_XCHECK, MSG_XCOMMITTED, MSG_XRESEND: a
                          store_send_t; MSG_XCHECK_OP: a store_op_t; MSG_XIN: a natsMsg;
                          MSG_XAPPLIED: a store_apply_t; MSG_XDONE, MSG_XFWD: a
                          store_send_t or store_op_t; MSG_XRUN_OP: a store_op_t; MSG_XONL:
                          an xonline_req_t; MSG_XRJQ, MSG_XRJ_DONE: a store_rejoin_t */
    uint64_t id;       /* MSG_XANS: the token; MSG_XACK, MSG_XAPD, MSG_XRJA: the msg id;
                          MSG_XHORIZON: it */
    uint64_t seq;      /* MSG_XACK: the stream sequence; MSG_XANS, MSG_XRJA: the floor */
    int code;          /* MSG_XANS: cim_Code; MSG_XACK: 0 stored, else failed; MSG_XRJA:
                          RJ_* flags */
    size_t len;        /* MSG_RELAY, MSG_XWM, MSG_XANS, MSG_XREAD, MSG_XPRES, MSG_XONA:
                          bytes in data */
    uint8_t data[];    /* MSG_RELAY: the message */
} cl_msg_t;

/* A message committed here, on its way: published (unless it stays here), answered, then
 * into this home's merge, in id order. */
typedef struct xh_out {
    struct xh_out *next;
    uint8_t *xmsg;        /* the XHOME_MSG, owned */
    size_t xmsg_len;
    uint64_t id;
    uint32_t home;        /* where it is published (this node: nowhere) */
    uint64_t skip_sid;    /* the sending session */
    bool stored;          /* JetStream has it (or it stays here) */
    bool rejoin;          /* not published (or merged) until its homes answered
                             (cluster_rejoin.c) ... */
    struct xh_rj *rj;     /* ... in this question */
    uint64_t sent_ms;     /* the last publish (0: to do) */
} xh_out_t;

/* Bus round trips, seconds: loopback is tens of microseconds, a LAN well under 1 ms. */
static const double rtt_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                0.025,  0.05,    0.1,    0.25,  0.5,   1,     2.5};

struct cluster {
    const conf_t *conf;
    uint32_t self;
    size_t n; /* nodes */
    uint32_t nodes[CONF_CLUSTER_MAX];
    bool enabled;
    /* set by cluster_start, before the thread: immutable for every thread after */
    uint64_t start_ms; /* Unix ms */
    uint64_t instance; /* random, per start */
    char prefix[SUBJ_MAX];    /* "N.node." */
    char subj_hb[SUBJ_MAX];   /* N.node.<self>.hb */
    char subj_hbs[SUBJ_MAX];  /* N.node.*.hb */
    char subj_mine[SUBJ_MAX]; /* N.node.<self>.* (ping, pong) */
    char subj_pong[SUBJ_MAX]; /* N.node.<self>.pong */
    /* published for any thread */
    _Atomic int bus_up;
    _Atomic uint64_t seen_ms[CONF_CLUSTER_MAX]; /* monotonic ms of the last heartbeat; 0 never */
    ctr_t reconnects;
    hist_t rtt;
    _Atomic uint64_t relay_queued; /* bytes of MSG_RELAY in the mailbox */
    _Atomic uint64_t relay_sent, relay_received, relay_refused; /* counters (/metrics) */
    /* set before cluster_start: immutable for every thread after */
    cluster_relay_cb relay_cb;
    cluster_down_cb down_cb;
    void *relay_ctx;
    /* the thread */
    uv_thread_t thread;
    uv_loop_t loop;
    mbox_t box;
    uv_timer_t hb_timer, ping_timer, sweep_timer;
    bool started, loop_open;
    /* cluster thread only (and cluster_stop after the join) */
    bool stopping, nats_opened;
    natsOptions *opts;
    natsConnection *nc;
    natsSubscription *sub_hbs, *sub_mine;
    bool was_alive[CONF_CLUSTER_MAX];
    uint64_t peer_instance[CONF_CLUSTER_MAX];
    uint32_t peer_session[CONF_CLUSTER_MAX];
    uint32_t bus_session; /* connections to the bus so far (1 = the first) */
    /* messages between homes (cluster_xhome.c); set before cluster_start: */
    void *srv;                  /* the server_t: its store and workers */
    cluster_check_cb check_cb;
    cluster_has_cb has_cb;
    cluster_deliver_cb deliver_cb;
    cluster_presence_cb presence_cb;
    char stream[SUBJ_MAX];      /* the JetStream stream: "<N>_out" */
    char subj_out[SUBJ_MAX];    /* what this home consumes: N.out.*.<self> */
    char subj_wms[SUBJ_MAX];    /* N.wm.* */
    char durable[SUBJ_MAX];     /* this home's consumer: "home-<self>" */
    /* any thread */
    _Atomic uint64_t xreleased; /* the newest id this home's merge released */
    _Atomic uint64_t x_forwarded, x_consumed, x_dropped, x_late, x_refused, x_pending;
    _Atomic uint64_t x_reissued; /* held messages given a new id (cluster_rejoin.c) */
    _Atomic uint64_t x_held;     /* messages held while their homes were asked */
    hist_t merge_delay;         /* seconds from arrival in the merge to release */
    /* cluster thread */
    jsCtx *js;
    natsSubscription *sub_out, *sub_wm;
    bool js_ready;              /* the stream is there on this connection */
    bool js_published;          /* an asynchronous publish was made (its pending list exists) */
    uint64_t js_try_ms;         /* the last attempt to set JetStream up */
    uv_timer_t wm_timer;
    xmerge_t merge;
    struct xh_out *out_head, *out_tail; /* committed here, not yet in the merge: id order */
    size_t nout;
    uint64_t store_horizon;     /* the store issues no id below it any more */
    uint64_t acked_seq[CONF_CLUSTER_MAX];  /* per destination home (index): the newest
                                              stream sequence JetStream acknowledged */
    uint64_t delivered_seq;     /* every message of this home's up to this stream sequence
                                   has been delivered by the current consumer (or acked) */
    uint32_t sub_gen;           /* the current consumer's generation (one per connection) */
    struct xh_tag {
        cluster_t *c;
        uint32_t gen;
    } tags[16];                 /* the consumers' callback closures, by generation % 16 */
    xhome_wm_t *held_wm[CONF_CLUSTER_MAX]; /* per origin: a watermark waiting for the
                                              consumer to reach its sequence */
    struct xh_check *checks;    /* checks waiting for their answer */
    struct xh_wait *waits;      /* requests waiting for their message to be in every
                                   timeline before their answer, newest first */
    struct xh_wait *wbucket[1u << WAIT_BUCKET_BITS]; /* the same by msg id (chained) */
    uint64_t next_token;
    bool dead[CONF_CLUSTER_MAX];         /* per origin: down, so maybe to be waived */
    uint64_t down_probe[CONF_CLUSTER_MAX]; /* ... once this probe came back */
    uint64_t probe_sent, probe_seen, probe_ms;
    bool need_probe;
    bool store_told;            /* store_xhome_start was called */
    struct xh_rj *rejoins, *rj_tail; /* messages held while their homes are asked whether
                                   they would come late (cluster_rejoin.c), oldest first */
    uint64_t rj_fresh;          /* the last id whose first copy was published at once */
    /* contacts' online flags (cluster_online.c) */
    _Atomic uint64_t onl_asked, onl_unanswered; /* counters (/metrics), any thread */
    struct onl_wait *onl_waits; /* CONTACT_LISTs waiting for their contacts' homes, in the
                                   order asked (so of their deadlines) */
    struct onl_wait **onl_last; /* where the next one goes (&onl_waits when empty) */
    uint64_t onl_token;         /* the last question's token */
};

/* ---- cluster.c -------------------------------------------------------------------------- */

/** Monotonic milliseconds. */
uint64_t cluster__now_ms(void);

/** Hand @p m to the cluster thread (freed, with what it carries, when refused). */
void cluster__post(cluster_t *c, cl_msg_t *m, bool force);

/* ---- cluster_xhome.c (cluster thread unless said) --------------------------------------- */

/** Set up the merge (cluster_new, main thread). */
void cluster__xh_init(cluster_t *c);

/** The bus is up: JetStream context, stream, consumer, subscriptions. */
void cluster__xh_bus_up(cluster_t *c);

/** Peer @p node (CLUSTER_ALL_NODES: every peer) is down / is up. */
void cluster__xh_down(cluster_t *c, uint32_t node);
void cluster__xh_up(cluster_t *c, uint32_t node);

/** A MSG_X* message. */
void cluster__xh_take(cluster_t *c, cl_msg_t *m);

/** N.node.<self>.xchk / .xans arrived (libnats's delivery thread). */
void cluster__xh_on_check(cluster_t *c, natsConnection *nc, natsMsg *msg);
void cluster__xh_on_answer(cluster_t *c, natsMsg *msg);

/** N.node.<self>.xapq (is it applied?) / .xapd (it is) arrived (libnats's delivery thread). */
void cluster__xh_on_query(cluster_t *c, natsConnection *nc, natsMsg *msg);
void cluster__xh_on_applied(cluster_t *c, natsMsg *msg);

/** N.node.<self>.xsnd / .xop: a group's SEND / change forwarded by another node to this,
 *  the group's home; .xfa: the answer to one this node forwarded (libnats's thread). */
void cluster__xh_on_fwd_send(cluster_t *c, natsConnection *nc, natsMsg *msg);
void cluster__xh_on_fwd_op(cluster_t *c, natsConnection *nc, natsMsg *msg);
void cluster__xh_on_fwd_answer(cluster_t *c, natsMsg *msg);

/** N.node.<self>.xrd: a reader of another home read up to an id (libnats's thread). */
void cluster__xh_on_read(cluster_t *c, natsMsg *msg);

/** N.node.<self>.xpr: a presence change of a user of another home (libnats's thread). */
void cluster__xh_on_presence(cluster_t *c, natsMsg *msg);

/** N.node.<self>.xtg: a transient message to a group, from another node (libnats's
 *  thread): to its members homed here. */
void cluster__xh_on_group_transient(cluster_t *c, natsMsg *msg);

/** Free what a refused or leftover MSG_X* message carries (any thread). */
void cluster__xh_drop(cluster_t *c, cl_msg_t *m);

/** Stopping: unsubscribe and free every pending thing (before the connection closes). */
void cluster__xh_stop(cluster_t *c);

/** The timer: watermarks, retries, probes, timeouts (every CLUSTER_WATERMARK_MS). */
void cluster__xh_tick(cluster_t *c);

/** Publish @p o to JetStream (again). */
void cluster__xh_publish(cluster_t *c, xh_out_t *o);

/* ---- cluster_rejoin.c (cluster thread unless said): the outbox after a restart ---------- */

/** @p o, a copy just committed (@p last: the last of its id) or of the outbox at start
 *  (@p restart), is in the out list: held (true: o->rejoin) while its homes are asked,
 *  when of the outbox or older than RJ_STALE_MS (the origin stalled: its homes may have
 *  waived it), or when an earlier copy of its id is held. */
bool cluster__rj_hold(cluster_t *c, xh_out_t *o, bool restart, bool last);

/** @p o is to be published again: held (true) while its homes are asked when it is older
 *  than RJ_STALE_MS and no copy of its id is stored yet. */
bool cluster__rj_hold_again(cluster_t *c, xh_out_t *o);

/** A MSG_XRJQ, MSG_XRJA or MSG_XRJ_DONE message. */
void cluster__rj_take(cluster_t *c, cl_msg_t *m);

/** N.node.<self>.xrjq (an origin asks) / .xrja (a home answers) (libnats's thread). */
void cluster__rj_on_ask(cluster_t *c, natsMsg *msg);
void cluster__rj_on_answer(cluster_t *c, natsMsg *msg);

/** The timer: ask again, give up on homes that are down, decide. */
void cluster__rj_tick(cluster_t *c, uint64_t now);

/** Stopping: free every pending question. */
void cluster__rj_stop(cluster_t *c);

/* ---- cluster_online.c (cluster thread unless said) -------------------------------------- */

/** N.node.<self>.xonl: which of these users of this home are online? Answered here, on
 * libnats's delivery thread (router lookups). */
void cluster__onl_on_ask(cluster_t *c, natsConnection *nc, natsMsg *msg);

/** N.node.<self>.xona: a home's answer to one of this node's questions (libnats's thread). */
void cluster__onl_on_answer(cluster_t *c, natsMsg *msg);

/** A MSG_XONL or MSG_XONA message. */
void cluster__onl_take(cluster_t *c, cl_msg_t *m);

/** Free what a refused or leftover MSG_XONL carries (any thread). */
void cluster__onl_drop(cluster_t *c, cl_msg_t *m);

/** Peer @p node (CLUSTER_ALL_NODES: every peer) is down: stop waiting for its answers. */
void cluster__onl_down(cluster_t *c, uint32_t node);

/** The timer: answer the CONTACT_LISTs whose wait is over. */
void cluster__onl_tick(cluster_t *c);

/** Stopping: free every waiting CONTACT_LIST (their sessions are gone). */
void cluster__onl_stop(cluster_t *c);

#endif
