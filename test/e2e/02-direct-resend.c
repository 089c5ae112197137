/* Integration: a resend of a stored client_msg_id is answered OK with the original id,
 * whatever changed since (PROTOCOL.md §6, Send): a block, a rate limit, a lost group. */
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
