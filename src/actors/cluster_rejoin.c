/* cluster_rejoin: the outbox after a restart (docs/SCALING.md, "Rejoining: the outbox").
 *
 * A message this node committed but had not seen through when it stopped is in its outbox,
 * and is published again at start. If it never reached JetStream and this node was down
 * long enough to be waived, a home it goes to may meanwhile have appended a greater id to
 * one of its timelines: published as it is, it would be dropped there as late, while this
 * node's own timelines get it. So before an outbox entry is published again, each home it
 * goes to is asked (N.node.<home>.xrjq, answered on N.node.<origin>.xrja) whether it holds
 * the message already and whether it would come late. A home answers only once it waits
 * for this node's watermarks again, so what it says stays true: it releases nothing above
 * this node's horizon, which the entry holds down.
 *  - Held by some home already (it reached JetStream before the crash), or late nowhere:
 *    published as it is (a repeat is dropped by JetStream and by the homes).
 *  - Late at a home and held by none: nobody has seen its id, and its SEND was never
 *    answered OK. The store gives it a new id above every floor (STORE_RJ_REISSUE) and
 *    publishes that: a resend of its client_msg_id then answers the new id.
 * A home that is down and does not answer within RJ_GIVE_UP_MS is not waited for: the
 * entry is then published as it is (what the home holds cannot be known).
 *
 * The same holds for a message first published, or published again, RJ_STALE_MS or more
 * after its commit without any of its copies stored by JetStream yet: this node was stopped
 * (SIGSTOP), lost the bus, or JetStream refused it, and the homes may have waived it
 * meanwhile. While held, a message stays out of this node's own merge (it holds the
 * horizon down). A copy JetStream took meanwhile after all (its acknowledgement was lost)
 * is dropped whole by a home where it is late (it keeps nothing of such a message), so a
 * reissue leaves a single copy there too.
 *
 * Formats (big-endian): question u32 origin, then the copy's XHOME_MSG; answer u64 msg id,
 * u32 the home, u8 RJ_* flags, u64 the home's floor (the newest id its merge released).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/cluster_int.h"
#include "actors/server.h"
#include "actors/store.h"
#include "actors/xhome.h"
#include "core/be.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

#define RJ_ANSWER_LEN (8 + 4 + 1 + 8)
#define RJ_RETRY_MS 500     /* a question not answered is asked again after this */
#define RJ_GIVE_UP_MS 5000  /* ... and a home down this long after the start is not waited for */
/* A message published this long after its commit (this node stalled, or lost the bus, or
 * JetStream refused it) goes through the questions too: the homes stop waiting for a node
 * CLUSTER_ALIVE_MS after its last heartbeat. */
#define RJ_STALE_MS (CLUSTER_ALIVE_MS / 2)

enum { RJ_HAS = 1, RJ_LATE = 2, RJ_NOT_YET = 4 }; /* answer flags; NOT_YET: the home does not
                                                     wait for the origin's watermarks yet */

/* A held message (of the outbox at start, or published late), waiting for its homes'
 * answers. */
typedef struct xh_rj {
    struct xh_rj *next, *prev;
    uint64_t id;
    uint64_t ask;        /* homes (bits by index) it goes to */
    uint64_t answered;   /* ... that answered (or were given up) */
    bool complete;       /* its last copy arrived */
    bool has, late, unchecked, reissuing, due;
    uint64_t floor;      /* the greatest floor answered */
    uint64_t since_ms, asked_ms;
    uint64_t retry_ms;   /* a reissue failed: not before this */
} xh_rj_t;

/* ---- libnats's delivery thread ----------------------------------------------------------- */

void cluster__rj_on_ask(cluster_t *c, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    store_rejoin_t *q;
    xhome_msg_t x;
    cl_msg_t *m;

    if (len < 4 || xhome_parse(p + 4, len - 4, &x) < 0 || x.kind != XHOME_MSG ||
        x.home != c->self || x.origin != be32_get(p) || x.origin == c->self ||
        cluster_index_of(c, x.origin) < 0) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    q = mem_calloc(sizeof(*q) + len - 4);
    q->what = STORE_RJ_ASK;
    q->id = x.id;
    q->origin = x.origin;
    q->len = len - 4;
    memcpy(q->copy, p + 4, len - 4);
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_XRJQ;
    m->ptr = q;
    cluster__post(c, m, true);
}

