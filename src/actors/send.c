#include "actors/send.h"

#include <string.h>

#include "actors/cluster.h"
#include "actors/dedup.h"
#include "actors/feed.h"
#include "actors/group.h"
#include "actors/message.h"
#include "actors/router.h"
#include "actors/store.h"
#include "actors/worker.h"
#include "cim.pb.h"
#include "core/frame.h"
#include "core/kv.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

#define TRANSIENT_ROUTE_MAX 64

/* Is @p cmid of @p from a resend (the window, read in @p txn)? A stored message: OK, its
 * id in @p prior. One committed here but not in its timelines yet (DEDUP_PENDING):
 * SERVER_BUSY, no prior id (it must not be answered OK yet).
 * @return 1 (it is: @p code, @p prior, @p why set), 0 (it is not), or rc. */
static int resend_of(server_t *srv, kv_txn_t *txn, const char *app, const char *from,
                     const char *cmid, uint64_t *prior, int *code, const char **why)
{
    int rc = dedup_find(srv->dedup, txn, app, from, cmid, true, prior);

    if (rc == RC_ENOTFOUND)
        return 0;
    if (rc == 0) {
        *code = cim_Code_OK;
        return 1;
    }
    if (rc != DEDUP_PENDING)
        return rc;
    *prior = 0;
    *code = cim_Code_SERVER_BUSY;
    *why = SEND_NOT_APPLIED;
    return 1;
}

int send_check(server_t *srv, const char *app, const char *from, int conv_type,
               const char *to, const char *cmid, bool system, uint64_t *prior, int *code,
               const char **why)
{
    uint8_t key[2 * KV_UKEY_MAX];
    size_t klen, u;
    kv_txn_t *txn = NULL;
    group_t g;
    uint64_t gid;
    /* Without a cluster every SEND that passes goes to the store, which looks the window
     * up first (store__send): looking here too would pay the same cache miss twice per
     * message. Here it is looked up only for a refusal, which a resend must not get. */
    bool store_looks = !cluster_is_enabled(srv->cluster);
    int rc = kv_begin(srv->kv, KV_READ, &txn);

    if (rc < 0)
        return rc;
    *code = cim_Code_OK;
    *prior = 0;
    /* A resend of a stored client_msg_id (@p prior: its id) is answered with the
     * original whatever else holds now; looked up in the same transaction. */
    if (cmid[0] != '\0' && !store_looks &&
        (rc = resend_of(srv, txn, app, from, cmid, prior, code, why)) != 0)
        goto out; /* found, on its way or failed */
    if (conv_type == cim_ConvType_GROUP) {
        rc = group_id_parse(to, &gid) < 0 ? RC_ENOTFOUND : group_load(txn, app, gid, &g);
        if (rc == RC_ENOTFOUND || (rc == 0 && g.dismissed)) {
            *code = cim_Code_NOT_FOUND;
            *why = rc == 0 ? "the group was dismissed" : "unknown group";
            rc = 0;
            goto out;
        }
        if (rc < 0 || system)
            goto out;
        klen = group_key(key, app, gid);
        u = strlen(from);
        memcpy(key + klen, from, u);
        rc = kv_rec_get(txn, KV_DB_MEMBERS, key, klen + u, NULL, NULL);
        if (rc == RC_ENOTFOUND) {
            *code = cim_Code_NOT_MEMBER;
            *why = "you are not a member of that group";
            rc = 0;
        }
        goto out;
    }
    rc = kv_user_get(txn, app, to, NULL);
    if (rc == RC_ENOTFOUND) {
        *code = cim_Code_NOT_FOUND;
        *why = "unknown user";
        rc = 0;
        goto out;
    }
    if (rc < 0 || system)
        goto out;
    /* blocks: the recipient's user key NUL the blocked sender */
    klen = kv_ukey(key, app, to);
    key[klen++] = '\0';
    u = strlen(from);
    memcpy(key + klen, from, u);
    rc = kv_rec_get(txn, KV_DB_BLOCKS, key, klen + u, NULL, NULL);
    if (rc == 0) {
        *code = cim_Code_BLOCKED;
        *why = "the recipient has blocked you";
    }
    rc = rc == RC_ENOTFOUND ? 0 : rc;
out:
    if (rc == 0 && *code != cim_Code_OK && cmid[0] != '\0' && store_looks)
        rc = resend_of(srv, txn, app, from, cmid, prior, code, why);
    kv_abort(txn);
    return rc > 0 ? 0 : rc;
}

