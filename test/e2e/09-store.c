/* Integration: the store's schemas 2 and 3 (issue 9) through a real cimd — the dedup window held
 * in memory and rebuilt from the log (same client_msg_id in two apps, across a restart and
 * a kill -9), conversation state derived from the index (a group member's unread starts
 * at the join, SYSTEM events never count, a former member's view ends where they left),
 * the migration of a schema 1 directory, which must give every user the conversation
 * list they had, and that of a schema 2 one, whose records stored whole read as before. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/conv.h"
#include "actors/message.h"
#include "actors/store.h"
#include "client/cim.h"
#include "core/be.h"
#include "core/frame.h"
#include "core/kv.h"
#include "core/snowflake.h"
#include "support/msg.h"
#include "support/server.h"
#include "support/test.h"

#define DIRECT cim_ConvType_DIRECT
#define GROUP cim_ConvType_GROUP
#define TEXT cim_MsgType_TEXT
#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t send_conv(cimc_t *c, int conv_type, const char *to, const char *cmid,
                          const char *body)
{
    cim_SendRsp rsp;
    TMSG_EXPECT(tmsg_send_conv(c, conv_type, to, cmid, TEXT, body, strlen(body), false, &rsp),
                rsp, cim_Code_OK);
    return rsp.msg_id;
}

static cimc_t *login_app(const tsrv_t *t, const char *app, const char *user)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    cimc_t *c = tsrv_connect(t);
    snprintf(req.app, sizeof(req.app), "%s", app);
    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.device_id, sizeof(req.device_id), "d1");
    tsrv_token(t, app, user, 3600, req.token, sizeof(req.token));
    ASSERT_OK(cimc_login(c, &req, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    return c;
}

/* ---- dedup ---------------------------------------------------------------------------- */

/* The same user id and client_msg_id in two apps are two messages; each app's resend
 * answers its own id, before and after a clean restart and after a kill -9 (the window is
 * rebuilt from the log), and a new client_msg_id after all that is stored anew. */
TEST_TIMEOUT(e2e_store_dedup_apps_and_restarts, 60)
{
    tsrv_t t;
    char out[256];
    uint64_t a1, a2, again;
    cim_SendRsp rsp;

    tsrv_start(&t, NULL);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimctl", "--data", t.dir, "app", "add", "other",
                            NULL),
              0);
    cimc_t *d = login_app(&t, "", "alice"), *o = login_app(&t, "other", "alice");
    cimc_close(login_app(&t, "", "bob"));
    cimc_close(login_app(&t, "other", "bob"));
    tmsg_sleep_ms(100); /* the users are registered */
    a1 = send_conv(d, DIRECT, "bob", "same-id", "in default");
    a2 = send_conv(o, DIRECT, "bob", "same-id", "in other");
    ASSERT_TRUE(a1 != a2);
    ASSERT_U64_EQ(send_conv(d, DIRECT, "bob", "same-id", "again"), a1);
    ASSERT_U64_EQ(send_conv(o, DIRECT, "bob", "same-id", "again"), a2);
    cimc_close(d);
    cimc_close(o);

    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            tsrv_restart(&t); /* SIGTERM, then start again on the same directory */
        } else {
            tsrv_kill(&t);
            tsrv_restart(&t);
        }
        d = login_app(&t, "", "alice");
        o = login_app(&t, "other", "alice");
        ASSERT_U64_EQ(send_conv(d, DIRECT, "bob", "same-id", "after restart"), a1);
        ASSERT_U64_EQ(send_conv(o, DIRECT, "bob", "same-id", "after restart"), a2);
        /* a transient send is never deduplicated, a new id is a new message */
        TMSG_EXPECT(tmsg_send(d, "bob", "same-id", cim_MsgType_CUSTOM, "t", 1, true, &rsp), rsp,
                    cim_Code_OK);
        ASSERT_U64_EQ(rsp.msg_id, 0);
        again = send_conv(d, DIRECT, "bob", round ? "new-2" : "new-1", "new");
        ASSERT_TRUE(again > a2);
        ASSERT_U64_EQ(send_conv(d, DIRECT, "bob", round ? "new-2" : "new-1", "new"), again);
        cimc_close(d);
        cimc_close(o);
    }
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- derived conversation state --------------------------------------------------------- */

static const tmsg_conv_t *conv_of(cimc_t *c, tmsg_conv_t *buf, size_t cap, int type,
                                  const char *peer, uint32_t *total)
{
    cim_ConvListRsp rsp;
    size_t n;
    TMSG_EXPECT(tmsg_conv_list(c, buf, cap, &n, &rsp), rsp, cim_Code_OK);
    if (total != NULL)
        *total = rsp.total_unread;
    return tmsg_conv_find(buf, n, type, peer);
}

/* A member added to a group counts as unread only what is said after the event that
 * added them; SYSTEM events (joins, leaves) never count; their own messages clear it; a
 * member who was removed keeps the count of what came before, and the last message they
 * see is the one before they were removed. */
