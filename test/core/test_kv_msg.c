/* Tests for src/core/kv_msg.c: message records, timelines, delivery cursors, conversation
 * indexes and
 * retention, against the real LMDB in a temp directory. */
#include <lmdb.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kv.h"
#include "core/kv_int.h" /* raw LMDB checks: a key really gone, md_entries */
#include "support/test.h"
#include "support/tmpdir.h"

/* ---- helpers ---------------------------------------------------------------------- */

typedef struct fx {
    char dir[TMPDIR_MAX];
    kv_t *kv;
} fx_t;

static void fx_open(fx_t *f)
{
    tmpdir_make(f->dir, "kvmsg");
    f->kv = NULL;
    ASSERT_OK(kv_open(f->dir, KV_NOSYNC, &f->kv));
    ASSERT_NOT_NULL(f->kv);
}

static void fx_close(fx_t *f)
{
    kv_close(f->kv);
    tmpdir_remove(f->dir);
}

static kv_txn_t *begin(fx_t *f, int mode)
{
    kv_txn_t *txn = NULL;
    ASSERT_OK(kv_begin(f->kv, mode, &txn));
    ASSERT_NOT_NULL(txn);
    return txn;
}

/* A user's key, kept with its length. */
typedef struct ukey {
    uint8_t k[KV_UKEY_MAX];
    size_t n;
} ukey_t;

static ukey_t uk(const char *app, const char *user)
{
    ukey_t u;
    ASSERT_TRUE(kv_id_valid(app) && kv_id_valid(user));
    memset(&u, 0, sizeof(u));
    u.n = kv_ukey(u.k, app, user);
    return u;
}

/* Deterministic xorshift64 for shuffles and data. */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void shuffle(uint64_t *a, size_t n, uint64_t seed)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd(&seed) % i);
        uint64_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* How many of the sorted ids[0..n) are > after (upper bound). */
static size_t n_after(const uint64_t *ids, size_t n, uint64_t after)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n - lo;
}

#define GUARD 0xdeadbeefcafef00dULL

/* One kv_timeline_page call checked against the sorted model ids[0..n). Returns how many
 * ids it gave. */
static size_t check_page(kv_txn_t *txn, const ukey_t *u, const uint64_t *ids, size_t n,
                         uint64_t after, size_t max)
{
    static uint64_t buf[1024];
    size_t got = 12345, want = n_after(ids, n, after), first = n - want;
    uint64_t total = 12345;

    ASSERT_LT(max, sizeof(buf) / sizeof(buf[0]));
    for (size_t i = 0; i <= max; i++)
        buf[i] = GUARD;
    ASSERT_OK(kv_timeline_page(txn, u->k, u->n, after, buf, max, &got, &total));
    if (total != want)
        TEST_FAIL_("page(after=%" PRIu64 ", max=%zu) of %zu ids: total_after %" PRIu64 ", want %zu",
                   after, max, n, total, want);
    ASSERT_EQ(got, want < max ? want : max);
    for (size_t i = 0; i < got; i++)
        if (buf[i] != ids[first + i])
            TEST_FAIL_("page(after=%" PRIu64 ", max=%zu): ids[%zu] = %" PRIu64 ", want %" PRIu64,
                       after, max, i, buf[i], ids[first + i]);
    ASSERT_U64_EQ(buf[max], GUARD); /* nothing written past max */
    return got;
}

/* Read a whole timeline (pages of 500) into out (capacity cap); returns the count. */
static size_t read_all(kv_txn_t *txn, const ukey_t *u, uint64_t *out, size_t cap)
{
    size_t total = 0, got;
    uint64_t after = 0, rest, first_rest = UINT64_MAX;
    do {
        ASSERT_LE(total, cap);
        ASSERT_OK(kv_timeline_page(txn, u->k, u->n, after, out + total,
                                   cap - total < 500 ? cap - total : 500, &got, &rest));
        ASSERT_LE(got, rest);
        if (first_rest == UINT64_MAX)
            first_rest = rest;
        ASSERT_U64_EQ(rest, first_rest - total); /* what is left shrinks by what came */
        for (size_t i = 0; i < got; i++)
            ASSERT_TRUE(out[total + i] > (total + i == 0 ? 0 : out[total + i - 1]));
        total += got;
        if (got > 0)
            after = out[total - 1];
    } while (got > 0);
    ASSERT_U64_EQ(first_rest, total);
    return total;
}

/* The timeline equals the sorted model ids[0..n), by paging, last and count. */
static void check_timeline(kv_txn_t *txn, const ukey_t *u, const uint64_t *ids, size_t n)
{
    static uint64_t got[20000];
    uint64_t last = 1, count = 1;
    ASSERT_LE(n, 20000);
    ASSERT_EQ(read_all(txn, u, got, 20000), n);
    for (size_t i = 0; i < n; i++)
        ASSERT_U64_EQ(got[i], ids[i]);
    ASSERT_OK(kv_timeline_last(txn, u->k, u->n, &last));
    ASSERT_U64_EQ(last, n == 0 ? 0 : ids[n - 1]);
    ASSERT_OK(kv_timeline_count(txn, u->k, u->n, &count));
    ASSERT_U64_EQ(count, n);
}

/* Is the user's key present in the timeline database at all (raw LMDB)? */
static bool tl_key_exists(kv_txn_t *txn, const ukey_t *u)
{
    MDB_val k = {u->n, (void *)u->k}, v;
    int mrc = mdb_get(kv__txn(txn), kv__of(txn)->timeline, &k, &v);
    ASSERT_TRUE(mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND);
    return mrc == MDB_SUCCESS;
}

/* How many LMDB pages hold the user's timeline (DUPFIXED pages, read a page at a time). */
static size_t tl_pages(kv_txn_t *txn, const ukey_t *u)
{
    MDB_cursor *cur;
    MDB_val k = {u->n, (void *)u->k}, v;
    size_t pages = 0;
    int mrc;
    ASSERT_OK(mdb_cursor_open(kv__txn(txn), kv__of(txn)->timeline, &cur));
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE);
    while (mrc == MDB_SUCCESS) {
        pages++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE);
    }
    ASSERT_EQ(mrc, MDB_NOTFOUND);
    mdb_cursor_close(cur);
    return pages;
}

static size_t db_entries(kv_txn_t *txn, MDB_dbi dbi)
{
    MDB_stat st;
    ASSERT_OK(mdb_stat(kv__txn(txn), dbi, &st));
    return st.ms_entries;
}

/* The message records stored (several share an entry of msgs: kv_chunk.c). */
static size_t msg_count(kv_txn_t *txn)
{
    uint64_t n;
    ASSERT_OK(kv_msg_count(txn, &n));
    return (size_t)n;
}

/* A message record whose bytes derive from its id (and a version for replaces). */
static size_t mk_rec(uint8_t *buf, size_t cap, uint64_t id, unsigned ver)
{
    size_t len = 16 + (size_t)(id % 50);
    ASSERT_LE(len, cap);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(id * 31 + i * 7 + ver);
    return len;
}

static void check_rec(kv_txn_t *txn, uint64_t id, unsigned ver)
{
    uint8_t want[128];
    const uint8_t *rec = NULL;
    size_t len = 0, wlen = mk_rec(want, sizeof(want), id, ver);
    ASSERT_OK(kv_msg_get(txn, id, &rec, &len));
    ASSERT_EQ(len, wlen);
    ASSERT_MEMEQ(rec, want, len);
}

/* ---- kv_ukey ---------------------------------------------------------------------- */

