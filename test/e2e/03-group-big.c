/* Integration: a 2,000-member group (the default max_group_size) with 300 members online
 * on connections held open: every online member device gets a group message exactly once,
 * the offline members find it by SYNC, and the group is full for JOIN and ADD (PROTOCOL.md
 * §6 Groups, Delivery). The members are registered straight in the data dir (as `cimctl
 * user add` would) so the test spends its time on the group, not on logins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define MEMBERS 2000  /* the owner and 1,999 others */
#define FIRST 999     /* members given to GROUP_CREATE (at most 1,000 per request) */
#define ONLINE 300    /* members online: m(1 + 6k), in both the created and the added part */
#define BODY_MAX 65536

static char names[MEMBERS + 1][65]; /* [0] "boss", [i] "m%04d", [MEMBERS] "extra" */

static size_t online_index(size_t k)
{
    return 1 + 6 * k;
}

/* The next push on @p c must be a group message (SYSTEM or TEXT) with id @p id. */
static void expect_id(cimc_t *c, uint64_t id, size_t who)
{
    static uint8_t body[BODY_MAX];
    tmsg_t m;
    int rc = tmsg_next_push(c, 10000, &m, body, sizeof(body));
    if (rc != 0)
        TEST_FAIL_("%s: waiting for msg_id %" PRIu64 ": %s", names[who], id, rc_str(rc));
    if (m.msg_id != id)
        TEST_FAIL_("%s: got msg_id %" PRIu64 " (type %d, '%s'), want %" PRIu64, names[who],
                   m.msg_id, m.msg_type, m.client_msg_id, id);
}

/* Kind and number of users of a GroupEvent, read field by field (its nanopb struct holds
 * at most 1,000 users; a dismissal names all 2,000). */
static void event_kind_users(const tmsg_t *m, int *kind, size_t *nusers)
{
    pb_istream_t is;
    ASSERT_EQ(m->msg_type, cim_MsgType_SYSTEM);
    ASSERT_NOT_NULL(m->body);
    is = pb_istream_from_buffer(m->body, m->body_len);
    *kind = 0;
    *nusers = 0;
    while (is.bytes_left > 0) {
        pb_wire_type_t wt;
        uint32_t tag;
        bool eof;
        uint64_t v;
        ASSERT_TRUE(pb_decode_tag(&is, &wt, &tag, &eof));
        if (tag == cim_GroupEvent_kind_tag) {
            ASSERT_TRUE(pb_decode_varint(&is, &v));
            *kind = (int)v;
            continue;
        }
        if (tag == cim_GroupEvent_users_tag)
            (*nusers)++;
        ASSERT_TRUE(pb_skip_field(&is, wt));
    }
}