TEST_TIMEOUT(e2e_store_group_unread_derived, 30)
{
    tsrv_t t;
    tmsg_conv_t buf[8];
    const tmsg_conv_t *cv;
    const char *first[] = {"bob"}, *late[] = {"carol"};
    cim_GroupRsp grsp;
    cim_Result res;
    uint32_t total;
    uint64_t last_seen;
    char gid[65];

    tsrv_start(&t, NULL);
    const char *users[] = {"alice", "bob", "carol"};
    tmsg_register_users(&t, users, 3);
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL);
    cimc_t *b = tsrv_login(&t, "bob", "d1", NULL);
    TMSG_EXPECT(tmsg_group_create(a, "g", first, 1, false, &grsp), grsp, cim_Code_OK);
    snprintf(gid, sizeof(gid), "%s", grsp.group.group_id);
    for (int i = 0; i < 3; i++) {
        char cmid[16];
        snprintf(cmid, sizeof(cmid), "p%d", i);
        send_conv(a, GROUP, gid, cmid, "before carol");
    }
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, late, 1, &res), res, cim_Code_OK);
    send_conv(a, GROUP, gid, "q0", "after carol");
    send_conv(b, GROUP, gid, "q1", "bob too");
    cimc_t *c = tsrv_login(&t, "carol", "d1", NULL);
    cv = conv_of(c, buf, 8, GROUP, gid, &total);
    ASSERT_NOT_NULL(cv);
    ASSERT_EQ(cv->unread, 2); /* not the 3 before she was added, not the GE_ADDED event */
    ASSERT_EQ(total, 2);
    ASSERT_U64_EQ(cv->read_up_to, 0);
    cv = conv_of(b, buf, 8, GROUP, gid, NULL);
    ASSERT_EQ(cv->unread, 0); /* bob's own message read everything before it */
    /* carol writes: her count is cleared; bob is removed: alice's count does not grow */
    send_conv(c, GROUP, gid, "c0", "hi");
    cv = conv_of(c, buf, 8, GROUP, gid, &total);
    ASSERT_EQ(cv->unread, 0);
    ASSERT_EQ(total, 0);
    send_conv(a, GROUP, gid, "a9", "for bob");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_KICK, gid, first, 1, &res), res, cim_Code_OK);
    cv = conv_of(b, buf, 8, GROUP, gid, NULL);
    ASSERT_NOT_NULL(cv);
    ASSERT_EQ(cv->unread, 2); /* carol's "hi", "for bob"; not the event that removed him */
    last_seen = cv->last.msg_id;
    send_conv(a, GROUP, gid, "a10", "after bob left");
    cv = conv_of(b, buf, 8, GROUP, gid, NULL);
    ASSERT_EQ(cv->unread, 2);
    ASSERT_U64_EQ(cv->last.msg_id, last_seen);
    cv = conv_of(a, buf, 8, GROUP, gid, NULL);
    ASSERT_EQ(cv->unread, 0); /* alice wrote last (the kick was hers, too) */
    cv = conv_of(c, buf, 8, GROUP, gid, NULL);
    ASSERT_EQ(cv->unread, 2); /* "for bob", "after bob left"; not the kick event */
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- migration from schema 1 ------------------------------------------------------------ */

#define USERS 4
static const char *const who[USERS] = {"alice", "bob", "carol", "dave"};

typedef struct snap {
    tmsg_conv_t convs[USERS][16];
    size_t n[USERS];
    uint32_t total[USERS];
    uint64_t tl[USERS][128]; /* the timeline, by SYNC */
    size_t ntl[USERS];
} snap_t;

static void snapshot(const tsrv_t *t, snap_t *s)
{
    for (int u = 0; u < USERS; u++) {
        cim_ConvListRsp rsp;
        cimc_t *c = tsrv_login(t, who[u], "snap", NULL);
        TMSG_EXPECT(tmsg_conv_list(c, s->convs[u], 16, &s->n[u], &rsp), rsp, cim_Code_OK);
        s->total[u] = rsp.total_unread;
        /* the whole timeline, in pages of 7 (after 1: not the device's cursor) */
        tmsg_t msgs[128];
        tmsg_page_t p;
        tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
        ASSERT_OK(tmsg_sync_all(c, 1, 7, &p));
        ASSERT_TRUE(!p.overflow);
        s->ntl[u] = p.n;
        for (size_t i = 0; i < p.n; i++)
            s->tl[u][i] = msgs[i].msg_id;
        cimc_close(c);
    }
}

static void same_lists(const snap_t *x, const snap_t *y)
{
    for (int u = 0; u < USERS; u++) {
        if (x->n[u] != y->n[u] || x->total[u] != y->total[u])
            TEST_FAIL_("%s: %zu conversations, %u unread; want %zu, %u", who[u], y->n[u],
                       y->total[u], x->n[u], x->total[u]);
        if (x->ntl[u] != y->ntl[u] || memcmp(x->tl[u], y->tl[u], x->ntl[u] * 8) != 0)
            TEST_FAIL_("%s: a timeline of %zu messages; want %zu, the same", who[u], y->ntl[u],
                       x->ntl[u]);
        for (size_t i = 1; i < y->ntl[u]; i++)
            if (y->tl[u][i] <= y->tl[u][i - 1])
                TEST_FAIL_("%s: the timeline is not in id order at %zu", who[u], i);
        for (size_t i = 0; i < x->n[u]; i++) {
            const tmsg_conv_t *a = &x->convs[u][i], *b = &y->convs[u][i];
            if (a->conv_type != b->conv_type || strcmp(a->peer, b->peer) != 0 ||
                a->unread != b->unread || a->read_up_to != b->read_up_to ||
                a->peer_read_up_to != b->peer_read_up_to || a->last.msg_id != b->last.msg_id)
                TEST_FAIL_("%s, conversation %zu (%s): unread %u read %llu last %llu; "
                           "want %s unread %u read %llu last %llu",
                           who[u], i, b->peer, b->unread, (unsigned long long)b->read_up_to,
                           (unsigned long long)b->last.msg_id, a->peer, a->unread,
                           (unsigned long long)a->read_up_to,
                           (unsigned long long)a->last.msg_id);
        }
    }
}


