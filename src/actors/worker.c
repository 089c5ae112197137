#include "actors/worker.h"
#include "actors/ws.h"

#include <malloc.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "actors/relay.h"
#include "actors/session.h"
#include "cim.pb.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define WORKER_MBOX_MAX 65536
#define WORKER_SWEEP_MS 100    /* timeout resolution */
#define WORKER_FLUSH_MS 2000   /* a closing session that cannot flush is cut after this */
#define WORKER_STOP_MS 5000    /* shutdown: the longest we wait for sessions to flush */
#define WORKER_DRAIN_BUDGET 4096 /* mailbox messages per loop turn */
/* Output bytes held by sessions that closed on this worker (slow readers cut off) after
 * which the sweep asks the allocator to give free memory back to the system: a slow
 * reader's backlog must not stay resident, and a trim costs the loop some milliseconds. */
#define WORKER_TRIM_BYTES (16u << 20)

/* The decode scratch holds the largest request a worker decodes into a struct. */
typedef union scratch {
    cim_LoginReq login;
    cim_SendReq send;
    cim_GroupCreateReq group_create;
    cim_GroupUsersReq group_users;
} scratch_t;

uint64_t worker_now(const worker_t *w)
{
    return uv_now(&w->loop);
}

/* ---- session table: sid → session, open addressing with linear probing ------------ */

static size_t slot(const worker_t *w, uint64_t sid)
{
    return (size_t)((sid * 0x9E3779B97F4A7C15ULL) >> 20) & (w->tab_cap - 1);
}

static void tab_insert(worker_t *w, session_t *s)
{
    size_t i = slot(w, s->sid);
    while (w->tab[i] != NULL)
        i = (i + 1) & (w->tab_cap - 1);
    w->tab[i] = s;
}

void worker__add(worker_t *w, session_t *s)
{
    if ((w->nsessions + 1) * 2 > w->tab_cap) {
        session_t **old = w->tab;
        size_t oldcap = w->tab_cap;
        w->tab_cap = oldcap ? oldcap * 2 : 1024;
        w->tab = mem_calloc(w->tab_cap * sizeof(*w->tab));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] != NULL)
                tab_insert(w, old[i]);
        mem_free(old);
    }
    s->sid = ((uint64_t)w->index << 48) | ++w->next_sid;
    tab_insert(w, s);
    w->nsessions++;
    ctr_add(&w->stats.conns_opened, 1);
}

void worker__del(worker_t *w, session_t *s)
{
    size_t i = slot(w, s->sid), j;
    while (w->tab[i] != s) {
        if (w->tab[i] == NULL)
            return;
        i = (i + 1) & (w->tab_cap - 1);
    }
    /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
    w->tab[i] = NULL;
    w->nsessions--;
    ctr_add(&w->stats.conns_closed, 1);
    j = i;
    for (;;) {
        j = (j + 1) & (w->tab_cap - 1);
        if (w->tab[j] == NULL)
            break;
        size_t k = slot(w, w->tab[j]->sid);
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            w->tab[i] = w->tab[j];
            w->tab[j] = NULL;
            i = j;
        }
    }
}

session_t *worker_find(worker_t *w, uint64_t sid)
{
    size_t i;
    if (w->tab_cap == 0)
        return NULL;
    for (i = slot(w, sid); w->tab[i] != NULL; i = (i + 1) & (w->tab_cap - 1))
        if (w->tab[i]->sid == sid)
            return w->tab[i];
    return NULL;
}

/* ---- deadline lists --------------------------------------------------------------- */

void worker__list_del(session_t *s)
{
    slist_t *l = s->list;
    if (l == NULL)
        return;
    if (s->prev)
        s->prev->next = s->next;
    else
        l->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        l->tail = s->prev;
    s->prev = s->next = NULL;
    s->list = NULL;
}

void worker__list_move(worker_t *w, session_t *s, slist_t *l)
{
    (void)w;
    worker__list_del(s);
    s->list = l;
    s->prev = l->tail;
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
}

/* ---- loop ------------------------------------------------------------------------- */

void worker__cork(worker_t *w, session_t *s)
{
    if (s->corked)
        return; /* on the list once: the flush runs once per turn */
    s->corked = true;
    s->cork_next = w->corked;
    w->corked = s;
}

void worker__uncork(worker_t *w, session_t *s)
{
    session_t **p = &w->corked;
    for (; *p != NULL; p = &(*p)->cork_next)
        if (*p == s) {
            *p = s->cork_next;
            break;
        }
    s->corked = false;
}

/* After the loop turn's reads, mailbox and timers: one write per session that has frames. */
static void on_flush(uv_check_t *h)
{
    worker_t *w = h->data;
    session_t *s;
    while ((s = w->corked) != NULL) {
        w->corked = s->cork_next;
        s->corked = false;
        (void)session__flush(s); /* a failure closes s */
    }
}

