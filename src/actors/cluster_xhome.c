/* cluster_xhome: messages between homes on the cluster thread — checks with the
 * recipient's home, publishing to JetStream and answering the sender, consuming this
 * home's subjects, watermarks, drain probes and the merge (cluster.h, xhome.h,
 * docs/SCALING.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/cluster_int.h"
#include "actors/message.h"
#include "actors/send.h"
#include "actors/server.h"
#include "actors/store.h"
#include "actors/worker.h"
#include "actors/xhome.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/frame.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* JetStream redelivers a message not acknowledged within this: what a home had been given
 * but not applied when it died comes again this long after it is back (a redelivery of
 * one applied is a no-op). */
#define ACK_WAIT_NS (5LL * 1000 * 1000 * 1000)
#define MAX_ACK_PENDING 16384                   /* delivered, not yet applied and acked */
#define DUP_WINDOW_NS (3600LL * 1000 * 1000 * 1000) /* JetStream's dedup of republishes */
#define CHECK_REQ_MAX (8 + 4 + 1 + 3 * (KV_ID_MAX + 1))
#define REASON_MAX 96
/* A message committed here that JetStream did not take in time: the origin keeps
 * publishing it (its outbox), and a resend of its client_msg_id returns its id. */
#define BUS_FAILED "the message bus did not store the message in time; retry with the same " \
                   "client_msg_id"
/* Stored (at the sender's home and on the bus) but not in every timeline in time. */
#define NOT_APPLIED SEND_NOT_APPLIED
#define QUERY_MAX (8 + 1 + 2 * (KV_ID_MAX + 1))

/* An op's users of other homes being asked whether they exist (GROUP_CREATE, GROUP_ADD). */
typedef struct xh_users {
    store_op_t *op;       /* NULL once answered (a user was refused) */
    size_t pending;       /* checks not answered yet */
} xh_users_t;

/* A request waiting for another node's answer. */
typedef struct xh_check {
    struct xh_check *next;
    uint64_t token;
    uint64_t deadline_ms;
    uint32_t node;        /* asked */
    bool fwd;             /* r or op was forwarded to the group's home, which runs it */
    store_send_t *r;      /* a SEND, or */
    store_op_t *op;       /* a CONTACT_ADD or BLOCK: does the user exist at its home? or */
    xh_users_t *uc;       /* one of an op's users (user): does it exist at its home? */
    char user[KV_ID_MAX + 1];
} xh_check_t;

/* A request waiting for its message to be in every timeline before its answer
 * (PROTOCOL.md: SEND_ACK{OK} means stored in every recipient's timeline; a group change
 * is answered once its members' homes have it). */
typedef struct xh_wait {
    struct xh_wait *next, *prev; /* c->waits, oldest last */
    struct xh_wait *hnext;       /* c->wbucket[wait_slot(id)] */
    store_send_t *r;      /* a SEND to answer, owned, or */
    store_op_t *op;       /* an op (its group event or RECALL), owned */
    uint64_t id;
    bool own;             /* still to be applied by this home's store */
    uint64_t remote;      /* homes (bits by index) still to report it applied */
    bool stored;          /* JetStream has it (or it stays here) */
    uint64_t since_ms;    /* committed (or resent) */
    uint64_t asked_ms;    /* the last query to the other homes (0: none yet) */
} xh_wait_t;

/* A forwarded request's answer (N.node.<origin>.xfa): u64 token, u32 code, u64 msg_id,
 * u64 time_ms, u16 length of the encoded cim.Group and it, then the reason text. */
#define FWD_ANS_HDR (8 + 4 + 8 + 8 + 2)
#define FWD_ANS_MAX (FWD_ANS_HDR + 256 + REASON_MAX)

/* ---- answering a sender ------------------------------------------------------------------ */

/* Hand request @p q back to session @p sid of worker @p worker (false: no such worker). */
static bool to_session(cluster_t *c, uint32_t worker, uint64_t sid, store_req_t *q)
{
    server_t *srv = c->srv;
    delivery_t *d;

    if (srv == NULL || worker >= srv->nworkers)
        return false;
    d = mem_calloc(sizeof(*d));
    d->sid = sid;
    d->done = q;
    worker_deliver(srv->workers[worker], d, 1);
    return true;
}

/* Answer forwarded request @p token of node @p origin (N.node.<origin>.xfa; lost, the
 * origin answers SERVER_BUSY when it times out). */
static void reply_fwd(cluster_t *c, uint32_t origin, uint64_t token, int code, uint64_t msg_id,
                      uint64_t time_ms, const uint8_t *group, size_t glen, const char *reason)
{
    uint8_t out[FWD_ANS_MAX];
    char subj[SUBJ_MAX];
    size_t n;
    int w;

    if (!cluster_bus_up(c) || c->nc == NULL || glen > 256)
        return;
    be64_put(out, token);
    be32_put(out + 8, (uint32_t)code);
    be64_put(out + 12, msg_id);
    be64_put(out + 20, time_ms);
    out[28] = (uint8_t)(glen >> 8);
    out[29] = (uint8_t)glen;
    if (glen > 0)
        memcpy(out + FWD_ANS_HDR, group, glen);
    n = FWD_ANS_HDR + glen;
    w = snprintf((char *)out + n, REASON_MAX, "%s", code == cim_Code_OK ? "" : reason);
    n += w < REASON_MAX ? (size_t)w : REASON_MAX - 1; /* what was written */
    snprintf(subj, sizeof(subj), "%s.node.%u.xfa", c->conf->cluster_name, origin);
    (void)natsConnection_Publish(c->nc, subj, out, (int)n); /* best effort: see above */
}

/* Hand @p r back to whoever asked (a session's worker, the admin API's done, or the node
 * that forwarded it). */
static void answer(cluster_t *c, store_send_t *r)
{
    if (r->xorigin != 0) {
        reply_fwd(c, r->xorigin, r->xtoken, r->code, r->msg_id, r->time_ms, NULL, 0, r->reason);
        mem_free(r->xmsg);
        mem_free(r);
        return;
    }
    if (r->worker == STORE_NO_WORKER || c->srv == NULL) {
        mem_free(r->xmsg);
        mem_free(r);
        return;
    }
    if (r->hdr.done != NULL) {
        r->hdr.done(&r->hdr);
        return;
    }
    if (!to_session(c, r->worker, r->sid, &r->hdr))
        mem_free(r);
}

/* Hand op @p op, answered, back to its session, the admin API or the node that forwarded
 * it. */
static void answer_op_done(cluster_t *c, store_op_t *op)
{
    if (op->xorigin != 0) {
        reply_fwd(c, op->xorigin, op->xtoken, op->code, 0, 0, op->has_group ? op->group : NULL,
                  op->has_group ? op->group_len : 0, op->reason);
        mem_free(op);
    } else if (op->hdr.done != NULL) {
        op->hdr.done(&op->hdr);
    } else if (!to_session(c, op->worker, op->sid, &op->hdr)) {
        mem_free(op);
    }
}

/* Answer op @p op with @p code and @p reason (here, not by the store). */
static void answer_op(cluster_t *c, store_op_t *op, int code, const char *reason)
{
    op->code = code;
    snprintf(op->reason, sizeof(op->reason), "%s", reason);
    if (code == cim_Code_SERVER_BUSY)
        atomic_fetch_add_explicit(&c->x_refused, 1, memory_order_relaxed);
    answer_op_done(c, op);
}

/* Hand @p op to the store (SERVER_BUSY when it cannot take it). */
static void to_store_op(cluster_t *c, store_op_t *op)
{
    server_t *srv = c->srv;

    if (srv == NULL || store_op(srv->store, op) < 0)
        answer_op(c, op, cim_Code_SERVER_BUSY, "server busy; retry later");
}

/* Answer @p r SERVER_BUSY with @p reason (the node it names, if any, already in it). */
static void busy(cluster_t *c, store_send_t *r, const char *reason)
{
    r->code = cim_Code_SERVER_BUSY;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    atomic_fetch_add_explicit(&c->x_refused, 1, memory_order_relaxed);
    answer(c, r);
}

/* ... with a reason naming the recipient's home. */
static void busy_home(cluster_t *c, store_send_t *r, const char *what)
{
    char why[sizeof(r->reason)];

    snprintf(why, sizeof(why), "the recipient's home node (node %u) %s; retry later", r->home,
             what);
    busy(c, r, why);
}

/* ---- any thread -------------------------------------------------------------------------- */

void cluster_set_xhome(cluster_t *c, cluster_check_cb check, cluster_has_cb has,
                       cluster_deliver_cb deliver, void *srv)
{
    c->check_cb = check;
    c->has_cb = has;
    c->deliver_cb = deliver;
    c->srv = srv;
}

static cl_msg_t *msg_new(int kind, size_t len)
{
    cl_msg_t *m = mem_calloc(sizeof(*m) + len);
    m->kind = kind;
    m->len = len;
    return m;
}

static int post_send(cluster_t *c, int kind, void *r)
{
    cl_msg_t *m;
    int rc;

    if (!c->enabled)
        return RC_ECLOSED;
    m = msg_new(kind, 0);
    m->ptr = r;
    if ((rc = mbox_send(&c->box, &m->node)) < 0)
        mem_free(m);
    return rc;
}

int cluster_xhome_send(cluster_t *c, store_send_t *r)
{
    return post_send(c, MSG_XCHECK, r);
}

int cluster_xhome_resend(cluster_t *c, store_send_t *r)
{
    return post_send(c, MSG_XRESEND, r);
}

int cluster_xhome_check_op(cluster_t *c, store_op_t *op)
{
    return post_send(c, MSG_XCHECK_OP, op);
}

int cluster_xhome_forward(cluster_t *c, store_req_t *q)
{
    return post_send(c, MSG_XFWD, q);
}

