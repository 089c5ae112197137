#include "actors/store.h"
#include "actors/store_int.h"

#include <pthread.h>
#include <string.h>

#include "actors/cluster.h"
#include "actors/dedup.h"
#include "actors/feed.h"
#include "actors/message.h"
#include "actors/router.h"
#include "actors/webhook.h"
#include "actors/worker.h"
#include "actors/xhome.h"
#include "cim.pb.h"
#include "core/blob.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "core/str.h"

#define ROUTE_MAX 64         /* sessions looked up per user per message */
#define RETENTION_EVERY_MS (3600 * 1000)

typedef struct store_ackreq {
    store_req_t hdr;
    uint64_t up_to;
    char app[KV_ID_MAX + 1];
    char user[KV_ID_MAX + 1];
    char device[KV_ID_MAX + 1];
} store_ackreq_t;

/* ---- applying a batch --------------------------------------------------------------- */

static int apply_one(store_t *st, kv_txn_t *txn, store_req_t *q)
{
    int rc;

    switch (q->kind) {
    case STORE_REQ_LOGIN: {
        store_login_t *l = (store_login_t *)q;
        uint8_t key[KV_UKEY_MAX];
        size_t klen = kv_ukey(key, l->app, l->user);
        uint32_t flags = 0;
        /* Look before writing: a known user's login dirties no page (a bot's first BOT
         * login one, once). */
        rc = kv_user_flags(txn, l->app, l->user, &flags);
        if (rc == 0 && (flags & KV_USER_DISABLED)) {
            l->code = cim_Code_UNAUTHORIZED; /* disabled since the worker looked */
            return 0;
        }
        if (rc == RC_ENOTFOUND)
            rc = kv_user_add(txn, l->app, l->user, snowflake_now_ms());
        if (rc == 0 && l->kind == cim_DeviceKind_BOT && !(flags & KV_USER_BOT))
            rc = kv_user_set_flags(txn, l->app, l->user, flags | KV_USER_BOT);
        if (rc == 0)
            rc = feed_last(txn, l->app, l->user, &l->latest);
        if (rc == 0)
            rc = kv_cursor_get(txn, key, klen, l->device, &l->acked);
        l->code = cim_Code_OK;
        return rc;
    }
    case STORE_REQ_SEND:
        return store__send(st, txn, (store_send_t *)q);
    case STORE_REQ_APPLY:
        return store__apply(st, txn, (store_apply_t *)q);
    case STORE_REQ_OP:
        return store__op(st, txn, (store_op_t *)q);
    case STORE_REQ_REJOIN:
        return store__rejoin(st, txn, (store_rejoin_t *)q);
    case STORE_REQ_ACK: {
        store_ackreq_t *a = (store_ackreq_t *)q;
        uint8_t key[KV_UKEY_MAX];
        size_t klen = kv_ukey(key, a->app, a->user);
        return kv_cursor_put(txn, key, klen, a->device, a->up_to);
    }
    default:
        return 0;
    }
}

static void drop_fanouts(store_t *st)
{
    for (size_t i = 0; i < st->nfan; i++) {
        blob_unref(st->fan[i].blob);
        mem_free(st->fan[i].users);
    }
    st->nfan = 0;
}

void store__fanout(store_t *st, blob_t *b, uint16_t type, const char *app,
                   const store_uid_t *users, size_t nusers, uint64_t skip_sid)
{
    fanout_t *f;
    if (st->nfan == st->capfan) {
        st->capfan = st->capfan ? st->capfan * 2 : 256;
        st->fan = mem_realloc(st->fan, st->capfan * sizeof(*st->fan));
    }
    f = &st->fan[st->nfan++];
    f->req = st->cur;
    f->blob = blob_ref(b);
    f->type = type;
    f->skip_sid = skip_sid;
    str_copy(f->app, sizeof(f->app), app);
    f->users = mem_alloc((nusers ? nusers : 1) * sizeof(*f->users));
    memcpy(f->users, users, nusers * sizeof(*f->users));
    f->nusers = nusers;
    f->hook = false;
}

