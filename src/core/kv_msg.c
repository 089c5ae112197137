/* kv_msg: messages, timelines, delivery cursors, conversation indexes and retention. Layout reference:
 * docs/STORAGE.md. */
#include <errno.h>
#include <string.h>

#include "core/be.h"
#include "core/kv.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define DKEY_MAX (KV_UKEY_MAX + 1 + 64) /* user key NUL device or client_msg_id */

size_t kv_ukey(uint8_t out[KV_UKEY_MAX], const char *app, const char *user)
{
    size_t a = strnlen(app, KV_ID_MAX), u = strnlen(user, KV_ID_MAX);
    memcpy(out, app, a);
    out[a] = '\0';
    memcpy(out + a + 1, user, u);
    return a + 1 + u;
}

/* user key NUL suffix; the suffix is 1..64 bytes (device id or client_msg_id). */
static int sub_key(uint8_t out[DKEY_MAX], const uint8_t *ukey, size_t klen, const char *sfx,
                   size_t *len)
{
    size_t n = strlen(sfx);
    if (klen > KV_UKEY_MAX || n == 0 || n > 64)
        return RC_EINVAL;
    memcpy(out, ukey, klen);
    out[klen] = '\0';
    memcpy(out + klen + 1, sfx, n);
    *len = klen + 1 + n;
    return 0;
}

static int get_u64(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t *out,
                   const char *what)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = kv__rc(mdb_get(kv__txn(txn), dbi, &k, &v), what);
    if (rc < 0)
        return rc;
    if (v.mv_size != 8) {
        LOG_ERROR("kv: %s record has %zu bytes, not 8", what, v.mv_size);
        return RC_ESTORE;
    }
    *out = be64_get(v.mv_data);
    return 0;
}

static int put_u64(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t val,
                   const char *what)
{
    uint8_t buf[8];
    MDB_val k = {klen, (void *)key}, v = {8, buf};
    be64_put(buf, val);
    return kv__rc(mdb_put(kv__txn(txn), dbi, &k, &v, 0), what);
}

/* ---- timeline --------------------------------------------------------------------- */

static kv_pend_t *pend_of(kv_t *kv, MDB_dbi dbi)
{
    for (int i = 0; i < KV_PEND_COUNT; i++) /* (the deferred timeline pend before fanout's) */
        if (kv__pend_dbi(kv->pend[i]) == dbi)
            return kv->pend[i];
    return NULL;
}

int kv__ids_add(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t id,
                bool watch)
{
    kv_pend_t *p;

    if (klen == 0 || klen > KV_LMDB_KEY_MAX) /* what LMDB would refuse at the commit */
        return RC_EINVAL;
    if (kv__reading(txn) || (p = pend_of(kv__of(txn), dbi)) == NULL)
        return RC_EINVAL; /* not a write transaction, or not an id list */
    kv__pend_add(p, key, klen, id, watch); /* applied in key order (kv_pend.c) */
    return 0;
}

int kv_timeline_add(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t id)
{
    return kv__ids_add(txn, kv__of(txn)->timeline, ukey, klen, id, false);
}

int kv_timeline_fanout(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t id)
{
    kv_t *kv = kv__of(txn);
    if (klen == 0 || klen > KV_LMDB_KEY_MAX || kv__reading(txn))
        return RC_EINVAL;
    kv__pend_add(kv->pend[KV_PEND_FANOUT], ukey, klen, id, false);
    return 0;
}

int kv__ids_cursor(kv_txn_t *txn, MDB_dbi dbi, MDB_cursor **cur)
{
    kv_t *kv = kv__of(txn);
    int rc = 0;

    /* deferred, readers merge the gathered appends instead (kv__ids_extra); a group's
     * timeline appends are put at the commit, so before a read */
    if (kv->tail != NULL && dbi == kv->timeline)
        rc = kv__reading(txn) ? 0 : kv__pend_apply(kv->pend[KV_PEND_FANOUT], kv__txn(txn));
    else if (kv->tail == NULL || dbi != kv->cmsgs)
        rc = kv__ids_sync(txn, dbi);
    if (rc < 0)
        return rc;
    return kv__rc(mdb_cursor_open(kv__txn(txn), dbi, cur), "cursor");
}

/* Count the dups >= @p first, the cursor standing on the first of them, a page at a time:
 * DUPFIXED pages come back whole with MDB_GET_MULTIPLE / MDB_NEXT_MULTIPLE. LMDB returns
 * the current page from its start, so in that first page only values >= first count. */
