/* actors/feed: a user's timeline merged with their groups' indexes over their spans of
 * membership, against the real LMDB in a temp directory — with the conversation index
 * applied at once and deferred (KV_DEFER: the group's ids in the tail). */
#include <string.h>

#include "actors/conv.h"
#include "actors/feed.h"
#include "actors/message.h"
#include "actors/store.h"
#include "cim.pb.h"
#include "core/blob.h"
#include "core/rc.h"
#include "support/test.h"
#include "support/tmpdir.h"

#define APP "default"
#define GID 1000
#define GIDS "1000"
#define N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct fx {
    char dir[TMPDIR_MAX];
    kv_t *kv;
    kv_txn_t *txn; /* the open write transaction */
} fx_t;

static void fx_open(fx_t *f, unsigned flags)
{
    tmpdir_make(f->dir, "feed");
    ASSERT_OK(kv_open(f->dir, KV_NOSYNC | flags, &f->kv));
    ASSERT_OK(kv_begin(f->kv, KV_WRITE, &f->txn));
}

static void fx_close(fx_t *f)
{
    if (f->txn != NULL)
        ASSERT_OK(kv_commit(f->txn));
    kv_close(f->kv);
    tmpdir_remove(f->dir);
}

/* Commit and begin again: what a later batch sees. */
static void next_batch(fx_t *f)
{
    ASSERT_OK(kv_commit(f->txn));
    ASSERT_OK(kv_begin(f->kv, KV_WRITE, &f->txn));
}

/* Message @p id from @p from: DIRECT to @p to's timeline (and the sender's), or to the
 * group's index, with its record. */
static void put(fx_t *f, uint64_t id, bool group, const char *from, const char *to)
{
    store_send_t r;
    uint8_t key[CONV_SKEY_MAX], ukey[KV_UKEY_MAX];
    blob_t *b;

    memset(&r, 0, sizeof(r));
    r.msg_id = id;
    r.time_ms = 1;
    r.conv_type = group ? cim_ConvType_GROUP : cim_ConvType_DIRECT;
    r.msg_type = cim_MsgType_TEXT;
    snprintf(r.from, sizeof(r.from), "%s", from);
    snprintf(r.to, sizeof(r.to), "%s", to);
    ASSERT_NOT_NULL(b = message_encode(&r, (const uint8_t *)"x", 1));
    ASSERT_OK(message_put(f->txn, id, b->data, b->len));
    blob_unref(b);
    if (group) {
        ASSERT_OK(kv_cmsg_add(f->txn, key, conv_skey(key, APP, cim_ConvType_GROUP, to, to), id,
                              false));
        return;
    }
    ASSERT_OK(kv_timeline_add(f->txn, ukey, kv_ukey(ukey, APP, to), id));
    if (strcmp(from, to) != 0)
        ASSERT_OK(kv_timeline_add(f->txn, ukey, kv_ukey(ukey, APP, from), id));
}

/* The whole feed of @p user after @p after in pages of @p limit equals @p want. */
static void expect_feed(fx_t *f, const char *user, uint64_t after, size_t limit,
                        const uint64_t *want, size_t nwant)
{
    uint64_t ids[16], total;
    size_t n, got = 0;

    ASSERT_LT(limit, N(ids) + 1);
    for (;;) {
        ASSERT_OK(feed_page(f->txn, APP, user, after, ids, limit, &n, &total));
        ASSERT_EQ(total, nwant - got); /* what is left, this page included */
        for (size_t i = 0; i < n; i++) {
            ASSERT_LT(got, nwant);
            ASSERT_U64_EQ(ids[i], want[got]);
            got++;
        }
        if (n < limit)
            break;
        after = ids[n - 1];
    }
    ASSERT_EQ(got, nwant);
}