void cluster__rj_on_answer(cluster_t *c, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    cl_msg_t *m;

    if (natsMsg_GetDataLength(msg) != RJ_ANSWER_LEN || cluster_index_of(c, be32_get(p + 8)) < 0 ||
        p[12] > (RJ_HAS | RJ_LATE | RJ_NOT_YET)) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_XRJA;
    m->id = be64_get(p);
    m->from = be32_get(p + 8);
    m->code = p[12];
    m->seq = be64_get(p + 13);
    cluster__post(c, m, true);
}

/* ---- the store's thread ----------------------------------------------------------------- */

static void on_store_done(store_req_t *req)
{
    cl_msg_t *m = mem_calloc(sizeof(*m));

    m->kind = MSG_XRJ_DONE;
    m->ptr = req;
    cluster__post(req->done_arg, m, true);
}

/* ---- the cluster thread: a home ---------------------------------------------------------- */

static void answer(cluster_t *c, uint32_t origin, uint64_t id, uint8_t flags)
{
    uint8_t out[RJ_ANSWER_LEN];
    char subj[SUBJ_MAX];

    be64_put(out, id);
    be32_put(out + 8, c->self);
    out[12] = flags;
    be64_put(out + 13, c->merge.released);
    snprintf(subj, sizeof(subj), "%s.node.%u.xrja", c->conf->cluster_name, origin);
    if (cluster_bus_up(c) && c->nc != NULL)
        (void)natsConnection_Publish(c->nc, subj, out, RJ_ANSWER_LEN); /* best effort: asked
                                                                          again */
}

/* An origin asks: into the store, behind everything this merge released so far (so the
 * timelines read are those the message would be appended to). */
static void take_question(cluster_t *c, store_rejoin_t *q)
{
    server_t *srv = c->srv;

    if (!cluster_node_alive(c, q->origin)) {
        answer(c, q->origin, q->id, RJ_NOT_YET);
        mem_free(q);
        return;
    }
    q->hdr.done = on_store_done;
    q->hdr.done_arg = c;
    if (srv == NULL || store_rejoin(srv->store, q) < 0)
        mem_free(q); /* stopping: it asks again */
}

/* ---- the cluster thread: the origin ------------------------------------------------------ */

/* The question of message @p id: the newest first (a message's copies come one after
 * another), else from the oldest (answers come in the order asked). */
static xh_rj_t *find(cluster_t *c, uint64_t id)
{
    xh_rj_t *rj = c->rj_tail;

    if (rj != NULL && rj->id == id)
        return rj;
    for (rj = c->rejoins; rj != NULL && rj->id != id; rj = rj->next)
        ;
    return rj;
}

static void unlink_rj(cluster_t *c, xh_rj_t *rj)
{
    *(rj->prev != NULL ? &rj->prev->next : &c->rejoins) = rj->next;
    *(rj->next != NULL ? &rj->next->prev : &c->rj_tail) = rj->prev;
    mem_free(rj);
}

/* Ask node @p home about the copy @p o. */
static void ask(cluster_t *c, const xh_out_t *o)
{
    char subj[SUBJ_MAX];
    uint8_t *buf;

    if (!cluster_bus_up(c) || c->nc == NULL)
        return;
    buf = mem_alloc(4 + o->xmsg_len);
    be32_put(buf, c->self);
    memcpy(buf + 4, o->xmsg, o->xmsg_len);
    snprintf(subj, sizeof(subj), "%s.node.%u.xrjq", c->conf->cluster_name, o->home);
    (void)natsConnection_Publish(c->nc, subj, buf, (int)(4 + o->xmsg_len)); /* best effort:
                                                                              asked again */
    mem_free(buf);
}