int cluster_xhome_run_op(cluster_t *c, store_op_t *op)
{
    return post_send(c, MSG_XRUN_OP, op);
}

void cluster_xhome_committed(cluster_t *c, store_send_t *r)
{
    cl_msg_t *m = msg_new(MSG_XCOMMITTED, 0);
    m->ptr = r;
    cluster__post(c, m, true);
}

void cluster_xhome_done(cluster_t *c, store_req_t *q)
{
    cl_msg_t *m = msg_new(MSG_XDONE, 0);
    m->ptr = q;
    cluster__post(c, m, true);
}

void cluster_xhome_horizon(cluster_t *c, uint64_t horizon)
{
    cl_msg_t *m = msg_new(MSG_XHORIZON, 0);
    m->id = horizon;
    cluster__post(c, m, true);
}

void cluster_xhome_set_released(cluster_t *c, uint64_t id)
{
    c->merge.released = id;
    atomic_store_explicit(&c->xreleased, id, memory_order_relaxed);
}

const hist_t *cluster_merge_delay(const cluster_t *c)
{
    return &c->merge_delay;
}

void cluster__xh_drop(cluster_t *c, cl_msg_t *m)
{
    (void)c;
    switch (m->kind) {
    case MSG_XCHECK_OP:
    case MSG_XRUN_OP:
    case MSG_XRJQ:
    case MSG_XRJ_DONE:
        mem_free(m->ptr);
        break;
    case MSG_XFWD:
    case MSG_XDONE:
        if (m->ptr != NULL && ((store_req_t *)m->ptr)->kind == STORE_REQ_SEND)
            mem_free(((store_send_t *)m->ptr)->xmsg);
        mem_free(m->ptr); /* stopping: nobody is left to answer */
        break;
    case MSG_XCHECK:
    case MSG_XRESEND:
    case MSG_XCOMMITTED: {
        store_send_t *r = m->ptr;
        if (r != NULL)
            mem_free(r->xmsg);
        mem_free(r); /* stopping: nobody is left to answer */
        break;
    }
    case MSG_XIN:
        natsMsg_Destroy(m->ptr);
        break;
    case MSG_XAPPLIED: {
        store_apply_t *a = m->ptr;
        if (a != NULL)
            natsMsg_Destroy(a->ctx);
        mem_free(a);
        break;
    }
    default:
        break;
    }
    m->ptr = NULL;
}

/* A request nobody waits for: freed once the store is done with it. */
static void free_req(store_req_t *q)
{
    mem_free(q);
}

/* ---- libnats's delivery thread ----------------------------------------------------------- */

/* The recipient's home: N.node.<self>.xchk from an origin. Answered from here (a short read
 * transaction), like a ping: nothing of it needs the cluster thread. */
/* The next NUL-terminated id at *@p p (before @p end) into @p out; moves *@p p past it. */
static bool next_id(const char **p, const char *end, char out[KV_ID_MAX + 1])
{
    size_t n = *p < end ? strnlen(*p, (size_t)(end - *p)) : 0;

    if (n == 0 || n > KV_ID_MAX || *p + n >= end)
        return false;
    memcpy(out, *p, n + 1);
    *p += n + 1;
    return kv_id_valid(out);
}

/* The recipient's home: N.node.<self>.xchk from an origin. Answered from here (a short read
 * transaction), like a ping: nothing of it needs the cluster thread. */
void cluster__xh_on_check(cluster_t *c, natsConnection *nc, natsMsg *msg)
{
    const char *p = natsMsg_GetData(msg), *reply = natsMsg_GetReply(msg), *why = "";
    const char *end = p + natsMsg_GetDataLength(msg), *q = p + 13;
    char app[KV_ID_MAX + 1], from[KV_ID_MAX + 1], to[KV_ID_MAX + 1];
    uint8_t out[8 + 4 + 8 + REASON_MAX];
    uint32_t origin;
    int code, n;

    if (reply == NULL || strncmp(reply, c->prefix, strlen(c->prefix)) != 0 || end - p < 13 ||
        end - p > CHECK_REQ_MAX + XHOME_REC_MAX || !next_id(&q, end, app) ||
        !next_id(&q, end, from) || !next_id(&q, end, to)) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    origin = be32_get((const uint8_t *)p + 8);
    if (origin == c->self || !cluster_node_alive(c, origin)) {
        /* Not alive to this node yet: this home may still be releasing past its ids
         * (docs/SCALING.md, rejoining). */
        code = cim_Code_SERVER_BUSY;
        why = "the recipient's home node does not see the sender's home yet; retry later";
    } else if (cluster_home(c, app, to) != c->self) {
        code = cim_Code_SERVER_BUSY;
        why = "the recipient is not homed on the node asked";
    } else {
        code = c->check_cb != NULL ? c->check_cb(c->srv, app, from, to, (p[12] & 1) != 0, &why)
                                   : cim_Code_SERVER_BUSY;
    }
    /* What follows the strings: a transient message, delivered when the check is OK. */
    if (code == cim_Code_OK && q != end && c->deliver_cb != NULL)
        c->deliver_cb(c->srv, app, to, false, (const uint8_t *)q, (size_t)(end - q));
    memcpy(out, p, 8); /* the token */
    be32_put(out + 8, (uint32_t)code);
    be64_put(out + 12, atomic_load_explicit(&c->xreleased, memory_order_relaxed));
    n = snprintf((char *)out + 20, REASON_MAX, "%s", code == cim_Code_OK ? "" : why);
    if (n >= REASON_MAX)
        n = REASON_MAX - 1;
    (void)natsConnection_Publish(nc, reply, out, 20 + n); /* best effort: the origin's check
                                                            times out */
}

/* The origin: the answer to one of its checks. */
void cluster__xh_on_answer(cluster_t *c, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    cl_msg_t *m;

    if (len < 20 || len > 20 + REASON_MAX) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    m = msg_new(MSG_XANS, len - 20 + 1);
    m->id = be64_get(p);
    m->code = (int)be32_get(p + 8);
    m->seq = be64_get(p + 12);
    memcpy(m->data, p + 20, len - 20);
    m->data[len - 20] = '\0';
    m->len = len - 20;
    cluster__post(c, m, true);
}

/* A home the message went to: is message id applied here (u64 id, u8 1: its record / 0: in
 * the timeline of user name, then app NUL name NUL)? Answered "yes" (u64 id, u32 this node)
 * on the reply subject (the origin's .xapd) when it is, nothing otherwise: the origin asks
 * again. */
void cluster__xh_on_query(cluster_t *c, natsConnection *nc, natsMsg *msg)
{
    const char *p = natsMsg_GetData(msg), *reply = natsMsg_GetReply(msg);
    const char *end = p + natsMsg_GetDataLength(msg), *q = p + 9;
    char app[KV_ID_MAX + 1], name[KV_ID_MAX + 1];
    uint8_t yes[12];

    if (reply == NULL || end - p < 9 || end - p > QUERY_MAX || (uint8_t)p[8] > 1 ||
        !next_id(&q, end, app) || !next_id(&q, end, name) || q != end ||
        strncmp(reply, c->prefix, strlen(c->prefix))) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    memcpy(yes, p, 8);
    be32_put(yes + 8, c->self);
    if (c->has_cb != NULL &&
        c->has_cb(c->srv, app, name, be64_get((const uint8_t *)p), p[8] == 1))
        (void)natsConnection_Publish(nc, reply, yes, 12); /* best effort: asked again */
}

/* The origin: message id is applied at a home it went to (u64 id, u32 that home). */
void cluster__xh_on_applied(cluster_t *c, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    cl_msg_t *m;

    if (natsMsg_GetDataLength(msg) != 12 || cluster_index_of(c, be32_get(p + 8)) < 0) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    m = msg_new(MSG_XAPD, 0);
    m->id = be64_get(p);
    m->from = be32_get(p + 8);
    cluster__post(c, m, true);
}

/* ---- forwarded requests: a group's SEND or change, run at the group's home ------------- */

/* u64 token, u32 origin, u64 the session there, u8 from_kind, then per kind:
 *  .xsnd  u8 flags (1: the admin API's SYSTEM message: no membership check), u8 msg_type,
 *         app NUL from NUL to NUL client_msg_id NUL, the body;
 *  .xop   u32 type, u8 open, u64 msg_id, app NUL user NUL target NUL, u32 count, then that
 *         many users NUL-terminated. */
#define FWD_HDR (8 + 4 + 8 + 1)
#define FWD_SEND_MAX (FWD_HDR + 2 + 4 * (KV_ID_MAX + 1))
#define FWD_OP_MAX (FWD_HDR + 4 + 1 + 8 + 3 * (KV_ID_MAX + 1) + 4)

/* The group named is homed here, and the origin is a peer: else refused — to the origin's
 * .xfa (it answers its session with it), or, from an origin that is no peer, dropped and
 * counted. */
static bool fwd_ok(cluster_t *c, natsConnection *nc, const uint8_t *p, const char *app,
                   const char *group)
{
    uint32_t origin = be32_get(p + 8);
    const char *why = NULL;
    uint8_t out[FWD_ANS_MAX];
    char subj[SUBJ_MAX];
    int n;

    if (cluster_index_of(c, origin) < 0 || origin == c->self) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return false;
    }
    if (cluster_home(c, app, group) != c->self)
        why = "the group is not homed on the node asked";
    else if (c->srv == NULL)
        why = "the group's home node is stopping";
    if (why == NULL)
        return true;
    memset(out, 0, FWD_ANS_HDR);
    memcpy(out, p, 8);
    be32_put(out + 8, cim_Code_SERVER_BUSY);
    n = snprintf((char *)out + FWD_ANS_HDR, REASON_MAX, "%s", why);
    n = n < REASON_MAX ? n : REASON_MAX - 1;
    snprintf(subj, sizeof(subj), "%s.node.%u.xfa", c->conf->cluster_name, origin);
    (void)natsConnection_Publish(nc, subj, out, FWD_ANS_HDR + n); /* best effort */
    return false;
}

