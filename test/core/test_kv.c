/* Tests for src/core/kv.c: environment lifecycle, meta, apps and users. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/kv.h"
#include "support/test.h"
#include "support/tmpdir.h"

/* ---- helpers ---------------------------------------------------------------------- */

static void tmpdir(char out[TMPDIR_MAX])
{
    tmpdir_make(out, "kv");
}

static void rm_rf(const char *dir)
{
    tmpdir_remove(dir);
}

static kv_t *open_at(const char *dir, unsigned flags)
{
    kv_t *kv = NULL;
    ASSERT_OK(kv_open(dir, flags, &kv));
    ASSERT_NOT_NULL(kv);
    return kv;
}

typedef struct names {
    int n;
    char name[8][KV_ID_MAX + 1];
    uint64_t ms[8];
} names_t;

static int collect(void *ctx, const char *name, uint64_t created_ms)
{
    names_t *nm = ctx;
    ASSERT_LT(nm->n, 8);
    snprintf(nm->name[nm->n], sizeof(nm->name[0]), "%s", name);
    nm->ms[nm->n++] = created_ms;
    return 0;
}

static int stop_at_first(void *ctx, const char *name, uint64_t created_ms)
{
    (void)name;
    (void)created_ms;
    (*(int *)ctx)++;
    return 7;
}

static void secret_of(uint8_t s[32], uint8_t fill)
{
    memset(s, fill, 32);
}

/* ---- environment ------------------------------------------------------------------ */

TEST(kv_open_creates_dir_and_env)
{
    char base[64], dir[128], file[192];
    struct stat st;
    kv_t *kv;

    tmpdir(base);
    snprintf(dir, sizeof(dir), "%s/a/b", base); /* parents missing too */
    kv = open_at(dir, 0);
    ASSERT_OK(stat(dir, &st));
    ASSERT_TRUE(S_ISDIR(st.st_mode));
    ASSERT_EQ(st.st_mode & 0777, 0700);
    snprintf(file, sizeof(file), "%s/data.mdb", dir);
    ASSERT_OK(stat(file, &st));
    /* The map starts small and is reserved on disk (a write into the map never finds a
     * hole on a full disk): the file holds exactly the initial map. */
    ASSERT_LE(st.st_blocks * 512, (64 << 20) + (1 << 20));
    ASSERT_EQ(st.st_size, 64 << 20);
    snprintf(file, sizeof(file), "%s/lock.mdb", dir);
    ASSERT_OK(stat(file, &st));
    kv_close(kv);
    kv_close(NULL);
    /* Reopening an existing environment works and keeps the schema. */
    kv = open_at(dir, KV_NOSYNC);
    ASSERT_OK(kv_sync(kv));
    kv_close(kv);
    rm_rf(base);
}

TEST(kv_rdonly_missing_dir_fails)
{
    char base[64], dir[128];
    struct stat st;
    kv_t *kv = NULL;

    tmpdir(base);
    snprintf(dir, sizeof(dir), "%s/missing", base);
    ASSERT_RC(kv_open(dir, KV_RDONLY, &kv), -ENOENT);
    ASSERT_NULL(kv);
    ASSERT_EQ(stat(dir, &st), -1); /* never created */
    rm_rf(base);
}

/* The read-only side of kv_rdonly_reads_and_refuses_writes, in its own process: LMDB
 * forbids opening one environment twice in a process (its fcntl locks are per process). */
static int rdonly_child(const char *dir, const uint8_t want[32])
{
    uint8_t got[32];
    kv_txn_t *txn = NULL;
    kv_t *ro = NULL;

    if (kv_open(dir, KV_RDONLY, &ro) < 0 || kv_begin(ro, KV_READ, &txn) < 0 ||
        kv_app_get(txn, "acme", got) < 0 || memcmp(got, want, 32) != 0)
        return 1;
    kv_abort(txn);
    txn = NULL;
    if (kv_begin(ro, KV_WRITE, &txn) != -EACCES || txn != NULL)
        return 2;
    if (kv_app_ensure_default(ro) != -EACCES || kv_begin(ro, 7, &txn) != RC_EINVAL)
        return 3;
    kv_close(ro);
    return 0;
}

