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
#include "actors/server.h"
#include "actors/store.h"
#include "actors/worker.h"
#include "actors/xhome.h"
#include "cim.pb.h"
#include "core/be.h"
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
#define CHECK_REQ_MAX (8 + 4 + 3 * (KV_ID_MAX + 1))
#define REASON_MAX 96
/* A message committed here that JetStream did not take in time: the origin keeps
 * publishing it (its outbox), and a resend of its client_msg_id returns its id. */
#define BUS_FAILED "the message bus did not store the message in time; retry with the same " \
                   "client_msg_id"
/* Stored (at the sender's home and on the bus) but not in every timeline in time. */
#define NOT_APPLIED "the message is stored but not yet in every timeline; retry with the same " \
                    "client_msg_id"
#define QUERY_MAX (8 + 2 * (KV_ID_MAX + 1))

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
    uint64_t sent_ms;     /* the last publish (0: to do) */
} xh_out_t;

/* A check waiting for the recipient's home. */
typedef struct xh_check {
    struct xh_check *next;
    uint64_t token;
    uint64_t deadline_ms;
    store_send_t *r;      /* a SEND, or */
    store_op_t *op;       /* a CONTACT_ADD or BLOCK: does the user exist at its home? */
} xh_check_t;

/* A send waiting to be in every timeline before its OK (PROTOCOL.md: SEND_ACK{OK} means
 * stored in every recipient's timeline). */
typedef struct xh_wait {
    struct xh_wait *next;
    store_send_t *r;      /* the request to answer, owned */
    uint64_t id;
    bool own;             /* still to be applied by this home's store */
    bool remote;          /* still to be reported applied by the recipient's home */
    bool stored;          /* JetStream has it (or it stays here) */
    uint64_t since_ms;    /* committed (or resent) */
    uint64_t asked_ms;    /* the last query to the recipient's home (0: none yet) */
} xh_wait_t;

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

