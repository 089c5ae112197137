/* admin_api: the application API under /v1/apps/{app}/ (docs/ADMIN-API.md). The caller
 * (admin.c) has authenticated the app. Reads run here in short read-only transactions;
 * writes go to the store like a session's and are answered after the commit. */
#include <openssl/rand.h>
#include <pb_decode.h>
#include <string.h>
#include <time.h>

#include "actors/admin_int.h"
#include "actors/admin_parse.h"
#include "actors/cluster.h"
#include "actors/feed.h"
#include "actors/group.h"
#include "actors/router.h"
#include "actors/send.h"
#include "cim.pb.h"
#include "core/frame.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

#define DEVICES_MAX 64      /* devices listed per user */
#define MEMBERS_PAGE 1000   /* GroupCreateReq's bound on members, kept for the API */

static const char *const KINDS[] = {"UNSPECIFIED", "MOBILE", "DESKTOP", "WEB", "BOT"};

#define bad(req, ...) admin_error((req), 400, "BAD_REQUEST", __VA_ARGS__)

static json_t *id_str(uint64_t id)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)id);
    return json_string(buf);
}

/* ---- messages ------------------------------------------------------------------------- */

static void finish_send(admin_call_t *c, h2o_req_t *req, store_req_t *q)
{
    store_send_t *r = (store_send_t *)q;
    if (r->code == cim_Code_OK)
        LOG_INFO("admin: %s/%s sent message %llu to %s (%s)", c->app, r->from,
                 (unsigned long long)r->msg_id, r->to,
                 r->conv_type == cim_ConvType_GROUP ? "group" : "user");
    if (req != NULL) {
        if (r->code == cim_Code_OK)
            (void)admin_json(req, 200,
                             json_pack("{s:o, s:I, s:s}", "msg_id", id_str(r->msg_id), "time_ms",
                                       (json_int_t)r->time_ms, "client_msg_id", r->cmid));
        else
            (void)admin_refuse(req, r->code,
                               r->reason[0] != '\0'              ? r->reason
                               : r->code == cim_Code_NOT_MEMBER ? "the sender is not a member"
                               : r->code == cim_Code_NOT_FOUND  ? "unknown group"
                                                                : "storage failure; not stored");
    }
    mem_free(r);
}

