/* relay: edge and home of sessions whose client reached another node (relay.h). */
#include "actors/relay.h"

#include <string.h>

#include "actors/cluster.h"
#include "actors/server.h"
#include "actors/session.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

/* The header of one bus message (relay.h). */
typedef struct relay_hdr {
    uint8_t kind;
    uint32_t edge, home, type;
    uint64_t sid;
} relay_hdr_t;

static void hdr_write(uint8_t out[RELAY_HDR], const relay_hdr_t *h)
{
    memset(out, 0, RELAY_HDR);
    out[0] = h->kind;
    be32_put(out + 4, h->edge);
    be32_put(out + 8, (uint32_t)(h->sid >> 32));
    be32_put(out + 12, (uint32_t)h->sid);
    be32_put(out + 16, h->type);
    be32_put(out + 20, h->home);
}

static bool hdr_read(const uint8_t *p, size_t len, relay_hdr_t *h)
{
    if (len < RELAY_HDR || p[0] < RELAY_LOGIN || p[0] > RELAY_CLOSED)
        return false;
    h->kind = p[0];
    h->edge = be32_get(p + 4);
    h->sid = (uint64_t)be32_get(p + 8) << 32 | be32_get(p + 12);
    h->type = be32_get(p + 16);
    h->home = be32_get(p + 20);
    return true;
}

/* Send a bodiless or framed message about session (edge, sid) across the bus. */
static int send_msg(cluster_t *c, bool to_home, const relay_hdr_t *h, const void *body, size_t len,
                    bool force)
{
    uint8_t hdr[RELAY_HDR];

    hdr_write(hdr, h);
    return cluster_relay_send(c, to_home ? h->home : h->edge, to_home, hdr, sizeof(hdr), body, len,
                              force);
}

/* Tell the other side that session (edge, sid) is unknown or over here. */
static void send_closed(cluster_t *c, bool to_home, uint32_t edge, uint64_t sid, uint32_t home)
{
    relay_hdr_t h = {RELAY_CLOSED, edge, home, 0, sid};
    (void)send_msg(c, to_home, &h, NULL, 0, true); /* best effort: stopping, or no bus */
}

/* ---- the bus side: libnats's delivery thread and the cluster thread --------------------- */

/* Which worker serves session (edge, sid) at its home. */
static uint32_t home_worker(const server_t *srv, uint32_t edge, uint64_t sid)
{
    uint64_t k = (sid ^ ((uint64_t)edge << 52)) * 0x9E3779B97F4A7C15ULL;
    return (uint32_t)((k >> 32) % srv->nworkers);
}

void relay_on_bus(void *ctx, bool to_home, const uint8_t *data, size_t len)
{
    server_t *srv = ctx;
    worker_msg_t *m;
    relay_hdr_t h;
    uint32_t wi;

    if (!hdr_read(data, len, &h)) {
        LOG_RL(LOG_LVL_WARN, "relay: a malformed message (%zu bytes) from the bus: dropped", len);
        return;
    }
    wi = to_home ? home_worker(srv, h.edge, h.sid) : (uint32_t)(h.sid >> 48);
    if (wi >= srv->nworkers)
        return; /* not a sid of this process */
    m = mem_calloc(sizeof(*m));
    m->kind = WORKER_MSG_RELAY;
    m->u.relay.kind = h.kind;
    m->u.relay.to_home = to_home;
    m->u.relay.edge = h.edge;
    m->u.relay.home = h.home;
    m->u.relay.sid = h.sid;
    m->u.relay.type = h.type;
    m->u.relay.len = (uint32_t)(len - RELAY_HDR);
    if (m->u.relay.len > 0) {
        m->u.relay.data = mem_alloc(m->u.relay.len);
        memcpy(m->u.relay.data, data + RELAY_HDR, m->u.relay.len);
    }
    /* A session's beginning and end are never refused; a frame that finds the worker
     * behind closes its session (RELAY_OVERFLOW) rather than leave a gap. */
    if (worker_post(srv->workers[wi], m, h.kind != RELAY_FRAME) == 0)
        return;
    mem_free(m->u.relay.data);
    m->u.relay.data = NULL;
    m->u.relay.len = 0;
    m->u.relay.kind = RELAY_OVERFLOW;
    if (worker_post(srv->workers[wi], m, true) != 0)
        mem_free(m); /* stopping */
}

