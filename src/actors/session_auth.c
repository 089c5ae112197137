/* session_auth: handshake, login, heartbeat and logout (PROTOCOL.md §2, §3). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "actors/cluster.h"
#include "actors/relay.h"
#include "actors/router.h"
#include "actors/session.h"
#include "actors/store.h"
#include "actors/throttle.h"
#include "cim.pb.h"
#include "core/kv.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "core/token.h"

#define KICK_MAX 64

/* The largest frame accepted between the handshake and a successful login: the largest
 * LoginReq nanopb can decode (cim_LoginReq_size, 979 bytes) with room for fields a newer
 * client may add. Until it has logged in, a connection can make the server hold no more
 * than this for a partial frame, not max_body (docs/PROTOCOL-NOTES.md). */
#define LOGIN_FRAME_MAX 2048
_Static_assert(FRAME_HDR + cim_LoginReq_size + FRAME_TAG <= LOGIN_FRAME_MAX,
               "a LoginReq must fit the pre-login frame limit");

/* What every failed credential check answers, whatever failed (unknown app, malformed,
 * wrong or expired token): the answer must not tell whether an app exists. */
#define BAD_CREDENTIALS "invalid or expired token"
#define TOKEN_REVOKED "token revoked; log in with a new one"

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
    s->max_len = LOGIN_FRAME_MAX;
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
 * ends the connection (PROTOCOL.md §6, Tokens). A refusal for what the client sent (bad
 * credentials, malformed ids) counts against its address (throttle.h); @p who names the
 * app and user for the log when they are valid ids, else NULL. */
static int refuse(session_t *s, uint32_t req_id, int code, const char *reason, const char *app,
                  const char *user)
{
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    char peer[PEER_ADDR_STRLEN];
    uint32_t fails = 0;

    if (code == cim_Code_UNAUTHORIZED || code == cim_Code_BAD_REQUEST)
        fails = throttle_fail(s->w->srv->throttle, &s->peer, worker_now(s->w) / 1000 + 1);
    LOG_INFO("session %llx: login refused from %s (%s/%s): %s: %s%s",
             (unsigned long long)s->sid, peer_addr_str(&s->peer, peer), app ? app : "-",
             user ? user : "-", cim_Code_name((cim_Code)code), reason,
             fails >= s->w->srv->conf->login_fail_max && s->w->srv->conf->login_fail_max
                 ? " (address now throttled)"
                 : "");
    if (code >= 0 && code < WORKER_CODES)
        ctr_add(&s->w->stats.logins[code], 1);
    rsp.req_id = req_id;
    rsp.code = (cim_Code)code;
    snprintf(rsp.reason, sizeof(rsp.reason), "%s", reason);
    if (session_send(s, FT_LOGIN_ACK, cim_LoginRsp_fields, &rsp) == 0)
        session_close(s, code, reason);
    return RC_ECLOSED;
}

/* Check the token against the app's secret, in one short read transaction on this
 * worker. */
