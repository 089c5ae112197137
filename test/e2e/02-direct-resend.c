/* Integration: a resend of a stored client_msg_id is answered OK with the original id,
 * whatever changed since (PROTOCOL.md §6, Send): a block, a rate limit, a lost group. */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "core/frame.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

TEST(e2e_direct_resend_survives_block_and_rate_limit)
{
    tsrv_t t;
    cim_SendRsp first, again, fresh;
    cim_Result res;

    tsrv_start(&t, "--send_rate", "1", "--send_burst", "2", NULL);
    cimc_t *b = tmsg_login(&t, "bob", "b1", cim_DeviceKind_MOBILE, NULL);
    cimc_t *a = tmsg_login(&t, "alice", "a1", cim_DeviceKind_MOBILE, NULL);
    ASSERT_OK(tmsg_send(a, "bob", "m-1", cim_MsgType_TEXT, "hi", 2, false, &first));
    ASSERT_EQ(first.code, cim_Code_OK);

    /* bob blocks alice: a new message is BLOCKED, the resend is still the original */
    TMSG_EXPECT(tmsg_user_req(b, FT_BLOCK, "alice", &res), res, cim_Code_OK);
    ASSERT_OK(tmsg_send(a, "bob", "m-1", cim_MsgType_TEXT, "hi", 2, false, &again));
    ASSERT_EQ(again.code, cim_Code_OK);
    ASSERT_U64_EQ(again.msg_id, first.msg_id);
    ASSERT_STREQ(again.client_msg_id, "m-1");
    TMSG_EXPECT(tmsg_send(a, "bob", "m-2", cim_MsgType_TEXT, "hi", 2, false, &fresh), fresh,
                cim_Code_BLOCKED);

    /* the bucket (burst 2) is spent by m-1 and m-2: resends are still answered, a new
     * message is limited */
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(tmsg_send(a, "bob", "m-1", cim_MsgType_TEXT, "hi", 2, false, &again));
        ASSERT_EQ(again.code, cim_Code_OK);
        ASSERT_U64_EQ(again.msg_id, first.msg_id);
    }
    TMSG_EXPECT(tmsg_send(a, "bob", "m-4", cim_MsgType_TEXT, "hi", 2, false, &fresh), fresh,
                cim_Code_RATE_LIMITED);
    /* unblocked: a resend passes every rule, and the store (not the rate, not a second
     * copy) answers it */
    TMSG_EXPECT(tmsg_user_req(b, FT_UNBLOCK, "alice", &res), res, cim_Code_OK);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(tmsg_send(a, "bob", "m-1", cim_MsgType_TEXT, "hi", 2, false, &again));
        ASSERT_EQ(again.code, cim_Code_OK);
        ASSERT_U64_EQ(again.msg_id, first.msg_id);
        ASSERT_STREQ(again.client_msg_id, "m-1");
    }
    ASSERT_OK(cimc_ping(a, NULL));
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Pushes reach every live device of a user, however many (PROTOCOL.md §6, Delivery). */
TEST_TIMEOUT(e2e_direct_push_to_many_devices, 30)
{
    enum { DEVICES = 70 };
    tsrv_t t;
    cimc_t *b[DEVICES];
    cim_SendRsp rsp;
    char dev[16];
    tmsg_t m;

    tsrv_start(&t, NULL);
    for (int i = 0; i < DEVICES; i++) {
        snprintf(dev, sizeof(dev), "b%d", i);
        b[i] = tmsg_login(&t, "bob", dev, cim_DeviceKind_MOBILE, NULL);
    }
    cimc_t *a = tmsg_login(&t, "alice", "a1", cim_DeviceKind_MOBILE, NULL);
    ASSERT_OK(tmsg_send(a, "bob", "many-1", cim_MsgType_TEXT, "hi all", 6, false, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    for (int i = 0; i < DEVICES; i++) {
        ASSERT_OK(tmsg_next_push(b[i], 5000, &m, NULL, 0));
        ASSERT_U64_EQ(m.msg_id, rsp.msg_id);
    }
    for (int i = 0; i < DEVICES; i++)
        cimc_close(b[i]);
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* Requests are run in order: a SYNC pipelined right behind a SEND sees the message, a
 * SEND to a group pipelined behind GROUP_JOIN is accepted, a CONTACT_LIST behind
 * CONTACT_ADD lists the contact (PROTOCOL.md §3: pipelining). */
static size_t seal_req(cimc_t *c, uint8_t *out, uint32_t type, const pb_msgdesc_t *fields,
                       const void *msg)
{
    uint8_t body[1024], *sealed = NULL;
    size_t n = 0;
    pb_ostream_t os = pb_ostream_from_buffer(body, sizeof(body));
    ASSERT_TRUE(pb_encode(&os, fields, msg));
    ASSERT_OK(cimc_seal(c, type, body, os.bytes_written, &sealed, &n));
    memcpy(out, sealed, n);
    free(sealed);
    return n;
}

static void next_answer(cimc_t *c, uint32_t want, const pb_msgdesc_t *fields, void *dst)
{
    uint32_t type = 0;
    uint8_t *body = NULL;
    size_t len = 0;
    ASSERT_OK(tmsg_next_answer(c, 5000, &type, &body, &len));
    ASSERT_EQ(type, want);
    ASSERT_OK(cimc_decode(fields, body, len, dst));
    free(body);
}

static bool count_msg(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    cimc_push_t m;
    (void)f;
    if (cimc_message_decode(is, &m) < 0)
        return false;
    cimc_push_free(&m);
    (*(int *)*arg)++;
    return true;
}

static bool first_contact(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    cim_Contact c = cim_Contact_init_zero;
    (void)f;
    if (!pb_decode(is, cim_Contact_fields, &c))
        return false;
    memcpy(*arg, c.user, sizeof(c.user));
    return true;
}

TEST(e2e_direct_pipelined_requests_run_in_order)
{
    tsrv_t t;
    uint8_t buf[8192];
    size_t n = 0;
    cimc_bytes_t hi = {(const uint8_t *)"hi", 2};
    cim_SendReq send = cim_SendReq_init_zero;
    cim_SyncReq sync = cim_SyncReq_init_zero;
    cim_UserReq add = cim_UserReq_init_zero;
    cim_Req list = cim_Req_init_zero;
    cim_SendRsp srsp = cim_SendRsp_init_zero;
    cim_SyncRsp yrsp = cim_SyncRsp_init_zero;
    cim_Result res = cim_Result_init_zero;
    cim_ContactListRsp crsp = cim_ContactListRsp_init_zero;
    int synced = 0;
    char contact[65] = "";

    tsrv_start(&t, NULL);
    cimc_t *b = tmsg_login(&t, "bob", "b1", cim_DeviceKind_MOBILE, NULL);
    cimc_close(b);
    cimc_t *a = tmsg_login(&t, "alice", "a1", cim_DeviceKind_MOBILE, NULL);
    tmsg_fill_req(&send, "bob", "pipe-1", cim_MsgType_TEXT, &hi, false);
    send.req_id = 101;
    sync.req_id = 102;
    add.req_id = 103;
    snprintf(add.user, sizeof(add.user), "bob");
    list.req_id = 104;
    n += seal_req(a, buf + n, FT_SEND, cim_SendReq_fields, &send);
    n += seal_req(a, buf + n, FT_SYNC, cim_SyncReq_fields, &sync);
    n += seal_req(a, buf + n, FT_CONTACT_ADD, cim_UserReq_fields, &add);
    n += seal_req(a, buf + n, FT_CONTACT_LIST, cim_Req_fields, &list);
    ASSERT_OK(cimc_write_raw(a, buf, n));

    next_answer(a, FT_SEND_ACK, cim_SendRsp_fields, &srsp);
    ASSERT_EQ(srsp.req_id, 101);
    ASSERT_EQ(srsp.code, cim_Code_OK);
    yrsp.messages.funcs.decode = count_msg;
    yrsp.messages.arg = &synced;
    next_answer(a, FT_SYNC_ACK, cim_SyncRsp_fields, &yrsp);
    ASSERT_EQ(yrsp.req_id, 102);
    ASSERT_EQ(synced, 1); /* the SYNC saw the SEND before it */
    ASSERT_U64_EQ(yrsp.last_msg_id, srsp.msg_id);
    next_answer(a, FT_CONTACT_ADD_ACK, cim_Result_fields, &res);
    ASSERT_EQ(res.req_id, 103);
    ASSERT_EQ(res.code, cim_Code_OK);
    crsp.contacts.funcs.decode = first_contact;
    crsp.contacts.arg = contact;
    next_answer(a, FT_CONTACT_LIST_ACK, cim_ContactListRsp_fields, &crsp);
    ASSERT_EQ(crsp.req_id, 104);
    ASSERT_EQ(crsp.code, cim_Code_OK);
    ASSERT_STREQ(contact, "bob"); /* the list saw the ADD before it */
    ASSERT_OK(cimc_ping(a, NULL));
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* A READ pipelined right behind the first message of a conversation finds the
 * conversation, though the two may be written in one batch: the conversation records a
 * first message creates are made before anything later in the batch reads them, as with
 * one transaction per request (the conversation index's appends are gathered and applied
 * at the end of the batch: kv_cmsg_news). 150 new conversations in one write, so many
 * pairs share a batch. */
TEST_TIMEOUT(e2e_direct_read_pipelined_behind_first_message, 60)
{
    enum { PEERS = 150 };
    static uint8_t buf[PEERS * 2 * 256];
    static char names[PEERS][16];
    const char *users[PEERS];
    tsrv_t t;
    size_t n = 0, sends = 0, reads = 0;
    cimc_bytes_t hi = {(const uint8_t *)"hi", 2};
    tmsg_conv_t convs[4];
    cim_ConvListRsp lrsp;
    size_t nconv = 0;

    tsrv_start(&t, NULL);
    for (size_t i = 0; i < PEERS; i++) {
        snprintf(names[i], sizeof(names[i]), "peer%zu", i);
        users[i] = names[i];
    }
    tmsg_register_users(&t, users, PEERS);
    cimc_t *a = tmsg_login(&t, "alice", "a1", cim_DeviceKind_MOBILE, NULL);
    for (size_t i = 0; i < PEERS; i++) {
        cim_SendReq send = cim_SendReq_init_zero;
        cim_ReadReq read = cim_ReadReq_init_zero;
        char cmid[32];
        snprintf(cmid, sizeof(cmid), "first-%zu", i);
        tmsg_fill_req(&send, names[i], cmid, cim_MsgType_TEXT, &hi, false);
        send.req_id = (uint32_t)(1000 + 2 * i);
        read.req_id = (uint32_t)(1001 + 2 * i);
        read.conv_type = cim_ConvType_DIRECT;
        snprintf(read.peer, sizeof(read.peer), "%s", names[i]);
        n += seal_req(a, buf + n, FT_SEND, cim_SendReq_fields, &send);
        n += seal_req(a, buf + n, FT_READ, cim_ReadReq_fields, &read);
        ASSERT_LE(n + 512, sizeof(buf));
    }
    ASSERT_OK(cimc_write_raw(a, buf, n));
    while (sends + reads < 2 * PEERS) {
        uint32_t type = 0;
        uint8_t *body = NULL;
        size_t len = 0;
        ASSERT_OK(tmsg_next_answer(a, 10000, &type, &body, &len));
        if (type == FT_SEND_ACK) {
            cim_SendRsp rsp = cim_SendRsp_init_zero;
            ASSERT_OK(cimc_decode(cim_SendRsp_fields, body, len, &rsp));
            TMSG_EXPECT(0, rsp, cim_Code_OK);
            sends++;
        } else {
            cim_Result res = cim_Result_init_zero;
            ASSERT_EQ(type, FT_READ_ACK);
            ASSERT_OK(cimc_decode(cim_Result_fields, body, len, &res));
            if (res.code != cim_Code_OK)
                TEST_FAIL_("READ %u behind its conversation's first message: code %d (%s)",
                           res.req_id, res.code, res.reason);
            reads++;
        }
        free(body);
    }
    /* and the other side has its record: the peer lists the conversation, unread */
    cimc_t *p = tmsg_login(&t, names[PEERS - 1], "p1", cim_DeviceKind_MOBILE, NULL);
    TMSG_EXPECT(tmsg_conv_list(p, convs, 4, &nconv, &lrsp), lrsp, cim_Code_OK);
    ASSERT_EQ(nconv, 1);
    ASSERT_STREQ(convs[0].peer, "alice");
    ASSERT_EQ(convs[0].unread, 1);
    cimc_close(p);
    /* ids of the longest length on both sides: both records are made all the same */
    {
        char longest[65];
        cim_SendRsp rsp;
        memset(longest, 'L', 64);
        longest[64] = '\0';
        cimc_t *l = tmsg_login(&t, longest, "l1", cim_DeviceKind_MOBILE, NULL);
        TMSG_EXPECT(tmsg_send(l, "alice", "long-1", cim_MsgType_TEXT, "hi", 2, false, &rsp),
                    rsp, cim_Code_OK);
        TMSG_EXPECT(tmsg_conv_list(l, convs, 4, &nconv, &lrsp), lrsp, cim_Code_OK);
        ASSERT_EQ(nconv, 1);
        ASSERT_STREQ(convs[0].peer, "alice");
        ASSERT_EQ(convs[0].unread, 0);
        cimc_close(l);
    }
    cimc_close(a);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