TEST_TIMEOUT(e2e_group_big_2000, 120)
{
    static cimc_t *conns[ONLINE];
    static tmsg_t msgs[8];
    static uint8_t bodies[4 * BODY_MAX];
    static char member_names[MEMBERS + 8][65];
    const char **list = calloc(MEMBERS + 1, sizeof(*list));
    tsrv_t t;
    cim_GroupRsp grsp;
    cim_Result res;
    cim_GroupMembersRsp mrsp;
    cim_GroupEvent *ev;
    char gid[65];
    uint64_t t0 = tmsg_now_ms(), created, added, m1, m2;
    size_t n;

    ASSERT_NOT_NULL(list);
    ASSERT_TRUE(tsrv_raise_nofile() >= 2 * ONLINE + 64);
    snprintf(names[0], sizeof(names[0]), "boss");
    for (size_t i = 1; i < MEMBERS; i++)
        snprintf(names[i], sizeof(names[i]), "m%04zu", i);
    snprintf(names[MEMBERS], sizeof(names[MEMBERS]), "extra");
    for (size_t i = 0; i <= MEMBERS; i++)
        list[i] = names[i];

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, list, MEMBERS + 1);
    cimc_t *b1 = tsrv_login(&t, "boss", "b1", NULL);
    cimc_t *b2 = tsrv_login(&t, "boss", "b2", NULL);
    cimc_t *x = tsrv_login(&t, "extra", "x1", NULL);
    for (size_t k = 0; k < ONLINE; k++)
        conns[k] = tsrv_login(&t, names[online_index(k)], "dev", NULL);
    fprintf(stderr, "e2e_group_big_2000: %d online after %" PRIu64 " ms\n", ONLINE + 3,
            tmsg_now_ms() - t0);

    /* 1 + 999 members by GROUP_CREATE, the other 1,000 by GROUP_ADD */
    TMSG_EXPECT(tmsg_group_create(b1, "big", list + 1, FIRST, true, &grsp), grsp, cim_Code_OK);
    ASSERT_EQ(grsp.group.member_count, FIRST + 1);
    snprintf(gid, sizeof(gid), "%s", grsp.group.group_id);
    TMSG_EXPECT(tmsg_group_users(b1, FT_GROUP_ADD, gid, list + 1 + FIRST, MEMBERS - 1 - FIRST,
                                 &res),
                res, cim_Code_OK);
    created = tmsg_expect_sys(b1, gid, cim_GroupEventKind_GE_CREATED, "boss", list + 1, FIRST, &ev);
    ASSERT_EQ(ev->group.member_count, FIRST + 1);
    free(ev);
    added = tmsg_expect_sys(b1, gid, cim_GroupEventKind_GE_ADDED, "boss", list + 1 + FIRST,
                            MEMBERS - 1 - FIRST, &ev);
    ASSERT_EQ(ev->group.member_count, MEMBERS);
    free(ev);
    fprintf(stderr, "e2e_group_big_2000: group of %d after %" PRIu64 " ms\n", MEMBERS,
            tmsg_now_ms() - t0);

    /* the message, then a second one: on every connection, what comes between the SYSTEM
     * messages and the second one is the first, exactly once */
    {
        cim_SendRsp rsp;
        TMSG_EXPECT(tmsg_send_conv(b1, cim_ConvType_GROUP, gid, "to-all", cim_MsgType_TEXT,
                                   "hello 2000", 10, false, &rsp),
                    rsp, cim_Code_OK);
        m1 = rsp.msg_id;
        TMSG_EXPECT(tmsg_send_conv(b1, cim_ConvType_GROUP, gid, "after", cim_MsgType_TEXT,
                                   "and again", 9, false, &rsp),
                    rsp, cim_Code_OK);
        m2 = rsp.msg_id;
        ASSERT_TRUE(created < added && added < m1 && m1 < m2);
    }
    for (size_t k = 0; k < ONLINE; k++) {
        size_t i = online_index(k);
        if (i <= FIRST)
            expect_id(conns[k], created, i);
        expect_id(conns[k], added, i);
        expect_id(conns[k], m1, i);
        expect_id(conns[k], m2, i);
    }
    /* the owner's other device too; the sending session is not pushed its own messages */
    expect_id(b2, created, 0);
    expect_id(b2, added, 0);
    tmsg_expect_push(b2, m1, cim_ConvType_GROUP, "boss", gid, "to-all", cim_MsgType_TEXT,
                     "hello 2000", 10);
    expect_id(b2, m2, 0);
    /* nothing more anywhere (a duplicate would have come before m2; this looks after it) */
    tmsg_expect_quiet(b1, 300);
    tmsg_expect_quiet(b2, 1);
    tmsg_expect_quiet(x, 1);
    for (size_t k = 0; k < ONLINE; k++)
        tmsg_expect_quiet(conns[k], 0);
    fprintf(stderr, "e2e_group_big_2000: %d devices checked after %" PRIu64 " ms\n",
            ONLINE + 2, tmsg_now_ms() - t0);

    /* offline members (one of each part) sync it */
    for (size_t i = 2; i < MEMBERS; i += MEMBERS - 3) { /* m0002 and m1999 */
        cimc_t *c = tsrv_login(&t, names[i], "late", NULL);
        tmsg_page_t p;
        tmsg_page_init(&p, msgs, 8, bodies, sizeof(bodies));
        ASSERT_OK(tmsg_sync_all(c, 0, 0, &p));
        ASSERT_EQ(p.n, i <= FIRST ? 4 : 3);
        ASSERT_U64_EQ(msgs[p.n - 2].msg_id, m1);
        ASSERT_EQ(msgs[p.n - 2].body_len, 10);
        ASSERT_MEMEQ(msgs[p.n - 2].body, "hello 2000", 10);
        ASSERT_U64_EQ(msgs[p.n - 1].msg_id, m2);
        cimc_close(c);
    }

    /* all 2,000 are members; the group is full */
    TMSG_EXPECT(tmsg_group_members(x, gid, member_names, MEMBERS + 8, &n, &mrsp), mrsp,
                cim_Code_OK);
    ASSERT_EQ(n, MEMBERS);
    ASSERT_EQ(mrsp.group.member_count, MEMBERS);
    for (size_t i = 0; i < MEMBERS; i++)
        ASSERT_TRUE(tmsg_has_name(member_names, n, names[i]));
    TMSG_EXPECT(tmsg_group_join(x, gid, &grsp), grsp, cim_Code_TOO_LARGE);
    tmsg_expect_alive(x, b1, b2, "boss");
    TMSG_EXPECT(tmsg_group_users(conns[7], FT_GROUP_ADD, gid, (const char *const[]){"extra"}, 1,
                                 &res),
                res, cim_Code_TOO_LARGE);
    tmsg_expect_alive(conns[7], b1, b2, "boss");

    /* the dismissal, naming all 2,000, reaches every online member exactly once */
    TMSG_EXPECT(tmsg_group_req(b1, FT_GROUP_DISMISS, gid, &res), res, cim_Code_OK);
    {
        static uint8_t body[BODY_MAX];
        uint64_t end = 0;
        for (size_t k = 0; k <= ONLINE; k++) {
            cimc_t *c = k < ONLINE ? conns[k] : b2;
            size_t nusers;
            int kind;
            tmsg_t m;
            ASSERT_OK(tmsg_next_push(c, 10000, &m, body, sizeof(body)));
            if (end == 0)
                end = m.msg_id;
            ASSERT_U64_EQ(m.msg_id, end);
            ASSERT_STREQ(m.to, gid);
            event_kind_users(&m, &kind, &nusers);
            ASSERT_EQ(kind, cim_GroupEventKind_GE_DISMISSED);
            ASSERT_EQ(nusers, 0); /* a dismissal lists no users: everyone is removed */
        }
        ASSERT_OK(tmsg_next_push(b1, 10000, &(tmsg_t){0}, body, sizeof(body)));
        tmsg_expect_quiet(b1, 300);
        for (size_t k = 0; k < ONLINE; k++)
            tmsg_expect_quiet(conns[k], 0);
        tmsg_expect_quiet(b2, 0);
    }
    {
        cim_SendRsp rsp;
        TMSG_EXPECT(tmsg_send_conv(conns[0], cim_ConvType_GROUP, gid, "gone", cim_MsgType_TEXT,
                                   "x", 1, false, &rsp),
                    rsp, cim_Code_NOT_FOUND);
    }

    for (size_t k = 0; k < ONLINE; k++)
        cimc_close(conns[k]);
    cimc_close(b1);
    cimc_close(b2);
    cimc_close(x);
    free(list);
    fprintf(stderr, "e2e_group_big_2000: done after %" PRIu64 " ms\n", tmsg_now_ms() - t0);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Ids at their longest (64 bytes): u0001xxx...x */
