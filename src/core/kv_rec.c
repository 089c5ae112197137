/* kv_rec: plain records (groups, members, conversations, contacts, blocks), named
 * counters and the per-conversation message index. Layout reference: docs/STORAGE.md. */
#include <string.h>

#include "core/be.h"
#include "core/kv.h"
#include "core/kv_int.h"
#include "core/mem.h"
#include "core/log.h"
#include "core/rc.h"

static int rec_dbi(kv_txn_t *txn, int db, MDB_dbi *out)
{
    if (db < 0 || db >= KV_DB_COUNT)
        return RC_EINVAL;
    *out = kv__of(txn)->recs[db];
    return 0;
}

int kv_rec_get(kv_txn_t *txn, int db, const void *key, size_t klen, const uint8_t **val,
               size_t *vlen)
{
    MDB_val k = {klen, (void *)key}, v;
    MDB_dbi dbi;
    int rc;
    if ((rc = rec_dbi(txn, db, &dbi)) < 0)
        return rc;
    if ((rc = kv__rc(mdb_get(kv__txn(txn), dbi, &k, &v), "mdb_get rec")) < 0)
        return rc;
    if (val != NULL)
        *val = v.mv_data;
    if (vlen != NULL)
        *vlen = v.mv_size;
    return 0;
}

int kv_rec_put(kv_txn_t *txn, int db, const void *key, size_t klen, const void *val,
               size_t vlen)
{
    static const uint8_t none = 0;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)(vlen ? val : &none)};
    MDB_dbi dbi;
    int rc;
    if ((rc = rec_dbi(txn, db, &dbi)) < 0)
        return rc;
    return kv__rc(mdb_put(kv__txn(txn), dbi, &k, &v, 0), "mdb_put rec");
}

int kv_rec_del(kv_txn_t *txn, int db, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    MDB_dbi dbi;
    int rc;
    if ((rc = rec_dbi(txn, db, &dbi)) < 0)
        return rc;
    return kv__rc(mdb_del(kv__txn(txn), dbi, &k, NULL), "mdb_del rec");
}

int kv_rec_scan(kv_txn_t *txn, int db, const void *prefix, size_t plen,
                int (*cb)(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                          size_t vlen),
                void *ctx)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {plen, (void *)prefix}, v;
    MDB_dbi dbi;
    int rc, mrc;

    if ((rc = rec_dbi(txn, db, &dbi)) < 0)
        return rc;
    if ((rc = kv__rc(mdb_cursor_open(kv__txn(txn), dbi, &cur), "cursor")) < 0)
        return rc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if ((rc = cb(ctx, (const uint8_t *)k.mv_data + plen, k.mv_size - plen, v.mv_data,
                     v.mv_size)) != 0)
            goto out;
    }
    rc = mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get rec");
out:
    mdb_cursor_close(cur);
    return rc;
}

int kv_rec_each(kv_txn_t *txn, int db,
                int (*cb)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen),
                void *ctx)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    MDB_dbi dbi;
    int rc = 0, mrc;

    if ((rc = rec_dbi(txn, db, &dbi)) < 0)
        return rc;
    if ((rc = kv__rc(mdb_cursor_open(kv__txn(txn), dbi, &cur), "cursor")) < 0)
        return rc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if ((rc = cb(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0)
            break;
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = kv__rc(mrc, "mdb_cursor_get rec");
    mdb_cursor_close(cur);
    return rc;
}

int kv_cmsg_keys(kv_txn_t *txn, int (*cb)(void *ctx, const uint8_t *key, size_t klen),
                 void *ctx)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = 0, mrc;

    if ((rc = kv__ids_sync(txn, kv__of(txn)->cmsgs)) < 0 ||
        (rc = kv__ids_cursor(txn, kv__of(txn)->cmsgs, &cur)) < 0)
        return rc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP))
        if ((rc = cb(ctx, k.mv_data, k.mv_size)) != 0)
            break;
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = kv__rc(mrc, "mdb_cursor_get cmsgs");
    mdb_cursor_close(cur);
    return rc;
}

