/* kv_chunk: the message records (msgs), several to an entry. Layout reference:
 * docs/STORAGE.md, "msgs".
 *
 * An entry of msgs is keyed by the first id it holds, and is one of:
 *  - a chunk: a 0 byte, then each record as varint(its id − the previous record's id; 0
 *    for the first, whose id is the key) ‖ varint(its length) ‖ its bytes, ids
 *    increasing. At most kv->chunk_max bytes, so that two share a page of the tree, unless
 *    it is one record too big for that (then on overflow pages, as a big record was);
 *  - one record as it is, as every schema before 5 stored them. A record is a protobuf
 *    encoding, whose first byte is a field tag, never 0.
 * The entries' ids never interleave: an entry holds ids from its key to below the next
 * key. So a record is found from its id with one descent (the entry at or before it) and
 * a walk of at most one chunk.
 *
 * Why: a record of its own costs LMDB 18 bytes (an 8-byte key, an 8-byte node head and a
 * 2-byte slot), 13 % of a 100-byte message's record; in a chunk, 3 to 7 (its two varints
 * and its share of the chunk's). New records extend the last chunk while it has room:
 * the writer rewrites one node of the last page, which its append dirtied anyway. */
#include <string.h>

#include "core/be.h"
#include "core/kv.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

#define CHUNK_TAG 0x00
#define VARINT_MAX 10

typedef struct {
    uint64_t id;
    const uint8_t *p;
    size_t len;
} mrec_t;

size_t kv__chunk_max(size_t psize)
{
    /* LMDB keeps a value in its leaf while NODESIZE (8) + key + value fits the largest
     * node, ((psize - PAGEHDRSZ (16)) / 2, even) - 2 (its slot); two such fill a page. */
    size_t nodemax = (((psize - 16) / 2) & ~(size_t)1) - 2;
    return nodemax - 8 - 8;
}

static size_t varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static bool varint_get(const uint8_t *p, size_t end, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *pos < end && shift < 64; shift += 7) {
        uint8_t b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool is_chunk(const MDB_val *v)
{
    return v->mv_size > 0 && ((const uint8_t *)v->mv_data)[0] == CHUNK_TAG;
}

/* The next record of a chunk: @p pos starts at 1 and @p id at the entry's key; the first
 * record's delta is 0. @return 1 with a record, 0 at the end, RC_ESTORE if malformed. */
static int chunk_next(const MDB_val *v, size_t *pos, uint64_t *id, const uint8_t **p,
                      size_t *len)
{
    const uint8_t *b = v->mv_data;
    uint64_t delta, l;
    bool first = *pos == 1;
    if (*pos >= v->mv_size)
        return 0;
    /* the first record's delta is 0 (its id is the key), every other's positive */
    if (!varint_get(b, v->mv_size, pos, &delta) || !varint_get(b, v->mv_size, pos, &l) ||
        l > v->mv_size - *pos || (delta == 0) != first) {
        LOG_ERROR("kv: malformed msgs chunk (%zu bytes)", v->mv_size);
        return RC_ESTORE;
    }
    *id += delta;
    *p = b + *pos;
    *len = (size_t)l;
    *pos += (size_t)l;
    return 1;
}

/* Call @p cb for each record of the entry (@p k, @p v) with an id >= @p from. */
static int entry_each(const MDB_val *k, const MDB_val *v, uint64_t from,
                      int (*cb)(void *ctx, uint64_t id, const uint8_t *rec, size_t len),
                      void *ctx)
{
    uint64_t id = be64_get(k->mv_data);
    const uint8_t *p;
    size_t pos = 1, len;
    int r;

    if (!is_chunk(v))
        return id >= from ? cb(ctx, id, v->mv_data, v->mv_size) : 0;
    while ((r = chunk_next(v, &pos, &id, &p, &len)) == 1)
        if (id >= from && (r = cb(ctx, id, p, len)) != 0)
            return r;
    return r;
}

/* ---- finding an entry ------------------------------------------------------------- */

static int open_cursor(kv_txn_t *txn, MDB_cursor **cur)
{
    return kv__rc(mdb_cursor_open(kv__txn(txn), kv__of(txn)->msgs, cur), "cursor msgs");
}

/* Put @p cur on the entry that would hold @p id: the last with a key <= @p id.
 * @return 0, RC_ENOTFOUND (none), or rc. */
static int seek(MDB_cursor *cur, uint64_t id, MDB_val *k, MDB_val *v)
{
    uint8_t key[8];
    int mrc;

    be64_put(key, id);
    k->mv_size = 8;
    k->mv_data = key;
    mrc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (mrc == MDB_SUCCESS && k->mv_size == 8 && be64_get(k->mv_data) == id)
        return 0;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, k, v, MDB_PREV);
    else if (mrc == MDB_NOTFOUND)
        mrc = mdb_cursor_get(cur, k, v, MDB_LAST);
    if (mrc == MDB_SUCCESS && k->mv_size != 8)
        return RC_ENOTFOUND;
    return kv__rc(mrc, "mdb_cursor_get msgs");
}