/* The group's home: a group's SEND from a session of another node, into this store. */
void cluster__xh_on_fwd_send(cluster_t *c, natsConnection *nc, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *q = (const char *)p + FWD_HDR + 2, *end = (const char *)p + len;
    char app[KV_ID_MAX + 1], from[KV_ID_MAX + 1], to[KV_ID_MAX + 1], cmid[KV_ID_MAX + 1];
    server_t *srv = c->srv;
    store_send_t *r;

    if (len < FWD_HDR + 2 || len > FWD_SEND_MAX + XHOME_REC_MAX || !next_id(&q, end, app) ||
        !next_id(&q, end, from) || !next_id(&q, end, to) || !next_id(&q, end, cmid)) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    if (!fwd_ok(c, nc, p, app, to))
        return;
    r = store_send_new((size_t)(end - q));
    r->xtoken = be64_get(p);
    r->xorigin = be32_get(p + 8);
    r->sid = be64_get(p + 12);
    r->worker = STORE_NO_WORKER;
    r->from_kind = p[20];
    r->conv_type = cim_ConvType_GROUP;
    r->system = (p[21] & 1) != 0;
    r->msg_type = p[22];
    if ((p[21] & ~1) != 0 || (r->system ? r->msg_type != cim_MsgType_SYSTEM
                                         : r->msg_type < cim_MsgType_TEXT ||
                                               r->msg_type > cim_MsgType_CUSTOM)) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        mem_free(r);
        return;
    }
    memcpy(r->app, app, sizeof(app));
    memcpy(r->from, from, sizeof(from));
    memcpy(r->to, to, sizeof(to));
    memcpy(r->cmid, cmid, sizeof(cmid));
    if (end > q)
        memcpy(r->body, q, (size_t)(end - q));
    if (store_send(srv->store, r) < 0)
        mem_free(r); /* full or stopping: the origin times out (SERVER_BUSY) */
}

/* The group's home: a group's change from a session of another node (its users of other
 * homes are asked first, then it goes to this store). */
void cluster__xh_on_fwd_op(cluster_t *c, natsConnection *nc, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *q = (const char *)p + FWD_HDR + 13, *end = (const char *)p + len;
    char app[KV_ID_MAX + 1], user[KV_ID_MAX + 1], target[KV_ID_MAX + 1];
    uint32_t n;
    store_op_t *op;
    cl_msg_t *m;

    if (len < FWD_HDR + 13 || len > FWD_OP_MAX + 1000 * (KV_ID_MAX + 1) ||
        !next_id(&q, end, app) || !next_id(&q, end, user) || !next_id(&q, end, target) ||
        end - q < 4 || (n = be32_get((const uint8_t *)q)) > 1000) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    q += 4;
    op = store_op_new(n);
    for (uint32_t i = 0; i < n; i++)
        if (!next_id(&q, end, op->users[i])) {
            atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
            mem_free(op);
            return;
        }
    op->type = be32_get(p + FWD_HDR);
    if (q != end || (op->type != FT_GROUP_JOIN && op->type != FT_GROUP_LEAVE &&
                     op->type != FT_GROUP_ADD && op->type != FT_GROUP_KICK &&
                     op->type != FT_GROUP_DISMISS)) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        mem_free(op);
        return;
    }
    if (!fwd_ok(c, nc, p, app, target)) {
        mem_free(op);
        return;
    }
    op->nusers = n;
    op->xtoken = be64_get(p);
    op->xorigin = be32_get(p + 8);
    op->sid = be64_get(p + 12);
    op->worker = STORE_NO_WORKER;
    op->from_kind = p[20];
    op->open = p[FWD_HDR + 4] != 0;
    op->msg_id = be64_get(p + FWD_HDR + 5);
    memcpy(op->app, app, sizeof(app));
    memcpy(op->user, user, sizeof(user));
    memcpy(op->target, target, sizeof(target));
    m = msg_new(MSG_XRUN_OP, 0);
    m->ptr = op;
    cluster__post(c, m, true);
}

/* The origin: the answer to a forwarded request. */
void cluster__xh_on_fwd_answer(cluster_t *c, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    cl_msg_t *m;

    if (len < FWD_ANS_HDR || len > FWD_ANS_MAX ||
        FWD_ANS_HDR + (size_t)((p[28] << 8) | p[29]) > len) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    m = msg_new(MSG_XFWD_ANS, len + 1);
    memcpy(m->data, p, len);
    m->data[len] = '\0';
    m->len = len;
    cluster__post(c, m, true);
}

/* A read notice: u64 up_to, then app NUL reader NUL peer NUL. */
void cluster_xhome_read(cluster_t *c, const char *app, const char *reader, const char *peer,
                        uint64_t up_to)
{
    cl_msg_t *m;
    size_t n = 8;

    if (!c->enabled)
        return;
    m = msg_new(MSG_XREAD, QUERY_MAX + KV_ID_MAX + 1);
    m->to = cluster_home(c, app, peer);
    be64_put(m->data, up_to);
    n += (size_t)snprintf((char *)m->data + n, m->len - n, "%s", app) + 1;
    n += (size_t)snprintf((char *)m->data + n, m->len - n, "%s", reader) + 1;
    n += (size_t)snprintf((char *)m->data + n, m->len - n, "%s", peer) + 1;
    m->len = n;
    cluster__post(c, m, false); /* best effort: an event */
}

void cluster__xh_on_read(cluster_t *c, natsMsg *msg)
{
    const char *p = natsMsg_GetData(msg);
    const char *end = p + natsMsg_GetDataLength(msg), *q = p + 8;
    server_t *srv = c->srv;
    store_op_t *op;

    op = store_op_new(0);
    if (end - p < 8 || end - p > QUERY_MAX + KV_ID_MAX + 1 || !next_id(&q, end, op->app) ||
        !next_id(&q, end, op->user) || !next_id(&q, end, op->target) || q != end ||
        cluster_home(c, op->app, op->target) != c->self || srv == NULL) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        mem_free(op);
        return;
    }
    op->type = STORE_OP_PEER_READ;
    op->msg_id = be64_get((const uint8_t *)p);
    op->worker = STORE_NO_WORKER;
    op->hdr.done = free_req;
    if (store_op(srv->store, op) < 0)
        mem_free(op); /* stopping */
}

void cluster_set_presence(cluster_t *c, cluster_presence_cb cb)
{
    c->presence_cb = cb;
}

/* A notice to every other node (MSG_XPRES, MSG_XTG): app NUL name NUL, then @p len bytes. */
static void broadcast(cluster_t *c, int kind, const char *app, const char *name,
                      const uint8_t *data, size_t len)
{
    cl_msg_t *m;
    size_t n = 0;

    if (!c->enabled)
        return;
    m = msg_new(kind, 2 * (KV_ID_MAX + 1) + len);
    n += (size_t)snprintf((char *)m->data + n, m->len - n, "%s", app) + 1;
    n += (size_t)snprintf((char *)m->data + n, m->len - n, "%s", name) + 1;
    memcpy(m->data + n, data, len);
    m->len = n + len;
    cluster__post(c, m, false); /* best effort: an event */
}

/* A presence notice: app NUL user NUL, then the encoded Event. */
void cluster_presence(cluster_t *c, const char *app, const char *user, const uint8_t *ev,
                      size_t len)
{
    if (len <= CLUSTER_EVENT_MAX)
        broadcast(c, MSG_XPRES, app, user, ev, len);
}

/* A group's transient message: app NUL group NUL, then the encoded Message. */
void cluster_group_transient(cluster_t *c, const char *app, const char *group,
                             const uint8_t *rec, size_t len)
{
    if (len <= XHOME_REC_MAX)
        broadcast(c, MSG_XTG, app, group, rec, len);
}

/* A notice of another node (.xpr: the user is homed there; .xtg: a group's transient
 * message): app and name, and @p max bytes at most after them. */
static bool notice_parse(cluster_t *c, natsMsg *msg, size_t max, char app[KV_ID_MAX + 1],
                         char name[KV_ID_MAX + 1], const char **q, const char **end)
{
    const char *p = natsMsg_GetData(msg);

    *q = p;
    *end = p + natsMsg_GetDataLength(msg);
    if (*end - p > (ptrdiff_t)(2 * (KV_ID_MAX + 1) + max) || !next_id(q, *end, app) ||
        !next_id(q, *end, name) || *q == *end) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return false;
    }
    return true;
}

void cluster__xh_on_presence(cluster_t *c, natsMsg *msg)
{
    char app[KV_ID_MAX + 1], user[KV_ID_MAX + 1];
    const char *q, *end;

    if (!notice_parse(c, msg, CLUSTER_EVENT_MAX, app, user, &q, &end))
        return;
    if (cluster_home(c, app, user) == c->self)
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
    else if (c->presence_cb != NULL)
        c->presence_cb(c->srv, app, user, (const uint8_t *)q, (size_t)(end - q));
}

void cluster__xh_on_group_transient(cluster_t *c, natsMsg *msg)
{
    char app[KV_ID_MAX + 1], group[KV_ID_MAX + 1];
    const char *q, *end;

    if (notice_parse(c, msg, XHOME_REC_MAX, app, group, &q, &end) && c->deliver_cb != NULL)
        c->deliver_cb(c->srv, app, group, true, (const uint8_t *)q, (size_t)(end - q));
}

/* What this home consumes: hand it over with its stream sequence; a malformed one is
 * acknowledged (it would come back forever) and counted. */
