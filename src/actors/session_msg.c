/* session_msg: SEND, PUSH_ACK and SYNC (PROTOCOL.md §4–§6). Writes go to the store; the
 * answer to a stored SEND comes back from it after the commit (session_complete_send).
 * Reads run here, in short read-only transactions. */
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/cluster.h"
#include "actors/dedup.h"
#include "actors/feed.h"
#include "actors/group.h"
#include "actors/message.h"
#include "actors/router.h"
#include "actors/session.h"
#include "actors/send.h"
#include "actors/store.h"
#include "cim.pb.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "core/str.h"

#define SYNC_DEFAULT 200
#define SYNC_MAX 500
#define PAGE_ROOM 64      /* SyncRsp fields around the messages: req_id, code, remain, ... */

/* SendReq.body is read in place from the decrypted frame (message_win_t): no copy until
 * the store needs one. */

static int reject(session_t *s, const cim_SendReq *req, int code, const char *reason)
{
    cim_SendRsp rsp = cim_SendRsp_init_zero;
    rsp.req_id = req->req_id;
    rsp.code = (cim_Code)code;
    str_copy(rsp.reason, sizeof(rsp.reason), reason);
    memcpy(rsp.client_msg_id, req->client_msg_id, sizeof(rsp.client_msg_id));
    return session_answer(s, FT_SEND_ACK, cim_SendRsp_fields, &rsp);
}

/* Token bucket: send_rate per second, up to send_burst. */
static bool take_token(session_t *s)
{
    const conf_t *c = s->w->srv->conf;
    uint32_t now = (uint32_t)worker_now(s->w);
    float t = s->tokens + (float)(uint32_t)(now - s->tb_ms) * (float)c->send_rate / 1000.0f;

    s->tb_ms = now;
    s->tokens = t > (float)c->send_burst ? (float)c->send_burst : t;
    if (s->tokens < 1.0f)
        return false;
    s->tokens -= 1.0f;
    return true;
}

/* A transient message is routed at once to the online devices of the recipient (or the
 * group's members) and the sender's other devices; nothing is stored and its msg_id is 0
 * (docs/PROTOCOL-NOTES.md). */
static int send_transient(session_t *s, const cim_SendReq *req, const message_win_t *body)
{
    store_send_t meta;
    cim_SendRsp rsp = cim_SendRsp_init_zero;

    memset(&meta, 0, sizeof(meta));
    meta.conv_type = (uint8_t)req->conv_type;
    meta.msg_type = (uint8_t)req->msg_type;
    meta.from_kind = s->kind;
    str_copy(meta.app, sizeof(meta.app), s->app);
    str_copy(meta.from, sizeof(meta.from), s->user);
    memcpy(meta.to, req->to, sizeof(meta.to));
    memcpy(meta.cmid, req->client_msg_id, sizeof(meta.cmid));
    if (send_transient_route(s->w->srv, &meta, body->data, body->len, s->sid) < 0)
        return reject(s, req, cim_Code_INTERNAL, "cannot encode the message");
    rsp.req_id = req->req_id;
    rsp.code = cim_Code_OK;
    rsp.time_ms = meta.time_ms;
    memcpy(rsp.client_msg_id, req->client_msg_id, sizeof(rsp.client_msg_id));
    return session_answer(s, FT_SEND_ACK, cim_SendRsp_fields, &rsp);
}

/* A store_send_t for @p req from this session (body @p blen bytes, not filled in). */
static store_send_t *send_new(session_t *s, const cim_SendReq *req, size_t blen, uint32_t home)
{
    store_send_t *r = store_send_new(blen);

    r->worker = s->w->index;
    r->sid = s->sid;
    r->req_id = req->req_id;
    r->conv_type = (uint8_t)req->conv_type;
    r->msg_type = (uint8_t)req->msg_type;
    r->from_kind = s->kind;
    str_copy(r->app, sizeof(r->app), s->app);
    str_copy(r->from, sizeof(r->from), s->user);
    memcpy(r->to, req->to, sizeof(r->to));
    memcpy(r->cmid, req->client_msg_id, sizeof(r->cmid));
    r->home = home;
    return r;
}