void worker__maybe_finish(worker_t *w)
{
    if (!w->stopping || w->nsessions > 0 || !ws_worker_idle(w) ||
        uv_is_closing((uv_handle_t *)&w->sweep))
        return;
    uv_close((uv_handle_t *)&w->flush, NULL);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    mbox_close(&w->box, NULL);
    /* Last, once the worker's own handles are closing: h2o_context_dispose runs the loop
     * once more (uv_run NOWAIT) to free its handles, which must find nothing of ours left
     * to call back into this function. */
    ws_worker_close(w);
}

/* The output budget, seen from this worker: publish the heaviest slow reader it holds,
 * shed if the server is over budget and that reader is the heaviest of all, and give
 * memory back once much was freed. */
static void sweep_output(worker_t *w)
{
    uint64_t heaviest = 0;

    for (session_t *s = w->backlog; s != NULL; s = s->bl_next) {
        uint64_t held = session__held(s);
        heaviest = held > heaviest ? held : heaviest;
    }
    atomic_store_explicit(&w->heaviest, heaviest, memory_order_relaxed);
    (void)session__shed(w, false);
    if (w->freed >= WORKER_TRIM_BYTES) {
        w->freed = 0;
        (void)malloc_trim(0);
    }
}

static void on_sweep(uv_timer_t *t)
{
    worker_t *w = t->data;
    const conf_t *c = w->srv->conf;
    uint64_t now = worker_now(w);
    uint64_t login_ms = (uint64_t)c->login_timeout_s * 1000;
    uint64_t idle_ms = (uint64_t)c->heartbeat_s * 3000;
    session_t *s;

    atomic_store_explicit(&w->swept_ms, now, memory_order_relaxed);
    while ((s = w->pending.head) != NULL && now - s->since_ms >= login_ms)
        session_close(s, cim_Code_TIMEOUT, "login timeout");
    while ((s = w->live.head) != NULL && now - s->since_ms >= idle_ms)
        session_close(s, cim_Code_TIMEOUT, "idle timeout");
    while ((s = w->closing.head) != NULL &&
           (now - s->since_ms >= WORKER_FLUSH_MS || (w->stopping && now >= w->stop_deadline_ms)))
        session_abort(s, "could not flush before closing");
    sweep_output(w);
    worker__maybe_finish(w);
}

static void stop_all(worker_t *w)
{
    session_t *s;
    w->stopping = true;
    w->stop_deadline_ms = worker_now(w) + WORKER_STOP_MS;
    while ((s = w->pending.head) != NULL)
        session_close(s, cim_Code_SHUTTING_DOWN, "server shutting down");
    while ((s = w->live.head) != NULL)
        session_close(s, cim_Code_SHUTTING_DOWN, "server shutting down");
    worker__maybe_finish(w);
}

static void handle(worker_t *w, worker_msg_t *m)
{
    session_t *s;
    switch (m->kind) {
    case WORKER_MSG_CONN:
        if (w->stopping) {
            close(m->u.conn.fd);
            acceptor_conn_closed(w->srv->acceptor, &m->u.conn.peer);
        } else if (m->u.conn.ws) {
            ws_adopt(w, m->u.conn.fd, &m->u.conn.peer);
        } else if (session_open(w, m->u.conn.fd, &m->u.conn.peer) < 0) {
            LOG_RL(LOG_LVL_WARN, "cannot adopt a connection");
        }
        break;
    case WORKER_MSG_KICK:
        if ((s = worker_find(w, m->u.kick.sid)) != NULL)
            session_close(s, m->u.kick.code,
                          m->u.kick.reason ? m->u.kick.reason
                                           : "logged in elsewhere with the same device");
        break;
    case WORKER_MSG_STOP:
        stop_all(w);
        break;
    case WORKER_MSG_RELAY:
        relay_take(w, m); /* frees the data */
        break;
    case WORKER_MSG_NODE_DOWN:
        relay_node_down(w, m->u.down.node);
        break;
    case WORKER_MSG_DELIVER:
        for (uint32_t i = 0; i < m->u.deliver.n; i++) {
            delivery_t *d = &m->u.deliver.items[i];
            s = worker_find(w, d->sid);
            if (d->done != NULL)
                session_complete(s, d->done); /* takes the request; s may be NULL */
            else if (s != NULL)
{
                session_push(s, d->type ? d->type : FT_PUSH, d->push);
                ctr_add(&w->stats.pushes, 1);
            }
            blob_unref(d->push);
        }
        mem_free(m->u.deliver.items);
        break;
    default:
        LOG_ERROR("worker: unknown message %d", m->kind);
        break;
    }
    mem_free(m);
}