static void on_out_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    const struct xh_tag *tag = closure;
    cluster_t *c = tag->c;
    jsMsgMetaData *meta = NULL;
    xhome_msg_t x;
    cl_msg_t *m;

    (void)nc;
    (void)sub;
    if (xhome_parse((const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                    &x) < 0 ||
        natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        LOG_RL(LOG_LVL_WARN, "cluster: a malformed message on %s: dropped",
               natsMsg_GetSubject(msg));
        (void)natsMsg_Ack(msg, NULL); /* best effort: a redelivery is dropped again */
        natsMsg_Destroy(msg);
        return;
    }
    m = msg_new(MSG_XIN, 0);
    m->ptr = msg;
    m->seq = meta->Sequence.Stream;
    m->code = (int)tag->gen;
    jsMsgMetaData_Destroy(meta);
    cluster__post(c, m, true); /* bounded by MAX_ACK_PENDING */
}

static void on_wm_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    cluster_t *c = closure;
    int len = natsMsg_GetDataLength(msg);
    cl_msg_t *m;

    (void)nc;
    (void)sub;
    if (len <= 0 || len > (int)XHOME_WM_MAX) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
    } else {
        m = msg_new(MSG_XWM, (size_t)len);
        memcpy(m->data, natsMsg_GetData(msg), (size_t)len);
        cluster__post(c, m, false); /* a watermark more or less: the next one says more */
    }
    natsMsg_Destroy(msg);
}

/* JetStream's answer to a publish (a libnats thread). */
static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    cluster_t *c = closure;
    const char *idtext = NULL;
    cl_msg_t *m;

    (void)js;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &idtext) == NATS_OK && idtext != NULL &&
        idtext[0] != 'p') {
        char *dash = NULL;
        m = msg_new(MSG_XACK, 0);
        m->id = strtoull(idtext, &dash, 10); /* "<id>-<home>" */
        m->to = dash != NULL && *dash == '-' ? (uint32_t)strtoul(dash + 1, NULL, 10) : 0;
        m->code = pa != NULL ? 0 : 1;
        m->seq = pa != NULL ? pa->Sequence : 0;
        if (pae != NULL)
            LOG_RL(LOG_LVL_WARN, "cluster: JetStream did not store message %s: %s", idtext,
                   pae->ErrText != NULL ? pae->ErrText : natsStatus_GetText(pae->Err));
        cluster__post(c, m, true);
    }
    natsMsg_Destroy(msg);
}

/* ---- the cluster thread: setup ------------------------------------------------------------ */

void cluster__xh_init(cluster_t *c)
{
    static const double delay_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,  0.5,    1,     2.5,  5,    10,  30};

    hist_init(&c->merge_delay, delay_le, sizeof(delay_le) / sizeof(delay_le[0]));
    xmerge_init(&c->merge, c->nodes, c->n);
    /* At start no peer is known alive: each is waived only once this home has drained
     * what it published (a probe came back), and waited for as soon as it is heard. */
    for (size_t i = 0; i < c->n; i++) {
        c->dead[i] = c->nodes[i] != c->self;
        c->down_probe[i] = 1;
    }
    c->need_probe = true;
}

/* The stream every origin publishes to: created, or updated to this config. */
static natsStatus ensure_stream(cluster_t *c)
{
    char subj[SUBJ_MAX];
    const char *subjects[1] = {subj};
    jsStreamConfig cfg;
    jsErrCode jerr = 0;
    natsStatus s;

    snprintf(subj, sizeof(subj), "%s.out.>", c->conf->cluster_name);
    jsStreamConfig_Init(&cfg);
    cfg.Name = c->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    /* Each home's consumer has its own subjects (N.out.*.<home>): a message leaves the
     * stream once its home acknowledged it. */
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Duplicates = DUP_WINDOW_NS;
    s = js_AddStream(NULL, c->js, &cfg, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr)
        s = js_UpdateStream(NULL, c->js, &cfg, NULL, &jerr);
    return s;
}

/* A new consumer for this home on every connection. Deliveries pushed while the connection
 * was down are lost and JetStream would only send them again after ACK_WAIT_NS, behind
 * newer ones; a new consumer (the old one deleted: on a work-queue stream it held only
 * what was not acknowledged) delivers everything not yet acknowledged again, in stream
 * order, which is what the watermarks' sequences count on. */
static natsStatus subscribe_out(cluster_t *c)
{
    struct xh_tag *tag;
    jsStreamInfo *si = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;

    if (c->sub_out != NULL) {
        (void)natsSubscription_Unsubscribe(c->sub_out); /* best effort: the bus may be down */
        natsSubscription_Destroy(c->sub_out);
        c->sub_out = NULL;
    }
    s = js_DeleteConsumer(c->js, c->stream, c->durable, NULL, &jerr);
    if (s != NATS_OK && jerr != JSConsumerNotFoundErr && s != NATS_NOT_FOUND)
        return s;
    /* Everything of this home's below the stream's first message was acknowledged. */
    if ((s = js_GetStreamInfo(&si, c->js, c->stream, NULL, &jerr)) != NATS_OK)
        return s;
    c->delivered_seq = si->State.Msgs == 0 ? si->State.LastSeq
                       : si->State.FirstSeq > 0 ? si->State.FirstSeq - 1 : 0;
    jsStreamInfo_Destroy(si);
    c->sub_gen++;
    tag = &c->tags[c->sub_gen % (sizeof(c->tags) / sizeof(c->tags[0]))];
    tag->c = c;
    tag->gen = c->sub_gen;
    jsSubOptions_Init(&so);
    so.Stream = c->stream;
    so.ManualAck = true;
    so.Config.Durable = c->durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.AckWait = ACK_WAIT_NS;
    so.Config.MaxAckPending = MAX_ACK_PENDING;
    if ((s = js_Subscribe(&c->sub_out, c->js, c->subj_out, on_out_msg, tag, NULL, &so,
                          &jerr)) != NATS_OK)
        return s;
    /* Never dropped for being slow: MAX_ACK_PENDING bounds what can be waiting. */
    return natsSubscription_SetPendingLimits(c->sub_out, -1, -1);
}

void cluster__xh_bus_up(cluster_t *c)
{
    jsOptions jo;
    jsErrCode jerr = 0;
    natsStatus s = NATS_OK;

    if (c->nc == NULL || c->stopping)
        return;
    c->js_try_ms = cluster__now_ms();
    if (c->js == NULL) {
        jsOptions_Init(&jo);
        jo.Wait = CLUSTER_CONNECT_TIMEOUT_MS;
        jo.PublishAsync.AckHandler = on_pub_ack;
        jo.PublishAsync.AckHandlerClosure = c;
        if ((s = natsConnection_JetStream(&c->js, c->nc, &jo)) != NATS_OK)
            goto fail;
    }
    /* A request of the cluster thread, bounded by jo.Wait, once per connection. */
    if ((s = ensure_stream(c)) != NATS_OK)
        goto fail;
    if (c->sub_wm == NULL &&
        (s = natsConnection_Subscribe(&c->sub_wm, c->nc, c->subj_wms, on_wm_msg, c)) != NATS_OK)
        goto fail;
    if ((s = subscribe_out(c)) != NATS_OK)
        goto fail;
    c->js_ready = true;
    c->need_probe = true;
    return;
fail:
    c->js_ready = false;
    LOG_RL(LOG_LVL_ERROR, "cluster: JetStream is not usable (%s%s%d): messages between homes "
                          "wait for it; trying again every %d ms",
           natsStatus_GetText(s), jerr ? ", error " : "", (int)jerr, CLUSTER_JS_RETRY_MS);
}

/* A released-or-pending apply that will not reach the store (stopping). */
static void drop_apply(void *data)
{
    store_apply_t *a = data;

    natsMsg_Destroy(a->ctx); /* not acknowledged: JetStream delivers it again */
    mem_free(a);
}

void cluster__xh_stop(cluster_t *c)
{
    xh_out_t *o, *onext;
    xh_check_t *k, *knext;
    natsMsgList pending = {NULL, 0};

    natsSubscription_Destroy(c->sub_out);
    natsSubscription_Destroy(c->sub_wm);
    c->sub_out = c->sub_wm = NULL;
    /* Publishes JetStream never answered are the context's until taken back (the outbox
     * has every message among them; a probe is only a probe). libnats 3.4 crashes when
     * asked before any asynchronous publish was made. */
    if (c->js != NULL && c->js_published &&
        js_PublishAsyncGetPendingList(&pending, c->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
    jsCtx_Destroy(c->js);
    c->js = NULL;
    c->js_ready = false;
    for (o = c->out_head; o != NULL; o = onext) {
        onext = o->next;
        mem_free(o->xmsg); /* the outbox keeps the message */
        mem_free(o);
    }
    c->out_head = c->out_tail = NULL;
    for (k = c->checks; k != NULL; k = knext) {
        knext = k->next;
        mem_free(k->r);
        mem_free(k->op);
        if (k->uc != NULL && --k->uc->pending == 0) {
            mem_free(k->uc->op);
            mem_free(k->uc);
        }
        mem_free(k);
    }
    c->checks = NULL;
    for (xh_wait_t *wt = c->waits, *wnext; wt != NULL; wt = wnext) {
        wnext = wt->next;
        if (wt->r != NULL)
            mem_free(wt->r->xmsg);
        mem_free(wt->r); /* stopping: its session is gone */
        mem_free(wt->op);
        mem_free(wt);
    }
    c->waits = NULL;
    memset(c->wbucket, 0, sizeof(c->wbucket));
    xmerge_clear(&c->merge, drop_apply);
}

/* ---- liveness ------------------------------------------------------------------------- */

void cluster__xh_down(cluster_t *c, uint32_t node)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->nodes[i] == c->self || (node != CLUSTER_ALL_NODES && c->nodes[i] != node))
            continue;
        /* Waived once a probe published from now on comes back: everything it published
         * before is then in this home's merge. */
        c->dead[i] = true;
        c->down_probe[i] = c->probe_sent + 1;
        c->need_probe = true;
    }
}

