#include "actors/message.h"

#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "cim.pb.h"
#include "core/rc.h"
#include "core/snowflake.h"

typedef struct body_ref {
    const uint8_t *data;
    size_t len;
} body_ref_t;

static bool put_body(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const body_ref_t *b = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, b->data, b->len);
}

/* Every field of @p r's message but msg_id and time_ms (left 0: proto3 leaves them out). */
static void tail_fields(cim_Message *m, const store_send_t *r, body_ref_t *ref)
{
    memset(m, 0, sizeof(*m));
    m->conv_type = (cim_ConvType)r->conv_type;
    memcpy(m->from, r->from, sizeof(m->from));
    memcpy(m->to, r->to, sizeof(m->to));
    m->msg_type = (cim_MsgType)r->msg_type;
    m->body.funcs.encode = put_body;
    m->body.arg = ref;
    memcpy(m->client_msg_id, r->cmid, sizeof(m->client_msg_id));
    m->from_device = (cim_DeviceKind)r->from_kind;
}

/* The head of a record: msg_id (field 1) and time_ms (field 7), each a one-byte tag and a
 * varint. @return its length, written into @p out (room: MESSAGE_HEAD_MAX). */
static size_t put_head(uint8_t *out, uint64_t id, uint64_t time_ms)
{
    pb_ostream_t os = pb_ostream_from_buffer(out, MESSAGE_HEAD_MAX);

    (void)(pb_encode_tag(&os, PB_WT_VARINT, cim_Message_msg_id_tag) &&
           pb_encode_varint(&os, id) &&
           pb_encode_tag(&os, PB_WT_VARINT, cim_Message_time_ms_tag) &&
           pb_encode_varint(&os, time_ms)); /* cannot fail: the room is the most it takes */
    return os.bytes_written;
}

int message_tail_encode(const store_send_t *r, const uint8_t *body, size_t len, uint8_t *out,
                        size_t cap, size_t *out_len)
{
    cim_Message m;
    body_ref_t ref = {body, len};
    pb_ostream_t os = pb_ostream_from_buffer(out, cap);

    tail_fields(&m, r, &ref);
    if (!pb_encode(&os, cim_Message_fields, &m))
        return RC_EINVAL;
    *out_len = os.bytes_written;
    return 0;
}

blob_t *message_with_id(uint64_t id, uint64_t time_ms, const uint8_t *tail, size_t len)
{
    uint8_t head[MESSAGE_HEAD_MAX];
    size_t hlen = put_head(head, id, time_ms);
    blob_t *b = blob_new(hlen + len);

    memcpy(b->data, head, hlen);
    memcpy(b->data + hlen, tail, len);
    return b;
}

blob_t *message_encode(const store_send_t *r, const uint8_t *body, size_t len)
{
    cim_Message m;
    body_ref_t ref = {body, len};
    pb_ostream_t sizing = PB_OSTREAM_SIZING;
    pb_ostream_t os;
    uint8_t head[MESSAGE_HEAD_MAX];
    size_t hlen = put_head(head, r->msg_id, r->time_ms);
    blob_t *b;

    tail_fields(&m, r, &ref);
    if (!pb_encode(&sizing, cim_Message_fields, &m))
        return NULL;
    b = blob_new(hlen + sizing.bytes_written);
    memcpy(b->data, head, hlen);
    os = pb_ostream_from_buffer(b->data + hlen, sizing.bytes_written);
    if (!pb_encode(&os, cim_Message_fields, &m)) {
        blob_unref(b);
        return NULL;
    }
    return b;
}

/* The length of @p rec's head when it is the one stored message @p id implies (left out
 * when stored), else 0. */
static size_t implied_head(uint64_t id, const uint8_t *rec, size_t len)
{
    uint8_t head[MESSAGE_HEAD_MAX];
    size_t hlen = put_head(head, id, snowflake_time_ms(id));
    return len >= hlen && memcmp(rec, head, hlen) == 0 ? hlen : 0;
}

int message_put(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len)
{
    size_t hlen = implied_head(id, rec, len);
    return kv_msg_put(txn, id, rec + hlen, len - hlen);
}