/* Rewrite a schema 2 directory the way schema 1 kept it: conversation records carrying
 * their last message and unread count (as derived now) and no since_id, one index key per
 * DIRECT conversation, no group events index, a dedup index, schema 1. */
typedef struct old_rec {
    uint8_t key[CONV_UKEY_MAX];
    size_t klen;
    uint8_t val[CONV_REC_LEN];
} old_rec_t;

typedef struct old_set {
    kv_txn_t *txn;
    old_rec_t r[256];
    size_t n;
} old_set_t;

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static int old_layout(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                      size_t vlen)
{
    old_set_t *o = ctx;
    const char *app = (const char *)key, *user = app + strlen(app) + 1;
    const uint8_t *t = (const uint8_t *)user + strlen(user) + 1;
    char peer[KV_ID_MAX + 1];
    old_rec_t *r = &o->r[o->n++];
    conv_rec_t c;
    conv_view_t v;

    ASSERT_LT(o->n, 256);
    snprintf(peer, sizeof(peer), "%.*s", (int)(klen - (size_t)(t + 1 - key)), t + 1);
    conv_decode(val, vlen, &c);
    ASSERT_OK(conv_view(o->txn, app, user, t[0], peer, &c, &v));
    memcpy(r->key, key, klen);
    r->klen = klen;
    be64(r->val, v.last_id);
    be64(r->val + 8, c.read_up_to);
    be64(r->val + 16, c.updated_ms);
    be64(r->val + 24, c.left_id);
    r->val[32] = (uint8_t)(v.unread >> 24);
    r->val[33] = (uint8_t)(v.unread >> 16);
    r->val[34] = (uint8_t)(v.unread >> 8);
    r->val[35] = (uint8_t)v.unread;
    return 0;
}

/* Schema 1 indexed a DIRECT conversation under one key, app NUL 'D' lower NUL higher,
 * where schema 2 has one per direction, app NUL '>' from NUL to. */
static void undirect(MDB_txn *txn)
{
    typedef struct pair { uint8_t key[160]; size_t klen; uint8_t id[8]; } pair_t;
    pair_t *p = calloc(4096, sizeof(*p));
    uint8_t olds[64][160];
    size_t oldlen[64], nold = 0, n = 0;
    MDB_dbi cmsgs;
    MDB_cursor *cur;
    MDB_val k, v;
    int mrc;

    ASSERT_NOT_NULL(p);
    ASSERT_EQ(mdb_dbi_open(txn, "cmsgs", MDB_DUPSORT | MDB_DUPFIXED, &cmsgs), 0);
    ASSERT_EQ(mdb_cursor_open(txn, cmsgs, &cur), 0);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *app = k.mv_data, *from, *to;
        size_t alen = strlen(app);
        if (((const char *)k.mv_data)[alen + 1] != '>')
            continue;
        from = app + alen + 2;
        to = from + strlen(from) + 1;
        ASSERT_LT(n, 4096);
        p[n].klen = (size_t)snprintf((char *)p[n].key, sizeof(p[n].key), "%s%cD%s%c%s", app,
                                     0, strcmp(from, to) < 0 ? from : to, 0,
                                     strcmp(from, to) < 0 ? to : from);
        memcpy(p[n].id, v.mv_data, 8);
        n++;
        if (nold == 0 || oldlen[nold - 1] != k.mv_size ||
            memcmp(olds[nold - 1], k.mv_data, k.mv_size) != 0) {
            ASSERT_LT(nold, 64);
            memcpy(olds[nold], k.mv_data, k.mv_size);
            oldlen[nold++] = k.mv_size;
        }
    }
    ASSERT_EQ(mrc, MDB_NOTFOUND);
    mdb_cursor_close(cur);
    ASSERT_TRUE(n > 0);
    for (size_t i = 0; i < nold; i++) {
        k.mv_size = oldlen[i];
        k.mv_data = olds[i];
        ASSERT_EQ(mdb_del(txn, cmsgs, &k, NULL), 0);
    }
    for (size_t i = 0; i < n; i++) {
        k.mv_size = p[i].klen;
        k.mv_data = p[i].key;
        v.mv_size = 8;
        v.mv_data = p[i].id;
        ASSERT_EQ(mdb_put(txn, cmsgs, &k, &v, 0), 0);
    }
    free(p);
}

/* A write transaction straight on LMDB over the stopped directory @p dir (the tests rewrite
 * a directory the way an older schema left it). */
