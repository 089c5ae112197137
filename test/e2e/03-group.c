/* Integration: groups — GROUP_CREATE, JOIN, ADD, LEAVE, KICK, DISMISS, MEMBERS, LIST with
 * every rejection code; group messages (PUSH to every online member device but the sending
 * session, exactly once; SYNC for the offline), membership changes as SYSTEM messages in
 * order, kicked and departed members no longer reached (PROTOCOL.md §4 0x0401–0x0410, §5
 * Group*, §6 Groups). A real cimd through libcim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define GE_CREATED cim_GroupEventKind_GE_CREATED
#define GE_JOINED cim_GroupEventKind_GE_JOINED
#define GE_ADDED cim_GroupEventKind_GE_ADDED
#define GE_LEFT cim_GroupEventKind_GE_LEFT
#define GE_KICKED cim_GroupEventKind_GE_KICKED
#define GE_DISMISSED cim_GroupEventKind_GE_DISMISSED
#define GROUP cim_ConvType_GROUP
#define TEXT cim_MsgType_TEXT
#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* A group id as PROTOCOL.md §6 and the server promise: canonical decimal, >= 1000. */
static uint64_t check_gid(const char *gid)
{
    uint64_t v = 0;
    size_t n = strlen(gid);
    ASSERT_TRUE(n > 0 && n <= 19);
    ASSERT_TRUE(gid[0] != '0');
    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(gid[i] >= '0' && gid[i] <= '9');
        v = v * 10 + (uint64_t)(gid[i] - '0');
    }
    ASSERT_TRUE(v >= 1000);
    return v;
}

/* Create a group and check the answer; @p gid receives its id. */
static void create(cimc_t *c, const char *owner, const char *name, const char *const *members,
                   size_t n, bool open, uint32_t want_count, char *gid)
{
    cim_GroupRsp rsp;
    TMSG_EXPECT(tmsg_group_create(c, name, members, n, open, &rsp), rsp, cim_Code_OK);
    ASSERT_TRUE(rsp.has_group);
    check_gid(rsp.group.group_id);
    ASSERT_STREQ(rsp.group.name, name);
    ASSERT_STREQ(rsp.group.owner, owner);
    ASSERT_EQ(rsp.group.member_count, want_count);
    ASSERT_EQ(rsp.group.open, open);
    snprintf(gid, 65, "%s", rsp.group.group_id);
}

/* Send a group TEXT; @return its msg_id. */
static uint64_t gsend(cimc_t *c, const char *gid, const char *cmid, const char *body)
{
    cim_SendRsp rsp;
    TMSG_EXPECT(tmsg_send_conv(c, GROUP, gid, cmid, TEXT, body, strlen(body), false, &rsp), rsp,
                cim_Code_OK);
    ASSERT_TRUE(rsp.msg_id != 0);
    ASSERT_STREQ(rsp.client_msg_id, cmid);
    return rsp.msg_id;
}

/* The next push on @p c is group message @p id. */
static void expect_gmsg(cimc_t *c, uint64_t id, const char *from, const char *gid,
                        const char *cmid, const char *body)
{
    tmsg_expect_push(c, id, GROUP, from, gid, cmid, TEXT, body, strlen(body));
}

/* A group send that must be refused with @p code. */
static void gsend_refused(cimc_t *c, const char *gid, const char *cmid, int code)
{
    cim_SendRsp rsp;
    TMSG_EXPECT(tmsg_send_conv(c, GROUP, gid, cmid, TEXT, "x", 1, false, &rsp), rsp, code);
    ASSERT_U64_EQ(rsp.msg_id, 0);
    ASSERT_STREQ(rsp.client_msg_id, cmid);
}

/* The whole timeline of @p user, seen from a fresh device. */
static size_t timeline(const tsrv_t *t, const char *user, tmsg_t *msgs, size_t cap,
                       uint8_t *bodies, size_t bcap)
{
    static int n;
    char dev[32];
    tmsg_page_t p;
    snprintf(dev, sizeof(dev), "probe-%d", ++n);
    cimc_t *c = tsrv_login(t, user, dev, NULL);
    tmsg_page_init(&p, msgs, cap, bodies, bcap);
    ASSERT_OK(tmsg_sync_all(c, 0, 0, &p));
    ASSERT_TRUE(!p.overflow);
    cimc_close(c);
    return p.n;
}

/* @p user's GROUP_LIST holds @p gid (or not). */
static void expect_listed(cimc_t *c, const char *gid, bool want)
{
    static cim_Group groups[64];
    cim_GroupListRsp rsp;
    size_t n;
    bool found = false;
    TMSG_EXPECT(tmsg_group_list(c, groups, N(groups), &n, &rsp), rsp, cim_Code_OK);
    for (size_t i = 0; i < n && i < N(groups); i++)
        found = found || strcmp(groups[i].group_id, gid) == 0;
    if (found != want)
        TEST_FAIL_("GROUP_LIST %s group %s", want ? "misses" : "still holds", gid);
}

/* GROUP_MEMBERS of @p gid must be exactly @p want (any order). */
static void expect_members(cimc_t *c, const char *gid, const char *const *want, size_t n)
{
    static char names[64][65];
    cim_GroupMembersRsp rsp;
    size_t got;
    TMSG_EXPECT(tmsg_group_members(c, gid, names, N(names), &got, &rsp), rsp, cim_Code_OK);
    ASSERT_EQ(got, n);
    for (size_t i = 0; i < n; i++)
        if (!tmsg_has_name(names, got, want[i]))
            TEST_FAIL_("GROUP_MEMBERS %s misses %s", gid, want[i]);
    ASSERT_TRUE(rsp.has_group);
    ASSERT_STREQ(rsp.group.group_id, gid);
    ASSERT_EQ(rsp.group.member_count, n);
}

TEST_TIMEOUT(e2e_group_create, 30)
{
    static const char *const members[] = {"bob", "carol", "dave", "alice", "bob"};
    static const char *const others[] = {"bob", "carol", "dave"};
    static const char *const everyone[] = {"alice", "bob", "carol", "dave"};
    static tmsg_t msgs[16];
    static uint8_t bodies[8192];
    tsrv_t t;
    cim_GroupRsp rsp;
    cim_GroupEvent *ev;
    char gid[65], gid2[65];
    uint64_t t0, t1, id;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"dave"}, 1);
    cimc_t *a1 = tmsg_login(&t, "alice", "a1", cim_DeviceKind_DESKTOP, NULL);
    cimc_t *a2 = tmsg_login(&t, "alice", "a2", cim_DeviceKind_MOBILE, NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);

    /* the creator listed among the members and a member listed twice count once */
    t0 = wall_ms();
    TMSG_EXPECT(tmsg_group_create(a1, "Friends", members, N(members), false, &rsp), rsp,
                cim_Code_OK);
    t1 = wall_ms();
    ASSERT_TRUE(rsp.has_group);
    check_gid(rsp.group.group_id);
    snprintf(gid, sizeof(gid), "%s", rsp.group.group_id);
    ASSERT_STREQ(rsp.group.name, "Friends");
    ASSERT_STREQ(rsp.group.owner, "alice");
    ASSERT_EQ(rsp.group.member_count, 4);
    ASSERT_EQ(rsp.group.open, false);
    ASSERT_TRUE(rsp.group.created_ms + 1000 >= t0 && rsp.group.created_ms <= t1 + 1000);

    /* GE_CREATED{users = the members but the creator} to every online device of every
     * member, the creating session included, once each */
    id = tmsg_expect_sys(a1, gid, GE_CREATED, "alice", others, N(others), &ev);
    ASSERT_STREQ(ev->group.name, "Friends");
    ASSERT_STREQ(ev->group.owner, "alice");
    ASSERT_EQ(ev->group.member_count, 4);
    ASSERT_EQ(ev->group.open, false);
    ASSERT_U64_EQ(ev->group.created_ms, rsp.group.created_ms);
    free(ev);
    ASSERT_U64_EQ(tmsg_expect_sys(a2, gid, GE_CREATED, "alice", others, N(others), NULL), id);
    ASSERT_U64_EQ(tmsg_expect_sys(b, gid, GE_CREATED, "alice", others, N(others), NULL), id);
    ASSERT_U64_EQ(tmsg_expect_sys(c, gid, GE_CREATED, "alice", others, N(others), NULL), id);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(a2, 1);
    tmsg_expect_quiet(b, 1);
    tmsg_expect_quiet(c, 1);

    /* dave was offline: the same SYSTEM message is the one entry of his timeline */
    ASSERT_EQ(timeline(&t, "dave", msgs, N(msgs), bodies, sizeof(bodies)), 1);
    ASSERT_U64_EQ(msgs[0].msg_id, id);
    ASSERT_EQ(msgs[0].msg_type, cim_MsgType_SYSTEM);
    ASSERT_EQ(msgs[0].conv_type, GROUP);
    free(tmsg_expect_group_event(&msgs[0], gid, GE_CREATED, "alice", others, N(others)));
    /* and alice's */
    ASSERT_EQ(timeline(&t, "alice", msgs, N(msgs), bodies, sizeof(bodies)), 1);
    ASSERT_U64_EQ(msgs[0].msg_id, id);

    /* a group of one: no members given */
    create(b, "bob", "Solo", NULL, 0, true, 1, gid2);
    ASSERT_TRUE(check_gid(gid2) != check_gid(gid));
    tmsg_expect_sys(b, gid2, GE_CREATED, "bob", NULL, 0, NULL);
    tmsg_expect_quiet(b, 200);
    tmsg_expect_quiet(a1, 1);
    tmsg_expect_quiet(c, 1);

    /* a 64-byte name is fine */
    {
        char name[65];
        char g3[65];
        memset(name, 'n', 64);
        name[64] = '\0';
        create(c, "carol", name, NULL, 0, false, 1, g3);
        tmsg_expect_sys(c, g3, GE_CREATED, "carol", NULL, 0, NULL);
    }

    /* GROUP_LIST and GROUP_MEMBERS show it */
    expect_listed(a1, gid, true);
    expect_listed(a2, gid2, false);
    expect_listed(b, gid, true);
    expect_listed(b, gid2, true);
    expect_members(c, gid, everyone, N(everyone));
    cimc_close(a1);
    cimc_close(a2);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A GroupCreateReq built by hand: a name of @p nlen bytes, one member "bob". */