TEST(kv_rdonly_reads_and_refuses_writes)
{
    char dir[64];
    uint8_t s[32];
    kv_txn_t *txn;
    pid_t pid;
    int st;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    secret_of(s, 0x5a);
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_app_add(txn, "acme", s, 1));
    ASSERT_OK(kv_commit(txn));
    /* A reader process beside the open writer, like cimdump beside cimd. */
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0)
        _exit(rdonly_child(dir, s));
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    kv_close(kv);
    rm_rf(dir);
}

TEST(kv_rdonly_not_cim_env)
{
    char dir[64];
    MDB_env *env;
    MDB_txn *t;
    kv_t *kv = NULL;

    /* A plain LMDB environment with none of our databases. */
    tmpdir(dir);
    ASSERT_OK(mdb_env_create(&env));
    ASSERT_OK(mdb_env_open(env, dir, 0, 0600));
    ASSERT_OK(mdb_txn_begin(env, NULL, 0, &t));
    ASSERT_OK(mdb_txn_commit(t));
    mdb_env_close(env);
    ASSERT_RC(kv_open(dir, KV_RDONLY, &kv), RC_ESTORE);
    ASSERT_NULL(kv);
    rm_rf(dir);
}

TEST(kv_schema_mismatch_refused)
{
    char dir[64];
    uint8_t v99[4] = {0, 0, 0, 99};
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi meta;
    MDB_val k = {6, "schema"}, v = {4, v99};
    kv_t *kv;

    tmpdir(dir);
    kv_close(open_at(dir, 0));
    ASSERT_OK(mdb_env_create(&env));
    ASSERT_OK(mdb_env_set_maxdbs(env, 32));
    ASSERT_OK(mdb_env_open(env, dir, 0, 0600));
    ASSERT_OK(mdb_txn_begin(env, NULL, 0, &t));
    ASSERT_OK(mdb_dbi_open(t, "meta", 0, &meta));
    ASSERT_OK(mdb_put(t, meta, &k, &v, 0));
    ASSERT_OK(mdb_txn_commit(t));
    mdb_env_close(env);
    kv = NULL;
    ASSERT_RC(kv_open(dir, 0, &kv), RC_ESTORE);
    ASSERT_RC(kv_open(dir, KV_RDONLY, &kv), RC_ESTORE);
    ASSERT_NULL(kv);
    rm_rf(dir);
}

TEST(kv_two_envs_in_one_process)
{
    char d1[64], d2[64];
    uint8_t s[32], got[32];
    kv_txn_t *txn;
    kv_t *a, *b;

    tmpdir(d1);
    tmpdir(d2);
    a = open_at(d1, 0);
    b = open_at(d2, KV_NOSYNC);
    secret_of(s, 1);
    ASSERT_OK(kv_begin(a, KV_WRITE, &txn));
    ASSERT_OK(kv_app_add(txn, "only-a", s, 1));
    ASSERT_OK(kv_user_add(txn, "only-a", "u", 2));
    ASSERT_OK(kv_last_id_put(txn, 100));
    ASSERT_OK(kv_commit(txn));
    ASSERT_OK(kv_begin(b, KV_WRITE, &txn));
    ASSERT_OK(kv_last_id_put(txn, 200));
    ASSERT_OK(kv_commit(txn));

    ASSERT_OK(kv_begin(b, KV_READ, &txn));
    ASSERT_RC(kv_app_get(txn, "only-a", got), RC_ENOTFOUND);
    ASSERT_RC(kv_user_get(txn, "only-a", "u", NULL), RC_ENOTFOUND);
    uint64_t id = 0;
    ASSERT_OK(kv_last_id_get(txn, &id));
    ASSERT_U64_EQ(id, 200);
    ASSERT_OK(kv_commit(txn));
    ASSERT_OK(kv_begin(a, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "only-a", got));
    ASSERT_OK(kv_last_id_get(txn, &id));
    ASSERT_U64_EQ(id, 100);
    kv_abort(txn);
    kv_close(b);
    kv_close(a);
    rm_rf(d1);
    rm_rf(d2);
}