static int post_message(admin_t *a, h2o_req_t *req, const char *app)
{
    char why[256], genid[KV_ID_MAX + 1];
    const char *reason = "";
    uint8_t rnd[8];
    uint64_t prior = 0;
    admin_msg_t m;
    store_send_t *r;
    cluster_t *cl = a->srv->cluster;
    uint32_t home = cluster_self(cl);
    bool xhome = false;
    int code, rc;

    rc = admin_msg_parse(req->entity.base, req->entity.base ? req->entity.len : 0,
                         a->srv->conf->max_msg_bytes, &m, why, sizeof(why));
    if (rc != 0)
        return admin_error(req, rc, rc == 413 ? "TOO_LARGE" : "BAD_REQUEST", "%s", why);
    if (cluster_is_enabled(cl) && cluster_home(cl, app, m.from) != cluster_self(cl)) {
        /* A message is originated by its sender's home (docs/SCALING.md): the sender's
         * record, sessions and dedup are there. */
        snprintf(why, sizeof(why), "in a cluster, POST a message to its sender's home node "
                 "(node %u)", cluster_home(cl, app, m.from));
        rc = admin_refuse(req, cim_Code_SERVER_BUSY, why);
        goto out;
    }
    if (m.conv_type == cim_ConvType_DIRECT && cluster_is_enabled(cl)) {
        xhome = true;
        home = cluster_home(cl, app, m.to);
    }
    if (m.cmid[0] == '\0' && !m.transient) {
        /* No dedup asked for: an id of its own, unique to this call. */
        (void)RAND_bytes(rnd, sizeof(rnd));
        snprintf(genid, sizeof(genid), "api-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
                 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        memcpy(m.cmid, genid, sizeof(m.cmid));
    }
    {
        kv_txn_t *txn = NULL;
        if ((rc = kv_begin(a->srv->kv, KV_READ, &txn)) == 0) {
            rc = kv_user_get(txn, app, m.from, NULL);
            kv_abort(txn);
        }
        if (rc == RC_ENOTFOUND) {
            rc = admin_error(req, 404, "NOT_FOUND", "unknown sender '%s'", m.from);
            goto out;
        }
    }
    /* a recipient of another home: its home checks it (cluster_xhome_send), only the dedup
     * is this home's */
    code = cim_Code_OK;
    if (rc == 0 && home != cluster_self(cl))
        rc = m.transient ? 0 : send_resend(a->srv, app, m.from, m.cmid, &prior, &code, &reason);
    else if (rc == 0)
        rc = send_check(a->srv, app, m.from, m.conv_type, m.to, m.transient ? "" : m.cmid,
                        m.system, &prior, &code, &reason);
    if (rc < 0) {
        rc = admin_error(req, 500, "INTERNAL", "storage error");
        goto out;
    }
    if (prior != 0) { /* a resend of a stored client_msg_id: the original answer */
        rc = admin_json(req, 200, json_pack("{s:o, s:I, s:s}", "msg_id", id_str(prior),
                                            "time_ms", (json_int_t)snowflake_time_ms(prior),
                                            "client_msg_id", m.cmid));
        goto out;
    }
    if (code != cim_Code_OK) {
        rc = admin_refuse(req, code, reason);
        goto out;
    }
    r = store_send_new(m.body_len);
    r->conv_type = (uint8_t)m.conv_type;
    r->msg_type = (uint8_t)m.msg_type;
    r->system = m.system;
    snprintf(r->app, sizeof(r->app), "%s", app);
    memcpy(r->from, m.from, sizeof(r->from));
    memcpy(r->to, m.to, sizeof(r->to));
    memcpy(r->cmid, m.cmid, sizeof(r->cmid));
    r->body_len = (uint32_t)m.body_len;
    if (m.body_len > 0)
        memcpy(r->body, m.body, m.body_len);
    r->xhome = xhome;
    r->home = home;
    r->transient = m.transient && home != cluster_self(cl);
    if (r->transient)
        r->time_ms = snowflake_now_ms();
    if (m.transient && !r->transient) {
        rc = send_transient_route(a->srv, r, r->body, r->body_len, 0);
        rc = rc < 0 ? admin_error(req, 500, "INTERNAL", "cannot encode the message")
                    : admin_json(req, 200, json_pack("{s:s, s:I}", "msg_id", "0", "time_ms",
                                                     (json_int_t)r->time_ms));
        mem_free(r);
        goto out;
    }
    rc = admin_call(a, req, &r->hdr, finish_send, app, m.from);
out:
    admin_msg_free(&m);
    return rc;
}

/* ---- users ---------------------------------------------------------------------------- */

/* The user as GET answers it. @return it, or NULL (RC in *rc: not found or storage). */
static json_t *user_json(admin_t *a, const char *app, const char *user, int *rc)
{
    router_ent_t ents[DEVICES_MAX];
    size_t n;
    uint64_t latest = 0;
    kv_txn_t *txn = NULL;
    kv_user_t u;
    json_t *devs, *j;

    if ((*rc = kv_begin(a->srv->kv, KV_READ, &txn)) < 0)
        return NULL;
    if ((*rc = kv_user_info(txn, app, user, &u)) == 0)
        *rc = feed_last(txn, app, user, &latest);
    kv_abort(txn);
    if (*rc < 0)
        return NULL;
    devs = json_array();
    n = router_lookup(a->srv->router, app, user, ents, DEVICES_MAX);
    for (size_t i = 0; i < n && i < DEVICES_MAX; i++)
        json_array_append_new(devs, json_pack("{s:s, s:s}", "device", ents[i].device, "kind",
                                              ents[i].kind < 5 ? KINDS[ents[i].kind] : "?"));
    j = json_pack("{s:s, s:I, s:b, s:o, s:o}", "user", user, "created_ms",
                  (json_int_t)u.created_ms, "disabled", u.disabled, "devices_online", devs,
                  "latest_msg_id", id_str(latest));
    if (u.tokens_before_s > 0)
        json_object_set_new(j, "tokens_before_s", json_integer((json_int_t)u.tokens_before_s));
    return j;
}

static int get_user(admin_t *a, h2o_req_t *req, const char *app, const char *user)
{
    int rc;
    json_t *j = user_json(a, app, user, &rc);
    if (j == NULL)
        return rc == RC_ENOTFOUND ? admin_error(req, 404, "NOT_FOUND", "unknown user '%s'", user)
                                  : admin_error(req, 500, "INTERNAL", "storage error");
    return admin_json(req, 200, j);
}

static void finish_user(admin_t *a, admin_call_t *c, h2o_req_t *req, store_op_t *op)
{
    int rc;
    json_t *j;

    if (op->code == cim_Code_OK && op->type == STORE_OP_USER_PUT && op->urec.disabled &&
        op->disabled == 1) {
        size_t n = admin_kick(a, c->app, c->user, cim_Code_UNAUTHORIZED, USER_DISABLED);
        LOG_INFO("admin: %s/%s disabled (%zu sessions closed)", c->app, c->user, n);
    } else if (op->code == cim_Code_OK && op->type == STORE_OP_USER_PUT) {
        LOG_INFO("admin: %s/%s %s%s", c->app, c->user, op->created ? "created" : "updated",
                 op->disabled == 0 ? " (enabled)" : "");
    } else if (op->code == cim_Code_OK) {
        LOG_INFO("admin: %s/%s tokens expiring up to %llu revoked", c->app, c->user,
                 (unsigned long long)op->urec.tokens_before_s);
    }
    if (req == NULL)
        return;
    if (op->code != cim_Code_OK) {
        (void)admin_refuse(req, op->code, op->reason[0] ? op->reason : "refused");
        return;
    }
    if ((j = user_json(a, c->app, c->user, &rc)) == NULL) {
        (void)admin_error(req, 500, "INTERNAL", "storage error");
        return;
    }
    (void)admin_json(req, op->created ? 201 : 200, j);
}

static void finish_user_op(admin_call_t *c, h2o_req_t *req, store_req_t *q)
{
    finish_user(c->a, c, req, (store_op_t *)q);
    mem_free(q);
}

static int put_user(admin_t *a, h2o_req_t *req, const char *app, const char *user, int type)
{
    json_t *j = admin_body(req, true), *dis, *ttl;
    store_op_t *op;
    uint64_t ttl_s = a->srv->conf->token_ttl_s;

    if (j == NULL)
        return 0;
    dis = json_object_get(j, "disabled");
    ttl = json_object_get(j, "ttl_s");
    if (json_object_size(j) > (size_t)(dis != NULL) + (size_t)(ttl != NULL) ||
        (type == STORE_OP_USER_PUT && ttl != NULL) ||
        (type == STORE_OP_USER_REVOKE && dis != NULL)) {
        json_decref(j);
        return bad(req, "%s", type == STORE_OP_USER_PUT ? "the body may hold only \"disabled\""
                                                         : "the body may hold only \"ttl_s\"");
    }
    if ((dis != NULL && !json_is_boolean(dis)) ||
        (ttl != NULL && (!json_is_integer(ttl) || json_integer_value(ttl) < 0 ||
                         json_integer_value(ttl) > 100LL * 365 * 86400))) {
        json_decref(j);
        return bad(req, "%s", dis != NULL ? "disabled must be true or false"
                                          : "ttl_s must be an integer 0..3153600000");
    }
    if (ttl != NULL)
        ttl_s = (uint64_t)json_integer_value(ttl);
    op = store_op_new(0);
    op->type = (uint32_t)type;
    op->disabled = dis == NULL ? -1 : json_is_true(dis);
    op->arg = (uint64_t)time(NULL) + ttl_s;
    snprintf(op->app, sizeof(op->app), "%s", app);
    snprintf(op->user, sizeof(op->user), "%s", user);
    snprintf(op->target, sizeof(op->target), "%s", user);
    json_decref(j);
    return admin_call(a, req, &op->hdr, finish_user_op, app, user);
}

static int kick_user(admin_t *a, h2o_req_t *req, const char *app, const char *user)
{
    kv_txn_t *txn = NULL;
    size_t n;
    int rc = kv_begin(a->srv->kv, KV_READ, &txn);

    if (rc == 0) {
        rc = kv_user_get(txn, app, user, NULL);
        kv_abort(txn);
    }
    if (rc == RC_ENOTFOUND)
        return admin_error(req, 404, "NOT_FOUND", "unknown user '%s'", user);
    if (rc < 0)
        return admin_error(req, 500, "INTERNAL", "storage error");
    n = admin_kick(a, app, user, cim_Code_KICKED, "kicked by the app");
    LOG_INFO("admin: %s/%s kicked (%zu sessions)", app, user, n);
    return admin_json(req, 200, json_pack("{s:I}", "kicked", (json_int_t)n));
}

/* ---- groups --------------------------------------------------------------------------- */

static json_t *group_json(const group_t *g)
{
    return json_pack("{s:o, s:s, s:s, s:I, s:I, s:b, s:b}", "group_id", id_str(g->gid), "name",
                     g->name, "owner", g->owner, "created_ms", (json_int_t)g->created_ms,
                     "member_count", (json_int_t)g->member_count, "open", g->open, "dismissed",
                     g->dismissed);
}

static int add_member(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                      size_t vlen)
{
    char user[KV_ID_MAX + 1];
    uint64_t joined = 0;
    if (slen == 0 || slen > KV_ID_MAX)
        return 0;
    memcpy(user, sfx, slen);
    user[slen] = '\0';
    for (size_t i = 0; i < vlen && i < 8; i++)
        joined = joined << 8 | val[i];
    json_array_append_new(ctx, json_pack("{s:s, s:o}", "user", user, "joined_msg_id",
                                         id_str(joined)));
    return 0;
}

static int get_group(admin_t *a, h2o_req_t *req, const char *app, const char *id, bool members)
{
    uint8_t prefix[GROUP_KEY_MAX];
    kv_txn_t *txn = NULL;
    json_t *list = NULL;
    uint64_t gid;
    group_t g;
    int rc;

    if (group_id_parse(id, &gid) < 0)
        return admin_error(req, 404, "NOT_FOUND", "unknown group");
    if ((rc = kv_begin(a->srv->kv, KV_READ, &txn)) < 0)
        return admin_error(req, 500, "INTERNAL", "storage error");
    rc = group_load(txn, app, gid, &g);
    if (rc == 0 && members) {
        list = json_array();
        rc = kv_rec_scan(txn, KV_DB_MEMBERS, prefix, group_key(prefix, app, gid), add_member,
                         list);
    }
    kv_abort(txn);
    if (rc < 0) {
        json_decref(list);
        return rc == RC_ENOTFOUND ? admin_error(req, 404, "NOT_FOUND", "unknown group")
                                  : admin_error(req, 500, "INTERNAL", "storage error");
    }
    if (!members)
        return admin_json(req, 200, group_json(&g));
    return admin_json(req, 200, json_pack("{s:o, s:o}", "group_id", id_str(gid), "members", list));
}

static void finish_group(admin_call_t *c, h2o_req_t *req, store_req_t *q)
{
    store_op_t *op = (store_op_t *)q;
    cim_Group grp = cim_Group_init_zero;
    pb_istream_t is = pb_istream_from_buffer(op->group, op->group_len);

    if (op->code == cim_Code_OK && op->has_group && pb_decode(&is, cim_Group_fields, &grp)) {
        LOG_INFO("admin: %s/%s created group %s", c->app, c->user, grp.group_id);
        if (req != NULL)
            (void)admin_json(req, 201,
                             json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:b}", "group_id",
                                       grp.group_id, "name", grp.name, "owner", grp.owner,
                                       "created_ms", (json_int_t)grp.created_ms, "member_count",
                                       (json_int_t)grp.member_count, "open", grp.open,
                                       "dismissed", 0));
    } else if (req != NULL) {
        (void)admin_refuse(req, op->code == cim_Code_OK ? cim_Code_INTERNAL : op->code,
                           op->reason[0] ? op->reason : "refused");
    }
    mem_free(op);
}