static void expect_last_and_count(fx_t *f, const char *user, uint64_t last, uint64_t count)
{
    uint64_t l, c;
    ASSERT_OK(feed_last(f->txn, APP, user, &l));
    ASSERT_U64_EQ(l, last);
    ASSERT_OK(feed_count(f->txn, APP, user, &c));
    ASSERT_U64_EQ(c, count);
}

/* alice is in the group from event 10 to event 13 and again from 20; the group's 5 came
 * before her; DIRECT messages 7 and 15 are hers. */
static void membership(fx_t *f, bool batches)
{
    static const uint64_t all[] = {7, 10, 11, 12, 13, 15, 20, 21};
    const uint64_t tail[] = {13, 15, 20, 21};

    put(f, 5, true, "bob", GIDS);
    put(f, 7, false, "bob", "alice");
    put(f, 10, true, "alice", GIDS); /* her JOINED */
    ASSERT_OK(feed_join(f->txn, APP, "alice", GID, 10));
    if (batches)
        next_batch(f);
    put(f, 11, true, "bob", GIDS);
    put(f, 12, true, "alice", GIDS);
    put(f, 13, true, "alice", GIDS); /* her LEFT: hers */
    ASSERT_OK(feed_leave(f->txn, APP, "alice", GID, 13));
    put(f, 14, true, "bob", GIDS);
    put(f, 15, false, "alice", "carol");
    if (batches)
        next_batch(f);
    put(f, 20, true, "alice", GIDS);
    ASSERT_OK(feed_join(f->txn, APP, "alice", GID, 20));
    put(f, 21, true, "bob", GIDS);
    /* replays of the events change nothing */
    ASSERT_OK(feed_join(f->txn, APP, "alice", GID, 10));
    ASSERT_OK(feed_leave(f->txn, APP, "alice", GID, 13));
    ASSERT_OK(feed_join(f->txn, APP, "alice", GID, 20));
    if (batches)
        next_batch(f);

    for (size_t limit = 1; limit <= 9; limit++) {
        expect_feed(f, "alice", 0, limit, all, N(all));
        expect_feed(f, "alice", 12, limit, tail, N(tail));
    }
    expect_feed(f, "alice", 21, 3, NULL, 0);
    expect_last_and_count(f, "alice", 21, N(all));
    /* has: hers, the group's inside her spans; not 5 (before), 14 (away), nor an unknown */
    for (size_t i = 0; i < N(all); i++)
        ASSERT_OK(feed_has(f->txn, APP, "alice", all[i]));
    ASSERT_EQ(feed_has(f->txn, APP, "alice", 5), RC_ENOTFOUND);
    ASSERT_EQ(feed_has(f->txn, APP, "alice", 14), RC_ENOTFOUND);
    ASSERT_EQ(feed_has(f->txn, APP, "alice", 99), RC_ENOTFOUND);
    /* covers: whether her spans hold an id, whatever the index holds */
    ASSERT_EQ(feed_covers(f->txn, APP, "alice", GID, 10), 1);
    ASSERT_EQ(feed_covers(f->txn, APP, "alice", GID, 13), 1);
    ASSERT_EQ(feed_covers(f->txn, APP, "alice", GID, 14), 0);
    ASSERT_EQ(feed_covers(f->txn, APP, "alice", GID, 99), 1); /* open */
    ASSERT_EQ(feed_covers(f->txn, APP, "alice", GID + 1, 11), 0);
    ASSERT_EQ(feed_covers(f->txn, APP, "carol", GID, 11), 0);
    /* she leaves again: the group's later ids are not hers, her newest stays 21 */
    ASSERT_OK(feed_leave(f->txn, APP, "alice", GID, 21));
    put(f, 22, true, "bob", GIDS);
    expect_last_and_count(f, "alice", 21, N(all));
    ASSERT_EQ(feed_has(f->txn, APP, "alice", 22), RC_ENOTFOUND);
    /* has_in: the same, told the conversation instead of reading the record */
    ASSERT_OK(feed_has_in(f->txn, APP, "alice", 11, cim_ConvType_GROUP, GIDS));
    ASSERT_OK(feed_has_in(f->txn, APP, "alice", 7, cim_ConvType_DIRECT, "alice"));
    ASSERT_EQ(feed_has_in(f->txn, APP, "alice", 14, cim_ConvType_GROUP, GIDS), RC_ENOTFOUND);
    ASSERT_EQ(feed_has_in(f->txn, APP, "alice", 22, cim_ConvType_GROUP, GIDS), RC_ENOTFOUND);
    /* newer: a later id of hers, from her timeline or a span; 22 is not hers */
    ASSERT_EQ(feed_newer(f->txn, APP, "alice", 14), 1); /* 15, DIRECT */
    ASSERT_EQ(feed_newer(f->txn, APP, "alice", 20), 1); /* 21, the group's */
    ASSERT_EQ(feed_newer(f->txn, APP, "alice", 21), 0);
    ASSERT_EQ(feed_newer(f->txn, APP, "carol", 15), 0);
    /* carol, never in the group, has her DIRECT message alone */
    expect_feed(f, "carol", 0, 4, (const uint64_t[]){15}, 1);
    expect_last_and_count(f, "carol", 15, 1);
}

