/**
 * store: the one LMDB writer.
 *
 * A thread with its own loop and mailbox. Workers post write requests; on each wake-up
 * the store drains what is queued (up to STORE_BATCH_MAX requests), applies the batch in
 * one write transaction — group commit: one fsync per batch with durability = sync —
 * commits, and only then completes: SEND_ACKs and PUSHes go back to the workers, one
 * mailbox message per worker per batch carrying everything for that worker's sessions.
 * Nothing is acknowledged before its commit.
 *
 * Pacing: a batch of one or two requests costs nearly what a batch of hundreds does (every
 * page it touches is copied, the commit, the wake-ups), so at a middling load, with a
 * wake-up per message, the writer spends two to three times the CPU per message it spends
 * when saturated — and that CPU pushes the machine into queueing. So once the writer has
 * been busy more than STORE_PACE_BUSY of the last STORE_BUSY_WINDOW_MS, a wake-up within
 * `commit_pace_ms` of the previous drain waits for the rest of that interval, and the batch
 * gathers what arrives meanwhile (docs/BENCHMARKS.md has the measurements). A lightly
 * loaded writer drains at once, as does one whose last drain took longer than the interval
 * (a synced commit).
 *
 * Message ids: the store owns the SnowFlake generator, seeded at start with the largest id
 * stored, so ids are strictly increasing across restarts and id order = commit order. A
 * stored message is encoded once (cim.Message) and the same bytes are the PUSH body for
 * every device (blob_t, refcounted) and the record in the msgs database.
 *
 * Backpressure: the mailbox is bounded (STORE_QUEUE_MAX); store_send returns RC_EFULL
 * when the writer is behind, and the worker answers SERVER_BUSY. A full map is grown and
 * the batch retried (never fatal); any other storage failure answers INTERNAL to every
 * SEND of the batch (nothing of it was committed).
 *
 * Retention: with retention_days > 0, the store removes timeline entries, dedup records
 * and messages older than that in small steps (STORE_RETENTION_BUDGET records per
 * transaction) between batches, once an hour and at start.
 *
 * Threading: store_new/start/stop/free on the main thread; store_send, store_send_new,
 * store_ack and store_login from any thread (the mailbox); everything else runs on
 * the store's own thread.
 */
#ifndef CIM_ACTORS_STORE_H
#define CIM_ACTORS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "actors/server.h"
#include "core/kv.h"
#include "core/mbox.h"
#include "core/metrics.h"

#define STORE_QUEUE_MAX 65536       /* requests queued before store_send gets RC_EFULL */
#define STORE_PACE_BUSY 0.25        /* pace only above this share of time spent draining */
#define STORE_BUSY_WINDOW_MS 100    /* ... measured over windows this long */
#define STORE_BATCH_MAX 8192        /* requests applied per write transaction at most */
#define STORE_RETENTION_BUDGET 1000 /* records removed per retention transaction */

typedef struct store store_t;

/* The LoginRsp reason for a user the app disabled (admin API): checked by the worker, and
 * again by the store in its own order (a disable racing a login). */
#define USER_DISABLED "user disabled"

enum { STORE_REQ_SEND = 1, STORE_REQ_LOGIN, STORE_REQ_ACK, STORE_REQ_OP, STORE_REQ_STOP,
       STORE_REQ_APPLY, STORE_REQ_XSTART, STORE_REQ_REJOIN };

#define STORE_NO_WORKER UINT32_MAX /* store_send_t.worker: nobody to answer (a republish) */
#define STORE_META_XAPPLIED "xapplied" /* meta: the newest id store__apply appended (the
                                           floor a restarted home answers checks with) */

/** Request header (first member of every request). */
typedef struct store_req {
    mbox_node_t node;
    int kind; /* STORE_REQ_* */
    /* NULL: the completion goes back to the request's worker (a session asked). Else it
     * is called on the store's thread after the commit (or its failure) and takes the
     * request: the admin API's requests go back to its own thread this way. It must only
     * hand the request on (a mailbox), never block. */
    void (*done)(struct store_req *q);
    void *done_arg; /* done's own */
} store_req_t;

