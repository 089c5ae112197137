/* session_group: the group requests (PROTOCOL.md frames 0x0401–0x0410) and the answers to
 * every op the store completes. Changes go to the store (store_op); GROUP_MEMBERS and
 * GROUP_LIST read here, in short read-only transactions. */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/group.h"
#include "actors/session.h"
#include "actors/store.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define LIST_MAX 2000 /* groups in a GROUP_LIST answer at most (and what fits max_body) */
#define LIST_ROOM 64  /* answer fields around a list: req_id, code, a group */


static bool ids_valid(char (*users)[KV_ID_MAX + 1], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!kv_id_valid(users[i]))
            return false;
    return true;
}

int session__group(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(body, len);
    uint64_t gid;
    store_op_t *op;

    switch (type) {
    case FT_GROUP_CREATE: {
        cim_GroupCreateReq *req = s->w->scratch;
        size_t nlen;
        memset(req, 0, sizeof(*req));
        if (!pb_decode(&is, cim_GroupCreateReq_fields, req))
            return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST,
                        "malformed GroupCreateReq (or more than 1000 members)");
        nlen = strlen(req->name);
        if (nlen == 0 || nlen > 64)
            return session__fail(s, type, req->req_id, cim_Code_BAD_REQUEST, "name must be 1..64 bytes");
        if (!ids_valid(req->members, req->members_count))
            return session__fail(s, type, req->req_id, cim_Code_BAD_REQUEST,
                        "members must be user ids");
        /* The size (creator + distinct members) is checked by the store: duplicates and
         * the creator listed among the members count once. */
        op = store_op_new(req->members_count);
        memcpy(op->users, req->members, req->members_count * sizeof(op->users[0]));
        op->type = type;
        op->req_id = req->req_id;
        op->open = req->open;
        memcpy(op->name, req->name, sizeof(op->name));
        return session__post_op(s, op);
    }
    case FT_GROUP_ADD:
    case FT_GROUP_KICK: {
        cim_GroupUsersReq *req = s->w->scratch;
        memset(req, 0, sizeof(*req));
        if (!pb_decode(&is, cim_GroupUsersReq_fields, req))
            return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST,
                        "malformed GroupUsersReq (or more than 1000 users)");
        if (group_id_parse(req->group_id, &gid) < 0)
            return session__fail(s, type, req->req_id, cim_Code_BAD_REQUEST,
                        "group_id must be a group's decimal id");
        if (req->users_count == 0 || !ids_valid(req->users, req->users_count))
            return session__fail(s, type, req->req_id, cim_Code_BAD_REQUEST,
                        "users must be one or more user ids");
        op = store_op_new(req->users_count);
        memcpy(op->users, req->users, req->users_count * sizeof(op->users[0]));
        op->type = type;
        op->req_id = req->req_id;
        memcpy(op->target, req->group_id, sizeof(op->target));
        return session__post_op(s, op);
    }
    case FT_GROUP_JOIN:
    case FT_GROUP_LEAVE:
    case FT_GROUP_DISMISS: {
        cim_GroupReq req = cim_GroupReq_init_zero;
        if (!pb_decode(&is, cim_GroupReq_fields, &req))
            return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed GroupReq");
        if (group_id_parse(req.group_id, &gid) < 0)
            return session__fail(s, type, req.req_id, cim_Code_BAD_REQUEST,
                        "group_id must be a group's decimal id");
        op = store_op_new(0);
        op->type = type;
        op->req_id = req.req_id;
        memcpy(op->target, req.group_id, sizeof(op->target));
        return session__post_op(s, op);
    }
    default:
        return session__fail(s, type, session__req_id(body, len), cim_Code_BAD_REQUEST, "not a group request");
    }
}

/* ---- GROUP_MEMBERS ------------------------------------------------------------------- */

typedef struct names {
    kv_txn_t *txn;
    const uint8_t *prefix;
    size_t plen;
    size_t budget; /* bytes left in the frame */
    size_t n;
    bool full;
} names_t;

static bool member_out(pb_ostream_t *os, const pb_field_t *f, const uint8_t *sfx, size_t slen)
{
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, sfx, slen);
}