/* Publish the copies of @p id as they are (one JetStream took meanwhile: not again). */
static void publish_as_is(cluster_t *c, uint64_t id)
{
    for (xh_out_t *o = c->out_head; o != NULL; o = o->next)
        if (o->id == id && o->rejoin) {
            o->rejoin = false;
            o->rj = NULL;
            if (!o->stored)
                cluster__xh_publish(c, o);
        }
}

/* Every answer is in (or given up on): publish @p rj's entry as it is, or reissue it. */
static void decide(cluster_t *c, xh_rj_t *rj)
{
    server_t *srv = c->srv;
    store_rejoin_t *q;

    if (!rj->complete || rj->reissuing || (rj->answered & rj->ask) != rj->ask ||
        cluster__now_ms() < rj->retry_ms)
        return;
    if (rj->has || !rj->late || rj->unchecked) {
        if (rj->late)
            LOG_ERROR("cluster: message %" PRIu64 " of the outbox comes late at a home %s: "
                      "published as it is", rj->id,
                      rj->has ? "while another holds it" : "and a home that may hold it is down");
        publish_as_is(c, rj->id);
        unlink_rj(c, rj);
        return;
    }
    q = mem_calloc(sizeof(*q));
    q->what = STORE_RJ_REISSUE;
    q->id = rj->id;
    q->floor = rj->floor > c->merge.released ? rj->floor : c->merge.released;
    q->hdr.done = on_store_done;
    q->hdr.done_arg = c;
    if (srv == NULL || store_rejoin(srv->store, q) < 0) {
        mem_free(q); /* stopping: the outbox keeps it */
        return;
    }
    rj->reissuing = true;
}

/* The store reissued an entry (its new copies came just before, as committed ones): its old
 * copies go. */
static void take_reissued(cluster_t *c, store_rejoin_t *q)
{
    xh_rj_t *rj = find(c, q->id);
    xh_out_t **pp = &c->out_head, *o;

    if (rj == NULL)
        return;
    if (q->rc == RC_EPROTO || q->rc == RC_EINVAL) {
        /* unreadable here (logged by the store): no new id can be made for it */
        publish_as_is(c, q->id);
        unlink_rj(c, rj);
        return;
    }
    if (q->rc < 0) {
        LOG_RL(LOG_LVL_ERROR, "cluster: message %" PRIu64 " of the outbox could not be given a "
                              "new id: trying again", q->id);
        rj->reissuing = false;
        rj->retry_ms = cluster__now_ms() + RJ_RETRY_MS;
        return;
    }
    c->out_tail = NULL;
    while ((o = *pp) != NULL) {
        if (o->id == q->id) {
            *pp = o->next;
            c->nout--;
            mem_free(o->xmsg);
            mem_free(o);
        } else {
            c->out_tail = o;
            pp = &o->next;
        }
    }
    if (q->new_id != 0) {
        atomic_fetch_add_explicit(&c->x_reissued, 1, memory_order_relaxed);
        LOG_WARN("cluster: message %" PRIu64 " of the outbox would come late at a home it goes "
                 "to: reissued as %" PRIu64, q->id, q->new_id);
    }
    unlink_rj(c, rj);
}

/* Committed long enough ago that its homes may have stopped waiting for this node. */
static bool stale(uint64_t id)
{
    uint64_t now = snowflake_now_ms(), t = snowflake_time_ms(id);
    return now > t && now - t >= RJ_STALE_MS;
}

static xh_rj_t *rj_new(cluster_t *c, uint64_t id)
{
    xh_rj_t *rj = mem_calloc(sizeof(*rj));

    rj->id = id;
    rj->since_ms = rj->asked_ms = cluster__now_ms();
    atomic_fetch_add_explicit(&c->x_held, 1, memory_order_relaxed);
    rj->prev = c->rj_tail;
    *(c->rj_tail != NULL ? &c->rj_tail->next : &c->rejoins) = rj;
    c->rj_tail = rj;
    return rj;
}

/* Hold @p o for @p rj and ask its home. */
static void hold(cluster_t *c, xh_rj_t *rj, xh_out_t *o)
{
    int i = cluster_index_of(c, o->home);

    if (o->home == c->self || i < 0)
        return;
    o->rejoin = true;
    o->rj = rj;
    rj->ask |= 1ULL << i;
    ask(c, o);
}

