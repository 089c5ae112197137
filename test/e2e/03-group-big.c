/* Integration: a 2,000-member group (the default max_group_size) with 300 members online
 * on connections held open: every online member device gets a group message exactly once,
 * the offline members find it by SYNC, and the group is full for JOIN and ADD (PROTOCOL.md
 * §6 Groups, Delivery). The members are registered straight in the data dir (as `cimctl
 * user add` would) so the test spends its time on the group, not on logins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

    for (size_t k = 0; k < ONLINE; k++)
        cimc_close(conns[k]);
    cimc_close(b1);
    cimc_close(b2);
    cimc_close(x);
    free(list);
    fprintf(stderr, "e2e_group_big_2000: done after %" PRIu64 " ms\n", tmsg_now_ms() - t0);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