static int count_rest(MDB_cursor *cur, uint64_t first, uint64_t *out)
{
    MDB_val k, v;
    uint64_t n = 0;
    int mrc;

    v.mv_size = 0;
    v.mv_data = NULL;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE);
    if (mrc == MDB_SUCCESS && v.mv_data == NULL) {
        /* A key holding a single value has no duplicate page: LMDB answers GET_MULTIPLE
         * with success and leaves @p v untouched. The cursor stands on that value, >= first. */
        *out = 1;
        return 0;
    }
    if (mrc == MDB_SUCCESS) {
        const uint8_t *p = v.mv_data;
        for (size_t i = 0; i + 8 <= v.mv_size; i += 8)
            n += be64_get(p + i) >= first;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE);
    }
    while (mrc == MDB_SUCCESS) {
        n += v.mv_size / 8;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE);
    }
    *out = n;
    return mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get multiple");
}

/* Dups of @p key that are >= @p first. */
static int count_from(MDB_cursor *cur, const uint8_t *key, size_t klen, uint64_t first,
                      uint64_t *out)
{
    uint8_t from[8];
    MDB_val k = {klen, (void *)key}, v = {8, from};
    int mrc;

    *out = 0;
    be64_put(from, first);
    mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_cursor_get range");
    return count_rest(cur, first, out);
}

int kv__ids_count(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t after,
                  uint64_t up_to, uint64_t *out)
{
    MDB_cursor *cur = NULL;
    uint64_t a = 0, b = 0;
    int rc;

    *out = 0;
    if (after >= up_to || after == UINT64_MAX)
        return 0;
    if ((rc = kv__ids_cursor(txn, dbi, &cur)) < 0)
        return rc;
    rc = count_from(cur, key, klen, after + 1, &a);
    if (rc == 0 && up_to != UINT64_MAX && a > 0)
        rc = count_from(cur, key, klen, up_to + 1, &b);
    mdb_cursor_close(cur);
    if (rc == 0)
        *out = a - b;
    return rc;
}

int kv__ids_last(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t up_to,
                 uint64_t *out)
{
    MDB_cursor *cur = NULL;
    uint8_t from[8];
    MDB_val k = {klen, (void *)key}, v = {8, from};
    int rc, mrc;

    *out = 0;
    if ((rc = kv__ids_cursor(txn, dbi, &cur)) < 0)
        return rc;
    if (up_to == UINT64_MAX) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST_DUP);
    } else {
        /* the first id above up_to, then the one before it; none above: the last */
        be64_put(from, up_to + 1);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV_DUP);
        else if (mrc == MDB_NOTFOUND) {
            k.mv_size = klen;
            k.mv_data = (void *)key;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
            if (mrc == MDB_SUCCESS)
                mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST_DUP);
        }
    }
    if (mrc == MDB_SUCCESS && v.mv_size == 8)
        *out = be64_get(v.mv_data);
    rc = mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get last");
    mdb_cursor_close(cur);
    return rc;
}

int kv__ids_after(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *ukey, size_t klen,
                  uint64_t after, uint64_t *ids, size_t max, size_t *n, uint64_t *total_after)
{
    MDB_cursor *cur = NULL;
    uint8_t from[8];
    MDB_val k = {klen, (void *)ukey}, v = {8, from};
    size_t got = 0;
    int rc, mrc;

    *n = 0;
    *total_after = 0;
    if (after == UINT64_MAX)
        return 0;
    if ((rc = kv__ids_cursor(txn, dbi, &cur)) < 0)
        return rc;
    be64_put(from, after + 1);
    mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
    if (mrc == MDB_NOTFOUND) {
        rc = 0;
        goto out;
    }
    if ((rc = kv__rc(mrc, "mdb_cursor_get timeline")) < 0)
        goto out;
    /* Count first (the count starts where the page starts), then step back to the
     * page's start and read it. */
    if ((rc = count_rest(cur, after + 1, total_after)) < 0)
        goto out;
    k.mv_size = klen;
    k.mv_data = (void *)ukey;
    v.mv_size = 8;
    v.mv_data = from;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
    while (mrc == MDB_SUCCESS && got < max) {
        if (v.mv_size != 8) {
            rc = RC_ESTORE;
            goto out;
        }
        ids[got++] = be64_get(v.mv_data);
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
    }
    rc = mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get next");
    *n = got;
out:
    mdb_cursor_close(cur);
    return rc;
}

/* Reads of a deferred id list (timeline, cmsgs) merge its database with kv__ids_extra's
 * ids (none when nothing is deferred): disjoint sets, so counts add up and pages
 * interleave. */