void cluster__xh_up(cluster_t *c, uint32_t node)
{
    int i = cluster_index_of(c, node);

    if (i < 0 || node == c->self)
        return;
    c->dead[i] = false;
    xmerge_waive(&c->merge, node, false);
}

/* ---- the merge --------------------------------------------------------------------------- */

/* This node's own horizon: no message of its own below it can still enter the merge. */
static uint64_t own_horizon(const cluster_t *c)
{
    return c->out_head != NULL && c->out_head->id < c->store_horizon ? c->out_head->id
                                                                     : c->store_horizon;
}

static void drop_apply(void *data);

static void on_applied(store_req_t *q)
{
    store_apply_t *a = (store_apply_t *)q;
    cl_msg_t *m = msg_new(MSG_XAPPLIED, 0);

    m->ptr = a;
    cluster__post(q->done_arg, m, true);
}

/* Hand every message the merge can release to the store, in id order. */
static void release(cluster_t *c)
{
    server_t *srv = c->srv;
    xmerge_ent_t *e;
    uint64_t now = uv_hrtime();

    xmerge_horizon(&c->merge, c->self, own_horizon(c));
    while ((e = xmerge_next(&c->merge)) != NULL) {
        store_apply_t *a = e->data;
        hist_observe(&c->merge_delay, (double)(now - e->t_in_ns) / 1e9);
        a->hdr.done = on_applied;
        a->hdr.done_arg = c;
        if (srv == NULL || store_apply(srv->store, a) < 0)
            drop_apply(a); /* stopping */
        mem_free(e);
    }
    atomic_store_explicit(&c->xreleased, c->merge.released, memory_order_relaxed);
    atomic_store_explicit(&c->x_pending, c->merge.pending, memory_order_relaxed);
}

/* An apply request for parsed message @p x (its natsMsg @p nm to acknowledge, or NULL). */
static store_apply_t *apply_new(const xhome_msg_t *x, natsMsg *nm, uint64_t skip_sid)
{
    store_apply_t *a = mem_calloc(sizeof(*a) + x->rec_len + x->ulist_len);

    a->hdr.kind = STORE_REQ_APPLY;
    a->id = x->id;
    a->origin = x->origin;
    a->conv_type = x->conv_type;
    a->msg_type = x->msg_type;
    a->skip_sid = (x->flags & XHOME_F_SKIP) ? x->skip_sid : skip_sid;
    memcpy(a->app, x->app, sizeof(a->app));
    memcpy(a->from, x->from, sizeof(a->from));
    memcpy(a->to, x->to, sizeof(a->to));
    a->ctx = nm;
    a->flags = x->flags;
    a->nusers = x->nusers;
    a->ulist_len = (uint32_t)x->ulist_len;
    a->rec_len = (uint32_t)x->rec_len;
    memcpy(a->rec, x->rec, x->rec_len);
    if (x->ulist_len > 0)
        memcpy(a->rec + x->rec_len, x->ulist, x->ulist_len);
    return a;
}

/* Own messages JetStream has (or that stay here) enter the merge from the front, in id
 * order. */
static void own_to_merge(cluster_t *c)
{
    xh_out_t *o;
    xhome_msg_t x;

    while ((o = c->out_head) != NULL && o->stored && !o->rejoin) {
        c->out_head = o->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        c->nout--;
        /* a message naming its users per home: this home's own copy is the last of its id
         * (commit_homes); the others are only published */
        if (xhome_parse(o->xmsg, o->xmsg_len, &x) == 0 &&
            (!(x.flags & XHOME_F_USERS) || o->home == c->self))
            (void)xmerge_add(&c->merge, c->self, o->id, apply_new(&x, NULL, o->skip_sid),
                             uv_hrtime()); /* this node is one of the nodes */
        mem_free(o->xmsg);
        mem_free(o);
    }
}

/* ---- waiting for the timelines ---------------------------------------------------------- */

enum { W_OWN, W_REMOTE, W_STORED, W_FAILED };

/* The bucket of message @p id's waits (Fibonacci hashing: ids of one millisecond differ
 * in their low bits). */
static size_t wait_slot(uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> (64 - WAIT_BUCKET_BITS));
}

/* A wait for @p id: answered once this home applied it (@p own) and the homes of
 * @p remote (bits by index) reported it; @p stored: JetStream has every copy published to
 * another home (or none was), -1 to find out. */
static xh_wait_t *wait_add(cluster_t *c, store_send_t *r, store_op_t *op, uint64_t id, bool own,
                           uint64_t remote, int stored)
{
    xh_wait_t *w = mem_calloc(sizeof(*w));
    size_t slot = wait_slot(id);

    w->r = r;
    w->op = op;
    w->id = id;
    w->own = own;
    w->remote = remote;
    w->stored = stored > 0;
    if (stored < 0) {
        w->stored = true;
        for (xh_out_t *o = c->out_head; o != NULL && w->stored; o = o->next)
            w->stored = o->id != id || o->stored;
    }
    w->since_ms = cluster__now_ms();
    w->next = c->waits;
    if (c->waits != NULL)
        c->waits->prev = w;
    c->waits = w;
    w->hnext = c->wbucket[slot];
    c->wbucket[slot] = w;
    return w;
}

/* Take @p w out of the list and its bucket. */
static void wait_unlink(cluster_t *c, xh_wait_t *w)
{
    xh_wait_t **pp;

    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        c->waits = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    for (pp = &c->wbucket[wait_slot(w->id)]; *pp != w; pp = &(*pp)->hnext)
        ;
    *pp = w->hnext;
}

/* Ask the homes @p w still waits for whether they applied its message (their answers:
 * MSG_XAPD). */
static void ask(cluster_t *c, xh_wait_t *w, uint64_t now)
{
    uint8_t req[QUERY_MAX];
    char subj[SUBJ_MAX], reply[SUBJ_MAX];
    bool record = w->op != NULL || w->r->conv_type != cim_ConvType_DIRECT;
    size_t n = 9;

    w->asked_ms = now;
    if (!cluster_bus_up(c) || c->nc == NULL)
        return;
    /* a DIRECT message: in the recipient's timeline; else its record at that home */
    be64_put(req, w->id);
    req[8] = record;
    n += (size_t)snprintf((char *)req + n, sizeof(req) - n, "%s",
                          w->op != NULL ? w->op->app : w->r->app) + 1;
    n += (size_t)snprintf((char *)req + n, sizeof(req) - n, "%s",
                          w->op != NULL ? w->op->target : w->r->to) + 1;
    snprintf(reply, sizeof(reply), "%s.node.%u.xapd", c->conf->cluster_name, c->self);
    for (size_t i = 0; i < c->n; i++) {
        if (!(w->remote & (1ULL << i)))
            continue;
        snprintf(subj, sizeof(subj), "%s.node.%u.xapq", c->conf->cluster_name, c->nodes[i]);
        (void)natsConnection_PublishRequest(c->nc, subj, reply, req, (int)n); /* best effort:
                                                                           asked again */
    }
}

/* Answer @p w's request; @p busy: SERVER_BUSY with that reason (a SEND), or answered with
 * what the store decided (an op: its change is made, and reaches every home). */
static void wait_answer(cluster_t *c, xh_wait_t *w, const char *why)
{
    if (w->op != NULL)
        answer_op_done(c, w->op);
    else if (why != NULL)
        busy(c, w->r, why);
    else
        answer(c, w->r);
}

/* What happened to message @p id (W_*; W_REMOTE: reported by node @p node): the waits for
 * it that are done are answered. */
static void waits_mark(cluster_t *c, uint64_t id, int what, uint32_t node)
{
    xh_wait_t *w, *wnext;
    int i = what == W_REMOTE ? cluster_index_of(c, node) : -1;

    for (w = c->wbucket[wait_slot(id)]; w != NULL; w = wnext) {
        wnext = w->hnext;
        if (w->id != id)
            continue;
        w->own = w->own && what != W_OWN;
        if (i >= 0)
            w->remote &= ~(1ULL << i);
        w->stored = w->stored || what == W_STORED;
        if ((what == W_FAILED && w->op == NULL) || (!w->own && w->remote == 0)) {
            wait_unlink(c, w);
            wait_answer(c, w, what == W_FAILED ? BUS_FAILED : NULL); /* failed: the outbox
                                                                       keeps publishing it */
            mem_free(w);
        }
    }
}

/* Timeouts, queries for reports that did not come, and homes that went down. */
static void waits_tick(cluster_t *c, uint64_t now)
{
    xh_wait_t *w, *wnext;

    for (w = c->waits; w != NULL; w = wnext) {
        wnext = w->next;
        /* A home that is down gets its copy from JetStream when it is back: once JetStream
         * has it, it is durable there, and that home's users are unavailable meanwhile. */
        for (size_t i = 0; w->stored && i < c->n; i++)
            if ((w->remote & (1ULL << i)) && !cluster_node_alive(c, c->nodes[i]))
                w->remote &= ~(1ULL << i);
        if ((!w->own && w->remote == 0) || now - w->since_ms >= CLUSTER_APPLIED_WAIT_MS) {
            wait_unlink(c, w);
            if (!w->own && w->remote == 0)
                wait_answer(c, w, NULL);
            else
                wait_answer(c, w, w->stored ? NOT_APPLIED : BUS_FAILED);
            mem_free(w);
            continue;
        }
        if (w->remote != 0 && w->stored &&
            now - (w->asked_ms > w->since_ms ? w->asked_ms : w->since_ms) >=
                CLUSTER_APPLIED_ASK_MS)
            ask(c, w, now);
    }
}