TEST(kv_msg_ukey_layout)
{
    char a64[KV_ID_MAX + 1], u64[KV_ID_MAX + 1];
    uint8_t k[KV_UKEY_MAX], k2[KV_UKEY_MAX];
    size_t n, n2;

    n = kv_ukey(k, "acme", "bob");
    ASSERT_EQ(n, 8);
    ASSERT_MEMEQ(k, "acme\0bob", 8);
    n = kv_ukey(k, "a", "b");
    ASSERT_EQ(n, 3);
    ASSERT_MEMEQ(k, "a\0b", 3);
    /* The NUL keeps ("a", "bc") apart from ("ab", "c"). */
    n = kv_ukey(k, "a", "bc");
    n2 = kv_ukey(k2, "ab", "c");
    ASSERT_EQ(n, n2);
    ASSERT_TRUE(memcmp(k, k2, n) != 0);
    /* Longest ids: exactly KV_UKEY_MAX bytes. */
    memset(a64, 'a', KV_ID_MAX);
    a64[KV_ID_MAX] = '\0';
    memset(u64, 'u', KV_ID_MAX);
    u64[KV_ID_MAX] = '\0';
    ASSERT_TRUE(kv_id_valid(a64) && kv_id_valid(u64));
    n = kv_ukey(k, a64, u64);
    ASSERT_EQ(n, KV_UKEY_MAX);
    ASSERT_MEMEQ(k, a64, KV_ID_MAX);
    ASSERT_EQ(k[KV_ID_MAX], 0);
    ASSERT_MEMEQ(k + KV_ID_MAX + 1, u64, KV_ID_MAX);
}

/* ---- msgs ------------------------------------------------------------------------- */

TEST(kv_msg_put_get_replace)
{
    uint8_t rec[128], big[20000];
    const uint8_t *p;
    size_t len, n;
    uint64_t last = 99;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_msg_last_id(txn, &last));
    ASSERT_U64_EQ(last, 0); /* empty */
    ASSERT_RC(kv_msg_get(txn, 1, &p, &len), RC_ENOTFOUND);
    for (uint64_t id = 100; id <= 110; id++) {
        n = mk_rec(rec, sizeof(rec), id, 0);
        ASSERT_OK(kv_msg_put(txn, id, rec, n));
    }
    ASSERT_OK(kv_msg_last_id(txn, &last));
    ASSERT_U64_EQ(last, 110);
    for (uint64_t id = 100; id <= 110; id++)
        check_rec(txn, id, 0);
    ASSERT_RC(kv_msg_get(txn, 99, &p, &len), RC_ENOTFOUND);
    ASSERT_RC(kv_msg_get(txn, 111, &p, &len), RC_ENOTFOUND);
    ASSERT_RC(kv_msg_get(txn, 0, &p, &len), RC_ENOTFOUND);
    ASSERT_RC(kv_msg_get(txn, UINT64_MAX, &p, &len), RC_ENOTFOUND);
    /* An id in use, the last one or an earlier one: RC_EEXIST, record unchanged, the
     * transaction still usable. */
    n = mk_rec(rec, sizeof(rec), 7, 9);
    ASSERT_RC(kv_msg_put(txn, 110, rec, n), RC_EEXIST);
    ASSERT_RC(kv_msg_put(txn, 105, rec, n), RC_EEXIST);
    ASSERT_RC(kv_msg_put(txn, 100, rec, n), RC_EEXIST);
    check_rec(txn, 110, 0);
    check_rec(txn, 105, 0);
    check_rec(txn, 100, 0);
    /* Below the last id (never expected, but must work): an insert in place. */
    n = mk_rec(rec, sizeof(rec), 50, 0);
    ASSERT_OK(kv_msg_put(txn, 50, rec, n));
    check_rec(txn, 50, 0);
    ASSERT_OK(kv_msg_last_id(txn, &last));
    ASSERT_U64_EQ(last, 110);
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_WRITE);
    /* A gap id between stored ones. */
    n = mk_rec(rec, sizeof(rec), 1055, 0);
    ASSERT_OK(kv_msg_put(txn, 1055, rec, n));
    n = mk_rec(rec, sizeof(rec), 1054, 0);
    ASSERT_OK(kv_msg_put(txn, 1054, rec, n));
    n = mk_rec(rec, sizeof(rec), 107, 3); /* a different length than version 0 */
    ASSERT_OK(kv_msg_replace(txn, 107, rec, n));
    check_rec(txn, 107, 3);
    /* Replace of an unknown id: RC_ENOTFOUND and nothing created. */
    ASSERT_RC(kv_msg_replace(txn, 108000, rec, n), RC_ENOTFOUND);
    ASSERT_RC(kv_msg_replace(txn, 0, rec, n), RC_ENOTFOUND);
    ASSERT_RC(kv_msg_get(txn, 108000, &p, &len), RC_ENOTFOUND);
    /* A record larger than a page (overflow pages), replaced by a small one and back. */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 13);
    ASSERT_OK(kv_msg_put(txn, 2000, big, sizeof(big)));
    ASSERT_OK(kv_msg_get(txn, 2000, &p, &len));
    ASSERT_EQ(len, sizeof(big));
    ASSERT_MEMEQ(p, big, sizeof(big));
    n = mk_rec(rec, sizeof(rec), 2000, 1);
    ASSERT_OK(kv_msg_replace(txn, 2000, rec, n));
    check_rec(txn, 2000, 1);
    ASSERT_OK(kv_msg_replace(txn, 101, big, sizeof(big) / 2));
    ASSERT_OK(kv_msg_last_id(txn, &last));
    ASSERT_U64_EQ(last, 2000);
    ASSERT_OK(kv_commit(txn));

    /* Everything is durable across the commit and seen by a reader. */
    txn = begin(&f, KV_READ);
    for (uint64_t id = 100; id <= 110; id++)
        if (id != 107 && id != 101)
            check_rec(txn, id, 0);
    check_rec(txn, 107, 3);
    check_rec(txn, 50, 0);
    check_rec(txn, 1054, 0);
    check_rec(txn, 1055, 0);
    check_rec(txn, 2000, 1);
    ASSERT_OK(kv_msg_get(txn, 101, &p, &len));
    ASSERT_EQ(len, sizeof(big) / 2);
    ASSERT_MEMEQ(p, big, sizeof(big) / 2);
    ASSERT_OK(kv_msg_last_id(txn, &last));
    ASSERT_U64_EQ(last, 2000);
    ASSERT_EQ(msg_count(txn), 11 + 1 + 2 + 1);
    kv_abort(txn);
    fx_close(&f);
}

TEST(kv_msg_put_many_in_and_out_of_order)
{
    static uint64_t ids[3000];
    uint8_t rec[128];
    uint64_t last;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    /* Appends spanning many pages, then ids in the gaps in random order (insert path). */
    for (size_t i = 0; i < 3000; i++)
        ids[i] = 10 + 2 * (uint64_t)i;
    txn = begin(&f, KV_WRITE);
    for (size_t i = 0; i < 3000; i++)
        ASSERT_OK(kv_msg_put(txn, ids[i], rec, mk_rec(rec, sizeof(rec), ids[i], 0)));
    ASSERT_OK(kv_commit(txn));
    for (size_t i = 0; i < 3000; i++)
        ids[i] = 11 + 2 * (uint64_t)i;
    shuffle(ids, 3000, 42);
    txn = begin(&f, KV_WRITE);
    for (size_t i = 0; i < 3000; i++)
        ASSERT_OK(kv_msg_put(txn, ids[i], rec, mk_rec(rec, sizeof(rec), ids[i], 0)));
    ASSERT_OK(kv_commit(txn));
    txn = begin(&f, KV_READ);
    for (uint64_t id = 10; id < 10 + 6000; id++)
        check_rec(txn, id, 0);
    ASSERT_OK(kv_msg_last_id(txn, &last));
    ASSERT_U64_EQ(last, 10 + 5999);
    ASSERT_EQ(msg_count(txn), 6000);
    kv_abort(txn);
    fx_close(&f);
}