static void long_id(char *out, const char *prefix, size_t i)
{
    memset(out, 'x', 64);
    out[64] = '\0';
    snprintf(out, 65, "%s%04zu", prefix, i);
    out[strlen(out)] = 'x';
}

#define NLONG 1900
static char lids[NLONG + 1][65]; /* [0] the owner */
static const char *llist[NLONG + 1];

/* A server with the owner and NLONG members of 64-byte ids registered. */
static void long_setup(tsrv_t *t)
{
    for (size_t i = 0; i <= NLONG; i++) {
        long_id(lids[i], i == 0 ? "owner" : "u", i);
        llist[i] = lids[i];
    }
    tsrv_start(t, NULL);
    tmsg_register_users(t, llist, NLONG + 1);
}

/* The next push on @p c is the SYSTEM message of @p gid naming @p n users; @return its id. */
static uint64_t expect_long_sys(cimc_t *c, const char *gid, int kind, const char *const *users,
                                size_t n)
{
    return tmsg_expect_sys(c, gid, kind, lids[0], users, n, NULL);
}

/* As many 64-byte ids as a request can carry: the SYSTEM message announcing them must
 * still fit a frame (PROTOCOL.md §3: nothing the server sends exceeds max_body), so a
 * change too large to announce is refused (TOO_LARGE, nothing changed) and one that fits
 * reaches every device by PUSH and by SYNC. */