static void on_wake(mbox_t *box)
{
    worker_t *w = box->data;
    mbox_node_t *n;
    for (int i = 0; i < WORKER_DRAIN_BUDGET; i++) {
        if ((n = mbox_pop(box)) == NULL)
            return;
        handle(w, container_of(n, worker_msg_t, node));
    }
    mbox_rewake(box); /* more waiting: let the sockets have a turn first */
}

static void run(void *arg)
{
    worker_t *w = arg;
    char name[32];
    snprintf(name, sizeof(name), "cimd-%.8s", w->tag); /* the kernel keeps 15 bytes */
    (void)pthread_setname_np(pthread_self(), name); /* best effort: for top/perf */
    log_set_thread(w->tag);
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

worker_t *worker_new(server_t *srv, uint32_t index)
{
    worker_t *w = mem_calloc(sizeof(*w));
    uint32_t max_body = srv->conf->max_body;
    w->srv = srv;
    w->index = index;
    snprintf(w->tag, sizeof(w->tag), "w%u", index);
    w->cc = chan_ctx_new();
    /* Big enough for the largest frame plus a partial next one in the same read. */
    w->rbuf_len = 2 * (FRAME_HDR + max_body + FRAME_TAG);
    w->rbuf = mem_alloc(w->rbuf_len);
    /* Plaintext (max_body) followed by its sealed frame (8 + max_body + 16). */
    w->obuf = mem_alloc(2 * max_body + FRAME_HDR + FRAME_TAG);
    w->scratch = mem_alloc(sizeof(scratch_t));
    return w;
}

int worker_open(worker_t *w)
{
    int rc;
    if ((rc = uv_loop_init(&w->loop)) < 0)
        return rc;
    atomic_store_explicit(&w->swept_ms, uv_now(&w->loop), memory_order_relaxed);
    if ((rc = mbox_init(&w->box, &w->loop, WORKER_MBOX_MAX, on_wake)) < 0)
        return rc;
    w->box.data = w;
    if ((rc = uv_timer_init(&w->loop, &w->sweep)) < 0)
        return rc;
    w->sweep.data = w;
    if ((rc = uv_check_init(&w->loop, &w->flush)) < 0)
        return rc;
    w->flush.data = w;
    if ((rc = uv_check_start(&w->flush, on_flush)) < 0)
        return rc;
    if ((rc = ws_worker_open(w)) < 0)
        return rc;
    return uv_timer_start(&w->sweep, on_sweep, WORKER_SWEEP_MS, WORKER_SWEEP_MS);
}

int worker_start(worker_t *w)
{
    int rc = worker_open(w);
    return rc < 0 ? rc : uv_thread_create(&w->thread, run, w);
}

int worker_post(worker_t *w, worker_msg_t *m, bool force)
{
    return force ? mbox_send_force(&w->box, &m->node) : mbox_send(&w->box, &m->node);
}

void worker_deliveries_free(delivery_t *items, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        blob_unref(items[i].push);
        mem_free(items[i].done);
    }
    mem_free(items);
}

void worker_deliver(worker_t *w, delivery_t *items, uint32_t n)
{
    worker_msg_t *m = mem_calloc(sizeof(*m));
    m->kind = WORKER_MSG_DELIVER;
    m->u.deliver.items = items;
    m->u.deliver.n = n;
    /* Completions are never refused for the bound: what they carry is committed. */
    if (worker_post(w, m, true) != 0) {
        worker_deliveries_free(items, n);
        mem_free(m);
    }
}

void worker_drain(worker_t *w)
{
    mbox_node_t *n;
    /* Messages that raced with the close: connections are closed, the rest dropped. */
    while ((n = mbox_pop(&w->box)) != NULL) {
        worker_msg_t *m = container_of(n, worker_msg_t, node);
        if (m->kind == WORKER_MSG_CONN) {
            close(m->u.conn.fd);
            acceptor_conn_closed(w->srv->acceptor, &m->u.conn.peer);
        } else if (m->kind == WORKER_MSG_DELIVER) {
            worker_deliveries_free(m->u.deliver.items, m->u.deliver.n);
        } else if (m->kind == WORKER_MSG_RELAY) {
            mem_free(m->u.relay.data);
        }
        mem_free(m);
    }
}

void worker_join(worker_t *w)
{
    uv_thread_join(&w->thread);
    worker_drain(w);
    if (uv_loop_close(&w->loop) != 0)
        LOG_ERROR("%s: loop did not close cleanly", w->tag);
}

void worker_free(worker_t *w)
{
    if (w == NULL)
        return;
    chan_ctx_free(w->cc);
    mem_free(w->rbuf);
    mem_free(w->obuf);
    mem_free(w->scratch);
    mem_free(w->tab);
    mem_free(w->rtab);
    mem_free(w);
}
