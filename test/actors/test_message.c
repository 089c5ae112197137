/* actors/message: a record made on two threads (the worker encodes all but the id and
 * time, the store puts those in front) is the same record message_encode makes, and every
 * reader finds every field in it. */
#include <string.h>

#include "actors/message.h"
#include "cim.pb.h"
#include "core/rc.h"
#include "support/test.h"

static void sample(store_send_t *r, uint64_t id)
{
    memset(r, 0, sizeof(*r));
    r->msg_id = id;
    r->time_ms = id >> 22;
    r->conv_type = cim_ConvType_DIRECT;
    r->msg_type = cim_MsgType_CUSTOM;
    r->from_kind = cim_DeviceKind_WEB;
    memset(r->from, 'f', sizeof(r->from) - 1); /* every id at its longest */
    memset(r->to, 't', sizeof(r->to) - 1);
    memset(r->cmid, 'c', sizeof(r->cmid) - 1);
}

static void check_record(const blob_t *b, const store_send_t *r, const uint8_t *body, size_t len)
{
    cim_Message m;
    const uint8_t *got;
    size_t got_len;

    ASSERT_EQ(message_id(b->data, b->len), r->msg_id);
    ASSERT_TRUE(message_decode(b->data, b->len, &m, &got, &got_len));
    ASSERT_EQ(m.msg_id, r->msg_id);
    ASSERT_EQ(m.time_ms, r->time_ms);
    ASSERT_EQ(m.conv_type, r->conv_type);
    ASSERT_EQ(m.msg_type, r->msg_type);
    ASSERT_EQ(m.from_device, r->from_kind);
    ASSERT_STREQ(m.from, r->from);
    ASSERT_STREQ(m.to, r->to);
    ASSERT_STREQ(m.client_msg_id, r->cmid);
    ASSERT_EQ(got_len, len);
    ASSERT_TRUE(len == 0 || memcmp(got, body, len) == 0);
}

TEST(message_tail_then_id_is_the_record)
{
    static uint8_t body[70000], tail[70000 + MESSAGE_TAIL_EXTRA];
    static const size_t lens[] = {0, 1, 100, 127, 128, 16383, 16384, 65536};
    static const uint64_t ids[] = {1, 127, 128, (uint64_t)1 << 40, UINT64_MAX};
    store_send_t r;
    size_t n;

    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
            sample(&r, ids[k]);
            blob_t *whole = message_encode(&r, body, lens[i]);
            ASSERT_NOT_NULL(whole);
            /* the room the header promises is enough, at every id length at its longest */
            ASSERT_OK(message_tail_encode(&r, body, lens[i], tail, lens[i] + MESSAGE_TAIL_EXTRA,
                                          &n));
            blob_t *two = message_with_id(r.msg_id, r.time_ms, tail, n);
            ASSERT_EQ(two->len, whole->len);
            ASSERT_TRUE(memcmp(two->data, whole->data, whole->len) == 0);
            check_record(two, &r, body, lens[i]);
            blob_unref(whole);
            blob_unref(two);
        }
    }
}

TEST(message_tail_too_small_refused)
{
    static uint8_t body[100], tail[64];
    store_send_t r;
    size_t n = 0;

    sample(&r, 42);
    ASSERT_RC(message_tail_encode(&r, body, sizeof(body), tail, sizeof(tail), &n), RC_EINVAL);
}
