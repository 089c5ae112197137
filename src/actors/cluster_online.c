/* cluster_online: the online flag of CONTACT_LIST for contacts homed on other nodes — the
 * questions to their homes and the answers, on the cluster thread; the homes' side on
 * libnats's delivery thread (cluster.h, xonline.h, docs/SCALING.md "Presence across
 * homes"). */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/cluster_int.h"
#include "actors/router.h"
#include "actors/server.h"
#include "actors/worker.h"
#include "actors/xonline.h"
#include "core/mem.h"
#include "core/rc.h"

_Static_assert(CONF_CLUSTER_MAX <= 64, "onl_wait_t.waiting has a bit per node");

/* A CONTACT_LIST waiting for the homes of its remote contacts. */
typedef struct onl_wait {
    struct onl_wait *next;
    xonline_req_t *q;     /* owned until handed back */
    uint64_t token;
    uint64_t deadline_ms;
    uint64_t waiting;     /* bit i: nodes[i] was asked and has not answered */
} onl_wait_t;

/* ---- any thread -------------------------------------------------------------------------- */

int cluster_online_ask(cluster_t *c, xonline_req_t *q)
{
    cl_msg_t *m;
    int rc;

    if (!c->enabled)
        return RC_ECLOSED;
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_XONL;
    m->ptr = q;
    if ((rc = mbox_send(&c->box, &m->node)) < 0)
        mem_free(m);
    return rc;
}

void cluster__onl_drop(cluster_t *c, cl_msg_t *m)
{
    (void)c;
    if (m->kind == MSG_XONL) {
        mem_free(m->ptr); /* stopping: its session is gone */
        m->ptr = NULL;
    }
}

/* ---- libnats's delivery thread ----------------------------------------------------------- */

/* The contacts' home: answered from here, like a ping (router lookups take a shard's read
 * lock for a copy; nothing of it needs the cluster thread). */
void cluster__onl_on_ask(cluster_t *c, natsConnection *nc, natsMsg *msg)
{
    const char *reply = natsMsg_GetReply(msg);
    server_t *srv = c->srv;
    uint8_t out[XONLINE_ANS_MAX];
    char user[KV_ID_MAX + 1];
    xonline_ask_t q;
    router_ent_t ent;
    size_t pos = 0, len;

    if (reply == NULL || strncmp(reply, c->prefix, strlen(c->prefix)) != 0 ||
        xonline_ask_parse((const uint8_t *)natsMsg_GetData(msg),
                          (size_t)natsMsg_GetDataLength(msg), &q) < 0) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    len = xonline_ans_init(out, q.token, c->self, q.n);
    for (size_t i = 0; xonline_ask_user(&q, &pos, user); i++)
        if (srv != NULL && router_lookup(srv->router, q.app, user, &ent, 1) > 0)
            xonline_ans_set(out, i);
    (void)natsConnection_Publish(nc, reply, out, (int)len); /* best effort: the asker's wait
                                                              ends without it */
}

/* The asker: checked here, taken on the cluster thread. */
void cluster__onl_on_answer(cluster_t *c, natsMsg *msg)
{
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    xonline_ans_t a;
    cl_msg_t *m;

    /* NATS's "no responders" (a status, no data): the home asked is not on the bus (it has
     * just died). It names no question: that wait ends with its deadline, or when the home
     * is declared down. Not malformed. */
    if (natsMsg_IsNoResponders(msg))
        return;
    if (xonline_ans_parse(p, len, &a) < 0) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    m = mem_calloc(sizeof(*m) + len);
    m->kind = MSG_XONA;
    m->len = len;
    memcpy(m->data, p, len);
    cluster__post(c, m, true);
}

/* ---- the cluster thread ------------------------------------------------------------------ */

/* Hand @p w's CONTACT_LIST back to its session (the contacts of a home that did not
 * answer stay offline). Frees @p w. */
static void finish(cluster_t *c, onl_wait_t *w)
{
    server_t *srv = c->srv;
    xonline_req_t *q = w->q;
    delivery_t *d;

    mem_free(w);
    if (srv == NULL || q->worker >= srv->nworkers) {
        mem_free(q);
        return;
    }
    d = mem_calloc(sizeof(*d));
    d->sid = q->sid;
    d->done = &q->hdr;
    worker_deliver(srv->workers[q->worker], d, 1);
}

/* Ask nodes[i] about the entries of w's request homed there, if any (@p users: room for
 * as many pointers as entries, @p buf for their question); a home that cannot be asked is
 * not waited for. */