int send_resend(server_t *srv, const char *app, const char *from, const char *cmid,
                uint64_t *prior, int *code, const char **why)
{
    kv_txn_t *txn = NULL;
    int rc = kv_begin(srv->kv, KV_READ, &txn);

    *prior = 0;
    *code = cim_Code_OK;
    if (rc < 0)
        return rc;
    rc = resend_of(srv, txn, app, from, cmid, prior, code, why);
    kv_abort(txn);
    return rc > 0 ? 0 : rc;
}

int send_check_home(void *ctx, const char *app, const char *from, const char *to,
                    bool system, const char **why)
{
    uint64_t prior;
    int code;

    if (send_check(ctx, app, from, cim_ConvType_DIRECT, to, "", system, &prior, &code, why) < 0) {
        *why = "storage error at the recipient's home";
        return cim_Code_INTERNAL;
    }
    return code;
}

bool send_has_home(void *ctx, const char *app, const char *name, uint64_t id, bool record)
{
    server_t *srv = ctx;
    const uint8_t *v;
    size_t vlen;
    kv_txn_t *txn = NULL;
    bool has;

    if (kv_begin(srv->kv, KV_READ, &txn) < 0)
        return false;
    has = record ? kv_msg_get(txn, id, &v, &vlen) == 0
                 : feed_has(txn, app, name, id) == 0;
    kv_abort(txn);
    return has;
}

/* Sessions a transient message goes to, gathered per worker. */
typedef struct troute {
    server_t *srv;
    const char *app;
    uint64_t skip_sid;
    delivery_t **items; /* per worker */
    uint32_t *n;
    blob_t *b;
} troute_t;

static void troute_user(troute_t *t, const char *user)
{
    router_ent_t ents[TRANSIENT_ROUTE_MAX];
    size_t n = router_lookup(t->srv->router, t->app, user, ents, TRANSIENT_ROUTE_MAX);
    for (size_t i = 0; i < n && i < TRANSIENT_ROUTE_MAX; i++) {
        uint32_t w = ents[i].worker;
        delivery_t *d;
        if (ents[i].sid == t->skip_sid)
            continue;
        if (t->n[w] % 64 == 0)
            t->items[w] = mem_realloc(t->items[w], (t->n[w] + 64) * sizeof(delivery_t));
        d = &t->items[w][t->n[w]++];
        d->sid = ents[i].sid;
        d->type = FT_PUSH;
        d->push = blob_ref(t->b);
        d->done = NULL;
    }
}

static int troute_member(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                         size_t vlen)
{
    char user[KV_ID_MAX + 1];
    (void)val;
    (void)vlen;
    if (slen == 0 || slen > KV_ID_MAX)
        return 0;
    memcpy(user, sfx, slen);
    user[slen] = '\0';
    troute_user(ctx, user);
    return 0;
}

static void troute_init(troute_t *t, server_t *srv, const char *app, uint64_t skip_sid,
                        blob_t *b)
{
    memset(t, 0, sizeof(*t));
    t->srv = srv;
    t->app = app;
    t->skip_sid = skip_sid;
    t->b = b;
    t->items = mem_calloc(srv->nworkers * sizeof(*t->items));
    t->n = mem_calloc(srv->nworkers * sizeof(*t->n));
}

