/* session_auth: handshake, login, heartbeat and logout (PROTOCOL.md §2, §3). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/router.h"
#include "actors/session.h"
#include "actors/store.h"
#include "cim.pb.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "core/token.h"

#define KICK_MAX 64

int session__hello(session_t *s, uint32_t type, uint8_t *frame, uint32_t len)
{
    cim_ClientHello ch = cim_ClientHello_init_zero;
    cim_ServerHello sh = cim_ServerHello_init_zero;
    const uint8_t *body = frame + FRAME_HDR;
    size_t blen = len - FRAME_HDR;
    pb_istream_t is = pb_istream_from_buffer(body, blen);
    uint8_t out[FRAME_HANDSHAKE_MAX];
    pb_ostream_t os = pb_ostream_from_buffer(out, sizeof(out) - FRAME_HDR);
    int rc;

    if (type != FT_HELLO) {
        session_abort(s, "first frame is not HELLO");
        return RC_ECLOSED;
    }
    if (!pb_decode(&is, cim_ClientHello_fields, &ch) || ch.version != 1 ||
        ch.client_key.size != CHAN_KEY || ch.client_random.size != CHAN_RANDOM) {
        session_abort(s, "malformed or unsupported HELLO");
        return RC_ECLOSED;
    }
    sh.version = 1;
    sh.server_key.size = CHAN_KEY;
    sh.server_random.size = CHAN_RANDOM;
    sh.identity.size = CHAN_KEY;
    sh.signature.size = CHAN_SIG;
    memcpy(sh.identity.bytes, s->w->srv->identity_pub, CHAN_KEY);
    rc = chan_server_handshake(s->w->srv->identity, body, blen, ch.client_key.bytes,
                               sh.server_key.bytes, sh.server_random.bytes,
                               sh.signature.bytes, &s->ch);
    if (rc < 0) {
        session_abort(s, "handshake failed");
        return RC_ECLOSED;
    }
    if (!pb_encode(&os, cim_ServerHello_fields, &sh)) {
        session_abort(s, "encoding HELLO_ACK failed");
        return RC_ECLOSED;
    }
    if ((rc = session__send_plain(s, FT_HELLO_ACK, out, os.bytes_written)) < 0)
        return RC_ECLOSED;
    s->state = SESSION_ST_LOGIN;
    s->max_len = FRAME_HDR + s->w->srv->conf->max_body + FRAME_TAG;
    return 0;
}

static bool device_id_valid(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

/* Answer LOGIN with a refusal, then say BYE with the same code: a failed login always
 * ends the connection (PROTOCOL.md §6, Tokens). */
static int refuse(session_t *s, uint32_t req_id, int code, const char *reason)
{
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    rsp.req_id = req_id;
    rsp.code = (cim_Code)code;
    snprintf(rsp.reason, sizeof(rsp.reason), "%s", reason);
    LOG_DEBUG("session %llx: login refused: %s", (unsigned long long)s->sid, reason);
    if (session_send(s, FT_LOGIN_ACK, cim_LoginRsp_fields, &rsp) == 0)
        session_close(s, code, reason);
    return RC_ECLOSED;
}

/* Check the token against the app's secret and see whether the user exists, in one
 * short read transaction on this worker. */
static int check_credentials(session_t *s, const char *app, const cim_LoginReq *req,
                             bool *user_known, const char **why)
{
    kv_txn_t *txn = NULL;
    uint8_t secret[TOKEN_SECRET];
    int rc;

    if ((rc = kv_begin(s->w->srv->kv, KV_READ, &txn)) < 0) {
        *why = "storage unavailable";
        return rc;
    }
    rc = kv_app_get(txn, app, secret);
    if (rc == RC_ENOTFOUND) {
        *why = "unknown app";
        rc = RC_EAUTH;
        goto out;
    }
    if (rc < 0) {
        *why = "storage error";
        goto out;
    }
    rc = token_verify(secret, app, req->user, req->token, (int64_t)time(NULL));
    if (rc < 0) {
        *why = rc == RC_EINVAL ? "malformed token" : "invalid or expired token";
        rc = RC_EAUTH;
        goto out;
    }
    rc = kv_user_get(txn, app, req->user, NULL);
    *user_known = rc == 0;
    if (rc == RC_ENOTFOUND)
        rc = 0;
    else if (rc < 0)
        *why = "storage error";
out:
    kv_abort(txn);
    memset(secret, 0, sizeof(secret));
    return rc;
}

static void set_ids(session_t *s, const char *app, const char *user, const char *device)
{
    size_t a = strlen(app) + 1, u = strlen(user) + 1, d = strlen(device) + 1;
    s->ids = mem_alloc(a + u + d);
    memcpy(s->ids, app, a);
    memcpy(s->ids + a, user, u);
    memcpy(s->ids + a + u, device, d);
    s->app = s->ids;
    s->user = s->ids + a;
    s->device = s->ids + a + u;
}

