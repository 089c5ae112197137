/* feed: a user's timeline and their groups' indexes over their spans (feed.h). */
#include "actors/feed.h"

#include <stdio.h>
#include <string.h>

#include "actors/conv.h"
#include "actors/group.h"
#include "actors/message.h"
#include "core/be.h"
#include "core/mem.h"
#include "core/rc.h"
#include "cim.pb.h"

#define SPAN_LEN 16 /* first, last: u64 BE each */
#define KEY_MAX (KV_UKEY_MAX + 1 + 8)

/* user key NUL: the prefix of a user's spans; then gid */
static size_t prefix_key(uint8_t *out, const char *app, const char *user)
{
    size_t n = kv_ukey(out, app, user);
    out[n++] = '\0';
    return n;
}

static size_t span_key(uint8_t out[KEY_MAX], const char *app, const char *user, uint64_t gid)
{
    size_t n = prefix_key(out, app, user);
    be64_put(out + n, gid);
    return n + 8;
}

/* The index key of group @p gid. */
static size_t group_skey(uint8_t out[CONV_SKEY_MAX], const char *app, uint64_t gid)
{
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)gid);
    return conv_skey(out, app, cim_ConvType_GROUP, id, id);
}

/* ---- writes ------------------------------------------------------------------------- */

/* The spans of (@p key), copied into @p buf (room for FEED_SPANS_MAX + 1). @return how
 * many, or rc. */
static int spans_get(kv_txn_t *txn, const uint8_t *key, size_t klen,
                     uint8_t buf[(FEED_SPANS_MAX + 1) * SPAN_LEN])
{
    const uint8_t *v;
    size_t vlen;
    int rc = kv_rec_get(txn, KV_DB_GSPANS, key, klen, &v, &vlen);

    if (rc == RC_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    vlen -= vlen % SPAN_LEN;
    if (vlen > FEED_SPANS_MAX * SPAN_LEN)
        vlen = FEED_SPANS_MAX * SPAN_LEN;
    memcpy(buf, v, vlen);
    return (int)(vlen / SPAN_LEN);
}

int feed_join(kv_txn_t *txn, const char *app, const char *user, uint64_t gid, uint64_t id)
{
    uint8_t key[KEY_MAX], buf[(FEED_SPANS_MAX + 1) * SPAN_LEN];
    size_t klen = span_key(key, app, user, gid);
    int n = spans_get(txn, key, klen, buf);

    if (n < 0)
        return n;
    /* open already, or a replay of an event the spans have passed */
    if (n > 0 && be64_get(buf + (size_t)n * SPAN_LEN - 8) >= id)
        return 0;
    be64_put(buf + (size_t)n * SPAN_LEN, id);
    be64_put(buf + (size_t)n * SPAN_LEN + 8, UINT64_MAX);
    n++;
    if (n > FEED_SPANS_MAX) { /* the oldest goes */
        memmove(buf, buf + SPAN_LEN, (size_t)(n - 1) * SPAN_LEN);
        n--;
    }
    return kv_rec_put(txn, KV_DB_GSPANS, key, klen, buf, (size_t)n * SPAN_LEN);
}

int feed_leave(kv_txn_t *txn, const char *app, const char *user, uint64_t gid, uint64_t id)
{
    uint8_t key[KEY_MAX], buf[(FEED_SPANS_MAX + 1) * SPAN_LEN];
    size_t klen = span_key(key, app, user, gid);
    int n = spans_get(txn, key, klen, buf);
    uint8_t *last;

    if (n <= 0)
        return n;
    last = buf + (size_t)(n - 1) * SPAN_LEN;
    if (be64_get(last + 8) != UINT64_MAX || be64_get(last) > id)
        return 0; /* not in the group, or a replay */
    be64_put(last + 8, id);
    return kv_rec_put(txn, KV_DB_GSPANS, key, klen, buf, (size_t)n * SPAN_LEN);
}

/* ---- reads -------------------------------------------------------------------------- */

typedef struct spans {
    feed_span_t *v;
    size_t n, cap;
    uint64_t after; /* only spans that reach past it */
} spans_t;

static int collect(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    spans_t *s = ctx;
    if (slen != 8)
        return 0; /* not a span record (none are written so) */
    for (size_t i = 0; i + SPAN_LEN <= vlen; i += SPAN_LEN) {
        uint64_t last = be64_get(val + i + 8);
        if (last <= s->after)
            continue;
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 16;
            s->v = mem_realloc(s->v, s->cap * sizeof(*s->v));
        }
        s->v[s->n++] = (feed_span_t){be64_get(sfx), be64_get(val + i), last};
    }
    return 0;
}

