/* Tests for the deferred id lists, the conversation index and the timelines
 * (src/core/kv_defer.c, kv_tail.c): reads merge the tail with the database at every stage
 * of draining, snapshots stay exact while epochs are drained and freed under them, a
 * reopen applies what cpend holds, a read-only open merges it, and a failed commit's
 * appends are never seen. Each runs over cmsgs and over the timelines. Real LMDB in a temp
 * directory. */
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kv.h"
#include "core/kv_int.h" /* raw LMDB counts: what is in cmsgs and cpend */
#include "core/mem.h"
#include "core/rc.h"
#include "support/test.h"
#include "support/tmpdir.h"

typedef struct fx {
    char dir[TMPDIR_MAX];
    kv_t *kv;
} fx_t;

/* Open with KV_DEFER and epochs of @p tail entries. */
static void fx_open(fx_t *f, const char *tail)
{
    tmpdir_make(f->dir, "kvdefer");
    ASSERT_OK(setenv("CIM_KV_TAIL", tail, 1));
    ASSERT_OK(kv_open(f->dir, KV_NOSYNC | KV_DEFER, &f->kv));
    unsetenv("CIM_KV_TAIL");
}

static void fx_close(fx_t *f)
{
    kv_close(f->kv);
    tmpdir_remove(f->dir);
}

static kv_txn_t *begin(kv_t *kv, int mode)
{
    kv_txn_t *txn = NULL;
    ASSERT_OK(kv_begin(kv, mode, &txn));
    return txn;
}

#define CRASH_MAX (TMPDIR_MAX + 8)

/* A copy of @p dir as a kill -9 would leave it (the tail gone, cpend kept) in @p out: the
 * writer's pages are all in the page cache between transactions. tmpdir_remove it. */
static void crash_copy(const char *dir, char out[CRASH_MAX])
{
    char cmd[2 * CRASH_MAX + 16];
    snprintf(out, CRASH_MAX, "%s-crash", dir);
    snprintf(cmd, sizeof(cmd), "cp -a %s %s", dir, out);
    ASSERT_EQ(system(cmd), 0);
}

static size_t raw_entries(kv_t *kv, MDB_dbi dbi)
{
    kv_txn_t *txn = begin(kv, KV_READ);
    MDB_stat st;
    ASSERT_EQ(mdb_stat(kv__txn(txn), dbi, &st), MDB_SUCCESS);
    kv_abort(txn);
    return st.ms_entries;
}

#define KEYS   5
#define MAXIDS 4096

/* The model: key i's ids, ascending; conversation keys (cmsgs) or user keys (timelines). */
typedef struct model {
    bool tl;
    char key[KEYS][32];
    size_t klen[KEYS];
    uint64_t ids[KEYS][MAXIDS];
    size_t n[KEYS];
} model_t;

static void model_init(model_t *m, bool tl)
{
    memset(m, 0, sizeof(*m));
    m->tl = tl;
    for (int i = 0; i < KEYS; i++)
        m->klen[i] = tl ? (size_t)snprintf(m->key[i], sizeof(m->key[i]), "default%cu%d", 0, i)
                        : (size_t)snprintf(m->key[i], sizeof(m->key[i]), "default%c>u%d%cpeer",
                                           0, i, 0);
}

static size_t klen_of(const model_t *m, int i)
{
    return m->klen[i];
}

/* The model's database: the timelines or the conversation index. */
static MDB_dbi list_dbi(const kv_t *kv, const model_t *m)
{
    return m->tl ? kv->timeline : kv->cmsgs;
}

static int add_id(kv_txn_t *txn, const model_t *m, int i, uint64_t id)
{
    const uint8_t *k = (const uint8_t *)m->key[i];
    return m->tl ? kv_timeline_add(txn, k, klen_of(m, i), id)
                 : kv_cmsg_add(txn, k, klen_of(m, i), id, false);
}

typedef int (*page_fn)(kv_txn_t *txn, const uint8_t *key, size_t klen, uint64_t after,
                       uint64_t *ids, size_t max, size_t *n, uint64_t *total_after);

/* Page key @p i forwards through all of it (kv_timeline_page, kv_cmsg_after), 8 at a time. */
static void check_forward(kv_txn_t *txn, const model_t *m, int i, page_fn page_of)
{
    size_t n = m->n[i], got = 0, seen = 0;
    uint64_t page[8], total = 0, after = 0;

    do {
        ASSERT_OK(page_of(txn, (const uint8_t *)m->key[i], klen_of(m, i), after, page, 8, &got,
                          &total));
        ASSERT_EQ(total, n - seen);
        for (size_t j = 0; j < got; j++, seen++)
            ASSERT_EQ(page[j], m->ids[i][seen]);
        if (got > 0)
            after = page[got - 1];
    } while (got > 0);
    ASSERT_EQ(seen, n);
}