/**
 * A login that passed the token check, on its way to the store and back. The store
 * registers the user when unknown, then reads the user's newest timeline id and the
 * device's cursor *in its own order*: after every write queued before (a PUSH_ACK the
 * device sent on an earlier connection included), and after the session was registered
 * in the router (so a message committed later is pushed, one committed earlier is within
 * latest). The completion comes back to the session's worker, which answers LoginRsp.
 * A login from a BOT device marks the user a bot (KV_USER_BOT, for webhooks' message.to_bot)
 * when it is not one yet; the mark stays when other kinds log in later.
 */
typedef struct store_login {
    store_req_t hdr;
    uint32_t worker;
    uint64_t sid;
    uint32_t req_id;
    char app[KV_ID_MAX + 1];
    char user[KV_ID_MAX + 1];
    char device[KV_ID_MAX + 1];
    uint8_t kind;        /* cim_DeviceKind of the device */
    int code;            /* out: cim_Code */
    uint64_t latest;     /* out: newest id in the user's timeline */
    uint64_t acked;      /* out: the device's cursor */
} store_login_t;

/**
 * A validated SEND on its way to the store, and back: the store fills code, msg_id and
 * time_ms and hands the request to the sender's worker as the SEND_ACK to answer.
 */
typedef struct store_send {
    store_req_t hdr;
    uint32_t worker;               /* the sender's worker and session */
    uint64_t sid;
    uint32_t req_id;
    uint8_t conv_type;             /* cim_ConvType */
    uint8_t msg_type;              /* cim_MsgType */
    uint8_t from_kind;             /* cim_DeviceKind of the sending device */
    bool system;                   /* the admin API's SYSTEM message: no membership check */
    char app[KV_ID_MAX + 1];
    char from[KV_ID_MAX + 1];
    char to[KV_ID_MAX + 1];
    char cmid[KV_ID_MAX + 1];      /* client_msg_id */
    /* In a cluster (a DIRECT message, docs/SCALING.md): the store commits the message
     * and an outbox entry, appends it to no timeline, and hands the request to the
     * cluster (cluster_xhome_committed), which answers it once JetStream has it. */
    bool xhome;
    uint32_t home;                 /* xhome: the recipient's home node */
    uint64_t floor;                /* xhome: the id must be above this (the home's floor) */
    bool rejoin;                   /* an outbox entry handed over at start (STORE_NO_WORKER) */
    bool last_copy;                /* xhome, handed to the cluster: the last XHOME_MSG of its
                                      id (commit_homes: this home's own, if any) */
    bool wait_apply;               /* cluster: stored here, not appended yet (a group
                                      message): answered once applied here and at the homes
                                      of wait_homes (cluster_xhome_done) */
    bool transient;                /* xhome: a transient message, delivered by the recipient's
                                      home after its check, never stored */
    uint64_t wait_homes;           /* cluster, out: the other homes whose timelines get it
                                      (bits by index in cluster_nodes): their applies are
                                      waited for too */
    uint32_t xorigin;              /* cluster: sent by a session of node xorigin (a group's
                                      message, forwarded to the group's home): answered there
                                      with token xtoken (0: a session of this node) */
    uint64_t xtoken;
    char reason[112];              /* out: the reason of a refusal ("": the usual one) */
    uint8_t *xmsg;                 /* out (xhome): the XHOME_MSG to publish, owned */
    size_t xmsg_len;
    int code;                      /* out: cim_Code */
    uint64_t msg_id;               /* out */
    uint64_t time_ms;              /* out */
    bool tail;                     /* body holds the record but msg_id and time_ms
                                      (message_tail_encode), not the raw body */
    uint32_t body_len;
    uint8_t body[];
} store_send_t;

/* store_apply_t.result */
enum { STORE_APPLIED = 0, STORE_APPLY_DUP = 1, STORE_APPLY_LATE = 2 };

/**
 * A message the cluster's merge released (actors/xhome.h): append it to the timelines of
 * its users (the list it carries; else the DIRECT pair's users homed on this node), index
 * it, push it, as a local message. Idempotent by id, per timeline: one that has it gets
 * nothing (all of them: STORE_APPLY_DUP); one whose newest id is greater gets nothing
 * either, as appending it there would break that timeline's order (logged;
 * STORE_APPLY_LATE). A message of this node's own origin also leaves the outbox.
 * hdr.done is always set (the cluster's).
 */
