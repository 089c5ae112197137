/* cluster: home nodes, and the cluster thread — the NATS connection, heartbeats,
 * liveness and pings (cluster.h). */
#include "actors/cluster.h"
#include "actors/cluster_int.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/be.h"
#include "core/home.h"
#include "core/log.h"
#include "core/mbox.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* ---- home nodes ------------------------------------------------------------------------ */

uint32_t cluster_home(const cluster_t *c, const char *app, const char *id)
{
    return home_pick(c->nodes, c->n, app, id);
}

/* ---- what any thread may ask ------------------------------------------------------------ */

uint64_t cluster__now_ms(void)
{
    return uv_hrtime() / 1000000;
}

int cluster_index_of(const cluster_t *c, uint32_t node)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->nodes[i] == node)
            return (int)i;
    return -1;
}

/* Was nodes[i] (a peer) heard from within CLUSTER_ALIVE_MS of @p now? */
static bool alive_at(const cluster_t *c, size_t i, uint64_t now)
{
    uint64_t seen = atomic_load_explicit(&c->seen_ms[i], memory_order_relaxed);
    /* seen > now: stamped by the cluster thread after this thread read the clock */
    return seen != 0 && (seen > now || now - seen <= CLUSTER_ALIVE_MS);
}

bool cluster_is_enabled(const cluster_t *c)
{
    return c->enabled;
}

uint32_t cluster_self(const cluster_t *c)
{
    return c->self;
}

const char *cluster_name(const cluster_t *c)
{
    return c->enabled ? c->conf->cluster_name : NULL;
}

size_t cluster_nodes(const cluster_t *c, const uint32_t **ids)
{
    *ids = c->nodes;
    return c->n;
}

bool cluster_node_alive(const cluster_t *c, uint32_t node)
{
    int i;

    if (node == c->self)
        return true;
    if ((i = cluster_index_of(c, node)) < 0)
        return false;
    return alive_at(c, (size_t)i, cluster__now_ms());
}

bool cluster_bus_up(const cluster_t *c)
{
    return atomic_load_explicit(&c->bus_up, memory_order_relaxed) != 0;
}

void cluster_stats(const cluster_t *c, cluster_stats_t *out)
{
    uint64_t now = cluster__now_ms();

    memset(out, 0, sizeof(*out));
    if (!c->enabled)
        return;
    out->bus_up = cluster_bus_up(c);
    for (size_t i = 0; i < c->n; i++)
        out->peers_up += c->nodes[i] != c->self && alive_at(c, i, now);
    out->reconnects_total = ctr_get(&c->reconnects);
    out->relay_sent_total = atomic_load_explicit(&c->relay_sent, memory_order_relaxed);
    out->relay_received_total = atomic_load_explicit(&c->relay_received, memory_order_relaxed);
    out->relay_refused_total = atomic_load_explicit(&c->relay_refused, memory_order_relaxed);
    out->xhome_forwarded_total = atomic_load_explicit(&c->x_forwarded, memory_order_relaxed);
    out->xhome_consumed_total = atomic_load_explicit(&c->x_consumed, memory_order_relaxed);
    out->xhome_dropped_total = atomic_load_explicit(&c->x_dropped, memory_order_relaxed);
    out->xhome_late_total = atomic_load_explicit(&c->x_late, memory_order_relaxed);
    out->xhome_reissued_total = atomic_load_explicit(&c->x_reissued, memory_order_relaxed);
    out->xhome_held_total = atomic_load_explicit(&c->x_held, memory_order_relaxed);
    out->xhome_refused_total = atomic_load_explicit(&c->x_refused, memory_order_relaxed);
    out->xhome_pending = atomic_load_explicit(&c->x_pending, memory_order_relaxed);
    out->online_asked_total = atomic_load_explicit(&c->onl_asked, memory_order_relaxed);
    out->online_unanswered_total =
        atomic_load_explicit(&c->onl_unanswered, memory_order_relaxed);
}

const hist_t *cluster_rtt(const cluster_t *c)
{
    return &c->rtt;
}

/* ---- libnats's threads: parse, hand over ----------------------------------------------- */

/* Free @p m and what it carries: refused, or left in the mailbox at stop. */
static void drop(cluster_t *c, cl_msg_t *m)
{
    cluster__onl_drop(c, m);
    cluster__xh_drop(c, m);
    mem_free(m);
}