/* The store is done with a request the cluster answers (cluster_xhome_done). */
static void take_done(cluster_t *c, store_req_t *q)
{
    store_send_t *r = q->kind == STORE_REQ_SEND ? (store_send_t *)q : NULL;
    store_op_t *op = q->kind == STORE_REQ_OP ? (store_op_t *)q : NULL;

    if (r != NULL && r->wait_apply && r->code == cim_Code_OK)
        (void)wait_add(c, r, NULL, r->msg_id, true, r->wait_homes, -1);
    else if (r != NULL)
        answer(c, r);
    else if (op != NULL && op->wait_id != 0 && op->code == cim_Code_OK)
        (void)wait_add(c, NULL, op, op->wait_id, true, op->wait_homes, -1);
    else if (op != NULL)
        answer_op_done(c, op);
    else
        mem_free(q);
}

/* ---- publishing ------------------------------------------------------------------------- */

void cluster__xh_publish(cluster_t *c, xh_out_t *o)
{
    char subj[SUBJ_MAX], idtext[40];
    jsPubOptions po;
    natsMsg *nm = NULL;
    natsStatus s;

    if (!c->js_ready || !cluster_bus_up(c))
        return;
    snprintf(subj, sizeof(subj), "%s.out.%u.%u", c->conf->cluster_name, c->self, o->home);
    /* one per copy: JetStream would drop a group message's second home as a repeat */
    snprintf(idtext, sizeof(idtext), "%" PRIu64 "-%u", o->id, o->home);
    jsPubOptions_Init(&po);
    po.MsgId = idtext;
    po.MaxWait = CLUSTER_PUBLISH_WAIT_MS;
    o->sent_ms = cluster__now_ms();
    if ((s = natsMsg_Create(&nm, subj, NULL, (const char *)o->xmsg, (int)o->xmsg_len)) !=
            NATS_OK ||
        (s = js_PublishMsgAsync(c->js, &nm, &po)) != NATS_OK)
        LOG_RL(LOG_LVL_WARN, "cluster: cannot publish message %s: %s", idtext,
               natsStatus_GetText(s));
    else
        c->js_published = true;
    natsMsg_Destroy(nm); /* NULL once libnats took it */
}

/* The wait bit of @p home (by index), none for this node. */
static uint64_t home_bit(const cluster_t *c, uint32_t home)
{
    int i = cluster_index_of(c, home);
    return home == c->self || i < 0 ? 0 : 1ULL << i;
}

static void take_committed(cluster_t *c, store_send_t *r)
{
    xh_out_t *o = mem_calloc(sizeof(*o));

    o->xmsg = r->xmsg;
    o->xmsg_len = r->xmsg_len;
    r->xmsg = NULL;
    o->id = r->msg_id;
    o->home = r->home;
    o->skip_sid = r->sid; /* a republish: 0 */
    /* The store commits in id order and hands over in commit order (the copies of one
     * message in their order, this home's last); the outbox (at start) comes before
     * anything new. An out-of-order one still goes where it belongs. */
    if (c->out_tail == NULL || c->out_tail->id <= o->id) {
        if (c->out_tail != NULL)
            c->out_tail->next = o;
        else
            c->out_head = o;
        c->out_tail = o;
    } else {
        xh_out_t **pp = &c->out_head;
        while (*pp != NULL && (*pp)->id <= o->id)
            pp = &(*pp)->next;
        o->next = *pp;
        *pp = o;
    }
    c->nout++;
    if (o->home == c->self)
        o->stored = true; /* it stays here: nothing to wait for */
    /* of the outbox at start, or late to be published: its homes are asked first */
    if (!cluster__rj_hold(c, o, r->rejoin, r->last_copy) && o->home != c->self)
        cluster__xh_publish(c, o);
    /* A DIRECT SEND: answered once it is in every timeline, this home's and the
     * recipient's home's. */
    if (r->worker == STORE_NO_WORKER)
        mem_free(r);
    else
        (void)wait_add(c, r, NULL, o->id, true, home_bit(c, o->home), o->stored);
}

static void take_ack(cluster_t *c, const cl_msg_t *m)
{
    xh_out_t *o;
    int i;

    for (o = c->out_head; o != NULL && (o->id != m->id || o->home != m->to); o = o->next)
        ;
    if (o == NULL || o->stored)
        return; /* an answer to a repeat */
    if (m->code != 0) {
        o->sent_ms = cluster__now_ms(); /* again after CLUSTER_PUBLISH_WAIT_MS */
        waits_mark(c, o->id, W_FAILED, 0);
        return;
    }
    o->stored = true;
    atomic_fetch_add_explicit(&c->x_forwarded, 1, memory_order_relaxed);
    if ((i = cluster_index_of(c, o->home)) >= 0 && m->seq > c->acked_seq[i])
        c->acked_seq[i] = m->seq;
    waits_mark(c, o->id, W_STORED, 0);
}

/* ---- checks ----------------------------------------------------------------------------- */

/* Register @p k (waiting for node @p node's answer until @p wait_ms from now). */
static void check_add(cluster_t *c, xh_check_t *k, uint32_t node, uint64_t wait_ms)
{
    k->token = ++c->next_token;
    k->node = node;
    k->deadline_ms = cluster__now_ms() + wait_ms;
    k->next = c->checks;
    c->checks = k;
}

/* Ask @p home whether @p from may send to @p to (@p k waits for the answer; @p system: the
 * admin API's SYSTEM message, which blocks do not stop), with @p rec (@p rlen bytes, maybe
 * none) after the strings: a transient message to deliver. */
static void check_publish(cluster_t *c, xh_check_t *k, const char *app, const char *from,
                          const char *to, bool system, uint32_t home, const uint8_t *rec,
                          size_t rlen)
{
    uint8_t *req = mem_alloc(CHECK_REQ_MAX + rlen);
    char subj[SUBJ_MAX], reply[SUBJ_MAX];
    size_t n = 13;

    check_add(c, k, home, CLUSTER_CHECK_TIMEOUT_MS);
    be64_put(req, k->token);
    be32_put(req + 8, c->self);
    req[12] = system ? 1 : 0;
    n += (size_t)snprintf((char *)req + n, CHECK_REQ_MAX - n, "%s", app) + 1;
    n += (size_t)snprintf((char *)req + n, CHECK_REQ_MAX - n, "%s", from) + 1;
    n += (size_t)snprintf((char *)req + n, CHECK_REQ_MAX - n, "%s", to) + 1;
    if (rlen > 0)
        memcpy(req + n, rec, rlen);
    snprintf(subj, sizeof(subj), "%s.node.%u.xchk", c->conf->cluster_name, home);
    snprintf(reply, sizeof(reply), "%s.node.%u.xans", c->conf->cluster_name, c->self);
    (void)natsConnection_PublishRequest(c->nc, subj, reply, req, (int)(n + rlen)); /* best
                                                           effort: a lost one times out */
    mem_free(req);
}

static void take_check(cluster_t *c, store_send_t *r)
{
    xh_check_t *k;
    blob_t *b = NULL;

    if (!cluster_bus_up(c) || !cluster_node_alive(c, r->home)) {
        busy_home(c, r, "is unavailable");
        return;
    }
    if (r->transient) {
        if ((b = message_encode(r, r->body, r->body_len)) == NULL) {
            r->code = cim_Code_INTERNAL;
            snprintf(r->reason, sizeof(r->reason), "cannot encode the message");
            answer(c, r);
            return;
        }
    } else if (!c->js_ready) {
        busy(c, r, "the message bus (JetStream) is unavailable; retry later");
        return;
    }
    k = mem_calloc(sizeof(*k));
    k->r = r;
    check_publish(c, k, r->app, r->from, r->to, r->system, r->home, b != NULL ? b->data : NULL,
                  b != NULL ? b->len : 0);
    if (b != NULL)
        blob_unref(b);
}

/* CONTACT_ADD or BLOCK of a user of another home: does it exist there? */
static void take_check_op(cluster_t *c, store_op_t *op)
{
    uint32_t home = cluster_home(c, op->app, op->target);
    xh_check_t *k;
    char why[sizeof(op->reason)];

    if (!cluster_bus_up(c) || !cluster_node_alive(c, home)) {
        snprintf(why, sizeof(why), "that user's home node (node %u) is unavailable; retry later",
                 home);
        answer_op(c, op, cim_Code_SERVER_BUSY, why);
        return;
    }
    k = mem_calloc(sizeof(*k));
    k->op = op;
    check_publish(c, k, op->app, op->user, op->target, false, home, NULL, 0);
}

/* The answer to an op's check: a user that blocked the asker exists all the same. */
static void answer_check_op(cluster_t *c, store_op_t *op, const cl_msg_t *m)
{
    server_t *srv = c->srv;

    if (m->code == cim_Code_OK || m->code == cim_Code_BLOCKED) {
        if (srv == NULL || store_op(srv->store, op) < 0)
            answer_op(c, op, cim_Code_SERVER_BUSY, "server busy; retry later");
        return;
    }
    answer_op(c, op, m->code,
              m->data[0] != '\0' ? (const char *)m->data : "refused by that user's home");
}

/* One of an op's users of other homes answered (@p code; OK or BLOCKED: it exists): the op
 * goes to the store once all did, or is answered at the first refusal. */
static void users_answer(cluster_t *c, xh_users_t *uc, const char *user, int code,
                         const char *why)
{
    char reason[sizeof(uc->op->reason)];

    uc->pending--;
    if (uc->op != NULL && code != cim_Code_OK && code != cim_Code_BLOCKED) {
        if (code == cim_Code_NOT_FOUND)
            snprintf(reason, sizeof(reason), "unknown user '%s'", user);
        else
            snprintf(reason, sizeof(reason), "%s", why);
        answer_op(c, uc->op, code, reason);
        uc->op = NULL;
    }
    if (uc->pending > 0)
        return;
    if (uc->op != NULL) {
        uc->op->xusers = true;
        to_store_op(c, uc->op);
    }
    mem_free(uc);
}