typedef struct store_apply {
    store_req_t hdr;
    uint64_t id;
    uint32_t origin;
    uint8_t conv_type;
    uint8_t msg_type;
    uint8_t flags;                 /* XHOME_F_* (actors/xhome.h) */
    uint64_t skip_sid;             /* the sending session (own origin), not pushed to */
    char app[KV_ID_MAX + 1];
    char from[KV_ID_MAX + 1];
    char to[KV_ID_MAX + 1];
    int result;                    /* out: STORE_APPLIED, _DUP, _LATE, or an rc */
    void *ctx;                     /* the cluster's */
    uint32_t nusers;               /* XHOME_F_USERS: the users, after the record in rec[] */
    uint32_t ulist_len;
    uint32_t rec_len;
    uint8_t rec[];                 /* the encoded cim.Message, then the user list */
} store_apply_t;

/**
 * An outbox entry after a restart (docs/SCALING.md, "Rejoining: the outbox"): a message this
 * node committed before it stopped, which another home may have released past meanwhile.
 *  - STORE_RJ_ASK, at a home it goes to: would @c copy (its XHOME_MSG for this home) come
 *    late here? out: @c has (this home holds its record: it was applied here), @c late (a
 *    timeline it goes to here already holds a greater id).
 *  - STORE_RJ_REISSUE, at its origin: give outbox entry @c id a new id above @c floor — its
 *    record, every copy and the dedup window move to the new id in one commit, and the new
 *    copies go to the cluster as if just committed. out: @c new_id (0: the entry was gone).
 * hdr.done is always set (the cluster's); @c rc is the outcome (RC_ESTORE: not committed).
 */
enum { STORE_RJ_ASK = 1, STORE_RJ_REISSUE };

typedef struct store_rejoin {
    store_req_t hdr;
    int what;                      /* STORE_RJ_* */
    uint64_t id;
    uint32_t origin;               /* ASK: the node that asks */
    uint64_t floor;                /* REISSUE */
    bool has, late;                /* ASK, out */
    uint64_t new_id;               /* REISSUE, out */
    int rc;                        /* out */
    size_t len;                    /* ASK: the copy */
    uint8_t copy[];
} store_rejoin_t;

/** Queue @p q (never refused for the bound). @return 0, RC_ECLOSED (stopping: caller keeps
 *  @p q). */
int store_rejoin(store_t *st, store_rejoin_t *q);

/**
 * Queue an apply (never refused for the bound: the cluster bounds what it releases).
 * @return 0 (comes back through hdr.done), RC_ECLOSED (stopping: caller keeps @p a).
 */
int store_apply(store_t *st, store_apply_t *a);

/**
 * Any other write a session asks for (groups, READ, RECALL, contacts, blocks): the request
 * frame's fields, validated for format by the worker; the store checks them against the
 * data (membership, ownership, existence), applies them and fills in the answer. Changes
 * that others must learn (SYSTEM messages with a GroupEvent, RECALL messages, READ events)
 * are stored and pushed by the store after the commit.
 */
typedef struct store_op {
    store_req_t hdr;
    uint32_t worker;               /* the asking session */
    uint64_t sid;
    uint32_t req_id;
    uint32_t type;                 /* the request frame type: FT_GROUP_CREATE, FT_READ, ... */
    uint8_t from_kind;             /* cim_DeviceKind of the asking device */
    uint8_t conv_type;             /* READ */
    bool open;                     /* GROUP_CREATE */
    char app[KV_ID_MAX + 1];
    char user[KV_ID_MAX + 1];      /* who asks */
    char target[KV_ID_MAX + 1];    /* group id, conversation peer or user, per type */
    char name[KV_ID_MAX + 1];      /* GROUP_CREATE */
    uint64_t msg_id;               /* READ: up_to_msg_id; RECALL: the message */
    uint64_t arg;                  /* STORE_OP_USER_REVOKE: tokens_before_s */
    int8_t disabled;               /* STORE_OP_USER_PUT: -1 keep, 0 enable, 1 disable */
    bool created;                  /* out: STORE_OP_USER_PUT made the user */
    kv_user_t urec;                /* out: STORE_OP_USER_*: the record as written */
    bool xusers;                   /* GROUP_CREATE, GROUP_ADD: the users of other homes were
                                      found there (the cluster asked) */
    uint32_t xorigin;              /* cluster: asked by a session of node xorigin (a group's
                                      change, forwarded to the group's home): answered there
                                      with token xtoken (0: a session of this node) */
    uint64_t xtoken;
    uint64_t wait_id;              /* cluster, out: the message the op made (a group event, a
                                      RECALL): answered once applied here and at ... */
    uint64_t wait_homes;           /* ... these other homes (bits by index in cluster_nodes) */
    int code;                      /* out: cim_Code */
    char reason[128];              /* out: when code is not OK */
    bool has_group;                /* out: group is set (GROUP_CREATE/JOIN answer) */
    uint8_t group[256];            /* out: the cim.Group, encoded */
    size_t group_len;
    uint32_t nusers;               /* GROUP_CREATE members, GROUP_ADD/KICK users */
    char users[][KV_ID_MAX + 1];
} store_op_t;

