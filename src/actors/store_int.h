/**
 * store internals shared by store.c (the loop, batches, routing), store_msg.c (storing
 * messages into conversations) and store_group.c (groups, contacts, READ, RECALL).
 * Everything here runs on the store's thread.
 */
#ifndef CIM_ACTORS_STORE_INT_H
#define CIM_ACTORS_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/conv.h"
#include "actors/store.h"
#include "actors/worker.h"
#include "core/blob.h"
#include "core/kv.h"
#include "core/snowflake.h"

typedef char store_uid_t[KV_ID_MAX + 1]; /* a user id */

/* Deliveries gathered for one worker during a batch. */
typedef struct outbox {
    delivery_t *items;
    uint32_t n, cap;
} outbox_t;

/* Something to push once the batch is committed: one encoded frame to every online device
 * of a list of users (except one session: the sender's own). */
typedef struct fanout {
    size_t req;            /* index of the request in the batch that made it */
    blob_t *blob;          /* a reference */
    uint16_t type;         /* FT_PUSH or FT_EVENT */
    uint64_t skip_sid;
    char app[KV_ID_MAX + 1];
    store_uid_t *users;    /* owned */
    size_t nusers;
    bool hook;             /* a message the app's webhook may want: its users with no device
                              online but the sender get message.offline / message.to_bot */
    store_uid_t from;      /* with hook: the sender */
} fanout_t;

/* A conversation state record as the batch sees it: read once from the database, changed
 * in memory by every message and op of the batch, written once before the commit. */
typedef struct conv_ent {
    conv_rec_t rec;
    bool exists;            /* in the database or created in this batch */
    bool dirty;             /* to be written */
    uint16_t klen;
    uint32_t slot;          /* its index in store.convs */
    uint8_t key[CONV_UKEY_MAX];
} conv_ent_t;

struct store {
    server_t *srv;
    uv_thread_t thread;
    uv_loop_t loop;
    mbox_t box;
    uv_timer_t retention;
    uv_timer_t pace;         /* a paced wake-up's drain (store_pace_wait) */
    uint64_t last_drain_ms;  /* loop time of the last drain's start */
    uint64_t win_start_ns, win_busy_ns; /* this window's start and its time draining */
    double busy;             /* the share of the last full window spent draining */
    bool started;
    bool box_ready;        /* the mailbox was made (store_free drains it) */
    snowflake_t ids;
    uint64_t last_recorded; /* the generator position last written to meta */
    store_req_t **batch;   /* STORE_BATCH_MAX */
    size_t cur;            /* index of the request being applied */
    fanout_t *fan;         /* this batch's fanouts, in apply order */
    size_t nfan, capfan;
    outbox_t *out;         /* one per worker */
    conv_ent_t **convs;    /* this batch's conversation records, open addressing */
    size_t nconvs, capconvs;
    /* the same records in the order the batch met them: flushing and forgetting them
     * walk these, never the table, which keeps the size of the largest batch seen */
    conv_ent_t **conv_list;
    size_t caplist;
    kv_retention_t rpos;
    bool retaining;        /* a retention pass is under way */
    uint64_t dedup_expired_ms; /* loop time of the last dedup_expire */
    /* with a cluster (docs/SCALING.md) */
    uv_timer_t horizon;    /* reports the generator's horizon to the cluster */
    bool xstarted;         /* the cluster said it runs: outbox handed over, timer on */
    uint64_t xapplied;     /* the newest id store__apply appended (persisted in meta) */
    uint64_t xapplied_saved; /* ... as last written to meta */
    struct xq {            /* this batch's own messages for the merge, in id order */
        size_t req;        /* the request that made it */
        uint64_t id;
        uint32_t home;     /* where it goes (this node: its own merge) */
        uint64_t skip_sid;
        uint8_t *xmsg;     /* owned */
        size_t len;
    } *xq;
    size_t nxq, capxq;
    /* statistics, store thread only (stats: read by /metrics too) */
    uint64_t max_batch;
    store_stats_t stats;
};

/** A message to store in a conversation and push (store__put_message). */
typedef struct smsg {
    const char *app;
    const char *from;
    uint8_t from_kind;
    uint8_t conv_type;            /* DIRECT or GROUP */
    const char *to;               /* user id, or group id (decimal) */
    uint8_t msg_type;
    const char *cmid;             /* client_msg_id, may be "" */
    const uint8_t *body;
    size_t body_len;
    bool tail;                    /* body is the record but its id and time (message.h) */
    const store_uid_t *users;     /* whose timelines get it (the participants) */
    size_t nusers;
    bool index;                   /* also in the conversation: history, last message, unread */
    uint64_t skip_sid;            /* the sending session, not pushed to */
    bool hook;                    /* a user's message (SEND): webhook events for offline
                                     recipients, if the app wants them */
} smsg_t;