/* Every read of a timeline, for key @p i, against the model. */
static void check_timeline(kv_txn_t *txn, const model_t *m, int i)
{
    const uint8_t *k = (const uint8_t *)m->key[i];
    size_t kl = klen_of(m, i), n = m->n[i];
    uint64_t out = 0;

    ASSERT_OK(kv_timeline_count(txn, k, kl, &out));
    ASSERT_EQ(out, n);
    ASSERT_OK(kv_timeline_last(txn, k, kl, &out));
    ASSERT_EQ(out, n ? m->ids[i][n - 1] : 0);
    for (size_t j = 0; j < n; j += 1 + j / 4)
        ASSERT_OK(kv_timeline_has(txn, k, kl, m->ids[i][j]));
    ASSERT_EQ(kv_timeline_has(txn, k, kl, n ? m->ids[i][n - 1] + 1 : 1), RC_ENOTFOUND);
    check_forward(txn, m, i, kv_timeline_page);
}

/* Every read the index has, for key @p i, against the model. */
static void check_key(kv_txn_t *txn, const model_t *m, int i)
{
    const uint8_t *k = (const uint8_t *)m->key[i];
    size_t kl = klen_of(m, i), n = m->n[i], got = 0;
    uint64_t out = 0, page[8];
    bool more = false;

    if (m->tl) {
        check_timeline(txn, m, i);
        return;
    }
    ASSERT_OK(kv_cmsg_count(txn, k, kl, 0, UINT64_MAX, &out));
    ASSERT_EQ(out, n);
    ASSERT_OK(kv_cmsg_last(txn, k, kl, UINT64_MAX, &out));
    ASSERT_EQ(out, n ? m->ids[i][n - 1] : 0);
    if (n > 2) { /* bounded ranges */
        ASSERT_OK(kv_cmsg_count(txn, k, kl, m->ids[i][0], m->ids[i][n - 2], &out));
        ASSERT_EQ(out, n - 2);
        ASSERT_OK(kv_cmsg_last(txn, k, kl, m->ids[i][n - 2], &out));
        ASSERT_EQ(out, m->ids[i][n - 2]);
    }
    /* page backwards through all of it */
    uint64_t before = 0;
    size_t seen = 0;
    do {
        ASSERT_OK(kv_cmsg_before(txn, k, kl, before, page, 8, &got, &more));
        for (size_t j = 0; j < got; j++, seen++)
            ASSERT_EQ(page[j], m->ids[i][n - 1 - seen]);
        if (got > 0)
            before = page[got - 1];
    } while (more);
    ASSERT_EQ(seen, n);
    check_forward(txn, m, i, kv_cmsg_after); /* and forwards */
}

static void check_all(kv_t *kv, const model_t *m)
{
    kv_txn_t *txn = begin(kv, KV_READ);
    for (int i = 0; i < KEYS; i++)
        check_key(txn, m, i);
    kv_abort(txn);
}

/* Stop (a clean stop applies the tail), start again: cpend empty, the model's database
 * holds @p entries, every read as the model says. Then the fixture is gone. */
static void reopen_expect(fx_t *f, const model_t *m, size_t entries)
{
    kv_close(f->kv);
    ASSERT_OK(kv_open(f->dir, KV_NOSYNC | KV_DEFER, &f->kv));
    ASSERT_EQ(raw_entries(f->kv, f->kv->cpend), 0);
    ASSERT_EQ(raw_entries(f->kv, list_dbi(f->kv, m)), entries);
    check_all(f->kv, m);
    fx_close(f);
}

/* One commit: key i gets ids per[i] ids (next ids from *id). */
static void commit_ids(kv_t *kv, model_t *m, uint64_t *id, const int per[KEYS])
{
    kv_txn_t *txn = begin(kv, KV_WRITE);
    for (int i = 0; i < KEYS; i++)
        for (int j = 0; j < per[i]; j++) {
            ASSERT_OK(add_id(txn, m, i, *id));
            m->ids[i][m->n[i]++] = (*id)++;
        }
    /* the writer's own reads see what it just added */
    for (int i = 0; i < KEYS; i++)
        check_key(txn, m, i);
    ASSERT_OK(kv_commit(txn));
}

static void reads_merge(bool tl)
{
    fx_t f;
    model_t m;
    uint64_t id = 1000;
    size_t max_cpend = 0, min_cmsgs_gap = SIZE_MAX;

    model_init(&m, tl);
    fx_open(&f, "16"); /* an epoch drains after 16 entries: many rotations below */
    for (int round = 0; round < 120; round++) {
        int per[KEYS] = {1, round % 3, 0, round % 7 == 0 ? 20 : 0, 1};
        commit_ids(f.kv, &m, &id, per);
        check_all(f.kv, &m);
        size_t total = 0;
        for (int i = 0; i < KEYS; i++)
            total += m.n[i];
        size_t in = raw_entries(f.kv, list_dbi(f.kv, &m));
        size_t logged = raw_entries(f.kv, f.kv->cpend);
        if (logged > max_cpend)
            max_cpend = logged;
        if (total - in < min_cmsgs_gap)
            min_cmsgs_gap = total - in;
    }
    /* something was deferred (logged, not in cmsgs) and something was drained */
    ASSERT_TRUE(max_cpend > 0);
    ASSERT_TRUE(raw_entries(f.kv, list_dbi(f.kv, &m)) > 0);
    ASSERT_LT(raw_entries(f.kv, f.kv->cpend), 120);
    fx_close(&f);
}