int kv__merged_after(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                     uint64_t after, uint64_t *ids, size_t max, size_t *n, uint64_t *total_after)
{
    uint64_t *x = NULL;
    size_t nx = 0, i = 0, j = 0, m = 0, from = 0;
    int rc = kv__ids_extra(txn, dbi, key, klen, &x, &nx);

    if (rc == 0)
        rc = kv__ids_after(txn, dbi, key, klen, after, ids, max, n, total_after);
    while (from < nx && x[from] <= after)
        from++;
    if (rc < 0 || from == nx) {
        mem_free(x);
        return rc;
    }
    *total_after += nx - from;
    /* The page is the first max of the two: count how many of each, then merge them
     * backwards in place (ids has room for max; what is written never passes what is
     * still to be read) */
    for (i = 0, j = from; m < max && (i < *n || j < nx); m++) {
        if (j == nx || (i < *n && ids[i] < x[j]))
            i++;
        else
            j++;
    }
    for (size_t k = m; j > from;)
        ids[--k] = i > 0 && ids[i - 1] > x[j - 1] ? ids[--i] : x[--j];
    *n = m;
    mem_free(x);
    return 0;
}

int kv__merged_count(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                     uint64_t after, uint64_t up_to, uint64_t *out)
{
    uint64_t *x = NULL;
    size_t nx = 0;
    int rc = kv__ids_extra(txn, dbi, key, klen, &x, &nx);

    if (rc == 0)
        rc = kv__ids_count(txn, dbi, key, klen, after, up_to, out);
    for (size_t i = 0; rc == 0 && i < nx; i++)
        *out += x[i] > after && x[i] <= up_to;
    mem_free(x);
    return rc;
}

int kv__merged_last(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                    uint64_t up_to, uint64_t *out)
{
    uint64_t *x = NULL;
    size_t nx = 0;
    int rc = kv__ids_extra(txn, dbi, key, klen, &x, &nx);

    if (rc == 0)
        rc = kv__ids_last(txn, dbi, key, klen, up_to, out);
    for (size_t i = 0; rc == 0 && i < nx; i++)
        if (x[i] <= up_to && x[i] > *out)
            *out = x[i];
    mem_free(x);
    return rc;
}

int kv_timeline_last(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t *out)
{
    return kv__merged_last(txn, kv__of(txn)->timeline, ukey, klen, UINT64_MAX, out);
}

int kv_timeline_page(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t after,
                     uint64_t *ids, size_t max, size_t *n, uint64_t *total_after)
{
    return kv__merged_after(txn, kv__of(txn)->timeline, ukey, klen, after, ids, max, n,
                            total_after);
}

int kv_timeline_has(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t id)
{
    MDB_cursor *cur = NULL;
    uint64_t *x = NULL;
    uint8_t val[8];
    MDB_val k = {klen, (void *)ukey}, v = {8, val};
    size_t nx = 0;
    int rc = kv__ids_extra(txn, kv__of(txn)->timeline, ukey, klen, &x, &nx);

    for (size_t i = 0; rc == 0 && i < nx; i++)
        if (x[i] == id) {
            mem_free(x);
            return 0;
        }
    mem_free(x);
    if (rc < 0 || (rc = kv__ids_cursor(txn, kv__of(txn)->timeline, &cur)) < 0)
        return rc;
    be64_put(val, id);
    rc = kv__rc(mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH), "mdb_cursor_get both");
    mdb_cursor_close(cur);
    return rc;
}

int kv_timeline_count(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t *out)
{
    return kv__merged_count(txn, kv__of(txn)->timeline, ukey, klen, 0, UINT64_MAX, out);
}

/* ---- cursors ---------------------------------------------------------------------- */

int kv_cursor_get(kv_txn_t *txn, const uint8_t *ukey, size_t klen, const char *device,
                  uint64_t *out)
{
    uint8_t key[DKEY_MAX];
    size_t len;
    int rc;
    if ((rc = sub_key(key, ukey, klen, device, &len)) < 0)
        return rc;
    rc = get_u64(txn, kv__of(txn)->cursors, key, len, out, "cursor");
    if (rc == RC_ENOTFOUND) {
        *out = 0;
        rc = 0;
    }
    return rc;
}