static size_t raw_create(uint8_t *buf, size_t cap, uint32_t req_id, size_t nlen)
{
    char name[128];
    size_t n = 0;
    memset(name, 'x', nlen);
    n = tmsg_pb_varint(buf, cap, n, 1, req_id);
    n = tmsg_pb_bytes(buf, cap, n, 2, name, nlen);
    return tmsg_pb_bytes(buf, cap, n, 3, "bob", 3);
}

TEST_TIMEOUT(e2e_group_create_errors, 30)
{
    tsrv_t t;
    cim_GroupRsp rsp;
    cim_GroupListRsp lr;
    cim_Group groups[8];
    uint8_t raw[256];
    size_t n;
    char gid[65];

    tsrv_start(&t, "--max_group_size", "4", NULL);
    tmsg_register_users(&t, (const char *const[]){"dave", "erin"}, 2);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);

    /* name: empty, 65 bytes (built by hand) */
    TMSG_EXPECT(tmsg_group_create(a, "", (const char *const[]){"bob"}, 1, false, &rsp), rsp,
                cim_Code_BAD_REQUEST);
    ASSERT_TRUE(!rsp.has_group);
    tmsg_expect_alive(a, z, y, "yan");
    n = raw_create(raw, sizeof(raw), 4242, 65);
    memset(&rsp, 0, sizeof(rsp));
    TMSG_EXPECT(tmsg_call_raw(a, FT_GROUP_CREATE, raw, n, FT_GROUP_CREATE_ACK,
                              cim_GroupRsp_fields, &rsp),
                rsp, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    /* the same frame with 64 bytes is fine (so 65 was refused for its length) */
    n = raw_create(raw, sizeof(raw), 4243, 64);
    memset(&rsp, 0, sizeof(rsp));
    TMSG_EXPECT(tmsg_call_raw(a, FT_GROUP_CREATE, raw, n, FT_GROUP_CREATE_ACK,
                              cim_GroupRsp_fields, &rsp),
                rsp, cim_Code_OK);
    ASSERT_EQ(rsp.req_id, 4243);
    snprintf(gid, sizeof(gid), "%s", rsp.group.group_id);
    /* (a's own copy of the SYSTEM message may have come before the answer: dropped) */
    tmsg_expect_sys(b, gid, GE_CREATED, "alice", (const char *const[]){"bob"}, 1, NULL);

    /* members that are not user ids */
    TMSG_EXPECT(tmsg_group_create(a, "g", (const char *const[]){"bob", "b o b"}, 2, false, &rsp),
                rsp, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_create(a, "g", (const char *const[]){""}, 1, false, &rsp), rsp,
                cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_create(a, "g", (const char *const[]){"bob/1"}, 1, false, &rsp), rsp,
                cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");

    /* an unknown member: NOT_FOUND, and nobody hears of a group */
    TMSG_EXPECT(tmsg_group_create(a, "g", (const char *const[]){"bob", "nobody"}, 2, false, &rsp),
                rsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");

    /* past --max_group_size 4: the creator and four members */
    TMSG_EXPECT(tmsg_group_create(a, "g",
                                  (const char *const[]){"bob", "carol", "dave", "erin"}, 4,
                                  false, &rsp),
                rsp, cim_Code_TOO_LARGE);
    tmsg_expect_alive(a, z, y, "yan");
    tmsg_expect_quiet(b, 200);
    tmsg_expect_quiet(c, 1);

    /* none of the refused ones exists */
    TMSG_EXPECT(tmsg_group_list(a, groups, N(groups), &n, &lr), lr, cim_Code_OK);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(groups[0].group_id, gid);
    TMSG_EXPECT(tmsg_group_list(c, groups, N(groups), &n, &lr), lr, cim_Code_OK);
    ASSERT_EQ(n, 0);

    /* exactly max_group_size: fine */
    create(a, "alice", "four", (const char *const[]){"bob", "carol", "dave"}, 3, false, 4, gid);
    tmsg_expect_sys(b, gid, GE_CREATED, "alice", (const char *const[]){"bob", "carol", "dave"},
                    3, NULL);
    /* distinct members are what counts: duplicates and the creator do not (PROTOCOL.md §6:
     * the group's size is its members) */
    create(a, "alice", "dups", (const char *const[]){"bob", "bob", "carol", "carol", "dave"}, 5,
           false, 4, gid);
    tmsg_expect_sys(b, gid, GE_CREATED, "alice", (const char *const[]){"bob", "carol", "dave"},
                    3, NULL);
    create(a, "alice", "self", (const char *const[]){"alice", "bob", "carol", "dave"}, 4, false,
           4, gid);
    tmsg_expect_sys(b, gid, GE_CREATED, "alice", (const char *const[]){"bob", "carol", "dave"},
                    3, NULL);
    tmsg_expect_quiet(b, 200);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Every request naming a group refused with @p code: BAD_REQUEST for a malformed id,
 * NOT_FOUND for a well-formed one no group has. */
static void all_refused(cimc_t *a, cimc_t *z, cimc_t *y, const char *gid,
                        int code)
{
    cim_GroupRsp grsp;
    cim_Result res;
    cim_GroupMembersRsp mrsp;
    char names[4][65];
    size_t n;
    tmsg_page_t p;
    tmsg_t msgs[4];

    TMSG_EXPECT(tmsg_group_join(a, gid, &grsp), grsp, code);
    ASSERT_TRUE(!grsp.has_group);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_LEAVE, gid, &res), res, code);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, gid, &res), res, code);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, (const char *const[]){"bob"}, 1, &res),
                res, code);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, (const char *const[]){"bob"}, 1, &res),
                res, code);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_members(a, gid, names, 4, &n, &mrsp), mrsp, code);
    ASSERT_EQ(n, 0);
    tmsg_expect_alive(a, z, y, "yan");
    gsend_refused(a, gid, "bad-gid", code);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_read(a, GROUP, gid, 0, &res), res, code);
    tmsg_expect_alive(a, z, y, "yan");
    tmsg_page_init(&p, msgs, 4, NULL, 0);
    ASSERT_OK(tmsg_history(a, GROUP, gid, 0, 0, &p));
    tmsg_expect_code_(__FILE__, __LINE__, 0, p.code, p.reason, code);
    ASSERT_EQ(p.n, 0);
    tmsg_expect_alive(a, z, y, "yan");
}