TEST(kv_grow_keeps_data)
{
    char dir[64];
    uint8_t s[32], got[32];
    kv_txn_t *txn;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    secret_of(s, 9);
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_app_add(txn, "x", s, 1));
    ASSERT_OK(kv_commit(txn));
    ASSERT_OK(kv_grow(kv));
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "x", got));
    ASSERT_MEMEQ(got, s, 32);
    kv_abort(txn);
    kv_close(kv);
    /* A process opening later adopts the grown size and reads the same data. */
    kv = open_at(dir, KV_RDONLY);
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "x", got));
    kv_abort(txn);
    kv_close(kv);
    rm_rf(dir);
}

/* ---- meta ------------------------------------------------------------------------- */

TEST(kv_last_id_get_put)
{
    char dir[64];
    uint64_t id = 1;
    kv_txn_t *txn;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_last_id_get(txn, &id));
    ASSERT_U64_EQ(id, 0); /* none issued yet */
    kv_abort(txn);

    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_last_id_put(txn, 42));
    ASSERT_OK(kv_last_id_get(txn, &id)); /* visible inside the writing txn */
    ASSERT_U64_EQ(id, 42);
    kv_abort(txn); /* aborted: not stored */
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_last_id_get(txn, &id));
    ASSERT_U64_EQ(id, 0);
    kv_abort(txn);

    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_last_id_put(txn, 0x0123456789abcdefULL));
    ASSERT_OK(kv_commit(txn));
    kv_close(kv);
    kv = open_at(dir, 0);
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_last_id_get(txn, &id));
    ASSERT_U64_EQ(id, 0x0123456789abcdefULL);
    ASSERT_OK(kv_commit(txn));
    kv_close(kv);
    rm_rf(dir);
}

/* ---- apps ------------------------------------------------------------------------- */

TEST(kv_default_app_ensured_once)
{
    char dir[64];
    uint8_t s1[32], s2[32], zero[32] = {0};
    names_t nm = {0};
    kv_txn_t *txn;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    ASSERT_OK(kv_app_ensure_default(kv));
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "default", s1));
    ASSERT_OK(kv_app_each(txn, collect, &nm));
    kv_abort(txn);
    ASSERT_EQ(nm.n, 1);
    ASSERT_STREQ(nm.name[0], "default");
    ASSERT_LT(1767225600000ULL - 366ULL * 86400000, nm.ms[0]); /* a plausible wall clock */
    ASSERT_TRUE(memcmp(s1, zero, 32) != 0);

    ASSERT_OK(kv_app_ensure_default(kv)); /* again: no change */
    kv_close(kv);
    kv = open_at(dir, 0);
    ASSERT_OK(kv_app_ensure_default(kv)); /* after reopen: no change */
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "default", s2));
    memset(&nm, 0, sizeof(nm));
    ASSERT_OK(kv_app_each(txn, collect, &nm));
    kv_abort(txn);
    ASSERT_MEMEQ(s1, s2, 32);
    ASSERT_EQ(nm.n, 1);
    kv_close(kv);
    rm_rf(dir);
}

TEST(kv_default_app_race_between_processes)
{
    char dir[64];
    uint8_t mine[32], theirs[32];
    int fds[2];
    pid_t pids[4];
    kv_txn_t *txn;
    kv_t *kv;

    /* Four processes open a fresh directory and ensure "default" at once: all must end
     * up with the one secret that exists. */
    tmpdir(dir);
    ASSERT_OK(pipe(fds));
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        ASSERT_TRUE(pids[i] >= 0);
        if (pids[i] == 0) {
            uint8_t s[32];
            kv_t *c = NULL;
            kv_txn_t *t = NULL;
            if (kv_open(dir, 0, &c) < 0 || kv_app_ensure_default(c) < 0 ||
                kv_begin(c, KV_READ, &t) < 0 || kv_app_get(t, "default", s) < 0)
                _exit(1);
            kv_abort(t);
            kv_close(c);
            _exit(write(fds[1], s, 32) == 32 ? 0 : 1);
        }
    }
    close(fds[1]);
    for (int i = 0; i < 4; i++) {
        int st;
        ASSERT_EQ(waitpid(pids[i], &st, 0), pids[i]);
        ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    kv = open_at(dir, KV_RDONLY);
    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "default", mine));
    kv_abort(txn);
    kv_close(kv);
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(read(fds[0], theirs, 32), 32);
        ASSERT_MEMEQ(mine, theirs, 32);
    }
    close(fds[0]);
    rm_rf(dir);
}

