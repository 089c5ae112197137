/* Integration: contacts, blocks, presence and typing — CONTACT_ADD/REMOVE/LIST with the
 * online and blocked flags, BLOCK/UNBLOCK and BLOCKED sends, EVENT{PRESENCE} when a
 * contact's first device comes online and its last goes offline, and transient CUSTOM
 * sends to users and groups (PROTOCOL.md §4 0x0501–0x050A, §5 Contact, Event, §6 Contacts
 * and presence). A real cimd through libcim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cim.h"
#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* @p c's CONTACT_LIST must be exactly these (in any order) with these flags. */
typedef struct want {
    const char *user;
    bool online, blocked;
} want_t;

static void expect_contacts(cimc_t *c, const want_t *want, size_t n)
{
    cim_Contact got[16];
    cim_ContactListRsp rsp;
    size_t k;
    TMSG_EXPECT(tmsg_contact_list(c, got, N(got), &k, &rsp), rsp, cim_Code_OK);
    if (k != n)
        TEST_FAIL_("CONTACT_LIST: %zu contacts, want %zu", k, n);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < k && strcmp(got[j].user, want[i].user) != 0)
            j++;
        if (j == k)
            TEST_FAIL_("CONTACT_LIST misses %s", want[i].user);
        if (got[j].online != want[i].online || got[j].blocked != want[i].blocked)
            TEST_FAIL_("contact %s: online %d blocked %d, want %d %d", want[i].user,
                       got[j].online, got[j].blocked, want[i].online, want[i].blocked);
    }
}

static void user_req(cimc_t *c, uint32_t type, const char *user, int code)
{
    cim_Result res;
    TMSG_EXPECT(tmsg_user_req(c, type, user, &res), res, code);
}