typedef struct {
    uint64_t id;
    const uint8_t *p;
    size_t len;
    bool found;
} find_t;

static int find_cb(void *ctx, uint64_t id, const uint8_t *rec, size_t len)
{
    find_t *f = ctx;
    if (id > f->id)
        return 1;
    if (id == f->id) {
        f->p = rec;
        f->len = len;
        f->found = true;
        return 1;
    }
    return 0;
}

/* ---- writing entries -------------------------------------------------------------- */

/* Put records (ids increasing, between stored entries) as chunks, each as full as it goes
 * (a record too big for one has one of its own, on overflow pages). */
static int pack(kv_txn_t *txn, const mrec_t *r, size_t n)
{
    kv_t *kv = kv__of(txn);
    size_t cap = kv->chunk_max, used = 0;
    uint64_t first = 0, prev = 0;
    uint8_t *buf, key[8];
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        if (1 + VARINT_MAX + VARINT_MAX + r[i].len > cap)
            cap = 1 + VARINT_MAX + VARINT_MAX + r[i].len;
    buf = mem_alloc(cap);
    for (size_t i = 0; i <= n && rc == 0; i++) {
        size_t need = i < n ? varint_len(r[i].id - prev) + varint_len(r[i].len) + r[i].len : 0;
        if (used > 0 && (i == n || used + need > kv->chunk_max)) {
            MDB_val k = {8, key}, v = {used, buf};
            be64_put(key, first);
            rc = kv__rc(mdb_put(kv__txn(txn), kv->msgs, &k, &v, 0), "mdb_put msgs");
            used = 0;
        }
        if (i == n || rc < 0)
            break;
        if (used == 0) {
            buf[used++] = CHUNK_TAG;
            first = prev = r[i].id;
        }
        used += varint_put(buf + used, r[i].id - prev);
        used += varint_put(buf + used, r[i].len);
        memcpy(buf + used, r[i].p, r[i].len);
        used += r[i].len;
        prev = r[i].id;
    }
    mem_free(buf);
    return rc;
}

enum edit { EDIT_INSERT, EDIT_REPLACE, EDIT_DELETE, EDIT_BELOW };

/* Rewrite the entry @p cur stands on (a chunk, @p k / @p v) with one edit: insert (@p id
 * not in it), replace or delete the record @p id, or (EDIT_BELOW) drop the records below
 * @p id, at most *@p n_out of them. @p n_out: the records dropped.
 * @return 0, RC_ENOTFOUND / RC_EEXIST, or rc. */
static int rewrite(kv_txn_t *txn, MDB_cursor *cur, const MDB_val *k, const MDB_val *v,
                   enum edit e, uint64_t id, const uint8_t *rec, size_t len, size_t *n_out)
{
    size_t most = e == EDIT_BELOW ? *n_out : 0;
    /* a copy: the records must outlive the entry's deletion */
    MDB_val cv = {v->mv_size, mem_alloc(v->mv_size ? v->mv_size : 1)};
    mrec_t *r = mem_alloc((v->mv_size / 2 + 2) * sizeof(*r));
    uint64_t at = be64_get(k->mv_data);
    size_t pos = 1, n = 0, dropped = 0;
    bool hit = false;
    int rc;

