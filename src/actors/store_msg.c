/* store_msg: storing a message into a conversation — the record, the timelines, the
 * conversation index and state — and SEND, direct and to groups. Store thread only. */
#include <stdlib.h> /* qsort */
#include <string.h>

#include "actors/cluster.h"
#include "actors/dedup.h"
#include "actors/feed.h"
#include "actors/group.h"
#include "actors/message.h"
#include "actors/send.h"
#include "actors/store_int.h"
#include "actors/webhook.h"
#include "actors/xhome.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/frame.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/str.h"

/* ---- the batch's conversation records ------------------------------------------------ */

static int conv_news(store_t *st, kv_txn_t *txn);

static conv_ent_t **conv_slot(store_t *st, const uint8_t *key, size_t klen)
{
    size_t i = (size_t)hash_fnv1a(HASH_FNV_BASIS, key, klen) & (st->capconvs - 1);
    for (;; i = (i + 1) & (st->capconvs - 1)) {
        conv_ent_t *e = st->convs[i];
        if (e == NULL || (e->klen == klen && memcmp(e->key, key, klen) == 0))
            return &st->convs[i];
    }
}

/* store__conv without the batch's new directions first (direction_new's own lookups,
 * and GROUP records, which no new direction makes). */
static int conv_get(store_t *st, kv_txn_t *txn, const uint8_t *key, size_t klen, bool create,
                    conv_ent_t **out)
{
    conv_ent_t **slot, *e;
    int rc;

    if ((st->nconvs + 1) * 2 > st->capconvs) {
        mem_free(st->convs);
        st->capconvs = st->capconvs ? st->capconvs * 2 : 1024;
        st->convs = mem_calloc(st->capconvs * sizeof(*st->convs));
        for (size_t i = 0; i < st->nconvs; i++) {
            e = st->conv_list[i];
            slot = conv_slot(st, e->key, e->klen);
            *slot = e;
            e->slot = (uint32_t)(slot - st->convs);
        }
    }
    if (st->nconvs == st->caplist) {
        st->caplist = st->caplist ? st->caplist * 2 : 512;
        st->conv_list = mem_realloc(st->conv_list, st->caplist * sizeof(*st->conv_list));
    }
    slot = conv_slot(st, key, klen);
    if ((e = *slot) == NULL) {
        e = mem_alloc(sizeof(*e));
        if ((rc = conv_load(txn, key, klen, &e->rec)) < 0 && rc != RC_ENOTFOUND) {
            mem_free(e);
            return rc;
        }
        e->exists = rc == 0;
        e->dirty = false;
        e->klen = (uint16_t)klen;
        memcpy(e->key, key, klen);
        e->slot = (uint32_t)(slot - st->convs);
        *slot = e;
        st->conv_list[st->nconvs++] = e;
    }
    if (!e->exists && create)
        e->exists = true;
    *out = e->exists ? e : NULL;
    return 0;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int conv_cmp(const void *pa, const void *pb)
{
    const conv_ent_t *a = *(conv_ent_t *const *)pa, *b = *(conv_ent_t *const *)pb;
    return key_cmp(a->key, a->klen, b->key, b->klen);
}

int store__conv(store_t *st, kv_txn_t *txn, const uint8_t *key, size_t klen, bool create,
                conv_ent_t **out)
{
    int rc = conv_news(st, txn);
    return rc < 0 ? rc : conv_get(st, txn, key, klen, create, out);
}

int store__conv_flush(store_t *st, kv_txn_t *txn)
{
    uint8_t val[CONV_REC_LEN];
    int rc;

    if ((rc = conv_news(st, txn)) < 0)
        return rc;

    /* In key order: neighbouring records share pages, so a page is found once rather than
     * per record (this flush went from 11.5 % to 7.1 % of the writer's samples). The table
     * keeps its slots; only the list's order changes. */
    if (st->nconvs > 1) /* conv_list is NULL before the first record (UBSan: qsort) */
        qsort(st->conv_list, st->nconvs, sizeof(*st->conv_list), conv_cmp);
    for (size_t i = 0; i < st->nconvs; i++) {
        conv_ent_t *e = st->conv_list[i];
        if (!e->dirty)
            continue;
        conv_encode(&e->rec, val);
        if ((rc = kv_rec_put(txn, KV_DB_CONVS, e->key, e->klen, val, sizeof(val))) < 0)
            return rc;
        e->dirty = false;
    }
    return 0;
}

void store__conv_reset(store_t *st)
{
    /* A batch of one message meets a record or two: clearing only those keeps a small
     * batch's cost small after a large batch grew the table (measured: walking the whole
     * table twice per batch was 8 % of cimd at 25k msgs/s in an open loop). */
    for (size_t i = 0; i < st->nconvs; i++) {
        conv_ent_t *e = st->conv_list[i];
        st->convs[e->slot] = NULL;
        mem_free(e);
    }
    st->nconvs = 0;
}

void store__conv_free(store_t *st)
{
    store__conv_reset(st);
    mem_free(st->convs);
    mem_free(st->conv_list);
}

/* @p user's record of its conversation with @p peer, created when missing (@p since: the
 * event that added them to a group, 0 otherwise). */
static int conv_ensure(store_t *st, kv_txn_t *txn, const char *app, const char *user,
                       int conv_type, const char *peer, uint64_t since, uint64_t time_ms,
                       conv_ent_t **out)
{
    uint8_t key[CONV_UKEY_MAX];
    size_t klen = conv_ukey(key, app, user, conv_type, peer);
    int rc;

    if ((rc = conv_get(st, txn, key, klen, false, out)) < 0 || *out != NULL)
        return rc;
    if ((rc = conv_get(st, txn, key, klen, true, out)) < 0)
        return rc;
    memset(&(*out)->rec, 0, sizeof((*out)->rec));
    (*out)->rec.since_id = since;
    (*out)->rec.updated_ms = time_ms;
    (*out)->dirty = true;
    return 0;
}

/* A participant's conversation state. Only what a message changes the meaning of is
 * written (docs/STORAGE.md, convs): the sender's read cursor moves to its own message, and
 * a recipient's record is created by the first message that reaches them (DIRECT:
 * direction_new), or by the event that adds them to a group (counting starts at that
 * event: what was said before they joined is not unread). The last message and the
 * unread count are derived when read, from the conversation index, so a message costs
 * one record at most — none for the other members of a group. Records are held per batch
 * and written once per commit. */
static int conv_touch(store_t *st, kv_txn_t *txn, const smsg_t *m, const char *user,
                      uint64_t id, uint64_t time_ms)
{
    bool sender = strcmp(user, m->from) == 0;
    conv_ent_t *e;
    int rc;

    /* members of a group have had their record since they joined */
    if (!sender && m->msg_type != cim_MsgType_SYSTEM)
        return 0;
    if ((rc = conv_ensure(st, txn, m->app, user, m->conv_type, m->to, id, time_ms, &e)) < 0)
        return rc;
    if (sender) {
        /* One's own message is read, and with the cursor past everything before it, nothing
         * from others is unread any more (unread counts after the cursor). In a DIRECT
         * conversation the index's own direction says as much (conv_view): no write. */
        e->rec.read_up_to = id;
        e->rec.updated_ms = time_ms;
        e->dirty = true;
    }
    return 0;
}

/* Whether @p user's data lives on this node (always, without a cluster). */
static bool homed_here(const store_t *st, const char *app, const char *user)
{
    cluster_t *c = st->srv->cluster;
    return !cluster_is_enabled(c) || cluster_home(c, app, user) == cluster_self(c);
}

typedef struct news_ctx {
    store_t *st;
    kv_txn_t *txn;
} news_ctx_t;

/* The first message of a DIRECT direction (kv_cmsg_news; app NUL '>' sender NUL
 * recipient) creates both participants' records when missing. Records are never deleted,
 * so only a new direction needs them. They are made with the deferred index
 * (kv_conv_defer), in key order many commits' at once, not looked up and written here:
 * in a young store nearly every message begins a direction, and those two random-key
 * lookups and writes were half of a synced c2c run's cost (docs/BENCHMARKS.md, twelfth
 * pass). One this batch has read already (a READ before the message) is made here. */
static int direction_new(void *arg, const uint8_t *key, size_t klen, uint64_t first)
{
    news_ctx_t *c = arg;
    store_t *st = c->st;
    char app[KV_ID_MAX + 1], from[KV_ID_MAX + 1], to[KV_ID_MAX + 1];
    uint8_t ukey[CONV_UKEY_MAX];
    size_t ulen, plen;
    conv_ent_t *e;
    int rc;

    if (!conv_skey_direct(key, klen, app, from, to))
        return 0; /* not a DIRECT direction: never watched */
    /* each side's record, where that side lives (in a cluster, each home its own users') */
    for (int side = 0; side < 2; side++) {
        const char *user = side == 0 ? from : to, *peer = side == 0 ? to : from;
        if ((side == 1 && strcmp(user, peer) == 0) || !homed_here(st, app, user))
            continue;
        plen = conv_uprefix(ukey, app, user);
        ulen = conv_ukey(ukey, app, user, cim_ConvType_DIRECT, peer); /* (that prefix first) */
        e = st->capconvs > 0 ? *conv_slot(st, ukey, ulen) : NULL;
        rc = e == NULL ? kv_conv_defer(c->txn, ukey, ulen, plen, first)
                       : conv_ensure(st, c->txn, app, user, cim_ConvType_DIRECT, peer, 0,
                                     snowflake_time_ms(first), &e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int conv_news(store_t *st, kv_txn_t *txn)
{
    news_ctx_t c = {st, txn};
    return kv_cmsg_news(txn, direction_new, &c);
}

/* Message @p id (encoded in @p b) into the timelines of m->users, the conversation index
 * and state when m->index, and queued for its PUSH (and webhook). */
static int place(store_t *st, kv_txn_t *txn, const smsg_t *m, uint64_t id, uint64_t time_ms,
                 blob_t *b)
{
    uint8_t ukey[KV_UKEY_MAX], skey[CONV_SKEY_MAX];
    bool group = m->conv_type == cim_ConvType_GROUP;
    size_t klen;
    int rc = 0;

    if (m->index) {
        klen = conv_skey(skey, m->app, m->conv_type, group ? m->to : m->from, m->to);
        /* a DIRECT direction's first message creates the records (direction_new) */
        if ((rc = kv_cmsg_add(txn, skey, klen, id, !group)) < 0)
            return rc;
        /* SYSTEM messages never count as unread: kept apart so the count needs no record */
        if (m->msg_type == cim_MsgType_SYSTEM && (rc = kv_cevent_add(txn, skey, klen, id)) < 0)
            return rc;
    }
    /* A group's message is in its members' feeds through the index and their spans
     * (feed.h); a RECALL, which the index leaves out, is written to each timeline. */
    for (size_t i = 0; i < m->nusers; i++) {
        klen = kv_ukey(ukey, m->app, m->users[i]);
        if (!group)
            rc = kv_timeline_add(txn, ukey, klen, id);
        else if (m->msg_type == cim_MsgType_RECALL)
            rc = kv_timeline_fanout(txn, ukey, klen, id);
        if (rc < 0)
            return rc;
        if (m->index && group && (rc = conv_touch(st, txn, m, m->users[i], id, time_ms)) < 0)
            return rc;
    }
    store__fanout(st, b, FT_PUSH, m->app, m->users, m->nusers, m->skip_sid);
    /* One relaxed load when no app has a webhook: route() then looks no further. */
    if (m->hook && webhook_wants(st->srv->webhook, m->app, APPCONF_EV_MESSAGE)) {
        st->fan[st->nfan - 1].hook = true;
        str_copy(st->fan[st->nfan - 1].from, sizeof(st->fan[0].from), m->from);
    }
    return 0;
}

/* A new id for @p m (above @p floor) and its record, encoded. @return the blob (one
 * reference), or NULL (cannot encode: a bug, logged). */
static blob_t *new_record(store_t *st, const smsg_t *m, uint64_t floor, store_send_t *meta)
{
    blob_t *b;

    memset(meta, 0, sizeof(*meta));
    store__ids_above(st, floor);
    meta->msg_id = snowflake_next(&st->ids, snowflake_now_ms());
    meta->time_ms = snowflake_time_ms(meta->msg_id);
    meta->conv_type = m->conv_type;
    meta->msg_type = m->msg_type;
    meta->from_kind = m->from_kind;
    str_copy(meta->from, sizeof(meta->from), m->from);
    str_copy(meta->to, sizeof(meta->to), m->to);
    str_copy(meta->cmid, sizeof(meta->cmid), m->cmid ? m->cmid : "");
    if (m->tail)
        b = message_with_id(meta->msg_id, meta->time_ms, m->body, m->body_len);
    else if ((b = message_encode(meta, m->body, m->body_len)) == NULL)
        LOG_ERROR("store: cannot encode message %llu", (unsigned long long)meta->msg_id);
    return b;
}

/* The XHOME_MSG of @p m as record @p b (of id @p id), for no home yet. */
static void xmsg_init(xhome_msg_t *x, const store_t *st, const smsg_t *m, uint64_t id,
                      const blob_t *b)
{
    memset(x, 0, sizeof(*x));
    x->kind = XHOME_MSG;
    x->conv_type = m->conv_type;
    x->msg_type = m->msg_type;
    x->flags = (uint8_t)((m->index ? XHOME_F_INDEX : 0) | (m->hook ? XHOME_F_HOOK : 0));
    x->origin = cluster_self(st->srv->cluster);
    x->id = id;
    str_copy(x->app, sizeof(x->app), m->app);
    str_copy(x->from, sizeof(x->from), m->from);
    str_copy(x->to, sizeof(x->to), m->to);
    x->rec = b->data;
    x->rec_len = b->len;
}

/* In a cluster, a DIRECT message to a user of another home, @p home: its record and its
 * outbox entry (the XHOME_MSG to publish, owned by *@p xmsg), no timeline yet (each home's
 * merge appends it, store__apply). */
static int commit_direct(store_t *st, kv_txn_t *txn, const smsg_t *m, uint64_t floor,
                         uint32_t home, uint8_t **xmsg, size_t *xlen, uint64_t *id,
                         uint64_t *time_ms)
{
    store_send_t meta;
    xhome_msg_t x;
    blob_t *b = new_record(st, m, floor, &meta);
    int rc;

    if (b == NULL)
        return RC_EINVAL;
    xmsg_init(&x, st, m, meta.msg_id, b);
    x.home = home;
    *xmsg = NULL;
    if ((rc = xhome_encode(&x, xmsg, xlen)) < 0 ||
        (rc = message_put(txn, meta.msg_id, b->data, b->len)) < 0 ||
        (rc = kv_outbox_put(txn, meta.msg_id, *xmsg, *xlen)) < 0) {
        mem_free(*xmsg);
        *xmsg = NULL;
    } else {
        ctr_add(&st->stats.messages, 1);
        *id = meta.msg_id;
        *time_ms = meta.time_ms;
    }
    blob_unref(b);
    return rc;
}

/* This batch's own XHOME_MSG for @p home, handed to the cluster after the commit. */
static void xq_push(store_t *st, uint64_t id, uint32_t home, uint64_t skip_sid, uint8_t *xmsg,
                    size_t len)
{
    struct xq *q;

    if (st->nxq == st->capxq) {
        st->capxq = st->capxq ? st->capxq * 2 : 16;
        st->xq = mem_realloc(st->xq, st->capxq * sizeof(*st->xq));
    }
    q = &st->xq[st->nxq++];
    q->req = st->cur;
    q->id = id;
    q->home = home;
    q->skip_sid = skip_sid;
    q->xmsg = xmsg;
    q->len = len;
}

/* An outbox entry being built (xhome.h): XHOME_OUTBOX_MULTI, then per home a u32 length and
 * its XHOME_MSG; or a single XHOME_MSG. */
typedef struct obox {
    uint8_t *p;
    size_t len, cap;
    bool multi;
} obox_t;

static void obox_init(obox_t *b, bool multi, size_t cap)
{
    b->cap = cap > 0 ? cap : 1;
    b->p = mem_alloc(b->cap);
    b->len = 0;
    b->multi = multi;
    if (multi)
        b->p[b->len++] = XHOME_OUTBOX_MULTI;
}

static void obox_add(obox_t *b, const uint8_t *x, size_t n)
{
    if (b->len + 4 + n > b->cap) {
        b->cap = 2 * (b->len + 4 + n);
        b->p = mem_realloc(b->p, b->cap);
    }
    if (b->multi) {
        be32_put(b->p + b->len, (uint32_t)n);
        b->len += 4;
    }
    memcpy(b->p + b->len, x, n);
    b->len += n;
}

/* In a cluster: the record, and one XHOME_MSG per home it goes to, with the users it
 * reaches there — the homes of its users, and every home for a group's conversation (each
 * home keeps the group's index and records, so HISTORY, CONV_LIST and unread counts are
 * served at any member's home; a RECALL erases the record at each) — queued for the
 * cluster (published, then applied by each home's merge) and kept in the outbox until this
 * home applied its own. No timeline yet.
 * @p homes gets the other homes whose timelines get it (bits by index in cluster_nodes):
 * the answer waits for their applies. */
static int commit_homes(store_t *st, kv_txn_t *txn, const smsg_t *m, uint64_t *id,
                        uint64_t *time_ms, uint64_t *homes)
{
    cluster_t *c = st->srv->cluster;
    const uint32_t *nodes;
    size_t nn = cluster_nodes(c, &nodes), self = (size_t)cluster_index_of(c, cluster_self(c));
    size_t sender = (size_t)cluster_index_of(c, cluster_home(c, m->app, m->from));
    size_t *at = mem_alloc((m->nusers ? m->nusers : 1) * sizeof(*at));
    const char **users = mem_alloc((m->nusers ? m->nusers : 1) * sizeof(*users));
    bool everywhere = m->conv_type == cim_ConvType_GROUP &&
                      (m->index || m->msg_type == cim_MsgType_RECALL);
    uint8_t *xmsg;
    obox_t box;
    store_send_t meta;
    xhome_msg_t x;
    blob_t *b;
    int rc = 0;

    *homes = 0;
    obox_init(&box, true, 256);
    for (size_t u = 0; u < m->nusers; u++)
        at[u] = (size_t)cluster_index_of(c, cluster_home(c, m->app, m->users[u]));
    if ((b = new_record(st, m, 0, &meta)) == NULL) {
        rc = RC_EINVAL;
        goto out;
    }
    xmsg_init(&x, st, m, meta.msg_id, b);
    x.skip_sid = m->skip_sid;
    x.users = users;
    /* the other homes first, this one last: its own apply (which ends the outbox entry)
     * must come after every other home's copy is on JetStream */
    for (size_t k = 0; k < nn && rc == 0; k++) {
        size_t i = k < self ? k : k + 1 < nn ? k + 1 : self, len;
        x.nusers = 0;
        for (size_t u = 0; u < m->nusers; u++)
            if (at[u] == i)
                users[x.nusers++] = m->users[u];
        if (x.nusers == 0 && i != self && !everywhere)
            continue;
        x.home = nodes[i];
        /* the sender's session lives at its home: not pushed its own message there */
        x.flags = (uint8_t)((x.flags & (XHOME_F_INDEX | XHOME_F_HOOK)) | XHOME_F_USERS |
                            (m->skip_sid != 0 && i == sender && i != self ? XHOME_F_SKIP : 0));
        if ((rc = xhome_encode(&x, &xmsg, &len)) < 0)
            break;
        obox_add(&box, xmsg, len);
        xq_push(st, meta.msg_id, nodes[i], i == sender ? m->skip_sid : 0, xmsg, len);
        if (x.nusers > 0 && i != self)
            *homes |= 1ULL << i;
    }
    if (rc == 0 && (rc = message_put(txn, meta.msg_id, b->data, b->len)) == 0 &&
        (rc = kv_outbox_put(txn, meta.msg_id, box.p, box.len)) == 0) {
        ctr_add(&st->stats.messages, 1);
        *id = meta.msg_id;
        *time_ms = meta.time_ms;
    }
    blob_unref(b);
out:
    mem_free(box.p);
    mem_free(users);
    mem_free(at);
    return rc; /* a failure fails the batch: store__xq_drop frees what was queued */
}

int store__put_message(store_t *st, kv_txn_t *txn, const smsg_t *m, uint64_t *id,
                       uint64_t *time_ms, uint64_t *homes)
{
    store_send_t meta;
    uint64_t none;
    blob_t *b;
    int rc;

    if (cluster_is_enabled(st->srv->cluster))
        return commit_homes(st, txn, m, id, time_ms, homes != NULL ? homes : &none);
    if (homes != NULL)
        *homes = 0;
    if ((b = new_record(st, m, 0, &meta)) == NULL)
        return RC_EINVAL;
    if ((rc = message_put(txn, meta.msg_id, b->data, b->len)) == 0 &&
        (rc = place(st, txn, m, meta.msg_id, meta.time_ms, b)) == 0) {
        ctr_add(&st->stats.messages, 1);
        *id = meta.msg_id;
        *time_ms = meta.time_ms;
    }
    blob_unref(b);
    return rc;
}

void store__xq_flush(store_t *st, size_t req)
{
    /* The batch's entries are in id order, and so in request order: flush a prefix. */
    size_t i = 0;

    for (; i < st->nxq && st->xq[i].req == req; i++) {
        store_send_t *r = store_send_new(0);
        r->worker = STORE_NO_WORKER;
        r->sid = st->xq[i].skip_sid;
        r->xhome = true;
        r->home = st->xq[i].home;
        r->msg_id = st->xq[i].id;
        r->xmsg = st->xq[i].xmsg;
        r->xmsg_len = st->xq[i].len;
        r->last_copy = i + 1 == st->nxq || st->xq[i + 1].id != r->msg_id;
        cluster_xhome_committed(st->srv->cluster, r);
    }
    if (i > 0) {
        memmove(st->xq, st->xq + i, (st->nxq - i) * sizeof(*st->xq));
        st->nxq -= i;
    }
}

void store__xq_drop(store_t *st)
{
    for (size_t i = 0; i < st->nxq; i++)
        mem_free(st->xq[i].xmsg);
    st->nxq = 0;
}

/* The users whose timelines here a message of another home goes to: the list its origin
 * named (XHOME_F_USERS: @p ulist, validated by xhome_parse), else the DIRECT pair's users
 * homed here. @return @p pair, or an array to mem_free; *@p n its length. */
static store_uid_t *users_here(const store_t *st, uint8_t flags, const char *app,
                               const char *from, const char *to, const uint8_t *ulist,
                               size_t ulen, uint32_t nusers, store_uid_t pair[2], size_t *n)
{
    store_uid_t *users = pair;

    *n = 0;
    if (flags & XHOME_F_USERS) {
        const uint8_t *p = ulist, *end = p + ulen;
        users = mem_alloc((nusers ? nusers : 1) * sizeof(*users));
        for (; *n < nusers && p < end && p + 1 + *p <= end && *p <= KV_ID_MAX;
             p += 1 + *p, (*n)++) {
            memcpy(users[*n], p + 1, *p);
            users[*n][*p] = '\0';
        }
    } else {
        if (homed_here(st, app, from))
            str_copy(pair[(*n)++], sizeof(pair[0]), from);
        if (strcmp(from, to) != 0 && homed_here(st, app, to))
            str_copy(pair[(*n)++], sizeof(pair[0]), to);
    }
    return users;
}

/* A group's message of another home that this home's spans do not give a user it went to
 * (issued before this directory's migration to schema 7 and delivered after it, or come
 * late): into that user's timeline, as before spans. Checked once the group's state here
 * follows the message (a JOINED event opens its user's span). */
static int uncovered(kv_txn_t *txn, const store_apply_t *a, store_uid_t *users, size_t n)
{
    uint8_t ukey[KV_UKEY_MAX];
    uint64_t gid;
    int rc = 0;

    if (a->conv_type != cim_ConvType_GROUP || a->msg_type == cim_MsgType_RECALL ||
        group_id_parse(a->to, &gid) < 0)
        return 0;
    for (size_t i = 0; i < n && rc >= 0; i++)
        if ((rc = feed_covers(txn, a->app, users[i], gid, a->id)) == 0)
            rc = kv_timeline_fanout(txn, ukey, kv_ukey(ukey, a->app, users[i]), a->id);
    return rc < 0 ? rc : 0;
}

int store__apply(store_t *st, kv_txn_t *txn, store_apply_t *a)
{
    cluster_t *c = st->srv->cluster;
    uint32_t self = cluster_self(c);
    store_uid_t pair[2], *users;
    size_t n, keep = 0, late = 0;
    const uint8_t *v;
    size_t vlen;
    bool first = false, index;
    blob_t *b;
    smsg_t m;
    int rc = 0;

    users = users_here(st, a->flags, a->app, a->from, a->to, a->rec + a->rec_len, a->ulist_len,
                       a->nusers, pair, &n);
    /* Per timeline: one that has it already (a redelivery, a republish) or holds a greater
     * id (it came late: appending it would put it behind a device's cursor; docs/SCALING.md,
     * "What is left") is left alone; the others get it. */
    for (size_t i = 0; i < n; i++) {
        if ((rc = feed_has_in(txn, a->app, users[i], a->id, a->conv_type, a->to)) == 0)
            continue; /* has it already */
        if (rc != RC_ENOTFOUND || (rc = feed_newer(txn, a->app, users[i], a->id)) < 0)
            goto out;
        if (rc == 1) {
            late++;
            LOG_RL(LOG_LVL_ERROR, "store: message %llu from node %u came after a newer one in "
                                  "%s's timeline: not appended there",
                   (unsigned long long)a->id, a->origin, users[i]);
            continue;
        }
        if (keep != i)
            memcpy(users[keep], users[i], sizeof(users[0]));
        keep++;
    }
    if (late > 0 && keep == 0 && a->origin != self) {
        /* Late in every timeline it goes to here: nothing of it is kept — no record, no
         * index — as its origin may give it a new id (docs/SCALING.md, "Rejoining: the
         * outbox"). What it changes in a group's state still follows (idempotent). */
        a->result = STORE_APPLY_LATE;
        rc = kv_msg_get(txn, a->id, &v, &vlen);
        rc = rc == RC_ENOTFOUND ? store__mirror(st, txn, a) : rc < 0 ? rc : 0;
        goto out;
    }
    /* The first apply here of a message (the origin put its record at commit, and applies
     * its own once) writes the conversation index: a group's at every home, whoever of its
     * members lives here (commit_homes). */
    if ((rc = kv_msg_get(txn, a->id, &v, &vlen)) == RC_ENOTFOUND) {
        first = true;
        rc = message_put(txn, a->id, a->rec, a->rec_len);
    }
    if (rc < 0)
        goto out;
    first = first || a->origin == self;
    index = (a->flags & XHOME_F_INDEX) != 0 && first;
    if (keep == 0 && !(index && a->conv_type == cim_ConvType_GROUP)) {
        a->result = late > 0 ? STORE_APPLY_LATE : STORE_APPLY_DUP;
    } else {
        m = (smsg_t){.app = a->app, .from = a->from, .conv_type = a->conv_type,
                     .msg_type = a->msg_type, .to = a->to, .users = users, .nusers = keep,
                     .index = index, .skip_sid = a->skip_sid,
                     .hook = (a->flags & XHOME_F_HOOK) != 0};
        b = blob_new(a->rec_len);
        memcpy(b->data, a->rec, a->rec_len);
        rc = place(st, txn, &m, a->id, snowflake_time_ms(a->id), b);
        blob_unref(b);
        if (rc < 0)
            goto out;
        a->result = late > 0 ? STORE_APPLY_LATE : STORE_APPLIED;
        if (a->id > st->xapplied)
            st->xapplied = a->id;
    }
    /* What another home's message changes here beyond timelines: a group's state (its
     * home changed it at commit) and a recalled message's record (its recaller's home
     * erased it at commit). */
    if (first && a->origin != self && (rc = store__mirror(st, txn, a)) < 0)
        goto out;
    if (a->result != STORE_APPLY_DUP && (rc = uncovered(txn, a, users, keep)) < 0)
        goto out;
    rc = a->origin == self ? kv_outbox_del(txn, a->id) : 0;
out:
    if (users != pair)
        mem_free(users);
    return rc;
}

/* ---- rejoining: the outbox after a restart (docs/SCALING.md) ------------------------- */

/* A home: would this copy of an outbox entry come late here? */
static int rejoin_ask(store_t *st, kv_txn_t *txn, store_rejoin_t *q)
{
    store_uid_t pair[2], *users;
    const uint8_t *v;
    size_t n, vlen;
    xhome_msg_t x;
    int rc;

    if (xhome_parse(q->copy, q->len, &x) < 0 || x.kind != XHOME_MSG) {
        q->rc = RC_EPROTO; /* checked before it was queued */
        return 0;
    }
    if ((rc = kv_msg_get(txn, x.id, &v, &vlen)) != RC_ENOTFOUND) {
        q->has = rc == 0;
        q->rc = rc < 0 ? rc : 0;
        return 0;
    }
    users = users_here(st, x.flags, x.app, x.from, x.to, x.ulist, x.ulist_len, x.nusers, pair,
                       &n);
    q->rc = 0;
    for (size_t i = 0; i < n && !q->late && q->rc == 0; i++) {
        if ((rc = feed_newer(txn, x.app, users[i], x.id)) < 0)
            q->rc = rc;
        q->late = rc == 1;
    }
    if (users != pair)
        mem_free(users);
    return 0;
}

/* One copy of an outbox entry under its new id: what reissue collects. */
typedef struct reissue {
    store_t *st;
    uint64_t id;
    const blob_t *rec;
    obox_t box;     /* the new outbox entry */
} reissue_t;

static int reissue_copy(void *ctx, const uint8_t *val, size_t len)
{
    reissue_t *r = ctx;
    const char **names = NULL;
    char (*ids)[KV_ID_MAX + 1] = NULL;
    uint8_t *xmsg = NULL;
    size_t xlen, pos = 0;
    xhome_msg_t x;
    int rc;

    if (xhome_parse(val, len, &x) < 0)
        return RC_EPROTO;
    if (x.flags & XHOME_F_USERS) {
        names = mem_alloc((x.nusers ? x.nusers : 1) * sizeof(*names));
        ids = mem_alloc((x.nusers ? x.nusers : 1) * sizeof(*ids));
        for (uint32_t i = 0; i < x.nusers && xhome_user(&x, &pos, ids[i]); i++)
            names[i] = ids[i];
        x.users = names;
    }
    /* the session that sent it is gone with the old process */
    x.flags &= (uint8_t)~XHOME_F_SKIP;
    x.skip_sid = 0;
    x.id = r->id;
    x.rec = r->rec->data;
    x.rec_len = r->rec->len;
    if ((rc = xhome_encode(&x, &xmsg, &xlen)) == 0) {
        obox_add(&r->box, xmsg, xlen);
        xq_push(r->st, r->id, x.home, 0, xmsg, xlen); /* handed over after the commit */
    }
    mem_free(names);
    mem_free(ids);
    return rc;
}

static int copy_valid(void *ctx, const uint8_t *val, size_t len)
{
    xhome_msg_t x;
    (void)ctx;
    return xhome_parse(val, len, &x) < 0 || x.kind != XHOME_MSG ? RC_EPROTO : 0;
}

/* The origin: outbox entry q->id under a new id above q->floor. */
static int rejoin_reissue(store_t *st, kv_txn_t *txn, store_rejoin_t *q)
{
    cim_Message m = cim_Message_init_zero;
    const uint8_t *v, *body;
    uint8_t *box = NULL, *rec = NULL;
    size_t blen, rlen, bodylen;
    reissue_t r = {st, 0, NULL, {NULL, 0, 0, false}};
    store_send_t meta;
    smsg_t sm;
    blob_t *b = NULL;
    int rc;

    q->rc = 0;
    /* copies: the writes below may move what a read returned */
    if ((rc = kv_outbox_get(txn, q->id, &v, &blen)) == 0) {
        box = mem_alloc(blen);
        memcpy(box, v, blen);
        rc = kv_msg_get(txn, q->id, &v, &rlen);
    }
    if (rc == 0) {
        rec = mem_alloc(rlen);
        memcpy(rec, v, rlen);
    }
    if (rc == RC_ENOTFOUND) {
        rc = 0; /* applied meanwhile, or never complete: nothing to move */
        goto out;
    }
    if (rc < 0)
        goto out;
    if (!message_decode(rec, rlen, &m, &body, &bodylen) ||
        xhome_outbox_each(box, blen, copy_valid, NULL) != 0) {
        LOG_ERROR("store: outbox entry %llu is unreadable: not reissued",
                  (unsigned long long)q->id);
        q->rc = RC_EPROTO;
        goto out;
    }
    /* the same message, as a SEND would store it, under a new id above the floor */
    sm = (smsg_t){.from = m.from, .from_kind = (uint8_t)m.from_device,
                  .conv_type = (uint8_t)m.conv_type, .to = m.to, .msg_type = (uint8_t)m.msg_type,
                  .cmid = m.client_msg_id, .body = body, .body_len = bodylen};
    if ((b = new_record(st, &sm, q->floor, &meta)) == NULL) {
        q->rc = RC_EINVAL;
        goto out;
    }
    r.id = meta.msg_id;
    r.rec = b;
    obox_init(&r.box, box[0] == XHOME_OUTBOX_MULTI, blen + 64);
    /* A failure after a copy was queued fails the batch (store__xq_drop frees them). */
    if ((rc = xhome_outbox_each(box, blen, reissue_copy, &r)) == 0 &&
        (rc = message_put(txn, r.id, b->data, b->len)) == 0 &&
        (rc = kv_outbox_put(txn, r.id, r.box.p, r.box.len)) == 0 &&
        (rc = kv_msg_del(txn, q->id)) == 0 && (rc = kv_outbox_del(txn, q->id)) == 0) {
        dedup_add(st->srv->dedup, meta.from, meta.cmid, r.id);
        q->new_id = r.id;
    }
out:
    blob_unref(b);
    mem_free(r.box.p);
    mem_free(rec);
    mem_free(box);
    return rc;
}

int store__rejoin(store_t *st, kv_txn_t *txn, store_rejoin_t *q)
{
    return q->what == STORE_RJ_ASK ? rejoin_ask(st, txn, q) : rejoin_reissue(st, txn, q);
}

/* The members of a group, in id order (the fanout and timeline list of a group message). */
typedef struct roster {
    store_uid_t *users;
    size_t n, cap;
} roster_t;

static int roster_add(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                      size_t vlen)
{
    roster_t *r = ctx;
    (void)val;
    (void)vlen;
    if (slen == 0 || slen > KV_ID_MAX)
        return 0;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->users = mem_realloc(r->users, r->cap * sizeof(*r->users));
    }
    memcpy(r->users[r->n], sfx, slen);
    r->users[r->n][slen] = '\0';
    r->n++;
    return 0;
}

/* members key prefix: app NUL gid (8 bytes, big-endian). */
int store__roster(kv_txn_t *txn, const char *app, uint64_t gid, store_uid_t **users,
                  size_t *n)
{
    uint8_t prefix[KV_ID_MAX + 1 + 8];
    size_t a = strlen(app);
    roster_t r = {NULL, 0, 0};
    int rc;

    memcpy(prefix, app, a);
    prefix[a] = '\0';
    for (int i = 0; i < 8; i++)
        prefix[a + 1 + i] = (uint8_t)(gid >> (56 - 8 * i));
    rc = kv_rec_scan(txn, KV_DB_MEMBERS, prefix, a + 9, roster_add, &r);
    if (rc < 0) {
        mem_free(r.users);
        return rc;
    }
    *users = r.users;
    *n = r.n;
    return 0;
}

int store__send(store_t *st, kv_txn_t *txn, store_send_t *r)
{
    store_uid_t pair[2], *members = NULL;
    smsg_t m;
    uint64_t prior, gid = 0;
    size_t nmembers = 0;
    bool alive = false, member = false;
    int rc;

    /* A resend of a client_msg_id (this batch included: the txn sees its own writes)
     * returns the original id and stores nothing. */
    rc = dedup_find(st->srv->dedup, txn, r->app, r->from, r->cmid, false, &prior);
    if (rc == 0) {
        r->code = cim_Code_OK;
        r->msg_id = prior;
        r->time_ms = snowflake_time_ms(prior);
        return 0;
    }
    if (rc == DEDUP_PENDING) { /* committed here, on its way to the timelines */
        r->code = cim_Code_SERVER_BUSY;
        str_copy(r->reason, sizeof(r->reason), SEND_NOT_APPLIED);
        return 0;
    }
    if (rc != RC_ENOTFOUND)
        return rc;
    memset(&m, 0, sizeof(m));
    m.app = r->app;
    m.from = r->from;
    m.from_kind = r->from_kind;
    m.conv_type = r->conv_type;
    m.to = r->to;
    m.msg_type = r->msg_type;
    m.cmid = r->cmid;
    m.body = r->body;
    m.body_len = r->body_len;
    m.tail = r->tail;
    m.index = true;
    m.skip_sid = r->sid;
    m.hook = true;
    if (r->conv_type == cim_ConvType_GROUP) {
        /* Membership is checked again here, in the writer's order: the worker's check may
         * be stale by now. */
        if ((rc = store__group_state(txn, r->app, r->to, &gid, &alive)) < 0 &&
            rc != RC_ENOTFOUND)
            return rc;
        if (!alive) {
            r->code = cim_Code_NOT_FOUND;
            return 0;
        }
        if ((rc = store__roster(txn, r->app, gid, &members, &nmembers)) < 0)
            return rc;
        for (size_t i = 0; i < nmembers && !member; i++)
            member = strcmp(members[i], r->from) == 0;
        if (!member && !r->system) {
            mem_free(members);
            r->code = cim_Code_NOT_MEMBER;
            return 0;
        }
        m.users = members;
        m.nusers = nmembers;
    } else {
        str_copy(pair[0], sizeof(pair[0]), r->from);
        str_copy(pair[1], sizeof(pair[1]), r->to);
        m.users = pair;
        m.nusers = strcmp(r->from, r->to) == 0 ? 1 : 2;
    }
    mem_free(r->xmsg); /* a batch tried again (the map grew): the last try's, uncommitted */
    r->xmsg = NULL;
    rc = r->xhome && r->conv_type == cim_ConvType_DIRECT
             ? commit_direct(st, txn, &m, r->floor, r->home, &r->xmsg, &r->xmsg_len,
                             &r->msg_id, &r->time_ms)
             : store__put_message(st, txn, &m, &r->msg_id, &r->time_ms, &r->wait_homes);
    mem_free(members);
    if (rc < 0)
        return rc;
    /* in a cluster the merge appends it: SEND_ACK{OK} once it did (PROTOCOL.md, Send) */
    r->wait_apply = !r->xhome && cluster_is_enabled(st->srv->cluster);
    dedup_add(st->srv->dedup, r->from, r->cmid, r->msg_id);
    r->code = cim_Code_OK;
    return 0;
}
