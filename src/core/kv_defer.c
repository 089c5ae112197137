/* kv_defer: the conversation index (cmsgs) deferred — KV_DEFER, the directory's one cimd.
 *
 * A commit does not put its cmsgs appends into cmsgs. It writes them as one record of
 * `cpend` (key: the transaction's id, so every put appends) and adds them to the tail
 * (kv_tail.c), which readers merge; later commits drain the tail into cmsgs in key order,
 * many commits' appends at once, and delete the records whose appends are all in. A crash
 * loses the tail and nothing else: the next open applies what cpend holds before anything
 * is served, a slice of keys a transaction, cpend dropped with the last (a crash during it
 * leaves cpend whole). Putting an id cmsgs has already is no error, so applying a record
 * twice is harmless.
 *
 * A key that already has CHAIN_MAX entries in the open epoch gets its ids put at once
 * instead: a busy conversation's page is written every commit anyway, and readers walk
 * its chain.
 *
 * Record layout (docs/STORAGE.md, cpend): per id, key length (u8) ‖ key ‖ id (u64 BE). */
#include <stdlib.h>
#include <string.h>

#include "core/be.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define CHAIN_MAX    16
#define TAIL_DEFAULT (256 * 1024) /* entries an epoch takes before it drains */

/* ---- the cpend log ------------------------------------------------------------------- */

static void log_put(kv_t *kv, const uint8_t *key, size_t klen, uint64_t id)
{
    uint8_t len = (uint8_t)klen, idb[8];
    be64_put(idb, id);
    kv__arena_put(&kv->log, &len, 1);
    kv__arena_put(&kv->log, key, klen);
    kv__arena_put(&kv->log, idb, 8);
}

/* Call @p cb for every (key, id) of a record. @return 0, RC_ESTORE (malformed) or cb's. */
static int log_each(const uint8_t *p, size_t len,
                    int (*cb)(void *ctx, const uint8_t *key, size_t klen, uint64_t id), void *ctx)
{
    int rc = 0;
    while (len > 0 && rc == 0) {
        size_t klen = p[0];
        if (klen == 0 || len < 1 + klen + 8)
            return RC_ESTORE;
        rc = cb(ctx, p + 1, klen, be64_get(p + 1 + klen));
        p += 1 + klen + 8;
        len -= 1 + klen + 8;
    }
    return rc;
}

/* log_each over every record of cpend in @p txn. @p records: how many. */
static int log_walk(kv_t *kv, MDB_txn *txn,
                    int (*cb)(void *ctx, const uint8_t *key, size_t klen, uint64_t id), void *ctx,
                    size_t *records)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = 0, mrc;

    *records = 0;
    if ((rc = kv__rc(mdb_cursor_open(txn, kv->cpend, &cur), "cursor cpend")) < 0)
        return rc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && rc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), ++*records)
        rc = log_each(v.mv_data, v.mv_size, cb, ctx);
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = kv__rc(mrc, "mdb_cursor_get cpend");
    return rc;
}

static int gather(void *ctx, const uint8_t *key, size_t klen, uint64_t id)
{
    kv__pend_add(ctx, key, klen, id, false);
    return 0;
}

/* Delete the records up to @p upto (all of them: UINT64_MAX). */
static int log_trim(kv_t *kv, MDB_txn *txn, uint64_t upto)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;

    if ((mrc = mdb_cursor_open(txn, kv->cpend, &cur)) != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_cursor_open cpend");
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == MDB_SUCCESS && k.mv_size == 8 &&
           be64_get(k.mv_data) <= upto)
        if ((mrc = mdb_cursor_del(cur, 0)) != MDB_SUCCESS)
            break;
    mdb_cursor_close(cur);
    return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "cpend trim");
}

/* ---- open, close --------------------------------------------------------------------- */

static size_t tail_limit(void)
{
    const char *e = getenv("CIM_KV_TAIL"); /* tests: small epochs, to drain often */
    long v = e != NULL ? strtol(e, NULL, 10) : 0;
    return v > 0 ? (size_t)v : TAIL_DEFAULT;
}

/* Keys of cmsgs a transaction of apply_log takes (CIM_KV_APPLY_SLICE overrides it, for
 * tests). */
#define APPLY_SLICE (64 * 1024)

static size_t apply_slice(void)
{
    const char *e = getenv("CIM_KV_APPLY_SLICE");
    long v = e != NULL ? strtol(e, NULL, 10) : 0;
    return v > 0 ? (size_t)v : APPLY_SLICE;
}