    memcpy(cv.mv_data, v->mv_data, v->mv_size);
    for (;;) {
        mrec_t x;
        if ((rc = chunk_next(&cv, &pos, &at, &x.p, &x.len)) <= 0)
            break;
        x.id = at;
        if (e == EDIT_INSERT && !hit && id < x.id) {
            r[n++] = (mrec_t){id, rec, len};
            hit = true;
        }
        if (x.id == id && e != EDIT_BELOW) {
            hit = true;
            if (e == EDIT_INSERT) {
                rc = RC_EEXIST;
                break;
            }
            if (e == EDIT_REPLACE)
                r[n++] = (mrec_t){id, rec, len};
            else
                dropped++;
            continue;
        }
        if (e == EDIT_BELOW && x.id < id && dropped < most) {
            dropped++;
            continue;
        }
        r[n++] = x;
    }
    if (rc == 0 && e == EDIT_INSERT && !hit)
        r[n++] = (mrec_t){id, rec, len}, hit = true;
    if (rc == 0 && !hit && e != EDIT_BELOW)
        rc = RC_ENOTFOUND;
    if (rc == 0 && (e != EDIT_BELOW || dropped > 0)) {
        rc = kv__rc(mdb_cursor_del(cur, 0), "mdb_cursor_del msgs");
        if (rc == 0)
            rc = pack(txn, r, n);
    }
    if (n_out != NULL)
        *n_out = dropped;
    mem_free(r);
    mem_free(cv.mv_data);
    return rc;
}

/* ---- the open chunk: records of the write transaction not put yet ------------------
 *
 * The writer gathers new records (ids above every stored one) in kv->mbuf, as the chunk
 * they will be, and puts it when it is full, when the transaction commits, or before
 * anything else touches msgs in the transaction (a read of one record, or the last id,
 * looks in the buffer instead). A full chunk is one MDB_APPEND: a message costs a copy,
 * not a put. The first record of a transaction continues the last stored chunk while it
 * has room: the buffer starts as a copy of it (mbuf.grows: its key) and replaces it. */

static size_t leaf_pages(kv_txn_t *txn)
{
    MDB_stat st;
    return mdb_stat(kv__txn(txn), kv__of(txn)->msgs, &st) == MDB_SUCCESS ? st.ms_leaf_pages : 0;
}

/* How the buffer replaces the chunk it grew from decides how full pages stay:
 *  - replaced in place (MDB_CURRENT), a last node that no longer fits its page makes LMDB
 *    split the page, and the split moves the page's other last node along with it: a page
 *    of two chunks ends with one;
 *  - deleted and appended again (MDB_APPEND), it goes to a new page of its own when it no
 *    longer fits, and the others stay. But deleting a node alone on its page makes LMDB
 *    rebalance, and that moves a node over from the page before: the same loss.
 * So a chunk alone on its page grows in place, any other is deleted and appended; whether
 * the last one is alone is known from the leaf page count when it was appended
 * (kv->msgs_alone: its key, 0 when not known). That decides how full pages are, never
 * what they hold. */
static int put_buf(kv_txn_t *txn)
{
    kv_t *kv = kv__of(txn);
    kv_chunkbuf_t *mb = &kv->mbuf;
    uint8_t kb[8];
    MDB_val k = {8, kb}, v = {mb->len, mb->b};
    MDB_cursor *cur = NULL;
    size_t before;
    int rc = 0;

    be64_put(kb, mb->first);
    if (mb->grows != 0) {
        MDB_val lk, lv;
        if ((rc = open_cursor(txn, &cur)) < 0)
            return rc;
        if ((rc = kv__rc(mdb_cursor_get(cur, &lk, &lv, MDB_LAST), "mdb_cursor_get msgs")) == 0 &&
            (lk.mv_size != 8 || be64_get(lk.mv_data) != mb->grows))
            rc = RC_ESTORE; /* the writer's own last entry moved: never expected */
        if (rc == 0 && kv->msgs_alone == mb->grows)
            rc = kv__rc(mdb_cursor_put(cur, &k, &v, MDB_CURRENT), "mdb_cursor_put msgs");
        else if (rc == 0)
            rc = kv__rc(mdb_cursor_del(cur, 0), "mdb_cursor_del msgs");
        mdb_cursor_close(cur);
        if (rc < 0 || kv->msgs_alone == mb->grows)
            return rc;
    }
    before = leaf_pages(txn);
    rc = kv__rc(mdb_put(kv__txn(txn), kv->msgs, &k, &v, MDB_APPEND), "mdb_put msgs");
    kv->msgs_alone = rc == 0 && leaf_pages(txn) > before ? mb->first : 0;
    return rc;
}