/* One write transaction for the whole batch. @return 0 when committed. */
static int apply(store_t *st, size_t n)
{
    kv_txn_t *txn = NULL;
    uint64_t last = 0, t0, xapplied = st->xapplied;
    int rc, tries = 0;

again:
    st->xapplied = xapplied;
    if ((rc = kv_begin(st->srv->kv, KV_WRITE, &txn)) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        st->cur = i;
        if ((rc = apply_one(st, txn, st->batch[i])) < 0) {
            kv_abort(txn);
            goto fail;
        }
    }
    if ((rc = store__conv_flush(st, txn)) < 0) {
        kv_abort(txn);
        goto fail;
    }
    /* The generator's position, recorded when it moved: restarts continue above it. */
    last = snowflake_last(&st->ids);
    if (last > st->last_recorded && (rc = kv_last_id_put(txn, last)) < 0) {
        kv_abort(txn);
        goto fail;
    }
    if (st->xapplied > st->xapplied_saved &&
        (rc = kv_meta_u64_put(txn, STORE_META_XAPPLIED, st->xapplied)) < 0) {
        kv_abort(txn);
        goto fail;
    }
    t0 = uv_hrtime();
    if ((rc = kv_commit(txn)) < 0)
        goto fail;
    hist_observe(&st->stats.commit_seconds, (double)(uv_hrtime() - t0) / 1e9);
    hist_observe(&st->stats.batch_size, (double)n);
    dedup_committed(st->srv->dedup, last); /* workers may now answer resends of them */
    st->xapplied_saved = st->xapplied;
    if (last > st->last_recorded)
        st->last_recorded = last;
    store__conv_reset(st);
    ctr_add(&st->stats.batches, 1);
    ctr_add(&st->stats.requests, n);
    if (n > st->max_batch)
        st->max_batch = n;
    return 0;
fail:
    drop_fanouts(st);
    store__conv_reset(st);
    store__xq_drop(st);
    st->xapplied = xapplied;
    if (rc == RC_EMAPFULL && tries++ < 8 && kv_grow(st->srv->kv) == 0)
        goto again;
    LOG_ERROR("store: batch of %zu requests failed: %s", n, rc_str(rc));
    return rc;
}

/* ---- completing a batch ------------------------------------------------------------- */

static void out_add(store_t *st, uint32_t worker, uint64_t sid, uint16_t type, blob_t *push,
                    store_req_t *done)
{
    outbox_t *o = &st->out[worker];
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->items = mem_realloc(o->items, o->cap * sizeof(*o->items));
    }
    o->items[o->n].sid = sid;
    o->items[o->n].type = type;
    o->items[o->n].push = push ? blob_ref(push) : NULL;
    o->items[o->n].done = done;
    o->n++;
}

/* Push a committed fanout to every online device of its users but the skipped session. A
 * user's message (f->hook) whose recipient has no device online — the sender's own
 * session does not count — is a webhook event. */
static void route(store_t *st, const fanout_t *f)
{
    router_ent_t local[ROUTE_MAX], *ents = local;
    size_t cap = ROUTE_MAX;
    uint64_t now = f->hook ? snowflake_now_ms() : 0;
    for (size_t u = 0; u < f->nusers; u++) {
        size_t online = 0;
        size_t n = router_lookup(st->srv->router, f->app, f->users[u], ents, cap);
        while (n > cap) {
            /* A user with more live devices than the usual buffer: look again with room
             * for all of them (pushes never skip a device). */
            cap = n * 2;
            if (ents != local)
                mem_free(ents);
            ents = mem_alloc(cap * sizeof(*ents));
            n = router_lookup(st->srv->router, f->app, f->users[u], ents, cap);
        }
        for (size_t i = 0; i < n; i++) {
            if (ents[i].sid != f->skip_sid) {
                out_add(st, ents[i].worker, ents[i].sid, f->type, f->blob, NULL);
                online++;
            }
        }
        if (f->hook && online == 0 && strcmp(f->users[u], f->from) != 0)
            webhook_emit_message(st->srv->webhook, f->app, f->users[u], f->blob, now);
    }
    if (ents != local)
        mem_free(ents);
}