TEST_TIMEOUT(e2e_group_bad_id, 60)
{
    static const char *const bad[] = {"",      "0",     "01000", "abc",  "10a0",
                                      "-1000", "+1000", " 1000", "1000 ", "12345678901234567890"};
    tsrv_t t;
    char gid[65];

    tsrv_start(&t, NULL);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    /* one real group, so that ids near it exist */
    create(b, "bob", "real", NULL, 0, true, 1, gid);
    tmsg_expect_sys(b, gid, GE_CREATED, "bob", NULL, 0, NULL);
    for (size_t i = 0; i < N(bad); i++)
        all_refused(a, z, y, bad[i], cim_Code_BAD_REQUEST);
    /* well-formed, but no such group */
    all_refused(a, z, y, "999", cim_Code_NOT_FOUND);
    all_refused(a, z, y, "9999999999999999999", cim_Code_NOT_FOUND);
    {
        char next[32];
        snprintf(next, sizeof(next), "%llu", (unsigned long long)check_gid(gid) + 1);
        all_refused(a, z, y, next, cim_Code_NOT_FOUND);
    }
    tmsg_expect_quiet(b, 200);
    cimc_close(a);
    cimc_close(b);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_group_join, 30)
{
    static const char *const three[] = {"alice", "bob", "carol"};
    tsrv_t t;
    cim_GroupRsp rsp;
    cim_Result res;
    cim_GroupEvent *ev;
    char open_gid[65], closed_gid[65];
    uint64_t id, m;

    tsrv_start(&t, "--max_group_size", "3", NULL);
    tmsg_register_users(&t, (const char *const[]){"dave"}, 1);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c1 = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *c2 = tsrv_login(&t, "carol", "c2", NULL);
    create(a, "alice", "Open", (const char *const[]){"bob"}, 1, true, 2, open_gid);
    create(a, "alice", "Closed", (const char *const[]){"bob"}, 1, false, 2, closed_gid);
    for (int i = 0; i < 2; i++) {
        const char *g = i == 0 ? open_gid : closed_gid;
        tmsg_expect_sys(a, g, GE_CREATED, "alice", (const char *const[]){"bob"}, 1, NULL);
        tmsg_expect_sys(b, g, GE_CREATED, "alice", (const char *const[]){"bob"}, 1, NULL);
    }

    /* carol joins the open group: GroupRsp, and GE_JOINED{users=[carol]} to every member's
     * devices, hers (the joining session too) included */
    TMSG_EXPECT(tmsg_group_join(c1, open_gid, &rsp), rsp, cim_Code_OK);
    ASSERT_TRUE(rsp.has_group);
    ASSERT_STREQ(rsp.group.group_id, open_gid);
    ASSERT_STREQ(rsp.group.name, "Open");
    ASSERT_STREQ(rsp.group.owner, "alice");
    ASSERT_EQ(rsp.group.member_count, 3);
    ASSERT_EQ(rsp.group.open, true);
    id = tmsg_expect_sys(a, open_gid, GE_JOINED, "carol", (const char *const[]){"carol"}, 1, &ev);
    ASSERT_EQ(ev->group.member_count, 3);
    free(ev);
    ASSERT_U64_EQ(tmsg_expect_sys(b, open_gid, GE_JOINED, "carol", (const char *const[]){"carol"},
                                  1, NULL),
                  id);
    ASSERT_U64_EQ(tmsg_expect_sys(c1, open_gid, GE_JOINED, "carol",
                                  (const char *const[]){"carol"}, 1, NULL),
                  id);
    ASSERT_U64_EQ(tmsg_expect_sys(c2, open_gid, GE_JOINED, "carol",
                                  (const char *const[]){"carol"}, 1, NULL),
                  id);
    expect_members(b, open_gid, three, 3);
    expect_listed(c2, open_gid, true);

    /* a member now: sends and receives */
    m = gsend(c1, open_gid, "hi-all", "hello, I am new");
    expect_gmsg(a, m, "carol", open_gid, "hi-all", "hello, I am new");
    expect_gmsg(b, m, "carol", open_gid, "hi-all", "hello, I am new");
    expect_gmsg(c2, m, "carol", open_gid, "hi-all", "hello, I am new");
    m = gsend(b, open_gid, "welcome", "welcome");
    expect_gmsg(c1, m, "bob", open_gid, "welcome", "welcome");
    expect_gmsg(c2, m, "bob", open_gid, "welcome", "welcome");
    expect_gmsg(a, m, "bob", open_gid, "welcome", "welcome");

    /* already a member: OK, nothing changes, nobody hears of it */
    TMSG_EXPECT(tmsg_group_join(c2, open_gid, &rsp), rsp, cim_Code_OK);
    ASSERT_EQ(rsp.group.member_count, 3);
    TMSG_EXPECT(tmsg_group_join(a, open_gid, &rsp), rsp, cim_Code_OK);
    ASSERT_EQ(rsp.group.member_count, 3);
    tmsg_expect_quiet(a, 300);
    tmsg_expect_quiet(b, 1);
    tmsg_expect_quiet(c1, 1);
    tmsg_expect_quiet(c2, 1);

    /* not open: FORBIDDEN */
    TMSG_EXPECT(tmsg_group_join(c1, closed_gid, &rsp), rsp, cim_Code_FORBIDDEN);
    ASSERT_TRUE(!rsp.has_group);
    tmsg_expect_alive(c1, z, y, "yan");
    /* full (--max_group_size 3): TOO_LARGE */
    cimc_t *d = tsrv_login(&t, "dave", "d1", NULL);
    TMSG_EXPECT(tmsg_group_join(d, open_gid, &rsp), rsp, cim_Code_TOO_LARGE);
    tmsg_expect_alive(d, z, y, "yan");
    /* unknown: NOT_FOUND */
    TMSG_EXPECT(tmsg_group_join(d, "123456", &rsp), rsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(d, z, y, "yan");
    tmsg_expect_quiet(a, 200);
    tmsg_expect_quiet(b, 1);
    expect_members(a, open_gid, three, 3);

    /* dismissed: NOT_FOUND */
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, open_gid, &res), res, cim_Code_OK);
    {
        cimc_t *all[] = {a, b, c1, c2};
        for (size_t i = 0; i < N(all); i++)
            tmsg_expect_sys(all[i], open_gid, GE_DISMISSED, "alice", NULL, 0, NULL);
    }
    TMSG_EXPECT(tmsg_group_join(d, open_gid, &rsp), rsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(d, z, y, "yan");
    TMSG_EXPECT(tmsg_group_join(c1, open_gid, &rsp), rsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(c1, z, y, "yan");
    tmsg_expect_quiet(d, 100);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c1);
    cimc_close(c2);
    cimc_close(d);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_group_add, 30)
{
    static tmsg_t msgs[16];
    static uint8_t bodies[8192];
    tsrv_t t;
    cim_Result res;
    cim_GroupEvent *ev;
    char gid[65];
    uint64_t e1, e2, e3;

    tsrv_start(&t, "--max_group_size", "6", NULL);
    tmsg_register_users(&t, (const char *const[]){"dave", "gina", "hank"}, 3);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *e = tsrv_login(&t, "erin", "e1", NULL);
    cimc_t *f = tsrv_login(&t, "frank", "f1", NULL);
    create(a, "alice", "G", (const char *const[]){"bob"}, 1, false, 2, gid);
    tmsg_expect_sys(a, gid, GE_CREATED, "alice", (const char *const[]){"bob"}, 1, NULL);
    tmsg_expect_sys(b, gid, GE_CREATED, "alice", (const char *const[]){"bob"}, 1, NULL);

    /* any member may add: GE_ADDED{actor bob, users = the new ones} to the members after
     * the change (the added included; dave is offline) */
    TMSG_EXPECT(tmsg_group_users(b, FT_GROUP_ADD, gid, (const char *const[]){"carol", "dave"}, 2,
                                 &res),
                res, cim_Code_OK);
    e1 = tmsg_expect_sys(a, gid, GE_ADDED, "bob", (const char *const[]){"carol", "dave"}, 2, &ev);
    ASSERT_EQ(ev->group.member_count, 4);
    ASSERT_STREQ(ev->group.owner, "alice");
    free(ev);
    ASSERT_U64_EQ(tmsg_expect_sys(b, gid, GE_ADDED, "bob", (const char *const[]){"carol", "dave"},
                                  2, NULL),
                  e1);
    ASSERT_U64_EQ(tmsg_expect_sys(c, gid, GE_ADDED, "bob", (const char *const[]){"carol", "dave"},
                                  2, NULL),
                  e1);
    /* existing members are skipped: only erin is new */
    TMSG_EXPECT(tmsg_group_users(c, FT_GROUP_ADD, gid,
                                 (const char *const[]){"carol", "erin", "alice", "erin"}, 4, &res),
                res, cim_Code_OK);
    e2 = tmsg_expect_sys(e, gid, GE_ADDED, "carol", (const char *const[]){"erin"}, 1, NULL);
    tmsg_expect_sys(a, gid, GE_ADDED, "carol", (const char *const[]){"erin"}, 1, NULL);
    tmsg_expect_sys(b, gid, GE_ADDED, "carol", (const char *const[]){"erin"}, 1, NULL);
    tmsg_expect_sys(c, gid, GE_ADDED, "carol", (const char *const[]){"erin"}, 1, NULL);
    /* all of them members already: OK, no event */
    TMSG_EXPECT(tmsg_group_users(e, FT_GROUP_ADD, gid, (const char *const[]){"alice", "bob"}, 2,
                                 &res),
                res, cim_Code_OK);
    tmsg_expect_quiet(a, 300);
    tmsg_expect_quiet(b, 1);
    tmsg_expect_quiet(c, 1);
    tmsg_expect_quiet(e, 1);

    /* a non-member may not add, not even themselves */
    TMSG_EXPECT(tmsg_group_users(f, FT_GROUP_ADD, gid, (const char *const[]){"frank"}, 1, &res),
                res, cim_Code_NOT_MEMBER);
    tmsg_expect_alive(f, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(f, FT_GROUP_ADD, gid, (const char *const[]){"gina"}, 1, &res),
                res, cim_Code_NOT_MEMBER);
    tmsg_expect_alive(f, z, y, "yan");
    /* an unknown user: NOT_FOUND, and nobody of the list is added */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, (const char *const[]){"gina", "nobody"}, 2,
                                 &res),
                res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    /* malformed: no users, a bad id */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, NULL, 0, &res), res, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, (const char *const[]){"gina", "g i"}, 2,
                                 &res),
                res, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    /* past --max_group_size 6 (five members now) */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, (const char *const[]){"gina", "hank"}, 2,
                                 &res),
                res, cim_Code_TOO_LARGE);
    tmsg_expect_alive(a, z, y, "yan");
    tmsg_expect_quiet(a, 200);
    tmsg_expect_quiet(b, 1);
    expect_members(b, gid, (const char *const[]){"alice", "bob", "carol", "dave", "erin"}, 5);
    /* up to it: fine */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, (const char *const[]){"gina"}, 1, &res),
                res, cim_Code_OK);
    e3 = tmsg_expect_sys(b, gid, GE_ADDED, "alice", (const char *const[]){"gina"}, 1, NULL);
    tmsg_expect_sys(a, gid, GE_ADDED, "alice", (const char *const[]){"gina"}, 1, NULL);
    tmsg_expect_sys(c, gid, GE_ADDED, "alice", (const char *const[]){"gina"}, 1, NULL);
    tmsg_expect_sys(e, gid, GE_ADDED, "alice", (const char *const[]){"gina"}, 1, NULL);
    expect_members(e, gid,
                   (const char *const[]){"alice", "bob", "carol", "dave", "erin", "gina"}, 6);

    /* dave, offline all along, learns it by SYNC: from the event that added him on */
    ASSERT_EQ(timeline(&t, "dave", msgs, N(msgs), bodies, sizeof(bodies)), 3);
    ASSERT_U64_EQ(msgs[0].msg_id, e1);
    ASSERT_U64_EQ(msgs[1].msg_id, e2);
    ASSERT_U64_EQ(msgs[2].msg_id, e3);
    free(tmsg_expect_group_event(&msgs[2], gid, GE_ADDED, "alice", (const char *const[]){"gina"},
                                 1));

    /* unknown and dismissed groups: NOT_FOUND */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, "77777", (const char *const[]){"hank"}, 1, &res),
                res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, gid, &res), res, cim_Code_OK);
    tmsg_expect_sys(b, gid, GE_DISMISSED, "alice", NULL, 0, NULL); /* lists no users */
    TMSG_EXPECT(tmsg_group_users(b, FT_GROUP_ADD, gid, (const char *const[]){"hank"}, 1, &res),
                res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(b, z, y, "yan");
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    cimc_close(e);
    cimc_close(f);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_group_leave, 30)
{
    tsrv_t t;
    cim_Result res;
    cim_GroupRsp grsp;
    cim_GroupMembersRsp mrsp;
    cim_GroupEvent *ev;
    char gid[65], names[8][65];
    size_t n;
    uint64_t m;

    tsrv_start(&t, NULL);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *r = tsrv_login(&t, "aaron", "r1", NULL);
    cimc_t *e = tsrv_login(&t, "erin", "e1", NULL);
    /* carol and bob join at creation; aaron (the smallest id) later */
    create(a, "alice", "G", (const char *const[]){"carol", "bob"}, 2, true, 3, gid);
    tmsg_expect_sys(a, gid, GE_CREATED, "alice", (const char *const[]){"carol", "bob"}, 2, NULL);
    tmsg_expect_sys(b, gid, GE_CREATED, "alice", (const char *const[]){"carol", "bob"}, 2, NULL);
    tmsg_expect_sys(c, gid, GE_CREATED, "alice", (const char *const[]){"carol", "bob"}, 2, NULL);
    TMSG_EXPECT(tmsg_group_join(r, gid, &grsp), grsp, cim_Code_OK);
    tmsg_expect_sys(a, gid, GE_JOINED, "aaron", (const char *const[]){"aaron"}, 1, NULL);
    tmsg_expect_sys(b, gid, GE_JOINED, "aaron", (const char *const[]){"aaron"}, 1, NULL);
    tmsg_expect_sys(c, gid, GE_JOINED, "aaron", (const char *const[]){"aaron"}, 1, NULL);
    tmsg_expect_sys(r, gid, GE_JOINED, "aaron", (const char *const[]){"aaron"}, 1, NULL);

    /* not a member: NOT_MEMBER */
    TMSG_EXPECT(tmsg_group_req(e, FT_GROUP_LEAVE, gid, &res), res, cim_Code_NOT_MEMBER);
    tmsg_expect_alive(e, z, y, "yan");

    /* the owner leaves: the longest-standing member takes over — bob and carol joined in
     * the same event, the tie goes to the smaller id: bob */
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_LEAVE, gid, &res), res, cim_Code_OK);
    tmsg_expect_sys(a, gid, GE_LEFT, "alice", (const char *const[]){"alice"}, 1, &ev);
    ASSERT_STREQ(ev->group.owner, "bob");
    ASSERT_EQ(ev->group.member_count, 3);
    free(ev);
    tmsg_expect_sys(b, gid, GE_LEFT, "alice", (const char *const[]){"alice"}, 1, NULL);
    tmsg_expect_sys(c, gid, GE_LEFT, "alice", (const char *const[]){"alice"}, 1, NULL);
    tmsg_expect_sys(r, gid, GE_LEFT, "alice", (const char *const[]){"alice"}, 1, NULL);
    TMSG_EXPECT(tmsg_group_members(c, gid, names, 8, &n, &mrsp), mrsp, cim_Code_OK);
    ASSERT_STREQ(mrsp.group.owner, "bob");
    ASSERT_EQ(n, 3);
    ASSERT_TRUE(!tmsg_has_name(names, n, "alice"));
    expect_listed(a, gid, false);
    /* alice is out: she cannot send, leave again, and hears nothing more */
    gsend_refused(a, gid, "after-leaving", cim_Code_NOT_MEMBER);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_LEAVE, gid, &res), res, cim_Code_NOT_MEMBER);
    tmsg_expect_alive(a, z, y, "yan");
    m = gsend(c, gid, "without-alice", "alice is gone");
    expect_gmsg(b, m, "carol", gid, "without-alice", "alice is gone");
    expect_gmsg(r, m, "carol", gid, "without-alice", "alice is gone");
    tmsg_expect_quiet(a, 300);
    /* the new owner's rights: carol may not dismiss, bob is the one who could */
    TMSG_EXPECT(tmsg_group_req(c, FT_GROUP_DISMISS, gid, &res), res, cim_Code_FORBIDDEN);
    tmsg_expect_alive(c, z, y, "yan");

    /* bob leaves: carol (at creation) before aaron (joined later, though a smaller id) */
    TMSG_EXPECT(tmsg_group_req(b, FT_GROUP_LEAVE, gid, &res), res, cim_Code_OK);
    tmsg_expect_sys(b, gid, GE_LEFT, "bob", (const char *const[]){"bob"}, 1, NULL);
    tmsg_expect_sys(r, gid, GE_LEFT, "bob", (const char *const[]){"bob"}, 1, NULL);
    tmsg_expect_sys(c, gid, GE_LEFT, "bob", (const char *const[]){"bob"}, 1, &ev);
    ASSERT_STREQ(ev->group.owner, "carol");
    ASSERT_EQ(ev->group.member_count, 2);
    free(ev);
    /* a member (not the owner) leaving keeps the owner */
    TMSG_EXPECT(tmsg_group_req(r, FT_GROUP_LEAVE, gid, &res), res, cim_Code_OK);
    tmsg_expect_sys(r, gid, GE_LEFT, "aaron", (const char *const[]){"aaron"}, 1, NULL);
    tmsg_expect_sys(c, gid, GE_LEFT, "aaron", (const char *const[]){"aaron"}, 1, &ev);
    ASSERT_STREQ(ev->group.owner, "carol");
    ASSERT_EQ(ev->group.member_count, 1);
    free(ev);
    tmsg_expect_quiet(b, 200);
    tmsg_expect_quiet(a, 1);

    /* the last member leaving ends the group */
    TMSG_EXPECT(tmsg_group_req(c, FT_GROUP_LEAVE, gid, &res), res, cim_Code_OK);
    tmsg_expect_sys(c, gid, GE_LEFT, "carol", (const char *const[]){"carol"}, 1, NULL);
    TMSG_EXPECT(tmsg_group_join(e, gid, &grsp), grsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(e, z, y, "yan");
    TMSG_EXPECT(tmsg_group_members(e, gid, names, 8, &n, &mrsp), mrsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(e, z, y, "yan");
    expect_listed(c, gid, false);
    tmsg_expect_quiet(a, 200);
    tmsg_expect_quiet(b, 1);
    tmsg_expect_quiet(r, 1);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    cimc_close(e);
    cimc_close(r);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_group_kick, 30)
{
    static tmsg_t msgs[16];
    static uint8_t bodies[8192];
    tsrv_t t;
    cim_Result res;
    cim_GroupEvent *ev;
    char gid[65];
    uint64_t kick, m;
    size_t n;

    tsrv_start(&t, NULL);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c1 = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *c2 = tsrv_login(&t, "carol", "c2", NULL);
    cimc_t *d = tsrv_login(&t, "dave", "d1", NULL);
    cimc_t *e = tsrv_login(&t, "erin", "e1", NULL);
    create(a, "alice", "G", (const char *const[]){"bob", "carol", "dave"}, 3, false, 4, gid);
    {
        cimc_t *all[] = {a, b, c1, c2, d};
        for (size_t i = 0; i < N(all); i++)
            tmsg_expect_sys(all[i], gid, GE_CREATED, "alice",
                            (const char *const[]){"bob", "carol", "dave"}, 3, NULL);
    }

    /* only the owner kicks */
    TMSG_EXPECT(tmsg_group_users(b, FT_GROUP_KICK, gid, (const char *const[]){"carol"}, 1, &res),
                res, cim_Code_FORBIDDEN);
    tmsg_expect_alive(b, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(e, FT_GROUP_KICK, gid, (const char *const[]){"carol"}, 1, &res),
                res, cim_Code_FORBIDDEN);
    tmsg_expect_alive(e, z, y, "yan");
    /* not themselves, not even among others (and then nobody is kicked) */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, (const char *const[]){"alice"}, 1, &res),
                res, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, (const char *const[]){"bob", "alice"}, 2,
                                 &res),
                res, cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, NULL, 0, &res), res,
                cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    tmsg_expect_quiet(b, 200);
    tmsg_expect_quiet(c1, 1);

    /* non-members in the list are ignored; GE_KICKED{users=[carol]} goes to the remaining
     * members and to carol (both her devices) */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid,
                                 (const char *const[]){"carol", "erin", "nobody"}, 3, &res),
                res, cim_Code_OK);
    kick = tmsg_expect_sys(a, gid, GE_KICKED, "alice", (const char *const[]){"carol"}, 1, &ev);
    ASSERT_EQ(ev->group.member_count, 3);
    free(ev);
    {
        cimc_t *all[] = {b, c1, c2, d};
        for (size_t i = 0; i < N(all); i++)
            ASSERT_U64_EQ(tmsg_expect_sys(all[i], gid, GE_KICKED, "alice",
                                          (const char *const[]){"carol"}, 1, NULL),
                          kick);
    }
    tmsg_expect_quiet(e, 100);
    /* only non-members: OK, nothing happens */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, (const char *const[]){"erin", "carol"}, 2,
                                 &res),
                res, cim_Code_OK);
    tmsg_expect_quiet(a, 300);
    tmsg_expect_quiet(b, 1);
    tmsg_expect_quiet(c1, 1);

    /* carol is out: she cannot send and no longer receives */
    gsend_refused(c1, gid, "kicked-send", cim_Code_NOT_MEMBER);
    tmsg_expect_alive(c1, z, y, "yan");
    {
        cim_SendRsp rsp;
        TMSG_EXPECT(tmsg_send_conv(c2, GROUP, gid, "kicked-typing", cim_MsgType_CUSTOM, "t", 1,
                                   true, &rsp),
                    rsp, cim_Code_NOT_MEMBER);
        tmsg_expect_alive(c2, z, y, "yan");
    }
    expect_listed(c1, gid, false);
    m = gsend(a, gid, "after-kick", "carol cannot read this");
    expect_gmsg(b, m, "alice", gid, "after-kick", "carol cannot read this");
    expect_gmsg(d, m, "alice", gid, "after-kick", "carol cannot read this");
    m = gsend(b, gid, "after-kick-2", "nor this");
    expect_gmsg(a, m, "bob", gid, "after-kick-2", "nor this");
    expect_gmsg(d, m, "bob", gid, "after-kick-2", "nor this");
    tmsg_expect_quiet(c1, 300);
    tmsg_expect_quiet(c2, 1);
    /* her timeline ends with the kick */
    n = timeline(&t, "carol", msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_EQ(n, 2);
    ASSERT_U64_EQ(msgs[1].msg_id, kick);
    /* the others have both messages */
    n = timeline(&t, "dave", msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_EQ(n, 4);
    ASSERT_U64_EQ(msgs[3].msg_id, m);

    /* unknown group */
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, "55555", (const char *const[]){"bob"}, 1, &res),
                res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    cimc_close(a);
    cimc_close(b);
    cimc_close(c1);
    cimc_close(c2);
    cimc_close(d);
    cimc_close(e);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_group_dismiss, 30)
{
    static const char *const all3[] = {"alice", "bob", "carol"};
    static tmsg_t msgs[16];
    static tmsg_conv_t convs[8];
    tsrv_t t;
    cim_Result res;
    cim_GroupRsp grsp;
    cim_GroupMembersRsp mrsp;
    cim_ConvListRsp crsp;
    cim_GroupEvent *ev;
    char gid[65], names[8][65];
    uint64_t created, before, dismissed;
    tmsg_page_t p;
    size_t n;

    tsrv_start(&t, NULL);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *d = tsrv_login(&t, "dave", "d1", NULL);
    create(a, "alice", "G", (const char *const[]){"bob", "carol"}, 2, true, 3, gid);
    created = tmsg_expect_sys(a, gid, GE_CREATED, "alice", all3 + 1, 2, NULL);
    tmsg_expect_sys(b, gid, GE_CREATED, "alice", all3 + 1, 2, NULL);
    tmsg_expect_sys(c, gid, GE_CREATED, "alice", all3 + 1, 2, NULL);
    before = gsend(a, gid, "before", "before the end");
    expect_gmsg(b, before, "alice", gid, "before", "before the end");
    expect_gmsg(c, before, "alice", gid, "before", "before the end");

    /* only the owner */
    TMSG_EXPECT(tmsg_group_req(b, FT_GROUP_DISMISS, gid, &res), res, cim_Code_FORBIDDEN);
    tmsg_expect_alive(b, z, y, "yan");
    TMSG_EXPECT(tmsg_group_req(d, FT_GROUP_DISMISS, gid, &res), res, cim_Code_FORBIDDEN);
    tmsg_expect_alive(d, z, y, "yan");

    /* GE_DISMISSED to every member */
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, gid, &res), res, cim_Code_OK);
    dismissed = tmsg_expect_sys(a, gid, GE_DISMISSED, "alice", NULL, 0, &ev);
    ASSERT_STREQ(ev->group.group_id, gid);
    free(ev);
    ASSERT_U64_EQ(tmsg_expect_sys(b, gid, GE_DISMISSED, "alice", NULL, 0, NULL), dismissed);
    ASSERT_U64_EQ(tmsg_expect_sys(c, gid, GE_DISMISSED, "alice", NULL, 0, NULL), dismissed);
    tmsg_expect_quiet(d, 200);

    /* afterwards it is gone for SEND, JOIN, ADD, MEMBERS (and LEAVE, KICK, DISMISS) */
    gsend_refused(b, gid, "after-end", cim_Code_NOT_FOUND);
    tmsg_expect_alive(b, z, y, "yan");
    gsend_refused(a, gid, "after-end", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_join(d, gid, &grsp), grsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(d, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, (const char *const[]){"dave"}, 1, &res),
                res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_members(b, gid, names, 8, &n, &mrsp), mrsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(b, z, y, "yan");
    TMSG_EXPECT(tmsg_group_req(b, FT_GROUP_LEAVE, gid, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(b, z, y, "yan");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, (const char *const[]){"bob"}, 1, &res),
                res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, gid, &res), res, cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    expect_listed(a, gid, false);
    expect_listed(b, gid, false);
    tmsg_expect_quiet(c, 200);

    /* former members still page its history and mark it read */
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(b, GROUP, gid, 0, 0, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 3);
    ASSERT_U64_EQ(msgs[0].msg_id, created);
    ASSERT_U64_EQ(msgs[1].msg_id, before);
    ASSERT_U64_EQ(msgs[2].msg_id, dismissed);
    ASSERT_TRUE(!p.has_more);
    TMSG_EXPECT(tmsg_conv_list(c, convs, N(convs), &n, &crsp), crsp, cim_Code_OK);
    ASSERT_EQ(n, 1);
    ASSERT_U64_EQ(convs[0].last.msg_id, dismissed);
    ASSERT_EQ(convs[0].unread, 1);
    TMSG_EXPECT(tmsg_read(c, GROUP, gid, 0, &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_conv_list(c, convs, N(convs), &n, &crsp), crsp, cim_Code_OK);
    ASSERT_EQ(convs[0].unread, 0);
    ASSERT_U64_EQ(convs[0].read_up_to, dismissed);
    ASSERT_EQ(crsp.total_unread, 0);
    /* a user who never was a member: NOT_MEMBER */
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(d, GROUP, gid, 0, 0, &p));
    tmsg_expect_code_(__FILE__, __LINE__, 0, p.code, p.reason, cim_Code_NOT_MEMBER);
    tmsg_expect_alive(d, z, y, "yan");
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    cimc_close(d);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_group_members_list, 30)
{
    tsrv_t t;
    cim_GroupMembersRsp mrsp;
    cim_GroupListRsp lrsp;
    cim_Group groups[8];
    cim_Result res;
    char closed_gid[65], open_gid[65], names[8][65];
    size_t n;

    tsrv_start(&t, NULL);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    create(a, "alice", "Closed", (const char *const[]){"bob"}, 1, false, 2, closed_gid);
    create(b, "bob", "Open", (const char *const[]){"alice"}, 1, true, 2, open_gid);

    /* members see the members */
    expect_members(a, closed_gid, (const char *const[]){"alice", "bob"}, 2);
    expect_members(b, closed_gid, (const char *const[]){"alice", "bob"}, 2);
    TMSG_EXPECT(tmsg_group_members(b, closed_gid, names, 8, &n, &mrsp), mrsp, cim_Code_OK);
    ASSERT_STREQ(mrsp.group.name, "Closed");
    ASSERT_STREQ(mrsp.group.owner, "alice");
    ASSERT_EQ(mrsp.group.open, false);
    /* of a closed group, a non-member does not: NOT_MEMBER */
    TMSG_EXPECT(tmsg_group_members(c, closed_gid, names, 8, &n, &mrsp), mrsp,
                cim_Code_NOT_MEMBER);
    ASSERT_EQ(n, 0);
    tmsg_expect_alive(c, z, y, "yan");
    /* of an open group anyone may look */
    TMSG_EXPECT(tmsg_group_members(c, open_gid, names, 8, &n, &mrsp), mrsp, cim_Code_OK);
    ASSERT_EQ(n, 2);
    ASSERT_TRUE(tmsg_has_name(names, n, "alice") && tmsg_has_name(names, n, "bob"));
    ASSERT_STREQ(mrsp.group.owner, "bob");
    ASSERT_EQ(mrsp.group.open, true);
    /* unknown */
    TMSG_EXPECT(tmsg_group_members(c, "4444", names, 8, &n, &mrsp), mrsp, cim_Code_NOT_FOUND);
    tmsg_expect_alive(c, z, y, "yan");

    /* GROUP_LIST: the groups one is a member of, with their fields */
    TMSG_EXPECT(tmsg_group_list(a, groups, 8, &n, &lrsp), lrsp, cim_Code_OK);
    ASSERT_EQ(n, 2);
    for (size_t i = 0; i < n; i++) {
        bool closed = strcmp(groups[i].group_id, closed_gid) == 0;
        ASSERT_TRUE(closed || strcmp(groups[i].group_id, open_gid) == 0);
        ASSERT_STREQ(groups[i].name, closed ? "Closed" : "Open");
        ASSERT_STREQ(groups[i].owner, closed ? "alice" : "bob");
        ASSERT_EQ(groups[i].open, !closed);
        ASSERT_EQ(groups[i].member_count, 2);
        ASSERT_TRUE(groups[i].created_ms > 0);
    }
    TMSG_EXPECT(tmsg_group_list(c, groups, 8, &n, &lrsp), lrsp, cim_Code_OK);
    ASSERT_EQ(n, 0);
    /* joining and leaving show in it */
    {
        cim_GroupRsp grsp;
        TMSG_EXPECT(tmsg_group_join(c, open_gid, &grsp), grsp, cim_Code_OK);
    }
    TMSG_EXPECT(tmsg_group_list(c, groups, 8, &n, &lrsp), lrsp, cim_Code_OK);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(groups[0].group_id, open_gid);
    ASSERT_EQ(groups[0].member_count, 3);
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_LEAVE, open_gid, &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_group_list(a, groups, 8, &n, &lrsp), lrsp, cim_Code_OK);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(groups[0].group_id, closed_gid);
    /* dismissed: listed for nobody, members NOT_FOUND */
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, closed_gid, &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_group_list(b, groups, 8, &n, &lrsp), lrsp, cim_Code_OK);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(groups[0].group_id, open_gid);
    TMSG_EXPECT(tmsg_group_members(b, closed_gid, names, 8, &n, &mrsp), mrsp,
                cim_Code_NOT_FOUND);
    tmsg_expect_alive(b, z, y, "yan");
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_group_send_push, 30)
{
    static tmsg_t msgs[64];
    static uint8_t bodies[16384];
    tsrv_t t;
    char gid[65], cmid[32], body[32];
    uint64_t created, m1, m2, ids[20];
    size_t n;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"dave"}, 1);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a1 = tmsg_login(&t, "alice", "a1", cim_DeviceKind_DESKTOP, NULL);
    cimc_t *a2 = tmsg_login(&t, "alice", "a2", cim_DeviceKind_MOBILE, NULL);
    cimc_t *b1 = tmsg_login(&t, "bob", "b1", cim_DeviceKind_WEB, NULL);
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *e = tsrv_login(&t, "erin", "e1", NULL);
    cimc_t *all[] = {a1, a2, b1, b2, c};
    create(a1, "alice", "G", (const char *const[]){"bob", "carol", "dave"}, 3, false, 4, gid);
    created = tmsg_expect_sys(a1, gid, GE_CREATED, "alice",
                              (const char *const[]){"bob", "carol", "dave"}, 3, NULL);
    for (size_t i = 1; i < N(all); i++)
        tmsg_expect_sys(all[i], gid, GE_CREATED, "alice",
                        (const char *const[]){"bob", "carol", "dave"}, 3, NULL);

    /* every online member device but the sending session, exactly once */
    m1 = gsend(a1, gid, "g-1", "hello group");
    {
        tmsg_t m;
        uint8_t buf[64];
        ASSERT_OK(tmsg_next_push(b1, 5000, &m, buf, sizeof(buf)));
        ASSERT_U64_EQ(m.msg_id, m1);
        ASSERT_EQ(m.conv_type, GROUP);
        ASSERT_STREQ(m.from, "alice");
        ASSERT_STREQ(m.to, gid);
        ASSERT_EQ(m.msg_type, TEXT);
        ASSERT_STREQ(m.client_msg_id, "g-1");
        ASSERT_EQ(m.from_device, cim_DeviceKind_DESKTOP);
        ASSERT_EQ(m.body_len, 11);
        ASSERT_MEMEQ(m.body, "hello group", 11);
        ASSERT_TRUE(m.time_ms > 0);
    }
    expect_gmsg(b2, m1, "alice", gid, "g-1", "hello group");
    expect_gmsg(c, m1, "alice", gid, "g-1", "hello group");
    expect_gmsg(a2, m1, "alice", gid, "g-1", "hello group");
    m2 = gsend(b1, gid, "g-2", "reply");
    expect_gmsg(a1, m2, "bob", gid, "g-2", "reply");
    expect_gmsg(a2, m2, "bob", gid, "g-2", "reply");
    expect_gmsg(b2, m2, "bob", gid, "g-2", "reply");
    expect_gmsg(c, m2, "bob", gid, "g-2", "reply");
    ASSERT_TRUE(m2 > m1);
    for (size_t i = 0; i < N(all); i++)
        tmsg_expect_quiet(all[i], i == 0 ? 300 : 1);
    tmsg_expect_quiet(e, 1); /* not a member */

    /* a resent client_msg_id: the same id, nothing new */
    {
        cim_SendRsp rsp;
        TMSG_EXPECT(tmsg_send_conv(a2, GROUP, gid, "g-1", TEXT, "again", 5, false, &rsp), rsp,
                    cim_Code_OK);
        ASSERT_U64_EQ(rsp.msg_id, m1);
        tmsg_expect_quiet(b1, 300);
    }

    /* a run of messages from several members: each device gets each once, in order */
    for (int i = 0; i < 20; i++) {
        cimc_t *s = i % 3 == 0 ? c : i % 3 == 1 ? a1 : b2;
        snprintf(cmid, sizeof(cmid), "run-%d", i);
        snprintf(body, sizeof(body), "run %d", i);
        ids[i] = gsend(s, gid, cmid, body);
    }
    for (size_t k = 0; k < N(all); k++)
        for (int i = 0; i < 20; i++) {
            cimc_t *s = i % 3 == 0 ? c : i % 3 == 1 ? a1 : b2;
            const char *from = i % 3 == 0 ? "carol" : i % 3 == 1 ? "alice" : "bob";
            if (all[k] == s)
                continue;
            snprintf(cmid, sizeof(cmid), "run-%d", i);
            snprintf(body, sizeof(body), "run %d", i);
            expect_gmsg(all[k], ids[i], from, gid, cmid, body);
        }
    for (size_t i = 0; i < N(all); i++)
        tmsg_expect_quiet(all[i], i == 0 ? 300 : 1);

    /* stored once, one timeline entry per member: dave (offline) syncs all of it */
    n = timeline(&t, "dave", msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_EQ(n, 23);
    ASSERT_U64_EQ(msgs[0].msg_id, created);
    ASSERT_U64_EQ(msgs[1].msg_id, m1);
    ASSERT_EQ(msgs[1].body_len, 11);
    ASSERT_MEMEQ(msgs[1].body, "hello group", 11);
    ASSERT_STREQ(msgs[1].to, gid);
    ASSERT_U64_EQ(msgs[2].msg_id, m2);
    for (int i = 0; i < 20; i++)
        ASSERT_U64_EQ(msgs[3 + i].msg_id, ids[i]);
    ASSERT_EQ(timeline(&t, "alice", msgs, N(msgs), bodies, sizeof(bodies)), 23);
    ASSERT_EQ(timeline(&t, "erin", msgs, N(msgs), bodies, sizeof(bodies)), 0);

    /* refusals: not a member, unknown group (stored or transient alike) */
    gsend_refused(e, gid, "not-in", cim_Code_NOT_MEMBER);
    tmsg_expect_alive(e, z, y, "yan");
    {
        cim_SendRsp rsp;
        TMSG_EXPECT(tmsg_send_conv(e, GROUP, gid, "not-in-t", cim_MsgType_CUSTOM, "t", 1, true,
                                   &rsp),
                    rsp, cim_Code_NOT_MEMBER);
        tmsg_expect_alive(e, z, y, "yan");
        TMSG_EXPECT(tmsg_send_conv(a1, GROUP, "987654", "nowhere-t", cim_MsgType_CUSTOM, "t", 1,
                                   true, &rsp),
                    rsp, cim_Code_NOT_FOUND);
        tmsg_expect_alive(a1, z, y, "yan");
    }
    gsend_refused(a1, gid, "", cim_Code_BAD_REQUEST); /* empty client_msg_id */
    tmsg_expect_alive(a1, z, y, "yan");
    gsend_refused(a1, "987654", "nowhere", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a1, z, y, "yan");
    tmsg_expect_quiet(b1, 200);
    for (size_t i = 0; i < N(all); i++)
        cimc_close(all[i]);
    cimc_close(e);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* The membership changes of a group as SYSTEM messages, in order: pushed, synced, in the
 * history, and each user's timeline holding exactly the part they were in. */
TEST_TIMEOUT(e2e_group_events_in_order, 30)
{
    static tmsg_t msgs[32];
    static uint8_t bodies[16384];
    tsrv_t t;
    cim_Result res;
    cim_GroupRsp grsp;
    char gid[65];
    uint64_t id[8];
    tmsg_page_t p;
    size_t n;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"dave", "erin"}, 2);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);

    create(a, "alice", "G", (const char *const[]){"bob"}, 1, true, 2, gid);
    id[0] = tmsg_expect_sys(b, gid, GE_CREATED, "alice", (const char *const[]){"bob"}, 1, NULL);
    TMSG_EXPECT(tmsg_group_join(c, gid, &grsp), grsp, cim_Code_OK);
    id[1] = tmsg_expect_sys(b, gid, GE_JOINED, "carol", (const char *const[]){"carol"}, 1, NULL);
    id[2] = gsend(a, gid, "t-1", "a text between");
    expect_gmsg(b, id[2], "alice", gid, "t-1", "a text between");
    TMSG_EXPECT(tmsg_group_users(c, FT_GROUP_ADD, gid, (const char *const[]){"dave", "erin"}, 2,
                                 &res),
                res, cim_Code_OK);
    id[3] = tmsg_expect_sys(b, gid, GE_ADDED, "carol", (const char *const[]){"dave", "erin"}, 2,
                            NULL);
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, (const char *const[]){"erin"}, 1, &res),
                res, cim_Code_OK);
    id[4] = tmsg_expect_sys(b, gid, GE_KICKED, "alice", (const char *const[]){"erin"}, 1, NULL);
    TMSG_EXPECT(tmsg_group_req(c, FT_GROUP_LEAVE, gid, &res), res, cim_Code_OK);
    id[5] = tmsg_expect_sys(b, gid, GE_LEFT, "carol", (const char *const[]){"carol"}, 1, NULL);
    TMSG_EXPECT(tmsg_group_req(a, FT_GROUP_DISMISS, gid, &res), res, cim_Code_OK);
    id[6] = tmsg_expect_sys(b, gid, GE_DISMISSED, "alice", NULL, 0, NULL);
    tmsg_expect_quiet(b, 200);
    for (int i = 1; i < 7; i++)
        ASSERT_TRUE(id[i] > id[i - 1]);

    /* bob's timeline (a fresh device) and his history: the same seven, in order */
    n = timeline(&t, "bob", msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_EQ(n, 7);
    for (int i = 0; i < 7; i++)
        ASSERT_U64_EQ(msgs[i].msg_id, id[i]);
    free(tmsg_expect_group_event(&msgs[4], gid, GE_KICKED, "alice",
                                 (const char *const[]){"erin"}, 1));
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(b, GROUP, gid, 0, 100, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_EQ(p.n, 7);
    for (int i = 0; i < 7; i++)
        ASSERT_U64_EQ(msgs[i].msg_id, id[i]);

    /* each of the others holds the part they took part in */
    n = timeline(&t, "carol", msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_EQ(n, 5); /* joined .. left */
    for (int i = 0; i < 5; i++)
        ASSERT_U64_EQ(msgs[i].msg_id, id[1 + i]);
    n = timeline(&t, "erin", msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_EQ(n, 2); /* added, kicked */
    ASSERT_U64_EQ(msgs[0].msg_id, id[3]);
    ASSERT_U64_EQ(msgs[1].msg_id, id[4]);
    n = timeline(&t, "dave", msgs, N(msgs), bodies, sizeof(bodies));
    ASSERT_EQ(n, 4); /* added, kicked, left, dismissed */
    for (int i = 0; i < 4; i++)
        ASSERT_U64_EQ(msgs[i].msg_id, id[3 + i]);
    free(tmsg_expect_group_event(&msgs[3], gid, GE_DISMISSED, "alice", NULL, 0));
    /* and their histories end where they left */
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(c, GROUP, gid, 0, 100, &p));
    ASSERT_EQ(p.code, cim_Code_OK);
    ASSERT_TRUE(p.n >= 5);
    ASSERT_U64_EQ(msgs[p.n - 1].msg_id, id[5]);
    ASSERT_U64_EQ(msgs[p.n - 5].msg_id, id[1]);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- a member's timeline across joins and leaves (actors/feed.h) ----------------------- */

#define FU 4
static const char *const fusers[FU] = {"alice", "bob", "carol", "dave"};

/* Every PUSH @p c got until it is quiet for 300 ms, ids in order, into @p ids. */
static size_t drain_ids(cimc_t *c, uint64_t *ids, size_t cap)
{
    size_t n = 0;
    tmsg_t m;
    while (tmsg_next_push(c, 300, &m, NULL, 0) == 0) {
        ASSERT_LT(n, cap);
        ASSERT_TRUE(n == 0 || m.msg_id > ids[n - 1]);
        ids[n++] = m.msg_id;
    }
    return n;
}

/* A group's messages are stored once and each member's timeline is read through the spans
 * of their membership: what a fresh device of each user syncs — in pages of 2 and of 3,
 * from the start and from the middle — and the latest_msg_id its login says are exactly
 * what an always-online device of that user was pushed, across a join, a leave and a
 * rejoin, a kick, an add, a recall and DIRECT messages in between; and again after a
 * restart. */
TEST_TIMEOUT(e2e_group_sync_follows_membership, 60)
{
    tsrv_t t;
    cimc_t *act[FU], *watch[FU];
    uint64_t seen[FU][64], m3;
    size_t nseen[FU];
    cim_GroupRsp grsp;
    cim_SendRsp srsp;
    cim_Result res;
    char gid[65];

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, fusers, FU);
    for (int u = 0; u < FU; u++) {
        watch[u] = tsrv_login(&t, fusers[u], "watch", NULL);
        act[u] = tsrv_login(&t, fusers[u], "act", NULL);
    }
    create(act[0], "alice", "G", (const char *const[]){"bob"}, 1, true, 2, gid);
    gsend(act[0], gid, "m1", "one");
    gsend(act[1], gid, "m2", "two");
    TMSG_EXPECT(tmsg_group_join(act[2], gid, &grsp), grsp, cim_Code_OK);
    m3 = gsend(act[0], gid, "m3", "three");
    TMSG_EXPECT(tmsg_send_conv(act[0], cim_ConvType_DIRECT, "carol", "d1", TEXT, "hi", 2, false,
                               &srsp),
                srsp, cim_Code_OK);
    TMSG_EXPECT(tmsg_group_req(act[2], FT_GROUP_LEAVE, gid, &res), res, cim_Code_OK);
    gsend(act[1], gid, "m4", "four: carol is away");
    TMSG_EXPECT(tmsg_send_conv(act[2], cim_ConvType_DIRECT, "bob", "d2", TEXT, "yo", 2, false,
                               &srsp),
                srsp, cim_Code_OK);
    TMSG_EXPECT(tmsg_group_join(act[2], gid, &grsp), grsp, cim_Code_OK);
    gsend(act[2], gid, "m5", "five: carol is back");
    TMSG_EXPECT(tmsg_group_users(act[0], FT_GROUP_KICK, gid, (const char *const[]){"bob"}, 1,
                                 &res),
                res, cim_Code_OK);
    gsend(act[0], gid, "m6", "six: bob is out");
    TMSG_EXPECT(tmsg_group_users(act[2], FT_GROUP_ADD, gid, (const char *const[]){"dave"}, 1,
                                 &res),
                res, cim_Code_OK);
    gsend(act[3], gid, "m7", "seven");
    TMSG_EXPECT(tmsg_recall(act[0], m3, &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_send_conv(act[1], cim_ConvType_DIRECT, "dave", "d3", TEXT, "hey", 3, false,
                               &srsp),
                srsp, cim_Code_OK);
    for (int u = 0; u < FU; u++) {
        nseen[u] = drain_ids(watch[u], seen[u], N(seen[u]));
        ASSERT_TRUE(nseen[u] >= 3);
        cimc_close(watch[u]);
        cimc_close(act[u]);
    }
    /* alice all 13 of the group's, the recall and d1; bob the group's up to his kick, d2,
     * d3; carol two spans, d1, d2 and the recall; dave from his add */
    ASSERT_EQ(nseen[0], 15);
    ASSERT_EQ(nseen[1], 12);
    ASSERT_EQ(nseen[2], 12);
    ASSERT_EQ(nseen[3], 4);
    for (int round = 0; round < 2; round++) {
        for (int u = 0; u < FU; u++) {
            static int dev;
            char name[32];
            cim_LoginRsp lrsp;
            tmsg_t msgs[64];
            tmsg_page_t p;

            snprintf(name, sizeof(name), "fresh-%d", ++dev);
            cimc_t *c = tsrv_login(&t, fusers[u], name, &lrsp);
            ASSERT_U64_EQ(lrsp.latest_msg_id, seen[u][nseen[u] - 1]);
            for (uint32_t limit = 2; limit <= 3; limit++) {
                tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
                ASSERT_OK(tmsg_sync_all(c, 1, limit, &p));
                ASSERT_EQ(p.n, nseen[u]);
                for (size_t i = 0; i < p.n; i++)
                    ASSERT_U64_EQ(msgs[i].msg_id, seen[u][i]);
                /* from the middle: the rest, and remain says how many */
                tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
                ASSERT_OK(tmsg_sync(c, seen[u][nseen[u] / 2], limit, &p));
                ASSERT_EQ(p.code, cim_Code_OK);
                ASSERT_EQ(p.n + p.remain, nseen[u] - nseen[u] / 2 - 1);
                for (size_t i = 0; i < p.n; i++)
                    ASSERT_U64_EQ(msgs[i].msg_id, seen[u][nseen[u] / 2 + 1 + i]);
            }
            cimc_close(c);
        }
        if (round == 0)
            tsrv_restart(&t); /* a clean stop first: the deferred index is applied */
    }
    if (!tsrv_clustered()) { /* cimdump shows carol's two spans, bob's closed one */
        char out[8192];
        ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "user", "carol",
                                NULL),
                  0);
        ASSERT_NOT_NULL(strstr(out, "spans          2: "));
        ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "user",
                                "bob", NULL),
                  0);
        ASSERT_NOT_NULL(strstr(out, "\"spans\":[{\"group\":\""));
        ASSERT_TRUE(strstr(out, "\"last\":null") == NULL); /* kicked */
    }
    ASSERT_EQ(tsrv_stop(&t), 0);
}