/* The user's spans reaching past @p after, by group then first id. Free s->v. */
static int spans_of(kv_txn_t *txn, const char *app, const char *user, uint64_t after,
                    spans_t *s)
{
    uint8_t pfx[KEY_MAX];
    memset(s, 0, sizeof(*s));
    s->after = after;
    return kv_rec_scan(txn, KV_DB_GSPANS, pfx, prefix_key(pfx, app, user), collect, s);
}

int feed_spans(kv_txn_t *txn, const char *app, const char *user, feed_span_t **out, size_t *n)
{
    spans_t s;
    int rc = spans_of(txn, app, user, 0, &s);

    if (rc < 0) {
        mem_free(s.v);
        return rc;
    }
    *out = s.v;
    *n = s.n;
    return 0;
}

/* Merge the ascending @p b[nb] into the ascending @p a[*na] (room @p max), keeping the
 * @p max smallest, each once; @p tmp has room for @p max. */
static void merge(uint64_t *a, size_t *na, const uint64_t *b, size_t nb, size_t max,
                  uint64_t *tmp)
{
    size_t i = 0, j = 0, k = 0;
    while (k < max && (i < *na || j < nb)) {
        uint64_t x = j == nb || (i < *na && a[i] <= b[j]) ? a[i++] : b[j++];
        if (k == 0 || tmp[k - 1] != x)
            tmp[k++] = x;
    }
    memcpy(a, tmp, k * sizeof(*a));
    *na = k;
}

int feed_page(kv_txn_t *txn, const char *app, const char *user, uint64_t after, uint64_t *ids,
              size_t max, size_t *n, uint64_t *total_after)
{
    uint8_t ukey[KV_UKEY_MAX], skey[CONV_SKEY_MAX];
    uint64_t *got = NULL, *tmp = NULL, total, part;
    size_t ng, sklen;
    spans_t s = {0};
    int rc = kv_timeline_page(txn, ukey, kv_ukey(ukey, app, user), after, ids, max, n, &total);

    if (rc < 0 || (rc = spans_of(txn, app, user, after, &s)) < 0) {
        mem_free(s.v);
        return rc;
    }
    if (s.n > 0 && max > 0) {
        got = mem_alloc(max * sizeof(*got));
        tmp = mem_alloc(max * sizeof(*tmp));
    }
    for (size_t i = 0; i < s.n && rc == 0; i++) {
        /* the group's ids in (from, last]: a span's first id is its user's */
        uint64_t from = s.v[i].first - 1 > after ? s.v[i].first - 1 : after;
        sklen = group_skey(skey, app, s.v[i].gid);
        ng = 0;
        if (max > 0)
            rc = kv_cmsg_after(txn, skey, sklen, from, got, max, &ng, &part);
        if (rc == 0 && (max == 0 || s.v[i].last != UINT64_MAX))
            rc = kv_cmsg_count(txn, skey, sklen, from, s.v[i].last, &part);
        while (ng > 0 && got[ng - 1] > s.v[i].last)
            ng--;
        total += part;
        if (ng > 0)
            merge(ids, n, got, ng, max, tmp);
    }
    mem_free(got);
    mem_free(tmp);
    mem_free(s.v);
    if (rc == 0)
        *total_after = total;
    return rc;
}

int feed_count(kv_txn_t *txn, const char *app, const char *user, uint64_t *out)
{
    uint64_t none;
    size_t n;
    return feed_page(txn, app, user, 0, &none, 0, &n, out);
}

int feed_last(kv_txn_t *txn, const char *app, const char *user, uint64_t *out)
{
    uint8_t ukey[KV_UKEY_MAX], skey[CONV_SKEY_MAX];
    uint64_t last = 0, l, done = 0;
    bool any = false;
    spans_t s = {0};
    int rc = kv_timeline_last(txn, ukey, kv_ukey(ukey, app, user), &last);

    if (rc == RC_ENOTFOUND)
        rc = 0, last = 0;
    /* only spans reaching past the timeline's newest can hold a newer id */
    if (rc < 0 || (rc = spans_of(txn, app, user, last, &s)) < 0) {
        mem_free(s.v);
        return rc;
    }
    /* a group's spans newest first: the first with an id in it has the group's newest */
    for (size_t i = s.n; i-- > 0 && rc == 0;) {
        if (any && s.v[i].gid == done)
            continue;
        rc = kv_cmsg_last(txn, skey, group_skey(skey, app, s.v[i].gid), s.v[i].last, &l);
        if (rc == 0 && l >= s.v[i].first) {
            any = true;
            done = s.v[i].gid;
            last = l > last ? l : last;
        }
    }
    mem_free(s.v);
    if (rc == 0)
        *out = last;
    return rc;
}