TEST_TIMEOUT(e2e_group_big_long_ids, 60)
{
    static tmsg_t msgs[4];
    static uint8_t bodies[2 * BODY_MAX];
    static char mnames[NLONG + 8][65];
    tsrv_t t;
    cim_GroupRsp grsp;
    cim_GroupListRsp lrsp;
    cim_GroupMembersRsp mrsp;
    cim_Result res;
    cim_Group groups[4];
    tmsg_page_t p;
    char gid[65];
    uint64_t created, added;
    size_t n;

    long_setup(&t);
    cimc_t *o1 = tsrv_login(&t, lids[0], "o1", NULL);
    cimc_t *o2 = tsrv_login(&t, lids[0], "o2", NULL);
    cimc_t *u = tsrv_login(&t, lids[1], "u1", NULL);
    cimc_t *v = tsrv_login(&t, lids[1000], "v1", NULL);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);

    /* 990 ids of 64 bytes fill a GroupCreateReq; their GE_CREATED would not fit a frame */
    TMSG_EXPECT(tmsg_group_create(o1, "n", llist + 1, 990, false, &grsp), grsp,
                cim_Code_TOO_LARGE);
    tmsg_expect_alive(o1, z, y, "yan");
    TMSG_EXPECT(tmsg_group_list(o1, groups, 4, &n, &lrsp), lrsp, cim_Code_OK);
    ASSERT_EQ(n, 0);
    tmsg_expect_quiet(u, 200);
    tmsg_expect_quiet(o2, 1);

    /* 900 fit: pushed to every device, synced by the others */
    TMSG_EXPECT(tmsg_group_create(o1, "n", llist + 1, 900, false, &grsp), grsp, cim_Code_OK);
    snprintf(gid, sizeof(gid), "%s", grsp.group.group_id);
    created = expect_long_sys(u, gid, cim_GroupEventKind_GE_CREATED, llist + 1, 900);
    ASSERT_U64_EQ(expect_long_sys(o1, gid, cim_GroupEventKind_GE_CREATED, llist + 1, 900),
                  created);
    ASSERT_U64_EQ(expect_long_sys(o2, gid, cim_GroupEventKind_GE_CREATED, llist + 1, 900),
                  created);
    {
        cimc_t *w = tsrv_login(&t, lids[2], "late", NULL);
        tmsg_page_init(&p, msgs, 4, bodies, sizeof(bodies));
        ASSERT_OK(tmsg_sync_all(w, 0, 0, &p));
        ASSERT_EQ(p.n, 1);
        ASSERT_U64_EQ(msgs[0].msg_id, created);
        free(tmsg_expect_group_event(&msgs[0], gid, cim_GroupEventKind_GE_CREATED, lids[0],
                                     llist + 1, 900));
        cimc_close(w);
    }

    /* the same for GROUP_ADD */
    TMSG_EXPECT(tmsg_group_users(o1, FT_GROUP_ADD, gid, llist + 901, 990, &res), res,
                cim_Code_TOO_LARGE);
    tmsg_expect_alive(o1, z, y, "yan");
    tmsg_expect_quiet(v, 200);
    TMSG_EXPECT(tmsg_group_users(o1, FT_GROUP_ADD, gid, llist + 901, 900, &res), res,
                cim_Code_OK);
    added = expect_long_sys(v, gid, cim_GroupEventKind_GE_ADDED, llist + 901, 900);
    ASSERT_U64_EQ(expect_long_sys(u, gid, cim_GroupEventKind_GE_ADDED, llist + 901, 900), added);
    TMSG_EXPECT(tmsg_group_users(o1, FT_GROUP_ADD, gid, llist + 1801, NLONG - 1800, &res), res,
                cim_Code_OK);
    expect_long_sys(u, gid, cim_GroupEventKind_GE_ADDED, llist + 1801, NLONG - 1800);
    expect_long_sys(v, gid, cim_GroupEventKind_GE_ADDED, llist + 1801, NLONG - 1800);

    /* ... and GROUP_KICK */
    TMSG_EXPECT(tmsg_group_users(o1, FT_GROUP_KICK, gid, llist + 2, 990, &res), res,
                cim_Code_TOO_LARGE);
    tmsg_expect_alive(o1, z, y, "yan");
    tmsg_expect_quiet(v, 200);
    TMSG_EXPECT(tmsg_group_users(o1, FT_GROUP_KICK, gid, llist + 2, 10, &res), res, cim_Code_OK);
    expect_long_sys(u, gid, cim_GroupEventKind_GE_KICKED, llist + 2, 10);

    /* 1,891 members of 64-byte ids do not fit one GroupMembersRsp: whatever the answer,
     * it fits the frame, says why if it is not the list, and the connection stays */
    ASSERT_OK(tmsg_group_members(u, gid, mnames, NLONG + 8, &n, &mrsp));
    if (mrsp.code == cim_Code_OK) {
        ASSERT_EQ(n, NLONG + 1 - 10);
    } else {
        ASSERT_TRUE(mrsp.reason[0] != '\0');
        fprintf(stderr, "e2e_group_big_long_ids: GROUP_MEMBERS of %d: %s (%s)\n",
                NLONG + 1 - 10, cimc_code_str(mrsp.code), mrsp.reason);
    }
    tmsg_expect_alive(u, z, y, "yan");
    cimc_close(o1);
    cimc_close(o2);
    cimc_close(u);
    cimc_close(v);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A group of 1,901 members with 64-byte ids can be dismissed like any other: every member
 * learns it (PROTOCOL.md §6: dismissal is a SYSTEM message to the members) and the group is
 * gone. */