TEST(kv_defer_reads_merge_tail_and_index)
{
    reads_merge(false);
}

TEST(kv_defer_timeline_reads_merge_tail_and_timelines)
{
    reads_merge(true);
}

static void reopen_applies(bool tl)
{
    fx_t f;
    model_t m;
    uint64_t id = 1;
    kv_t *ro = NULL;
    char crash[CRASH_MAX];

    model_init(&m, tl);
    /* nothing drains, and no key reaches the chain bound (16) that would put it at once:
     * all of it stays in the tail and cpend */
    fx_open(&f, "100000");
    for (int round = 0; round < 10; round++) {
        int per[KEYS] = {1, 1, 0, round % 2, 1};
        commit_ids(f.kv, &m, &id, per);
    }
    ASSERT_EQ(raw_entries(f.kv, list_dbi(f.kv, &m)), 0);
    ASSERT_EQ(raw_entries(f.kv, f.kv->cpend), 10);
    check_all(f.kv, &m);
    crash_copy(f.dir, crash);

    /* a read-only open (cimdump) merges what cpend holds */
    ASSERT_OK(kv_open(crash, KV_RDONLY, &ro));
    ASSERT_EQ(raw_entries(ro, ro->cpend), 10);
    check_all(ro, &m);
    kv_close(ro);
    /* a start killed between two slices of its apply: the first half of every key's ids in
     * the database, cpend whole; a read merges the two without counting an id twice, and
     * the next start converges */
    ASSERT_OK(kv_open(crash, KV_NOSYNC, &ro)); /* (no KV_DEFER: nothing applied) */
    kv_txn_t *txn = begin(ro, KV_WRITE);
    size_t half = 0;
    for (int i = 0; i < KEYS; i++)
        for (size_t j = 0; j < m.n[i] / 2; j++, half++)
            ASSERT_OK(add_id(txn, &m, i, m.ids[i][j]));
    ASSERT_OK(kv_commit(txn));
    ASSERT_EQ(raw_entries(ro, list_dbi(ro, &m)), half);
    kv_close(ro);
    ASSERT_OK(kv_open(crash, KV_RDONLY, &ro));
    check_all(ro, &m);
    kv_close(ro);
    ASSERT_OK(kv_open(crash, KV_NOSYNC | KV_DEFER, &ro));
    ASSERT_EQ(raw_entries(ro, ro->cpend), 0);
    ASSERT_EQ(raw_entries(ro, list_dbi(ro, &m)), 35);
    check_all(ro, &m);
    kv_close(ro);
    tmpdir_remove(crash);

    reopen_expect(&f, &m, 35); /* the clean stop applies it all */
}

TEST(kv_defer_reopen_applies_the_log)
{
    reopen_applies(false);
}

TEST(kv_defer_timeline_reopen_applies_the_log)
{
    reopen_applies(true);
}

/* A commit of one id to each of keys "k%06d" @p from..@p to - 1 (ids from @p id). */
static void commit_keys(kv_t *kv, int from, int to, uint64_t id)
{
    kv_txn_t *txn = begin(kv, KV_WRITE);
    for (int i = from; i < to; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "k%06d", i);
        ASSERT_OK(kv_cmsg_add(txn, (const uint8_t *)key, (size_t)len, id + (uint64_t)i, false));
    }
    ASSERT_OK(kv_commit(txn));
}

/* Every @p step-th key "k%06d" of 0..@p n - 1 holds @p want ids. */
static void expect_key_counts(kv_txn_t *txn, int n, int step, uint64_t want)
{
    uint64_t got;
    for (int i = 0; i < n; i += step) {
        char key[16];
        int len = snprintf(key, sizeof(key), "k%06d", i);
        ASSERT_OK(kv_cmsg_count(txn, (const uint8_t *)key, (size_t)len, 0, UINT64_MAX, &got));
        ASSERT_U64_EQ(got, want);
    }
}

/* A read-only open (cimdump) of what a kill -9 left: a cpend of as many keys as entries
 * (every conversation new). */
TEST(kv_defer_read_only_open_of_many_keys)
{
    enum { N = 5000 };
    fx_t f;
    kv_t *ro = NULL;
    kv_txn_t *txn;
    char crash[CRASH_MAX];

    fx_open(&f, "1000000");
    commit_keys(f.kv, 0, N, 100);
    crash_copy(f.dir, crash);
    fx_close(&f);
    ASSERT_OK(kv_open(crash, KV_RDONLY, &ro));
    ASSERT_EQ(raw_entries(ro, ro->cmsgs), 0);
    txn = begin(ro, KV_READ);
    expect_key_counts(txn, N, 499, 1);
    kv_abort(txn);
    kv_close(ro);
    tmpdir_remove(crash);
}