static MDB_txn *raw_begin(const char *dir, MDB_env **env)
{
    MDB_txn *txn;
    ASSERT_EQ(mdb_env_create(env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(*env, 32), 0);
    ASSERT_EQ(mdb_env_set_mapsize(*env, 1ull << 30), 0);
    ASSERT_EQ(mdb_env_open(*env, dir, 0, 0600), 0);
    ASSERT_EQ(mdb_txn_begin(*env, NULL, 0, &txn), 0);
    return txn;
}

/* Record schema @p version and commit raw_begin's transaction. */
static void raw_commit(MDB_env *env, MDB_txn *txn, uint8_t version)
{
    uint8_t v4[4] = {0, 0, 0, version};
    MDB_val k = {6, "schema"}, v = {4, v4};
    MDB_dbi meta;

    ASSERT_EQ(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    ASSERT_EQ(mdb_put(txn, meta, &k, &v, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Schemas 1 to 6 wrote a group's messages into every member's timeline, and kept no
 * spans: put every group message a member's spans give them into their timeline, and drop
 * gspans. */
typedef struct fan {
    kv_txn_t *txn;
    struct fan_ent {
        uint8_t key[KV_UKEY_MAX];
        size_t klen;
        uint64_t id;
    } *e;
    size_t n, cap;
} fan_t;

static int fan_span(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    fan_t *f = ctx;
    uint8_t skey[CONV_SKEY_MAX];
    uint64_t ids[256], total;
    char gid[24];
    size_t n, sklen;

    ASSERT_TRUE(klen > 9 && vlen % 16 == 0);
    snprintf(gid, sizeof(gid), "%llu", (unsigned long long)be64_get(key + klen - 8));
    sklen = conv_skey(skey, (const char *)key, cim_ConvType_GROUP, gid, gid);
    for (size_t s = 0; s < vlen; s += 16) {
        uint64_t first = be64_get(val + s), last = be64_get(val + s + 8);
        ASSERT_OK(kv_cmsg_after(f->txn, skey, sklen, first - 1, ids, N(ids), &n, &total));
        ASSERT_LT(n, N(ids));
        for (size_t i = 0; i < n && ids[i] <= last; i++) {
            if (f->n == f->cap) {
                f->cap = f->cap ? 2 * f->cap : 256;
                f->e = realloc(f->e, f->cap * sizeof(*f->e));
                ASSERT_NOT_NULL(f->e);
            }
            memcpy(f->e[f->n].key, key, klen - 9); /* user key NUL gid → user key */
            f->e[f->n].klen = klen - 9;
            f->e[f->n++].id = ids[i];
        }
    }
    return 0;
}

/* kv_rec_each of @p db in the stopped directory @p dir, in a read transaction kept in
 * *@p txn for @p cb (before raw_begin: one open of a directory at a time in a process). */
static void scan_stopped(const char *dir, int db,
                         int (*cb)(void *, const uint8_t *, size_t, const uint8_t *, size_t),
                         void *ctx, kv_txn_t **txn)
{
    kv_t *kv = NULL;

    ASSERT_OK(kv_open(dir, KV_RDONLY, &kv));
    ASSERT_OK(kv_begin(kv, KV_READ, txn));
    ASSERT_OK(kv_rec_each(*txn, db, cb, ctx));
    kv_abort(*txn);
    kv_close(kv);
}

/* What unspan writes, read from the stopped directory @p dir. */
static void unspan_read(const char *dir, fan_t *f)
{
    memset(f, 0, sizeof(*f));
    scan_stopped(dir, KV_DB_GSPANS, fan_span, f, &f->txn);
    ASSERT_TRUE(f->n > 0);
}

static void unspan(MDB_txn *txn, fan_t *f)
{
    MDB_dbi timeline, gspans;
    MDB_val k, v;
    uint8_t id[8];

    ASSERT_EQ(mdb_dbi_open(txn, "timeline", MDB_DUPSORT | MDB_DUPFIXED, &timeline), 0);
    for (size_t i = 0; i < f->n; i++) {
        k.mv_size = f->e[i].klen;
        k.mv_data = f->e[i].key;
        be64(id, f->e[i].id);
        v.mv_size = 8;
        v.mv_data = id;
        ASSERT_EQ(mdb_put(txn, timeline, &k, &v, 0), 0);
    }
    ASSERT_EQ(mdb_dbi_open(txn, "gspans", 0, &gspans), 0);
    ASSERT_EQ(mdb_drop(txn, gspans, 1), 0);
    free(f->e);
}

static void downgrade(const char *dir)
{
    old_set_t *o = calloc(1, sizeof(*o));
    fan_t f;
    uint8_t id[8];
    MDB_dbi convs, cevents, dedup;
    MDB_env *env;
    MDB_txn *txn;
    MDB_val k, v;

    ASSERT_NOT_NULL(o);
    scan_stopped(dir, KV_DB_CONVS, old_layout, o, &o->txn);
    ASSERT_TRUE(o->n > 6);

    unspan_read(dir, &f);
    txn = raw_begin(dir, &env);
    unspan(txn, &f);
    ASSERT_EQ(mdb_dbi_open(txn, "convs", 0, &convs), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "cevents", MDB_DUPSORT | MDB_DUPFIXED, &cevents), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "dedup", MDB_CREATE, &dedup), 0);
    for (size_t i = 0; i < o->n; i++) {
        k.mv_size = o->r[i].klen;
        k.mv_data = o->r[i].key;
        v.mv_size = CONV_REC_LEN;
        v.mv_data = o->r[i].val;
        ASSERT_EQ(mdb_put(txn, convs, &k, &v, 0), 0);
    }
    ASSERT_EQ(mdb_drop(txn, cevents, 1), 0); /* schema 1 had none */
    undirect(txn);
    k.mv_size = 5;
    k.mv_data = "x\0y\0z";
    be64(id, 1);
    v.mv_size = 8;
    v.mv_data = id;
    ASSERT_EQ(mdb_put(txn, dedup, &k, &v, 0), 0);
    raw_commit(env, txn, 1);
    free(o);
}

/* DIRECT messages, a group with a member added, a READ and a member leaving, by the
 * users of who[]. */
static void group_story(const tsrv_t *t, char gid[65])
{
    const char *members[] = {"bob", "carol"}, *added[] = {"dave"};
    cim_GroupRsp grsp;
    cim_Result res;

    tmsg_register_users(t, who, USERS);
    cimc_t *a = tsrv_login(t, "alice", "d1", NULL), *b = tsrv_login(t, "bob", "d1", NULL);
    cimc_t *c = tsrv_login(t, "carol", "d1", NULL);
    send_conv(a, DIRECT, "bob", "ab1", "hi bob");
    send_conv(a, DIRECT, "bob", "ab2", "still there?");
    send_conv(b, DIRECT, "alice", "ba1", "yes");
    send_conv(a, DIRECT, "bob", "ab3", "good");
    send_conv(c, DIRECT, "alice", "ca1", "hello alice");
    send_conv(a, DIRECT, "alice", "aa1", "note to self");
    TMSG_EXPECT(tmsg_group_create(a, "team", members, 2, false, &grsp), grsp, cim_Code_OK);
    snprintf(gid, 65, "%s", grsp.group.group_id);
    send_conv(a, GROUP, gid, "g1", "before dave");
    send_conv(b, GROUP, gid, "g2", "before dave too");
    TMSG_EXPECT(tmsg_group_users(a, FT_GROUP_ADD, gid, added, 1, &res), res, cim_Code_OK);
    send_conv(c, GROUP, gid, "g3", "dave is here");
    send_conv(a, GROUP, gid, "g4", "welcome");
    TMSG_EXPECT(tmsg_read(b, GROUP, gid, 0, &res), res, cim_Code_OK);
    send_conv(a, GROUP, gid, "g5", "after bob read");
    TMSG_EXPECT(tmsg_group_req(c, FT_GROUP_LEAVE, gid, &res), res, cim_Code_OK);
    send_conv(a, GROUP, gid, "g6", "carol left");
    TMSG_EXPECT(tmsg_read(a, DIRECT, "carol", 0, &res), res, cim_Code_OK);
    cimc_close(a);
    cimc_close(b);
    cimc_close(c);
}

/* Start a server, tell group_story, take its snapshot and stop, keeping the directory.
 * @return the snapshot; *@p after room for the next one (free both). */
/* An older directory of @p t (stopped) is refused by the tools, and the restart migrates it
 * (the log says @p line): every list in @p after is the one in @p before. */
static void migrated(tsrv_t *t, const char *line, const snap_t *before, snap_t *after)
{
    char out[4096];
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t->dir, "stats", NULL), 0);
    tsrv_restart(t);
    ASSERT_TRUE(tsrv_log_has(t, line));
    snapshot(t, after);
    same_lists(before, after);
}

static snap_t *story_stopped(tsrv_t *t, char gid[65], snap_t **after)
{
    snap_t *before = calloc(1, sizeof(*before));

    *after = calloc(1, sizeof(**after));
    ASSERT_NOT_NULL(before);
    ASSERT_NOT_NULL(*after);
    tsrv_start(t, NULL);
    group_story(t, gid);
    snapshot(t, before);
    ASSERT_EQ(tsrv_stop_keep(t), 0);
    return before;
}

/* A directory written by schema 1 (built here from a schema 2 one: the same data the way
 * schema 1 kept it) is refused by the tools with a message that says what to do, and
 * migrated by cimd at start: every user's conversation list — order, last message, unread,
 * read cursors, the total — is the one they had, the dedup index is gone, and what follows
 * is counted as before. */
TEST_TIMEOUT(e2e_store_migrate_schema_1, 60)
{
    tsrv_t t;
    snap_t *before, *after;
    char gid[65], out[4096];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;

    before = story_stopped(&t, gid, &after);
    downgrade(t.dir);
    migrated(&t, "migrate: done", before, after);
    /* the dedup index is gone, the schema is the current one */
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env, 32), 0);
    ASSERT_EQ(mdb_env_open(env, t.dir, MDB_RDONLY, 0600), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "dedup", 0, &dbi), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "stats",
                            NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "\"schema\":8,"));
    /* and it goes on counting: dave gets one more unread, alice none */
    tsrv_restart(&t);
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL);
    send_conv(a, GROUP, gid, "g7", "after the migration");
    cimc_close(a);
    snapshot(&t, after);
    ASSERT_EQ(tmsg_conv_find(after->convs[3], after->n[3], GROUP, gid)->unread,
              tmsg_conv_find(before->convs[3], before->n[3], GROUP, gid)->unread + 1);
    ASSERT_EQ(tmsg_conv_find(after->convs[0], after->n[0], GROUP, gid)->unread, 0);
    ASSERT_EQ(tsrv_stop(&t), 0);
    free(before);
    free(after);
}