/* Ops only the admin API asks for (store_op_t.type, beside the request frame types). */
enum {
    STORE_OP_USER_PUT = 0x10001,  /* create op->target if missing; apply op->disabled */
    STORE_OP_USER_REVOKE,         /* tokens expiring up to op->arg (Unix s) are refused */
    STORE_OP_PEER_READ,           /* cluster: op->user, of another home, read its DIRECT
                                     conversation with op->target (homed here) up to
                                     op->msg_id: target's peer_read_up_to, EVENT{READ} */
};

/* What the store counts for /metrics; written by the store's thread only. */
typedef struct store_stats {
    ctr_t messages;        /* messages stored */
    ctr_t batches, requests;
    hist_t batch_size;     /* requests per write transaction */
    hist_t commit_seconds; /* kv_commit's time (the fsync with durability = sync) */
    ctr_t paced;           /* wake-ups that waited (pacing) */
} store_stats_t;

/**
 * The pacing rule: how long a wake-up @p since_ms after the previous drain waits before
 * draining, with @p busy the share of the last window the writer spent draining.
 * @return milliseconds, 0 = drain now.
 */
uint64_t store_pace_wait(uint32_t pace_ms, double busy, uint64_t since_ms);

/** The store's counters (any thread reads them). */
const store_stats_t *store_stats(const store_t *st);

/** @return a zeroed op with room for @p nusers user ids. Aborts on OOM. */
store_op_t *store_op_new(size_t nusers);

/**
 * Queue an op. Thread-safe.
 * @return 0 (it comes back to its worker as a completion), RC_EFULL (answer SERVER_BUSY),
 *         RC_ECLOSED; on failure the caller keeps @p op.
 */
int store_op(store_t *st, store_op_t *op);

/** @return a new store (not running) writing to srv->kv. Aborts on OOM. */
store_t *store_new(server_t *srv);

/**
 * Seed the id generator from the data and start the store's thread.
 * @return 0, or an rc (storage) or UV_E* code.
 */
int store_start(store_t *st);

/** @return a zeroed SEND request with room for @p body_len body bytes. Aborts on OOM. */
store_send_t *store_send_new(size_t body_len);

/**
 * Queue a SEND. Thread-safe.
 * @return 0 (the request is the store's until it comes back to its worker as a
 *         completion), RC_EFULL (writer behind: answer SERVER_BUSY; caller keeps @p req),
 *         RC_ECLOSED (stopping; caller keeps @p req).
 */
int store_send(store_t *st, store_send_t *req);

/**
 * The cluster thread runs (cluster.h): the store hands it its outbox (messages committed
 * and not yet applied here, to publish again) and from then on reports its id horizon
 * every CLUSTER_WATERMARK_MS. Any thread. @return 0 or RC_ECLOSED.
 */
int store_xhome_start(store_t *st);

/**
 * Move a device's delivery cursor forward to @p up_to (cumulative PUSH_ACK). Never
 * refused for being over the bound (the caller sends one per increase). Thread-safe.
 * @return 0, or RC_ECLOSED.
 */
int store_ack(store_t *st, const char *app, const char *user, const char *device,
              uint64_t up_to);

/**
 * Queue a login (see store_login_t). Thread-safe.
 * @return 0 (the request comes back to its worker as a completion), RC_EFULL (answer
 *         SERVER_BUSY), RC_ECLOSED; on failure the caller keeps @p req.
 */
int store_login(store_t *st, store_login_t *req);

/** Commit what is queued, stop the thread and join it. */
void store_stop(store_t *st);

/** Free a stopped store. NULL is a no-op. */
void store_free(store_t *st);

#endif