static int no_stat(void *ctx, const kv_dbstat_t *st)
{
    (void)ctx, (void)st;
    return 0;
}

static uint64_t pages_in_use(kv_t *kv)
{
    kv_envinfo_t info;
    ASSERT_OK(kv_env_info(kv, &info));
    return info.last_page + 1;
}

/* The pages left on the free list by a stop that applies a tail touching every leaf of
 * cmsgs, in slices of @p slice keys; keys' ids checked after it. */
static uint64_t stop_free_pages(const char *slice)
{
    enum { N = 20000, STEP = 500 };
    uint64_t before, after, free_pages = 0;
    kv_txn_t *txn;
    kv_t *ro = NULL;
    fx_t f;

    /* cmsgs of 8 ids a key, written a few leaves a commit (not deferred), so that the free
     * list stays short */
    tmpdir_make(f.dir, "kvdefer");
    ASSERT_OK(kv_open(f.dir, KV_NOSYNC, &f.kv));
    for (uint64_t r = 0; r < 8; r++)
        for (int k = 0; k < N; k += STEP)
            commit_keys(f.kv, k, k + STEP, 1000000 * (r + 1));
    kv_close(f.kv);
    ASSERT_OK(setenv("CIM_KV_TAIL", "10000000", 1)); /* nothing drains */
    ASSERT_OK(kv_open(f.dir, KV_NOSYNC | KV_DEFER, &f.kv));
    unsetenv("CIM_KV_TAIL");
    commit_keys(f.kv, 0, N, 9000000); /* the tail: one more id for every key */
    before = pages_in_use(f.kv);
    ASSERT_OK(setenv("CIM_KV_APPLY_SLICE", slice, 1));
    kv_close(f.kv);
    unsetenv("CIM_KV_APPLY_SLICE");
    ASSERT_OK(kv_open(f.dir, KV_RDONLY, &ro));
    after = pages_in_use(ro);
    txn = begin(ro, KV_READ);
    ASSERT_OK(kv_stat_each(txn, no_stat, NULL, &free_pages));
    ASSERT_TRUE(after > before); /* (the leaves split: the data grew) */
    expect_key_counts(txn, N, 997, 9);
    kv_abort(txn);
    ASSERT_EQ(raw_entries(ro, ro->cpend), 0);
    kv_close(ro);
    tmpdir_remove(f.dir);
    return free_pages;
}

/* The stop applies the deferred index a slice of keys a transaction: each slice's copies of
 * the leaves it touches reuse the pages earlier slices freed, where one transaction copied
 * every touched leaf into new pages and left the old ones free (on 20 M messages, 75,624
 * pages, and a doubled map). Here: ~600 free pages in one transaction, ~120 in slices. */
TEST_TIMEOUT(kv_defer_stop_applies_in_slices, 120)
{
    uint64_t whole = stop_free_pages("1000000000"), sliced = stop_free_pages("500");
    ASSERT_TRUE(whole > 300);
    ASSERT_LT(sliced * 3, whole);
}

static void snapshot_outlives(bool tl)
{
    fx_t f;
    model_t m, old;
    uint64_t id = 1;
    kv_txn_t *r;

    model_init(&m, tl);
    fx_open(&f, "16");
    for (int round = 0; round < 6; round++) {
        int per[KEYS] = {1, 1, 1, 1, 1};
        commit_ids(f.kv, &m, &id, per);
    }
    old = m;
    r = begin(f.kv, KV_READ); /* held across drains that retire epochs it reads */
    for (int round = 0; round < 60; round++) {
        int per[KEYS] = {1, 1, 0, 2, 1};
        commit_ids(f.kv, &m, &id, per);
        if (round % 10 == 0)
            for (int i = 0; i < KEYS; i++)
                check_key(r, &old, i);
    }
    for (int i = 0; i < KEYS; i++)
        check_key(r, &old, i);
    kv_abort(r);
    check_all(f.kv, &m);
    fx_close(&f);
}

TEST(kv_defer_snapshot_outlives_the_drain)
{
    snapshot_outlives(false);
}

TEST(kv_defer_timeline_snapshot_outlives_the_drain)
{
    snapshot_outlives(true);
}

static int on_new(void *ctx, const uint8_t *key, size_t klen, uint64_t first)
{
    (void)key, (void)klen;
    *(uint64_t *)ctx = first;
    return 0;
}