TEST(kv_app_add_get_each)
{
    char dir[64];
    uint8_t s1[32], s2[32], got[32];
    names_t nm = {0};
    int calls = 0;
    kv_txn_t *txn;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    secret_of(s1, 0x11);
    secret_of(s2, 0x22);
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_app_add(txn, "zeta", s1, 1000));
    ASSERT_OK(kv_app_add(txn, "alpha", s2, 2000));
    ASSERT_RC(kv_app_add(txn, "zeta", s2, 3000), RC_EEXIST); /* txn stays usable */
    ASSERT_OK(kv_commit(txn));

    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_RC(kv_app_add(txn, "alpha", s1, 4000), RC_EEXIST);
    ASSERT_OK(kv_commit(txn));

    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_get(txn, "zeta", got));
    ASSERT_MEMEQ(got, s1, 32); /* the duplicate changed nothing */
    ASSERT_OK(kv_app_get(txn, "alpha", got));
    ASSERT_MEMEQ(got, s2, 32);
    memset(got, 0xee, 32);
    ASSERT_RC(kv_app_get(txn, "nope", got), RC_ENOTFOUND);
    ASSERT_RC(kv_app_get(txn, "", got), RC_ENOTFOUND);
    ASSERT_EQ(got[0], 0xee); /* not written on failure */
    ASSERT_OK(kv_app_each(txn, collect, &nm));
    ASSERT_EQ(nm.n, 2);
    ASSERT_STREQ(nm.name[0], "alpha"); /* name order */
    ASSERT_U64_EQ(nm.ms[0], 2000);
    ASSERT_STREQ(nm.name[1], "zeta");
    ASSERT_U64_EQ(nm.ms[1], 1000);
    ASSERT_EQ(kv_app_each(txn, stop_at_first, &calls), 7); /* non-zero stops and returns */
    ASSERT_EQ(calls, 1);
    kv_abort(txn);
    kv_close(kv);
    rm_rf(dir);
}

/* Settings ride after the secret and created_ms: a record without them (as every build
 * before them wrote it) reads as none, and replacing them keeps the secret. */
TEST(kv_app_settings_extend_the_record)
{
    char dir[64], big[KV_APP_SETTINGS_MAX + 1];
    const uint8_t *val = NULL;
    uint8_t s[32], got[32];
    names_t nm = {0};
    size_t len = 99;
    kv_txn_t *txn;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    secret_of(s, 0x5a);
    memset(big, 'x', sizeof(big));
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_app_add(txn, "acme", s, 1234));
    ASSERT_OK(kv_app_settings_get(txn, "acme", &val, &len));
    ASSERT_EQ(len, 0);
    ASSERT_OK(kv_app_settings_put(txn, "acme", "webhook_url=http://x/\n", 22));
    ASSERT_RC(kv_app_settings_put(txn, "nope", "a", 1), RC_ENOTFOUND);
    ASSERT_RC(kv_app_settings_put(txn, "acme", big, sizeof(big)), RC_ETOOBIG);
    ASSERT_OK(kv_commit(txn));

    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_app_settings_get(txn, "acme", &val, &len));
    ASSERT_EQ(len, 22);
    ASSERT_TRUE(memcmp(val, "webhook_url=http://x/\n", 22) == 0);
    ASSERT_OK(kv_app_get(txn, "acme", got));
    ASSERT_TRUE(memcmp(got, s, 32) == 0);
    ASSERT_OK(kv_app_each(txn, collect, &nm)); /* the longer record lists as before */
    ASSERT_EQ(nm.n, 1);
    ASSERT_STREQ(nm.name[0], "acme");
    ASSERT_U64_EQ(nm.ms[0], 1234);
    ASSERT_RC(kv_app_settings_get(txn, "nope", &val, &len), RC_ENOTFOUND);
    kv_abort(txn);

    /* back to none: the 40-byte record again; the largest settings fit */
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_app_settings_put(txn, "acme", NULL, 0));
    ASSERT_OK(kv_app_settings_get(txn, "acme", &val, &len));
    ASSERT_EQ(len, 0);
    ASSERT_OK(kv_app_settings_put(txn, "acme", big, KV_APP_SETTINGS_MAX));
    ASSERT_OK(kv_app_settings_get(txn, "acme", &val, &len));
    ASSERT_EQ(len, KV_APP_SETTINGS_MAX);
    ASSERT_OK(kv_app_get(txn, "acme", got));
    ASSERT_TRUE(memcmp(got, s, 32) == 0);
    ASSERT_OK(kv_commit(txn));
    kv_close(kv);
    rm_rf(dir);
}