/* A directory of schema 7 is refused by the tools (its cimd could not read the
 * conversation records a schema 8 cpend holds, nor this build the reverse), and cimd
 * brings it to 8 without rewriting anything: every list is as it was. */
TEST_TIMEOUT(e2e_store_migrate_schema_7, 60)
{
    tsrv_t t;
    snap_t *before, *after;
    char gid[65];
    MDB_env *env;

    before = story_stopped(&t, gid, &after);
    raw_commit(env, raw_begin(t.dir, &env), 7);
    migrated(&t, "migrate: schema 7 to 8: nothing to rewrite", before, after);
    ASSERT_EQ(tsrv_stop(&t), 0);
    free(before);
    free(after);
}

/* A directory of schema 6, which wrote a group's messages into every member's timeline
 * (built here from a schema 7 one: unspan), is refused by the tools and migrated by cimd
 * at start: every user's timeline (by SYNC, in pages of 7) and conversation list are the
 * ones they had; the group's members get the group's next message once, from its index,
 * and its former member does not; the timelines hold DIRECT messages only from then on. */
TEST_TIMEOUT(e2e_store_migrate_schema_6, 60)
{
    tsrv_t t;
    snap_t *before, *after;
    char gid[65], out[8192];
    const char *tl;
    fan_t f;
    MDB_env *env;
    MDB_txn *txn;

    before = story_stopped(&t, gid, &after);
    unspan_read(t.dir, &f);
    txn = raw_begin(t.dir, &env);
    unspan(txn, &f);
    raw_commit(env, txn, 6);
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "stats", NULL), 0);

    tsrv_restart(&t);
    ASSERT_TRUE(tsrv_log_has(&t, "migrate: schema 6 to 8"));
    ASSERT_TRUE(tsrv_log_has(&t, "3 group memberships read from their groups' indexes"));
    snapshot(&t, after);
    same_lists(before, after);
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL);
    uint64_t id = send_conv(a, GROUP, gid, "g7", "after the migration");
    cimc_close(a);
    snapshot(&t, after);
    for (int u = 0; u < USERS; u++) {
        bool member = u != 2; /* carol left */
        ASSERT_EQ(after->ntl[u], before->ntl[u] + member);
        ASSERT_TRUE(!member || after->tl[u][after->ntl[u] - 1] == id);
        ASSERT_EQ(memcmp(after->tl[u], before->tl[u], before->ntl[u] * 8), 0);
    }
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    /* the timelines got nothing of it: their entries are the ones unspan wrote and the
     * DIRECT messages (11: five between two users, and a note to self) */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "stats",
                            NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "\"schema\":8,"));
    ASSERT_NOT_NULL(tl = strstr(out, "{\"name\":\"timeline\""));
    ASSERT_NOT_NULL(strstr(tl, "\"entries\":"));
    ASSERT_EQ(strtoull(strstr(tl, "\"entries\":") + 10, NULL, 10), f.n + 11);
    tsrv_restart(&t);
    ASSERT_EQ(tsrv_stop(&t), 0);
    free(before);
    free(after);
}