void cluster__post(cluster_t *c, cl_msg_t *m, bool force)
{
    if ((force ? mbox_send_force(&c->box, &m->node) : mbox_send(&c->box, &m->node)) < 0)
        drop(c, m); /* full (a heartbeat more or less) or closed (stopping) */
}

static void post_event(cluster_t *c, int kind)
{
    cl_msg_t *m = mem_calloc(sizeof(*m));
    m->kind = kind;
    cluster__post(c, m, true);
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    post_event(closure, MSG_CONNECTED);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    post_event(closure, MSG_DISCONNECTED);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    post_event(closure, MSG_RECONNECTED);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    post_event(closure, MSG_CLOSED);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    LOG_RL(LOG_LVL_WARN, "cluster: NATS error: %s", natsStatus_GetText(err));
}

/* The message's text, NUL-terminated, into @p out. @return false when it does not fit. */
static bool msg_text(natsMsg *msg, char out[TEXT_MAX])
{
    int len = natsMsg_GetDataLength(msg);

    if (len <= 0 || len >= TEXT_MAX)
        return false;
    memcpy(out, natsMsg_GetData(msg), (size_t)len);
    out[len] = '\0';
    return true;
}

/* N.node.*.hb: "<id> <start_ms> <instance> <bus_session>" (the last may be absent). */
static void on_heartbeat_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                             void *closure)
{
    cluster_t *c = closure;
    char text[TEXT_MAX];
    unsigned long long id, start, inst;
    unsigned sess = 0;
    cl_msg_t *m;

    (void)nc;
    (void)sub;
    if (msg_text(msg, text) &&
        sscanf(text, "%llu %llu %llx %u", &id, &start, &inst, &sess) >= 3 &&
        id <= SNOWFLAKE_NODE_MAX) {
        m = mem_calloc(sizeof(*m));
        m->kind = MSG_HEARTBEAT;
        m->from = (uint32_t)id;
        m->start_ms = start;
        m->instance = inst;
        m->bus_session = sess;
        cluster__post(c, m, false);
    }
    natsMsg_Destroy(msg);
}

/* A pong: "<from> <to> <instance> <t_ns>", the ping this node sent, echoed. */
static void take_pong(cluster_t *c, natsMsg *msg)
{
    char text[TEXT_MAX];
    unsigned long long from, to, inst, t_ns;
    uint64_t now = uv_hrtime();
    cl_msg_t *m;

    if (natsMsg_IsNoResponders(msg) || !msg_text(msg, text) ||
        sscanf(text, "%llu %llu %llx %llu", &from, &to, &inst, &t_ns) != 4 || from != c->self ||
        inst != c->instance || to > SNOWFLAKE_NODE_MAX || t_ns > now)
        return; /* not one of this run's pings */
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_PONG;
    m->from = (uint32_t)to;
    m->rtt_ns = now - t_ns;
    cluster__post(c, m, false);
}

/* N.node.<self>.*: a ping to answer (here, on the delivery thread: the round trip is the
 * bus's alone), or a pong to one of ours. */