/* An op naming users (cluster_xhome_run_op): those of other homes are asked there. */
static void take_run_op(cluster_t *c, store_op_t *op)
{
    xh_users_t *uc;
    char why[sizeof(op->reason)];
    uint32_t n = op->nusers;
    bool any = false;

    for (uint32_t i = 0; i < n && !any; i++)
        any = cluster_home(c, op->app, op->users[i]) != c->self;
    if (!any || (op->type != FT_GROUP_CREATE && op->type != FT_GROUP_ADD)) {
        to_store_op(c, op);
        return;
    }
    uc = mem_calloc(sizeof(*uc));
    uc->op = op;
    uc->pending = 1; /* this loop's own, so that no answer ends it early */
    /* op is answered (and gone) at the first refusal: no more asking then */
    for (uint32_t i = 0; i < n && uc->op != NULL; i++) {
        uint32_t home = cluster_home(c, op->app, op->users[i]);
        xh_check_t *k;
        if (home == c->self)
            continue;
        uc->pending++;
        if (!cluster_bus_up(c) || !cluster_node_alive(c, home)) {
            snprintf(why, sizeof(why), "the home node of '%s' (node %u) is unavailable; retry "
                     "later", op->users[i], home);
            users_answer(c, uc, op->users[i], cim_Code_SERVER_BUSY, why);
            continue;
        }
        k = mem_calloc(sizeof(*k));
        k->uc = uc;
        snprintf(k->user, sizeof(k->user), "%s", op->users[i]);
        check_publish(c, k, op->app, op->user, op->users[i], false, home, NULL, 0);
    }
    users_answer(c, uc, "", cim_Code_OK, "");
}

/* A group's SEND or change from a session here: to the group's home (cluster_xhome_forward). */
static void take_forward(cluster_t *c, store_req_t *q)
{
    store_send_t *r = q->kind == STORE_REQ_SEND ? (store_send_t *)q : NULL;
    store_op_t *op = q->kind == STORE_REQ_OP ? (store_op_t *)q : NULL;
    const char *app = r != NULL ? r->app : op->app, *group = r != NULL ? r->to : op->target;
    uint32_t home = cluster_home(c, app, group);
    char why[112], subj[SUBJ_MAX], reply[SUBJ_MAX];
    uint8_t *req;
    size_t n = FWD_HDR, cap;
    xh_check_t *k;

    if (!cluster_bus_up(c) || !cluster_node_alive(c, home)) {
        snprintf(why, sizeof(why), "the group's home node (node %u) is unavailable; retry later",
                 home);
        if (r != NULL)
            busy(c, r, why);
        else
            answer_op(c, op, cim_Code_SERVER_BUSY, why);
        return;
    }
    k = mem_calloc(sizeof(*k));
    k->fwd = true;
    k->r = r;
    k->op = op;
    check_add(c, k, home, CLUSTER_FORWARD_WAIT_MS);
    cap = r != NULL ? FWD_SEND_MAX + r->body_len : FWD_OP_MAX + op->nusers * (KV_ID_MAX + 1);
    req = mem_alloc(cap);
    be64_put(req, k->token);
    be32_put(req + 8, c->self);
    be64_put(req + 12, r != NULL ? r->sid : op->sid);
    req[20] = r != NULL ? r->from_kind : op->from_kind;
    if (r != NULL) {
        req[n++] = r->system ? 1 : 0;
        req[n++] = r->msg_type;
        n += (size_t)snprintf((char *)req + n, cap - n, "%s", r->app) + 1;
        n += (size_t)snprintf((char *)req + n, cap - n, "%s", r->from) + 1;
        n += (size_t)snprintf((char *)req + n, cap - n, "%s", r->to) + 1;
        n += (size_t)snprintf((char *)req + n, cap - n, "%s", r->cmid) + 1;
        memcpy(req + n, r->body, r->body_len);
        n += r->body_len;
    } else {
        be32_put(req + n, op->type);
        req[n + 4] = op->open;
        be64_put(req + n + 5, op->msg_id);
        n += 13;
        n += (size_t)snprintf((char *)req + n, cap - n, "%s", op->app) + 1;
        n += (size_t)snprintf((char *)req + n, cap - n, "%s", op->user) + 1;
        n += (size_t)snprintf((char *)req + n, cap - n, "%s", op->target) + 1;
        be32_put(req + n, op->nusers);
        n += 4;
        for (uint32_t i = 0; i < op->nusers; i++)
            n += (size_t)snprintf((char *)req + n, cap - n, "%s", op->users[i]) + 1;
    }
    snprintf(subj, sizeof(subj), "%s.node.%u.%s", c->conf->cluster_name, home,
             r != NULL ? "xsnd" : "xop");
    snprintf(reply, sizeof(reply), "%s.node.%u.xfa", c->conf->cluster_name, c->self);
    (void)natsConnection_PublishRequest(c->nc, subj, reply, req, (int)n); /* best effort: a
                                                                 lost one times out */
    mem_free(req);
}

/* The group's home answered a forwarded request: hand it to its session. */
static void take_fwd_answer(cluster_t *c, const cl_msg_t *m)
{
    const uint8_t *p = m->data;
    size_t glen = (size_t)((p[28] << 8) | p[29]);
    const char *reason = (const char *)p + FWD_ANS_HDR + glen;
    xh_check_t **pp, *k;

    for (pp = &c->checks; *pp != NULL && ((*pp)->token != be64_get(p) || !(*pp)->fwd);
         pp = &(*pp)->next)
        ;
    if ((k = *pp) == NULL)
        return; /* timed out already */
    *pp = k->next;
    if (k->r != NULL) {
        k->r->code = (int)be32_get(p + 8);
        k->r->msg_id = be64_get(p + 12);
        k->r->time_ms = be64_get(p + 20);
        snprintf(k->r->reason, sizeof(k->r->reason), "%s", reason);
        answer(c, k->r);
    } else {
        k->op->code = (int)be32_get(p + 8);
        snprintf(k->op->reason, sizeof(k->op->reason), "%s", reason);
        k->op->has_group = glen > 0 && glen <= sizeof(k->op->group);
        k->op->group_len = k->op->has_group ? glen : 0;
        if (k->op->has_group)
            memcpy(k->op->group, p + FWD_ANS_HDR, glen);
        answer_op_done(c, k->op);
    }
    mem_free(k);
}

static void take_answer(cluster_t *c, const cl_msg_t *m)
{
    server_t *srv = c->srv;
    xh_check_t **pp, *k;
    store_send_t *r;

    for (pp = &c->checks; *pp != NULL && ((*pp)->token != m->id || (*pp)->fwd);
         pp = &(*pp)->next)
        ;
    if ((k = *pp) == NULL)
        return; /* timed out already */
    *pp = k->next;
    r = k->r;
    if (k->op != NULL)
        answer_check_op(c, k->op, m);
    if (k->uc != NULL)
        users_answer(c, k->uc, k->user, m->code,
                     m->data[0] != '\0' ? (const char *)m->data : "refused by that user's home");
    mem_free(k);
    if (r == NULL)
        return;
    if (m->code != cim_Code_OK || r->transient) {
        /* a transient one was delivered by the home: nothing to store */
        r->code = m->code;
        snprintf(r->reason, sizeof(r->reason), "%s",
                 m->code == cim_Code_OK    ? ""
                 : m->data[0] != '\0' ? (const char *)m->data
                                       : "refused by the recipient's home");
        if (m->code == cim_Code_SERVER_BUSY)
            atomic_fetch_add_explicit(&c->x_refused, 1, memory_order_relaxed);
        answer(c, r);
        return;
    }
    /* Above anything the home released while it did not wait for this node. */
    r->floor = m->seq;
    if (srv == NULL || store_send(srv->store, r) < 0)
        busy(c, r, "server busy; retry later");
}

static void expire_checks(cluster_t *c, uint64_t now)
{
    xh_check_t **pp = &c->checks, *k;

    while ((k = *pp) != NULL) {
        if (k->deadline_ms > now) {
            pp = &k->next;
            continue;
        }
        *pp = k->next;
        if (k->fwd && k->r != NULL)
            busy(c, k->r, "the group's home node did not answer; retry later");
        else if (k->fwd)
            answer_op(c, k->op, cim_Code_SERVER_BUSY,
                      "the group's home node did not answer; retry later");
        else if (k->uc != NULL)
            users_answer(c, k->uc, k->user, cim_Code_SERVER_BUSY,
                         "that user's home node did not answer; retry later");
        else if (k->op != NULL)
            answer_op(c, k->op, cim_Code_SERVER_BUSY,
                      "that user's home node did not answer; retry later");
        else
            busy_home(c, k->r, "did not answer");
        mem_free(k);
    }
}

/* ---- consuming -------------------------------------------------------------------------- */

/* A held watermark whose sequence the consumer has now reached moves its origin. */
static void apply_watermarks(cluster_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        xhome_wm_t *w = c->held_wm[i];
        if (w != NULL && xhome_wm_seq(w, c->self) <= c->delivered_seq) {
            xmerge_horizon(&c->merge, w->origin, w->horizon);
            mem_free(w);
            c->held_wm[i] = NULL;
        }
    }
}

static void take_wm(cluster_t *c, const cl_msg_t *m)
{
    xhome_wm_t w;
    int i;

    if (xhome_wm_parse(m->data, m->len, &w) < 0 || (i = cluster_index_of(c, w.origin)) < 0 ||
        w.origin == c->self) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    /* "All my ids below W are on JetStream; the last one for you is at sequence S": W
     * holds here only once the consumer has delivered S. */
    if (xhome_wm_seq(&w, c->self) <= c->delivered_seq) {
        xmerge_horizon(&c->merge, w.origin, w.horizon);
        return;
    }
    if (c->held_wm[i] == NULL)
        c->held_wm[i] = mem_alloc(sizeof(w));
    *c->held_wm[i] = w; /* the newest: the older ones it replaces say less */
}