/* A resend of message @p prior, in the sender's timeline here, to a user of another home:
 * OK with its id once that home holds it too (PROTOCOL.md: SEND_ACK{OK} means stored in
 * every recipient's timeline), whatever else holds now. */
static int resend_xhome(session_t *s, const cim_SendReq *req, uint64_t prior, uint32_t home)
{
    store_send_t *r = send_new(s, req, 0, home);

    r->xhome = true;
    r->msg_id = prior;
    r->time_ms = snowflake_time_ms(prior);
    r->code = cim_Code_OK;
    if (cluster_xhome_resend(s->w->srv->cluster, r) < 0) {
        mem_free(r);
        return reject(s, req, cim_Code_SERVER_BUSY, "server busy; retry later");
    }
    s->async_issued++;
    s->xsends++; /* a cluster's */
    return 0;
}

/* SEND_ACK OK for a resend of the stored message @p prior. */
static int answer_resend(session_t *s, const cim_SendReq *req, uint64_t prior)
{
    cim_SendRsp rsp = cim_SendRsp_init_zero;

    rsp.req_id = req->req_id;
    rsp.code = cim_Code_OK;
    rsp.msg_id = prior;
    rsp.time_ms = snowflake_time_ms(prior);
    memcpy(rsp.client_msg_id, req->client_msg_id, sizeof(rsp.client_msg_id));
    return session_answer(s, FT_SEND_ACK, cim_SendRsp_fields, &rsp);
}

