#include "actors/conv.h"

#include <string.h>

#include "actors/group.h"
#include "cim.pb.h"
#include "core/snowflake.h"

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
    c->since_id = group_get64(v);
    c->read_up_to = group_get64(v + 8);
    c->updated_ms = group_get64(v + 16);
    c->left_id = group_get64(v + 24);
}

void conv_encode(const conv_rec_t *c, uint8_t out[CONV_REC_LEN])
{
    memset(out, 0, CONV_REC_LEN);
    group_put64(out, c->since_id);
    group_put64(out + 8, c->read_up_to);
    group_put64(out + 16, c->updated_ms);
    group_put64(out + 24, c->left_id);
}

int conv_view(kv_txn_t *txn, const char *app, const char *user, int conv_type,
              const char *peer, const conv_rec_t *rec, conv_view_t *out)
{
    uint8_t skey[CONV_SKEY_MAX];
    size_t sklen = conv_skey(skey, app, conv_type,
                             conv_type == cim_ConvType_GROUP ? peer : user, peer);
    uint64_t end = rec->left_id ? rec->left_id : UINT64_MAX, n = 0, ev = 0, t;
    uint64_t from = rec->read_up_to > rec->since_id ? rec->read_up_to : rec->since_id;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = kv_cmsg_last(txn, skey, sklen, end, &out->last_id)) < 0 ||
        (rc = kv_cmsg_count(txn, skey, sklen, from, end, &n)) < 0 ||
        (n > 0 && (rc = kv_cevent_count(txn, skey, sklen, from, end, &ev)) < 0))
        return rc;
    out->unread = n > ev ? (uint32_t)(n - ev > UINT32_MAX ? UINT32_MAX : n - ev) : 0;
    t = out->last_id ? snowflake_time_ms(out->last_id) : 0;
    out->updated_ms = t > rec->updated_ms ? t : rec->updated_ms;
    return 0;
}

bool conv_counts(int msg_type)
{
    return msg_type != cim_MsgType_SYSTEM && msg_type != cim_MsgType_RECALL;
}
