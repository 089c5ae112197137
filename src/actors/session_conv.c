/* session_conv: conversations, history, READ, RECALL, contacts, blocks and presence
 * (PROTOCOL.md frames 0x0207, 0x0301–0x0306, 0x0501–0x050A, EVENT{PRESENCE}). Reads run
 * here in short read-only transactions; changes go to the store. */
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/cluster.h"
#include "actors/conv.h"
#include "actors/group.h"
#include "actors/message.h"
#include "actors/router.h"
#include "actors/session.h"
#include "actors/store.h"
#include "actors/webhook.h"
#include "actors/xonline.h"
#include "cim.pb.h"
#include "core/blob.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

#define HISTORY_DEFAULT 20
#define HISTORY_MAX 100
#define CONVS_MAX 1000    /* conversations listed at most (newest first) */
#define CONTACTS_MAX 2000
#define ROOM 64           /* answer fields around a list */
#define PRESENCE_MAX 64   /* sessions per watcher looked up */


static size_t varint_len(size_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

/* ---- READ, RECALL, contacts, blocks: writes ----------------------------------------- */

int session__conv_write(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(body, len);
    store_op_t *op;

    switch (type) {
    case FT_READ: {
        cim_ReadReq req = cim_ReadReq_init_zero;
        uint64_t gid;
        if (!pb_decode(&is, cim_ReadReq_fields, &req))
            return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed ReadReq");
        if (req.conv_type != cim_ConvType_DIRECT && req.conv_type != cim_ConvType_GROUP)
            return session__fail(s, type, req.req_id, cim_Code_BAD_REQUEST,
                        "conv_type must be DIRECT or GROUP");
        if (req.conv_type == cim_ConvType_DIRECT ? !kv_id_valid(req.peer)
                                                 : group_id_parse(req.peer, &gid) < 0)
            return session__fail(s, type, req.req_id, cim_Code_BAD_REQUEST,
                        "peer must be a user id (DIRECT) or a group id (GROUP)");
        op = store_op_new(0);
        op->type = type;
        op->req_id = req.req_id;
        op->conv_type = (uint8_t)req.conv_type;
        op->msg_id = req.up_to_msg_id;
        memcpy(op->target, req.peer, sizeof(op->target));
        return session__post_op(s, op);
    }
    case FT_RECALL: {
        cim_RecallReq req = cim_RecallReq_init_zero;
        if (!pb_decode(&is, cim_RecallReq_fields, &req))
            return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed RecallReq");
        if (req.msg_id == 0)
            return session__fail(s, type, req.req_id, cim_Code_BAD_REQUEST, "msg_id is required");
        op = store_op_new(0);
        op->type = type;
        op->req_id = req.req_id;
        op->msg_id = req.msg_id;
        return session__post_op(s, op);
    }
    default: { /* CONTACT_ADD, CONTACT_REMOVE, BLOCK, UNBLOCK */
        cim_UserReq req = cim_UserReq_init_zero;
        if (!pb_decode(&is, cim_UserReq_fields, &req))
            return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed UserReq");
        if (!kv_id_valid(req.user))
            return session__fail(s, type, req.req_id, cim_Code_BAD_REQUEST, "user must be a user id");
        op = store_op_new(0);
        op->type = type;
        op->req_id = req.req_id;
        memcpy(op->target, req.user, sizeof(op->target));
        return session__post_op(s, op);
    }
    }
}

/* ---- HISTORY ------------------------------------------------------------------------ */

typedef struct recs {
    message_rec_t rec[HISTORY_MAX]; /* stored records, borrowed from the txn */
    size_t n;
} recs_t;

static bool put_recs(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const recs_t *r = *arg;
    for (size_t i = 0; i < r->n; i++)
        if (!message_rec_encode(os, f->tag, &r->rec[i]))
            return false;
    return true;
}

static int history(session_t *s, const uint8_t *body, size_t len)
{
    cim_HistoryReq req = cim_HistoryReq_init_zero;
    cim_HistoryRsp rsp = cim_HistoryRsp_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    uint8_t ukey[CONV_UKEY_MAX];
    uint64_t ids[HISTORY_MAX], before, gid;
    size_t n = 0, klen, used = 0, room = s->w->srv->conf->max_body - ROOM, take = 0;
    const uint8_t *v;
    size_t vlen;
    kv_txn_t *txn = NULL;
    recs_t *r = NULL;
    conv_rec_t c;
    bool more = false;
    uint32_t limit;
    int rc;

    if (!pb_decode(&is, cim_HistoryReq_fields, &req))
        return session__fail(s, FT_HISTORY, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed HistoryReq");
    if (req.conv_type != cim_ConvType_DIRECT && req.conv_type != cim_ConvType_GROUP)
        return session__fail(s, FT_HISTORY, req.req_id, cim_Code_BAD_REQUEST,
                    "conv_type must be DIRECT or GROUP");
    if (req.conv_type == cim_ConvType_DIRECT ? !kv_id_valid(req.peer)
                                             : group_id_parse(req.peer, &gid) < 0)
        return session__fail(s, FT_HISTORY, req.req_id, cim_Code_BAD_REQUEST,
                    "peer must be a user id (DIRECT) or a group id (GROUP)");
    limit = req.limit == 0 ? HISTORY_DEFAULT : req.limit > HISTORY_MAX ? HISTORY_MAX : req.limit;
    if ((rc = kv_begin(s->w->srv->kv, KV_READ, &txn)) < 0)
        return session__fail(s, FT_HISTORY, req.req_id, cim_Code_INTERNAL, "storage error");
    /* The asker's own state of the conversation says whether and how far they see it: a
     * former group member pages up to the event that removed them. */
    klen = conv_ukey(ukey, s->app, s->user, req.conv_type, req.peer);
    rc = kv_rec_get(txn, KV_DB_CONVS, ukey, klen, &v, &vlen);
    if (rc == RC_ENOTFOUND && req.conv_type == cim_ConvType_GROUP) {
        group_t g;
        int known = group_load(txn, s->app, gid, &g);
        kv_abort(txn);
        if (known == RC_ENOTFOUND)
            return session__fail(s, FT_HISTORY, req.req_id, cim_Code_NOT_FOUND, "unknown group");
        return session__fail(s, FT_HISTORY, req.req_id, cim_Code_NOT_MEMBER,
                    "you never were a member of that group");
    }
    if (rc < 0 && rc != RC_ENOTFOUND)
        goto internal;
    conv_decode(v, rc == 0 ? vlen : 0, &c);
    before = req.before_msg_id;
    if (c.left_id != 0 && (before == 0 || before > c.left_id + 1))
        before = c.left_id + 1;
    if ((rc = conv_history(txn, s->app, s->user, req.conv_type, req.peer, before, ids, limit,
                           &n, &more)) < 0)
        goto internal;
    r = mem_alloc(sizeof(*r));
    r->n = 0;
    /* ids come newest first; the page is the newest that fit, sent ascending */
    for (; take < n; take++) {
        size_t cost;
        if ((rc = message_get(txn, ids[take], &r->rec[r->n])) == RC_ENOTFOUND)
            continue;
        if (rc < 0)
            goto internal;
        cost = message_rec_cost(&r->rec[r->n]);
        if (used + cost > room)
            break;
        used += cost;
        r->n++;
    }
    if (take < n)
        more = true;
    for (size_t i = 0; i < r->n / 2; i++) {
        message_rec_t t = r->rec[i];
        r->rec[i] = r->rec[r->n - 1 - i];
        r->rec[r->n - 1 - i] = t;
    }
    rsp.req_id = req.req_id;
    rsp.code = cim_Code_OK;
    rsp.messages.funcs.encode = put_recs;
    rsp.messages.arg = r;
    rsp.has_more = more;
    rc = session_answer(s, FT_HISTORY_ACK, cim_HistoryRsp_fields, &rsp);
    kv_abort(txn);
    mem_free(r);
    return rc;
internal:
    kv_abort(txn);
    mem_free(r);
    return session__fail(s, FT_HISTORY, req.req_id, cim_Code_INTERNAL, "storage error");
}

/* ---- CONV_LIST ---------------------------------------------------------------------- */

typedef struct centry {
    int conv_type;
    char peer[KV_ID_MAX + 1];
    conv_rec_t c;
    conv_view_t v;
    uint64_t peer_read;
} centry_t;

typedef struct clist {
    session_t *s;
    kv_txn_t *txn;
    centry_t *e;
    size_t n;
    uint32_t total_unread;
    size_t budget;
    int rc;
} clist_t;

/* Every conversation counts in total_unread; the CONVS_MAX newest are listed. */
static int each_conv(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                     size_t vlen)
{
    clist_t *cl = ctx;
    centry_t e;
    size_t at;
    int rc;

    if (slen < 2 || slen - 1 > KV_ID_MAX)
        return 0;
    e.conv_type = sfx[0];
    memcpy(e.peer, sfx + 1, slen - 1);
    e.peer[slen - 1] = '\0';
    conv_decode(val, vlen, &e.c);
    e.peer_read = 0; /* set for DIRECT conversations after the scan */
    if ((rc = conv_view(cl->txn, cl->s->app, cl->s->user, e.conv_type, e.peer, &e.c, &e.v)) < 0)
        return rc;
    cl->total_unread = cl->total_unread + e.v.unread < cl->total_unread
                           ? UINT32_MAX
                           : cl->total_unread + e.v.unread;
    at = cl->n;
    if (cl->n == CONVS_MAX) { /* full: replace the oldest if this one is newer */
        at = 0;
        for (size_t i = 1; i < cl->n; i++)
            if (cl->e[i].v.last_id < cl->e[at].v.last_id)
                at = i;
        if (cl->e[at].v.last_id >= e.v.last_id)
            return 0;
    } else {
        cl->n++;
    }
    cl->e[at] = e;
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const centry_t *x = a, *y = b;
    return x->v.last_id < y->v.last_id ? 1 : x->v.last_id > y->v.last_id ? -1 : 0;
}

/* One Conversation: its fields, then `last` appended as the stored Message bytes (a
 * protobuf message may carry its fields in any order). */
static bool put_convs(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    clist_t *cl = *arg;
    for (size_t i = 0; i < cl->n; i++) {
        const centry_t *e = &cl->e[i];
        cim_Conversation cv = cim_Conversation_init_zero;
        pb_ostream_t sz = PB_OSTREAM_SIZING;
        message_rec_t last;
        size_t last_cost = 0;
        cv.conv_type = (cim_ConvType)e->conv_type;
        snprintf(cv.peer, sizeof(cv.peer), "%s", e->peer);
        cv.unread = e->v.unread;
        cv.read_up_to = e->v.read_up_to;
        cv.peer_read_up_to = e->peer_read;
        cv.updated_ms = e->v.updated_ms;
        if (e->v.last_id != 0 && message_get(cl->txn, e->v.last_id, &last) == 0)
            last_cost = message_rec_cost(&last);
        if (!pb_encode(&sz, cim_Conversation_fields, &cv))
            return false;
        if (os->callback != NULL) {
            size_t total = sz.bytes_written + last_cost;
            if (os->bytes_written + 1 + varint_len(total) + total > cl->budget)
                return true; /* the rest does not fit the frame: the newest are listed */
        }
        if (!pb_encode_tag_for_field(os, f) ||
            !pb_encode_varint(os, sz.bytes_written + last_cost) ||
            !pb_encode(os, cim_Conversation_fields, &cv))
            return false;
        if (last_cost != 0 && !message_rec_encode(os, cim_Conversation_last_tag, &last))
            return false;
    }
    return true;
}

static int conv_list(session_t *s, const uint8_t *body, size_t len)
{
    cim_Req req = cim_Req_init_zero;
    cim_ConvListRsp rsp = cim_ConvListRsp_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    uint8_t pkey[CONV_UKEY_MAX];
    clist_t cl;
    int rc;

    if (!pb_decode(&is, cim_Req_fields, &req))
        return session__fail(s, FT_CONV_LIST, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed Req");
    memset(&cl, 0, sizeof(cl));
    cl.s = s;
    cl.budget = s->w->srv->conf->max_body - ROOM;
    cl.e = mem_alloc((CONVS_MAX + 1) * sizeof(*cl.e));
    if ((rc = kv_begin(s->w->srv->kv, KV_READ, &cl.txn)) < 0) {
        mem_free(cl.e);
        return session__fail(s, FT_CONV_LIST, req.req_id, cim_Code_INTERNAL, "storage error");
    }
    rc = conv_scan(cl.txn, s->app, s->user, each_conv, &cl);
    if (rc < 0)
        goto internal;
    qsort(cl.e, cl.n, sizeof(*cl.e), newest_first);
    for (size_t i = 0; i < cl.n; i++) {
        /* DIRECT: how far the peer has read this conversation */
        size_t klen;
        conv_rec_t pc;
        if (cl.e[i].conv_type != cim_ConvType_DIRECT)
            continue;
        klen = conv_ukey(pkey, s->app, cl.e[i].peer, cim_ConvType_DIRECT, s->user);
        if (conv_load(cl.txn, pkey, klen, &pc) == 0) {
            if (conv_read_cursor(cl.txn, s->app, cl.e[i].peer, cim_ConvType_DIRECT, s->user,
                                 &pc, &cl.e[i].peer_read) < 0)
                cl.e[i].peer_read = pc.read_up_to;
        }
    }
    rsp.req_id = req.req_id;
    rsp.code = cim_Code_OK;
    rsp.convs.funcs.encode = put_convs;
    rsp.convs.arg = &cl;
    rsp.total_unread = cl.total_unread;
    rc = session_answer(s, FT_CONV_LIST_ACK, cim_ConvListRsp_fields, &rsp);
    kv_abort(cl.txn);
    mem_free(cl.e);
    return rc;
internal:
    kv_abort(cl.txn);
    mem_free(cl.e);
    return session__fail(s, FT_CONV_LIST, req.req_id, cim_Code_INTERNAL, "storage error");
}

/* ---- CONTACT_LIST ----------------------------------------------------------------------- */

_Static_assert(CONTACTS_MAX <= XONLINE_MAX, "a CONTACT_LIST's contacts fit one question");

typedef struct contacts {
    const xonline_req_t *q;
    size_t budget; /* bytes of the frame the list may take */
} contacts_t;

static int each_contact(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                        size_t vlen)
{
    xonline_req_t *q = ctx;
    (void)val;
    (void)vlen;
    if (slen == 0 || slen > KV_ID_MAX || q->n == CONTACTS_MAX)
        return 0;
    memcpy(q->ents[q->n].user, sfx, slen);
    q->ents[q->n].user[slen] = '\0';
    q->n++;
    return 0;
}

/* @p e as a Contact, and the bytes it takes in the list. */
static bool contact_of(const xonline_ent_t *e, cim_Contact *c, size_t *cost)
{
    size_t sz = 0;

    memset(c, 0, sizeof(*c));
    snprintf(c->user, sizeof(c->user), "%s", e->user);
    c->online = e->online;
    c->blocked = e->blocked;
    if (!pb_get_encoded_size(&sz, cim_Contact_fields, c))
        return false;
    *cost = 1 + varint_len(sz) + sz;
    return true;
}

static bool put_contacts(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const contacts_t *ct = *arg;
    for (size_t i = 0; i < ct->q->n; i++) {
        cim_Contact c;
        size_t cost;
        if (!contact_of(&ct->q->ents[i], &c, &cost))
            return false;
        /* The answer never exceeds the frame: the contacts that fit are listed. */
        if (os->callback != NULL && os->bytes_written + cost > ct->budget)
            return true;
        if (!pb_encode_tag_for_field(os, f) || !pb_encode_submessage(os, cim_Contact_fields, &c))
            return false;
    }
    return true;
}

/* The blocked flag of each contact of @p q (read in @p txn) and, in a cluster, its home,
 * keeping only those that can fit the frame (each taking the least it can: offline), so
 * that no other home is asked about one that will not be listed. @return true when some
 * are homed on another node: their online flags are to be asked there. */
static bool contacts_prepare(session_t *s, kv_txn_t *txn, xonline_req_t *q)
{
    cluster_t *cl = s->w->srv->cluster;
    bool enabled = cluster_is_enabled(cl), remote = false;
    uint32_t self = cluster_self(cl);
    size_t room = s->w->srv->conf->max_body - ROOM, used = 0, cost;
    uint8_t bkey[2 * KV_UKEY_MAX];
    size_t bl = kv_ukey(bkey, s->app, s->user);
    cim_Contact c;

    bkey[bl++] = '\0';
    for (uint32_t i = 0; i < q->n; i++) {
        xonline_ent_t *e = &q->ents[i];
        size_t u = strlen(e->user);
        memcpy(bkey + bl, e->user, u);
        e->blocked = kv_rec_get(txn, KV_DB_BLOCKS, bkey, bl + u, NULL, NULL) == 0;
        if (!enabled)
            continue; /* standalone: every contact is looked up here */
        if (!contact_of(e, &c, &cost) || used + cost > room) {
            q->n = i; /* not listed: not asked about */
            break;
        }
        used += cost;
        e->home = cluster_home(cl, s->app, e->user);
        e->remote = e->home != self;
        remote |= e->remote;
    }
    return remote;
}

/* Answer CONTACT_LIST from @p q: the online flags of the contacts homed here are read now,
 * the others' are what their homes said. */
static int contacts_answer(session_t *s, xonline_req_t *q)
{
    cim_ContactListRsp rsp = cim_ContactListRsp_init_zero;
    contacts_t ct = {q, s->w->srv->conf->max_body - ROOM};
    router_ent_t ent;

    for (uint32_t i = 0; i < q->n; i++)
        if (!q->ents[i].remote)
            q->ents[i].online =
                router_lookup(s->w->srv->router, s->app, q->ents[i].user, &ent, 1) > 0;
    rsp.req_id = q->req_id;
    rsp.code = cim_Code_OK;
    rsp.contacts.funcs.encode = put_contacts;
    rsp.contacts.arg = &ct;
    return session_answer(s, FT_CONTACT_LIST_ACK, cim_ContactListRsp_fields, &rsp);
}

void session__contacts_done(session_t *s, xonline_req_t *q)
{
    (void)contacts_answer(s, q); /* a failure closes s */
    mem_free(q);
}

static int contact_list(session_t *s, const uint8_t *body, size_t len)
{
    cim_Req req = cim_Req_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    uint8_t prefix[KV_UKEY_MAX + 1];
    kv_txn_t *txn = NULL;
    xonline_req_t *q;
    bool ask = false;
    size_t plen;
    int rc;

    if (!pb_decode(&is, cim_Req_fields, &req))
        return session__fail(s, FT_CONTACT_LIST, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed Req");
    if (kv_begin(s->w->srv->kv, KV_READ, &txn) < 0)
        return session__fail(s, FT_CONTACT_LIST, req.req_id, cim_Code_INTERNAL, "storage error");
    q = xonline_req_new(CONTACTS_MAX);
    q->req_id = req.req_id;
    plen = kv_ukey(prefix, s->app, s->user);
    prefix[plen++] = '\0';
    if ((rc = kv_rec_scan(txn, KV_DB_CONTACTS, prefix, plen, each_contact, q)) == 0)
        ask = contacts_prepare(s, txn, q);
    kv_abort(txn);
    if (rc < 0) {
        mem_free(q);
        return session__fail(s, FT_CONTACT_LIST, req.req_id, cim_Code_INTERNAL, "storage error");
    }
    if (ask) {
        /* Contacts of other homes: those homes say which are online (cluster_online_ask);
         * the answer comes back through the worker like a store completion. */
        q = mem_realloc(q, sizeof(*q) + q->n * sizeof(q->ents[0]));
        q->worker = s->w->index;
        q->sid = s->sid;
        snprintf(q->app, sizeof(q->app), "%s", s->app);
        if (cluster_online_ask(s->w->srv->cluster, q) == 0) {
            s->async_issued++;
            s->xsends++; /* answered by the cluster thread: what follows waits */
            return 0;
        }
        /* The cluster thread's mailbox is full: they are listed offline, as for a home
         * that does not answer. */
    }
    rc = contacts_answer(s, q);
    mem_free(q);
    return rc;
}

int session__conv_read(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    switch (type) {
    case FT_HISTORY:
        return history(s, body, len);
    case FT_CONV_LIST:
        return conv_list(s, body, len);
    default:
        return contact_list(s, body, len);
    }
}

/* ---- presence ------------------------------------------------------------------------- */

typedef struct watchers {
    server_t *srv;
    const char *app;
    blob_t *ev;
    delivery_t **items; /* per worker */
    uint32_t *n;
    size_t cap;
} watchers_t;

static int each_watcher(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                        size_t vlen)
{
    watchers_t *wt = ctx;
    router_ent_t ents[PRESENCE_MAX];
    char owner[KV_ID_MAX + 1];
    size_t n;
    (void)val;
    (void)vlen;
    if (slen == 0 || slen > KV_ID_MAX)
        return 0;
    memcpy(owner, sfx, slen);
    owner[slen] = '\0';
    n = router_lookup(wt->srv->router, wt->app, owner, ents, PRESENCE_MAX);
    for (size_t i = 0; i < n && i < PRESENCE_MAX; i++) {
        uint32_t w = ents[i].worker;
        delivery_t *d;
        if (wt->n[w] % 64 == 0)
            wt->items[w] = mem_realloc(wt->items[w], (wt->n[w] + 64) * sizeof(delivery_t));
        d = &wt->items[w][wt->n[w]++];
        d->sid = ents[i].sid;
        d->type = FT_EVENT;
        d->push = blob_ref(wt->ev);
        d->done = NULL;
    }
    return 0;
}

void session_presence_here(void *ctx, const char *app, const char *user, const uint8_t *ev,
                           size_t len)
{
    server_t *srv = ctx;
    uint8_t prefix[2 * KV_UKEY_MAX];
    size_t a = strlen(app), u = strlen(user);
    kv_txn_t *txn = NULL;
    watchers_t wt;

    if (kv_begin(srv->kv, KV_READ, &txn) < 0)
        return;
    memset(&wt, 0, sizeof(wt));
    wt.srv = srv;
    wt.app = app;
    wt.ev = blob_new(len);
    memcpy(wt.ev->data, ev, len);
    wt.items = mem_calloc(srv->nworkers * sizeof(*wt.items));
    wt.n = mem_calloc(srv->nworkers * sizeof(*wt.n));
    /* rcontacts: app NUL contact NUL owner — the online users who list this one */
    memcpy(prefix, app, a);
    prefix[a] = '\0';
    memcpy(prefix + a + 1, user, u);
    prefix[a + 1 + u] = '\0';
    (void)kv_rec_scan(txn, KV_DB_RCONTACTS, prefix, a + u + 2, each_watcher, &wt);
    kv_abort(txn);
    for (uint32_t w = 0; w < srv->nworkers; w++)
        if (wt.n[w] > 0)
            worker_deliver(srv->workers[w], wt.items[w], wt.n[w]);
    mem_free(wt.items);
    mem_free(wt.n);
    blob_unref(wt.ev);
}

void session__presence(session_t *s, bool online)
{
    server_t *srv = s->w->srv;
    cim_Event ev = cim_Event_init_zero;
    uint8_t buf[cim_Event_size];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));

    ev.kind = cim_EventKind_PRESENCE;
    snprintf(ev.user, sizeof(ev.user), "%s", s->user);
    ev.online = online;
    ev.time_ms = snowflake_now_ms();
    webhook_emit_presence(srv->webhook, s->app, s->user, online, ev.time_ms);
    if (!pb_encode(&os, cim_Event_fields, &ev))
        return;
    session_presence_here(srv, s->app, s->user, buf, os.bytes_written);
    /* who lists this user is recorded at the lister's home: every other node looks */
    cluster_presence(srv->cluster, s->app, s->user, buf, os.bytes_written);
}