int session__send(session_t *s, const uint8_t *body, size_t len)
{
    const conf_t *c = s->w->srv->conf;
    cim_SendReq *req = s->w->scratch;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    message_win_t ref = {body, body + len, NULL, 0};
    store_send_t *r;
    cluster_t *cl = s->w->srv->cluster;
    const char *why = "";
    uint64_t gid, prior = 0;
    uint32_t home;
    size_t cmid_len;
    bool xhome;
    int rc, code;

    memset(req, 0, sizeof(*req));
    req->body.funcs.decode = message_window_decode;
    req->body.arg = &ref;
    if (!pb_decode(&is, cim_SendReq_fields, req)) {
        uint32_t req_id = session__req_id(body, len);
        memset(req, 0, sizeof(*req));
        req->req_id = req_id;
        return reject(s, req, cim_Code_BAD_REQUEST, "malformed SendReq");
    }
    cmid_len = strlen(req->client_msg_id);
    if (cmid_len == 0 || cmid_len > 64)
        return reject(s, req, cim_Code_BAD_REQUEST, "client_msg_id must be 1..64 bytes");
    if (req->conv_type != cim_ConvType_DIRECT && req->conv_type != cim_ConvType_GROUP)
        return reject(s, req, cim_Code_BAD_REQUEST, "conv_type must be DIRECT or GROUP");
    if (req->msg_type < cim_MsgType_TEXT || req->msg_type > cim_MsgType_CUSTOM)
        return reject(s, req, cim_Code_BAD_REQUEST, "msg_type must be TEXT..CUSTOM");
    if (req->conv_type == cim_ConvType_DIRECT ? !kv_id_valid(req->to)
                                              : group_id_parse(req->to, &gid) < 0)
        return reject(s, req, cim_Code_BAD_REQUEST,
                      "to must be a user id (DIRECT) or a group id (GROUP)");
    if (ref.len > c->max_msg_bytes)
        return reject(s, req, cim_Code_TOO_LARGE, "body over max_msg_bytes");
    /* In a cluster a DIRECT message is originated here, the sender's home, and merged
     * into the timelines by id at each home (docs/SCALING.md); the recipient's existence
     * and blocks are its home's to judge when that is another node. */
    xhome = req->conv_type == cim_ConvType_DIRECT && cluster_is_enabled(cl);
    home = xhome ? cluster_home(cl, s->app, req->to) : cluster_self(cl);
    if (home != cluster_self(cl)) {
        code = cim_Code_OK;
        rc = req->transient ? 0
                            : send_resend(s->w->srv, s->app, s->user, req->client_msg_id, &prior,
                                          &code, &why);
    } else {
        rc = send_check(s->w->srv, s->app, s->user, (int)req->conv_type, req->to,
                        req->transient ? "" : req->client_msg_id, false, &prior, &code, &why);
    }
    if (rc < 0)
        return reject(s, req, cim_Code_INTERNAL, "storage error");
    /* A resend of a stored client_msg_id is answered with the original id before
     * anything else is judged: the first send was accepted, and a retry after the peer
     * blocked or the group went away must not turn it into an error. The store checks
     * again in its own order. */
    if (prior != 0 && home != cluster_self(cl))
        return resend_xhome(s, req, prior, home);
    if (prior != 0)
        return answer_resend(s, req, prior);
    if (code != cim_Code_OK && s->async_issued != s->async_done) {
        /* Maybe stale: an earlier change of this session (its own GROUP_JOIN) is still
         * with the store. Judge again, whole, once it is answered. */
        return session__hold(s, FT_SEND, body, len);
    }
    if (!take_token(s)) {
        /* Without a cluster the store judges resends (send_check): one is not refused
         * for the rate here either. */
        if (!req->transient &&
            send_resend(s->w->srv, s->app, s->user, req->client_msg_id, &prior, &code, &why) == 0 &&
            prior != 0)
            return answer_resend(s, req, prior);
        return reject(s, req, cim_Code_RATE_LIMITED, "sending too fast; slow down");
    }
    if (code != cim_Code_OK)
        return reject(s, req, code, why);
    if (req->transient && home == cluster_self(cl))
        return send_transient(s, req, &ref);

    if (cluster_is_enabled(cl)) {
        r = send_new(s, req, ref.len, home); /* the body as it came: it may be forwarded */
        if (ref.len > 0)
            memcpy(r->body, ref.data, ref.len);
    } else {
        /* The record but its id and time, encoded here rather than on the writer. */
        size_t n = 0;
        r = send_new(s, req, ref.len + MESSAGE_TAIL_EXTRA, home);
        if (message_tail_encode(r, ref.data, ref.len, r->body, r->body_len, &n) < 0) {
            mem_free(r);
            return reject(s, req, cim_Code_INTERNAL, "cannot encode the message");
        }
        r->body_len = (uint32_t)n;
        r->tail = true;
    }
    r->xhome = xhome;
    /* transient, to another home: checked and delivered there; the sender's other devices
     * get it here once that home said OK (session_complete) */
    r->transient = req->transient;
    if (r->transient)
        r->time_ms = snowflake_now_ms();
    if ((rc = send_post(s->w->srv, &r->hdr)) < 0) {
        mem_free(r);
        return reject(s, req, cim_Code_SERVER_BUSY, "server busy; retry later");
    }
    s->async_issued++;
    /* in a cluster answered by the cluster thread, maybe out of store order */
    s->xsends += cluster_is_enabled(cl);
    return 0;
}

int session__push_ack(session_t *s, const uint8_t *body, size_t len)
{
    cim_DeliveredReq req = cim_DeliveredReq_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);

    if (!pb_decode(&is, cim_DeliveredReq_fields, &req)) {
        session_close(s, cim_Code_PROTOCOL_ERROR, "malformed PUSH_ACK");
        return RC_ECLOSED;
    }
    /* A device acknowledges only what it was given (the LoginRsp's latest, pushes, SYNC
     * pages): an ack beyond is held to that, or a later SYNC from the cursor would skip
     * messages it never saw (docs/PROTOCOL-NOTES.md). */
    if (req.up_to_msg_id > s->delivered)
        req.up_to_msg_id = s->delivered;
    /* Cumulative: only an increase moves the cursor, and only increases reach the store,
     * so a flood of acks costs at most one write per pushed message. */
    if (req.up_to_msg_id <= s->acked)
        return 0;
    s->acked = req.up_to_msg_id;
    if (store_ack(s->w->srv->store, s->app, s->user, s->device, s->acked) < 0)
        LOG_RL(LOG_LVL_WARN, "cannot queue a cursor update (store stopping)");
    return 0;
}