TEST(kv_defer_news_sees_the_tail)
{
    fx_t f;
    kv_txn_t *txn;
    uint64_t first = 0;
    const uint8_t *k = (const uint8_t *)"default\0>a\0b";

    fx_open(&f, "100000");
    txn = begin(f.kv, KV_WRITE);
    ASSERT_OK(kv_cmsg_add(txn, k, 12, 7, true));
    ASSERT_OK(kv_cmsg_news(txn, on_new, &first));
    ASSERT_EQ(first, 7); /* new: nowhere before */
    ASSERT_OK(kv_commit(txn));
    ASSERT_EQ(raw_entries(f.kv, f.kv->cmsgs), 0); /* in the tail only */

    txn = begin(f.kv, KV_WRITE);
    first = 0;
    ASSERT_OK(kv_cmsg_add(txn, k, 12, 8, true));
    ASSERT_OK(kv_cmsg_news(txn, on_new, &first));
    ASSERT_EQ(first, 0); /* the tail has it: not new */
    ASSERT_OK(kv_commit(txn));
    fx_close(&f);
}

static void failed_commit(bool tl)
{
    fx_t f;
    model_t m;
    uint64_t id = 1;
    int failed = 0;
    uint8_t big[2000];

    model_init(&m, tl);
    memset(big, 'x', sizeof(big));
    ASSERT_OK(setenv("CIM_KV_MAP_SIZE", "262144", 1));
    fx_open(&f, "16"); /* draining all along: a failed commit puts its drain back too */
    unsetenv("CIM_KV_MAP_SIZE");
    /* commits until one fails for a full map: some fail at the commit (the cpend record,
     * the drain), after their appends went to the tail */
    for (int round = 0; round < 2000 && failed < 3; round++) {
        kv_txn_t *txn = begin(f.kv, KV_WRITE);
        int rc = kv_msg_put(txn, id + 100000, big, sizeof(big));
        for (int i = 0; i < KEYS && rc == 0; i++)
            rc = add_id(txn, &m, i, id + (uint64_t)i);
        if (rc == 0)
            rc = kv_commit(txn);
        else
            kv_abort(txn);
        if (rc == 0) {
            for (int i = 0; i < KEYS; i++)
                m.ids[i][m.n[i]++] = id + (uint64_t)i;
        } else {
            ASSERT_EQ(rc, RC_EMAPFULL);
            failed++;
            check_all(f.kv, &m);
            ASSERT_OK(kv_grow(f.kv));
        }
        id += KEYS;
    }
    ASSERT_TRUE(failed > 0);
    check_all(f.kv, &m);
    kv_close(f.kv);
    ASSERT_OK(kv_open(f.dir, KV_NOSYNC | KV_DEFER, &f.kv));
    check_all(f.kv, &m);
    fx_close(&f);
}

TEST(kv_defer_failed_commit_is_never_seen)
{
    failed_commit(false);
}

TEST(kv_defer_timeline_failed_commit_is_never_seen)
{
    failed_commit(true);
}

/* A group's timeline appends (kv_timeline_fanout) are put at the commit, beside deferred
 * ones of the same timeline, lower and higher, and a late one: reads see one list in id
 * order, and the stop puts the rest in. */
TEST(kv_defer_timeline_fanout_is_put_at_commit)
{
    fx_t f;
    model_t m;
    kv_txn_t *txn;

    model_init(&m, true);
    fx_open(&f, "100000"); /* nothing drains */
    txn = begin(f.kv, KV_WRITE);
    ASSERT_OK(kv_timeline_add(txn, (const uint8_t *)m.key[0], klen_of(&m, 0), 3));
    ASSERT_OK(kv_timeline_fanout(txn, (const uint8_t *)m.key[0], klen_of(&m, 0), 5));
    ASSERT_OK(kv_timeline_add(txn, (const uint8_t *)m.key[0], klen_of(&m, 0), 7));
    ASSERT_OK(kv_timeline_fanout(txn, (const uint8_t *)m.key[1], klen_of(&m, 1), 5));
    m.ids[0][0] = 3, m.ids[0][1] = 5, m.ids[0][2] = 7, m.n[0] = 3;
    m.ids[1][0] = 5, m.n[1] = 1;
    for (int i = 0; i < KEYS; i++) /* the writer's own reads */
        check_key(txn, &m, i);
    ASSERT_OK(kv_commit(txn));
    ASSERT_EQ(raw_entries(f.kv, f.kv->timeline), 2); /* the fanout's, at once */
    ASSERT_EQ(raw_entries(f.kv, f.kv->cpend), 1);    /* the others, deferred */
    check_all(f.kv, &m);
    /* a late id (a cluster's), below what the tail and the timeline hold */
    txn = begin(f.kv, KV_WRITE);
    ASSERT_OK(kv_timeline_add(txn, (const uint8_t *)m.key[0], klen_of(&m, 0), 4));
    ASSERT_OK(kv_commit(txn));
    m.ids[0][1] = 4, m.ids[0][2] = 5, m.ids[0][3] = 7, m.n[0] = 4;
    check_all(f.kv, &m);
    reopen_expect(&f, &m, 5);
}

