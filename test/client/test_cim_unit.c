/* libcim without cimd: push decoding, req_id matching, and both drivers against a scripted
 * mock server (a thread speaking the protocol with core/chan's server half over loopback
 * TCP), so the client's handshake, sealing, reassembly, pipelining, heartbeat, timeouts and
 * close paths are checked independently of the real server. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "client/cim.h"
#include "client/cim_int.h"
#include "core/chan.h"
#include "core/frame.h"
#include "support/tcpinfo.h"
#include "support/test.h"

/* The runner's children end with _exit(), which skips LeakSanitizer: check explicitly. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() ASSERT_EQ(__lsan_do_recoverable_leak_check(), 0)
#else
#define LEAK_CHECK() ((void)0)
#endif

/* ---- the mock server ------------------------------------------------------------------ */

typedef struct msrv msrv_t;
typedef void (*msrv_script)(msrv_t *ms);

struct msrv {
    int lfd, fd, port;
    pthread_t th;
    chan_identity_t *id;
    uint8_t pub[CHAN_KEY];
    chan_ctx_t *ctx;
    chan_t ch;
    bool secure;
    bool trickle;         /* write frames one byte at a time */
    uint32_t heartbeat_s; /* for the LoginRsp */
    msrv_script script;
    void *arg;
};