int kv_counter_next(kv_txn_t *txn, const char *name, uint64_t start, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    uint8_t buf[8];
    uint64_t next = start;
    int mrc = mdb_get(kv__txn(txn), kv__of(txn)->meta, &k, &v);

    if (mrc == MDB_SUCCESS && v.mv_size == 8)
        next = be64_get(v.mv_data) + 1;
    else if (mrc != MDB_NOTFOUND && mrc != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_get counter");
    be64_put(buf, next);
    v.mv_size = 8;
    v.mv_data = buf;
    if ((mrc = mdb_put(kv__txn(txn), kv__of(txn)->meta, &k, &v, 0)) != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_put counter");
    *out = next;
    return 0;
}

int kv_meta_u64_get(kv_txn_t *txn, const char *name, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int mrc = mdb_get(kv__txn(txn), kv__of(txn)->meta, &k, &v);

    if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && v.mv_size != 8)) {
        *out = 0;
        return 0;
    }
    if (mrc != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_get meta");
    *out = be64_get(v.mv_data);
    return 0;
}

int kv_meta_u64_put(kv_txn_t *txn, const char *name, uint64_t v)
{
    uint8_t buf[8];
    MDB_val k = {strlen(name), (void *)name}, val = {sizeof(buf), buf};

    be64_put(buf, v);
    return kv__rc(mdb_put(kv__txn(txn), kv__of(txn)->meta, &k, &val, 0), "mdb_put meta");
}

#define OUTBOX_PREFIX "outbox"
#define OUTBOX_KEY (sizeof(OUTBOX_PREFIX) - 1 + 8)

static void outbox_key(uint8_t out[OUTBOX_KEY], uint64_t id)
{
    memcpy(out, OUTBOX_PREFIX, sizeof(OUTBOX_PREFIX) - 1);
    be64_put(out + sizeof(OUTBOX_PREFIX) - 1, id);
}

int kv_outbox_put(kv_txn_t *txn, uint64_t id, const void *val, size_t len)
{
    uint8_t key[OUTBOX_KEY];
    MDB_val k = {sizeof(key), key}, v = {len, (void *)val};

    outbox_key(key, id);
    return kv__rc(mdb_put(kv__txn(txn), kv__of(txn)->meta, &k, &v, 0), "mdb_put outbox");
}

int kv_outbox_del(kv_txn_t *txn, uint64_t id)
{
    uint8_t key[OUTBOX_KEY];
    MDB_val k = {sizeof(key), key};
    int mrc;

    outbox_key(key, id);
    mrc = mdb_del(kv__txn(txn), kv__of(txn)->meta, &k, NULL);
    return mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_del outbox");
}

int kv_outbox_get(kv_txn_t *txn, uint64_t id, const uint8_t **val, size_t *len)
{
    uint8_t key[OUTBOX_KEY];
    MDB_val k = {sizeof(key), key}, v;
    int rc;

    outbox_key(key, id);
    if ((rc = kv__rc(mdb_get(kv__txn(txn), kv__of(txn)->meta, &k, &v), "mdb_get outbox")) < 0)
        return rc;
    *val = v.mv_data;
    *len = v.mv_size;
    return 0;
}

int kv_outbox_each(kv_txn_t *txn,
                   int (*cb)(void *ctx, uint64_t id, const uint8_t *val, size_t len), void *ctx)
{
    uint8_t key[OUTBOX_KEY];
    MDB_cursor *cur = NULL;
    MDB_val k = {sizeof(key), key}, v;
    int mrc, rc = 0;

    outbox_key(key, 0);
    if ((rc = kv__rc(mdb_cursor_open(kv__txn(txn), kv__of(txn)->meta, &cur), "cursor outbox")) < 0)
        return rc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != OUTBOX_KEY || memcmp(k.mv_data, OUTBOX_PREFIX, OUTBOX_KEY - 8) != 0)
            break;
        if (cb(ctx, be64_get((const uint8_t *)k.mv_data + OUTBOX_KEY - 8), v.mv_data, v.mv_size))
            break;
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = kv__rc(mrc, "cursor outbox");
    mdb_cursor_close(cur);
    return rc;
}

int kv_cmsg_add(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t id, bool watch)
{
    return kv__ids_add(txn, kv__of(txn)->cmsgs, ckey, klen, id, watch);
}

static bool in_tail(void *ctx, const uint8_t *key, size_t klen)
{
    kv_t *kv = ctx;
    return kv__deferred_has(kv, kv->cmsgs, key, klen);
}

int kv_cmsg_news(kv_txn_t *txn,
                 int (*cb)(void *ctx, const uint8_t *ckey, size_t klen, uint64_t first),
                 void *ctx)
{
    kv_t *kv = kv__of(txn);
    int rc = kv->tail != NULL ? kv__pend_news_find(kv->pend[KV_PEND_CMSGS], kv__txn(txn),
                                                    in_tail, kv)
                              : kv__ids_sync(txn, kv->cmsgs);
    return rc < 0 ? rc : kv__pend_news(kv->pend[KV_PEND_CMSGS], cb, ctx);
}