int kv_cursor_put(kv_txn_t *txn, const uint8_t *ukey, size_t klen, const char *device,
                  uint64_t id)
{
    uint8_t key[DKEY_MAX];
    uint64_t cur = 0;
    size_t len;
    int rc;
    if ((rc = sub_key(key, ukey, klen, device, &len)) < 0)
        return rc;
    rc = get_u64(txn, kv__of(txn)->cursors, key, len, &cur, "cursor");
    if (rc < 0 && rc != RC_ENOTFOUND)
        return rc;
    if (rc == 0 && cur >= id)
        return 0;
    return put_u64(txn, kv__of(txn)->cursors, key, len, id, "mdb_put cursor");
}

/* ---- retention -------------------------------------------------------------------- */

static void remember(kv_retention_t *pos, const MDB_val *k)
{
    if (k->mv_size <= sizeof(pos->key)) {
        memcpy(pos->key, k->mv_data, k->mv_size);
        pos->klen = k->mv_size;
    }
}

/* Phases 0 and 1 walk a database whose values are message ids, resuming at pos->key, and
 * delete the records whose id is below the cutoff:
 *  - timeline (phase 0): for each user, entries from the front of its sorted dups until
 *    one is new enough, then MDB_NEXT_NODUP to the next user;
 *  - the conversation index (phase 0, sub 1) and the group events (phase 1), the same way.
 * Then the phase moves on to @p next_phase. */
static int retire_by_value(kv_txn_t *txn, MDB_dbi dbi, kv_retention_t *pos, uint64_t cutoff,
                           size_t *budget, size_t *removed, bool *done)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;

    if ((rc = kv__ids_sync(txn, dbi)) < 0 || (rc = kv__ids_cursor(txn, dbi, &cur)) < 0)
        return rc;
    if (pos->klen == 0) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        k.mv_size = pos->klen;
        k.mv_data = pos->key;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    /* Remember every key the cursor reaches, before examining it: a step whose budget
     * runs out right after MDB_NEXT_NODUP must resume at the new key, not at the kept key
     * it just passed (with a budget of 1 that re-examined the same entry forever). */
    if (mrc == MDB_SUCCESS)
        remember(pos, &k);
    while (mrc == MDB_SUCCESS && *budget > 0) {
        (*budget)--;
        if (v.mv_size == 8 && be64_get(v.mv_data) < cutoff) {
            if ((rc = kv__rc(mdb_cursor_del(cur, 0), "mdb_cursor_del retention")) < 0)
                goto out;
            (*removed)++;
            /* Seek again instead of reading where the cursor rests: when the deleted entry
             * was its key's last and the next key holds a sub-database, LMDB (0.9.24)
             * leaves that key's dup cursor unpositioned and GET_CURRENT fails with EINVAL,
             * which reading where the cursor rests would take for the end of the database. The first entry at
             * or after the (copied) key is the key's next entry or the next key's first. */
            k.mv_size = pos->klen;
            k.mv_data = pos->key;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        } else {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
        }
        if (mrc == MDB_SUCCESS)
            remember(pos, &k);
    }
    *done = mrc == MDB_NOTFOUND;
    if (*done) {
        pos->klen = 0;
        rc = 0;
    } else {
        rc = mrc == MDB_SUCCESS ? 0 : kv__rc(mrc, "retention");
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

int kv_retention_step(kv_txn_t *txn, kv_retention_t *pos, uint64_t cutoff_id, size_t budget,
                      size_t *removed)
{
    int rc = 0;
    bool done = false;
    *removed = 0;
    /* Phase 0 walks the timelines, then (sub 1) the conversation index; phase 1 the group
     * events. */
    if (pos->phase == 0 && pos->sub == 0) {
        if ((rc = retire_by_value(txn, kv__of(txn)->timeline, pos, cutoff_id, &budget, removed,
                                  &done)) < 0)
            return rc;
        if (done)
            pos->sub = 1;
    }
    if (pos->phase == 0 && pos->sub == 1 && budget > 0) {
        if ((rc = retire_by_value(txn, kv__of(txn)->cmsgs, pos, cutoff_id, &budget, removed,
                                  &done)) < 0)
            return rc;
        if (done)
            pos->phase = 1;
    }
    if (pos->phase == 1 && budget > 0) {
        if ((rc = retire_by_value(txn, kv__of(txn)->cevents, pos, cutoff_id, &budget, removed,
                                  &done)) < 0)
            return rc;
        if (done)
            pos->phase = 2;
    }
    /* Phase 2: message records below the cutoff (kv_chunk.c). Every timeline entry of a
     * message carries the message's own id, so once phase 0 is done none references
     * them. */
    if (pos->phase == 2 && budget > 0) {
        if ((rc = kv__msgs_retire(txn, cutoff_id, &budget, removed, &done)) < 0)
            return rc;
        if (done)
            pos->phase = 3;
    }
    return 0;
}
