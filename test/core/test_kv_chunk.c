/* Tests for src/core/kv_chunk.c: message records several to an entry of msgs, beside the
 * one-record entries older schemas wrote, against the real LMDB and a model. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "core/be.h"
#include "core/kv.h"
#include "core/kv_int.h" /* the raw entries: their layout and sizes */
#include "support/test.h"
#include "support/tmpdir.h"

#define IDS 3000
#define BIG 5000 /* larger than a chunk (and than a page): overflow pages */

typedef struct fx {
    char dir[TMPDIR_MAX];
    kv_t *kv;
} fx_t;

static void fx_open(fx_t *f)
{
    tmpdir_make(f->dir, "kvchunk");
    f->kv = NULL;
    ASSERT_OK(kv_open(f->dir, KV_NOSYNC, &f->kv));
}

static void fx_close(fx_t *f)
{
    kv_close(f->kv);
    tmpdir_remove(f->dir);
}

/* What the store should hold: for each id, its record's length and version (0: none). */
typedef struct model {
    size_t len[IDS];
    unsigned ver[IDS];
} model_t;

/* A record: a first byte that is never 0 (a protobuf tag), then bytes from id and version. */
static void mk(uint8_t *buf, uint64_t id, unsigned ver, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(id * 31 + i * 7 + ver * 13);
    if (len > 0)
        buf[0] = (uint8_t)(1 + (id + ver) % 200);
}

static size_t rand_len(unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed) % 100;
    if (r < 3)
        return 0;
    if (r < 8)
        return BIG - (size_t)(rand_r(seed) % 100);
    if (r < 12)
        return 600 + (size_t)(rand_r(seed) % 1500); /* a few to a chunk, or one */
    return 20 + (size_t)(rand_r(seed) % 160);
}

static void put(kv_txn_t *txn, model_t *m, uint64_t id, unsigned *seed)
{
    static uint8_t buf[BIG];
    size_t len = rand_len(seed);
    mk(buf, id, 1, len);
    ASSERT_OK(kv_msg_put(txn, id, buf, len));
    m->len[id] = len;
    m->ver[id] = 1;
}

/* Record @p id as the model says: its bytes, or RC_ENOTFOUND. */
static void expect_rec(kv_txn_t *txn, const model_t *m, uint64_t id)
{
    static uint8_t want[BIG];
    const uint8_t *rec;
    size_t len;
    if (m->ver[id] == 0) {
        ASSERT_RC(kv_msg_get(txn, id, &rec, &len), RC_ENOTFOUND);
        return;
    }
    ASSERT_OK(kv_msg_get(txn, id, &rec, &len));
    ASSERT_EQ(len, m->len[id]);
    mk(want, id, m->ver[id], len);
    ASSERT_MEMEQ(rec, want, len);
}

/* Every record, the ends and the count as the model says, scans from anywhere, and the
 * layout: keys increasing, each entry's ids from its key to below the next key, chunks
 * within the limit unless one record alone. */
static void check(fx_t *f, const model_t *m, unsigned *seed);

typedef struct scan {
    const model_t *m;
    uint64_t next; /* the id the scan should give next */
    size_t n;
} scan_t;

static uint64_t next_id(const model_t *m, uint64_t from)
{
    while (from < IDS && m->ver[from] == 0)
        from++;
    return from;
}

static int on_scan(void *ctx, uint64_t id, const uint8_t *rec, size_t len)
{
    static uint8_t want[BIG];
    scan_t *s = ctx;
    ASSERT_U64_EQ(id, s->next);
    ASSERT_EQ(len, s->m->len[id]);
    mk(want, id, s->m->ver[id], len);
    ASSERT_MEMEQ(rec, want, len);
    s->next = next_id(s->m, id + 1);
    s->n++;
    return 0;
}

static void check_layout(kv_txn_t *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t prev_last = 0;
    bool any = false;
    size_t max = kv__of(txn)->chunk_max;

    ASSERT_EQ(mdb_cursor_open(kv__txn(txn), kv__of(txn)->msgs, &cur), 0);
    for (int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t key = be64_get(k.mv_data), id = key, last = key;
        const uint8_t *b = v.mv_data;
        size_t pos = 1, nrec = 0;
        ASSERT_EQ(k.mv_size, 8);
        if (any)
            ASSERT_LT(prev_last, key); /* ranges never interleave */
        any = true;
        if (v.mv_size > 0 && b[0] == 0) {
            while (pos < v.mv_size) {
                uint64_t d = 0, l = 0;
                unsigned sh = 0;
                do
                    d |= (uint64_t)(b[pos] & 0x7f) << sh, sh += 7;
                while (b[pos++] & 0x80);
                sh = 0;
                do
                    l |= (uint64_t)(b[pos] & 0x7f) << sh, sh += 7;
                while (b[pos++] & 0x80);
                ASSERT_TRUE(nrec == 0 ? d == 0 : d > 0);
                id += d;
                last = id;
                pos += (size_t)l;
                nrec++;
            }
            ASSERT_EQ(pos, v.mv_size);
            ASSERT_TRUE(nrec >= 1);
            if (nrec > 1)
                ASSERT_LE(v.mv_size, max);
        }
        prev_last = last;
    }
    mdb_cursor_close(cur);
}