static void kick(session_t *s, const router_ent_t *e)
{
    worker_msg_t *m = mem_calloc(sizeof(*m));
    m->kind = WORKER_MSG_KICK;
    m->u.kick.sid = e->sid;
    m->u.kick.code = cim_Code_KICKED;
    /* Even a session on this very worker is kicked through the mailbox, so it is never
     * closed from inside another session's read callback. */
    if (worker_post(s->w->srv->workers[e->worker], m, true) != 0)
        mem_free(m); /* that worker is stopping: its sessions are closing anyway */
}

int session__login(session_t *s, const uint8_t *body, size_t len)
{
    worker_t *w = s->w;
    const conf_t *conf = w->srv->conf;
    cim_LoginReq *req = w->scratch;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    router_ent_t ent, kicked[KICK_MAX];
    size_t nkicked = 0;
    bool user_known = false, first;
    const char *app, *why = "";
    int rc;

    memset(req, 0, sizeof(*req));
    if (!pb_decode(&is, cim_LoginReq_fields, req))
        return refuse(s, 0, cim_Code_BAD_REQUEST, "malformed LoginReq");
    app = req->app[0] ? req->app : "default";
    if (!kv_id_valid(req->user))
        return refuse(s, req->req_id, cim_Code_BAD_REQUEST,
                      "user must be 1..64 bytes of [A-Za-z0-9._@-]");
    if (!device_id_valid(req->device_id))
        return refuse(s, req->req_id, cim_Code_BAD_REQUEST,
                      "device_id must be 1..64 bytes of [A-Za-z0-9._@:-]");
    if (!kv_id_valid(app))
        return refuse(s, req->req_id, cim_Code_UNAUTHORIZED, "unknown app");
    rc = check_credentials(s, app, req, &user_known, &why);
    if (rc == RC_EAUTH)
        return refuse(s, req->req_id, cim_Code_UNAUTHORIZED, why);
    if (rc < 0)
        return refuse(s, req->req_id, cim_Code_INTERNAL, why);
    if (!user_known && (rc = store_user_ensure(w->srv->store, app, req->user)) < 0)
        return refuse(s, req->req_id, cim_Code_SERVER_BUSY, "server busy, try again");

    set_ids(s, app, req->user, req->device_id);
    s->kind = (uint8_t)req->device_kind;
    memset(&ent, 0, sizeof(ent));
    ent.sid = s->sid;
    ent.worker = w->index;
    ent.kind = s->kind;
    snprintf(ent.device, sizeof(ent.device), "%s", s->device);
    /* Registered before the LoginRsp is built, so that (with the messaging issue) nothing
     * committed between reading latest_msg_id and going live can be missed. */
    router_add(w->srv->router, s->app, s->user, &ent, conf->single_session, kicked, KICK_MAX,
               &nkicked, &first);
    s->routed = true;
    for (size_t i = 0; i < nkicked; i++)
        kick(s, &kicked[i]);

    s->state = SESSION_ST_LIVE;
    s->since_ms = worker_now(w);
    worker__list_move(w, s, &w->live);
    s->tokens = (float)conf->send_burst;
    s->tb_ms = (uint32_t)worker_now(w);
    /* Read after registering: a message committed from now on is pushed, one committed
     * before is within latest_msg_id (PROTOCOL.md §6, Delivery). */
    if ((rc = session__login_cursors(s, &rsp.latest_msg_id, &rsp.acked_msg_id)) < 0) {
        session__unroute(s);
        return refuse(s, req->req_id, cim_Code_INTERNAL, "storage error");
    }
    s->acked = rsp.acked_msg_id;
    rsp.req_id = req->req_id;
    rsp.code = cim_Code_OK;
    rsp.server_time_ms = snowflake_now_ms();
    rsp.heartbeat_s = conf->heartbeat_s;
    rsp.max_body = conf->max_body;
    LOG_DEBUG("session %llx: %s/%s logged in on %s", (unsigned long long)s->sid, s->app,
              s->user, s->device);
    return session_send(s, FT_LOGIN_ACK, cim_LoginRsp_fields, &rsp);
}

int session__logout(session_t *s, const uint8_t *body, size_t len)
{
    cim_Req req = cim_Req_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    int rc;

    if (!pb_decode(&is, cim_Req_fields, &req))
        req.req_id = 0;
    session__unroute(s);
    /* session_answer closes the session once the LOGOUT_ACK is queued (in order). */
    rc = session_reply(s, FT_LOGOUT_ACK, req.req_id, cim_Code_OK, "");
    return rc;
}

int session__ping(session_t *s, const uint8_t *body, size_t len)
{
    cim_Ping ping = cim_Ping_init_zero;
    cim_Pong pong = cim_Pong_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);

    if (!pb_decode(&is, cim_Ping_fields, &ping)) {
        session_close(s, cim_Code_PROTOCOL_ERROR, "malformed PING");
        return RC_ECLOSED;
    }
    pong.client_time_ms = ping.client_time_ms;
    pong.server_time_ms = snowflake_now_ms();
    return session_answer(s, FT_PONG, cim_Pong_fields, &pong);
}

void session__unroute(session_t *s)
{
    if (!s->routed)
        return;
    s->routed = false;
    (void)router_remove(s->w->srv->router, s->app, s->user, s->sid); /* presence: issue 4 */
}