/* ---- SYNC ------------------------------------------------------------------------- */

typedef struct page {
    message_rec_t rec[SYNC_MAX]; /* stored records, borrowed from the txn */
    size_t n;
} page_t;

static bool put_messages(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const page_t *p = *arg;
    for (size_t i = 0; i < p->n; i++)
        if (!message_rec_encode(os, f->tag, &p->rec[i]))
            return false;
    return true;
}

int session__sync(session_t *s, const uint8_t *body, size_t len)
{
    cim_SyncReq req = cim_SyncReq_init_zero;
    cim_SyncRsp rsp = cim_SyncRsp_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    uint8_t key[KV_UKEY_MAX];
    size_t klen = kv_ukey(key, s->app, s->user), n = 0, room, used = 0;
    uint64_t ids[SYNC_MAX], after, total = 0;
    kv_txn_t *txn = NULL;
    page_t *page = NULL;
    uint32_t limit;
    size_t taken = 0;
    int rc;

    if (!pb_decode(&is, cim_SyncReq_fields, &req)) {
        rsp.req_id = session__req_id(body, len);
        rsp.code = cim_Code_BAD_REQUEST;
        snprintf(rsp.reason, sizeof(rsp.reason), "malformed SyncReq");
        return session_answer(s, FT_SYNC_ACK, cim_SyncRsp_fields, &rsp);
    }
    rsp.req_id = req.req_id;
    limit = req.limit == 0 ? SYNC_DEFAULT : req.limit > SYNC_MAX ? SYNC_MAX : req.limit;
    if ((rc = kv_begin(s->w->srv->kv, KV_READ, &txn)) < 0)
        goto fail;
    after = req.after_msg_id;
    if (after == 0) {
        /* This device's cursor: the stored one, or the one this connection's PUSH_ACKs
         * moved, which may not have reached the store yet (applies at once). */
        if ((rc = kv_cursor_get(txn, key, klen, s->device, &after)) < 0)
            goto fail;
        after = after > s->acked ? after : s->acked;
    }
    if ((rc = feed_page(txn, s->app, s->user, after, ids, limit, &n, &total)) < 0)
        goto fail;
    page = mem_alloc(sizeof(*page));
    page->n = 0;
    /* A page never exceeds the frame: stop before the message that would not fit and
     * say so through remain (PROTOCOL.md §3). */
    room = s->w->srv->conf->max_body - PAGE_ROOM;
    for (; taken < n; taken++) {
        message_rec_t *r = &page->rec[page->n];
        size_t cost;
        rc = message_get(txn, ids[taken], r);
        if (rc == RC_ENOTFOUND)
            continue; /* removed by retention between the two reads: skip it */
        if (rc < 0)
            goto fail;
        cost = message_rec_cost(r);
        if (used + cost > room)
            break;
        used += cost;
        page->n++;
    }
    rsp.code = cim_Code_OK;
    rsp.messages.funcs.encode = put_messages;
    rsp.messages.arg = page;
    rsp.remain = (uint32_t)(total - taken);
    rsp.last_msg_id = taken > 0 ? ids[taken - 1] : after;
    if (taken > 0 && ids[taken - 1] > s->delivered)
        s->delivered = ids[taken - 1];
    rc = session_answer(s, FT_SYNC_ACK, cim_SyncRsp_fields, &rsp); /* encoded inside txn */
    kv_abort(txn);
    mem_free(page);
    return rc;
fail:
    kv_abort(txn);
    mem_free(page);
    LOG_RL(LOG_LVL_ERROR, "sync failed: %s", rc_str(rc));
    memset(&rsp, 0, sizeof(rsp));
    rsp.req_id = req.req_id;
    rsp.code = cim_Code_INTERNAL;
    snprintf(rsp.reason, sizeof(rsp.reason), "storage error");
    return session_answer(s, FT_SYNC_ACK, cim_SyncRsp_fields, &rsp);
}