/* Put the open chunk, if any. @return 0 or rc (the buffer is emptied either way: a failed
 * put fails the transaction). */
int kv__msgs_flush(kv_txn_t *txn)
{
    kv_chunkbuf_t *mb;
    int rc;
    if (kv__reading(txn))
        return 0; /* nothing of this thread's: the buffer is the writer's */
    mb = &kv__of(txn)->mbuf;
    if (mb->len == 0)
        return 0;
    rc = put_buf(txn);
    mb->len = 0;
    mb->grows = 0;
    return rc;
}

void kv__msgs_forget(kv_t *kv)
{
    kv->mbuf.len = 0;
    kv->mbuf.grows = 0;
    kv->msgs_alone = 0; /* what it said may be undone */
}

static void buf_room(kv_chunkbuf_t *mb, size_t need)
{
    if (need > mb->cap) {
        mb->cap = need;
        mb->b = mem_realloc(mb->b, mb->cap);
    }
}

/* Start the open chunk with @p rec (@p grows 0), or with the stored chunk @p from
 * (@p grows its key, @p last its last id) and then @p rec. */
static void buf_start(kv_t *kv, uint64_t grows, const MDB_val *from, uint64_t last, uint64_t id,
                      const uint8_t *rec, size_t len)
{
    kv_chunkbuf_t *mb = &kv->mbuf;
    buf_room(mb, kv->chunk_max > len + 1 + 2 * VARINT_MAX ? kv->chunk_max
                                                          : len + 1 + 2 * VARINT_MAX);
    if (grows != 0) {
        memcpy(mb->b, from->mv_data, from->mv_size);
        mb->len = from->mv_size;
        mb->first = grows;
        mb->last = last;
    } else {
        mb->b[0] = CHUNK_TAG;
        mb->len = 1;
        mb->first = mb->last = id;
    }
    mb->grows = grows;
    mb->len += varint_put(mb->b + mb->len, id - mb->last);
    mb->len += varint_put(mb->b + mb->len, len);
    memcpy(mb->b + mb->len, rec, len);
    mb->len += len;
    mb->last = id;
}

static size_t rec_size(uint64_t delta, size_t len)
{
    return varint_len(delta) + varint_len(len) + len;
}

/* ---- the API (kv.h) --------------------------------------------------------------- */

/* entry_each: the entry's last id into *ctx */
static int last_cb(void *ctx, uint64_t id, const uint8_t *rec, size_t len)
{
    (void)rec, (void)len;
    *(uint64_t *)ctx = id;
    return 0;
}