/* ---- timelines -------------------------------------------------------------------- */

TEST(kv_timeline_empty_and_unknown)
{
    ukey_t u = uk("app", "nobody");
    uint64_t ids[4], out = 77, total = 77;
    size_t n = 77;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_timeline_last(txn, u.k, u.n, &out));
    ASSERT_U64_EQ(out, 0);
    out = 77;
    ASSERT_OK(kv_timeline_count(txn, u.k, u.n, &out));
    ASSERT_U64_EQ(out, 0);
    ASSERT_OK(kv_timeline_page(txn, u.k, u.n, 0, ids, 4, &n, &total));
    ASSERT_EQ(n, 0);
    ASSERT_U64_EQ(total, 0);
    n = 77;
    total = 77;
    ASSERT_OK(kv_timeline_page(txn, u.k, u.n, UINT64_MAX, ids, 4, &n, &total));
    ASSERT_EQ(n, 0);
    ASSERT_U64_EQ(total, 0);
    kv_abort(txn);
    fx_close(&f);
}

TEST(kv_timeline_add_in_order)
{
    static uint64_t ids[1200];
    ukey_t u = uk("app", "alice");
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    for (size_t i = 0; i < 1200; i++)
        ids[i] = 1000 + 5 * (uint64_t)i;
    /* Across transactions too: the append path must find the stored last. */
    for (size_t i = 0; i < 1200; i += 100) {
        txn = begin(&f, KV_WRITE);
        for (size_t j = i; j < i + 100; j++)
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, ids[j]));
        check_timeline(txn, &u, ids, i + 100);
        ASSERT_OK(kv_commit(txn));
    }
    txn = begin(&f, KV_READ);
    check_timeline(txn, &u, ids, 1200);
    kv_abort(txn);
    fx_close(&f);
}

/* Builds timelines of several sizes (single value, sub-page, around the sub-page → sub-DB
 * conversion, many pages) in random order, with repeats, and checks after every step
 * that matters. */
TEST_TIMEOUT(kv_timeline_add_out_of_order, 60)
{
    static const size_t sizes[] = {1,   2,   3,   17,  100, 200, 230, 240,
                                   250, 260, 300, 511, 512, 513, 1500};
    static uint64_t ids[1500], sorted[1500];
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        char name[32];
        ukey_t u;
        snprintf(name, sizeof(name), "user%zu", n);
        u = uk("app", name);
        for (size_t i = 0; i < n; i++)
            sorted[i] = ids[i] = 100 + 10 * (uint64_t)i;
        shuffle(ids, n, 7 + n);
        txn = begin(&f, KV_WRITE);
        for (size_t i = 0; i < n; i++) {
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, ids[i]));
            /* A repeat of this id and of an earlier one is a no-op. */
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, ids[i]));
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, ids[i / 2]));
        }
        check_timeline(txn, &u, sorted, n);
        ASSERT_OK(kv_commit(txn));
        /* Repeats of every id in a later transaction: still a no-op, in both orders. */
        txn = begin(&f, KV_WRITE);
        for (size_t i = 0; i < n; i++)
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, sorted[i]));
        for (size_t i = n; i-- > 0;)
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, sorted[i]));
        ASSERT_OK(kv_commit(txn));
        txn = begin(&f, KV_READ);
        check_timeline(txn, &u, sorted, n);
        /* Every `after` against this layout. */
        for (size_t i = 0; i < n; i++) {
            check_page(txn, &u, sorted, n, sorted[i] - 1, 3);
            check_page(txn, &u, sorted, n, sorted[i], 3);
            check_page(txn, &u, sorted, n, sorted[i] + 1, 3);
        }
        check_page(txn, &u, sorted, n, 0, 1000);
        kv_abort(txn);
    }
    /* The first entry of a timeline below the only one (single value → two). */
    {
        ukey_t u = uk("app", "down");
        uint64_t want[3] = {5, 6, 7};
        txn = begin(&f, KV_WRITE);
        ASSERT_OK(kv_timeline_add(txn, u.k, u.n, 7));
        ASSERT_OK(kv_timeline_add(txn, u.k, u.n, 7));
        ASSERT_OK(kv_timeline_add(txn, u.k, u.n, 6));
        ASSERT_OK(kv_timeline_add(txn, u.k, u.n, 5));
        ASSERT_OK(kv_timeline_add(txn, u.k, u.n, 6));
        check_timeline(txn, &u, want, 3);
        ASSERT_OK(kv_commit(txn));
    }
    /* The database holds exactly the distinct entries: repeats added nothing. */
    {
        size_t total = 3;
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
            total += sizes[s];
        txn = begin(&f, KV_READ);
        ASSERT_EQ(db_entries(txn, kv__of(txn)->timeline), total);
        kv_abort(txn);
    }
    fx_close(&f);
}

TEST(kv_timeline_users_never_mix)
{
    /* Same user in two apps; names that are prefixes of each other; ("a","lice") vs
     * ("al","ice") whose concatenations are equal. */
    static const char *const who[][2] = {
        {"app", "alice"}, {"app2", "alice"}, {"app", "al"},  {"app", "alice2"},
        {"a", "lice"},    {"al", "ice"},     {"app", "bob"}, {"ap", "p"},
    };
    enum { NU = sizeof(who) / sizeof(who[0]) };
    static uint64_t model[NU][400];
    size_t cnt[NU] = {0};
    uint64_t seed = 99;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    /* Interleaved, increasing ids, each to a random subset of users (fan-out). */
    for (uint64_t id = 1; id <= 2000; id++) {
        for (size_t i = 0; i < NU; i++) {
            if (rnd(&seed) % 5 != 0 || cnt[i] == 400)
                continue;
            ukey_t u = uk(who[i][0], who[i][1]);
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, id));
            model[i][cnt[i]++] = id;
        }
    }
    ASSERT_OK(kv_commit(txn));
    txn = begin(&f, KV_READ);
    for (size_t i = 0; i < NU; i++) {
        ukey_t u = uk(who[i][0], who[i][1]);
        ASSERT_TRUE(cnt[i] > 100);
        check_timeline(txn, &u, model[i], cnt[i]);
        check_page(txn, &u, model[i], cnt[i], model[i][cnt[i] / 2], 50);
    }
    {
        ukey_t u = uk("app", "carol"), v = uk("ap", "pa");
        check_timeline(txn, &u, NULL, 0);
        check_timeline(txn, &v, NULL, 0);
    }
    kv_abort(txn);
    fx_close(&f);
}

/* The 5,000-id timeline: ids 1000, 1003, ... so values between stored ids exist. */
#define BIG_N 5000
static uint64_t big_ids[BIG_N];

static void big_fill(fx_t *f, const ukey_t *u, bool shuffled)
{
    static uint64_t order[BIG_N];
    kv_txn_t *txn;
    for (size_t i = 0; i < BIG_N; i++)
        order[i] = big_ids[i] = 1000 + 3 * (uint64_t)i;
    if (shuffled)
        shuffle(order, BIG_N, 12345);
    /* A transaction's appends go in sorted (kv_pend.c): shuffled ones are committed a
     * few at a time, so most land between stored ids and the pages split half full. */
    for (size_t i = 0; i < BIG_N; i += shuffled ? 25 : BIG_N) {
        txn = begin(f, KV_WRITE);
        for (size_t j = i; j < BIG_N && j < i + (shuffled ? 25 : BIG_N); j++)
            ASSERT_OK(kv_timeline_add(txn, u->k, u->n, order[j]));
        ASSERT_OK(kv_commit(txn));
    }
}