TEST(feed_follows_spans)
{
    fx_t f;
    fx_open(&f, 0);
    membership(&f, false);
    fx_close(&f);
}

TEST(feed_follows_spans_deferred)
{
    fx_t f;
    fx_open(&f, KV_DEFER);
    membership(&f, true);
    fx_close(&f);
}

/* A join and leave loop keeps FEED_SPANS_MAX spans, the newest; an empty feed reads 0. */
TEST(feed_spans_bounded)
{
    fx_t f;
    uint64_t id = 100, c, l;

    fx_open(&f, 0);
    expect_last_and_count(&f, "dave", 0, 0);
    for (int i = 0; i < FEED_SPANS_MAX + 8; i++, id += 2) {
        put(&f, id, true, "dave", GIDS);
        ASSERT_OK(feed_join(f.txn, APP, "dave", GID, id));
        put(&f, id + 1, true, "dave", GIDS);
        ASSERT_OK(feed_leave(f.txn, APP, "dave", GID, id + 1));
    }
    ASSERT_OK(feed_count(f.txn, APP, "dave", &c));
    ASSERT_U64_EQ(c, 2 * FEED_SPANS_MAX);
    ASSERT_OK(feed_last(f.txn, APP, "dave", &l));
    ASSERT_U64_EQ(l, id - 1);
    ASSERT_EQ(feed_has(f.txn, APP, "dave", 100), RC_ENOTFOUND); /* the oldest went */
    ASSERT_OK(feed_has(f.txn, APP, "dave", id - 1));
    fx_close(&f);
}

/* The migration opens a span from its first id for every group list entry. */
TEST(feed_migrate_opens_spans)
{
    fx_t f;
    uint8_t key[KV_UKEY_MAX + 9];
    size_t n = kv_ukey(key, APP, "erin");
    uint64_t spans, c;

    fx_open(&f, 0);
    key[n++] = '\0';
    for (int i = 0; i < 8; i++)
        key[n + i] = (uint8_t)((uint64_t)GID >> (56 - 8 * i));
    ASSERT_OK(kv_rec_put(f.txn, KV_DB_UGROUPS, key, n + 8, NULL, 0));
    put(&f, 30, true, "bob", GIDS); /* before: in erin's timeline in an old schema */
    ASSERT_OK(feed_migrate(f.txn, 31, &spans));
    ASSERT_U64_EQ(spans, 1);
    put(&f, 31, true, "bob", GIDS);
    expect_feed(&f, "erin", 0, 4, (const uint64_t[]){31}, 1);
    ASSERT_OK(feed_count(f.txn, APP, "erin", &c));
    ASSERT_U64_EQ(c, 1);
    fx_close(&f);
}