/* ---- users ------------------------------------------------------------------------ */

TEST(kv_user_add_get_each_per_app)
{
    char dir[64];
    uint64_t ms = 0;
    names_t nm = {0};
    kv_txn_t *txn;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    /* "a" is a prefix of "ab": the NUL separator keeps their users apart. */
    ASSERT_OK(kv_user_add(txn, "a", "bob", 10));
    ASSERT_OK(kv_user_add(txn, "a", "alice", 11));
    ASSERT_OK(kv_user_add(txn, "ab", "carol", 12));
    ASSERT_OK(kv_user_add(txn, "b", "alice", 13)); /* same id, other app */
    ASSERT_RC(kv_user_add(txn, "a", "bob", 99), RC_EEXIST);
    ASSERT_OK(kv_commit(txn));

    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_user_get(txn, "a", "bob", &ms));
    ASSERT_U64_EQ(ms, 10); /* the duplicate changed nothing */
    ASSERT_OK(kv_user_get(txn, "b", "alice", &ms));
    ASSERT_U64_EQ(ms, 13);
    ASSERT_OK(kv_user_get(txn, "a", "alice", NULL));
    ms = 77;
    ASSERT_RC(kv_user_get(txn, "ab", "bob", &ms), RC_ENOTFOUND);
    ASSERT_RC(kv_user_get(txn, "a", "carol", &ms), RC_ENOTFOUND);
    ASSERT_RC(kv_user_get(txn, "c", "alice", &ms), RC_ENOTFOUND);
    ASSERT_U64_EQ(ms, 77);

    ASSERT_OK(kv_user_each(txn, "a", collect, &nm));
    ASSERT_EQ(nm.n, 2);
    ASSERT_STREQ(nm.name[0], "alice");
    ASSERT_U64_EQ(nm.ms[0], 11);
    ASSERT_STREQ(nm.name[1], "bob");
    memset(&nm, 0, sizeof(nm));
    ASSERT_OK(kv_user_each(txn, "ab", collect, &nm));
    ASSERT_EQ(nm.n, 1);
    ASSERT_STREQ(nm.name[0], "carol");
    memset(&nm, 0, sizeof(nm));
    ASSERT_OK(kv_user_each(txn, "b", collect, &nm));
    ASSERT_EQ(nm.n, 1);
    ASSERT_STREQ(nm.name[0], "alice");
    memset(&nm, 0, sizeof(nm));
    ASSERT_OK(kv_user_each(txn, "aa", collect, &nm)); /* between "a" and "ab": none */
    ASSERT_OK(kv_user_each(txn, "zz", collect, &nm)); /* past the end */
    ASSERT_EQ(nm.n, 0);
    kv_abort(txn);
    kv_close(kv);
    rm_rf(dir);
}

/* Flags ride after created_ms: none (an older record) reads 0, setting them keeps
 * created_ms, and the listing reads records with and without them. */