/* A timeline with its chain's bound (1,024) of entries in the open epoch gets the next ones
 * put at once, and what the tail held of it goes in first, so that nothing is put below
 * them later; reads stay exact throughout. */
TEST(kv_defer_timeline_busy_key_is_put_at_once)
{
    fx_t f;
    model_t m;
    uint64_t id = 1;
    size_t in;

    model_init(&m, true);
    fx_open(&f, "100000");
    /* 1,000, then 30 (past the bound), then 20 (which would fit under it again), then
     * 100 more */
    for (int round = 0; round < 13; round++) {
        int per[KEYS] = {round < 10 ? 100 : round == 10 ? 30 : round == 11 ? 20 : 100, 1};
        commit_ids(f.kv, &m, &id, per);
        check_all(f.kv, &m);
    }
    in = raw_entries(f.kv, f.kv->timeline);
    ASSERT_EQ(in, m.n[0]); /* all of the busy one, none of the other (13 ids, deferred) */
    reopen_expect(&f, &m, m.n[0] + 13);
}

/* A schema 5 cimd's cpend records (a key and an id each, every key a conversation's, no
 * tag) are applied by the next start, as a crash left them. */
TEST(kv_defer_schema5_records_apply)
{
    fx_t f;
    model_t m;
    kv_txn_t *txn;
    uint8_t rec[512], tkey[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    size_t len = 0;

    model_init(&m, false);
    tmpdir_make(f.dir, "kvdefer");
    ASSERT_OK(kv_open(f.dir, KV_NOSYNC, &f.kv));
    for (int i = 0; i < 2; i++)
        for (uint64_t id = 10; id < 13; id++) {
            rec[len++] = (uint8_t)klen_of(&m, i);
            memcpy(rec + len, m.key[i], klen_of(&m, i));
            len += klen_of(&m, i);
            for (int b = 7; b >= 0; b--)
                rec[len++] = (uint8_t)((id + (uint64_t)i * 100) >> (8 * b));
            m.ids[i][m.n[i]++] = id + (uint64_t)i * 100;
        }
    txn = begin(f.kv, KV_WRITE);
    MDB_val k = {8, tkey}, v = {len, rec};
    ASSERT_EQ(mdb_put(kv__txn(txn), f.kv->cpend, &k, &v, 0), MDB_SUCCESS);
    ASSERT_OK(kv_commit(txn));
    reopen_expect(&f, &m, 6);
}

/* ---- threads (TSan) ------------------------------------------------------------------ */

typedef struct race {
    kv_t *kv;
    model_t m;
    _Atomic bool stop;
    _Atomic long checks;
} race_t;

/* Every commit adds one id to every key: in any snapshot all keys have the same count,
 * and each key's last id is its count-th. */
static void *reader(void *arg)
{
    race_t *r = arg;
    while (!atomic_load(&r->stop)) {
        kv_txn_t *txn = NULL;
        uint64_t n0 = 0, n = 0, last = 0;
        if (kv_begin(r->kv, KV_READ, &txn) != 0)
            abort();
        for (int i = 0; i < KEYS; i++) {
            const uint8_t *k = (const uint8_t *)r->m.key[i];
            size_t kl = klen_of(&r->m, i);
            if (r->m.tl ? kv_timeline_count(txn, k, kl, &n) != 0 ||
                              kv_timeline_last(txn, k, kl, &last) != 0
                        : kv_cmsg_count(txn, k, kl, 0, UINT64_MAX, &n) != 0 ||
                              kv_cmsg_last(txn, k, kl, UINT64_MAX, &last) != 0)
                abort();
            if (i == 0)
                n0 = n;
            if (n != n0 || last != (n ? n * 10 + (uint64_t)i : 0)) {
                fprintf(stderr, "key %d: count %llu (key 0: %llu), last %llu\n", i,
                        (unsigned long long)n, (unsigned long long)n0, (unsigned long long)last);
                abort();
            }
        }
        kv_abort(txn);
        atomic_fetch_add(&r->checks, 1);
    }
    return NULL;
}

static void threads_read(bool tl)
{
    fx_t f;
    race_t *r = calloc(1, sizeof(*r));
    pthread_t th[2];

    model_init(&r->m, tl);
    fx_open(&f, "16");
    r->kv = f.kv;
    for (int t = 0; t < 2; t++)
        ASSERT_EQ(pthread_create(&th[t], NULL, reader, r), 0);
    /* at least 400 commits, and on until the readers checked 100 snapshots */
    for (uint64_t c = 1; c <= 400 || (atomic_load(&r->checks) < 100 && c <= 20000); c++) {
        kv_txn_t *txn = begin(f.kv, KV_WRITE);
        for (int i = 0; i < KEYS; i++)
            ASSERT_OK(add_id(txn, &r->m, i, c * 10 + (uint64_t)i));
        ASSERT_OK(kv_commit(txn));
    }
    atomic_store(&r->stop, true);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    ASSERT_TRUE(atomic_load(&r->checks) >= 100);
    free(r);
    fx_close(&f);
}

TEST_TIMEOUT(kv_defer_threads_read_while_draining, 120)
{
    threads_read(false);
}

TEST_TIMEOUT(kv_defer_timeline_threads_read_while_draining, 120)
{
    threads_read(true);
}

/* Applying a whole tail (at a clean stop, or at the start after a crash) can need more
 * room than the map has left: both grow it, as the store does for a batch. */
TEST_TIMEOUT(kv_defer_apply_grows_the_map, 120)
{
    fx_t f;
    char copy[CRASH_MAX];
    kv_t *kv = NULL;
    uint64_t id = 1;

    ASSERT_OK(setenv("CIM_KV_MAP_SIZE", "262144", 1));
    fx_open(&f, "1000000"); /* nothing drains */
    unsetenv("CIM_KV_MAP_SIZE");
    for (int c = 0; c < 400; c++) {
        int rc;
        do {
            kv_txn_t *txn = begin(f.kv, KV_WRITE);
            for (int k = 0; k < 200; k++) {
                char key[40];
                int n = snprintf(key, sizeof(key), "default%c>u%03d%cpeer%04d", 0, k % 7, 0,
                                 c * 200 + k);
                ASSERT_OK(
                    kv_cmsg_add(txn, (const uint8_t *)key, (size_t)n, id + (uint64_t)k, false));
            }
            if ((rc = kv_commit(txn)) == RC_EMAPFULL)
                ASSERT_OK(kv_grow(f.kv));
            else
                ASSERT_OK(rc);
        } while (rc != 0);
        id += 200;
    }
    ASSERT_EQ(raw_entries(f.kv, f.kv->cmsgs), 0);
    ASSERT_EQ(raw_entries(f.kv, f.kv->cpend), 400);
    /* the map filled up to its last pages */
    for (uint64_t m = 1;; m++) {
        static uint8_t big[1500];
        kv_txn_t *txn = begin(f.kv, KV_WRITE);
        int rc = kv_msg_put(txn, m, big, sizeof(big));
        if (rc == 0)
            rc = kv_commit(txn);
        else
            kv_abort(txn);
        if (rc == RC_EMAPFULL)
            break;
        ASSERT_OK(rc);
    }
    crash_copy(f.dir, copy); /* cpend full, the map as small as it got */
    kv_close(f.kv);                                    /* the clean stop applies it all */
    ASSERT_OK(setenv("CIM_KV_MAP_SIZE", "262144", 1)); /* (no larger map than recorded) */
    ASSERT_OK(kv_open(f.dir, KV_NOSYNC | KV_DEFER, &f.kv));
    ASSERT_EQ(raw_entries(f.kv, f.kv->cpend), 0);
    ASSERT_EQ(raw_entries(f.kv, f.kv->cmsgs), 80000);
    fx_close(&f);
    ASSERT_OK(kv_open(copy, KV_NOSYNC | KV_DEFER, &kv)); /* the start after the crash */
    unsetenv("CIM_KV_MAP_SIZE");
    ASSERT_EQ(raw_entries(kv, kv->cpend), 0);
    ASSERT_EQ(raw_entries(kv, kv->cmsgs), 80000);
    kv_close(kv);
    tmpdir_remove(copy);
}

/* ---- new conversations' records (kv_conv_defer) ----------------------------------------- */

#define CPFX     "app\0u1\0"
#define CPFX_LEN 7

/* Record key "app NUL u1 NUL 1 peer%d" in @p key. @return its length. */
static size_t conv_key(uint8_t key[64], int peer)
{
    memcpy(key, CPFX, CPFX_LEN);
    key[CPFX_LEN] = 1;
    return CPFX_LEN + 1 + (size_t)snprintf((char *)key + CPFX_LEN + 1, 32, "peer%d", peer);
}

/* Records 0..@p n - 1 are in convs (empty, but record 0's: @p keep) or on their way there
 * (@p pending), each listed once under the prefix while on its way. */
static void expect_convs(kv_t *kv, int n, bool pending, const char *keep)
{
    kv_txn_t *txn = begin(kv, KV_READ);
    uint64_t *ids = NULL;
    size_t nids = 0;
    for (int i = 0; i < n; i++) {
        uint8_t key[64];
        size_t klen = conv_key(key, i), vlen = 99;
        const uint8_t *v = NULL;
        int rc = kv_rec_get(txn, KV_DB_CONVS, key, klen, &v, &vlen);
        if (i == 0 && keep != NULL) {
            ASSERT_OK(rc);
            ASSERT_EQ(vlen, strlen(keep));
            ASSERT_EQ(memcmp(v, keep, vlen), 0);
            continue;
        }
        ASSERT_EQ(rc, pending ? RC_ENOTFOUND : 0);
        ASSERT_EQ(kv_conv_pending(txn, key, klen), pending);
        if (!pending)
            ASSERT_EQ(vlen, 0);
    }
    ASSERT_OK(kv_conv_pending_ids(txn, (const uint8_t *)CPFX, CPFX_LEN, &ids, &nids));
    ASSERT_EQ(nids, pending ? (size_t)n : 0);
    for (size_t i = 0; i < nids; i++)
        ASSERT_U64_EQ(ids[i], 1000 + i); /* one first id each, once, ascending */
    mem_free(ids);
    kv_abort(txn);
}

/* A record made by a conversation's first message waits in the tail and cpend: the writer
 * sees it in its own transaction, readers from its commit, under the user's prefix too; a
 * record that exists keeps its value; a kill -9 leaves it to the next start, a drain puts
 * it in convs empty, and a user's list of them is bounded (the rest made at once). */
TEST(kv_defer_conv_records)
{
    enum { N = 5 };
    fx_t f;
    kv_txn_t *txn;
    uint8_t key[64];
    size_t klen;
    uint64_t *ids = NULL;
    size_t nids = 0;
    char crash[CRASH_MAX];
    kv_t *kv = NULL;

    fx_open(&f, "100000");
    txn = begin(f.kv, KV_WRITE);
    klen = conv_key(key, 0);
    ASSERT_OK(kv_rec_put(txn, KV_DB_CONVS, key, klen, "kept", 4)); /* an older record */
    for (int i = 0; i < N; i++) {
        klen = conv_key(key, i);
        ASSERT_OK(kv_conv_defer(txn, key, klen, CPFX_LEN, 1000 + (uint64_t)i));
        ASSERT_EQ(kv_conv_pending(txn, key, klen), 1);
    }
    ASSERT_OK(kv_conv_pending_ids(txn, (const uint8_t *)CPFX, CPFX_LEN, &ids, &nids));
    ASSERT_EQ(nids, N);
    mem_free(ids);
    ASSERT_EQ(kv_conv_defer(txn, key, klen, klen, 1), RC_EINVAL); /* the prefix is a part */
    ASSERT_OK(kv_commit(txn));
    ASSERT_EQ(raw_entries(f.kv, f.kv->recs[KV_DB_CONVS]), 1);
    expect_convs(f.kv, N, true, "kept");

    /* kill -9: the read-only open merges cpend; the next start makes them, a slice of
     * keys a transaction */
    crash_copy(f.dir, crash);
    ASSERT_OK(kv_open(crash, KV_RDONLY, &kv));
    expect_convs(kv, N, true, "kept");
    kv_close(kv);
    ASSERT_OK(setenv("CIM_KV_APPLY_SLICE", "2", 1)); /* (its records in three slices) */
    ASSERT_OK(kv_open(crash, KV_NOSYNC | KV_DEFER, &kv));
    unsetenv("CIM_KV_APPLY_SLICE");
    ASSERT_EQ(raw_entries(kv, kv->cpend), 0);
    ASSERT_EQ(raw_entries(kv, kv->recs[KV_DB_CONVS]), N);
    expect_convs(kv, N, false, "kept");
    kv_close(kv);
    tmpdir_remove(crash);
    fx_close(&f);

    /* a drain: epochs of 16 entries, closed and drained by the commits after */
    fx_open(&f, "16");
    txn = begin(f.kv, KV_WRITE);
    for (int i = 0; i < N; i++) {
        klen = conv_key(key, i);
        ASSERT_OK(kv_conv_defer(txn, key, klen, CPFX_LEN, 1000 + (uint64_t)i));
    }
    ASSERT_OK(kv_commit(txn));
    expect_convs(f.kv, N, true, NULL);
    for (int c = 0; c < 20; c++)
        commit_keys(f.kv, c * 8, c * 8 + 8, 5000);
    ASSERT_EQ(raw_entries(f.kv, f.kv->recs[KV_DB_CONVS]), N);
    expect_convs(f.kv, N, false, NULL);
    fx_close(&f);

    /* bounded: a user's first 1,024 in the open epoch wait, the rest are made at once
     * (counted across commits) */
    fx_open(&f, "100000");
    for (int c = 0; c < 2; c++) {
        txn = begin(f.kv, KV_WRITE);
        for (int i = c * 600; i < c * 600 + 600; i++) {
            klen = conv_key(key, i);
            ASSERT_OK(kv_conv_defer(txn, key, klen, CPFX_LEN, 1000 + (uint64_t)i));
        }
        ASSERT_OK(kv_commit(txn));
    }
    ASSERT_EQ(raw_entries(f.kv, f.kv->recs[KV_DB_CONVS]), 1200 - 1024);
    txn = begin(f.kv, KV_READ);
    ASSERT_OK(kv_conv_pending_ids(txn, (const uint8_t *)CPFX, CPFX_LEN, &ids, &nids));
    ASSERT_EQ(nids, 1024);
    mem_free(ids);
    kv_abort(txn);
    fx_close(&f);
}
