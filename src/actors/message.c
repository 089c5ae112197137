#include "actors/message.h"

#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "cim.pb.h"

typedef struct body_ref {
    const uint8_t *data;
    size_t len;
} body_ref_t;

static bool put_body(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const body_ref_t *b = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, b->data, b->len);
}

blob_t *message_encode(const store_send_t *r, const uint8_t *body, size_t len)
{
    cim_Message m = cim_Message_init_zero;
    body_ref_t ref = {body, len};
    pb_ostream_t sizing = PB_OSTREAM_SIZING;
    pb_ostream_t os;
    blob_t *b;

    m.msg_id = r->msg_id;
    m.conv_type = (cim_ConvType)r->conv_type;
    memcpy(m.from, r->from, sizeof(m.from));
    memcpy(m.to, r->to, sizeof(m.to));
    m.msg_type = (cim_MsgType)r->msg_type;
    m.body.funcs.encode = put_body;
    m.body.arg = &ref;
    m.time_ms = r->time_ms;
    memcpy(m.client_msg_id, r->cmid, sizeof(m.client_msg_id));
    m.from_device = (cim_DeviceKind)r->from_kind;
    if (!pb_encode(&sizing, cim_Message_fields, &m))
        return NULL;
    b = blob_new(sizing.bytes_written);
    os = pb_ostream_from_buffer(b->data, b->len);
    if (!pb_encode(&os, cim_Message_fields, &m)) {
        blob_unref(b);
        return NULL;
    }
    return b;
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

bool message_decode_head(const uint8_t *rec, size_t len, cim_Message *out)
{
    pb_istream_t is = pb_istream_from_buffer(rec, len);
    memset(out, 0, sizeof(*out));
    out->body.funcs.decode = skip_body;
    return pb_decode(&is, cim_Message_fields, out);
}