bool cluster__rj_hold(cluster_t *c, xh_out_t *o, bool restart, bool last)
{
    xh_rj_t *rj = find(c, o->id);

    if (rj == NULL) {
        /* the first copy of an id decides for all of them */
        if (!restart && (o->id == c->rj_fresh || !stale(o->id))) {
            c->rj_fresh = o->id;
            return false;
        }
        rj = rj_new(c, o->id);
    }
    hold(c, rj, o);
    rj->complete = last;
    decide(c, rj);
    return true;
}

bool cluster__rj_hold_again(cluster_t *c, xh_out_t *o)
{
    xh_rj_t *rj;

    if (!stale(o->id) || find(c, o->id) != NULL)
        return false;
    /* a copy JetStream has is (or will be) in its home's merge: none can move to a new id */
    for (xh_out_t *p = c->out_head; p != NULL; p = p->next)
        if (p->id == o->id && p->stored && p->home != c->self)
            return false;
    rj = rj_new(c, o->id);
    for (xh_out_t *p = c->out_head; p != NULL; p = p->next)
        if (p->id == o->id)
            hold(c, rj, p);
    rj->complete = true; /* its copies came together, long ago */
    decide(c, rj);
    return true;
}

static void take_answer(cluster_t *c, const cl_msg_t *m)
{
    xh_rj_t *rj = find(c, m->id);
    int i = cluster_index_of(c, m->from);

    if (rj == NULL || i < 0 || !(rj->ask & (1ULL << i)) || (m->code & RJ_NOT_YET))
        return; /* a repeat, or not yet: asked again */
    rj->answered |= 1ULL << i;
    rj->has = rj->has || (m->code & RJ_HAS);
    rj->late = rj->late || (m->code & RJ_LATE);
    if (m->seq > rj->floor)
        rj->floor = m->seq;
    decide(c, rj);
}

void cluster__rj_take(cluster_t *c, cl_msg_t *m)
{
    store_rejoin_t *q = m->ptr;

    m->ptr = NULL;
    switch (m->kind) {
    case MSG_XRJQ:
        take_question(c, q);
        return;
    case MSG_XRJA:
        take_answer(c, m);
        return;
    case MSG_XRJ_DONE:
        if (q->what == STORE_RJ_ASK) {
            if (q->rc == 0)
                answer(c, q->origin, q->id,
                       (uint8_t)((q->has ? RJ_HAS : 0) | (q->late ? RJ_LATE : 0)));
        } else {
            take_reissued(c, q);
        }
        mem_free(q);
        return;
    default:
        return;
    }
}

void cluster__rj_tick(cluster_t *c, uint64_t now)
{
    xh_rj_t *rj, *next;
    bool any = false;

    for (rj = c->rejoins; rj != NULL; rj = rj->next) {
        if (rj->reissuing)
            continue;
        if (now - rj->since_ms >= RJ_GIVE_UP_MS)
            for (size_t i = 0; i < c->n; i++)
                if ((rj->ask & ~rj->answered & (1ULL << i)) &&
                    !cluster_node_alive(c, c->nodes[i])) {
                    rj->answered |= 1ULL << i; /* down: not waited for */
                    rj->unchecked = true;
                }
        rj->due = now - rj->asked_ms >= RJ_RETRY_MS && (rj->answered & rj->ask) != rj->ask;
        if (rj->due) {
            rj->asked_ms = now;
            any = true;
        }
    }
    /* ask again, in one pass over the messages on their way */
    for (xh_out_t *o = c->out_head; any && o != NULL; o = o->next) {
        int i = cluster_index_of(c, o->home);
        if (o->rejoin && o->rj != NULL && o->rj->due && i >= 0 &&
            !(o->rj->answered & (1ULL << i)))
            ask(c, o);
    }
    for (rj = c->rejoins; rj != NULL; rj = next) {
        next = rj->next; /* decide may free rj */
        rj->due = false;
        decide(c, rj);
    }
}

void cluster__rj_stop(cluster_t *c)
{
    while (c->rejoins != NULL)
        unlink_rj(c, c->rejoins);
}