int kv_msg_put(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len)
{
    kv_t *kv = kv__of(txn);
    kv_chunkbuf_t *mb = &kv->mbuf;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    mrec_t one = {id, rec, len};
    int rc, mrc;

    if (kv__reading(txn))
        return RC_EINVAL;
    if (mb->len > 0 && id > mb->last) {
        /* Ids come in increasing order from one generator: the record joins the open chunk
         * while it has room, or starts the next. */
        if (mb->len + rec_size(id - mb->last, len) <= kv->chunk_max) {
            mb->len += varint_put(mb->b + mb->len, id - mb->last);
            mb->len += varint_put(mb->b + mb->len, len);
            memcpy(mb->b + mb->len, rec, len);
            mb->len += len;
            mb->last = id;
            return 0;
        }
        if ((rc = kv__msgs_flush(txn)) < 0)
            return rc;
        buf_start(kv, 0, NULL, 0, id, rec, len);
        return 0;
    }
    if ((rc = kv__msgs_flush(txn)) < 0 || (rc = open_cursor(txn, &cur)) < 0)
        return rc;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && k.mv_size == 8 &&
                                be64_get(k.mv_data) < id && !is_chunk(&v))) {
        buf_start(kv, 0, NULL, 0, id, rec, len); /* the first, or after an older record */
        goto out;
    }
    if ((rc = kv__rc(mrc, "mdb_cursor_get msgs")) < 0)
        goto out;
    if (k.mv_size == 8 && be64_get(k.mv_data) < id) {
        uint64_t last = 0;
        if ((rc = entry_each(&k, &v, 0, last_cb, &last)) < 0)
            goto out;
        if (last < id) { /* after every stored id: continue the last chunk, or the next */
            if (v.mv_size + rec_size(id - last, len) <= kv->chunk_max)
                buf_start(kv, be64_get(k.mv_data), &v, last, id, rec, len);
            else
                buf_start(kv, 0, NULL, 0, id, rec, len);
            goto out;
        }
    }
    /* Below the last id (a cluster's late message): into the entry whose range holds it,
     * or an entry of its own between two. */
    kv->msgs_alone = 0; /* pages change: not known any more */
    if ((rc = seek(cur, id, &k, &v)) == RC_ENOTFOUND) {
        rc = pack(txn, &one, 1);
    } else if (rc == 0) {
        if (be64_get(k.mv_data) == id)
            rc = RC_EEXIST;
        else if (is_chunk(&v))
            rc = rewrite(txn, cur, &k, &v, EDIT_INSERT, id, rec, len, NULL);
        else
            rc = pack(txn, &one, 1);
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

/* This thread's read txn's msgs cursor, opened by its first kv_msg_get. */
static _Thread_local MDB_cursor *read_cur;

/* Find the record @p id: the entry @p cur is put on (@p k, @p v) and the record in it. */
static int locate(MDB_cursor *cur, uint64_t id, MDB_val *k, MDB_val *v, find_t *f)
{
    int rc;
    f->id = id;
    f->found = false;
    if ((rc = seek(cur, id, k, v)) < 0)
        return rc;
    if ((rc = entry_each(k, v, id, find_cb, f)) < 0)
        return rc;
    return f->found ? 0 : RC_ENOTFOUND;
}

int kv_msg_get(kv_txn_t *txn, uint64_t id, const uint8_t **rec, size_t *len)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    find_t f;
    int rc;

    if (!kv__reading(txn) && kv__of(txn)->mbuf.len > 0 && id >= kv__of(txn)->mbuf.first) {
        /* the writer's own records not put yet (the buffer is not moved before the next
         * put, as LMDB's pages are not) */
        kv_chunkbuf_t *mb = &kv__of(txn)->mbuf;
        uint8_t kb[8];
        be64_put(kb, mb->first);
        k = (MDB_val){8, kb};
        v = (MDB_val){mb->len, mb->b};
        f = (find_t){.id = id};
        if ((rc = entry_each(&k, &v, id, find_cb, &f)) < 0)
            return rc;
        if (!f.found)
            return RC_ENOTFOUND;
        *rec = f.p;
        *len = f.len;
        return 0;
    }
    /* A reader's page (SYNC, HISTORY) gets record after record: one cursor for its read
     * txn, not an allocation each (kv__msgs_read_done closes it with the txn). */
    if (kv__reading(txn)) {
        if (read_cur == NULL && (rc = open_cursor(txn, &read_cur)) < 0)
            return rc;
        cur = read_cur;
    } else if ((rc = open_cursor(txn, &cur)) < 0) {
        return rc;
    }
    if ((rc = locate(cur, id, &k, &v, &f)) == 0) {
        *rec = f.p;
        *len = f.len;
    }
    if (cur != read_cur)
        mdb_cursor_close(cur);
    return rc;
}

void kv__msgs_read_done(void)
{
    mdb_cursor_close(read_cur); /* (LMDB: NULL is no cursor) */
    read_cur = NULL;
}

/* Replace (EDIT_REPLACE) or delete (EDIT_DELETE) the stored record @p id.
 * @return 0, RC_ENOTFOUND, or rc. */