/* A request of a batch that did not commit answers INTERNAL. */
static void fail_request(store_req_t *q)
{
    switch (q->kind) {
    case STORE_REQ_LOGIN:
        ((store_login_t *)q)->code = cim_Code_INTERNAL;
        break;
    case STORE_REQ_SEND: {
        store_send_t *r = (store_send_t *)q;
        r->code = cim_Code_INTERNAL;
        mem_free(r->xmsg); /* nothing of it was committed */
        r->xmsg = NULL;
        break;
    }
    case STORE_REQ_APPLY:
        ((store_apply_t *)q)->result = RC_ESTORE;
        break;
    case STORE_REQ_REJOIN:
        ((store_rejoin_t *)q)->rc = RC_ESTORE;
        break;
    case STORE_REQ_OP: {
        store_op_t *o = (store_op_t *)q;
        o->code = cim_Code_INTERNAL;
        snprintf(o->reason, sizeof(o->reason), "storage failure; nothing changed");
        break;
    }
    default:
        break;
    }
}

/* In a cluster, the requests the cluster answers: those whose message must be in the
 * timelines of other homes first (a group's message or change, a RECALL), and those another
 * node forwarded here. */
static bool answered_by_cluster(const store_t *st, const store_req_t *q, bool committed)
{
    const store_send_t *r = (const store_send_t *)q;
    const store_op_t *op = (const store_op_t *)q;

    if (!cluster_is_enabled(st->srv->cluster))
        return false;
    if (q->kind == STORE_REQ_SEND)
        return r->xorigin != 0 || (committed && r->wait_apply);
    if (q->kind == STORE_REQ_OP)
        return op->xorigin != 0 || (committed && op->wait_id != 0 && op->code == cim_Code_OK);
    return false;
}

/* After the commit (or its failure): answer every request and push what it made, in batch
 * order, then hand each worker its share in one mailbox message. */
static void complete(store_t *st, size_t n, bool committed)
{
    size_t f = 0;
    for (size_t i = 0; i < n; i++) {
        store_req_t *q = st->batch[i];
        for (; f < st->nfan && st->fan[f].req == i; f++)
            if (committed)
                route(st, &st->fan[f]);
        if (committed)
            store__xq_flush(st, i); /* the merge appends them, in id order */
        if (q->kind == STORE_REQ_SEND && committed && ((store_send_t *)q)->xmsg != NULL) {
            /* answered by the cluster once JetStream has it (its only copy) */
            ((store_send_t *)q)->last_copy = true;
            cluster_xhome_committed(st->srv->cluster, (store_send_t *)q);
            continue;
        }
        if (answered_by_cluster(st, q, committed)) {
            /* after its own message, just handed over (store__xq_flush) */
            if (!committed)
                fail_request(q);
            cluster_xhome_done(st->srv->cluster, q);
            continue;
        }
        if (q->done != NULL && !committed)
            fail_request(q);
        if (q->done != NULL) {
            q->done(q);
            continue;
        }
        switch (q->kind) {
        case STORE_REQ_LOGIN:
            if (!committed)
                fail_request(q);
            out_add(st, ((store_login_t *)q)->worker, ((store_login_t *)q)->sid, 0, NULL, q);
            break;
        case STORE_REQ_SEND:
            if (!committed)
                fail_request(q);
            out_add(st, ((store_send_t *)q)->worker, ((store_send_t *)q)->sid, 0, NULL, q);
            break;
        case STORE_REQ_OP:
            if (!committed)
                fail_request(q);
            out_add(st, ((store_op_t *)q)->worker, ((store_op_t *)q)->sid, 0, NULL, q);
            break;
        default:
            mem_free(q);
            break;
        }
    }
    drop_fanouts(st);
    for (uint32_t w = 0; w < st->srv->nworkers; w++) {
        outbox_t *o = &st->out[w];
        if (o->n == 0)
            continue;
        worker_deliver(st->srv->workers[w], o->items, o->n);
        o->items = NULL;
        o->n = o->cap = 0;
    }
}

/* ---- retention ---------------------------------------------------------------------- */