TEST_TIMEOUT(e2e_contacts_add_list_remove, 30)
{
    static const uint32_t types[] = {FT_CONTACT_ADD, FT_CONTACT_REMOVE, FT_BLOCK, FT_UNBLOCK};
    tsrv_t t;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"carol", "dave"}, 2);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);

    expect_contacts(a, NULL, 0);
    user_req(a, FT_CONTACT_ADD, "bob", cim_Code_OK);
    user_req(a, FT_CONTACT_ADD, "carol", cim_Code_OK);
    expect_contacts(a, (const want_t[]){{"bob", true, false}, {"carol", false, false}}, 2);
    /* adding again changes nothing */
    user_req(a, FT_CONTACT_ADD, "bob", cim_Code_OK);
    expect_contacts(a, (const want_t[]){{"bob", true, false}, {"carol", false, false}}, 2);
    /* one-way lists */
    expect_contacts(b, NULL, 0);
    /* online follows the contact's devices */
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    expect_contacts(a, (const want_t[]){{"bob", true, false}, {"carol", true, false}}, 2);
    cimc_close(b);
    ASSERT_OK(cimc_ping(c, NULL));
    for (int i = 0; i < 100; i++) { /* the close reaches the server asynchronously */
        cim_Contact got[4];
        cim_ContactListRsp rsp;
        size_t k;
        TMSG_EXPECT(tmsg_contact_list(a, got, 4, &k, &rsp), rsp, cim_Code_OK);
        if (strcmp(got[0].user, "bob") == 0 ? !got[0].online : !got[1].online)
            break;
        tmsg_sleep_ms(10);
    }
    expect_contacts(a, (const want_t[]){{"bob", false, false}, {"carol", true, false}}, 2);

    /* refusals: unknown user, oneself, malformed ids (for every one of the four) */
    user_req(a, FT_CONTACT_ADD, "nobody", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    for (size_t i = 0; i < N(types); i++) {
        user_req(a, types[i], "alice", cim_Code_BAD_REQUEST);
        tmsg_expect_alive(a, z, y, "yan");
        user_req(a, types[i], "", cim_Code_BAD_REQUEST);
        tmsg_expect_alive(a, z, y, "yan");
        user_req(a, types[i], "b o b", cim_Code_BAD_REQUEST);
        tmsg_expect_alive(a, z, y, "yan");
    }
    /* removing one who is not a contact: NOT_FOUND (known or not) */
    user_req(a, FT_CONTACT_REMOVE, "dave", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    user_req(a, FT_CONTACT_REMOVE, "nobody", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    expect_contacts(a, (const want_t[]){{"bob", false, false}, {"carol", true, false}}, 2);

    /* remove; the blocked flag shows for a contact one has blocked */
    user_req(a, FT_CONTACT_REMOVE, "carol", cim_Code_OK);
    expect_contacts(a, (const want_t[]){{"bob", false, false}}, 1);
    user_req(a, FT_CONTACT_REMOVE, "carol", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    user_req(a, FT_BLOCK, "bob", cim_Code_OK);
    user_req(a, FT_BLOCK, "carol", cim_Code_OK); /* not a contact: not listed */
    expect_contacts(a, (const want_t[]){{"bob", false, true}}, 1);
    user_req(a, FT_UNBLOCK, "bob", cim_Code_OK);
    expect_contacts(a, (const want_t[]){{"bob", false, false}}, 1);
    cimc_close(a);
    cimc_close(c);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Poll @p c's CONTACT_LIST (5 s at most: a client's close reaches its session's node
 * asynchronously) until it is exactly @p want. */
static void expect_contacts_soon(cimc_t *c, const want_t *want, size_t n)
{
    for (int i = 0; i < 500; i++) {
        cim_Contact got[16];
        cim_ContactListRsp rsp;
        size_t k, ok = 0;
        TMSG_EXPECT(tmsg_contact_list(c, got, N(got), &k, &rsp), rsp, cim_Code_OK);
        for (size_t w = 0; w < n; w++)
            for (size_t j = 0; j < k && j < N(got); j++)
                ok += strcmp(got[j].user, want[w].user) == 0 && got[j].online == want[w].online;
        if (ok == n)
            break;
        tmsg_sleep_ms(10);
    }
    expect_contacts(c, want, n);
}

/* A contact is online exactly while one of its devices is: with a cluster
 * (CIM_TEST_CLUSTER=1) frank, grace and erin are homed on nodes 2, 3 and 1 (alice's), so
 * two of them are looked up at another home, whichever node each client reached. */
TEST_TIMEOUT(e2e_contacts_online_follows_devices, 30)
{
    tsrv_t t;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"frank", "grace", "erin"}, 3);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    user_req(a, FT_CONTACT_ADD, "frank", cim_Code_OK);
    user_req(a, FT_CONTACT_ADD, "grace", cim_Code_OK);
    user_req(a, FT_CONTACT_ADD, "erin", cim_Code_OK);
    expect_contacts_soon(a, (const want_t[]){{"frank", false, false}, {"grace", false, false},
                                             {"erin", false, false}}, 3);
    /* a login is routed before its LoginRsp: online at once */
    cimc_t *f1 = tsrv_login(&t, "frank", "f1", NULL);
    cimc_t *f2 = tsrv_login(&t, "frank", "f2", NULL);
    cimc_t *g = tsrv_login(&t, "grace", "g1", NULL);
    cimc_t *e = tsrv_login(&t, "erin", "e1", NULL);
    expect_contacts(a, (const want_t[]){{"frank", true, false}, {"grace", true, false},
                                        {"erin", true, false}}, 3);
    /* one of frank's devices goes: still online */
    cimc_close(f1);
    expect_contacts(a, (const want_t[]){{"frank", true, false}, {"grace", true, false},
                                        {"erin", true, false}}, 3);
    cimc_close(f2);
    cimc_close(e);
    expect_contacts_soon(a, (const want_t[]){{"frank", false, false}, {"grace", true, false},
                                             {"erin", false, false}}, 3);
    user_req(a, FT_BLOCK, "grace", cim_Code_OK);
    expect_contacts(a, (const want_t[]){{"frank", false, false}, {"grace", true, true},
                                        {"erin", false, false}}, 3);
    cimc_close(g);
    expect_contacts_soon(a, (const want_t[]){{"frank", false, false}, {"grace", false, true},
                                             {"erin", false, false}}, 3);
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_contacts_block, 30)
{
    static tmsg_t msgs[16];
    tsrv_t t;
    cim_SendRsp rsp;
    tmsg_page_t p;
    char gid[65];

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"dave"}, 1);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);

    /* refusals */
    user_req(a, FT_BLOCK, "nobody", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");
    user_req(a, FT_BLOCK, "alice", cim_Code_BAD_REQUEST);
    tmsg_expect_alive(a, z, y, "yan");
    user_req(a, FT_UNBLOCK, "bob", cim_Code_NOT_FOUND); /* not blocked */
    tmsg_expect_alive(a, z, y, "yan");
    user_req(a, FT_UNBLOCK, "nobody", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");

    /* alice blocks bob: his DIRECT sends to her are BLOCKED, stored or transient */
    user_req(a, FT_BLOCK, "bob", cim_Code_OK);
    user_req(a, FT_BLOCK, "bob", cim_Code_OK); /* again: still blocked */
    TMSG_EXPECT(tmsg_send(b, "alice", "b-1", cim_MsgType_TEXT, "hi", 2, false, &rsp), rsp,
                cim_Code_BLOCKED);
    ASSERT_U64_EQ(rsp.msg_id, 0);
    ASSERT_STREQ(rsp.client_msg_id, "b-1");
    /* bob's connection is fine, and others still reach alice, who got nothing of bob's */
    tmsg_expect_alive(b, c, a, "alice");
    TMSG_EXPECT(tmsg_send(b, "alice", "b-2", cim_MsgType_CUSTOM, "typing", 6, true, &rsp), rsp,
                cim_Code_BLOCKED);
    tmsg_expect_alive(b, c, a, "alice");
    /* one-way: alice still writes to bob, and bob to others */
    TMSG_EXPECT(tmsg_send(a, "bob", "a-1", cim_MsgType_TEXT, "hello bob", 9, false, &rsp), rsp,
                cim_Code_OK);
    tmsg_expect_push(b, rsp.msg_id, cim_ConvType_DIRECT, "alice", "bob", "a-1",
                     cim_MsgType_TEXT, "hello bob", 9);
    tmsg_expect_alive(b, b, c, "carol");
    /* a block is not a group ban: in a group they still hear each other */
    {
        cim_GroupRsp grsp;
        TMSG_EXPECT(tmsg_group_create(a, "G", (const char *const[]){"bob"}, 1, false, &grsp),
                    grsp, cim_Code_OK);
        snprintf(gid, sizeof(gid), "%s", grsp.group.group_id);
        tmsg_expect_sys(b, gid, cim_GroupEventKind_GE_CREATED, "alice",
                        (const char *const[]){"bob"}, 1, NULL);
        tmsg_expect_sys(a, gid, cim_GroupEventKind_GE_CREATED, "alice",
                        (const char *const[]){"bob"}, 1, NULL);
    }
    TMSG_EXPECT(tmsg_send_conv(b, cim_ConvType_GROUP, gid, "b-g", cim_MsgType_TEXT, "in group",
                               8, false, &rsp),
                rsp, cim_Code_OK);
    tmsg_expect_push(a, rsp.msg_id, cim_ConvType_GROUP, "bob", gid, "b-g", cim_MsgType_TEXT,
                     "in group", 8);
    tmsg_expect_quiet(a, 200);

    /* unblocked: his messages reach her again (and the refused client_msg_id is free) */
    user_req(a, FT_UNBLOCK, "bob", cim_Code_OK);
    TMSG_EXPECT(tmsg_send(b, "alice", "b-1", cim_MsgType_TEXT, "hi again", 8, false, &rsp), rsp,
                cim_Code_OK);
    tmsg_expect_push(a, rsp.msg_id, cim_ConvType_DIRECT, "bob", "alice", "b-1",
                     cim_MsgType_TEXT, "hi again", 8);
    user_req(a, FT_UNBLOCK, "bob", cim_Code_NOT_FOUND);
    tmsg_expect_alive(a, z, y, "yan");

    /* nothing bob sent while blocked was stored: alice's timeline */
    {
        cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
        size_t from_bob = 0;
        tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
        ASSERT_OK(tmsg_sync_all(a2, 0, 0, &p));
        for (size_t i = 0; i < p.n; i++)
            if (strcmp(msgs[i].from, "bob") == 0 && msgs[i].conv_type == cim_ConvType_DIRECT) {
                from_bob++;
                ASSERT_STREQ(msgs[i].client_msg_id, "b-1");
                ASSERT_EQ(msgs[i].body_len, 8);
            }
        ASSERT_EQ(from_bob, 1);
        cimc_close(a2);
    }
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* The next EVENT on @p c must be PRESENCE{user, online}. */
static void expect_presence(cimc_t *c, const char *user, bool online)
{
    cim_Event ev;
    int rc = tmsg_next_event(c, 5000, &ev);
    if (rc != 0)
        TEST_FAIL_("waiting for EVENT{PRESENCE %s %s}: %s", user, online ? "online" : "offline",
                   rc_str(rc));
    ASSERT_EQ(ev.kind, cim_EventKind_PRESENCE);
    ASSERT_STREQ(ev.user, user);
    ASSERT_EQ(ev.online, online);
    ASSERT_TRUE(ev.time_ms > 0);
}

TEST_TIMEOUT(e2e_contacts_presence, 30)
{
    tsrv_t t;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"bob", "dave"}, 2);
    cimc_t *d = tsrv_login(&t, "dave", "d1", NULL);
    user_req(d, FT_CONTACT_ADD, "bob", cim_Code_OK); /* dave lists bob, then goes offline */
    cimc_close(d);
    cimc_t *a1 = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL); /* online, does not list bob */
    user_req(a1, FT_CONTACT_ADD, "bob", cim_Code_OK);

    /* bob's first device: after its LoginRsp, alice hears he is online */
    cimc_t *b1 = tsrv_login(&t, "bob", "b1", NULL);
    expect_presence(a1, "bob", true);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(c, 1);
    tmsg_expect_quiet(b1, 1); /* nobody bob lists */

    /* a second device of alice hears nothing of the past */
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
    /* bob's second device, and one of two going away: no change, no event */
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    cimc_close(b1);
    ASSERT_OK(cimc_ping(b2, NULL));
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(a2, 1);
    /* a new login with the same device id kicks the old one: still online throughout */
    cimc_t *b3 = tsrv_login(&t, "bob", "b2", NULL);
    ASSERT_RC(cimc_wait_closed(b2, 5000), 0);
    cimc_close(b2);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(a2, 1);
    /* the last device going: offline, to every device of every watcher */
    cimc_close(b3);
    expect_presence(a1, "bob", false);
    expect_presence(a2, "bob", false);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(c, 1);

    /* LOGOUT counts as going offline too */
    b1 = tsrv_login(&t, "bob", "b1", NULL);
    expect_presence(a1, "bob", true);
    expect_presence(a2, "bob", true);
    ASSERT_OK(cimc_logout(b1, NULL));
    cimc_close(b1);
    expect_presence(a1, "bob", false);
    expect_presence(a2, "bob", false);

    /* it follows the lists: carol adds bob, alice removes him */
    user_req(c, FT_CONTACT_ADD, "bob", cim_Code_OK);
    user_req(a2, FT_CONTACT_REMOVE, "bob", cim_Code_OK);
    b1 = tsrv_login(&t, "bob", "b1", NULL);
    expect_presence(c, "bob", true);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(a2, 1);
    /* and is one-way: alice coming and going is nothing to bob (he lists nobody) */
    cimc_close(a1);
    cimc_close(a2);
    tmsg_expect_quiet(b1, 300);
    tmsg_expect_quiet(c, 1);
    cimc_close(b1);
    expect_presence(c, "bob", false);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