static void take_in(cluster_t *c, cl_msg_t *m)
{
    natsMsg *nm = m->ptr;
    xhome_msg_t x;

    m->ptr = NULL;
    /* what an older consumer delivered says nothing of what the current one has */
    if ((uint32_t)m->code == c->sub_gen && m->seq > c->delivered_seq)
        c->delivered_seq = m->seq;
    if (xhome_parse((const uint8_t *)natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
                    &x) < 0 || x.home != c->self) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        (void)natsMsg_Ack(nm, NULL); /* best effort: dropped again if redelivered */
        natsMsg_Destroy(nm);
    } else if (x.kind == XHOME_PROBE) {
        if (x.id > c->probe_seen)
            c->probe_seen = x.id;
        (void)natsMsg_Ack(nm, NULL); /* best effort: a stale probe is harmless */
        natsMsg_Destroy(nm);
        for (size_t i = 0; i < c->n; i++)
            if (c->dead[i] && c->down_probe[i] <= c->probe_seen)
                xmerge_waive(&c->merge, c->nodes[i], true);
    } else if (x.origin == c->self ||
               xmerge_add(&c->merge, x.origin, x.id, apply_new(&x, nm, 0), uv_hrtime()) < 0) {
        /* this node's own messages never come through JetStream; another id is not ours */
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        (void)natsMsg_Ack(nm, NULL); /* best effort */
        natsMsg_Destroy(nm);
    }
    apply_watermarks(c);
}

/* @p a is in its timelines here: its sender (this home) may answer OK; another origin is
 * told (N.node.<origin>.xapd; lost, it asks again). */
static void report_applied(cluster_t *c, const store_apply_t *a)
{
    char subj[SUBJ_MAX];
    uint8_t id[12];

    if (a->origin == c->self) {
        waits_mark(c, a->id, W_OWN, 0);
        return;
    }
    if (!cluster_bus_up(c) || c->nc == NULL)
        return;
    be64_put(id, a->id);
    be32_put(id + 8, c->self);
    snprintf(subj, sizeof(subj), "%s.node.%u.xapd", c->conf->cluster_name, a->origin);
    (void)natsConnection_Publish(c->nc, subj, id, 12); /* best effort: the origin asks again */
}

static void take_applied(cluster_t *c, store_apply_t *a)
{
    natsMsg *nm = a->ctx;

    if (a->result < 0) {
        /* Not committed: JetStream redelivers it after its ack wait (an own message stays
         * in the outbox); either way it is then below what was released since. */
        LOG_RL(LOG_LVL_ERROR, "cluster: message %" PRIu64 " could not be applied: %s", a->id,
               rc_str(a->result));
    } else {
        if (a->result == STORE_APPLY_LATE)
            atomic_fetch_add_explicit(&c->x_late, 1, memory_order_relaxed);
        else if (a->result == STORE_APPLIED && a->origin != c->self)
            atomic_fetch_add_explicit(&c->x_consumed, 1, memory_order_relaxed);
        if (a->result != STORE_APPLY_LATE)
            report_applied(c, a);
        if (nm != NULL && natsMsg_Ack(nm, NULL) != NATS_OK)
            LOG_RL(LOG_LVL_WARN, "cluster: cannot acknowledge message %" PRIu64
                                 " (JetStream redelivers it; applied once)", a->id);
    }
    natsMsg_Destroy(nm);
    mem_free(a);
}

/* ---- the tick ----------------------------------------------------------------------------- */

static void send_watermark(cluster_t *c)
{
    uint8_t buf[XHOME_WM_MAX];
    char subj[SUBJ_MAX];
    xhome_wm_t w;
    size_t len;

    if (!cluster_bus_up(c) || c->nc == NULL || c->store_horizon == 0)
        return;
    memset(&w, 0, sizeof(w));
    w.origin = c->self;
    w.horizon = own_horizon(c);
    for (size_t i = 0; i < c->n; i++)
        if (c->nodes[i] != c->self) {
            w.home[w.n] = c->nodes[i];
            w.seq[w.n++] = c->acked_seq[i];
        }
    len = xhome_wm_encode(&w, buf);
    snprintf(subj, sizeof(subj), "%s.wm.%u", c->conf->cluster_name, c->self);
    (void)natsConnection_Publish(c->nc, subj, buf, (int)len); /* best effort: the next one */
}

/* A probe through this home's own consumer: when it comes back, everything published
 * before it has been delivered here. */
static void send_probe(cluster_t *c, uint64_t now)
{
    xhome_msg_t x;
    char subj[SUBJ_MAX], idtext[48];
    jsPubOptions po;
    natsMsg *nm = NULL;
    uint8_t *buf = NULL;
    size_t len;

    if (c->probe_seen < c->probe_sent && now - c->probe_ms < CLUSTER_PROBE_RETRY_MS)
        return; /* the last one is on its way */
    if (!c->need_probe && c->probe_seen >= c->probe_sent)
        return;
    memset(&x, 0, sizeof(x));
    x.kind = XHOME_PROBE;
    x.home = c->self;
    x.id = c->probe_sent + 1;
    if (xhome_encode(&x, &buf, &len) < 0)
        return;
    snprintf(subj, sizeof(subj), "%s.out.probe.%u", c->conf->cluster_name, c->self);
    snprintf(idtext, sizeof(idtext), "p%u-%016" PRIx64 "-%" PRIu64, c->self, c->instance, x.id);
    jsPubOptions_Init(&po);
    po.MsgId = idtext;
    po.MaxWait = CLUSTER_PUBLISH_WAIT_MS;
    if (natsMsg_Create(&nm, subj, NULL, (const char *)buf, (int)len) == NATS_OK &&
        js_PublishMsgAsync(c->js, &nm, &po) == NATS_OK) {
        c->js_published = true;
        c->probe_sent = x.id;
        c->probe_ms = now;
        c->need_probe = false;
    }
    natsMsg_Destroy(nm);
    mem_free(buf);
}

void cluster__xh_tick(cluster_t *c)
{
    server_t *srv = c->srv;
    uint64_t now = cluster__now_ms();
    bool can = c->js_ready && cluster_bus_up(c);

    if (c->stopping)
        return;
    if (!c->store_told && srv != NULL) {
        /* the first tick: the store hands over its outbox and starts its horizon */
        c->store_told = true;
        (void)store_xhome_start(srv->store); /* best effort: only fails when stopping */
    }
    expire_checks(c, now);
    if (!c->js_ready && cluster_bus_up(c) && now - c->js_try_ms >= CLUSTER_JS_RETRY_MS)
        cluster__xh_bus_up(c); /* JetStream was not ready on this connection yet */
    if (can)
        send_probe(c, now);
    for (xh_out_t *o = c->out_head; o != NULL; o = o->next) {
        if (o->stored || o->rejoin)
            continue;
        /* again: lost, refused, or the bus was down (by now its homes may be past it) */
        if (can && now - o->sent_ms >= CLUSTER_PUBLISH_WAIT_MS + 500 &&
            !cluster__rj_hold_again(c, o))
            cluster__xh_publish(c, o);
    }
    waits_tick(c, now);
    cluster__rj_tick(c, now);
    own_to_merge(c);
    send_watermark(c);
    release(c);
}

/* Publish @p m's data to N.node.<node>.<what> (core NATS: best effort, an event). */
static void notice(cluster_t *c, uint32_t node, const char *what, const cl_msg_t *m)
{
    char subj[SUBJ_MAX];

    snprintf(subj, sizeof(subj), "%s.node.%u.%s", c->conf->cluster_name, node, what);
    if (cluster_bus_up(c) && c->nc != NULL)
        (void)natsConnection_Publish(c->nc, subj, m->data, (int)m->len);
}

void cluster__xh_take(cluster_t *c, cl_msg_t *m)
{
    switch (m->kind) {
    case MSG_XCHECK:
        take_check(c, m->ptr);
        break;
    case MSG_XANS:
        take_answer(c, m);
        break;
    case MSG_XCOMMITTED:
        take_committed(c, m->ptr);
        own_to_merge(c);
        break;
    case MSG_XACK:
        take_ack(c, m);
        own_to_merge(c);
        break;
    case MSG_XIN:
        take_in(c, m);
        break;
    case MSG_XWM:
        take_wm(c, m);
        break;
    case MSG_XHORIZON:
        if (m->id > c->store_horizon)
            c->store_horizon = m->id;
        break;
    case MSG_XAPPLIED:
        take_applied(c, m->ptr);
        break;
    case MSG_XRESEND: {
        store_send_t *r = m->ptr;
        ask(c, wait_add(c, r, NULL, r->msg_id, false, home_bit(c, r->home), -1),
            cluster__now_ms());
        break;
    }
    case MSG_XAPD:
        waits_mark(c, m->id, W_REMOTE, m->from);
        break;
    case MSG_XDONE:
        take_done(c, m->ptr);
        break;
    case MSG_XFWD:
        take_forward(c, m->ptr);
        break;
    case MSG_XFWD_ANS:
        take_fwd_answer(c, m);
        break;
    case MSG_XRJQ:
    case MSG_XRJA:
    case MSG_XRJ_DONE:
        cluster__rj_take(c, m);
        own_to_merge(c);
        break;
    case MSG_XRUN_OP:
        take_run_op(c, m->ptr);
        break;
    case MSG_XCHECK_OP:
        take_check_op(c, m->ptr);
        break;
    case MSG_XREAD:
        notice(c, m->to, "xrd", m);
        break;
    case MSG_XPRES:
    case MSG_XTG:
        for (size_t i = 0; i < c->n; i++)
            if (c->nodes[i] != c->self)
                notice(c, c->nodes[i], m->kind == MSG_XPRES ? "xpr" : "xtg", m);
        break;
    default:
        break;
    }
    m->ptr = NULL;
    if (m->kind != MSG_XAPPLIED)
        release(c);
}