/* Apply every record of cpend to cmsgs and empty it: in key order, a slice of keys a
 * transaction, cpend dropped with the last. Slices, not one transaction: each copies the
 * leaves it touches, and the old copies go to the free list, which the next slice's
 * copies reuse (nothing reads at a start or a stop) — one transaction left a copy of
 * every touched leaf there (75,624 pages on 20 M messages) and doubled the map. A crash
 * between slices leaves cpend whole: the next open applies it again, and an id cmsgs
 * already has is no error. @p records: how many there were. */
static int apply_log(kv_t *kv, size_t *records)
{
    kv_txn_t *txn = NULL;
    size_t nkeys, slice = apply_slice();
    int rc;

    if ((rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
        return rc;
    if ((rc = log_walk(kv, kv__txn(txn), gather, kv->drain, records)) < 0 || *records == 0)
        goto out;
    nkeys = kv__pend_sort(kv->drain);
    for (size_t from = 0; rc == 0; from += slice) {
        size_t to = nkeys - from > slice ? from + slice : nkeys;
        if (txn == NULL && (rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
            break;
        if ((rc = kv__pend_apply_range(kv->drain, kv__txn(txn), from, to)) < 0 ||
            (to == nkeys &&
             (rc = kv__rc(mdb_drop(kv__txn(txn), kv->cpend, 0), "mdb_drop cpend")) < 0))
            break;
        rc = kv_commit(txn);
        txn = NULL;
        if (to == nkeys)
            break;
    }
out:
    kv_abort(txn);
    kv__pend_clear(kv->drain);
    return rc;
}

/* apply_log, growing the map as often as it runs out (as the store does for a batch):
 * applying a whole tail can need more room than the map has left. */
static int apply_log_all(kv_t *kv, size_t *records)
{
    int rc;
    while ((rc = apply_log(kv, records)) == RC_EMAPFULL)
        if ((rc = kv_grow(kv)) < 0)
            break;
    return rc;
}

int kv__defer_open(kv_t *kv)
{
    size_t records;
    int rc;

    kv->drain = kv__pend_new(kv->cmsgs);
    if ((rc = apply_log_all(kv, &records)) < 0) {
        LOG_ERROR("kv: applying the deferred conversation index failed (%s)", rc_str(rc));
        return rc;
    }
    if (records > 0)
        LOG_INFO("kv: applied %zu deferred conversation index record(s)", records);
    kv->tail = kv__tail_new(tail_limit());
    return 0;
}

void kv__defer_close(kv_t *kv)
{
    size_t records;
    int rc;

    /* A clean stop leaves everything in cmsgs (a crash: the next open does it). The tail
     * goes first: all of it is in cpend, nothing reads any more, and apply_log's commits
     * must not drain it into kv->drain, which holds the log being applied. */
    bool deferred = kv->tail != NULL;
    kv__tail_free(kv->tail);
    kv->tail = NULL;
    if (deferred && (rc = apply_log_all(kv, &records)) < 0)
        LOG_WARN("kv: the deferred conversation index stays for the next start (%s)", rc_str(rc));
    kv__pend_free(kv->drain);
    mem_free(kv->log.p);
    kv->tail = NULL;
    kv->drain = NULL;
    kv->log = (kv_arena_t){0};
}

/* ---- commit -------------------------------------------------------------------------- */

typedef struct defer_ctx {
    kv_t *kv;
    uint64_t txn;
    size_t staged;
} defer_ctx_t;

/* kv__pend_detach: take a key's ids into the tail (and the log), or leave them to be put
 * now (a busy key; an epoch without room). */
static bool to_tail(void *ctx, const uint8_t *key, size_t klen, const uint64_t *ids, size_t n)
{
    defer_ctx_t *d = ctx;
    if (!kv__tail_room(d->kv->tail, n) ||
        !kv__tail_add(d->kv->tail, key, klen, ids, n, d->txn, CHAIN_MAX))
        return false;
    for (size_t i = 0; i < n; i++)
        log_put(d->kv, key, klen, ids[i]);
    d->staged += n;
    return true;
}

int kv__defer_commit(kv_txn_t *txn)
{
    kv_t *kv = kv__of(txn);
    MDB_txn *mt = kv__txn(txn);
    defer_ctx_t d = {kv, mdb_txn_id(mt), 0};
    uint64_t upto = 0;
    uint8_t key[8];
    int rc;

    if ((rc = kv__ids_sync(txn, kv->timeline)) < 0 || (rc = kv__ids_sync(txn, kv->cevents)) < 0)
        return rc;
    kv->log.len = 0;
    kv__pend_detach(kv->pend[KV_PEND_CMSGS], to_tail, &d);
    if ((rc = kv__pend_apply(kv->pend[KV_PEND_CMSGS], mt)) < 0)
        return rc;
    if (kv->log.len > 0) {
        MDB_val k = {8, key}, v = {kv->log.len, kv->log.p};
        be64_put(key, d.txn);
        if ((rc = kv__rc(mdb_put(mt, kv->cpend, &k, &v, MDB_APPEND), "mdb_put cpend")) < 0)
            return rc;
    }
    if ((rc = kv__tail_drain(kv->tail, d.txn, d.staged, kv->drain, &upto)) < 0 ||
        (rc = kv__pend_apply(kv->drain, mt)) < 0)
        return rc;
    return upto > 0 ? log_trim(kv, mt, upto) : 0;
}

/* ---- reads --------------------------------------------------------------------------- */

/* A read-only open (cimdump) has no tail of its own: the thread's read txn builds one from
 * cpend the first time it needs it, and drops it when it ends. */
static _Thread_local kv_tail_t *ro_tail;
static _Thread_local MDB_txn *ro_txn;

void kv__ro_tail_done(void)
{
    kv__tail_free(ro_tail);
    ro_tail = NULL;
    ro_txn = NULL;
}

static int ro_count(void *ctx, const uint8_t *key, size_t klen, uint64_t id)
{
    (void)key, (void)klen, (void)id;
    ++*(size_t *)ctx;
    return 0;
}

static int ro_add(void *ctx, const uint8_t *key, size_t klen, uint64_t id)
{
    if (!kv__tail_room(ctx, 1) || !kv__tail_add(ctx, key, klen, &id, 1, 1, SIZE_MAX))
        return RC_ESTORE; /* cannot be: the tail was sized for every entry */
    return 0;
}

static int ro_build(kv_t *kv, MDB_txn *txn)
{
    size_t entries = 0, records;
    int rc;

    kv__ro_tail_done();
    if ((rc = log_walk(kv, txn, ro_count, &entries, &records)) < 0)
        return rc;
    ro_tail = kv__tail_new(entries);
    ro_txn = txn;
    rc = log_walk(kv, txn, ro_add, ro_tail, &records);
    kv__tail_committed(ro_tail, 1, true); /* (forget what was staged: nothing undoes it) */
    return rc;
}

int kv__cmsg_extra(kv_txn_t *txn, const uint8_t *key, size_t klen, uint64_t **ids, size_t *n)
{
    kv_t *kv = kv__of(txn);
    MDB_txn *mt = kv__txn(txn);
    MDB_cursor *cur = NULL;
    uint64_t *b = NULL, last = 0;
    size_t cap = 0, m = 0, k = 0;
    int rc = 0, mrc;

    *ids = NULL;
    *n = 0;
    if (kv->tail != NULL && kv__reading(txn)) {
        m = kv__tail_ids(kv->tail, key, klen, mdb_txn_id(mt), &b, &cap, 0);
    } else if (kv->tail != NULL) { /* the writer: every commit, and its own appends */
        m = kv__tail_ids(kv->tail, key, klen, UINT64_MAX - 1, &b, &cap, 0);
        m = kv__pend_ids(kv->pend[KV_PEND_CMSGS], key, klen, &b, &cap, m);
    } else if (kv->flags & KV_RDONLY) {
        if (ro_txn != mt && (rc = ro_build(kv, mt)) < 0)
            return rc;
        m = kv__tail_ids(ro_tail, key, klen, UINT64_MAX - 1, &b, &cap, 0);
    }
    if (m == 0)
        return 0;
    qsort(b, m, sizeof(*b), kv__u64_cmp);
    /* unique, and none that cmsgs has: only an id up to its last can be there (drained) */
    if ((rc = kv__rc(mdb_cursor_open(mt, kv->cmsgs, &cur), "cursor cmsgs")) < 0)
        goto out;
    MDB_val kk = {klen, (void *)key}, v;
    mrc = mdb_cursor_get(cur, &kk, &v, MDB_SET);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, &kk, &v, MDB_LAST_DUP);
    if (mrc == MDB_SUCCESS && v.mv_size == 8)
        last = be64_get(v.mv_data);
    else if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        rc = kv__rc(mrc, "mdb_cursor_get cmsgs");
        goto out;
    }
    for (size_t i = 0; i < m; i++) {
        if (k > 0 && b[i] == b[k - 1])
            continue;
        if (b[i] <= last) {
            uint8_t idb[8];
            MDB_val k2 = {klen, (void *)key}, v2 = {8, idb};
            be64_put(idb, b[i]);
            mrc = mdb_cursor_get(cur, &k2, &v2, MDB_GET_BOTH);
            if (mrc == MDB_SUCCESS)
                continue;
            if (mrc != MDB_NOTFOUND) {
                rc = kv__rc(mrc, "mdb_cursor_get cmsgs");
                goto out;
            }
        }
        b[k++] = b[i];
    }
out:
    mdb_cursor_close(cur);
    if (rc < 0 || k == 0) {
        mem_free(b);
        return rc;
    }
    *ids = b;
    *n = k;
    return 0;
}