TEST_TIMEOUT(e2e_contacts_typing, 30)
{
    static const char *const members[] = {"bob", "carol", "dave"};
    static tmsg_t msgs[8];
    tsrv_t t;
    cim_SendRsp rsp;
    cim_GroupRsp grsp;
    tmsg_page_t p;
    char gid[65];

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, (const char *const[]){"dave"}, 1);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a1 = tsrv_login(&t, "alice", "a1", NULL);
    cimc_t *a2 = tsrv_login(&t, "alice", "a2", NULL);
    cimc_t *b1 = tsrv_login(&t, "bob", "b1", NULL);
    cimc_t *b2 = tsrv_login(&t, "bob", "b2", NULL);
    cimc_t *c = tsrv_login(&t, "carol", "c1", NULL);
    cimc_t *e = tsrv_login(&t, "erin", "e1", NULL);
    cimc_t *all[] = {a1, a2, b1, b2, c};

    /* DIRECT: bob's devices and alice's other device, id 0, nothing stored */
    TMSG_EXPECT(tmsg_send(a1, "bob", "typing-1", cim_MsgType_CUSTOM, "typing", 6, true, &rsp),
                rsp, cim_Code_OK);
    ASSERT_U64_EQ(rsp.msg_id, 0);
    tmsg_expect_push(b1, 0, cim_ConvType_DIRECT, "alice", "bob", "typing-1", cim_MsgType_CUSTOM,
                     "typing", 6);
    tmsg_expect_push(b2, 0, cim_ConvType_DIRECT, "alice", "bob", "typing-1", cim_MsgType_CUSTOM,
                     "typing", 6);
    tmsg_expect_push(a2, 0, cim_ConvType_DIRECT, "alice", "bob", "typing-1", cim_MsgType_CUSTOM,
                     "typing", 6);
    tmsg_expect_quiet(a1, 300);
    tmsg_expect_quiet(c, 1);

    /* GROUP: every online member device but the sending session, once */
    TMSG_EXPECT(tmsg_group_create(a1, "G", members, N(members), false, &grsp), grsp,
                cim_Code_OK);
    snprintf(gid, sizeof(gid), "%s", grsp.group.group_id);
    for (size_t i = 0; i < N(all); i++)
        tmsg_expect_sys(all[i], gid, cim_GroupEventKind_GE_CREATED, "alice", members,
                        N(members), NULL);
    TMSG_EXPECT(tmsg_send_conv(a1, cim_ConvType_GROUP, gid, "g-typing", cim_MsgType_CUSTOM,
                               "typing", 6, true, &rsp),
                rsp, cim_Code_OK);
    ASSERT_U64_EQ(rsp.msg_id, 0);
    ASSERT_STREQ(rsp.client_msg_id, "g-typing");
    for (size_t i = 1; i < N(all); i++)
        tmsg_expect_push(all[i], 0, cim_ConvType_GROUP, "alice", gid, "g-typing",
                         cim_MsgType_CUSTOM, "typing", 6);
    for (size_t i = 0; i < N(all); i++)
        tmsg_expect_quiet(all[i], i == 0 ? 300 : 1);
    tmsg_expect_quiet(e, 1); /* not a member */
    /* from another member */
    TMSG_EXPECT(tmsg_send_conv(c, cim_ConvType_GROUP, gid, "c-typing", cim_MsgType_CUSTOM, "...",
                               3, true, &rsp),
                rsp, cim_Code_OK);
    for (size_t i = 0; i < N(all) - 1; i++)
        tmsg_expect_push(all[i], 0, cim_ConvType_GROUP, "carol", gid, "c-typing",
                         cim_MsgType_CUSTOM, "...", 3);
    tmsg_expect_quiet(c, 300);

    /* not a member: NOT_MEMBER */
    TMSG_EXPECT(tmsg_send_conv(e, cim_ConvType_GROUP, gid, "e-typing", cim_MsgType_CUSTOM, "t",
                               1, true, &rsp),
                rsp, cim_Code_NOT_MEMBER);
    tmsg_expect_alive(e, z, y, "yan");

    /* nothing was stored: dave's timeline is the SYSTEM message, the conversation's last
     * too */
    {
        cimc_t *d = tsrv_login(&t, "dave", "d1", NULL);
        tmsg_conv_t convs[4];
        cim_ConvListRsp crsp;
        size_t n;
        tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
        ASSERT_OK(tmsg_sync_all(d, 0, 0, &p));
        ASSERT_EQ(p.n, 1);
        ASSERT_EQ(msgs[0].msg_type, cim_MsgType_SYSTEM);
        TMSG_EXPECT(tmsg_conv_list(b1, convs, N(convs), &n, &crsp), crsp, cim_Code_OK);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(convs[0].conv_type, cim_ConvType_GROUP);
        ASSERT_U64_EQ(convs[0].last.msg_id, msgs[0].msg_id);
        ASSERT_EQ(crsp.total_unread, 0);
        cimc_close(d);
    }
    for (size_t i = 0; i < N(all); i++)
        cimc_close(all[i]);
    cimc_close(e);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* More contacts than one frame holds (1,000 of 64-byte ids): CONTACT_LIST still answers
 * within the frame (PROTOCOL.md §3), and the connection stays. */
