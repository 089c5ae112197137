#include "actors/conv.h"

#include <string.h>

#include "actors/group.h"
#include "cim.pb.h"

size_t conv_uprefix(uint8_t out[CONV_UKEY_MAX], const char *app, const char *user)
{
    size_t n = kv_ukey(out, app, user);
    out[n++] = '\0';
    return n;
}

size_t conv_ukey(uint8_t out[CONV_UKEY_MAX], const char *app, const char *user, int conv_type,
                 const char *peer)
{
    size_t n = conv_uprefix(out, app, user), p = strnlen(peer, KV_ID_MAX);
    out[n++] = (uint8_t)conv_type;
    memcpy(out + n, peer, p);
    return n + p;
}

size_t conv_skey(uint8_t out[CONV_SKEY_MAX], const char *app, int conv_type, const char *a,
                 const char *b)
{
    size_t n = strnlen(app, KV_ID_MAX), x;
    memcpy(out, app, n);
    out[n++] = '\0';
    if (conv_type == cim_ConvType_GROUP) {
        out[n++] = 'G';
        x = strnlen(a, KV_ID_MAX);
        memcpy(out + n, a, x);
        return n + x;
    }
    /* Both sides name a DIRECT conversation the same way: lower id first. */
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    out[n++] = 'D';
    x = strnlen(a, KV_ID_MAX);
    memcpy(out + n, a, x);
    n += x;
    out[n++] = '\0';
    x = strnlen(b, KV_ID_MAX);
    memcpy(out + n, b, x);
    return n + x;
}

void conv_decode(const uint8_t *v, size_t len, conv_rec_t *c)
{
    memset(c, 0, sizeof(*c));
    if (len < CONV_REC_LEN)
        return;
    c->last_id = group_get64(v);
    c->read_up_to = group_get64(v + 8);
    c->updated_ms = group_get64(v + 16);
    c->left_id = group_get64(v + 24);
    c->unread = (uint32_t)v[32] << 24 | (uint32_t)v[33] << 16 | (uint32_t)v[34] << 8 | v[35];
}

void conv_encode(const conv_rec_t *c, uint8_t out[CONV_REC_LEN])
{
    group_put64(out, c->last_id);
    group_put64(out + 8, c->read_up_to);
    group_put64(out + 16, c->updated_ms);
    group_put64(out + 24, c->left_id);
    out[32] = (uint8_t)(c->unread >> 24);
    out[33] = (uint8_t)(c->unread >> 16);
    out[34] = (uint8_t)(c->unread >> 8);
    out[35] = (uint8_t)c->unread;
}

bool conv_counts(int msg_type)
{
    return msg_type != cim_MsgType_SYSTEM && msg_type != cim_MsgType_RECALL;
}