/* Reads of the index merge cmsgs with the deferred appends (kv__merged_*, kv_msg.c). */

int kv_cmsg_after(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t after,
                  uint64_t *ids, size_t max, size_t *n, uint64_t *total_after)
{
    return kv__merged_after(txn, kv__of(txn)->cmsgs, ckey, klen, after, ids, max, n,
                            total_after);
}

int kv_cmsg_count(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t after,
                  uint64_t up_to, uint64_t *out)
{
    return kv__merged_count(txn, kv__of(txn)->cmsgs, ckey, klen, after, up_to, out);
}

int kv_cmsg_last(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t up_to,
                 uint64_t *out)
{
    return kv__merged_last(txn, kv__of(txn)->cmsgs, ckey, klen, up_to, out);
}

int kv_cmsg_drop(kv_txn_t *txn, const uint8_t *ckey, size_t klen)
{
    MDB_val k = {klen, (void *)ckey};
    int mrc, rc = kv__ids_sync(txn, kv__of(txn)->cmsgs);
    if (rc < 0)
        return rc;
    mrc = mdb_del(kv__txn(txn), kv__of(txn)->cmsgs, &k, NULL);
    return mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_del cmsgs");
}

int kv_cevent_add(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t id)
{
    return kv__ids_add(txn, kv__of(txn)->cevents, ckey, klen, id, false);
}

int kv_cevent_count(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t after,
                    uint64_t up_to, uint64_t *out)
{
    return kv__ids_count(txn, kv__of(txn)->cevents, ckey, klen, after, up_to, out);
}

static int cmsgs_before(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t before,
                        uint64_t *ids, size_t max, size_t *n, bool *more)
{
    MDB_cursor *cur = NULL;
    uint8_t from[8];
    MDB_val k = {klen, (void *)ckey}, v = {8, from};
    size_t got = 0;
    int rc, mrc;

    *n = 0;
    *more = false;
    if ((rc = kv__ids_cursor(txn, kv__of(txn)->cmsgs, &cur)) < 0)
        return rc;
    if (before == 0) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST_DUP);
    } else {
        /* The first id >= before, then one step back; none >= before: the last one. */
        be64_put(from, before);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
        if (mrc == MDB_SUCCESS) {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV_DUP);
        } else if (mrc == MDB_NOTFOUND) {
            k.mv_size = klen;
            k.mv_data = (void *)ckey;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
            if (mrc == MDB_SUCCESS)
                mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST_DUP);
            if (mrc == MDB_SUCCESS && v.mv_size == 8 && be64_get(v.mv_data) >= before)
                mrc = MDB_NOTFOUND; /* defensive: cannot happen */
        }
    }
    while (mrc == MDB_SUCCESS && got < max) {
        if (v.mv_size != 8) {
            rc = RC_ESTORE;
            goto out;
        }
        ids[got++] = be64_get(v.mv_data);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV_DUP);
    }
    if (mrc == MDB_SUCCESS)
        *more = true; /* stopped by max with an older id still there */
    rc = mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get cmsg");
    *n = got;
out:
    mdb_cursor_close(cur);
    return rc;
}

int kv_cmsg_before(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t before,
                   uint64_t *ids, size_t max, size_t *n, bool *more)
{
    uint64_t *x = NULL, *out = NULL;
    size_t nx = 0, i = 0, j, m = 0;
    int rc = kv__ids_extra(txn, kv__of(txn)->cmsgs, ckey, klen, &x, &nx);

    if (rc == 0)
        rc = cmsgs_before(txn, ckey, klen, before, ids, max, n, more);
    j = nx; /* x ascending: walk it down from the newest below before */
    while (j > 0 && before != 0 && x[j - 1] >= before)
        j--;
    if (rc < 0 || j == 0) {
        mem_free(x);
        return rc;
    }
    out = mem_alloc((max ? max : 1) * sizeof(*out));
    while (m < max && (i < *n || j > 0))
        out[m++] = j == 0 || (i < *n && ids[i] > x[j - 1]) ? ids[i++] : x[--j];
    *more = *more || i < *n || j > 0;
    memcpy(ids, out, m * sizeof(*ids));
    *n = m;
    mem_free(out);
    mem_free(x);
    return 0;
}