static int post_group(admin_t *a, h2o_req_t *req, const char *app)
{
    const char *owner = NULL, *name = NULL;
    json_t *members = NULL, *m, *j = admin_body(req, false);
    int open = 0;
    json_error_t err;
    store_op_t *op;
    size_t i, n;

    if (j == NULL)
        return 0;
    if (json_unpack_ex(j, &err, JSON_STRICT, "{s:s, s:s, s?o, s?b}", "owner", &owner, "name",
                       &name, "members", &members, "open", &open) < 0) {
        json_decref(j);
        return bad(req, "%s", err.text);
    }
    if (!kv_id_valid(owner) || name[0] == '\0' || strlen(name) > KV_ID_MAX ||
        (members != NULL && !json_is_array(members)) ||
        (n = members ? json_array_size(members) : 0) > MEMBERS_PAGE) {
        json_decref(j);
        return bad(req, "%s", "owner must be a user id, name 1..64 bytes, members an array of "
                              "at most 1000 user ids");
    }
    if (cluster_is_enabled(a->srv->cluster) &&
        cluster_home(a->srv->cluster, app, owner) != cluster_self(a->srv->cluster)) {
        /* a group is made by (and homed on) its owner's home (docs/SCALING.md) */
        char why[128];
        snprintf(why, sizeof(why), "in a cluster, POST a group to its owner's home node "
                 "(node %u)", cluster_home(a->srv->cluster, app, owner));
        json_decref(j);
        return admin_refuse(req, cim_Code_SERVER_BUSY, why);
    }
    op = store_op_new(n);
    for (i = 0; i < n; i++) {
        m = json_array_get(members, i);
        if (!json_is_string(m) || !kv_id_valid(json_string_value(m))) {
            mem_free(op);
            json_decref(j);
            return bad(req, "%s", "members must be user ids");
        }
        snprintf(op->users[i], sizeof(op->users[i]), "%s", json_string_value(m));
    }
    op->nusers = (uint32_t)n;
    op->type = FT_GROUP_CREATE;
    op->open = open;
    snprintf(op->app, sizeof(op->app), "%s", app);
    snprintf(op->user, sizeof(op->user), "%s", owner);
    snprintf(op->name, sizeof(op->name), "%s", name);
    json_decref(j); /* owner pointed into it: op->user is the copy */
    return admin_call(a, req, &op->hdr, finish_group, app, op->user);
}

