/* Integration: one-to-one messaging while both ends are online — SEND / SEND_ACK, PUSH to
 * every device, ids, client_msg_id dedup, every rejection code, transient messages, and
 * answer order under pipelining (PROTOCOL.md §3, §5, §6). A real cimd through libcim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <pb_encode.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define BODY_MAX 70000

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* The next push on @p c must be exactly this message. */
static void expect_push(cimc_t *c, uint64_t msg_id, const char *from, const char *to,
                        const char *cmid, int msg_type, const void *body, size_t len)
{
    static uint8_t buf[BODY_MAX];
    tmsg_t m;
    ASSERT_OK(tmsg_next_push(c, 5000, &m, buf, sizeof(buf)));
    ASSERT_U64_EQ(m.msg_id, msg_id);
    ASSERT_EQ(m.conv_type, cim_ConvType_DIRECT);
    ASSERT_STREQ(m.from, from);
    ASSERT_STREQ(m.to, to);
    ASSERT_STREQ(m.client_msg_id, cmid);
    ASSERT_EQ(m.msg_type, msg_type);
    ASSERT_EQ(m.body_len, len);
    ASSERT_NOT_NULL(m.body);
    if (len > 0)
        ASSERT_MEMEQ(m.body, body, len);
    ASSERT_EQ(m.flags, 0);
}

/* A rejection: the code, a readable reason, the client_msg_id echoed, no id. */
static void expect_reject(int rc, const cim_SendRsp *rsp, int code)
{
    ASSERT_OK(rc);
    if ((int)rsp->code != code)
        TEST_FAIL_("SEND answered %s (%s), want %s", cimc_code_str(rsp->code), rsp->reason,
                   cimc_code_str(code));
    ASSERT_TRUE(rsp->reason[0] != '\0');
    ASSERT_U64_EQ(rsp->msg_id, 0);
}

/* After a rejection on @p c: the connection still answers, and another session can still
 * send to bob, who gets exactly that message next (so the rejected one was not pushed). */