/* ---- commit pacing (store.h; exercised under load by e2e_bench_c2c_paced) ------------ */

/* The rule itself: off, idle, or a drain already past the interval drain at once; a busy
 * writer woken soon after its last drain waits for the rest of the interval. */
TEST(store_pace_rule)
{
    ASSERT_EQ(store_pace_wait(0, 0.9, 0), 0);                     /* off */
    ASSERT_EQ(store_pace_wait(1, STORE_PACE_BUSY, 0), 0);         /* not busy enough */
    ASSERT_EQ(store_pace_wait(1, 0.1, 0), 0);
    ASSERT_EQ(store_pace_wait(5, 0.9, 5), 0);                     /* the interval is over */
    ASSERT_EQ(store_pace_wait(5, 0.9, 7), 0);
    ASSERT_EQ(store_pace_wait(5, 0.9, 0), 5);
    ASSERT_EQ(store_pace_wait(5, 0.9, 3), 2);
    ASSERT_EQ(store_pace_wait(1, 0.26, 0), 1);
}

/* ---- schema 2 → 3: the head a key implies is not stored --------------------------------- */

static blob_t *copy_blob(const uint8_t *p, size_t len)
{
    blob_t *b = blob_new(len);
    memcpy(b->data, p, len);
    return b;
}

/* Make @p dir what schema 2 left: records @p ids stored one to an entry, the first @p whole
 * of them whole (msg_id and time_ms in front, as schema 2 stored every record), the rest
 * as this build stored them (without the head, as schemas 3 and 4 stored them); the
 * schema 2. They are every record the directory holds. */
static void schema_2(const char *dir, const uint64_t *ids, size_t n, size_t whole)
{
    blob_t *recs[8];
    uint8_t key[8];
    uint64_t count;
    const uint8_t *p;
    size_t len;
    kv_t *kv = NULL;
    kv_txn_t *kt;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi msgs;
    MDB_val k, v;

    ASSERT_LE(n, N(recs));
    ASSERT_OK(kv_open(dir, KV_RDONLY, &kv));
    ASSERT_OK(kv_begin(kv, KV_READ, &kt));
    ASSERT_OK(kv_msg_count(kt, &count));
    ASSERT_U64_EQ(count, n);
    for (size_t i = 0; i < n; i++) {
        ASSERT_OK(kv_msg_get(kt, ids[i], &p, &len));
        ASSERT_TRUE(p[0] != 0x08); /* this build left the head out */
        recs[i] = i < whole ? message_with_id(ids[i], snowflake_time_ms(ids[i]), p, len)
                            : copy_blob(p, len);
    }
    kv_abort(kt);
    kv_close(kv);

    txn = raw_begin(dir, &env);
    ASSERT_EQ(mdb_dbi_open(txn, "msgs", 0, &msgs), 0);
    ASSERT_EQ(mdb_drop(txn, msgs, 0), 0);
    for (size_t i = 0; i < n; i++) {
        be64(key, ids[i]);
        k = (MDB_val){8, key};
        v = (MDB_val){recs[i]->len, recs[i]->data};
        ASSERT_EQ(mdb_put(txn, msgs, &k, &v, 0), 0);
        blob_unref(recs[i]);
    }
    raw_commit(env, txn, 2);
}

static const char *const cmids[] = {"m0", "m1", "m2", "m3"};

/* Every message of @p p is one of @p ids in order, from alice, with its id's time. */
static void expect_ids(const tmsg_page_t *p, const uint64_t *ids, size_t n)
{
    ASSERT_EQ(p->code, cim_Code_OK);
    ASSERT_EQ(p->n, n);
    for (size_t i = 0; i < n; i++) {
        ASSERT_U64_EQ(p->msgs[i].msg_id, ids[i]);
        ASSERT_U64_EQ(p->msgs[i].time_ms, snowflake_time_ms(ids[i]));
        ASSERT_STREQ(p->msgs[i].from, "alice");
        ASSERT_STREQ(p->msgs[i].client_msg_id, cmids[i]);
        ASSERT_EQ(p->msgs[i].body_len, 5);
    }
}