void relay_on_node_down(void *ctx, uint32_t node)
{
    server_t *srv = ctx;

    for (uint32_t i = 0; i < srv->nworkers; i++) {
        worker_msg_t *m = mem_calloc(sizeof(*m));
        m->kind = WORKER_MSG_NODE_DOWN;
        m->u.down.node = node;
        if (worker_post(srv->workers[i], m, true) != 0)
            mem_free(m); /* stopping */
    }
}

/* ---- the home's map: (edge node, edge sid) → remote session ----------------------------- */

static size_t rslot(size_t cap, uint32_t edge, uint64_t sid)
{
    return (size_t)(((sid ^ ((uint64_t)edge << 52)) * 0x9E3779B97F4A7C15ULL) >> 20) & (cap - 1);
}

static void map_grow(worker_t *w)
{
    size_t cap = w->rtab_cap ? w->rtab_cap * 2 : 256;
    session_t **tab = mem_calloc(cap * sizeof(*tab));

    for (size_t i = 0; i < w->rtab_cap; i++) {
        session_t *s = w->rtab[i], *next;
        for (; s != NULL; s = next) {
            size_t k = rslot(cap, s->relay_node, s->relay_sid);
            next = s->relay_next;
            s->relay_next = tab[k];
            tab[k] = s;
        }
    }
    mem_free(w->rtab);
    w->rtab = tab;
    w->rtab_cap = cap;
}

void relay__map_add(worker_t *w, session_t *s)
{
    size_t k;

    if (w->nremote + 1 > w->rtab_cap)
        map_grow(w);
    k = rslot(w->rtab_cap, s->relay_node, s->relay_sid);
    s->relay_next = w->rtab[k];
    w->rtab[k] = s;
    w->nremote++;
}

void relay__map_del(worker_t *w, session_t *s)
{
    session_t **p;

    if (w->rtab_cap == 0)
        return;
    for (p = &w->rtab[rslot(w->rtab_cap, s->relay_node, s->relay_sid)]; *p != NULL;
         p = &(*p)->relay_next)
        if (*p == s) {
            *p = s->relay_next;
            s->relay_next = NULL;
            w->nremote--;
            return;
        }
}

static session_t *map_find(const worker_t *w, uint32_t edge, uint64_t sid)
{
    session_t *s;

    if (w->rtab_cap == 0)
        return NULL;
    for (s = w->rtab[rslot(w->rtab_cap, edge, sid)]; s != NULL; s = s->relay_next)
        if (s->relay_node == edge && s->relay_sid == sid)
            return s;
    return NULL;
}

/* ---- the home: remote sessions ---------------------------------------------------------- */

/* A LOGIN relayed by an edge: open the remote session and log it in as a local one. */
static void home_login(worker_t *w, const worker_msg_t *m)
{
    const uint8_t *d = m->u.relay.data;
    peer_addr_t peer;
    session_t *s;

    if (map_find(w, m->u.relay.edge, m->u.relay.sid) != NULL)
        return; /* a repeat: the first one stands */
    if (w->stopping || d == NULL || m->u.relay.len < RELAY_ADDR) {
        send_closed(w->srv->cluster, false, m->u.relay.edge, m->u.relay.sid, m->u.relay.home);
        return;
    }
    memset(&peer, 0, sizeof(peer));
    peer.family = d[0];
    memcpy(peer.ip, d + 1, sizeof(peer.ip));
    s = session_open_remote(w, &peer, m->u.relay.edge, m->u.relay.sid);
    (void)session__login(s, d + RELAY_ADDR, m->u.relay.len - RELAY_ADDR); /* refusals close s */
}

static void home_take(worker_t *w, const worker_msg_t *m)
{
    session_t *s;

    if (m->u.relay.kind == RELAY_LOGIN) {
        home_login(w, m);
        return;
    }
    s = map_find(w, m->u.relay.edge, m->u.relay.sid);
    if (s == NULL) {
        if (m->u.relay.kind != RELAY_CLOSED) /* a session this node forgot (restarted) */
            send_closed(w->srv->cluster, false, m->u.relay.edge, m->u.relay.sid,
                        cluster_self(w->srv->cluster));
        return;
    }
    if (m->u.relay.kind == RELAY_FRAME) {
        session__relay_in(s, m->u.relay.type, m->u.relay.data, m->u.relay.len);
    } else if (m->u.relay.kind == RELAY_CLOSED) {
        s->relay_gone = true;
        session_abort(s, "the client went away (edge node)");
    } else {
        session_close(s, cim_Code_SERVER_BUSY, "server busy: too many frames waiting");
    }
}