TEST(kv_user_flags_extend_the_record)
{
    char dir[64];
    names_t nm = {0};
    uint32_t flags = 77;
    uint64_t ms = 0;
    kv_txn_t *txn;
    kv_t *kv;

    tmpdir(dir);
    kv = open_at(dir, 0);
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_user_add(txn, "a", "bot", 10));
    ASSERT_OK(kv_user_add(txn, "a", "human", 11));
    ASSERT_OK(kv_user_flags(txn, "a", "bot", &flags));
    ASSERT_EQ(flags, 0);
    ASSERT_OK(kv_user_set_flags(txn, "a", "bot", KV_USER_BOT));
    ASSERT_RC(kv_user_set_flags(txn, "a", "ghost", KV_USER_BOT), RC_ENOTFOUND);
    ASSERT_RC(kv_user_set_flags(txn, "a", "bot", 0x100), RC_EINVAL);
    ASSERT_OK(kv_commit(txn));

    ASSERT_OK(kv_begin(kv, KV_READ, &txn));
    ASSERT_OK(kv_user_flags(txn, "a", "bot", &flags));
    ASSERT_EQ(flags, KV_USER_BOT);
    ASSERT_OK(kv_user_get(txn, "a", "bot", &ms));
    ASSERT_U64_EQ(ms, 10);
    ASSERT_OK(kv_user_flags(txn, "a", "human", &flags));
    ASSERT_EQ(flags, 0);
    ASSERT_RC(kv_user_flags(txn, "a", "ghost", &flags), RC_ENOTFOUND);
    ASSERT_OK(kv_user_each(txn, "a", collect, &nm));
    ASSERT_EQ(nm.n, 2);
    ASSERT_U64_EQ(nm.ms[0], 10);
    kv_abort(txn);

    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_OK(kv_user_set_flags(txn, "a", "bot", 0));
    ASSERT_OK(kv_user_flags(txn, "a", "bot", &flags));
    ASSERT_EQ(flags, 0);
    ASSERT_OK(kv_user_get(txn, "a", "bot", &ms));
    ASSERT_U64_EQ(ms, 10);
    ASSERT_OK(kv_commit(txn));
    kv_close(kv);
    rm_rf(dir);
}