/* A schema 2 directory (records stored whole) is refused by the tools, and cimd moves it to
 * schema 3 at start without rewriting anything: SYNC, HISTORY and CONV_LIST give every
 * message, whole or stored without its head, with its id and time; both can be recalled;
 * cimdump tells the two apart. */
TEST_TIMEOUT(e2e_store_migrate_schema_2, 60)
{
    tsrv_t t;
    uint64_t ids[4];
    tmsg_t msgs[8];
    tmsg_page_t p;
    tmsg_conv_t convs[4];
    cim_ConvListRsp crsp;
    cim_Result res;
    char out[4096], arg[32];
    size_t n;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, who, USERS);
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL);
    for (int i = 0; i < 3; i++)
        ids[i] = send_conv(a, DIRECT, "bob", cmids[i], "hello");
    cimc_close(a);
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    schema_2(t.dir, ids, 3, 2); /* the third without its head, as schemas 3 and 4 stored it */
    ASSERT_NE(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "stats", NULL), 0);

    tsrv_restart(&t);
    ASSERT_TRUE(tsrv_log_has(&t, "migrate: schema 2 to 8"));
    cimc_t *b = tsrv_login(&t, "bob", "d2", NULL);
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &p));
    expect_ids(&p, ids, 3);
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_history(b, DIRECT, "alice", 0, 0, &p));
    expect_ids(&p, ids, 3);
    TMSG_EXPECT(tmsg_conv_list(b, convs, N(convs), &n, &crsp), crsp, cim_Code_OK);
    ASSERT_EQ(n, 1);
    ASSERT_TRUE(convs[0].has_last);
    ASSERT_U64_EQ(convs[0].last.msg_id, ids[2]);
    ASSERT_U64_EQ(convs[0].last.time_ms, snowflake_time_ms(ids[2]));
    /* inside the recall window, whichever way it is stored (its time is read) */
    a = tsrv_login(&t, "alice", "d1", NULL);
    TMSG_EXPECT(tmsg_recall(a, ids[0], &res), res, cim_Code_OK);
    TMSG_EXPECT(tmsg_recall(a, ids[2], &res), res, cim_Code_OK);
    ids[3] = send_conv(a, DIRECT, "bob", cmids[3], "hello");
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop_keep(&t), 0);

    snprintf(arg, sizeof(arg), "%llu", (unsigned long long)ids[1]);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "msg", arg,
                            NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "\"head_implied\":false"));
    /* a recall's rewrite keeps the layout: the whole one is stored compact from then on */
    for (int i = 0; i < 4; i += 2) {
        snprintf(arg, sizeof(arg), "%llu", (unsigned long long)ids[i]);
        ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "msg",
                                arg, NULL),
                  0);
        ASSERT_NOT_NULL(strstr(out, "\"head_implied\":true"));
        ASSERT_NOT_NULL(strstr(out, "\"recalled\":true"));
    }
    snprintf(arg, sizeof(arg), "%llu", (unsigned long long)ids[3]);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "msg", arg,
                            NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "\"head_implied\":true"));
    ASSERT_NOT_NULL(strstr(out, "\"message_time_ms\":"));
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "stats", NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "\"schema\":8,"));
    tsrv_restart(&t);
    b = tsrv_login(&t, "bob", "d3", NULL);
    tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
    ASSERT_OK(tmsg_sync_all(b, 0, 0, &p));
    ASSERT_EQ(p.n, 6); /* the four, and the two RECALL messages */
    ASSERT_TRUE(msgs[0].flags & 1u);
    ASSERT_U64_EQ(msgs[0].time_ms, snowflake_time_ms(ids[0]));
    ASSERT_TRUE(msgs[2].flags & 1u);
    ASSERT_U64_EQ(msgs[2].time_ms, snowflake_time_ms(ids[2]));
    cimc_close(b);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* ---- the deferred conversation index (schema 4, cpend) -------------------------------- */

/* @p c's CONV_LIST has @p want conversations, DIRECT with each of @p peers (unread as
 * given), each updated at its last message or later (a READ). */