/* ---- the edge: relayed sessions ---------------------------------------------------------- */

static void edge_take(worker_t *w, const worker_msg_t *m)
{
    session_t *s = worker_find(w, m->u.relay.sid);

    if (s == NULL || s->relay != RELAY_EDGE || s->relay_node != m->u.relay.home) {
        if (m->u.relay.kind != RELAY_CLOSED)
            send_closed(w->srv->cluster, true, cluster_self(w->srv->cluster), m->u.relay.sid,
                        m->u.relay.home);
        return;
    }
    if (m->u.relay.kind == RELAY_FRAME)
        session__relay_out(s, m->u.relay.type, m->u.relay.data, m->u.relay.len);
    else if (m->u.relay.kind == RELAY_CLOSED)
        session__relay_end(s, "closed by its home node");
    else
        session_close(s, cim_Code_SERVER_BUSY, "server busy: too many frames waiting");
}

void relay_take(worker_t *w, worker_msg_t *m)
{
    if (m->u.relay.to_home)
        home_take(w, m);
    else
        edge_take(w, m);
    mem_free(m->u.relay.data);
    m->u.relay.data = NULL;
}

void relay_node_down(worker_t *w, uint32_t node)
{
    for (size_t i = 0; i < w->tab_cap; i++) {
        session_t *s = w->tab[i];
        if (s == NULL || s->relay == RELAY_NONE || s->relay_gone || s->closed ||
            s->state == SESSION_ST_CLOSING || (node != CLUSTER_ALL_NODES && s->relay_node != node))
            continue;
        if (s->relay == RELAY_EDGE) {
            session__relay_lost(s);
        } else {
            s->relay_gone = true; /* nobody there to tell */
            session_abort(s, "its edge node is unavailable");
        }
    }
}

int relay_login(session_t *s, const uint8_t *body, size_t len)
{
    cluster_t *c = s->w->srv->cluster;
    relay_hdr_t h = {RELAY_LOGIN, cluster_self(c), s->relay_node, 0, s->sid};
    uint8_t *msg;
    int rc;

    if (len > CLUSTER_RELAY_MAX)
        return RC_ETOOBIG;
    msg = mem_alloc(RELAY_ADDR + len);
    msg[0] = s->peer.family;
    memcpy(msg + 1, s->peer.ip, sizeof(s->peer.ip));
    memcpy(msg + RELAY_ADDR, body, len);
    rc = send_msg(c, true, &h, msg, RELAY_ADDR + len, false);
    mem_free(msg);
    return rc;
}

int relay_forward(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    cluster_t *c = s->w->srv->cluster;
    relay_hdr_t h = {RELAY_FRAME, cluster_self(c), s->relay_node, type, s->sid};
    int rc = send_msg(c, true, &h, body, len, false);

    if (rc == 0)
        return 0;
    session_close(s, cim_Code_SERVER_BUSY,
                  rc == RC_EFULL ? "server busy: the bus is backed up; reconnect"
                                 : "server busy: home node unavailable");
    return RC_ECLOSED;
}

int relay_out(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    cluster_t *c = s->w->srv->cluster;
    relay_hdr_t h = {RELAY_FRAME, s->relay_node, cluster_self(c), type, s->relay_sid};
    int rc = send_msg(c, false, &h, body, len, type == FT_BYE);

    if (rc == RC_EFULL)
        session_close(s, cim_Code_SERVER_BUSY, "too far behind: reconnect and SYNC");
    else if (rc < 0)
        session_abort(s, rc_str(rc));
    return rc;
}

void relay_detach(session_t *s)
{
    cluster_t *c;

    if (s->relay == RELAY_NONE || s->relay_gone)
        return;
    s->relay_gone = true;
    c = s->w->srv->cluster;
    if (s->relay == RELAY_EDGE)
        send_closed(c, true, cluster_self(c), s->sid, s->relay_node);
    else
        send_closed(c, false, s->relay_node, s->relay_sid, cluster_self(c));
}