int message_replace(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len)
{
    size_t hlen = implied_head(id, rec, len);
    return kv_msg_replace(txn, id, rec + hlen, len - hlen);
}

void message_rec_of(uint64_t id, const uint8_t *rec, size_t len, message_rec_t *r)
{
    r->rec = rec;
    r->len = len;
    /* stored whole exactly when it starts with field 1 (message.h) */
    r->head_len = len > 0 && rec[0] == ((cim_Message_msg_id_tag << 3) | PB_WT_VARINT)
                      ? 0
                      : (uint8_t)put_head(r->head, id, snowflake_time_ms(id));
}

int message_get(kv_txn_t *txn, uint64_t id, message_rec_t *out)
{
    const uint8_t *rec;
    size_t len;
    int rc = kv_msg_get(txn, id, &rec, &len);

    if (rc == 0)
        message_rec_of(id, rec, len, out);
    return rc;
}

bool message_rec_encode(pb_ostream_t *os, uint32_t tag, const message_rec_t *r)
{
    return pb_encode_tag(os, PB_WT_STRING, tag) && pb_encode_varint(os, message_rec_len(r)) &&
           pb_write(os, r->head, r->head_len) && pb_write(os, r->rec, r->len);
}

size_t message_rec_cost(const message_rec_t *r)
{
    pb_ostream_t sizing = PB_OSTREAM_SIZING;
    /* the tag's number does not matter: every field that carries a record is below 16 */
    (void)message_rec_encode(&sizing, 1, r);
    return sizing.bytes_written;
}

uint64_t message_id(const uint8_t *rec, size_t len)
{
    pb_istream_t is;
    uint64_t id = 0;

    if (len < 2 || rec[0] != ((cim_Message_msg_id_tag << 3) | PB_WT_VARINT))
        return 0;
    is = pb_istream_from_buffer(rec + 1, len - 1);
    return pb_decode_varint(&is, &id) ? id : 0;
}

static bool skip_body(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    (void)f;
    (void)arg;
    return pb_read(is, NULL, is->bytes_left);
}

bool message_window_decode(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    message_win_t *w = *arg;
    const uint8_t *p = is->state; /* a buffer stream's state is its read position */
    (void)f;
    if (p < w->lo || p > w->hi || is->bytes_left > (size_t)(w->hi - p))
        PB_RETURN_ERROR(is, "bytes field: wrong wire type");
    w->data = p;
    w->len = is->bytes_left;
    return pb_read(is, NULL, is->bytes_left);
}

bool message_decode(const uint8_t *rec, size_t len, cim_Message *out, const uint8_t **body,
                    size_t *body_len)
{
    pb_istream_t is = pb_istream_from_buffer(rec, len);
    message_win_t win = {rec, rec + len, NULL, 0};

    memset(out, 0, sizeof(*out));
    out->body.funcs.decode = message_window_decode;
    out->body.arg = &win;
    if (!pb_decode(&is, cim_Message_fields, out))
        return false;
    out->body.arg = NULL;
    *body = win.data;
    *body_len = win.len;
    return true;
}

bool message_rec_decode(const message_rec_t *r, cim_Message *out)
{
    pb_istream_t head = pb_istream_from_buffer(r->head, r->head_len);
    pb_istream_t is = pb_istream_from_buffer(r->rec, r->len);

    return pb_decode_ex(&head, cim_Message_fields, out, PB_DECODE_NOINIT) &&
           pb_decode_ex(&is, cim_Message_fields, out, PB_DECODE_NOINIT);
}

bool message_rec_decode_head(const message_rec_t *r, cim_Message *out)
{
    memset(out, 0, sizeof(*out)); /* proto3's defaults: the decode adds to it */
    out->body.funcs.decode = skip_body;
    return message_rec_decode(r, out);
}

bool message_decode_head(const uint8_t *rec, size_t len, cim_Message *out)
{
    message_rec_t r = {.rec = rec, .len = len, .head_len = 0};
    return message_rec_decode_head(&r, out);
}