static void ask_home(cluster_t *c, onl_wait_t *w, size_t i, const char **users, uint8_t *buf)
{
    const xonline_req_t *q = w->q;
    char subj[SUBJ_MAX], reply[SUBJ_MAX];
    size_t k = 0, len;

    for (uint32_t j = 0; j < q->n; j++)
        if (q->ents[j].remote && q->ents[j].home == c->nodes[i])
            users[k++] = q->ents[j].user;
    if (k == 0)
        return;
    snprintf(subj, sizeof(subj), "%s.node.%u.xonl", c->conf->cluster_name, c->nodes[i]);
    snprintf(reply, sizeof(reply), "%s.node.%u.xona", c->conf->cluster_name, c->self);
    if (cluster_bus_up(c) && c->nc != NULL && cluster_node_alive(c, c->nodes[i]) &&
        xonline_ask_encode(w->token, q->app, users, k, buf, &len) == 0 &&
        natsConnection_PublishRequest(c->nc, subj, reply, buf, (int)len) == NATS_OK) {
        atomic_fetch_add_explicit(&c->onl_asked, 1, memory_order_relaxed);
        w->waiting |= 1ull << i;
    } else {
        /* down, or the bus: nobody to ask, its contacts are offline to this node */
        atomic_fetch_add_explicit(&c->onl_unanswered, 1, memory_order_relaxed);
    }
}

static void take_ask(cluster_t *c, xonline_req_t *q)
{
    onl_wait_t *w = mem_calloc(sizeof(*w));
    const char **users = mem_alloc((q->n + 1) * sizeof(*users));
    uint8_t *buf = mem_alloc(XONLINE_ASK_HDR + (q->n + 1) * (KV_ID_MAX + 1));

    w->q = q;
    w->token = ++c->onl_token;
    w->deadline_ms = cluster__now_ms() + CLUSTER_ONLINE_WAIT_MS;
    for (size_t i = 0; i < c->n; i++)
        if (c->nodes[i] != c->self)
            ask_home(c, w, i, users, buf);
    mem_free(users);
    mem_free(buf);
    if (w->waiting == 0) {
        finish(c, w);
        return;
    }
    /* Appended: the list stays in the order asked, which is deadline order. */
    *c->onl_last = w;
    c->onl_last = &w->next;
}

/* Take the wait at *@p pp off the list and hand its CONTACT_LIST back. */
static void unlink_finish(cluster_t *c, onl_wait_t **pp)
{
    onl_wait_t *w = *pp;

    *pp = w->next;
    if (w->next == NULL)
        c->onl_last = pp;
    finish(c, w);
}

/* A home's answer: the online flags of its contacts, in the question's order. */
static void take_answer(cluster_t *c, const cl_msg_t *m)
{
    onl_wait_t **pp, *w;
    xonline_ans_t a;
    uint64_t bit;
    size_t k = 0;
    int i;

    if (xonline_ans_parse(m->data, m->len, &a) < 0)
        return; /* checked on arrival */
    for (pp = &c->onl_waits; *pp != NULL && (*pp)->token != a.token; pp = &(*pp)->next)
        ;
    if ((w = *pp) == NULL)
        return; /* answered already, without it */
    if ((i = cluster_index_of(c, a.node)) < 0) {
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    bit = 1ull << i;
    if ((w->waiting & bit) == 0)
        return; /* no longer waited for (declared down meanwhile) */
    for (uint32_t j = 0; j < w->q->n; j++)
        k += w->q->ents[j].remote && w->q->ents[j].home == a.node;
    if (k != a.n) {
        /* not that many asked of that node: not an answer to this question */
        atomic_fetch_add_explicit(&c->x_dropped, 1, memory_order_relaxed);
        return;
    }
    k = 0;
    for (uint32_t j = 0; j < w->q->n; j++) {
        xonline_ent_t *e = &w->q->ents[j];
        if (e->remote && e->home == a.node)
            e->online = xonline_ans_get(&a, k++);
    }
    w->waiting &= ~bit;
    if (w->waiting == 0)
        unlink_finish(c, pp);
}

void cluster__onl_take(cluster_t *c, cl_msg_t *m)
{
    if (m->kind == MSG_XONL)
        take_ask(c, m->ptr);
    else if (m->kind == MSG_XONA)
        take_answer(c, m);
    m->ptr = NULL;
}

void cluster__onl_down(cluster_t *c, uint32_t node)
{
    int i = cluster_index_of(c, node);
    uint64_t gone = node == CLUSTER_ALL_NODES ? ~0ull : i >= 0 ? 1ull << i : 0;
    onl_wait_t **pp = &c->onl_waits, *w;

    while (gone != 0 && (w = *pp) != NULL) {
        atomic_fetch_add_explicit(&c->onl_unanswered,
                                  (uint64_t)__builtin_popcountll(w->waiting & gone),
                                  memory_order_relaxed);
        w->waiting &= ~gone;
        if (w->waiting == 0)
            unlink_finish(c, pp);
        else
            pp = &w->next;
    }
}

void cluster__onl_tick(cluster_t *c)
{
    uint64_t now = cluster__now_ms();
    onl_wait_t *w;

    /* in deadline order: only the expired head */
    while ((w = c->onl_waits) != NULL && w->deadline_ms <= now) {
        atomic_fetch_add_explicit(&c->onl_unanswered, (uint64_t)__builtin_popcountll(w->waiting),
                                  memory_order_relaxed);
        unlink_finish(c, &c->onl_waits);
    }
}

void cluster__onl_stop(cluster_t *c)
{
    onl_wait_t *w, *next;

    for (w = c->onl_waits; w != NULL; w = next) {
        next = w->next;
        mem_free(w->q); /* stopping: its session is gone */
        mem_free(w);
    }
    c->onl_waits = NULL;
    c->onl_last = &c->onl_waits;
}
