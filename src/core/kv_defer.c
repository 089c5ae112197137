/* kv_defer: the timelines and the conversation index (cmsgs) deferred — KV_DEFER, the
 * directory's one cimd.
 *
 * A commit does not put its timeline and cmsgs appends into their databases. It writes
 * them as one record of `cpend` (key: the transaction's id, so every put appends) and adds
 * them to the tail (kv_tail.c), which readers merge; later commits drain the tail in key
 * order, many commits' appends at once, and delete the records whose appends are all in.
 * A crash loses the tail and nothing else: the next open applies what cpend holds before
 * anything is served, a slice of keys a transaction, cpend dropped with the last (a crash
 * during it leaves cpend whole). Putting an id its list has already is no error, so
 * applying a record twice is harmless.
 *
 * A key that already has its chain's bound of entries in the open epoch gets its ids put
 * at once instead: its page is written every commit anyway, and readers walk its chain.
 * Appends to many timelines at once (kv_timeline_fanout: a group's RECALL) are put at once
 * too: a member each, they would cost the log and the tail more than the pages they spare.
 * (A group's messages have no timeline appends: actors/feed.h.)
 *
 * Keys in the tail and the log begin with a byte naming their database (TAG_*), below
 * any byte a stored key begins with (an app id: [A-Za-z0-9._@-]).
 *
 * Record layout (docs/STORAGE.md, cpend), per key: length (u8) ‖ tagged key ‖ count (u16
 * BE) ‖ count ids (u64 BE). Schema 5 wrote per id: length (u8) ‖ cmsgs key ‖ id (u64 BE),
 * told apart by the key's first byte; an older cimd's records are read as such. */
#include <stdlib.h>
#include <string.h>

#include "core/be.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define CHAIN_MAX    16   /* a conversation's entries in the open epoch */
/* A timeline's: at 1,000 busy users one gets ~1,000 an epoch; a busier one's later appends
 * are put at once (a page a commit, each with many of them), and a read walks no more. */
#define TL_CHAIN_MAX 1024
/* Entries an epoch takes before it drains: the larger, the more appends a page of a large
 * conversation index takes at once (a third of them are its, two thirds timelines'). */
#define TAIL_DEFAULT (1536 * 1024)
#define TKEY_MAX     255          /* a tagged key (its length is a byte) */

/* A DIRECT conversation's records, which its first message creates (kv_conv_defer), wait
 * in the tail too: TAG_CONVS under the record's key, and TAG_CONVIX under its user's
 * prefix, for lists. CONVS sorts before CONVIX, so a drain puts a record in before its
 * list entry leaves the tail. */
#define CONVIX_MAX 1024 /* a user's new conversations an epoch lists; more are made at once */

enum { TAG_TIMELINE = 1, TAG_CMSGS = 2, TAG_CONVS = 3, TAG_CONVIX = 4 };

/* @p key under @p tag in @p out. @return its length, 0 when too long for the log. */
static size_t tag_key(uint8_t out[TKEY_MAX], int tag, const uint8_t *key, size_t klen)
{
    if (klen + 1 > TKEY_MAX)
        return 0;
    out[0] = (uint8_t)tag;
    memcpy(out + 1, key, klen);
    return klen + 1;
}

/* ---- the cpend log ------------------------------------------------------------------- */

/* A tagged key's @p n ids (n <= UINT16_MAX) into the commit's record. */
static void log_put(kv_t *kv, const uint8_t *tkey, size_t tklen, const uint64_t *ids, size_t n)
{
    uint8_t len = (uint8_t)tklen, cnt[2] = {(uint8_t)(n >> 8), (uint8_t)n}, idb[8];
    kv__arena_put(&kv->log, &len, 1);
    kv__arena_put(&kv->log, tkey, tklen);
    kv__arena_put(&kv->log, cnt, 2);
    for (size_t i = 0; i < n; i++) {
        be64_put(idb, ids[i]);
        kv__arena_put(&kv->log, idb, 8);
    }
}

/* Call @p cb for every (tagged key, id) of a record. @return 0, RC_ESTORE (malformed) or
 * cb's. */