typedef struct scan_enc {
    pb_ostream_t *os;
    const pb_field_t *f;
    bool ok;
} scan_enc_t;

static int each_member(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                       size_t vlen)
{
    scan_enc_t *e = ctx;
    (void)val;
    (void)vlen;
    if (!member_out(e->os, e->f, sfx, slen)) {
        e->ok = false;
        return 1;
    }
    return 0;
}

static bool put_members(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    names_t *nm = *arg;
    scan_enc_t e = {os, f, true};
    int rc = kv_rec_scan(nm->txn, KV_DB_MEMBERS, nm->prefix, nm->plen, each_member, &e);
    return rc >= 0 && e.ok;
}

static int members(session_t *s, const uint8_t *body, size_t len)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    cim_GroupMembersRsp rsp = cim_GroupMembersRsp_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    uint8_t prefix[GROUP_KEY_MAX], mkey[GROUP_KEY_MAX + KV_ID_MAX];
    kv_txn_t *txn = NULL;
    names_t nm;
    group_t g;
    uint64_t gid;
    size_t plen, u;
    int rc;

    if (!pb_decode(&is, cim_GroupReq_fields, &req))
        return session__fail(s, FT_GROUP_MEMBERS, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed GroupReq");
    if (group_id_parse(req.group_id, &gid) < 0)
        return session__fail(s, FT_GROUP_MEMBERS, req.req_id, cim_Code_BAD_REQUEST,
                    "group_id must be a group's decimal id");
    if ((rc = kv_begin(s->w->srv->kv, KV_READ, &txn)) < 0)
        return session__fail(s, FT_GROUP_MEMBERS, req.req_id, cim_Code_INTERNAL, "storage error");
    rc = group_load(txn, s->app, gid, &g);
    if (rc == RC_ENOTFOUND || (rc == 0 && g.dismissed)) {
        kv_abort(txn);
        return session__fail(s, FT_GROUP_MEMBERS, req.req_id, cim_Code_NOT_FOUND,
                    rc == 0 ? "the group was dismissed" : "unknown group");
    }
    if (rc < 0)
        goto internal;
    plen = group_key(prefix, s->app, gid);
    memcpy(mkey, prefix, plen);
    u = strlen(s->user);
    memcpy(mkey + plen, s->user, u);
    rc = kv_rec_get(txn, KV_DB_MEMBERS, mkey, plen + u, NULL, NULL);
    if (rc == RC_ENOTFOUND && !g.open) {
        kv_abort(txn);
        return session__fail(s, FT_GROUP_MEMBERS, req.req_id, cim_Code_NOT_MEMBER,
                    "only members see the members of a closed group");
    }
    if (rc < 0 && rc != RC_ENOTFOUND)
        goto internal;
    memset(&nm, 0, sizeof(nm));
    nm.txn = txn;
    nm.prefix = prefix;
    nm.plen = plen;
    rsp.req_id = req.req_id;
    rsp.code = cim_Code_OK;
    rsp.members.funcs.encode = put_members;
    rsp.members.arg = &nm;
    rsp.has_group = true;
    group_to_pb(&g, &rsp.group);
    /* A list that does not fit one frame (2,000 members of 64-byte ids do not) is answered
     * INTERNAL rather than cut, and the connection stays open. */
    {
        size_t sz = 0;
        if (!pb_get_encoded_size(&sz, cim_GroupMembersRsp_fields, &rsp))
            goto internal;
        if (sz > s->w->srv->conf->max_body) {
            kv_abort(txn);
            return session__fail(s, FT_GROUP_MEMBERS, req.req_id, cim_Code_INTERNAL,
                        "the member list does not fit one frame");
        }
    }
    rc = session_answer(s, FT_GROUP_MEMBERS_ACK, cim_GroupMembersRsp_fields, &rsp);
    kv_abort(txn);
    return rc;
internal:
    kv_abort(txn);
    return session__fail(s, FT_GROUP_MEMBERS, req.req_id, cim_Code_INTERNAL, "storage error");
}

/* ---- GROUP_LIST ------------------------------------------------------------------------ */

typedef struct glist {
    kv_txn_t *txn;
    const char *app;
    uint64_t gids[LIST_MAX];
    size_t n;
    size_t budget; /* bytes of the frame the list may take */
} glist_t;