static void check(fx_t *f, const model_t *m, unsigned *seed)
{
    kv_txn_t *txn;
    uint64_t first = 0, last = 0, n = 0, got;

    for (uint64_t id = 0; id < IDS; id++)
        if (m->ver[id]) {
            first = first ? first : id;
            last = id;
            n++;
        }
    ASSERT_OK(kv_begin(f->kv, KV_READ, &txn));
    ASSERT_OK(kv_msg_count(txn, &got));
    ASSERT_U64_EQ(got, n);
    ASSERT_OK(kv_msg_first_id(txn, &got));
    ASSERT_U64_EQ(got, first);
    ASSERT_OK(kv_msg_last_id(txn, &got));
    ASSERT_U64_EQ(got, last);
    for (uint64_t id = 0; id < IDS; id++)
        expect_rec(txn, m, id);
    for (int i = 0; i < 4; i++) {
        uint64_t from = (uint64_t)(rand_r(seed) % IDS);
        scan_t s = {m, next_id(m, from), 0};
        ASSERT_OK(kv_msg_scan(txn, from, on_scan, &s));
        ASSERT_U64_EQ(s.next, IDS); /* to the end */
    }
    check_layout(txn);
    kv_abort(txn);
}

/* The write transaction reads its own records, those not put yet among them. */
static void check_in(kv_txn_t *txn, const model_t *m, unsigned *seed)
{
    uint64_t last = 0, got;

    for (uint64_t id = 0; id < IDS; id++)
        if (m->ver[id])
            last = id;
    ASSERT_OK(kv_msg_last_id(txn, &got));
    ASSERT_U64_EQ(got, last);
    for (int i = 0; i < 8; i++) {
        uint64_t id = i < 3 && last > (uint64_t)i ? last - (uint64_t)i
                                                 : (uint64_t)(rand_r(seed) % IDS);
        expect_rec(txn, m, id);
    }
}

/* Old schemas' entries: one record each, as it is. */
static void put_plain(kv_txn_t *txn, model_t *m, uint64_t id, size_t len)
{
    static uint8_t buf[BIG];
    uint8_t key[8];
    MDB_val k = {8, key}, v = {len, buf};
    mk(buf, id, 7, len);
    be64_put(key, id);
    ASSERT_EQ(mdb_put(kv__txn(txn), kv__of(txn)->msgs, &k, &v, 0), 0);
    m->len[id] = len;
    m->ver[id] = 7;
}

/* Appends, ids in the gaps, replaces of every size, deletes, retention with small budgets
 * and aborted transactions, over entries an older schema wrote: after every transaction,
 * the store is the model. */