static int log_each(const uint8_t *p, size_t len,
                    int (*cb)(void *ctx, const uint8_t *tkey, size_t tklen, uint64_t id),
                    void *ctx)
{
    uint8_t old[1 + 255];
    int rc = 0;

    while (len > 0 && rc == 0) {
        size_t klen = p[0], n, step;
        if (klen < 2 || len < 1 + klen)
            return RC_ESTORE;
        if (p[1] >= TAG_TIMELINE && p[1] <= TAG_CONVIX) {
            n = len >= 3 + klen ? (size_t)p[1 + klen] << 8 | p[2 + klen] : 0;
            step = 3 + klen + 8 * n;
            if (n == 0 || len < step)
                return RC_ESTORE;
            for (size_t i = 0; i < n && rc == 0; i++)
                rc = cb(ctx, p + 1, klen, be64_get(p + 3 + klen + 8 * i));
        } else if (p[1] > TAG_CONVIX) { /* schema 5: a cmsgs key and one id */
            step = 1 + klen + 8;
            if (len < step)
                return RC_ESTORE;
            old[0] = TAG_CMSGS;
            memcpy(old + 1, p + 1, klen);
            rc = cb(ctx, old, klen + 1, be64_get(p + 1 + klen));
        } else {
            return RC_ESTORE;
        }
        p += step;
        len -= step;
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

/* A drained (tagged key, id) into its database's drain pend (a list entry: nothing, its
 * record is in). */
static void drain_to(void *ctx, const uint8_t *tkey, size_t tklen, uint64_t id)
{
    kv_t *kv = ctx;
    if (tkey[0] != TAG_CONVIX)
        kv__pend_add(kv->drain[tkey[0] - 1], tkey + 1, tklen - 1, id, false);
}

static int gather(void *ctx, const uint8_t *tkey, size_t tklen, uint64_t id)
{
    drain_to(ctx, tkey, tklen, id);
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

/* Keys a transaction of apply_log takes (CIM_KV_APPLY_SLICE overrides it, for
 * tests). */
#define APPLY_SLICE (64 * 1024)

static size_t apply_slice(void)
{
    const char *e = getenv("CIM_KV_APPLY_SLICE");
    long v = e != NULL ? strtol(e, NULL, 10) : 0;
    return v > 0 ? (size_t)v : APPLY_SLICE;
}

/* Apply every record of cpend to its databases and empty it: in key order (the timelines,
 * then cmsgs, then the new convs records), a slice of keys a transaction, cpend dropped
 * with the last. Slices, not one transaction: each copies the leaves it touches, and the old copies go to the free list,
 * which the next slice's copies reuse (nothing reads at a start or a stop) — one
 * transaction left a copy of every touched leaf there (75,624 pages on 20 M messages) and
 * doubled the map. A crash between slices leaves cpend whole: the next open applies it
 * again, and an id a list already has is no error. @p records: how many there were. */
static int apply_log(kv_t *kv, size_t *records)
{
    kv_txn_t *txn = NULL;
    size_t nkeys[3], slice = apply_slice();
    int rc;

    if ((rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
        return rc;
    if ((rc = log_walk(kv, kv__txn(txn), gather, kv, records)) < 0 || *records == 0)
        goto out;
    for (int d = 0; d < 3; d++)
        nkeys[d] = kv__pend_sort(kv->drain[d]);
    for (int d = 0; d < 3 && rc == 0; d++) {
        size_t from = 0;
        do {
            size_t to = nkeys[d] - from > slice ? from + slice : nkeys[d];
            bool last = d == 2 && to == nkeys[2];
            if (txn == NULL && (rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
                break;
            if ((rc = kv__pend_apply_range(kv->drain[d], kv__txn(txn), from, to)) < 0 ||
                (last &&
                 (rc = kv__rc(mdb_drop(kv__txn(txn), kv->cpend, 0), "mdb_drop cpend")) < 0))
                break;
            if (to > from || last) {
                rc = kv_commit(txn);
                txn = NULL;
            }
            from = to;
        } while (rc == 0 && from < nkeys[d]);
    }
out:
    kv_abort(txn);
    for (int d = 0; d < 3; d++)
        kv__pend_clear(kv->drain[d]);
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

    kv->drain[0] = kv__pend_new(kv->timeline);
    kv->drain[1] = kv__pend_new(kv->cmsgs);
    kv->drain[2] = kv__pend_new_records(kv->recs[KV_DB_CONVS]);
    kv->conv_new = kv__pend_new_records(kv->recs[KV_DB_CONVS]);
    kv->conv_ix = kv__pend_new(0); /* never applied: only read, logged and taken */
    if ((rc = apply_log_all(kv, &records)) < 0) {
        LOG_ERROR("kv: applying the deferred timelines and conversation index failed (%s)",
                  rc_str(rc));
        return rc;
    }
    if (records > 0)
        LOG_INFO("kv: applied %zu deferred timeline and conversation index record(s)", records);
    kv->tail = kv__tail_new(tail_limit());
    return 0;
}

void kv__defer_close(kv_t *kv)
{
    size_t records;
    int rc;

    /* A clean stop leaves everything in its database (a crash: the next open does it). The
     * tail goes first: all of it is in cpend, nothing reads any more, and apply_log's
     * commits must not drain it into kv->drain, which holds the log being applied. */
    bool deferred = kv->tail != NULL;
    kv__tail_free(kv->tail);
    kv->tail = NULL;
    if (deferred && (rc = apply_log_all(kv, &records)) < 0)
        LOG_WARN("kv: the deferred timelines and conversation index stay for the next start "
                 "(%s)", rc_str(rc));
    for (int d = 0; d < 3; d++) {
        kv__pend_free(kv->drain[d]);
        kv->drain[d] = NULL;
    }
    kv__pend_free(kv->conv_new);
    kv__pend_free(kv->conv_ix);
    kv->conv_new = kv->conv_ix = NULL;
    mem_free(kv->log.p);
    kv->log = (kv_arena_t){0};
}

/* ---- commit -------------------------------------------------------------------------- */

typedef struct defer_ctx {
    kv_t *kv;
    uint64_t txn;
    size_t staged;
    int tag;     /* of the pend being detached */
    size_t max;  /* its chains' bound */
    bool refuse; /* take nothing (kv_conv_defer's records, when their lists cannot wait) */
} defer_ctx_t;

/* kv__pend_detach: take a key's ids into the tail (and the log), or leave them to be put
 * now (a busy key; an epoch without room). */
static bool to_tail(void *ctx, const uint8_t *key, size_t klen, const uint64_t *ids, size_t n)
{
    defer_ctx_t *d = ctx;
    uint8_t tk[TKEY_MAX];
    size_t tklen = tag_key(tk, d->tag, key, klen);

    if (d->refuse || tklen == 0 || n > UINT16_MAX || !kv__tail_room(d->kv->tail, n))
        return false;
    if (!kv__tail_add(d->kv->tail, tk, tklen, ids, n, d->txn, d->max)) {
        /* at its bound: what the tail holds of it goes in now, before these (the drain
         * would put it below them later, into the middle of full pages, and split them) */
        kv__tail_take_key(d->kv->tail, tk, tklen, d->txn, drain_to, d->kv);
        return false;
    }
    log_put(d->kv, tk, tklen, ids, n);
    d->staged += n;
    return true;
}

int kv__defer_commit(kv_txn_t *txn)
{
    kv_t *kv = kv__of(txn);
    MDB_txn *mt = kv__txn(txn);
    defer_ctx_t d = {kv, mdb_txn_id(mt), 0, TAG_TIMELINE, TL_CHAIN_MAX, false};
    uint64_t upto = 0;
    uint8_t key[8];
    int rc;

    if ((rc = kv__ids_sync(txn, kv->cevents)) < 0 ||
        (rc = kv__pend_apply(kv->pend[KV_PEND_FANOUT], mt)) < 0)
        return rc;
    kv->log.len = 0;
    kv__pend_detach(kv->pend[KV_PEND_TIMELINE], to_tail, &d);
    d.tag = TAG_CMSGS;
    d.max = CHAIN_MAX;
    kv__pend_detach(kv->pend[KV_PEND_CMSGS], to_tail, &d);
    /* New conversations' records wait with their lists, or are made now with them: the
     * lists go first, and if one stays (no room), every record is made now. */
    d.tag = TAG_CONVIX;
    d.max = SIZE_MAX; /* (bounded by kv_conv_defer) */
    d.refuse = kv__pend_detach(kv->conv_ix, to_tail, &d) > 0;
    d.tag = TAG_CONVS;
    kv__pend_detach(kv->conv_new, to_tail, &d);
    if ((rc = kv__pend_apply(kv->conv_new, mt)) < 0)
        return rc;
    /* a busy key's older ids (to_tail) first, then what stays of this commit's */
    if ((rc = kv__pend_apply(kv->drain[0], mt)) < 0 || (rc = kv__pend_apply(kv->drain[1], mt)) < 0 ||
        (rc = kv__pend_apply(kv->pend[KV_PEND_TIMELINE], mt)) < 0 ||
        (rc = kv__pend_apply(kv->pend[KV_PEND_CMSGS], mt)) < 0)
        return rc;
    if (kv->log.len > 0) {
        MDB_val k = {8, key}, v = {kv->log.len, kv->log.p};
        be64_put(key, d.txn);
        if ((rc = kv__rc(mdb_put(mt, kv->cpend, &k, &v, MDB_APPEND), "mdb_put cpend")) < 0)
            return rc;
    }
    if ((rc = kv__tail_drain(kv->tail, d.txn, d.staged, drain_to, kv, &upto)) < 0 ||
        (rc = kv__pend_apply(kv->drain[0], mt)) < 0 || (rc = kv__pend_apply(kv->drain[1], mt)) < 0 ||
        (rc = kv__pend_apply(kv->drain[2], mt)) < 0)
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

static int ro_add(void *ctx, const uint8_t *tkey, size_t tklen, uint64_t id)
{
    if (!kv__tail_room(ctx, 1) || !kv__tail_add(ctx, tkey, tklen, &id, 1, 1, SIZE_MAX))
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
    ro_tail = kv__tail_new(2 * entries); /* (a table for as many keys as entries) */
    ro_txn = txn;
    rc = log_walk(kv, txn, ro_add, ro_tail, &records);
    kv__tail_committed(ro_tail, 1, true); /* (forget what was staged: nothing undoes it) */
    return rc;
}

bool kv__deferred_has(kv_t *kv, MDB_dbi dbi, const uint8_t *key, size_t klen)
{
    uint8_t tk[TKEY_MAX];
    size_t tklen = tag_key(tk, dbi == kv->timeline ? TAG_TIMELINE : TAG_CMSGS, key, klen);
    return tklen > 0 && kv__tail_has(kv->tail, tk, tklen);
}

/* The ids of @p key under @p tag that @p txn sees outside the databases, unsorted, into
 * @p *b (NULL, or a block the caller frees): a reader's, the tail at its snapshot; the
 * writer's, all of the tail and its own gathered ones (@p own); a read-only open's, the
 * tail it builds from cpend (which may hold some that are in the databases already). */
static int tail_ids(kv_txn_t *txn, int tag, kv_pend_t *own, const uint8_t *key, size_t klen,
                    uint64_t **b, size_t *m)
{
    kv_t *kv = kv__of(txn);
    MDB_txn *mt = kv__txn(txn);
    uint8_t tk[TKEY_MAX];
    size_t cap = 0, tklen = tag_key(tk, tag, key, klen);
    int rc;

    *b = NULL;
    *m = 0;
    if (tklen == 0) /* too long for the log: never in a tail */
        return 0;
    if (kv->tail != NULL && kv__reading(txn)) {
        *m = kv__tail_ids(kv->tail, tk, tklen, mdb_txn_id(mt), b, &cap, 0);
    } else if (kv->tail != NULL) { /* the writer: every commit, and its own appends */
        *m = kv__tail_ids(kv->tail, tk, tklen, UINT64_MAX - 1, b, &cap, 0);
        *m = kv__pend_ids(own, key, klen, b, &cap, *m);
    } else if (kv->flags & KV_RDONLY) {
        if (ro_txn != mt && (rc = ro_build(kv, mt)) < 0)
            return rc;
        *m = kv__tail_ids(ro_tail, tk, tklen, UINT64_MAX - 1, b, &cap, 0);
    }
    return 0;
}

int kv__ids_extra(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t **ids,
                  size_t *n)
{
    kv_t *kv = kv__of(txn);
    MDB_txn *mt = kv__txn(txn);
    MDB_cursor *cur = NULL;
    uint64_t *b = NULL;
    bool tl = dbi == kv->timeline;
    size_t m = 0, k = 0;
    int rc, mrc;

    *ids = NULL;
    *n = 0;
    if ((rc = tail_ids(txn, tl ? TAG_TIMELINE : TAG_CMSGS,
                       kv->pend[tl ? KV_PEND_TIMELINE : KV_PEND_CMSGS], key, klen, &b, &m)) < 0 ||
        m == 0)
        return rc;
    /* Chains are newest first, epochs too: nearly always descending, so reversed at once */
    size_t d = 1;
    while (d < m && b[d] < b[d - 1])
        d++;
    if (d == m)
        for (size_t i = 0; i < m / 2; i++) {
            uint64_t x = b[i];
            b[i] = b[m - 1 - i];
            b[m - 1 - i] = x;
        }
    else
        qsort(b, m, sizeof(*b), kv__u64_cmp);
    /* Unique, and none that the database has (a read-only open's tail from cpend holds
     * what was drained already; the live tail never does, but the check is cheap). One
     * walk: the database's first id at or after the next candidate, by a jump, so a
     * database whose ids all lie above the candidates (a busy key's, put at once) costs
     * one lookup, not one a candidate. */
    if ((rc = kv__rc(mdb_cursor_open(mt, dbi, &cur), "cursor ids")) < 0)
        goto out;
    uint64_t have = 0; /* the database's first id at or after b[i]; UINT64_MAX: none */
    for (size_t i = 0; i < m; i++) {
        if (k > 0 && b[i] == b[k - 1])
            continue;
        if (have < b[i]) {
            uint8_t idb[8];
            MDB_val kk = {klen, (void *)key}, v = {8, idb};
            be64_put(idb, b[i]);
            mrc = mdb_cursor_get(cur, &kk, &v, MDB_GET_BOTH_RANGE);
            if (mrc == MDB_NOTFOUND) {
                have = UINT64_MAX;
            } else if (mrc != MDB_SUCCESS || v.mv_size != 8) {
                rc = mrc != MDB_SUCCESS ? kv__rc(mrc, "mdb_cursor_get ids") : RC_ESTORE;
                goto out;
            } else {
                have = be64_get(v.mv_data);
            }
        }
        if (b[i] != have)
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

/* ---- new conversations' records ------------------------------------------------------ */

int kv_conv_defer(kv_txn_t *txn, const uint8_t *key, size_t klen, size_t plen, uint64_t first)
{
    kv_t *kv = kv__of(txn);
    uint8_t rk[TKEY_MAX], ik[TKEY_MAX];

    if (klen == 0 || klen > KV_LMDB_KEY_MAX || plen == 0 || plen >= klen || kv__reading(txn))
        return RC_EINVAL;
    /* Made now: without a tail (a tool), a key too long for the log, or a user whose list
     * in the open epoch is full (reads of it walk no more). */
    size_t rlen = tag_key(rk, TAG_CONVS, key, klen), ilen = tag_key(ik, TAG_CONVIX, key, plen);
    if (kv->tail == NULL || rlen == 0 || ilen == 0 ||
        kv__tail_count(kv->tail, ik, ilen) + kv__pend_count(kv->conv_ix, key, plen) >=
            CONVIX_MAX) {
        static const uint8_t none = 0;
        MDB_val k = {klen, (void *)key}, v = {0, (void *)&none};
        int mrc = mdb_put(kv__txn(txn), kv->recs[KV_DB_CONVS], &k, &v, MDB_NOOVERWRITE);
        return mrc == MDB_SUCCESS || mrc == MDB_KEYEXIST ? 0 : kv__rc(mrc, "mdb_put record");
    }
    kv__pend_add(kv->conv_new, key, klen, first, false);
    kv__pend_add(kv->conv_ix, key, plen, first, false);
    return 0;
}

int kv_conv_pending(kv_txn_t *txn, const uint8_t *key, size_t klen)
{
    uint64_t *b = NULL;
    size_t m = 0;
    int rc = tail_ids(txn, TAG_CONVS, kv__of(txn)->conv_new, key, klen, &b, &m);
    mem_free(b);
    return rc < 0 ? rc : m > 0;
}

int kv_conv_pending_ids(kv_txn_t *txn, const uint8_t *prefix, size_t plen, uint64_t **ids,
                        size_t *n)
{
    size_t k = 0;
    int rc = tail_ids(txn, TAG_CONVIX, kv__of(txn)->conv_ix, prefix, plen, ids, n);

    if (rc < 0 || *n == 0) {
        mem_free(*ids);
        *ids = NULL;
        *n = 0;
        return rc;
    }
    qsort(*ids, *n, sizeof(**ids), kv__u64_cmp);
    for (size_t i = 0; i < *n; i++)
        if (k == 0 || (*ids)[i] != (*ids)[k - 1])
            (*ids)[k++] = (*ids)[i];
    *n = k;
    return 0;
}
