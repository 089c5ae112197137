/* dump: stored records decoded: messages, group events, protocol enum names. */
#include <string.h>

#include <pb_decode.h>

#include "actors/message.h"
#include "cmd/cimdump/dump_int.h"
#include "core/mem.h"
#include "core/rc.h"

/* Enum values are shown by their names in cim.proto; an unknown value as its number. */
static const char *enum_name(char buf[16], int v, const char *const *names, int n)
{
    if (v >= 0 && v < n)
        return names[v];
    snprintf(buf, 16, "%d", v);
    return buf;
}

const char *dump__conv_name(char buf[16], int v)
{
    static const char *const n[] = {"CONV_UNSPECIFIED", "DIRECT", "GROUP"};
    return enum_name(buf, v, n, 3);
}

const char *dump__msgtype_name(char buf[16], int v)
{
    static const char *const n[] = {"MSG_UNSPECIFIED", "TEXT",   "IMAGE",  "AUDIO", "VIDEO", "FILE",
                                    "LOCATION",        "CUSTOM", "SYSTEM", "RECALL"};
    return enum_name(buf, v, n, 10);
}

const char *dump__device_name(char buf[16], int v)
{
    static const char *const n[] = {"DEVICE_UNSPECIFIED", "MOBILE", "DESKTOP", "WEB", "BOT"};
    return enum_name(buf, v, n, 5);
}

const char *dump__gekind_name(char buf[16], int v)
{
    static const char *const n[] = {"GE_UNSPECIFIED", "GE_CREATED", "GE_JOINED",   "GE_ADDED",
                                    "GE_LEFT",        "GE_KICKED",  "GE_DISMISSED"};
    return enum_name(buf, v, n, 7);
}

static bool on_body(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    dmsg_t *dm = *arg;
    size_t n = s->bytes_left;

    (void)f;
    if (n > dm->body_cap)
        return false;
    dm->body_len = n; /* a repeated field: the last one wins, as in any protobuf decoder */
    return pb_read(s, dm->body, n);
}

/* @return 0, or RC_EPROTO when the record is not a cim.Message this build can read. */
int dump__msg_decode(uint64_t id, const uint8_t *rec, size_t len, dmsg_t *dm)
{
    message_rec_t r;

    message_rec_of(id, rec, len, &r); /* the head a stored record left out (message.h) */
    memset(dm, 0, sizeof(*dm));
    dm->head_implied = r.head_len > 0;
    dm->body = mem_alloc(len > 0 ? len : 1); /* a body is never longer than its record */
    dm->body_cap = len;
    dm->m.body.funcs.decode = on_body;
    dm->m.body.arg = dm;
    return message_rec_decode(&r, &dm->m) ? 0 : RC_EPROTO;
}

static bool read_str(pb_istream_t *is, char *out, size_t cap)
{
    pb_istream_t sub;
    size_t n;

    if (!pb_make_string_substream(is, &sub))
        return false;
    n = sub.bytes_left;
    if (n >= cap || !pb_read(&sub, (pb_byte_t *)out, n)) {
        pb_close_string_substream(is, &sub);
        return false;
    }
    out[n] = '\0';
    return pb_close_string_substream(is, &sub);
}

int dump__gevent_decode(const uint8_t *b, size_t len, gevent_t *ev)
{
    pb_istream_t is = pb_istream_from_buffer(b, len);
    size_t cap = 0;

    memset(ev, 0, sizeof(*ev));
    while (is.bytes_left > 0) {
        pb_wire_type_t wt;
        uint32_t tag;
        uint64_t v;
        bool eof, ok;
        if (!pb_decode_tag(&is, &wt, &tag, &eof))
            return eof ? 0 : RC_EPROTO;
        if (tag == cim_GroupEvent_kind_tag && wt == PB_WT_VARINT) {
            ok = pb_decode_varint(&is, &v);
            ev->kind = (int)v;
        } else if (tag == cim_GroupEvent_actor_tag && wt == PB_WT_STRING) {
            ok = read_str(&is, ev->actor, sizeof(ev->actor));
        } else if (tag == cim_GroupEvent_users_tag && wt == PB_WT_STRING) {
            if (ev->nusers == cap) {
                cap = cap ? 2 * cap : 16;
                ev->users = mem_realloc(ev->users, cap * sizeof(*ev->users));
            }
            ok = read_str(&is, ev->users[ev->nusers], sizeof(ev->users[0]));
            ev->nusers += ok;
        } else if (tag == cim_GroupEvent_group_tag && wt == PB_WT_STRING) {
            pb_istream_t sub;
            ok = pb_make_string_substream(&is, &sub);
            ok = ok && pb_decode(&sub, cim_Group_fields, &ev->group);
            ok = pb_close_string_substream(&is, &sub) && ok;
            ev->has_group = ok;
        } else {
            ok = pb_skip_field(&is, wt);
        }
        if (!ok)
            return RC_EPROTO;
    }
    return 0;
}