/* One mailbox message per worker, like the store's completions; frees @p t. */
static void troute_flush(troute_t *t)
{
    for (uint32_t wi = 0; wi < t->srv->nworkers; wi++)
        if (t->n[wi] > 0)
            worker_deliver(t->srv->workers[wi], t->items[wi], t->n[wi]);
    mem_free(t->items);
    mem_free(t->n);
    blob_unref(t->b);
}

/* Every member of group @p group (in this node's copy of it): its sessions here. */
static void troute_group(troute_t *t, const char *group)
{
    uint8_t prefix[GROUP_KEY_MAX];
    kv_txn_t *txn = NULL;
    uint64_t gid;

    if (group_id_parse(group, &gid) == 0 && kv_begin(t->srv->kv, KV_READ, &txn) == 0) {
        (void)kv_rec_scan(txn, KV_DB_MEMBERS, prefix, group_key(prefix, t->app, gid),
                          troute_member, t); /* best effort: transient */
        kv_abort(txn);
    }
}

void send_deliver_home(void *ctx, const char *app, const char *name, bool group,
                       const uint8_t *rec, size_t len)
{
    blob_t *b = blob_new(len);
    troute_t t;

    memcpy(b->data, rec, len);
    troute_init(&t, ctx, app, 0, b);
    if (group)
        troute_group(&t, name);
    else
        troute_user(&t, name);
    troute_flush(&t);
}

static bool is_group_change(uint32_t type)
{
    return type == FT_GROUP_JOIN || type == FT_GROUP_LEAVE || type == FT_GROUP_ADD ||
           type == FT_GROUP_KICK || type == FT_GROUP_DISMISS;
}

int send_post(server_t *srv, store_req_t *q)
{
    cluster_t *cl = srv->cluster;
    uint32_t self = cluster_self(cl);

    if (q->kind == STORE_REQ_SEND) {
        store_send_t *r = (store_send_t *)q;
        if (cluster_is_enabled(cl) && r->conv_type == cim_ConvType_GROUP &&
            cluster_home(cl, r->app, r->to) != self)
            return cluster_xhome_forward(cl, q); /* stored by the group's home, in its order */
        if (r->xhome && r->home != self)
            return cluster_xhome_send(cl, r);
        return store_send(srv->store, r);
    }
    store_op_t *op = (store_op_t *)q;
    if (!cluster_is_enabled(cl))
        return store_op(srv->store, op);
    if ((op->type == FT_CONTACT_ADD || op->type == FT_BLOCK) &&
        cluster_home(cl, op->app, op->target) != self)
        return cluster_xhome_check_op(cl, op);
    if (is_group_change(op->type) && cluster_home(cl, op->app, op->target) != self)
        return cluster_xhome_forward(cl, q); /* made by the group's home, in its order */
    if (op->type == FT_GROUP_CREATE || op->type == FT_GROUP_ADD)
        return cluster_xhome_run_op(cl, op);
    return store_op(srv->store, op);
}

int send_transient_route(server_t *srv, store_send_t *meta, const uint8_t *body, size_t len,
                         uint64_t skip_sid)
{
    troute_t t;
    blob_t *b;

    if (meta->time_ms == 0)
        meta->time_ms = snowflake_now_ms();
    if ((b = message_encode(meta, body, len)) == NULL)
        return RC_EINVAL;
    troute_init(&t, srv, meta->app, skip_sid, b);
    if (meta->conv_type == cim_ConvType_GROUP) {
        /* every member, the sender's other devices included; in a cluster those homed on
         * other nodes too, through their homes */
        troute_group(&t, meta->to);
        cluster_group_transient(srv->cluster, meta->app, meta->to, b->data, b->len);
    } else {
        troute_user(&t, meta->to);
        if (strcmp(meta->to, meta->from) != 0)
            troute_user(&t, meta->from);
    }
    troute_flush(&t);
    return 0;
}