static int each_ugroup(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                       size_t vlen)
{
    glist_t *gl = ctx;
    (void)val;
    (void)vlen;
    if (slen == 8 && gl->n < LIST_MAX)
        gl->gids[gl->n++] = be64_get(sfx);
    return 0;
}

static size_t varint_len(size_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

static bool put_groups(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    glist_t *gl = *arg;
    for (size_t i = 0; i < gl->n; i++) {
        group_t g;
        cim_Group pb;
        size_t sz = 0;
        if (group_load(gl->txn, gl->app, gl->gids[i], &g) < 0 || g.dismissed)
            continue;
        group_to_pb(&g, &pb);
        /* The answer never exceeds the frame: the groups that fit are listed. */
        if (!pb_get_encoded_size(&sz, cim_Group_fields, &pb))
            return false;
        if (os->callback != NULL && os->bytes_written + 1 + varint_len(sz) + sz > gl->budget)
            return true;
        if (!pb_encode_tag_for_field(os, f) || !pb_encode_submessage(os, cim_Group_fields, &pb))
            return false;
    }
    return true;
}

static int list(session_t *s, const uint8_t *body, size_t len)
{
    cim_Req req = cim_Req_init_zero;
    cim_GroupListRsp rsp = cim_GroupListRsp_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    uint8_t prefix[KV_UKEY_MAX + 1];
    size_t plen;
    glist_t *gl;
    int rc;

    if (!pb_decode(&is, cim_Req_fields, &req))
        return session__fail(s, FT_GROUP_LIST, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed Req");
    gl = mem_alloc(sizeof(*gl));
    gl->n = 0;
    gl->app = s->app;
    gl->budget = s->w->srv->conf->max_body - LIST_ROOM;
    if ((rc = kv_begin(s->w->srv->kv, KV_READ, &gl->txn)) < 0) {
        mem_free(gl);
        return session__fail(s, FT_GROUP_LIST, req.req_id, cim_Code_INTERNAL, "storage error");
    }
    plen = kv_ukey(prefix, s->app, s->user);
    prefix[plen++] = '\0';
    rc = kv_rec_scan(gl->txn, KV_DB_UGROUPS, prefix, plen, each_ugroup, gl);
    rsp.req_id = req.req_id;
    if (rc < 0) {
        rsp.code = cim_Code_INTERNAL;
        snprintf(rsp.reason, sizeof(rsp.reason), "storage error");
    } else {
        rsp.code = cim_Code_OK;
        rsp.groups.funcs.encode = put_groups;
        rsp.groups.arg = gl;
    }
    rc = session_answer(s, FT_GROUP_LIST_ACK, cim_GroupListRsp_fields, &rsp);
    kv_abort(gl->txn);
    mem_free(gl);
    return rc;
}

int session__group_read(session_t *s, uint32_t type, const uint8_t *body, size_t len)
{
    return type == FT_GROUP_MEMBERS ? members(s, body, len) : list(s, body, len);
}

/* ---- completions ------------------------------------------------------------------------ */

void session__op_done(session_t *s, store_op_t *op)
{
    uint32_t type = op->type;

    if (op->code == cim_Code_OK && (type == FT_GROUP_CREATE || type == FT_GROUP_JOIN)) {
        cim_GroupRsp rsp = cim_GroupRsp_init_zero;
        pb_istream_t is = pb_istream_from_buffer(op->group, op->group_len);
        rsp.req_id = op->req_id;
        rsp.code = cim_Code_OK;
        rsp.has_group = op->has_group && pb_decode(&is, cim_Group_fields, &rsp.group);
        mem_free(op);
        (void)session_send(s, type + 1, cim_GroupRsp_fields, &rsp); /* failures close s */
        return;
    }
    {
        cim_Result r = cim_Result_init_zero;
        r.req_id = op->req_id;
        r.code = (cim_Code)op->code;
        snprintf(r.reason, sizeof(r.reason), "%s",
                 op->code == cim_Code_OK ? "" : op->reason[0] ? op->reason : "refused");
        mem_free(op);
        (void)session_send(s, type + 1, cim_Result_fields, &r); /* failures close s */
    }
}