/* Hand @p r back to whoever asked (a session's worker, or the admin API's done). */
static void answer(cluster_t *c, store_send_t *r)
{
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

/* Hand op @p op back to its session (answered here, not by the store). */
static void answer_op(cluster_t *c, store_op_t *op, int code, const char *reason)
{
    op->code = code;
    snprintf(op->reason, sizeof(op->reason), "%s", reason);
    if (code == cim_Code_SERVER_BUSY)
        atomic_fetch_add_explicit(&c->x_refused, 1, memory_order_relaxed);
    if (!to_session(c, op->worker, op->sid, &op->hdr))
        mem_free(op);
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

void cluster_xhome_committed(cluster_t *c, store_send_t *r)
{
    cl_msg_t *m = msg_new(MSG_XCOMMITTED, 0);
    m->ptr = r;
    cluster__post(c, m, true);
}

void cluster_xhome_wait(cluster_t *c, store_send_t *r)
{
    cl_msg_t *m = msg_new(MSG_XWAIT, 0);
    m->ptr = r;
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
        mem_free(m->ptr);
        break;
    case MSG_XCHECK:
    case MSG_XRESEND:
    case MSG_XWAIT:
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
    const char *end = p + natsMsg_GetDataLength(msg), *q = p + 12;
    char app[KV_ID_MAX + 1], from[KV_ID_MAX + 1], to[KV_ID_MAX + 1];
    uint8_t out[8 + 4 + 8 + REASON_MAX];
    uint32_t origin;
    int code, n;

    if (reply == NULL || end - p < 12 || end - p > CHECK_REQ_MAX + XHOME_REC_MAX ||
        !next_id(&q, end, app) || !next_id(&q, end, from) || !next_id(&q, end, to)) {
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
        code = c->check_cb != NULL ? c->check_cb(c->srv, app, from, to, &why)
                                   : cim_Code_SERVER_BUSY;
    }
    /* What follows the strings: a transient message, delivered when the check is OK. */
    if (code == cim_Code_OK && q != end && c->deliver_cb != NULL)
        c->deliver_cb(c->srv, app, to, (const uint8_t *)q, (size_t)(end - q));
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

/* The recipient's home: is message id (of app, user) applied here? Answered "yes" on the
 * reply subject (the origin's .xapd) when it is, nothing otherwise: the origin asks again. */
void cluster__xh_on_query(cluster_t *c, natsConnection *nc, natsMsg *msg)
{
    const char *p = natsMsg_GetData(msg), *reply = natsMsg_GetReply(msg);
    const char *end = p + natsMsg_GetDataLength(msg), *q = p + 8;
    char app[KV_ID_MAX + 1], user[KV_ID_MAX + 1];

    if (reply == NULL || end - p < 8 || end - p > QUERY_MAX || !next_id(&q, end, app) ||
        !next_id(&q, end, user) || q != end || strncmp(reply, c->prefix, strlen(c->prefix))) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    if (c->has_cb != NULL && c->has_cb(c->srv, app, user, be64_get((const uint8_t *)p)))
        (void)natsConnection_Publish(nc, reply, p, 8); /* best effort: asked again */
}

/* The origin: message id is applied at the recipient's home. */
void cluster__xh_on_applied(cluster_t *c, natsMsg *msg)
{
    cl_msg_t *m;

    if (natsMsg_GetDataLength(msg) != 8) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    m = msg_new(MSG_XAPD, 0);
    m->id = be64_get((const uint8_t *)natsMsg_GetData(msg));
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

/* A presence notice: app NUL user NUL, then the encoded Event. */
void cluster_presence(cluster_t *c, const char *app, const char *user, const uint8_t *ev,
                      size_t len)
{
    cl_msg_t *m;
    size_t n = 0;

    if (!c->enabled || len > CLUSTER_EVENT_MAX)
        return;
    m = msg_new(MSG_XPRES, 2 * (KV_ID_MAX + 1) + len);
    n += (size_t)snprintf((char *)m->data + n, m->len - n, "%s", app) + 1;
    n += (size_t)snprintf((char *)m->data + n, m->len - n, "%s", user) + 1;
    memcpy(m->data + n, ev, len);
    m->len = n + len;
    cluster__post(c, m, false); /* best effort: an event */
}

void cluster__xh_on_presence(cluster_t *c, natsMsg *msg)
{
    const char *p = natsMsg_GetData(msg), *q = p;
    const char *end = p + natsMsg_GetDataLength(msg);
    char app[KV_ID_MAX + 1], user[KV_ID_MAX + 1];

    if (end - p > 2 * (KV_ID_MAX + 1) + CLUSTER_EVENT_MAX || !next_id(&q, end, app) ||
        !next_id(&q, end, user) || q == end || cluster_home(c, app, user) == c->self) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    if (c->presence_cb != NULL)
        c->presence_cb(c->srv, app, user, (const uint8_t *)q, (size_t)(end - q));
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
        m = msg_new(MSG_XACK, 0);
        m->id = strtoull(idtext, NULL, 10);
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
        mem_free(k);
    }
    c->checks = NULL;
    for (xh_wait_t *wt = c->waits, *wnext; wt != NULL; wt = wnext) {
        wnext = wt->next;
        mem_free(wt->r->xmsg);
        mem_free(wt->r); /* stopping: its session is gone */
        mem_free(wt);
    }
    c->waits = NULL;
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
    int i = cluster__index_of(c, node);

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
    a->skip_sid = skip_sid;
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

    while ((o = c->out_head) != NULL && o->stored) {
        c->out_head = o->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        c->nout--;
        if (xhome_parse(o->xmsg, o->xmsg_len, &x) == 0)
            (void)xmerge_add(&c->merge, c->self, o->id, apply_new(&x, NULL, o->skip_sid),
                             uv_hrtime()); /* this node is one of the nodes */
        mem_free(o->xmsg);
        mem_free(o);
    }
}

/* ---- waiting for the timelines ---------------------------------------------------------- */

enum { W_OWN, W_REMOTE, W_STORED, W_FAILED };

static xh_wait_t *wait_add(cluster_t *c, store_send_t *r, bool own, bool remote, bool stored)
{
    xh_wait_t *w = mem_calloc(sizeof(*w));

    w->r = r;
    w->id = r->msg_id;
    w->own = own;
    w->remote = remote;
    w->stored = stored;
    w->since_ms = cluster__now_ms();
    w->next = c->waits;
    c->waits = w;
    return w;
}

/* Ask the recipient's home whether it applied @p w's message (its answer: MSG_XAPD). */
static void ask(cluster_t *c, xh_wait_t *w, uint64_t now)
{
    uint8_t req[QUERY_MAX];
    char subj[SUBJ_MAX], reply[SUBJ_MAX];
    size_t n = 8;

    w->asked_ms = now;
    if (!cluster_bus_up(c) || c->nc == NULL)
        return;
    be64_put(req, w->id);
    n += (size_t)snprintf((char *)req + n, sizeof(req) - n, "%s", w->r->app) + 1;
    n += (size_t)snprintf((char *)req + n, sizeof(req) - n, "%s", w->r->to) + 1;
    snprintf(subj, sizeof(subj), "%s.node.%u.xapq", c->conf->cluster_name, w->r->home);
    snprintf(reply, sizeof(reply), "%s.node.%u.xapd", c->conf->cluster_name, c->self);
    (void)natsConnection_PublishRequest(c->nc, subj, reply, req, (int)n); /* best effort:
                                                                            asked again */
}

/* What happened to message @p id (W_*): the waits for it that are done are answered. */
static void waits_mark(cluster_t *c, uint64_t id, int what)
{
    xh_wait_t **pp = &c->waits, *w;

    while ((w = *pp) != NULL) {
        if (w->id == id) {
            w->own = w->own && what != W_OWN;
            w->remote = w->remote && what != W_REMOTE;
            w->stored = w->stored || what == W_STORED;
            if (what == W_FAILED || (!w->own && !w->remote)) {
                *pp = w->next;
                if (what == W_FAILED)
                    busy(c, w->r, BUS_FAILED); /* the outbox keeps publishing it */
                else
                    answer(c, w->r);
                mem_free(w);
                continue;
            }
        }
        pp = &w->next;
    }
}

/* Timeouts, and queries for reports that did not come. */
static void waits_tick(cluster_t *c, uint64_t now)
{
    xh_wait_t **pp = &c->waits, *w;

    while ((w = *pp) != NULL) {
        if (now - w->since_ms >= CLUSTER_APPLIED_WAIT_MS) {
            *pp = w->next;
            busy(c, w->r, w->stored ? NOT_APPLIED : BUS_FAILED);
            mem_free(w);
            continue;
        }
        if (w->remote && w->stored &&
            now - (w->asked_ms > w->since_ms ? w->asked_ms : w->since_ms) >=
                CLUSTER_APPLIED_ASK_MS)
            ask(c, w, now);
        pp = &w->next;
    }
}

/* ---- publishing ------------------------------------------------------------------------- */

static void publish(cluster_t *c, xh_out_t *o)
{
    char subj[SUBJ_MAX], idtext[24];
    jsPubOptions po;
    natsMsg *nm = NULL;
    natsStatus s;

    if (!c->js_ready || !cluster_bus_up(c))
        return;
    snprintf(subj, sizeof(subj), "%s.out.%u.%u", c->conf->cluster_name, c->self, o->home);
    snprintf(idtext, sizeof(idtext), "%" PRIu64, o->id);
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

static void take_committed(cluster_t *c, store_send_t *r)
{
    xh_out_t *o = mem_calloc(sizeof(*o));

    o->xmsg = r->xmsg;
    o->xmsg_len = r->xmsg_len;
    r->xmsg = NULL;
    o->id = r->msg_id;
    o->home = r->home;
    o->skip_sid = r->sid; /* a republish: 0 */
    /* Answered once it is in every timeline: this home's, and the recipient's home's. */
    if (r->worker == STORE_NO_WORKER)
        mem_free(r);
    else
        (void)wait_add(c, r, true, o->home != c->self, o->home == c->self);
    /* The store commits in id order and hands over in commit order; the outbox (at start)
     * comes before anything new. An out-of-order one still goes where it belongs. */
    if (c->out_tail == NULL || c->out_tail->id < o->id) {
        if (c->out_tail != NULL)
            c->out_tail->next = o;
        else
            c->out_head = o;
        c->out_tail = o;
    } else {
        xh_out_t **pp = &c->out_head;
        while (*pp != NULL && (*pp)->id < o->id)
            pp = &(*pp)->next;
        o->next = *pp;
        *pp = o;
    }
    c->nout++;
    if (o->home == c->self)
        o->stored = true; /* it stays here: nothing to wait for */
    else
        publish(c, o);
}

static void take_ack(cluster_t *c, const cl_msg_t *m)
{
    xh_out_t *o;
    int i;

    for (o = c->out_head; o != NULL && o->id != m->id; o = o->next)
        ;
    if (o == NULL || o->stored)
        return; /* an answer to a repeat */
    if (m->code != 0) {
        o->sent_ms = cluster__now_ms(); /* again after CLUSTER_PUBLISH_WAIT_MS */
        waits_mark(c, o->id, W_FAILED);
        return;
    }
    o->stored = true;
    atomic_fetch_add_explicit(&c->x_forwarded, 1, memory_order_relaxed);
    if ((i = cluster__index_of(c, o->home)) >= 0 && m->seq > c->acked_seq[i])
        c->acked_seq[i] = m->seq;
    waits_mark(c, o->id, W_STORED);
}

/* ---- checks ----------------------------------------------------------------------------- */

/* Ask @p home whether @p from may send to @p to (@p k waits for the answer), with @p rec
 * (@p rlen bytes, maybe none) after the strings: a transient message to deliver. */
static void check_publish(cluster_t *c, xh_check_t *k, const char *app, const char *from,
                          const char *to, uint32_t home, const uint8_t *rec, size_t rlen)
{
    uint8_t *req = mem_alloc(CHECK_REQ_MAX + rlen);
    char subj[SUBJ_MAX], reply[SUBJ_MAX];
    size_t n = 12;

    k->token = ++c->next_token;
    k->deadline_ms = cluster__now_ms() + CLUSTER_CHECK_TIMEOUT_MS;
    k->next = c->checks;
    c->checks = k;
    be64_put(req, k->token);
    be32_put(req + 8, c->self);
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
    check_publish(c, k, r->app, r->from, r->to, r->home, b != NULL ? b->data : NULL,
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
    check_publish(c, k, op->app, op->user, op->target, home, NULL, 0);
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

static void take_answer(cluster_t *c, const cl_msg_t *m)
{
    server_t *srv = c->srv;
    xh_check_t **pp, *k;
    store_send_t *r;

    for (pp = &c->checks; *pp != NULL && (*pp)->token != m->id; pp = &(*pp)->next)
        ;
    if ((k = *pp) == NULL)
        return; /* timed out already */
    *pp = k->next;
    r = k->r;
    if (k->op != NULL)
        answer_check_op(c, k->op, m);
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
        if (k->op != NULL)
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

    if (xhome_wm_parse(m->data, m->len, &w) < 0 || (i = cluster__index_of(c, w.origin)) < 0 ||
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
    uint8_t id[8];

    if (a->origin == c->self) {
        waits_mark(c, a->id, W_OWN);
        return;
    }
    if (!cluster_bus_up(c) || c->nc == NULL)
        return;
    be64_put(id, a->id);
    snprintf(subj, sizeof(subj), "%s.node.%u.xapd", c->conf->cluster_name, a->origin);
    (void)natsConnection_Publish(c->nc, subj, id, 8); /* best effort: the origin asks again */
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
        if (o->stored)
            continue;
        if (can && now - o->sent_ms >= CLUSTER_PUBLISH_WAIT_MS + 500)
            publish(c, o); /* again: lost, refused, or the bus was down */
    }
    waits_tick(c, now);
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
        ask(c, wait_add(c, r, false, true, true), cluster__now_ms());
        break;
    }
    case MSG_XAPD:
        waits_mark(c, m->id, W_REMOTE);
        break;
    case MSG_XWAIT:
        (void)wait_add(c, m->ptr, true, false, true);
        break;
    case MSG_XCHECK_OP:
        take_check_op(c, m->ptr);
        break;
    case MSG_XREAD:
        notice(c, m->to, "xrd", m);
        break;
    case MSG_XPRES:
        for (size_t i = 0; i < c->n; i++)
            if (c->nodes[i] != c->self)
                notice(c, c->nodes[i], "xpr", m);
        break;
    default:
        break;
    }
    m->ptr = NULL;
    if (m->kind != MSG_XAPPLIED)
        release(c);
}
