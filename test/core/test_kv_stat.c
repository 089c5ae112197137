/* Tests for src/core/kv_stat.c: per-database statistics, the environment, the reader
 * table, device cursor listings and the oldest message, against the real LMDB in a temp
 * directory. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/kv.h"
#include "support/test.h"
#include "support/tmpdir.h"

typedef struct fx {
    char dir[TMPDIR_MAX];
    kv_t *kv;
} fx_t;

static void fx_open(fx_t *f)
{
    tmpdir_make(f->dir, "kvstat");
    f->kv = NULL;
    ASSERT_OK(kv_open(f->dir, KV_NOSYNC, &f->kv));
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
    return txn;
}

typedef struct seen {
    kv_dbstat_t st[40];
    size_t n;
} seen_t;

static int on_stat(void *ctx, const kv_dbstat_t *st)
{
    seen_t *s = ctx;
    ASSERT_LT(s->n, 40);
    s->st[s->n++] = *st;
    return 0;
}

static const kv_dbstat_t *find(const seen_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->st[i].name, name) == 0)
            return &s->st[i];
    return NULL;
}

TEST(kv_stat_each_counts_every_database)
{
    fx_t f;
    kv_txn_t *txn;
    seen_t s = {0};
    uint8_t k[KV_UKEY_MAX];
    size_t kn;
    uint64_t free_pages = 99;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_user_add(txn, "default", "alice", 1));
    ASSERT_OK(kv_user_add(txn, "default", "bob", 2));
    kn = kv_ukey(k, "default", "alice");
    ASSERT_OK(kv_msg_put(txn, 10, (const uint8_t *)"x", 1));
    ASSERT_OK(kv_msg_put(txn, 11, (const uint8_t *)"y", 1));
    ASSERT_OK(kv_timeline_add(txn, k, kn, 10));
    ASSERT_OK(kv_timeline_add(txn, k, kn, 11));
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_stat_each(txn, on_stat, &s, &free_pages));
    kv_abort(txn);
    /* the 17 databases in name order, then (main) and (free) */
    ASSERT_EQ(s.n, 19);
    for (size_t i = 1; i + 2 < s.n; i++)
        ASSERT_LT(strcmp(s.st[i - 1].name, s.st[i].name), 0);
    ASSERT_STREQ(s.st[s.n - 2].name, "(main)");
    ASSERT_STREQ(s.st[s.n - 1].name, "(free)");
    ASSERT_EQ(s.st[s.n - 2].entries, 17);
    ASSERT_EQ(find(&s, "users")->entries, 2);
    ASSERT_EQ(find(&s, "msgs")->entries, 1); /* the two records share a chunk (kv_chunk.c) */
    ASSERT_EQ(find(&s, "timeline")->entries, 2); /* every duplicate counts */
    ASSERT_TRUE(find(&s, "timeline")->dupsort);
    ASSERT_TRUE(!find(&s, "users")->dupsort);
    ASSERT_EQ(find(&s, "users")->leaf_pages, 1);
    ASSERT_EQ(find(&s, "blocks")->entries, 0);
    ASSERT_TRUE(free_pages != 99);
    fx_close(&f);
}

static int stop_at_second(void *ctx, const kv_dbstat_t *st)
{
    int *n = ctx;
    (void)st;
    return ++*n == 2 ? 7 : 0;
}

TEST(kv_stat_each_stops_when_told)
{
    fx_t f;
    kv_txn_t *txn;
    int n = 0;

    fx_open(&f);
    txn = begin(&f, KV_READ);
    ASSERT_EQ(kv_stat_each(txn, stop_at_second, &n, NULL), 7);
    kv_abort(txn);
    ASSERT_EQ(n, 2);
    fx_close(&f);
}

typedef struct readers {
    int n;
    long pid;
    uint64_t txn;
} readers_t;

static int on_reader(void *ctx, long pid, uint64_t txn)
{
    readers_t *r = ctx;
    if (pid == (long)getpid()) {
        r->n++;
        r->pid = pid;
        r->txn = txn;
    }
    return 0;
}

TEST(kv_stat_env_info_and_readers)
{
    fx_t f;
    kv_txn_t *txn;
    kv_envinfo_t info;
    readers_t r = {0, 0, 0};

    fx_open(&f);
    ASSERT_OK(kv_env_info(f.kv, &info));
    ASSERT_EQ(info.page_size, (uint32_t)sysconf(_SC_PAGESIZE));
    ASSERT_EQ(info.max_readers, 256);
    ASSERT_TRUE(info.map_size >= (1ULL << 16));
    ASSERT_TRUE(info.file_size >= (info.last_page + 1) * info.page_size);
    ASSERT_TRUE(info.last_txn >= 1); /* the open committed the schema */

    /* no transaction open: no slot of ours (MDB_NOTLS gives it back at the end of each) */
    ASSERT_OK(kv_reader_each(f.kv, on_reader, &r));
    ASSERT_EQ(r.n, 0);
    /* one open: listed, reading the last committed snapshot */
    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_reader_each(f.kv, on_reader, &r));
    kv_abort(txn);
    ASSERT_EQ(r.n, 1);
    ASSERT_EQ(r.pid, (long)getpid());
    ASSERT_U64_EQ(r.txn, info.last_txn);
    fx_close(&f);
}

typedef struct devs {
    char names[8][65];
    uint64_t ids[8];
    int n;
} devs_t;

static int on_dev(void *ctx, const char *device, uint64_t id)
{
    devs_t *d = ctx;
    ASSERT_LT(d->n, 8);
    snprintf(d->names[d->n], sizeof(d->names[0]), "%s", device);
    d->ids[d->n++] = id;
    return 0;
}

TEST(kv_stat_cursor_each_lists_one_users_devices)
{
    fx_t f;
    kv_txn_t *txn;
    uint8_t a[KV_UKEY_MAX], ab[KV_UKEY_MAX];
    size_t an = kv_ukey(a, "default", "a"), abn = kv_ukey(ab, "default", "ab");
    devs_t d = {0};
    uint64_t first = 1;

    fx_open(&f);
    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_cursor_put(txn, a, an, "phone", 5));
    ASSERT_OK(kv_cursor_put(txn, a, an, "desk", 7));
    ASSERT_OK(kv_cursor_put(txn, ab, abn, "other", 9)); /* "ab" extends "a": not a's */
    ASSERT_OK(kv_commit(txn));

    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_cursor_each(txn, a, an, on_dev, &d));
    ASSERT_OK(kv_msg_first_id(txn, &first));
    kv_abort(txn);
    ASSERT_EQ(d.n, 2);
    ASSERT_STREQ(d.names[0], "desk");
    ASSERT_U64_EQ(d.ids[0], 7);
    ASSERT_STREQ(d.names[1], "phone");
    ASSERT_U64_EQ(d.ids[1], 5);
    ASSERT_U64_EQ(first, 0); /* no message yet */

    txn = begin(&f, KV_WRITE);
    ASSERT_OK(kv_msg_put(txn, 40, (const uint8_t *)"m", 1));
    ASSERT_OK(kv_msg_put(txn, 41, (const uint8_t *)"n", 1));
    ASSERT_OK(kv_commit(txn));
    txn = begin(&f, KV_READ);
    ASSERT_OK(kv_msg_first_id(txn, &first));
    kv_abort(txn);
    ASSERT_U64_EQ(first, 40);
    fx_close(&f);
}