int feed_newer(kv_txn_t *txn, const char *app, const char *user, uint64_t id)
{
    uint8_t ukey[KV_UKEY_MAX], skey[CONV_SKEY_MAX];
    uint64_t last = 0;
    spans_t s = {0};
    int rc = kv_timeline_last(txn, ukey, kv_ukey(ukey, app, user), &last);

    if (rc == 0 && last > id)
        return 1;
    if ((rc < 0 && rc != RC_ENOTFOUND) || (rc = spans_of(txn, app, user, id, &s)) < 0) {
        mem_free(s.v);
        return rc;
    }
    /* spans reaching past @p id: the first with a newer id answers */
    for (size_t i = 0; i < s.n && rc == 0; i++) {
        rc = kv_cmsg_last(txn, skey, group_skey(skey, app, s.v[i].gid), s.v[i].last, &last);
        if (rc == 0 && last > id && last >= s.v[i].first)
            rc = 1;
    }
    mem_free(s.v);
    return rc;
}

int feed_covers(kv_txn_t *txn, const char *app, const char *user, uint64_t gid, uint64_t id)
{
    uint8_t key[KEY_MAX], buf[(FEED_SPANS_MAX + 1) * SPAN_LEN];
    int n = spans_get(txn, key, span_key(key, app, user, gid), buf);

    for (int i = 0; i < n; i++)
        if (be64_get(buf + (size_t)i * SPAN_LEN) <= id && id <= be64_get(buf + (size_t)i * SPAN_LEN + 8))
            return 1;
    return n < 0 ? n : 0;
}

int feed_has_in(kv_txn_t *txn, const char *app, const char *user, uint64_t id, int conv_type,
                const char *to)
{
    uint8_t ukey[KV_UKEY_MAX], skey[CONV_SKEY_MAX];
    uint64_t gid, c;
    int rc = kv_timeline_has(txn, ukey, kv_ukey(ukey, app, user), id);

    if (rc != RC_ENOTFOUND || conv_type != cim_ConvType_GROUP || group_id_parse(to, &gid) < 0)
        return rc;
    /* a group's message: in the group's index, inside one of the user's spans */
    if ((rc = feed_covers(txn, app, user, gid, id)) <= 0)
        return rc < 0 ? rc : RC_ENOTFOUND;
    if ((rc = kv_cmsg_count(txn, skey, group_skey(skey, app, gid), id - 1, id, &c)) < 0)
        return rc;
    return c == 1 ? 0 : RC_ENOTFOUND;
}

int feed_has(kv_txn_t *txn, const char *app, const char *user, uint64_t id)
{
    const uint8_t *rec;
    size_t len;
    cim_Message m;
    int rc = kv_msg_get(txn, id, &rec, &len);

    /* no record, no message (retention removes the record last) */
    if (rc < 0)
        return rc;
    if (!message_decode_head(rec, len, &m))
        return RC_ENOTFOUND;
    return feed_has_in(txn, app, user, id, m.conv_type, m.to);
}

/* ---- migration ---------------------------------------------------------------------- */

typedef struct mig {
    kv_txn_t *txn;
    uint8_t span[SPAN_LEN];
    uint64_t n;
} mig_t;

/* ugroups and gspans share their keys (user key NUL gid): a span for each, written as the
 * scan goes (into another database than the one scanned). */
static int each_membership(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen)
{
    mig_t *m = ctx;
    (void)val;
    (void)vlen;
    m->n++;
    return kv_rec_put(m->txn, KV_DB_GSPANS, key, klen, m->span, SPAN_LEN);
}

int feed_migrate(kv_txn_t *txn, uint64_t from, uint64_t *n)
{
    mig_t m = {.txn = txn};
    int rc;

    be64_put(m.span, from);
    be64_put(m.span + 8, UINT64_MAX);
    rc = kv_rec_each(txn, KV_DB_UGROUPS, each_membership, &m);
    *n = m.n;
    return rc;
}