TEST(kv_chunk_model)
{
    static model_t m, saved;
    static uint8_t buf[BIG];
    unsigned seed = 7;
    uint64_t top = 0;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    ASSERT_OK(kv_begin(f.kv, KV_WRITE, &txn));
    for (uint64_t id = 1; id < 300; id += 3) /* some gaps for the inserts */
        put_plain(txn, &m, id, 30 + id % 200);
    top = 299;
    ASSERT_OK(kv_commit(txn));
    check(&f, &m, &seed);

    for (int round = 0; round < 60; round++) {
        bool abort_it = round % 7 == 3;
        saved = m;
        ASSERT_OK(kv_begin(f.kv, KV_WRITE, &txn));
        for (int op = 0; op < 40; op++) {
            unsigned r = (unsigned)rand_r(&seed) % 100;
            uint64_t id = 1 + (uint64_t)rand_r(&seed) % (top ? top : 1);
            if (r < 55 && top + 3 < IDS) { /* the common case: the next ids */
                top += 1 + (uint64_t)(rand_r(&seed) % 3);
                put(txn, &m, top, &seed);
            } else if (r < 67) { /* a late id */
                if (m.ver[id])
                    ASSERT_RC(kv_msg_put(txn, id, buf, 1), RC_EEXIST);
                else
                    put(txn, &m, id, &seed);
            } else if (r < 82) {
                size_t len = rand_len(&seed);
                mk(buf, id, 2 + (unsigned)round, len);
                if (m.ver[id] == 0) {
                    ASSERT_RC(kv_msg_replace(txn, id, buf, len), RC_ENOTFOUND);
                    continue;
                }
                ASSERT_OK(kv_msg_replace(txn, id, buf, len));
                m.len[id] = len;
                m.ver[id] = 2 + (unsigned)round;
            } else if (r < 94) {
                ASSERT_OK(kv_msg_del(txn, id));
                m.ver[id] = 0;
            } else {
                /* retention: the @p budget smallest records below the cutoff */
                size_t budget = 1 + (size_t)(rand_r(&seed) % 20), want = budget, removed = 0;
                uint64_t cutoff = id;
                bool done;
                ASSERT_OK(kv__msgs_retire(txn, cutoff, &budget, &removed, &done));
                for (uint64_t x = 0; x < cutoff && want > 0; x++)
                    if (m.ver[x]) {
                        m.ver[x] = 0;
                        want--;
                        removed--;
                    }
                ASSERT_EQ(removed, 0);
                ASSERT_EQ(done, want > 0); /* none left below it, with budget to spare */
            }
            if (op % 5 == 4)
                check_in(txn, &m, &seed);
        }
        if (abort_it) {
            kv_abort(txn);
            m = saved;
        } else {
            ASSERT_OK(kv_commit(txn));
        }
        check(&f, &m, &seed);
    }
    fx_close(&f);
}

/* The point of chunks: 100-byte records cost a few bytes each beyond their own, not 18,
 * and never an overflow page. */
TEST(kv_chunk_small_records_pack_pages)
{
    uint8_t rec[100];
    kv_txn_t *txn;
    MDB_stat st;
    fx_t f;

    fx_open(&f);
    for (int c = 0; c < 20; c++) { /* 20 commits of 500: a commit extends the last chunk */
        ASSERT_OK(kv_begin(f.kv, KV_WRITE, &txn));
        for (uint64_t i = 0; i < 500; i++) {
            uint64_t id = 1000000 + (uint64_t)c * 500 + i;
            mk(rec, id, 1, sizeof(rec));
            ASSERT_OK(kv_msg_put(txn, id, rec, sizeof(rec)));
        }
        ASSERT_OK(kv_commit(txn));
    }
    ASSERT_OK(kv_begin(f.kv, KV_READ, &txn));
    ASSERT_EQ(mdb_stat(kv__txn(txn), kv__of(txn)->msgs, &st), 0);
    ASSERT_EQ(st.ms_overflow_pages, 0);
    /* 10,000 records of 100 bytes: 19 to a chunk, two chunks to a page, ~110 bytes of pages
     * each; one to an entry (18 bytes of LMDB's each), 34 to a page, ~121 */
    ASSERT_LT((st.ms_leaf_pages + st.ms_branch_pages) * st.ms_psize, 10000 * 112);
    ASSERT_LT(st.ms_entries, 10000 / 15);
    kv_abort(txn);
    fx_close(&f);
}

/* A chunk that is not one (cut short, or a later record with no id step) is an error, not
 * a wrong record. */
TEST(kv_chunk_malformed_is_an_error)
{
    static const uint8_t cut[] = {0, 0, 50, 'a'};         /* a length past the end */
    static const uint8_t nostep[] = {0, 0, 1, 'a', 0, 1, 'b'}; /* the second has delta 0 */
    const uint8_t *rec;
    size_t len;
    kv_txn_t *txn;
    uint8_t key[8];
    fx_t f;

    fx_open(&f);
    ASSERT_OK(kv_begin(f.kv, KV_WRITE, &txn));
    be64_put(key, 10);
    MDB_val k = {8, key}, v = {sizeof(cut), (void *)cut};
    ASSERT_EQ(mdb_put(kv__txn(txn), kv__of(txn)->msgs, &k, &v, 0), 0);
    be64_put(key, 20);
    v = (MDB_val){sizeof(nostep), (void *)nostep};
    ASSERT_EQ(mdb_put(kv__txn(txn), kv__of(txn)->msgs, &k, &v, 0), 0);
    ASSERT_OK(kv_commit(txn));
    ASSERT_OK(kv_begin(f.kv, KV_READ, &txn));
    ASSERT_RC(kv_msg_get(txn, 10, &rec, &len), RC_ESTORE);
    ASSERT_OK(kv_msg_get(txn, 20, &rec, &len)); /* the first record is whole */
    ASSERT_EQ(len, 1);
    ASSERT_RC(kv_msg_get(txn, 21, &rec, &len), RC_ESTORE);
    kv_abort(txn);
    fx_close(&f);
}