static void ms_write(msrv_t *ms, const uint8_t *p, size_t n)
{
    size_t step = ms->trickle ? 1 : n;

    while (n > 0) {
        ssize_t w = send(ms->fd, p, step < n ? step : n, MSG_NOSIGNAL);
        ASSERT_TRUE(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Read exactly n bytes; false on EOF. */
static bool ms_read_n(msrv_t *ms, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(ms->fd, p, n, 0);
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* One frame's plaintext into body (cap 70000); false on EOF. */
static bool ms_read(msrv_t *ms, uint32_t *type, uint8_t *body, size_t *len)
{
    static __thread uint8_t frame[70000];
    uint32_t flen;

    if (!ms_read_n(ms, frame, FRAME_HDR))
        return false;
    frame_hdr_read(frame, &flen, type);
    ASSERT_TRUE(flen >= FRAME_HDR && flen <= sizeof(frame));
    ASSERT_TRUE(ms_read_n(ms, frame + FRAME_HDR, flen - FRAME_HDR));
    if (ms->secure) {
        ASSERT_OK(chan_open(ms->ctx, &ms->ch, frame, flen));
        flen -= FRAME_TAG;
    }
    *len = flen - FRAME_HDR;
    memcpy(body, frame + FRAME_HDR, *len);
    return true;
}

static void ms_send(msrv_t *ms, uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    uint8_t pt[4096], out[4096 + 24];
    pb_ostream_t s = pb_ostream_from_buffer(pt, sizeof(pt));

    ASSERT_TRUE(pb_encode(&s, fields, msg));
    if (ms->secure) {
        ASSERT_OK(chan_seal(ms->ctx, &ms->ch, type, pt, s.bytes_written, out));
        ms_write(ms, out, FRAME_HDR + s.bytes_written + FRAME_TAG);
    } else {
        frame_hdr_write(out, (uint32_t)(FRAME_HDR + s.bytes_written), type);
        memcpy(out + FRAME_HDR, pt, s.bytes_written);
        ms_write(ms, out, FRAME_HDR + s.bytes_written);
    }
}

static void ms_handshake(msrv_t *ms)
{
    cim_ClientHello ch = cim_ClientHello_init_zero;
    cim_ServerHello sh = cim_ServerHello_init_zero;
    uint8_t body[2048];
    uint32_t type;
    size_t len;

    ASSERT_TRUE(ms_read(ms, &type, body, &len));
    ASSERT_EQ(type, FT_HELLO);
    ASSERT_TRUE(len <= FRAME_HANDSHAKE_MAX);
    pb_istream_t is = pb_istream_from_buffer(body, len);
    ASSERT_TRUE(pb_decode(&is, cim_ClientHello_fields, &ch));
    ASSERT_EQ(ch.version, 1);
    ASSERT_EQ(ch.client_key.size, CHAN_KEY);
    ASSERT_EQ(ch.client_random.size, CHAN_RANDOM);
    sh.version = 1;
    sh.server_key.size = CHAN_KEY;
    sh.server_random.size = CHAN_RANDOM;
    sh.identity.size = CHAN_KEY;
    sh.signature.size = CHAN_SIG;
    ASSERT_OK(chan_server_handshake(ms->id, body, len, ch.client_key.bytes, sh.server_key.bytes,
                                    sh.server_random.bytes, sh.signature.bytes, &ms->ch));
    memcpy(sh.identity.bytes, ms->pub, CHAN_KEY);
    ms_send(ms, FT_HELLO_ACK, cim_ServerHello_fields, &sh);
    ms->secure = true;
}

/* Expect LOGIN with req_id 1 and accept it. */
static void ms_login(msrv_t *ms)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    uint8_t body[2048];
    uint32_t type;
    size_t len;

    ASSERT_TRUE(ms_read(ms, &type, body, &len));
    ASSERT_EQ(type, FT_LOGIN);
    pb_istream_t is = pb_istream_from_buffer(body, len);
    ASSERT_TRUE(pb_decode(&is, cim_LoginReq_fields, &req));
    ASSERT_EQ(req.req_id, 1);
    ASSERT_STREQ(req.user, "alice");
    rsp.req_id = req.req_id;
    rsp.code = cim_Code_OK;
    rsp.heartbeat_s = ms->heartbeat_s;
    rsp.max_body = 65536;
    rsp.latest_msg_id = 42;
    ms_send(ms, FT_LOGIN_ACK, cim_LoginRsp_fields, &rsp);
}

static void ms_push(msrv_t *ms, uint64_t id, const char *text)
{
    cim_Message m = cim_Message_init_zero;
    cimc_bytes_t b = {text, strlen(text)};

    m.msg_id = id;
    m.conv_type = cim_ConvType_DIRECT;
    snprintf(m.from, sizeof(m.from), "bob");
    snprintf(m.to, sizeof(m.to), "alice");
    m.msg_type = cim_MsgType_TEXT;
    cimc_bytes_encoder(&m.body, &b);
    ms_send(ms, FT_PUSH, cim_Message_fields, &m);
}

static void ms_bye(msrv_t *ms, cim_Code code)
{
    cim_Bye bye = cim_Bye_init_zero;

    bye.code = code;
    snprintf(bye.reason, sizeof(bye.reason), "mock says bye");
    ms_send(ms, FT_BYE, cim_Bye_fields, &bye);
}

/* Answer a PING with its PONG. */
static void ms_pong(msrv_t *ms, const uint8_t *body, size_t len)
{
    cim_Ping ping = cim_Ping_init_zero;
    cim_Pong pong = cim_Pong_init_zero;
    pb_istream_t is = pb_istream_from_buffer(body, len);

    ASSERT_TRUE(pb_decode(&is, cim_Ping_fields, &ping));
    pong.client_time_ms = ping.client_time_ms;
    pong.server_time_ms = 1;
    ms_send(ms, FT_PONG, cim_Pong_fields, &pong);
}

static void *ms_main(void *arg)
{
    msrv_t *ms = arg;

    ms->ctx = chan_ctx_new();
    ms->fd = accept(ms->lfd, NULL, NULL);
    ASSERT_TRUE(ms->fd >= 0);
    ms->script(ms);
    close(ms->fd);
    chan_ctx_free(ms->ctx);
    return NULL;
}

static void ms_start(msrv_t *ms, msrv_script script, uint32_t heartbeat_s, bool trickle)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);

    memset(ms, 0, sizeof(*ms));
    ASSERT_OK(cimc__global_init());
    ms->id = chan_identity_generate();
    chan_identity_public(ms->id, ms->pub);
    ms->script = script;
    ms->heartbeat_s = heartbeat_s;
    ms->trickle = trickle;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_TRUE((ms->lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    ASSERT_OK(bind(ms->lfd, (struct sockaddr *)&sa, sizeof(sa)));
    ASSERT_OK(listen(ms->lfd, 8));
    ASSERT_OK(getsockname(ms->lfd, (struct sockaddr *)&sa, &sl));
    ms->port = ntohs(sa.sin_port);
    ASSERT_OK(pthread_create(&ms->th, NULL, ms_main, ms));
}

static void ms_join(msrv_t *ms)
{
    ASSERT_OK(pthread_join(ms->th, NULL));
    close(ms->lfd);
    chan_identity_free(ms->id);
}

static cimc_opts_t ms_opts(const msrv_t *ms)
{
    cimc_opts_t o;

    memset(&o, 0, sizeof(o));
    o.host = "127.0.0.1";
    o.port = ms->port;
    o.pinned_key = ms->pub;
    o.timeout_ms = 3000;
    return o;
}

static void login_req(cim_LoginReq *req)
{
    memset(req, 0, sizeof(*req));
    snprintf(req->user, sizeof(req->user), "alice");
    snprintf(req->token, sizeof(req->token), "v1.0.x");
    snprintf(req->device_id, sizeof(req->device_id), "d1");
}

/* ---- pure pieces ---------------------------------------------------------------------- */

static size_t encode(const pb_msgdesc_t *f, const void *msg, uint8_t *buf, size_t cap)
{
    pb_ostream_t s = pb_ostream_from_buffer(buf, cap);
    ASSERT_TRUE(pb_encode(&s, f, msg));
    return s.bytes_written;
}

TEST(cimc_push_decode_message_body)
{
    cim_Message m = cim_Message_init_zero;
    cimc_bytes_t b = {"hello, world", 12};
    cimc_push_t p;
    uint8_t buf[512];
    size_t n;

    m.msg_id = 123456789012345ULL;
    m.conv_type = cim_ConvType_GROUP;
    snprintf(m.from, sizeof(m.from), "bob");
    snprintf(m.to, sizeof(m.to), "77");
    m.msg_type = cim_MsgType_TEXT;
    m.time_ms = 99;
    m.flags = 1;
    cimc_bytes_encoder(&m.body, &b);
    n = encode(cim_Message_fields, &m, buf, sizeof(buf));
    ASSERT_OK(cimc_push_decode(FT_PUSH, buf, n, &p));
    ASSERT_EQ(p.type, FT_PUSH);
    ASSERT_U64_EQ(p.u.msg.msg_id, 123456789012345ULL);
    ASSERT_EQ(p.u.msg.conv_type, cim_ConvType_GROUP);
    ASSERT_STREQ(p.u.msg.from, "bob");
    ASSERT_STREQ(p.u.msg.to, "77");
    ASSERT_EQ(p.u.msg.flags, 1);
    ASSERT_EQ(p.body_len, 12);
    ASSERT_MEMEQ(p.body_data, "hello, world", 12);
    cimc_push_free(&p);
    ASSERT_NULL(p.body_data);

    /* no body at all, and an empty one */
    m.body.funcs.encode = NULL;
    n = encode(cim_Message_fields, &m, buf, sizeof(buf));
    ASSERT_OK(cimc_push_decode(FT_PUSH, buf, n, &p));
    ASSERT_EQ(p.body_len, 0);
    cimc_push_free(&p);
    b.len = 0;
    cimc_bytes_encoder(&m.body, &b);
    n = encode(cim_Message_fields, &m, buf, sizeof(buf));
    ASSERT_OK(cimc_push_decode(FT_PUSH, buf, n, &p));
    ASSERT_EQ(p.body_len, 0);
    cimc_push_free(&p);
    LEAK_CHECK();
}

TEST(cimc_push_decode_event_bye_and_garbage)
{
    cim_Event e = cim_Event_init_zero;
    cim_Bye bye = cim_Bye_init_zero;
    cimc_push_t p;
    uint8_t buf[512];
    size_t n;

    e.kind = cim_EventKind_PRESENCE;
    snprintf(e.user, sizeof(e.user), "carol");
    e.online = true;
    n = encode(cim_Event_fields, &e, buf, sizeof(buf));
    ASSERT_OK(cimc_push_decode(FT_EVENT, buf, n, &p));
    ASSERT_EQ(p.u.event.kind, cim_EventKind_PRESENCE);
    ASSERT_STREQ(p.u.event.user, "carol");
    ASSERT_TRUE(p.u.event.online);
    cimc_push_free(&p);

    bye.code = cim_Code_KICKED;
    snprintf(bye.reason, sizeof(bye.reason), "elsewhere");
    n = encode(cim_Bye_fields, &bye, buf, sizeof(buf));
    ASSERT_OK(cimc_push_decode(FT_BYE, buf, n, &p));
    ASSERT_EQ(p.u.bye.code, cim_Code_KICKED);
    ASSERT_STREQ(p.u.bye.reason, "elsewhere");
    cimc_push_free(&p);

    ASSERT_RC(cimc_push_decode(FT_PONG, buf, n, &p), RC_EPROTO);
    memset(buf, 0xff, 16);
    ASSERT_RC(cimc_push_decode(FT_PUSH, buf, 16, &p), RC_EPROTO);
    ASSERT_RC(cimc_push_decode(FT_EVENT, buf, 3, &p), RC_EPROTO);
    /* a body field claiming more bytes than the frame holds */
    buf[0] = 0x32; /* field 6, length-delimited */
    buf[1] = 100;
    ASSERT_RC(cimc_push_decode(FT_PUSH, buf, 10, &p), RC_EPROTO);
    LEAK_CHECK();
}

/* SyncRsp.messages: three messages written by an encode callback ... */
static bool enc_three(pb_ostream_t *s, const pb_field_t *f, void *const *arg)
{
    static const char *const texts[] = {"one", "two", ""};

    (void)arg;
    for (int i = 0; i < 3; i++) {
        cim_Message m = cim_Message_init_zero;
        cimc_bytes_t b = {texts[i], strlen(texts[i])};
        m.msg_id = 100 + (uint64_t)i;
        snprintf(m.from, sizeof(m.from), "u%d", i);
        cimc_bytes_encoder(&m.body, &b);
        if (!pb_encode_tag_for_field(s, f) || !pb_encode_submessage(s, cim_Message_fields, &m))
            return false;
    }
    return true;
}

typedef struct got {
    int n;
    uint64_t ids[4];
    char bodies[4][8];
} got_t;

/* ... and read back through cimc_message_decode, as a sync command would. */
static bool dec_msg(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    got_t *g = *arg;
    cimc_push_t m;

    (void)f;
    if (g->n == 4 || cimc_message_decode(s, &m) < 0)
        return false;
    g->ids[g->n] = m.u.msg.msg_id;
    snprintf(g->bodies[g->n], sizeof(g->bodies[0]), "%.*s", (int)m.body_len,
             m.body_len ? (const char *)m.body_data : "");
    g->n++;
    cimc_push_free(&m);
    return true;
}

TEST(cimc_message_decode_in_sync_page)
{
    cim_SyncRsp out = cim_SyncRsp_init_zero, in = cim_SyncRsp_init_zero;
    uint8_t buf[1024];
    got_t g;
    size_t n;

    memset(&g, 0, sizeof(g));
    out.req_id = 9;
    out.remain = 5;
    out.messages.funcs.encode = enc_three;
    n = encode(cim_SyncRsp_fields, &out, buf, sizeof(buf));
    in.messages.funcs.decode = dec_msg;
    in.messages.arg = &g;
    ASSERT_OK(cimc_decode(cim_SyncRsp_fields, buf, n, &in));
    ASSERT_EQ(in.req_id, 9);
    ASSERT_EQ(in.remain, 5);
    ASSERT_EQ(g.n, 3);
    ASSERT_U64_EQ(g.ids[0], 100);
    ASSERT_U64_EQ(g.ids[2], 102);
    ASSERT_STREQ(g.bodies[0], "one");
    ASSERT_STREQ(g.bodies[1], "two");
    ASSERT_STREQ(g.bodies[2], "");
    /* a truncated page is malformed */
    memset(&g, 0, sizeof(g));
    ASSERT_RC(cimc_decode(cim_SyncRsp_fields, buf, n - 3, &in), RC_EPROTO);
    LEAK_CHECK();
}

TEST(cimc_req_id_set_and_peek)
{
    cimc_t c;
    cim_SendReq send = cim_SendReq_init_zero;
    cim_Ping ping = cim_Ping_init_zero;
    cim_Result res = cim_Result_init_zero;
    uint8_t buf[128];
    size_t n;

    memset(&c, 0, sizeof(c));
    cimc__init(&c, CIMC_MODE_BLOCKING, NULL);
    ASSERT_EQ(cimc__set_req_id(&c, cim_SendReq_fields, &send), 1);
    ASSERT_EQ(send.req_id, 1);
    ASSERT_EQ(cimc__set_req_id(&c, cim_SendReq_fields, &send), 2);
    ASSERT_EQ(send.req_id, 2);
    /* Ping's field 1 is a uint64 time: no req_id */
    ping.client_time_ms = 5;
    ASSERT_EQ(cimc__set_req_id(&c, cim_Ping_fields, &ping), 0);
    ASSERT_U64_EQ(ping.client_time_ms, 5);
    /* the counter skips 0 when it wraps */
    c.next_req_id = UINT32_MAX;
    ASSERT_EQ(cimc__set_req_id(&c, cim_SendReq_fields, &send), UINT32_MAX);
    ASSERT_EQ(cimc__set_req_id(&c, cim_SendReq_fields, &send), 1);

    res.req_id = 77;
    res.code = cim_Code_NOT_FOUND;
    snprintf(res.reason, sizeof(res.reason), "no");
    n = encode(cim_Result_fields, &res, buf, sizeof(buf));
    ASSERT_EQ(cimc__peek_req_id(buf, n), 77);
    res.req_id = 0;
    n = encode(cim_Result_fields, &res, buf, sizeof(buf));
    ASSERT_EQ(cimc__peek_req_id(buf, n), 0);
    ASSERT_EQ(cimc__peek_req_id(buf, 0), 0);
    memset(buf, 0xff, 8);
    ASSERT_EQ(cimc__peek_req_id(buf, 8), 0);
    cimc__release(&c);
    LEAK_CHECK();
}

TEST(cimc_code_names)
{
    ASSERT_STREQ(cimc_code_str(cim_Code_OK), "OK");
    ASSERT_STREQ(cimc_code_str(cim_Code_UNAUTHORIZED), "UNAUTHORIZED");
    ASSERT_STREQ(cimc_code_str(cim_Code_TIMEOUT), "TIMEOUT");
    ASSERT_STREQ(cimc_code_str(17), "UNKNOWN");
    ASSERT_STREQ(cimc_code_str(-1), "UNKNOWN");
    LEAK_CHECK();
}

/* ---- blocking driver against the mock ------------------------------------------------- */

/* Login, then: a PING answered only after a PUSH, a request answered after a stale answer
 * and an EVENT, then BYE and close. */
static void script_blocking(msrv_t *ms)
{
    cim_Result stale = cim_Result_init_zero, res = cim_Result_init_zero;
    cim_Event ev = cim_Event_init_zero;
    cim_UserReq ureq = cim_UserReq_init_zero;
    uint8_t body[2048];
    uint32_t type;
    size_t len;

    ms_handshake(ms);
    ms_login(ms);
    ASSERT_TRUE(ms_read(ms, &type, body, &len));
    ASSERT_EQ(type, FT_PING);
    ms_push(ms, 1000, "first");
    ms_pong(ms, body, len);

    ASSERT_TRUE(ms_read(ms, &type, body, &len));
    ASSERT_EQ(type, FT_CONTACT_ADD);
    pb_istream_t is = pb_istream_from_buffer(body, len);
    ASSERT_TRUE(pb_decode(&is, cim_UserReq_fields, &ureq));
    ASSERT_EQ(ureq.req_id, 2);
    ASSERT_STREQ(ureq.user, "bob");
    stale.req_id = 1; /* not the one awaited: dropped */
    ms_send(ms, FT_CONTACT_ADD_ACK, cim_Result_fields, &stale);
    ev.kind = cim_EventKind_PRESENCE;
    snprintf(ev.user, sizeof(ev.user), "bob");
    ms_send(ms, FT_EVENT, cim_Event_fields, &ev);
    res.req_id = 2;
    res.code = cim_Code_NOT_FOUND;
    snprintf(res.reason, sizeof(res.reason), "no such user");
    ms_send(ms, FT_CONTACT_ADD_ACK, cim_Result_fields, &res);

    /* PUSH_ACK has no answer */
    ASSERT_TRUE(ms_read(ms, &type, body, &len));
    ASSERT_EQ(type, FT_PUSH_ACK);
    ms_push(ms, 1001, "second");
    ms_bye(ms, cim_Code_KICKED);
}

static int pushes_seen;

static void count_push(void *ctx, const cimc_push_t *p)
{
    (void)ctx;
    (void)p;
    pushes_seen++;
}

static void blocking_session(bool trickle)
{
    msrv_t ms;
    cimc_opts_t o;
    cimc_t *c = NULL;
    cim_LoginReq req;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    cim_UserReq ureq = cim_UserReq_init_zero;
    cim_Result res = cim_Result_init_zero;
    cim_DeliveredReq ack = cim_DeliveredReq_init_zero;
    cimc_push_t p;
    uint64_t rtt;

    ms_start(&ms, script_blocking, 30, trickle);
    o = ms_opts(&ms);
    ASSERT_OK(cimc_connect(&o, &c));
    ASSERT_MEMEQ(cimc_server_key(c), ms.pub, CHAN_KEY);
    ASSERT_EQ(cimc_ping_due_ms(c), -1); /* not logged in */
    cimc_on_push(c, count_push, NULL);
    login_req(&req);
    ASSERT_OK(cimc_login(c, &req, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_U64_EQ(rsp.latest_msg_id, 42);
    ASSERT_TRUE(cimc_ping_due_ms(c) > 29000);
    ASSERT_OK(cimc_ping(c, &rtt));
    ASSERT_EQ(pushes_seen, 1);

    snprintf(ureq.user, sizeof(ureq.user), "bob");
    ASSERT_OK(cimc_call(c, FT_CONTACT_ADD, cim_UserReq_fields, &ureq, FT_CONTACT_ADD_ACK,
                        cim_Result_fields, &res));
    ASSERT_EQ(ureq.req_id, 2);
    ASSERT_EQ(res.req_id, 2);
    ASSERT_EQ(res.code, cim_Code_NOT_FOUND);
    ASSERT_STREQ(res.reason, "no such user");
    ASSERT_EQ(pushes_seen, 2);

    ack.up_to_msg_id = 1000;
    ASSERT_OK(cimc_send_msg(c, FT_PUSH_ACK, cim_DeliveredReq_fields, &ack));

    /* queued in order: the PUSH, the EVENT, then (read now) the second PUSH and the BYE */
    ASSERT_OK(cimc_next_push(c, 2000, &p));
    ASSERT_EQ(p.type, FT_PUSH);
    ASSERT_U64_EQ(p.u.msg.msg_id, 1000);
    ASSERT_EQ(p.body_len, 5);
    ASSERT_MEMEQ(p.body_data, "first", 5);
    cimc_push_free(&p);
    ASSERT_OK(cimc_next_push(c, 2000, &p));
    ASSERT_EQ(p.type, FT_EVENT);
    ASSERT_STREQ(p.u.event.user, "bob");
    cimc_push_free(&p);
    ASSERT_OK(cimc_next_push(c, 2000, &p));
    ASSERT_EQ(p.type, FT_PUSH);
    ASSERT_MEMEQ(p.body_data, "second", 6);
    cimc_push_free(&p);
    ASSERT_OK(cimc_next_push(c, 2000, &p));
    ASSERT_EQ(p.type, FT_BYE);
    ASSERT_EQ(p.u.bye.code, cim_Code_KICKED);
    cimc_push_free(&p);
    ASSERT_RC(cimc_next_push(c, 2000, &p), RC_ECLOSED);
    ASSERT_OK(cimc_wait_closed(c, 2000));
    ASSERT_NOT_NULL(cimc_bye(c));
    ASSERT_EQ(cimc_bye(c)->code, cim_Code_KICKED);
    ASSERT_RC(cimc_ping(c, NULL), RC_ECLOSED);
    ASSERT_EQ(pushes_seen, 4);
    cimc_close(c);
    ms_join(&ms);
}

TEST(cimc_blocking_session)
{
    blocking_session(false);
    LEAK_CHECK();
}

TEST(cimc_blocking_session_trickled)
{
    blocking_session(true);
    LEAK_CHECK();
}

static void script_handshake_only(msrv_t *ms)
{
    uint8_t body[64];
    uint32_t type;
    size_t len;

    ms_handshake(ms);
    while (ms_read(ms, &type, body, &len)) /* until the client hangs up */
        ;
}

TEST(cimc_blocking_wrong_key)
{
    msrv_t ms;
    uint8_t wrong[CHAN_KEY], seen[CHAN_KEY];
    cimc_opts_t o;
    cimc_t *c = NULL;

    ms_start(&ms, script_handshake_only, 30, false);
    o = ms_opts(&ms);
    memcpy(wrong, ms.pub, CHAN_KEY);
    wrong[0] ^= 1;
    o.pinned_key = wrong;
    o.key_seen = seen;
    ASSERT_RC(cimc_connect(&o, &c), RC_EKEY);
    ASSERT_NULL(c);
    ASSERT_MEMEQ(seen, ms.pub, CHAN_KEY);
    ms_join(&ms);
    LEAK_CHECK();
}

TEST(cimc_blocking_no_key_needs_tofu)
{
    msrv_t ms;
    uint8_t seen[CHAN_KEY];
    cimc_opts_t o;
    cimc_t *c = NULL;

    ms_start(&ms, script_handshake_only, 30, false);
    o = ms_opts(&ms);
    o.pinned_key = NULL;
    o.key_seen = seen;
    ASSERT_RC(cimc_connect(&o, &c), RC_EKEY);
    ASSERT_MEMEQ(seen, ms.pub, CHAN_KEY);
    ms_join(&ms);

    ms_start(&ms, script_handshake_only, 30, false);
    o = ms_opts(&ms);
    o.pinned_key = NULL;
    o.trust_on_first_use = true;
    ASSERT_OK(cimc_connect(&o, &c));
    ASSERT_MEMEQ(cimc_server_key(c), ms.pub, CHAN_KEY);
    cimc_close(c);
    ms_join(&ms);
    LEAK_CHECK();
}

TEST(cimc_blocking_refused)
{
    msrv_t ms;
    cimc_opts_t o;
    cimc_t *c = NULL;

    ms_start(&ms, script_handshake_only, 30, false);
    o = ms_opts(&ms);
    /* nobody listens on the port once this connection is gone */
    ASSERT_OK(cimc_connect(&o, &c));
    cimc_close(c);
    ms_join(&ms);
    ASSERT_RC(cimc_connect(&o, &c), -ECONNREFUSED);
    LEAK_CHECK();
}

/* ---- async driver against the mock ---------------------------------------------------- */

#define PIPELINED 200

typedef struct actx {
    uv_loop_t *loop;
    cimc_async_loop_t *al;
    cimc_t *c;
    int ready_status;
    int ready_calls;
    int login_code;
    int answered;
    int in_order; /* answers whose req_id matched the one sent */
    int failed;   /* requests completed with an error */
    int fail_status;
    int pushes;
    int pongs;
    int close_status;
    int close_calls;
    int bye_code;
    uint32_t sent_ids[PIPELINED];
} actx_t;

static void a_on_ready(cimc_t *c, void *ctx, int status, const cim_LoginRsp *rsp)
{
    actx_t *a = ctx;

    a->c = c;
    a->ready_status = status;
    a->ready_calls++;
    a->login_code = rsp != NULL ? (int)rsp->code : -1;
}

static void a_on_push(cimc_t *c, void *ctx, const cimc_push_t *p)
{
    actx_t *a = ctx;

    (void)c;
    ASSERT_EQ(p->type, FT_PUSH);
    ASSERT_EQ(p->body_len, 4);
    a->pushes++;
}

static void a_on_close(cimc_t *c, void *ctx, int status, const cim_Bye *bye)
{
    actx_t *a = ctx;

    (void)c;
    a->close_status = status;
    a->close_calls++;
    a->bye_code = bye != NULL ? (int)bye->code : -1;
    a->c = NULL;
}

static const cimc_async_cbs_t a_cbs = {a_on_ready, a_on_push, a_on_close};

/* Pipelined CONTACT_LISTs answered in order, a PUSH after each, then BYE. */
static void script_pipelined(msrv_t *ms)
{
    cim_Req req;
    cim_ContactListRsp rsp;
    uint8_t body[2048];
    uint32_t type;
    size_t len;

    ms_handshake(ms);
    ms_login(ms);
    for (int i = 0; i < PIPELINED; i++) {
        ASSERT_TRUE(ms_read(ms, &type, body, &len));
        ASSERT_EQ(type, FT_CONTACT_LIST);
        memset(&req, 0, sizeof(req));
        pb_istream_t is = pb_istream_from_buffer(body, len);
        ASSERT_TRUE(pb_decode(&is, cim_Req_fields, &req));
        ASSERT_EQ(req.req_id, (uint32_t)i + 2); /* 1 was the LOGIN */
        memset(&rsp, 0, sizeof(rsp));
        rsp.req_id = req.req_id;
        ms_send(ms, FT_CONTACT_LIST_ACK, cim_ContactListRsp_fields, &rsp);
        ms_push(ms, 5000 + (uint64_t)i, "ping");
    }
    ms_bye(ms, cim_Code_SHUTTING_DOWN);
}

typedef struct rctx {
    actx_t *a;
    int index;
} rctx_t;

static rctx_t rctxs[PIPELINED];

static void a_on_answer(cimc_t *c, void *ctx, int status, uint32_t type, const uint8_t *body,
                        size_t len)
{
    rctx_t *r = ctx;
    cim_ContactListRsp rsp = cim_ContactListRsp_init_zero;

    (void)c;
    if (status < 0) {
        r->a->failed++;
        r->a->fail_status = status;
        return;
    }
    ASSERT_EQ(type, FT_CONTACT_LIST_ACK);
    ASSERT_OK(cimc_decode(cim_ContactListRsp_fields, body, len, &rsp));
    if (rsp.req_id == r->a->sent_ids[r->index])
        r->a->in_order++;
    r->a->answered++;
}

static void a_send_all(uv_idle_t *idle)
{
    actx_t *a = idle->data;
    cim_Req req;

    if (a->c == NULL || a->ready_calls == 0)
        return;
    uv_idle_stop(idle);
    for (int i = 0; i < PIPELINED; i++) {
        memset(&req, 0, sizeof(req));
        rctxs[i].a = a;
        rctxs[i].index = i;
        ASSERT_OK(cimc_async_request(a->c, FT_CONTACT_LIST, cim_Req_fields, &req,
                                     FT_CONTACT_LIST_ACK, a_on_answer, &rctxs[i], &a->sent_ids[i]));
        ASSERT_EQ(req.req_id, a->sent_ids[i]);
    }
    ASSERT_EQ(cimc_async_pending(a->c), PIPELINED);
}

static void run_async_cbs(msrv_t *ms, actx_t *a, const cimc_opts_t *o,
                          const cimc_async_cbs_t *cbs, bool login, void (*on_idle)(uv_idle_t *))
{
    uv_loop_t loop;
    uv_idle_t idle;
    cim_LoginReq req;

    memset(a, 0, sizeof(*a));
    ASSERT_OK(uv_loop_init(&loop));
    a->loop = &loop;
    ASSERT_OK(cimc_async_loop_new(&loop, &a->al));
    login_req(&req);
    ASSERT_OK(cimc_async_connect(a->al, o, login ? &req : NULL, cbs, a, &a->c));
    ASSERT_EQ(cimc_async_loop_count(a->al), 1);
    if (on_idle != NULL) {
        ASSERT_OK(uv_idle_init(&loop, &idle));
        idle.data = a;
        ASSERT_OK(uv_idle_start(&idle, on_idle));
    }
    while (a->close_calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    if (on_idle != NULL)
        uv_close((uv_handle_t *)&idle, NULL);
    ASSERT_EQ(cimc_async_loop_count(a->al), 0);
    cimc_async_loop_free(a->al);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));
    (void)ms;
}

static void run_async(msrv_t *ms, actx_t *a, const cimc_opts_t *o, bool login,
                      void (*on_idle)(uv_idle_t *))
{
    run_async_cbs(ms, a, o, &a_cbs, login, on_idle);
}

static void async_pipelined(bool trickle)
{
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;

    ms_start(&ms, script_pipelined, 30, trickle);
    o = ms_opts(&ms);
    o.timeout_ms = 4000;
    run_async(&ms, &a, &o, true, a_send_all);
    ms_join(&ms);
    ASSERT_EQ(a.ready_calls, 1);
    ASSERT_EQ(a.ready_status, 0);
    ASSERT_EQ(a.login_code, cim_Code_OK);
    ASSERT_EQ(a.answered, PIPELINED);
    ASSERT_EQ(a.in_order, PIPELINED);
    ASSERT_EQ(a.failed, 0);
    ASSERT_EQ(a.pushes, PIPELINED);
    ASSERT_EQ(a.close_calls, 1);
    ASSERT_EQ(a.close_status, RC_ECLOSED);
    ASSERT_EQ(a.bye_code, cim_Code_SHUTTING_DOWN);
}

TEST(cimc_async_pipelined_requests)
{
    async_pipelined(false);
    LEAK_CHECK();
}

TEST_TIMEOUT(cimc_async_pipelined_trickled, 20)
{
    async_pipelined(true);
    LEAK_CHECK();
}

/* heartbeat_s = 1: an idle client must PING; after two, the server says BYE. */
static void script_heartbeat(msrv_t *ms)
{
    uint8_t body[256];
    uint32_t type;
    size_t len;
    struct timespec t0, t1;

    ms_handshake(ms);
    ms_login(ms);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 2; i++) {
        ASSERT_TRUE(ms_read(ms, &type, body, &len));
        ASSERT_EQ(type, FT_PING);
        ms_pong(ms, body, len);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* two pings a heartbeat (1 s, checked every 250 ms) apart */
    ASSERT_TRUE(t1.tv_sec - t0.tv_sec >= 1);
    ASSERT_TRUE(t1.tv_sec - t0.tv_sec <= 3);
    ms_bye(ms, cim_Code_TIMEOUT);
}

TEST(cimc_async_heartbeat)
{
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;

    ms_start(&ms, script_heartbeat, 1, false);
    o = ms_opts(&ms);
    run_async(&ms, &a, &o, true, NULL);
    ms_join(&ms);
    ASSERT_EQ(a.ready_status, 0);
    ASSERT_EQ(a.close_status, RC_ECLOSED);
    ASSERT_EQ(a.bye_code, cim_Code_TIMEOUT);
    LEAK_CHECK();
}

/* Never answers anything after the handshake. */
static void script_silent(msrv_t *ms)
{
    uint8_t body[2048];
    uint32_t type;
    size_t len;

    ms_handshake(ms);
    while (ms_read(ms, &type, body, &len))
        ;
}

TEST(cimc_async_login_timeout)
{
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;

    ms_start(&ms, script_silent, 30, false);
    o = ms_opts(&ms);
    o.timeout_ms = 300;
    run_async(&ms, &a, &o, true, NULL);
    ms_join(&ms);
    ASSERT_EQ(a.ready_calls, 1);
    ASSERT_EQ(a.ready_status, RC_ETIMEDOUT);
    ASSERT_EQ(a.close_status, RC_ETIMEDOUT);
    ASSERT_EQ(a.bye_code, -1);
    LEAK_CHECK();
}

static void a_ping_once(uv_idle_t *idle)
{
    actx_t *a = idle->data;

    if (a->c == NULL || a->ready_calls == 0)
        return;
    uv_idle_stop(idle);
    rctxs[0].a = a;
    rctxs[0].index = 0;
    ASSERT_OK(cimc_async_ping(a->c, a_on_answer, &rctxs[0]));
}

TEST(cimc_async_answer_timeout)
{
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;

    ms_start(&ms, script_silent, 30, false);
    o = ms_opts(&ms);
    o.timeout_ms = 300;
    run_async(&ms, &a, &o, false, a_ping_once); /* no login: ready after the handshake */
    ms_join(&ms);
    ASSERT_EQ(a.ready_status, 0);
    ASSERT_EQ(a.login_code, -1);
    ASSERT_EQ(a.failed, 1);
    ASSERT_EQ(a.fail_status, RC_ETIMEDOUT);
    ASSERT_EQ(a.close_status, RC_ETIMEDOUT);
    LEAK_CHECK();
}

/* ---- frames written from a read's callbacks leave together --------------------------- */

#define CORKED 20

/* Push 1: the client answers with CORKED requests from the push's callback; they must
 * arrive in one data segment. Push 2: a request, then a close, from the callback; the
 * request must still arrive, then the end of the stream. */
static void script_corked(msrv_t *ms)
{
    uint8_t body[2048];
    uint32_t type, before;
    size_t len;

    ms_handshake(ms);
    ms_login(ms);
    before = ttcp_data_segs_in(ms->fd);
    ms_push(ms, 1, "ping");
    for (int i = 0; i < CORKED; i++) {
        ASSERT_TRUE(ms_read(ms, &type, body, &len));
        ASSERT_EQ(type, FT_CONTACT_LIST);
    }
    ASSERT_EQ(ttcp_data_segs_in(ms->fd) - before, 1);
    ms_push(ms, 2, "ping");
    ASSERT_TRUE(ms_read(ms, &type, body, &len));
    ASSERT_EQ(type, FT_CONTACT_LIST);
    ASSERT_TRUE(!ms_read(ms, &type, body, &len)); /* the end of the stream */
}

static void a_on_push_send(cimc_t *c, void *ctx, const cimc_push_t *p)
{
    actx_t *a = ctx;
    cim_Req req;

    (void)p;
    a->pushes++;
    for (int i = 0; i < (a->pushes == 1 ? CORKED : 1); i++) {
        memset(&req, 0, sizeof(req));
        ASSERT_OK(cimc_async_request(c, FT_CONTACT_LIST, cim_Req_fields, &req,
                                     FT_CONTACT_LIST_ACK, NULL, NULL, NULL));
    }
    if (a->pushes == 2)
        cimc_async_close(c);
}

TEST(cimc_async_callback_writes_corked)
{
    static const cimc_async_cbs_t cbs = {a_on_ready, a_on_push_send, a_on_close};
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;

    ms_start(&ms, script_corked, 30, false);
    o = ms_opts(&ms);
    run_async_cbs(&ms, &a, &o, &cbs, true, NULL);
    ms_join(&ms);
    ASSERT_EQ(a.ready_status, 0);
    ASSERT_EQ(a.pushes, 2);
    ASSERT_EQ(a.close_status, 0); /* closed by the client */
    LEAK_CHECK();
}

static void a_close_now(uv_idle_t *idle)
{
    actx_t *a = idle->data;
    cim_Req req = cim_Req_init_zero;

    if (a->c == NULL || a->ready_calls == 0)
        return;
    uv_idle_stop(idle);
    rctxs[0].a = a;
    rctxs[0].index = 0;
    ASSERT_OK(cimc_async_request(a->c, FT_CONTACT_LIST, cim_Req_fields, &req, FT_CONTACT_LIST_ACK,
                                 a_on_answer, &rctxs[0], NULL));
    cimc_async_close(a->c);
    ASSERT_RC(cimc_async_ping(a->c, NULL, NULL), RC_ECLOSED);
    ASSERT_EQ(a->failed, 0); /* never from inside a call */
}

TEST(cimc_async_local_close)
{
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;

    ms_start(&ms, script_silent, 30, false);
    o = ms_opts(&ms);
    run_async(&ms, &a, &o, false, a_close_now);
    ms_join(&ms);
    ASSERT_EQ(a.failed, 1);
    ASSERT_EQ(a.fail_status, RC_ECLOSED);
    ASSERT_EQ(a.close_status, 0);
    ASSERT_EQ(a.close_calls, 1);
    LEAK_CHECK();
}

TEST(cimc_async_wrong_key_and_refused)
{
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;
    uint8_t wrong[CHAN_KEY];

    ms_start(&ms, script_handshake_only, 30, false);
    o = ms_opts(&ms);
    memcpy(wrong, ms.pub, CHAN_KEY);
    wrong[5] ^= 0x40;
    o.pinned_key = wrong;
    run_async(&ms, &a, &o, true, NULL);
    ms_join(&ms);
    ASSERT_EQ(a.ready_calls, 1);
    ASSERT_EQ(a.ready_status, RC_EKEY);
    ASSERT_EQ(a.close_status, RC_EKEY);

    /* the listener is closed now */
    run_async(&ms, &a, &o, true, NULL);
    ASSERT_EQ(a.ready_status, UV_ECONNREFUSED);
    ASSERT_EQ(a.close_calls, 1);
    LEAK_CHECK();
}

TEST(cimc_async_name_lookup)
{
    msrv_t ms;
    actx_t a;
    cimc_opts_t o;

    ms_start(&ms, script_pipelined, 30, false);
    o = ms_opts(&ms);
    o.host = "localhost";
    run_async(&ms, &a, &o, true, a_send_all);
    ms_join(&ms);
    ASSERT_EQ(a.ready_status, 0);
    ASSERT_EQ(a.answered, PIPELINED);
    LEAK_CHECK();
}

TEST(cimc_async_loop_free_closes_all)
{
    msrv_t ms;
    uv_loop_t loop;
    cimc_async_loop_t *al;
    actx_t a;
    cimc_opts_t o;
    cim_LoginReq req;

    ms_start(&ms, script_silent, 30, false);
    o = ms_opts(&ms);
    memset(&a, 0, sizeof(a));
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_OK(cimc_async_loop_new(&loop, &al));
    login_req(&req);
    ASSERT_OK(cimc_async_connect(al, &o, &req, &a_cbs, &a, NULL));
    for (int i = 0; i < 20 && a.ready_calls == 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
    cimc_async_loop_free(al); /* while the login is in flight */
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(a.ready_calls, 1);
    ASSERT_EQ(a.ready_status, RC_ECLOSED);
    ASSERT_EQ(a.close_calls, 1);
    ASSERT_EQ(a.close_status, 0);
    ASSERT_OK(uv_loop_close(&loop));
    ms_join(&ms);
    LEAK_CHECK();
}
