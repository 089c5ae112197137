/* Integration: conversations — CONV_LIST (order, last message, unread, read cursors,
 * total), unread across several conversations and devices, READ and its EVENTs, HISTORY
 * paging across 250 messages with no gap or duplicate, former members' history, and
 * RECALL with every rejection code (PROTOCOL.md §4 0x0207, 0x0301–0x0307, §5
 * Conversation..RecallEvent, §6 Conversations, Recall). A real cimd through libcim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define DIRECT cim_ConvType_DIRECT
#define GROUP cim_ConvType_GROUP
#define TEXT cim_MsgType_TEXT
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define RECALLED 1u

/* Send a TEXT (DIRECT or GROUP); @return its msg_id. @param[out] time_ms may be NULL. */
static uint64_t send_text(cimc_t *c, int conv_type, const char *to, const char *cmid,
                          const char *body, uint64_t *time_ms)
{
    cim_SendRsp rsp;
    TMSG_EXPECT(tmsg_send_conv(c, conv_type, to, cmid, TEXT, body, strlen(body), false, &rsp),
                rsp, cim_Code_OK);
    ASSERT_TRUE(rsp.msg_id != 0);
    if (time_ms != NULL)
        *time_ms = rsp.time_ms;
    return rsp.msg_id;
}

/* Take @p n pushes from @p c (whatever they are). */
static void take(cimc_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tmsg_t m;
        int rc = tmsg_next_push(c, 5000, &m, NULL, 0);
        if (rc != 0)
            TEST_FAIL_("push %zu of %zu: %s", i + 1, n, rc_str(rc));
    }
}

/* Create a group (the creator's devices get its SYSTEM message: not taken here). */
static void create(cimc_t *c, const char *name, const char *const *members, size_t n,
                   char *gid)
{
    cim_GroupRsp rsp;
    TMSG_EXPECT(tmsg_group_create(c, name, members, n, false, &rsp), rsp, cim_Code_OK);
    snprintf(gid, 65, "%s", rsp.group.group_id);
}

static size_t convs_of(cimc_t *c, tmsg_conv_t *convs, size_t cap, cim_ConvListRsp *rsp)
{
    size_t n;
    TMSG_EXPECT(tmsg_conv_list(c, convs, cap, &n, rsp), *rsp, cim_Code_OK);
    ASSERT_TRUE(n <= cap);
    return n;
}

/* Conversation @p i of a list is (conv_type, peer) with last message @p last and these
 * counters. */
static void expect_conv(const tmsg_conv_t *cv, int conv_type, const char *peer, uint64_t last,
                        uint32_t unread, uint64_t read_up_to, uint64_t peer_read)
{
    if (cv->conv_type != conv_type || strcmp(cv->peer, peer) != 0)
        TEST_FAIL_("conversation (%d, %s), want (%d, %s)", cv->conv_type, cv->peer, conv_type,
                   peer);
    ASSERT_TRUE(cv->has_last);
    ASSERT_U64_EQ(cv->last.msg_id, last);
    if (cv->unread != unread)
        TEST_FAIL_("conversation (%d, %s): unread %u, want %u", conv_type, peer, cv->unread,
                   unread);
    ASSERT_U64_EQ(cv->read_up_to, read_up_to);
    ASSERT_U64_EQ(cv->peer_read_up_to, peer_read);
    ASSERT_TRUE(cv->updated_ms > 0);
}