static void expect_directs(cimc_t *c, size_t want, const char *const *peers,
                           const uint32_t *unread, size_t npeers)
{
    tmsg_conv_t convs[8];
    cim_ConvListRsp rsp;
    size_t n = 0;
    ASSERT_OK(tmsg_conv_list(c, convs, N(convs), &n, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    ASSERT_EQ(n, want);
    for (size_t i = 0; i < npeers; i++) {
        const tmsg_conv_t *cv = tmsg_conv_find(convs, n, DIRECT, peers[i]);
        ASSERT_NOT_NULL(cv);
        ASSERT_TRUE(cv->has_last);
        ASSERT_EQ(cv->unread, unread[i]);
        ASSERT_TRUE(cv->updated_ms >= snowflake_time_ms(cv->last.msg_id));
    }
}

/* A conversation's first message makes its two records later, with the deferred index
 * (kv_conv_defer): until then CONV_LIST, READ and cimdump find them on their way, a kill -9
 * leaves them to the restart, and a clean stop puts them in convs. */
TEST_TIMEOUT(e2e_store_new_conversations_wait_for_the_index, 60)
{
    tsrv_t t;
    char out[8192];
    cim_Result res;
    const char *const to[] = {"bob", "carol", "dave"}, *const alice[] = {"alice"};
    const uint32_t none[] = {0, 0, 0}, one[] = {1}, zero[] = {0};
    uint64_t first = 0;

    tsrv_start(&t, NULL);
    tmsg_register_users(&t, who, USERS);
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL), *b = tsrv_login(&t, "bob", "d1", NULL);
    for (int i = 0; i < 3; i++) {
        uint64_t id = send_conv(a, DIRECT, to[i], to[i], "hello");
        first = first ? first : id;
    }
    /* nothing in convs yet: every record waits in the tail */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "stats",
                            NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "{\"name\":\"convs\",\"dupsort\":false,\"entries\":0,"));
    expect_directs(a, 3, to, none, 3);
    expect_directs(b, 1, alice, one, 1);
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "convs",
                            "alice", NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "\"count\":3,"));
    /* a READ finds bob's record on its way (NOT_FOUND before it existed) */
    TMSG_EXPECT(tmsg_read(b, DIRECT, "alice", first, &res), res, cim_Code_OK);
    expect_directs(b, 1, alice, zero, 1);
    cimc_close(a);
    cimc_close(b);

    tsrv_kill(&t);
    tsrv_restart(&t);
    a = tsrv_login(&t, "alice", "d2", NULL);
    b = tsrv_login(&t, "bob", "d2", NULL);
    expect_directs(a, 3, to, none, 3);
    expect_directs(b, 1, alice, zero, 1);
    cimc_close(a);
    cimc_close(b);
    ASSERT_EQ(tsrv_stop_keep(&t), 0);
    /* alice's three, and one each of bob, carol and dave */
    ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json", "stats",
                            NULL),
              0);
    ASSERT_NOT_NULL(strstr(out, "{\"name\":\"convs\",\"dupsort\":false,\"entries\":6,"));
    tsrv_restart(&t);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* HISTORY and CONV_LIST are whole while the index is partly in memory, after a kill -9
 * lost that memory (the restart applies cpend), and after a clean stop (cpend empty). The
 * first start drains epochs of 8 entries, so every stage is crossed. */
TEST_TIMEOUT(e2e_store_deferred_index_survives_kill, 60)
{
    tsrv_t t;
    snap_t *before = calloc(1, sizeof(*before)), *after = calloc(1, sizeof(*after));
    tmsg_t msgs[64];
    tmsg_page_t p;
    cim_GroupRsp grsp;
    cim_Result res;
    uint64_t ids[40];
    size_t n = 0;
    char out[16384], cmid[16];
    const char *const members[] = {"bob", "carol", "dave"};

    ASSERT_NOT_NULL(before);
    ASSERT_NOT_NULL(after);
    ASSERT_OK(setenv("CIM_KV_TAIL", "8", 1));
    tsrv_start(&t, NULL);
    unsetenv("CIM_KV_TAIL");
    tmsg_register_users(&t, who, USERS);
    cimc_t *a = tsrv_login(&t, "alice", "d1", NULL), *b = tsrv_login(&t, "bob", "d1", NULL);
    TMSG_EXPECT(tmsg_group_create(a, "g", members, 3, false, &grsp), grsp, cim_Code_OK);
    for (int i = 0; i < 25; i++) {
        snprintf(cmid, sizeof(cmid), "ab%d", i);
        ids[n++] = send_conv(a, DIRECT, "bob", cmid, "to bob");
        if (i % 8 == 0) {
            snprintf(cmid, sizeof(cmid), "ba%d", i);
            ids[n++] = send_conv(b, DIRECT, "alice", cmid, "to alice");
        }
        snprintf(cmid, sizeof(cmid), "ac%d", i);
        send_conv(a, DIRECT, "carol", cmid, "to carol");
        if (i % 5 == 0) {
            snprintf(cmid, sizeof(cmid), "g%d", i);
            send_conv(i % 10 ? a : b, GROUP, grsp.group.group_id, cmid, "to all");
        }
    }
    TMSG_EXPECT(tmsg_read(b, DIRECT, "alice", ids[10], &res), res, cim_Code_OK);
    cimc_close(a);
    cimc_close(b);
    snapshot(&t, before);
    ASSERT_EQ(tmsg_conv_find(before->convs[2], before->n[2], DIRECT, "alice")->unread, 25);
    ASSERT_EQ(tmsg_conv_find(before->convs[3], before->n[3], GROUP, grsp.group.group_id)->unread,
              5);
    ASSERT_TRUE(before->ntl[1] > n); /* bob's: every DIRECT message with alice, and more */

    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            tsrv_kill(&t);
            tsrv_restart(&t);
            ASSERT_TRUE(tsrv_log_has(&t, "deferred timeline and conversation index record"));
        } else {
            ASSERT_EQ(tsrv_stop_keep(&t), 0);
            ASSERT_EQ(tsrv_run_tool(out, sizeof(out), "cimdump", "--data", t.dir, "--json",
                                    "stats", NULL),
                      0);
            ASSERT_NOT_NULL(strstr(out, "{\"name\":\"cpend\",\"dupsort\":false,\"entries\":0,"));
            tsrv_restart(&t);
        }
        snapshot(&t, after);
        same_lists(before, after);
        b = tsrv_login(&t, "bob", "d2", NULL);
        tmsg_page_init(&p, msgs, N(msgs), NULL, 0);
        ASSERT_OK(tmsg_history(b, DIRECT, "alice", 0, 50, &p));
        ASSERT_EQ(p.code, cim_Code_OK);
        ASSERT_EQ(p.n, n);
        for (size_t i = 0; i < n; i++) /* a page is in id order */
            ASSERT_U64_EQ(msgs[i].msg_id, ids[i]);
        cimc_close(b);
    }
    free(before);
    free(after);
    tsrv_stop(&t);
}
