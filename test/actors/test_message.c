/* actors/message: a record made on two threads (the worker encodes all but the id and
 * time, the store puts those in front) is the same record message_encode makes, and every
 * reader finds every field in it; stored, it leaves out the head its key implies, and reads
 * back whole. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <pb_encode.h>

#include "actors/message.h"
#include "cim.pb.h"
#include "core/rc.h"
#include "core/snowflake.h"
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

/* ---- stored without the head the key implies ------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* @p r read back: its stored length, and head then rec is @p whole. */
static void expect_read(const message_rec_t *r, size_t stored, const blob_t *whole)
{
    uint8_t out[2048];
    pb_ostream_t os = pb_ostream_from_buffer(out, 1024);
    pb_ostream_t want = pb_ostream_from_buffer(out + 1024, 1024);

    ASSERT_EQ(r->len, stored);
    ASSERT_EQ(message_rec_len(r), whole->len);
    ASSERT_TRUE(memcmp(r->head, whole->data, r->head_len) == 0);
    ASSERT_TRUE(memcmp(r->rec, whole->data + r->head_len, r->len) == 0);
    /* as a field of a page: what pb_encode_string of the whole record writes */
    ASSERT_TRUE(message_rec_encode(&os, 4, r));
    ASSERT_EQ(os.bytes_written, message_rec_cost(r));
    ASSERT_TRUE(pb_encode_tag(&want, PB_WT_STRING, 4) &&
                pb_encode_string(&want, whole->data, whole->len));
    ASSERT_EQ(os.bytes_written, want.bytes_written);
    ASSERT_TRUE(memcmp(out, out + 1024, os.bytes_written) == 0);
}

TEST(message_stored_without_implied_head)
{
    static const uint8_t body[100] = "hello";
    char dir[] = "/tmp/cim-msgrec-XXXXXX";
    uint64_t id = snowflake_first_of_ms(SNOWFLAKE_EPOCH_MS + 86400000ull * 300 + 12345) + 7;
    uint64_t ids[3] = {id, id + 1, id + 2};
    kv_t *kv = NULL;
    kv_txn_t *txn = NULL;
    store_send_t r;
    message_rec_t got;
    cim_Message m;
    blob_t *rec[3];
    uint8_t hand[256];
    pb_ostream_t os = pb_ostream_from_buffer(hand, sizeof(hand));

    ASSERT_NOT_NULL(mkdtemp(dir));
    ASSERT_OK(kv_open(dir, KV_NOSYNC, &kv));
    /* 0: the implied head (time: the id's); 1: a time of its own; 2: schema 2's whole
     * record, fields in number order (pb_encode), as cimd stored them before */
    sample(&r, ids[0]);
    r.time_ms = snowflake_time_ms(ids[0]);
    rec[0] = message_encode(&r, body, sizeof(body));
    sample(&r, ids[1]);
    r.time_ms = snowflake_time_ms(ids[1]) - 1;
    rec[1] = message_encode(&r, body, sizeof(body));
    m = (cim_Message)cim_Message_init_zero;
    m.msg_id = ids[2];
    m.time_ms = snowflake_time_ms(ids[2]);
    snprintf(m.from, sizeof(m.from), "alice");
    snprintf(m.to, sizeof(m.to), "bob");
    ASSERT_TRUE(pb_encode(&os, cim_Message_fields, &m));
    rec[2] = blob_new(os.bytes_written);
    memcpy(rec[2]->data, hand, os.bytes_written);

    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    for (int i = 0; i < 3; i++)
        ASSERT_OK(message_put(txn, ids[i], rec[i]->data, rec[i]->len));
    ASSERT_OK(kv_commit(txn));

    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(message_get(txn, ids[0], &got));
    ASSERT_TRUE(got.head_len > 0);
    expect_read(&got, rec[0]->len - got.head_len, rec[0]);
    ASSERT_TRUE(message_rec_decode_head(&got, &m));
    ASSERT_EQ(m.msg_id, ids[0]);
    ASSERT_EQ(m.time_ms, snowflake_time_ms(ids[0]));
    ASSERT_STREQ(m.client_msg_id, r.cmid);
    /* the head's fields come from the key alone: not in the stored bytes */
    ASSERT_TRUE(message_decode_head(got.rec, got.len, &m));
    ASSERT_EQ(m.msg_id, 0);
    ASSERT_EQ(m.time_ms, 0);
    for (int i = 1; i < 3; i++) {
        ASSERT_OK(message_get(txn, ids[i], &got));
        ASSERT_EQ(got.head_len, 0); /* stored whole */
        expect_read(&got, rec[i]->len, rec[i]);
        ASSERT_TRUE(message_rec_decode_head(&got, &m));
        ASSERT_EQ(m.msg_id, ids[i]);
    }
    ASSERT_EQ(m.time_ms, snowflake_time_ms(ids[2]));
    ASSERT_RC(message_get(txn, ids[2] + 1, &got), RC_ENOTFOUND);
    kv_abort(txn);

    /* a replace strips it too (a recall's erase) */
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(message_replace(txn, ids[0], rec[0]->data, rec[0]->len - sizeof(body) / 2));
    ASSERT_OK(message_get(txn, ids[0], &got));
    ASSERT_TRUE(got.head_len > 0);
    ASSERT_EQ(message_rec_len(&got), rec[0]->len - sizeof(body) / 2);
    ASSERT_OK(kv_commit(txn));
    for (int i = 0; i < 3; i++)
        blob_unref(rec[i]);
    kv_close(kv);
    (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