TEST_TIMEOUT(e2e_conv_list_unread, 30)
{
    static tmsg_conv_t convs[8];
    tsrv_t t;
    cim_ConvListRsp rsp;
    cim_Result res;
    char gid[65];
    uint64_t m[3], nn[2], g[3], r1, created, tm;
    size_t n;

    tsrv_start(&t, NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b1 = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *d = tsrv_login(&t, "dave", "d1", NULL);

    /* nothing yet */
    ASSERT_EQ(convs_of(b1, convs, N(convs), &rsp), 0);
    ASSERT_EQ(rsp.total_unread, 0);

    m[0] = send_text(a, DIRECT, "bob", "m0", "one", NULL);
    m[1] = send_text(a, DIRECT, "bob", "m1", "two", NULL);
    m[2] = send_text(a, DIRECT, "bob", "m2", "three", NULL);
    nn[0] = send_text(c, DIRECT, "bob", "n0", "from carol", NULL);
    nn[1] = send_text(c, DIRECT, "bob", "n1", "from carol again", NULL);
    create(c, "G", (const char *const[]){"alice", "bob"}, 2, gid);
    created = tmsg_expect_sys(c, gid, cim_GroupEventKind_GE_CREATED, "carol",
                              (const char *const[]){"alice", "bob"}, 2, NULL);
    g[0] = send_text(a, GROUP, gid, "g0", "group one", NULL);
    g[1] = send_text(a, GROUP, gid, "g1", "group two", &tm);

    /* bob, on either device: newest first, unread = messages from others (the SYSTEM
     * message does not count), nothing read yet */
    for (int k = 0; k < 2; k++) {
        n = convs_of(k == 0 ? b1 : b2, convs, N(convs), &rsp);
        ASSERT_EQ(n, 3);
        expect_conv(&convs[0], GROUP, gid, g[1], 2, 0, 0);
        expect_conv(&convs[1], DIRECT, "carol", nn[1], 2, 0, nn[1]);
        expect_conv(&convs[2], DIRECT, "alice", m[2], 3, 0, m[2]);
        ASSERT_EQ(rsp.total_unread, 7);
        /* last is the whole message */
        ASSERT_STREQ(convs[0].last.from, "alice");
        ASSERT_STREQ(convs[0].last.to, gid);
        ASSERT_EQ(convs[0].last.conv_type, GROUP);
        ASSERT_EQ(convs[0].last.msg_type, TEXT);
        ASSERT_STREQ(convs[0].last.client_msg_id, "g1");
        ASSERT_EQ(convs[0].last.body_len, 9);
        ASSERT_U64_EQ(convs[0].last.body_hash, tmsg_hash("group two", 9));
        ASSERT_EQ(convs[0].last.flags, 0);
        ASSERT_U64_EQ(convs[0].updated_ms, tm);
        ASSERT_STREQ(convs[2].last.from, "alice");
        ASSERT_STREQ(convs[2].last.to, "bob");
        ASSERT_U64_EQ(convs[2].last.body_hash, tmsg_hash("three", 5));
    }
    /* alice: her own messages are never unread, and read up to */
    n = convs_of(a, convs, N(convs), &rsp);
    ASSERT_EQ(n, 2);
    expect_conv(&convs[0], GROUP, gid, g[1], 0, g[1], 0);
    expect_conv(&convs[1], DIRECT, "bob", m[2], 0, m[2], 0);
    ASSERT_EQ(rsp.total_unread, 0);
    /* carol: alice's two group messages */
    n = convs_of(c, convs, N(convs), &rsp);
    ASSERT_EQ(n, 2);
    expect_conv(&convs[0], GROUP, gid, g[1], 2, created, 0);
    expect_conv(&convs[1], DIRECT, "bob", nn[1], 0, nn[1], 0);
    ASSERT_EQ(rsp.total_unread, 2);
    /* dave has none */
    ASSERT_EQ(convs_of(d, convs, N(convs), &rsp), 0);

    /* bob replies to carol: his own message is read up to, so nothing there is unread any
     * more (unread counts messages from others after the read cursor); it moves to the top */
    r1 = send_text(b1, DIRECT, "carol", "r1", "hi carol", NULL);
    for (int k = 0; k < 2; k++) {
        n = convs_of(k == 0 ? b1 : b2, convs, N(convs), &rsp);
        ASSERT_EQ(n, 3);
        expect_conv(&convs[0], DIRECT, "carol", r1, 0, r1, nn[1]);
        expect_conv(&convs[1], GROUP, gid, g[1], 2, 0, 0);
        expect_conv(&convs[2], DIRECT, "alice", m[2], 3, 0, m[2]);
        ASSERT_EQ(rsp.total_unread, 5);
    }
    n = convs_of(c, convs, N(convs), &rsp);
    expect_conv(&convs[0], DIRECT, "bob", r1, 1, nn[1], r1);
    ASSERT_EQ(rsp.total_unread, 3);
    /* and in the group */
    g[2] = send_text(b2, GROUP, gid, "g2", "bob in the group", NULL);
    n = convs_of(b1, convs, N(convs), &rsp);
    expect_conv(&convs[0], GROUP, gid, g[2], 0, g[2], 0);
    ASSERT_EQ(rsp.total_unread, 3);

    /* READ drops them to zero, on every device; the total with them */
    TMSG_EXPECT(tmsg_read(b2, DIRECT, "alice", 0, &res), res, cim_Code_OK);
    for (int k = 0; k < 2; k++) {
        n = convs_of(k == 0 ? b1 : b2, convs, N(convs), &rsp);
        ASSERT_EQ(n, 3);
        expect_conv(&convs[2], DIRECT, "alice", m[2], 0, m[2], m[2]);
        ASSERT_EQ(rsp.total_unread, 0);
    }
    n = convs_of(a, convs, N(convs), &rsp);
    expect_conv(&convs[0], GROUP, gid, g[2], 1, g[1], 0);
    expect_conv(&convs[1], DIRECT, "bob", m[2], 0, m[2], m[2]); /* bob read it all */
    ASSERT_EQ(rsp.total_unread, 1);
    TMSG_EXPECT(tmsg_read(a, GROUP, gid, 0, &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_read(c, GROUP, gid, 0, &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_read(c, DIRECT, "bob", 0, &res), res, cim_Code_OK);
    n = convs_of(a, convs, N(convs), &rsp);
    ASSERT_EQ(rsp.total_unread, 0);
    n = convs_of(c, convs, N(convs), &rsp);
    ASSERT_EQ(rsp.total_unread, 0);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(convs[i].unread, 0);
    cimc_close(a);
    cimc_close(b1);
    cimc_close(b2);
    cimc_close(c);
    cimc_close(d);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* The next EVENT on @p c must be READ{user, peer, up_to} of @p conv_type. */
static void expect_read_event(cimc_t *c, int conv_type, const char *user, const char *peer,
                              uint64_t up_to)
{
    cim_Event ev;
    int rc = tmsg_next_event(c, 5000, &ev);
    if (rc != 0)
        TEST_FAIL_("waiting for EVENT{READ %s %s %" PRIu64 "}: %s", user, peer, up_to,
                   rc_str(rc));
    ASSERT_EQ(ev.kind, cim_EventKind_READ);
    ASSERT_EQ(ev.conv_type, conv_type);
    ASSERT_STREQ(ev.user, user);
    ASSERT_STREQ(ev.peer, peer);
    ASSERT_U64_EQ(ev.up_to_msg_id, up_to);
    ASSERT_TRUE(ev.time_ms > 0);
}

TEST_TIMEOUT(e2e_conv_read_events, 30)
{
    tsrv_t t;
    tmsg_conv_t convs[4];
    cim_ConvListRsp rsp;
    cim_Result res;
    char gid[65];
    uint64_t m[5], g[2];
    const tmsg_conv_t *cv;
    size_t n;

    tsrv_start(&t, NULL);
    cimc_t *a1 = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
    cimc_t *b1 = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    for (int i = 0; i < 5; i++) {
        char cmid[16];
        snprintf(cmid, sizeof(cmid), "m%d", i);
        m[i] = send_text(a1, DIRECT, "bob", cmid, "read me", NULL);
    }
    take(b1, 5);
    take(b2, 5);
    take(a2, 5);

    /* bob reads up to m1 on b1: his other device and both of alice's hear it — b2 with
     * the conversation as bob sees it (peer alice), alice as she sees it (peer bob) */
    TMSG_EXPECT(tmsg_read(b1, DIRECT, "alice", m[1], &res), res, cim_Code_OK);
    expect_read_event(b2, DIRECT, "bob", "alice", m[1]);
    expect_read_event(a1, DIRECT, "bob", "bob", m[1]);
    expect_read_event(a2, DIRECT, "bob", "bob", m[1]);
    tmsg_expect_quiet(b1, 300); /* not the reading session */
    tmsg_expect_quiet(b2, 1);
    tmsg_expect_quiet(a1, 1);
    tmsg_expect_quiet(c, 1);
    n = convs_of(b2, convs, N(convs), &rsp);
    ASSERT_EQ(n, 1);
    expect_conv(&convs[0], DIRECT, "alice", m[4], 3, m[1], m[4]);
    ASSERT_EQ(rsp.total_unread, 3);
    n = convs_of(a2, convs, N(convs), &rsp);
    expect_conv(&convs[0], DIRECT, "bob", m[4], 0, m[4], m[1]);

    /* the cursor never moves back: OK, nothing changes, nobody hears of it */
    TMSG_EXPECT(tmsg_read(b2, DIRECT, "alice", m[0], &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_read(b2, DIRECT, "alice", m[1], &res), res, cim_Code_OK);
    tmsg_expect_quiet(b1, 300);
    tmsg_expect_quiet(a1, 1);
    tmsg_expect_quiet(a2, 1);
    n = convs_of(b1, convs, N(convs), &rsp);
    expect_conv(&convs[0], DIRECT, "alice", m[4], 3, m[1], m[4]);

    /* up_to 0: everything */
    TMSG_EXPECT(tmsg_read(b2, DIRECT, "alice", 0, &res), res, cim_Code_OK);
    expect_read_event(b1, DIRECT, "bob", "alice", m[4]);
    expect_read_event(a1, DIRECT, "bob", "bob", m[4]);
    expect_read_event(a2, DIRECT, "bob", "bob", m[4]);
    tmsg_expect_quiet(b2, 300);
    n = convs_of(b1, convs, N(convs), &rsp);
    expect_conv(&convs[0], DIRECT, "alice", m[4], 0, m[4], m[4]);
    ASSERT_EQ(rsp.total_unread, 0);
    /* past the last message: nothing further to read, no event */
    TMSG_EXPECT(tmsg_read(b1, DIRECT, "alice", m[4] + 1000000, &res), res, cim_Code_OK);
    tmsg_expect_quiet(b2, 300);
    tmsg_expect_quiet(a1, 1);

    /* a group: the reader's other devices hear it, the other members do not */
    create(c, "G", (const char *const[]){"alice", "bob"}, 2, gid);
    take(c, 1);
    take(a1, 1);
    take(a2, 1);
    take(b1, 1);
    take(b2, 1);
    g[0] = send_text(c, GROUP, gid, "g0", "group", NULL);
    g[1] = send_text(c, GROUP, gid, "g1", "group", NULL);
    take(a1, 2);
    take(a2, 2);
    take(b1, 2);
    take(b2, 2);
    n = convs_of(b1, convs, N(convs), &rsp);
    cv = tmsg_conv_find(convs, n, GROUP, gid);
    ASSERT_NOT_NULL(cv);
    ASSERT_EQ(cv->unread, 2);
    ASSERT_EQ(rsp.total_unread, 2);
    TMSG_EXPECT(tmsg_read(b1, GROUP, gid, g[0], &res), res, cim_Code_OK);
    expect_read_event(b2, GROUP, "bob", gid, g[0]);
    tmsg_expect_quiet(b1, 300);
    tmsg_expect_quiet(a1, 1);
    tmsg_expect_quiet(a2, 1);
    tmsg_expect_quiet(c, 1);
    n = convs_of(b2, convs, N(convs), &rsp);
    cv = tmsg_conv_find(convs, n, GROUP, gid);
    ASSERT_EQ(cv->unread, 1);
    ASSERT_U64_EQ(cv->read_up_to, g[0]);
    ASSERT_U64_EQ(cv->peer_read_up_to, 0); /* DIRECT only */
    TMSG_EXPECT(tmsg_read(b2, GROUP, gid, 0, &res), res, cim_Code_OK);
    expect_read_event(b1, GROUP, "bob", gid, g[1]);
    n = convs_of(b2, convs, N(convs), &rsp);
    ASSERT_EQ(rsp.total_unread, 0);
    tmsg_expect_quiet(c, 200);
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(b1);
    cimc_close(b2);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A ReadReq or HistoryReq with a conv_type nanopb would not encode as such (3). */
static size_t raw_conv_req(uint8_t *buf, size_t cap, uint32_t req_id, int conv_type,
                           const char *peer)
{
    size_t n = tmsg_pb_varint(buf, cap, 0, 1, req_id);
    n = tmsg_pb_varint(buf, cap, n, 2, (uint64_t)conv_type);
    return tmsg_pb_bytes(buf, cap, n, 3, peer, strlen(peer));
}

TEST_TIMEOUT(e2e_conv_read_history_errors, 30)
{
    static const struct {
        int conv_type;
        const char *peer;
    } bad[] = {{0, "bob"}, {0, "1000"}, {DIRECT, ""},     {DIRECT, "b o b"}, {DIRECT, "bob/1"},
               {GROUP, ""}, {GROUP, "abc"}, {GROUP, "0100"}, {GROUP, "bob"}};
    tsrv_t t;
    cim_Result res;
    tmsg_t msgs[4];
    tmsg_page_t p;
    uint8_t raw[128];
    size_t len;
    char gid[65];

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"dave"}, 1);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    send_text(a, DIRECT, "bob", "hello", "hello", NULL);
    take(b, 1);
    create(b, "bobs", NULL, 0, gid); /* a group alice is not in */

    for (size_t i = 0; i < N(bad); i++) {
        TMSG_EXPECT(tmsg_read(a, bad[i].conv_type, bad[i].peer, 0, &res), res,
                    cim_Code_BAD_REQUEST);
        tmsg_expect_alive(a, z, y, "yan");
        tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
        ASSERT_OK(tmsg_history(a, bad[i].conv_type, bad[i].peer, 0, 0, &p));
        tmsg_expect_code_(__FILE__, __LINE__, 0, p.code, p.reason, cim_Code_BAD_REQUEST);
        ASSERT_EQ(p.n, 0);
        tmsg_expect_alive(a, z, y, "yan");
    }
    /* an unknown conv_type value */
    len = raw_conv_req(raw, sizeof(raw), 31, 3, "bob");
    memset(&res, 0, sizeof(res));
    TMSG_EXPECT(tmsg_call_raw(a, FT_READ, raw, len, FT_READ_ACK, cim_Result_fields, &res), res,
                cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    {
        cim_HistoryRsp hr = cim_HistoryRsp_init_zero;
        len = raw_conv_req(raw, sizeof(raw), 32, 3, "bob");
        TMSG_EXPECT(tmsg_call_raw(a, FT_HISTORY, raw, len, FT_HISTORY_ACK, cim_HistoryRsp_fields,
                                  &hr),
                    hr, cim_Code_BAD_REQUEST);
        tmsg_expect_alive(a, z, y, "yan");
    }

    /* READ of a conversation the reader does not have: NOT_FOUND */
    TMSG_EXPECT(tmsg_read(a, DIRECT, "dave", 0, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_read(a, DIRECT, "nobody", 0, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_read(a, GROUP, "999999", 0, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_read(a, GROUP, gid, 0, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    /* HISTORY of a group never joined: NOT_MEMBER; of an unknown group: NOT_FOUND */
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(a, GROUP, gid, 0, 0, &p));
    tmsg_expect_code_(__FILE__, __LINE__, 0, p.code, p.reason, cim_Code_NOT_MEMBER);
    ASSERT_EQ(p.n, 0);
    tmsg_expect_alive(a, z, y, "yan");
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(a, GROUP, "999999", 0, 0, &p));
    tmsg_expect_code_(__FILE__, __LINE__, 0, p.code, p.reason, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    /* the valid ones still work */
    TMSG_EXPECT(tmsg_read(b, DIRECT, "alice", 0, &res), res, cim_Code_OK);
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(a, DIRECT, "bob", 0, 0, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 1);
    cimc_close(a);
    cimc_close(b);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

#define HN 250

/* Page the whole history of (conv_type, peer) backwards with @p limit (expecting pages of
 * @p per), and check it is exactly @p ids, ascending within every page, no gap, no
 * duplicate. */
static void page_back(cimc_t *c, int conv_type, const char *peer, const uint64_t *ids,
                      size_t n, uint32_t limit, size_t per)
{
    static tmsg_t msgs[128];
    tmsg_page_t p;
    size_t have = n, pages = 0; /* ids[have..n) are paged */
    uint64_t before = 0;

    while (have > 0) {
        size_t want = have < per ? have : per;
        tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
        ASSERT_OK(tmsg_history(c, conv_type, peer, before, limit, &p));
        ASSERT_EQ(p.code, cim_Code_OK);
        if (p.n != want)
            TEST_FAIL_("limit %u, page %zu: %zu messages, want %zu", limit, pages, p.n, want);
        for (size_t i = 0; i < p.n; i++)
            if (msgs[i].msg_id != ids[have - want + i])
                TEST_FAIL_("limit %u, page %zu, entry %zu: msg_id %" PRIu64 ", want %" PRIu64,
                           limit, pages, i, msgs[i].msg_id, ids[have - want + i]);
        have -= want;
        ASSERT_EQ(p.has_more, have > 0);
        before = msgs[0].msg_id;
        pages++;
    }
    ASSERT_EQ(pages, (n + per - 1) / per);
    /* before the oldest: nothing */
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(c, conv_type, peer, ids[0], limit, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 0);
    ASSERT_TRUE(!p.has_more);
}

TEST_TIMEOUT(e2e_conv_history_250, 60)
{
    static uint64_t ids[HN + 1];
    static tmsg_t msgs[128];
    static uint8_t bodies[16384];
    tsrv_t t;
    tmsg_page_t p;
    char cmid[32], body[64], gid[65];

    tsrv_start(&t, "--send_rate", "1000000", "--send_burst", "1000000", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    /* 250 in both directions, and a conversation with carol interleaved (not in it) */
    for (size_t i = 0; i < HN; i++) {
        bool from_bob = i % 3 == 0;
        snprintf(cmid, sizeof(cmid), "h-%zu", i);
        snprintf(body, sizeof(body), "history %zu", i);
        ids[i] = send_text(from_bob ? b : a, DIRECT, from_bob ? "alice" : "bob", cmid, body,
                           NULL);
        if (i % 50 == 0)
            send_text(c, DIRECT, "alice", cmid, "noise", NULL);
    }
    /* both sides see the same 250, at every page size */
    for (int side = 0; side < 2; side++) {
        cimc_t *who = side == 0 ? a : b;
        const char *peer = side == 0 ? "bob" : "alice";
        page_back(who, DIRECT, peer, ids, HN, 0, 20); /* 0 → 20 */
        page_back(who, DIRECT, peer, ids, HN, 7, 7);
        page_back(who, DIRECT, peer, ids, HN, 100, 100);
        page_back(who, DIRECT, peer, ids, HN, 101, 100); /* capped at 100 */
        page_back(who, DIRECT, peer, ids, HN, 1000000, 100);
        page_back(who, DIRECT, peer, ids, HN, 1, 1);
    }
    /* the messages themselves */
    tmsg_page_init(&p, msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_OK(tmsg_history(b, DIRECT, "alice", ids[100], 10, &p));
    ASSERT_EQ(p.n, 10);
    ASSERT_TRUE(p.has_more);
    for (size_t i = 0; i < 10; i++) {
        size_t k = 90 + i;
        bool from_bob = k % 3 == 0;
        snprintf(cmid, sizeof(cmid), "h-%zu", k);
        snprintf(body, sizeof(body), "history %zu", k);
        ASSERT_U64_EQ(msgs[i].msg_id, ids[k]);
        ASSERT_STREQ(msgs[i].client_msg_id, cmid);
        ASSERT_STREQ(msgs[i].from, from_bob ? "bob" : "alice");
        ASSERT_STREQ(msgs[i].to, from_bob ? "alice" : "bob");
        ASSERT_EQ(msgs[i].conv_type, DIRECT);
        ASSERT_EQ(msgs[i].msg_type, TEXT);
        ASSERT_EQ(msgs[i].body_len, strlen(body));
        ASSERT_MEMEQ(msgs[i].body, body, strlen(body));
        ASSERT_EQ(msgs[i].flags, 0);
    }
    /* an id between two messages pages from there */
    if (ids[101] > ids[100] + 1) {
        tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
        ASSERT_OK(tmsg_history(b, DIRECT, "alice", ids[100] + 1, 3, &p));
        ASSERT_EQ(p.n, 3);
        ASSERT_U64_EQ(msgs[2].msg_id, ids[100]);
    }

    /* a group: its SYSTEM message and 250 from three members */
    create(a, "G", (const char *const[]){"bob", "carol"}, 2, gid);
    tmsg_page_init(&p, msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_OK(tmsg_history(c, GROUP, gid, 0, 0, &p));
    ASSERT_EQ(p.n, 1);
    ASSERT_TRUE(!p.has_more);
    free(tmsg_expect_group_event(&msgs[0], gid, cim_GroupEventKind_GE_CREATED, "alice",
                                 (const char *const[]){"bob", "carol"}, 2));
    ids[0] = msgs[0].msg_id;
    for (size_t i = 0; i < HN; i++) {
        cimc_t *s = i % 3 == 0 ? a : i % 3 == 1 ? b : c;
        snprintf(cmid, sizeof(cmid), "gh-%zu", i);
        snprintf(body, sizeof(body), "group history %zu", i);
        ids[1 + i] = send_text(s, GROUP, gid, cmid, body, NULL);
    }
    for (int side = 0; side < 3; side++) {
        cimc_t *who = side == 0 ? a : side == 1 ? b : c;
        page_back(who, GROUP, gid, ids, HN + 1, 0, 20);
        page_back(who, GROUP, gid, ids, HN + 1, 100, 100);
        page_back(who, GROUP, gid, ids, HN + 1, 33, 33);
    }
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_conv_history_former_member, 30)
{
    static tmsg_t msgs[32];
    tsrv_t t;
    tmsg_conv_t convs[4];
    cim_ConvListRsp crsp;
    cim_Result res;
    tmsg_page_t p;
    char gid[65];
    uint64_t created, x1, kick, x2, x3, end;
    size_t n;

    tsrv_start(&t, NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    create(a, "G", (const char *const[]){"bob", "carol"}, 2, gid);
    created = tmsg_expect_sys(a, gid, cim_GroupEventKind_GE_CREATED, "alice",
                              (const char *const[]){"bob", "carol"}, 2, NULL);
    x1 = send_text(a, GROUP, gid, "x1", "all three", NULL);
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, (const char *const[]){"carol"}, 1, &res),
                res, cim_Code_OK);
    kick = tmsg_expect_sys(a, gid, cim_GroupEventKind_GE_KICKED, "alice",
                           (const char *const[]){"carol"}, 1, NULL);
    x2 = send_text(b, GROUP, gid, "x2", "without carol", NULL);
    x3 = send_text(a, GROUP, gid, "x3", "without carol", NULL);

    /* carol sees up to the event that removed her */
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(c, GROUP, gid, 0, 0, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 3);
    ASSERT_U64_EQ(msgs[0].msg_id, created);
    ASSERT_U64_EQ(msgs[1].msg_id, x1);
    ASSERT_U64_EQ(msgs[2].msg_id, kick);
    ASSERT_TRUE(!p.has_more);
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(c, GROUP, gid, x3 + 1, 2, &p)); /* asking past it changes nothing */
    ASSERT_EQ(p.n, 2);
    ASSERT_U64_EQ(msgs[0].msg_id, x1);
    ASSERT_U64_EQ(msgs[1].msg_id, kick);
    ASSERT_TRUE(p.has_more);
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(c, GROUP, gid, kick, 0, &p));
    ASSERT_EQ(p.n, 2);
    ASSERT_U64_EQ(msgs[1].msg_id, x1);
    /* her conversation ends there too, and she can mark it read */
    n = convs_of(c, convs, N(convs), &crsp);
    ASSERT_EQ(n, 1);
    expect_conv(&convs[0], GROUP, gid, kick, 1, 0, 0);
    TMSG_EXPECT(tmsg_read(c, GROUP, gid, 0, &res), res, cim_Code_OK);
    n = convs_of(c, convs, N(convs), &crsp);
    expect_conv(&convs[0], GROUP, gid, kick, 0, kick, 0);
    ASSERT_EQ(crsp.total_unread, 0);
    /* bob sees it all */
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(b, GROUP, gid, 0, 0, &p));
    ASSERT_EQ(p.n, 5);
    ASSERT_U64_EQ(msgs[3].msg_id, x2);
    ASSERT_U64_EQ(msgs[4].msg_id, x3);
    /* after the group ends, its members keep its history and badges */
    take(b, 4); /* created, x1, kick, x3 */
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, gid, &res), res, cim_Code_OK);
    end = tmsg_expect_sys(b, gid, cim_GroupEventKind_GE_DISMISSED, "alice", NULL, 0, NULL);
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(b, GROUP, gid, 0, 0, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 6);
    ASSERT_U64_EQ(msgs[5].msg_id, end);
    n = convs_of(b, convs, N(convs), &crsp);
    expect_conv(&convs[0], GROUP, gid, end, 1, x2, 0); /* x3 from alice */
    TMSG_EXPECT(tmsg_read(b, GROUP, gid, 0, &res), res, cim_Code_OK);
    n = convs_of(b, convs, N(convs), &crsp);
    expect_conv(&convs[0], GROUP, gid, end, 0, end, 0);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* The next push on @p c must be the RECALL message of @p msg_id by @p by. @return its id. */
static uint64_t expect_recall_push(cimc_t *c, int conv_type, const char *by, const char *to,
                                   uint64_t msg_id)
{
    uint8_t buf[256];
    cim_RecallEvent re;
    tmsg_t m;
    int rc = tmsg_next_push(c, 5000, &m, buf, sizeof(buf));
    if (rc != 0)
        TEST_FAIL_("waiting for the RECALL of %" PRIu64 ": %s", msg_id, rc_str(rc));
    ASSERT_EQ(m.msg_type, cim_MsgType_RECALL);
    ASSERT_EQ(m.conv_type, conv_type);
    ASSERT_STREQ(m.from, by);
    ASSERT_STREQ(m.to, to);
    ASSERT_TRUE(m.msg_id > msg_id);
    tmsg_recall_event(&m, &re);
    ASSERT_U64_EQ(re.msg_id, msg_id);
    ASSERT_STREQ(re.by, by);
    return m.msg_id;
}

TEST_TIMEOUT(e2e_conv_recall_direct, 30)
{
    static tmsg_t msgs[16];
    static uint8_t bodies[4096];
    tsrv_t t;
    tmsg_conv_t convs[4];
    cim_ConvListRsp crsp;
    cim_Result res;
    tmsg_page_t p;
    uint64_t m0, m1, rid;
    size_t n;

    tsrv_start(&t, NULL);
    cimc_t *a1 = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
    cimc_t *b1 = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    m0 = send_text(a1, DIRECT, "bob", "keep", "this one stays", NULL);
    m1 = send_text(a1, DIRECT, "bob", "oops", "secret", NULL);
    take(b1, 2);
    take(b2, 2);
    take(a2, 2);

    /* the sender recalls: a RECALL message to every participant device but the recalling
     * session */
    TMSG_EXPECT(tmsg_recall(a1, m1, &res), res, cim_Code_OK);
    rid = expect_recall_push(b1, DIRECT, "alice", "bob", m1);
    ASSERT_U64_EQ(expect_recall_push(b2, DIRECT, "alice", "bob", m1), rid);
    ASSERT_U64_EQ(expect_recall_push(a2, DIRECT, "alice", "bob", m1), rid);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(b1, 1);

    /* HISTORY: the original, flagged RECALLED, its body erased; no RECALL entry */
    for (int k = 0; k < 2; k++) {
        tmsg_page_init(&p, msgs, N(msgs), bodies, sizeof(bodies));
        ASSERT_OK(tmsg_history(k == 0 ? b1 : a2, DIRECT, k == 0 ? "alice" : "bob", 0, 0, &p));
        ASSERT_EQ(p.code, cim_Code_OK);
        ASSERT_EQ(p.n, 2);
        ASSERT_U64_EQ(msgs[0].msg_id, m0);
        ASSERT_EQ(msgs[0].flags, 0);
        ASSERT_EQ(msgs[0].body_len, 14);
        ASSERT_U64_EQ(msgs[1].msg_id, m1);
        ASSERT_EQ(msgs[1].flags & RECALLED, RECALLED);
        ASSERT_EQ(msgs[1].body_len, 0);
        ASSERT_STREQ(msgs[1].client_msg_id, "oops");
    }
    /* SYNC: the flagged original and the RECALL message */
    {
        cimc_t *b3 = tsrv_login(&t, "bob", "b3", NULL);
        tmsg_page_init(&p, msgs, N(msgs), bodies, sizeof(bodies));
        ASSERT_OK(tmsg_sync_all(b3, 0, 0, &p));
        ASSERT_EQ(p.n, 3);
        ASSERT_U64_EQ(msgs[1].msg_id, m1);
        ASSERT_EQ(msgs[1].flags & RECALLED, RECALLED);
        ASSERT_EQ(msgs[1].body_len, 0);
        ASSERT_U64_EQ(msgs[2].msg_id, rid);
        ASSERT_EQ(msgs[2].msg_type, cim_MsgType_RECALL);
        cimc_close(b3);
    }
    /* CONV_LIST: last is the recalled original, flagged */
    n = convs_of(b2, convs, N(convs), &crsp);
    ASSERT_EQ(n, 1);
    ASSERT_U64_EQ(convs[0].last.msg_id, m1);
    ASSERT_EQ(convs[0].last.flags & RECALLED, RECALLED);
    ASSERT_EQ(convs[0].last.body_len, 0);
    n = convs_of(a1, convs, N(convs), &crsp);
    ASSERT_U64_EQ(convs[0].last.msg_id, m1);
    ASSERT_EQ(convs[0].last.flags & RECALLED, RECALLED);

    /* recalling again: OK, nothing new */
    TMSG_EXPECT(tmsg_recall(a2, m1, &res), res, cim_Code_OK);
    tmsg_expect_quiet(b1, 300);
    tmsg_expect_quiet(b2, 1);
    tmsg_expect_quiet(a1, 1);
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(b1);
    cimc_close(b2);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_conv_recall_errors, 30)
{
    tsrv_t t;
    cim_Result res;
    char gid[65];
    uint64_t m1, m2, sys, rid, other;

    tsrv_start(&t, "--recall_window_s", "1", NULL);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    m1 = send_text(a, DIRECT, "bob", "m1", "to recall later", NULL);
    take(b, 1);
    other = send_text(c, DIRECT, "bob", "c1", "carol's", NULL);
    take(b, 1);

    /* not the sender: FORBIDDEN */
    TMSG_EXPECT(tmsg_recall(b, m1, &res), res, cim_Code_FORBIDDEN);
    tmsg_expect_alive(b, z, y, "yan");
    /* not in the asker's timeline: NOT_FOUND (ids are global; strangers learn nothing) */
    TMSG_EXPECT(tmsg_recall(a, other, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_recall(c, m1, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(c, z, y, "yan");
    TMSG_EXPECT(tmsg_recall(a, 12345, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    /* no id: BAD_REQUEST */
    TMSG_EXPECT(tmsg_recall(a, 0, &res), res, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    /* SYSTEM and RECALL messages cannot be recalled */
    create(a, "G", (const char *const[]){"bob"}, 1, gid);
    sys = tmsg_expect_sys(b, gid, cim_GroupEventKind_GE_CREATED, "alice",
                          (const char *const[]){"bob"}, 1, NULL);
    TMSG_EXPECT(tmsg_recall(a, sys, &res), res, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    m2 = send_text(a, DIRECT, "bob", "m2", "recalled at once", NULL);
    take(b, 1);
    TMSG_EXPECT(tmsg_recall(a, m2, &res), res, cim_Code_OK);
    rid = expect_recall_push(b, DIRECT, "alice", "bob", m2);
    TMSG_EXPECT(tmsg_recall(a, rid, &res), res, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");

    /* past --recall_window_s 1: RECALL_WINDOW_PASSED, and the message stays as it was */
    tmsg_sleep_ms(1300);
    TMSG_EXPECT(tmsg_recall(a, m1, &res), res, cim_Code_RECALL_WINDOW_PASSED);
    tmsg_expect_alive(a, z, y, "yan");
    {
        tmsg_t msgs[8];
        uint8_t bodies[256];
        tmsg_page_t p;
        tmsg_page_init(&p, msgs, 8, bodies, sizeof(bodies));
        ASSERT_OK(tmsg_history(b, DIRECT, "alice", 0, 0, &p));
        ASSERT_EQ(p.n, 2);
        ASSERT_U64_EQ(msgs[0].msg_id, m1);
        ASSERT_EQ(msgs[0].flags, 0);
        ASSERT_EQ(msgs[0].body_len, 15);
        ASSERT_U64_EQ(msgs[1].msg_id, m2);
        ASSERT_EQ(msgs[1].flags & RECALLED, RECALLED);
    }
    /* one already recalled: still OK */
    TMSG_EXPECT(tmsg_recall(a, m2, &res), res, cim_Code_OK);
    tmsg_expect_quiet(b, 300);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_conv_recall_group, 30)
{
    static tmsg_t msgs[16];
    static uint8_t bodies[4096];
    static const char *const members[] = {"bob", "carol", "dave"};
    tsrv_t t;
    tmsg_conv_t convs[4];
    cim_ConvListRsp crsp;
    cim_Result res;
    tmsg_page_t p;
    char gid[65];
    uint64_t created, g1, g2, rid;
    size_t n;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"dave"}, 1);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a1 = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    create(a1, "G", members, 3, gid);
    created = tmsg_expect_sys(a1, gid, cim_GroupEventKind_GE_CREATED, "alice", members, 3, NULL);
    take(a2, 1);
    take(b, 1);
    take(c, 1);
    g1 = send_text(a1, GROUP, gid, "g1", "everyone sees this", NULL);
    g2 = send_text(b, GROUP, gid, "g2", "and this", NULL);
    take(a1, 1);
    take(a2, 2);
    take(b, 1);
    take(c, 2);

    /* a member other than the sender may not */
    TMSG_EXPECT(tmsg_recall(c, g1, &res), res, cim_Code_FORBIDDEN);
    tmsg_expect_alive(c, z, y, "yan");
    /* the sender: every member learns it, online by PUSH */
    TMSG_EXPECT(tmsg_recall(a1, g1, &res), res, cim_Code_OK);
    rid = expect_recall_push(b, GROUP, "alice", gid, g1);
    ASSERT_U64_EQ(expect_recall_push(c, GROUP, "alice", gid, g1), rid);
    ASSERT_U64_EQ(expect_recall_push(a2, GROUP, "alice", gid, g1), rid);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(b, 1);
    tmsg_expect_quiet(c, 1);
    /* ... and the offline by SYNC */
    {
        cimc_t *d = tsrv_login(&t, "dave", "d1", NULL);
        tmsg_page_init(&p, msgs, N(msgs), bodies, sizeof(bodies));
        ASSERT_OK(tmsg_sync_all(d, 0, 0, &p));
        ASSERT_EQ(p.n, 4);
        ASSERT_U64_EQ(msgs[0].msg_id, created);
        ASSERT_U64_EQ(msgs[1].msg_id, g1);
        ASSERT_EQ(msgs[1].flags & RECALLED, RECALLED);
        ASSERT_EQ(msgs[1].body_len, 0);
        ASSERT_U64_EQ(msgs[2].msg_id, g2);
        ASSERT_EQ(msgs[2].flags, 0);
        ASSERT_U64_EQ(msgs[3].msg_id, rid);
        {
            cim_RecallEvent re;
            tmsg_recall_event(&msgs[3], &re);
            ASSERT_U64_EQ(re.msg_id, g1);
            ASSERT_STREQ(re.by, "alice");
        }
        /* every member's history shows it flagged, without the RECALL entry */
        tmsg_page_init(&p, msgs, N(msgs), bodies, sizeof(bodies));
        ASSERT_OK(tmsg_history(d, GROUP, gid, 0, 0, &p));
        ASSERT_EQ(p.n, 3);
        ASSERT_U64_EQ(msgs[1].msg_id, g1);
        ASSERT_EQ(msgs[1].flags & RECALLED, RECALLED);
        ASSERT_EQ(msgs[1].body_len, 0);
        cimc_close(d);
    }
    tmsg_page_init(&p, msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_OK(tmsg_history(c, GROUP, gid, 0, 0, &p));
    ASSERT_EQ(p.n, 3);
    ASSERT_EQ(msgs[1].flags & RECALLED, RECALLED);
    ASSERT_EQ(msgs[2].flags, 0);
    ASSERT_EQ(msgs[2].body_len, 8);
    /* the newest message was not recalled: CONV_LIST's last is intact */
    n = convs_of(c, convs, N(convs), &crsp);
    ASSERT_EQ(n, 1);
    ASSERT_U64_EQ(convs[0].last.msg_id, g2);
    ASSERT_EQ(convs[0].last.flags, 0);
    /* recalling the newest one shows in CONV_LIST's last */
    TMSG_EXPECT(tmsg_recall(b, g2, &res), res, cim_Code_OK);
    expect_recall_push(c, GROUP, "bob", gid, g2);
    n = convs_of(c, convs, N(convs), &crsp);
    ASSERT_U64_EQ(convs[0].last.msg_id, g2);
    ASSERT_EQ(convs[0].last.flags & RECALLED, RECALLED);
    ASSERT_EQ(convs[0].last.body_len, 0);
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(b);
    cimc_close(c);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Pages of big messages are shortened to fit max_body and say so with has_more; paging on
 * loses nothing (PROTOCOL.md §3). */
TEST_TIMEOUT(e2e_conv_history_fits_max_body, 60)
{
    enum { NB = 12, BIG = 16000 };
    static uint8_t body[BIG], bodies[NB * BIG];
    static tmsg_t msgs[NB];
    uint64_t ids[NB], before = 0;
    tsrv_t t;
    tmsg_page_t p;
    size_t got = 0;

    tsrv_start(&t, NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    for (size_t i = 0; i < NB; i++) {
        cim_SendRsp rsp;
        char cmid[16];
        memset(body, (int)('a' + i), sizeof(body));
        snprintf(cmid, sizeof(cmid), "big-%zu", i);
        TMSG_EXPECT(tmsg_send(a, "bob", cmid, cim_MsgType_FILE, body, sizeof(body), false, &rsp),
                    rsp, cim_Code_OK);
        ids[i] = rsp.msg_id;
    }
    tmsg_page_init(&p, msgs, NB, bodies, sizeof(bodies));
    while (got < NB) {
        size_t before_n = p.n;
        ASSERT_OK(tmsg_history(b, DIRECT, "alice", before, 100, &p));
        ASSERT_EQ(p.code, cim_Code_OK);
        ASSERT_TRUE(p.page_n >= 1 && p.page_n * BIG < 65536);
        /* the page is the newest that fit: ids[NB - got - page_n .. NB - got) */
        for (size_t i = 0; i < p.page_n; i++)
            ASSERT_U64_EQ(p.msgs[before_n + i].msg_id, ids[NB - got - p.page_n + i]);
        got += p.page_n;
        ASSERT_EQ(p.has_more, got < NB);
        before = p.msgs[before_n].msg_id;
    }
    ASSERT_TRUE(p.pages >= NB / 4);
    for (size_t i = 0; i < NB; i++) {
        ASSERT_EQ(msgs[i].body_len, BIG);
        ASSERT_NOT_NULL(msgs[i].body);
    }
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