static void retention_step(store_t *st)
{
    uint32_t days = st->srv->conf->retention_days;
    uint64_t now = snowflake_now_ms(), cutoff_ms, cutoff;
    kv_txn_t *txn = NULL;
    size_t removed = 0;
    int rc;

    if (days == 0 || !st->retaining)
        return;
    cutoff_ms = now - (uint64_t)days * 86400000ULL;
    if (cutoff_ms <= SNOWFLAKE_EPOCH_MS) {
        st->retaining = false;
        return;
    }
    cutoff = snowflake_first_of_ms(cutoff_ms);
    if ((rc = kv_begin(st->srv->kv, KV_WRITE, &txn)) < 0)
        goto fail;
    if ((rc = kv_retention_step(txn, &st->rpos, cutoff, STORE_RETENTION_BUDGET, &removed)) < 0) {
        kv_abort(txn);
        goto fail;
    }
    if ((rc = kv_commit(txn)) < 0)
        goto fail;
    if (removed > 0)
        LOG_DEBUG("store: retention removed %zu records", removed);
    if (st->rpos.phase == 3) {
        st->retaining = false;
        memset(&st->rpos, 0, sizeof(st->rpos));
    }
    return;
fail:
    if (rc == RC_EMAPFULL)
        (void)kv_grow(st->srv->kv); /* retried on the next step */
    LOG_WARN("store: retention step failed: %s", rc_str(rc));
}

static void on_retention(uv_timer_t *t)
{
    store_t *st = t->data;
    if (!st->retaining) {
        st->retaining = true;
        memset(&st->rpos, 0, sizeof(st->rpos));
    }
    retention_step(st);
    /* Keep stepping while the pass lasts, yielding to the mailbox between steps. */
    if (st->retaining)
        uv_timer_start(&st->retention, on_retention, 10, RETENTION_EVERY_MS);
}

/* ---- the loop ----------------------------------------------------------------------- */

#define DEDUP_EXPIRE_MS 60000

/* Drop dedup generations past the window, at most once a minute. */
static void expire_dedup(store_t *st)
{
    uint64_t now = uv_now(&st->loop);
    if (now - st->dedup_expired_ms < DEDUP_EXPIRE_MS)
        return;
    st->dedup_expired_ms = now;
    dedup_expire(st->srv->dedup, snowflake_now_ms());
}

/* ---- the cluster ------------------------------------------------------------------- */

void store__ids_above(store_t *st, uint64_t floor)
{
    snowflake_t f;

    if (floor == 0 || snowflake_init(&f, st->ids.node, floor) < 0)
        return;
    if (f.last_ms > st->ids.last_ms || (f.last_ms == st->ids.last_ms && f.seq > st->ids.seq))
        st->ids = f;
}

/* Tell the cluster below which id this store will never issue another: everything it
 * committed before was handed to the cluster (complete, earlier on this thread). The
 * generator is held to it, so a clock that steps back cannot go under it. */
static void on_horizon(uv_timer_t *t)
{
    store_t *st = t->data;
    uint64_t h = snowflake_first_of_ms(snowflake_now_ms()), last = snowflake_last(&st->ids);

    if (h <= last)
        h = last + 1;
    store__ids_above(st, h - 1);
    cluster_xhome_horizon(st->srv->cluster, h);
}

typedef struct outbox_walk {
    store_t *st;
    kv_txn_t *txn;
    size_t n;
    uint64_t id;   /* the entry being handed over */
    size_t copies; /* ... its copies, and how many were handed over */
    size_t done;
} outbox_walk_t;

static int count_copy(void *ctx, const uint8_t *val, size_t len)
{
    (void)val;
    (void)len;
    ((outbox_walk_t *)ctx)->copies++;
    return 0;
}

/* One copy of an outbox entry back to the cluster, as if just committed (nobody to
 * answer). */
static int republish_one(void *ctx, const uint8_t *val, size_t len)
{
    outbox_walk_t *o = ctx;
    xhome_msg_t x;
    store_send_t *r;

    if (xhome_parse(val, len, &x) < 0 || x.id != o->id)
        return RC_EPROTO;
    r = store_send_new(0);
    r->worker = STORE_NO_WORKER;
    r->xhome = true;
    r->home = x.home;
    r->msg_id = o->id;
    /* the cluster asks the homes before publishing it again (cluster_rejoin.c) */
    r->rejoin = true;
    r->last_copy = ++o->done == o->copies;
    r->xmsg = mem_alloc(len);
    memcpy(r->xmsg, val, len);
    r->xmsg_len = len;
    cluster_xhome_committed(o->st->srv->cluster, r);
    return 0;
}