TEST(kv_id_validation)
{
    char dir[64], id64[KV_ID_MAX + 1], id65[KV_ID_MAX + 2];
    uint8_t s[32] = {0};
    kv_txn_t *txn;
    kv_t *kv;

    memset(id64, 'x', KV_ID_MAX);
    id64[KV_ID_MAX] = '\0';
    memset(id65, 'y', KV_ID_MAX + 1);
    id65[KV_ID_MAX + 1] = '\0';
    ASSERT_TRUE(kv_id_valid("a"));
    ASSERT_TRUE(kv_id_valid("Alice.B_c-9@example.org"));
    ASSERT_TRUE(kv_id_valid(id64));
    ASSERT_TRUE(!kv_id_valid(id65));
    ASSERT_TRUE(!kv_id_valid(""));
    ASSERT_TRUE(!kv_id_valid(NULL));
    const char *bad[] = {"a b", "a/b", "a\n", "caf\xc3\xa9", "a:b", "a+b", "a\\b", "*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (kv_id_valid(bad[i]))
            TEST_FAIL_("'%s' accepted", bad[i]);

    tmpdir(dir);
    kv = open_at(dir, 0);
    ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
    ASSERT_RC(kv_app_add(txn, "", s, 1), RC_EINVAL);
    ASSERT_RC(kv_app_add(txn, id65, s, 1), RC_EINVAL);
    ASSERT_RC(kv_app_add(txn, "bad name", s, 1), RC_EINVAL);
    ASSERT_OK(kv_app_add(txn, id64, s, 1));
    ASSERT_RC(kv_user_add(txn, "", "u", 1), RC_EINVAL);
    ASSERT_RC(kv_user_add(txn, "a", "", 1), RC_EINVAL);
    ASSERT_RC(kv_user_add(txn, "a", id65, 1), RC_EINVAL);
    ASSERT_RC(kv_user_add(txn, "a", "u/v", 1), RC_EINVAL);
    ASSERT_OK(kv_user_add(txn, id64, id64, 1)); /* the longest key: 129 bytes */
    ASSERT_OK(kv_user_get(txn, id64, id64, NULL));
    ASSERT_RC(kv_user_get(txn, id65, "u", NULL), RC_ENOTFOUND);
    ASSERT_OK(kv_commit(txn));
    kv_close(kv);
    rm_rf(dir);
}

/* ---- threads ---------------------------------------------------------------------- */

typedef struct readers {
    kv_t *kv;
    atomic_bool stop;
    atomic_int reads;
} readers_t;

static void *reader(void *arg)
{
    readers_t *r = arg;
    uint64_t last = 0, id;
    uint8_t s[32];
    kv_txn_t *txn;

    while (!atomic_load(&r->stop)) {
        ASSERT_OK(kv_begin(r->kv, KV_READ, &txn));
        ASSERT_OK(kv_last_id_get(txn, &id));
        ASSERT_LE(last, id); /* a snapshot never goes back in time */
        last = id;
        ASSERT_OK(kv_app_get(txn, "default", s));
        kv_abort(txn);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

TEST(kv_threads_read_while_writing)
{
    char dir[64], user[16];
    readers_t r = {0};
    pthread_t th[4];
    kv_txn_t *txn;
    uint64_t id;

    /* Worker threads hold read transactions (MDB_NOTLS) while the store thread writes. */
    tmpdir(dir);
    r.kv = open_at(dir, KV_NOSYNC);
    ASSERT_OK(kv_app_ensure_default(r.kv));
    for (int i = 0; i < 4; i++)
        ASSERT_OK(pthread_create(&th[i], NULL, reader, &r));
    for (uint64_t i = 1; i <= 200; i++) {
        ASSERT_OK(kv_begin(r.kv, KV_WRITE, &txn));
        ASSERT_OK(kv_last_id_put(txn, i));
        snprintf(user, sizeof(user), "u%03u", (unsigned)i);
        ASSERT_OK(kv_user_add(txn, "default", user, i));
        ASSERT_OK(kv_commit(txn));
    }
    while (atomic_load(&r.reads) < 100)
        usleep(1000);
    atomic_store(&r.stop, true);
    for (int i = 0; i < 4; i++)
        ASSERT_OK(pthread_join(th[i], NULL));
    ASSERT_OK(kv_begin(r.kv, KV_READ, &txn));
    ASSERT_OK(kv_last_id_get(txn, &id));
    ASSERT_U64_EQ(id, 200);
    kv_abort(txn);
    kv_close(r.kv);
    rm_rf(dir);
}

/* A map recorded far larger than the data (schema 1 recorded 64 GiB; LMDB never records a
 * smaller size) is not reserved on disk by a writer: cimd (KV_MIGRATE) brings map and file
 * down to the initial size, and another writer (cimctl) maps no more than that either. */
TEST(kv_open_fits_a_large_recorded_map)
{
    char base[64];
    struct stat st;
    char file[128];
    kv_t *kv;

    tmpdir(base);
    snprintf(file, sizeof(file), "%s/data.mdb", base);
    ASSERT_OK(setenv("CIM_KV_MAP_SIZE", "536870912", 1)); /* 512 MiB, recorded */
    kv = open_at(base, 0);
    kv_close(kv);
    ASSERT_OK(unsetenv("CIM_KV_MAP_SIZE"));
    ASSERT_OK(stat(file, &st));
    ASSERT_EQ(st.st_size, 512 << 20);
    kv = open_at(base, KV_MIGRATE); /* cimd */
    kv_close(kv);
    ASSERT_OK(stat(file, &st));
    ASSERT_EQ(st.st_size, 64 << 20);
    ASSERT_LE(st.st_blocks * 512, (64 << 20) + (1 << 20));
    kv = open_at(base, 0); /* cimctl: its map is fitted too, nothing more is reserved */
    kv_close(kv);
    ASSERT_OK(stat(file, &st));
    ASSERT_LE(st.st_blocks * 512, (64 << 20) + (1 << 20));
    rm_rf(base);
}