static void on_direct_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                          void *closure)
{
    cluster_t *c = closure;
    const char *subj = natsMsg_GetSubject(msg), *reply = natsMsg_GetReply(msg);
    size_t len = strlen(subj);

    (void)sub;
    if (len > 5 && strcmp(subj + len - 5, ".ping") == 0) {
        if (reply != NULL && strncmp(reply, c->prefix, strlen(c->prefix)) == 0)
            (void)natsConnection_Publish(nc, reply, natsMsg_GetData(msg),
                                         natsMsg_GetDataLength(msg)); /* best effort: a
                                                                         lost pong is no RTT */
    } else if (strcmp(subj, c->subj_pong) == 0) {
        take_pong(c, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xchk") == 0) {
        cluster__xh_on_check(c, nc, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xans") == 0) {
        cluster__xh_on_answer(c, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xapq") == 0) {
        cluster__xh_on_query(c, nc, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xapd") == 0) {
        cluster__xh_on_applied(c, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xsnd") == 0) {
        cluster__xh_on_fwd_send(c, nc, msg);
    } else if (len > 4 && strcmp(subj + len - 4, ".xop") == 0) {
        cluster__xh_on_fwd_op(c, nc, msg);
    } else if (len > 4 && strcmp(subj + len - 4, ".xfa") == 0) {
        cluster__xh_on_fwd_answer(c, msg);
    } else if (len > 4 && strcmp(subj + len - 4, ".xrd") == 0) {
        cluster__xh_on_read(c, msg);
    } else if (len > 4 && strcmp(subj + len - 4, ".xpr") == 0) {
        cluster__xh_on_presence(c, msg);
    } else if (len > 4 && strcmp(subj + len - 4, ".xtg") == 0) {
        cluster__xh_on_group_transient(c, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xrjq") == 0) {
        cluster__rj_on_ask(c, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xrja") == 0) {
        cluster__rj_on_answer(c, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xonl") == 0) {
        cluster__onl_on_ask(c, nc, msg);
    } else if (len > 5 && strcmp(subj + len - 5, ".xona") == 0) {
        cluster__onl_on_answer(c, msg);
    } else if (c->relay_cb != NULL && len > 4 && strcmp(subj + len - 4, ".rin") == 0) {
        atomic_fetch_add_explicit(&c->relay_received, 1, memory_order_relaxed);
        c->relay_cb(c->relay_ctx, true, (const uint8_t *)natsMsg_GetData(msg),
                    (size_t)natsMsg_GetDataLength(msg));
    } else if (c->relay_cb != NULL && len > 5 && strcmp(subj + len - 5, ".rout") == 0) {
        atomic_fetch_add_explicit(&c->relay_received, 1, memory_order_relaxed);
        c->relay_cb(c->relay_ctx, false, (const uint8_t *)natsMsg_GetData(msg),
                    (size_t)natsMsg_GetDataLength(msg));
    }
    natsMsg_Destroy(msg);
}

/* ---- the cluster thread ---------------------------------------------------------------- */

/* @p urls (a comma-separated list) with any "user:password@" or "token@" left out. */
static void redact(const char *urls, char *out, size_t len)
{
    size_t used = 0;

    out[0] = '\0';
    while (*urls != '\0' && used + 1 < len) {
        size_t n = strcspn(urls, ","), skip = 0;
        const char *scheme = strstr(urls, "://"), *at;
        if (scheme != NULL && (size_t)(scheme - urls) < n) {
            skip = (size_t)(scheme + 3 - urls);
            at = memchr(urls + skip, '@', n - skip);
            if (at != NULL) {
                used += (size_t)snprintf(out + used, len - used, "%.*s", (int)skip, urls);
                n -= (size_t)(at + 1 - urls);
                urls = at + 1;
            }
        }
        if (used + 1 < len)
            used += (size_t)snprintf(out + used, len - used, "%.*s%s", (int)n, urls,
                                     urls[n] == ',' ? "," : "");
        urls += n + (urls[n] == ',');
    }
    if (used >= len)
        out[len - 1] = '\0';
}

static void heartbeat(cluster_t *c)
{
    char text[TEXT_MAX];
    natsStatus s;
    int n;

    if (!cluster_bus_up(c) || c->nc == NULL)
        return;
    n = snprintf(text, sizeof(text), "%u %llu %016llx %u", c->self,
                 (unsigned long long)c->start_ms, (unsigned long long)c->instance,
                 c->bus_session);
    if ((s = natsConnection_Publish(c->nc, c->subj_hb, text, n)) != NATS_OK)
        LOG_RL(LOG_LVL_WARN, "cluster: cannot send the heartbeat: %s", natsStatus_GetText(s));
}

static void on_heartbeat(uv_timer_t *t)
{
    heartbeat(t->data);
}

/* Ping every live peer; the pongs come back as MSG_PONG. */
static void on_ping(uv_timer_t *t)
{
    cluster_t *c = t->data;
    uint64_t now = cluster__now_ms();
    char subj[SUBJ_MAX], text[TEXT_MAX];
    natsStatus s;

    if (!cluster_bus_up(c) || c->nc == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        int n;
        if (c->nodes[i] == c->self || !alive_at(c, i, now))
            continue;
        (void)snprintf(subj, sizeof(subj), "%s.node.%u.ping", c->conf->cluster_name,
                       c->nodes[i]);
        n = snprintf(text, sizeof(text), "%u %u %016llx %llu", c->self, c->nodes[i],
                     (unsigned long long)c->instance, (unsigned long long)uv_hrtime());
        if ((s = natsConnection_PublishRequest(c->nc, subj, c->subj_pong, text, n)) != NATS_OK)
            LOG_RL(LOG_LVL_WARN, "cluster: cannot ping node %u: %s", c->nodes[i],
                   natsStatus_GetText(s));
    }
}

/* Peer @p node (or CLUSTER_ALL_NODES) is gone: whatever waits for it stops waiting. */
static void peer_down(cluster_t *c, uint32_t node)
{
    if (c->down_cb != NULL)
        c->down_cb(c->relay_ctx, node);
    cluster__xh_down(c, node);
    cluster__onl_down(c, node);
}

/* nodes[i] was alive when last looked at: log it down if it went quiet since. */
static void check_down(cluster_t *c, size_t i, uint64_t now)
{
    if (!c->was_alive[i] || alive_at(c, i, now))
        return;
    c->was_alive[i] = false;
    LOG_WARN("cluster: node %u is down (no heartbeat for %d s)", c->nodes[i],
             CLUSTER_ALIVE_MS / 1000);
    peer_down(c, c->nodes[i]);
}

/* Log the peers that went quiet. */
static void on_sweep(uv_timer_t *t)
{
    cluster_t *c = t->data;
    uint64_t now = cluster__now_ms();

    for (size_t i = 0; i < c->n; i++)
        if (c->nodes[i] != c->self)
            check_down(c, i, now);
}

static void take_heartbeat(cluster_t *c, const cl_msg_t *m)
{
    int i;

    if (m->from == c->self) {
        /* Not an echo (the connection asks for none): another process is this node. */
        if (m->instance != c->instance)
            LOG_RL(LOG_LVL_ERROR,
                   "cluster: another cimd sends heartbeats as node %u (started at %llu ms): "
                   "node_id must differ on every node",
                   c->self, (unsigned long long)m->start_ms);
        return;
    }
    if ((i = cluster_index_of(c, m->from)) < 0) {
        LOG_RL(LOG_LVL_WARN, "cluster: heartbeat from node %u, which cluster_nodes does not "
                             "list: ignored", m->from);
        return;
    }
    /* Quiet for long enough before this heartbeat, even if no sweep has said so yet (a
     * quick restart): down first, as everyone who asked was told. */
    check_down(c, (size_t)i, cluster__now_ms());
    atomic_store_explicit(&c->seen_ms[i], cluster__now_ms(), memory_order_relaxed);
    if (!c->was_alive[i]) {
        LOG_INFO("cluster: node %u is up (started at %llu ms)", m->from,
                 (unsigned long long)m->start_ms);
        cluster__xh_up(c, m->from);
    } else if (m->instance != c->peer_instance[i]) {
        LOG_INFO("cluster: node %u restarted (started at %llu ms)", m->from,
                 (unsigned long long)m->start_ms);
        /* What was relayed to or from its previous life is gone with it. */
        peer_down(c, m->from);
        cluster__xh_up(c, m->from);
    } else if (m->bus_session != c->peer_session[i]) {
        /* It lost the bus and came back within CLUSTER_ALIVE_MS: frames to or from it
         * may have been lost meanwhile, and it ended its relayed sessions. */
        LOG_INFO("cluster: node %u reconnected to the bus", m->from);
        peer_down(c, m->from);
        cluster__xh_up(c, m->from);
    }
    c->was_alive[i] = true;
    c->peer_instance[i] = m->instance;
    c->peer_session[i] = m->bus_session;
}

/* The connection is (again) up: say where, and announce this node at once. */
static void bus_up(cluster_t *c, bool again)
{
    char url[256] = "", shown[256];

    if (c->nc == NULL || c->stopping)
        return;
    atomic_store_explicit(&c->bus_up, 1, memory_order_relaxed);
    c->bus_session++;
    if (again)
        ctr_add(&c->reconnects, 1);
    if (natsConnection_GetConnectedUrl(c->nc, url, sizeof(url)) != NATS_OK)
        snprintf(url, sizeof(url), "?");
    redact(url, shown, sizeof(shown));
    LOG_INFO("cluster: bus up%s: connected to %s as node %u of cluster %s", again ? " again" : "",
             shown, c->self, c->conf->cluster_name);
    heartbeat(c);
    cluster__xh_bus_up(c);
}

static void bus_down(cluster_t *c, const char *why)
{
    atomic_store_explicit(&c->bus_up, 0, memory_order_relaxed);
    if (c->stopping)
        return;
    LOG_WARN("cluster: bus down: %s; retrying every %d ms", why, CLUSTER_RECONNECT_WAIT_MS);
    /* A peer is alive again only once heard from on the new connection (so its
     * subscriptions are back too): nothing is relayed to it before. */
    for (size_t i = 0; i < c->n; i++) {
        atomic_store_explicit(&c->seen_ms[i], 0, memory_order_relaxed);
        c->was_alive[i] = false;
    }
    /* Core NATS may have lost frames in either direction: no relayed session stays. */
    peer_down(c, CLUSTER_ALL_NODES);
}

/* Publish a relayed message (a session's frame, login or end). */
static void relay_publish(cluster_t *c, const cl_msg_t *m)
{
    char subj[SUBJ_MAX];
    natsStatus s;

    if (c->nc == NULL || c->stopping)
        return;
    (void)snprintf(subj, sizeof(subj), "%s.node.%u.%s", c->conf->cluster_name, m->to,
                   m->to_home ? "rin" : "rout");
    /* Bus down: libnats keeps it in its reconnect buffer or refuses it; either way the
     * sessions it belongs to are being closed (bus_down). */
    if ((s = natsConnection_Publish(c->nc, subj, m->data, (int)m->len)) != NATS_OK)
        LOG_RL(LOG_LVL_WARN, "cluster: cannot relay to node %u: %s", m->to,
               natsStatus_GetText(s));
    else
        atomic_fetch_add_explicit(&c->relay_sent, 1, memory_order_relaxed);
}

static void begin_stop(cluster_t *c);

static void take(cluster_t *c, cl_msg_t *m)
{
    switch (m->kind) {
    case MSG_CONNECTED: bus_up(c, false); break;
    case MSG_RECONNECTED: bus_up(c, true); break;
    case MSG_DISCONNECTED: bus_down(c, "lost the connection to NATS"); break;
    case MSG_CLOSED: bus_down(c, "the NATS connection closed"); break;
    case MSG_HEARTBEAT: take_heartbeat(c, m); break;
    case MSG_PONG: hist_observe(&c->rtt, (double)m->rtt_ns / 1e9); break;
    case MSG_STOP: begin_stop(c); break;
    case MSG_RELAY:
        relay_publish(c, m);
        atomic_fetch_sub_explicit(&c->relay_queued, m->len, memory_order_relaxed);
        break;
    case MSG_XONL:
    case MSG_XONA:
        cluster__onl_take(c, m);
        break;
    default:
        cluster__xh_take(c, m);
        break;
    }
}

static void on_wake(mbox_t *box)
{
    cluster_t *c = box->data;
    mbox_node_t *node;
    size_t n = 0;

    while (n++ < DRAIN_BUDGET && (node = mbox_pop(box)) != NULL) {
        cl_msg_t *m = container_of(node, cl_msg_t, node);
        /* Once MSG_STOP was taken the subscriptions and the connection are gone: what
         * came behind it is only freed, as cluster_stop frees what is left (taking a
         * JetStream message then would acknowledge it through a destroyed subscription). */
        if (c->stopping) {
            drop(c, m);
            continue;
        }
        take(c, m);
        mem_free(m);
    }
    if (n > DRAIN_BUDGET && !c->stopping)
        mbox_rewake(box);
}

/* The options: retry forever, events to the mailbox, no echo of our own messages. */
static natsStatus make_options(cluster_t *c)
{
    char urls[CONF_STR_MAX], name[64], *save = NULL;
    const char *list[URLS_MAX];
    int nurls = 0;
    natsStatus s;

    snprintf(urls, sizeof(urls), "%s", c->conf->cluster_url);
    for (char *u = strtok_r(urls, ",", &save); u != NULL && nurls < URLS_MAX;
         u = strtok_r(NULL, ",", &save))
        list[nurls++] = u;
    snprintf(name, sizeof(name), "cimd node %u", c->self);
    if ((s = natsOptions_Create(&c->opts)) != NATS_OK)
        return s;
    c->nats_opened = true;
    if ((s = natsOptions_SetServers(c->opts, list, nurls)) != NATS_OK ||
        (s = natsOptions_SetName(c->opts, name)) != NATS_OK ||
        (s = natsOptions_SetTimeout(c->opts, CLUSTER_CONNECT_TIMEOUT_MS)) != NATS_OK ||
        (s = natsOptions_SetMaxReconnect(c->opts, -1)) != NATS_OK ||
        (s = natsOptions_SetReconnectWait(c->opts, CLUSTER_RECONNECT_WAIT_MS)) != NATS_OK ||
        (s = natsOptions_SetReconnectJitter(c->opts, CLUSTER_RECONNECT_JITTER_MS,
                                            CLUSTER_RECONNECT_JITTER_MS)) != NATS_OK ||
        (s = natsOptions_SetNoEcho(c->opts, true)) != NATS_OK ||
        (s = natsOptions_UseGlobalMessageDelivery(c->opts, true)) != NATS_OK ||
        (s = natsOptions_SetRetryOnFailedConnect(c->opts, true, on_connected, c)) != NATS_OK ||
        (s = natsOptions_SetDisconnectedCB(c->opts, on_disconnected, c)) != NATS_OK ||
        (s = natsOptions_SetReconnectedCB(c->opts, on_reconnected, c)) != NATS_OK ||
        (s = natsOptions_SetClosedCB(c->opts, on_closed, c)) != NATS_OK ||
        (s = natsOptions_SetErrorHandler(c->opts, on_error, c)) != NATS_OK)
        return s;
    return NATS_OK;
}

/* Connect (or start retrying in the background) and subscribe. A failure other than "no
 * server yet" leaves this node off the bus until it is restarted (logged). */
static void connect_bus(cluster_t *c)
{
    char shown[CONF_STR_MAX];
    natsStatus s;

    redact(c->conf->cluster_url, shown, sizeof(shown));
    if ((s = make_options(c)) != NATS_OK)
        goto fail;
    s = natsConnection_Connect(&c->nc, c->opts);
    if (s == NATS_OK)
        bus_up(c, false);
    else if (s == NATS_NOT_YET_CONNECTED)
        LOG_WARN("cluster: bus down: no NATS server answers at %s yet; retrying every %d ms",
                 shown, CLUSTER_RECONNECT_WAIT_MS);
    else
        goto fail;
    if ((s = natsConnection_Subscribe(&c->sub_hbs, c->nc, c->subj_hbs, on_heartbeat_msg, c)) !=
            NATS_OK ||
        (s = natsConnection_Subscribe(&c->sub_mine, c->nc, c->subj_mine, on_direct_msg, c)) !=
            NATS_OK)
        goto fail;
    return;
fail:
    atomic_store_explicit(&c->bus_up, 0, memory_order_relaxed);
    LOG_ERROR("cluster: cannot use NATS at %s: %s; this node stays off the bus until restarted",
              shown, natsStatus_GetText(s));
}

/* Stop a subscription's flow and let what it already queued be handed over (and freed):
 * messages left in libnats's delivery queues when the library closes are never freed. */
static void drain(natsSubscription *sub)
{
    if (sub != NULL && natsSubscription_Drain(sub) == NATS_OK)
        (void)natsSubscription_WaitForDrainCompletion(sub, CLOSE_DRAIN_MS); /* best effort:
                                                                    stopping either way */
}

/* Close the connection and every handle: the loop then ends. */
static void begin_stop(cluster_t *c)
{
    c->stopping = true;
    atomic_store_explicit(&c->bus_up, 0, memory_order_relaxed);
    drain(c->sub_wm);
    drain(c->sub_out);
    drain(c->sub_hbs);
    drain(c->sub_mine);
    /* Close first: nothing more is read, so no message can be on its way to a
     * subscription while it is destroyed. */
    if (c->nc != NULL)
        natsConnection_Close(c->nc);
    cluster__xh_stop(c);
    cluster__rj_stop(c);
    cluster__onl_stop(c);
    natsSubscription_Destroy(c->sub_hbs);
    natsSubscription_Destroy(c->sub_mine);
    c->sub_hbs = c->sub_mine = NULL;
    natsConnection_Destroy(c->nc); /* its last events may still reach the open mailbox */
    c->nc = NULL;
    natsOptions_Destroy(c->opts);
    c->opts = NULL;
    mbox_close(&c->box, NULL);
    uv_close((uv_handle_t *)&c->hb_timer, NULL);
    uv_close((uv_handle_t *)&c->ping_timer, NULL);
    uv_close((uv_handle_t *)&c->sweep_timer, NULL);
    uv_close((uv_handle_t *)&c->wm_timer, NULL);
}

static void on_wm(uv_timer_t *t)
{
    cluster__xh_tick(t->data);
    cluster__onl_tick(t->data);
}

static void run(void *arg)
{
    cluster_t *c = arg;

    (void)pthread_setname_np(pthread_self(), "cimd-cluster"); /* best effort: for top/perf */
    log_set_thread("cluster");
    connect_bus(c);
    uv_timer_start(&c->hb_timer, on_heartbeat, CLUSTER_HEARTBEAT_MS, CLUSTER_HEARTBEAT_MS);
    uv_timer_start(&c->sweep_timer, on_sweep, CLUSTER_SWEEP_MS, CLUSTER_SWEEP_MS);
    uv_timer_start(&c->ping_timer, on_ping, CLUSTER_HEARTBEAT_MS + CLUSTER_HEARTBEAT_MS / 2,
                   CLUSTER_PING_MS);
    uv_timer_start(&c->wm_timer, on_wm, CLUSTER_WATERMARK_MS, CLUSTER_WATERMARK_MS);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    nats_ReleaseThreadMemory();
}

/* ---- relay ----------------------------------------------------------------------------- */

void cluster_set_relay(cluster_t *c, cluster_relay_cb on_msg, cluster_down_cb on_down,
                       void *ctx)
{
    c->relay_cb = on_msg;
    c->down_cb = on_down;
    c->relay_ctx = ctx;
}

int cluster_relay_send(cluster_t *c, uint32_t node, bool to_home, const void *hdr,
                       size_t hlen, const void *body, size_t blen, bool force)
{
    cl_msg_t *m;
    int rc;

    if (!c->enabled)
        return RC_ECLOSED;
    if (hlen + blen > CLUSTER_RELAY_MAX)
        return RC_ETOOBIG;
    if (!force && atomic_load_explicit(&c->relay_queued, memory_order_relaxed) + hlen + blen >
                      CLUSTER_RELAY_QUEUED_MAX) {
        atomic_fetch_add_explicit(&c->relay_refused, 1, memory_order_relaxed);
        return RC_EFULL; /* the bus (or this thread) is behind: bounded in bytes too */
    }
    m = mem_alloc(sizeof(*m) + hlen + blen);
    memset(m, 0, sizeof(*m));
    m->kind = MSG_RELAY;
    m->to = node;
    m->to_home = to_home;
    m->len = hlen + blen;
    memcpy(m->data, hdr, hlen);
    if (blen > 0)
        memcpy(m->data + hlen, body, blen);
    atomic_fetch_add_explicit(&c->relay_queued, m->len, memory_order_relaxed);
    rc = force ? mbox_send_force(&c->box, &m->node) : mbox_send(&c->box, &m->node);
    if (rc < 0) {
        atomic_fetch_sub_explicit(&c->relay_queued, m->len, memory_order_relaxed);
        if (rc == RC_EFULL)
            atomic_fetch_add_explicit(&c->relay_refused, 1, memory_order_relaxed);
        mem_free(m);
    }
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

cluster_t *cluster_new(const conf_t *conf)
{
    cluster_t *c = mem_calloc(sizeof(*c));

    c->conf = conf;
    c->self = conf->node_id;
    c->enabled = conf->cluster_url[0] != '\0';
    if (c->enabled && conf->ncluster_nodes > 0) {
        c->n = conf->ncluster_nodes;
        memcpy(c->nodes, conf->cluster_nodes, c->n * sizeof(c->nodes[0]));
    } else {
        c->n = 1;
        c->nodes[0] = c->self;
    }
    hist_init(&c->rtt, rtt_le, sizeof(rtt_le) / sizeof(rtt_le[0]));
    c->onl_last = &c->onl_waits;
    cluster__xh_init(c);
    return c;
}

/* What the thread and libnats's callbacks read: fixed before either exists. */
static void set_identity(cluster_t *c)
{
    const char *name = c->conf->cluster_name;
    uv_timeval64_t tv;

    c->start_ms = uv_gettimeofday(&tv) == 0
                      ? (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000
                      : 0;
    if (uv_random(NULL, NULL, &c->instance, sizeof(c->instance), 0, NULL) != 0)
        c->instance = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32);
    snprintf(c->prefix, sizeof(c->prefix), "%s.node.", name);
    snprintf(c->subj_hb, sizeof(c->subj_hb), "%s.node.%u.hb", name, c->self);
    snprintf(c->subj_hbs, sizeof(c->subj_hbs), "%s.node.*.hb", name);
    snprintf(c->subj_mine, sizeof(c->subj_mine), "%s.node.%u.*", name, c->self);
    snprintf(c->subj_pong, sizeof(c->subj_pong), "%s.node.%u.pong", name, c->self);
    snprintf(c->stream, sizeof(c->stream), "%s_out", name);
    snprintf(c->subj_out, sizeof(c->subj_out), "%s.out.*.%u", name, c->self);
    snprintf(c->subj_wms, sizeof(c->subj_wms), "%s.wm.*", name);
    snprintf(c->durable, sizeof(c->durable), "home-%u", c->self);
}

int cluster_start(cluster_t *c)
{
    int rc;

    if (!c->enabled || c->started)
        return 0;
    set_identity(c);
    if ((rc = uv_loop_init(&c->loop)) < 0)
        goto fail;
    c->loop_open = true;
    if ((rc = mbox_init(&c->box, &c->loop, CLUSTER_MBOX_MAX, on_wake)) < 0)
        goto fail;
    c->box.data = c;
    uv_timer_init(&c->loop, &c->hb_timer);
    uv_timer_init(&c->loop, &c->ping_timer);
    uv_timer_init(&c->loop, &c->sweep_timer);
    uv_timer_init(&c->loop, &c->wm_timer);
    c->hb_timer.data = c->ping_timer.data = c->sweep_timer.data = c->wm_timer.data = c;
    if ((rc = uv_thread_create(&c->thread, run, c)) < 0) {
        mbox_close(&c->box, NULL);
        uv_close((uv_handle_t *)&c->hb_timer, NULL);
        uv_close((uv_handle_t *)&c->ping_timer, NULL);
        uv_close((uv_handle_t *)&c->sweep_timer, NULL);
        uv_close((uv_handle_t *)&c->wm_timer, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        goto fail;
    }
    c->started = true;
    LOG_INFO("cluster: node %u of cluster %s (%zu nodes); connecting to NATS", c->self,
             c->conf->cluster_name, c->n);
    return 0;
fail:
    LOG_ERROR("cluster: cannot start: %s", uv_strerror(rc));
    if (c->loop_open && uv_loop_close(&c->loop) == 0)
        c->loop_open = false;
    return rc;
}

void cluster_stop(cluster_t *c)
{
    cl_msg_t *m;
    mbox_node_t *node;
    natsStatus s;

    if (c == NULL || !c->started)
        return;
    m = mem_calloc(sizeof(*m));
    m->kind = MSG_STOP;
    cluster__post(c, m, true);
    uv_thread_join(&c->thread);
    c->started = false;
    /* libnats's own threads (delivery, events) may still run a callback: wait for every one
     * to end before the mailbox they post to goes away. */
    if (c->nats_opened && (s = nats_CloseAndWait(CLOSE_WAIT_MS)) != NATS_OK)
        LOG_WARN("cluster: libnats did not wind down within %d ms: %s", CLOSE_WAIT_MS,
                 natsStatus_GetText(s));
    while ((node = mbox_pop(&c->box)) != NULL)
        drop(c, container_of(node, cl_msg_t, node));
    if (uv_loop_close(&c->loop) != 0)
        LOG_ERROR("cluster: loop did not close cleanly");
    c->loop_open = false;
    LOG_INFO("cluster: stopped");
}

void cluster_free(cluster_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < CONF_CLUSTER_MAX; i++)
        mem_free(c->held_wm[i]);
    mem_free(c);
}