/* One outbox entry (every copy of one message, xhome.h) back to the cluster. */
static int republish(void *ctx, uint64_t id, const uint8_t *val, size_t len)
{
    outbox_walk_t *o = ctx;

    o->id = id;
    o->copies = o->done = 0;
    if (xhome_outbox_each(val, len, count_copy, o) != 0 ||
        xhome_outbox_each(val, len, republish_one, o) != 0)
        LOG_ERROR("store: outbox entry %llu is unreadable: skipped", (unsigned long long)id);
    else
        o->n++;
    return 0;
}

/* The cluster thread runs: hand it the outbox (in id order, before anything new), then
 * report the horizon every CLUSTER_WATERMARK_MS. */
static void xstart(store_t *st)
{
    outbox_walk_t o = {st, NULL, 0, 0, 0, 0};
    int rc;

    if (st->xstarted)
        return;
    st->xstarted = true;
    if ((rc = kv_begin(st->srv->kv, KV_READ, &o.txn)) == 0) {
        rc = kv_outbox_each(o.txn, republish, &o);
        kv_abort(o.txn);
    }
    if (rc < 0)
        LOG_ERROR("store: cannot read the outbox: %s", rc_str(rc));
    else if (o.n > 0)
        LOG_INFO("store: %zu messages of the outbox to publish again", o.n);
    on_horizon(&st->horizon);
    uv_timer_start(&st->horizon, on_horizon, CLUSTER_WATERMARK_MS, CLUSTER_WATERMARK_MS);
}

uint64_t store_pace_wait(uint32_t pace_ms, double busy, uint64_t since_ms)
{
    if (pace_ms == 0 || busy <= STORE_PACE_BUSY || since_ms >= pace_ms)
        return 0;
    return pace_ms - since_ms;
}

/* Drain the mailbox: batches until it is empty (or a stop). */
static void drain(store_t *st)
{
    mbox_t *box = &st->box;
    mbox_node_t *node;
    bool stop = false;

    uint64_t t0 = uv_hrtime();

    st->last_drain_ms = uv_now(&st->loop);
    for (;;) {
        size_t n = 0;
        /* Drain what is pending, up to a batch: the batch grows with the backlog, which is
         * what makes group commit pay. */
        while (n < STORE_BATCH_MAX && (node = mbox_pop(box)) != NULL) {
            store_req_t *q = container_of(node, store_req_t, node);
            if (q->kind == STORE_REQ_STOP) {
                stop = true;
                mem_free(q);
                continue;
            }
            if (q->kind == STORE_REQ_XSTART) {
                if (!stop)
                    xstart(st);
                mem_free(q);
                continue;
            }
            st->batch[n++] = q;
        }
        if (n == 0)
            break;
        complete(st, n, apply(st, n) == 0);
        expire_dedup(st);
        if (n < STORE_BATCH_MAX)
            break;
    }
    /* the share of time spent here, per window, for pacing */
    uint64_t t1 = uv_hrtime();
    st->win_busy_ns += t1 - t0;
    if (t1 - st->win_start_ns >= STORE_BUSY_WINDOW_MS * 1000000ULL) {
        st->busy = (double)st->win_busy_ns / (double)(t1 - st->win_start_ns);
        st->win_start_ns = t1;
        st->win_busy_ns = 0;
    }
    if (stop) {
        uv_timer_stop(&st->retention);
        uv_close((uv_handle_t *)&st->retention, NULL);
        uv_timer_stop(&st->pace);
        uv_close((uv_handle_t *)&st->pace, NULL);
        uv_close((uv_handle_t *)&st->horizon, NULL);
        mbox_close(box, NULL);
    }
}

static void on_pace(uv_timer_t *t)
{
    drain(t->data);
}

static void on_wake(mbox_t *box)
{
    store_t *st = box->data;
    uint64_t wait;

    if (uv_is_active((uv_handle_t *)&st->pace))
        return; /* the pace timer drains */
    uv_update_time(&st->loop);
    wait = store_pace_wait(st->srv->conf->commit_pace_ms, st->busy,
                           uv_now(&st->loop) - st->last_drain_ms);
    if (wait > 0) {
        /* Left queued: the mailbox stays awake (no producer sends a wake-up meanwhile). */
        ctr_add(&st->stats.paced, 1);
        uv_timer_start(&st->pace, on_pace, wait, 0);
        return;
    }
    drain(st);
}