/* Page forwards with @p max from @p after to the end: each id exactly once, ascending, no
 * gap, total_after exact at every call. */
static void page_through(kv_txn_t *txn, const ukey_t *u, uint64_t after, size_t max)
{
    size_t first = BIG_N - n_after(big_ids, BIG_N, after), at = first, got, calls = 0;
    uint64_t cur = after;
    do {
        got = check_page(txn, u, big_ids, BIG_N, cur, max);
        at += got;
        if (got > 0)
            cur = big_ids[at - 1];
        ASSERT_LE(++calls, BIG_N + 2);
    } while (got > 0);
    ASSERT_EQ(at, BIG_N);
}

static void big_checks(fx_t *f, const ukey_t *u, size_t min_pages)
{
    static const size_t maxes[] = {1, 7, 200, 500};
    const uint64_t first = big_ids[0], last = big_ids[BIG_N - 1];
    const uint64_t afters[] = {
        0,                 /* from the start (SYNC with no cursor) */
        1,                 /* below the first */
        first - 1,         /* just below the first */
        first,             /* the first */
        first + 1,         /* between the first and the second */
        big_ids[499],      /* the last of the first appended page */
        big_ids[500] - 1,  /* just before the second page */
        big_ids[2500] + 2, /* between two ids mid-way */
        last - 1,          /* just below the last */
        last,              /* the last: nothing after */
        last + 1,          /* above the last */
        UINT64_MAX - 1,
        UINT64_MAX,
    };
    uint64_t v;
    kv_txn_t *txn = begin(f, KV_READ);

    /* ~500 8-byte values per 4 KiB page: the count really crosses page boundaries. */
    ASSERT_LE(min_pages, tl_pages(txn, u));
    ASSERT_OK(kv_timeline_count(txn, u->k, u->n, &v));
    ASSERT_U64_EQ(v, BIG_N);
    ASSERT_OK(kv_timeline_last(txn, u->k, u->n, &v));
    ASSERT_U64_EQ(v, last);
    for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++)
        for (size_t a = 0; a < sizeof(afters) / sizeof(afters[0]); a++)
            page_through(txn, u, afters[a], maxes[m]);
    /* total_after at every position: each stored id, and the values either side of it
     * (between stored ids), so every page boundary is crossed by the first-page count. */
    for (size_t i = 0; i < BIG_N; i++) {
        check_page(txn, u, big_ids, BIG_N, big_ids[i] - 1, 7);
        check_page(txn, u, big_ids, BIG_N, big_ids[i], 7);
        check_page(txn, u, big_ids, BIG_N, big_ids[i] + 1, 1);
    }
    /* max 0 still counts. */
    check_page(txn, u, big_ids, BIG_N, 0, 0);
    check_page(txn, u, big_ids, BIG_N, big_ids[777], 0);
    kv_abort(txn);
}

TEST_TIMEOUT(kv_timeline_page_5000_appended, 60)
{
    ukey_t u = uk("app", "big"), other = uk("app", "big2");
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    big_fill(&f, &u, false);
    /* A neighbour right after it in key order must not leak into its pages. */
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_timeline_add(txn, other.k, other.n, 1001));
    ASSERT_OK(kv_timeline_add(txn, other.k, other.n, 999999));
    ASSERT_OK(kv_commit(txn));
    big_checks(&f, &u, 10);
    fx_close(&f);
}

TEST_TIMEOUT(kv_timeline_page_5000_shuffled, 60)
{
    ukey_t u = uk("app", "big"), before = uk("app", "bi");
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    /* Random insertion order: pages split in the middle, so boundaries differ. */
    big_fill(&f, &u, true);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_timeline_add(txn, before.k, before.n, 5));
    ASSERT_OK(kv_commit(txn));
    big_checks(&f, &u, 14);
    fx_close(&f);
}

/* ---- cursors ---------------------------------------------------------------------- */

/* ---- gathered appends (kv_pend.c) ------------------------------------------------- */

/* A write transaction's timeline appends are gathered and applied in key order at the
 * commit: whatever reads the timeline in that transaction sees them all the same, in
 * order; out-of-order and repeated ids within and across transactions end the same as
 * one put each; what an abort gathered is gone with it. */
TEST(kv_timeline_gathered_appends)
{
    ukey_t a = uk("app", "ann"), b = uk("app", "bob"), c = uk("app", "cy");
    uint64_t want_a[600], want_b[4] = {10, 50, 100, 150}, v = 0;
    size_t na = 0;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_timeline_add(txn, b.k, b.n, 100));
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_WRITE);
    /* a new key, many ids at once (one MDB_MULTIPLE put, growing a sub-database) */
    for (uint64_t id = 1000; id < 1500; id++) {
        ASSERT_OK(kv_timeline_add(txn, a.k, a.n, id));
        want_a[na++] = id;
    }
    /* ids below the stored last, a repeat within the transaction, one repeated from the
     * store: the MULTIPLE append stops at the first and the rest go in one by one */
    ASSERT_OK(kv_timeline_add(txn, b.k, b.n, 150));
    ASSERT_OK(kv_timeline_add(txn, b.k, b.n, 50));
    ASSERT_OK(kv_timeline_add(txn, b.k, b.n, 10));
    ASSERT_OK(kv_timeline_add(txn, b.k, b.n, 150));
    ASSERT_OK(kv_timeline_add(txn, b.k, b.n, 100));
    /* read in the same transaction: everything gathered so far is there */
    check_timeline(txn, &b, want_b, 4);
    ASSERT_TRUE(kv_timeline_has(txn, a.k, a.n, 1499) == 0);
    /* more after the read, the last of them below what the read applied */
    for (uint64_t id = 1500; id < 1600; id++) {
        ASSERT_OK(kv_timeline_add(txn, a.k, a.n, id));
        want_a[na++] = id;
    }
    ASSERT_OK(kv_timeline_add(txn, a.k, a.n, 1200)); /* there already */
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_READ);
    check_timeline(txn, &a, want_a, na);
    check_timeline(txn, &b, want_b, 4);
    kv_abort(txn);

    /* an aborted transaction's gathered appends never reach a later commit */
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_timeline_add(txn, c.k, c.n, 7));
    ASSERT_OK(kv_timeline_add(txn, a.k, a.n, 9999));
    kv_abort(txn);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_timeline_add(txn, b.k, b.n, 200));
    ASSERT_OK(kv_commit(txn));
    txn = begin(&f, KV_READ);
    ASSERT_TRUE(!tl_key_exists(txn, &c));
    check_timeline(txn, &a, want_a, na);
    ASSERT_OK(kv_timeline_last(txn, b.k, b.n, &v));
    ASSERT_U64_EQ(v, 200);
    kv_abort(txn);
    fx_close(&f);
}

/* Gathered conversation-index appends are applied before a drop of the key: the drop
 * wins, as it would with every append put at once. */