/**
 * Store @p m: a new id, the msgs record, a timeline entry per user, and when m->index the
 * conversation index (SYSTEM messages also in the group events index) and the
 * conversation records it changes (the sender's read cursor; a record for a user it
 * reaches first); then queue its PUSH to every user. In a cluster only the record and an
 * outbox entry are written here: the rest is done when the merge releases it
 * (store__apply), so that it keeps its place in id order among messages of other homes.
 * @param[out] id, time_ms  the message's id and time.
 * @param[out] homes  NULL, or (in a cluster) the other homes whose timelines get it, as bits
 *                    by index in cluster_nodes: whoever answers waits for their applies.
 * @return 0 or rc (the transaction must be aborted).
 */
int store__put_message(store_t *st, kv_txn_t *txn, const smsg_t *m, uint64_t *id,
                       uint64_t *time_ms, uint64_t *homes);

/**
 * The batch's copy of a conversation record, read from the database on first use. What
 * the batch did before is in it: the records a DIRECT direction's first message makes
 * (once its gathered index append shows the direction new: kv_cmsg_news) are made first.
 * @param[in] create  make an empty record when there is none (then ->exists is set).
 * @param[out] out    the entry, or NULL when there is none and !create. Change ->rec and
 *                    set ->dirty: store__conv_flush writes it before the commit.
 * @return 0 or rc.
 */
int store__conv(store_t *st, kv_txn_t *txn, const uint8_t *key, size_t klen, bool create,
                conv_ent_t **out);

/** Write the batch's changed conversation records, in key order (before the commit), the
 *  records of its new DIRECT directions with them. @return 0 or rc. */
int store__conv_flush(store_t *st, kv_txn_t *txn);

/**
 * In a cluster, what a message of another home changes here beyond timelines, on its first
 * apply: a GroupEvent of a group homed elsewhere updates this home's copy of the group; a
 * RECALL erases the recalled record. @return 0 or rc.
 */
int store__mirror(store_t *st, kv_txn_t *txn, const store_apply_t *a);

/** Hand this batch's own messages of request @p req to the cluster (after the commit). */
void store__xq_flush(store_t *st, size_t req);

/** Drop this batch's own messages (a failed batch; stopping). */
void store__xq_drop(store_t *st);

/** Forget the batch's conversation records (after the commit, or a failed batch). */
void store__conv_reset(store_t *st);

/** Free the batch's conversation tables (at the end). */
void store__conv_free(store_t *st);

/** Queue @p b (a new reference is taken) for @p type to @p users after the commit. */
void store__fanout(store_t *st, blob_t *b, uint16_t type, const char *app,
                   const store_uid_t *users, size_t nusers, uint64_t skip_sid);

/** The members of group @p gid, in id order. @param[out] users owned (mem_free). */
int store__roster(kv_txn_t *txn, const char *app, uint64_t gid, store_uid_t **users,
                  size_t *n);

/**
 * Look a group id up: @p gid its number; @p alive true when it exists and is not
 * dismissed. @return 0, RC_ENOTFOUND (malformed or unknown id), or rc.
 */
int store__group_state(kv_txn_t *txn, const char *app, const char *group_id, uint64_t *gid,
                       bool *alive);

/** Make every id issued from now on greater than @p floor (0: no-op). */
void store__ids_above(store_t *st, uint64_t floor);

/** Apply a message the merge released (store_apply_t). @return 0 or rc. */
int store__apply(store_t *st, kv_txn_t *txn, store_apply_t *a);

/** An outbox entry after a restart: a question from its origin, or its new id
 *  (store_rejoin_t). Logical failures are in q; @return rc only for storage. */
int store__rejoin(store_t *st, kv_txn_t *txn, store_rejoin_t *q);

/** Apply a SEND (DIRECT or GROUP). */
int store__send(store_t *st, kv_txn_t *txn, store_send_t *r);

/** Apply an op (store_group.c). Rejections set op->code and return 0; rc only for storage. */
int store__op(store_t *st, kv_txn_t *txn, store_op_t *op);

/** The admin API's user ops (store_admin.c). */
int store__admin_op(kv_txn_t *txn, store_op_t *op);

#endif