static void run(void *arg)
{
    store_t *st = arg;
    (void)pthread_setname_np(pthread_self(), "cimd-store"); /* best effort: for top/perf */
    log_set_thread("store");
    uv_run(&st->loop, UV_RUN_DEFAULT);
    LOG_INFO("store: %llu batches, %llu requests, %llu messages, largest batch %llu",
             (unsigned long long)ctr_get(&st->stats.batches),
             (unsigned long long)ctr_get(&st->stats.requests),
             (unsigned long long)ctr_get(&st->stats.messages), (unsigned long long)st->max_batch);
}

static const double BATCH_LE[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
static const double COMMIT_LE[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

const store_stats_t *store_stats(const store_t *st)
{
    return &st->stats;
}

store_t *store_new(server_t *srv)
{
    store_t *st = mem_calloc(sizeof(*st));
    hist_init(&st->stats.batch_size, BATCH_LE, sizeof(BATCH_LE) / sizeof(BATCH_LE[0]));
    hist_init(&st->stats.commit_seconds, COMMIT_LE, sizeof(COMMIT_LE) / sizeof(COMMIT_LE[0]));
    st->srv = srv;
    srv->dedup = dedup_new(srv->conf->dedup_window_h);
    st->batch = mem_alloc(STORE_BATCH_MAX * sizeof(*st->batch));
    return st;
}

/* Ids continue above everything ever issued: the recorded last id, and the newest message
 * in case the record lags (it is written in the same transaction, so it should not). */
static int seed_ids(store_t *st)
{
    kv_txn_t *txn = NULL;
    uint64_t last = 0, newest = 0;
    int rc;

    size_t loaded = 0;
    uint64_t t0 = snowflake_now_ms();

    if ((rc = kv_begin(st->srv->kv, KV_READ, &txn)) < 0)
        return rc;
    if ((rc = kv_last_id_get(txn, &last)) == 0)
        rc = kv_msg_last_id(txn, &newest);
    if (rc == 0)
        rc = kv_meta_u64_get(txn, STORE_META_XAPPLIED, &st->xapplied);
    st->xapplied_saved = st->xapplied;
    /* The dedup window, from the log's tail, before anything is served. */
    if (rc == 0)
        rc = dedup_load(st->srv->dedup, txn, t0, &loaded);
    kv_abort(txn);
    if (rc == 0 && loaded > 0)
        LOG_INFO("store: dedup window of %u h rebuilt from the log: %zu messages in %llu ms",
                 st->srv->conf->dedup_window_h, loaded,
                 (unsigned long long)(snowflake_now_ms() - t0));
    if (rc < 0)
        return rc;
    st->last_recorded = last > newest ? last : newest;
    return snowflake_init(&st->ids, st->srv->conf->node_id, st->last_recorded);
}

int store_start(store_t *st)
{
    int rc;
    if ((rc = seed_ids(st)) < 0)
        return rc;
    st->out = mem_calloc(st->srv->nworkers * sizeof(*st->out));
    if ((rc = uv_loop_init(&st->loop)) < 0)
        return rc;
    if ((rc = mbox_init(&st->box, &st->loop, STORE_QUEUE_MAX, on_wake)) < 0)
        goto fail_loop;
    st->box.data = st;
    st->box_ready = true;
    if ((rc = uv_timer_init(&st->loop, &st->retention)) < 0)
        goto fail_box;
    st->retention.data = st;
    if ((rc = uv_timer_init(&st->loop, &st->pace)) < 0) {
        uv_close((uv_handle_t *)&st->retention, NULL);
        goto fail_box;
    }
    st->pace.data = st;
    uv_timer_init(&st->loop, &st->horizon);
    st->horizon.data = st;
    cluster_xhome_set_released(st->srv->cluster, st->xapplied);
    if (st->srv->conf->retention_days > 0)
        uv_timer_start(&st->retention, on_retention, 1000, RETENTION_EVERY_MS);
    if ((rc = uv_thread_create(&st->thread, run, st)) < 0) {
        uv_close((uv_handle_t *)&st->retention, NULL);
        uv_close((uv_handle_t *)&st->pace, NULL);
        uv_close((uv_handle_t *)&st->horizon, NULL);
        goto fail_box;
    }
    st->started = true;
    return 0;
fail_box:
    mbox_close(&st->box, NULL);
    uv_run(&st->loop, UV_RUN_DEFAULT);
fail_loop:
    (void)uv_loop_close(&st->loop); /* only closed handles were on it */
    return rc;
}

store_send_t *store_send_new(size_t body_len)
{
    store_send_t *r = mem_calloc(sizeof(*r) + body_len);
    r->hdr.kind = STORE_REQ_SEND;
    r->body_len = (uint32_t)body_len;
    return r;
}

int store_send(store_t *st, store_send_t *req)
{
    req->hdr.kind = STORE_REQ_SEND;
    return mbox_send(&st->box, &req->hdr.node);
}

int store_apply(store_t *st, store_apply_t *a)
{
    a->hdr.kind = STORE_REQ_APPLY;
    return mbox_send_force(&st->box, &a->hdr.node);
}

int store_rejoin(store_t *st, store_rejoin_t *q)
{
    q->hdr.kind = STORE_REQ_REJOIN;
    return mbox_send_force(&st->box, &q->hdr.node);
}

int store_xhome_start(store_t *st)
{
    store_req_t *r = mem_calloc(sizeof(*r));
    int rc;

    r->kind = STORE_REQ_XSTART;
    if ((rc = mbox_send_force(&st->box, &r->node)) < 0)
        mem_free(r);
    return rc;
}

int store_ack(store_t *st, const char *app, const char *user, const char *device,
              uint64_t up_to)
{
    store_ackreq_t *a = mem_calloc(sizeof(*a));
    int rc;
    a->hdr.kind = STORE_REQ_ACK;
    a->up_to = up_to;
    str_copy(a->app, sizeof(a->app), app);
    str_copy(a->user, sizeof(a->user), user);
    str_copy(a->device, sizeof(a->device), device);
    if ((rc = mbox_send_force(&st->box, &a->hdr.node)) < 0)
        mem_free(a);
    return rc;
}

store_op_t *store_op_new(size_t nusers)
{
    store_op_t *op = mem_calloc(sizeof(*op) + nusers * sizeof(op->users[0]));
    op->hdr.kind = STORE_REQ_OP;
    op->nusers = (uint32_t)nusers;
    return op;
}

int store_op(store_t *st, store_op_t *op)
{
    op->hdr.kind = STORE_REQ_OP;
    return mbox_send(&st->box, &op->hdr.node);
}

int store_login(store_t *st, store_login_t *req)
{
    req->hdr.kind = STORE_REQ_LOGIN;
    return mbox_send(&st->box, &req->hdr.node);
}

void store_stop(store_t *st)
{
    store_req_t *r;
    if (!st->started)
        return;
    r = mem_calloc(sizeof(*r));
    r->kind = STORE_REQ_STOP;
    if (mbox_send_force(&st->box, &r->node) < 0)
        mem_free(r);
    uv_thread_join(&st->thread);
    st->started = false;
    if (uv_loop_close(&st->loop) != 0)
        LOG_ERROR("store: loop did not close cleanly");
}

void store_free(store_t *st)
{
    mbox_node_t *node;

    if (st == NULL)
        return;
    /* What the cluster thread queued after the store stopped (it runs until after the
     * store): every producer is done by now. */
    while (st->box_ready && (node = mbox_pop(&st->box)) != NULL) {
        store_req_t *q = container_of(node, store_req_t, node);
        fail_request(q);
        if (q->done != NULL)
            q->done(q); /* its owner frees it (the cluster's: stopped, so dropped) */
        else
            mem_free(q);
    }
    if (st->out != NULL) {
        for (uint32_t w = 0; w < st->srv->nworkers; w++)
            worker_deliveries_free(st->out[w].items, st->out[w].n);
        mem_free(st->out);
    }
    mem_free(st->batch);
    store__xq_drop(st);
    mem_free(st->xq);
    drop_fanouts(st);
    mem_free(st->fan);
    store__conv_free(st);
    dedup_free(st->srv->dedup);
    st->srv->dedup = NULL;
    mem_free(st);
}