TEST_TIMEOUT(e2e_group_big_long_ids_dismiss, 60)
{
    tsrv_t t;
    cim_GroupRsp grsp;
    cim_Result res;
    char gid[65];
    cimc_t *o1, *u;

    long_setup(&t);
    o1 = tsrv_login(&t, lids[0], "o1", NULL);
    u = tsrv_login(&t, lids[1], "u1", NULL);
    TMSG_EXPECT(tmsg_group_create(o1, "n", llist + 1, 900, false, &grsp), grsp, cim_Code_OK);
    snprintf(gid, sizeof(gid), "%s", grsp.group.group_id);
    TMSG_EXPECT(tmsg_group_users(o1, FT_GROUP_ADD, gid, llist + 901, 900, &res), res,
                cim_Code_OK);
    TMSG_EXPECT(tmsg_group_users(o1, FT_GROUP_ADD, gid, llist + 1801, NLONG - 1800, &res), res,
                cim_Code_OK);
    expect_long_sys(u, gid, cim_GroupEventKind_GE_CREATED, llist + 1, 900);
    expect_long_sys(u, gid, cim_GroupEventKind_GE_ADDED, llist + 901, 900);
    expect_long_sys(u, gid, cim_GroupEventKind_GE_ADDED, llist + 1801, NLONG - 1800);
    TMSG_EXPECT(tmsg_group_req(o1, FT_GROUP_DISMISS, gid, &res), res, cim_Code_OK);
    {
        tmsg_t m;
        static uint8_t body[BODY_MAX];
        cim_GroupEvent *ev;
        ASSERT_OK(tmsg_next_push(u, 5000, &m, body, sizeof(body)));
        ev = tmsg_group_event(&m);
        ASSERT_EQ(ev->kind, cim_GroupEventKind_GE_DISMISSED);
        free(ev);
    }
    {
        cim_SendRsp rsp;
        TMSG_EXPECT(tmsg_send_conv(u, cim_ConvType_GROUP, gid, "after", cim_MsgType_TEXT, "x",
                                   1, false, &rsp),
                    rsp, cim_Code_NOT_FOUND);
    }
    cimc_close(o1);
    cimc_close(u);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* GROUP_LIST of one who is in more groups than fit a frame (long names, a long owner id):
 * the answer still fits, lists groups of theirs, and the connection stays. */
TEST_TIMEOUT(e2e_group_big_list_fits_frame, 60)
{
    enum { NG = 450 };
    static cim_Group groups[NG];
    tsrv_t t;
    cim_GroupRsp grsp;
    cim_GroupListRsp lrsp;
    char name[65];
    size_t n;

    long_setup(&t);
    cimc_t *o = tsrv_login(&t, lids[0], "o1", NULL);
    cimc_t *u = tsrv_login(&t, lids[1], "u1", NULL);
    cimc_t *w = tsrv_login(&t, lids[2], "w1", NULL);
    memset(name, 'g', 64);
    name[64] = '\0';
    for (size_t i = 0; i < NG; i++) {
        snprintf(name, sizeof(name), "%04zu", i);
        name[4] = 'g';
        TMSG_EXPECT(tmsg_group_create(o, name, NULL, 0, false, &grsp), grsp, cim_Code_OK);
    }
    TMSG_EXPECT(tmsg_group_list(o, groups, NG, &n, &lrsp), lrsp, cim_Code_OK);
    fprintf(stderr, "e2e_group_big_list_fits_frame: %zu of %d groups listed\n", n, NG);
    ASSERT_TRUE(n > 0 && n <= NG);
    for (size_t i = 0; i < n; i++) {
        ASSERT_STREQ(groups[i].owner, lids[0]);
        ASSERT_EQ(strlen(groups[i].name), 64);
        for (size_t j = 0; j < i; j++)
            ASSERT_TRUE(strcmp(groups[i].group_id, groups[j].group_id) != 0);
    }
    tmsg_expect_alive(o, u, w, lids[2]);
    cimc_close(o);
    cimc_close(u);
    cimc_close(w);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