static void expect_alive(cimc_t *c, cimc_t *other, cimc_t *bob, const char *other_user)
{
    static int n;
    char cmid[32], body[32];
    cim_SendRsp rsp;

    ASSERT_OK(cimc_ping(c, NULL));
    snprintf(cmid, sizeof(cmid), "alive-%d", ++n);
    snprintf(body, sizeof(body), "still here %d", n);
    ASSERT_OK(tmsg_send(other, "bob", cmid, cim_MsgType_TEXT, body, strlen(body), false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    expect_push(bob, rsp.msg_id, other_user, "bob", cmid, cim_MsgType_TEXT, body, strlen(body));
}

/* Nothing of @p user's was stored: a fresh device's SYNC is empty. */
static void expect_timeline_len(const tsrv_t *t, const char *user, size_t want)
{
    static tmsg_t msgs[64];
    tmsg_page_t p;
    char dev[32];
    static int n;
    snprintf(dev, sizeof(dev), "probe-%d", ++n);
    cimc_t *c = tsrv_login(t, user, dev, NULL);
    tmsg_page_init(&p, msgs, 64, NULL, 0);
    ASSERT_OK(tmsg_sync_all(c, 0, 0, &p));
    ASSERT_EQ(p.n_seen, want);
    cimc_close(c);
}

TEST_TIMEOUT(e2e_direct_online_push, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    uint8_t img[300];
    uint64_t t0, t1;

    tsrv_start(&t, NULL);
    cimc_t *b = tmsg_login(&t, "bob", "b-phone", cim_DeviceKind_MOBILE, NULL);
    cimc_t *a = tmsg_login(&t, "alice", "a-desk", cim_DeviceKind_DESKTOP, NULL);

    t0 = wall_ms();
    ASSERT_OK(tmsg_send(a, "bob", "m-1", cim_MsgType_TEXT, "hello bob", 9, false, &rsp));
    t1 = wall_ms();
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_TRUE(rsp.msg_id != 0);
    ASSERT_STREQ(rsp.client_msg_id, "m-1");
    ASSERT_TRUE(rsp.time_ms + 1000 >= t0 && rsp.time_ms <= t1 + 1000);

    /* B's PUSH carries the same id, body, from, to, time, client_msg_id and type */
    {
        tmsg_t m;
        uint8_t buf[64];
        ASSERT_OK(tmsg_next_push(b, 5000, &m, buf, sizeof(buf)));
        ASSERT_U64_EQ(m.msg_id, rsp.msg_id);
        ASSERT_EQ(m.conv_type, cim_ConvType_DIRECT);
        ASSERT_STREQ(m.from, "alice");
        ASSERT_STREQ(m.to, "bob");
        ASSERT_EQ(m.msg_type, cim_MsgType_TEXT);
        ASSERT_EQ(m.body_len, 9);
        ASSERT_MEMEQ(m.body, "hello bob", 9);
        ASSERT_U64_EQ(m.time_ms, rsp.time_ms);
        ASSERT_STREQ(m.client_msg_id, "m-1");
        ASSERT_EQ(m.flags, 0);
        ASSERT_EQ(m.from_device, cim_DeviceKind_DESKTOP);
    }
    /* the sending device is not pushed its own message */
    tmsg_expect_no_push(a, 300);

    /* binary bodies (zero bytes included) arrive byte for byte; B's device kind travels */
    for (size_t i = 0; i < sizeof(img); i++)
        img[i] = (uint8_t)(i * 7);
    ASSERT_OK(tmsg_send(b, "alice", "r-1", cim_MsgType_IMAGE, img, sizeof(img), false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    {
        tmsg_t m;
        uint8_t buf[512];
        ASSERT_OK(tmsg_next_push(a, 5000, &m, buf, sizeof(buf)));
        ASSERT_U64_EQ(m.msg_id, rsp.msg_id);
        ASSERT_STREQ(m.from, "bob");
        ASSERT_STREQ(m.to, "alice");
        ASSERT_EQ(m.msg_type, cim_MsgType_IMAGE);
        ASSERT_EQ(m.body_len, sizeof(img));
        ASSERT_MEMEQ(m.body, img, sizeof(img));
        ASSERT_EQ(m.from_device, cim_DeviceKind_MOBILE);
        ASSERT_U64_EQ(m.time_ms, rsp.time_ms);
    }
    tmsg_expect_no_push(b, 200);
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A user who has just logged in for the first time can be written to at once. */
TEST_TIMEOUT(e2e_direct_new_user_reachable_at_once, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    char user[32], cmid[32];

    tsrv_start(&t, NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    for (int i = 0; i < 20; i++) {
        snprintf(user, sizeof(user), "new%d", i);
        snprintf(cmid, sizeof(cmid), "hi-%d", i);
        cimc_t *u = tsrv_login(&t, user, "d1", NULL);
        ASSERT_OK(tmsg_send(a, user, cmid, cim_MsgType_TEXT, "hi", 2, false, &rsp));
        if (rsp.code != cim_Code_OK)
            TEST_FAIL_("send to %s right after its first login: %s (%s)", user,
                       cimc_code_str(rsp.code), rsp.reason);
        expect_push(u, rsp.msg_id, "alice", user, cmid, cim_MsgType_TEXT, "hi", 2);
        cimc_close(u);
    }
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ... and so can one who logged in for the first time and left again at once: the login
 * made the user known (PROTOCOL.md §6, Tokens), online or not. */
TEST_TIMEOUT(e2e_direct_new_user_reachable_after_logout, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    char user[32], cmid[32];
    tmsg_t msgs[2];
    tmsg_page_t p;

    tsrv_start(&t, NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    for (int i = 0; i < 20; i++) {
        snprintf(user, sizeof(user), "gone%d", i);
        snprintf(cmid, sizeof(cmid), "hi-%d", i);
        cimc_t *u = tsrv_login(&t, user, "d1", NULL);
        ASSERT_OK(cimc_logout(u, NULL));
        cimc_close(u);
        ASSERT_OK(tmsg_send(a, user, cmid, cim_MsgType_TEXT, "hi", 2, false, &rsp));
        if (rsp.code != cim_Code_OK)
            TEST_FAIL_("send to %s right after its first login and logout: %s (%s)", user,
                       cimc_code_str(rsp.code), rsp.reason);
        u = tsrv_login(&t, user, "d1", NULL);
        tmsg_page_init(&p, msgs, 2, NULL, 0);
        ASSERT_OK(tmsg_sync_all(u, 0, 0, &p));
        ASSERT_EQ(p.n, 1);
        ASSERT_U64_EQ(msgs[0].msg_id, rsp.msg_id);
        cimc_close(u);
    }
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_ids_increase, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    uint64_t ids[100], prev = 0, prev_time = 0;
    char cmid[32], body[32];

    tsrv_start(&t, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    for (int i = 0; i < 100; i++) {
        snprintf(cmid, sizeof(cmid), "seq-%d", i);
        snprintf(body, sizeof(body), "n=%d", i);
        ASSERT_OK(tmsg_send(a, "bob", cmid, cim_MsgType_TEXT, body, strlen(body), false, &rsp));
        ASSERT_EQ(rsp.code, cim_Code_OK);
        ASSERT_TRUE(rsp.msg_id > prev);
        ASSERT_TRUE(rsp.time_ms >= prev_time); /* time never goes back either */
        ids[i] = prev = rsp.msg_id;
        prev_time = rsp.time_ms;
    }
    /* B got all 100, in id order, each once */
    for (int i = 0; i < 100; i++) {
        snprintf(cmid, sizeof(cmid), "seq-%d", i);
        snprintf(body, sizeof(body), "n=%d", i);
        expect_push(b, ids[i], "alice", "bob", cmid, cim_MsgType_TEXT, body, strlen(body));
    }
    tmsg_expect_no_push(b, 200);
    /* ids are global: B's reply is above them all */
    ASSERT_OK(tmsg_send(b, "alice", "reply", cim_MsgType_TEXT, "ok", 2, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_TRUE(rsp.msg_id > prev);
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_resend_same_id, 30)
{
    tsrv_t t;
    cim_SendRsp first, again, other;
    tmsg_t msgs[8];
    uint8_t bodies[256];
    tmsg_page_t p;

    tsrv_start(&t, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    ASSERT_OK(tmsg_send(a, "bob", "dup-1", cim_MsgType_TEXT, "first", 5, false, &first));
    ASSERT_EQ(first.code, cim_Code_OK);
    expect_push(b, first.msg_id, "alice", "bob", "dup-1", cim_MsgType_TEXT, "first", 5);

    /* the same client_msg_id again (even with another body): OK, the original id */
    ASSERT_OK(tmsg_send(a, "bob", "dup-1", cim_MsgType_TEXT, "second", 6, false, &again));
    ASSERT_EQ(again.code, cim_Code_OK);
    ASSERT_U64_EQ(again.msg_id, first.msg_id);
    ASSERT_U64_EQ(again.time_ms, first.time_ms);
    ASSERT_STREQ(again.client_msg_id, "dup-1");
    /* from another device of the same sender too: the id is unique per user */
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
    ASSERT_OK(tmsg_send(a2, "bob", "dup-1", cim_MsgType_TEXT, "third", 5, false, &again));
    ASSERT_EQ(again.code, cim_Code_OK);
    ASSERT_U64_EQ(again.msg_id, first.msg_id);
    /* nothing new was pushed */
    tmsg_expect_no_push(b, 300);
    tmsg_expect_no_push(a, 1);

    /* B's timeline holds it once, with the first body */
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    tmsg_page_init(&p, msgs, 8, bodies, sizeof(bodies));
    ASSERT_OK(tmsg_sync_all(b2, 0, 0, &p));
    ASSERT_EQ(p.n, 1);
    ASSERT_U64_EQ(msgs[0].msg_id, first.msg_id);
    ASSERT_EQ(msgs[0].body_len, 5);
    ASSERT_MEMEQ(msgs[0].body, "first", 5);
    ASSERT_STREQ(msgs[0].client_msg_id, "dup-1");
    /* and so does A's */
    tmsg_page_reset(&p);
    ASSERT_OK(tmsg_sync_all(a2, 0, 0, &p));
    ASSERT_EQ(p.n, 1);
    ASSERT_U64_EQ(msgs[0].msg_id, first.msg_id);

    /* another sender may use the same client_msg_id: a new message */
    ASSERT_OK(tmsg_send(b, "alice", "dup-1", cim_MsgType_TEXT, "mine", 4, false, &other));
    ASSERT_EQ(other.code, cim_Code_OK);
    ASSERT_TRUE(other.msg_id > first.msg_id);
    expect_push(a, other.msg_id, "bob", "alice", "dup-1", cim_MsgType_TEXT, "mine", 4);

    cimc_close(a);
    cimc_close(a2);
    cimc_close(b);
    cimc_close(b2);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_self_send, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    tmsg_t msgs[8];
    tmsg_page_t p;

    tsrv_start(&t, NULL);
    cimc_t *a1 = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
    ASSERT_OK(tmsg_send(a1, "alice", "note-1", cim_MsgType_TEXT, "note to self", 12, false,
                        &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_TRUE(rsp.msg_id != 0);
    /* the other device gets it once; the sending device does not */
    expect_push(a2, rsp.msg_id, "alice", "alice", "note-1", cim_MsgType_TEXT, "note to self",
                12);
    tmsg_expect_no_push(a2, 300);
    tmsg_expect_no_push(a1, 1);
    /* the timeline holds it once */
    cimc_t *a3 = tsrv_login(&t, "alice", "a3", NULL);
    tmsg_page_init(&p, msgs, 8, NULL, 0);
    ASSERT_OK(tmsg_sync_all(a3, 0, 0, &p));
    ASSERT_EQ(p.n, 1);
    ASSERT_U64_EQ(msgs[0].msg_id, rsp.msg_id);
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(a3);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_unknown_user, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;

    tsrv_start(&t, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    expect_reject(tmsg_send(a, "nobody", "u-1", cim_MsgType_TEXT, "hi", 2, false, &rsp), &rsp,
                  cim_Code_NOT_FOUND);
    ASSERT_STREQ(rsp.client_msg_id, "u-1");
    expect_alive(a, c, b, "carol");
    /* a transient send to an unknown user is NOT_FOUND as well */
    expect_reject(tmsg_send(a, "nobody", "u-2", cim_MsgType_CUSTOM, "typing", 6, true, &rsp),
                  &rsp, cim_Code_NOT_FOUND);
    expect_alive(a, c, b, "carol");
    /* ids are case-sensitive: "Bob" is not bob */
    expect_reject(tmsg_send(a, "Bob", "u-3", cim_MsgType_TEXT, "hi", 2, false, &rsp), &rsp,
                  cim_Code_NOT_FOUND);
    expect_alive(a, c, b, "carol");
    /* nothing was stored for alice; the rejected client_msg_id is still free */
    expect_timeline_len(&t, "alice", 0);
    ASSERT_OK(tmsg_send(a, "bob", "u-1", cim_MsgType_TEXT, "now", 3, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    expect_push(b, rsp.msg_id, "alice", "bob", "u-1", cim_MsgType_TEXT, "now", 3);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_too_large, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    static uint8_t body[16000];

    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i ^ (i >> 8));
    tsrv_start(&t, "--max_msg_bytes", "1000", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    /* exactly max_msg_bytes: fine */
    ASSERT_OK(tmsg_send(a, "bob", "big-1000", cim_MsgType_FILE, body, 1000, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    expect_push(b, rsp.msg_id, "alice", "bob", "big-1000", cim_MsgType_FILE, body, 1000);
    /* one byte more: TOO_LARGE */
    expect_reject(tmsg_send(a, "bob", "big-1001", cim_MsgType_FILE, body, 1001, false, &rsp),
                  &rsp, cim_Code_TOO_LARGE);
    ASSERT_STREQ(rsp.client_msg_id, "big-1001");
    expect_alive(a, c, b, "carol");
    expect_reject(tmsg_send(a, "bob", "big-16000", cim_MsgType_FILE, body, sizeof(body), false,
                            &rsp),
                  &rsp, cim_Code_TOO_LARGE);
    expect_alive(a, c, b, "carol");
    /* transient messages obey the same limit */
    expect_reject(tmsg_send(a, "bob", "big-t", cim_MsgType_CUSTOM, body, 1001, true, &rsp), &rsp,
                  cim_Code_TOO_LARGE);
    expect_alive(a, c, b, "carol");
    expect_timeline_len(&t, "alice", 1);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_bad_type, 30)
{
    static const int bad_msg[] = {cim_MsgType_MSG_UNSPECIFIED, cim_MsgType_SYSTEM,
                                  cim_MsgType_RECALL, 99};
    static const int bad_conv[] = {cim_ConvType_CONV_UNSPECIFIED, 3, 1000};
    tsrv_t t;
    cim_SendRsp rsp;
    cim_SendReq req;
    cimc_bytes_t bb = {"x", 1};
    char cmid[32];

    tsrv_start(&t, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    for (size_t i = 0; i < sizeof(bad_msg) / sizeof(bad_msg[0]); i++) {
        snprintf(cmid, sizeof(cmid), "bt-%zu", i);
        expect_reject(tmsg_send(a, "bob", cmid, bad_msg[i], "x", 1, false, &rsp), &rsp,
                      cim_Code_BAD_REQUEST);
        expect_alive(a, c, b, "carol");
        /* transient or not */
        expect_reject(tmsg_send(a, "bob", cmid, bad_msg[i], "x", 1, true, &rsp), &rsp,
                      cim_Code_BAD_REQUEST);
    }
    for (size_t i = 0; i < sizeof(bad_conv) / sizeof(bad_conv[0]); i++) {
        snprintf(cmid, sizeof(cmid), "bc-%zu", i);
        tmsg_fill_req(&req, "bob", cmid, cim_MsgType_TEXT, &bb, false);
        req.conv_type = (cim_ConvType)bad_conv[i];
        expect_reject(tmsg_send_req(a, &req, &rsp), &rsp, cim_Code_BAD_REQUEST);
        expect_alive(a, c, b, "carol");
    }
    expect_timeline_len(&t, "alice", 0);
    /* every type a client may send goes through */
    for (int ty = cim_MsgType_TEXT; ty <= cim_MsgType_CUSTOM; ty++) {
        snprintf(cmid, sizeof(cmid), "ok-%d", ty);
        ASSERT_OK(tmsg_send(a, "bob", cmid, ty, "x", 1, false, &rsp));
        ASSERT_EQ(rsp.code, cim_Code_OK);
        expect_push(b, rsp.msg_id, "alice", "bob", cmid, ty, "x", 1);
    }
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A SendReq built by hand: req_id, client_msg_id, conv_type DIRECT, to, TEXT, body "x". */
static size_t raw_send(uint8_t *buf, size_t cap, uint32_t req_id, const char *cmid,
                       size_t cmid_len, const char *to, size_t to_len)
{
    size_t off = 0;
    off = tmsg_pb_varint(buf, cap, off, 1, req_id);
    off = tmsg_pb_bytes(buf, cap, off, 2, cmid, cmid_len);
    off = tmsg_pb_varint(buf, cap, off, 3, cim_ConvType_DIRECT);
    off = tmsg_pb_bytes(buf, cap, off, 4, to, to_len);
    off = tmsg_pb_varint(buf, cap, off, 5, cim_MsgType_TEXT);
    off = tmsg_pb_bytes(buf, cap, off, 6, "x", 1);
    return off;
}

TEST_TIMEOUT(e2e_direct_bad_client_msg_id, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    char id64[65], id65[66];
    uint8_t raw[256];
    size_t n;

    memset(id64, 'k', 64);
    id64[64] = '\0';
    memset(id65, 'k', 65);
    id65[65] = '\0';
    tsrv_start(&t, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    /* empty */
    expect_reject(tmsg_send(a, "bob", "", cim_MsgType_TEXT, "x", 1, false, &rsp), &rsp,
                  cim_Code_BAD_REQUEST);
    expect_alive(a, c, b, "carol");
    expect_reject(tmsg_send(a, "bob", "", cim_MsgType_CUSTOM, "x", 1, true, &rsp), &rsp,
                  cim_Code_BAD_REQUEST);
    expect_alive(a, c, b, "carol");
    /* 65 bytes (nanopb's bounds cannot say it: built by hand) */
    n = raw_send(raw, sizeof(raw), 777, id65, 65, "bob", 3);
    expect_reject(tmsg_send_raw(a, raw, n, 777, &rsp), &rsp, cim_Code_BAD_REQUEST);
    expect_alive(a, c, b, "carol");
    /* the same frame with 64 bytes is fine (so the 65 was refused for its length) */
    n = raw_send(raw, sizeof(raw), 778, id64, 64, "bob", 3);
    ASSERT_OK(tmsg_send_raw(a, raw, n, 778, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_STREQ(rsp.client_msg_id, id64);
    expect_push(b, rsp.msg_id, "alice", "bob", id64, cim_MsgType_TEXT, "x", 1);
    expect_timeline_len(&t, "alice", 1);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_bad_to, 30)
{
    static const char *const bad[] = {"", "b o b", "bob/1", "bob\xc3\xa9", "bob:1", "#bob"};
    tsrv_t t;
    cim_SendRsp rsp;
    char to65[66], to64[65], cmid[32];
    uint8_t raw[256];
    size_t n;

    memset(to64, 'u', 64);
    to64[64] = '\0';
    memset(to65, 'u', 65);
    to65[65] = '\0';
    tsrv_start(&t, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmid, sizeof(cmid), "to-%zu", i);
        expect_reject(tmsg_send(a, bad[i], cmid, cim_MsgType_TEXT, "x", 1, false, &rsp), &rsp,
                      cim_Code_BAD_REQUEST);
        expect_alive(a, c, b, "carol");
    }
    /* 65 bytes: built by hand */
    n = raw_send(raw, sizeof(raw), 901, "to-65", 5, to65, 65);
    expect_reject(tmsg_send_raw(a, raw, n, 901, &rsp), &rsp, cim_Code_BAD_REQUEST);
    expect_alive(a, c, b, "carol");
    /* 64 bytes is a well-formed id: only unknown */
    expect_reject(tmsg_send(a, to64, "to-64", cim_MsgType_TEXT, "x", 1, false, &rsp), &rsp,
                  cim_Code_NOT_FOUND);
    expect_alive(a, c, b, "carol");
    expect_timeline_len(&t, "alice", 0);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

static void mk_rl(void *ctx, size_t i, char *cmid, size_t cap, const uint8_t **body,
                  size_t *len)
{
    snprintf(cmid, cap, "%s-%zu", (const char *)ctx, i);
    *body = (const uint8_t *)"burst";
    *len = 5;
}

TEST_TIMEOUT(e2e_direct_rate_limited, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;
    uint64_t ids[6];
    int codes[6];
    size_t answered = 0;

    tsrv_start(&t, "--send_rate", "5", "--send_burst", "5", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    /* six SENDs in one write: the burst of five passes, the sixth is RATE_LIMITED */
    ASSERT_OK(tmsg_send_many(a, "bob", 6, 6, cim_MsgType_TEXT, mk_rl, "rl", ids, codes,
                             &answered));
    ASSERT_EQ(answered, 6);
    for (int i = 0; i < 5; i++) {
        char cmid[32];
        ASSERT_EQ(codes[i], cim_Code_OK);
        snprintf(cmid, sizeof(cmid), "rl-%d", i);
        expect_push(b, ids[i], "alice", "bob", cmid, cim_MsgType_TEXT, "burst", 5);
    }
    ASSERT_EQ(codes[5], cim_Code_RATE_LIMITED);
    /* with its reason, and again on the next rapid send */
    expect_reject(tmsg_send(a, "bob", "rl-x", cim_MsgType_TEXT, "x", 1, false, &rsp), &rsp,
                  cim_Code_RATE_LIMITED);
    ASSERT_STREQ(rsp.client_msg_id, "rl-x");
    /* the connection is fine, and the limit is per connection: carol still sends */
    expect_alive(a, c, b, "carol");
    /* after a wait the bucket has refilled */
    tmsg_sleep_ms(1100);
    ASSERT_OK(tmsg_send(a, "bob", "rl-later", cim_MsgType_TEXT, "later", 5, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    expect_push(b, rsp.msg_id, "alice", "bob", "rl-later", cim_MsgType_TEXT, "later", 5);
    /* nothing of the refused ones was stored: 5 + 1 messages */
    expect_timeline_len(&t, "alice", 6);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_two_devices, 30)
{
    tsrv_t t;
    cim_SendRsp rsp;

    tsrv_start(&t, NULL);
    cimc_t *b1 = tmsg_login(&t, "bob", "b-phone", cim_DeviceKind_MOBILE, NULL);
    cimc_t *b2 = tmsg_login(&t, "bob", "b-desk", cim_DeviceKind_DESKTOP, NULL);
    cimc_t *a1 = tmsg_login(&t, "alice", "a-phone", cim_DeviceKind_MOBILE, NULL);
    cimc_t *a2 = tmsg_login(&t, "alice", "a-web", cim_DeviceKind_WEB, NULL);

    ASSERT_OK(tmsg_send(a1, "bob", "two-1", cim_MsgType_TEXT, "to both", 7, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    /* both of B's devices, and A's other device, exactly once each */
    expect_push(b1, rsp.msg_id, "alice", "bob", "two-1", cim_MsgType_TEXT, "to both", 7);
    expect_push(b2, rsp.msg_id, "alice", "bob", "two-1", cim_MsgType_TEXT, "to both", 7);
    expect_push(a2, rsp.msg_id, "alice", "bob", "two-1", cim_MsgType_TEXT, "to both", 7);
    tmsg_expect_no_push(b1, 300);
    tmsg_expect_no_push(b2, 1);
    tmsg_expect_no_push(a2, 1);
    tmsg_expect_no_push(a1, 1); /* not the sending device */

    /* and the other way round, from B's second device */
    ASSERT_OK(tmsg_send(b2, "alice", "two-2", cim_MsgType_TEXT, "back", 4, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    expect_push(a1, rsp.msg_id, "bob", "alice", "two-2", cim_MsgType_TEXT, "back", 4);
    expect_push(a2, rsp.msg_id, "bob", "alice", "two-2", cim_MsgType_TEXT, "back", 4);
    expect_push(b1, rsp.msg_id, "bob", "alice", "two-2", cim_MsgType_TEXT, "back", 4);
    tmsg_expect_no_push(b2, 300);
    tmsg_expect_no_push(a1, 1);
    tmsg_expect_no_push(a2, 1);
    tmsg_expect_no_push(b1, 1);

    /* a device that went away gets nothing more; the others still do */
    cimc_close(b2);
    ASSERT_OK(cimc_ping(b1, NULL)); /* give the server a moment to see the close */
    ASSERT_OK(tmsg_send(a1, "bob", "two-3", cim_MsgType_TEXT, "one left", 8, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    expect_push(b1, rsp.msg_id, "alice", "bob", "two-3", cim_MsgType_TEXT, "one left", 8);
    expect_push(a2, rsp.msg_id, "alice", "bob", "two-3", cim_MsgType_TEXT, "one left", 8);
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(b1);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_direct_transient, 30)
{
    tsrv_t t;
    cim_SendRsp rsp, stored;
    cim_LoginRsp lr;
    tmsg_t msgs[8];
    tmsg_page_t p;
    uint64_t t0;

    tsrv_start(&t, NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL); /* known, then offline */
    cimc_close(c);
    cimc_t *b1 = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    cimc_t *a1 = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);

    t0 = wall_ms();
    ASSERT_OK(tmsg_send(a1, "bob", "typing-1", cim_MsgType_CUSTOM, "typing", 6, true, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_U64_EQ(rsp.msg_id, 0); /* nothing stored, no id */
    ASSERT_STREQ(rsp.client_msg_id, "typing-1");
    ASSERT_TRUE(rsp.time_ms + 1000 >= t0);
    /* every online device of B and A's other device get it; the sender does not */
    expect_push(b1, 0, "alice", "bob", "typing-1", cim_MsgType_CUSTOM, "typing", 6);
    expect_push(b2, 0, "alice", "bob", "typing-1", cim_MsgType_CUSTOM, "typing", 6);
    expect_push(a2, 0, "alice", "bob", "typing-1", cim_MsgType_CUSTOM, "typing", 6);
    tmsg_expect_no_push(b1, 300);
    tmsg_expect_no_push(a1, 1);
    /* transient sends are not deduplicated by client_msg_id either: nothing is kept */
    ASSERT_OK(tmsg_send(a1, "bob", "typing-1", cim_MsgType_CUSTOM, "typing", 6, true, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    expect_push(b1, 0, "alice", "bob", "typing-1", cim_MsgType_CUSTOM, "typing", 6);

    /* a stored message after it is the next thing B sees, with a real id */
    ASSERT_OK(tmsg_send(a1, "bob", "real-1", cim_MsgType_TEXT, "hello", 5, false, &stored));
    ASSERT_EQ(stored.code, cim_Code_OK);
    ASSERT_TRUE(stored.msg_id != 0);
    expect_push(b1, stored.msg_id, "alice", "bob", "real-1", cim_MsgType_TEXT, "hello", 5);

    /* to an offline user: OK, and nothing waits for her */
    ASSERT_OK(tmsg_send(a1, "carol", "typing-2", cim_MsgType_CUSTOM, "typing", 6, true, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);

    /* transient messages never appear in SYNC: B's, A's and carol's timelines */
    tmsg_page_init(&p, msgs, 8, NULL, 0);
    ASSERT_OK(tmsg_sync_all(b2, 0, 0, &p));
    ASSERT_EQ(p.n, 1);
    ASSERT_U64_EQ(msgs[0].msg_id, stored.msg_id);
    cimc_t *b3 = tsrv_login(&t, "bob", "b3", NULL);
    tmsg_page_reset(&p);
    ASSERT_OK(tmsg_sync_all(b3, 0, 0, &p));
    ASSERT_EQ(p.n, 1);
    ASSERT_U64_EQ(msgs[0].msg_id, stored.msg_id);
    tmsg_page_reset(&p);
    ASSERT_OK(tmsg_sync_all(a2, 0, 0, &p));
    ASSERT_EQ(p.n, 1);
    c = tsrv_login(&t, "carol", "c1", &lr);
    ASSERT_U64_EQ(lr.latest_msg_id, 0);
    tmsg_page_reset(&p);
    ASSERT_OK(tmsg_sync_all(c, 0, 0, &p));
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(p.remain, 0);
    tmsg_expect_no_push(c, 200);
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(b1);
    cimc_close(b2);
    cimc_close(b3);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Encode @p msg as frame @p type and append its sealed bytes to buf. */
static void seal_into(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                      uint8_t *buf, size_t cap, size_t *used)
{
    uint8_t pt[512], *frame = NULL;
    size_t flen;
    pb_ostream_t os = pb_ostream_from_buffer(pt, sizeof(pt));
    ASSERT_TRUE(pb_encode(&os, fields, msg));
    ASSERT_OK(cimc_seal(c, type, pt, os.bytes_written, &frame, &flen));
    ASSERT_TRUE(*used + flen <= cap);
    memcpy(buf + *used, frame, flen);
    *used += flen;
    free(frame);
}

/* Read the next frame; it must be @p type with @p req_id (PONG: client_time_ms) and, for
 * answers with one, @p code. @return a SEND_ACK's msg_id, else 0. */
static uint64_t expect_frame(cimc_t *c, uint32_t type, uint32_t req_id, int code)
{
    uint32_t got;
    uint8_t *body = NULL;
    size_t len;
    uint64_t id = 0;
    ASSERT_OK(cimc_next_frame(c, 5000, &got, &body, &len));
    if (got != type)
        TEST_FAIL_("got frame 0x%04x, want 0x%04x (req_id %u)", got, type, req_id);
    if (type == FT_SEND_ACK) {
        cim_SendRsp rsp = cim_SendRsp_init_zero;
        ASSERT_OK(cimc_decode(cim_SendRsp_fields, body, len, &rsp));
        ASSERT_EQ(rsp.req_id, req_id);
        ASSERT_EQ(rsp.code, code);
        id = rsp.msg_id;
    } else if (type == FT_SYNC_ACK) {
        cim_SyncRsp rsp = cim_SyncRsp_init_zero;
        ASSERT_OK(cimc_decode(cim_SyncRsp_fields, body, len, &rsp));
        ASSERT_EQ(rsp.req_id, req_id);
        ASSERT_EQ(rsp.code, code);
    } else if (type == FT_PONG) {
        cim_Pong pong = cim_Pong_init_zero;
        ASSERT_OK(cimc_decode(cim_Pong_fields, body, len, &pong));
        ASSERT_U64_EQ(pong.client_time_ms, req_id);
    }
    free(body);
    return id;
}

TEST_TIMEOUT(e2e_direct_pipeline_order, 30)
{
    tsrv_t t;
    cim_SendReq req;
    cim_Ping ping = cim_Ping_init_zero;
    cim_SyncReq sync = cim_SyncReq_init_zero;
    cimc_bytes_t one = {"1", 1}, two = {"2", 1};
    static uint8_t buf[1 << 16];
    size_t used = 0, nids = 0;
    uint64_t ids[32];
    char cmids[32][16];

    tsrv_start(&t, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);

    /* SEND, PING, SEND in one write: SEND_ACK, PONG, SEND_ACK in that order */
    tmsg_fill_req(&req, "bob", "p-1", cim_MsgType_TEXT, &one, false);
    req.req_id = 1001;
    seal_into(a, FT_SEND, cim_SendReq_fields, &req, buf, sizeof(buf), &used);
    ping.client_time_ms = 4242;
    seal_into(a, FT_PING, cim_Ping_fields, &ping, buf, sizeof(buf), &used);
    tmsg_fill_req(&req, "bob", "p-2", cim_MsgType_TEXT, &two, false);
    req.req_id = 1002;
    seal_into(a, FT_SEND, cim_SendReq_fields, &req, buf, sizeof(buf), &used);
    ASSERT_OK(cimc_write_raw(a, buf, used));
    ids[nids++] = expect_frame(a, FT_SEND_ACK, 1001, cim_Code_OK);
    expect_frame(a, FT_PONG, 4242, 0);
    ids[nids++] = expect_frame(a, FT_SEND_ACK, 1002, cim_Code_OK);
    ASSERT_TRUE(ids[1] > ids[0]);

    /* a longer mix: stored sends, rejected sends (answered at once by the server, yet
     * they must wait their turn), PINGs and a SYNC */
    used = 0;
    for (uint32_t i = 0; i < 20; i++) {
        char cmid[32];
        snprintf(cmid, sizeof(cmid), "q-%u", i);
        tmsg_fill_req(&req, i % 5 == 3 ? "no-such-user" : "bob", cmid,
                      i % 7 == 6 ? cim_MsgType_SYSTEM : cim_MsgType_TEXT, &one, false);
        req.req_id = 2000 + i;
        seal_into(a, FT_SEND, cim_SendReq_fields, &req, buf, sizeof(buf), &used);
        if (i % 4 == 1) {
            ping.client_time_ms = 5000 + i;
            seal_into(a, FT_PING, cim_Ping_fields, &ping, buf, sizeof(buf), &used);
        }
        if (i == 10) {
            sync.req_id = 3000;
            seal_into(a, FT_SYNC, cim_SyncReq_fields, &sync, buf, sizeof(buf), &used);
        }
    }
    ASSERT_OK(cimc_write_raw(a, buf, used));
    for (uint32_t i = 0; i < 20; i++) {
        int code = i % 7 == 6 ? cim_Code_BAD_REQUEST
                   : i % 5 == 3 ? cim_Code_NOT_FOUND
                                : cim_Code_OK;
        uint64_t id = expect_frame(a, FT_SEND_ACK, 2000 + i, code);
        if (code == cim_Code_OK) {
            ASSERT_TRUE(id > ids[nids - 1]);
            snprintf(cmids[nids], sizeof(cmids[nids]), "q-%u", i);
            ids[nids++] = id;
        }
        if (i % 4 == 1)
            expect_frame(a, FT_PONG, 5000 + i, 0);
        if (i == 10)
            expect_frame(a, FT_SYNC_ACK, 3000, cim_Code_OK);
    }
    /* B got the stored ones, in order, and nothing else */
    expect_push(b, ids[0], "alice", "bob", "p-1", cim_MsgType_TEXT, "1", 1);
    expect_push(b, ids[1], "alice", "bob", "p-2", cim_MsgType_TEXT, "2", 1);
    for (size_t i = 2; i < nids; i++)
        expect_push(b, ids[i], "alice", "bob", cmids[i], cim_MsgType_TEXT, "1", 1);
    tmsg_expect_no_push(b, 200);
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