TEST_TIMEOUT(e2e_contacts_list_fits_frame, 60)
{
    enum { NC = 1000 };
    static char ids[NC][65];
    static cim_Contact got[NC];
    const char *list[NC];
    tsrv_t t;
    cim_ContactListRsp rsp;
    size_t n;

    for (size_t i = 0; i < NC; i++) {
        memset(ids[i], 'c', 64);
        ids[i][64] = '\0';
        snprintf(ids[i], 6, "%05zu", i);
        ids[i][5] = 'c';
        list[i] = ids[i];
    }
    tsrv_start(&t, NULL);
    tmsg_register_users(&t, list, NC);
    cimc_t *z = tsrv_login(&t, "zed", "z1", NULL);
    cimc_t *y = tsrv_login(&t, "yan", "y1", NULL);
    cimc_t *a = tsrv_login(&t, "alice", "a1", NULL);
    for (size_t i = 0; i < NC; i++)
        user_req(a, FT_CONTACT_ADD, ids[i], cim_Code_OK);
    TMSG_EXPECT(tmsg_contact_list(a, got, NC, &n, &rsp), rsp, cim_Code_OK);
    fprintf(stderr, "e2e_contacts_list_fits_frame: %zu of %d contacts listed\n", n, NC);
    ASSERT_TRUE(n > 0 && n <= NC);
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(strlen(got[i].user), 64);
        ASSERT_TRUE(!got[i].online && !got[i].blocked);
    }
    tmsg_expect_alive(a, z, y, "yan");
    cimc_close(a);
    cimc_close(y);
    cimc_close(z);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