static int check_credentials(session_t *s, const char *app, const cim_LoginReq *req,
                             const char **why)
{
    kv_txn_t *txn = NULL;
    uint8_t secret[TOKEN_SECRET];
    int64_t expiry = 0;
    kv_user_t u;
    int rc;

    if ((rc = kv_begin(s->w->srv->kv, KV_READ, &txn)) < 0) {
        *why = "storage unavailable";
        return rc;
    }
    rc = kv_app_get(txn, app, secret);
    if (rc < 0 && rc != RC_ENOTFOUND) {
        *why = "storage error";
        goto out;
    }
    /* An unknown app is checked against an all-zero secret, so that it costs the same
     * HMAC as a known one and fails the same way: neither the answer nor its timing
     * tells whether an app exists. */
    if (rc == RC_ENOTFOUND)
        memset(secret, 0, sizeof(secret));
    if (token_verify(secret, app, req->user, req->token, (int64_t)time(NULL)) < 0 ||
        rc == RC_ENOTFOUND) {
        *why = BAD_CREDENTIALS;
        rc = RC_EAUTH;
        goto out;
    }
    /* The token is good: what the app's backend decided about the user (admin API)
     * may be said plainly. A user not yet known has no record (created at login). */
    rc = kv_user_info(txn, app, req->user, &u);
    if (rc == RC_ENOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc < 0) {
        *why = "storage error";
        goto out;
    }
    if (u.disabled || (u.tokens_before_s > 0 && token_expiry(req->token, &expiry) == 0 &&
                       (uint64_t)expiry <= u.tokens_before_s)) {
        *why = u.disabled ? USER_DISABLED : TOKEN_REVOKED;
        rc = RC_EAUTH;
        goto out;
    }
    rc = 0;
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

/* The user's home is node @p home, not this one: hand the LOGIN (@p body, as the client
 * sent it) to the home, which serves the session from now on (relay.h). */
static int login_at_home(session_t *s, const cim_LoginReq *req, const char *app, uint32_t home,
                         const uint8_t *body, size_t len)
{
    const conf_t *conf = s->w->srv->conf;
    const cluster_t *cl = s->w->srv->cluster;
    char why[96];

    if (!cluster_bus_up(cl) || !cluster_node_alive(cl, home)) {
        snprintf(why, sizeof(why), "this user's home node (node %u) is unavailable; retry later",
                 home);
        return refuse(s, req->req_id, cim_Code_SERVER_BUSY, why, app, req->user);
    }
    set_ids(s, app, req->user, req->device_id);
    s->kind = (uint8_t)req->device_kind;
    s->relay = RELAY_EDGE;
    s->relay_node = home;
    s->relay_pending = true; /* stays on the pending list: the login timeout runs */
    s->relay_req_id = req->req_id;
    s->state = SESSION_ST_LIVE;
    s->max_len = FRAME_HDR + conf->max_body + FRAME_TAG;
    if (relay_login(s, body, len) < 0) {
        s->relay = RELAY_NONE; /* nothing reached the home */
        return refuse(s, req->req_id, cim_Code_SERVER_BUSY, "server busy, try again", app,
                      req->user);
    }
    return 0;
}

void session__relay_lost(session_t *s)
{
    char why[96];

    s->relay_gone = true; /* nobody there to tell */
    snprintf(why, sizeof(why), "this user's home node (node %u) is unavailable; retry later",
             s->relay_node);
    if (s->relay_pending)
        (void)refuse(s, s->relay_req_id, cim_Code_SERVER_BUSY, why, s->app, s->user);
    else
        session_close(s, cim_Code_SERVER_BUSY, "home node unavailable");
}

int session__login(session_t *s, const uint8_t *body, size_t len)
{
    worker_t *w = s->w;
    const conf_t *conf = w->srv->conf;
    cim_LoginReq *req = w->scratch;
    pb_istream_t is = pb_istream_from_buffer(body, len);
    router_ent_t ent, kicked[KICK_MAX];
    store_login_t *sl;
    size_t nkicked = 0;
    uint32_t retry_s = 0;
    bool first;
    const char *app, *why = "";
    int rc;

    memset(req, 0, sizeof(*req));
    if (!pb_decode(&is, cim_LoginReq_fields, req))
        return refuse(s, session__req_id(body, len), cim_Code_BAD_REQUEST, "malformed LoginReq",
                      NULL, NULL);
    app = req->app[0] ? req->app : "default";
    if (!kv_id_valid(app))
        app = NULL; /* not an id: never echoed to the log; refused below */
    /* A throttled address is refused before its token is looked at: guessing from it
     * teaches nothing until the window ends. */
    if (throttle_blocked(w->srv->throttle, &s->peer, worker_now(w) / 1000 + 1, &retry_s)) {
        char why_rl[96];
        snprintf(why_rl, sizeof(why_rl),
                 "too many failed logins from your address; retry in %u s", retry_s);
        return refuse(s, req->req_id, cim_Code_RATE_LIMITED, why_rl, app, NULL);
    }
    if (!kv_id_valid(req->user))
        return refuse(s, req->req_id, cim_Code_BAD_REQUEST,
                      "user must be 1..64 bytes of [A-Za-z0-9._@-]", app, NULL);
    if (!device_id_valid(req->device_id))
        return refuse(s, req->req_id, cim_Code_BAD_REQUEST,
                      "device_id must be 1..64 bytes of [A-Za-z0-9._@:-]", app, req->user);
    if (req->device_kind < cim_DeviceKind_DEVICE_UNSPECIFIED || req->device_kind > cim_DeviceKind_BOT)
        return refuse(s, req->req_id, cim_Code_BAD_REQUEST,
                      "device_kind must be 0..4 (UNSPECIFIED, MOBILE, DESKTOP, WEB, BOT)", app,
                      req->user);
    if (app == NULL)
        return refuse(s, req->req_id, cim_Code_UNAUTHORIZED, BAD_CREDENTIALS, NULL, req->user);
    rc = check_credentials(s, app, req, &why);
    if (rc == RC_EAUTH)
        return refuse(s, req->req_id, cim_Code_UNAUTHORIZED, why, app, req->user);
    if (rc < 0)
        return refuse(s, req->req_id, cim_Code_INTERNAL, why, app, req->user);
    /* A session is served where its user's data lives; a remote session (RELAY_HOME) is
     * that already. */
    if (s->relay == RELAY_NONE && cluster_is_enabled(w->srv->cluster) &&
        cluster_home(w->srv->cluster, app, req->user) != cluster_self(w->srv->cluster))
        return login_at_home(s, req, app, cluster_home(w->srv->cluster, app, req->user), body,
                             len);

    sl = mem_calloc(sizeof(*sl));
    sl->worker = w->index;
    sl->sid = s->sid;
    sl->req_id = req->req_id;
    snprintf(sl->app, sizeof(sl->app), "%s", app);
    snprintf(sl->user, sizeof(sl->user), "%s", req->user);
    snprintf(sl->device, sizeof(sl->device), "%s", req->device_id);
    sl->kind = (uint8_t)req->device_kind;
    set_ids(s, app, req->user, req->device_id);
    s->kind = (uint8_t)req->device_kind;
    memset(&ent, 0, sizeof(ent));
    ent.sid = s->sid;
    ent.worker = w->index;
    ent.kind = s->kind;
    snprintf(ent.device, sizeof(ent.device), "%s", s->device);
    /* Registered for pushes before the store reads latest_msg_id: a message committed
     * after that read is pushed, one committed before is within latest (PROTOCOL.md §6,
     * Delivery). Pushes that arrive before the LoginRsp wait behind it. */
    router_add(w->srv->router, s->app, s->user, &ent, conf->single_session, kicked, KICK_MAX,
               &nkicked, &first);
    s->routed = true;
    s->first_online = first;
    s->state = SESSION_ST_LIVE;
    s->max_len = FRAME_HDR + conf->max_body + FRAME_TAG;
    s->login_pending = true;
    s->tokens = (float)conf->send_burst;
    s->tb_ms = (uint32_t)worker_now(w);
    s->since_ms = worker_now(w);
    worker__list_move(w, s, &w->live);
    /* The store registers a new user, and reads the cursors after every write queued
     * before (a PUSH_ACK from this device's previous connection included); the LoginRsp
     * is sent when it answers, so a user is known to everyone once it is. */
    if (store_login(w->srv->store, sl) < 0) {
        mem_free(sl);
        session__unroute(s);
        return refuse(s, req->req_id, cim_Code_SERVER_BUSY, "server busy, try again", s->app,
                      s->user);
    }
    s->async_issued++;
    for (size_t i = 0; i < nkicked; i++)
        kick(s, &kicked[i]);
    return 0;
}

void session__login_done(session_t *s, store_login_t *sl)
{
    const conf_t *conf = s->w->srv->conf;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    uint32_t req_id = sl->req_id;
    char peer[PEER_ADDR_STRLEN];
    int code = sl->code;

    uint64_t sl_latest = sl->latest;

    rsp.latest_msg_id = sl->latest;
    rsp.acked_msg_id = sl->acked;
    mem_free(sl);
    if (code != cim_Code_OK) {
        session__unroute(s); /* still login_pending: the user never came online */
        s->login_pending = false;
        (void)refuse(s, req_id, code,
                     code == cim_Code_UNAUTHORIZED ? USER_DISABLED : "storage error; try again",
                     s->app, s->user);
        return;
    }
    s->login_pending = false;
    s->acked = rsp.acked_msg_id;
    /* Everything up to latest is the device's to SYNC: PUSH_ACK may go that far. */
    if (sl_latest > s->delivered)
        s->delivered = sl_latest;
    rsp.req_id = req_id;
    rsp.code = cim_Code_OK;
    rsp.server_time_ms = snowflake_now_ms();
    rsp.heartbeat_s = conf->heartbeat_s;
    rsp.max_body = conf->max_body;
    LOG_INFO("session %llx: %s/%s logged in from %s on device %s (kind %u)",
             (unsigned long long)s->sid, s->app, s->user, peer_addr_str(&s->peer, peer),
             s->device, s->kind);
    ctr_add(&s->w->stats.logins[cim_Code_OK], 1);
    if (session_send(s, FT_LOGIN_ACK, cim_LoginRsp_fields, &rsp) < 0)
        return; /* closed */
    session__release_pushes(s);
    if (s->first_online)
        session__presence(s, true);
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
    /* The user's last device going away (a kicked one was already replaced) */
    if (router_remove(s->w->srv->router, s->app, s->user, s->sid) && !s->login_pending)
        session__presence(s, false);
}
