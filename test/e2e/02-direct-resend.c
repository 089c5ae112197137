/* Integration: a resend of a stored client_msg_id is answered OK with the original id,
 * whatever changed since (PROTOCOL.md §6, Send): a block, a rate limit, a lost group. */
#include <stdio.h>
#include <string.h>

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