static int edit_one(kv_txn_t *txn, enum edit e, uint64_t id, const uint8_t *rec, size_t len)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    find_t f;
    int rc;

    if ((rc = kv__msgs_flush(txn)) < 0)
        return rc;
    kv__of(txn)->msgs_alone = 0; /* pages change: not known any more */
    if ((rc = open_cursor(txn, &cur)) < 0)
        return rc;
    if ((rc = locate(cur, id, &k, &v, &f)) == 0) {
        if (is_chunk(&v)) {
            rc = rewrite(txn, cur, &k, &v, e, id, rec, len, NULL);
        } else if ((rc = kv__rc(mdb_cursor_del(cur, 0), "mdb_cursor_del msg")) == 0 &&
                   e == EDIT_REPLACE) {
            mrec_t one = {id, rec, len}; /* an older schema's record: now in a chunk */
            rc = pack(txn, &one, 1);
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

int kv_msg_replace(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len)
{
    return edit_one(txn, EDIT_REPLACE, id, rec, len);
}

int kv_msg_del(kv_txn_t *txn, uint64_t id)
{
    int rc = edit_one(txn, EDIT_DELETE, id, NULL, 0);
    return rc == RC_ENOTFOUND ? 0 : rc;
}

int kv_msg_scan(kv_txn_t *txn, uint64_t from,
                int (*cb)(void *ctx, uint64_t id, const uint8_t *rec, size_t len), void *ctx)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;

    if ((rc = kv__msgs_flush(txn)) < 0)
        return rc;
    if ((rc = open_cursor(txn, &cur)) < 0)
        return rc;
    /* from the entry that would hold @p from (or the first) */
    if ((rc = seek(cur, from, &k, &v)) == RC_ENOTFOUND)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    else if (rc < 0)
        goto out;
    else
        mrc = MDB_SUCCESS;
    rc = 0;
    for (; mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue;
        if ((rc = entry_each(&k, &v, from, cb, ctx)) != 0)
            break;
    }
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = kv__rc(mrc, "mdb_cursor_get msgs");
out:
    mdb_cursor_close(cur);
    return rc;
}

/* The first (MDB_FIRST) or last (MDB_LAST) id stored, 0 if none. */
static int end_id(kv_txn_t *txn, MDB_cursor_op op, uint64_t *out)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;

    if (op == MDB_LAST && !kv__reading(txn) && kv__of(txn)->mbuf.len > 0) {
        *out = kv__of(txn)->mbuf.last;
        return 0;
    }
    if ((rc = kv__msgs_flush(txn)) < 0)
        return rc;
    *out = 0;
    if ((rc = open_cursor(txn, &cur)) < 0)
        return rc;
    mrc = mdb_cursor_get(cur, &k, &v, op);
    if (mrc != MDB_NOTFOUND && (rc = kv__rc(mrc, "mdb_cursor_get msgs")) == 0 &&
        k.mv_size == 8) {
        if (op == MDB_FIRST)
            *out = be64_get(k.mv_data);
        else
            rc = entry_each(&k, &v, 0, last_cb, out);
    }
    mdb_cursor_close(cur);
    return rc;
}

int kv_msg_last_id(kv_txn_t *txn, uint64_t *out)
{
    return end_id(txn, MDB_LAST, out);
}

int kv_msg_first_id(kv_txn_t *txn, uint64_t *out)
{
    return end_id(txn, MDB_FIRST, out);
}

static int count_cb(void *ctx, uint64_t id, const uint8_t *rec, size_t len)
{
    (void)id, (void)rec, (void)len;
    (*(uint64_t *)ctx)++;
    return 0;
}

int kv_msg_count(kv_txn_t *txn, uint64_t *out)
{
    *out = 0;
    return kv_msg_scan(txn, 0, count_cb, out);
}

int kv__msgs_retire(kv_txn_t *txn, uint64_t cutoff, size_t *budget, size_t *removed,
                    bool *done)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = 0, mrc;

    if ((rc = kv__msgs_flush(txn)) < 0)
        return rc;
    kv__of(txn)->msgs_alone = 0; /* pages change: not known any more */
    *done = false;
    if ((rc = open_cursor(txn, &cur)) < 0)
        return rc;
    while (*budget > 0) {
        uint64_t n = 0;
        size_t dropped = *budget;
        bool chunk;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && (k.mv_size != 8 ||
                                                           be64_get(k.mv_data) >= cutoff))) {
            *done = true;
            break;
        }
        if ((rc = kv__rc(mrc, "retention msgs")) < 0 ||
            (rc = entry_each(&k, &v, 0, count_cb, &n)) < 0)
            break;
        /* the entry below the cutoff goes whole, or loses its front (it straddles the cutoff,
         * or holds more than the budget) */
        chunk = is_chunk(&v);
        rc = chunk ? rewrite(txn, cur, &k, &v, EDIT_BELOW, cutoff, NULL, 0, &dropped)
                   : kv__rc(mdb_cursor_del(cur, 0), "mdb_cursor_del msg");
        if (rc < 0)
            break;
        if (!chunk)
            dropped = (size_t)n;
        *removed += dropped;
        *budget -= dropped < *budget ? dropped : *budget;
    }
    mdb_cursor_close(cur);
    return rc;
}
