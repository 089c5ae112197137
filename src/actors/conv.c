#include "actors/conv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/group.h"
#include "actors/message.h"
#include "cim.pb.h"
#include "core/be.h"
#include "core/mem.h"
#include "core/rc.h"
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
    /* One direction of a DIRECT conversation: the messages a sent to b. */
    out[n++] = '>';
    x = strnlen(a, KV_ID_MAX);
    memcpy(out + n, a, x);
    n += x;
    out[n++] = '\0';
    x = strnlen(b, KV_ID_MAX);
    memcpy(out + n, b, x);
    return n + x;
}

/* One NUL-free part of @p n bytes, 1..KV_ID_MAX, into @p out. */
static bool part_of(const uint8_t *p, size_t n, char out[KV_ID_MAX + 1])
{
    if (n == 0 || n > KV_ID_MAX || memchr(p, '\0', n) != NULL)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

bool conv_skey_direct(const uint8_t *key, size_t klen, char app[KV_ID_MAX + 1],
                      char a[KV_ID_MAX + 1], char b[KV_ID_MAX + 1])
{
    const uint8_t *end = key + klen, *nul = memchr(key, '\0', klen), *sep;

    if (nul == NULL || end - nul < 2 || nul[1] != '>' ||
        (sep = memchr(nul + 2, '\0', (size_t)(end - (nul + 2)))) == NULL)
        return false;
    return part_of(key, (size_t)(nul - key), app) &&
           part_of(nul + 2, (size_t)(sep - (nul + 2)), a) &&
           part_of(sep + 1, (size_t)(end - (sep + 1)), b);
}

void conv_decode(const uint8_t *v, size_t len, conv_rec_t *c)
{
    memset(c, 0, sizeof(*c));
    if (len < CONV_REC_LEN)
        return;
    c->since_id = be64_get(v);
    c->read_up_to = be64_get(v + 8);
    c->updated_ms = be64_get(v + 16);
    c->left_id = be64_get(v + 24);
}

void conv_encode(const conv_rec_t *c, uint8_t out[CONV_REC_LEN])
{
    memset(out, 0, CONV_REC_LEN);
    be64_put(out, c->since_id);
    be64_put(out + 8, c->read_up_to);
    be64_put(out + 16, c->updated_ms);
    be64_put(out + 24, c->left_id);
}

int conv_load(kv_txn_t *txn, const uint8_t *key, size_t klen, conv_rec_t *out)
{
    const uint8_t *v = NULL;
    size_t vlen = 0;
    int rc = kv_rec_get(txn, KV_DB_CONVS, key, klen, &v, &vlen);

    if (rc == RC_ENOTFOUND && (rc = kv_conv_pending(txn, key, klen)) >= 0)
        rc = rc == 1 ? 0 : RC_ENOTFOUND;
    conv_decode(v, rc == 0 ? vlen : 0, out);
    return rc;
}

typedef char peer_t[KV_ID_MAX + 1];

static int peer_cmp(const void *a, const void *b)
{
    return strcmp(*(const peer_t *)a, *(const peer_t *)b);
}

int conv_scan(kv_txn_t *txn, const char *app, const char *user,
              int (*cb)(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                        size_t vlen),
              void *ctx)
{
    uint8_t pfx[CONV_UKEY_MAX], key[CONV_UKEY_MAX];
    size_t plen = conv_uprefix(pfx, app, user), n = 0, np = 0, klen, len;
    uint64_t *ids = NULL;
    peer_t *peers = NULL;
    const uint8_t *rec;
    cim_Message m;
    int rc = kv_rec_scan(txn, KV_DB_CONVS, pfx, plen, cb, ctx);

    if (rc != 0 || (rc = kv_conv_pending_ids(txn, pfx, plen, &ids, &n)) < 0 || n == 0)
        goto out;
    /* each began with a message between the user and the peer: its other party */
    peers = mem_alloc(n * sizeof(*peers));
    for (size_t i = 0; i < n; i++) {
        if ((rc = kv_msg_get(txn, ids[i], &rec, &len)) == RC_ENOTFOUND)
            continue; /* retired since */
        if (rc < 0)
            goto out;
        if (!message_decode_head(rec, len, &m) || m.conv_type != cim_ConvType_DIRECT)
            continue;
        snprintf(peers[np++], sizeof(*peers), "%s", strcmp(m.from, user) == 0 ? m.to : m.from);
    }
    rc = 0;
    if (np > 1)
        qsort(peers, np, sizeof(*peers), peer_cmp);
    for (size_t i = 0; i < np && rc == 0; i++) {
        if (i > 0 && strcmp(peers[i], peers[i - 1]) == 0)
            continue;
        klen = conv_ukey(key, app, user, cim_ConvType_DIRECT, peers[i]);
        rc = kv_rec_get(txn, KV_DB_CONVS, key, klen, NULL, NULL);
        if (rc == RC_ENOTFOUND) /* (else the scan had it) */
            rc = cb(ctx, key + plen, klen - plen, NULL, 0);
    }
out:
    mem_free(ids);
    mem_free(peers);
    return rc;
}

/* The index key(s) of (@p user, @p peer): GROUP one; DIRECT what the user sent (mine) and
 * what they received (theirs), one key when talking to oneself. */
typedef struct ckeys {
    uint8_t mine[CONV_SKEY_MAX], theirs[CONV_SKEY_MAX];
    size_t mlen, tlen;
    bool two;
} ckeys_t;

static void keys_of(ckeys_t *k, const char *app, const char *user, int conv_type,
                    const char *peer)
{
    if (conv_type == cim_ConvType_GROUP) {
        k->tlen = conv_skey(k->theirs, app, conv_type, peer, peer);
        k->two = false;
        return;
    }
    k->tlen = conv_skey(k->theirs, app, conv_type, peer, user);
    k->mlen = conv_skey(k->mine, app, conv_type, user, peer);
    k->two = strcmp(user, peer) != 0;
}

int conv_view(kv_txn_t *txn, const char *app, const char *user, int conv_type,
              const char *peer, const conv_rec_t *rec, conv_view_t *out)
{
    ckeys_t k;
    uint64_t end = rec->left_id ? rec->left_id : UINT64_MAX, n = 0, ev = 0, t, mine = 0, from;
    int rc;

    memset(out, 0, sizeof(*out));
    keys_of(&k, app, user, conv_type, peer);
    if ((rc = kv_cmsg_last(txn, k.theirs, k.tlen, end, &out->last_id)) < 0 ||
        (k.two && (rc = kv_cmsg_last(txn, k.mine, k.mlen, end, &mine)) < 0))
        return rc;
    /* one's own last message is read, and everything before it */
    out->read_up_to = mine > rec->read_up_to ? mine : rec->read_up_to;
    out->last_id = mine > out->last_id ? mine : out->last_id;
    from = out->read_up_to > rec->since_id ? out->read_up_to : rec->since_id;
    if ((rc = kv_cmsg_count(txn, k.theirs, k.tlen, from, end, &n)) < 0 ||
        (n > 0 && (rc = kv_cevent_count(txn, k.theirs, k.tlen, from, end, &ev)) < 0))
        return rc;
    if (!k.two && conv_type == cim_ConvType_DIRECT)
        n = ev = 0; /* talking to oneself: every message is one's own */
    out->unread = n > ev ? (uint32_t)(n - ev > UINT32_MAX ? UINT32_MAX : n - ev) : 0;
    t = out->last_id ? snowflake_time_ms(out->last_id) : 0;
    out->updated_ms = t > rec->updated_ms ? t : rec->updated_ms;
    return 0;
}

int conv_read_cursor(kv_txn_t *txn, const char *app, const char *user, int conv_type,
                     const char *peer, const conv_rec_t *rec, uint64_t *out)
{
    uint8_t key[CONV_SKEY_MAX];
    uint64_t mine = 0;
    int rc = 0;

    if (conv_type == cim_ConvType_DIRECT)
        rc = kv_cmsg_last(txn, key, conv_skey(key, app, conv_type, user, peer), UINT64_MAX,
                          &mine);
    *out = mine > rec->read_up_to ? mine : rec->read_up_to;
    return rc;
}

int conv_history(kv_txn_t *txn, const char *app, const char *user, int conv_type,
                 const char *peer, uint64_t before, uint64_t *ids, size_t max, size_t *n,
                 bool *more)
{
    uint64_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, i = 0, j = 0, got = 0;
    bool ma = false, mb = false;
    ckeys_t k;
    int rc;

    keys_of(&k, app, user, conv_type, peer);
    if (!k.two)
        return kv_cmsg_before(txn, k.theirs, k.tlen, before, ids, max, n, more);
    /* DIRECT: both directions, newest first, merged */
    a = mem_alloc((max ? max : 1) * sizeof(*a));
    b = mem_alloc((max ? max : 1) * sizeof(*b));
    if ((rc = kv_cmsg_before(txn, k.theirs, k.tlen, before, a, max, &na, &ma)) < 0 ||
        (rc = kv_cmsg_before(txn, k.mine, k.mlen, before, b, max, &nb, &mb)) < 0)
        goto out;
    while (got < max && (i < na || j < nb))
        ids[got++] = j >= nb || (i < na && a[i] > b[j]) ? a[i++] : b[j++];
    *n = got;
    *more = ma || mb || i < na || j < nb;
out:
    mem_free(a);
    mem_free(b);
    return rc;
}

int conv_index_count(kv_txn_t *txn, const char *app, const char *user, int conv_type,
                     const char *peer, uint64_t *out)
{
    uint64_t x = 0, y = 0;
    ckeys_t k;
    int rc;

    keys_of(&k, app, user, conv_type, peer);
    if ((rc = kv_cmsg_count(txn, k.theirs, k.tlen, 0, UINT64_MAX, &x)) < 0 ||
        (k.two && (rc = kv_cmsg_count(txn, k.mine, k.mlen, 0, UINT64_MAX, &y)) < 0))
        return rc;
    *out = x + y;
    return 0;
}

bool conv_counts(int msg_type)
{
    return msg_type != cim_MsgType_SYSTEM && msg_type != cim_MsgType_RECALL;
}