TEST(kv_cmsg_gathered_then_dropped)
{
    const uint8_t k[] = "conv-k", d[] = "conv-d";
    uint64_t n = 0;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_cmsg_add(txn, k, sizeof(k), 5, false));
    ASSERT_OK(kv_cmsg_add(txn, d, sizeof(d), 1, true));
    ASSERT_OK(kv_cmsg_drop(txn, d, sizeof(d)));
    ASSERT_OK(kv_cevent_add(txn, k, sizeof(k), 5));
    ASSERT_OK(kv_commit(txn));
    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_cmsg_count(txn, k, sizeof(k), 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1);
    ASSERT_OK(kv_cmsg_count(txn, d, sizeof(d), 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 0); /* dropped after its gathered add, not added again at the commit */
    ASSERT_OK(kv_cevent_count(txn, k, sizeof(k), 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1);
    kv_abort(txn);
    fx_close(&f);
}

TEST(kv_cursor_forward_only_per_device_and_user)
{
    ukey_t a = uk("app", "alice"), b = uk("app", "bob"), a2 = uk("app2", "alice");
    uint64_t v = 77;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "phone", &v));
    ASSERT_U64_EQ(v, 0); /* never seen */
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, "phone", 500));
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "phone", &v));
    ASSERT_U64_EQ(v, 500);
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, "phone", 300)); /* lower: ignored */
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "phone", &v));
    ASSERT_U64_EQ(v, 500);
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, "phone", 500)); /* equal: ignored */
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, "phone", 0));
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "phone", &v));
    ASSERT_U64_EQ(v, 500);
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, "phone", 501));
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, "laptop", 10));
    ASSERT_OK(kv_cursor_put(txn, b.k, b.n, "phone", 7));
    ASSERT_OK(kv_cursor_put(txn, a2.k, a2.n, "phone", UINT64_MAX));
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, "phone", 400)); /* lower, across txns */
    ASSERT_OK(kv_cursor_put(txn, a2.k, a2.n, "phone", 1));
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "phone", &v));
    ASSERT_U64_EQ(v, 501);
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "laptop", &v));
    ASSERT_U64_EQ(v, 10);
    ASSERT_OK(kv_cursor_get(txn, b.k, b.n, "phone", &v));
    ASSERT_U64_EQ(v, 7);
    ASSERT_OK(kv_cursor_get(txn, b.k, b.n, "laptop", &v));
    ASSERT_U64_EQ(v, 0);
    ASSERT_OK(kv_cursor_get(txn, a2.k, a2.n, "phone", &v));
    ASSERT_U64_EQ(v, UINT64_MAX);
    ASSERT_OK(kv_cursor_get(txn, a2.k, a2.n, "laptop", &v));
    ASSERT_U64_EQ(v, 0);
    /* Device names that are prefixes of each other are different devices. */
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "phon", &v));
    ASSERT_U64_EQ(v, 0);
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, "phone2", &v));
    ASSERT_U64_EQ(v, 0);
    ASSERT_OK(kv_commit(txn));
    fx_close(&f);
}

TEST(kv_cursor_device_limits)
{
    char d64[65], d65[66];
    uint8_t big[KV_UKEY_MAX + 1];
    char a64[KV_ID_MAX + 1], u64[KV_ID_MAX + 1];
    ukey_t a = uk("app", "alice"), m;
    uint64_t v = 77;
    kv_txn_t *txn;
    fx_t f;

    memset(d64, 'd', 64);
    d64[64] = '\0';
    memset(d65, 'd', 65);
    d65[65] = '\0';
    memset(a64, 'a', KV_ID_MAX);
    a64[KV_ID_MAX] = '\0';
    memset(u64, 'u', KV_ID_MAX);
    u64[KV_ID_MAX] = '\0';
    m = uk(a64, u64);
    memset(big, 'x', sizeof(big));
    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_RC(kv_cursor_put(txn, a.k, a.n, "", 1), RC_EINVAL);
    ASSERT_RC(kv_cursor_get(txn, a.k, a.n, "", &v), RC_EINVAL);
    ASSERT_RC(kv_cursor_put(txn, a.k, a.n, d65, 1), RC_EINVAL);
    ASSERT_RC(kv_cursor_get(txn, a.k, a.n, d65, &v), RC_EINVAL);
    ASSERT_U64_EQ(v, 77); /* untouched on failure */
    ASSERT_RC(kv_cursor_put(txn, big, sizeof(big), "d", 1), RC_EINVAL);
    /* Longest user key and device together. */
    ASSERT_OK(kv_cursor_put(txn, m.k, m.n, d64, 9));
    ASSERT_OK(kv_cursor_get(txn, m.k, m.n, d64, &v));
    ASSERT_U64_EQ(v, 9);
    ASSERT_OK(kv_cursor_put(txn, a.k, a.n, d64, 3));
    ASSERT_OK(kv_commit(txn));
    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_cursor_get(txn, a.k, a.n, d64, &v));
    ASSERT_U64_EQ(v, 3);
    ASSERT_OK(kv_cursor_get(txn, m.k, m.n, d64, &v));
    ASSERT_U64_EQ(v, 9);
    ASSERT_EQ(db_entries(txn, kv__of(txn)->cursors), 2);
    kv_abort(txn);
    fx_close(&f);
}

/* ---- conversation index: counts and last ---------------------------------------- */

/* kv_cmsg_count / kv_cmsg_last / kv_cevent_* over keys of every shape: none, one value, a
 * sub-page and a sub-database of values. */