/* ---- routing -------------------------------------------------------------------------- */

static int wrong_method(h2o_req_t *req, const char *allowed)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allowed,
                   strlen(allowed));
    return admin_error(req, 405, "METHOD_NOT_ALLOWED", "use %s", allowed);
}

int admin_api(admin_t *a, h2o_req_t *req, const char *app, char **seg, size_t nseg)
{
    bool get = admin_method(req, "GET"), post = admin_method(req, "POST");

    if (nseg == 1 && strcmp(seg[0], "messages") == 0)
        return post ? post_message(a, req, app) : wrong_method(req, "POST");
    if (nseg == 1 && strcmp(seg[0], "groups") == 0)
        return post ? post_group(a, req, app) : wrong_method(req, "POST");
    if (nseg >= 2 && strcmp(seg[0], "groups") == 0 && nseg <= 3) {
        if (nseg == 3 && strcmp(seg[2], "members") != 0)
            return admin_error(req, 404, "NOT_FOUND", "no such endpoint (docs/ADMIN-API.md)");
        return get ? get_group(a, req, app, seg[1], nseg == 3) : wrong_method(req, "GET");
    }
    if (nseg >= 2 && nseg <= 3 && strcmp(seg[0], "users") == 0) {
        const char *user = seg[1];
        if (!kv_id_valid(user))
            return bad(req, "%s", "the user must be an id (1..64 bytes of [A-Za-z0-9._@-])");
        if (nseg == 2) {
            if (get)
                return get_user(a, req, app, user);
            if (admin_method(req, "PUT"))
                return put_user(a, req, app, user, STORE_OP_USER_PUT);
            return wrong_method(req, "GET, PUT");
        }
        if (strcmp(seg[2], "kick") == 0)
            return post ? kick_user(a, req, app, user) : wrong_method(req, "POST");
        if (strcmp(seg[2], "revoke-tokens") == 0)
            return post ? put_user(a, req, app, user, STORE_OP_USER_REVOKE)
                        : wrong_method(req, "POST");
    }
    return admin_error(req, 404, "NOT_FOUND", "no such endpoint (docs/ADMIN-API.md)");
}