TEST(kv_cmsg_count_and_last)
{
    const uint8_t one[] = "c-one", many[] = "c-many", none[] = "c-none", ev[] = "g-1";
    uint64_t n = 99, last = 99;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_cmsg_add(txn, one, sizeof(one), 500, false));
    for (uint64_t id = 1000; id < 3000; id += 2) /* 1000 values: a sub-database */
        ASSERT_OK(kv_cmsg_add(txn, many, sizeof(many), id, false));
    for (uint64_t id = 1000; id < 1100; id += 10)
        ASSERT_OK(kv_cevent_add(txn, ev, sizeof(ev), id));
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_cmsg_count(txn, none, sizeof(none), 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 0);
    ASSERT_OK(kv_cmsg_last(txn, none, sizeof(none), UINT64_MAX, &last));
    ASSERT_U64_EQ(last, 0);
    ASSERT_OK(kv_cmsg_count(txn, one, sizeof(one), 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1);
    ASSERT_OK(kv_cmsg_count(txn, one, sizeof(one), 500, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 0);
    ASSERT_OK(kv_cmsg_count(txn, one, sizeof(one), 499, 500, &n));
    ASSERT_U64_EQ(n, 1);
    ASSERT_OK(kv_cmsg_last(txn, one, sizeof(one), 499, &last));
    ASSERT_U64_EQ(last, 0);
    ASSERT_OK(kv_cmsg_last(txn, one, sizeof(one), 500, &last));
    ASSERT_U64_EQ(last, 500);
    ASSERT_OK(kv_cmsg_count(txn, many, sizeof(many), 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1000);
    ASSERT_OK(kv_cmsg_count(txn, many, sizeof(many), 1999, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 500); /* 2000..2998 */
    ASSERT_OK(kv_cmsg_count(txn, many, sizeof(many), 1999, 2500, &n));
    ASSERT_U64_EQ(n, 251); /* 2000..2500 */
    ASSERT_OK(kv_cmsg_count(txn, many, sizeof(many), 2500, 2500, &n));
    ASSERT_U64_EQ(n, 0);
    ASSERT_OK(kv_cmsg_count(txn, many, sizeof(many), 5000, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 0);
    ASSERT_OK(kv_cmsg_last(txn, many, sizeof(many), UINT64_MAX, &last));
    ASSERT_U64_EQ(last, 2998);
    ASSERT_OK(kv_cmsg_last(txn, many, sizeof(many), 2501, &last));
    ASSERT_U64_EQ(last, 2500);
    ASSERT_OK(kv_cmsg_last(txn, many, sizeof(many), 999, &last));
    ASSERT_U64_EQ(last, 0);
    ASSERT_OK(kv_cmsg_last(txn, many, sizeof(many), 100000, &last));
    ASSERT_U64_EQ(last, 2998);
    ASSERT_OK(kv_cevent_count(txn, ev, sizeof(ev), 1005, 1050, &n));
    ASSERT_U64_EQ(n, 5); /* 1010..1050 */
    ASSERT_OK(kv_cevent_count(txn, many, sizeof(many), 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 0); /* a database of its own */
    kv_abort(txn);
    fx_close(&f);
}

/* What kv_cmsg_news reports. */
typedef struct news {
    char key[8][16];
    uint64_t first[8];
    size_t n;
} news_t;

static int on_news(void *ctx, const uint8_t *key, size_t klen, uint64_t first)
{
    news_t *w = ctx;
    ASSERT_LT(w->n, 8);
    ASSERT_LT(klen, sizeof(w->key[0]));
    memcpy(w->key[w->n], key, klen);
    w->key[w->n][klen] = '\0';
    w->first[w->n++] = first;
    return 0;
}

static void news_take(kv_txn_t *txn, news_t *w)
{
    memset(w, 0, sizeof(*w));
    ASSERT_OK(kv_cmsg_news(txn, on_news, w));
}

/* kv_cmsg_news: a watched key is reported once, with its smallest id, exactly when it had
 * no ids before the transaction's gathered appends came — whatever order the ids come in
 * (appended, older, repeated), however the list is stored (one value, a sub-page, a
 * sub-database), and whether reads applied the appends earlier. Unwatched keys,
 * neighbouring keys and keys that had ids are never reported; an abort forgets. */
TEST(kv_cmsg_news_reports_new_lists)
{
    const uint8_t a[] = "c-a", b[] = "c-b", c[] = "c-c", d[] = "c-d", e[] = "c-e";
    uint64_t ids[8], total = 0, n = 99;
    size_t got = 0;
    news_t w;
    kv_txn_t *txn;
    fx_t f;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_cmsg_add(txn, b, sizeof(b) - 1, 500, true));
    ASSERT_OK(kv_cmsg_add(txn, b, sizeof(b) - 1, 600, true)); /* appended */
    ASSERT_OK(kv_cmsg_add(txn, b, sizeof(b) - 1, 400, true)); /* older */
    ASSERT_OK(kv_cmsg_add(txn, b, sizeof(b) - 1, 500, true)); /* repeated */
    ASSERT_OK(kv_cmsg_add(txn, d, sizeof(d) - 1, 9, false)); /* new, not watched */
    /* a read applies what was gathered: a's news is kept for the call below */
    ASSERT_OK(kv_cmsg_add(txn, a, sizeof(a) - 1, 700, true));
    ASSERT_OK(kv_cmsg_count(txn, a, sizeof(a) - 1, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1);
    ASSERT_OK(kv_cmsg_add(txn, a, sizeof(a) - 1, 800, true)); /* a had ids by now */
    news_take(txn, &w);
    ASSERT_EQ(w.n, 2);
    ASSERT_STREQ(w.key[0], "c-a"); /* in key order */
    ASSERT_U64_EQ(w.first[0], 700);
    ASSERT_STREQ(w.key[1], "c-b");
    ASSERT_U64_EQ(w.first[1], 400);
    news_take(txn, &w); /* each once */
    ASSERT_EQ(w.n, 0);
    ASSERT_OK(kv_cmsg_add(txn, e, sizeof(e) - 1, 5, true)); /* after the call: unreported */
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_WRITE);
    news_take(txn, &w); /* a commit forgets what nobody asked for */
    ASSERT_EQ(w.n, 0);
    ASSERT_OK(kv_cmsg_add(txn, c, sizeof(c) - 1, 100, true)); /* after b, after nothing */
    for (uint64_t id = 1000; id < 3000; id += 2) /* grows into a sub-database */
        ASSERT_OK(kv_cmsg_add(txn, b, sizeof(b) - 1, id, true));
    ASSERT_OK(kv_cmsg_add(txn, b, sizeof(b) - 1, 1001, true));
    ASSERT_OK(kv_cmsg_add(txn, d, sizeof(d) - 1, 10, true)); /* had an unwatched id */
    news_take(txn, &w);
    ASSERT_EQ(w.n, 1);
    ASSERT_STREQ(w.key[0], "c-c");
    ASSERT_U64_EQ(w.first[0], 100);
    ASSERT_OK(kv_commit(txn));

    /* an abort forgets both the appends and their news */
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_cmsg_add(txn, (const uint8_t *)"c-f", 3, 1, true));
    ASSERT_OK(kv_cmsg_count(txn, (const uint8_t *)"c-f", 3, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1);
    kv_abort(txn);
    txn = begin(&f, KV_WRITE);
    news_take(txn, &w);
    ASSERT_EQ(w.n, 0);
    kv_abort(txn);

    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_cmsg_count(txn, b, sizeof(b) - 1, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1004); /* 400, 500, 600, 1001 and 1000 more: nothing twice */
    ASSERT_OK(kv_cmsg_after(txn, b, sizeof(b) - 1, 0, ids, 4, &got, &total));
    ASSERT_EQ(got, 4);
    ASSERT_U64_EQ(ids[0], 400);
    ASSERT_U64_EQ(ids[1], 500);
    ASSERT_U64_EQ(ids[2], 600);
    ASSERT_U64_EQ(ids[3], 1000);
    ASSERT_OK(kv_cmsg_count(txn, a, sizeof(a) - 1, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 2);
    ASSERT_OK(kv_cmsg_count(txn, c, sizeof(c) - 1, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1);
    ASSERT_OK(kv_cmsg_count(txn, d, sizeof(d) - 1, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 2);
    ASSERT_OK(kv_cmsg_count(txn, e, sizeof(e) - 1, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 1);
    ASSERT_OK(kv_cmsg_count(txn, (const uint8_t *)"c-f", 3, 0, UINT64_MAX, &n));
    ASSERT_U64_EQ(n, 0);
    kv_abort(txn);
    fx_close(&f);
}

/* ---- retention -------------------------------------------------------------------- */

/* The data set: message ids 1000..4999 (cutoff 3000 splits them in half), timelines of
 * users chosen so whole keys vanish next to keys of every shape (single value, sub-page,
 * sub-database), many small users so the timeline tree has several pages, and group
 * event entries spanning the cutoff. */
#define R_LO   1000
#define R_HI   5000
#define R_CUT  3000
#define R_MAXU 400
#define R_MAXE 1600

typedef struct rmodel {
    size_t nu;
    char app[R_MAXU][8], user[R_MAXU][24];
    uint64_t *tl[R_MAXU];
    size_t cnt[R_MAXU];
    size_t nevents, events_old, tl_old;
    uint64_t hi; /* message ids are [R_LO, hi) */
} rmodel_t;

static void r_user(rmodel_t *m, const char *app, const char *user, uint64_t lo, uint64_t hi,
                   uint64_t step)
{
    size_t i = m->nu++;
    ASSERT_LT(i, R_MAXU);
    snprintf(m->app[i], sizeof(m->app[i]), "%s", app);
    snprintf(m->user[i], sizeof(m->user[i]), "%s", user);
    m->tl[i] = calloc(R_MAXE, sizeof(uint64_t));
    ASSERT_NOT_NULL(m->tl[i]);
    for (uint64_t id = lo; id < hi; id += step) {
        ASSERT_LT(m->cnt[i], R_MAXE);
        m->tl[i][m->cnt[i]++] = id;
    }
}

static void r_build(fx_t *f, rmodel_t *m)
{
    uint64_t seed = 2024;
    uint8_t rec[128];
    kv_txn_t *txn;

    memset(m, 0, sizeof(*m));
    m->hi = R_HI;
    /* Named so that key order puts a vanishing key before each shape. */
    r_user(m, "a", "k01-old-big", R_LO, R_CUT, 5);        /* 400, sub-db, all old */
    r_user(m, "a", "k02-mixed-big", R_LO, R_HI, 3);       /* 1334, sub-db, spans */
    r_user(m, "a", "k03-old-one", R_LO + 7, R_LO + 8, 1); /* single value, old */
    r_user(m, "a", "k04-mixed-small", 2950, 3050, 5);     /* 20, sub-page, spans */
    r_user(m, "a", "k05-old-big", R_LO + 1, R_CUT, 4);    /* 500, all old */
    r_user(m, "a", "k06-new-one", 4000, 4001, 1);         /* single value, new */
    r_user(m, "a", "k07-old-small", 1100, 1200, 10);      /* sub-page, all old */
    r_user(m, "a", "k08-new-big", R_CUT, R_HI, 2);        /* 1000, all new (= cutoff too) */
    r_user(m, "a", "k09-old-small", 1200, 1300, 10);
    r_user(m, "a", "k10-new-small", 3100, 3200, 10);
    r_user(m, "a", "k11-old-one", R_CUT - 1, R_CUT, 1); /* just below */
    r_user(m, "a", "k12-new-one", R_CUT, R_CUT + 1, 1); /* exactly the cutoff: kept */
    r_user(m, "b", "k02-mixed-big", R_LO + 1, R_HI, 3); /* same name, other app */
    r_user(m, "b", "k99-old-big", R_LO, R_CUT, 7);      /* last key of the db, vanishes */
    /* Small users of random shapes: all old, all new or spanning. */
    for (int i = 0; i < 150; i++) {
        char name[24];
        uint64_t lo, n = 1 + rnd(&seed) % 12, kind = rnd(&seed) % 3;
        snprintf(name, sizeof(name), "u%03d", i);
        lo = kind == 0   ? R_LO + rnd(&seed) % 1500
             : kind == 1 ? R_CUT + rnd(&seed) % 1500
                         : R_CUT - 3 * n / 2;
        r_user(m, "a", name, lo, lo + 3 * n, 3);
    }
    for (size_t i = 0; i < m->nu; i++)
        m->tl_old += n_after(m->tl[i], m->cnt[i], 0) - n_after(m->tl[i], m->cnt[i], R_CUT - 1);

    txn = begin(f, KV_WRITE);
    for (uint64_t id = R_LO; id < R_HI; id++)
        ASSERT_OK(kv_msg_put(txn, id, rec, mk_rec(rec, sizeof(rec), id, 0)));
    for (size_t i = 0; i < m->nu; i++) {
        ukey_t u = uk(m->app[i], m->user[i]);
        for (size_t j = 0; j < m->cnt[i]; j++)
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, m->tl[i][j]));
        /* Group events: each small user's messages; every fourth of k02's. */
        bool small = m->user[i][0] == 'u', k02 = strstr(m->user[i], "k02") != NULL;
        for (size_t j = 0; (small || k02) && j < m->cnt[i]; j += small ? 1 : 4) {
            ASSERT_OK(kv_cevent_add(txn, u.k, u.n, m->tl[i][j]));
            m->nevents++;
            m->events_old += m->tl[i][j] < R_CUT;
        }
        /* Cursors are not retention's business. */
        ASSERT_OK(kv_cursor_put(txn, u.k, u.n, "dev", 1));
    }
    ASSERT_OK(kv_commit(txn));
}

static void r_free(rmodel_t *m)
{
    for (size_t i = 0; i < m->nu; i++)
        free(m->tl[i]);
}

/* Everything below @p cutoff is gone, everything else is there. */
static void r_verify(fx_t *f, const rmodel_t *m, uint64_t cutoff)
{
    kv_txn_t *txn = begin(f, KV_READ);
    const uint8_t *p;
    size_t len, msgs = 0, dd = 0;
    uint64_t v;

    for (uint64_t id = R_LO; id < m->hi; id++) {
        if (id < cutoff) {
            ASSERT_RC(kv_msg_get(txn, id, &p, &len), RC_ENOTFOUND);
        } else {
            check_rec(txn, id, 0);
            msgs++;
        }
    }
    ASSERT_EQ(msg_count(txn), msgs);
    for (size_t i = 0; i < m->nu; i++) {
        ukey_t u = uk(m->app[i], m->user[i]);
        size_t keep = n_after(m->tl[i], m->cnt[i], cutoff == 0 ? 0 : cutoff - 1);
        const uint64_t *rest = m->tl[i] + (m->cnt[i] - keep);
        check_timeline(txn, &u, rest, keep);
        ASSERT_EQ(tl_key_exists(txn, &u), keep > 0);
        bool small = m->user[i][0] == 'u', k02 = strstr(m->user[i], "k02") != NULL;
        for (size_t j = 0; (small || k02) && j < m->cnt[i]; j += small ? 1 : 4) {
            uint64_t id = m->tl[i][j];
            ASSERT_OK(kv_cevent_count(txn, u.k, u.n, id - 1, id, &v));
            ASSERT_U64_EQ(v, id < cutoff ? 0 : 1);
            dd += id >= cutoff;
        }
        ASSERT_OK(kv_cursor_get(txn, u.k, u.n, "dev", &v));
        ASSERT_U64_EQ(v, 1);
    }
    ASSERT_EQ(db_entries(txn, kv__of(txn)->cevents), dd);
    ASSERT_EQ(db_entries(txn, kv__of(txn)->cursors), m->nu);
    kv_abort(txn);
}

/* Run a whole pass, one step per write transaction. Returns the records removed; fails
 * when a step exceeds its budget or the pass does not end (no progress). */
static size_t r_pass(fx_t *f, uint64_t cutoff, size_t budget, size_t limit_steps)
{
    kv_retention_t pos;
    size_t total = 0, steps = 0;

    memset(&pos, 0, sizeof(pos));
    while (pos.phase != 3) {
        kv_txn_t *txn = begin(f, KV_WRITE);
        size_t removed = 12345;
        int phase = pos.phase;
        ASSERT_OK(kv_retention_step(txn, &pos, cutoff, budget, &removed));
        ASSERT_OK(kv_commit(txn));
        ASSERT_LE(removed, budget);
        ASSERT_TRUE(pos.phase >= phase && pos.phase <= 3);
        total += removed;
        if (++steps > limit_steps)
            TEST_FAIL_("retention (budget %zu) not done after %zu steps: phase %d, %zu "
                       "removed so far",
                       budget, steps, pos.phase, total);
    }
    return total;
}

static void r_case(size_t budget)
{
    rmodel_t *m = calloc(1, sizeof(*m));
    size_t want, got, records;
    kv_txn_t *txn;
    fx_t f;

    ASSERT_NOT_NULL(m);
    fx_open(&f);
    r_build(&f, m);
    want = m->tl_old + m->events_old + (R_CUT - R_LO);
    ASSERT_TRUE(m->tl_old > 2000 && m->events_old > 100);
    txn = begin(&f, KV_READ);
    records = db_entries(txn, kv__of(txn)->timeline) + db_entries(txn, kv__of(txn)->cevents) +
              msg_count(txn);
    kv_abort(txn);
    /* Each step examines `budget` records (one more per kept timeline key and per kept
     * group events key): a pass cannot need more steps than records + keys over the budget. */
    got = r_pass(&f, R_CUT, budget, (records + m->nu) / budget + 10);
    r_verify(&f, m, R_CUT);
    ASSERT_EQ(got, want);
    /* A second pass finds nothing. */
    ASSERT_EQ(r_pass(&f, R_CUT, budget, records / budget + 10), 0);
    r_verify(&f, m, R_CUT);
    r_free(m);
    free(m);
    fx_close(&f);
}

TEST_TIMEOUT(kv_retention_budget_1, 300)
{
    r_case(1);
}

TEST_TIMEOUT(kv_retention_budget_3, 120)
{
    r_case(3);
}

TEST_TIMEOUT(kv_retention_budget_64, 120)
{
    r_case(64);
}

TEST_TIMEOUT(kv_retention_budget_large, 60)
{
    r_case(1000000);
}

TEST_TIMEOUT(kv_retention_cutoff_edges, 60)
{
    rmodel_t *m = calloc(1, sizeof(*m));
    size_t all;
    kv_txn_t *txn;
    fx_t f;

    ASSERT_NOT_NULL(m);
    fx_open(&f);
    /* An empty environment: done at once, nothing removed. */
    ASSERT_EQ(r_pass(&f, UINT64_MAX, 5, 10), 0);
    r_build(&f, m);
    /* Cutoff 0 and the first id: nothing is below. */
    ASSERT_EQ(r_pass(&f, 0, 7, 100000), 0);
    ASSERT_EQ(r_pass(&f, R_LO, 1000000, 10), 0);
    r_verify(&f, m, 0);
    /* Everything below: every record goes, every timeline key vanishes. */
    txn = begin(&f, KV_READ);
    all = db_entries(txn, kv__of(txn)->timeline) + db_entries(txn, kv__of(txn)->cevents) +
          msg_count(txn);
    kv_abort(txn);
    ASSERT_EQ(r_pass(&f, UINT64_MAX, 5, 100000), all);
    r_verify(&f, m, UINT64_MAX);
    txn = begin(&f, KV_READ);
    ASSERT_EQ(db_entries(txn, kv__of(txn)->timeline), 0);
    ASSERT_EQ(db_entries(txn, kv__of(txn)->cevents), 0);
    ASSERT_EQ(msg_count(txn), 0);
    kv_abort(txn);
    r_free(m);
    free(m);
    fx_close(&f);
}

/* The store actor keeps writing between retention steps: new messages (above the cutoff)
 * for new users before and after the pass's position, and for users the pass keeps, with
 * their group events. Users whose entries are all old still vanish; nothing new goes. */
TEST_TIMEOUT(kv_retention_interleaved_writes, 120)
{
    rmodel_t *m = calloc(1, sizeof(*m));
    kv_retention_t pos;
    size_t total = 0, steps = 0, want, nkept = 0, kept[R_MAXU];
    uint8_t rec[128];
    kv_txn_t *txn;
    fx_t f;

    ASSERT_NOT_NULL(m);
    fx_open(&f);
    r_build(&f, m);
    want = m->tl_old + m->events_old + (R_CUT - R_LO);
    for (size_t i = 0; i < m->nu; i++)
        if (m->user[i][0] == 'u' && m->tl[i][m->cnt[i] - 1] >= R_CUT)
            kept[nkept++] = i;
    ASSERT_TRUE(nkept > 20);
    memset(&pos, 0, sizeof(pos));
    while (pos.phase != 3) {
        size_t removed, i;
        uint64_t id = m->hi++;
        ukey_t u;
        txn = begin(&f, KV_WRITE);
        ASSERT_OK(kv_retention_step(txn, &pos, R_CUT, 5, &removed));
        total += removed;
        ASSERT_OK(kv_msg_put(txn, id, rec, mk_rec(rec, sizeof(rec), id, 0)));
        if (steps % 10 == 0) {
            /* A new user; "a" sorts before the small users, "b" after all of "a". */
            char name[24];
            snprintf(name, sizeof(name), "n%05zu", steps);
            r_user(m, steps % 20 ? "a" : "b", name, id, id + 1, 1);
            u = uk(m->app[m->nu - 1], name);
            ASSERT_OK(kv_timeline_add(txn, u.k, u.n, id));
        }
        i = kept[steps % nkept];
        ASSERT_LT(m->cnt[i], R_MAXE);
        m->tl[i][m->cnt[i]++] = id;
        u = uk(m->app[i], m->user[i]);
        ASSERT_OK(kv_timeline_add(txn, u.k, u.n, id));
        ASSERT_OK(kv_cevent_add(txn, u.k, u.n, id));
        ASSERT_OK(kv_cursor_put(txn, u.k, u.n, "dev", 1));
        ASSERT_OK(kv_commit(txn));
        ASSERT_LT(++steps, 100000);
    }
    /* New users' cursors, so r_verify's count of cursors holds. */
    txn = begin(&f, KV_WRITE);
    for (size_t i = 0; i < m->nu; i++) {
        ukey_t u = uk(m->app[i], m->user[i]);
        ASSERT_OK(kv_cursor_put(txn, u.k, u.n, "dev", 1));
    }
    ASSERT_OK(kv_commit(txn));
    ASSERT_EQ(total, want);
    r_verify(&f, m, R_CUT);
    r_free(m);
    free(m);
    fx_close(&f);
}

/* ---- snapshots -------------------------------------------------------------------- */

TEST(kv_msg_reader_sees_snapshot_during_write)
{
    ukey_t u = uk("app", "alice");
    static const uint64_t before[] = {10, 20, 30};
    static const uint64_t after_w[] = {10, 20, 30, 40, 50};
    uint8_t rec[128];
    const uint8_t *p;
    size_t len;
    uint64_t v;
    kv_txn_t *r, *w, *r2;
    fx_t f;

    fx_open(&f);
    w = begin(&f, KV_WRITE);
    for (size_t i = 0; i < 3; i++) {
        ASSERT_OK(kv_msg_put(w, before[i], rec, mk_rec(rec, sizeof(rec), before[i], 0)));
        ASSERT_OK(kv_timeline_add(w, u.k, u.n, before[i]));
    }
    ASSERT_OK(kv_cursor_put(w, u.k, u.n, "d", 10));
    ASSERT_OK(kv_commit(w));

    r = begin(&f, KV_READ);
    w = begin(&f, KV_WRITE);
    ASSERT_OK(kv_msg_put(w, 40, rec, mk_rec(rec, sizeof(rec), 40, 0)));
    ASSERT_OK(kv_msg_put(w, 50, rec, mk_rec(rec, sizeof(rec), 50, 0)));
    ASSERT_OK(kv_timeline_add(w, u.k, u.n, 40));
    ASSERT_OK(kv_timeline_add(w, u.k, u.n, 50));
    ASSERT_OK(kv_msg_replace(w, 20, rec, mk_rec(rec, sizeof(rec), 20, 5)));
    ASSERT_OK(kv_cursor_put(w, u.k, u.n, "d", 30));
    /* While the write is open, and after it commits, the reader sees its snapshot. */
    for (int pass = 0; pass < 2; pass++) {
        check_timeline(r, &u, before, 3);
        check_page(r, &u, before, 3, 10, 10);
        ASSERT_RC(kv_msg_get(r, 40, &p, &len), RC_ENOTFOUND);
        check_rec(r, 20, 0);
        ASSERT_OK(kv_msg_last_id(r, &v));
        ASSERT_U64_EQ(v, 30);
        ASSERT_OK(kv_cursor_get(r, u.k, u.n, "d", &v));
        ASSERT_U64_EQ(v, 10);
        if (pass == 0) {
            check_timeline(w, &u, after_w, 5);
            ASSERT_OK(kv_commit(w));
        }
    }
    kv_abort(r);
    r2 = begin(&f, KV_READ);
    check_timeline(r2, &u, after_w, 5);
    check_rec(r2, 20, 5);
    ASSERT_OK(kv_cursor_get(r2, u.k, u.n, "d", &v));
    ASSERT_U64_EQ(v, 30);
    kv_abort(r2);
    fx_close(&f);
}
